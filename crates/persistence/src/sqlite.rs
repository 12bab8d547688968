//! The embedded SQLite adapter: Diesel's synchronous SQLite connection behind
//! diesel-async's `SyncConnectionWrapper`, which runs each call on tokio's blocking
//! pool, pooled by deadpool like PostgreSQL.

use std::future::Future as _;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use diesel::OptionalExtension;
use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ConnectionError, ConnectionResult, QueryResult, RunQueryDsl};
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use futures_util::StreamExt as _;
use pingback_application::{
    ConversationBatches, ConversationImporter, ConversationRepository, ImportError, ImportSummary,
    RepositoryError, SourceAborted, StorageGauges, StorageMetrics, StoredRevision,
};
use pingback_domain::{BusinessId, Conversation, ConversationId, InboxPage, InboxQuery};
use pingback_domain::{SecretSeed, WebhookChange, WebhookEndpoint};

use crate::events::{EventRecord, EventTable, EventWiring};
use crate::inbox::{self, InboxAttachment, InboxRecord};
use tokio::sync::oneshot;

use crate::error::{DeadlineExceeded, StorageError, classify, classify_pool};
use crate::import::{self, BatchIds, Existing, ImportFailure, ImportSink, finish_import};
use crate::pool::Checkout;
use crate::rows::{
    self, BatchRows, ConversationRecord, HistoryRecord, RevisionRecord, conversation_query,
    existing_query, history_query, revision_query, write_batch,
};
use crate::schema::webhook_endpoints;
use crate::schema::{DbUuid, Micros};
use crate::settings::DatabaseSettings;
use crate::webhooks::{
    self, EndpointRow, EndpointTable, LeaseTerms, LeasedRecord, SaveTerms, count_query,
    delete_query, due_query, endpoint_query, endpoints_query, lease_query, leased_query,
    save_query, update_settings_query,
};

pub(crate) type SqliteAsync = SyncConnectionWrapper<SqliteConnection>;

/// SQLite's default SQLITE_MAX_VARIABLE_NUMBER (since 3.32).
const MAX_BINDS: usize = 32_766;

/// Ids per `IN (…)` lookup, well under the bind limit.
const LOOKUP_CHUNK: usize = 10_000;

/// Per connection: WAL lets readers run beside the writer; NORMAL sync is durable
/// across application crashes in WAL mode; foreign keys are off by default in SQLite.
/// `busy_timeout` comes first: the other pragmas may need a lock, and a connection
/// opened while a write holds it must wait for it rather than fail at once.
pub(crate) fn pragmas(busy_timeout: Duration) -> String {
    format!(
        "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
        busy_timeout.as_millis()
    )
}

#[derive(Clone)]
pub(crate) struct SqliteStore {
    pool: Pool<SqliteAsync>,
    budget: Duration,
    events: std::sync::Arc<EventWiring>,
}

impl SqliteStore {
    /// `uri` is a `file:` URI that does not create the file: serving never invents an
    /// empty database (`migrate` creates it).
    pub(crate) fn new(
        uri: String,
        settings: &DatabaseSettings,
        events: &EventWiring,
    ) -> Result<Self, StorageError> {
        let pragmas = pragmas(settings.statement_timeout);
        let mut config = ManagerConfig::<SqliteAsync>::default();
        config.recycling_method = RecyclingMethod::Fast;
        config.custom_setup = Box::new(move |url| {
            let (url, pragmas) = (url.to_owned(), pragmas.clone());
            // Detached: deadpool drops this future when its create timeout fires.
            Box::pin(async move {
                tokio::spawn(async move { pooled_setup(&url, &pragmas).await })
                    .await
                    .unwrap_or_else(|e| Err(ConnectionError::BadConnection(e.to_string())))
            })
        });
        let manager = AsyncDieselConnectionManager::new_with_config(uri, config);
        Ok(Self {
            pool: crate::pool::build(manager, settings)?,
            budget: crate::pool::call_budget(settings),
            events: std::sync::Arc::new(events.clone()),
        })
    }
}

/// Opens a connection with the per-connection settings.
pub(crate) async fn setup(url: &str, pragmas: &str) -> ConnectionResult<SqliteAsync> {
    let mut conn = SqliteAsync::establish(url).await?;
    conn.batch_execute(pragmas)
        .await
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// A pooled connection also prepares the read statements: a database that is not
/// migrated yet gives no connection, hence `Unavailable` (as with PostgreSQL) rather
/// than a failing query per request.
async fn pooled_setup(url: &str, pragmas: &str) -> ConnectionResult<SqliteAsync> {
    let mut conn = setup(url, pragmas).await?;
    conn.spawn_blocking(|conn| {
        let nil = DbUuid(uuid::Uuid::nil());
        conversation_query!(nil, nil).load::<ConversationRecord>(conn)?;
        history_query!(nil, nil).load::<HistoryRecord>(conn)?;
        Ok(())
    })
    .await
    .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

impl SqliteStore {
    pub(crate) fn pool(&self) -> &Pool<SqliteAsync> {
        &self.pool
    }

    pub(crate) fn budget(&self) -> Duration {
        self.budget
    }

    pub(crate) fn events(&self) -> &std::sync::Arc<EventWiring> {
        &self.events
    }

    /// Runs `work` on a pooled connection's blocking thread within the call's budget.
    ///
    /// `SyncConnectionWrapper` futures must run to completion: dropping one early
    /// blocks the thread until its blocking task ends (`block_in_place`), which panics
    /// on a current-thread runtime such as actix's workers. Each call therefore runs
    /// in a task of its own; past the budget (or if the caller goes away) the caller
    /// stops waiting, the task finishes and returns its connection to the pool.
    pub(crate) async fn call<R: Send + 'static>(
        &self,
        work: impl FnOnce(&mut SqliteConnection) -> QueryResult<R> + Send + 'static,
    ) -> Result<R, RepositoryError> {
        let pool = self.pool.clone();
        let task = tokio::spawn(async move {
            let mut checkout = Checkout::new(pool.get().await.map_err(classify_pool)?);
            let Some(conn) = checkout.connection() else {
                return Err(RepositoryError::internal("pooled connection missing"));
            };
            let value = conn.spawn_blocking(work).await.map_err(classify)?;
            checkout.release();
            Ok(value)
        });
        match tokio::time::timeout(self.budget, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(RepositoryError::internal(join)),
            Err(_) => Err(RepositoryError::unavailable(DeadlineExceeded(self.budget))),
        }
    }
}

#[async_trait]
impl ConversationRepository for SqliteStore {
    async fn find_conversation(
        &self,
        business: BusinessId,
        id: ConversationId,
    ) -> Result<Option<Conversation>, RepositoryError> {
        let (business, id) = (DbUuid::from(business), DbUuid::from(id));
        let (conversation, history) = self
            .call(move |conn| {
                // One read transaction: both queries see the same snapshot.
                conn.transaction(|conn| {
                    let conversation =
                        conversation_query!(business, id).load::<ConversationRecord>(conn)?;
                    if conversation.is_empty() {
                        return Ok((conversation, Vec::new()));
                    }
                    let history = history_query!(business, id).load::<HistoryRecord>(conn)?;
                    Ok((conversation, history))
                })
            })
            .await?;
        rows::found_by_queries(conversation, history)
    }

    async fn find_revision(
        &self,
        business: BusinessId,
        id: ConversationId,
    ) -> Result<Option<StoredRevision>, RepositoryError> {
        let (business, id) = (DbUuid::from(business), DbUuid::from(id));
        let rows = self
            .call(move |conn| revision_query!(business, id).load::<RevisionRecord>(conn))
            .await?;
        Ok(rows::revision_found(rows))
    }

    async fn list_conversations(
        &self,
        business: BusinessId,
        query: InboxQuery,
    ) -> Result<InboxPage, RepositoryError> {
        let business = DbUuid::from(business);
        let query = std::sync::Arc::new(query);
        let statement = std::sync::Arc::clone(&query);
        let (records, attachments, last_event_id) = self
            .call(move |conn| {
                // One read transaction: the page, its attachments and the last event
                // id see one snapshot.
                conn.transaction(|conn| {
                    let records = inbox::inbox_query!(diesel::sqlite::Sqlite, business, &statement)
                        .load::<InboxRecord>(conn)?;
                    let latest = inbox::latest_messages(&statement, &records);
                    let attachments = if latest.is_empty() {
                        Vec::new()
                    } else {
                        inbox::inbox_attachments_query!(business, &latest)
                            .load::<InboxAttachment>(conn)?
                    };
                    let last_event_id = crate::events::last_event_query!(business)
                        .first::<i64>(conn)
                        .optional()?;
                    Ok((records, attachments, last_event_id))
                })
            })
            .await?;
        inbox::page(&query, records, attachments, last_event_id.unwrap_or(0))
            .map_err(RepositoryError::internal)
    }

    async fn ping(&self) -> Result<(), RepositoryError> {
        self.call(|conn| conn.batch_execute("SELECT 1")).await
    }
}

impl StorageMetrics for SqliteStore {
    fn gauges(&self) -> StorageGauges {
        StorageGauges {
            pool: Some(crate::pool::status(&self.pool)),
            read_connections: None,
        }
    }
}

#[async_trait]
impl ConversationImporter for SqliteStore {
    async fn import(&self, batches: ConversationBatches) -> Result<ImportSummary, ImportError> {
        // Detached like `call`; dropping this future still aborts the import, through
        // the source: the task then rolls back.
        let (caller, gone) = oneshot::channel::<()>();
        let batches = abort_when_dropped(batches, gone);
        let pool = self.pool.clone();
        let events = std::sync::Arc::clone(&self.events);
        let task = tokio::spawn(async move {
            let object = pool
                .get()
                .await
                .map_err(|e| ImportError::Storage(classify_pool(e)))?;
            let mut checkout = Checkout::new(object);
            let Some(conn) = checkout.connection() else {
                return Err(ImportError::Storage(RepositoryError::internal(
                    "pooled connection missing",
                )));
            };
            // IMMEDIATE takes the write lock up front: one writer at a time, and a
            // concurrent import waits (busy_timeout) instead of failing on lock upgrade.
            let result = conn
                .immediate_transaction(async move |conn| {
                    import::run(
                        &mut SqliteSink {
                            conn,
                            events: &events,
                        },
                        batches,
                    )
                    .await
                })
                .await;
            finish_import(checkout, result)
        });
        let result = task
            .await
            .unwrap_or_else(|join| Err(ImportError::Storage(RepositoryError::internal(join))));
        drop(caller);
        result
    }
}

/// Ends `batches` with `SourceAborted` once `caller` is dropped (the importing future
/// was cancelled), so the detached import rolls back instead of committing.
fn abort_when_dropped(
    mut batches: ConversationBatches,
    caller: oneshot::Receiver<()>,
) -> ConversationBatches {
    let mut caller = Some(caller);
    Box::pin(futures_util::stream::poll_fn(move |cx| {
        if let Some(receiver) = caller.as_mut()
            && Pin::new(receiver).poll(cx).is_ready()
        {
            caller = None;
            return Poll::Ready(Some(Err(SourceAborted("the import was cancelled".into()))));
        }
        batches.poll_next_unpin(cx)
    }))
}

struct SqliteSink<'c> {
    conn: &'c mut SqliteAsync,
    events: &'c EventWiring,
}

impl ImportSink for SqliteSink<'_> {
    async fn append_events(
        &mut self,
        business: DbUuid,
        events: Vec<pingback_domain::ConversationEvent>,
    ) -> Result<(), ImportFailure> {
        let encoded = crate::events::encode(self.events.encoder.as_ref(), &events);
        self.conn
            .spawn_blocking(move |conn| {
                Ok(crate::sqlite_write::append_events(conn, business, &encoded))
            })
            .await??;
        Ok(())
    }

    async fn existing(&mut self, ids: BatchIds) -> Result<Existing, ImportFailure> {
        Ok(self
            .conn
            .spawn_blocking(move |conn| {
                let mut existing = Existing::default();
                for chunk in ids.conversations.chunks(LOOKUP_CHUNK) {
                    existing
                        .conversations
                        .append(&mut existing_query!(conversations, chunk).load(conn)?);
                }
                for chunk in ids.customers.chunks(LOOKUP_CHUNK) {
                    existing
                        .customers
                        .append(&mut existing_query!(customers, chunk).load(conn)?);
                }
                for chunk in ids.messages.chunks(LOOKUP_CHUNK) {
                    existing
                        .messages
                        .append(&mut existing_query!(messages, chunk).load(conn)?);
                }
                for chunk in ids.attachments.chunks(LOOKUP_CHUNK) {
                    existing
                        .attachments
                        .append(&mut existing_query!(attachments, chunk).load(conn)?);
                }
                Ok(existing)
            })
            .await?)
    }

    async fn write(&mut self, batch: Vec<Conversation>) -> Result<(), ImportFailure> {
        self.conn
            .spawn_blocking(move |conn| Ok(write(conn, &batch)))
            .await??;
        Ok(())
    }
}

fn write(conn: &mut SqliteConnection, batch: &[Conversation]) -> Result<(), ImportFailure> {
    let rows = BatchRows::of(batch)?;
    write_batch!(rows, max_binds: MAX_BINDS, max_ids: LOOKUP_CHUNK, |statement| {
        statement.execute(conn)?
    });
    Ok(())
}

impl EventTable for SqliteStore {
    async fn event_page(
        &self,
        business: DbUuid,
        after: i64,
        limit: i64,
    ) -> Result<(Vec<EventRecord>, Option<i64>), RepositoryError> {
        self.call(move |conn| {
            conn.transaction(|conn| {
                let records = crate::events::events_query!(business, after, limit)
                    .load::<EventRecord>(conn)?;
                let last = if crate::events::needs_last_id(after, &records) {
                    crate::events::last_event_query!(business)
                        .first::<i64>(conn)
                        .optional()?
                } else {
                    None
                };
                Ok((records, last))
            })
        })
        .await
    }

    async fn oldest_event(&self, business: DbUuid) -> Result<Option<i64>, RepositoryError> {
        self.call(move |conn| {
            crate::events::oldest_event_query!(business).first::<Option<i64>>(conn)
        })
        .await
    }

    async fn prune_events(&self, before: Micros) -> Result<usize, RepositoryError> {
        self.call(move |conn| {
            crate::events::prune_query!(crate::events::PRUNE_SQLITE, before).execute(conn)
        })
        .await
    }
}

/// Webhooks: every change is one IMMEDIATE transaction (the database's write lock,
/// taken up front, is the per-business lock the port asks for, and more).
impl EndpointTable for SqliteStore {
    async fn insert_endpoint(
        &self,
        endpoint: WebhookEndpoint,
        seed: SecretSeed,
        limit: i64,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        let business = DbUuid::from(endpoint.business_id);
        self.call(move |conn| {
            conn.immediate_transaction(|conn| {
                let count = count_query!(business).get_result::<i64>(conn)?;
                if count >= limit {
                    return Ok(None);
                }
                let after = crate::events::last_event_query!(business)
                    .first::<i64>(conn)
                    .optional()?
                    .unwrap_or(0);
                let mut endpoint = endpoint;
                endpoint.delivery.delivered_through = after;
                diesel::insert_into(webhook_endpoints::table)
                    .values(webhooks::new_endpoint(&endpoint, &seed))
                    .execute(conn)?;
                Ok(Some(endpoint))
            })
        })
        .await
    }

    async fn endpoint_rows(&self, business: DbUuid) -> Result<Vec<EndpointRow>, RepositoryError> {
        self.call(move |conn| endpoints_query!(business).load::<EndpointRow>(conn))
            .await
    }

    async fn endpoint_row(
        &self,
        business: DbUuid,
        id: DbUuid,
    ) -> Result<Option<EndpointRow>, RepositoryError> {
        self.call(move |conn| {
            endpoint_query!(business, id)
                .first::<EndpointRow>(conn)
                .optional()
        })
        .await
    }

    async fn update_endpoint(
        &self,
        business: DbUuid,
        id: DbUuid,
        change: WebhookChange,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        let updated = self
            .call(move |conn| {
                conn.immediate_transaction(|conn| {
                    let Some(row) = endpoint_query!(business, id)
                        .first::<EndpointRow>(conn)
                        .optional()?
                    else {
                        return Ok(Ok(None));
                    };
                    // Decoded before anything is written: a corrupt row changes nothing.
                    let mut endpoint = match webhooks::endpoint(row) {
                        Ok(endpoint) => endpoint,
                        Err(corrupt) => return Ok(Err(corrupt)),
                    };
                    endpoint.apply(change);
                    update_settings_query!(business, id, &endpoint).execute(conn)?;
                    Ok(Ok(Some(endpoint)))
                })
            })
            .await?;
        updated.map_err(RepositoryError::internal)
    }

    async fn delete_endpoint(
        &self,
        business: DbUuid,
        id: DbUuid,
    ) -> Result<usize, RepositoryError> {
        self.call(move |conn| delete_query!(business, id).execute(conn))
            .await
    }

    async fn lease_endpoints(
        &self,
        terms: LeaseTerms,
    ) -> Result<Vec<LeasedRecord>, RepositoryError> {
        self.call(move |conn| {
            conn.immediate_transaction(|conn| {
                let candidates =
                    due_query!(terms.now, terms.limit).load::<(DbUuid, DbUuid)>(conn)?;
                let mut leased = Vec::with_capacity(candidates.len());
                for (business, id) in candidates {
                    // The same conditional UPDATE as PostgreSQL's, though here the
                    // write lock already keeps other processes out.
                    if lease_query!(business, id, terms.owner, terms.now, terms.until)
                        .execute(conn)?
                        == 1
                    {
                        leased.push(leased_query!(business, id).first::<LeasedRecord>(conn)?);
                    }
                }
                Ok(leased)
            })
        })
        .await
    }

    async fn save_delivery(
        &self,
        terms: SaveTerms,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        let row = self
            .call(move |conn| {
                conn.immediate_transaction(|conn| {
                    let saved = save_query!(
                        terms.business,
                        terms.id,
                        terms.owner,
                        &terms.state,
                        terms.disable,
                        terms.until
                    )
                    .execute(conn)?;
                    if saved == 0 {
                        return Ok(None);
                    }
                    endpoint_query!(terms.business, terms.id)
                        .first::<EndpointRow>(conn)
                        .map(Some)
                })
            })
            .await?;
        webhooks::found(row)
    }
}
