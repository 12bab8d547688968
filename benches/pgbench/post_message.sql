\set n random(1, :conversations)
\set m random(1, :bodies)
\set one 1
SELECT w.business_id AS bid, w.id AS cid, 'agent' AS stype, b.sender_id AS sender, b.content AS content, clock_timestamp() AS at, (lpad(to_hex(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') || '7' || substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid AS mid FROM write_bench_ids w, write_bench_bodies b WHERE w.n = :n AND b.n = :m \gset
BEGIN;
SELECT "conversations"."id" FROM "conversations" WHERE (("conversations"."business_id" = :bid) AND ("conversations"."id" = :cid)) LIMIT :one FOR UPDATE;
SELECT "conversations"."business_id", "conversations"."id", "conversations"."customer_id", "conversations"."assignee_id", "conversations"."status", "conversations"."channel_type", "conversations"."channel_id", "conversations"."created_at", "conversations"."updated_at", "conversations"."first_response_at", "conversations"."revision", "customers"."revision", "conversations"."message_count", "conversations"."last_message_id" FROM ("conversations" LEFT OUTER JOIN "customers" ON (("customers"."business_id" = "conversations"."business_id") AND ("customers"."id" = "conversations"."customer_id"))) WHERE (("conversations"."business_id" = :bid) AND ("conversations"."id" = :cid)) LIMIT :one \gset h_
SELECT "messages"."created_at" FROM "messages" WHERE (("messages"."business_id" = :bid) AND ("messages"."conversation_id" = :cid)) ORDER BY "messages"."created_at" DESC, "messages"."id" DESC LIMIT :one;
\set count :h_message_count + 1
INSERT INTO "messages" ("business_id", "id", "conversation_id", "sender_type", "sender_id", "content", "created_at") VALUES (:bid, :mid, :cid, :stype, :sender, :content, :at);
UPDATE "conversations" SET "status" = :h_status, "assignee_id" = :h_assignee_id, "updated_at" = :at, "first_response_at" = :h_first_response_at, "message_count" = :count, "last_message_id" = :mid, "revision" = "revision" + 1 WHERE "business_id" = :bid AND "id" = :cid;
COMMIT;
