/*
 * store_pg_schema.c
 *	  The PostgreSQL store's schema management: is qml installed, which version, and migrating to
 *	  the server's default version (CREATE EXTENSION / ALTER EXTENSION
 *	  UPDATE), serialized across processes with an advisory lock.
 *
 * The schema is the extension: its SQL script ships with the server-side
 * files, so "migrate" means asking the server to install or update it, and
 * the one thing that can be missing is those files on the server.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "store_pg.h"

/* pg_advisory_xact_lock(key1, key2): 'qml' and 1 for migrations */
#define MIGRATE_LOCK "SELECT pg_catalog.pg_advisory_xact_lock(7433580, 1)"

/*
 * The pure-SQL edition (docs/sql-edition.md) is no extension: its script
 * installs and updates it, so it reports itself as both the installed and
 * the available version, which leaves nothing to migrate. The catalogs,
 * not to_regprocedure(), say whether qml.edition() exists: to_regprocedure
 * raises an error for a role without USAGE on schema qml, and such a role
 * must hear what it may not do (migrate: "must be owner of extension").
 */
#define INSTALLED_SQL \
"SELECT coalesce((SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'qml'), e.sql)"
#define EDITION_SQL \
"  FROM (SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_proc p" \
"                     JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace" \
"                     WHERE n.nspname = 'qml' AND p.proname = 'edition' AND p.pronargs = 0)" \
"               THEN 'sql edition' END AS sql) e"
static const char *const version_sql =
INSTALLED_SQL ","
"       coalesce(e.sql, (SELECT default_version FROM pg_catalog.pg_available_extensions"
"                         WHERE name = 'qml'))"
EDITION_SQL;

/*
 * The installed version alone: pg_available_extensions reads every control
 * file of the server's extension directory, a few milliseconds that every
 * worker's start (qml_schema_exists) paid before its first fetch.
 */
static const char *const installed_sql = INSTALLED_SQL EDITION_SQL;

static qml_status
versions_on(qml_conn *c, char **installed, char **available)
{
	PGresult   *r;
	qml_status	st;

	*installed = NULL;
	if (available)
		*available = NULL;
	if ((st = qml__exec(c, available ? version_sql : installed_sql, 0, NULL, &r)) != QML_OK)
		return st;
	if (!PQgetisnull(r, 0, 0) && (*installed = qml__strdup(PQgetvalue(r, 0, 0))) == NULL)
		st = qml__nomem();
	if (st == QML_OK && available && !PQgetisnull(r, 0, 1) &&
		(*available = qml__strdup(PQgetvalue(r, 0, 1))) == NULL)
		st = qml__nomem();
	PQclear(r);
	if (st != QML_OK)
	{
		free(*installed);
		*installed = NULL;
	}
	return st;
}

qml_status
pg_schema_version(qml_store *store, char **installed, char **available)
{
	qml_client *client = store->client;
	qml_conn   *c;
	qml_status	st;

	if ((st = qml__pool_acquire(client->pool, &c)) != QML_OK)
		return st;
	st = versions_on(c, installed, available);
	qml__pool_release(client->pool, c);
	return st;
}

/* Runs a statement of the migration; on failure rolls back, keeping the error. */
static qml_status
step(qml_conn *c, const char *sql)
{
	qml_status	st = qml__exec(c, sql, 0, NULL, NULL);

	if (st != QML_OK && PQstatus(c->pg) == CONNECTION_OK &&
		PQtransactionStatus(c->pg) != PQTRANS_IDLE)
	{
		PGresult   *r = PQexec(c->pg, "ROLLBACK");

		PQclear(r);
	}
	return st;
}

qml_status
pg_migrate(qml_store *store, bool only_if_needed, bool *migrated)
{
	qml_client *client = store->client;
	qml_conn   *c;
	qml_status	st;
	char	   *installed = NULL,
			   *available = NULL;

	/* CREATE or ALTER EXTENSION is only ever needed when out of date */
	(void) only_if_needed;
	if (migrated)
		*migrated = false;
	if ((st = qml__pool_acquire(client->pool, &c)) != QML_OK)
		return st;

	/* the common case, up to date, takes one round trip and no lock */
	st = versions_on(c, &installed, &available);
	if (st == QML_OK && installed && (!available || strcmp(installed, available) == 0))
		goto done;
	free(installed);
	free(available);
	installed = available = NULL;

	if (st != QML_OK ||
		(st = step(c, "BEGIN")) != QML_OK ||
		(st = step(c, MIGRATE_LOCK)) != QML_OK)
		goto done;
	/* another process may have migrated while we waited for the lock */
	if ((st = versions_on(c, &installed, &available)) != QML_OK)
	{
		step(c, "ROLLBACK");
		goto done;
	}
	if (available == NULL)
	{
		step(c, "ROLLBACK");
		if (installed)
			goto done;			/* installed, files gone: nothing to do */
		st = qml__error(QML_ERR_NO_EXTENSION,
						"the qml extension is not available on the database server: "
						"its files (qml.control, qml--*.sql, qml.so) are not installed there");
		qml__error_set_extra(NULL,
							 "Install them on the database host (\"make install\" in the qml "
							 "source tree), then run \"qml migrate\" again.",
							 NULL);
		goto done;
	}
	if (installed == NULL)
		st = step(c, "CREATE EXTENSION qml");
	else if (strcmp(installed, available) != 0)
		st = step(c, "ALTER EXTENSION qml UPDATE");
	else
	{
		step(c, "ROLLBACK");
		goto done;
	}
	if (st == QML_OK && (st = step(c, "COMMIT")) == QML_OK && migrated)
		*migrated = true;
	if (st != QML_OK)
	{
		char		msg[1024];

		/* keep the server's words, say what we were doing */
		snprintf(msg, sizeof(msg), "%s", qml_errmsg());
		if (qml_errcode() != QML_ERR_CONNECT)
		{
			char		detail[1024],
						hint[512],
						ss[6];

			snprintf(detail, sizeof(detail), "%s", qml_errdetail());
			snprintf(hint, sizeof(hint), "%s", qml_errhint());
			snprintf(ss, sizeof(ss), "%s", qml_errsqlstate());
			qml__error(st, "cannot %s the qml extension: %s",
					   installed ? "update" : "create", msg);
			qml__error_set_extra(detail, hint, ss);
		}
	}

done:
	free(installed);
	free(available);
	qml__pool_release(client->pool, c);
	return st;
}

/* ---- health ---- */

/*
 * The scheduler is a background worker: its backend_type (or its
 * application_name) mentions qml, and it is connected to the database it
 * serves; the launcher that starts one per database has no database. Worker servers are counted by their
 * fetcher's session, named "qml worker <name>" (one per server; its
 * flusher's is "qml flusher <name>"). Whether the scheduler waits for a
 * background worker slot is asked only of a server whose qml has
 * qml.scheduler_slot_wait_since() (1.1) and where we may call it.
 * shared_preload_libraries is read through pg_settings, which leaves it out
 * for a role without pg_read_all_settings where current_setting() would
 * fail the whole check: then only a running scheduler or launcher tells.
 */
static const char health_sql[] =
"SELECT current_setting('server_version'), current_database(), current_user,"
"       (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'qml'),"
"       (SELECT default_version FROM pg_catalog.pg_available_extensions WHERE name = 'qml'),"
"       (SELECT 'qml' = ANY (pg_catalog.string_to_array(pg_catalog.replace("
"                 s.setting, ' ', ''), ','))"
"          FROM pg_catalog.pg_settings s WHERE s.name = 'shared_preload_libraries'),"
"       (SELECT count(*) FROM pg_catalog.pg_stat_activity a"
"         WHERE a.backend_type IS DISTINCT FROM 'client backend'"
"           AND (a.backend_type ILIKE '%qml%' OR a.application_name ILIKE '%qml%')"
"           AND a.datname = current_database()),"
"       (SELECT count(*) FROM pg_catalog.pg_stat_activity a"
"         WHERE a.backend_type = 'client backend'"
"           AND a.application_name LIKE 'qml worker %'"
"           AND a.datname = current_database()),"
"       EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a"
"         WHERE a.backend_type IS DISTINCT FROM 'client backend'"
"           AND (a.backend_type ILIKE '%qml%' OR a.application_name ILIKE '%qml%')"
"           AND a.datname IS NULL),"
"       COALESCE((SELECT pg_catalog.has_schema_privilege(n.oid, 'USAGE')"
"                    AND pg_catalog.has_function_privilege(p.oid, 'EXECUTE')"
"                  FROM pg_catalog.pg_proc p"
"                  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
"                 WHERE n.nspname = 'qml' AND p.proname = 'scheduler_slot_wait_since'"
"                   AND p.pronargs = 0), false)";

static const char slot_wait_sql[] = "SELECT qml.scheduler_slot_wait_since()";

/* since when the scheduler waits for a slot, if it does; NULL otherwise */
static qml_status
read_slot_wait(qml_client *client, qml_health *h)
{
	PGresult   *r;
	qml_status	st;

	if ((st = qml__client_exec(client, slot_wait_sql, 0, NULL, &r)) != QML_OK)
		return st;
	if (!PQgetisnull(r, 0, 0) &&
		(h->slot_wait_since = qml__strdup(PQgetvalue(r, 0, 0))) == NULL)
		st = qml__nomem();
	PQclear(r);
	return st;
}

qml_status
pg_health(qml_store *store, qml_health **out)
{
	qml_client *client = store->client;
	PGresult   *r;
	qml_status	st;
	qml_health *h;
	bool		oom = false;
	bool		may_read_slot_wait;

	if ((st = qml__client_exec(client, health_sql, 0, NULL, &r)) != QML_OK)
		return st;
	if ((h = calloc(1, sizeof(*h))) == NULL)
	{
		PQclear(r);
		return qml__nomem();
	}
	for (int col = 0; col < 5; col++)
	{
		char	  **field[] = {&h->server_version, &h->database, &h->user,
		&h->installed_version, &h->available_version};

		if (!PQgetisnull(r, 0, col) &&
			(*field[col] = qml__strdup(PQgetvalue(r, 0, col))) == NULL)
			oom = true;
	}
	h->scheduler_processes = atoi(PQgetvalue(r, 0, 6));
	h->worker_servers = atoi(PQgetvalue(r, 0, 7));
	h->launcher = strcmp(PQgetvalue(r, 0, 8), "t") == 0;
	h->preloaded_known = !PQgetisnull(r, 0, 5);
	h->preloaded = h->preloaded_known ? strcmp(PQgetvalue(r, 0, 5), "t") == 0
		: h->launcher || h->scheduler_processes > 0;
	may_read_slot_wait = strcmp(PQgetvalue(r, 0, 9), "t") == 0;
	PQclear(r);
	if (oom)
		st = qml__nomem();
	else if (may_read_slot_wait)
		st = read_slot_wait(client, h);
	if (st != QML_OK)
	{
		qml_health_free(h);
		return st;
	}
	*out = h;
	return QML_OK;
}
