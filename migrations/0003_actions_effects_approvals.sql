-- Acting: the write-ahead effect log, recorded outcomes, approvals, the
-- queue of actions carried to a later cycle, and digest bookkeeping.
-- Timestamps are fixed-width RFC 3339 UTC text.

-- One row per delivery attempt of an effect (an action's message to one
-- target in one firing episode and repeat). Written as `dispatching` before
-- the send and `sent`/`failed` after, so a crash between the two leaves
-- `dispatching`, which the next start turns into `unknown`: never re-sent
-- blindly. Dry-run effects live beside live ones (`dry_run = 1`) and never
-- block a live send.
CREATE TABLE effects (
    key          TEXT    NOT NULL,
    dry_run      INTEGER NOT NULL,
    action_id    TEXT    NOT NULL,
    episode      INTEGER NOT NULL DEFAULT 0,
    repeat       INTEGER NOT NULL DEFAULT 0,
    -- slack | email | webhook:NAME
    channel      TEXT    NOT NULL,
    target       TEXT    NOT NULL,
    -- counted against max_notifications_per_hour (notify, escalate, report, digest)
    notification INTEGER NOT NULL DEFAULT 1,
    -- dispatching | sent | failed | unknown | simulated | held | digested
    status       TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    reference    TEXT,
    error        TEXT,
    subject      TEXT,
    -- the exact rendered payload (Slack JSON, MIME, webhook body)
    payload      TEXT,
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    PRIMARY KEY (key, dry_run)
);
CREATE INDEX effects_recent ON effects (dry_run, created_at);
CREATE INDEX effects_action ON effects (action_id, dry_run);
CREATE INDEX effects_status ON effects (status);

-- One row per action outcome, for `bi-agent actions` and learning.
CREATE TABLE action_outcomes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    cycle_id     INTEGER,
    action_id    TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    origin       TEXT    NOT NULL,
    -- sent | simulated | skipped | failed | pending_approval
    status       TEXT    NOT NULL,
    dry_run      INTEGER NOT NULL,
    started_at   TEXT    NOT NULL,
    duration_ms  INTEGER NOT NULL,
    -- JSON: the action as planned
    action       TEXT    NOT NULL,
    -- JSON: the outcome (status detail, deliveries with payloads, findings)
    outcome      TEXT    NOT NULL
);
CREATE INDEX action_outcomes_started ON action_outcomes (started_at);
CREATE INDEX action_outcomes_action ON action_outcomes (action_id);

-- Actions waiting for a person.
CREATE TABLE approvals (
    id           TEXT    PRIMARY KEY,
    action_id    TEXT    NOT NULL,
    -- JSON: the action as planned
    action       TEXT    NOT NULL,
    -- pending | approved | rejected | expired | executed | invalid
    status       TEXT    NOT NULL,
    reason       TEXT,
    created_at   TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL,
    decided_at   TEXT,
    decided_by   TEXT,
    dry_run      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX approvals_status ON approvals (status);

-- Actions carried to a later cycle (over the per-cycle cap, or behind a wait).
CREATE TABLE queued_actions (
    action_id    TEXT    PRIMARY KEY,
    action       TEXT    NOT NULL,
    not_before   TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    created_at   TEXT    NOT NULL
);

-- Small persistent facts (e.g. when the last digest went out).
CREATE TABLE agent_state (
    key          TEXT    PRIMARY KEY,
    value        TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL
);
