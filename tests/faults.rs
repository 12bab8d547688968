//! Faults injected for real: the database stopped under a running server, locks that
//! make queries hang, reads queued behind a blocked one, SIGTERM with requests in flight. Each test
//! runs its own PostgreSQL cluster so stopping it disturbs nobody else.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{OwnCluster, TestEnv, token_for};

const BUSINESS: &str = "b2c3d4e5-f6a7-8901-bcde-f12345678901";
const CONVERSATION: &str = "c3d4e5f6-a7b8-9012-cdef-123456789012";

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

fn prepared(cluster: &OwnCluster) -> TestEnv {
    let env = TestEnv::at_url(&cluster.admin_url);
    let migrated = env.run(&["migrate"]);
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    env.import(&document());
    env
}

fn path() -> String {
    format!("/api/v1/conversations/{CONVERSATION}")
}

#[test]
fn a_stopped_database_gives_503_then_recovers_without_restart() {
    let cluster = OwnCluster::start();
    let env = prepared(&cluster);
    let app = env.serve_with(&[
        ("PINGBACK__DATABASE__POOL_WAIT_TIMEOUT_SECONDS", "2"),
        ("PINGBACK__DATABASE__CONNECT_TIMEOUT_SECONDS", "2"),
    ]);
    let token = token_for(BUSINESS);
    assert_eq!(app.get_as(&path(), &token).status, 200);

    cluster.pause();
    for _ in 0..3 {
        let started = Instant::now();
        let reply = app.get_as(&path(), &token);
        assert!(
            started.elapsed() <= Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        reply.problem(503);
        assert!(reply.header("retry-after").is_some());
    }
    app.get("/readyz", &[]).problem(503);

    cluster.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = app.get_as(&path(), &token).status;
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

#[test]
fn a_blocked_query_hits_the_statement_timeout_and_reads_queued_behind_it_the_call_budget() {
    let cluster = OwnCluster::start();
    let env = prepared(&cluster);
    // One worker with one read connection: every read queues behind the blocked one.
    let app = env.serve_with(&[
        ("PINGBACK__SERVER__WORKERS", "1"),
        ("PINGBACK__DATABASE__READ_CONNECTIONS", "1"),
        ("PINGBACK__DATABASE__POOL_WAIT_TIMEOUT_SECONDS", "1"),
        ("PINGBACK__DATABASE__STATEMENT_TIMEOUT_SECONDS", "2"),
    ]);
    let token = token_for(BUSINESS);
    assert_eq!(app.get_as(&path(), &token).status, 200);

    // Another session locks the table for longer than the statement timeout.
    let mut locker = cluster.psql(
        "BEGIN; LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(6); COMMIT;",
    );
    std::thread::sleep(Duration::from_millis(500));

    std::thread::scope(|scope| {
        let slow = scope.spawn(|| {
            let started = Instant::now();
            let reply = app.get_as(&path(), &token);
            (reply, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(300));
        // Pipelined behind the blocked read, then blocked itself: the call budget
        // (pool wait + statement timeout = 3 s) ends it.
        let started = Instant::now();
        let queued = app.get_as(&path(), &token);
        let queued_elapsed = started.elapsed();
        queued.problem(503);
        assert!(
            queued_elapsed < Duration::from_millis(3_500),
            "queued read took {queued_elapsed:?}"
        );

        let (reply, elapsed) = slow.join().unwrap();
        reply.problem(503);
        assert!(
            elapsed < Duration::from_secs(3),
            "statement timeout took {elapsed:?}"
        );
    });
    let _ = locker.wait();
    // Once the lock is gone the same server answers normally.
    assert_eq!(app.get_as(&path(), &token).status, 200);
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits_0() {
    let cluster = OwnCluster::start();
    let env = prepared(&cluster);
    let app = env.serve_with(&[("PINGBACK__LOG__LEVEL", "info")]);
    let token = token_for(BUSINESS);
    assert_eq!(app.get_as(&path(), &token).status, 200);

    // Make the next request wait ~2 s on a lock, so it is in flight at SIGTERM.
    let mut locker = cluster.psql(
        "BEGIN; LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(2); COMMIT;",
    );
    std::thread::sleep(Duration::from_millis(500));
    let address = app.address;
    let in_flight = std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let response = agent
            .get(format!(
                "http://{address}/api/v1/conversations/{CONVERSATION}"
            ))
            .header("authorization", format!("Bearer {}", token_for(BUSINESS)))
            .call()
            .unwrap();
        response.status().as_u16()
    });
    std::thread::sleep(Duration::from_millis(500));
    let (status, logs) = app.terminate();
    assert_eq!(
        in_flight.join().unwrap(),
        200,
        "the in-flight request completes"
    );
    assert!(status.success(), "exit status {status}; logs:\n{logs}");
    // Operators see the lifecycle in the log: ready, then stopped.
    let ready = logs.find("pingback ready").expect("a ready line");
    let stopped = logs.find("pingback stopped").expect("a stopped line");
    assert!(ready < stopped, "{logs}");
    assert!(
        logs.contains("pingback::access"),
        "one line per request: {logs}"
    );
    assert!(!logs.contains(&token), "the token must never be logged");
    let _ = locker.wait();
}
