#!/usr/bin/env python3
"""sql_edition/build.py: writes the pure-SQL edition of qml.

Usage: build.py SCHEMA.sql OUTPUT.sql [LATER.sql]

Takes the extension's script (qml--1.1.sql), the one definition of the
schema, and makes it a script a non-superuser runs with psql into their own
database (see docs/sql-edition.md):
  - the \\echo guard and pg_extension_config_dump() calls go (they belong to
    CREATE EXTENSION);
  - every C function is replaced, at its place in the script (SQL bodies and
    CHECK constraints need what comes before them), by the PL/pgSQL or SQL
    function of the same name and signature from sql_edition/*.sql;
  - the SQL functions of FROM_LATER (below) are taken from LATER.sql, the
    extension's newest script, at their place: the fixes a released
    script cannot take (its bad-input checks), which the SQL edition needs
    as much;
  - the additions sql_edition/*.sql mark as such (helpers of the SQL
    edition's own) come right after CREATE SCHEMA, and the whole runs in one
    transaction.
It refuses to write anything when a C function has no replacement, or a
replacement no C function, so that the two editions cannot drift apart
silently.
"""
import glob
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# a C function's statement in the extension's script, up to its AS clause
C_FUNCTION = re.compile(
    r"^CREATE FUNCTION qml\.(\w+)\((?:(?!^CREATE )[\s\S])*?"
    r"LANGUAGE c\b[\s\S]*?'MODULE_PATHNAME',\s*'\w+';\n", re.M)
# a function of sql_edition/*.sql: from CREATE FUNCTION to the closing $$;
REPLACEMENT = re.compile(r"^CREATE FUNCTION qml\.(\w+)\([\s\S]*?^\$\$;\n", re.M)
# SQL functions of SCHEMA.sql fixed since, in LATER.sql: the same
# signature, a body that refuses bad input SCHEMA.sql's let through
FROM_LATER = ("check_job_exists", "throughput", "remove_recurring", "run_recurring")
ADDITIONS = "-- @additions\n"		# helpers the replacements call, first
LATE = "-- @after-schema\n"			# helpers that name qml's tables, last


# Roles are the cluster's, and a database owner usually may not create them:
# the script creates none (neither does CREATE EXTENSION) and says who may
# grant what.
EPILOGUE = """
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA qml FROM PUBLIC;
COMMIT;
RESET client_min_messages;
DO $$
BEGIN
	RAISE NOTICE 'qml (SQL edition) is installed in schema qml, owned by %', current_user
		USING HINT = 'Grant rights with qml.grant_producer(role), qml.grant_worker(role) or '
					 'qml.grant_admin(role); a qml worker runtime whose role may call '
					 'qml.maintain() runs the scheduler''s passes (docs/sql-edition.md).';
END
$$;
"""


def load_replacements():
    functions = {}
    additions = []
    late = []
    for path in sorted(glob.glob(os.path.join(HERE, "*.sql"))):
        text = open(path, encoding="utf-8").read()
        text, _, last = text.partition(LATE)
        body, _, extra = text.partition(ADDITIONS)
        for m in REPLACEMENT.finditer(body):
            if m.group(1) in functions:
                sys.exit(f"build.py: qml.{m.group(1)} is defined twice")
            functions[m.group(1)] = m.group(0)
        name = os.path.basename(path)
        if extra:
            additions.append(f"-- from sql_edition/{name}\n{extra}")
        if last:
            late.append(f"-- from sql_edition/{name}\n{last}")
    return functions, additions, late


def sql_function(script, name):
    """qml.name's statement in script, a SQL or PL/pgSQL function's (one)."""
    found = [m for m in re.finditer(
        r"^CREATE FUNCTION qml\.%s\((?:(?!^CREATE )[\s\S])*?^\$\$;\n" % name, script, re.M)
        if not re.search(r"LANGUAGE c\b", m.group(0))]
    if len(found) != 1:
        sys.exit(f"build.py: {len(found)} SQL functions qml.{name} where one was expected")
    return found[0]


# a function's attributes after its RETURNS clause, where its signature ends
ATTRIBUTE = re.compile(r"^\s*(LANGUAGE|AS|SET|SECURITY|STRICT|CALLED|RETURNS NULL|"
                       r"IMMUTABLE|STABLE|VOLATILE|PARALLEL|LEAKPROOF|COST|ROWS)\b",
                       re.M | re.I)


# a string literal or a quoted identifier, whose case is its own
QUOTED = re.compile(r"""('(?:[^']|'')*'|"(?:[^"]|"")*")""")


def depth(text):
    """How many parentheses are open at the end of text, those in quotes
    and comments aside."""
    bare = "".join(re.sub(r"--[^\n]*", "", part)
                   for part in QUOTED.split(text)[::2])
    return bare.count("(") - bare.count(")")


def signature(statement):
    """The arguments and result of a CREATE FUNCTION, comments, layout and
    the case of keywords aside: a statement taken from LATER.sql must keep
    all of them, not only its first line (defaults and OUT columns
    included), and a default's text or a quoted name exactly."""
    # the first attribute outside the parentheses of the arguments and of
    # RETURNS TABLE: a column there may be named cost or rows
    end = next((m for m in ATTRIBUTE.finditer(statement) if depth(statement[:m.start()]) == 0),
               None)
    if end is None:
        sys.exit("build.py: no attribute (LANGUAGE, AS ...) at the start of a line "
                 "ends the signature of:\n" + statement.split("\n", 1)[0])
    parts = QUOTED.split(statement[:end.start()])
    # even parts are outside quotes: there a comment ends at the line's end
    # and case and spacing do not matter
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"\s+", " ", re.sub(r"--[^\n]*", "", parts[i])).lower()
    return "".join(parts).strip()


def take_from_later(script, later):
    for name in FROM_LATER:
        old, new = sql_function(script, name), sql_function(later, name).group(0)
        if signature(old.group(0)) != signature(new):
            sys.exit(f"build.py: qml.{name} has another signature in the later script")
        script = script[:old.start()] + new + script[old.end():]
    return script


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: build.py qml--VERSION.sql qml-sql--VERSION.sql [qml--LATER.sql]")
    source, target = sys.argv[1], sys.argv[2]
    version = re.search(r"qml--([\d.]+)\.sql$", source).group(1)
    script = open(source, encoding="utf-8").read()
    if len(sys.argv) == 4:
        script = take_from_later(script, open(sys.argv[3], encoding="utf-8").read())
    functions, additions, late = load_replacements()

    used = set()

    def replace(m):
        name = m.group(1)
        if name not in functions:
            sys.exit(f"build.py: C function qml.{name} has no SQL version in sql_edition/")
        used.add(name)
        return functions[name]

    script = C_FUNCTION.sub(replace, script)
    unused = sorted(set(functions) - used)
    if unused:
        sys.exit("build.py: no C function to replace for " + ", ".join(unused))
    script = re.sub(r"^\\echo .*\n", "", script, flags=re.M)
    script = re.sub(r"^SELECT pg_catalog\.pg_extension_config_dump\(.*\n", "", script,
                    flags=re.M)
    # no scheduler to wake, and psql would print its empty result
    script = script.replace("SELECT qml.wake_scheduler(NULL);\n", "")
    if re.search(r"MODULE_PATHNAME|\$libdir|LANGUAGE c\b", script, re.I):
        sys.exit("build.py: C is left in the script")

    header = f"""/*
 * qml-sql--{version}.sql: qml {version}, pure-SQL edition. GENERATED by
 * sql_edition/build.py from qml--{version}.sql and the files of sql_edition/: edit
 * those, not this file. Install, as the owner of the database:
 *     psql -v ON_ERROR_STOP=1 -d mydb -f qml-sql--{version}.sql
 * What differs from the extension: docs/sql-edition.md.
 */
SET client_min_messages = warning;
-- qml.enqueue's SQL body names qml.enqueue_as_owner, defined after it
SET check_function_bodies = false;
BEGIN;
"""
    # the additions are helpers the replacements call: SQL bodies are
    # checked when created, so they come first, right after the schema
    anchor = "REVOKE ALL ON SCHEMA qml FROM PUBLIC;\n"
    if anchor not in script:
        sys.exit("build.py: no place for the additions")
    script = script.replace(anchor, anchor + "\n" + "\n".join(additions), 1)
    out = header + script + "\n" + "\n".join(late) + EPILOGUE
    tmp = target + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(out)
    os.replace(tmp, target)


main()
