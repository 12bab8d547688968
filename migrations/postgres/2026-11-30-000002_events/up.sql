-- The business event log. Each business's events are numbered 1, 2, 3, … in commit
-- order without gaps: a write takes its business's counter row (an upsert that bumps
-- `last_event_id`) as the last step of its transaction and holds that row lock until
-- it commits, so the next writer of the same business gets the next ids only after
-- this one is visible. A reader that has seen id N has seen every event up to N, and a
-- rolled-back write gives its ids back (no gap).
CREATE TABLE business_event_counters (
    business_id   uuid PRIMARY KEY,
    last_event_id bigint NOT NULL CHECK (last_event_id >= 0)
);

CREATE TABLE events (
    business_id     uuid NOT NULL,
    id              bigint NOT NULL CHECK (id > 0),
    type            text NOT NULL CHECK (type IN ('conversation.created',
        'conversation.updated', 'conversation.imported', 'message.created')),
    occurred_at     timestamptz NOT NULL,
    conversation_id uuid NOT NULL,
    -- The event's `data` exactly as readers get it (JSON text).
    data            text NOT NULL,
    PRIMARY KEY (business_id, id)
);
-- Retention: pruning finds old events without scanning the log.
CREATE INDEX events_occurred_idx ON events (occurred_at);
