-- wfm schema version 3: an execution's event batch is stored inside its table page.
--
-- In version 2, event_batches was a WITHOUT ROWID table: SQLite keeps at most ~1,000 bytes
-- of a row in such a table's page (4 KiB pages), so a one-step execution's batch (~1.2 KB)
-- spilled into an overflow page of its own, written to the WAL, synced and checkpointed
-- with ~3 KB of it empty. A rowid table keeps up to ~4,000 bytes of a row in its page: the
-- batches of one commit share pages. The (execution_id, last_sequence) key is a unique
-- index beside it (small rows), which still refuses a batch written twice.
--
-- From this version on, each event in `events` leaves out its execution id (the row has
-- it); rows written before keep theirs, and both read the same.

CREATE TABLE event_batches_v3 (
    execution_id   TEXT    NOT NULL,
    last_sequence  INTEGER NOT NULL,
    first_sequence INTEGER NOT NULL,
    events         TEXT    NOT NULL     -- JSON array of the events first..=last, in order
);
INSERT INTO event_batches_v3 (execution_id, last_sequence, first_sequence, events)
    SELECT execution_id, last_sequence, first_sequence, events FROM event_batches
    ORDER BY execution_id, last_sequence;
DROP TABLE event_batches;
ALTER TABLE event_batches_v3 RENAME TO event_batches;
CREATE UNIQUE INDEX event_batches_by_execution ON event_batches (execution_id, last_sequence);
