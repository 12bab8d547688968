//! The business event log in both adapters: appending in the transaction of a change,
//! reading it back for the feed, pruning it, and (PostgreSQL) relaying commits of
//! other processes to this one's waiting readers with `LISTEN`/`NOTIFY`.
//!
//! Ordering: ids come from the business's counter row, bumped by a transaction that
//! holds the row's lock until it commits; the next bump reads the committed value, so
//! ids are handed out in commit order and a rolled-back transaction gives its ids back.
//! Who bumps: on SQLite (one writer at a time anyway) and for imports, the write's own
//! transaction, as its last step; for PostgreSQL writes, the numbering that follows
//! their commit (`crate::sequencer`), so writers of one business do not commit one at
//! a time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::Text;
use diesel::{QueryResult, QueryableByName};
use pingback_application::{
    EventEncoder, EventLog, EventSignals, EventsAfter, RepositoryError, StoredEvent,
};
use pingback_domain::{BusinessId, ConversationEvent, ConversationId, EventType, Timestamp};

use crate::rows::{CorruptRow, corrupt};
use crate::schema::{DbUuid, Micros, events, sql};

/// What the adapters need to append events and wake readers: given by the
/// composition root (the encoder is the API's representation).
#[derive(Clone)]
pub struct EventWiring {
    pub encoder: Arc<dyn EventEncoder>,
    pub signals: EventSignals,
    /// PostgreSQL: the numberings of pending events this process runs or waits for.
    pub(crate) turns: Arc<crate::sequencer::Turns>,
}

impl EventWiring {
    /// One per process: its workers' stores share its signals and numberings.
    pub fn new(encoder: Arc<dyn EventEncoder>, signals: EventSignals) -> Self {
        Self {
            encoder,
            signals,
            turns: Arc::default(),
        }
    }
}

impl std::fmt::Debug for EventWiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventWiring").finish_non_exhaustive()
    }
}

/// The channel PostgreSQL notifies on commit; the payload is the business id.
pub(crate) const CHANNEL: &str = "pingback_events";

/// Bumps a business's counter by `$2` and returns the new last id.
pub(crate) const BUMP_POSTGRES: &str = "INSERT INTO business_event_counters (business_id, \
    last_event_id) VALUES ($1, $2) ON CONFLICT (business_id) DO UPDATE SET last_event_id = \
    business_event_counters.last_event_id + excluded.last_event_id RETURNING last_event_id";
pub(crate) const BUMP_SQLITE: &str = "INSERT INTO business_event_counters (business_id, \
    last_event_id) VALUES (?, ?) ON CONFLICT (business_id) DO UPDATE SET last_event_id = \
    business_event_counters.last_event_id + excluded.last_event_id RETURNING last_event_id";
/// `pg_notify` on `CHANNEL` with a business id: delivered when the transaction commits
/// (and dropped if it rolls back). Prepared once per connection, where a
/// `diesel::sql_query` is parsed on every run.
pub(crate) struct Notify {
    business: String,
}

impl Notify {
    pub(crate) fn of(business: DbUuid) -> Self {
        Self {
            business: business.0.to_string(),
        }
    }
}

impl QueryFragment<Pg> for Notify {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT pg_notify(");
        out.push_bind_param::<Text, _>(CHANNEL)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(self.business.as_str())?;
        out.push_sql(")");
        Ok(())
    }
}

impl QueryId for Notify {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

#[derive(QueryableByName)]
pub(crate) struct LastId {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub last_event_id: i64,
}

/// The bump with its binds, for either backend.
macro_rules! bump_query {
    ($sql:expr, $business:expr, $count:expr) => {{
        diesel::sql_query($sql)
            .bind::<$crate::schema::sql::Uuid, _>($business)
            .bind::<diesel::sql_types::BigInt, _>($count)
    }};
}
pub(crate) use bump_query;

/// Events encoded for appending.
pub(crate) struct Encoded {
    kind: EventType,
    occurred_at: Micros,
    conversation_id: DbUuid,
    data: String,
}

pub(crate) fn encode(encoder: &dyn EventEncoder, events: &[ConversationEvent]) -> Vec<Encoded> {
    events
        .iter()
        .map(|event| Encoded {
            kind: event.kind,
            occurred_at: Micros(event.occurred_at.unix_micros()),
            conversation_id: DbUuid(event.conversation.conversation.id().into_uuid()),
            data: String::from_utf8_lossy(&encoder.data(event)).into_owned(),
        })
        .collect()
}

#[derive(diesel::Insertable)]
#[diesel(table_name = events)]
pub(crate) struct NewEvent<'a> {
    business_id: DbUuid,
    id: i64,
    kind: &'static str,
    occurred_at: Micros,
    conversation_id: DbUuid,
    data: &'a str,
}

impl<'a> NewEvent<'a> {
    pub(crate) fn new(
        business_id: DbUuid,
        id: i64,
        kind: EventType,
        occurred_at: Micros,
        conversation_id: DbUuid,
        data: &'a str,
    ) -> Self {
        Self {
            business_id,
            id,
            kind: kind.as_str(),
            occurred_at,
            conversation_id,
            data,
        }
    }
}

/// The rows of `encoded`, numbered from `first`.
pub(crate) fn rows(business: DbUuid, first: i64, encoded: &[Encoded]) -> Vec<NewEvent<'_>> {
    encoded
        .iter()
        .zip(first..)
        .map(|(e, id)| NewEvent {
            business_id: business,
            id,
            kind: e.kind.as_str(),
            occurred_at: e.occurred_at,
            conversation_id: e.conversation_id,
            data: &e.data,
        })
        .collect()
}

/// A PostgreSQL write's events staged in `pending_events`, to be numbered after its
/// commit (`crate::sequencer`): an `INSERT` of their own, or the data-modifying `WITH`
/// in front of the head update (`write::HeadUpdate`).
///
/// Written out here rather than built with `diesel::insert_into(…).values(vec)`:
/// Diesel marks a multi-row insert unsafe to cache, so every write had PostgreSQL parse
/// and plan it anew, one round trip more. This text is prepared once per connection
/// and number of rows (one, or two when a message reopens its conversation).
pub(crate) struct StagedEvents<'a> {
    business: DbUuid,
    events: &'a [Encoded],
}

impl<'a> StagedEvents<'a> {
    pub(crate) fn new(business: DbUuid, events: &'a [Encoded]) -> Self {
        Self { business, events }
    }
}

/// Generic only so that the head update it rides on serves both backends
/// (`write::HeadUpdate`): SQLite has no `pending_events` and never stages.
impl<DB> QueryFragment<DB> for StagedEvents<'_>
where
    DB: diesel::backend::Backend
        + diesel::sql_types::HasSqlType<Text>
        + diesel::sql_types::HasSqlType<sql::Uuid>
        + diesel::sql_types::HasSqlType<sql::Instant>,
    str: diesel::serialize::ToSql<Text, DB>,
    DbUuid: diesel::serialize::ToSql<sql::Uuid, DB>,
    Micros: diesel::serialize::ToSql<sql::Instant, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        if self.events.is_empty() {
            return Err(diesel::result::Error::QueryBuilderError(
                "no events to stage".into(),
            ));
        }
        out.push_sql(
            "INSERT INTO \"pending_events\" (\"business_id\", \"type\", \"occurred_at\", \
             \"conversation_id\", \"data\") VALUES ",
        );
        for (n, event) in self.events.iter().enumerate() {
            out.push_sql(if n == 0 { "(" } else { ", (" });
            out.push_bind_param::<sql::Uuid, _>(&self.business)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(event.kind.as_str())?;
            out.push_sql(", ");
            out.push_bind_param::<sql::Instant, _>(&event.occurred_at)?;
            out.push_sql(", ");
            out.push_bind_param::<sql::Uuid, _>(&event.conversation_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(event.data.as_str())?;
            out.push_sql(")");
        }
        Ok(())
    }
}

/// Cached by its text (no static id: the text depends on the number of rows).
impl QueryId for StagedEvents<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// Events of a business after an id, in order.
macro_rules! events_query {
    ($business:expr, $after:expr, $limit:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        use $crate::schema::events as e;
        e::table
            .filter(e::business_id.eq($business))
            .filter(e::id.gt($after))
            .order_by(e::id)
            .limit($limit)
            .select((e::id, e::kind, e::occurred_at, e::conversation_id, e::data))
    }};
}
pub(crate) use events_query;

/// A business's oldest kept event id.
macro_rules! oldest_event_query {
    ($business:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        use $crate::schema::events as e;
        e::table
            .filter(e::business_id.eq($business))
            .select(diesel::dsl::min(e::id))
    }};
}
pub(crate) use oldest_event_query;

/// A business's latest event id.
macro_rules! last_event_query {
    ($business:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        use $crate::schema::business_event_counters as n;
        n::table
            .filter(n::business_id.eq($business))
            .select(n::last_event_id)
    }};
}
pub(crate) use last_event_query;

/// Deletes, per business, the events before its first one that is not old: the
/// oldest events that are all older than the cutoff. An event's time is its write's
/// clock, which need not rise with its id (two writers of a business read the clock
/// before they take their ids; an imported event is the import's time), so deleting
/// every old event could leave a hole in the log; deleting a prefix never does, and
/// readers further behind than it get `Gone`. `$1` and `$2` are the cutoff.
macro_rules! prune_sql {
    ($p1:literal, $p2:literal) => {
        concat!(
            "DELETE FROM events WHERE occurred_at < ",
            $p1,
            " AND id < COALESCE(\
             (SELECT min(k.id) FROM events k WHERE k.business_id = events.business_id \
             AND k.occurred_at >= ",
            $p2,
            "), 9223372036854775807)"
        )
    };
}
pub(crate) const PRUNE_POSTGRES: &str = prune_sql!("$1", "$2");
pub(crate) const PRUNE_SQLITE: &str = prune_sql!("?", "?");

/// The prune statement with its binds, for either backend.
macro_rules! prune_query {
    ($sql:expr, $before:expr) => {{
        diesel::sql_query($sql)
            .bind::<$crate::schema::sql::Instant, _>($before)
            .bind::<$crate::schema::sql::Instant, _>($before)
    }};
}
pub(crate) use prune_query;

pub(crate) type EventRecord = (i64, String, Micros, DbUuid, String);

fn stored(record: EventRecord) -> Result<StoredEvent, CorruptRow> {
    let (id, kind, occurred_at, conversation, data) = record;
    Ok(StoredEvent {
        id,
        kind: EventType::parse(&kind).ok_or_else(|| corrupt("event type", kind))?,
        occurred_at: Timestamp::from_unix_micros(occurred_at.0)
            .map_err(|e| corrupt("event occurred_at", e))?,
        conversation_id: ConversationId::from_uuid(conversation.0),
        data: data.into_bytes(),
    })
}

/// What a read of the log found: the events after `after` and, when that is empty or
/// does not start right after `after`, the business's last id (read in the same
/// snapshot) to tell "nothing yet" from "pruned".
pub(crate) fn events_after(
    after: i64,
    records: Vec<EventRecord>,
    last_event_id: Option<i64>,
) -> Result<EventsAfter, CorruptRow> {
    let starts_right_after = records.first().is_none_or(|(id, ..)| *id == after + 1);
    let pruned = match records.first() {
        Some(_) => !starts_right_after,
        None => last_event_id.unwrap_or(0) > after,
    };
    if pruned {
        return Ok(EventsAfter::Gone);
    }
    Ok(EventsAfter::Events(
        records.into_iter().map(stored).collect::<Result<_, _>>()?,
    ))
}

/// What an adapter does for the event log port, each step on a connection of its
/// choosing. The port's arguments arrive as stored and the rows leave undecoded:
/// [`EventFeed`] converts and decodes once for both adapters.
pub(crate) trait EventTable: Send + Sync + 'static {
    /// Up to `limit` events of `business` after `after` (`events_query`) and, read in
    /// the same snapshot, the business's last id when [`needs_last_id`] asks for it.
    fn event_page(
        &self,
        business: DbUuid,
        after: i64,
        limit: i64,
    ) -> impl Future<Output = Result<(Vec<EventRecord>, Option<i64>), RepositoryError>> + Send;

    /// `oldest_event_query`.
    fn oldest_event(
        &self,
        business: DbUuid,
    ) -> impl Future<Output = Result<Option<i64>, RepositoryError>> + Send;

    /// Runs `prune_query`; how many events it deleted.
    fn prune_events(
        &self,
        before: Micros,
    ) -> impl Future<Output = Result<usize, RepositoryError>> + Send;
}

/// The event log port over an adapter's [`EventTable`].
#[derive(Clone)]
pub(crate) struct EventFeed<T>(pub T);

#[async_trait]
impl<T: EventTable> EventLog for EventFeed<T> {
    async fn events_after(
        &self,
        business: BusinessId,
        after: i64,
        limit: u16,
    ) -> Result<EventsAfter, RepositoryError> {
        let (records, last) = self
            .0
            .event_page(business.into(), after, i64::from(limit))
            .await?;
        events_after(after, records, last).map_err(RepositoryError::internal)
    }

    async fn oldest_event_id(&self, business: BusinessId) -> Result<Option<i64>, RepositoryError> {
        self.0.oldest_event(business.into()).await
    }

    async fn prune(&self, before: Timestamp) -> Result<u64, RepositoryError> {
        let deleted = self.0.prune_events(Micros(before.unix_micros())).await?;
        Ok(deleted as u64)
    }
}

/// Whether the log must also say its last id: only when the page cannot show alone
/// that nothing was pruned.
pub(crate) fn needs_last_id(after: i64, records: &[EventRecord]) -> bool {
    records.first().is_none_or(|(id, ..)| *id != after + 1)
}

/// On PostgreSQL, keeps `signals` told of every commit to the event log made by any
/// process on the database, by `LISTEN`ing on one connection of its own (re-opened
/// after a failure, after which every reader is woken in case a commit was missed).
/// `None` on SQLite, whose commits are signalled within the process.
pub fn relay_notifications(
    settings: &crate::DatabaseSettings,
    signals: EventSignals,
) -> Option<tokio::task::JoinHandle<()>> {
    let crate::settings::Target::Postgres(url) = settings.target().ok()? else {
        return None;
    };
    let url = crate::settings::with_connect_timeout(&url, settings.connect_timeout);
    Some(tokio::spawn(async move {
        use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
        use futures_util::StreamExt as _;
        let mut backoff = Duration::from_millis(200);
        loop {
            let listening = async {
                let mut conn = AsyncPgConnection::establish(&url).await?;
                conn.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(conn)
            };
            match listening.await {
                Ok(mut conn) => {
                    backoff = Duration::from_millis(200);
                    // Whatever was committed while we were not listening.
                    signals.notify_all();
                    // A dead connection may just go quiet: every 10 s without a
                    // notification, ask it something (notifications that arrive
                    // meanwhile are buffered, not lost).
                    'listening: loop {
                        {
                            let mut notifications = std::pin::pin!(conn.notifications_stream());
                            loop {
                                match tokio::time::timeout(
                                    Duration::from_secs(10),
                                    notifications.next(),
                                )
                                .await
                                {
                                    Ok(Some(Ok(n))) => {
                                        if let Ok(business) = BusinessId::parse(&n.payload) {
                                            signals.notify(business);
                                        }
                                    }
                                    Ok(Some(Err(error))) => {
                                        tracing::warn!(%error, "event notifications interrupted");
                                        break 'listening;
                                    }
                                    Ok(None) => break 'listening,
                                    Err(_) => break,
                                }
                            }
                        }
                        let ping = tokio::time::timeout(
                            Duration::from_secs(5),
                            conn.batch_execute("SELECT 1"),
                        )
                        .await;
                        if !matches!(ping, Ok(Ok(()))) {
                            tracing::warn!(
                                "the event notification connection is gone; reconnecting"
                            );
                            break;
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for event notifications; retrying");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }))
}
