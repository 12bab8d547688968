//! Failure modes: every one is `Unavailable` (503), bounded in time, and the adapters
//! recover by themselves; corrupt data is `Internal`, never a panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::StreamExt;
use pingback_application::{RepositoryError, batches_of};
use pingback_domain::{BusinessId, Conversation};
use pingback_persistence::testing::TestDatabase;
use pingback_persistence::testing::fixtures::{self, id};
use pingback_persistence::{Backend, DatabaseSettings, connect};

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, RepositoryError>) {
    match result {
        Err(RepositoryError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_closed_port_is_unavailable_quickly_and_connect_still_succeeds() {
    // A port nobody listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = DatabaseSettings {
        url: format!("postgres://pingback:s3cret-password@127.0.0.1:{port}/pingback").into(),
        max_connections: 2,
        read_connections: 2,
        connect_timeout: Duration::from_secs(1),
        pool_wait_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_secs(1),
    };
    let storage =
        connect(&settings, &pingback_persistence::testing::events()).expect("connect is lazy");
    assert_eq!(storage.backend, Backend::Postgres);

    let started = Instant::now();
    let result = storage.repository.find_conversation(id(), id()).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let message = format!("{:?} {}", result, result.as_ref().map(|_| ()).unwrap_err());
    assert!(!message.contains("s3cret-password"), "{message}");
    assert_unavailable(result);
    assert_unavailable(storage.repository.ping().await);
    let imported = storage
        .importer
        .import(batches_of(vec![fixtures::conversation(id())]))
        .await;
    assert!(
        matches!(
            imported,
            Err(pingback_application::ImportError::Storage(
                RepositoryError::Unavailable(_)
            ))
        ),
        "{imported:?}"
    );
    // Migrations need the server too, and say so without the password.
    let error = pingback_persistence::migrate(&settings).await.unwrap_err();
    assert!(!error.to_string().contains("s3cret-password"), "{error}");
}

#[tokio::test]
async fn a_missing_sqlite_file_is_unavailable_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/pingback.sqlite");
    let settings = DatabaseSettings {
        connect_timeout: Duration::from_secs(1),
        pool_wait_timeout: Duration::from_secs(1),
        ..DatabaseSettings::new(format!("sqlite://{}", path.display()))
    };
    let storage = connect(&settings, &pingback_persistence::testing::events()).unwrap();
    assert_eq!(storage.backend, Backend::Sqlite);
    assert_unavailable(storage.repository.find_conversation(id(), id()).await);
    assert_unavailable(storage.repository.ping().await);
    assert!(!path.exists());

    // `migrate` creates the folder and the file; then the same storage recovers.
    assert!(
        !pingback_persistence::migrate(&settings)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(path.exists());
    storage.repository.ping().await.unwrap();
    assert_eq!(
        storage
            .repository
            .find_conversation(id(), id())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn an_unmigrated_postgres_database_is_unavailable_until_migrated() {
    let database = TestDatabase::postgres().await;
    pingback_persistence::revert_all(&database.settings())
        .await
        .unwrap();
    let storage = database.storage();
    assert_unavailable(storage.repository.ping().await);
    pingback_persistence::migrate(&database.settings())
        .await
        .unwrap();
    storage.repository.ping().await.unwrap();
}

/// On a current-thread runtime (as in actix's workers) a SQLite call abandoned midway
/// (deadline, or the request going away) must neither panic nor leak its connection.
#[tokio::test]
async fn an_abandoned_sqlite_read_neither_panics_nor_leaks() {
    let database = TestDatabase::sqlite().await;
    let c = fixtures::large_conversation(id(), 10_000);
    database
        .storage()
        .importer
        .import(batches_of(vec![c.clone()]))
        .await
        .unwrap();

    let hasty = connect(
        &DatabaseSettings {
            max_connections: 1,
            pool_wait_timeout: Duration::ZERO,
            statement_timeout: Duration::from_millis(1),
            ..database.settings()
        },
        &pingback_persistence::testing::events(),
    )
    .unwrap();
    for _ in 0..3 {
        assert_unavailable(
            hasty
                .repository
                .find_conversation(c.business_id(), c.id())
                .await,
        );
        // The request going away mid-call.
        let cancelled = tokio::time::timeout(
            Duration::from_micros(100),
            hasty.repository.find_conversation(c.business_id(), c.id()),
        )
        .await;
        assert!(cancelled.is_err() || cancelled.unwrap().is_err());
    }
    // The one connection comes back to the pool once the abandoned reads finish.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let patient = connect(
        &DatabaseSettings {
            max_connections: 1,
            ..database.settings()
        },
        &pingback_persistence::testing::events(),
    )
    .unwrap();
    assert_eq!(
        patient
            .repository
            .find_conversation(c.business_id(), c.id())
            .await
            .unwrap(),
        Some(c)
    );
}

#[tokio::test]
async fn a_cancelled_sqlite_import_rolls_back() {
    let database = TestDatabase::sqlite().await;
    let storage = database.storage();
    let first = fixtures::conversation(id());
    // One batch, then a source that never ends: the caller gives up.
    let batches = futures_util::stream::iter([Ok(vec![first.clone()])])
        .chain(futures_util::stream::pending());
    let abandoned = tokio::time::timeout(
        Duration::from_millis(300),
        storage.importer.import(Box::pin(batches)),
    )
    .await;
    assert!(abandoned.is_err());
    // The detached import notices, rolls back and frees the write lock.
    let second = fixtures::conversation(id());
    storage
        .importer
        .import(batches_of(vec![second.clone()]))
        .await
        .unwrap();
    let find = |c: &Conversation| {
        storage
            .repository
            .find_conversation(c.business_id(), c.id())
    };
    assert_eq!(find(&first).await.unwrap(), None);
    assert_eq!(find(&second).await.unwrap(), Some(second.clone()));
}

/// Holds an exclusive lock on `table` until dropped (the connection closes).
async fn lock_table(url: &str, table: &str) -> AsyncPgConnection {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    conn.batch_execute(&format!(
        "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
    ))
    .await
    .unwrap();
    conn
}

#[tokio::test]
async fn statement_timeout_and_pool_wait_are_unavailable() {
    let database = TestDatabase::postgres().await;
    let c = fixtures::conversation(id());
    database
        .storage()
        .importer
        .import(batches_of(vec![c.clone()]))
        .await
        .unwrap();

    let settings = DatabaseSettings {
        max_connections: 1,
        pool_wait_timeout: Duration::from_millis(200),
        statement_timeout: Duration::from_millis(300),
        ..database.settings()
    };
    let storage = connect(&settings, &pingback_persistence::testing::events()).unwrap();
    storage.repository.ping().await.unwrap();

    let lock = lock_table(&database.url(), "messages").await;
    let started = Instant::now();
    // Two requests, one connection: one waits on the lock until the statement
    // timeout, the other waits for the pool until the pool wait timeout.
    let (first, second) = tokio::join!(
        storage
            .repository
            .find_conversation(c.business_id(), c.id()),
        storage
            .repository
            .find_conversation(c.business_id(), c.id()),
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_unavailable(first);
    assert_unavailable(second);
    drop(lock);

    // And it is all over once the lock is gone.
    let found = storage
        .repository
        .find_conversation(c.business_id(), c.id())
        .await
        .unwrap();
    assert_eq!(found, Some(c));
}

#[tokio::test]
async fn killed_connections_are_unavailable_then_replaced() {
    let database = TestDatabase::postgres().await;
    let storage = database.storage();
    let c = fixtures::conversation(id());
    storage
        .importer
        .import(batches_of(vec![c.clone()]))
        .await
        .unwrap();
    assert!(
        storage
            .repository
            .find_conversation(c.business_id(), c.id())
            .await
            .unwrap()
            .is_some()
    );

    // What a server restart or failover does to the pooled connections (57P01).
    let mut admin = AsyncPgConnection::establish(&database.url()).await.unwrap();
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();

    // At most the first call per dead connection fails, as Unavailable; then fresh
    // connections take over.
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        outcomes.push(
            storage
                .repository
                .find_conversation(c.business_id(), c.id())
                .await,
        );
    }
    for outcome in &outcomes {
        if let Err(e) = outcome {
            assert!(matches!(e, RepositoryError::Unavailable(_)), "{e:?}");
        }
    }
    assert_eq!(outcomes.pop().unwrap().unwrap(), Some(c));
}

#[tokio::test]
async fn a_corrupt_row_is_internal_not_a_panic() {
    let database = TestDatabase::postgres().await;
    let storage = database.storage();
    let c = fixtures::conversation(id());
    storage
        .importer
        .import(batches_of(vec![c.clone()]))
        .await
        .unwrap();
    // A value the domain refuses, written behind the adapter's back.
    let mut admin = AsyncPgConnection::establish(&database.url()).await.unwrap();
    admin
        .batch_execute("UPDATE conversations SET updated_at = 'infinity'")
        .await
        .unwrap();
    let result = storage
        .repository
        .find_conversation(c.business_id(), c.id())
        .await;
    assert!(
        matches!(result, Err(RepositoryError::Internal(_))),
        "{result:?}"
    );
}

/// The import's throughput bound: 1,000,000 messages well under 60 s on two cores.
/// `cargo test --release -p pingback-persistence --test postgres -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: minutes in debug builds"]
async fn imports_a_million_messages() {
    let database = TestDatabase::postgres().await;
    let storage = database.storage();
    let business: BusinessId = id();
    let conversations: Vec<Conversation> = (0..1_000)
        .map(|_| fixtures::large_conversation(business, 1_000))
        .collect();
    let batches: Vec<_> = conversations.chunks(10).map(|c| Ok(c.to_vec())).collect();
    let started = Instant::now();
    let summary = storage
        .importer
        .import(Box::pin(futures_util::stream::iter(batches)))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    println!("imported {summary:?} in {elapsed:?}");
    assert_eq!(summary.messages, 1_000_000);
    assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");
}
