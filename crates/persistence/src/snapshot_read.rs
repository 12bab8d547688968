//! The PostgreSQL read of one conversation as ONE statement.
//!
//! One statement sees one snapshot, so a concurrent import is seen entirely or not at
//! all without a transaction around the read; and a read that needs no transaction can
//! share its connection with any number of concurrent reads (see
//! `postgres::ReadConnections`). Three `UNION ALL` branches, told apart by `part`:
//!
//! - `0`: the conversation and its customer (at most one row);
//! - `1`: the messages in history order, straight from the `(business_id,
//!   conversation_id, created_at, id)` index: no sort;
//! - `2`: the conversation's attachments, any order (placed and ordered by
//!   `message_id`, `position` here: a join would have cost a sort of every row).
//!
//! The branches share ten columns, so a message row (nearly every row) carries five
//! NULLs rather than the 27 it did when each branch had columns of its own: five typed
//! slots that a message fills and an attachment mostly reuses, then four arrays, one
//! per column type, that hold the one conversation row's fields and an attachment's
//! last ones. The padding cost PostgreSQL and the decoding here per row: the narrow
//! rows served 1,000-message conversations ~30 % faster in pgbench
//! (`docs/performance.md`). Each array's columns are listed once, below; the SQL and
//! the positions the decoding reads are both derived from those lists.
//!
//! Nothing below depends on the order of the rows for correctness: the aggregate
//! orders messages itself (input already in order, as here, is checked in linear time)
//! and attachments are placed by message and position.

use std::sync::LazyLock;

use diesel::QueryResult;
use diesel::deserialize::{self, FromSqlRow};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::row::Row;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
use futures_util::{Stream, TryStreamExt};
use pingback_domain::{Conversation, Message};

use crate::rows::{
    self, AttachmentRow, ConversationRecord, ConversationRow, CorruptRow, CustomerRow, MessageRow,
};
use crate::schema::sql::{Instant, Uuid};
use crate::schema::{DbUuid, Micros};

/// The typed slots (columns 1 to 5): a message's columns, in `MessageSql`'s order.
const MESSAGE_SLOTS: [&str; 5] = [
    "m.id",
    "m.sender_type",
    "m.sender_id",
    "m.content",
    "m.created_at",
];
/// An attachment's use of the same slots (their types: uuid, text, uuid, text, instant).
const ATTACHMENT_SLOTS: [&str; 5] = [
    "a.message_id",
    "a.file_name",
    "a.id",
    "a.content_type",
    "NULL",
];
/// The conversation row's arrays (columns 6 to 9), one per column type.
const CONVERSATION_UUIDS: [&str; 6] = [
    "c.business_id",
    "c.id",
    "c.customer_id",
    "c.assignee_id",
    "c.channel_id",
    // NULL exactly when the left join found no customer (its primary key).
    "cu.id",
];
const CONVERSATION_TEXTS: [&str; 6] = [
    "c.status",
    "c.channel_type",
    "cu.name",
    "cu.email",
    "cu.phone",
    "cu.external_id",
];
const CONVERSATION_INSTANTS: [&str; 4] = [
    "c.created_at",
    "c.updated_at",
    "c.first_response_at",
    "cu.created_at",
];
const CONVERSATION_NUMBERS: [&str; 2] = ["c.revision", "cu.revision"];
/// An attachment's fields that have no slot.
const ATTACHMENT_TEXTS: [&str; 1] = ["a.url"];
const ATTACHMENT_NUMBERS: [&str; 2] = ["a.position::bigint", "a.byte_size"];

/// Where `column` is in `list`; a name missing from it fails the build.
#[allow(
    clippy::panic,
    reason = "only called in `const` blocks: a build error, never a run-time one"
)]
const fn at(list: &[&str], column: &str) -> usize {
    let mut i = 0;
    while i < list.len() {
        if const_eq(list[i], column) {
            return i;
        }
        i += 1;
    }
    panic!("column not in the list")
}

const fn const_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The statement, split where the business id and the conversation id are bound, in
/// turn; made from the lists above on first use.
static SQL: LazyLock<[String; 7]> = LazyLock::new(|| {
    let array = |columns: &[&str]| format!("ARRAY[{}]", columns.join(", "));
    let nulls = |n: usize| vec!["NULL"; n].join(", ");
    [
        format!(
            "(SELECT 0, NULL::uuid, NULL::text, NULL::uuid, NULL::text, NULL::timestamptz, \
               {}, {}, {}, {} \
             FROM conversations c \
             LEFT JOIN customers cu ON cu.business_id = c.business_id AND cu.id = c.customer_id \
             WHERE c.business_id = ",
            array(&CONVERSATION_UUIDS),
            array(&CONVERSATION_TEXTS),
            array(&CONVERSATION_INSTANTS),
            array(&CONVERSATION_NUMBERS),
        ),
        " AND c.id = ".to_owned(),
        format!(
            ") UNION ALL (SELECT 1, {}, {} FROM messages m WHERE m.business_id = ",
            MESSAGE_SLOTS.join(", "),
            nulls(4),
        ),
        " AND m.conversation_id = ".to_owned(),
        format!(
            " ORDER BY m.created_at, m.id) UNION ALL (SELECT 2, {}, NULL, {}, NULL, {} \
             FROM attachments a WHERE a.business_id = ",
            ATTACHMENT_SLOTS.join(", "),
            array(&ATTACHMENT_TEXTS),
            array(&ATTACHMENT_NUMBERS),
        ),
        " AND a.conversation_id = ".to_owned(),
        ")".to_owned(),
    ]
});

/// Reads one conversation of one business; see the module documentation.
#[derive(QueryId, Clone, Copy)]
pub(crate) struct ConversationRead {
    pub business: DbUuid,
    pub id: DbUuid,
}

pub(crate) type ConversationSql = (
    Uuid,
    Uuid,
    Nullable<Uuid>,
    Nullable<Uuid>,
    Text,
    Text,
    Nullable<Uuid>,
    Instant,
    Instant,
    Nullable<Instant>,
    BigInt,
);
pub(crate) type CustomerSql = (
    Uuid,
    Uuid,
    Nullable<Text>,
    Nullable<Text>,
    Nullable<Text>,
    Nullable<Text>,
    Instant,
    BigInt,
);
pub(crate) type MessageSql = (Uuid, Text, Nullable<Uuid>, Text, Instant);

impl Query for ConversationRead {
    type SqlType = (
        Integer,
        Nullable<Uuid>,
        Nullable<Text>,
        Nullable<Uuid>,
        Nullable<Text>,
        Nullable<Instant>,
        Nullable<Array<Nullable<Uuid>>>,
        Nullable<Array<Nullable<Text>>>,
        Nullable<Array<Nullable<Instant>>>,
        Nullable<Array<Nullable<BigInt>>>,
    );
}

impl QueryFragment<Pg> for ConversationRead {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let [head, rest @ ..] = &*SQL;
        out.push_sql(head);
        for (i, sql) in rest.iter().enumerate() {
            let value = if i % 2 == 0 { &self.business } else { &self.id };
            out.push_bind_param::<Uuid, _>(value)?;
            out.push_sql(sql);
        }
        Ok(())
    }
}

/// An attachment with what places it: its message and its position there.
pub(crate) struct PlacedAttachmentRow {
    message_id: DbUuid,
    position: i32,
    attachment: AttachmentRow,
}

/// One row of the statement. Rows are decoded by hand: `part` first, then only that
/// part's columns (decoding every group and discarding the NULL ones cost a fifth of
/// a read's CPU). The rare parts are boxed so the message rows stay small.
pub(crate) enum ReadRow {
    Conversation(Box<ConversationRecord>),
    /// Made a domain message at once: one move per message less on the way to the
    /// aggregate.
    Message(Message),
    Attachment(Box<PlacedAttachmentRow>),
}

/// How many result columns a SQL type takes (a tuple: the sum of its members).
pub(crate) trait Width {
    const WIDTH: usize;
}

macro_rules! one_column {
    ($($sql:ty),+) => {$(
        impl Width for $sql {
            const WIDTH: usize = 1;
        }
    )+};
}
one_column!(Uuid, Instant, Text, BigInt);

impl<T: Width> Width for Nullable<T> {
    const WIDTH: usize = T::WIDTH;
}

macro_rules! tuple_width {
    ($($member:ident),+) => {
        impl<$($member: Width),+> Width for ($($member,)+) {
            const WIDTH: usize = 0 $(+ $member::WIDTH)+;
        }
    };
}
tuple_width!(A, B, C, D, E);
tuple_width!(A, B, C, D, E, F);
tuple_width!(A, B, C, D, E, F, G, H);
tuple_width!(A, B, C, D, E, F, G, H, I, J, K);

// The columns after `part`.
const SLOTS: usize = 1;
const UUIDS: usize = 6;
const TEXTS: usize = 7;
const INSTANTS: usize = 8;
const NUMBERS: usize = 9;

impl FromSqlRow<<ConversationRead as Query>::SqlType, Pg> for ReadRow {
    fn build_from_row<'a>(row: &impl Row<'a, Pg>) -> deserialize::Result<Self> {
        match row.get_value::<Integer, i32, _>(0)? {
            0 => Ok(Self::Conversation(Box::new(conversation_record(row)?))),
            1 => Ok(Self::Message(rows::message(
                message_at(row, SLOTS)?,
                Vec::new(),
            )?)),
            2 => Ok(Self::Attachment(Box::new(placed_attachment(row)?))),
            part => Err(format!("conversation read: unexpected part {part}").into()),
        }
    }
}

/// One of a row's arrays, checked to hold what its list names.
fn array<'a, T, ST>(
    row: &impl Row<'a, Pg>,
    column: usize,
    names: &[&str],
) -> deserialize::Result<Vec<Option<T>>>
where
    ST: diesel::sql_types::SingleValue,
    Pg: diesel::sql_types::HasSqlType<ST>,
    Vec<Option<T>>: deserialize::FromSql<Array<Nullable<ST>>, Pg>,
{
    let values = row
        .get_value::<Nullable<Array<Nullable<ST>>>, Option<Vec<Option<T>>>, _>(column)?
        .ok_or("conversation read: an array is NULL")?;
    if values.len() != names.len() {
        return Err(format!(
            "conversation read: {} values for the columns {names:?}",
            values.len()
        )
        .into());
    }
    Ok(values)
}

/// The value of a column that is never NULL.
fn required<T>(values: &mut [Option<T>], index: usize, name: &str) -> deserialize::Result<T> {
    values[index]
        .take()
        .ok_or_else(|| format!("conversation read: {name} is NULL").into())
}

fn conversation_record<'a>(row: &impl Row<'a, Pg>) -> deserialize::Result<ConversationRecord> {
    let mut uuids = array::<DbUuid, Uuid>(row, UUIDS, &CONVERSATION_UUIDS)?;
    let mut texts = array::<String, Text>(row, TEXTS, &CONVERSATION_TEXTS)?;
    let mut instants = array::<Micros, Instant>(row, INSTANTS, &CONVERSATION_INSTANTS)?;
    let mut numbers = array::<i64, BigInt>(row, NUMBERS, &CONVERSATION_NUMBERS)?;
    macro_rules! take {
        ($values:ident, $list:ident, $name:literal) => {
            $values[const { at(&$list, $name) }].take()
        };
        ($values:ident, $list:ident, $name:literal, required) => {
            required(&mut $values, const { at(&$list, $name) }, $name)?
        };
    }
    let conversation = ConversationRow {
        business_id: take!(uuids, CONVERSATION_UUIDS, "c.business_id", required),
        id: take!(uuids, CONVERSATION_UUIDS, "c.id", required),
        customer_id: take!(uuids, CONVERSATION_UUIDS, "c.customer_id"),
        assignee_id: take!(uuids, CONVERSATION_UUIDS, "c.assignee_id"),
        status: take!(texts, CONVERSATION_TEXTS, "c.status", required),
        channel_type: take!(texts, CONVERSATION_TEXTS, "c.channel_type", required),
        channel_id: take!(uuids, CONVERSATION_UUIDS, "c.channel_id"),
        created_at: take!(instants, CONVERSATION_INSTANTS, "c.created_at", required),
        updated_at: take!(instants, CONVERSATION_INSTANTS, "c.updated_at", required),
        first_response_at: take!(instants, CONVERSATION_INSTANTS, "c.first_response_at"),
        revision: take!(numbers, CONVERSATION_NUMBERS, "c.revision", required),
    };
    // The join's condition makes the customer's business the conversation's.
    let customer = match take!(uuids, CONVERSATION_UUIDS, "cu.id") {
        None => None,
        Some(id) => Some(CustomerRow {
            business_id: conversation.business_id,
            id,
            name: take!(texts, CONVERSATION_TEXTS, "cu.name"),
            email: take!(texts, CONVERSATION_TEXTS, "cu.email"),
            phone: take!(texts, CONVERSATION_TEXTS, "cu.phone"),
            external_id: take!(texts, CONVERSATION_TEXTS, "cu.external_id"),
            created_at: take!(instants, CONVERSATION_INSTANTS, "cu.created_at", required),
            revision: take!(numbers, CONVERSATION_NUMBERS, "cu.revision", required),
        }),
    };
    Ok((conversation, customer))
}

fn placed_attachment<'a>(row: &impl Row<'a, Pg>) -> deserialize::Result<PlacedAttachmentRow> {
    let mut texts = array::<String, Text>(row, TEXTS, &ATTACHMENT_TEXTS)?;
    let mut numbers = array::<i64, BigInt>(row, NUMBERS, &ATTACHMENT_NUMBERS)?;
    let position = required(
        &mut numbers,
        const { at(&ATTACHMENT_NUMBERS, "a.position::bigint") },
        "a.position",
    )?;
    Ok(PlacedAttachmentRow {
        message_id: row
            .get_value::<Uuid, _, _>(const { SLOTS + at(&ATTACHMENT_SLOTS, "a.message_id") })?,
        position: i32::try_from(position)?,
        attachment: AttachmentRow {
            id: row.get_value::<Uuid, _, _>(const { SLOTS + at(&ATTACHMENT_SLOTS, "a.id") })?,
            file_name: row
                .get_value::<Text, _, _>(const { SLOTS + at(&ATTACHMENT_SLOTS, "a.file_name") })?,
            content_type: row.get_value::<Text, _, _>(
                const { SLOTS + at(&ATTACHMENT_SLOTS, "a.content_type") },
            )?,
            byte_size: required(
                &mut numbers,
                const { at(&ATTACHMENT_NUMBERS, "a.byte_size") },
                "a.byte_size",
            )?,
            url: required(
                &mut texts,
                const { at(&ATTACHMENT_TEXTS, "a.url") },
                "a.url",
            )?,
        },
    })
}

/// The conversation columns (`ConversationSql`) from column `start` on.
pub(crate) fn conversation_at<'a>(
    row: &impl Row<'a, Pg>,
    start: usize,
) -> deserialize::Result<ConversationRow> {
    let c = |i| start + i;
    Ok(ConversationRow {
        business_id: row.get_value::<Uuid, _, _>(c(0))?,
        id: row.get_value::<Uuid, _, _>(c(1))?,
        customer_id: row.get_value::<Nullable<Uuid>, _, _>(c(2))?,
        assignee_id: row.get_value::<Nullable<Uuid>, _, _>(c(3))?,
        status: row.get_value::<Text, _, _>(c(4))?,
        channel_type: row.get_value::<Text, _, _>(c(5))?,
        channel_id: row.get_value::<Nullable<Uuid>, _, _>(c(6))?,
        created_at: row.get_value::<Instant, _, _>(c(7))?,
        updated_at: row.get_value::<Instant, _, _>(c(8))?,
        first_response_at: row.get_value::<Nullable<Instant>, _, _>(c(9))?,
        revision: row.get_value::<BigInt, _, _>(c(10))?,
    })
}

/// The customer columns (`CustomerSql`) from column `start` on; `None` when they are
/// NULL (a left join that found no customer).
pub(crate) fn customer_at<'a>(
    row: &impl Row<'a, Pg>,
    start: usize,
) -> deserialize::Result<Option<CustomerRow>> {
    let c = |i| start + i;
    // The customer's primary key is NULL exactly when there is no customer.
    let Some(id) = row.get_value::<Nullable<Uuid>, Option<DbUuid>, _>(c(1))? else {
        return Ok(None);
    };
    Ok(Some(CustomerRow {
        business_id: row.get_value::<Uuid, _, _>(c(0))?,
        id,
        name: row.get_value::<Nullable<Text>, _, _>(c(2))?,
        email: row.get_value::<Nullable<Text>, _, _>(c(3))?,
        phone: row.get_value::<Nullable<Text>, _, _>(c(4))?,
        external_id: row.get_value::<Nullable<Text>, _, _>(c(5))?,
        created_at: row.get_value::<Instant, _, _>(c(6))?,
        revision: row.get_value::<BigInt, _, _>(c(7))?,
    }))
}

/// The message columns (`MessageSql`) from column `start` on.
pub(crate) fn message_at<'a>(
    row: &impl Row<'a, Pg>,
    start: usize,
) -> deserialize::Result<MessageRow> {
    let c = |i| start + i;
    Ok(MessageRow {
        id: row.get_value::<Uuid, _, _>(c(0))?,
        sender_type: row.get_value::<Text, _, _>(c(1))?,
        sender_id: row.get_value::<Nullable<Uuid>, _, _>(c(2))?,
        content: row.get_value::<Text, _, _>(c(3))?,
        created_at: row.get_value::<Instant, _, _>(c(4))?,
    })
}

/// The statement's rows, sorted by part as they arrive (`Collected::from_rows`): the
/// messages go straight into the aggregate's vector, with no vector of every row beside
/// it (that doubled a long history's memory while the aggregate was made).
#[derive(Default)]
pub(crate) struct Collected {
    header: Option<ConversationRecord>,
    conversation_rows: usize,
    messages: Vec<Message>,
    attachments: Vec<PlacedAttachmentRow>,
}

impl Collected {
    /// Folds the statement's row stream (`load_stream`) as it arrives, in place: a fold
    /// by value (`try_fold`) moved the whole `Collected`, header included, twice per
    /// row (`memmove`, 3 % of a 100-message read's CPU).
    pub(crate) async fn from_rows(
        rows: impl Stream<Item = QueryResult<ReadRow>>,
    ) -> QueryResult<Self> {
        let mut rows = std::pin::pin!(rows);
        let mut collected = Self::default();
        while let Some(row) = rows.try_next().await? {
            collected.add(row);
        }
        Ok(collected)
    }

    fn add(&mut self, row: ReadRow) {
        match row {
            ReadRow::Conversation(record) => {
                self.conversation_rows += 1;
                self.header = Some(*record);
            }
            ReadRow::Message(message) => self.messages.push(message),
            ReadRow::Attachment(attachment) => self.attachments.push(*attachment),
        }
    }
}

/// The aggregate from the statement's rows; `None` when the conversation is not in the
/// business. A row that breaks the domain's rules is an internal error.
pub(crate) fn found_by_statement(
    rows: Collected,
) -> Result<Option<Conversation>, pingback_application::RepositoryError> {
    aggregate_of(rows).map_err(pingback_application::RepositoryError::internal)
}

fn aggregate_of(rows: Collected) -> Result<Option<Conversation>, CorruptRow> {
    let Collected {
        header,
        conversation_rows,
        mut messages,
        attachments,
    } = rows;
    if conversation_rows > 1 {
        return Err(rows::corrupt("conversation read", "two conversation rows"));
    }
    let Some(header) = header else {
        return Ok(None);
    };
    if !attachments.is_empty() {
        messages = with_attachments(messages, attachments)?;
    }
    rows::assemble(header, messages).map(Some)
}

/// Gives each message its attachments, in position order.
fn with_attachments(
    messages: Vec<Message>,
    mut attachments: Vec<PlacedAttachmentRow>,
) -> Result<Vec<Message>, CorruptRow> {
    // In (message, position) order; each message finds its own by binary search (a
    // conversation has far fewer attachments than messages).
    attachments.sort_unstable_by_key(|a| (a.message_id.0, a.position));
    let mut attachments: Vec<(DbUuid, Option<AttachmentRow>)> = attachments
        .into_iter()
        .map(|a| (a.message_id, Some(a.attachment)))
        .collect();
    messages
        .into_iter()
        .map(|m| {
            let id = DbUuid::from(m.id());
            let start = attachments.partition_point(|(owner, _)| owner.0 < id.0);
            let own = attachments[start..]
                .iter_mut()
                .take_while(|(owner, _)| *owner == id)
                .filter_map(|(_, a)| a.take())
                .map(rows::attachment)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if own.is_empty() {
                m
            } else {
                m.with_attachments(own)
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn every_branch_is_bound_to_the_business_and_the_conversation() {
        let read = ConversationRead {
            business: DbUuid(uuid::Uuid::from_u128(1)),
            id: DbUuid(uuid::Uuid::from_u128(2)),
        };
        let sql = diesel::debug_query::<Pg, _>(&read).to_string();
        for scoped in [
            "c.business_id = $1 AND c.id = $2",
            "m.business_id = $3 AND m.conversation_id = $4",
            "a.business_id = $5 AND a.conversation_id = $6",
        ] {
            assert!(sql.contains(scoped), "{scoped} missing in {sql}");
        }
        assert!(sql.contains("cu.business_id = c.business_id"), "{sql}");
        assert_eq!(sql.matches("SELECT").count(), 3);
        assert_eq!(sql.matches("WHERE").count(), 3);
    }

    /// The columns a `Selectable` row reads, in field order, e.g. `["business_id", …]`
    /// (also the inbox statement's check, `inbox_read`).
    pub(crate) fn selected<Q: QueryFragment<Pg>>(query: Q) -> Vec<String> {
        let sql = diesel::debug_query::<Pg, _>(&query).to_string();
        let (list, _) = sql
            .trim_start_matches("SELECT ")
            .split_once(" FROM ")
            .expect("a FROM");
        list.split(", ")
            .map(|c| {
                c.rsplit('.')
                    .next()
                    .unwrap_or(c)
                    .trim_matches('"')
                    .to_owned()
            })
            .collect()
    }

    /// The lists the statement and its decoding are made from name exactly the columns
    /// the row structs read (the customer's `business_id` is the conversation's, by the
    /// join), and the message slots are in `MessageSql`'s order. This fails naming the
    /// column that is missing or extra.
    #[test]
    fn the_column_lists_match_the_rows() {
        use diesel::{QueryDsl, SelectableHelper};

        use crate::schema::{attachments, conversations, customers, messages};

        let with_alias = |alias: &str, columns: Vec<String>| -> Vec<String> {
            columns.into_iter().map(|c| format!("{alias}{c}")).collect()
        };
        let sorted = |mut columns: Vec<String>| {
            columns.sort();
            columns
        };
        let listed = |lists: &[&[&str]]| -> Vec<String> {
            sorted(
                lists
                    .iter()
                    .flat_map(|l| l.iter())
                    .filter(|c| **c != "NULL")
                    .map(|c| c.trim_end_matches("::bigint").to_owned())
                    .collect(),
            )
        };

        let mut conversation = with_alias(
            "c.",
            selected(conversations::table.select(ConversationRow::as_select())),
        );
        conversation.extend(
            with_alias(
                "cu.",
                selected(customers::table.select(CustomerRow::as_select())),
            )
            .into_iter()
            .filter(|c| c != "cu.business_id"),
        );
        assert_eq!(
            listed(&[
                &CONVERSATION_UUIDS,
                &CONVERSATION_TEXTS,
                &CONVERSATION_INSTANTS,
                &CONVERSATION_NUMBERS
            ]),
            sorted(conversation),
            "the conversation arrays and ConversationRow + CustomerRow"
        );

        assert_eq!(
            MESSAGE_SLOTS.to_vec(),
            with_alias(
                "m.",
                selected(messages::table.select(MessageRow::as_select()))
            ),
            "the message slots and MessageRow (message_at reads MessageSql's order)"
        );
        assert_eq!(MessageSql::WIDTH, MESSAGE_SLOTS.len());

        let mut attachment = with_alias(
            "a.",
            selected(attachments::table.select(AttachmentRow::as_select())),
        );
        attachment.extend(["a.message_id".to_owned(), "a.position".to_owned()]);
        assert_eq!(
            listed(&[&ATTACHMENT_SLOTS, &ATTACHMENT_TEXTS, &ATTACHMENT_NUMBERS]),
            sorted(attachment),
            "the attachment's columns and AttachmentRow + its placement"
        );
    }

    #[test]
    fn the_branches_select_ten_columns_each() {
        let sql = SQL.concat();
        for (branch, select) in sql.split("SELECT ").skip(1).enumerate() {
            let (list, _) = select.split_once(" FROM ").expect("a FROM per branch");
            // Commas outside ARRAY[…] separate the columns.
            let mut depth = 0;
            let mut columns = 1;
            for ch in list.chars() {
                match ch {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    ',' if depth == 0 => columns += 1,
                    _ => {}
                }
            }
            assert_eq!(columns, 10, "branch {branch}: {list}");
            assert!(
                list.starts_with(&branch.to_string()),
                "branch {branch}'s part"
            );
        }
    }
}
