-- ndrbot schema v3 (PostgreSQL): guards checked when a relief is claimed.

-- The relief's cooldown (per relief and host) as the proposal stated it, so the
-- claim enforces it across runs, channels and replicas; 0 means none.
ALTER TABLE approvals ADD COLUMN cooldown_us BIGINT NOT NULL DEFAULT 0;

-- "Is any relief running on this host?" at claim time.
CREATE INDEX execution_hosts_host ON execution_hosts (host);
