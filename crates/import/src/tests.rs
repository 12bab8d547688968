//! The import of a file as a whole, through [`import_file`]: what is written, and
//! every error message, path and exit code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use pingback_application::{
    ImportConflict, ImportConflictOwner, ImportError, ImportSummary, ImportedEntity,
    MockConversationImporter, RepositoryError,
};
use pingback_domain::testing::{
    AttachmentBuilder, ConversationBuilder, CustomerBuilder, MessageBuilder, at, id,
};
use pingback_domain::{BusinessId, ConversationId, SenderType, Status};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::testing::{FakeImporter, conversation_json};
use crate::{ImportFileError, ImportOutcome, MAX_LISTED_ERRORS, NoProgress, import_file};

/// The contract's original example, with its mistakes (integer customer ids, a
/// message id that is not a UUID).
const SEED: &str = r#"{
  "id": "c3d4e5f6-a7b8-9012-cdef-123456789012",
  "business_id": "b2c3d4e5-f6a7-8901-bcde-f12345678901",
  "customer_id": "d4e5f6a7-b8c9-0123-defa-234567890123",
  "assignee_id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
  "status": "open",
  "channel_type": "widget",
  "channel_id": "e5f6a7b8-c9d0-1234-efab-345678901234",
  "created_at": "2024-03-01T09:00:00Z",
  "updated_at": "2024-03-01T09:20:00Z",
  "first_response_at": "2024-03-01T09:05:00Z",
  "customer": {
    "id": 42,
    "business_id": 7,
    "name": "Alex Johnson",
    "email": "alex@example.com",
    "phone": null,
    "external_id": null,
    "created_at": "2024-02-20T08:00:00Z"
  },
  "messages": [
    {
      "id": "f6a7b8c9-d0e1-2345-fabc-456789012345",
      "conversation_id": "c3d4e5f6-a7b8-9012-cdef-123456789012",
      "sender_type": "customer",
      "sender_id": null,
      "content": "Hello, I need help with my order.",
      "attachments": [],
      "created_at": "2024-03-01T09:00:00Z"
    },
    {
      "id": "g7b8c9d0-e1f2-3456-abcd-567890123456",
      "conversation_id": "c3d4e5f6-a7b8-9012-cdef-123456789012",
      "sender_type": "agent",
      "sender_id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
      "content": "Hi Alex! Happy to help. Can you share your order number?",
      "attachments": [],
      "created_at": "2024-03-01T09:05:00Z"
    }
  ]
}"#;

const BUSINESS: &str = "b2c3d4e5-f6a7-8901-bcde-f12345678901";

fn seed_fixed() -> String {
    SEED.replace(
        "\"id\": 42",
        "\"id\": \"d4e5f6a7-b8c9-0123-defa-234567890123\"",
    )
    .replace(
        "\"business_id\": 7",
        &format!("\"business_id\": \"{BUSINESS}\""),
    )
    .replace("g7b8c9d0", "07b8c9d0")
}

/// A distinct id number per (kind, n).
fn key(kind: u128, n: u128) -> u128 {
    (kind << 64) | n
}

/// A distinct id per (kind, n), lower-case.
fn uid(kind: u128, n: u128) -> String {
    Uuid::from_u128(key(kind, n)).to_string()
}

/// A valid conversation `n` with `messages` messages, the first one carrying an
/// attachment, and customer `n`, in the file's JSON shape.
fn sample(n: u128, messages: usize) -> Value {
    let business = BusinessId::parse(BUSINESS).unwrap();
    let message = |m: usize| {
        let sender = if m.is_multiple_of(2) {
            SenderType::Customer
        } else {
            SenderType::Agent
        };
        let message = MessageBuilder::new()
            .id(id(key(3, (n << 32) | m as u128)))
            .sender(sender, None)
            .content(&format!("message {m}"))
            .created_at(at(&format!(
                "2024-03-01T09:{:02}:{:02}Z",
                (m / 60) % 60,
                m % 60
            )));
        if m == 0 {
            message.attachment(
                AttachmentBuilder::new()
                    .id(id(key(4, (n << 32) | m as u128)))
                    .file_name("screenshot.png")
                    .content_type("image/png")
                    .byte_size(12345)
                    .url("https://files.example.com/screenshot.png")
                    .build(),
            )
        } else {
            message
        }
        .build()
    };
    let customer = CustomerBuilder::new(business)
        .id(id(key(2, n)))
        .name("Zoë")
        .created_at(at("2024-02-20T08:00:00Z"))
        .build();
    let conversation = ConversationBuilder::new(business)
        .id(id(key(1, n)))
        .customer(customer)
        .channel_type("email")
        .created_at(at("2024-03-01T09:00:00Z"))
        .updated_at(at("2024-03-01T09:20:00Z"))
        .messages((0..messages).map(message))
        .build();
    conversation_json(&conversation)
}

async fn run_with(
    importer: Arc<FakeImporter>,
    input: impl Into<Vec<u8>>,
) -> Result<ImportOutcome, ImportFileError> {
    import_file(
        importer,
        "in.json",
        io::Cursor::new(input.into()),
        Arc::new(NoProgress),
    )
    .await
}

async fn run(
    input: impl Into<Vec<u8>>,
) -> (Result<ImportOutcome, ImportFileError>, Arc<FakeImporter>) {
    let importer = Arc::new(FakeImporter::default());
    let result = run_with(importer.clone(), input).await;
    (result, importer)
}

/// The listed errors as printed (without the file name), after checking nothing
/// was written.
async fn errors_of(input: impl Into<Vec<u8>>) -> Vec<String> {
    let (result, importer) = run(input).await;
    assert!(importer.committed().is_empty());
    match result {
        Err(ImportFileError::Invalid { file, errors, .. }) => {
            assert_eq!(file, "in.json");
            errors.iter().map(ToString::to_string).collect()
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn to_string(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

fn has(errors: &[String], expected: &str) {
    assert!(
        errors.iter().any(|e| e == expected),
        "missing {expected:?} in {errors:#?}"
    );
}

#[tokio::test]
async fn the_seed_example_lists_each_bad_value_and_writes_nothing() {
    let (result, importer) = run(SEED).await;
    let err = result.unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert_eq!(
        err.to_string(),
        [
            "in.json: $.customer.id: expected a UUID string (got 42)",
            "in.json: $.customer.business_id: expected a UUID string (got 7)",
            "in.json: $.messages[1].id: expected a UUID in the hyphenated form (8-4-4-4-12 hex digits) (got \"g7b8c9d0-e1f2-3456-abcd-567890123456\")",
        ]
        .join("\n")
    );
    assert!(importer.committed().is_empty());
    assert!(importer.aborted.load(Ordering::SeqCst));
}

#[tokio::test]
async fn the_corrected_seed_example_gives_the_right_domain_values() {
    let (result, importer) = run(seed_fixed()).await;
    let outcome = result.unwrap();
    assert_eq!(outcome.file, "in.json");
    assert_eq!(outcome.summary.conversations, 1);
    assert_eq!(outcome.summary.messages, 2);
    let [c] = importer.committed().try_into().unwrap();
    assert_eq!(c.id().to_string(), "c3d4e5f6-a7b8-9012-cdef-123456789012");
    assert_eq!(c.business_id().to_string(), BUSINESS);
    assert_eq!(
        c.assignee_id().unwrap().to_string(),
        "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
    );
    assert_eq!(c.status(), Status::Open);
    assert_eq!(c.channel_type().as_str(), "widget");
    assert_eq!(c.updated_at().to_string(), "2024-03-01T09:20:00Z");
    assert_eq!(
        c.first_response_at().unwrap().to_string(),
        "2024-03-01T09:05:00Z"
    );
    let customer = c.customer().unwrap();
    assert_eq!(customer.name().unwrap().as_str(), "Alex Johnson");
    assert_eq!(customer.phone(), None);
    assert_eq!(customer.created_at().to_string(), "2024-02-20T08:00:00Z");
    let m = c.messages();
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].sender_type(), SenderType::Customer);
    assert_eq!(m[0].sender_id(), None);
    assert_eq!(m[1].sender_type(), SenderType::Agent);
    assert_eq!(
        m[1].content().as_str(),
        "Hi Alex! Happy to help. Can you share your order number?"
    );
    assert_eq!(importer.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_valid_array_normalises_ids_and_times_and_shares_customers() {
    let mut a = sample(1, 3);
    let mut b = sample(2, 1);
    // The same customer in both conversations.
    b["customer"] = a["customer"].clone();
    b["customer_id"] = a["customer_id"].clone();
    let mut c = sample(3, 0);
    c["customer"] = Value::Null;
    c["customer_id"] = Value::Null;
    // Upper-case ids, other offsets, messages out of order.
    let upper = uid(1, 1).to_uppercase();
    a["id"] = json!(upper);
    for m in a["messages"].as_array_mut().unwrap() {
        m["conversation_id"] = json!(upper);
    }
    a["messages"][0]["created_at"] = json!("2024-03-01T11:30:00.500000+01:00");
    a["messages"][2]["created_at"] = json!("2024-03-01T04:00:00-05:00");
    a["first_response_at"] = json!("2024-03-01T09:05:00.120+00:00");
    let input = to_string(&json!([a, b, c]));

    let (result, importer) = run(input).await;
    let summary = result.unwrap().summary;
    assert_eq!(
        summary,
        ImportSummary {
            conversations: 3,
            customers: 1,
            messages: 4,
            attachments: 2,
        }
    );
    let committed = importer.committed();
    assert_eq!(committed.len(), 3);
    let a = &committed[0];
    assert_eq!(a.id().to_string(), uid(1, 1));
    assert_eq!(
        a.first_response_at().unwrap().to_string(),
        "2024-03-01T09:05:00.12Z"
    );
    let times: Vec<String> = a
        .messages()
        .iter()
        .map(|m| m.created_at().to_string())
        .collect();
    assert_eq!(
        times,
        [
            "2024-03-01T09:00:00Z",
            "2024-03-01T09:00:01Z",
            "2024-03-01T10:30:00.5Z"
        ]
    );
    assert_eq!(a.messages()[2].attachments().len(), 1);
    assert_eq!(a.messages()[2].attachments()[0].byte_size().get(), 12345);
    assert_eq!(committed[1].customer(), a.customer());
    assert_eq!(committed[2].customer(), None);
    assert_eq!(committed[2].customer_id(), None);
}

#[tokio::test]
async fn unknown_fields_are_named_at_every_level() {
    let mut v = sample(1, 1);
    v["sttaus"] = json!("open");
    v["customer"]["nmae"] = json!("x");
    v["messages"][0]["sender"] = json!("x");
    v["messages"][0]["attachments"][0]["size"] = json!(1);
    let errors = errors_of(to_string(&json!([v]))).await;
    assert_eq!(errors.len(), 4, "{errors:#?}");
    has(
        &errors,
        "$[0]: unknown field \"sttaus\" (expected one of: id, business_id, customer_id, assignee_id, status, channel_type, channel_id, created_at, updated_at, first_response_at, customer, messages)",
    );
    has(
        &errors,
        "$[0].customer: unknown field \"nmae\" (expected one of: id, business_id, name, email, phone, external_id, created_at)",
    );
    has(
        &errors,
        "$[0].messages[0]: unknown field \"sender\" (expected one of: id, conversation_id, sender_type, sender_id, content, attachments, created_at)",
    );
    has(
        &errors,
        "$[0].messages[0].attachments[0]: unknown field \"size\" (expected one of: id, file_name, content_type, byte_size, url)",
    );
}

#[tokio::test]
async fn missing_fields_are_reported_nullable_ones_included() {
    let mut v = sample(1, 1);
    let o = v.as_object_mut().unwrap();
    o.remove("status");
    o.remove("assignee_id");
    v["customer"].as_object_mut().unwrap().remove("email");
    v["messages"][0].as_object_mut().unwrap().remove("content");
    v["messages"][0]["attachments"][0]
        .as_object_mut()
        .unwrap()
        .remove("url");
    let errors = errors_of(to_string(&v)).await;
    assert_eq!(
        errors,
        [
            "$.customer: missing field \"email\"",
            "$.messages[0].attachments[0]: missing field \"url\"",
            "$.messages[0]: missing field \"content\"",
            "$: missing field \"assignee_id\"",
            "$: missing field \"status\"",
        ]
    );
}

#[tokio::test]
async fn wrong_types_and_values_are_reported_with_the_value() {
    let mut v = sample(1, 2);
    v["status"] = json!("Open");
    v["channel_type"] = json!("");
    v["assignee_id"] = json!(17);
    v["customer"]["name"] = json!(["Alex"]);
    v["messages"][0]["sender_type"] = json!("bot");
    v["messages"][0]["content"] = json!({"text": "hi"});
    v["messages"][0]["attachments"][0]["byte_size"] = json!("12");
    v["messages"][1]["attachments"] = json!("none");
    v["messages"][1]["created_at"] = json!("2024-03-01");
    let mut w = sample(2, 2);
    w["messages"][0]["attachments"][0]["byte_size"] = json!(-1);
    w["messages"][1]["attachments"] = json!([{
        "id": uid(4, 99), "file_name": "a", "content_type": "b", "byte_size": 1.5, "url": "u"
    }]);
    w["customer"] = json!(5);
    let mut x = sample(3, 0);
    x["messages"] = Value::Null;
    let errors = errors_of(to_string(&json!([v, w, x, "nope"]))).await;
    assert_eq!(
        errors,
        [
            "$[0].assignee_id: expected a UUID string or null (got 17)",
            "$[0].channel_type: must not be empty (got \"\")",
            "$[0].customer.name: expected a string or null (got an array)",
            "$[0].messages[0].attachments[0].byte_size: expected a number of bytes (got \"12\")",
            "$[0].messages[0].content: expected a string (got an object)",
            "$[0].messages[0].sender_type: unknown sender type (expected one of: customer, agent) (got \"bot\")",
            "$[0].messages[1].attachments: expected an array of attachments (got \"none\")",
            "$[0].messages[1].created_at: expected an RFC 3339 timestamp with an offset, e.g. 2024-03-01T09:00:00Z (got \"2024-03-01\")",
            "$[0].status: unknown status (expected one of: open, pending, resolved, closed) (got \"Open\")",
            "$[1].customer: expected a customer object or null (got 5)",
            "$[1].messages[0].attachments[0].byte_size: must be between 0 and 9223372036854775807 (got -1)",
            "$[1].messages[1].attachments[0].byte_size: expected a whole number of bytes (got 1.5)",
            "$[2].messages: expected an array of messages (got null)",
            "$[3]: expected a conversation object (got \"nope\")",
        ]
    );
}

#[tokio::test]
async fn fields_that_must_agree_are_checked() {
    // customer_id differs from customer.id; a message names another conversation
    // (read before and after the conversation's own id); a foreign customer.
    let mut a = sample(1, 2);
    a["customer_id"] = json!(uid(2, 9));
    a["messages"][1]["conversation_id"] = json!(uid(1, 9));
    a["customer"]["business_id"] = json!(uid(8, 1));
    let mut b = sample(2, 1);
    b["customer_id"] = Value::Null;
    let mut c = sample(3, 1);
    c["customer"] = Value::Null;
    let mut d = sample(4, 1);
    d["messages"][0]["conversation_id"] = json!(uid(1, 9));
    // Put the conversation id after the messages.
    let id = d.as_object_mut().unwrap().remove("id").unwrap();
    d.as_object_mut().unwrap().insert("id".to_owned(), id);
    let errors = errors_of(to_string(&json!([a, b, c, d]))).await;
    assert_eq!(
        errors,
        [
            format!(
                "$[0].messages[1].conversation_id: does not match the conversation's id {} (got \"{}\")",
                uid(1, 1),
                uid(1, 9)
            ),
            format!(
                "$[0].customer_id: does not match customer.id {} (got \"{}\")",
                uid(2, 1),
                uid(2, 9)
            ),
            format!(
                "$[0].customer.business_id: does not match the conversation's business_id {BUSINESS} (got \"{}\")",
                uid(8, 1)
            ),
            format!(
                "$[1].customer_id: is null but customer is not (customer.id is {}) (got null)",
                uid(2, 2)
            ),
            format!(
                "$[2].customer: is null but customer_id is {} (got null)",
                uid(2, 3)
            ),
            format!(
                "$[3].messages[0].conversation_id: does not match the conversation's id {} (got \"{}\")",
                uid(1, 4),
                uid(1, 9)
            ),
        ]
    );
}

#[tokio::test]
async fn repeated_ids_and_keys_are_reported_where_they_repeat() {
    let mut a = sample(1, 3);
    a["messages"][2]["id"] = a["messages"][0]["id"].clone();
    let mut b = sample(2, 2);
    b["id"] = a["id"].clone();
    for m in b["messages"].as_array_mut().unwrap() {
        m["conversation_id"] = a["id"].clone();
    }
    b["messages"][1]["id"] = a["messages"][1]["id"].clone();
    b["messages"][1]["attachments"] = a["messages"][0]["attachments"].clone();
    // The same customer with other details.
    b["customer_id"] = a["customer_id"].clone();
    b["customer"] = a["customer"].clone();
    b["customer"]["name"] = json!("Someone else");
    let mut text = to_string(&json!([a, b]));
    // A key given twice (serde_json::Value cannot hold that).
    text = text.replacen(
        "\"status\":\"open\"",
        "\"status\":\"open\",\"status\":\"closed\"",
        1,
    );
    let errors = errors_of(text).await;
    let (a_id, m0, m1, attachment_id) = (
        uid(1, 1),
        uid(3, 1 << 32),
        uid(3, (1 << 32) | 1),
        uid(4, 1 << 32),
    );
    assert_eq!(
        errors,
        [
            format!(
                "$[0].messages[2].id: message id appears more than once (first at $[0].messages[0].id) (got \"{m0}\")"
            ),
            "$[0]: duplicate field \"status\"".to_owned(),
            format!(
                "$[1].messages[1].attachments[0].id: attachment id appears more than once (first at $[0].messages[0].attachments[0].id) (got \"{attachment_id}\")"
            ),
            format!(
                "$[1].messages[1].id: message id appears more than once (first at $[0].messages[1].id) (got \"{m1}\")"
            ),
            format!(
                "$[1].id: conversation id appears more than once (first at $[0].id) (got \"{a_id}\")"
            ),
            format!(
                "$[1].customer: customer {} differs from the one at $[0].customer; a customer shared by several conversations must be identical",
                uid(2, 1)
            ),
        ]
    );
}

#[tokio::test]
async fn text_with_nul_and_long_values_are_cut() {
    let mut v = sample(1, 1);
    v["messages"][0]["content"] = json!("a\u{0}b");
    v["customer"]["email"] = json!(format!("{}\u{0}", "é".repeat(200)));
    let errors = errors_of(to_string(&v)).await;
    assert_eq!(
        errors,
        [
            format!(
                "$.customer.email: contains a NUL character (got \"{}…\")",
                "é".repeat(80)
            ),
            "$.messages[0].content: contains a NUL character (got \"a\\u0000b\")".to_owned(),
        ]
    );
}

#[tokio::test]
async fn timestamps_reject_excess_precision_and_junk() {
    let mut v = sample(1, 2);
    v["created_at"] = json!("2024-03-01T09:00:00.1234567Z");
    v["updated_at"] = json!(1709283600);
    v["messages"][0]["created_at"] = json!("2024-03-01T09:00:00");
    v["messages"][1]["created_at"] = json!("2024-03-01T09:00:00.123456+02:00");
    let errors = errors_of(to_string(&v)).await;
    assert_eq!(
        errors,
        [
            "$.created_at: more than 6 fractional digits: precision is microseconds (got \"2024-03-01T09:00:00.1234567Z\")",
            "$.messages[0].created_at: expected an RFC 3339 timestamp with an offset, e.g. 2024-03-01T09:00:00Z (got \"2024-03-01T09:00:00\")",
            "$.updated_at: expected an RFC 3339 timestamp string (got 1709283600)",
        ]
    );
}

#[tokio::test]
async fn ids_take_any_letter_case_and_only_the_hyphenated_form() {
    let mut v = sample(1, 1);
    v["channel_id"] = json!("E5F6A7B8-C9D0-1234-EFAB-345678901234");
    v["assignee_id"] = json!("a1b2c3d4e5f67890abcdef1234567890");
    v["messages"][0]["sender_id"] = json!("{a1b2c3d4-e5f6-7890-abcd-ef1234567890}");
    let errors = errors_of(to_string(&v)).await;
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].starts_with("$.assignee_id: expected a UUID in the hyphenated form"));
    assert!(errors[1].starts_with("$.messages[0].sender_id: expected a UUID"));

    let mut v = sample(1, 1);
    v["channel_id"] = json!("E5F6A7B8-C9D0-1234-EFAB-345678901234");
    let (result, importer) = run(to_string(&v)).await;
    result.unwrap();
    assert_eq!(
        importer.committed()[0].channel_id().unwrap().to_string(),
        "e5f6a7b8-c9d0-1234-efab-345678901234"
    );
}

#[tokio::test]
async fn broken_json_is_reported_where_it_breaks() {
    assert_eq!(
        errors_of("hello").await,
        ["$: invalid JSON: expected value at line 1 column 1"]
    );
    assert_eq!(
        errors_of("").await,
        ["$: invalid JSON: EOF while parsing a value at line 1 column 0"]
    );
    assert_eq!(
        errors_of("42").await,
        ["$: expected a conversation object or an array of them (got 42)"]
    );
    let valid = to_string(&sample(1, 1));
    assert_eq!(
        errors_of(format!("{valid} x")).await,
        [format!(
            "$: invalid JSON: trailing characters at line 1 column {}",
            valid.len() + 2
        )]
    );
    let two = to_string(&json!([sample(1, 1), sample(2, 2)]));
    let cut = &two[..two.len() - 40];
    let errors = errors_of(cut).await;
    assert_eq!(errors.len(), 1);
    // `Value` writes keys in alphabetical order: the cut falls in `status`.
    assert_eq!(
        errors[0],
        format!(
            "$[1].status: invalid JSON: EOF while parsing a string at line 1 column {}",
            cut.len()
        )
    );
    // Errors before the break are kept.
    let mut bad = sample(1, 1);
    bad["status"] = json!("nope");
    let text = format!("[{}, {{\"id\" 1}}]", to_string(&bad));
    let errors = errors_of(text).await;
    assert_eq!(errors.len(), 2);
    // Reading stopped after the key: the path names it.
    assert!(
        errors[1].starts_with("$[1].id: invalid JSON: expected `:` at line 1"),
        "{errors:?}"
    );
}

#[tokio::test]
async fn listing_stops_after_fifty_errors() {
    let conversations: Vec<Value> = (0..60)
        .map(|n| {
            let mut v = sample(n, 1);
            v["status"] = json!("bad");
            v
        })
        .collect();
    let (result, importer) = run(to_string(&Value::Array(conversations))).await;
    assert!(importer.committed().is_empty());
    let err = result.unwrap_err();
    let ImportFileError::Invalid {
        errors, truncated, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(errors.len(), MAX_LISTED_ERRORS);
    assert!(truncated);
    assert_eq!(errors[49].path, "$[49].status");
    assert!(
        err.to_string()
            .ends_with("\nin.json: more than 50 errors; stopped checking")
    );
}

#[tokio::test]
async fn storage_conflicts_name_the_json_path() {
    let a = sample(1, 2);
    let b = sample(2, 2);
    let other = BusinessId::from_uuid(Uuid::from_u128(77));
    let conversation_id = |n| ConversationId::parse(&uid(1, n)).unwrap();
    let conflict = |entity, id: String, n, owner| ImportConflict {
        entity,
        id,
        conversation_id: conversation_id(n),
        owner,
    };
    let importer = Arc::new(FakeImporter {
        conflicts: vec![
            conflict(
                ImportedEntity::Message,
                uid(3, (2 << 32) | 1),
                2,
                ImportConflictOwner::Conversation(conversation_id(9)),
            ),
            conflict(
                ImportedEntity::Attachment,
                uid(4, 2 << 32),
                2,
                ImportConflictOwner::Business(other),
            ),
            conflict(
                ImportedEntity::Customer,
                uid(2, 1),
                1,
                ImportConflictOwner::Business(other),
            ),
            conflict(
                ImportedEntity::Conversation,
                uid(1, 2),
                2,
                ImportConflictOwner::Business(other),
            ),
        ],
        ..FakeImporter::default()
    });
    let result = run_with(importer.clone(), to_string(&json!([a, b]))).await;
    assert!(importer.committed().is_empty());
    let err = result.unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let ImportFileError::Invalid { errors, .. } = err else {
        panic!()
    };
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            format!(
                "$[1].messages[1].id: message id {0} already belongs to another conversation ({1}) (got \"{0}\")",
                uid(3, (2 << 32) | 1),
                uid(1, 9)
            ),
            format!(
                "$[1].messages[0].attachments[0].id: attachment id {0} already belongs to another business (got \"{0}\")",
                uid(4, 2 << 32)
            ),
            format!(
                "$[0].customer.id: customer id {0} already belongs to another business (got \"{0}\")",
                uid(2, 1)
            ),
            format!(
                "$[1].id: conversation id {0} already belongs to another business (got \"{0}\")",
                uid(1, 2)
            ),
        ]
    );
}

#[tokio::test]
async fn storage_failures_are_runtime_errors() {
    let mut mock = MockConversationImporter::new();
    mock.expect_import().times(1).returning(|_| {
        Err(ImportError::Storage(RepositoryError::unavailable(
            "connection refused",
        )))
    });
    let input = to_string(&json!([sample(1, 3), sample(2, 3)]));
    let err = import_file(
        Arc::new(mock),
        "-",
        io::Cursor::new(input),
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert_eq!(err.file(), "-");
    assert_eq!(
        err.to_string(),
        "-: storage unavailable: connection refused"
    );
}

#[tokio::test]
async fn a_large_file_streams_in_batches_within_one_import() {
    let input = to_string(&json!([sample(1, 4000), sample(2, 4000), sample(3, 4000)]));
    let (result, importer) = run(input).await;
    assert_eq!(result.unwrap().summary.messages, 12_000);
    assert_eq!(importer.calls.load(Ordering::SeqCst), 1);
    assert!(importer.batches.load(Ordering::SeqCst) >= 2);
    assert_eq!(importer.committed().len(), 3);
}

#[tokio::test]
async fn an_error_after_batches_were_sent_rolls_everything_back() {
    let mut last = sample(4, 1);
    last["status"] = json!("bad");
    let input = to_string(&json!([
        sample(1, 4000),
        sample(2, 4000),
        sample(3, 4000),
        last
    ]));
    let (result, importer) = run(input).await;
    assert!(matches!(result, Err(ImportFileError::Invalid { .. })));
    assert!(importer.batches.load(Ordering::SeqCst) >= 1);
    assert!(importer.aborted.load(Ordering::SeqCst));
    assert!(importer.committed().is_empty());
}

#[tokio::test]
async fn an_empty_array_imports_nothing() {
    let (result, importer) = run("[]").await;
    assert_eq!(result.unwrap().summary, ImportSummary::default());
    assert_eq!(importer.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn read_failures_are_runtime_errors() {
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }
    let importer = Arc::new(FakeImporter::default());
    let err = import_file(importer.clone(), "f.json", Failing, Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert_eq!(err.to_string(), "f.json: cannot read: disk on fire");
    assert!(importer.committed().is_empty());
}
