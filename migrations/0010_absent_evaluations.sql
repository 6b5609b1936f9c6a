-- Absent means false (issue 15): how many consecutive successful answers of
-- its source have not contained an instance's label set. After a rule's
-- `missing_evals_to_resolve` such answers its condition counts as false.
ALTER TABLE alert_instances ADD COLUMN absent_evals INTEGER NOT NULL DEFAULT 0;
