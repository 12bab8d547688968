//! Webhook delivery: each endpoint is one more reader of its business's event log,
//! with its position stored beside it. A process leases due endpoints, POSTs their
//! events one at a time in order, and stores the position after every acknowledged
//! event, so a crash repeats at most the event in flight. Leases make several
//! processes share the work without ever delivering one endpoint at the same time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingback_domain::{
    AfterFailure, BusinessId, DeliveryState, RetryPolicy, Timestamp, WebhookEndpoint, WebhookId,
    WebhookUrl,
};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::commands::Clock;
use crate::events::{EventLog, EventSignals, EventsAfter};
use crate::repository::RepositoryError;
use crate::webhooks::{SecretKey, StoredWebhook};

/// Who holds a lease: one value per process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LeaseOwner(pub uuid::Uuid);

/// The delivery side of the endpoints' storage. Implemented by every storage adapter.
///
/// # Contract
/// - `lease_due` returns endpoints of any business that are enabled, due (no next
///   attempt, or one not after `now`), have events after their position, and are not
///   held by an unexpired lease (of anyone, this owner included); at most `limit`. Each
///   is leased to `owner` until `now + lease`, atomically with the check: two owners
///   never both get an endpoint whose lease has not expired.
/// - `save` stores `state` (position, attempt, error, next attempt, failures) of an
///   endpoint leased to `owner`, and only if `owner` still holds it; `disable` turns
///   the endpoint off (giving up); `renew` extends the lease to `now + renew`, `None`
///   releases it. It never changes the url, event types or (except `disable`) the
///   enabled flag, which a concurrent `PATCH` may have changed: it returns them as
///   stored now. `Ok(None)` when the lease is no longer `owner`'s (expired and taken,
///   or the endpoint was deleted).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait DeliveryQueue: Send + Sync + 'static {
    async fn lease_due(
        &self,
        owner: LeaseOwner,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<StoredWebhook>, RepositoryError>;

    #[allow(clippy::too_many_arguments)]
    async fn save(
        &self,
        business: BusinessId,
        id: WebhookId,
        owner: LeaseOwner,
        state: &DeliveryState,
        disable: bool,
        now: Timestamp,
        renew: Option<Duration>,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError>;
}

/// One delivery attempt, signed.
#[derive(Debug)]
pub struct DeliveryRequest<'a> {
    pub url: &'a WebhookUrl,
    /// `webhook-id`
    pub webhook_id: &'a str,
    /// `webhook-timestamp`, Unix seconds
    pub timestamp: i64,
    /// `webhook-signature`
    pub signature: &'a str,
    /// The event's JSON.
    pub body: &'a [u8],
}

/// Why an attempt did not succeed (kept as the endpoint's `last_error`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryFailure {
    #[error("refused destination: {0}")]
    Refused(String),
    #[error("the endpoint answered HTTP {0}")]
    Status(u16),
    #[error("no answer within {0} s")]
    Timeout(u64),
    #[error("{0}")]
    Connection(String),
}

/// POSTs a delivery. The outbound HTTP adapter: it checks the destination again on the
/// address it connects to, follows no redirect, and succeeds on a 2xx answer only.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait WebhookTransport: Send + Sync + 'static {
    async fn post<'a>(&self, request: DeliveryRequest<'a>) -> Result<(), DeliveryFailure>;
}

/// How delivery runs.
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    pub policy: RetryPolicy,
    /// How long a lease lasts without renewal: after a crash, another process (or the
    /// restarted one) takes the endpoint over after at most this. Longer than the
    /// transport's timeout, as every acknowledged event renews it.
    pub lease: Duration,
    /// How often due retries are looked for (new events wake delivery at once).
    pub poll: Duration,
    /// Endpoints delivered at once by this process.
    pub concurrency: usize,
}

/// Events fetched per read of the log.
const PAGE: u16 = 100;
/// The fewest time between two looks for due endpoints (a burst of commits wakes
/// delivery once, not once per commit).
const MIN_LOOK_INTERVAL: Duration = Duration::from_millis(50);

/// Delivers every business's events to its endpoints.
pub struct Dispatcher {
    queue: Arc<dyn DeliveryQueue>,
    log: Arc<dyn EventLog>,
    transport: Arc<dyn WebhookTransport>,
    key: SecretKey,
    clock: Arc<dyn Clock>,
    signals: EventSignals,
    settings: DeliverySettings,
    owner: LeaseOwner,
}

impl Dispatcher {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        queue: Arc<dyn DeliveryQueue>,
        log: Arc<dyn EventLog>,
        transport: Arc<dyn WebhookTransport>,
        key: SecretKey,
        clock: Arc<dyn Clock>,
        signals: EventSignals,
        settings: DeliverySettings,
    ) -> Self {
        Self {
            queue,
            log,
            transport,
            key,
            clock,
            signals,
            settings,
            owner: LeaseOwner(uuid::Uuid::new_v4()),
        }
    }

    /// Runs until `stopping` turns true; then lets each endpoint finish the attempt in
    /// flight, releases its lease and returns.
    pub async fn run(self: Arc<Self>, mut stopping: watch::Receiver<bool>) {
        let mut running = JoinSet::new();
        // The endpoints this process is delivering now. Leases are per process: if one
        // of our tasks overran its lease (a stalled database), we could lease its
        // endpoint again; a second task beside the first would break the order, so an
        // endpoint already in hand is left to its task (which renews the lease).
        let mut active: HashSet<(BusinessId, WebhookId)> = HashSet::new();
        let mut tasks: HashMap<tokio::task::Id, (BusinessId, WebhookId)> = HashMap::new();
        let mut wake = self.signals.subscribe();
        loop {
            if *stopping.borrow() {
                break;
            }
            let free = self.settings.concurrency.saturating_sub(running.len());
            if free > 0 {
                let now = self.clock.now();
                match self
                    .queue
                    .lease_due(self.owner, now, self.settings.lease, free)
                    .await
                {
                    Ok(leased) => {
                        for webhook in leased {
                            let key = (webhook.endpoint.business_id, webhook.endpoint.id);
                            if !active.insert(key) {
                                continue;
                            }
                            let this = Arc::clone(&self);
                            let stopping = stopping.clone();
                            let task =
                                running.spawn(async move { this.deliver(webhook, stopping).await });
                            tasks.insert(task.id(), key);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "looking for due webhooks failed"),
                }
            }
            let pause = tokio::time::sleep(MIN_LOOK_INTERVAL);
            tokio::select! {
                _ = wake.any(self.settings.poll) => pause.await,
                Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(error) => {
                            tracing::error!(%error, "a webhook delivery task failed");
                            error.id()
                        }
                    };
                    if let Some(key) = tasks.remove(&id) {
                        active.remove(&key);
                    }
                }
                _ = stopping.changed() => {}
            }
        }
        while running.join_next().await.is_some() {}
    }

    /// Delivers one leased endpoint's events until none are left, an attempt fails,
    /// the endpoint is disabled or the lease is lost.
    async fn deliver(&self, webhook: StoredWebhook, stopping: watch::Receiver<bool>) {
        let secret = self.key.secret(&webhook);
        let mut endpoint = webhook.endpoint;
        let (business, id) = (endpoint.business_id, endpoint.id);
        let mut state = endpoint.delivery.clone();
        // Whether `state` has moved past what is stored (events passed over).
        let mut unsaved = false;
        loop {
            let page = match self
                .log
                .events_after(business, state.delivered_through, PAGE)
                .await
            {
                Ok(EventsAfter::Events(events)) => events,
                Ok(EventsAfter::Gone) => {
                    match self.log.oldest_event_id(business).await {
                        // Past the pruned ones; anything else would ask again at once
                        // and get `Gone` again, without end.
                        Ok(Some(oldest)) if oldest - 1 > state.delivered_through => {
                            state.expired_through(oldest - 1);
                            unsaved = true;
                            continue;
                        }
                        // Every event is pruned (or the log contradicts itself): the
                        // position can move only once a new event shows where the log
                        // resumes; until then the endpoint waits for the next look.
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(%error, %business, webhook = %id, "reading the event log failed");
                        }
                    }
                    self.release(&endpoint, &state).await;
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, %business, webhook = %id, "reading the event log failed");
                    self.release(&endpoint, &state).await;
                    return;
                }
            };
            if page.is_empty() || *stopping.borrow() {
                self.release(&endpoint, &state).await;
                return;
            }
            for event in page {
                if !endpoint.event_types.contains(event.kind) {
                    state.passed_over(event.id);
                    unsaved = true;
                    continue;
                }
                if *stopping.borrow() {
                    self.release(&endpoint, &state).await;
                    return;
                }
                let body = event.to_json();
                let webhook_id = endpoint.message_id(event.id);
                let now = self.clock.now();
                let timestamp = now.unix_micros().div_euclid(1_000_000);
                let signature = secret.sign(&webhook_id, timestamp, &body);
                let attempt = self
                    .transport
                    .post(DeliveryRequest {
                        url: &endpoint.url,
                        webhook_id: &webhook_id,
                        timestamp,
                        signature: &signature,
                        body: &body,
                    })
                    .await;
                let now = self.clock.now();
                match attempt {
                    Ok(()) => {
                        state.delivered(event.id, now);
                        let Some(current) = self
                            .save(&endpoint, &state, false, Some(self.settings.lease))
                            .await
                        else {
                            return;
                        };
                        unsaved = false;
                        // A PATCH may have changed the endpoint meanwhile.
                        let changed = current.url != endpoint.url
                            || current.event_types != endpoint.event_types
                            || !current.enabled;
                        endpoint = WebhookEndpoint {
                            delivery: state.clone(),
                            ..current
                        };
                        if changed {
                            // Start again from the stored state with the new settings.
                            self.release(&endpoint, &state).await;
                            return;
                        }
                    }
                    Err(failure) => {
                        let error = failure.to_string();
                        tracing::info!(%business, webhook = %id, event = event.id, %error, "webhook delivery failed");
                        let give_up = state.failed(now, &error, &self.settings.policy)
                            == AfterFailure::GiveUp;
                        if give_up {
                            tracing::warn!(%business, webhook = %id, "webhook endpoint disabled after failing too long");
                        }
                        self.save(&endpoint, &state, give_up, None).await;
                        return;
                    }
                }
            }
            if unsaved {
                if self
                    .save(&endpoint, &state, false, Some(self.settings.lease))
                    .await
                    .is_none()
                {
                    return;
                }
                unsaved = false;
            }
        }
    }

    async fn save(
        &self,
        endpoint: &WebhookEndpoint,
        state: &DeliveryState,
        disable: bool,
        renew: Option<Duration>,
    ) -> Option<WebhookEndpoint> {
        let saved = self
            .queue
            .save(
                endpoint.business_id,
                endpoint.id,
                self.owner,
                state,
                disable,
                self.clock.now(),
                renew,
            )
            .await;
        match saved {
            Ok(Some(current)) => Some(current),
            Ok(None) => {
                tracing::warn!(business = %endpoint.business_id, webhook = %endpoint.id, "webhook lease lost; another process delivers it now");
                None
            }
            Err(error) => {
                // The lease expires; whoever takes it over repeats the events not
                // stored as delivered (at least once).
                tracing::warn!(%error, business = %endpoint.business_id, webhook = %endpoint.id, "storing a webhook's delivery state failed");
                None
            }
        }
    }

    async fn release(&self, endpoint: &WebhookEndpoint, state: &DeliveryState) {
        self.save(endpoint, state, false, None).await;
    }
}

#[cfg(test)]
mod tests;
