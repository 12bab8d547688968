//! Black-box tests of webhooks: registering endpoints (`/api/v1/webhooks`, scope
//! `webhooks:manage`), what registration refuses (non-https, non-public addresses, bad
//! event types, the 16-endpoint cap), and delivery to a real receiver — every event in
//! order at least once, signed as Standard Webhooks says (checked by the reference
//! Python library, `scripts/verify-webhooks.sh`), retried while the receiver fails,
//! disabled after `give_up_after_seconds` and resumed when enabled again, surviving a
//! kill -9, never two servers at once on one endpoint, refusing private addresses at
//! delivery time, filtered by event type. The real binary, real HTTP, PostgreSQL and
//! SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/receiver.rs"]
mod receiver;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};

use base64::Engine as _;
use receiver::{Behaviour, Outcome, Receiver, Request};
use serde_json::{Value, json};
use support::{
    App, Backend, CONVERSATIONS, Reply, TestEnv, create_conversation, str_of, text, token_for,
    token_with_scope, write_token_for,
};

const BUSINESS: &str = "b2c3d4e5-f6a7-4901-bcde-f12345678901";
const OTHER_BUSINESS: &str = "0d0e0f10-1112-4314-9516-171819202122";
const AGENT: &str = "a1b2c3d4-e5f6-4890-abcd-ef1234567890";
const MISSING: &str = "99999999-9999-4999-8999-999999999999";
const EVENTS: &str = "/api/v1/events";
const WEBHOOKS: &str = "/api/v1/webhooks";
const ALL_TYPES: [&str; 4] = [
    "conversation.created",
    "conversation.updated",
    "conversation.imported",
    "message.created",
];

const ALLOW_HTTP: &str = "PINGBACK__WEBHOOKS__ALLOW_HTTP";
const ALLOW_PRIVATE: &str = "PINGBACK__WEBHOOKS__ALLOW_PRIVATE_NETWORKS";
const RETRY_SCHEDULE: &str = "PINGBACK__WEBHOOKS__RETRY_SCHEDULE_SECONDS";
const GIVE_UP: &str = "PINGBACK__WEBHOOKS__GIVE_UP_AFTER_SECONDS";
const TIMEOUT: &str = "PINGBACK__WEBHOOKS__TIMEOUT_SECONDS";
const LEASE: &str = "PINGBACK__WEBHOOKS__LEASE_SECONDS";
const POLL: &str = "PINGBACK__WEBHOOKS__POLL_INTERVAL_MILLISECONDS";

/// What the delivery tests run with: the receiver is plain http on loopback, retries
/// come every second, due retries are looked for every 100 ms.
const FAST: [(&str, &str); 7] = [
    (ALLOW_HTTP, "true"),
    (ALLOW_PRIVATE, "true"),
    (RETRY_SCHEDULE, "1,1"),
    (TIMEOUT, "2"),
    (LEASE, "3"),
    (POLL, "100"),
    ("PINGBACK__LOG__LEVEL", "warn"),
];

/// `pingback serve` with `FAST`, then `overrides` (later wins).
fn serve(env: &TestEnv, overrides: &[(&str, &str)]) -> App {
    let mut all: Vec<(&str, &str)> = FAST.to_vec();
    all.extend_from_slice(overrides);
    env.serve_with(&all)
}

fn string_set(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(str_of)
        .collect()
}

fn set_of(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

// ---- the management API ----

fn manage(business: &str) -> String {
    token_with_scope(business, "webhooks:manage")
}

fn hook_path(id: &str) -> String {
    format!("{WEBHOOKS}/{id}")
}

fn post_hook(app: &App, business: &str, body: &Value) -> Reply {
    app.send_json("POST", WEBHOOKS, &manage(business), &[], body)
}

/// Registers an endpoint, insisting on 201: the answer (with its secret).
fn create_hook(app: &App, business: &str, url: &str, event_types: Option<&[&str]>) -> Value {
    let mut body = json!({ "url": url });
    if let Some(types) = event_types {
        body["event_types"] = json!(types);
    }
    let reply = post_hook(app, business, &body);
    assert_eq!(reply.status, 201, "POST {body}: {}", text(&reply));
    reply.json()
}

fn get_hook(app: &App, business: &str, id: &str) -> Value {
    let reply = app.get_as(&hook_path(id), &manage(business));
    assert_eq!(reply.status, 200, "GET {id}: {}", text(&reply));
    reply.json()
}

fn list_hooks(app: &App, business: &str) -> Reply {
    let reply = app.get_as(WEBHOOKS, &manage(business));
    assert_eq!(reply.status, 200, "GET {WEBHOOKS}: {}", text(&reply));
    reply
}

fn patch_hook(app: &App, business: &str, id: &str, body: &Value) -> Reply {
    app.send_json("PATCH", &hook_path(id), &manage(business), &[], body)
}

/// A PATCH that must succeed (200 with the endpoint, or 204): the endpoint as GET
/// shows it afterwards.
fn patched(app: &App, business: &str, id: &str, body: &Value) -> Value {
    let reply = patch_hook(app, business, id, body);
    assert!(
        reply.status == 200 || reply.status == 204,
        "PATCH {body}: {}",
        text(&reply)
    );
    let now = get_hook(app, business, id);
    if reply.status == 200 {
        let answered = reply.json();
        assert!(answered.get("secret").is_none(), "{answered}");
        for key in ["id", "url", "event_types", "enabled"] {
            assert_eq!(answered[key], now[key], "PATCH answer vs GET: {key}");
        }
    }
    now
}

fn delete_hook(app: &App, business: &str, id: &str) -> Reply {
    app.send(
        "DELETE",
        &hook_path(id),
        &[("authorization", &format!("Bearer {}", manage(business)))],
        b"",
    )
}

/// The endpoint's `delivered_through` (null counts as 0, for the waits).
fn delivered_through(hook: &Value) -> i64 {
    hook["delivered_through"].as_i64().unwrap_or(0)
}

/// Polls the endpoint until `done` holds, or panics after `timeout`.
fn wait_hook(
    app: &App,
    business: &str,
    id: &str,
    timeout: Duration,
    receiver: &Receiver,
    what: &str,
    mut done: impl FnMut(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let hook = get_hook(app, business, id);
        if done(&hook) {
            return hook;
        }
        assert!(
            started.elapsed() < timeout,
            "waited {timeout:?} for {what}; the endpoint: {hook}; {}",
            receiver.summary()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_delivered(
    app: &App,
    business: &str,
    id: &str,
    through: i64,
    timeout: Duration,
    receiver: &Receiver,
) -> Value {
    wait_hook(
        app,
        business,
        id,
        timeout,
        receiver,
        &format!("delivered_through = {through}"),
        |hook| {
            let now = delivered_through(hook);
            assert!(
                now <= through,
                "delivered_through {now} beyond the last event {through}: {hook}"
            );
            now == through
        },
    )
}

// ---- events ----

/// An agent message: one `message.created` event.
fn say(app: &App, business: &str, conversation: &str, content: &str) {
    let reply = app.send_json(
        "POST",
        &format!("{CONVERSATIONS}/{conversation}/messages"),
        &write_token_for(business),
        &[],
        &json!({"sender_type": "agent", "sender_id": AGENT, "content": content}),
    );
    assert_eq!(reply.status, 201, "{}", text(&reply));
}

fn patch_conversation(app: &App, business: &str, conversation: &str, body: &Value) {
    let reply = app.send_json(
        "PATCH",
        &format!("{CONVERSATIONS}/{conversation}"),
        &write_token_for(business),
        &[],
        body,
    );
    assert_eq!(reply.status, 200, "{}", text(&reply));
}

/// `conversations` new conversations (one event each), then `messages` agent messages
/// to each, posted concurrently (a thread per conversation, each through
/// `apps[i % apps.len()]`): `conversations × (1 + messages)` events.
fn produce(apps: &[&App], business: &str, conversations: usize, messages: usize) {
    let ids: Vec<String> = (0..conversations)
        .map(|i| str_of(&create_conversation(apps[i % apps.len()], business, false)["id"]))
        .collect();
    std::thread::scope(|scope| {
        for (i, id) in ids.iter().enumerate() {
            let app = apps[i % apps.len()];
            scope.spawn(move || {
                for n in 0..messages {
                    say(app, business, id, &format!("message {n}"));
                }
            });
        }
    });
}

/// Every event of `business`, from the feed.
fn all_events(app: &App, business: &str) -> Vec<Value> {
    let token = token_for(business);
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let reply = app.get_as(&format!("{EVENTS}?after={after}&limit=1000"), &token);
        assert_eq!(reply.status, 200, "{}", text(&reply));
        let body = reply.json();
        let page = body["data"].as_array().unwrap().clone();
        if page.is_empty() {
            return all;
        }
        after = body["next_after"].as_i64().unwrap();
        all.extend(page);
    }
}

fn last_id(events: &[Value]) -> i64 {
    events.last().map_or(0, |e| e["id"].as_i64().unwrap())
}

// ---- what the receiver got ----

/// The event id a delivery names in `webhook-id` (`<business>.<id>`), checked against
/// its body and the business.
fn delivery_id(request: &Request, business: &str) -> i64 {
    assert_eq!(request.method, "POST", "{request:?}");
    let webhook_id = request
        .header("webhook-id")
        .unwrap_or_else(|| panic!("no webhook-id: {request:?}"));
    let (owner, id) = webhook_id
        .split_once('.')
        .unwrap_or_else(|| panic!("webhook-id {webhook_id:?} is not <business_id>.<event id>"));
    assert_eq!(
        owner, business,
        "webhook-id {webhook_id:?} names another business"
    );
    let id: i64 = id
        .parse()
        .unwrap_or_else(|_| panic!("webhook-id {webhook_id:?}: the event id is not an integer"));
    let body = request.json();
    assert_eq!(
        body["id"], id,
        "webhook-id {webhook_id:?} vs the body's id: {body}"
    );
    id
}

/// Standard Webhooks headers: `webhook-timestamp` in Unix seconds (within a minute of
/// the arrival), `webhook-signature` one or more `v1,<base64 of 32 bytes>`, a JSON body.
fn check_headers(request: &Request) {
    let timestamp = request
        .header("webhook-timestamp")
        .unwrap_or_else(|| panic!("no webhook-timestamp: {request:?}"));
    assert!(
        !timestamp.is_empty() && timestamp.bytes().all(|b| b.is_ascii_digit()),
        "webhook-timestamp {timestamp:?} is not Unix seconds"
    );
    let timestamp: i64 = timestamp.parse().unwrap();
    let arrived = request
        .received_at
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (timestamp - arrived).abs() <= 60,
        "webhook-timestamp {timestamp} vs arrival at {arrived}"
    );
    let signature = request
        .header("webhook-signature")
        .unwrap_or_else(|| panic!("no webhook-signature: {request:?}"));
    for part in signature.split(' ') {
        let mac = part
            .strip_prefix("v1,")
            .unwrap_or_else(|| panic!("webhook-signature {signature:?}: not v1,<base64>"));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(mac)
            .unwrap_or_else(|e| panic!("webhook-signature {signature:?}: {e}"));
        assert_eq!(
            bytes.len(),
            32,
            "webhook-signature {signature:?}: not an HMAC-SHA256"
        );
    }
    let content_type = request.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "Content-Type {content_type:?}"
    );
}

/// Checks the requests an endpoint got (in arrival order) against the events it must
/// get (in event order):
/// - each is a POST of one of them, the event exactly as the feed shows it, with
///   `webhook-id` `<business>.<id>` and Standard Webhooks headers;
/// - an event is sent only once every event before it was acknowledged (2xx): in
///   order, never a gap, never ahead;
/// - `strict`: besides, the only repeat is a resend of the immediately previous
///   request's event (without a crash, a delivery never goes back further);
/// - every event was acknowledged.
fn check_deliveries(requests: &[Request], business: &str, expected: &[Value], strict: bool) {
    let position: BTreeMap<i64, usize> = expected
        .iter()
        .enumerate()
        .map(|(i, e)| (e["id"].as_i64().unwrap(), i))
        .collect();
    let mut acknowledgements: Vec<(u64, usize)> = Vec::new();
    let mut indices = Vec::with_capacity(requests.len());
    for request in requests {
        let id = delivery_id(request, business);
        let index = *position.get(&id).unwrap_or_else(|| {
            panic!(
                "event {id} was delivered but is not one this endpoint gets (expected {:?}…)",
                position.keys().take(20).collect::<Vec<_>>()
            )
        });
        assert_eq!(
            request.json(),
            expected[index],
            "event {id}: the body is not the feed's event"
        );
        check_headers(request);
        if let Some(at) = request.acknowledged_at() {
            acknowledgements.push((at, index));
        }
        indices.push(index);
    }
    acknowledgements.sort_unstable();
    let mut acknowledged = vec![false; expected.len()];
    let mut prefix = 0; // expected[..prefix] all acknowledged
    let mut next_ack = 0;
    let mut previous: Option<usize> = None;
    let show = |upto: usize| -> Vec<i64> {
        requests[..=upto]
            .iter()
            .rev()
            .take(12)
            .rev()
            .map(|r| delivery_id(r, business))
            .collect()
    };
    for (n, (request, &index)) in requests.iter().zip(&indices).enumerate() {
        while next_ack < acknowledgements.len() && acknowledgements[next_ack].0 < request.arrived {
            acknowledged[acknowledgements[next_ack].1] = true;
            next_ack += 1;
        }
        while prefix < expected.len() && acknowledged[prefix] {
            prefix += 1;
        }
        assert!(
            index <= prefix,
            "request {n} delivered event {} before event {} was acknowledged (out of order or a gap); the requests up to it: {:?}",
            expected[index]["id"],
            expected[prefix]["id"],
            show(n)
        );
        if strict {
            let allowed = match previous {
                None => index == 0,
                Some(p) => index == p || index == p + 1,
            };
            assert!(
                allowed,
                "request {n} delivered event {} after event {:?}: neither a resend of it nor the next; the requests up to it: {:?}",
                expected[index]["id"],
                previous.map(|p| expected[p]["id"].clone()),
                show(n)
            );
        }
        previous = Some(index);
    }
    for (_, index) in &acknowledgements[next_ack..] {
        acknowledged[*index] = true;
    }
    let missing: Vec<&Value> = expected
        .iter()
        .zip(&acknowledged)
        .filter(|(_, a)| !**a)
        .map(|(e, _)| &e["id"])
        .collect();
    assert!(
        missing.is_empty(),
        "never acknowledged: events {missing:?} (of {})",
        expected.len()
    );
}

/// The requests that reached `path`.
fn at_path(requests: &[Request], path: &str) -> Vec<Request> {
    requests
        .iter()
        .filter(|r| r.path() == path)
        .cloned()
        .collect()
}

// ---- the independent signature check ----

/// Runs `scripts/verify-webhooks.sh` (the Standard Webhooks reference library for
/// Python) on `deliveries`: (success, its output). Panics when the script cannot run.
fn verify_with_reference(deliveries: &[Value], secret: &str) -> (bool, String) {
    // One at a time: the first run installs the library.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deliveries.json");
    std::fs::write(&path, serde_json::to_vec(&json!(deliveries)).unwrap()).unwrap();
    let output = Command::new("bash")
        .arg(support::repo_root().join("scripts/verify-webhooks.sh"))
        .arg(&path)
        .arg(secret)
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/verify-webhooks.sh: {e}"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    match output.status.code() {
        Some(0) => (true, said),
        Some(1) if said.contains("fails verification") => (false, said),
        _ => panic!(
            "scripts/verify-webhooks.sh could not verify ({}): {said}",
            output.status
        ),
    }
}

fn as_delivery(request: &Request) -> Value {
    let headers: BTreeMap<String, String> = request
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("webhook-") || k == "content-type")
        .cloned()
        .collect();
    json!({ "headers": headers, "body": request.body_text() })
}

fn assert_insufficient_scope(reply: &Reply, what: &str) {
    let body = reply.problem(403);
    assert_eq!(body["type"], "/problems/forbidden", "{what}");
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"webhooks:manage\""),
        "{what}: WWW-Authenticate {challenge:?}"
    );
}

/// A 422 `/problems/validation` naming `pointer` (or a member under it).
fn assert_invalid(reply: &Reply, pointer: &str, what: &str) {
    assert_eq!(reply.status, 422, "{what}: {}", text(reply));
    let body = reply.problem(422);
    assert_eq!(body["type"], "/problems/validation", "{what}: {body}");
    let pointers: Vec<String> = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no errors array: {body}"))
        .iter()
        .map(|e| str_of(&e["pointer"]))
        .collect();
    assert!(
        pointers
            .iter()
            .any(|p| p == pointer || p.starts_with(&format!("{pointer}/"))),
        "{what}: expected an error at {pointer}, got {body}"
    );
}

on_both_backends! {
    endpoints_are_created_listed_changed_and_deleted => |env: TestEnv| async move {
        // https only, but loopback allowed: no request ever leaves the machine.
        let app = env.serve_with(&[(ALLOW_PRIVATE, "true")]);
        let empty = list_hooks(&app, BUSINESS);
        assert_eq!(empty.header("content-type"), Some("application/json"));
        assert_eq!(empty.json(), json!({"data": []}));

        let reply = post_hook(&app, BUSINESS, &json!({"url": "https://127.0.0.1:9/hooks/a"}));
        assert_eq!(reply.status, 201, "{}", text(&reply));
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let first = reply.json();
        for key in ["id", "url", "event_types", "enabled", "secret", "created_at"] {
            assert!(first.get(key).is_some(), "{key} missing in {first}");
        }
        let id = str_of(&first["id"]);
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().to_string(), id, "a lower-case hyphenated UUID");
        if let Some(location) = reply.header("location") {
            assert_eq!(location, hook_path(&id));
        }
        assert_eq!(first["url"], "https://127.0.0.1:9/hooks/a");
        assert_eq!(first["enabled"], true);
        assert_eq!(string_set(&first["event_types"]), set_of(&ALL_TYPES), "the default is every type");
        assert_eq!(first["event_types"].as_array().unwrap().len(), 4);
        assert!(str_of(&first["created_at"]).ends_with('Z'), "{first}");
        let secret = str_of(&first["secret"]);
        let key = secret
            .strip_prefix("whsec_")
            .unwrap_or_else(|| panic!("secret {secret:?} does not start with whsec_"));
        let key = base64::engine::general_purpose::STANDARD
            .decode(key)
            .unwrap_or_else(|e| panic!("secret {secret:?}: not base64 ({e})"));
        assert_eq!(key.len(), 32, "secret {secret:?}: not 32 bytes");

        let second = create_hook(
            &app,
            BUSINESS,
            "https://127.0.0.1:9/hooks/b",
            Some(&["message.created", "conversation.updated"]),
        );
        let second_id = str_of(&second["id"]);
        assert_ne!(second_id, id);
        assert_eq!(string_set(&second["event_types"]), set_of(&["message.created", "conversation.updated"]));
        assert_ne!(second["secret"], first["secret"], "each endpoint has a secret of its own");
        let secrets = [secret.clone(), str_of(&second["secret"])];

        // GET one: no secret, the delivery state of a new endpoint.
        let reply = app.get_as(&hook_path(&id), &manage(BUSINESS));
        assert_eq!(reply.status, 200, "{}", text(&reply));
        let shown = reply.json();
        assert!(shown.get("secret").is_none(), "GET shows the secret: {shown}");
        for secret in &secrets {
            assert!(!String::from_utf8_lossy(&reply.body).contains(&secret["whsec_".len()..]), "GET shows a secret");
        }
        for key in ["id", "url", "event_types", "enabled", "created_at"] {
            assert_eq!(shown[key], first[key], "{key}");
        }
        assert_eq!(shown["delivered_through"], 0, "a new endpoint of a business without events: {shown}");
        for key in ["last_attempt_at", "last_error", "next_attempt_at"] {
            assert!(shown.get(key).is_some_and(Value::is_null), "{key} in {shown}");
        }

        // The list: both, without secrets.
        let reply = list_hooks(&app, BUSINESS);
        let listed = reply.json();
        let data = listed["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{listed}");
        let listed_ids: BTreeSet<String> = data.iter().map(|h| str_of(&h["id"])).collect();
        assert_eq!(listed_ids, [id.clone(), second_id.clone()].into());
        for item in data {
            assert!(item.get("secret").is_none(), "the list shows a secret: {item}");
            for key in ["id", "url", "event_types", "enabled", "created_at", "delivered_through", "last_attempt_at", "last_error", "next_attempt_at"] {
                assert!(item.get(key).is_some(), "{key} missing in {item}");
            }
            if item["id"] == first["id"] {
                assert_eq!(item, &shown);
            }
        }
        for secret in &secrets {
            assert!(!String::from_utf8_lossy(&reply.body).contains(&secret["whsec_".len()..]), "the list shows a secret");
        }

        // Another business sees none of it, and cannot touch it.
        assert_eq!(list_hooks(&app, OTHER_BUSINESS).json(), json!({"data": []}));
        let foreign = app.get_as(&hook_path(&id), &manage(OTHER_BUSINESS));
        assert_eq!(foreign.problem(404)["type"], "/problems/not-found");
        let foreign = patch_hook(&app, OTHER_BUSINESS, &id, &json!({"enabled": false}));
        assert_eq!(foreign.problem(404)["type"], "/problems/not-found");
        let foreign = delete_hook(&app, OTHER_BUSINESS, &id);
        assert_eq!(foreign.problem(404)["type"], "/problems/not-found");
        assert_eq!(get_hook(&app, BUSINESS, &id), shown, "unchanged by the other business");
        for missing in [MISSING, "not-a-uuid"] {
            app.get_as(&hook_path(missing), &manage(BUSINESS)).problem(404);
            patch_hook(&app, BUSINESS, missing, &json!({"enabled": false})).problem(404);
            delete_hook(&app, BUSINESS, missing).problem(404);
        }

        // PATCH: each field alone, the others untouched.
        let now = patched(&app, BUSINESS, &id, &json!({"url": "https://127.0.0.1:9/hooks/a2"}));
        assert_eq!(now["url"], "https://127.0.0.1:9/hooks/a2");
        assert_eq!(string_set(&now["event_types"]), set_of(&ALL_TYPES));
        assert_eq!(now["enabled"], true);
        let now = patched(&app, BUSINESS, &id, &json!({"event_types": ["conversation.created"]}));
        assert_eq!(now["event_types"], json!(["conversation.created"]));
        assert_eq!(now["url"], "https://127.0.0.1:9/hooks/a2");
        let now = patched(&app, BUSINESS, &id, &json!({"enabled": false}));
        assert_eq!(now["enabled"], false);
        assert_eq!(now["event_types"], json!(["conversation.created"]));
        let now = patched(&app, BUSINESS, &id, &json!({"enabled": true, "event_types": ["message.created", "conversation.imported"]}));
        assert_eq!(now["enabled"], true);
        assert_eq!(string_set(&now["event_types"]), set_of(&["message.created", "conversation.imported"]));
        assert_eq!(now["id"], first["id"]);
        assert_eq!(now["created_at"], first["created_at"]);
        // Invalid patches change nothing.
        for (body, pointer) in [
            (json!({"url": "ftp://127.0.0.1/x"}), "/url"),
            (json!({"url": "not a url"}), "/url"),
            (json!({"url": "http://127.0.0.1:9/plain"}), "/url"),
            (json!({"event_types": []}), "/event_types"),
            (json!({"event_types": ["message.deleted"]}), "/event_types"),
            (json!({"enabled": "yes"}), "/enabled"),
        ] {
            assert_invalid(&patch_hook(&app, BUSINESS, &id, &body), pointer, &format!("PATCH {body}"));
        }
        assert_eq!(get_hook(&app, BUSINESS, &id), now, "invalid patches changed the endpoint");

        // DELETE: 204, then gone.
        let reply = delete_hook(&app, BUSINESS, &id);
        assert_eq!(reply.status, 204, "{}", text(&reply));
        assert!(reply.body.is_empty());
        app.get_as(&hook_path(&id), &manage(BUSINESS)).problem(404);
        delete_hook(&app, BUSINESS, &id).problem(404);
        patch_hook(&app, BUSINESS, &id, &json!({"enabled": true})).problem(404);
        let remaining = list_hooks(&app, BUSINESS).json();
        assert_eq!(remaining["data"].as_array().unwrap().len(), 1, "{remaining}");
        assert_eq!(remaining["data"][0]["id"], second["id"]);
    };

    registration_refuses_bad_urls_event_types_and_the_seventeenth_endpoint => |env: TestEnv| async move {
        let defaults = env.serve();
        let private_ok = env.serve_with(&[(ALLOW_PRIVATE, "true")]);
        // Non-public addresses, as literals and a name that resolves to loopback.
        for host in [
            "127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
            "0.0.0.0", "224.0.0.1", "[::1]", "[fc00::1]", "[fe80::1]", "[::ffff:127.0.0.1]",
            "localhost",
        ] {
            let url = format!("https://{host}/hook");
            assert_invalid(&post_hook(&defaults, BUSINESS, &json!({"url": url})), "/url", &url);
        }
        assert_invalid(&post_hook(&defaults, BUSINESS, &json!({"url": "https://127.0.0.2:8443/"})), "/url", "127.0.0.2");
        // Plain http is refused by itself (the address is allowed on this server)…
        for url in ["http://127.0.0.1:9/hook", "http://localhost:9/hook"] {
            assert_invalid(&post_hook(&private_ok, BUSINESS, &json!({"url": url})), "/url", url);
        }
        // … where https to the same address is fine: the refusals above are the rules'.
        let allowed = create_hook(&private_ok, BUSINESS, "https://127.0.0.1:9/hook", None);
        assert_eq!(delete_hook(&private_ok, BUSINESS, &str_of(&allowed["id"])).status, 204);
        let allowed = create_hook(&private_ok, BUSINESS, "https://localhost:9/hook", None);
        assert_eq!(delete_hook(&private_ok, BUSINESS, &str_of(&allowed["id"])).status, 204);

        // Malformed URLs.
        for url in [json!("not a url"), json!(""), json!("https://"), json!("ftp://127.0.0.1/hook"),
                    json!("//127.0.0.1/hook"), json!("https://exa mple.com/"), json!(42), json!(null)] {
            assert_invalid(&post_hook(&private_ok, BUSINESS, &json!({"url": url})), "/url", &format!("url {url}"));
        }
        assert_invalid(&post_hook(&private_ok, BUSINESS, &json!({"event_types": ["message.created"]})), "/url", "no url");
        // Event types.
        let url = "https://127.0.0.1:9/hook";
        for types in [json!(["message.deleted"]), json!([]), json!(["message.created", "nope"]),
                      json!(["Message.Created"]), json!("message.created"), json!([7])] {
            assert_invalid(
                &post_hook(&private_ok, BUSINESS, &json!({"url": url, "event_types": types})),
                "/event_types",
                &format!("event_types {types}"),
            );
        }
        // Clients never choose the secret (nor any other field).
        assert_invalid(&post_hook(&private_ok, BUSINESS, &json!({"url": url, "secret": "whsec_AAAA"})), "/secret", "a secret");
        assert_eq!(list_hooks(&private_ok, BUSINESS).json(), json!({"data": []}), "a refused registration created something");
        // Not JSON, or not declared as JSON.
        let auth = format!("Bearer {}", manage(BUSINESS));
        let reply = private_ok.send("POST", WEBHOOKS, &[("authorization", &auth), ("content-type", "application/json")], b"{");
        reply.problem(400);
        let reply = private_ok.send("POST", WEBHOOKS, &[("authorization", &auth), ("content-type", "text/plain")], br#"{"url": "https://127.0.0.1:9/"}"#);
        reply.problem(415);

        // 16 endpoints per business; the 17th is refused.
        let ids: Vec<String> = (0..16)
            .map(|i| str_of(&create_hook(&private_ok, BUSINESS, &format!("https://127.0.0.1:9/hooks/{i}"), None)["id"]))
            .collect();
        let refused = post_hook(&private_ok, BUSINESS, &json!({"url": "https://127.0.0.1:9/hooks/16"}));
        refused.problem(422);
        assert_eq!(list_hooks(&private_ok, BUSINESS).json()["data"].as_array().unwrap().len(), 16);
        // Per business: another one may still register.
        create_hook(&private_ok, OTHER_BUSINESS, "https://127.0.0.1:9/hooks/other", None);
        // A deleted one frees its place.
        assert_eq!(delete_hook(&private_ok, BUSINESS, &ids[3]).status, 204);
        create_hook(&private_ok, BUSINESS, "https://127.0.0.1:9/hooks/16", None);
        post_hook(&private_ok, BUSINESS, &json!({"url": "https://127.0.0.1:9/hooks/17"})).problem(422);

        // Scopes: the conversation scopes are not enough; no token is a 401.
        let without = token_with_scope(BUSINESS, "conversations:read conversations:write");
        let some = &ids[0];
        let body = json!({"url": "https://127.0.0.1:9/scoped"}).to_string();
        let auth = format!("Bearer {without}");
        for (method, path, body) in [
            ("POST", WEBHOOKS.to_owned(), body.as_bytes()),
            ("GET", WEBHOOKS.to_owned(), &b""[..]),
            ("GET", hook_path(some), &b""[..]),
            ("PATCH", hook_path(some), br#"{"enabled": false}"#),
            ("DELETE", hook_path(some), &b""[..]),
            ("GET", hook_path(MISSING), &b""[..]),
        ] {
            let mut headers = vec![("authorization", auth.as_str())];
            if !body.is_empty() {
                headers.push(("content-type", "application/json"));
            }
            assert_insufficient_scope(&private_ok.send(method, &path, &headers, body), &format!("{method} {path}"));
            let reply = private_ok.send(method, &path, &headers[1..], body);
            assert_eq!(reply.problem(401)["type"], "/problems/unauthorized", "{method} {path} without a token");
        }
        assert_insufficient_scope(&private_ok.get_as(WEBHOOKS, &token_for(BUSINESS)), "a token without scope claim");
        // Nothing changed by the refused requests.
        assert_eq!(get_hook(&private_ok, BUSINESS, some)["enabled"], true);
        assert_eq!(list_hooks(&private_ok, BUSINESS).json()["data"].as_array().unwrap().len(), 16);
    };

    deliveries_verify_with_the_standard_webhooks_reference_library => |env: TestEnv| async move {
        let receiver = Receiver::start();
        receiver.set(Behaviour::Status(500));
        let app = serve(&env, &[]);
        let hook = create_hook(&app, BUSINESS, &receiver.url("/hook"), None);
        let (id, secret) = (str_of(&hook["id"]), str_of(&hook["secret"]));
        let conversation = str_of(&create_conversation(&app, BUSINESS, true)["id"]); // 1, 2
        // Event 1 fails twice (retried with the same webhook-id), then is accepted.
        assert!(receiver.wait_for(Duration::from_secs(10), |r| r.len() >= 2), "no retry: {}", receiver.summary());
        receiver.set(Behaviour::Status(204));
        say(&app, BUSINESS, &conversation, "signed"); // 3
        patch_conversation(&app, BUSINESS, &conversation, &json!({"status": "pending"})); // 4
        let events = all_events(&app, BUSINESS);
        assert_eq!(events.len(), 4);
        wait_delivered(&app, BUSINESS, &id, 4, Duration::from_secs(15), &receiver);
        let requests = receiver.requests();
        check_deliveries(&requests, BUSINESS, &events, true);
        let first: Vec<&Request> = requests.iter().filter(|r| r.header("webhook-id") == Some(&format!("{BUSINESS}.1"))).collect();
        assert!(first.len() >= 3, "event 1 was not retried: {}", receiver.summary());
        assert!(
            first[..first.len() - 1].iter().all(|r| matches!(r.outcome, Outcome::Answered { status: 500, .. })),
            "{first:?}"
        );

        // Every attempt, failed ones included, verifies with the reference library.
        let deliveries: Vec<Value> = requests.iter().map(as_delivery).collect();
        let (ok, said) = verify_with_reference(&deliveries, &secret);
        assert!(ok, "the reference library refuses our signatures: {said}");
        // The check can fail: a changed body, another secret, another webhook-id.
        let mut tampered = deliveries.clone();
        let body = str_of(&tampered[2]["body"]);
        tampered[2]["body"] = json!(body.replacen("\"id\"", " \"id\"", 1));
        assert_ne!(tampered[2]["body"], deliveries[2]["body"]);
        let (ok, said) = verify_with_reference(&tampered, &secret);
        assert!(!ok && said.contains("delivery 2"), "a tampered body verified: {said}");
        let other_secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode([7u8; 32]));
        let (ok, said) = verify_with_reference(&deliveries, &other_secret);
        assert!(!ok && said.contains("delivery 0"), "another secret verified: {said}");
        let mut moved = deliveries.clone();
        let last = moved.len() - 1;
        moved[last]["headers"]["webhook-id"] = json!(format!("{BUSINESS}.3"));
        let (ok, said) = verify_with_reference(&moved, &secret);
        assert!(!ok && said.contains(&format!("delivery {last}")), "another webhook-id verified: {said}");
    };

    a_thousand_events_arrive_in_order_each_as_the_feed_shows_it => |env: TestEnv| async move {
        let receiver = Receiver::start();
        let app = serve(&env, &[]);
        let hook = create_hook(&app, BUSINESS, &receiver.url("/hook?from=pingback"), None);
        let id = str_of(&hook["id"]);
        produce(&[&app], BUSINESS, 4, 249);
        let events = all_events(&app, BUSINESS);
        assert_eq!(events.len(), 1000);
        let last = last_id(&events);
        assert_eq!(last, 1000);
        let done = wait_delivered(&app, BUSINESS, &id, last, Duration::from_secs(90), &receiver);
        let requests = receiver.requests();
        for request in &requests {
            assert_eq!(request.target, "/hook?from=pingback", "posted to the registered URL");
        }
        check_deliveries(&requests, BUSINESS, &events, true);
        assert!(done["last_error"].is_null(), "{done}");
        assert!(done["next_attempt_at"].is_null(), "{done}");
        assert!(done["last_attempt_at"].is_string(), "{done}");
        assert_eq!(done["enabled"], true);
    };

    a_failing_receiver_gets_everything_in_order_once_it_recovers => |env: TestEnv| async move {
        let receiver = Receiver::start();
        receiver.set(Behaviour::Status(500));
        let app = serve(&env, &[(TIMEOUT, "1")]);
        let hook = create_hook(&app, BUSINESS, &receiver.url("/hook"), None);
        let id = str_of(&hook["id"]);
        produce(&[&app], BUSINESS, 1, 4); // 1..=5
        // 500s: retried, and the endpoint says so.
        assert!(receiver.wait_for(Duration::from_secs(10), |r| r.len() >= 3), "no retries: {}", receiver.summary());
        let failing = wait_hook(&app, BUSINESS, &id, Duration::from_secs(10), &receiver, "the failure to show", |h| {
            h["last_error"].as_str().is_some_and(|e| !e.is_empty()) && h["next_attempt_at"].is_string()
        });
        assert!(failing["last_attempt_at"].is_string(), "{failing}");
        assert_eq!(delivered_through(&failing), 0, "{failing}");
        assert_eq!(failing["enabled"], true);
        // Timeouts: a 200 after 3 s comes too late (the sender gave up after 1 s, and
        // hung up); retried.
        let before = receiver.count();
        receiver.set(Behaviour::Slow(200, Duration::from_secs(3)));
        assert!(
            receiver.wait_for(Duration::from_secs(12), |r| r.len() >= before + 2 && r[before].outcome != Outcome::Pending),
            "no retry after a timeout: {}", receiver.summary()
        );
        let late = &receiver.requests()[before];
        assert_eq!(late.outcome, Outcome::Unanswered, "the sender waited 3 s for an answer, past its 1 s timeout: {late:?}");
        let timing_out = get_hook(&app, BUSINESS, &id);
        assert_eq!(delivered_through(&timing_out), 0, "a request held past the timeout counted as delivered: {timing_out}");
        assert!(timing_out["last_error"].is_string(), "{timing_out}");
        // Connection refused: still attempted, still failing.
        receiver.stop();
        let attempted = str_of(&get_hook(&app, BUSINESS, &id)["last_attempt_at"]);
        wait_hook(&app, BUSINESS, &id, Duration::from_secs(10), &receiver, "an attempt while refused", |h| {
            h["last_attempt_at"].as_str().is_some_and(|a| a != attempted)
        });
        let conversation = str_of(&create_conversation(&app, BUSINESS, false)["id"]); // 6
        say(&app, BUSINESS, &conversation, "while down"); // 7
        let refused = wait_hook(&app, BUSINESS, &id, Duration::from_secs(5), &receiver, "the failure to show", |h| {
            h["last_error"].is_string() && h["next_attempt_at"].is_string()
        });
        assert_eq!(delivered_through(&refused), 0, "{refused}");
        // Recovery: everything, in order; the failure is cleared.
        receiver.set(Behaviour::Status(200));
        receiver.restart();
        let events = all_events(&app, BUSINESS);
        assert_eq!(last_id(&events), 7);
        let recovered = wait_delivered(&app, BUSINESS, &id, 7, Duration::from_secs(20), &receiver);
        check_deliveries(&receiver.requests(), BUSINESS, &events, true);
        assert!(recovered["last_error"].is_null(), "the error outlived the recovery: {recovered}");
        assert!(recovered["next_attempt_at"].is_null(), "a retry is still planned: {recovered}");
        assert_eq!(recovered["enabled"], true);
    };

    an_endpoint_failing_too_long_is_disabled_and_resumes_where_it_stopped => |env: TestEnv| async move {
        let receiver = Receiver::start();
        let app = serve(&env, &[(GIVE_UP, "2")]);
        let hook = create_hook(&app, BUSINESS, &receiver.url("/hook"), None);
        let id = str_of(&hook["id"]);
        let conversation = str_of(&create_conversation(&app, BUSINESS, true)["id"]); // 1, 2
        wait_delivered(&app, BUSINESS, &id, 2, Duration::from_secs(10), &receiver);
        receiver.set(Behaviour::Status(500));
        for n in 3..=5 {
            say(&app, BUSINESS, &conversation, &format!("failing {n}"));
        }
        let disabled = wait_hook(&app, BUSINESS, &id, Duration::from_secs(15), &receiver, "the endpoint to be disabled", |h| {
            h["enabled"] == false
        });
        assert!(disabled["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{disabled}");
        assert_eq!(delivered_through(&disabled), 2, "{disabled}");
        // Events keep being written; a disabled endpoint is not sent anything.
        for n in 6..=8 {
            say(&app, BUSINESS, &conversation, &format!("while disabled {n}"));
        }
        let sent = receiver.count();
        std::thread::sleep(Duration::from_millis(2500));
        assert_eq!(receiver.count(), sent, "a disabled endpoint got requests: {}", receiver.summary());
        let still = get_hook(&app, BUSINESS, &id);
        assert_eq!(still["enabled"], false, "{still}");
        assert_eq!(delivered_through(&still), 2, "{still}");
        // Enabled again (the receiver works now): from the first unacknowledged event.
        receiver.set(Behaviour::Status(200));
        let enabled = patched(&app, BUSINESS, &id, &json!({"enabled": true}));
        assert_eq!(enabled["enabled"], true);
        let events = all_events(&app, BUSINESS);
        assert_eq!(last_id(&events), 8);
        let done = wait_delivered(&app, BUSINESS, &id, 8, Duration::from_secs(15), &receiver);
        let requests = receiver.requests();
        check_deliveries(&requests, BUSINESS, &events, true);
        let resumed = delivery_id(&requests[sent], BUSINESS);
        assert_eq!(resumed, 3, "enabled again, it resumed with event {resumed}, not the first unacknowledged one (3)");
        assert!(done["last_error"].is_null(), "{done}");
        assert_eq!(done["enabled"], true, "{done}");
    };

    a_server_killed_mid_delivery_loses_nothing_after_a_restart => |env: TestEnv| async move {
        let receiver = Receiver::start();
        // Refused while the events are written, so that the kill is mid-delivery.
        receiver.set(Behaviour::Status(503));
        let settings = [(LEASE, "2"), (TIMEOUT, "1")];
        let app = serve(&env, &settings);
        let hook = create_hook(&app, BUSINESS, &receiver.url("/hook"), None);
        let id = str_of(&hook["id"]);
        produce(&[&app], BUSINESS, 3, 99); // 300
        let events = all_events(&app, BUSINESS);
        assert_eq!(events.len(), 300);
        receiver.set(Behaviour::Slow(200, Duration::from_millis(5)));
        assert!(
            receiver.wait_for(Duration::from_secs(20), |r| r.iter().filter(|r| r.acknowledged()).count() >= 60),
            "delivery did not start: {}", receiver.summary()
        );
        let status = Command::new("kill").args(["-KILL", &app.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        drop(app);
        let at_kill = receiver.acknowledged();
        assert!(at_kill < 300, "everything was delivered before the kill: the test proves nothing");
        let app = serve(&env, &settings);
        wait_delivered(&app, BUSINESS, &id, 300, Duration::from_secs(60), &receiver);
        let requests = receiver.requests();
        check_deliveries(&requests, BUSINESS, &events, false);
        // Both processes signed with the endpoint's one secret.
        let (ok, said) = verify_with_reference(&requests.iter().map(as_delivery).collect::<Vec<_>>(), &str_of(&hook["secret"]));
        assert!(ok, "{said}");
        let done = get_hook(&app, BUSINESS, &id);
        assert!(done["last_error"].is_null(), "{done}");
    };

    delivery_refuses_a_private_address_when_the_server_does_not_allow_it => |env: TestEnv| async move {
        let receiver = Receiver::start();
        let lenient = serve(&env, &[]);
        let hook = create_hook(&lenient, BUSINESS, &receiver.localhost_url("/hook"), None);
        let id = str_of(&hook["id"]);
        let (status, logs) = lenient.terminate();
        assert!(status.success(), "SIGTERM: {status}: {logs}");
        // The same endpoint, now on a server that allows http but not private networks.
        let strict = serve(&env, &[(ALLOW_PRIVATE, "false")]);
        create_conversation(&strict, BUSINESS, false); // 1
        let refused = wait_hook(&strict, BUSINESS, &id, Duration::from_secs(10), &receiver, "the refusal to show", |h| {
            h["last_error"].as_str().is_some_and(|e| !e.is_empty())
        });
        // Long enough for retries (every second).
        std::thread::sleep(Duration::from_millis(2500));
        assert_eq!(receiver.count(), 0, "a request reached a private address (last_error {}): {}", refused["last_error"], receiver.summary());
        let refused = get_hook(&strict, BUSINESS, &id);
        assert_eq!(delivered_through(&refused), 0, "{refused}");
        assert!(refused["last_error"].is_string(), "{refused}");
        let (status, logs) = strict.terminate();
        assert!(status.success(), "SIGTERM: {status}: {logs}");
        // Allowed again, the same endpoint gets the event: the refusal was the rule's.
        // (Whether a refused address disables the endpoint is not specified: if it did,
        // enabling it again is what an operator would do.)
        let lenient = serve(&env, &[]);
        if get_hook(&lenient, BUSINESS, &id)["enabled"] == false {
            patched(&lenient, BUSINESS, &id, &json!({"enabled": true}));
        }
        wait_delivered(&lenient, BUSINESS, &id, 1, Duration::from_secs(15), &receiver);
        check_deliveries(&receiver.requests(), BUSINESS, &all_events(&lenient, BUSINESS), true);
    };

    an_endpoint_gets_only_its_event_types_and_its_business_events => |env: TestEnv| async move {
        let receiver = Receiver::start();
        let app = serve(&env, &[]);
        let messages_only = create_hook(&app, BUSINESS, &receiver.url("/messages"), Some(&["message.created"]));
        let everything = create_hook(&app, BUSINESS, &receiver.url("/all"), None);
        let others = create_hook(&app, OTHER_BUSINESS, &receiver.url("/other"), None);
        let (messages_only, everything, others) =
            (str_of(&messages_only["id"]), str_of(&everything["id"]), str_of(&others["id"]));

        let conversation = str_of(&create_conversation(&app, BUSINESS, true)["id"]); // 1 created, 2 message
        create_conversation(&app, OTHER_BUSINESS, true); // the other business: 1, 2
        say(&app, BUSINESS, &conversation, "three"); // 3 message
        patch_conversation(&app, BUSINESS, &conversation, &json!({"status": "pending"})); // 4 updated
        patch_conversation(&app, BUSINESS, &conversation, &json!({"assignee_id": AGENT})); // 5 updated
        let events = all_events(&app, BUSINESS);
        assert_eq!(last_id(&events), 5);
        let other_events = all_events(&app, OTHER_BUSINESS);
        assert_eq!(last_id(&other_events), 2);

        // delivered_through passes the events the filter leaves out.
        wait_delivered(&app, BUSINESS, &messages_only, 5, Duration::from_secs(15), &receiver);
        wait_delivered(&app, BUSINESS, &everything, 5, Duration::from_secs(15), &receiver);
        wait_delivered(&app, OTHER_BUSINESS, &others, 2, Duration::from_secs(15), &receiver);
        let requests = receiver.requests();
        let message_events: Vec<Value> =
            events.iter().filter(|e| e["type"] == "message.created").cloned().collect();
        assert_eq!(message_events.len(), 2);
        check_deliveries(&at_path(&requests, "/messages"), BUSINESS, &message_events, true);
        check_deliveries(&at_path(&requests, "/all"), BUSINESS, &events, true);
        check_deliveries(&at_path(&requests, "/other"), OTHER_BUSINESS, &other_events, true);
        assert_eq!(
            requests.len(),
            at_path(&requests, "/messages").len() + at_path(&requests, "/all").len() + at_path(&requests, "/other").len()
        );

        // A deleted endpoint gets nothing more.
        assert_eq!(delete_hook(&app, BUSINESS, &everything).status, 204);
        say(&app, BUSINESS, &conversation, "six"); // 6
        wait_delivered(&app, BUSINESS, &messages_only, 6, Duration::from_secs(15), &receiver);
        // A changed URL: what follows goes there.
        patched(&app, BUSINESS, &messages_only, &json!({"url": receiver.url("/moved")}));
        say(&app, BUSINESS, &conversation, "seven"); // 7
        wait_delivered(&app, BUSINESS, &messages_only, 7, Duration::from_secs(15), &receiver);
        // Disabled by hand: nothing is sent until it is enabled again.
        patched(&app, BUSINESS, &messages_only, &json!({"enabled": false}));
        say(&app, BUSINESS, &conversation, "eight"); // 8
        std::thread::sleep(Duration::from_millis(1500));
        let paused = get_hook(&app, BUSINESS, &messages_only);
        assert_eq!(delivered_through(&paused), 7, "{paused}");
        assert!(
            receiver.requests().iter().all(|r| r.header("webhook-id") != Some(&format!("{BUSINESS}.8"))),
            "a disabled endpoint was sent event 8: {}", receiver.summary()
        );
        patched(&app, BUSINESS, &messages_only, &json!({"enabled": true}));
        wait_delivered(&app, BUSINESS, &messages_only, 8, Duration::from_secs(15), &receiver);
        // Events an import writes (another process) are delivered too.
        let imports = str_of(&create_hook(&app, BUSINESS, &receiver.url("/imports"), Some(&["conversation.imported"]))["id"]);
        env.import(&imported_conversation());  // 9
        wait_delivered(&app, BUSINESS, &imports, 9, Duration::from_secs(15), &receiver);
        wait_delivered(&app, BUSINESS, &messages_only, 9, Duration::from_secs(15), &receiver);

        let events_now = all_events(&app, BUSINESS);
        assert_eq!(last_id(&events_now), 9);
        assert_eq!(events_now[8]["type"], "conversation.imported");
        let requests = receiver.requests();
        let message_events: Vec<Value> =
            events_now.iter().filter(|e| e["type"] == "message.created").cloned().collect();
        let (before, after) = (at_path(&requests, "/messages"), at_path(&requests, "/moved"));
        let ids_of = |requests: &[Request]| -> BTreeSet<i64> { requests.iter().map(|r| delivery_id(r, BUSINESS)).collect() };
        assert_eq!(ids_of(&before), [2, 3, 6].into(), "before the URL changed");
        assert_eq!(ids_of(&after), [7, 8].into(), "after the URL changed");
        check_deliveries(&[before, after].concat(), BUSINESS, &message_events, true);
        check_deliveries(&at_path(&requests, "/all"), BUSINESS, &events, true);
        check_deliveries(&at_path(&requests, "/imports"), BUSINESS, &events_now[8..], true);
        check_deliveries(&at_path(&requests, "/other"), OTHER_BUSINESS, &other_events, true);
    };

    a_redirect_is_a_failure_and_is_not_followed => |env: TestEnv| async move {
        let receiver = Receiver::start();
        receiver.set(Behaviour::Redirect(307, "/elsewhere"));
        let app = serve(&env, &[]);
        let id = str_of(&create_hook(&app, BUSINESS, &receiver.url("/hook"), None)["id"]);
        create_conversation(&app, BUSINESS, false); // 1
        assert!(receiver.wait_for(Duration::from_secs(10), |r| r.len() >= 2), "not retried after a redirect: {}", receiver.summary());
        let failing = wait_hook(&app, BUSINESS, &id, Duration::from_secs(10), &receiver, "the failure to show", |h| {
            h["last_error"].as_str().is_some_and(|e| !e.is_empty())
        });
        assert_eq!(delivered_through(&failing), 0, "a redirect counted as delivered: {failing}");
        receiver.set(Behaviour::Status(200));
        wait_delivered(&app, BUSINESS, &id, 1, Duration::from_secs(10), &receiver);
        let requests = receiver.requests();
        assert!(at_path(&requests, "/elsewhere").is_empty(), "the redirect was followed: {}", receiver.summary());
        check_deliveries(&requests, BUSINESS, &all_events(&app, BUSINESS), true);
    };
}

/// A conversation of `BUSINESS` to import (one `conversation.imported` event).
fn imported_conversation() -> Value {
    let id = "10000000-0000-4000-8000-000000000001";
    json!({
        "id": id, "business_id": BUSINESS, "customer_id": null, "assignee_id": null,
        "status": "open", "channel_type": "email", "channel_id": null,
        "created_at": "2024-03-01T09:00:00Z", "updated_at": "2024-03-01T09:00:00Z",
        "first_response_at": null, "customer": null,
        "messages": [{
            "id": "20000000-0000-4000-8000-000000000001", "conversation_id": id,
            "sender_type": "customer", "sender_id": null, "content": "imported",
            "attachments": [], "created_at": "2024-03-01T09:00:00Z"
        }]
    })
}

/// Two servers on one PostgreSQL database never deliver one endpoint at the same time,
/// and together deliver every event in order (PostgreSQL only: SQLite is one process's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_never_deliver_one_endpoint_at_once() {
    let env = TestEnv::new(Backend::Postgres).await;
    let receiver = Receiver::start();
    receiver.set(Behaviour::Slow(200, Duration::from_millis(10)));
    let settings = [(LEASE, "2"), (TIMEOUT, "1")];
    let first = serve(&env, &settings);
    let second = serve(&env, &settings);
    let hook = create_hook(&first, BUSINESS, &receiver.url("/hook"), None);
    let id = str_of(&hook["id"]);
    // Written through both (both hear of the events).
    produce(&[&first, &second], BUSINESS, 2, 99); // 200
    let events = all_events(&second, BUSINESS);
    assert_eq!(events.len(), 200);
    wait_delivered(
        &second,
        BUSINESS,
        &id,
        200,
        Duration::from_secs(60),
        &receiver,
    );
    assert_eq!(
        receiver.max_in_flight(),
        1,
        "two requests to one endpoint at once: {}",
        receiver.summary()
    );
    let requests = receiver.requests();
    check_deliveries(&requests, BUSINESS, &events, true);
    assert_eq!(get_hook(&first, BUSINESS, &id)["delivered_through"], 200);
    let deliveries: Vec<Value> = requests.iter().map(as_delivery).collect();
    let (ok, said) = verify_with_reference(&deliveries, &str_of(&hook["secret"]));
    assert!(ok, "{said}");
}

// ---- the test tools themselves (no server needed) ----

/// Sends raw `request` on `stream` and reads one answer head (up to the empty line).
fn exchange(stream: &mut std::net::TcpStream, request: &str) -> std::io::Result<String> {
    use std::io::{Read as _, Write as _};
    stream.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::Error::other("closed"));
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    // A body (the receiver's refusals have one).
    if let Some(length) = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-length: ")
            .map(str::to_owned)
    }) {
        let mut body = vec![0; length.trim().parse().unwrap()];
        stream.read_exact(&mut body)?;
    }
    Ok(head)
}

/// The receiver records what it gets, switches behaviour, refuses when stopped, comes
/// back on its port, counts concurrent requests; the order check fails when it must.
#[test]
fn the_receiver_and_the_order_check_work() {
    use std::net::TcpStream;
    let receiver = Receiver::start();
    let address = ("127.0.0.1", receiver.port());
    // Keep-alive: two requests on one connection, Content-Length then chunked.
    let mut stream = TcpStream::connect(address).unwrap();
    let head = exchange(&mut stream, "POST /a?x=1 HTTP/1.1\r\nHost: h\r\nWebhook-Id: b.1\r\nContent-Length: 9\r\n\r\n{\"id\": 1}").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    receiver.set(Behaviour::Status(500));
    let head = exchange(&mut stream, "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"id\r\n5\r\n\": 2}\r\n0\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 500 "), "{head}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        (requests[0].target.as_str(), requests[0].path()),
        ("/a?x=1", "/a")
    );
    assert_eq!(requests[0].header("webhook-id"), Some("b.1"));
    assert_eq!(requests[0].json(), json!({"id": 1}));
    assert!(requests[0].acknowledged());
    assert_eq!(requests[1].json(), json!({"id": 2}));
    assert!(!requests[1].acknowledged());
    assert!(requests[0].acknowledged_at().unwrap() < requests[1].arrived);
    // Concurrency is counted.
    receiver.set(Behaviour::Slow(204, Duration::from_millis(300)));
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut stream = TcpStream::connect(address).unwrap();
                let head = exchange(
                    &mut stream,
                    "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
                )
                .unwrap();
                assert!(head.starts_with("HTTP/1.1 204 "), "{head}");
            });
        }
    });
    assert_eq!(receiver.max_in_flight(), 2);
    // Held requests are never answered.
    receiver.set(Behaviour::Hang(Duration::from_millis(300)));
    let mut held = TcpStream::connect(address).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(exchange(&mut held, "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}").is_err());
    assert_eq!(
        receiver.requests().last().unwrap().outcome,
        Outcome::Unanswered
    );
    // Stopped: refused, open connections cut; restarted on the same port.
    receiver.set(Behaviour::Status(200));
    receiver.stop();
    assert!(
        TcpStream::connect(address).is_err(),
        "still listening after stop"
    );
    assert!(
        exchange(
            &mut stream,
            "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
        )
        .is_err()
    );
    receiver.restart();
    let mut stream = TcpStream::connect(address).unwrap();
    assert!(
        exchange(
            &mut stream,
            "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
        )
        .unwrap()
        .starts_with("HTTP/1.1 200 ")
    );
    assert_eq!(receiver.count(), 6);

    // The order check, on made-up deliveries.
    let events: Vec<Value> = (1..=3)
        .map(|id| json!({"id": id, "type": "message.created"}))
        .collect();
    let mut clock = 0;
    let mut delivery = |id: i64, status: Option<u16>| {
        clock += 2;
        let mac = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
        Request {
            arrived: clock,
            received_at: std::time::SystemTime::now(),
            method: "POST".into(),
            target: "/".into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("webhook-id".into(), format!("{BUSINESS}.{id}")),
                ("webhook-timestamp".into(), support::now().to_string()),
                ("webhook-signature".into(), format!("v1,{mac}")),
            ],
            body: json!({"id": id, "type": "message.created"})
                .to_string()
                .into_bytes(),
            outcome: status.map_or(Outcome::Unanswered, |status| Outcome::Answered {
                status,
                at: clock + 1,
            }),
        }
    };
    let ok = |id| (id, Some(200));
    type Case = (&'static str, Vec<(i64, Option<u16>)>, bool, bool);
    let cases: Vec<Case> = vec![
        // (what, deliveries, strict, passes)
        ("in order", vec![ok(1), ok(2), ok(3)], true, true),
        (
            "retried",
            vec![(1, Some(500)), (1, None), ok(1), ok(2), ok(2), ok(3)],
            true,
            true,
        ),
        ("swapped", vec![ok(2), ok(1), ok(3)], false, false),
        ("a gap", vec![ok(1), ok(3)], false, false),
        (
            "sent before the previous was acknowledged",
            vec![(1, Some(500)), ok(2), ok(1), ok(3)],
            false,
            false,
        ),
        ("one missing at the end", vec![ok(1), ok(2)], false, false),
        (
            "the last one failed",
            vec![ok(1), ok(2), (3, Some(500))],
            false,
            false,
        ),
        (
            "back to an older one",
            vec![ok(1), ok(2), ok(1), ok(2), ok(3)],
            true,
            false,
        ),
        (
            "back to an older one, after a crash",
            vec![ok(1), ok(2), ok(1), ok(2), ok(3)],
            false,
            true,
        ),
    ];
    for (what, sequence, strict, passes) in cases {
        let requests: Vec<Request> = sequence
            .into_iter()
            .map(|(id, status)| delivery(id, status))
            .collect();
        let outcome =
            std::panic::catch_unwind(|| check_deliveries(&requests, BUSINESS, &events, strict));
        assert_eq!(outcome.is_ok(), passes, "{what}");
    }
    let mut wrong_body = delivery(1, Some(200));
    wrong_body.body = json!({"id": 1, "type": "conversation.created"})
        .to_string()
        .into_bytes();
    assert!(
        std::panic::catch_unwind(|| check_deliveries(&[wrong_body], BUSINESS, &events[..1], true))
            .is_err()
    );
    let mut wrong_business = delivery(1, Some(200));
    wrong_business.headers[1].1 = format!("{OTHER_BUSINESS}.1");
    assert!(
        std::panic::catch_unwind(|| check_deliveries(
            &[wrong_business],
            BUSINESS,
            &events[..1],
            true
        ))
        .is_err()
    );
}
