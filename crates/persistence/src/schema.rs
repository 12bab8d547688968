//! One Diesel schema for both backends.
//!
//! The two columns types that differ between PostgreSQL and SQLite (UUIDs and
//! timestamps) are custom SQL types that name the native type of each backend, so the
//! tables, rows and queries are written once and compile for both.

use std::io::Write as _;

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sqlite::{Sqlite, SqliteValue};

/// Custom SQL types.
pub(crate) mod sql {
    use diesel::query_builder::QueryId;
    use diesel::sql_types::SqlType;

    /// PostgreSQL `uuid` (OID 2950); SQLite 16-byte BLOB.
    #[derive(SqlType, QueryId, Clone, Copy, Debug, Default)]
    #[diesel(postgres_type(oid = 2950, array_oid = 2951))]
    #[diesel(sqlite_type(name = "Binary"))]
    pub struct Uuid;

    /// PostgreSQL `timestamptz` (OID 1184); SQLite INTEGER unix microseconds.
    #[derive(SqlType, QueryId, Clone, Copy, Debug, Default)]
    #[diesel(postgres_type(oid = 1184, array_oid = 1185))]
    #[diesel(sqlite_type(name = "Long"))]
    pub struct Instant;
}

/// A UUID as stored by either backend.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, AsExpression, FromSqlRow)]
#[diesel(sql_type = sql::Uuid)]
pub(crate) struct DbUuid(pub uuid::Uuid);

/// Every domain id converts to and from its stored form, so a row field and a domain
/// field are one `.into()` (or `From`) apart, never a hand-written `DbUuid(x.into_uuid())`.
macro_rules! db_uuid_of_ids {
    ($($id:ty),+ $(,)?) => {$(
        impl From<$id> for DbUuid {
            fn from(id: $id) -> Self {
                Self(id.into())
            }
        }

        impl From<DbUuid> for $id {
            fn from(id: DbUuid) -> Self {
                id.0.into()
            }
        }
    )+};
}

db_uuid_of_ids!(
    pingback_domain::AgentId,
    pingback_domain::AttachmentId,
    pingback_domain::BusinessId,
    pingback_domain::ChannelId,
    pingback_domain::ConversationId,
    pingback_domain::CustomerId,
    pingback_domain::MessageId,
    pingback_domain::SenderId,
    pingback_domain::WebhookId,
);

/// A timestamp as unix microseconds, the domain's own representation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, AsExpression, FromSqlRow)]
#[diesel(sql_type = sql::Instant)]
pub(crate) struct Micros(pub i64);

impl ToSql<sql::Uuid, Pg> for DbUuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(self.0.as_bytes())?;
        Ok(IsNull::No)
    }
}

impl FromSql<sql::Uuid, Pg> for DbUuid {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        Ok(Self(uuid::Uuid::from_slice(value.as_bytes())?))
    }
}

impl ToSql<sql::Uuid, Sqlite> for DbUuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.as_bytes().as_slice());
        Ok(IsNull::No)
    }
}

impl FromSql<sql::Uuid, Sqlite> for DbUuid {
    fn from_sql(mut value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        Ok(Self(uuid::Uuid::from_slice(value.read_blob())?))
    }
}

/// A message's `sender_type`, read straight into the domain's value: on PostgreSQL
/// without a `String` per message (a read of a long history allocated one per row).
#[derive(Clone, Copy, PartialEq, Eq, Debug, FromSqlRow)]
pub(crate) struct StoredSenderType(pub pingback_domain::SenderType);

impl FromSql<diesel::sql_types::Text, Pg> for StoredSenderType {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let bytes = value.as_bytes();
        pingback_domain::SenderType::from_name(bytes)
            .map(Self)
            .ok_or_else(|| {
                format!("unknown sender type {:?}", String::from_utf8_lossy(bytes)).into()
            })
    }
}

impl FromSql<diesel::sql_types::Text, Sqlite> for StoredSenderType {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(value)?;
        Ok(Self(text.parse()?))
    }
}

/// A message's text as read. On PostgreSQL checked to be UTF-8 with SIMD instead of
/// `std::str::from_utf8` (byte at a time outside ASCII): `perf` of 100-message reads
/// of mixed-language text put that check at 8 % of the server's CPU, the third
/// largest item after writing the body.
#[derive(Clone, PartialEq, Eq, Debug, FromSqlRow)]
pub(crate) struct StoredText(pub String);

impl FromSql<diesel::sql_types::Text, Pg> for StoredText {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        Ok(Self(
            simdutf8::basic::from_utf8(value.as_bytes())?.to_owned(),
        ))
    }
}

impl FromSql<diesel::sql_types::Text, Sqlite> for StoredText {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(value).map(Self)
    }
}

/// PostgreSQL counts timestamps in microseconds from 2000-01-01T00:00:00Z.
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

impl ToSql<sql::Instant, Pg> for Micros {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        let pg = self
            .0
            .checked_sub(PG_EPOCH_UNIX_MICROS)
            .ok_or("timestamp out of range")?;
        out.write_all(&pg.to_be_bytes())?;
        Ok(IsNull::No)
    }
}

impl FromSql<sql::Instant, Pg> for Micros {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let bytes: [u8; 8] = value
            .as_bytes()
            .try_into()
            .map_err(|_| "timestamptz is not 8 bytes")?;
        // `infinity` is i64::MAX: out of range here, hence an error, never a panic.
        i64::from_be_bytes(bytes)
            .checked_add(PG_EPOCH_UNIX_MICROS)
            .map(Self)
            .ok_or_else(|| "timestamptz out of range".into())
    }
}

impl ToSql<sql::Instant, Sqlite> for Micros {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0);
        Ok(IsNull::No)
    }
}

impl FromSql<sql::Instant, Sqlite> for Micros {
    fn from_sql(mut value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        Ok(Self(value.read_long()))
    }
}

diesel::table! {
    use diesel::sql_types::{BigInt, Nullable, Text};
    use super::sql::{Instant, Uuid};

    customers (business_id, id) {
        business_id -> Uuid,
        id -> Uuid,
        name -> Nullable<Text>,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
        external_id -> Nullable<Text>,
        created_at -> Instant,
        revision -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::{BigInt, Nullable, Text};
    use super::sql::{Instant, Uuid};

    conversations (business_id, id) {
        business_id -> Uuid,
        id -> Uuid,
        customer_id -> Nullable<Uuid>,
        assignee_id -> Nullable<Uuid>,
        status -> Text,
        channel_type -> Text,
        channel_id -> Nullable<Uuid>,
        created_at -> Instant,
        updated_at -> Instant,
        first_response_at -> Nullable<Instant>,
        revision -> BigInt,
        message_count -> BigInt,
        last_message_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    use diesel::sql_types::{Nullable, Text};
    use super::sql::{Instant, Uuid};

    messages (business_id, id) {
        business_id -> Uuid,
        id -> Uuid,
        conversation_id -> Uuid,
        sender_type -> Text,
        sender_id -> Nullable<Uuid>,
        content -> Text,
        created_at -> Instant,
    }
}

diesel::table! {
    use diesel::sql_types::{BigInt, Integer, Text};
    use super::sql::Uuid;

    attachments (business_id, id) {
        business_id -> Uuid,
        id -> Uuid,
        conversation_id -> Uuid,
        message_id -> Uuid,
        position -> Integer,
        file_name -> Text,
        content_type -> Text,
        byte_size -> BigInt,
        url -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(customers, conversations, messages, attachments);

diesel::table! {
    use diesel::sql_types::{Binary, Integer, Nullable, Text};
    use super::sql::{Instant, Uuid};

    idempotency_keys (business_id, key) {
        business_id -> Uuid,
        key -> Text,
        fingerprint -> Binary,
        status -> Integer,
        location -> Nullable<Text>,
        etag -> Nullable<Text>,
        body -> Binary,
        created_at -> Instant,
    }
}

diesel::table! {
    use diesel::sql_types::BigInt;
    use super::sql::Uuid;

    business_event_counters (business_id) {
        business_id -> Uuid,
        last_event_id -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::{BigInt, Text};
    use super::sql::{Instant, Uuid};

    events (business_id, id) {
        business_id -> Uuid,
        id -> BigInt,
        #[sql_name = "type"]
        kind -> Text,
        occurred_at -> Instant,
        conversation_id -> Uuid,
        data -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::{BigInt, Text};
    use super::sql::{Instant, Uuid};

    /// PostgreSQL only: events of committed writes not numbered yet.
    pending_events (business_id, seq) {
        business_id -> Uuid,
        seq -> BigInt,
        #[sql_name = "type"]
        kind -> Text,
        occurred_at -> Instant,
        conversation_id -> Uuid,
        data -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::{BigInt, Binary, Bool, Integer, Nullable, Text};
    use super::sql::{Instant, Uuid};

    webhook_endpoints (business_id, id) {
        business_id -> Uuid,
        id -> Uuid,
        url -> Text,
        event_types -> Text,
        enabled -> Bool,
        created_at -> Instant,
        secret_seed -> Binary,
        delivered_through -> BigInt,
        last_attempt_at -> Nullable<Instant>,
        last_error -> Nullable<Text>,
        next_attempt_at -> Nullable<Instant>,
        failing_since -> Nullable<Instant>,
        failures -> Integer,
        lease_owner -> Nullable<Uuid>,
        lease_until -> Nullable<Instant>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(webhook_endpoints, business_event_counters);
