//! Pingback's application layer: the ports adapters implement and the use cases that
//! drive them. The tenant rule is enforced here, not trusted to adapters.
//! Depends only on the domain: never on an adapter (HTTP, storage, import) or a
//! framework's types.

mod commands;
mod delivery;
mod events;
mod gauges;
mod import;
mod principal;
mod repository;
mod use_cases;
mod webhooks;
mod write;

pub use commands::{Clock, CommandError, ConversationCommands, SystemClock};
pub use delivery::{
    DeliveryFailure, DeliveryQueue, DeliveryRequest, DeliverySettings, Dispatcher, LeaseOwner,
    WebhookTransport,
};
pub use events::{
    EventEncoder, EventFeed, EventLog, EventSignals, EventSubscription, EventsAfter, MAX_WAIT,
    StoredEvent,
};
pub use gauges::{PoolStatus, ReadConnectionsStatus, StorageGauges, StorageMetrics};
pub use import::{
    ConversationBatches, ConversationImporter, ImportConflict, ImportConflictOwner, ImportError,
    ImportSummary, ImportedEntity, SourceAborted, batches_of,
};
pub use principal::{InsufficientScope, Principal, Scope, Scopes, Subject, SubjectError};
pub use repository::{ConversationRepository, RepositoryError, StoredRevision};
pub use use_cases::{ConversationService, GetConversationError, ReadinessError};
pub use webhooks::{
    DestinationGuard, DestinationRefused, Registered, SecretKey, StoredWebhook, WebhookError,
    WebhookRepository, WebhookRequest, WebhookService,
};
pub use write::{
    ConversationWriter, IDEMPOTENCY_TTL_SECONDS, IdempotencyClaim, IdempotencyKey, StoredResponse,
    Updated, WriteError, WriteOutcome, Written,
};

#[cfg(feature = "mock")]
pub use delivery::{MockDeliveryQueue, MockWebhookTransport};
#[cfg(feature = "mock")]
pub use events::MockEventLog;
#[cfg(feature = "mock")]
pub use import::MockConversationImporter;
#[cfg(feature = "mock")]
pub use repository::MockConversationRepository;
#[cfg(feature = "mock")]
pub use webhooks::{MockDestinationGuard, MockWebhookRepository};
#[cfg(feature = "mock")]
pub use write::MockConversationWriter;
