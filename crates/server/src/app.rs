//! The composition root: adapters chosen by configuration, wired into use cases and
//! the HTTP server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use pingback_application::{
    ConversationCommands, ConversationRepository, ConversationService, ConversationWriter,
    DeliverySettings, Dispatcher, EventFeed, EventLog, EventSignals, EventsAfter, IdempotencyClaim,
    RepositoryError, SecretKey, StorageMetrics, StoredRevision, SystemClock, Updated,
    WebhookRepository, WebhookService, WriteError, Written,
};
use pingback_domain::{
    BusinessId, Conversation, ConversationDraft, ConversationId, ConversationPatch, InboxPage,
    InboxQuery, Message, MessageAppended, MessageDraft, MessageId, MessageIds, NewConversationIds,
    Revision, SecretSeed, Timestamp, WebhookChange, WebhookEndpoint, WebhookId,
};
use pingback_http::{ApiState, EventRoutes, JsonEvents, Metrics, Server, TokenAuthority};
use pingback_persistence::{DatabaseSettings, EventWiring};
use pingback_webhook_client::WebhookClient;

use crate::settings::{Settings, SettingsError};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("auth: {0}")]
    Auth(#[from] pingback_http::AuthConfigError),
    #[error("database: {0}")]
    Storage(#[from] pingback_persistence::StorageError),
    #[error("webhooks: {0}")]
    WebhookClient(#[from] pingback_webhook_client::BuildError),
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
    /// Flipped on SIGTERM/SIGINT: event streams end (actix drains the rest).
    stopping: tokio::sync::watch::Sender<bool>,
    /// Tasks that run beside the server: event notifications (PostgreSQL), pruning.
    background: Background,
}

struct Background {
    database: DatabaseSettings,
    wiring: EventWiring,
    retention: Duration,
    /// Webhook delivery: what it needs beside the storage.
    delivery: DeliverySettings,
    client: WebhookClient,
    key: SecretKey,
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// How events are encoded and whom commits wake, for this process: the API's JSON
/// encoder, and one set of signals shared by every worker. Readers look again every
/// second on SQLite (another process, e.g. an import, cannot signal this one) and every
/// 30 s on PostgreSQL (LISTEN/NOTIFY relays every process's commits).
pub fn event_wiring(settings: &Settings) -> EventWiring {
    let recheck = match settings.database().backend() {
        Ok(pingback_persistence::Backend::Postgres) => Duration::from_secs(30),
        _ => Duration::from_secs(1),
    };
    EventWiring::new(Arc::new(JsonEvents), EventSignals::new(recheck))
}

impl Application {
    pub fn build(settings: &Settings) -> Result<Self, StartupError> {
        let tokens = Arc::new(TokenAuthority::new(&settings.auth()?)?);
        tokens.self_test()?;
        // Pools are lazy: the server starts while the database is down and answers
        // 503. Connecting once here refuses a bad URL before anything listens; each
        // worker then builds its own (see `pingback_http::serve`).
        let database = settings.database();
        let wiring = event_wiring(settings);
        pingback_persistence::connect(&database, &wiring)?;
        let metrics = Arc::new(
            Metrics::default().with_dropped_log_lines(Arc::new(crate::telemetry::dropped_lines)),
        );
        let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
        let streams = Arc::new(tokio::sync::Semaphore::new(settings.events.max_streams));
        let client = WebhookClient::new(settings.webhook_client())?;
        let key = settings.webhook_key()?;
        let allow_http = settings.webhooks.allow_http;
        let background = Background {
            database: database.clone(),
            wiring: wiring.clone(),
            retention: Duration::from_secs(settings.events.retention_days * 86_400),
            delivery: settings.delivery()?,
            client: client.clone(),
            key: key.clone(),
            stopping: stopping_rx.clone(),
        };
        let state = move || {
            let ports = worker_storage(&database, &wiring);
            // Each worker's storage reports its gauges; `/metrics` sums them.
            if let Some(gauges) = ports.gauges.clone() {
                metrics.track_storage(gauges);
            }
            let conversations = ConversationService::new(ports.repository);
            ApiState {
                commands: ConversationCommands::new(
                    ports.writer,
                    conversations.clone(),
                    Arc::new(SystemClock),
                ),
                conversations,
                events: EventRoutes::new(
                    EventFeed::new(ports.events, wiring.signals.clone()),
                    streams.clone(),
                    stopping_rx.clone(),
                ),
                webhooks: WebhookService::new(
                    ports.webhooks,
                    Arc::new(client.clone()),
                    key.clone(),
                    Arc::new(SystemClock),
                    allow_http,
                ),
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
        Ok(Self {
            server,
            address,
            stopping,
            background,
        })
    }

    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    /// Runs until SIGTERM/SIGINT, then ends event streams, drains in-flight requests
    /// and lets webhook deliveries in flight finish. Beside the server: the relay of
    /// PostgreSQL's event notifications, the sweep that numbers events their writer's
    /// process left pending, the hourly pruning of events past their
    /// retention, and webhook delivery.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Background {
            database,
            wiring,
            retention,
            delivery,
            client,
            key,
            stopping: delivery_stopping,
        } = self.background;
        let mut tasks = Vec::new();
        if let Some(relay) =
            pingback_persistence::relay_notifications(&database, wiring.signals.clone())
        {
            tasks.push(relay);
        }
        if let Some(sweep) = pingback_persistence::sweep_pending_events(&database, &wiring) {
            tasks.push(sweep);
        }
        let mut dispatcher = None;
        if let Ok(storage) = pingback_persistence::connect(&database, &wiring) {
            tasks.push(tokio::spawn(prune_events(
                storage.events.clone(),
                retention,
            )));
            let grace = delivery.lease;
            let deliverer = Arc::new(Dispatcher::new(
                storage.deliveries,
                storage.events,
                Arc::new(client),
                key,
                Arc::new(SystemClock),
                wiring.signals.clone(),
                delivery,
            ));
            dispatcher = Some((tokio::spawn(deliverer.run(delivery_stopping)), grace));
        }
        let stopping = self.stopping.clone();
        tasks.push(tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stopping.send(true);
            // Kept until the process ends: streams see `true`, never a closed channel.
            std::future::pending::<()>().await;
        }));
        let result = self.server.run().await;
        // The server stops on the same signal; deliveries in flight get to finish (and
        // release their leases) within the lease, after which another process could
        // take the endpoint over anyway.
        let _ = self.stopping.send(true);
        if let Some((task, grace)) = dispatcher {
            let abort = task.abort_handle();
            if tokio::time::timeout(grace, task).await.is_err() {
                abort.abort();
            }
        }
        for task in tasks {
            task.abort();
        }
        result
    }
}

/// SIGTERM or SIGINT (actix stops the server on the same signals).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Prunes events past their retention, now and then every hour. A failure is logged
/// and retried at the next round; writers never wait on it (old rows only).
async fn prune_events(log: Arc<dyn EventLog>, retention: Duration) {
    let mut rounds = tokio::time::interval(Duration::from_secs(3600));
    loop {
        rounds.tick().await;
        let micros = i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
        let before = Timestamp::now().plus_micros(-micros);
        match log.prune(before).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "pruned events past their retention"),
            Err(error) => tracing::warn!(%error, "pruning events failed; retrying in an hour"),
        }
    }
}

impl Application {}

struct WorkerPorts {
    repository: Arc<dyn ConversationRepository>,
    writer: Arc<dyn ConversationWriter>,
    events: Arc<dyn EventLog>,
    webhooks: Arc<dyn WebhookRepository>,
    /// None when the worker has no storage (it then reports no gauges).
    gauges: Option<Arc<dyn StorageMetrics>>,
}

/// A worker's ports. The settings were accepted at start-up, so this cannot fail in
/// practice; if it ever did, the worker answers 500s (logged) instead of crashing.
fn worker_storage(database: &DatabaseSettings, wiring: &EventWiring) -> WorkerPorts {
    match pingback_persistence::connect(database, wiring) {
        Ok(storage) => WorkerPorts {
            repository: storage.repository,
            writer: storage.writer,
            events: storage.events,
            webhooks: storage.webhooks,
            gauges: Some(storage.gauges),
        },
        Err(error) => {
            tracing::error!(%error, "a worker could not build its database pool");
            let unconnected = Arc::new(Unconnected(error.to_string()));
            WorkerPorts {
                repository: unconnected.clone(),
                writer: unconnected.clone(),
                events: unconnected.clone(),
                webhooks: unconnected,
                gauges: None,
            }
        }
    }
}

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

#[async_trait::async_trait]
impl EventLog for Unconnected {
    async fn events_after(
        &self,
        _business: BusinessId,
        _after: i64,
        _limit: u16,
    ) -> Result<EventsAfter, RepositoryError> {
        Err(RepositoryError::internal(self.0.clone()))
    }

    async fn oldest_event_id(&self, _business: BusinessId) -> Result<Option<i64>, RepositoryError> {
        Err(RepositoryError::internal(self.0.clone()))
    }

    async fn prune(&self, _before: Timestamp) -> Result<u64, RepositoryError> {
        Err(RepositoryError::internal(self.0.clone()))
    }
}

#[async_trait::async_trait]
impl WebhookRepository for Unconnected {
    async fn create(
        &self,
        _endpoint: WebhookEndpoint,
        _seed: SecretSeed,
        _limit: usize,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        Err(RepositoryError::internal(self.0.clone()))
    }

    async fn list(&self, _business: BusinessId) -> Result<Vec<WebhookEndpoint>, RepositoryError> {
        Err(RepositoryError::internal(self.0.clone()))
    }

    async fn find(
        &self,
        _business: BusinessId,
        _id: WebhookId,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        Err(RepositoryError::internal(self.0.clone()))
    }

    async fn update(
        &self,
        _business: BusinessId,
        _id: WebhookId,
        _change: WebhookChange,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        Err(RepositoryError::internal(self.0.clone()))
    }

    async fn delete(&self, _business: BusinessId, _id: WebhookId) -> Result<bool, RepositoryError> {
        Err(RepositoryError::internal(self.0.clone()))
    }
}
