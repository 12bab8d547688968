//! The webhook endpoints' conformance suite, against every adapter: managing endpoints
//! (scoped by business, oldest first, at most 16 even under concurrent creations, the
//! starting position), and delivery's side (what is due, leases that two owners never
//! share, expired leases taken over, saving only under one's own lease, giving up, and
//! the settings a concurrent `PATCH` stored).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use pingback_application::{LeaseOwner, StoredWebhook, batches_of};
use pingback_domain::{
    BusinessId, ConversationDraft, DeliveryState, EventType, EventTypes,
    MAX_ENDPOINTS_PER_BUSINESS, RetryPolicy, SecretSeed, Timestamp, WebhookChange, WebhookEndpoint,
    WebhookId, WebhookUrl,
};
use pingback_persistence::Storage;
use pingback_persistence::testing::TestDatabase;
use pingback_persistence::testing::fixtures::{id, minimal_conversation, ts};

macro_rules! webhooks_conformance {
    ($adapter:ident, $database:expr) => {
        mod $adapter {
            use super::*;

            webhooks_conformance!(@cases $database,
                endpoints_are_scoped_by_business,
                created_endpoints_round_trip_and_list_oldest_first,
                update_changes_the_settings_and_delete_removes,
                registration_starts_after_the_last_event,
                the_limit_holds_under_concurrent_creations,
                update_never_moves_the_position_and_enabling_resumes,
                lease_due_returns_only_due_endpoints_with_pending_events,
                racing_owners_never_share_an_endpoint,
                an_expired_lease_is_taken_over_and_lost_by_its_old_owner,
                saving_needs_the_lease,
                giving_up_disables_and_releases,
                save_returns_what_a_concurrent_update_stored,
                renewing_extends_the_lease_and_releasing_frees_it,
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

webhooks_conformance!(postgres, TestDatabase::postgres());
webhooks_conformance!(sqlite, TestDatabase::sqlite());

const LIMIT: usize = MAX_ENDPOINTS_PER_BUSINESS;
const LEASE: Duration = Duration::from_secs(30);

/// `seconds` after a fixed instant.
fn at(seconds: i64) -> Timestamp {
    ts("2025-01-01T10:00:00Z").plus_micros(seconds * 1_000_000)
}

fn url(path: &str) -> WebhookUrl {
    WebhookUrl::parse(&format!("https://hooks.example.com/{path}?x=1"), false).unwrap()
}

fn owner() -> LeaseOwner {
    LeaseOwner(uuid::Uuid::new_v4())
}

fn seed_of(endpoint: &WebhookEndpoint) -> SecretSeed {
    // Distinct per endpoint, derived from its id: the test can tell which seed is whose.
    let mut seed = [0; 32];
    seed[..16].copy_from_slice(endpoint.id.as_uuid().as_bytes());
    seed[16..].copy_from_slice(endpoint.business_id.as_uuid().as_bytes());
    SecretSeed(seed)
}

fn new_endpoint(business: BusinessId, created_at: Timestamp) -> WebhookEndpoint {
    WebhookEndpoint::register(id(), business, url("hook"), EventTypes::ALL, created_at, 0)
}

/// Registers an endpoint (the stored one is returned).
async fn register(storage: &Storage, business: BusinessId) -> WebhookEndpoint {
    register_at(storage, business, at(0)).await
}

async fn register_at(
    storage: &Storage,
    business: BusinessId,
    created_at: Timestamp,
) -> WebhookEndpoint {
    let endpoint = new_endpoint(business, created_at);
    let seed = seed_of(&endpoint);
    storage
        .webhooks
        .create(endpoint, seed, LIMIT)
        .await
        .unwrap()
        .expect("under the limit")
}

/// Appends `count` events to `business`'s log (an import: one event per conversation)
/// and returns its last event id.
async fn produce(storage: &Storage, business: BusinessId, count: usize) -> i64 {
    let conversations = (0..count).map(|_| minimal_conversation(business)).collect();
    storage
        .importer
        .import(batches_of(conversations))
        .await
        .unwrap();
    last_event_id(storage, business).await
}

/// One more event, through the write port.
async fn write_one(storage: &Storage, business: BusinessId) -> i64 {
    let draft = ConversationDraft {
        channel_type: pingback_domain::ChannelType::new("email").unwrap(),
        channel_id: None,
        assignee_id: None,
        status: pingback_domain::Status::Open,
        customer: pingback_domain::CustomerChoice::None,
        message: None,
    };
    let ids = pingback_domain::NewConversationIds {
        conversation: id(),
        customer: id(),
        message: pingback_domain::MessageIds {
            message: id(),
            attachments: Vec::new(),
        },
    };
    storage
        .writer
        .create_conversation(business, draft, ids, at(0), None)
        .await
        .unwrap();
    last_event_id(storage, business).await
}

async fn last_event_id(storage: &Storage, business: BusinessId) -> i64 {
    let mut last = 0;
    loop {
        match storage
            .events
            .events_after(business, last, 1000)
            .await
            .unwrap()
        {
            pingback_application::EventsAfter::Events(events) if !events.is_empty() => {
                last = events.last().unwrap().id;
            }
            pingback_application::EventsAfter::Events(_) => return last,
            pingback_application::EventsAfter::Gone => panic!("nothing was pruned"),
        }
    }
}

async fn find(storage: &Storage, endpoint: &WebhookEndpoint) -> Option<WebhookEndpoint> {
    storage
        .webhooks
        .find(endpoint.business_id, endpoint.id)
        .await
        .unwrap()
}

async fn lease(
    storage: &Storage,
    owner: LeaseOwner,
    now: Timestamp,
    limit: usize,
) -> Vec<StoredWebhook> {
    storage
        .deliveries
        .lease_due(owner, now, LEASE, limit)
        .await
        .unwrap()
}

fn ids(leased: &[StoredWebhook]) -> HashSet<WebhookId> {
    leased.iter().map(|w| w.endpoint.id).collect()
}

async fn save(
    storage: &Storage,
    endpoint: &WebhookEndpoint,
    owner: LeaseOwner,
    state: &DeliveryState,
    disable: bool,
    now: Timestamp,
    renew: Option<Duration>,
) -> Option<WebhookEndpoint> {
    storage
        .deliveries
        .save(
            endpoint.business_id,
            endpoint.id,
            owner,
            state,
            disable,
            now,
            renew,
        )
        .await
        .unwrap()
}

fn change() -> WebhookChange {
    WebhookChange::default()
}

mod cases {
    use super::*;

    pub async fn endpoints_are_scoped_by_business(db: &TestDatabase) {
        let storage = db.storage();
        let (mine, other): (BusinessId, BusinessId) = (id(), id());
        let endpoint = register(&storage, mine).await;
        register(&storage, other).await;
        let webhooks = &storage.webhooks;
        assert_eq!(
            webhooks.list(mine).await.unwrap(),
            std::slice::from_ref(&endpoint)
        );
        let stranger: BusinessId = id();
        assert_eq!(webhooks.list(stranger).await.unwrap(), []);
        assert_eq!(webhooks.find(other, endpoint.id).await.unwrap(), None);
        let disable = WebhookChange {
            url: Some(url("stolen")),
            enabled: Some(false),
            ..change()
        };
        assert_eq!(
            webhooks.update(other, endpoint.id, disable).await.unwrap(),
            None
        );
        assert!(!webhooks.delete(other, endpoint.id).await.unwrap());
        // Saving needs the lease, and a lease is of the endpoint's own business.
        let holder = owner();
        assert_eq!(
            storage
                .deliveries
                .save(
                    other,
                    endpoint.id,
                    holder,
                    &DeliveryState::default(),
                    true,
                    at(1),
                    None
                )
                .await
                .unwrap(),
            None
        );
        assert_eq!(find(&storage, &endpoint).await, Some(endpoint));
    }

    pub async fn created_endpoints_round_trip_and_list_oldest_first(db: &TestDatabase) {
        let storage = db.storage();
        let business: BusinessId = id();
        let mut second = new_endpoint(business, at(20));
        second.event_types =
            EventTypes::parse(["message.created", "conversation.updated"]).unwrap();
        second.url = WebhookUrl::parse("https://Example.COM:8443/a/b?q=%C3%A9&r=1", false).unwrap();
        let created = storage
            .webhooks
            .create(second.clone(), seed_of(&second), LIMIT)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            created, second,
            "stored as given (no events yet: position 0)"
        );
        let third = register_at(&storage, business, at(30)).await;
        let first = register_at(&storage, business, at(10)).await;
        assert_eq!(find(&storage, &second).await, Some(second.clone()));
        assert_eq!(
            storage.webhooks.list(business).await.unwrap(),
            [first, second.clone(), third]
        );
        let types = find(&storage, &second).await.unwrap().event_types;
        assert!(types.contains(EventType::MessageCreated));
        assert!(!types.contains(EventType::ConversationCreated));
        // The same id twice is an error, not a second endpoint.
        assert!(
            storage
                .webhooks
                .create(second.clone(), seed_of(&second), LIMIT)
                .await
                .is_err()
        );
    }

    pub async fn update_changes_the_settings_and_delete_removes(db: &TestDatabase) {
        let storage = db.storage();
        let business: BusinessId = id();
        let endpoint = register(&storage, business).await;
        let changed = storage
            .webhooks
            .update(
                business,
                endpoint.id,
                WebhookChange {
                    url: Some(url("elsewhere")),
                    event_types: Some(EventTypes::parse(["conversation.created"]).unwrap()),
                    enabled: None,
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(changed.url, url("elsewhere"));
        assert_eq!(
            changed.event_types,
            EventTypes::parse(["conversation.created"]).unwrap()
        );
        assert!(changed.enabled);
        assert_eq!(changed.created_at, endpoint.created_at);
        assert_eq!(find(&storage, &endpoint).await, Some(changed.clone()));
        let disabled = storage
            .webhooks
            .update(
                business,
                endpoint.id,
                WebhookChange {
                    enabled: Some(false),
                    ..change()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert!(!disabled.enabled);
        assert_eq!(disabled.url, changed.url);
        assert_eq!(find(&storage, &endpoint).await, Some(disabled));
        assert!(
            storage
                .webhooks
                .delete(business, endpoint.id)
                .await
                .unwrap()
        );
        assert_eq!(find(&storage, &endpoint).await, None);
        assert!(
            !storage
                .webhooks
                .delete(business, endpoint.id)
                .await
                .unwrap()
        );
        assert_eq!(
            storage
                .webhooks
                .update(business, endpoint.id, change())
                .await
                .unwrap(),
            None
        );
        assert_eq!(storage.webhooks.list(business).await.unwrap(), []);
    }

    pub async fn registration_starts_after_the_last_event(db: &TestDatabase) {
        let storage = db.storage();
        let business: BusinessId = id();
        let early = register(&storage, business).await;
        assert_eq!(early.delivery.delivered_through, 0, "no events yet");
        let last = produce(&storage, business, 3).await;
        let last = last.max(write_one(&storage, business).await);
        assert_eq!(last, 4);
        // Another business's events do not count.
        produce(&storage, id(), 5).await;
        let late = register(&storage, business).await;
        assert_eq!(late.delivery.delivered_through, last);
        assert_eq!(
            find(&storage, &late)
                .await
                .unwrap()
                .delivery
                .delivered_through,
            last
        );
        assert_eq!(
            find(&storage, &early)
                .await
                .unwrap()
                .delivery
                .delivered_through,
            0
        );
    }

    pub async fn the_limit_holds_under_concurrent_creations(db: &TestDatabase) {
        let storage = db.storage();
        let business: BusinessId = id();
        produce(&storage, business, 1).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(30));
        let tasks: Vec<_> = (0..30)
            .map(|i| {
                let (storage, barrier) = (storage.clone(), Arc::clone(&barrier));
                tokio::spawn(async move {
                    let endpoint = new_endpoint(business, at(i));
                    let seed = seed_of(&endpoint);
                    barrier.wait().await;
                    storage
                        .webhooks
                        .create(endpoint, seed, LIMIT)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            if let Some(endpoint) = task.await.unwrap() {
                assert_eq!(endpoint.delivery.delivered_through, 1);
                created += 1;
            }
        }
        assert_eq!(created, LIMIT);
        assert_eq!(storage.webhooks.list(business).await.unwrap().len(), LIMIT);
        // Full: one more is refused; another business is not affected.
        let extra = new_endpoint(business, at(99));
        assert_eq!(
            storage
                .webhooks
                .create(extra.clone(), seed_of(&extra), LIMIT)
                .await
                .unwrap(),
            None
        );
        register(&storage, id()).await;
        // Deleting one makes room again.
        let gone = storage.webhooks.list(business).await.unwrap()[0].id;
        assert!(storage.webhooks.delete(business, gone).await.unwrap());
        assert!(
            storage
                .webhooks
                .create(extra.clone(), seed_of(&extra), LIMIT)
                .await
                .unwrap()
                .is_some()
        );
    }

    pub async fn update_never_moves_the_position_and_enabling_resumes(db: &TestDatabase) {
        let storage = db.storage();
        let business: BusinessId = id();
        let endpoint = register(&storage, business).await;
        produce(&storage, business, 4).await;
        let holder = owner();
        let leased = lease(&storage, holder, at(0), 10).await;
        assert_eq!(ids(&leased), HashSet::from([endpoint.id]));
        // Two events delivered, then failures until giving up.
        let mut state = leased[0].endpoint.delivery.clone();
        state.delivered(1, at(1));
        state.delivered(2, at(2));
        save(
            &storage,
            &endpoint,
            holder,
            &state,
            false,
            at(2),
            Some(LEASE),
        )
        .await
        .unwrap();
        let policy =
            RetryPolicy::new(vec![Duration::from_secs(5)], Duration::from_secs(7)).unwrap();
        state.failed(at(3), "the endpoint answered HTTP 500", &policy);
        state.failed(at(8), "the endpoint answered HTTP 500", &policy);
        state.failed(at(13), "the endpoint answered HTTP 503", &policy);
        assert_eq!(state.next_attempt_at, None, "given up");
        let given_up = save(&storage, &endpoint, holder, &state, true, at(13), None)
            .await
            .unwrap();
        assert!(!given_up.enabled);
        assert_eq!(given_up.delivery, state);
        assert_eq!(
            lease(&storage, owner(), at(100), 10).await.len(),
            0,
            "disabled"
        );

        let enabled = storage
            .webhooks
            .update(
                business,
                endpoint.id,
                WebhookChange {
                    enabled: Some(true),
                    ..change()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert!(enabled.enabled);
        let resumed = DeliveryState {
            next_attempt_at: None,
            failing_since: None,
            failures: 0,
            ..state.clone()
        };
        assert_eq!(enabled.delivery, resumed, "a fresh run from event 3");
        assert_eq!(
            enabled.delivery.last_error.as_deref(),
            Some("the endpoint answered HTTP 503")
        );
        assert_eq!(find(&storage, &endpoint).await.unwrap(), enabled);

        // Delivery resumes with event 3; a PATCH meanwhile leaves the position alone.
        let again = owner();
        let leased = lease(&storage, again, at(101), 10).await;
        assert_eq!(leased.len(), 1);
        assert_eq!(leased[0].endpoint.delivery.delivered_through, 2);
        let mut state = leased[0].endpoint.delivery.clone();
        state.delivered(3, at(102));
        save(
            &storage,
            &endpoint,
            again,
            &state,
            false,
            at(102),
            Some(LEASE),
        )
        .await
        .unwrap();
        let patched = storage
            .webhooks
            .update(
                business,
                endpoint.id,
                WebhookChange {
                    url: Some(url("moved")),
                    enabled: Some(true),
                    ..change()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(patched.delivery, state, "already enabled: nothing resumed");
        assert_eq!(
            find(&storage, &endpoint)
                .await
                .unwrap()
                .delivery
                .delivered_through,
            3
        );
    }

    pub async fn lease_due_returns_only_due_endpoints_with_pending_events(db: &TestDatabase) {
        let storage = db.storage();
        let x = owner();
        // Business P: one endpoint that fails (retry in 60 s), one leased for 30 s.
        let p: BusinessId = id();
        let retrying = register(&storage, p).await;
        let held = register(&storage, p).await;
        produce(&storage, p, 2).await;
        let leased = lease(&storage, x, at(0), 10).await;
        assert_eq!(ids(&leased), HashSet::from([retrying.id, held.id]));
        for stored in &leased {
            assert_eq!(stored.seed, seed_of(&stored.endpoint), "each its own seed");
        }
        let mut failing = DeliveryState::default();
        failing.failed(
            at(0),
            "timeout",
            &RetryPolicy::new(vec![Duration::from_secs(60)], Duration::from_secs(3600)).unwrap(),
        );
        assert_eq!(failing.next_attempt_at, Some(at(60)));
        save(&storage, &retrying, x, &failing, false, at(0), None)
            .await
            .unwrap();

        // Q: due. R: caught up (registered after its events). S: disabled. U: no events.
        let q: BusinessId = id();
        let due = register(&storage, q).await;
        produce(&storage, q, 1).await;
        let r: BusinessId = id();
        produce(&storage, r, 3).await;
        let caught_up = register(&storage, r).await;
        let s: BusinessId = id();
        let disabled = register(&storage, s).await;
        produce(&storage, s, 1).await;
        storage
            .webhooks
            .update(
                s,
                disabled.id,
                WebhookChange {
                    enabled: Some(false),
                    ..change()
                },
            )
            .await
            .unwrap()
            .unwrap();
        let u: BusinessId = id();
        register(&storage, u).await;

        let y = owner();
        let leased = lease(&storage, y, at(1), 10).await;
        assert_eq!(ids(&leased), HashSet::from([due.id]));
        assert_eq!(leased[0].endpoint, find(&storage, &due).await.unwrap());
        assert_eq!(leased[0].seed, seed_of(&due));
        assert_eq!(
            lease(&storage, owner(), at(2), 10).await.len(),
            0,
            "all held or not due"
        );

        // At 61 s the retry is due and both leases (until 30 s, 31 s) have expired.
        let z = owner();
        let leased = lease(&storage, z, at(61), 10).await;
        assert_eq!(ids(&leased), HashSet::from([retrying.id, held.id, due.id]));
        let back = leased
            .iter()
            .find(|w| w.endpoint.id == retrying.id)
            .unwrap();
        assert_eq!(back.endpoint.delivery, failing);
        assert!(!ids(&leased).contains(&caught_up.id));
        // `limit` is respected.
        assert_eq!(lease(&storage, owner(), at(200), 2).await.len(), 2);
        assert_eq!(lease(&storage, owner(), at(200), 0).await.len(), 0);

        // Delivered through the last event: nothing pending, nothing due.
        let w = owner();
        for stored in lease(&storage, w, at(300), 10).await {
            let mut state = stored.endpoint.delivery.clone();
            let last = last_event_id(&storage, stored.endpoint.business_id).await;
            state.delivered(last, at(300));
            save(&storage, &stored.endpoint, w, &state, false, at(300), None)
                .await
                .unwrap();
        }
        assert_eq!(lease(&storage, owner(), at(400), 10).await.len(), 0);
        // A new event makes it due again.
        write_one(&storage, q).await;
        assert_eq!(
            ids(&lease(&storage, owner(), at(401), 10).await),
            HashSet::from([due.id])
        );
    }

    pub async fn racing_owners_never_share_an_endpoint(db: &TestDatabase) {
        let storage = db.storage();
        let mut all = HashSet::new();
        for _ in 0..4 {
            let business: BusinessId = id();
            for _ in 0..3 {
                all.insert(register(&storage, business).await.id);
            }
            produce(&storage, business, 1).await;
        }
        // Each round starts after the last round's leases expired.
        for round in 0..5_i64 {
            let barrier = Arc::new(tokio::sync::Barrier::new(4));
            let tasks: Vec<_> = (0..4)
                .map(|_| {
                    let (storage, barrier) = (storage.clone(), Arc::clone(&barrier));
                    tokio::spawn(async move {
                        barrier.wait().await;
                        lease(&storage, owner(), at(round * 60), 12).await
                    })
                })
                .collect();
            let mut seen = HashSet::new();
            for task in tasks {
                for stored in task.await.unwrap() {
                    assert!(
                        seen.insert(stored.endpoint.id),
                        "round {round}: two owners got {}",
                        stored.endpoint.id
                    );
                }
            }
            assert_eq!(seen, all, "round {round}: every endpoint leased once");
        }
    }

    pub async fn an_expired_lease_is_taken_over_and_lost_by_its_old_owner(db: &TestDatabase) {
        let storage = db.storage();
        let business: BusinessId = id();
        let endpoint = register(&storage, business).await;
        produce(&storage, business, 2).await;
        let (a, b) = (owner(), owner());
        assert_eq!(lease(&storage, a, at(0), 10).await.len(), 1);
        assert_eq!(
            lease(&storage, b, at(29), 10).await.len(),
            0,
            "A's lease holds"
        );
        assert_eq!(
            lease(&storage, b, at(30), 10).await.len(),
            1,
            "A's lease expired"
        );
        let mut state = DeliveryState::default();
        state.delivered(1, at(31));
        assert_eq!(
            save(&storage, &endpoint, a, &state, false, at(31), Some(LEASE)).await,
            None,
            "A lost it to B"
        );
        assert_eq!(
            find(&storage, &endpoint)
                .await
                .unwrap()
                .delivery
                .delivered_through,
            0
        );
        let saved = save(&storage, &endpoint, b, &state, false, at(31), Some(LEASE))
            .await
            .unwrap();
        assert_eq!(saved.delivery.delivered_through, 1);
        // A lease that expired without anyone taking it over is still its owner's.
        state.delivered(2, at(500));
        let late = save(&storage, &endpoint, b, &state, false, at(500), None)
            .await
            .unwrap();
        assert_eq!(late.delivery.delivered_through, 2);
    }

    pub async fn saving_needs_the_lease(db: &TestDatabase) {
        let storage = db.storage();
        let business: BusinessId = id();
        let endpoint = register(&storage, business).await;
        produce(&storage, business, 1).await;
        let state = DeliveryState {
            delivered_through: 1,
            ..DeliveryState::default()
        };
        // Never leased: nobody's to save.
        assert_eq!(
            save(&storage, &endpoint, owner(), &state, false, at(0), None).await,
            None
        );
        let holder = owner();
        assert_eq!(lease(&storage, holder, at(0), 10).await.len(), 1);
        assert_eq!(
            save(&storage, &endpoint, owner(), &state, true, at(1), None).await,
            None
        );
        assert!(find(&storage, &endpoint).await.unwrap().enabled);
        // Deleted while leased.
        assert!(
            storage
                .webhooks
                .delete(business, endpoint.id)
                .await
                .unwrap()
        );
        assert_eq!(
            save(&storage, &endpoint, holder, &state, false, at(1), None).await,
            None
        );
    }

    pub async fn giving_up_disables_and_releases(db: &TestDatabase) {
        let storage = db.storage();
        let business: BusinessId = id();
        let endpoint = register(&storage, business).await;
        produce(&storage, business, 1).await;
        let holder = owner();
        assert_eq!(lease(&storage, holder, at(0), 10).await.len(), 1);
        let mut state = DeliveryState::default();
        state.failed(
            at(0),
            "refused destination: 10.0.0.1",
            &RetryPolicy::standard(),
        );
        let stored = save(&storage, &endpoint, holder, &state, true, at(0), None)
            .await
            .unwrap();
        assert!(!stored.enabled);
        assert_eq!(stored.delivery, state);
        assert_eq!(find(&storage, &endpoint).await.unwrap(), stored);
        assert_eq!(lease(&storage, owner(), at(100_000), 10).await.len(), 0);
        assert_eq!(
            save(&storage, &endpoint, holder, &state, false, at(1), None).await,
            None,
            "released"
        );
    }

    pub async fn save_returns_what_a_concurrent_update_stored(db: &TestDatabase) {
        let storage = db.storage();
        let business: BusinessId = id();
        let endpoint = register(&storage, business).await;
        produce(&storage, business, 3).await;
        let holder = owner();
        assert_eq!(lease(&storage, holder, at(0), 10).await.len(), 1);
        let types = EventTypes::parse(["message.created"]).unwrap();
        storage
            .webhooks
            .update(
                business,
                endpoint.id,
                WebhookChange {
                    url: Some(url("new")),
                    event_types: Some(types),
                    enabled: None,
                },
            )
            .await
            .unwrap()
            .unwrap();
        let mut state = endpoint.delivery.clone();
        state.delivered(1, at(1));
        let current = save(
            &storage,
            &endpoint,
            holder,
            &state,
            false,
            at(1),
            Some(LEASE),
        )
        .await
        .unwrap();
        assert_eq!(current.url, url("new"));
        assert_eq!(current.event_types, types);
        assert!(current.enabled);
        assert_eq!(current.delivery, state);
        // Disabled by a PATCH: saving keeps it disabled and says so.
        storage
            .webhooks
            .update(
                business,
                endpoint.id,
                WebhookChange {
                    enabled: Some(false),
                    ..change()
                },
            )
            .await
            .unwrap()
            .unwrap();
        state.delivered(2, at(2));
        let current = save(&storage, &endpoint, holder, &state, false, at(2), None)
            .await
            .unwrap();
        assert!(!current.enabled);
        assert_eq!(current.delivery.delivered_through, 2);
    }

    pub async fn renewing_extends_the_lease_and_releasing_frees_it(db: &TestDatabase) {
        let storage = db.storage();
        let business: BusinessId = id();
        let endpoint = register(&storage, business).await;
        produce(&storage, business, 3).await;
        let (a, b) = (owner(), owner());
        assert_eq!(lease(&storage, a, at(0), 10).await.len(), 1);
        let mut state = endpoint.delivery.clone();
        state.delivered(1, at(20));
        save(&storage, &endpoint, a, &state, false, at(20), Some(LEASE))
            .await
            .unwrap();
        assert_eq!(
            lease(&storage, b, at(40), 10).await.len(),
            0,
            "renewed until 50 s"
        );
        state.delivered(2, at(45));
        save(&storage, &endpoint, a, &state, false, at(45), None)
            .await
            .unwrap();
        let leased = lease(&storage, b, at(46), 10).await;
        assert_eq!(
            ids(&leased),
            HashSet::from([endpoint.id]),
            "released at 45 s"
        );
        assert_eq!(leased[0].endpoint.delivery, state);
        assert_eq!(leased[0].endpoint.delivery.last_attempt_at, Some(at(45)));
    }
}
