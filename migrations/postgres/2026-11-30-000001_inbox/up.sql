-- The inbox lists conversations with their message count and latest message. Both are
-- kept on the conversation row by every write and import, in the same transaction,
-- so a page never counts messages.
ALTER TABLE conversations ADD COLUMN message_count bigint NOT NULL DEFAULT 0
    CHECK (message_count >= 0);
ALTER TABLE conversations ADD COLUMN last_message_id uuid;
UPDATE conversations c SET
    message_count = (SELECT count(*) FROM messages m
                     WHERE m.business_id = c.business_id AND m.conversation_id = c.id),
    last_message_id = (SELECT m.id FROM messages m
                       WHERE m.business_id = c.business_id AND m.conversation_id = c.id
                       ORDER BY m.created_at DESC, m.id DESC LIMIT 1);

-- One index per filter, each with the inbox order after it, all keyed by business
-- first (one shard per business on Citus): a page is a range scan that starts at its
-- cursor, so it costs the same at any depth.
CREATE INDEX conversations_inbox_idx ON conversations (business_id, updated_at, id);
CREATE INDEX conversations_status_inbox_idx
    ON conversations (business_id, status, updated_at, id);
CREATE INDEX conversations_assignee_inbox_idx
    ON conversations (business_id, assignee_id, updated_at, id);
-- The unassigned queue: `assignee_id IS NULL` does not pin the column above, so the
-- queue has an index of its own.
CREATE INDEX conversations_unassigned_inbox_idx
    ON conversations (business_id, updated_at, id) WHERE assignee_id IS NULL;
CREATE INDEX conversations_channel_inbox_idx
    ON conversations (business_id, channel_type, updated_at, id);
-- Also backs the foreign key to customers (replaces its narrower index).
CREATE INDEX conversations_customer_inbox_idx
    ON conversations (business_id, customer_id, updated_at, id);
DROP INDEX conversations_customer_idx;
