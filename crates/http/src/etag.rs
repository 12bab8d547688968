//! Strong entity tags over the exact body bytes, and `If-None-Match` matching.

use xxhash_rust::xxh3::xxh3_128;

/// A strong validator: equal bodies give equal tags, on every node and every restart.
pub fn strong_etag(body: &[u8]) -> String {
    format!("\"{:032x}\"", xxh3_128(body))
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
