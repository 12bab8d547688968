//! `pingback-handwritten`: `GET /api/v1/conversations/{conversation_id}` as a user
//! would write it by hand (issue 18's second baseline), for `make bench`.
//!
//! Its own natural schema (`benches/baseline/handwritten.sql`, PostgreSQL schema
//! `handwritten`): conversations carrying what the endpoint needs (revision included),
//! customers, and messages whose attachments are a JSONB array on the message row. Two
//! statements per request, pipelined on the worker's one connection (each prepared
//! once, when the worker starts): the conversation joined with its customer, and the
//! messages with their attachments in history order. The JSON body is written by hand
//! straight from the rows (the attachments decoded from the JSONB array and written
//! back in the API's field order), byte for byte what pingback answers. The same HS256
//! token check as `pingback-baseline`, the same `ETag` (from the stored revisions). No
//! logging, no pool, no request ids, no problem+json, no metrics; errors get bare
//! status codes. A benchmark reference, not a product.
//!
//! The two statements run outside a transaction, as hand-written code usually does:
//! each sees its own snapshot (pingback reads both parts in one).
//!
//! Configuration (environment), as `pingback-baseline`:
//! - `DATABASE_URL` — `postgres://user@host:port/db` (required)
//! - `JWT_SECRET` — the HS256 secret, at least 32 bytes (required)
//! - `BIND` — listen address (default `127.0.0.1:8082`)
//! - `WORKERS` — actix workers, each with its own connection (default: one per core)
//!
//! `pingback-handwritten --print-sql` prints the two statements, one per line.

use std::borrow::Cow;
use std::net::TcpListener;
use std::process::ExitCode;
use std::rc::Rc;

use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::BytesMut;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls, Row, Statement};
use xxhash_rust::xxh3::xxh3_128;

/// The conversation of the token's business, with its customer.
const CONVERSATION_SQL: &str = "SELECT c.id, c.business_id, c.customer_id, c.assignee_id, c.status, c.channel_type, c.channel_id, c.created_at, c.updated_at, c.first_response_at, c.revision, cu.business_id, cu.name, cu.email, cu.phone, cu.external_id, cu.created_at, cu.revision FROM handwritten.conversations c LEFT JOIN handwritten.customers cu ON cu.id = c.customer_id WHERE c.id = $1 AND c.business_id = $2";
/// Its messages in history order, each with its attachments (a JSONB array). Sent
/// with the first one; used only when the first finds the conversation.
const MESSAGES_SQL: &str = "SELECT id, sender_type, sender_id, content, attachments, created_at FROM handwritten.messages WHERE conversation_id = $1 ORDER BY created_at, id";

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// A `uuid` column or parameter, read and written as its 16 raw bytes.
#[derive(Clone, Copy, Debug)]
struct Uid(uuid::Uuid);

impl<'a> FromSql<'a> for Uid {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Self(uuid::Uuid::from_slice(raw)?))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::UUID
    }
}

impl ToSql for Uid {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::UUID
    }

    to_sql_checked!();
}

/// PostgreSQL counts timestamps in microseconds from 2000-01-01T00:00:00Z.
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// A `timestamptz` as unix microseconds.
#[derive(Clone, Copy)]
struct Micros(i64);

impl<'a> FromSql<'a> for Micros {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let bytes: [u8; 8] = raw.try_into()?;
        i64::from_be_bytes(bytes)
            .checked_add(PG_EPOCH_UNIX_MICROS)
            .map(Self)
            .ok_or_else(|| "timestamptz out of range".into())
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }
}

/// A `jsonb` column's text (its binary format: a version byte, then the text).
struct Jsonb<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Jsonb<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        match raw.split_first() {
            Some((1, text)) => Ok(Self(text)),
            _ => Err("unsupported jsonb version".into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }
}

/// One element of a message's `attachments` array.
#[derive(Deserialize)]
struct Attachment<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    file_name: Cow<'a, str>,
    #[serde(borrow)]
    content_type: Cow<'a, str>,
    byte_size: i64,
    #[serde(borrow)]
    url: Cow<'a, str>,
}

// --- the body, written by hand ---------------------------------------------------

/// `s` as a JSON string, escaped as serde_json escapes (so the bytes match pingback's).
fn string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..0x20 => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            let hex = [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ];
            out.extend_from_slice(&hex);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn id(out: &mut Vec<u8>, id: Uid) {
    let mut buffer = uuid::Uuid::encode_buffer();
    out.push(b'"');
    out.extend_from_slice(id.0.hyphenated().encode_lower(&mut buffer).as_bytes());
    out.push(b'"');
}

fn opt_id(out: &mut Vec<u8>, value: Option<Uid>) {
    match value {
        Some(value) => id(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

fn digits(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut buffer = [b'0'; 20];
    let mut at = buffer.len();
    let mut rest = value;
    while rest > 0 || buffer.len() - at < width {
        at -= 1;
        buffer[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&buffer[at..]);
}

fn integer(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    digits(out, value.unsigned_abs(), 1);
}

/// RFC 3339 in UTC, the fraction only when non-zero and without trailing zeros.
fn time(out: &mut Vec<u8>, at: Micros) {
    const DAY: i64 = 86_400_000_000;
    let days = at.0.div_euclid(DAY);
    let of_day = at.0.rem_euclid(DAY);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let seconds = of_day / 1_000_000;
    let mut fraction = of_day % 1_000_000;

    out.push(b'"');
    digits(out, year.unsigned_abs(), 4);
    out.push(b'-');
    digits(out, month.unsigned_abs(), 2);
    out.push(b'-');
    digits(out, day.unsigned_abs(), 2);
    out.push(b'T');
    digits(out, (seconds / 3600).unsigned_abs(), 2);
    out.push(b':');
    digits(out, (seconds / 60 % 60).unsigned_abs(), 2);
    out.push(b':');
    digits(out, (seconds % 60).unsigned_abs(), 2);
    if fraction != 0 {
        let mut width = 6;
        while fraction % 10 == 0 {
            fraction /= 10;
            width -= 1;
        }
        out.push(b'.');
        digits(out, fraction.unsigned_abs(), width);
    }
    out.extend_from_slice(b"Z\"");
}

fn opt_time(out: &mut Vec<u8>, at: Option<Micros>) {
    match at {
        Some(at) => time(out, at),
        None => out.extend_from_slice(b"null"),
    }
}

/// The 200 body from the two statements' rows.
fn body(out: &mut Vec<u8>, c: &Row, messages: &[Row]) -> Result<(), BoxError> {
    let conversation: Uid = c.try_get(0)?;
    let customer_id: Option<Uid> = c.try_get(2)?;
    out.extend_from_slice(b"{\"id\":");
    id(out, conversation);
    out.extend_from_slice(b",\"business_id\":");
    id(out, c.try_get(1)?);
    out.extend_from_slice(b",\"customer_id\":");
    opt_id(out, customer_id);
    out.extend_from_slice(b",\"assignee_id\":");
    opt_id(out, c.try_get(3)?);
    out.extend_from_slice(b",\"status\":");
    string(out, c.try_get(4)?);
    out.extend_from_slice(b",\"channel_type\":");
    string(out, c.try_get(5)?);
    out.extend_from_slice(b",\"channel_id\":");
    opt_id(out, c.try_get(6)?);
    out.extend_from_slice(b",\"created_at\":");
    time(out, c.try_get(7)?);
    out.extend_from_slice(b",\"updated_at\":");
    time(out, c.try_get(8)?);
    out.extend_from_slice(b",\"first_response_at\":");
    opt_time(out, c.try_get(9)?);
    out.extend_from_slice(b",\"customer\":");
    match customer_id {
        Some(customer) => {
            out.extend_from_slice(b"{\"id\":");
            id(out, customer);
            out.extend_from_slice(b",\"business_id\":");
            id(out, c.try_get(11)?);
            out.extend_from_slice(b",\"name\":");
            opt_string(out, c.try_get(12)?);
            out.extend_from_slice(b",\"email\":");
            opt_string(out, c.try_get(13)?);
            out.extend_from_slice(b",\"phone\":");
            opt_string(out, c.try_get(14)?);
            out.extend_from_slice(b",\"external_id\":");
            opt_string(out, c.try_get(15)?);
            out.extend_from_slice(b",\"created_at\":");
            time(out, c.try_get(16)?);
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }

    let mut conversation_id = Vec::with_capacity(40);
    id(&mut conversation_id, conversation);
    out.extend_from_slice(b",\"messages\":[");
    for (n, m) in messages.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"id\":");
        id(out, m.try_get(0)?);
        out.extend_from_slice(b",\"conversation_id\":");
        out.extend_from_slice(&conversation_id);
        out.extend_from_slice(b",\"sender_type\":");
        string(out, m.try_get(1)?);
        out.extend_from_slice(b",\"sender_id\":");
        opt_id(out, m.try_get(2)?);
        out.extend_from_slice(b",\"content\":");
        string(out, m.try_get(3)?);
        out.extend_from_slice(b",\"attachments\":[");
        let attachments: Jsonb<'_> = m.try_get(4)?;
        if attachments.0 != b"[]" {
            let attachments: Vec<Attachment<'_>> = serde_json::from_slice(attachments.0)?;
            for (k, a) in attachments.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"id\":");
                string(out, &a.id);
                out.extend_from_slice(b",\"file_name\":");
                string(out, &a.file_name);
                out.extend_from_slice(b",\"content_type\":");
                string(out, &a.content_type);
                out.extend_from_slice(b",\"byte_size\":");
                integer(out, a.byte_size);
                out.extend_from_slice(b",\"url\":");
                string(out, &a.url);
                out.push(b'}');
            }
        }
        out.extend_from_slice(b"],\"created_at\":");
        time(out, m.try_get(5)?);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Ok(())
}

// --- the server ------------------------------------------------------------------

/// The token check, shared by every worker (as `pingback-baseline`'s).
struct Auth {
    key: DecodingKey,
    validation: Validation,
}

#[derive(Deserialize)]
struct Claims {
    business_id: String,
}

impl Auth {
    fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        validation.validate_nbf = true;
        validation.required_spec_claims = ["exp", "sub"].map(String::from).into();
        Self {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// The business a request's bearer token grants, if the token is valid.
    fn business(&self, req: &HttpRequest) -> Option<uuid::Uuid> {
        let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let data =
            jsonwebtoken::decode::<Claims>(token.trim(), &self.key, &self.validation).ok()?;
        uuid::Uuid::parse_str(&data.claims.business_id).ok()
    }
}

/// One connection per worker, its statements prepared once.
struct Db {
    client: Client,
    conversation: Statement,
    messages: Statement,
}

async fn connect(url: Rc<str>) -> Result<Db, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await?;
    actix_web::rt::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("pingback-handwritten: database connection lost: {error}");
        }
    });
    let conversation = client
        .prepare_typed(CONVERSATION_SQL, &[Type::UUID, Type::UUID])
        .await?;
    let messages = client.prepare_typed(MESSAGES_SQL, &[Type::UUID]).await?;
    Ok(Db {
        client,
        conversation,
        messages,
    })
}

async fn get_conversation(
    req: HttpRequest,
    auth: web::Data<Auth>,
    db: web::Data<Db>,
) -> HttpResponse {
    let Some(business) = auth.business(&req) else {
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, r#"Bearer realm="pingback""#))
            .finish();
    };
    let Some(id) = req
        .match_info()
        .get("conversation_id")
        .and_then(|raw| uuid::Uuid::parse_str(raw).ok())
    else {
        return HttpResponse::NotFound().finish();
    };
    let (business, id) = (Uid(business), Uid(id));

    // Both statements sent at once (tokio-postgres pipelines futures polled together).
    let read = futures_util::future::try_join(
        db.client.query_opt(&db.conversation, &[&id, &business]),
        db.client.query(&db.messages, &[&id]),
    )
    .await;
    let (conversation, messages) = match read {
        Ok(rows) => rows,
        Err(error) => {
            eprintln!("pingback-handwritten: query failed: {error}");
            return HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, "1"))
                .finish();
        }
    };
    let Some(conversation) = conversation else {
        return HttpResponse::NotFound().finish();
    };

    let mut out = Vec::with_capacity(1024 + messages.len() * 512);
    if let Err(error) = body(&mut out, &conversation, &messages) {
        eprintln!("pingback-handwritten: writing the body failed: {error}");
        return HttpResponse::InternalServerError().finish();
    }
    // Tagged as pingback tags: by what was read, not by hashing the body.
    let revisions = (
        conversation.try_get::<_, i64>(10),
        conversation.try_get::<_, Option<i64>>(17),
    );
    let (Ok(revision), Ok(customer_revision)) = revisions else {
        return HttpResponse::InternalServerError().finish();
    };
    let mut key = Vec::with_capacity(64);
    key.extend_from_slice(business.0.as_bytes());
    key.extend_from_slice(id.0.as_bytes());
    key.extend_from_slice(&revision.to_le_bytes());
    key.extend_from_slice(&customer_revision.unwrap_or(0).to_le_bytes());
    let etag = format!("\"{:032x}\"", xxh3_128(&key));
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "private, no-cache"))
        .insert_header((header::VARY, "Authorization"));
    if not_modified {
        return response.finish();
    }
    response.content_type("application/json").body(out)
}

fn required(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is required"))
}

fn run() -> Result<(), String> {
    if std::env::args().nth(1).as_deref() == Some("--print-sql") {
        #[allow(clippy::print_stdout)] // the command's output
        {
            println!("{CONVERSATION_SQL}");
            println!("{MESSAGES_SQL}");
        }
        return Ok(());
    }
    let url = required("DATABASE_URL")?;
    let secret = required("JWT_SECRET")?;
    if secret.len() < 32 {
        return Err("JWT_SECRET must be at least 32 bytes".into());
    }
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8082".into());
    let workers = match std::env::var("WORKERS") {
        Ok(n) => n
            .parse()
            .map_err(|_| format!("WORKERS: not a number: {n}"))?,
        Err(_) => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let auth = web::Data::new(Auth::new(secret.as_bytes()));

    actix_web::rt::System::new().block_on(async move {
        let listener = TcpListener::bind(&bind).map_err(|e| format!("cannot bind {bind}: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let server = HttpServer::new(move || {
            let url: Rc<str> = url.as_str().into();
            App::new()
                .app_data(auth.clone())
                .data_factory(move || connect(Rc::clone(&url)))
                .route(
                    "/api/v1/conversations/{conversation_id}",
                    web::get().to(get_conversation),
                )
        })
        .workers(workers)
        .listen(listener)
        .map_err(|e| e.to_string())?
        .run();
        #[allow(clippy::print_stdout)] // the line scripts wait for, as `pingback serve`
        {
            println!("listening on http://{address}");
        }
        server.await.map_err(|e| e.to_string())
    })
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("pingback-handwritten: {message}");
            ExitCode::from(1)
        }
    }
}
