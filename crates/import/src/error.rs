//! What a failed import reports: the public error types, and how a place in the file
//! (a JSON path) and an offending value are written in a message.

use std::fmt::{self, Write as _};
use std::io;

use pingback_application::{ImportSummary, RepositoryError};

/// Errors listed per file; past this the file is not read further.
pub const MAX_LISTED_ERRORS: usize = 50;
/// Values in error messages are cut here (in characters).
const MAX_VALUE_CHARS: usize = 80;

/// One invalid value of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportIssue {
    /// Where, e.g. `$[3].messages[17].id` (see the module documentation).
    pub path: String,
    /// What is wrong, e.g. `missing field "content"`.
    pub message: String,
    /// The offending value as JSON, cut at 80 characters; `None` when the problem is
    /// not one value (a missing field, a syntax error).
    pub value: Option<String>,
}

impl fmt::Display for ImportIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if let Some(value) = &self.value {
            write!(f, " (got {value})")?;
        }
        Ok(())
    }
}

/// What one imported file wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOutcome {
    /// The display name given to [`import_file`].
    pub file: String,
    pub summary: ImportSummary,
}

/// Why a file was not imported. In every case nothing of the file was written.
#[derive(Debug)]
pub enum ImportFileError {
    /// The file is invalid (bad JSON, bad values, or ids that belong elsewhere).
    /// Exit code 2.
    Invalid {
        file: String,
        /// In file order (conflicts found by storage last), at most [`MAX_LISTED_ERRORS`].
        errors: Vec<ImportIssue>,
        /// More errors exist than are listed; the file was not read to its end.
        truncated: bool,
    },
    /// The file could not be read. Exit code 1.
    Read { file: String, source: io::Error },
    /// Storage failed (unreachable, timed out…). Exit code 1.
    Storage {
        file: String,
        source: RepositoryError,
    },
    /// A bug (the parser thread died…). Exit code 1.
    Internal { file: String, detail: String },
}

impl ImportFileError {
    /// The process exit code the contract gives this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Invalid { .. } => 2,
            Self::Read { .. } | Self::Storage { .. } | Self::Internal { .. } => 1,
        }
    }

    pub fn file(&self) -> &str {
        match self {
            Self::Invalid { file, .. }
            | Self::Read { file, .. }
            | Self::Storage { file, .. }
            | Self::Internal { file, .. } => file,
        }
    }
}

/// `Invalid` prints one line per error, each prefixed with the file name, ready for
/// stderr.
impl fmt::Display for ImportFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid {
                file,
                errors,
                truncated,
            } => {
                for (n, issue) in errors.iter().enumerate() {
                    if n > 0 {
                        f.write_str("\n")?;
                    }
                    write!(f, "{file}: {issue}")?;
                }
                if *truncated {
                    write!(
                        f,
                        "\n{file}: more than {MAX_LISTED_ERRORS} errors; stopped checking"
                    )?;
                }
                Ok(())
            }
            Self::Read { file, source } => write!(f, "{file}: cannot read: {source}"),
            Self::Storage { file, source } => write!(f, "{file}: {source}"),
            Self::Internal { file, detail } => write!(f, "{file}: internal error: {detail}"),
        }
    }
}

impl std::error::Error for ImportFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::Storage { source, .. } => Some(source),
            Self::Invalid { .. } | Self::Internal { .. } => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// JSON paths and values, as messages print them
// ---------------------------------------------------------------------------------------

/// One step of a JSON path.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PathStep {
    Key(&'static str),
    Index(u32),
}

/// `$` followed by the steps, e.g. `$[3].messages[17].id`.
pub(crate) fn render_path(steps: &[PathStep]) -> String {
    let mut out = String::from("$");
    for step in steps {
        match step {
            PathStep::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            PathStep::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// The path of a conversation, message or attachment from its indexes in the file.
#[derive(Clone, Copy)]
pub(crate) struct Locator {
    pub(crate) root_is_array: bool,
}

impl Locator {
    pub(crate) fn conversation(self, conversation: u32) -> String {
        if self.root_is_array {
            format!("$[{conversation}]")
        } else {
            "$".to_owned()
        }
    }
    pub(crate) fn message(self, conversation: u32, message: u32) -> String {
        format!("{}.messages[{message}]", self.conversation(conversation))
    }
    pub(crate) fn attachment(self, conversation: u32, message: u32, attachment: u32) -> String {
        format!(
            "{}.attachments[{attachment}]",
            self.message(conversation, message)
        )
    }
}

/// A string as a JSON literal, cut after [`MAX_VALUE_CHARS`] characters.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_VALUE_CHARS) + 4);
    out.push('"');
    for (n, ch) in s.chars().enumerate() {
        if n == MAX_VALUE_CHARS {
            out.push('…');
            break;
        }
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
