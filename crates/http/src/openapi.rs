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
The read API of Pingback, a customer-support messaging backend: one conversation, its \
embedded customer and its complete message history, visible only to the business that \
owns it.\n\n\
* Every identifier is a UUID printed lower-case and hyphenated; every timestamp is \
RFC 3339 in UTC with a `Z` suffix, fractional seconds (microseconds) only when non-zero.\n\
* Errors are `application/problem+json` (RFC 9457) with `type`, `title`, `status`, \
`detail` and `request_id`; 500 bodies never carry internal details.\n\
* Every response carries `X-Request-Id`: the client's own when sane (1 to 128 characters \
of `A-Z a-z 0-9 . _ -`, the first one when repeated), else a new UUID. The same id is in \
the problem body and the server's log line.\n\
* A request head over 32 KiB gets 431 on every route; a method other than GET or HEAD \
gets 405 with `Allow: GET, HEAD` (routing comes before authentication). HEAD answers as \
GET would, with the same headers and no body.\n\
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
| `iss`, `aud` | when configured | must match the configured values (`aud` may be a string or an array) |\n\n\
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
        routes::get_conversation,
        routes::healthz,
        routes::readyz,
        routes::metrics,
        routes::openapi_json,
        routes::docs,
    ),
    components(schemas(Problem<'static>, ProblemType)),
    modifiers(&Contract),
    tags(
        (name = "conversations", description = "Conversations of the caller's business."),
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
            let Some(get) = item.get.as_mut() else {
                continue;
            };
            if is_conversation(path) {
                conversation_extras(get);
            }
            for error in errors_of(path) {
                get.responses
                    .responses
                    .insert(error.status.to_string(), problem_response(&error).into());
            }
            get.parameters
                .get_or_insert_with(Vec::new)
                .push(request_id_parameter().into());
            for response in get.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    response
                        .headers
                        .insert("X-Request-Id".to_owned(), request_id_header().into());
                }
            }
            item.head = Some(head_of(get));
        }
    }
}

fn is_conversation(path: &str) -> bool {
    path.starts_with("/api/v1/conversations/")
}

/// One documented error of a route.
struct DocumentedError {
    status: u16,
    error: ApiError,
    description: &'static str,
}

/// The errors each route answers.
fn errors_of(path: &str) -> Vec<DocumentedError> {
    let e = |error: ApiError, description| DocumentedError {
        status: error.status_code().as_u16(),
        error,
        description,
    };
    let mut errors = Vec::new();
    if is_conversation(path) {
        errors.push(e(
            ApiError::Unauthorized(AuthError::Missing),
            "No, malformed, expired or otherwise invalid token (see the security scheme). \
             Decided before the path is looked at; needs no database.",
        ));
        errors.push(e(
            ApiError::ConversationNotFound,
            "No such conversation in your business, or the id is not a UUID. A \
             conversation of another business looks exactly like a missing one.",
        ));
    }
    errors.push(e(
        ApiError::MethodNotAllowed,
        "Any method but GET or HEAD. Routing comes before authentication.",
    ));
    errors.push(e(
        ApiError::HeadTooLarge,
        "The request head (request line and headers) is over 32 KiB.",
    ));
    // The routes that use the database.
    if is_conversation(path) || path == "/readyz" {
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
    errors
}

/// An example request id, as a client may send it or the server generates it.
const EXAMPLE_REQUEST_ID: &str = "0b5f3c9e-6a61-4c1e-9d59-6f2f1f0f4a7e";

/// A problem+json response whose example is what the server answers for `error`.
fn problem_response(documented: &DocumentedError) -> Response {
    let error = &documented.error;
    let (kind, title) = error.kind_and_title();
    let detail = error.detail();
    let example = serde_json::to_value(Problem {
        kind,
        title,
        status: documented.status,
        detail: &detail,
        request_id: EXAMPLE_REQUEST_ID,
    })
    .ok();
    let mut response = ResponseBuilder::new()
        .description(documented.description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "Problem",
                ))))
                .example(example)
                .build(),
        )
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
        ApiError::MethodNotAllowed => {
            response = response.header(
                "Allow",
                fixed_header("GET, HEAD", "The methods the resource supports."),
            );
        }
        ApiError::Unavailable => {
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
    response.build()
}

/// The 200 example, the caching headers and the `ETag` of the conversation route.
fn conversation_extras(get: &mut Operation) {
    let example = crate::example::conversation()
        .ok()
        .and_then(|c| to_json(&c).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
    let etag = || -> RefOr<Header> {
        RefOr::T(required(header(
            string()
                .pattern(Some("^\"[0-9a-f]{32}\"$"))
                .examples(["\"5b1e8a0d3c2f4e6a8b9c0d1e2f3a4b5c\""]),
            "A strong entity tag made from the stored revisions of the conversation and of \
             its customer (every import that writes them bumps them) and the \
             representation's fingerprint: the same on every node and across restarts \
             until the data or the representation changes. Send it back in \
             `If-None-Match`.",
        )))
    };
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
            response.headers.insert(
                "Cache-Control".to_owned(),
                fixed_header(
                    "private, no-cache",
                    "Tenant data: never stored by shared caches, always revalidated.",
                )
                .into(),
            );
            response.headers.insert(
                "Vary".to_owned(),
                fixed_header("Authorization", "The body depends on the token's business.").into(),
            );
        }
    }
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
