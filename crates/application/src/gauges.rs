//! The storage's gauges for metrics: a port of their own, so that metrics never hold
//! a use case or a repository, and the repository port carries reads only.

/// What the storage serves requests with, right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageGauges {
    /// The connection pool: writes, the inbox and imports (on SQLite, reads and
    /// readiness checks too). `None` when the adapter has no pool.
    pub pool: Option<PoolStatus>,
    /// The shared read connections: conversation reads and readiness checks on
    /// PostgreSQL. `None` when the adapter has none (SQLite reads use the pool).
    pub read_connections: Option<ReadConnectionsStatus>,
}

/// A snapshot of a connection pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open now.
    pub size: usize,
    /// Idle connections ready for a request.
    pub available: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
    /// The most connections the pool will open.
    pub max_size: usize,
}

/// A snapshot of the shared read connections (one per lane).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadConnectionsStatus {
    /// Lanes with an open connection now.
    pub open: usize,
    /// Lanes configured (`read_connections`).
    pub configured: usize,
}

/// Reports the storage's gauges. Implemented by every storage adapter; read by the
/// metrics endpoint only. Must be cheap and must not block (no I/O).
pub trait StorageMetrics: Send + Sync + 'static {
    fn gauges(&self) -> StorageGauges;
}
