-- Bumped by every import that writes the row: with the customer's, the validator of
-- a conversation's representation (its ETag), readable without loading messages.
ALTER TABLE conversations ADD COLUMN revision bigint NOT NULL DEFAULT 1;
ALTER TABLE customers ADD COLUMN revision bigint NOT NULL DEFAULT 1;
