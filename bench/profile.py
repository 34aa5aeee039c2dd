#!/usr/bin/env python3
"""bench/profile.py: reads `perf script -F pid,ip,sym` of qml's server
processes (bench/profile.sh) and prints where their CPU went: each process's
share, then each part's share of all of it. A sample counts for the first
part (in the order below) with a function on its stack, so a history flush
inside a completion counts as history, the WAL written inside a commit as
WAL. Names come from the first argument, a file of "pid|name" lines."""
import collections
import re
import sys

PARTS = [
    ("history (job_history.c; 1.2: history_inline.c)", r"^(qml_history_flush|qml_jobs_flush|qml_history_add|write_directly|write_by_statement|append_history|qml_history_append|qml_history_wanted)$"),
    ("counts (job_counts.c)", r"^(qml_counts_\w+|qml_job_counts_\w+|counts_xact_callback)$"),
    ("wakeups (wakeup.c)", r"^(qml_wakeup\w*|wakeup_xact_callback|PreCommit_Notify|AtCommit_Notify|Async_Notify)$"),
    ("WAL write, flush, segment init", r"^(XLogFlush|XLogWrite|XLogBackgroundFlush|XLogFileInit\w*|issue_xlog_fsync)$"),
    ("claim (claim_lock.c, worker_write.c)", r"^(qml_claim_directly|qml_lock_claimable|run_claim|claim_from_queue)$"),
    ("fetch, rest", r"^qml_fetch$"),
    ("completion (worker_write.c)", r"^(qml_complete_directly|qml_complete_batch|qml_complete)$"),
    ("heartbeat", r"^qml_heartbeat\w*$"),
    ("scheduler pass", r"^(run_pass|qml_maintain_pass|qml_stats_rollup)$"),
    ("commit, rest", r"^(CommitTransactionCommand|CommitTransaction)$"),
    ("parse, plan, executor start", r"^(exec_parse_message|exec_bind_message|pg_plan_queries|PortalStart|standard_ExecutorStart)$"),
    ("client protocol", r"^(pq_getbyte|pq_getmessage|secure_read|secure_write|internal_flush|socket_flush|pq_recvbuf|__send)$"),
    ("lock sleeps, context switches", r"^(PGSemaphoreLock|__new_sem_wait_slow64.*|__futex_abstimed_wait_common|finish_task_switch.*)$"),
    ("rest of the statement (executor)", r"^(standard_ExecutorRun|ExecMakeTableFunctionResult|fmgr_security_definer)$"),
]
RX = [(name, re.compile(rx)) for name, rx in PARTS]


def main():
    names = {}
    with open(sys.argv[1]) as f:
        for line in f:
            pid, _, name = line.strip().partition("|")
            names[pid] = name
    per_pid = collections.Counter()
    per_part = collections.Counter()
    part_pid = collections.defaultdict(collections.Counter)
    pid = None
    stack = []

    def done():
        if pid is None:
            return
        part = "other"
        for name, rx in RX:
            if any(rx.match(fn) for fn in stack):
                part = name
                break
        per_pid[pid] += 1
        per_part[part] += 1
        part_pid[part][pid] += 1

    for line in sys.stdin:
        if not line.strip():
            done()
            pid, stack = None, []
        elif not line[0].isspace():
            pid, stack = line.split()[0].split("/")[0], []
        else:
            f = line.split()
            if len(f) >= 2:
                stack.append(f[1])
    done()
    total = sum(per_pid.values()) or 1
    # processes of one name together: 16 pgbench clients are one line
    per_name = collections.Counter()
    count = collections.Counter()
    for p, n in per_pid.items():
        per_name[names.get(p, "?")] += n
        count[names.get(p, "?")] += 1
    print("server CPU by process (%d samples)" % total)
    for name, n in per_name.most_common():
        print("  %5.1f%%  %s%s" % (100.0 * n / total, name,
                                   " (%d processes)" % count[name] if count[name] > 1 else ""))
    print("server CPU by part (the processes it ran in)")
    for part, n in per_part.most_common():
        by_name = collections.Counter()
        for p, k in part_pid[part].items():
            by_name[names.get(p, "?")] += k
        procs = ", ".join("%s %.0f%%" % (name, 100.0 * k / n)
                          for name, k in by_name.most_common(3))
        print("  %5.1f%%  %-38s [%s]" % (100.0 * n / total, part, procs))


main()
