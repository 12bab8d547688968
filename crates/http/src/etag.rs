//! Strong entity tags, and `If-None-Match` matching.
//!
//! A conversation read from storage is tagged by what it was read at (business, id,
//! the revisions of the conversation and of its customer) and by how bodies are
//! written: the tag can then be checked without reading or writing the body. Anything
//! else is tagged by its bytes.

use std::sync::OnceLock;

use pingback_domain::{BusinessId, ConversationId, Revision};
use xxhash_rust::xxh3::xxh3_128;

/// A strong validator: equal bodies give equal tags, on every node and every restart.
pub fn strong_etag(body: &[u8]) -> String {
    format!("\"{:032x}\"", xxh3_128(body))
}

/// A strong validator for a stored conversation: the same business, id and
/// revisions hold the same data, and the same representation writes the same bytes
/// for it, on every node and every restart.
pub fn revision_etag(business: BusinessId, id: ConversationId, revision: Revision) -> String {
    // fingerprint | business | id | conversation revision | customer: flag, revision
    let mut key = [0_u8; 16 * 3 + 8 + 1 + 8];
    key[..16].copy_from_slice(&representation_fingerprint().to_le_bytes());
    key[16..32].copy_from_slice(business.into_uuid().as_bytes());
    key[32..48].copy_from_slice(id.into_uuid().as_bytes());
    key[48..56].copy_from_slice(&revision.conversation().to_le_bytes());
    let len = match revision.customer() {
        Some(customer) => {
            key[56] = 1;
            key[57..].copy_from_slice(&customer.to_le_bytes());
            key.len()
        }
        None => 57,
    };
    format!("\"{:032x}\"", xxh3_128(&key[..len]))
}

/// The bytes the representation writes for the documentation's example, hashed: a
/// release that writes bodies differently has another fingerprint, hence new tags,
/// so no client keeps a copy in the old format on the strength of a 304.
fn representation_fingerprint() -> u128 {
    static FINGERPRINT: OnceLock<u128> = OnceLock::new();
    *FINGERPRINT.get_or_init(|| {
        crate::example::conversation()
            .ok()
            .and_then(|c| crate::representation::to_json(&c).ok())
            .map_or(0, |body| xxh3_128(&body))
    })
}

/// RFC 9110 §13.1.2: `*` matches any current representation; otherwise a list of
/// entity tags compared weakly (a `W/` prefix is ignored).
pub fn none_match(if_none_match: &str, etag: &str) -> bool {
    let header = if_none_match.trim();
    if header == "*" {
        return true;
    }
    header
        .split(',')
        .map(str::trim)
        .map(|tag| tag.strip_prefix("W/").unwrap_or(tag))
        .any(|tag| tag == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_tags_change_with_every_part_of_the_key() {
        let business = BusinessId::from_uuid(uuid::Uuid::from_u128(1));
        let id = ConversationId::from_uuid(uuid::Uuid::from_u128(2));
        let tag = revision_etag(business, id, Revision::new(3, Some(4)));
        assert_eq!(tag, revision_etag(business, id, Revision::new(3, Some(4))));
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34);
        for other in [
            revision_etag(
                BusinessId::from_uuid(uuid::Uuid::from_u128(9)),
                id,
                Revision::new(3, Some(4)),
            ),
            revision_etag(
                business,
                ConversationId::from_uuid(uuid::Uuid::from_u128(9)),
                Revision::new(3, Some(4)),
            ),
            revision_etag(business, id, Revision::new(4, Some(4))),
            revision_etag(business, id, Revision::new(3, Some(5))),
            revision_etag(business, id, Revision::new(3, None)),
        ] {
            assert_ne!(tag, other);
        }
        assert_ne!(representation_fingerprint(), 0, "the example serializes");
    }

    #[test]
    fn tags_are_strong_and_stable() {
        let tag = strong_etag(b"{}");
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34);
        assert_eq!(tag, strong_etag(b"{}"));
        assert_ne!(tag, strong_etag(b"{ }"));
    }

    #[test]
    fn if_none_match_lists_wildcards_and_weak_tags() {
        let tag = strong_etag(b"x");
        assert!(none_match(&tag, &tag));
        assert!(none_match("*", &tag));
        assert!(none_match(&format!("\"abc\", W/{tag}"), &tag));
        assert!(!none_match("\"abc\"", &tag));
        assert!(!none_match("", &tag));
    }
}
