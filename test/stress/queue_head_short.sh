#!/usr/bin/env bash
# test/stress/queue_head_short.sh: claims that come back short or empty
# move the queue's head (src/queue_head.c) without passing a job.
#
# No backlog: for 8 seconds 4 workers fetch up to 10 jobs in a loop, as
# fast as they can, and complete them, rolling back one claim in five,
# while for the first 7 of them 2 producers enqueue 200 jobs a second each,
# one in ten of them urgent (priority 9). The workers keep up, so nearly
# every claim comes back short or empty and moves the head to the end of
# the queue, while jobs commit behind it and rolled-back claims land
# before it. Then the workers drain the queue and the check is:
#   - every job succeeded exactly once (one claim that committed, one
#     completion), whatever was rolled back;
#   - no job waited long: each was claimed within 1.5 s of its enqueue.
#     The workers run with qml.queue_head_nets off, so a job a short claim
#     passed would wait for the drain, seconds later, not for the walk from
#     the start of the queue that finds it within a second or two.
#
# Runs against the server PGHOST/PGPORT/PGUSER point at (scripts/env.sh), in
# a database of its own (qml_queue_head_short, or $QML_HEAD_SHORT_DB),
# dropped on success. Needs the library preloaded (heads live in shared
# memory).
set -uo pipefail
db=${QML_HEAD_SHORT_DB:-qml_queue_head_short}
work=$(mktemp -d /tmp/qml-queue-head-short.XXXXXX)
trap 'rm -rf "$work"' EXIT

. "$(dirname "$0")/lib.sh"

fresh_db
q -c "CREATE TABLE rolled_back (job_id bigint)" || exit 1

head_flow "$work" qs

# nets off for the workers (the producers claim nothing)
PGOPTIONS="-c qml.queue_head_nets=off" head_run "$work"

jobs=$(q -c "SELECT count(*) FROM qml.jobs")
[ "$jobs" -gt 1000 ] || die "only $jobs jobs were enqueued"
fail=0
head_drain_and_check qs
check "each job was claimed within 1.5 s of its enqueue (slowest: $(q -c "SELECT round(extract(epoch FROM max(started_at - enqueued_at)) * 1000) || ' ms' FROM qml.jobs"))" \
	"SELECT count(*) FROM qml.jobs WHERE started_at - enqueued_at > interval '1.5 s'"

[ "$fail" = 0 ] || die "failed; database $db kept for inspection"
drop_db
echo "queue_head_short: ok"
