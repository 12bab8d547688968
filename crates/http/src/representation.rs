//! The 200 body of `GET /api/v1/conversations/{id}`, serialized straight from the
//! domain aggregate (no intermediate values).

use pingback_domain::{
    Attachment, Conversation, ConversationId, Customer, Message, RFC3339_MAX_LEN, Timestamp,
};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use uuid::Uuid;

/// Serializes a conversation in the contract's shape.
pub struct ConversationBody<'a>(pub &'a Conversation);

/// A guess at the body size so the buffer grows at most once or twice.
pub fn estimated_len(conversation: &Conversation) -> usize {
    conversation.messages().iter().fold(1024, |sum, m| {
        sum + 320 + m.content().as_str().len() + m.attachments().len() * 256
    })
}

pub fn to_json(conversation: &Conversation) -> Result<Vec<u8>, serde_json::Error> {
    let mut buffer = Vec::with_capacity(estimated_len(conversation));
    serde_json::to_writer(&mut buffer, &ConversationBody(conversation))?;
    Ok(buffer)
}

/// An id as its lower-case hyphenated string, formatted on the stack.
struct Id(Uuid);

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0; uuid::fmt::Hyphenated::LENGTH];
        serializer.serialize_str(self.0.hyphenated().encode_lower(&mut buf))
    }
}

/// A timestamp in the contract's RFC 3339 form, formatted on the stack.
struct Time(Timestamp);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0; RFC3339_MAX_LEN];
        serializer.serialize_str(self.0.write_rfc3339(&mut buf))
    }
}

fn text<S: SerializeMap>(
    map: &mut S,
    key: &'static str,
    value: Option<&pingback_domain::Text>,
) -> Result<(), S::Error> {
    map.serialize_entry(key, &value.map(pingback_domain::Text::as_str))
}

impl Serialize for ConversationBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut map = serializer.serialize_map(Some(13))?;
        map.serialize_entry("id", &Id(c.id().into_uuid()))?;
        map.serialize_entry("business_id", &Id(c.business_id().into_uuid()))?;
        map.serialize_entry("customer_id", &c.customer_id().map(|i| Id(i.into_uuid())))?;
        map.serialize_entry("assignee_id", &c.assignee_id().map(|i| Id(i.into_uuid())))?;
        map.serialize_entry("status", c.status().as_str())?;
        map.serialize_entry("channel_type", c.channel_type().as_str())?;
        map.serialize_entry("channel_id", &c.channel_id().map(|i| Id(i.into_uuid())))?;
        map.serialize_entry("created_at", &Time(c.created_at()))?;
        map.serialize_entry("updated_at", &Time(c.updated_at()))?;
        map.serialize_entry("first_response_at", &c.first_response_at().map(Time))?;
        map.serialize_entry("customer", &c.customer().map(CustomerBody))?;
        map.serialize_entry(
            "messages",
            &Messages {
                conversation: c.id(),
                messages: c.messages(),
            },
        )?;
        map.end()
    }
}

struct CustomerBody<'a>(&'a Customer);

impl Serialize for CustomerBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut map = serializer.serialize_map(Some(7))?;
        map.serialize_entry("id", &Id(c.id().into_uuid()))?;
        map.serialize_entry("business_id", &Id(c.business_id().into_uuid()))?;
        text(&mut map, "name", c.name())?;
        text(&mut map, "email", c.email())?;
        text(&mut map, "phone", c.phone())?;
        text(&mut map, "external_id", c.external_id())?;
        map.serialize_entry("created_at", &Time(c.created_at()))?;
        map.end()
    }
}

struct Messages<'a> {
    conversation: ConversationId,
    messages: &'a [Message],
}

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The conversation id is formatted once, not once per message.
        let conversation = self.conversation.to_string();
        let mut seq = serializer.serialize_seq(Some(self.messages.len()))?;
        for message in self.messages {
            seq.serialize_element(&MessageBody {
                conversation: &conversation,
                message,
            })?;
        }
        seq.end()
    }
}

struct MessageBody<'a> {
    conversation: &'a str,
    message: &'a Message,
}

impl Serialize for MessageBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let m = self.message;
        let mut map = serializer.serialize_map(Some(7))?;
        map.serialize_entry("id", &Id(m.id().into_uuid()))?;
        map.serialize_entry("conversation_id", self.conversation)?;
        map.serialize_entry("sender_type", m.sender_type().as_str())?;
        map.serialize_entry("sender_id", &m.sender_id().map(|i| Id(i.into_uuid())))?;
        map.serialize_entry("content", m.content().as_str())?;
        map.serialize_entry("attachments", &Attachments(m.attachments()))?;
        map.serialize_entry("created_at", &Time(m.created_at()))?;
        map.end()
    }
}

struct Attachments<'a>(&'a [Attachment]);

impl Serialize for Attachments<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for a in self.0 {
            seq.serialize_element(&AttachmentBody(a))?;
        }
        seq.end()
    }
}

struct AttachmentBody<'a>(&'a Attachment);

impl Serialize for AttachmentBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let a = self.0;
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("id", &Id(a.id().into_uuid()))?;
        map.serialize_entry("file_name", a.file_name().as_str())?;
        map.serialize_entry("content_type", a.content_type().as_str())?;
        map.serialize_entry("byte_size", &a.byte_size().get())?;
        map.serialize_entry("url", a.url().as_str())?;
        map.end()
    }
}
