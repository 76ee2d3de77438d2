-- CountRunning runs on every POST. With status in the index the count is
-- answered from the index alone (EXPLAIN QUERY PLAN: COVERING INDEX)
-- instead of looking each running row up in the table to re-check status.
DROP INDEX messages_running;
CREATE INDEX messages_running ON messages (user_id, status) WHERE status IN ('queued', 'working');
