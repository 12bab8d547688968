//! The write port: what a storage adapter must do for the write side, and the
//! idempotency records that commit with each write.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use pingback_domain::{
    BusinessId, Conversation, ConversationChanges, ConversationDraft, ConversationId,
    ConversationPatch, Message, MessageAppended, MessageDraft, MessageId, MessageIds,
    NewConversationIds, Revision, Timestamp, WriteRefused,
};

use crate::repository::RepositoryError;

/// An `Idempotency-Key`: 1 to 255 printable ASCII characters, scoped to a business.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_BYTES: usize = 255;

    pub fn new(value: &str) -> Result<Self, String> {
        if value.is_empty() || value.len() > Self::MAX_BYTES {
            return Err(format!(
                "an Idempotency-Key is 1 to {} characters",
                Self::MAX_BYTES
            ));
        }
        if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err("an Idempotency-Key is printable ASCII".into());
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// How long an idempotency record is kept.
pub const IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 60 * 60;

/// The first answer to a request with an idempotency key, replayed to its retries.
/// Opaque to storage: the inbound adapter writes and reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub location: Option<String>,
    pub etag: Option<String>,
    /// Empty for a `return=minimal` answer.
    pub body: Vec<u8>,
}

/// What a write produced, for the inbound adapter to render as the response it stores.
pub enum WriteOutcome<'a> {
    Created(&'a Conversation),
    Appended(&'a MessageAppended),
}

type Render = Arc<dyn Fn(&WriteOutcome<'_>) -> StoredResponse + Send + Sync>;

/// A request's claim on an idempotency key: the adapter records it in the write's own
/// transaction, with the response `render` makes of the outcome.
#[derive(Clone)]
pub struct IdempotencyClaim {
    pub key: IdempotencyKey,
    /// A digest of the request (method, path, body): the same key with another request
    /// is refused.
    pub fingerprint: [u8; 32],
    /// When the claim is made; records older than the TTL count as absent.
    pub at: Timestamp,
    pub render: Render,
}

impl fmt::Debug for IdempotencyClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyClaim")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// A write that happened now, or the stored answer of the one that happened before
/// with the same idempotency key (nothing written this time).
#[derive(Debug)]
pub enum Written<T> {
    Done(T),
    Replayed(StoredResponse),
}

/// A conversation after a patch, read in the patch's transaction, and what changed.
#[derive(Debug)]
pub struct Updated {
    pub conversation: Conversation,
    pub changes: ConversationChanges,
}

/// How a write can fail. Every variant means nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// No conversation with this id in the business (another business's included).
    #[error("conversation not found")]
    NotFound,
    /// `customer_id` names no customer of the business.
    #[error("no such customer")]
    UnknownCustomer,
    /// The aggregate's rules refuse the change.
    #[error(transparent)]
    Refused(#[from] WriteRefused),
    /// The revision is not the one the client expected (`If-Match`).
    #[error("the conversation has changed")]
    PreconditionFailed,
    /// The idempotency key was used for another request.
    #[error("the idempotency key was used for another request")]
    KeyReused,
    /// A request with this key is still being processed.
    #[error("a request with this idempotency key is in progress")]
    KeyInFlight,
    #[error(transparent)]
    Storage(#[from] RepositoryError),
}

/// Writes conversations. Implemented by every storage adapter.
///
/// # Contract
/// - Every method is **one transaction**: the rows, the conversation's new revision
///   and `updated_at`, and the idempotency record commit together or not at all.
/// - Every call stays inside `business`: a conversation or customer of another
///   business is `NotFound` / `UnknownCustomer`, exactly like a missing one.
/// - Writes to one conversation are serialised on its row (a row lock taken before its
///   state is read), so each is decided on the state the previous one left: no lost
///   update. The aggregate's methods (`ConversationHead`) decide; the adapter stores
///   what they return.
/// - With a claim: a key already recorded (unexpired) for the same fingerprint is
///   `Ok(Written::Replayed)` and nothing is written; for another fingerprint
///   `KeyReused`. A concurrent request with the same key waits for the first one's
///   transaction and then replays it (or `KeyInFlight` when it cannot tell).
/// - `Storage(Unavailable)` is transient (503), `Storage(Internal)` is not (500).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ConversationWriter: Send + Sync + 'static {
    /// Opens a conversation from `draft` (resolving its customer in `business`).
    async fn create_conversation(
        &self,
        business: BusinessId,
        draft: ConversationDraft,
        ids: NewConversationIds,
        now: Timestamp,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Written<Conversation>, WriteError>;

    /// Appends a message to conversation `id` of `business`.
    async fn append_message(
        &self,
        business: BusinessId,
        id: ConversationId,
        draft: MessageDraft,
        ids: MessageIds,
        now: Timestamp,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Written<MessageAppended>, WriteError>;

    /// Applies a merge patch; with `expected`, only if the conversation is still at
    /// that revision (`PreconditionFailed` otherwise). Returns the conversation as the
    /// transaction leaves it, read within it.
    async fn update_conversation(
        &self,
        business: BusinessId,
        id: ConversationId,
        patch: ConversationPatch,
        expected: Option<Revision>,
        now: Timestamp,
    ) -> Result<Updated, WriteError>;

    /// Message `message` of conversation `conversation` in `business`; `Ok(None)` when
    /// any of the three does not match.
    async fn find_message(
        &self,
        business: BusinessId,
        conversation: ConversationId,
        message: MessageId,
    ) -> Result<Option<Message>, RepositoryError>;
}
