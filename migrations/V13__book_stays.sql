-- book_stays(): a group commit's whole batch in one statement (see booking::group_commit).
--
-- The batch's bookings were all admitted by Redis, so they nearly always fit. Run as one
-- book_stay() each, a batch of 64 cost Postgres 64 function calls of nine statements
-- apiece, and the night journal's trigger fired 64 times. Here the batch is a handful of
-- set-based statements, whatever its size: one insert of the reservations, one lock of
-- their nights in key order, one update of the nights (one trigger firing), one look at
-- the restrictions.
--
-- It books every booking of the batch, or none: a booking that does not fit (a night
-- sold out under the row locks, missing, or restricted; the guest at the most holds
-- allowed) raises, the batch rolls back whole, and the caller runs each booking on its own
-- through book_stay(), which answers every outcome exactly. An id already stored answers
-- 'exists' and books nothing, as book_stay() does.
--
-- The arguments are parallel arrays, one element per booking, in book_stay()'s order;
-- `p_max_holds` holds NULL for a booking without a limit. Returns one row per booking, in
-- the arrays' order: 'created' with its total and currency, or 'exists'.
CREATE FUNCTION book_stays(
    p_reservation_ids  uuid[],
    p_hotel_ids        bigint[],
    p_room_type_ids    bigint[],
    p_guest_ids        text[],
    p_check_ins        date[],
    p_check_outs       date[],
    p_rooms            integer[],
    p_created_ats      timestamptz[],
    p_hold_expires_ats timestamptz[],
    p_max_holds        integer[],
    p_overrides        boolean[]
) RETURNS TABLE (outcome text, total_cents bigint, currency text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_created    uuid[];
    v_totals     bigint[];
    v_currencies text[];
    v_hotels     bigint[];
    v_room_types bigint[];
    v_nights     date[];
    v_rooms      integer[];
    v_updated    integer;
BEGIN
    -- Fair holds, as book_stay() keeps them: each limited guest's lock, taken in one order
    -- so that two batches never wait on each other in a cycle, then the count, with every
    -- booking of that guest in the batch (a staff booking for them too). Holds that end
    -- within the batch's first and last arrival count as live: a batch refuses where a
    -- booking on its own might not, never the other way round.
    PERFORM pg_advisory_xact_lock(g.lock_key)
    FROM (SELECT DISTINCT hashtextextended('innkeeper.holds:' || b.guest_id, 0) AS lock_key
          FROM unnest(p_guest_ids, p_max_holds) AS b(guest_id, max_holds)
          WHERE b.max_holds IS NOT NULL
          ORDER BY 1) g;
    IF EXISTS (
        SELECT 1
        FROM (SELECT b.guest_id, min(b.max_holds) AS max_holds, count(*) AS wanted,
                     min(b.created_at) AS since
              FROM unnest(p_reservation_ids, p_guest_ids, p_max_holds, p_created_ats)
                   AS b(reservation_id, guest_id, max_holds, created_at)
              WHERE NOT EXISTS (SELECT 1 FROM reservations r
                                WHERE r.reservation_id = b.reservation_id)
              GROUP BY b.guest_id) g
        WHERE g.max_holds IS NOT NULL AND g.wanted + (SELECT count(*) FROM reservations r
                          WHERE r.guest_id = g.guest_id AND r.status = 'pending'
                            AND r.hold_expires_at > g.since) > g.max_holds
    ) THEN
        RAISE EXCEPTION 'a guest is at the most holds allowed' USING ERRCODE = 'IK429';
    END IF;

    -- Every booking whose nights are all on sale, at their rates now (book_stay() reads
    -- them before its row locks too). The primary key settles an id already stored, or
    -- stored by a transaction beside this one: that booking inserts nothing.
    WITH inserted AS (
        INSERT INTO reservations (reservation_id, hotel_id, room_type_id, guest_id, check_in,
                                  check_out, rooms, status, total_cents, currency,
                                  hold_expires_at, created_at, updated_at)
        SELECT b.reservation_id, b.hotel_id, b.room_type_id, b.guest_id, b.check_in,
               b.check_out, b.rooms, 'pending', s.rate_sum * b.rooms, h.currency,
               b.hold_expires_at, b.created_at, b.created_at
        FROM (SELECT DISTINCT ON (u.reservation_id) *
              FROM unnest(p_reservation_ids, p_hotel_ids, p_room_type_ids, p_guest_ids,
                          p_check_ins, p_check_outs, p_rooms, p_created_ats,
                          p_hold_expires_ats) WITH ORDINALITY
                   AS u(reservation_id, hotel_id, room_type_id, guest_id, check_in,
                        check_out, rooms, created_at, hold_expires_at, position)
              ORDER BY u.reservation_id, u.position) b
        JOIN hotels h ON h.hotel_id = b.hotel_id
        CROSS JOIN LATERAL (
            SELECT count(*) AS nights, sum(i.rate_cents) AS rate_sum
            FROM room_type_inventory i
            WHERE i.hotel_id = b.hotel_id AND i.room_type_id = b.room_type_id
              AND i.date >= b.check_in AND i.date < b.check_out) s
        WHERE s.nights = b.check_out - b.check_in
        -- Ids in one order, so two batches sharing some never wait on each other in a cycle.
        ORDER BY b.reservation_id
        ON CONFLICT (reservation_id) DO NOTHING
        RETURNING reservation_id, hotel_id, room_type_id, check_in, check_out, rooms,
                  total_cents, currency
    ), nights AS (
        SELECT i.hotel_id, i.room_type_id, i.check_in + d AS night,
               sum(i.rooms)::integer AS rooms
        FROM inserted i, generate_series(0, i.check_out - i.check_in - 1) AS d
        GROUP BY 1, 2, 3
    )
    SELECT c.ids, c.totals, c.currencies, n.hotels, n.room_types, n.nights, n.rooms
    INTO v_created, v_totals, v_currencies, v_hotels, v_room_types, v_nights, v_rooms
    FROM (SELECT array_agg(i.reservation_id) AS ids, array_agg(i.total_cents) AS totals,
                 array_agg(i.currency) AS currencies
          FROM inserted i) c,
         (SELECT array_agg(n.hotel_id) AS hotels, array_agg(n.room_type_id) AS room_types,
                 array_agg(n.night) AS nights, array_agg(n.rooms) AS rooms
          FROM nights n) n;

    -- A booking neither inserted nor already stored has a night that is not on sale (or
    -- a hotel without a currency): sold out.
    IF EXISTS (
        SELECT 1 FROM unnest(p_reservation_ids) AS b(reservation_id)
        WHERE b.reservation_id <> ALL (coalesce(v_created, '{}'))
          AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.reservation_id = b.reservation_id)
    ) THEN
        RAISE EXCEPTION 'sold out' USING ERRCODE = 'IK409';
    END IF;

    -- The guard: the nights locked in key order (hotel, room type, night), as a lone
    -- booking locks its own, then every one must still hold the rooms.
    PERFORM 1
    FROM room_type_inventory i
    JOIN unnest(v_hotels, v_room_types, v_nights) AS n(hotel_id, room_type_id, night)
      ON i.hotel_id = n.hotel_id AND i.room_type_id = n.room_type_id AND i.date = n.night
    ORDER BY i.hotel_id, i.room_type_id, i.date
    FOR UPDATE OF i;
    UPDATE room_type_inventory i
    SET total_reserved = i.total_reserved + n.rooms
    FROM unnest(v_hotels, v_room_types, v_nights, v_rooms)
         AS n(hotel_id, room_type_id, night, rooms)
    WHERE i.hotel_id = n.hotel_id AND i.room_type_id = n.room_type_id AND i.date = n.night
      AND i.total_reserved + n.rooms <= i.capacity;
    GET DIAGNOSTICS v_updated = ROW_COUNT;
    IF v_updated < coalesce(cardinality(v_nights), 0) THEN
        RAISE EXCEPTION 'sold out' USING ERRCODE = 'IK409';
    END IF;

    -- Restrictions, now that the nights are locked: a restrictions write locks the same
    -- rows, so what is seen here holds until the commit.
    IF EXISTS (
        SELECT 1
        FROM reservations r
        JOIN unnest(p_reservation_ids, p_overrides) AS b(reservation_id, override)
          ON b.reservation_id = r.reservation_id
        CROSS JOIN LATERAL stay_restriction(r.hotel_id, r.room_type_id, r.check_in, r.check_out)
        WHERE r.reservation_id = ANY (v_created) AND NOT b.override
    ) THEN
        RAISE EXCEPTION 'a stay breaks a restriction' USING ERRCODE = 'IK422';
    END IF;

    -- An id twice in the batch is booked by its first booking; the second finds it
    -- stored, as it would one statement later.
    RETURN QUERY
    SELECT CASE WHEN c.reservation_id IS NULL THEN 'exists' ELSE 'created' END,
           c.total_cents, c.currency
    FROM (SELECT b.reservation_id, b.position,
                 min(b.position) OVER (PARTITION BY b.reservation_id) AS first
          FROM unnest(p_reservation_ids) WITH ORDINALITY AS b(reservation_id, position)) b
    LEFT JOIN unnest(v_created, v_totals, v_currencies)
              AS c(reservation_id, total_cents, currency)
      ON c.reservation_id = b.reservation_id AND b.position = b.first
    ORDER BY b.position;
END;
$$;
