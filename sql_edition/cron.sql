/*
 * sql_edition/cron.sql
 *	  Recurring-job schedules (src/cron.c, src/recurring.c) in PL/pgSQL:
 *	  5-field cron, @macros and intervals parsed with the same grammar and
 *	  reasons, and the next run computed in the schedule's time zone.
 */

CREATE FUNCTION qml.next_run(schedule text, timezone text, due timestamptz,
							 now timestamptz)
	RETURNS timestamptz
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	hint constant text := 'Use 5-field cron such as ''*/5 * * * *'', a macro such as ''@hourly'', or an interval such as ''30 seconds''.';
	rest text := schedule;
	zone text := timezone;
	prefix text;
	s record;
	after timestamptz;
	cur timestamp;
	t timestamptz;
	horizon timestamp;
	i integer;
BEGIN
	IF schedule IS NULL THEN
		RAISE EXCEPTION 'schedule must not be null'
			USING ERRCODE = 'null_value_not_allowed', HINT = hint;
	END IF;
	now := coalesce(now, pg_catalog.now());
	due := coalesce(due, now);
	IF NOT isfinite(due) OR NOT isfinite(now) THEN
		RAISE EXCEPTION 'a recurring job''s times must be finite'
			USING ERRCODE = 'datetime_field_overflow';
	END IF;
	-- a "CRON_TZ=zone " or "TZ=zone " prefix names the zone
	prefix := substring(schedule FROM '^[ \t]*(?:[Cc][Rr][Oo][Nn]_)?[Tt][Zz]=([^ \t]*)');
	IF prefix IS NOT NULL THEN
		IF timezone IS NOT NULL AND lower(timezone) <> lower(prefix) THEN
			RAISE EXCEPTION 'schedule "%" names time zone "%" but timezone is "%"',
				schedule, prefix, timezone
				USING ERRCODE = 'invalid_parameter_value', HINT = 'Name the time zone once.';
		END IF;
		zone := prefix;
		rest := regexp_replace(schedule, '^[ \t]*(?:[Cc][Rr][Oo][Nn]_)?[Tt][Zz]=[^ \t]*', '');
	END IF;
	SELECT * INTO s FROM qml.parse_schedule(rest);
	IF s.problem IS NOT NULL THEN
		RAISE EXCEPTION 'invalid schedule "%"', schedule
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = upper(left(s.problem, 1)) || substr(s.problem, 2) || '.',
				  HINT = hint;
	END IF;
	zone := coalesce(zone, 'UTC');
	BEGIN
		IF zone = '' THEN
			RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value';
		END IF;
		PERFORM now AT TIME ZONE zone;
	EXCEPTION WHEN invalid_parameter_value THEN
		RAISE EXCEPTION 'time zone "%" not recognized', zone
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use a name from pg_timezone_names, such as ''Europe/Paris''.';
	END;

	IF s.step_us IS NOT NULL THEN
		-- the first multiple of the step after `due` that lies after `now`
		RETURN due + make_interval(secs => (CASE WHEN now >= due
			THEN floor(extract(epoch FROM now - due) * 1000000 / s.step_us) + 1 ELSE 1 END)
			* s.step_us / 1000000.0);
	END IF;

	-- cron: the first matching local minute after max(due, now); a local
	-- time a DST change skips or repeats goes to the next later instant
	after := greatest(due, now);
	cur := date_trunc('minute', after AT TIME ZONE zone);
	horizon := cur + interval '5 years';
	FOR i IN 1..1000 LOOP
		cur := qml.cron_next(s.minutes, s.hours, s.days, s.months, s.weekdays,
							 s.dom_restricted, s.dow_restricted, cur, horizon);
		IF cur IS NULL THEN
			RAISE EXCEPTION 'schedule "%" never runs', schedule
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'No time in the next 5 years matches it.', HINT = hint;
		END IF;
		t := cur AT TIME ZONE zone;
		IF t > after THEN
			RETURN t;
		END IF;
	END LOOP;
	RAISE EXCEPTION 'schedule "%" has no run after %', schedule, after
		USING ERRCODE = 'invalid_parameter_value';
END
$$;

-- @additions

/*
 * Internal to the SQL edition: a schedule (without its zone prefix)
 * parsed: the allowed values of the five cron fields and whether the two
 * day fields were restricted, or an interval step in microseconds, or the
 * reason it is invalid (src/cron.c's words).
 */
CREATE FUNCTION qml.parse_schedule(text text, OUT problem text, OUT step_us bigint,
								   OUT minutes integer[], OUT hours integer[],
								   OUT days integer[], OUT months integer[],
								   OUT weekdays integer[], OUT dom_restricted boolean,
								   OUT dow_restricted boolean)
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	words text[];
	first integer := 1;
	n bigint := 0;
	unit bigint;
	f integer;
	vals integer[];
	macros constant text[] := '{{@yearly,0 0 1 1 *},{@annually,0 0 1 1 *},{@monthly,0 0 1 * *},{@weekly,0 0 * * 0},{@daily,0 0 * * *},{@midnight,0 0 * * *},{@hourly,0 * * * *}}';
BEGIN
	IF octet_length(text) > 256 THEN
		problem := 'schedule is longer than 256 bytes';
		RETURN;
	END IF;
	words := regexp_split_to_array(btrim(text, E' \t\n\r\x0b\f'), E'[ \t\n\r\x0b\f]+');
	IF words = '{""}' THEN
		problem := 'schedule is empty';
		RETURN;
	END IF;
	IF left(words[1], 1) = '@' THEN
		IF lower(words[1]) = '@reboot' THEN
			problem := '@reboot is not supported: recurring jobs need a time-based schedule';
			RETURN;
		END IF;
		FOR f IN 1..array_length(macros, 1) LOOP
			IF lower(words[1]) = macros[f][1] THEN
				IF cardinality(words) > 1 THEN
					problem := format('unexpected text "%s" after %s', qml.cron_echo(words[2]), macros[f][1]);
					RETURN;
				END IF;
				words := string_to_array(macros[f][2], ' ');
				EXIT;
			END IF;
		END LOOP;
		IF left(words[1], 1) = '@' THEN
			problem := format('unknown macro "%s"', qml.cron_echo(words[1]));
			RETURN;
		END IF;
	ELSIF lower(words[1]) = 'every'
		  OR (cardinality(words) IN (2, 3) AND words[2] ~ '^[A-Za-z]') THEN
		IF lower(words[1]) = 'every' THEN
			first := 2;
		END IF;
		IF cardinality(words) < first THEN
			problem := 'interval: missing amount after "every"';
		ELSIF words[first] !~ '^[0-9]+$' THEN
			problem := format('interval: amount "%s" is not a positive whole number', qml.cron_echo(words[first]));
		ELSIF cardinality(words) < first + 1 THEN
			problem := format('interval: missing unit after "%s"', qml.cron_echo(words[first]));
		ELSE
			unit := CASE WHEN lower(words[first + 1]) IN ('s', 'sec', 'secs', 'second', 'seconds') THEN 1
						 WHEN lower(words[first + 1]) IN ('m', 'min', 'mins', 'minute', 'minutes') THEN 60
						 WHEN lower(words[first + 1]) IN ('h', 'hour', 'hours') THEN 3600
						 WHEN lower(words[first + 1]) IN ('d', 'day', 'days') THEN 86400 END;
			-- saturated: anything this long is over 366 days anyway
			n := CASE WHEN length(ltrim(words[first], '0')) > 12 THEN 999999999999
					  ELSE coalesce(nullif(ltrim(words[first], '0'), ''), '0')::bigint END;
			IF unit IS NULL THEN
				problem := format('interval: unknown unit "%s" (use seconds, minutes, hours or days)', qml.cron_echo(words[first + 1]));
			ELSIF cardinality(words) > first + 1 THEN
				problem := format('interval: unexpected text "%s" after the unit', qml.cron_echo(words[first + 2]));
			ELSIF n = 0 THEN
				problem := 'interval: amount must be at least 1';
			ELSIF n * unit > 366 * 86400 THEN
				problem := format('interval: %s %s is longer than 366 days', qml.cron_echo(words[first]), left(words[first + 1], 32));
			ELSE
				step_us := n * unit * 1000000;
			END IF;
		END IF;
		RETURN;
	END IF;
	IF cardinality(words) <> 5 THEN
		problem := format('expected 5 fields (minute hour day-of-month month day-of-week), found %s', cardinality(words));
		RETURN;
	END IF;
	FOR f IN 1..5 LOOP
		SELECT c.vals, c.problem INTO vals, problem FROM qml.cron_field(words[f], f) c;
		IF problem IS NOT NULL THEN
			RETURN;
		END IF;
		CASE f
			WHEN 1 THEN minutes := vals;
			WHEN 2 THEN hours := vals;
			WHEN 3 THEN days := vals;
			WHEN 4 THEN months := vals;
			-- 7 is Sunday as 0 is
			ELSE weekdays := ARRAY(SELECT DISTINCT v % 7 FROM unnest(vals) v ORDER BY 1);
		END CASE;
	END LOOP;
	dom_restricted := left(words[3], 1) <> '*';
	dow_restricted := left(words[5], 1) <> '*';
END
$$;

-- Internal to the SQL edition: user text as an error message repeats it:
-- its first 32 bytes, each unprintable byte or quote as '?' (src/cron.c).
CREATE FUNCTION qml.cron_echo(word text) RETURNS text
	LANGUAGE sql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce(string_agg(CASE WHEN b BETWEEN 32 AND 126 AND b <> 34 THEN chr(b) ELSE '?' END,
						   '' ORDER BY i), '')
	   || CASE WHEN octet_length(word) > 32 THEN '...' ELSE '' END
  FROM generate_series(0, least(octet_length(word), 32) - 1) i,
	   LATERAL get_byte(convert_to(word, 'UTF8'), i) b
$$;

/*
 * Internal to the SQL edition: the values one cron field allows (field 1
 * minute .. 5 day-of-week), or the reason it is invalid.
 */
CREATE FUNCTION qml.cron_field(word text, field integer, OUT vals integer[],
							   OUT problem text)
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	name text := (ARRAY['minute', 'hour', 'day-of-month', 'month', 'day-of-week'])[field];
	lo_min integer := (ARRAY[0, 0, 1, 1, 0])[field];
	hi_max integer := (ARRAY[59, 23, 31, 12, 7])[field];
	star_max integer := (ARRAY[59, 23, 31, 12, 6])[field];
	names text[] := CASE field WHEN 4 THEN '{jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec}'::text[]
							   WHEN 5 THEN '{sun,mon,tue,wed,thu,fri,sat}'::text[] END;
	base integer := CASE field WHEN 4 THEN 1 ELSE 0 END;
	item text;
	m text[];
	lo integer;
	hi integer;
	step integer;
	part text;
	k integer;
BEGIN
	vals := '{}';
	FOREACH item IN ARRAY string_to_array(word, ',') LOOP
		IF item = '' THEN
			problem := format('%s field: empty list item', name);
			RETURN;
		END IF;
		-- "*", "V" or "V-V" (V a number or a name), then "/S" maybe
		m := regexp_match(item, '^(\*|[0-9]+|[A-Za-z]+)(?:-([0-9]+|[A-Za-z]+))?(/([0-9]*))?(.*)$');
		IF m IS NULL THEN
			-- it does not start with "*", a number or a name
			problem := format('%s field: unexpected character %s', name, qml.cron_char(left(item, 1)));
			RETURN;
		END IF;
		IF m[1] = '*' AND m[2] IS NOT NULL THEN
			-- "*-5": no range from "*"
			problem := format('%s field: unexpected character ''-'' in "%s"', name, qml.cron_echo(item));
			RETURN;
		END IF;
		lo := NULL;
		hi := NULL;
		FOR k IN 1..2 LOOP
			part := m[k];
			CONTINUE WHEN part IS NULL OR part = '*';
			IF part ~ '^[0-9]' THEN
				IF length(part) > 9 OR part::integer NOT BETWEEN lo_min AND hi_max THEN
					problem := format('%s field: %s is out of range %s-%s', name, qml.cron_echo(part), lo_min, hi_max);
					RETURN;
				END IF;
				IF k = 1 THEN lo := part::integer; ELSE hi := part::integer; END IF;
			ELSIF names IS NULL THEN
				problem := format('%s field: "%s" is not a number', name, qml.cron_echo(part));
				RETURN;
			ELSIF array_position(names, lower(part)) IS NULL THEN
				problem := format('%s field: unknown %s name "%s"', name,
								  CASE field WHEN 4 THEN 'month' ELSE 'day' END, qml.cron_echo(part));
				RETURN;
			ELSIF k = 1 THEN
				lo := base + array_position(names, lower(part)) - 1;
			ELSE
				hi := base + array_position(names, lower(part)) - 1;
			END IF;
		END LOOP;
		IF m[1] = '*' THEN
			lo := lo_min;
			hi := star_max;
		ELSIF hi IS NULL THEN
			hi := lo;
		END IF;
		step := 1;
		IF m[3] IS NOT NULL THEN
			IF m[4] = '' THEN
				problem := CASE WHEN m[5] = ''
					THEN format('%s field: missing step after ''/'' in "%s"', name, qml.cron_echo(item))
					ELSE format('%s field: step must be a number, found %s', name, qml.cron_char(left(m[5], 1))) END;
				RETURN;
			END IF;
			IF length(m[4]) > 9 OR m[4]::integer NOT BETWEEN 1 AND star_max - lo_min + 1 THEN
				problem := format('%s field: step %s is out of range 1-%s', name, qml.cron_echo(m[4]), star_max - lo_min + 1);
				RETURN;
			END IF;
			step := m[4]::integer;
			-- "A/S" runs from A to the end of the field, as in Vixie cron
			IF m[1] <> '*' AND m[2] IS NULL THEN
				hi := greatest(lo, star_max);
			END IF;
		END IF;
		IF left(m[5], 1) = '-' AND m[2] IS NULL AND m[3] IS NULL THEN
			-- a range without its end: "1-", "1-/5"
			problem := CASE WHEN m[5] = '-'
							THEN format('%s field: "%s" is incomplete', name, qml.cron_echo(item))
							ELSE format('%s field: unexpected character %s', name,
										qml.cron_char(substr(m[5], 2, 1))) END;
			RETURN;
		END IF;
		IF m[5] <> '' THEN
			problem := format('%s field: unexpected character %s in "%s"', name,
							  qml.cron_char(left(m[5], 1)), qml.cron_echo(item));
			RETURN;
		END IF;
		IF lo > hi THEN
			problem := format('%s field: range "%s" runs backwards (%s is after %s)', name, qml.cron_echo(item), lo, hi);
			RETURN;
		END IF;
		vals := vals || ARRAY(SELECT generate_series(lo, hi, step));
	END LOOP;
	vals := ARRAY(SELECT DISTINCT v FROM unnest(vals) v ORDER BY 1);
END
$$;

-- Internal to the SQL edition: one offending character, as the parser says it.
CREATE FUNCTION qml.cron_char(c text) RETURNS text
	LANGUAGE sql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN c ~ '^[\x20-\x7e]$' THEN format('''%s''', c)
			ELSE format('byte 0x%s', lpad(to_hex(get_byte(convert_to(c, 'UTF8'), 0)), 2, '0')) END
$$;

/*
 * Internal to the SQL edition: the first local minute after `after` that
 * a parsed cron schedule (qml.parse_schedule) allows, or NULL when none
 * comes before `horizon`. A day matches by the classic rule: when both day
 * fields are restricted, either one.
 */
CREATE FUNCTION qml.cron_next(minutes integer[], hours integer[], days integer[],
							  months integer[], weekdays integer[],
							  dom_restricted boolean, dow_restricted boolean,
							  after timestamp, horizon timestamp)
	RETURNS timestamp
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	day date := after::date;
	h integer;
	mi integer;
	dom boolean;
	dow boolean;
	start_h integer := extract(hour FROM after)::integer;
	start_m integer := extract(minute FROM after)::integer + 1;
BEGIN
	WHILE day <= horizon::date LOOP
		IF extract(month FROM day)::integer <> ALL (months) THEN
			-- the first day of the next month
			day := (date_trunc('month', day) + interval '1 month')::date;
			start_h := 0;
			start_m := 0;
			CONTINUE;
		END IF;
		dom := extract(day FROM day)::integer = ANY (days);
		dow := extract(dow FROM day)::integer = ANY (weekdays);
		IF (dom_restricted AND dow_restricted AND (dom OR dow))
		   OR (NOT (dom_restricted AND dow_restricted) AND dom AND dow) THEN
			FOREACH h IN ARRAY hours LOOP
				CONTINUE WHEN h < start_h;
				FOREACH mi IN ARRAY minutes LOOP
					CONTINUE WHEN h = start_h AND mi < start_m;
					IF day + make_time(h, mi, 0) > horizon THEN
						RETURN NULL;
					END IF;
					RETURN day + make_time(h, mi, 0);
				END LOOP;
			END LOOP;
		END IF;
		day := day + 1;
		start_h := 0;
		start_m := 0;
	END LOOP;
	RETURN NULL;
END
$$;
