//! The rows writes insert, from the domain.

use std::collections::HashMap;

use diesel::Insertable;
use pingback_domain::{Conversation, Customer, Message, Text};

use super::{CorruptRow, corrupt};
use crate::schema::{DbUuid, Micros, attachments, conversations, customers, messages};

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

/// The rows of one message of conversation `conversation` in `business`.
pub(crate) fn message_rows(
    business: DbUuid,
    conversation: DbUuid,
    m: &Message,
) -> Result<(NewMessage<'_>, Vec<NewAttachment<'_>>), CorruptRow> {
    let message = DbUuid::from(m.id());
    let attachments = m
        .attachments()
        .iter()
        .enumerate()
        .map(|(position, a)| {
            Ok(NewAttachment {
                business_id: business,
                id: DbUuid::from(a.id()),
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
            sender_id: m.sender_id().map(DbUuid::from),
            content: m.content().as_str(),
            created_at: Micros(m.created_at().unix_micros()),
        },
        attachments,
    ))
}

/// The customer row of a new customer.
pub(crate) fn customer_row(customer: &Customer) -> NewCustomer<'_> {
    NewCustomer {
        business_id: DbUuid::from(customer.business_id()),
        id: DbUuid::from(customer.id()),
        name: customer.name().map(Text::as_str),
        email: customer.email().map(Text::as_str),
        phone: customer.phone().map(Text::as_str),
        external_id: customer.external_id().map(Text::as_str),
        created_at: Micros(customer.created_at().unix_micros()),
    }
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
            let business = DbUuid::from(c.business_id());
            let conversation = DbUuid::from(c.id());
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
                customer_id: c.customer_id().map(DbUuid::from),
                assignee_id: c.assignee_id().map(DbUuid::from),
                status: c.status().as_str(),
                channel_type: c.channel_type().as_str(),
                channel_id: c.channel_id().map(DbUuid::from),
                created_at: Micros(c.created_at().unix_micros()),
                updated_at: Micros(c.updated_at().unix_micros()),
                first_response_at: c.first_response_at().map(|t| Micros(t.unix_micros())),
                message_count: i64::try_from(c.messages().len())
                    .map_err(|_| corrupt("conversation", "too many messages"))?,
                // The aggregate keeps its history in order: the last is the latest.
                last_message_id: c.messages().last().map(|m| DbUuid::from(m.id())),
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
