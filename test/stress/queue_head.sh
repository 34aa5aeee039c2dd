#!/usr/bin/env bash
# test/stress/queue_head.sh: claims that start at the queue's head
# (src/queue_head.c) neither lose nor strand jobs under concurrency.
#
# A backlog of 200,000 jobs at priorities 0-3; then, for 8 seconds, 4
# workers fetch 10 at a time (2,000 claims a second in all) and complete
# them, rolling back one claim in five, while for the first 7 of them 2
# producers enqueue more, one in ten of them urgent (priority 9). Every claim that rolls back, and
# every urgent job, lands before the head the other workers move forward.
# Then the workers drain the queue and
# the check is:
#   - every job succeeded exactly once (one claim that committed, one
#     completion), whatever was rolled back;
#   - no urgent job waited long: each was claimed within 900 ms of its
#     enqueue (a job the head hid would wait until the backlog ran out,
#     seconds later).
#
# Runs against the server PGHOST/PGPORT/PGUSER point at (scripts/env.sh), in
# a database of its own (qml_queue_head, or $QML_HEAD_DB), dropped on
# success. Needs the library preloaded (heads live in shared memory).
set -uo pipefail
db=${QML_HEAD_DB:-qml_queue_head}
work=$(mktemp -d /tmp/qml-queue-head.XXXXXX)
trap 'rm -rf "$work"' EXIT

. "$(dirname "$0")/lib.sh"

fresh_db
q -c "CREATE TABLE rolled_back (job_id bigint)" || exit 1
q -c "SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object(
		'method', 'backlog', 'queue', 'qh', 'priority', g % 4)) FROM generate_series(1, 200000) g))" \
	>/dev/null || die "enqueue failed"

head_flow "$work" qh

head_run "$work" -R 2000
left=$(q -c "SELECT count(*) FROM qml.jobs WHERE state = 'enqueued'")
echo "backlog left after 8 s: $left"
[ "$left" -gt 0 ] || echo "note: the backlog ran out; the urgent-job check is weaker"

fail=0
head_drain_and_check qh
urgent=$(q -c "SELECT count(*) FROM qml.jobs WHERE method = 'urgent'")
[ "$urgent" -gt 50 ] || die "only $urgent urgent jobs were enqueued"
check "each of $urgent urgent jobs was claimed within 900 ms of its enqueue (slowest: $(q -c "SELECT round(extract(epoch FROM max(started_at - enqueued_at)) * 1000) || ' ms' FROM qml.jobs WHERE method = 'urgent'"))" \
	"SELECT count(*) FROM qml.jobs WHERE method = 'urgent' AND started_at - enqueued_at > interval '900 ms'"

[ "$fail" = 0 ] || die "failed; database $db kept for inspection"
drop_db
echo "queue_head: ok"
