//! Pingback's application layer: the ports adapters implement and the use cases that
//! drive them. The tenant rule is enforced here, not trusted to adapters.

mod import;
mod principal;
mod repository;
mod use_cases;

pub use import::{
    ConversationBatches, ConversationImporter, ImportConflict, ImportConflictOwner, ImportError,
    ImportSummary, ImportedEntity, SourceAborted, batches_of,
};
pub use principal::{Principal, Subject, SubjectError};
pub use repository::{ConversationRepository, PoolStatus, RepositoryError, StoredRevision};
pub use use_cases::{ConversationService, GetConversationError, ReadinessError};

#[cfg(feature = "mock")]
pub use import::MockConversationImporter;
#[cfg(feature = "mock")]
pub use repository::MockConversationRepository;
