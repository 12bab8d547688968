//! The middleware every request passes through: request ids, the head-size limit,
//! panic isolation, problem+json rendering with the request id, and the access log.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest};
use futures_util::FutureExt as _;

use crate::metrics::{RouteLabel, route_label};
use crate::problem::{ApiError, PROBLEM_JSON};
use crate::routes::ApiState;
use actix_web::web;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The contract's limit on a request head (request line plus headers).
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// The id of the current request, available to handlers through request extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The client's id when it is sane (1–128 of `A-Z a-z 0-9 . _ -`), else a new UUID.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .map(HeaderValue::as_bytes)
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
        .and_then(|v| std::str::from_utf8(v).ok())
        .map_or_else(|| new_request_id().to_string(), str::to_owned)
}

/// A random (version 4) UUID from a per-thread generator seeded once from the OS:
/// `Uuid::new_v4` asks the kernel for every id, a system call per request. Request
/// ids must be unique, not secret.
fn new_request_id() -> uuid::Uuid {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(uuid::Uuid::new_v4().as_u64_pair().0);
    }
    // splitmix64: a full-period sequence of well-mixed outputs.
    let next = || {
        STATE.with(|state| {
            let s = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            state.set(s);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
    };
    let bytes = (u128::from(next()) << 64 | u128::from(next())).to_le_bytes();
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Bytes of the request line and headers as they came on the wire (near enough).
fn head_size(req: &ServiceRequest) -> usize {
    let line = req.method().as_str().len() + displayed_len(req.uri()) + 12;
    req.headers().iter().fold(line, |sum, (name, value)| {
        sum + name.as_str().len() + value.len() + 4
    })
}

/// The length of `value`'s `Display`, counted without writing it anywhere.
fn displayed_len(value: &impl std::fmt::Display) -> usize {
    struct Count(usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = std::fmt::Write::write_fmt(&mut count, format_args!("{value}"));
    count.0
}

/// A latency in milliseconds with three decimals (`0.812`), from whole microseconds:
/// integer formatting, cheaper than a float's.
struct Millis(std::time::Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let micros = u64::try_from(self.0.as_micros()).unwrap_or(u64::MAX);
        write!(f, "{}.{:03}", micros / 1000, micros % 1000)
    }
}

pub async fn envelope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let id = request_id(req.headers());
    req.extensions_mut().insert(RequestId(id.clone()));

    // No clone of the request may be alive while it is routed (actix needs it unique).
    let response = if head_size(&req) > MAX_HEAD_BYTES {
        req.into_response(ApiError::HeadTooLarge.to_response(&id))
    } else {
        next.call(req).await?.map_into_boxed_body()
    };

    let mut response = render_problem(response, &id);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }

    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let request = response.request();
    if let Some(state) = request.app_data::<web::Data<ApiState>>() {
        state.metrics.observe(
            request
                .app_data::<RouteLabel>()
                .map_or(route_label(None), |label| label.0),
            status,
            elapsed,
        );
    }
    // Never the query string or headers: they may carry credentials (`access_token`).
    // The values are borrowed, formatted only if the line is written (and then
    // straight into the log's buffer).
    tracing::info!(
        target: "pingback::access",
        request_id = %id,
        method = %request.method(),
        path = %request.path(),
        status,
        latency_ms = %Millis(elapsed),
        "request"
    );
    Ok(response)
}

/// Wraps routed handlers: a panic becomes an opaque 500 for that request only, and
/// the worker goes on serving others.
pub async fn contain_panics(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    // Routing is done at this depth, so holding a clone is safe.
    let http_request: HttpRequest = req.request().clone();
    match AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(result) => result.map(ServiceResponse::map_into_boxed_body),
        Err(_) => {
            // The panic hook already logged the message and location.
            tracing::error!("handler panicked; answered 500");
            Ok(ServiceResponse::from_err(ApiError::Internal, http_request))
        }
    }
}

/// Every error response leaves as problem+json carrying the request id, whoever made
/// it: our handlers, actix's extractors, or the router.
fn render_problem(response: ServiceResponse<BoxBody>, id: &str) -> ServiceResponse<BoxBody> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let problem = match response.response().error() {
        Some(error) => match error.as_error::<ApiError>() {
            Some(api) => api.to_response(id),
            None => ApiError::from_status(status).to_response(id),
        },
        None => {
            let is_problem = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
            if is_problem {
                return response;
            }
            ApiError::from_status(status).to_response(id)
        }
    };
    let (http_request, _) = response.into_parts();
    ServiceResponse::new(http_request, problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_request_ids_are_distinct_version_4_uuids() {
        let ids: std::collections::HashSet<uuid::Uuid> =
            (0..10_000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(
            ids.iter()
                .all(|id| id.get_version_num() == 4 && id.get_variant() == uuid::Variant::RFC4122)
        );
        // Another thread starts from another seed.
        let other = std::thread::spawn(new_request_id).join().unwrap();
        assert!(!ids.contains(&other));
    }

    #[test]
    fn latencies_are_milliseconds_with_three_decimals() {
        use std::time::Duration;
        assert_eq!(Millis(Duration::from_nanos(812_499)).to_string(), "0.812");
        assert_eq!(
            Millis(Duration::from_micros(12_345_678)).to_string(),
            "12345.678"
        );
        assert_eq!(Millis(Duration::ZERO).to_string(), "0.000");
    }

    #[test]
    fn the_head_size_counts_the_uri_as_written() {
        let uri: actix_web::http::Uri = "/api/v1/conversations?after=ab%20c&access_token=x"
            .parse()
            .unwrap();
        assert_eq!(displayed_len(&uri), uri.to_string().len());
        let absolute: actix_web::http::Uri = "http://example.com:8080/x?y".parse().unwrap();
        assert_eq!(displayed_len(&absolute), absolute.to_string().len());
    }

    /// Records the fields of access events.
    struct AccessEvents(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl tracing::Subscriber for AccessEvents {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            if event.metadata().target() != "pingback::access" {
                return;
            }
            let mut line = String::new();
            event.record(
                &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                    use std::fmt::Write as _;
                    let _ = write!(line, "{}={value:?} ", field.name());
                },
            );
            self.0.lock().unwrap().push(line);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[actix_web::test]
    async fn the_access_line_never_carries_the_query_string() {
        use actix_web::{App, middleware::from_fn, test};
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let _capture =
            tracing::dispatcher::set_default(&tracing::Dispatch::new(AccessEvents(lines.clone())));
        let app = test::init_service(
            App::new()
                .wrap(from_fn(envelope))
                .route("/api/v1/events/stream", web::get().to(|| async { "ok" })),
        )
        .await;
        let request = test::TestRequest::get()
            .uri("/api/v1/events/stream?access_token=secret.jwt.value&after=3")
            .insert_header((REQUEST_ID, "req-1"))
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), 200);
        let lines = lines.lock().unwrap().clone();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert!(
            line.starts_with(
                "message=request request_id=req-1 method=GET path=/api/v1/events/stream status=200 latency_ms="
            ),
            "{line}"
        );
        assert!(!line.contains("secret") && !line.contains('?'), "{line}");
    }
}
