/*
 * sql_edition/producer.sql
 *	  The producer's API (src/producer_api.c, src/producer_batch.c) by
 *	  statement: qml.enqueue, qml.enqueue_as_owner, qml.enqueue_batch.
 *
 * qml.enqueue is SECURITY DEFINER with search_path pinned here (the C
 * edition's is neither, qml--1.1.sql says why): without C nothing can call
 * qml.enqueue_as_owner, granted to nobody, for its caller. EXECUTE on
 * qml.enqueue stays the gate; the checks and the INSERT run in
 * qml.enqueue_as_owner.
 */

CREATE FUNCTION qml.enqueue(method text, arguments jsonb DEFAULT '[]',
							queue text DEFAULT 'default',
							priority integer DEFAULT 0,
							run_at timestamptz DEFAULT NULL,
							max_attempts integer DEFAULT NULL,
							unique_key text DEFAULT NULL,
							backoff_base interval DEFAULT NULL,
							backoff_cap interval DEFAULT NULL)
	RETURNS bigint
	LANGUAGE sql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT qml.enqueue_as_owner(method, arguments, queue, priority, run_at,
							max_attempts, unique_key, backoff_base, backoff_cap)
$$;

CREATE FUNCTION qml.enqueue_as_owner(method text, arguments jsonb, queue text,
									 priority integer, run_at timestamptz,
									 max_attempts integer, unique_key text,
									 backoff_base interval, backoff_cap interval)
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	due timestamptz := now();
	id bigint;
BEGIN
	-- as an INSERT's executor would, naming the function called
	PERFORM qml.check_writable('qml.enqueue()');
	PERFORM qml.check_name('method', method, 1000);
	PERFORM qml.check_name('queue', queue, 128);
	IF max_attempts < 1 THEN
		RAISE EXCEPTION 'max_attempts must be at least 1, not %', max_attempts
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF backoff_base IS NOT NULL THEN
		PERFORM qml.check_duration('backoff_base', backoff_base, false);
	END IF;
	IF backoff_cap IS NOT NULL THEN
		PERFORM qml.check_duration('backoff_cap', backoff_cap, false);
	END IF;
	IF unique_key IS NOT NULL THEN
		PERFORM qml.check_name('unique_key', unique_key, 500);
	END IF;
	IF run_at IS NOT NULL THEN
		PERFORM qml.check_run_at(run_at, quiet => false);
		-- a past run_at means now: the job is due and keeps its place
		due := greatest(run_at, now());
	END IF;
	LOOP
		INSERT INTO qml.jobs AS j (queue, method, arguments, priority, state,
								   max_attempts, run_at, backoff_base, backoff_cap,
								   unique_key)
		VALUES (queue, method, coalesce(arguments, '[]'), coalesce(priority, 0),
				CASE WHEN due > now() THEN 'scheduled' ELSE 'enqueued' END::qml.job_state,
				max_attempts, due, backoff_base, backoff_cap, unique_key)
		ON CONFLICT (queue, unique_key) WHERE unique_key IS NOT NULL
		   AND state IN ('scheduled', 'enqueued', 'processing', 'awaiting_retry')
		DO NOTHING
		RETURNING j.id INTO id;
		IF id IS NOT NULL THEN
			RETURN id;
		END IF;
		-- the key's live job; if it finished between conflict and lookup, again
		SELECT j.id INTO id FROM qml.jobs j
		 WHERE j.unique_key = enqueue_as_owner.unique_key AND j.queue = enqueue_as_owner.queue
		   AND j.state IN ('scheduled', 'enqueued', 'processing', 'awaiting_retry');
		IF id IS NOT NULL THEN
			RETURN id;
		END IF;
	END LOOP;
END
$$;

CREATE FUNCTION qml.enqueue_batch(jobs jsonb) RETURNS SETOF bigint
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	example constant text := 'Pass e.g. ''[{"method": "send_email", "arguments": ["a@b.c"]}]''.';
	n integer;
	elem jsonb;
	ord integer;
	problem text;
BEGIN
	IF jobs IS NULL THEN
		RAISE EXCEPTION 'jobs must not be null'
			USING ERRCODE = 'null_value_not_allowed', HINT = example;
	END IF;
	IF jsonb_typeof(jobs) <> 'array' THEN
		RAISE EXCEPTION 'jobs must be a JSON array of objects'
			USING ERRCODE = 'invalid_parameter_value', HINT = example;
	END IF;
	PERFORM qml.check_writable('qml.enqueue_batch()');
	n := jsonb_array_length(jobs);
	IF n > 1000000 THEN
		RAISE EXCEPTION 'jobs has % elements, more than %', n, 1000000
			USING ERRCODE = 'program_limit_exceeded', HINT = 'Split it over several calls.';
	END IF;
	-- the whole batch is checked before anything is written
	FOR elem, ord IN SELECT e, o FROM jsonb_array_elements(jobs) WITH ORDINALITY AS a(e, o) LOOP
		problem := qml.batch_element_problem(elem);
		IF problem IS NOT NULL THEN
			RAISE EXCEPTION 'job % of the batch %', ord, problem
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'Allowed keys: method (required), arguments, queue, priority, run_at, max_attempts, unique_key, backoff_base, backoff_cap.',
					  HINT = 'Nothing was enqueued.';
		END IF;
	END LOOP;
	IF n > 0 THEN
		RETURN QUERY SELECT b.id FROM qml.enqueue_batch_by_statement(jobs) b(id);
	END IF;
END
$$;

-- @additions

/*
 * Internal to the SQL edition: what is wrong with a run_at, or NULL
 * (src/checks.c): finite and before the year 10000. Unless `quiet` it
 * raises 22023 instead of answering.
 */
CREATE FUNCTION qml.check_run_at(run_at timestamptz, quiet boolean DEFAULT true)
	RETURNS text
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	problem text;
BEGIN
	problem := CASE WHEN NOT isfinite(run_at) THEN 'must be a finite timestamp'
					WHEN run_at >= timestamptz '10000-01-01 00:00:00+00'
					THEN 'must be before the year 10000' END;
	IF problem IS NOT NULL AND NOT quiet THEN
		RAISE EXCEPTION 'run_at %', problem
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass NULL or a past time to run the job now.';
	END IF;
	RETURN problem;
END
$$;

/*
 * Internal to the SQL edition: what is wrong with one element of
 * qml.enqueue_batch's array, in the words and the order of
 * src/producer_batch.c, or NULL.
 */
CREATE FUNCTION qml.batch_element_problem(elem jsonb) RETURNS text
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	allowed constant text[] := '{method,arguments,queue,priority,run_at,max_attempts,unique_key,backoff_base,backoff_cap}';
	k text;
	v jsonb;
	t timestamptz;
	d interval;
BEGIN
	IF jsonb_typeof(elem) <> 'object' THEN
		RETURN 'is not an object';
	END IF;
	SELECT key INTO k FROM jsonb_object_keys(elem) key WHERE key <> ALL (allowed) LIMIT 1;
	IF k IS NOT NULL THEN
		RETURN format('has an unknown key "%s"', left(k, 64));
	END IF;
	v := elem->'method';
	IF jsonb_typeof(v) IS DISTINCT FROM 'string' OR v->>0 = '' THEN
		RETURN 'needs "method" as a non-empty string';
	END IF;
	IF char_length(v->>0) > 1000 THEN
		RETURN 'has a "method" longer than 1000 characters';
	END IF;
	v := elem->'queue';
	IF v IS NOT NULL AND (jsonb_typeof(v) <> 'string' OR char_length(v->>0) NOT BETWEEN 1 AND 128) THEN
		RETURN 'needs "queue" as a string of 1 to 128 characters';
	END IF;
	v := elem->'priority';
	IF NOT qml.json_integer_in(v, -2147483648, 2147483647) THEN
		RETURN 'needs "priority" as an integer';
	END IF;
	v := elem->'max_attempts';
	IF NOT qml.json_integer_in(v, 1, 2147483647) THEN
		RETURN 'needs "max_attempts" as an integer of at least 1';
	END IF;
	v := elem->'run_at';
	IF v IS NOT NULL AND jsonb_typeof(v) NOT IN ('string', 'null') THEN
		RETURN 'needs "run_at" as a timestamp string';
	END IF;
	IF jsonb_typeof(v) = 'string' THEN
		BEGIN
			t := (v->>0)::timestamptz;
		EXCEPTION WHEN data_exception THEN
			RETURN format('needs "run_at" as a timestamp string (%s)', SQLERRM);
		END;
		IF qml.check_run_at(t) IS NOT NULL THEN
			RETURN format('has a "run_at" that %s', qml.check_run_at(t));
		END IF;
	END IF;
	v := elem->'unique_key';
	IF v IS NOT NULL AND jsonb_typeof(v) NOT IN ('string', 'null') THEN
		RETURN 'needs "unique_key" as a string';
	END IF;
	IF jsonb_typeof(v) = 'string' AND char_length(v->>0) NOT BETWEEN 1 AND 500 THEN
		RETURN 'needs "unique_key" as a string of 1 to 500 characters';
	END IF;
	FOREACH k IN ARRAY ARRAY['backoff_base', 'backoff_cap'] LOOP
		v := elem->k;
		CONTINUE WHEN v IS NULL OR jsonb_typeof(v) = 'null';
		IF jsonb_typeof(v) <> 'string' THEN
			RETURN format('needs "%s" as an interval string', k);
		END IF;
		BEGIN
			d := (v->>0)::interval;
		EXCEPTION WHEN data_exception THEN
			RETURN format('needs "%s" as an interval string (%s)', k, SQLERRM);
		END;
		IF NOT qml.duration_ok(d, false) THEN
			RETURN format('needs "%s" as a positive interval of at most 100 years, of one sign', k);
		END IF;
	END LOOP;
	RETURN NULL;
END
$$;

-- Internal to the SQL edition: absent, JSON null, or a whole number in lo..hi.
CREATE FUNCTION qml.json_integer_in(v jsonb, lo bigint, hi bigint) RETURNS boolean
	LANGUAGE sql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN v IS NULL OR jsonb_typeof(v) = 'null' THEN true
			WHEN jsonb_typeof(v) <> 'number' THEN false
			ELSE (v::text)::numeric = trunc((v::text)::numeric)
				 AND (v::text)::numeric BETWEEN lo AND hi END
$$;
