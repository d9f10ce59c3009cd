-- ndrbot schema v1 (SQLite). Times are Unix microseconds (UTC); 0 means unset.

CREATE TABLE runs (
    id               TEXT PRIMARY KEY,
    playbook         TEXT NOT NULL,
    playbook_version TEXT NOT NULL,
    params           TEXT NOT NULL,
    requester_id     TEXT NOT NULL,
    requester_name   TEXT NOT NULL,
    origin           TEXT NOT NULL,
    chat_channel     TEXT,
    chat_thread_ts   TEXT,
    state            TEXT NOT NULL,
    owner            TEXT NOT NULL,
    created_us       INTEGER NOT NULL,
    updated_us       INTEGER NOT NULL
);
CREATE INDEX runs_created ON runs (created_us);
CREATE INDEX runs_state ON runs (state);

CREATE TABLE steps (
    run_id     TEXT NOT NULL REFERENCES runs (id),
    step       TEXT NOT NULL,
    phase      TEXT NOT NULL,
    status     TEXT NOT NULL,
    result     TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    PRIMARY KEY (run_id, step, phase)
);

CREATE TABLE findings (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     TEXT NOT NULL REFERENCES runs (id),
    finding    TEXT NOT NULL,
    created_us INTEGER NOT NULL
);
CREATE INDEX findings_run ON findings (run_id, id);

CREATE TABLE proposals (
    run_id      TEXT NOT NULL REFERENCES runs (id),
    proposal_id TEXT NOT NULL,
    proposal    TEXT NOT NULL,
    created_us  INTEGER NOT NULL,
    updated_us  INTEGER NOT NULL,
    PRIMARY KEY (run_id, proposal_id)
);

CREATE TABLE approvals (
    id              TEXT PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES runs (id),
    proposal_id     TEXT NOT NULL,
    relief_id       TEXT NOT NULL,
    hosts           TEXT NOT NULL,
    digest          TEXT NOT NULL,
    required        INTEGER NOT NULL CHECK (required >= 1),
    four_eyes       INTEGER NOT NULL,
    requester_id    TEXT NOT NULL,
    requester_name  TEXT NOT NULL,
    expires_us      INTEGER NOT NULL,
    status          TEXT NOT NULL,
    decided_by_id   TEXT,
    decided_by_name TEXT,
    decided_us      INTEGER NOT NULL DEFAULT 0,
    reason          TEXT,
    created_us      INTEGER NOT NULL
);
CREATE INDEX approvals_run ON approvals (run_id);
CREATE INDEX approvals_pending ON approvals (status, expires_us);

CREATE TABLE votes (
    approval_id TEXT NOT NULL REFERENCES approvals (id),
    voter_id    TEXT NOT NULL,
    voter_name  TEXT NOT NULL,
    decision    TEXT NOT NULL,
    at_us       INTEGER NOT NULL,
    PRIMARY KEY (approval_id, voter_id)
);

CREATE TABLE executions (
    id          TEXT PRIMARY KEY,
    approval_id TEXT NOT NULL UNIQUE REFERENCES approvals (id),
    run_id      TEXT NOT NULL REFERENCES runs (id),
    relief_id   TEXT NOT NULL,
    hosts       TEXT NOT NULL,
    digest      TEXT NOT NULL,
    owner       TEXT NOT NULL,
    state       TEXT NOT NULL,
    output      TEXT,
    error       TEXT,
    started_us  INTEGER NOT NULL,
    finished_us INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX executions_run ON executions (run_id);
CREATE INDEX executions_state ON executions (state);

CREATE TABLE execution_hosts (
    execution_id TEXT NOT NULL REFERENCES executions (id),
    relief_id    TEXT NOT NULL,
    host         TEXT NOT NULL,
    started_us   INTEGER NOT NULL,
    PRIMARY KEY (execution_id, host)
);
CREATE INDEX execution_hosts_last ON execution_hosts (relief_id, host, started_us);

CREATE TABLE leases (
    owner    TEXT PRIMARY KEY,
    until_us INTEGER NOT NULL
);

CREATE TABLE outbox (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         TEXT,
    channel        TEXT NOT NULL,
    post_key       TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL,
    ref            TEXT,
    payload        TEXT NOT NULL,
    state          TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    external_ref   TEXT,
    created_us     INTEGER NOT NULL,
    next_us        INTEGER NOT NULL,
    lease_owner    TEXT NOT NULL DEFAULT '',
    lease_until_us INTEGER NOT NULL DEFAULT 0,
    delivered_us   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_pending ON outbox (state, channel, id);
CREATE INDEX outbox_run ON outbox (run_id, id);

-- The audit trail: append-only, hash-chained (see package audit).
CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY,
    ts_us      INTEGER NOT NULL,
    actor_id   TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    alg        TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_events_run ON audit_events (run_id, seq);
CREATE INDEX audit_events_ts ON audit_events (ts_us);

-- The last seq and hash appended: its row lock serializes appends.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
