//! The write port's conformance suite: every write rule, once, against every adapter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use pingback_application::{
    IdempotencyClaim, IdempotencyKey, StoredResponse, WriteError, WriteOutcome, Written, batches_of,
};
use pingback_domain::{
    AgentId, AttachmentDraft, AttachmentId, BusinessId, ChannelType, Conversation,
    ConversationDraft, ConversationId, ConversationPatch, CustomerChoice, CustomerDraft,
    MessageDraft, MessageId, MessageIds, NewConversationIds, Revision, SenderType, Status,
    Timestamp, WriteRefused,
};
use pingback_persistence::Storage;
use pingback_persistence::testing::TestDatabase;
use pingback_persistence::testing::fixtures::{conversation, id, ts};

macro_rules! write_conformance {
    ($adapter:ident, $database:expr) => {
        mod $adapter {
            use super::*;

            write_conformance!(@cases $database,
                create_round_trips_with_a_new_customer,
                create_reuses_a_customer_by_external_id,
                create_with_a_foreign_customer_writes_nothing,
                appends_are_ordered_and_change_the_head,
                closed_takes_nothing,
                another_business_is_not_found,
                if_match_is_checked_under_the_lock,
                a_patch_that_changes_nothing_keeps_the_revision,
                a_key_replays_and_refuses_another_request,
                a_failed_write_keeps_no_key,
                an_expired_key_is_taken_over,
                concurrent_appends_all_land_in_order,
                concurrent_requests_with_one_key_write_once,
                messages_are_found_only_where_they_are,
            );
        }
    };
    (@cases $database:expr, $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let database = $database.await;
                super::cases::$case(&database).await;
            }
        )+
    };
}

write_conformance!(postgres, TestDatabase::postgres());
write_conformance!(sqlite, TestDatabase::sqlite());

fn now() -> Timestamp {
    ts("2025-01-01T10:00:00Z")
}

fn message_ids(attachments: usize) -> MessageIds {
    MessageIds {
        message: MessageId::from_uuid(uuid::Uuid::now_v7()),
        attachments: (0..attachments)
            .map(|_| AttachmentId::from_uuid(uuid::Uuid::now_v7()))
            .collect(),
    }
}

fn new_ids() -> NewConversationIds {
    NewConversationIds {
        conversation: ConversationId::from_uuid(uuid::Uuid::now_v7()),
        customer: pingback_domain::CustomerId::from_uuid(uuid::Uuid::now_v7()),
        message: message_ids(1),
    }
}

fn text_message(sender: SenderType, content: &str) -> MessageDraft {
    MessageDraft::new(sender, None, content.to_owned(), vec![]).unwrap()
}

fn draft(customer: CustomerChoice) -> ConversationDraft {
    ConversationDraft {
        channel_type: ChannelType::new("email").unwrap(),
        channel_id: None,
        assignee_id: None,
        status: Status::Open,
        customer,
        message: Some(
            MessageDraft::new(
                SenderType::Customer,
                None,
                "Hello".into(),
                vec![
                    AttachmentDraft::new(
                        "a.png".into(),
                        "image/png".into(),
                        7,
                        "https://files.example/a.png".into(),
                    )
                    .unwrap(),
                ],
            )
            .unwrap(),
        ),
    }
}

fn described(external_id: Option<&str>, name: &str) -> CustomerChoice {
    CustomerChoice::New(
        CustomerDraft::new(
            Some(name.into()),
            None,
            None,
            external_id.map(str::to_owned),
        )
        .unwrap(),
    )
}

async fn create(storage: &Storage, business: BusinessId, customer: CustomerChoice) -> Conversation {
    match storage
        .writer
        .create_conversation(business, draft(customer), new_ids(), now(), None)
        .await
        .unwrap()
    {
        Written::Done(c) => c,
        Written::Replayed(_) => panic!("no key, no replay"),
    }
}

async fn find(storage: &Storage, business: BusinessId, id: ConversationId) -> Option<Conversation> {
    storage
        .repository
        .find_conversation(business, id)
        .await
        .unwrap()
}

async fn append(
    storage: &Storage,
    c: &Conversation,
    message: MessageDraft,
    at: Timestamp,
) -> Result<pingback_domain::MessageAppended, WriteError> {
    storage
        .writer
        .append_message(c.business_id(), c.id(), message, message_ids(0), at, None)
        .await
        .map(|written| match written {
            Written::Done(appended) => appended,
            Written::Replayed(_) => panic!("no key, no replay"),
        })
}

fn claim(key: &str, fingerprint: u8, at: Timestamp) -> IdempotencyClaim {
    IdempotencyClaim {
        key: IdempotencyKey::new(key).unwrap(),
        fingerprint: [fingerprint; 32],
        at,
        render: Arc::new(|outcome: &WriteOutcome<'_>| StoredResponse {
            status: 201,
            location: Some("/here".into()),
            etag: None,
            body: match outcome {
                WriteOutcome::Created(c) => c.id().to_string().into_bytes(),
                WriteOutcome::Appended(a) => a.message.id().to_string().into_bytes(),
            },
        }),
    }
}

async fn post_with_key(
    storage: &Storage,
    c: &Conversation,
    key: &str,
    fingerprint: u8,
    at: Timestamp,
) -> Result<Written<pingback_domain::MessageAppended>, WriteError> {
    storage
        .writer
        .append_message(
            c.business_id(),
            c.id(),
            text_message(SenderType::Agent, "with a key"),
            message_ids(0),
            at,
            Some(claim(key, fingerprint, at)),
        )
        .await
}

mod cases {
    use super::*;

    pub async fn create_round_trips_with_a_new_customer(db: &TestDatabase) {
        let storage = db.storage();
        let business: BusinessId = id();
        let created = create(&storage, business, described(None, "Ann")).await;
        assert_eq!(created.revision(), Some(Revision::new(1, Some(1))));
        assert_eq!(created.messages().len(), 1);
        assert_eq!(created.messages()[0].attachments().len(), 1);
        assert_eq!(created.messages()[0].created_at(), now());
        let stored = find(&storage, business, created.id()).await.unwrap();
        assert_eq!(stored, created);
        assert_eq!(stored.revision(), created.revision());
    }

    pub async fn create_reuses_a_customer_by_external_id(db: &TestDatabase) {
        let storage = db.storage();
        let business: BusinessId = id();
        let first = create(&storage, business, described(Some("crm-1"), "Ann")).await;
        let second = create(&storage, business, described(Some("crm-1"), "Someone else")).await;
        let (a, b) = (first.customer().unwrap(), second.customer().unwrap());
        assert_eq!(a.id(), b.id());
        assert_eq!(
            b.name().unwrap().as_str(),
            "Ann",
            "an existing customer is not changed"
        );
        // Another business with the same external id gets a customer of its own.
        let other = create(&storage, id(), described(Some("crm-1"), "Ann")).await;
        assert_ne!(other.customer().unwrap().id(), a.id());
        // By id: the business's own customer.
        let by_id = create(&storage, business, CustomerChoice::Existing(a.id())).await;
        assert_eq!(by_id.customer(), Some(a));
    }

    pub async fn create_with_a_foreign_customer_writes_nothing(db: &TestDatabase) {
        let storage = db.storage();
        let theirs = create(&storage, id(), described(None, "Ann")).await;
        let ours: BusinessId = id();
        let ids = new_ids();
        let result = storage
            .writer
            .create_conversation(
                ours,
                draft(CustomerChoice::Existing(theirs.customer_id().unwrap())),
                ids.clone(),
                now(),
                None,
            )
            .await;
        assert!(
            matches!(result, Err(WriteError::UnknownCustomer)),
            "{result:?}"
        );
        assert_eq!(find(&storage, ours, ids.conversation).await, None);
    }

    pub async fn appends_are_ordered_and_change_the_head(db: &TestDatabase) {
        let storage = db.storage();
        let c = create(&storage, id(), described(None, "Ann")).await;
        // The clock behind the last message: still strictly after it.
        let agent = append(
            &storage,
            &c,
            text_message(SenderType::Agent, "hi"),
            ts("2020-01-01T00:00:00Z"),
        )
        .await
        .unwrap();
        assert_eq!(agent.message.created_at(), now().plus_micros(1));
        let later = ts("2025-01-01T11:00:00Z");
        append(
            &storage,
            &c,
            text_message(SenderType::Agent, "again"),
            later,
        )
        .await
        .unwrap();
        let stored = find(&storage, c.business_id(), c.id()).await.unwrap();
        assert_eq!(stored.messages().len(), 3);
        assert_eq!(stored.first_response_at(), Some(now().plus_micros(1)));
        assert_eq!(stored.updated_at(), later);
        assert_eq!(stored.revision(), Some(Revision::new(3, Some(1))));

        // A customer message reopens a resolved conversation.
        storage
            .writer
            .update_conversation(
                c.business_id(),
                c.id(),
                ConversationPatch {
                    status: Some(Status::Resolved),
                    assignee_id: None,
                },
                None,
                later,
            )
            .await
            .unwrap();
        let reopened = append(
            &storage,
            &c,
            text_message(SenderType::Customer, "still broken"),
            later,
        )
        .await
        .unwrap();
        assert_eq!(reopened.previous_status, Some(Status::Resolved));
        let stored = find(&storage, c.business_id(), c.id()).await.unwrap();
        assert_eq!(stored.status(), Status::Open);
        assert!(stored.messages().is_sorted_by_key(|m| m.created_at()));
        assert_eq!(
            stored.updated_at(),
            stored.messages().last().unwrap().created_at()
        );
    }

    pub async fn closed_takes_nothing(db: &TestDatabase) {
        let storage = db.storage();
        let c = create(&storage, id(), described(None, "Ann")).await;
        let patch = |status| ConversationPatch {
            status: Some(status),
            assignee_id: None,
        };
        storage
            .writer
            .update_conversation(c.business_id(), c.id(), patch(Status::Closed), None, now())
            .await
            .unwrap();
        let before = find(&storage, c.business_id(), c.id()).await.unwrap();
        let result = append(&storage, &c, text_message(SenderType::Customer, "x"), now()).await;
        assert!(
            matches!(result, Err(WriteError::Refused(WriteRefused::Closed))),
            "{result:?}"
        );
        let result = storage
            .writer
            .update_conversation(c.business_id(), c.id(), patch(Status::Open), None, now())
            .await;
        assert!(
            matches!(result, Err(WriteError::Refused(WriteRefused::Closed))),
            "{result:?}"
        );
        let after = find(&storage, c.business_id(), c.id()).await.unwrap();
        assert_eq!(after, before);
        assert_eq!(after.revision(), before.revision());
    }

    pub async fn another_business_is_not_found(db: &TestDatabase) {
        let storage = db.storage();
        let c = create(&storage, id(), described(None, "Ann")).await;
        let other: BusinessId = id();
        let result = storage
            .writer
            .append_message(
                other,
                c.id(),
                text_message(SenderType::Agent, "x"),
                message_ids(0),
                now(),
                None,
            )
            .await;
        assert!(matches!(result, Err(WriteError::NotFound)), "{result:?}");
        let result = storage
            .writer
            .update_conversation(other, c.id(), ConversationPatch::default(), None, now())
            .await;
        assert!(matches!(result, Err(WriteError::NotFound)), "{result:?}");
        assert_eq!(
            find(&storage, c.business_id(), c.id())
                .await
                .unwrap()
                .messages()
                .len(),
            1
        );
    }

    pub async fn if_match_is_checked_under_the_lock(db: &TestDatabase) {
        let storage = db.storage();
        let c = create(&storage, id(), described(None, "Ann")).await;
        let seen = c.revision().unwrap();
        let assign = |agent: u128| ConversationPatch {
            status: None,
            assignee_id: Some(Some(AgentId::from_uuid(uuid::Uuid::from_u128(agent)))),
        };
        let first = storage
            .writer
            .update_conversation(c.business_id(), c.id(), assign(1), Some(seen), now())
            .await
            .unwrap();
        assert_eq!(
            first.conversation.revision(),
            Some(Revision::new(2, Some(1)))
        );
        assert_eq!(first.changes.assignee_id, Some(None));
        let stale = storage
            .writer
            .update_conversation(c.business_id(), c.id(), assign(2), Some(seen), now())
            .await;
        assert!(
            matches!(stale, Err(WriteError::PreconditionFailed)),
            "{stale:?}"
        );
        let stored = find(&storage, c.business_id(), c.id()).await.unwrap();
        assert_eq!(
            stored.assignee_id(),
            Some(AgentId::from_uuid(uuid::Uuid::from_u128(1)))
        );
    }

    pub async fn a_patch_that_changes_nothing_keeps_the_revision(db: &TestDatabase) {
        let storage = db.storage();
        let c = create(&storage, id(), described(None, "Ann")).await;
        let same = storage
            .writer
            .update_conversation(
                c.business_id(),
                c.id(),
                ConversationPatch {
                    status: Some(Status::Open),
                    assignee_id: Some(None),
                },
                None,
                ts("2025-06-01T00:00:00Z"),
            )
            .await
            .unwrap();
        assert!(same.changes.is_empty());
        assert_eq!(same.conversation.revision(), c.revision());
        assert_eq!(same.conversation.updated_at(), c.updated_at());
    }

    pub async fn a_key_replays_and_refuses_another_request(db: &TestDatabase) {
        let storage = db.storage();
        let c = create(&storage, id(), described(None, "Ann")).await;
        let first = post_with_key(&storage, &c, "k-1", 1, now()).await.unwrap();
        let Written::Done(appended) = first else {
            panic!("the first request writes")
        };
        let replay = post_with_key(&storage, &c, "k-1", 1, now()).await.unwrap();
        let Written::Replayed(stored) = replay else {
            panic!("a retry replays")
        };
        assert_eq!(stored.status, 201);
        assert_eq!(stored.body, appended.message.id().to_string().into_bytes());
        let reused = post_with_key(&storage, &c, "k-1", 2, now()).await;
        assert!(matches!(reused, Err(WriteError::KeyReused)), "{reused:?}");
        // Keys belong to a business: another business's same key is its own.
        let theirs = create(&storage, id(), described(None, "Bo")).await;
        assert!(matches!(
            post_with_key(&storage, &theirs, "k-1", 2, now()).await,
            Ok(Written::Done(_))
        ));
        assert_eq!(
            find(&storage, c.business_id(), c.id())
                .await
                .unwrap()
                .messages()
                .len(),
            2
        );
    }

    pub async fn a_failed_write_keeps_no_key(db: &TestDatabase) {
        let storage = db.storage();
        let c = create(&storage, id(), described(None, "Ann")).await;
        storage
            .writer
            .update_conversation(
                c.business_id(),
                c.id(),
                ConversationPatch {
                    status: Some(Status::Closed),
                    assignee_id: None,
                },
                None,
                now(),
            )
            .await
            .unwrap();
        let refused = post_with_key(&storage, &c, "k-2", 1, now()).await;
        assert!(matches!(
            refused,
            Err(WriteError::Refused(WriteRefused::Closed))
        ));
        // The key was not kept: the same key with another request is no reuse.
        let other = create(&storage, c.business_id(), described(None, "Bo")).await;
        assert!(matches!(
            post_with_key(&storage, &other, "k-2", 9, now()).await,
            Ok(Written::Done(_))
        ));
    }

    pub async fn an_expired_key_is_taken_over(db: &TestDatabase) {
        let storage = db.storage();
        let c = create(&storage, id(), described(None, "Ann")).await;
        post_with_key(&storage, &c, "k-3", 1, now()).await.unwrap();
        let tomorrow = now().plus_micros(24 * 3600 * 1_000_000 + 1);
        let again = post_with_key(&storage, &c, "k-3", 2, tomorrow).await;
        assert!(matches!(again, Ok(Written::Done(_))), "{again:?}");
        assert_eq!(
            find(&storage, c.business_id(), c.id())
                .await
                .unwrap()
                .messages()
                .len(),
            3
        );
    }

    pub async fn concurrent_appends_all_land_in_order(db: &TestDatabase) {
        let storage = db.storage();
        let c = create(&storage, id(), described(None, "Ann")).await;
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let (storage, c) = (storage.clone(), c.clone());
                tokio::spawn(async move {
                    append(
                        &storage,
                        &c,
                        text_message(SenderType::Agent, &format!("m{i}")),
                        now(),
                    )
                    .await
                    .map(|a| a.message.id())
                })
            })
            .collect();
        let mut ids = Vec::new();
        for task in tasks {
            ids.push(task.await.unwrap().unwrap());
        }
        let stored = find(&storage, c.business_id(), c.id()).await.unwrap();
        assert_eq!(stored.messages().len(), 21);
        let times: Vec<Timestamp> = stored.messages().iter().map(|m| m.created_at()).collect();
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "strictly increasing: {times:?}"
        );
        assert_eq!(stored.updated_at(), *times.last().unwrap());
        assert_eq!(stored.revision(), Some(Revision::new(21, Some(1))));
        for id in ids {
            assert!(stored.messages().iter().any(|m| m.id() == id));
        }
    }

    pub async fn concurrent_requests_with_one_key_write_once(db: &TestDatabase) {
        let storage = db.storage();
        let c = create(&storage, id(), described(None, "Ann")).await;
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (storage, c) = (storage.clone(), c.clone());
                tokio::spawn(async move { post_with_key(&storage, &c, "k-4", 1, now()).await })
            })
            .collect();
        let mut bodies = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(Written::Done(a)) => bodies.push(a.message.id().to_string().into_bytes()),
                Ok(Written::Replayed(stored)) => bodies.push(stored.body),
                Err(WriteError::KeyInFlight) => {}
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(!bodies.is_empty());
        assert!(
            bodies.windows(2).all(|w| w[0] == w[1]),
            "one answer for one key"
        );
        assert_eq!(
            find(&storage, c.business_id(), c.id())
                .await
                .unwrap()
                .messages()
                .len(),
            2
        );
    }

    pub async fn messages_are_found_only_where_they_are(db: &TestDatabase) {
        let storage = db.storage();
        let c = create(&storage, id(), described(None, "Ann")).await;
        let message = &c.messages()[0];
        let found = storage
            .writer
            .find_message(c.business_id(), c.id(), message.id())
            .await
            .unwrap();
        assert_eq!(found.as_ref(), Some(message));
        let other = conversation(c.business_id());
        storage
            .importer
            .import(batches_of(vec![other.clone()]))
            .await
            .unwrap();
        for (business, conversation) in [(c.business_id(), other.id()), (id(), c.id())] {
            assert_eq!(
                storage
                    .writer
                    .find_message(business, conversation, message.id())
                    .await
                    .unwrap(),
                None
            );
        }
    }
}
