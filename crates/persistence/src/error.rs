use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::PoolError as ManagerError;
use diesel_async::pooled_connection::deadpool::PoolError;
use pingback_application::RepositoryError;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Failures of setting storage up (connecting, migrating). Messages never carry the
/// database URL, hence never its password.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    #[error("invalid database settings: {0}")]
    InvalidSettings(String),
    #[error("database unavailable: {0}")]
    Unavailable(#[source] BoxError),
    #[error("migration failed: {0}")]
    Migration(#[source] BoxError),
    #[error("cannot prepare the database file: {0}")]
    Io(#[from] std::io::Error),
}

/// PostgreSQL's messages for the transient failures of the contract, for errors that
/// reach us without their SQLSTATE (diesel keeps only a kind and the message):
/// 57014 statement timeout or cancel, 57P03 cannot connect now, 55P03 lock timeout,
/// 40P01 deadlock (57P01 admin and 57P02 crash shutdown "terminate" the connection:
/// `CONNECTION_LOST`). The server's `lc_messages` is English unless someone changed
/// it; connection loss is otherwise caught by kind. On Citus, a worker the coordinator
/// cannot reach (08006 from the coordinator, whose own connection is fine) is as
/// transient as a database down.
const TRANSIENT_POSTGRES: &[&str] = &[
    "canceling statement due to",
    "the database system is",
    "deadlock detected",
    "could not obtain lock",
    "connection to the remote node",
    "could not establish any connections to the node",
];

/// The messages of a connection the server ended or that closed under us.
const CONNECTION_LOST: &[&str] = &["terminating connection", "connection closed"];

/// SQLite's SQLITE_BUSY and SQLITE_LOCKED: another connection holds the lock for
/// longer than busy_timeout.
const TRANSIENT_SQLITE: &[&str] = &[
    "database is locked",
    "database table is locked",
    "database schema is locked",
];

/// Sorts a query error into the port's two classes.
pub(crate) fn classify(error: DieselError) -> RepositoryError {
    if is_transient(&error) {
        RepositoryError::unavailable(error)
    } else {
        RepositoryError::internal(error)
    }
}

/// The connection itself is gone (as opposed to a statement that failed on a healthy
/// one): whatever is sent on it again fails too.
pub(crate) fn is_connection_lost(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(
            DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection,
            _,
        ) => true,
        DieselError::DatabaseError(_, info) => {
            let message = info.message();
            CONNECTION_LOST.iter().any(|m| message.contains(m))
        }
        _ => false,
    }
}

/// A lost connection, or any failure that retrying later may cure.
fn is_transient(error: &DieselError) -> bool {
    if is_connection_lost(error) {
        return true;
    }
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(_, info) => {
            let message = info.message();
            TRANSIENT_POSTGRES
                .iter()
                .chain(TRANSIENT_SQLITE)
                .any(|m| message.contains(m))
        }
        DieselError::BrokenTransactionManager => true,
        _ => false,
    }
}

/// Pool failures: waiting too long, or a database we cannot connect to, is the
/// "unavailable" of the contract (503); only a misconfigured pool is internal.
pub(crate) fn classify_pool(error: PoolError) -> RepositoryError {
    match error {
        PoolError::Timeout(_) | PoolError::Closed => RepositoryError::unavailable(error),
        PoolError::Backend(ManagerError::ConnectionError(_)) => RepositoryError::unavailable(error),
        PoolError::Backend(ManagerError::QueryError(e)) => classify(e),
        PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => {
            RepositoryError::internal(error)
        }
    }
}

/// The client-side bound on a call, for a server that stops answering altogether.
#[derive(Debug, thiserror::Error)]
#[error("the database did not answer within {0:?}")]
pub(crate) struct DeadlineExceeded(pub std::time::Duration);

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn transient_database_errors_are_unavailable() {
        for error in [
            database_error(DatabaseErrorKind::ClosedConnection, "gone"),
            database_error(DatabaseErrorKind::UnableToSendCommand, "connection closed"),
            database_error(
                DatabaseErrorKind::Unknown,
                "canceling statement due to statement timeout",
            ),
            database_error(
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            database_error(
                DatabaseErrorKind::Unknown,
                "the database system is shutting down",
            ),
            database_error(DatabaseErrorKind::Unknown, "database is locked"),
            database_error(
                DatabaseErrorKind::Unknown,
                "connection to the remote node pingback@127.0.0.1:38263 failed with the \
                 following error: Connection refused",
            ),
        ] {
            assert!(matches!(classify(error), RepositoryError::Unavailable(_)));
        }
    }

    #[test]
    fn other_errors_are_internal() {
        for error in [
            database_error(
                DatabaseErrorKind::Unknown,
                "relation \"messages\" does not exist",
            ),
            database_error(DatabaseErrorKind::UniqueViolation, "duplicate key"),
            DieselError::NotFound,
        ] {
            assert!(matches!(classify(error), RepositoryError::Internal(_)));
        }
    }
}
