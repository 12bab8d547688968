//! The import's rules. Each field's value is decided by the domain's own constructor
//! (the same rules any other adapter applies); this module only picks the constructor
//! for the JSON type, and adds the rules that are about the file: fields that repeat
//! another (`customer_id` and `customer.id`, a message's `conversation_id`) must agree,
//! and an id may appear once per file.

use std::fmt;
use std::str::FromStr;

use pingback_domain::{
    AttachmentId, ByteSize, ChannelType, ConversationId, IdError, MessageId, SenderType, Status,
    Text, Timestamp,
};

use crate::error::{PathStep, quote};
use crate::ids::{AttachmentPlace, MessagePlace};
use crate::parse::{ConversationFields, Leaf, ParseState, Slot};

// ---------------------------------------------------------------------------------------
// Fields: from JSON values to domain values
// ---------------------------------------------------------------------------------------

pub(crate) fn req_id<T: FromStr<Err = IdError>>(v: &Leaf) -> Result<T, String> {
    match v {
        Leaf::Str(s) => s.parse().map_err(|e: IdError| e.to_string()),
        _ => Err("expected a UUID string".to_owned()),
    }
}

pub(crate) fn opt_id<T: FromStr<Err = IdError>>(v: &Leaf) -> Result<Option<T>, String> {
    match v {
        Leaf::Null => Ok(None),
        Leaf::Str(_) => req_id(v).map(Some),
        _ => Err("expected a UUID string or null".to_owned()),
    }
}

pub(crate) fn timestamp(v: &Leaf) -> Result<Timestamp, String> {
    match v {
        Leaf::Str(s) => Timestamp::parse_rfc3339(s).map_err(|e| e.to_string()),
        _ => Err("expected an RFC 3339 timestamp string".to_owned()),
    }
}

pub(crate) fn opt_timestamp(v: &Leaf) -> Result<Option<Timestamp>, String> {
    match v {
        Leaf::Null => Ok(None),
        Leaf::Str(_) => timestamp(v).map(Some),
        _ => Err("expected an RFC 3339 timestamp string or null".to_owned()),
    }
}

pub(crate) fn text(v: &Leaf) -> Result<Text, String> {
    match v {
        Leaf::Str(s) => Text::new(s.as_str()).map_err(|e| e.to_string()),
        _ => Err("expected a string".to_owned()),
    }
}

pub(crate) fn opt_text(v: &Leaf) -> Result<Option<Text>, String> {
    match v {
        Leaf::Null => Ok(None),
        Leaf::Str(_) => text(v).map(Some),
        _ => Err("expected a string or null".to_owned()),
    }
}

pub(crate) fn channel_type(v: &Leaf) -> Result<ChannelType, String> {
    match v {
        Leaf::Str(s) => ChannelType::new(s.as_str()).map_err(|e| e.to_string()),
        _ => Err("expected a string".to_owned()),
    }
}

pub(crate) fn status(v: &Leaf) -> Result<Status, String> {
    match v {
        Leaf::Str(s) => s.parse(),
        _ => Err(format!("expected a string, one of: {}", names(Status::ALL))),
    }
}

pub(crate) fn sender_type(v: &Leaf) -> Result<SenderType, String> {
    match v {
        Leaf::Str(s) => s.parse(),
        _ => Err(format!(
            "expected a string, one of: {}",
            names(SenderType::ALL)
        )),
    }
}

fn names<T: fmt::Display>(all: &[T]) -> String {
    all.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn byte_size(v: &Leaf) -> Result<ByteSize, String> {
    match v {
        Leaf::U64(n) => ByteSize::new(*n).map_err(|e| e.to_string()),
        Leaf::I64(n) => ByteSize::from_i64(*n).map_err(|e| e.to_string()),
        Leaf::F64(_) => Err("expected a whole number of bytes".to_owned()),
        _ => Err("expected a number of bytes".to_owned()),
    }
}

// ---------------------------------------------------------------------------------------
// Rules between fields, and ids repeated within the file
// ---------------------------------------------------------------------------------------

/// A message names another conversation than the one holding it. `steps` lead from
/// the current path to the message's `conversation_id`.
pub(crate) fn check_message_conversation(
    state: &mut ParseState,
    steps: &[PathStep],
    conversation: ConversationId,
    named: ConversationId,
) {
    if named != conversation {
        state.issue_at(
            steps,
            format!("does not match the conversation's id {conversation}"),
            Some(quote(&named.to_string())),
        );
    }
}

/// Reports a message id seen before in the file; the current path is the message.
pub(crate) fn check_message_id(state: &mut ParseState, id: MessageId, place: MessagePlace) {
    let locator = state.locator();
    if let Some((c, m)) = state.index.add_message(id, place) {
        state.issue_at(
            &[PathStep::Key("id")],
            format!(
                "message id appears more than once (first at {}.id)",
                locator.message(c, m)
            ),
            Some(quote(&id.to_string())),
        );
    }
}

/// Reports an attachment id seen before in the file; the current path is the
/// attachment.
pub(crate) fn check_attachment_id(
    state: &mut ParseState,
    id: AttachmentId,
    place: AttachmentPlace,
) {
    let locator = state.locator();
    if let Some((c, m, a)) = state.index.add_attachment(id, place) {
        state.issue_at(
            &[PathStep::Key("id")],
            format!(
                "attachment id appears more than once (first at {}.id)",
                locator.attachment(c, m, a)
            ),
            Some(quote(&id.to_string())),
        );
    }
}

/// Rules between fields of a conversation, and ids repeated within the file. The
/// current path is the conversation, the `conversation_index`-th of the file;
/// `deferred` holds the messages' conversation ids read before the conversation's own.
pub(crate) fn check_conversation(
    state: &mut ParseState,
    conversation_index: u32,
    fields: &ConversationFields,
    deferred: &[(u32, ConversationId)],
) {
    if let Some(&id) = fields.id.valid() {
        let locator = state.locator();
        if let Some(first) = state.index.add_conversation(id, conversation_index) {
            let first = locator.conversation(first);
            state.issue_at(
                &[PathStep::Key("id")],
                format!("conversation id appears more than once (first at {first}.id)"),
                Some(quote(&id.to_string())),
            );
        }
        for &(message_index, named) in deferred {
            let steps = [
                PathStep::Key("messages"),
                PathStep::Index(message_index),
                PathStep::Key("conversation_id"),
            ];
            check_message_conversation(state, &steps, id, named);
        }
    }

    if let (Slot::Valid(customer_id), Slot::Valid(customer)) =
        (&fields.customer_id, &fields.customer)
    {
        match (customer_id, customer) {
            (None, Some(customer)) => state.issue_at(
                &[PathStep::Key("customer_id")],
                format!(
                    "is null but customer is not (customer.id is {})",
                    customer.id()
                ),
                Some("null".to_owned()),
            ),
            (Some(customer_id), None) => state.issue_at(
                &[PathStep::Key("customer")],
                format!("is null but customer_id is {customer_id}"),
                Some("null".to_owned()),
            ),
            (Some(customer_id), Some(customer)) if customer.id() != *customer_id => state.issue_at(
                &[PathStep::Key("customer_id")],
                format!("does not match customer.id {}", customer.id()),
                Some(quote(&customer_id.to_string())),
            ),
            _ => {}
        }
    }

    if let Some(Some(customer)) = fields.customer.valid() {
        // Conversation::new checks this too, but only once everything else is valid;
        // checking here lists it with the file's other errors.
        if let Some(&business_id) = fields.business_id.valid()
            && customer.business_id() != business_id
        {
            state.issue_at(
                &[PathStep::Key("customer"), PathStep::Key("business_id")],
                format!("does not match the conversation's business_id {business_id}"),
                Some(quote(&customer.business_id().to_string())),
            );
        }
        let locator = state.locator();
        if let Some(first) = state.index.add_customer(customer, conversation_index) {
            state.issue_at(
                &[PathStep::Key("customer")],
                format!(
                    "customer {} differs from the one at {}.customer; a customer shared by several conversations must be identical",
                    customer.id(),
                    locator.conversation(first)
                ),
                None,
            );
        }
    }
}
