//! The OpenAPI document cannot drift from the code:
//!
//! - the serializer's bytes are pinned (golden files written before the schema derives
//!   replaced the hand-written serializer);
//! - real bodies (the documentation example and edge cases: every nullable field both
//!   null and not, escapes, unicode, extreme timestamps and sizes) validate against the
//!   generated schema with a strict validator: an object must have exactly the
//!   documented properties, all required; types, formats, patterns, enums and bounds
//!   are checked; a schema keyword the validator does not know fails the test instead
//!   of being skipped;
//! - every documented response of every route is produced by the app and compared with
//!   the document: status, required headers and their schemas, body schema, and for
//!   errors the exact documented example (but the request id);
//! - the served document equals the committed `docs/openapi.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use actix_web::dev::ServiceResponse;
use actix_web::http::{Method, StatusCode, header};
use actix_web::test as web_test;
use pingback_application::{
    MockConversationRepository, MockConversationWriter, RepositoryError, Updated, WriteError,
    Written,
};
use pingback_domain::testing::MessageBuilder;
use regex_automata::dfa::regex::Regex;
use serde_json::{Value, json};

use crate::tests::{authority, call_with, claims, repository_with, token_with};
use crate::{edge_sample, example, metrics, openapi, representation};

const CONVERSATION_PATH: &str = "/api/v1/conversations/{conversation_id}";

fn document() -> Value {
    serde_json::from_str(openapi::json()).unwrap()
}

/// A JSON Schema validator for exactly the subset the document uses, strict where
/// JSON Schema is lenient (see the module comment).
struct Validator<'a> {
    root: &'a Value,
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn as_i128(value: &Value) -> Option<i128> {
    value
        .as_i64()
        .map(i128::from)
        .or_else(|| value.as_u64().map(i128::from))
}

impl Validator<'_> {
    fn resolve(&self, reference: &str) -> &Value {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local references: {reference}"));
        self.root
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling reference {reference}"))
    }

    fn check(&self, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
        let schema = schema
            .as_object()
            .ok_or_else(|| format!("{at}: schema is not an object"))?;
        for (keyword, argument) in schema {
            match keyword.as_str() {
                "description" | "title" | "examples" => {}
                "$ref" => self.check(self.resolve(argument.as_str().unwrap()), value, at)?,
                "type" => {
                    let allowed: Vec<&str> = match argument {
                        Value::String(t) => vec![t.as_str()],
                        Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
                        other => panic!("{at}: bad type {other}"),
                    };
                    let actual = kind(value);
                    let ok = allowed.contains(&actual)
                        || (actual == "integer" && allowed.contains(&"number"));
                    if !ok {
                        return Err(format!("{at}: {actual} where {allowed:?} is documented"));
                    }
                }
                "format" => self.format(argument.as_str().unwrap(), value, at)?,
                "pattern" => {
                    if let Some(s) = value.as_str() {
                        let regex = Regex::new(argument.as_str().unwrap()).unwrap();
                        if !regex.is_match(s) {
                            return Err(format!("{at}: {s:?} does not match {argument}"));
                        }
                    }
                }
                "enum" => {
                    if !argument.as_array().unwrap().contains(value) {
                        return Err(format!("{at}: {value} is not one of {argument}"));
                    }
                }
                "minLength" | "maxLength" => {
                    if let Some(s) = value.as_str() {
                        let len = s.chars().count() as u64;
                        let bound = argument.as_u64().unwrap();
                        if (keyword == "minLength" && len < bound)
                            || (keyword == "maxLength" && len > bound)
                        {
                            return Err(format!("{at}: length {len} breaks {keyword} {bound}"));
                        }
                    }
                }
                "minimum" | "maximum" => {
                    if let (Some(v), Some(bound)) = (as_i128(value), as_i128(argument)) {
                        if (keyword == "minimum" && v < bound)
                            || (keyword == "maximum" && v > bound)
                        {
                            return Err(format!("{at}: {v} breaks {keyword} {bound}"));
                        }
                    } else if value.is_number() {
                        panic!("{at}: non-integer bounds are not supported");
                    }
                }
                "required" => {
                    let documented: BTreeSet<&str> = schema["properties"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .map(String::as_str)
                        .collect();
                    let required: BTreeSet<&str> = argument
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r.as_str().unwrap())
                        .collect();
                    // Response fields are always written (null when absent) and so
                    // required; only a few are documented as optional (a problem's
                    // `errors`, the members of a request body).
                    assert!(
                        required.is_subset(&documented),
                        "{at}: required ⊄ properties"
                    );
                    if let Some(object) = value.as_object() {
                        for name in &required {
                            if !object.contains_key(*name) {
                                return Err(format!("{at}: the required field {name} is missing"));
                            }
                        }
                    }
                }
                "properties" => {
                    if let Some(object) = value.as_object() {
                        let documented: BTreeSet<&str> = argument
                            .as_object()
                            .unwrap()
                            .keys()
                            .map(String::as_str)
                            .collect();
                        let actual: BTreeSet<&str> = object.keys().map(String::as_str).collect();
                        if !actual.is_subset(&documented) {
                            return Err(format!(
                                "{at}: fields {actual:?} where {documented:?} are documented"
                            ));
                        }
                        for (name, property) in argument.as_object().unwrap() {
                            if let Some(field) = object.get(name) {
                                self.check(property, field, &format!("{at}.{name}"))?;
                            }
                        }
                    }
                }
                "items" => {
                    if let Some(items) = value.as_array() {
                        for (i, item) in items.iter().enumerate() {
                            self.check(argument, item, &format!("{at}[{i}]"))?;
                        }
                    }
                }
                "oneOf" => {
                    let branches = argument.as_array().unwrap();
                    let matching = branches
                        .iter()
                        .filter(|branch| self.check(branch, value, at).is_ok())
                        .count();
                    if matching != 1 {
                        let errors: Vec<String> = branches
                            .iter()
                            .filter_map(|b| self.check(b, value, at).err())
                            .collect();
                        return Err(format!("{at}: {matching} oneOf branches match: {errors:?}"));
                    }
                }
                other => panic!("{at}: the validator does not know the keyword {other:?}"),
            }
        }
        Ok(())
    }

    fn format(&self, format: &str, value: &Value, at: &str) -> Result<(), String> {
        let ok = match (format, value) {
            ("uuid", Value::String(s)) => uuid::Uuid::try_parse(s).is_ok(),
            ("date-time", Value::String(s)) => pingback_domain::Timestamp::parse_rfc3339(s).is_ok(),
            ("int32", v) => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            ("int64", v) => v.is_i64(),
            (_, Value::String(_) | Value::Number(_)) => {
                panic!("{at}: the validator does not know the format {format:?}")
            }
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("{at}: {value} is not a {format}"))
        }
    }

    fn schema(&self, name: &str) -> Value {
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    fn assert_valid(&self, schema: &Value, value: &Value, what: &str) {
        if let Err(error) = self.check(schema, value, "$") {
            panic!("{what} does not conform to the document: {error}\n{value:#}");
        }
    }
}

fn samples() -> Vec<(&'static str, pingback_domain::Conversation)> {
    vec![
        (
            "the documentation example",
            example::conversation().unwrap(),
        ),
        ("a bare conversation", edge_sample::bare()),
        ("an anonymous customer", edge_sample::anonymous_customer()),
    ]
}

#[test]
fn the_body_is_byte_for_byte_what_the_hand_written_serializer_wrote() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    let example_body = std::fs::read(format!("{fixtures}example-conversation.json")).unwrap();
    let edge = std::fs::read_to_string(format!("{fixtures}edge-conversations.jsonl")).unwrap();
    let expected: Vec<Vec<u8>> = std::iter::once(example_body)
        .chain(edge.lines().map(|l| l.as_bytes().to_vec()))
        .collect();
    for ((name, conversation), expected) in samples().into_iter().zip(expected) {
        let body = representation::to_json(&conversation).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            String::from_utf8(expected).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn the_body_writer_writes_what_serde_writes_of_the_documented_type() {
    for (name, conversation) in samples() {
        assert_eq!(
            String::from_utf8(representation::to_json(&conversation).unwrap()).unwrap(),
            String::from_utf8(representation::to_json_by_serde(&conversation)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn real_bodies_conform_to_the_documented_schema() {
    let document = document();
    let validator = Validator { root: &document };
    let schema = validator.schema("Conversation");
    for (name, conversation) in samples() {
        let body: Value =
            serde_json::from_slice(&representation::to_json(&conversation).unwrap()).unwrap();
        validator.assert_valid(&schema, &body, name);
    }
    // The schema really is the strict one: a field too many or too few is caught.
    let mut body: Value = serde_json::from_slice(
        &representation::to_json(&example::conversation().unwrap()).unwrap(),
    )
    .unwrap();
    body["messages"][0]["extra"] = json!(1);
    assert!(validator.check(&schema, &body, "$").is_err());
    body["messages"][0].as_object_mut().unwrap().remove("extra");
    body["customer"].as_object_mut().unwrap().remove("phone");
    assert!(validator.check(&schema, &body, "$").is_err());
    body["customer"]["phone"] = Value::Null;
    body["id"] = json!("C3D4E5F6-A7B8-9012-CDEF-123456789012");
    assert!(
        validator.check(&schema, &body, "$").is_err(),
        "lower-case ids"
    );
    body["id"] = json!("c3d4e5f6-a7b8-9012-cdef-123456789012");
    body["created_at"] = json!("2024-03-01T09:00:00.500Z");
    assert!(
        validator.check(&schema, &body, "$").is_err(),
        "no trailing zeros"
    );
    body["created_at"] = json!("2024-03-01T09:00:00Z");
    body["status"] = json!("archived");
    assert!(
        validator.check(&schema, &body, "$").is_err(),
        "known statuses"
    );
    body["status"] = json!("open");
    validator.assert_valid(&schema, &body, "the restored example");
}

#[test]
fn the_documented_enums_are_the_domains() {
    let document = document();
    let schemas = &document["components"]["schemas"];
    let statuses: Vec<&str> = pingback_domain::Status::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(schemas["Status"]["enum"], json!(statuses));
    let senders: Vec<&str> = pingback_domain::SenderType::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(schemas["SenderType"]["enum"], json!(senders));
}

/// Every example the document holds (responses, parameters, schemas, headers)
/// validates against the schema next to it.
#[test]
fn the_documents_examples_are_valid() {
    let document = document();
    let validator = Validator { root: &document };
    let mut checked = 0;
    let mut stack = vec![(String::from("#"), &document)];
    while let Some((at, node)) = stack.pop() {
        let Some(object) = node.as_object() else {
            if let Some(items) = node.as_array() {
                stack.extend(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (format!("{at}/{i}"), v)),
                );
            }
            continue;
        };
        if let (Some(schema), Some(example)) = (object.get("schema"), object.get("example")) {
            validator.assert_valid(schema, example, &format!("the example at {at}"));
            checked += 1;
        }
        if let Some(examples) = object.get("examples").and_then(Value::as_array) {
            for example in examples {
                validator.assert_valid(node, example, &format!("an example at {at}"));
                checked += 1;
            }
        }
        stack.extend(object.iter().map(|(k, v)| (format!("{at}/{k}"), v)));
    }
    assert!(checked > 30, "only {checked} examples checked");
}

fn bearer() -> (header::HeaderName, String) {
    (
        header::AUTHORIZATION,
        format!("Bearer {}", token_with(&claims())),
    )
}

fn found() -> MockConversationRepository {
    // As read from storage: with the revision that validates it.
    repository_with(Some(
        example::conversation()
            .unwrap()
            .read_at(pingback_domain::Revision::new(1, Some(1))),
    ))
}

fn failing(error: fn() -> RepositoryError) -> MockConversationRepository {
    let mut repository = MockConversationRepository::new();
    repository
        .expect_find_conversation()
        .returning(move |_, _| Err(error()));
    repository
        .expect_list_conversations()
        .returning(move |_, _| Err(error()));
    repository.expect_ping().returning(move || Err(error()));
    repository
}

fn concrete(path: &str) -> String {
    path.replace("{conversation_id}", example::CONVERSATION)
        .replace("{message_id}", MESSAGE)
        .replace("{webhook_id}", WEBHOOK)
}

/// The example webhook endpoint's id.
const WEBHOOK: &str = "0193f1c2-7a8b-7c9d-8e0f-1a2b3c4d5e6f";

fn manage_bearer() -> (header::HeaderName, String) {
    let mut claims = claims();
    claims["scope"] = json!("webhooks:manage");
    (
        header::AUTHORIZATION,
        format!("Bearer {}", token_with(&claims)),
    )
}

/// An endpoint of `business` that has failed once.
fn example_endpoint(
    business: pingback_domain::BusinessId,
    id: pingback_domain::WebhookId,
) -> pingback_domain::WebhookEndpoint {
    let at = pingback_domain::Timestamp::parse_rfc3339("2024-03-01T09:00:00Z").unwrap();
    let mut endpoint = pingback_domain::WebhookEndpoint::register(
        id,
        business,
        pingback_domain::WebhookUrl::parse("https://hooks.example.com/pingback", false).unwrap(),
        pingback_domain::EventTypes::ALL,
        at,
        41,
    );
    endpoint.delivery.failed(
        at.plus_micros(1_000_000),
        "the endpoint answered HTTP 500",
        &pingback_domain::RetryPolicy::standard(),
    );
    endpoint
}

/// Webhook storage that finds the example endpoint (when `found`), or fails every
/// call with `error`.
fn webhook_store(
    found: bool,
    error: Option<fn() -> RepositoryError>,
) -> pingback_application::MockWebhookRepository {
    let mut store = pingback_application::MockWebhookRepository::new();
    store
        .expect_create()
        .returning(move |endpoint, _, _| match error {
            Some(error) => Err(error()),
            None => Ok(Some(endpoint)),
        });
    store.expect_list().returning(move |business| match error {
        Some(error) => Err(error()),
        None => Ok(vec![example_endpoint(
            business,
            pingback_domain::WebhookId::parse(WEBHOOK).unwrap(),
        )]),
    });
    store
        .expect_find()
        .returning(move |business, id| match error {
            Some(error) => Err(error()),
            None => Ok(found.then(|| example_endpoint(business, id))),
        });
    store
        .expect_update()
        .returning(move |business, id, change| match error {
            Some(error) => Err(error()),
            None => Ok(found.then(|| {
                let mut endpoint = example_endpoint(business, id);
                endpoint.apply(change);
                endpoint
            })),
        });
    store.expect_delete().returning(move |_, _| match error {
        Some(error) => Err(error()),
        None => Ok(found),
    });
    store
}

/// Every case a webhook operation answers, each with the state that produces it.
fn webhook_cases(
    path: &str,
    method: &str,
) -> Vec<(crate::routes::ApiState, web_test::TestRequest)> {
    let url = concrete(path);
    let m = match method {
        "post" => Method::POST,
        "patch" => Method::PATCH,
        "delete" => Method::DELETE,
        "head" => Method::HEAD,
        _ => Method::GET,
    };
    let state = |found: bool, error: Option<fn() -> RepositoryError>| {
        let mut guard = pingback_application::MockDestinationGuard::new();
        guard.expect_check().returning(|_| Ok(()));
        crate::tests::state_with_webhooks(webhook_store(found, error), guard, authority(None, None))
    };
    let with_body = matches!(method, "post" | "patch");
    let (valid, invalid) = if method == "post" {
        (
            json!({"url": "https://hooks.example.com/pingback", "event_types": ["message.created"]}),
            json!({"url": "http://hooks.example.com/pingback"}),
        )
    } else {
        (
            json!({"enabled": true}),
            json!({"url": "http://hooks.example.com/pingback"}),
        )
    };
    let request = |body: &Value| {
        let request = web_test::TestRequest::default()
            .method(m.clone())
            .uri(&url)
            .insert_header(manage_bearer());
        if with_body {
            request
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload(body.to_string())
        } else {
            request
        }
    };
    let mut cases = vec![
        (state(true, None), request(&valid)),
        (
            state(true, None),
            web_test::TestRequest::default().method(m.clone()).uri(&url),
        ),
        (state(true, None), request(&valid).insert_header(bearer())),
        (state(true, None), request(&valid).method(Method::PUT)),
        (
            state(true, None),
            request(&valid).insert_header(("x-padding", "a".repeat(33 * 1024))),
        ),
        (
            state(true, Some(|| RepositoryError::unavailable("down"))),
            request(&valid),
        ),
        (
            state(
                true,
                Some(|| RepositoryError::internal("relation \"x\" does not exist")),
            ),
            request(&valid),
        ),
    ];
    if path.contains("{webhook_id}") {
        cases.push((state(false, None), request(&valid)));
    }
    if with_body {
        cases.extend([
            (
                state(true, None),
                request(&valid).insert_header((header::CONTENT_TYPE, "text/plain")),
            ),
            (
                state(true, None),
                request(&valid).set_payload("x".repeat(1024 * 1024 + 1)),
            ),
            (state(true, None), request(&valid).set_payload("{")),
            (state(true, None), request(&invalid)),
        ]);
    }
    cases
}

/// The example conversation's first message.
const MESSAGE: &str = "f6a7b8c9-d0e1-2345-fabc-456789012345";

fn example_message() -> pingback_domain::Message {
    example::conversation().unwrap().messages()[0].clone()
}

/// A writer that finds the example's message and fails every write with `error`, or
/// succeeds when `error` is `None`.
fn writer(error: Option<fn() -> WriteError>) -> MockConversationWriter {
    let mut writer = MockConversationWriter::new();
    writer
        .expect_find_message()
        .returning(|_, _, id| Ok(Some(example_message()).filter(|m| m.id() == id)));
    let stored = || {
        example::conversation()
            .unwrap()
            .read_at(pingback_domain::Revision::new(2, Some(1)))
    };
    writer
        .expect_create_conversation()
        .returning(move |_, _, _, _, _| match error {
            Some(error) => Err(error()),
            None => Ok(Written::Done(stored())),
        });
    writer
        .expect_append_message()
        .returning(move |_, _, _, ids, _, _| match error {
            Some(error) => Err(error()),
            None => {
                // The use case checks that the message is the one it asked for.
                Ok(Written::Done(pingback_domain::MessageAppended {
                    message: MessageBuilder::from(&example_message())
                        .id(ids.message)
                        .build(),
                    previous_status: None,
                }))
            }
        });
    writer
        .expect_update_conversation()
        .returning(move |_, _, _, _, _| match error {
            Some(error) => Err(error()),
            None => Ok(Updated {
                conversation: stored(),
                changes: Default::default(),
            }),
        });
    writer
}

fn write_bearer() -> (header::HeaderName, String) {
    let mut claims = claims();
    claims["scope"] = json!("conversations:read conversations:write");
    (
        header::AUTHORIZATION,
        format!("Bearer {}", token_with(&claims)),
    )
}

/// A valid body, and one with the documented invalid value, for a write operation.
fn write_bodies(path: &str, method: &str) -> (Value, Value) {
    if method == "patch" {
        (json!({"status": "resolved"}), json!({"status": "done"}))
    } else if path.ends_with("/messages") {
        (
            json!({"sender_type": "agent", "content": "On it."}),
            json!({"sender_type": "bot", "content": "On it."}),
        )
    } else {
        (
            json!({"channel_type": "email", "message": {"sender_type": "customer", "content": "Hi"}}),
            json!({"channel_type": "email", "message": {"sender_type": "bot", "content": "Hi"}}),
        )
    }
}

/// Every case a write operation answers, each with the state that produces it.
fn write_cases(path: &str, method: &str) -> Vec<(crate::routes::ApiState, web_test::TestRequest)> {
    let url = concrete(path);
    let (valid, invalid) = write_bodies(path, method);
    let m = if method == "patch" {
        Method::PATCH
    } else {
        Method::POST
    };
    let request = |body: &Value| {
        web_test::TestRequest::default()
            .method(m.clone())
            .uri(&url)
            .insert_header(write_bearer())
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(body.to_string())
    };
    let state = |writer: MockConversationWriter| {
        crate::tests::state_with_writer(found(), writer, authority(None, None))
    };
    let fails = |e: fn() -> WriteError| state(self::writer(Some(e)));
    let mut cases = vec![
        (state(writer(None)), request(&valid)),
        (
            state(writer(None)),
            request(&valid).insert_header(("prefer", "return=minimal")),
        ),
        (
            state(writer(None)),
            web_test::TestRequest::default().method(m.clone()).uri(&url),
        ),
        (state(writer(None)), request(&valid).insert_header(bearer())),
        (state(writer(None)), request(&valid).method(Method::DELETE)),
        (
            state(writer(None)),
            request(&valid).insert_header((header::CONTENT_TYPE, "text/plain")),
        ),
        (
            state(writer(None)),
            request(&valid).set_payload("x".repeat(1024 * 1024 + 1)),
        ),
        (state(writer(None)), request(&valid).set_payload("{")),
        (state(writer(None)), request(&invalid)),
        (
            fails(|| WriteError::Storage(RepositoryError::unavailable("down"))),
            request(&valid),
        ),
        (
            fails(|| {
                WriteError::Storage(RepositoryError::internal("relation \"x\" does not exist"))
            }),
            request(&valid),
        ),
        (
            state(writer(None)),
            request(&valid).insert_header(("x-padding", "a".repeat(33 * 1024))),
        ),
    ];
    // Creating a conversation neither finds one closed nor misses one.
    if path.contains("{conversation_id}") {
        cases.push((
            fails(|| WriteError::Refused(pingback_domain::WriteRefused::Closed)),
            request(&valid),
        ));
        cases.push((fails(|| WriteError::NotFound), request(&valid)));
    }
    if method == "post" {
        cases.push((fails(|| WriteError::KeyReused), request(&valid)));
        cases.push((fails(|| WriteError::KeyInFlight), request(&valid)));
    }
    if method == "patch" {
        cases.push((
            state(writer(None)),
            request(&valid)
                .insert_header((header::IF_MATCH, "\"0123456789abcdef0123456789abcdef\"")),
        ));
    }
    cases
}

/// Checks a live response against the documented response of `path`/`method`:
/// the status is documented, every required header is present and valid, the body
/// conforms (or is empty for HEAD and 304), and an error's body is the documented
/// example but for the request id. Returns the documented status.
async fn assert_documented(
    validator: &Validator<'_>,
    path: &str,
    method: &str,
    response: ServiceResponse,
) -> String {
    let operation = &validator.root["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not documented");
    let status = response.status().as_u16().to_string();
    let documented = &operation["responses"][&status];
    assert!(
        documented.is_object(),
        "{method} {path}: {status} is not documented"
    );
    let headers = response.headers().clone();
    for (name, header) in documented["headers"].as_object().unwrap() {
        match headers.get(name.as_str()) {
            None => assert!(
                header["required"] != json!(true),
                "{method} {path} {status}: the required header {name} is missing"
            ),
            Some(value) => {
                let value = value.to_str().unwrap();
                let value = match header["schema"]["type"].as_str() {
                    Some("integer") => json!(value.parse::<i64>().unwrap()),
                    _ => json!(value),
                };
                validator.assert_valid(
                    &header["schema"],
                    &value,
                    &format!("{method} {path} {status} header {name}"),
                );
            }
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = web_test::read_body(response).await;
    if method == "head" {
        // Dropping a HEAD body is the HTTP/1 dispatcher's work, which the test
        // service does not include; the contract test checks it on a real server.
        assert!(
            documented["content"]
                .as_object()
                .is_none_or(|c| c.is_empty())
        );
        return status;
    }
    // `Prefer: return=minimal` answers the documented status with no body (documented
    // on the operation's `Prefer` parameter).
    if headers.get("preference-applied").is_some() {
        assert!(
            body.is_empty(),
            "{method} {path} {status}: a minimal answer has a body"
        );
        return status;
    }
    let content = documented["content"].as_object();
    match content.and_then(|c| c.iter().next()) {
        None => assert!(body.is_empty(), "{method} {path} {status}: a body"),
        Some((media_type, media)) => {
            let content_type = content_type.unwrap();
            assert!(
                content_type.starts_with(media_type.as_str()),
                "{method} {path} {status}: {content_type} where {media_type} is documented"
            );
            if media_type.ends_with("json") {
                let value: Value = serde_json::from_slice(&body).unwrap();
                validator.assert_valid(
                    &media["schema"],
                    &value,
                    &format!("{method} {path} {status}"),
                );
                if media_type == "application/problem+json" {
                    let mut actual = value.clone();
                    assert_eq!(
                        actual
                            .as_object_mut()
                            .unwrap()
                            .remove("request_id")
                            .unwrap(),
                        json!(headers.get("x-request-id").unwrap().to_str().unwrap())
                    );
                    // One documented example, or several named ones: the body is one.
                    let mut expected: Vec<Value> = match media["examples"].as_object() {
                        Some(named) => named.values().map(|e| e["value"].clone()).collect(),
                        None => vec![media["example"].clone()],
                    };
                    for example in &mut expected {
                        example.as_object_mut().unwrap().remove("request_id");
                    }
                    assert!(
                        expected.contains(&actual),
                        "{method} {path} {status}: {actual:#} is none of {expected:#?}"
                    );
                }
            }
        }
    }
    status
}

/// Every documented response of every route, produced by the app: nothing is
/// documented that the app does not do, and what it does is as documented.
#[actix_web::test]
async fn every_documented_response_is_what_the_app_answers() {
    let document = document();
    let validator = Validator { root: &document };
    let paths: Vec<String> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for path in &paths {
        let url = concrete(path);
        for method in ["post", "patch", "delete"] {
            if !document["paths"][path][method].is_object() {
                continue;
            }
            let mut seen = BTreeSet::new();
            let cases = if path.starts_with("/api/v1/webhooks") {
                webhook_cases(path, method)
            } else {
                write_cases(path, method)
            };
            for (state, request) in cases {
                let response = crate::tests::call_state(state, request).await;
                seen.insert(assert_documented(&validator, path, method, response).await);
            }
            let documented: BTreeSet<String> = document["paths"][path][method]["responses"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            let missing: BTreeSet<String> = documented.difference(&seen).cloned().collect();
            assert!(
                missing.is_empty(),
                "{method} {path}: documented but never produced: {missing:?}"
            );
        }
        if !document["paths"][path]["get"].is_object() {
            continue;
        }
        for method in ["get", "head"] {
            let request = || {
                let m = if method == "get" {
                    Method::GET
                } else {
                    Method::HEAD
                };
                web_test::TestRequest::default()
                    .method(m)
                    .uri(&url)
                    .insert_header(bearer())
            };
            let mut seen = BTreeSet::new();
            let tokens = || authority(None, None);
            let cases: Vec<(MockConversationRepository, web_test::TestRequest)> = vec![
                (found(), request()),
                (
                    found(),
                    request().insert_header((header::IF_NONE_MATCH, "*")),
                ),
                (
                    found(),
                    web_test::TestRequest::default()
                        .method(if method == "get" {
                            Method::GET
                        } else {
                            Method::HEAD
                        })
                        .uri(&url),
                ),
                (repository_with(None), request()),
                (
                    found(),
                    request().insert_header((header::AUTHORIZATION, {
                        let mut claims = claims();
                        claims["scope"] = json!("conversations:write");
                        format!("Bearer {}", token_with(&claims))
                    })),
                ),
                (found(), request().method(Method::DELETE)),
                (found(), request().uri(&format!("{url}?limit=0"))),
                (
                    found(),
                    request().insert_header(("x-padding", "a".repeat(33 * 1024))),
                ),
                (failing(|| RepositoryError::unavailable("down")), request()),
                (
                    failing(|| RepositoryError::internal("relation \"x\" does not exist")),
                    request(),
                ),
            ];
            let mut states: Vec<(crate::routes::ApiState, web_test::TestRequest)> =
                if path.starts_with("/api/v1/webhooks") {
                    webhook_cases(path, method)
                } else {
                    cases
                        .into_iter()
                        .map(|(repository, request)| {
                            (
                                crate::tests::state_with_writer(repository, writer(None), tokens()),
                                request,
                            )
                        })
                        .collect()
                };
            if path.starts_with("/api/v1/events") {
                // The feed and the stream read the event log port.
                let log =
                    |answer: fn() -> Result<pingback_application::EventsAfter, RepositoryError>| {
                        let mut log = pingback_application::MockEventLog::new();
                        log.expect_events_after().returning(move |_, _, _| answer());
                        log
                    };
                for answer in [
                    (|| Ok(pingback_application::EventsAfter::Gone))
                        as fn() -> Result<pingback_application::EventsAfter, RepositoryError>,
                    || Err(RepositoryError::unavailable("down")),
                    || {
                        Err(RepositoryError::internal(
                            "relation \"events\" does not exist",
                        ))
                    },
                ] {
                    states.push((
                        crate::tests::state_with_ports(
                            found(),
                            writer(None),
                            log(answer),
                            tokens(),
                        ),
                        request(),
                    ));
                }
                let mut full = crate::tests::state_with_writer(found(), writer(None), tokens());
                full.events.streams = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
                states.push((full, request()));
            }
            if path.contains("{message_id}") {
                // The message read goes through the writer port.
                let other = url.replace(MESSAGE, "0b5f3c9e-6a61-4c1e-9d59-6f2f1f0f4a7e");
                states.push((
                    crate::tests::state_with_writer(found(), writer(None), tokens()),
                    request().uri(&other),
                ));
                for error in [
                    (|| RepositoryError::unavailable("down")) as fn() -> RepositoryError,
                    || RepositoryError::internal("relation \"x\" does not exist"),
                ] {
                    let mut failing_writer = MockConversationWriter::new();
                    failing_writer
                        .expect_find_message()
                        .returning(move |_, _, _| Err(error()));
                    states.push((
                        crate::tests::state_with_writer(found(), failing_writer, tokens()),
                        request(),
                    ));
                }
            }
            for (state, request) in states {
                let response = crate::tests::call_state(state, request).await;
                seen.insert(assert_documented(&validator, path, method, response).await);
            }
            let documented: BTreeSet<String> = document["paths"][path][method]["responses"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            // 500 comes from a failing adapter only on the routes that use one; the
            // panic path (tests.rs) covers the others.
            let mut missing: BTreeSet<String> = documented.difference(&seen).cloned().collect();
            if !path.starts_with("/api/v1/conversations/") && !path.starts_with("/api/v1/webhooks")
            {
                missing.remove("500");
            }
            assert!(
                missing.is_empty(),
                "{method} {path}: documented but never produced: {missing:?}"
            );
        }
    }
}

#[actix_web::test]
async fn the_served_document_is_the_committed_one() {
    let response = call_with(
        found(),
        authority(None, None),
        web_test::TestRequest::get().uri(openapi::SPEC_PATH),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get(header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
    let served = String::from_utf8(web_test::read_body(response).await.to_vec()).unwrap();
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let committed = std::fs::read_to_string(committed_path).unwrap_or_default();
    assert!(
        served == committed,
        "docs/openapi.json is not the document the server serves: run `make openapi` \
         and commit the result"
    );
    let value: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(value["openapi"], "3.1.0");
}

#[actix_web::test]
async fn the_docs_page_is_self_contained_and_embeds_the_document() {
    let response = call_with(
        found(),
        authority(None, None),
        web_test::TestRequest::get().uri(openapi::DOCS_PATH),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get(header::CONTENT_TYPE).unwrap(),
        "text/html; charset=utf-8"
    );
    let csp = response
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let page = String::from_utf8(web_test::read_body(response).await.to_vec()).unwrap();
    // The document is embedded: the page renders without any request.
    let start = page
        .find(r#"<script id="openapi" type="application/json">"#)
        .unwrap();
    let json_start = page[start..].find('>').unwrap() + start + 1;
    let json_end = page[json_start..].find("</script>").unwrap() + json_start;
    let embedded: Value = serde_json::from_str(&page[json_start..json_end]).unwrap();
    assert_eq!(embedded, document());
    // The page renders every operation of every path: it knows each method the
    // document uses, with a badge of its own.
    let methods_start = page.find("var METHODS = [").unwrap();
    let methods_end = methods_start + page[methods_start..].find(']').unwrap();
    let methods = &page[methods_start..methods_end];
    for (path, item) in embedded["paths"].as_object().unwrap() {
        let operations = item.as_object().unwrap().iter();
        for (method, _) in operations.filter(|(_, op)| op.get("responses").is_some()) {
            assert!(
                methods.contains(&format!("\"{method}\"")),
                "the docs page does not render {method} {path}"
            );
            assert!(
                page.contains(&format!(".method.{method} ")),
                "the docs page has no badge for {method}"
            );
        }
    }
    // Nothing is loaded from elsewhere (the CSP forbids it too).
    for attribute in ["src=", "href=", "url(", "@import"] {
        for (at, _) in page.match_indices(attribute) {
            let rest = &page[at + attribute.len()..];
            let rest = rest.trim_start_matches(['\\', '"', '\'']);
            assert!(
                rest.starts_with('#') || rest.starts_with("data:") || rest.starts_with('/'),
                "the page loads an external resource: {}",
                &page[at..(at + 60).min(page.len())]
            );
        }
    }
}

/// Every documented route has its own metrics label, and every label but `other`
/// belongs to a documented route.
#[test]
fn every_labelled_route_is_documented() {
    let document = document();
    let paths: BTreeSet<&str> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let labels: BTreeSet<&str> = paths
        .iter()
        .map(|p| metrics::route_label(Some(p)))
        .collect();
    assert!(!labels.contains("other"), "{paths:?}");
    assert_eq!(labels.len(), paths.len());
    assert_eq!(
        labels,
        metrics::ROUTES
            .iter()
            .copied()
            .filter(|r| *r != "other")
            .collect()
    );
    assert!(paths.contains(CONVERSATION_PATH));
}

#[test]
fn the_conversation_route_requires_the_bearer_scheme() {
    let document = document();
    let operation = &document["paths"][CONVERSATION_PATH]["get"];
    assert_eq!(
        operation["security"],
        json!([{ openapi::BEARER: ["conversations:read"] }])
    );
    let scheme = &document["components"]["securitySchemes"][openapi::BEARER];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "JWT");
    for claim in [
        "`sub`",
        "`business_id`",
        "`exp`",
        "`nbf`",
        "`iat`",
        "`iss`",
        "`aud`",
    ] {
        assert!(
            scheme["description"].as_str().unwrap().contains(claim),
            "{claim}"
        );
    }
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        openapi::SPEC_PATH,
        openapi::DOCS_PATH,
    ] {
        assert!(
            document["paths"][path]["get"].get("security").is_none(),
            "{path}"
        );
    }
}

#[test]
fn problem_types_cover_every_error() {
    let document = document();
    let documented = document["components"]["schemas"]["ProblemType"]["enum"]
        .as_array()
        .unwrap()
        .clone();
    for uri in [
        "/problems/unauthorized",
        "/problems/not-found",
        "/problems/method-not-allowed",
        "/problems/bad-request",
        "/problems/too-large",
        "/problems/unavailable",
        "/problems/internal",
        "/problems/forbidden",
        "/problems/conflict",
        "/problems/precondition-failed",
        "/problems/unsupported-media-type",
        "/problems/validation",
        "/problems/idempotency-key-reused",
        "/problems/gone",
    ] {
        assert!(documented.contains(&json!(uri)), "{uri}");
    }
    assert_eq!(documented.len(), 14);
}
