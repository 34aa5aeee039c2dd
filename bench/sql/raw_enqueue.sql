-- case 1, raw: one job per transaction
\set p random(0, 3)
INSERT INTO jobs (queue, priority, run_at, state, payload) VALUES ('default', :p, now(), 0, '{"task":"noop","n":1}');
