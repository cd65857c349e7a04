-- The service's commit transaction, as pgbench runs it: the very statement
-- src/store/reservations.rs prepares (with no limit on the guest's holds, as the bench's
-- service runs with INNKEEPER_MAX_LIVE_HOLDS=0), `book_stay` (migrations/V8__stay_restrictions.sql), for a
-- random stay of 1 or 2 nights in one of 1,000 hotels. loadtest/bench seeds the hotels
-- (ids first_hotel.., room types first_room_type.., nights first_night.. days ahead) and
-- passes those with -D.
\set i random(0, 999)
\set hotel :first_hotel + :i
\set room_type :first_room_type + :i
\set nights random(1, 2)
\set check_in :first_night + random(0, 60 - :nights)
\set check_out :check_in + :nights
SELECT outcome, total_cents, currency, restriction, restricted_night FROM book_stay(gen_random_uuid(), :hotel, :room_type, 'pgbench', (now() AT TIME ZONE 'UTC')::date + :check_in::int, (now() AT TIME ZONE 'UTC')::date + :check_out::int, 1, now(), now() + interval '15 minutes', NULL, false);
