//! Routing and handlers.

use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, guard, web};
use pingback_application::{ConversationService, GetConversationError, Principal};
use pingback_domain::ConversationId;

use crate::auth::TokenAuthority;
use crate::envelope::{RequestId, contain_panics};
use crate::etag::{none_match, strong_etag};
use crate::metrics::{DatabaseError, Metrics};
use crate::problem::ApiError;
use crate::representation::to_json;
use actix_web::middleware::from_fn;

/// What handlers share; cheap to clone into every worker.
#[derive(Clone)]
pub struct ApiState {
    pub conversations: ConversationService,
    pub tokens: Arc<TokenAuthority>,
    pub metrics: Arc<Metrics>,
}

/// Mounts every route on an actix `App`.
pub fn configure(state: ApiState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state))
            .service(readable("/api/v1/conversations/{conversation_id}").to(get_conversation))
            .service(readable("/healthz").to(healthz))
            .service(readable("/readyz").to(readyz))
            .service(readable("/metrics").to(metrics))
            .default_service(web::to(route_not_found));
    }
}

/// A resource answering GET and HEAD (405 with `Allow` otherwise), with panics
/// contained. The guard sits on the resource so it runs after routing, when holding
/// a clone of the request is allowed.
fn readable(path: &str) -> ReadableResource {
    ReadableResource(path.to_owned())
}

struct ReadableResource(String);

impl ReadableResource {
    fn to<F, Args>(
        self,
        handler: F,
    ) -> actix_web::Resource<
        impl actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
            InitError = (),
        >,
    >
    where
        F: actix_web::Handler<Args>,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        web::resource(self.0)
            .wrap(from_fn(contain_panics))
            .route(get_or_head().to(handler))
            .default_service(web::to(method_not_allowed))
    }
}

/// HEAD is answered by the GET handler; actix sends the same headers and no body.
fn get_or_head() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

async fn route_not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}

fn authenticate(req: &HttpRequest, tokens: &TokenAuthority) -> Result<Principal, ApiError> {
    // Only the first Authorization header counts; repeated ones are not merged.
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    tokens.authenticate(header).map_err(ApiError::Unauthorized)
}

async fn get_conversation(
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    // Authentication comes first: a bad token is a 401 whatever the path says.
    let principal = authenticate(&req, &state.tokens)?;
    let id = req
        .match_info()
        .get("conversation_id")
        .and_then(|raw| ConversationId::parse(raw).ok())
        .ok_or(ApiError::ConversationNotFound)?;

    let conversation = state
        .conversations
        .get_conversation(&principal, id)
        .await
        .map_err(|error| {
            let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
            match error {
                GetConversationError::NotFound => ApiError::ConversationNotFound,
                GetConversationError::Unavailable(source) => {
                    state.metrics.database_error(DatabaseError::Unavailable);
                    tracing::warn!(request_id, error = %source, "database unavailable");
                    ApiError::Unavailable
                }
                GetConversationError::Internal(source) => {
                    state.metrics.database_error(DatabaseError::Internal);
                    tracing::error!(request_id, error = %source, "get conversation failed");
                    ApiError::Internal
                }
            }
        })?;

    let body = to_json(&conversation).map_err(|error| {
        tracing::error!(%error, "serializing a conversation failed");
        ApiError::Internal
    })?;
    let etag = strong_etag(&body);
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| none_match(v, &etag));

    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        // Tenant data: never stored by shared caches, always revalidated.
        .insert_header((header::CACHE_CONTROL, "private, no-cache"))
        .insert_header((header::VARY, "Authorization"));
    if not_modified {
        return Ok(response.finish());
    }
    Ok(response.content_type("application/json").body(body))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    match state.conversations.ready().await {
        Ok(()) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({ "status": "ready" }))),
        Err(error) => {
            tracing::warn!(error = %error.0, "readiness check failed");
            Err(ApiError::Unavailable)
        }
    }
}

async fn metrics(state: web::Data<ApiState>) -> HttpResponse {
    let pool = state.metrics.pools();
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(pool))
}
