//! Rows as read and written by both adapters, the queries they share, and the mapping
//! between rows and the domain aggregate.

use std::collections::HashMap;

use diesel::{Insertable, Queryable, Selectable};
use pingback_domain::{
    AgentId, Attachment, AttachmentId, AttachmentParts, BusinessId, ByteSize, ChannelId,
    ChannelType, Conversation, ConversationId, ConversationParts, Customer, CustomerId,
    CustomerParts, Message, MessageId, MessageParts, Revision, SenderId, SenderType, Status, Text,
    Timestamp,
};

use crate::schema::{DbUuid, Micros, attachments, conversations, customers, messages};

/// A stored row the domain refuses (corrupt data or a schema drift): never a panic,
/// always an internal error.
#[derive(Debug, thiserror::Error)]
#[error("invalid stored {what}: {reason}")]
pub(crate) struct CorruptRow {
    what: &'static str,
    reason: String,
}

pub(crate) fn corrupt(what: &'static str, reason: impl ToString) -> CorruptRow {
    CorruptRow {
        what,
        reason: reason.to_string(),
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = conversations, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct ConversationRow {
    pub business_id: DbUuid,
    pub id: DbUuid,
    pub customer_id: Option<DbUuid>,
    pub assignee_id: Option<DbUuid>,
    pub status: String,
    pub channel_type: String,
    pub channel_id: Option<DbUuid>,
    pub created_at: Micros,
    pub updated_at: Micros,
    pub first_response_at: Option<Micros>,
    pub revision: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = customers, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct CustomerRow {
    pub business_id: DbUuid,
    pub id: DbUuid,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub external_id: Option<String>,
    pub created_at: Micros,
    pub revision: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = messages, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct MessageRow {
    pub id: DbUuid,
    pub sender_type: String,
    pub sender_id: Option<DbUuid>,
    pub content: String,
    pub created_at: Micros,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = attachments, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct AttachmentRow {
    pub id: DbUuid,
    pub file_name: String,
    pub content_type: String,
    pub byte_size: i64,
    pub url: String,
}

/// The conversation `$id` of business `$business` joined with its customer (in the
/// same business), for the reads below to select from.
macro_rules! conversation_in_business {
    ($business:expr, $id:expr) => {{
        use diesel::{
            BoolExpressionMethods, ExpressionMethods, JoinOnDsl, NullableExpressionMethods,
            QueryDsl,
        };
        use $crate::schema::{conversations, customers};
        conversations::table
            .left_join(
                customers::table.on(customers::business_id
                    .eq(conversations::business_id)
                    .and(customers::id.nullable().eq(conversations::customer_id))),
            )
            .filter(conversations::business_id.eq($business))
            .filter(conversations::id.eq($id))
    }};
}
pub(crate) use conversation_in_business;

/// The conversation and its customer, in one business only.
macro_rules! conversation_query {
    ($business:expr, $id:expr) => {{
        use diesel::{QueryDsl, SelectableHelper};
        $crate::rows::conversation_in_business!($business, $id).select((
            $crate::rows::ConversationRow::as_select(),
            Option::<$crate::rows::CustomerRow>::as_select(),
        ))
    }};
}
pub(crate) use conversation_query;

/// The revisions of a conversation and its customer, in one business only: what
/// validates a cached copy, without the history.
macro_rules! revision_query {
    ($business:expr, $id:expr) => {{
        use diesel::{NullableExpressionMethods, QueryDsl};
        use $crate::schema::{conversations, customers};
        $crate::rows::conversation_in_business!($business, $id).select((
            conversations::business_id,
            conversations::id,
            conversations::revision,
            customers::revision.nullable(),
        ))
    }};
}
pub(crate) use revision_query;

pub(crate) type RevisionRecord = (DbUuid, DbUuid, i64, Option<i64>);

/// What a revision read found.
pub(crate) fn revision_found(
    rows: Vec<RevisionRecord>,
) -> Option<pingback_application::StoredRevision> {
    rows.into_iter()
        .next()
        .map(
            |(business, id, conversation, customer)| pingback_application::StoredRevision {
                business_id: BusinessId::from_uuid(business.0),
                id: ConversationId::from_uuid(id.0),
                revision: Revision::new(conversation, customer),
            },
        )
}

/// The history with its attachments, in history order, attachments in their order.
macro_rules! history_query {
    ($business:expr, $id:expr) => {{
        use diesel::{
            BoolExpressionMethods, ExpressionMethods, JoinOnDsl, NullableExpressionMethods,
            QueryDsl, SelectableHelper,
        };
        use $crate::schema::{attachments, messages};
        messages::table
            .left_join(
                attachments::table.on(attachments::business_id
                    .eq(messages::business_id)
                    .and(attachments::conversation_id.eq(messages::conversation_id))
                    .and(attachments::message_id.eq(messages::id))),
            )
            .filter(messages::business_id.eq($business))
            .filter(messages::conversation_id.eq($id))
            .order_by((
                messages::created_at,
                messages::id,
                attachments::position.nullable(),
            ))
            .select((
                $crate::rows::MessageRow::as_select(),
                Option::<$crate::rows::AttachmentRow>::as_select(),
            ))
    }};
}
pub(crate) use history_query;

/// The SET clause of the customers upsert: every column but the key.
macro_rules! customer_upsert {
    () => {{
        use diesel::ExpressionMethods;
        use diesel::upsert::excluded;
        use $crate::schema::customers as t;
        (
            t::name.eq(excluded(t::name)),
            t::email.eq(excluded(t::email)),
            t::phone.eq(excluded(t::phone)),
            t::external_id.eq(excluded(t::external_id)),
            t::created_at.eq(excluded(t::created_at)),
            t::revision.eq(t::revision + 1),
        )
    }};
}
pub(crate) use customer_upsert;

/// The SET clause of the conversations upsert: every column but the key.
macro_rules! conversation_upsert {
    () => {{
        use diesel::ExpressionMethods;
        use diesel::upsert::excluded;
        use $crate::schema::conversations as t;
        (
            t::customer_id.eq(excluded(t::customer_id)),
            t::assignee_id.eq(excluded(t::assignee_id)),
            t::status.eq(excluded(t::status)),
            t::channel_type.eq(excluded(t::channel_type)),
            t::channel_id.eq(excluded(t::channel_id)),
            t::created_at.eq(excluded(t::created_at)),
            t::updated_at.eq(excluded(t::updated_at)),
            t::first_response_at.eq(excluded(t::first_response_at)),
            t::message_count.eq(excluded(t::message_count)),
            t::last_message_id.eq(excluded(t::last_message_id)),
            t::revision.eq(t::revision + 1),
        )
    }};
}
pub(crate) use conversation_upsert;

pub(crate) type ConversationRecord = (ConversationRow, Option<CustomerRow>);
/// A conversation row, its customer's revision, its message count and latest message.
pub(crate) type HeadRecord = (ConversationRow, Option<CustomerRow>, i64, Option<DbUuid>);
pub(crate) type HistoryRecord = (MessageRow, Option<AttachmentRow>);

fn text(what: &'static str, value: String) -> Result<Text, CorruptRow> {
    Text::new(value).map_err(|e| corrupt(what, e))
}

fn optional_text(what: &'static str, value: Option<String>) -> Result<Option<Text>, CorruptRow> {
    value.map(|v| text(what, v)).transpose()
}

fn timestamp(what: &'static str, value: Micros) -> Result<Timestamp, CorruptRow> {
    Timestamp::from_unix_micros(value.0).map_err(|e| corrupt(what, e))
}

fn customer(row: CustomerRow) -> Result<Customer, CorruptRow> {
    Ok(Customer::new(CustomerParts {
        id: CustomerId::from_uuid(row.id.0),
        business_id: BusinessId::from_uuid(row.business_id.0),
        name: optional_text("customer name", row.name)?,
        email: optional_text("customer email", row.email)?,
        phone: optional_text("customer phone", row.phone)?,
        external_id: optional_text("customer external_id", row.external_id)?,
        created_at: timestamp("customer created_at", row.created_at)?,
    }))
}

pub(crate) fn message(
    row: MessageRow,
    attachments: Vec<Attachment>,
) -> Result<Message, CorruptRow> {
    Ok(Message::new(MessageParts {
        id: MessageId::from_uuid(row.id.0),
        sender_type: row
            .sender_type
            .parse::<SenderType>()
            .map_err(|e| corrupt("message sender_type", e))?,
        sender_id: row.sender_id.map(|s| SenderId::from_uuid(s.0)),
        content: text("message content", row.content)?,
        attachments,
        created_at: timestamp("message created_at", row.created_at)?,
    }))
}

pub(crate) fn attachment(row: AttachmentRow) -> Result<Attachment, CorruptRow> {
    Ok(Attachment::new(AttachmentParts {
        id: AttachmentId::from_uuid(row.id.0),
        file_name: text("attachment file_name", row.file_name)?,
        content_type: text("attachment content_type", row.content_type)?,
        byte_size: ByteSize::from_i64(row.byte_size)
            .map_err(|e| corrupt("attachment byte_size", e))?,
        url: text("attachment url", row.url)?,
    }))
}

/// What a read found: the first conversation row, if any, with its history, as the
/// aggregate. A row that breaks the domain's rules is an internal error.
pub(crate) fn found(
    conversation: Vec<ConversationRecord>,
    history: Vec<HistoryRecord>,
) -> Result<Option<Conversation>, pingback_application::RepositoryError> {
    let Some(conversation) = conversation.into_iter().next() else {
        return Ok(None);
    };
    self::conversation(conversation, history)
        .map(Some)
        .map_err(pingback_application::RepositoryError::internal)
}

/// Builds the aggregate from the two queries' rows (history rows in query order).
fn conversation(
    header: ConversationRecord,
    history: Vec<HistoryRecord>,
) -> Result<Conversation, CorruptRow> {
    assemble(header, messages_of(history)?)
}

/// Messages from history rows in query order: one row per (message, attachment),
/// consecutive rows of a message merged.
pub(crate) fn messages_of(history: Vec<HistoryRecord>) -> Result<Vec<Message>, CorruptRow> {
    let mut messages = Vec::with_capacity(history.len());
    let mut current: Option<(MessageRow, Vec<Attachment>)> = None;
    for (message_row, attachment_row) in history {
        match &mut current {
            Some((open, attachments)) if open.id == message_row.id => {
                if let Some(a) = attachment_row {
                    attachments.push(attachment(a)?);
                }
            }
            _ => {
                if let Some((done, attachments)) = current.take() {
                    messages.push(message(done, attachments)?);
                }
                let attachments = attachment_row.map(attachment).transpose()?;
                current = Some((message_row, attachments.into_iter().collect()));
            }
        }
    }
    if let Some((done, attachments)) = current {
        messages.push(message(done, attachments)?);
    }
    Ok(messages)
}

/// The aggregate from its conversation row, customer row and messages.
pub(crate) fn assemble(
    (row, customer_row): ConversationRecord,
    messages: Vec<Message>,
) -> Result<Conversation, CorruptRow> {
    let revision = Revision::new(row.revision, customer_row.as_ref().map(|c| c.revision));
    let customer = match (row.customer_id, customer_row) {
        (None, _) => None,
        (Some(_), Some(c)) => Some(customer(c)?),
        (Some(id), None) => {
            return Err(corrupt(
                "conversation",
                format!("customer {} is missing", id.0),
            ));
        }
    };

    Conversation::new(ConversationParts {
        id: ConversationId::from_uuid(row.id.0),
        business_id: BusinessId::from_uuid(row.business_id.0),
        customer,
        assignee_id: row.assignee_id.map(|a| AgentId::from_uuid(a.0)),
        status: row
            .status
            .parse::<Status>()
            .map_err(|e| corrupt("conversation status", e))?,
        channel_type: ChannelType::new(row.channel_type)
            .map_err(|e| corrupt("conversation channel_type", e))?,
        channel_id: row.channel_id.map(|c| ChannelId::from_uuid(c.0)),
        created_at: timestamp("conversation created_at", row.created_at)?,
        updated_at: timestamp("conversation updated_at", row.updated_at)?,
        first_response_at: row
            .first_response_at
            .map(|t| timestamp("conversation first_response_at", t))
            .transpose()?,
        messages,
    })
    .map(|c| c.read_at(revision))
    .map_err(|e| corrupt("conversation", e))
}

#[derive(Insertable)]
#[diesel(table_name = customers, treat_none_as_default_value = false)]
pub(crate) struct NewCustomer<'a> {
    pub business_id: DbUuid,
    pub id: DbUuid,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub external_id: Option<&'a str>,
    pub created_at: Micros,
}

#[derive(Insertable)]
#[diesel(table_name = conversations, treat_none_as_default_value = false)]
pub(crate) struct NewConversation<'a> {
    pub business_id: DbUuid,
    pub id: DbUuid,
    pub customer_id: Option<DbUuid>,
    pub assignee_id: Option<DbUuid>,
    pub status: &'static str,
    pub channel_type: &'a str,
    pub channel_id: Option<DbUuid>,
    pub created_at: Micros,
    pub updated_at: Micros,
    pub first_response_at: Option<Micros>,
    pub message_count: i64,
    pub last_message_id: Option<DbUuid>,
}

#[derive(Insertable)]
#[diesel(table_name = messages, treat_none_as_default_value = false)]
pub(crate) struct NewMessage<'a> {
    pub business_id: DbUuid,
    pub id: DbUuid,
    pub conversation_id: DbUuid,
    pub sender_type: &'static str,
    pub sender_id: Option<DbUuid>,
    pub content: &'a str,
    pub created_at: Micros,
}

#[derive(Insertable)]
#[diesel(table_name = attachments, treat_none_as_default_value = false)]
pub(crate) struct NewAttachment<'a> {
    pub business_id: DbUuid,
    pub id: DbUuid,
    pub conversation_id: DbUuid,
    pub message_id: DbUuid,
    pub position: i32,
    pub file_name: &'a str,
    pub content_type: &'a str,
    pub byte_size: i64,
    pub url: &'a str,
}

/// Columns per row, to size multi-row INSERTs under a backend's bind limit.
pub(crate) const CUSTOMER_COLUMNS: usize = 7;
pub(crate) const CONVERSATION_COLUMNS: usize = 12;
pub(crate) const MESSAGE_COLUMNS: usize = 7;
pub(crate) const ATTACHMENT_COLUMNS: usize = 9;

/// Everything one batch writes, borrowed from the batch.
pub(crate) struct BatchRows<'a> {
    /// One row per (business, id): a customer shared by conversations is written once,
    /// with the last conversation's copy.
    pub customers: Vec<NewCustomer<'a>>,
    pub conversations: Vec<NewConversation<'a>>,
    /// Conversations whose message sets are replaced, grouped by business.
    pub replaced: Vec<(DbUuid, Vec<DbUuid>)>,
    pub messages: Vec<NewMessage<'a>>,
    pub attachments: Vec<NewAttachment<'a>>,
}

fn uuid_of(id: impl Into<uuid::Uuid>) -> DbUuid {
    DbUuid(id.into())
}

/// The rows of one message of conversation `conversation` in `business`.
pub(crate) fn message_rows(
    business: DbUuid,
    conversation: DbUuid,
    m: &Message,
) -> Result<(NewMessage<'_>, Vec<NewAttachment<'_>>), CorruptRow> {
    let message = uuid_of(m.id().into_uuid());
    let attachments = m
        .attachments()
        .iter()
        .enumerate()
        .map(|(position, a)| {
            Ok(NewAttachment {
                business_id: business,
                id: uuid_of(a.id().into_uuid()),
                conversation_id: conversation,
                message_id: message,
                position: i32::try_from(position)
                    .map_err(|_| corrupt("message", "too many attachments"))?,
                file_name: a.file_name().as_str(),
                content_type: a.content_type().as_str(),
                byte_size: a.byte_size().as_i64(),
                url: a.url().as_str(),
            })
        })
        .collect::<Result<_, CorruptRow>>()?;
    Ok((
        NewMessage {
            business_id: business,
            id: message,
            conversation_id: conversation,
            sender_type: m.sender_type().as_str(),
            sender_id: m.sender_id().map(|id| uuid_of(id.into_uuid())),
            content: m.content().as_str(),
            created_at: Micros(m.created_at().unix_micros()),
        },
        attachments,
    ))
}

/// The customer row of a new customer.
pub(crate) fn customer_row(customer: &Customer) -> NewCustomer<'_> {
    NewCustomer {
        business_id: uuid_of(customer.business_id().into_uuid()),
        id: uuid_of(customer.id().into_uuid()),
        name: customer.name().map(Text::as_str),
        email: customer.email().map(Text::as_str),
        phone: customer.phone().map(Text::as_str),
        external_id: customer.external_id().map(Text::as_str),
        created_at: Micros(customer.created_at().unix_micros()),
    }
}

/// A customer as read, with its revision.
pub(crate) fn stored_customer(row: CustomerRow) -> Result<(Customer, i64), CorruptRow> {
    let revision = row.revision;
    Ok((customer(row)?, revision))
}

/// The state a write decides on, from the locked conversation row, its customer's
/// revision and the time of its latest message.
pub(crate) fn head(
    (row, customer_row, message_count, last_message_id): HeadRecord,
    last_message_at: Option<Micros>,
) -> Result<pingback_domain::ConversationHead, CorruptRow> {
    let customer_revision = customer_row.as_ref().map(|c| c.revision);
    Ok(pingback_domain::ConversationHead {
        id: ConversationId::from_uuid(row.id.0),
        business_id: BusinessId::from_uuid(row.business_id.0),
        customer_id: row.customer_id.map(|c| CustomerId::from_uuid(c.0)),
        customer: customer_row.map(customer).transpose()?,
        assignee_id: row.assignee_id.map(|a| AgentId::from_uuid(a.0)),
        status: row
            .status
            .parse::<Status>()
            .map_err(|e| corrupt("conversation status", e))?,
        channel_type: ChannelType::new(row.channel_type)
            .map_err(|e| corrupt("conversation channel_type", e))?,
        channel_id: row.channel_id.map(|c| ChannelId::from_uuid(c.0)),
        created_at: timestamp("conversation created_at", row.created_at)?,
        updated_at: timestamp("conversation updated_at", row.updated_at)?,
        first_response_at: row
            .first_response_at
            .map(|t| timestamp("conversation first_response_at", t))
            .transpose()?,
        last_message_at: last_message_at
            .map(|t| timestamp("message created_at", t))
            .transpose()?,
        message_count: u64::try_from(message_count)
            .map_err(|e| corrupt("conversation message_count", e))?,
        last_message_id: last_message_id.map(|m| MessageId::from_uuid(m.0)),
        revision: Revision::new(row.revision, customer_revision),
    })
}

impl<'a> BatchRows<'a> {
    pub(crate) fn of(batch: &'a [Conversation]) -> Result<Self, CorruptRow> {
        let mut customers: Vec<NewCustomer<'a>> = Vec::new();
        let mut customer_index: HashMap<(DbUuid, DbUuid), usize> = HashMap::new();
        let mut replaced: Vec<(DbUuid, Vec<DbUuid>)> = Vec::new();
        let message_count = batch.iter().map(|c| c.messages().len()).sum();
        let mut messages = Vec::with_capacity(message_count);
        let mut attachments = Vec::new();
        let mut conversations = Vec::with_capacity(batch.len());

        for c in batch {
            let business = uuid_of(c.business_id().into_uuid());
            let conversation = uuid_of(c.id().into_uuid());
            if let Some(customer) = c.customer() {
                let row = customer_row(customer);
                // A repeated key in one upsert statement is an error in PostgreSQL.
                match customer_index.get(&(row.business_id, row.id)) {
                    Some(&i) => customers[i] = row,
                    None => {
                        customer_index.insert((row.business_id, row.id), customers.len());
                        customers.push(row);
                    }
                }
            }
            conversations.push(NewConversation {
                business_id: business,
                id: conversation,
                customer_id: c.customer_id().map(|id| uuid_of(id.into_uuid())),
                assignee_id: c.assignee_id().map(|id| uuid_of(id.into_uuid())),
                status: c.status().as_str(),
                channel_type: c.channel_type().as_str(),
                channel_id: c.channel_id().map(|id| uuid_of(id.into_uuid())),
                created_at: Micros(c.created_at().unix_micros()),
                updated_at: Micros(c.updated_at().unix_micros()),
                first_response_at: c.first_response_at().map(|t| Micros(t.unix_micros())),
                message_count: i64::try_from(c.messages().len())
                    .map_err(|_| corrupt("conversation", "too many messages"))?,
                // The aggregate keeps its history in order: the last is the latest.
                last_message_id: c.messages().last().map(|m| uuid_of(m.id().into_uuid())),
            });
            match replaced.iter_mut().find(|(b, _)| *b == business) {
                Some((_, ids)) => ids.push(conversation),
                None => replaced.push((business, vec![conversation])),
            }
            for m in c.messages() {
                let (message, message_attachments) = message_rows(business, conversation, m)?;
                messages.push(message);
                attachments.extend(message_attachments);
            }
        }
        Ok(Self {
            customers,
            conversations,
            replaced,
            messages,
            attachments,
        })
    }
}

#[cfg(test)]
mod tests {
    use diesel::pg::Pg;
    use diesel::sqlite::Sqlite;

    use crate::schema::DbUuid;

    /// Every read is single-business: each table it touches is constrained by
    /// `business_id`, in the WHERE clause or the join condition. That keeps reads on
    /// one shard when the tables are distributed by business (docs/scaling.md).
    fn assert_scoped(sql: &str, tables: &[&str]) {
        // SQLite quotes with backticks, PostgreSQL with double quotes.
        let sql = &sql.replace('`', "\"");
        let (_, where_clause) = sql.split_once(" WHERE ").expect("a WHERE clause");
        for table in tables {
            let column = format!("\"{table}\".\"business_id\"");
            assert!(
                sql.contains(&column),
                "{table} not constrained by business in: {sql}"
            );
        }
        assert!(
            where_clause.contains("\"business_id\" = $1")
                || where_clause.contains("\"business_id\" = ?"),
            "{sql}"
        );
    }

    #[test]
    fn every_read_filters_by_business() {
        let nil = DbUuid(uuid::Uuid::nil());
        for sql in [
            diesel::debug_query::<Pg, _>(&conversation_query!(nil, nil)).to_string(),
            diesel::debug_query::<Sqlite, _>(&conversation_query!(nil, nil)).to_string(),
        ] {
            assert_scoped(&sql, &["conversations", "customers"]);
            let sql = sql.replace('`', "\"");
            assert!(
                sql.contains("\"customers\".\"business_id\" = \"conversations\".\"business_id\""),
                "{sql}"
            );
        }
        for sql in [
            diesel::debug_query::<Pg, _>(&revision_query!(nil, nil)).to_string(),
            diesel::debug_query::<Sqlite, _>(&revision_query!(nil, nil)).to_string(),
        ] {
            assert_scoped(&sql, &["conversations", "customers"]);
        }
        for sql in [
            diesel::debug_query::<Pg, _>(&history_query!(nil, nil)).to_string(),
            diesel::debug_query::<Sqlite, _>(&history_query!(nil, nil)).to_string(),
        ] {
            assert_scoped(&sql, &["messages", "attachments"]);
            let sql = sql.replace('`', "\"");
            assert!(
                sql.contains("\"attachments\".\"business_id\" = \"messages\".\"business_id\""),
                "{sql}"
            );
        }
    }
}
