BEGIN;
INSERT INTO business_event_counters (business_id, last_event_id) VALUES (:bid, 0) ON CONFLICT (business_id) DO UPDATE SET last_event_id = business_event_counters.last_event_id + excluded.last_event_id RETURNING last_event_id AS last \gset
WITH taken AS (DELETE FROM pending_events WHERE business_id = :bid AND seq IN (SELECT p.seq FROM pending_events p WHERE p.business_id = :bid ORDER BY p.seq LIMIT 1000) RETURNING seq, type, occurred_at, conversation_id, data), numbered AS (INSERT INTO events (business_id, id, type, occurred_at, conversation_id, data) SELECT :bid, :last + row_number() OVER (ORDER BY seq), type, occurred_at, conversation_id, data FROM taken RETURNING 1) SELECT count(*) AS n FROM numbered \gset
INSERT INTO business_event_counters (business_id, last_event_id) VALUES (:bid, :n) ON CONFLICT (business_id) DO UPDATE SET last_event_id = business_event_counters.last_event_id + excluded.last_event_id RETURNING last_event_id;
SELECT pg_notify('pingback_events', :bid);
COMMIT;
