/*
 * store_pg_session.c
 *	  The PostgreSQL store's runtime operations: sessions (one connection
 *	  each), the claim (qml.fetch with a session lease), outcomes in batches
 *	  (qml.complete_batch, qml.fail, qml.release) and heartbeats.
 *
 * A fetch session LISTENs on channel qml before its first claim, and its
 * claims commit without waiting for the WAL flush unless durable claims are
 * asked for (why that is safe: qml_server_config_set_durable_claims in
 * qml.h). Its claims carry a session lease: when the session ends the
 * scheduler gives them back, so the runtime keeps it open until every job
 * it claimed is reported or released. Outcomes cost at most one statement
 * per kind whatever their number.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_pg.h"

/*
 * The claim's rows come back in binary: the fetch backend is the runtime's
 * busiest process, and printing each row's numbers and time as text (the
 * time through numeric arithmetic) was a tenth of its work. The casts pin
 * the types the binary layout depends on (they cost nothing when the types
 * already match).
 */
static const char fetch_sql[] =
"SELECT id::int8, queue::text, method::text, arguments::text, priority::int4,"
"       attempts::int4, max_attempts::int4, created_at::timestamptz"
"  FROM qml.fetch($1, $2::text[], $3::int, $4::interval,"
"                 session_lease => true)";

/* µs from the Unix epoch to PostgreSQL's, 2000-01-01 UTC */
#define PG_EPOCH_US INT64_C(946684800000000)
static const char complete_sql[] =
"SELECT count(*) FROM qml.complete_batch($1::int8[], $2)";
static const char complete_results_sql[] =
"SELECT count(*) FROM qml.complete_batch($1::int8[], $2, $3::jsonb[])";
static const char fail_sql[] =
"SELECT f.job_id, (extract(epoch FROM f.next_run_at - now()) * 1000)::int8"
"  FROM qml.fail_batch($1::int8[], $2, $3::text[], $4::bool[]) f";
/* a database still on version 1.0 has no qml.fail_batch */
static const char fail_1_0_sql[] =
"SELECT f.id, NULL FROM (SELECT f.id, qml.fail(f.id, $2, f.err, f.retry) AS s"
"  FROM unnest($1::int8[], $3::text[], $4::bool[]) AS f(id, err, retry)) f"
" WHERE f.s IS NOT NULL";
static const char release_sql[] =
"SELECT count(*) FILTER (WHERE r) FROM (SELECT qml.release(t.id, $2) AS r"
"  FROM unnest($1::int8[]) AS t(id)) x";
static const char heartbeat_sql[] =
"SELECT id FROM qml.heartbeat($1::int8[], $2, $3::interval) AS id";

typedef struct pg_session
{
	qml_store_session base;
	qml_conn   *conn;
	char	   *worker;
	char	  **queues;
	size_t		nqueues;
	char	   *queues_literal; /* "{a,b}" for qml.fetch */
	char		lease_literal[32];	/* "300000 milliseconds" */
	qml_buf		ids,
				texts,
				flags;
	bool		fail_1_0;		/* qml.fail_batch is missing or not granted */
	bool		adopted;		/* the connection came from the pool */
	bool		durable;		/* SET qml.durable_claims was sent */
	bool		claims_left;	/* a claimed job was not handed out */
	qml_maint	maint;			/* qml.maintain() for the pure-SQL edition */
} pg_session;

qml_conn *
qml__pg_session_conn(qml_store_session *session)
{
	return ((pg_session *) session)->conn;
}

void
pg_session_close(qml_store_session *session)
{
	pg_session *ps = (pg_session *) session;

	if (ps == NULL)
		return;
	qml__conn_close(ps->conn);
	for (size_t i = 0; i < ps->nqueues; i++)
		free(ps->queues[i]);
	free(ps->queues);
	free(ps->worker);
	free(ps->queues_literal);
	qml__buf_free(&ps->ids);
	qml__buf_free(&ps->texts);
	qml__buf_free(&ps->flags);
	free(ps);
}

/*
 * The session's connection. The fetch session, which the first job waits
 * for, adopts an idle pooled one when there is one (qml__pool_take_idle),
 * named as its own would be: unless the URL named the connections (then
 * both carry that name), it takes the session's application_name.
 */
static qml_status
session_connect(qml_store *store, const qml_session_config *cfg, qml_conn **out,
				bool *adopted)
{
	const qml_config *config = store->client->config;
	const char *name;
	qml_conn   *c;
	qml_status	st;

	*adopted = false;
	if (cfg->kind != QML_SESSION_FETCH || cfg->appname == NULL ||
		(c = qml__pool_take_idle(store->client->pool)) == NULL)
		return qml__connect(config, cfg->appname, out);
	name = PQparameterStatus(c->pg, "application_name");
	st = QML_OK;
	if (name && strcmp(name, config->application_name) == 0)
		st = qml__exec(c, "SELECT pg_catalog.set_config('application_name', $1, false)",
					   1, &cfg->appname, NULL);
	if (st != QML_OK)
	{
		qml__conn_close(c);
		return st;
	}
	*out = c;
	*adopted = true;
	return QML_OK;
}

qml_status
pg_session_open(qml_store *store, const qml_session_config *cfg,
				qml_store_session **out)
{
	pg_session *ps = calloc(1, sizeof(*ps));
	qml_status	st;

	*out = NULL;
	if (ps == NULL)
		return qml__nomem();
	ps->base.store = store;
	ps->base.kind = cfg->kind;
	qml__buf_init(&ps->ids);
	qml__buf_init(&ps->texts);
	qml__buf_init(&ps->flags);
	ps->queues_literal = qml__array_literal(cfg->queues, cfg->nqueues);
	ps->queues = calloc(cfg->nqueues + 1, sizeof(char *));
	ps->worker = qml__strdup(cfg->worker ? cfg->worker : "");
	if (ps->queues_literal == NULL || ps->queues == NULL || ps->worker == NULL)
	{
		pg_session_close(&ps->base);
		return qml__nomem();
	}
	for (size_t i = 0; i < cfg->nqueues; i++)
	{
		if ((ps->queues[i] = qml__strdup(cfg->queues[i])) == NULL)
		{
			pg_session_close(&ps->base);
			return qml__nomem();
		}
		ps->nqueues++;
	}
	snprintf(ps->lease_literal, sizeof(ps->lease_literal), "%d milliseconds", cfg->lease_ms);

	st = session_connect(store, cfg, &ps->conn, &ps->adopted);
	/* one round trip for LISTEN and the setting */
	if (st == QML_OK && cfg->kind != QML_SESSION_FLUSH)
		st = qml__exec_script(ps->conn, cfg->kind == QML_SESSION_FETCH && !cfg->durable_claims ?
							  "LISTEN qml; SET synchronous_commit = off" : "LISTEN qml");
	/*
	 * The server's qml.fetch commits a claim alone without the flush too,
	 * unless qml.durable_claims is on; a server whose qml.so predates the
	 * setting rejects it, and its claims wait for the flush anyway.
	 */
	if (st == QML_OK && cfg->kind == QML_SESSION_FETCH && cfg->durable_claims)
	{
		(void) qml__exec(ps->conn, "SET qml.durable_claims = on", 0, NULL, NULL);
		ps->durable = true;
	}
	if (st != QML_OK)
	{
		pg_session_close(&ps->base);
		return st;
	}

	/*
	 * A flush session completes an empty batch first: its statement is
	 * prepared and the new server process reads the catalogs and checks
	 * qml.jobs' shape (milliseconds) now, while the fetch session claims
	 * the first jobs, not at the first outcomes, when both server
	 * processes are busy. It writes nothing; an error shows again at the
	 * first batch.
	 */
	if (cfg->kind == QML_SESSION_FLUSH)
	{
		size_t		done;

		(void) pg_complete(&ps->base, ps->worker, NULL, NULL, 0, &done);
	}
	*out = &ps->base;
	return QML_OK;
}

/*
 * A fetch session whose claims were all reported (store.h): a connection
 * adopted from the pool goes back to it as it came, no longer listening,
 * its settings and name reset, and with its prepared statements, which
 * the next fetch session uses. Not holding the SQL edition's maintainer
 * lock (maintenance_tick.c) either: idle in the pool, it would keep every
 * runtime from maintaining the database for as long as the client lives.
 * Anything amiss closes it instead, as does a connection of the session's
 * own (RESET would keep the fetcher's name, which marks a running worker
 * server).
 */
void
pg_session_close_reported(qml_store_session *session)
{
	pg_session *ps = (pg_session *) session;
	PGnotify   *n;

	if (ps->adopted && !ps->claims_left && qml__conn_ok(ps->conn) &&
		PQtransactionStatus(ps->conn->pg) == PQTRANS_IDLE &&
		qml__exec_script(ps->conn, ps->durable ?
						 "UNLISTEN *; SELECT pg_catalog.pg_advisory_unlock_all();"
						 " RESET synchronous_commit; RESET qml.durable_claims;"
						 " RESET application_name" :
						 "UNLISTEN *; SELECT pg_catalog.pg_advisory_unlock_all();"
						 " RESET synchronous_commit; RESET application_name") == QML_OK)
	{
		while ((n = PQnotifies(ps->conn->pg)) != NULL)
			PQfreemem(n);
		qml__pool_give(session->store->client->pool, ps->conn);
		ps->conn = NULL;
	}
	pg_session_close(session);
}

bool
pg_session_ok(qml_store_session *session)
{
	return qml__conn_ok(((pg_session *) session)->conn);
}

int
pg_session_fd(qml_store_session *session)
{
	return PQsocket(((pg_session *) session)->conn->pg);
}

static bool
relevant(pg_session *ps, const char *payload)
{
	if (payload == NULL || payload[0] == '\0' || ps->base.kind == QML_SESSION_WATCH)
		return true;
	for (size_t i = 0; i < ps->nqueues; i++)
		if (strcmp(payload, ps->queues[i]) == 0)
			return true;
	return false;
}

int
pg_session_drain(qml_store_session *session)
{
	pg_session *ps = (pg_session *) session;
	PGnotify   *n;
	int			count = 0;

	if (!PQconsumeInput(ps->conn->pg))
		return -1;
	while ((n = PQnotifies(ps->conn->pg)) != NULL)
	{
		if (relevant(ps, n->extra))
			count++;
		PQfreemem(n);
	}
	return PQstatus(ps->conn->pg) == CONNECTION_OK ? count : -1;
}

/* A binary int8 / int4 column (network byte order); 0 when NULL. */
static int64_t
bin_i64(const PGresult *r, int row, int col)
{
	const unsigned char *v = (const unsigned char *) PQgetvalue(r, row, col);
	uint64_t	x = 0;

	if (PQgetlength(r, row, col) != 8)
		return 0;
	for (int k = 0; k < 8; k++)
		x = x << 8 | v[k];
	return (int64_t) x;
}

static int
bin_i32(const PGresult *r, int row, int col)
{
	const unsigned char *v = (const unsigned char *) PQgetvalue(r, row, col);

	if (PQgetlength(r, row, col) != 4)
		return 0;
	return (int32_t) ((uint32_t) v[0] << 24 | (uint32_t) v[1] << 16 |
					  (uint32_t) v[2] << 8 | (uint32_t) v[3]);
}

qml_status
pg_fetch(qml_store_session *session, int want, int wait_ms,
		 qml_store_job **out, int *got)
{
	pg_session *ps = (pg_session *) session;
	char		wants[16];
	const char *p[4];
	PGresult   *r;
	qml_status	st;
	int			n;

	(void) wait_ms;				/* the runtime waits on LISTEN instead */
	*got = 0;
	snprintf(wants, sizeof(wants), "%d", want);
	p[0] = ps->worker;
	p[1] = ps->queues_literal;
	p[2] = wants;
	p[3] = ps->lease_literal;
	if ((st = qml__exec_prepared_as(ps->conn, QML_STMT_FETCH, fetch_sql, 4, p, 1, &r)) != QML_OK)
		return st;
	n = PQntuples(r);
	for (int i = 0; i < n; i++)
	{
		/* binary text values end with a zero byte too (libpq) */
		qml_store_job *j = qml__store_job_new(bin_i64(r, i, 0),
											  PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
											  PQgetvalue(r, i, 3),
											  bin_i32(r, i, 4), bin_i32(r, i, 5),
											  bin_i32(r, i, 6),
											  bin_i64(r, i, 7) + PG_EPOCH_US);

		/* a job not handed out runs out its lease and is rescued */
		if (j != NULL)
			out[(*got)++] = j;
		else
			ps->claims_left = true;
	}
	PQclear(r);
	return QML_OK;
}

/* a 32-bit integer in network byte order, as PostgreSQL's binary formats want */
static void
put_u32(qml_buf *b, uint32_t v)
{
	unsigned char p[4] = {v >> 24, v >> 16, v >> 8, v};

	qml__buf_append(b, (const char *) p, 4);
}

/*
 * The ids as an int8[] in PostgreSQL's binary array format (array_send's):
 * dimensions, no NULLs, element type int8, then each element's length and
 * value. The server reads it without parsing text: array_in took 1.5% of
 * a completion's instructions at 750 jobs a statement, and the client's
 * decimal digits most of building the batch.
 */
#define INT8_OID 20

static void
build_ids(qml_buf *b, const int64_t *ids, size_t n)
{
	put_u32(b, n > 0 ? 1 : 0);	/* dimensions: an empty array has none */
	put_u32(b, 0);				/* no NULLs */
	put_u32(b, INT8_OID);
	if (n > 0)
	{
		put_u32(b, (uint32_t) n);
		put_u32(b, 1);			/* lower bound */
	}
	for (size_t i = 0; i < n; i++)
	{
		uint64_t	v = (uint64_t) ids[i];
		unsigned char p[12] = {0, 0, 0, 8,
			v >> 56, v >> 48, v >> 40, v >> 32, v >> 24, v >> 16, v >> 8, v};

		qml__buf_append(b, (const char *) p, sizeof(p));
	}
}

/*
 * The statement's arrays: the ids (binary, build_ids), texts (may be NULL)
 * and retry flags (may be NULL) as array literals.
 */
static bool
build(pg_session *ps, const int64_t *ids, const char *const *texts,
	  const bool *flags, size_t n, bool *any_text)
{
	qml__buf_reset(&ps->ids);
	qml__buf_reset(&ps->texts);
	qml__buf_reset(&ps->flags);
	build_ids(&ps->ids, ids, n);
	qml__buf_puts(&ps->texts, "{");
	qml__buf_puts(&ps->flags, "{");
	*any_text = false;
	for (size_t i = 0; i < n; i++)
	{
		const char *t = texts ? texts[i] : NULL;

		if (i)
		{
			if (texts)
				qml__buf_append(&ps->texts, ",", 1);
			if (flags)
				qml__buf_append(&ps->flags, ",", 1);
		}
		/* no texts, no flags: the statement takes no such array */
		if (texts)
			qml__buf_array_elem(&ps->texts, t);
		if (flags)
			qml__buf_append(&ps->flags, flags[i] ? "t" : "f", 1);
		if (t)
			*any_text = true;
	}
	qml__buf_puts(&ps->texts, "}");
	qml__buf_puts(&ps->flags, "}");
	return !(ps->ids.oom || ps->texts.oom || ps->flags.oom);
}

/* an outcome statement's parameters: the ids in binary, the others text */
static const int outcome_formats[4] = {1, 0, 0, 0};

/* Runs one outcome statement; *done gets the count it returns. */
static qml_status
outcome(pg_session *ps, qml_stmt stmt, const char *sql, int nparams,
		const char *worker, size_t *done)
{
	const char *p[4] = {ps->ids.data, worker, ps->texts.data, ps->flags.data};
	const int	lengths[4] = {(int) ps->ids.len, 0, 0, 0};
	PGresult   *r;
	qml_status	st;

	*done = 0;
	if ((st = qml__exec_prepared_bin(ps->conn, stmt, sql, nparams, p, lengths,
									 outcome_formats, 0, &r)) != QML_OK)
		return st;
	*done = (size_t) strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return QML_OK;
}

qml_status
pg_complete(qml_store_session *session, const char *worker, const int64_t *ids,
			const char *const *results, size_t n, size_t *done)
{
	pg_session *ps = (pg_session *) session;
	bool		texts;

	if (!build(ps, ids, results, NULL, n, &texts))
		return qml__nomem();
	return texts ? outcome(ps, QML_STMT_COMPLETE_RESULTS, complete_results_sql, 3, worker, done)
		: outcome(ps, QML_STMT_COMPLETE, complete_sql, 2, worker, done);
}

/*
 * qml.fail_batch, whose rows give each retry's next run; on a database
 * whose role cannot call it (still on 1.0, or given worker rights before
 * it existed) qml.fail per job, with a note saying so once.
 */
qml_status
pg_fail(qml_store_session *session, const char *worker, const int64_t *ids,
		const char *const *errors, const bool *retry, size_t n, size_t *done,
		int64_t *next_ms)
{
	pg_session *ps = (pg_session *) session;
	const char *p[4];
	int			lengths[4] = {0, 0, 0, 0};
	PGresult   *r = NULL;
	qml_status	st = QML_ERR_UNSUPPORTED;
	bool		texts;

	*done = 0;
	if (!build(ps, ids, errors, retry, n, &texts))
		return qml__nomem();
	p[0] = ps->ids.data;
	lengths[0] = (int) ps->ids.len;
	p[1] = worker;
	p[2] = ps->texts.data;
	p[3] = ps->flags.data;
	if (!ps->fail_1_0)
	{
		st = qml__exec_prepared_bin(ps->conn, QML_STMT_FAIL, fail_sql, 4, p, lengths,
									outcome_formats, 0, &r);
		if (st != QML_OK && qml__conn_ok(ps->conn) &&
			(strcmp(qml_errsqlstate(), "42883") == 0 || strcmp(qml_errsqlstate(), "42501") == 0))
		{
			snprintf(session->note, sizeof(session->note),
					 "%s (run qml migrate, or qml.grant_worker again); failing jobs one by one",
					 qml_errmsg());
			ps->fail_1_0 = true;
		}
	}
	if (ps->fail_1_0)
		st = qml__exec_params(ps->conn, fail_1_0_sql, 4, p, lengths, outcome_formats,
							  &r);
	if (st != QML_OK)
		return st;
	for (size_t i = 0; next_ms && i < n; i++)
		next_ms[i] = -1;
	*done = (size_t) PQntuples(r);
	for (int row = 0; next_ms && row < PQntuples(r); row++)
	{
		int64_t		id = strtoll(PQgetvalue(r, row, 0), NULL, 10);

		if (PQgetisnull(r, row, 1))
			continue;
		for (size_t i = 0; i < n; i++)
			if (ids[i] == id)
				next_ms[i] = strtoll(PQgetvalue(r, row, 1), NULL, 10);
	}
	PQclear(r);
	return QML_OK;
}

/* The pure-SQL edition's maintenance, on this fetch session. */
void
pg_session_tick(qml_store_session *session)
{
	pg_session *ps = (pg_session *) session;
	const char *msg;

	if (ps->conn && (msg = qml__maintenance_tick(ps->conn->pg, &ps->maint)) != NULL)
		snprintf(session->note, sizeof(session->note), "maintenance: %s", msg);
}

qml_status
pg_release(qml_store_session *session, const char *worker, const int64_t *ids,
		   size_t n, size_t *done)
{
	pg_session *ps = (pg_session *) session;
	bool		texts;

	if (!build(ps, ids, NULL, NULL, n, &texts))
		return qml__nomem();
	return outcome(ps, QML_STMT_RELEASE, release_sql, 2, worker, done);
}

/* On a pooled connection: heartbeats come from the supervisor thread. */
qml_status
pg_heartbeat(qml_store *store, const char *worker, const int64_t *ids,
			 size_t n, int lease_ms, bool *held)
{
	qml_conn   *c;
	qml_buf		b;
	char		lease[32];
	const char *p[3];
	PGresult   *r;
	qml_status	st;
	int			got;

	qml__buf_init(&b);
	qml__buf_puts(&b, "{");
	for (size_t i = 0; i < n; i++)
	{
		if (i)
			qml__buf_append(&b, ",", 1);
		qml__buf_i64(&b, ids[i]);
	}
	qml__buf_puts(&b, "}");
	if (b.oom)
	{
		qml__buf_free(&b);
		return qml__nomem();
	}
	snprintf(lease, sizeof(lease), "%d milliseconds", lease_ms);
	p[0] = b.data;
	p[1] = worker;
	p[2] = lease;
	if ((st = qml__pool_acquire(store->client->pool, &c)) != QML_OK)
	{
		qml__buf_free(&b);
		return st;
	}
	st = qml__exec_prepared(c, QML_STMT_HEARTBEAT, heartbeat_sql, 3, p, &r);
	qml__pool_release(store->client->pool, c);
	qml__buf_free(&b);
	if (st != QML_OK)
		return st;
	got = PQntuples(r);
	for (size_t i = 0; i < n; i++)
	{
		held[i] = false;
		for (int k = 0; k < got && !held[i]; k++)
			held[i] = strtoll(PQgetvalue(r, k, 0), NULL, 10) == ids[i];
	}
	PQclear(r);
	return QML_OK;
}
