//! Black-box tests of `GET /api/v1/conversations/{id}` and the service around it:
//! the real binary, real HTTP, PostgreSQL and SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use support::{App, Backend, SECRET, TestEnv, claims_for, now, sign, token_for};

const BUSINESS: &str = "b2c3d4e5-f6a7-8901-bcde-f12345678901";
const OTHER_BUSINESS: &str = "0d0e0f10-1112-4314-9516-171819202122";
const CONVERSATION: &str = "c3d4e5f6-a7b8-9012-cdef-123456789012";

/// The seed document's example, with its non-UUID ids made valid.
fn seed_document() -> Value {
    json!({
        "id": CONVERSATION,
        "business_id": BUSINESS,
        "customer_id": "d4e5f6a7-b8c9-0123-defa-234567890123",
        "assignee_id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
        "status": "open",
        "channel_type": "widget",
        "channel_id": "e5f6a7b8-c9d0-1234-efab-345678901234",
        "created_at": "2024-03-01T09:00:00Z",
        "updated_at": "2024-03-01T09:20:00Z",
        "first_response_at": "2024-03-01T09:05:00Z",
        "customer": {
            "id": "d4e5f6a7-b8c9-0123-defa-234567890123",
            "business_id": BUSINESS,
            "name": "Alex Johnson",
            "email": "alex@example.com",
            "phone": null,
            "external_id": null,
            "created_at": "2024-02-20T08:00:00Z"
        },
        "messages": [
            {
                "id": "f6a7b8c9-d0e1-2345-fabc-456789012345",
                "conversation_id": CONVERSATION,
                "sender_type": "customer",
                "sender_id": null,
                "content": "Hello, I need help with my order.",
                "attachments": [],
                "created_at": "2024-03-01T09:00:00Z"
            },
            {
                "id": "a7b8c9d0-e1f2-3456-abcd-567890123456",
                "conversation_id": CONVERSATION,
                "sender_type": "agent",
                "sender_id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
                "content": "Hi Alex! Happy to help. Can you share your order number?",
                "attachments": [],
                "created_at": "2024-03-01T09:05:00Z"
            }
        ]
    })
}

fn path(id: &str) -> String {
    format!("/api/v1/conversations/{id}")
}

fn served_with_seed(env: &TestEnv) -> App {
    env.import(&seed_document());
    env.serve()
}

/// A conversation with every nullable field null.
fn bare_conversation(id: &str) -> Value {
    json!({
        "id": id, "business_id": BUSINESS, "customer_id": null, "assignee_id": null,
        "status": "pending", "channel_type": "email", "channel_id": null,
        "created_at": "2024-05-01T10:00:00.5Z", "updated_at": "2024-05-01T10:00:00.5Z",
        "first_response_at": null, "customer": null, "messages": []
    })
}

on_both_backends! {
    seed_example_round_trips_exactly => |env: TestEnv| async move {
        let app = served_with_seed(&env);
        let reply = app.get_as(&path(CONVERSATION), &token_for(BUSINESS));
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.json(), seed_document());
    };

    nullable_fields_are_null => |env: TestEnv| async move {
        let id = "11111111-2222-4333-8444-555555555555";
        env.import(&bare_conversation(id));
        let app = env.serve();
        let body = app.get_as(&path(id), &token_for(BUSINESS)).json();
        assert_eq!(body, bare_conversation(id));
    };

    history_is_ordered_by_time_then_id_with_attachments => |env: TestEnv| async move {
        let id = "22222222-2222-4333-8444-555555555555";
        let mut document = bare_conversation(id);
        let message = |mid: &str, at: &str, attachments: Value| json!({
            "id": mid, "conversation_id": id, "sender_type": "customer", "sender_id": null,
            "content": format!("message {mid} — héllo 👋"), "attachments": attachments, "created_at": at
        });
        // Imported out of order; three share a timestamp.
        document["messages"] = json!([
            message("00000000-0000-4000-8000-000000000009", "2024-05-01T10:00:02Z", json!([])),
            message("00000000-0000-4000-8000-000000000003", "2024-05-01T10:00:01.000001Z", json!([])),
            message("00000000-0000-4000-8000-00000000000b", "2024-05-01T10:00:01.000001Z", json!([
                {"id": "00000000-0000-4000-8000-0000000000a2", "file_name": "b.png", "content_type": "image/png", "byte_size": 0, "url": "https://files.example/b"},
                {"id": "00000000-0000-4000-8000-0000000000a1", "file_name": "a.pdf", "content_type": "application/pdf", "byte_size": 9007199254740993_u64, "url": "https://files.example/a"}
            ])),
            message("00000000-0000-4000-8000-000000000001", "2024-05-01T10:00:01.000001Z", json!([])),
            message("00000000-0000-4000-8000-000000000002", "2024-05-01T09:59:59.9Z", json!([])),
        ]);
        env.import(&document);
        let app = env.serve();
        let body = app.get_as(&path(id), &token_for(BUSINESS)).json();
        let ids: Vec<&str> = body["messages"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [
            "00000000-0000-4000-8000-000000000002",
            "00000000-0000-4000-8000-000000000001",
            "00000000-0000-4000-8000-000000000003",
            "00000000-0000-4000-8000-00000000000b",
            "00000000-0000-4000-8000-000000000009",
        ]);
        let attachments = &body["messages"][3]["attachments"];
        assert_eq!(attachments[0]["file_name"], "b.png", "attachments keep their order");
        assert_eq!(attachments[1]["byte_size"], 9007199254740993_u64);
        assert_eq!(body["messages"][0]["created_at"], "2024-05-01T09:59:59.9Z");
        assert_eq!(body["messages"][0]["conversation_id"], id);
    };

    a_long_history_arrives_whole_with_its_length => |env: TestEnv| async move {
        // Large bodies are handed to actix in slices: the client must not notice.
        let output = env.run(&[
            "generate", "--business-id", BUSINESS, "--conversations", "1", "--messages", "3000",
            "--seed", "3",
        ]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8(output.stdout).unwrap();
        let id = stdout.lines().find(|l| l.len() == 36).expect("a conversation id").to_owned();
        let app = env.serve();
        let reply = app.get_as(&path(&id), &token_for(BUSINESS));
        assert_eq!(reply.status, 200);
        assert!(reply.body.len() > 512 * 1024, "{} bytes", reply.body.len());
        assert_eq!(reply.header("content-length"), Some(reply.body.len().to_string().as_str()));
        assert_eq!(reply.header("transfer-encoding"), None);
        assert_eq!(reply.json()["messages"].as_array().unwrap().len(), 3000);
    };

    another_business_is_indistinguishable_from_missing => |env: TestEnv| async move {
        let app = served_with_seed(&env);
        let theirs = app.get_as(&path(CONVERSATION), &token_for(OTHER_BUSINESS));
        let missing = app.get_as(&path("99999999-9999-4999-8999-999999999999"), &token_for(OTHER_BUSINESS));
        let mut a = theirs.problem(404);
        let mut b = missing.problem(404);
        a.as_object_mut().unwrap().remove("request_id");
        b.as_object_mut().unwrap().remove("request_id");
        assert_eq!(a, b);
        assert_eq!(a["type"], "/problems/not-found");
        let strip = |r: &support::Reply| {
            let mut headers: Vec<_> = r.headers.iter().filter(|(k, _)| !matches!(k.as_str(), "x-request-id" | "date")).cloned().collect();
            headers.sort();
            headers
        };
        assert_eq!(strip(&theirs), strip(&missing), "headers must not tell them apart either");
    };

    the_tenant_comes_only_from_the_token => |env: TestEnv| async move {
        let app = served_with_seed(&env);
        let token = token_for(OTHER_BUSINESS);
        let auth = format!("Bearer {token}");
        let reply = app.get(
            &format!("{}?business_id={BUSINESS}", path(CONVERSATION)),
            &[("authorization", &auth), ("x-business-id", BUSINESS), ("business_id", BUSINESS)],
        );
        reply.problem(404);
    };

    malformed_ids_are_404_and_case_is_ignored => |env: TestEnv| async move {
        let app = served_with_seed(&env);
        let token = token_for(BUSINESS);
        for bad in ["42", "g7b8c9d0-e1f2-3456-abcd-567890123456", "c3d4e5f6a7b89012cdef123456789012",
                    "%7Bc3d4e5f6-a7b8-9012-cdef-123456789012%7D", "..%2F..%2Fetc%2Fpasswd", "%00", "c3d4e5f6-a7b8-9012-cdef-123456789012%20"] {
            app.get_as(&path(bad), &token).problem(404);
        }
        let upper = app.get_as(&path(&CONVERSATION.to_uppercase()), &token);
        assert_eq!(upper.status, 200);
        assert_eq!(upper.json()["id"], CONVERSATION);
    };

    etag_and_conditional_requests => |env: TestEnv| async move {
        let app = served_with_seed(&env);
        let token = token_for(BUSINESS);
        let auth = format!("Bearer {token}");
        let first = app.get(&path(CONVERSATION), &[("authorization", &auth)]);
        let etag = first.header("etag").unwrap().to_owned();
        assert!(etag.starts_with('"') && !etag.starts_with("W/"), "strong: {etag}");
        let again = app.get(&path(CONVERSATION), &[("authorization", &auth)]);
        assert_eq!(again.header("etag"), Some(etag.as_str()), "stable across requests");
        let cached = app.get(&path(CONVERSATION), &[("authorization", &auth), ("if-none-match", &etag)]);
        assert_eq!(cached.status, 304);
        assert!(cached.body.is_empty());
        assert_eq!(cached.header("etag"), Some(etag.as_str()));
        let stale = app.get(&path(CONVERSATION), &[("authorization", &auth), ("if-none-match", "\"nope\"")]);
        assert_eq!(stale.status, 200);

        // A change to the conversation changes the tag.
        let mut changed = seed_document();
        changed["status"] = json!("resolved");
        env.import(&changed);
        let after = app.get(&path(CONVERSATION), &[("authorization", &auth), ("if-none-match", &etag)]);
        assert_eq!(after.status, 200);
        assert_ne!(after.header("etag"), Some(etag.as_str()));
        assert_eq!(after.json()["status"], "resolved");

        // The embedded customer changed through ANOTHER conversation: this one's
        // body changed, so must its tag (a 304 now would serve a stale name).
        let current = after.header("etag").unwrap().to_owned();
        let mut sibling = seed_document();
        sibling["id"] = json!("c3d4e5f6-a7b8-4012-8def-000000000002");
        sibling["customer"]["name"] = json!("Alex J. Renamed");
        sibling["messages"] = json!([]);
        env.import(&sibling);
        let renamed = app.get(&path(CONVERSATION), &[("authorization", &auth), ("if-none-match", &current)]);
        assert_eq!(renamed.status, 200);
        assert_ne!(renamed.header("etag"), Some(current.as_str()));
        assert_eq!(renamed.json()["customer"]["name"], "Alex J. Renamed");
        let now = renamed.header("etag").unwrap().to_owned();
        let cached = app.get(&path(CONVERSATION), &[("authorization", &auth), ("if-none-match", &now)]);
        assert_eq!(cached.status, 304);

        // A tag is no key to another business's conversation.
        let theirs = app.get(&path(CONVERSATION), &[
            ("authorization", &format!("Bearer {}", token_for(OTHER_BUSINESS))),
            ("if-none-match", &now),
        ]);
        theirs.problem(404);
    };

    head_answers_like_get_without_a_body => |env: TestEnv| async move {
        let app = served_with_seed(&env);
        let auth = format!("Bearer {}", token_for(BUSINESS));
        let get = app.get(&path(CONVERSATION), &[("authorization", &auth)]);
        let head = app.request("HEAD", &path(CONVERSATION), &[("authorization", &auth)]);
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(head.header("etag"), get.header("etag"));
        assert_eq!(head.header("content-type"), get.header("content-type"));
    };

    the_401_matrix => |env: TestEnv| async move {
        let app = served_with_seed(&env);
        let claims = || claims_for(BUSINESS);
        let hs = |c: &Value| sign(&json!({"alg": "HS256", "typ": "JWT"}), c, SECRET);
        let without = |key: &str| { let mut c = claims(); c.as_object_mut().unwrap().remove(key); hs(&c) };
        let with = |key: &str, v: Value| { let mut c = claims(); c[key] = v; hs(&c) };
        let cases: Vec<(&str, Option<String>)> = vec![
            ("missing", None),
            ("wrong scheme", Some("Basic YWxhZGRpbjpvcGVuc2VzYW1l".into())),
            ("token only", Some(hs(&claims()))),
            ("malformed", Some("Bearer abc.def".into())),
            ("bad signature", Some(format!("Bearer {}", sign(&json!({"alg":"HS256"}), &claims(), "some-other-secret-some-other-secret!")))),
            ("expired", Some(format!("Bearer {}", with("exp", json!(now() - 3600))))),
            ("nbf in the future", Some(format!("Bearer {}", with("nbf", json!(now() + 3600))))),
            ("alg none", Some(format!("Bearer {}.{}.", support::b64(&json!({"alg":"none","typ":"JWT"})), support::b64(&claims())))),
            ("wrong algorithm", Some(format!("Bearer {}", sign(&json!({"alg":"HS512"}), &claims(), SECRET)))),
            ("missing sub", Some(format!("Bearer {}", without("sub")))),
            ("missing exp", Some(format!("Bearer {}", without("exp")))),
            ("missing business_id", Some(format!("Bearer {}", without("business_id")))),
            ("non-UUID business_id", Some(format!("Bearer {}", with("business_id", json!("7"))))),
        ];
        for (name, authorization) in cases {
            let headers: Vec<(&str, &str)> = authorization.iter().map(|a| ("authorization", a.as_str())).collect();
            let reply = app.get(&path(CONVERSATION), &headers);
            let body = reply.problem(401);
            assert_eq!(body["type"], "/problems/unauthorized", "{name}");
            assert!(reply.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")), "{name}");
        }
        // Within the leeway, a just-expired token still works; a valid one does.
        let ok = app.get_as(&path(CONVERSATION), &with("exp", json!(now() - 5)));
        assert_eq!(ok.status, 200);
    };

    bad_tokens_are_401_before_the_path_is_looked_at => |env: TestEnv| async move {
        let app = env.serve();
        app.get(&path("not-a-uuid"), &[]).problem(401);
    };

    other_methods_are_405_with_allow => |env: TestEnv| async move {
        let app = env.serve();
        // Routing comes before authentication: no token needed for a 405.
        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            let reply = app.request(method, &path(CONVERSATION), &[]);
            assert_eq!(reply.problem(405)["type"], "/problems/method-not-allowed");
            assert_eq!(reply.header("allow"), Some("GET, HEAD, PATCH"));
        }
        for (route, allow) in [
            ("/api/v1/conversations", "GET, HEAD, POST"),
            ("/healthz", "GET, HEAD"),
        ] {
            let reply = app.request("PUT", route, &[]);
            assert_eq!(reply.problem(405)["type"], "/problems/method-not-allowed");
            assert_eq!(reply.header("allow"), Some(allow));
        }
    };

    request_ids_are_echoed_or_generated => |env: TestEnv| async move {
        let app = env.serve();
        let echoed = app.get("/healthz", &[("x-request-id", "trace-abc.123_X")]);
        assert_eq!(echoed.header("x-request-id"), Some("trace-abc.123_X"));
        let generated = app.get(&path(CONVERSATION), &[("x-request-id", "bad id with spaces")]);
        let id = generated.header("x-request-id").unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok());
        assert_eq!(generated.problem(401)["request_id"], id);
    };

    health_and_readiness => |env: TestEnv| async move {
        let app = env.serve();
        assert_eq!(app.get("/healthz", &[]).status, 200);
        assert_eq!(app.get("/readyz", &[]).status, 200);
        app.get("/nowhere", &[]).problem(404);
    };

    metrics_are_exposed => |env: TestEnv| async move {
        let app = served_with_seed(&env);
        assert_eq!(app.get_as(&path(CONVERSATION), &token_for(BUSINESS)).status, 200);
        app.get(&path(CONVERSATION), &[]).problem(401);
        let metrics = app.get("/metrics", &[]);
        assert_eq!(metrics.status, 200);
        let text = String::from_utf8(metrics.body).unwrap();
        for expected in [
            "pingback_http_requests_total{route=\"conversation\",status=\"200\"} 1",
            "pingback_http_requests_total{route=\"conversation\",status=\"401\"} 1",
            "pingback_http_request_duration_seconds_count{route=\"conversation\"} 2",
            "pingback_db_pool_max_size",
        ] {
            assert!(text.contains(expected), "{expected} missing in\n{text}");
        }
    };

    oversized_heads_get_431 => |env: TestEnv| async move {
        let app = env.serve();
        let big = "x".repeat(40 * 1024);
        let reply = app.get("/healthz", &[("x-big", &big)]);
        assert_eq!(reply.status, 431);
        // Too many headers is refused at parse time, before any handler runs.
        let names: Vec<String> = (0..120).map(|i| format!("x-h{i}")).collect();
        let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
        assert_eq!(app.get("/healthz", &many).status, 431);
        let huge_token = format!("Bearer {}", "a".repeat(16 * 1024));
        let reply = app.get(&path(CONVERSATION), &[("authorization", &huge_token)]);
        reply.problem(401);
    };

    sigterm_exits_cleanly => |env: TestEnv| async move {
        let app = env.serve();
        assert_eq!(app.get("/healthz", &[]).status, 200);
        let (status, _logs) = app.terminate();
        assert!(status.success(), "exit status {status}");
    };
}

/// Not backend-specific: the server starts without a reachable database and answers
/// 503 (with Retry-After) instead of hanging or crashing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_503_not_a_hang() {
    let env = TestEnv::at_url("postgres://pingback@127.0.0.1:1/nowhere");
    let app = env.serve_with(&[
        ("PINGBACK__DATABASE__CONNECT_TIMEOUT_SECONDS", "1"),
        ("PINGBACK__DATABASE__POOL_WAIT_TIMEOUT_SECONDS", "1"),
    ]);
    let started = std::time::Instant::now();
    let reply = app.get_as(&path(CONVERSATION), &token_for(BUSINESS));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    reply.problem(503);
    assert!(reply.header("retry-after").is_some());
    app.get("/readyz", &[]).problem(503);
    // Authentication needs no database.
    app.get(&path(CONVERSATION), &[]).problem(401);
}

/// A client that never finishes its request head is disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let app = env.serve_with(&[("PINGBACK__SERVER__CLIENT_REQUEST_TIMEOUT_SECONDS", "1")]);
    let started = std::time::Instant::now();
    let answer = app.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{answer}"
    );
    assert!(!answer.contains("200 OK"));
    // Others are still served.
    assert_eq!(app.get("/healthz", &[]).status, 200);
}
