//! Pingback's domain: the conversation aggregate and the value types it is made of,
//! with every rule about a single value (ids, timestamps, text, names, sizes), so each
//! adapter validates input the same way. Depends on no other crate of the workspace.
//!
//! Every type here validates on construction and keeps its fields private, so a value
//! that exists is a valid one. Nothing here does I/O or knows about HTTP or SQL.

mod conversation;
mod events;
mod id;
mod inbox;
mod text;
mod timestamp;
mod webhooks;
mod write;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use conversation::{
    Attachment, AttachmentParts, Conversation, ConversationError, ConversationParts, Customer,
    CustomerParts, Message, MessageParts, Revision, SenderType, Status,
};
pub use events::{ConversationEvent, EventType};
pub use id::{
    AgentId, AttachmentId, BusinessId, ChannelId, ConversationId, CustomerId, IdError, MessageId,
    SenderId, WebhookId,
};
pub use inbox::{
    AssigneeFilter, ConversationSummary, InboxFilter, InboxOrder, InboxPage, InboxPosition,
    InboxQuery,
};
pub use text::{ByteSize, ChannelType, Text, TextError};
pub use timestamp::{RFC3339_MAX_LEN, Timestamp, TimestampError};
pub use webhooks::{
    AfterFailure, DeliveryState, EventTypes, EventTypesError, MAX_ENDPOINTS_PER_BUSINESS,
    MAX_ERROR_BYTES, MAX_WEBHOOK_URL_BYTES, RetryPolicy, RetryPolicyError, SecretSeed,
    WebhookChange, WebhookEndpoint, WebhookHost, WebhookSecret, WebhookUrl, WebhookUrlError,
};
pub use write::{
    AttachmentDraft, ConversationChanges, ConversationDraft, ConversationHead, ConversationPatch,
    CustomerChoice, CustomerDraft, FieldError, MAX_ATTACHMENTS, MAX_CONTENT_BYTES,
    MAX_CUSTOMER_FIELD_BYTES, MessageAppended, MessageDraft, MessageIds, NewConversationIds,
    WriteRefused, initial_status,
};
