#!/usr/bin/env bash
# test/scheduler/recurring.sh: an interval recurring job fires once per
# interval; cron schedules get their next run in their time zone; bad
# schedules, time zones and names are refused with a SQLSTATE and change
# nothing; qml.maintain() fires due runs too, once.
. "$(dirname "$0")/lib.sh"
db=qml_sched_recurring
newdb $db || exit 1
wait_scheduler $db

# --- every second: runs due at first, +1 s, +2 s, +3 s are 4 runs by +3.9 s
first=$(q $db -c "SELECT qml.add_recurring('tick', '1 second', 'tick_job', '{\"n\": 1}', queue => 'ticks')")
n=$(poll 6 $db "SELECT CASE WHEN clock_timestamp() > '$first'::timestamptz + interval '3.9 s'
	THEN count(*) FILTER (WHERE run_at <= '$first'::timestamptz + interval '3.9 s') END
	FROM qml.jobs WHERE method = 'tick_job'" 4)
check "interval job fired once per interval (4 runs in 4 intervals)" 4 "$n"
check "one job per due time, one second apart, from the first" "t t" "$(q $db -F ' ' -c "
	SELECT count(DISTINCT run_at) = count(*), bool_and(run_at = '$first'::timestamptz + (rn - 1) * interval '1 s')
	  FROM (SELECT run_at, row_number() OVER (ORDER BY run_at) AS rn FROM qml.jobs WHERE method = 'tick_job') x")"
check "jobs carry the arguments and queue" "{\"n\": 1} ticks" "$(q $db -F ' ' -c "SELECT DISTINCT arguments, queue FROM qml.jobs WHERE method = 'tick_job'")"
check "the row shows last and next run" "t t" "$(q $db -F ' ' -c "SELECT last_run_at = (SELECT max(run_at) FROM qml.jobs WHERE method = 'tick_job'), next_run_at = last_run_at + interval '1 s' FROM qml.recurring WHERE name = 'tick'")"
check "remove_recurring" "t f" "$(q $db -F ' ' -c "SELECT qml.remove_recurring('tick'), qml.remove_recurring('tick')")"
n=$(q $db -c "SELECT count(*) FROM qml.jobs WHERE method = 'tick_job'")
sleep 1.2
check "a removed job fires no more" "$n" "$(q $db -c "SELECT count(*) FROM qml.jobs WHERE method = 'tick_job'")"

# --- cron: next run computed in the schedule's time zone
check "5-field cron, UTC" "t" "$(q $db -c "SELECT qml.add_recurring('c5', '*/5 * * * *', 'x') = date_bin('5 minutes', now(), '2000-01-01') + interval '5 minutes'")"
check "@hourly" "t" "$(q $db -c "SELECT qml.add_recurring('hourly', '@hourly', 'x') = date_trunc('hour', now()) + interval '1 hour'")"
paris="(date_trunc('day', now() AT TIME ZONE 'Europe/Paris') + interval '9 hours')"
check "09:00 in Europe/Paris (timezone argument)" "t" "$(q $db -c "SELECT qml.add_recurring('paris', '0 9 * * *', 'x', timezone => 'Europe/Paris') AT TIME ZONE 'Europe/Paris' IN ($paris, $paris + interval '1 day')")"
check "09:00 in Europe/Paris (CRON_TZ= prefix)" "t" "$(q $db -c "SELECT qml.add_recurring('paris2', 'CRON_TZ=Europe/Paris 0 9 * * *', 'x') = (SELECT next_run_at FROM qml.recurring WHERE name = 'paris')")"
check "DST: 02:30 on the day Paris springs forward runs at 03:30 local" "2026-03-29 03:30:00" "$(q $db -c "SELECT qml.next_run('30 2 29 3 *', 'Europe/Paris', '2026-03-01 00:00+00', '2026-03-01 00:00+00') AT TIME ZONE 'Europe/Paris'")"
check "a missed interval run fires once, then keeps the cadence" "2026-01-01 00:00:40+00" "$(q $db -c "SET TIME ZONE UTC; SELECT qml.next_run('10 seconds', NULL, '2026-01-01 00:00:00+00', '2026-01-01 00:00:35+00')")"

# --- bad input: SQLSTATE, reason, nothing changed
before=$(q $db -c "SELECT count(*) FROM qml.recurring")
check "invalid cron: 22023" 22023 "$(sqlstate $db "SELECT qml.add_recurring('bad', '61 * * * *', 'x')")"
check "... with the parser's reason" "Minute field" "$(psql -X -d $db -c "SELECT qml.add_recurring('bad', '61 * * * *', 'x')" 2>&1 | sed -n 's/^DETAIL:  \(Minute field\).*/\1/p')"
check "invalid interval: 22023" 22023 "$(sqlstate $db "SELECT qml.add_recurring('bad', 'every tuesday-ish', 'x')")"
check "schedule that never runs: 22023" 22023 "$(sqlstate $db "SELECT qml.add_recurring('bad', '0 0 30 2 *', 'x')")"
check "unknown time zone: 22023" 22023 "$(sqlstate $db "SELECT qml.add_recurring('bad', '0 9 * * *', 'x', timezone => 'Mars/Olympus')")"
check "two different time zones: 22023" 22023 "$(sqlstate $db "SELECT qml.add_recurring('bad', 'CRON_TZ=UTC 0 9 * * *', 'x', timezone => 'Europe/Paris')")"
check "duplicate name: 23505" 23505 "$(sqlstate $db "SELECT qml.add_recurring('c5', '@daily', 'y')")"
check "null schedule: 22004" 22004 "$(sqlstate $db "SELECT qml.add_recurring('bad', NULL, 'x')")"
check "empty name: 22023" 22023 "$(sqlstate $db "SELECT qml.add_recurring('', '@daily', 'x')")"
check "max_attempts 0: 22023" 22023 "$(sqlstate $db "SELECT qml.add_recurring('bad', '@daily', 'x', max_attempts => 0)")"
check "nothing changed" "$before c5 */5 * * * *" "$(q $db -F ' ' -c "SELECT (SELECT count(*) FROM qml.recurring), name, schedule FROM qml.recurring WHERE name = 'c5'")"

# --- qml.maintain() fires a due run, once, even with the scheduler about
q $db -c "SELECT qml.add_recurring('by_hand', '1 hour', 'by_hand_job')" >/dev/null
check "maintain() fires a due run" "1 1" "$(q $db -c "BEGIN" -c "UPDATE qml.recurring SET next_run_at = now() - interval '1 minute' WHERE name = 'by_hand'" -c "SELECT qml.maintain()->>'fired'" -c "SELECT count(*) FROM qml.jobs WHERE method = 'by_hand_job'" -c "COMMIT" | tr '\n' ' ' | sed 's/ $//')"
sleep 0.5
check "and only once" 1 "$(q $db -c "SELECT count(*) FROM qml.jobs WHERE method = 'by_hand_job'")"
check "its next run is on cadence" t "$(q $db -c "SELECT next_run_at > now() AND next_run_at <= now() + interval '1 hour' FROM qml.recurring WHERE name = 'by_hand'")"

dropdb_ $db
finish
