#!/usr/bin/env python3
"""test/docs/examples.py: the code blocks of README.md and docs/*.md, run.

Each file with runnable blocks gets a fresh database with the extension
(qml_docs_<name>); its blocks run in the order they appear:

    ```sql                 psql with ON_ERROR_STOP, as the cluster's superuser
    ```sql error=22023     must fail with that SQLSTATE
    ```sql norun           not run
    ```sh test             bash -e -o pipefail in a scratch directory, with the
                           built qml first on PATH and DATABASE_URL set
    ```c test              a program: built against client/libqml.so with
                           -Wall -Wextra -Werror, run with DATABASE_URL set
                           and stopped by SIGTERM after 5 s; it must exit 0
    any other block        not run (prose, output, commands that install
                           packages or start servers)

A block that fails prints its output and fails the run. Roles the examples
create are dropped afterwards, with the databases.

    examples.py                  README.md and docs/*.md
    examples.py FILE...          those files
    examples.py --self-test      a broken block of each kind must fail

Before the blocks, every relative link of those files must lead to a file
that exists and, with a #fragment, to one of its headings.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FENCE = re.compile(r"^(\s*)```(\S*)\s*(.*)$")
passed = failed = 0


def ok(name):
    global passed
    passed += 1
    print("ok   " + name)


def bad(name, why):
    global failed
    failed += 1
    print("FAIL %s\n%s" % (name, "\n".join("     " + line for line in why.rstrip().splitlines()[-30:])))


def blocks(path):
    """(line, lang, options, code) of every fenced block of a Markdown file."""
    out, cur = [], None
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        m = FENCE.match(line.rstrip("\n"))
        if cur is None and m:
            cur = (n, m.group(2), m.group(3).split(), len(m.group(1)), [])
        elif cur is not None and m and not m.group(2) and not m.group(3):
            out.append((cur[0], cur[1], cur[2], "".join(cur[4])))
            cur = None
        elif cur is not None:
            # a block inside a list item is indented as its fence is
            cur[4].append(line[cur[3]:] if line[:cur[3]].strip() == "" else line)
    return out


def runnable(lang, opts):
    if lang == "sql":
        return "norun" not in opts
    return lang in ("sh", "bash", "c") and "test" in opts


def psql(db, *args, **kw):
    return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db] + list(args),
                          capture_output=True, text=True, **kw)


def roles():
    r = psql("postgres", "-At", "-c", "SELECT rolname FROM pg_roles")
    return set(r.stdout.split())


def cluster_settings():
    """What ALTER SYSTEM has set: an example must leave the shared test
    cluster's configuration alone (a qml.databases list set by one page
    took the scheduler from every database made after it)."""
    r = psql("postgres", "-At", "-c",
             "SELECT name || '=' || setting FROM pg_catalog.pg_file_settings"
             " WHERE sourcefile LIKE '%/postgresql.auto.conf' ORDER BY seqno")
    return r.stdout.splitlines()


def database_url(db):
    host = os.environ.get("PGHOST", "/var/run/postgresql")
    return "postgresql:///%s?host=%s&port=%s&user=%s" % (
        db, urllib.parse.quote(host, safe=""), os.environ.get("PGPORT", "5432"),
        os.environ.get("PGUSER", "postgres"))


def run_c(code, scratch, env):
    """Builds a C example against libqml and runs it for 5 s (SIGTERM ends it)."""
    src, exe = os.path.join(scratch, "example.c"), os.path.join(scratch, "example")
    open(src, "w").write(code)
    lib = os.path.join(ROOT, "client")
    # the shared library, which names what it needs itself (a backend's
    # library too), found by its soname in the scratch directory
    so = subprocess.run(["objdump", "-p", os.path.join(lib, "libqml.so")], capture_output=True, text=True).stdout
    soname = (re.findall(r"SONAME\s+(\S+)", so) or ["libqml.so"])[0]
    if soname != "libqml.so":
        os.symlink(os.path.join(lib, "libqml.so"), os.path.join(scratch, soname))
    r = subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", os.path.join(lib, "include"),
                        src, "-L", lib, "-Wl,-rpath," + scratch, "-lqml", "-lpq", "-ljansson", "-lm", "-pthread",
                        "-o", exe], capture_output=True, text=True)
    if r.returncode:
        return r
    return subprocess.run(["timeout", "--preserve-status", "-s", "TERM", "5", exe], cwd=scratch, env=env,
                          capture_output=True, text=True, timeout=300)


def run_file(path, label):
    todo = [b for b in blocks(path) if runnable(b[1], b[2])]
    if not todo:
        return
    name = re.sub(r"[^a-z0-9]+", "_", os.path.splitext(os.path.basename(path))[0].lower())
    db = "qml_docs_" + name
    had = roles()
    conf = cluster_settings()
    setup = psql("postgres", "-c", "SET client_min_messages = warning",
                 "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db, "-c", "CREATE DATABASE %s" % db)
    setup = setup if setup.returncode else psql(db, "-c", "CREATE EXTENSION qml")
    if setup.returncode:
        bad("%s: a database for its examples" % label, setup.stderr)
        return
    scratch = tempfile.mkdtemp(prefix="qml-docs-")
    env = dict(os.environ, DATABASE_URL=database_url(db),
               PATH=os.path.join(ROOT, "client") + os.pathsep + os.environ["PATH"])
    env.pop("PGDATABASE", None)
    try:
        for line, lang, opts, code in todo:
            what = "%s:%d %s %s" % (label, line, lang, " ".join(opts))
            expect = next((o.split("=", 1)[1] for o in opts if o.startswith("error=")), None)
            if lang == "sql":
                r = psql(db, "-v", "VERBOSITY=verbose", "-f", "-", input=code, timeout=300)
                if expect:
                    if r.returncode and re.search(r"ERROR:  %s:" % re.escape(expect), r.stderr):
                        ok(what + ": fails with " + expect)
                    else:
                        bad(what, "expected SQLSTATE %s, got exit %d\n%s%s" % (expect, r.returncode, r.stdout, r.stderr))
                    continue
            elif lang == "c":
                r = run_c(code, scratch, env)
            else:
                r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=scratch, env=env,
                                   capture_output=True, text=True, timeout=300)
            if r.returncode == 0:
                ok(what)
            else:
                bad(what, "exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
    except subprocess.TimeoutExpired as e:
        bad(what, "still running after %s s" % e.timeout)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        psql("postgres", "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
        for role in sorted(roles() - had):
            psql("postgres", "-c", 'DROP ROLE "%s"' % role.replace('"', '""'))
        now = cluster_settings()
        if now != conf:
            bad("%s: leaves the cluster's configuration alone" % label,
                "ALTER SYSTEM set %s: mark such a block `sql norun`" % ", ".join(sorted(set(now) - set(conf))))
            for name in sorted({n.split("=", 1)[0] for n in set(now) ^ set(conf)}):
                psql("postgres", "-c", "ALTER SYSTEM RESET %s" % name)
            psql("postgres", "-c", "SELECT pg_reload_conf()")


def anchors(path):
    """The anchors GitHub makes of a Markdown file's headings."""
    out = set()
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^#+\s+(.*)", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


def check_links(files):
    """Every relative link names a file that exists, and a heading in it."""
    for path in files:
        text = open(path, encoding="utf-8").read()
        # links in prose only: not inside code blocks or code spans
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        text = re.sub(r"`[^`\n]*`", "", text)
        wrong = []
        for link in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", link):
                continue
            target, _, anchor = link.partition("#")
            target = os.path.normpath(os.path.join(os.path.dirname(path), target)) if target else path
            if not os.path.exists(target):
                wrong.append("%s: no such file" % link)
            elif anchor and target.endswith(".md") and anchor not in anchors(target):
                wrong.append("%s: no such heading" % link)
        label = os.path.relpath(path, ROOT) + ": its links lead somewhere"
        bad(label, "\n".join(wrong)) if wrong else ok(label)


def self_test():
    """Each kind of broken block fails the run; a good file passes."""
    global passed, failed
    cases = {
        "good": "```sql\nSELECT qml.enqueue('m');\n```\n\n```sql error=22023\nSELECT qml.fetch('w', batch => 0);\n```\n\n"
                "```sh test\nqml stats\n```\n\n```sh\nexit 1\n```\n\n```sql norun\nnot sql\n```\n",
        "bad_sql": "```sql\nSELECT qml.enqueue('m', queue => '');\n```\n",
        "bad_sql_later_statement": "```sql\nSELECT 1;\nSELECT qml.no_such_function();\nSELECT 2;\n```\n",
        "bad_error": "```sql error=22023\nSELECT qml.enqueue('m');\n```\n",
        "bad_sh": "```sh test\nqml job 999999999\n```\n",
        "bad_sh_pipe": "```sh test\nqml no-such-command | cat\n```\n",
        "bad_indented": "- a list item:\n\n   ```sql\n   SELECT qml.enqueue(NULL);\n   ```\n",
        "bad_link": "see [nothing](no-such-page.md)\n",
        "bad_c_build": "```c test\nint main(void) { return undeclared; }\n```\n",
        "bad_c_exit": "```c test\nint main(void) { return 3; }\n```\n",
        "bad_anchor": "see [nothing](#no-such-heading)\n",
        "bad_alter_system": "```sql\nALTER SYSTEM SET qml.databases = 'app';\n```\n",
    }
    tmp = tempfile.mkdtemp(prefix="qml-docs-self-")
    results = {}
    try:
        for name, text in cases.items():
            path = os.path.join(tmp, name + ".md")
            open(path, "w").write(text)
            before = failed
            saved = sys.stdout
            sys.stdout = open(os.devnull, "w")
            try:
                run_file(path, name)
                check_links([path])
            finally:
                sys.stdout.close()
                sys.stdout = saved
            results[name] = failed - before
    finally:
        shutil.rmtree(tmp)
    passed = failed = 0
    for name, fails in results.items():
        if name == "good":
            ok("a good file passes") if fails == 0 else bad("a good file passes", "%d failures" % fails)
        else:
            ok("a broken block fails the run: " + name) if fails else bad("a broken block fails the run: " + name, "it passed")


def main():
    args = sys.argv[1:]
    if args == ["--self-test"]:
        self_test()
    else:
        files = args or [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
        check_links(files)
        for path in files:
            run_file(path, os.path.relpath(path, ROOT))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
