//! The document: one conversation object or an array of them, each in the GET
//! response shape, read into domain values.

use pingback_domain::{
    AgentId, Attachment, AttachmentId, AttachmentParts, BusinessId, ChannelId, ChannelType,
    Conversation, ConversationError, ConversationId, ConversationParts, Customer, CustomerId,
    CustomerParts, Message, MessageId, MessageParts, SenderId, Status, Timestamp,
};
use serde::de::{self, MapAccess, SeqAccess};

use super::shape::{Shape, ShapeSeed, leaf, next_field, report_missing};
use super::value::{Leaf, Slot};
use super::{ParseState, Sink};
use crate::error::PathStep;
use crate::validate::{
    self, byte_size, channel_type, check_attachment_id, check_conversation,
    check_message_conversation, check_message_id, opt_id, opt_text, opt_timestamp, req_id, status,
    text, timestamp,
};

pub(super) struct RootShape<'a> {
    pub(super) state: &'a mut ParseState,
    pub(super) sink: &'a mut dyn Sink,
    pub(super) aborted: bool,
}

impl RootShape<'_> {
    fn handle<E: de::Error>(&mut self, conversation: Option<Conversation>) -> Result<(), E> {
        self.state.conversations += 1;
        if self.state.conversations.is_multiple_of(64) {
            self.state.report_progress();
        }
        if self.state.found > 0 && !self.aborted {
            // Roll back now: the importer need not hold a transaction open while the
            // rest of the file is checked.
            self.sink.abort();
            self.aborted = true;
        }
        if let Some(conversation) = conversation
            && !self.sink.accept(conversation)
        {
            self.state.cancel();
            return self.state.check();
        }
        Ok(())
    }
}

impl<'de> Shape<'de> for RootShape<'_> {
    type Out = ();

    fn on_map<A: MapAccess<'de>>(mut self, map: A) -> Result<(), A::Error> {
        self.state.root_is_array = false;
        let conversation = read_conversation(self.state, 0, map)?;
        self.handle(conversation)
    }

    fn on_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.state.root_is_array = true;
        let mut i = 0u32;
        loop {
            self.state.check()?;
            self.state.path.push(PathStep::Index(i));
            let element = seq.next_element_seed(ShapeSeed(ConversationShape {
                state: &mut *self.state,
                conversation_index: i,
            }))?;
            self.state.path.pop();
            match element {
                None => return Ok(()),
                Some(conversation) => self.handle(conversation)?,
            }
            i = i.saturating_add(1);
        }
    }

    fn on_other(self, value: Leaf) {
        self.state.issue(
            "expected a conversation object or an array of them",
            Some(value.describe()),
        );
    }
}

struct ConversationShape<'a> {
    state: &'a mut ParseState,
    conversation_index: u32,
}

impl<'de> Shape<'de> for ConversationShape<'_> {
    type Out = Option<Conversation>;

    fn on_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Out, A::Error> {
        read_conversation(self.state, self.conversation_index, map)
    }
    fn on_other(self, value: Leaf) -> Self::Out {
        self.state
            .issue("expected a conversation object", Some(value.describe()));
        None
    }
}

const CONVERSATION_FIELDS: &[&str] = &[
    "id",
    "business_id",
    "customer_id",
    "assignee_id",
    "status",
    "channel_type",
    "channel_id",
    "created_at",
    "updated_at",
    "first_response_at",
    "customer",
    "messages",
];

#[derive(Default)]
pub(crate) struct ConversationFields {
    pub(crate) id: Slot<ConversationId>,
    pub(crate) business_id: Slot<BusinessId>,
    pub(crate) customer_id: Slot<Option<CustomerId>>,
    pub(crate) assignee_id: Slot<Option<AgentId>>,
    pub(crate) status: Slot<Status>,
    pub(crate) channel_type: Slot<ChannelType>,
    pub(crate) channel_id: Slot<Option<ChannelId>>,
    pub(crate) created_at: Slot<Timestamp>,
    pub(crate) updated_at: Slot<Timestamp>,
    pub(crate) first_response_at: Slot<Option<Timestamp>>,
    pub(crate) customer: Slot<Option<Customer>>,
    pub(crate) messages: Slot<Vec<Message>>,
}

/// Reads one conversation object; returns it when the whole file is valid so far.
fn read_conversation<'de, A: MapAccess<'de>>(
    state: &mut ParseState,
    conversation_index: u32,
    mut map: A,
) -> Result<Option<Conversation>, A::Error> {
    let mut fields = ConversationFields::default();
    let mut seen = 0;
    // Message conversation ids read before the conversation's own id.
    let mut deferred: Vec<(u32, ConversationId)> = Vec::new();
    while let Some(field) = next_field(state, &mut map, CONVERSATION_FIELDS, &mut seen)? {
        match field {
            "id" => fields.id = leaf(state, &mut map, field, req_id)?,
            "business_id" => fields.business_id = leaf(state, &mut map, field, req_id)?,
            "customer_id" => fields.customer_id = leaf(state, &mut map, field, opt_id)?,
            "assignee_id" => fields.assignee_id = leaf(state, &mut map, field, opt_id)?,
            "status" => fields.status = leaf(state, &mut map, field, status)?,
            "channel_type" => fields.channel_type = leaf(state, &mut map, field, channel_type)?,
            "channel_id" => fields.channel_id = leaf(state, &mut map, field, opt_id)?,
            "created_at" => fields.created_at = leaf(state, &mut map, field, timestamp)?,
            "updated_at" => fields.updated_at = leaf(state, &mut map, field, timestamp)?,
            "first_response_at" => {
                fields.first_response_at = leaf(state, &mut map, field, opt_timestamp)?;
            }
            "customer" => {
                state.path.push(PathStep::Key(field));
                fields.customer =
                    map.next_value_seed(ShapeSeed(CustomerShape { state: &mut *state }))?;
                state.path.pop();
            }
            "messages" => {
                state.path.push(PathStep::Key(field));
                fields.messages = map.next_value_seed(ShapeSeed(MessagesShape {
                    state: &mut *state,
                    conversation_index,
                    expected: fields.id.valid().copied(),
                    deferred: &mut deferred,
                }))?;
                state.path.pop();
            }
            _ => {}
        }
    }
    report_missing(state, CONVERSATION_FIELDS, seen);
    check_conversation(state, conversation_index, &fields, &deferred);

    if state.found > 0 {
        return Ok(None);
    }
    let ConversationFields {
        id: Slot::Valid(id),
        business_id: Slot::Valid(business_id),
        customer_id: Slot::Valid(_),
        assignee_id: Slot::Valid(assignee_id),
        status: Slot::Valid(status),
        channel_type: Slot::Valid(channel_type),
        channel_id: Slot::Valid(channel_id),
        created_at: Slot::Valid(created_at),
        updated_at: Slot::Valid(updated_at),
        first_response_at: Slot::Valid(first_response_at),
        customer: Slot::Valid(customer),
        messages: Slot::Valid(messages),
    } = fields
    else {
        return Ok(None);
    };
    let parts = ConversationParts {
        id,
        business_id,
        customer,
        assignee_id,
        status,
        channel_type,
        channel_id,
        created_at,
        updated_at,
        first_response_at,
        messages,
    };
    match Conversation::new(parts) {
        Ok(conversation) => Ok(Some(conversation)),
        Err(error) => {
            // Checked above already; kept so the domain has the last word.
            let message = error.to_string();
            match error {
                ConversationError::CustomerOfAnotherBusiness { .. } => state.issue_at(
                    &[PathStep::Key("customer"), PathStep::Key("business_id")],
                    message,
                    None,
                ),
                ConversationError::DuplicateMessage(_)
                | ConversationError::DuplicateAttachment(_) => state.issue(message, None),
            }
            Ok(None)
        }
    }
}

struct CustomerShape<'a> {
    state: &'a mut ParseState,
}

const CUSTOMER_FIELDS: &[&str] = &[
    "id",
    "business_id",
    "name",
    "email",
    "phone",
    "external_id",
    "created_at",
];

impl<'de> Shape<'de> for CustomerShape<'_> {
    type Out = Slot<Option<Customer>>;

    fn on_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let state = self.state;
        let (mut id, mut business_id, mut created_at) =
            (Slot::Missing, Slot::Missing, Slot::Missing);
        let (mut name, mut email, mut phone, mut external_id) =
            (Slot::Missing, Slot::Missing, Slot::Missing, Slot::Missing);
        let mut seen = 0;
        while let Some(field) = next_field(state, &mut map, CUSTOMER_FIELDS, &mut seen)? {
            match field {
                "id" => id = leaf(state, &mut map, field, req_id::<CustomerId>)?,
                "business_id" => business_id = leaf(state, &mut map, field, req_id::<BusinessId>)?,
                "name" => name = leaf(state, &mut map, field, opt_text)?,
                "email" => email = leaf(state, &mut map, field, opt_text)?,
                "phone" => phone = leaf(state, &mut map, field, opt_text)?,
                "external_id" => external_id = leaf(state, &mut map, field, opt_text)?,
                "created_at" => created_at = leaf(state, &mut map, field, timestamp)?,
                _ => {}
            }
        }
        report_missing(state, CUSTOMER_FIELDS, seen);
        let (
            Slot::Valid(id),
            Slot::Valid(business_id),
            Slot::Valid(name),
            Slot::Valid(email),
            Slot::Valid(phone),
            Slot::Valid(external_id),
            Slot::Valid(created_at),
        ) = (id, business_id, name, email, phone, external_id, created_at)
        else {
            return Ok(Slot::Invalid);
        };
        Ok(Slot::Valid(Some(Customer::new(CustomerParts {
            id,
            business_id,
            name,
            email,
            phone,
            external_id,
            created_at,
        }))))
    }

    fn on_other(self, value: Leaf) -> Self::Out {
        if value == Leaf::Null {
            return Slot::Valid(None);
        }
        self.state
            .issue("expected a customer object or null", Some(value.describe()));
        Slot::Invalid
    }
}

struct MessagesShape<'a> {
    state: &'a mut ParseState,
    conversation_index: u32,
    /// The conversation's id when already read (it usually comes first).
    expected: Option<ConversationId>,
    deferred: &'a mut Vec<(u32, ConversationId)>,
}

impl<'de> Shape<'de> for MessagesShape<'_> {
    type Out = Slot<Vec<Message>>;

    fn on_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        let state = self.state;
        let mut messages = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        let mut message_index = 0u32;
        loop {
            state.check()?;
            state.path.push(PathStep::Index(message_index));
            let element = seq.next_element_seed(ShapeSeed(MessageShape {
                state: &mut *state,
                conversation_index: self.conversation_index,
                message_index,
                expected: self.expected,
                deferred: &mut *self.deferred,
            }))?;
            state.path.pop();
            match element {
                None => return Ok(Slot::Valid(messages)),
                Some(Some(message)) => messages.push(message),
                Some(None) => {}
            }
            state.messages += 1;
            message_index = message_index.saturating_add(1);
        }
    }

    fn on_other(self, value: Leaf) -> Self::Out {
        self.state
            .issue("expected an array of messages", Some(value.describe()));
        Slot::Invalid
    }
}

struct MessageShape<'a> {
    state: &'a mut ParseState,
    conversation_index: u32,
    message_index: u32,
    expected: Option<ConversationId>,
    deferred: &'a mut Vec<(u32, ConversationId)>,
}

const MESSAGE_FIELDS: &[&str] = &[
    "id",
    "conversation_id",
    "sender_type",
    "sender_id",
    "content",
    "attachments",
    "created_at",
];

impl<'de> Shape<'de> for MessageShape<'_> {
    type Out = Option<Message>;

    fn on_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let MessageShape {
            state,
            conversation_index,
            message_index,
            expected,
            deferred,
        } = self;
        let mut id = Slot::Missing;
        let mut sender_type = Slot::Missing;
        let mut sender_id = Slot::Missing;
        let mut content = Slot::Missing;
        let mut attachments = Slot::Missing;
        let mut created_at = Slot::Missing;
        let mut seen = 0;
        while let Some(field) = next_field(state, &mut map, MESSAGE_FIELDS, &mut seen)? {
            match field {
                "id" => {
                    id = leaf(state, &mut map, field, req_id::<MessageId>)?;
                    if let Some(&message_id) = id.valid() {
                        check_message_id(state, message_id, (conversation_index, message_index));
                    }
                }
                "conversation_id" => {
                    let conversation_id = leaf(state, &mut map, field, req_id::<ConversationId>)?;
                    if let Slot::Valid(conversation_id) = conversation_id {
                        match expected {
                            Some(expected) => check_message_conversation(
                                state,
                                &[PathStep::Key(field)],
                                expected,
                                conversation_id,
                            ),
                            None => deferred.push((message_index, conversation_id)),
                        }
                    }
                }
                "sender_type" => sender_type = leaf(state, &mut map, field, validate::sender_type)?,
                "sender_id" => sender_id = leaf(state, &mut map, field, opt_id::<SenderId>)?,
                "content" => content = leaf(state, &mut map, field, text)?,
                "attachments" => {
                    state.path.push(PathStep::Key(field));
                    attachments = map.next_value_seed(ShapeSeed(AttachmentsShape {
                        state: &mut *state,
                        conversation_index,
                        message_index,
                    }))?;
                    state.path.pop();
                }
                "created_at" => created_at = leaf(state, &mut map, field, timestamp)?,
                _ => {}
            }
        }
        report_missing(state, MESSAGE_FIELDS, seen);
        if state.found > 0 {
            // The file will not be imported: keep nothing, only keep checking.
            return Ok(None);
        }
        let (
            Slot::Valid(id),
            Slot::Valid(sender_type),
            Slot::Valid(sender_id),
            Slot::Valid(content),
            Slot::Valid(attachments),
            Slot::Valid(created_at),
        ) = (id, sender_type, sender_id, content, attachments, created_at)
        else {
            return Ok(None);
        };
        Ok(Some(Message::new(MessageParts {
            id,
            sender_type,
            sender_id,
            content,
            attachments,
            created_at,
        })))
    }

    fn on_other(self, value: Leaf) -> Self::Out {
        self.state
            .issue("expected a message object", Some(value.describe()));
        None
    }
}

struct AttachmentsShape<'a> {
    state: &'a mut ParseState,
    conversation_index: u32,
    message_index: u32,
}

impl<'de> Shape<'de> for AttachmentsShape<'_> {
    type Out = Slot<Vec<Attachment>>;

    fn on_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        let state = self.state;
        let mut attachments = Vec::new();
        let mut attachment_index = 0u32;
        loop {
            state.check()?;
            state.path.push(PathStep::Index(attachment_index));
            let element = seq.next_element_seed(ShapeSeed(AttachmentShape {
                state: &mut *state,
                conversation_index: self.conversation_index,
                message_index: self.message_index,
                attachment_index,
            }))?;
            state.path.pop();
            match element {
                None => return Ok(Slot::Valid(attachments)),
                Some(Some(attachment)) => attachments.push(attachment),
                Some(None) => {}
            }
            attachment_index = attachment_index.saturating_add(1);
        }
    }

    fn on_other(self, value: Leaf) -> Self::Out {
        self.state
            .issue("expected an array of attachments", Some(value.describe()));
        Slot::Invalid
    }
}

struct AttachmentShape<'a> {
    state: &'a mut ParseState,
    conversation_index: u32,
    message_index: u32,
    attachment_index: u32,
}

const ATTACHMENT_FIELDS: &[&str] = &["id", "file_name", "content_type", "byte_size", "url"];

impl<'de> Shape<'de> for AttachmentShape<'_> {
    type Out = Option<Attachment>;

    fn on_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let state = self.state;
        let mut id = Slot::Missing;
        let mut file_name = Slot::Missing;
        let mut content_type = Slot::Missing;
        let mut size = Slot::Missing;
        let mut url = Slot::Missing;
        let mut seen = 0;
        while let Some(field) = next_field(state, &mut map, ATTACHMENT_FIELDS, &mut seen)? {
            match field {
                "id" => {
                    id = leaf(state, &mut map, field, req_id::<AttachmentId>)?;
                    if let Some(&attachment_id) = id.valid() {
                        check_attachment_id(
                            state,
                            attachment_id,
                            (
                                self.conversation_index,
                                self.message_index,
                                self.attachment_index,
                            ),
                        );
                    }
                }
                "file_name" => file_name = leaf(state, &mut map, field, text)?,
                "content_type" => content_type = leaf(state, &mut map, field, text)?,
                "byte_size" => size = leaf(state, &mut map, field, byte_size)?,
                "url" => url = leaf(state, &mut map, field, text)?,
                _ => {}
            }
        }
        report_missing(state, ATTACHMENT_FIELDS, seen);
        let (
            Slot::Valid(id),
            Slot::Valid(file_name),
            Slot::Valid(content_type),
            Slot::Valid(byte_size),
            Slot::Valid(url),
        ) = (id, file_name, content_type, size, url)
        else {
            return Ok(None);
        };
        Ok(Some(Attachment::new(AttachmentParts {
            id,
            file_name,
            content_type,
            byte_size,
            url,
        })))
    }

    fn on_other(self, value: Leaf) -> Self::Out {
        self.state
            .issue("expected an attachment object", Some(value.describe()));
        None
    }
}
