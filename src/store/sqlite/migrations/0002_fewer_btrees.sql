-- wfm schema version 2: fewer B-trees written per execution, and one row per commit of an
-- execution's events. Every B-tree an insert touches is a page the commit writes to the WAL
-- and syncs; version 1 touched eight for a one-step execution (the table, its id,
-- request-id, workflow and status indexes, five event rows).
--
-- - executions are keyed by id alone (WITHOUT ROWID: no rowid table beside an id index);
-- - a request id is indexed only where there is one (most executions have none);
-- - the status index holds only unfinished executions (what a restart looks up); listing by
--   a finished status walks the ids newest first instead, which stops at the page's end;
-- - the events an execution wrote in one commit are one row: a JSON array, in order.

CREATE TABLE executions_v2 (
    id            TEXT    PRIMARY KEY,  -- UUIDv7: sorts by creation time
    workflow_name TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    create_time   INTEGER NOT NULL,     -- microseconds since the Unix epoch
    end_time      INTEGER,
    request_id    TEXT,
    parent_id     TEXT,
    record        TEXT    NOT NULL
) WITHOUT ROWID;
INSERT INTO executions_v2
    SELECT id, workflow_name, status, create_time, end_time, request_id, parent_id, record
    FROM executions;
DROP TABLE executions;
ALTER TABLE executions_v2 RENAME TO executions;
CREATE UNIQUE INDEX executions_by_request_id ON executions (request_id)
    WHERE request_id IS NOT NULL;
CREATE INDEX executions_by_workflow ON executions (workflow_name, id);
CREATE INDEX executions_unfinished ON executions (status, id)
    WHERE status IN ('queued', 'running');
CREATE INDEX executions_by_end ON executions (end_time) WHERE end_time IS NOT NULL;

CREATE TABLE event_batches (
    execution_id   TEXT    NOT NULL,
    last_sequence  INTEGER NOT NULL,
    first_sequence INTEGER NOT NULL,
    events         TEXT    NOT NULL,    -- JSON array of the events first..=last, in order
    PRIMARY KEY (execution_id, last_sequence)
) WITHOUT ROWID;
INSERT INTO event_batches
    SELECT execution_id, sequence, sequence, '[' || event || ']' FROM events;
DROP TABLE events;
