-- Bounded instance memory (issue 15): inactive and resolved instances are
-- forgotten after `memory.forget_instances_after`. A rule's episode floor is
-- the highest episode any forgotten instance of it reached; a new instance of
-- the rule counts its episodes from there, so an entity that comes back can
-- never reuse the effect key (action id, episode) of one that was forgotten.
CREATE TABLE rule_episode_floors (
    rule    TEXT PRIMARY KEY,
    episode INTEGER NOT NULL
);
CREATE INDEX alert_instances_forgettable ON alert_instances (state, since);
