-- Due times of scheduled sources, rules and reports (issue 8).
--
-- One row per job (`source:NAME`, `rule:NAME`, `report:NAME`) and mode: a
-- dry-run rehearsal keeps its own due times, so it never consumes a real run.
-- `spec` is the schedule as configured when the row was written; a changed
-- schedule starts afresh instead of inheriting stale due times.
-- Times are UTC text in the fixed-width form of `timefmt` (sortable).
CREATE TABLE schedules (
    job         TEXT    NOT NULL,
    dry_run     INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
    spec        TEXT    NOT NULL,
    next_due    TEXT    NOT NULL,
    last_due    TEXT,
    last_run_at TEXT,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (job, dry_run)
);
