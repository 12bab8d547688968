//! Streaming the JSON document with serde visitors: one conversation at a time, never
//! the whole file (a 1 GB file must not become a `serde_json::Value`). A wrong type or
//! value is an issue to list, not a failure that ends reading; reading ends at the end
//! of the input, on a syntax error, or past [`MAX_LISTED_ERRORS`].

mod document;
mod shape;
mod value;

use std::io::{self, BufReader, Read};
use std::sync::Arc;

use pingback_application::ImportConflict;
use pingback_domain::Conversation;
use serde::de::{self, DeserializeSeed};

pub(crate) use self::document::ConversationFields;
pub(crate) use self::value::{Leaf, Slot};
use crate::error::{
    ImportFileError, ImportIssue, Locator, MAX_LISTED_ERRORS, PathStep, render_path,
};
use crate::ids::IdIndex;
use crate::progress::Progress;

/// serde_json reads byte by byte from a reader: it must be buffered.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Where the parser puts valid conversations.
pub(crate) trait Sink {
    /// `false` when reading should stop.
    fn accept(&mut self, conversation: Conversation) -> bool;
    /// The input is invalid: nothing of it may be written. Idempotent.
    fn abort(&mut self);
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stop {
    TooManyErrors,
    Cancelled,
}

/// Parser state shared by the visitors.
pub(crate) struct ParseState {
    /// The path being read. On a syntax error it is left as it was where reading
    /// failed, which is where the error is reported.
    pub(crate) path: Vec<PathStep>,
    issues: Vec<ImportIssue>,
    /// Issues found, listed or not.
    pub(crate) found: usize,
    stop: Option<Stop>,
    root_is_array: bool,
    pub(crate) index: IdIndex,
    progress: Arc<dyn Progress>,
    conversations: u64,
    messages: u64,
}

impl ParseState {
    pub(crate) fn locator(&self) -> Locator {
        Locator {
            root_is_array: self.root_is_array,
        }
    }

    /// Records an issue at the current path.
    pub(crate) fn issue(&mut self, message: impl Into<String>, value: Option<String>) {
        self.found += 1;
        if self.issues.len() < MAX_LISTED_ERRORS {
            self.issues.push(ImportIssue {
                path: render_path(&self.path),
                message: message.into(),
                value,
            });
        } else {
            self.stop = Some(Stop::TooManyErrors);
        }
    }

    /// Records an issue at the current path extended by `steps`.
    pub(crate) fn issue_at(
        &mut self,
        steps: &[PathStep],
        message: impl Into<String>,
        value: Option<String>,
    ) {
        let depth = self.path.len();
        self.path.extend_from_slice(steps);
        self.issue(message, value);
        self.path.truncate(depth);
    }

    /// Ends reading (through serde's error path) once told to stop.
    pub(crate) fn check<E: de::Error>(&self) -> Result<(), E> {
        match self.stop {
            None => Ok(()),
            Some(_) => Err(E::custom("reading stopped")),
        }
    }

    /// The sink asked to stop (the import was cancelled).
    fn cancel(&mut self) {
        self.stop = Some(Stop::Cancelled);
    }

    fn report_progress(&self) {
        self.progress.produced(self.conversations, self.messages);
    }
}

/// The parser's result.
pub(crate) struct ParseReport {
    pub(crate) issues: Vec<ImportIssue>,
    pub(crate) found: usize,
    pub(crate) read_error: Option<io::Error>,
    pub(crate) cancelled: bool,
    locator: Locator,
    index: IdIndex,
}

impl ParseReport {
    fn truncated(&self) -> bool {
        self.found > self.issues.len()
    }

    pub(crate) fn into_invalid(
        self,
        file: String,
        conflicts: Vec<ImportConflict>,
    ) -> ImportFileError {
        let mut truncated = self.truncated();
        let mut errors = self.issues;
        for conflict in &conflicts {
            if errors.len() >= MAX_LISTED_ERRORS {
                truncated = true;
                break;
            }
            errors.push(self.index.conflict_issue(self.locator, conflict));
        }
        ImportFileError::Invalid {
            file,
            errors,
            truncated,
        }
    }
}

/// Reads the whole source, handing valid conversations to `sink` as long as the input
/// has no error. Never panics on any input.
pub(crate) fn parse_source(
    reader: impl Read,
    sink: &mut dyn Sink,
    progress: Arc<dyn Progress>,
) -> ParseReport {
    let counted = CountingReader {
        inner: reader,
        progress: progress.clone(),
        read: 0,
    };
    let mut de =
        serde_json::Deserializer::from_reader(BufReader::with_capacity(READ_BUFFER_BYTES, counted));
    let mut state = ParseState {
        path: Vec::with_capacity(8),
        issues: Vec::new(),
        found: 0,
        stop: None,
        root_is_array: false,
        index: IdIndex::default(),
        progress,
        conversations: 0,
        messages: 0,
    };
    let mut read_error = None;
    let result = shape::ShapeSeed(document::RootShape {
        state: &mut state,
        sink: &mut *sink,
        aborted: false,
    })
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if let Err(error) = result {
        if state.stop.is_some() {
            // Our own stop signal, not a problem of the input.
        } else if error.is_io() {
            read_error = Some(io::Error::from(error));
        } else {
            state.issue(format!("invalid JSON: {error}"), None);
        }
    }
    if state.found > 0 || read_error.is_some() {
        sink.abort();
    }
    state.report_progress();
    let locator = state.locator();
    ParseReport {
        issues: state.issues,
        found: state.found,
        read_error,
        cancelled: state.stop == Some(Stop::Cancelled),
        locator,
        index: state.index,
    }
}

struct CountingReader<R> {
    inner: R,
    progress: Arc<dyn Progress>,
    read: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.progress.bytes_read(self.read);
        Ok(n)
    }
}
