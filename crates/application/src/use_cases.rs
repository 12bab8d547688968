use std::sync::Arc;

use pingback_domain::{BusinessId, Conversation, ConversationId, InboxPage, InboxQuery, Revision};

use crate::principal::{InsufficientScope, Principal, Scope};
use crate::repository::{ConversationRepository, RepositoryError};

/// Why a conversation cannot be returned. "Not found" covers "belongs to another
/// business" on purpose: the caller must not learn that the id exists elsewhere.
#[derive(Debug, thiserror::Error)]
pub enum GetConversationError {
    #[error(transparent)]
    Forbidden(#[from] InsufficientScope),
    #[error("conversation not found")]
    NotFound,
    #[error("storage is unavailable")]
    Unavailable(#[source] RepositoryError),
    #[error("internal error")]
    Internal(#[source] RepositoryError),
}

impl From<RepositoryError> for GetConversationError {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::Unavailable(_) => Self::Unavailable(error),
            RepositoryError::Internal(_) => Self::Internal(error),
        }
    }
}

/// The store does not answer.
#[derive(Debug, thiserror::Error)]
#[error("storage is not ready")]
pub struct ReadinessError(#[source] pub RepositoryError);

/// The conversation use cases, over whichever adapter the composition root chose.
#[derive(Clone)]
pub struct ConversationService {
    repository: Arc<dyn ConversationRepository>,
}

impl ConversationService {
    pub fn new(repository: Arc<dyn ConversationRepository>) -> Self {
        Self { repository }
    }

    /// One conversation of the principal's business, with its customer and complete
    /// history.
    ///
    /// The tenant rule: the repository is asked within the principal's business only,
    /// and whatever it returns is checked again, so a misbehaving adapter still cannot
    /// hand out another business's conversation.
    pub async fn get_conversation(
        &self,
        principal: &Principal,
        id: ConversationId,
    ) -> Result<Conversation, GetConversationError> {
        principal.require(Scope::ConversationsRead)?;
        let business = principal.business_id();
        let Some(conversation) = self.repository.find_conversation(business, id).await? else {
            return Err(GetConversationError::NotFound);
        };
        let customer_leaks = conversation
            .customer()
            .is_some_and(|customer| customer.business_id() != business);
        if conversation.business_id() != business || conversation.id() != id || customer_leaks {
            return Err(refused(
                "conversation",
                (business, id),
                (conversation.business_id(), conversation.id()),
            ));
        }
        Ok(conversation)
    }

    /// The revision the principal's conversation `id` is at now, without its history:
    /// what validates a cached copy. Scoped like `get_conversation`: another
    /// business's conversation is `NotFound`.
    pub async fn conversation_revision(
        &self,
        principal: &Principal,
        id: ConversationId,
    ) -> Result<Revision, GetConversationError> {
        principal.require(Scope::ConversationsRead)?;
        self.stored_revision(principal, id).await
    }

    /// `conversation_revision` without the scope check, for use cases that check
    /// their own scope.
    pub(crate) async fn stored_revision(
        &self,
        principal: &Principal,
        id: ConversationId,
    ) -> Result<Revision, GetConversationError> {
        let business = principal.business_id();
        match self.repository.find_revision(business, id).await? {
            Some(stored) if stored.business_id == business && stored.id == id => {
                Ok(stored.revision)
            }
            Some(stored) => Err(refused(
                "revision",
                (business, id),
                (stored.business_id, stored.id),
            )),
            None => Err(GetConversationError::NotFound),
        }
    }

    /// One page of the principal's inbox. Whatever the adapter returns is checked
    /// again: a page holding another business's conversation is refused (500, logged),
    /// never shown.
    pub async fn list_conversations(
        &self,
        principal: &Principal,
        query: InboxQuery,
    ) -> Result<InboxPage, GetConversationError> {
        principal.require(Scope::ConversationsRead)?;
        let business = principal.business_id();
        let mut page = self.repository.list_conversations(business, query).await?;
        let before = page.items.len();
        page.items.retain(|item| {
            let c = &item.conversation;
            c.business_id() == business
                && c.customer()
                    .is_none_or(|customer| customer.business_id() == business)
        });
        if page.items.len() != before {
            tracing::error!(%business, "repository listed conversations of another business; refused");
            return Err(GetConversationError::Internal(RepositoryError::internal(
                "the storage adapter listed another business's conversations",
            )));
        }
        Ok(page)
    }

    /// Whether the store answers now (for readiness probes).
    pub async fn ready(&self) -> Result<(), ReadinessError> {
        self.repository.ping().await.map_err(ReadinessError)
    }
}

/// What the repository returned lies outside the request's scope (an adapter broke
/// its contract): logged loudly, answered as "not found".
fn refused(
    what: &str,
    (tenant, requested): (BusinessId, ConversationId),
    (returned_business, returned): (BusinessId, ConversationId),
) -> GetConversationError {
    tracing::error!(
        %requested,
        %returned,
        %tenant,
        %returned_business,
        "repository returned a {what} outside the request's scope; refused"
    );
    GetConversationError::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::Subject;
    use crate::repository::{MockConversationRepository, StoredRevision};
    use mockall::predicate::eq;
    use pingback_domain::BusinessId;
    use pingback_domain::testing::{ConversationBuilder, CustomerBuilder, id};

    const OURS: u128 = 0xb2;
    const THEIRS: u128 = 0xb3;

    fn business(n: u128) -> BusinessId {
        id(n)
    }

    fn conversation_id() -> ConversationId {
        id(0xc3)
    }

    fn principal() -> Principal {
        Principal::new(business(OURS), Subject::new("agent-1").unwrap())
    }

    /// Conversation `0xc3` of business `owner`, with customer `0xd4` of business
    /// `customer_owner` if any.
    fn conversation(owner: u128, customer_owner: Option<u128>) -> Conversation {
        let conversation = ConversationBuilder::new(business(owner)).id(conversation_id());
        match customer_owner {
            Some(b) => {
                conversation.customer(CustomerBuilder::new(business(b)).id(id(0xd4)).build())
            }
            None => conversation,
        }
        .build()
    }

    fn service(repository: MockConversationRepository) -> ConversationService {
        ConversationService::new(Arc::new(repository))
    }

    #[tokio::test]
    async fn asks_the_repository_within_the_principals_business_only() {
        let mut repository = MockConversationRepository::new();
        repository
            .expect_find_conversation()
            .with(eq(business(OURS)), eq(conversation_id()))
            .times(1)
            .returning(|_, _| Ok(Some(conversation(OURS, Some(OURS)))));
        let found = service(repository)
            .get_conversation(&principal(), conversation_id())
            .await;
        assert_eq!(found.unwrap().business_id(), business(OURS));
    }

    #[tokio::test]
    async fn refuses_a_conversation_of_another_business_from_a_misbehaving_adapter() {
        let mut repository = MockConversationRepository::new();
        repository
            .expect_find_conversation()
            .returning(|_, _| Ok(Some(conversation(THEIRS, None))));
        let result = service(repository)
            .get_conversation(&principal(), conversation_id())
            .await;
        assert!(matches!(result, Err(GetConversationError::NotFound)));
    }

    #[tokio::test]
    async fn refuses_a_different_conversation_than_asked_for() {
        let mut repository = MockConversationRepository::new();
        repository
            .expect_find_conversation()
            .returning(|_, _| Ok(Some(conversation(OURS, None))));
        let other = id::<ConversationId>(0xc4);
        let result = service(repository)
            .get_conversation(&principal(), other)
            .await;
        assert!(matches!(result, Err(GetConversationError::NotFound)));
    }

    #[tokio::test]
    async fn another_business_is_indistinguishable_from_missing() {
        let mut missing = MockConversationRepository::new();
        missing
            .expect_find_conversation()
            .returning(|_, _| Ok(None));
        let mut leaking = MockConversationRepository::new();
        leaking
            .expect_find_conversation()
            .returning(|_, _| Ok(Some(conversation(THEIRS, Some(THEIRS)))));

        let a = service(missing)
            .get_conversation(&principal(), conversation_id())
            .await;
        let b = service(leaking)
            .get_conversation(&principal(), conversation_id())
            .await;
        let (a, b) = (a.unwrap_err(), b.unwrap_err());
        assert!(matches!(a, GetConversationError::NotFound));
        assert!(matches!(b, GetConversationError::NotFound));
        assert_eq!(a.to_string(), b.to_string());
    }

    #[tokio::test]
    async fn storage_errors_keep_their_class() {
        let mut repository = MockConversationRepository::new();
        repository
            .expect_find_conversation()
            .returning(|_, _| Err(RepositoryError::unavailable("pool timed out")));
        let result = service(repository)
            .get_conversation(&principal(), conversation_id())
            .await;
        assert!(matches!(result, Err(GetConversationError::Unavailable(_))));

        let mut repository = MockConversationRepository::new();
        repository
            .expect_find_conversation()
            .returning(|_, _| Err(RepositoryError::internal("corrupt row")));
        let result = service(repository)
            .get_conversation(&principal(), conversation_id())
            .await;
        assert!(matches!(result, Err(GetConversationError::Internal(_))));
    }

    #[tokio::test]
    async fn readiness_reflects_the_store() {
        let mut repository = MockConversationRepository::new();
        repository
            .expect_ping()
            .returning(|| Err(RepositoryError::unavailable("down")));
        assert!(service(repository).ready().await.is_err());
    }

    #[tokio::test]
    async fn revisions_are_scoped_and_checked_like_conversations() {
        let revision = Revision::new(3, Some(7));
        let stored = move |owner: u128, id: ConversationId| StoredRevision {
            business_id: business(owner),
            id,
            revision,
        };
        let mut repository = MockConversationRepository::new();
        repository
            .expect_find_revision()
            .with(eq(business(OURS)), eq(conversation_id()))
            .times(1)
            .returning(move |_, id| Ok(Some(stored(OURS, id))));
        let found = service(repository)
            .conversation_revision(&principal(), conversation_id())
            .await
            .unwrap();
        assert_eq!(found, revision);

        // A misbehaving adapter: another business's row, or another conversation's.
        let other = id::<ConversationId>(0xc4);
        for wrong in [stored(THEIRS, conversation_id()), stored(OURS, other)] {
            let mut repository = MockConversationRepository::new();
            repository
                .expect_find_revision()
                .returning(move |_, _| Ok(Some(wrong)));
            let result = service(repository)
                .conversation_revision(&principal(), conversation_id())
                .await;
            assert!(matches!(result, Err(GetConversationError::NotFound)));
        }

        let mut repository = MockConversationRepository::new();
        repository.expect_find_revision().returning(|_, _| Ok(None));
        let result = service(repository)
            .conversation_revision(&principal(), conversation_id())
            .await;
        assert!(matches!(result, Err(GetConversationError::NotFound)));
    }
}
