//! The webhook endpoint routes (scope `webhooks:manage`): register, list, show,
//! change, delete. Checks run in the write routes' order: authentication (401), scope
//! (403), path (404), media type (415), size (413), JSON (400), values (422).

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use pingback_application::{Scope, WebhookError};
use pingback_domain::{WebhookEndpoint, WebhookId};
use serde::Serialize;
use utoipa::ToSchema;

use crate::envelope::RequestId;
use crate::problem::ApiError;
use crate::representation::{EventTypeName, Id, Time};
use crate::routes::{ApiState, storage_failure};
use crate::writes::{JSON, MERGE_PATCH, authorize, body};

const COLLECTION: &str = "/api/v1/webhooks";

/// A webhook endpoint with its delivery state; `secret` only in the answer that
/// registers it.
#[derive(Serialize, ToSchema)]
#[schema(as = Webhook)]
pub(crate) struct WebhookBody {
    id: Id,
    /// Where events are POSTed.
    #[schema(examples("https://hooks.example.com/pingback"))]
    url: String,
    /// The event types delivered.
    event_types: Vec<EventTypeName>,
    /// Whether events are being delivered.
    enabled: bool,
    /// The signing secret, `whsec_` + base64 of 32 bytes: only in the answer that
    /// registers the endpoint, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]{43}=$")]
    secret: Option<String>,
    created_at: Time,
    /// Every event of the business up to this id has been acknowledged (or is not of
    /// the endpoint's types). Starts at the business's last event when registered.
    #[schema(minimum = 0)]
    delivered_through: i64,
    last_attempt_at: Option<Time>,
    /// Why the last attempt failed (cleared by a success).
    last_error: Option<String>,
    /// When a failed delivery will be tried again.
    next_attempt_at: Option<Time>,
}

impl WebhookBody {
    fn of(endpoint: &WebhookEndpoint, secret: Option<String>) -> Self {
        let d = &endpoint.delivery;
        Self {
            id: Id(endpoint.id.into_uuid()),
            url: endpoint.url.as_str().to_owned(),
            event_types: endpoint.event_types.iter().map(EventTypeName).collect(),
            enabled: endpoint.enabled,
            secret,
            created_at: Time(endpoint.created_at),
            delivered_through: d.delivered_through,
            last_attempt_at: d.last_attempt_at.map(Time),
            last_error: d.last_error.clone(),
            next_attempt_at: d.next_attempt_at.map(Time),
        }
    }
}

/// The business's endpoints.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookList)]
pub(crate) struct WebhookList {
    data: Vec<WebhookBody>,
}

fn json(value: &impl Serialize) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|error| {
        tracing::error!(%error, "serializing a webhook endpoint failed");
        ApiError::Internal
    })
}

fn location(id: WebhookId) -> String {
    format!("{COLLECTION}/{id}")
}

fn webhook_id(req: &HttpRequest) -> Result<WebhookId, ApiError> {
    req.match_info()
        .get("webhook_id")
        .and_then(|raw| WebhookId::parse(raw).ok())
        .ok_or(ApiError::WebhookNotFound)
}

fn webhook_error(req: &HttpRequest, state: &ApiState, error: WebhookError) -> ApiError {
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    match error {
        WebhookError::Forbidden(missing) => ApiError::Forbidden(missing.0),
        WebhookError::NotFound => ApiError::WebhookNotFound,
        WebhookError::Invalid(errors) => ApiError::Validation(errors),
        WebhookError::Unavailable(source) => {
            storage_failure!(state, request_id, unavailable: source)
        }
        WebhookError::Internal(source) => {
            storage_failure!(state, request_id, internal: source, "webhook operation failed")
        }
    }
}

fn ok_json(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .content_type(JSON)
        .body(body)
}

/// Register a webhook endpoint
///
/// Every event of your business (of `event_types`, default all) committed from now on
/// is POSTed to `url`, in event order, at least once, signed as the Standard Webhooks
/// specification says (`webhook-id`, `webhook-timestamp`, `webhook-signature`). The
/// answer carries the signing `secret`: it is shown this once. The URL must be
/// `https` and resolve to public addresses only. At most 16 endpoints per business.
///
/// A 2xx answer within 10 s acknowledges an event; anything else is retried after
/// 5 s, 30 s, 2 min, 10 min, 30 min, then hourly, and 24 h after the first failure the
/// endpoint is disabled (`PATCH {"enabled": true}` resumes with the first event not
/// acknowledged). Redirects are not followed.
///
/// Verifying a delivery (any Standard Webhooks library does it, e.g. Python's
/// `standardwebhooks`: `Webhook(secret).verify(body, headers)`):
///
/// - take the secret without its `whsec_` prefix and base64-decode it: that is the key;
/// - compute base64(HMAC-SHA256(key, `{webhook-id}.{webhook-timestamp}.{raw body}`));
/// - accept only if it equals the value after `v1,` in `webhook-signature` (compared in
///   constant time) and `webhook-timestamp` is within 5 minutes of now;
/// - `webhook-id` (`{business_id}.{event id}`) is the same on every retry: skip an id
///   already processed.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    operation_id = "createWebhook",
    tag = "webhooks",
    request_body(content = CreateWebhookRequest, content_type = "application/json"),
    security(("bearerAuth" = ["webhooks:manage"])),
    responses(
        (status = 201, description = "Registered: the endpoint with its `secret` (shown only \
            here), and `Location`.", body = WebhookBody),
    )
)]
pub(crate) async fn create_webhook(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let principal = authorize(&req, &state, Scope::WebhooksManage)?;
    let body: Bytes = body(&req, payload, &[JSON]).await?;
    let request = crate::requests::webhook_request(&body, false)?;
    let registered = state
        .webhooks
        .register(&principal, request)
        .await
        .map_err(|error| webhook_error(&req, &state, error))?;
    let body = json(&WebhookBody::of(
        &registered.endpoint,
        Some(registered.secret.reveal()),
    ))?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location(registered.endpoint.id)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type(JSON)
        .body(body))
}

/// List webhook endpoints
///
/// Your business's endpoints, oldest first, each with its delivery state; never
/// their secrets.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    operation_id = "listWebhooks",
    tag = "webhooks",
    security(("bearerAuth" = ["webhooks:manage"])),
    responses((status = 200, description = "The endpoints.", body = WebhookList))
)]
pub(crate) async fn list_webhooks(
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let principal = authorize(&req, &state, Scope::WebhooksManage)?;
    let endpoints = state
        .webhooks
        .list(&principal)
        .await
        .map_err(|error| webhook_error(&req, &state, error))?;
    let data = endpoints.iter().map(|e| WebhookBody::of(e, None)).collect();
    Ok(ok_json(json(&WebhookList { data })?))
}

/// Get a webhook endpoint
///
/// One endpoint of your business with its delivery state: `delivered_through` (every
/// event up to this id was acknowledged), `last_attempt_at`, `last_error` and
/// `next_attempt_at`. Another business's endpoint is a 404.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{webhook_id}",
    operation_id = "getWebhook",
    tag = "webhooks",
    params(("webhook_id" = String, Path, format = "uuid",
        description = "The endpoint's id; anything that is not one of your business's \
            endpoints is a 404.")),
    security(("bearerAuth" = ["webhooks:manage"])),
    responses((status = 200, description = "The endpoint.", body = WebhookBody))
)]
pub(crate) async fn get_webhook(
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let principal = authorize(&req, &state, Scope::WebhooksManage)?;
    let id = webhook_id(&req)?;
    let endpoint = state
        .webhooks
        .find(&principal, id)
        .await
        .map_err(|error| webhook_error(&req, &state, error))?;
    Ok(ok_json(json(&WebhookBody::of(&endpoint, None))?))
}

/// Change a webhook endpoint
///
/// A merge patch (RFC 7396) of `url`, `event_types` and `enabled`. Enabling an
/// endpoint that was disabled (by you, or after failing for too long) resumes
/// delivery at once with the first event it did not acknowledge.
#[utoipa::path(
    patch,
    path = "/api/v1/webhooks/{webhook_id}",
    operation_id = "updateWebhook",
    tag = "webhooks",
    params(("webhook_id" = String, Path, format = "uuid",
        description = "The endpoint's id.")),
    request_body(content = UpdateWebhookRequest,
        content_type = "application/merge-patch+json"),
    security(("bearerAuth" = ["webhooks:manage"])),
    responses((status = 200, description = "The endpoint as changed.", body = WebhookBody))
)]
pub(crate) async fn patch_webhook(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let principal = authorize(&req, &state, Scope::WebhooksManage)?;
    let id = webhook_id(&req)?;
    let body = body(&req, payload, &[JSON, MERGE_PATCH]).await?;
    let request = crate::requests::webhook_request(&body, true)?;
    let endpoint = state
        .webhooks
        .change(&principal, id, request)
        .await
        .map_err(|error| webhook_error(&req, &state, error))?;
    Ok(ok_json(json(&WebhookBody::of(&endpoint, None))?))
}

/// Delete a webhook endpoint
///
/// Stops deliveries to it (an attempt in flight may still arrive).
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{webhook_id}",
    operation_id = "deleteWebhook",
    tag = "webhooks",
    params(("webhook_id" = String, Path, format = "uuid",
        description = "The endpoint's id.")),
    security(("bearerAuth" = ["webhooks:manage"])),
    responses((status = 204, description = "Deleted."))
)]
pub(crate) async fn delete_webhook(
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let principal = authorize(&req, &state, Scope::WebhooksManage)?;
    let id = webhook_id(&req)?;
    state
        .webhooks
        .delete(&principal, id)
        .await
        .map_err(|error| webhook_error(&req, &state, error))?;
    Ok(HttpResponse::NoContent().finish())
}

/// An endpoint to register.
#[derive(ToSchema)]
#[schema(as = CreateWebhookRequest)]
#[allow(dead_code)]
pub(crate) struct CreateWebhookRequest {
    /// Where to POST events: an `https` URL (at most 2,048 bytes, no credentials or
    /// fragment) whose host resolves to public addresses only.
    #[schema(examples("https://hooks.example.com/pingback"))]
    url: String,
    /// The event types to deliver (default: all). At least one; no unknown names.
    #[schema(min_items = 1, nullable = false)]
    event_types: Option<Vec<EventTypeName>>,
}

/// A change of an endpoint (absent members unchanged).
#[derive(ToSchema)]
#[schema(as = UpdateWebhookRequest)]
#[allow(dead_code)]
pub(crate) struct UpdateWebhookRequest {
    /// As when registering. Not null: an endpoint always has a URL.
    #[schema(examples("https://hooks.example.com/pingback"), nullable = false)]
    url: Option<String>,
    #[schema(min_items = 1, nullable = false)]
    event_types: Option<Vec<EventTypeName>>,
    /// `false` stops deliveries; `true` resumes them with the first event not
    /// acknowledged.
    #[schema(nullable = false)]
    enabled: Option<bool>,
}
