-- The schema of pingback-handwritten (src/handwritten.rs), as a user would design it
-- for this endpoint, loaded by `make bench` (scripts/bench.sh) from pingback's tables
-- after `pingback generate`: the businesses of the read scenario (bench_ids).
--
-- Conversations carry what the endpoint needs (their revision too: the ETag);
-- customers; messages carry their attachments as a JSONB array, in position order
-- ('[]' when none). Keys are the ids alone; the tenant is checked on the conversation.

DROP SCHEMA IF EXISTS handwritten CASCADE;
CREATE SCHEMA handwritten;

CREATE TABLE handwritten.customers (
    id          uuid PRIMARY KEY,
    business_id uuid NOT NULL,
    name        text,
    email       text,
    phone       text,
    external_id text,
    created_at  timestamptz NOT NULL,
    revision    bigint NOT NULL DEFAULT 1
);

CREATE TABLE handwritten.conversations (
    id                uuid PRIMARY KEY,
    business_id       uuid NOT NULL,
    customer_id       uuid REFERENCES handwritten.customers (id),
    assignee_id       uuid,
    status            text NOT NULL,
    channel_type      text NOT NULL,
    channel_id        uuid,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    first_response_at timestamptz,
    revision          bigint NOT NULL DEFAULT 1
);

CREATE TABLE handwritten.messages (
    id              uuid PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES handwritten.conversations (id) ON DELETE CASCADE,
    sender_type     text NOT NULL,
    sender_id       uuid,
    content         text NOT NULL,
    attachments     jsonb NOT NULL DEFAULT '[]',
    created_at      timestamptz NOT NULL
);
-- The history: one range scan in order.
CREATE INDEX messages_history_idx ON handwritten.messages (conversation_id, created_at, id);

-- The data: pingback's rows of the read scenario's businesses.
INSERT INTO handwritten.customers (id, business_id, name, email, phone, external_id, created_at, revision)
SELECT cu.id, cu.business_id, cu.name, cu.email, cu.phone, cu.external_id, cu.created_at, cu.revision
FROM customers cu
WHERE cu.business_id IN (SELECT DISTINCT business_id FROM bench_ids);

INSERT INTO handwritten.conversations (id, business_id, customer_id, assignee_id, status, channel_type,
                                       channel_id, created_at, updated_at, first_response_at, revision)
SELECT c.id, c.business_id, c.customer_id, c.assignee_id, c.status, c.channel_type,
       c.channel_id, c.created_at, c.updated_at, c.first_response_at, c.revision
FROM conversations c
WHERE c.business_id IN (SELECT DISTINCT business_id FROM bench_ids);

INSERT INTO handwritten.messages (id, conversation_id, sender_type, sender_id, content, attachments, created_at)
SELECT m.id, m.conversation_id, m.sender_type, m.sender_id, m.content,
       coalesce((SELECT jsonb_agg(jsonb_build_object('id', a.id, 'file_name', a.file_name,
                                                     'content_type', a.content_type,
                                                     'byte_size', a.byte_size, 'url', a.url)
                                  ORDER BY a.position)
                 FROM attachments a
                 WHERE a.business_id = m.business_id AND a.message_id = m.id), '[]'),
       m.created_at
FROM messages m
WHERE m.business_id IN (SELECT DISTINCT business_id FROM bench_ids)
ORDER BY m.conversation_id, m.created_at, m.id;
