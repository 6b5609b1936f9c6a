-- The full list of instances behind a message that names fewer than it is
-- about (a group message of 962 churners names 25): what the e-mail
-- attached, for `bi-agent actions ID --list [--csv]`. One row per message;
-- pruned with the other records after `memory.retention`.
CREATE TABLE message_lists (
    -- `action_id#episode.repeat`: the message's effect key without its target
    message      TEXT    NOT NULL,
    dry_run      INTEGER NOT NULL,
    action_id    TEXT    NOT NULL,
    -- instances the message is about, and how many its text names
    instances    INTEGER NOT NULL,
    listed       INTEGER NOT NULL,
    -- JSON: the entries (state, severity, rule, labels, values, since)
    list         TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    PRIMARY KEY (message, dry_run)
);
CREATE INDEX message_lists_action ON message_lists (action_id, dry_run, created_at);
