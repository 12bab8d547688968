//! The 200 body of `GET /api/v1/conversations/{id}`: borrowed views of the domain
//! aggregate. Their derived `ToSchema` documents it and their derived `Serialize`
//! defines its bytes (no intermediate values; ids and timestamps are formatted on the
//! stack); the conversation body itself is served by `crate::body_writer`, which
//! writes the same bytes faster and is held equal to this `Serialize` by
//! `openapi_tests` and its own property tests. The few hand-written pieces (the id
//! and timestamp formats, the enums, the two sequences) are checked against the
//! serializer's output by `openapi_tests`.

use std::borrow::Cow;

use pingback_domain::{
    Attachment, Conversation, ConversationId, Customer, Message, RFC3339_MAX_LEN, SenderType,
    Status, Timestamp,
};
use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

/// A guess at the body size so the buffer grows at most once or twice.
pub fn estimated_len(conversation: &Conversation) -> usize {
    conversation.messages().iter().fold(1024, |sum, m| {
        sum + 320 + m.content().as_str().len() + m.attachments().len() * 256
    })
}

/// The body, written by [`crate::body_writer`]: the bytes serde_json makes of
/// [`ConversationBody`] (`openapi_tests` holds them equal), made faster.
pub fn to_json(conversation: &Conversation) -> Result<Vec<u8>, serde_json::Error> {
    let mut buffer = Vec::with_capacity(estimated_len(conversation));
    crate::body_writer::conversation(conversation, &mut buffer);
    Ok(buffer)
}

/// The body as serde_json writes it from the documented type.
#[cfg(test)]
pub fn to_json_by_serde(conversation: &Conversation) -> Vec<u8> {
    serde_json::to_vec(&ConversationBody::new(conversation)).unwrap_or_default()
}

/// The body of one message (`POST …/messages`, `GET …/messages/{id}`).
pub fn message_json(
    conversation: ConversationId,
    message: &Message,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut buf = [0; uuid::fmt::Hyphenated::LENGTH];
    let conversation = conversation.as_uuid().hyphenated().encode_lower(&mut buf);
    serde_json::to_vec(&MessageBody::new(conversation, message))
}

/// What the documented id pattern promises: lower-case, hyphenated.
pub const UUID_PATTERN: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
/// What the documented timestamp pattern promises: UTC with `Z`, a fraction of 1 to 6
/// digits only when it is not zero (trailing zeros are never printed).
pub const TIMESTAMP_PATTERN: &str =
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{0,5}[1-9])?Z$";

/// An id as its lower-case hyphenated string, formatted on the stack.
#[derive(Clone, Copy)]
pub struct Id(pub(crate) Uuid);

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0; uuid::fmt::Hyphenated::LENGTH];
        serializer.serialize_str(self.0.hyphenated().encode_lower(&mut buf))
    }
}

impl PartialSchema for Id {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("uuid".to_owned())))
            .pattern(Some(UUID_PATTERN))
            .description(Some(
                "A UUID, printed lower-case and hyphenated (8-4-4-4-12).",
            ))
            .examples(["c3d4e5f6-a7b8-9012-cdef-123456789012"])
            .into()
    }
}

impl ToSchema for Id {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Uuid")
    }
}

/// A timestamp in the contract's RFC 3339 form, formatted on the stack.
#[derive(Clone, Copy)]
pub struct Time(pub(crate) Timestamp);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0; RFC3339_MAX_LEN];
        serializer.serialize_str(self.0.write_rfc3339(&mut buf))
    }
}

impl PartialSchema for Time {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .pattern(Some(TIMESTAMP_PATTERN))
            .description(Some(
                "RFC 3339 in UTC with a `Z` suffix; fractional seconds (microsecond \
                 precision) only when non-zero, without trailing zeros.",
            ))
            .examples(["2024-03-01T09:00:00Z", "2024-03-01T09:05:00.25Z"])
            .into()
    }
}

impl ToSchema for Time {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Timestamp")
    }
}

/// An enum of the domain written as its name; the documented values are the domain's
/// own list (`ALL`), so a new variant is documented the moment it exists.
macro_rules! named {
    ($wrapper:ident, $domain:ty, $schema_name:literal, $description:literal) => {
        #[derive(Clone, Copy)]
        pub struct $wrapper(pub(crate) $domain);

        impl Serialize for $wrapper {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.0.as_str())
            }
        }

        impl PartialSchema for $wrapper {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(<$domain>::ALL.iter().map(|v| v.as_str())))
                    .description(Some($description))
                    .into()
            }
        }

        impl ToSchema for $wrapper {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($schema_name)
            }
        }
    };
}

named!(
    StatusName,
    Status,
    "Status",
    "Where the conversation stands in its life cycle."
);
named!(
    EventTypeName,
    pingback_domain::EventType,
    "EventType",
    "What happened: the type of an event."
);
named!(
    SenderTypeName,
    SenderType,
    "SenderType",
    "Which side of the conversation wrote the message."
);

/// One conversation of the caller's business, with its customer and its complete
/// message history (never capped, never paged). Fields may be added later; documented
/// fields never change type.
#[derive(Serialize, ToSchema)]
#[schema(as = Conversation)]
pub struct ConversationBody<'a> {
    /// The conversation's id.
    id: Id,
    /// The business (tenant) that owns the conversation: always the caller's.
    business_id: Id,
    /// The customer's id; null exactly when `customer` is null.
    #[schema(required = true)]
    customer_id: Option<Id>,
    /// The assigned agent's id, or null when unassigned.
    #[schema(required = true)]
    assignee_id: Option<Id>,
    status: StatusName,
    /// The channel the conversation came through, e.g. `widget`, `email`, `sms`,
    /// `whatsapp` or `api`.
    #[schema(min_length = 1, examples("widget"))]
    channel_type: &'a str,
    /// The channel record the conversation is linked to, or null.
    #[schema(required = true)]
    channel_id: Option<Id>,
    /// When the conversation was created.
    created_at: Time,
    /// When the conversation last changed.
    updated_at: Time,
    /// When an agent first answered (SLA tracking), or null before that.
    #[schema(required = true)]
    first_response_at: Option<Time>,
    /// The customer, embedded; null exactly when `customer_id` is null, else
    /// `customer.id` equals `customer_id`.
    #[schema(required = true)]
    customer: Option<CustomerBody<'a>>,
    /// The complete history: ordered by `created_at` ascending, ties broken by `id`
    /// ascending.
    #[schema(value_type = Vec<MessageBody<'static>>)]
    messages: Messages<'a>,
}

/// Built only to hold the fast writer to what serde_json makes of this type; the API
/// serves [`crate::body_writer`]'s bytes.
#[cfg(test)]
impl<'a> ConversationBody<'a> {
    pub fn new(c: &'a Conversation) -> Self {
        Self {
            id: Id(c.id().into_uuid()),
            business_id: Id(c.business_id().into_uuid()),
            customer_id: c.customer_id().map(|i| Id(i.into_uuid())),
            assignee_id: c.assignee_id().map(|i| Id(i.into_uuid())),
            status: StatusName(c.status()),
            channel_type: c.channel_type().as_str(),
            channel_id: c.channel_id().map(|i| Id(i.into_uuid())),
            created_at: Time(c.created_at()),
            updated_at: Time(c.updated_at()),
            first_response_at: c.first_response_at().map(Time),
            customer: c.customer().map(CustomerBody::new),
            messages: Messages {
                conversation: c.id(),
                messages: c.messages(),
            },
        }
    }
}

/// A conversation as the inbox lists it: its fields without the history, with the
/// number of messages and the latest one.
#[derive(Serialize, ToSchema)]
#[schema(as = ConversationListItem)]
pub struct ConversationItemBody<'a> {
    id: Id,
    business_id: Id,
    #[schema(required = true)]
    customer_id: Option<Id>,
    #[schema(required = true)]
    assignee_id: Option<Id>,
    status: StatusName,
    #[schema(min_length = 1, examples("widget"))]
    channel_type: &'a str,
    #[schema(required = true)]
    channel_id: Option<Id>,
    created_at: Time,
    /// When the conversation last changed: the inbox's order.
    updated_at: Time,
    #[schema(required = true)]
    first_response_at: Option<Time>,
    #[schema(required = true)]
    customer: Option<CustomerBody<'a>>,
    /// How many messages the conversation has.
    #[schema(minimum = 0)]
    message_count: u64,
    /// The latest message in history order, or null when there is none.
    #[schema(required = true, value_type = Option<MessageBody<'static>>)]
    last_message: Option<LastMessage<'a>>,
}

impl<'a> ConversationItemBody<'a> {
    pub fn new(item: &'a pingback_domain::ConversationSummary) -> Self {
        let c = &item.conversation;
        Self {
            id: Id(c.id().into_uuid()),
            business_id: Id(c.business_id().into_uuid()),
            customer_id: c.customer_id().map(|i| Id(i.into_uuid())),
            assignee_id: c.assignee_id().map(|i| Id(i.into_uuid())),
            status: StatusName(c.status()),
            channel_type: c.channel_type().as_str(),
            channel_id: c.channel_id().map(|i| Id(i.into_uuid())),
            created_at: Time(c.created_at()),
            updated_at: Time(c.updated_at()),
            first_response_at: c.first_response_at().map(Time),
            customer: c.customer().map(CustomerBody::new),
            message_count: item.message_count,
            last_message: item.last_message.as_ref().map(|message| LastMessage {
                conversation: c.id(),
                message,
            }),
        }
    }
}

/// A message written with its conversation's id (formatted when written): the list
/// item's `last_message` and an event's `message`.
pub struct LastMessage<'a> {
    conversation: ConversationId,
    message: &'a Message,
}

impl<'a> LastMessage<'a> {
    pub fn new(conversation: ConversationId, message: &'a Message) -> Self {
        Self {
            conversation,
            message,
        }
    }
}

impl Serialize for LastMessage<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0; uuid::fmt::Hyphenated::LENGTH];
        let conversation = self
            .conversation
            .as_uuid()
            .hyphenated()
            .encode_lower(&mut buf);
        MessageBody::new(conversation, self.message).serialize(serializer)
    }
}

/// A customer of the business, embedded in its conversations.
#[derive(Serialize, ToSchema)]
#[schema(as = Customer)]
pub struct CustomerBody<'a> {
    /// The customer's id.
    id: Id,
    /// The business the customer belongs to (the conversation's).
    business_id: Id,
    /// Display name, or null.
    #[schema(required = true)]
    name: Option<&'a str>,
    /// Email address as given (not validated), or null.
    #[schema(required = true)]
    email: Option<&'a str>,
    /// Phone number as given, or null.
    #[schema(required = true)]
    phone: Option<&'a str>,
    /// The customer's id in another system (CRM, shop), or null.
    #[schema(required = true)]
    external_id: Option<&'a str>,
    /// When the customer was created.
    created_at: Time,
}

impl<'a> CustomerBody<'a> {
    fn new(c: &'a Customer) -> Self {
        Self {
            id: Id(c.id().into_uuid()),
            business_id: Id(c.business_id().into_uuid()),
            name: c.name().map(pingback_domain::Text::as_str),
            email: c.email().map(pingback_domain::Text::as_str),
            phone: c.phone().map(pingback_domain::Text::as_str),
            external_id: c.external_id().map(pingback_domain::Text::as_str),
            created_at: Time(c.created_at()),
        }
    }
}

/// The message history; each element is a [`MessageBody`].
struct Messages<'a> {
    conversation: ConversationId,
    messages: &'a [Message],
}

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The conversation id is formatted once, not once per message.
        let mut buf = [0; uuid::fmt::Hyphenated::LENGTH];
        let conversation = self
            .conversation
            .as_uuid()
            .hyphenated()
            .encode_lower(&mut buf);
        let mut seq = serializer.serialize_seq(Some(self.messages.len()))?;
        for message in self.messages {
            seq.serialize_element(&MessageBody::new(conversation, message))?;
        }
        seq.end()
    }
}

/// One message of the conversation.
#[derive(Serialize, ToSchema)]
#[schema(as = Message)]
pub struct MessageBody<'a> {
    /// The message's id.
    id: Id,
    /// The conversation the message belongs to (always this conversation).
    #[schema(value_type = Id)]
    conversation_id: &'a str,
    sender_type: SenderTypeName,
    /// The agent or customer who wrote it, when known; else null.
    #[schema(required = true)]
    sender_id: Option<Id>,
    /// The message text (may be empty).
    content: &'a str,
    /// Files attached to the message, in the order they were attached.
    #[schema(value_type = Vec<AttachmentBody<'static>>)]
    attachments: Attachments<'a>,
    /// When the message was written.
    created_at: Time,
}

impl<'a> MessageBody<'a> {
    fn new(conversation: &'a str, m: &'a Message) -> Self {
        Self {
            id: Id(m.id().into_uuid()),
            conversation_id: conversation,
            sender_type: SenderTypeName(m.sender_type()),
            sender_id: m.sender_id().map(|i| Id(i.into_uuid())),
            content: m.content().as_str(),
            attachments: Attachments(m.attachments()),
            created_at: Time(m.created_at()),
        }
    }
}

/// A message's attachments; each element is an [`AttachmentBody`].
struct Attachments<'a>(&'a [Attachment]);

impl Serialize for Attachments<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for a in self.0 {
            seq.serialize_element(&AttachmentBody::new(a))?;
        }
        seq.end()
    }
}

/// A file attached to a message.
#[derive(Serialize, ToSchema)]
#[schema(as = Attachment)]
pub struct AttachmentBody<'a> {
    /// The attachment's id.
    id: Id,
    /// The file's name as uploaded.
    file_name: &'a str,
    /// The file's media type as uploaded, e.g. `image/png`.
    content_type: &'a str,
    /// The file's size in bytes.
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_u64)]
    byte_size: u64,
    /// Where the file can be downloaded.
    url: &'a str,
}

impl<'a> AttachmentBody<'a> {
    fn new(a: &'a Attachment) -> Self {
        Self {
            id: Id(a.id().into_uuid()),
            file_name: a.file_name().as_str(),
            content_type: a.content_type().as_str(),
            byte_size: a.byte_size().get(),
            url: a.url().as_str(),
        }
    }
}
