BEGIN;
INSERT INTO business_event_counters (business_id, last_event_id) VALUES (:bid, 0) ON CONFLICT (business_id) DO UPDATE SET last_event_id = business_event_counters.last_event_id + excluded.last_event_id RETURNING last_event_id AS last \gset
WITH taken AS (DELETE FROM pending_events WHERE business_id = :bid AND seq IN (SELECT p.seq FROM pending_events p WHERE p.business_id = :bid ORDER BY p.seq LIMIT 1000) RETURNING business_id, seq, type, occurred_at, conversation_id, data), moved AS (INSERT INTO events (business_id, id, type, occurred_at, conversation_id, data) SELECT business_id, :last + row_number() OVER (ORDER BY seq), type, occurred_at, conversation_id, data FROM taken) UPDATE business_event_counters SET last_event_id = last_event_id + (SELECT count(*) FROM taken) WHERE business_id = :bid RETURNING last_event_id AS now \gset
\set moved :now - :last
\if :moved > 0
SELECT pg_notify('pingback_events', :bid);
\endif
COMMIT;
