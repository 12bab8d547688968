-- The business event log; see migrations/postgres for the reasons. SQLite has one
-- writer at a time, so commit order is the counter's order by construction.
CREATE TABLE business_event_counters (
    business_id   BLOB PRIMARY KEY CHECK (length(business_id) = 16),
    last_event_id INTEGER NOT NULL CHECK (last_event_id >= 0)
) STRICT;

CREATE TABLE events (
    business_id     BLOB NOT NULL CHECK (length(business_id) = 16),
    id              INTEGER NOT NULL CHECK (id > 0),
    type            TEXT NOT NULL CHECK (type IN ('conversation.created',
        'conversation.updated', 'conversation.imported', 'message.created')),
    occurred_at     INTEGER NOT NULL,
    conversation_id BLOB NOT NULL CHECK (length(conversation_id) = 16),
    data            TEXT NOT NULL,
    PRIMARY KEY (business_id, id)
) STRICT;
CREATE INDEX events_occurred_idx ON events (occurred_at);
