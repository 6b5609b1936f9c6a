-- bi-agent memory, first schema: cycles, observations and metric history.
--
-- Conventions for every migration:
--   * timestamps are UTC; event tables store them as fixed-width RFC 3339 text
--     (`2026-11-21T09:30:00.000Z`, so text order is time order); the metric
--     history stores Unix milliseconds because it is the largest table;
--   * a landed migration is never edited: change the schema with a new file.

-- One row per cycle. `id` is the cycle number and continues across restarts.
CREATE TABLE cycles (
    id             INTEGER PRIMARY KEY,
    started_at     TEXT    NOT NULL,
    finished_at    TEXT,
    -- running | ok | degraded | failed | interrupted
    status         TEXT    NOT NULL,
    dry_run        INTEGER NOT NULL DEFAULT 0,
    duration_ms    INTEGER,
    overran        INTEGER NOT NULL DEFAULT 0,
    sources_ok     INTEGER NOT NULL DEFAULT 0,
    sources_failed INTEGER NOT NULL DEFAULT 0,
    rows           INTEGER NOT NULL DEFAULT 0,
    points         INTEGER NOT NULL DEFAULT 0,
    -- JSON array of error texts
    errors         TEXT    NOT NULL DEFAULT '[]'
);
CREATE INDEX cycles_started_at ON cycles (started_at);

-- What each source returned in each cycle (current rows only; a series'
-- earlier points go to the metric history).
CREATE TABLE observations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    cycle_id    INTEGER NOT NULL REFERENCES cycles (id) ON DELETE CASCADE,
    source      TEXT    NOT NULL,
    at          TEXT    NOT NULL,
    -- ok | no_data | error | timeout
    status      TEXT    NOT NULL,
    confidence  REAL    NOT NULL,
    latency_ms  INTEGER NOT NULL,
    row_count   INTEGER NOT NULL,
    truncated   INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    -- JSON array of {labels, values, at?}
    rows        TEXT    NOT NULL
);
CREATE INDEX observations_at ON observations (at);
CREATE INDEX observations_source_at ON observations (source, at);

-- One row per metric series: `source.metric{labels}`.
CREATE TABLE series (
    id      INTEGER PRIMARY KEY,
    source  TEXT NOT NULL,
    metric  TEXT NOT NULL,
    -- canonical JSON object of the labels (keys sorted)
    labels  TEXT NOT NULL,
    UNIQUE (source, metric, labels)
);

-- The metric history. One point per series and time: reading the same points
-- again (a series source backfilling) adds nothing.
CREATE TABLE metric_points (
    series_id INTEGER NOT NULL REFERENCES series (id) ON DELETE CASCADE,
    at_ms     INTEGER NOT NULL,
    value     REAL    NOT NULL,
    PRIMARY KEY (series_id, at_ms)
) WITHOUT ROWID;
CREATE INDEX metric_points_at ON metric_points (at_ms);
