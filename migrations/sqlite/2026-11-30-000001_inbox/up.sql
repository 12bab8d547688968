-- The inbox; see migrations/postgres for the reasons.
ALTER TABLE conversations ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0
    CHECK (message_count >= 0);
ALTER TABLE conversations ADD COLUMN last_message_id BLOB CHECK (length(last_message_id) = 16);
UPDATE conversations SET
    message_count = (SELECT count(*) FROM messages m
                     WHERE m.business_id = conversations.business_id
                       AND m.conversation_id = conversations.id),
    last_message_id = (SELECT m.id FROM messages m
                       WHERE m.business_id = conversations.business_id
                         AND m.conversation_id = conversations.id
                       ORDER BY m.created_at DESC, m.id DESC LIMIT 1);

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
CREATE INDEX conversations_customer_inbox_idx
    ON conversations (business_id, customer_id, updated_at, id);
DROP INDEX conversations_customer_idx;
