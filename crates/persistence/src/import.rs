//! The import algorithm, shared by the adapters: stream the batches, refuse ids that
//! belong elsewhere, write the rest. Each adapter supplies the two database steps and
//! runs this inside its one transaction.

use std::collections::HashMap;
use std::future::Future;

use futures_util::StreamExt;
use pingback_application::{
    ConversationBatches, ImportConflict, ImportConflictOwner, ImportError, ImportSummary,
    ImportedEntity, RepositoryError, SourceAborted,
};
use pingback_domain::{
    BusinessId, Conversation, ConversationEvent, ConversationId, ConversationSummary, Timestamp,
};
use uuid::Uuid;

use crate::error::classify;
use crate::pool::Checkout;
use crate::rows::CorruptRow;
use crate::schema::DbUuid;

/// The contract's cap: enough to fix a file in one go, bounded output.
pub(crate) const MAX_CONFLICTS: usize = 50;

/// Why an import stopped; every variant rolls the transaction back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImportFailure {
    #[error(transparent)]
    Write(#[from] crate::write::WriteFailure),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
    #[error("{} conflicting id(s)", .0.len())]
    Conflicts(Vec<ImportConflict>),
    #[error(transparent)]
    Aborted(#[from] SourceAborted),
    #[error(transparent)]
    Corrupt(#[from] CorruptRow),
}

/// The ids of one batch, per table, to look up in every business.
#[derive(Default)]
pub(crate) struct BatchIds {
    pub conversations: Vec<DbUuid>,
    pub customers: Vec<DbUuid>,
    pub messages: Vec<DbUuid>,
    pub attachments: Vec<DbUuid>,
}

/// Where those ids live now (rows of any business).
#[derive(Default)]
pub(crate) struct Existing {
    /// (business_id, id)
    pub conversations: Vec<(DbUuid, DbUuid)>,
    /// (business_id, id)
    pub customers: Vec<(DbUuid, DbUuid)>,
    /// (business_id, conversation_id, id)
    pub messages: Vec<(DbUuid, DbUuid, DbUuid)>,
    /// (business_id, conversation_id, message_id, id)
    pub attachments: Vec<(DbUuid, DbUuid, DbUuid, DbUuid)>,
}

/// What an adapter does inside the import's transaction.
pub(crate) trait ImportSink: Send {
    /// Finds the stored rows carrying any of these ids, in any business.
    fn existing(
        &mut self,
        ids: BatchIds,
    ) -> impl Future<Output = Result<Existing, ImportFailure>> + Send;

    /// Upserts the batch's customers and conversations and replaces their messages.
    fn write(
        &mut self,
        batch: Vec<Conversation>,
    ) -> impl Future<Output = Result<(), ImportFailure>> + Send;

    /// Appends events to `business`'s log (in the import's transaction).
    fn append_events(
        &mut self,
        business: DbUuid,
        events: Vec<ConversationEvent>,
    ) -> impl Future<Output = Result<(), ImportFailure>> + Send;
}

/// Runs an import against `sink`; the caller commits on `Ok` and rolls back on `Err`.
pub(crate) async fn run<S: ImportSink>(
    sink: &mut S,
    mut batches: ConversationBatches,
) -> Result<ImportSummary, ImportFailure> {
    let mut state = State::default();
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        if batch.is_empty() {
            continue;
        }
        let existing = sink.existing(ids_of(&batch)).await?;
        state.check(&batch, &existing);
        if !state.conflicts.is_empty() {
            // Nothing more is written, but later batches are still checked so that one
            // run reports every conflict (up to the cap).
            if state.conflicts.len() >= MAX_CONFLICTS {
                break;
            }
            continue;
        }
        state.count(&batch);
        // One `conversation.imported` per conversation, in input order, per business.
        let at = Timestamp::now();
        let mut events: Vec<(DbUuid, Vec<ConversationEvent>)> = Vec::new();
        for c in &batch {
            let business = DbUuid(c.business_id().into_uuid());
            let event = ConversationEvent::imported(ConversationSummary::of(c), at);
            match events.iter_mut().find(|(b, _)| *b == business) {
                Some((_, list)) => list.push(event),
                None => events.push((business, vec![event])),
            }
        }
        sink.write(batch).await?;
        for (business, list) in events {
            sink.append_events(business, list).await?;
        }
    }
    if state.conflicts.is_empty() {
        Ok(state.summary)
    } else {
        state.conflicts.truncate(MAX_CONFLICTS);
        Err(ImportFailure::Conflicts(state.conflicts))
    }
}

fn ids_of(batch: &[Conversation]) -> BatchIds {
    let mut ids = BatchIds::default();
    for c in batch {
        ids.conversations.push(DbUuid::from(c.id()));
        if let Some(id) = c.customer_id() {
            ids.customers.push(DbUuid::from(id));
        }
        for m in c.messages() {
            ids.messages.push(DbUuid::from(m.id()));
            for a in m.attachments() {
                ids.attachments.push(DbUuid::from(a.id()));
            }
        }
    }
    ids.customers.sort_unstable_by_key(|id| id.0);
    ids.customers.dedup();
    ids
}

#[derive(Default)]
struct State {
    summary: ImportSummary,
    /// Customer id → its business, for every customer of this import: counts each
    /// customer once and catches one id given to two businesses within the import.
    customers: HashMap<Uuid, Uuid>,
    conflicts: Vec<ImportConflict>,
}

impl State {
    fn count(&mut self, batch: &[Conversation]) {
        for c in batch {
            self.summary.conversations += 1;
            if let Some(customer) = c.customer()
                && self
                    .customers
                    .insert(customer.id().into_uuid(), c.business_id().into_uuid())
                    .is_none()
            {
                self.summary.customers += 1;
            }
            for m in c.messages() {
                self.summary.messages += 1;
                self.summary.attachments += m.attachments().len() as u64;
            }
        }
    }

    /// Records the batch's conflicts, in input order, each id once.
    fn check(&mut self, batch: &[Conversation], existing: &Existing) {
        // For every stored row: its owner if that is not where the input puts the id.
        let mut expected_conversation = HashMap::new();
        let mut expected_customer = HashMap::new();
        let mut expected_message = HashMap::new();
        let mut expected_attachment = HashMap::new();
        for c in batch {
            let business = c.business_id().into_uuid();
            let conversation = c.id().into_uuid();
            expected_conversation.insert(conversation, business);
            if let Some(id) = c.customer_id() {
                expected_customer.insert(id.into_uuid(), business);
            }
            for m in c.messages() {
                let message = m.id().into_uuid();
                expected_message.insert(message, (business, conversation));
                for a in m.attachments() {
                    expected_attachment.insert(a.id().into_uuid(), (business, message));
                }
            }
        }
        let mut owners: HashMap<(ImportedEntity, Uuid), ImportConflictOwner> = HashMap::new();
        let business_owner = |b: DbUuid| ImportConflictOwner::Business(BusinessId::from(b));
        let conversation_owner =
            |c: DbUuid| ImportConflictOwner::Conversation(ConversationId::from(c));
        for &(business, id) in &existing.conversations {
            if expected_conversation.get(&id.0) != Some(&business.0) {
                owners
                    .entry((ImportedEntity::Conversation, id.0))
                    .or_insert(business_owner(business));
            }
        }
        for &(business, id) in &existing.customers {
            if expected_customer.get(&id.0) != Some(&business.0) {
                owners
                    .entry((ImportedEntity::Customer, id.0))
                    .or_insert(business_owner(business));
            }
        }
        for &(business, conversation, id) in &existing.messages {
            match expected_message.get(&id.0) {
                Some(&(b, _)) if b != business.0 => {
                    owners
                        .entry((ImportedEntity::Message, id.0))
                        .or_insert(business_owner(business));
                }
                Some(&(_, c)) if c != conversation.0 => {
                    owners
                        .entry((ImportedEntity::Message, id.0))
                        .or_insert(conversation_owner(conversation));
                }
                _ => {}
            }
        }
        for &(business, conversation, message, id) in &existing.attachments {
            match expected_attachment.get(&id.0) {
                Some(&(b, _)) if b != business.0 => {
                    owners
                        .entry((ImportedEntity::Attachment, id.0))
                        .or_insert(business_owner(business));
                }
                Some(&(_, m)) if m != message.0 => {
                    owners
                        .entry((ImportedEntity::Attachment, id.0))
                        .or_insert(conversation_owner(conversation));
                }
                _ => {}
            }
        }

        // A customer id given to two businesses within this import.
        let mut first_business: HashMap<Uuid, Uuid> = HashMap::new();
        for c in batch {
            if let Some(id) = c.customer_id() {
                let (id, business) = (id.into_uuid(), c.business_id().into_uuid());
                let first = match self.customers.get(&id) {
                    Some(&b) => b,
                    None => *first_business.entry(id).or_insert(business),
                };
                if first != business {
                    owners
                        .entry((ImportedEntity::Customer, id))
                        .or_insert(business_owner(DbUuid(first)));
                }
            }
        }
        if owners.is_empty() {
            return;
        }

        // Report in input order: stable output that points at the first carrier.
        let mut push = |entity: ImportedEntity, id: Uuid, conversation_id: ConversationId| {
            if let Some(owner) = owners.remove(&(entity, id)) {
                self.conflicts.push(ImportConflict {
                    entity,
                    id: id.hyphenated().to_string(),
                    conversation_id,
                    owner,
                });
            }
        };
        for c in batch {
            push(ImportedEntity::Conversation, c.id().into_uuid(), c.id());
            if let Some(id) = c.customer_id() {
                push(ImportedEntity::Customer, id.into_uuid(), c.id());
            }
            for m in c.messages() {
                push(ImportedEntity::Message, m.id().into_uuid(), c.id());
                for a in m.attachments() {
                    push(ImportedEntity::Attachment, a.id().into_uuid(), c.id());
                }
            }
        }
    }
}

/// Maps an import's outcome; the connection goes back to the pool unless the database
/// failed (the transaction manager has rolled back everything else).
pub(crate) fn finish_import<M: deadpool::managed::Manager>(
    checkout: Checkout<M>,
    result: Result<ImportSummary, ImportFailure>,
) -> Result<ImportSummary, ImportError> {
    checkout.release_if(matches!(
        result,
        Ok(_) | Err(ImportFailure::Conflicts(_) | ImportFailure::Aborted(_))
    ));
    result.map_err(|failure| match failure {
        ImportFailure::Conflicts(conflicts) => ImportError::Conflicts(conflicts),
        ImportFailure::Aborted(aborted) => ImportError::Aborted(aborted),
        ImportFailure::Database(error) => ImportError::Storage(classify(error)),
        ImportFailure::Write(error) => match pingback_application::WriteError::from(error) {
            pingback_application::WriteError::Storage(error) => ImportError::Storage(error),
            other => ImportError::Storage(RepositoryError::internal(other)),
        },
        ImportFailure::Corrupt(error) => ImportError::Storage(RepositoryError::internal(error)),
    })
}
