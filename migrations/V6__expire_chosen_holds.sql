-- The hold sweeper registers each expiry's give-back in Redis before Postgres ends the
-- stay, as a cancel does, so that a reconciler pass in between leaves its nights alone
-- (src/jobs/reconciler.rs). It must therefore know which holds it will expire before it
-- expires them: it reads the due holds first, registers them, and then expires exactly
-- those. expire_holds() now takes that list instead of choosing its own; the two-argument
-- form is dropped, so a process still calling it fails loudly instead of skipping the
-- registration.
DROP FUNCTION expire_holds(timestamptz, integer);

-- Expires those of p_ids that are still pending with a hold ended at or before p_now, and
-- gives their nights back, in one statement. Rows another sweeper holds are skipped
-- (SKIP LOCKED), and only 'pending' rows are touched, so each hold expires exactly once
-- however many sweepers run. Several holds may end on one night: their rooms are summed
-- per night before the inventory update, which may touch each row only once.
CREATE FUNCTION expire_holds(p_now timestamptz, p_ids uuid[])
RETURNS SETOF reservations
LANGUAGE sql AS $$
    WITH due AS (
        SELECT r.reservation_id
        FROM reservations r
        WHERE r.reservation_id = ANY (p_ids)
          AND r.status = 'pending' AND r.hold_expires_at <= p_now
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
