-- A stay on nights that are not on sale is sold out, whatever restrictions its dates carry:
-- stay_restriction() now answers nothing for it, so book_stay() goes on to its capacity
-- check and answers 'sold_out', as the redis mode does (reserve.lua finds such nights
-- missing before it looks at restrictions). Both modes then judge in one order: nights on
-- sale, restrictions, capacity.
CREATE OR REPLACE FUNCTION stay_restriction(
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
    WHERE (SELECT count(*) FROM room_type_inventory i
           WHERE i.hotel_id = p_hotel_id AND i.room_type_id = p_room_type_id
             AND i.date >= p_check_in AND i.date < p_check_out) = p_check_out - p_check_in
    ORDER BY b.rank, b.night
    LIMIT 1
$$;
