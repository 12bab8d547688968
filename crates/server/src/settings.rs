//! Layered configuration: built-in defaults → `config/default.toml` →
//! `config/{PINGBACK_ENV}.toml` → `PINGBACK__SECTION__KEY` variables (later wins).

use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use pingback_application::{DeliverySettings, SecretKey};
use pingback_domain::RetryPolicy;
use pingback_http::{AuthConfig, HttpSettings, KeyConfig};
use pingback_persistence::DatabaseSettings;
use pingback_webhook_client::ClientSettings;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The defaults ship inside the binary so it runs from any directory.
const DEFAULTS: &str = include_str!("../../../config/default.toml");
/// Refused in production: it is public.
pub const DEVELOPMENT_SECRET: &str = "pingback-development-secret-change-me-0123456789";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: {0}")]
    Invalid(String),
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSection,
    pub database: DatabaseSection,
    pub auth: AuthSection,
    pub events: EventsSection,
    pub webhooks: WebhooksSection,
    pub log: LogSection,
    #[serde(skip)]
    pub environment: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub bind: String,
    pub client_request_timeout_seconds: u64,
    pub shutdown_timeout_seconds: u64,
    pub workers: usize,
    pub max_connections_per_worker: usize,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    pub url: SecretString,
    pub max_connections: usize,
    pub read_connections: usize,
    pub connect_timeout_seconds: u64,
    pub pool_wait_timeout_seconds: u64,
    pub statement_timeout_seconds: u64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub algorithm: String,
    pub jwt_secret: Option<SecretString>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub public_key_file: Option<PathBuf>,
    pub private_key_file: Option<PathBuf>,
    pub leeway_seconds: u64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct EventsSection {
    /// Events older than this are pruned.
    pub retention_days: u64,
    /// Open event streams per process; beyond, 503.
    pub max_streams: usize,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct WebhooksSection {
    /// Development only: accept `http` URLs.
    pub allow_http: bool,
    /// Development only: deliver to non-public addresses.
    pub allow_private_networks: bool,
    /// `"5,30,120"` (as an environment variable) or a TOML array.
    pub retry_schedule_seconds: SecondsList,
    pub give_up_after_seconds: u64,
    pub timeout_seconds: u64,
    pub lease_seconds: u64,
    pub poll_interval_milliseconds: u64,
    pub concurrency: usize,
    pub signing_key: Option<SecretString>,
}

/// A list of seconds, written as a comma-separated string or an array.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum SecondsList {
    Text(String),
    List(Vec<u64>),
}

impl SecondsList {
    fn seconds(&self) -> Result<Vec<u64>, SettingsError> {
        match self {
            Self::List(list) => Ok(list.clone()),
            Self::Text(text) => text
                .split(',')
                .map(|part| {
                    part.trim().parse::<u64>().map_err(|_| {
                        SettingsError::Invalid(format!(
                            "webhooks.retry_schedule_seconds: {part:?} is not a number of \
                             seconds (expected e.g. \"5,30,120\")"
                        ))
                    })
                })
                .collect(),
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    pub format: String,
    pub level: String,
}

impl Settings {
    /// Loads from `PINGBACK_CONFIG_DIR` (default `config`) and the environment.
    pub fn load() -> Result<Self, SettingsError> {
        let dir = std::env::var_os("PINGBACK_CONFIG_DIR")
            .map_or_else(|| PathBuf::from("config"), PathBuf::from);
        let environment =
            std::env::var("PINGBACK_ENV").unwrap_or_else(|_| "development".to_owned());
        Self::load_from(
            &dir,
            &environment,
            Environment::with_prefix("PINGBACK")
                .prefix_separator("__")
                .separator("__"),
        )
    }

    fn load_from(dir: &Path, environment: &str, env: Environment) -> Result<Self, SettingsError> {
        if environment.is_empty()
            || !environment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(SettingsError::Invalid(format!(
                "PINGBACK_ENV {environment:?} is not a plain name"
            )));
        }
        let config = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .add_source(File::from(dir.join("default.toml")).required(false))
            .add_source(File::from(dir.join(format!("{environment}.toml"))).required(false))
            .add_source(env)
            .build()?;
        let mut settings: Settings = config.try_deserialize()?;
        settings.environment = environment.to_owned();
        settings.validate()?;
        Ok(settings)
    }

    pub fn is_production(&self) -> bool {
        self.environment == "production"
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if self.events.retention_days == 0 || self.events.retention_days > 36_500 {
            return Err(SettingsError::Invalid(
                "events.retention_days must be between 1 and 36500".into(),
            ));
        }
        if self.events.max_streams == 0 {
            return Err(SettingsError::Invalid(
                "events.max_streams must be at least 1".into(),
            ));
        }
        let invalid = |m: &str| Err(SettingsError::Invalid(m.to_owned()));
        if self.auth.leeway_seconds > pingback_http::auth::MAX_LEEWAY_SECONDS {
            return invalid("auth.leeway_seconds must be between 0 and 60");
        }
        if self.is_production()
            && self.auth.algorithm.eq_ignore_ascii_case("HS256")
            && self
                .auth
                .jwt_secret
                .as_ref()
                .is_none_or(|s| s.expose_secret() == DEVELOPMENT_SECRET)
        {
            return invalid(
                "PINGBACK_ENV=production refuses the development JWT secret: set PINGBACK__AUTH__JWT_SECRET",
            );
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections must be at least 1");
        }
        if self.database.read_connections == 0 {
            return invalid("database.read_connections must be at least 1");
        }
        if self.server.client_request_timeout_seconds == 0 {
            return invalid("server.client_request_timeout_seconds must be at least 1");
        }
        self.delivery()?;
        let w = &self.webhooks;
        if w.timeout_seconds == 0 || w.timeout_seconds > 300 {
            return invalid("webhooks.timeout_seconds must be between 1 and 300");
        }
        if w.lease_seconds <= w.timeout_seconds {
            return invalid("webhooks.lease_seconds must be more than webhooks.timeout_seconds");
        }
        if w.poll_interval_milliseconds == 0 || w.concurrency == 0 {
            return invalid(
                "webhooks.poll_interval_milliseconds and webhooks.concurrency must be at least 1",
            );
        }
        if self.is_production() && (w.allow_http || w.allow_private_networks) {
            tracing::warn!(
                "webhooks.allow_http / webhooks.allow_private_networks are on in production: \
                 endpoints may reach internal services (SSRF)"
            );
        }
        match self.log.format.as_str() {
            "text" | "json" => Ok(()),
            other => Err(SettingsError::Invalid(format!(
                "log.format must be \"text\" or \"json\", not {other:?}"
            ))),
        }
    }

    pub fn database(&self) -> DatabaseSettings {
        let d = &self.database;
        DatabaseSettings {
            url: d.url.clone(),
            max_connections: d.max_connections,
            read_connections: d.read_connections,
            connect_timeout: Duration::from_secs(d.connect_timeout_seconds),
            pool_wait_timeout: Duration::from_secs(d.pool_wait_timeout_seconds),
            statement_timeout: Duration::from_secs(d.statement_timeout_seconds),
        }
    }

    /// How webhooks are delivered.
    pub fn delivery(&self) -> Result<DeliverySettings, SettingsError> {
        let w = &self.webhooks;
        let schedule = w
            .retry_schedule_seconds
            .seconds()?
            .into_iter()
            .map(Duration::from_secs)
            .collect();
        let policy = RetryPolicy::new(schedule, Duration::from_secs(w.give_up_after_seconds))
            .map_err(|e| SettingsError::Invalid(format!("webhooks.retry_schedule_seconds: {e}")))?;
        Ok(DeliverySettings {
            policy,
            lease: Duration::from_secs(w.lease_seconds),
            poll: Duration::from_millis(w.poll_interval_milliseconds),
            concurrency: w.concurrency,
        })
    }

    /// What the outbound client allows.
    pub fn webhook_client(&self) -> ClientSettings {
        let w = &self.webhooks;
        ClientSettings {
            allow_http: w.allow_http,
            allow_private_networks: w.allow_private_networks,
            timeout: Duration::from_secs(w.timeout_seconds),
        }
    }

    /// The key webhook secrets are derived from: `webhooks.signing_key`, else the
    /// HS256 secret. Never a public key: anyone could then compute the secrets from a
    /// database dump.
    pub fn webhook_key(&self) -> Result<SecretKey, SettingsError> {
        use sha2::Digest as _;
        let material = match (&self.webhooks.signing_key, &self.auth.jwt_secret) {
            (Some(key), _) => key,
            (None, Some(secret)) if self.auth.algorithm.eq_ignore_ascii_case("HS256") => secret,
            _ => {
                return Err(SettingsError::Invalid(
                    "webhooks.signing_key is required with RS256/ES256 tokens".into(),
                ));
            }
        };
        let mut digest = sha2::Sha256::new();
        digest.update(b"pingback webhook signing key v1\0");
        digest.update(material.expose_secret().as_bytes());
        Ok(SecretKey::new(digest.finalize().into()))
    }

    pub fn http(&self) -> HttpSettings {
        HttpSettings {
            client_request_timeout: Duration::from_secs(self.server.client_request_timeout_seconds),
            shutdown_timeout: Duration::from_secs(self.server.shutdown_timeout_seconds),
            workers: self.server.workers,
            max_connections_per_worker: self.server.max_connections_per_worker,
        }
    }

    pub fn auth(&self) -> Result<AuthConfig, SettingsError> {
        let a = &self.auth;
        let read = |path: &Option<PathBuf>, what: &str| -> Result<Option<String>, SettingsError> {
            path.as_ref()
                .map(|p| {
                    std::fs::read_to_string(p).map_err(|e| {
                        SettingsError::Invalid(format!("auth.{what} {}: {e}", p.display()))
                    })
                })
                .transpose()
        };
        let key = match a.algorithm.to_ascii_uppercase().as_str() {
            "HS256" => KeyConfig::Hs256 {
                secret: a.jwt_secret.clone().ok_or_else(|| {
                    SettingsError::Invalid("auth.jwt_secret is required for HS256".into())
                })?,
            },
            alg @ ("RS256" | "ES256") => {
                let public_key_pem =
                    read(&a.public_key_file, "public_key_file")?.ok_or_else(|| {
                        SettingsError::Invalid(format!(
                            "auth.public_key_file is required for {alg}"
                        ))
                    })?;
                let private_key_pem =
                    read(&a.private_key_file, "private_key_file")?.map(SecretString::from);
                if alg == "RS256" {
                    KeyConfig::Rs256 {
                        public_key_pem,
                        private_key_pem,
                    }
                } else {
                    KeyConfig::Es256 {
                        public_key_pem,
                        private_key_pem,
                    }
                }
            }
            other => {
                return Err(SettingsError::Invalid(format!(
                    "auth.algorithm must be HS256, RS256 or ES256, not {other:?}"
                )));
            }
        };
        Ok(AuthConfig {
            key,
            issuer: a.issuer.clone(),
            audience: a.audience.clone(),
            leeway_seconds: a.leeway_seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn load(environment: &str, vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let source: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let env = Environment::with_prefix("PINGBACK")
            .prefix_separator("__")
            .separator("__")
            .source(Some(source));
        Settings::load_from(dir.path(), environment, env)
    }

    #[test]
    fn defaults_are_the_embedded_sqlite_and_loopback() {
        let s = load("development", &[]).unwrap();
        assert_eq!(s.server.bind, "127.0.0.1:8080");
        assert!(s.database.url.expose_secret().starts_with("sqlite://"));
        assert_eq!(s.auth.leeway_seconds, 30);
    }

    #[test]
    fn environment_variables_override() {
        let s = load(
            "development",
            &[
                ("PINGBACK__DATABASE__URL", "postgres://u@h/db"),
                ("PINGBACK__AUTH__LEEWAY_SECONDS", "5"),
            ],
        )
        .unwrap();
        assert_eq!(s.database.url.expose_secret(), "postgres://u@h/db");
        assert_eq!(s.auth.leeway_seconds, 5);
    }

    #[test]
    fn production_refuses_the_development_secret() {
        let err = load("production", &[]).unwrap_err().to_string();
        assert!(err.contains("development JWT secret"), "{err}");
        assert!(
            load(
                "production",
                &[(
                    "PINGBACK__AUTH__JWT_SECRET",
                    "a-real-secret-of-more-than-32-bytes!!"
                )]
            )
            .is_ok()
        );
    }

    #[test]
    fn leeway_is_bounded_and_typos_are_refused() {
        assert!(load("development", &[("PINGBACK__AUTH__LEEWAY_SECONDS", "61")]).is_err());
        assert!(load("development", &[("PINGBACK__DATABASE__ULR", "x")]).is_err());
    }

    #[test]
    fn webhook_settings_take_lists_as_text_and_refuse_nonsense() {
        let s = load(
            "development",
            &[("PINGBACK__WEBHOOKS__RETRY_SCHEDULE_SECONDS", "1, 2,3")],
        )
        .unwrap();
        assert!(s.delivery().is_ok());
        assert_eq!(s.webhook_client().timeout, Duration::from_secs(10));
        for (key, value) in [
            ("PINGBACK__WEBHOOKS__RETRY_SCHEDULE_SECONDS", "1,x"),
            ("PINGBACK__WEBHOOKS__RETRY_SCHEDULE_SECONDS", "0"),
            ("PINGBACK__WEBHOOKS__LEASE_SECONDS", "10"),
            ("PINGBACK__WEBHOOKS__TIMEOUT_SECONDS", "0"),
        ] {
            assert!(
                load("development", &[(key, value)]).is_err(),
                "{key}={value}"
            );
        }
    }

    #[test]
    fn the_webhook_key_never_comes_from_a_public_key() {
        let hs = load("development", &[]).unwrap();
        assert!(hs.webhook_key().is_ok());
        let rs = load("development", &[("PINGBACK__AUTH__ALGORITHM", "RS256")]).unwrap();
        assert!(rs.webhook_key().is_err());
        let rs = load(
            "development",
            &[
                ("PINGBACK__AUTH__ALGORITHM", "RS256"),
                (
                    "PINGBACK__WEBHOOKS__SIGNING_KEY",
                    "another-secret-of-32-bytes-at-least!",
                ),
            ],
        )
        .unwrap();
        assert!(rs.webhook_key().is_ok());
    }

    #[test]
    fn secrets_never_print() {
        let s = load(
            "development",
            &[("PINGBACK__DATABASE__URL", "postgres://u:hunter2@h/db")],
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains(DEVELOPMENT_SECRET),
            "{shown}"
        );
    }
}
