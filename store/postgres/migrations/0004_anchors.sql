-- ndrbot schema v4 (PostgreSQL): roles at claim time, the audit key's epoch, and a
-- replay cache for Slack's signed HTTP requests.

-- The role a relief's approval requires (approver or admin), and the role each
-- voter was authorised under when they voted: the claim counts only votes whose
-- role meets the approval's.
ALTER TABLE approvals ADD COLUMN role TEXT NOT NULL DEFAULT 'approver';
ALTER TABLE votes ADD COLUMN role TEXT NOT NULL DEFAULT 'approver';

-- Once a trail has been sealed with an HMAC key, the head names the key (its id,
-- never the key) and the first sequence number sealed with it, so a writer
-- without the key cannot append unkeyed events unnoticed.
ALTER TABLE audit_head ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_head ADD COLUMN key_since BIGINT NOT NULL DEFAULT 0;

-- Slack request signatures seen inside their 5-minute validity window, shared
-- by every replica so a captured request cannot be replayed against another.
CREATE TABLE slack_requests (
    signature  TEXT PRIMARY KEY,
    expires_us BIGINT NOT NULL
);
CREATE INDEX slack_requests_expires ON slack_requests (expires_us);
