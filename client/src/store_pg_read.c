/*
 * store_pg_read.c
 *	  The PostgreSQL store's monitoring reads: every queue with its counts, head-of-queue age
 *	  and rate (the overview), finished jobs per minute (throughput), and
 *	  the workers seen now. One statement each, on a pooled connection or on
 *	  a watch's (watch.c), so a dashboard's live view and its REST API show
 *	  the same numbers.
 *
 * The statements qualify every name and operator (coalesce is grammar, not
 * a function): a role's search_path
 * must not be able to put its own functions or operators in their way.
 * Counts come from qml.stats(), read by column name (it may gain columns).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "store_pg.h"

#define US(e) "(pg_catalog.date_part('epoch', " e ") OPERATOR(pg_catalog.*) 1000000)::int8"
#define SECS(e) "pg_catalog.date_part('epoch', " e ")"
/* the start of the previous minute: the rate's window */
#define PREV_MINUTE "(pg_catalog.date_bin('1 minute', pg_catalog.now(), '2000-01-01')" \
	" OPERATOR(pg_catalog.-) interval '1 minute')"

/*
 * One row per queue (one row of NULLs when there is none), counts in
 * qml_job_state order. The head of a queue is found like qml.fetch finds
 * it, on jobs_fetch_idx; the scheduler's lag on jobs_due_idx; neither
 * scans. The rate reads qml.throughput (the scheduler's per-minute
 * roll-up where it runs).
 */
static const char overview_sql[] =
"SELECT " US("h.now") ", h.lag,"
"       s.queue, s.paused, s.scheduled, s.enqueued, s.processing, s.succeeded,"
"       s.failed, s.awaiting_retry, s.deleted,"
"       " SECS("h.now OPERATOR(pg_catalog.-) o.head") ","
"       coalesce(t.done, 0)::float8 OPERATOR(pg_catalog./)"
"         " SECS("h.now OPERATOR(pg_catalog.-) " PREV_MINUTE)
"  FROM (SELECT pg_catalog.now() AS now,"
"               (SELECT " SECS("pg_catalog.now() OPERATOR(pg_catalog.-) d.run_at")
"                  FROM qml.jobs d"
"                 WHERE d.state OPERATOR(pg_catalog.=) ANY ('{scheduled,awaiting_retry}'::qml.job_state[])"
"                   AND d.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
"                 ORDER BY d.run_at LIMIT 1) AS lag) h"
"  LEFT JOIN qml.stats() s ON true"
"  LEFT JOIN LATERAL (SELECT j.run_at AS head FROM qml.jobs j"
"                      WHERE j.queue OPERATOR(pg_catalog.=) s.queue"
"                        AND j.state OPERATOR(pg_catalog.=) 'enqueued'::qml.job_state"
"                      ORDER BY j.priority DESC, j.run_at, j.id LIMIT 1) o ON true"
"  LEFT JOIN (SELECT t0.queue,"
"                    pg_catalog.sum(t0.succeeded OPERATOR(pg_catalog.+) t0.failed) AS done"
"               FROM qml.throughput('1 minute', '2 minutes') t0"
"              WHERE t0.bucket OPERATOR(pg_catalog.>=) " PREV_MINUTE
"              GROUP BY t0.queue) t ON t.queue OPERATOR(pg_catalog.=) s.queue"
" ORDER BY s.queue";

/* $1 minutes, the current one included; zeros where nothing finished */
static const char throughput_sql[] =
"SELECT " US("b.at") ","
"       coalesce(pg_catalog.sum(t.succeeded), 0)::int8,"
"       coalesce(pg_catalog.sum(t.failed), 0)::int8"
"  FROM pg_catalog.generate_series("
"         pg_catalog.date_bin('1 minute', pg_catalog.now(), '2000-01-01')"
"           OPERATOR(pg_catalog.-) (($1::int4 OPERATOR(pg_catalog.-) 1) OPERATOR(pg_catalog.*) interval '1 minute'),"
"         pg_catalog.date_bin('1 minute', pg_catalog.now(), '2000-01-01'),"
"         interval '1 minute') AS b(at)"
"  LEFT JOIN qml.throughput('1 minute', $1::int4 OPERATOR(pg_catalog.*) interval '1 minute') t"
"    ON t.bucket OPERATOR(pg_catalog.=) b.at"
" GROUP BY b.at ORDER BY b.at";

/*
 * Worker servers by their fetcher's session ("qml worker <name>", see
 * fetcher.c), with the jobs held under their lease names
 * ("<name>@host:pid:n"); then lease holders no server accounts for (other
 * drivers). Processing jobs are found on jobs_lease_idx, hence the
 * locked_until condition (a claim always sets it).
 */
static const char workers_sql[] =
"WITH held AS ("
"  SELECT j.locked_by AS worker, pg_catalog.count(*) AS jobs, pg_catalog.max(j.started_at) AS seen"
"    FROM qml.jobs j"
"   WHERE j.state OPERATOR(pg_catalog.=) 'processing'::qml.job_state"
"     AND j.locked_until IS NOT NULL AND j.locked_by IS NOT NULL"
"   GROUP BY j.locked_by),"
" servers AS ("
"  SELECT DISTINCT pg_catalog.substr(a.application_name, 12) AS name"
"    FROM pg_catalog.pg_stat_activity a"
"   WHERE a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()"
"     AND pg_catalog.\"left\"(a.application_name, 11) OPERATOR(pg_catalog.=) 'qml worker ')"
"SELECT s.name, true, coalesce(pg_catalog.sum(h.jobs), 0)::int8,"
"       " US("pg_catalog.now()")
"  FROM servers s LEFT JOIN held h"
"    ON pg_catalog.\"left\"(h.worker, pg_catalog.length(s.name) OPERATOR(pg_catalog.+) 1)"
"       OPERATOR(pg_catalog.=) (s.name OPERATOR(pg_catalog.||) '@')"
" GROUP BY s.name "
"UNION ALL "
"SELECT h.worker, false, h.jobs, " US("h.seen")
"  FROM held h"
" WHERE NOT EXISTS (SELECT 1 FROM servers s"
"   WHERE pg_catalog.\"left\"(h.worker, pg_catalog.length(s.name) OPERATOR(pg_catalog.+) 1)"
"         OPERATOR(pg_catalog.=) (s.name OPERATOR(pg_catalog.||) '@'))"
" ORDER BY 2 DESC, 1";

qml_status
qml__overview_on(qml_conn *c, qml_overview **out)
{
	PGresult   *r;
	qml_overview *o;
	qml_status	st;
	bool		oom = false;
	int			n;

	*out = NULL;
	if ((st = qml__exec(c, overview_sql, 0, NULL, &r)) != QML_OK)
		return st;
	n = PQntuples(r);
	o = calloc(1, sizeof(*o));
	if (o == NULL || (n > 0 && (o->queues = calloc((size_t) n, sizeof(qml_queue_info))) == NULL))
	{
		free(o);
		PQclear(r);
		return qml__nomem();
	}
	o->at = n > 0 ? qml__col_i64(r, 0, 0) : qml_now();
	o->scheduler_lag_s = n > 0 ? qml__col_double(r, 0, 1, -1) : -1;
	for (int i = 0; i < n; i++)
	{
		qml_queue_info *q = &o->queues[o->count];

		if (PQgetisnull(r, i, 2))
			continue;			/* no queue at all */
		q->queue = qml__col_str(r, i, 2, &oom);
		q->paused = strcmp(PQgetvalue(r, i, 3), "t") == 0;
		for (int k = 0; k < QML_STATE_COUNT; k++)
			q->counts[k] = qml__col_i64(r, i, 4 + k);
		q->oldest_waiting_s = qml__col_double(r, i, 11, -1);
		q->jobs_per_second = qml__col_double(r, i, 12, 0);
		o->count++;
	}
	PQclear(r);
	if (oom)
	{
		qml_overview_free(o);
		return qml__nomem();
	}
	*out = o;
	return QML_OK;
}

qml_status
qml__throughput_on(qml_conn *c, int minutes, qml_throughput_bucket **out,
				   size_t *count)
{
	char		mt[16];
	const char *p[1] = {mt};
	PGresult   *r;
	qml_throughput_bucket *b;
	qml_status	st;
	int			n;

	*out = NULL;
	*count = 0;
	snprintf(mt, sizeof(mt), "%d", minutes);
	if ((st = qml__exec(c, throughput_sql, 1, p, &r)) != QML_OK)
		return st;
	n = PQntuples(r);
	if ((b = calloc((size_t) (n > 0 ? n : 1), sizeof(*b))) == NULL)
	{
		PQclear(r);
		return qml__nomem();
	}
	for (int i = 0; i < n; i++)
	{
		b[i].at = qml__col_i64(r, i, 0);
		b[i].succeeded = qml__col_i64(r, i, 1);
		b[i].failed = qml__col_i64(r, i, 2);
	}
	PQclear(r);
	*out = b;
	*count = (size_t) n;
	return QML_OK;
}

/* The PostgreSQL session a watch reads over (store_pg_session.c), or a pooled one. */
static qml_status
acquire(qml_store *store, qml_store_session *via, qml_conn **c)
{
	if (via != NULL)
	{
		*c = qml__pg_session_conn(via);
		return QML_OK;
	}
	return qml__pool_acquire(store->client->pool, c);
}

static void
give_back(qml_store *store, qml_store_session *via, qml_conn *c)
{
	if (via == NULL)
		qml__pool_release(store->client->pool, c);
}

qml_status
pg_overview(qml_store *store, qml_store_session *via, qml_overview **out)
{
	qml_conn   *c;
	qml_status	st;

	if ((st = acquire(store, via, &c)) != QML_OK)
		return st;
	st = qml__overview_on(c, out);
	give_back(store, via, c);
	return st;
}

qml_status
pg_throughput(qml_store *store, qml_store_session *via, int minutes,
			  qml_throughput_bucket **out, size_t *count)
{
	qml_conn   *c;
	qml_status	st;

	if ((st = acquire(store, via, &c)) != QML_OK)
		return st;
	st = qml__throughput_on(c, minutes, out, count);
	give_back(store, via, c);
	return st;
}

qml_status
pg_workers(qml_store *store, qml_worker_info **out, size_t *count)
{
	PGresult   *r;
	qml_worker_info *w;
	qml_status	st;
	bool		oom = false;
	int			n;

	if ((st = qml__client_exec(store->client, workers_sql, 0, NULL, &r)) != QML_OK)
		return st;
	n = PQntuples(r);
	if ((w = calloc((size_t) (n > 0 ? n : 1), sizeof(*w))) == NULL)
	{
		PQclear(r);
		return qml__nomem();
	}
	for (int i = 0; i < n; i++)
	{
		w[i].worker = qml__col_str(r, i, 0, &oom);
		w[i].connected = strcmp(PQgetvalue(r, i, 1), "t") == 0;
		w[i].jobs = qml__col_i64(r, i, 2);
		w[i].last_seen = qml__col_i64(r, i, 3);
	}
	PQclear(r);
	if (oom)
	{
		qml_workers_free(w, (size_t) n);
		return qml__nomem();
	}
	*out = w;
	*count = (size_t) n;
	return QML_OK;
}
