//! Isolated, migrated databases for tests, and sample conversations.
//!
//! Every [`TestDatabase`] is fresh: a new PostgreSQL database in the test cluster, or
//! a new SQLite file in a temporary folder, so tests run in parallel without seeing
//! each other's rows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use crate::{DatabaseSettings, EventWiring, Storage, connect, migrate};

/// Encodes an event's `data` as its type, conversation id and (for messages) message
/// id: enough for the adapter tests to check what was appended. The API's own encoder
/// lives in the HTTP adapter.
pub struct TestEncoder;

impl pingback_application::EventEncoder for TestEncoder {
    fn data(&self, event: &pingback_domain::ConversationEvent) -> Vec<u8> {
        let message = event
            .message
            .as_ref()
            .map(|m| format!(",\"message\":\"{}\"", m.id()))
            .unwrap_or_default();
        format!(
            "{{\"type\":\"{}\",\"conversation\":\"{}\",\"message_count\":{}{message}}}",
            event.kind,
            event.conversation.conversation.id(),
            event.conversation.message_count
        )
        .into_bytes()
    }
}

/// The event wiring of adapter tests: the test encoder and signals of their own.
pub fn events() -> EventWiring {
    EventWiring {
        encoder: std::sync::Arc::new(TestEncoder),
        signals: pingback_application::EventSignals::new(Duration::from_secs(1)),
    }
}

/// The variable holding an admin URL of the test cluster (a database to connect to
/// while creating the test databases, e.g. `postgres://pingback@127.0.0.1:5432/postgres`).
pub const DATABASE_URL_VARIABLE: &str = "PINGBACK_TEST_DATABASE_URL";

pub struct TestDatabase {
    url: String,
    kind: Kind,
}

enum Kind {
    Postgres { admin_url: String, name: String },
    Sqlite { _dir: tempfile::TempDir },
}

impl TestDatabase {
    /// A new database in the test cluster, migrated. Panics when the cluster is not
    /// configured: PostgreSQL tests never skip silently.
    pub async fn postgres() -> TestDatabase {
        let admin_url = std::env::var(DATABASE_URL_VARIABLE).unwrap_or_else(|_| {
            panic!(
                "{DATABASE_URL_VARIABLE} is not set: the PostgreSQL tests need a server. \
                 Run `make test` (it starts a throw-away cluster), or start one with \
                 `eval \"$(scripts/test-postgres.sh start)\"` and run the tests again."
            )
        });
        let name = format!("pingback_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = AsyncPgConnection::establish(&admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!("cannot connect to the test cluster ({DATABASE_URL_VARIABLE}): {e}")
            });
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let database = TestDatabase {
            url: with_database(&admin_url, &name),
            kind: Kind::Postgres { admin_url, name },
        };
        database.migrate().await;
        database
    }

    /// A new SQLite file in a temporary folder, migrated.
    pub async fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("cannot create a temporary folder");
        let path = dir.path().join("pingback.sqlite");
        let path = path.to_str().expect("temporary path is not UTF-8");
        let database = TestDatabase {
            url: format!("sqlite://{path}"),
            kind: Kind::Sqlite { _dir: dir },
        };
        database.migrate().await;
        database
    }

    async fn migrate(&self) {
        let applied = migrate(&self.settings())
            .await
            .unwrap_or_else(|e| panic!("cannot migrate the test database: {e}"));
        assert!(
            !applied.is_empty(),
            "a fresh database had no migration to apply"
        );
    }

    /// The database URL (with credentials: tests only).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// A small pool with short timeouts: tests fail fast instead of hanging.
    pub fn settings(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: self.url.clone().into(),
            max_connections: 4,
            read_connections: 2,
            connect_timeout: Duration::from_secs(5),
            pool_wait_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
        }
    }

    /// Runs SQL statements on this database, for what a test must set up behind the
    /// service's back (e.g. events older than the retention).
    pub async fn execute(&self, sql: &str) {
        match &self.kind {
            Kind::Postgres { .. } => {
                let mut conn = AsyncPgConnection::establish(&self.url)
                    .await
                    .unwrap_or_else(|e| panic!("cannot connect to the test database: {e}"));
                conn.batch_execute(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            Kind::Sqlite { .. } => {
                use diesel::Connection as _;
                use diesel::connection::SimpleConnection as _;
                let path = self.url.trim_start_matches("sqlite://");
                let mut conn = diesel::sqlite::SqliteConnection::establish(path)
                    .unwrap_or_else(|e| panic!("cannot open the test database: {e}"));
                conn.batch_execute(&format!("PRAGMA busy_timeout = 5000; {sql}"))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    /// Whether this is a PostgreSQL database (else SQLite).
    pub fn is_postgres(&self) -> bool {
        matches!(self.kind, Kind::Postgres { .. })
    }

    pub fn storage(&self) -> Storage {
        connect(&self.settings(), &events()).expect("cannot build the storage of a test database")
    }
}

impl Drop for TestDatabase {
    /// Drops a PostgreSQL test database (best effort: the cluster is throw-away). Runs
    /// on its own thread and runtime: `Drop` cannot await, and may run inside a runtime.
    fn drop(&mut self) {
        let Kind::Postgres { admin_url, name } = &self.kind else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(mut admin) = AsyncPgConnection::establish(&admin_url).await else {
                    return;
                };
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
            });
        });
        let _ = dropper.join();
    }
}

/// The same server URL with another database name.
fn with_database(url: &str, name: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let (head, query) = match url.find('?') {
        Some(q) => url.split_at(q),
        None => (url, ""),
    };
    let server = match head[authority_start..].find('/') {
        Some(slash) => &head[..authority_start + slash],
        None => head,
    };
    format!("{server}/{name}{query}")
}

/// Sample conversations and their parts, for tests across the workspace.
pub mod fixtures {
    use pingback_domain::{
        AgentId, Attachment, AttachmentId, AttachmentParts, BusinessId, ByteSize, ChannelId,
        ChannelType, Conversation, ConversationId, ConversationParts, Customer, CustomerId,
        CustomerParts, Message, MessageId, MessageParts, SenderId, SenderType, Status, Text,
        Timestamp,
    };
    use uuid::Uuid;

    /// A fresh random id of any kind: `let b: BusinessId = id();`.
    pub fn id<T: From<Uuid>>() -> T {
        T::from(Uuid::new_v4())
    }

    /// An id from a fixed number, for readable expectations and ordering tests.
    pub fn id_from<T: From<Uuid>>(n: u128) -> T {
        T::from(Uuid::from_u128(n))
    }

    pub fn ts(rfc3339: &str) -> Timestamp {
        Timestamp::parse_rfc3339(rfc3339).expect("fixture timestamp")
    }

    pub fn text(value: &str) -> Text {
        Text::new(value).expect("fixture text")
    }

    /// A customer of `business` with every optional field set (unicode included).
    pub fn customer(business: BusinessId) -> Customer {
        Customer::new(CustomerParts {
            id: id::<CustomerId>(),
            business_id: business,
            name: Some(text("Zoë Ångström-Nakamura 中村")),
            email: Some(text("zoe@example.com")),
            phone: Some(text("+33 6 12 34 56 78")),
            external_id: Some(text("crm-0042")),
            created_at: ts("2024-02-29T08:30:00.123456Z"),
        })
    }

    /// A customer with only what is required.
    pub fn bare_customer(business: BusinessId) -> Customer {
        Customer::new(CustomerParts {
            id: id::<CustomerId>(),
            business_id: business,
            name: None,
            email: None,
            phone: None,
            external_id: None,
            created_at: ts("2024-02-29T08:30:00Z"),
        })
    }

    pub fn attachment(file_name: &str) -> Attachment {
        Attachment::new(AttachmentParts {
            id: id::<AttachmentId>(),
            file_name: text(file_name),
            content_type: text("application/pdf"),
            byte_size: ByteSize::new(48_213).expect("fixture size"),
            url: text(&format!("https://files.example.com/{file_name}")),
        })
    }

    /// A customer's message without sender id or attachments.
    pub fn message(created_at: Timestamp, content: &str) -> Message {
        message_with(id::<MessageId>(), created_at, content, Vec::new())
    }

    pub fn message_with(
        id: MessageId,
        created_at: Timestamp,
        content: &str,
        attachments: Vec<Attachment>,
    ) -> Message {
        Message::new(MessageParts {
            id,
            sender_type: SenderType::Customer,
            sender_id: None,
            content: text(content),
            attachments,
            created_at,
        })
    }

    /// An agent's message with its sender id.
    pub fn agent_message(created_at: Timestamp, content: &str) -> Message {
        Message::new(MessageParts {
            id: id::<MessageId>(),
            sender_type: SenderType::Agent,
            sender_id: Some(id::<SenderId>()),
            content: text(content),
            attachments: Vec::new(),
            created_at,
        })
    }

    /// A conversation of `business` with every optional field set, around `customer`
    /// and `messages`.
    pub fn conversation_with(
        business: BusinessId,
        customer: Option<Customer>,
        messages: Vec<Message>,
    ) -> Conversation {
        Conversation::new(ConversationParts {
            id: id::<ConversationId>(),
            business_id: business,
            customer,
            assignee_id: Some(id::<AgentId>()),
            status: Status::Pending,
            channel_type: ChannelType::new("whatsapp").expect("fixture channel"),
            channel_id: Some(id::<ChannelId>()),
            created_at: ts("2024-03-01T09:00:00Z"),
            updated_at: ts("2024-03-01T09:12:30.5Z"),
            first_response_at: Some(ts("2024-03-01T09:01:00.000001Z")),
            messages,
        })
        .expect("fixture conversation")
    }

    /// The rich case: a customer with every field, messages from both sides, two
    /// sharing a timestamp, attachments, unicode and emoji.
    pub fn conversation(business: BusinessId) -> Conversation {
        let same = ts("2024-03-01T09:00:30Z");
        conversation_with(
            business,
            Some(customer(business)),
            vec![
                message(
                    ts("2024-03-01T09:00:00Z"),
                    "Bonjour ! Ma commande n°42 est arrivée cassée 😢",
                ),
                message_with(
                    id::<MessageId>(),
                    same,
                    "Voici les photos 📷",
                    vec![attachment("photo-1.jpg"), attachment("photo-2.jpg")],
                ),
                message(same, "Et la facture"),
                agent_message(
                    ts("2024-03-01T09:01:00.000001Z"),
                    "Désolé ! Un remplacement part aujourd'hui. 🚚",
                ),
            ],
        )
    }

    /// Only what is required: no customer, assignee, channel id or first response;
    /// messages without sender id or attachments.
    pub fn minimal_conversation(business: BusinessId) -> Conversation {
        Conversation::new(ConversationParts {
            id: id::<ConversationId>(),
            business_id: business,
            customer: None,
            assignee_id: None,
            status: Status::Open,
            channel_type: ChannelType::new("widget").expect("fixture channel"),
            channel_id: None,
            created_at: ts("2024-03-01T09:00:00Z"),
            updated_at: ts("2024-03-01T09:00:00Z"),
            first_response_at: None,
            messages: vec![message(ts("2024-03-01T09:00:00Z"), "hi")],
        })
        .expect("fixture conversation")
    }

    /// `messages` messages a second apart, every tenth with an attachment.
    pub fn large_conversation(business: BusinessId, messages: usize) -> Conversation {
        let start = ts("2024-01-01T00:00:00Z");
        let messages = (0..messages)
            .map(|i| {
                let at = start.plus_micros(i as i64 * 1_000_000);
                let attachments = if i % 10 == 0 {
                    vec![attachment(&format!("file-{i}.pdf"))]
                } else {
                    Vec::new()
                };
                message_with(
                    id::<MessageId>(),
                    at,
                    &format!("message number {i}"),
                    attachments,
                )
            })
            .collect();
        conversation_with(business, Some(customer(business)), messages)
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name_only() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5432/postgres", "t1"),
            "postgres://u@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/postgres?sslmode=disable", "t1"),
            "postgresql://u:p@h/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "t1"), "postgres://h:1/t1");
    }
}
