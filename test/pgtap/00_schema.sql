-- test/pgtap/00_schema.sql: the qml schema, as the SQL contract of
-- DESIGN.md describes it: extension, types, tables and columns, the
-- indexes that keep claiming an index scan, functions and their
-- signatures, triggers, and privileges (nothing for PUBLIC, pinned
-- search_path).
BEGIN;
SELECT plan(232);

-- the table that holds the history's rows: qml.job_events up to 1.1; from
-- 1.2 on qml.job_events is a view of qml.jobs.history, and the table what
-- 1.1 recorded, qml.job_events_1_1
SELECT CASE WHEN to_regclass('qml.job_events_1_1') IS NULL THEN 'job_events'
			ELSE 'job_events_1_1' END AS events_table \gset

-- the extension
SELECT has_extension('qml');
SELECT is((SELECT extrelocatable FROM pg_extension WHERE extname = 'qml'), false, 'qml is not relocatable');
SELECT has_schema('qml');
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'qml'), '1.3', 'qml is at version 1.3');
SELECT set_has(
	$$SELECT c::regclass::text FROM pg_extension e, unnest(e.extconfig) c WHERE e.extname = 'qml'$$,
	format($$VALUES ('qml.jobs'), ('qml.%s'), ('qml.queues')$$, :'events_table'),
	'jobs, job_events and queues are dumped by pg_dump (pg_extension_config_dump)');

-- job states
SELECT has_enum('qml', 'job_state', 'enum qml.job_state');
SELECT enum_has_labels('qml', 'job_state',
	ARRAY['scheduled', 'enqueued', 'processing', 'succeeded', 'failed', 'awaiting_retry', 'deleted'],
	'qml.job_state has the seven states, in order');

-- tables
SELECT has_table('qml', 'jobs', 'table qml.jobs');
SELECT has_relation('qml', 'job_events', 'relation qml.job_events');
SELECT has_table('qml', 'queues', 'table qml.queues');

-- qml.jobs: columns, types, NOT NULL
SELECT has_column('qml', 'jobs', c, 'qml.jobs has column ' || c)
  FROM unnest(ARRAY['id', 'queue', 'method', 'arguments', 'priority', 'state', 'attempts',
					'max_attempts', 'run_at', 'created_at', 'enqueued_at', 'started_at',
					'finished_at', 'locked_by', 'locked_until', 'last_error', 'result',
					'unique_key']) c;
SELECT col_type_is('qml', 'jobs', c, t, format('qml.jobs.%s is %s', c, t))
  FROM (VALUES ('id', 'bigint'), ('queue', 'text'), ('method', 'text'), ('arguments', 'jsonb'),
			   ('priority', 'integer'), ('state', 'qml.job_state'), ('attempts', 'integer'),
			   ('max_attempts', 'integer'), ('run_at', 'timestamp with time zone'),
			   ('created_at', 'timestamp with time zone'),
			   ('enqueued_at', 'timestamp with time zone'),
			   ('started_at', 'timestamp with time zone'),
			   ('finished_at', 'timestamp with time zone'), ('locked_by', 'text'),
			   ('locked_until', 'timestamp with time zone'), ('last_error', 'text'),
			   ('result', 'jsonb'), ('unique_key', 'text')) AS x(c, t);
SELECT col_not_null('qml', 'jobs', c, 'qml.jobs.' || c || ' is NOT NULL')
  FROM unnest(ARRAY['id', 'queue', 'method', 'arguments', 'priority', 'state', 'attempts',
					'max_attempts', 'run_at', 'created_at']) c;
SELECT col_is_null('qml', 'jobs', c, 'qml.jobs.' || c || ' may be NULL')
  FROM unnest(ARRAY['enqueued_at', 'started_at', 'finished_at', 'locked_by', 'locked_until',
					'last_error', 'result', 'unique_key']) c;
SELECT col_is_pk('qml', 'jobs', 'id', 'qml.jobs.id is the primary key');
SELECT is((SELECT attidentity::text FROM pg_attribute
			WHERE attrelid = 'qml.jobs'::regclass AND attname = 'id'),
		  'a', 'qml.jobs.id is GENERATED ALWAYS AS IDENTITY');
SELECT col_default_is('qml', 'jobs', 'queue', 'default'::text, 'qml.jobs.queue defaults to ''default''');
SELECT col_default_is('qml', 'jobs', 'priority', 0, 'qml.jobs.priority defaults to 0');
SELECT col_default_is('qml', 'jobs', 'attempts', 0, 'qml.jobs.attempts defaults to 0');
SELECT col_default_is('qml', 'jobs', 'arguments', '[]'::jsonb, 'qml.jobs.arguments defaults to []');

-- qml.job_events
SELECT has_column('qml', 'job_events', c, 'qml.job_events has column ' || c)
  FROM unnest(ARRAY['job_id', 'from_state', 'to_state', 'at', 'worker', 'error']) c;
SELECT col_type_is('qml', 'job_events', c, t, format('qml.job_events.%s is %s', c, t))
  FROM (VALUES ('job_id', 'bigint'), ('from_state', 'qml.job_state'),
			   ('to_state', 'qml.job_state'), ('at', 'timestamp with time zone'),
			   ('worker', 'text'), ('error', 'text')) AS x(c, t);
SELECT col_not_null('qml', :'events_table', c, 'qml.job_events.' || c || ' is NOT NULL')
  FROM unnest(ARRAY['job_id', 'to_state', 'at']) c;
SELECT col_is_null('qml', :'events_table', 'from_state', 'qml.job_events.from_state may be NULL (creation)');

-- qml.queues
SELECT has_column('qml', 'queues', c, 'qml.queues has column ' || c)
  FROM unnest(ARRAY['name', 'paused', 'history', 'retention']) c;
SELECT col_is_pk('qml', 'queues', 'name', 'qml.queues.name is the primary key');
SELECT col_type_is('qml', 'queues', 'paused', 'boolean', 'qml.queues.paused is boolean');
SELECT col_not_null('qml', 'queues', 'paused', 'qml.queues.paused is NOT NULL');
SELECT col_default_is('qml', 'queues', 'paused', false, 'queues are not paused by default');
SELECT col_type_is('qml', 'queues', 'retention', 'interval', 'qml.queues.retention is an interval');
SELECT col_type_is('qml', 'queues', 'history', 'boolean', 'qml.queues.history is boolean');

-- constraints the API relies on
SELECT throws_ok($$INSERT INTO qml.jobs (method, state, max_attempts) VALUES ('m', 'enqueued', 0)$$,
				 '23514', NULL, 'max_attempts below 1 is refused (23514)');
SELECT throws_ok($$INSERT INTO qml.jobs (method, state) VALUES ('', 'enqueued')$$,
				 '23514', NULL, 'an empty method is refused (23514)');
SELECT throws_ok($$INSERT INTO qml.jobs (method, state, queue) VALUES ('m', 'enqueued', '')$$,
				 '23514', NULL, 'an empty queue is refused (23514)');
SELECT throws_ok($$INSERT INTO qml.jobs (id, method, state) VALUES (1, 'm', 'enqueued')$$,
				 '428C9', NULL, 'ids cannot be chosen by hand');
-- ... also on UPDATE, where the row trigger checks them even when the
-- state stays; lengths count characters, not bytes
SELECT lives_ok($$INSERT INTO qml.jobs (method, state, queue) VALUES ('m', 'enqueued', repeat('é', 128))$$,
				'a queue name of 128 two-byte characters is allowed');
SELECT throws_ok($$INSERT INTO qml.jobs (method, state, queue) VALUES ('m', 'enqueued', repeat('é', 129))$$,
				 '23514', NULL, 'a queue name of 129 characters is refused');
SELECT throws_ok($$UPDATE qml.jobs SET max_attempts = 0 WHERE queue = repeat('é', 128)$$,
				 '23514', NULL, 'an UPDATE to max_attempts 0 is refused');
SELECT throws_ok($$UPDATE qml.jobs SET method = '' WHERE queue = repeat('é', 128)$$,
				 '23514', NULL, 'an UPDATE to an empty method is refused');
SELECT throws_ok($$UPDATE qml.jobs SET state = 'processing', queue = '' WHERE queue = repeat('é', 128)$$,
				 '23514', NULL, 'an UPDATE to an empty queue is refused with a state change too');
SELECT is((SELECT max_attempts >= 1 AND method = 'm' FROM qml.jobs WHERE queue = repeat('é', 128)), true,
		  'the refused updates changed nothing');
DELETE FROM qml.jobs WHERE queue = repeat('é', 128);

-- indexes: the claim, promotion, rescue, pruning, unique keys
SELECT has_index('qml', 'jobs', 'jobs_fetch_idx', ARRAY['queue', 'priority', 'run_at', 'id'],
				 'jobs_fetch_idx on (queue, priority, run_at, id)');
SELECT is((SELECT pg_get_expr(indpred, indrelid) FROM pg_index
			WHERE indexrelid = 'qml.jobs_fetch_idx'::regclass),
		  '(state = ''enqueued''::qml.job_state)', 'jobs_fetch_idx covers enqueued jobs only');
SELECT is((SELECT (indoption[1] & 1) = 1 FROM pg_index
			WHERE indexrelid = 'qml.jobs_fetch_idx'::regclass),
		  true, 'jobs_fetch_idx orders priority descending, as fetch does');
SELECT is((SELECT (indoption[0] & 1) = 0 AND (indoption[2] & 1) = 0 AND (indoption[3] & 1) = 0
			 FROM pg_index WHERE indexrelid = 'qml.jobs_fetch_idx'::regclass),
		  true, 'jobs_fetch_idx orders queue, run_at and id ascending');
SELECT index_is_type('qml', 'jobs', 'jobs_fetch_idx', 'btree', 'jobs_fetch_idx is a btree');
SELECT has_index('qml', 'jobs', 'jobs_due_idx', ARRAY['run_at'], 'jobs_due_idx on (run_at)');
SELECT is((SELECT pg_get_expr(indpred, indrelid) FROM pg_index
			WHERE indexrelid = 'qml.jobs_due_idx'::regclass),
		  '(state = ANY (ARRAY[''scheduled''::qml.job_state, ''awaiting_retry''::qml.job_state]))',
		  'jobs_due_idx covers scheduled and awaiting_retry jobs only');
SELECT has_index('qml', 'jobs', 'jobs_queue_due_idx', ARRAY['queue', 'run_at'],
				 'jobs_queue_due_idx on (queue, run_at)');
SELECT is((SELECT pg_get_expr(indpred, indrelid) FROM pg_index
			WHERE indexrelid = 'qml.jobs_queue_due_idx'::regclass),
		  '(state = ANY (ARRAY[''scheduled''::qml.job_state, ''awaiting_retry''::qml.job_state]))',
		  'jobs_queue_due_idx covers scheduled and awaiting_retry jobs only');
SELECT has_index('qml', 'jobs', 'jobs_lease_idx', ARRAY['locked_until'], 'jobs_lease_idx on (locked_until)');
SELECT is((SELECT pg_get_expr(indpred, indrelid) FROM pg_index
			WHERE indexrelid = 'qml.jobs_lease_idx'::regclass),
		  '((state = ''processing''::qml.job_state) AND (locked_until IS NOT NULL))',
		  'jobs_lease_idx covers processing jobs only, for statements that say locked_until IS NOT NULL');
SELECT has_index('qml', 'jobs', 'jobs_finished_idx', ARRAY['finished_at'], 'jobs_finished_idx on (finished_at)');
SELECT is((SELECT pg_get_expr(indpred, indrelid) FROM pg_index
			WHERE indexrelid = 'qml.jobs_finished_idx'::regclass),
		  '(state = ANY (ARRAY[''succeeded''::qml.job_state, ''failed''::qml.job_state, ''deleted''::qml.job_state]))',
		  'jobs_finished_idx covers finished jobs only');
SELECT has_index('qml', 'jobs', 'jobs_unique_key_idx', ARRAY['queue', 'unique_key'], 'jobs_unique_key_idx on (queue, unique_key): a key is its queue''s');
SELECT index_is_unique('qml', 'jobs', 'jobs_unique_key_idx', 'jobs_unique_key_idx is unique');
SELECT is((SELECT pg_get_expr(indpred, indrelid) FROM pg_index
			WHERE indexrelid = to_regclass('qml.jobs_unique_key_idx')),
		  '((unique_key IS NOT NULL) AND (state = ANY (ARRAY[''scheduled''::qml.job_state, ''enqueued''::qml.job_state, ''processing''::qml.job_state, ''awaiting_retry''::qml.job_state])))',
		  'jobs_unique_key_idx covers live jobs with a key only');
SELECT has_index('qml', :'events_table', :'events_table' || '_job_idx', ARRAY['job_id'], 'job_events_job_idx on (job_id)');
SELECT is((SELECT count(*)::int FROM pg_index
			WHERE indrelid = 'qml.jobs'::regclass AND NOT indisvalid),
		  0, 'every index on qml.jobs is valid');

-- functions of the contract: one of each name (a call by name is never
-- ambiguous), the parameters of DESIGN.md first, with their types; further
-- parameters may follow, all with defaults ("extra optional parameters
-- may be added")
CREATE TEMP TABLE contract (f text, args text[], returns text);
INSERT INTO contract VALUES
	('enqueue', ARRAY['text', 'jsonb', 'text', 'integer', 'timestamp with time zone', 'integer', 'text'], 'bigint'),
	('enqueue_batch', ARRAY['jsonb'], 'SETOF bigint'),
	('schedule', ARRAY['text', 'jsonb', 'timestamp with time zone', 'interval'], 'bigint'),
	('fetch', ARRAY['text', 'text[]', 'integer', 'interval'], 'SETOF qml.jobs'),
	('complete', ARRAY['bigint', 'text', 'jsonb'], 'boolean'),
	('complete_batch', ARRAY['bigint[]', 'text', 'jsonb[]'], 'SETOF bigint'),
	('fail', ARRAY['bigint', 'text', 'text', 'boolean'], 'qml.job_state'),
	('fail_batch', ARRAY['bigint[]', 'text', 'text[]', 'boolean[]'],
	 'TABLE(job_id bigint, state qml.job_state, next_run_at timestamp with time zone)'),
	('heartbeat', ARRAY['bigint[]', 'text', 'interval'], 'SETOF bigint'),
	('release', ARRAY['bigint', 'text'], 'boolean'),
	('delete', ARRAY['bigint'], 'boolean'),
	('requeue', ARRAY['bigint'], 'boolean'),
	('stats', ARRAY[]::text[], NULL),
	('throughput', ARRAY[]::text[], NULL),
	('pause_queue', ARRAY['text'], 'boolean'),
	('resume_queue', ARRAY['text'], 'boolean'),
	('maintain', ARRAY[]::text[], 'jsonb'),
	('retry_delay', ARRAY['integer', 'interval', 'interval'], 'interval'),
	('grant_producer', ARRAY['regrole'], 'void'),
	('grant_worker', ARRAY['regrole'], 'void'),
	('grant_admin', ARRAY['regrole'], 'void'),
	('revoke_all', ARRAY['regrole'], 'void');
SELECT is((SELECT count(*)::int FROM pg_proc p
			WHERE p.pronamespace = 'qml'::regnamespace AND p.proname = c.f),
		  1, format('exactly one function qml.%s', c.f))
  FROM contract c ORDER BY c.f;
SELECT is((SELECT array_agg(format_type(t, NULL) ORDER BY o)
			 FROM pg_proc p, unnest(p.proargtypes::oid[]) WITH ORDINALITY AS u(t, o)
			WHERE p.pronamespace = 'qml'::regnamespace AND p.proname = c.f
			  AND o <= cardinality(c.args)),
		  nullif(c.args, '{}'),
		  format('qml.%s(%s, ...)', c.f, array_to_string(c.args, ', ')))
  FROM contract c WHERE cardinality(c.args) > 0 ORDER BY c.f;
SELECT is((SELECT array_agg(p.proname::text) FROM pg_proc p JOIN contract c ON c.f = p.proname
			WHERE p.pronamespace = 'qml'::regnamespace
			  AND p.pronargs - p.pronargdefaults > cardinality(c.args)),
		  NULL, 'parameters beyond those of the contract all have defaults');
SELECT is(pg_get_function_result(p.oid), c.returns, format('qml.%s returns %s', c.f, c.returns))
  FROM contract c JOIN pg_proc p ON p.proname = c.f AND p.pronamespace = 'qml'::regnamespace
 WHERE c.returns IS NOT NULL ORDER BY c.f;
-- defaults the contract promises
SELECT matches(pg_get_function_arguments('qml.fetch'::regproc),
			   '^worker text, queues text\[\] DEFAULT ''\{default\}''::text\[\], batch integer DEFAULT 1, lease interval DEFAULT ''00:05:00''::interval',
			   'qml.fetch defaults: default queue, batch 1, lease 5 minutes');
SELECT matches(pg_get_function_arguments('qml.enqueue'::regproc),
			   '^method text, arguments jsonb DEFAULT ''\[\]''::jsonb, queue text DEFAULT ''default''::text, priority integer DEFAULT 0, run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, max_attempts integer DEFAULT NULL::integer, unique_key text DEFAULT NULL::text',
			   'qml.enqueue parameters and defaults as in the contract');
SELECT matches(pg_get_function_arguments('qml.fail'::regproc),
			   '^job_id bigint, worker text, error text, retry boolean DEFAULT true',
			   'qml.fail retries by default');
SELECT matches(pg_get_function_arguments('qml.complete'::regproc),
			   '^job_id bigint, worker text, result jsonb DEFAULT NULL::jsonb',
			   'qml.complete: the result is optional');
SELECT matches(pg_get_function_arguments('qml.heartbeat'::regproc),
			   '^job_ids bigint\[\], worker text, lease interval DEFAULT ''00:05:00''::interval',
			   'qml.heartbeat extends by 5 minutes by default');
SELECT matches(pg_get_function_arguments('qml.schedule'::regproc),
			   '^method text, arguments jsonb DEFAULT ''\[\]''::jsonb, run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, delay interval DEFAULT NULL::interval',
			   'qml.schedule takes run_at or delay');

-- the role-gated API runs as its owner (enqueue through enqueue_as_owner);
-- helpers and triggers do not
SELECT is_definer('qml', f, format('qml.%s is SECURITY DEFINER', f))
  FROM unnest(ARRAY['enqueue_as_owner', 'enqueue_batch', 'schedule', 'fetch', 'complete', 'complete_batch',
					'fail', 'fail_batch', 'heartbeat', 'release', 'delete', 'requeue', 'stats', 'throughput',
					'pause_queue', 'resume_queue', 'maintain']) f;
SELECT isnt_definer('qml', f, format('qml.%s is not SECURITY DEFINER', f))
  FROM unnest(ARRAY['enqueue', 'retry_delay', 'grant_producer', 'grant_worker', 'grant_admin', 'revoke_all']) f;
SELECT is(array_agg(p.oid::regprocedure::text ORDER BY 1), NULL,
		  'no trigger function is SECURITY DEFINER')
  FROM pg_proc p WHERE p.pronamespace = 'qml'::regnamespace AND p.prosecdef
   AND p.prorettype = 'trigger'::regtype;
SELECT is(array_agg(p.oid::regprocedure::text ORDER BY 1), NULL,
		  'every SECURITY DEFINER function pins search_path')
  FROM pg_proc p WHERE p.pronamespace = 'qml'::regnamespace AND p.prosecdef
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%');
-- the worker's writes are C from 1.3 on, each its library's function of
-- the same name (src/worker_api.c, src/worker_held.c)
SELECT is(array_agg(p.proname || ' ' || l.lanname || ' ' || p.provolatile::text || ' ' || p.prosrc
					ORDER BY p.proname),
		  ARRAY['complete c v qml_complete', 'complete_batch c v qml_complete_batch',
				'fail c v qml_fail', 'fail_batch c v qml_fail_batch', 'fetch c v qml_fetch',
				'heartbeat c v qml_heartbeat', 'release c v qml_release'],
		  'fetch, complete, complete_batch, fail, fail_batch, heartbeat and release are C')
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = 'qml'::regnamespace
   AND p.proname IN ('fetch', 'complete', 'complete_batch', 'fail', 'fail_batch', 'heartbeat', 'release');
-- qml.enqueue runs as its caller, under the caller's path (qml--1.1.sql)
SELECT is((SELECT proconfig FROM pg_proc
			WHERE oid = 'qml.enqueue(text,jsonb,text,integer,timestamptz,integer,text,interval,interval)'::regprocedure),
		  NULL, 'qml.enqueue sets no search_path');
SELECT is(array_agg(DISTINCT c), ARRAY['search_path=pg_catalog, pg_temp'],
		  'functions pin search_path to pg_catalog, pg_temp')
  FROM pg_proc p, unnest(p.proconfig) c
 WHERE p.pronamespace = 'qml'::regnamespace AND c LIKE 'search\_path=%';

-- triggers on qml.jobs: a BEFORE ROW trigger for INSERT and for UPDATE
-- (timestamps, lease; from 1.2 on the history in the row), AFTER triggers
-- for INSERT and, up to 1.1, UPDATE (the history table, NOTIFY)
SELECT ok(EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = 'qml.jobs'::regclass
					AND NOT t.tgisinternal AND t.tgenabled = 'O'
					AND (t.tgtype & 1) = 1 AND (t.tgtype & 2) = 2 AND (t.tgtype & 4) = 4),
		  'qml.jobs has a BEFORE INSERT row trigger');
SELECT ok(EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = 'qml.jobs'::regclass
					AND NOT t.tgisinternal AND t.tgenabled = 'O'
					AND (t.tgtype & 1) = 1 AND (t.tgtype & 2) = 2 AND (t.tgtype & 16) = 16),
		  'qml.jobs has a BEFORE UPDATE row trigger');
SELECT ok(EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = 'qml.jobs'::regclass
					AND NOT t.tgisinternal AND t.tgenabled = 'O'
					AND (t.tgtype & 2) = 0 AND (t.tgtype & 4) = 4),
		  'qml.jobs has an AFTER INSERT trigger');
SELECT ok(EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = 'qml.jobs'::regclass
					AND NOT t.tgisinternal AND t.tgenabled = 'O'
					AND (t.tgtype & 2) = 0 AND (t.tgtype & 16) = 16)
		  OR :'events_table' = 'job_events_1_1',
		  'qml.jobs has an AFTER UPDATE trigger, or (1.2) needs none');
SELECT is(array_agg(t.tgname::text ORDER BY 1), NULL, 'every trigger on qml.jobs calls a qml function')
  FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE t.tgrelid = 'qml.jobs'::regclass AND NOT t.tgisinternal
   AND p.pronamespace <> 'qml'::regnamespace;

-- privileges: nothing for PUBLIC
SELECT is(array_agg(p.oid::regprocedure::text ORDER BY 1), NULL,
		  'PUBLIC may execute no qml function')
  FROM pg_proc p WHERE p.pronamespace = 'qml'::regnamespace
   AND has_function_privilege('public', p.oid, 'EXECUTE');
SELECT is(array_agg(c.relname::text ORDER BY 1), NULL,
		  'PUBLIC has no privilege on any qml table or sequence')
  FROM pg_class c WHERE c.relnamespace = 'qml'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
   AND (has_table_privilege('public', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
		OR (c.relkind = 'S' AND has_sequence_privilege('public', c.oid, 'USAGE, SELECT, UPDATE')));
SELECT schema_privs_are('qml', 'public', ARRAY[]::text[], 'PUBLIC has no privilege on schema qml');
SELECT table_privs_are('qml', t, 'public', ARRAY[]::text[], format('PUBLIC has no privilege on qml.%s', t))
  FROM unnest(ARRAY['jobs', 'job_events', 'queues']) t;
SELECT is((SELECT count(*)::int FROM pg_proc p, aclexplode(p.proacl) a
			WHERE p.pronamespace = 'qml'::regnamespace AND a.grantee = 0),
		  0, 'no ACL entry of a qml function names PUBLIC');

SELECT * FROM finish();
ROLLBACK;
