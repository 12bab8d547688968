-- Webhook endpoints; see migrations/postgres for the reasons.
CREATE TABLE webhook_endpoints (
    business_id       BLOB NOT NULL CHECK (length(business_id) = 16),
    id                BLOB NOT NULL CHECK (length(id) = 16),
    url               TEXT NOT NULL CHECK (url <> '' AND length(CAST(url AS BLOB)) <= 2048),
    event_types       TEXT NOT NULL CHECK (event_types <> ''),
    enabled           INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    created_at        INTEGER NOT NULL,
    secret_seed       BLOB NOT NULL CHECK (length(secret_seed) = 32),
    delivered_through INTEGER NOT NULL DEFAULT 0 CHECK (delivered_through >= 0),
    last_attempt_at   INTEGER,
    last_error        TEXT,
    next_attempt_at   INTEGER,
    failing_since     INTEGER,
    failures          INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
    lease_owner       BLOB CHECK (length(lease_owner) = 16),
    lease_until       INTEGER,
    PRIMARY KEY (business_id, id)
) STRICT;
CREATE INDEX webhook_endpoints_due_idx ON webhook_endpoints (next_attempt_at) WHERE enabled;
