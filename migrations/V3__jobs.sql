-- Background jobs: the hold sweeper and the archiver.

-- Finished stays leave the hot table after a retention period. The archive keeps the
-- whole row and when it was moved; it has no indexes beyond its key, since it is read
-- only for audits and history.
CREATE TABLE reservations_archive (
    LIKE reservations INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    archived_at timestamptz NOT NULL,
    PRIMARY KEY (reservation_id)
);

-- The archiver's work list: stays by departure.
CREATE INDEX reservations_by_check_out ON reservations (check_out);

-- Expires the pending reservations whose hold ended at or before p_now, at most p_limit of
-- them, and gives their nights back, in one statement. Rows another sweeper holds are
-- skipped (SKIP LOCKED), and only 'pending' rows are touched, so each hold expires exactly
-- once however many sweepers run. Several holds may end on one night: their rooms are
-- summed per night before the inventory update, which may touch each row only once.
CREATE FUNCTION expire_holds(p_now timestamptz, p_limit integer)
RETURNS SETOF reservations
LANGUAGE sql AS $$
    WITH due AS (
        SELECT r.reservation_id
        FROM reservations r
        WHERE r.status = 'pending' AND r.hold_expires_at <= p_now
        ORDER BY r.hold_expires_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), ended AS (
        UPDATE reservations r
        SET status = 'expired', updated_at = p_now
        FROM due
        WHERE r.reservation_id = due.reservation_id AND r.status = 'pending'
        RETURNING r.*
    ), per_night AS (
        SELECT e.hotel_id, e.room_type_id, n::date AS night, sum(e.rooms) AS rooms
        FROM ended e, generate_series(e.check_in, e.check_out - 1, interval '1 day') AS n
        GROUP BY 1, 2, 3
    ), given_back AS (
        UPDATE room_type_inventory i
        SET total_reserved = i.total_reserved - p.rooms
        FROM per_night p
        WHERE i.hotel_id = p.hotel_id AND i.room_type_id = p.room_type_id AND i.date = p.night
        RETURNING 1
    )
    SELECT e.* FROM ended e WHERE (SELECT count(*) FROM given_back) >= 0;
$$;
