/*
 * sql_edition/checks.sql
 *	  The argument checks and retry delays of src/checks.c and src/backoff.c
 *	  in PL/pgSQL, with the same messages and SQLSTATEs, and how the SQL
 *	  edition reads qml's settings (placeholders: no library defines them).
 */

CREATE FUNCTION qml.check_name(what text, value text, maxlen integer)
	RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	len integer := char_length(value);
BEGIN
	IF value IS NULL THEN
		RAISE EXCEPTION '% must not be null', what USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF len = 0 THEN
		RAISE EXCEPTION '% must not be empty', what USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF len > maxlen THEN
		RAISE EXCEPTION '% is too long (% characters)', what, len
			USING ERRCODE = 'string_data_right_truncation',
				  DETAIL = format('A %s may have at most %s characters.', what, maxlen);
	END IF;
END
$$;

CREATE FUNCTION qml.check_duration(what text, value interval, zero_ok boolean)
	RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	problem text;
BEGIN
	IF what IS NULL OR zero_ok IS NULL THEN
		RAISE EXCEPTION 'what and zero_ok must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF value IS NULL THEN
		RAISE EXCEPTION '% must not be null', what USING ERRCODE = 'null_value_not_allowed';
	END IF;
	problem := qml.duration_problem(value, zero_ok);
	IF problem IS NOT NULL THEN
		RAISE EXCEPTION '% %', what, problem
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = CASE WHEN zero_ok THEN 'Use an interval such as ''5 minutes'', or 0.'
							  ELSE 'Use an interval such as ''5 minutes''.' END;
	END IF;
END
$$;

CREATE FUNCTION qml.duration_ok(value interval, zero_ok boolean) RETURNS boolean
	LANGUAGE sql IMMUTABLE STRICT
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT qml.duration_problem(value, zero_ok) IS NULL
$$;

CREATE FUNCTION qml.retry_delay(attempt integer, base interval DEFAULT NULL,
								cap interval DEFAULT NULL)
	RETURNS interval
	LANGUAGE plpgsql VOLATILE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	base_us bigint := greatest(qml.interval_usec(coalesce(base,
						qml.setting_interval('qml.retry_base', interval '1 ms', interval '5 seconds'))), 1);
	cap_us bigint := greatest(qml.interval_usec(coalesce(cap,
						qml.setting_interval('qml.retry_cap', interval '1 ms', interval '1 hour'))), 1);
	delay bigint;
	i integer := 1;
BEGIN
	-- attempt n waits base * 2^(n-1), capped, then a random point in the
	-- upper half of that ("equal jitter"), as src/backoff.c
	delay := least(base_us, cap_us);
	WHILE i < greatest(coalesce(attempt, 1), 1) AND delay < cap_us LOOP
		delay := CASE WHEN delay > cap_us / 2 THEN cap_us ELSE delay * 2 END;
		i := i + 1;
	END LOOP;
	delay := least(delay, cap_us);
	RETURN make_interval(secs => (delay / 2 + floor(random() * (delay - delay / 2)))::bigint
								 / 1000000.0);
END
$$;

-- @additions

/*
 * Internal to the SQL edition. What is wrong with a duration, or NULL:
 * positive (or zero when zero_ok), no parts of opposite signs, at most 100
 * years (src/checks.c, duration_problem).
 */
CREATE FUNCTION qml.duration_problem(value interval, zero_ok boolean) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	months integer := extract(year FROM value)::integer * 12 + extract(month FROM value)::integer;
	days integer := extract(day FROM value)::integer;
	time_us numeric := extract(epoch FROM value - make_interval(months => months, days => days)) * 1000000;
BEGIN
	IF value IS NULL THEN
		RETURN CASE WHEN zero_ok THEN 'must not be null' ELSE 'must be a positive interval' END;
	END IF;
	IF months < 0 OR days < 0 OR time_us < 0 THEN
		IF months > 0 OR days > 0 OR time_us > 0 THEN
			RETURN 'must not mix positive and negative parts';
		END IF;
		RETURN CASE WHEN zero_ok THEN 'must not be negative' ELSE 'must be a positive interval' END;
	END IF;
	IF NOT zero_ok AND months = 0 AND days = 0 AND time_us = 0 THEN
		RETURN 'must be a positive interval';
	END IF;
	IF value > interval '100 years' THEN
		RETURN 'must be at most 100 years';
	END IF;
	RETURN NULL;
END
$$;

/*
 * Internal to the SQL edition: a duration in microseconds, months and days
 * counted as 30 and 1 days, saturating at 100 years (src/backoff.c).
 */
CREATE FUNCTION qml.interval_usec(value interval) RETURNS bigint
	LANGUAGE sql IMMUTABLE STRICT
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT least((extract(year FROM value) * 12 + extract(month FROM value)) * 30 * 86400000000
			 + extract(day FROM value) * 86400000000
			 + extract(epoch FROM value - make_interval(
					months => (extract(year FROM value) * 12 + extract(month FROM value))::integer,
					days => extract(day FROM value)::integer)) * 1000000,
			 100 * 12 * 30 * 86400000000::numeric)::bigint
$$;

/*
 * Internal to the SQL edition: whether this session's own value of the
 * setting `name` counts. With the library loaded the setting is defined
 * and PostgreSQL itself refuses a SET the role may not make, so it does.
 * Without it the setting is a placeholder that any role may SET; then it
 * counts only where the C edition would have let the session set it:
 * qml.durable_claims (any role), the settings only a superuser may SET
 * (for a superuser or a role granted SET ON PARAMETER), never those of
 * the configuration file alone (qml.retention, ...).
 */
CREATE FUNCTION qml.setting_own_counts(name text) RETURNS boolean
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE
	WHEN NOT coalesce('NO_SHOW_ALL' OPERATOR(pg_catalog.=) ANY (pg_catalog.pg_settings_get_flags(name)), false)
		THEN true
	WHEN name OPERATOR(pg_catalog.=) 'qml.durable_claims' THEN true
	WHEN name OPERATOR(pg_catalog.=) ANY ('{qml.databases,qml.scheduler_interval,qml.stats_retention,qml.retention,qml.prune_failed,qml.maintain_batch}'::text[])
		THEN false
	ELSE coalesce((SELECT r.rolsuper OR pg_catalog.has_parameter_privilege(r.oid, name, 'SET')
					 FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) qml.lease_role()), false)
END
$$;

/*
 * Internal to the SQL edition: a qml.* setting, or `fallback` when it is
 * not set. Without the library the settings are placeholders: plain text,
 * as SET, ALTER DATABASE ... SET or ALTER ROLE ... SET left them. A
 * session's value that does not count (qml.setting_own_counts) is passed
 * over for the one ALTER DATABASE / ALTER ROLE ... SET gave (only roles
 * that may set the parameter may do those), in PostgreSQL's order:
 * database and role, role, database.
 */
CREATE FUNCTION qml.setting(name text, fallback text) RETURNS text
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce(nullif(
	CASE WHEN coalesce(current_setting(name, true), '') = '' OR qml.setting_own_counts(name)
		 THEN current_setting(name, true)
		 ELSE (SELECT substr(c, length(name) + 2)
				 FROM pg_db_role_setting s, unnest(s.setconfig) c
				WHERE s.setdatabase IN (0, (SELECT d.oid FROM pg_database d
											 WHERE d.datname = current_database()))
				  AND s.setrole IN (0, (SELECT r.oid FROM pg_roles r WHERE r.rolname = session_user))
				  AND starts_with(c, name || '=')
				ORDER BY s.setrole <> 0 AND s.setdatabase <> 0 DESC, s.setrole <> 0 DESC,
						 s.setdatabase <> 0 DESC
				LIMIT 1)
	END, ''), fallback)
$$;

-- A duration setting: a bare number is in `unit`, as the library's
-- settings are ('5000' ms), else an interval ('5s', '10 min').
CREATE FUNCTION qml.setting_interval(name text, unit interval, fallback interval)
	RETURNS interval
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN v IS NULL THEN fallback
			WHEN v ~ '^\s*[0-9]+\s*$' THEN v::bigint * unit
			ELSE v::interval END
  FROM qml.setting(name, NULL) v
$$;

/*
 * Internal to the SQL edition: 25006 in a read-only transaction, naming the
 * API function, as the C edition's writes do before the executor would.
 */
CREATE FUNCTION qml.check_writable(caller text) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF current_setting('transaction_read_only')::boolean THEN
		RAISE EXCEPTION 'cannot execute % in a read-only transaction', caller
			USING ERRCODE = 'read_only_sql_transaction';
	END IF;
END
$$;

-- A boolean setting, read as PostgreSQL reads one.
CREATE FUNCTION qml.setting_on(name text, fallback boolean) RETURNS boolean
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce(qml.setting(name, NULL)::boolean, fallback)
$$;
