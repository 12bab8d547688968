//! The business event log: the port that reads it, how events are encoded when they
//! are appended, how waiting readers learn of new ones, and the feed use case.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingback_domain::{BusinessId, ConversationEvent, ConversationId, EventType, Timestamp};
use tokio::sync::broadcast;

use crate::principal::{Principal, Scope};
use crate::repository::RepositoryError;
use crate::use_cases::GetConversationError;

/// Writes an event's `data` (the API's JSON) when it is appended, so the log holds
/// each event exactly as readers will get it. Implemented by the inbound adapter that
/// owns the representation; the composition root gives it to the storage adapter.
pub trait EventEncoder: Send + Sync + 'static {
    fn data(&self, event: &ConversationEvent) -> Vec<u8>;
}

/// An event as the log holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// Per business: 1, 2, 3, … in commit order, without gaps.
    pub id: i64,
    pub kind: EventType,
    pub occurred_at: Timestamp,
    pub conversation_id: ConversationId,
    /// The encoded `data`.
    pub data: Vec<u8>,
}

impl StoredEvent {
    /// The event as the API shows it: `{"id", "type", "occurred_at",
    /// "conversation_id", "data"}`, the stored `data` written as it is.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 160);
        self.write_json(&mut out);
        out
    }

    /// [`StoredEvent::to_json`] appended to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut time = [0; pingback_domain::RFC3339_MAX_LEN];
        let mut id = [0; uuid::fmt::Hyphenated::LENGTH];
        out.extend_from_slice(b"{\"id\":");
        out.extend_from_slice(self.id.to_string().as_bytes());
        out.extend_from_slice(b",\"type\":\"");
        out.extend_from_slice(self.kind.as_str().as_bytes());
        out.extend_from_slice(b"\",\"occurred_at\":\"");
        out.extend_from_slice(self.occurred_at.write_rfc3339(&mut time).as_bytes());
        out.extend_from_slice(b"\",\"conversation_id\":\"");
        out.extend_from_slice(
            self.conversation_id
                .as_uuid()
                .hyphenated()
                .encode_lower(&mut id)
                .as_bytes(),
        );
        out.extend_from_slice(b"\",\"data\":");
        out.extend_from_slice(&self.data);
        out.push(b'}');
    }
}

/// What a reader asking for events after `after` gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventsAfter {
    /// The events with ids above `after`, in order (possibly none yet).
    Events(Vec<StoredEvent>),
    /// Events above `after` were pruned (retention): the reader must resynchronise.
    Gone,
}

/// Reads a business's event log. Implemented by every storage adapter, which also
/// appends events in the transaction of each write and import.
///
/// # Contract
/// - `events_after` returns events of `business` only, ids above `after`, ascending,
///   at most `limit`; `Gone` when any event above `after` has been pruned.
/// - Ids increase by exactly 1 in commit order: once a reader has seen id N, no event
///   with an id ≤ N appears later.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    async fn events_after(
        &self,
        business: BusinessId,
        after: i64,
        limit: u16,
    ) -> Result<EventsAfter, RepositoryError>;

    /// The id of `business`'s oldest kept event (`None` when it has none): where a
    /// reader told `Gone` resumes.
    async fn oldest_event_id(&self, business: BusinessId) -> Result<Option<i64>, RepositoryError>;

    /// Deletes the events that occurred before `before` (retention), in every
    /// business; returns how many. Never blocks writers.
    async fn prune(&self, before: Timestamp) -> Result<u64, RepositoryError>;
}

/// Tells waiting readers that a business has new events. One per process, shared by
/// every worker; storage adapters signal after each commit (and, on PostgreSQL, relay
/// the commits of other processes).
#[derive(Clone)]
pub struct EventSignals {
    sender: broadcast::Sender<BusinessId>,
    /// Readers look again at least this often even without a signal: commits this
    /// process cannot hear of (another process on SQLite) still arrive.
    recheck: Duration,
}

impl EventSignals {
    /// `recheck`: how often readers look again without a signal.
    pub fn new(recheck: Duration) -> Self {
        // A lagging receiver only misses wake-ups, never events: readers re-query.
        let (sender, _) = broadcast::channel(1024);
        Self { sender, recheck }
    }

    /// `business` has committed new events.
    pub fn notify(&self, business: BusinessId) {
        let _ = self.sender.send(business);
    }

    /// Every business may have new events (signals may have been missed).
    pub fn notify_all(&self) {
        let _ = self.sender.send(EVERYONE);
    }

    pub fn subscribe(&self) -> EventSubscription {
        EventSubscription {
            receiver: self.sender.subscribe(),
            recheck: self.recheck,
        }
    }
}

/// The signal that wakes every reader.
const EVERYONE: BusinessId = BusinessId::from_uuid(uuid::Uuid::nil());

/// Wake-ups for one reader.
pub struct EventSubscription {
    receiver: broadcast::Receiver<BusinessId>,
    recheck: Duration,
}

impl EventSubscription {
    /// Waits until `business` may have new events (a signal, a missed signal, or the
    /// recheck interval), at most `timeout`; `false` when the time ran out.
    pub async fn changed(&mut self, business: BusinessId, timeout: Duration) -> bool {
        if timeout > self.recheck {
            // Signalled or not, look again after the recheck interval.
            self.wait(business, self.recheck).await;
            return true;
        }
        self.wait(business, timeout).await
    }

    /// Waits until any business may have new events, at most `timeout`; `false` when
    /// the time ran out.
    pub async fn any(&mut self, timeout: Duration) -> bool {
        self.wait(EVERYONE, timeout).await
    }

    /// `EVERYONE` as `business` waits for any signal.
    async fn wait(&mut self, business: BusinessId, timeout: Duration) -> bool {
        let wait = async {
            loop {
                match self.receiver.recv().await {
                    Ok(b) if b == business || b == EVERYONE || business == EVERYONE => {
                        // The signals queued behind it were sent before now, so the
                        // read that follows sees their commits too: one wake-up for
                        // all of them, not one each (a busy business signals often).
                        while self.receiver.try_recv().is_ok() {}
                        return true;
                    }
                    Ok(_) => {}
                    // Missed some: check rather than risk sleeping through one.
                    Err(broadcast::error::RecvError::Lagged(_)) => return true,
                    Err(broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await;
                    }
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }
}

/// The feed use case.
#[derive(Clone)]
pub struct EventFeed {
    log: Arc<dyn EventLog>,
    signals: EventSignals,
}

/// The most a long poll waits.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

impl EventFeed {
    pub fn new(log: Arc<dyn EventLog>, signals: EventSignals) -> Self {
        Self { log, signals }
    }

    pub fn signals(&self) -> &EventSignals {
        &self.signals
    }

    /// The principal's events after `after`; with `wait`, an empty answer is held
    /// until an event arrives or `wait` passes (at most [`MAX_WAIT`]). The log is
    /// asked for the principal's business only; a page with a gap in its ids (an
    /// adapter breaking its contract) is refused rather than let a reader skip events.
    pub async fn events_after(
        &self,
        principal: &Principal,
        after: i64,
        limit: u16,
        wait: Option<Duration>,
    ) -> Result<EventsAfter, GetConversationError> {
        principal.require(Scope::ConversationsRead)?;
        let business = principal.business_id();
        // Subscribed before the first read, so an event committed in between wakes us.
        let mut subscription = wait.map(|_| self.signals.subscribe());
        let deadline = wait.map(|w| tokio::time::Instant::now() + w.min(MAX_WAIT));
        loop {
            let found = self.log.events_after(business, after, limit).await?;
            let empty = matches!(&found, EventsAfter::Events(events) if events.is_empty());
            if let EventsAfter::Events(events) = &found
                && events.windows(2).any(|w| w[1].id != w[0].id + 1)
            {
                tracing::error!(%business, "event log returned a gap; refused");
                return Err(GetConversationError::Internal(RepositoryError::internal(
                    "the event log returned ids that are not contiguous",
                )));
            }
            let (Some(subscription), Some(deadline)) = (subscription.as_mut(), deadline) else {
                return Ok(found);
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !empty || left.is_zero() || !subscription.changed(business, left).await {
                return Ok(found);
            }
        }
    }
}
