//! The pools both adapters build, and checking connections out of them so that a
//! connection in an unknown state never goes back.

use std::time::Duration;

use deadpool::managed::{Manager, Object, Pool};

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

    /// Returns the connection to the pool when it is `idle`; otherwise it is closed.
    pub(crate) fn release_if(self, idle: bool) {
        if idle {
            self.release();
        }
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
