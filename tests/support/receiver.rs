//! A webhook receiver for black-box tests: a small HTTP/1.1 server on 127.0.0.1 (a
//! thread per connection, keep-alive, `Content-Length` or chunked bodies) that records
//! every request it reads — method, target, headers, raw body, arrival order, what it
//! answered — and the most requests it ever held at once. Its behaviour can be switched
//! while it runs (answer a status, answer slowly, hold a request past the client's
//! timeout without answering), and it can be stopped (connections are then refused) and
//! restarted on the same port.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// What the receiver does with each request it reads (taken when the request arrives).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answer this status at once.
    Status(u16),
    /// Wait, then answer this status — unless the sender hung up meanwhile (gave up
    /// waiting): then the request is left `Unanswered`.
    Slow(u16, Duration),
    /// Hold the request this long without answering, then close the connection (to
    /// outlast the sender's timeout).
    Hang(Duration),
    /// Answer this status (a 3xx) with this `Location`.
    Redirect(u16, &'static str),
}

/// What became of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still being handled.
    Pending,
    /// Answered `status`; `at` is on the receiver's clock (see `Request::arrived`),
    /// taken just before the answer was written.
    Answered { status: u16, at: u64 },
    /// Never answered (held, or the receiver was stopped meanwhile).
    Unanswered,
}

/// One request as the receiver read it.
#[derive(Clone)]
pub struct Request {
    /// Position on the receiver's clock, a counter shared by arrivals and answers: a
    /// request that arrived after another was answered has a greater `arrived` than
    /// that answer's `at`.
    pub arrived: u64,
    pub received_at: SystemTime,
    pub method: String,
    pub target: String,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub outcome: Outcome,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("arrived", &self.arrived)
            .field("method", &self.method)
            .field("target", &self.target)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The target without its query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8(self.body.clone())
            .unwrap_or_else(|e| panic!("a body that is not UTF-8: {e}"))
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "a body that is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Whether the receiver answered it with a 2xx.
    pub fn acknowledged(&self) -> bool {
        matches!(self.outcome, Outcome::Answered { status, .. } if (200..300).contains(&status))
    }

    /// When it was acknowledged, on the receiver's clock.
    pub fn acknowledged_at(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Answered { status, at } if (200..300).contains(&status) => Some(at),
            _ => None,
        }
    }
}

struct State {
    behaviour: Mutex<Behaviour>,
    requests: Mutex<Vec<Request>>,
    clock: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl State {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }
}

/// One listening period, between a start and a stop.
struct Running {
    stopped: Arc<AtomicBool>,
    accepter: JoinHandle<()>,
    connections: Arc<Mutex<Vec<(u64, TcpStream)>>>,
}

pub struct Receiver {
    port: u16,
    state: Arc<State>,
    running: Mutex<Option<Running>>,
}

impl Receiver {
    /// Listens on a free port of 127.0.0.1, answering 200.
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            behaviour: Mutex::new(Behaviour::Status(200)),
            requests: Mutex::new(Vec::new()),
            clock: AtomicU64::new(1),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let receiver = Receiver {
            port,
            state,
            running: Mutex::new(None),
        };
        receiver.listen(listener);
        receiver
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `http://localhost:<port><path>` (a name that resolves to loopback)
    pub fn localhost_url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.port)
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.state.behaviour.lock().unwrap() = behaviour;
    }

    /// Stops listening and cuts every open connection: connecting is then refused.
    pub fn stop(&self) {
        let Some(running) = self.running.lock().unwrap().take() else {
            return;
        };
        running.stopped.store(true, Ordering::SeqCst);
        running.accepter.join().unwrap();
        for (_, connection) in running.connections.lock().unwrap().drain(..) {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same port.
    pub fn restart(&self) {
        assert!(
            self.running.lock().unwrap().is_none(),
            "the receiver is running"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(listener) => break listener,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot listen on port {} again: {e}", self.port),
            }
        };
        self.listen(listener);
    }

    /// Every request read so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        let mut all = self.state.requests.lock().unwrap().clone();
        all.sort_by_key(|r| r.arrived);
        all
    }

    pub fn count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    pub fn acknowledged(&self) -> usize {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.acknowledged())
            .count()
    }

    /// The most requests held at once (read and not yet answered) since the start.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Waits until `done` holds for the requests so far, or `timeout` passes.
    pub fn wait_for(&self, timeout: Duration, mut done: impl FnMut(&[Request]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.requests()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A one-line summary for failure messages.
    pub fn summary(&self) -> String {
        let requests = self.requests();
        let last: Vec<String> = requests
            .iter()
            .rev()
            .take(5)
            .map(|r| {
                format!(
                    "{} {} webhook-id={:?} {:?}",
                    r.method,
                    r.target,
                    r.header("webhook-id"),
                    r.outcome
                )
            })
            .collect();
        format!(
            "the receiver read {} requests ({} acknowledged, at most {} at once); the last ones: {last:?}",
            requests.len(),
            requests.iter().filter(|r| r.acknowledged()).count(),
            self.max_in_flight()
        )
    }

    fn listen(&self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let stopped = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<(u64, TcpStream)>>> = Arc::new(Mutex::new(Vec::new()));
        let accepter = {
            let (stopped, connections, state) =
                (stopped.clone(), connections.clone(), self.state.clone());
            std::thread::spawn(move || {
                let mut next_connection = 0u64;
                while !stopped.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(false).unwrap();
                            let _ = stream.set_nodelay(true);
                            next_connection += 1;
                            let number = next_connection;
                            if let Ok(clone) = stream.try_clone() {
                                connections.lock().unwrap().push((number, clone));
                            }
                            let (stopped, connections, state) =
                                (stopped.clone(), connections.clone(), state.clone());
                            std::thread::spawn(move || {
                                serve_connection(stream, &state, &stopped);
                                connections.lock().unwrap().retain(|(n, _)| *n != number);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
                // Dropping the listener closes the port.
            })
        };
        *self.running.lock().unwrap() = Some(Running {
            stopped,
            accepter,
            connections,
        });
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve_connection(stream: TcpStream, state: &State, stopped: &AtomicBool) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let Some((method, target, headers, body)) = read_request(&mut reader, &mut writer) else {
            return;
        };
        let behaviour = *state.behaviour.lock().unwrap();
        let index = {
            let mut requests = state.requests.lock().unwrap();
            let in_flight = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            state.max_in_flight.fetch_max(in_flight, Ordering::SeqCst);
            requests.push(Request {
                arrived: state.tick(),
                received_at: SystemTime::now(),
                method,
                target,
                headers: headers.clone(),
                body,
                outcome: Outcome::Pending,
            });
            requests.len() - 1
        };
        let close_asked = headers
            .iter()
            .any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close"));
        let (status, delay, location) = match behaviour {
            Behaviour::Status(status) => (Some(status), Duration::ZERO, None),
            Behaviour::Slow(status, delay) => (Some(status), delay, None),
            Behaviour::Hang(delay) => (None, delay, None),
            Behaviour::Redirect(status, location) => (Some(status), Duration::ZERO, Some(location)),
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        // Not answered when stopped meanwhile, or when the sender hung up while it
        // waited (it gave up: a timeout).
        let status = status
            .filter(|_| !stopped.load(Ordering::SeqCst))
            .filter(|_| delay.is_zero() || !peer_closed(&writer));
        // Counted out and stamped before the answer is written: the sender may send
        // its next request as soon as it has the answer.
        {
            let mut requests = state.requests.lock().unwrap();
            requests[index].outcome = match status {
                Some(status) => Outcome::Answered {
                    status,
                    at: state.tick(),
                },
                None => Outcome::Unanswered,
            };
            state.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        let Some(status) = status else {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        };
        let body: &[u8] = if (200..300).contains(&status) {
            b""
        } else {
            b"receiver says no"
        };
        let mut answer = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        if status != 204 {
            answer.push_str(&format!(
                "content-type: text/plain\r\ncontent-length: {}\r\n",
                body.len()
            ));
        }
        if let Some(location) = location {
            answer.push_str(&format!("location: {location}\r\n"));
        }
        if close_asked {
            answer.push_str("connection: close\r\n");
        }
        answer.push_str("\r\n");
        let mut bytes = answer.into_bytes();
        if status != 204 {
            bytes.extend_from_slice(body);
        }
        if writer
            .write_all(&bytes)
            .and_then(|()| writer.flush())
            .is_err()
            || close_asked
        {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Whether the other side has closed the connection (without blocking).
fn peer_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut byte = [0u8; 1];
    let closed = match stream.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    closed || stream.set_nonblocking(false).is_err()
}

type Head = (String, String, Vec<(String, String)>, Vec<u8>);

/// One request off the connection; `None` at the end of the connection or on nonsense.
fn read_request(reader: &mut BufReader<TcpStream>, writer: &mut TcpStream) -> Option<Head> {
    let mut line = String::new();
    // Tolerate empty lines before a request (RFC 9112 §2.2).
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if get("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").ok()?;
    }
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = size.trim().split(';').next()?.trim();
            let size = usize::from_str_radix(size, 16).ok()?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut trailer = String::new();
                    if reader.read_line(&mut trailer).ok()? == 0 || trailer.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).ok()?;
            let mut crlf = [0; 2];
            reader.read_exact(&mut crlf).ok()?;
        }
    } else if let Some(length) = get("content-length") {
        let length: usize = length.parse().ok()?;
        body.resize(length, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some((method, target, headers, body))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}
