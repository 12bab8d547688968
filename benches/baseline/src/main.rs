//! `pingback-baseline`: the benchmark's lower bound for this stack (`make bench`).
//!
//! `GET /api/v1/conversations/{conversation_id}` written by hand, with no
//! architecture: the same HS256 token check (jsonwebtoken), the same SQL statement on
//! one tokio-postgres connection per actix worker (prepared once, when the worker
//! starts; concurrent requests pipelined on it), and the same JSON body serialized
//! straight from the rows with serde_json, with the same `ETag`. No domain types, no ports, no pool, no
//! request ids, no problem+json, no metrics: whatever Pingback spends beyond this is
//! the price of its design.
//!
//! This is a benchmark reference, not a product: errors get bare status codes.
//!
//! Configuration (environment):
//! - `DATABASE_URL` — `postgres://user@host:port/db` (required)
//! - `JWT_SECRET` — the HS256 secret, at least 32 bytes (required)
//! - `BIND` — listen address (default `127.0.0.1:8081`)
//! - `WORKERS` — actix workers, each with its own connection (default: one per core)
//!
//! `pingback-baseline --print-sql` prints the statement on one line (the benchmark's
//! pgbench script is built from it).

use std::fmt;
use std::net::TcpListener;
use std::process::ExitCode;
use std::rc::Rc;

use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::BytesMut;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls, Row, Statement};
use xxhash_rust::xxh3::xxh3_128;

// The statement of pingback's PostgreSQL adapter, exactly as it renders
// `ConversationRead` (crates/persistence/src/snapshot_read.rs) and as
// pg_stat_statements records it, so all three systems run the same SQL: the
// conversation and its customer (part 0), its messages in history order (part 1) and
// its attachments (part 2) in one row shape: five typed slots a message fills, then
// four arrays (uuid, text, timestamptz, bigint) holding the conversation's fields and
// an attachment's last ones.
const READ_SQL: &str = "(SELECT 0, NULL::uuid, NULL::text, NULL::uuid, NULL::text, NULL::timestamptz, ARRAY[c.business_id, c.id, c.customer_id, c.assignee_id, c.channel_id, cu.id], ARRAY[c.status, c.channel_type, cu.name, cu.email, cu.phone, cu.external_id], ARRAY[c.created_at, c.updated_at, c.first_response_at, cu.created_at], ARRAY[c.revision, cu.revision] FROM conversations c LEFT JOIN customers cu ON cu.business_id = c.business_id AND cu.id = c.customer_id WHERE c.business_id = $1 AND c.id = $2) UNION ALL (SELECT 1, m.id, m.sender_type, m.sender_id, m.content, m.created_at, NULL, NULL, NULL, NULL FROM messages m WHERE m.business_id = $3 AND m.conversation_id = $4 ORDER BY m.created_at, m.id) UNION ALL (SELECT 2, a.message_id, a.file_name, a.id, a.content_type, NULL, NULL, ARRAY[a.url], NULL, ARRAY[a.position::bigint, a.byte_size] FROM attachments a WHERE a.business_id = $5 AND a.conversation_id = $6)";

// Column indexes in READ_SQL's rows.
const PART: usize = 0;
// Messages: id, sender_type, sender_id, content, created_at.
const MESSAGE: usize = 1;
// Attachments: message_id, file_name, id, content_type in the slots.
const ATTACHMENT: usize = 1;
const UUIDS: usize = 6;
const TEXTS: usize = 7;
const INSTANTS: usize = 8;
const NUMBERS: usize = 9;

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// A `uuid` column or parameter, read and written as its 16 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
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

impl Serialize for Uid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buffer = uuid::Uuid::encode_buffer();
        serializer.serialize_str(self.0.hyphenated().encode_lower(&mut buffer))
    }
}

/// PostgreSQL counts timestamps in microseconds from 2000-01-01T00:00:00Z.
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// A `timestamptz` as unix microseconds.
#[derive(Clone, Copy, Debug)]
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

/// RFC 3339 in UTC, the fraction only when non-zero and without trailing zeros.
impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = chrono::DateTime::from_timestamp(self.0.div_euclid(1_000_000), 0)
            .ok_or(fmt::Error)?
            .naive_utc();
        write!(f, "{}", at.format("%Y-%m-%dT%H:%M:%S"))?;
        let mut micros = self.0.rem_euclid(1_000_000);
        if micros != 0 {
            let mut width = 6;
            while micros % 10 == 0 {
                micros /= 10;
                width -= 1;
            }
            write!(f, ".{micros:0width$}")?;
        }
        f.write_str("Z")
    }
}

impl Serialize for Micros {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Column `index` of `row`, a serialization error when it does not convert.
fn col<'a, T: FromSql<'a>, E: serde::ser::Error>(row: &'a Row, index: usize) -> Result<T, E> {
    row.try_get(index).map_err(E::custom)
}

/// The conversation row's arrays, borrowed from the row: uuids `[business_id, id,
/// customer_id, assignee_id, channel_id, customer id]`, texts `[status, channel_type,
/// name, email, phone, external_id]`, instants `[created_at, updated_at,
/// first_response_at, customer created_at]`, numbers `[revision, customer revision]`.
struct Header<'a> {
    uuids: Vec<Option<Uid>>,
    texts: Vec<Option<&'a str>>,
    instants: Vec<Option<Micros>>,
    numbers: Vec<Option<i64>>,
}

impl<'a> Header<'a> {
    fn of(row: &'a Row) -> Option<Self> {
        let header = Self {
            uuids: row.try_get(UUIDS).ok()?,
            texts: row.try_get(TEXTS).ok()?,
            instants: row.try_get(INSTANTS).ok()?,
            numbers: row.try_get(NUMBERS).ok()?,
        };
        let lengths = (
            header.uuids.len(),
            header.texts.len(),
            header.instants.len(),
            header.numbers.len(),
        );
        (lengths == (6, 6, 4, 2)).then_some(header)
    }
}

/// A NULL where the column is required is a serialization error.
fn some<T: Copy, E: serde::ser::Error>(value: Option<T>) -> Result<T, E> {
    value.ok_or_else(|| E::custom("unexpected NULL"))
}

/// The 200 body, from the statement's rows: the conversation row, the message rows in
/// history order, the attachment rows sorted by (message, position).
struct Body<'a> {
    header: &'a Header<'a>,
    messages: &'a [&'a Row],
    attachments: &'a [(Uid, i64, &'a Row)],
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let h = self.header;
        let id: Uid = some(h.uuids[1])?;
        let customer_id = h.uuids[2];
        let mut map = serializer.serialize_map(Some(13))?;
        map.serialize_entry("id", &id)?;
        map.serialize_entry("business_id", &some::<Uid, _>(h.uuids[0])?)?;
        map.serialize_entry("customer_id", &customer_id)?;
        map.serialize_entry("assignee_id", &h.uuids[3])?;
        map.serialize_entry("status", some::<&str, _>(h.texts[0])?)?;
        map.serialize_entry("channel_type", some::<&str, _>(h.texts[1])?)?;
        map.serialize_entry("channel_id", &h.uuids[4])?;
        map.serialize_entry("created_at", &some::<Micros, _>(h.instants[0])?)?;
        map.serialize_entry("updated_at", &some::<Micros, _>(h.instants[1])?)?;
        map.serialize_entry("first_response_at", &h.instants[2])?;
        match h.uuids[5] {
            Some(_) => map.serialize_entry("customer", &CustomerBody(h))?,
            None => map.serialize_entry("customer", &())?,
        }
        let mut buffer = uuid::Uuid::encode_buffer();
        let conversation: &str = id.0.hyphenated().encode_lower(&mut buffer);
        map.serialize_entry(
            "messages",
            &Messages {
                conversation,
                messages: self.messages,
                attachments: self.attachments,
            },
        )?;
        map.end()
    }
}

struct CustomerBody<'a>(&'a Header<'a>);

impl Serialize for CustomerBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let h = self.0;
        let mut map = serializer.serialize_map(Some(7))?;
        map.serialize_entry("id", &some::<Uid, _>(h.uuids[5])?)?;
        map.serialize_entry("business_id", &some::<Uid, _>(h.uuids[0])?)?;
        map.serialize_entry("name", &h.texts[2])?;
        map.serialize_entry("email", &h.texts[3])?;
        map.serialize_entry("phone", &h.texts[4])?;
        map.serialize_entry("external_id", &h.texts[5])?;
        map.serialize_entry("created_at", &some::<Micros, _>(h.instants[3])?)?;
        map.end()
    }
}

struct Messages<'a> {
    conversation: &'a str,
    messages: &'a [&'a Row],
    attachments: &'a [(Uid, i64, &'a Row)],
}

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.messages.len()))?;
        for m in self.messages {
            let id: Uid = col(m, MESSAGE)?;
            let start = self.attachments.partition_point(|(owner, ..)| *owner < id);
            let count = self.attachments[start..]
                .iter()
                .take_while(|(owner, ..)| *owner == id)
                .count();
            seq.serialize_element(&MessageBody {
                id,
                conversation: self.conversation,
                row: m,
                attachments: &self.attachments[start..start + count],
            })?;
        }
        seq.end()
    }
}

struct MessageBody<'a> {
    id: Uid,
    conversation: &'a str,
    row: &'a Row,
    attachments: &'a [(Uid, i64, &'a Row)],
}

impl Serialize for MessageBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let m = self.row;
        let mut map = serializer.serialize_map(Some(7))?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("conversation_id", self.conversation)?;
        map.serialize_entry("sender_type", &col::<&str, _>(m, MESSAGE + 1)?)?;
        map.serialize_entry("sender_id", &col::<Option<Uid>, _>(m, MESSAGE + 2)?)?;
        map.serialize_entry("content", &col::<&str, _>(m, MESSAGE + 3)?)?;
        map.serialize_entry("attachments", &Attachments(self.attachments))?;
        map.serialize_entry("created_at", &col::<Micros, _>(m, MESSAGE + 4)?)?;
        map.end()
    }
}

struct Attachments<'a>(&'a [(Uid, i64, &'a Row)]);

impl Serialize for Attachments<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for (_, _, row) in self.0 {
            seq.serialize_element(&AttachmentBody(row))?;
        }
        seq.end()
    }
}

struct AttachmentBody<'a>(&'a Row);

impl Serialize for AttachmentBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let a = self.0;
        let url: Vec<Option<&str>> = col(a, TEXTS)?;
        let numbers: Vec<Option<i64>> = col(a, NUMBERS)?;
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("id", &col::<Uid, _>(a, ATTACHMENT + 2)?)?;
        map.serialize_entry("file_name", &col::<&str, _>(a, ATTACHMENT + 1)?)?;
        map.serialize_entry("content_type", &col::<&str, _>(a, ATTACHMENT + 3)?)?;
        map.serialize_entry(
            "byte_size",
            &some::<i64, _>(numbers.get(1).copied().flatten())?,
        )?;
        map.serialize_entry("url", some::<&str, _>(url.first().copied().flatten())?)?;
        map.end()
    }
}

/// The token check, shared by every worker.
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
    read: Statement,
}

async fn connect(url: Rc<str>) -> Result<Db, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await?;
    actix_web::rt::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("pingback-baseline: database connection lost: {error}");
        }
    });
    // As pingback does: key lookups need no per-execution re-planning.
    client
        .batch_execute("SET plan_cache_mode = force_generic_plan")
        .await?;
    let read = client.prepare_typed(READ_SQL, &[Type::UUID; 6]).await?;
    Ok(Db { client, read })
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
    let params: [&(dyn ToSql + Sync); 6] = [&business, &id, &business, &id, &business, &id];

    let rows = match db.client.query(&db.read, &params).await {
        Ok(rows) => rows,
        Err(error) => {
            eprintln!("pingback-baseline: query failed: {error}");
            return HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, "1"))
                .finish();
        }
    };
    let mut conversation = None;
    let mut messages = Vec::with_capacity(rows.len());
    let mut attachments = Vec::new();
    for row in &rows {
        match row.try_get::<_, i32>(PART) {
            Ok(0) => conversation = Some(row),
            Ok(1) => messages.push(row),
            Ok(2) => match (
                row.try_get(ATTACHMENT),
                row.try_get::<_, Vec<Option<i64>>>(NUMBERS),
            ) {
                (Ok(owner), Ok(numbers)) => match numbers.first() {
                    Some(Some(position)) => attachments.push((owner, *position, row)),
                    _ => return HttpResponse::InternalServerError().finish(),
                },
                _ => return HttpResponse::InternalServerError().finish(),
            },
            _ => return HttpResponse::InternalServerError().finish(),
        }
    }
    let Some(conversation) = conversation else {
        return HttpResponse::NotFound().finish();
    };
    let Some(header) = Header::of(conversation) else {
        return HttpResponse::InternalServerError().finish();
    };
    attachments.sort_unstable_by_key(|&(owner, position, _)| (owner, position));

    let mut body = Vec::with_capacity(1024 + rows.len() * 400);
    let written = serde_json::to_writer(
        &mut body,
        &Body {
            header: &header,
            messages: &messages,
            attachments: &attachments,
        },
    );
    if let Err(error) = written {
        eprintln!("pingback-baseline: serializing failed: {error}");
        return HttpResponse::InternalServerError().finish();
    }
    // Tagged as pingback tags: by what was read, not by hashing the body.
    let (Some(revision), customer_revision) = (header.numbers[0], header.numbers[1]) else {
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
    response.content_type("application/json").body(body)
}

fn required(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is required"))
}

fn run() -> Result<(), String> {
    if std::env::args().nth(1).as_deref() == Some("--print-sql") {
        #[allow(clippy::print_stdout)] // the command's output
        {
            println!("{READ_SQL}");
        }
        return Ok(());
    }
    let url = required("DATABASE_URL")?;
    let secret = required("JWT_SECRET")?;
    if secret.len() < 32 {
        return Err("JWT_SECRET must be at least 32 bytes".into());
    }
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8081".into());
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
            eprintln!("pingback-baseline: {message}");
            ExitCode::from(1)
        }
    }
}
