//! The conversation body written straight into its buffer, byte for byte what
//! serde_json makes of [`ConversationBody`](crate::representation::ConversationBody)
//! (a test holds the two equal), only faster where a long history spends its time
//! (`docs/performance.md`): serde_json escapes a string one byte at a time, and a
//! conversation of 10,000 messages is mostly message text. Here a string is checked
//! eight bytes at a time and copied in runs; ids, timestamps and enum names, which
//! never need escaping, are copied without a look.

use pingback_domain::{Attachment, Conversation, Customer, Message, RFC3339_MAX_LEN, Timestamp};
use uuid::Uuid;

/// The body of `GET /api/v1/conversations/{id}`.
pub fn conversation(c: &Conversation, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"id\":");
    id(out, c.id().into_uuid());
    out.extend_from_slice(b",\"business_id\":");
    id(out, c.business_id().into_uuid());
    out.extend_from_slice(b",\"customer_id\":");
    optional(out, c.customer_id(), |out, v| id(out, v.into_uuid()));
    out.extend_from_slice(b",\"assignee_id\":");
    optional(out, c.assignee_id(), |out, v| id(out, v.into_uuid()));
    out.extend_from_slice(b",\"status\":");
    plain(out, c.status().as_str());
    out.extend_from_slice(b",\"channel_type\":");
    string(out, c.channel_type().as_str());
    out.extend_from_slice(b",\"channel_id\":");
    optional(out, c.channel_id(), |out, v| id(out, v.into_uuid()));
    out.extend_from_slice(b",\"created_at\":");
    time(out, c.created_at());
    out.extend_from_slice(b",\"updated_at\":");
    time(out, c.updated_at());
    out.extend_from_slice(b",\"first_response_at\":");
    optional(out, c.first_response_at(), time);
    out.extend_from_slice(b",\"customer\":");
    optional(out, c.customer(), customer);
    out.extend_from_slice(b",\"messages\":[");
    // The conversation id, formatted once for every message.
    let mut quoted = [0; uuid::fmt::Hyphenated::LENGTH + 2];
    quoted[0] = b'"';
    quoted[uuid::fmt::Hyphenated::LENGTH + 1] = b'"';
    c.id()
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut quoted[1..=uuid::fmt::Hyphenated::LENGTH]);
    for (n, m) in c.messages().iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        message(out, &quoted, m);
    }
    out.extend_from_slice(b"]}");
}

fn customer(out: &mut Vec<u8>, c: &Customer) {
    out.extend_from_slice(b"{\"id\":");
    id(out, c.id().into_uuid());
    out.extend_from_slice(b",\"business_id\":");
    id(out, c.business_id().into_uuid());
    out.extend_from_slice(b",\"name\":");
    optional(out, c.name(), |out, v| string(out, v.as_str()));
    out.extend_from_slice(b",\"email\":");
    optional(out, c.email(), |out, v| string(out, v.as_str()));
    out.extend_from_slice(b",\"phone\":");
    optional(out, c.phone(), |out, v| string(out, v.as_str()));
    out.extend_from_slice(b",\"external_id\":");
    optional(out, c.external_id(), |out, v| string(out, v.as_str()));
    out.extend_from_slice(b",\"created_at\":");
    time(out, c.created_at());
    out.push(b'}');
}

fn message(out: &mut Vec<u8>, conversation: &[u8], m: &Message) {
    out.extend_from_slice(b"{\"id\":");
    id(out, m.id().into_uuid());
    out.extend_from_slice(b",\"conversation_id\":");
    out.extend_from_slice(conversation);
    out.extend_from_slice(b",\"sender_type\":");
    plain(out, m.sender_type().as_str());
    out.extend_from_slice(b",\"sender_id\":");
    optional(out, m.sender_id(), |out, v| id(out, v.into_uuid()));
    out.extend_from_slice(b",\"content\":");
    string(out, m.content().as_str());
    out.extend_from_slice(b",\"attachments\":[");
    for (n, a) in m.attachments().iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        attachment(out, a);
    }
    out.extend_from_slice(b"],\"created_at\":");
    time(out, m.created_at());
    out.push(b'}');
}

fn attachment(out: &mut Vec<u8>, a: &Attachment) {
    out.extend_from_slice(b"{\"id\":");
    id(out, a.id().into_uuid());
    out.extend_from_slice(b",\"file_name\":");
    string(out, a.file_name().as_str());
    out.extend_from_slice(b",\"content_type\":");
    string(out, a.content_type().as_str());
    out.extend_from_slice(b",\"byte_size\":");
    out.extend_from_slice(itoa_u64(a.byte_size().get(), &mut [0; 20]));
    out.extend_from_slice(b",\"url\":");
    string(out, a.url().as_str());
    out.push(b'}');
}

fn optional<T>(out: &mut Vec<u8>, value: Option<T>, write: impl FnOnce(&mut Vec<u8>, T)) {
    match value {
        Some(value) => write(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

fn id(out: &mut Vec<u8>, value: Uuid) {
    let mut buf = [0; uuid::fmt::Hyphenated::LENGTH];
    plain(out, value.hyphenated().encode_lower(&mut buf));
}

fn time(out: &mut Vec<u8>, value: Timestamp) {
    let mut buf = [0; RFC3339_MAX_LEN];
    plain_bytes(out, value.write_rfc3339_bytes(&mut buf));
}

/// A string known to need no escaping (an id, a timestamp, an enum's name).
fn plain(out: &mut Vec<u8>, value: &str) {
    plain_bytes(out, value.as_bytes());
}

fn plain_bytes(out: &mut Vec<u8>, value: &[u8]) {
    debug_assert!(!value.iter().copied().any(needs_escape));
    out.push(b'"');
    out.extend_from_slice(value);
    out.push(b'"');
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the 8 bytes of `word` is below 0x20, a `"` or a `\` (exact: the
/// classic zero-byte tests, which may flag a wrong lane but never miss or invent one).
fn any_needs_escape(word: u64) -> bool {
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
    control || zero_in(word ^ (ONES * u64::from(b'"'))) || zero_in(word ^ (ONES * u64::from(b'\\')))
}

/// `value` as a JSON string, escaped exactly as serde_json escapes it: `"` and `\`
/// with a backslash, the five short control escapes, other controls as `\u00XX`,
/// everything else (non-ASCII included) as it is.
pub fn string(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut run = 0; // start of the bytes not copied yet
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            if !any_needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        // Byte by byte until the end of this chunk (or of the string).
        let end = (i + 8).min(bytes.len());
        while i < end {
            let byte = bytes[i];
            if needs_escape(byte) {
                out.extend_from_slice(&bytes[run..i]);
                escape(out, byte);
                run = i + 1;
            }
            i += 1;
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

fn escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x09 => out.extend_from_slice(b"\\t"),
        0x0a => out.extend_from_slice(b"\\n"),
        0x0c => out.extend_from_slice(b"\\f"),
        0x0d => out.extend_from_slice(b"\\r"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ]),
    }
}

/// `value` in decimal, in `buf`.
fn itoa_u64(mut value: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &buf[start..];
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;

    use super::*;

    fn serde_string(value: &str) -> Vec<u8> {
        serde_json::to_vec(value).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut every_byte = String::new();
        for c in (0u8..0x80).map(char::from) {
            every_byte.push(c);
        }
        for value in [
            "",
            "plain ascii, longer than eight bytes",
            "\"quoted\" and \\back\\slashed\\",
            "line\nbreak\r\n\ttab \u{8}\u{c}\u{1}\u{1f}\u{7f}",
            "non-ASCII: ¿Hola? ありがとう 🙏 \u{2028}",
            every_byte.as_str(),
        ] {
            let mut out = Vec::new();
            string(&mut out, value);
            assert_eq!(out, serde_string(value), "{value:?}");
        }
    }

    #[test]
    fn numbers_are_decimal() {
        for value in [0, 7, 10, 1234567890, u64::MAX] {
            assert_eq!(itoa_u64(value, &mut [0; 20]), value.to_string().as_bytes());
        }
    }

    /// Text with every kind of character the writer treats apart.
    const TEXT: &str = "[a-z \"\\\\\n\r\t¿é🙏]{1,40}";

    proptest! {
        #[test]
        fn any_conversation_is_written_as_serde_json_writes_it(
            name in TEXT,
            email in proptest::option::of(TEXT),
            contents in proptest::collection::vec(TEXT, 0..5),
            file_name in TEXT,
            byte_size in any::<u32>(),
            attach in any::<bool>(),
        ) {
            use pingback_domain::testing::{
                AttachmentBuilder, ConversationBuilder, CustomerBuilder, MessageBuilder,
            };
            let business = pingback_domain::BusinessId::from_uuid(Uuid::now_v7());
            let customer = CustomerBuilder::new(business)
                .name(name.as_str())
                .email(email.as_deref())
                .build();
            let messages = contents.iter().map(|content| {
                let message = MessageBuilder::new().id(pingback_domain::MessageId::from_uuid(Uuid::now_v7())).content(content);
                if attach {
                    message
                        .attachment(
                            AttachmentBuilder::new()
                                .id(pingback_domain::AttachmentId::from_uuid(Uuid::now_v7()))
                                .file_name(&file_name)
                                .byte_size(u64::from(byte_size) + 1)
                                .build(),
                        )
                        .build()
                } else {
                    message.build()
                }
            });
            let conversation = ConversationBuilder::new(business)
                .customer(customer)
                .messages(messages)
                .build();
            let mut out = Vec::new();
            super::conversation(&conversation, &mut out);
            prop_assert_eq!(
                String::from_utf8(out).unwrap(),
                String::from_utf8(crate::representation::to_json_by_serde(&conversation)).unwrap()
            );
        }

        #[test]
        fn any_string_is_escaped_as_serde_json_escapes_it(value in any::<String>()) {
            let mut out = Vec::new();
            string(&mut out, &value);
            prop_assert_eq!(out, serde_string(&value));
        }

        #[test]
        fn the_word_test_flags_exactly_the_words_with_a_byte_to_escape(word in any::<[u8; 8]>()) {
            prop_assert_eq!(
                any_needs_escape(u64::from_le_bytes(word)),
                word.iter().any(|b| needs_escape(*b))
            );
        }
    }
}
