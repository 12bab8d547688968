//! Black-box tests of the operator commands: import, generate, token, migrate.
//! Every effect is checked through the HTTP API, as a user would see it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use support::{Backend, TestEnv, psql_at, token_for};

const BUSINESS: &str = "b2c3d4e5-f6a7-8901-bcde-f12345678901";
const OTHER: &str = "0d0e0f10-1112-4314-9516-171819202122";

fn conversation(id: &str, business: &str, messages: &[(&str, &str)]) -> Value {
    json!({
        "id": id, "business_id": business, "customer_id": null, "assignee_id": null,
        "status": "open", "channel_type": "email", "channel_id": null,
        "created_at": "2024-03-01T09:00:00Z", "updated_at": "2024-03-01T09:00:00Z",
        "first_response_at": null, "customer": null,
        "messages": messages.iter().map(|(mid, content)| json!({
            "id": mid, "conversation_id": id, "sender_type": "customer", "sender_id": null,
            "content": content, "attachments": [], "created_at": "2024-03-01T09:00:00Z"
        })).collect::<Vec<_>>()
    })
}

const C1: &str = "10000000-0000-4000-8000-000000000001";
const C2: &str = "10000000-0000-4000-8000-000000000002";
const M1: &str = "20000000-0000-4000-8000-000000000001";
const M2: &str = "20000000-0000-4000-8000-000000000002";
const M3: &str = "20000000-0000-4000-8000-000000000003";

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn import_file(env: &TestEnv, document: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.json");
    std::fs::write(&path, document).unwrap();
    env.run(&["import", path.to_str().unwrap()])
}

/// Status of a conversation through the API.
fn status_of(app: &support::App, business: &str, id: &str) -> u16 {
    app.get_as(&format!("/api/v1/conversations/{id}"), &token_for(business))
        .status
}

on_both_backends! {
    every_invalid_value_is_reported_with_its_path_and_nothing_is_written => |env: TestEnv| async move {
        let mut bad = vec![
            conversation(C1, BUSINESS, &[(M1, "fine")]),
            conversation(C2, BUSINESS, &[(M2, "fine")]),
        ];
        bad[1]["messages"][0]["id"] = json!("g7b8c9d0-e1f2-3456-abcd-567890123456");
        bad[1]["status"] = json!("archived");
        bad[1]["created_at"] = json!("2024-03-01 09:00");
        bad[1]["messages"][0]["sender_type"] = json!("bot");
        bad[1]["messages"][0]["content"] = json!("nul\u{0}byte");
        bad[1]["colour"] = json!("blue");
        let output = import_file(&env, &Value::Array(bad).to_string());
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        let err = stderr(&output);
        for expected in [
            "input.json",
            "$[1].messages[0].id",
            "g7b8c9d0-e1f2-3456-abcd-567890123456",
            "$[1].status",
            "archived",
            "$[1].created_at",
            "$[1].messages[0].sender_type",
            "$[1].messages[0].content",
            "colour",
            "nothing written",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
        // The valid first conversation was not written either: one transaction per file.
        let app = env.serve();
        assert_eq!(status_of(&app, BUSINESS, C1), 404);
    };

    structural_errors_are_reported => |env: TestEnv| async move {
        let cases: Vec<(String, &str)> = vec![
            ("{not json".to_owned(), "$"),
            ({
                let mut c = conversation(C1, BUSINESS, &[(M1, "x")]);
                c["messages"][0]["conversation_id"] = json!(C2);
                c.to_string()
            }, "$.messages[0].conversation_id"),
            ({
                let mut c = conversation(C1, BUSINESS, &[(M1, "x")]);
                c["customer_id"] = json!("30000000-0000-4000-8000-000000000001");
                c["customer"] = json!({"id": "30000000-0000-4000-8000-000000000001", "business_id": OTHER,
                    "name": null, "email": null, "phone": null, "external_id": null, "created_at": "2024-01-01T00:00:00Z"});
                c.to_string()
            }, "$.customer.business_id"),
            (conversation(C1, BUSINESS, &[(M1, "x"), (M1, "again")]).to_string(), "$.messages[1].id"),
            ({
                let mut c = conversation(C1, BUSINESS, &[]);
                c["updated_at"] = json!("2024-03-01T09:00:00.1234567Z");
                c.to_string()
            }, "$.updated_at"),
            ({
                let mut c = conversation(C1, BUSINESS, &[]);
                c.as_object_mut().unwrap().remove("status");
                c.to_string()
            }, "status"),
        ];
        for (document, path) in cases {
            let output = import_file(&env, &document);
            assert_eq!(output.status.code(), Some(2), "{document}\n{}", stderr(&output));
            assert!(stderr(&output).contains(path), "{path} not in:\n{}", stderr(&output));
        }
        let app = env.serve();
        assert_eq!(status_of(&app, BUSINESS, C1), 404);
    };

    reimport_is_idempotent_and_replaces_the_message_set => |env: TestEnv| async move {
        let first = conversation(C1, BUSINESS, &[(M1, "one"), (M2, "two")]).to_string();
        assert!(import_file(&env, &first).status.success());
        let app = env.serve();
        let before = app.get_as(&format!("/api/v1/conversations/{C1}"), &token_for(BUSINESS)).json();
        assert!(import_file(&env, &first).status.success());
        let again = app.get_as(&format!("/api/v1/conversations/{C1}"), &token_for(BUSINESS)).json();
        assert_eq!(before, again);

        let replaced = conversation(C1, BUSINESS, &[(M2, "two, edited"), (M3, "three")]).to_string();
        assert!(import_file(&env, &replaced).status.success());
        let after = app.get_as(&format!("/api/v1/conversations/{C1}"), &token_for(BUSINESS)).json();
        let ids: Vec<&str> = after["messages"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [M2, M3]);
        assert_eq!(after["messages"][0]["content"], "two, edited");
    };

    stdin_is_accepted => |env: TestEnv| async move {
        let document = conversation(C2, BUSINESS, &[(M1, "via stdin")]).to_string();
        let output = env.run_with_stdin(&["import", "-"], document.as_bytes());
        assert!(output.status.success(), "{}", stderr(&output));
        let app = env.serve();
        assert_eq!(status_of(&app, BUSINESS, C2), 200);
    };

    ids_of_another_business_make_the_file_invalid => |env: TestEnv| async move {
        assert!(import_file(&env, &conversation(C1, BUSINESS, &[(M1, "ours")]).to_string()).status.success());
        // The same conversation id under another business must not move it.
        let output = import_file(&env, &conversation(C1, OTHER, &[(M2, "theirs")]).to_string());
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains("another business"), "{}", stderr(&output));
        // A message id of another conversation must not move either.
        let output = import_file(&env, &conversation(C2, BUSINESS, &[(M1, "stolen")]).to_string());
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains("$.messages[0].id"), "{}", stderr(&output));
        let app = env.serve();
        assert_eq!(status_of(&app, BUSINESS, C1), 200);
        assert_eq!(status_of(&app, OTHER, C1), 404);
        assert_eq!(status_of(&app, BUSINESS, C2), 404);
    };

    files_are_taken_in_order_and_the_first_invalid_one_stops => |env: TestEnv| async move {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.json");
        let bad = dir.path().join("bad.json");
        let later = dir.path().join("later.json");
        std::fs::write(&good, conversation(C1, BUSINESS, &[(M1, "ok")]).to_string()).unwrap();
        std::fs::write(&bad, "[{\"id\": 42}]").unwrap();
        std::fs::write(&later, conversation(C2, BUSINESS, &[(M2, "never")]).to_string()).unwrap();
        let output = env.run(&["import", good.to_str().unwrap(), bad.to_str().unwrap(), later.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2));
        let err = stderr(&output);
        assert!(err.contains("imported: ") && err.contains("good.json"), "{err}");
        assert!(err.contains("not imported: ") && err.contains("later.json"), "{err}");
        let app = env.serve();
        assert_eq!(status_of(&app, BUSINESS, C1), 200);
        assert_eq!(status_of(&app, BUSINESS, C2), 404);
    };

    generated_conversations_are_served_and_regeneration_is_idempotent => |env: TestEnv| async move {
        let run = || env.run(&["generate", "--business-id", BUSINESS, "--conversations", "3", "--messages", "12", "--seed", "5"]);
        let output = run();
        assert!(output.status.success(), "{}", stderr(&output));
        let ids = String::from_utf8(output.stdout).unwrap();
        let ids: Vec<&str> = ids.lines().collect();
        assert_eq!(ids.len(), 3);
        let again = run();
        assert_eq!(String::from_utf8(again.stdout).unwrap().lines().collect::<Vec<_>>(), ids);
        let app = env.serve();
        for id in &ids {
            let body = app.get_as(&format!("/api/v1/conversations/{id}"), &token_for(BUSINESS)).json();
            assert_eq!(body["messages"].as_array().unwrap().len(), 12, "regenerating did not duplicate");
            assert_eq!(body["business_id"], BUSINESS);
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_tokens_work_only_with_the_same_key() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let output = env.run(&[
        "generate",
        "--business-id",
        BUSINESS,
        "--conversations",
        "1",
        "--messages",
        "2",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let id = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let minted = env.run(&[
        "token",
        "--business-id",
        BUSINESS,
        "--sub",
        "ops",
        "--ttl",
        "60",
    ]);
    assert!(minted.status.success(), "{}", stderr(&minted));
    let token = String::from_utf8(minted.stdout).unwrap().trim().to_owned();

    let app = env.serve();
    assert_eq!(
        app.get_as(&format!("/api/v1/conversations/{id}"), &token)
            .status,
        200
    );
    drop(app);
    let other_key = env.serve_with(&[(
        "PINGBACK__AUTH__JWT_SECRET",
        "a-completely-different-secret-of-32-bytes",
    )]);
    other_key
        .get_as(&format!("/api/v1/conversations/{id}"), &token)
        .problem(401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refuses_production_unless_allowed_and_rejects_bad_input() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let production = |args: &[&str]| {
        env.command(args)
            .env("PINGBACK_ENV", "production")
            .env(
                "PINGBACK__AUTH__JWT_SECRET",
                "a-production-secret-that-is-long-enough",
            )
            .output()
            .unwrap()
    };
    let refused = production(&["token", "--business-id", BUSINESS, "--sub", "ops"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("--allow-production"));
    let allowed = production(&[
        "token",
        "--business-id",
        BUSINESS,
        "--sub",
        "ops",
        "--allow-production",
    ]);
    assert!(allowed.status.success(), "{}", stderr(&allowed));

    let bad = env.run(&["token", "--business-id", "42", "--sub", "ops"]);
    assert_eq!(bad.status.code(), Some(2));
    let unknown = env.run(&["frobnicate"]);
    assert_eq!(unknown.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_the_development_secret() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let output = env
        .command(&["serve"])
        .env("PINGBACK_ENV", "production")
        .env_remove("PINGBACK__AUTH__JWT_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("development JWT secret"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_makes_import_exit_1() {
    let env = TestEnv::at_url("postgres://pingback@127.0.0.1:1/nowhere")
        .with_env("PINGBACK__DATABASE__CONNECT_TIMEOUT_SECONDS", "1")
        .with_env("PINGBACK__DATABASE__POOL_WAIT_TIMEOUT_SECONDS", "1");
    let output = import_file(&env, &conversation(C1, BUSINESS, &[]).to_string());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_the_sqlite_file_and_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nested/deeper/pingback.sqlite");
    let env = TestEnv::at_url(&format!("sqlite://{}", file.display()));
    let output = env.run(&["migrate"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(file.exists());
    // Idempotent.
    assert!(env.run(&["migrate"]).status.success());
}

/// `kill -9` in the middle of an import leaves the database as before: the file is
/// one transaction. Then the same file imports into the tables as autovacuum leaves
/// them after the killed import (empty, vacuumed): the import's plans must follow the
/// tables it fills (a CI run once timed out there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_midway_writes_nothing() {
    let env = TestEnv::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    let ids: Vec<String> = (0..40)
        .map(|c| format!("30000000-0000-4000-8000-{c:012}"))
        .collect();
    let documents: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(c, id)| {
            let messages: Vec<(String, String)> = (0..5000)
                .map(|m| {
                    (
                        format!("40000000-0000-4000-{c:04}-{m:012}"),
                        format!("message {m} of a long history"),
                    )
                })
                .collect();
            let borrowed: Vec<(&str, &str)> = messages
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            conversation(id, BUSINESS, &borrowed)
        })
        .collect();
    std::fs::write(&path, serde_json::to_vec(&documents).unwrap()).unwrap();

    // The import holds its advisory lock from its transaction's first statement to its
    // end: killed while it has the lock, it is killed mid-transaction.
    let importing = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "waited 60 s for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    let mut child = env
        .command(&["import", path.to_str().unwrap()])
        .spawn()
        .unwrap();
    wait_for("the import's transaction", &|| {
        psql_at(&env.url, importing) == "1"
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the import finished before it could be killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // Its backend may finish its last statement first (PostgreSQL notices a dead
    // client when it next talks to it); then it rolls back.
    wait_for("the killed import's rollback", &|| {
        psql_at(&env.url, importing) == "0"
    });

    let app = env.serve();
    for id in &ids {
        assert_eq!(
            status_of(&app, BUSINESS, id),
            404,
            "conversation {id} was partly imported"
        );
    }
    drop(app);

    psql_at(&env.url, "VACUUM ANALYZE");
    let output = env.run(&["import", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let app = env.serve();
    let body = app
        .get_as(
            &format!("/api/v1/conversations/{}", ids[39]),
            &token_for(BUSINESS),
        )
        .json();
    assert_eq!(body["messages"].as_array().unwrap().len(), 5000);
}
