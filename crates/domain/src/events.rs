//! The business's event log: what happened to a conversation, in the order it was
//! committed, as a reader of the log sees it.

use std::fmt;

use crate::conversation::Message;
use crate::inbox::ConversationSummary;
use crate::timestamp::Timestamp;
use crate::write::ConversationChanges;

/// What an event says happened.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum EventType {
    ConversationCreated,
    ConversationUpdated,
    ConversationImported,
    MessageCreated,
}

impl EventType {
    pub const ALL: [Self; 4] = [
        Self::ConversationCreated,
        Self::ConversationUpdated,
        Self::ConversationImported,
        Self::MessageCreated,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ConversationCreated => "conversation.created",
            Self::ConversationUpdated => "conversation.updated",
            Self::ConversationImported => "conversation.imported",
            Self::MessageCreated => "message.created",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change to one conversation, as its event carries it: the conversation as the
/// change left it (the inbox's shape), the message it added, the values it replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationEvent {
    pub kind: EventType,
    pub occurred_at: Timestamp,
    pub conversation: ConversationSummary,
    /// For `message.created`.
    pub message: Option<crate::conversation::Message>,
    /// For `conversation.updated`: the previous values of what changed.
    pub previous: Option<ConversationChanges>,
}

impl ConversationEvent {
    fn of(kind: EventType, conversation: ConversationSummary) -> Self {
        Self {
            kind,
            occurred_at: conversation.conversation.updated_at(),
            conversation,
            message: None,
            previous: None,
        }
    }

    /// `conversation.created`, and `message.created` for its first message.
    pub fn created(conversation: ConversationSummary) -> Vec<Self> {
        let first = conversation.last_message.clone();
        let mut events = vec![Self::of(
            EventType::ConversationCreated,
            conversation.clone(),
        )];
        if let Some(message) = first {
            events.push(Self {
                message: Some(message),
                ..Self::of(EventType::MessageCreated, conversation)
            });
        }
        events
    }

    /// `message.created`, and `conversation.updated` when the message changed the
    /// status (a customer reopening).
    pub fn message_added(
        conversation: ConversationSummary,
        message: Message,
        previous_status: Option<crate::conversation::Status>,
    ) -> Vec<Self> {
        let mut events = vec![Self {
            message: Some(message),
            ..Self::of(EventType::MessageCreated, conversation.clone())
        }];
        if let Some(status) = previous_status {
            events.push(Self {
                previous: Some(ConversationChanges {
                    status: Some(status),
                    assignee_id: None,
                }),
                ..Self::of(EventType::ConversationUpdated, conversation)
            });
        }
        events
    }

    /// `conversation.updated` with the previous values, when anything changed.
    pub fn updated(conversation: ConversationSummary, changes: ConversationChanges) -> Vec<Self> {
        if changes.is_empty() {
            return Vec::new();
        }
        vec![Self {
            previous: Some(changes),
            ..Self::of(EventType::ConversationUpdated, conversation)
        }]
    }

    /// `conversation.imported`, at `at` (when the import wrote it, not when the
    /// conversation last changed in the system it came from).
    pub fn imported(conversation: ConversationSummary, at: Timestamp) -> Self {
        Self {
            occurred_at: at,
            ..Self::of(EventType::ConversationImported, conversation)
        }
    }
}

impl ConversationSummary {
    /// The summary of a whole conversation (its count and latest message from its
    /// history), without the history.
    pub fn of(conversation: &crate::conversation::Conversation) -> Self {
        Self {
            conversation: conversation.without_history(),
            message_count: conversation.messages().len() as u64,
            last_message: conversation.messages().last().cloned(),
        }
    }
}
