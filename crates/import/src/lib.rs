//! Pingback's import adapter: conversations in the GET response's JSON shape parsed,
//! validated and reported on (file, JSON path, value), and synthetic conversations
//! generated, both written through the application's `ConversationImporter` port.
//! Depends inward only (application, domain): never on storage, HTTP or the binary.
//!
//! # Streaming
//! A file is parsed on a blocking thread with serde visitors (`parse`), one
//! conversation at a time, and never held as a whole. Valid conversations go, in
//! batches of about [`BATCH_MESSAGES`] messages, through a bounded channel
//! (`batches`) into the importer's stream, so storage writes while parsing continues.
//! At the first invalid value the stream yields `Err(SourceAborted)` (the importer rolls
//! back, nothing of the file is written) and parsing goes on only to list further
//! errors, up to [`MAX_LISTED_ERRORS`].
//!
//! # Error messages
//! One line per invalid value: `{file}: {path}: {problem} (got {value})`, e.g.
//!
//! ```text
//! seed.json: $.messages[1].id: expected a UUID in the hyphenated form (8-4-4-4-12 hex digits) (got "g7b8c9d0-e1f2-3456-abcd-567890123456")
//! big.json: $[3].messages[17]: unknown field "sendr" (expected one of: id, conversation_id, …)
//! ```
//!
//! Paths are JSONPath-like and rooted at `$`, the whole document: a file holding one
//! conversation object gives `$.messages[1].id`, an array gives `$[3].messages[17].id`.
//! Indexes count from 0 in file order. Missing, unknown and duplicate fields name the
//! object that should (not) hold them. Values are printed as JSON, cut at
//! 80 characters with `…`; objects and arrays as `an object` / `an array`.
//!
//! # Where the rules live
//! Every field's value is checked by the domain's constructor (`validate` only picks
//! it for the JSON type); the import adds the rules about the file itself (repeated
//! fields agree, ids appear once: `ids`).

mod batches;
mod error;
mod file;
mod generate;
mod ids;
mod parse;
mod progress;
mod validate;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use batches::BATCH_MESSAGES;
pub use error::{ImportFileError, ImportIssue, ImportOutcome, MAX_LISTED_ERRORS};
pub use file::import_file;
pub use generate::{GenerateError, GenerateStyle, Generator, generate, generate_into};
pub use progress::{NoProgress, Progress};
