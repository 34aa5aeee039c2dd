#!/usr/bin/env python3
"""test/chaos/check.py: the chaos run's invariants, checked after the drain.

    check.py DIR DB

DIR holds what run.sh recorded: acked (every id a producer's committed
statement returned), execs (handler.sh's S/E lines) and phases ("NAME START
END", epoch seconds). The rest is read from the database with psql. Prints
"ok ..." or "FAIL ..." per invariant and the figures (jobs/s per phase,
claim latency during the kill phase); exits 1 if an invariant failed.
Timings are printed, never asserted: the machine may be loaded.
"""
import collections
import subprocess
import sys

DIR, DB = sys.argv[1], sys.argv[2]
failures = 0


def check(name, cond, detail=""):
    global failures
    if cond:
        print("ok   " + name)
    else:
        failures += 1
        print("FAIL " + name + (": " + detail if detail else ""))


def rows(sql):
    out = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                          "-d", DB, "-c", sql], check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines()]


acked = {int(x) for x in open(DIR + "/acked").read().split() if x.strip().isdigit()}
phases = {}
for line in open(DIR + "/phases"):
    name, start, end = line.split()
    phases[name] = (float(start), float(end))

jobs = {}
for jid, state, attempts, maxa, method, run_at, last_error in rows(
        "SELECT id, state, attempts, max_attempts, method, run_at, "
        "translate(coalesce(last_error, ''), E'\\t\\n', '  ') FROM qml.jobs"):
    jobs[int(jid)] = (state, int(attempts), int(maxa), method, run_at, last_error)

events = collections.defaultdict(list)
for jid, frm, to, at, worker, error in rows(
        "SELECT job_id, coalesce(from_state::text, ''), to_state, extract(epoch FROM at), "
        "coalesce(worker, ''), translate(coalesce(error, ''), E'\\t\\n', '  ') "
        "FROM qml.job_events ORDER BY job_id, at, id"):
    events[int(jid)].append((frm, to, float(at), worker, error))

# when the server was killed (pg_ctl -m immediate)
restarts = [float(x) for x in open(DIR + "/restarts").read().split()]


def crash_between(t0, t1):
    # the runtime's claims do not wait for the disk (docs/libqml.md: "Claims do not
    # wait for the disk"): a claim committed up to wal_writer_delay before a
    # crash may be lost, and its job runs again with the same attempt number
    return any(t0 - 1.0 <= r <= t1 for r in restarts)


# executions: (job, attempt) -> [worker, start, end or None, outcome]
execs = {}
double_runs = []
claims_lost_in_crash = 0
for line in open(DIR + "/execs"):
    f = line.split()
    if len(f) < 5:
        continue
    key = (int(f[1]), int(f[2]))
    if f[0] == "S":
        if key in execs:
            if crash_between(execs[key][1], float(f[4])):
                claims_lost_in_crash += 1
            else:
                double_runs.append(key)
        execs[key] = [f[3], float(f[4]), None, None]
    elif f[0] == "E" and key in execs and len(f) >= 6:
        execs[key][2], execs[key][3] = float(f[4]), f[5]

print("figures: %d acknowledged ids, %d jobs, %d events, %d executions"
      % (len(acked), len(jobs), sum(map(len, events.values())), len(execs)))

missing = sorted(acked - jobs.keys())
check("every acknowledged id exists", not missing, "%d missing, e.g. %s" % (len(missing), missing[:5]))
unfinished = [j for j in acked & jobs.keys() if jobs[j][0] not in ("succeeded", "failed")]
check("every acknowledged job ended (succeeded or failed)", not unfinished,
      "%d not, e.g. %s" % (len(unfinished), [(j, jobs[j][0]) for j in unfinished[:5]]))
stuck = [j for j, v in jobs.items() if v[0] == "processing"]
check("none stuck in processing", not stuck, str(stuck[:5]))
check("no claim (job, attempt) ran twice, but for claims a server crash lost (%d)"
      % claims_lost_in_crash, not double_runs, str(double_runs[:5]))

by_job = collections.defaultdict(list)
for (jid, attempt), (worker, start, end, outcome) in execs.items():
    by_job[jid].append((start, end, attempt, worker, outcome))

undecided = []
for jid, (state, attempts, maxa, method, run_at, last_error) in jobs.items():
    outcomes = {e[4] for e in by_job.get(jid, [])}
    if state == "succeeded" and "ok" not in outcomes:
        undecided.append((jid, state, sorted(o or "-" for o in outcomes)))
    if state == "failed" and "fail" not in outcomes and attempts < maxa:
        undecided.append((jid, state, sorted(o or "-" for o in outcomes)))
check("every job ended as its handler decided", not undecided, str(undecided[:5]))


def by_worker(event_worker, worker):
    # the runtime names its sessions NAME@host:pid:n
    return event_worker == worker or event_worker.startswith(worker + "@")


def lost_between(jid, worker, start, until):
    """Whether the claim `worker` ran from `start` on was rescued before
    `until`. The handler may start after the rescue already (its worker
    was killed between claim and start): the claim is the worker's last
    one before the start."""
    claims = [at for frm, to, at, w, err in events[jid]
              if to == "processing" and by_worker(w, worker) and at <= start]
    if not claims:
        return False
    for frm, to, at, w, err in events[jid]:
        if frm == "processing" and to in ("enqueued", "awaiting_retry", "failed") \
                and max(claims) <= at <= until and by_worker(w, worker) \
                and (err.startswith("lease expired") or err.startswith("session of worker")):
            return True
    return False


overlaps = []
for jid, ex in by_job.items():
    # in claim order: a worker stopped between its claim and the handler's
    # start may start a lost claim after the next claim's run began
    ex.sort(key=lambda e: e[2])
    for a, b in zip(ex, ex[1:]):
        if a[1] is None or b[0] < a[1]:
            if not lost_between(jid, a[3], a[0], b[0]):
                overlaps.append((jid, a[2], b[2]))
check("no two executions of a job overlapped unless the first lost its lease", not overlaps,
      str(overlaps[:5]))

ticks = [v[4] for v in jobs.values() if v[3] == "tick"]
check("no recurring due time fired twice (%d runs)" % len(ticks), len(ticks) == len(set(ticks)))

allowed = {("", "enqueued"), ("", "scheduled"), ("scheduled", "enqueued"),
           ("enqueued", "processing"), ("processing", "succeeded"), ("processing", "failed"),
           ("processing", "awaiting_retry"), ("processing", "enqueued"),
           ("awaiting_retry", "enqueued")}
bad_chain, bad_worker, unaccounted = [], [], []
reasons = collections.Counter()
for jid, evs in events.items():
    prev, holder = None, None
    for frm, to, at, worker, err in evs:
        if (frm, to) not in allowed or (prev is not None and frm != prev) \
                or (prev is None and frm != ""):
            bad_chain.append((jid, frm, to))
            break
        if to == "processing":
            holder = worker
        elif frm == "processing":
            if worker != holder:
                bad_worker.append((jid, to, worker, holder))
            if to in ("enqueued", "awaiting_retry"):
                if err.startswith("session of worker"):
                    reasons["session ended"] += 1
                elif err.startswith("lease expired"):
                    reasons["lease expired"] += 1
                elif err:
                    reasons["handler retry"] += 1
                elif to == "enqueued":
                    reasons["released at shutdown"] += 1
                else:
                    unaccounted.append((jid, to))
        prev = to
    if jid in jobs and prev != jobs[jid][0]:
        bad_chain.append((jid, "last event", prev, jobs[jid][0]))
check("each job's history follows the state machine", not bad_chain, str(bad_chain[:5]))
check("only the lease holder finished or gave back a job", not bad_worker, str(bad_worker[:5]))
check("every re-run is accounted for by a kill, a lease expiry or a retry", not unaccounted,
      str(unaccounted[:5]))
print("re-runs: " + ", ".join("%s %d" % kv for kv in sorted(reasons.items())))

# jobs/s per phase: jobs finished in it
finished = [float(x[0]) for x in rows(
    "SELECT extract(epoch FROM finished_at) FROM qml.jobs WHERE finished_at IS NOT NULL")]
for name, (t0, t1) in phases.items():
    n = sum(1 for t in finished if t0 <= t < t1)
    print("jobs/s %-7s %7.1f  (%d jobs in %.0f s)" % (name, n / max(t1 - t0, 1e-9), n, t1 - t0))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


# claim latency: from the moment a job was ready (enqueued, or rescued
# after its session ended: a backoff then counts) to its claim. A second
# loss in a row backs off on purpose and is counted apart.
if "kill" in phases:
    t0, t1 = phases["kill"]
    lat, first_loss, repeat_loss = [], [], []
    for jid, evs in events.items():
        ready, lost = None, None
        for frm, to, at, worker, err in evs:
            if to == "processing":
                if ready is not None and t0 <= at < t1:
                    lat.append(at - ready)
                    {None: [], "enqueued": first_loss,
                     "awaiting_retry": repeat_loss}[lost].append(at - ready)
                ready, lost = None, None
            elif frm == "processing" and err.startswith("session of worker"):
                ready, lost = at, to
            elif to == "enqueued" and ready is None:
                ready = at
            elif to in ("awaiting_retry", "scheduled"):
                ready = None
    print("claim latency in the kill phase: %d claims, p50 %.0f ms, p99 %.0f ms, max %.0f ms"
          % (len(lat), pct(lat, .5) * 1e3, pct(lat, .99) * 1e3, max(lat or [0]) * 1e3))
    print("  after a first session loss: %d, p50 %.0f ms, p99 %.0f ms, max %.0f ms"
          % (len(first_loss), pct(first_loss, .5) * 1e3, pct(first_loss, .99) * 1e3,
             max(first_loss or [0]) * 1e3))
    print("  after a second loss in a row (backs off on purpose): %d, p50 %.0f ms"
          % (len(repeat_loss), pct(repeat_loss, .5) * 1e3))
sys.exit(1 if failures else 0)
