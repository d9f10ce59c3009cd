-- ndrbot schema v2 (SQLite): the NDR watch. Times are Unix microseconds (UTC); 0 means unset.

-- The delta cursor of each watched mailbox folder, stored after the messages it
-- moves past are recorded.
CREATE TABLE watch_cursors (
    watch        TEXT PRIMARY KEY,
    delta_cursor TEXT NOT NULL,
    updated_us   INTEGER NOT NULL
);

-- Every message the watch processed, NDR or not: its id makes processing idempotent.
CREATE TABLE watch_messages (
    watch        TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    received_us  INTEGER NOT NULL,
    processed_us INTEGER NOT NULL,
    events       INTEGER NOT NULL,
    PRIMARY KEY (watch, message_id)
);
CREATE INDEX watch_messages_received ON watch_messages (watch, received_us);

-- One row per failed recipient of an NDR message; windows count distinct messages.
CREATE TABLE ndr_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    watch       TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    code        TEXT NOT NULL,
    domain      TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    received_us INTEGER NOT NULL
);
CREATE INDEX ndr_events_window ON ndr_events (watch, received_us, code);

-- The last alert per watch and code: its row lock serializes the cooldown decision.
CREATE TABLE watch_alert_heads (
    watch    TEXT NOT NULL,
    code     TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    at_us    INTEGER NOT NULL,
    PRIMARY KEY (watch, code)
);

CREATE TABLE watch_alerts (
    id                TEXT PRIMARY KEY,
    watch             TEXT NOT NULL,
    code              TEXT NOT NULL,
    channel           TEXT NOT NULL,
    button            TEXT NOT NULL,
    messages          INTEGER NOT NULL,
    domains           INTEGER NOT NULL,
    view_json         TEXT NOT NULL,
    at_us             INTEGER NOT NULL,
    posted_us         INTEGER NOT NULL DEFAULT 0,
    diagnosis_by_id   TEXT,
    diagnosis_by_name TEXT,
    diagnosis_us      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX watch_alerts_watch ON watch_alerts (watch, at_us);
CREATE INDEX watch_alerts_button ON watch_alerts (channel, button, at_us);

-- The watch's change-notification subscription (notifications mode).
CREATE TABLE watch_subscriptions (
    watch           TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    resource        TEXT NOT NULL,
    expires_us      INTEGER NOT NULL,
    state           TEXT NOT NULL,
    failures        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    renewed_us      INTEGER NOT NULL DEFAULT 0,
    alerted_us      INTEGER NOT NULL DEFAULT 0,
    updated_us      INTEGER NOT NULL
);
