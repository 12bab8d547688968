//! The composition root: adapters chosen by configuration, wired into use cases and
//! the HTTP server.

use std::net::TcpListener;
use std::sync::Arc;

use pingback_application::{
    ConversationCommands, ConversationRepository, ConversationService, ConversationWriter,
    IdempotencyClaim, RepositoryError, StorageMetrics, StoredRevision, SystemClock, Updated,
    WriteError, Written,
};
use pingback_domain::{
    BusinessId, Conversation, ConversationDraft, ConversationId, ConversationPatch, InboxPage,
    InboxQuery, Message, MessageAppended, MessageDraft, MessageId, MessageIds, NewConversationIds,
    Revision, Timestamp,
};
use pingback_http::{ApiState, Metrics, Server, TokenAuthority};
use pingback_persistence::DatabaseSettings;

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

/// A built, bound server: the listener is bound before [`Application::address`] is
/// asked, so a configured port 0 gives a free port that can be read back.
pub struct Application {
    server: Server,
    address: std::net::SocketAddr,
}

impl Application {
    pub fn build(settings: &Settings) -> Result<Self, StartupError> {
        let tokens = Arc::new(TokenAuthority::new(&settings.auth()?)?);
        tokens.self_test()?;
        // Pools are lazy: the server starts while the database is down and answers
        // 503. Connecting once here refuses a bad URL before anything listens; each
        // worker then builds its own (see `pingback_http::serve`).
        let database = settings.database();
        pingback_persistence::connect(&database)?;
        let metrics = Arc::new(Metrics::default());
        let state = move || {
            let (repository, writer, gauges) = worker_storage(&database);
            // Each worker's storage reports its gauges; `/metrics` sums them.
            if let Some(gauges) = gauges {
                metrics.track_storage(gauges);
            }
            let conversations = ConversationService::new(repository);
            ApiState {
                commands: ConversationCommands::new(
                    writer,
                    conversations.clone(),
                    Arc::new(SystemClock),
                ),
                conversations,
                tokens: tokens.clone(),
                metrics: metrics.clone(),
            }
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
        self.server.run().await
    }
}

/// A worker's ports and its storage's gauges. The settings were accepted at start-up,
/// so this cannot fail in practice; if it ever did, the worker answers 500s (logged)
/// instead of crashing, and reports no gauges.
fn worker_storage(database: &DatabaseSettings) -> WorkerStorage {
    match pingback_persistence::connect(database) {
        Ok(storage) => (storage.repository, storage.writer, Some(storage.gauges)),
        Err(error) => {
            tracing::error!(%error, "a worker could not build its database pool");
            let unconnected = Arc::new(Unconnected(error.to_string()));
            (unconnected.clone(), unconnected, None)
        }
    }
}

type WorkerStorage = (
    Arc<dyn ConversationRepository>,
    Arc<dyn ConversationWriter>,
    Option<Arc<dyn StorageMetrics>>,
);

struct Unconnected(String);

#[async_trait::async_trait]
impl ConversationRepository for Unconnected {
    async fn find_conversation(
        &self,
        _business: BusinessId,
        _id: ConversationId,
    ) -> Result<Option<Conversation>, RepositoryError> {
        Err(RepositoryError::internal(self.0.clone()))
    }

    async fn find_revision(
        &self,
        _business: BusinessId,
        _id: ConversationId,
    ) -> Result<Option<StoredRevision>, RepositoryError> {
        Err(RepositoryError::internal(self.0.clone()))
    }

    async fn list_conversations(
        &self,
        _business: BusinessId,
        _query: InboxQuery,
    ) -> Result<InboxPage, RepositoryError> {
        Err(RepositoryError::internal(self.0.clone()))
    }

    async fn ping(&self) -> Result<(), RepositoryError> {
        Err(RepositoryError::internal(self.0.clone()))
    }
}

#[async_trait::async_trait]
impl ConversationWriter for Unconnected {
    async fn create_conversation(
        &self,
        _business: BusinessId,
        _draft: ConversationDraft,
        _ids: NewConversationIds,
        _now: Timestamp,
        _claim: Option<IdempotencyClaim>,
    ) -> Result<Written<Conversation>, WriteError> {
        Err(WriteError::Storage(RepositoryError::internal(
            self.0.clone(),
        )))
    }

    async fn append_message(
        &self,
        _business: BusinessId,
        _id: ConversationId,
        _draft: MessageDraft,
        _ids: MessageIds,
        _now: Timestamp,
        _claim: Option<IdempotencyClaim>,
    ) -> Result<Written<MessageAppended>, WriteError> {
        Err(WriteError::Storage(RepositoryError::internal(
            self.0.clone(),
        )))
    }

    async fn update_conversation(
        &self,
        _business: BusinessId,
        _id: ConversationId,
        _patch: ConversationPatch,
        _expected: Option<Revision>,
        _now: Timestamp,
    ) -> Result<Updated, WriteError> {
        Err(WriteError::Storage(RepositoryError::internal(
            self.0.clone(),
        )))
    }

    async fn find_message(
        &self,
        _business: BusinessId,
        _conversation: ConversationId,
        _message: MessageId,
    ) -> Result<Option<Message>, RepositoryError> {
        Err(RepositoryError::internal(self.0.clone()))
    }
}
