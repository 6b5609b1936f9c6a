-- Learning: one sample per executed action (its automatic score and any
-- feedback) and the patterns learned from them.
-- Timestamps are fixed-width RFC 3339 UTC text.

-- One row per executed action (sent or failed; dry-run rehearsals are kept
-- with dry_run = 1 and never learned from). The score is
-- COALESCE(feedback_score, auto_score): feedback overrides.
CREATE TABLE learning_samples (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    action_id      TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    -- the rule (or `llm` for proposals) and the rule's action template id
    rule           TEXT    NOT NULL,
    template       TEXT    NOT NULL,
    -- the parameters that vary, canonical `key=value, …`
    signature      TEXT    NOT NULL,
    -- the instance labels the rule names in learn_by, canonical `k=v, …` ('' if none)
    segment        TEXT    NOT NULL DEFAULT '',
    -- the alert instance it acted on, if any (canonical JSON labels)
    labels         TEXT,
    episode        INTEGER,
    dry_run        INTEGER NOT NULL,
    -- 1 delivered / done, 0 failed
    delivered      INTEGER NOT NULL,
    executed_at    TEXT    NOT NULL,
    -- recovery: the outcome window (seconds) and when it ends (NULL: no recovery signal)
    window_s       INTEGER,
    due_at         TEXT,
    resolved_at    TEXT,
    auto_score     REAL,
    feedback_score REAL,
    feedback_note  TEXT,
    feedback_at    TEXT
);
-- The learning aggregate reads only the window: (dry_run, executed_at).
CREATE INDEX learning_samples_window ON learning_samples (dry_run, executed_at);
-- Resolution credits the instance's open samples.
CREATE INDEX learning_samples_instance ON learning_samples (rule, labels, episode);
CREATE INDEX learning_samples_action ON learning_samples (action_id, executed_at);
-- Settling expired windows touches only unscored samples.
CREATE INDEX learning_samples_due ON learning_samples (due_at) WHERE auto_score IS NULL AND due_at IS NOT NULL;

-- The result of the last learning pass: one row per group.
CREATE TABLE learned_patterns (
    kind           TEXT    NOT NULL,
    rule           TEXT    NOT NULL,
    template       TEXT    NOT NULL,
    signature      TEXT    NOT NULL,
    segment        TEXT    NOT NULL,
    samples        INTEGER NOT NULL,
    mean           REAL    NOT NULL,
    stddev         REAL    NOT NULL,
    confidence     REAL    NOT NULL,
    learned_at     TEXT    NOT NULL,
    PRIMARY KEY (kind, rule, template, signature, segment)
);
