//! The write handlers: create a conversation, post a message, patch a conversation,
//! and read one message. Checks run in the contract's order: authentication (401),
//! scope (403), path (404), media type (415), size (413), JSON (400), values (422),
//! and only then the database.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt as _;
use pingback_application::{
    CommandError, IdempotencyClaim, IdempotencyKey, Principal, Scope, StoredResponse, WriteOutcome,
    Written,
};
use pingback_domain::{Conversation, ConversationId, FieldError, Message, MessageId, WriteRefused};
use sha2::{Digest, Sha256};

use crate::envelope::RequestId;
use crate::etag::{none_match, revision_etag, strong_etag};
use crate::problem::ApiError;
use crate::representation::{message_json, to_json};
use crate::requests;
use crate::routes::{
    ApiState, authenticate, cache_headers, conversation_id, read_error, storage_failure,
};

/// The largest request body a write accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub(crate) const JSON: &str = "application/json";
pub(crate) const MERGE_PATCH: &str = "application/merge-patch+json";

/// Authenticates, then checks the scope: both before anything else is looked at.
pub(crate) fn authorize(
    req: &HttpRequest,
    state: &ApiState,
    scope: Scope,
) -> Result<Principal, ApiError> {
    let principal = authenticate(req, &state.tokens)?;
    principal
        .require(scope)
        .map_err(|missing| ApiError::Forbidden(missing.0))?;
    Ok(principal)
}

/// The body, if its media type is one of `accepted` and it is at most 1 MiB.
pub(crate) async fn body(
    req: &HttpRequest,
    mut payload: web::Payload,
    accepted: &[&'static str],
) -> Result<Bytes, ApiError> {
    let media_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if !media_type.is_some_and(|m| accepted.contains(&m.as_str())) {
        return Err(ApiError::UnsupportedMediaType(if accepted.len() > 1 {
            "application/json or application/merge-patch+json"
        } else {
            JSON
        }));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|_| ApiError::BadRequest("The request body could not be read.".to_owned()))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// RFC 7240 `Prefer: return=minimal`.
fn prefers_minimal(req: &HttpRequest) -> bool {
    req.headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("return=minimal"))
}

/// The request's claim on its `Idempotency-Key`, if it sent one.
fn claim(
    req: &HttpRequest,
    state: &ApiState,
    body: &[u8],
    render: Render,
) -> Result<Option<IdempotencyClaim>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| "an Idempotency-Key is printable ASCII".to_owned())
        .and_then(IdempotencyKey::new)
        .map_err(|e| ApiError::BadRequest(format!("Invalid Idempotency-Key header: {e}.")))?;
    // Method, path and body, each length-prefixed so no two requests share a digest.
    let mut digest = Sha256::new();
    for part in [
        req.method().as_str().as_bytes(),
        req.path().as_bytes(),
        body,
    ] {
        digest.update((part.len() as u64).to_le_bytes());
        digest.update(part);
    }
    Ok(Some(IdempotencyClaim {
        key,
        fingerprint: digest.finalize().into(),
        at: state.commands.now(),
        render,
    }))
}

/// The answer to a write (or its replay), from what was stored.
fn respond(stored: &StoredResponse, replayed: bool) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(location) = stored.location.as_deref()
        && let Ok(value) = HeaderValue::from_str(location)
    {
        response.insert_header((header::LOCATION, value));
    }
    if let Some(etag) = stored.etag.as_deref()
        && let Ok(value) = HeaderValue::from_str(etag)
    {
        response.insert_header((header::ETAG, value));
    }
    if replayed {
        response.insert_header(("idempotent-replayed", "true"));
    }
    if stored.body.is_empty() {
        response.insert_header(("preference-applied", "return=minimal"));
        response.finish()
    } else {
        response.content_type(JSON).body(stored.body.clone())
    }
}

fn serialized(result: Result<Vec<u8>, serde_json::Error>) -> Vec<u8> {
    result.unwrap_or_else(|error| {
        tracing::error!(%error, "serializing a response failed");
        Vec::new()
    })
}

fn conversation_location(id: ConversationId) -> String {
    format!("/api/v1/conversations/{id}")
}

/// 201 for a new conversation: its GET shape, `Location` and `ETag`.
fn created(conversation: &Conversation, minimal: bool) -> StoredResponse {
    let etag = conversation
        .revision()
        .map(|r| revision_etag(conversation.business_id(), conversation.id(), r));
    StoredResponse {
        status: 201,
        location: Some(conversation_location(conversation.id())),
        etag,
        body: if minimal {
            Vec::new()
        } else {
            serialized(to_json(conversation))
        },
    }
}

/// 201 for a new message: the message, `Location` and its `ETag`.
fn message_created(
    conversation: ConversationId,
    message: &Message,
    minimal: bool,
) -> StoredResponse {
    let body = serialized(message_json(conversation, message));
    StoredResponse {
        status: 201,
        location: Some(format!(
            "{}/messages/{}",
            conversation_location(conversation),
            message.id()
        )),
        etag: Some(strong_etag(&body)),
        body: if minimal { Vec::new() } else { body },
    }
}

type Render = Arc<dyn Fn(&WriteOutcome<'_>) -> StoredResponse + Send + Sync>;

/// What a write's outcome answers: stored with its idempotency key, and the answer
/// when it is fresh, so a replay is byte for byte the first answer.
fn renderer(conversation: Option<ConversationId>, minimal: bool) -> Render {
    Arc::new(move |outcome: &WriteOutcome<'_>| match outcome {
        WriteOutcome::Created(created_conversation) => created(created_conversation, minimal),
        WriteOutcome::Appended(appended) => message_created(
            conversation.unwrap_or_else(|| ConversationId::from_uuid(uuid::Uuid::nil())),
            &appended.message,
            minimal,
        ),
    })
}

/// A write's failure as the API reports it.
fn command_error(req: &HttpRequest, state: &ApiState, error: CommandError) -> ApiError {
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    match error {
        CommandError::Forbidden(missing) => ApiError::Forbidden(missing.0),
        CommandError::NotFound => ApiError::ConversationNotFound,
        CommandError::UnknownCustomer => {
            ApiError::Validation(vec![FieldError::new("/customer_id", "no such customer")])
        }
        CommandError::Refused(WriteRefused::Closed) => ApiError::Conflict(
            "The conversation is closed: closed is final, it takes no messages or changes."
                .to_owned(),
        ),
        CommandError::Refused(WriteRefused::Invalid(field)) => ApiError::Validation(vec![field]),
        CommandError::PreconditionFailed => ApiError::PreconditionFailed,
        CommandError::KeyReused => ApiError::IdempotencyKeyReused,
        CommandError::KeyInFlight => ApiError::KeyInFlight,
        CommandError::Unavailable(source) => {
            storage_failure!(state, request_id, unavailable: source)
        }
        CommandError::Internal(source) => {
            storage_failure!(state, request_id, internal: source, "write failed")
        }
    }
}

/// Create a conversation
///
/// Opens a conversation in the caller's business, with an existing customer
/// (`customer_id`), a described one (`customer`, reused by `external_id`) or none, and
/// optionally its first message. Ids and timestamps are the server's. Safe to retry
/// with an `Idempotency-Key`.
#[utoipa::path(
    post,
    path = "/api/v1/conversations",
    operation_id = "createConversation",
    tag = "conversations",
    request_body(content = crate::docs_types::CreateConversationRequest, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255,
            pattern = "^[ -~]{1,255}$",
            description = "1 to 255 printable ASCII characters: a retry with the same key, \
                method, path and body within 24 h replays the first answer \
                (`Idempotent-Replayed: true`) and writes nothing."),
        ("Prefer" = Option<String>, Header,
            description = "`return=minimal`: 201 with the same headers and no body."),
    ),
    security(("bearerAuth" = ["conversations:write"])),
    responses(
        (status = 201, description = "Created: the conversation in the GET shape, with \
            `Location` and `ETag`.", body = crate::representation::ConversationBody<'static>),
    )
)]
pub(crate) async fn create_conversation(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let principal = authorize(&req, &state, Scope::ConversationsWrite)?;
    let body = body(&req, payload, &[JSON]).await?;
    let draft = requests::conversation_draft(&body)?;
    let minimal = prefers_minimal(&req);
    let render = renderer(None, minimal);
    let claim = claim(&req, &state, &body, render)?;
    let written = state
        .commands
        .create_conversation(&principal, draft, claim)
        .await
        .map_err(|error| match error {
            // The first message's rules are reported where the message is.
            CommandError::Refused(WriteRefused::Invalid(field)) => {
                ApiError::Validation(vec![field.under("/message")])
            }
            other => command_error(&req, &state, other),
        })?;
    Ok(match written {
        Written::Done(conversation) => respond(&created(&conversation, minimal), false),
        Written::Replayed(stored) => respond(&stored, true),
    })
}

/// Post a message
///
/// Appends a message to a conversation of the caller's business: its time is the
/// server's, strictly after every earlier message; the first agent message sets
/// `first_response_at`; a customer message reopens a `pending` or `resolved`
/// conversation; a `closed` one takes no message (409). Safe to retry with an
/// `Idempotency-Key`.
#[utoipa::path(
    post,
    path = "/api/v1/conversations/{conversation_id}/messages",
    operation_id = "postMessage",
    tag = "conversations",
    request_body(content = crate::docs_types::PostMessageRequest, content_type = "application/json"),
    params(
        ("conversation_id" = String, Path, format = "uuid",
            description = "The conversation's id; anything that is not one of your \
                business's conversations is a 404."),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255,
            pattern = "^[ -~]{1,255}$",
            description = "As for creating a conversation."),
        ("Prefer" = Option<String>, Header,
            description = "`return=minimal`: 201 with the same headers and no body."),
    ),
    security(("bearerAuth" = ["conversations:write"])),
    responses(
        (status = 201, description = "Created: the message, with `Location` and `ETag`.",
            body = crate::representation::MessageBody<'static>),
    )
)]
pub(crate) async fn post_message(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let principal = authorize(&req, &state, Scope::ConversationsWrite)?;
    let id = conversation_id(&req)?;
    let body = body(&req, payload, &[JSON]).await?;
    let draft = requests::message_draft(&body)?;
    let minimal = prefers_minimal(&req);
    let render = renderer(Some(id), minimal);
    let claim = claim(&req, &state, &body, render)?;
    let written = state
        .commands
        .post_message(&principal, id, draft, claim)
        .await
        .map_err(|error| command_error(&req, &state, error))?;
    Ok(match written {
        Written::Done(appended) => respond(&message_created(id, &appended.message, minimal), false),
        Written::Replayed(stored) => respond(&stored, true),
    })
}

/// `If-Match` (RFC 9110 §13.1.1): `*`, or a list of tags compared strongly.
fn if_match(header: &str, etag: &str) -> bool {
    header.split(',').any(|tag| tag.trim() == etag)
}

/// Update a conversation
///
/// A JSON merge patch (RFC 7396) of `status` and `assignee_id` (null unassigns).
/// `closed` is final (409). A patch that changes nothing changes nothing (same
/// `updated_at`, same `ETag`). With `If-Match`, the write happens only if the
/// conversation is still at that `ETag` (else 412).
#[utoipa::path(
    patch,
    path = "/api/v1/conversations/{conversation_id}",
    operation_id = "updateConversation",
    tag = "conversations",
    request_body(content = crate::docs_types::ConversationPatchRequest,
        content_type = "application/merge-patch+json"),
    params(
        ("conversation_id" = String, Path, format = "uuid",
            description = "The conversation's id."),
        ("If-Match" = Option<String>, Header,
            description = "The `ETag` you last saw (or `*`): any other current state is a 412 \
                and nothing changes."),
        ("Prefer" = Option<String>, Header,
            description = "`return=minimal`: 204 with the same headers and no body."),
    ),
    security(("bearerAuth" = ["conversations:write"])),
    responses(
        (status = 200, description = "The conversation after the patch, with its new `ETag`.",
            body = crate::representation::ConversationBody<'static>),
        (status = 204, description = "With `Prefer: return=minimal`: no body, same headers."),
    )
)]
pub(crate) async fn patch_conversation(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let principal = authorize(&req, &state, Scope::ConversationsWrite)?;
    let id = conversation_id(&req)?;
    let body = body(&req, payload, &[JSON, MERGE_PATCH]).await?;
    let patch = requests::conversation_patch(&body)?;
    let condition = req
        .headers()
        .get(header::IF_MATCH)
        .map(|v| v.to_str().unwrap_or("").to_owned());
    // The tag is checked against the current revision here, and that revision is
    // checked again under the row lock, so a write in between is a 412 too.
    let expected = match condition.as_deref().map(str::trim) {
        None | Some("*") => None,
        Some(tags) => {
            let revision = state
                .commands
                .current_revision(&principal, id)
                .await
                .map_err(|error| command_error(&req, &state, error))?;
            if !if_match(tags, &revision_etag(principal.business_id(), id, revision)) {
                return Err(ApiError::PreconditionFailed);
            }
            Some(revision)
        }
    };
    let updated = state
        .commands
        .update_conversation(&principal, id, patch, expected)
        .await
        .map_err(|error| command_error(&req, &state, error))?;
    let conversation = updated.conversation;
    let etag = conversation
        .revision()
        .map(|r| revision_etag(conversation.business_id(), conversation.id(), r))
        .ok_or(ApiError::Internal)?;
    if prefers_minimal(&req) {
        let mut response = HttpResponse::NoContent();
        response.insert_header(("preference-applied", "return=minimal"));
        cache_headers(&mut response, etag);
        return Ok(response.finish());
    }
    let mut response = HttpResponse::Ok();
    cache_headers(&mut response, etag);
    let body = to_json(&conversation).map_err(|error| {
        tracing::error!(%error, "serializing a conversation failed");
        ApiError::Internal
    })?;
    Ok(response.content_type(JSON).body(body))
}

/// Get one message
///
/// One message of a conversation of the caller's business.
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{conversation_id}/messages/{message_id}",
    operation_id = "getMessage",
    tag = "conversations",
    params(
        ("conversation_id" = String, Path, format = "uuid", description = "The conversation's id."),
        ("message_id" = String, Path, format = "uuid", description = "The message's id."),
        ("If-None-Match" = Option<String>, Header,
            description = "An `ETag` from an earlier response: the current one gives 304."),
    ),
    security(("bearerAuth" = ["conversations:read"])),
    responses(
        (status = 200, description = "The message.", body = crate::representation::MessageBody<'static>),
        (status = 304, description = "`If-None-Match` carries the current `ETag`; no body."),
    )
)]
pub(crate) async fn get_message(
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let principal = authorize(&req, &state, Scope::ConversationsRead)?;
    let ids = req
        .match_info()
        .get("conversation_id")
        .and_then(|raw| ConversationId::parse(raw).ok())
        .zip(
            req.match_info()
                .get("message_id")
                .and_then(|raw| MessageId::parse(raw).ok()),
        );
    let Some((conversation, message)) = ids else {
        return Err(ApiError::MessageNotFound);
    };
    let found = state
        .commands
        .get_message(&principal, conversation, message)
        .await
        .map_err(|error| match read_error(&req, &state, error) {
            ApiError::ConversationNotFound => ApiError::MessageNotFound,
            other => other,
        })?;
    let body = message_json(conversation, &found).map_err(|error| {
        tracing::error!(%error, "serializing a message failed");
        ApiError::Internal
    })?;
    let etag = strong_etag(&body);
    let current = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| none_match(tags, &etag));
    let mut response = if current {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    cache_headers(&mut response, etag);
    Ok(if current {
        response.finish()
    } else {
        response.content_type(JSON).body(body)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_compares_strongly() {
        let tag = "\"abc\"";
        assert!(if_match("\"abc\"", tag));
        assert!(if_match("\"x\", \"abc\"", tag));
        assert!(!if_match("W/\"abc\"", tag));
        assert!(!if_match("\"abd\"", tag));
    }
}
