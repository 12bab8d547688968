//! Pingback's storage adapters: the application's ports over PostgreSQL (production,
//! Citus-ready keys) and embedded SQLite (development, single node), with Diesel.
//! Depends inward only (application, domain): never on HTTP, the import adapter or the
//! binary, and no Diesel type leaves this crate.
//!
//! The adapter is chosen by the URL's scheme. [`connect`] never touches the database
//! (the service starts while it is down and answers 503 until it is back);
//! [`migrate`] is an explicit step.
//!
//! - Reads filter by business and id, always. PostgreSQL answers a read with ONE
//!   statement (the conversation with its customer, the history, the attachments, as
//!   `UNION ALL` branches: see `snapshot_read`), which sees one snapshot without a
//!   transaction, so a concurrent import is seen entirely or not at all; it runs on a
//!   few read connections shared, pipelined, by concurrent reads. So does an inbox page
//!   (one statement too: `inbox_read`). Writes, imports and the event feed use the
//!   pool (on SQLite, everything does).
//! - Every call is bounded by `pool_wait_timeout + statement_timeout`; waiting for the
//!   pool, failing to connect, timeouts and lost connections are
//!   [`RepositoryError::Unavailable`](pingback_application::RepositoryError), everything
//!   else `Internal`. A connection whose call did not finish cleanly is closed, never
//!   reused; a database not migrated yet gives no connection (Unavailable).
//! - An import is one transaction (imports take turns); each batch is checked for ids
//!   owned elsewhere with set-based lookups before anything of it is written.

use std::sync::Arc;

use pingback_application::{
    ConversationImporter, ConversationRepository, ConversationWriter, DeliveryQueue, EventLog,
    StorageMetrics, WebhookRepository,
};

use crate::events::{EventFeed, EventTable};
use crate::webhooks::{EndpointTable, Webhooks};

mod citus;
mod error;
mod events;
mod import;
mod inbox;
mod inbox_read;
mod migrations;
mod pool;
mod postgres;
mod postgres_write;
mod rows;
mod schema;
mod sequencer;
mod settings;
mod snapshot_read;
mod sqlite;
mod sqlite_write;
mod webhooks;
mod write;

#[cfg(feature = "testing")]
pub mod testing;

pub use error::StorageError;
pub use events::{EventWiring, relay_notifications};
pub use sequencer::{settle_stragglers, sweep_pending_events};
pub use settings::{Backend, DatabaseSettings};

/// The ports, wired to one database.
#[derive(Clone)]
pub struct Storage {
    pub repository: Arc<dyn ConversationRepository>,
    pub importer: Arc<dyn ConversationImporter>,
    pub writer: Arc<dyn ConversationWriter>,
    pub events: Arc<dyn EventLog>,
    /// Webhook endpoints as the API manages them.
    pub webhooks: Arc<dyn WebhookRepository>,
    /// Webhook endpoints as delivery leases and advances them.
    pub deliveries: Arc<dyn DeliveryQueue>,
    /// The pool's and the read connections' gauges, for metrics.
    pub gauges: Arc<dyn StorageMetrics>,
    pub backend: Backend,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Every port, served by one adapter's store.
    fn of<S>(store: S, backend: Backend) -> Self
    where
        S: ConversationRepository
            + ConversationImporter
            + ConversationWriter
            + EventTable
            + EndpointTable
            + StorageMetrics
            + Clone,
    {
        Self {
            repository: Arc::new(store.clone()),
            importer: Arc::new(store.clone()),
            writer: Arc::new(store.clone()),
            events: Arc::new(EventFeed(store.clone())),
            webhooks: Arc::new(Webhooks(store.clone())),
            deliveries: Arc::new(Webhooks(store.clone())),
            gauges: Arc::new(store),
            backend,
        }
    }
}

/// Builds the connection pool lazily: succeeds even when the database is down.
///
/// `events`: how events are encoded when appended, and whom to tell after a commit.
pub fn connect(settings: &DatabaseSettings, events: &EventWiring) -> Result<Storage, StorageError> {
    settings.validate()?;
    match settings.target()? {
        settings::Target::Postgres(url) => {
            let store = postgres::PostgresStore::new(&url, settings, events)?;
            Ok(Storage::of(store, Backend::Postgres))
        }
        settings::Target::Sqlite(path) => {
            let store =
                sqlite::SqliteStore::new(settings::sqlite_uri(&path, "rw"), settings, events)?;
            Ok(Storage::of(store, Backend::Sqlite))
        }
    }
}

/// Applies pending migrations (`migrations/postgres` or `migrations/sqlite`, embedded
/// at build time); for SQLite, creates the file and its folder. Returns the versions
/// applied, empty when the database was up to date.
pub async fn migrate(settings: &DatabaseSettings) -> Result<Vec<String>, StorageError> {
    migrations::migrate(settings).await
}

/// Reverts every applied migration (tests of the down migrations).
pub async fn revert_all(settings: &DatabaseSettings) -> Result<(), StorageError> {
    migrations::revert_all(settings).await
}
