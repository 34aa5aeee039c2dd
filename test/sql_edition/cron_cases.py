#!/usr/bin/env python3
"""test/sql_edition/cron_cases.py: prints a query that asks qml.next_run()
for every schedule the cron parser's own tests (test/cron/cron_test.c) use,
in three time zones, from a fixed time, and shows each answer or error
(SQLSTATE, message, detail). run.sh runs it against the extension and the
SQL edition and compares: the two parsers must agree."""
import os
import re

here = os.path.dirname(os.path.abspath(__file__))
src = open(os.path.join(here, "..", "cron", "cron_test.c"), encoding="utf-8").read()
found = re.findall(r'\b[a-z_]+\(__LINE__,\s*"((?:[^"\\]|\\.)*)"', src)
schedules = sorted(set(bytes(s, "utf-8").decode("unicode_escape") for s in found))
schedules += ["CRON_TZ=Europe/Paris 30 2 * * *", "TZ=Nowhere/City 0 0 * * *", "@daily extra"]


def lit(s):
    return "'" + s.replace("'", "''") + "'"


rows = ",\n".join(f"({lit(s)})" for s in schedules)
print(f"""CREATE FUNCTION pg_temp.answer(s text, zone text, due timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE st text; msg text; det text;
BEGIN
	RETURN qml.next_run(s, zone, due, timestamptz '2026-03-29 00:30:00+00')::text;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
	RETURN st || ': ' || msg || coalesce(' / ' || nullif(det, ''), '');
END $$;
SET TimeZone = 'UTC';
SELECT format('%s | %s | %s', s, coalesce(z, '-'), pg_temp.answer(s, z, d))
  FROM (VALUES {rows}) AS c(s),
	   (VALUES (NULL), ('Europe/Paris'), ('America/New_York')) AS t(z),
	   (VALUES (timestamptz '2026-03-29 00:30:00+00'), (timestamptz '2026-01-31 23:59:00+00')) AS w(d)
 ORDER BY 1;""")
