//! Citus: distributing the schema by business after the migrations have run.
//!
//! On a PostgreSQL server with the `citus` extension in the database, every table of
//! the `public` schema that has a `business_id` column is distributed by it (hash, all
//! in one co-location group, anchored on `conversations` once it is distributed), and
//! every other table becomes a reference table (copied to every node), except Diesel's
//! own `__diesel_schema_migrations`, which stays on the coordinator. The list is read
//! from the catalog, not written down here, so tables added by later migrations are
//! covered without edits. Tables already in `pg_dist_partition` are left alone: the
//! step is idempotent and runs after every `migrate`, even when nothing was pending.
//!
//! On plain PostgreSQL (no `citus` extension) nothing happens.
//!
//! Citus also changes how a migration file is run: it propagates DDL on a distributed
//! table to the workers as the text of the whole query string, which fails ("cannot
//! insert multiple commands into a prepared statement") when that string holds several
//! statements, as a migration file run in one `batch_execute` does (the down migration
//! of `revisions` did). On Citus each file's statements are therefore sent one by one
//! ([`OneStatementAtATime`]), in the same transaction.
//!
//! A caveat for later migrations on an existing cluster: Citus refuses a foreign key
//! from a local table to a distributed one, so a migration that creates a per-business
//! table referencing an already distributed table must create it without that foreign
//! key, distribute it (see `docs/scaling.md`), and then add the key. On a new database
//! (every migration pending) this step distributes everything at the end, keys included.

use diesel::QueryResult;
use diesel::connection::{BoxableConnection, LoadConnection, SimpleConnection};
use diesel::migration::{self, Migration, MigrationMetadata, MigrationName, MigrationSource};
use diesel::pg::Pg;
use diesel::sql_types::{Array, Bool, Nullable, Text};
use diesel::{QueryableByName, RunQueryDsl};

use crate::error::BoxError;

/// The session's `plan_cache_mode`, for every connection of the PostgreSQL adapter:
/// generic plans on plain PostgreSQL (measured faster: `postgres::setup`), custom plans
/// on Citus. Citus routes a statement to a shard by the business id, so it must see the
/// value when planning: a generic plan of the read (a `UNION ALL`) or of the revision
/// check (a join) is refused ("could not create distributed plan"), which forcing
/// generic plans turned into a failure of every read. One statement, no branch in Rust;
/// it also says whether the extension is there (`citus`, read as [`Installed`]), which
/// decides the statements a write issues (`postgres_write`).
pub(crate) const SET_PLAN_CACHE_MODE: &str = "SELECT set_config('plan_cache_mode', \
     CASE WHEN i.citus THEN 'force_custom_plan' ELSE 'force_generic_plan' END, false) \
     AS plan_cache_mode, i.citus FROM (SELECT EXISTS (SELECT 1 FROM pg_extension \
     WHERE extname = 'citus') AS citus) i";

/// The table every per-business table is co-located with, when it is distributed.
const ANCHOR: &str = "conversations";

#[derive(QueryableByName)]
pub(crate) struct Installed {
    #[diesel(sql_type = Bool)]
    pub(crate) citus: bool,
}

#[derive(QueryableByName, Debug)]
struct Table {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    by_business: bool,
    #[diesel(sql_type = Bool)]
    distributed: bool,
    /// `h` (hash-distributed), `n` (reference or Citus-local), NULL when not in Citus.
    #[diesel(sql_type = Nullable<Text>)]
    method: Option<String>,
    /// The other tables its foreign keys reference.
    #[diesel(sql_type = Array<Text>)]
    references: Vec<String>,
}

const IS_INSTALLED: &str =
    "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS citus";

const TABLES: &str = "\
SELECT c.relname::text AS name,
       EXISTS (SELECT 1 FROM pg_attribute a
               WHERE a.attrelid = c.oid AND a.attname = 'business_id'
                 AND a.attnum > 0 AND NOT a.attisdropped) AS by_business,
       p.logicalrelid IS NOT NULL AS distributed,
       p.partmethod::text AS method,
       ARRAY(SELECT DISTINCT r.relname::text
             FROM pg_constraint f JOIN pg_class r ON r.oid = f.confrelid
             WHERE f.conrelid = c.oid AND f.contype = 'f' AND f.confrelid <> c.oid)
         AS references
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND c.relname <> '__diesel_schema_migrations'
ORDER BY c.relname";

/// Whether the connected database has the `citus` extension.
pub(crate) fn is_installed<C>(conn: &mut C) -> Result<bool, BoxError>
where
    C: LoadConnection<Backend = Pg>,
{
    let rows: Vec<Installed> = diesel::sql_query(IS_INSTALLED).load(conn)?;
    Ok(rows.iter().any(|row| row.citus))
}

/// Distributes what is not distributed yet (see the module documentation). Returns
/// the tables it distributed, as `name (how)`; nothing on plain PostgreSQL.
pub(crate) fn distribute<C>(conn: &mut C) -> Result<Vec<String>, BoxError>
where
    C: LoadConnection<Backend = Pg>,
{
    if !is_installed(conn)? {
        return Ok(Vec::new());
    }
    tracing::info!("Citus detected: distributing tables by business_id");
    let tables: Vec<Table> = diesel::sql_query(TABLES).load(conn)?;
    let mut anchor = tables
        .iter()
        .filter(|t| t.distributed && t.by_business && t.method.as_deref() == Some("h"))
        .map(|t| t.name.clone())
        .min_by_key(|name| name != ANCHOR);
    let mut done = Vec::new();
    for table in dependency_order(tables)? {
        let how = if table.by_business {
            let colocate_with = anchor.clone().unwrap_or_else(|| "default".to_owned());
            diesel::sql_query(
                "SELECT create_distributed_table(quote_ident($1), 'business_id', \
                 colocate_with => $2)",
            )
            .bind::<Text, _>(&table.name)
            .bind::<Text, _>(&colocate_with)
            .execute(conn)?;
            if anchor.is_none() || table.name == ANCHOR {
                anchor = Some(table.name.clone());
            }
            format!("distributed by business_id, co-located with {colocate_with}")
        } else {
            diesel::sql_query("SELECT create_reference_table(quote_ident($1))")
                .bind::<Text, _>(&table.name)
                .execute(conn)?;
            "reference table".to_owned()
        };
        tracing::info!(table = %table.name, "Citus: {how}");
        done.push(format!("{} ({how})", table.name));
    }
    Ok(done)
}

/// The tables still to distribute, each after the tables its foreign keys reference
/// (Citus wants a referenced table distributed first).
fn dependency_order(tables: Vec<Table>) -> Result<Vec<Table>, BoxError> {
    let (mut placed, mut pending): (Vec<Table>, Vec<Table>) =
        tables.into_iter().partition(|t| t.distributed);
    let mut order = Vec::new();
    while !pending.is_empty() {
        let ready = pending.iter().position(|t| {
            t.references.iter().all(|r| {
                placed.iter().any(|p| &p.name == r) || !pending.iter().any(|p| &p.name == r)
            })
        });
        let Some(ready) = ready else {
            let names: Vec<&str> = pending.iter().map(|t| t.name.as_str()).collect();
            return Err(format!(
                "cannot order these tables for Citus: their foreign keys form a cycle: {}",
                names.join(", ")
            )
            .into());
        };
        let table = pending.remove(ready);
        placed.push(Table {
            name: table.name.clone(),
            by_business: table.by_business,
            distributed: true,
            method: None,
            references: Vec::new(),
        });
        order.push(table);
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{Table, dependency_order, statements};

    #[test]
    fn a_script_is_split_at_the_semicolons_that_end_statements() {
        let sql = "-- a comment; not a statement\n\
            ALTER TABLE customers DROP COLUMN revision;\n\
            ALTER TABLE conversations DROP COLUMN revision;\n\
            INSERT INTO t VALUES ('a;b', 'it''s; fine', \"odd;name\");\n\
            /* block; /* nested; */ still; */\n\
            DO $body$ BEGIN PERFORM 1; END $body$;\n\
            SELECT $$x;y$$, $1;\n\
            -- trailing comment only\n";
        assert_eq!(
            statements(sql),
            [
                "-- a comment; not a statement\nALTER TABLE customers DROP COLUMN revision;",
                "ALTER TABLE conversations DROP COLUMN revision;",
                "INSERT INTO t VALUES ('a;b', 'it''s; fine', \"odd;name\");",
                "/* block; /* nested; */ still; */\nDO $body$ BEGIN PERFORM 1; END $body$;",
                "SELECT $$x;y$$, $1;",
            ]
        );
        assert_eq!(statements("SELECT 1"), ["SELECT 1"]);
        assert!(statements("  -- nothing\n").is_empty());
    }

    fn table(name: &str, distributed: bool, references: &[&str]) -> Table {
        Table {
            name: name.to_owned(),
            by_business: true,
            distributed,
            method: None,
            references: references.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    fn names(tables: Vec<Table>) -> Vec<String> {
        tables.into_iter().map(|t| t.name).collect()
    }

    #[test]
    fn referenced_tables_come_first() {
        let order = dependency_order(vec![
            table("attachments", false, &["messages"]),
            table("conversations", false, &["customers"]),
            table("customers", false, &[]),
            table("messages", false, &["conversations"]),
        ])
        .unwrap();
        assert_eq!(
            names(order),
            ["customers", "conversations", "messages", "attachments"]
        );
    }

    #[test]
    fn distributed_tables_are_skipped_and_satisfy_references() {
        let order = dependency_order(vec![
            table("conversations", true, &["customers"]),
            table("customers", true, &[]),
            table("events", false, &["conversations"]),
        ])
        .unwrap();
        assert_eq!(names(order), ["events"]);
    }

    #[test]
    fn a_cycle_is_an_error() {
        let error = dependency_order(vec![table("a", false, &["b"]), table("b", false, &["a"])])
            .err()
            .unwrap();
        assert!(error.to_string().contains("a, b"), "{error}");
    }
}

/// A migration source whose migrations send their SQL one statement at a time.
pub(crate) struct OneStatementAtATime<S>(pub S);

impl<S: MigrationSource<Pg>> MigrationSource<Pg> for OneStatementAtATime<S> {
    fn migrations(&self) -> migration::Result<Vec<Box<dyn Migration<Pg>>>> {
        Ok(self
            .0
            .migrations()?
            .into_iter()
            .map(|inner| Box::new(Split { inner }) as Box<dyn Migration<Pg>>)
            .collect())
    }
}

struct Split {
    inner: Box<dyn Migration<Pg>>,
}

impl Split {
    /// Runs `step` of the inner migration against a recorder, then replays what it
    /// sent on `conn`, statement by statement.
    fn replay(
        &self,
        conn: &mut dyn BoxableConnection<Pg>,
        step: impl FnOnce(&dyn Migration<Pg>, &mut Recorder) -> migration::Result<()>,
    ) -> migration::Result<()> {
        let mut recorder = Recorder::default();
        step(&*self.inner, &mut recorder)?;
        for batch in &recorder.batches {
            for statement in statements(batch) {
                conn.batch_execute(statement).map_err(|e| {
                    format!(
                        "migration {}: {e} (statement: {statement})",
                        self.inner.name()
                    )
                })?;
            }
        }
        Ok(())
    }
}

impl Migration<Pg> for Split {
    fn run(&self, conn: &mut dyn BoxableConnection<Pg>) -> migration::Result<()> {
        self.replay(conn, |inner, recorder| inner.run(recorder))
    }

    fn revert(&self, conn: &mut dyn BoxableConnection<Pg>) -> migration::Result<()> {
        self.replay(conn, |inner, recorder| inner.revert(recorder))
    }

    fn metadata(&self) -> &dyn MigrationMetadata {
        self.inner.metadata()
    }

    fn name(&self) -> &dyn MigrationName {
        self.inner.name()
    }
}

/// Keeps the SQL a migration sends instead of running it (an embedded migration is
/// one `batch_execute` of its file).
#[derive(Default)]
struct Recorder {
    batches: Vec<String>,
}

impl SimpleConnection for Recorder {
    fn batch_execute(&mut self, query: &str) -> QueryResult<()> {
        self.batches.push(query.to_owned());
        Ok(())
    }
}

impl BoxableConnection<Pg> for Recorder {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// The statements of a SQL script, split at the semicolons that end them: not those
/// inside quotes ('…', "…"), dollar quotes ($$…$$, $tag$…$tag$) or comments (--, /* */,
/// nested). Statements holding nothing but comments and blanks are left out.
fn statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i, mut content) = (0, 0, false);
    while i < bytes.len() {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n + 1);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < bytes.len() {
                    if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            quote @ (b'\'' | b'"') => {
                content = true;
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == quote {
                        // A doubled quote is an escaped one.
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                continue;
            }
            b'$' => {
                content = true;
                let tag_end = sql[i + 1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map(|n| i + 1 + n);
                let is_tag = tag_end.is_some_and(|end| {
                    bytes[end] == b'$' && !bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
                });
                if let (true, Some(end)) = (is_tag, tag_end) {
                    let tag = &sql[i..=end];
                    i = sql[end + 1..]
                        .find(tag)
                        .map_or(bytes.len(), |n| end + 1 + n + tag.len());
                    continue;
                }
            }
            b';' => {
                if content {
                    out.push(sql[start..=i].trim());
                }
                start = i + 1;
                content = false;
            }
            c if !c.is_ascii_whitespace() => content = true,
            _ => {}
        }
        i += 1;
    }
    if content {
        out.push(sql[start..].trim());
    }
    out
}
