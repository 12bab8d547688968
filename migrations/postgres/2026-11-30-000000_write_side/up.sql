-- The write side. A POST with an Idempotency-Key records its answer here in the
-- write's own transaction, so a retry replays it and never writes twice. Keyed by
-- business first like every table (one shard per business on Citus).
CREATE TABLE idempotency_keys (
    business_id uuid NOT NULL,
    key         text NOT NULL CHECK (octet_length(key) BETWEEN 1 AND 255),
    -- SHA-256 of the request (method, path, body): the same key with another request
    -- is refused.
    fingerprint bytea NOT NULL,
    -- The answer; 0 only inside the claiming transaction, never committed.
    status      integer NOT NULL,
    location    text,
    etag        text,
    body        bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (business_id, key)
);
-- Pruning expired records.
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- A described customer is reused by its external id within the business.
CREATE INDEX customers_external_id_idx ON customers (business_id, external_id)
    WHERE external_id IS NOT NULL;
