//! Bearer JWT authentication: from an `Authorization` header to a [`Principal`].
//!
//! The accepted algorithm is fixed by configuration and never taken from the token;
//! authentication needs no database.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use pingback_application::{Principal, Scope, Scopes, Subject};
use pingback_domain::BusinessId;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Headers longer than this are refused before any decoding work.
pub const MAX_AUTHORIZATION_BYTES: usize = 8 * 1024;
/// The largest clock-skew leeway the contract allows.
pub const MAX_LEEWAY_SECONDS: u64 = 60;

/// Which key verifies tokens. HS256 with a shared secret by default.
#[derive(Clone)]
pub enum KeyConfig {
    Hs256 {
        secret: SecretString,
    },
    Rs256 {
        public_key_pem: String,
        private_key_pem: Option<SecretString>,
    },
    Es256 {
        public_key_pem: String,
        private_key_pem: Option<SecretString>,
    },
}

#[derive(Clone)]
pub struct AuthConfig {
    pub key: KeyConfig,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway_seconds: u64,
}

/// A configuration that cannot verify tokens; the server refuses to start with it.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("the JWT secret must be at least 32 bytes")]
    WeakSecret,
    #[error("invalid public key: {0}")]
    PublicKey(String),
    #[error("invalid private key: {0}")]
    PrivateKey(String),
    #[error("leeway must be between 0 and {MAX_LEEWAY_SECONDS} seconds")]
    Leeway,
    #[error("no signing key is configured for {0:?} (tokens can only be verified)")]
    CannotSign(Algorithm),
    #[error("the configured key does not verify a token it signed: {0}")]
    SelfTest(String),
}

/// Why a request is not authenticated. Every variant is a 401; the text is the
/// problem's `detail` and the `error_description` of `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("an Authorization header with a Bearer token is required")]
    Missing,
    #[error("the Authorization header must use the Bearer scheme")]
    WrongScheme,
    #[error("the Authorization header is too large")]
    TooLarge,
    #[error("the access token is malformed")]
    Malformed,
    #[error("the access token's signature or algorithm is not accepted")]
    BadSignature,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token was issued in the future")]
    IssuedInFuture,
    #[error("the access token lacks a valid `{0}` claim")]
    Claim(&'static str),
    #[error("the access token's issuer is not accepted")]
    Issuer,
    #[error("the access token's audience is not accepted")]
    Audience,
    #[error("the access token uses unsupported critical header parameters")]
    Critical,
}

impl AuthError {
    /// RFC 6750: a request without credentials gets a bare challenge; a bad token
    /// gets `error="invalid_token"`.
    pub fn challenge(&self) -> String {
        match self {
            Self::Missing | Self::WrongScheme => r#"Bearer realm="pingback""#.to_owned(),
            other => format!(
                r#"Bearer realm="pingback", error="invalid_token", error_description="{other}""#
            ),
        }
    }
}

/// The claims we read. `exp`, `nbf`, `iss` and `aud` are checked by `jsonwebtoken`.
#[derive(Deserialize)]
struct Claims {
    sub: Option<serde_json::Value>,
    business_id: Option<serde_json::Value>,
    iat: Option<serde_json::Value>,
    scope: Option<serde_json::Value>,
    exp: Option<serde_json::Value>,
}

/// Verifies tokens and, when the key allows, signs them (for `pingback token` and the
/// start-up self-test).
pub struct TokenAuthority {
    algorithm: Algorithm,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
    leeway: u64,
    issuer: Option<String>,
    audience: Option<String>,
    cursor_key: [u8; 32],
}

impl TokenAuthority {
    pub fn new(config: &AuthConfig) -> Result<Self, AuthConfigError> {
        if config.leeway_seconds > MAX_LEEWAY_SECONDS {
            return Err(AuthConfigError::Leeway);
        }
        let (algorithm, decoding, encoding) = match &config.key {
            KeyConfig::Hs256 { secret } => {
                let bytes = secret.expose_secret().as_bytes();
                if bytes.len() < 32 {
                    return Err(AuthConfigError::WeakSecret);
                }
                (
                    Algorithm::HS256,
                    DecodingKey::from_secret(bytes),
                    Some(EncodingKey::from_secret(bytes)),
                )
            }
            KeyConfig::Rs256 {
                public_key_pem,
                private_key_pem,
            } => (
                Algorithm::RS256,
                DecodingKey::from_rsa_pem(public_key_pem.as_bytes())
                    .map_err(|e| AuthConfigError::PublicKey(e.to_string()))?,
                private_key_pem
                    .as_ref()
                    .map(|pem| EncodingKey::from_rsa_pem(pem.expose_secret().as_bytes()))
                    .transpose()
                    .map_err(|e| AuthConfigError::PrivateKey(e.to_string()))?,
            ),
            KeyConfig::Es256 {
                public_key_pem,
                private_key_pem,
            } => (
                Algorithm::ES256,
                DecodingKey::from_ec_pem(public_key_pem.as_bytes())
                    .map_err(|e| AuthConfigError::PublicKey(e.to_string()))?,
                private_key_pem
                    .as_ref()
                    .map(|pem| EncodingKey::from_ec_pem(pem.expose_secret().as_bytes()))
                    .transpose()
                    .map_err(|e| AuthConfigError::PrivateKey(e.to_string()))?,
            ),
        };

        // The algorithm list has exactly one entry: the token's `alg` cannot choose.
        let mut validation = Validation::new(algorithm);
        validation.leeway = config.leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required: HashSet<String> = ["exp", "sub"].map(String::from).into();
        match &config.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.insert("iss".into());
            }
            None => validation.iss = None,
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.validate_aud = true;
                required.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        validation.required_spec_claims = required;

        // Inbox cursors are signed with a key derived from the token key material, so
        // every server sharing the configuration accepts every other's cursors. With
        // HS256 the key is secret: a cursor can be neither forged nor altered. With
        // RS256/ES256 only the public key is here, so the signature catches alteration
        // but not a deliberate forgery; that still cannot reach beyond the forger's own
        // business and filters, which every cursor is checked against on use.
        let material: &[u8] = match &config.key {
            KeyConfig::Hs256 { secret } => secret.expose_secret().as_bytes(),
            KeyConfig::Rs256 { public_key_pem, .. } | KeyConfig::Es256 { public_key_pem, .. } => {
                public_key_pem.as_bytes()
            }
        };
        let cursor_key = {
            use sha2::Digest as _;
            let mut digest = sha2::Sha256::new();
            digest.update(b"pingback inbox cursor key v1\0");
            digest.update(material);
            digest.finalize().into()
        };
        Ok(Self {
            algorithm,
            decoding,
            encoding,
            validation,
            cursor_key,
            leeway: config.leeway_seconds,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The key inbox cursors are signed with.
    pub(crate) fn cursor_key(&self) -> &[u8; 32] {
        &self.cursor_key
    }

    /// Authenticates an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&[u8]>) -> Result<Principal, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        if header.len() > MAX_AUTHORIZATION_BYTES {
            return Err(AuthError::TooLarge);
        }
        let header = std::str::from_utf8(header).map_err(|_| AuthError::Malformed)?;
        let (scheme, token) = header.trim().split_once(' ').ok_or_else(|| {
            if header.trim().eq_ignore_ascii_case("bearer") {
                AuthError::Malformed
            } else {
                AuthError::WrongScheme
            }
        })?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::WrongScheme);
        }
        self.verify(token.trim_start_matches(' '))
    }

    /// Verifies a compact JWS and returns who it names.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let well_formed = token.split('.').count() == 3
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !well_formed {
            return Err(AuthError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.crit.is_some() {
            return Err(AuthError::Critical);
        }
        if header.alg != self.algorithm {
            return Err(AuthError::BadSignature);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| map_jwt_error(e.kind()))?;
        let claims = data.claims;

        let subject = match claims.sub {
            Some(serde_json::Value::String(sub)) => {
                Subject::new(sub).map_err(|_| AuthError::Claim("sub"))?
            }
            _ => return Err(AuthError::Claim("sub")),
        };
        let business = match claims.business_id {
            Some(serde_json::Value::String(id)) => {
                BusinessId::parse(&id).map_err(|_| AuthError::Claim("business_id"))?
            }
            _ => return Err(AuthError::Claim("business_id")),
        };
        if let Some(iat) = claims.iat {
            let iat = iat.as_f64().ok_or(AuthError::Claim("iat"))?;
            if iat > (now_seconds() + self.leeway) as f64 {
                return Err(AuthError::IssuedInFuture);
            }
        }
        // RFC 8693 §4.2: space-separated scope names; unknown ones grant nothing.
        // Without the claim a token may read, as tokens did before scopes existed.
        let scopes = match claims.scope {
            None | Some(serde_json::Value::Null) => Scopes::READ_ONLY,
            Some(serde_json::Value::String(names)) => {
                names.split(' ').filter_map(Scope::parse).collect()
            }
            Some(_) => return Err(AuthError::Claim("scope")),
        };
        let principal = Principal::with_scopes(business, subject, scopes);
        // `exp` was validated by jsonwebtoken; a long-lived stream ends when it passes.
        Ok(
            match claims.exp.as_ref().and_then(serde_json::Value::as_f64) {
                Some(exp) => principal.expiring_at(exp as i64),
                None => principal,
            },
        )
    }

    /// Signs a token for `business` and `subject` with every scope, valid for `ttl`.
    pub fn mint(
        &self,
        business: BusinessId,
        subject: &Subject,
        ttl: Duration,
    ) -> Result<String, AuthConfigError> {
        self.mint_with_scopes(business, subject, ttl, Scopes::all())
    }

    /// Signs a token for `business` and `subject` with `scopes`, valid for `ttl`.
    pub fn mint_with_scopes(
        &self,
        business: BusinessId,
        subject: &Subject,
        ttl: Duration,
        scopes: Scopes,
    ) -> Result<String, AuthConfigError> {
        let key = self
            .encoding
            .as_ref()
            .ok_or(AuthConfigError::CannotSign(self.algorithm))?;
        let now = now_seconds();
        let claims = MintedClaims {
            sub: subject.as_str(),
            business_id: business.to_string(),
            iat: now,
            exp: now.saturating_add(ttl.as_secs()),
            scope: scopes
                .iter()
                .map(Scope::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            iss: self.issuer.as_deref(),
            aud: self.audience.as_deref(),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key)
            .map_err(|e| AuthConfigError::SelfTest(e.to_string()))
    }

    /// Proves at start-up that the crypto backend and key work, so a misconfiguration
    /// stops the process instead of failing (or panicking) in the first request.
    pub fn self_test(&self) -> Result<(), AuthConfigError> {
        if self.encoding.is_none() {
            // Verification-only key: exercise the verifier on a token it must reject.
            let probe = format!(
                "{}.{}.{}",
                b64(&format!(r#"{{"alg":"{:?}","typ":"JWT"}}"#, self.algorithm)),
                b64(r#"{"sub":"self-test"}"#),
                b64("x")
            );
            return match self.verify(&probe) {
                Err(_) => Ok(()),
                Ok(_) => Err(AuthConfigError::SelfTest("a forged token verified".into())),
            };
        }
        let business = BusinessId::from_uuid(uuid::Uuid::nil());
        let subject =
            Subject::new("self-test").map_err(|e| AuthConfigError::SelfTest(e.to_string()))?;
        let token = self.mint(business, &subject, Duration::from_secs(60))?;
        let principal = self
            .verify(&token)
            .map_err(|e| AuthConfigError::SelfTest(e.to_string()))?;
        if principal.business_id() != business {
            return Err(AuthConfigError::SelfTest(
                "claims did not round-trip".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct MintedClaims<'a> {
    sub: &'a str,
    business_id: String,
    iat: u64,
    exp: u64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn map_jwt_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::Issuer,
        ErrorKind::InvalidAudience => AuthError::Audience,
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName => AuthError::BadSignature,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::Claim(match claim.as_str() {
            "exp" => "exp",
            "sub" => "sub",
            "iss" => "iss",
            "aud" => "aud",
            _ => "exp",
        }),
        ErrorKind::InvalidClaimFormat(claim) if claim == "exp" => AuthError::Claim("exp"),
        ErrorKind::InvalidClaimFormat(claim) if claim == "nbf" => AuthError::Claim("nbf"),
        _ => AuthError::Malformed,
    }
}
