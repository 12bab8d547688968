//! The example conversation of the documentation: built with the domain's own
//! constructors and serialized by the real serializer, so the documented example is
//! exactly what the endpoint answers for such a conversation.

use pingback_domain::{
    AgentId, Attachment, AttachmentId, AttachmentParts, BusinessId, ByteSize, ChannelId,
    ChannelType, Conversation, ConversationId, ConversationParts, Customer, CustomerId,
    CustomerParts, Message, MessageId, MessageParts, SenderId, SenderType, Status, Text, Timestamp,
};

pub const BUSINESS: &str = "b2c3d4e5-f6a7-8901-bcde-f12345678901";
pub const CONVERSATION: &str = "c3d4e5f6-a7b8-9012-cdef-123456789012";
const CUSTOMER: &str = "d4e5f6a7-b8c9-0123-defa-234567890123";
const AGENT: &str = "a1b2c3d4-e5f6-7890-abcd-ef1234567890";
const CHANNEL: &str = "e5f6a7b8-c9d0-1234-efab-345678901234";
const FIRST_MESSAGE: &str = "f6a7b8c9-d0e1-2345-fabc-456789012345";
const SECOND_MESSAGE: &str = "a7b8c9d0-e1f2-3456-abcd-567890123456";
const ATTACHMENT: &str = "b8c9d0e1-f2a3-4567-bcde-678901234567";

type Error = Box<dyn std::error::Error + Send + Sync>;

fn at(rfc3339: &str) -> Result<Timestamp, Error> {
    Ok(Timestamp::parse_rfc3339(rfc3339)?)
}

fn text(value: &str) -> Result<Text, Error> {
    Ok(Text::new(value)?)
}

/// The conversation of the original endpoint description, with its mistakes fixed
/// (every id a UUID) and an attachment so that every field has an example.
pub fn conversation() -> Result<Conversation, Error> {
    let business = BusinessId::parse(BUSINESS)?;
    let id = ConversationId::parse(CONVERSATION)?;
    let customer = Customer::new(CustomerParts {
        id: CustomerId::parse(CUSTOMER)?,
        business_id: business,
        name: Some(text("Alex Johnson")?),
        email: Some(text("alex@example.com")?),
        phone: None,
        external_id: None,
        created_at: at("2024-02-20T08:00:00Z")?,
    });
    let question = Message::new(MessageParts {
        id: MessageId::parse(FIRST_MESSAGE)?,
        sender_type: SenderType::Customer,
        sender_id: None,
        content: text("Hello, I need help with my order.")?,
        attachments: vec![Attachment::new(AttachmentParts {
            id: AttachmentId::parse(ATTACHMENT)?,
            file_name: text("order-confirmation.png")?,
            content_type: text("image/png")?,
            byte_size: ByteSize::new(48_213)?,
            url: text("https://files.pingback.live/b8c9d0e1/order-confirmation.png")?,
        })],
        created_at: at("2024-03-01T09:00:00Z")?,
    });
    let answer = Message::new(MessageParts {
        id: MessageId::parse(SECOND_MESSAGE)?,
        sender_type: SenderType::Agent,
        sender_id: Some(SenderId::parse(AGENT)?),
        content: text("Hi Alex! Happy to help. Can you share your order number?")?,
        attachments: vec![],
        created_at: at("2024-03-01T09:05:00.25Z")?,
    });
    Ok(Conversation::new(ConversationParts {
        id,
        business_id: business,
        customer: Some(customer),
        assignee_id: Some(AgentId::parse(AGENT)?),
        status: Status::Open,
        channel_type: ChannelType::new("widget")?,
        channel_id: Some(ChannelId::parse(CHANNEL)?),
        created_at: at("2024-03-01T09:00:00Z")?,
        updated_at: at("2024-03-01T09:20:00Z")?,
        first_response_at: Some(at("2024-03-01T09:05:00.25Z")?),
        messages: vec![question, answer],
    })?)
}
