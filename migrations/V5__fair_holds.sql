-- Fair holds: one guest could hold every room of a room type, since holds are free for
-- fifteen minutes. book_stay() now takes the most pending reservations the guest may hold
-- (NULL for staff) and answers 'hold_limit' past it, checked under a lock on the guest so
-- that it holds across concurrent bookings and across innkeeper processes. The nine-argument
-- function it replaces is dropped: a process still calling it fails loudly instead of
-- skipping the limit.
DROP FUNCTION book_stay(uuid, bigint, bigint, text, date, date, integer, timestamptz, timestamptz);

CREATE OR REPLACE FUNCTION book_stay(
    p_reservation_id  uuid,
    p_hotel_id        bigint,
    p_room_type_id    bigint,
    p_guest_id        text,
    p_check_in        date,
    p_check_out       date,
    p_rooms           integer,
    p_now             timestamptz,
    p_hold_expires_at timestamptz,
    p_max_holds       integer
) RETURNS TABLE (outcome text, total_cents bigint, currency text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_nights   integer := p_check_out - p_check_in;
    v_open     integer;
    v_rate_sum bigint;
    v_currency text;
    v_updated  integer;
BEGIN
    IF EXISTS (SELECT 1 FROM reservations r WHERE r.reservation_id = p_reservation_id) THEN
        RETURN QUERY SELECT 'exists'::text, 0::bigint, ''::text;
        RETURN;
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
            RETURN QUERY SELECT 'exists'::text, 0::bigint, ''::text;
            RETURN;
        END IF;
        RETURN QUERY SELECT 'sold_out'::text, 0::bigint, ''::text;
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
                RETURN QUERY SELECT 'exists'::text, 0::bigint, ''::text;
                RETURN;
            END IF;
            RETURN QUERY SELECT 'hold_limit'::text, 0::bigint, ''::text;
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
        RETURN QUERY SELECT 'exists'::text, 0::bigint, ''::text;
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

    RETURN QUERY SELECT 'created'::text, v_rate_sum * p_rooms, v_currency;
END;
$$;
