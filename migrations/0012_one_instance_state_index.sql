-- The index on `state` alone is the first column of `alert_instances_forgettable`
-- (state, since), which answers every query by state as well. Each index is
-- written with every changed instance: a cycle that stores 100,000 instances
-- spent about a tenth of its write on this one.
DROP INDEX IF EXISTS alert_instances_state;
