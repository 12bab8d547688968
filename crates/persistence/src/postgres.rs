//! The PostgreSQL adapter: diesel-async over tokio-postgres (no libpq). Reads share a
//! few pipelined connections (conversations, inbox pages, readiness checks); writes,
//! imports and the event feed use a deadpool pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use diesel::OptionalExtension;
use diesel::SelectableHelper;
use diesel::{ConnectionError, ConnectionResult, QueryResult};
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::future::{BoxFuture, try_join, try_join_all, try_join4};
use pingback_application::{
    ConversationBatches, ConversationImporter, ConversationRepository, ImportError, ImportSummary,
    ReadConnectionsStatus, RepositoryError, StorageGauges, StorageMetrics, StoredRevision,
};
use pingback_domain::{BusinessId, Conversation, ConversationId, InboxPage, InboxQuery};
use pingback_domain::{SecretSeed, WebhookChange, WebhookEndpoint};

use crate::events::{BUMP_POSTGRES, EventRecord, EventTable, EventWiring, LastId, bump_query};
use crate::inbox_read::{self, InboxRow};
use crate::schema::webhook_endpoints;
use crate::webhooks::{
    self, EndpointRow, EndpointTable, Failure, LeaseTerms, LeasedRecord, SaveTerms, count_query,
    delete_query, due_query, endpoint_query, endpoints_query, lease_query, save_query,
    update_settings_query,
};
use tokio::sync::Mutex;
use tokio::time::{Instant, timeout_at};

use crate::error::{DeadlineExceeded, StorageError, classify, is_connection_lost};
use crate::import::{self, BatchIds, Existing, ImportFailure, ImportSink, finish_import};
use crate::pool::Checkout;
use crate::rows::{self, BatchRows, RevisionRecord, existing_query, revision_query, write_batch};
use crate::schema::{DbUuid, Micros};
use crate::settings::{DatabaseSettings, with_connect_timeout};
use crate::snapshot_read::{self, Collected, ConversationRead, ReadRow};

/// PostgreSQL's limit on bind parameters in one statement.
const MAX_BINDS: usize = 65_535;

/// Serialises imports: their conflict checks then see every committed import, so two
/// concurrent imports cannot give one id to two businesses.
const IMPORT_LOCK: &str = "SELECT pg_advisory_xact_lock(7402471198346123286)";

#[derive(Clone)]
pub(crate) struct PostgresStore {
    /// Writes and imports: a connection each, for as long as they need it.
    pool: Pool<AsyncPgConnection>,
    /// Conversation reads and inbox pages: shared, pipelined connections.
    reads: Arc<ReadConnections>,
    budget: Duration,
    events: Arc<EventWiring>,
    /// The database has the `citus` extension: learnt by every new connection
    /// (`setup`), so known before a write runs on one.
    citus: Arc<AtomicBool>,
}

impl PostgresStore {
    /// Builds the pool and the read lanes without connecting: connections are made on
    /// demand.
    pub(crate) fn new(
        url: &str,
        settings: &DatabaseSettings,
        events: &EventWiring,
    ) -> Result<Self, StorageError> {
        let url = with_connect_timeout(url, settings.connect_timeout);
        let statement_timeout_ms = settings.statement_timeout.as_millis();
        let citus = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(ReadConnections {
            url: url.clone(),
            statement_timeout_ms,
            citus: Arc::clone(&citus),
            connect_timeout: settings.connect_timeout,
            lanes: (0..settings.read_connections.max(1))
                .map(|_| Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
        });
        let mut config = ManagerConfig::<AsyncPgConnection>::default();
        // No ping per checkout: a call costs its own round trips only. A connection
        // the server closed is dropped at recycle (tokio-postgres knows it is closed)
        // or fails its next query as Unavailable and is discarded then.
        config.recycling_method = RecyclingMethod::Fast;
        let learns = Arc::clone(&citus);
        config.custom_setup =
            Box::new(move |url| Box::pin(setup(url, statement_timeout_ms, Arc::clone(&learns))));
        let manager = AsyncDieselConnectionManager::new_with_config(url, config);
        Ok(Self {
            pool: crate::pool::build(manager, settings)?,
            reads,
            budget: crate::pool::call_budget(settings),
            events: Arc::new(events.clone()),
            citus,
        })
    }
}

/// A connection is driven by a task on the runtime that opens it; the HTTP adapter gives
/// each actix worker a store of its own so that runtime is always the caller's.
///
/// Per connection: the statement timeout, and generic plans. Every statement here looks
/// rows up by key, so its best plan does not depend on the values; yet the default
/// (`auto`) re-planned the read on every execution (a generic plan's estimate, averaged
/// over all conversation sizes, looks worse than one for the id at hand), which cost
/// more than executing it: forcing generic plans nearly doubled the reads PostgreSQL
/// serves per second (`docs/performance.md`). On Citus, custom plans instead: its
/// router needs the business id's value to pick the shard (`citus::SET_PLAN_CACHE_MODE`),
/// and the writes' statements that Citus can route (`citus` is set when it is there).
async fn setup(
    url: &str,
    statement_timeout_ms: u128,
    citus: Arc<AtomicBool>,
) -> ConnectionResult<AsyncPgConnection> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    SimpleAsyncConnection::batch_execute(
        &mut conn,
        &format!("SET statement_timeout = {statement_timeout_ms}"),
    )
    .await
    .map_err(ConnectionError::CouldntSetupConfiguration)?;
    let installed = diesel::sql_query(crate::citus::SET_PLAN_CACHE_MODE)
        .get_result::<crate::citus::Installed>(&mut conn)
        .await
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
    citus.store(installed.citus, Ordering::Relaxed);
    Ok(conn)
}

type Lane = Mutex<Option<Arc<AsyncPgConnection>>>;

/// The connections conversation reads and inbox pages share.
///
/// A read is one statement (`snapshot_read`, `inbox_read`), so it needs no transaction
/// and hence no connection of its own: concurrent reads on one connection are
/// pipelined by tokio-postgres, and PostgreSQL serves them back to back from one
/// backend. Compared with a pool of exclusive connections that saves the database a
/// switch between backends per read, and both sides read and write many messages per
/// system call (measured: `docs/performance.md`). It also bounds memory: a lane
/// delivers one result at a time, so a worker holds few large results at once.
///
/// Each lane holds one connection, opened on first use and replaced after a failure;
/// reads take the lanes in turn.
struct ReadConnections {
    url: String,
    statement_timeout_ms: u128,
    citus: Arc<AtomicBool>,
    connect_timeout: Duration,
    lanes: Vec<Lane>,
    next: AtomicUsize,
    /// Lanes holding a connection now (metrics).
    open: AtomicUsize,
}

impl ReadConnections {
    fn lane(&self) -> &Lane {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        &self.lanes[n % self.lanes.len()]
    }

    /// The lane's connection, opened (and its statement prepared) if it has none. One
    /// caller connects while the others wait: a database coming back is not stormed.
    async fn connection(&self, lane: &Lane) -> Result<Arc<AsyncPgConnection>, RepositoryError> {
        let mut slot = lane.lock().await;
        if let Some(conn) = &*slot {
            return Ok(Arc::clone(conn));
        }
        let opened = tokio::time::timeout(self.connect_timeout, async {
            let conn = setup(
                &self.url,
                self.statement_timeout_ms,
                Arc::clone(&self.citus),
            )
            .await?;
            // Prepared now, so that a read's first poll sends its Bind and Execute
            // without waiting for a Parse round trip.
            let nil = DbUuid(uuid::Uuid::nil());
            try_join(
                ConversationRead {
                    business: nil,
                    id: nil,
                }
                .load::<ReadRow>(&mut &conn),
                revision_query!(nil, nil).load::<RevisionRecord>(&mut &conn),
            )
            .await
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
            Ok::<_, ConnectionError>(conn)
        })
        .await
        .map_err(|_| RepositoryError::unavailable(DeadlineExceeded(self.connect_timeout)))?
        .map_err(RepositoryError::unavailable)?;
        let conn = Arc::new(opened);
        *slot = Some(Arc::clone(&conn));
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(conn)
    }

    /// Drops the lane's connection if it is still `conn`: reads already sent on it
    /// finish or fail on their own, and the next read opens a new one.
    async fn discard(&self, lane: &Lane, conn: &Arc<AsyncPgConnection>) {
        let mut slot = lane.lock().await;
        if slot
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, conn))
        {
            *slot = None;
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl PostgresStore {
    /// The pool writes and imports take connections from.
    pub(crate) fn pool(&self) -> &Pool<AsyncPgConnection> {
        &self.pool
    }

    /// How long one call may take in all.
    pub(crate) fn budget(&self) -> Duration {
        self.budget
    }

    pub(crate) fn events(&self) -> &Arc<EventWiring> {
        &self.events
    }

    /// Whether the database is a Citus cluster, as its connections found it.
    pub(crate) fn on_citus(&self) -> bool {
        AtomicBool::load(&self.citus, Ordering::Relaxed)
    }

    /// Runs `read` (one statement) on a read lane within the call budget.
    pub(crate) async fn on_read_lane<T: Send>(
        &self,
        read: impl for<'c> Fn(&'c AsyncPgConnection) -> BoxFuture<'c, QueryResult<T>> + Send + Sync,
    ) -> Result<T, RepositoryError> {
        let lane = self.reads.lane();
        let deadline = Instant::now() + self.budget;
        let expired = || RepositoryError::unavailable(DeadlineExceeded(self.budget));
        // A read is idempotent: when the lane's connection turns out to be dead (the
        // server restarted, a proxy dropped it), the read is sent again, once, on a
        // fresh connection rather than failing a request for a connection nobody
        // could use any more.
        let mut retry = true;
        loop {
            let conn = timeout_at(deadline, self.reads.connection(lane))
                .await
                .map_err(|_| expired())??;
            match timeout_at(deadline, read(&conn)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => {
                    if is_connection_lost(&error) {
                        self.reads.discard(lane, &conn).await;
                        if std::mem::take(&mut retry) {
                            continue;
                        }
                    }
                    return Err(classify(error));
                }
                Err(_) => {
                    // No answer in time: the connection may be stuck (a network
                    // partition), and a new one costs little next to that.
                    self.reads.discard(lane, &conn).await;
                    return Err(expired());
                }
            }
        }
    }
}

#[async_trait]
impl ConversationRepository for PostgresStore {
    async fn find_conversation(
        &self,
        business: BusinessId,
        id: ConversationId,
    ) -> Result<Option<Conversation>, RepositoryError> {
        let read = ConversationRead {
            business: DbUuid::from(business),
            id: DbUuid::from(id),
        };
        let rows = self
            .on_read_lane(|conn| {
                Box::pin(async move {
                    let mut conn = conn;
                    Collected::from_rows(read.load_stream::<ReadRow>(&mut conn).await?).await
                })
            })
            .await?;
        snapshot_read::found_by_statement(rows)
    }

    async fn find_revision(
        &self,
        business: BusinessId,
        id: ConversationId,
    ) -> Result<Option<StoredRevision>, RepositoryError> {
        let (business, id) = (DbUuid::from(business), DbUuid::from(id));
        let rows = self
            .on_read_lane(|conn| {
                Box::pin(async move {
                    let mut conn = conn;
                    revision_query!(business, id)
                        .load::<RevisionRecord>(&mut conn)
                        .await
                })
            })
            .await?;
        Ok(rows::revision_found(rows))
    }

    async fn list_conversations(
        &self,
        business: BusinessId,
        query: InboxQuery,
    ) -> Result<InboxPage, RepositoryError> {
        let business = DbUuid::from(business);
        // One statement (`inbox_read`): one snapshot for the page, its attachments and
        // the last event id, on a shared read lane.
        let query = Arc::new(query);
        let rows = self
            .on_read_lane(|conn| {
                let query = Arc::clone(&query);
                Box::pin(async move {
                    let mut conn = conn;
                    inbox_read::statement(business, &query)
                        .load::<InboxRow>(&mut conn)
                        .await
                })
            })
            .await?;
        inbox_read::page(&query, rows).map_err(RepositoryError::internal)
    }

    /// Ready means reads work: the read itself, for an id that cannot exist, on a read
    /// lane (so a missing schema or a database refusing connections is reported).
    async fn ping(&self) -> Result<(), RepositoryError> {
        let nil = BusinessId::from_uuid(uuid::Uuid::nil());
        self.find_conversation(nil, ConversationId::from_uuid(nil.into_uuid()))
            .await
            .map(drop)
    }
}

impl StorageMetrics for PostgresStore {
    fn gauges(&self) -> StorageGauges {
        StorageGauges {
            pool: Some(crate::pool::status(&self.pool)),
            read_connections: Some(ReadConnectionsStatus {
                open: AtomicUsize::load(&self.reads.open, Ordering::Relaxed),
                configured: self.reads.lanes.len(),
            }),
        }
    }
}

#[async_trait]
impl ConversationImporter for PostgresStore {
    async fn import(&self, batches: ConversationBatches) -> Result<ImportSummary, ImportError> {
        let object = self
            .pool
            .get()
            .await
            .map_err(|e| ImportError::Storage(crate::error::classify_pool(e)))?;
        let mut checkout = Checkout::new(object);
        let Some(conn) = checkout.connection() else {
            return Err(ImportError::Storage(RepositoryError::internal(
                "pooled connection missing",
            )));
        };
        let events = Arc::clone(&self.events);
        let result = conn
            .transaction(async move |conn| {
                diesel::sql_query(IMPORT_LOCK).execute(conn).await?;
                import::run(
                    &mut PostgresSink {
                        conn,
                        events: &events,
                    },
                    batches,
                )
                .await
            })
            .await;
        finish_import(checkout, result)
    }
}

struct PostgresSink<'c> {
    conn: &'c mut AsyncPgConnection,
    events: &'c EventWiring,
}

impl ImportSink for PostgresSink<'_> {
    async fn append_events(
        &mut self,
        business: DbUuid,
        events: Vec<pingback_domain::ConversationEvent>,
    ) -> Result<(), ImportFailure> {
        crate::postgres_write::append_events(self.conn, self.events, business, &events).await?;
        Ok(())
    }

    async fn existing(&mut self, ids: BatchIds) -> Result<Existing, ImportFailure> {
        // Planned again for each batch, because an import is the one transaction whose
        // tables grow under its own statements. A lookup's generic plan (`setup`) made
        // while `messages` was empty (a new database, once vacuumed) scanned an index
        // whole, testing each row against the batch's 5,000 ids one by one; kept for
        // every later batch as the import filled the table, it ran a 200,000-message
        // file into the statement timeout. Planned on the table as it is now, it looks
        // the ids up. Custom plans would do too, at twice the import's time.
        SimpleAsyncConnection::batch_execute(self.conn, "DISCARD PLANS").await?;
        let conn = &*self.conn;
        // Four independent lookups, pipelined; each binds its ids as one array.
        let (conversations, customers, messages, attachments) = try_join4(
            async {
                if ids.conversations.is_empty() {
                    return Ok(Vec::new());
                }
                existing_query!(conversations, &ids.conversations)
                    .load(&mut &*conn)
                    .await
            },
            async {
                if ids.customers.is_empty() {
                    return Ok(Vec::new());
                }
                existing_query!(customers, &ids.customers)
                    .load(&mut &*conn)
                    .await
            },
            async {
                if ids.messages.is_empty() {
                    return Ok(Vec::new());
                }
                existing_query!(messages, &ids.messages)
                    .load(&mut &*conn)
                    .await
            },
            async {
                if ids.attachments.is_empty() {
                    return Ok(Vec::new());
                }
                existing_query!(attachments, &ids.attachments)
                    .load(&mut &*conn)
                    .await
            },
        )
        .await?;
        Ok(Existing {
            conversations,
            customers,
            messages,
            attachments,
        })
    }

    async fn write(&mut self, batch: Vec<Conversation>) -> Result<(), ImportFailure> {
        let rows = BatchRows::of(&batch)?;
        let conn = &mut *self.conn;
        // An id list is one array bind parameter here: no need to split it.
        write_batch!(rows, max_binds: MAX_BINDS, max_ids: usize::MAX, |statement| {
            statement.execute(conn).await?
        });
        Ok(())
    }
}

impl EventTable for PostgresStore {
    async fn event_page(
        &self,
        business: DbUuid,
        after: i64,
        limit: i64,
    ) -> Result<(Vec<EventRecord>, Option<i64>), RepositoryError> {
        // One snapshot: the events, and the last id when they alone cannot tell
        // "nothing yet" from "pruned".
        self.on_pool(move |conn| {
            Box::pin(async move {
                conn.build_transaction()
                    .read_only()
                    .repeatable_read()
                    .run(async move |conn| {
                        let records = crate::events::events_query!(business, after, limit)
                            .load::<EventRecord>(conn)
                            .await?;
                        let last = if crate::events::needs_last_id(after, &records) {
                            crate::events::last_event_query!(business)
                                .first::<i64>(conn)
                                .await
                                .optional()?
                        } else {
                            None
                        };
                        Ok((records, last))
                    })
                    .await
            })
        })
        .await
    }

    async fn oldest_event(&self, business: DbUuid) -> Result<Option<i64>, RepositoryError> {
        self.on_read_lane(move |conn| {
            Box::pin(async move {
                let mut conn = conn;
                crate::events::oldest_event_query!(business)
                    .first::<Option<i64>>(&mut conn)
                    .await
            })
        })
        .await
    }

    async fn prune_events(&self, before: Micros) -> Result<usize, RepositoryError> {
        // Old rows only: writers insert new ones and never wait on this.
        self.on_pool(move |conn| {
            Box::pin(async move {
                Ok(
                    crate::events::prune_query!(crate::events::PRUNE_POSTGRES, before)
                        .execute(conn)
                        .await?,
                )
            })
        })
        .await
    }
}

impl PostgresStore {
    /// Runs `work` on a pooled connection within the call budget. The connection goes
    /// back to the pool only when `work` succeeded.
    async fn on_pool<T: Send>(
        &self,
        work: impl for<'c> FnOnce(&'c mut AsyncPgConnection) -> BoxFuture<'c, Result<T, Failure>> + Send,
    ) -> Result<T, RepositoryError> {
        let run = async {
            let object = self.pool.get().await.map_err(crate::error::classify_pool)?;
            let mut checkout = Checkout::new(object);
            let Some(conn) = checkout.connection() else {
                return Err(RepositoryError::internal("pooled connection missing"));
            };
            let value = work(conn).await?;
            checkout.release();
            Ok(value)
        };
        tokio::time::timeout(self.budget, run)
            .await
            .unwrap_or_else(|_| Err(RepositoryError::unavailable(DeadlineExceeded(self.budget))))
    }
}

/// Delivery state is stored after every acknowledged event, so these commits are the
/// delivery's hot path. They need not wait for the WAL to reach the disk:
///
/// - A killed or crashed Pingback process loses nothing: `COMMIT` has returned, the
///   transaction is committed in PostgreSQL, and its WAL is flushed within a few
///   `wal_writer_delay`s whatever the client does.
/// - Only a crash of PostgreSQL itself (or its machine) can lose the last such commits
///   (at most about 3 × `wal_writer_delay`, 600 ms by default). What is lost is then a
///   newer delivery state: the position goes back, and the events after it are
///   delivered again, which at-least-once allows (each keeps its `webhook-id`, so
///   receivers can tell). A lost renewal or release makes the lease end as it would
///   have without it (a lease ending early is the case of a lease that expired: the
///   holder's next `save` finds it taken and stops); a lost give-up leaves the endpoint
///   enabled, and its next failure gives up again (`failing_since` is older still).
///   Nothing ever moves past an event that was not acknowledged, since a commit that
///   survives also had every earlier commit survive (the WAL is replayed in order).
///   For the same reason a synchronous commit made after seeing a `save` (another
///   process's lease of a released endpoint, a `PATCH` under the row lock) flushes that
///   `save` with it: only a state nobody durably acted on can be lost.
/// - Leases are taken with synchronous commits: a lease that seemed taken cannot vanish.
///
/// On Citus the setting is the coordinator's own (`SET` is not propagated to the
/// workers by default): the worker's commit follows its own `synchronous_commit`.
const ASYNC_COMMIT: &str = "SET LOCAL synchronous_commit = off";

impl EndpointTable for PostgresStore {
    async fn insert_endpoint(
        &self,
        endpoint: WebhookEndpoint,
        seed: SecretSeed,
        limit: i64,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        let business = DbUuid::from(endpoint.business_id);
        self.on_pool(move |conn| {
            Box::pin(async move {
                conn.transaction(async move |conn| {
                    // The business's counter row, locked until commit (see
                    // `crate::webhooks`): concurrent creations count one after the
                    // other, and the position read is the last committed event.
                    let after = bump_query!(BUMP_POSTGRES, business, 0_i64)
                        .get_result::<LastId>(conn)
                        .await?
                        .last_event_id;
                    let count = count_query!(business).get_result::<i64>(conn).await?;
                    if count >= limit {
                        return Ok(None);
                    }
                    let mut endpoint = endpoint;
                    endpoint.delivery.delivered_through = after;
                    diesel::insert_into(webhook_endpoints::table)
                        .values(webhooks::new_endpoint(&endpoint, &seed))
                        .execute(conn)
                        .await?;
                    Ok(Some(endpoint))
                })
                .await
            })
        })
        .await
    }

    async fn endpoint_rows(&self, business: DbUuid) -> Result<Vec<EndpointRow>, RepositoryError> {
        self.on_read_lane(move |conn| {
            Box::pin(async move {
                let mut conn = conn;
                endpoints_query!(business)
                    .load::<EndpointRow>(&mut conn)
                    .await
            })
        })
        .await
    }

    async fn endpoint_row(
        &self,
        business: DbUuid,
        id: DbUuid,
    ) -> Result<Option<EndpointRow>, RepositoryError> {
        self.on_read_lane(move |conn| {
            Box::pin(async move {
                let mut conn = conn;
                endpoint_query!(business, id)
                    .first::<EndpointRow>(&mut conn)
                    .await
                    .optional()
            })
        })
        .await
    }

    async fn update_endpoint(
        &self,
        business: DbUuid,
        id: DbUuid,
        change: WebhookChange,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        self.on_pool(move |conn| {
            Box::pin(async move {
                conn.transaction(async move |conn| {
                    use diesel::QueryDsl as _;
                    let Some(row) = endpoint_query!(business, id)
                        .for_update()
                        .first::<EndpointRow>(conn)
                        .await
                        .optional()?
                    else {
                        return Ok(None);
                    };
                    let mut endpoint = webhooks::endpoint(row)?;
                    endpoint.apply(change);
                    update_settings_query!(business, id, &endpoint)
                        .execute(conn)
                        .await?;
                    Ok(Some(endpoint))
                })
                .await
            })
        })
        .await
    }

    async fn delete_endpoint(
        &self,
        business: DbUuid,
        id: DbUuid,
    ) -> Result<usize, RepositoryError> {
        self.on_pool(move |conn| {
            Box::pin(async move { Ok(delete_query!(business, id).execute(conn).await?) })
        })
        .await
    }

    async fn lease_endpoints(
        &self,
        terms: LeaseTerms,
    ) -> Result<Vec<LeasedRecord>, RepositoryError> {
        self.on_pool(move |conn| {
            Box::pin(async move {
                let candidates = due_query!(terms.now, terms.limit)
                    .load::<(DbUuid, DbUuid)>(conn)
                    .await?;
                // Each lease is its own statement (and commit), all pipelined on
                // this connection. Should one fail, those taken already stay
                // taken until they expire: their delivery waits, nothing is lost.
                let shared: &AsyncPgConnection = conn;
                let leased =
                    try_join_all(candidates.into_iter().map(|(business, id)| async move {
                        let mut conn = shared;
                        lease_query!(business, id, terms.owner, terms.now, terms.until)
                            .returning((
                                EndpointRow::as_returning(),
                                webhook_endpoints::secret_seed,
                            ))
                            .get_result::<LeasedRecord>(&mut conn)
                            .await
                            .optional()
                    }))
                    .await?;
                Ok(leased.into_iter().flatten().collect())
            })
        })
        .await
    }

    async fn save_delivery(
        &self,
        terms: SaveTerms,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        self.on_pool(move |conn| {
            Box::pin(async move {
                conn.transaction(async move |conn| {
                    // The setting and the update are sent together (their order within
                    // the transaction does not matter: the setting applies at commit).
                    let shared: &AsyncPgConnection = conn;
                    let ((), row) = try_join(
                        async move {
                            let mut conn = shared;
                            conn.batch_execute(ASYNC_COMMIT).await
                        },
                        async move {
                            let mut conn = shared;
                            save_query!(
                                terms.business,
                                terms.id,
                                terms.owner,
                                &terms.state,
                                terms.disable,
                                terms.until
                            )
                            .returning(EndpointRow::as_returning())
                            .get_result::<EndpointRow>(&mut conn)
                            .await
                            .optional()
                        },
                    )
                    .await?;
                    Ok(row.map(webhooks::endpoint).transpose()?)
                })
                .await
            })
        })
        .await
    }
}
