//! The write side of the conversation aggregate: what a client may ask for (drafts,
//! validated by their constructors), the state a write decides on (the
//! [`ConversationHead`]), and the state changes themselves, as methods that say what
//! changed. No storage here: an adapter loads the head under a lock, calls a method,
//! and writes what it returns.

use std::fmt;

use crate::conversation::{
    Attachment, AttachmentParts, Conversation, ConversationParts, Customer, Message, MessageParts,
    Revision, SenderType, Status,
};
use crate::id::{
    AgentId, AttachmentId, BusinessId, ChannelId, ConversationId, CustomerId, MessageId, SenderId,
};
use crate::text::{ByteSize, ChannelType, Text, TextError};
use crate::timestamp::Timestamp;

/// A rule a value of a write breaks, named by the field's path (`/message/content`,
/// JSON Pointer syntax, which adapters other than HTTP can read as a plain path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub pointer: String,
    pub detail: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, detail: impl fmt::Display) -> Self {
        Self {
            pointer: pointer.into(),
            detail: detail.to_string(),
        }
    }

    /// The same error under `prefix` (a draft nested in a larger one).
    pub fn under(mut self, prefix: &str) -> Self {
        self.pointer.insert_str(0, prefix);
        self
    }
}

/// A message's content: text without NUL, at most 65,536 bytes.
pub const MAX_CONTENT_BYTES: usize = 65_536;
/// Attachments one message may carry.
pub const MAX_ATTACHMENTS: usize = 20;
/// An attachment's file name, at most this many bytes.
pub const MAX_FILE_NAME_BYTES: usize = 255;
/// An attachment's URL, at most this many bytes.
pub const MAX_URL_BYTES: usize = 2_048;
/// Each of a new customer's text fields, at most this many bytes.
pub const MAX_CUSTOMER_FIELD_BYTES: usize = 512;

fn bounded_text(value: String, max: usize) -> Result<Text, TextError> {
    if value.len() > max {
        return Err(TextError::TooLong { max });
    }
    Text::new(value)
}

/// A file to attach to a new message (the server assigns its id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentDraft {
    file_name: Text,
    content_type: Text,
    byte_size: ByteSize,
    url: Text,
}

impl AttachmentDraft {
    /// Checks every field; the errors name the fields relative to the attachment.
    pub fn new(
        file_name: String,
        content_type: String,
        byte_size: i64,
        url: String,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let file_name = match bounded_text(file_name, MAX_FILE_NAME_BYTES) {
            Ok(name) if name.as_str().is_empty() => {
                errors.push(FieldError::new("/file_name", TextError::Empty));
                None
            }
            Ok(name) => Some(name),
            Err(e) => {
                errors.push(FieldError::new("/file_name", e));
                None
            }
        };
        let content_type = if is_media_type(&content_type) {
            Text::new(content_type).ok()
        } else {
            errors.push(FieldError::new(
                "/content_type",
                "expected a media type such as image/png (type/subtype)",
            ));
            None
        };
        let byte_size = match ByteSize::from_i64(byte_size) {
            Ok(size) => Some(size),
            Err(e) => {
                errors.push(FieldError::new("/byte_size", e));
                None
            }
        };
        let url = match check_url(&url) {
            Ok(()) => Text::new(url).ok(),
            Err(detail) => {
                errors.push(FieldError::new("/url", detail));
                None
            }
        };
        match (file_name, content_type, byte_size, url) {
            (Some(file_name), Some(content_type), Some(byte_size), Some(url))
                if errors.is_empty() =>
            {
                Ok(Self {
                    file_name,
                    content_type,
                    byte_size,
                    url,
                })
            }
            _ => Err(errors),
        }
    }

    fn into_attachment(self, id: AttachmentId) -> Attachment {
        Attachment::new(AttachmentParts {
            id,
            file_name: self.file_name,
            content_type: self.content_type,
            byte_size: self.byte_size,
            url: self.url,
        })
    }
}

/// RFC 6838's shape, `type/subtype` of token characters, parameters allowed after `;`.
fn is_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    value.len() <= 255
        && !value.chars().any(char::is_control)
        && essence
            .split_once('/')
            .is_some_and(|(kind, subtype)| token(kind) && token(subtype))
}

/// An absolute `http`/`https` URL with a host, no spaces or control characters.
fn check_url(value: &str) -> Result<(), String> {
    if value.len() > MAX_URL_BYTES {
        return Err(format!("longer than {MAX_URL_BYTES} bytes"));
    }
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or("expected an absolute http or https URL")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err("expected an absolute http or https URL with a host".into());
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("a URL must not contain spaces or control characters".into());
    }
    Ok(())
}

/// A message a client asks to post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageDraft {
    sender_type: SenderType,
    sender_id: Option<SenderId>,
    content: Text,
    attachments: Vec<AttachmentDraft>,
}

impl MessageDraft {
    /// The message-level rules: content size, empty content only with attachments,
    /// at most [`MAX_ATTACHMENTS`].
    pub fn new(
        sender_type: SenderType,
        sender_id: Option<SenderId>,
        content: String,
        attachments: Vec<AttachmentDraft>,
    ) -> Result<Self, Vec<FieldError>> {
        let errors = Self::rules(&content, attachments.len());
        if !errors.is_empty() {
            return Err(errors);
        }
        let content = Text::new(content).map_err(|e| vec![FieldError::new("/content", e)])?;
        Ok(Self {
            sender_type,
            sender_id,
            content,
            attachments,
        })
    }

    /// What `new` checks of a message's content and attachment count, on its own so a
    /// caller can report it beside other invalid values of the same request.
    pub fn rules(content: &str, attachments: usize) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if attachments > MAX_ATTACHMENTS {
            errors.push(FieldError::new(
                "/attachments",
                format!("at most {MAX_ATTACHMENTS} attachments"),
            ));
        }
        if content.len() > MAX_CONTENT_BYTES {
            errors.push(FieldError::new(
                "/content",
                TextError::TooLong {
                    max: MAX_CONTENT_BYTES,
                },
            ));
        } else if content.contains('\0') {
            errors.push(FieldError::new("/content", TextError::Nul));
        } else if content.is_empty() && attachments == 0 {
            errors.push(FieldError::new(
                "/content",
                "must not be empty unless the message has attachments",
            ));
        }
        errors
    }

    pub fn sender_type(&self) -> SenderType {
        self.sender_type
    }

    pub fn attachment_count(&self) -> usize {
        self.attachments.len()
    }
}

/// Fresh ids for a message and its attachments, assigned by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageIds {
    pub message: MessageId,
    /// At least as many as the draft has attachments; extra ones are unused.
    pub attachments: Vec<AttachmentId>,
}

/// A new customer, described by the client.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CustomerDraft {
    name: Option<Text>,
    email: Option<Text>,
    phone: Option<Text>,
    external_id: Option<Text>,
}

impl CustomerDraft {
    /// Each field text without NUL, at most [`MAX_CUSTOMER_FIELD_BYTES`].
    pub fn new(
        name: Option<String>,
        email: Option<String>,
        phone: Option<String>,
        external_id: Option<String>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut field = |pointer: &str, value: Option<String>| {
            value
                .map(|v| bounded_text(v, MAX_CUSTOMER_FIELD_BYTES))
                .transpose()
                .unwrap_or_else(|e| {
                    errors.push(FieldError::new(pointer, e));
                    None
                })
        };
        let draft = Self {
            name: field("/name", name),
            email: field("/email", email),
            phone: field("/phone", phone),
            external_id: field("/external_id", external_id),
        };
        if errors.is_empty() {
            Ok(draft)
        } else {
            Err(errors)
        }
    }

    /// The key that makes a described customer the same as an existing one.
    pub fn external_id(&self) -> Option<&Text> {
        self.external_id.as_ref()
    }

    /// The customer this draft becomes.
    pub fn into_customer(self, id: CustomerId, business: BusinessId, at: Timestamp) -> Customer {
        Customer::new(crate::conversation::CustomerParts {
            id,
            business_id: business,
            name: self.name,
            email: self.email,
            phone: self.phone,
            external_id: self.external_id,
            created_at: at,
        })
    }
}

/// Who the new conversation is with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CustomerChoice {
    None,
    /// An existing customer of the business.
    Existing(CustomerId),
    /// Described by the client: reused when its `external_id` names an existing
    /// customer of the business, else created.
    New(CustomerDraft),
}

/// The status a conversation may be created with.
pub fn initial_status(status: Status) -> Result<Status, FieldError> {
    match status {
        Status::Open | Status::Pending => Ok(status),
        _ => Err(FieldError::new(
            "/status",
            "a new conversation is open or pending",
        )),
    }
}

/// A conversation a client asks to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationDraft {
    pub channel_type: ChannelType,
    pub channel_id: Option<ChannelId>,
    pub assignee_id: Option<AgentId>,
    /// Open or pending ([`initial_status`]).
    pub status: Status,
    pub customer: CustomerChoice,
    pub message: Option<MessageDraft>,
}

/// Why a write is refused by the aggregate's rules (nothing is written).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteRefused {
    /// Closed is final: no message, no change.
    #[error("the conversation is closed")]
    Closed,
    /// A value is valid alone but not for this conversation.
    #[error("{}", .0.detail)]
    Invalid(FieldError),
}

/// The state of a conversation that writes decide on: all of it but the history, plus
/// the time of its latest message and its revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationHead {
    pub id: ConversationId,
    pub business_id: BusinessId,
    pub customer_id: Option<CustomerId>,
    /// The customer as stored (what the conversation's events carry).
    pub customer: Option<Customer>,
    pub assignee_id: Option<AgentId>,
    pub status: Status,
    pub channel_type: ChannelType,
    pub channel_id: Option<ChannelId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub first_response_at: Option<Timestamp>,
    /// The latest `created_at` of its messages, if it has any.
    pub last_message_at: Option<Timestamp>,
    /// How many messages it has, and the latest in history order: kept with the data
    /// so the inbox lists them without counting.
    pub message_count: u64,
    pub last_message_id: Option<MessageId>,
    pub revision: Revision,
}

/// What appending a message did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageAppended {
    pub message: Message,
    /// The status before, when the message changed it (a customer reopening).
    pub previous_status: Option<Status>,
}

/// A JSON merge patch of a conversation's mutable fields: `None` leaves a field alone.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConversationPatch {
    pub status: Option<Status>,
    /// `Some(None)` unassigns.
    pub assignee_id: Option<Option<AgentId>>,
}

/// The previous values of what a patch changed (`None`: that field did not change).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConversationChanges {
    pub status: Option<Status>,
    pub assignee_id: Option<Option<AgentId>>,
}

impl ConversationChanges {
    pub fn is_empty(&self) -> bool {
        self.status.is_none() && self.assignee_id.is_none()
    }
}

impl ConversationHead {
    /// The conversation as the inbox and the events show it, with `last_message` (the
    /// latest message, which the head knows only by id).
    pub fn summary(
        &self,
        last_message: Option<Message>,
    ) -> Result<crate::inbox::ConversationSummary, crate::conversation::ConversationError> {
        let conversation = Conversation::new(ConversationParts {
            id: self.id,
            business_id: self.business_id,
            customer: self.customer.clone(),
            assignee_id: self.assignee_id,
            status: self.status,
            channel_type: self.channel_type.clone(),
            channel_id: self.channel_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
            first_response_at: self.first_response_at,
            messages: Vec::new(),
        })?;
        Ok(crate::inbox::ConversationSummary {
            conversation,
            message_count: self.message_count,
            last_message,
        })
    }

    /// The time a new message gets: the clock, but strictly after every message
    /// already there (1 µs later when the clock is not ahead) and never before the
    /// conversation's last change, so `updated_at` never goes back.
    fn next_message_time(&self, now: Timestamp) -> Timestamp {
        let after_last = self.last_message_at.map_or(now, |last| last.plus_micros(1));
        now.max(after_last).max(self.updated_at)
    }

    /// Posts a message: see the contract's rules. Returns the message as stored and
    /// what it changed; `self` is the state after it.
    pub fn append(
        &mut self,
        draft: MessageDraft,
        ids: MessageIds,
        now: Timestamp,
    ) -> Result<MessageAppended, WriteRefused> {
        if self.status == Status::Closed {
            return Err(WriteRefused::Closed);
        }
        if draft.sender_type == SenderType::Customer
            && let Some(sender) = draft.sender_id
            && Some(sender.into_uuid()) != self.customer_id.map(CustomerId::into_uuid)
        {
            return Err(WriteRefused::Invalid(FieldError::new(
                "/sender_id",
                "a customer message's sender_id must be null or the conversation's customer_id",
            )));
        }
        let at = self.next_message_time(now);
        let mut previous_status = None;
        match draft.sender_type {
            SenderType::Agent => {
                if self.first_response_at.is_none() {
                    self.first_response_at = Some(at);
                }
            }
            SenderType::Customer => {
                if matches!(self.status, Status::Pending | Status::Resolved) {
                    previous_status = Some(self.status);
                    self.status = Status::Open;
                }
            }
        }
        self.updated_at = at;
        self.last_message_at = Some(at);
        self.message_count += 1;
        self.last_message_id = Some(ids.message);
        let attachments = draft
            .attachments
            .into_iter()
            .zip(ids.attachments)
            .map(|(a, id)| a.into_attachment(id))
            .collect();
        let message = Message::new(MessageParts {
            id: ids.message,
            sender_type: draft.sender_type,
            sender_id: draft.sender_id,
            content: draft.content,
            attachments,
            created_at: at,
        });
        Ok(MessageAppended {
            message,
            previous_status,
        })
    }

    /// Applies a merge patch. An empty patch, or one that changes nothing, changes
    /// nothing (`updated_at` included); otherwise `updated_at` becomes `now`, never
    /// earlier than before.
    pub fn apply(
        &mut self,
        patch: &ConversationPatch,
        now: Timestamp,
    ) -> Result<ConversationChanges, WriteRefused> {
        if self.status == Status::Closed {
            return Err(WriteRefused::Closed);
        }
        let mut changes = ConversationChanges::default();
        if let Some(status) = patch.status
            && status != self.status
        {
            changes.status = Some(self.status);
            self.status = status;
        }
        if let Some(assignee) = patch.assignee_id
            && assignee != self.assignee_id
        {
            changes.assignee_id = Some(self.assignee_id);
            self.assignee_id = assignee;
        }
        if !changes.is_empty() {
            self.updated_at = now.max(self.updated_at);
        }
        Ok(changes)
    }
}

/// Ids for a new conversation and what it may create with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewConversationIds {
    pub conversation: ConversationId,
    /// Used when the draft describes a customer that does not exist yet.
    pub customer: CustomerId,
    pub message: MessageIds,
}

impl ConversationDraft {
    /// The conversation this draft opens at `now`, with `customer` (resolved by the
    /// adapter: existing, reused by external id, or new) and its first message, all at
    /// the same instant.
    pub fn open(
        self,
        business: BusinessId,
        ids: NewConversationIds,
        customer: Option<Customer>,
        now: Timestamp,
    ) -> Result<Conversation, WriteRefused> {
        let first_response_at = self
            .message
            .as_ref()
            .filter(|m| m.sender_type == SenderType::Agent)
            .map(|_| now);
        let mut head = ConversationHead {
            id: ids.conversation,
            business_id: business,
            customer_id: customer.as_ref().map(Customer::id),
            customer: None,
            assignee_id: self.assignee_id,
            status: self.status,
            channel_type: self.channel_type.clone(),
            channel_id: self.channel_id,
            created_at: now,
            updated_at: now,
            first_response_at,
            last_message_at: None,
            message_count: 0,
            last_message_id: None,
            revision: Revision::new(1, None),
        };
        let messages = match self.message {
            Some(draft) => {
                let appended = head.append(draft, ids.message, now)?;
                // A first customer message does not reopen: the status is the one asked for.
                vec![appended.message]
            }
            None => vec![],
        };
        Conversation::new(ConversationParts {
            id: ids.conversation,
            business_id: business,
            customer,
            assignee_id: self.assignee_id,
            status: self.status,
            channel_type: self.channel_type,
            channel_id: self.channel_id,
            created_at: now,
            updated_at: now,
            first_response_at,
            messages,
        })
        .map_err(|e| WriteRefused::Invalid(FieldError::new("/customer_id", e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn at(micros: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_700_000_000_000_000 + micros).unwrap()
    }

    fn head(status: Status) -> ConversationHead {
        ConversationHead {
            id: ConversationId::from_uuid(Uuid::from_u128(1)),
            business_id: BusinessId::from_uuid(Uuid::from_u128(2)),
            customer_id: Some(CustomerId::from_uuid(Uuid::from_u128(3))),
            customer: None,
            assignee_id: None,
            status,
            channel_type: ChannelType::new("email").unwrap(),
            channel_id: None,
            created_at: at(0),
            updated_at: at(0),
            first_response_at: None,
            last_message_at: None,
            message_count: 0,
            last_message_id: None,
            revision: Revision::new(1, Some(1)),
        }
    }

    fn ids(n: u128) -> MessageIds {
        MessageIds {
            message: MessageId::from_uuid(Uuid::from_u128(100 + n)),
            attachments: (0..20)
                .map(|i| AttachmentId::from_uuid(Uuid::from_u128(1000 * n + i)))
                .collect(),
        }
    }

    fn draft(sender: SenderType, content: &str) -> MessageDraft {
        MessageDraft::new(sender, None, content.into(), vec![]).unwrap()
    }

    fn attachment() -> AttachmentDraft {
        AttachmentDraft::new(
            "a.png".into(),
            "image/png".into(),
            10,
            "https://files.example/a.png".into(),
        )
        .unwrap()
    }

    #[test]
    fn messages_are_strictly_ordered_even_when_the_clock_is_behind() {
        let mut h = head(Status::Open);
        let first = h
            .append(draft(SenderType::Customer, "a"), ids(1), at(10))
            .unwrap();
        let second = h
            .append(draft(SenderType::Customer, "b"), ids(2), at(10))
            .unwrap();
        let third = h
            .append(draft(SenderType::Customer, "c"), ids(3), at(5))
            .unwrap();
        assert_eq!(first.message.created_at(), at(10));
        assert_eq!(second.message.created_at(), at(11));
        assert_eq!(third.message.created_at(), at(12));
        assert_eq!(h.updated_at, at(12));
        assert_eq!(h.last_message_at, Some(at(12)));
        assert_eq!(h.message_count, 3);
        assert_eq!(h.last_message_id, Some(third.message.id()));
    }

    #[test]
    fn first_agent_message_sets_first_response_once() {
        let mut h = head(Status::Open);
        h.append(draft(SenderType::Customer, "q"), ids(1), at(1))
            .unwrap();
        assert_eq!(h.first_response_at, None);
        h.append(draft(SenderType::Agent, "a"), ids(2), at(2))
            .unwrap();
        assert_eq!(h.first_response_at, Some(at(2)));
        h.append(draft(SenderType::Agent, "b"), ids(3), at(3))
            .unwrap();
        assert_eq!(h.first_response_at, Some(at(2)));
    }

    #[test]
    fn customer_message_reopens_pending_and_resolved_only() {
        for (from, reopened) in [
            (Status::Pending, true),
            (Status::Resolved, true),
            (Status::Open, false),
        ] {
            let mut h = head(from);
            let appended = h
                .append(draft(SenderType::Customer, "x"), ids(1), at(1))
                .unwrap();
            assert_eq!(h.status, Status::Open);
            assert_eq!(appended.previous_status, reopened.then_some(from));
        }
        let mut h = head(Status::Pending);
        let appended = h
            .append(draft(SenderType::Agent, "x"), ids(1), at(1))
            .unwrap();
        assert_eq!(
            (h.status, appended.previous_status),
            (Status::Pending, None)
        );
    }

    #[test]
    fn closed_takes_no_message_and_no_patch() {
        let mut h = head(Status::Closed);
        let before = h.clone();
        assert_eq!(
            h.append(draft(SenderType::Customer, "x"), ids(1), at(1)),
            Err(WriteRefused::Closed)
        );
        assert_eq!(
            h.apply(&ConversationPatch::default(), at(1)),
            Err(WriteRefused::Closed)
        );
        assert_eq!(h, before);
    }

    #[test]
    fn customer_sender_must_be_the_conversations_customer() {
        let mut h = head(Status::Open);
        let other = SenderId::from_uuid(Uuid::from_u128(99));
        let d = MessageDraft::new(SenderType::Customer, Some(other), "x".into(), vec![]).unwrap();
        assert!(matches!(
            h.append(d, ids(1), at(1)),
            Err(WriteRefused::Invalid(FieldError { pointer, .. })) if pointer == "/sender_id"
        ));
        let own = SenderId::from_uuid(Uuid::from_u128(3));
        let d = MessageDraft::new(SenderType::Customer, Some(own), "x".into(), vec![]).unwrap();
        assert!(h.append(d, ids(1), at(1)).is_ok());
    }

    #[test]
    fn patch_changes_only_what_differs_and_reports_previous_values() {
        let mut h = head(Status::Open);
        let none = h
            .apply(
                &ConversationPatch {
                    status: Some(Status::Open),
                    assignee_id: Some(None),
                },
                at(50),
            )
            .unwrap();
        assert!(none.is_empty());
        assert_eq!(h.updated_at, at(0));

        let agent = AgentId::from_uuid(Uuid::from_u128(7));
        let changes = h
            .apply(
                &ConversationPatch {
                    status: Some(Status::Resolved),
                    assignee_id: Some(Some(agent)),
                },
                at(60),
            )
            .unwrap();
        assert_eq!(changes.status, Some(Status::Open));
        assert_eq!(changes.assignee_id, Some(None));
        assert_eq!(
            (h.status, h.assignee_id, h.updated_at),
            (Status::Resolved, Some(agent), at(60))
        );

        // The clock going back never moves updated_at back.
        h.apply(
            &ConversationPatch {
                status: Some(Status::Closed),
                assignee_id: None,
            },
            at(1),
        )
        .unwrap();
        assert_eq!(h.updated_at, at(60));
    }

    #[test]
    fn draft_rules() {
        assert!(MessageDraft::new(SenderType::Agent, None, String::new(), vec![]).is_err());
        assert!(
            MessageDraft::new(SenderType::Agent, None, String::new(), vec![attachment()]).is_ok()
        );
        let too_long = "x".repeat(MAX_CONTENT_BYTES + 1);
        assert_eq!(
            MessageDraft::new(SenderType::Agent, None, too_long, vec![]).unwrap_err()[0].pointer,
            "/content"
        );
        assert!(MessageDraft::new(SenderType::Agent, None, "a\0".into(), vec![]).is_err());
        let many = vec![attachment(); MAX_ATTACHMENTS + 1];
        assert_eq!(
            MessageDraft::new(SenderType::Agent, None, "x".into(), many).unwrap_err()[0].pointer,
            "/attachments"
        );

        let errors =
            AttachmentDraft::new(String::new(), "png".into(), -1, "ftp://x".into()).unwrap_err();
        let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/file_name", "/content_type", "/byte_size", "/url"]
        );
        assert!(
            AttachmentDraft::new(
                "f".into(),
                "text/plain; charset=utf-8".into(),
                0,
                "http://h/x".into()
            )
            .is_ok()
        );
        assert!(
            AttachmentDraft::new("f".into(), "text/plain".into(), 0, "https:///x".into()).is_err()
        );
        assert!(
            AttachmentDraft::new("f".into(), "text/plain".into(), 0, "https://h/a b".into())
                .is_err()
        );

        let long = "x".repeat(MAX_CUSTOMER_FIELD_BYTES + 1);
        assert_eq!(
            CustomerDraft::new(None, Some(long), None, None).unwrap_err()[0].pointer,
            "/email"
        );
        assert!(initial_status(Status::Resolved).is_err());
        assert!(initial_status(Status::Pending).is_ok());
    }

    #[test]
    fn opening_puts_everything_at_one_instant() {
        let business = BusinessId::from_uuid(Uuid::from_u128(2));
        let d = ConversationDraft {
            channel_type: ChannelType::new("sms").unwrap(),
            channel_id: None,
            assignee_id: None,
            status: Status::Pending,
            customer: CustomerChoice::None,
            message: Some(draft(SenderType::Customer, "hello")),
        };
        let c = d
            .open(
                business,
                NewConversationIds {
                    conversation: ConversationId::from_uuid(Uuid::from_u128(1)),
                    customer: CustomerId::from_uuid(Uuid::from_u128(3)),
                    message: ids(1),
                },
                None,
                at(7),
            )
            .unwrap();
        assert_eq!(c.created_at(), at(7));
        assert_eq!(c.updated_at(), at(7));
        assert_eq!(c.messages()[0].created_at(), at(7));
        assert_eq!(c.status(), Status::Pending);
        assert_eq!(c.first_response_at(), None);
    }
}
