-- The same logical schema as migrations/postgres, for the embedded adapter.
-- UUIDs are 16-byte BLOBs and timestamps INTEGER unix microseconds: both compare
-- exactly as PostgreSQL's uuid and timestamptz do, so ORDER BY (created_at, id) gives
-- the same history order on both backends. STRICT makes SQLite enforce the types.

CREATE TABLE customers (
    business_id BLOB NOT NULL CHECK (length(business_id) = 16),
    id          BLOB NOT NULL CHECK (length(id) = 16),
    name        TEXT,
    email       TEXT,
    phone       TEXT,
    external_id TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (business_id, id)
) STRICT;
CREATE INDEX customers_id_idx ON customers (id);

CREATE TABLE conversations (
    business_id       BLOB NOT NULL CHECK (length(business_id) = 16),
    id                BLOB NOT NULL CHECK (length(id) = 16),
    customer_id       BLOB CHECK (length(customer_id) = 16),
    assignee_id       BLOB CHECK (length(assignee_id) = 16),
    status            TEXT NOT NULL
        CHECK (status IN ('open', 'pending', 'resolved', 'closed')),
    channel_type      TEXT NOT NULL
        CHECK (channel_type <> '' AND length(CAST(channel_type AS BLOB)) <= 64),
    channel_id        BLOB CHECK (length(channel_id) = 16),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    first_response_at INTEGER,
    PRIMARY KEY (business_id, id),
    FOREIGN KEY (business_id, customer_id) REFERENCES customers (business_id, id)
) STRICT;
CREATE INDEX conversations_id_idx ON conversations (id);
CREATE INDEX conversations_customer_idx ON conversations (business_id, customer_id);

CREATE TABLE messages (
    business_id     BLOB NOT NULL CHECK (length(business_id) = 16),
    id              BLOB NOT NULL CHECK (length(id) = 16),
    conversation_id BLOB NOT NULL CHECK (length(conversation_id) = 16),
    sender_type     TEXT NOT NULL CHECK (sender_type IN ('customer', 'agent')),
    sender_id       BLOB CHECK (length(sender_id) = 16),
    content         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (business_id, id),
    FOREIGN KEY (business_id, conversation_id)
        REFERENCES conversations (business_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX messages_history_idx ON messages (business_id, conversation_id, created_at, id);
CREATE INDEX messages_id_idx ON messages (id);

CREATE TABLE attachments (
    business_id     BLOB NOT NULL CHECK (length(business_id) = 16),
    id              BLOB NOT NULL CHECK (length(id) = 16),
    conversation_id BLOB NOT NULL CHECK (length(conversation_id) = 16),
    message_id      BLOB NOT NULL CHECK (length(message_id) = 16),
    position        INTEGER NOT NULL CHECK (position >= 0),
    file_name       TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    byte_size       INTEGER NOT NULL CHECK (byte_size >= 0),
    url             TEXT NOT NULL,
    PRIMARY KEY (business_id, id),
    UNIQUE (business_id, message_id, position),
    FOREIGN KEY (business_id, message_id)
        REFERENCES messages (business_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX attachments_conversation_idx ON attachments (business_id, conversation_id);
CREATE INDEX attachments_id_idx ON attachments (id);
