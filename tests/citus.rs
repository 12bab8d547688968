//! On a real Citus cluster (`make test-citus`, `scripts/citus.sh`): the tables are
//! distributed by business and co-located, the hot-path statements are routed to one
//! shard, and a stopped worker gives 503 with `Retry-After`, then recovery without a
//! restart.
//!
//! Not part of `make test`: this target is declared with `test = false`, so
//! `cargo test --all-targets` leaves it out; `make test-citus` runs it by name
//! (`cargo test -p pingback-server --test citus`). Run without a Citus cluster it
//! fails, loudly: it never skips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pingback_persistence::testing::{TestDatabase, citus};
use serde_json::json;
use support::{Backend, TestEnv, repo_root, token_for};

const BUSINESS: &str = "b2c3d4e5-f6a7-8901-bcde-f12345678901";
const OTHER_BUSINESS: &str = "0d0e0f10-1112-4314-9516-171819202122";
const CONVERSATION: &str = "c3d4e5f6-a7b8-9012-cdef-123456789012";

/// Stopping a worker disturbs every database of the cluster: these tests take turns.
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn business() -> uuid::Uuid {
    uuid::Uuid::parse_str(BUSINESS).unwrap()
}

/// A fresh database of the cluster, which must be a Citus one.
async fn citus_env() -> TestEnv {
    let env = TestEnv::new(Backend::Postgres).await;
    assert!(
        env.database.as_ref().is_some_and(TestDatabase::is_citus),
        "PINGBACK_TEST_DATABASE_URL is not a Citus coordinator with workers: run \
         `make test-citus` (or `scripts/citus.sh run -- cargo test -p pingback-server --test citus`)"
    );
    env
}

fn document() -> serde_json::Value {
    json!({
        "id": CONVERSATION, "business_id": BUSINESS, "customer_id": null, "assignee_id": null,
        "status": "open", "channel_type": "sms", "channel_id": null,
        "created_at": "2024-03-01T09:00:00Z", "updated_at": "2024-03-01T09:00:00Z",
        "first_response_at": null, "customer": null,
        "messages": [{
            "id": "f6a7b8c9-d0e1-2345-fabc-456789012345", "conversation_id": CONVERSATION,
            "sender_type": "customer", "sender_id": null, "content": "hi", "attachments": [],
            "created_at": "2024-03-01T09:00:00Z"
        }]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_per_business_table_is_distributed_by_business_and_co_located() {
    let _turn = CLUSTER.lock().await;
    let env = citus_env().await;
    let tables = citus::distribution(&env.url).await;
    let by_business: Vec<_> = tables.iter().filter(|t| t.by_business).collect();
    assert!(
        by_business.iter().any(|t| t.table == "conversations"),
        "{tables:?}"
    );
    let conversations = tables
        .iter()
        .find(|t| t.table == "conversations")
        .unwrap()
        .colocation;
    for table in &by_business {
        assert_eq!(table.kind, "distributed", "{table:?}");
        assert_eq!(table.column.as_deref(), Some("business_id"), "{table:?}");
        assert_eq!(table.colocation, conversations, "not co-located: {table:?}");
    }
    for table in tables.iter().filter(|t| !t.by_business) {
        let expected = if table.table == "__diesel_schema_migrations" {
            "local"
        } else {
            "reference"
        };
        assert_eq!(table.kind, expected, "{table:?}");
    }
}

/// `pingback migrate` on the coordinator: says it found Citus, distributes everything,
/// and the down migrations work on distributed tables (reverted here first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_detects_citus_and_the_down_migrations_work_there() {
    let _turn = CLUSTER.lock().await;
    let env = citus_env().await;
    let settings = env.database.as_ref().unwrap().settings();
    pingback_persistence::revert_all(&settings).await.unwrap();
    assert!(
        citus::distribution(&env.url)
            .await
            .iter()
            .all(|t| t.table == "__diesel_schema_migrations"),
        "tables left after revert_all"
    );
    let output = env
        .command(&["migrate"])
        .env("PINGBACK__LOG__LEVEL", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("Citus detected: distributing tables by business_id"),
        "{log}"
    );
    let tables = citus::distribution(&env.url).await;
    assert!(
        tables
            .iter()
            .filter(|t| t.by_business)
            .all(|t| t.kind == "distributed"),
        "{tables:?}"
    );
    // Again: nothing pending, nothing to distribute, still fine.
    let again = env.run(&["migrate"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

/// The single-shard proof: every hot-path statement (`testing::citus::hot_path_statements`,
/// add new ones there), prepared and run as the service runs it, bound to one business,
/// is a router query: one task, no subplan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_path_statements_are_routed_to_one_shard() {
    let _turn = CLUSTER.lock().await;
    let env = citus_env().await;
    env.import(&document());
    let mut failures = Vec::new();
    for (name, sql) in citus::hot_path_statements() {
        let plan = citus::explain(&env.url, &sql, business(), false).await;
        let tasks = citus::task_counts(&plan);
        eprintln!("--- {name}: tasks {tasks:?}\n{plan}");
        if tasks != [1] || plan.contains("Subplan") {
            failures.push(format!("{name}: Task Count {tasks:?}\n{sql}\n{plan}"));
        }
    }
    assert!(
        failures.is_empty(),
        "not routed to a single shard:\n{}",
        failures.join("\n\n")
    );
}

/// The import's checks for ids owned by another business must look everywhere: on
/// Citus they fan out to every shard. Allowed; measured here (the plan and its time
/// with `EXPLAIN ANALYZE`, printed with `--nocapture`), and pinned so a change in
/// their shape is noticed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_id_checks_fan_out_to_every_shard() {
    let _turn = CLUSTER.lock().await;
    let env = citus_env().await;
    env.import(&document());
    for (name, sql) in citus::import_id_checks() {
        let plan = citus::explain(&env.url, &sql, business(), true).await;
        let tasks = citus::task_counts(&plan);
        eprintln!("--- {name}: tasks {tasks:?}\n{plan}");
        assert_eq!(tasks.len(), 1, "{name}: one distributed step\n{plan}");
        assert!(tasks[0] > 1, "{name}: expected a fan-out\n{plan}");
    }
}

/// Another business's ids stay its own on the cluster: importing a conversation whose
/// id belongs to another business is refused, and each business sees only its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_never_takes_over_another_business_ids() {
    let _turn = CLUSTER.lock().await;
    let env = citus_env().await;
    env.import(&document());
    let mut stolen = document();
    stolen["business_id"] = json!(OTHER_BUSINESS);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stolen.json");
    std::fs::write(&file, serde_json::to_vec(&stolen).unwrap()).unwrap();
    let output = env.run(&["import", file.to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let app = env.serve();
    let path = format!("/api/v1/conversations/{CONVERSATION}");
    assert_eq!(app.get_as(&path, &token_for(BUSINESS)).status, 200);
    app.get_as(&path, &token_for(OTHER_BUSINESS)).problem(404);
}

/// Which worker (1 or 2, as `scripts/citus.sh` names them) listens on `port`.
fn worker_number(cluster_dir: &str, port: u16) -> u8 {
    (1..=2)
        .find(|n| {
            std::fs::read_to_string(format!("{cluster_dir}/worker{n}/port"))
                .is_ok_and(|p| p.trim() == port.to_string())
        })
        .unwrap_or_else(|| panic!("no worker of {cluster_dir} listens on {port}"))
}

fn citus_script(verb: &str, dir: &str, worker: u8) {
    let status = Command::new(repo_root().join("scripts/citus.sh"))
        .args([verb, dir, &worker.to_string()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "scripts/citus.sh {verb} {dir} {worker}");
}

/// Starts the worker again when dropped, so that a failing assertion does not leave
/// the cluster broken for the tests after it.
struct Stopped<'a> {
    dir: &'a str,
    worker: u8,
    running: bool,
}

impl Stopped<'_> {
    fn resume(&mut self) {
        if !self.running {
            citus_script("resume-worker", self.dir, self.worker);
            self.running = true;
        }
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.resume();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_gives_503_then_recovers_without_restart() {
    let _turn = CLUSTER.lock().await;
    let cluster_dir = std::env::var("PINGBACK_CITUS_DIR").unwrap_or_else(|_| {
        panic!("PINGBACK_CITUS_DIR is not set: run `make test-citus` (scripts/citus.sh start exports it)")
    });
    let env = citus_env().await;
    env.import(&document());
    let app = env.serve_with(&[
        ("PINGBACK__DATABASE__POOL_WAIT_TIMEOUT_SECONDS", "2"),
        ("PINGBACK__DATABASE__CONNECT_TIMEOUT_SECONDS", "2"),
    ]);
    let token = token_for(BUSINESS);
    let path = format!("/api/v1/conversations/{CONVERSATION}");
    assert_eq!(app.get_as(&path, &token).status, 200);

    let port = citus::worker_port_of(&env.url, "conversations", business()).await;
    let worker = worker_number(&cluster_dir, port);
    citus_script("pause-worker", &cluster_dir, worker);
    let mut stopped = Stopped {
        dir: &cluster_dir,
        worker,
        running: false,
    };
    for _ in 0..3 {
        let started = Instant::now();
        let reply = app.get_as(&path, &token);
        let elapsed = started.elapsed();
        reply.problem(503);
        assert!(reply.header("retry-after").is_some());
        assert!(elapsed <= Duration::from_secs(10), "took {elapsed:?}");
    }

    stopped.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = app.get_as(&path, &token).status;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not recover: last status {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(app.get("/readyz", &[]).status, 200);
}
