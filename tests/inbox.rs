//! Black-box tests of the inbox, `GET /api/v1/conversations`: filters, order, paging
//! by `next_cursor` and `Link`, cursors bound to their filters, order and business,
//! parameter errors, scopes and the tenant boundary — the real binary, real HTTP,
//! PostgreSQL and SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashSet;

use serde_json::{Value, json};
use support::{
    App, Backend, CONVERSATIONS, Reply, TestEnv, str_of, text, token_with_scope, write_token_for,
};

const BUSINESS: &str = "b2c3d4e5-f6a7-4901-bcde-f12345678901";
const OTHER_BUSINESS: &str = "0d0e0f10-1112-4314-9516-171819202122";
const AGENT: &str = "a1b2c3d4-e5f6-4890-abcd-ef1234567890";
const OTHER_AGENT: &str = "a1b2c3d4-e5f6-4890-abcd-ef1234567891";

/// An RFC 3339 UTC timestamp as a key that sorts like the instant it names.
fn instant(value: &Value) -> String {
    let ts = str_of(value);
    let body = ts
        .strip_suffix('Z')
        .unwrap_or_else(|| panic!("not UTC: {ts}"));
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    assert_eq!(whole.len(), 19, "{ts}");
    format!("{whole}.{fraction:0<6}")
}

fn read_token(business: &str) -> String {
    token_with_scope(business, "conversations:read")
}

/// Creates a conversation of `business`, insisting on 201.
fn create(app: &App, business: &str, body: &Value) -> Value {
    let reply = app.send_json("POST", CONVERSATIONS, &write_token_for(business), &[], body);
    assert_eq!(reply.status, 201, "{}", text(&reply));
    reply.json()
}

fn patch(app: &App, business: &str, id: &str, body: &Value) {
    let reply = app.send_json(
        "PATCH",
        &format!("{CONVERSATIONS}/{id}"),
        &write_token_for(business),
        &[],
        body,
    );
    assert_eq!(reply.status, 200, "{}", text(&reply));
}

fn post_message(app: &App, business: &str, id: &str, body: &Value) {
    let reply = app.send_json(
        "POST",
        &format!("{CONVERSATIONS}/{id}/messages"),
        &write_token_for(business),
        &[],
        body,
    );
    assert_eq!(reply.status, 201, "{}", text(&reply));
}

fn simple(channel: &str) -> Value {
    json!({"channel_type": channel})
}

/// `GET /api/v1/conversations?{query}` with `token`.
fn list(app: &App, token: &str, query: &str) -> Reply {
    let path = if query.is_empty() {
        CONVERSATIONS.to_owned()
    } else {
        format!("{CONVERSATIONS}?{query}")
    };
    app.get_as(&path, token)
}

/// A 200 page: its items, its `next_cursor`, its `Link` header.
struct Page {
    data: Vec<Value>,
    next_cursor: Option<String>,
    link: Option<String>,
}

fn page(reply: &Reply) -> Page {
    assert_eq!(reply.status, 200, "{}", text(reply));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    let keys: HashSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        keys.contains("data") && keys.contains("next_cursor"),
        "{body}"
    );
    let next_cursor = match &body["next_cursor"] {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => panic!("next_cursor: {other}"),
    };
    let link = reply.header("link").map(str::to_owned);
    assert_eq!(
        link.is_some(),
        next_cursor.is_some(),
        "a Link exactly when there is a next cursor: {link:?}"
    );
    Page {
        data: body["data"].as_array().unwrap().clone(),
        next_cursor,
        link,
    }
}

fn get_page(app: &App, token: &str, query: &str) -> Page {
    page(&list(app, token, query))
}

fn ids(data: &[Value]) -> Vec<String> {
    data.iter().map(|c| str_of(&c["id"])).collect()
}

/// Decodes `application/x-www-form-urlencoded`.
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The target of `Link: <target>; rel="next"`.
fn link_target(link: &str) -> String {
    let (target, params) = link
        .strip_prefix('<')
        .and_then(|rest| rest.split_once('>'))
        .unwrap_or_else(|| panic!("Link: {link}"));
    let params: Vec<&str> = params.split(';').map(str::trim).collect();
    assert!(params.contains(&"rel=\"next\""), "Link: {link}");
    target.to_owned()
}

/// Asserts a 400 `/problems/bad-request` whose detail names `name`.
fn assert_names(reply: &Reply, name: &str, what: &str) {
    let body = reply.problem(400);
    assert_eq!(body["type"], "/problems/bad-request", "{what}: {body}");
    let detail = str_of(&body["detail"]);
    assert!(
        detail.contains(&format!("`{name}`")),
        "{what}: the detail does not name `{name}`: {detail}"
    );
}

/// The item of a listing against the full read of the same conversation: the same
/// fields but `messages`, plus its count and its latest message.
fn assert_item_agrees(app: &App, business: &str, item: &Value) {
    let id = str_of(&item["id"]);
    let reply = app.get_as(&format!("{CONVERSATIONS}/{id}"), &read_token(business));
    assert_eq!(reply.status, 200, "{}", text(&reply));
    let full = reply.json();
    let messages = full["messages"].as_array().unwrap();
    let mut expected = full.as_object().unwrap().clone();
    expected.remove("messages");
    expected.insert("message_count".into(), json!(messages.len()));
    expected.insert(
        "last_message".into(),
        messages.last().cloned().unwrap_or(Value::Null),
    );
    assert_eq!(item, &Value::Object(expected), "item {id}");
}

/// Does `item` match the filters of `query` (the parameters this suite uses)?
fn matches(item: &Value, query: &[(&str, &str)]) -> bool {
    // Repeated `status` parameters add up.
    let statuses: Vec<&str> = query
        .iter()
        .filter(|(name, _)| *name == "status")
        .flat_map(|(_, value)| value.split(','))
        .collect();
    query.iter().all(|(name, value)| match *name {
        "status" => statuses.iter().any(|s| item["status"] == *s),
        "assignee_id" if *value == "none" => item["assignee_id"].is_null(),
        "assignee_id" | "customer_id" | "channel_type" => item[*name] == *value,
        "updated_after" => instant(&item["updated_at"]) > instant(&json!(value)),
        "updated_before" => instant(&item["updated_at"]) < instant(&json!(value)),
        _ => true,
    })
}

fn query_string(query: &[(&str, &str)]) -> String {
    query
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace('+', "%2B").replace(':', "%3A")))
        .collect::<Vec<_>>()
        .join("&")
}

/// Follows `Link` from `first` to the last page; returns every item in order, and the
/// number of pages.
fn follow_links(app: &App, token: &str, first: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut reply = list(app, token, first);
    let mut pages = 0;
    loop {
        let current = page(&reply);
        pages += 1;
        assert!(pages < 1_000, "paging does not end");
        items.extend(current.data);
        match current.link {
            Some(link) => reply = app.get_as(&link_target(&link), token),
            None => return (items, pages),
        }
    }
}

/// Conversations of every kind in `BUSINESS` (and a few in `OTHER_BUSINESS`, alike);
/// returns the id of the customer several of them share.
fn seed(app: &App) -> String {
    let a = create(
        app,
        BUSINESS,
        &json!({"channel_type": "widget", "assignee_id": AGENT,
                "customer": {"name": "Alex", "email": null, "phone": null, "external_id": "crm-a"},
                "message": {"sender_type": "customer", "sender_id": null, "content": "hello"}}),
    );
    let alex = str_of(&a["customer_id"]);
    create(
        app,
        BUSINESS,
        &json!({"channel_type": "email", "status": "pending", "customer_id": alex}),
    );
    create(
        app,
        BUSINESS,
        &json!({"channel_type": "sms", "assignee_id": OTHER_AGENT,
                "customer": {"name": "Bo", "email": null, "phone": null, "external_id": "crm-b"}}),
    );
    create(
        app,
        BUSINESS,
        &json!({"channel_type": "widget", "status": "pending", "assignee_id": AGENT}),
    );
    let e = create(app, BUSINESS, &simple("email"));
    patch(
        app,
        BUSINESS,
        &str_of(&e["id"]),
        &json!({"status": "resolved", "assignee_id": AGENT}),
    );
    let f = create(
        app,
        BUSINESS,
        &json!({"channel_type": "widget", "customer_id": alex}),
    );
    patch(
        app,
        BUSINESS,
        &str_of(&f["id"]),
        &json!({"status": "closed"}),
    );
    create(
        app,
        BUSINESS,
        &json!({"channel_type": "email", "assignee_id": AGENT, "customer_id": alex,
                "message": {"sender_type": "agent", "sender_id": AGENT, "content": "hi",
                            "attachments": [
                                {"file_name": "b.png", "content_type": "image/png", "byte_size": 1, "url": "https://files.example/b.png"},
                                {"file_name": "a.png", "content_type": "image/png", "byte_size": 2, "url": "https://files.example/a.png"}]}}),
    );
    // The first one moves to the top.
    post_message(
        app,
        BUSINESS,
        &str_of(&a["id"]),
        &json!({"sender_type": "agent", "sender_id": AGENT, "content": "on it",
                "attachments": [{"file_name": "z.pdf", "content_type": "application/pdf", "byte_size": 3, "url": "https://files.example/z.pdf"}]}),
    );
    // Another business, alike: never listed for ours.
    for channel in ["widget", "email", "sms"] {
        create(
            app,
            OTHER_BUSINESS,
            &json!({"channel_type": channel, "assignee_id": AGENT,
                    "customer": {"name": "Alex", "email": null, "phone": null, "external_id": "crm-a"}}),
        );
    }
    alex
}

/// `n` plain conversations of `business`; their ids in creation order.
fn many(app: &App, business: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let channel = if i % 2 == 0 { "widget" } else { "email" };
            str_of(&create(app, business, &simple(channel))["id"])
        })
        .collect()
}

on_both_backends! {
    each_filter_alone_and_combined => |env: TestEnv| async move {
        let app = env.serve();
        let alex = seed(&app);
        let token = read_token(BUSINESS);
        let all = get_page(&app, &token, "");
        assert_eq!(all.data.len(), 7);
        assert!(all.next_cursor.is_none());
        // Newest first, ties by id.
        for pair in all.data.windows(2) {
            let key = |c: &Value| (instant(&c["updated_at"]), str_of(&c["id"]));
            assert!(key(&pair[0]) > key(&pair[1]), "{} then {}", pair[0], pair[1]);
        }
        for item in &all.data {
            assert_eq!(item["business_id"], BUSINESS);
            assert!(item.get("messages").is_none(), "{item}");
            assert_item_agrees(&app, BUSINESS, item);
        }
        // The conversation with a message posted last leads, its last message shown.
        assert_eq!(all.data[0]["message_count"], 2);
        assert_eq!(all.data[0]["last_message"]["content"], "on it");
        assert_eq!(all.data[0]["last_message"]["attachments"][0]["file_name"], "z.pdf");

        let middle = str_of(&all.data[3]["updated_at"]);
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![("status", "open")],
            vec![("status", "open,pending")],
            vec![("status", "resolved"), ("status", "closed")],
            vec![("assignee_id", AGENT)],
            vec![("assignee_id", "none")],
            vec![("customer_id", &alex)],
            vec![("channel_type", "email")],
            vec![("updated_after", &middle)],
            vec![("updated_before", &middle)],
            vec![("status", "open,pending"), ("assignee_id", AGENT), ("channel_type", "widget")],
            vec![("customer_id", &alex), ("status", "open,pending"), ("updated_before", &middle)],
            vec![("assignee_id", "none"), ("channel_type", "email"), ("updated_after", "2000-01-01T00:00:00Z")],
        ];
        for query in &cases {
            let want: Vec<Value> = all.data.iter().filter(|c| matches(c, query)).cloned().collect();
            assert!(!want.is_empty(), "{query:?} selects something");
            assert!(want.len() < all.data.len(), "{query:?} leaves something out");
            let got = get_page(&app, &token, &query_string(query));
            assert_eq!(ids(&got.data), ids(&want), "{query:?}");
            assert_eq!(got.data, want, "{query:?}: the same items");
            // The other order: the same items reversed.
            let mut oldest = query.clone();
            oldest.push(("order", "updated_at"));
            let got = get_page(&app, &token, &query_string(&oldest));
            let mut reversed = ids(&want);
            reversed.reverse();
            assert_eq!(ids(&got.data), reversed, "{oldest:?}");
        }
        // Strict bounds: the item at `middle` itself is in neither.
        let after = get_page(&app, &token, &query_string(&[("updated_after", &middle)]));
        let before = get_page(&app, &token, &query_string(&[("updated_before", &middle)]));
        assert_eq!(after.data.len() + before.data.len(), all.data.len() - 1);
        // The explicit default order is the default.
        let explicit = get_page(&app, &token, "order=-updated_at");
        assert_eq!(ids(&explicit.data), ids(&all.data));
    };

    the_link_header_is_the_next_cursor_with_the_filters_kept => |env: TestEnv| async move {
        let app = env.serve();
        many(&app, BUSINESS, 10);
        let token = read_token(BUSINESS);
        let updated_after = "2000-01-01T00:00:00+00:00";
        let query = [
            ("status", "open"),
            ("channel_type", "widget"),
            ("limit", "2"),
            ("updated_after", updated_after),
            ("order", "-updated_at"),
        ];
        let first = get_page(&app, &token, &query_string(&query));
        assert_eq!(first.data.len(), 2);
        let cursor = first.next_cursor.clone().unwrap();
        let link = first.link.clone().unwrap();
        let target = link_target(&link);
        let (path, link_query) = target.split_once('?').unwrap_or_else(|| panic!("{link}"));
        assert_eq!(path, CONVERSATIONS, "{link}");
        let mut want: Vec<(String, String)> =
            query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        want.push(("cursor".into(), cursor.clone()));
        assert_eq!(pairs(link_query), want, "{link}");
        // Following the link is asking with the cursor and the same filters.
        let by_link = page(&app.get_as(&target, &token));
        let mut with_cursor = query.to_vec();
        with_cursor.push(("cursor", &cursor));
        let by_cursor = get_page(&app, &token, &query_string(&with_cursor));
        assert_eq!(by_link.data, by_cursor.data);
        assert_eq!(by_link.next_cursor, by_cursor.next_cursor);
        assert_eq!(by_link.link, by_cursor.link);
        // The second page's link carries its own cursor, and still the filters.
        let second = pairs(link_target(by_link.link.as_deref().unwrap()).split_once('?').unwrap().1);
        assert_eq!(second.last().unwrap(), &("cursor".to_owned(), by_link.next_cursor.clone().unwrap()));
        assert_eq!(second[..second.len() - 1], want[..want.len() - 1]);
        // Five widget conversations in pages of 2: the third page is the last.
        let (items, pages) = follow_links(&app, &token, &query_string(&query));
        assert_eq!((items.len(), pages), (5, 3));
        assert!(items.iter().all(|c| c["channel_type"] == "widget"));
    };

    paging_sixty_by_link_returns_each_once_in_order => |env: TestEnv| async move {
        let app = env.serve();
        let created = many(&app, BUSINESS, 60);
        many(&app, OTHER_BUSINESS, 5);
        let token = read_token(BUSINESS);
        let whole = get_page(&app, &token, "limit=100");
        assert_eq!(whole.data.len(), 60);
        assert!(whole.next_cursor.is_none());
        let mut newest_first = created.clone();
        newest_first.reverse();
        assert_eq!(ids(&whole.data), newest_first, "newest first (created one after another)");
        for (order, expected) in [("-updated_at", newest_first.clone()), ("updated_at", created.clone())] {
            let (items, pages) = follow_links(&app, &token, &format!("limit=7&order={order}"));
            assert_eq!(pages, 9, "{order}: 8 pages of 7 and one of 4");
            let got = ids(&items);
            assert_eq!(got.iter().collect::<HashSet<_>>().len(), 60, "{order}: each once");
            assert_eq!(got, expected, "{order}: in order");
        }
        // By next_cursor too, changing the page size on the way.
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        for limit in [7, 13, 1, 100].iter().cycle() {
            let query = match &cursor {
                Some(c) => format!("limit={limit}&cursor={c}"),
                None => format!("limit={limit}"),
            };
            let current = get_page(&app, &token, &query);
            got.extend(ids(&current.data));
            match current.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(got, newest_first);
    };

    an_altered_cursor_is_a_400_naming_cursor => |env: TestEnv| async move {
        let app = env.serve();
        many(&app, BUSINESS, 5);
        let token = read_token(BUSINESS);
        let cursor = get_page(&app, &token, "limit=2").next_cursor.unwrap();
        assert!(get_page(&app, &token, &format!("limit=2&cursor={cursor}")).data.len() == 2);
        let chars: Vec<char> = cursor.chars().collect();
        for at in [0, 1, chars.len() / 2, chars.len() - 2, chars.len() - 1] {
            let mut altered = chars.clone();
            altered[at] = if altered[at] == 'A' { 'B' } else { 'A' };
            let altered: String = altered.into_iter().collect();
            assert_ne!(altered, cursor);
            let reply = list(&app, &token, &format!("limit=2&cursor={altered}"));
            assert_names(&reply, "cursor", &format!("character {at} flipped"));
        }
        for garbage in ["", "x", "not-a-cursor", &format!("{cursor}A"), &cursor[1..], &format!("{cursor}%3D")] {
            let reply = list(&app, &token, &format!("limit=2&cursor={garbage}"));
            assert_names(&reply, "cursor", &format!("cursor {garbage:?}"));
        }
    };

    a_cursor_is_bound_to_its_filters_order_and_business_not_its_limit => |env: TestEnv| async move {
        let app = env.serve();
        many(&app, BUSINESS, 6);
        many(&app, OTHER_BUSINESS, 6);
        let token = read_token(BUSINESS);
        let whole = ids(&get_page(&app, &token, "status=open").data);
        let first = get_page(&app, &token, "status=open&limit=2");
        assert_eq!(ids(&first.data), whole[..2]);
        let cursor = first.next_cursor.unwrap();
        for other in [
            "status=pending",
            "status=open,pending",
            "",
            "status=open&assignee_id=none",
            "status=open&channel_type=widget",
            "status=open&customer_id=c2d3e4f5-a6b7-4012-8def-123456789012",
            "status=open&updated_after=2000-01-01T00:00:00Z",
            "status=open&updated_before=2100-01-01T00:00:00Z",
            "status=open&order=updated_at",
        ] {
            let sep = if other.is_empty() { "" } else { "&" };
            let reply = list(&app, &token, &format!("{other}{sep}limit=2&cursor={cursor}"));
            assert_names(&reply, "cursor", other);
        }
        // Another business's token, the same filters: refused, not its own list.
        let reply = list(&app, &read_token(OTHER_BUSINESS), &format!("status=open&limit=2&cursor={cursor}"));
        assert_names(&reply, "cursor", "another business");
        // Another limit works and continues where the page ended.
        let next = get_page(&app, &token, &format!("status=open&limit=3&cursor={cursor}"));
        assert_eq!(ids(&next.data), whole[2..5]);
        // The same filters spelled otherwise are the same filters.
        let same = get_page(&app, &token, &format!("order=-updated_at&status=open,open&limit=4&cursor={cursor}"));
        assert_eq!(ids(&same.data), whole[2..6]);
        assert!(same.next_cursor.is_none());
    };

    every_invalid_parameter_is_a_400_naming_it => |env: TestEnv| async move {
        let app = env.serve();
        many(&app, BUSINESS, 1);
        let token = read_token(BUSINESS);
        for (query, name) in [
            ("status=done", "status"),
            ("status=open,done", "status"),
            ("status=", "status"),
            ("status=OPEN", "status"),
            ("assignee_id=me", "assignee_id"),
            ("assignee_id=", "assignee_id"),
            ("customer_id=42", "customer_id"),
            ("channel_type=", "channel_type"),
            ("updated_after=yesterday", "updated_after"),
            ("updated_before=2024-13-01T00:00:00Z", "updated_before"),
            ("order=x", "order"),
            ("order=-created_at", "order"),
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("limit=-1", "limit"),
            ("limit=ten", "limit"),
            ("limit=1&limit=2", "limit"),
            ("order=updated_at&order=updated_at", "order"),
            ("colour=red", "colour"),
            ("status=open&page=2", "page"),
            ("offset=10", "offset"),
        ] {
            let reply = list(&app, &token, query);
            assert_names(&reply, name, query);
        }
        // The limits themselves are valid.
        for query in ["limit=1", "limit=100", "status=open&status=pending"] {
            get_page(&app, &token, query);
        }
    };

    reading_the_inbox_takes_the_read_scope => |env: TestEnv| async move {
        let app = env.serve();
        many(&app, BUSINESS, 1);
        let write_only = token_with_scope(BUSINESS, "conversations:write");
        let reply = list(&app, &write_only, "");
        let body = reply.problem(403);
        assert_eq!(body["type"], "/problems/forbidden");
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
        assert!(challenge.contains("scope=\"conversations:read\""), "{challenge}");
        let anonymous = app.get(CONVERSATIONS, &[]);
        anonymous.problem(401);
        app.get(&format!("{CONVERSATIONS}?status=open"), &[]).problem(401);
        let bad = app.get(CONVERSATIONS, &[("authorization", "Bearer not-a-token")]);
        bad.problem(401);
        assert_eq!(get_page(&app, &read_token(BUSINESS), "").data.len(), 1);
        assert_eq!(get_page(&app, &write_token_for(BUSINESS), "").data.len(), 1);
    };

    another_business_is_never_listed => |env: TestEnv| async move {
        let app = env.serve();
        let alex = seed(&app);
        let theirs_alex = {
            let theirs = get_page(&app, &read_token(OTHER_BUSINESS), "");
            assert_eq!(theirs.data.len(), 3);
            for item in &theirs.data {
                assert_eq!(item["business_id"], OTHER_BUSINESS);
            }
            str_of(&theirs.data[0]["customer_id"])
        };
        assert_ne!(theirs_alex, alex, "customers belong to a business");
        let token = read_token(BUSINESS);
        for query in [
            String::new(),
            format!("assignee_id={AGENT}"),
            "channel_type=widget".to_owned(),
            "status=open".to_owned(),
            "order=updated_at&limit=2".to_owned(),
        ] {
            let (items, _) = follow_links(&app, &token, &query);
            assert!(!items.is_empty(), "{query}");
            for item in &items {
                assert_eq!(item["business_id"], BUSINESS, "{query}: {item}");
            }
        }
        // Their customer's conversations, asked by us: none.
        let none = get_page(&app, &token, &format!("customer_id={theirs_alex}"));
        assert!(none.data.is_empty() && none.next_cursor.is_none());
        let ours = get_page(&app, &token, &format!("customer_id={alex}"));
        assert_eq!(ours.data.len(), 4);
    };
}
