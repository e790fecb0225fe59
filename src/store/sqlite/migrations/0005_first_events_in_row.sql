-- wfm schema version 5: an execution's first events are stored in its own row, and the
-- executions table is a rowid table.
--
-- Most executions write their row and their first events in one commit (a short one writes
-- everything in it). In version 4 those went to two tables and three indexes: four B-trees,
-- each a page (often three: an index B-tree splits by rebalancing siblings) written to the
-- WAL, synced and checkpointed per commit. Version 5 writes one row:
--
-- - `first_events` holds the events committed with the row's creation (a JSON array from
--   sequence 1, as in event_batches) and `first_events_last` the last of their sequences;
--   events committed later go to event_batches as before;
-- - a rowid table keeps up to ~4,000 bytes of a row in its page (a WITHOUT ROWID table
--   ~1,000), and rows are appended in commit order, which fills pages without splitting
--   them; the id is a unique index beside it.

CREATE TABLE executions_v5 (
    id                TEXT    NOT NULL,  -- UUIDv7: sorts by creation time
    workflow_name     TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    create_time       INTEGER NOT NULL,  -- microseconds since the Unix epoch
    end_time          INTEGER,
    request_id        TEXT,
    parent_id         TEXT,
    record            TEXT    NOT NULL,
    first_events      TEXT,              -- JSON array of the events 1..=first_events_last
    first_events_last INTEGER
);
INSERT INTO executions_v5
    (id, workflow_name, status, create_time, end_time, request_id, parent_id, record)
    SELECT id, workflow_name, status, create_time, end_time, request_id, parent_id, record
    FROM executions ORDER BY id;
DROP TABLE executions;
ALTER TABLE executions_v5 RENAME TO executions;
CREATE UNIQUE INDEX executions_by_id ON executions (id);
CREATE UNIQUE INDEX executions_by_request_id ON executions (request_id)
    WHERE request_id IS NOT NULL;
CREATE INDEX executions_by_workflow ON executions (workflow_name, id);
CREATE INDEX executions_unfinished ON executions (status, id)
    WHERE status IN ('queued', 'running');
