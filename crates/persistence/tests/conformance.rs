//! The adapter conformance suite: written once against the ports, run against every
//! adapter. A new adapter adds one `conformance!` line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pingback_application::{
    ConversationBatches, ImportConflictOwner, ImportError, ImportSummary, ImportedEntity,
    SourceAborted, batches_of,
};
use pingback_domain::testing::{AttachmentBuilder, ConversationBuilder, CustomerBuilder};
use pingback_domain::{AttachmentId, BusinessId, Conversation, Customer, Message, Status, Text};
use pingback_persistence::testing::TestDatabase;
use pingback_persistence::testing::fixtures::{
    self, attachment, conversation, conversation_of, customer, id, id_from, message, message_of, ts,
};
use pingback_persistence::{Storage, migrate, revert_all};

/// Instantiates every case for one adapter; `$database` makes a fresh, migrated one.
macro_rules! conformance {
    ($adapter:ident, $database:expr) => {
        mod $adapter {
            use super::*;

            async fn database() -> TestDatabase {
                $database.await
            }

            conformance!(@cases
                found_round_trips,
                not_found,
                another_business_sees_nothing,
                equal_timestamps_are_ordered_by_id,
                nullable_fields_may_all_be_null,
                extreme_timestamps_are_exact,
                attachments_keep_their_order,
                unicode_emoji_and_long_content_round_trip,
                ten_thousand_messages,
                reimport_is_idempotent,
                reimport_replaces_the_message_set,
                shared_customer_is_one_row,
                revisions_follow_every_write,
                conversation_of_another_business_conflicts,
                customer_of_another_business_conflicts,
                customer_given_to_two_businesses_in_one_import_conflicts,
                message_of_another_conversation_conflicts,
                attachment_of_another_message_conflicts,
                all_conflicts_are_reported_and_nothing_is_written,
                conflict_in_a_later_batch_rolls_back_earlier_ones,
                aborted_source_writes_nothing,
                ping_answers,
                migrations_go_down_and_up_again,
            );
        }
    };
    (@cases $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let database = database().await;
                super::cases::$case(&database).await;
            }
        )+
    };
}

conformance!(postgres, TestDatabase::postgres());
conformance!(sqlite, TestDatabase::sqlite());

async fn import(storage: &Storage, conversations: Vec<Conversation>) -> ImportSummary {
    storage
        .importer
        .import(batches_of(conversations))
        .await
        .expect("import")
}

async fn find(storage: &Storage, c: &Conversation) -> Option<Conversation> {
    storage
        .repository
        .find_conversation(c.business_id(), c.id())
        .await
        .expect("find_conversation")
}

fn batches(items: Vec<Result<Vec<Conversation>, SourceAborted>>) -> ConversationBatches {
    Box::pin(futures_util::stream::iter(items))
}

/// `c` with new fields, `customer` and `messages`; the same id, business, creation
/// and first response.
fn replaced(c: &Conversation, customer: Option<Customer>, messages: Vec<Message>) -> Conversation {
    ConversationBuilder::from(c)
        .customer(customer)
        .assignee(None)
        .status(Status::Resolved)
        .channel_type("email")
        .channel_id(None)
        .updated_at(ts("2024-03-02T10:00:00Z"))
        .messages(messages)
        .build()
}

mod cases {
    use super::*;

    pub async fn found_round_trips(db: &TestDatabase) {
        let storage = db.storage();
        let c = conversation(id());
        let summary = import(&storage, vec![c.clone()]).await;
        assert_eq!(
            summary,
            ImportSummary {
                conversations: 1,
                customers: 1,
                messages: 4,
                attachments: 2
            }
        );
        assert_eq!(find(&storage, &c).await, Some(c));
    }

    pub async fn not_found(db: &TestDatabase) {
        let storage = db.storage();
        import(&storage, vec![conversation(id())]).await;
        let missing = storage
            .repository
            .find_conversation(id(), id())
            .await
            .unwrap();
        assert_eq!(missing, None);
    }

    pub async fn another_business_sees_nothing(db: &TestDatabase) {
        let storage = db.storage();
        let c = conversation(id());
        import(&storage, vec![c.clone()]).await;
        let other: BusinessId = id();
        let found = storage
            .repository
            .find_conversation(other, c.id())
            .await
            .unwrap();
        assert_eq!(found, None);
    }

    pub async fn equal_timestamps_are_ordered_by_id(db: &TestDatabase) {
        let storage = db.storage();
        let at = ts("2024-03-01T09:00:00.5Z");
        // Ids whose byte order differs from their insertion order, and from the order
        // of their textual forms' first character only.
        let ids: [u128; 5] = [
            0xff00_0000_0000_0000_0000_0000_0000_0001,
            0x0000_0000_0000_0000_0000_0000_0000_0002,
            0x8000_0000_0000_0000_0000_0000_0000_0000,
            0x7fff_ffff_ffff_ffff_ffff_ffff_ffff_ffff,
            0x0000_0000_0000_0000_0000_0000_0000_0001,
        ];
        let business = id();
        let messages = ids
            .iter()
            .map(|n| message_of(at, "same instant").id(id_from(*n)).build())
            .chain([message(ts("2024-03-01T09:00:00.499999Z"), "just before")]);
        let c = conversation_of(business).messages(messages).build();
        import(&storage, vec![c.clone()]).await;
        let found = find(&storage, &c).await.unwrap();
        let mut expected: Vec<u128> = ids.to_vec();
        expected.sort_unstable();
        let got: Vec<u128> = found.messages()[1..]
            .iter()
            .map(|m| m.id().as_uuid().as_u128())
            .collect();
        assert_eq!(got, expected);
        assert_eq!(found.messages()[0].content().as_str(), "just before");
        assert_eq!(found, c);
    }

    pub async fn nullable_fields_may_all_be_null(db: &TestDatabase) {
        let storage = db.storage();
        let business = id();
        let bare = fixtures::minimal_conversation(business);
        let bare_customer = conversation_of(business)
            .customer(fixtures::bare_customer(business))
            .build();
        import(&storage, vec![bare.clone(), bare_customer.clone()]).await;

        let found = find(&storage, &bare).await.unwrap();
        assert!(found.customer().is_none() && found.customer_id().is_none());
        assert!(found.assignee_id().is_none() && found.channel_id().is_none());
        assert!(found.first_response_at().is_none());
        assert!(found.messages()[0].sender_id().is_none());
        assert!(found.messages()[0].attachments().is_empty());
        assert_eq!(found, bare);
        let found = find(&storage, &bare_customer).await.unwrap();
        assert!(found.messages().is_empty());
        assert_eq!(found, bare_customer);
    }

    pub async fn extreme_timestamps_are_exact(db: &TestDatabase) {
        let storage = db.storage();
        let (first, last) = (
            ts("0001-01-01T00:00:00Z"),
            ts("9999-12-31T23:59:59.999999Z"),
        );
        let c = ConversationBuilder::from(&conversation(id()))
            .created_at(first)
            .updated_at(last)
            .first_response_at(ts("1969-12-31T23:59:59.999999Z"))
            .messages([
                message(last, "last"),
                message(first, "first"),
                message(
                    ts("2000-01-01T00:00:00.000001Z"),
                    "just after PostgreSQL's epoch",
                ),
                message(ts("1999-12-31T23:59:59.999999Z"), "just before it"),
            ])
            .build();
        import(&storage, vec![c.clone()]).await;
        let found = find(&storage, &c).await.unwrap();
        let contents: Vec<&str> = found
            .messages()
            .iter()
            .map(|m| m.content().as_str())
            .collect();
        assert_eq!(
            contents,
            [
                "first",
                "just before it",
                "just after PostgreSQL's epoch",
                "last"
            ]
        );
        assert_eq!(found, c);
    }

    pub async fn attachments_keep_their_order(db: &TestDatabase) {
        let storage = db.storage();
        // Descending ids: an adapter ordering attachments by id would reverse them.
        let mut ids: Vec<uuid::Uuid> = (0..6).map(|_| uuid::Uuid::new_v4()).collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        let attachments = ids.into_iter().enumerate().map(|(n, id)| {
            AttachmentBuilder::from(&attachment(&format!("part-{n}.bin")))
                .id(AttachmentId::from_uuid(id))
                .build()
        });
        let c = conversation_of(id())
            .message(
                message_of(ts("2024-03-01T09:00:00Z"), "files")
                    .attachments(attachments)
                    .build(),
            )
            .build();
        import(&storage, vec![c.clone()]).await;
        let found = find(&storage, &c).await.unwrap();
        assert_eq!(
            found.messages()[0].attachments(),
            c.messages()[0].attachments()
        );
    }

    pub async fn unicode_emoji_and_long_content_round_trip(db: &TestDatabase) {
        let storage = db.storage();
        let business = id();
        let unicode = "Ça marche ? 👍🏽 👨‍👩‍👧‍👦 日本語のテキスト עברית مرحبا e\u{301} \u{FEFF}\t\n\r 🏳️‍🌈 'quotes' \"double\" \\ %_";
        // 16 bytes, 3 of them one character: exactly the largest content allowed.
        let long: String = "Lorem ipsum ✓ ".repeat(Text::MAX_BYTES / 16);
        assert_eq!(long.len(), Text::MAX_BYTES);
        let long = long.as_str();
        let customer = CustomerBuilder::from(&customer(business))
            .name(unicode)
            .external_id("\u{1F600}")
            .build();
        let c = conversation_of(business)
            .customer(customer)
            .message(message(ts("2024-03-01T09:00:00Z"), unicode))
            .message(message(ts("2024-03-01T09:00:01Z"), long))
            .message(message(ts("2024-03-01T09:00:02Z"), ""))
            .build();
        import(&storage, vec![c.clone()]).await;
        let found = find(&storage, &c).await.unwrap();
        assert_eq!(found.messages()[1].content().as_str().len(), long.len());
        assert_eq!(found, c);
    }

    pub async fn ten_thousand_messages(db: &TestDatabase) {
        let storage = db.storage();
        let c = fixtures::large_conversation(id(), 10_000);
        let summary = import(&storage, vec![c.clone()]).await;
        assert_eq!((summary.messages, summary.attachments), (10_000, 1_000));
        assert_eq!(find(&storage, &c).await, Some(c));
    }

    pub async fn reimport_is_idempotent(db: &TestDatabase) {
        let storage = db.storage();
        let c = conversation(id());
        let first = import(&storage, vec![c.clone()]).await;
        let second = import(&storage, vec![c.clone()]).await;
        assert_eq!(first, second);
        assert_eq!(find(&storage, &c).await, Some(c));
    }

    pub async fn reimport_replaces_the_message_set(db: &TestDatabase) {
        let storage = db.storage();
        let business = id();
        let c = conversation(business);
        import(&storage, vec![c.clone()]).await;

        // Keep the first message, drop the others (one carries the attachments),
        // add a new one; change the conversation's fields and the customer's name.
        let kept = c.messages()[0].clone();
        let dropped: Vec<_> = c.messages()[1..].to_vec();
        let old_customer = c.customer().unwrap().clone();
        let renamed = CustomerBuilder::new(business)
            .id(old_customer.id())
            .name("Renamed")
            .created_at(old_customer.created_at())
            .build();
        let new = replaced(
            &c,
            Some(renamed),
            vec![kept, message(ts("2024-03-02T09:00:00Z"), "a new one")],
        );
        let summary = import(&storage, vec![new.clone()]).await;
        assert_eq!((summary.messages, summary.attachments), (2, 0));
        assert_eq!(find(&storage, &new).await, Some(new.clone()));

        // The removed messages and their attachments are gone: their ids are free for
        // another conversation of the business, which a stale row would refuse.
        let reuse = conversation_of(business).messages(dropped).build();
        assert_eq!(
            reuse
                .messages()
                .iter()
                .map(|m| m.attachments().len())
                .sum::<usize>(),
            2
        );
        import(&storage, vec![reuse.clone()]).await;
        assert_eq!(find(&storage, &reuse).await, Some(reuse));
        assert_eq!(find(&storage, &new).await, Some(new));
    }

    pub async fn revisions_follow_every_write(db: &TestDatabase) {
        let storage = db.storage();
        let business = id();
        let shared = customer(business);
        let a = conversation_of(business).customer(shared.clone()).build();
        let alone = conversation_of(business).build();
        import(&storage, vec![a.clone(), alone.clone()]).await;
        let revision = |c: &Conversation| {
            let storage = storage.clone();
            let (business, id) = (c.business_id(), c.id());
            async move {
                storage
                    .repository
                    .find_revision(business, id)
                    .await
                    .unwrap()
            }
        };

        // The revision read alone is the one the whole read carries.
        let first = find(&storage, &a).await.unwrap().revision().unwrap();
        let stored = revision(&a).await.unwrap();
        assert_eq!((stored.business_id, stored.id), (a.business_id(), a.id()));
        assert_eq!(stored.revision, first);
        assert!(first.customer().is_some());
        assert_eq!(revision(&alone).await.unwrap().revision.customer(), None);

        // Re-importing writes the rows again: both revisions move.
        import(&storage, vec![a.clone()]).await;
        let second = revision(&a).await.unwrap().revision;
        assert!(second.conversation() > first.conversation());
        assert!(second.customer() > first.customer());

        // Another conversation of the same customer changes this one's body (the
        // embedded customer): its customer revision moves, its own does not.
        let b = conversation_of(business).customer(shared).build();
        import(&storage, vec![b]).await;
        let third = revision(&a).await.unwrap().revision;
        assert_eq!(third.conversation(), second.conversation());
        assert!(third.customer() > second.customer());
        assert_eq!(find(&storage, &a).await.unwrap().revision(), Some(third));

        // The business rule of find_conversation.
        assert_eq!(
            storage
                .repository
                .find_revision(id(), a.id())
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            storage
                .repository
                .find_revision(business, id())
                .await
                .unwrap(),
            None
        );
    }

    pub async fn shared_customer_is_one_row(db: &TestDatabase) {
        let storage = db.storage();
        let business = id();
        let customer = customer(business);
        let a = conversation_of(business).customer(customer.clone()).build();
        let b = conversation_of(business).customer(customer.clone()).build();
        let summary = import(&storage, vec![a.clone(), b.clone()]).await;
        assert_eq!((summary.conversations, summary.customers), (2, 1));
        // Across imports too: a later conversation updates the shared row.
        let renamed = CustomerBuilder::new(business)
            .id(customer.id())
            .name("New name")
            .created_at(customer.created_at())
            .build();
        let c = conversation_of(business).customer(renamed.clone()).build();
        import(&storage, vec![c.clone()]).await;
        for conversation in [&a, &b, &c] {
            let found = find(&storage, conversation).await.unwrap();
            assert_eq!(found.customer(), Some(&renamed));
        }
    }

    fn conflicts(
        result: Result<ImportSummary, ImportError>,
    ) -> Vec<pingback_application::ImportConflict> {
        match result {
            Err(ImportError::Conflicts(conflicts)) => conflicts,
            other => panic!("expected conflicts, got {other:?}"),
        }
    }

    pub async fn conversation_of_another_business_conflicts(db: &TestDatabase) {
        let storage = db.storage();
        let (first, second): (BusinessId, BusinessId) = (id(), id());
        let original = conversation(first);
        import(&storage, vec![original.clone()]).await;
        let hijack = ConversationBuilder::new(second)
            .id(original.id())
            .channel_type("sms")
            .created_at(original.created_at())
            .updated_at(original.updated_at())
            .build();
        let bystander = conversation(second);
        let found = conflicts(
            storage
                .importer
                .import(batches_of(vec![bystander.clone(), hijack.clone()]))
                .await,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].entity, ImportedEntity::Conversation);
        assert_eq!(found[0].id, original.id().to_string());
        assert_eq!(found[0].conversation_id, original.id());
        assert_eq!(found[0].owner, ImportConflictOwner::Business(first));
        // Nothing written: neither the conflicting one nor its batch mate.
        assert_eq!(find(&storage, &hijack).await, None);
        assert_eq!(find(&storage, &bystander).await, None);
        assert_eq!(find(&storage, &original).await, Some(original));
    }

    pub async fn customer_of_another_business_conflicts(db: &TestDatabase) {
        let storage = db.storage();
        let (first, second): (BusinessId, BusinessId) = (id(), id());
        let original = conversation(first);
        import(&storage, vec![original.clone()]).await;
        let taken = original.customer().unwrap();
        let stolen = CustomerBuilder::new(second)
            .id(taken.id())
            .created_at(taken.created_at())
            .build();
        let c = conversation_of(second).customer(stolen).build();
        let found = conflicts(storage.importer.import(batches_of(vec![c.clone()])).await);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].entity, ImportedEntity::Customer);
        assert_eq!(found[0].id, taken.id().to_string());
        assert_eq!(found[0].conversation_id, c.id());
        assert_eq!(found[0].owner, ImportConflictOwner::Business(first));
        assert_eq!(find(&storage, &c).await, None);
        assert_eq!(find(&storage, &original).await, Some(original));
    }

    pub async fn customer_given_to_two_businesses_in_one_import_conflicts(db: &TestDatabase) {
        let storage = db.storage();
        let (first, second): (BusinessId, BusinessId) = (id(), id());
        let shared = customer(first);
        let twin = CustomerBuilder::new(second)
            .id(shared.id())
            .created_at(shared.created_at())
            .build();
        let a = conversation_of(first).customer(shared.clone()).build();
        let b = conversation_of(second).customer(twin).build();
        let found = conflicts(
            storage
                .importer
                .import(batches(vec![Ok(vec![a.clone()]), Ok(vec![b.clone()])]))
                .await,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].entity, ImportedEntity::Customer);
        assert_eq!(found[0].conversation_id, b.id());
        assert_eq!(found[0].owner, ImportConflictOwner::Business(first));
        assert_eq!(find(&storage, &a).await, None);
    }

    pub async fn message_of_another_conversation_conflicts(db: &TestDatabase) {
        let storage = db.storage();
        let business = id();
        let original = conversation(business);
        import(&storage, vec![original.clone()]).await;
        let taken = original.messages()[0].clone();
        let c = conversation_of(business).message(taken.clone()).build();
        let found = conflicts(storage.importer.import(batches_of(vec![c.clone()])).await);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].entity, ImportedEntity::Message);
        assert_eq!(found[0].id, taken.id().to_string());
        assert_eq!(found[0].conversation_id, c.id());
        assert_eq!(
            found[0].owner,
            ImportConflictOwner::Conversation(original.id())
        );
        assert_eq!(find(&storage, &c).await, None);

        // Another business is a conflict too, naming the business.
        let elsewhere = conversation_of(id()).message(taken).build();
        let found = conflicts(storage.importer.import(batches_of(vec![elsewhere])).await);
        assert_eq!(found[0].owner, ImportConflictOwner::Business(business));
        assert_eq!(find(&storage, &original).await, Some(original));
    }

    pub async fn attachment_of_another_message_conflicts(db: &TestDatabase) {
        let storage = db.storage();
        let business = id();
        let original = conversation(business);
        import(&storage, vec![original.clone()]).await;
        let taken = original
            .messages()
            .iter()
            .flat_map(|m| m.attachments())
            .next()
            .unwrap()
            .clone();
        let c = conversation_of(business)
            .message(
                message_of(ts("2024-03-05T00:00:00Z"), "mine now")
                    .attachment(taken.clone())
                    .build(),
            )
            .build();
        let found = conflicts(storage.importer.import(batches_of(vec![c.clone()])).await);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].entity, ImportedEntity::Attachment);
        assert_eq!(found[0].id, taken.id().to_string());
        assert_eq!(
            found[0].owner,
            ImportConflictOwner::Conversation(original.id())
        );
        assert_eq!(find(&storage, &c).await, None);
    }

    pub async fn all_conflicts_are_reported_and_nothing_is_written(db: &TestDatabase) {
        let storage = db.storage();
        let (first, second): (BusinessId, BusinessId) = (id(), id());
        let original = conversation(first);
        import(&storage, vec![original.clone()]).await;
        // One conversation of the other business reusing every kind of id.
        let messages = original.messages().to_vec();
        let attachment_ids = messages.iter().flat_map(|m| m.attachments()).count();
        let thief = ConversationBuilder::new(second)
            .id(original.id())
            .customer(
                CustomerBuilder::new(second)
                    .id(original.customer_id().unwrap())
                    .created_at(ts("2024-01-01T00:00:00Z"))
                    .build(),
            )
            .channel_type("api")
            .created_at(original.created_at())
            .updated_at(original.updated_at())
            .messages(messages)
            .build();
        let found = conflicts(storage.importer.import(batches_of(vec![thief])).await);
        assert_eq!(
            found.len(),
            1 + 1 + original.messages().len() + attachment_ids
        );
        assert!(
            found
                .iter()
                .all(|c| c.owner == ImportConflictOwner::Business(first))
        );
        assert_eq!(found[0].entity, ImportedEntity::Conversation);
        assert_eq!(found[1].entity, ImportedEntity::Customer);
        let other: BusinessId = second;
        assert_eq!(
            storage
                .repository
                .find_conversation(other, original.id())
                .await
                .unwrap(),
            None
        );
        assert_eq!(find(&storage, &original).await, Some(original));
    }

    pub async fn conflict_in_a_later_batch_rolls_back_earlier_ones(db: &TestDatabase) {
        let storage = db.storage();
        let business = id();
        let original = conversation(business);
        import(&storage, vec![original.clone()]).await;
        let fine = conversation(business);
        let thief = conversation_of(business)
            .message(original.messages()[0].clone())
            .build();
        let result = storage
            .importer
            .import(batches(vec![Ok(vec![fine.clone()]), Ok(vec![thief])]))
            .await;
        assert_eq!(conflicts(result).len(), 1);
        assert_eq!(find(&storage, &fine).await, None);
    }

    pub async fn aborted_source_writes_nothing(db: &TestDatabase) {
        let storage = db.storage();
        let business = id();
        let before = conversation(business);
        import(&storage, vec![before.clone()]).await;
        // A first batch (new conversation + a replacement of an existing one), then
        // the source gives up.
        let fresh = conversation(business);
        let replacement = replaced(&before, None, vec![]);
        let result = storage
            .importer
            .import(batches(vec![
                Ok(vec![fresh.clone(), replacement]),
                Err(SourceAborted("bad value at $[3].status".into())),
                Ok(vec![conversation(business)]),
            ]))
            .await;
        assert!(matches!(result, Err(ImportError::Aborted(_))), "{result:?}");
        assert_eq!(find(&storage, &fresh).await, None);
        assert_eq!(find(&storage, &before).await, Some(before));
    }

    pub async fn ping_answers(db: &TestDatabase) {
        db.storage().repository.ping().await.expect("ping");
    }

    pub async fn migrations_go_down_and_up_again(db: &TestDatabase) {
        let settings = db.settings();
        assert_eq!(migrate(&settings).await.unwrap(), Vec::<String>::new());
        revert_all(&settings).await.unwrap();
        let storage = db.storage();
        assert!(
            storage
                .repository
                .find_conversation(id(), id())
                .await
                .is_err()
        );
        let applied = migrate(&settings).await.unwrap();
        assert!(!applied.is_empty());
        let c = conversation(id());
        import(&storage, vec![c.clone()]).await;
        assert_eq!(find(&storage, &c).await, Some(c));
    }
}
