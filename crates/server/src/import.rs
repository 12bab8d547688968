//! `pingback import`: reads conversations in the GET response shape from a JSON file
//! and writes them through a [`ConversationImporter`], one transaction per file.
//!
//! # Streaming
//! The file is parsed on a blocking thread with a serde visitor, one conversation at a
//! time, and never held as a whole (a 1 GB file must not become a `serde_json::Value`).
//! Valid conversations go, in batches of about [`BATCH_MESSAGES`] messages, through a
//! bounded channel into the importer's [`ConversationBatches`] stream, so storage writes
//! while parsing continues. At the first invalid value the stream yields
//! `Err(SourceAborted)` (the importer rolls back, nothing of the file is written) and
//! parsing goes on only to list further errors, up to [`MAX_LISTED_ERRORS`].
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

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt::{self, Write as _};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, BufReader, IsTerminal, Read};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pingback_application::{
    ConversationBatches, ConversationImporter, ImportConflict, ImportError, ImportSummary,
    ImportedEntity, RepositoryError, SourceAborted,
};
use pingback_domain::{
    AgentId, Attachment, AttachmentId, AttachmentParts, BusinessId, ByteSize, ChannelId,
    ChannelType, Conversation, ConversationError, ConversationId, ConversationParts, Customer,
    CustomerId, CustomerParts, IdError, Message, MessageId, MessageParts, SenderId, SenderType,
    Status, Text, Timestamp,
};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Errors listed per file; past this the file is not read further.
pub const MAX_LISTED_ERRORS: usize = 50;
/// A batch is sent once it holds this many messages…
pub const BATCH_MESSAGES: usize = 5_000;
/// …or this many conversations (many short conversations make small batches otherwise).
const BATCH_CONVERSATIONS: usize = 1_000;
/// Batches in flight between the parser and the importer: enough to overlap the two,
/// few enough to bound memory.
const CHANNEL_BATCHES: usize = 2;
/// Values in error messages are cut here (in characters).
const MAX_VALUE_CHARS: usize = 80;
/// serde_json reads byte by byte from a reader: it must be buffered.
const READ_BUFFER_BYTES: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------

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

/// Where progress goes: a bar on stderr when stderr is a terminal, nothing otherwise
/// (logs and pipes must not fill with redraws).
#[derive(Debug, Clone, Default)]
pub struct Progress {
    visible: bool,
    total_bytes: Option<u64>,
}

impl Progress {
    pub fn hidden() -> Self {
        Self::default()
    }

    /// Visible only when stderr is a terminal.
    pub fn stderr() -> Self {
        Self {
            visible: io::stderr().is_terminal(),
            total_bytes: None,
        }
    }

    /// The input's size when known (a file's length), for a bar instead of a spinner.
    pub fn with_total_bytes(mut self, bytes: u64) -> Self {
        self.total_bytes = Some(bytes);
        self
    }

    pub(crate) fn bar(&self, len: Option<u64>, template: &str, prefix: &str) -> ProgressBar {
        if !self.visible {
            return ProgressBar::hidden();
        }
        let bar = match len {
            Some(len) => ProgressBar::new(len),
            None => ProgressBar::new_spinner(),
        };
        bar.set_draw_target(ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_prefix(prefix.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    fn import_bar(&self, file: &str) -> ProgressBar {
        let template = if self.total_bytes.is_some() {
            "{spinner} {prefix} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {msg}"
        } else {
            "{spinner} {prefix} {binary_bytes} read, {msg}"
        };
        self.bar(self.total_bytes, template, file)
    }
}

/// Validates and imports one JSON file (one conversation object or an array of them)
/// in one transaction. `name` is only for messages (`-` for stdin by convention).
///
/// Nothing of the file is written unless all of it is valid and storage accepts it.
pub async fn import_file(
    importer: Arc<dyn ConversationImporter>,
    name: &str,
    reader: impl Read + Send + 'static,
    progress: Progress,
) -> Result<ImportOutcome, ImportFileError> {
    let file = name.to_owned();
    let cancel = Arc::new(AtomicBool::new(false));
    // Dropping this future (Ctrl-C) must not leave the parser reading a huge file.
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let (sender, batches) = batch_channel(cancel.clone());
    let bar = progress.import_bar(&file);

    let parser = tokio::task::spawn_blocking({
        let bar = bar.clone();
        let reason = format!("{file} is invalid");
        move || {
            let mut sink = ImportSink { sender, reason };
            let report = parse_source(reader, &mut sink, bar);
            if report.found == 0 && report.read_error.is_none() && !report.cancelled {
                sink.sender.finish();
            } else {
                sink.abort();
            }
            report
        }
    });

    let imported = importer.import(batches).await;
    if matches!(imported, Err(ImportError::Storage(_))) {
        // Storage is gone: listing more input errors would only delay the report.
        cancel.store(true, Ordering::Relaxed);
    }
    let report = parser.await.map_err(|e| ImportFileError::Internal {
        file: file.clone(),
        detail: format!("the parser thread failed: {e}"),
    });
    bar.finish_and_clear();
    let mut report = report?;
    if let Some(source) = report.read_error.take() {
        return Err(ImportFileError::Read { file, source });
    }

    match imported {
        Ok(summary) if report.found == 0 => Ok(ImportOutcome { file, summary }),
        Ok(_) => {
            // The adapter committed although the stream was aborted (or never read it
            // to the end): a broken adapter. The input is still invalid.
            tracing::error!(file = %file, "the importer committed an aborted import");
            Err(report.into_invalid(file, Vec::new()))
        }
        Err(ImportError::Storage(source)) => Err(ImportFileError::Storage { file, source }),
        Err(ImportError::Aborted(_)) if report.found > 0 => {
            Err(report.into_invalid(file, Vec::new()))
        }
        Err(ImportError::Aborted(reason)) => Err(ImportFileError::Internal {
            file,
            detail: reason.to_string(),
        }),
        Err(ImportError::Conflicts(conflicts)) => Err(report.into_invalid(file, conflicts)),
    }
}

// ---------------------------------------------------------------------------------------
// Batches: a blocking producer feeding the importer's stream (shared with `generate`)
// ---------------------------------------------------------------------------------------

pub(crate) enum BatchItem {
    Conversations(Vec<Conversation>),
    Abort(String),
    /// The producer reached the end of its input: only now may the importer commit.
    Done,
}

/// The producer's end of the channel; blocking, so only for blocking threads.
pub(crate) struct BatchSender {
    tx: mpsc::Sender<BatchItem>,
    pending: Vec<Conversation>,
    pending_messages: usize,
    /// The importer still reads and nothing was aborted.
    open: bool,
    aborted: bool,
    cancel: Arc<AtomicBool>,
}

/// A channel whose receiving end is the importer's stream. The stream ends cleanly only
/// after an explicit `Done`: a producer that dies (panic, early return) makes it yield
/// `Err(SourceAborted)`, so a partial input is never committed.
pub(crate) fn batch_channel(cancel: Arc<AtomicBool>) -> (BatchSender, ConversationBatches) {
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let stream = futures_util::stream::unfold(Some(rx), |state| async move {
        let mut rx: mpsc::Receiver<BatchItem> = state?;
        match rx.recv().await {
            Some(BatchItem::Conversations(batch)) => Some((Ok(batch), Some(rx))),
            Some(BatchItem::Abort(reason)) => Some((Err(SourceAborted(reason)), None)),
            Some(BatchItem::Done) => None,
            None => Some((
                Err(SourceAborted(
                    "the input stopped before its end was reached".to_owned(),
                )),
                None,
            )),
        }
    });
    let sender = BatchSender {
        tx,
        pending: Vec::new(),
        pending_messages: 0,
        open: true,
        aborted: false,
        cancel,
    };
    (sender, Box::pin(stream))
}

impl BatchSender {
    /// Queues a conversation. `false` when the caller should stop producing (cancelled).
    /// After the importer stopped reading, conversations are dropped: the import parser
    /// keeps validating to list errors.
    pub(crate) fn push(&mut self, conversation: Conversation) -> bool {
        if self.cancel.load(Ordering::Relaxed) {
            return false;
        }
        if !self.open {
            return true;
        }
        self.pending_messages += conversation.messages().len();
        self.pending.push(conversation);
        if self.pending_messages >= BATCH_MESSAGES || self.pending.len() >= BATCH_CONVERSATIONS {
            self.flush();
        }
        true
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open
    }

    fn flush(&mut self) {
        if self.pending.is_empty() || !self.open {
            return;
        }
        self.pending_messages = 0;
        let batch = std::mem::take(&mut self.pending);
        if self
            .tx
            .blocking_send(BatchItem::Conversations(batch))
            .is_err()
        {
            self.open = false;
        }
    }

    /// Makes the importer roll back; idempotent.
    pub(crate) fn abort(&mut self, reason: String) {
        if self.aborted {
            return;
        }
        self.aborted = true;
        self.pending = Vec::new();
        if self.open {
            // A closed channel means the importer already stopped: nothing to undo.
            let _ = self.tx.blocking_send(BatchItem::Abort(reason));
        }
        self.open = false;
    }

    /// Sends what is left and lets the importer commit.
    pub(crate) fn finish(mut self) {
        if self.aborted {
            return;
        }
        self.flush();
        if self.open {
            let _ = self.tx.blocking_send(BatchItem::Done);
        }
    }
}

/// Sets the flag when dropped, stopping a producer whose consumer went away.
pub(crate) struct CancelOnDrop(pub(crate) Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Where the parser puts valid conversations.
trait Sink {
    /// `false` when reading should stop.
    fn accept(&mut self, conversation: Conversation) -> bool;
    /// The input is invalid: nothing of it may be written. Idempotent.
    fn abort(&mut self);
}

struct ImportSink {
    sender: BatchSender,
    reason: String,
}

impl Sink for ImportSink {
    fn accept(&mut self, conversation: Conversation) -> bool {
        self.sender.push(conversation)
    }
    fn abort(&mut self) {
        self.sender.abort(self.reason.clone());
    }
}

// ---------------------------------------------------------------------------------------
// Parsing: state, paths, issues
// ---------------------------------------------------------------------------------------

/// One step of a JSON path.
#[derive(Clone, Copy, Debug)]
enum Seg {
    Key(&'static str),
    Index(u32),
}

fn render_path(segs: &[Seg]) -> String {
    let mut out = String::from("$");
    for seg in segs {
        match seg {
            Seg::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Seg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// Where each id of the file sits, as indexes rather than strings so that a million
/// messages stay cheap. Finds duplicates within the file and locates storage conflicts.
#[derive(Default)]
struct IdIndex {
    conversations: HashMap<Uuid, u32>,
    /// First conversation naming the customer, and a fingerprint of its fields.
    customers: HashMap<Uuid, (u32, u64)>,
    messages: HashMap<Uuid, (u32, u32)>,
    attachments: HashMap<Uuid, (u32, u32, u32)>,
}

#[derive(Clone, Copy)]
struct Locator {
    root_is_array: bool,
}

impl Locator {
    fn conversation(self, conv: u32) -> String {
        if self.root_is_array {
            format!("$[{conv}]")
        } else {
            "$".to_owned()
        }
    }
    fn message(self, conv: u32, msg: u32) -> String {
        format!("{}.messages[{msg}]", self.conversation(conv))
    }
    fn attachment(self, conv: u32, msg: u32, att: u32) -> String {
        format!("{}.attachments[{att}]", self.message(conv, msg))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stop {
    TooManyErrors,
    Cancelled,
}

/// Parser state shared by the visitors.
struct Ctx {
    /// The path being read. On a syntax error it is left as it was where reading
    /// failed, which is where the error is reported.
    path: Vec<Seg>,
    issues: Vec<ImportIssue>,
    /// Issues found, listed or not.
    found: usize,
    stop: Option<Stop>,
    root_is_array: bool,
    index: IdIndex,
    bar: ProgressBar,
    conversations: u64,
    messages: u64,
}

impl Ctx {
    fn locator(&self) -> Locator {
        Locator {
            root_is_array: self.root_is_array,
        }
    }

    /// Records an issue at the current path.
    fn issue(&mut self, message: impl Into<String>, value: Option<String>) {
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

    /// Records an issue at the current path extended by `segs`.
    fn issue_at(&mut self, segs: &[Seg], message: impl Into<String>, value: Option<String>) {
        let depth = self.path.len();
        self.path.extend_from_slice(segs);
        self.issue(message, value);
        self.path.truncate(depth);
    }

    /// Ends reading (through serde's error path) once told to stop.
    fn check<E: de::Error>(&self) -> Result<(), E> {
        match self.stop {
            None => Ok(()),
            Some(_) => Err(E::custom("reading stopped")),
        }
    }
}

/// The parser's result.
struct ParseReport {
    issues: Vec<ImportIssue>,
    found: usize,
    read_error: Option<io::Error>,
    cancelled: bool,
    locator: Locator,
    index: IdIndex,
}

impl ParseReport {
    fn truncated(&self) -> bool {
        self.found > self.issues.len()
    }

    fn into_invalid(self, file: String, conflicts: Vec<ImportConflict>) -> ImportFileError {
        let mut truncated = self.truncated();
        let mut errors = self.issues;
        for conflict in &conflicts {
            if errors.len() >= MAX_LISTED_ERRORS {
                truncated = true;
                break;
            }
            errors.push(conflict_issue(self.locator, &self.index, conflict));
        }
        ImportFileError::Invalid {
            file,
            errors,
            truncated,
        }
    }
}

/// Names where in the file a conflicting id is.
fn conflict_issue(locator: Locator, index: &IdIndex, conflict: &ImportConflict) -> ImportIssue {
    let uuid = Uuid::try_parse(&conflict.id).ok();
    let conversation = index
        .conversations
        .get(conflict.conversation_id.as_uuid())
        .copied();
    let path = uuid.and_then(|id| match conflict.entity {
        ImportedEntity::Conversation => index
            .conversations
            .get(&id)
            .map(|&c| format!("{}.id", locator.conversation(c))),
        ImportedEntity::Customer => conversation
            .or_else(|| index.customers.get(&id).map(|&(c, _)| c))
            .map(|c| format!("{}.customer.id", locator.conversation(c))),
        ImportedEntity::Message => index
            .messages
            .get(&id)
            .map(|&(c, m)| format!("{}.id", locator.message(c, m))),
        ImportedEntity::Attachment => index
            .attachments
            .get(&id)
            .map(|&(c, m, a)| format!("{}.id", locator.attachment(c, m, a))),
    });
    ImportIssue {
        path: path.unwrap_or_else(|| "$".to_owned()),
        message: conflict.to_string(),
        value: Some(quote(&conflict.id)),
    }
}

/// Reads the whole source, handing valid conversations to `sink` as long as the input
/// has no error. Never panics on any input.
fn parse_source(reader: impl Read, sink: &mut dyn Sink, bar: ProgressBar) -> ParseReport {
    let counted = CountingReader {
        inner: reader,
        bar: bar.clone(),
        read: 0,
    };
    let mut de =
        serde_json::Deserializer::from_reader(BufReader::with_capacity(READ_BUFFER_BYTES, counted));
    let mut ctx = Ctx {
        path: Vec::with_capacity(8),
        issues: Vec::new(),
        found: 0,
        stop: None,
        root_is_array: false,
        index: IdIndex::default(),
        bar,
        conversations: 0,
        messages: 0,
    };
    let mut read_error = None;
    let result = ShapeSeed(RootShape {
        ctx: &mut ctx,
        sink: &mut *sink,
        aborted: false,
    })
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if let Err(error) = result {
        if ctx.stop.is_some() {
            // Our own stop signal, not a problem of the input.
        } else if error.is_io() {
            read_error = Some(io::Error::from(error));
        } else {
            ctx.issue(format!("invalid JSON: {error}"), None);
        }
    }
    if ctx.found > 0 || read_error.is_some() {
        sink.abort();
    }
    update_bar(&ctx);
    ParseReport {
        issues: ctx.issues,
        found: ctx.found,
        read_error,
        cancelled: ctx.stop == Some(Stop::Cancelled),
        locator: Locator {
            root_is_array: ctx.root_is_array,
        },
        index: ctx.index,
    }
}

fn update_bar(ctx: &Ctx) {
    ctx.bar.set_message(format!(
        "{} conversations, {} messages",
        ctx.conversations, ctx.messages
    ));
}

struct CountingReader<R> {
    inner: R,
    bar: ProgressBar,
    read: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.bar.set_position(self.read);
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------

/// Any JSON value where a scalar is expected. Kept whatever its type so that a wrong
/// type is an issue to list, not a failure that ends parsing.
#[derive(Debug, Clone, PartialEq)]
enum Leaf {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(String),
    Object,
    Array,
}

impl Leaf {
    /// As JSON, cut for messages.
    fn describe(&self) -> String {
        match self {
            Self::Null => "null".to_owned(),
            Self::Bool(b) => b.to_string(),
            Self::U64(n) => n.to_string(),
            Self::I64(n) => n.to_string(),
            Self::F64(n) => n.to_string(),
            Self::Str(s) => quote(s),
            Self::Object => "an object".to_owned(),
            Self::Array => "an array".to_owned(),
        }
    }
}

/// A string as a JSON literal, cut after [`MAX_VALUE_CHARS`] characters.
fn quote(s: &str) -> String {
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

struct LeafVisitor;

impl<'de> Visitor<'de> for LeafVisitor {
    type Value = Leaf;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Leaf, E> {
        Ok(Leaf::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Leaf, E> {
        Ok(Leaf::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Leaf, E> {
        Ok(Leaf::U64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Leaf, E> {
        Ok(Leaf::F64(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Leaf, E> {
        Ok(Leaf::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Leaf, E> {
        Ok(Leaf::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Leaf, E> {
        Ok(Leaf::Null)
    }
    fn visit_none<E>(self) -> Result<Leaf, E> {
        Ok(Leaf::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Leaf, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Leaf, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Leaf::Object)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Leaf, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Leaf::Array)
    }
}

impl<'de> de::Deserialize<'de> for Leaf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LeafVisitor)
    }
}

/// A field's state after reading its object.
#[derive(Debug, Default)]
enum Slot<T> {
    #[default]
    Missing,
    /// Present but invalid (already reported).
    Invalid,
    Valid(T),
}

impl<T> Slot<T> {
    fn valid(&self) -> Option<&T> {
        match self {
            Self::Valid(v) => Some(v),
            Self::Missing | Self::Invalid => None,
        }
    }
}

// Conversions from JSON values to domain values: the domain's constructors decide,
// these only pick the right one for the JSON type.

fn req_id<T: FromStr<Err = IdError>>(v: &Leaf) -> Result<T, String> {
    match v {
        Leaf::Str(s) => s.parse().map_err(|e: IdError| e.to_string()),
        _ => Err("expected a UUID string".to_owned()),
    }
}

fn opt_id<T: FromStr<Err = IdError>>(v: &Leaf) -> Result<Option<T>, String> {
    match v {
        Leaf::Null => Ok(None),
        Leaf::Str(_) => req_id(v).map(Some),
        _ => Err("expected a UUID string or null".to_owned()),
    }
}

fn timestamp(v: &Leaf) -> Result<Timestamp, String> {
    match v {
        Leaf::Str(s) => Timestamp::parse_rfc3339(s).map_err(|e| e.to_string()),
        _ => Err("expected an RFC 3339 timestamp string".to_owned()),
    }
}

fn opt_timestamp(v: &Leaf) -> Result<Option<Timestamp>, String> {
    match v {
        Leaf::Null => Ok(None),
        Leaf::Str(_) => timestamp(v).map(Some),
        _ => Err("expected an RFC 3339 timestamp string or null".to_owned()),
    }
}

fn text(v: &Leaf) -> Result<Text, String> {
    match v {
        Leaf::Str(s) => Text::new(s.as_str()).map_err(|e| e.to_string()),
        _ => Err("expected a string".to_owned()),
    }
}

fn opt_text(v: &Leaf) -> Result<Option<Text>, String> {
    match v {
        Leaf::Null => Ok(None),
        Leaf::Str(_) => text(v).map(Some),
        _ => Err("expected a string or null".to_owned()),
    }
}

fn channel_type(v: &Leaf) -> Result<ChannelType, String> {
    match v {
        Leaf::Str(s) => ChannelType::new(s.as_str()).map_err(|e| e.to_string()),
        _ => Err("expected a string".to_owned()),
    }
}

fn status(v: &Leaf) -> Result<Status, String> {
    match v {
        Leaf::Str(s) => s.parse(),
        _ => Err(format!("expected a string, one of: {}", names(Status::ALL))),
    }
}

fn sender_type(v: &Leaf) -> Result<SenderType, String> {
    match v {
        Leaf::Str(s) => s.parse(),
        _ => Err(format!(
            "expected a string, one of: {}",
            names(SenderType::ALL)
        )),
    }
}

fn names<T: fmt::Display>(all: &[T]) -> String {
    all.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn byte_size(v: &Leaf) -> Result<ByteSize, String> {
    match v {
        Leaf::U64(n) => ByteSize::new(*n).map_err(|e| e.to_string()),
        Leaf::I64(n) => ByteSize::from_i64(*n).map_err(|e| e.to_string()),
        Leaf::F64(_) => Err("expected a whole number of bytes".to_owned()),
        _ => Err("expected a number of bytes".to_owned()),
    }
}

// ---------------------------------------------------------------------------------------
// Structure: visitors for objects and arrays that report wrong types instead of failing
// ---------------------------------------------------------------------------------------

/// What to do with a JSON value at a position that expects an object or an array.
trait Shape<'de>: Sized {
    type Out;

    fn on_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(self.on_other(Leaf::Object))
    }
    fn on_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.on_other(Leaf::Array))
    }
    /// Any other value (the wrong type): report it.
    fn on_other(self, value: Leaf) -> Self::Out;
}

struct ShapeSeed<S>(S);

impl<'de, S: Shape<'de>> DeserializeSeed<'de> for ShapeSeed<S> {
    type Value = S::Out;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Out, D::Error> {
        d.deserialize_any(ShapeVisitor(self.0))
    }
}

struct ShapeVisitor<S>(S);

impl<'de, S: Shape<'de>> Visitor<'de> for ShapeVisitor<S> {
    type Value = S::Out;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<S::Out, A::Error> {
        self.0.on_map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<S::Out, A::Error> {
        self.0.on_seq(seq)
    }
    fn visit_bool<E>(self, v: bool) -> Result<S::Out, E> {
        Ok(self.0.on_other(Leaf::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<S::Out, E> {
        Ok(self.0.on_other(Leaf::I64(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<S::Out, E> {
        Ok(self.0.on_other(Leaf::U64(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<S::Out, E> {
        Ok(self.0.on_other(Leaf::F64(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<S::Out, E> {
        Ok(self.0.on_other(Leaf::Str(v.to_owned())))
    }
    fn visit_unit<E>(self) -> Result<S::Out, E> {
        Ok(self.0.on_other(Leaf::Null))
    }
    fn visit_none<E>(self) -> Result<S::Out, E> {
        Ok(self.0.on_other(Leaf::Null))
    }
}

/// An object key: one of the expected fields (by position) or an unknown name.
enum Key {
    Known(usize),
    Unknown(String),
}

struct KeySeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(match self.0.iter().position(|f| *f == v) {
            Some(i) => Key::Known(i),
            None => Key::Unknown(v.to_owned()),
        })
    }
}

/// The next field not seen before in this object; unknown and repeated fields are
/// reported and skipped.
fn next_field<'de, A: MapAccess<'de>>(
    ctx: &mut Ctx,
    map: &mut A,
    fields: &'static [&'static str],
    seen: &mut u32,
) -> Result<Option<&'static str>, A::Error> {
    loop {
        ctx.check()?;
        let Some(key) = map.next_key_seed(KeySeed(fields))? else {
            return Ok(None);
        };
        match key {
            Key::Known(i) if *seen & (1 << i) == 0 => {
                *seen |= 1 << i;
                return Ok(fields.get(i).copied());
            }
            Key::Known(i) => {
                let name = fields.get(i).copied().unwrap_or_default();
                ctx.issue(format!("duplicate field \"{name}\""), None);
            }
            Key::Unknown(name) => ctx.issue(
                format!(
                    "unknown field {} (expected one of: {})",
                    quote(&name),
                    fields.join(", ")
                ),
                None,
            ),
        }
        map.next_value::<IgnoredAny>()?;
    }
}

fn report_missing(ctx: &mut Ctx, fields: &'static [&'static str], seen: u32) {
    for (i, name) in fields.iter().enumerate() {
        if seen & (1 << i) == 0 {
            ctx.issue(format!("missing field \"{name}\""), None);
        }
    }
}

/// Reads a scalar field's value and converts it, reporting a failure at the field.
fn leaf<'de, A: MapAccess<'de>, T>(
    ctx: &mut Ctx,
    map: &mut A,
    name: &'static str,
    convert: fn(&Leaf) -> Result<T, String>,
) -> Result<Slot<T>, A::Error> {
    ctx.path.push(Seg::Key(name));
    let value: Leaf = map.next_value()?;
    let slot = match convert(&value) {
        Ok(v) => Slot::Valid(v),
        Err(message) => {
            ctx.issue(message, Some(value.describe()));
            Slot::Invalid
        }
    };
    ctx.path.pop();
    Ok(slot)
}

// ---------------------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------------------

struct RootShape<'a> {
    ctx: &'a mut Ctx,
    sink: &'a mut dyn Sink,
    aborted: bool,
}

impl RootShape<'_> {
    fn handle<E: de::Error>(&mut self, conversation: Option<Conversation>) -> Result<(), E> {
        self.ctx.conversations += 1;
        if self.ctx.conversations.is_multiple_of(64) {
            update_bar(self.ctx);
        }
        if self.ctx.found > 0 && !self.aborted {
            // Roll back now: the importer need not hold a transaction open while the
            // rest of the file is checked.
            self.sink.abort();
            self.aborted = true;
        }
        if let Some(conversation) = conversation
            && !self.sink.accept(conversation)
        {
            self.ctx.stop = Some(Stop::Cancelled);
            return self.ctx.check();
        }
        Ok(())
    }
}

impl<'de> Shape<'de> for RootShape<'_> {
    type Out = ();

    fn on_map<A: MapAccess<'de>>(mut self, map: A) -> Result<(), A::Error> {
        self.ctx.root_is_array = false;
        let conversation = read_conversation(self.ctx, 0, map)?;
        self.handle(conversation)
    }

    fn on_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.ctx.root_is_array = true;
        let mut i = 0u32;
        loop {
            self.ctx.check()?;
            self.ctx.path.push(Seg::Index(i));
            let element = seq.next_element_seed(ShapeSeed(ConversationShape {
                ctx: &mut *self.ctx,
                conv: i,
            }))?;
            self.ctx.path.pop();
            match element {
                None => return Ok(()),
                Some(conversation) => self.handle(conversation)?,
            }
            i = i.saturating_add(1);
        }
    }

    fn on_other(self, value: Leaf) {
        self.ctx.issue(
            "expected a conversation object or an array of them",
            Some(value.describe()),
        );
    }
}

struct ConversationShape<'a> {
    ctx: &'a mut Ctx,
    conv: u32,
}

impl<'de> Shape<'de> for ConversationShape<'_> {
    type Out = Option<Conversation>;

    fn on_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Out, A::Error> {
        read_conversation(self.ctx, self.conv, map)
    }
    fn on_other(self, value: Leaf) -> Self::Out {
        self.ctx
            .issue("expected a conversation object", Some(value.describe()));
        None
    }
}

const CONVERSATION_FIELDS: &[&str] = &[
    "id",
    "business_id",
    "customer_id",
    "assignee_id",
    "status",
    "channel_type",
    "channel_id",
    "created_at",
    "updated_at",
    "first_response_at",
    "customer",
    "messages",
];

#[derive(Default)]
struct ConversationFields {
    id: Slot<ConversationId>,
    business_id: Slot<BusinessId>,
    customer_id: Slot<Option<CustomerId>>,
    assignee_id: Slot<Option<AgentId>>,
    status: Slot<Status>,
    channel_type: Slot<ChannelType>,
    channel_id: Slot<Option<ChannelId>>,
    created_at: Slot<Timestamp>,
    updated_at: Slot<Timestamp>,
    first_response_at: Slot<Option<Timestamp>>,
    customer: Slot<Option<Customer>>,
    messages: Slot<Vec<Message>>,
}

/// Reads one conversation object; returns it when the whole file is valid so far.
fn read_conversation<'de, A: MapAccess<'de>>(
    ctx: &mut Ctx,
    conv: u32,
    mut map: A,
) -> Result<Option<Conversation>, A::Error> {
    let mut f = ConversationFields::default();
    let mut seen = 0;
    // Message conversation ids read before the conversation's own id.
    let mut deferred: Vec<(u32, ConversationId)> = Vec::new();
    while let Some(field) = next_field(ctx, &mut map, CONVERSATION_FIELDS, &mut seen)? {
        match field {
            "id" => f.id = leaf(ctx, &mut map, field, req_id)?,
            "business_id" => f.business_id = leaf(ctx, &mut map, field, req_id)?,
            "customer_id" => f.customer_id = leaf(ctx, &mut map, field, opt_id)?,
            "assignee_id" => f.assignee_id = leaf(ctx, &mut map, field, opt_id)?,
            "status" => f.status = leaf(ctx, &mut map, field, status)?,
            "channel_type" => f.channel_type = leaf(ctx, &mut map, field, channel_type)?,
            "channel_id" => f.channel_id = leaf(ctx, &mut map, field, opt_id)?,
            "created_at" => f.created_at = leaf(ctx, &mut map, field, timestamp)?,
            "updated_at" => f.updated_at = leaf(ctx, &mut map, field, timestamp)?,
            "first_response_at" => {
                f.first_response_at = leaf(ctx, &mut map, field, opt_timestamp)?;
            }
            "customer" => {
                ctx.path.push(Seg::Key(field));
                f.customer = map.next_value_seed(ShapeSeed(CustomerShape { ctx: &mut *ctx }))?;
                ctx.path.pop();
            }
            "messages" => {
                ctx.path.push(Seg::Key(field));
                f.messages = map.next_value_seed(ShapeSeed(MessagesShape {
                    ctx: &mut *ctx,
                    conv,
                    expected: f.id.valid().copied(),
                    deferred: &mut deferred,
                }))?;
                ctx.path.pop();
            }
            _ => {}
        }
    }
    report_missing(ctx, CONVERSATION_FIELDS, seen);
    check_conversation(ctx, conv, &f, &deferred);

    if ctx.found > 0 {
        return Ok(None);
    }
    let ConversationFields {
        id: Slot::Valid(id),
        business_id: Slot::Valid(business_id),
        customer_id: Slot::Valid(_),
        assignee_id: Slot::Valid(assignee_id),
        status: Slot::Valid(status),
        channel_type: Slot::Valid(channel_type),
        channel_id: Slot::Valid(channel_id),
        created_at: Slot::Valid(created_at),
        updated_at: Slot::Valid(updated_at),
        first_response_at: Slot::Valid(first_response_at),
        customer: Slot::Valid(customer),
        messages: Slot::Valid(messages),
    } = f
    else {
        return Ok(None);
    };
    let parts = ConversationParts {
        id,
        business_id,
        customer,
        assignee_id,
        status,
        channel_type,
        channel_id,
        created_at,
        updated_at,
        first_response_at,
        messages,
    };
    match Conversation::new(parts) {
        Ok(conversation) => Ok(Some(conversation)),
        Err(error) => {
            // Checked above already; kept so the domain has the last word.
            let message = error.to_string();
            match error {
                ConversationError::CustomerOfAnotherBusiness { .. } => ctx.issue_at(
                    &[Seg::Key("customer"), Seg::Key("business_id")],
                    message,
                    None,
                ),
                ConversationError::DuplicateMessage(_)
                | ConversationError::DuplicateAttachment(_) => ctx.issue(message, None),
            }
            Ok(None)
        }
    }
}

/// Rules between fields of a conversation, and ids repeated within the file.
fn check_conversation(
    ctx: &mut Ctx,
    conv: u32,
    f: &ConversationFields,
    deferred: &[(u32, ConversationId)],
) {
    if let Some(&id) = f.id.valid() {
        let locator = ctx.locator();
        match ctx.index.conversations.entry(*id.as_uuid()) {
            Entry::Vacant(slot) => {
                slot.insert(conv);
            }
            Entry::Occupied(first) => {
                let first = locator.conversation(*first.get());
                ctx.issue_at(
                    &[Seg::Key("id")],
                    format!("conversation id appears more than once (first at {first}.id)"),
                    Some(quote(&id.to_string())),
                );
            }
        }
        for &(msg, message_conversation) in deferred {
            if message_conversation != id {
                ctx.issue_at(
                    &[
                        Seg::Key("messages"),
                        Seg::Index(msg),
                        Seg::Key("conversation_id"),
                    ],
                    format!("does not match the conversation's id {id}"),
                    Some(quote(&message_conversation.to_string())),
                );
            }
        }
    }

    if let (Slot::Valid(customer_id), Slot::Valid(customer)) = (&f.customer_id, &f.customer) {
        match (customer_id, customer) {
            (None, Some(customer)) => ctx.issue_at(
                &[Seg::Key("customer_id")],
                format!(
                    "is null but customer is not (customer.id is {})",
                    customer.id()
                ),
                Some("null".to_owned()),
            ),
            (Some(customer_id), None) => ctx.issue_at(
                &[Seg::Key("customer")],
                format!("is null but customer_id is {customer_id}"),
                Some("null".to_owned()),
            ),
            (Some(customer_id), Some(customer)) if customer.id() != *customer_id => ctx.issue_at(
                &[Seg::Key("customer_id")],
                format!("does not match customer.id {}", customer.id()),
                Some(quote(&customer_id.to_string())),
            ),
            _ => {}
        }
    }

    if let Some(Some(customer)) = f.customer.valid() {
        // Conversation::new checks this too, but only once everything else is valid;
        // checking here lists it with the file's other errors.
        if let Some(&business_id) = f.business_id.valid()
            && customer.business_id() != business_id
        {
            ctx.issue_at(
                &[Seg::Key("customer"), Seg::Key("business_id")],
                format!("does not match the conversation's business_id {business_id}"),
                Some(quote(&customer.business_id().to_string())),
            );
        }
        // A customer shared by several conversations is one row: the copies must agree
        // or the file would not say which one to keep.
        let fingerprint = customer_fingerprint(customer);
        let locator = ctx.locator();
        match ctx.index.customers.entry(*customer.id().as_uuid()) {
            Entry::Vacant(slot) => {
                slot.insert((conv, fingerprint));
            }
            Entry::Occupied(first) => {
                let (first_conv, first_fingerprint) = *first.get();
                if first_fingerprint != fingerprint {
                    ctx.issue_at(
                        &[Seg::Key("customer")],
                        format!(
                            "customer {} differs from the one at {}.customer; a customer shared by several conversations must be identical",
                            customer.id(),
                            locator.conversation(first_conv)
                        ),
                        None,
                    );
                }
            }
        }
    }
}

fn customer_fingerprint(customer: &Customer) -> u64 {
    let mut hasher = DefaultHasher::new();
    customer.id().hash(&mut hasher);
    customer.business_id().hash(&mut hasher);
    customer.name().hash(&mut hasher);
    customer.email().hash(&mut hasher);
    customer.phone().hash(&mut hasher);
    customer.external_id().hash(&mut hasher);
    customer.created_at().hash(&mut hasher);
    hasher.finish()
}

struct CustomerShape<'a> {
    ctx: &'a mut Ctx,
}

const CUSTOMER_FIELDS: &[&str] = &[
    "id",
    "business_id",
    "name",
    "email",
    "phone",
    "external_id",
    "created_at",
];

impl<'de> Shape<'de> for CustomerShape<'_> {
    type Out = Slot<Option<Customer>>;

    fn on_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let ctx = self.ctx;
        let (mut id, mut business_id, mut created_at) =
            (Slot::Missing, Slot::Missing, Slot::Missing);
        let (mut name, mut email, mut phone, mut external_id) =
            (Slot::Missing, Slot::Missing, Slot::Missing, Slot::Missing);
        let mut seen = 0;
        while let Some(field) = next_field(ctx, &mut map, CUSTOMER_FIELDS, &mut seen)? {
            match field {
                "id" => id = leaf(ctx, &mut map, field, req_id::<CustomerId>)?,
                "business_id" => business_id = leaf(ctx, &mut map, field, req_id::<BusinessId>)?,
                "name" => name = leaf(ctx, &mut map, field, opt_text)?,
                "email" => email = leaf(ctx, &mut map, field, opt_text)?,
                "phone" => phone = leaf(ctx, &mut map, field, opt_text)?,
                "external_id" => external_id = leaf(ctx, &mut map, field, opt_text)?,
                "created_at" => created_at = leaf(ctx, &mut map, field, timestamp)?,
                _ => {}
            }
        }
        report_missing(ctx, CUSTOMER_FIELDS, seen);
        let (
            Slot::Valid(id),
            Slot::Valid(business_id),
            Slot::Valid(name),
            Slot::Valid(email),
            Slot::Valid(phone),
            Slot::Valid(external_id),
            Slot::Valid(created_at),
        ) = (id, business_id, name, email, phone, external_id, created_at)
        else {
            return Ok(Slot::Invalid);
        };
        Ok(Slot::Valid(Some(Customer::new(CustomerParts {
            id,
            business_id,
            name,
            email,
            phone,
            external_id,
            created_at,
        }))))
    }

    fn on_other(self, value: Leaf) -> Self::Out {
        if value == Leaf::Null {
            return Slot::Valid(None);
        }
        self.ctx
            .issue("expected a customer object or null", Some(value.describe()));
        Slot::Invalid
    }
}

struct MessagesShape<'a> {
    ctx: &'a mut Ctx,
    conv: u32,
    /// The conversation's id when already read (it usually comes first).
    expected: Option<ConversationId>,
    deferred: &'a mut Vec<(u32, ConversationId)>,
}

impl<'de> Shape<'de> for MessagesShape<'_> {
    type Out = Slot<Vec<Message>>;

    fn on_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        let ctx = self.ctx;
        let mut messages = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        let mut msg = 0u32;
        loop {
            ctx.check()?;
            ctx.path.push(Seg::Index(msg));
            let element = seq.next_element_seed(ShapeSeed(MessageShape {
                ctx: &mut *ctx,
                conv: self.conv,
                msg,
                expected: self.expected,
                deferred: &mut *self.deferred,
            }))?;
            ctx.path.pop();
            match element {
                None => return Ok(Slot::Valid(messages)),
                Some(Some(message)) => messages.push(message),
                Some(None) => {}
            }
            ctx.messages += 1;
            msg = msg.saturating_add(1);
        }
    }

    fn on_other(self, value: Leaf) -> Self::Out {
        self.ctx
            .issue("expected an array of messages", Some(value.describe()));
        Slot::Invalid
    }
}

struct MessageShape<'a> {
    ctx: &'a mut Ctx,
    conv: u32,
    msg: u32,
    expected: Option<ConversationId>,
    deferred: &'a mut Vec<(u32, ConversationId)>,
}

const MESSAGE_FIELDS: &[&str] = &[
    "id",
    "conversation_id",
    "sender_type",
    "sender_id",
    "content",
    "attachments",
    "created_at",
];

impl<'de> Shape<'de> for MessageShape<'_> {
    type Out = Option<Message>;

    fn on_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let MessageShape {
            ctx,
            conv,
            msg,
            expected,
            deferred,
        } = self;
        let mut id = Slot::Missing;
        let mut sender_type = Slot::Missing;
        let mut sender_id = Slot::Missing;
        let mut content = Slot::Missing;
        let mut attachments = Slot::Missing;
        let mut created_at = Slot::Missing;
        let mut seen = 0;
        while let Some(field) = next_field(ctx, &mut map, MESSAGE_FIELDS, &mut seen)? {
            match field {
                "id" => {
                    id = leaf(ctx, &mut map, field, req_id::<MessageId>)?;
                    if let Some(&message_id) = id.valid() {
                        register_message(ctx, message_id, conv, msg);
                    }
                }
                "conversation_id" => {
                    let conversation_id = leaf(ctx, &mut map, field, req_id::<ConversationId>)?;
                    if let Slot::Valid(conversation_id) = conversation_id {
                        match expected {
                            Some(expected) if expected != conversation_id => ctx.issue_at(
                                &[Seg::Key(field)],
                                format!("does not match the conversation's id {expected}"),
                                Some(quote(&conversation_id.to_string())),
                            ),
                            Some(_) => {}
                            None => deferred.push((msg, conversation_id)),
                        }
                    }
                }
                "sender_type" => sender_type = leaf(ctx, &mut map, field, self::sender_type)?,
                "sender_id" => sender_id = leaf(ctx, &mut map, field, opt_id::<SenderId>)?,
                "content" => content = leaf(ctx, &mut map, field, text)?,
                "attachments" => {
                    ctx.path.push(Seg::Key(field));
                    attachments = map.next_value_seed(ShapeSeed(AttachmentsShape {
                        ctx: &mut *ctx,
                        conv,
                        msg,
                    }))?;
                    ctx.path.pop();
                }
                "created_at" => created_at = leaf(ctx, &mut map, field, timestamp)?,
                _ => {}
            }
        }
        report_missing(ctx, MESSAGE_FIELDS, seen);
        if ctx.found > 0 {
            // The file will not be imported: keep nothing, only keep checking.
            return Ok(None);
        }
        let (
            Slot::Valid(id),
            Slot::Valid(sender_type),
            Slot::Valid(sender_id),
            Slot::Valid(content),
            Slot::Valid(attachments),
            Slot::Valid(created_at),
        ) = (id, sender_type, sender_id, content, attachments, created_at)
        else {
            return Ok(None);
        };
        Ok(Some(Message::new(MessageParts {
            id,
            sender_type,
            sender_id,
            content,
            attachments,
            created_at,
        })))
    }

    fn on_other(self, value: Leaf) -> Self::Out {
        self.ctx
            .issue("expected a message object", Some(value.describe()));
        None
    }
}

fn register_message(ctx: &mut Ctx, id: MessageId, conv: u32, msg: u32) {
    let locator = ctx.locator();
    match ctx.index.messages.entry(*id.as_uuid()) {
        Entry::Vacant(slot) => {
            slot.insert((conv, msg));
        }
        Entry::Occupied(first) => {
            let (c, m) = *first.get();
            ctx.issue_at(
                &[Seg::Key("id")],
                format!(
                    "message id appears more than once (first at {}.id)",
                    locator.message(c, m)
                ),
                Some(quote(&id.to_string())),
            );
        }
    }
}

struct AttachmentsShape<'a> {
    ctx: &'a mut Ctx,
    conv: u32,
    msg: u32,
}

impl<'de> Shape<'de> for AttachmentsShape<'_> {
    type Out = Slot<Vec<Attachment>>;

    fn on_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        let ctx = self.ctx;
        let mut attachments = Vec::new();
        let mut att = 0u32;
        loop {
            ctx.check()?;
            ctx.path.push(Seg::Index(att));
            let element = seq.next_element_seed(ShapeSeed(AttachmentShape {
                ctx: &mut *ctx,
                conv: self.conv,
                msg: self.msg,
                att,
            }))?;
            ctx.path.pop();
            match element {
                None => return Ok(Slot::Valid(attachments)),
                Some(Some(attachment)) => attachments.push(attachment),
                Some(None) => {}
            }
            att = att.saturating_add(1);
        }
    }

    fn on_other(self, value: Leaf) -> Self::Out {
        self.ctx
            .issue("expected an array of attachments", Some(value.describe()));
        Slot::Invalid
    }
}

struct AttachmentShape<'a> {
    ctx: &'a mut Ctx,
    conv: u32,
    msg: u32,
    att: u32,
}

const ATTACHMENT_FIELDS: &[&str] = &["id", "file_name", "content_type", "byte_size", "url"];

impl<'de> Shape<'de> for AttachmentShape<'_> {
    type Out = Option<Attachment>;

    fn on_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let ctx = self.ctx;
        let mut id = Slot::Missing;
        let mut file_name = Slot::Missing;
        let mut content_type = Slot::Missing;
        let mut size = Slot::Missing;
        let mut url = Slot::Missing;
        let mut seen = 0;
        while let Some(field) = next_field(ctx, &mut map, ATTACHMENT_FIELDS, &mut seen)? {
            match field {
                "id" => {
                    id = leaf(ctx, &mut map, field, req_id::<AttachmentId>)?;
                    if let Some(&attachment_id) = id.valid() {
                        register_attachment(ctx, attachment_id, (self.conv, self.msg, self.att));
                    }
                }
                "file_name" => file_name = leaf(ctx, &mut map, field, text)?,
                "content_type" => content_type = leaf(ctx, &mut map, field, text)?,
                "byte_size" => size = leaf(ctx, &mut map, field, byte_size)?,
                "url" => url = leaf(ctx, &mut map, field, text)?,
                _ => {}
            }
        }
        report_missing(ctx, ATTACHMENT_FIELDS, seen);
        let (
            Slot::Valid(id),
            Slot::Valid(file_name),
            Slot::Valid(content_type),
            Slot::Valid(byte_size),
            Slot::Valid(url),
        ) = (id, file_name, content_type, size, url)
        else {
            return Ok(None);
        };
        Ok(Some(Attachment::new(AttachmentParts {
            id,
            file_name,
            content_type,
            byte_size,
            url,
        })))
    }

    fn on_other(self, value: Leaf) -> Self::Out {
        self.ctx
            .issue("expected an attachment object", Some(value.describe()));
        None
    }
}

fn register_attachment(ctx: &mut Ctx, id: AttachmentId, at: (u32, u32, u32)) {
    let locator = ctx.locator();
    match ctx.index.attachments.entry(*id.as_uuid()) {
        Entry::Vacant(slot) => {
            slot.insert(at);
        }
        Entry::Occupied(first) => {
            let (c, m, a) = *first.get();
            ctx.issue_at(
                &[Seg::Key("id")],
                format!(
                    "attachment id appears more than once (first at {}.id)",
                    locator.attachment(c, m, a)
                ),
                Some(quote(&id.to_string())),
            );
        }
    }
}

/// Test helpers shared with `generate`'s tests: the contract's JSON shape and an
/// in-memory importer that honours the port's transaction rules.
#[cfg(test)]
pub(crate) mod test_support {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use futures_util::StreamExt;
    use pingback_domain::{Attachment, Customer, Message};
    use serde_json::{Value, json};

    use super::*;

    fn opt<T: ToString>(v: Option<T>) -> Value {
        v.map_or(Value::Null, |v| Value::String(v.to_string()))
    }

    fn opt_text(v: Option<&Text>) -> Value {
        v.map_or(Value::Null, |t| Value::String(t.as_str().to_owned()))
    }

    fn customer_json(c: &Customer) -> Value {
        json!({
            "id": c.id().to_string(),
            "business_id": c.business_id().to_string(),
            "name": opt_text(c.name()),
            "email": opt_text(c.email()),
            "phone": opt_text(c.phone()),
            "external_id": opt_text(c.external_id()),
            "created_at": c.created_at().to_string(),
        })
    }

    fn attachment_json(a: &Attachment) -> Value {
        json!({
            "id": a.id().to_string(),
            "file_name": a.file_name().as_str(),
            "content_type": a.content_type().as_str(),
            "byte_size": a.byte_size().get(),
            "url": a.url().as_str(),
        })
    }

    fn message_json(conversation: &Conversation, m: &Message) -> Value {
        json!({
            "id": m.id().to_string(),
            "conversation_id": conversation.id().to_string(),
            "sender_type": m.sender_type().as_str(),
            "sender_id": opt(m.sender_id()),
            "content": m.content().as_str(),
            "attachments": m.attachments().iter().map(attachment_json).collect::<Vec<_>>(),
            "created_at": m.created_at().to_string(),
        })
    }

    /// The GET response body of the contract.
    pub(crate) fn conversation_json(c: &Conversation) -> Value {
        json!({
            "id": c.id().to_string(),
            "business_id": c.business_id().to_string(),
            "customer_id": opt(c.customer_id()),
            "assignee_id": opt(c.assignee_id()),
            "status": c.status().as_str(),
            "channel_type": c.channel_type().as_str(),
            "channel_id": opt(c.channel_id()),
            "created_at": c.created_at().to_string(),
            "updated_at": c.updated_at().to_string(),
            "first_response_at": opt(c.first_response_at()),
            "customer": c.customer().map_or(Value::Null, customer_json),
            "messages": c.messages().iter().map(|m| message_json(c, m)).collect::<Vec<_>>(),
        })
    }

    struct VecSink(Vec<Conversation>);

    impl Sink for VecSink {
        fn accept(&mut self, conversation: Conversation) -> bool {
            self.0.push(conversation);
            true
        }
        fn abort(&mut self) {}
    }

    /// Parses a whole input synchronously: the conversations, or the listed errors.
    pub(crate) fn parse_all(input: &[u8]) -> Result<Vec<Conversation>, Vec<ImportIssue>> {
        let mut sink = VecSink(Vec::new());
        let report = parse_source(input, &mut sink, ProgressBar::hidden());
        if report.found == 0 && report.read_error.is_none() {
            Ok(sink.0)
        } else {
            Err(report.issues)
        }
    }

    /// Stages batches and "commits" them only when the stream ends cleanly, like a
    /// transaction; optionally refuses with conflicts after reading everything.
    #[derive(Default)]
    pub(crate) struct FakeImporter {
        pub(crate) committed: Mutex<Vec<Conversation>>,
        pub(crate) calls: AtomicUsize,
        pub(crate) batches: AtomicUsize,
        pub(crate) aborted: AtomicBool,
        pub(crate) conflicts: Vec<ImportConflict>,
    }

    impl FakeImporter {
        pub(crate) fn committed(&self) -> Vec<Conversation> {
            self.committed.lock().map(|c| c.clone()).unwrap_or_default()
        }
    }

    // Spelled out as `async_trait` expands it: the crate is not a dependency here.
    impl ConversationImporter for FakeImporter {
        fn import<'life0, 'async_trait>(
            &'life0 self,
            mut batches: ConversationBatches,
        ) -> Pin<Box<dyn Future<Output = Result<ImportSummary, ImportError>> + Send + 'async_trait>>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                let mut staged = Vec::new();
                while let Some(batch) = batches.next().await {
                    match batch {
                        Ok(batch) => {
                            self.batches.fetch_add(1, Ordering::SeqCst);
                            staged.extend(batch);
                        }
                        Err(aborted) => {
                            self.aborted.store(true, Ordering::SeqCst);
                            return Err(ImportError::Aborted(aborted));
                        }
                    }
                }
                if !self.conflicts.is_empty() {
                    return Err(ImportError::Conflicts(self.conflicts.clone()));
                }
                let mut summary = ImportSummary::default();
                let mut customers = std::collections::HashSet::new();
                for c in &staged {
                    summary.conversations += 1;
                    if let Some(id) = c.customer_id()
                        && customers.insert(id)
                    {
                        summary.customers += 1;
                    }
                    summary.messages += c.messages().len() as u64;
                    summary.attachments += c
                        .messages()
                        .iter()
                        .map(|m| m.attachments().len() as u64)
                        .sum::<u64>();
                }
                if let Ok(mut committed) = self.committed.lock() {
                    committed.extend(staged);
                }
                Ok(summary)
            })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::atomic::Ordering;

    use pingback_application::{ImportConflictOwner, MockConversationImporter};
    use serde_json::{Value, json};

    use super::test_support::FakeImporter;
    use super::*;

    /// The contract's original example, with its mistakes (integer customer ids, a
    /// message id that is not a UUID).
    const SEED: &str = r#"{
      "id": "c3d4e5f6-a7b8-9012-cdef-123456789012",
      "business_id": "b2c3d4e5-f6a7-8901-bcde-f12345678901",
      "customer_id": "d4e5f6a7-b8c9-0123-defa-234567890123",
      "assignee_id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
      "status": "open",
      "channel_type": "widget",
      "channel_id": "e5f6a7b8-c9d0-1234-efab-345678901234",
      "created_at": "2024-03-01T09:00:00Z",
      "updated_at": "2024-03-01T09:20:00Z",
      "first_response_at": "2024-03-01T09:05:00Z",
      "customer": {
        "id": 42,
        "business_id": 7,
        "name": "Alex Johnson",
        "email": "alex@example.com",
        "phone": null,
        "external_id": null,
        "created_at": "2024-02-20T08:00:00Z"
      },
      "messages": [
        {
          "id": "f6a7b8c9-d0e1-2345-fabc-456789012345",
          "conversation_id": "c3d4e5f6-a7b8-9012-cdef-123456789012",
          "sender_type": "customer",
          "sender_id": null,
          "content": "Hello, I need help with my order.",
          "attachments": [],
          "created_at": "2024-03-01T09:00:00Z"
        },
        {
          "id": "g7b8c9d0-e1f2-3456-abcd-567890123456",
          "conversation_id": "c3d4e5f6-a7b8-9012-cdef-123456789012",
          "sender_type": "agent",
          "sender_id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
          "content": "Hi Alex! Happy to help. Can you share your order number?",
          "attachments": [],
          "created_at": "2024-03-01T09:05:00Z"
        }
      ]
    }"#;

    const BUSINESS: &str = "b2c3d4e5-f6a7-8901-bcde-f12345678901";

    fn seed_fixed() -> String {
        SEED.replace(
            "\"id\": 42",
            "\"id\": \"d4e5f6a7-b8c9-0123-defa-234567890123\"",
        )
        .replace(
            "\"business_id\": 7",
            &format!("\"business_id\": \"{BUSINESS}\""),
        )
        .replace("g7b8c9d0", "07b8c9d0")
    }

    /// A distinct id per (kind, n), lower-case.
    fn uid(kind: u128, n: u128) -> String {
        Uuid::from_u128((kind << 64) | n).to_string()
    }

    /// A valid conversation `n` with `messages` messages, the first one carrying an
    /// attachment, and customer `n`.
    fn sample(n: u128, messages: usize) -> Value {
        let conv = uid(1, n);
        let msgs: Vec<Value> = (0..messages)
            .map(|m| {
                let attachments = if m == 0 {
                    json!([{
                        "id": uid(4, (n << 32) | m as u128),
                        "file_name": "screenshot.png",
                        "content_type": "image/png",
                        "byte_size": 12345,
                        "url": "https://files.example.com/screenshot.png",
                    }])
                } else {
                    json!([])
                };
                json!({
                    "id": uid(3, (n << 32) | m as u128),
                    "conversation_id": conv,
                    "sender_type": if m % 2 == 0 { "customer" } else { "agent" },
                    "sender_id": null,
                    "content": format!("message {m}"),
                    "attachments": attachments,
                    "created_at": format!("2024-03-01T09:{:02}:{:02}Z", (m / 60) % 60, m % 60),
                })
            })
            .collect();
        json!({
            "id": conv,
            "business_id": BUSINESS,
            "customer_id": uid(2, n),
            "assignee_id": null,
            "status": "open",
            "channel_type": "email",
            "channel_id": null,
            "created_at": "2024-03-01T09:00:00Z",
            "updated_at": "2024-03-01T09:20:00Z",
            "first_response_at": null,
            "customer": {
                "id": uid(2, n),
                "business_id": BUSINESS,
                "name": "Zoë",
                "email": null,
                "phone": null,
                "external_id": null,
                "created_at": "2024-02-20T08:00:00Z",
            },
            "messages": msgs,
        })
    }

    async fn run_with(
        importer: Arc<FakeImporter>,
        input: impl Into<Vec<u8>>,
    ) -> Result<ImportOutcome, ImportFileError> {
        import_file(
            importer,
            "in.json",
            io::Cursor::new(input.into()),
            Progress::hidden(),
        )
        .await
    }

    async fn run(
        input: impl Into<Vec<u8>>,
    ) -> (Result<ImportOutcome, ImportFileError>, Arc<FakeImporter>) {
        let importer = Arc::new(FakeImporter::default());
        let result = run_with(importer.clone(), input).await;
        (result, importer)
    }

    /// The listed errors as printed (without the file name), after checking nothing
    /// was written.
    async fn errors_of(input: impl Into<Vec<u8>>) -> Vec<String> {
        let (result, importer) = run(input).await;
        assert!(importer.committed().is_empty());
        match result {
            Err(ImportFileError::Invalid { file, errors, .. }) => {
                assert_eq!(file, "in.json");
                errors.iter().map(ToString::to_string).collect()
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn to_string(v: &Value) -> String {
        serde_json::to_string(v).unwrap()
    }

    fn has(errors: &[String], expected: &str) {
        assert!(
            errors.iter().any(|e| e == expected),
            "missing {expected:?} in {errors:#?}"
        );
    }

    #[tokio::test]
    async fn the_seed_example_lists_each_bad_value_and_writes_nothing() {
        let (result, importer) = run(SEED).await;
        let err = result.unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.to_string(),
            [
                "in.json: $.customer.id: expected a UUID string (got 42)",
                "in.json: $.customer.business_id: expected a UUID string (got 7)",
                "in.json: $.messages[1].id: expected a UUID in the hyphenated form (8-4-4-4-12 hex digits) (got \"g7b8c9d0-e1f2-3456-abcd-567890123456\")",
            ]
            .join("\n")
        );
        assert!(importer.committed().is_empty());
        assert!(importer.aborted.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn the_corrected_seed_example_gives_the_right_domain_values() {
        let (result, importer) = run(seed_fixed()).await;
        let outcome = result.unwrap();
        assert_eq!(outcome.file, "in.json");
        assert_eq!(outcome.summary.conversations, 1);
        assert_eq!(outcome.summary.messages, 2);
        let [c] = importer.committed().try_into().unwrap();
        assert_eq!(c.id().to_string(), "c3d4e5f6-a7b8-9012-cdef-123456789012");
        assert_eq!(c.business_id().to_string(), BUSINESS);
        assert_eq!(
            c.assignee_id().unwrap().to_string(),
            "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
        );
        assert_eq!(c.status(), Status::Open);
        assert_eq!(c.channel_type().as_str(), "widget");
        assert_eq!(c.updated_at().to_string(), "2024-03-01T09:20:00Z");
        assert_eq!(
            c.first_response_at().unwrap().to_string(),
            "2024-03-01T09:05:00Z"
        );
        let customer = c.customer().unwrap();
        assert_eq!(customer.name().unwrap().as_str(), "Alex Johnson");
        assert_eq!(customer.phone(), None);
        assert_eq!(customer.created_at().to_string(), "2024-02-20T08:00:00Z");
        let m = c.messages();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].sender_type(), SenderType::Customer);
        assert_eq!(m[0].sender_id(), None);
        assert_eq!(m[1].sender_type(), SenderType::Agent);
        assert_eq!(
            m[1].content().as_str(),
            "Hi Alex! Happy to help. Can you share your order number?"
        );
        assert_eq!(importer.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_valid_array_normalises_ids_and_times_and_shares_customers() {
        let mut a = sample(1, 3);
        let mut b = sample(2, 1);
        // The same customer in both conversations.
        b["customer"] = a["customer"].clone();
        b["customer_id"] = a["customer_id"].clone();
        let mut c = sample(3, 0);
        c["customer"] = Value::Null;
        c["customer_id"] = Value::Null;
        // Upper-case ids, other offsets, messages out of order.
        let upper = uid(1, 1).to_uppercase();
        a["id"] = json!(upper);
        for m in a["messages"].as_array_mut().unwrap() {
            m["conversation_id"] = json!(upper);
        }
        a["messages"][0]["created_at"] = json!("2024-03-01T11:30:00.500000+01:00");
        a["messages"][2]["created_at"] = json!("2024-03-01T04:00:00-05:00");
        a["first_response_at"] = json!("2024-03-01T09:05:00.120+00:00");
        let input = to_string(&json!([a, b, c]));

        let (result, importer) = run(input).await;
        let summary = result.unwrap().summary;
        assert_eq!(
            summary,
            ImportSummary {
                conversations: 3,
                customers: 1,
                messages: 4,
                attachments: 2,
            }
        );
        let committed = importer.committed();
        assert_eq!(committed.len(), 3);
        let a = &committed[0];
        assert_eq!(a.id().to_string(), uid(1, 1));
        assert_eq!(
            a.first_response_at().unwrap().to_string(),
            "2024-03-01T09:05:00.12Z"
        );
        let times: Vec<String> = a
            .messages()
            .iter()
            .map(|m| m.created_at().to_string())
            .collect();
        assert_eq!(
            times,
            [
                "2024-03-01T09:00:00Z",
                "2024-03-01T09:00:01Z",
                "2024-03-01T10:30:00.5Z"
            ]
        );
        assert_eq!(a.messages()[2].attachments().len(), 1);
        assert_eq!(a.messages()[2].attachments()[0].byte_size().get(), 12345);
        assert_eq!(committed[1].customer(), a.customer());
        assert_eq!(committed[2].customer(), None);
        assert_eq!(committed[2].customer_id(), None);
    }

    #[tokio::test]
    async fn unknown_fields_are_named_at_every_level() {
        let mut v = sample(1, 1);
        v["sttaus"] = json!("open");
        v["customer"]["nmae"] = json!("x");
        v["messages"][0]["sender"] = json!("x");
        v["messages"][0]["attachments"][0]["size"] = json!(1);
        let errors = errors_of(to_string(&json!([v]))).await;
        assert_eq!(errors.len(), 4, "{errors:#?}");
        has(
            &errors,
            "$[0]: unknown field \"sttaus\" (expected one of: id, business_id, customer_id, assignee_id, status, channel_type, channel_id, created_at, updated_at, first_response_at, customer, messages)",
        );
        has(
            &errors,
            "$[0].customer: unknown field \"nmae\" (expected one of: id, business_id, name, email, phone, external_id, created_at)",
        );
        has(
            &errors,
            "$[0].messages[0]: unknown field \"sender\" (expected one of: id, conversation_id, sender_type, sender_id, content, attachments, created_at)",
        );
        has(
            &errors,
            "$[0].messages[0].attachments[0]: unknown field \"size\" (expected one of: id, file_name, content_type, byte_size, url)",
        );
    }

    #[tokio::test]
    async fn missing_fields_are_reported_nullable_ones_included() {
        let mut v = sample(1, 1);
        let o = v.as_object_mut().unwrap();
        o.remove("status");
        o.remove("assignee_id");
        v["customer"].as_object_mut().unwrap().remove("email");
        v["messages"][0].as_object_mut().unwrap().remove("content");
        v["messages"][0]["attachments"][0]
            .as_object_mut()
            .unwrap()
            .remove("url");
        let errors = errors_of(to_string(&v)).await;
        assert_eq!(
            errors,
            [
                "$.customer: missing field \"email\"",
                "$.messages[0].attachments[0]: missing field \"url\"",
                "$.messages[0]: missing field \"content\"",
                "$: missing field \"assignee_id\"",
                "$: missing field \"status\"",
            ]
        );
    }

    #[tokio::test]
    async fn wrong_types_and_values_are_reported_with_the_value() {
        let mut v = sample(1, 2);
        v["status"] = json!("Open");
        v["channel_type"] = json!("");
        v["assignee_id"] = json!(17);
        v["customer"]["name"] = json!(["Alex"]);
        v["messages"][0]["sender_type"] = json!("bot");
        v["messages"][0]["content"] = json!({"text": "hi"});
        v["messages"][0]["attachments"][0]["byte_size"] = json!("12");
        v["messages"][1]["attachments"] = json!("none");
        v["messages"][1]["created_at"] = json!("2024-03-01");
        let mut w = sample(2, 2);
        w["messages"][0]["attachments"][0]["byte_size"] = json!(-1);
        w["messages"][1]["attachments"] = json!([{
            "id": uid(4, 99), "file_name": "a", "content_type": "b", "byte_size": 1.5, "url": "u"
        }]);
        w["customer"] = json!(5);
        let mut x = sample(3, 0);
        x["messages"] = Value::Null;
        let errors = errors_of(to_string(&json!([v, w, x, "nope"]))).await;
        assert_eq!(
            errors,
            [
                "$[0].assignee_id: expected a UUID string or null (got 17)",
                "$[0].channel_type: must not be empty (got \"\")",
                "$[0].customer.name: expected a string or null (got an array)",
                "$[0].messages[0].attachments[0].byte_size: expected a number of bytes (got \"12\")",
                "$[0].messages[0].content: expected a string (got an object)",
                "$[0].messages[0].sender_type: unknown sender type (expected one of: customer, agent) (got \"bot\")",
                "$[0].messages[1].attachments: expected an array of attachments (got \"none\")",
                "$[0].messages[1].created_at: expected an RFC 3339 timestamp with an offset, e.g. 2024-03-01T09:00:00Z (got \"2024-03-01\")",
                "$[0].status: unknown status (expected one of: open, pending, resolved, closed) (got \"Open\")",
                "$[1].customer: expected a customer object or null (got 5)",
                "$[1].messages[0].attachments[0].byte_size: must be between 0 and 9223372036854775807 (got -1)",
                "$[1].messages[1].attachments[0].byte_size: expected a whole number of bytes (got 1.5)",
                "$[2].messages: expected an array of messages (got null)",
                "$[3]: expected a conversation object (got \"nope\")",
            ]
        );
    }

    #[tokio::test]
    async fn fields_that_must_agree_are_checked() {
        // customer_id differs from customer.id; a message names another conversation
        // (read before and after the conversation's own id); a foreign customer.
        let mut a = sample(1, 2);
        a["customer_id"] = json!(uid(2, 9));
        a["messages"][1]["conversation_id"] = json!(uid(1, 9));
        a["customer"]["business_id"] = json!(uid(8, 1));
        let mut b = sample(2, 1);
        b["customer_id"] = Value::Null;
        let mut c = sample(3, 1);
        c["customer"] = Value::Null;
        let mut d = sample(4, 1);
        d["messages"][0]["conversation_id"] = json!(uid(1, 9));
        // Put the conversation id after the messages.
        let id = d.as_object_mut().unwrap().remove("id").unwrap();
        d.as_object_mut().unwrap().insert("id".to_owned(), id);
        let errors = errors_of(to_string(&json!([a, b, c, d]))).await;
        assert_eq!(
            errors,
            [
                format!(
                    "$[0].messages[1].conversation_id: does not match the conversation's id {} (got \"{}\")",
                    uid(1, 1),
                    uid(1, 9)
                ),
                format!(
                    "$[0].customer_id: does not match customer.id {} (got \"{}\")",
                    uid(2, 1),
                    uid(2, 9)
                ),
                format!(
                    "$[0].customer.business_id: does not match the conversation's business_id {BUSINESS} (got \"{}\")",
                    uid(8, 1)
                ),
                format!(
                    "$[1].customer_id: is null but customer is not (customer.id is {}) (got null)",
                    uid(2, 2)
                ),
                format!(
                    "$[2].customer: is null but customer_id is {} (got null)",
                    uid(2, 3)
                ),
                format!(
                    "$[3].messages[0].conversation_id: does not match the conversation's id {} (got \"{}\")",
                    uid(1, 4),
                    uid(1, 9)
                ),
            ]
        );
    }

    #[tokio::test]
    async fn repeated_ids_and_keys_are_reported_where_they_repeat() {
        let mut a = sample(1, 3);
        a["messages"][2]["id"] = a["messages"][0]["id"].clone();
        let mut b = sample(2, 2);
        b["id"] = a["id"].clone();
        for m in b["messages"].as_array_mut().unwrap() {
            m["conversation_id"] = a["id"].clone();
        }
        b["messages"][1]["id"] = a["messages"][1]["id"].clone();
        b["messages"][1]["attachments"] = a["messages"][0]["attachments"].clone();
        // The same customer with other details.
        b["customer_id"] = a["customer_id"].clone();
        b["customer"] = a["customer"].clone();
        b["customer"]["name"] = json!("Someone else");
        let mut text = to_string(&json!([a, b]));
        // A key given twice (serde_json::Value cannot hold that).
        text = text.replacen(
            "\"status\":\"open\"",
            "\"status\":\"open\",\"status\":\"closed\"",
            1,
        );
        let errors = errors_of(text).await;
        let (a_id, m0, m1, att) = (
            uid(1, 1),
            uid(3, 1 << 32),
            uid(3, (1 << 32) | 1),
            uid(4, 1 << 32),
        );
        assert_eq!(
            errors,
            [
                format!(
                    "$[0].messages[2].id: message id appears more than once (first at $[0].messages[0].id) (got \"{m0}\")"
                ),
                "$[0]: duplicate field \"status\"".to_owned(),
                format!(
                    "$[1].messages[1].attachments[0].id: attachment id appears more than once (first at $[0].messages[0].attachments[0].id) (got \"{att}\")"
                ),
                format!(
                    "$[1].messages[1].id: message id appears more than once (first at $[0].messages[1].id) (got \"{m1}\")"
                ),
                format!(
                    "$[1].id: conversation id appears more than once (first at $[0].id) (got \"{a_id}\")"
                ),
                format!(
                    "$[1].customer: customer {} differs from the one at $[0].customer; a customer shared by several conversations must be identical",
                    uid(2, 1)
                ),
            ]
        );
    }

    #[tokio::test]
    async fn text_with_nul_and_long_values_are_cut() {
        let mut v = sample(1, 1);
        v["messages"][0]["content"] = json!("a\u{0}b");
        v["customer"]["email"] = json!(format!("{}\u{0}", "é".repeat(200)));
        let errors = errors_of(to_string(&v)).await;
        assert_eq!(
            errors,
            [
                format!(
                    "$.customer.email: contains a NUL character (got \"{}…\")",
                    "é".repeat(80)
                ),
                "$.messages[0].content: contains a NUL character (got \"a\\u0000b\")".to_owned(),
            ]
        );
    }

    #[tokio::test]
    async fn timestamps_reject_excess_precision_and_junk() {
        let mut v = sample(1, 2);
        v["created_at"] = json!("2024-03-01T09:00:00.1234567Z");
        v["updated_at"] = json!(1709283600);
        v["messages"][0]["created_at"] = json!("2024-03-01T09:00:00");
        v["messages"][1]["created_at"] = json!("2024-03-01T09:00:00.123456+02:00");
        let errors = errors_of(to_string(&v)).await;
        assert_eq!(
            errors,
            [
                "$.created_at: more than 6 fractional digits: precision is microseconds (got \"2024-03-01T09:00:00.1234567Z\")",
                "$.messages[0].created_at: expected an RFC 3339 timestamp with an offset, e.g. 2024-03-01T09:00:00Z (got \"2024-03-01T09:00:00\")",
                "$.updated_at: expected an RFC 3339 timestamp string (got 1709283600)",
            ]
        );
    }

    #[tokio::test]
    async fn ids_take_any_letter_case_and_only_the_hyphenated_form() {
        let mut v = sample(1, 1);
        v["channel_id"] = json!("E5F6A7B8-C9D0-1234-EFAB-345678901234");
        v["assignee_id"] = json!("a1b2c3d4e5f67890abcdef1234567890");
        v["messages"][0]["sender_id"] = json!("{a1b2c3d4-e5f6-7890-abcd-ef1234567890}");
        let errors = errors_of(to_string(&v)).await;
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors[0].starts_with("$.assignee_id: expected a UUID in the hyphenated form"));
        assert!(errors[1].starts_with("$.messages[0].sender_id: expected a UUID"));

        let mut v = sample(1, 1);
        v["channel_id"] = json!("E5F6A7B8-C9D0-1234-EFAB-345678901234");
        let (result, importer) = run(to_string(&v)).await;
        result.unwrap();
        assert_eq!(
            importer.committed()[0].channel_id().unwrap().to_string(),
            "e5f6a7b8-c9d0-1234-efab-345678901234"
        );
    }

    #[tokio::test]
    async fn broken_json_is_reported_where_it_breaks() {
        assert_eq!(
            errors_of("hello").await,
            ["$: invalid JSON: expected value at line 1 column 1"]
        );
        assert_eq!(
            errors_of("").await,
            ["$: invalid JSON: EOF while parsing a value at line 1 column 0"]
        );
        assert_eq!(
            errors_of("42").await,
            ["$: expected a conversation object or an array of them (got 42)"]
        );
        let valid = to_string(&sample(1, 1));
        assert_eq!(
            errors_of(format!("{valid} x")).await,
            [format!(
                "$: invalid JSON: trailing characters at line 1 column {}",
                valid.len() + 2
            )]
        );
        let two = to_string(&json!([sample(1, 1), sample(2, 2)]));
        let cut = &two[..two.len() - 40];
        let errors = errors_of(cut).await;
        assert_eq!(errors.len(), 1);
        // `Value` writes keys in alphabetical order: the cut falls in `status`.
        assert_eq!(
            errors[0],
            format!(
                "$[1].status: invalid JSON: EOF while parsing a string at line 1 column {}",
                cut.len()
            )
        );
        // Errors before the break are kept.
        let mut bad = sample(1, 1);
        bad["status"] = json!("nope");
        let text = format!("[{}, {{\"id\" 1}}]", to_string(&bad));
        let errors = errors_of(text).await;
        assert_eq!(errors.len(), 2);
        // Reading stopped after the key: the path names it.
        assert!(
            errors[1].starts_with("$[1].id: invalid JSON: expected `:` at line 1"),
            "{errors:?}"
        );
    }

    #[tokio::test]
    async fn listing_stops_after_fifty_errors() {
        let conversations: Vec<Value> = (0..60)
            .map(|n| {
                let mut v = sample(n, 1);
                v["status"] = json!("bad");
                v
            })
            .collect();
        let (result, importer) = run(to_string(&Value::Array(conversations))).await;
        assert!(importer.committed().is_empty());
        let err = result.unwrap_err();
        let ImportFileError::Invalid {
            errors, truncated, ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(errors.len(), MAX_LISTED_ERRORS);
        assert!(truncated);
        assert_eq!(errors[49].path, "$[49].status");
        assert!(
            err.to_string()
                .ends_with("\nin.json: more than 50 errors; stopped checking")
        );
    }

    #[tokio::test]
    async fn storage_conflicts_name_the_json_path() {
        let a = sample(1, 2);
        let b = sample(2, 2);
        let other = BusinessId::from_uuid(Uuid::from_u128(77));
        let conv = |n| ConversationId::parse(&uid(1, n)).unwrap();
        let conflict = |entity, id: String, n, owner| ImportConflict {
            entity,
            id,
            conversation_id: conv(n),
            owner,
        };
        let importer = Arc::new(FakeImporter {
            conflicts: vec![
                conflict(
                    ImportedEntity::Message,
                    uid(3, (2 << 32) | 1),
                    2,
                    ImportConflictOwner::Conversation(conv(9)),
                ),
                conflict(
                    ImportedEntity::Attachment,
                    uid(4, 2 << 32),
                    2,
                    ImportConflictOwner::Business(other),
                ),
                conflict(
                    ImportedEntity::Customer,
                    uid(2, 1),
                    1,
                    ImportConflictOwner::Business(other),
                ),
                conflict(
                    ImportedEntity::Conversation,
                    uid(1, 2),
                    2,
                    ImportConflictOwner::Business(other),
                ),
            ],
            ..FakeImporter::default()
        });
        let result = run_with(importer.clone(), to_string(&json!([a, b]))).await;
        assert!(importer.committed().is_empty());
        let err = result.unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let ImportFileError::Invalid { errors, .. } = err else {
            panic!()
        };
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                format!(
                    "$[1].messages[1].id: message id {0} already belongs to another conversation ({1}) (got \"{0}\")",
                    uid(3, (2 << 32) | 1),
                    uid(1, 9)
                ),
                format!(
                    "$[1].messages[0].attachments[0].id: attachment id {0} already belongs to another business (got \"{0}\")",
                    uid(4, 2 << 32)
                ),
                format!(
                    "$[0].customer.id: customer id {0} already belongs to another business (got \"{0}\")",
                    uid(2, 1)
                ),
                format!(
                    "$[1].id: conversation id {0} already belongs to another business (got \"{0}\")",
                    uid(1, 2)
                ),
            ]
        );
    }

    #[tokio::test]
    async fn storage_failures_are_runtime_errors() {
        let mut mock = MockConversationImporter::new();
        mock.expect_import().times(1).returning(|_| {
            Err(ImportError::Storage(RepositoryError::unavailable(
                "connection refused",
            )))
        });
        let input = to_string(&json!([sample(1, 3), sample(2, 3)]));
        let err = import_file(
            Arc::new(mock),
            "-",
            io::Cursor::new(input),
            Progress::hidden(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert_eq!(err.file(), "-");
        assert_eq!(
            err.to_string(),
            "-: storage unavailable: connection refused"
        );
    }

    #[tokio::test]
    async fn a_large_file_streams_in_batches_within_one_import() {
        let input = to_string(&json!([sample(1, 4000), sample(2, 4000), sample(3, 4000)]));
        let (result, importer) = run(input).await;
        assert_eq!(result.unwrap().summary.messages, 12_000);
        assert_eq!(importer.calls.load(Ordering::SeqCst), 1);
        assert!(importer.batches.load(Ordering::SeqCst) >= 2);
        assert_eq!(importer.committed().len(), 3);
    }

    #[tokio::test]
    async fn an_error_after_batches_were_sent_rolls_everything_back() {
        let mut last = sample(4, 1);
        last["status"] = json!("bad");
        let input = to_string(&json!([
            sample(1, 4000),
            sample(2, 4000),
            sample(3, 4000),
            last
        ]));
        let (result, importer) = run(input).await;
        assert!(matches!(result, Err(ImportFileError::Invalid { .. })));
        assert!(importer.batches.load(Ordering::SeqCst) >= 1);
        assert!(importer.aborted.load(Ordering::SeqCst));
        assert!(importer.committed().is_empty());
    }

    #[tokio::test]
    async fn an_empty_array_imports_nothing() {
        let (result, importer) = run("[]").await;
        assert_eq!(result.unwrap().summary, ImportSummary::default());
        assert_eq!(importer.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn read_failures_are_runtime_errors() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let importer = Arc::new(FakeImporter::default());
        let err = import_file(importer.clone(), "f.json", Failing, Progress::hidden())
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert_eq!(err.to_string(), "f.json: cannot read: disk on fire");
        assert!(importer.committed().is_empty());
    }

    #[test]
    fn a_dead_producer_never_commits() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (sender, mut batches) = batch_channel(Arc::new(AtomicBool::new(false)));
        drop(sender);
        let first = rt.block_on(futures_util::StreamExt::next(&mut batches));
        assert!(matches!(first, Some(Err(SourceAborted(_)))));
    }
}
