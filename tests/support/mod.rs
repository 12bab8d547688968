//! `spawn_app` for black-box tests: the real `pingback` binary, a fresh database per
//! test (PostgreSQL or SQLite), requests over real HTTP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use pingback_persistence::testing::TestDatabase;
use serde_json::{Value, json};

pub const SECRET: &str = "black-box-test-secret-black-box-test-secret";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A database for one test, and the environment that points the binary at it.
pub struct TestEnv {
    /// Kept alive for the test's duration (dropping it may remove the database).
    pub database: Option<TestDatabase>,
    pub url: String,
    pub extra_env: Vec<(String, String)>,
}

impl TestEnv {
    /// A fresh, migrated database of `backend`.
    pub async fn new(backend: Backend) -> Self {
        let database = match backend {
            Backend::Postgres => TestDatabase::postgres().await,
            Backend::Sqlite => TestDatabase::sqlite().await,
        };
        Self {
            url: database.url(),
            database: Some(database),
            extra_env: vec![],
        }
    }

    /// A database the test manages itself (e.g. on its own cluster).
    pub fn at_url(url: &str) -> Self {
        Self {
            database: None,
            url: url.to_owned(),
            extra_env: vec![],
        }
    }

    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.extra_env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The binary, configured like an operator would: `PINGBACK__…` variables.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command
            .args(args)
            .current_dir(repo_root())
            .env_remove("RUST_LOG")
            .env("PINGBACK_ENV", "test")
            .env("PINGBACK__DATABASE__URL", &self.url)
            .env("PINGBACK__AUTH__JWT_SECRET", SECRET)
            .env("PINGBACK__LOG__LEVEL", "warn");
        for (k, v) in &self.extra_env {
            command.env(k, v);
        }
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run pingback")
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pingback");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Imports JSON through `pingback import` and insists it succeeds.
    pub fn import(&self, document: &Value) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("import.json");
        std::fs::write(&path, serde_json::to_vec_pretty(document).unwrap()).unwrap();
        let output = self.run(&["import", path.to_str().unwrap()]);
        assert!(
            output.status.success(),
            "import failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts `pingback serve` on a free port and waits until it listens.
    pub fn serve(&self) -> App {
        self.serve_with(&[])
    }

    pub fn serve_with(&self, env: &[(&str, &str)]) -> App {
        let mut command = self.command(&["serve"]);
        command
            .env("PINGBACK__SERVER__BIND", "127.0.0.1:0")
            .env("PINGBACK__SERVER__WORKERS", "2")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn pingback serve");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on http://") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let (log_tx, log_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut all = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut all);
            let _ = log_tx.send(all);
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => App {
                child,
                address: address.parse().unwrap(),
                logs: std::sync::Mutex::new(Some(log_rx)),
            },
            Err(_) => {
                let _ = child.kill();
                let logs = log_rx
                    .recv_timeout(Duration::from_secs(5))
                    .unwrap_or_default();
                panic!("pingback serve did not start:\n{logs}");
            }
        }
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `pingback` binary under test: `PINGBACK_BIN` when set, else the one beside this
/// test executable's `deps/` folder, i.e. in the same target directory and profile
/// (so `CARGO_TARGET_DIR`, `cargo llvm-cov` and `--release` are honoured). Cargo builds
/// it only for its own package's tests, so build it first: `scripts/test.sh` (`make
/// test`) runs `cargo build --bin pingback` before `cargo test`.
pub fn binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY
        .get_or_init(|| {
            let path = match std::env::var_os("PINGBACK_BIN") {
                Some(path) => PathBuf::from(path),
                None => {
                    let exe = std::env::current_exe().expect("the test executable's path");
                    let profile_dir = exe
                        .parent()
                        .and_then(|deps| deps.parent())
                        .expect("a test executable lives in <target>/<profile>/deps");
                    profile_dir.join(format!("pingback{}", std::env::consts::EXE_SUFFIX))
                }
            };
            assert!(
                path.is_file(),
                "the pingback binary is missing at {}: build it first with \
                 `cargo build --bin pingback` (same profile and target directory as the \
                 tests; `make test` does), or point PINGBACK_BIN at it",
                path.display()
            );
            path
        })
        .clone()
}

/// A running server; killed when dropped.
pub struct App {
    pub child: Child,
    pub address: SocketAddr,
    logs: std::sync::Mutex<Option<mpsc::Receiver<String>>>,
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a problem+json body of `status` and returns it.
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let body = self.json();
        assert_eq!(body["status"], status);
        assert_eq!(body["request_id"].as_str(), self.header("x-request-id"));
        for key in ["type", "title", "detail"] {
            assert!(
                body[key].as_str().is_some_and(|v| !v.is_empty()),
                "{key} in {body}"
            );
        }
        body
    }
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// One request with arbitrary method and headers.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let request = http_request(method, &self.url(path), headers);
        let mut response = agent.run(request).expect("request");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_vec()
            .unwrap_or_default();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.request("GET", path, headers)
    }

    pub fn get_as(&self, path: &str, token: &str) -> Reply {
        let auth = format!("Bearer {token}");
        self.get(path, &[("authorization", &auth)])
    }

    /// One request with a body (method, path, headers, body bytes).
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        self.try_send(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// As `send`, but a transport failure (refused, reset, …) is an `Err`.
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .allow_non_standard_methods(true)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder.body(body.to_vec()).map_err(|e| e.to_string())?;
        let mut response = agent.run(request).map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// A JSON body sent with `Content-Type: application/json` and a bearer token.
    pub fn send_json(
        &self,
        method: &str,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Reply {
        let auth = format!("Bearer {token}");
        let mut all = vec![
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        all.extend_from_slice(headers);
        self.send(method, path, &all, body.to_string().as_bytes())
    }

    /// Raw bytes on a fresh connection; returns whatever the server answers.
    pub fn raw(&self, bytes: &[u8]) -> String {
        let mut stream = TcpStream::connect(self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let _ = stream.write_all(bytes);
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        let receiver = self.logs.lock().unwrap().take();
        let logs = receiver
            .and_then(|rx| rx.recv_timeout(Duration::from_secs(10)).ok())
            .unwrap_or_default();
        (status, logs)
    }
}

fn http_request(method: &str, url: &str, headers: &[(&str, &str)]) -> ureq::http::Request<()> {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(()).unwrap()
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Signs any header and claims (HS-family) with `secret`.
pub fn sign(header: &Value, claims: &Value, secret: &str) -> String {
    let message = format!("{}.{}", b64(header), b64(claims));
    let alg: jsonwebtoken::Algorithm =
        serde_json::from_value(header["alg"].clone()).unwrap_or(jsonwebtoken::Algorithm::HS256);
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, alg).unwrap();
    format!("{message}.{signature}")
}

pub fn claims_for(business: &str) -> Value {
    json!({ "sub": "agent-7", "business_id": business, "exp": now() + 600, "iat": now() })
}

pub fn token_for(business: &str) -> String {
    sign(
        &json!({ "alg": "HS256", "typ": "JWT" }),
        &claims_for(business),
        SECRET,
    )
}

/// A token with the given space-separated `scope` claim.
pub fn token_with_scope(business: &str, scope: &str) -> String {
    let mut claims = claims_for(business);
    claims["scope"] = json!(scope);
    sign(&json!({ "alg": "HS256", "typ": "JWT" }), &claims, SECRET)
}

/// A token that may read and write conversations.
pub fn write_token_for(business: &str) -> String {
    token_with_scope(business, "conversations:read conversations:write")
}

/// Runs the same async test body on both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident => $body:expr;)+) => {
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let env = TestEnv::new(Backend::Postgres).await;
                    ($body)(env).await;
                }
            )+
        }
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let env = TestEnv::new(Backend::Sqlite).await;
                    ($body)(env).await;
                }
            )+
        }
    };
}

fn psql_binary() -> String {
    std::env::var("PINGBACK_TEST_PG_BIN")
        .map(|b| format!("{b}/psql"))
        .unwrap_or_else(|_| "psql".into())
}

/// Runs SQL against the database at `url` (a test's own) and answers what it prints,
/// unaligned, without headers.
pub fn psql_at(url: &str, sql: &str) -> String {
    let output = Command::new(psql_binary())
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .expect("run psql");
    assert!(
        output.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A PostgreSQL cluster of the test's own (from scripts/test-postgres.sh), so that it
/// can be stopped and restarted without disturbing other tests.
pub struct OwnCluster {
    pub dir: String,
    pub admin_url: String,
}

impl OwnCluster {
    pub fn start() -> Self {
        let output = Command::new(repo_root().join("scripts/test-postgres.sh"))
            .arg("start")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "cluster start: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).unwrap();
        let var = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("{name} missing in {text}"))
                .to_owned()
        };
        Self {
            dir: var("PINGBACK_TEST_PG_DIR"),
            admin_url: var("PINGBACK_TEST_DATABASE_URL"),
        }
    }

    fn script(&self, verb: &str) {
        let status = Command::new(repo_root().join("scripts/test-postgres.sh"))
            .args([verb, &self.dir])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "cluster {verb}");
    }

    pub fn pause(&self) {
        self.script("pause");
    }

    pub fn resume(&self) {
        self.script("resume");
    }

    /// Runs SQL through psql (in the background when `background`).
    pub fn psql(&self, sql: &str) -> Child {
        Command::new(psql_binary())
            .args([self.admin_url.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", sql])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/test-postgres.sh"))
            .args(["stop", &self.dir])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The conversations collection.
pub const CONVERSATIONS: &str = "/api/v1/conversations";

/// A reply's status and body, for assertion messages.
pub fn text(reply: &Reply) -> String {
    format!("{} {}", reply.status, String::from_utf8_lossy(&reply.body))
}

/// A JSON string member's value (the test fails if it is not a string).
pub fn str_of(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_owned()
}

/// Opens a conversation of `business` with a described customer and, if asked, a
/// first customer message (one or two events); returns its body.
pub fn create_conversation(app: &App, business: &str, with_message: bool) -> Value {
    let mut body = json!({
        "channel_type": "widget",
        "customer": {"name": "Alex", "email": null, "phone": null, "external_id": null},
    });
    if with_message {
        body["message"] = json!({"sender_type": "customer", "sender_id": null, "content": "Hello"});
    }
    let reply = app.send_json(
        "POST",
        CONVERSATIONS,
        &write_token_for(business),
        &[],
        &body,
    );
    assert_eq!(reply.status, 201, "{}", text(&reply));
    reply.json()
}
