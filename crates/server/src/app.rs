//! The composition root: adapters chosen by configuration, wired into use cases and
//! the HTTP server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use pingback_application::ConversationService;
use pingback_http::{ApiState, TokenAuthority};

use crate::settings::{Settings, SettingsError};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("auth: {0}")]
    Auth(#[from] pingback_http::AuthConfigError),
    #[error("database: {0}")]
    Storage(#[from] pingback_persistence::StorageError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
}

/// A built, bound server (zero2prod's `Application`): tests bind port 0 and read the
/// port back.
pub struct Application {
    server: Server,
    address: std::net::SocketAddr,
}

impl Application {
    pub fn build(settings: &Settings) -> Result<Self, StartupError> {
        let tokens = Arc::new(TokenAuthority::new(&settings.auth()?)?);
        tokens.self_test()?;
        // Lazy pool: the server starts while the database is down and answers 503.
        let storage = pingback_persistence::connect(&settings.database())?;
        let state = ApiState {
            conversations: ConversationService::new(storage.repository),
            tokens,
            metrics: Arc::default(),
        };
        let bind_error = |source| StartupError::Bind {
            address: settings.server.bind.clone(),
            source,
        };
        let listener = TcpListener::bind(&settings.server.bind).map_err(bind_error)?;
        let address = listener.local_addr().map_err(bind_error)?;
        let server = pingback_http::serve(listener, state, &settings.http()).map_err(bind_error)?;
        Ok(Self { server, address })
    }

    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    /// Runs until SIGTERM/SIGINT, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
