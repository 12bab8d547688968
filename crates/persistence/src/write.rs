//! The write algorithm, shared by the adapters: claim the idempotency key, lock the
//! conversation, let the aggregate decide, store what it returns, record the answer.
//! Each adapter supplies the database steps ([`WriteSink`]) and runs one of these
//! inside its one transaction.
//!
//! Why a row lock rather than a conditional update on the revision: a message's time,
//! `first_response_at` and a reopening all depend on the state the previous write left,
//! so a conditional update would fail and retry under contention (50 agents replying to
//! one conversation); waiting on the row applies each write to its predecessor's state
//! exactly once. `If-Match` is then a comparison under that lock.

use std::future::Future;

use pingback_application::{
    IDEMPOTENCY_TTL_SECONDS, IdempotencyClaim, RepositoryError, StoredResponse, Updated,
    WriteError, WriteOutcome, Written,
};
use pingback_domain::{
    BusinessId, Conversation, ConversationDraft, ConversationEvent, ConversationHead,
    ConversationId, ConversationPatch, ConversationSummary, Customer, CustomerChoice,
    MessageAppended, MessageDraft, MessageIds, NewConversationIds, Revision, Timestamp,
};

use crate::error::classify;
use crate::events::StagedEvents;
use crate::pool::Checkout;
use crate::rows::CorruptRow;
use crate::schema::sql::{Instant, Uuid};
use crate::schema::{DbUuid, Micros};
use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Nullable, Text};

/// Why a write stopped; every variant rolls the transaction back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteFailure {
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
    #[error(transparent)]
    Corrupt(#[from] CorruptRow),
    #[error(transparent)]
    Refused(#[from] WriteError),
}

impl From<WriteFailure> for WriteError {
    fn from(failure: WriteFailure) -> Self {
        match failure {
            WriteFailure::Database(error) => WriteError::Storage(classify(error)),
            WriteFailure::Corrupt(error) => WriteError::Storage(RepositoryError::internal(error)),
            WriteFailure::Refused(error) => error,
        }
    }
}

/// Maps a write's outcome, in both adapters; the connection goes back to the pool
/// unless the database failed (a refusal leaves it idle).
pub(crate) fn finish_write<M: deadpool::managed::Manager, T>(
    checkout: Checkout<M>,
    result: Result<T, WriteFailure>,
) -> Result<T, WriteError> {
    checkout.release_if(matches!(result, Ok(_) | Err(WriteFailure::Refused(_))));
    result.map_err(WriteError::from)
}

/// What is recorded for an idempotency key already.
pub(crate) struct StoredKey {
    pub fingerprint: Vec<u8>,
    pub response: StoredResponse,
}

/// The database steps of a write, inside its transaction.
pub(crate) trait WriteSink: Send {
    /// Records `key` for this transaction unless an unexpired record exists
    /// (`Ok(None)`: claimed; an expired record is taken over). Must wait for a
    /// concurrent transaction holding the same key.
    fn claim(
        &mut self,
        business: DbUuid,
        key: &str,
        fingerprint: &[u8; 32],
        at: Micros,
        expired_before: Micros,
    ) -> impl Future<Output = Result<Option<StoredKey>, WriteFailure>> + Send;

    /// Stores the answer of the claimed key.
    fn record(
        &mut self,
        business: DbUuid,
        key: &str,
        response: &StoredResponse,
    ) -> impl Future<Output = Result<(), WriteFailure>> + Send;

    /// Locks conversation `id` of `business` for the rest of the transaction and reads
    /// its head.
    fn lock_head(
        &mut self,
        business: DbUuid,
        id: DbUuid,
    ) -> impl Future<Output = Result<Option<ConversationHead>, WriteFailure>> + Send;

    /// Customer `id` of `business` with its revision.
    fn customer(
        &mut self,
        business: DbUuid,
        id: DbUuid,
    ) -> impl Future<Output = Result<Option<(Customer, i64)>, WriteFailure>> + Send;

    /// The customer of `business` with this external id (the oldest, if several), after
    /// taking a lock on that external id so that two concurrent creations agree.
    fn customer_by_external_id(
        &mut self,
        business: DbUuid,
        external_id: &str,
    ) -> impl Future<Output = Result<Option<(Customer, i64)>, WriteFailure>> + Send;

    fn insert_customer(
        &mut self,
        customer: &Customer,
    ) -> impl Future<Output = Result<(), WriteFailure>> + Send;

    /// The conversation row, its messages and their attachments (not its customer).
    fn insert_conversation(
        &mut self,
        conversation: &Conversation,
    ) -> impl Future<Output = Result<(), WriteFailure>> + Send;

    fn insert_message(
        &mut self,
        business: DbUuid,
        conversation: DbUuid,
        appended: &MessageAppended,
    ) -> impl Future<Output = Result<(), WriteFailure>> + Send;

    /// Stores the head's mutable fields and bumps the revision.
    fn update_head(
        &mut self,
        head: &ConversationHead,
    ) -> impl Future<Output = Result<(), WriteFailure>> + Send;

    /// Appends `events` to `business`'s log: the last step of a transaction (see
    /// `events`: it serialises the business's writers from here to commit).
    fn append_events(
        &mut self,
        business: DbUuid,
        events: Vec<pingback_domain::ConversationEvent>,
    ) -> impl Future<Output = Result<(), WriteFailure>> + Send;

    /// `update_head`, then `append_events` for the head's business: in one statement
    /// where the store can.
    fn update_head_and_append(
        &mut self,
        head: &ConversationHead,
        events: Vec<pingback_domain::ConversationEvent>,
    ) -> impl Future<Output = Result<(), WriteFailure>> + Send {
        async move {
            self.update_head(head).await?;
            self.append_events(DbUuid::from(head.business_id), events)
                .await
        }
    }

    /// The whole conversation as this transaction sees it.
    fn read(
        &mut self,
        business: DbUuid,
        id: DbUuid,
    ) -> impl Future<Output = Result<Option<Conversation>, WriteFailure>> + Send;
}

/// Claims the key; `Some` is the answer to give instead of writing.
async fn claim<S: WriteSink, T>(
    sink: &mut S,
    business: BusinessId,
    claim: Option<&IdempotencyClaim>,
) -> Result<Option<Written<T>>, WriteFailure> {
    let Some(claim) = claim else {
        return Ok(None);
    };
    let at = claim.at.unix_micros();
    let expired_before = Micros(at.saturating_sub(IDEMPOTENCY_TTL_SECONDS * 1_000_000));
    let stored = sink
        .claim(
            DbUuid::from(business),
            claim.key.as_str(),
            &claim.fingerprint,
            Micros(at),
            expired_before,
        )
        .await?;
    match stored {
        None => Ok(None),
        Some(stored) if stored.fingerprint != claim.fingerprint => {
            Err(WriteError::KeyReused.into())
        }
        // Only a transaction that has not committed yet holds a record without its
        // answer, and we waited for it: seen only if the store cannot wait.
        Some(stored) if stored.response.status == 0 => Err(WriteError::KeyInFlight.into()),
        Some(stored) => Ok(Some(Written::Replayed(stored.response))),
    }
}

async fn record<S: WriteSink>(
    sink: &mut S,
    business: BusinessId,
    claim: Option<&IdempotencyClaim>,
    outcome: WriteOutcome<'_>,
) -> Result<(), WriteFailure> {
    if let Some(claim) = claim {
        let response = (claim.render)(&outcome);
        sink.record(DbUuid::from(business), claim.key.as_str(), &response)
            .await?;
    }
    Ok(())
}

pub(crate) async fn create<S: WriteSink>(
    sink: &mut S,
    business: BusinessId,
    draft: ConversationDraft,
    ids: NewConversationIds,
    now: Timestamp,
    idempotency: Option<IdempotencyClaim>,
) -> Result<Written<Conversation>, WriteFailure> {
    if let Some(replay) = claim(sink, business, idempotency.as_ref()).await? {
        return Ok(replay);
    }
    let customer = match &draft.customer {
        CustomerChoice::None => None,
        CustomerChoice::Existing(id) => Some(
            sink.customer(DbUuid::from(business), DbUuid::from(*id))
                .await?
                .ok_or(WriteError::UnknownCustomer)?,
        ),
        CustomerChoice::New(described) => {
            let existing = match described.external_id() {
                Some(external) => {
                    sink.customer_by_external_id(DbUuid::from(business), external.as_str())
                        .await?
                }
                None => None,
            };
            match existing {
                Some(found) => Some(found),
                None => {
                    let customer = described.clone().into_customer(ids.customer, business, now);
                    sink.insert_customer(&customer).await?;
                    Some((customer, 1))
                }
            }
        }
    };
    let (customer, customer_revision) = match customer {
        Some((customer, revision)) => (Some(customer), Some(revision)),
        None => (None, None),
    };
    let conversation = draft
        .open(business, ids, customer, now)
        .map_err(WriteError::from)?;
    sink.insert_conversation(&conversation).await?;
    let conversation = conversation.read_at(Revision::new(1, customer_revision));
    sink.append_events(
        DbUuid::from(business),
        ConversationEvent::created(ConversationSummary::of(&conversation)),
    )
    .await?;
    record(
        sink,
        business,
        idempotency.as_ref(),
        WriteOutcome::Created(&conversation),
    )
    .await?;
    Ok(Written::Done(conversation))
}

pub(crate) async fn append<S: WriteSink>(
    sink: &mut S,
    business: BusinessId,
    id: ConversationId,
    draft: MessageDraft,
    ids: MessageIds,
    now: Timestamp,
    idempotency: Option<IdempotencyClaim>,
) -> Result<Written<MessageAppended>, WriteFailure> {
    if let Some(replay) = claim(sink, business, idempotency.as_ref()).await? {
        return Ok(replay);
    }
    let mut head = sink
        .lock_head(DbUuid::from(business), DbUuid::from(id))
        .await?
        .ok_or(WriteError::NotFound)?;
    let appended = head.append(draft, ids, now).map_err(WriteError::from)?;
    sink.insert_message(DbUuid::from(business), DbUuid::from(id), &appended)
        .await?;
    let summary = head
        .summary(Some(appended.message.clone()))
        .map_err(|e| crate::rows::corrupt("conversation", e))?;
    sink.update_head_and_append(
        &head,
        ConversationEvent::message_added(
            summary,
            appended.message.clone(),
            appended.previous_status,
        ),
    )
    .await?;
    record(
        sink,
        business,
        idempotency.as_ref(),
        WriteOutcome::Appended(&appended),
    )
    .await?;
    Ok(Written::Done(appended))
}

pub(crate) async fn update<S: WriteSink>(
    sink: &mut S,
    business: BusinessId,
    id: ConversationId,
    patch: ConversationPatch,
    expected: Option<Revision>,
    now: Timestamp,
) -> Result<Updated, WriteFailure> {
    let mut head = sink
        .lock_head(DbUuid::from(business), DbUuid::from(id))
        .await?
        .ok_or(WriteError::NotFound)?;
    if expected.is_some_and(|expected| expected != head.revision) {
        return Err(WriteError::PreconditionFailed.into());
    }
    let changes = head.apply(&patch, now).map_err(WriteError::from)?;
    if !changes.is_empty() {
        sink.update_head(&head).await?;
    }
    let conversation = sink
        .read(DbUuid::from(business), DbUuid::from(id))
        .await?
        .ok_or_else(|| crate::rows::corrupt("conversation", "vanished under its lock"))?;
    sink.append_events(
        DbUuid::from(business),
        ConversationEvent::updated(ConversationSummary::of(&conversation), changes.clone()),
    )
    .await?;
    Ok(Updated {
        conversation,
        changes,
    })
}

/// Claims an idempotency key: inserts its record, or takes over an expired one.
/// Affects no row when an unexpired record exists (after waiting, on PostgreSQL, for
/// the transaction that holds it). `$1` business, `$2` key, `$3` fingerprint, `$4`
/// empty body, `$5` now, `$6` expiry.
macro_rules! claim_sql {
    ($p1:literal, $p2:literal, $p3:literal, $p4:literal, $p5:literal, $p6:literal) => {
        concat!(
            "INSERT INTO idempotency_keys (business_id, key, fingerprint, status, body, created_at) \
             VALUES (", $p1, ", ", $p2, ", ", $p3, ", 0, ", $p4, ", ", $p5, ") \
             ON CONFLICT (business_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, \
             status = 0, location = NULL, etag = NULL, body = excluded.body, \
             created_at = excluded.created_at \
             WHERE idempotency_keys.created_at < ", $p6
        )
    };
}
pub(crate) const CLAIM_POSTGRES: &str = claim_sql!("$1", "$2", "$3", "$4", "$5", "$6");
pub(crate) const CLAIM_SQLITE: &str = claim_sql!("?", "?", "?", "?", "?", "?");

/// The claim statement with its binds, for either backend.
macro_rules! claim_query {
    ($sql:expr, $business:expr, $key:expr, $fingerprint:expr, $at:expr, $expired_before:expr) => {{
        use diesel::sql_types::{Binary, Text};
        use $crate::schema::sql::{Instant, Uuid};
        diesel::sql_query($sql)
            .bind::<Uuid, _>($business)
            .bind::<Text, _>($key)
            .bind::<Binary, _>($fingerprint)
            .bind::<Binary, _>(Vec::<u8>::new())
            .bind::<Instant, _>($at)
            .bind::<Instant, _>($expired_before)
    }};
}
pub(crate) use claim_query;

/// The record of an idempotency key.
macro_rules! stored_key_query {
    ($business:expr, $key:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        use $crate::schema::idempotency_keys as k;
        k::table
            .filter(k::business_id.eq($business))
            .filter(k::key.eq($key))
            .select((k::fingerprint, k::status, k::location, k::etag, k::body))
    }};
}
pub(crate) use stored_key_query;

pub(crate) type StoredKeyRecord = (Vec<u8>, i32, Option<String>, Option<String>, Vec<u8>);

pub(crate) fn stored_key(record: StoredKeyRecord) -> StoredKey {
    let (fingerprint, status, location, etag, body) = record;
    StoredKey {
        fingerprint,
        response: StoredResponse {
            status: u16::try_from(status).unwrap_or(0),
            location,
            etag,
            body,
        },
    }
}

/// Stores the answer of a claimed key.
macro_rules! record_query {
    ($business:expr, $key:expr, $response:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        use $crate::schema::idempotency_keys as k;
        let response: &pingback_application::StoredResponse = $response;
        diesel::update(
            k::table
                .filter(k::business_id.eq($business))
                .filter(k::key.eq($key)),
        )
        .set((
            k::status.eq(i32::from(response.status)),
            k::location.eq(response.location.as_deref()),
            k::etag.eq(response.etag.as_deref()),
            k::body.eq(response.body.as_slice()),
        ))
    }};
}
pub(crate) use record_query;

/// The head of a conversation: its row and its customer's revision.
macro_rules! head_query {
    ($business:expr, $id:expr) => {{
        use diesel::{QueryDsl, SelectableHelper};
        use $crate::schema::conversations;
        $crate::rows::conversation_in_business!($business, $id).select((
            $crate::rows::ConversationRow::as_select(),
            Option::<$crate::rows::CustomerRow>::as_select(),
            conversations::message_count,
            conversations::last_message_id,
        ))
    }};
}
pub(crate) use head_query;

/// The time of a conversation's latest message, from the history index.
macro_rules! last_message_query {
    ($business:expr, $id:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        use $crate::schema::messages as m;
        m::table
            .filter(m::business_id.eq($business))
            .filter(m::conversation_id.eq($id))
            .order_by((m::created_at.desc(), m::id.desc()))
            .select(m::created_at)
    }};
}
pub(crate) use last_message_query;

/// A head's mutable fields stored and its revision bumped, on either backend; on
/// PostgreSQL with the write's staged events in front when given:
/// `WITH "staged" AS (INSERT INTO "pending_events" …) UPDATE "conversations" …`.
///
/// One statement rather than two because, at this transaction's size, a statement
/// costs PostgreSQL more than the row it writes: in the write scenario the event's own
/// `INSERT` took 18 % of the transactions per second, folded into the update 5–9 %
/// (pgbench, `docs/performance.md`). Written out rather than built by Diesel, which
/// marks every `UPDATE` unsafe to cache: it was parsed and planned on every write.
pub(crate) struct HeadUpdate<'a> {
    business: DbUuid,
    id: DbUuid,
    status: &'static str,
    assignee_id: Option<DbUuid>,
    updated_at: Micros,
    first_response_at: Option<Micros>,
    message_count: i64,
    last_message_id: Option<DbUuid>,
    staged: Option<StagedEvents<'a>>,
}

impl<'a> HeadUpdate<'a> {
    pub(crate) fn new(head: &ConversationHead, staged: Option<StagedEvents<'a>>) -> Self {
        Self {
            business: DbUuid::from(head.business_id),
            id: DbUuid::from(head.id),
            status: head.status.as_str(),
            assignee_id: head.assignee_id.map(DbUuid::from),
            updated_at: Micros(head.updated_at.unix_micros()),
            first_response_at: head.first_response_at.map(|t| Micros(t.unix_micros())),
            message_count: i64::try_from(head.message_count).unwrap_or(i64::MAX),
            last_message_id: head.last_message_id.map(DbUuid::from),
            staged,
        }
    }
}

impl<DB> QueryFragment<DB> for HeadUpdate<'_>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<Uuid> + HasSqlType<Instant> + HasSqlType<BigInt>,
    str: ToSql<Text, DB>,
    DbUuid: ToSql<Uuid, DB>,
    Option<DbUuid>: ToSql<Nullable<Uuid>, DB>,
    Micros: ToSql<Instant, DB>,
    Option<Micros>: ToSql<Nullable<Instant>, DB>,
    i64: ToSql<BigInt, DB>,
    for<'s> StagedEvents<'s>: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        if let Some(staged) = &self.staged {
            out.push_sql("WITH \"staged\" AS (");
            staged.walk_ast(out.reborrow())?;
            out.push_sql(") ");
        }
        out.push_sql("UPDATE \"conversations\" SET \"status\" = ");
        out.push_bind_param::<Text, _>(self.status)?;
        out.push_sql(", \"assignee_id\" = ");
        out.push_bind_param::<Nullable<Uuid>, _>(&self.assignee_id)?;
        out.push_sql(", \"updated_at\" = ");
        out.push_bind_param::<Instant, _>(&self.updated_at)?;
        out.push_sql(", \"first_response_at\" = ");
        out.push_bind_param::<Nullable<Instant>, _>(&self.first_response_at)?;
        out.push_sql(", \"message_count\" = ");
        out.push_bind_param::<BigInt, _>(&self.message_count)?;
        out.push_sql(", \"last_message_id\" = ");
        out.push_bind_param::<Nullable<Uuid>, _>(&self.last_message_id)?;
        out.push_sql(", \"revision\" = \"revision\" + 1 WHERE \"business_id\" = ");
        out.push_bind_param::<Uuid, _>(&self.business)?;
        out.push_sql(" AND \"id\" = ");
        out.push_bind_param::<Uuid, _>(&self.id)?;
        Ok(())
    }
}

/// Cached by its text: with or without staged events, and how many.
impl QueryId for HeadUpdate<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// SQLite's connections are Diesel's synchronous ones.
impl<Conn> diesel::RunQueryDsl<Conn> for HeadUpdate<'_> {}

/// A customer of a business by id.
macro_rules! customer_query {
    ($business:expr, $id:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl, SelectableHelper};
        use $crate::schema::customers as cu;
        cu::table
            .filter(cu::business_id.eq($business))
            .filter(cu::id.eq($id))
            .select($crate::rows::CustomerRow::as_select())
    }};
}
pub(crate) use customer_query;

/// The oldest customer of a business with this external id.
macro_rules! customer_by_external_id_query {
    ($business:expr, $external:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl, SelectableHelper};
        use $crate::schema::customers as cu;
        cu::table
            .filter(cu::business_id.eq($business))
            .filter(cu::external_id.eq($external))
            .order_by((cu::created_at, cu::id))
            .select($crate::rows::CustomerRow::as_select())
    }};
}
pub(crate) use customer_by_external_id_query;

/// One message of a conversation with its attachments (history rows).
macro_rules! message_query {
    ($business:expr, $conversation:expr, $message:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        $crate::rows::history_query!($business, $conversation)
            .filter($crate::schema::messages::id.eq($message))
    }};
}
pub(crate) use message_query;

/// The single message `rows` hold, if any.
pub(crate) fn found_message(
    rows: Vec<crate::rows::HistoryRecord>,
) -> Result<Option<pingback_domain::Message>, RepositoryError> {
    crate::rows::messages_of(rows)
        .map(|messages| messages.into_iter().next())
        .map_err(RepositoryError::internal)
}

/// The write port for a store: its three writes run the shared algorithm in the
/// store's own transaction (`in_transaction!`, defined by each adapter), and its
/// message read is the store's `message_rows`.
macro_rules! conversation_writer {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl pingback_application::ConversationWriter for $store {
            async fn create_conversation(
                &self,
                business: pingback_domain::BusinessId,
                draft: pingback_domain::ConversationDraft,
                ids: pingback_domain::NewConversationIds,
                now: pingback_domain::Timestamp,
                claim: Option<pingback_application::IdempotencyClaim>,
            ) -> Result<
                pingback_application::Written<pingback_domain::Conversation>,
                pingback_application::WriteError,
            > {
                in_transaction!(self, business, |sink| $crate::write::create(
                    sink, business, draft, ids, now, claim
                ))
            }

            async fn append_message(
                &self,
                business: pingback_domain::BusinessId,
                id: pingback_domain::ConversationId,
                draft: pingback_domain::MessageDraft,
                ids: pingback_domain::MessageIds,
                now: pingback_domain::Timestamp,
                claim: Option<pingback_application::IdempotencyClaim>,
            ) -> Result<
                pingback_application::Written<pingback_domain::MessageAppended>,
                pingback_application::WriteError,
            > {
                in_transaction!(self, business, |sink| $crate::write::append(
                    sink, business, id, draft, ids, now, claim
                ))
            }

            async fn update_conversation(
                &self,
                business: pingback_domain::BusinessId,
                id: pingback_domain::ConversationId,
                patch: pingback_domain::ConversationPatch,
                expected: Option<pingback_domain::Revision>,
                now: pingback_domain::Timestamp,
            ) -> Result<pingback_application::Updated, pingback_application::WriteError> {
                in_transaction!(self, business, |sink| $crate::write::update(
                    sink, business, id, patch, expected, now
                ))
            }

            async fn find_message(
                &self,
                business: pingback_domain::BusinessId,
                conversation: pingback_domain::ConversationId,
                message: pingback_domain::MessageId,
            ) -> Result<Option<pingback_domain::Message>, pingback_application::RepositoryError>
            {
                let rows = self
                    .message_rows(business.into(), conversation.into(), message.into())
                    .await?;
                $crate::write::found_message(rows)
            }
        }
    };
}
pub(crate) use conversation_writer;
