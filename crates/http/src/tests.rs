//! Adapter tests over a mocked repository: routing, authentication, problem bodies,
//! caching headers. The black-box suite in /tests covers the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::from_fn;
use actix_web::{App, test};
use base64::Engine as _;
use pingback_application::{
    ConversationService, MockConversationRepository, RepositoryError, StoredRevision, Subject,
};
use pingback_domain::testing::{ConversationBuilder, at};
use pingback_domain::{BusinessId, Conversation, ConversationId, Revision};
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::{AuthConfig, KeyConfig, TokenAuthority};
use crate::routes::{ApiState, configure};

const SECRET: &str = "test-secret-test-secret-test-secret!";
const BUSINESS: &str = "b2c3d4e5-f6a7-8901-bcde-f12345678901";
const CONVERSATION: &str = "c3d4e5f6-a7b8-9012-cdef-123456789012";
const OTHER_BUSINESS: &str = "0b0b0b0b-0b0b-4b0b-8b0b-0b0b0b0b0b0b";

pub(crate) fn authority(issuer: Option<&str>, audience: Option<&str>) -> TokenAuthority {
    TokenAuthority::new(&AuthConfig {
        key: KeyConfig::Hs256 {
            secret: SecretString::from(SECRET),
        },
        issuer: issuer.map(str::to_owned),
        audience: audience.map(str::to_owned),
        leeway_seconds: 30,
    })
    .unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// Signs arbitrary header and claims with HS256 and `secret`.
fn sign(header: &Value, claims: &Value, secret: &str) -> String {
    use jsonwebtoken::{EncodingKey, crypto::sign as jws_sign};
    let message = format!("{}.{}", b64(header), b64(claims));
    let alg =
        serde_json::from_value(header["alg"].clone()).unwrap_or(jsonwebtoken::Algorithm::HS256);
    let signature = jws_sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret.as_bytes()),
        alg,
    )
    .unwrap();
    format!("{message}.{signature}")
}

pub(crate) fn claims() -> Value {
    json!({ "sub": "agent-1", "business_id": BUSINESS, "exp": now() + 600 })
}

/// The valid claims with one change.
fn claims_with(change: impl FnOnce(&mut Value)) -> Value {
    let mut c = claims();
    change(&mut c);
    c
}

pub(crate) fn token_with(claims: &Value) -> String {
    sign(&json!({ "alg": "HS256", "typ": "JWT" }), claims, SECRET)
}

fn conversation(business: &str) -> Conversation {
    ConversationBuilder::new(BusinessId::parse(business).unwrap())
        .id(ConversationId::parse(CONVERSATION).unwrap())
        .at(at("2024-03-01T09:00:00Z"))
        .read_at(Revision::new(1, None))
        .build()
}

pub(crate) fn repository_with(found: Option<Conversation>) -> MockConversationRepository {
    let mut repository = MockConversationRepository::new();
    let revision = found.as_ref().and_then(|c| {
        Some(StoredRevision {
            business_id: c.business_id(),
            id: c.id(),
            revision: c.revision()?,
        })
    });
    repository
        .expect_find_revision()
        .returning(move |business, id| {
            Ok(revision.filter(|r| r.business_id == business && r.id == id))
        });
    let listed = found.clone();
    repository
        .expect_find_conversation()
        .returning(move |business, id| {
            Ok(found
                .clone()
                .filter(|c| c.business_id() == business && c.id() == id))
        });
    repository
        .expect_list_conversations()
        .returning(move |business, _| {
            Ok(pingback_domain::InboxPage {
                items: listed
                    .iter()
                    .filter(|c| c.business_id() == business)
                    .map(|c| pingback_domain::ConversationSummary {
                        conversation: c.clone(),
                        message_count: c.messages().len() as u64,
                        last_message: c.messages().last().cloned(),
                    })
                    .collect(),
                has_more: false,
                last_event_id: 0,
            })
        });
    repository.expect_ping().returning(|| Ok(()));
    repository
}

/// Handler state over a mock repository; the writer refuses every call (these tests
/// read only).
pub(crate) fn state_with(
    repository: MockConversationRepository,
    tokens: TokenAuthority,
) -> ApiState {
    state_with_writer(
        repository,
        pingback_application::MockConversationWriter::new(),
        tokens,
    )
}

/// Handler state over a mock repository and a mock writer.
pub(crate) fn state_with_writer(
    repository: MockConversationRepository,
    writer: pingback_application::MockConversationWriter,
    tokens: TokenAuthority,
) -> ApiState {
    state_with_ports(repository, writer, empty_event_log(), tokens)
}

/// An event log with no events.
pub(crate) fn empty_event_log() -> pingback_application::MockEventLog {
    let mut log = pingback_application::MockEventLog::new();
    log.expect_events_after()
        .returning(|_, _, _| Ok(pingback_application::EventsAfter::Events(Vec::new())));
    log
}

/// Handler state over mock ports. Event streams end at once (the server is "stopping").
pub(crate) fn state_with_ports(
    repository: MockConversationRepository,
    writer: pingback_application::MockConversationWriter,
    events: pingback_application::MockEventLog,
    tokens: TokenAuthority,
) -> ApiState {
    let conversations = ConversationService::new(Arc::new(repository));
    let (stopping, stopping_rx) = tokio::sync::watch::channel(true);
    // Leaked so the stream's shutdown signal stays `true`, never closed.
    std::mem::forget(stopping);
    ApiState {
        events: crate::events::EventRoutes::new(
            pingback_application::EventFeed::new(
                Arc::new(events),
                pingback_application::EventSignals::new(std::time::Duration::from_secs(1)),
            ),
            Arc::new(tokio::sync::Semaphore::new(8)),
            stopping_rx,
        ),
        commands: pingback_application::ConversationCommands::new(
            Arc::new(writer),
            conversations.clone(),
            Arc::new(pingback_application::SystemClock),
        ),
        conversations,
        webhooks: pingback_application::WebhookService::new(
            Arc::new(pingback_application::MockWebhookRepository::new()),
            Arc::new(pingback_application::MockDestinationGuard::new()),
            pingback_application::SecretKey::new([7; 32]),
            Arc::new(pingback_application::SystemClock),
            false,
        ),
        tokens: Arc::new(tokens),
        metrics: Arc::default(),
    }
}

/// Handler state whose webhook ports are `repository` and `guard` (the conversation
/// ports find the example).
pub(crate) fn state_with_webhooks(
    repository: pingback_application::MockWebhookRepository,
    guard: pingback_application::MockDestinationGuard,
    tokens: TokenAuthority,
) -> ApiState {
    let mut state = state_with(MockConversationRepository::new(), tokens);
    state.webhooks = pingback_application::WebhookService::new(
        Arc::new(repository),
        Arc::new(guard),
        pingback_application::SecretKey::new([7; 32]),
        Arc::new(pingback_application::SystemClock),
        false,
    );
    state
}

pub(crate) async fn call_with(
    repository: MockConversationRepository,
    tokens: TokenAuthority,
    request: test::TestRequest,
) -> ServiceResponse {
    call_state(state_with(repository, tokens), request).await
}

pub(crate) async fn call_state(state: ApiState, request: test::TestRequest) -> ServiceResponse {
    let app = test::init_service(
        App::new()
            .wrap(from_fn(crate::envelope::envelope))
            .configure(configure(state)),
    )
    .await;
    app.call(request.to_request()).await.unwrap()
}

async fn call(request: test::TestRequest) -> ServiceResponse {
    call_with(
        repository_with(Some(conversation(BUSINESS))),
        authority(None, None),
        request,
    )
    .await
}

fn get(path: &str) -> test::TestRequest {
    test::TestRequest::get().uri(path)
}

fn conversation_path() -> String {
    format!("/api/v1/conversations/{CONVERSATION}")
}

async fn problem(
    response: ServiceResponse,
) -> (StatusCode, actix_web::http::header::HeaderMap, Value) {
    let status = response.status();
    let headers = response.headers().clone();
    assert_eq!(
        headers.get(header::CONTENT_TYPE).unwrap(),
        "application/problem+json"
    );
    let body = test::read_body(response).await;
    (status, headers, serde_json::from_slice(&body).unwrap())
}

#[actix_web::test]
async fn a_valid_token_reads_its_business_conversation() {
    let response = call(get(&conversation_path()).insert_header((
        header::AUTHORIZATION,
        format!("Bearer {}", token_with(&claims())),
    )))
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(header::ETAG).is_some());
    assert!(response.headers().get("x-request-id").is_some());
    let body: Value = serde_json::from_slice(&test::read_body(response).await).unwrap();
    assert_eq!(body["id"], CONVERSATION);
    assert_eq!(body["customer"], Value::Null);
    assert_eq!(body["messages"], json!([]));
}

#[actix_web::test]
async fn the_scheme_is_case_insensitive() {
    let response = call(get(&conversation_path()).insert_header((
        header::AUTHORIZATION,
        format!("bEaReR {}", token_with(&claims())),
    )))
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn assert_unauthorized(authorization: Option<String>, tokens: TokenAuthority) -> Value {
    let mut request = get(&conversation_path());
    if let Some(value) = authorization {
        request = request.insert_header((header::AUTHORIZATION, value));
    }
    let mut repository = MockConversationRepository::new();
    repository.expect_find_conversation().never();
    let (status, headers, body) = problem(call_with(repository, tokens, request).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers
            .get(header::WWW_AUTHENTICATE)
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("Bearer ")
    );
    assert_eq!(body["type"], "/problems/unauthorized");
    assert_eq!(body["status"], 401);
    assert_eq!(
        body["request_id"],
        headers.get("x-request-id").unwrap().to_str().unwrap()
    );
    body
}

#[actix_web::test]
async fn the_401_matrix() {
    let bearer = |t: String| Some(format!("Bearer {t}"));
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing header", None),
        ("basic scheme", Some("Basic dXNlcjpwYXNz".into())),
        ("bearer without token", Some("Bearer".into())),
        ("garbage", bearer("not-a-jwt".into())),
        (
            "bad signature",
            bearer(sign(
                &json!({"alg":"HS256"}),
                &claims(),
                "another-secret-another-secret-another",
            )),
        ),
        (
            "expired",
            bearer(token_with(&claims_with(|c| {
                c["exp"] = json!(now() - 120);
            }))),
        ),
        (
            "nbf in the future",
            bearer(token_with(&claims_with(|c| {
                c["nbf"] = json!(now() + 120);
            }))),
        ),
        (
            "iat in the future",
            bearer(token_with(&claims_with(|c| {
                c["iat"] = json!(now() + 120);
            }))),
        ),
        (
            "alg none",
            Some(format!(
                "Bearer {}.{}.",
                b64(&json!({"alg":"none"})),
                b64(&claims())
            )),
        ),
        (
            "HS384 instead of HS256",
            bearer(sign(&json!({"alg":"HS384"}), &claims(), SECRET)),
        ),
        (
            "missing sub",
            bearer(token_with(&claims_with(|c| {
                c.as_object_mut().unwrap().remove("sub");
            }))),
        ),
        (
            "numeric sub",
            bearer(token_with(&claims_with(|c| {
                c["sub"] = json!(42);
            }))),
        ),
        (
            "missing business_id",
            bearer(token_with(&claims_with(|c| {
                c.as_object_mut().unwrap().remove("business_id");
            }))),
        ),
        (
            "integer business_id",
            bearer(token_with(&claims_with(|c| {
                c["business_id"] = json!(7);
            }))),
        ),
        (
            "non-UUID business_id",
            bearer(token_with(&claims_with(|c| {
                c["business_id"] = json!("acme");
            }))),
        ),
        (
            "missing exp",
            bearer(token_with(&claims_with(|c| {
                c.as_object_mut().unwrap().remove("exp");
            }))),
        ),
        (
            "string exp",
            bearer(token_with(&claims_with(|c| {
                c["exp"] = json!("tomorrow");
            }))),
        ),
        (
            "crit header",
            bearer(sign(
                &json!({"alg":"HS256","crit":["exp"]}),
                &claims(),
                SECRET,
            )),
        ),
        ("oversized", bearer("a".repeat(16 * 1024))),
    ];
    for (name, authorization) in cases {
        let body = assert_unauthorized(authorization, authority(None, None)).await;
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}"
        );
    }
}

#[actix_web::test]
async fn issuer_and_audience_are_enforced_when_configured() {
    let tokens = || authority(Some("https://auth.example"), Some("pingback"));
    let mut c = claims();
    c["iss"] = json!("https://auth.example");
    c["aud"] = json!(["other", "pingback"]);
    let ok = call_with(
        repository_with(Some(conversation(BUSINESS))),
        tokens(),
        get(&conversation_path())
            .insert_header((header::AUTHORIZATION, format!("Bearer {}", token_with(&c)))),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);

    let mut wrong_iss = c.clone();
    wrong_iss["iss"] = json!("https://evil.example");
    assert_unauthorized(Some(format!("Bearer {}", token_with(&wrong_iss))), tokens()).await;
    let mut wrong_aud = c.clone();
    wrong_aud["aud"] = json!("other");
    assert_unauthorized(Some(format!("Bearer {}", token_with(&wrong_aud))), tokens()).await;
    let mut no_aud = c;
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_unauthorized(Some(format!("Bearer {}", token_with(&no_aud))), tokens()).await;
}

#[actix_web::test]
async fn authentication_comes_before_the_path_id() {
    assert_unauthorized(None, authority(None, None)).await;
    let response = call(get("/api/v1/conversations/not-a-uuid")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn other_business_and_missing_and_malformed_ids_are_the_same_404() {
    let auth = (
        header::AUTHORIZATION,
        format!("Bearer {}", token_with(&claims())),
    );
    let other = call_with(
        repository_with(Some(conversation("a1b2c3d4-e5f6-7890-abcd-ef1234567890"))),
        authority(None, None),
        get(&conversation_path()).insert_header(auth.clone()),
    )
    .await;
    let missing = call_with(
        repository_with(None),
        authority(None, None),
        get(&conversation_path()).insert_header(auth.clone()),
    )
    .await;
    let malformed =
        call(get("/api/v1/conversations/g7b8c9d0-e1f2-3456-abcd-567890123456").insert_header(auth))
            .await;
    let mut bodies = vec![];
    for response in [other, missing, malformed] {
        let (status, _, mut body) = problem(response).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        body.as_object_mut().unwrap().remove("request_id");
        bodies.push(body);
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[1], bodies[2]);
    assert_eq!(bodies[0]["type"], "/problems/not-found");
}

#[actix_web::test]
async fn the_path_id_is_accepted_in_any_case() {
    let response = call(
        get(&conversation_path()
            .to_uppercase()
            .replace("/API/V1/CONVERSATIONS/", "/api/v1/conversations/"))
        .insert_header((
            header::AUTHORIZATION,
            format!("Bearer {}", token_with(&claims())),
        )),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[actix_web::test]
async fn other_methods_get_405_with_allow_before_authentication() {
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
        let (status, headers, body) = problem(
            call(
                test::TestRequest::default()
                    .method(method)
                    .uri(&conversation_path()),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers.get(header::ALLOW).unwrap(), "GET, HEAD, PATCH");
        assert_eq!(body["type"], "/problems/method-not-allowed");
    }
}

#[actix_web::test]
async fn etag_and_if_none_match_give_304() {
    let auth = (
        header::AUTHORIZATION,
        format!("Bearer {}", token_with(&claims())),
    );
    let first = call(get(&conversation_path()).insert_header(auth.clone())).await;
    let etag = first
        .headers()
        .get(header::ETAG)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(etag.starts_with('"'), "strong tag: {etag}");
    let second = call(
        get(&conversation_path())
            .insert_header(auth.clone())
            .insert_header((header::IF_NONE_MATCH, etag.clone())),
    )
    .await;
    assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(
        second
            .headers()
            .get(header::ETAG)
            .unwrap()
            .to_str()
            .unwrap(),
        etag
    );
    assert!(test::read_body(second).await.is_empty());
    let stale = call(
        get(&conversation_path())
            .insert_header(auth)
            .insert_header((header::IF_NONE_MATCH, "\"stale\"")),
    )
    .await;
    assert_eq!(stale.status(), StatusCode::OK);
}

#[actix_web::test]
async fn a_current_copy_is_confirmed_without_reading_the_history() {
    let auth = (
        header::AUTHORIZATION,
        format!("Bearer {}", token_with(&claims())),
    );
    let first = call(get(&conversation_path()).insert_header(auth.clone())).await;
    let etag = first.headers().get(header::ETAG).unwrap().clone();

    // The same conditional request against a given store.
    let conditional = |repository| {
        call_with(
            repository,
            authority(None, None),
            get(&conversation_path())
                .insert_header(auth.clone())
                .insert_header((header::IF_NONE_MATCH, etag.clone())),
        )
    };

    let mut repository = MockConversationRepository::new();
    let stored = StoredRevision {
        business_id: BusinessId::parse(BUSINESS).unwrap(),
        id: ConversationId::parse(CONVERSATION).unwrap(),
        revision: Revision::new(1, None),
    };
    repository
        .expect_find_revision()
        .times(1)
        .returning(move |_, _| Ok(Some(stored)));
    repository.expect_find_conversation().never();
    let response = conditional(repository).await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(response.headers().get(header::ETAG), Some(&etag));
    assert_eq!(
        response.headers().get(header::CACHE_CONTROL).unwrap(),
        "private, no-cache"
    );

    // A newer revision: the whole conversation, with the new tag.
    let mut repository = MockConversationRepository::new();
    let newer = StoredRevision {
        revision: Revision::new(2, None),
        ..stored
    };
    repository
        .expect_find_revision()
        .returning(move |_, _| Ok(Some(newer)));
    let changed = conversation(BUSINESS).read_at(Revision::new(2, None));
    repository
        .expect_find_conversation()
        .times(1)
        .returning(move |_, _| Ok(Some(changed.clone())));
    let response = conditional(repository).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_ne!(response.headers().get(header::ETAG), Some(&etag));

    // Another business's token: the tag is no key to someone else's conversation.
    let other = (
        header::AUTHORIZATION,
        format!(
            "Bearer {}",
            token_with(&claims_with(|c| c["business_id"] = json!(OTHER_BUSINESS)))
        ),
    );
    let response = call(
        get(&conversation_path())
            .insert_header(other)
            .insert_header((header::IF_NONE_MATCH, etag)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn unavailable_storage_is_503_with_retry_after_and_internal_is_opaque() {
    let auth = (
        header::AUTHORIZATION,
        format!("Bearer {}", token_with(&claims())),
    );
    let mut down = MockConversationRepository::new();
    down.expect_find_conversation()
        .returning(|_, _| Err(RepositoryError::unavailable("connection refused")));
    let (status, headers, body) = problem(
        call_with(
            down,
            authority(None, None),
            get(&conversation_path()).insert_header(auth.clone()),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.get(header::RETRY_AFTER).is_some());
    assert_eq!(body["type"], "/problems/unavailable");

    let mut broken = MockConversationRepository::new();
    broken.expect_find_conversation().returning(|_, _| {
        Err(RepositoryError::internal(
            "ERROR: relation \"messages\" does not exist",
        ))
    });
    let (status, _, body) = problem(
        call_with(
            broken,
            authority(None, None),
            get(&conversation_path()).insert_header(auth),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!body.to_string().contains("relation"), "{body}");
}

#[actix_web::test]
async fn request_ids_are_echoed_when_sane_and_generated_otherwise() {
    let echoed = call(get("/healthz").insert_header(("x-request-id", "abc-123_x.y"))).await;
    assert_eq!(echoed.headers().get("x-request-id").unwrap(), "abc-123_x.y");
    for insane in ["has space", "a".repeat(129).as_str(), "semi;colon"] {
        let generated = call(get("/healthz").insert_header(("x-request-id", insane))).await;
        let id = generated
            .headers()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(Uuid::parse_str(&id).is_ok(), "{insane} -> {id}");
    }
}

#[actix_web::test]
async fn health_and_readiness() {
    assert_eq!(call(get("/healthz")).await.status(), StatusCode::OK);
    assert_eq!(call(get("/readyz")).await.status(), StatusCode::OK);
    let mut down = MockConversationRepository::new();
    down.expect_ping()
        .returning(|| Err(RepositoryError::unavailable("down")));
    let (status, headers, _) =
        problem(call_with(down, authority(None, None), get("/readyz")).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.get(header::RETRY_AFTER).is_some());
}

#[actix_web::test]
async fn unknown_routes_are_problem_404() {
    let (status, _, body) = problem(call(get("/nope")).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["type"], "/problems/not-found");
}

#[actix_web::test]
async fn minted_tokens_verify_and_self_test_passes() {
    let tokens = authority(Some("iss"), Some("aud"));
    tokens.self_test().unwrap();
    let token = tokens
        .mint(
            BusinessId::parse(BUSINESS).unwrap(),
            &Subject::new("s").unwrap(),
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(
        tokens.verify(&token).unwrap().business_id().to_string(),
        BUSINESS
    );
    assert!(
        TokenAuthority::new(&AuthConfig {
            key: KeyConfig::Hs256 {
                secret: SecretString::from("short")
            },
            issuer: None,
            audience: None,
            leeway_seconds: 0
        })
        .is_err()
    );
}

#[actix_web::test]
async fn a_panicking_handler_is_an_opaque_500_for_that_request_only() {
    let mut repository = MockConversationRepository::new();
    repository
        .expect_find_conversation()
        .returning(|_, _| panic!("adapter bug: secret detail"));
    repository.expect_ping().returning(|| Ok(()));
    let state = state_with(repository, authority(None, None));
    let app = test::init_service(
        App::new()
            .wrap(from_fn(crate::envelope::envelope))
            .configure(configure(state)),
    )
    .await;
    let auth = (
        header::AUTHORIZATION,
        format!("Bearer {}", token_with(&claims())),
    );
    let response = app
        .call(get(&conversation_path()).insert_header(auth).to_request())
        .await
        .unwrap();
    let (status, headers, body) = problem(response).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["type"], "/problems/internal");
    assert_eq!(
        body["request_id"],
        headers.get("x-request-id").unwrap().to_str().unwrap()
    );
    assert!(!body.to_string().contains("secret detail"));
    let after = app.call(get("/readyz").to_request()).await.unwrap();
    assert_eq!(after.status(), StatusCode::OK);
}

#[actix_web::test]
async fn a_request_head_over_32_kib_is_431() {
    let (status, _, body) =
        problem(call(get("/healthz").insert_header(("x-padding", "a".repeat(33 * 1024)))).await)
            .await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(body["type"], "/problems/too-large");
}

#[actix_web::test]
async fn metrics_count_requests_by_route_and_status() {
    let repository = repository_with(None);
    let state = state_with(repository, authority(None, None));
    let app = test::init_service(
        App::new()
            .wrap(from_fn(crate::envelope::envelope))
            .configure(configure(state)),
    )
    .await;
    app.call(get(&conversation_path()).to_request())
        .await
        .unwrap();
    app.call(get("/healthz").to_request()).await.unwrap();
    let response = app.call(get("/metrics").to_request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(test::read_body(response).await.to_vec()).unwrap();
    assert!(
        text.contains("pingback_http_requests_total{route=\"conversation\",status=\"401\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("pingback_http_requests_total{route=\"healthz\",status=\"200\"} 1"),
        "{text}"
    );
}

const RSA_PUBLIC: &str = include_str!("../tests/fixtures/rsa-public.pem");
const RSA_PRIVATE: &str = include_str!("../tests/fixtures/rsa-private.pem");

fn rs256_authority() -> TokenAuthority {
    TokenAuthority::new(&AuthConfig {
        key: KeyConfig::Rs256 {
            public_key_pem: RSA_PUBLIC.to_owned(),
            private_key_pem: Some(SecretString::from(RSA_PRIVATE)),
        },
        issuer: None,
        audience: None,
        leeway_seconds: 30,
    })
    .unwrap()
}

#[actix_web::test]
async fn rs256_tokens_verify_and_the_public_key_as_hmac_secret_is_refused() {
    let tokens = rs256_authority();
    tokens.self_test().unwrap();
    let token = tokens
        .mint(
            BusinessId::parse(BUSINESS).unwrap(),
            &Subject::new("s").unwrap(),
            Duration::from_secs(60),
        )
        .unwrap();
    let ok = call_with(
        repository_with(Some(conversation(BUSINESS))),
        rs256_authority(),
        get(&conversation_path()).insert_header((header::AUTHORIZATION, format!("Bearer {token}"))),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);

    // The classic confusion: an HS256 token keyed with the (public) RSA key.
    let forged = sign(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims(),
        RSA_PUBLIC,
    );
    assert_unauthorized(Some(format!("Bearer {forged}")), rs256_authority()).await;
}

#[actix_web::test]
async fn kid_and_jku_are_ignored_the_configured_key_decides() {
    // A valid signature with headers pointing elsewhere: nothing is fetched, the
    // configured key verifies it.
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": "attacker-key", "jku": "http://127.0.0.1:9/keys.json"});
    let token = sign(&header, &claims(), SECRET);
    let response = call(
        get(&conversation_path()).insert_header((header::AUTHORIZATION, format!("Bearer {token}"))),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    // The same headers with a signature from another key do not help.
    let forged = sign(&header, &claims(), "the-attackers-own-secret-of-32-bytes!!");
    assert_unauthorized(Some(format!("Bearer {forged}")), authority(None, None)).await;
}
