-- wfm schema version 1: the registry, executions and their events.
-- Records are JSON (serde of the store's record types); the columns beside them exist for
-- look-ups and ordering.
CREATE TABLE workflows (
    name    TEXT    NOT NULL,
    version INTEGER NOT NULL,
    record  TEXT    NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE executions (
    id            TEXT    PRIMARY KEY,  -- UUIDv7: sorts by creation time
    workflow_name TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    create_time   INTEGER NOT NULL,     -- microseconds since the Unix epoch
    end_time      INTEGER,
    request_id    TEXT    UNIQUE,
    parent_id     TEXT,
    record        TEXT    NOT NULL
);
CREATE INDEX executions_by_workflow ON executions (workflow_name, id);
CREATE INDEX executions_by_status ON executions (status, id);
CREATE INDEX executions_by_end ON executions (end_time) WHERE end_time IS NOT NULL;

CREATE TABLE events (
    execution_id TEXT    NOT NULL,
    sequence     INTEGER NOT NULL,
    event        TEXT    NOT NULL,
    PRIMARY KEY (execution_id, sequence)
) WITHOUT ROWID;
