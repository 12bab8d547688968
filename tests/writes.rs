//! Black-box tests of the write side: creating conversations, posting messages,
//! patching, scopes, idempotency keys, concurrency and crash safety — the real binary,
//! real HTTP, PostgreSQL and SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{
    App, Backend, CONVERSATIONS, Reply, TestEnv, str_of, text, token_for, token_with_scope,
    write_token_for,
};

const BUSINESS: &str = "b2c3d4e5-f6a7-4901-bcde-f12345678901";
const OTHER_BUSINESS: &str = "0d0e0f10-1112-4314-9516-171819202122";
const AGENT: &str = "a1b2c3d4-e5f6-4890-abcd-ef1234567890";
const OTHER_AGENT: &str = "a1b2c3d4-e5f6-4890-abcd-ef1234567891";
const MISSING: &str = "99999999-9999-4999-8999-999999999999";

fn conversation(id: &str) -> String {
    format!("{CONVERSATIONS}/{id}")
}

fn messages(id: &str) -> String {
    format!("{CONVERSATIONS}/{id}/messages")
}

fn message(id: &str, mid: &str) -> String {
    format!("{CONVERSATIONS}/{id}/messages/{mid}")
}

fn etag(reply: &Reply) -> String {
    reply
        .header("etag")
        .unwrap_or_else(|| panic!("no ETag: {}", text(reply)))
        .to_owned()
}

fn post(app: &App, token: &str, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
    app.send_json("POST", path, token, headers, body)
}

fn patch(app: &App, token: &str, id: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
    app.send_json("PATCH", &conversation(id), token, headers, body)
}

/// Creates a conversation of `BUSINESS`, insisting on 201.
fn create(app: &App, body: &Value) -> Value {
    let reply = post(app, &write_token_for(BUSINESS), CONVERSATIONS, body, &[]);
    assert_eq!(reply.status, 201, "{}", text(&reply));
    reply.json()
}

/// A conversation of `BUSINESS` with a customer and no message; returns its id.
fn new_conversation(app: &App, status: &str) -> (String, Value) {
    let created = create(
        app,
        &json!({
            "channel_type": "widget",
            "status": status,
            "customer": {"name": "Alex", "email": "alex@example.com", "phone": null, "external_id": null},
        }),
    );
    (str_of(&created["id"]), created)
}

/// Posts a message to a conversation of `BUSINESS`, insisting on 201.
fn add_message(app: &App, id: &str, body: &Value) -> Value {
    let reply = post(app, &write_token_for(BUSINESS), &messages(id), body, &[]);
    assert_eq!(reply.status, 201, "{}", text(&reply));
    reply.json()
}

fn read(app: &App, id: &str) -> Reply {
    let reply = app.get_as(&conversation(id), &write_token_for(BUSINESS));
    assert_eq!(reply.status, 200, "{}", text(&reply));
    reply
}

fn customer_says(content: &str) -> Value {
    json!({"sender_type": "customer", "sender_id": null, "content": content})
}

fn agent_says(content: &str) -> Value {
    json!({"sender_type": "agent", "sender_id": AGENT, "content": content})
}

/// An RFC 3339 UTC timestamp as a key that sorts like the instant it names.
fn instant(value: &Value) -> String {
    let ts = str_of(value);
    let body = ts
        .strip_suffix('Z')
        .unwrap_or_else(|| panic!("not UTC: {ts}"));
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    assert_eq!(whole.len(), 19, "{ts}");
    assert!(
        fraction.len() <= 6 && !fraction.ends_with('0'),
        "fraction of {ts}"
    );
    format!("{whole}.{fraction:0<6}")
}

fn is_v7(id: &Value) -> bool {
    uuid::Uuid::parse_str(&str_of(id)).is_ok_and(|u| u.get_version_num() == 7)
}

/// The pointers of a 422 `/problems/validation` answer.
fn pointers(reply: &Reply) -> Vec<String> {
    let body = reply.problem(422);
    assert_eq!(body["type"], "/problems/validation", "{body}");
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {body}"))
        .iter()
        .map(|e| {
            assert!(e["detail"].as_str().is_some_and(|d| !d.is_empty()), "{e}");
            str_of(&e["pointer"])
        })
        .collect()
}

fn without_request_id(mut body: Value) -> Value {
    body.as_object_mut().unwrap().remove("request_id");
    body
}

fn assert_insufficient_scope(reply: &Reply, scope: &str) {
    let body = reply.problem(403);
    assert_eq!(body["type"], "/problems/forbidden");
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!("scope=\"{scope}\"")),
        "{challenge}"
    );
}

fn message_ids(conversation: &Value) -> Vec<String> {
    conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| str_of(&m["id"]))
        .collect()
}

/// Every message strictly later than the previous; `updated_at` the last one's time.
fn assert_strictly_ordered(conversation: &Value) {
    let list = conversation["messages"].as_array().unwrap();
    for pair in list.windows(2) {
        assert!(
            instant(&pair[0]["created_at"]) < instant(&pair[1]["created_at"]),
            "not strictly ordered: {} then {}",
            pair[0],
            pair[1]
        );
    }
    if let Some(last) = list.last() {
        assert_eq!(conversation["updated_at"], last["created_at"]);
    }
}

on_both_backends! {
    creating_answers_201_in_the_get_shape => |env: TestEnv| async move {
        let app = env.serve();
        let token = write_token_for(BUSINESS);
        let body = json!({
            "channel_type": "widget",
            "channel_id": "e5f6a7b8-c9d0-4234-afab-345678901234",
            "customer": {"name": "Alex Johnson", "email": "alex@example.com", "phone": null, "external_id": "crm-42"},
            "message": customer_says("Hello, I need help with my order."),
        });
        let reply = post(&app, &token, CONVERSATIONS, &body, &[]);
        assert_eq!(reply.status, 201, "{}", text(&reply));
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let created = reply.json();
        let id = str_of(&created["id"]);
        assert_eq!(reply.header("location"), Some(conversation(&id).as_str()));
        let tag = etag(&reply);
        assert!(tag.starts_with('"'), "strong: {tag}");

        let get = read(&app, &id);
        assert_eq!(get.json(), created);
        assert_eq!(etag(&get), tag);

        for value in [&created["id"], &created["customer"]["id"], &created["messages"][0]["id"]] {
            assert!(is_v7(value), "not a UUIDv7: {value}");
        }
        assert_eq!(created["business_id"], BUSINESS);
        assert_eq!(created["status"], "open");
        assert_eq!(created["channel_type"], "widget");
        assert_eq!(created["channel_id"], body["channel_id"]);
        assert_eq!(created["assignee_id"], Value::Null);
        assert_eq!(created["first_response_at"], Value::Null);
        assert_eq!(created["customer_id"], created["customer"]["id"]);
        let customer = &created["customer"];
        assert_eq!(customer["business_id"], BUSINESS);
        for key in ["name", "email", "phone", "external_id"] {
            assert_eq!(customer[key], body["customer"][key], "{key}");
        }
        let history = created["messages"].as_array().unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0]["conversation_id"], id.as_str());
        assert_eq!(history[0]["sender_type"], "customer");
        assert_eq!(history[0]["sender_id"], Value::Null);
        assert_eq!(history[0]["content"], "Hello, I need help with my order.");
        assert_eq!(history[0]["attachments"], json!([]));
        instant(&created["created_at"]);
        assert_eq!(created["created_at"], created["updated_at"]);
        assert_eq!(created["created_at"], history[0]["created_at"]);

        // The smallest body: no customer, no message.
        let bare = create(&app, &json!({"channel_type": "email"}));
        assert_eq!(bare["customer"], Value::Null);
        assert_eq!(bare["customer_id"], Value::Null);
        assert_eq!(bare["messages"], json!([]));
        assert_eq!(bare["status"], "open");
        assert_eq!(bare["created_at"], bare["updated_at"]);
        assert_ne!(bare["id"], created["id"]);
    };

    an_agent_first_message_sets_first_response_at => |env: TestEnv| async move {
        let app = env.serve();
        let created = create(&app, &json!({
            "channel_type": "api", "status": "pending", "assignee_id": AGENT,
            "message": agent_says("We noticed a problem with your order."),
        }));
        assert_eq!(created["status"], "pending");
        assert_eq!(created["assignee_id"], AGENT);
        assert_eq!(created["first_response_at"], created["created_at"]);
        assert_eq!(created["messages"][0]["created_at"], created["created_at"]);
        assert_eq!(created["updated_at"], created["created_at"]);
        assert_eq!(read(&app, &str_of(&created["id"])).json(), created);
    };

    a_customer_is_reused_by_external_id => |env: TestEnv| async move {
        let app = env.serve();
        let first = create(&app, &json!({
            "channel_type": "email",
            "customer": {"name": "Alex", "email": "alex@example.com", "phone": "+1 555 0100", "external_id": "crm-42"},
        }));
        let second = create(&app, &json!({
            "channel_type": "sms",
            "customer": {"name": "Someone Else", "email": "else@example.com", "phone": null, "external_id": "crm-42"},
        }));
        assert_ne!(first["id"], second["id"]);
        assert_eq!(second["customer_id"], first["customer_id"]);
        assert_eq!(second["customer"], first["customer"], "fields unchanged");
        let again = read(&app, &str_of(&first["id"])).json();
        assert_eq!(again["customer"], first["customer"]);

        let by_id = create(&app, &json!({"channel_type": "api", "customer_id": first["customer_id"]}));
        assert_eq!(by_id["customer"], first["customer"]);

        // Another business's customer with the same external id is its own.
        let theirs = post(&app, &write_token_for(OTHER_BUSINESS), CONVERSATIONS, &json!({
            "channel_type": "email",
            "customer": {"name": "Alex", "email": "alex@example.com", "phone": null, "external_id": "crm-42"},
        }), &[]);
        assert_eq!(theirs.status, 201, "{}", text(&theirs));
        let theirs = theirs.json();
        assert_ne!(theirs["customer_id"], first["customer_id"]);
        assert_eq!(theirs["customer"]["business_id"], OTHER_BUSINESS);
        assert_eq!(theirs["business_id"], OTHER_BUSINESS);
    };

    a_foreign_customer_id_is_no_such_customer => |env: TestEnv| async move {
        let app = env.serve();
        let theirs = post(&app, &write_token_for(OTHER_BUSINESS), CONVERSATIONS, &json!({
            "channel_type": "email",
            "customer": {"name": "Bea", "email": null, "phone": null, "external_id": null},
        }), &[]);
        assert_eq!(theirs.status, 201, "{}", text(&theirs));
        let foreign = theirs.json()["customer_id"].clone();
        let token = write_token_for(BUSINESS);
        let with_foreign = post(&app, &token, CONVERSATIONS, &json!({"channel_type": "email", "customer_id": foreign}), &[]);
        assert_eq!(pointers(&with_foreign), ["/customer_id"]);
        let with_missing = post(&app, &token, CONVERSATIONS, &json!({"channel_type": "email", "customer_id": MISSING}), &[]);
        assert_eq!(pointers(&with_missing), ["/customer_id"]);
        assert_eq!(
            without_request_id(with_foreign.json()),
            without_request_id(with_missing.json()),
            "a foreign customer is indistinguishable from a missing one"
        );
    };

    posting_a_message_answers_201_with_location => |env: TestEnv| async move {
        let app = env.serve();
        let (id, created) = new_conversation(&app, "open");
        let token = write_token_for(BUSINESS);
        let tag_before = etag(&read(&app, &id));
        let body = json!({
            "sender_type": "agent", "sender_id": AGENT, "content": "See the attached invoice.",
            "attachments": [
                {"file_name": "invoice.pdf", "content_type": "application/pdf", "byte_size": 1234, "url": "https://files.example/invoice.pdf"},
                {"file_name": "photo.png", "content_type": "image/png", "byte_size": 0, "url": "http://files.example/p.png"}
            ],
        });
        let reply = post(&app, &token, &messages(&id), &body, &[]);
        assert_eq!(reply.status, 201, "{}", text(&reply));
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let posted = reply.json();
        let mid = str_of(&posted["id"]);
        assert!(is_v7(&posted["id"]));
        assert_eq!(reply.header("location"), Some(message(&id, &mid).as_str()));
        let tag = etag(&reply);
        assert_eq!(posted["conversation_id"], id.as_str());
        assert_eq!(posted["sender_type"], "agent");
        assert_eq!(posted["sender_id"], AGENT);
        assert_eq!(posted["content"], body["content"]);
        let attachments = posted["attachments"].as_array().unwrap();
        assert_eq!(attachments.len(), 2);
        for (got, sent) in attachments.iter().zip(body["attachments"].as_array().unwrap()) {
            assert!(is_v7(&got["id"]), "{got}");
            for key in ["file_name", "content_type", "byte_size", "url"] {
                assert_eq!(got[key], sent[key], "{key}");
            }
        }

        let get = app.get_as(&message(&id, &mid), &token);
        assert_eq!(get.status, 200, "{}", text(&get));
        assert_eq!(get.json(), posted);
        assert_eq!(etag(&get), tag, "the POST's ETag is the new message's");
        let after = read(&app, &id);
        assert_ne!(etag(&after), tag_before, "the conversation's revision changed");
        let after = after.json();
        assert_eq!(after["messages"], json!([posted]));
        assert_eq!(after["updated_at"], posted["created_at"]);
        assert!(instant(&posted["created_at"]) > instant(&created["created_at"]));

        // A message of another conversation, or a missing one, is 404.
        let (other, _) = new_conversation(&app, "open");
        app.get_as(&message(&other, &mid), &token).problem(404);
        app.get_as(&message(&id, MISSING), &token).problem(404);
        app.get_as(&message(MISSING, &mid), &token).problem(404);
    };

    the_first_agent_message_sets_first_response_at_once => |env: TestEnv| async move {
        let app = env.serve();
        let (id, _) = new_conversation(&app, "pending");
        add_message(&app, &id, &customer_says("hello?"));
        assert_eq!(read(&app, &id).json()["first_response_at"], Value::Null, "a customer message is no response");
        let first = add_message(&app, &id, &agent_says("Hi!"));
        let after_first = read(&app, &id).json();
        assert_eq!(after_first["first_response_at"], first["created_at"]);
        for i in 0..3 {
            let later = json!({"sender_type": "agent", "sender_id": OTHER_AGENT, "content": format!("more {i}")});
            add_message(&app, &id, &later);
            add_message(&app, &id, &json!({"sender_type": "agent", "sender_id": null, "content": "bot"}));
        }
        let after = read(&app, &id).json();
        assert_eq!(after["first_response_at"], first["created_at"], "never changed afterwards");
        assert_ne!(after["updated_at"], after_first["updated_at"]);
    };

    a_customer_message_reopens_pending_and_resolved => |env: TestEnv| async move {
        let app = env.serve();
        let token = write_token_for(BUSINESS);
        let (id, created) = new_conversation(&app, "pending");
        assert_eq!(created["status"], "pending");
        add_message(&app, &id, &agent_says("Waiting for you."));
        assert_eq!(read(&app, &id).json()["status"], "pending", "an agent message does not reopen");
        add_message(&app, &id, &customer_says("here I am"));
        assert_eq!(read(&app, &id).json()["status"], "open");

        let resolved = patch(&app, &token, &id, &json!({"status": "resolved"}), &[]);
        assert_eq!(resolved.status, 200, "{}", text(&resolved));
        let customer = created["customer_id"].clone();
        add_message(&app, &id, &json!({"sender_type": "customer", "sender_id": customer, "content": "one more thing"}));
        assert_eq!(read(&app, &id).json()["status"], "open");
    };

    a_closed_conversation_takes_no_message => |env: TestEnv| async move {
        let app = env.serve();
        let token = write_token_for(BUSINESS);
        let (id, _) = new_conversation(&app, "open");
        add_message(&app, &id, &customer_says("hi"));
        let closed = patch(&app, &token, &id, &json!({"status": "closed"}), &[]);
        assert_eq!(closed.status, 200, "{}", text(&closed));
        let before = read(&app, &id);
        for body in [customer_says("hello?"), agent_says("sorry")] {
            let reply = post(&app, &token, &messages(&id), &body, &[]);
            assert_eq!(reply.problem(409)["type"], "/problems/conflict");
        }
        let after = read(&app, &id);
        assert_eq!(after.json(), before.json(), "nothing written");
        assert_eq!(etag(&after), etag(&before));
    };

    a_customer_message_names_no_one_but_the_customer => |env: TestEnv| async move {
        let app = env.serve();
        let token = write_token_for(BUSINESS);
        let (id, created) = new_conversation(&app, "open");
        let before = read(&app, &id).json();
        for sender in [json!(AGENT), json!(MISSING)] {
            let reply = post(&app, &token, &messages(&id), &json!({"sender_type": "customer", "sender_id": sender, "content": "x"}), &[]);
            assert_eq!(pointers(&reply), ["/sender_id"]);
        }
        assert_eq!(read(&app, &id).json(), before);
        add_message(&app, &id, &json!({"sender_type": "customer", "sender_id": created["customer_id"], "content": "me"}));
        add_message(&app, &id, &customer_says("me again"));
        // Without a customer, only null will do.
        let bare = create(&app, &json!({"channel_type": "email"}));
        let bare_id = str_of(&bare["id"]);
        let reply = post(&app, &token, &messages(&bare_id), &json!({"sender_type": "customer", "sender_id": created["customer_id"], "content": "x"}), &[]);
        assert_eq!(pointers(&reply), ["/sender_id"]);
        add_message(&app, &bare_id, &customer_says("anonymous"));
    };

    messages_posted_in_turn_are_strictly_ordered => |env: TestEnv| async move {
        let app = env.serve();
        let (id, _) = new_conversation(&app, "open");
        let mut posted = vec![];
        for i in 0..12 {
            let body = if i % 2 == 0 { customer_says(&format!("c{i}")) } else { agent_says(&format!("a{i}")) };
            posted.push(add_message(&app, &id, &body));
        }
        let conversation = read(&app, &id).json();
        assert_eq!(conversation["messages"], Value::Array(posted.clone()), "listed in posting order");
        assert_strictly_ordered(&conversation);
        assert_eq!(conversation["updated_at"], posted.last().unwrap()["created_at"]);
    };

    patch_changes_status_and_assignee => |env: TestEnv| async move {
        let app = env.serve();
        let token = write_token_for(BUSINESS);
        let (id, created) = new_conversation(&app, "open");
        let tag = etag(&read(&app, &id));
        let reply = patch(&app, &token, &id, &json!({"status": "resolved", "assignee_id": AGENT}),
            &[("content-type", "application/merge-patch+json")]);
        assert_eq!(reply.status, 200, "{}", text(&reply));
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let patched = reply.json();
        assert_eq!(patched["status"], "resolved");
        assert_eq!(patched["assignee_id"], AGENT);
        assert!(instant(&patched["updated_at"]) >= instant(&created["updated_at"]));
        let new_tag = etag(&reply);
        assert_ne!(new_tag, tag);
        let get = read(&app, &id);
        assert_eq!(etag(&get), new_tag);
        assert_eq!(get.json(), patched);
        let mut expected = created.clone();
        expected["status"] = json!("resolved");
        expected["assignee_id"] = json!(AGENT);
        expected["updated_at"] = patched["updated_at"].clone();
        assert_eq!(patched, expected, "nothing else changed");

        // Only what is named changes; null unassigns.
        let reply = patch(&app, &token, &id, &json!({"assignee_id": null}), &[]);
        assert_eq!(reply.status, 200, "{}", text(&reply));
        assert_eq!(reply.json()["assignee_id"], Value::Null);
        assert_eq!(reply.json()["status"], "resolved");
        let reply = patch(&app, &token, &id, &json!({"status": "pending"}), &[]);
        assert_eq!(reply.json()["status"], "pending");
        assert_eq!(reply.json()["assignee_id"], Value::Null);
        assert_eq!(read(&app, &id).json(), reply.json());
    };

    empty_and_unchanging_patches_change_nothing => |env: TestEnv| async move {
        let app = env.serve();
        let token = write_token_for(BUSINESS);
        let (id, _) = new_conversation(&app, "open");
        let set = patch(&app, &token, &id, &json!({"assignee_id": AGENT}), &[]);
        assert_eq!(set.status, 200, "{}", text(&set));
        let before = read(&app, &id);
        for body in [json!({}), json!({"status": "open"}), json!({"assignee_id": AGENT}), json!({"status": "open", "assignee_id": AGENT})] {
            let reply = patch(&app, &token, &id, &body, &[]);
            assert_eq!(reply.status, 200, "{body}: {}", text(&reply));
            assert_eq!(etag(&reply), etag(&before), "{body}");
            assert_eq!(reply.json(), before.json(), "{body}");
        }
        let after = read(&app, &id);
        assert_eq!(etag(&after), etag(&before));
        assert_eq!(after.json()["updated_at"], before.json()["updated_at"]);
    };

    if_match_guards_patches => |env: TestEnv| async move {
        let app = env.serve();
        let token = write_token_for(BUSINESS);
        let (id, _) = new_conversation(&app, "open");
        let first = etag(&read(&app, &id));
        add_message(&app, &id, &customer_says("changes the tag"));
        let before = read(&app, &id);
        let current = etag(&before);
        assert_ne!(first, current);

        let weak = format!("W/{current}");
        for stale in [first.as_str(), "\"nope\"", "W/\"nope\"", weak.as_str()] {
            let reply = patch(&app, &token, &id, &json!({"status": "resolved"}), &[("if-match", stale)]);
            assert_eq!(reply.problem(412)["type"], "/problems/precondition-failed", "{stale}");
            let now = read(&app, &id);
            assert_eq!(now.json(), before.json(), "nothing changes");
            assert_eq!(etag(&now), current);
        }

        let reply = patch(&app, &token, &id, &json!({"status": "resolved"}), &[("if-match", &current)]);
        assert_eq!(reply.status, 200, "{}", text(&reply));
        let newer = etag(&reply);
        assert_ne!(newer, current);
        assert_eq!(etag(&read(&app, &id)), newer);
        // The tag just replaced is stale now.
        patch(&app, &token, &id, &json!({"status": "pending"}), &[("if-match", &current)]).problem(412);

        let star = patch(&app, &token, &id, &json!({"status": "pending"}), &[("if-match", "*")]);
        assert_eq!(star.status, 200, "{}", text(&star));
        assert_eq!(star.json()["status"], "pending");
        assert_eq!(etag(&read(&app, &id)), etag(&star));

        // If-Match on a missing conversation is still 404.
        patch(&app, &token, MISSING, &json!({"status": "pending"}), &[("if-match", "*")]).problem(404);
    };

    closed_is_final => |env: TestEnv| async move {
        let app = env.serve();
        let token = write_token_for(BUSINESS);
        let (id, _) = new_conversation(&app, "open");
        let closed = patch(&app, &token, &id, &json!({"status": "closed"}), &[]);
        assert_eq!(closed.status, 200, "{}", text(&closed));
        assert_eq!(closed.json()["status"], "closed");
        let before = read(&app, &id);
        for body in [json!({"status": "open"}), json!({"assignee_id": AGENT}), json!({"status": "resolved", "assignee_id": AGENT})] {
            let reply = patch(&app, &token, &id, &body, &[]);
            assert_eq!(reply.problem(409)["type"], "/problems/conflict", "{body}");
        }
        let after = read(&app, &id);
        assert_eq!(after.json(), before.json());
        assert_eq!(etag(&after), etag(&before));
    };

    patch_refuses_other_members => |env: TestEnv| async move {
        let app = env.serve();
        let token = write_token_for(BUSINESS);
        let (id, _) = new_conversation(&app, "open");
        let before = read(&app, &id).json();
        assert_eq!(pointers(&patch(&app, &token, &id, &json!({"priority": "high"}), &[])), ["/priority"]);
        assert_eq!(pointers(&patch(&app, &token, &id, &json!({"status": "resolved", "channel_type": "sms"})
            , &[])), ["/channel_type"]);
        assert_eq!(pointers(&patch(&app, &token, &id, &json!({"updated_at": "2024-01-01T00:00:00Z"}), &[])), ["/updated_at"]);
        let many = pointers(&patch(&app, &token, &id, &json!({"status": "done", "assignee_id": "x", "id": MISSING}), &[]));
        for pointer in ["/status", "/assignee_id", "/id"] {
            assert!(many.contains(&pointer.to_owned()), "{pointer} missing in {many:?}");
        }
        assert_eq!(read(&app, &id).json(), before, "nothing changed");
    };

    prefer_return_minimal => |env: TestEnv| async move {
        let app = env.serve();
        let token = write_token_for(BUSINESS);
        let minimal = [("prefer", "return=minimal")];
        let reply = post(&app, &token, CONVERSATIONS, &json!({"channel_type": "email"}), &minimal);
        assert_eq!(reply.status, 201, "{}", text(&reply));
        assert!(reply.body.is_empty(), "{}", text(&reply));
        let location = reply.header("location").expect("Location").to_owned();
        let id = location.strip_prefix(&format!("{CONVERSATIONS}/")).expect("a conversation path").to_owned();
        assert_eq!(etag(&read(&app, &id)), etag(&reply));

        let reply = post(&app, &token, &messages(&id), &customer_says("hi"), &minimal);
        assert_eq!(reply.status, 201, "{}", text(&reply));
        assert!(reply.body.is_empty());
        let location = reply.header("location").expect("Location").to_owned();
        assert!(location.starts_with(&format!("{}/", messages(&id))), "{location}");
        let get = app.get_as(&location, &token);
        assert_eq!(get.json()["content"], "hi");
        assert_eq!(etag(&get), etag(&reply), "the same headers as without return=minimal");

        let reply = patch(&app, &token, &id, &json!({"status": "pending"}), &minimal);
        assert_eq!(reply.status, 204, "{}", text(&reply));
        assert!(reply.body.is_empty());
        let get = read(&app, &id);
        assert_eq!(etag(&get), etag(&reply));
        assert_eq!(get.json()["status"], "pending");
    };

    every_invalid_value_is_named => |env: TestEnv| async move {
        let app = env.serve();
        let token = write_token_for(BUSINESS);
        let body = json!({
            "channel_type": "",
            "channel_id": "not-a-uuid",
            "assignee_id": 5,
            "status": "archived",
            "customer": {"name": 7, "email": null, "phone": null, "external_id": "x".repeat(513), "age": 3},
            "message": {
                "sender_type": "bot",
                "sender_id": "nope",
                "content": "nul \u{0} inside",
                "attachments": [
                    {"file_name": "ok.pdf", "content_type": "application/pdf", "byte_size": 1, "url": "ftp://files.example/a"},
                    {"file_name": "", "content_type": "pdf", "byte_size": -1, "url": "https://files.example/b"}
                ],
            },
        });
        let found = pointers(&post(&app, &token, CONVERSATIONS, &body, &[]));
        let missing = [
            "/channel_type", "/channel_id", "/assignee_id", "/status", "/customer/name",
            "/customer/external_id", "/customer/age", "/message/sender_type", "/message/sender_id",
            "/message/content", "/message/attachments/0/url", "/message/attachments/1/file_name",
            "/message/attachments/1/content_type", "/message/attachments/1/byte_size",
        ]
        .into_iter()
        .filter(|p| !found.contains(&(*p).to_owned()))
        .collect::<Vec<_>>();
        assert!(missing.is_empty(), "{missing:?} missing in {found:?}");
        assert!(!found.contains(&"/message/attachments/1/url".to_owned()), "{found:?}");

        // Server-assigned fields are named.
        for (field, value) in [("id", json!(MISSING)), ("business_id", json!(BUSINESS)), ("created_at", json!("2024-01-01T00:00:00Z"))] {
            let mut body = json!({"channel_type": "email"});
            body[field] = value;
            assert_eq!(pointers(&post(&app, &token, CONVERSATIONS, &body, &[])), [format!("/{field}")]);
        }
        let (id, _) = new_conversation(&app, "open");
        let mut with_id = customer_says("x");
        with_id["id"] = json!(MISSING);
        with_id["conversation_id"] = json!(id);
        let found = pointers(&post(&app, &token, &messages(&id), &with_id, &[]));
        assert!(found.contains(&"/id".to_owned()) && found.contains(&"/conversation_id".to_owned()), "{found:?}");

        // Message rules.
        let too_many: Vec<Value> = (0..21)
            .map(|i| json!({"file_name": format!("f{i}"), "content_type": "text/plain", "byte_size": 1, "url": "https://f.example/x"}))
            .collect();
        let cases = [
            (json!({"sender_type": "agent", "content": ""}), "/content"),
            (json!({"sender_type": "agent", "content": "x".repeat(65_537)}), "/content"),
            (json!({"sender_type": "agent", "content": "x", "attachments": too_many}), "/attachments"),
            (json!({"content": "who?"}), "/sender_type"),
        ];
        for (body, pointer) in cases {
            let found = pointers(&post(&app, &token, &messages(&id), &body, &[]));
            assert!(found.contains(&pointer.to_owned()), "{pointer} missing in {found:?}");
        }
        // The limits themselves are allowed.
        add_message(&app, &id, &json!({"sender_type": "agent", "content": "x".repeat(65_536)}));
        add_message(&app, &id, &json!({"sender_type": "agent", "content": "", "attachments": [
            {"file_name": "only.png", "content_type": "image/png", "byte_size": 3, "url": "https://f.example/o"}]}));
        // Nothing of the refused requests was written.
        assert_eq!(read(&app, &id).json()["messages"].as_array().unwrap().len(), 2);
        // A customer and a customer_id at once is refused.
        let both = post(&app, &token, CONVERSATIONS, &json!({
            "channel_type": "email", "customer_id": MISSING,
            "customer": {"name": null, "email": null, "phone": null, "external_id": null}}), &[]);
        pointers(&both);
    };

    each_rule_alone_is_named => |env: TestEnv| async move {
        let app = env.serve();
        let token = write_token_for(BUSINESS);
        let customer = |field: &str, value: Value| {
            let mut customer = json!({"name": null, "email": null, "phone": null, "external_id": null});
            customer[field] = value;
            json!({"channel_type": "email", "customer": customer})
        };
        let cases = [
            (json!({"channel_type": ""}), "/channel_type"),
            (json!({"channel_type": "email", "status": "closed"}), "/status"),
            (customer("external_id", json!("x".repeat(513))), "/customer/external_id"),
            (customer("name", json!("a\u{0}b")), "/customer/name"),
            (json!({"channel_type": "email", "message": {"sender_type": "customer", "content": "a\u{0}b"}}), "/message/content"),
            (json!({"channel_type": "email", "message": {"sender_type": "agent", "content": "x", "attachments": [
                {"file_name": "a", "content_type": "a/b", "byte_size": 1, "url": format!("https://f.example/{}", "x".repeat(2_048))}]}}),
             "/message/attachments/0/url"),
            (json!({"channel_type": "email", "message": {"sender_type": "agent", "content": "x", "attachments": [
                {"file_name": "x".repeat(256), "content_type": "a/b", "byte_size": 1, "url": "https://f.example/"}]}}),
             "/message/attachments/0/file_name"),
            (json!({"channel_type": "email", "message": {"sender_type": "agent", "content": "x", "attachments": [
                {"file_name": "a", "content_type": "a/b", "byte_size": 1.5, "url": "https://f.example/"}]}}),
             "/message/attachments/0/byte_size"),
        ];
        for (body, pointer) in cases {
            let found = pointers(&post(&app, &token, CONVERSATIONS, &body, &[]));
            assert_eq!(found, [pointer], "{body}");
        }
        // At the limit is fine.
        create(&app, &customer("external_id", json!("x".repeat(512))));
    };

    media_type_syntax_and_size => |env: TestEnv| async move {
        let app = env.serve();
        let token = write_token_for(BUSINESS);
        let auth = format!("Bearer {token}");
        let (id, _) = new_conversation(&app, "open");
        let before = read(&app, &id).json();
        let targets = [("POST", CONVERSATIONS.to_owned()), ("POST", messages(&id)), ("PATCH", conversation(&id))];
        let valid = |method: &str| if method == "PATCH" { json!({"status": "resolved"}) } else { json!({"channel_type": "email", "sender_type": "agent", "content": "x"}) };
        for (method, path) in &targets {
            let body = valid(method).to_string();
            for media in ["text/plain", "application/x-www-form-urlencoded", "application/xml"] {
                let reply = app.send(method, path, &[("authorization", &auth), ("content-type", media)], body.as_bytes());
                assert_eq!(reply.problem(415)["type"], "/problems/unsupported-media-type", "{method} {path} {media}");
            }
            let reply = app.send(method, path, &[("authorization", &auth)], body.as_bytes());
            assert_eq!(reply.problem(415)["type"], "/problems/unsupported-media-type", "{method} {path} without a type");
            for broken in [&b"{"[..], &b""[..], &b"{\"status\": }"[..], &b"\xff\xfe"[..]] {
                let reply = app.send(method, path, &[("authorization", &auth), ("content-type", "application/json")], broken);
                assert_eq!(reply.problem(400)["type"], "/problems/bad-request", "{method} {path} {broken:?}");
            }
            let mut big = format!("{{\"channel_type\": \"email\", \"pad\": \"{}", "x".repeat(1_153_434));
            big.push_str("\"}");
            let reply = app.try_send(method, path, &[("authorization", &auth), ("content-type", "application/json")], big.as_bytes())
                .unwrap_or_else(|e| panic!("{method} {path}: no answer to a 1.1 MiB body: {e}"));
            assert_eq!(reply.problem(413)["type"], "/problems/too-large", "{method} {path}");
        }
        // merge-patch is for PATCH only; parameters of application/json are fine.
        let reply = app.send("POST", &messages(&id), &[("authorization", &auth), ("content-type", "application/merge-patch+json")],
            customer_says("x").to_string().as_bytes());
        reply.problem(415);
        assert_eq!(read(&app, &id).json(), before, "nothing written");
        let reply = app.send("POST", &messages(&id), &[("authorization", &auth), ("content-type", "application/json; charset=utf-8")],
            customer_says("charset").to_string().as_bytes());
        assert_eq!(reply.status, 201, "{}", text(&reply));
    };

    read_only_tokens_cannot_write => |env: TestEnv| async move {
        let app = env.serve();
        let (id, _) = new_conversation(&app, "open");
        let before = read(&app, &id);
        for token in [
            token_for(BUSINESS),
            token_with_scope(BUSINESS, "conversations:read"),
            token_with_scope(BUSINESS, "webhooks:manage conversations:read"),
            token_with_scope(BUSINESS, ""),
            token_with_scope(BUSINESS, "conversations:writer conversations:read"),
        ] {
            assert_insufficient_scope(&post(&app, &token, CONVERSATIONS, &json!({"channel_type": "email"}), &[]), "conversations:write");
            assert_insufficient_scope(&post(&app, &token, &messages(&id), &customer_says("x"), &[]), "conversations:write");
            assert_insufficient_scope(&patch(&app, &token, &id, &json!({"status": "resolved"}), &[]), "conversations:write");
            // Even for a conversation that does not exist: the scope comes first.
            assert_insufficient_scope(&patch(&app, &token, MISSING, &json!({"status": "resolved"}), &[]), "conversations:write");
        }
        let after = read(&app, &id);
        assert_eq!(after.json(), before.json());
        assert_eq!(etag(&after), etag(&before));
        // Scope order does not matter.
        let reversed = token_with_scope(BUSINESS, "conversations:write conversations:read");
        assert_eq!(post(&app, &reversed, &messages(&id), &customer_says("ok"), &[]).status, 201);
    };

    write_only_tokens_cannot_read => |env: TestEnv| async move {
        let app = env.serve();
        let token = token_with_scope(BUSINESS, "conversations:write");
        let reply = post(&app, &token, CONVERSATIONS, &json!({"channel_type": "email", "message": customer_says("hi")}), &[]);
        assert_eq!(reply.status, 201, "{}", text(&reply));
        let created = reply.json();
        let id = str_of(&created["id"]);
        let mid = str_of(&created["messages"][0]["id"]);
        assert_insufficient_scope(&app.get_as(&conversation(&id), &token), "conversations:read");
        assert_insufficient_scope(&app.get_as(&message(&id, &mid), &token), "conversations:read");
        assert_insufficient_scope(&app.get_as(&conversation(MISSING), &token), "conversations:read");
        assert_eq!(app.get_as(&message(&id, &mid), &token_for(BUSINESS)).status, 200);
    };

    another_business_cannot_touch_a_conversation => |env: TestEnv| async move {
        let app = env.serve();
        let (id, _) = new_conversation(&app, "open");
        let mid = str_of(&add_message(&app, &id, &customer_says("mine"))["id"]);
        let before = read(&app, &id);
        let theirs = write_token_for(OTHER_BUSINESS);
        let pairs = [
            (post(&app, &theirs, &messages(&id), &agent_says("hijack"), &[]),
             post(&app, &theirs, &messages(MISSING), &agent_says("hijack"), &[])),
            (patch(&app, &theirs, &id, &json!({"status": "closed"}), &[]),
             patch(&app, &theirs, MISSING, &json!({"status": "closed"}), &[])),
            (patch(&app, &theirs, &id, &json!({"status": "closed"}), &[("if-match", "*")]),
             patch(&app, &theirs, MISSING, &json!({"status": "closed"}), &[("if-match", "*")])),
            (app.get_as(&message(&id, &mid), &theirs), app.get_as(&message(MISSING, &mid), &theirs)),
            (app.get_as(&message(&id, &mid), &theirs), app.get_as(&message(&id, MISSING), &theirs)),
        ];
        for (theirs, missing) in &pairs {
            let a = theirs.problem(404);
            let b = missing.problem(404);
            assert_eq!(a["type"], "/problems/not-found");
            assert_eq!(without_request_id(a), without_request_id(b));
        }
        let after = read(&app, &id);
        assert_eq!(after.json(), before.json());
        assert_eq!(etag(&after), etag(&before));
    };

    idempotent_replays_answer_the_same => |env: TestEnv| async move {
        let app = env.serve();
        let token = write_token_for(BUSINESS);
        let (id, _) = new_conversation(&app, "open");
        let key = [("idempotency-key", "msg-key-1")];
        let body = json!({"sender_type": "agent", "sender_id": AGENT, "content": "once",
            "attachments": [{"file_name": "a.txt", "content_type": "text/plain", "byte_size": 2, "url": "https://f.example/a"}]});
        let first = post(&app, &token, &messages(&id), &body, &key);
        assert_eq!(first.status, 201, "{}", text(&first));
        assert_ne!(first.header("idempotent-replayed"), Some("true"));
        let tag_before = etag(&read(&app, &id));
        let second = post(&app, &token, &messages(&id), &body, &key);
        assert_eq!(second.status, 201, "{}", text(&second));
        assert_eq!(second.header("idempotent-replayed"), Some("true"));
        assert_eq!(second.body, first.body, "the same body");
        assert_eq!(second.header("location"), first.header("location"));
        assert_eq!(second.header("etag"), first.header("etag"));
        let conversation_now = read(&app, &id);
        assert_eq!(message_ids(&conversation_now.json()), [str_of(&first.json()["id"])], "exactly one message");
        assert_eq!(etag(&conversation_now), tag_before, "the replay wrote nothing");

        // Creating a conversation twice with one key creates it once.
        let create_body = json!({"channel_type": "email", "message": customer_says("first")});
        let create_key = [("idempotency-key", "create-1")];
        let a = post(&app, &token, CONVERSATIONS, &create_body, &create_key);
        let b = post(&app, &token, CONVERSATIONS, &create_body, &create_key);
        assert_eq!((a.status, b.status), (201, 201), "{} / {}", text(&a), text(&b));
        assert_eq!(a.body, b.body);
        assert_eq!(a.header("location"), b.header("location"));
        assert_eq!(a.header("etag"), b.header("etag"));
        assert_eq!(b.header("idempotent-replayed"), Some("true"));

        // With return=minimal, the replay is minimal too.
        let minimal = [("idempotency-key", "minimal-1"), ("prefer", "return=minimal")];
        let a = post(&app, &token, &messages(&id), &customer_says("small"), &minimal);
        let b = post(&app, &token, &messages(&id), &customer_says("small"), &minimal);
        assert_eq!((a.status, b.status), (201, 201));
        assert!(a.body.is_empty() && b.body.is_empty());
        assert_eq!(a.header("location"), b.header("location"));
        assert_eq!(b.header("idempotent-replayed"), Some("true"));
        assert_eq!(read(&app, &id).json()["messages"].as_array().unwrap().len(), 2);
    };

    a_reused_key_with_another_request_is_422 => |env: TestEnv| async move {
        let app = env.serve();
        let token = write_token_for(BUSINESS);
        let (id, _) = new_conversation(&app, "open");
        let (other, _) = new_conversation(&app, "open");
        let key = [("idempotency-key", "k-reused")];
        assert_eq!(post(&app, &token, &messages(&id), &customer_says("one"), &key).status, 201);
        let before = read(&app, &id);
        let different_body = post(&app, &token, &messages(&id), &customer_says("two"), &key);
        assert_eq!(different_body.problem(422)["type"], "/problems/idempotency-key-reused");
        let different_path = post(&app, &token, &messages(&other), &customer_says("one"), &key);
        assert_eq!(different_path.problem(422)["type"], "/problems/idempotency-key-reused");
        let different_route = post(&app, &token, CONVERSATIONS, &json!({"channel_type": "email"}), &key);
        assert_eq!(different_route.problem(422)["type"], "/problems/idempotency-key-reused");
        assert_eq!(read(&app, &id).json(), before.json());
        assert_eq!(read(&app, &other).json()["messages"], json!([]));
    };

    idempotency_keys_belong_to_one_business => |env: TestEnv| async move {
        let app = env.serve();
        let key = [("idempotency-key", "shared-key")];
        let body = json!({"channel_type": "email", "message": customer_says("hello")});
        let ours = post(&app, &write_token_for(BUSINESS), CONVERSATIONS, &body, &key);
        let theirs = post(&app, &write_token_for(OTHER_BUSINESS), CONVERSATIONS, &body, &key);
        assert_eq!((ours.status, theirs.status), (201, 201), "{} / {}", text(&ours), text(&theirs));
        assert_ne!(theirs.header("idempotent-replayed"), Some("true"));
        assert_ne!(ours.json()["id"], theirs.json()["id"]);
        assert_eq!(theirs.json()["business_id"], OTHER_BUSINESS);
        // Each business replays its own.
        let again = post(&app, &write_token_for(OTHER_BUSINESS), CONVERSATIONS, &body, &key);
        assert_eq!(again.body, theirs.body);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
    };

    failures_are_not_remembered => |env: TestEnv| async move {
        let app = env.serve();
        let token = write_token_for(BUSINESS);
        let (id, _) = new_conversation(&app, "open");
        let key = [("idempotency-key", "retry-me")];
        let invalid = post(&app, &token, &messages(&id), &json!({"sender_type": "bot", "content": "x"}), &key);
        pointers(&invalid);
        let valid = post(&app, &token, &messages(&id), &customer_says("fixed"), &key);
        assert_eq!(valid.status, 201, "{}", text(&valid));
        assert_ne!(valid.header("idempotent-replayed"), Some("true"));
        // A 404 is not kept either.
        let key = [("idempotency-key", "retry-404")];
        post(&app, &token, &messages(MISSING), &customer_says("x"), &key).problem(404);
        let valid = post(&app, &token, &messages(&id), &customer_says("x"), &key);
        assert_eq!(valid.status, 201, "{}", text(&valid));
        // A 409 (closed) is not kept: the key may then be used for something that succeeds.
        let (closed, _) = new_conversation(&app, "open");
        assert_eq!(patch(&app, &token, &closed, &json!({"status": "closed"}), &[]).status, 200);
        let key = [("idempotency-key", "retry-409")];
        post(&app, &token, &messages(&closed), &customer_says("x"), &key).problem(409);
        let valid = post(&app, &token, &messages(&id), &customer_says("y"), &key);
        assert_eq!(valid.status, 201, "{}", text(&valid));
        assert_eq!(read(&app, &id).json()["messages"].as_array().unwrap().len(), 3);
    };

    one_key_from_a_hundred_clients_writes_once => |env: TestEnv| async move {
        let app = env.serve();
        let (id, _) = new_conversation(&app, "open");
        add_message(&app, &id, &customer_says("before"));
        let token = write_token_for(BUSINESS);
        let body = json!({"sender_type": "agent", "sender_id": AGENT, "content": "exactly once",
            "attachments": [{"file_name": "a.txt", "content_type": "text/plain", "byte_size": 2, "url": "https://f.example/a"}]});
        let barrier = Barrier::new(100);
        let answers: Vec<(Reply, usize)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..100).map(|_| scope.spawn(|| {
                barrier.wait();
                let mut conflicts = 0;
                loop {
                    let reply = post(&app, &token, &messages(&id), &body, &[("idempotency-key", "the-one-key")]);
                    if reply.status == 409 {
                        assert_eq!(reply.problem(409)["type"], "/problems/conflict");
                        assert!(reply.header("retry-after").is_some(), "409 without Retry-After");
                        conflicts += 1;
                        assert!(conflicts < 200, "still 409 after 200 retries");
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    return (reply, conflicts);
                }
            })).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let first = &answers[0].0;
        assert_eq!(first.status, 201, "{}", text(first));
        let message_id = first.json()["id"].clone();
        let mut originals = 0;
        for (reply, _) in &answers {
            assert_eq!(reply.status, 201, "{}", text(reply));
            assert_eq!(reply.json()["id"], message_id);
            assert_eq!(reply.body, first.body);
            assert_eq!(reply.header("location"), first.header("location"));
            assert_eq!(reply.header("etag"), first.header("etag"));
            if reply.header("idempotent-replayed") != Some("true") {
                originals += 1;
            }
        }
        assert_eq!(originals, 1, "exactly one answer is not a replay");
        let conversation_now = read(&app, &id).json();
        let ids = message_ids(&conversation_now);
        assert_eq!(ids.len(), 2, "exactly one new message: {ids:?}");
        assert_eq!(ids[1], str_of(&message_id));
        assert_eq!(conversation_now["messages"][1]["attachments"].as_array().unwrap().len(), 1);
    };

    fifty_concurrent_posts_are_all_kept_in_order => |env: TestEnv| async move {
        let app = env.serve();
        let (id, _) = new_conversation(&app, "open");
        let token = write_token_for(BUSINESS);
        let barrier = Barrier::new(50);
        let replies: Vec<Reply> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..50).map(|i| {
                let (barrier, app, token, id) = (&barrier, &app, &token, &id);
                scope.spawn(move || {
                    barrier.wait();
                    let body = if i % 2 == 0 { customer_says(&format!("m{i}")) } else { agent_says(&format!("m{i}")) };
                    post(app, token, &messages(id), &body, &[])
                })
            }).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut acknowledged = BTreeMap::new();
        for reply in &replies {
            assert_eq!(reply.status, 201, "{}", text(reply));
            let body = reply.json();
            acknowledged.insert(str_of(&body["id"]), body);
        }
        assert_eq!(acknowledged.len(), 50);
        let conversation_now = read(&app, &id).json();
        let listed = conversation_now["messages"].as_array().unwrap();
        assert_eq!(listed.len(), 50);
        for m in listed {
            assert_eq!(Some(m), acknowledged.get(&str_of(&m["id"])), "as acknowledged");
        }
        let contents: BTreeSet<String> = listed.iter().map(|m| str_of(&m["content"])).collect();
        assert_eq!(contents.len(), 50);
        assert_strictly_ordered(&conversation_now);
        // The first agent message in history is the first response.
        let first_agent = listed.iter().find(|m| m["sender_type"] == "agent").unwrap();
        assert_eq!(conversation_now["first_response_at"], first_agent["created_at"]);
    };

    racing_patches_with_one_tag_let_one_win => |env: TestEnv| async move {
        let app = env.serve();
        let token = write_token_for(BUSINESS);
        let (id, _) = new_conversation(&app, "open");
        for round in 0..6 {
            let before = read(&app, &id);
            let tag = etag(&before);
            let current = str_of(&before.json()["status"]);
            let targets: Vec<&str> = ["open", "pending", "resolved"].into_iter().filter(|s| *s != current).collect();
            let barrier = Barrier::new(2);
            let replies: Vec<(Reply, &str)> = std::thread::scope(|scope| {
                let handles: Vec<_> = targets.iter().map(|target| {
                    let (barrier, app, token, id, tag) = (&barrier, &app, &token, &id, &tag);
                    scope.spawn(move || {
                        barrier.wait();
                        (patch(app, token, id, &json!({"status": target}), &[("if-match", tag)]), *target)
                    })
                }).collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let mut statuses: Vec<u16> = replies.iter().map(|(r, _)| r.status).collect();
            statuses.sort_unstable();
            assert_eq!(statuses, [200, 412], "round {round}: {}", replies.iter().map(|(r, _)| text(r)).collect::<Vec<_>>().join(" / "));
            let (winner, target) = replies.iter().find(|(r, _)| r.status == 200).unwrap();
            let after = read(&app, &id);
            assert_eq!(after.json()["status"], *target, "round {round}");
            assert_eq!(etag(&after), etag(winner));
        }
    };

    crash_mid_stream_loses_no_acknowledged_write => |env: TestEnv| async move {
        let app = env.serve();
        let ids: Vec<String> = (0..3).map(|_| new_conversation(&app, "open").0).collect();
        let token = write_token_for(BUSINESS);
        let acknowledged: Mutex<Vec<(String, Value)>> = Mutex::new(vec![]);
        let count = AtomicUsize::new(0);
        let unexpected: Mutex<Vec<String>> = Mutex::new(vec![]);
        let killed = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let (app, token, ids, acknowledged, count, unexpected, killed) =
                    (&app, &token, &ids, &acknowledged, &count, &unexpected, &killed);
                scope.spawn(move || {
                    for n in 0.. {
                        let id = &ids[(thread + n) % ids.len()];
                        let tag = format!("t{thread}-n{n}");
                        let body = json!({
                            "sender_type": "agent", "sender_id": AGENT, "content": tag,
                            "attachments": [
                                {"file_name": format!("{tag}-a.txt"), "content_type": "text/plain", "byte_size": n, "url": format!("https://f.example/{tag}/a")},
                                {"file_name": format!("{tag}-b.txt"), "content_type": "text/plain", "byte_size": n + 1, "url": format!("https://f.example/{tag}/b")}
                            ],
                        });
                        let auth = format!("Bearer {token}");
                        match app.try_send("POST", &messages(id), &[("authorization", &auth), ("content-type", "application/json")], body.to_string().as_bytes()) {
                            Ok(reply) if reply.status == 201 => {
                                acknowledged.lock().unwrap().push((id.clone(), reply.json()));
                                count.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(reply) => unexpected.lock().unwrap().push(text(&reply)),
                            Err(_) if killed.load(Ordering::SeqCst) => return,
                            Err(e) => unexpected.lock().unwrap().push(e),
                        }
                        if n > 5_000 {
                            return;
                        }
                    }
                });
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while count.load(Ordering::SeqCst) < 60 {
                assert!(Instant::now() < deadline, "too slow: {} acknowledged", count.load(Ordering::SeqCst));
                std::thread::sleep(Duration::from_millis(5));
            }
            killed.store(true, Ordering::SeqCst);
            let status = std::process::Command::new("kill")
                .args(["-KILL", &app.child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        });
        drop(app);
        let unexpected = unexpected.into_inner().unwrap();
        assert!(unexpected.is_empty(), "before the kill: {unexpected:?}");
        let acknowledged = acknowledged.into_inner().unwrap();
        assert!(acknowledged.len() >= 60);

        let app = env.serve();
        let mut present = BTreeSet::new();
        for id in &ids {
            let conversation_now = read(&app, id).json();
            let updated = instant(&conversation_now["updated_at"]);
            let listed = conversation_now["messages"].as_array().unwrap();
            for m in listed {
                assert!(instant(&m["created_at"]) <= updated, "message after updated_at: {m}");
                let tag = str_of(&m["content"]);
                let attachments = m["attachments"].as_array().unwrap();
                let names: Vec<String> = attachments.iter().map(|a| str_of(&a["file_name"])).collect();
                assert_eq!(names, [format!("{tag}-a.txt"), format!("{tag}-b.txt")], "a message whole, with its attachments");
                present.insert(str_of(&m["id"]));
            }
            assert_strictly_ordered(&conversation_now);
            if let Some(first) = listed.first() {
                assert_eq!(conversation_now["first_response_at"], first["created_at"]);
            }
        }
        for (id, acked) in &acknowledged {
            let mid = str_of(&acked["id"]);
            assert!(present.contains(&mid), "acknowledged message {mid} lost");
            let get = app.get_as(&message(id, &mid), &token);
            assert_eq!(get.status, 200, "{}", text(&get));
            assert_eq!(&get.json(), acked);
        }
        // And the restarted server takes writes.
        add_message(&app, &ids[0], &customer_says("after the crash"));
    };

    writes_have_their_405s => |env: TestEnv| async move {
        let app = env.serve();
        let cases = [
            (CONVERSATIONS.to_owned(), "GET, HEAD, POST", &["PUT", "PATCH", "DELETE"][..]),
            (conversation(MISSING), "GET, HEAD, PATCH", &["POST", "PUT", "DELETE"][..]),
            (messages(MISSING), "POST", &["GET", "PUT", "PATCH", "DELETE"][..]),
            (message(MISSING, MISSING), "GET, HEAD", &["POST", "PUT", "PATCH", "DELETE"][..]),
        ];
        for (path, allow, methods) in cases {
            for method in methods {
                let reply = app.send(method, &path, &[], b"");
                assert_eq!(reply.problem(405)["type"], "/problems/method-not-allowed", "{method} {path}");
                assert_eq!(reply.header("allow"), Some(allow), "{method} {path}");
            }
        }
    };

    minted_tokens_carry_their_scopes => |env: TestEnv| async move {
        let app = env.serve();
        let (id, _) = new_conversation(&app, "open");
        let mint = |extra: &[&str]| {
            let mut args = vec!["token", "--business-id", BUSINESS, "--sub", "ops", "--ttl", "120"];
            args.extend_from_slice(extra);
            let output = env.run(&args);
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            String::from_utf8(output.stdout).unwrap().trim().to_owned()
        };
        let read_only = mint(&["--scope", "conversations:read"]);
        assert_eq!(app.get_as(&conversation(&id), &read_only).status, 200);
        assert_insufficient_scope(&post(&app, &read_only, &messages(&id), &customer_says("x"), &[]), "conversations:write");
        assert_insufficient_scope(&patch(&app, &read_only, &id, &json!({"status": "pending"}), &[]), "conversations:write");

        let all = mint(&[]);
        assert_eq!(post(&app, &all, &messages(&id), &customer_says("x"), &[]).status, 201);
        assert_eq!(app.get_as(&conversation(&id), &all).status, 200);
        for extra in [&["--scope", "conversations:read conversations:write"][..], &["--scope", "conversations:read", "--scope", "conversations:write"][..]] {
            let token = mint(extra);
            assert_eq!(post(&app, &token, &messages(&id), &customer_says("y"), &[]).status, 201, "{extra:?}");
        }
        let write_only = mint(&["--scope", "conversations:write"]);
        assert_insufficient_scope(&app.get_as(&conversation(&id), &write_only), "conversations:read");

        let bogus = env.run(&["token", "--business-id", BUSINESS, "--sub", "ops", "--scope", "bogus"]);
        assert_eq!(bogus.status.code(), Some(2), "{}", String::from_utf8_lossy(&bogus.stderr));
        assert!(bogus.stdout.is_empty());
    };
}

/// The missing scope is refused before any database access: a 403 even while the
/// database cannot be reached (where a permitted write gets 503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_are_checked_before_the_database() {
    let env = TestEnv::at_url("postgres://pingback@127.0.0.1:1/none");
    let app = env.serve_with(&[
        ("PINGBACK__DATABASE__CONNECT_TIMEOUT_SECONDS", "1"),
        ("PINGBACK__DATABASE__POOL_WAIT_TIMEOUT_SECONDS", "1"),
    ]);
    let read_only = token_for(BUSINESS);
    let started = Instant::now();
    assert_insufficient_scope(
        &post(
            &app,
            &read_only,
            CONVERSATIONS,
            &json!({"channel_type": "email"}),
            &[],
        ),
        "conversations:write",
    );
    assert_insufficient_scope(
        &post(
            &app,
            &read_only,
            &messages(MISSING),
            &customer_says("x"),
            &[],
        ),
        "conversations:write",
    );
    assert_insufficient_scope(
        &patch(&app, &read_only, MISSING, &json!({"status": "open"}), &[]),
        "conversations:write",
    );
    let write_only = token_with_scope(BUSINESS, "conversations:write");
    assert_insufficient_scope(
        &app.get_as(&conversation(MISSING), &write_only),
        "conversations:read",
    );
    assert_insufficient_scope(
        &app.get_as(&message(MISSING, MISSING), &write_only),
        "conversations:read",
    );
    assert!(
        // A database access would take the 1 s connect timeout each time.
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // The database really is down: a permitted write is 503.
    let permitted = post(
        &app,
        &write_token_for(BUSINESS),
        &messages(MISSING),
        &customer_says("x"),
        &[],
    );
    permitted.problem(503);
}
