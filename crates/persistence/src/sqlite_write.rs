//! SQLite's side of the write port: each write is one `IMMEDIATE` transaction (SQLite
//! has one writer at a time, so the write lock taken up front is the conversation's
//! lock too), run in a task of its own like every SQLite call.

use diesel::sqlite::SqliteConnection;
use diesel::{OptionalExtension, RunQueryDsl};
use pingback_application::{RepositoryError, StoredResponse, WriteError};
use pingback_domain::{
    Conversation, ConversationEvent, ConversationHead, Customer, MessageAppended,
};

use crate::error::classify_pool;
use crate::events::{BUMP_SQLITE, EventWiring, LastId, bump_query};
use crate::pool::Checkout;
use crate::rows::{
    self, BatchRows, ConversationRecord, CustomerRow, HeadRecord, HistoryRecord,
    conversation_query, history_query,
};
use crate::schema::{DbUuid, Micros, attachments, conversations, customers, messages};
use crate::sqlite::{SqliteAsync, SqliteStore};
use crate::write::{
    self, CLAIM_SQLITE, StoredKey, StoredKeyRecord, WriteFailure, WriteSink, claim_query,
    customer_by_external_id_query, customer_query, head_query, last_message_query, message_query,
    record_query, stored_key_query,
};

/// Runs `$body` (with `$sink` bound) in one IMMEDIATE transaction on a pooled
/// connection, in a task of its own, within the call budget.
macro_rules! in_transaction {
    ($store:expr, $business:expr, |$sink:ident| $body:expr) => {{
        let store: &SqliteStore = $store;
        let (pool, budget) = (store.pool().clone(), store.budget());
        let wiring = std::sync::Arc::clone(store.events());
        let events = std::sync::Arc::clone(&wiring);
        let task = tokio::spawn(async move {
            let object = pool
                .get()
                .await
                .map_err(|e| WriteError::Storage(classify_pool(e)))?;
            let mut checkout = Checkout::new(object);
            let Some(conn) = checkout.connection() else {
                return Err(WriteError::Storage(RepositoryError::internal(
                    "pooled connection missing",
                )));
            };
            let result = conn
                .immediate_transaction(async move |conn| {
                    let $sink = &mut SqliteSink {
                        conn,
                        events: &events,
                    };
                    $body.await
                })
                .await;
            write::finish_write(checkout, result)
        });
        let result = match tokio::time::timeout(budget, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(WriteError::Storage(RepositoryError::internal(join))),
            // The task goes on and commits or rolls back by itself; the caller stops
            // waiting (an unacknowledged write is there entirely or not at all).
            Err(_) => Err(WriteError::Storage(RepositoryError::unavailable(
                crate::error::DeadlineExceeded(budget),
            ))),
        };
        if result.is_ok() {
            wiring.signals.notify($business);
        }
        result
    }};
}

crate::write::conversation_writer!(SqliteStore);

impl SqliteStore {
    /// The rows of one message of a conversation of a business (the write port's read).
    pub(crate) async fn message_rows(
        &self,
        business: DbUuid,
        conversation: DbUuid,
        message: DbUuid,
    ) -> Result<Vec<HistoryRecord>, RepositoryError> {
        self.call(move |conn| {
            message_query!(business, conversation, message).load::<HistoryRecord>(conn)
        })
        .await
    }
}

struct SqliteSink<'c> {
    conn: &'c mut SqliteAsync,
    events: &'c EventWiring,
}

impl SqliteSink<'_> {
    /// Runs synchronous Diesel work on the connection's blocking thread.
    async fn run<R: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut SqliteConnection) -> Result<R, WriteFailure> + Send + 'static,
    ) -> Result<R, WriteFailure> {
        self.conn
            .spawn_blocking(move |conn| Ok(work(conn)))
            .await
            .map_err(WriteFailure::Database)?
    }
}

impl WriteSink for SqliteSink<'_> {
    async fn claim(
        &mut self,
        business: DbUuid,
        key: &str,
        fingerprint: &[u8; 32],
        at: Micros,
        expired_before: Micros,
    ) -> Result<Option<StoredKey>, WriteFailure> {
        let (key, fingerprint) = (key.to_owned(), fingerprint.to_vec());
        self.run(move |conn| {
            let claimed = claim_query!(
                CLAIM_SQLITE,
                business,
                &key,
                &fingerprint,
                at,
                expired_before
            )
            .execute(conn)?;
            if claimed == 1 {
                return Ok(None);
            }
            let record = stored_key_query!(business, &key).first::<StoredKeyRecord>(conn)?;
            Ok(Some(write::stored_key(record)))
        })
        .await
    }

    async fn record(
        &mut self,
        business: DbUuid,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), WriteFailure> {
        let (key, response) = (key.to_owned(), response.clone());
        self.run(move |conn| {
            record_query!(business, &key, &response).execute(conn)?;
            Ok(())
        })
        .await
    }

    async fn lock_head(
        &mut self,
        business: DbUuid,
        id: DbUuid,
    ) -> Result<Option<ConversationHead>, WriteFailure> {
        // The IMMEDIATE transaction already holds the database's write lock.
        self.run(move |conn| {
            let Some(record) = head_query!(business, id)
                .first::<HeadRecord>(conn)
                .optional()?
            else {
                return Ok(None);
            };
            let last = last_message_query!(business, id)
                .first::<Micros>(conn)
                .optional()?;
            Ok(Some(rows::head(record, last)?))
        })
        .await
    }

    async fn customer(
        &mut self,
        business: DbUuid,
        id: DbUuid,
    ) -> Result<Option<(Customer, i64)>, WriteFailure> {
        self.run(move |conn| {
            let row = customer_query!(business, id)
                .first::<CustomerRow>(conn)
                .optional()?;
            Ok(row.map(rows::stored_customer).transpose()?)
        })
        .await
    }

    async fn customer_by_external_id(
        &mut self,
        business: DbUuid,
        external_id: &str,
    ) -> Result<Option<(Customer, i64)>, WriteFailure> {
        let external_id = external_id.to_owned();
        self.run(move |conn| {
            let row = customer_by_external_id_query!(business, &external_id)
                .first::<CustomerRow>(conn)
                .optional()?;
            Ok(row.map(rows::stored_customer).transpose()?)
        })
        .await
    }

    async fn insert_customer(&mut self, customer: &Customer) -> Result<(), WriteFailure> {
        let customer = customer.clone();
        self.run(move |conn| {
            diesel::insert_into(customers::table)
                .values(rows::customer_row(&customer))
                .execute(conn)?;
            Ok(())
        })
        .await
    }

    async fn insert_conversation(
        &mut self,
        conversation: &Conversation,
    ) -> Result<(), WriteFailure> {
        let conversation = conversation.clone();
        self.run(move |conn| {
            let rows = BatchRows::of(std::slice::from_ref(&conversation))?;
            diesel::insert_into(conversations::table)
                .values(&rows.conversations)
                .execute(conn)?;
            if !rows.messages.is_empty() {
                diesel::insert_into(messages::table)
                    .values(&rows.messages)
                    .execute(conn)?;
            }
            if !rows.attachments.is_empty() {
                diesel::insert_into(attachments::table)
                    .values(&rows.attachments)
                    .execute(conn)?;
            }
            Ok(())
        })
        .await
    }

    async fn insert_message(
        &mut self,
        business: DbUuid,
        conversation: DbUuid,
        appended: &MessageAppended,
    ) -> Result<(), WriteFailure> {
        let message = appended.message.clone();
        self.run(move |conn| {
            let (row, attachment_rows) = rows::message_rows(business, conversation, &message)?;
            diesel::insert_into(messages::table)
                .values(&row)
                .execute(conn)?;
            if !attachment_rows.is_empty() {
                diesel::insert_into(attachments::table)
                    .values(&attachment_rows)
                    .execute(conn)?;
            }
            Ok(())
        })
        .await
    }

    async fn append_events(
        &mut self,
        business: DbUuid,
        events: Vec<ConversationEvent>,
    ) -> Result<(), WriteFailure> {
        let encoded = crate::events::encode(self.events.encoder.as_ref(), &events);
        self.run(move |conn| append_events(conn, business, &encoded))
            .await
    }

    async fn update_head(&mut self, head: &ConversationHead) -> Result<(), WriteFailure> {
        let head = head.clone();
        self.run(move |conn| {
            write::HeadUpdate::new(&head, None).execute(conn)?;
            Ok(())
        })
        .await
    }

    async fn read(
        &mut self,
        business: DbUuid,
        id: DbUuid,
    ) -> Result<Option<Conversation>, WriteFailure> {
        self.run(move |conn| {
            let conversation =
                conversation_query!(business, id).load::<ConversationRecord>(conn)?;
            let history = history_query!(business, id).load::<HistoryRecord>(conn)?;
            rows::found_by_queries(conversation, history)
                .map_err(|e| WriteFailure::Refused(WriteError::Storage(e)))
        })
        .await
    }
}

/// Appends encoded events to a business's log inside the caller's transaction (the
/// IMMEDIATE transaction already serialises every writer).
pub(crate) fn append_events(
    conn: &mut SqliteConnection,
    business: DbUuid,
    encoded: &[crate::events::Encoded],
) -> Result<(), WriteFailure> {
    if encoded.is_empty() {
        return Ok(());
    }
    let count = i64::try_from(encoded.len()).unwrap_or(i64::MAX);
    let last = bump_query!(BUMP_SQLITE, business, count)
        .get_result::<LastId>(conn)?
        .last_event_id;
    for chunk in crate::events::rows(business, last - count + 1, encoded).chunks(2_000) {
        diesel::insert_into(crate::schema::events::table)
            .values(chunk)
            .execute(conn)?;
    }
    Ok(())
}
