-- Grouping and quiet hours.
-- Timestamps are fixed-width RFC 3339 UTC text.

-- Why a `held` effect was held back, and when it may go out:
-- `rate_limit` (NULL in rows written before this migration) goes to the
-- hourly digest; `quiet_hours` goes to the digest sent when the quiet
-- window ends, at `release_at`.
ALTER TABLE effects ADD COLUMN hold TEXT;
ALTER TABLE effects ADD COLUMN release_at TEXT;
CREATE INDEX effects_held ON effects (dry_run, status, hold);

-- One notification group per rule action (e.g. `revenue_drop/alert`): the
-- instances of the rule that fire together share one message. A group is
-- open while any of its instances fires; `round` counts group messages over
-- the group's whole life and never goes back, so each message has its own
-- effect key (exactly once).
CREATE TABLE notification_groups (
    key          TEXT    NOT NULL,
    dry_run      INTEGER NOT NULL,
    -- when the first member of the open group arrived (NULL: closed)
    opened_at    TEXT,
    -- when the open group's last message went out (NULL: none yet)
    sent_at      TEXT,
    round        INTEGER NOT NULL DEFAULT 0,
    updated_at   TEXT    NOT NULL,
    PRIMARY KEY (key, dry_run)
);

-- The notifications of one group: one row per member action, firing
-- episode and repeat. `pending` waits for the next group message;
-- `notified` was in message `round`; `resolved` was reported as resolved.
CREATE TABLE notification_group_members (
    group_key    TEXT    NOT NULL,
    dry_run      INTEGER NOT NULL,
    action_id    TEXT    NOT NULL,
    episode      INTEGER NOT NULL,
    repeat       INTEGER NOT NULL,
    -- JSON: the member action as planned (instance, severity, message)
    action       TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    round        INTEGER,
    added_at     TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    PRIMARY KEY (group_key, dry_run, action_id, episode, repeat)
);
CREATE INDEX notification_group_members_action ON notification_group_members (action_id, dry_run);
