//! The adapter against a real socket: a hand-written HTTP/1.1 receiver on 127.0.0.1
//! (no server crate needed), and the refusals that must happen before any connection.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pingback_application::{DeliveryFailure, DeliveryRequest, DestinationGuard, WebhookTransport};
use pingback_domain::WebhookUrl;
use pingback_webhook_client::{ClientSettings, WebhookClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the receiver answers.
#[derive(Clone)]
enum Answer {
    /// Status, extra header lines, body.
    With(u16, Vec<String>, Vec<u8>),
    /// 200 with a `content-length` body of this many bytes, written in pieces.
    Large(usize),
    /// 200 with a chunked body that never ends.
    Endless,
    /// Reads the request and never answers.
    Silent,
}

#[derive(Debug)]
struct Received {
    request_line: String,
    /// Lower-cased names.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Receiver {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (counted, recorded) = (Arc::clone(&connections), Arc::clone(&requests));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, answer.clone(), Arc::clone(&recorded)));
            }
        });
        Self {
            addr,
            connections,
            requests,
        }
    }

    fn url(&self, path: &str) -> WebhookUrl {
        WebhookUrl::parse(&format!("http://{}{path}", self.addr), true).unwrap()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> std::sync::MutexGuard<'_, Vec<Received>> {
        self.requests.lock().unwrap()
    }
}

async fn serve(mut stream: TcpStream, answer: Answer, requests: Arc<Mutex<Vec<Received>>>) {
    loop {
        let Some(received) = read_request(&mut stream).await else {
            return;
        };
        requests.lock().unwrap().push(received);
        // Write errors are expected: the client stops reading large bodies.
        match &answer {
            Answer::With(status, headers, body) => {
                let mut head = format!("HTTP/1.1 {status} Whatever\r\n");
                for header in headers {
                    head.push_str(header);
                    head.push_str("\r\n");
                }
                head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
                if stream.write_all(head.as_bytes()).await.is_err()
                    || stream.write_all(body).await.is_err()
                {
                    return;
                }
            }
            Answer::Large(len) => {
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n");
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let piece = vec![b'x'; 64 * 1024];
                let mut left = *len;
                while left > 0 {
                    let n = left.min(piece.len());
                    if stream.write_all(&piece[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
            }
            Answer::Endless => {
                let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let mut chunk = format!("{:x}\r\n", 16 * 1024).into_bytes();
                chunk.extend(std::iter::repeat_n(b'y', 16 * 1024));
                chunk.extend_from_slice(b"\r\n");
                while stream.write_all(&chunk).await.is_ok() {}
                return;
            }
            Answer::Silent => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
        }
    }
}

/// One request (head and `content-length` body); `None` at end of stream.
async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut piece = [0; 4096];
        let n = stream.read(&mut piece).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&piece[..n]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap().to_owned();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let mut piece = [0; 4096];
        let n = stream.read(&mut piece).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&piece[..n]);
    }
    Some(Received {
        request_line,
        headers,
        body,
    })
}

fn client(allow_http: bool, allow_private_networks: bool, timeout: Duration) -> WebhookClient {
    WebhookClient::new(ClientSettings {
        allow_http,
        allow_private_networks,
        timeout,
    })
    .unwrap()
}

/// http and private networks allowed: for the local receiver.
fn local_client() -> WebhookClient {
    client(true, true, Duration::from_secs(10))
}

const BODY: &[u8] = br#"{"id":42,"type":"message.created"}"#;

async fn post(client: &WebhookClient, url: &WebhookUrl) -> Result<(), DeliveryFailure> {
    client
        .post(DeliveryRequest {
            url,
            webhook_id: "b2c3d4e5-f6a7-8901-bcde-f12345678901.42",
            timestamp: 1_700_000_000,
            signature: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
            body: BODY,
        })
        .await
}

#[tokio::test]
async fn a_2xx_answer_is_a_success_and_the_request_arrives_as_sent() {
    let receiver = Receiver::start(Answer::With(200, vec![], b"thanks".to_vec())).await;

    post(&local_client(), &receiver.url("/hooks/in?x=1"))
        .await
        .unwrap();

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.request_line, "POST /hooks/in?x=1 HTTP/1.1");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("webhook-id"),
        Some("b2c3d4e5-f6a7-8901-bcde-f12345678901.42")
    );
    assert_eq!(request.header("webhook-timestamp"), Some("1700000000"));
    assert_eq!(
        request.header("webhook-signature"),
        Some("v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=")
    );
    assert_eq!(
        request.header("user-agent"),
        Some(concat!("pingback-webhooks/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(request.header("content-length"), Some("34"));
    assert_eq!(request.body, BODY);
}

#[tokio::test]
async fn any_2xx_is_a_success() {
    let receiver = Receiver::start(Answer::With(204, vec![], vec![])).await;
    post(&local_client(), &receiver.url("/")).await.unwrap();
}

#[tokio::test]
async fn deliveries_reuse_the_connection() {
    let receiver = Receiver::start(Answer::With(200, vec![], b"ok".to_vec())).await;
    let client = local_client();
    for _ in 0..3 {
        post(&client, &receiver.url("/")).await.unwrap();
    }
    assert_eq!(receiver.requests().len(), 3);
    assert_eq!(receiver.connections(), 1);
}

#[tokio::test]
async fn a_5xx_answer_is_a_status_failure() {
    let receiver = Receiver::start(Answer::With(500, vec![], b"oops".to_vec())).await;
    let failure = post(&local_client(), &receiver.url("/")).await.unwrap_err();
    assert_eq!(failure, DeliveryFailure::Status(500));
}

#[tokio::test]
async fn a_4xx_answer_is_a_status_failure() {
    let receiver = Receiver::start(Answer::With(404, vec![], vec![])).await;
    let failure = post(&local_client(), &receiver.url("/")).await.unwrap_err();
    assert_eq!(failure, DeliveryFailure::Status(404));
}

#[tokio::test]
async fn a_redirect_is_a_failure_and_is_not_followed() {
    let receiver = Receiver::start(Answer::With(
        302,
        vec!["location: /elsewhere".to_owned()],
        vec![],
    ))
    .await;

    let failure = post(&local_client(), &receiver.url("/hook"))
        .await
        .unwrap_err();

    assert_eq!(failure, DeliveryFailure::Status(302));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].request_line, "POST /hook HTTP/1.1");
}

#[tokio::test]
async fn a_307_is_not_followed_either() {
    let receiver = Receiver::start(Answer::With(
        307,
        vec!["location: /elsewhere".to_owned()],
        vec![],
    ))
    .await;
    let failure = post(&local_client(), &receiver.url("/hook"))
        .await
        .unwrap_err();
    assert_eq!(failure, DeliveryFailure::Status(307));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn no_answer_within_the_timeout_is_a_timeout() {
    let receiver = Receiver::start(Answer::Silent).await;
    let client = client(true, true, Duration::from_secs(1));

    let started = Instant::now();
    let failure = post(&client, &receiver.url("/")).await.unwrap_err();

    assert_eq!(failure, DeliveryFailure::Timeout(1));
    assert_eq!(failure.to_string(), "no answer within 1 s");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn nothing_listening_is_a_connection_failure() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = WebhookUrl::parse(&format!("http://127.0.0.1:{port}/"), true).unwrap();

    let failure = post(&local_client(), &url).await.unwrap_err();

    let DeliveryFailure::Connection(message) = failure else {
        panic!("expected a connection failure, got {failure:?}");
    };
    assert!(message.contains("connection refused"), "{message}");
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
}

#[tokio::test]
async fn a_failed_tls_handshake_is_a_connection_failure() {
    // https to a server that answers the ClientHello in plain text, as an http-only
    // server does.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut hello = [0; 512];
            let _ = stream.read(&mut hello).await;
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let url = WebhookUrl::parse(&format!("https://{addr}/"), true).unwrap();

    let failure = post(&client(false, true, Duration::from_secs(5)), &url)
        .await
        .unwrap_err();

    let DeliveryFailure::Connection(message) = failure else {
        panic!("expected a connection failure, got {failure:?}");
    };
    assert!(
        message.starts_with(&format!("could not connect to {addr}: ")),
        "{message}"
    );
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_a_connection_failure_at_delivery() {
    let url = WebhookUrl::parse("http://does-not-exist.invalid/", true).unwrap();
    let failure = post(&local_client(), &url).await.unwrap_err();
    let DeliveryFailure::Connection(message) = failure else {
        panic!("expected a connection failure, got {failure:?}");
    };
    assert!(
        message.contains("does-not-exist.invalid does not resolve"),
        "{message}"
    );
}

#[tokio::test]
async fn a_large_answer_body_is_not_read_to_its_end() {
    let receiver = Receiver::start(Answer::Large(10 * 1024 * 1024)).await;
    let started = Instant::now();
    post(&local_client(), &receiver.url("/")).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_endless_answer_body_is_not_read_to_its_end() {
    // Buffering the body would never finish (a timeout); draining 64 KiB does.
    let receiver = Receiver::start(Answer::Endless).await;
    let client = client(true, true, Duration::from_secs(5));
    let started = Instant::now();
    post(&client, &receiver.url("/")).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// Private networks not allowed (the production setting), http allowed to reach the
/// local receiver: every way of naming it is refused before connecting.
#[tokio::test]
async fn private_destinations_are_refused_before_connecting() {
    let receiver = Receiver::start(Answer::With(200, vec![], vec![])).await;
    let port = receiver.addr.port();
    let client = client(true, false, Duration::from_secs(5));

    for (url, address) in [
        (format!("http://127.0.0.1:{port}/"), "127.0.0.1"),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            "::ffff:127.0.0.1",
        ),
        (format!("http://localhost:{port}/"), "localhost resolves to"),
        (format!("http://2130706433:{port}/"), "127.0.0.1"), // 127.0.0.1 as a number
        (format!("http://0x7f.1:{port}/"), "127.0.0.1"),
    ] {
        let url = WebhookUrl::parse(&url, true).unwrap();
        let failure = post(&client, &url).await.unwrap_err();
        let DeliveryFailure::Refused(message) = &failure else {
            panic!("{url}: expected a refusal, got {failure:?}");
        };
        assert!(message.contains(address), "{url}: {message}");
        assert!(message.contains("not a public address"), "{url}: {message}");
    }

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.connections(), 0);
}

#[tokio::test]
async fn http_is_refused_at_delivery_unless_allowed() {
    let receiver = Receiver::start(Answer::With(200, vec![], vec![])).await;
    let client = client(false, true, Duration::from_secs(5));

    let failure = post(&client, &receiver.url("/")).await.unwrap_err();

    let DeliveryFailure::Refused(message) = failure else {
        panic!("expected a refusal, got {failure:?}");
    };
    assert!(message.contains("does not use https"), "{message}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.connections(), 0);
}

fn guard(allow_http: bool, allow_private_networks: bool) -> WebhookClient {
    client(allow_http, allow_private_networks, Duration::from_secs(5))
}

async fn check(guard: &WebhookClient, url: &str) -> Result<(), String> {
    let url = WebhookUrl::parse(url, true).unwrap();
    guard.check(&url).await.map_err(|refused| refused.0)
}

#[tokio::test]
async fn the_guard_refuses_every_forbidden_class_given_literally() {
    let guard = guard(false, false);
    for host in [
        "0.0.0.0",
        "[::]",
        "127.0.0.1",
        "127.1.2.3",
        "[::1]",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "[fe80::1]",
        "100.64.0.1",
        "0.1.2.3",
        "192.0.0.8",
        "192.0.2.1",
        "198.18.0.1",
        "198.51.100.1",
        "203.0.113.1",
        "240.0.0.1",
        "255.255.255.255",
        "224.0.0.1",
        "[ff02::1]",
        "[fd00::1]",
        "[fec0::1]",
        "[2001:db8::1]",
        "[100::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:169.254.169.254]",
        "[::127.0.0.1]",
        "[64:ff9b::10.0.0.1]",
        "[2002:c0a8:101::1]",
    ] {
        let message = check(&guard, &format!("https://{host}/hook"))
            .await
            .expect_err(host);
        assert!(
            message.contains("not a public address"),
            "{host}: {message}"
        );
    }
}

#[tokio::test]
async fn the_guard_accepts_public_literals() {
    let guard = guard(false, false);
    for host in ["1.1.1.1", "[2606:4700:4700::1111]", "[::ffff:1.1.1.1]"] {
        check(&guard, &format!("https://{host}/")).await.unwrap();
    }
}

#[tokio::test]
async fn the_guard_refuses_a_name_resolving_to_loopback() {
    let message = check(&guard(false, false), "https://localhost/")
        .await
        .unwrap_err();
    assert!(message.starts_with("localhost resolves to "), "{message}");
    assert!(
        message.ends_with(", which is not a public address"),
        "{message}"
    );
}

#[tokio::test]
async fn the_guard_refuses_http_unless_allowed() {
    let message = check(&guard(false, false), "http://1.1.1.1/")
        .await
        .unwrap_err();
    assert!(message.contains("does not use https"), "{message}");
    check(&guard(true, false), "http://1.1.1.1/").await.unwrap();
}

#[tokio::test]
async fn the_guard_refuses_a_name_that_does_not_resolve() {
    for guard in [guard(false, false), guard(true, true)] {
        let message = check(&guard, "https://does-not-exist.invalid/")
            .await
            .unwrap_err();
        assert_eq!(message, "does-not-exist.invalid does not resolve");
    }
}

#[tokio::test]
async fn the_guard_allows_private_destinations_when_the_operator_does() {
    let guard = guard(true, true);
    check(&guard, "http://localhost:8080/").await.unwrap();
    check(&guard, "http://127.0.0.1/").await.unwrap();
    check(&guard, "https://[fd00::1]/").await.unwrap();
}
