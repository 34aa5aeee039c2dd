-- case 8, one sample (tab-separated): jobs completed since :since, jobs
-- waiting, table size, index size, dead tuples, autovacuum runs (qml.jobs)
SELECT (SELECT count(*) FROM qml.jobs WHERE state = 'succeeded' AND finished_at >= :'since'::timestamptz),
       (SELECT count(*) FROM qml.jobs WHERE state = 'enqueued'),
       pg_relation_size('qml.jobs'), pg_indexes_size('qml.jobs'),
       s.n_dead_tup, s.autovacuum_count
  FROM pg_stat_user_tables s WHERE s.relid = 'qml.jobs'::regclass;
