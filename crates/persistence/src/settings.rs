use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::error::StorageError;

/// Where the database is and how long callers may wait for it.
#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    /// `postgres://…` / `postgresql://…`, or `sqlite://relative/path` /
    /// `sqlite:///absolute/path`. Secret: it may carry a password.
    pub url: SecretString,
    /// Pool size: imports; on SQLite also reads and readiness checks.
    pub max_connections: usize,
    /// Connections that conversation reads share, pipelined (PostgreSQL only; SQLite
    /// reads use the pool).
    pub read_connections: usize,
    /// Bounds establishing one connection (TCP, TLS-less handshake, authentication).
    pub connect_timeout: Duration,
    /// How long a request waits for a pooled connection.
    pub pool_wait_timeout: Duration,
    /// Bounds every statement (server side for PostgreSQL, lock waits for SQLite).
    pub statement_timeout: Duration,
}

impl DatabaseSettings {
    /// The service's defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
            max_connections: 10,
            read_connections: 1,
            connect_timeout: Duration::from_secs(3),
            pool_wait_timeout: Duration::from_secs(4),
            statement_timeout: Duration::from_secs(5),
        }
    }

    /// Which adapter the URL's scheme selects.
    pub fn backend(&self) -> Result<Backend, StorageError> {
        Ok(match self.target()? {
            Target::Postgres(_) => Backend::Postgres,
            Target::Sqlite(_) => Backend::Sqlite,
        })
    }

    pub(crate) fn target(&self) -> Result<Target, StorageError> {
        parse_url(self.url.expose_secret())
    }

    pub(crate) fn validate(&self) -> Result<(), StorageError> {
        if self.max_connections == 0 {
            return Err(StorageError::InvalidSettings(
                "max_connections must be at least 1".into(),
            ));
        }
        if self.read_connections == 0 {
            return Err(StorageError::InvalidSettings(
                "read_connections must be at least 1".into(),
            ));
        }
        // PostgreSQL reads 0 as "no timeout", the opposite of what was asked.
        if self.statement_timeout < Duration::from_millis(1) {
            return Err(StorageError::InvalidSettings(
                "statement_timeout must be at least 1 ms".into(),
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(StorageError::InvalidSettings(
                "connect_timeout must be positive".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        })
    }
}

/// A parsed database URL.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The URL as tokio-postgres takes it.
    Postgres(String),
    /// The database file, relative to the working directory or absolute.
    Sqlite(PathBuf),
}

/// Error messages name the scheme at most: the rest of the URL may hold a password.
fn parse_url(url: &str) -> Result<Target, StorageError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(StorageError::InvalidUrl(
            "expected postgres://…, postgresql://…, sqlite://relative/path or sqlite:///absolute/path"
                .into(),
        ));
    };
    match scheme {
        "postgres" | "postgresql" => {
            if rest.is_empty() {
                return Err(StorageError::InvalidUrl(
                    "the PostgreSQL URL names no server".into(),
                ));
            }
            Ok(Target::Postgres(url.to_owned()))
        }
        "sqlite" => {
            if rest.is_empty() || rest == "/" {
                return Err(StorageError::InvalidUrl(
                    "the SQLite URL names no file (sqlite://relative/path or sqlite:///absolute/path)"
                        .into(),
                ));
            }
            if rest.contains(['?', '#']) {
                return Err(StorageError::InvalidUrl(
                    "SQLite URLs take no query or fragment".into(),
                ));
            }
            Ok(Target::Sqlite(PathBuf::from(rest)))
        }
        other => {
            let shown = if other.len() <= 20 && other.chars().all(|c| c.is_ascii_alphanumeric()) {
                format!("\"{other}\"")
            } else {
                "in the URL".to_owned()
            };
            Err(StorageError::InvalidUrl(format!(
                "unsupported scheme {shown}: expected postgres, postgresql or sqlite"
            )))
        }
    }
}

/// Adds tokio-postgres's socket-level connect timeout (whole seconds, at least one)
/// unless the URL sets its own.
pub(crate) fn with_connect_timeout(url: &str, timeout: Duration) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let seconds = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}connect_timeout={}", seconds.max(1))
}

/// SQLite's URI form of a file path (`file:` plus percent-encoding), so that no
/// character of the path is read as URI syntax (`?`, `#`, `%`, `:memory:`…), plus a
/// `mode`: `rw` to open an existing database, `rwc` to create it.
pub(crate) fn sqlite_uri(path: &std::path::Path, mode: &str) -> String {
    let mut uri = String::from("file:");
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                uri.push(char::from(*byte));
            }
            _ => {
                let _ = write!(uri, "%{byte:02X}");
            }
        }
    }
    // "file://x" would read "x" as an authority: keep paths from starting with "//".
    if uri.starts_with("file://") {
        uri = format!("file:/{}", uri["file:".len()..].trim_start_matches('/'));
    }
    uri.push_str("?mode=");
    uri.push_str(mode);
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> DatabaseSettings {
        DatabaseSettings::new(url)
    }

    #[test]
    fn postgres_schemes() {
        for url in [
            "postgres://user:pw@localhost:5432/db",
            "postgresql://user@localhost/db?sslmode=disable",
        ] {
            assert_eq!(settings(url).backend().unwrap(), Backend::Postgres);
            assert_eq!(parse_url(url).unwrap(), Target::Postgres(url.into()));
        }
    }

    #[test]
    fn sqlite_relative_and_absolute() {
        assert_eq!(
            parse_url("sqlite://data/pingback.sqlite").unwrap(),
            Target::Sqlite(PathBuf::from("data/pingback.sqlite"))
        );
        assert_eq!(
            parse_url("sqlite:///var/lib/pingback/db.sqlite").unwrap(),
            Target::Sqlite(PathBuf::from("/var/lib/pingback/db.sqlite"))
        );
        assert!(
            PathBuf::from("/var/lib/pingback/db.sqlite").is_absolute()
                && !PathBuf::from("data/pingback.sqlite").is_absolute()
        );
        assert_eq!(
            settings("sqlite://x.db").backend().unwrap(),
            Backend::Sqlite
        );
    }

    #[test]
    fn unknown_or_malformed_urls_are_refused_without_echoing_secrets() {
        for url in [
            "mysql://root:hunter2@localhost/db",
            "hunter2",
            "sqlite://",
            "sqlite:///",
            "postgres://",
            "sqlite://db.sqlite?mode=memory",
            "http+x://u:hunter2@h",
        ] {
            let error = settings(url).backend().unwrap_err();
            assert!(matches!(error, StorageError::InvalidUrl(_)), "{url}");
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
        assert!(
            settings("mysql://root:pw@h/db")
                .backend()
                .unwrap_err()
                .to_string()
                .contains("\"mysql\"")
        );
    }

    #[test]
    fn settings_that_would_misbehave_are_refused() {
        let ok = settings("sqlite://x.db");
        assert!(ok.validate().is_ok());
        for broken in [
            DatabaseSettings {
                max_connections: 0,
                ..ok.clone()
            },
            DatabaseSettings {
                statement_timeout: Duration::from_micros(999),
                ..ok.clone()
            },
            DatabaseSettings {
                connect_timeout: Duration::ZERO,
                ..ok.clone()
            },
        ] {
            assert!(matches!(
                broken.validate(),
                Err(StorageError::InvalidSettings(_))
            ));
            assert!(crate::connect(&broken, &crate::testing::events()).is_err());
        }
    }

    #[test]
    fn connect_timeout_is_added_once_and_rounded_up() {
        assert_eq!(
            with_connect_timeout("postgres://h/db", Duration::from_millis(1500)),
            "postgres://h/db?connect_timeout=2"
        );
        assert_eq!(
            with_connect_timeout("postgres://h/db?sslmode=disable", Duration::from_millis(10)),
            "postgres://h/db?sslmode=disable&connect_timeout=1"
        );
        assert_eq!(
            with_connect_timeout("postgres://h/db?connect_timeout=9", Duration::from_secs(1)),
            "postgres://h/db?connect_timeout=9"
        );
    }

    #[test]
    fn sqlite_paths_become_escaped_uris() {
        use std::path::Path;
        assert_eq!(
            sqlite_uri(Path::new("data/pingback.sqlite"), "rw"),
            "file:data/pingback.sqlite?mode=rw"
        );
        assert_eq!(
            sqlite_uri(Path::new("/tmp/a b?#%.db"), "rwc"),
            "file:/tmp/a%20b%3F%23%25.db?mode=rwc"
        );
        assert_eq!(
            sqlite_uri(Path::new(":memory:"), "rw"),
            "file:%3Amemory%3A?mode=rw"
        );
        assert_eq!(sqlite_uri(Path::new("//x/y"), "rw"), "file:/x/y?mode=rw");
    }
}
