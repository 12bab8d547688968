//! Numbering the events PostgreSQL writes leave pending (`pending_events`).
//!
//! Why not number them in the write's transaction: a per-business counter taken there
//! is held until commit, so every writer of a business waited for the one before it to
//! commit, and each of those writers also sent `NOTIFY`, which PostgreSQL serialises
//! across the whole database at commit. With one business's writers busy, the event log
//! halved the write throughput (`docs/benchmarks.md`, "Writes").
//!
//! Instead a write stages its events and, once it has committed, asks for its
//! business's pending events to be numbered. Numbering is one short transaction
//! ([`PostgresStore::number_pending`]): lock the counter row, take the pending rows
//! (a statement that starts after the lock, so it sees every write committed before),
//! insert them into `events` with the next ids in `seq` order, raise the counter,
//! `NOTIFY`, commit. Numberings of one business run one at a time (the row lock), each
//! starting from what the previous one committed, and they number only committed
//! events: ids are 1, 2, 3, … without gaps, and an event never appears below an id a
//! reader has seen. A reader sees a write's event once it is numbered, which the write
//! waits for before it answers (so a client that reads the feed after its write finds
//! it), or at most `STRAGGLERS` later if the writing process died in between.
//!
//! Within a process, concurrent writers of a business share numberings ([`Turns`]): a
//! writer whose commit is covered by a numbering that started after it need not run
//! its own, so under load one numbering serves a batch of writes.
//!
//! A write whose business's counter row is free (`FOR UPDATE SKIP LOCKED`) and that has
//! no pending event numbers its events itself instead, as the last step of its
//! transaction, holding the row until it commits: a lone writer pays one statement,
//! not a second transaction. When the row is taken (another writer, a numbering) or
//! events are pending, it stages: a pending event may be an earlier write of its own
//! conversation, which must keep the lower id. Both hand out ids under the row's lock,
//! so they keep one order. While a writer of the same process is numbering the
//! business (`Turns::busy`), a write stages without asking: events are pending then.

use std::sync::Arc;
use std::time::Duration;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Untyped};
use diesel::{QueryResult, QueryableByName};
use diesel_async::{AsyncConnection, RunQueryDsl};
use pingback_application::RepositoryError;
use pingback_domain::{BusinessId, EventType};

use crate::error::{DeadlineExceeded, classify};
use crate::events::{BUMP_POSTGRES, LastId, NewEvent, Notify, bump_query};
use crate::pool::Checkout;
use crate::postgres::PostgresStore;
use crate::schema::{DbUuid, Micros};

/// Events numbered per transaction at most (a backlog is numbered in several).
const BATCH: i64 = 1_000;

/// How old a pending event must be before the sweep numbers it: younger ones belong to
/// writes whose own process is about to.
pub(crate) const STRAGGLERS: Duration = Duration::from_secs(2);

/// Takes (deletes and returns) a business's oldest pending events. `$1` business,
/// `$2` the batch size. The rows are sorted by `seq` by the caller.
pub(crate) const TAKE_PENDING: &str = "DELETE FROM pending_events WHERE business_id = $1 AND seq IN \
    (SELECT p.seq FROM pending_events p WHERE p.business_id = $1 ORDER BY p.seq LIMIT $2) \
    RETURNING seq, type, occurred_at, conversation_id, data";

/// On plain PostgreSQL, the move in one statement, once the counter row is locked (by
/// a statement of its own, so that this one's snapshot has every write committed
/// before the lock): the business's oldest pending events (at most `BATCH`) deleted,
/// inserted into `events` with the ids after `last` in `seq` order, and the counter
/// raised by their number; it returns the new last id. Three statements fewer than on
/// Citus, and the rows stay in the database: Citus cannot route a data-modifying
/// `WITH` that inserts to one shard, so there `TAKE_PENDING` brings the rows to the
/// process, which inserts them.
struct MovePending {
    business: DbUuid,
    last: i64,
}

impl QueryFragment<Pg> for MovePending {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        use crate::schema::sql::Uuid;
        out.push_sql("WITH taken AS (DELETE FROM pending_events WHERE business_id = ");
        out.push_bind_param::<Uuid, _>(&self.business)?;
        out.push_sql(" AND seq IN (SELECT p.seq FROM pending_events p WHERE p.business_id = ");
        out.push_bind_param::<Uuid, _>(&self.business)?;
        out.push_sql(" ORDER BY p.seq LIMIT ");
        out.push_bind_param::<BigInt, _>(&BATCH)?;
        out.push_sql(
            ") RETURNING business_id, seq, type, occurred_at, conversation_id, data), \
             moved AS (INSERT INTO events (business_id, id, type, occurred_at, \
             conversation_id, data) SELECT business_id, ",
        );
        out.push_bind_param::<BigInt, _>(&self.last)?;
        out.push_sql(
            " + row_number() OVER (ORDER BY seq), type, occurred_at, conversation_id, data \
             FROM taken) UPDATE business_event_counters SET last_event_id = last_event_id + \
             (SELECT count(*) FROM taken) WHERE business_id = ",
        );
        out.push_bind_param::<Uuid, _>(&self.business)?;
        out.push_sql(" RETURNING last_event_id");
        Ok(())
    }
}

impl QueryId for MovePending {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for MovePending {
    type SqlType = Untyped;
}

/// Businesses with events pending since before `$1`.
const STRAGGLING: &str = "SELECT DISTINCT business_id FROM pending_events \
    WHERE occurred_at < $1 LIMIT 100";

#[derive(QueryableByName)]
struct Pending {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    seq: i64,
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "type")]
    kind: String,
    #[diesel(sql_type = crate::schema::sql::Instant)]
    occurred_at: Micros,
    #[diesel(sql_type = crate::schema::sql::Uuid)]
    conversation_id: DbUuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    data: String,
}

#[derive(QueryableByName)]
struct Straggling {
    #[diesel(sql_type = crate::schema::sql::Uuid)]
    business_id: DbUuid,
}

/// `rows` in chunks whose sizes are powers of two, largest first: a multi-row insert
/// is one statement text per row count, and PostgreSQL (`pg_stat_statements`) and
/// each connection's cache of prepared statements keep one entry per text, so this
/// bounds them to 10 (`BATCH` < 2¹⁰ rows) instead of one per count.
fn power_of_two_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = 1 << rest.len().ilog2();
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

pub(crate) use turns::Turns;

/// Kept apart from the SQL: diesel's `load` would shadow the atomics'.
mod turns {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use pingback_application::RepositoryError;
    use pingback_domain::BusinessId;

    /// Per business, the numberings this process asked for and finished: lets concurrent
    /// writers share one.
    #[derive(Default)]
    pub(crate) struct Turns {
        businesses: Mutex<HashMap<BusinessId, Arc<Turn>>>,
    }

    #[derive(Default)]
    struct Turn {
        /// Tickets handed out: each taken after its write committed.
        requested: AtomicU64,
        /// Every ticket up to this one is covered by a finished numbering.
        covered: AtomicU64,
        running: tokio::sync::Mutex<()>,
    }

    impl std::fmt::Debug for Turns {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Turns").finish_non_exhaustive()
        }
    }

    impl Turns {
        /// The map, also after a panic elsewhere: it holds only counters and locks.
        fn map(&self) -> std::sync::MutexGuard<'_, HashMap<BusinessId, Arc<Turn>>> {
            self.businesses
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        fn turn(&self, business: BusinessId) -> Arc<Turn> {
            Arc::clone(self.map().entry(business).or_default())
        }

        /// Whether a writer of this process is numbering `business`'s events or waiting
        /// for a numbering: events of the business are pending right now.
        pub(crate) fn busy(&self, business: BusinessId) -> bool {
            self.map().contains_key(&business)
        }

        /// Forgets a business nobody waits on, so the map holds only active businesses.
        fn release(&self, business: BusinessId, turn: Arc<Turn>) {
            let mut map = self.map();
            // Ours and the map's: nobody else holds it, nobody can take it meanwhile.
            if Arc::strong_count(&turn) == 2 {
                map.remove(&business);
            }
        }

        /// Returns once a numbering that started after this call has finished: everything
        /// committed before the call is numbered. Runs `number` itself unless a numbering
        /// that started after this call finishes while it waits for its turn.
        pub(crate) async fn settle<F>(
            &self,
            business: BusinessId,
            number: F,
        ) -> Result<(), RepositoryError>
        where
            F: AsyncFnOnce() -> Result<(), RepositoryError>,
        {
            let turn = self.turn(business);
            let ticket = turn.requested.fetch_add(1, Ordering::SeqCst) + 1;
            let result = {
                let _running = turn.running.lock().await;
                if turn.covered.load(Ordering::SeqCst) >= ticket {
                    Ok(())
                } else {
                    // Read before numbering starts: every ticket up to here was taken after
                    // its write committed, so this numbering sees those writes.
                    let covers = turn.requested.load(Ordering::SeqCst);
                    let result = number().await;
                    if result.is_ok() {
                        turn.covered.fetch_max(covers, Ordering::SeqCst);
                    }
                    result
                }
            };
            self.release(business, turn);
            result
        }
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::time::Duration;

        use super::Turns;

        /// Concurrent callers share numberings, and each returns only after one that
        /// started after its call finished.
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn callers_share_numberings_that_started_after_them() {
            let turns = Arc::new(Turns::default());
            let business = pingback_domain::BusinessId::from_uuid(uuid::Uuid::now_v7());
            let started = Arc::new(AtomicU64::new(0));
            let runs = Arc::new(AtomicU64::new(0));
            let callers: Vec<_> = (0..32)
                .map(|_| {
                    let (turns, started, runs) =
                        (Arc::clone(&turns), Arc::clone(&started), Arc::clone(&runs));
                    tokio::spawn(async move {
                        // What "committed" before the call: the runs started so far.
                        let before = started.load(Ordering::SeqCst);
                        turns
                            .settle(business, async || {
                                assert!(turns.busy(business), "busy while numbering");
                                started.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(5)).await;
                                runs.fetch_add(1, Ordering::SeqCst);
                                Ok(())
                            })
                            .await
                            .unwrap();
                        // A run that started after the call has finished.
                        assert!(runs.load(Ordering::SeqCst) > before);
                    })
                })
                .collect();
            for caller in callers {
                caller.await.unwrap();
            }
            let runs = runs.load(Ordering::SeqCst);
            assert!((1..32).contains(&runs), "{runs} numberings for 32 callers");
            assert!(
                turns.businesses.lock().unwrap().is_empty(),
                "idle businesses forgotten"
            );
            assert!(!turns.busy(business), "not busy once every caller returned");
        }
    }
}

impl PostgresStore {
    /// Numbers every pending event of `business` committed before the call (shared
    /// with concurrent callers of this process), then wakes its readers here and, by
    /// `NOTIFY`, in other processes.
    pub(crate) async fn settle_events(&self, business: BusinessId) -> Result<(), RepositoryError> {
        let wiring = Arc::clone(self.events());
        wiring
            .turns
            .settle(business, async || {
                let numbered = self.number_pending(business).await?;
                if numbered > 0 {
                    wiring.signals.notify(business);
                }
                Ok(())
            })
            .await
    }

    /// Numbers the pending events of `business`, a transaction per `BATCH`; returns
    /// how many.
    pub(crate) async fn number_pending(
        &self,
        business: BusinessId,
    ) -> Result<u64, RepositoryError> {
        let business = DbUuid::from(business);
        let budget = self.budget();
        let run = async {
            let object = self
                .pool()
                .get()
                .await
                .map_err(crate::error::classify_pool)?;
            let mut checkout = Checkout::new(object);
            let Some(conn) = checkout.connection() else {
                return Err(RepositoryError::internal("pooled connection missing"));
            };
            // Read once a connection is set up: each learns it (`postgres::setup`).
            let citus = self.on_citus();
            let mut numbered = 0u64;
            loop {
                let taken = conn
                    .transaction(async move |conn| {
                        // The lock first: the statements after it see every write that
                        // committed before it, and every earlier numbering.
                        let last = bump_query!(BUMP_POSTGRES, business, 0i64)
                            .get_result::<LastId>(conn)
                            .await?
                            .last_event_id;
                        if !citus {
                            let count = MovePending { business, last }
                                .get_result::<LastId>(conn)
                                .await?
                                .last_event_id
                                - last;
                            if count > 0 {
                                Notify::of(business).execute(conn).await?;
                            }
                            return Ok(count);
                        }
                        let mut pending = diesel::sql_query(TAKE_PENDING)
                            .bind::<crate::schema::sql::Uuid, _>(business)
                            .bind::<diesel::sql_types::BigInt, _>(BATCH)
                            .load::<Pending>(conn)
                            .await?;
                        if pending.is_empty() {
                            return Ok::<_, diesel::result::Error>(0);
                        }
                        pending.sort_unstable_by_key(|p| p.seq);
                        let count = i64::try_from(pending.len()).unwrap_or(i64::MAX);
                        let rows = pending
                            .iter()
                            .zip(last + 1..)
                            .map(|(p, id)| {
                                let kind = EventType::parse(&p.kind).ok_or_else(|| {
                                    diesel::result::Error::DeserializationError(Box::new(
                                        crate::rows::corrupt("pending event type", &p.kind),
                                    ))
                                })?;
                                Ok(NewEvent::new(
                                    business,
                                    id,
                                    kind,
                                    p.occurred_at,
                                    p.conversation_id,
                                    &p.data,
                                ))
                            })
                            .collect::<Result<Vec<_>, diesel::result::Error>>()?;
                        // One round trip for the rest: the rows, the counter, NOTIFY.
                        let shared = &*conn;
                        let inserts = power_of_two_chunks(&rows).map(|chunk| async move {
                            diesel::insert_into(crate::schema::events::table)
                                .values(chunk)
                                .execute(&mut &*shared)
                                .await
                        });
                        let notify = Notify::of(business);
                        futures_util::future::try_join3(
                            futures_util::future::try_join_all(inserts),
                            async {
                                bump_query!(BUMP_POSTGRES, business, count)
                                    .get_result::<LastId>(&mut &*shared)
                                    .await
                            },
                            notify.execute(&mut &*shared),
                        )
                        .await?;
                        Ok(count)
                    })
                    .await
                    .map_err(classify)?;
                numbered += taken.unsigned_abs();
                if taken < BATCH {
                    break;
                }
            }
            checkout.release();
            Ok(numbered)
        };
        tokio::time::timeout(budget, run)
            .await
            .unwrap_or_else(|_| Err(RepositoryError::unavailable(DeadlineExceeded(budget))))
    }

    /// Numbers the events of writes whose process did not (it died between its
    /// commit and the numbering, or its numbering failed). Returns for how many
    /// businesses.
    pub(crate) async fn settle_stragglers(&self) -> Result<usize, RepositoryError> {
        let now = pingback_domain::Timestamp::now();
        let micros = i64::try_from(STRAGGLERS.as_micros()).unwrap_or(i64::MAX);
        let before = Micros(now.plus_micros(-micros).unix_micros());
        let businesses = self
            .on_read_lane(move |conn| {
                Box::pin(async move {
                    let mut conn = conn;
                    diesel::sql_query(STRAGGLING)
                        .bind::<crate::schema::sql::Instant, _>(before)
                        .load::<Straggling>(&mut conn)
                        .await
                })
            })
            .await?;
        let count = businesses.len();
        for Straggling { business_id } in businesses {
            self.settle_events(BusinessId::from(business_id)).await?;
        }
        Ok(count)
    }
}

/// Numbers, once, the events of writes whose process did not (see
/// [`PostgresStore::settle_stragglers`]); nothing to do on SQLite, whose writes number
/// their own. Returns for how many businesses it numbered events.
pub async fn settle_stragglers(
    settings: &crate::DatabaseSettings,
    events: &crate::EventWiring,
) -> Result<usize, RepositoryError> {
    match settings.target().map_err(RepositoryError::internal)? {
        crate::settings::Target::Postgres(url) => {
            PostgresStore::new(&url, settings, events)
                .map_err(RepositoryError::internal)?
                .settle_stragglers()
                .await
        }
        crate::settings::Target::Sqlite(_) => Ok(0),
    }
}

/// On PostgreSQL, runs the sweep of [`settle_stragglers`] every second for the life of
/// the process (on a store of its own). `None` on SQLite.
pub fn sweep_pending_events(
    settings: &crate::DatabaseSettings,
    events: &crate::EventWiring,
) -> Option<tokio::task::JoinHandle<()>> {
    let crate::settings::Target::Postgres(url) = settings.target().ok()? else {
        return None;
    };
    let store = PostgresStore::new(&url, settings, events).ok()?;
    Some(tokio::spawn(async move {
        let mut rounds = tokio::time::interval(Duration::from_secs(1));
        rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            rounds.tick().await;
            match store.settle_stragglers().await {
                Ok(0) => {}
                Ok(businesses) => {
                    tracing::info!(businesses, "numbered events their writers left pending");
                }
                Err(error) => tracing::warn!(%error, "numbering pending events failed; retrying"),
            }
        }
    }))
}

#[cfg(test)]
mod chunk_tests {
    #[test]
    fn chunks_are_powers_of_two_largest_first_and_cover_every_row() {
        for n in 0..=1_000_usize {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = super::power_of_two_chunks(&rows).collect();
            assert_eq!(chunks.concat(), rows);
            assert!(chunks.iter().all(|c| c.len().is_power_of_two()));
            assert!(chunks.windows(2).all(|w| w[0].len() > w[1].len()));
        }
    }
}
