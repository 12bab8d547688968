DROP INDEX customers_external_id_idx;
DROP TABLE idempotency_keys;
