//! Pingback's HTTP adapter (actix-web): routes, bearer-token authentication,
//! problem+json errors, request ids, ETags, metrics and the OpenAPI document.
//! Depends inward only (application, domain): never on storage, the import adapter or
//! the binary. Actix types stay inside this crate: [`serve`] returns this crate's
//! [`Server`], and [`block_on`] gives the binary the runtime the server runs on.

pub mod auth;
mod body_writer;
mod docs_types;
mod envelope;
mod etag;
mod events;
mod example;
mod inbox;
mod metrics;
pub mod openapi;
mod problem;
mod representation;
mod requests;
mod routes;
mod webhooks;
mod writes;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer};

pub use auth::{AuthConfig, AuthConfigError, AuthError, KeyConfig, TokenAuthority};
pub use envelope::{MAX_HEAD_BYTES, REQUEST_ID};
pub use events::{EventRoutes, JsonEvents};
pub use metrics::Metrics;
pub use problem::{ApiError, RETRY_AFTER_SECONDS};
pub use representation::to_json as conversation_body;
pub use routes::ApiState;

/// Limits and timeouts of the HTTP server.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// A client must send its request head within this time or is disconnected.
    pub client_request_timeout: Duration,
    /// In-flight requests get this long to finish on SIGTERM.
    pub shutdown_timeout: Duration,
    /// Worker threads (0 = one per core).
    pub workers: usize,
    /// Connections a worker holds at most; beyond that the listener stops accepting.
    pub max_connections_per_worker: usize,
}

/// A bound HTTP server, not running yet: [`Server::run`] runs it until it stops.
#[must_use = "a server does nothing until it is run"]
pub struct Server(actix_web::dev::Server);

impl Server {
    /// Serves until SIGTERM or SIGINT, then drains in-flight requests (up to the
    /// shutdown timeout). Must run inside [`block_on`].
    pub async fn run(self) -> std::io::Result<()> {
        self.0.await
    }

    /// A handle that stops the server from elsewhere.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle(self.0.handle())
    }
}

/// Stops a running [`Server`].
#[derive(Clone)]
pub struct ServerHandle(actix_web::dev::ServerHandle);

impl ServerHandle {
    /// Stops the server: `graceful` drains in-flight requests first.
    pub async fn stop(&self, graceful: bool) {
        self.0.stop(graceful).await;
    }
}

/// Runs `future` to completion on the runtime the server needs (actix's system
/// runtime): the binary's `serve` runs in it.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    actix_web::rt::System::new().block_on(future)
}

/// Binds the HTTP server to `listener`; [`Server::run`] runs it.
///
/// `state` is called once per worker. Each actix worker runs its own single-threaded
/// runtime, and a database connection belongs to the runtime that opened it, so each
/// worker gets its own storage (its own pool): no connection is ever driven by another
/// worker's runtime, which costs a cross-thread hop per query and dies with that
/// worker at shutdown.
pub fn serve<F>(listener: TcpListener, state: F, settings: &HttpSettings) -> std::io::Result<Server>
where
    F: Fn() -> ApiState + Send + Clone + 'static,
{
    let mut server = HttpServer::new(move || {
        let state = state();
        App::new()
            .wrap(from_fn(envelope::envelope))
            .configure(routes::configure(state))
    })
    .client_request_timeout(settings.client_request_timeout)
    .client_disconnect_timeout(Duration::from_secs(1))
    .shutdown_timeout(settings.shutdown_timeout.as_secs())
    .max_connections(settings.max_connections_per_worker)
    // A response is written in several slices: with Nagle's algorithm, the short
    // tail segment of a slice waited for the client's delayed ACK (40 ms), which
    // showed as p99 1.6x the baseline on 1,000-message reads.
    .tcp_nodelay(true);
    if settings.workers > 0 {
        server = server.workers(settings.workers);
    }
    Ok(Server(server.listen(listener)?.run()))
}

#[cfg(test)]
mod edge_sample;
#[cfg(test)]
mod openapi_tests;
#[cfg(test)]
mod tests;
