-- Delivery per target (issue 13): a failed target is retried with backoff for
-- as long as its message is still true, an answer that never came is
-- `unknown` (not blindly re-sent), and every action keeps one outcome that is
-- updated as its targets settle.
--
-- effects.status gains `queued` (claimed, not yet handed to the channel: a
-- process that dies now sent nothing, so the next one retries it) and
-- `retrying` (a failed attempt, tried again at `next_attempt_at`); `failed`
-- is now final (permanent error, or the message stopped being true, or
-- `retry_until` passed).
ALTER TABLE effects ADD COLUMN content_type TEXT;
ALTER TABLE effects ADD COLUMN next_attempt_at TEXT;
ALTER TABLE effects ADD COLUMN retry_until TEXT;
-- Rounds of attempts so far (one per cycle that tried it): the backoff doubles per round.
ALTER TABLE effects ADD COLUMN rounds INTEGER NOT NULL DEFAULT 0;
-- JSON: what must still hold for a retry (the instance still firing in the
-- same episode, or the group still open); NULL: only `retry_until`.
ALTER TABLE effects ADD COLUMN condition TEXT;
CREATE INDEX effects_retrying ON effects (dry_run, status, next_attempt_at);

-- Which recorded outcomes an effect belongs to (a group message belongs to
-- every member's outcome), so a later retry updates them in place.
CREATE TABLE effect_outcomes (
    effect_key   TEXT    NOT NULL,
    dry_run      INTEGER NOT NULL,
    outcome_id   INTEGER NOT NULL,
    PRIMARY KEY (effect_key, dry_run, outcome_id)
);
CREATE INDEX effect_outcomes_outcome ON effect_outcomes (outcome_id);
