/*
 * flusher.c
 *	  The flusher thread: reports job outcomes to the database in batches,
 *	  every flush interval or every flush_max outcomes, whichever first.
 *
 * One batch costs at most three statements whatever its size: one
 * qml.complete_batch for the successes, one qml.fail_batch for the failures
 * (whose answer gives each retry's next run time, logged at debug level),
 * one statement calling qml.release per job given back. When the connection
 * breaks the same batch is retried after a reconnect (with backoff), so a
 * database restart loses no outcome; only at shutdown does it give up, after
 * a while, leaving those jobs to their lease. A statement the server rejects
 * for another reason is logged and dropped: retrying would not help, and
 * the jobs' leases bring them back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char complete_sql[] =
"SELECT count(*) FROM qml.complete_batch($1::int8[], $2)";
static const char complete_results_sql[] =
"SELECT count(*) FROM qml.complete_batch($1::int8[], $2, $3::jsonb[])";
static const char fail_sql[] =
"SELECT f.job_id, extract(epoch FROM f.next_run_at - now())"
"  FROM qml.fail_batch($1::int8[], $2, $3::text[], $4::bool[]) f";
/* a database still on version 1.0 has no qml.fail_batch */
static const char fail_1_0_sql[] =
"SELECT f.id, NULL FROM (SELECT f.id, qml.fail(f.id, $2, f.err, f.retry) AS s"
"  FROM unnest($1::int8[], $3::text[], $4::bool[]) AS f(id, err, retry)) f"
" WHERE f.s IS NOT NULL";
static const char release_sql[] =
"SELECT count(*) FILTER (WHERE r) FROM (SELECT qml.release(t.id, $2) AS r"
"  FROM unnest($1::int8[]) AS t(id)) x";

typedef struct flusher
{
	qml_server *s;
	qml_conn   *conn;
	char		appname[64];
	int			failures;
	bool		complained;
	bool		fail_1_0;		/* qml.fail_batch is missing or not ours */
	qml_buf		ids,
				texts,
				flags;
} flusher;

/* Array literals of one kind of report: ids, and texts / retry flags. */
static int
build(flusher *f, const rt_report *r, size_t n, bool want(rt_report_kind),
	  bool *any_text)
{
	int			count = 0;

	qml__buf_reset(&f->ids);
	qml__buf_reset(&f->texts);
	qml__buf_reset(&f->flags);
	qml__buf_puts(&f->ids, "{");
	qml__buf_puts(&f->texts, "{");
	qml__buf_puts(&f->flags, "{");
	*any_text = false;
	for (size_t i = 0; i < n; i++)
	{
		if (!want(r[i].kind))
			continue;
		if (count++)
		{
			qml__buf_puts(&f->ids, ",");
			qml__buf_puts(&f->texts, ",");
			qml__buf_puts(&f->flags, ",");
		}
		qml__buf_printf(&f->ids, "%lld", (long long) r[i].id);
		qml__buf_array_elem(&f->texts, r[i].text);
		qml__buf_puts(&f->flags, r[i].kind == REPORT_RETRY ? "t" : "f");
		if (r[i].text)
			*any_text = true;
	}
	qml__buf_puts(&f->ids, "}");
	qml__buf_puts(&f->texts, "}");
	qml__buf_puts(&f->flags, "}");
	return count;
}

static bool
is_success(rt_report_kind k)
{
	return k == REPORT_SUCCESS;
}

static bool
is_failure(rt_report_kind k)
{
	return k == REPORT_RETRY || k == REPORT_FAIL;
}

static bool
is_release(rt_report_kind k)
{
	return k == REPORT_RELEASE;
}

/*
 * Logs when each failed job that awaits a retry runs next (the rows of
 * fail_sql: id, seconds from now or NULL), for a worker's -v log.
 */
static void
log_next_tries(qml_server *s, PGresult *res)
{
	for (int i = 0; i < PQntuples(res); i++)
	{
		double		sec;

		if (PQgetisnull(res, i, 1))
			continue;
		sec = atof(PQgetvalue(res, i, 1));
		if (sec < 90)
			qml__rt_log(s, QML_LOG_DEBUG, "job %s: next try in about %.0f s",
						PQgetvalue(res, i, 0), sec < 1 ? 1 : sec);
		else if (sec < 5400)
			qml__rt_log(s, QML_LOG_DEBUG, "job %s: next try in about %.0f min",
						PQgetvalue(res, i, 0), sec / 60);
		else
			qml__rt_log(s, QML_LOG_DEBUG, "job %s: next try in about %.1f h",
						PQgetvalue(res, i, 0), sec / 3600);
	}
}

/*
 * Sends one kind of report. Returns QML_OK when done with it (sent, or
 * dropped after a non-connection error), QML_ERR_CONNECT to retry.
 */
static qml_status
send_kind(flusher *f, const rt_report *r, size_t n, int which)
{
	qml_server *s = f->s;
	bool		texts;
	int			count;
	const char *p[4];
	PGresult   *res = NULL;
	qml_status	st;
	qml_stmt	stmt;
	const char *sql;

	count = build(f, r, n, which == 0 ? is_success : which == 1 ? is_failure : is_release, &texts);
	if (count == 0)
		return QML_OK;
	if (f->ids.oom || f->texts.oom || f->flags.oom)
	{
		qml__rt_log(s, QML_LOG_ERROR, "flusher: out of memory; %d outcomes left to their leases", count);
		return QML_OK;
	}
	p[0] = f->ids.data;
	p[1] = s->worker_name;
	p[2] = f->texts.data;
	p[3] = f->flags.data;
	if (which == 0)
	{
		stmt = texts ? QML_STMT_COMPLETE_RESULTS : QML_STMT_COMPLETE;
		sql = texts ? complete_results_sql : complete_sql;
		st = qml__exec_prepared(f->conn, stmt, sql, texts ? 3 : 2, p, &res);
	}
	else if (which == 1)
	{
		st = f->fail_1_0 ? QML_ERR_UNSUPPORTED :
			qml__exec_prepared(f->conn, QML_STMT_FAIL, fail_sql, 4, p, &res);
		/* missing (qml 1.0), or not granted to a role given rights before it */
		if (st != QML_OK && qml__conn_ok(f->conn) &&
			(strcmp(qml_errsqlstate(), "42883") == 0 || strcmp(qml_errsqlstate(), "42501") == 0))
		{
			qml__rt_log(s, QML_LOG_WARNING,
						"flusher: %s (run qml migrate, or qml.grant_worker again); failing jobs one by one",
						qml_errmsg());
			f->fail_1_0 = true;
		}
		if (f->fail_1_0)
			st = qml__exec(f->conn, fail_1_0_sql, 4, p, &res);
	}
	else
		st = qml__exec_prepared(f->conn, QML_STMT_RELEASE, release_sql, 2, p, &res);

	if (st == QML_OK)
	{
		int			done;

		if (which == 1)
		{
			done = PQntuples(res);
			log_next_tries(s, res);
		}
		else
			done = atoi(PQgetvalue(res, 0, 0));
		PQclear(res);
		if (done < count && which != 2)
		{
			atomic_fetch_add(&s->counters.lost, (uint64_t) (count - done));
			qml__rt_log(s, QML_LOG_WARNING,
						"flusher: %d of %d jobs were no longer held by this worker (lease lost)",
						count - done, count);
		}
		return QML_OK;
	}
	if (qml__conn_ok(f->conn) && st != QML_ERR_CONNECT)
	{
		qml__rt_log(s, QML_LOG_ERROR, "flusher: %s; %d outcomes dropped, left to their leases",
					qml_errmsg(), count);
		return QML_OK;
	}
	return QML_ERR_CONNECT;
}

static bool
give_up(qml_server *s)
{
	bool		r;

	pthread_mutex_lock(&s->fl_mu);
	r = s->fl_stop && qml__mono_us() >= s->fl_give_up_mono;
	pthread_mutex_unlock(&s->fl_mu);
	return r;
}

static void
flush(flusher *f, rt_report *r, size_t n)
{
	qml_server *s = f->s;
	bool		sent[3] = {false, false, false};

	for (;;)
	{
		bool		broken = false;

		if (f->conn == NULL || !qml__conn_ok(f->conn))
		{
			qml__conn_close(f->conn);
			f->conn = NULL;
			if (qml__connect(s->client->config, f->appname, &f->conn) != QML_OK)
			{
				if (!f->complained)
					qml__rt_log(s, QML_LOG_WARNING, "flusher: %s; retrying", qml_errmsg());
				f->complained = true;
				broken = true;
			}
			else if (f->complained)
			{
				atomic_fetch_add(&s->counters.reconnects, 1);
				qml__rt_log(s, QML_LOG_INFO, "flusher: reconnected to the database");
				f->complained = false;
			}
		}
		for (int which = 0; !broken && which < 3; which++)
		{
			if (sent[which])
				continue;
			if (send_kind(f, r, n, which) == QML_OK)
				sent[which] = true;
			else
				broken = true;
		}
		if (!broken)
			break;
		if (!f->complained)
			qml__rt_log(s, QML_LOG_WARNING, "flusher: lost the database connection; retrying");
		f->complained = true;
		if (give_up(s))
		{
			size_t		left = 0;

			for (size_t i = 0; i < n; i++)
				if (!sent[is_success(r[i].kind) ? 0 : is_failure(r[i].kind) ? 1 : 2])
					left++;
			pthread_mutex_lock(&s->fl_mu);
			s->unflushed += left;
			pthread_mutex_unlock(&s->fl_mu);
			qml__rt_log(s, QML_LOG_ERROR,
						"flusher: giving up on %zu outcomes at shutdown; their jobs run again after their leases",
						left);
			break;
		}
		qml__sleep_ms(qml__backoff_ms(f->failures++), NULL);
	}
	f->failures = 0;
	atomic_fetch_add(&s->counters.flushes, 1);
	for (size_t i = 0; i < n; i++)
		free(r[i].text);
}

void *
qml__flusher_main(void *arg)
{
	qml_server *s = arg;
	flusher		f;
	rt_report  *batch = NULL;
	size_t		batch_cap = 0;

	memset(&f, 0, sizeof(f));
	f.s = s;
	snprintf(f.appname, sizeof(f.appname), "qml flusher %.40s", s->config->name);
	qml__buf_init(&f.ids);
	qml__buf_init(&f.texts);
	qml__buf_init(&f.flags);

	pthread_mutex_lock(&s->fl_mu);
	for (;;)
	{
		size_t		n;
		rt_report  *swap;
		size_t		swap_cap;

		while (s->nreports == 0 && !s->fl_stop)
			pthread_cond_wait(&s->fl_cv, &s->fl_mu);
		if (s->nreports == 0)
			break;
		/* let a batch build up, for at most the flush interval */
		while (!s->fl_stop && s->nreports < (size_t) s->config->flush_max)
		{
			int64_t		due = s->oldest_report_mono + (int64_t) s->config->flush_interval_ms * 1000;

			if (qml__mono_us() >= due)
				break;
			qml__cond_wait_until(&s->fl_cv, &s->fl_mu, due);
		}
		/* swap buffers: workers keep reporting while we send */
		swap = s->reports;
		swap_cap = s->reports_cap;
		n = s->nreports;
		s->reports = batch;
		s->reports_cap = batch_cap;
		s->nreports = 0;
		batch = swap;
		batch_cap = swap_cap;
		pthread_mutex_unlock(&s->fl_mu);

		flush(&f, batch, n);

		pthread_mutex_lock(&s->fl_mu);
	}
	pthread_mutex_unlock(&s->fl_mu);
	free(batch);
	qml__buf_free(&f.ids);
	qml__buf_free(&f.texts);
	qml__buf_free(&f.flags);
	qml__conn_close(f.conn);
	return NULL;
}
