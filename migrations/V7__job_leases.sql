-- Background jobs (reconciler, hold sweeper, archiver) run once per database across every
-- innkeeper instance: the instance holding a job's lease runs it, and renews the lease at
-- each of its steps; the others try at each of theirs and take it over once it lapses.
-- Times are the database's own (now()), so the instances' clocks never have to agree.
CREATE TABLE job_leases (
    job        text        PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);
