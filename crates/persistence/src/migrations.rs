//! Embedded migrations, run through diesel-async's `AsyncConnectionWrapper` on a
//! blocking thread (Diesel's migration harness is synchronous).

use diesel::migration::MigrationSource;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

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
            harness(conn, POSTGRES, direction).await
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
            harness::<SqliteAsync>(conn, SQLITE, direction).await
        }
    }
}

async fn harness<C>(
    conn: C,
    migrations: EmbeddedMigrations,
    direction: Direction,
) -> Result<Vec<String>, StorageError>
where
    C: AsyncConnection + 'static,
    AsyncConnectionWrapper<C>: MigrationHarness<C::Backend> + Send + 'static,
    EmbeddedMigrations: MigrationSource<C::Backend>,
{
    // Built here, in the runtime, so the wrapper drives the connection on it.
    let mut wrapper = AsyncConnectionWrapper::<C>::from(conn);
    tokio::task::spawn_blocking(move || -> Result<Vec<String>, BoxError> {
        match direction {
            Direction::Up => Ok(wrapper
                .run_pending_migrations(migrations)?
                .iter()
                .map(ToString::to_string)
                .collect()),
            Direction::DownAll => {
                wrapper.revert_all_migrations(migrations)?;
                Ok(Vec::new())
            }
        }
    })
    .await
    .map_err(|e| StorageError::Migration(e.into()))?
    .map_err(StorageError::Migration)
}
