-- The LLM advisor's bookkeeping: every call (or skipped call) with its
-- tokens and outcome, for the daily budget and `bi-agent status`, and a cache
-- of answers keyed by a hash of the situation, so an unchanged situation
-- costs no call. Timestamps are fixed-width RFC 3339 UTC text.

CREATE TABLE llm_calls (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    at                 TEXT    NOT NULL,
    -- plan | summary
    purpose            TEXT    NOT NULL,
    model              TEXT    NOT NULL,
    -- json_schema | json_object | text | none
    mode               TEXT    NOT NULL,
    prompt_tokens      INTEGER NOT NULL DEFAULT 0,
    completion_tokens  INTEGER NOT NULL DEFAULT 0,
    latency_ms         INTEGER NOT NULL DEFAULT 0,
    -- ok | invalid | truncated | error | over_budget | cache_hit
    outcome            TEXT    NOT NULL,
    error              TEXT,
    proposals_valid    INTEGER NOT NULL DEFAULT 0,
    proposals_dropped  INTEGER NOT NULL DEFAULT 0,
    situation_hash     TEXT
);
CREATE INDEX llm_calls_at ON llm_calls (at);

CREATE TABLE llm_cache (
    situation_hash  TEXT PRIMARY KEY,
    purpose         TEXT NOT NULL,
    answer          TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
