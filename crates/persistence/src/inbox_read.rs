//! The PostgreSQL inbox page as ONE statement.
//!
//! One statement sees one snapshot, so the page, the attachments of its latest messages
//! and the business's `last_event_id` agree without a transaction around them; and a
//! statement that needs no transaction shares a read lane with concurrent reads (see
//! `postgres::ReadConnections`): one round trip, no connection of its own.
//!
//! ```sql
//! SELECT n.last_event_id, c.<conversation>, cu.<customer>, m.<message>, c.message_count,
//!        ARRAY(SELECT ARRAY[a.id::text, a.file_name, a.content_type, a.byte_size::text, a.url]
//!              FROM attachments a WHERE a.business_id = $1 AND a.message_id = c.last_message_id
//!              ORDER BY a.position)
//! FROM (SELECT max(last_event_id) AS last_event_id FROM business_event_counters
//!       WHERE business_id = $2) n
//! LEFT JOIN (<the page of conversation rows: inbox_conversations_query!>) c ON true
//! LEFT JOIN LATERAL (SELECT … FROM customers cu
//!                    WHERE cu.business_id = $k AND cu.id = c.customer_id OFFSET 0) cu ON true
//! LEFT JOIN LATERAL (SELECT … FROM messages m
//!                    WHERE m.business_id = $k+1 AND m.id = c.last_message_id OFFSET 0) m ON true
//! ```
//!
//! - `n` is always exactly one row (an aggregate without `GROUP BY`; NULL when the
//!   business has no event yet, read as 0), so an empty page still answers one row
//!   carrying `last_event_id`, with NULLs for the page's columns.
//! - The page is the conversation rows alone (the same filters, order and limit as
//!   SQLite's `inbox_query!`, an index range scan); the customer, the latest message
//!   and its attachments are looked up for the page's rows only, each by its key, one
//!   probe per row. The lookups are fenced (`LATERAL … OFFSET 0`, a subquery in the
//!   select list) so that no plan can do otherwise: the service runs generic plans
//!   (`postgres::setup`), which estimate a business's rows as the table's average
//!   per business. Joined to the page directly (as SQLite still does), the customers
//!   of the inbox's business were read in full once per page in a database of many
//!   small businesses and one large one (11,616 customers, 43 ms a page; here 1 ms).
//! - The attachments come in position order (the `(business_id, message_id,
//!   position)` unique index: no sort) as a two-dimensional `text[]`, one row of five
//!   per attachment, decoded here from PostgreSQL's binary array format. Measured
//!   against the alternatives (executor CPU per page of 26 rows, 5 % of them with
//!   attachments): `json_agg` cost 1.5× this column (an aggregate per row), an array
//!   of `ROW(…)` records as little as this one, but Citus cannot read anonymous
//!   records back from a worker ("input of anonymous composite types is not
//!   implemented"); a `text[]` it can.
//! - Every table is filtered by the business, bound as a value each time: on Citus the
//!   statement is routed to one shard.
//!
//! The rows come in the page's order (nested loops over one outer row); the page is
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

/// Per attachment, in position order: `[id, file_name, content_type, byte_size, url]`.
const ATTACHMENT_FIELDS: usize = 5;

/// The statement, split where the business is bound (four times) and where the page
/// statement goes (after the third part).
const SQL: [&str; 6] = [
    "SELECT n.last_event_id, \
       c.business_id, c.id, c.customer_id, c.assignee_id, c.status, c.channel_type, \
       c.channel_id, c.created_at, c.updated_at, c.first_response_at, c.revision, \
       cu.business_id, cu.id, cu.name, cu.email, cu.phone, cu.external_id, cu.created_at, \
       cu.revision, \
       m.id, m.sender_type, m.sender_id, m.content, m.created_at, \
       c.message_count, \
       ARRAY(SELECT ARRAY[a.id::text, a.file_name, a.content_type, a.byte_size::text, a.url] \
         FROM attachments a WHERE a.business_id = ",
    " AND a.message_id = c.last_message_id ORDER BY a.position) \
     FROM (SELECT max(last_event_id) AS last_event_id FROM business_event_counters \
       WHERE business_id = ",
    ") n LEFT JOIN (",
    ") c ON true \
     LEFT JOIN LATERAL (SELECT cu.business_id, cu.id, cu.name, cu.email, cu.phone, \
       cu.external_id, cu.created_at, cu.revision FROM customers cu \
       WHERE cu.business_id = ",
    " AND cu.id = c.customer_id OFFSET 0) cu ON true \
     LEFT JOIN LATERAL (SELECT m.id, m.sender_type, m.sender_id, m.content, m.created_at \
       FROM messages m WHERE m.business_id = ",
    " AND m.id = c.last_message_id OFFSET 0) m ON true",
];

/// The whole statement for `query` in `business`.
pub(crate) fn statement(
    business: DbUuid,
    query: &InboxQuery,
) -> InboxRead<impl QueryFragment<Pg> + Send> {
    InboxRead {
        business,
        page: crate::inbox::inbox_conversations_query!(business, query),
    }
}

/// The inbox page with its attachments and the business's last event id; see the
/// module documentation. `page` is the page of conversation rows.
pub(crate) struct InboxRead<P> {
    business: DbUuid,
    page: P,
}

// The SQL depends on the filters: prepared statements are cached by their text (the
// statement must stay cacheable: no `diesel::dsl::sql` literal in it, see the test).
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
        let [select, from, page, customer, message, tail] = SQL;
        out.push_sql(select);
        out.push_bind_param::<Uuid, _>(&self.business)?;
        out.push_sql(from);
        out.push_bind_param::<Uuid, _>(&self.business)?;
        out.push_sql(page);
        self.page.walk_ast(out.reborrow())?;
        out.push_sql(customer);
        out.push_bind_param::<Uuid, _>(&self.business)?;
        out.push_sql(message);
        out.push_bind_param::<Uuid, _>(&self.business)?;
        out.push_sql(tail);
        Ok(())
    }
}

impl Width for Array<Text> {
    const WIDTH: usize = 1;
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
        // The status, the cursor (three) and the limit are $4 to $8.
        for scoped in [
            "a.business_id = $1 ",
            "business_event_counters WHERE business_id = $2)",
            "\"conversations\".\"business_id\" = $3",
            "cu.business_id = $9 AND cu.id = c.customer_id",
            "m.business_id = $10 AND m.id = c.last_message_id",
        ] {
            assert!(sql.contains(scoped), "{scoped} missing in {sql}");
        }
        let binds = sql.rsplit_once("-- binds: ").map(|(_, b)| b).unwrap();
        assert_eq!(binds.matches(&business.0.to_string()).count(), 5, "{binds}");
        assert_eq!(sql.matches("SELECT").count(), 6, "{sql}");
    }

    /// The select lists are written out in `SQL`: they must be the row structs'
    /// columns, in their order, where the decoding reads them (`Query::SqlType`).
    #[test]
    fn the_select_lists_are_the_rows_columns_at_their_offsets() {
        use diesel::{QueryDsl, SelectableHelper};

        use crate::rows::{ConversationRow, CustomerRow, MessageRow};
        use crate::schema::{conversations, customers, messages};
        use crate::snapshot_read::tests::selected;

        let conversation = selected(conversations::table.select(ConversationRow::as_select()));
        let customer = selected(customers::table.select(CustomerRow::as_select()));
        let message = selected(messages::table.select(MessageRow::as_select()));
        let prefixed = |alias: &str, columns: &[String]| -> Vec<String> {
            columns.iter().map(|c| format!("{alias}.{c}")).collect()
        };
        let (list, _) = SQL[0]
            .trim_start_matches("SELECT ")
            .split_once(", ARRAY(")
            .unwrap();
        let outer: Vec<String> = list.split(',').map(|c| c.trim().to_owned()).collect();
        let want = [
            vec!["n.last_event_id".to_owned()],
            prefixed("c", &conversation),
            prefixed("cu", &customer),
            prefixed("m", &message),
            vec!["c.message_count".to_owned()],
        ]
        .concat();
        assert_eq!(outer, want);
        assert_eq!(outer[CONVERSATION], "c.business_id");
        assert_eq!(outer[CUSTOMER], "cu.business_id");
        assert_eq!(outer[MESSAGE], "m.id");
        assert_eq!(outer[MESSAGE_COUNT], "c.message_count");
        assert_eq!(ATTACHMENTS, outer.len());
        assert_eq!(
            <<InboxRead<()> as Query>::SqlType as Width>::WIDTH,
            ATTACHMENTS + 1
        );
        // The lateral lookups select what the outer list reads of them.
        for (alias, columns) in [("cu", &customer), ("m", &message)] {
            let lookup = format!("SELECT {} FROM", prefixed(alias, columns).join(", "));
            let text = SQL
                .concat()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            assert!(text.contains(&lookup), "{lookup} missing in {text}");
        }
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
