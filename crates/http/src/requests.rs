//! Write request bodies: JSON in, domain drafts out, or every invalid value named by
//! its JSON Pointer (RFC 6901). The rules are the domain's constructors; this module
//! only finds the values and says where they were.

use std::str::FromStr;

use pingback_application::WebhookRequest;
use pingback_domain::{
    AgentId, AttachmentDraft, ChannelId, ChannelType, ConversationDraft, ConversationPatch,
    CustomerChoice, CustomerDraft, CustomerId, FieldError, MessageDraft, SenderId, SenderType,
    Status, initial_status,
};
use serde_json::{Map, Value};

use crate::problem::ApiError;

/// Fields the server assigns: sending one is an error that names it.
const SERVER_ASSIGNED: &[&str] = &[
    "id",
    "business_id",
    "conversation_id",
    "created_at",
    "updated_at",
    "first_response_at",
];

/// RFC 6901: `~` and `/` in a member name are escaped.
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// Parses the body as JSON; a body that is not JSON is a 400.
fn parse(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("The request body is not valid JSON: {e}.")))
}

/// The members of one JSON object of the body, and the errors found so far.
struct Fields<'v, 'e> {
    map: &'v Map<String, Value>,
    at: String,
    errors: &'e mut Vec<FieldError>,
}

impl<'v, 'e> Fields<'v, 'e> {
    /// `value` as an object at `at`, refusing members other than `allowed`.
    fn of(
        value: &'v Value,
        at: String,
        allowed: &[&str],
        errors: &'e mut Vec<FieldError>,
    ) -> Option<Self> {
        let Some(map) = value.as_object() else {
            errors.push(FieldError::new(at, "expected a JSON object"));
            return None;
        };
        for name in map.keys() {
            if allowed.contains(&name.as_str()) {
                continue;
            }
            let pointer = format!("{at}/{}", escape(name));
            let detail = if SERVER_ASSIGNED.contains(&name.as_str()) {
                format!("`{name}` is assigned by the server; do not send it")
            } else {
                format!("unknown field `{name}` (expected: {})", allowed.join(", "))
            };
            errors.push(FieldError::new(pointer, detail));
        }
        Some(Self { map, at, errors })
    }

    fn pointer(&self, name: &str) -> String {
        format!("{}/{name}", self.at)
    }

    fn invalid(&mut self, name: &str, detail: impl std::fmt::Display) {
        let pointer = self.pointer(name);
        self.errors.push(FieldError::new(pointer, detail));
    }

    /// Collects a nested draft's errors under `name`.
    fn nested(&mut self, name: &str, errors: Vec<FieldError>) {
        let prefix = self.pointer(name);
        self.errors
            .extend(errors.into_iter().map(|e| e.under(&prefix)));
    }

    fn value(&self, name: &str) -> Option<&'v Value> {
        self.map.get(name)
    }

    /// A string member: absent → `None`; present but not a string → an error.
    fn string(&mut self, name: &str) -> Option<String> {
        match self.value(name)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.invalid(name, "expected a string");
                None
            }
        }
    }

    /// A required string member.
    fn required_string(&mut self, name: &str) -> Option<String> {
        if self.value(name).is_none() {
            self.invalid(name, "is required");
            return None;
        }
        self.string(name)
    }

    /// A nullable string member: `Ok(None)` absent or null.
    fn nullable_string(&mut self, name: &str) -> Result<Option<String>, ()> {
        match self.value(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => {
                self.invalid(name, "expected a string or null");
                Err(())
            }
        }
    }

    /// A value parsed from a string member (ids, enums).
    fn parsed<T: FromStr>(&mut self, name: &str, required: bool) -> Result<Option<T>, ()>
    where
        T::Err: std::fmt::Display,
    {
        let text = if required {
            self.required_string(name)
        } else {
            self.string(name)
        };
        let Some(text) = text else {
            return if self.value(name).is_none() && !required {
                Ok(None)
            } else {
                Err(())
            };
        };
        text.parse::<T>().map(Some).map_err(|e| {
            self.invalid(name, e);
        })
    }

    /// A nullable UUID member: absent → `None`, null → `Some(None)`.
    fn nullable_id<T: FromStr>(&mut self, name: &str) -> Result<Option<Option<T>>, ()>
    where
        T::Err: std::fmt::Display,
    {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => s.parse::<T>().map(|id| Some(Some(id))).map_err(|e| {
                self.invalid(name, e);
            }),
            Some(_) => {
                self.invalid(name, "expected a UUID string or null");
                Err(())
            }
        }
    }
}

/// Fails with every error found, or hands back the value.
fn finish<T>(value: Option<T>, errors: Vec<FieldError>) -> Result<T, ApiError> {
    match value {
        Some(value) if errors.is_empty() => Ok(value),
        _ => Err(ApiError::Validation(errors)),
    }
}

const MESSAGE_FIELDS: &[&str] = &["sender_type", "sender_id", "content", "attachments"];
const ATTACHMENT_FIELDS: &[&str] = &["file_name", "content_type", "byte_size", "url"];

/// The body of `POST …/messages`.
pub(crate) fn message_draft(body: &[u8]) -> Result<MessageDraft, ApiError> {
    let value = parse(body)?;
    let mut errors = Vec::new();
    let draft = message_at(&value, String::new(), &mut errors);
    finish(draft, errors)
}

fn message_at(value: &Value, at: String, errors: &mut Vec<FieldError>) -> Option<MessageDraft> {
    let mut fields = Fields::of(value, at, MESSAGE_FIELDS, errors)?;
    let sender_type = fields.parsed::<SenderType>("sender_type", true);
    let sender_id = fields.nullable_id::<SenderId>("sender_id");
    let content = match fields.value("content") {
        // Absent is empty: allowed only with attachments (the domain's rule).
        None => Some(String::new()),
        Some(_) => fields.string("content"),
    };
    let attachment_count = fields
        .value("attachments")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let attachments = attachments_of(&mut fields);
    // The message's own rules are checked even when another value is invalid, so one
    // answer lists every invalid value.
    if let Some(content) = &content {
        let prefix = fields.at.clone();
        let broken = MessageDraft::rules(content, attachment_count);
        fields
            .errors
            .extend(broken.into_iter().map(|e| e.under(&prefix)));
    }
    let (Ok(Some(sender_type)), Ok(sender_id), Some(content), Some(attachments)) =
        (sender_type, sender_id, content, attachments)
    else {
        return None;
    };
    MessageDraft::new(sender_type, sender_id.flatten(), content, attachments).ok()
}

fn attachments_of(fields: &mut Fields<'_, '_>) -> Option<Vec<AttachmentDraft>> {
    let items = match fields.value("attachments") {
        None | Some(Value::Null) => return Some(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            fields.invalid("attachments", "expected an array");
            return None;
        }
    };
    let mut drafts = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let at = format!("{}/attachments/{i}", fields.at);
        let Some(mut a) = Fields::of(item, at.clone(), ATTACHMENT_FIELDS, fields.errors) else {
            ok = false;
            continue;
        };
        let file_name = a.required_string("file_name");
        let content_type = a.required_string("content_type");
        let byte_size = match a.value("byte_size") {
            None => {
                a.invalid("byte_size", "is required");
                None
            }
            Some(v) => match v.as_i64() {
                Some(n) => Some(n),
                None => {
                    a.invalid(
                        "byte_size",
                        "expected an integer number of bytes, 0 or more",
                    );
                    None
                }
            },
        };
        let url = a.required_string("url");
        match (file_name, content_type, byte_size, url) {
            (Some(f), Some(c), Some(b), Some(u)) => match AttachmentDraft::new(f, c, b, u) {
                Ok(draft) => drafts.push(draft),
                Err(e) => {
                    ok = false;
                    fields.errors.extend(e.into_iter().map(|e| e.under(&at)));
                }
            },
            _ => ok = false,
        }
    }
    ok.then_some(drafts)
}

const CONVERSATION_FIELDS: &[&str] = &[
    "channel_type",
    "channel_id",
    "assignee_id",
    "status",
    "customer_id",
    "customer",
    "message",
];
const CUSTOMER_FIELDS: &[&str] = &["name", "email", "phone", "external_id"];

/// The body of `POST /api/v1/conversations`.
pub(crate) fn conversation_draft(body: &[u8]) -> Result<ConversationDraft, ApiError> {
    let value = parse(body)?;
    let mut errors = Vec::new();
    let draft = conversation_at(&value, &mut errors);
    finish(draft, errors)
}

fn conversation_at(value: &Value, errors: &mut Vec<FieldError>) -> Option<ConversationDraft> {
    let mut fields = Fields::of(value, String::new(), CONVERSATION_FIELDS, errors)?;
    let channel_type = fields.required_string("channel_type").and_then(|t| {
        ChannelType::new(t)
            .map_err(|e| fields.invalid("channel_type", e))
            .ok()
    });
    let channel_id = fields.nullable_id::<ChannelId>("channel_id");
    let assignee_id = fields.nullable_id::<AgentId>("assignee_id");
    let status = match fields.parsed::<Status>("status", false) {
        Ok(None) => Ok(Status::Open),
        Ok(Some(status)) => initial_status(status).map_err(|e| fields.errors.push(e)),
        Err(()) => Err(()),
    };
    let customer = customer_choice(&mut fields);
    let message = match fields.value("message") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            let at = fields.pointer("message");
            message_at(value, at, fields.errors).map(Some).ok_or(())
        }
    };
    let (
        Some(channel_type),
        Ok(channel_id),
        Ok(assignee_id),
        Ok(status),
        Some(customer),
        Ok(message),
    ) = (
        channel_type,
        channel_id,
        assignee_id,
        status,
        customer,
        message,
    )
    else {
        return None;
    };
    Some(ConversationDraft {
        channel_type,
        channel_id: channel_id.flatten(),
        assignee_id: assignee_id.flatten(),
        status,
        customer,
        message,
    })
}

fn customer_choice(fields: &mut Fields<'_, '_>) -> Option<CustomerChoice> {
    let by_id = fields.nullable_id::<CustomerId>("customer_id");
    let described = match fields.value("customer") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            let at = fields.pointer("customer");
            match Fields::of(value, at, CUSTOMER_FIELDS, fields.errors) {
                None => Err(()),
                Some(mut c) => {
                    let values = ["name", "email", "phone", "external_id"]
                        .map(|name| c.nullable_string(name));
                    let well_typed = values.iter().all(Result::is_ok);
                    // The values of the right type are checked even when another is
                    // not, so one answer lists every invalid value.
                    let [n, e, p, x] = values.map(|v| v.unwrap_or(None));
                    match CustomerDraft::new(n, e, p, x) {
                        Ok(draft) if well_typed => Ok(Some(draft)),
                        Ok(_) => Err(()),
                        Err(errors) => {
                            fields.nested("customer", errors);
                            Err(())
                        }
                    }
                }
            }
        }
    };
    match (by_id, described) {
        (Ok(Some(Some(_))), Ok(Some(_))) => {
            fields.invalid(
                "customer",
                "give either `customer_id` or `customer`, not both",
            );
            None
        }
        (Ok(Some(Some(id))), Ok(None)) => Some(CustomerChoice::Existing(id)),
        (Ok(_), Ok(Some(draft))) => Some(CustomerChoice::New(draft)),
        (Ok(_), Ok(None)) => Some(CustomerChoice::None),
        _ => None,
    }
}

const PATCH_FIELDS: &[&str] = &["status", "assignee_id"];

/// The body of `PATCH /api/v1/conversations/{id}`: a JSON merge patch (RFC 7396).
pub(crate) fn conversation_patch(body: &[u8]) -> Result<ConversationPatch, ApiError> {
    let value = parse(body)?;
    let mut errors = Vec::new();
    let patch = patch_at(&value, &mut errors);
    finish(patch, errors)
}

fn patch_at(value: &Value, errors: &mut Vec<FieldError>) -> Option<ConversationPatch> {
    let mut fields = Fields::of(value, String::new(), PATCH_FIELDS, errors)?;
    let status = match fields.value("status") {
        Some(Value::Null) => {
            fields.invalid(
                "status",
                "a conversation always has a status; it cannot be null",
            );
            Err(())
        }
        _ => fields.parsed::<Status>("status", false),
    };
    let assignee_id = fields.nullable_id::<AgentId>("assignee_id");
    let (Ok(status), Ok(assignee_id)) = (status, assignee_id) else {
        return None;
    };
    Some(ConversationPatch {
        status,
        assignee_id,
    })
}

const WEBHOOK_FIELDS: &[&str] = &["url", "event_types"];
const WEBHOOK_PATCH_FIELDS: &[&str] = &["url", "event_types", "enabled"];

/// The body of `POST /api/v1/webhooks` or (`patch`) `PATCH /api/v1/webhooks/{id}`:
/// the values' rules are the use case's (they depend on the operator's settings).
pub(crate) fn webhook_request(body: &[u8], patch: bool) -> Result<WebhookRequest, ApiError> {
    let value = parse(body)?;
    let mut errors = Vec::new();
    let allowed = if patch {
        WEBHOOK_PATCH_FIELDS
    } else {
        WEBHOOK_FIELDS
    };
    let request = Fields::of(&value, String::new(), allowed, &mut errors).and_then(|mut fields| {
        let url = match fields.value("url") {
            Some(Value::Null) => {
                fields.invalid("url", "an endpoint always has a URL; it cannot be null");
                return None;
            }
            _ => fields.string("url"),
        };
        let event_types = match fields.value("event_types") {
            None => None,
            Some(Value::Array(items)) => {
                let mut names = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(name) => names.push(name.clone()),
                        _ => fields.invalid(&format!("event_types/{i}"), "expected a string"),
                    }
                }
                Some(names)
            }
            Some(_) => {
                fields.invalid("event_types", "expected an array of event type names");
                None
            }
        };
        let enabled = match fields.value("enabled") {
            None => None,
            Some(Value::Bool(enabled)) => Some(*enabled),
            Some(_) => {
                fields.invalid("enabled", "expected true or false");
                None
            }
        };
        Some(WebhookRequest {
            url,
            event_types,
            enabled,
        })
    });
    finish(request, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointers(error: ApiError) -> Vec<String> {
        match error {
            ApiError::Validation(errors) => errors.into_iter().map(|e| e.pointer).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn every_invalid_value_is_named_by_its_pointer() {
        let body = br#"{
            "channel_type": "",
            "status": "closed",
            "id": "x",
            "colour": 1,
            "customer_id": "not-a-uuid",
            "message": {"sender_type": "bot", "content": 5,
                        "attachments": [{"file_name": "", "content_type": "x", "byte_size": -1, "url": "ftp://a"}, 3]}
        }"#;
        let mut found = pointers(conversation_draft(body).unwrap_err());
        found.sort();
        assert_eq!(
            found,
            [
                "/channel_type",
                "/colour",
                "/customer_id",
                "/id",
                "/message/attachments/0/byte_size",
                "/message/attachments/0/content_type",
                "/message/attachments/0/file_name",
                "/message/attachments/0/url",
                "/message/attachments/1",
                "/message/content",
                "/message/sender_type",
                "/status",
            ]
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_a_bad_request_and_not_an_object_is_invalid() {
        assert!(matches!(message_draft(b"{"), Err(ApiError::BadRequest(_))));
        assert_eq!(pointers(message_draft(b"[]").unwrap_err()), [""]);
    }

    #[test]
    fn pointers_escape_member_names() {
        assert_eq!(
            pointers(conversation_patch(br#"{"a/b~c": 1}"#).unwrap_err()),
            ["/a~1b~0c"]
        );
    }

    #[test]
    fn customer_by_id_or_described_not_both() {
        let both = br#"{"channel_type": "sms", "customer_id": "c3d4e5f6-a7b8-9012-cdef-123456789012", "customer": {"name": "A"}}"#;
        assert_eq!(
            pointers(conversation_draft(both).unwrap_err()),
            ["/customer"]
        );
        let described =
            br#"{"channel_type": "sms", "customer": {"external_id": "crm-1", "email": null}}"#;
        let draft = conversation_draft(described).unwrap();
        assert!(matches!(draft.customer, CustomerChoice::New(_)));
        assert_eq!(draft.status, Status::Open);
    }

    #[test]
    fn merge_patch_members() {
        let patch = conversation_patch(br#"{"assignee_id": null}"#).unwrap();
        assert_eq!(patch.assignee_id, Some(None));
        assert_eq!(patch.status, None);
        let patch = conversation_patch(br#"{}"#).unwrap();
        assert_eq!(patch, ConversationPatch::default());
        assert_eq!(
            pointers(conversation_patch(br#"{"status": null}"#).unwrap_err()),
            ["/status"]
        );
        assert_eq!(
            pointers(
                conversation_patch(br#"{"status": "done", "channel_type": "x"}"#).unwrap_err()
            )
            .len(),
            2
        );
    }

    #[test]
    fn message_rules_come_from_the_domain() {
        assert_eq!(
            pointers(message_draft(br#"{"sender_type": "agent"}"#).unwrap_err()),
            ["/content"]
        );
        let with_file = br#"{"sender_type": "agent", "attachments": [{"file_name": "a.pdf", "content_type": "application/pdf", "byte_size": 3, "url": "https://x.example/a.pdf"}]}"#;
        assert_eq!(message_draft(with_file).unwrap().attachment_count(), 1);
        assert_eq!(
            pointers(
                message_draft(br#"{"sender_type": "agent", "content": "a\u0000"}"#).unwrap_err()
            ),
            ["/content"]
        );
    }

    #[test]
    fn webhook_bodies_name_every_invalid_member() {
        let mut found = pointers(
            webhook_request(
                br#"{"url": 5, "event_types": ["message.created", 3], "enabled": true}"#,
                false,
            )
            .unwrap_err(),
        );
        found.sort();
        assert_eq!(found, ["/enabled", "/event_types/1", "/url"]);
        let patch = webhook_request(br#"{"enabled": false, "event_types": []}"#, true).unwrap();
        assert_eq!(patch.enabled, Some(false));
        assert_eq!(patch.event_types, Some(vec![]));
        assert_eq!(patch.url, None);
        assert_eq!(
            pointers(webhook_request(br#"{"url": null}"#, true).unwrap_err()),
            ["/url"]
        );
        assert!(matches!(
            webhook_request(b"{", false),
            Err(ApiError::BadRequest(_))
        ));
    }
}
