//! Embedded migrations, run through diesel-async's `AsyncConnectionWrapper` on a
//! blocking thread (Diesel's migration harness is synchronous). On PostgreSQL with
//! Citus, migrating ends by distributing the tables by business (`citus`).

use diesel::backend::Backend;
use diesel::migration::MigrationSource;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::citus;
use crate::error::{BoxError, StorageError};
use crate::settings::{DatabaseSettings, Target, sqlite_uri, with_connect_timeout};
use crate::sqlite::{self, SqliteAsync};

const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Held for the session: two `migrate` runs against one database take turns.
const MIGRATION_LOCK: &str = "SELECT pg_advisory_lock(7402471198346123287)";

#[derive(Clone, Copy)]
enum Direction {
    Up,
    DownAll,
}

pub(crate) async fn migrate(settings: &DatabaseSettings) -> Result<Vec<String>, StorageError> {
    run(settings, Direction::Up).await
}

pub(crate) async fn revert_all(settings: &DatabaseSettings) -> Result<(), StorageError> {
    run(settings, Direction::DownAll).await.map(drop)
}

async fn run(
    settings: &DatabaseSettings,
    direction: Direction,
) -> Result<Vec<String>, StorageError> {
    match settings.target()? {
        Target::Postgres(url) => {
            let url = with_connect_timeout(&url, settings.connect_timeout);
            let connect = AsyncPgConnection::establish(&url);
            let mut conn = tokio::time::timeout(settings.connect_timeout, connect)
                .await
                .map_err(|_| {
                    StorageError::Unavailable(
                        format!("no connection within {:?}", settings.connect_timeout).into(),
                    )
                })?
                .map_err(|e| StorageError::Unavailable(e.into()))?;
            conn.batch_execute(MIGRATION_LOCK)
                .await
                .map_err(|e| StorageError::Unavailable(e.into()))?;
            harness(conn, direction, postgres_steps).await
        }
        Target::Sqlite(path) => {
            let mode = match direction {
                Direction::Up => {
                    if let Some(parent) = path.parent()
                        && !parent.as_os_str().is_empty()
                    {
                        std::fs::create_dir_all(parent)?;
                    }
                    "rwc"
                }
                // Reverting a database that does not exist must not create one.
                Direction::DownAll => "rw",
            };
            // Detached: a SyncConnectionWrapper future must not be dropped midway
            // (see `SqliteStore::call`).
            let (uri, pragmas) = (
                sqlite_uri(&path, mode),
                sqlite::pragmas(settings.statement_timeout),
            );
            let conn = tokio::spawn(async move { sqlite::setup(&uri, &pragmas).await })
                .await
                .map_err(|e| StorageError::Unavailable(e.into()))?
                .map_err(|e| StorageError::Unavailable(e.into()))?;
            harness::<SqliteAsync>(conn, direction, |conn, direction| {
                apply(conn, SQLITE, direction)
            })
            .await
        }
    }
}

/// Runs `steps` (the migrations in `direction`) on a blocking thread, with the
/// connection wrapped for Diesel's synchronous harness.
async fn harness<C>(
    conn: C,
    direction: Direction,
    steps: fn(&mut AsyncConnectionWrapper<C>, Direction) -> Result<Vec<String>, BoxError>,
) -> Result<Vec<String>, StorageError>
where
    C: AsyncConnection + 'static,
    AsyncConnectionWrapper<C>: Send + 'static,
{
    // Built here, in the runtime, so the wrapper drives the connection on it.
    let mut wrapper = AsyncConnectionWrapper::<C>::from(conn);
    tokio::task::spawn_blocking(move || steps(&mut wrapper, direction))
        .await
        .map_err(|e| StorageError::Migration(e.into()))?
        .map_err(StorageError::Migration)
}

/// PostgreSQL: the embedded migrations; on Citus one statement at a time (see
/// `citus::OneStatementAtATime`), then, upwards, the tables distributed by business.
fn postgres_steps(
    conn: &mut AsyncConnectionWrapper<AsyncPgConnection>,
    direction: Direction,
) -> Result<Vec<String>, BoxError> {
    if !citus::is_installed(conn)? {
        return apply(conn, POSTGRES, direction);
    }
    let applied = apply(conn, citus::OneStatementAtATime(POSTGRES), direction)?;
    if let Direction::Up = direction {
        citus::distribute(conn)?;
    }
    Ok(applied)
}

/// Applies the pending migrations (returning their versions) or reverts them all.
fn apply<C, DB, S>(
    conn: &mut C,
    migrations: S,
    direction: Direction,
) -> Result<Vec<String>, BoxError>
where
    DB: Backend,
    C: MigrationHarness<DB>,
    S: MigrationSource<DB>,
{
    match direction {
        Direction::Up => Ok(conn
            .run_pending_migrations(migrations)?
            .iter()
            .map(ToString::to_string)
            .collect()),
        Direction::DownAll => {
            conn.revert_all_migrations(migrations)?;
            Ok(Vec::new())
        }
    }
}
