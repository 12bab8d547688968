//! The event log over HTTP: the encoder of each event's `data` (the API's JSON,
//! written once when the event is appended), the feed `GET /api/v1/events` with long
//! polling, and the Server-Sent Events stream `GET /api/v1/events/stream`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use pingback_application::{
    EventEncoder, EventFeed, EventsAfter, GetConversationError, MAX_WAIT, Principal, Scope,
    StoredEvent,
};
use pingback_domain::{BusinessId, ConversationEvent};
use serde::Serialize;
use serde::ser::SerializeMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use utoipa::ToSchema;

use crate::problem::ApiError;
use crate::representation::{ConversationItemBody, LastMessage};
use crate::routes::{ApiState, read_error};

/// Writes `data` as the API documents it: `{"conversation": <list item>}`, plus
/// `"message"` for `message.created` and `"previous"` for `conversation.updated`.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonEvents;

struct Data<'a>(&'a ConversationEvent);

impl Serialize for Data<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let event = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(
            "conversation",
            &ConversationItemBody::new(&event.conversation),
        )?;
        if let Some(message) = &event.message {
            let conversation = event.conversation.conversation.id();
            map.serialize_entry("message", &LastMessage::new(conversation, message))?;
        }
        if let Some(previous) = &event.previous {
            let mut fields = serde_json::Map::new();
            if let Some(status) = previous.status {
                fields.insert("status".into(), status.as_str().into());
            }
            if let Some(assignee) = previous.assignee_id {
                fields.insert(
                    "assignee_id".into(),
                    assignee.map_or(serde_json::Value::Null, |a| a.to_string().into()),
                );
            }
            map.serialize_entry("previous", &fields)?;
        }
        map.end()
    }
}

impl EventEncoder for JsonEvents {
    fn data(&self, event: &ConversationEvent) -> Vec<u8> {
        serde_json::to_vec(&Data(event)).unwrap_or_else(|error| {
            tracing::error!(%error, "encoding an event failed");
            b"{}".to_vec()
        })
    }
}

/// What the event routes of a worker need.
#[derive(Clone)]
pub struct EventRoutes {
    pub(crate) feed: EventFeed,
    /// One permit per open stream (`events.max_streams`), shared by every worker.
    pub(crate) streams: Arc<Semaphore>,
    /// Turns true when the server begins to shut down: streams end.
    pub(crate) stopping: watch::Receiver<bool>,
    reads: Arc<StreamReads>,
}

impl EventRoutes {
    pub fn new(feed: EventFeed, streams: Arc<Semaphore>, stopping: watch::Receiver<bool>) -> Self {
        Self {
            feed,
            streams,
            stopping,
            reads: Arc::default(),
        }
    }
}

/// A read of the log by streams, as they send it.
enum Chunk {
    /// The SSE frames of the events read, and the last id among them.
    Events {
        frames: Bytes,
        last: i64,
    },
    Empty,
    Gone,
}

type SharedRead = Shared<BoxFuture<'static, Result<Arc<Chunk>, Arc<str>>>>;

/// Streams of one business at one position share one read of the log and the frames
/// made of it: one commit wakes every stream of its business, and 1,000 streams then
/// cost one query and one formatting instead of 1,000 (the frames are reference
/// counted, not copied). A read is shared only with streams woken before it started,
/// so it cannot hide an event committed before their wake-up.
#[derive(Default)]
struct StreamReads {
    reads: std::sync::Mutex<HashMap<(BusinessId, i64), (tokio::time::Instant, SharedRead)>>,
}

impl StreamReads {
    /// Past this many reads kept, those older than `SHARED_FOR` are dropped: a read is
    /// shared by the streams one wake-up woke, which all read within a moment, and
    /// keeping more only holds frames in memory (at 100 events a second, about 40
    /// positions a second, each with its frames).
    const KEPT: usize = 16;
    const SHARED_FOR: Duration = Duration::from_secs(1);

    async fn read(
        &self,
        feed: &EventFeed,
        principal: &Principal,
        after: i64,
        woken_at: tokio::time::Instant,
    ) -> Result<Arc<Chunk>, Arc<str>> {
        let key = (principal.business_id(), after);
        let read = {
            let mut reads = self
                .reads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match reads.get(&key) {
                Some((started, read)) if *started >= woken_at => read.clone(),
                _ => {
                    let now = tokio::time::Instant::now();
                    if reads.len() >= Self::KEPT {
                        reads.retain(|_, (started, _)| now - *started < Self::SHARED_FOR);
                    }
                    let (feed, principal) = (feed.clone(), principal.clone());
                    let read = async move {
                        match feed
                            .events_after(&principal, after, STREAM_BATCH, None)
                            .await
                        {
                            Ok(EventsAfter::Events(events)) => Ok(Arc::new(frames(&events))),
                            Ok(EventsAfter::Gone) => Ok(Arc::new(Chunk::Gone)),
                            Err(error) => Err(Arc::<str>::from(error.to_string())),
                        }
                    }
                    .boxed()
                    .shared();
                    reads.insert(key, (now, read.clone()));
                    read
                }
            }
        };
        read.await
    }
}

/// The SSE frames of `events`.
fn frames(events: &[StoredEvent]) -> Chunk {
    let Some(last) = events.last() else {
        return Chunk::Empty;
    };
    let mut frames = Vec::new();
    for event in events {
        frames.extend_from_slice(b"id: ");
        frames.extend_from_slice(event.id.to_string().as_bytes());
        frames.extend_from_slice(b"\nevent: ");
        frames.extend_from_slice(event.kind.as_str().as_bytes());
        frames.extend_from_slice(b"\ndata: ");
        event.write_json(&mut frames);
        frames.extend_from_slice(b"\n\n");
    }
    Chunk::Events {
        frames: Bytes::from(frames),
        last: last.id,
    }
}

/// A keep-alive comment this often on a quiet stream (the contract asks for at least
/// every 15 s). Short on purpose: actix notices a client that went away only when a
/// write to it fails, which is the second write after the disconnect, so this bounds
/// how long a dead stream keeps its place under `events.max_streams` (and keeps
/// reading the log). 1,000 quiet streams cost 500 tiny writes a second.
const KEEP_ALIVE: Duration = Duration::from_secs(2);
/// Events a stream reads, and sends as one chunk, at most. Small on purpose: actix
/// copies each chunk into the connection's write buffer, which keeps that capacity, so
/// with 1,000 streams a chunk of 500 events (~800 KB) could hold most of a gigabyte
/// for clients that fall behind; 32 events (~50 KB) keep it near 50 MB at worst, and a
/// stream that is behind catches up in more, still shared, reads.
const STREAM_BATCH: u16 = 32;
/// After a wake-up, a stream waits this long before it reads: the commits of that
/// moment then go out as one write per stream, and the streams of a business read
/// together (see [`StreamReads`]). Well within the second an event may take.
const COALESCE: Duration = Duration::from_millis(25);

/// The feed's body.
#[derive(Serialize, ToSchema)]
#[schema(as = EventPage)]
pub struct EventPageDoc {
    /// Events with ids above `after`, in order; each is
    /// `{"id", "type", "occurred_at", "conversation_id", "data"}`.
    data: Vec<EventDoc>,
    /// The last id returned, or `after` when none was: pass it as the next `after`.
    next_after: i64,
}

/// One event of the business's log.
#[derive(Serialize, ToSchema)]
#[schema(as = Event)]
pub struct EventDoc {
    /// Per business: 1, 2, 3, … in commit order, without gaps.
    #[schema(minimum = 1)]
    id: i64,
    /// `conversation.created`, `conversation.updated`, `conversation.imported` or
    /// `message.created`.
    #[serde(rename = "type")]
    #[schema(pattern = "^(conversation\\.(created|updated|imported)|message\\.created)$")]
    kind: String,
    /// When it happened (the write's time; the import's for `conversation.imported`).
    #[schema(value_type = crate::representation::Time)]
    occurred_at: String,
    #[schema(value_type = crate::representation::Id)]
    conversation_id: String,
    /// `{"conversation": <ConversationListItem>}`, plus `message` (a Message) for
    /// `message.created` and `previous` (the changed fields' previous values) for
    /// `conversation.updated`.
    #[schema(value_type = Object)]
    data: serde_json::Value,
}

fn invalid(name: &str, detail: &str) -> ApiError {
    ApiError::BadRequest(format!("Invalid query parameter `{name}`: {detail}."))
}

struct FeedQuery {
    after: i64,
    limit: u16,
    wait: Option<Duration>,
}

fn feed_query(query_string: &str, allowed: &[&str]) -> Result<FeedQuery, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query_string)
        .map_err(|_| ApiError::BadRequest("The query string is not valid.".to_owned()))?;
    let mut query = FeedQuery {
        after: 0,
        limit: 100,
        wait: None,
    };
    let mut seen = Vec::new();
    for (name, value) in &pairs {
        if !allowed.contains(&name.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "Unknown query parameter `{name}` (expected: {}).",
                allowed.join(", ")
            )));
        }
        if seen.contains(name) {
            return Err(invalid(name, "given more than once"));
        }
        seen.push(name.clone());
        match name.as_str() {
            "after" => {
                query.after = value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| invalid(name, "expected an event id, 0 or more"))?;
            }
            "limit" => {
                query.limit = value
                    .parse::<u16>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| invalid(name, "expected an integer from 1 to 1000"))?;
            }
            "wait" => {
                let seconds = value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=MAX_WAIT.as_secs()).contains(n))
                    .ok_or_else(|| invalid(name, "expected seconds from 1 to 30"))?;
                query.wait = Some(Duration::from_secs(seconds));
            }
            _ => {}
        }
    }
    Ok(query)
}

fn gone() -> ApiError {
    ApiError::Gone
}

fn feed_error(req: &HttpRequest, state: &ApiState, error: GetConversationError) -> ApiError {
    read_error(req, state, error)
}

/// Follow the event log
///
/// The business's events after `after`, in order, at most `limit`. With `wait`, an
/// empty answer is held until an event arrives or `wait` seconds pass (long polling).
/// To keep a copy in sync: list the conversations once, then follow this feed from the
/// first page's `last_event_id`, passing each answer's `next_after` as the next
/// `after`. Events older than the retention are pruned: `after` below the oldest kept
/// event's id minus 1 is a 410 — list again.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    operation_id = "listEvents",
    tag = "events",
    params(
        ("after" = Option<i64>, Query, minimum = 0,
            description = "Events with ids above this (default 0: from the start)."),
        ("limit" = Option<u16>, Query, minimum = 1, maximum = 1000,
            description = "At most this many events (default 100)."),
        ("wait" = Option<u16>, Query, minimum = 1, maximum = 30,
            description = "Hold an empty answer up to this many seconds for new events."),
    ),
    security(("bearerAuth" = ["conversations:read"])),
    responses(
        (status = 200, description = "The events after `after` (possibly none).",
            body = EventPageDoc),
    )
)]
pub(crate) async fn list_events(
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let principal = crate::writes::authorize(&req, &state, Scope::ConversationsRead)?;
    let query = feed_query(req.query_string(), &["after", "limit", "wait"])?;
    let found = state
        .events
        .feed
        .events_after(&principal, query.after, query.limit, query.wait)
        .await
        .map_err(|error| feed_error(&req, &state, error))?;
    let EventsAfter::Events(events) = found else {
        return Err(gone());
    };
    let next_after = events.last().map_or(query.after, |e| e.id);
    let mut body =
        Vec::with_capacity(64 + events.iter().map(|e| e.data.len() + 160).sum::<usize>());
    body.extend_from_slice(b"{\"data\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        event.write_json(&mut body);
    }
    body.extend_from_slice(b"],\"next_after\":");
    body.extend_from_slice(next_after.to_string().as_bytes());
    body.push(b'}');
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("application/json")
        .body(body))
}

/// The token of a stream: the `Authorization` header, or (for browsers'
/// `EventSource`, which cannot send headers) the `access_token` query parameter.
fn stream_principal(req: &HttpRequest, state: &ApiState) -> Result<Principal, ApiError> {
    if req.headers().contains_key(header::AUTHORIZATION) {
        return crate::writes::authorize(req, state, Scope::ConversationsRead);
    }
    let token = serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
        .ok()
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "access_token"))
        .map(|(_, v)| v);
    let Some(token) = token else {
        return crate::writes::authorize(req, state, Scope::ConversationsRead);
    };
    let principal = state
        .tokens
        .verify(&token)
        .map_err(ApiError::Unauthorized)?;
    principal
        .require(Scope::ConversationsRead)
        .map_err(|missing| ApiError::Forbidden(missing.0))?;
    Ok(principal)
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

struct Stream {
    principal: Principal,
    feed: EventFeed,
    reads: Arc<StreamReads>,
    after: i64,
    subscription: pingback_application::EventSubscription,
    /// When the stream last learned the log may have changed: a read started before
    /// then may not show it.
    woken_at: tokio::time::Instant,
    stopping: watch::Receiver<bool>,
    ends_at: Option<tokio::time::Instant>,
    last_sent: tokio::time::Instant,
    done: bool,
    /// The shutdown signal's sender is gone: stop watching it.
    unwatched: bool,
    _permit: OwnedSemaphorePermit,
}

impl Stream {
    /// The next chunk to send, `None` when the stream ends.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if self.done {
                return None;
            }
            let stopping = *self.stopping.borrow();
            let expired = self
                .ends_at
                .is_some_and(|at| tokio::time::Instant::now() >= at);
            let read = self
                .reads
                .read(&self.feed, &self.principal, self.after, self.woken_at)
                .await;
            match read.as_deref() {
                Ok(Chunk::Events { frames, last }) => {
                    self.after = *last;
                    self.last_sent = tokio::time::Instant::now();
                    return Some(frames.clone());
                }
                Ok(Chunk::Empty) => {}
                Ok(Chunk::Gone) => {
                    self.done = true;
                    return Some(Bytes::from_static(
                        b"event: gone\ndata: {\"detail\":\"events were pruned; list again\"}\n\n",
                    ));
                }
                Err(error) => {
                    tracing::warn!(%error, "an event stream could not read the log; ending it");
                    self.done = true;
                    return None;
                }
            }
            // Everything up to now was sent: end here when shutting down or expired.
            if stopping || expired {
                self.done = true;
                return None;
            }
            let keep_alive = self.last_sent + KEEP_ALIVE;
            let until = self.ends_at.map_or(keep_alive, |end| end.min(keep_alive));
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            let business = self.principal.business_id();
            let signalled = tokio::select! {
                signalled = self.subscription.changed(business, left) => signalled,
                changed = self.stopping.changed(), if !self.unwatched => {
                    self.unwatched = changed.is_err();
                    false
                }
            };
            self.woken_at = tokio::time::Instant::now();
            if tokio::time::Instant::now() >= keep_alive {
                self.last_sent = tokio::time::Instant::now();
                return Some(Bytes::from_static(b": keep-alive\n\n"));
            }
            if signalled && !*self.stopping.borrow() {
                tokio::time::sleep(COALESCE).await;
            }
        }
    }
}

/// Stream the event log
///
/// Server-Sent Events: each event as `id: <id>`, `event: <type>`, `data: <the event's
/// JSON on one line>`. Resumes after the `Last-Event-ID` header (or `after`); a
/// `: keep-alive` comment every 2 s on a quiet stream; new events arrive within a second of
/// their commit. The stream ends when the token expires (reconnect with a new token
/// and `Last-Event-ID`: nothing is lost) and when the server shuts down. A browser's
/// `EventSource` cannot send headers: this route also takes the token as the
/// `access_token` query parameter. At most `events.max_streams` streams per process:
/// beyond, 503 with `Retry-After`.
///
/// ```sh
/// curl -N http://127.0.0.1:8080/api/v1/events/stream \
///   -H "Authorization: Bearer $TOKEN" -H "Last-Event-ID: 41"
/// ```
#[utoipa::path(
    get,
    path = "/api/v1/events/stream",
    operation_id = "streamEvents",
    tag = "events",
    params(
        ("Last-Event-ID" = Option<i64>, Header,
            description = "Resume after this event id (what `EventSource` sends on reconnect)."),
        ("after" = Option<i64>, Query, minimum = 0,
            description = "Resume after this event id when there is no `Last-Event-ID`."),
        ("access_token" = Option<String>, Query,
            description = "The token, for clients that cannot send `Authorization` \
                (RFC 6750 §2.3). Never logged."),
    ),
    security(("bearerAuth" = ["conversations:read"])),
    responses(
        (status = 200, description = "The stream.", body = String,
            content_type = "text/event-stream"),
    )
)]
pub(crate) async fn stream_events(
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let principal = stream_principal(&req, &state)?;
    let query = feed_query(req.query_string(), &["after", "access_token"])?;
    let after = match req.headers().get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "Invalid Last-Event-ID header: expected an event id, 0 or more.".to_owned(),
                )
            })?,
        None => query.after,
    };
    let Ok(permit) = Arc::clone(&state.events.streams).try_acquire_owned() else {
        return Err(ApiError::TooManyStreams);
    };
    // Subscribed before the first read: nothing committed in between is missed.
    let subscription = state.events.feed.signals().subscribe();
    // Too old a position is a 410 now, not a stream that ends at once.
    if let EventsAfter::Gone = state
        .events
        .feed
        .events_after(&principal, after, 1, None)
        .await
        .map_err(|error| feed_error(&req, &state, error))?
    {
        return Err(gone());
    }
    let ends_at = principal.expires_at().map(|exp| {
        let left = u64::try_from(exp.saturating_sub(now_seconds())).unwrap_or(0);
        tokio::time::Instant::now() + Duration::from_secs(left)
    });
    let stream = Stream {
        principal,
        feed: state.events.feed.clone(),
        reads: Arc::clone(&state.events.reads),
        after,
        subscription,
        woken_at: tokio::time::Instant::now(),
        stopping: state.events.stopping.clone(),
        ends_at,
        last_sent: tokio::time::Instant::now(),
        done: false,
        unwatched: false,
        _permit: permit,
    };
    let body = futures_util::stream::unfold(stream, |mut stream| async move {
        let chunk = stream.next().await?;
        Some((Ok::<_, Infallible>(chunk), stream))
    });
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // Proxies must not buffer the stream.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body))
}

#[cfg(test)]
mod stream_reads_tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicUsize, Ordering};

    use pingback_application::{EventSignals, MockEventLog, Subject};
    use pingback_domain::{ConversationId, EventType, Timestamp};

    use super::*;

    /// A log whose every read finds the event after `after`, counting the reads.
    fn counting_log(reads: Arc<AtomicUsize>) -> MockEventLog {
        let mut log = MockEventLog::new();
        log.expect_events_after().returning(move |_, after, _| {
            reads.fetch_add(1, Ordering::SeqCst);
            Ok(EventsAfter::Events(vec![StoredEvent {
                id: after + 1,
                kind: EventType::MessageCreated,
                occurred_at: Timestamp::now(),
                conversation_id: ConversationId::from_uuid(uuid::Uuid::now_v7()),
                data: b"{}".to_vec(),
            }]))
        });
        log
    }

    fn principal(business: BusinessId) -> Principal {
        Principal::new(business, Subject::new("reader").unwrap())
    }

    #[tokio::test]
    async fn streams_woken_before_a_read_share_it_and_later_ones_read_again() {
        let counted = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(counting_log(Arc::clone(&counted)));
        let feed = EventFeed::new(log, EventSignals::new(Duration::from_secs(1)));
        let reads = StreamReads::default();
        let business = BusinessId::from_uuid(uuid::Uuid::now_v7());
        let woken = tokio::time::Instant::now();
        let principals: Vec<_> = (0..50).map(|_| principal(business)).collect();
        let chunks = futures_util::future::join_all(
            principals.iter().map(|p| reads.read(&feed, p, 7, woken)),
        )
        .await;
        assert_eq!(counted.load(Ordering::SeqCst), 1, "50 streams, one read");
        for chunk in &chunks {
            let Ok(Chunk::Events { frames, last }) = chunk.as_deref() else {
                panic!("events expected");
            };
            assert_eq!(*last, 8);
            assert!(frames.starts_with(b"id: 8\nevent: message.created\ndata: "));
        }
        // Finished, and still shared with a stream woken before it started…
        reads.read(&feed, &principals[0], 7, woken).await.unwrap();
        assert_eq!(counted.load(Ordering::SeqCst), 1);
        // …but not with one woken after: it may miss what woke that stream.
        let later = tokio::time::Instant::now();
        reads.read(&feed, &principals[0], 7, later).await.unwrap();
        assert_eq!(counted.load(Ordering::SeqCst), 2);
        // Another business, or another position, is another read.
        let other = principal(BusinessId::from_uuid(uuid::Uuid::now_v7()));
        reads.read(&feed, &other, 7, woken).await.unwrap();
        reads.read(&feed, &principals[0], 8, woken).await.unwrap();
        assert_eq!(counted.load(Ordering::SeqCst), 4);
    }
}
