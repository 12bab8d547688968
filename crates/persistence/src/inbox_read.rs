//! The PostgreSQL inbox page as ONE statement.
//!
//! One statement sees one snapshot, so the page, the attachments of its latest messages
//! and the business's `last_event_id` agree without a transaction around them; and a
//! statement that needs no transaction shares a read lane with concurrent reads (see
//! `postgres::ReadConnections`): one round trip, no connection of its own.
//!
//! ```sql
//! SELECT n.last_event_id, p.*
//! FROM (SELECT max(last_event_id) AS last_event_id FROM business_event_counters
//!       WHERE business_id = $1) n
//! LEFT JOIN (<the page: inbox_query!, plus one column,
//!             ARRAY(SELECT ARRAY[a.id::text, a.file_name, a.content_type,
//!                                a.byte_size::text, a.url]
//!                   FROM attachments a
//!                   WHERE a.business_id = $2 AND a.message_id = conversations.last_message_id
//!                   ORDER BY a.position)>) p ON true
//! ```
//!
//! - `n` is always exactly one row (an aggregate without `GROUP BY`; NULL when the
//!   business has no event yet, read as 0), so an empty page still answers one row
//!   carrying `last_event_id`, with NULLs for the page's columns.
//! - Each page row carries its latest message's attachments in position order (the
//!   `(business_id, message_id, position)` unique index: one probe per row, no sort)
//!   as a two-dimensional `text[]`, one row of five per attachment, decoded here from
//!   PostgreSQL's binary array format. Measured against the alternatives (executor CPU
//!   per page of 26 rows, 5 % of them with attachments): `json_agg` cost 1.5× this
//!   column (an aggregate per row), an array of `ROW(…)` records as little as this
//!   one, but Citus cannot read anonymous records back from a worker ("input of
//!   anonymous composite types is not implemented"); a `text[]` it can.
//! - Every table is filtered by the business (`$1`, the page's own `business_id = $n`,
//!   `a.business_id = $k`; customers and messages are joined on the conversation's
//!   `business_id`): on Citus the statement is routed to one shard.
//!
//! The rows come in the page's order (a nested loop over one outer row); the page is
//! put in order again here all the same, which costs nothing when it already is.

use std::cmp::Ordering;

use diesel::QueryResult;
use diesel::deserialize::FromSql;
use diesel::deserialize::{self, FromSqlRow};
use diesel::pg::Pg;
use diesel::pg::PgValue;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::row::Row;
use diesel::sql_types::{Array, BigInt, Nullable, Text};
use pingback_domain::{InboxOrder, InboxPage, InboxQuery};

use crate::rows::{AttachmentRow, CorruptRow};
use crate::schema::DbUuid;
use crate::schema::sql::Uuid;
use crate::snapshot_read::{
    ConversationSql, CustomerSql, MessageSql, Width, conversation_at, customer_at, message_at,
};

/// The attachments column of a page row, the business bound between the two parts:
/// per attachment, in position order, `[id, file_name, content_type, byte_size, url]`
/// (`ATTACHMENT_FIELDS` texts).
const ATTACHMENTS_SQL: [&str; 2] = [
    "ARRAY(SELECT ARRAY[a.id::text, a.file_name, a.content_type, a.byte_size::text, a.url] \
     FROM attachments a WHERE a.business_id = ",
    " AND a.message_id = \"conversations\".\"last_message_id\" ORDER BY a.position)",
];
const ATTACHMENT_FIELDS: usize = 5;

/// The statement around the page: `[head, middle, tail]`, the business bound after
/// `head`, the page between `middle` and `tail`.
const OUTER_SQL: [&str; 3] = [
    "SELECT n.last_event_id, p.* FROM (SELECT max(\"business_event_counters\".\"last_event_id\") \
     AS last_event_id FROM \"business_event_counters\" \
     WHERE \"business_event_counters\".\"business_id\" = ",
    ") n LEFT JOIN (",
    ") p ON true",
];

/// The attachments column of a page row (`ATTACHMENTS_SQL` with the business bound).
/// Not a `diesel::dsl::sql` literal: Diesel never caches the prepared statement of a
/// query holding one, so PostgreSQL would parse and plan the page on every request
/// (measured: 4× the database's CPU per page).
#[derive(Clone, Copy)]
pub(crate) struct LatestAttachments {
    business: DbUuid,
}

impl diesel::Expression for LatestAttachments {
    // Two-dimensional; PostgreSQL's type is `text[]` all the same.
    type SqlType = Array<Text>;
}

impl QueryFragment<Pg> for LatestAttachments {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let [head, tail] = ATTACHMENTS_SQL;
        out.push_sql(head);
        out.push_bind_param::<Uuid, _>(&self.business)?;
        out.push_sql(tail);
        Ok(())
    }
}

impl QueryId for LatestAttachments {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<QS> diesel::SelectableExpression<QS> for LatestAttachments {}

impl<QS> diesel::AppearsOnTable<QS> for LatestAttachments {}

impl<GB> diesel::expression::ValidGrouping<GB> for LatestAttachments {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

/// The whole statement for `query` in `business`: `inbox_query!` (the same filters,
/// order and limit as SQLite's) with the attachments column, inside `OUTER_SQL`.
pub(crate) fn statement(
    business: DbUuid,
    query: &InboxQuery,
) -> InboxRead<impl QueryFragment<Pg> + Send> {
    InboxRead {
        business,
        page: crate::inbox::inbox_query!(
            Pg,
            business,
            query,
            extra: [LatestAttachments { business }]
        ),
    }
}

/// The inbox page with its attachments and the business's last event id; see the
/// module documentation. `page` is the page statement.
pub(crate) struct InboxRead<P> {
    business: DbUuid,
    page: P,
}

// The SQL depends on the filters: prepared statements are cached by their text.
impl<P> QueryId for InboxRead<P> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<P> Query for InboxRead<P> {
    type SqlType = (
        Nullable<BigInt>,
        Nullable<ConversationSql>,
        Nullable<CustomerSql>,
        Nullable<MessageSql>,
        Nullable<BigInt>,
        // Two-dimensional; PostgreSQL's type is `text[]` all the same.
        Nullable<Array<Text>>,
    );
}

impl<P: QueryFragment<Pg>> QueryFragment<Pg> for InboxRead<P> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let [head, middle, tail] = OUTER_SQL;
        out.push_sql(head);
        out.push_bind_param::<Uuid, _>(&self.business)?;
        out.push_sql(middle);
        self.page.walk_ast(out.reborrow())?;
        out.push_sql(tail);
        Ok(())
    }
}

// Column offsets, derived from the SQL types (`last_event_id` is column 0).
const CONVERSATION: usize = 1;
const CUSTOMER: usize = CONVERSATION + ConversationSql::WIDTH;
const MESSAGE: usize = CUSTOMER + CustomerSql::WIDTH;
const MESSAGE_COUNT: usize = MESSAGE + MessageSql::WIDTH;
const ATTACHMENTS: usize = MESSAGE_COUNT + 1;

/// One row of the statement: the last event id, and a page row unless the page is
/// empty.
pub(crate) struct InboxRow {
    last_event_id: Option<i64>,
    item: Option<(crate::inbox::InboxRecord, Vec<AttachmentRow>)>,
}

impl FromSqlRow<<InboxRead<()> as Query>::SqlType, Pg> for InboxRow {
    fn build_from_row<'a>(row: &impl Row<'a, Pg>) -> deserialize::Result<Self> {
        let last_event_id = row.get_value::<Nullable<BigInt>, Option<i64>, _>(0)?;
        // The conversation's primary key is NULL exactly on the row of an empty page.
        if row
            .get_value::<Nullable<Uuid>, Option<DbUuid>, _>(CONVERSATION + 1)?
            .is_none()
        {
            return Ok(Self {
                last_event_id,
                item: None,
            });
        }
        let conversation = conversation_at(row, CONVERSATION)?;
        let customer = customer_at(row, CUSTOMER)?;
        // The message's id is NULL exactly when the conversation has no message.
        let message = match row.get_value::<Nullable<Uuid>, Option<DbUuid>, _>(MESSAGE)? {
            None => None,
            Some(_) => Some(message_at(row, MESSAGE)?),
        };
        let count = row.get_value::<BigInt, i64, _>(MESSAGE_COUNT)?;
        let Attachments(attachments) = row.get_value::<Array<Text>, _, _>(ATTACHMENTS)?;
        Ok(Self {
            last_event_id,
            item: Some(((conversation, customer, message, count), attachments)),
        })
    }
}

/// A page row's attachments column: its two-dimensional `text[]` read off the binary
/// array format (Diesel reads one-dimensional arrays only): the number of dimensions,
/// a has-NULLs flag, the element type, each dimension's length and lower bound, then
/// each element as its length and its bytes, row by row.
struct Attachments(Vec<AttachmentRow>);

impl FromSql<Array<Text>, Pg> for Attachments {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let mut input = Input(value.as_bytes());
        let dimensions = input.int()?;
        let _has_nulls = input.int()?;
        let _element_type = input.int()?;
        if dimensions == 0 {
            return Ok(Self(Vec::new()));
        }
        let (count, _) = (input.int()?, input.int()?);
        let (fields, _) = (input.int()?, input.int()?);
        if dimensions != 2 || usize::try_from(fields).ok() != Some(ATTACHMENT_FIELDS) {
            return Err(format!(
                "inbox attachments: a {dimensions}-dimensional array of {fields} fields"
            )
            .into());
        }
        let attachments = (0..count)
            .map(|_| {
                Ok(AttachmentRow {
                    id: DbUuid(uuid::Uuid::parse_str(input.text()?)?),
                    file_name: input.text()?.to_owned(),
                    content_type: input.text()?.to_owned(),
                    byte_size: input.text()?.parse()?,
                    url: input.text()?.to_owned(),
                })
            })
            .collect::<deserialize::Result<_>>()?;
        if !input.0.is_empty() {
            return Err("inbox attachments: bytes after the last element".into());
        }
        Ok(Self(attachments))
    }
}

/// The bytes of a binary array not read yet.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn int(&mut self) -> deserialize::Result<i32> {
        let (head, rest) = self
            .0
            .split_first_chunk::<4>()
            .ok_or("inbox attachments: truncated array")?;
        self.0 = rest;
        Ok(i32::from_be_bytes(*head))
    }

    /// An element: its length (-1 for NULL, which none is here), then its text.
    fn text(&mut self) -> deserialize::Result<&'a str> {
        let length = usize::try_from(self.int()?).map_err(|_| "inbox attachments: a NULL")?;
        let (own, rest) = self
            .0
            .split_at_checked(length)
            .ok_or("inbox attachments: truncated element")?;
        self.0 = rest;
        Ok(std::str::from_utf8(own)?)
    }
}

/// The page from the statement's rows.
pub(crate) fn page(query: &InboxQuery, rows: Vec<InboxRow>) -> Result<InboxPage, CorruptRow> {
    let last_event_id = rows.first().and_then(|r| r.last_event_id).unwrap_or(0);
    let mut records: Vec<_> = rows.into_iter().filter_map(|r| r.item).collect();
    let key = |r: &(crate::inbox::InboxRecord, Vec<AttachmentRow>)| {
        let c = &(r.0).0;
        (c.updated_at.0, c.id.0)
    };
    let order = |a: &_, b: &_| -> Ordering {
        match query.order {
            InboxOrder::NewestFirst => key(b).cmp(&key(a)),
            InboxOrder::OldestFirst => key(a).cmp(&key(b)),
        }
    };
    if !records.is_sorted_by(|a, b| order(a, b) != Ordering::Greater) {
        records.sort_by(order);
    }
    crate::inbox::page_of(query, records, last_event_id)
}

#[cfg(test)]
mod tests {
    use pingback_domain::{InboxFilter, InboxPosition, Status, Timestamp};

    use super::*;

    #[test]
    fn every_table_is_filtered_by_the_business() {
        let business = DbUuid(uuid::Uuid::from_u128(1));
        let query = InboxQuery {
            filter: InboxFilter {
                statuses: vec![Status::Open],
                ..InboxFilter::default()
            },
            order: InboxOrder::NewestFirst,
            after: Some(InboxPosition {
                updated_at: Timestamp::from_unix_micros(0).unwrap(),
                id: pingback_domain::ConversationId::from_uuid(uuid::Uuid::nil()),
            }),
            limit: 25,
        };
        let sql = diesel::debug_query::<Pg, _>(&statement(business, &query)).to_string();
        for scoped in [
            "\"business_event_counters\".\"business_id\" = $1",
            "a.business_id = $2",
            "\"conversations\".\"business_id\" = $3",
            "\"customers\".\"business_id\" = \"conversations\".\"business_id\"",
            "\"messages\".\"business_id\" = \"conversations\".\"business_id\"",
        ] {
            assert!(sql.contains(scoped), "{scoped} missing in {sql}");
        }
        // Every uuid bound before the cursor is the business.
        let binds = sql.rsplit_once("-- binds: ").map(|(_, b)| b).unwrap();
        assert_eq!(binds.matches(&business.0.to_string()).count(), 3, "{binds}");
        assert_eq!(sql.matches("SELECT").count(), 4, "{sql}");
    }

    /// Each connection prepares the statement once (per filter combination) and then
    /// only binds and executes it: not cacheable, PostgreSQL would parse and plan the
    /// page on every request.
    #[test]
    fn the_statement_is_prepared_once() {
        let business = DbUuid(uuid::Uuid::from_u128(1));
        for filter in [
            InboxFilter::default(),
            InboxFilter {
                statuses: vec![Status::Open, Status::Pending],
                assignee: Some(pingback_domain::AssigneeFilter::Unassigned),
                ..InboxFilter::default()
            },
        ] {
            let query = InboxQuery {
                filter,
                order: InboxOrder::OldestFirst,
                after: None,
                limit: 25,
            };
            assert!(
                statement(business, &query)
                    .is_safe_to_cache_prepared(&Pg)
                    .unwrap()
            );
        }
    }
}
