-- PostgreSQL split by hotel (see SCALING.md). Every database gets every table, so one
-- set of migrations serves the catalog and the shards alike, and a database may be both.

-- Catalog only: which shard holds each of the 256 logical shards. A shard is named by its
-- place in INNKEEPER_SHARD_URLS (0 for the first); a hotel's logical shard is a fixed
-- hash of its id, so moving a logical shard to another database is the one way a hotel
-- changes database. The first start fills the map: round-robin, or every logical shard to
-- the one database that already held hotels (a deployment that ran on one database).
CREATE TABLE shard_map (
    logical_shard smallint PRIMARY KEY CHECK (logical_shard BETWEEN 0 AND 255),
    shard         smallint NOT NULL CHECK (shard >= 0)
);

-- Catalog only: which database was first served at each place of INNKEEPER_SHARD_URLS
-- (0 for the first; a catalog that served alone is place 0). A start whose list
-- disagrees (reordered, shorter, another database at a known place, or no list at all
-- once split) is refused before anything is recorded, instead of hiding hotels.
CREATE TABLE shard_places (
    shard       smallint PRIMARY KEY CHECK (shard >= 0),
    database_id uuid     NOT NULL UNIQUE
);

-- Every database: which database this is (a random id made on first use, not by the
-- migration, so databases cloned from one migrated template stay distinct), and whether
-- the id directory has an entry for every reservation it holds (false until innkeeper
-- first serves it with shards, when it fills them in).
CREATE TABLE database_identity (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    database_id     uuid    NOT NULL,
    claims_complete boolean NOT NULL DEFAULT false
);

-- Catalog only: hotel ids for every shard, so an id names one hotel wherever it lives.
-- It continues the hotels this database already holds.
CREATE SEQUENCE hotel_ids AS bigint;
SELECT setval('hotel_ids', coalesce(max(hotel_id), 0) + 1, false) FROM hotels;

-- Shards: the reservation-id directory, partitioned by the id's own hash (the id's home
-- shard), not by hotel: it is what makes an id unique across shards. A row says which
-- hotel an id was claimed for. `shared` is set once a second request for the same hotel
-- relies on the claim, after which the claimer no longer removes it on refusal.
CREATE TABLE reservation_claims (
    reservation_id uuid        PRIMARY KEY,
    hotel_id       bigint      NOT NULL,
    claimed_at     timestamptz NOT NULL,
    shared         boolean     NOT NULL DEFAULT false
);
