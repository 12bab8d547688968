//! Rows as both adapters read and write them, and the mapping between rows and the
//! domain aggregate: one home for each persisted field.
//!
//! - [`read`]: the rows reads select (Diesel `Selectable`), and their mapping to the
//!   aggregate, its head and its revision;
//! - [`write`]: the rows writes insert (Diesel `Insertable`), from the aggregate;
//! - [`queries`]: the query-building macros both adapters expand (Diesel builds a
//!   query per backend from one description, so each is written once).
//!
//! The PostgreSQL read of a whole conversation is the exception: one hand-written
//! statement (`snapshot_read`) decoding into the read rows here.

mod queries;
mod read;
mod write;

pub(crate) use queries::*;
pub(crate) use read::*;
pub(crate) use write::*;

/// A stored row the domain refuses (corrupt data or a schema drift): never a panic,
/// always an internal error.
#[derive(Debug, thiserror::Error)]
#[error("invalid stored {what}: {reason}")]
pub(crate) struct CorruptRow {
    what: &'static str,
    reason: String,
}

pub(crate) fn corrupt(what: &'static str, reason: impl ToString) -> CorruptRow {
    CorruptRow {
        what,
        reason: reason.to_string(),
    }
}
