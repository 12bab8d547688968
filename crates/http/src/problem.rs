//! Every error the API answers, and its one mapping to status, problem type and
//! headers (RFC 9457 `application/problem+json`).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;

pub const PROBLEM_JSON: &str = "application/problem+json";
/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(AuthError),
    #[error("conversation not found")]
    ConversationNotFound,
    #[error("no resource at this path")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    BadRequest(String),
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
    #[serde(rename = "/problems/not-found")]
    NotFound,
    #[serde(rename = "/problems/method-not-allowed")]
    MethodNotAllowed,
    #[serde(rename = "/problems/bad-request")]
    BadRequest,
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
}

impl ApiError {
    /// The problem's `type` (relative URI) and `title`.
    pub fn kind_and_title(&self) -> (ProblemType, &'static str) {
        match self {
            Self::Unauthorized(_) => (ProblemType::Unauthorized, "Unauthorized"),
            Self::ConversationNotFound | Self::RouteNotFound => {
                (ProblemType::NotFound, "Not Found")
            }
            Self::MethodNotAllowed => (ProblemType::MethodNotAllowed, "Method Not Allowed"),
            Self::BadRequest(_) => (ProblemType::BadRequest, "Bad Request"),
            Self::HeadTooLarge => (ProblemType::TooLarge, "Request Header Fields Too Large"),
            Self::Unavailable => (ProblemType::Unavailable, "Service Unavailable"),
            Self::Internal => (ProblemType::Internal, "Internal Server Error"),
        }
    }

    /// A human-readable explanation, safe to show to any caller.
    pub fn detail(&self) -> String {
        match self {
            Self::Unauthorized(e) => e.to_string(),
            Self::ConversationNotFound => {
                "No conversation with this id exists in your business.".to_owned()
            }
            Self::RouteNotFound => "There is no resource at this path.".to_owned(),
            Self::MethodNotAllowed => "This resource supports GET and HEAD only.".to_owned(),
            Self::BadRequest(detail) => detail.clone(),
            Self::HeadTooLarge => "The request head is larger than 32 KiB.".to_owned(),
            Self::Unavailable => {
                "The service cannot reach its database right now; retry shortly.".to_owned()
            }
            Self::Internal => "An unexpected error occurred; it has been logged.".to_owned(),
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
            Self::MethodNotAllowed => {
                response.insert_header((header::ALLOW, "GET, HEAD"));
            }
            Self::Unavailable => {
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
            405 => Self::MethodNotAllowed,
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
            Self::ConversationNotFound | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
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
