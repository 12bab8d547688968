//! The duplicate-id index: where each id of the file sits, as indexes rather than
//! strings so that a million messages stay cheap. It finds ids repeated within the file
//! and names the place of an id that storage reports as owned elsewhere.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{DefaultHasher, Hash, Hasher};

use pingback_application::{ImportConflict, ImportedEntity};
use pingback_domain::{AttachmentId, ConversationId, Customer, MessageId};
use uuid::Uuid;

use crate::error::{ImportIssue, Locator, quote};

/// A message's place: its conversation's index and its own.
pub(crate) type MessagePlace = (u32, u32);
/// An attachment's place: its conversation's, its message's and its own index.
pub(crate) type AttachmentPlace = (u32, u32, u32);

#[derive(Default)]
pub(crate) struct IdIndex {
    conversations: HashMap<Uuid, u32>,
    /// First conversation naming the customer, and a fingerprint of its fields.
    customers: HashMap<Uuid, (u32, u64)>,
    messages: HashMap<Uuid, MessagePlace>,
    attachments: HashMap<Uuid, AttachmentPlace>,
}

/// Records `place` for a new id; for a repeated one, returns where it was first.
fn first_place<P: Copy>(places: &mut HashMap<Uuid, P>, id: Uuid, place: P) -> Option<P> {
    match places.entry(id) {
        Entry::Vacant(slot) => {
            slot.insert(place);
            None
        }
        Entry::Occupied(first) => Some(*first.get()),
    }
}

impl IdIndex {
    /// `Some(first index)` when the conversation id appeared before.
    pub(crate) fn add_conversation(&mut self, id: ConversationId, at: u32) -> Option<u32> {
        first_place(&mut self.conversations, *id.as_uuid(), at)
    }

    /// A customer shared by several conversations is one row: the copies must agree or
    /// the file would not say which one to keep. `Some(first index)` when this copy
    /// differs from the first one.
    pub(crate) fn add_customer(&mut self, customer: &Customer, at: u32) -> Option<u32> {
        let fingerprint = customer_fingerprint(customer);
        let (first, first_fingerprint) = first_place(
            &mut self.customers,
            *customer.id().as_uuid(),
            (at, fingerprint),
        )?;
        (first_fingerprint != fingerprint).then_some(first)
    }

    /// `Some(first place)` when the message id appeared before.
    pub(crate) fn add_message(&mut self, id: MessageId, at: MessagePlace) -> Option<MessagePlace> {
        first_place(&mut self.messages, *id.as_uuid(), at)
    }

    /// `Some(first place)` when the attachment id appeared before.
    pub(crate) fn add_attachment(
        &mut self,
        id: AttachmentId,
        at: AttachmentPlace,
    ) -> Option<AttachmentPlace> {
        first_place(&mut self.attachments, *id.as_uuid(), at)
    }

    /// Names where in the file a conflicting id is.
    pub(crate) fn conflict_issue(
        &self,
        locator: Locator,
        conflict: &ImportConflict,
    ) -> ImportIssue {
        let uuid = Uuid::try_parse(&conflict.id).ok();
        let conversation = self
            .conversations
            .get(conflict.conversation_id.as_uuid())
            .copied();
        let path = uuid.and_then(|id| match conflict.entity {
            ImportedEntity::Conversation => self
                .conversations
                .get(&id)
                .map(|&c| format!("{}.id", locator.conversation(c))),
            ImportedEntity::Customer => conversation
                .or_else(|| self.customers.get(&id).map(|&(c, _)| c))
                .map(|c| format!("{}.customer.id", locator.conversation(c))),
            ImportedEntity::Message => self
                .messages
                .get(&id)
                .map(|&(c, m)| format!("{}.id", locator.message(c, m))),
            ImportedEntity::Attachment => self
                .attachments
                .get(&id)
                .map(|&(c, m, a)| format!("{}.id", locator.attachment(c, m, a))),
        });
        ImportIssue {
            path: path.unwrap_or_else(|| "$".to_owned()),
            message: conflict.to_string(),
            value: Some(quote(&conflict.id)),
        }
    }
}

fn customer_fingerprint(customer: &Customer) -> u64 {
    let mut hasher = DefaultHasher::new();
    customer.id().hash(&mut hasher);
    customer.business_id().hash(&mut hasher);
    customer.name().hash(&mut hasher);
    customer.email().hash(&mut hasher);
    customer.phone().hash(&mut hasher);
    customer.external_id().hash(&mut hasher);
    customer.created_at().hash(&mut hasher);
    hasher.finish()
}
