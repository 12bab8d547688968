//! Sample conversations and their parts for the adapter tests, made with the domain's
//! builders ([`pingback_domain::testing`]) and fresh random ids, so that any number of
//! samples live side by side in one database. A test that needs a variant finishes a
//! builder from here ([`conversation_of`], [`message_of`]) or starts one from a sample
//! (`ConversationBuilder::from(&sample)`), naming only what it is about.

use pingback_domain::testing::{
    AttachmentBuilder, ConversationBuilder, CustomerBuilder, MessageBuilder,
};
use pingback_domain::{
    AgentId, Attachment, BusinessId, ChannelId, Conversation, Customer, Message, SenderType,
    Status, Timestamp,
};
use uuid::Uuid;

/// A timestamp from RFC 3339 text.
pub use pingback_domain::testing::at as ts;
/// An id from a fixed number, for readable expectations and ordering tests.
pub use pingback_domain::testing::id as id_from;

/// A fresh random id of any kind: `let b: BusinessId = id();`.
pub fn id<T: From<Uuid>>() -> T {
    T::from(Uuid::new_v4())
}

/// A customer of `business` with every optional field set (unicode included).
pub fn customer(business: BusinessId) -> Customer {
    CustomerBuilder::new(business)
        .id(id())
        .name("Zoë Ångström-Nakamura 中村")
        .email("zoe@example.com")
        .phone("+33 6 12 34 56 78")
        .external_id("crm-0042")
        .created_at(ts("2024-02-29T08:30:00.123456Z"))
        .build()
}

/// A customer with only what is required.
pub fn bare_customer(business: BusinessId) -> Customer {
    CustomerBuilder::new(business)
        .id(id())
        .created_at(ts("2024-02-29T08:30:00Z"))
        .build()
}

pub fn attachment(file_name: &str) -> Attachment {
    AttachmentBuilder::new()
        .id(id())
        .file_name(file_name)
        .content_type("application/pdf")
        .byte_size(48_213)
        .url(&format!("https://files.example.com/{file_name}"))
        .build()
}

/// A customer's message without sender id or attachments, to finish.
pub fn message_of(created_at: Timestamp, content: &str) -> MessageBuilder {
    MessageBuilder::new()
        .id(id())
        .sender(SenderType::Customer, None)
        .content(content)
        .created_at(created_at)
}

/// A customer's message without sender id or attachments.
pub fn message(created_at: Timestamp, content: &str) -> Message {
    message_of(created_at, content).build()
}

/// A conversation of `business` with every optional field set but its customer and
/// messages, to finish: pending on `whatsapp`, assigned, with a channel id and a
/// first response.
pub fn conversation_of(business: BusinessId) -> ConversationBuilder {
    ConversationBuilder::new(business)
        .id(id())
        .assignee(id::<AgentId>())
        .status(Status::Pending)
        .channel_type("whatsapp")
        .channel_id(id::<ChannelId>())
        .created_at(ts("2024-03-01T09:00:00Z"))
        .updated_at(ts("2024-03-01T09:12:30.5Z"))
        .first_response_at(ts("2024-03-01T09:01:00.000001Z"))
}

/// The rich case: a customer with every field, messages from both sides, two
/// sharing a timestamp, attachments, unicode and emoji.
pub fn conversation(business: BusinessId) -> Conversation {
    let same = ts("2024-03-01T09:00:30Z");
    conversation_of(business)
        .customer(customer(business))
        .message(message(
            ts("2024-03-01T09:00:00Z"),
            "Bonjour ! Ma commande n°42 est arrivée cassée 😢",
        ))
        .message(
            message_of(same, "Voici les photos 📷")
                .attachment(attachment("photo-1.jpg"))
                .attachment(attachment("photo-2.jpg"))
                .build(),
        )
        .message(message(same, "Et la facture"))
        .message(
            message_of(
                ts("2024-03-01T09:01:00.000001Z"),
                "Désolé ! Un remplacement part aujourd'hui. 🚚",
            )
            .sender(SenderType::Agent, Some(id()))
            .build(),
        )
        .build()
}

/// Only what is required: no customer, assignee, channel id or first response;
/// messages without sender id or attachments.
pub fn minimal_conversation(business: BusinessId) -> Conversation {
    ConversationBuilder::new(business)
        .id(id())
        .at(ts("2024-03-01T09:00:00Z"))
        .message(message(ts("2024-03-01T09:00:00Z"), "hi"))
        .build()
}

/// `messages` messages a second apart, every tenth with an attachment.
pub fn large_conversation(business: BusinessId, messages: usize) -> Conversation {
    let start = ts("2024-01-01T00:00:00Z");
    let messages = (0..messages).map(|i| {
        let at = start.plus_micros(i as i64 * 1_000_000);
        let message = message_of(at, &format!("message number {i}"));
        if i % 10 == 0 {
            message.attachment(attachment(&format!("file-{i}.pdf")))
        } else {
            message
        }
        .build()
    });
    conversation_of(business)
        .customer(customer(business))
        .messages(messages)
        .build()
}
