//! Routing and handlers.

use std::convert::Infallible;
use std::sync::Arc;

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, guard, web};
use futures_util::{Stream, stream};
use pingback_application::{
    ConversationCommands, ConversationService, GetConversationError, Principal, Scope,
};
use pingback_domain::ConversationId;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::TokenAuthority;
use crate::envelope::{RequestId, contain_panics};
use crate::etag::{none_match, revision_etag, strong_etag};
use crate::metrics::Metrics;
use crate::openapi;
use crate::problem::ApiError;
use crate::representation::{ConversationBody, to_json};
use actix_web::middleware::from_fn;

/// A resource answering its routes (405 with `Allow: $allow` otherwise), with panics
/// contained, carrying its metrics label.
macro_rules! resource {
    ($path:expr, $allow:expr, $($route:expr => $handler:expr),+ $(,)?) => {
        web::resource($path)
            .app_data(crate::metrics::RouteLabel::of($path))
            .wrap(from_fn(contain_panics))
            $(.route($route.to($handler)))+
            .default_service(web::to(|| async {
                Err::<HttpResponse, ApiError>(ApiError::MethodNotAllowed($allow))
            }))
    };
}

/// What handlers share; cheap to clone into every worker.
#[derive(Clone)]
pub struct ApiState {
    pub conversations: ConversationService,
    pub commands: ConversationCommands,
    pub events: crate::events::EventRoutes,
    pub webhooks: pingback_application::WebhookService,
    pub tokens: Arc<TokenAuthority>,
    pub metrics: Arc<Metrics>,
}

/// Mounts every route on an actix `App`.
pub fn configure(state: ApiState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state))
            .service(resource!("/api/v1/conversations", "GET, HEAD, POST",
                get_or_head() => crate::inbox::list_conversations,
                web::post() => crate::writes::create_conversation))
            .service(
                resource!("/api/v1/conversations/{conversation_id}", "GET, HEAD, PATCH",
                get_or_head() => get_conversation,
                web::patch() => crate::writes::patch_conversation),
            )
            .service(
                resource!("/api/v1/conversations/{conversation_id}/messages", "POST",
                web::post() => crate::writes::post_message),
            )
            .service(resource!(
                "/api/v1/conversations/{conversation_id}/messages/{message_id}", "GET, HEAD",
                get_or_head() => crate::writes::get_message))
            .service(resource!("/api/v1/events", "GET, HEAD",
                get_or_head() => crate::events::list_events))
            .service(resource!("/api/v1/events/stream", "GET, HEAD",
                get_or_head() => crate::events::stream_events))
            .service(resource!("/api/v1/webhooks", "GET, HEAD, POST",
                get_or_head() => crate::webhooks::list_webhooks,
                web::post() => crate::webhooks::create_webhook))
            .service(
                resource!("/api/v1/webhooks/{webhook_id}", "GET, HEAD, PATCH, DELETE",
                get_or_head() => crate::webhooks::get_webhook,
                web::patch() => crate::webhooks::patch_webhook,
                web::delete() => crate::webhooks::delete_webhook),
            )
            .service(resource!("/healthz", "GET, HEAD", get_or_head() => healthz))
            .service(resource!("/readyz", "GET, HEAD", get_or_head() => readyz))
            .service(resource!("/metrics", "GET, HEAD", get_or_head() => metrics))
            .service(resource!(openapi::SPEC_PATH, "GET, HEAD", get_or_head() => openapi_json))
            .service(resource!(openapi::DOCS_PATH, "GET, HEAD", get_or_head() => docs))
            .default_service(web::to(route_not_found));
    }
}

/// HEAD is answered by the GET handler; actix sends the same headers and no body.
fn get_or_head() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

async fn route_not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}

pub(crate) fn authenticate(
    req: &HttpRequest,
    tokens: &TokenAuthority,
) -> Result<Principal, ApiError> {
    // Only the first Authorization header counts; repeated ones are not merged.
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    tokens.authenticate(header).map_err(ApiError::Unauthorized)
}

/// Get a conversation with its customer and complete message history
///
/// One conversation of the caller's business, with its embedded customer and its
/// **complete** message history (never capped, never paged). The tenant comes only
/// from the verified token: a conversation of another business is a 404 that looks
/// exactly like a missing one. Authentication is decided before the path id is looked
/// at and needs no database.
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{conversation_id}",
    operation_id = "getConversation",
    tag = "conversations",
    params(
        ("conversation_id" = String, Path, format = "uuid",
            example = json!(crate::example::CONVERSATION),
            description = "The conversation's id: a hyphenated UUID, any letter case. \
                Anything else is a 404."),
        ("If-None-Match" = Option<String>, Header,
            description = "An `ETag` from an earlier response: the current one gives 304 \
                with no body (`*` matches any)."),
    ),
    security(("bearerAuth" = ["conversations:read"])),
    responses(
        (status = 200, description = "The conversation, in the caller's business.",
            body = ConversationBody<'static>),
        (status = 304, description = "`If-None-Match` carries the current `ETag`; no body."),
    )
)]
pub(crate) async fn get_conversation(
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    // Authentication comes first: a bad token is a 401 whatever the path says.
    let principal = crate::writes::authorize(&req, &state, Scope::ConversationsRead)?;
    let id = conversation_id(&req)?;

    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    // A conditional request for a current copy is answered from the revision alone:
    // one indexed row, no history, no body.
    if let Some(tags) = if_none_match {
        let revision = state
            .conversations
            .conversation_revision(&principal, id)
            .await
            .map_err(|error| read_error(&req, &state, error))?;
        let etag = revision_etag(principal.business_id(), id, revision);
        if none_match(tags, &etag) {
            return Ok(not_modified(etag));
        }
    }

    let conversation = state
        .conversations
        .get_conversation(&principal, id)
        .await
        .map_err(|error| read_error(&req, &state, error))?;

    let body = to_json(&conversation).map_err(|error| {
        tracing::error!(%error, "serializing a conversation failed");
        ApiError::Internal
    })?;
    let etag = match conversation.revision() {
        Some(revision) => revision_etag(conversation.business_id(), conversation.id(), revision),
        None => strong_etag(&body),
    };
    // A conversation read without a revision is tagged by its body: checked only now.
    if if_none_match.is_some_and(|tags| none_match(tags, &etag)) {
        return Ok(not_modified(etag));
    }
    let mut response = HttpResponse::Ok();
    cache_headers(&mut response, etag);
    Ok(response
        .content_type("application/json")
        .body(in_slices(body)))
}

/// The path's conversation id; anything that is not a UUID is a 404.
pub(crate) fn conversation_id(req: &HttpRequest) -> Result<ConversationId, ApiError> {
    req.match_info()
        .get("conversation_id")
        .and_then(|raw| ConversationId::parse(raw).ok())
        .ok_or(ApiError::ConversationNotFound)
}

/// A storage failure as the API answers it: counted in the metrics, logged with the
/// request's id and 503 when the database is unavailable, 500 (logged as `$failed`)
/// otherwise. A macro so that each log line keeps the module it comes from as its
/// target.
macro_rules! storage_failure {
    ($state:expr, $request_id:expr, unavailable: $source:expr) => {{
        $state
            .metrics
            .database_error($crate::metrics::DatabaseError::Unavailable);
        tracing::warn!(request_id = $request_id, error = %$source, "database unavailable");
        $crate::problem::ApiError::Unavailable
    }};
    ($state:expr, $request_id:expr, internal: $source:expr, $failed:literal) => {{
        $state
            .metrics
            .database_error($crate::metrics::DatabaseError::Internal);
        tracing::error!(request_id = $request_id, error = %$source, $failed);
        $crate::problem::ApiError::Internal
    }};
}
pub(crate) use storage_failure;

/// The failures of a read as the API reports them.
pub(crate) fn read_error(
    req: &HttpRequest,
    state: &ApiState,
    error: GetConversationError,
) -> ApiError {
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    match error {
        GetConversationError::Forbidden(missing) => ApiError::Forbidden(missing.0),
        GetConversationError::NotFound => ApiError::ConversationNotFound,
        GetConversationError::Unavailable(source) => {
            storage_failure!(state, request_id, unavailable: source)
        }
        GetConversationError::Internal(source) => {
            storage_failure!(state, request_id, internal: source, "get conversation failed")
        }
    }
}

/// 304: the client's copy is current.
fn not_modified(etag: String) -> HttpResponse {
    let mut response = HttpResponse::NotModified();
    cache_headers(&mut response, etag);
    response.finish()
}

/// A representation's `ETag` and the caching headers of tenant data.
pub(crate) fn cache_headers(response: &mut actix_web::HttpResponseBuilder, etag: String) {
    response.insert_header((header::ETAG, etag));
    tenant_caching(response);
}

/// Tenant data: never stored by shared caches, always revalidated; the body depends
/// on the token's business.
pub(crate) fn tenant_caching(response: &mut actix_web::HttpResponseBuilder) {
    response
        .insert_header((header::CACHE_CONTROL, TENANT_CACHE_CONTROL))
        .insert_header((header::VARY, "Authorization"));
}

/// `Cache-Control` of every answer carrying tenant data (the OpenAPI document states
/// it too).
pub(crate) const TENANT_CACHE_CONTROL: &str = "private, no-cache";

/// How much of a body is handed to actix at a time.
const SLICE: usize = 64 * 1024;

/// The body as a stream of slices of one buffer (no copies), with its length.
///
/// Handed over whole, actix copies a body into the connection's write buffer, which
/// keeps that capacity for as long as the connection lives: every keep-alive
/// connection that once served a 10,000-message conversation then held megabytes
/// (measured: 192 MiB resident under 32 concurrent such reads). In slices the buffer
/// never grows past a slice or two.
fn in_slices(body: Vec<u8>) -> SizedStream<impl Stream<Item = Result<Bytes, Infallible>>> {
    let body = Bytes::from(body);
    let len = body.len();
    let slices = (0..len)
        .step_by(SLICE)
        .map(move |start| Ok(body.slice(start..len.min(start + SLICE))));
    SizedStream::new(len as u64, stream::iter(slices))
}

/// The body of `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Liveness {
    status: Alive,
}

#[derive(Serialize, ToSchema)]
enum Alive {
    #[serde(rename = "ok")]
    Ok,
}

/// The body of `GET /readyz` when the database answers.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    status: Ready,
}

#[derive(Serialize, ToSchema)]
enum Ready {
    #[serde(rename = "ready")]
    Ready,
}

/// Liveness
///
/// 200 while the process runs. Needs no token and no database.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses((status = 200, description = "The process is running.", body = Liveness)),
)]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Liveness { status: Alive::Ok })
}

/// Readiness
///
/// 200 when the database answers a trivial query, else 503 with `Retry-After` (take
/// the instance out of rotation). Needs no token.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses((status = 200, description = "The database answers.", body = Readiness)),
)]
pub(crate) async fn readyz(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    match state.conversations.ready().await {
        Ok(()) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(Readiness {
                status: Ready::Ready,
            })),
        Err(error) => {
            tracing::warn!(error = %error.0, "readiness check failed");
            Err(ApiError::Unavailable)
        }
    }
}

/// Prometheus metrics
///
/// The Prometheus text exposition format (0.0.4): requests by route and status,
/// request latency, database errors, pool gauges and the log lines dropped because
/// stderr did not keep up (`pingback_log_lines_dropped_total`). Needs no token.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4.",
        body = String, content_type = "text/plain")),
)]
pub(crate) async fn metrics(state: web::Data<ApiState>) -> HttpResponse {
    let storage = state.metrics.storage_gauges();
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(storage))
}

/// This OpenAPI document
///
/// The OpenAPI 3.1 description of this API, generated from the code that serves it.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openapi",
    tag = "documentation",
    responses((status = 200, description = "The OpenAPI 3.1 document.",
        body = Object, content_type = "application/json")),
)]
pub(crate) async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type("application/json")
        .body(openapi::json())
}

/// The docs page
///
/// A self-contained HTML page (no external resources) rendering this document: the
/// endpoint, authentication, parameters, response fields, errors and examples.
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "docs",
    tag = "documentation",
    responses((status = 200, description = "The HTML documentation page.",
        body = String, content_type = "text/html")),
)]
pub(crate) async fn docs() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // The page is self-contained: nothing may be loaded from anywhere.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
             img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ))
        .content_type("text/html; charset=utf-8")
        .body(openapi::docs_page())
}
