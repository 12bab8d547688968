//! The rows reads select, and their mapping to the domain.

use diesel::{Queryable, Selectable};
use pingback_domain::{
    AgentId, Attachment, AttachmentId, AttachmentParts, BusinessId, ByteSize, ChannelId,
    ChannelType, Conversation, ConversationId, ConversationParts, Customer, CustomerId,
    CustomerParts, Message, MessageId, MessageParts, Revision, SenderId, Status, Text, Timestamp,
};

use super::{CorruptRow, corrupt};
use crate::schema::{
    DbUuid, Micros, StoredSenderType, StoredText, attachments, conversations, customers, messages,
};

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
    pub sender_type: StoredSenderType,
    pub sender_id: Option<DbUuid>,
    pub content: StoredText,
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

pub(crate) type ConversationRecord = (ConversationRow, Option<CustomerRow>);
/// A conversation row, its customer, its message count and latest message.
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
        id: CustomerId::from(row.id),
        business_id: BusinessId::from(row.business_id),
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
        id: MessageId::from(row.id),
        sender_type: row.sender_type.0,
        sender_id: row.sender_id.map(SenderId::from),
        content: text("message content", row.content.0)?,
        attachments,
        created_at: timestamp("message created_at", row.created_at)?,
    }))
}

pub(crate) fn attachment(row: AttachmentRow) -> Result<Attachment, CorruptRow> {
    Ok(Attachment::new(AttachmentParts {
        id: AttachmentId::from(row.id),
        file_name: text("attachment file_name", row.file_name)?,
        content_type: text("attachment content_type", row.content_type)?,
        byte_size: ByteSize::from_i64(row.byte_size)
            .map_err(|e| corrupt("attachment byte_size", e))?,
        url: text("attachment url", row.url)?,
    }))
}

/// What a read found: the first conversation row, if any, with its history, as the
/// aggregate. A row that breaks the domain's rules is an internal error.
pub(crate) fn found_by_queries(
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
    (mut row, customer_row): ConversationRecord,
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

    let checked = Checked::of(&mut row)?;
    Conversation::new(ConversationParts {
        id: ConversationId::from(row.id),
        business_id: BusinessId::from(row.business_id),
        customer,
        assignee_id: row.assignee_id.map(AgentId::from),
        status: checked.status,
        channel_type: checked.channel_type,
        channel_id: row.channel_id.map(ChannelId::from),
        created_at: checked.created_at,
        updated_at: checked.updated_at,
        first_response_at: checked.first_response_at,
        messages,
    })
    .map(|c| c.read_at(revision))
    .map_err(|e| corrupt("conversation", e))
}

/// The fields of a conversation row the domain checks, for the aggregate and its head.
struct Checked {
    status: Status,
    channel_type: ChannelType,
    created_at: Timestamp,
    updated_at: Timestamp,
    first_response_at: Option<Timestamp>,
}

impl Checked {
    fn of(row: &mut ConversationRow) -> Result<Self, CorruptRow> {
        Ok(Self {
            status: row
                .status
                .parse::<Status>()
                .map_err(|e| corrupt("conversation status", e))?,
            channel_type: ChannelType::new(std::mem::take(&mut row.channel_type))
                .map_err(|e| corrupt("conversation channel_type", e))?,
            created_at: timestamp("conversation created_at", row.created_at)?,
            updated_at: timestamp("conversation updated_at", row.updated_at)?,
            first_response_at: row
                .first_response_at
                .map(|t| timestamp("conversation first_response_at", t))
                .transpose()?,
        })
    }
}

pub(crate) type RevisionRecord = (DbUuid, DbUuid, i64, Option<i64>);

/// What a revision read found.
pub(crate) fn revision_found(
    rows: Vec<RevisionRecord>,
) -> Option<pingback_application::StoredRevision> {
    rows.into_iter()
        .next()
        .map(
            |(business, id, conversation, customer)| pingback_application::StoredRevision {
                business_id: BusinessId::from(business),
                id: ConversationId::from(id),
                revision: Revision::new(conversation, customer),
            },
        )
}

/// A customer as read, with its revision.
pub(crate) fn stored_customer(row: CustomerRow) -> Result<(Customer, i64), CorruptRow> {
    let revision = row.revision;
    Ok((customer(row)?, revision))
}

/// The state a write decides on, from the locked conversation row, its customer and
/// the time of its latest message.
pub(crate) fn head(
    (mut row, customer_row, message_count, last_message_id): HeadRecord,
    last_message_at: Option<Micros>,
) -> Result<pingback_domain::ConversationHead, CorruptRow> {
    let checked = Checked::of(&mut row)?;
    let customer_revision = customer_row.as_ref().map(|c| c.revision);
    Ok(pingback_domain::ConversationHead {
        id: ConversationId::from(row.id),
        business_id: BusinessId::from(row.business_id),
        customer_id: row.customer_id.map(CustomerId::from),
        customer: customer_row.map(customer).transpose()?,
        assignee_id: row.assignee_id.map(AgentId::from),
        status: checked.status,
        channel_type: checked.channel_type,
        channel_id: row.channel_id.map(ChannelId::from),
        created_at: checked.created_at,
        updated_at: checked.updated_at,
        first_response_at: checked.first_response_at,
        last_message_at: last_message_at
            .map(|t| timestamp("message created_at", t))
            .transpose()?,
        message_count: u64::try_from(message_count)
            .map_err(|e| corrupt("conversation message_count", e))?,
        last_message_id: last_message_id.map(MessageId::from),
        revision: Revision::new(row.revision, customer_revision),
    })
}
