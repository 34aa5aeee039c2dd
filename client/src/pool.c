/*
 * pool.c
 *	  Connections: opening one, a bounded pool of them, running statements,
 *	  and turning server errors into a status and the thread's error.
 *
 * The pool hands out idle connections first and opens new ones up to its
 * maximum; a caller that finds it exhausted waits up to the connect timeout.
 * Connections come back broken after a server restart: the pool notices at
 * acquire time (the socket is readable while idle means the server said
 * goodbye) and opens a fresh one, so a restart costs callers nothing.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct qml_pool
{
	const qml_config *config;	/* the client's */
	pthread_mutex_t mu;
	pthread_cond_t cv;			/* a connection came back or a slot freed */
	qml_conn  **idle;
	int			nidle;
	int			total;			/* open or being opened */
};

/* ---- single connections ---- */

static void quiet_notices(void *arg, const PGresult *res);

/*
 * The session every connection starts with. search_path is pinned first:
 * a database owner may ALTER DATABASE ... SET search_path = trap,
 * pg_catalog, and every later statement of the library, whoever runs it (a
 * superuser's qml stats included), would then resolve its unqualified
 * operators, functions and type names (=, count, now, ::int8) to the
 * owner's objects. pg_catalog first, pg_temp last, as the extension's
 * functions pin it. A SET rather than libpq's options=-c: it needs no
 * merging with the options of the user's URL or PGOPTIONS, and PgBouncer
 * refuses an options startup parameter. A pooler in transaction mode would
 * drop it, but the library needs a session of its own anyway (LISTEN,
 * prepared statements, session leases). False with the error set.
 */
static bool
session_setup(PGconn *pg, const qml_config *config)
{
	char		sql[128];
	PGresult   *r;
	bool		ok;

	snprintf(sql, sizeof(sql), "SET search_path = pg_catalog, pg_temp");
	if (config->statement_timeout_ms > 0)
		snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql),
				 "; SET statement_timeout = %d", config->statement_timeout_ms);
	r = PQexec(pg, sql);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		qml__error(QML_ERR_CONNECT, "cannot set up the session: %s",
				   PQerrorMessage(pg));
	PQclear(r);
	return ok;
}

qml_status
qml__connect(const qml_config *config, const char *appname, qml_conn **out)
{
	const char *kw[10];
	const char *val[10];
	char		timeout[16];
	int			n = 0;
	PGconn	   *pg;
	qml_conn   *c;

	*out = NULL;
	snprintf(timeout, sizeof(timeout), "%d", config->connect_timeout_s);

	/*
	 * Entries before dbname may be overridden by the URL (libpq processes
	 * the arrays in order): a user's connect_timeout or application_name
	 * wins. Keepalives let a worker notice a vanished server instead of
	 * waiting forever on a dead TCP connection.
	 */
	kw[n] = "connect_timeout";
	val[n++] = timeout;
	kw[n] = "application_name";
	val[n++] = appname ? appname : config->application_name;
	kw[n] = "keepalives";
	val[n++] = "1";
	kw[n] = "keepalives_idle";
	val[n++] = "10";
	kw[n] = "keepalives_interval";
	val[n++] = "5";
	kw[n] = "keepalives_count";
	val[n++] = "3";
	if (config->database_url && config->database_url[0])
	{
		kw[n] = "dbname";
		val[n++] = config->database_url;
	}
	kw[n] = NULL;
	val[n] = NULL;

	pg = PQconnectdbParams(kw, val, 1);
	if (pg == NULL)
		return qml__nomem();
	PQsetNoticeReceiver(pg, quiet_notices, NULL);
	if (PQstatus(pg) != CONNECTION_OK)
	{
		qml__error(QML_ERR_CONNECT, "cannot connect to the database: %s",
				   PQerrorMessage(pg));
		qml__error_set_extra(NULL,
							 "Check DATABASE_URL (or the PG* variables) and that the server is running.",
							 NULL);
		PQfinish(pg);
		return QML_ERR_CONNECT;
	}
	if (!session_setup(pg, config))
	{
		PQfinish(pg);
		return QML_ERR_CONNECT;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
	{
		PQfinish(pg);
		return qml__nomem();
	}
	c->pg = pg;
	*out = c;
	return QML_OK;
}

void
qml__conn_close(qml_conn *c)
{
	if (c == NULL)
		return;
	PQfinish(c->pg);
	free(c);
}

bool
qml__conn_ok(const qml_conn *c)
{
	return c && PQstatus(c->pg) == CONNECTION_OK;
}

/*
 * An idle pooled connection (which never LISTENs) should have nothing to
 * read. If it has, the server is saying goodbye: a FATAL message and EOF
 * after a restart, pg_terminate_backend or an idle timeout. Reading that
 * message would not mark the connection bad until the EOF is seen, so any
 * unsolicited input counts as stale.
 */
static bool
conn_stale(qml_conn *c)
{
	struct pollfd pfd;

	if (PQstatus(c->pg) != CONNECTION_OK)
		return true;
	pfd.fd = PQsocket(c->pg);
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (pfd.fd < 0)
		return true;
	return poll(&pfd, 1, 0) != 0;
}

/* Server notices (and a dying server's last words) are not ours to print. */
static void
quiet_notices(void *arg, const PGresult *res)
{
	(void) arg;
	(void) res;
}

/* ---- errors ---- */

static qml_status
status_of_sqlstate(const char *ss)
{
	if (ss == NULL || strlen(ss) != 5)
		return QML_ERR_SERVER;
	if (strncmp(ss, "08", 2) == 0 || strcmp(ss, "57P01") == 0 ||
		strcmp(ss, "57P02") == 0 || strcmp(ss, "57P03") == 0)
		return QML_ERR_CONNECT;
	if (strcmp(ss, "57014") == 0 || strcmp(ss, "55P03") == 0)
		return QML_ERR_TIMEOUT;
	if (strcmp(ss, "P0002") == 0)
		return QML_ERR_NOT_FOUND;
	if (strcmp(ss, "42501") == 0)
		return QML_ERR_PERMISSION;
	if (strcmp(ss, "0A000") == 0)
		return QML_ERR_UNSUPPORTED;
	if (strncmp(ss, "22", 2) == 0)
		return QML_ERR_INVALID;
	if (strncmp(ss, "23", 2) == 0)
		return QML_ERR_CONFLICT;
	return QML_ERR_SERVER;
}

/* An undefined schema, function, table or type: qml may be missing. */
static bool
missing_object(const char *ss)
{
	return ss && (strcmp(ss, "3F000") == 0 || strcmp(ss, "42883") == 0 ||
				  strcmp(ss, "42P01") == 0 || strcmp(ss, "42704") == 0);
}

static qml_status
error_from_result(qml_conn *c, const PGresult *res)
{
	const char *ss = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
	qml_status	st;

	if (PQstatus(c->pg) != CONNECTION_OK || (ss == NULL && primary == NULL))
	{
		st = (PQstatus(c->pg) != CONNECTION_OK) ? QML_ERR_CONNECT : QML_ERR_SERVER;
		qml__error(st, "%s%s", st == QML_ERR_CONNECT ? "lost the connection to the database: " : "",
				   PQerrorMessage(c->pg));
		return st;
	}

	st = status_of_sqlstate(ss);
	if (missing_object(ss) && PQtransactionStatus(c->pg) == PQTRANS_IDLE)
	{
		PGresult   *r = PQexec(c->pg,
							   "SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'qml'");

		if (PQresultStatus(r) == PGRES_TUPLES_OK)
		{
			if (PQntuples(r) == 0)
			{
				PQclear(r);
				qml__error(QML_ERR_NO_EXTENSION,
						   "the qml extension is not installed in database \"%s\"",
						   PQdb(c->pg));
				qml__error_set_extra(primary,
									 "Run \"qml migrate\" (or call qml_migrate()), or open the client with auto-migrate on.",
									 ss);
				return QML_ERR_NO_EXTENSION;
			}
			if (primary && strstr(primary, "qml"))
				st = QML_ERR_UNSUPPORTED;
		}
		PQclear(r);
	}
	qml__error(st, "%s", primary ? primary : PQerrorMessage(c->pg));
	qml__error_set_extra(detail, hint, ss);
	return st;
}

static qml_status
check_result(qml_conn *c, PGresult *res, PGresult **out)
{
	ExecStatusType s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	qml_status	st;

	if (out)
		*out = NULL;
	if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK)
	{
		if (out)
			*out = res;
		else
			PQclear(res);
		return QML_OK;
	}
	st = error_from_result(c, res);
	PQclear(res);
	return st;
}

qml_status
qml__exec(qml_conn *c, const char *sql, int nparams, const char *const *params,
		  PGresult **out)
{
	return qml__exec_params(c, sql, nparams, params, NULL, NULL, out);
}

qml_status
qml__exec_params(qml_conn *c, const char *sql, int nparams, const char *const *params,
				 const int *lengths, const int *formats, PGresult **out)
{
	PGresult   *res = PQexecParams(c->pg, sql, nparams, NULL, params, lengths, formats, 0);

	return check_result(c, res, out);
}

qml_status
qml__exec_script(qml_conn *c, const char *sql)
{
	return check_result(c, PQexec(c->pg, sql), NULL);
}

static const char *const stmt_names[QML_STMT_COUNT] = {
	"qml_fetch", "qml_complete", "qml_complete_results", "qml_fail",
	"qml_release", "qml_heartbeat"
};

qml_status
qml__exec_prepared(qml_conn *c, qml_stmt stmt, const char *sql, int nparams,
				   const char *const *params, PGresult **out)
{
	return qml__exec_prepared_bin(c, stmt, sql, nparams, params, NULL, NULL, 0, out);
}

qml_status
qml__exec_prepared_as(qml_conn *c, qml_stmt stmt, const char *sql, int nparams,
					  const char *const *params, int result_format,
					  PGresult **out)
{
	return qml__exec_prepared_bin(c, stmt, sql, nparams, params, NULL, NULL,
								  result_format, out);
}

qml_status
qml__exec_prepared_bin(qml_conn *c, qml_stmt stmt, const char *sql, int nparams,
					   const char *const *params, const int *lengths,
					   const int *formats, int result_format, PGresult **out)
{
	PGresult   *res;

	if (!(c->prepared & (1u << stmt)))
	{
		qml_status	st;

		res = PQprepare(c->pg, stmt_names[stmt], sql, nparams, NULL);
		if ((st = check_result(c, res, NULL)) != QML_OK)
			return st;
		c->prepared |= 1u << stmt;
	}
	res = PQexecPrepared(c->pg, stmt_names[stmt], nparams, params, lengths, formats,
						 result_format);
	return check_result(c, res, out);
}

/* ---- the pool ---- */

qml_status
qml__pool_new(const qml_config *config, qml_pool **out)
{
	qml_pool   *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (p == NULL)
		return qml__nomem();
	p->idle = calloc((size_t) config->max_connections, sizeof(qml_conn *));
	if (p->idle == NULL)
	{
		free(p);
		return qml__nomem();
	}
	p->config = config;
	pthread_mutex_init(&p->mu, NULL);
	qml__cond_init(&p->cv);
	*out = p;
	return QML_OK;
}

void
qml__pool_free(qml_pool *p)
{
	if (p == NULL)
		return;
	for (int i = 0; i < p->nidle; i++)
		qml__conn_close(p->idle[i]);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->idle);
	free(p);
}

qml_status
qml__pool_acquire(qml_pool *p, qml_conn **out)
{
	int64_t		deadline = qml__mono_us() + (int64_t) p->config->connect_timeout_s * 1000000;

	*out = NULL;
	pthread_mutex_lock(&p->mu);
	for (;;)
	{
		if (p->nidle > 0)
		{
			qml_conn   *c = p->idle[--p->nidle];

			pthread_mutex_unlock(&p->mu);
			if (!conn_stale(c))
			{
				*out = c;
				return QML_OK;
			}
			qml__conn_close(c);
			pthread_mutex_lock(&p->mu);
			p->total--;
			continue;
		}
		if (p->total < p->config->max_connections)
		{
			qml_status	st;

			p->total++;
			pthread_mutex_unlock(&p->mu);
			st = qml__connect(p->config, NULL, out);
			if (st != QML_OK)
			{
				pthread_mutex_lock(&p->mu);
				p->total--;
				pthread_cond_signal(&p->cv);
				pthread_mutex_unlock(&p->mu);
			}
			return st;
		}
		if (!qml__cond_wait_until(&p->cv, &p->mu, deadline) &&
			qml__mono_us() >= deadline)
		{
			int			max = p->config->max_connections;

			pthread_mutex_unlock(&p->mu);
			qml__error(QML_ERR_TIMEOUT,
					   "no database connection free: all %d connections of the pool are in use",
					   max);
			qml__error_set_extra(NULL, "Raise the pool maximum (QML_MAX_CONNECTIONS).", NULL);
			return QML_ERR_TIMEOUT;
		}
	}
}

void
qml__pool_release(qml_pool *p, qml_conn *c)
{
	if (c == NULL)
		return;
	if (PQstatus(c->pg) != CONNECTION_OK ||
		PQtransactionStatus(c->pg) != PQTRANS_IDLE)
	{
		qml__conn_close(c);
		pthread_mutex_lock(&p->mu);
		p->total--;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		return;
	}
	pthread_mutex_lock(&p->mu);
	p->idle[p->nidle++] = c;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/*
 * A runtime session adopts an idle connection instead of opening its own:
 * the client opened it already (qml__pool_warm), and a new server process
 * costs milliseconds before a worker's first job. It leaves the pool (its
 * owner closes it, or gives it back with qml__pool_give), so the pool may
 * open another in its place meanwhile.
 */
qml_conn *
qml__pool_take_idle(qml_pool *p)
{
	for (;;)
	{
		qml_conn   *c = NULL;

		pthread_mutex_lock(&p->mu);
		if (p->nidle > 0)
		{
			c = p->idle[--p->nidle];
			p->total--;
			pthread_cond_signal(&p->cv);
		}
		pthread_mutex_unlock(&p->mu);
		if (c == NULL || !conn_stale(c))
			return c;
		qml__conn_close(c);
	}
}

void
qml__pool_give(qml_pool *p, qml_conn *c)
{
	pthread_mutex_lock(&p->mu);
	if (p->total >= p->config->max_connections)
	{
		pthread_mutex_unlock(&p->mu);
		qml__conn_close(c);
		return;
	}
	p->total++;
	p->idle[p->nidle++] = c;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* Opens `min` connections now, at least one, so misconfiguration shows early. */
qml_status
qml__pool_warm(qml_pool *p)
{
	int			want = p->config->min_connections > 0 ? p->config->min_connections : 1;
	qml_conn  **held = calloc((size_t) want, sizeof(qml_conn *));
	qml_status	st = QML_OK;
	int			got = 0;

	if (held == NULL)
		return qml__nomem();
	while (got < want && (st = qml__pool_acquire(p, &held[got])) == QML_OK)
		got++;
	for (int i = 0; i < got; i++)
		qml__pool_release(p, held[i]);
	free(held);
	return st;
}

qml_status
qml__client_exec(qml_client *client, const char *sql, int nparams,
				 const char *const *params, PGresult **res)
{
	qml_conn   *c;
	qml_status	st;

	if (res)
		*res = NULL;
	if ((st = qml__pool_acquire(client->pool, &c)) != QML_OK)
		return st;
	st = qml__exec(c, sql, nparams, params, res);
	qml__pool_release(client->pool, c);
	return st;
}
