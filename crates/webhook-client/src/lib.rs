//! The outbound webhook adapter: POSTs signed deliveries to the endpoints businesses
//! registered ([`WebhookTransport`]) and decides which destinations may be registered
//! at all ([`DestinationGuard`]).
//!
//! A webhook URL is chosen by a tenant, so every request made here is a request the
//! server makes on a tenant's behalf. Hence: only `https` (unless the operator allows
//! `http`), only public addresses, checked on the very address connected to (the
//! resolver checks what it returns, literal addresses are checked before sending), no
//! redirects (a 3xx could point anywhere), no proxy, a total deadline, and an answer
//! body read at most [`MAX_DRAINED_BODY`] bytes.

mod address;
mod resolve;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingback_application::{
    DeliveryFailure, DeliveryRequest, DestinationGuard, DestinationRefused, WebhookTransport,
};
use pingback_domain::{WebhookHost, WebhookUrl};
use reqwest::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};

pub use crate::address::is_public;
use crate::resolve::{CheckedResolver, ResolveError, resolve_checked};

/// The most of an answer's body that is read. The body is not used: reading a small
/// one lets the connection be reused, and stopping here (closing the connection)
/// keeps an endpoint from making the server download without end.
pub const MAX_DRAINED_BODY: usize = 64 * 1024;
/// How long a name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
const USER_AGENT_VALUE: &str = concat!("pingback-webhooks/", env!("CARGO_PKG_VERSION"));

/// What the operator allows (`webhooks.*` in the configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    /// Accept `http` URLs as well as `https` (development and tests only).
    pub allow_http: bool,
    /// Skip the public-address check (development and tests only: lets endpoints on
    /// `localhost` or the private network be registered and delivered to).
    pub allow_private_networks: bool,
    /// How long an attempt may take in all: resolving, connecting, sending and
    /// receiving the answer's head.
    pub timeout: Duration,
}

impl Default for ClientSettings {
    /// The contract's: `https` to public addresses, answered within 10 s.
    fn default() -> Self {
        Self {
            allow_http: false,
            allow_private_networks: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The HTTP client could not be built (the TLS setup failed).
#[derive(Debug, thiserror::Error)]
#[error("building the webhook HTTP client failed")]
pub struct BuildError(#[source] reqwest::Error);

/// POSTs webhook deliveries, and checks destinations. Cheap to clone (one connection
/// pool, shared).
#[derive(Clone, Debug)]
pub struct WebhookClient {
    http: reqwest::Client,
    settings: ClientSettings,
}

impl WebhookClient {
    pub fn new(settings: ClientSettings) -> Result<Self, BuildError> {
        let resolver = CheckedResolver {
            allow_private_networks: settings.allow_private_networks,
            timeout: RESOLVE_TIMEOUT.min(settings.timeout),
        };
        let http = reqwest::Client::builder()
            // A redirect could lead anywhere, a private address included; a 3xx is a
            // failure the business sees in `last_error`.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect on our behalf to an address we never checked.
            .no_proxy()
            .dns_resolver(Arc::new(resolver))
            .timeout(settings.timeout)
            .https_only(!settings.allow_http)
            .build()
            .map_err(BuildError)?;
        Ok(Self { http, settings })
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// The scheme and literal-address rules, which need no network.
    fn check_without_resolving(&self, url: &WebhookUrl) -> Result<(), String> {
        if !url.is_https() && !self.settings.allow_http {
            return Err(format!("{url} does not use https"));
        }
        if let WebhookHost::Address(ip) = url.host()
            && !self.settings.allow_private_networks
            && !is_public(ip)
        {
            return Err(format!("{ip} is not a public address"));
        }
        Ok(())
    }

    /// The attempt's timeout in whole seconds, rounded up (as `last_error` shows it).
    fn timeout_secs(&self) -> u64 {
        let timeout = self.settings.timeout;
        timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0)
    }

    fn failure(&self, error: &reqwest::Error, url: &WebhookUrl) -> DeliveryFailure {
        if let Some(resolving) = find_source::<ResolveError>(error) {
            return match resolving {
                ResolveError::NotPublic { .. } => DeliveryFailure::Refused(resolving.to_string()),
                ResolveError::TimedOut { .. } => DeliveryFailure::Timeout(self.timeout_secs()),
                _ => DeliveryFailure::Connection(resolving.to_string()),
            };
        }
        if error.is_timeout() {
            return DeliveryFailure::Timeout(self.timeout_secs());
        }
        let cause = describe(error);
        let host = host_port(url);
        if error.is_connect() {
            DeliveryFailure::Connection(format!("could not connect to {host}: {cause}"))
        } else {
            DeliveryFailure::Connection(format!("request to {host} failed: {cause}"))
        }
    }
}

#[async_trait]
impl WebhookTransport for WebhookClient {
    async fn post<'a>(&self, request: DeliveryRequest<'a>) -> Result<(), DeliveryFailure> {
        let url = request.url;
        // Literal addresses never reach the resolver: checked here instead.
        self.check_without_resolving(url)
            .map_err(DeliveryFailure::Refused)?;
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        let sending = self
            .http
            .post(url.as_str())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE))
            .header("webhook-id", request.webhook_id)
            .header("webhook-timestamp", request.timestamp)
            .header("webhook-signature", request.signature)
            .body(request.body.to_vec())
            .send();
        // reqwest's own timeout covers the same; this one also bounds anything it
        // does not (and is the one that wins on a tie).
        let response = match tokio::time::timeout_at(deadline, sending).await {
            Err(_) => return Err(DeliveryFailure::Timeout(self.timeout_secs())),
            Ok(Err(error)) => return Err(self.failure(&error, url)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        // The status is the answer: a body that stalls or fails after it changes nothing.
        let _ = tokio::time::timeout_at(deadline, drain(response)).await;
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryFailure::Status(status.as_u16()))
        }
    }
}

#[async_trait]
impl DestinationGuard for WebhookClient {
    async fn check(&self, url: &WebhookUrl) -> Result<(), DestinationRefused> {
        self.check_without_resolving(url)
            .map_err(DestinationRefused)?;
        if let WebhookHost::Name(name) = url.host() {
            // Even with private networks allowed, a name must resolve: a typo is
            // better refused at registration than retried for a day.
            resolve_checked(name, self.settings.allow_private_networks, RESOLVE_TIMEOUT)
                .await
                .map_err(|error| match error {
                    ResolveError::Failed { host, .. } => {
                        DestinationRefused(ResolveError::NoAddress(host).to_string())
                    }
                    other => DestinationRefused(other.to_string()),
                })?;
        }
        Ok(())
    }
}

/// Reads at most [`MAX_DRAINED_BODY`] bytes of the body and drops the rest (dropping
/// a response not read to its end closes its connection).
async fn drain(mut response: reqwest::Response) {
    let mut read = 0;
    while read < MAX_DRAINED_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) | Err(_) => break,
        }
    }
}

/// The first error of type `E` in `error`'s source chain.
fn find_source<'e, E: std::error::Error + 'static>(
    error: &'e (dyn std::error::Error + 'static),
) -> Option<&'e E> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// A short cause: the innermost error, in words for the usual I/O failures
/// ("connection refused" rather than reqwest's "error sending request for url").
fn describe(error: &reqwest::Error) -> String {
    if let Some(io) = find_source::<std::io::Error>(error) {
        use std::io::ErrorKind as K;
        let words = match io.kind() {
            K::ConnectionRefused => Some("connection refused"),
            K::ConnectionReset => Some("connection reset"),
            K::ConnectionAborted => Some("connection aborted"),
            K::TimedOut => Some("connection timed out"),
            K::HostUnreachable => Some("host unreachable"),
            K::NetworkUnreachable => Some("network unreachable"),
            K::AddrNotAvailable => Some("address not available"),
            K::UnexpectedEof => Some("connection closed"),
            _ => None,
        };
        if let Some(words) = words {
            return words.to_owned();
        }
    }
    let mut innermost: &dyn std::error::Error = error;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    innermost.to_string()
}

/// `host:port` of the URL, for messages.
fn host_port(url: &WebhookUrl) -> String {
    match url.host() {
        WebhookHost::Name(name) => format!("{name}:{}", url.port()),
        WebhookHost::Address(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{}", url.port()),
        WebhookHost::Address(ip) => format!("{ip}:{}", url.port()),
    }
}
