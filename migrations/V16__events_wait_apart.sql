-- Events still to be fanned out wait in a table of their own, and fanning one out deletes
-- its entry there. Until now a flag on the event row said so: setting it rewrote the
-- whole event (its reservation's body with it) and three of its indexes, once for every
-- booking, and that rewrite was a fifth of what the webhook job asked of PostgreSQL in
-- the spread scenario. An entry is small and deleting it writes no new row.
--
-- An instance from before this migration names the flag when it fans out: its webhook
-- step fails, and delivery from the shards whose lease it holds waits, until it is
-- replaced. Nothing is lost meanwhile.

-- No event may commit between the copy of those still waiting and the trigger that queues
-- new ones: bookings wait for this migration (it reads every event once).
LOCK TABLE events IN EXCLUSIVE MODE;

DROP INDEX events_to_fan_out;
DROP INDEX events_of_reservation_to_fan_out;

CREATE TABLE events_to_fan_out (
    seq            bigint PRIMARY KEY,
    reservation_id uuid   NOT NULL
);
-- Whether a reservation has an earlier event still to be fanned out: its later events
-- wait for it, so a receiver hears them in order.
CREATE INDEX events_to_fan_out_of_reservation ON events_to_fan_out (reservation_id, seq);

INSERT INTO events_to_fan_out (seq, reservation_id)
SELECT seq, reservation_id FROM events WHERE NOT fanned_out;

ALTER TABLE events DROP COLUMN fanned_out;

-- Every statement that writes events, whichever function it runs in, queues them.
CREATE FUNCTION events_wait_to_fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events_to_fan_out (seq, reservation_id)
    SELECT seq, reservation_id FROM new_events;
    RETURN NULL;
END $$;

CREATE TRIGGER events_wait_to_fan_out AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION events_wait_to_fan_out();

-- A delivery is unique per event and endpoint, now led by the event: deleting an old
-- event (pruning) finds its deliveries through this index, where the one led by the
-- endpoint made every cascaded delete read the whole table.
ALTER TABLE webhook_deliveries
    DROP CONSTRAINT webhook_deliveries_endpoint_id_event_id_key,
    ADD CONSTRAINT webhook_deliveries_once UNIQUE (event_id, endpoint_id);
