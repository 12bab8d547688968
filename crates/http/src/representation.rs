//! The 200 body of `GET /api/v1/conversations/{id}`, serialized straight from the
//! domain aggregate (no intermediate values).

use pingback_domain::{Attachment, Conversation, ConversationId, Customer, Message, Timestamp};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

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

/// `Display` values as JSON strings, `None` as null.
fn opt<S: SerializeMap, T: std::fmt::Display>(
    map: &mut S,
    key: &'static str,
    value: Option<T>,
) -> Result<(), S::Error> {
    match value {
        Some(v) => map.serialize_entry(key, &Shown(v)),
        None => map.serialize_entry(key, &()),
    }
}

struct Shown<T>(T);

impl<T: std::fmt::Display> Serialize for Shown<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
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
        map.serialize_entry("id", &Shown(c.id()))?;
        map.serialize_entry("business_id", &Shown(c.business_id()))?;
        opt(&mut map, "customer_id", c.customer_id())?;
        opt(&mut map, "assignee_id", c.assignee_id())?;
        map.serialize_entry("status", c.status().as_str())?;
        map.serialize_entry("channel_type", c.channel_type().as_str())?;
        opt(&mut map, "channel_id", c.channel_id())?;
        map.serialize_entry("created_at", &Shown(c.created_at()))?;
        map.serialize_entry("updated_at", &Shown(c.updated_at()))?;
        opt::<_, Timestamp>(&mut map, "first_response_at", c.first_response_at())?;
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
        map.serialize_entry("id", &Shown(c.id()))?;
        map.serialize_entry("business_id", &Shown(c.business_id()))?;
        text(&mut map, "name", c.name())?;
        text(&mut map, "email", c.email())?;
        text(&mut map, "phone", c.phone())?;
        text(&mut map, "external_id", c.external_id())?;
        map.serialize_entry("created_at", &Shown(c.created_at()))?;
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
        map.serialize_entry("id", &Shown(m.id()))?;
        map.serialize_entry("conversation_id", self.conversation)?;
        map.serialize_entry("sender_type", m.sender_type().as_str())?;
        opt(&mut map, "sender_id", m.sender_id())?;
        map.serialize_entry("content", m.content().as_str())?;
        map.serialize_entry("attachments", &Attachments(m.attachments()))?;
        map.serialize_entry("created_at", &Shown(m.created_at()))?;
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
        map.serialize_entry("id", &Shown(a.id()))?;
        map.serialize_entry("file_name", a.file_name().as_str())?;
        map.serialize_entry("content_type", a.content_type().as_str())?;
        map.serialize_entry("byte_size", &a.byte_size().get())?;
        map.serialize_entry("url", a.url().as_str())?;
        map.end()
    }
}
