-- Ready for Citus: every primary key and unique constraint of a table split by hotel
-- includes hotel_id, so an operator who can install Citus could distribute these tables
-- by hotel_id as they are. Room type and room ids stay unique within a database (their
-- identity sequences allocate them), but no constraint says so: every lookup and every
-- foreign key already names the hotel (the primary keys are (hotel_id, id)).
-- Reservations still have reservation_id alone as their key: their uniqueness across
-- shards needs the reservation-id directory of the planned shard split (SCALING.md).
ALTER TABLE room_types DROP CONSTRAINT room_types_room_type_id_key;
ALTER TABLE rooms DROP CONSTRAINT rooms_room_id_key;
