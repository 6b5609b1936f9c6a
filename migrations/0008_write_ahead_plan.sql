-- No lost work: every planned action is written to the queue before the cycle
-- acts (`taken_by` = that cycle) and leaves it when its outcome is recorded.
-- A cycle that fails or is killed leaves its unfinished actions behind with an
-- older `taken_by`, and the next cycle takes them again. NULL: waiting to be
-- taken (deferred over the cap, or queued behind a wait).
ALTER TABLE queued_actions ADD COLUMN taken_by INTEGER;
CREATE INDEX queued_actions_taken ON queued_actions (taken_by);
