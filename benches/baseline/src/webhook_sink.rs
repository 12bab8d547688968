//! `pingback-webhook-sink`: the receiving end of `make bench`'s webhook scenario.
//!
//! A hand-written HTTP/1.1 keep-alive responder on a tokio `TcpListener` (one thread):
//! it reads each request's head and its body (`Content-Length`, or chunked), answers
//! `204 No Content` at once, and records the event number of its `webhook-id` header
//! (`<business_id>.<event id>`) with the times the request started arriving, was read
//! completely and was answered. Signatures are not checked: this measures throughput,
//! the black-box tests check what arrives.
//!
//! Usage: `pingback-webhook-sink [--port N] [--expect N] [--arrivals FILE]`
//! - `--port` — port on 127.0.0.1 (default 0: a free one). Prints
//!   `listening on http://127.0.0.1:PORT` when ready.
//! - `--expect N` — once N distinct event ids have arrived (and the last one is
//!   answered), print the summary; it keeps answering afterwards.
//! - `--arrivals FILE` — with each summary, write one line per request:
//!   `event_id started_unix read_unix answered_unix connection` (seconds).
//!
//! On SIGTERM or SIGINT it prints the summary (again) and exits 0. The summary is one
//! JSON line on stdout: requests received, distinct ids, first/last arrival times,
//! deliveries per second over first→last arrival, whether the ids arrived in order
//! (each one the previous or the previous + 1: no gap, a repeat only as an immediate
//! resend), the most connections open and requests in flight at once, and how the time
//! between two deliveries splits between the sender (from our answer to its next
//! request) and this sink (from the request's first byte to our answer).

use std::collections::HashSet;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};

/// The most a request head may take.
const MAX_HEAD: usize = 64 * 1024;
/// The most a request body may take.
const MAX_BODY: usize = 16 * 1024 * 1024;
const NO_CONTENT: &[u8] = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n";
/// A pause between two deliveries longer than this counts as a stall.
const STALL_US: u64 = 10_000;

struct Options {
    port: u16,
    expect: Option<usize>,
    arrivals: Option<String>,
}

/// One request, times in µs since the sink started.
#[derive(Clone, Copy)]
struct Arrival {
    /// The event number of `webhook-id`; `None` when the header is missing or unreadable.
    id: Option<i64>,
    started: u64,
    read: u64,
    answered: Option<u64>,
    connection: u64,
}

#[derive(Default)]
struct State {
    arrivals: Vec<Arrival>,
    distinct: HashSet<i64>,
    body_bytes: u64,
    connections: u64,
    open: usize,
    max_open: usize,
    in_flight: usize,
    max_in_flight: usize,
    bad_requests: u64,
    reported_expect: bool,
}

struct Sink {
    start: Instant,
    start_unix: f64,
    options: Options,
    state: Mutex<State>,
}

impl Sink {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn unix(&self, micros: u64) -> f64 {
        // Rounded to the µs so the JSON stays short.
        ((self.start_unix + micros as f64 / 1e6) * 1e6).round() / 1e6
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        port: 0,
        expect: None,
        arrivals: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => {
                options.port = value("--port")?
                    .parse()
                    .map_err(|e| format!("--port: {e}"))?;
            }
            "--expect" => {
                let n: usize = value("--expect")?
                    .parse()
                    .map_err(|e| format!("--expect: {e}"))?;
                options.expect = (n > 0).then_some(n);
            }
            "--arrivals" => options.arrivals = Some(value("--arrivals")?),
            "-h" | "--help" => {
                return Err(
                    "usage: pingback-webhook-sink [--port N] [--expect N] [--arrivals FILE]"
                        .to_owned(),
                );
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("pingback-webhook-sink: {message}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("pingback-webhook-sink: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), String> {
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    let listener = TcpListener::bind(("127.0.0.1", options.port))
        .await
        .map_err(|e| format!("binding 127.0.0.1:{}: {e}", options.port))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let start_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs_f64();
    let sink = Arc::new(Sink {
        start: Instant::now(),
        start_unix,
        options,
        state: Mutex::new(State::default()),
    });
    say(&format!("listening on http://{address}"));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let number = {
                        let mut state = sink.state();
                        state.connections += 1;
                        state.open += 1;
                        state.max_open = state.max_open.max(state.open);
                        state.connections
                    };
                    let sink = Arc::clone(&sink);
                    tokio::spawn(async move {
                        if let Err(error) = serve(&sink, stream, number).await {
                            eprintln!("pingback-webhook-sink: connection {number}: {error}");
                        }
                        sink.state().open -= 1;
                    });
                }
                Err(error) => eprintln!("pingback-webhook-sink: accept: {error}"),
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    report(&sink, "signal");
    Ok(())
}

/// One line on stdout, flushed (scripts read it while the sink runs).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    #[allow(clippy::print_stdout)] // the sink's output: the line scripts wait for, the summary
    {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}

/// A request's head, as far as the sink cares.
struct Head {
    content_length: Option<usize>,
    chunked: bool,
    close: bool,
    webhook_id: Option<String>,
}

fn parse_head(head: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(head).map_err(|_| "request head is not UTF-8".to_owned())?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let version = request_line.rsplit(' ').next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x request: {request_line:?}"));
    }
    let mut parsed = Head {
        content_length: None,
        chunked: false,
        close: version == "HTTP/1.0",
        webhook_id: None,
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad header line {line:?}"));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                parsed.content_length = Some(
                    value
                        .parse()
                        .map_err(|_| format!("bad content-length {value:?}"))?,
                );
            }
            "transfer-encoding" => parsed.chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => {
                let value = value.to_ascii_lowercase();
                if value.contains("close") {
                    parsed.close = true;
                } else if value.contains("keep-alive") {
                    parsed.close = false;
                }
            }
            "webhook-id" => parsed.webhook_id = Some(value.to_owned()),
            _ => {}
        }
    }
    Ok(parsed)
}

/// Reads more bytes into `buf`; `false` at end of stream.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<bool, String> {
    buf.reserve(16 * 1024);
    let n = stream.read_buf(buf).await.map_err(|e| e.to_string())?;
    Ok(n > 0)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The length of a complete chunked body at the start of `buf` (its bytes, trailers
/// included) and the decoded size; `None` while incomplete.
fn chunked_length(buf: &[u8]) -> Result<Option<(usize, usize)>, String> {
    let (mut at, mut decoded) = (0, 0);
    loop {
        let Some(eol) = find(&buf[at..], b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&buf[at..at + eol]).map_err(|e| e.to_string())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        at += eol + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(eol) = find(&buf[at..], b"\r\n") else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some((at, decoded)));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        decoded += size;
        if decoded > MAX_BODY {
            return Err("body too large".to_owned());
        }
        at += size + 2;
    }
}

async fn serve(sink: &Sink, mut stream: TcpStream, connection: u64) -> Result<(), String> {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        // The request starts with its first byte.
        if buf.is_empty() && !fill(&mut stream, &mut buf).await? {
            return Ok(());
        }
        let started = sink.now();
        {
            let mut state = sink.state();
            state.in_flight += 1;
            state.max_in_flight = state.max_in_flight.max(state.in_flight);
        }
        let outcome = request(sink, &mut stream, &mut buf, connection, started).await;
        sink.state().in_flight -= 1;
        match outcome? {
            Some(keep_alive) if keep_alive => {}
            _ => return Ok(()),
        }
    }
}

/// Reads one request from `buf` (and the stream), answers it; `Some(keep_alive)`, or
/// `None` when the peer closed the connection mid-request.
async fn request(
    sink: &Sink,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    connection: u64,
    started: u64,
) -> Result<Option<bool>, String> {
    let head_end = loop {
        if let Some(at) = find(buf, b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > MAX_HEAD {
            sink.state().bad_requests += 1;
            let _ = stream
                .write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
            return Ok(Some(false));
        }
        if !fill(stream, buf).await? {
            return Ok(None);
        }
    };
    let head = match parse_head(&buf[..head_end]) {
        Ok(head) => head,
        Err(error) => {
            sink.state().bad_requests += 1;
            eprintln!("pingback-webhook-sink: connection {connection}: {error}");
            let _ = stream
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            return Ok(Some(false));
        }
    };
    buf.drain(..head_end);
    let body_bytes = if head.chunked {
        loop {
            if let Some((length, decoded)) = chunked_length(buf)? {
                buf.drain(..length);
                break decoded;
            }
            if !fill(stream, buf).await? {
                return Ok(None);
            }
        }
    } else {
        let length = head.content_length.unwrap_or(0);
        if length > MAX_BODY {
            return Err(format!("body of {length} bytes"));
        }
        while buf.len() < length {
            if !fill(stream, buf).await? {
                return Ok(None);
            }
        }
        buf.drain(..length);
        length
    };
    let read = sink.now();
    let id = head
        .webhook_id
        .as_deref()
        .and_then(|id| id.rsplit('.').next())
        .and_then(|n| n.parse::<i64>().ok());
    let index = {
        let mut state = sink.state();
        state.body_bytes += body_bytes as u64;
        if let Some(id) = id {
            state.distinct.insert(id);
        } else if head.webhook_id.is_some() {
            state.bad_requests += 1;
        }
        state.arrivals.push(Arrival {
            id,
            started,
            read,
            answered: None,
            connection,
        });
        state.arrivals.len() - 1
    };
    stream
        .write_all(NO_CONTENT)
        .await
        .map_err(|e| format!("answering: {e}"))?;
    let answered = sink.now();
    let complete = {
        let mut state = sink.state();
        if let Some(arrival) = state.arrivals.get_mut(index) {
            arrival.answered = Some(answered);
        }
        match sink.options.expect {
            Some(expect) if !state.reported_expect && state.distinct.len() >= expect => {
                state.reported_expect = true;
                true
            }
            _ => false,
        }
    };
    if complete {
        report(sink, "expect");
    }
    Ok(Some(!head.close))
}

fn percentiles(mut values: Vec<u64>) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    values.sort_unstable();
    let at = |p: f64| {
        let i = ((p / 100.0 * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
        values[i] as f64 / 1000.0
    };
    let mean = values.iter().sum::<u64>() as f64 / values.len() as f64 / 1000.0;
    json!({"p50": at(50.0), "p90": at(90.0), "p99": at(99.0), "max": at(100.0), "mean": mean})
}

/// Prints the summary line (and writes the arrivals file).
fn report(sink: &Sink, reason: &str) {
    let state = sink.state();
    let events: Vec<&Arrival> = state.arrivals.iter().filter(|a| a.id.is_some()).collect();
    let received = events.len();
    let ids: Vec<i64> = events.iter().filter_map(|a| a.id).collect();
    // In order: each id the previous or the previous + 1.
    let (mut violations, mut resends, mut first_violation) = (0u64, 0u64, Value::Null);
    for (i, pair) in ids.windows(2).enumerate() {
        let (previous, id) = (pair[0], pair[1]);
        if id == previous {
            resends += 1;
        } else if id != previous + 1 {
            violations += 1;
            if first_violation.is_null() {
                first_violation = json!({"index": i + 1, "previous": previous, "id": id});
            }
        }
    }
    let first = events.first().map(|a| a.read);
    let last = events.last().map(|a| a.read);
    let seconds = match (first, last) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e6,
        _ => 0.0,
    };
    let distinct = state.distinct.len();
    // Deliveries per second over first→last arrival: the intervals between them.
    let per_second = if seconds > 0.0 && distinct > 1 {
        Some((distinct - 1) as f64 / seconds)
    } else {
        None
    };
    // Where the time between two deliveries goes: the sender's part (our answer to the
    // next request's first byte: its bookkeeping, the network stack) and ours (the
    // request's first byte to our answer).
    let mut sender_gaps = Vec::with_capacity(received);
    let mut sink_times = Vec::with_capacity(received);
    for pair in events.windows(2) {
        if let Some(answered) = pair[0].answered {
            sender_gaps.push(pair[1].started.saturating_sub(answered));
        }
    }
    for a in &events {
        if let Some(answered) = a.answered {
            sink_times.push(answered.saturating_sub(a.started));
        }
    }
    let stalls: Vec<u64> = sender_gaps
        .iter()
        .copied()
        .filter(|&g| g > STALL_US)
        .collect();
    // Deliveries in each second after the first arrival.
    let mut buckets: Vec<u64> = Vec::new();
    if let Some(first) = first {
        for a in &events {
            let bucket = usize::try_from((a.read - first) / 1_000_000).unwrap_or(usize::MAX);
            if bucket < 100_000 {
                if buckets.len() <= bucket {
                    buckets.resize(bucket + 1, 0);
                }
                buckets[bucket] += 1;
            }
        }
    }
    let summary = json!({
        "reason": reason,
        "received": received,
        "distinct": distinct,
        "repeats": received - distinct.min(received),
        "immediate_resends": resends,
        "first_id": ids.first(),
        "last_id": ids.last(),
        "min_id": ids.iter().min(),
        "max_id": ids.iter().max(),
        "in_order": violations == 0,
        "order_violations": violations,
        "first_violation": first_violation,
        "first_arrival_unix": first.map(|t| sink.unix(t)),
        "last_arrival_unix": last.map(|t| sink.unix(t)),
        "seconds": seconds,
        "deliveries_per_second": per_second,
        "connections": state.connections,
        "max_connections_open": state.max_open,
        "max_in_flight": state.max_in_flight,
        "other_requests": state.arrivals.len() - received,
        "bad_requests": state.bad_requests,
        "body_bytes": state.body_bytes,
        "sender_gap_ms": percentiles(sender_gaps),
        "sink_ms": percentiles(sink_times),
        "stalls_over_10ms": stalls.len(),
        "stalled_ms": stalls.iter().sum::<u64>() as f64 / 1000.0,
        "per_second": buckets,
    });
    if let Some(path) = &sink.options.arrivals {
        let mut text = String::with_capacity(state.arrivals.len() * 64);
        for a in &state.arrivals {
            let id = a.id.map_or_else(|| "-".to_owned(), |id| id.to_string());
            let answered = a
                .answered
                .map_or_else(|| "-".to_owned(), |t| format!("{:.6}", sink.unix(t)));
            text.push_str(&format!(
                "{id} {:.6} {:.6} {answered} {}\n",
                sink.unix(a.started),
                sink.unix(a.read),
                a.connection
            ));
        }
        if let Err(error) = std::fs::write(path, text) {
            eprintln!("pingback-webhook-sink: writing {path}: {error}");
        }
    }
    drop(state);
    say(&summary.to_string());
}
