//! Black-box tests of the event log: the feed (`GET /api/v1/events`, long polling), the
//! Server-Sent Events stream, list-then-follow, concurrent writers and readers, token
//! expiry, the stream cap, SIGTERM, imports, scopes and retention — the real binary,
//! real HTTP, PostgreSQL and SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{
    App, Backend, CONVERSATIONS, Reply, SECRET, TestEnv, claims_for, create_conversation, sign,
    str_of, text, token_for, token_with_scope, write_token_for,
};

const BUSINESS: &str = "b2c3d4e5-f6a7-4901-bcde-f12345678901";
const OTHER_BUSINESS: &str = "0d0e0f10-1112-4314-9516-171819202122";
const THIRD_BUSINESS: &str = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b";
const AGENT: &str = "a1b2c3d4-e5f6-4890-abcd-ef1234567890";
const EVENTS: &str = "/api/v1/events";
const STREAM: &str = "/api/v1/events/stream";

// ---- writes ----

fn say_in(app: &App, business: &str, id: &str, sender: &str) -> Value {
    let sender_id = if sender == "agent" {
        json!(AGENT)
    } else {
        Value::Null
    };
    let reply = app.send_json(
        "POST",
        &format!("{CONVERSATIONS}/{id}/messages"),
        &write_token_for(business),
        &[],
        &json!({"sender_type": sender, "sender_id": sender_id, "content": "more"}),
    );
    assert_eq!(reply.status, 201, "{}", text(&reply));
    reply.json()
}

fn patch_in(app: &App, business: &str, id: &str, body: &Value) -> Value {
    let reply = app.send_json(
        "PATCH",
        &format!("{CONVERSATIONS}/{id}"),
        &write_token_for(business),
        &[],
        body,
    );
    assert_eq!(reply.status, 200, "{}", text(&reply));
    reply.json()
}

fn get_conversation(app: &App, business: &str, id: &str) -> Value {
    let reply = app.get_as(&format!("{CONVERSATIONS}/{id}"), &token_for(business));
    assert_eq!(reply.status, 200, "{}", text(&reply));
    reply.json()
}

fn random_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---- the feed ----

/// `GET /api/v1/events?{query}` as `business`, insisting on 200: (events, next_after).
fn feed(app: &App, business: &str, query: &str) -> (Vec<Value>, i64) {
    let reply = app.get_as(&format!("{EVENTS}?{query}"), &token_for(business));
    assert_eq!(reply.status, 200, "{}", text(&reply));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    let events = body["data"].as_array().unwrap().clone();
    (events, body["next_after"].as_i64().unwrap())
}

/// Every event of `business` after `after`, following `next_after` until empty.
fn all_after(app: &App, business: &str, mut after: i64) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let (events, next) = feed(app, business, &format!("after={after}&limit=1000"));
        if events.is_empty() {
            assert_eq!(next, after);
            return all;
        }
        after = next;
        all.extend(events);
    }
}

fn ids(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["id"].as_i64().unwrap()).collect()
}

fn types(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| str_of(&e["type"])).collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

// ---- the stream ----

#[derive(Debug, Clone)]
enum Sse {
    Event { id: i64, event: String, data: Value },
    Comment(String),
    End,
}

/// An open SSE stream over a raw connection: its lines are decoded (chunked transfer
/// encoding, then SSE fields) on a thread of its own; dropping it disconnects.
struct Stream {
    items: mpsc::Receiver<Sse>,
    socket: TcpStream,
    head: String,
}

impl Stream {
    fn open(app: &App, path: &str, headers: &[(&str, &str)]) -> Stream {
        let mut socket = TcpStream::connect(app.address).unwrap();
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n",
            app.address
        );
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        socket.write_all(request.as_bytes()).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(socket.try_clone().unwrap());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "the stream did not open: {head}"
        );
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("content-type: text/event-stream"), "{head}");
        let chunked = lower.contains("transfer-encoding: chunked");
        reader.get_ref().set_read_timeout(None).unwrap();
        let (tx, items) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = decode(reader, chunked, &tx);
            let _ = tx.send(Sse::End);
        });
        Stream {
            items,
            socket,
            head,
        }
    }

    /// The next item within `timeout` (`None`: nothing came).
    fn next(&self, timeout: Duration) -> Option<Sse> {
        self.items.recv_timeout(timeout).ok()
    }

    /// The next `n` events, each within `timeout`; panics on anything else.
    fn events(&self, n: usize, timeout: Duration) -> Vec<(i64, String, Value)> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.next(timeout) {
                Some(Sse::Event { id, event, data }) => out.push((id, event, data)),
                Some(Sse::Comment(_)) => {}
                other => panic!("expected an event, got {other:?} after {out:?}"),
            }
        }
        out
    }

    /// Asserts nothing but comments arrive within `wait`.
    fn quiet(&self, wait: Duration) {
        let until = Instant::now() + wait;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.next(left) {
                None | Some(Sse::Comment(_)) => {}
                Some(other) => panic!("expected nothing, got {other:?}"),
            }
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

fn decode(
    mut reader: BufReader<TcpStream>,
    chunked: bool,
    tx: &mpsc::Sender<Sse>,
) -> std::io::Result<()> {
    let mut pending = String::new();
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let bytes = if chunked {
            let mut size = String::new();
            if reader.read_line(&mut size)? == 0 {
                return Ok(());
            }
            let size = usize::from_str_radix(size.trim(), 16)
                .map_err(|e| std::io::Error::other(format!("{size:?}: {e}")))?;
            if size == 0 {
                return Ok(());
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk)?;
            let mut crlf = [0; 2];
            reader.read_exact(&mut crlf)?;
            chunk
        } else {
            let mut chunk = vec![0; 4096];
            let n = reader.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            chunk.truncate(n);
            chunk
        };
        pending.push_str(&String::from_utf8(bytes).unwrap());
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !fields.is_empty() {
                    let item = Sse::Event {
                        id: fields["id"].parse().unwrap(),
                        event: fields["event"].clone(),
                        data: serde_json::from_str(&fields["data"]).unwrap(),
                    };
                    fields.clear();
                    if tx.send(item).is_err() {
                        return Ok(());
                    }
                }
            } else if let Some(comment) = line.strip_prefix(':') {
                let _ = tx.send(Sse::Comment(comment.trim().to_owned()));
            } else {
                let (k, v) = line.split_once(':').unwrap_or((line, ""));
                let v = v.strip_prefix(' ').unwrap_or(v);
                assert!(
                    fields.insert(k.to_owned(), v.to_owned()).is_none(),
                    "field {k} twice"
                );
            }
        }
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn assert_insufficient_scope(reply: &Reply) {
    let body = reply.problem(403);
    assert_eq!(body["type"], "/problems/forbidden");
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"conversations:read\""),
        "{challenge}"
    );
}

/// Writes `n` event-producing changes to a fresh conversation of `business` (1 create
/// without message, then agent messages): returns the conversation id.
fn changes(app: &App, business: &str, n: usize) -> String {
    let id = str_of(&create_conversation(app, business, false)["id"]);
    for _ in 1..n {
        say_in(app, business, &id, "agent");
    }
    id
}

on_both_backends! {
    the_feed_describes_each_write => |env: TestEnv| async move {
        let app = env.serve();
        let (none, next) = feed(&app, BUSINESS, "");
        assert!(none.is_empty());
        assert_eq!(next, 0);

        let created = create_conversation(&app, BUSINESS, true); // 1 created, 2 message.created
        let id = str_of(&created["id"]);
        let agent = say_in(&app, BUSINESS, &id, "agent"); // 3
        // 4: both fields at once, one event with both previous values
        patch_in(&app, BUSINESS, &id, &json!({"status": "resolved", "assignee_id": AGENT}));
        patch_in(&app, BUSINESS, &id, &json!({"status": "resolved"})); // no change, no event
        let reopening = say_in(&app, BUSINESS, &id, "customer"); // 5 message, 6 updated

        let reply = app.get_as(EVENTS, &token_for(BUSINESS));
        assert_eq!(reply.status, 200, "{}", text(&reply));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        let (events, next) = feed(&app, BUSINESS, "");
        assert_eq!(ids(&events), [1, 2, 3, 4, 5, 6]);
        assert_eq!(next, 6);
        assert_eq!(
            types(&events),
            ["conversation.created", "message.created", "message.created",
             "conversation.updated", "message.created", "conversation.updated"]
        );
        for event in &events {
            assert_eq!(
                keys(event),
                ["conversation_id", "data", "id", "occurred_at", "type"].map(String::from).into(),
                "{event}"
            );
            assert_eq!(event["conversation_id"], created["id"]);
            assert_eq!(event["data"]["conversation"]["id"], created["id"]);
            assert!(str_of(&event["occurred_at"]).ends_with('Z'));
        }
        // data.conversation is the list item: same fields, same values once nothing
        // changes after it.
        let list = app.get_as(CONVERSATIONS, &token_for(BUSINESS)).json();
        let item = &list["data"][0];
        assert_eq!(list["last_event_id"], 6);
        for event in &events {
            assert_eq!(keys(&event["data"]["conversation"]), keys(item), "{event}");
        }
        assert_eq!(&events[5]["data"]["conversation"], item);
        assert_eq!(events[0]["data"]["conversation"]["message_count"], 1);
        assert_eq!(events[0]["data"]["conversation"]["last_message"], created["messages"][0]);
        assert_eq!(events[0]["occurred_at"], created["created_at"]);
        // data.message: the message as the API shows it.
        assert_eq!(events[1]["data"]["message"], created["messages"][0]);
        assert_eq!(events[2]["data"]["message"], agent);
        assert_eq!(events[2]["data"]["conversation"]["message_count"], 2);
        assert_eq!(events[2]["data"]["conversation"]["last_message"], agent);
        assert_eq!(events[4]["data"]["message"], reopening);
        assert_eq!(events[4]["occurred_at"], reopening["created_at"]);
        for i in [0, 1, 2, 4] {
            assert!(events[i]["data"].get("previous").is_none(), "{}", events[i]);
        }
        for i in [0, 3, 5] {
            assert!(events[i]["data"].get("message").is_none(), "{}", events[i]);
        }
        // data.previous: the changed fields' values before.
        assert_eq!(events[3]["data"]["previous"], json!({"status": "open", "assignee_id": null}));
        assert_eq!(events[3]["data"]["conversation"]["status"], "resolved");
        assert_eq!(events[3]["data"]["conversation"]["assignee_id"], AGENT);
        assert_eq!(events[5]["data"]["previous"], json!({"status": "resolved"}));
        assert_eq!(events[5]["data"]["conversation"]["status"], "open");

        // after / limit / next_after
        let (page, next) = feed(&app, BUSINESS, "after=2&limit=2");
        assert_eq!(ids(&page), [3, 4]);
        assert_eq!(next, 4);
        assert_eq!(page, events[2..4].to_vec());
        let (page, next) = feed(&app, BUSINESS, "after=6");
        assert!(page.is_empty());
        assert_eq!(next, 6);
        let (page, next) = feed(&app, BUSINESS, "after=60");
        assert!(page.is_empty());
        assert_eq!(next, 60);
        // Another business sees none of it.
        assert!(feed(&app, OTHER_BUSINESS, "").0.is_empty());
        // Bad parameters.
        for query in ["limit=0", "limit=1001", "after=-1", "wait=0", "wait=31", "after=x", "foo=1"] {
            let reply = app.get_as(&format!("{EVENTS}?{query}"), &token_for(BUSINESS));
            assert_eq!(reply.problem(400)["type"], "/problems/bad-request", "{query}");
        }
    };

    a_long_poll_answers_as_soon_as_a_write_commits => |env: TestEnv| async move {
        let app = env.serve();
        changes(&app, BUSINESS, 2);
        // Nothing happens: an empty answer after about `wait`.
        let started = Instant::now();
        let (events, next) = feed(&app, BUSINESS, "after=2&wait=2");
        let waited = started.elapsed();
        assert!(events.is_empty());
        assert_eq!(next, 2);
        assert!(
            waited >= Duration::from_millis(1900) && waited < Duration::from_secs(4),
            "{waited:?}"
        );
        // Something happens (to this business; another's write does not wake it up
        // with an empty answer).
        std::thread::scope(|s| {
            let poll = s.spawn(|| {
                let started = Instant::now();
                let (events, next) = feed(&app, BUSINESS, "after=2&wait=5");
                (events, next, Instant::now(), started.elapsed())
            });
            std::thread::sleep(Duration::from_millis(500));
            create_conversation(&app, OTHER_BUSINESS, false);
            std::thread::sleep(Duration::from_millis(300));
            create_conversation(&app, BUSINESS, false);
            let written = Instant::now();
            let (events, next, answered, total) = poll.join().unwrap();
            assert_eq!(ids(&events), [3], "{events:?}");
            assert_eq!(next, 3);
            let lag = answered.saturating_duration_since(written);
            assert!(lag < Duration::from_millis(1000), "answered {lag:?} after the write");
            assert!(total < Duration::from_secs(3), "{total:?}");
        });
        // Events already there: answered at once, wait or not.
        let started = Instant::now();
        let (events, _) = feed(&app, BUSINESS, "after=0&wait=5");
        assert_eq!(ids(&events), [1, 2, 3]);
        assert!(started.elapsed() < Duration::from_secs(1));
    };

    concurrent_writers_and_following_readers_see_everything_once => |env: TestEnv| async move {
        const WRITERS: usize = 8;
        const WRITES: usize = 12;
        let app = env.serve();
        let businesses = [BUSINESS, OTHER_BUSINESS, THIRD_BUSINESS];
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let readers: Vec<_> = businesses
                .iter()
                .map(|&business| {
                    let (app, done) = (&app, &done);
                    s.spawn(move || {
                        let mut seen: Vec<Value> = Vec::new();
                        let mut after = 0;
                        loop {
                            let finished = done.load(Ordering::SeqCst);
                            let (events, next) =
                                feed(app, business, &format!("after={after}&limit=7&wait=1"));
                            if events.is_empty() && finished {
                                return seen;
                            }
                            after = next;
                            seen.extend(events);
                        }
                    })
                })
                .collect();
            let writers: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let app = &app;
                    let business = businesses[w % businesses.len()];
                    s.spawn(move || {
                        // (conversation ids created, message ids created, patches)
                        let mut created = Vec::new();
                        let mut messages = Vec::new();
                        let mut patches = 0;
                        for i in 0..WRITES {
                            if i % 4 == 0 {
                                let c = create_conversation(app, business, true);
                                created.push(str_of(&c["id"]));
                                messages.push(str_of(&c["messages"][0]["id"]));
                            } else if i % 4 == 2 {
                                let id = &created[i % created.len()];
                                patch_in(app, business, id, &json!({"assignee_id": random_uuid()}));
                                patches += 1;
                            } else {
                                let id = &created[i % created.len()];
                                messages.push(str_of(&say_in(app, business, id, "agent")["id"]));
                            }
                        }
                        (business, created, messages, patches)
                    })
                })
                .collect();
            let mut expected: BTreeMap<&str, (BTreeSet<String>, BTreeSet<String>, usize)> =
                BTreeMap::new();
            for w in writers {
                let (business, created, messages, patches) = w.join().unwrap();
                let entry = expected.entry(business).or_default();
                entry.0.extend(created);
                entry.1.extend(messages);
                entry.2 += patches;
            }
            done.store(true, Ordering::SeqCst);
            for (business, reader) in businesses.iter().zip(readers) {
                let seen = reader.join().unwrap();
                let (created, messages, patches) = &expected[business];
                let expected_ids: Vec<i64> =
                    (1..=(created.len() + messages.len() + patches) as i64).collect();
                assert_eq!(ids(&seen), expected_ids, "{business}: contiguous, each once");
                for event in &seen {
                    assert_eq!(event["data"]["conversation"]["business_id"], *business);
                    assert!(created.contains(&str_of(&event["conversation_id"])), "{event}");
                }
                let of = |kind: &str| -> Vec<&Value> {
                    seen.iter().filter(|e| e["type"] == kind).collect()
                };
                let seen_created: BTreeSet<String> = of("conversation.created")
                    .iter()
                    .map(|e| str_of(&e["conversation_id"]))
                    .collect();
                assert_eq!(&seen_created, created);
                assert_eq!(of("conversation.created").len(), created.len());
                let seen_messages: BTreeSet<String> = of("message.created")
                    .iter()
                    .map(|e| str_of(&e["data"]["message"]["id"]))
                    .collect();
                assert_eq!(&seen_messages, messages);
                assert_eq!(of("message.created").len(), messages.len());
                assert_eq!(of("conversation.updated").len(), *patches);
                // What the reader followed is the log as it stands.
                assert_eq!(all_after(&app, business, 0), seen);
            }
        });
    };

    listing_then_following_the_feed_misses_nothing => |env: TestEnv| async move {
        let app = env.serve();
        let mut all_ids: Vec<String> =
            (0..12).map(|_| str_of(&create_conversation(&app, BUSINESS, true)["id"])).collect();
        let stop = AtomicBool::new(false);
        let (copy, first_last_event_id, created_meanwhile) = std::thread::scope(|s| {
            let writers: Vec<_> = (0..3)
                .map(|w| {
                    let (app, stop, known) = (&app, &stop, all_ids.clone());
                    s.spawn(move || {
                        let mut known = known;
                        let mut created = Vec::new();
                        let mut i = w;
                        while !stop.load(Ordering::SeqCst) && i < 200 {
                            let id = known[(i * 7) % known.len()].clone();
                            match i % 5 {
                                0 => { say_in(app, BUSINESS, &id, "agent"); }
                                1 => {
                                    let status = ["open", "pending", "resolved"][i % 3];
                                    patch_in(app, BUSINESS, &id, &json!({"status": status}));
                                }
                                2 => {
                                    let agent = if i % 2 == 0 { json!(random_uuid()) } else { Value::Null };
                                    patch_in(app, BUSINESS, &id, &json!({"assignee_id": agent}));
                                }
                                3 => { say_in(app, BUSINESS, &id, "customer"); }
                                _ => {
                                    let c = str_of(&create_conversation(app, BUSINESS, i % 2 == 0)["id"]);
                                    known.push(c.clone());
                                    created.push(c);
                                }
                            }
                            i += 3;
                        }
                        created
                    })
                })
                .collect();
            // The reader pages through the list (pages of 5) while they write.
            std::thread::sleep(Duration::from_millis(100));
            let mut copy: BTreeMap<String, Value> = BTreeMap::new();
            let mut cursor: Option<String> = None;
            let mut first_last_event_id = None;
            let mut pages = 0;
            loop {
                let path = match &cursor {
                    Some(c) => format!("{CONVERSATIONS}?limit=5&cursor={c}"),
                    None => format!("{CONVERSATIONS}?limit=5"),
                };
                let reply = app.get_as(&path, &token_for(BUSINESS));
                assert_eq!(reply.status, 200, "{}", text(&reply));
                let page = reply.json();
                pages += 1;
                first_last_event_id.get_or_insert(page["last_event_id"].as_i64().unwrap());
                for item in page["data"].as_array().unwrap() {
                    copy.insert(str_of(&item["id"]), item.clone());
                }
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
                std::thread::sleep(Duration::from_millis(60));
            }
            assert!(pages >= 2, "{pages} pages");
            std::thread::sleep(Duration::from_millis(200));
            stop.store(true, Ordering::SeqCst);
            let created: Vec<String> =
                writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
            (copy, first_last_event_id.unwrap(), created)
        });
        all_ids.extend(created_meanwhile);
        let events = all_after(&app, BUSINESS, first_last_event_id);
        assert!(!events.is_empty(), "the writers wrote during the listing");
        let mut copy = copy;
        for (expected_id, event) in (first_last_event_id + 1..).zip(&events) {
            assert_eq!(event["id"], expected_id);
            copy.insert(str_of(&event["conversation_id"]), event["data"]["conversation"].clone());
        }
        assert_eq!(
            copy.keys().cloned().collect::<BTreeSet<_>>(),
            all_ids.iter().cloned().collect::<BTreeSet<_>>(),
            "every conversation is in the copy"
        );
        for id in &all_ids {
            let now = get_conversation(&app, BUSINESS, id);
            let kept = &copy[id];
            for field in ["status", "assignee_id", "updated_at", "first_response_at"] {
                assert_eq!(kept[field], now[field], "{id}: {field}");
            }
            let messages = now["messages"].as_array().unwrap();
            assert_eq!(kept["message_count"], messages.len(), "{id}");
            assert_eq!(kept["last_message"], messages.last().cloned().unwrap_or(Value::Null));
        }
    };

    a_stream_delivers_within_a_second_and_resumes_without_loss => |env: TestEnv| async move {
        let app = env.serve();
        let token = token_for(BUSINESS);
        let id = changes(&app, BUSINESS, 2); // 1, 2
        let stream = Stream::open(&app, STREAM, &[("authorization", &bearer(&token))]);
        assert!(stream.head.to_ascii_lowercase().contains("cache-control: no-store"), "{}", stream.head);
        // From the start: what is there already.
        let first = stream.events(2, Duration::from_secs(2));
        assert_eq!(first.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2]);
        let feed_events = all_after(&app, BUSINESS, 0);
        for ((id, event, data), expected) in first.iter().zip(&feed_events) {
            assert_eq!(data, expected, "the stream's data is the feed's event");
            assert_eq!(event, expected["type"].as_str().unwrap());
            assert_eq!(*id, expected["id"].as_i64().unwrap());
        }
        // A write reaches the open stream within a second.
        for n in 3..=5 {
            let message = say_in(&app, BUSINESS, &id, "agent");
            let written = Instant::now();
            let got = stream.events(1, Duration::from_secs(1));
            assert!(written.elapsed() < Duration::from_secs(1));
            assert_eq!(got[0].0, n);
            assert_eq!(got[0].1, "message.created");
            assert_eq!(got[0].2["data"]["message"], message);
        }
        // Another business's write never shows.
        create_conversation(&app, OTHER_BUSINESS, true);
        stream.quiet(Duration::from_millis(300));
        drop(stream);
        // Written while disconnected.
        for _ in 0..3 {
            say_in(&app, BUSINESS, &id, "agent"); // 6, 7, 8
        }
        let stream = Stream::open(
            &app,
            STREAM,
            &[("authorization", &bearer(&token)), ("last-event-id", "5")],
        );
        let resumed = stream.events(3, Duration::from_secs(2));
        assert_eq!(resumed.iter().map(|e| e.0).collect::<Vec<_>>(), [6, 7, 8]);
        say_in(&app, BUSINESS, &id, "agent"); // 9
        assert_eq!(stream.events(1, Duration::from_secs(1))[0].0, 9);
        stream.quiet(Duration::from_millis(300));
        drop(stream);
        // `after` when there is no Last-Event-ID; Last-Event-ID wins over it.
        let stream = Stream::open(&app, &format!("{STREAM}?after=7"), &[("authorization", &bearer(&token))]);
        assert_eq!(stream.events(2, Duration::from_secs(2)).iter().map(|e| e.0).collect::<Vec<_>>(), [8, 9]);
        stream.quiet(Duration::from_millis(200));
        let stream = Stream::open(
            &app,
            &format!("{STREAM}?after=2"),
            &[("authorization", &bearer(&token)), ("last-event-id", "8")],
        );
        assert_eq!(stream.events(1, Duration::from_secs(2))[0].0, 9);
        stream.quiet(Duration::from_millis(200));
        let reply = app.get(STREAM, &[("authorization", &bearer(&token)), ("last-event-id", "x")]);
        reply.problem(400);
    };

    the_stream_takes_the_token_from_the_query_and_checks_scopes => |env: TestEnv| async move {
        let app = env.serve();
        changes(&app, BUSINESS, 1);
        let token = token_for(BUSINESS);
        let stream = Stream::open(&app, &format!("{STREAM}?access_token={token}"), &[]);
        assert_eq!(stream.events(1, Duration::from_secs(2))[0].0, 1);
        changes(&app, BUSINESS, 1);
        assert_eq!(stream.events(1, Duration::from_secs(1))[0].0, 2);
        drop(stream);
        // Unauthenticated: 401, with a bad query token too.
        assert_eq!(app.get(STREAM, &[]).problem(401)["type"], "/problems/unauthorized");
        let forged = sign(&json!({"alg": "HS256"}), &claims_for(BUSINESS), "another-secret-of-enough-length-0123456789");
        app.get(&format!("{STREAM}?access_token={forged}"), &[]).problem(401);
        assert_eq!(app.get(EVENTS, &[]).problem(401)["type"], "/problems/unauthorized");
        // The query token is for the stream only.
        app.get(&format!("{EVENTS}?access_token={token}"), &[]).problem(401);
        // A write-only token may not read events: 403 on the feed and the stream.
        let write_only = token_with_scope(BUSINESS, "conversations:write");
        assert_insufficient_scope(&app.get_as(EVENTS, &write_only));
        assert_insufficient_scope(&app.get_as(&format!("{EVENTS}?wait=5"), &write_only));
        assert_insufficient_scope(&app.get_as(STREAM, &write_only));
        assert_insufficient_scope(&app.get(&format!("{STREAM}?access_token={write_only}"), &[]));
        // Read-only is enough (no scope claim means conversations:read).
        let read_only = sign(&json!({"alg": "HS256"}), &claims_for(BUSINESS), SECRET);
        assert_eq!(feed(&app, BUSINESS, "").0.len(), 2);
        assert_eq!(app.get_as(EVENTS, &read_only).status, 200);
    };

    an_expiring_token_ends_the_stream => |env: TestEnv| async move {
        let app = env.serve();
        let id = changes(&app, BUSINESS, 1);
        let mut claims = claims_for(BUSINESS);
        claims["exp"] = json!(support::now() + 3);
        let token = sign(&json!({"alg": "HS256"}), &claims, SECRET);
        let opened = Instant::now();
        let stream = Stream::open(&app, STREAM, &[("authorization", &bearer(&token))]);
        assert_eq!(stream.events(1, Duration::from_secs(2))[0].0, 1);
        say_in(&app, BUSINESS, &id, "agent");
        assert_eq!(stream.events(1, Duration::from_secs(1))[0].0, 2);
        // The connection closes at expiry (within a second or so of `exp`).
        let ended = loop {
            match stream.next(Duration::from_secs(8)) {
                Some(Sse::End) => break opened.elapsed(),
                Some(Sse::Comment(_)) => {}
                other => panic!("expected the end, got {other:?}"),
            }
        };
        assert!(
            ended >= Duration::from_millis(1500) && ended < Duration::from_millis(5000),
            "ended after {ended:?}"
        );
        // The client reconnects with a new token and its Last-Event-ID: nothing lost.
        say_in(&app, BUSINESS, &id, "agent");
        let stream = Stream::open(
            &app,
            STREAM,
            &[("authorization", &bearer(&token_for(BUSINESS))), ("last-event-id", "2")],
        );
        assert_eq!(stream.events(1, Duration::from_secs(2))[0].0, 3);
    };

    the_stream_cap_answers_503_beyond => |env: TestEnv| async move {
        let app = env.serve_with(&[("PINGBACK__EVENTS__MAX_STREAMS", "1")]);
        let token = token_for(BUSINESS);
        let first = Stream::open(&app, STREAM, &[("authorization", &bearer(&token))]);
        let refused = app.get_as(STREAM, &token);
        assert_eq!(refused.problem(503)["type"], "/problems/unavailable");
        assert!(
            refused.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok()),
            "Retry-After: {:?}",
            refused.header("retry-after")
        );
        // The feed is not a stream: still served.
        assert_eq!(app.get_as(EVENTS, &token).status, 200);
        // A closed stream frees its place promptly (not only when the next keep-alive
        // finds the connection gone, up to 15 s later).
        drop(first);
        let closed = Instant::now();
        let freed = loop {
            let reply = app.get(
                STREAM,
                &[("authorization", &bearer(&token_with_short_life(BUSINESS, 1)))],
            );
            if reply.status == 200 {
                break closed.elapsed();
            }
            assert_eq!(reply.status, 503, "{}", text(&reply));
            // Two keep-alive periods at most: the first write after the disconnect
            // still succeeds, the second fails and drops the stream.
            assert!(
                closed.elapsed() < Duration::from_secs(8),
                "a disconnected stream still holds its place 8 s after the client closed it"
            );
            std::thread::sleep(Duration::from_millis(250));
        };
        assert!(
            freed < Duration::from_secs(8),
            "a disconnected stream held its place for {freed:?} after the client closed it"
        );
    };

    sigterm_ends_open_streams_and_the_server_exits_promptly => |env: TestEnv| async move {
        let app = env.serve();
        let id = changes(&app, BUSINESS, 1);
        let stream = Stream::open(&app, STREAM, &[("authorization", &bearer(&token_for(BUSINESS)))]);
        assert_eq!(stream.events(1, Duration::from_secs(2))[0].0, 1);
        say_in(&app, BUSINESS, &id, "agent");
        let started = Instant::now();
        let (status, logs) = app.terminate();
        let took = started.elapsed();
        assert!(status.success(), "exit {status}: {logs}");
        assert!(took < Duration::from_secs(10), "exited after {took:?}: {logs}");
        // The stream got the events up to the end, then ended.
        let mut rest = Vec::new();
        loop {
            match stream.next(Duration::from_secs(5)) {
                Some(Sse::Event { id, .. }) => rest.push(id),
                Some(Sse::Comment(_)) => {}
                Some(Sse::End) => break,
                None => panic!("the stream did not end"),
            }
        }
        assert_eq!(rest, [2]);
    };

    an_import_emits_one_event_per_conversation => |env: TestEnv| async move {
        let conversation = |id: &str, business: &str, messages: &[&str]| {
            json!({
                "id": id, "business_id": business, "customer_id": null, "assignee_id": null,
                "status": "open", "channel_type": "email", "channel_id": null,
                "created_at": "2024-03-01T09:00:00Z", "updated_at": "2024-03-01T09:00:00Z",
                "first_response_at": null, "customer": null,
                "messages": messages.iter().map(|mid| json!({
                    "id": mid, "conversation_id": id, "sender_type": "customer", "sender_id": null,
                    "content": "imported", "attachments": [], "created_at": "2024-03-01T09:00:00Z"
                })).collect::<Vec<_>>()
            })
        };
        let c1 = "10000000-0000-4000-8000-000000000001";
        let c2 = "10000000-0000-4000-8000-000000000002";
        let c3 = "10000000-0000-4000-8000-000000000003";
        let m = ["20000000-0000-4000-8000-000000000001", "20000000-0000-4000-8000-000000000002", "20000000-0000-4000-8000-000000000003"];
        env.import(&json!([
            conversation(c1, BUSINESS, &m[..2]),
            conversation(c2, OTHER_BUSINESS, &m[2..]),
            conversation(c3, BUSINESS, &[]),
        ]));
        let app = env.serve();
        let events = all_after(&app, BUSINESS, 0);
        assert_eq!(types(&events), ["conversation.imported", "conversation.imported"]);
        assert_eq!(ids(&events), [1, 2]);
        assert_eq!(events[0]["conversation_id"], c1);
        assert_eq!(events[0]["data"]["conversation"]["message_count"], 2);
        assert_eq!(events[0]["data"]["conversation"]["last_message"]["id"], m[1]);
        assert_eq!(events[1]["conversation_id"], c3);
        assert_eq!(events[1]["data"]["conversation"]["message_count"], 0);
        let other = all_after(&app, OTHER_BUSINESS, 0);
        assert_eq!(ids(&other), [1]);
        assert_eq!(other[0]["conversation_id"], c2);
        // While serving: an import wakes a long poll and an open stream.
        let stream = Stream::open(
            &app,
            STREAM,
            &[("authorization", &bearer(&token_for(BUSINESS))), ("last-event-id", "2")],
        );
        std::thread::scope(|s| {
            let poll = s.spawn(|| feed(&app, BUSINESS, "after=2&wait=10"));
            std::thread::sleep(Duration::from_millis(300));
            env.import(&json!(conversation(c1, BUSINESS, &m[..1])));
            let (events, _) = poll.join().unwrap();
            assert_eq!(ids(&events), [3]);
            assert_eq!(events[0]["data"]["conversation"]["message_count"], 1);
        });
        let got = stream.events(1, Duration::from_secs(2));
        assert_eq!((got[0].0, got[0].1.as_str()), (3, "conversation.imported"));
        // A failed import (invalid further on in the file) emits nothing.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        let mut bad = conversation(c3, BUSINESS, &[]);
        bad["status"] = json!("nonsense");
        std::fs::write(&path, json!([conversation(c1, BUSINESS, &m[..2]), bad]).to_string()).unwrap();
        let output = env.run(&["import", path.to_str().unwrap()]);
        assert!(!output.status.success());
        // A conflict (a message id of another conversation) neither.
        let path = dir.path().join("conflict.json");
        std::fs::write(&path, conversation(c3, BUSINESS, &m[..1]).to_string()).unwrap();
        let output = env.run(&["import", path.to_str().unwrap()]);
        assert!(!output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        stream.quiet(Duration::from_millis(500));
        assert_eq!(ids(&all_after(&app, BUSINESS, 0)), [1, 2, 3]);
    };

    after_below_the_oldest_kept_event_is_gone => |env: TestEnv| async move {
        let app = env.serve();
        for _ in 0..4 {
            create_conversation(&app, BUSINESS, false); // 1..4
        }
        drop(app);
        // Events 1 and 2 occurred long ago; `serve` prunes at start.
        let database = env.database.as_ref().unwrap();
        let old = if database.is_postgres() { "'2000-01-01T00:00:00Z'" } else { "946684800000000" };
        database
            .execute(&format!("UPDATE events SET occurred_at = {old} WHERE id <= 2"))
            .await;
        let app = env.serve_with(&[("PINGBACK__EVENTS__RETENTION_DAYS", "1")]);
        let token = token_for(BUSINESS);
        let deadline = Instant::now() + Duration::from_secs(5);
        let gone = loop {
            let reply = app.get_as(&format!("{EVENTS}?after=0"), &token);
            if reply.status == 410 || Instant::now() > deadline {
                break reply;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(gone.problem(410)["type"], "/problems/gone");
        assert_eq!(app.get_as(&format!("{EVENTS}?after=1&wait=2"), &token).problem(410)["type"], "/problems/gone");
        // The oldest kept is 3: from 2 on, nothing is missing.
        assert_eq!(ids(&feed(&app, BUSINESS, "after=2").0), [3, 4]);
        assert_eq!(ids(&feed(&app, BUSINESS, "after=3").0), [4]);
        let stream_gone = app.get(&format!("{STREAM}?after=1"), &[("authorization", &bearer(&token))]);
        stream_gone.problem(410);
        let stream_gone = app.get(STREAM, &[("authorization", &bearer(&token)), ("last-event-id", "0")]);
        stream_gone.problem(410);
        let stream = Stream::open(&app, &format!("{STREAM}?after=2"), &[("authorization", &bearer(&token))]);
        assert_eq!(stream.events(2, Duration::from_secs(2)).iter().map(|e| e.0).collect::<Vec<_>>(), [3, 4]);
        // A new business was never pruned: from 0 it is fine.
        assert!(feed(&app, OTHER_BUSINESS, "after=0").0.is_empty());
    };
}

/// A token for `business` that expires in `seconds`.
fn token_with_short_life(business: &str, seconds: i64) -> String {
    let mut claims = claims_for(business);
    claims["exp"] = json!(support::now() + seconds);
    sign(&json!({"alg": "HS256"}), &claims, SECRET)
}

/// A `: keep-alive` comment at least every 15 s on a quiet stream (PostgreSQL only: it
/// takes 15 s, and the stream code is the same on both backends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_stream_gets_keep_alive_comments() {
    let env = TestEnv::new(Backend::Postgres).await;
    let app = env.serve();
    let stream = Stream::open(
        &app,
        STREAM,
        &[("authorization", &bearer(&token_for(BUSINESS)))],
    );
    let opened = Instant::now();
    match stream.next(Duration::from_secs(17)) {
        Some(Sse::Comment(comment)) => assert_eq!(comment, "keep-alive"),
        other => panic!("expected a keep-alive comment, got {other:?}"),
    }
    let after = opened.elapsed();
    assert!(after <= Duration::from_millis(15_500), "{after:?}");
    // Still open: an event arrives after it.
    changes(&app, BUSINESS, 1);
    assert_eq!(stream.events(1, Duration::from_secs(1))[0].0, 1);
}
