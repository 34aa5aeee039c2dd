#!/usr/bin/env python3
"""test/dashboard/api_test.py: `qml dashboard` end to end (run by api.sh).

Starts dashboards on the test cluster's database qml_dashboard_test (one
with a token as the superuser, one read-only as a role with worker rights
and SELECT on qml's tables) and checks every route, paging across 10,000
jobs, filters, bad ids, unknown routes, tokens, SQL injection in every
parameter, size limits, the WebSocket (handshake, first message, a push),
that 10 pages cost the database what 1 does, and the database stopping
and starting under the dashboard. Prints ok/FAIL per check; exits 1 when
one failed. Only the standard library: the WebSocket is a raw socket.
"""
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
QML = os.path.join(ROOT, "client", "qml")
DB = "qml_dashboard_test"
PGPORT = int(os.environ.get("PGPORT", "5499"))
PORT = 13000 + PGPORT           # the dashboard with a token
RO_PORT = PORT + 1              # the read-only one
TOKEN = "s3cret-token"
passed = failed = 0
procs = []


def ok(name):
    global passed
    passed += 1
    print("ok   " + name, flush=True)


def bad(name, why=""):
    global failed
    failed += 1
    print("FAIL " + name + (": " + str(why)[:300] if why else ""), flush=True)


def check(cond, name, why=""):
    (ok if cond else bad)(name, *([] if cond else [why]))
    return cond


def sql(query, db=DB):
    r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", query],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("psql: " + r.stderr)
    return r.stdout.strip()


def request(port, path, method="GET", headers=None, body=None, timeout=10):
    """(status, headers, parsed JSON or text) of one request; status 0 when nothing answered."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=body,
                                 method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, hdrs, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, e.headers, e.read()
    except (urllib.error.URLError, ConnectionError, socket.timeout) as e:
        return 0, {}, str(e)
    try:
        return status, hdrs, json.loads(raw)
    except ValueError:
        return status, hdrs, raw.decode("utf-8", "replace")


def get(path, port=PORT):
    return request(port, path)


def post(path, token=TOKEN, port=PORT, body=None):
    headers = {"Authorization": "Bearer " + token} if token is not None else {}
    return request(port, path, "POST", headers, body)


def is_error(body):
    return isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]


def start_dashboard(port, url, token=None, extra=(), env=None):
    args = [QML, "dashboard", "--listen", "127.0.0.1:%d" % port, "--database", url]
    if token:
        args += ["--token", token]
    log = open("/tmp/qml-dashboard-test-%d.log" % port, "w")
    p = subprocess.Popen(args + list(extra), stdout=log, stderr=subprocess.STDOUT,
                         env={**os.environ, "PGDATABASE": DB, **(env or {})})
    procs.append(p)
    for _ in range(100):
        if get("/healthz", port)[0] == 200:
            return p
        time.sleep(0.1)
    return p


def metric(name, port=PORT):
    _, _, text = get("/metrics", port)
    m = re.search(r"^%s (\S+)$" % re.escape(name), text if isinstance(text, str) else "", re.M)
    return float(m.group(1)) if m else None


def wait_for(fn, seconds):
    end = time.time() + seconds
    while time.time() < end:
        if fn():
            return True
        time.sleep(0.1)
    return False


# ---- a minimal WebSocket client (RFC 6455): handshake, read text frames ----

class WS:
    def __init__(self, port, path="/ws", host=None, origin=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "Origin: %s\r\n" % origin if origin else ""
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n%s"
                           "Sec-WebSocket-Version: 13\r\n\r\n"
                           % (path, host or "127.0.0.1:%d" % port, key, extra)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else 0

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def message(self, timeout=5):
        """The next text message as JSON, None on timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                b0, b1 = self._need(2)
                n = b1 & 0x7F
                if n == 126:
                    n = int.from_bytes(self._need(2), "big")
                elif n == 127:
                    n = int.from_bytes(self._need(8), "big")
                payload = self._need(n)
                if b0 & 0x0F == 1:
                    return json.loads(payload)
        except (socket.timeout, ConnectionError):
            return None

    def rest(self, timeout=2):
        """What follows the response's headers, to the connection's end (after a refusal)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
        except (socket.timeout, ConnectionError):
            pass
        return self.buf.decode("utf-8", "replace")

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------------

def test_basics():
    print("# routes, shapes, headers")
    s, h, b = get("/healthz")
    check(s == 200 and b == {"ok": True, "database": "up"}, "GET /healthz: 200 up", b)
    check(h.get("X-Content-Type-Options") == "nosniff" and h.get("Referrer-Policy") == "no-referrer",
          "JSON responses carry nosniff and no-referrer", dict(h))
    s, _, b = get("/api/stats")
    check(s == 200 and set(b.get("totals", {})) == {"scheduled", "enqueued", "processing", "succeeded",
                                                     "failed", "awaiting_retry", "deleted"}
          and isinstance(b.get("queues"), list) and "lag_seconds" in b.get("scheduler", {})
          and isinstance(b.get("at"), str), "GET /api/stats: totals, queues, scheduler, at", b)
    s, _, b = get("/api/queues")
    keys = {"queue", "enqueued", "processing", "scheduled", "awaiting_retry", "failed", "succeeded",
            "deleted", "paused", "oldest_waiting_seconds", "jobs_per_second"}
    check(s == 200 and b["queues"] and all(set(q) == keys for q in b["queues"]),
          "GET /api/queues: every queue with its fields", b)
    q = {x["queue"]: x for x in b["queues"]}.get("page", {})
    check(q.get("enqueued") == 10000 and q.get("oldest_waiting_seconds") is not None,
          "queue page: 10000 enqueued, an oldest waiting age", q)
    # the scheduler rolls the counts up within a second or so
    wait_for(lambda: sum(x["failed"] for x in get("/api/throughput?minutes=60")[2]["buckets"]) >= 1, 5)
    s, _, b = get("/api/throughput?minutes=60")
    check(s == 200 and len(b["buckets"]) == 60 and b["buckets"][0]["at"] < b["buckets"][-1]["at"]
          and sum(x["failed"] for x in b["buckets"]) >= 1,
          "GET /api/throughput: 60 buckets oldest first, the failed job counted", b)
    s, _, b = get("/api/throughput?minutes=5")
    check(s == 200 and len(b["buckets"]) == 5, "GET /api/throughput?minutes=5: 5 buckets", b)
    s, _, b = get("/api/recurring")
    r = [x for x in b.get("recurring", []) if x["name"] == "nightly"]
    check(s == 200 and r and r[0]["cron"] == "0 3 * * *" and r[0]["next_run"] and "last_run" in r[0],
          "GET /api/recurring: name, cron, next_run, last_run", b)
    s, _, b = get("/api/running")
    run = [j for j in b.get("jobs", []) if j["id"] == RUNNING]
    check(s == 200 and run and run[0]["locked_by"] == "w-test" and run[0]["elapsed_seconds"] >= 0,
          "GET /api/running: the claimed job, its worker and elapsed time", b)
    s, _, b = get("/api/workers")
    w = [x for x in b.get("workers", []) if x["worker"] == "w-test"]
    check(s == 200 and w and w[0]["jobs"] == 1 and w[0]["last_seen"], "GET /api/workers: the lease holder", b)
    s, h, text = get("/metrics")
    need = ["qml_jobs{queue=\"page\",state=\"enqueued\"} 10000", "qml_jobs_succeeded_total{",
            "qml_jobs_failed_total{", "qml_queue_oldest_waiting_seconds{", "qml_queue_paused{",
            "qml_scheduler_lag_seconds ", "qml_dashboard_database_up 1", "qml_dashboard_websocket_clients ",
            "qml_dashboard_queries_total "]
    check(s == 200 and all(n in text for n in need), "GET /metrics: every metric",
          [n for n in need if n not in str(text)])
    s, h, text = get("/")
    check(s == 200 and "<html" in text.lower() and h.get("Content-Type", "").startswith("text/html"),
          "GET /: the page", text[:100])
    csp = h.get("Content-Security-Policy", "")
    check("script-src 'self'" in csp and "default-src 'self'" in csp and "frame-ancestors 'none'" in csp,
          "the page carries the Content-Security-Policy", csp)
    check(not re.search(r'(src|href)="?https?://', text, re.I), "the page loads nothing from outside")
    s, h, text = get("/assets/chart.js")
    check(s == 200 and "javascript" in h.get("Content-Type", "") and len(text) > 10000,
          "GET /assets/chart.js: Debian's Chart.js, embedded", (s, h.get("Content-Type")))
    # HEAD: GET's status and headers, no body (one would be read as the
    # start of the next response on a kept-alive connection)
    for path in ("/", "/api/stats", "/api/jobs/%d" % RUNNING, "/metrics", "/api/nope"):
        sock = socket.create_connection(("127.0.0.1", PORT), timeout=5)
        sock.sendall(("HEAD %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
        reply = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        sock.close()
        head, _, rest = reply.partition(b"\r\n\r\n")
        check(head.startswith(b"HTTP/1.1 ") and rest == b"", "HEAD %s: headers, no body" % path,
              (head[:40], len(rest)))


def test_paging():
    print("# paging across 10,000 jobs")
    want = [int(x) for x in sql("SELECT id FROM qml.jobs WHERE queue = 'page' ORDER BY id DESC").split()]
    for limit in (500, 137):
        seen, cursor, pages = [], None, 0
        while pages < 200:
            path = "/api/jobs?queue=page&limit=%d" % limit + ("&after=" + cursor if cursor else "")
            s, _, b = get(path)
            if s != 200:
                bad("page %d (limit %d)" % (pages, limit), b)
                break
            seen += [j["id"] for j in b["jobs"]]
            pages += 1
            cursor = b["next"]
            if cursor is None:
                break
        check(seen == want, "limit %d: %d pages, every job once, newest first, no gaps" % (limit, pages),
              "got %d ids, %d distinct" % (len(seen), len(set(seen))))
    s, _, b = get("/api/jobs")
    check(s == 200 and len(b["jobs"]) == 50 and b["next"], "default limit 50, with a next cursor", len(b.get("jobs", [])))


def test_filters():
    print("# filters")
    s, _, b = get("/api/jobs?state=failed&limit=10")
    check(s == 200 and XSS in [j["id"] for j in b["jobs"]] and all(j["state"] == "failed" for j in b["jobs"]),
          "state=failed: only failed jobs, the failed one listed", b)
    s, _, b = get("/api/jobs?method=mail.send")
    check(s == 200 and len(b["jobs"]) == 3 and all(j["method"] == "mail.send" for j in b["jobs"]),
          "method=mail.send: its 3 jobs", b)
    s, _, b = get("/api/jobs?queue=mail&method=mail.send&state=enqueued")
    check(s == 200 and len(b["jobs"]) == 3, "queue, method and state together", b)
    s, _, b = get("/api/jobs?id=%d" % XSS)
    check(s == 200 and [j["id"] for j in b["jobs"]] == [XSS] and b["next"] is None, "id=N: that job", b)
    s, _, b = get("/api/jobs?id=%d&state=enqueued" % XSS)
    check(s == 200 and b["jobs"] == [], "id=N with another state: none", b)
    s, _, b = get("/api/jobs?queue=")
    check(s == 400 and is_error(b) and "queue must not be empty" in b["error"],
          "queue= (empty): 400, saying the queue must not be empty", (s, b))
    # "retrying", as qml stats calls awaiting_retry and qml jobs --state takes it
    s, _, b = get("/api/jobs?state=retrying&limit=500")
    s2, _, b2 = get("/api/jobs?state=awaiting_retry&limit=500")
    check(s == 200 and s2 == 200 and b == b2, "state=retrying: the awaiting_retry jobs", (s, b, b2))
    s, _, b = get("/api/jobs?queue=nosuchqueue")
    check(s == 200 and b == {"jobs": [], "next": None}, "an unknown queue: an empty list", b)
    for q, why in [("state=running", "unknown state"), ("limit=0", "limit 0"), ("limit=501", "limit 501"),
                   ("limit=abc", "limit abc"), ("after=abc", "cursor abc"), ("after=-5", "cursor -5"),
                   ("id=1.5", "id 1.5"), ("limit=%2010", "limit ' 10'"), ("limit=10%20", "limit '10 '"),
                   ("minutes=0", None), ("minutes=%2060", None),
                   # given empty is not absent: qml jobs --queue '' is refused too
                   ("queue=", "queue ''"), ("method=", "method ''"), ("state=", "state ''"),
                   ("id=", "id ''"), ("limit=", "limit ''")]:
        if why is None:
            s, _, b = get("/api/throughput?" + q)
            why = "throughput " + q
        else:
            s, _, b = get("/api/jobs?" + q)
        check(s == 400 and is_error(b), "%s: 400 with an error" % why, (s, b))
    # a misspelt or unknown parameter is refused, naming it, not ignored
    for path, name in [("/api/jobs?stat=failed", "stat"), ("/api/jobs?state=failed&limt=5", "limt"),
                       ("/api/stats?queue=mail", "queue"), ("/api/queues?x", "x"),
                       ("/api/throughput?minutes=5&minute=6", "minute"), ("/api/jobs/%d?full=1" % XSS, "full"),
                       ("/api/running?limit=5", "limit"), ("/api/recurring?name=nightly", "name"),
                       ("/api/workers?all", "all")]:
        s, _, b = get(path)
        check(s == 400 and is_error(b) and ('"%s"' % name) in b["error"],
              "GET %s: 400 naming the unknown parameter" % path, (s, b))
    s, _, b = post("/api/queues/mail/pause?now=1")
    check(s == 400 and is_error(b) and sql("SELECT count(*) FROM qml.queues WHERE name = 'mail' AND paused") == "0",
          "POST with an unknown parameter: 400, the queue not paused", (s, b))
    s, _, b = get("/api/jobs?queue=mail&&limit=2")
    check(s == 200 and len(b["jobs"]) == 2, "an empty piece of the query string (&&) is no parameter", (s, b))
    # a NUL byte (%00) cuts a C string short: "mail%00x" must not be read as queue "mail"
    for path in ("/api/jobs?queue=mail%00x", "/api/jobs?method=mail.send%00", "/api/jobs?state=failed%00x"):
        s, _, b = get(path)
        check(s == 400 and is_error(b) and "NUL" in b["error"], "GET %s: 400" % path, (s, b))


def test_job():
    print("# one job")
    s, _, b = get("/api/jobs/%d" % XSS)
    j = b.get("job", {}) if isinstance(b, dict) else {}
    check(s == 200 and j.get("arguments") == ["<script>alert(1)</script>"] and j.get("last_error") == "broken"
          and [e["to_state"] for e in b["events"]] == ["enqueued", "processing", "failed"],
          "GET /api/jobs/{id}: arguments as JSON, error, history", b)
    check(set(j) >= {"id", "queue", "method", "arguments", "priority", "state", "attempts", "max_attempts",
                     "run_at", "created_at", "enqueued_at", "started_at", "finished_at", "locked_by",
                     "locked_until", "last_error", "result", "unique_key"}, "the job object has every field", j)
    for bad_id in ("abc", "0", "-1", "1x", "99999999999999999999", "%27%20OR%201=1"):
        s, _, b = get("/api/jobs/" + bad_id)
        check(s == 400 and is_error(b), "GET /api/jobs/%s: 400" % bad_id, (s, b))
    s, _, b = get("/api/jobs/987654321")
    check(s == 404 and is_error(b), "an unknown job: 404 with an error", (s, b))
    # the path is decoded by the dashboard: %00 and a bad % escape are 400,
    # and "%d%%00" is not job %d
    for path in ("/api/jobs/%d%%00" % XSS, "/api/jobs/%d%%00x" % XSS, "/api/jobs/%zz", "/api/jobs/1%", "/api/jobs%00"):
        s, _, b = get(path)
        check(s == 400 and is_error(b), "GET %s: 400" % path, (s, b))
    s, _, b = get("/api/jobs/%%%X" % (0x30 + int(str(XSS)[0])) + str(XSS)[1:])
    check(s == 200 and b["job"]["id"] == XSS, "a percent-encoded digit is that digit", (s, b))
    before = sql("SELECT count(*) FROM qml.queues")
    for path in ("/api/queues/mail%00x/pause", "/api/queues/mail%/pause", "/api/recurring/nightly%00/run",
                 "/api/jobs/%d%%00/retry" % XSS):
        s, _, b = post(path)
        check(s == 400 and is_error(b), "POST %s: 400" % path, (s, b))
    check(sql("SELECT count(*) FROM qml.queues") == before and
          sql("SELECT count(*) FROM qml.queues WHERE paused") == "0" and
          sql("SELECT count(*) FROM qml.jobs WHERE method = 'report.nightly'") == "0",
          "... and none of them paused a queue or ran a job")
    for path in ("/api/nope", "/nope", "/api/jobs/1/nope", "/assets/nope.js", "/api"):
        s, _, b = get(path)
        check(s == 404 and is_error(b), "GET %s: 404 with a JSON body" % path, (s, b))
    s, _, b = request(PORT, "/api/stats", "POST", {"Authorization": "Bearer " + TOKEN})
    check(s == 405 and is_error(b), "POST /api/stats: 405", (s, b))
    s, _, b = get("/api/jobs/%d/retry" % XSS)
    check(s == 405 and is_error(b), "GET on a write route: 405", (s, b))


def test_actions():
    print("# actions and tokens")
    s, _, b = post("/api/jobs/%d/retry" % XSS, token=None)
    check(s == 401 and is_error(b), "retry without a token: 401", (s, b))
    for wrong in ("wrong", TOKEN[:-1], TOKEN + "x", ""):
        s, _, b = post("/api/jobs/%d/retry" % XSS, token=wrong)
        check(s == 403 and is_error(b), "retry with token %r: 403" % wrong, (s, b))
    s, _, b = request(PORT, "/api/jobs/%d/retry" % XSS, "POST", {"Authorization": "Basic " + TOKEN})
    check(s == 401, "another scheme: 401", (s, b))
    check(sql("SELECT state FROM qml.jobs WHERE id = %d" % XSS) == "failed", "refused retries changed nothing")
    s, _, b = post("/api/jobs/%d/retry" % XSS)
    check(s == 200 and b == {"ok": True, "id": XSS} and sql("SELECT state FROM qml.jobs WHERE id = %d" % XSS) == "enqueued",
          "retry with the token: 200, enqueued again", b)
    s, _, b = post("/api/jobs/%d/retry" % XSS)
    check(s == 409 and is_error(b), "retry of a live job: 409", (s, b))
    s, _, b = post("/api/jobs/%d/delete" % XSS)
    check(s == 200 and sql("SELECT state FROM qml.jobs WHERE id = %d" % XSS) == "deleted", "delete: 200, deleted", b)
    s, _, b = post("/api/jobs/%d/delete" % XSS)
    check(s == 409 and is_error(b), "delete of a finished job: 409", (s, b))
    s, _, b = post("/api/jobs/987654321/retry")
    check(s == 404 and is_error(b), "retry of an unknown job: 404", (s, b))
    s, _, b = post("/api/jobs/abc/delete")
    check(s == 400 and is_error(b), "delete of a bad id: 400", (s, b))
    s, _, b = post("/api/queues/mail/pause")
    check(s == 200 and b == {"ok": True, "queue": "mail"}
          and sql("SELECT paused FROM qml.queues WHERE name = 'mail'") == "t", "pause: 200, paused", b)
    check(wait_for(lambda: any(q["queue"] == "mail" and q["paused"] for q in get("/api/queues")[2]["queues"]), 3),
          "the queue shows paused")
    s, _, b = post("/api/queues/mail/resume")
    check(s == 200 and sql("SELECT paused FROM qml.queues WHERE name = 'mail'") == "f", "resume: 200, resumed", b)
    s, _, b = post("/api/queues/" + "q" * 200 + "/pause")
    check(s == 400 and is_error(b), "pause of a too long queue name: 400", (s, b))
    before = int(sql("SELECT count(*) FROM qml.jobs WHERE method = 'report.nightly'"))
    s, _, b = post("/api/recurring/nightly/run")
    check(s == 200 and b.get("ok") and sql("SELECT method FROM qml.jobs WHERE id = %s" % b.get("id", 0)) == "report.nightly"
          and int(sql("SELECT count(*) FROM qml.jobs WHERE method = 'report.nightly'")) == before + 1,
          "run a recurring job now: 200, one job", b)
    s, _, b = post("/api/recurring/nosuch/run")
    check(s == 404 and is_error(b), "run an unknown recurring job: 404", (s, b))
    s, _, b = post("/api/jobs/%d/retry" % XSS, body=b"{not json")
    check(s == 400 and is_error(b), "a body that is not JSON: 400", (s, b))
    s, _, b = post("/api/jobs/%d/retry" % XSS, body=b"x" * (70 * 1024))
    check(s == 413 and is_error(b), "a 70 KiB body: 413", (s, b))
    s, _, b = get("/api/jobs?queue=" + "a" * (10 * 1024))
    check(s in (400, 413, 414) and is_error(b), "a 10 KiB URL: %d with an error" % s, (s, b))
    # a lying Content-Length does not make it read more than the limit
    sock = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    sock.sendall(b"POST /api/queues/mail/pause HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN.encode()
                 + b"\r\nContent-Length: 100000000\r\n\r\n" + b"[" * 1000)
    reply = sock.recv(4096)
    sock.close()
    check(reply.startswith(b"HTTP/1.1 413"), "a huge Content-Length: 413 at once", reply[:40])
    check(get("/healthz")[0] == 200, "the server still answers")


def test_read_only():
    print("# read-only, as a role with worker rights and SELECT on qml's tables")
    sql("DROP ROLE IF EXISTS qml_dash_ro; CREATE ROLE qml_dash_ro LOGIN; SELECT qml.grant_worker('qml_dash_ro');"
        " GRANT SELECT ON ALL TABLES IN SCHEMA qml TO qml_dash_ro")
    start_dashboard(RO_PORT, "postgresql://qml_dash_ro@127.0.0.1:%d/%s" % (PGPORT, DB))
    for path in ("/api/stats", "/api/queues", "/api/jobs?limit=5", "/api/jobs/%d" % XSS, "/api/running",
                 "/api/recurring", "/api/throughput", "/api/workers", "/metrics", "/healthz"):
        s, _, b = get(path, RO_PORT)
        check(s == 200, "read-only role: GET %s 200" % path, (s, b))
    s, _, b = post("/api/queues/mail/pause", port=RO_PORT)
    check(s == 403 and b.get("error") == "read-only: start qml dashboard with --token", "without a token: writes 403", b)


def test_options():
    print("# QML_DASHBOARD_TOKEN, the global -d, a database that is not there")
    port = PORT + 2
    p = subprocess.Popen([QML, "-d", "postgresql://postgres@127.0.0.1:%d/%s" % (PGPORT, DB), "dashboard",
                          "--listen", "127.0.0.1:%d" % port], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env={**os.environ, "QML_DASHBOARD_TOKEN": "from-env"})
    procs.append(p)
    check(wait_for(lambda: get("/healthz", port)[0] == 200, 10), "qml -d URL dashboard: up")
    s, _, b = post("/api/recurring/nosuch/run", token="from-env", port=port)
    check(s == 404, "the token from QML_DASHBOARD_TOKEN is accepted (404: no such recurring job)", (s, b))
    s, _, b = post("/api/recurring/nosuch/run", token=TOKEN, port=port)
    check(s == 403, "another token is not", (s, b))
    p.send_signal(signal.SIGTERM)
    check(p.wait(10) == 0, "SIGTERM: exit 0")
    # nothing listens on port 1: it serves, says the database is down, and waits
    p = subprocess.Popen([QML, "dashboard", "--listen", "127.0.0.1:%d" % port, "--database",
                          "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(p)
    check(wait_for(lambda: get("/healthz", port)[0] == 503, 10), "no database yet: /healthz 503")
    s, _, b = get("/api/jobs", port)
    check(s == 503 and is_error(b), "and the API 503 with an error", (s, b))
    time.sleep(2)
    check(p.poll() is None, "it keeps running")
    p.send_signal(signal.SIGTERM)
    check(p.wait(10) == 0, "SIGTERM: exit 0")
    r = subprocess.run([QML, "dashboard", "--listen", "nonsense"], capture_output=True, text=True, timeout=10)
    check(r.returncode != 0 and "HOST:PORT" in r.stderr, "--listen nonsense: an error", r.stderr)


INJECTIONS = ["x' OR '1'='1", "x'; DROP TABLE qml.jobs; --", "1; DELETE FROM qml.jobs", "\\' OR 1=1 --",
              "$$; TRUNCATE qml.jobs; $$", "'||(SELECT pg_sleep(0))||'"]


def test_injection():
    print("# SQL injection in every parameter")
    snapshot = "SELECT count(*), sum(hashtext(state::text || queue || method)) FROM qml.jobs"
    tables = "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'qml'"
    before, before_tables = sql(snapshot), sql(tables)
    statuses = set()
    for inj in INJECTIONS:
        e = urllib.parse.quote(inj, safe="")
        for path in ("/api/jobs?state=" + e, "/api/jobs?queue=" + e, "/api/jobs?method=" + e,
                     "/api/jobs?id=" + e, "/api/jobs?limit=" + e, "/api/jobs?after=" + e,
                     "/api/throughput?minutes=" + e, "/api/jobs/" + e, "/api/jobs?queue=" + e + "&method=" + e):
            s, _, b = get(path)
            statuses.add(s)
            if s not in (200, 400, 404):
                bad("injection " + path, (s, b))
        for path in ("/api/jobs/" + e + "/retry", "/api/recurring/" + e + "/run"):
            s, _, b = post(path)
            statuses.add(s)
            if s not in (400, 404):
                bad("injection POST " + path, (s, b))
    check(sql(snapshot) == before and sql(tables) == before_tables,
          "reads and writes with injection attempts changed no job and no table (answers %s)" % sorted(statuses))
    s, _, b = get("/api/jobs?queue=" + urllib.parse.quote("x' OR '1'='1"))
    check(s == 200 and b["jobs"] == [], "a quote in queue is a queue name, matching nothing", b)
    # a queue name is data: pausing "x'; DROP ..." pauses a queue of that name
    inj = INJECTIONS[1]
    s, _, b = post("/api/queues/" + urllib.parse.quote(inj, safe="") + "/pause")
    check(s == 200 and b.get("queue") == inj and sql("SELECT paused FROM qml.queues WHERE name = $q$%s$q$" % inj) == "t"
          and sql(tables) == before_tables, "pause of a queue named like an injection: that queue, nothing else", b)
    sql("DELETE FROM qml.queues WHERE name = $q$%s$q$" % inj)
    s, _, b = get("/api/jobs?queue=x%27%3B%20DROP%20TABLE%20qml.jobs%3B--")
    check(int(sql("SELECT count(*) FROM qml.jobs")) >= 1, "the outside check's attempt is harmless (%d)" % s)


def test_websocket():
    print("# WebSocket")
    ws = WS(PORT)
    check(ws.status == 101, "GET /ws upgrades: 101", ws.status)
    m = ws.message()
    check(m and m.get("type") == "stats" and "totals" in m.get("data", {}), "the first message is the stats", m)
    n = m["data"]["totals"]["enqueued"] if m else 0
    sql("SELECT qml.enqueue('ws.push', queue => 'ws')")
    got = None
    end = time.time() + 5
    while time.time() < end:
        msg = ws.message(timeout=1)
        if msg and msg.get("type") == "stats" and msg["data"]["totals"]["enqueued"] == n + 1:
            got = msg
            break
    check(got is not None, "a job enqueued by SQL is pushed within 5 s")
    ws.close()
    # a page of the dashboard's own origin, by any loopback name, may connect
    for host in ("127.0.0.1:%d" % PORT, "localhost:%d" % PORT):
        ws = WS(PORT, host=host, origin="http://" + host)
        check(ws.status == 101, "a page of origin http://%s: 101" % host, ws.status)
        ws.close()
    # a page of another site may not read the stats through its visitor's
    # browser (no same-origin rule holds WebSockets back), nor may one of
    # a host name rebound to 127.0.0.1 (DNS rebinding)
    for host, origin in (("127.0.0.1:%d" % PORT, "http://evil.example"),
                         ("127.0.0.1:%d" % PORT, "null"),
                         ("evil.example:%d" % PORT, "http://evil.example:%d" % PORT)):
        ws = WS(PORT, host=host, origin=origin)
        body = ws.rest()
        check(ws.status == 403 and body.startswith('{"error":') and '"totals"' not in body,
              "Host %s, Origin %s: 403, no stats" % (host, origin), (ws.status, body[:200]))
        ws.close()
    s, _, b = get("/ws")
    check(s in (400, 404, 426) and is_error(b), "GET /ws without an upgrade: an error (%d)" % s, b)


def test_public_url():
    print("# --public-url: on 127.0.0.1 behind a reverse proxy of the same machine")
    port = PORT + 3
    url = "postgresql://postgres@127.0.0.1:%d/%s" % (PGPORT, DB)
    local = "127.0.0.1:%d" % port
    # a list, a second --public-url, a variable the options replace
    p = start_dashboard(port, url, TOKEN, ["--public-url", "https://jobs.example.com, http://Alt.Example:8443/",
                                           "--public-url", "http://[2001:DB8::1]:9000"],
                        env={"QML_DASHBOARD_PUBLIC_URL": "https://env.example"})
    check(get("/healthz", port)[0] == 200, "qml dashboard --public-url ...: up")
    # the start-up lines name every public address, default ports left out
    out = open("/tmp/qml-dashboard-test-%d.log" % port).read()
    for u in ("https://jobs.example.com/", "http://alt.example:8443/", "http://[2001:db8::1]:9000/"):
        check("qml dashboard: also at %s (--public-url)\n" % u in out, "start-up names %s" % u, out)
    check("env.example" not in out, "... and not the variable the options replaced", out)

    def req(host, origin=None, path="/api/stats", method="GET"):
        headers = {"Host": host}
        if origin:
            headers["Origin"] = origin
        if method == "POST":
            headers["Authorization"] = "Bearer " + TOKEN
        return request(port, path, method, headers)[:3:2]

    # the proxy passes the browser's Host on (Caddy, Traefik, nginx's
    # proxy_set_header Host $host or $http_host)
    for host, origin in (("jobs.example.com", None), ("jobs.example.com", "https://jobs.example.com"),
                         ("JOBS.example.com:443", "https://jobs.example.com"), ("alt.example", "http://alt.example:8443"),
                         ("[2001:db8::1]:9000", "http://[2001:db8::1]:9000"), (local, "http://" + local)):
        s, b = req(host, origin)
        check(s == 200 and "totals" in b, "Host %s, Origin %s: 200" % (host, origin), (s, b))
    s, b = req("jobs.example.com", "https://jobs.example.com", "/api/queues/mail/pause", "POST")
    check(s == 200 and b.get("queue") == "mail", "... and an action from the page: 200", (s, b))
    # nginx's default: Host is the upstream's address, Origin the browser's
    for origin in ("https://jobs.example.com", "http://alt.example:8443", "http://[2001:db8::1]:9000"):
        s, b = req(local, origin, "/api/queues/mail/resume", "POST")
        check(s == 200 and b.get("queue") == "mail", "Host %s, Origin %s: an action, 200" % (local, origin), (s, b))
    for host, origin in ((local, "https://jobs.example.com"), ("jobs.example.com", "https://jobs.example.com")):
        ws = WS(port, host=host, origin=origin)
        m = ws.message() if ws.status == 101 else None
        check(ws.status == 101 and m and m.get("type") == "stats",
              "WebSocket with Host %s, Origin %s: 101 and the stats" % (host, origin), (ws.status, m))
        ws.close()
    # anything else keeps the rules: no other host, no other origin (scheme
    # and port count), QML_DASHBOARD_PUBLIC_URL replaced by the options
    for host, origin in (("evil.example", None), ("jobs.example.com.evil.example", None),
                         ("evil-jobs.example.com", None), ("env.example", None),
                         ("jobs.example.com", "https://evil.example"), (local, "https://evil.example"),
                         ("jobs.example.com", "http://jobs.example.com"), ("alt.example:8443", "https://alt.example:8443"),
                         (local, "http://jobs.example.com"), (local, "https://jobs.example.com:8443"),
                         (local, "https://jobs.example.com.evil.example"), (local, "https://evil.example@jobs.example.com"),
                         (local, "https://alt.example:8443"), (local, "null"), (local, "https://env.example")):
        s, b = req(host, origin)
        check(s == 403 and is_error(b), "Host %s, Origin %s: still 403" % (host, origin), (s, b))
        s, b = req(host, origin, "/api/queues/mail/pause", "POST")
        check(s == 403 and is_error(b), "... and an action too", (s, b))
    for host, origin in ((local, "https://evil.example"), ("evil.example", "https://jobs.example.com")):
        ws = WS(port, host=host, origin=origin)
        check(ws.status == 403 and '"totals"' not in ws.rest(),
              "WebSocket with Host %s, Origin %s: 403" % (host, origin), ws.status)
        ws.close()
    check(sql("SELECT paused FROM qml.queues WHERE name = 'mail'") == "f", "mail is not left paused")
    p.send_signal(signal.SIGTERM)
    check(p.wait(10) == 0, "SIGTERM: exit 0")
    # the variable alone
    p = start_dashboard(port, url, env={"QML_DASHBOARD_PUBLIC_URL": "https://env.example"})
    s, b = req("env.example", "https://env.example")
    check(s == 200, "QML_DASHBOARD_PUBLIC_URL=https://env.example: Host env.example 200", (s, b))
    s, b = req("jobs.example.com")
    check(s == 403, "... and no other", (s, b))
    p.send_signal(signal.SIGTERM)
    check(p.wait(10) == 0, "SIGTERM: exit 0")


def live_rate(seconds):
    """Statements the dashboard sent per second over `seconds`, and its live sessions."""
    a = metric("qml_dashboard_queries_total")
    time.sleep(seconds)
    b = metric("qml_dashboard_queries_total")
    sessions = int(sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'qml dashboard live'"
                       " AND usename = 'postgres'"))
    return (b - a) / seconds, sessions


def test_one_connection():
    print("# the one-connection property: 1 page and 10 pages cost the same")
    one = [WS(PORT)]
    [w.message() for w in one]
    r1, s1 = live_rate(4)
    ten = one + [WS(PORT) for _ in range(9)]
    firsts = [w.message() for w in ten[1:]]
    check(all(m and m["type"] == "stats" for m in firsts), "9 more pages get their first stats")
    check(metric("qml_dashboard_websocket_clients") == 10, "the metric counts 10 pages")
    r10, s10 = live_rate(4)
    check(s1 == 1 and s10 == 1, "one live session with 1 page and with 10 (%d, %d)" % (s1, s10))
    # 4 reads of the stats a second while they move, and the chart's at most once.
    # "The same" within 1.5 a second: a read late on a loaded machine moves a
    # 4 s window's rate by 0.25 or more each, while a read per page would add
    # 9 pages' worth (36 a second at this cadence)
    check(0 < r1 <= 5.5 and abs(r10 - r1) <= 1.5,
          "statements per second with 1 page %.2f, with 10 %.2f: the same, at most 5" % (r1, r10))
    # enqueues that notify 20 times a second do not make it read faster
    # than its cadence (a fetch that came back empty arms the next NOTIFY)
    notifier = subprocess.Popen(
        ["psql", "-X", "-q", "-d", DB, "-c",
         "DO $$ BEGIN FOR i IN 1..100 LOOP"
         " PERFORM qml.fetch('nw', '{notif}', batch => 100, session_lease => false);"
         " PERFORM qml.fetch('nw', '{notif}', batch => 100, session_lease => false); COMMIT;"
         " PERFORM qml.enqueue('n', queue => 'notif'); COMMIT; PERFORM pg_sleep(0.05);"
         " END LOOP; END $$"], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    rn, _ = live_rate(3)
    notifier.wait()
    check(rn <= 5.5, "with 20 notifications a second: %.2f statements a second, at most 5" % rn)
    for w in ten:
        w.close()
    check(wait_for(lambda: metric("qml_dashboard_websocket_clients") == 0, 5), "closed pages are forgotten")


def test_concurrency():
    print("# many requests and pages at once (civetweb runs handlers on many threads)")
    import threading
    paths = ["/api/stats", "/api/queues", "/api/jobs?queue=page&limit=100", "/api/jobs/%d" % XSS,
             "/api/running", "/api/recurring", "/api/throughput?minutes=30", "/api/workers", "/metrics",
             "/healthz", "/api/jobs/abc", "/nope"]
    want = {"/api/jobs/abc": 400, "/nope": 404}
    errors = []

    def reader(n):
        for i in range(30):
            p = paths[(n + i) % len(paths)]
            s = get(p)[0]
            if s != want.get(p, 200):
                errors.append((p, s))

    def pages():
        for _ in range(10):
            w = WS(PORT)
            if not (w.status == 101 and w.message()):
                errors.append(("/ws", w.status))
            w.close()

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(16)] + \
        [threading.Thread(target=pages) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, "16 readers x 30 requests and 40 pages opened and closed: every answer as expected",
          errors[:5])
    check(procs[0].poll() is None and get("/healthz")[0] == 200, "and the server is still up")
    check(wait_for(lambda: metric("qml_dashboard_websocket_clients") == 0, 5), "no page left counted")


def cluster(action):
    return subprocess.run([os.path.join(ROOT, "scripts", "cluster.sh"), action], capture_output=True, text=True)


def db_message(ws, up):
    """Whether {"type":"db","up":up} arrives within 5 s."""
    end = time.time() + 5
    while time.time() < end:
        m = ws.message(timeout=1)
        if m and m.get("type") == "db" and m.get("up") is up:
            return True
    return False


def test_database_outage():
    print("# the database goes away under the dashboard")
    dash = procs[0]
    ws = WS(PORT)
    ws.message()
    r = cluster("restart")
    check(r.returncode == 0, "scripts/cluster.sh restart", r.stderr)
    check(wait_for(lambda: get("/api/jobs?limit=1")[0] == 200 and get("/healthz")[0] == 200, 15),
          "after a restart: the API answers again")
    r = cluster("stop")
    check(r.returncode == 0, "scripts/cluster.sh stop", r.stderr)
    check(wait_for(lambda: get("/healthz")[0] == 503, 5), "while it is down: /healthz 503")
    s, _, b = get("/healthz")
    check(b.get("database") == "down" and b.get("ok") is False and is_error(b), "saying the database is down", b)
    check(db_message(ws, False), "the page is told: {\"type\":\"db\",\"up\":false}")
    for path in ("/api/jobs", "/api/jobs/1", "/api/stats", "/api/workers"):
        s, _, b = get(path)
        check(s == 503 and is_error(b), "GET %s while down: 503 with an error" % path, (s, b))
    check(metric("qml_dashboard_database_up") == 0, "metric database_up 0")
    r = cluster("start")
    check(r.returncode == 0, "scripts/cluster.sh start", r.stderr)
    check(wait_for(lambda: get("/healthz")[0] == 200, 15), "back: /healthz 200")
    check(db_message(ws, True), "the page is told the database is back")
    ws.close()
    check(wait_for(lambda: get("/api/jobs?limit=1")[0] == 200, 10) and get("/api/stats")[0] == 200,
          "requests work again")
    check(dash.poll() is None, "the dashboard never exited")


def setup():
    global XSS, RUNNING
    sql("SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object('method', 'page.job',"
        " 'queue', 'page', 'arguments', jsonb_build_array(i))) FROM generate_series(1, 10000) i))")
    XSS = int(sql("SELECT qml.enqueue('xss', '[\"<script>alert(1)</script>\"]', queue => 'xss')"))
    # session_lease => false: psql's session ends at once, and a session
    # lease would hand the job back before it fails
    sql("SELECT qml.fetch('w1', '{xss}', session_lease => false)")
    sql("SELECT qml.fail(%d, 'w1', 'broken', false)" % XSS)
    for i in range(3):
        sql("SELECT qml.enqueue('mail.send', '[%d]', queue => 'mail')" % i)
    RUNNING = int(sql("SELECT qml.enqueue('long.run', queue => 'long')"))
    sql("SELECT id FROM qml.fetch('w-test', '{long}', session_lease => false)")
    sql("SELECT qml.add_recurring('nightly', '0 3 * * *', 'report.nightly')")


def main():
    setup()
    start_dashboard(PORT, "postgresql://postgres@127.0.0.1:%d/%s" % (PGPORT, DB), TOKEN)
    try:
        for t in (test_basics, test_paging, test_filters, test_job, test_actions, test_read_only, test_options,
                  test_injection, test_websocket, test_public_url, test_one_connection, test_concurrency,
                  test_database_outage):
            try:
                t()
            except Exception as e:      # a crash of the test is a failure, not a stop
                bad(t.__name__ + " raised", repr(e))
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    bad("the dashboard stops on SIGTERM within 10 s")
                    p.kill()
            elif p is procs[0]:
                bad("the dashboard was running to the end", "exit %s" % p.returncode)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
