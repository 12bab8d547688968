//! The inbox: a business's conversations listed by recent activity, without their
//! histories, and the filters an agent lists them by.

use crate::conversation::{Conversation, Message, Status};
use crate::id::{AgentId, ConversationId, CustomerId};
use crate::text::ChannelType;
use crate::timestamp::Timestamp;

/// A conversation as the inbox shows it: all of it but the history, with the number
/// of messages and the latest one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationSummary {
    /// The conversation, its `messages` empty.
    pub conversation: Conversation,
    pub message_count: u64,
    /// The latest message in history order.
    pub last_message: Option<Message>,
}

/// Whose conversations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssigneeFilter {
    Unassigned,
    Agent(AgentId),
}

/// The order of the inbox: by `updated_at`, ties by `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum InboxOrder {
    /// Most recently active first (`-updated_at`).
    #[default]
    NewestFirst,
    /// Least recently active first (`updated_at`).
    OldestFirst,
}

/// Where a page starts: after this (`updated_at`, `id`) in the page's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboxPosition {
    pub updated_at: Timestamp,
    pub id: ConversationId,
}

/// The filters of an inbox listing; every one is optional and they combine.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct InboxFilter {
    /// Any of these (empty: any status).
    pub statuses: Vec<Status>,
    pub assignee: Option<AssigneeFilter>,
    pub customer_id: Option<CustomerId>,
    pub channel_type: Option<ChannelType>,
    /// `updated_at` strictly after.
    pub updated_after: Option<Timestamp>,
    /// `updated_at` strictly before.
    pub updated_before: Option<Timestamp>,
}

/// One page of an inbox listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxQuery {
    pub filter: InboxFilter,
    pub order: InboxOrder,
    pub after: Option<InboxPosition>,
    /// 1 to [`InboxQuery::MAX_LIMIT`].
    pub limit: u16,
}

impl InboxQuery {
    pub const MAX_LIMIT: u16 = 100;
    pub const DEFAULT_LIMIT: u16 = 25;
}

/// A page: up to `limit` conversations, and whether more follow.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct InboxPage {
    pub items: Vec<ConversationSummary>,
    pub has_more: bool,
    /// The business's latest event id in the page's snapshot (0 when there is none):
    /// following the event log from it misses no change made after the page was read.
    pub last_event_id: i64,
}

impl InboxPage {
    /// Where the next page starts, when there is one.
    pub fn next(&self) -> Option<InboxPosition> {
        let last = self.items.last()?;
        self.has_more.then(|| InboxPosition {
            updated_at: last.conversation.updated_at(),
            id: last.conversation.id(),
        })
    }
}
