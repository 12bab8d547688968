//! An edge-case conversation for serializer tests: every nullable field null where
//! possible, escapes, unicode, microsecond fractions, the largest byte size.
#![allow(clippy::unwrap_used)]

use pingback_domain::{
    Attachment, AttachmentId, AttachmentParts, BusinessId, ByteSize, ChannelType, Conversation,
    ConversationId, ConversationParts, Customer, CustomerId, CustomerParts, Message, MessageId,
    MessageParts, SenderType, Status, Text, Timestamp,
};

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

/// No customer, no assignee, no channel, no first response; messages with ties.
pub fn bare() -> Conversation {
    let message = |id: &str, ts: &str, content: &str, attachments: Vec<Attachment>| {
        Message::new(MessageParts {
            id: MessageId::parse(id).unwrap(),
            sender_type: SenderType::Customer,
            sender_id: None,
            content: Text::new(content).unwrap(),
            attachments,
            created_at: at(ts),
        })
    };
    let attachment = |id: &str, size: u64| {
        Attachment::new(AttachmentParts {
            id: AttachmentId::parse(id).unwrap(),
            file_name: Text::new("r\u{e9}sum\u{e9} \"final\".pdf").unwrap(),
            content_type: Text::new("application/pdf").unwrap(),
            byte_size: ByteSize::new(size).unwrap(),
            url: Text::new("https://files.example/a?b=1&c=<2>").unwrap(),
        })
    };
    Conversation::new(ConversationParts {
        id: ConversationId::parse("0000000A-0000-4000-8000-00000000000F").unwrap(),
        business_id: BusinessId::parse("FFFFFFFF-FFFF-4FFF-BFFF-FFFFFFFFFFFF").unwrap(),
        customer: None,
        assignee_id: None,
        status: Status::Closed,
        channel_type: ChannelType::new("api").unwrap(),
        channel_id: None,
        created_at: at("1970-01-01T00:00:00Z"),
        updated_at: at("9999-12-31T23:59:59.999999+00:00"),
        first_response_at: None,
        messages: vec![
            message(
                "00000000-0000-4000-8000-000000000002",
                "2024-03-01T10:00:00.000001+01:00",
                "line\nbreak\ttab \"quoted\" back\\slash \u{1} \u{1F600} \u{2028}",
                vec![
                    attachment("00000000-0000-4000-8000-0000000000a1", ByteSize::MAX),
                    attachment("00000000-0000-4000-8000-0000000000a2", 0),
                ],
            ),
            message(
                "00000000-0000-4000-8000-000000000001",
                "2024-03-01T09:00:00.000001Z",
                "",
                vec![],
            ),
        ],
    })
    .unwrap()
}

/// A customer with only an id (every optional field null).
pub fn anonymous_customer() -> Conversation {
    let business = BusinessId::parse("b2c3d4e5-f6a7-8901-bcde-f12345678901").unwrap();
    Conversation::new(ConversationParts {
        id: ConversationId::parse("c3d4e5f6-a7b8-9012-cdef-123456789013").unwrap(),
        business_id: business,
        customer: Some(Customer::new(CustomerParts {
            id: CustomerId::parse("d4e5f6a7-b8c9-0123-defa-234567890124").unwrap(),
            business_id: business,
            name: None,
            email: None,
            phone: Some(Text::new("+44 20 7946 0958").unwrap()),
            external_id: Some(Text::new("crm-9").unwrap()),
            created_at: at("2024-02-29T23:59:59.5-00:30"),
        })),
        assignee_id: None,
        status: Status::Pending,
        channel_type: ChannelType::new("whatsapp").unwrap(),
        channel_id: None,
        created_at: at("2024-03-01T09:00:00Z"),
        updated_at: at("2024-03-01T09:00:00Z"),
        first_response_at: None,
        messages: vec![],
    })
    .unwrap()
}
