-- The night journal: which nights changed since the reconciler last looked, so a pass costs
-- in proportion to the change, not to the inventory on sale (see jobs::reconciler).
--
-- Triggers write it, in the same transaction as the change itself, whatever statement made
-- the change: a booking, a cancel, an expiry, an inventory or rate write, a ratio change,
-- a restrictions write. There is no change without its entry, and an entry whose change
-- rolled back vanishes with it. One row per statement and room type, spanning the first
-- to the last night the statement touched (a stay, a PUT's range): a statement touching
-- scattered nights (the hold sweeper's batch) spans the nights between too, which costs a
-- pass a few extra nights, never a missed one.
--
-- Rows are only ever inserted and deleted (the reconciler takes the oldest with DELETE ...
-- RETURNING, skipping those another pass holds), so writers never wait on each other or
-- on the reconciler. A pass takes only entries some seconds old (see jobs::reconciler):
-- a Redis write based on a Postgres read from before the change lands by then.
CREATE TABLE night_journal (
    entry        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hotel_id     bigint      NOT NULL,
    room_type_id bigint      NOT NULL,
    first_night  date        NOT NULL,
    last_night   date        NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- A queue: rows come and go all day, so vacuum it by row count, not by its size.
ALTER TABLE night_journal SET (autovacuum_vacuum_scale_factor = 0,
                               autovacuum_vacuum_threshold = 10000);

CREATE FUNCTION journal_inventory_nights() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO night_journal (hotel_id, room_type_id, first_night, last_night)
    SELECT hotel_id, room_type_id, min(date), max(date)
    FROM changed_nights
    GROUP BY hotel_id, room_type_id;
    RETURN NULL;
END
$$;

-- A restriction on a date also changes the night before it: that night's stays check out
-- on the date (closed to departure), so both are journaled.
CREATE FUNCTION journal_restricted_nights() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO night_journal (hotel_id, room_type_id, first_night, last_night)
    SELECT hotel_id, room_type_id, min(date) - 1, max(date)
    FROM changed_nights
    GROUP BY hotel_id, room_type_id;
    RETURN NULL;
END
$$;

-- A trigger with a transition table serves one event, hence one per event.
CREATE TRIGGER inventory_inserted AFTER INSERT ON room_type_inventory
    REFERENCING NEW TABLE AS changed_nights
    FOR EACH STATEMENT EXECUTE FUNCTION journal_inventory_nights();
CREATE TRIGGER inventory_updated AFTER UPDATE ON room_type_inventory
    REFERENCING NEW TABLE AS changed_nights
    FOR EACH STATEMENT EXECUTE FUNCTION journal_inventory_nights();
CREATE TRIGGER restrictions_inserted AFTER INSERT ON room_type_restrictions
    REFERENCING NEW TABLE AS changed_nights
    FOR EACH STATEMENT EXECUTE FUNCTION journal_restricted_nights();
CREATE TRIGGER restrictions_updated AFTER UPDATE ON room_type_restrictions
    REFERENCING NEW TABLE AS changed_nights
    FOR EACH STATEMENT EXECUTE FUNCTION journal_restricted_nights();
CREATE TRIGGER restrictions_deleted AFTER DELETE ON room_type_restrictions
    REFERENCING OLD TABLE AS changed_nights
    FOR EACH STATEMENT EXECUTE FUNCTION journal_restricted_nights();

-- Where the reconciler's full round has got to on this database: every night is compared
-- once per round (INNKEEPER_RECONCILE_FULL_PERIOD_SECS), a slice of hotels per pass, so
-- drift nobody touched (a Redis that lost writes in a failover) is still found. Kept here
-- rather than in the process so the round carries on when the job moves to another
-- instance.
CREATE TABLE reconcile_round (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    next_hotel_id bigint  NOT NULL DEFAULT 0
);
INSERT INTO reconcile_round DEFAULT VALUES;
