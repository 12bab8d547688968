//! An edge-case conversation for serializer tests: every nullable field null where
//! possible, escapes, unicode, microsecond fractions, the largest byte size.
#![allow(clippy::unwrap_used)]

use pingback_domain::testing::{
    AttachmentBuilder, ConversationBuilder, CustomerBuilder, MessageBuilder, at, parse_id,
};
use pingback_domain::{Attachment, ByteSize, Conversation, Message, SenderType, Status};

/// No customer, no assignee, no channel, no first response; messages with ties.
pub fn bare() -> Conversation {
    let message = |id: &str, ts: &str, content: &str, attachments: Vec<Attachment>| -> Message {
        attachments
            .into_iter()
            .fold(
                MessageBuilder::new()
                    .id(parse_id(id))
                    .sender(SenderType::Customer, None)
                    .content(content)
                    .created_at(at(ts)),
                MessageBuilder::attachment,
            )
            .build()
    };
    let attachment = |id: &str, size: u64| {
        AttachmentBuilder::new()
            .id(parse_id(id))
            .file_name("r\u{e9}sum\u{e9} \"final\".pdf")
            .content_type("application/pdf")
            .byte_size(size)
            .url("https://files.example/a?b=1&c=<2>")
            .build()
    };
    ConversationBuilder::new(parse_id("FFFFFFFF-FFFF-4FFF-BFFF-FFFFFFFFFFFF"))
        .id(parse_id("0000000A-0000-4000-8000-00000000000F"))
        .status(Status::Closed)
        .channel_type("api")
        .created_at(at("1970-01-01T00:00:00Z"))
        .updated_at(at("9999-12-31T23:59:59.999999+00:00"))
        .message(message(
            "00000000-0000-4000-8000-000000000002",
            "2024-03-01T10:00:00.000001+01:00",
            "line\nbreak\ttab \"quoted\" back\\slash \u{1} \u{1F600} \u{2028}",
            vec![
                attachment("00000000-0000-4000-8000-0000000000a1", ByteSize::MAX),
                attachment("00000000-0000-4000-8000-0000000000a2", 0),
            ],
        ))
        .message(message(
            "00000000-0000-4000-8000-000000000001",
            "2024-03-01T09:00:00.000001Z",
            "",
            vec![],
        ))
        .build()
}

/// A customer with only an id (every optional field null).
pub fn anonymous_customer() -> Conversation {
    let business = parse_id("b2c3d4e5-f6a7-8901-bcde-f12345678901");
    ConversationBuilder::new(business)
        .id(parse_id("c3d4e5f6-a7b8-9012-cdef-123456789013"))
        .customer(
            CustomerBuilder::new(business)
                .id(parse_id("d4e5f6a7-b8c9-0123-defa-234567890124"))
                .phone("+44 20 7946 0958")
                .external_id("crm-9")
                .created_at(at("2024-02-29T23:59:59.5-00:30"))
                .build(),
        )
        .status(Status::Pending)
        .channel_type("whatsapp")
        .at(at("2024-03-01T09:00:00Z"))
        .build()
}
