-- Events a write has committed but that have no id yet. A write's transaction stages
-- its events here instead of numbering them itself; right after it commits, the
-- writing process numbers every pending event of the business in one short
-- transaction of its own (see crates/persistence/src/sequencer.rs): it locks the
-- business's counter row, moves the pending rows into `events` with the next ids (in
-- `seq` order) and raises the counter. Writers of one business therefore never wait on
-- each other for the counter, and the ids are still 1, 2, 3, … without gaps: a number
-- is given only to an event whose write has committed, by one numbering transaction
-- at a time per business, each starting after the previous one committed.
--
-- `seq` orders the events of one numbering: two writes of one conversation are
-- serialised by its row lock, and the later one takes its `seq` only after the earlier
-- one committed, so a conversation's events keep their order.
CREATE TABLE pending_events (
    business_id     uuid NOT NULL,
    seq             bigserial NOT NULL,
    type            text NOT NULL CHECK (type IN ('conversation.created',
        'conversation.updated', 'conversation.imported', 'message.created')),
    occurred_at     timestamptz NOT NULL,
    conversation_id uuid NOT NULL,
    data            text NOT NULL,
    PRIMARY KEY (business_id, seq)
);

-- A queue: every row is deleted moments after it is inserted. Left to the default
-- (vacuum after 20 % of the table is dead), the dead rows and index entries pile up
-- under a busy business and every numbering wades through them; vacuum it after every
-- thousand dead rows instead, without throttling (it is always small).
ALTER TABLE pending_events SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 1000);
