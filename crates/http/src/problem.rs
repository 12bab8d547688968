//! Every error the API answers, and its one mapping to status, problem type and
//! headers (RFC 9457 `application/problem+json`).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use pingback_application::Scope;
use pingback_domain::FieldError;

use crate::auth::AuthError;

pub const PROBLEM_JSON: &str = "application/problem+json";
/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(AuthError),
    #[error("{0}")]
    Forbidden(Scope),
    #[error("conversation not found")]
    ConversationNotFound,
    #[error("message not found")]
    MessageNotFound,
    #[error("webhook endpoint not found")]
    WebhookNotFound,
    #[error("no resource at this path")]
    RouteNotFound,
    /// With the methods the resource supports (its `Allow` header).
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// A request with the same idempotency key is still in progress.
    #[error("a request with this idempotency key is in progress")]
    KeyInFlight,
    #[error("the conversation has changed")]
    PreconditionFailed,
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    #[error("the request body is larger than 1 MiB")]
    PayloadTooLarge,
    /// Every invalid value, by JSON Pointer.
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    #[error("the idempotency key was used for another request")]
    IdempotencyKeyReused,
    /// Events after the requested position were pruned.
    #[error("events were pruned")]
    Gone,
    /// The process has as many event streams open as it allows.
    #[error("too many event streams")]
    TooManyStreams,
    #[error("request header fields too large")]
    HeadTooLarge,
    #[error("the database is unavailable")]
    Unavailable,
    /// The source is logged by the caller; the body never carries it.
    #[error("internal error")]
    Internal,
}

/// The problem type: a relative URI, documented on the docs page (`/docs#errors`).
/// `/problems/bad-request` is a 400 for a request the server cannot read; `/problems/too-large`
/// is also a 413 for a request body too large.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub enum ProblemType {
    #[serde(rename = "/problems/unauthorized")]
    Unauthorized,
    #[serde(rename = "/problems/forbidden")]
    Forbidden,
    #[serde(rename = "/problems/not-found")]
    NotFound,
    #[serde(rename = "/problems/method-not-allowed")]
    MethodNotAllowed,
    #[serde(rename = "/problems/bad-request")]
    BadRequest,
    #[serde(rename = "/problems/conflict")]
    Conflict,
    #[serde(rename = "/problems/precondition-failed")]
    PreconditionFailed,
    #[serde(rename = "/problems/unsupported-media-type")]
    UnsupportedMediaType,
    #[serde(rename = "/problems/validation")]
    Validation,
    #[serde(rename = "/problems/idempotency-key-reused")]
    IdempotencyKeyReused,
    #[serde(rename = "/problems/gone")]
    Gone,
    #[serde(rename = "/problems/too-large")]
    TooLarge,
    #[serde(rename = "/problems/unavailable")]
    Unavailable,
    #[serde(rename = "/problems/internal")]
    Internal,
}

/// An error (RFC 9457 `application/problem+json`). Internal details (SQL, driver
/// messages, stack traces) never appear in it.
#[derive(Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct Problem<'a> {
    /// The problem type, a relative URI.
    #[serde(rename = "type")]
    pub kind: ProblemType,
    /// A short summary of the problem type (the HTTP reason phrase).
    pub title: &'static str,
    /// The HTTP status code of the response.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// A human-readable explanation of this occurrence, safe to show to any caller.
    pub detail: &'a str,
    /// The request's id, as in the `X-Request-Id` response header and the server log.
    #[schema(min_length = 1, max_length = 128)]
    pub request_id: &'a str,
    /// For `/problems/validation` only: every invalid value (up to 50), each named by
    /// its JSON Pointer (RFC 6901) into the request body.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<InvalidValue<'_>>>)]
    pub errors: Option<Vec<InvalidValue<'a>>>,
}

/// One invalid value of a request body.
#[derive(Serialize, ToSchema)]
pub struct InvalidValue<'a> {
    /// Where the value is: a JSON Pointer into the request body (`""` is the body).
    #[schema(examples("/message/sender_type"))]
    pub pointer: &'a str,
    /// What is wrong with it.
    #[schema(examples("expected one of: customer, agent"))]
    pub detail: &'a str,
}

/// The most invalid values one answer lists.
pub const MAX_INVALID_VALUES: usize = 50;

impl ApiError {
    /// The problem's `type` (relative URI) and `title`.
    pub fn kind_and_title(&self) -> (ProblemType, &'static str) {
        match self {
            Self::Unauthorized(_) => (ProblemType::Unauthorized, "Unauthorized"),
            Self::Forbidden(_) => (ProblemType::Forbidden, "Forbidden"),
            Self::ConversationNotFound
            | Self::MessageNotFound
            | Self::WebhookNotFound
            | Self::RouteNotFound => (ProblemType::NotFound, "Not Found"),
            Self::MethodNotAllowed(_) => (ProblemType::MethodNotAllowed, "Method Not Allowed"),
            Self::BadRequest(_) => (ProblemType::BadRequest, "Bad Request"),
            Self::Conflict(_) | Self::KeyInFlight => (ProblemType::Conflict, "Conflict"),
            Self::PreconditionFailed => (ProblemType::PreconditionFailed, "Precondition Failed"),
            Self::UnsupportedMediaType(_) => {
                (ProblemType::UnsupportedMediaType, "Unsupported Media Type")
            }
            Self::PayloadTooLarge => (ProblemType::TooLarge, "Content Too Large"),
            Self::Validation(_) => (ProblemType::Validation, "Unprocessable Content"),
            Self::IdempotencyKeyReused => {
                (ProblemType::IdempotencyKeyReused, "Unprocessable Content")
            }
            Self::Gone => (ProblemType::Gone, "Gone"),
            Self::TooManyStreams => (ProblemType::Unavailable, "Service Unavailable"),
            Self::HeadTooLarge => (ProblemType::TooLarge, "Request Header Fields Too Large"),
            Self::Unavailable => (ProblemType::Unavailable, "Service Unavailable"),
            Self::Internal => (ProblemType::Internal, "Internal Server Error"),
        }
    }

    /// A human-readable explanation, safe to show to any caller.
    pub fn detail(&self) -> String {
        match self {
            Self::Unauthorized(e) => e.to_string(),
            Self::Forbidden(scope) => {
                format!("This operation needs a token with the `{scope}` scope.")
            }
            Self::ConversationNotFound => {
                "No conversation with this id exists in your business.".to_owned()
            }
            Self::MessageNotFound => {
                "No message with this id exists in this conversation of your business.".to_owned()
            }
            Self::WebhookNotFound => {
                "No webhook endpoint with this id exists in your business.".to_owned()
            }
            Self::RouteNotFound => "There is no resource at this path.".to_owned(),
            Self::MethodNotAllowed(allow) => format!("This resource supports {allow} only."),
            Self::BadRequest(detail) | Self::Conflict(detail) => detail.clone(),
            Self::KeyInFlight => "A request with this Idempotency-Key is still in progress; \
                retry after `Retry-After` seconds to get its answer."
                .to_owned(),
            Self::PreconditionFailed => "The conversation has changed since the ETag in \
                If-Match: read it again, then retry with its current ETag."
                .to_owned(),
            Self::UnsupportedMediaType(expected) => {
                format!("The request body must be {expected}.")
            }
            Self::PayloadTooLarge => "The request body is larger than 1 MiB.".to_owned(),
            Self::Validation(errors) => match errors.len() {
                1 => "1 value of the request is invalid; see `errors`.".to_owned(),
                n => format!("{n} values of the request are invalid; see `errors`."),
            },
            Self::Gone => "Events after this position were pruned (retention): list the \
                conversations again, then follow the events from the list's last_event_id."
                .to_owned(),
            Self::TooManyStreams => "This server has as many event streams open as it \
                allows; retry shortly (another server may take it)."
                .to_owned(),
            Self::IdempotencyKeyReused => "This Idempotency-Key was used with another method, \
                path or body within the last 24 hours: use a new key for a new request."
                .to_owned(),
            Self::HeadTooLarge => "The request head is larger than 32 KiB.".to_owned(),
            Self::Unavailable => {
                "The service cannot reach its database right now; retry shortly.".to_owned()
            }
            Self::Internal => "An unexpected error occurred; it has been logged.".to_owned(),
        }
    }

    /// The invalid values a validation problem lists.
    pub(crate) fn invalid_values(&self) -> Option<Vec<InvalidValue<'_>>> {
        match self {
            Self::Validation(errors) => Some(
                errors
                    .iter()
                    .take(MAX_INVALID_VALUES)
                    .map(|e| InvalidValue {
                        pointer: &e.pointer,
                        detail: &e.detail,
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    /// Renders the problem for a request id.
    pub fn to_response(&self, request_id: &str) -> HttpResponse {
        let status = self.status_code();
        let (kind, title) = self.kind_and_title();
        let detail = self.detail();
        let body = serde_json::to_vec(&Problem {
            kind,
            title,
            status: status.as_u16(),
            detail: &detail,
            request_id,
            errors: self.invalid_values(),
        })
        .unwrap_or_default();
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        match self {
            Self::Unauthorized(e) => {
                if let Ok(value) = HeaderValue::from_str(&e.challenge()) {
                    response.insert_header((header::WWW_AUTHENTICATE, value));
                }
            }
            Self::Forbidden(scope) => {
                let challenge = format!(
                    r#"Bearer realm="pingback", error="insufficient_scope", scope="{scope}""#
                );
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    response.insert_header((header::WWW_AUTHENTICATE, value));
                }
            }
            Self::MethodNotAllowed(allow) => {
                response.insert_header((header::ALLOW, *allow));
            }
            Self::Unavailable | Self::KeyInFlight | Self::TooManyStreams => {
                response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS.to_string()));
            }
            _ => {}
        }
        response.body(body)
    }

    /// The problem for a status produced outside our handlers (by actix itself).
    pub fn from_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => Self::Unauthorized(AuthError::Missing),
            404 => Self::RouteNotFound,
            405 => Self::MethodNotAllowed("GET, HEAD"),
            413 => Self::PayloadTooLarge,
            431 => Self::HeadTooLarge,
            503 => Self::Unavailable,
            400..=499 => Self::BadRequest(
                status
                    .canonical_reason()
                    .unwrap_or("Bad Request")
                    .to_owned()
                    + ".",
            ),
            _ => Self::Internal,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::ConversationNotFound
            | Self::MessageNotFound
            | Self::WebhookNotFound
            | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) | Self::KeyInFlight => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Validation(_) | Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Gone => StatusCode::GONE,
            Self::TooManyStreams => StatusCode::SERVICE_UNAVAILABLE,
            Self::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Without a request id; the request middleware re-renders every error response
    /// with the id, so this body is never what a client sees.
    fn error_response(&self) -> HttpResponse {
        self.to_response("")
    }
}
