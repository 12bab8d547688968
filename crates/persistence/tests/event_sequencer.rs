//! PostgreSQL's numbering of pending events (`crates/persistence/src/sequencer.rs`):
//! writers in several processes of one business, and events whose writer's process
//! died between its commit and their numbering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use pingback_application::{EventsAfter, StoredEvent, Written};
use pingback_domain::{
    AttachmentId, BusinessId, ChannelType, ConversationDraft, ConversationId, CustomerChoice,
    CustomerDraft, MessageAppended, MessageDraft, MessageId, MessageIds, NewConversationIds,
    SenderType, Status, Timestamp,
};
use pingback_persistence::testing::TestDatabase;
use pingback_persistence::testing::fixtures::id;
use pingback_persistence::{EventWiring, Storage, connect, settle_stragglers};

/// A process of its own: its own pool, signals and numbering turns.
fn process(db: &TestDatabase) -> (Storage, EventWiring) {
    let wiring = pingback_persistence::testing::events();
    (connect(&db.settings(), &wiring).unwrap(), wiring)
}

fn message_ids() -> MessageIds {
    MessageIds {
        message: MessageId::from_uuid(uuid::Uuid::now_v7()),
        attachments: Vec::<AttachmentId>::new(),
    }
}

fn draft() -> ConversationDraft {
    ConversationDraft {
        channel_type: ChannelType::new("email").unwrap(),
        channel_id: None,
        assignee_id: None,
        status: Status::Open,
        customer: CustomerChoice::New(
            CustomerDraft::new(Some("Ann".into()), None, None, None).unwrap(),
        ),
        message: None,
    }
}

async fn create(storage: &Storage, business: BusinessId) -> ConversationId {
    let ids = NewConversationIds {
        conversation: ConversationId::from_uuid(uuid::Uuid::now_v7()),
        customer: pingback_domain::CustomerId::from_uuid(uuid::Uuid::now_v7()),
        message: message_ids(),
    };
    match storage
        .writer
        .create_conversation(business, draft(), ids, Timestamp::now(), None)
        .await
        .unwrap()
    {
        Written::Done(c) => c.id(),
        Written::Replayed(_) => panic!("no key, no replay"),
    }
}

async fn append(
    storage: &Storage,
    business: BusinessId,
    conversation: ConversationId,
) -> MessageId {
    append_as(storage, business, conversation, SenderType::Agent)
        .await
        .message
        .id()
}

async fn append_as(
    storage: &Storage,
    business: BusinessId,
    conversation: ConversationId,
    sender: SenderType,
) -> MessageAppended {
    let draft = MessageDraft::new(sender, None, "more".into(), vec![]).unwrap();
    match storage
        .writer
        .append_message(
            business,
            conversation,
            draft,
            message_ids(),
            Timestamp::now(),
            None,
        )
        .await
        .unwrap()
    {
        Written::Done(appended) => appended,
        Written::Replayed(_) => panic!("no key, no replay"),
    }
}

/// Every event of a business, checked numbered 1..N without gaps.
async fn log(storage: &Storage, business: BusinessId) -> Vec<StoredEvent> {
    let mut events = Vec::new();
    loop {
        let after = events.last().map_or(0, |e: &StoredEvent| e.id);
        let EventsAfter::Events(page) = storage
            .events
            .events_after(business, after, 1000)
            .await
            .unwrap()
        else {
            panic!("gone without pruning");
        };
        if page.is_empty() {
            break;
        }
        events.extend(page);
    }
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        (1..=events.len() as i64).collect::<Vec<_>>(),
        "1..N without gaps"
    );
    events
}

/// Events of `conversation` a writer committed without numbering them (its process
/// died, or has not got to it yet), in the order of `data`, `age` old (an SQL interval).
async fn leave_pending(
    db: &TestDatabase,
    business: BusinessId,
    conversation: ConversationId,
    age: &str,
    data: &[&str],
) {
    let rows: Vec<String> = data
        .iter()
        .map(|d| {
            format!(
                "('{business}', 'message.created', now() - interval '{age}', '{conversation}', '{d}')"
            )
        })
        .collect();
    db.execute(&format!(
        "INSERT INTO pending_events (business_id, type, occurred_at, conversation_id, data) VALUES {}",
        rows.join(", ")
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_in_several_processes_get_every_id_once_in_their_order() {
    let db = TestDatabase::postgres().await;
    let processes: Vec<_> = (0..3).map(|_| process(&db).0).collect();
    let business: BusinessId = id();
    let conversation = create(&processes[0], business).await;
    // 3 processes × 4 writers on one conversation of one business: their writes are
    // serialised by the conversation's row, so the log must hold each writer's messages
    // in the order it wrote them, whichever process numbered them.
    let writers: Vec<_> = (0..12)
        .map(|w| {
            let storage = processes[w % 3].clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for _ in 0..15 {
                    mine.push(append(&storage, business, conversation).await);
                }
                mine
            })
        })
        .collect();
    let mut written = Vec::new();
    for w in writers {
        written.push(w.await.unwrap());
    }
    let events = log(&processes[1], business).await;
    assert_eq!(events.len(), 1 + 12 * 15, "one event per write");
    let messages: Vec<String> = events[1..]
        .iter()
        .map(|e| {
            let data = String::from_utf8(e.data.clone()).unwrap();
            let message = data
                .split("\"message\":\"")
                .nth(1)
                .expect("a message event");
            message.split('"').next().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        messages.iter().collect::<HashSet<_>>().len(),
        messages.len(),
        "each once"
    );
    for mine in written {
        let positions: Vec<usize> = mine
            .iter()
            .map(|m| {
                messages
                    .iter()
                    .position(|seen| *seen == m.to_string())
                    .unwrap()
            })
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "a writer's order is kept"
        );
    }
}

#[tokio::test]
async fn events_a_dead_writer_left_pending_are_numbered_by_the_sweep() {
    let db = TestDatabase::postgres().await;
    let (storage, wiring) = process(&db);
    let business: BusinessId = id();
    let conversation = create(&storage, business).await;
    // A process that committed these and died before numbering them; and one whose
    // write committed a moment ago and is numbering its own.
    leave_pending(
        &db,
        business,
        conversation,
        "1 minute",
        &["first", "second"],
    )
    .await;
    let other: BusinessId = id();
    leave_pending(&db, other, conversation, "0 seconds", &["young"]).await;
    assert_eq!(
        log(&storage, business).await.len(),
        1,
        "pending events are not in the log"
    );
    assert_eq!(settle_stragglers(&db.settings(), &wiring).await.unwrap(), 1);
    let events = log(&storage, business).await;
    let data: Vec<&[u8]> = events.iter().skip(1).map(|e| e.data.as_slice()).collect();
    assert_eq!(
        data,
        [b"first".as_slice(), b"second"],
        "numbered in their order"
    );
    assert!(
        log(&storage, other).await.is_empty(),
        "a young event is left to its writer"
    );
    // Numbered once: the next write continues the ids.
    append(&storage, business, conversation).await;
    assert_eq!(log(&storage, business).await.len(), 4);
    assert_eq!(settle_stragglers(&db.settings(), &wiring).await.unwrap(), 0);
}

#[tokio::test]
async fn a_write_after_events_left_pending_is_numbered_after_them() {
    let db = TestDatabase::postgres().await;
    let (storage, wiring) = process(&db);
    let business: BusinessId = id();
    let conversation = create(&storage, business).await;
    // A process committed a write of this conversation and died before numbering its
    // event. The next write of the conversation finds the counter row free; numbering
    // its own event at once would put it before the earlier one in the log, and a
    // reader replaying the log would keep the older state of the conversation.
    leave_pending(&db, business, conversation, "0 seconds", &["earlier"]).await;
    let later = append(&storage, business, conversation).await;
    let events = log(&storage, business).await;
    assert_eq!(
        events.len(),
        3,
        "the creation, the earlier write, the later one"
    );
    assert_eq!(events[1].data, b"earlier", "the earlier write first");
    let data = String::from_utf8(events[2].data.clone()).unwrap();
    assert!(
        data.contains(&later.to_string()),
        "then the later one: {data}"
    );
    assert_eq!(settle_stragglers(&db.settings(), &wiring).await.unwrap(), 0);
}

/// Staged in the statement that updates the conversation (plain PostgreSQL): a customer
/// message that reopens its conversation stages two events there, and both land after
/// the pending one, in their order, with the update applied once.
#[tokio::test]
async fn a_reopening_message_stages_both_its_events_with_the_update() {
    let db = TestDatabase::postgres().await;
    let (storage, wiring) = process(&db);
    let business: BusinessId = id();
    let conversation = create(&storage, business).await;
    db.execute(&format!(
        "UPDATE conversations SET status = 'pending' WHERE id = '{conversation}'"
    ))
    .await;
    leave_pending(&db, business, conversation, "0 seconds", &["earlier"]).await;
    let appended = append_as(&storage, business, conversation, SenderType::Customer).await;
    assert_eq!(appended.previous_status, Some(Status::Pending));
    let events = log(&storage, business).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "conversation.created",
            "message.created",
            "message.created",
            "conversation.updated"
        ]
    );
    assert_eq!(events[1].data, b"earlier", "the pending event first");
    let message = String::from_utf8(events[2].data.clone()).unwrap();
    assert!(
        message.contains(&format!("\"message\":\"{}\"", appended.message.id())),
        "{message}"
    );
    for event in &events[2..] {
        assert_eq!(event.conversation_id, conversation);
        let data = String::from_utf8(event.data.clone()).unwrap();
        assert!(
            data.contains("\"message_count\":1"),
            "the state after: {data}"
        );
    }
    let stored = storage
        .repository
        .find_conversation(business, conversation)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status(), Status::Open, "the update applied");
    assert_eq!(stored.messages().len(), 1);
    assert_eq!(settle_stragglers(&db.settings(), &wiring).await.unwrap(), 0);
}

/// The data-modifying `WITH`s that stage and number events are plain PostgreSQL's:
/// Citus cannot route them to one shard, so a store must know where it runs.
#[tokio::test]
async fn a_store_knows_whether_it_runs_on_citus() {
    let db = TestDatabase::postgres().await;
    assert_eq!(db.store_sees_citus().await, db.is_citus());
}

#[tokio::test]
async fn a_backlog_is_numbered_in_batches_in_its_order() {
    let db = TestDatabase::postgres().await;
    let (storage, wiring) = process(&db);
    let business: BusinessId = id();
    let conversation = create(&storage, business).await;
    // More than one numbering transaction holds (1,000), in chunks of every size.
    db.execute(&format!(
        "INSERT INTO pending_events (business_id, type, occurred_at, conversation_id, data) \
         SELECT '{business}', 'message.created', now() - interval '1 minute', '{conversation}', \
         'n' || g FROM generate_series(1, 1501) g ORDER BY g"
    ))
    .await;
    assert_eq!(settle_stragglers(&db.settings(), &wiring).await.unwrap(), 1);
    let events = log(&storage, business).await;
    assert_eq!(events.len(), 1 + 1501);
    for (n, event) in events.iter().skip(1).enumerate() {
        assert_eq!(
            event.data,
            format!("n{}", n + 1).into_bytes(),
            "in seq order"
        );
    }
}
