//! PostgreSQL's side of the write port: each write is one transaction on a pooled
//! connection, the conversation locked with `SELECT … FOR UPDATE`.

use diesel::OptionalExtension;
use diesel::pg::Pg;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use pingback_application::{RepositoryError, StoredResponse, WriteError};
use pingback_domain::{
    Conversation, ConversationEvent, ConversationHead, Customer, MessageAppended,
};

use crate::events::{BUMP_POSTGRES, EventWiring, LastId, Notify, StagedEvents, bump_query};
use crate::pool::Checkout;
use crate::postgres::PostgresStore;
use crate::rows::{self, BatchRows, CustomerRow, HeadRecord, HistoryRecord};
use crate::schema::{DbUuid, Micros, attachments, conversations, customers, messages};
use crate::snapshot_read::{self, Collected, ConversationRead, ReadRow};
use crate::write::{
    self, CLAIM_POSTGRES, HeadUpdate, StoredKey, StoredKeyRecord, WriteFailure, WriteSink,
    claim_query, customer_by_external_id_query, customer_query, head_query, last_message_query,
    message_query, record_query, stored_key_query,
};

/// The business's counter row, locked if nobody holds it and no committed event of the
/// business waits for its id; no row otherwise (also when the business has no counter
/// yet: its first events are staged, and the numbering creates the row).
///
/// Why the pending events count: one of them may be an earlier write of the very
/// conversation being written (its process died, or has not numbered it yet). Numbered
/// here, this write's events would get ids below it, and a reader replaying the log
/// would end on the conversation's older state. Staged, they are numbered after it
/// (`seq` order). The pending rows of writes committed before this one (all writes of
/// its conversation, serialised by the row lock it holds) are in the statement's
/// snapshot.
pub(crate) const LOCK_COUNTER_IF_FREE: &str = "SELECT last_event_id FROM \
    business_event_counters WHERE business_id = $1 AND NOT EXISTS \
    (SELECT 1 FROM pending_events p WHERE p.business_id = $1) FOR UPDATE SKIP LOCKED";

/// What a write transaction did with its events.
const EVENTS_NONE: u8 = 0;
/// Staged in `pending_events`: to be numbered once committed.
const EVENTS_STAGED: u8 = 1;
/// Numbered in the transaction (the counter row was free).
const EVENTS_NUMBERED: u8 = 2;

/// Serialises creations that name one external customer id in one business, so two
/// of them agree on one customer (the lock's key space is separate from the import's).
const EXTERNAL_ID_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended($1, 7402471198346123288))";

/// Runs `$body` (with `$sink` bound) in one transaction on a pooled connection,
/// within the call budget. A connection whose transaction did not end cleanly is
/// closed, never reused.
macro_rules! in_transaction {
    ($store:expr, $business:expr, |$sink:ident| $body:expr) => {{
        let store: &PostgresStore = $store;
        let budget = store.budget();
        let wiring = std::sync::Arc::clone(store.events());
        // What the transaction did with its events (`EVENTS_*`).
        let staged = std::sync::atomic::AtomicU8::new(EVENTS_NONE);
        let staged = &staged;
        let run = async {
            let object = store
                .pool()
                .get()
                .await
                .map_err(|e| WriteError::Storage(crate::error::classify_pool(e)))?;
            let mut checkout = Checkout::new(object);
            // Read once a connection is set up: each learns it (`postgres::setup`).
            let citus = store.on_citus();
            let Some(conn) = checkout.connection() else {
                return Err(WriteError::Storage(RepositoryError::internal(
                    "pooled connection missing",
                )));
            };
            let events = std::sync::Arc::clone(&wiring);
            let result = conn
                .transaction(async move |conn| {
                    let $sink = &mut PostgresSink {
                        conn,
                        events: &events,
                        staged,
                        citus,
                    };
                    $body.await
                })
                .await;
            write::finish_write(checkout, result)
        };
        let result = tokio::time::timeout(budget, run).await.unwrap_or_else(|_| {
            Err(WriteError::Storage(RepositoryError::unavailable(
                crate::error::DeadlineExceeded(budget),
            )))
        });
        match staged.load(std::sync::atomic::Ordering::SeqCst) {
            EVENTS_STAGED if result.is_ok() => {
                // Committed: the write stands whatever happens next. Its events get
                // their ids before it answers (so its client finds them in the feed);
                // if that fails, the sweep of another moment numbers them.
                if let Err(error) = store.settle_events($business).await {
                    tracing::warn!(%error, "numbering committed events failed; the sweep will");
                }
            }
            // Readers in this process learn of it at once; others through NOTIFY.
            EVENTS_NUMBERED if result.is_ok() => wiring.signals.notify($business),
            _ => {}
        }
        result
    }};
}

crate::write::conversation_writer!(PostgresStore);

impl PostgresStore {
    /// The rows of one message of a conversation of a business (the write port's read).
    pub(crate) async fn message_rows(
        &self,
        business: DbUuid,
        conversation: DbUuid,
        message: DbUuid,
    ) -> Result<Vec<HistoryRecord>, RepositoryError> {
        self.on_read_lane(|conn| {
            Box::pin(async move {
                let mut conn = conn;
                message_query!(business, conversation, message)
                    .load::<HistoryRecord>(&mut conn)
                    .await
            })
        })
        .await
    }
}

pub(crate) struct PostgresSink<'c> {
    conn: &'c mut AsyncPgConnection,
    events: &'c EventWiring,
    staged: &'c std::sync::atomic::AtomicU8,
    /// The database is a Citus cluster (`PostgresStore::on_citus`).
    citus: bool,
}

impl PostgresSink<'_> {
    /// Whether this write numbers its events itself, in its transaction: nobody holds
    /// the business's counter row and no event waits for an id. Otherwise (another
    /// writer or a numbering holds the row, or events are pending:
    /// `LOCK_COUNTER_IF_FREE`) it stages them, to be numbered after its commit
    /// (`crate::sequencer`), instead of waiting. Either way ids are handed out under
    /// the row's lock, so the two paths keep one order.
    ///
    /// While a writer of this process numbers the business's events, some are pending
    /// and the statement would find nothing free: the write stages without asking (one
    /// statement less per write under load). Staging is always safe; the statement
    /// decides whenever this process knows of nothing pending.
    async fn numbers_itself(&mut self, business: DbUuid) -> Result<bool, WriteFailure> {
        if self
            .events
            .turns
            .busy(pingback_domain::BusinessId::from(business))
        {
            return Ok(false);
        }
        Ok(diesel::sql_query(LOCK_COUNTER_IF_FREE)
            .bind::<crate::schema::sql::Uuid, _>(business)
            .get_result::<crate::events::LastId>(self.conn)
            .await
            .optional()?
            .is_some())
    }

    /// Numbers `events` in this transaction, holding the counter row until commit.
    async fn number(
        &mut self,
        business: DbUuid,
        events: &[ConversationEvent],
    ) -> Result<(), WriteFailure> {
        append_events(self.conn, self.events, business, events).await?;
        self.staged
            .store(EVENTS_NUMBERED, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Runs `statement`, which stages the write's events, and says so.
    async fn stage<Q>(&mut self, statement: Q) -> Result<(), WriteFailure>
    where
        Q: QueryFragment<Pg> + QueryId + Send,
    {
        statement.execute(self.conn).await?;
        self.staged
            .store(EVENTS_STAGED, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

impl WriteSink for PostgresSink<'_> {
    async fn claim(
        &mut self,
        business: DbUuid,
        key: &str,
        fingerprint: &[u8; 32],
        at: Micros,
        expired_before: Micros,
    ) -> Result<Option<StoredKey>, WriteFailure> {
        let claimed = claim_query!(
            CLAIM_POSTGRES,
            business,
            key,
            fingerprint.as_slice(),
            at,
            expired_before
        )
        .execute(self.conn)
        .await?;
        if claimed == 1 {
            return Ok(None);
        }
        let record = stored_key_query!(business, key)
            .first::<StoredKeyRecord>(self.conn)
            .await?;
        Ok(Some(write::stored_key(record)))
    }

    async fn record(
        &mut self,
        business: DbUuid,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), WriteFailure> {
        record_query!(business, key, response)
            .execute(self.conn)
            .await?;
        Ok(())
    }

    async fn lock_head(
        &mut self,
        business: DbUuid,
        id: DbUuid,
    ) -> Result<Option<ConversationHead>, WriteFailure> {
        use diesel::{ExpressionMethods, QueryDsl};
        // The lock first (on the conversation row alone: a row of the nullable side
        // of an outer join cannot be locked), then the state as it stands under it.
        let locked = conversations::table
            .filter(conversations::business_id.eq(business))
            .filter(conversations::id.eq(id))
            .select(conversations::id)
            .for_update()
            .first::<DbUuid>(self.conn)
            .await
            .optional()?;
        if locked.is_none() {
            return Ok(None);
        }
        let record = head_query!(business, id)
            .first::<HeadRecord>(self.conn)
            .await?;
        let last = last_message_query!(business, id)
            .first::<Micros>(self.conn)
            .await
            .optional()?;
        Ok(Some(rows::head(record, last)?))
    }

    async fn customer(
        &mut self,
        business: DbUuid,
        id: DbUuid,
    ) -> Result<Option<(Customer, i64)>, WriteFailure> {
        let row = customer_query!(business, id)
            .first::<CustomerRow>(self.conn)
            .await
            .optional()?;
        Ok(row.map(rows::stored_customer).transpose()?)
    }

    async fn customer_by_external_id(
        &mut self,
        business: DbUuid,
        external_id: &str,
    ) -> Result<Option<(Customer, i64)>, WriteFailure> {
        diesel::sql_query(EXTERNAL_ID_LOCK)
            .bind::<diesel::sql_types::Text, _>(format!("{}/{external_id}", business.0))
            .execute(self.conn)
            .await?;
        let row = customer_by_external_id_query!(business, external_id)
            .first::<CustomerRow>(self.conn)
            .await
            .optional()?;
        Ok(row.map(rows::stored_customer).transpose()?)
    }

    async fn insert_customer(&mut self, customer: &Customer) -> Result<(), WriteFailure> {
        diesel::insert_into(customers::table)
            .values(rows::customer_row(customer))
            .execute(self.conn)
            .await?;
        Ok(())
    }

    async fn insert_conversation(
        &mut self,
        conversation: &Conversation,
    ) -> Result<(), WriteFailure> {
        let rows = BatchRows::of(std::slice::from_ref(conversation))?;
        diesel::insert_into(conversations::table)
            .values(&rows.conversations)
            .execute(self.conn)
            .await?;
        if !rows.messages.is_empty() {
            diesel::insert_into(messages::table)
                .values(&rows.messages)
                .execute(self.conn)
                .await?;
        }
        if !rows.attachments.is_empty() {
            diesel::insert_into(attachments::table)
                .values(&rows.attachments)
                .execute(self.conn)
                .await?;
        }
        Ok(())
    }

    async fn insert_message(
        &mut self,
        business: DbUuid,
        conversation: DbUuid,
        appended: &MessageAppended,
    ) -> Result<(), WriteFailure> {
        let (message, attachment_rows) =
            rows::message_rows(business, conversation, &appended.message)?;
        diesel::insert_into(messages::table)
            .values(&message)
            .execute(self.conn)
            .await?;
        if !attachment_rows.is_empty() {
            diesel::insert_into(attachments::table)
                .values(&attachment_rows)
                .execute(self.conn)
                .await?;
        }
        Ok(())
    }

    async fn update_head(&mut self, head: &ConversationHead) -> Result<(), WriteFailure> {
        HeadUpdate::new(head, None).execute(self.conn).await?;
        Ok(())
    }

    async fn append_events(
        &mut self,
        business: DbUuid,
        events: Vec<ConversationEvent>,
    ) -> Result<(), WriteFailure> {
        if events.is_empty() {
            return Ok(());
        }
        if self.numbers_itself(business).await? {
            return self.number(business, &events).await;
        }
        let encoded = crate::events::encode(self.events.encoder.as_ref(), &events);
        self.stage(StagedEvents::new(business, &encoded)).await
    }

    async fn update_head_and_append(
        &mut self,
        head: &ConversationHead,
        events: Vec<ConversationEvent>,
    ) -> Result<(), WriteFailure> {
        let business = DbUuid::from(head.business_id);
        // Citus routes no data-modifying `WITH` that inserts to a single shard: there,
        // the two statements of the other stores.
        if events.is_empty() || self.citus {
            self.update_head(head).await?;
            return self.append_events(business, events).await;
        }
        if self.numbers_itself(business).await? {
            self.update_head(head).await?;
            return self.number(business, &events).await;
        }
        let encoded = crate::events::encode(self.events.encoder.as_ref(), &events);
        self.stage(HeadUpdate::new(
            head,
            Some(StagedEvents::new(business, &encoded)),
        ))
        .await
    }

    async fn read(
        &mut self,
        business: DbUuid,
        id: DbUuid,
    ) -> Result<Option<Conversation>, WriteFailure> {
        let rows = Collected::from_rows(
            ConversationRead { business, id }
                .load_stream::<ReadRow>(self.conn)
                .await?,
        )
        .await?;
        snapshot_read::found_by_statement(rows)
            .map_err(|e| WriteFailure::Refused(WriteError::Storage(e)))
    }
}

/// Appends numbered events to a business's log inside the caller's transaction (an
/// import's: one transaction for many conversations, so it numbers its own events
/// rather than stage them), and has PostgreSQL notify listeners when it commits. It
/// holds the business's counter row until it commits, like a numbering does
/// (`crate::sequencer`), which keeps the two in one order.
pub(crate) async fn append_events(
    conn: &mut AsyncPgConnection,
    wiring: &EventWiring,
    business: DbUuid,
    events: &[ConversationEvent],
) -> Result<(), WriteFailure> {
    if events.is_empty() {
        return Ok(());
    }
    let encoded = crate::events::encode(wiring.encoder.as_ref(), events);
    let count = i64::try_from(encoded.len()).unwrap_or(i64::MAX);
    // Queued now, sent at commit either way: before the bump, so it is not one more
    // round trip while this transaction holds the business's counter row (every
    // writer of the business waits for that row until we commit).
    Notify::of(business).execute(conn).await?;
    let last = bump_query!(BUMP_POSTGRES, business, count)
        .get_result::<LastId>(conn)
        .await?
        .last_event_id;
    for chunk in crate::events::rows(business, last - count + 1, &encoded).chunks(5_000) {
        diesel::insert_into(crate::schema::events::table)
            .values(chunk)
            .execute(conn)
            .await?;
    }
    Ok(())
}
