BEGIN ISOLATION LEVEL REPEATABLE READ;
INSERT INTO business_event_counters (business_id, last_event_id) VALUES (:bid, 0) ON CONFLICT (business_id) DO UPDATE SET last_event_id = business_event_counters.last_event_id + excluded.last_event_id RETURNING last_event_id AS last \gset
SELECT coalesce(max(seq), 0) AS through, count(*) AS n FROM (SELECT p.seq FROM pending_events p WHERE p.business_id = :bid ORDER BY p.seq LIMIT 1000) s \gset
INSERT INTO events (business_id, id, type, occurred_at, conversation_id, data) SELECT business_id, :last + row_number() OVER (PARTITION BY business_id ORDER BY seq), type, occurred_at, conversation_id, data FROM pending_events WHERE business_id = :bid AND seq <= :through;
DELETE FROM pending_events WHERE business_id = :bid AND seq <= :through;
INSERT INTO business_event_counters (business_id, last_event_id) VALUES (:bid, :n) ON CONFLICT (business_id) DO UPDATE SET last_event_id = business_event_counters.last_event_id + excluded.last_event_id RETURNING last_event_id;
SELECT pg_notify('pingback_events', :bid);
COMMIT;
