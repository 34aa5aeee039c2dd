/*
 * maintenance_tick.c
 *	  The scheduler's passes where there is no scheduler: a database with
 *	  qml's pure-SQL edition (docs/sql-edition.md) has no background worker
 *	  to promote due jobs, rescue expired leases, fire recurring jobs and
 *	  prune, so the worker runtimes call qml.maintain() about once a second.
 *
 * One runtime at a time does it: the one whose session holds a session-level
 * advisory lock. It holds the lock for as long as its connection lives, so
 * when it stops or dies the lock goes with its session and the next runtime
 * to tick takes over within a second. Passes that overlap anyway (a pass by
 * hand, cron) are safe: every step of qml.maintain() takes its rows with
 * SKIP LOCKED, and a recurring job's due time fires under its row's lock.
 *
 * The fetcher calls it on its own connection, between fetches; it decides
 * nothing about the C edition, whose background worker does this.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* the advisory lock key of the elected maintainer: "qmlmaint" in ASCII */
#define MAINT_LOCK_KEY "8173308115788852852"
#define MAINT_INTERVAL_US 1000000

/*
 * Whether this database runs the SQL edition and this role may maintain it.
 * From the catalogs: to_regprocedure() raises an error for a role without
 * USAGE on schema qml.
 */
static const char edition_sql[] =
"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p"
"               JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
"               WHERE n.nspname = 'qml' AND p.proname = 'edition' AND p.pronargs = 0),"
"       (SELECT pg_catalog.has_schema_privilege(n.oid, 'USAGE')"
"               AND pg_catalog.has_function_privilege(p.oid, 'EXECUTE')"
"          FROM pg_catalog.pg_proc p"
"          JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
"         WHERE n.nspname = 'qml' AND p.proname = 'maintain' AND p.pronargs = 0)";

/* true when the one-row, one-column query answered 't' */
static bool
query_true(PGconn *conn, const char *sql, qml_maint *m)
{
	PGresult   *r = PQexec(conn, sql);
	bool		yes = false;

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		yes = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	else
		snprintf(m->error, sizeof(m->error), "%s", PQerrorMessage(conn));
	PQclear(r);
	return yes;
}

/* Looks at the database once per connection: MAINT_SQL, MAINT_NONE or MAINT_DENIED. */
static qml_maint_mode
find_mode(PGconn *conn, qml_maint *m)
{
	PGresult   *r = PQexec(conn, edition_sql);
	qml_maint_mode mode = MAINT_NONE;

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		snprintf(m->error, sizeof(m->error), "%s", PQerrorMessage(conn));
	else if (strcmp(PQgetvalue(r, 0, 0), "t") == 0)
		mode = strcmp(PQgetvalue(r, 0, 1), "t") == 0 ? MAINT_SQL : MAINT_DENIED;
	PQclear(r);
	return mode;
}

/*
 * One tick, at most once per MAINT_INTERVAL_US: on the SQL edition, take
 * the maintainer's lock if nobody holds it, and while holding it run one
 * pass. Returns a message for the caller to log once (an error, or that
 * this role may not maintain), else NULL.
 */
const char *
qml__maintenance_tick(PGconn *conn, qml_maint *m)
{
	int64_t		now = qml__mono_us();
	bool		ok;

	if (conn == NULL || now < m->next_us)
		return NULL;
	m->next_us = now + MAINT_INTERVAL_US;
	m->error[0] = '\0';
	/* a reconnection may get the old PGconn's address back, not its pid */
	if (conn != m->conn || PQbackendPID(conn) != m->pid)
	{
		/* a new session: neither its lock nor its answer carry over */
		m->conn = conn;
		m->pid = PQbackendPID(conn);
		m->leader = false;
		m->mode = find_mode(conn, m);
		if (m->mode == MAINT_DENIED)
			return "the SQL edition is installed but this role may not call "
				"qml.maintain(): grant it, or run the passes another way "
				"(docs/sql-edition.md)";
	}
	if (m->mode != MAINT_SQL)
		return m->error[0] ? m->error : NULL;
	if (!m->leader)
		m->leader = query_true(conn, "SELECT pg_catalog.pg_try_advisory_lock("
							   MAINT_LOCK_KEY ")", m);
	ok = !m->leader || query_true(conn, "SELECT qml.maintain() IS NOT NULL", m);
	if (ok && m->error[0] == '\0')
	{
		m->complained = false;
		return NULL;
	}
	/* one message per outage, not one a second */
	if (m->complained)
		return NULL;
	m->complained = true;
	return m->error;
}
