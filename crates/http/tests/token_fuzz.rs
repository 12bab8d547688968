//! Property tests of the bearer-token extractor: whatever bytes arrive in the
//! `Authorization` header, it answers (never panics, never accepts a forgery), and
//! stays cheap. `make fuzz` runs many more cases (PROPTEST_CASES).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pingback_application::Subject;
use pingback_domain::BusinessId;
use pingback_http::{AuthConfig, KeyConfig, TokenAuthority};
use proptest::prelude::*;
use secrecy::SecretString;

fn authority() -> TokenAuthority {
    TokenAuthority::new(&AuthConfig {
        key: KeyConfig::Hs256 {
            secret: SecretString::from("fuzz-secret-fuzz-secret-fuzz-secret!"),
        },
        issuer: None,
        audience: None,
        leeway_seconds: 30,
    })
    .unwrap()
}

fn valid_token(authority: &TokenAuthority) -> String {
    let business = BusinessId::parse("b2c3d4e5-f6a7-8901-bcde-f12345678901").unwrap();
    authority
        .mint(
            business,
            &Subject::new("fuzz").unwrap(),
            Duration::from_secs(600),
        )
        .unwrap()
}

proptest! {
    #[test]
    fn arbitrary_header_bytes_are_refused_without_panicking(header in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(authority().authenticate(Some(&header)).is_err());
    }

    #[test]
    fn arbitrary_bearer_tokens_are_refused(token in "[A-Za-z0-9_.=-]{0,600}") {
        let header = format!("Bearer {token}");
        prop_assert!(authority().authenticate(Some(header.as_bytes())).is_err());
    }

    #[test]
    fn three_segment_junk_is_refused(a in "[A-Za-z0-9_-]{0,200}", b in "[A-Za-z0-9_-]{0,400}", c in "[A-Za-z0-9_-]{0,100}") {
        let header = format!("Bearer {a}.{b}.{c}");
        prop_assert!(authority().authenticate(Some(header.as_bytes())).is_err());
    }

    #[test]
    fn any_single_change_to_a_valid_token_is_refused(position in any::<prop::sample::Index>(), replacement in "[A-Za-z0-9_-]") {
        let authority = authority();
        let token = valid_token(&authority);
        let at = position.index(token.len());
        let original = &token[at..=at];
        prop_assume!(original != "." && original != replacement.as_str());
        let mut forged = token.clone();
        forged.replace_range(at..=at, &replacement);
        // A change in the last base64 character of a segment may only flip unused
        // padding bits; such an equivalent encoding is the same token, not a forgery.
        let result = authority.authenticate(Some(format!("Bearer {forged}").as_bytes()));
        if let Ok(principal) = result {
            prop_assert_eq!(principal.subject().as_str(), "fuzz");
        }
    }
}

#[test]
fn a_valid_token_is_accepted() {
    let authority = authority();
    let token = valid_token(&authority);
    assert!(
        authority
            .authenticate(Some(format!("Bearer {token}").as_bytes()))
            .is_ok()
    );
}
