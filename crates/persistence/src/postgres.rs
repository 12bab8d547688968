//! The PostgreSQL adapter: diesel-async over tokio-postgres (no libpq), pooled by
//! deadpool.

use std::time::Duration;

use async_trait::async_trait;
use diesel::{ConnectionError, ConnectionResult, ExpressionMethods, QueryDsl};
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::future::{try_join3, try_join4};
use pingback_application::{
    ConversationBatches, ConversationImporter, ConversationRepository, ImportError, ImportSummary,
    PoolStatus, RepositoryError,
};
use pingback_domain::{BusinessId, Conversation, ConversationId};

use crate::error::StorageError;
use crate::import::{self, BatchIds, Existing, ImportFailure, ImportSink, finish_import};
use crate::pool::{Checkout, with_connection};
use crate::rows::{
    self, BatchRows, ConversationRecord, HistoryRecord, conversation_query, history_query,
};
use crate::schema::{DbUuid, attachments, conversations, customers, messages};
use crate::settings::{DatabaseSettings, with_connect_timeout};

/// PostgreSQL's limit on bind parameters in one statement.
const MAX_BINDS: usize = 65_535;

/// Serialises imports: their conflict checks then see every committed import, so two
/// concurrent imports cannot give one id to two businesses.
const IMPORT_LOCK: &str = "SELECT pg_advisory_xact_lock(7402471198346123286)";

/// A snapshot for the two reads, so a concurrent import is seen entirely or not at all.
const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

#[derive(Clone)]
pub(crate) struct PostgresStore {
    pool: Pool<AsyncPgConnection>,
    budget: Duration,
}

impl PostgresStore {
    /// Builds the pool without connecting: connections are made on demand.
    pub(crate) fn new(url: &str, settings: &DatabaseSettings) -> Result<Self, StorageError> {
        let url = with_connect_timeout(url, settings.connect_timeout);
        let statement_timeout_ms = settings.statement_timeout.as_millis();
        let mut config = ManagerConfig::<AsyncPgConnection>::default();
        // No ping per checkout: a request costs its own round trips only. A connection
        // the server closed is dropped at recycle (tokio-postgres knows it is closed)
        // or fails its next query as Unavailable and is discarded then.
        config.recycling_method = RecyclingMethod::Fast;
        config.custom_setup = Box::new(move |url| Box::pin(setup(url, statement_timeout_ms)));
        let manager = AsyncDieselConnectionManager::new_with_config(url, config);
        Ok(Self {
            pool: crate::pool::build(manager, settings)?,
            budget: crate::pool::call_budget(settings),
        })
    }
}

/// A connection is driven by a task on the runtime that opens it; the HTTP adapter gives
/// each actix worker a pool of its own so that runtime is always the caller's.
///
/// Per connection: the statement timeout, and the read statements prepared up front so
/// that every read pipelines all its messages (see `find_conversation`).
async fn setup(url: &str, statement_timeout_ms: u128) -> ConnectionResult<AsyncPgConnection> {
    let conn = AsyncPgConnection::establish(url).await?;
    let set_timeout = format!("SET statement_timeout = {statement_timeout_ms}");
    let nil = DbUuid(uuid::Uuid::nil());
    try_join3(
        SimpleAsyncConnection::batch_execute(&mut &conn, &set_timeout),
        conversation_query!(nil, nil).load::<ConversationRecord>(&mut &conn),
        history_query!(nil, nil).load::<HistoryRecord>(&mut &conn),
    )
    .await
    .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

#[async_trait]
impl ConversationRepository for PostgresStore {
    async fn find_conversation(
        &self,
        business: BusinessId,
        id: ConversationId,
    ) -> Result<Option<Conversation>, RepositoryError> {
        let (business, id) = (DbUuid(business.into_uuid()), DbUuid(id.into_uuid()));
        let (conversation, history) = with_connection(&self.pool, self.budget, |conn| {
            Box::pin(async move {
                let conn = &*conn;
                // All four are sent before any answer is awaited: one round trip. The
                // statements are prepared at connect, so none waits on a Parse and
                // COMMIT cannot overtake them.
                let (_, conversation, history, _) = try_join4(
                    SimpleAsyncConnection::batch_execute(&mut &*conn, BEGIN_READ),
                    conversation_query!(business, id).load::<ConversationRecord>(&mut &*conn),
                    history_query!(business, id).load::<HistoryRecord>(&mut &*conn),
                    SimpleAsyncConnection::batch_execute(&mut &*conn, "COMMIT"),
                )
                .await?;
                Ok((conversation, history))
            })
        })
        .await?;
        rows::found(conversation, history)
    }

    async fn ping(&self) -> Result<(), RepositoryError> {
        with_connection(&self.pool, self.budget, |conn| {
            Box::pin(conn.batch_execute("SELECT 1"))
        })
        .await
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        Some(crate::pool::status(&self.pool))
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
        let result = conn
            .transaction(async move |conn| {
                diesel::sql_query(IMPORT_LOCK).execute(conn).await?;
                import::run(&mut PostgresSink { conn }, batches).await
            })
            .await;
        finish_import(checkout, result)
    }
}

struct PostgresSink<'c> {
    conn: &'c mut AsyncPgConnection,
}

impl ImportSink for PostgresSink<'_> {
    async fn existing(&mut self, ids: BatchIds) -> Result<Existing, ImportFailure> {
        let conn = &*self.conn;
        // Four independent lookups, pipelined.
        let (conversations, customers, messages, attachments) = try_join4(
            async {
                if ids.conversations.is_empty() {
                    return Ok(Vec::new());
                }
                conversations::table
                    .filter(conversations::id.eq_any(&ids.conversations))
                    .select((conversations::business_id, conversations::id))
                    .load::<(DbUuid, DbUuid)>(&mut &*conn)
                    .await
            },
            async {
                if ids.customers.is_empty() {
                    return Ok(Vec::new());
                }
                customers::table
                    .filter(customers::id.eq_any(&ids.customers))
                    .select((customers::business_id, customers::id))
                    .load::<(DbUuid, DbUuid)>(&mut &*conn)
                    .await
            },
            async {
                if ids.messages.is_empty() {
                    return Ok(Vec::new());
                }
                messages::table
                    .filter(messages::id.eq_any(&ids.messages))
                    .select((
                        messages::business_id,
                        messages::conversation_id,
                        messages::id,
                    ))
                    .load::<(DbUuid, DbUuid, DbUuid)>(&mut &*conn)
                    .await
            },
            async {
                if ids.attachments.is_empty() {
                    return Ok(Vec::new());
                }
                attachments::table
                    .filter(attachments::id.eq_any(&ids.attachments))
                    .select((
                        attachments::business_id,
                        attachments::conversation_id,
                        attachments::message_id,
                        attachments::id,
                    ))
                    .load::<(DbUuid, DbUuid, DbUuid, DbUuid)>(&mut &*conn)
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
        for chunk in rows.customers.chunks(MAX_BINDS / rows::CUSTOMER_COLUMNS) {
            diesel::insert_into(customers::table)
                .values(chunk)
                .on_conflict((customers::business_id, customers::id))
                .do_update()
                .set(crate::rows::customer_upsert!())
                .execute(conn)
                .await?;
        }
        for chunk in rows
            .conversations
            .chunks(MAX_BINDS / rows::CONVERSATION_COLUMNS)
        {
            diesel::insert_into(conversations::table)
                .values(chunk)
                .on_conflict((conversations::business_id, conversations::id))
                .do_update()
                .set(crate::rows::conversation_upsert!())
                .execute(conn)
                .await?;
        }
        for (business, ids) in &rows.replaced {
            diesel::delete(
                messages::table
                    .filter(messages::business_id.eq(business))
                    .filter(messages::conversation_id.eq_any(ids)),
            )
            .execute(conn)
            .await?;
        }
        for chunk in rows.messages.chunks(MAX_BINDS / rows::MESSAGE_COLUMNS) {
            diesel::insert_into(messages::table)
                .values(chunk)
                .execute(conn)
                .await?;
        }
        for chunk in rows
            .attachments
            .chunks(MAX_BINDS / rows::ATTACHMENT_COLUMNS)
        {
            diesel::insert_into(attachments::table)
                .values(chunk)
                .execute(conn)
                .await?;
        }
        Ok(())
    }
}
