//! The request bodies of the write operations, as the OpenAPI document describes them.
//! Bodies are read by `requests` (which reports every invalid value by JSON Pointer);
//! these types exist for the document, and a test checks the document's field lists
//! against what `requests` accepts.
#![allow(dead_code)]

use utoipa::ToSchema;

use crate::representation::Id;

/// A conversation to open.
#[derive(ToSchema)]
#[schema(as = CreateConversationRequest)]
pub struct CreateConversationRequest {
    /// The channel it came through, e.g. `widget`, `email`, `sms`, `whatsapp`, `api`
    /// (1 to 64 bytes).
    #[schema(min_length = 1, examples("email"))]
    channel_type: String,
    /// The channel record it is linked to.
    channel_id: Option<Id>,
    /// The assigned agent, or null.
    assignee_id: Option<Id>,
    /// `open` (the default) or `pending`.
    #[schema(pattern = "^(open|pending)$", examples("open"))]
    status: Option<String>,
    /// An existing customer of your business (any other id is a 422 at `/customer_id`).
    /// At most one of `customer_id` and `customer`.
    customer_id: Option<Id>,
    /// A customer to create; when `external_id` names an existing customer of your
    /// business, that customer is used as it is.
    customer: Option<CustomerRequest>,
    /// The first message; an `agent` first message sets `first_response_at`.
    message: Option<PostMessageRequest>,
}

/// A customer described by the client.
#[derive(ToSchema)]
#[schema(as = CustomerRequest)]
pub struct CustomerRequest {
    /// At most 512 bytes, no NUL.
    #[schema(max_length = 512)]
    name: Option<String>,
    #[schema(max_length = 512)]
    email: Option<String>,
    #[schema(max_length = 512)]
    phone: Option<String>,
    /// The customer's id in another system: a customer of your business with this
    /// external id is reused.
    #[schema(max_length = 512)]
    external_id: Option<String>,
}

/// A message to post.
#[derive(ToSchema)]
#[schema(as = PostMessageRequest)]
pub struct PostMessageRequest {
    /// `customer` or `agent`.
    #[schema(pattern = "^(customer|agent)$", examples("agent"))]
    sender_type: String,
    /// Who wrote it; for a customer message null or the conversation's `customer_id`.
    sender_id: Option<Id>,
    /// Text without NUL, at most 65,536 bytes; may be empty only with attachments.
    #[schema(max_length = 65536, examples("Thanks, we are on it."))]
    content: Option<String>,
    /// At most 20 files; the server assigns their ids.
    #[schema(max_items = 20)]
    attachments: Option<Vec<AttachmentRequest>>,
}

/// A file attached to a new message.
#[derive(ToSchema)]
#[schema(as = AttachmentRequest)]
pub struct AttachmentRequest {
    /// 1 to 255 bytes.
    #[schema(min_length = 1, max_length = 255, examples("invoice.pdf"))]
    file_name: String,
    /// A media type, `type/subtype`.
    #[schema(examples("application/pdf"))]
    content_type: String,
    /// Size in bytes, 0 or more.
    #[schema(minimum = 0, examples(48213))]
    byte_size: i64,
    /// An absolute `https` or `http` URL, at most 2,048 bytes.
    #[schema(max_length = 2048, examples("https://files.example.com/invoice.pdf"))]
    url: String,
}

/// A JSON merge patch (RFC 7396) of a conversation: members left out stay as they
/// are; any other member is a 422.
#[derive(ToSchema)]
#[schema(as = ConversationPatchRequest)]
pub struct ConversationPatchRequest {
    /// `open`, `pending`, `resolved` or `closed` (final).
    #[schema(pattern = "^(open|pending|resolved|closed)$", examples("resolved"))]
    status: Option<String>,
    /// The agent to assign, or null to unassign.
    assignee_id: Option<Id>,
}
