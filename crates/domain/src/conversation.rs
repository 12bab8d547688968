use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use crate::id::{
    AgentId, AttachmentId, BusinessId, ChannelId, ConversationId, CustomerId, MessageId, SenderId,
};
use crate::text::{ByteSize, ChannelType, Text};
use crate::timestamp::Timestamp;

/// Defines a closed, string-named enum with parsing and printing in one place.
macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            /// The value named exactly `name` (lower case: one spelling per value). As
            /// bytes, for readers of raw columns: the names are ASCII, so bytes that are
            /// not UTF-8 name nothing and need no check of their own.
            pub fn from_name(name: &[u8]) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str().as_bytes() == name)
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_name(s.as_bytes()).ok_or_else(|| {
                    format!(
                        concat!("unknown ", $what, " (expected one of: {})"),
                        Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
                    )
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// Where a conversation stands in the support workflow.
    Status, "status" {
        Open => "open",
        Pending => "pending",
        Resolved => "resolved",
        Closed => "closed",
    }
);

named_enum!(
    /// Which side of the conversation wrote a message.
    SenderType, "sender type" {
        Customer => "customer",
        Agent => "agent",
    }
);

/// A business's customer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Customer {
    id: CustomerId,
    business_id: BusinessId,
    name: Option<Text>,
    email: Option<Text>,
    phone: Option<Text>,
    external_id: Option<Text>,
    created_at: Timestamp,
}

/// Everything a [`Customer`] is made of; every field is already validated by its type.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CustomerParts {
    pub id: CustomerId,
    pub business_id: BusinessId,
    pub name: Option<Text>,
    pub email: Option<Text>,
    pub phone: Option<Text>,
    pub external_id: Option<Text>,
    pub created_at: Timestamp,
}

impl Customer {
    pub fn new(parts: CustomerParts) -> Self {
        let CustomerParts {
            id,
            business_id,
            name,
            email,
            phone,
            external_id,
            created_at,
        } = parts;
        Self {
            id,
            business_id,
            name,
            email,
            phone,
            external_id,
            created_at,
        }
    }

    pub fn id(&self) -> CustomerId {
        self.id
    }
    pub fn business_id(&self) -> BusinessId {
        self.business_id
    }
    pub fn name(&self) -> Option<&Text> {
        self.name.as_ref()
    }
    pub fn email(&self) -> Option<&Text> {
        self.email.as_ref()
    }
    pub fn phone(&self) -> Option<&Text> {
        self.phone.as_ref()
    }
    pub fn external_id(&self) -> Option<&Text> {
        self.external_id.as_ref()
    }
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
}

/// A file attached to a message (stored elsewhere; we keep its description and URL).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Attachment {
    id: AttachmentId,
    file_name: Text,
    content_type: Text,
    byte_size: ByteSize,
    url: Text,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AttachmentParts {
    pub id: AttachmentId,
    pub file_name: Text,
    pub content_type: Text,
    pub byte_size: ByteSize,
    pub url: Text,
}

impl Attachment {
    pub fn new(parts: AttachmentParts) -> Self {
        let AttachmentParts {
            id,
            file_name,
            content_type,
            byte_size,
            url,
        } = parts;
        Self {
            id,
            file_name,
            content_type,
            byte_size,
            url,
        }
    }
    pub fn id(&self) -> AttachmentId {
        self.id
    }
    pub fn file_name(&self) -> &Text {
        &self.file_name
    }
    pub fn content_type(&self) -> &Text {
        &self.content_type
    }
    pub fn byte_size(&self) -> ByteSize {
        self.byte_size
    }
    pub fn url(&self) -> &Text {
        &self.url
    }
}

/// One message of a conversation. It belongs to exactly one conversation, the
/// aggregate that holds it, so it does not carry the conversation id itself.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Message {
    id: MessageId,
    sender_type: SenderType,
    sender_id: Option<SenderId>,
    content: Text,
    attachments: Vec<Attachment>,
    created_at: Timestamp,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MessageParts {
    pub id: MessageId,
    pub sender_type: SenderType,
    pub sender_id: Option<SenderId>,
    pub content: Text,
    /// In the order they were attached.
    pub attachments: Vec<Attachment>,
    pub created_at: Timestamp,
}

impl Message {
    pub fn new(parts: MessageParts) -> Self {
        let MessageParts {
            id,
            sender_type,
            sender_id,
            content,
            attachments,
            created_at,
        } = parts;
        Self {
            id,
            sender_type,
            sender_id,
            content,
            attachments,
            created_at,
        }
    }
    pub fn id(&self) -> MessageId {
        self.id
    }
    pub fn sender_type(&self) -> SenderType {
        self.sender_type
    }
    pub fn sender_id(&self) -> Option<SenderId> {
        self.sender_id
    }
    pub fn content(&self) -> &Text {
        &self.content
    }
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
    /// The same message with `attachments` (in the order they were attached): how a
    /// store that reads attachments apart from their messages puts them back.
    pub fn with_attachments(self, attachments: Vec<Attachment>) -> Self {
        Self {
            attachments,
            ..self
        }
    }
    /// The history's order: `created_at`, then `id` to break ties deterministically.
    pub fn history_key(&self) -> (Timestamp, MessageId) {
        (self.created_at, self.id)
    }
}

/// Why parts do not make a conversation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversationError {
    #[error(
        "the customer belongs to business {customer_business}, not to the conversation's business {conversation_business}"
    )]
    CustomerOfAnotherBusiness {
        customer_business: BusinessId,
        conversation_business: BusinessId,
    },
    #[error("message id {0} appears more than once")]
    DuplicateMessage(MessageId),
    #[error("attachment id {0} appears more than once")]
    DuplicateAttachment(AttachmentId),
}

/// Which stored state of a conversation was read: the revision of the conversation
/// (its fields and its messages) and of its customer, each bumped by every write of
/// that row. The same revisions mean the same data, so they validate a cached copy
/// without reading it again.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Revision {
    conversation: i64,
    customer: Option<i64>,
}

impl Revision {
    pub fn new(conversation: i64, customer: Option<i64>) -> Self {
        Self {
            conversation,
            customer,
        }
    }
    pub fn conversation(&self) -> i64 {
        self.conversation
    }
    pub fn customer(&self) -> Option<i64> {
        self.customer
    }
}

/// The aggregate: a conversation with its customer and its complete, ordered history.
///
/// Equality compares the value only, not where it was read ([`Conversation::revision`]):
/// the same conversation read at two revisions that hold the same data is equal, and
/// equal to the aggregate it was stored from.
#[derive(Clone, Debug)]
pub struct Conversation {
    id: ConversationId,
    business_id: BusinessId,
    customer: Option<Customer>,
    assignee_id: Option<AgentId>,
    status: Status,
    channel_type: ChannelType,
    channel_id: Option<ChannelId>,
    created_at: Timestamp,
    updated_at: Timestamp,
    first_response_at: Option<Timestamp>,
    messages: Vec<Message>,
    /// Where it was read, if it was: metadata, not part of the value.
    read_at: Option<Revision>,
}

impl PartialEq for Conversation {
    fn eq(&self, other: &Self) -> bool {
        // Every field but `read_at`; destructured so a new field must be placed here.
        let Self {
            id,
            business_id,
            customer,
            assignee_id,
            status,
            channel_type,
            channel_id,
            created_at,
            updated_at,
            first_response_at,
            messages,
            read_at: _,
        } = self;
        *id == other.id
            && *business_id == other.business_id
            && *customer == other.customer
            && *assignee_id == other.assignee_id
            && *status == other.status
            && *channel_type == other.channel_type
            && *channel_id == other.channel_id
            && *created_at == other.created_at
            && *updated_at == other.updated_at
            && *first_response_at == other.first_response_at
            && *messages == other.messages
    }
}

impl Eq for Conversation {}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConversationParts {
    pub id: ConversationId,
    pub business_id: BusinessId,
    /// The customer id is the embedded customer's: they cannot disagree.
    pub customer: Option<Customer>,
    pub assignee_id: Option<AgentId>,
    pub status: Status,
    pub channel_type: ChannelType,
    pub channel_id: Option<ChannelId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub first_response_at: Option<Timestamp>,
    /// Any order; the aggregate keeps them in history order.
    pub messages: Vec<Message>,
}

impl Conversation {
    pub fn new(parts: ConversationParts) -> Result<Self, ConversationError> {
        let ConversationParts {
            id,
            business_id,
            customer,
            assignee_id,
            status,
            channel_type,
            channel_id,
            created_at,
            updated_at,
            first_response_at,
            mut messages,
        } = parts;
        if let Some(customer) = &customer
            && customer.business_id != business_id
        {
            return Err(ConversationError::CustomerOfAnotherBusiness {
                customer_business: customer.business_id,
                conversation_business: business_id,
            });
        }
        // Sorted, not hashed: no hashing per message on every read (SipHash over a long
        // history showed in the read's profile), and no input (an import's ids) can
        // make it quadratic. The ids of a history are nearly in order already (UUIDv7).
        let mut message_ids: Vec<MessageId> = messages.iter().map(|m| m.id).collect();
        message_ids.sort_unstable();
        if let Some(pair) = message_ids.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(ConversationError::DuplicateMessage(pair[0]));
        }
        let mut attachment_ids = HashSet::new();
        for message in &messages {
            for attachment in &message.attachments {
                if !attachment_ids.insert(attachment.id) {
                    return Err(ConversationError::DuplicateAttachment(attachment.id));
                }
            }
        }
        // Already sorted when read from storage: the check keeps that case linear.
        if !messages.is_sorted_by_key(Message::history_key) {
            messages.sort_unstable_by_key(Message::history_key);
        }
        Ok(Self {
            id,
            business_id,
            customer,
            assignee_id,
            status,
            channel_type,
            channel_id,
            created_at,
            updated_at,
            first_response_at,
            messages,
            read_at: None,
        })
    }

    /// The aggregate as read from storage at `revision`.
    pub fn read_at(mut self, revision: Revision) -> Self {
        self.read_at = Some(revision);
        self
    }

    /// The stored revision this aggregate was read at; `None` when it was not read
    /// from storage (built from an import file, generated).
    pub fn revision(&self) -> Option<Revision> {
        self.read_at
    }

    pub fn id(&self) -> ConversationId {
        self.id
    }
    pub fn business_id(&self) -> BusinessId {
        self.business_id
    }
    pub fn customer_id(&self) -> Option<CustomerId> {
        self.customer.as_ref().map(Customer::id)
    }
    pub fn customer(&self) -> Option<&Customer> {
        self.customer.as_ref()
    }
    pub fn assignee_id(&self) -> Option<AgentId> {
        self.assignee_id
    }
    pub fn status(&self) -> Status {
        self.status
    }
    pub fn channel_type(&self) -> &ChannelType {
        &self.channel_type
    }
    pub fn channel_id(&self) -> Option<ChannelId> {
        self.channel_id
    }
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
    pub fn updated_at(&self) -> Timestamp {
        self.updated_at
    }
    pub fn first_response_at(&self) -> Option<Timestamp> {
        self.first_response_at
    }
    /// The complete history, ordered by `created_at` then `id`.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The same conversation without its history (the inbox's and the events' view).
    pub fn without_history(&self) -> Self {
        Self {
            id: self.id,
            business_id: self.business_id,
            customer: self.customer.clone(),
            assignee_id: self.assignee_id,
            status: self.status,
            channel_type: self.channel_type.clone(),
            channel_id: self.channel_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
            first_response_at: self.first_response_at,
            messages: Vec::new(),
            read_at: self.read_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn message(id: u128, at: &str) -> Message {
        Message::new(MessageParts {
            id: MessageId::from_uuid(Uuid::from_u128(id)),
            sender_type: SenderType::Customer,
            sender_id: None,
            content: Text::new("hi").unwrap(),
            attachments: vec![],
            created_at: ts(at),
        })
    }

    fn parts(messages: Vec<Message>) -> ConversationParts {
        ConversationParts {
            id: ConversationId::from_uuid(Uuid::from_u128(1)),
            business_id: BusinessId::from_uuid(Uuid::from_u128(2)),
            customer: None,
            assignee_id: None,
            status: Status::Open,
            channel_type: ChannelType::new("widget").unwrap(),
            channel_id: None,
            created_at: ts("2024-03-01T09:00:00Z"),
            updated_at: ts("2024-03-01T09:00:00Z"),
            first_response_at: None,
            messages,
        }
    }

    #[test]
    fn orders_history_by_time_then_id() {
        let c = Conversation::new(parts(vec![
            message(3, "2024-03-01T09:00:01Z"),
            message(2, "2024-03-01T09:00:00Z"),
            message(1, "2024-03-01T09:00:00Z"),
        ]))
        .unwrap();
        let ids: Vec<u128> = c
            .messages()
            .iter()
            .map(|m| m.id().as_uuid().as_u128())
            .collect();
        assert_eq!(ids, [1, 2, 3]);
    }

    #[test]
    fn refuses_duplicate_messages_and_foreign_customers() {
        let dup = parts(vec![
            message(1, "2024-03-01T09:00:00Z"),
            message(1, "2024-03-01T09:00:01Z"),
        ]);
        assert!(matches!(
            Conversation::new(dup),
            Err(ConversationError::DuplicateMessage(_))
        ));

        let mut foreign = parts(vec![]);
        foreign.customer = Some(Customer::new(CustomerParts {
            id: CustomerId::from_uuid(Uuid::from_u128(9)),
            business_id: BusinessId::from_uuid(Uuid::from_u128(99)),
            name: None,
            email: None,
            phone: None,
            external_id: None,
            created_at: ts("2024-03-01T09:00:00Z"),
        }));
        assert!(matches!(
            Conversation::new(foreign),
            Err(ConversationError::CustomerOfAnotherBusiness { .. })
        ));
    }

    #[test]
    fn a_message_with_attachments_changes_only_its_attachments() {
        use crate::testing::{AttachmentBuilder, MessageBuilder};
        let message = MessageBuilder::new().content("see attached").build();
        let attachment = AttachmentBuilder::new().build();
        let attached = message.clone().with_attachments(vec![attachment.clone()]);
        assert_eq!(attached.attachments(), [attachment]);
        assert_eq!(
            MessageBuilder::from(&attached).attachments([]).build(),
            message
        );
    }

    #[test]
    fn status_and_sender_names_round_trip() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), *s);
        }
        assert!("Open".parse::<Status>().is_err());
        assert_eq!("agent".parse::<SenderType>().unwrap(), SenderType::Agent);
        assert!(
            "bot"
                .parse::<SenderType>()
                .unwrap_err()
                .contains("customer, agent")
        );
    }
}
