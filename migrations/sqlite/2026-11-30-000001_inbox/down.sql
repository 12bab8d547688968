CREATE INDEX conversations_customer_idx ON conversations (business_id, customer_id);
DROP INDEX conversations_customer_inbox_idx;
DROP INDEX conversations_channel_inbox_idx;
DROP INDEX conversations_unassigned_inbox_idx;
DROP INDEX conversations_assignee_inbox_idx;
DROP INDEX conversations_status_inbox_idx;
DROP INDEX conversations_inbox_idx;
ALTER TABLE conversations DROP COLUMN last_message_id;
ALTER TABLE conversations DROP COLUMN message_count;
