-- ndrbot schema v5 (SQLite): named leases for work that runs in one process of the
-- deployment at a time (the NDR watch, the approval sweeper, audit checkpoints).

-- One row per piece of work. holder is '' when nobody holds it (never held, or
-- released); the lease is live while expires_us is after the caller's now.
-- signals are the hints other processes left for the holder, one per line.
CREATE TABLE work_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL DEFAULT '',
    since_us   INTEGER NOT NULL DEFAULT 0,
    expires_us INTEGER NOT NULL DEFAULT 0,
    signals    TEXT NOT NULL DEFAULT ''
);
