//! The inbox's conformance suite: `list_conversations` against every adapter. Filters
//! alone and combined, both orders, key-based paging (each item once, in order, even
//! while items move), the summaries (`message_count`, `last_message`) against the full
//! read after every kind of write and import, and the tenant boundary. PostgreSQL only:
//! the page statement's plan is an index range scan at any depth, with the attachments
//! of each listed latest message read in their order from an index, and its generic
//! plan (the one the service runs) looks each listed row's parts up by key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};

use pingback_application::{Written, batches_of};
use pingback_domain::testing::ConversationBuilder;
use pingback_domain::{
    AgentId, AssigneeFilter, Attachment, AttachmentDraft, AttachmentId, BusinessId, ChannelType,
    Conversation, ConversationDraft, ConversationId, ConversationPatch, ConversationSummary,
    Customer, CustomerChoice, CustomerDraft, CustomerId, InboxFilter, InboxOrder, InboxPage,
    InboxPosition, InboxQuery, Message, MessageDraft, MessageId, MessageIds, NewConversationIds,
    SenderType, Status, Timestamp,
};
use pingback_persistence::Storage;
use pingback_persistence::testing::TestDatabase;
use pingback_persistence::testing::fixtures::{
    attachment, bare_customer, customer, id, message, message_of, ts,
};

macro_rules! inbox_conformance {
    ($adapter:ident, $database:expr) => {
        mod $adapter {
            use super::*;

            inbox_conformance!(@cases $database,
                every_filter_alone_and_combined_in_both_orders,
                paging_a_thousand_returns_each_once_in_order,
                an_item_updated_while_paging_is_never_returned_twice,
                summaries_agree_with_the_full_read_after_every_write,
                summaries_agree_after_import_and_reimport,
                another_business_never_appears,
                limit_is_honoured_and_has_more_is_exact,
                each_item_has_its_own_latest_attachments_and_every_page_the_last_event_id,
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

inbox_conformance!(postgres, TestDatabase::postgres());
inbox_conformance!(sqlite, TestDatabase::sqlite());

// ---------------------------------------------------------------------------------
// Helpers

const BASE: &str = "2024-05-01T00:00:00Z";

fn at_second(seconds: i64) -> Timestamp {
    ts(BASE).plus_micros(seconds * 1_000_000)
}

fn channel(name: &str) -> ChannelType {
    ChannelType::new(name).unwrap()
}

fn agent(n: u128) -> AgentId {
    AgentId::from_uuid(uuid::Uuid::from_u128(
        0xa9e0_0000_0000_4000_8000_0000_0000_0000 | n,
    ))
}

fn query(filter: InboxFilter, order: InboxOrder, limit: u16) -> InboxQuery {
    InboxQuery {
        filter,
        order,
        after: None,
        limit,
    }
}

/// A conversation to import, created on 2024-01-01 and last updated at `updated_at`;
/// open on `widget`, without customer, assignee, channel id, first response or
/// messages until the caller sets what its listing is about.
fn listed(business: BusinessId, updated_at: Timestamp) -> ConversationBuilder {
    ConversationBuilder::new(business)
        .id(id())
        .created_at(ts("2024-01-01T00:00:00Z"))
        .updated_at(updated_at)
}

async fn import(storage: &Storage, conversations: Vec<Conversation>) {
    storage
        .importer
        .import(batches_of(conversations))
        .await
        .expect("import");
}

async fn list(storage: &Storage, business: BusinessId, query: InboxQuery) -> InboxPage {
    storage
        .repository
        .list_conversations(business, query)
        .await
        .unwrap_or_else(|e| panic!("list_conversations: {e}"))
}

/// Every page, following `InboxPage::next()`; checks each page's size and `has_more`.
async fn all_pages(
    storage: &Storage,
    business: BusinessId,
    filter: &InboxFilter,
    order: InboxOrder,
    limit: u16,
) -> Vec<ConversationSummary> {
    let mut items = Vec::new();
    let mut after = None;
    for _ in 0..10_000 {
        let page = list(
            storage,
            business,
            InboxQuery {
                filter: filter.clone(),
                order,
                after,
                limit,
            },
        )
        .await;
        assert!(
            page.items.len() <= usize::from(limit),
            "a page of {} items for limit {limit}",
            page.items.len()
        );
        if page.has_more {
            assert_eq!(
                page.items.len(),
                usize::from(limit),
                "a page that is not the last is full"
            );
        }
        let next = page.next();
        assert_eq!(next.is_some(), page.has_more);
        items.extend(page.items);
        match next {
            Some(position) => after = Some(position),
            None => return items,
        }
    }
    panic!("paging did not end after 10,000 pages");
}

fn ids(items: &[ConversationSummary]) -> Vec<ConversationId> {
    items.iter().map(|s| s.conversation.id()).collect()
}

fn key(c: &Conversation) -> (Timestamp, ConversationId) {
    (c.updated_at(), c.id())
}

/// The expected listing: `conversations` matching `filter`, in `order`.
fn expected(
    conversations: &[Conversation],
    filter: &InboxFilter,
    order: InboxOrder,
) -> Vec<ConversationId> {
    let mut matching: Vec<&Conversation> = conversations
        .iter()
        .filter(|c| matches(c, filter))
        .collect();
    matching.sort_by_key(|c| key(c));
    if order == InboxOrder::NewestFirst {
        matching.reverse();
    }
    matching.into_iter().map(Conversation::id).collect()
}

fn matches(c: &Conversation, filter: &InboxFilter) -> bool {
    (filter.statuses.is_empty() || filter.statuses.contains(&c.status()))
        && match filter.assignee {
            None => true,
            Some(AssigneeFilter::Unassigned) => c.assignee_id().is_none(),
            Some(AssigneeFilter::Agent(a)) => c.assignee_id() == Some(a),
        }
        && filter
            .customer_id
            .is_none_or(|id| c.customer_id() == Some(id))
        && filter
            .channel_type
            .as_ref()
            .is_none_or(|t| c.channel_type() == t)
        && filter.updated_after.is_none_or(|t| c.updated_at() > t)
        && filter.updated_before.is_none_or(|t| c.updated_at() < t)
}

/// The summary the inbox must show for a conversation read in full.
fn summary_of(full: &Conversation) -> ConversationSummary {
    let conversation = ConversationBuilder::from(full).messages([]).build();
    ConversationSummary {
        conversation,
        message_count: full.messages().len() as u64,
        last_message: full.messages().last().cloned(),
    }
}

/// The listed summary of `id` equals the one derived from `find_conversation`, field
/// by field (so a failure names what disagrees).
async fn assert_summary_agrees(
    storage: &Storage,
    business: BusinessId,
    id: ConversationId,
    step: &str,
) {
    let full = storage
        .repository
        .find_conversation(business, id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{step}: conversation not found"));
    let listed = all_pages(
        storage,
        business,
        &InboxFilter::default(),
        InboxOrder::NewestFirst,
        100,
    )
    .await;
    let found: Vec<&ConversationSummary> = listed
        .iter()
        .filter(|s| s.conversation.id() == id)
        .collect();
    assert_eq!(found.len(), 1, "{step}: listed {} times", found.len());
    let listed = found[0];
    let want = summary_of(&full);
    assert_eq!(
        listed.message_count, want.message_count,
        "{step}: message_count"
    );
    assert_eq!(
        listed.last_message, want.last_message,
        "{step}: last_message"
    );
    if let (Some(got), Some(want)) = (&listed.last_message, &want.last_message) {
        let names = |m: &Message| -> Vec<(AttachmentId, String)> {
            m.attachments()
                .iter()
                .map(|a| (a.id(), a.file_name().as_str().to_owned()))
                .collect()
        };
        assert_eq!(names(got), names(want), "{step}: attachments in order");
    }
    assert!(
        listed.conversation.messages().is_empty(),
        "{step}: a summary has no history"
    );
    assert_eq!(
        listed.conversation, want.conversation,
        "{step}: conversation"
    );
    assert_eq!(listed, &want, "{step}: summary");
}

// Writes.

fn message_ids(attachments: usize) -> MessageIds {
    let mut ids: Vec<AttachmentId> = (0..attachments)
        .map(|_| AttachmentId::from_uuid(uuid::Uuid::now_v7()))
        .collect();
    // Descending ids: the attachments' order must be their position, not their id.
    ids.sort_unstable_by(|a, b| b.cmp(a));
    MessageIds {
        message: MessageId::from_uuid(uuid::Uuid::now_v7()),
        attachments: ids,
    }
}

fn attachment_draft(name: &str) -> AttachmentDraft {
    AttachmentDraft::new(
        name.into(),
        "image/png".into(),
        123,
        format!("https://files.example/{name}"),
    )
    .unwrap()
}

fn draft_message(sender: SenderType, content: &str, attachments: &[&str]) -> MessageDraft {
    let sender_id = (sender == SenderType::Agent).then(id);
    MessageDraft::new(
        sender,
        sender_id,
        content.to_owned(),
        attachments.iter().map(|n| attachment_draft(n)).collect(),
    )
    .unwrap()
}

async fn create(
    storage: &Storage,
    business: BusinessId,
    message: Option<MessageDraft>,
    now: Timestamp,
) -> Conversation {
    let attachments = message.as_ref().map_or(0, |m| m.attachment_count());
    let draft = ConversationDraft {
        channel_type: channel("email"),
        channel_id: None,
        assignee_id: None,
        status: Status::Open,
        customer: CustomerChoice::New(
            CustomerDraft::new(Some("Ann".into()), None, None, None).unwrap(),
        ),
        message,
    };
    let ids = NewConversationIds {
        conversation: ConversationId::from_uuid(uuid::Uuid::now_v7()),
        customer: CustomerId::from_uuid(uuid::Uuid::now_v7()),
        message: message_ids(attachments),
    };
    match storage
        .writer
        .create_conversation(business, draft, ids, now, None)
        .await
        .unwrap()
    {
        Written::Done(c) => c,
        Written::Replayed(_) => panic!("no key, no replay"),
    }
}

async fn append(
    storage: &Storage,
    business: BusinessId,
    conversation: ConversationId,
    message: MessageDraft,
    now: Timestamp,
) {
    let ids = message_ids(message.attachment_count());
    match storage
        .writer
        .append_message(business, conversation, message, ids, now, None)
        .await
        .unwrap()
    {
        Written::Done(_) => {}
        Written::Replayed(_) => panic!("no key, no replay"),
    }
}

async fn patch(
    storage: &Storage,
    business: BusinessId,
    conversation: ConversationId,
    patch: ConversationPatch,
    now: Timestamp,
) {
    storage
        .writer
        .update_conversation(business, conversation, patch, None, now)
        .await
        .unwrap();
}

mod cases {
    use super::*;

    /// 48 conversations of one business, every combination of a few values, some
    /// sharing `updated_at`; the same attributes in another business (same agents,
    /// same channels) interleaved in time.
    async fn varied(storage: &Storage, business: BusinessId) -> (Vec<Conversation>, [Customer; 2]) {
        let customers = [customer(business), bare_customer(business)];
        let statuses = Status::ALL;
        let assignees = [None, Some(agent(1)), Some(agent(2))];
        let channels = ["email", "widget", "sms"];
        let mut ours = Vec::new();
        for i in 0..48_i64 {
            // Pairs share a timestamp (the id breaks the tie).
            let at = at_second(10 * (i / 2));
            let conversation = listed(business, at)
                .status(statuses[i as usize % 4])
                .assignee(assignees[i as usize % 3])
                .customer(match i % 5 {
                    0 | 1 => Some(customers[0].clone()),
                    2 => Some(customers[1].clone()),
                    _ => None,
                })
                .channel_type(channels[(i as usize / 2) % 3])
                .message(message(at, "hi"));
            ours.push(conversation.build());
        }
        let theirs_business: BusinessId = id();
        let their_customer = customer(theirs_business);
        let theirs: Vec<Conversation> = (0..24_i64)
            .map(|i| {
                listed(theirs_business, at_second(20 * i + 5))
                    .status(statuses[i as usize % 4])
                    .assignee(assignees[i as usize % 3])
                    .customer(their_customer.clone())
                    .channel_type(channels[i as usize % 3])
                    .build()
            })
            .collect();
        let mut all = ours.clone();
        all.extend(theirs);
        import(storage, all).await;
        (ours, customers)
    }

    pub async fn every_filter_alone_and_combined_in_both_orders(db: &TestDatabase) {
        let storage = db.storage();
        let business: BusinessId = id();
        let (ours, [first, second]) = varied(&storage, business).await;
        let filters: Vec<(&str, InboxFilter)> = vec![
            ("none", InboxFilter::default()),
            (
                "status open",
                InboxFilter {
                    statuses: vec![Status::Open],
                    ..InboxFilter::default()
                },
            ),
            (
                "status pending,resolved",
                InboxFilter {
                    statuses: vec![Status::Pending, Status::Resolved],
                    ..InboxFilter::default()
                },
            ),
            (
                "every status",
                InboxFilter {
                    statuses: Status::ALL.to_vec(),
                    ..InboxFilter::default()
                },
            ),
            (
                "unassigned",
                InboxFilter {
                    assignee: Some(AssigneeFilter::Unassigned),
                    ..InboxFilter::default()
                },
            ),
            (
                "agent 1",
                InboxFilter {
                    assignee: Some(AssigneeFilter::Agent(agent(1))),
                    ..InboxFilter::default()
                },
            ),
            (
                "an agent with nothing",
                InboxFilter {
                    assignee: Some(AssigneeFilter::Agent(agent(9))),
                    ..InboxFilter::default()
                },
            ),
            (
                "customer with every field",
                InboxFilter {
                    customer_id: Some(first.id()),
                    ..InboxFilter::default()
                },
            ),
            (
                "bare customer",
                InboxFilter {
                    customer_id: Some(second.id()),
                    ..InboxFilter::default()
                },
            ),
            (
                "channel sms",
                InboxFilter {
                    channel_type: Some(channel("sms")),
                    ..InboxFilter::default()
                },
            ),
            (
                "a channel nobody uses",
                InboxFilter {
                    channel_type: Some(channel("fax")),
                    ..InboxFilter::default()
                },
            ),
            (
                // Strict: a conversation at exactly this instant is excluded.
                "updated after (strict)",
                InboxFilter {
                    updated_after: Some(at_second(100)),
                    ..InboxFilter::default()
                },
            ),
            (
                "updated before (strict)",
                InboxFilter {
                    updated_before: Some(at_second(100)),
                    ..InboxFilter::default()
                },
            ),
            (
                "a window",
                InboxFilter {
                    updated_after: Some(at_second(50)),
                    updated_before: Some(at_second(180)),
                    ..InboxFilter::default()
                },
            ),
            (
                "an empty window",
                InboxFilter {
                    updated_after: Some(at_second(100)),
                    updated_before: Some(at_second(100)),
                    ..InboxFilter::default()
                },
            ),
            (
                "open or pending, agent 1, email",
                InboxFilter {
                    statuses: vec![Status::Open, Status::Pending],
                    assignee: Some(AssigneeFilter::Agent(agent(1))),
                    channel_type: Some(channel("email")),
                    ..InboxFilter::default()
                },
            ),
            (
                "unassigned, not closed, customer, after",
                InboxFilter {
                    statuses: vec![Status::Open, Status::Pending, Status::Resolved],
                    assignee: Some(AssigneeFilter::Unassigned),
                    customer_id: Some(first.id()),
                    updated_after: Some(at_second(20)),
                    ..InboxFilter::default()
                },
            ),
            (
                "everything at once",
                InboxFilter {
                    statuses: vec![Status::Closed, Status::Open],
                    assignee: Some(AssigneeFilter::Agent(agent(2))),
                    customer_id: Some(first.id()),
                    channel_type: Some(channel("widget")),
                    updated_after: Some(at_second(0)),
                    updated_before: Some(at_second(230)),
                },
            ),
        ];
        let mut non_empty = 0;
        for (name, filter) in &filters {
            for order in [InboxOrder::NewestFirst, InboxOrder::OldestFirst] {
                let want = expected(&ours, filter, order);
                // In one page, and in pages of 3 (the cursor with the filter).
                let one = list(&storage, business, query(filter.clone(), order, 100)).await;
                assert!(!one.has_more, "{name} {order:?}: one page holds all");
                assert_eq!(ids(&one.items), want, "{name} {order:?}: one page");
                let paged = all_pages(&storage, business, filter, order, 3).await;
                assert_eq!(ids(&paged), want, "{name} {order:?}: pages of 3");
                for item in &one.items {
                    assert_eq!(item.conversation.business_id(), business);
                    assert!(matches(&item.conversation, filter), "{name}: {item:?}");
                }
            }
            non_empty += usize::from(!expected(&ours, filter, InboxOrder::NewestFirst).is_empty());
        }
        assert!(
            non_empty >= filters.len() - 3,
            "the filters select something"
        );
        // The items are whole: listed summaries equal what the full read derives.
        let listed = list(
            &storage,
            business,
            query(InboxFilter::default(), InboxOrder::NewestFirst, 100),
        )
        .await;
        let by_id: HashMap<ConversationId, &Conversation> =
            ours.iter().map(|c| (c.id(), c)).collect();
        for item in &listed.items {
            assert_eq!(item, &summary_of(by_id[&item.conversation.id()]));
        }
    }

    /// 1,000 conversations imported in one batch: the first 200 in pairs sharing
    /// `updated_at`, the rest distinct; pages of 7 (the last one short) and of 8 (the
    /// last one full, and still the last).
    pub async fn paging_a_thousand_returns_each_once_in_order(db: &TestDatabase) {
        let storage = db.storage();
        let business: BusinessId = id();
        let conversations: Vec<Conversation> = (0..1_000_i64)
            .map(|i| {
                let second = if i < 200 { i / 2 } else { i };
                listed(business, at_second(second))
                    .message(message(at_second(second), "m"))
                    .build()
            })
            .collect();
        import(&storage, conversations.clone()).await;
        let ties = conversations
            .iter()
            .map(Conversation::updated_at)
            .collect::<HashSet<_>>()
            .len();
        assert_eq!(ties, 900, "100 pairs share an instant");
        for order in [InboxOrder::NewestFirst, InboxOrder::OldestFirst] {
            let want = expected(&conversations, &InboxFilter::default(), order);
            for limit in [7, 8] {
                let mut seen = HashSet::new();
                let mut got = Vec::new();
                let mut after: Option<InboxPosition> = None;
                let mut pages = 0;
                loop {
                    let page = list(
                        &storage,
                        business,
                        InboxQuery {
                            filter: InboxFilter::default(),
                            order,
                            after,
                            limit,
                        },
                    )
                    .await;
                    pages += 1;
                    for item in &page.items {
                        assert!(
                            seen.insert(item.conversation.id()),
                            "{order:?} limit {limit}: {} returned twice (page {pages})",
                            item.conversation.id()
                        );
                    }
                    got.extend(ids(&page.items));
                    match page.next() {
                        Some(next) => {
                            assert_eq!(page.items.len(), usize::from(limit));
                            after = Some(next);
                        }
                        None => {
                            assert!(!page.has_more);
                            assert_eq!(
                                page.items.len(),
                                if limit == 7 { 1_000 % 7 } else { 8 },
                                "{order:?} limit {limit}: the last page"
                            );
                            break;
                        }
                    }
                }
                assert_eq!(pages, 1_000_usize.div_ceil(usize::from(limit)));
                assert_eq!(got.len(), 1_000);
                assert_eq!(
                    got, want,
                    "{order:?} limit {limit}: every item once, in order"
                );
            }
        }
    }

    /// Pages of 7 newest first while, between pages, items already returned and items
    /// not reached yet are written to (they move to the top): nothing comes twice, and
    /// everything never written to comes once.
    pub async fn an_item_updated_while_paging_is_never_returned_twice(db: &TestDatabase) {
        let storage = db.storage();
        let business: BusinessId = id();
        let conversations: Vec<Conversation> = (0..60_i64)
            .map(|i| {
                // A few ties here too.
                listed(business, at_second(i - i % 2))
                    .message(message(at_second(0), "m"))
                    .build()
            })
            .collect();
        import(&storage, conversations.clone()).await;
        let order = expected(
            &conversations,
            &InboxFilter::default(),
            InboxOrder::NewestFirst,
        );
        let mut written: HashSet<ConversationId> = HashSet::new();
        let mut seen: HashSet<ConversationId> = HashSet::new();
        let mut after = None;
        let mut clock = ts("2025-01-01T00:00:00Z");
        let mut step = 0;
        loop {
            let page = list(
                &storage,
                business,
                InboxQuery {
                    filter: InboxFilter::default(),
                    order: InboxOrder::NewestFirst,
                    after,
                    limit: 7,
                },
            )
            .await;
            for item in &page.items {
                assert!(
                    seen.insert(item.conversation.id()),
                    "{} returned twice",
                    item.conversation.id()
                );
            }
            let Some(next) = page.next() else { break };
            after = Some(next);
            // Already returned: a message to the first, a patch to the last.
            clock = clock.plus_micros(1_000_000);
            let first = page.items[0].conversation.id();
            append(
                &storage,
                business,
                first,
                draft_message(SenderType::Agent, "seen", &[]),
                clock,
            )
            .await;
            written.insert(first);
            clock = clock.plus_micros(1_000_000);
            let last = page.items.last().unwrap().conversation.id();
            let status = if step % 2 == 0 {
                Status::Pending
            } else {
                Status::Resolved
            };
            patch(
                &storage,
                business,
                last,
                ConversationPatch {
                    status: Some(status),
                    assignee_id: Some(Some(agent(step))),
                },
                clock,
            )
            .await;
            written.insert(last);
            // Not reached yet: it moves above the cursor (and may be missed).
            if let Some(ahead) = order
                .iter()
                .find(|id| !seen.contains(id) && !written.contains(id))
            {
                clock = clock.plus_micros(1_000_000);
                append(
                    &storage,
                    business,
                    *ahead,
                    draft_message(SenderType::Customer, "ahead", &[]),
                    clock,
                )
                .await;
                written.insert(*ahead);
            }
            step += 1;
        }
        // The writes did move the items: each written one is newer than any other.
        let now = list(
            &storage,
            business,
            query(InboxFilter::default(), InboxOrder::NewestFirst, 100),
        )
        .await;
        let top: HashSet<ConversationId> = ids(&now.items[..written.len()]).into_iter().collect();
        assert_eq!(top, written, "written conversations lead the inbox");
        for id in &order {
            if !written.contains(id) {
                assert!(
                    seen.contains(id),
                    "{id} never written to and never returned"
                );
            }
        }
    }

    /// After every kind of write, the listed summary equals the one derived from the
    /// full read.
    pub async fn summaries_agree_with_the_full_read_after_every_write(db: &TestDatabase) {
        let storage = db.storage();
        let business: BusinessId = id();
        let now = ts("2025-01-01T10:00:00Z");
        let later = |s: i64| now.plus_micros(s * 1_000_000);

        let empty = create(&storage, business, None, now).await;
        assert_summary_agrees(&storage, business, empty.id(), "create without message").await;
        let summary = list(
            &storage,
            business,
            query(InboxFilter::default(), InboxOrder::NewestFirst, 10),
        )
        .await;
        assert_eq!(summary.items[0].message_count, 0);
        assert_eq!(summary.items[0].last_message, None);

        let with = create(
            &storage,
            business,
            Some(draft_message(
                SenderType::Customer,
                "hello",
                &["one.png", "two.png"],
            )),
            later(1),
        )
        .await;
        assert_summary_agrees(&storage, business, with.id(), "create with a message").await;
        assert_summary_agrees(&storage, business, empty.id(), "the other, unchanged").await;

        append(
            &storage,
            business,
            with.id(),
            draft_message(
                SenderType::Agent,
                "three files",
                &["c.png", "a.png", "b.png"],
            ),
            later(2),
        )
        .await;
        assert_summary_agrees(&storage, business, with.id(), "append with attachments").await;

        append(
            &storage,
            business,
            empty.id(),
            draft_message(SenderType::Customer, "first", &["x.png"]),
            later(3),
        )
        .await;
        assert_summary_agrees(&storage, business, empty.id(), "first message appended").await;

        // The clock behind the last message: the message still comes last.
        append(
            &storage,
            business,
            with.id(),
            draft_message(SenderType::Customer, "late clock", &[]),
            now,
        )
        .await;
        assert_summary_agrees(&storage, business, with.id(), "append, clock behind").await;

        patch(
            &storage,
            business,
            with.id(),
            ConversationPatch {
                status: Some(Status::Resolved),
                assignee_id: Some(Some(agent(1))),
            },
            later(4),
        )
        .await;
        assert_summary_agrees(&storage, business, with.id(), "patch status and assignee").await;

        patch(
            &storage,
            business,
            with.id(),
            ConversationPatch {
                status: None,
                assignee_id: Some(None),
            },
            later(5),
        )
        .await;
        assert_summary_agrees(&storage, business, with.id(), "patch unassign").await;

        // A customer message reopens it: the status and the summary change together.
        append(
            &storage,
            business,
            with.id(),
            draft_message(SenderType::Customer, "still there?", &["last.png", "z.png"]),
            later(6),
        )
        .await;
        assert_summary_agrees(&storage, business, with.id(), "append that reopens").await;

        let full = storage
            .repository
            .find_conversation(business, with.id())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(full.messages().len(), 4);
        let listed = list(
            &storage,
            business,
            query(
                InboxFilter {
                    statuses: vec![Status::Open],
                    ..InboxFilter::default()
                },
                InboxOrder::NewestFirst,
                1,
            ),
        )
        .await;
        let last = listed.items[0].last_message.as_ref().unwrap();
        assert_eq!(last.content().as_str(), "still there?");
        let names: Vec<&str> = last
            .attachments()
            .iter()
            .map(|a| a.file_name().as_str())
            .collect();
        assert_eq!(names, ["last.png", "z.png"]);

        // Closed.
        patch(
            &storage,
            business,
            empty.id(),
            ConversationPatch {
                status: Some(Status::Closed),
                assignee_id: None,
            },
            later(7),
        )
        .await;
        assert_summary_agrees(&storage, business, empty.id(), "patch closed").await;
    }

    /// After imports, a re-import with fewer messages (another last message), a
    /// re-import with none, and writes on top of an imported conversation.
    pub async fn summaries_agree_after_import_and_reimport(db: &TestDatabase) {
        let storage = db.storage();
        let business: BusinessId = id();
        let same = ts("2024-03-01T09:00:30Z");
        // The last two share an instant: the history order (then the id) decides.
        let tie_low = MessageId::from_uuid(uuid::Uuid::from_u128(1));
        let tie_high = MessageId::from_uuid(uuid::Uuid::from_u128(u128::MAX - 1));
        let attachments: Vec<Attachment> = vec![
            attachment("b.pdf"),
            attachment("a.pdf"),
            attachment("c.pdf"),
        ];
        let messages = vec![
            message(ts("2024-03-01T09:00:00Z"), "first"),
            message_of(ts("2024-03-01T09:00:10Z"), "second")
                .sender(SenderType::Agent, Some(id()))
                .build(),
            message_of(same, "high id, last")
                .id(tie_high)
                .attachments(attachments.clone())
                .build(),
            message_of(same, "low id")
                .id(tie_low)
                .attachment(attachment("low.pdf"))
                .build(),
        ];
        let owner = customer(business);
        let imported = listed(business, same)
            .status(Status::Pending)
            .assignee(agent(3))
            .customer(owner.clone())
            .channel_type("whatsapp")
            .messages(messages.clone())
            .build();
        let without = listed(business, ts("2024-02-01T00:00:00Z")).build();
        import(&storage, vec![imported.clone(), without.clone()]).await;
        assert_summary_agrees(&storage, business, imported.id(), "import").await;
        assert_summary_agrees(&storage, business, without.id(), "import without messages").await;
        let listed = all_pages(
            &storage,
            business,
            &InboxFilter::default(),
            InboxOrder::NewestFirst,
            10,
        )
        .await;
        let item = listed
            .iter()
            .find(|s| s.conversation.id() == imported.id())
            .unwrap();
        assert_eq!(item.message_count, 4);
        assert_eq!(item.last_message.as_ref().map(Message::id), Some(tie_high));
        assert_eq!(
            item.last_message.as_ref().unwrap().attachments(),
            attachments.as_slice(),
            "attachments in their order"
        );

        // The same import again: nothing changes.
        import(&storage, vec![imported.clone()]).await;
        assert_summary_agrees(&storage, business, imported.id(), "identical re-import").await;

        // Re-imported with fewer messages: the count and the last one follow.
        let fewer = ConversationBuilder::from(&imported)
            .status(Status::Open)
            .updated_at(ts("2024-03-01T09:00:10Z"))
            .messages(messages[..2].to_vec())
            .build();
        import(&storage, vec![fewer.clone()]).await;
        assert_summary_agrees(&storage, business, imported.id(), "re-import with fewer").await;
        let item = list(
            &storage,
            business,
            query(
                InboxFilter {
                    customer_id: Some(owner.id()),
                    ..InboxFilter::default()
                },
                InboxOrder::NewestFirst,
                5,
            ),
        )
        .await;
        assert_eq!(item.items.len(), 1);
        assert_eq!(item.items[0].message_count, 2);
        assert_eq!(
            item.items[0].last_message.as_ref().map(Message::id),
            Some(messages[1].id())
        );

        // Re-imported with another message set, the last one with other attachments.
        let replaced_last = message_of(ts("2024-03-02T00:00:00Z"), "new last")
            .attachment(attachment("z.pdf"))
            .attachment(attachment("y.pdf"))
            .build();
        let replaced = ConversationBuilder::from(&fewer)
            .messages([messages[0].clone(), replaced_last.clone()])
            .updated_at(ts("2024-03-02T00:00:00Z"))
            .build();
        import(&storage, vec![replaced]).await;
        assert_summary_agrees(&storage, business, imported.id(), "re-import, new last").await;

        // Re-imported with no message at all.
        let emptied = ConversationBuilder::from(&fewer).messages([]).build();
        import(&storage, vec![emptied]).await;
        assert_summary_agrees(&storage, business, imported.id(), "re-import, no messages").await;

        // Writes after a re-import count from what the import left.
        append(
            &storage,
            business,
            imported.id(),
            draft_message(SenderType::Customer, "after import", &["p.png"]),
            ts("2025-01-01T00:00:00Z"),
        )
        .await;
        assert_summary_agrees(&storage, business, imported.id(), "append after re-import").await;
        append(
            &storage,
            business,
            without.id(),
            draft_message(SenderType::Agent, "to the empty one", &[]),
            ts("2025-01-01T00:00:01Z"),
        )
        .await;
        assert_summary_agrees(&storage, business, without.id(), "append to imported empty").await;
        // And a re-import over written messages.
        import(&storage, vec![imported.clone()]).await;
        assert_summary_agrees(&storage, business, imported.id(), "re-import over writes").await;
    }

    pub async fn another_business_never_appears(db: &TestDatabase) {
        let storage = db.storage();
        let ours: BusinessId = id();
        let theirs: BusinessId = id();
        let (mine, _) = varied(&storage, ours).await;
        let (other, [their_customer, _]) = varied(&storage, theirs).await;
        // Also written ones, newer than everything.
        let written = create(
            &storage,
            theirs,
            Some(draft_message(SenderType::Customer, "x", &[])),
            ts("2030-01-01T00:00:00Z"),
        )
        .await;
        let mine_ids: HashSet<ConversationId> = mine.iter().map(Conversation::id).collect();
        for filter in [
            InboxFilter::default(),
            InboxFilter {
                statuses: vec![Status::Open],
                ..InboxFilter::default()
            },
            InboxFilter {
                assignee: Some(AssigneeFilter::Agent(agent(1))),
                ..InboxFilter::default()
            },
            InboxFilter {
                assignee: Some(AssigneeFilter::Unassigned),
                ..InboxFilter::default()
            },
            InboxFilter {
                channel_type: Some(channel("email")),
                ..InboxFilter::default()
            },
            InboxFilter {
                updated_after: Some(at_second(-1)),
                ..InboxFilter::default()
            },
        ] {
            for order in [InboxOrder::NewestFirst, InboxOrder::OldestFirst] {
                let got = all_pages(&storage, ours, &filter, order, 4).await;
                assert_eq!(ids(&got), expected(&mine, &filter, order));
                for item in &got {
                    assert_eq!(item.conversation.business_id(), ours);
                    assert!(mine_ids.contains(&item.conversation.id()));
                }
            }
        }
        // Their customer, asked by us: nothing.
        let page = list(
            &storage,
            ours,
            query(
                InboxFilter {
                    customer_id: Some(their_customer.id()),
                    ..InboxFilter::default()
                },
                InboxOrder::NewestFirst,
                100,
            ),
        )
        .await;
        assert!(page.items.is_empty() && !page.has_more, "{page:?}");
        // A position taken from their listing only positions our own list.
        let theirs_page = list(
            &storage,
            theirs,
            query(InboxFilter::default(), InboxOrder::NewestFirst, 1),
        )
        .await;
        assert_eq!(theirs_page.items[0].conversation.id(), written.id());
        let from_theirs = list(
            &storage,
            ours,
            InboxQuery {
                after: theirs_page.next(),
                ..query(InboxFilter::default(), InboxOrder::NewestFirst, 100)
            },
        )
        .await;
        assert_eq!(
            ids(&from_theirs.items),
            expected(&mine, &InboxFilter::default(), InboxOrder::NewestFirst)
        );
        // A business with nothing lists nothing.
        let nobody = list(
            &storage,
            id(),
            query(InboxFilter::default(), InboxOrder::NewestFirst, 100),
        )
        .await;
        assert!(nobody.items.is_empty() && !nobody.has_more && nobody.next().is_none());
        assert_eq!(other.len(), 48);
    }

    pub async fn limit_is_honoured_and_has_more_is_exact(db: &TestDatabase) {
        let storage = db.storage();
        let business: BusinessId = id();
        let conversations: Vec<Conversation> = (0..10_i64)
            .map(|i| listed(business, at_second(i)).build())
            .collect();
        import(&storage, conversations.clone()).await;
        for order in [InboxOrder::NewestFirst, InboxOrder::OldestFirst] {
            let want = expected(&conversations, &InboxFilter::default(), order);
            for (limit, len, has_more) in [
                (1, 1, true),
                (9, 9, true),
                (10, 10, false),
                (11, 10, false),
                (InboxQuery::MAX_LIMIT, 10, false),
            ] {
                let page = list(
                    &storage,
                    business,
                    query(InboxFilter::default(), order, limit),
                )
                .await;
                assert_eq!(page.items.len(), len, "{order:?} limit {limit}");
                assert_eq!(page.has_more, has_more, "{order:?} limit {limit}");
                assert_eq!(ids(&page.items), want[..len], "{order:?} limit {limit}");
            }
            // The last page: exactly the rest, and no more.
            for limit in [3_u16, 5, 9] {
                let first = list(
                    &storage,
                    business,
                    query(InboxFilter::default(), order, limit),
                )
                .await;
                let rest = list(
                    &storage,
                    business,
                    InboxQuery {
                        after: first.next(),
                        ..query(InboxFilter::default(), order, 100)
                    },
                )
                .await;
                assert!(!rest.has_more);
                assert_eq!(rest.next(), None);
                assert_eq!(ids(&rest.items), want[usize::from(limit)..]);
            }
            // After the very last item: an empty last page.
            let last = conversations
                .iter()
                .find(|c| c.id() == *want.last().unwrap())
                .unwrap();
            let beyond = list(
                &storage,
                business,
                InboxQuery {
                    after: Some(InboxPosition {
                        updated_at: last.updated_at(),
                        id: last.id(),
                    }),
                    ..query(InboxFilter::default(), order, 5)
                },
            )
            .await;
            assert!(beyond.items.is_empty() && !beyond.has_more, "{order:?}");
        }
    }

    /// One page lists several latest messages with attachments: each item gets its own
    /// latest message's, in their order (not an older message's, not its neighbour's),
    /// whatever the page size and order, the look-ahead row's included; a conversation
    /// without messages and one whose latest message has none get none. Every page,
    /// an empty one too, carries the business's last event id.
    pub async fn each_item_has_its_own_latest_attachments_and_every_page_the_last_event_id(
        db: &TestDatabase,
    ) {
        const ODD: &str = "ä,{b}\"c\"\\d(é).png";
        let storage = db.storage();
        let business: BusinessId = id();
        let at = |s: i64| ts("2025-03-01T10:00:00Z").plus_micros(s * 1_000_000);
        let customer = |content: &str, files: &[&str]| {
            Some(draft_message(SenderType::Customer, content, files))
        };
        let mut conversations = vec![create(&storage, business, None, at(0)).await];
        conversations.push(create(&storage, business, customer("plain", &[]), at(1)).await);
        conversations.push(create(&storage, business, customer("one", &["one.pdf"]), at(2)).await);
        let three = create(&storage, business, customer("older", &["old.pdf"]), at(3)).await;
        // Its latest message has three attachments, listed in position order (their
        // ids descend: `message_ids`), not the older message's; names as arrays and
        // records would quote them.
        append(
            &storage,
            business,
            three.id(),
            draft_message(SenderType::Agent, "latest", &["c.png", ODD, "b.png"]),
            at(4),
        )
        .await;
        conversations.push(three);
        conversations.push(
            create(
                &storage,
                business,
                customer("two", &["y.pdf", "x.pdf"]),
                at(5),
            )
            .await,
        );
        // Another business's conversation, with attachments, newer than all of them.
        create(&storage, id(), customer("theirs", &["theirs.pdf"]), at(6)).await;

        let mut want = Vec::new();
        for c in &conversations {
            let full = storage
                .repository
                .find_conversation(business, c.id())
                .await
                .unwrap()
                .unwrap();
            want.push(summary_of(&full));
        }
        let files = |s: &ConversationSummary| -> Vec<String> {
            s.last_message
                .iter()
                .flat_map(|m| m.attachments())
                .map(|a| a.file_name().as_str().to_owned())
                .collect()
        };
        assert_eq!(
            want.iter().map(files).collect::<Vec<_>>(),
            [
                vec![],
                vec![],
                vec!["one.pdf".to_owned()],
                vec!["c.png".to_owned(), ODD.to_owned(), "b.png".to_owned()],
                vec!["y.pdf".to_owned(), "x.pdf".to_owned()],
            ],
            "the full reads"
        );

        let all = list(
            &storage,
            business,
            query(InboxFilter::default(), InboxOrder::NewestFirst, 100),
        )
        .await;
        let last_event_id = all.last_event_id;
        assert!(last_event_id > 0, "a business with events: {last_event_id}");
        for order in [InboxOrder::NewestFirst, InboxOrder::OldestFirst] {
            let mut want = want.clone();
            if order == InboxOrder::NewestFirst {
                want.reverse();
            }
            for limit in 1..=6_u16 {
                let mut got = Vec::new();
                let mut after = None;
                loop {
                    let page = list(
                        &storage,
                        business,
                        InboxQuery {
                            after,
                            ..query(InboxFilter::default(), order, limit)
                        },
                    )
                    .await;
                    assert!(
                        page.last_event_id >= last_event_id,
                        "{order:?} limit {limit}: last_event_id {}",
                        page.last_event_id
                    );
                    after = page.next();
                    got.extend(page.items);
                    if after.is_none() {
                        break;
                    }
                }
                assert_eq!(got, want, "{order:?} limit {limit}");
            }
        }
        // A page with nothing on it still says where the business's events are.
        let empty = list(
            &storage,
            business,
            query(
                InboxFilter {
                    channel_type: Some(channel("sms")),
                    ..InboxFilter::default()
                },
                InboxOrder::NewestFirst,
                10,
            ),
        )
        .await;
        assert!(empty.items.is_empty() && !empty.has_more);
        assert!(
            empty.last_event_id >= last_event_id,
            "an empty page's last_event_id {} (the business's: {last_event_id})",
            empty.last_event_id
        );
    }
}

// ---------------------------------------------------------------------------------
// PostgreSQL: the page statement's plan.

mod postgres_plan {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    use pingback_persistence::testing::citus;
    use pingback_persistence::testing::inbox_plan::{explain_inbox, inbox_sql};

    use super::*;

    const CONVERSATIONS: i64 = 20_000;

    fn uuid_sql(prefix: &str, expression: &str) -> String {
        format!("('{prefix}' || lpad(to_hex({expression}), 12, '0'))::uuid")
    }

    fn conversation_id(i: i64) -> ConversationId {
        let prefix = 0xc0000000_0000_4000_8000_000000000000_u128;
        ConversationId::from_uuid(uuid::Uuid::from_u128(prefix | i as u128))
    }

    fn plan_agent(n: i64) -> AgentId {
        let prefix = 0xa0000000_0000_4000_8000_000000000000_u128;
        AgentId::from_uuid(uuid::Uuid::from_u128(prefix | n as u128))
    }

    fn plan_customer(n: i64) -> CustomerId {
        let prefix = 0xcc000000_0000_4000_8000_000000000000_u128;
        CustomerId::from_uuid(uuid::Uuid::from_u128(prefix | n as u128))
    }

    /// 20,000 conversations of `business` (one message each, a tenth of them with two
    /// attachments; mostly closed or resolved, 5% open; 18 agents and 10% unassigned;
    /// 2,000 customers; 5% sms) and as many spread over 100 other businesses (5
    /// customers each: a generic plan estimates a business's customers at 25); then
    /// ANALYZE.
    async fn load(conn: &mut AsyncPgConnection, business: BusinessId) {
        let conversation = uuid_sql("c0000000-0000-4000-8000-", "i");
        let other_conversation = uuid_sql("c1000000-0000-4000-8000-", "i");
        let customer = uuid_sql("cc000000-0000-4000-8000-", "1 + i % 2000");
        let customer_row = uuid_sql("cc000000-0000-4000-8000-", "i");
        let agent = uuid_sql("a0000000-0000-4000-8000-", "i % 20");
        let message = uuid_sql("d0000000-0000-4000-8000-", "i");
        let other_message = uuid_sql("d1000000-0000-4000-8000-", "i");
        let status = "CASE WHEN i % 20 = 1 THEN 'open' WHEN i % 20 = 2 THEN 'pending' \
                      WHEN i % 5 = 3 THEN 'resolved' ELSE 'closed' END";
        let channel = "CASE WHEN i % 20 = 7 THEN 'sms' WHEN i % 3 = 0 THEN 'email' \
                       ELSE 'widget' END";
        let at = "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second'";
        let other_business = uuid_sql("b0000000-0000-4000-8000-", "i % 100");
        // 500 customers of the other businesses, 5 each: theirs belong to the same
        // business as their conversations (500 is a multiple of 100).
        let other_customer = uuid_sql("ce000000-0000-4000-8000-", "i % 500");
        let other_customer_row = uuid_sql("ce000000-0000-4000-8000-", "i");
        let attachment = uuid_sql("aa000000-0000-4000-8000-", "i * 2 + k");
        let other_attachment = uuid_sql("ab000000-0000-4000-8000-", "i * 2 + k");
        let sql = format!(
            "INSERT INTO customers (business_id, id, name, created_at)
               SELECT '{business}', {customer_row}, 'customer ' || i, timestamptz '2024-01-01'
               FROM generate_series(1, 2000) i;
             INSERT INTO customers (business_id, id, name, created_at)
               SELECT {other_business}, {other_customer_row}, 'other ' || i,
                      timestamptz '2024-01-01'
               FROM generate_series(0, 499) i;
             INSERT INTO conversations (business_id, id, customer_id, assignee_id, status,
                    channel_type, created_at, updated_at, message_count, last_message_id)
               SELECT '{business}', {conversation}, {customer},
                      CASE WHEN i % 10 = 0 THEN NULL ELSE {agent} END,
                      {status}, {channel}, {at}, {at}, 1, {message}
               FROM generate_series(1, {CONVERSATIONS}) i;
             INSERT INTO messages (business_id, id, conversation_id, sender_type, content,
                    created_at)
               SELECT '{business}', {message}, {conversation}, 'customer', 'hello', {at}
               FROM generate_series(1, {CONVERSATIONS}) i;
             INSERT INTO conversations (business_id, id, customer_id, assignee_id, status,
                    channel_type, created_at, updated_at, message_count, last_message_id)
               SELECT {other_business}, {other_conversation}, {other_customer},
                      CASE WHEN i % 10 = 0 THEN NULL ELSE {agent} END,
                      {status}, {channel}, {at}, {at}, 1, {other_message}
               FROM generate_series(1, {CONVERSATIONS}) i;
             INSERT INTO messages (business_id, id, conversation_id, sender_type, content,
                    created_at)
               SELECT {other_business}, {other_message}, {other_conversation}, 'agent',
                      'hello', {at}
               FROM generate_series(1, {CONVERSATIONS}) i;
             INSERT INTO attachments (business_id, id, conversation_id, message_id, position,
                    file_name, content_type, byte_size, url)
               SELECT '{business}', {attachment}, {conversation}, {message}, k, 'f.pdf',
                      'application/pdf', 1, 'https://files.example/f.pdf'
               FROM generate_series(1, {CONVERSATIONS}) i, generate_series(0, 1) k
               WHERE i % 10 = 4;
             INSERT INTO attachments (business_id, id, conversation_id, message_id, position,
                    file_name, content_type, byte_size, url)
               SELECT {other_business}, {other_attachment}, {other_conversation},
                      {other_message}, k, 'f.pdf', 'application/pdf', 1,
                      'https://files.example/f.pdf'
               FROM generate_series(1, {CONVERSATIONS}) i, generate_series(0, 1) k
               WHERE i % 10 = 4;
             ANALYZE;"
        );
        conn.batch_execute(&sql).await.unwrap();
    }

    /// A table's or index's name without the `_<shard id>` Citus gives its shards (a
    /// worker's plan under Citus' Custom Scan names the shards).
    fn unsharded(name: String) -> String {
        match name.rsplit_once('_') {
            Some((base, shard))
                if !shard.is_empty() && shard.bytes().all(|b| b.is_ascii_digit()) =>
            {
                base.to_owned()
            }
            _ => name,
        }
    }

    /// The nodes of a JSON plan: (node type, relation, index name, scan direction), in
    /// the order they appear. Read off the text: the plan's JSON is regular enough.
    fn nodes(plan: &str) -> Vec<[Option<String>; 4]> {
        let field = |chunk: &str, name: &str| -> Option<String> {
            let start = chunk.find(&format!("\"{name}\": \""))? + name.len() + 5;
            let rest = &chunk[start..];
            Some(rest[..rest.find('"')?].to_owned())
        };
        plan.split("\"Node Type\": ")
            .skip(1)
            .map(|chunk| {
                // Up to the next node: the fields of this one.
                let own = &format!("\"Node Type\": {chunk}");
                let own = match own[1..].find("\"Plans\"") {
                    Some(end) => &own[..end + 1],
                    None => own.as_str(),
                };
                [
                    field(own, "Node Type"),
                    field(own, "Relation Name").map(unsharded),
                    field(own, "Index Name").map(unsharded),
                    field(own, "Scan Direction"),
                ]
            })
            .collect()
    }

    /// The plan's shape: its nodes without costs, for comparing two plans.
    fn shape(plan: &str) -> Vec<String> {
        nodes(plan)
            .into_iter()
            .map(|n| {
                n.iter()
                    .map(|f| f.clone().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect()
    }

    /// Why the plan is not an index range scan of `index` over the conversations (in
    /// `order`), with no sort, and the attachments of each listed latest message read
    /// in their order from the `(business_id, message_id, position)` index; `None`
    /// when it is.
    fn refuse(plan: &str, index: &str, order: InboxOrder) -> Option<String> {
        let nodes = nodes(plan);
        let mut reasons = Vec::new();
        for [node, relation, index_name, _] in &nodes {
            let node = node.as_deref().unwrap_or_default();
            if node.contains("Sort") {
                reasons.push(format!("a {node} node"));
            }
            if relation.as_deref() == Some("conversations")
                && !matches!(node, "Index Scan" | "Index Only Scan")
            {
                reasons.push(format!(
                    "conversations read by {node} {}",
                    index_name.as_deref().unwrap_or_default()
                ));
            }
            if relation.as_deref() == Some("attachments")
                && (node != "Index Scan"
                    || index_name.as_deref()
                        != Some("attachments_business_id_message_id_position_key"))
            {
                reasons.push(format!(
                    "attachments read by {node} {}",
                    index_name.as_deref().unwrap_or_default()
                ));
            }
        }
        let direction = match order {
            InboxOrder::NewestFirst => "Backward",
            InboxOrder::OldestFirst => "Forward",
        };
        let scan = nodes
            .iter()
            .find(|[_, relation, _, _]| relation.as_deref() == Some("conversations"));
        match scan {
            Some([_, _, Some(name), Some(dir)]) => {
                if name != index {
                    reasons.push(format!("conversations scanned with {name}, not {index}"));
                }
                if dir != direction {
                    reasons.push(format!("scan direction {dir}, expected {direction}"));
                }
            }
            other => reasons.push(format!("no index scan of conversations: {other:?}")),
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_page_is_an_index_range_scan_at_any_depth() {
        let database = TestDatabase::postgres().await;
        let mut conn = AsyncPgConnection::establish(&database.url()).await.unwrap();
        let business: BusinessId = id();
        load(&mut conn, business).await;

        // The 10,000th item newest first is i = 20,000 - 9,999: the deep page starts
        // after it.
        let deep_i = CONVERSATIONS - 9_999;
        let deep = InboxPosition {
            updated_at: ts("2024-01-01T00:00:00Z").plus_micros(deep_i * 1_000_000),
            id: conversation_id(deep_i),
        };
        // It is the 10,000th item indeed (the statement's own answer).
        let storage = database.storage();
        let check = storage
            .repository
            .list_conversations(
                business,
                InboxQuery {
                    filter: InboxFilter::default(),
                    order: InboxOrder::NewestFirst,
                    after: Some(deep),
                    limit: 2,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            check.items[0].conversation.id(),
            conversation_id(deep_i - 1)
        );

        let filter_of = |f: fn(&mut InboxFilter)| {
            let mut filter = InboxFilter::default();
            f(&mut filter);
            filter
        };
        let cases: Vec<(&str, InboxFilter, &str)> = vec![
            (
                "no filter",
                InboxFilter::default(),
                "conversations_inbox_idx",
            ),
            (
                "status=open",
                filter_of(|f| f.statuses = vec![Status::Open]),
                "conversations_status_inbox_idx",
            ),
            (
                "assignee_id=<agent>",
                filter_of(|f| f.assignee = Some(AssigneeFilter::Agent(plan_agent(3)))),
                "conversations_assignee_inbox_idx",
            ),
            (
                "assignee_id=none",
                filter_of(|f| f.assignee = Some(AssigneeFilter::Unassigned)),
                "conversations_unassigned_inbox_idx",
            ),
            (
                "customer_id",
                filter_of(|f| f.customer_id = Some(plan_customer(42))),
                "conversations_customer_inbox_idx",
            ),
            (
                "channel_type=sms",
                filter_of(|f| f.channel_type = Some(channel("sms"))),
                "conversations_channel_inbox_idx",
            ),
        ];
        let mut failures = Vec::new();
        let mut report = String::new();
        for (name, filter, index) in &cases {
            for order in [InboxOrder::NewestFirst, InboxOrder::OldestFirst] {
                for after in [None, Some(deep)] {
                    let q = InboxQuery {
                        filter: filter.clone(),
                        order,
                        after,
                        limit: InboxQuery::DEFAULT_LIMIT,
                    };
                    let plan = explain_inbox(&mut conn, business, &q).await.unwrap();
                    let depth = if after.is_some() {
                        "page 10,000 deep"
                    } else {
                        "first page"
                    };
                    report.push_str(&format!(
                        "\n{name}, {order:?}, {depth}: {}",
                        shape(&plan).join(" > ")
                    ));
                    if let Some(why) = refuse(&plan, index, order) {
                        failures.push(format!(
                            "{name}, {order:?}, {depth}: {why}\n  {}\n  plan: {plan}",
                            inbox_sql(business, &q)
                        ));
                    }
                    // The plan the service runs: generic (`citus::explain` prepares
                    // the statement with the service's session settings). It reads
                    // the page's rows in order from an index and looks each row's
                    // customer, message and attachments up by key: never all of the
                    // business's customers (joined directly, they were: a generic plan
                    // expects 25 here, and there are 2,000).
                    let sql = inbox_sql(business, &q);
                    let sql = sql
                        .rsplit_once(" -- binds: ")
                        .map_or(sql.as_str(), |(s, _)| s);
                    let generic =
                        citus::explain(&database.url(), sql, business.into_uuid(), false).await;
                    for node in ["Sort", "Materialize", "Hash", "Bitmap", "Seq Scan on conv"] {
                        if generic.contains(node) {
                            failures.push(format!(
                                "{name}, {order:?}, {depth}: the generic plan has a {node} node\n  \
                                 {sql}\n  plan:\n{generic}"
                            ));
                        }
                    }
                }
            }
        }
        // The deep page's plan is the first page's, node for node.
        for order in [InboxOrder::NewestFirst, InboxOrder::OldestFirst] {
            let first = query(InboxFilter::default(), order, InboxQuery::DEFAULT_LIMIT);
            let deep_query = InboxQuery {
                after: Some(deep),
                ..first.clone()
            };
            let a = shape(&explain_inbox(&mut conn, business, &first).await.unwrap());
            let b = shape(
                &explain_inbox(&mut conn, business, &deep_query)
                    .await
                    .unwrap(),
            );
            if a != b {
                failures.push(format!(
                    "{order:?}: the deep page's plan differs: {a:?} vs {b:?}"
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} plan(s) are not index range scans:\n{}\n\nall plans:{report}",
            failures.len(),
            failures.join("\n")
        );
    }
}
