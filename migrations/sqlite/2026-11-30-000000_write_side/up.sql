-- The write side; see migrations/postgres for the reasons.
CREATE TABLE idempotency_keys (
    business_id BLOB NOT NULL CHECK (length(business_id) = 16),
    key         TEXT NOT NULL CHECK (length(CAST(key AS BLOB)) BETWEEN 1 AND 255),
    fingerprint BLOB NOT NULL,
    status      INTEGER NOT NULL,
    location    TEXT,
    etag        TEXT,
    body        BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (business_id, key)
) STRICT;
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

CREATE INDEX customers_external_id_idx ON customers (business_id, external_id)
    WHERE external_id IS NOT NULL;
