#!/usr/bin/env python3
"""test/bad_input/run.py: the bad-input catalogue (cases.tsv), run.

Every row is one bad input: an SQL statement, a `qml` command line or a
REST request. Each must be refused as the row says (SQLSTATE, exit code or
HTTP status, or the documented non-error answer `=VALUE`), with a message
containing the row's fragment, and must leave qml.jobs, qml.job_events,
qml.queues and qml.recurring as they were (a checksum of their contents
before and after). The database is made afresh with fixed fixtures: a
succeeded job, a job held by worker w1, a scheduled one, a failed job whose
unique_key a live job holds, a recurring job and roles without rights.
The http rows go to a dashboard on 127.0.0.1 whose public address
(--public-url) is https://jobs.example.com.

    run.py                 every case (the cluster of scripts/env.sh)
    run.py --check-reference  also: docs/errors.md's error table is what
                           gen_reference.py prints from this catalogue
    run.py --sql-only      only the SQL cases

QML_BAD_INPUT_INSTALL, when set, is a shell command that installs qml into
the database instead of CREATE EXTENSION (test/sql_edition/run.sh installs
the pure-SQL edition with it); QML_BAD_INPUT_SKIP, a regular expression,
leaves out the cases whose input it matches (what that edition lacks).
"""
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
QML = os.path.join(ROOT, "client", "qml")
DB = "qml_bad_input"
TOKEN = "bad-input-token"
PORT = 13010 + int(os.environ.get("PGPORT", "5499"))
sys.path.insert(0, HERE)
import catalogue  # noqa: E402

passed = failed = 0


def ok(name):
    global passed
    passed += 1
    print("ok   " + name, flush=True)


def bad(name, why):
    global failed
    failed += 1
    print("FAIL %s: %s" % (name, why[:400]), flush=True)


def psql(sql, db=DB, variables=None):
    """(returncode, stdout, stderr) of psql reading sql on stdin."""
    args = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-d", db]
    for k, v in (variables or {}).items():
        args += ["-v", "%s=%s" % (k, v)]
    r = subprocess.run(args, input=sql.encode() if isinstance(sql, str) else sql, capture_output=True)
    return r.returncode, r.stdout.decode("utf-8", "replace").strip(), r.stderr.decode("utf-8", "replace")


def value(sql):
    return value_in(DB, sql)


def value_in(db, sql):
    rc, out, err = psql(sql, db=db)
    if rc != 0:
        raise RuntimeError("psql: %s: %s" % (sql, err))
    return out


CHECKSUM = """
SELECT md5(concat_ws('#',
  (SELECT string_agg(j::text, '|' ORDER BY j.id) FROM qml.jobs j),
  (SELECT string_agg(e::text, '|' ORDER BY e.id) FROM qml.job_events e),
  (SELECT string_agg(q::text, '|' ORDER BY q.name) FROM qml.queues q),
  (SELECT string_agg(r::text, '|' ORDER BY r.name) FROM qml.recurring r)))
"""


def checksum():
    return value(CHECKSUM)


SETUP = """
SET client_min_messages = warning;
DROP ROLE IF EXISTS qml_bi_nogrant;
DROP ROLE IF EXISTS qml_bi_producer;
DROP ROLE IF EXISTS qml_bi_worker;
CREATE ROLE qml_bi_nogrant;
CREATE ROLE qml_bi_producer;
CREATE ROLE qml_bi_worker;
"""

FIXTURES = """
SELECT qml.grant_producer('qml_bi_producer');
SELECT qml.grant_worker('qml_bi_worker');
-- a succeeded job
SELECT qml.enqueue('fix.done', queue => 'fix_done');
SELECT qml.complete(id, 'w0') FROM qml.fetch('w0', '{fix_done}');
-- a job held by w1 for a day
SELECT qml.enqueue('fix.proc', queue => 'fix_proc');
SELECT count(*) FROM qml.fetch('w1', '{fix_proc}', lease => '1 day');
-- a job scheduled far ahead
SELECT qml.enqueue('fix.live', queue => 'fix_live', run_at => '2100-01-01');
-- a failed job whose unique_key a live job holds now
SELECT qml.enqueue('fix.dup', queue => 'fix_dup', unique_key => 'dup');
SELECT qml.fail(id, 'w0', 'boom', retry => false) FROM qml.fetch('w0', '{fix_dup}');
SELECT qml.enqueue('fix.dup', queue => 'fix_dup', unique_key => 'dup', run_at => '2100-01-01');
SELECT qml.pause_queue('fix_paused');
SELECT qml.add_recurring('fix_rec', '0 0 1 1 *', 'fix.rec');
-- the finished jobs counted in qml.throughput's range, roll-up or not
SELECT qml.maintain();
"""


def fixtures():
    # the database first: the roles hold grants in it
    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", "SET client_min_messages = warning",
                    "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB, "-c", "CREATE DATABASE %s" % DB],
                   check=True, capture_output=True)
    value_in("postgres", SETUP)
    if os.environ.get("QML_BAD_INPUT_INSTALL"):
        subprocess.run(os.environ["QML_BAD_INPUT_INSTALL"], shell=True, check=True)
    else:
        value("CREATE EXTENSION qml")
    value(FIXTURES)
    ids = {}
    for name in ("done", "proc", "live", "dup"):
        ids[name] = value("SELECT min(id) FROM qml.jobs WHERE method = 'fix.%s'" % name)
    ids["missing"] = "987654321"
    return ids


def sql_case(c, ids):
    rc, out, err = psql(c.input.encode().replace(b"{ff}", b"\xff"), variables=ids)
    m = re.search(r"^ERROR:  ([0-9A-Z]{5}): (.*)", err, re.M)
    if c.expect.startswith("="):
        if rc != 0:
            return "expected %s, got %s" % (c.expect, err.strip())
        last = out.splitlines()[-1] if out else ""
        return None if last == c.expect[1:] else "expected %s, got %r" % (c.expect, out)
    if rc == 0 or not m:
        return "expected %s, got no error (%r)" % (c.expect, out[:100])
    if m.group(1) != c.expect:
        return "expected %s, got %s: %s" % (c.expect, m.group(1), m.group(2))
    if c.fragment.lower() not in err.lower():
        return "message lacks %r: %s" % (c.fragment, err.strip())
    return None


def expand(word, ids):
    """A command-line word: {done} etc. are fixture ids, {x:N} is N x's,
    {ff} the byte 0xff (invalid UTF-8)."""
    word = re.sub(r"\{x:(\d+)\}", lambda m: "x" * int(m.group(1)), word)
    word = re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), m.group(0)), word)
    return os.fsencode(word).replace(b"{ff}", b"\xff")


def cli_env(ids):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QML_")}
    env.pop("DATABASE_URL", None)
    env["PGDATABASE"] = DB
    return env


def cli_case(c, ids):
    env = cli_env(ids)
    argv = [QML]
    for w in shlex.split(c.input):
        if re.match(r"^[A-Z_]+=", w) and len(argv) == 1:      # VAR=value before the command
            k, v = w.split("=", 1)
            env[k] = os.fsdecode(expand(v, ids))
        else:
            argv.append(expand(w, ids))
    try:
        r = subprocess.run(argv, env=env, capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "timed out"
    err = r.stderr.decode("utf-8", "replace")
    if r.returncode != int(c.expect):
        return "expected exit %s, got %d: %s" % (c.expect, r.returncode, err.strip())
    if not err.strip():
        return "no message on stderr"
    if c.fragment.lower() not in err.lower():
        return "stderr lacks %r: %s" % (c.fragment, err.strip())
    return None


def http(method, path, headers=None, body=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (PORT, path), data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, ConnectionError, socket.timeout) as e:
        return 0, str(e)


def http_case(c, ids):
    """input: METHOD PATH [token=none|wrong] [body=N] (N bytes of x)
    [host=H] [origin=O] (the Host and Origin headers)."""
    words = c.input.split(" ")
    method, path = words[0], os.fsdecode(expand(words[1], ids))
    headers = {"Authorization": "Bearer " + TOKEN}
    body = None
    for w in words[2:]:
        if w == "token=none":
            headers = {}
        elif w == "token=wrong":
            headers = {"Authorization": "Bearer " + TOKEN[:-1] + "X"}
        elif w.startswith("body="):
            body = b"x" * int(w[5:])
        elif w.startswith("host="):
            headers["Host"] = w[5:]
        elif w.startswith("origin="):
            headers["Origin"] = w[7:]
    status, text = http(method, path, headers, body)
    if status != int(c.expect):
        return "expected %s, got %d: %s" % (c.expect, status, text[:200])
    if c.fragment.lower() not in text.lower() or '"error"' not in text:
        return "body lacks %r or an error: %s" % (c.fragment, text[:200])
    return None


def start_dashboard():
    log = open("/tmp/qml-bad-input-dashboard-%d.log" % PORT, "w")
    env = cli_env({})
    # a public address, so that the http rows show its near misses refused
    p = subprocess.Popen([QML, "dashboard", "--listen", "127.0.0.1:%d" % PORT, "--token", TOKEN,
                          "--public-url", "https://jobs.example.com"],
                         stdout=log, stderr=subprocess.STDOUT, env=env)
    for _ in range(100):
        if http("GET", "/healthz")[0] == 200:
            break
        time.sleep(0.1)
    return p


def main():
    cases = catalogue.load()
    if "--sql-only" in sys.argv:
        cases = [c for c in cases if c.kind in ("sql", "doc")]
    # inputs an installation lacks the function for (a regular expression)
    skip = os.environ.get("QML_BAD_INPUT_SKIP")
    if skip:
        cases = [c for c in cases if not re.search(skip, c.input)]
    kinds = {k: sum(1 for c in cases if c.kind == k) for k in ("sql", "cli", "http")}
    print("%d cases: %s" % (len(cases), ", ".join("%d %s" % (n, k) for k, n in kinds.items())))
    ids = fixtures()
    dash = start_dashboard() if kinds["http"] else None
    try:
        before = checksum()
        for c in cases:
            if c.kind == "doc":
                continue
            why = {"sql": sql_case, "cli": cli_case, "http": http_case}[c.kind](c, ids)
            after = checksum()
            if after != before:
                why = (why + "; and " if why else "") + "the tables changed"
            before = after
            name = "%s:%d %s %s" % (c.kind, c.line, c.expect, c.input[:90].replace("\n", " "))
            if why:
                bad(name, why)
            else:
                ok(name)
    finally:
        if dash:
            dash.terminate()
            dash.wait()
    if "--check-reference" in sys.argv:
        import gen_reference
        want, have = gen_reference.table(cases), gen_reference.reference_section()
        if want == have:
            ok("docs/errors.md's error table is the one gen_reference.py prints")
        else:
            bad("docs/errors.md's error table is the one gen_reference.py prints",
                "run test/bad_input/gen_reference.py --write")
    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB],
                   capture_output=True)
    psql(SETUP.split("CREATE")[0], db="postgres")
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
