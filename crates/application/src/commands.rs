//! The write use cases: scope check, server-assigned ids and time, the tenant rule.

use std::sync::Arc;

use pingback_domain::{
    AttachmentId, Conversation, ConversationDraft, ConversationId, ConversationPatch, CustomerId,
    Message, MessageAppended, MessageDraft, MessageId, MessageIds, NewConversationIds, Revision,
    Timestamp, WriteRefused,
};
use uuid::Uuid;

use crate::principal::{InsufficientScope, Principal, Scope};
use crate::repository::RepositoryError;
use crate::use_cases::{ConversationService, GetConversationError};
use crate::write::{ConversationWriter, IdempotencyClaim, Updated, WriteError, Written};

/// Where "now" comes from: the system clock in production, a fixed one in tests.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system's clock, UTC, truncated to microseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Why a write use case did not write.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Forbidden(#[from] InsufficientScope),
    #[error("conversation not found")]
    NotFound,
    #[error("no such customer")]
    UnknownCustomer,
    #[error(transparent)]
    Refused(WriteRefused),
    #[error("the conversation has changed")]
    PreconditionFailed,
    #[error("the idempotency key was used for another request")]
    KeyReused,
    #[error("a request with this idempotency key is in progress")]
    KeyInFlight,
    #[error("storage is unavailable")]
    Unavailable(#[source] RepositoryError),
    #[error("internal error")]
    Internal(#[source] RepositoryError),
}

impl From<WriteError> for CommandError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::NotFound => Self::NotFound,
            WriteError::UnknownCustomer => Self::UnknownCustomer,
            WriteError::Refused(refused) => Self::Refused(refused),
            WriteError::PreconditionFailed => Self::PreconditionFailed,
            WriteError::KeyReused => Self::KeyReused,
            WriteError::KeyInFlight => Self::KeyInFlight,
            WriteError::Storage(e @ RepositoryError::Unavailable(_)) => Self::Unavailable(e),
            WriteError::Storage(e @ RepositoryError::Internal(_)) => Self::Internal(e),
        }
    }
}

impl From<RepositoryError> for CommandError {
    fn from(error: RepositoryError) -> Self {
        WriteError::Storage(error).into()
    }
}

/// The write use cases over whichever adapter the composition root chose.
#[derive(Clone)]
pub struct ConversationCommands {
    writer: Arc<dyn ConversationWriter>,
    reads: ConversationService,
    clock: Arc<dyn Clock>,
}

fn new_uuid() -> Uuid {
    Uuid::now_v7()
}

fn message_ids(draft: &MessageDraft) -> MessageIds {
    MessageIds {
        message: MessageId::from_uuid(new_uuid()),
        attachments: (0..draft.attachment_count())
            .map(|_| AttachmentId::from_uuid(new_uuid()))
            .collect(),
    }
}

impl ConversationCommands {
    pub fn new(
        writer: Arc<dyn ConversationWriter>,
        reads: ConversationService,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            writer,
            reads,
            clock,
        }
    }

    /// The revision a writer's `If-Match` is checked against (scoped like a read,
    /// allowed by the write scope).
    pub async fn current_revision(
        &self,
        principal: &Principal,
        id: ConversationId,
    ) -> Result<Revision, CommandError> {
        principal.require(Scope::ConversationsWrite)?;
        self.reads
            .stored_revision(principal, id)
            .await
            .map_err(|error| match error {
                GetConversationError::Forbidden(missing) => CommandError::Forbidden(missing),
                GetConversationError::NotFound => CommandError::NotFound,
                GetConversationError::Unavailable(e) => CommandError::Unavailable(e),
                GetConversationError::Internal(e) => CommandError::Internal(e),
            })
    }

    /// The clock writes are stamped with (idempotency claims use it too).
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Opens a conversation in the principal's business.
    pub async fn create_conversation(
        &self,
        principal: &Principal,
        draft: ConversationDraft,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Written<Conversation>, CommandError> {
        principal.require(Scope::ConversationsWrite)?;
        let business = principal.business_id();
        let ids = NewConversationIds {
            conversation: ConversationId::from_uuid(new_uuid()),
            customer: CustomerId::from_uuid(new_uuid()),
            message: match &draft.message {
                Some(message) => message_ids(message),
                None => MessageIds {
                    message: MessageId::from_uuid(new_uuid()),
                    attachments: vec![],
                },
            },
        };
        let written = self
            .writer
            .create_conversation(business, draft, ids, self.clock.now(), claim)
            .await?;
        if let Written::Done(conversation) = &written
            && !in_business(principal, conversation)
        {
            return Err(leaked(conversation.id()));
        }
        Ok(written)
    }

    /// Posts a message to the principal's conversation `id`.
    pub async fn post_message(
        &self,
        principal: &Principal,
        id: ConversationId,
        draft: MessageDraft,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Written<MessageAppended>, CommandError> {
        principal.require(Scope::ConversationsWrite)?;
        let ids = message_ids(&draft);
        let expected_id = ids.message;
        let written = self
            .writer
            .append_message(
                principal.business_id(),
                id,
                draft,
                ids,
                self.clock.now(),
                claim,
            )
            .await?;
        if let Written::Done(appended) = &written
            && appended.message.id() != expected_id
        {
            return Err(leaked(id));
        }
        Ok(written)
    }

    /// Applies a merge patch to the principal's conversation `id`; with `expected`,
    /// only if it is still at that revision.
    pub async fn update_conversation(
        &self,
        principal: &Principal,
        id: ConversationId,
        patch: ConversationPatch,
        expected: Option<Revision>,
    ) -> Result<Updated, CommandError> {
        principal.require(Scope::ConversationsWrite)?;
        let updated = self
            .writer
            .update_conversation(
                principal.business_id(),
                id,
                patch,
                expected,
                self.clock.now(),
            )
            .await?;
        if !in_business(principal, &updated.conversation) || updated.conversation.id() != id {
            return Err(leaked(id));
        }
        Ok(updated)
    }

    /// One message of the principal's conversation.
    pub async fn get_message(
        &self,
        principal: &Principal,
        conversation: ConversationId,
        message: MessageId,
    ) -> Result<Message, GetConversationError> {
        principal.require(Scope::ConversationsRead)?;
        match self
            .writer
            .find_message(principal.business_id(), conversation, message)
            .await?
        {
            Some(found) if found.id() == message => Ok(found),
            Some(_) => {
                tracing::error!(%conversation, %message, "adapter returned another message; refused");
                Err(GetConversationError::NotFound)
            }
            None => Err(GetConversationError::NotFound),
        }
    }
}

fn in_business(principal: &Principal, conversation: &Conversation) -> bool {
    let business = principal.business_id();
    conversation.business_id() == business
        && conversation
            .customer()
            .is_none_or(|customer| customer.business_id() == business)
}

/// The adapter answered outside the request's scope: logged loudly, written nothing we
/// will show.
fn leaked(id: ConversationId) -> CommandError {
    tracing::error!(%id, "writer returned data outside the request's scope; refused");
    CommandError::Internal(RepositoryError::internal(
        "the storage adapter answered outside the request's scope",
    ))
}
