-- wfm schema version 4: no end-time index. Only the retention purge read it, and every
-- finished execution wrote an entry to it: one B-tree page more per commit, written to the
-- WAL, synced and checkpointed. The purge now walks the ids below its cutoff instead: ids
-- are UUIDv7s, which sort by creation time, and an execution that ended before the cutoff
-- was created before it.

DROP INDEX executions_by_end;
