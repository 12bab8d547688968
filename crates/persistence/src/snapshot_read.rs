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
//! Each branch pads the others' columns with NULLs. Nothing below depends on the order
//! of the rows for correctness: the aggregate orders messages itself (input already in
//! order, as here, is checked in linear time) and attachments are placed by message
//! and position.

use diesel::QueryResult;
use diesel::deserialize::{self, FromSqlRow};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::row::Row;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use pingback_domain::{Conversation, Message};

use crate::rows::{
    self, AttachmentRow, ConversationRecord, ConversationRow, CorruptRow, CustomerRow, MessageRow,
};
use crate::schema::DbUuid;
use crate::schema::sql::{Instant, Uuid};

/// The statement, split where the business id and the conversation id are bound, in
/// turn.
const SQL: [&str; 7] = [
    "(SELECT 0, \
       c.business_id, c.id, c.customer_id, c.assignee_id, c.status, c.channel_type, \
       c.channel_id, c.created_at, c.updated_at, c.first_response_at, c.revision, \
       cu.business_id, cu.id, cu.name, cu.email, cu.phone, cu.external_id, cu.created_at, \
       cu.revision, \
       NULL::uuid, NULL::text, NULL::uuid, NULL::text, NULL::timestamptz, \
       NULL::uuid, NULL::integer, NULL::uuid, NULL::text, NULL::text, NULL::bigint, NULL::text \
     FROM conversations c \
     LEFT JOIN customers cu ON cu.business_id = c.business_id AND cu.id = c.customer_id \
     WHERE c.business_id = ",
    " AND c.id = ",
    ") UNION ALL (SELECT 1, \
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
       m.id, m.sender_type, m.sender_id, m.content, m.created_at, \
       NULL, NULL, NULL, NULL, NULL, NULL, NULL \
     FROM messages m \
     WHERE m.business_id = ",
    " AND m.conversation_id = ",
    " ORDER BY m.created_at, m.id) UNION ALL (SELECT 2, \
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
       NULL, NULL, NULL, NULL, NULL, \
       a.message_id, a.position, a.id, a.file_name, a.content_type, a.byte_size, a.url \
     FROM attachments a \
     WHERE a.business_id = ",
    " AND a.conversation_id = ",
    ")",
];

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
type AttachmentSql = (Uuid, Integer, (Uuid, Text, Text, BigInt, Text));

impl Query for ConversationRead {
    type SqlType = (
        Integer,
        Nullable<ConversationSql>,
        Nullable<CustomerSql>,
        Nullable<MessageSql>,
        Nullable<AttachmentSql>,
    );
}

impl QueryFragment<Pg> for ConversationRead {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let [head, rest @ ..] = &SQL;
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
    Message(MessageRow),
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
one_column!(Uuid, Instant, Text, BigInt, Integer);

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
tuple_width!(A, B, C);
tuple_width!(A, B, C, D, E);
tuple_width!(A, B, C, D, E, F);
tuple_width!(A, B, C, D, E, F, G, H);
tuple_width!(A, B, C, D, E, F, G, H, I, J, K);

// Column offsets of each part in the statement's rows, derived from the SQL types
// (`part` is column 0). The test below checks `SQL` selects these columns there.
const CONVERSATION: usize = 1;
const CUSTOMER: usize = CONVERSATION + ConversationSql::WIDTH;
const MESSAGE: usize = CUSTOMER + CustomerSql::WIDTH;
const ATTACHMENT: usize = MESSAGE + MessageSql::WIDTH;

impl FromSqlRow<<ConversationRead as Query>::SqlType, Pg> for ReadRow {
    fn build_from_row<'a>(row: &impl Row<'a, Pg>) -> deserialize::Result<Self> {
        match row.get_value::<Integer, i32, _>(0)? {
            0 => {
                let conversation = conversation_at(row, CONVERSATION)?;
                let customer = customer_at(row, CUSTOMER)?;
                Ok(Self::Conversation(Box::new((conversation, customer))))
            }
            1 => Ok(Self::Message(message_at(row, MESSAGE)?)),
            2 => {
                let c = |i| ATTACHMENT + i;
                Ok(Self::Attachment(Box::new(PlacedAttachmentRow {
                    message_id: row.get_value::<Uuid, _, _>(c(0))?,
                    position: row.get_value::<Integer, _, _>(c(1))?,
                    attachment: AttachmentRow {
                        id: row.get_value::<Uuid, _, _>(c(2))?,
                        file_name: row.get_value::<Text, _, _>(c(3))?,
                        content_type: row.get_value::<Text, _, _>(c(4))?,
                        byte_size: row.get_value::<BigInt, _, _>(c(5))?,
                        url: row.get_value::<Text, _, _>(c(6))?,
                    },
                })))
            }
            part => Err(format!("conversation read: unexpected part {part}").into()),
        }
    }
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

/// The aggregate from the statement's rows; `None` when the conversation is not in the
/// business. A row that breaks the domain's rules is an internal error.
pub(crate) fn found_by_statement(
    rows: Vec<ReadRow>,
) -> Result<Option<Conversation>, pingback_application::RepositoryError> {
    aggregate_of(rows).map_err(pingback_application::RepositoryError::internal)
}

fn aggregate_of(rows: Vec<ReadRow>) -> Result<Option<Conversation>, CorruptRow> {
    let mut header: Option<ConversationRecord> = None;
    let mut messages = Vec::with_capacity(rows.len());
    let mut attachments = Vec::new();
    for row in rows {
        match row {
            ReadRow::Conversation(record) if header.is_none() => header = Some(*record),
            ReadRow::Conversation(_) => {
                return Err(rows::corrupt("conversation read", "two conversation rows"));
            }
            ReadRow::Message(message) => messages.push(message),
            ReadRow::Attachment(attachment) => attachments.push(*attachment),
        }
    }
    let Some(header) = header else {
        return Ok(None);
    };

    // Attachments in (message, position) order; each message finds its own by binary
    // search (a conversation has far fewer attachments than messages).
    attachments.sort_unstable_by_key(|a| (a.message_id.0, a.position));
    let mut attachments: Vec<(DbUuid, Option<AttachmentRow>)> = attachments
        .into_iter()
        .map(|a| (a.message_id, Some(a.attachment)))
        .collect();
    let messages = messages
        .into_iter()
        .map(|m| {
            let start = attachments.partition_point(|(owner, _)| owner.0 < m.id.0);
            let own = attachments[start..]
                .iter_mut()
                .take_while(|(owner, _)| *owner == m.id)
                .filter_map(|(_, a)| a.take())
                .map(rows::attachment)
                .collect::<Result<Vec<_>, _>>()?;
            rows::message(m, own)
        })
        .collect::<Result<Vec<Message>, _>>()?;
    rows::assemble(header, messages).map(Some)
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

    /// The select list of each `UNION ALL` branch of `SQL`, in branch order.
    fn branches() -> Vec<Vec<String>> {
        SQL.concat()
            .split("SELECT ")
            .skip(1)
            .map(|branch| {
                let (list, _) = branch.split_once(" FROM ").expect("a FROM per branch");
                list.split(',').map(|c| c.trim().to_owned()).collect()
            })
            .collect()
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

    /// A new column must be added in four places that cannot be derived from one
    /// another: the SQL text (and the NULL padding of the other branches), the SQL type
    /// of its part, the row struct and its decoding. This fails naming the mismatch.
    #[test]
    fn the_sql_text_the_sql_types_and_the_offsets_agree() {
        use diesel::{QueryDsl, SelectableHelper};

        use crate::schema::{attachments, conversations, customers, messages};

        let width = <<ConversationRead as Query>::SqlType as Width>::WIDTH;
        assert_eq!(
            ATTACHMENT + AttachmentSql::WIDTH,
            width,
            "the parts' SQL types do not add up to Query::SqlType"
        );
        let placement = ["message_id".to_owned(), "position".to_owned()];
        // (part, branch, first column, SQL types' width, table alias, row columns)
        let parts = [
            (
                "conversation",
                0,
                CONVERSATION,
                ConversationSql::WIDTH,
                "c.",
                selected(conversations::table.select(ConversationRow::as_select())),
            ),
            (
                "customer",
                0,
                CUSTOMER,
                CustomerSql::WIDTH,
                "cu.",
                selected(customers::table.select(CustomerRow::as_select())),
            ),
            (
                "message",
                1,
                MESSAGE,
                MessageSql::WIDTH,
                "m.",
                selected(messages::table.select(MessageRow::as_select())),
            ),
            (
                "attachment",
                2,
                ATTACHMENT,
                AttachmentSql::WIDTH,
                "a.",
                [
                    placement.to_vec(),
                    selected(attachments::table.select(AttachmentRow::as_select())),
                ]
                .concat(),
            ),
        ];
        let branches = branches();
        assert_eq!(branches.len(), 3, "three UNION ALL branches");
        for (branch, columns) in branches.iter().enumerate() {
            assert_eq!(
                columns.len(),
                width,
                "branch {branch} selects {} columns but Query::SqlType has {width}: {columns:?}",
                columns.len()
            );
            assert_eq!(
                columns[0],
                branch.to_string(),
                "branch {branch}'s `part` column"
            );
            for (part, part_branch, start, part_width, alias, row) in &parts {
                assert_eq!(
                    *part_width,
                    row.len(),
                    "the {part} SQL type has {part_width} columns, its row struct reads {}: {row:?}",
                    row.len()
                );
                let own = &columns[*start..start + part_width];
                if branch == *part_branch {
                    let names: Vec<_> = own
                        .iter()
                        .map(|c| c.strip_prefix(alias).unwrap_or(c).to_owned())
                        .collect();
                    assert_eq!(
                        &names, row,
                        "branch {branch} selects other {part} columns (from column {start}) than the {part} row reads"
                    );
                } else {
                    assert!(
                        own.iter().all(|c| c.starts_with("NULL")),
                        "branch {branch} must pad the {part} columns {start}..{} with NULLs: {own:?}",
                        start + part_width
                    );
                }
            }
        }
    }
}
