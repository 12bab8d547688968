//! `pingback-baseline`: the benchmark's lower bound for this stack (`make bench`).
//!
//! `GET /api/v1/conversations/{conversation_id}` written by hand, with no
//! architecture: the same HS256 token check (jsonwebtoken), the same two SQL
//! statements pipelined on one tokio-postgres connection per actix worker (prepared
//! once, when the worker starts), and the same JSON body serialized straight from the
//! rows with serde_json, with the same `ETag`. No domain types, no ports, no pool, no
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
//! `pingback-baseline --print-sql` prints the two statements, one per line (the
//! benchmark's pgbench script is built from them).

use std::fmt;
use std::net::TcpListener;
use std::process::ExitCode;
use std::rc::Rc;

use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::BytesMut;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde::ser::{Error as _, Serialize, SerializeMap, SerializeSeq, Serializer};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls, Row, Statement};
use xxhash_rust::xxh3::xxh3_128;

// The two statements of pingback's PostgreSQL adapter, exactly as Diesel renders
// `conversation_query!` and `history_query!` (crates/persistence/src/rows.rs) and as
// pg_stat_statements records them, so all three systems run the same SQL.

/// The conversation and its customer (one row, or none when the conversation is not
/// in this business).
const CONVERSATION_SQL: &str = r#"SELECT "conversations"."business_id", "conversations"."id", "conversations"."customer_id", "conversations"."assignee_id", "conversations"."status", "conversations"."channel_type", "conversations"."channel_id", "conversations"."created_at", "conversations"."updated_at", "conversations"."first_response_at", "customers"."business_id", "customers"."id", "customers"."name", "customers"."email", "customers"."phone", "customers"."external_id", "customers"."created_at" FROM ("conversations" LEFT OUTER JOIN "customers" ON (("customers"."business_id" = "conversations"."business_id") AND ("customers"."id" = "conversations"."customer_id"))) WHERE (("conversations"."business_id" = $1) AND ("conversations"."id" = $2))"#;

/// The history, one row per (message, attachment), in history order.
const HISTORY_SQL: &str = r#"SELECT "messages"."id", "messages"."sender_type", "messages"."sender_id", "messages"."content", "messages"."created_at", "attachments"."id", "attachments"."file_name", "attachments"."content_type", "attachments"."byte_size", "attachments"."url" FROM ("messages" LEFT OUTER JOIN "attachments" ON ((("attachments"."business_id" = "messages"."business_id") AND ("attachments"."conversation_id" = "messages"."conversation_id")) AND ("attachments"."message_id" = "messages"."id"))) WHERE (("messages"."business_id" = $1) AND ("messages"."conversation_id" = $2)) ORDER BY "messages"."created_at", "messages"."id", "attachments"."position""#;

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// A `uuid` column or parameter, read and written as its 16 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
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

/// The 200 body, from the conversation row and the history rows.
struct Body<'a> {
    conversation: &'a Row,
    history: &'a [Row],
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let c = self.conversation;
        let id: Uid = col(c, 1)?;
        let customer_id: Option<Uid> = col(c, 2)?;
        let mut map = serializer.serialize_map(Some(13))?;
        map.serialize_entry("id", &id)?;
        map.serialize_entry("business_id", &col::<Uid, _>(c, 0)?)?;
        map.serialize_entry("customer_id", &customer_id)?;
        map.serialize_entry("assignee_id", &col::<Option<Uid>, _>(c, 3)?)?;
        map.serialize_entry("status", &col::<&str, _>(c, 4)?)?;
        map.serialize_entry("channel_type", &col::<&str, _>(c, 5)?)?;
        map.serialize_entry("channel_id", &col::<Option<Uid>, _>(c, 6)?)?;
        map.serialize_entry("created_at", &col::<Micros, _>(c, 7)?)?;
        map.serialize_entry("updated_at", &col::<Micros, _>(c, 8)?)?;
        map.serialize_entry("first_response_at", &col::<Option<Micros>, _>(c, 9)?)?;
        match customer_id {
            Some(_) => map.serialize_entry("customer", &CustomerBody(c))?,
            None => map.serialize_entry("customer", &())?,
        }
        let mut buffer = uuid::Uuid::encode_buffer();
        let conversation: &str = id.0.hyphenated().encode_lower(&mut buffer);
        map.serialize_entry(
            "messages",
            &Messages {
                conversation,
                rows: self.history,
            },
        )?;
        map.end()
    }
}

struct CustomerBody<'a>(&'a Row);

impl Serialize for CustomerBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut map = serializer.serialize_map(Some(7))?;
        map.serialize_entry("id", &col::<Uid, _>(c, 11)?)?;
        map.serialize_entry("business_id", &col::<Uid, _>(c, 10)?)?;
        map.serialize_entry("name", &col::<Option<&str>, _>(c, 12)?)?;
        map.serialize_entry("email", &col::<Option<&str>, _>(c, 13)?)?;
        map.serialize_entry("phone", &col::<Option<&str>, _>(c, 14)?)?;
        map.serialize_entry("external_id", &col::<Option<&str>, _>(c, 15)?)?;
        map.serialize_entry("created_at", &col::<Micros, _>(c, 16)?)?;
        map.end()
    }
}

struct Messages<'a> {
    conversation: &'a str,
    rows: &'a [Row],
}

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        let mut rest = self.rows;
        while let Some(first) = rest.first() {
            // Consecutive rows of one message carry its attachments.
            let id: Uid = col(first, 0)?;
            let mut end = 1;
            while let Some(next) = rest.get(end) {
                if col::<Uid, S::Error>(next, 0)? != id {
                    break;
                }
                end += 1;
            }
            let (rows, tail) = rest.split_at(end);
            seq.serialize_element(&MessageBody {
                id,
                conversation: self.conversation,
                rows,
            })?;
            rest = tail;
        }
        seq.end()
    }
}

struct MessageBody<'a> {
    id: Uid,
    conversation: &'a str,
    rows: &'a [Row],
}

impl Serialize for MessageBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let m = self
            .rows
            .first()
            .ok_or_else(|| S::Error::custom("a message without rows"))?;
        let mut map = serializer.serialize_map(Some(7))?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("conversation_id", self.conversation)?;
        map.serialize_entry("sender_type", &col::<&str, _>(m, 1)?)?;
        map.serialize_entry("sender_id", &col::<Option<Uid>, _>(m, 2)?)?;
        map.serialize_entry("content", &col::<&str, _>(m, 3)?)?;
        map.serialize_entry("attachments", &Attachments(self.rows))?;
        map.serialize_entry("created_at", &col::<Micros, _>(m, 4)?)?;
        map.end()
    }
}

struct Attachments<'a>(&'a [Row]);

impl Serialize for Attachments<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for row in self.0 {
            // A message without attachments has one row with NULL attachment columns.
            if let Some(id) = col::<Option<Uid>, S::Error>(row, 5)? {
                seq.serialize_element(&AttachmentBody { id, row })?;
            }
        }
        seq.end()
    }
}

struct AttachmentBody<'a> {
    id: Uid,
    row: &'a Row,
}

impl Serialize for AttachmentBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let a = self.row;
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("file_name", &col::<&str, _>(a, 6)?)?;
        map.serialize_entry("content_type", &col::<&str, _>(a, 7)?)?;
        map.serialize_entry("byte_size", &col::<i64, _>(a, 8)?)?;
        map.serialize_entry("url", &col::<&str, _>(a, 9)?)?;
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
    conversation: Statement,
    history: Statement,
}

async fn connect(url: Rc<str>) -> Result<Db, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await?;
    actix_web::rt::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("pingback-baseline: database connection lost: {error}");
        }
    });
    let conversation = client
        .prepare_typed(CONVERSATION_SQL, &[Type::UUID, Type::UUID])
        .await?;
    let history = client
        .prepare_typed(HISTORY_SQL, &[Type::UUID, Type::UUID])
        .await?;
    Ok(Db {
        client,
        conversation,
        history,
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
    let params: [&(dyn ToSql + Sync); 2] = [&business, &id];

    // Both statements are sent before either answer is awaited: one round trip.
    let (conversation, history) = match futures_util::future::try_join(
        db.client.query(&db.conversation, &params),
        db.client.query(&db.history, &params),
    )
    .await
    {
        Ok(rows) => rows,
        Err(error) => {
            eprintln!("pingback-baseline: query failed: {error}");
            return HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, "1"))
                .finish();
        }
    };
    let Some(conversation) = conversation.first() else {
        return HttpResponse::NotFound().finish();
    };

    let mut body = Vec::with_capacity(1024 + history.len() * 400);
    let written = serde_json::to_writer(
        &mut body,
        &Body {
            conversation,
            history: &history,
        },
    );
    if let Err(error) = written {
        eprintln!("pingback-baseline: serializing failed: {error}");
        return HttpResponse::InternalServerError().finish();
    }
    let etag = format!("\"{:032x}\"", xxh3_128(&body));
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
            println!("{CONVERSATION_SQL}");
            println!("{HISTORY_SQL}");
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
