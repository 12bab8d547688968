//! The delivery loop over in-memory ports: order, one save per acknowledged event,
//! retries and giving up, event types passed over, a lost lease, pruned events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;

use pingback_domain::{EventType, EventTypes, SecretSeed, WebhookUrl};

use super::*;
use crate::events::StoredEvent;

const BUSINESS: u128 = 1;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_700_000_000_000_000 + seconds * 1_000_000).unwrap()
}

struct FixedClock;
impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        at(0)
    }
}

/// A log of `count` events of `business`; kinds alternate created/message, and ids up
/// to `pruned` are gone.
struct Log {
    count: i64,
    pruned: i64,
}

fn kind(id: i64) -> EventType {
    if id % 2 == 1 {
        EventType::ConversationCreated
    } else {
        EventType::MessageCreated
    }
}

#[async_trait]
impl EventLog for Log {
    async fn events_after(
        &self,
        business: BusinessId,
        after: i64,
        limit: u16,
    ) -> Result<EventsAfter, RepositoryError> {
        assert_eq!(
            business,
            BusinessId::from_uuid(uuid::Uuid::from_u128(BUSINESS))
        );
        if after < self.pruned {
            return Ok(EventsAfter::Gone);
        }
        Ok(EventsAfter::Events(
            (after + 1..=self.count)
                .take(usize::from(limit))
                .map(|id| StoredEvent {
                    id,
                    kind: kind(id),
                    occurred_at: at(id),
                    conversation_id: pingback_domain::ConversationId::from_uuid(
                        uuid::Uuid::from_u128(9),
                    ),
                    data: b"{}".to_vec(),
                })
                .collect(),
        ))
    }

    async fn oldest_event_id(&self, _business: BusinessId) -> Result<Option<i64>, RepositoryError> {
        Ok((self.pruned < self.count).then_some(self.pruned + 1))
    }

    async fn prune(&self, _before: Timestamp) -> Result<u64, RepositoryError> {
        Ok(0)
    }
}

/// Answers 2xx, except for the ids in `failing`.
#[derive(Default)]
struct Receiver {
    failing: Vec<i64>,
    got: Mutex<Vec<(String, String, Vec<u8>)>>,
}

#[async_trait]
impl WebhookTransport for Receiver {
    async fn post<'a>(&self, request: DeliveryRequest<'a>) -> Result<(), DeliveryFailure> {
        let id: i64 = request
            .webhook_id
            .rsplit('.')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        self.got.lock().unwrap().push((
            request.webhook_id.to_owned(),
            request.signature.to_owned(),
            request.body.to_vec(),
        ));
        if self.failing.contains(&id) {
            Err(DeliveryFailure::Status(500))
        } else {
            Ok(())
        }
    }
}

/// One endpoint; records every save.
struct Queue {
    endpoint: Mutex<WebhookEndpoint>,
    saves: Mutex<Vec<(DeliveryState, bool, Option<Duration>)>>,
    /// Saves after this many are refused (the lease was lost).
    lease_lost_after: usize,
}

#[async_trait]
impl DeliveryQueue for Queue {
    async fn lease_due(
        &self,
        _owner: LeaseOwner,
        _now: Timestamp,
        _lease: Duration,
        _limit: usize,
    ) -> Result<Vec<StoredWebhook>, RepositoryError> {
        Ok(vec![StoredWebhook {
            endpoint: self.endpoint.lock().unwrap().clone(),
            seed: SecretSeed([1; 32]),
        }])
    }

    async fn save(
        &self,
        _business: BusinessId,
        _id: WebhookId,
        _owner: LeaseOwner,
        state: &DeliveryState,
        disable: bool,
        _now: Timestamp,
        renew: Option<Duration>,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        let mut saves = self.saves.lock().unwrap();
        if saves.len() >= self.lease_lost_after {
            return Ok(None);
        }
        saves.push((state.clone(), disable, renew));
        let mut endpoint = self.endpoint.lock().unwrap();
        endpoint.delivery = state.clone();
        endpoint.enabled &= !disable;
        Ok(Some(endpoint.clone()))
    }
}

fn endpoint(types: EventTypes) -> WebhookEndpoint {
    WebhookEndpoint::register(
        WebhookId::from_uuid(uuid::Uuid::from_u128(2)),
        BusinessId::from_uuid(uuid::Uuid::from_u128(BUSINESS)),
        WebhookUrl::parse("https://example.com/", false).unwrap(),
        types,
        at(0),
        0,
    )
}

fn queue(types: EventTypes, lease_lost_after: usize) -> Arc<Queue> {
    Arc::new(Queue {
        endpoint: Mutex::new(endpoint(types)),
        saves: Mutex::new(Vec::new()),
        lease_lost_after,
    })
}

fn dispatcher(queue: Arc<Queue>, log: Log, receiver: Arc<Receiver>) -> Dispatcher {
    Dispatcher::new(
        queue,
        Arc::new(log),
        receiver,
        SecretKey::new([3; 32]),
        Arc::new(FixedClock),
        EventSignals::new(Duration::from_secs(1)),
        DeliverySettings {
            policy: RetryPolicy::new(vec![Duration::from_secs(5)], Duration::from_secs(60))
                .unwrap(),
            lease: Duration::from_secs(60),
            poll: Duration::from_millis(10),
            concurrency: 4,
        },
    )
}

async fn deliver_once(dispatcher: &Dispatcher, queue: &Queue) {
    let (_keep, stopping) = watch::channel(false);
    let webhook = dispatcher
        .queue
        .lease_due(dispatcher.owner, at(0), Duration::from_secs(60), 1)
        .await
        .unwrap()
        .remove(0);
    dispatcher.deliver(webhook, stopping).await;
    let _ = queue;
}

fn delivered_ids(receiver: &Receiver) -> Vec<i64> {
    receiver
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _, _)| id.rsplit('.').next().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn every_event_in_order_signed_and_saved_after_each_acknowledgement() {
    let queue = queue(EventTypes::ALL, usize::MAX);
    let receiver = Arc::new(Receiver::default());
    let d = dispatcher(
        queue.clone(),
        Log {
            count: 250,
            pruned: 0,
        },
        receiver.clone(),
    );
    deliver_once(&d, &queue).await;
    assert_eq!(delivered_ids(&receiver), (1..=250).collect::<Vec<_>>());
    let saves = queue.saves.lock().unwrap();
    // One save per event (renewing the lease), then the release.
    assert_eq!(saves.len(), 251);
    assert!(saves[..250].iter().all(|(_, _, renew)| renew.is_some()));
    assert_eq!(saves[250].2, None);
    assert_eq!(saves[250].0.delivered_through, 250);
    // The signature is the endpoint secret's over id, timestamp and body.
    let (id, signature, body) = receiver.got.lock().unwrap()[0].clone();
    assert_eq!(id, "00000000-0000-0000-0000-000000000001.1");
    let secret = SecretKey::new([3; 32]).secret(&StoredWebhook {
        endpoint: endpoint(EventTypes::ALL),
        seed: SecretSeed([1; 32]),
    });
    assert_eq!(signature, secret.sign(&id, 1_700_000_000, &body));
    assert!(body.starts_with(b"{\"id\":1,\"type\":\"conversation.created\""));
}

#[tokio::test]
async fn a_failure_stops_the_run_and_schedules_the_retry_from_that_event() {
    let queue = queue(EventTypes::ALL, usize::MAX);
    let receiver = Arc::new(Receiver {
        failing: vec![3],
        ..Receiver::default()
    });
    let d = dispatcher(
        queue.clone(),
        Log {
            count: 10,
            pruned: 0,
        },
        receiver.clone(),
    );
    deliver_once(&d, &queue).await;
    assert_eq!(delivered_ids(&receiver), [1, 2, 3]);
    let (state, disabled, renew) = queue.saves.lock().unwrap().last().unwrap().clone();
    assert_eq!(state.delivered_through, 2);
    assert_eq!(state.next_attempt_at, Some(at(5)));
    assert_eq!(
        state.last_error.as_deref(),
        Some("the endpoint answered HTTP 500")
    );
    assert!(!disabled);
    assert_eq!(renew, None, "the lease is released");
}

#[tokio::test]
async fn failing_past_the_give_up_time_disables_the_endpoint() {
    let queue = queue(EventTypes::ALL, usize::MAX);
    queue.endpoint.lock().unwrap().delivery.failing_since = Some(at(-61));
    let receiver = Arc::new(Receiver {
        failing: vec![1],
        ..Receiver::default()
    });
    let d = dispatcher(
        queue.clone(),
        Log {
            count: 3,
            pruned: 0,
        },
        receiver,
    );
    deliver_once(&d, &queue).await;
    let (state, disabled, _) = queue.saves.lock().unwrap().last().unwrap().clone();
    assert!(disabled);
    assert_eq!(state.next_attempt_at, None);
    assert!(!queue.endpoint.lock().unwrap().enabled);
}

#[tokio::test]
async fn other_event_types_are_passed_over_but_the_position_moves() {
    let queue = queue(EventTypes::parse(["message.created"]).unwrap(), usize::MAX);
    let receiver = Arc::new(Receiver::default());
    let d = dispatcher(
        queue.clone(),
        Log {
            count: 7,
            pruned: 0,
        },
        receiver.clone(),
    );
    deliver_once(&d, &queue).await;
    assert_eq!(delivered_ids(&receiver), [2, 4, 6]);
    assert_eq!(queue.endpoint.lock().unwrap().delivery.delivered_through, 7);
}

#[tokio::test]
async fn a_lost_lease_stops_delivery_at_once() {
    let queue = queue(EventTypes::ALL, 2);
    let receiver = Arc::new(Receiver::default());
    let d = dispatcher(
        queue.clone(),
        Log {
            count: 10,
            pruned: 0,
        },
        receiver.clone(),
    );
    deliver_once(&d, &queue).await;
    // The third acknowledgement could not be stored: nothing more was sent.
    assert_eq!(delivered_ids(&receiver), [1, 2, 3]);
}

#[tokio::test]
async fn pruned_events_are_skipped_and_reported() {
    let queue = queue(EventTypes::ALL, usize::MAX);
    let receiver = Arc::new(Receiver::default());
    let d = dispatcher(
        queue.clone(),
        Log {
            count: 8,
            pruned: 5,
        },
        receiver.clone(),
    );
    deliver_once(&d, &queue).await;
    assert_eq!(delivered_ids(&receiver), [6, 7, 8]);
}

#[tokio::test]
async fn a_log_pruned_to_nothing_releases_instead_of_asking_again_without_end() {
    let queue = queue(EventTypes::ALL, usize::MAX);
    let receiver = Arc::new(Receiver::default());
    let d = dispatcher(
        queue.clone(),
        Log {
            count: 5,
            pruned: 5,
        },
        receiver.clone(),
    );
    tokio::time::timeout(Duration::from_secs(5), deliver_once(&d, &queue))
        .await
        .expect("delivery gives the endpoint back");
    assert!(delivered_ids(&receiver).is_empty());
    let saves = queue.saves.lock().unwrap();
    assert_eq!(saves.len(), 1, "released once");
    assert_eq!(saves[0].2, None);
}

#[tokio::test]
async fn run_stops_when_asked_and_releases() {
    let queue = queue(EventTypes::ALL, usize::MAX);
    let receiver = Arc::new(Receiver::default());
    let d = Arc::new(dispatcher(
        queue.clone(),
        Log {
            count: 3,
            pruned: 0,
        },
        receiver.clone(),
    ));
    let (stop, stopping) = watch::channel(false);
    let task = tokio::spawn(d.run(stopping));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("run returns when stopping")
        .unwrap();
    assert_eq!(&delivered_ids(&receiver)[..3], [1, 2, 3]);
}
