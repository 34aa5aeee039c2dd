-- bench/sql/schema.sql: the raw baseline. A minimal jobs table with the
-- index a claim needs, used by every "raw" case (state: 0 = ready,
-- 1 = running; finished jobs are deleted).
DROP TABLE IF EXISTS jobs;
CREATE TABLE jobs (
  id        bigserial PRIMARY KEY,
  queue     text        NOT NULL DEFAULT 'default',
  priority  int         NOT NULL DEFAULT 0,
  run_at    timestamptz NOT NULL DEFAULT now(),
  state     smallint    NOT NULL DEFAULT 0,
  payload   jsonb,
  locked_by text,
  locked_at timestamptz
);
CREATE INDEX jobs_ready_idx ON jobs (queue, priority, run_at) WHERE state = 0;
