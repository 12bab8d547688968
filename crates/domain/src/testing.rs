//! Test builders for the aggregate and its parts, in crates.io's `CrateBuilder` style:
//! every field has a valid default, a test names only what it is about.
//!
//! ```ignore
//! let conversation = ConversationBuilder::new(business)
//!     .customer(CustomerBuilder::new(business).name("Ada").build())
//!     .message(MessageBuilder::new().content("hello").build())
//!     .build();
//! ```
//!
//! A builder also starts from a value that exists (`ConversationBuilder::from(&stored)`),
//! to state a variant of it by its differences. An optional field's setter takes the
//! value or `None` (`.assignee(agent)`, `.assignee(None)`).
//!
//! Behind the `testing` feature, which the other crates enable for their tests only
//! (`[dev-dependencies]`). A builder panics on a value the domain refuses: a test
//! that builds something invalid is a broken test.
#![allow(clippy::expect_used)]

use uuid::Uuid;

use crate::{
    AgentId, Attachment, AttachmentId, AttachmentParts, BusinessId, ByteSize, ChannelId,
    ChannelType, Conversation, ConversationId, ConversationParts, Customer, CustomerId,
    CustomerParts, Message, MessageId, MessageParts, Revision, SenderId, SenderType, Status, Text,
    Timestamp,
};

/// The instant every builder defaults to: 2024-03-01T09:00:00Z.
pub const DEFAULT_AT_MICROS: i64 = 1_709_283_600_000_000;

/// A timestamp from RFC 3339 text.
pub fn at(rfc3339: &str) -> Timestamp {
    Timestamp::parse_rfc3339(rfc3339).expect("a valid RFC 3339 timestamp")
}

/// An id of any kind from a number: `id::<BusinessId>(0xb1)`.
pub fn id<T: From<Uuid>>(n: u128) -> T {
    T::from(Uuid::from_u128(n))
}

/// An id of any kind from its hyphenated form.
pub fn parse_id<T: From<Uuid>>(text: &str) -> T {
    T::from(Uuid::try_parse(text).expect("a hyphenated UUID"))
}

fn default_at() -> Timestamp {
    Timestamp::from_unix_micros(DEFAULT_AT_MICROS).expect("a valid default instant")
}

fn text(value: &str) -> Text {
    Text::new(value).expect("valid text")
}

/// A conversation: by default open, on the `widget` channel, without customer,
/// assignee, channel id, first response or messages, created and updated at
/// [`DEFAULT_AT_MICROS`], with id `0xc0`. From a conversation: the same value, not
/// read from storage.
#[must_use]
pub struct ConversationBuilder {
    parts: ConversationParts,
    read_at: Option<Revision>,
}

impl ConversationBuilder {
    pub fn new(business: BusinessId) -> Self {
        Self {
            parts: ConversationParts {
                id: id(0xc0),
                business_id: business,
                customer: None,
                assignee_id: None,
                status: Status::Open,
                channel_type: ChannelType::new("widget").expect("a valid channel type"),
                channel_id: None,
                created_at: default_at(),
                updated_at: default_at(),
                first_response_at: None,
                messages: Vec::new(),
            },
            read_at: None,
        }
    }

    pub fn id(mut self, id: ConversationId) -> Self {
        self.parts.id = id;
        self
    }

    pub fn customer(mut self, customer: impl Into<Option<Customer>>) -> Self {
        self.parts.customer = customer.into();
        self
    }

    pub fn assignee(mut self, agent: impl Into<Option<AgentId>>) -> Self {
        self.parts.assignee_id = agent.into();
        self
    }

    pub fn status(mut self, status: Status) -> Self {
        self.parts.status = status;
        self
    }

    pub fn channel_type(mut self, channel_type: &str) -> Self {
        self.parts.channel_type = ChannelType::new(channel_type).expect("a valid channel type");
        self
    }

    pub fn channel_id(mut self, channel: impl Into<Option<ChannelId>>) -> Self {
        self.parts.channel_id = channel.into();
        self
    }

    /// Sets both the creation and the last update time.
    pub fn at(self, at: Timestamp) -> Self {
        self.created_at(at).updated_at(at)
    }

    pub fn created_at(mut self, at: Timestamp) -> Self {
        self.parts.created_at = at;
        self
    }

    pub fn updated_at(mut self, at: Timestamp) -> Self {
        self.parts.updated_at = at;
        self
    }

    pub fn first_response_at(mut self, at: impl Into<Option<Timestamp>>) -> Self {
        self.parts.first_response_at = at.into();
        self
    }

    /// Adds a message (any order: the aggregate keeps history order).
    pub fn message(mut self, message: Message) -> Self {
        self.parts.messages.push(message);
        self
    }

    /// Replaces the whole history with `messages` (any order).
    pub fn messages(mut self, messages: impl IntoIterator<Item = Message>) -> Self {
        self.parts.messages = messages.into_iter().collect();
        self
    }

    /// As if read from storage at `revision`.
    pub fn read_at(mut self, revision: Revision) -> Self {
        self.read_at = Some(revision);
        self
    }

    pub fn build(self) -> Conversation {
        let conversation = Conversation::new(self.parts).expect("a valid conversation");
        match self.read_at {
            Some(revision) => conversation.read_at(revision),
            None => conversation,
        }
    }
}

impl From<&Conversation> for ConversationBuilder {
    fn from(conversation: &Conversation) -> Self {
        Self {
            parts: ConversationParts {
                id: conversation.id(),
                business_id: conversation.business_id(),
                customer: conversation.customer().cloned(),
                assignee_id: conversation.assignee_id(),
                status: conversation.status(),
                channel_type: conversation.channel_type().clone(),
                channel_id: conversation.channel_id(),
                created_at: conversation.created_at(),
                updated_at: conversation.updated_at(),
                first_response_at: conversation.first_response_at(),
                messages: conversation.messages().to_vec(),
            },
            read_at: None,
        }
    }
}

/// A customer: by default id `0xd0`, every optional field empty, created at
/// [`DEFAULT_AT_MICROS`].
#[must_use]
pub struct CustomerBuilder {
    parts: CustomerParts,
}

impl CustomerBuilder {
    pub fn new(business: BusinessId) -> Self {
        Self {
            parts: CustomerParts {
                id: id(0xd0),
                business_id: business,
                name: None,
                email: None,
                phone: None,
                external_id: None,
                created_at: default_at(),
            },
        }
    }

    pub fn id(mut self, id: CustomerId) -> Self {
        self.parts.id = id;
        self
    }

    pub fn name<'a>(mut self, name: impl Into<Option<&'a str>>) -> Self {
        self.parts.name = name.into().map(text);
        self
    }

    pub fn email<'a>(mut self, email: impl Into<Option<&'a str>>) -> Self {
        self.parts.email = email.into().map(text);
        self
    }

    pub fn phone<'a>(mut self, phone: impl Into<Option<&'a str>>) -> Self {
        self.parts.phone = phone.into().map(text);
        self
    }

    pub fn external_id<'a>(mut self, external_id: impl Into<Option<&'a str>>) -> Self {
        self.parts.external_id = external_id.into().map(text);
        self
    }

    pub fn created_at(mut self, at: Timestamp) -> Self {
        self.parts.created_at = at;
        self
    }

    pub fn build(self) -> Customer {
        Customer::new(self.parts)
    }
}

impl From<&Customer> for CustomerBuilder {
    fn from(customer: &Customer) -> Self {
        Self {
            parts: CustomerParts {
                id: customer.id(),
                business_id: customer.business_id(),
                name: customer.name().cloned(),
                email: customer.email().cloned(),
                phone: customer.phone().cloned(),
                external_id: customer.external_id().cloned(),
                created_at: customer.created_at(),
            },
        }
    }
}

/// A message: by default id `0xe0`, from the customer (no sender id), content
/// `hello`, no attachments, created at [`DEFAULT_AT_MICROS`].
#[must_use]
pub struct MessageBuilder {
    parts: MessageParts,
}

impl Default for MessageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageBuilder {
    pub fn new() -> Self {
        Self {
            parts: MessageParts {
                id: id(0xe0),
                sender_type: SenderType::Customer,
                sender_id: None,
                content: text("hello"),
                attachments: Vec::new(),
                created_at: default_at(),
            },
        }
    }

    pub fn id(mut self, id: MessageId) -> Self {
        self.parts.id = id;
        self
    }

    pub fn sender(mut self, sender_type: SenderType, sender_id: Option<SenderId>) -> Self {
        self.parts.sender_type = sender_type;
        self.parts.sender_id = sender_id;
        self
    }

    pub fn content(mut self, content: &str) -> Self {
        self.parts.content = text(content);
        self
    }

    /// Adds an attachment, after the ones added before.
    pub fn attachment(mut self, attachment: Attachment) -> Self {
        self.parts.attachments.push(attachment);
        self
    }

    /// Replaces the attachments with `attachments`, in their order.
    pub fn attachments(mut self, attachments: impl IntoIterator<Item = Attachment>) -> Self {
        self.parts.attachments = attachments.into_iter().collect();
        self
    }

    pub fn created_at(mut self, at: Timestamp) -> Self {
        self.parts.created_at = at;
        self
    }

    pub fn build(self) -> Message {
        Message::new(self.parts)
    }
}

impl From<&Message> for MessageBuilder {
    fn from(message: &Message) -> Self {
        Self {
            parts: MessageParts {
                id: message.id(),
                sender_type: message.sender_type(),
                sender_id: message.sender_id(),
                content: message.content().clone(),
                attachments: message.attachments().to_vec(),
                created_at: message.created_at(),
            },
        }
    }
}

/// An attachment: by default id `0xa0`, `file.pdf`, `application/pdf`, 1 byte, at
/// `https://files.example/file.pdf`.
#[must_use]
pub struct AttachmentBuilder {
    parts: AttachmentParts,
}

impl Default for AttachmentBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl AttachmentBuilder {
    pub fn new() -> Self {
        Self {
            parts: AttachmentParts {
                id: id(0xa0),
                file_name: text("file.pdf"),
                content_type: text("application/pdf"),
                byte_size: ByteSize::new(1).expect("a valid size"),
                url: text("https://files.example/file.pdf"),
            },
        }
    }

    pub fn id(mut self, id: AttachmentId) -> Self {
        self.parts.id = id;
        self
    }

    pub fn file_name(mut self, file_name: &str) -> Self {
        self.parts.file_name = text(file_name);
        self
    }

    pub fn content_type(mut self, content_type: &str) -> Self {
        self.parts.content_type = text(content_type);
        self
    }

    pub fn byte_size(mut self, bytes: u64) -> Self {
        self.parts.byte_size = ByteSize::new(bytes).expect("a valid size");
        self
    }

    pub fn url(mut self, url: &str) -> Self {
        self.parts.url = text(url);
        self
    }

    pub fn build(self) -> Attachment {
        Attachment::new(self.parts)
    }
}

impl From<&Attachment> for AttachmentBuilder {
    fn from(attachment: &Attachment) -> Self {
        Self {
            parts: AttachmentParts {
                id: attachment.id(),
                file_name: attachment.file_name().clone(),
                content_type: attachment.content_type().clone(),
                byte_size: attachment.byte_size(),
                url: attachment.url().clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_make_the_aggregate_they_describe() {
        let business = id::<BusinessId>(0xb1);
        let conversation = ConversationBuilder::new(business)
            .customer(CustomerBuilder::new(business).name("Ada").build())
            .message(
                MessageBuilder::new()
                    .id(id(2))
                    .created_at(at("2024-03-01T10:00:00Z"))
                    .attachment(AttachmentBuilder::new().build())
                    .build(),
            )
            .message(MessageBuilder::new().id(id(1)).build())
            .build();
        assert_eq!(conversation.business_id(), business);
        assert_eq!(conversation.customer_id(), Some(id(0xd0)));
        let ids: Vec<MessageId> = conversation.messages().iter().map(Message::id).collect();
        assert_eq!(ids, [id(1), id(2)]);
        assert_eq!(conversation.revision(), None);
    }

    #[test]
    fn a_builder_from_a_value_rebuilds_it_and_clears_with_none() {
        let business = id::<BusinessId>(0xb1);
        let customer = CustomerBuilder::new(business)
            .name("Ada")
            .email("ada@example.com")
            .build();
        let message = MessageBuilder::new()
            .attachment(AttachmentBuilder::new().build())
            .build();
        let full = ConversationBuilder::new(business)
            .customer(customer.clone())
            .assignee(id::<AgentId>(0xa1))
            .channel_id(id::<ChannelId>(0xc1))
            .first_response_at(at("2024-03-01T09:05:00Z"))
            .message(message.clone())
            .read_at(Revision::new(1, None))
            .build();
        assert_eq!(ConversationBuilder::from(&full).build(), full);
        assert_eq!(ConversationBuilder::from(&full).build().revision(), None);
        assert_eq!(CustomerBuilder::from(&customer).build(), customer);
        assert_eq!(MessageBuilder::from(&message).build(), message);
        let attachment = &message.attachments()[0];
        assert_eq!(AttachmentBuilder::from(attachment).build(), *attachment);

        let cleared = ConversationBuilder::from(&full)
            .customer(None)
            .assignee(None)
            .channel_id(None)
            .first_response_at(None)
            .messages([])
            .build();
        assert_eq!(cleared, ConversationBuilder::new(business).build());
        assert_eq!(
            CustomerBuilder::from(&customer)
                .name(None)
                .email(None)
                .build(),
            CustomerBuilder::new(business).build()
        );
        assert_eq!(
            MessageBuilder::from(&message).attachments([]).build(),
            MessageBuilder::new().build()
        );
    }

    #[test]
    fn equality_ignores_where_a_conversation_was_read() {
        let business = id::<BusinessId>(0xb1);
        let stored = ConversationBuilder::new(business).build();
        let read = ConversationBuilder::new(business)
            .read_at(Revision::new(3, None))
            .build();
        assert_eq!(stored, read);
        assert_ne!(
            stored,
            ConversationBuilder::new(business)
                .status(Status::Closed)
                .build()
        );
    }
}
