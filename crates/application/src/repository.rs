use std::error::Error as StdError;

use async_trait::async_trait;
use pingback_domain::{BusinessId, Conversation, ConversationId, InboxPage, InboxQuery, Revision};

type Source = Box<dyn StdError + Send + Sync + 'static>;

/// How a repository call can fail. "Not found" is not an error: it is `Ok(None)`.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// The store cannot be reached or is saturated right now (connection refused, pool
    /// wait timed out, statement timeout, server shutting down). Retrying later may
    /// succeed; callers answer 503.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] Source),
    /// Anything else: a bug, corrupt data, an invariant the store broke. Retrying will
    /// not help; callers answer an opaque 500 and log the source.
    #[error("storage failure: {0}")]
    Internal(#[source] Source),
}

impl RepositoryError {
    pub fn unavailable(source: impl Into<Source>) -> Self {
        Self::Unavailable(source.into())
    }

    pub fn internal(source: impl Into<Source>) -> Self {
        Self::Internal(source.into())
    }
}

/// Reads conversations. Implemented by every storage adapter.
///
/// # Error contract
/// - `Ok(Some(c))`: the conversation `id` exists **in business `business`**, with its
///   customer and its complete message history in history order.
/// - `Ok(None)`: there is no conversation `id` in business `business`. That includes a
///   conversation `id` that exists in another business: an adapter must never look
///   outside the business it is given.
/// - `Err(RepositoryError::Unavailable)`: transient; the caller may retry.
/// - `Err(RepositoryError::Internal)`: permanent for this call.
///
/// Adapters must not panic and must bound every call in time (pool wait plus
/// statement timeout).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ConversationRepository: Send + Sync + 'static {
    async fn find_conversation(
        &self,
        business: BusinessId,
        id: ConversationId,
    ) -> Result<Option<Conversation>, RepositoryError>;

    /// The revision `find_conversation` would read now, without reading the history:
    /// what validates a cached copy. `Ok(None)` exactly when `find_conversation` would
    /// find nothing (the business rule is the same); same errors.
    async fn find_revision(
        &self,
        business: BusinessId,
        id: ConversationId,
    ) -> Result<Option<StoredRevision>, RepositoryError>;

    /// One page of `business`'s conversations matching `query`, in its order, starting
    /// after its position: at most `query.limit` items, and `has_more` when another
    /// page follows. Every item is in `business`; the page is read from one snapshot.
    /// A page costs the same at any depth (keyset, never offset).
    async fn list_conversations(
        &self,
        business: BusinessId,
        query: InboxQuery,
    ) -> Result<InboxPage, RepositoryError>;

    /// Succeeds when the store answers a trivial query now.
    async fn ping(&self) -> Result<(), RepositoryError>;
}

/// A conversation's revision with the keys of the row it was read from, which the use
/// case checks again as it does a whole conversation's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredRevision {
    pub business_id: BusinessId,
    pub id: ConversationId,
    pub revision: Revision,
}
