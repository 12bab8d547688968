//! Isolated, migrated databases for tests, and sample conversations.
//!
//! Every [`TestDatabase`] is fresh: a new PostgreSQL database in the test cluster, or
//! a new SQLite file in a temporary folder, so tests run in parallel without seeing
//! each other's rows.
//!
//! On a Citus cluster (the `citus` extension in the admin database, `scripts/citus.sh`)
//! the database is made on every node: created on the coordinator and on each worker
//! (found in the coordinator's `pg_dist_node`), `citus` created in each, the workers
//! registered in the new coordinator database; migrating then distributes the tables.
//! Dropping removes it from every node. (Citus 12.1 does not propagate `CREATE
//! DATABASE`: it says so in a notice, and has no `citus.enable_create_database_propagation`
//! setting yet; hence the explicit steps, which also work on any later version.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::{Bool, Integer, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

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
    EventWiring::new(
        std::sync::Arc::new(TestEncoder),
        pingback_application::EventSignals::new(Duration::from_secs(1)),
    )
}

/// The variable holding an admin URL of the test cluster (a database to connect to
/// while creating the test databases, e.g. `postgres://pingback@127.0.0.1:5432/postgres`).
pub const DATABASE_URL_VARIABLE: &str = "PINGBACK_TEST_DATABASE_URL";

pub struct TestDatabase {
    url: String,
    kind: Kind,
}

enum Kind {
    Postgres {
        admin_url: String,
        name: String,
        /// The workers' admin URLs, on Citus.
        workers: Vec<String>,
    },
    Sqlite {
        _dir: tempfile::TempDir,
    },
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
        let nodes = citus_nodes(&mut admin, &admin_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let url = with_database(&admin_url, &name);
        let workers = match &nodes {
            Some(nodes) => {
                // Registering nodes and distributing tables replicate the role to the
                // workers (ALTER ROLE, a cluster-wide row): two test databases doing
                // it at once fail with "tuple concurrently updated". They take turns,
                // on a lock of the shared admin database, held until migrated.
                admin
                    .batch_execute(CITUS_SETUP_LOCK)
                    .await
                    .unwrap_or_else(|e| panic!("cannot take the Citus setup lock: {e}"));
                nodes.prepare(&url, &name).await;
                nodes.workers.iter().map(|w| w.admin_url.clone()).collect()
            }
            None => Vec::new(),
        };
        let database = TestDatabase {
            url,
            kind: Kind::Postgres {
                admin_url,
                name,
                workers,
            },
        };
        database.migrate().await;
        // Closing the admin connection releases the Citus setup lock.
        drop(admin);
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

    /// Whether the database is on a Citus cluster (made on every node).
    pub fn is_citus(&self) -> bool {
        matches!(&self.kind, Kind::Postgres { workers, .. } if !workers.is_empty())
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

    /// Whether a PostgreSQL store of this database, once it has a connection, takes it
    /// for a Citus cluster (and so issues the statements Citus routes).
    pub async fn store_sees_citus(&self) -> bool {
        let store = crate::postgres::PostgresStore::new(&self.url, &self.settings(), &events())
            .unwrap_or_else(|e| panic!("cannot build a PostgreSQL store: {e}"));
        drop(
            store
                .pool()
                .get()
                .await
                .unwrap_or_else(|e| panic!("cannot connect the store: {e}")),
        );
        store.on_citus()
    }
}

impl Drop for TestDatabase {
    /// Drops a PostgreSQL test database (best effort: the cluster is throw-away). Runs
    /// on its own thread and runtime: `Drop` cannot await, and may run inside a runtime.
    fn drop(&mut self) {
        let Kind::Postgres {
            admin_url,
            name,
            workers,
        } = &self.kind
        else {
            return;
        };
        let (admin_url, name, workers) = (admin_url.clone(), name.clone(), workers.clone());
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                // The coordinator first: nothing routes to the workers' copies after.
                for url in std::iter::once(&admin_url).chain(&workers) {
                    let Ok(mut admin) = AsyncPgConnection::establish(url).await else {
                        continue;
                    };
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
            });
        });
        let _ = dropper.join();
    }
}

/// Held (session-level, in the admin database) while a test database is made a
/// Citus database and migrated.
const CITUS_SETUP_LOCK: &str = "SELECT pg_advisory_lock(7402471198346123288)";

#[derive(QueryableByName)]
struct Installed {
    #[diesel(sql_type = Bool)]
    citus: bool,
}

#[derive(QueryableByName)]
struct Node {
    #[diesel(sql_type = Text)]
    nodename: String,
    #[diesel(sql_type = Integer)]
    nodeport: i32,
    #[diesel(sql_type = Integer)]
    groupid: i32,
}

/// A Citus cluster's nodes, as the coordinator's metadata has them.
struct CitusNodes {
    coordinator: (String, i32),
    workers: Vec<Worker>,
}

struct Worker {
    host: String,
    port: i32,
    /// The admin URL with the worker's host and port.
    admin_url: String,
}

/// The cluster's nodes when the admin database has Citus, else `None`.
async fn citus_nodes(admin: &mut AsyncPgConnection, admin_url: &str) -> Option<CitusNodes> {
    let installed: Vec<Installed> = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS citus",
    )
    .load(admin)
    .await
    .unwrap_or_else(|e| panic!("cannot query the test cluster: {e}"));
    if !installed.iter().any(|i| i.citus) {
        return None;
    }
    let nodes: Vec<Node> = diesel::sql_query(
        "SELECT nodename::text AS nodename, nodeport, groupid FROM pg_dist_node \
         WHERE noderole = 'primary' AND isactive ORDER BY groupid",
    )
    .load(admin)
    .await
    .unwrap_or_else(|e| panic!("cannot read the Citus nodes (pg_dist_node): {e}"));
    let coordinator = nodes
        .iter()
        .find(|n| n.groupid == 0)
        .map(|n| (n.nodename.clone(), n.nodeport))
        .unwrap_or_else(|| {
            panic!(
                "the Citus coordinator is not registered in {DATABASE_URL_VARIABLE}'s database: \
                 run SELECT citus_set_coordinator_host('<host>', <port>) there"
            )
        });
    let workers: Vec<Worker> = nodes
        .iter()
        .filter(|n| n.groupid != 0)
        .map(|n| Worker {
            host: n.nodename.clone(),
            port: n.nodeport,
            admin_url: with_server(admin_url, &n.nodename, n.nodeport),
        })
        .collect();
    assert!(
        !workers.is_empty(),
        "the Citus cluster of {DATABASE_URL_VARIABLE} has no worker (citus_add_node)"
    );
    Some(CitusNodes {
        coordinator,
        workers,
    })
}

impl CitusNodes {
    /// Makes the new coordinator database `url` (`name`) a Citus database: the same
    /// database on every worker, the extension everywhere, the workers registered.
    async fn prepare(&self, url: &str, name: &str) {
        for worker in &self.workers {
            let mut admin = AsyncPgConnection::establish(&worker.admin_url)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot connect to Citus worker {}:{}: {e}",
                        worker.host, worker.port
                    )
                });
            admin
                .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .await
                .unwrap_or_else(|e| panic!("cannot create {name} on a Citus worker: {e}"));
            let mut conn = AsyncPgConnection::establish(&with_database(&worker.admin_url, name))
                .await
                .unwrap_or_else(|e| panic!("cannot connect to {name} on a Citus worker: {e}"));
            conn.batch_execute("CREATE EXTENSION citus")
                .await
                .unwrap_or_else(|e| panic!("cannot create citus in {name} on a worker: {e}"));
        }
        let mut conn = AsyncPgConnection::establish(url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to test database {name}: {e}"));
        conn.batch_execute("CREATE EXTENSION citus")
            .await
            .unwrap_or_else(|e| panic!("cannot create citus in {name}: {e}"));
        let (host, port) = &self.coordinator;
        diesel::sql_query("SELECT citus_set_coordinator_host($1, $2)")
            .bind::<Text, _>(host)
            .bind::<Integer, _>(port)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("citus_set_coordinator_host in {name}: {e}"));
        for worker in &self.workers {
            diesel::sql_query("SELECT citus_add_node($1, $2)")
                .bind::<Text, _>(&worker.host)
                .bind::<Integer, _>(worker.port)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("citus_add_node in {name}: {e}"));
        }
    }
}

/// The same URL with another host and port.
fn with_server(url: &str, host: &str, port: i32) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority_start..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let userinfo = authority.rfind('@').map_or("", |at| &authority[..=at]);
    format!(
        "{}{userinfo}{host}:{port}{}",
        &url[..authority_start],
        &rest[authority_end..]
    )
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

/// The inbox page statement as PostgreSQL runs it, for plan tests: the same
/// `inbox_read::statement` the adapter loads (the page with its attachments and the
/// last event id), rendered or explained with its binds.
pub mod inbox_plan {
    use diesel::QueryResult;
    use diesel::pg::Pg;
    use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
    use diesel_async::{AsyncPgConnection, RunQueryDsl};
    use pingback_domain::{BusinessId, InboxQuery};

    use crate::inbox_read::statement;
    use crate::schema::DbUuid;

    /// The statement's SQL and binds, as `diesel::debug_query` prints them.
    pub fn inbox_sql(business: BusinessId, query: &InboxQuery) -> String {
        let business = DbUuid(business.into_uuid());
        diesel::debug_query::<Pg, _>(&statement(business, query)).to_string()
    }

    /// `EXPLAIN (FORMAT JSON)` of the statement, sent with its binds exactly as the
    /// adapter sends them (so the planner sees the values, as for a custom plan).
    pub async fn explain_inbox(
        conn: &mut AsyncPgConnection,
        business: BusinessId,
        query: &InboxQuery,
    ) -> QueryResult<String> {
        let business = DbUuid(business.into_uuid());
        Explain(statement(business, query))
            .get_result::<String>(conn)
            .await
    }

    /// `EXPLAIN (FORMAT JSON)` in front of a statement, binds kept.
    struct Explain<Q>(Q);

    impl<Q> QueryId for Explain<Q> {
        type QueryId = ();
        const HAS_STATIC_QUERY_ID: bool = false;
    }

    impl<Q> Query for Explain<Q> {
        type SqlType = diesel::sql_types::Text;
    }

    impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Explain<Q> {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.unsafe_to_cache_prepared();
            out.push_sql("EXPLAIN (FORMAT JSON) ");
            self.0.walk_ast(out.reborrow())
        }
    }
}

/// Sample conversations and their parts, for tests across the workspace.
pub mod fixtures;

#[cfg(test)]
mod tests {
    use super::{with_database, with_server};

    #[test]
    fn replaces_the_host_and_port_only() {
        assert_eq!(
            with_server(
                "postgres://u:p@127.0.0.1:5432/postgres?x=1",
                "10.0.0.2",
                6000
            ),
            "postgres://u:p@10.0.0.2:6000/postgres?x=1"
        );
        assert_eq!(
            with_server("postgresql://h/db", "w1", 5433),
            "postgresql://w1:5433/db"
        );
    }

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

/// Proving on a Citus cluster that the service's statements are routed to one shard.
pub mod citus {
    use diesel::pg::Pg;
    use diesel::sql_types::Text;
    use diesel::{ExpressionMethods, QueryDsl, QueryableByName};
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
    use uuid::Uuid;

    use diesel::SelectableHelper;

    use crate::rows::revision_query;
    use crate::schema::{
        DbUuid, Micros, attachments, conversations, customers, messages, webhook_endpoints,
    };
    use crate::snapshot_read::ConversationRead;

    /// The SQL text of a Diesel statement, with its `$n` parameters (binds left out).
    fn sql_of<Q>(query: &Q) -> String
    where
        Q: diesel::query_builder::QueryFragment<Pg>,
    {
        let rendered = diesel::debug_query::<Pg, _>(query).to_string();
        match rendered.rfind(" -- binds: ") {
            Some(end) => rendered[..end].to_owned(),
            None => rendered,
        }
    }

    /// Every statement the service issues on its hot paths, by name, as SQL with `$n`
    /// parameters: each must be a single-shard (router) query on Citus once its
    /// business is bound (`tests/citus.rs` runs `EXPLAIN` for each). Add a statement
    /// here when you add one to a request path; [`explain`] binds its parameters by
    /// type (see there), so a pair is all it takes.
    pub fn hot_path_statements() -> Vec<(&'static str, String)> {
        let nil = DbUuid(Uuid::nil());
        let mut statements = vec![
            (
                "conversation read (snapshot_read, UNION ALL)",
                sql_of(&ConversationRead {
                    business: nil,
                    id: nil,
                }),
            ),
            (
                "revision check (revision_query!)",
                sql_of(&revision_query!(nil, nil)),
            ),
            (
                "webhook endpoint (endpoint_query!)",
                sql_of(&crate::webhooks::endpoint_query!(nil, nil)),
            ),
            (
                "webhook endpoints (endpoints_query!)",
                sql_of(&crate::webhooks::endpoints_query!(nil)),
            ),
            (
                "webhook lease (lease_query!)",
                sql_of(
                    &crate::webhooks::lease_query!(nil, nil, nil, Micros(0), Micros(0)).returning(
                        (
                            crate::webhooks::EndpointRow::as_returning(),
                            webhook_endpoints::secret_seed,
                        ),
                    ),
                ),
            ),
            (
                "webhook delivery state (save_query!)",
                sql_of(
                    &crate::webhooks::save_query!(
                        nil,
                        nil,
                        nil,
                        &pingback_domain::DeliveryState::default(),
                        false,
                        Some(Micros(0))
                    )
                    .returning(crate::webhooks::EndpointRow::as_returning()),
                ),
            ),
        ];
        statements.extend(write_statements());
        statements.extend(list_and_feed_statements());
        statements
    }

    /// What the writes issue (create, post, patch), in their transaction's order: the
    /// idempotency claim and record, the row lock and head, customers, the inserts, the
    /// head update and the event append.
    fn write_statements() -> Vec<(&'static str, String)> {
        let nil = DbUuid(Uuid::nil());
        let business = pingback_domain::BusinessId::from_uuid(Uuid::nil());
        let conversation = super::fixtures::conversation(business);
        let rows = crate::rows::BatchRows::of(std::slice::from_ref(&conversation))
            .unwrap_or_else(|e| panic!("fixture rows: {e}"));
        let message = &conversation.messages()[0];
        let (message_row, attachment_rows) = crate::rows::message_rows(nil, nil, message)
            .unwrap_or_else(|e| panic!("fixture message rows: {e}"));
        let customer = super::fixtures::customer(business);
        let head = pingback_domain::ConversationHead {
            id: conversation.id(),
            business_id: business,
            customer_id: None,
            customer: None,
            assignee_id: None,
            status: conversation.status(),
            channel_type: conversation.channel_type().clone(),
            channel_id: None,
            created_at: conversation.created_at(),
            updated_at: conversation.updated_at(),
            first_response_at: None,
            last_message_at: None,
            message_count: 1,
            last_message_id: None,
            revision: pingback_domain::Revision::new(1, None),
        };
        let response = pingback_application::StoredResponse {
            status: 201,
            location: None,
            etag: None,
            body: Vec::new(),
        };
        let event = pingback_domain::ConversationEvent {
            kind: pingback_domain::EventType::ConversationCreated,
            occurred_at: conversation.updated_at(),
            conversation: pingback_domain::ConversationSummary {
                conversation: conversation.clone(),
                message_count: 1,
                last_message: None,
            },
            message: None,
            previous: None,
        };
        struct Data;
        impl pingback_application::EventEncoder for Data {
            fn data(&self, _event: &pingback_domain::ConversationEvent) -> Vec<u8> {
                b"{}".to_vec()
            }
        }
        let encoded = crate::events::encode(&Data, std::slice::from_ref(&event));
        let event_rows = crate::events::rows(nil, 1, &encoded);
        vec![
            (
                "idempotency claim (CLAIM_POSTGRES)",
                crate::write::CLAIM_POSTGRES.to_owned(),
            ),
            (
                "idempotency replay (stored_key_query!)",
                sql_of(&crate::write::stored_key_query!(nil, "k")),
            ),
            (
                "idempotency record (record_query!)",
                sql_of(&crate::write::record_query!(nil, "k", &response)),
            ),
            (
                "row lock (lock_head)",
                sql_of(
                    &conversations::table
                        .filter(conversations::business_id.eq(nil))
                        .filter(conversations::id.eq(nil))
                        .select(conversations::id)
                        .for_update(),
                ),
            ),
            (
                "head (head_query!)",
                sql_of(&crate::write::head_query!(nil, nil)),
            ),
            (
                "latest message time (last_message_query!)",
                sql_of(&crate::write::last_message_query!(nil, nil)),
            ),
            (
                "customer by id (customer_query!)",
                sql_of(&crate::write::customer_query!(nil, nil)),
            ),
            (
                "customer by external id (customer_by_external_id_query!)",
                sql_of(&crate::write::customer_by_external_id_query!(nil, "x")),
            ),
            (
                "insert customer",
                sql_of(
                    &diesel::insert_into(customers::table)
                        .values(crate::rows::customer_row(&customer)),
                ),
            ),
            (
                "insert conversation",
                sql_of(&diesel::insert_into(conversations::table).values(&rows.conversations)),
            ),
            (
                "insert message",
                sql_of(&diesel::insert_into(messages::table).values(&message_row)),
            ),
            (
                "insert attachments",
                sql_of(&diesel::insert_into(attachments::table).values(&attachment_rows)),
            ),
            (
                "head update (write::HeadUpdate, on Citus without staged events)",
                sql_of(&crate::write::HeadUpdate::new(&head, None)),
            ),
            (
                "event counter bump (BUMP_POSTGRES)",
                crate::events::BUMP_POSTGRES.to_owned(),
            ),
            (
                "event insert",
                sql_of(&diesel::insert_into(crate::schema::events::table).values(&event_rows)),
            ),
            (
                "pending event insert (a write's events)",
                sql_of(&crate::events::StagedEvents::new(nil, &encoded)),
            ),
            (
                "pending events taken for numbering (sequencer::TAKE_PENDING)",
                crate::sequencer::TAKE_PENDING.to_owned(),
            ),
            (
                "counter row locked if free (postgres_write::LOCK_COUNTER_IF_FREE)",
                crate::postgres_write::LOCK_COUNTER_IF_FREE.to_owned(),
            ),
            (
                "message read (message_query!)",
                sql_of(&crate::write::message_query!(nil, nil, nil)),
            ),
        ]
    }

    /// The inbox (first page and a deep, filtered page: one statement each, with the
    /// attachments and the last event id) and the event feed (the page, the last id,
    /// the oldest id).
    fn list_and_feed_statements() -> Vec<(&'static str, String)> {
        use pingback_domain::{
            AssigneeFilter, InboxFilter, InboxOrder, InboxPosition, InboxQuery, Status,
        };
        let nil = DbUuid(Uuid::nil());
        let first = InboxQuery {
            filter: InboxFilter::default(),
            order: InboxOrder::default(),
            after: None,
            limit: 25,
        };
        let deep = InboxQuery {
            filter: InboxFilter {
                statuses: vec![Status::Open, Status::Pending],
                assignee: Some(AssigneeFilter::Unassigned),
                ..InboxFilter::default()
            },
            order: InboxOrder::default(),
            after: Some(InboxPosition {
                updated_at: pingback_domain::Timestamp::now(),
                id: pingback_domain::ConversationId::from_uuid(Uuid::nil()),
            }),
            limit: 25,
        };
        vec![
            (
                "inbox first page (inbox_read::statement)",
                sql_of(&crate::inbox_read::statement(nil, &first)),
            ),
            (
                "inbox deep filtered page (inbox_read::statement)",
                sql_of(&crate::inbox_read::statement(nil, &deep)),
            ),
            (
                "event feed (events_query!)",
                sql_of(&crate::events::events_query!(nil, 0i64, 100i64)),
            ),
            (
                "last event id (last_event_query!)",
                sql_of(&crate::events::last_event_query!(nil)),
            ),
            (
                "oldest event id (oldest_event_query!)",
                sql_of(&crate::events::oldest_event_query!(nil)),
            ),
        ]
    }

    /// The import's checks for ids owned elsewhere (`PostgresStore::existing`, the same
    /// Diesel statements): they look in every business by design, so on Citus they fan
    /// out to every shard. Measured, not forbidden.
    pub fn import_id_checks() -> Vec<(&'static str, String)> {
        let ids = vec![DbUuid(Uuid::nil())];
        vec![
            (
                "conversations owned elsewhere",
                sql_of(
                    &conversations::table
                        .filter(conversations::id.eq_any(&ids))
                        .select((conversations::business_id, conversations::id)),
                ),
            ),
            (
                "customers owned elsewhere",
                sql_of(
                    &customers::table
                        .filter(customers::id.eq_any(&ids))
                        .select((customers::business_id, customers::id)),
                ),
            ),
            (
                "messages owned elsewhere",
                sql_of(&messages::table.filter(messages::id.eq_any(&ids)).select((
                    messages::business_id,
                    messages::conversation_id,
                    messages::id,
                ))),
            ),
            (
                "attachments owned elsewhere",
                sql_of(
                    &attachments::table
                        .filter(attachments::id.eq_any(&ids))
                        .select((
                            attachments::business_id,
                            attachments::conversation_id,
                            attachments::message_id,
                            attachments::id,
                        )),
                ),
            ),
        ]
    }

    #[derive(QueryableByName)]
    struct PlanLine {
        #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
        line: String,
    }

    #[derive(QueryableByName)]
    struct ParameterType {
        #[diesel(sql_type = Text)]
        name: String,
    }

    /// The plan Citus makes for `sql` as the service runs it: prepared, with the
    /// service's `plan_cache_mode` (`citus::SET_PLAN_CACHE_MODE`), executed with `business` for every `uuid` parameter (the
    /// routing depends on the business only; other ids merely find nothing), `{business}`
    /// for `uuid[]`, and a neutral value for other types (`1`, `'x'`, `now()`, `true`,
    /// else NULL). With `analyze`, the statement is executed too (`EXPLAIN ANALYZE`).
    pub async fn explain(url: &str, sql: &str, business: Uuid, analyze: bool) -> String {
        let mut conn = AsyncPgConnection::establish(url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
        conn.batch_execute(crate::citus::SET_PLAN_CACHE_MODE)
            .await
            .unwrap_or_else(|e| panic!("SET plan_cache_mode: {e}"));
        conn.batch_execute(&format!("PREPARE hot_path AS {sql}"))
            .await
            .unwrap_or_else(|e| panic!("cannot prepare {sql}: {e}"));
        let types: Vec<ParameterType> = diesel::sql_query(
            "SELECT unnest(parameter_types)::text AS name FROM pg_prepared_statements \
             WHERE name = 'hot_path'",
        )
        .load(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("cannot read the parameter types: {e}"));
        let arguments: Vec<String> = types
            .iter()
            .map(|t| match t.name.as_str() {
                "uuid" => format!("'{business}'::uuid"),
                "uuid[]" => format!("ARRAY['{business}']::uuid[]"),
                "integer" | "bigint" | "smallint" => format!("1::{}", t.name),
                "text" => "'x'::text".to_owned(),
                "timestamp with time zone" => "now()".to_owned(),
                "boolean" => "true".to_owned(),
                other => format!("NULL::{other}"),
            })
            .collect();
        let options = if analyze { "ANALYZE, " } else { "" };
        let execute = if arguments.is_empty() {
            "EXECUTE hot_path".to_owned()
        } else {
            format!("EXECUTE hot_path({})", arguments.join(", "))
        };
        let lines: Vec<PlanLine> =
            diesel::sql_query(format!("EXPLAIN ({options}VERBOSE OFF) {execute}"))
                .load(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("EXPLAIN of {sql}: {e}"));
        lines
            .into_iter()
            .map(|l| l.line)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The `Task Count: N` of every distributed step of a Citus plan: `[1]` for a
    /// statement routed to one shard; more, or several entries (subplans), otherwise.
    pub fn task_counts(plan: &str) -> Vec<u32> {
        plan.lines()
            .filter_map(|line| {
                line.trim()
                    .strip_prefix("Task Count: ")
                    .and_then(|n| n.trim().parse().ok())
            })
            .collect()
    }

    #[derive(QueryableByName, Debug, Clone, PartialEq, Eq)]
    pub struct Distribution {
        #[diesel(sql_type = Text)]
        pub table: String,
        /// `distributed`, `reference`, `local` (not in Citus' metadata).
        #[diesel(sql_type = Text)]
        pub kind: String,
        /// The distribution column, for distributed tables.
        #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
        pub column: Option<String>,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
        pub colocation: Option<i32>,
        /// Whether the table has a `business_id` column.
        #[diesel(sql_type = diesel::sql_types::Bool)]
        pub by_business: bool,
    }

    /// How each table of the public schema is placed on the cluster.
    pub async fn distribution(url: &str) -> Vec<Distribution> {
        let mut conn = AsyncPgConnection::establish(url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
        diesel::sql_query(
            "SELECT c.relname::text AS table, \
                    CASE WHEN p.logicalrelid IS NULL THEN 'local' \
                         WHEN p.partmethod = 'h' THEN 'distributed' \
                         WHEN p.repmodel = 't' THEN 'reference' ELSE 'local' END AS kind, \
                    CASE WHEN p.partmethod = 'h' \
                         THEN column_to_column_name(p.logicalrelid, p.partkey) END AS column, \
                    p.colocationid AS colocation, \
                    EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                            AND a.attname = 'business_id' AND NOT a.attisdropped) AS by_business \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
             ORDER BY 1",
        )
        .load(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("cannot read pg_dist_partition: {e}"))
    }

    #[derive(QueryableByName)]
    struct Port {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        port: i32,
    }

    /// The port of the worker holding `business`'s shard of `table`.
    pub async fn worker_port_of(url: &str, table: &str, business: Uuid) -> u16 {
        let mut conn = AsyncPgConnection::establish(url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
        let ports: Vec<Port> = diesel::sql_query(
            "SELECT s.nodeport AS port FROM citus_shards s \
             WHERE s.table_name = $1::regclass \
               AND s.shardid = get_shard_id_for_distribution_column($1::regclass, $2)",
        )
        .bind::<Text, _>(table)
        .bind::<Text, _>(business.to_string())
        .load(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("cannot find the shard of {business}: {e}"));
        let port = <[Port]>::first(&ports)
            .unwrap_or_else(|| panic!("no shard of {table} for {business}"))
            .port;
        u16::try_from(port).expect("a TCP port")
    }
}
