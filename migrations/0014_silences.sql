-- Silences (`bi-agent silence add|list|expire`): the notifications of
-- matching alert instances are held back between starts_at and ends_at
-- (or expired_at, when someone ends one early). Kept after they end, for
-- `silence list --all`, until memory.retention.
CREATE TABLE silences (
    id           TEXT    PRIMARY KEY,
    -- JSON object: rule and label matchers, each must equal the instance's
    matchers     TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    created_by   TEXT    NOT NULL,
    starts_at    TEXT    NOT NULL,
    ends_at      TEXT    NOT NULL,
    expired_at   TEXT
);
CREATE INDEX silences_ends ON silences (ends_at);
