-- Pingback's schema. Every table is keyed by (business_id, id) and every foreign key
-- carries business_id, so the tables can be distributed by business (Citus) with all
-- of a business's rows co-located and every join local to one shard.
--
-- The plain `id` indexes serve the import's conflict checks, which must find an id
-- in any business; reads always filter by business_id and id.

CREATE TABLE customers (
    business_id uuid NOT NULL,
    id          uuid NOT NULL,
    name        text,
    email       text,
    phone       text,
    external_id text,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (business_id, id)
);
CREATE INDEX customers_id_idx ON customers (id);

CREATE TABLE conversations (
    business_id       uuid NOT NULL,
    id                uuid NOT NULL,
    customer_id       uuid,
    assignee_id       uuid,
    status            text NOT NULL
        CHECK (status IN ('open', 'pending', 'resolved', 'closed')),
    channel_type      text NOT NULL
        CHECK (channel_type <> '' AND octet_length(channel_type) <= 64),
    channel_id        uuid,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    first_response_at timestamptz,
    PRIMARY KEY (business_id, id),
    FOREIGN KEY (business_id, customer_id) REFERENCES customers (business_id, id)
);
CREATE INDEX conversations_id_idx ON conversations (id);
-- Backs the foreign key to customers.
CREATE INDEX conversations_customer_idx ON conversations (business_id, customer_id);

CREATE TABLE messages (
    business_id     uuid NOT NULL,
    id              uuid NOT NULL,
    conversation_id uuid NOT NULL,
    sender_type     text NOT NULL CHECK (sender_type IN ('customer', 'agent')),
    sender_id       uuid,
    content         text NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (business_id, id),
    FOREIGN KEY (business_id, conversation_id)
        REFERENCES conversations (business_id, id) ON DELETE CASCADE
);
-- The history read: one range scan in history order.
CREATE INDEX messages_history_idx ON messages (business_id, conversation_id, created_at, id);
CREATE INDEX messages_id_idx ON messages (id);

CREATE TABLE attachments (
    business_id     uuid NOT NULL,
    id              uuid NOT NULL,
    conversation_id uuid NOT NULL,
    message_id      uuid NOT NULL,
    position        integer NOT NULL CHECK (position >= 0),
    file_name       text NOT NULL,
    content_type    text NOT NULL,
    byte_size       bigint NOT NULL CHECK (byte_size >= 0),
    url             text NOT NULL,
    PRIMARY KEY (business_id, id),
    -- Also the index the cascade from messages needs.
    UNIQUE (business_id, message_id, position),
    FOREIGN KEY (business_id, message_id)
        REFERENCES messages (business_id, id) ON DELETE CASCADE
);
CREATE INDEX attachments_conversation_idx ON attachments (business_id, conversation_id);
CREATE INDEX attachments_id_idx ON attachments (id);
