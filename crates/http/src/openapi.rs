//! The OpenAPI 3.1 document of this API, generated from the code that serves it: the
//! response schemas are the `ToSchema` derives of the types that write the bodies,
//! the operations are the `utoipa::path` attributes on the handlers, and the error
//! responses, their examples and the request-id and caching headers are built here
//! from `ApiError` itself (status, problem type, title and detail as served). The same
//! document is served at [`SPEC_PATH`], rendered at [`DOCS_PATH`], and committed as
//! `docs/openapi.json` (a test keeps them equal; `make openapi` regenerates it).

use std::sync::LazyLock;

use actix_web::ResponseError as _;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Header, RefOr, Required, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use pingback_application::Scope;

use crate::auth::{AuthError, MAX_AUTHORIZATION_BYTES};
use crate::envelope::MAX_HEAD_BYTES;
use crate::problem::{ApiError, PROBLEM_JSON, Problem, ProblemType, RETRY_AFTER_SECONDS};
use crate::representation::to_json;
use crate::routes;

/// Where the document is served.
pub const SPEC_PATH: &str = "/api/openapi.json";
/// Where the docs page is served.
pub const DOCS_PATH: &str = "/docs";
/// The security scheme's name in the document.
pub const BEARER: &str = "bearerAuth";

const DESCRIPTION: &str = "\
The API of Pingback, a customer-support messaging backend: conversations, their \
embedded customer and their complete message history, visible only to the business that \
owns them, and the writes that open, answer and resolve them.\n\n\
* Every identifier is a UUID printed lower-case and hyphenated; every timestamp is \
RFC 3339 in UTC with a `Z` suffix, fractional seconds (microseconds) only when non-zero.\n\
* Errors are `application/problem+json` (RFC 9457) with `type`, `title`, `status`, \
`detail` and `request_id`; 500 bodies never carry internal details.\n\
* Every response carries `X-Request-Id`: the client's own when sane (1 to 128 characters \
of `A-Z a-z 0-9 . _ -`, the first one when repeated), else a new UUID. The same id is in \
the problem body and the server's log line.\n\
* A request head over 32 KiB gets 431 on every route; a method a route does not support \
gets 405 with an `Allow` header listing the route's methods (routing comes before \
authentication). HEAD answers as GET would, with the same headers and no body.\n\
* Writes take JSON bodies of at most 1 MiB (415 for another media type, 400 for a body \
that is not JSON, 413 when larger); unknown fields, wrong types and invalid values are \
one 422 `/problems/validation` whose `errors` name every invalid value by JSON Pointer. \
The server assigns every id (UUIDv7) and timestamp. A write is one transaction.\n\
* POSTs may carry an `Idempotency-Key` (1 to 255 printable ASCII characters, kept 24 h \
per business): a retry with the same key, method, path and body gets the first answer \
again with `Idempotent-Replayed: true` and writes nothing; the same key with another \
request is a 422 `/problems/idempotency-key-reused`. Only 2xx answers are kept.\n\
* `PATCH` takes `If-Match` (412 on a stale `ETag`); `Prefer: return=minimal` gets 201 or \
204 with the same headers and no body.\n\
* Fields may be added to response bodies later; documented fields never change type.";

const AUTH_DESCRIPTION: &str = "\
`Authorization: Bearer <JWT>` (the scheme name in any letter case). The accepted \
algorithm is fixed by the server's configuration (HS256 by default; RS256 or ES256 with \
a configured public key), never taken from the token; `kid`, `jku` and similar headers \
are ignored.\n\n\
| claim | required | meaning |\n\
|---|---|---|\n\
| `sub` | yes | the caller (agent or API client), a non-empty string |\n\
| `business_id` | yes | the tenant, a UUID string: the only source of the tenant |\n\
| `exp` | yes | expiry, seconds since the epoch |\n\
| `nbf`, `iat` | no | checked when present (`iat` must not lie in the future) |\n\
| `iss`, `aud` | when configured | must match the configured values (`aud` may be a string or an array) |\n\
| `scope` | no | space-separated scopes; absent means `conversations:read` only |\n\n\
Scopes: `conversations:read` (read conversations and messages), `conversations:write` \
(create conversations, post messages, update conversations), `webhooks:manage`. A token \
without the scope an operation needs gets 403 `/problems/forbidden` with \
`WWW-Authenticate: Bearer error=\"insufficient_scope\", scope=\"…\"`, decided after \
authentication and before any database access.\n\n\
Clock-skew leeway is 30 s by default, at most 60 s. A missing, malformed, expired or \
otherwise invalid token is a 401 with `WWW-Authenticate: Bearer …`, decided before the \
path is looked at and without the database. An `Authorization` header over 8 KiB is \
refused without decoding.";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pingback API",
        description = DESCRIPTION,
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    paths(
        crate::events::list_events,
        crate::events::stream_events,
        crate::inbox::list_conversations,
        crate::writes::create_conversation,
        routes::get_conversation,
        crate::writes::patch_conversation,
        crate::writes::post_message,
        crate::writes::get_message,
        crate::webhooks::create_webhook,
        crate::webhooks::list_webhooks,
        crate::webhooks::get_webhook,
        crate::webhooks::patch_webhook,
        crate::webhooks::delete_webhook,
        routes::healthz,
        routes::readyz,
        routes::metrics,
        routes::openapi_json,
        routes::docs,
    ),
    components(schemas(Problem<'static>, ProblemType, crate::problem::InvalidValue<'static>)),
    modifiers(&Contract),
    tags(
        (name = "conversations", description = "Conversations of the caller's business."),
        (name = "events", description = "The business's event log: a feed to sync from and a live stream."),
        (name = "webhooks", description = "Endpoints your business's events are POSTed to, signed (Standard Webhooks)."),
        (name = "operations", description = "Liveness, readiness and metrics for operators; no token needed."),
        (name = "documentation", description = "This document and the page that renders it."),
    )
)]
struct ApiDoc;

/// The document as a value.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as served and committed: pretty JSON with a final newline.
pub fn render(document: &utoipa::openapi::OpenApi) -> Result<String, serde_json::Error> {
    let mut json = serde_json::to_string_pretty(document)?;
    json.push('\n');
    Ok(json)
}

static JSON: LazyLock<String> = LazyLock::new(|| {
    render(&document()).unwrap_or_else(|error| {
        tracing::error!(%error, "rendering the OpenAPI document failed");
        String::from("{}\n")
    })
});

static PAGE: LazyLock<String> = LazyLock::new(|| docs_page_for(&JSON));

/// The OpenAPI document served at [`SPEC_PATH`] (built once).
pub fn json() -> &'static str {
    &JSON
}

/// The docs page served at [`DOCS_PATH`] (built once).
pub fn docs_page() -> &'static str {
    &PAGE
}

const PAGE_TEMPLATE: &str = include_str!("docs.html");
/// Where the page template takes the document.
const SPEC_SLOT: &str = "/*OPENAPI_DOCUMENT*/null";

/// The page with the document embedded, so it renders with no request at all. Inside
/// `<script>` only `<` could end the element early; JSON allows it escaped.
pub fn docs_page_for(json: &str) -> String {
    let escaped = json.replace('<', "\\u003c");
    PAGE_TEMPLATE.replacen(SPEC_SLOT, escaped.trim_end(), 1)
}

/// What the derives cannot say: the security scheme, the error responses of each
/// route and their examples, the headers every response carries, the 200 example and
/// the HEAD operations.
struct Contract;

impl Modify for Contract {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(AUTH_DESCRIPTION))
                    .build(),
            ),
        );
        for (path, item) in &mut openapi.paths.paths {
            let allow = allow_of(item);
            let operations = [
                (Method::Get, item.get.as_mut()),
                (Method::Post, item.post.as_mut()),
                (Method::Patch, item.patch.as_mut()),
                (Method::Delete, item.delete.as_mut()),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else {
                    continue;
                };
                if method == Method::Get && is_list(path) {
                    list_extras(operation);
                }
                if method == Method::Get && is_conversation(path) {
                    let example = if path.contains("{message_id}") {
                        crate::example::conversation().ok().and_then(|c| {
                            let first = c.messages().first()?;
                            crate::representation::message_json(c.id(), first).ok()
                        })
                    } else {
                        crate::example::conversation()
                            .ok()
                            .and_then(|c| to_json(&c).ok())
                    };
                    conversation_extras(operation, example);
                }
                if is_write(method) && !is_webhook(path) {
                    write_extras(path, method, operation);
                }
                if is_webhook(path) {
                    webhook_extras(method, operation);
                }
                for (status, errors) in errors_of(path, method, allow) {
                    operation
                        .responses
                        .responses
                        .insert(status.to_string(), problem_response(&errors).into());
                }
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(request_id_parameter().into());
                for response in operation.responses.responses.values_mut() {
                    if let RefOr::T(response) = response {
                        response
                            .headers
                            .insert("X-Request-Id".to_owned(), request_id_header().into());
                    }
                }
            }
            if let Some(get) = item.get.as_ref() {
                item.head = Some(head_of(get));
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

fn is_write(method: Method) -> bool {
    matches!(method, Method::Post | Method::Patch)
}

/// The `Allow` header of a path: the methods it documents (HEAD with GET).
fn allow_of(item: &utoipa::openapi::PathItem) -> &'static str {
    match (
        item.get.is_some(),
        item.post.is_some(),
        item.patch.is_some(),
    ) {
        (true, false, true) if item.delete.is_some() => "GET, HEAD, PATCH, DELETE",
        (true, false, true) => "GET, HEAD, PATCH",
        (true, true, false) => "GET, HEAD, POST",
        (false, true, false) => "POST",
        _ => "GET, HEAD",
    }
}

fn is_conversation(path: &str) -> bool {
    path.starts_with("/api/v1/conversations/")
}

/// The webhook endpoint routes.
fn is_webhook(path: &str) -> bool {
    path.starts_with("/api/v1/webhooks")
}

/// The inbox (its query parameters can be invalid).
fn is_list(path: &str) -> bool {
    path == "/api/v1/conversations"
}

/// The API routes (a token, the database); the others are for operators.
fn is_api(path: &str) -> bool {
    path.starts_with("/api/v1/")
}

/// One documented error of a route.
struct DocumentedError {
    status: u16,
    error: ApiError,
    description: &'static str,
}

/// The errors each operation answers, by status; a status with several problems
/// documents each as a named example.
fn errors_of(path: &str, method: Method, allow: &'static str) -> Vec<(u16, Vec<DocumentedError>)> {
    let e = |error: ApiError, description| DocumentedError {
        status: error.status_code().as_u16(),
        error,
        description,
    };
    let mut errors = Vec::new();
    if is_api(path) {
        errors.push(e(
            ApiError::Unauthorized(AuthError::Missing),
            "No, malformed, expired or otherwise invalid token (see the security scheme). \
             Decided before the path is looked at; needs no database.",
        ));
        errors.push(e(
            ApiError::Forbidden(if is_webhook(path) {
                Scope::WebhooksManage
            } else if is_write(method) {
                Scope::ConversationsWrite
            } else {
                Scope::ConversationsRead
            }),
            "The token lacks the scope this operation needs (`WWW-Authenticate` names it). \
             Decided after authentication, before any database access.",
        ));
    }
    if path.contains("{webhook_id}") {
        errors.push(e(
            ApiError::WebhookNotFound,
            "No such webhook endpoint in your business, or the id is not a UUID. Another \
             business's endpoint looks exactly like a missing one.",
        ));
    } else if path.contains("{message_id}") {
        errors.push(e(
            ApiError::MessageNotFound,
            "No such message in that conversation of your business, or an id is not a UUID.",
        ));
    } else if is_conversation(path) {
        errors.push(e(
            ApiError::ConversationNotFound,
            "No such conversation in your business, or the id is not a UUID. A \
             conversation of another business looks exactly like a missing one.",
        ));
    }
    if path.starts_with("/api/v1/events") {
        errors.push(e(
            ApiError::BadRequest(if path == "/api/v1/events" {
                "Invalid query parameter `limit`: expected an integer from 1 to 1000.".to_owned()
            } else {
                "Unknown query parameter `limit` (expected: after, access_token).".to_owned()
            }),
            "A query parameter (or `Last-Event-ID`) is invalid, unknown or repeated; the \
             detail names it.",
        ));
        errors.push(e(
            ApiError::Gone,
            "Events after `after` were pruned (retention, `events.retention_days`): list the \
             conversations again and follow from the list's `last_event_id`.",
        ));
    }
    if path == "/api/v1/events/stream" {
        errors.push(e(
            ApiError::TooManyStreams,
            "This server has `events.max_streams` streams open; retry after `Retry-After` \
             seconds.",
        ));
    }
    if is_list(path) && method == Method::Get {
        errors.push(e(
            ApiError::BadRequest(
                "Invalid query parameter `limit`: expected an integer from 1 to 100.".to_owned(),
            ),
            "A query parameter is invalid, unknown or repeated, or the `cursor` was altered \
             or issued for other filters, another order or another business; the detail \
             names it.",
        ));
    }
    errors.push(e(
        ApiError::MethodNotAllowed(allow),
        "A method the resource does not support. Routing comes before authentication.",
    ));
    if is_write(method) {
        errors.push(e(
            ApiError::BadRequest("The request body is not valid JSON: EOF while parsing an object at line 1 column 1.".to_owned()),
            "The body is not JSON, or the `Idempotency-Key` header is not 1 to 255 \
             printable ASCII characters.",
        ));
        if is_conversation(path) && !is_webhook(path) {
            errors.push(e(
                ApiError::Conflict(
                    "The conversation is closed: closed is final, it takes no messages or \
                     changes."
                        .to_owned(),
                ),
                "The conversation is closed (closed is final); nothing was written.",
            ));
        }
        if method == Method::Post && !is_webhook(path) {
            errors.push(e(
                ApiError::KeyInFlight,
                "A request with this `Idempotency-Key` is still being processed: retry after \
                 `Retry-After` seconds to get its answer.",
            ));
        }
        if method == Method::Patch && !is_webhook(path) {
            errors.push(e(
                ApiError::PreconditionFailed,
                "`If-Match` does not carry the conversation's current `ETag`; nothing changed.",
            ));
        }
        errors.push(e(
            ApiError::PayloadTooLarge,
            "The request body is larger than 1 MiB.",
        ));
        errors.push(e(
            ApiError::UnsupportedMediaType(if method == Method::Patch {
                "application/json or application/merge-patch+json"
            } else {
                "application/json"
            }),
            "The body's media type is not JSON.",
        ));
        let invalid = match method {
            _ if is_webhook(path) => pingback_domain::FieldError::new("/url", "must use https"),
            Method::Patch => pingback_domain::FieldError::new(
                "/status",
                "unknown status (expected one of: open, pending, resolved, closed)",
            ),
            _ if path.ends_with("/messages") => pingback_domain::FieldError::new(
                "/sender_type",
                "unknown sender type (expected one of: customer, agent)",
            ),
            _ => pingback_domain::FieldError::new(
                "/message/sender_type",
                "unknown sender type (expected one of: customer, agent)",
            ),
        };
        errors.push(e(
            ApiError::Validation(vec![invalid]),
            "Unknown fields, wrong types or invalid values: `errors` lists every one (up to \
             50) by JSON Pointer; nothing was written.",
        ));
        if method == Method::Post && !is_webhook(path) {
            errors.push(e(
                ApiError::IdempotencyKeyReused,
                "The `Idempotency-Key` was used within 24 h with another method, path or body.",
            ));
        }
    }
    errors.push(e(
        ApiError::HeadTooLarge,
        "The request head (request line and headers) is over 32 KiB.",
    ));
    // The routes that use the database.
    if is_api(path) || path == "/readyz" {
        errors.push(e(
            ApiError::Unavailable,
            "The database is unreachable, blocked or saturated; answered within 10 s, \
             never a hang. Retry after `Retry-After` seconds; the service recovers by itself.",
        ));
    }
    errors.push(e(
        ApiError::Internal,
        "A bug. The body never carries internal details (no SQL, stack or driver message).",
    ));
    let mut by_status: Vec<(u16, Vec<DocumentedError>)> = Vec::new();
    for error in errors {
        match by_status
            .iter_mut()
            .find(|(status, _)| *status == error.status)
        {
            Some((_, same)) => same.push(error),
            None => by_status.push((error.status, vec![error])),
        }
    }
    by_status
}

/// `Location` of a registered webhook endpoint.
fn webhook_extras(method: Method, operation: &mut Operation) {
    if method != Method::Post {
        return;
    }
    if let Some(RefOr::T(response)) = operation.responses.responses.get_mut("201") {
        response.headers.insert(
            "Location".to_owned(),
            required(header(
                string().examples(["/api/v1/webhooks/0193f1c2-7a8b-7c9d-8e0f-1a2b3c4d5e6f"]),
                "Where the new endpoint is.",
            ))
            .into(),
        );
    }
}

/// The request id, the idempotency and preference headers, `Location` and `ETag` of
/// a write's success.
fn write_extras(path: &str, method: Method, operation: &mut Operation) {
    for (status, response) in &mut operation.responses.responses {
        let RefOr::T(response) = response else {
            continue;
        };
        if status == "201" {
            response.headers.insert(
                "Location".to_owned(),
                required(header(
                    string().examples([if path.ends_with("/messages") {
                        "/api/v1/conversations/c3d4e5f6-a7b8-9012-cdef-123456789012/messages/f6a7b8c9-d0e1-2345-fabc-456789012345"
                    } else {
                        "/api/v1/conversations/c3d4e5f6-a7b8-9012-cdef-123456789012"
                    }]),
                    "Where the new resource is.",
                ))
                .into(),
            );
            response.headers.insert(
                "Idempotent-Replayed".to_owned(),
                header(
                    string().enum_values(Some(["true"])),
                    "Present on a replay of an earlier request with the same `Idempotency-Key`.",
                )
                .into(),
            );
        }
        if status == "200" || status == "201" || status == "204" {
            response
                .headers
                .insert("ETag".to_owned(), etag_header().into());
        }
        if method == Method::Patch && status == "200" {
            response
                .headers
                .insert("Cache-Control".to_owned(), tenant_cache_control().into());
        }
    }
}

/// An example request id, as a client may send it or the server generates it.
const EXAMPLE_REQUEST_ID: &str = "0b5f3c9e-6a61-4c1e-9d59-6f2f1f0f4a7e";

/// The body the server answers for `error` (with the example request id).
fn problem_example(documented: &DocumentedError) -> Option<serde_json::Value> {
    let error = &documented.error;
    let (kind, title) = error.kind_and_title();
    let detail = error.detail();
    serde_json::to_value(Problem {
        kind,
        title,
        status: documented.status,
        detail: &detail,
        request_id: EXAMPLE_REQUEST_ID,
        errors: error.invalid_values(),
    })
    .ok()
}

/// A problem+json response whose example is what the server answers for each error
/// of one status (one `example`, or named `examples` when there are several).
fn problem_response(group: &[DocumentedError]) -> Response {
    let Some(documented) = group.first() else {
        return Response::new("");
    };
    let error = &documented.error;
    let mut content = ContentBuilder::new().schema(Some(RefOr::Ref(
        utoipa::openapi::Ref::from_schema_name("Problem"),
    )));
    let description = if group.len() == 1 {
        content = content.example(problem_example(documented));
        documented.description.to_owned()
    } else {
        content = content.examples_from_iter(group.iter().map(|d| {
            let (kind, _) = d.error.kind_and_title();
            let name = match d.error {
                ApiError::Conflict(_) => "closed".to_owned(),
                ApiError::KeyInFlight => "idempotency-key-in-flight".to_owned(),
                ApiError::TooManyStreams => "too-many-streams".to_owned(),
                _ => serde_json::to_value(kind)
                    .ok()
                    .and_then(|v| {
                        v.as_str()
                            .map(|s| s.trim_start_matches("/problems/").to_owned())
                    })
                    .unwrap_or_default(),
            };
            let mut example = utoipa::openapi::example::Example::default();
            example.value = problem_example(d);
            example.summary = d.description.to_owned();
            (name, example)
        }));
        group
            .iter()
            .map(|d| d.description)
            .collect::<Vec<_>>()
            .join(" Or: ")
    };
    // A status some of whose problems carry `Retry-After` (a key in flight, beside a
    // closed conversation) documents it as optional.
    let retry_after_sometimes = !matches!(
        error,
        ApiError::Unavailable | ApiError::KeyInFlight | ApiError::TooManyStreams
    ) && group
        .iter()
        .any(|d| matches!(d.error, ApiError::KeyInFlight | ApiError::TooManyStreams));
    let mut response = ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, content.build())
        .header(
            "Cache-Control",
            fixed_header("no-store", "Errors are never cached."),
        );
    match error {
        ApiError::Unauthorized(missing) => {
            response = response.header(
                "WWW-Authenticate",
                required(header(
                    string()
                        .pattern(Some("^Bearer "))
                        .examples([missing.challenge(), AuthError::Expired.challenge()]),
                    "An RFC 6750 challenge: `Bearer realm=\"pingback\"`, with \
                     `error=\"invalid_token\"` and a description when a token was sent.",
                )),
            );
        }
        ApiError::Forbidden(scope) => {
            response = response.header(
                "WWW-Authenticate",
                required(header(
                    string().pattern(Some("^Bearer ")).examples([format!(
                        r#"Bearer realm="pingback", error="insufficient_scope", scope="{scope}""#
                    )]),
                    "An RFC 6750 challenge naming the scope the operation needs.",
                )),
            );
        }
        ApiError::MethodNotAllowed(allow) => {
            response = response.header(
                "Allow",
                fixed_header(allow, "The methods the resource supports."),
            );
        }
        ApiError::Unavailable | ApiError::KeyInFlight | ApiError::TooManyStreams => {
            response = response.header(
                "Retry-After",
                required(header(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0))
                        .examples([RETRY_AFTER_SECONDS]),
                    "Seconds to wait before retrying.",
                )),
            );
        }
        _ => {}
    }
    if retry_after_sometimes {
        response = response.header(
            "Retry-After",
            header(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .examples([RETRY_AFTER_SECONDS]),
                "Seconds to wait before retrying, when the problem is one to retry.",
            ),
        );
    }
    response.build()
}

/// The 200 example, the caching headers and the `ETag` of a conversation's read routes.
fn conversation_extras(get: &mut Operation, example: Option<Vec<u8>>) {
    let example =
        example.and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
    let etag = || -> RefOr<Header> { RefOr::T(etag_header()) };
    for (status, response) in &mut get.responses.responses {
        let RefOr::T(response) = response else {
            continue;
        };
        if status == "200"
            && let Some(RefOr::T(content)) = response.content.get_mut("application/json")
        {
            content.example.clone_from(&example);
        }
        if status == "200" || status == "304" {
            response.headers.insert("ETag".to_owned(), etag());
            tenant_read_caching(response);
        }
    }
}

/// The 200 example, `Link` and caching headers of the inbox.
fn list_extras(get: &mut Operation) {
    let example = crate::example::conversation().ok().map(|c| {
        let last_message = c.messages().last().cloned();
        let count = c.messages().len() as u64;
        let summary = pingback_domain::ConversationSummary {
            conversation: c,
            message_count: count,
            last_message,
        };
        let item = serde_json::to_value(crate::representation::ConversationItemBody::new(&summary))
            .unwrap_or_default();
        serde_json::json!({
            "data": [item],
            "next_cursor": "AQAGGJ4N3dTwxl0x3ngASB2V1kMtmDdcqpxf9WMmCeL2F6-kgTHvdgAAAAAAAAAAAAAAAAAAAA",
            "last_event_id": 41
        })
    });
    for (status, response) in &mut get.responses.responses {
        let RefOr::T(response) = response else {
            continue;
        };
        if status != "200" {
            continue;
        }
        if let Some(RefOr::T(content)) = response.content.get_mut("application/json") {
            content.example.clone_from(&example);
        }
        response.headers.insert(
            "Link".to_owned(),
            header(
                string().examples([
                    "</api/v1/conversations?status=open&cursor=AQAGGJ4N3dTwxl0x>; rel=\"next\"",
                ]),
                "RFC 8288: the next page (the same filters and its cursor), present when \
                 one follows.",
            )
            .into(),
        );
        tenant_read_caching(response);
    }
}

/// A strong entity tag.
fn etag_header() -> Header {
    required(header(
        string()
            .pattern(Some("^\"[0-9a-f]{32}\"$"))
            .examples(["\"5b1e8a0d3c2f4e6a8b9c0d1e2f3a4b5c\""]),
        "A strong entity tag, made of the stored revisions the representation was read \
         at (a message's: of its bytes): equal tags mean equal bodies, on every node and \
         across restarts. Send it back in `If-None-Match` to revalidate, or in `If-Match` \
         to update only what you have seen.",
    ))
}

/// HEAD answers as GET would, with the same headers and no body.
fn head_of(get: &Operation) -> Operation {
    let mut head = get.clone();
    head.operation_id = get.operation_id.as_ref().map(|id| {
        let mut chars = id.chars();
        let first = chars.next().map(|c| c.to_ascii_uppercase());
        format!(
            "head{}{}",
            first.map(String::from).unwrap_or_default(),
            chars.as_str()
        )
    });
    head.summary = get.summary.as_ref().map(|s| format!("{s} (headers only)"));
    head.description = Some("As GET, with the same status and headers and no body.".to_owned());
    for response in head.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            response.content.clear();
        }
    }
    head
}

fn request_id_parameter() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("X-Request-Id")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Your id for this request: echoed when sane (1 to 128 characters of \
             `A-Z a-z 0-9 . _ -`), else replaced by a new UUID.",
        ))
        .schema(Some(string()))
        .build()
}

fn request_id_header() -> Header {
    required(header(
        string()
            .min_length(Some(1))
            .max_length(Some(128))
            .pattern(Some("^[A-Za-z0-9._-]{1,128}$"))
            .examples([EXAMPLE_REQUEST_ID]),
        "The request's id: the client's own when sane, else a new UUID. Also in the \
         problem body and the server's log line.",
    ))
}

/// `Cache-Control` of a response with tenant data, as the handlers send it.
fn tenant_cache_control() -> Header {
    fixed_header(
        routes::TENANT_CACHE_CONTROL,
        "Tenant data: never stored by shared caches, always revalidated.",
    )
}

/// The caching headers of a read of tenant data: its `Cache-Control`, and `Vary` as
/// the body depends on the token.
fn tenant_read_caching(response: &mut Response) {
    response
        .headers
        .insert("Cache-Control".to_owned(), tenant_cache_control().into());
    response.headers.insert(
        "Vary".to_owned(),
        fixed_header("Authorization", "The body depends on the token's business.").into(),
    );
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn header(schema: ObjectBuilder, description: &str) -> Header {
    let mut header = Header::new(Schema::Object(schema.build()));
    header.description = Some(description.to_owned());
    header
}

/// A header the response always carries with this exact value.
fn fixed_header(value: &str, description: &str) -> Header {
    required(header(string().enum_values(Some([value])), description))
}

/// Marks a header as always present (OpenAPI's `required`, which utoipa's `Header`
/// does not model; it serializes the extension map flat, next to the other fields).
fn required(mut header: Header) -> Header {
    header.extensions = Some(Extensions::from_iter([("required", true)]));
    header
}

// The descriptions above state these limits in words: changing a limit must fail here
// until they are updated.
const _: () = assert!(MAX_HEAD_BYTES == 32 * 1024 && MAX_AUTHORIZATION_BYTES == 8 * 1024);
