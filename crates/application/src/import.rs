use std::fmt;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use pingback_domain::{BusinessId, Conversation, ConversationId};

use crate::repository::RepositoryError;

/// The source of an import gave up (invalid input found after some batches were sent):
/// the importer must roll back everything it wrote for this import.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the import source was aborted: {0}")]
pub struct SourceAborted(pub String);

/// Conversations to import, in batches, all written in one transaction.
pub type ConversationBatches = BoxStream<'static, Result<Vec<Conversation>, SourceAborted>>;

/// Which kind of record an import refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImportedEntity {
    Conversation,
    Customer,
    Message,
    Attachment,
}

impl fmt::Display for ImportedEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Conversation => "conversation",
            Self::Customer => "customer",
            Self::Message => "message",
            Self::Attachment => "attachment",
        })
    }
}

/// An id in the input that already belongs elsewhere: importing it would move data
/// between businesses or conversations, so the whole import is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportConflict {
    pub entity: ImportedEntity,
    /// The conflicting id, lower-case hyphenated.
    pub id: String,
    /// The conversation of the input that carries the id.
    pub conversation_id: ConversationId,
    /// Where the id lives now.
    pub owner: ImportConflictOwner,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportConflictOwner {
    Business(BusinessId),
    Conversation(ConversationId),
}

impl fmt::Display for ImportConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.owner {
            ImportConflictOwner::Business(_) => {
                write!(
                    f,
                    "{} id {} already belongs to another business",
                    self.entity, self.id
                )
            }
            ImportConflictOwner::Conversation(c) => write!(
                f,
                "{} id {} already belongs to another conversation ({c})",
                self.entity, self.id
            ),
        }
    }
}

/// What an import wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub conversations: u64,
    pub customers: u64,
    pub messages: u64,
    pub attachments: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Nothing was written.
    #[error("{} id(s) already belong elsewhere", .0.len())]
    Conflicts(Vec<ImportConflict>),
    /// Nothing was written.
    #[error(transparent)]
    Aborted(#[from] SourceAborted),
    /// Nothing was written (the transaction was rolled back or never committed).
    #[error(transparent)]
    Storage(#[from] RepositoryError),
}

/// Writes conversations. Implemented by every storage adapter.
///
/// # Contract
/// - Everything from `batches` is written in **one transaction**: on any error, or when
///   the stream yields `Err(SourceAborted)`, nothing of it is visible, ever.
/// - Importing a conversation replaces it: its fields, its customer and its whole
///   message set (messages absent from the input are deleted with their attachments).
///   Importing the same input twice leaves the same state.
/// - A customer is one row per (business, id), shared by the conversations naming it.
/// - An id (conversation, customer, message, attachment) that exists in another
///   business, a message id that exists in another conversation, or an attachment id
///   that exists on another message, is a conflict: all conflicts found are returned as
///   [`ImportError::Conflicts`] and nothing is written.
/// - Within one import the caller guarantees ids are not repeated across conversations.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ConversationImporter: Send + Sync + 'static {
    async fn import(&self, batches: ConversationBatches) -> Result<ImportSummary, ImportError>;
}

/// Convenience for tests and small imports.
pub fn batches_of(conversations: Vec<Conversation>) -> ConversationBatches {
    Box::pin(futures_util::stream::iter([Ok(conversations)]))
}
