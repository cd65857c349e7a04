-- Stay restrictions: per night of a room type, the channel-manager controls a hotel shapes
-- stays with. A row exists only for dates where staff set something; no row, no
-- restriction. Dates need no inventory: a check-out date may be closed to departure
-- although no night is sold on it.
--
--   min_stay, max_stay     bind stays arriving on that night (nights of the stay)
--   closed_to_arrival      no stay starts on that night
--   closed_to_departure    no stay ends on that date (its check-out is that date)
--   stop_sell              no stay includes that night
CREATE TABLE room_type_restrictions (
    hotel_id            bigint  NOT NULL,
    room_type_id        bigint  NOT NULL,
    date                date    NOT NULL,
    min_stay            integer CHECK (min_stay BETWEEN 1 AND 1000),
    max_stay            integer CHECK (max_stay BETWEEN 1 AND 1000),
    closed_to_arrival   boolean NOT NULL DEFAULT false,
    closed_to_departure boolean NOT NULL DEFAULT false,
    stop_sell           boolean NOT NULL DEFAULT false,
    PRIMARY KEY (hotel_id, room_type_id, date),
    FOREIGN KEY (hotel_id, room_type_id) REFERENCES room_types ON DELETE CASCADE
);

-- The first restriction a stay breaks, in the one order every checker uses (lua/reserve.lua
-- and domain::restrictions too): stop-sell on a night of the stay (the earliest), then
-- closed to arrival, minimum stay and maximum stay on the arrival night, then closed to
-- departure on the check-out date. No row: the stay breaks none.
CREATE FUNCTION stay_restriction(
    p_hotel_id bigint, p_room_type_id bigint, p_check_in date, p_check_out date
) RETURNS TABLE (restriction text, night date)
LANGUAGE sql STABLE AS $$
    SELECT b.restriction, b.night FROM (
        SELECT 1 AS rank, 'stop_sell' AS restriction, r.date AS night
        FROM room_type_restrictions r
        WHERE r.hotel_id = p_hotel_id AND r.room_type_id = p_room_type_id
          AND r.date >= p_check_in AND r.date < p_check_out AND r.stop_sell
        UNION ALL
        SELECT CASE WHEN r.closed_to_arrival THEN 2
                    WHEN r.min_stay > p_check_out - p_check_in THEN 3
                    ELSE 4 END,
               CASE WHEN r.closed_to_arrival THEN 'closed_to_arrival'
                    WHEN r.min_stay > p_check_out - p_check_in THEN 'min_stay'
                    ELSE 'max_stay' END,
               r.date
        FROM room_type_restrictions r
        WHERE r.hotel_id = p_hotel_id AND r.room_type_id = p_room_type_id
          AND r.date = p_check_in
          AND (r.closed_to_arrival OR r.min_stay > p_check_out - p_check_in
               OR r.max_stay < p_check_out - p_check_in)
        UNION ALL
        SELECT 5, 'closed_to_departure', r.date
        FROM room_type_restrictions r
        WHERE r.hotel_id = p_hotel_id AND r.room_type_id = p_room_type_id
          AND r.date = p_check_out AND r.closed_to_departure
    ) b
    ORDER BY b.rank, b.night
    LIMIT 1
$$;

-- book_stay() checks restrictions (unless staff override them) before capacity, and again
-- under the nights' row locks; a breach answers 'restricted' with the restriction and its
-- night, or raises IK422 at the second check. The ten-argument function it replaces is
-- dropped, so a process still calling it fails loudly instead of skipping restrictions.
DROP FUNCTION book_stay(uuid, bigint, bigint, text, date, date, integer, timestamptz, timestamptz, integer);

CREATE FUNCTION book_stay(
    p_reservation_id  uuid,
    p_hotel_id        bigint,
    p_room_type_id    bigint,
    p_guest_id        text,
    p_check_in        date,
    p_check_out       date,
    p_rooms           integer,
    p_now             timestamptz,
    p_hold_expires_at timestamptz,
    p_max_holds       integer,
    p_override        boolean
) RETURNS TABLE (outcome text, total_cents bigint, currency text, restriction text,
                 restricted_night date)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_nights   integer := p_check_out - p_check_in;
    v_open     integer;
    v_rate_sum bigint;
    v_currency text;
    v_updated  integer;
    v_broken   record;
BEGIN
    IF EXISTS (SELECT 1 FROM reservations r WHERE r.reservation_id = p_reservation_id) THEN
        RETURN QUERY SELECT 'exists'::text, 0::bigint, ''::text, NULL::text, NULL::date;
        RETURN;
    END IF;

    -- Restrictions first, as reserve.lua checks them before capacity: a restricted stay is
    -- refused for that, sold out or not, and writes nothing.
    IF NOT p_override THEN
        SELECT * INTO v_broken FROM stay_restriction(p_hotel_id, p_room_type_id, p_check_in, p_check_out);
        IF FOUND THEN
            IF EXISTS (SELECT 1 FROM reservations r WHERE r.reservation_id = p_reservation_id) THEN
                RETURN QUERY SELECT 'exists'::text, 0::bigint, ''::text, NULL::text, NULL::date;
                RETURN;
            END IF;
            RETURN QUERY SELECT 'restricted'::text, 0::bigint, ''::text, v_broken.restriction,
                                v_broken.night;
            RETURN;
        END IF;
    END IF;

    -- Read-only first look: a sold-out attempt writes nothing and takes no lock.
    SELECT count(*), sum(i.rate_cents) INTO v_open, v_rate_sum
    FROM room_type_inventory i
    WHERE i.hotel_id = p_hotel_id AND i.room_type_id = p_room_type_id
      AND i.date >= p_check_in AND i.date < p_check_out
      AND i.total_reserved + p_rooms <= i.capacity;
    SELECT h.currency INTO v_currency FROM hotels h WHERE h.hotel_id = p_hotel_id;
    IF v_open < v_nights OR v_currency IS NULL THEN
        -- The same reservation id may have committed between the check above and this
        -- look, and be what filled the nights: then this attempt is its duplicate, not a
        -- refusal. This statement's snapshot is newer than the look's, so it sees it.
        IF EXISTS (SELECT 1 FROM reservations r WHERE r.reservation_id = p_reservation_id) THEN
            RETURN QUERY SELECT 'exists'::text, 0::bigint, ''::text, NULL::text, NULL::date;
            RETURN;
        END IF;
        RETURN QUERY SELECT 'sold_out'::text, 0::bigint, ''::text, NULL::text, NULL::date;
        RETURN;
    END IF;

    -- Fair holds: a guest may hold at most p_max_holds pending reservations (NULL: no
    -- limit, for staff). The lock on the guest, kept to the end of the transaction, makes
    -- the count and the insert below one step for that guest, in this process or another.
    IF p_max_holds IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('innkeeper.holds:' || p_guest_id, 0));
        IF (SELECT count(*) FROM reservations r
            WHERE r.guest_id = p_guest_id AND r.status = 'pending'
              AND r.hold_expires_at > p_now) >= p_max_holds THEN
            IF EXISTS (SELECT 1 FROM reservations r WHERE r.reservation_id = p_reservation_id) THEN
                RETURN QUERY SELECT 'exists'::text, 0::bigint, ''::text, NULL::text, NULL::date;
                RETURN;
            END IF;
            RETURN QUERY SELECT 'hold_limit'::text, 0::bigint, ''::text, NULL::text, NULL::date;
            RETURN;
        END IF;
    END IF;

    -- The primary key settles a concurrent duplicate: the second insert waits for the
    -- first transaction and then inserts nothing.
    INSERT INTO reservations (reservation_id, hotel_id, room_type_id, guest_id, check_in,
                              check_out, rooms, status, total_cents, currency,
                              hold_expires_at, created_at, updated_at)
    VALUES (p_reservation_id, p_hotel_id, p_room_type_id, p_guest_id, p_check_in,
            p_check_out, p_rooms, 'pending', v_rate_sum * p_rooms, v_currency,
            p_hold_expires_at, p_now, p_now)
    ON CONFLICT (reservation_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'exists'::text, 0::bigint, ''::text, NULL::text, NULL::date;
        RETURN;
    END IF;

    -- The guard: capacity must still hold on every night, now under row locks.
    UPDATE room_type_inventory i
    SET total_reserved = i.total_reserved + p_rooms
    WHERE i.hotel_id = p_hotel_id AND i.room_type_id = p_room_type_id
      AND i.date >= p_check_in AND i.date < p_check_out
      AND i.total_reserved + p_rooms <= i.capacity;
    GET DIAGNOSTICS v_updated = ROW_COUNT;
    IF v_updated < v_nights THEN
        RAISE EXCEPTION 'sold out' USING ERRCODE = 'IK409';
    END IF;

    -- Restrictions again, now that the nights are locked: a restrictions PUT locks the
    -- same rows (and the night before its first date, whose stays check out on it), so a
    -- change made since the first look is seen here. The message is "restriction|night".
    IF NOT p_override THEN
        SELECT * INTO v_broken FROM stay_restriction(p_hotel_id, p_room_type_id, p_check_in, p_check_out);
        IF FOUND THEN
            RAISE EXCEPTION '%|%', v_broken.restriction, v_broken.night USING ERRCODE = 'IK422';
        END IF;
    END IF;

    RETURN QUERY SELECT 'created'::text, v_rate_sum * p_rooms, v_currency, NULL::text, NULL::date;
END;
$$;
