//! Webhook endpoints in both adapters: the rows, their mapping to the domain, the
//! statements both adapters run, and the ports (`WebhookRepository` and
//! `DeliveryQueue`) over [`Webhooks`]; each adapter supplies its transactions as an
//! [`EndpointTable`] (in `postgres` and `sqlite`).
//!
//! - Creating counts and inserts under a per-business lock: on PostgreSQL the
//!   business's row of `business_event_counters`, taken by the same no-op upsert that
//!   reads the starting position (a row lock, so it holds across Citus nodes, unlike an
//!   advisory lock of one node); on SQLite the IMMEDIATE transaction's write lock.
//!   Reading the position under that lock also means a write of the business that is
//!   committing is either entirely before the endpoint's start or entirely after it.
//! - Leasing is two steps: a look for candidates (a multi-shard read on Citus), then
//!   per candidate a conditional single-row UPDATE that re-checks what the lease
//!   depends on (enabled, due, no unexpired lease). Two processes racing for one
//!   endpoint both run that UPDATE; the row lock makes the second re-evaluate its
//!   condition on the first one's result, so exactly one gets it. No `FOR UPDATE SKIP
//!   LOCKED` across shards, which Citus does not do well.
//! - Saving is one UPDATE conditioned on the lease owner.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use diesel::{Insertable, Queryable, Selectable};
use pingback_application::{
    DeliveryQueue, LeaseOwner, RepositoryError, StoredWebhook, WebhookRepository,
};
use pingback_domain::{
    BusinessId, DeliveryState, EventTypes, SecretSeed, Timestamp, WebhookChange, WebhookEndpoint,
    WebhookId, WebhookUrl,
};

use crate::rows::{CorruptRow, corrupt};
use crate::schema::{DbUuid, Micros, webhook_endpoints};

/// An endpoint's row, without its secret seed and lease.
#[derive(Queryable, Selectable)]
#[diesel(table_name = webhook_endpoints, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct EndpointRow {
    business_id: DbUuid,
    id: DbUuid,
    url: String,
    event_types: String,
    enabled: bool,
    created_at: Micros,
    delivered_through: i64,
    last_attempt_at: Option<Micros>,
    last_error: Option<String>,
    next_attempt_at: Option<Micros>,
    failing_since: Option<Micros>,
    failures: i32,
}

/// An endpoint's row and its secret seed (what a lease hands out).
pub(crate) type LeasedRecord = (EndpointRow, Vec<u8>);

#[derive(Insertable)]
#[diesel(table_name = webhook_endpoints)]
pub(crate) struct NewEndpoint {
    business_id: DbUuid,
    id: DbUuid,
    url: String,
    event_types: String,
    enabled: bool,
    created_at: Micros,
    secret_seed: Vec<u8>,
    delivered_through: i64,
    last_attempt_at: Option<Micros>,
    last_error: Option<String>,
    next_attempt_at: Option<Micros>,
    failing_since: Option<Micros>,
    failures: i32,
}

/// The row of a new endpoint, as given (its position set by the caller).
pub(crate) fn new_endpoint(endpoint: &WebhookEndpoint, seed: &SecretSeed) -> NewEndpoint {
    let delivery = &endpoint.delivery;
    NewEndpoint {
        business_id: endpoint.business_id.into(),
        id: endpoint.id.into(),
        url: endpoint.url.as_str().to_owned(),
        event_types: endpoint.event_types.to_names(),
        enabled: endpoint.enabled,
        created_at: micros(endpoint.created_at),
        secret_seed: seed.0.to_vec(),
        delivered_through: delivery.delivered_through,
        last_attempt_at: delivery.last_attempt_at.map(micros),
        last_error: delivery.last_error.clone(),
        next_attempt_at: delivery.next_attempt_at.map(micros),
        failing_since: delivery.failing_since.map(micros),
        failures: failures(delivery.failures),
    }
}

pub(crate) fn micros(at: Timestamp) -> Micros {
    Micros(at.unix_micros())
}

/// `now + lease`, as stored in `lease_until`.
pub(crate) fn lease_end(now: Timestamp, lease: Duration) -> Micros {
    micros(now.plus_micros(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX)))
}

pub(crate) fn failures(count: u32) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}

pub(crate) fn owner(owner: LeaseOwner) -> DbUuid {
    DbUuid(owner.0)
}

/// `limit` as a SQL `LIMIT`.
pub(crate) fn limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn timestamp(what: &'static str, value: Micros) -> Result<Timestamp, CorruptRow> {
    Timestamp::from_unix_micros(value.0).map_err(|e| corrupt(what, e))
}

fn optional_timestamp(
    what: &'static str,
    value: Option<Micros>,
) -> Result<Option<Timestamp>, CorruptRow> {
    value.map(|v| timestamp(what, v)).transpose()
}

pub(crate) fn endpoint(row: EndpointRow) -> Result<WebhookEndpoint, CorruptRow> {
    Ok(WebhookEndpoint {
        id: row.id.into(),
        business_id: row.business_id.into(),
        url: WebhookUrl::stored(&row.url).map_err(|e| corrupt("webhook url", e))?,
        event_types: EventTypes::from_names(&row.event_types)
            .map_err(|e| corrupt("webhook event types", e))?,
        enabled: row.enabled,
        created_at: timestamp("webhook created_at", row.created_at)?,
        delivery: DeliveryState {
            delivered_through: row.delivered_through,
            last_attempt_at: optional_timestamp("webhook last_attempt_at", row.last_attempt_at)?,
            last_error: row.last_error,
            next_attempt_at: optional_timestamp("webhook next_attempt_at", row.next_attempt_at)?,
            failing_since: optional_timestamp("webhook failing_since", row.failing_since)?,
            failures: u32::try_from(row.failures).map_err(|e| corrupt("webhook failures", e))?,
        },
    })
}

pub(crate) fn leased((row, seed): LeasedRecord) -> Result<StoredWebhook, CorruptRow> {
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|seed: Vec<u8>| corrupt("webhook secret seed", format!("{} bytes", seed.len())))?;
    Ok(StoredWebhook {
        endpoint: endpoint(row)?,
        seed: SecretSeed(seed),
    })
}

pub(crate) fn endpoints(rows: Vec<EndpointRow>) -> Result<Vec<WebhookEndpoint>, RepositoryError> {
    rows.into_iter()
        .map(endpoint)
        .collect::<Result<_, _>>()
        .map_err(RepositoryError::internal)
}

/// What an adapter does for the webhook ports, each step in a transaction of its own
/// making. The ports' arguments arrive as stored and rows leave undecoded: [`Webhooks`]
/// converts and decodes once for both adapters.
pub(crate) trait EndpointTable: Send + Sync + 'static {
    /// Inserts `endpoint` at its business's last committed event, unless the business
    /// has `limit` endpoints already (`None`); the count and the insert hold the
    /// business's lock (see the module's notes).
    fn insert_endpoint(
        &self,
        endpoint: WebhookEndpoint,
        seed: SecretSeed,
        limit: i64,
    ) -> impl Future<Output = Result<Option<WebhookEndpoint>, RepositoryError>> + Send;

    /// A business's endpoints, oldest first.
    fn endpoint_rows(
        &self,
        business: DbUuid,
    ) -> impl Future<Output = Result<Vec<EndpointRow>, RepositoryError>> + Send;

    fn endpoint_row(
        &self,
        business: DbUuid,
        id: DbUuid,
    ) -> impl Future<Output = Result<Option<EndpointRow>, RepositoryError>> + Send;

    /// Applies `change` to the endpoint as stored, under its row's lock; a row that
    /// does not decode changes nothing.
    fn update_endpoint(
        &self,
        business: DbUuid,
        id: DbUuid,
        change: WebhookChange,
    ) -> impl Future<Output = Result<Option<WebhookEndpoint>, RepositoryError>> + Send;

    /// How many rows were deleted.
    fn delete_endpoint(
        &self,
        business: DbUuid,
        id: DbUuid,
    ) -> impl Future<Output = Result<usize, RepositoryError>> + Send;

    /// Leases up to `terms.limit` due endpoints (`due_query`, then `lease_query` per
    /// candidate); the rows of those it got.
    fn lease_endpoints(
        &self,
        terms: LeaseTerms,
    ) -> impl Future<Output = Result<Vec<LeasedRecord>, RepositoryError>> + Send;

    /// Runs `save_query`; the endpoint as it stands after it, `None` when the lease is
    /// not the owner's.
    fn save_delivery(
        &self,
        terms: SaveTerms,
    ) -> impl Future<Output = Result<Option<WebhookEndpoint>, RepositoryError>> + Send;
}

/// What a lease binds.
#[derive(Clone, Copy)]
pub(crate) struct LeaseTerms {
    pub owner: DbUuid,
    pub now: Micros,
    pub until: Micros,
    pub limit: i64,
}

/// What a save binds.
pub(crate) struct SaveTerms {
    pub business: DbUuid,
    pub id: DbUuid,
    pub owner: DbUuid,
    pub state: DeliveryState,
    pub disable: bool,
    /// The renewed lease's end; `None` releases it.
    pub until: Option<Micros>,
}

/// The webhook ports over an adapter's [`EndpointTable`].
#[derive(Clone)]
pub(crate) struct Webhooks<T>(pub T);

#[async_trait]
impl<T: EndpointTable> WebhookRepository for Webhooks<T> {
    async fn create(
        &self,
        endpoint: WebhookEndpoint,
        seed: SecretSeed,
        limit: usize,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        self.0
            .insert_endpoint(endpoint, seed, self::limit(limit))
            .await
    }

    async fn list(&self, business: BusinessId) -> Result<Vec<WebhookEndpoint>, RepositoryError> {
        endpoints(self.0.endpoint_rows(business.into()).await?)
    }

    async fn find(
        &self,
        business: BusinessId,
        id: WebhookId,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        found(self.0.endpoint_row(business.into(), id.into()).await?)
    }

    async fn update(
        &self,
        business: BusinessId,
        id: WebhookId,
        change: WebhookChange,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        self.0
            .update_endpoint(business.into(), id.into(), change)
            .await
    }

    async fn delete(&self, business: BusinessId, id: WebhookId) -> Result<bool, RepositoryError> {
        Ok(self.0.delete_endpoint(business.into(), id.into()).await? == 1)
    }
}

#[async_trait]
impl<T: EndpointTable> DeliveryQueue for Webhooks<T> {
    async fn lease_due(
        &self,
        owner: LeaseOwner,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<StoredWebhook>, RepositoryError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let terms = LeaseTerms {
            owner: self::owner(owner),
            now: micros(now),
            until: lease_end(now, lease),
            limit: self::limit(limit),
        };
        self.0
            .lease_endpoints(terms)
            .await?
            .into_iter()
            .map(leased)
            .collect::<Result<_, _>>()
            .map_err(RepositoryError::internal)
    }

    async fn save(
        &self,
        business: BusinessId,
        id: WebhookId,
        owner: LeaseOwner,
        state: &DeliveryState,
        disable: bool,
        now: Timestamp,
        renew: Option<Duration>,
    ) -> Result<Option<WebhookEndpoint>, RepositoryError> {
        let terms = SaveTerms {
            business: business.into(),
            id: id.into(),
            owner: self::owner(owner),
            state: state.clone(),
            disable,
            until: renew.map(|renew| lease_end(now, renew)),
        };
        self.0.save_delivery(terms).await
    }
}

/// The endpoint a looked-up row holds, if any.
pub(crate) fn found(row: Option<EndpointRow>) -> Result<Option<WebhookEndpoint>, RepositoryError> {
    row.map(endpoint)
        .transpose()
        .map_err(RepositoryError::internal)
}

/// What can go wrong inside a webhook transaction: the database, or a stored row the
/// domain refuses.
#[derive(Debug)]
pub(crate) enum Failure {
    Database(diesel::result::Error),
    Corrupt(CorruptRow),
}

impl From<diesel::result::Error> for Failure {
    fn from(error: diesel::result::Error) -> Self {
        Self::Database(error)
    }
}

impl From<CorruptRow> for Failure {
    fn from(error: CorruptRow) -> Self {
        Self::Corrupt(error)
    }
}

impl From<Failure> for RepositoryError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Database(error) => crate::error::classify(error),
            Failure::Corrupt(error) => RepositoryError::internal(error),
        }
    }
}

/// A business's endpoints, oldest first.
macro_rules! endpoints_query {
    ($business:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl, SelectableHelper};
        use $crate::schema::webhook_endpoints as w;
        w::table
            .filter(w::business_id.eq($business))
            .order_by((w::created_at, w::id))
            .select($crate::webhooks::EndpointRow::as_select())
    }};
}
pub(crate) use endpoints_query;

/// The row of one endpoint of a business: what every statement on a single endpoint
/// filters on, so that its key is written once.
macro_rules! one_endpoint {
    ($business:expr, $id:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        use $crate::schema::webhook_endpoints as w;
        w::table
            .filter(w::business_id.eq($business))
            .filter(w::id.eq($id))
    }};
}
pub(crate) use one_endpoint;

/// One endpoint of a business.
macro_rules! endpoint_query {
    ($business:expr, $id:expr) => {{
        use diesel::{QueryDsl, SelectableHelper};
        $crate::webhooks::one_endpoint!($business, $id)
            .select($crate::webhooks::EndpointRow::as_select())
    }};
}
pub(crate) use endpoint_query;

/// One endpoint of a business with its secret seed.
macro_rules! leased_query {
    ($business:expr, $id:expr) => {{
        use diesel::{QueryDsl, SelectableHelper};
        use $crate::schema::webhook_endpoints as w;
        $crate::webhooks::one_endpoint!($business, $id)
            .select(($crate::webhooks::EndpointRow::as_select(), w::secret_seed))
    }};
}
pub(crate) use leased_query;

/// How many endpoints a business has.
macro_rules! count_query {
    ($business:expr) => {{
        use diesel::{ExpressionMethods, QueryDsl};
        use $crate::schema::webhook_endpoints as w;
        w::table
            .filter(w::business_id.eq($business))
            .select(diesel::dsl::count_star())
    }};
}
pub(crate) use count_query;

/// Stores what a `PATCH` may change: the settings and, when it enabled the endpoint
/// again, its fresh run of attempts. Never the position.
macro_rules! update_settings_query {
    ($business:expr, $id:expr, $endpoint:expr) => {{
        use diesel::ExpressionMethods;
        use $crate::schema::webhook_endpoints as w;
        let endpoint: &pingback_domain::WebhookEndpoint = $endpoint;
        diesel::update($crate::webhooks::one_endpoint!($business, $id)).set((
            w::url.eq(endpoint.url.as_str().to_owned()),
            w::event_types.eq(endpoint.event_types.to_names()),
            w::enabled.eq(endpoint.enabled),
            w::next_attempt_at.eq(endpoint
                .delivery
                .next_attempt_at
                .map($crate::webhooks::micros)),
            w::failing_since.eq(endpoint
                .delivery
                .failing_since
                .map($crate::webhooks::micros)),
            w::failures.eq($crate::webhooks::failures(endpoint.delivery.failures)),
        ))
    }};
}
pub(crate) use update_settings_query;

/// Deletes one endpoint of a business.
macro_rules! delete_query {
    ($business:expr, $id:expr) => {
        diesel::delete($crate::webhooks::one_endpoint!($business, $id))
    };
}
pub(crate) use delete_query;

/// Endpoints of any business worth leasing at `$now`: enabled, due, not leased (or the
/// lease expired), with events after their position (an inner join: a business
/// without a counter row has no events). The least recently attempted first, so that
/// when there are more than `$limit`, every endpoint gets its turn.
macro_rules! due_query {
    ($now:expr, $limit:expr) => {{
        use diesel::{BoolExpressionMethods, ExpressionMethods, JoinOnDsl, QueryDsl};
        use $crate::schema::{business_event_counters as n, webhook_endpoints as w};
        let now: $crate::schema::Micros = $now;
        w::table
            .inner_join(n::table.on(n::business_id.eq(w::business_id)))
            // The bare column (no bound `true`): a generic plan still matches the
            // partial index `WHERE enabled`.
            .filter(w::enabled)
            .filter(w::next_attempt_at.is_null().or(w::next_attempt_at.le(now)))
            .filter(w::lease_until.is_null().or(w::lease_until.le(now)))
            .filter(w::delivered_through.lt(n::last_event_id))
            .order_by((
                w::last_attempt_at.is_not_null(),
                w::last_attempt_at,
                w::business_id,
                w::id,
            ))
            .limit($limit)
            .select((w::business_id, w::id))
    }};
}
pub(crate) use due_query;

/// Leases one endpoint to `$owner` until `$until` if, as it stands now, it is enabled,
/// due and not leased (or the lease expired): the check and the lease are one
/// single-row UPDATE.
macro_rules! lease_query {
    ($business:expr, $id:expr, $owner:expr, $now:expr, $until:expr) => {{
        use diesel::{BoolExpressionMethods, ExpressionMethods, QueryDsl};
        use $crate::schema::webhook_endpoints as w;
        let now: $crate::schema::Micros = $now;
        diesel::update(
            $crate::webhooks::one_endpoint!($business, $id)
                .filter(w::enabled)
                .filter(w::next_attempt_at.is_null().or(w::next_attempt_at.le(now)))
                .filter(w::lease_until.is_null().or(w::lease_until.le(now))),
        )
        .set((
            w::lease_owner.eq(Some($owner)),
            w::lease_until.eq(Some($until)),
        ))
    }};
}
pub(crate) use lease_query;

/// Stores a delivery state if `$owner` holds the lease (expired or not: if nobody took
/// it over, the owner's work is still the latest); `$disable` turns the endpoint off;
/// `$until` is the renewed lease's end, `None` releases it. The settings a `PATCH`
/// changes are left alone.
macro_rules! save_query {
    ($business:expr, $id:expr, $owner:expr, $state:expr, $disable:expr, $until:expr) => {{
        use diesel::{BoolExpressionMethods, ExpressionMethods, IntoSql, QueryDsl};
        use $crate::schema::webhook_endpoints as w;
        use $crate::webhooks::micros;
        let state: &pingback_domain::DeliveryState = $state;
        let owner: $crate::schema::DbUuid = $owner;
        let until: Option<$crate::schema::Micros> = $until;
        let disable: bool = $disable;
        diesel::update(
            $crate::webhooks::one_endpoint!($business, $id).filter(w::lease_owner.eq(owner)),
        )
        .set((
            w::delivered_through.eq(state.delivered_through),
            w::last_attempt_at.eq(state.last_attempt_at.map(micros)),
            w::last_error.eq(state.last_error.clone()),
            w::next_attempt_at.eq(state.next_attempt_at.map(micros)),
            w::failing_since.eq(state.failing_since.map(micros)),
            w::failures.eq($crate::webhooks::failures(state.failures)),
            w::enabled.eq(w::enabled.and((!disable).into_sql::<diesel::sql_types::Bool>())),
            w::lease_owner.eq(until.map(|_| owner)),
            w::lease_until.eq(until),
        ))
    }};
}
pub(crate) use save_query;
