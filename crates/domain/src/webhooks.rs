//! Webhook endpoints: where a business wants its events POSTed, which of them, and how
//! far delivery has come. The rules here are the ones that need no network: a URL's
//! syntax, the set of event types, the secret and its signatures, and what a delivery's
//! success or failure does to the endpoint's state (retry schedule, giving up).
//! Whether a host resolves to a public address is the outbound adapter's to check.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{BusinessId, EventType, Timestamp, WebhookId};

/// The longest URL an endpoint may have.
pub const MAX_WEBHOOK_URL_BYTES: usize = 2048;
/// The most endpoints one business may register.
pub const MAX_ENDPOINTS_PER_BUSINESS: usize = 16;
/// The longest `last_error` kept (longer ones are cut on a character boundary).
pub const MAX_ERROR_BYTES: usize = 500;

/// Why a URL cannot be an endpoint's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookUrlError {
    #[error("must be an absolute URL: {0}")]
    Malformed(String),
    #[error("must be at most {MAX_WEBHOOK_URL_BYTES} bytes")]
    TooLong,
    #[error("must use https")]
    NotHttps,
    #[error("must have a host")]
    NoHost,
    #[error("must not contain a user name or password")]
    Credentials,
    #[error("must not contain a fragment")]
    Fragment,
}

/// Where deliveries go: an absolute `https` (or, where the operator allows it, `http`)
/// URL with a host, without credentials or fragment.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

/// The host part of a URL: a name to resolve, or an address given literally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookHost<'a> {
    Name(&'a str),
    Address(std::net::IpAddr),
}

impl WebhookUrl {
    /// Checks the syntax; `allow_http` (development only) also accepts `http`.
    pub fn parse(input: &str, allow_http: bool) -> Result<Self, WebhookUrlError> {
        if input.len() > MAX_WEBHOOK_URL_BYTES {
            return Err(WebhookUrlError::TooLong);
        }
        let url = url::Url::parse(input).map_err(|e| WebhookUrlError::Malformed(e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            _ => return Err(WebhookUrlError::NotHttps),
        }
        if !url.has_host() || url.host_str().is_none_or(str::is_empty) {
            return Err(WebhookUrlError::NoHost);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(WebhookUrlError::Credentials);
        }
        if url.fragment().is_some() {
            return Err(WebhookUrlError::Fragment);
        }
        // Normalised (e.g. an IDN host in punycode) before the length is kept.
        if url.as_str().len() > MAX_WEBHOOK_URL_BYTES {
            return Err(WebhookUrlError::TooLong);
        }
        Ok(Self(url))
    }

    /// A URL stored earlier: parsed again, without the scheme policy of the day (an
    /// operator who turns `allow_http` off finds such endpoints refused at delivery).
    pub fn stored(input: &str) -> Result<Self, WebhookUrlError> {
        Self::parse(input, true)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_https(&self) -> bool {
        self.0.scheme() == "https"
    }

    pub fn host(&self) -> WebhookHost<'_> {
        match self.0.host() {
            Some(url::Host::Ipv4(ip)) => WebhookHost::Address(ip.into()),
            Some(url::Host::Ipv6(ip)) => WebhookHost::Address(ip.into()),
            Some(url::Host::Domain(name)) => WebhookHost::Name(name),
            None => WebhookHost::Name(""),
        }
    }

    /// The port, the scheme's default when none is written.
    pub fn port(&self) -> u16 {
        self.0
            .port_or_known_default()
            .unwrap_or(if self.is_https() { 443 } else { 80 })
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({})", self.as_str())
    }
}

/// Why a list of event types cannot be an endpoint's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventTypesError {
    #[error("must name at least one event type")]
    Empty,
    #[error("unknown event type {0:?}")]
    Unknown(String),
}

/// The event types an endpoint receives: a non-empty set.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventTypes(u8);

impl EventTypes {
    pub const ALL: Self = Self(0b1111);

    fn bit(kind: EventType) -> u8 {
        match kind {
            EventType::ConversationCreated => 1,
            EventType::ConversationUpdated => 2,
            EventType::ConversationImported => 4,
            EventType::MessageCreated => 8,
        }
    }

    /// From names; duplicates are harmless, an unknown name or none at all is refused.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, EventTypesError> {
        let mut bits = 0;
        for name in names {
            let kind =
                EventType::parse(name).ok_or_else(|| EventTypesError::Unknown(name.to_owned()))?;
            bits |= Self::bit(kind);
        }
        if bits == 0 {
            return Err(EventTypesError::Empty);
        }
        Ok(Self(bits))
    }

    pub fn contains(self, kind: EventType) -> bool {
        self.0 & Self::bit(kind) != 0
    }

    /// The types, in the contract's order.
    pub fn iter(self) -> impl Iterator<Item = EventType> {
        EventType::ALL
            .into_iter()
            .filter(move |k| self.contains(k.to_owned()))
    }

    /// Space-separated names (how the adapters store it).
    pub fn to_names(self) -> String {
        self.iter()
            .map(EventType::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The stored form back.
    pub fn from_names(names: &str) -> Result<Self, EventTypesError> {
        Self::parse(names.split_ascii_whitespace())
    }
}

impl fmt::Debug for EventTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The secret an endpoint's deliveries are signed with: 32 bytes. It is never stored:
/// the database keeps a random seed, and the secret is derived from the seed with the
/// server's key ([`WebhookSecret::derive`]), so a database dump alone cannot sign.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret([u8; 32]);

/// The per-endpoint random value the secret is derived from (stored).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretSeed(pub [u8; 32]);

impl fmt::Debug for SecretSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretSeed(…)")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl WebhookSecret {
    /// The endpoint's secret: HMAC-SHA256 under the server's key of the endpoint's
    /// business, id and seed (bound to the endpoint: a seed copied to another row
    /// gives another secret).
    pub fn derive(
        server_key: &[u8; 32],
        business: BusinessId,
        endpoint: WebhookId,
        seed: &SecretSeed,
    ) -> Self {
        let mut mac = keyed(server_key);
        mac.update(b"pingback webhook secret v1\0");
        mac.update(business.as_uuid().as_bytes());
        mac.update(endpoint.as_uuid().as_bytes());
        mac.update(&seed.0);
        Self(mac.finalize().into_bytes().into())
    }

    /// The form the business is shown once: `whsec_` + base64 of the 32 bytes.
    pub fn reveal(&self) -> String {
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(self.0)
        )
    }

    /// The Standard Webhooks signature header value:
    /// `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")).
    pub fn sign(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        signature(&self.0, webhook_id, timestamp, body)
    }
}

fn signature(key: &[u8], webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = keyed(key);
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: a 32-byte key cannot be refused.
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

/// When failed deliveries are tried again and when to stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the 1st, 2nd, … failure in a row; the last one repeats.
    schedule: Vec<Duration>,
    /// After this long failing (since the first failure in a row), the endpoint is
    /// disabled.
    give_up_after: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RetryPolicyError {
    #[error("the retry schedule needs at least one wait")]
    EmptySchedule,
    #[error("the retry schedule's waits must be positive")]
    ZeroWait,
}

impl RetryPolicy {
    pub fn new(schedule: Vec<Duration>, give_up_after: Duration) -> Result<Self, RetryPolicyError> {
        if schedule.is_empty() {
            return Err(RetryPolicyError::EmptySchedule);
        }
        if schedule.iter().any(Duration::is_zero) {
            return Err(RetryPolicyError::ZeroWait);
        }
        Ok(Self {
            schedule,
            give_up_after,
        })
    }

    /// The contract's default: 5 s, 30 s, 2 min, 10 min, 30 min, then hourly; disabled
    /// 24 h after the first failure.
    pub fn standard() -> Self {
        Self {
            schedule: [5, 30, 120, 600, 1800, 3600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            give_up_after: Duration::from_secs(86_400),
        }
    }

    fn wait_after(&self, failures: u32) -> Duration {
        let index = usize::try_from(failures.saturating_sub(1)).unwrap_or(usize::MAX);
        self.schedule
            .get(index)
            .or(self.schedule.last())
            .copied()
            .unwrap_or(Duration::from_secs(3600))
    }
}

/// How far delivery to an endpoint has come, stored with it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DeliveryState {
    /// Every event up to this id has been acknowledged (or was not of the endpoint's
    /// types); the next delivery is the first event above it.
    pub delivered_through: i64,
    pub last_attempt_at: Option<Timestamp>,
    /// Why the last attempt failed; cleared by a success.
    pub last_error: Option<String>,
    /// Not before this time (set after a failure).
    pub next_attempt_at: Option<Timestamp>,
    /// The first failure of the current run of failures.
    pub failing_since: Option<Timestamp>,
    /// Failures in a row.
    pub failures: u32,
}

/// What a failed attempt leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    RetryAt(Timestamp),
    /// Failing for longer than the policy allows: disable the endpoint.
    GiveUp,
}

impl DeliveryState {
    /// Event `id` was acknowledged at `at`.
    pub fn delivered(&mut self, id: i64, at: Timestamp) {
        self.delivered_through = self.delivered_through.max(id);
        self.last_attempt_at = Some(at);
        self.last_error = None;
        self.next_attempt_at = None;
        self.failing_since = None;
        self.failures = 0;
    }

    /// Event `id` is not for this endpoint (its type is not subscribed): passed over.
    pub fn passed_over(&mut self, id: i64) {
        self.delivered_through = self.delivered_through.max(id);
    }

    /// Events up to `id` were pruned before they could be delivered (retention): the
    /// position moves past them and the error says which were lost.
    pub fn expired_through(&mut self, id: i64) {
        if id > self.delivered_through {
            self.last_error = Some(format!(
                "events {} to {id} expired (events.retention_days) before they could be \
                 delivered",
                self.delivered_through + 1
            ));
            self.delivered_through = id;
        }
    }

    /// The attempt at `at` failed with `error`.
    pub fn failed(&mut self, at: Timestamp, error: &str, policy: &RetryPolicy) -> AfterFailure {
        self.last_attempt_at = Some(at);
        self.last_error = Some(truncate(error, MAX_ERROR_BYTES));
        self.failures = self.failures.saturating_add(1);
        let since = *self.failing_since.get_or_insert(at);
        let failing_for = at.unix_micros().saturating_sub(since.unix_micros());
        let give_up_after = i64::try_from(policy.give_up_after.as_micros()).unwrap_or(i64::MAX);
        if failing_for >= give_up_after {
            self.next_attempt_at = None;
            return AfterFailure::GiveUp;
        }
        let wait = i64::try_from(policy.wait_after(self.failures).as_micros()).unwrap_or(i64::MAX);
        let next = at.plus_micros(wait);
        self.next_attempt_at = Some(next);
        AfterFailure::RetryAt(next)
    }

    /// Enabled again after giving up (or being disabled): a fresh run, at once, from
    /// the first event not acknowledged. `last_error` stays until a success replaces it.
    pub fn resume(&mut self) {
        self.next_attempt_at = None;
        self.failing_since = None;
        self.failures = 0;
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A business's webhook endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: WebhookId,
    pub business_id: BusinessId,
    pub url: WebhookUrl,
    pub event_types: EventTypes,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub delivery: DeliveryState,
}

/// A change asked for by `PATCH` (absent fields unchanged).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookChange {
    pub url: Option<WebhookUrl>,
    pub event_types: Option<EventTypes>,
    pub enabled: Option<bool>,
}

impl WebhookEndpoint {
    /// A new endpoint: enabled, delivering the events committed after `after` (the
    /// business's last event id when it registers: no history is replayed).
    pub fn register(
        id: WebhookId,
        business_id: BusinessId,
        url: WebhookUrl,
        event_types: EventTypes,
        created_at: Timestamp,
        after: i64,
    ) -> Self {
        Self {
            id,
            business_id,
            url,
            event_types,
            enabled: true,
            created_at,
            delivery: DeliveryState {
                delivered_through: after,
                ..DeliveryState::default()
            },
        }
    }

    /// Applies `change`. Enabling a disabled endpoint starts a fresh run of attempts
    /// from the first event it did not acknowledge.
    pub fn apply(&mut self, change: WebhookChange) {
        if let Some(url) = change.url {
            self.url = url;
        }
        if let Some(types) = change.event_types {
            self.event_types = types;
        }
        if let Some(enabled) = change.enabled {
            if enabled && !self.enabled {
                self.delivery.resume();
            }
            self.enabled = enabled;
        }
    }

    /// The `webhook-id` of event `event_id`: the same on every attempt.
    pub fn message_id(&self, event_id: i64) -> String {
        format!("{}.{event_id}", self.business_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_700_000_000_000_000 + seconds * 1_000_000).unwrap()
    }

    #[test]
    fn urls_must_be_https_absolute_without_credentials() {
        assert!(WebhookUrl::parse("https://example.com/hooks", false).is_ok());
        assert_eq!(
            WebhookUrl::parse("http://example.com/", false),
            Err(WebhookUrlError::NotHttps)
        );
        assert!(WebhookUrl::parse("http://example.com/", true).is_ok());
        assert_eq!(
            WebhookUrl::parse("ftp://example.com/", true),
            Err(WebhookUrlError::NotHttps)
        );
        assert!(matches!(
            WebhookUrl::parse("example.com", false),
            Err(WebhookUrlError::Malformed(_))
        ));
        assert_eq!(
            WebhookUrl::parse("https://user:pw@example.com/", false),
            Err(WebhookUrlError::Credentials)
        );
        assert_eq!(
            WebhookUrl::parse("https://example.com/#x", false),
            Err(WebhookUrlError::Fragment)
        );
        let long = format!("https://example.com/{}", "a".repeat(MAX_WEBHOOK_URL_BYTES));
        assert_eq!(
            WebhookUrl::parse(&long, false),
            Err(WebhookUrlError::TooLong)
        );
    }

    #[test]
    fn hosts_are_names_or_literal_addresses() {
        let url = WebhookUrl::parse("https://[::ffff:127.0.0.1]:8443/x", false).unwrap();
        assert!(matches!(url.host(), WebhookHost::Address(_)));
        assert_eq!(url.port(), 8443);
        let url = WebhookUrl::parse("https://Example.COM/x", false).unwrap();
        assert_eq!(url.host(), WebhookHost::Name("example.com"));
        assert_eq!(url.port(), 443);
        // Decimal and other odd IPv4 spellings are normalised to the address.
        let url = WebhookUrl::parse("https://2130706433/", false).unwrap();
        assert_eq!(
            url.host(),
            WebhookHost::Address("127.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn event_types_are_a_non_empty_set_of_known_names() {
        let types = EventTypes::parse(["message.created", "message.created"]).unwrap();
        assert!(types.contains(EventType::MessageCreated));
        assert!(!types.contains(EventType::ConversationCreated));
        assert_eq!(types.to_names(), "message.created");
        assert_eq!(EventTypes::from_names(&types.to_names()), Ok(types));
        assert_eq!(EventTypes::parse([]), Err(EventTypesError::Empty));
        assert_eq!(
            EventTypes::parse(["message.deleted"]),
            Err(EventTypesError::Unknown("message.deleted".into()))
        );
        assert_eq!(EventTypes::ALL.iter().count(), 4);
    }

    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        // The specification's example (its secret is 24 bytes; ours are 32).
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        assert_eq!(
            signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                b"{\"test\": 2432232314}"
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_depend_on_the_key_the_endpoint_and_the_seed() {
        let business = BusinessId::from_uuid(uuid::Uuid::from_u128(1));
        let endpoint = WebhookId::from_uuid(uuid::Uuid::from_u128(2));
        let seed = SecretSeed([7; 32]);
        let one = WebhookSecret::derive(&[1; 32], business, endpoint, &seed);
        assert_eq!(
            one,
            WebhookSecret::derive(&[1; 32], business, endpoint, &seed)
        );
        assert_ne!(
            one,
            WebhookSecret::derive(&[2; 32], business, endpoint, &seed)
        );
        let other = WebhookId::from_uuid(uuid::Uuid::from_u128(3));
        assert_ne!(one, WebhookSecret::derive(&[1; 32], business, other, &seed));
        assert!(one.reveal().starts_with("whsec_"));
        assert_eq!(one.reveal().len(), 6 + 44);
        assert_eq!(format!("{one:?}"), "WebhookSecret(…)");
    }

    #[test]
    fn failures_follow_the_schedule_then_give_up() {
        let policy = RetryPolicy::new(
            vec![Duration::from_secs(5), Duration::from_secs(30)],
            Duration::from_secs(100),
        )
        .unwrap();
        let mut state = DeliveryState::default();
        assert_eq!(
            state.failed(at(0), "500", &policy),
            AfterFailure::RetryAt(at(5))
        );
        assert_eq!(
            state.failed(at(5), "500", &policy),
            AfterFailure::RetryAt(at(35))
        );
        // The last wait repeats.
        assert_eq!(
            state.failed(at(35), "500", &policy),
            AfterFailure::RetryAt(at(65))
        );
        assert_eq!(state.failing_since, Some(at(0)));
        assert_eq!(state.failed(at(100), "500", &policy), AfterFailure::GiveUp);
        assert_eq!(state.next_attempt_at, None);
        state.resume();
        assert_eq!(state.failures, 0);
        assert_eq!(
            state.failed(at(200), "500", &policy),
            AfterFailure::RetryAt(at(205))
        );
        state.delivered(9, at(205));
        assert_eq!(state.delivered_through, 9);
        assert_eq!((state.failures, state.last_error.as_deref()), (0, None));
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let mut state = DeliveryState::default();
        let error = "é".repeat(MAX_ERROR_BYTES);
        state.failed(at(0), &error, &RetryPolicy::standard());
        let kept = state.last_error.unwrap();
        assert!(kept.len() <= MAX_ERROR_BYTES + 3);
    }

    #[test]
    fn enabling_again_resumes_where_delivery_stopped() {
        let url = WebhookUrl::parse("https://example.com/", false).unwrap();
        let mut endpoint = WebhookEndpoint::register(
            WebhookId::from_uuid(uuid::Uuid::from_u128(2)),
            BusinessId::from_uuid(uuid::Uuid::from_u128(1)),
            url,
            EventTypes::ALL,
            at(0),
            41,
        );
        assert_eq!(endpoint.delivery.delivered_through, 41);
        endpoint
            .delivery
            .failed(at(1), "timeout", &RetryPolicy::standard());
        endpoint.enabled = false;
        endpoint.apply(WebhookChange {
            enabled: Some(true),
            ..WebhookChange::default()
        });
        assert!(endpoint.enabled);
        assert_eq!(endpoint.delivery.next_attempt_at, None);
        assert_eq!(endpoint.delivery.delivered_through, 41);
        assert_eq!(
            endpoint.message_id(42),
            "00000000-0000-0000-0000-000000000001.42"
        );
    }

    #[test]
    fn pruned_events_move_the_position_and_say_so() {
        let mut state = DeliveryState {
            delivered_through: 3,
            ..DeliveryState::default()
        };
        state.expired_through(10);
        assert_eq!(state.delivered_through, 10);
        assert!(state.last_error.unwrap().contains("events 4 to 10 expired"));
    }
}
