//! Structured logs on stderr (stdout carries command output only).
//!
//! `serve` writes them through a bounded background writer: a request formats its
//! access line into the subscriber's per-thread buffer and hands the bytes to a
//! channel; a thread of its own writes them to stderr in batches. A request never
//! waits on stderr: when the channel is full (the reader of stderr has stalled) the
//! line is dropped and counted ([`dropped_lines`], `pingback_log_lines_dropped_total`
//! in `/metrics`). Dropping the [`Guard`] writes what is pending, so `serve` keeps it
//! until the server has stopped (SIGTERM included). The other commands write
//! synchronously, so their log lines stay in order with what they print on stderr.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::{self, BufWriter};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// Lines the background writer holds before it drops new ones: a stall of stderr of
/// about 2 s at full load (the channel's slots, 32 bytes each, are allocated up
/// front: 1 MiB; 128 Ki lines cost 4 MiB of resident memory). Normally it holds one
/// [`PAUSE`]'s worth.
const BUFFERED_LINES: usize = 32 * 1024;

/// What the background writer hands stderr at once (one system call per batch).
const BATCH_BYTES: usize = 64 * 1024;

/// How long the background writer lets lines gather after writing a batch.
const PAUSE: Duration = Duration::from_millis(10);

/// Where log lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Through the bounded background writer (`serve`).
    Background,
    /// Straight to stderr, in order with the command's own messages.
    Direct,
}

/// Keeps the background writer running; dropping it writes the pending lines.
#[must_use = "dropping the guard stops the background log writer"]
pub struct Guard(#[allow(dead_code)] Option<WorkerGuard>);

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Log lines the background writer has dropped because it was full.
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |counter| counter.dropped_lines() as u64)
}

pub fn init(format: &str, level: &str, output: Output) -> Guard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match output {
        Output::Direct => {
            // A second init (tests) keeps the first subscriber.
            let _ = tracing::subscriber::set_global_default(subscriber(
                format,
                filter,
                ansi,
                std::io::stderr,
            ));
            Guard(None)
        }
        Output::Background => {
            let (writer, guard) = background(BufWriter::with_capacity(BATCH_BYTES, io::stderr()));
            let counter = writer.error_counter();
            let installed =
                tracing::subscriber::set_global_default(subscriber(format, filter, ansi, writer))
                    .is_ok();
            if installed {
                let _ = DROPPED.set(counter);
            }
            Guard(Some(guard))
        }
    }
}

/// The bounded, lossy channel to a thread that writes `out` in batches.
fn background<W: io::Write + Send + 'static>(out: W) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("pingback-log")
        .finish(Batches(out))
}

/// The background thread's stderr. tracing-appender's thread writes each line it
/// takes from the channel, flushes when the channel is empty and then waits on it, so
/// on a server that is not saturated every line would wake it: a futex wake on the
/// request's thread, the thread spinning and switching in, and a `write(2)` per line
/// (measured: 11 % of the server's CPU at 10-message reads, twice what writing stderr
/// synchronously cost). Pausing after each flush lets the lines of the next [`PAUSE`]
/// gather in the channel: a request only pushes onto it, and stderr gets one write
/// per batch. A line reaches stderr about [`PAUSE`] later at most.
struct Batches<W>(W);

impl<W: io::Write> io::Write for Batches<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        let written = self.0.flush();
        std::thread::sleep(PAUSE);
        written
    }
}

/// The subscriber for a format (`json` or text) writing to `writer`: JSON lines,
/// tracing-subscriber's coloured text on a terminal, else [`PlainLine`].
pub fn subscriber<W>(
    format: &str,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if format == "json" {
        Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .finish(),
        )
    } else if ansi {
        Box::new(builder.with_ansi(true).finish())
    } else {
        Box::new(builder.with_ansi(false).event_format(PlainLine).finish())
    }
}

/// The text line of tracing-subscriber's default format without colours
/// (`2026-01-02T03:04:05.678901Z  INFO target: message key=value …`), written
/// straight into the subscriber's per-thread buffer: no allocation, no empty colour
/// codes to format, the date and time of day formatted once a second, and control
/// characters escaped in runs rather than one character at a time. The default
/// format costs about twice as much per access line (see `docs/performance.md`).
pub struct PlainLine;

impl<S, N> FormatEvent<S, N> for PlainLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write_timestamp(&mut writer, SystemTime::now())?;
        writer.write_str(match *meta.level() {
            Level::TRACE => "TRACE ",
            Level::DEBUG => "DEBUG ",
            Level::INFO => " INFO ",
            Level::WARN => " WARN ",
            Level::ERROR => "ERROR ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                writer.write_str(span.metadata().name())?;
                seen = true;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                writer.write_char(':')?;
            }
            if seen {
                writer.write_char(' ')?;
            }
        }
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        let mut fields = PlainFields {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// `2026-01-02T03:04:05.678901Z ` (UTC, microseconds, as tracing-subscriber writes
/// it), the part before the fraction kept per thread for the second it names.
fn write_timestamp(writer: &mut Writer<'_>, now: SystemTime) -> fmt::Result {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = RefCell::new((u64::MAX, String::with_capacity(24)));
    }
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        let (second, text) = &mut *cached;
        if *second != seconds {
            text.clear();
            write_date_time(text, seconds)?;
            *second = seconds;
        }
        writer.write_str(text)
    })?;
    write!(writer, ".{:06}Z ", since_epoch.subsec_micros())
}

/// `YYYY-MM-DDTHH:MM:SS` for seconds since the Unix epoch (proleptic Gregorian,
/// UTC; the civil-from-days algorithm of H. Hinnant).
fn write_date_time(out: &mut impl fmt::Write, seconds: u64) -> fmt::Result {
    let days = seconds / 86_400;
    let of_day = seconds % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// The fields as tracing-subscriber's default field format writes them (`message`
/// bare, then `name=value` separated by spaces, strings quoted), every value with
/// terminal control characters escaped.
struct PlainFields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl PlainFields<'_, '_> {
    /// Writes the separator and `name=` (nothing for the message).
    fn start(&mut self, field: &Field) -> fmt::Result {
        if self.first {
            self.first = false;
        } else {
            self.writer.write_str(" ")?;
        }
        match field.name() {
            "message" => Ok(()),
            name => {
                self.writer
                    .write_str(name.strip_prefix("r#").unwrap_or(name))?;
                self.writer.write_str("=")
            }
        }
    }

    fn record(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_ok() {
            self.result = self
                .start(field)
                .and_then(|()| Escaping(&mut *self.writer).write_fmt(value));
        }
    }
}

impl Visit for PlainFields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record(field, format_args!("{value}"));
        } else {
            self.record(field, format_args!("{value:?}"));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record(field, format_args!("{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record(field, format_args!("{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record(field, format_args!("{value}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        match value.source() {
            Some(source) => self.record(
                field,
                format_args!("{value} {}.sources={}", field.name(), Sources(source)),
            ),
            None => self.record(field, format_args!("{value}")),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record(field, format_args!("{value:?}"));
    }
}

/// An error's sources as a list: `[first, second]`.
struct Sources<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('[')?;
        let mut next = Some(self.0);
        let mut first = true;
        while let Some(error) = next {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{error}")?;
            next = error.source();
        }
        f.write_char(']')
    }
}

/// Escapes what a terminal would act on (ESC, BEL, BS, FF, DEL and the C1 controls,
/// as tracing-subscriber does), passing the runs between them through whole.
struct Escaping<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // Nearly always none: looked for without branching (vectorised), then found.
        let suspect = |b: u8| matches!(b, 0x07 | 0x08 | 0x0c | 0x1b | 0x7f | 0xc2);
        if !text.bytes().fold(false, |seen, b| seen | suspect(b)) {
            return self.0.write_str(text);
        }
        let mut rest = text;
        while let Some((at, control)) = next_control(rest) {
            self.0.write_str(&rest[..at])?;
            if u32::from(control) < 0x80 {
                write!(self.0, "\\x{:02x}", u32::from(control))?;
            } else {
                write!(self.0, "\\u{{{:x}}}", u32::from(control))?;
            }
            rest = &rest[at + control.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// The first terminal control character in `text` and where it starts.
fn next_control(text: &str) -> Option<(usize, char)> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(offset) = bytes[from..]
        .iter()
        .position(|b| matches!(b, 0x07 | 0x08 | 0x0c | 0x1b | 0x7f | 0xc2))
    {
        let at = from + offset;
        match (bytes[at], bytes.get(at + 1)) {
            // U+0080–U+009F are C2 80–C2 9F in UTF-8.
            (0xc2, Some(&next @ 0x80..=0x9f)) => return Some((at, char::from(next))),
            (0xc2, _) => from = at + 1,
            (control, _) => return Some((at, char::from(control))),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut all) = self.0.lock() {
                all.extend_from_slice(buf);
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().map(|v| v.clone()).unwrap_or_default())
                .unwrap_or_default()
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    /// Events of every shape `serve` logs, the access line first.
    fn emit() {
        let id = "5f0c6c1e-8a39-4b8f-9d7e-2f1a4c3b2a10";
        let path = "/api/v1/conversations/0190b1a2";
        tracing::info!(
            target: "pingback::access",
            request_id = %id,
            method = %"GET",
            path = %path,
            status = 200_u16,
            latency_ms = format_args!("{:.3}", 0.8125),
            "request"
        );
        tracing::warn!(error = %"bad\x1b[31m red\u{9b}", quoted = "a \"b\"\n", n = -3_i64, ok = true, "readiness check failed");
        let error = Outer(std::io::Error::other("inner"));
        tracing::error!(
            error = &error as &(dyn std::error::Error + 'static),
            r#type = 1_u64,
            "{} {}",
            "formatted",
            7
        );
        tracing::info!("pingback stopped");
    }

    /// Each line without its timestamp.
    fn without_timestamps(text: &str) -> Vec<String> {
        text.lines()
            .map(|line| {
                let (timestamp, rest) = line.split_once(' ').unwrap_or_default();
                assert_eq!(timestamp.len(), 27, "{line}");
                assert!(timestamp.ends_with('Z'), "{line}");
                rest.to_owned()
            })
            .collect()
    }

    #[test]
    fn the_plain_line_is_tracing_subscribers_line_without_colours() {
        let ours = Captured::default();
        let theirs = Captured::default();
        let plain = subscriber("text", EnvFilter::new("info"), false, ours.clone());
        tracing::subscriber::with_default(plain, emit);
        let default = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("info"))
            .with_ansi(false)
            .with_writer(theirs.clone())
            .finish();
        tracing::subscriber::with_default(default, emit);
        let (ours, theirs) = (ours.text(), theirs.text());
        assert_eq!(
            without_timestamps(&ours)
                .iter()
                .map(|line| line.replace("\\x1b", "\u{1b}").replace("\\u{9b}", "\u{9b}"))
                .collect::<Vec<_>>(),
            without_timestamps(&theirs),
            "\nours:\n{ours}\ntheirs:\n{theirs}"
        );
        assert!(
            ours.contains(
                " INFO pingback::access: request request_id=5f0c6c1e-8a39-4b8f-9d7e-2f1a4c3b2a10 \
                 method=GET path=/api/v1/conversations/0190b1a2 status=200 latency_ms=0.812\n"
            ),
            "{ours}"
        );
        // A value cannot move the terminal's cursor or colour the lines after it.
        assert!(ours.contains("error=bad\\x1b[31m red\\u{9b} "), "{ours}");
    }

    #[test]
    fn json_lines_carry_the_access_fields() {
        let out = Captured::default();
        let json = subscriber("json", EnvFilter::new("info"), false, out.clone());
        tracing::subscriber::with_default(json, emit);
        let text = out.text();
        let first = text.lines().next().unwrap_or_default();
        let line: serde_json::Value = serde_json::from_str(first).unwrap_or_default();
        assert_eq!(line["target"], "pingback::access", "{text}");
        assert_eq!(line["message"], "request", "{text}");
        assert_eq!(line["path"], "/api/v1/conversations/0190b1a2", "{text}");
        assert_eq!(line["status"], 200, "{text}");
        assert_eq!(line["latency_ms"], "0.812", "{text}");
        assert_eq!(text.lines().count(), 4, "{text}");
    }

    #[test]
    fn dropping_the_guard_writes_every_pending_line() {
        let out = Captured::default();
        let (writer, guard) = background(out.clone());
        let logs = subscriber("text", EnvFilter::new("info"), false, writer);
        tracing::subscriber::with_default(logs, || {
            for n in 0..5_000 {
                tracing::info!(target: "pingback::access", n, "request");
            }
        });
        drop(guard);
        let text = out.text();
        assert_eq!(text.lines().count(), 5_000);
        assert!(
            text.ends_with(" INFO pingback::access: request n=4999\n"),
            "{text}"
        );
    }

    #[test]
    fn timestamps_are_utc_with_microseconds() {
        let format = |seconds: u64| {
            let mut out = String::new();
            let _ = write_date_time(&mut out, seconds);
            out
        };
        assert_eq!(format(0), "1970-01-01T00:00:00");
        assert_eq!(format(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(format(1_709_251_199), "2024-02-29T23:59:59");
        assert_eq!(format(1_735_689_600), "2025-01-01T00:00:00");
        assert_eq!(format(4_102_444_799), "2099-12-31T23:59:59");
        assert_eq!(format(4_107_542_400), "2100-03-01T00:00:00");
        let mut line = String::new();
        let at = UNIX_EPOCH + std::time::Duration::from_micros(1_709_251_199_000_042);
        let _ = write_timestamp(&mut Writer::new(&mut line), at);
        assert_eq!(line, "2024-02-29T23:59:59.000042Z ");
        // The cached second is not reused for another.
        line.clear();
        let _ = write_timestamp(
            &mut Writer::new(&mut line),
            at + std::time::Duration::from_secs(1),
        );
        assert_eq!(line, "2024-03-01T00:00:00.000042Z ");
    }

    #[test]
    fn control_characters_are_found_but_not_other_non_ascii() {
        assert_eq!(next_control("plain ünïcödé ¢"), None);
        assert_eq!(next_control("a\x1bb"), Some((1, '\x1b')));
        assert_eq!(next_control("é\u{85}"), Some((2, '\u{85}')));
        assert_eq!(next_control("\x7f"), Some((0, '\x7f')));
    }
}
