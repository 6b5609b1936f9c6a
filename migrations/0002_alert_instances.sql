-- Alert instances and source health: the state machine's memory, so a
-- restart neither re-fires nor forgets a firing alert.

-- One row per (rule, labels). Timestamps are fixed-width RFC 3339 UTC text.
CREATE TABLE alert_instances (
    rule          TEXT    NOT NULL,
    -- canonical JSON object of the labels (keys sorted)
    labels        TEXT    NOT NULL,
    -- inactive | pending | firing | resolved | no_data | error
    state         TEXT    NOT NULL,
    -- for no_data and error: the state they interrupted
    held          TEXT,
    since         TEXT    NOT NULL,
    active_since  TEXT,
    firing_since  TEXT,
    false_since   TEXT,
    episode       INTEGER NOT NULL DEFAULT 0,
    evaluated_at  TEXT    NOT NULL,
    -- JSON: the row and values behind the last evaluation
    evidence      TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (rule, labels)
);
CREATE INDEX alert_instances_state ON alert_instances (state);

-- Consecutive failures per source, for the built-in "source X is failing" rule.
CREATE TABLE source_health (
    source                TEXT    PRIMARY KEY,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    -- ok | no_data | error | timeout
    last_status           TEXT    NOT NULL,
    last_error            TEXT,
    last_ok_at            TEXT,
    updated_at            TEXT    NOT NULL
);
