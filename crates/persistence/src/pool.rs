//! Checking connections out of a pool so that a call is bounded in time and a
//! connection in an unknown state never goes back to the pool.

use std::time::Duration;

use deadpool::managed::{Manager, Object, Pool};
use diesel::QueryResult;
use diesel_async::pooled_connection::PoolError as ManagerError;
use futures_util::future::BoxFuture;
use pingback_application::RepositoryError;
use tokio::time::{Instant, timeout_at};

use crate::error::{DeadlineExceeded, classify, classify_pool};

/// A pooled connection that goes back to the pool only through [`Checkout::release`].
///
/// Dropped any other way (an error, a timeout, the caller's future cancelled midway
/// through a pipelined transaction) it is closed instead: the next caller must never
/// inherit a half-finished exchange.
pub(crate) struct Checkout<M: Manager> {
    object: Option<Object<M>>,
}

impl<M: Manager> Checkout<M> {
    pub(crate) fn new(object: Object<M>) -> Self {
        Self {
            object: Some(object),
        }
    }

    pub(crate) fn connection(&mut self) -> Option<&mut M::Type> {
        self.object.as_deref_mut()
    }

    /// Returns the connection to the pool: call only when it is idle.
    pub(crate) fn release(mut self) {
        drop(self.object.take());
    }
}

impl<M: Manager> Drop for Checkout<M> {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            tracing::debug!("closing a database connection left in an unknown state");
            drop(Object::take(object));
        }
    }
}

/// Runs `work` on a pooled connection within `budget` (pool wait plus statement
/// time): past it the call is `Unavailable`, whatever the server is doing.
pub(crate) async fn with_connection<M, T, F>(
    pool: &Pool<M>,
    budget: Duration,
    work: F,
) -> Result<T, RepositoryError>
where
    M: Manager<Error = ManagerError>,
    F: for<'c> FnOnce(&'c mut M::Type) -> BoxFuture<'c, QueryResult<T>>,
{
    let deadline = Instant::now() + budget;
    let object = timeout_at(deadline, pool.get())
        .await
        .map_err(|_| RepositoryError::unavailable(DeadlineExceeded(budget)))?
        .map_err(classify_pool)?;
    let mut checkout = Checkout::new(object);
    let Some(connection) = checkout.connection() else {
        return Err(RepositoryError::internal("pooled connection missing"));
    };
    match timeout_at(deadline, work(connection)).await {
        Ok(Ok(value)) => {
            checkout.release();
            Ok(value)
        }
        Ok(Err(error)) => Err(classify(error)),
        Err(_) => Err(RepositoryError::unavailable(DeadlineExceeded(budget))),
    }
}

/// A snapshot of a pool for metrics.
pub(crate) fn status<M: Manager>(pool: &Pool<M>) -> pingback_application::PoolStatus {
    let status = pool.status();
    pingback_application::PoolStatus {
        size: status.size,
        available: status.available,
        waiting: status.waiting,
        max_size: status.max_size,
    }
}

/// The pool both adapters use: bounded waits everywhere (a request never queues for
/// longer than the pool wait; opening or recycling a connection is bounded by the
/// connect timeout).
pub(crate) fn build<M: Manager>(
    manager: M,
    settings: &crate::settings::DatabaseSettings,
) -> Result<Pool<M>, crate::error::StorageError> {
    Pool::builder(manager)
        .max_size(settings.max_connections)
        .wait_timeout(Some(settings.pool_wait_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| crate::error::StorageError::InvalidSettings(e.to_string()))
}

/// How long one call may take in all: waiting for a connection, then its statements.
pub(crate) fn call_budget(settings: &crate::settings::DatabaseSettings) -> Duration {
    settings.pool_wait_timeout + settings.statement_timeout
}
