//! `pingback-stream-client`: the client side of `make bench`'s event-stream scenario.
//!
//! Hand-written HTTP/1.1 on tokio `TcpStream`s (one thread, no HTTP library): it opens
//! N Server-Sent-Event streams (`GET /api/v1/events/stream`, the token in
//! `Authorization`, `Accept: text/event-stream`), decodes their chunked bodies and
//! reads each `id:` line, noting when every stream received every event id. Once all
//! N streams are open it prints `open N` on stdout, waits `--hold` seconds (the
//! harness samples the server's memory with the streams open and idle), then posts
//! `--posts` messages, one every `1 / --rate` s whether or not the earlier ones were
//! answered, on keep-alive connections of its own (`POST
//! /api/v1/conversations/{id}/messages`). Each post's
//! `message.created` event is the one whose `data:` carries the id of the message the
//! POST answered with; its fan-out latency is the time from the POST's answer (read
//! completely) to the moment the last of the N streams received it.
//!
//! Usage: `pingback-stream-client --url http://127.0.0.1:PORT --token TOKEN
//!   --streams N --conversations FILE --bodies FILE [--after ID] [--posts N]
//!   [--rate PER_S] [--hold S] [--wait S]`
//! - `--conversations` — conversation ids to post to (one a line, used in turn);
//! - `--bodies` — JSON request bodies (one a line, used in turn);
//! - `--after` — the streams start after this event id (`Last-Event-ID`);
//! - `--wait` — after the last post, how long to wait for its events to reach every
//!   stream (default 10 s).
//!
//! The result is one JSON line on stdout (after `open N`): streams opened, failures
//! (a stream refused, dropped or ended early; a POST not answered 201), and per post
//! its message id, event id, the latency to the first and to the last stream (ms; the
//! last `null` if some stream never got it), and how many streams got it. Exit status
//! 0 even when there were failures: the harness judges them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write as _;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// The most a response head may take.
const MAX_HEAD: usize = 64 * 1024;
/// Streams opened at once (the server accepts a backlog; no need to flood it).
const OPEN_BATCH: usize = 100;

struct Options {
    host: String,
    token: String,
    streams: usize,
    conversations: Vec<String>,
    bodies: Vec<String>,
    after: i64,
    posts: usize,
    rate: f64,
    hold: f64,
    wait: f64,
}

fn usage(problem: &str) -> String {
    format!(
        "pingback-stream-client: {problem}\nusage: pingback-stream-client --url http://HOST:PORT --token TOKEN \
         --streams N --conversations FILE --bodies FILE [--after ID] [--posts N] [--rate PER_S] [--hold S] [--wait S]"
    )
}

fn lines_of(path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        return Err(format!("{path}: no lines"));
    }
    Ok(lines)
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut url = None;
    let mut token = None;
    let mut streams = None;
    let mut conversations = None;
    let mut bodies = None;
    let mut after = 0_i64;
    let mut posts = 100_usize;
    let mut rate = 10.0_f64;
    let mut hold = 3.0_f64;
    let mut wait = 10.0_f64;
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| usage(&format!("{arg} needs a value")))
        };
        let number = |v: String| {
            v.parse::<f64>()
                .map_err(|_| usage(&format!("{arg}: not a number: {v}")))
        };
        match arg.as_str() {
            "--url" => url = Some(value()?),
            "--token" => token = Some(value()?),
            "--streams" => streams = Some(number(value()?)? as usize),
            "--conversations" => conversations = Some(lines_of(&value()?)?),
            "--bodies" => bodies = Some(lines_of(&value()?)?),
            "--after" => after = number(value()?)? as i64,
            "--posts" => posts = number(value()?)? as usize,
            "--rate" => rate = number(value()?)?,
            "--hold" => hold = number(value()?)?,
            "--wait" => wait = number(value()?)?,
            other => return Err(usage(&format!("unknown argument {other}"))),
        }
    }
    let url = url.ok_or_else(|| usage("--url is required"))?;
    let host = url
        .strip_prefix("http://")
        .ok_or_else(|| usage("--url must be http://HOST:PORT"))?
        .trim_end_matches('/')
        .to_owned();
    if rate <= 0.0 {
        return Err(usage("--rate must be above 0"));
    }
    Ok(Options {
        host,
        token: token.ok_or_else(|| usage("--token is required"))?,
        streams: streams.ok_or_else(|| usage("--streams is required"))?,
        conversations: conversations.ok_or_else(|| usage("--conversations is required"))?,
        bodies: bodies.ok_or_else(|| usage("--bodies is required"))?,
        after,
        posts,
        rate,
        hold,
        wait,
    })
}

/// What the streams saw, shared by their tasks (one thread: `Rc<RefCell<…>>`).
#[derive(Default)]
struct Seen {
    /// Per event id: how many streams got it, the first and the last arrival.
    events: HashMap<i64, (usize, Instant, Instant)>,
    /// Per event id, from stream 0 only: its `event:` type and `data:` line.
    payloads: HashMap<i64, (String, String)>,
    /// Streams that ended or failed after opening.
    dropped: usize,
    first_drop: Option<String>,
}

/// Reads a response head (status line and headers) from `reader`; returns the status
/// and the headers, names lowercased.
async fn read_head(
    reader: &mut BufReader<OwnedReadHalf>,
) -> Result<(u16, Vec<(String, String)>), String> {
    let mut status = None;
    let mut headers = Vec::new();
    let mut taken = 0;
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed in the response head".to_owned());
        }
        taken += n;
        if taken > MAX_HEAD {
            return Err("response head too large".to_owned());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if status.is_none() {
            let code = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| format!("bad status line {line:?}"))?;
            status = Some(code);
            continue;
        }
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    Ok((status.unwrap_or(0), headers))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// One chunk of a chunked body; `None` at its end.
async fn read_chunk(reader: &mut BufReader<OwnedReadHalf>) -> Result<Option<Vec<u8>>, String> {
    let mut line = String::new();
    if reader
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?
        == 0
    {
        return Err("connection closed".to_owned());
    }
    let size_text = line.trim().split(';').next().unwrap_or("");
    let size =
        usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size {line:?}"))?;
    let mut chunk = vec![0; size + 2];
    reader
        .read_exact(&mut chunk)
        .await
        .map_err(|e| e.to_string())?;
    chunk.truncate(size);
    if size == 0 {
        return Ok(None);
    }
    Ok(Some(chunk))
}

/// A whole response body (`Content-Length` or chunked).
async fn read_body(
    reader: &mut BufReader<OwnedReadHalf>,
    headers: &[(String, String)],
) -> Result<Vec<u8>, String> {
    if header(headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        while let Some(chunk) = read_chunk(reader).await? {
            body.extend_from_slice(&chunk);
        }
        return Ok(body);
    }
    let length = header(headers, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader
        .read_exact(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    Ok(body)
}

/// An open stream: its reader, and its write half (kept: dropping it would half-close).
type Open = (BufReader<OwnedReadHalf>, OwnedWriteHalf);

/// Opens one stream: connected, asked, answered 200 with `text/event-stream`.
async fn open_stream(options: &Options) -> Result<Open, String> {
    let stream = TcpStream::connect(&options.host)
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (read, mut write) = stream.into_split();
    let request = format!(
        "GET /api/v1/events/stream HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Accept: text/event-stream\r\nLast-Event-ID: {}\r\n\r\n",
        options.host, options.token, options.after
    );
    write
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::with_capacity(16 * 1024, read);
    let (status, headers) = read_head(&mut reader).await?;
    if status != 200 {
        let body = read_body(&mut reader, &headers).await.unwrap_or_default();
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
    }
    if !header(&headers, "content-type").is_some_and(|v| v.starts_with("text/event-stream")) {
        return Err(format!(
            "content-type {:?}",
            header(&headers, "content-type")
        ));
    }
    if !header(&headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return Err("the stream is not chunked".to_owned());
    }
    Ok((reader, write))
}

/// Follows one open stream until it ends: every `id:` line noted in `seen`.
async fn follow(index: usize, (mut reader, _write): Open, seen: Rc<RefCell<Seen>>) {
    let mut pending = Vec::new();
    let mut current: Option<i64> = None;
    let mut kind = String::new();
    let outcome = loop {
        let chunk = match read_chunk(&mut reader).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break "the stream ended".to_owned(),
            Err(error) => break error,
        };
        let now = Instant::now();
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if let Some(id) = line.strip_prefix("id:") {
                if let Ok(id) = id.trim().parse::<i64>() {
                    current = Some(id);
                    let mut seen = seen.borrow_mut();
                    let entry = seen.events.entry(id).or_insert((0, now, now));
                    entry.0 += 1;
                    entry.2 = now;
                }
            } else if let Some(value) = line.strip_prefix("event:") {
                kind = value.trim().to_owned();
            } else if let Some(data) = line.strip_prefix("data:") {
                if index == 0
                    && let Some(id) = current
                {
                    seen.borrow_mut()
                        .payloads
                        .insert(id, (kind.clone(), data.trim().to_owned()));
                }
            } else if line.is_empty() {
                current = None;
                kind.clear();
            }
        }
    };
    let mut seen = seen.borrow_mut();
    seen.dropped += 1;
    seen.first_drop.get_or_insert(outcome);
}

/// One POST on the poster's connection (reconnecting if the server closed it): the
/// status, the body and when the answer was read completely.
async fn post(
    options: &Options,
    connection: &mut Option<Open>,
    conversation: &str,
    body: &str,
) -> Result<(u16, Vec<u8>, Instant), String> {
    if connection.is_none() {
        let stream = TcpStream::connect(&options.host)
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (read, write) = stream.into_split();
        *connection = Some((BufReader::new(read), write));
    }
    let Some((reader, writer)) = connection.as_mut() else {
        return Err("no connection".to_owned());
    };
    let request = format!(
        "POST /api/v1/conversations/{conversation}/messages HTTP/1.1\r\nHost: {}\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        options.host,
        options.token,
        body.len()
    );
    let result = async {
        writer
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let (status, headers) = read_head(reader).await?;
        let answer = read_body(reader, &headers).await?;
        let close = header(&headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        Ok::<_, String>((status, answer, Instant::now(), close))
    }
    .await;
    match result {
        Ok((status, answer, at, close)) => {
            if close {
                *connection = None;
            }
            Ok((status, answer, at))
        }
        Err(error) => {
            *connection = None;
            Err(error)
        }
    }
}

/// One line on stdout, flushed (the harness waits for `open N` while the client runs).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A keep-alive connection of the posts (or none, if it was closed) and since when idle.
type IdleConnection = (Option<Open>, Instant);

/// A post's message id, when it was sent and when its answer was read; or why not.
type PostOutcome = Result<(String, Instant, Instant), String>;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn run(options: Options) -> serde_json::Value {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let started = Instant::now();
    let mut open_errors = 0_usize;
    let mut first_open_error = None;
    let mut opened = 0_usize;
    let mut next = 0_usize;
    while next < options.streams {
        let batch: Vec<usize> = (next..options.streams.min(next + OPEN_BATCH)).collect();
        next += batch.len();
        let results = join_all(batch.iter().map(|_| open_stream(&options))).await;
        for (index, result) in batch.into_iter().zip(results) {
            match result {
                Ok(open) => {
                    opened += 1;
                    tokio::task::spawn_local(follow(index, open, Rc::clone(&seen)));
                }
                Err(error) => {
                    open_errors += 1;
                    first_open_error.get_or_insert(error);
                }
            }
        }
    }
    let open_seconds = started.elapsed().as_secs_f64();
    say(&format!("open {opened}"));
    tokio::time::sleep(Duration::from_secs_f64(options.hold)).await;

    // The posts, one every 1/rate s whether or not the previous ones were answered
    // (each on a keep-alive connection of a small pool, a new one when all are busy),
    // so the rate holds even when a POST takes longer than the period.
    // Each with the moment it went idle: one idle for a second is not reused, since the
    // server may close an idle keep-alive connection just as a request goes out on it
    // (the request is then lost with no answer: a client error, not the server's).
    let idle: Rc<RefCell<Vec<IdleConnection>>> = Rc::new(RefCell::new(Vec::new()));
    let outcomes: Rc<RefCell<Vec<PostOutcome>>> = Rc::new(RefCell::new(Vec::new()));
    let options = Rc::new(options);
    let period = Duration::from_secs_f64(1.0 / options.rate);
    let posts_started = tokio::time::Instant::now();
    let mut in_flight = Vec::new();
    for n in 0..options.posts {
        tokio::time::sleep_until(posts_started + period * u32::try_from(n).unwrap_or(u32::MAX))
            .await;
        let (options, idle, outcomes) =
            (Rc::clone(&options), Rc::clone(&idle), Rc::clone(&outcomes));
        in_flight.push(tokio::task::spawn_local(async move {
            let conversation = &options.conversations[n % options.conversations.len()];
            let body = &options.bodies[n % options.bodies.len()];
            let mut connection = idle
                .borrow_mut()
                .pop()
                .filter(|(_, since)| since.elapsed() < Duration::from_secs(1))
                .and_then(|(connection, _)| connection);
            let sent = Instant::now();
            let outcome = match post(&options, &mut connection, conversation, body).await {
                Ok((201, answer, at)) => serde_json::from_slice::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned))
                    .map(|id| (id, sent, at))
                    .ok_or_else(|| "a 201 answer without an id".to_owned()),
                Ok((status, answer, _)) => Err(format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&answer[..answer.len().min(300)])
                )),
                Err(error) => Err(error),
            };
            idle.borrow_mut().push((connection, Instant::now()));
            outcomes.borrow_mut().push(outcome);
        }));
    }
    for task in in_flight {
        let _ = task.await;
    }
    let mut posted = Vec::new();
    let mut post_errors = 0_usize;
    let mut first_post_error = None;
    for outcome in outcomes.borrow_mut().drain(..) {
        match outcome {
            Ok(post) => posted.push(post),
            Err(error) => {
                post_errors += 1;
                first_post_error.get_or_insert(error);
            }
        }
    }
    // In the order they were sent.
    posted.sort_by_key(|(_, sent, _)| *sent);
    let posting_seconds = posts_started.elapsed().as_secs_f64();

    // Wait until every posted message's event reached every open stream (or --wait).
    let deadline = Instant::now() + Duration::from_secs_f64(options.wait);
    let event_of = |seen: &Seen, message: &str| -> Option<i64> {
        seen.payloads
            .iter()
            .filter(|(_, (kind, data))| kind == "message.created" && data.contains(message))
            .map(|(id, _)| *id)
            .min()
    };
    loop {
        let complete = {
            let seen = seen.borrow();
            let alive = opened - seen.dropped;
            posted.iter().all(|(message, _, _)| {
                event_of(&seen, message)
                    .and_then(|id| seen.events.get(&id))
                    .is_some_and(|(count, _, _)| *count >= alive)
            })
        };
        if complete || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let seen = seen.borrow();
    let mut per_post = Vec::new();
    let mut missing = 0_usize;
    for (message, sent, answered) in &posted {
        let event = event_of(&seen, message);
        let arrivals = event.and_then(|id| seen.events.get(&id)).copied();
        let received = arrivals.map_or(0, |(count, _, _)| count);
        if received < opened {
            missing += 1;
        }
        let signed = |t: Instant| {
            if t >= *answered {
                ms(t - *answered)
            } else {
                -ms(*answered - t)
            }
        };
        per_post.push(json!({
            "message_id": message,
            "event_id": event,
            "post_ms": ms(*answered - *sent),
            "first_ms": arrivals.map(|(_, first, _)| signed(first)),
            "last_ms": arrivals.filter(|(count, _, _)| *count >= opened).map(|(_, _, last)| signed(last)),
            "streams": received,
        }));
    }
    json!({
        "streams": options.streams,
        "opened": opened,
        "open_errors": open_errors,
        "first_open_error": first_open_error,
        "open_seconds": open_seconds,
        "dropped": seen.dropped,
        "first_drop": seen.first_drop,
        "posts": options.posts,
        "posted": posted.len(),
        "post_errors": post_errors,
        "first_post_error": first_post_error,
        "posting_seconds": posting_seconds,
        "rate": options.rate,
        "events_missing_on_some_stream": missing,
        "per_post": per_post,
    })
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pingback-stream-client: {error}");
            return ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&runtime, run(options));
    say(&result.to_string());
    ExitCode::SUCCESS
}
