//! The event log's conformance suite, against every adapter: which events each write
//! and import appends, their per-business ids (1, 2, 3, … without gaps, in commit order,
//! also under concurrent writers), what a refused or rolled-back write leaves (nothing),
//! reading after an id, pruning and `Gone`, and the inbox's `last_event_id` snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pingback_application::{
    EventEncoder, EventSignals, EventsAfter, IdempotencyClaim, IdempotencyKey, ImportError,
    SourceAborted, StoredEvent, StoredResponse, WriteError, WriteOutcome, Written, batches_of,
};
use pingback_domain::{
    AgentId, AttachmentId, BusinessId, ChannelType, Conversation, ConversationDraft,
    ConversationEvent, ConversationId, ConversationPatch, CustomerChoice, CustomerDraft, EventType,
    InboxQuery, MessageDraft, MessageId, MessageIds, NewConversationIds, SenderType, Status,
    Timestamp,
};
use pingback_persistence::testing::TestDatabase;
use pingback_persistence::testing::fixtures::{conversation, conversation_of, id, message_of, ts};
use pingback_persistence::{EventWiring, Storage, connect};

macro_rules! events_conformance {
    ($adapter:ident, $database:expr) => {
        mod $adapter {
            use super::*;

            events_conformance!(@cases $database,
                a_create_appends_created_and_its_first_message,
                an_append_appends_message_created_and_a_reopening_update,
                a_patch_appends_an_update_and_a_no_op_patch_nothing,
                ids_are_per_business_and_start_at_one,
                an_import_appends_one_imported_event_per_conversation,
                a_failed_import_appends_nothing,
                a_refused_write_appends_nothing,
                events_after_respects_after_limit_and_business,
                pruning_makes_older_positions_gone,
                pruning_out_of_order_times_leaves_no_readable_hole,
                the_inbox_reads_last_event_id_in_its_snapshot,
                concurrent_writers_get_contiguous_ids_in_commit_order,
            );
        }
    };
    (@cases $database:expr, $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let database = $database.await;
                super::cases::$case(&database).await;
            }
        )+
    };
}

events_conformance!(postgres, TestDatabase::postgres());
events_conformance!(sqlite, TestDatabase::sqlite());

/// Encodes everything a test needs to check about an event as `key=value` pairs: the
/// conversation's state as the event carries it, the message, the previous values.
struct Probe;

impl EventEncoder for Probe {
    fn data(&self, event: &ConversationEvent) -> Vec<u8> {
        let c = &event.conversation.conversation;
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let previous = event.previous.as_ref();
        format!(
            "kind={};conversation={};count={};status={};assignee={};updated_at={};message={};\
             previous_status={};previous_assignee={}",
            event.kind,
            c.id(),
            event.conversation.message_count,
            c.status().as_str(),
            or_dash(c.assignee_id().map(|a| a.to_string())),
            c.updated_at().unix_micros(),
            or_dash(event.message.as_ref().map(|m| m.id().to_string())),
            or_dash(
                previous
                    .and_then(|p| p.status)
                    .map(|s| s.as_str().to_owned())
            ),
            or_dash(
                previous
                    .and_then(|p| p.assignee_id)
                    .map(|a| a.map_or("null".to_owned(), |a| a.to_string()))
            ),
        )
        .into_bytes()
    }
}

/// An event's decoded `data`.
#[derive(Debug, Clone)]
struct Seen {
    id: i64,
    kind: EventType,
    occurred_at: Timestamp,
    conversation_id: ConversationId,
    fields: BTreeMap<String, String>,
}

impl Seen {
    fn of(event: &StoredEvent) -> Self {
        let text = String::from_utf8(event.data.clone()).unwrap();
        let fields = text
            .split(';')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect::<BTreeMap<_, _>>();
        assert_eq!(fields["kind"], event.kind.as_str(), "{text}");
        assert_eq!(fields["conversation"], event.conversation_id.to_string());
        Self {
            id: event.id,
            kind: event.kind,
            occurred_at: event.occurred_at,
            conversation_id: event.conversation_id,
            fields,
        }
    }

    fn get(&self, key: &str) -> &str {
        &self.fields[key]
    }

    fn count(&self) -> u64 {
        self.get("count").parse().unwrap()
    }
}

fn storage_of(db: &TestDatabase) -> Storage {
    connect(
        &db.settings(),
        &EventWiring::new(Arc::new(Probe), EventSignals::new(Duration::from_secs(1))),
    )
    .unwrap()
}

async fn after(storage: &Storage, business: BusinessId, after: i64, limit: u16) -> EventsAfter {
    storage
        .events
        .events_after(business, after, limit)
        .await
        .unwrap()
}

/// Every event of a business, checked contiguous from 1.
async fn all(storage: &Storage, business: BusinessId) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut position = 0;
    loop {
        let EventsAfter::Events(events) = after(storage, business, position, 1000).await else {
            panic!("gone without pruning");
        };
        if events.is_empty() {
            break;
        }
        position = events.last().unwrap().id;
        seen.extend(events.iter().map(Seen::of));
    }
    let ids: Vec<i64> = seen.iter().map(|e| e.id).collect();
    let expected: Vec<i64> = (1..=seen.len() as i64).collect();
    assert_eq!(ids, expected, "ids of {business} are 1..N without gaps");
    seen
}

fn kinds(events: &[Seen]) -> Vec<EventType> {
    events.iter().map(|e| e.kind).collect()
}

fn now() -> Timestamp {
    ts("2025-01-01T10:00:00Z")
}

fn message_ids() -> MessageIds {
    MessageIds {
        message: MessageId::from_uuid(uuid::Uuid::now_v7()),
        attachments: Vec::<AttachmentId>::new(),
    }
}

fn new_ids() -> NewConversationIds {
    NewConversationIds {
        conversation: ConversationId::from_uuid(uuid::Uuid::now_v7()),
        customer: pingback_domain::CustomerId::from_uuid(uuid::Uuid::now_v7()),
        message: message_ids(),
    }
}

fn text_message(sender: SenderType, content: &str) -> MessageDraft {
    MessageDraft::new(sender, None, content.to_owned(), vec![]).unwrap()
}

fn draft(with_message: bool) -> ConversationDraft {
    ConversationDraft {
        channel_type: ChannelType::new("email").unwrap(),
        channel_id: None,
        assignee_id: None,
        status: Status::Open,
        customer: CustomerChoice::New(
            CustomerDraft::new(Some("Ann".into()), None, None, None).unwrap(),
        ),
        message: with_message.then(|| text_message(SenderType::Customer, "Hello")),
    }
}

async fn create_at(
    storage: &Storage,
    business: BusinessId,
    with_message: bool,
    at: Timestamp,
) -> Conversation {
    match storage
        .writer
        .create_conversation(business, draft(with_message), new_ids(), at, None)
        .await
        .unwrap()
    {
        Written::Done(c) => c,
        Written::Replayed(_) => panic!("no key, no replay"),
    }
}

async fn create(storage: &Storage, business: BusinessId, with_message: bool) -> Conversation {
    create_at(storage, business, with_message, now()).await
}

async fn append(
    storage: &Storage,
    c: &Conversation,
    sender: SenderType,
) -> Result<pingback_domain::MessageAppended, WriteError> {
    storage
        .writer
        .append_message(
            c.business_id(),
            c.id(),
            text_message(sender, "more"),
            message_ids(),
            now(),
            None,
        )
        .await
        .map(|written| match written {
            Written::Done(appended) => appended,
            Written::Replayed(_) => panic!("no key, no replay"),
        })
}

async fn set(
    storage: &Storage,
    c: &Conversation,
    patch: ConversationPatch,
) -> Result<pingback_application::Updated, WriteError> {
    storage
        .writer
        .update_conversation(c.business_id(), c.id(), patch, None, now())
        .await
}

fn status(status: Status) -> ConversationPatch {
    ConversationPatch {
        status: Some(status),
        assignee_id: None,
    }
}

fn assign(agent: Option<AgentId>) -> ConversationPatch {
    ConversationPatch {
        status: None,
        assignee_id: Some(agent),
    }
}

fn claim(key: &str, fingerprint: u8) -> IdempotencyClaim {
    IdempotencyClaim {
        key: IdempotencyKey::new(key).unwrap(),
        fingerprint: [fingerprint; 32],
        at: now(),
        render: Arc::new(|outcome: &WriteOutcome<'_>| StoredResponse {
            status: 201,
            location: None,
            etag: None,
            body: match outcome {
                WriteOutcome::Created(c) => c.id().to_string().into_bytes(),
                WriteOutcome::Appended(a) => a.message.id().to_string().into_bytes(),
            },
        }),
    }
}

mod cases {
    use super::*;

    pub async fn a_create_appends_created_and_its_first_message(db: &TestDatabase) {
        let storage = storage_of(db);
        let business: BusinessId = id();
        let with = create(&storage, business, true).await;
        let without = create(&storage, business, false).await;
        let events = all(&storage, business).await;
        assert_eq!(
            kinds(&events),
            [
                EventType::ConversationCreated,
                EventType::MessageCreated,
                EventType::ConversationCreated
            ]
        );
        assert_eq!(events[0].conversation_id, with.id());
        assert_eq!(events[0].count(), 1);
        assert_eq!(events[0].get("message"), "-");
        assert_eq!(events[1].conversation_id, with.id());
        assert_eq!(
            events[1].get("message"),
            with.messages()[0].id().to_string()
        );
        assert_eq!(events[1].count(), 1);
        assert_eq!(events[2].conversation_id, without.id());
        assert_eq!(events[2].count(), 0);
        for event in &events {
            assert_eq!(
                event.occurred_at,
                now(),
                "a write's event occurs at its time"
            );
            assert_eq!(event.get("status"), "open");
            assert_eq!(event.get("previous_status"), "-");
        }
    }

    pub async fn an_append_appends_message_created_and_a_reopening_update(db: &TestDatabase) {
        let storage = storage_of(db);
        let c = create(&storage, id(), true).await;
        let business = c.business_id();
        let agent = append(&storage, &c, SenderType::Agent).await.unwrap();
        set(&storage, &c, status(Status::Resolved)).await.unwrap();
        let reopening = append(&storage, &c, SenderType::Customer).await.unwrap();
        assert_eq!(reopening.previous_status, Some(Status::Resolved));
        // A customer message to an open conversation changes no status: no update.
        let plain = append(&storage, &c, SenderType::Customer).await.unwrap();
        let events = all(&storage, business).await;
        assert_eq!(
            kinds(&events),
            [
                EventType::ConversationCreated,
                EventType::MessageCreated,
                EventType::MessageCreated,      // 3: the agent's
                EventType::ConversationUpdated, // 4: resolved
                EventType::MessageCreated,      // 5: the customer's, reopening…
                EventType::ConversationUpdated, // 6: …from resolved
                EventType::MessageCreated,      // 7
            ]
        );
        let e = |id: i64| &events[usize::try_from(id - 1).unwrap()];
        assert_eq!(e(3).get("message"), agent.message.id().to_string());
        assert_eq!(e(3).count(), 2);
        assert_eq!(e(4).get("status"), "resolved");
        assert_eq!(e(4).get("previous_status"), "open");
        assert_eq!(e(5).get("message"), reopening.message.id().to_string());
        assert_eq!(e(5).count(), 3);
        assert_eq!(
            e(5).get("status"),
            "open",
            "the message event carries the state after"
        );
        assert_eq!(e(6).get("status"), "open");
        assert_eq!(e(6).get("previous_status"), "resolved");
        assert_eq!(e(6).get("previous_assignee"), "-", "only what changed");
        assert_eq!(e(6).get("message"), "-");
        assert_eq!(e(6).count(), 3);
        assert_eq!(e(7).get("message"), plain.message.id().to_string());
        assert_eq!(e(7).count(), 4);
        let stored = storage
            .repository
            .find_conversation(business, c.id())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            e(7).get("updated_at"),
            stored.updated_at().unix_micros().to_string()
        );
        assert_eq!(e(7).occurred_at, stored.updated_at());
    }

    pub async fn a_patch_appends_an_update_and_a_no_op_patch_nothing(db: &TestDatabase) {
        let storage = storage_of(db);
        let c = create(&storage, id(), false).await;
        let agent: AgentId = id();
        set(&storage, &c, assign(Some(agent))).await.unwrap();
        // Nothing changes: no event.
        let same = set(
            &storage,
            &c,
            ConversationPatch {
                status: Some(Status::Open),
                assignee_id: Some(Some(agent)),
            },
        )
        .await
        .unwrap();
        assert!(same.changes.is_empty());
        set(&storage, &c, ConversationPatch::default())
            .await
            .unwrap();
        // Both fields at once: one event with both previous values.
        set(
            &storage,
            &c,
            ConversationPatch {
                status: Some(Status::Pending),
                assignee_id: Some(None),
            },
        )
        .await
        .unwrap();
        let events = all(&storage, c.business_id()).await;
        assert_eq!(
            kinds(&events),
            [
                EventType::ConversationCreated,
                EventType::ConversationUpdated,
                EventType::ConversationUpdated
            ]
        );
        assert_eq!(events[1].get("assignee"), agent.to_string());
        assert_eq!(events[1].get("previous_assignee"), "null");
        assert_eq!(events[1].get("previous_status"), "-");
        assert_eq!(events[2].get("assignee"), "-");
        assert_eq!(events[2].get("status"), "pending");
        assert_eq!(events[2].get("previous_assignee"), agent.to_string());
        assert_eq!(events[2].get("previous_status"), "open");
        // The next write still gets the next id: a no-op took none.
        set(&storage, &c, status(Status::Open)).await.unwrap();
        assert_eq!(all(&storage, c.business_id()).await.len(), 4);
    }

    pub async fn ids_are_per_business_and_start_at_one(db: &TestDatabase) {
        let storage = storage_of(db);
        let (a, b): (BusinessId, BusinessId) = (id(), id());
        let ca = create(&storage, a, true).await; // a: 1, 2
        let cb = create(&storage, b, false).await; // b: 1
        append(&storage, &ca, SenderType::Agent).await.unwrap(); // a: 3
        append(&storage, &cb, SenderType::Agent).await.unwrap(); // b: 2
        set(&storage, &cb, status(Status::Pending)).await.unwrap(); // b: 3
        set(&storage, &ca, status(Status::Pending)).await.unwrap(); // a: 4
        let (ea, eb) = (all(&storage, a).await, all(&storage, b).await);
        assert_eq!(ea.len(), 4);
        assert_eq!(eb.len(), 3);
        assert!(ea.iter().all(|e| e.conversation_id == ca.id()));
        assert!(eb.iter().all(|e| e.conversation_id == cb.id()));
        assert_eq!(
            after(&storage, id(), 0, 100).await,
            EventsAfter::Events(vec![]),
            "a business without writes has no events"
        );
    }

    pub async fn an_import_appends_one_imported_event_per_conversation(db: &TestDatabase) {
        let storage = storage_of(db);
        let (a, b): (BusinessId, BusinessId) = (id(), id());
        let written = create(&storage, a, true).await; // a: 1, 2
        let batch = vec![conversation(a), conversation(b), conversation(a)];
        let started = Timestamp::now();
        storage
            .importer
            .import(batches_of(batch.clone()))
            .await
            .unwrap();
        let ended = Timestamp::now();
        let ea = all(&storage, a).await;
        assert_eq!(ea.len(), 4);
        for (event, c) in ea[2..].iter().zip([&batch[0], &batch[2]]) {
            assert_eq!(event.kind, EventType::ConversationImported);
            assert_eq!(event.conversation_id, c.id());
            assert_eq!(event.count(), c.messages().len() as u64);
            assert!(
                started <= event.occurred_at && event.occurred_at <= ended,
                "an import's event occurs when the import wrote it: {:?}",
                event.occurred_at
            );
        }
        let eb = all(&storage, b).await;
        assert_eq!(eb.len(), 1);
        assert_eq!(eb[0].kind, EventType::ConversationImported);
        assert_eq!(eb[0].conversation_id, batch[1].id());
        // Importing again (in two batches) replaces, and says so again.
        let again =
            futures_util::stream::iter([Ok(vec![batch[0].clone()]), Ok(vec![batch[2].clone()])]);
        storage.importer.import(Box::pin(again)).await.unwrap();
        let ea = all(&storage, a).await;
        assert_eq!(ea.len(), 6);
        assert_eq!(ea[4].conversation_id, batch[0].id());
        assert_eq!(ea[5].conversation_id, batch[2].id());
        assert_eq!(all(&storage, b).await.len(), 1);
        // A write after an import continues the sequence.
        append(&storage, &written, SenderType::Agent).await.unwrap();
        assert_eq!(all(&storage, a).await.len(), 7);
    }

    pub async fn a_failed_import_appends_nothing(db: &TestDatabase) {
        let storage = storage_of(db);
        let a: BusinessId = id();
        let first = conversation(a);
        storage
            .importer
            .import(batches_of(vec![first.clone()]))
            .await
            .unwrap(); // a: 1
        // Batch 1 is fine (and appends its events in the transaction); batch 2 steals a
        // message id of another conversation: the whole import is refused.
        let fine = conversation(a);
        let thief = conversation_of(a)
            .message(
                message_of(ts("2024-03-01T09:00:00Z"), "mine now")
                    .id(first.messages()[0].id())
                    .build(),
            )
            .build();
        let conflicting =
            futures_util::stream::iter([Ok(vec![fine.clone()]), Ok(vec![thief.clone()])]);
        let result = storage.importer.import(Box::pin(conflicting)).await;
        assert!(
            matches!(result, Err(ImportError::Conflicts(_))),
            "{result:?}"
        );
        // An aborted source: the batch before it was written, then rolled back.
        let aborted = futures_util::stream::iter([
            Ok(vec![fine.clone(), conversation(a)]),
            Err(SourceAborted("invalid input further on".into())),
        ]);
        let result = storage.importer.import(Box::pin(aborted)).await;
        assert!(matches!(result, Err(ImportError::Aborted(_))), "{result:?}");
        let events = all(&storage, a).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].conversation_id, first.id());
        // The ids the failed imports took were given back: the next is 2.
        let c = create(&storage, a, false).await;
        let events = all(&storage, a).await;
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].conversation_id, c.id());
    }

    pub async fn a_refused_write_appends_nothing(db: &TestDatabase) {
        let storage = storage_of(db);
        let c = create(&storage, id(), true).await; // 1, 2
        let business = c.business_id();
        let keyed = |key: &str, fingerprint: u8| {
            let (storage, c) = (storage.clone(), c.clone());
            let claim = claim(key, fingerprint);
            async move {
                storage
                    .writer
                    .append_message(
                        c.business_id(),
                        c.id(),
                        text_message(SenderType::Agent, "keyed"),
                        message_ids(),
                        now(),
                        Some(claim),
                    )
                    .await
            }
        };
        assert!(matches!(keyed("k-1", 1).await, Ok(Written::Done(_)))); // 3
        assert!(matches!(keyed("k-1", 1).await, Ok(Written::Replayed(_))));
        assert!(matches!(keyed("k-1", 2).await, Err(WriteError::KeyReused)));
        // Stale If-Match, another business's conversation: refused.
        let stale = storage
            .writer
            .update_conversation(
                business,
                c.id(),
                status(Status::Pending),
                Some(pingback_domain::Revision::new(1, Some(1))),
                now(),
            )
            .await;
        assert!(
            matches!(stale, Err(WriteError::PreconditionFailed)),
            "{stale:?}"
        );
        let elsewhere = storage
            .writer
            .update_conversation(id(), c.id(), status(Status::Pending), None, now())
            .await;
        assert!(
            matches!(elsewhere, Err(WriteError::NotFound)),
            "{elsewhere:?}"
        );
        assert_eq!(all(&storage, business).await.len(), 3);
        set(&storage, &c, status(Status::Closed)).await.unwrap(); // 4
        assert!(matches!(
            append(&storage, &c, SenderType::Customer).await,
            Err(WriteError::Refused(_))
        ));
        assert!(matches!(
            set(&storage, &c, status(Status::Open)).await,
            Err(WriteError::Refused(_))
        ));
        let events = all(&storage, business).await;
        assert_eq!(
            kinds(&events),
            [
                EventType::ConversationCreated,
                EventType::MessageCreated,
                EventType::MessageCreated,
                EventType::ConversationUpdated
            ]
        );
        // Nothing taken by the refusals: the next write is 5.
        create(&storage, business, false).await;
        assert_eq!(all(&storage, business).await.len(), 5);
    }

    pub async fn events_after_respects_after_limit_and_business(db: &TestDatabase) {
        let storage = storage_of(db);
        let (a, b): (BusinessId, BusinessId) = (id(), id());
        let ca = create(&storage, a, true).await; // 1, 2
        create(&storage, b, true).await; // b: 1, 2
        for _ in 0..3 {
            append(&storage, &ca, SenderType::Agent).await.unwrap(); // 3, 4, 5
        }
        let ids = |found: EventsAfter| match found {
            EventsAfter::Events(events) => events.iter().map(|e| e.id).collect::<Vec<_>>(),
            EventsAfter::Gone => panic!("gone without pruning"),
        };
        assert_eq!(ids(after(&storage, a, 0, 3).await), [1, 2, 3]);
        assert_eq!(ids(after(&storage, a, 3, 100).await), [4, 5]);
        assert_eq!(ids(after(&storage, a, 1, 1).await), [2]);
        assert_eq!(ids(after(&storage, a, 4, 1000).await), [5]);
        assert_eq!(ids(after(&storage, a, 5, 100).await), Vec::<i64>::new());
        assert_eq!(ids(after(&storage, a, 500, 100).await), Vec::<i64>::new());
        let EventsAfter::Events(theirs) = after(&storage, b, 0, 100).await else {
            panic!()
        };
        assert_eq!(theirs.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2]);
        assert!(
            theirs.iter().all(|e| e.conversation_id != ca.id()),
            "nothing of another business"
        );
    }

    pub async fn pruning_makes_older_positions_gone(db: &TestDatabase) {
        let storage = storage_of(db);
        let (a, b): (BusinessId, BusinessId) = (id(), id());
        let old = ts("2020-01-01T00:00:00Z");
        create_at(&storage, a, true, old).await; // 1, 2 (old)
        create_at(&storage, a, true, old).await; // 3, 4 (old)
        create_at(&storage, a, true, now()).await; // 5, 6
        create_at(&storage, b, false, now()).await; // b: 1
        // Nothing old enough: nothing pruned, nothing gone.
        assert_eq!(
            storage
                .events
                .prune(ts("2019-01-01T00:00:00Z"))
                .await
                .unwrap(),
            0
        );
        assert_eq!(all(&storage, a).await.len(), 6);
        let pruned = storage
            .events
            .prune(ts("2024-01-01T00:00:00Z"))
            .await
            .unwrap();
        assert_eq!(pruned, 4);
        // The oldest kept is 5: a reader at 4 or later misses nothing, one below is gone.
        for position in 0..4 {
            assert_eq!(
                after(&storage, a, position, 100).await,
                EventsAfter::Gone,
                "after={position}"
            );
        }
        let ids = |found: EventsAfter| match found {
            EventsAfter::Events(events) => events.iter().map(|e| e.id).collect::<Vec<_>>(),
            EventsAfter::Gone => panic!("gone"),
        };
        assert_eq!(ids(after(&storage, a, 4, 100).await), [5, 6]);
        assert_eq!(ids(after(&storage, a, 5, 100).await), [6]);
        assert_eq!(ids(after(&storage, a, 6, 100).await), Vec::<i64>::new());
        assert_eq!(ids(after(&storage, b, 0, 100).await), [1], "b kept its own");
        // Pruning keeps the counter: the next event is 7, not 1 again.
        create_at(&storage, a, false, now()).await;
        assert_eq!(ids(after(&storage, a, 6, 100).await), [7]);
        // Everything pruned: a reader that was up to date waits for 8; one behind is gone.
        assert_eq!(
            storage
                .events
                .prune(ts("2030-01-01T00:00:00Z"))
                .await
                .unwrap(),
            4
        );
        assert_eq!(ids(after(&storage, a, 7, 100).await), Vec::<i64>::new());
        assert_eq!(after(&storage, a, 6, 100).await, EventsAfter::Gone);
        assert_eq!(after(&storage, b, 0, 100).await, EventsAfter::Gone);
        create_at(&storage, a, false, now()).await;
        assert_eq!(ids(after(&storage, a, 7, 100).await), [8]);
    }

    /// `occurred_at` is the write's time, which need not grow with the id: two writers
    /// of a business take their times, then their ids in commit order (the later time
    /// may commit first); a message after a future-dated imported one occurs in the
    /// future. Pruning by time must still never leave a reader a page with a hole:
    /// any position with a pruned event above it is `Gone` (the port's contract).
    pub async fn pruning_out_of_order_times_leaves_no_readable_hole(db: &TestDatabase) {
        let storage = storage_of(db);
        let a: BusinessId = id();
        let (old, new) = (ts("2020-01-01T00:00:00Z"), ts("2025-01-01T00:00:00Z"));
        create_at(&storage, a, false, new).await; // 1 (kept)
        create_at(&storage, a, false, old).await; // 2 (pruned)
        create_at(&storage, a, false, new).await; // 3 (kept)
        // Pruning removes a prefix of old events only: event 2 stays (event 1 before it
        // is not old), so no reader ever meets a hole.
        assert_eq!(
            storage
                .events
                .prune(ts("2024-01-01T00:00:00Z"))
                .await
                .unwrap(),
            0
        );
        for position in 0..3 {
            match after(&storage, a, position, 100).await {
                EventsAfter::Gone => {}
                EventsAfter::Events(events) => {
                    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
                    let contiguous: Vec<i64> = (position + 1..=3).collect();
                    assert_eq!(
                        ids, contiguous,
                        "after={position}: event 2 was pruned, yet the page is not Gone \
                         and skips it (the feed then answers 500 for this position)"
                    );
                }
            }
        }
    }

    pub async fn the_inbox_reads_last_event_id_in_its_snapshot(db: &TestDatabase) {
        let storage = storage_of(db);
        let business: BusinessId = id();
        let query = |limit: u16| InboxQuery {
            filter: Default::default(),
            order: Default::default(),
            after: None,
            limit,
        };
        let empty = storage
            .repository
            .list_conversations(business, query(10))
            .await
            .unwrap();
        assert_eq!(empty.last_event_id, 0);
        let mut conversations = Vec::new();
        for _ in 0..4 {
            conversations.push(create(&storage, business, true).await);
        }
        let page = storage
            .repository
            .list_conversations(business, query(2))
            .await
            .unwrap();
        assert_eq!(page.last_event_id, 8);
        // Another business's writes do not move it.
        create(&storage, id(), true).await;
        // Writers running while pages are read: no item is older than the events up to
        // its page's last_event_id left it (else following the feed from there would
        // miss a change). It may be newer: a committed write whose event the page's
        // snapshot did not have numbered yet (PostgreSQL numbers after commit); that
        // event then comes after last_event_id.
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = conversations
            .iter()
            .cloned()
            .map(|c| {
                let (storage, stop) = (storage.clone(), Arc::clone(&stop));
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) && n < 40 {
                        append(&storage, &c, SenderType::Agent).await.unwrap();
                        n += 1;
                    }
                })
            })
            .collect();
        let mut pages = Vec::new();
        for _ in 0..15 {
            pages.push(
                storage
                    .repository
                    .list_conversations(business, query(100))
                    .await
                    .unwrap(),
            );
        }
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await.unwrap();
        }
        // Every write has answered, so every event is numbered.
        let events = all(&storage, business).await;
        let mut checked = 0;
        for page in &pages {
            assert!(page.last_event_id <= events.len() as i64);
            let upto = &events[..usize::try_from(page.last_event_id).unwrap()];
            for item in &page.items {
                let id = item.conversation.id();
                let latest = upto
                    .iter()
                    .rev()
                    .find(|e| e.conversation_id == id)
                    .expect("its creation is in the log");
                let updated_at = item.conversation.updated_at().unix_micros().to_string();
                let state = events[usize::try_from(latest.id - 1).unwrap()..]
                    .iter()
                    .filter(|e| e.conversation_id == id)
                    .find(|e| e.count() == item.message_count && e.get("updated_at") == updated_at);
                assert!(
                    state.is_some(),
                    "the page shows {id} as no event at or after last_event_id {} left it",
                    page.last_event_id
                );
                checked += 1;
            }
        }
        assert!(checked > 0);
        let last = all(&storage, business).await.len() as i64;
        let page = storage
            .repository
            .list_conversations(business, query(1))
            .await
            .unwrap();
        assert_eq!(page.last_event_id, last);
    }

    pub async fn concurrent_writers_get_contiguous_ids_in_commit_order(db: &TestDatabase) {
        const WRITERS: usize = 8;
        const WRITES: usize = 25;
        let storage = storage_of(db);
        let businesses: Vec<BusinessId> = (0..3).map(|_| id()).collect();
        let done = Arc::new(AtomicBool::new(false));
        // A follower per business, reading as writers commit: what it collects must be
        // the final log exactly (nothing appearing below an id it has passed).
        let followers: Vec<_> = businesses
            .iter()
            .map(|&business| {
                let (storage, done) = (storage.clone(), Arc::clone(&done));
                tokio::spawn(async move {
                    let mut seen: Vec<(i64, ConversationId, String)> = Vec::new();
                    loop {
                        let finished = done.load(Ordering::SeqCst);
                        let position = seen.last().map_or(0, |e| e.0);
                        let EventsAfter::Events(events) =
                            after(&storage, business, position, 7).await
                        else {
                            panic!("gone without pruning");
                        };
                        if events.is_empty() && finished {
                            return seen;
                        }
                        for event in &events {
                            let s = Seen::of(event);
                            seen.push((s.id, s.conversation_id, s.get("message").to_owned()));
                        }
                        if events.is_empty() {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                })
            })
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let storage = storage.clone();
                let business = businesses[w % businesses.len()];
                tokio::spawn(async move {
                    // What this writer expects to find: (conversation, message or "-", kind).
                    let mut expected: Vec<(ConversationId, String, EventType)> = Vec::new();
                    let mut mine: Vec<Conversation> = Vec::new();
                    for i in 0..WRITES {
                        match i % 5 {
                            0 | 3 => {
                                let c = create(&storage, business, i % 2 == 0).await;
                                expected.push((c.id(), "-".into(), EventType::ConversationCreated));
                                if let Some(m) = c.messages().first() {
                                    expected.push((
                                        c.id(),
                                        m.id().to_string(),
                                        EventType::MessageCreated,
                                    ));
                                }
                                mine.push(c);
                            }
                            1 | 4 => {
                                let c = &mine[i % mine.len()];
                                let a = append(&storage, c, SenderType::Agent).await.unwrap();
                                expected.push((
                                    c.id(),
                                    a.message.id().to_string(),
                                    EventType::MessageCreated,
                                ));
                            }
                            _ => {
                                let c = &mine[i % mine.len()];
                                let agent: AgentId = id();
                                let u = set(&storage, c, assign(Some(agent))).await.unwrap();
                                assert!(!u.changes.is_empty());
                                expected.push((c.id(), "-".into(), EventType::ConversationUpdated));
                            }
                        }
                    }
                    (business, expected)
                })
            })
            .collect();
        let mut expected: BTreeMap<BusinessId, Vec<(ConversationId, String, EventType)>> =
            BTreeMap::new();
        let mut per_writer = Vec::new();
        for w in writers {
            let (business, list) = w.await.unwrap();
            expected.entry(business).or_default().extend(list.clone());
            per_writer.push((business, list));
        }
        done.store(true, Ordering::SeqCst);
        let mut followed = Vec::new();
        for f in followers {
            followed.push(f.await.unwrap());
        }
        for (business, seen) in businesses.iter().zip(followed) {
            let events = all(&storage, *business).await;
            let wanted = &expected[business];
            assert_eq!(events.len(), wanted.len(), "one event per change");
            // Creations and messages are identified: each exactly once.
            let mut ids: HashMap<(ConversationId, String, EventType), i64> = HashMap::new();
            for e in events
                .iter()
                .filter(|e| e.kind != EventType::ConversationUpdated)
            {
                let key = (e.conversation_id, e.get("message").to_owned(), e.kind);
                assert!(ids.insert(key, e.id).is_none(), "repeated: {e:?}");
            }
            for kind in [
                EventType::ConversationCreated,
                EventType::ConversationUpdated,
                EventType::MessageCreated,
            ] {
                assert_eq!(
                    events.iter().filter(|e| e.kind == kind).count(),
                    wanted.iter().filter(|w| w.2 == kind).count(),
                    "{kind}"
                );
            }
            let updates = |c: ConversationId| {
                events
                    .iter()
                    .filter(|e| e.kind == EventType::ConversationUpdated && e.conversation_id == c)
                    .count()
            };
            for (_, list) in per_writer.iter().filter(|(b, _)| b == business) {
                // Every write of this writer is there, in the order it wrote them.
                let mine: Vec<i64> = list
                    .iter()
                    .filter(|w| w.2 != EventType::ConversationUpdated)
                    .map(|w| *ids.get(w).unwrap_or_else(|| panic!("missing {w:?}")))
                    .collect();
                assert!(mine.is_sorted(), "a writer's events in its order: {mine:?}");
                for (c, _, _) in list
                    .iter()
                    .filter(|w| w.2 == EventType::ConversationUpdated)
                {
                    let wanted = list
                        .iter()
                        .filter(|w| w.0 == *c && w.2 == EventType::ConversationUpdated)
                        .count();
                    assert_eq!(updates(*c), wanted, "updates of {c}");
                }
            }
            let followed: Vec<(i64, ConversationId, String)> = seen;
            let final_log: Vec<(i64, ConversationId, String)> = events
                .iter()
                .map(|e| (e.id, e.conversation_id, e.get("message").to_owned()))
                .collect();
            assert_eq!(
                followed, final_log,
                "the follower saw the final log exactly: nothing appeared behind it"
            );
        }
    }
}
