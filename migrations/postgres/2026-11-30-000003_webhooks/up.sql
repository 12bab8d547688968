-- Webhook endpoints: where a business's events are POSTed, and how far delivery has
-- come. Each endpoint is one more reader of its business's event log: its position
-- (`delivered_through`, an event id) is stored beside it, together with the retry
-- state and the lease a delivering process holds on it. Keyed by (business_id, id)
-- like every per-business table, so Citus distributes it with the business's other
-- rows and every statement on one endpoint is routed to one shard.
--
-- `secret_seed` is not the signing secret: the secret is derived from it with the
-- server's key, so this table alone cannot sign.
--
-- Delivery updates a row after every acknowledged event (position, attempt time,
-- lease renewal). Those columns are not indexed and the fill factor leaves room on
-- each page, so such updates stay HOT (no index entry per update).
CREATE TABLE webhook_endpoints (
    business_id       uuid NOT NULL,
    id                uuid NOT NULL,
    url               text NOT NULL CHECK (url <> '' AND octet_length(url) <= 2048),
    -- Space-separated event type names, at least one.
    event_types       text NOT NULL CHECK (event_types <> ''),
    enabled           boolean NOT NULL,
    created_at        timestamptz NOT NULL,
    secret_seed       bytea NOT NULL CHECK (octet_length(secret_seed) = 32),
    delivered_through bigint NOT NULL DEFAULT 0 CHECK (delivered_through >= 0),
    last_attempt_at   timestamptz,
    last_error        text,
    next_attempt_at   timestamptz,
    failing_since     timestamptz,
    failures          integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    -- The process delivering the endpoint now, until when (both NULL when nobody).
    lease_owner       uuid,
    lease_until       timestamptz,
    PRIMARY KEY (business_id, id)
) WITH (fillfactor = 80);
-- Looking for due endpoints skips the disabled ones (those given up on may pile up).
CREATE INDEX webhook_endpoints_due_idx ON webhook_endpoints (next_attempt_at) WHERE enabled;
