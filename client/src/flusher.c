/*
 * flusher.c
 *	  The flusher threads: report job outcomes to the database in batches,
 *	  every flush interval or every flush_max outcomes, whichever first;
 *	  the second only helps the first while it is busy (internal.h,
 *	  QML_FLUSHERS).
 *
 * One batch costs at most three calls of the store whatever its size
 * (PostgreSQL: one qml.complete_batch for the successes, one
 * qml.fail_batch for the failures, whose answer gives each retry's next run
 * time, logged at debug level; one statement calling qml.release per job
 * given back). When the connection
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
#include "store.h"

typedef struct flusher
{
	qml_server *s;
	const qml_store_ops *ops;
	qml_store_session *conn;	/* the store's flush session */
	char		appname[64];
	int			failures;
	bool		complained;
	/* one kind of report at a time, as the store takes them */
	int64_t    *ids;
	const char **texts;
	bool	   *retry;
	int64_t    *next_ms;
	size_t		cap;
} flusher;

/* Gathers the reports of one kind; false when out of memory. */
static bool
build(flusher *f, const rt_report *r, size_t n, bool want(rt_report_kind),
	  size_t *count)
{
	*count = 0;
	if (n > f->cap)
	{
		int64_t    *ids = realloc(f->ids, n * sizeof(int64_t));
		const char **texts = ids ? realloc(f->texts, n * sizeof(char *)) : NULL;
		bool	   *retry = texts ? realloc(f->retry, n * sizeof(bool)) : NULL;
		int64_t    *next = retry ? realloc(f->next_ms, n * sizeof(int64_t)) : NULL;

		if (ids)
			f->ids = ids;
		if (texts)
			f->texts = texts;
		if (retry)
			f->retry = retry;
		if (next == NULL)
			return false;
		f->next_ms = next;
		f->cap = n;
	}
	for (size_t i = 0; i < n; i++)
	{
		if (!want(r[i].kind))
			continue;
		f->ids[*count] = r[i].id;
		f->texts[*count] = r[i].text;
		f->retry[*count] = r[i].kind == REPORT_RETRY;
		(*count)++;
	}
	return true;
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

/* At debug level (qml worker -v): when each retried job runs next. */
static void
log_next_tries(flusher *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
	{
		double		sec = f->next_ms[i] / 1000.0;

		if (f->next_ms[i] < 0)
			continue;
		if (sec < 90)
			qml__rt_log(f->s, QML_LOG_DEBUG, "job %lld: next try in about %.0f s",
						(long long) f->ids[i], sec < 1 ? 1 : sec);
		else if (sec < 5400)
			qml__rt_log(f->s, QML_LOG_DEBUG, "job %lld: next try in about %.0f min",
						(long long) f->ids[i], sec / 60);
		else
			qml__rt_log(f->s, QML_LOG_DEBUG, "job %lld: next try in about %.1f h",
						(long long) f->ids[i], sec / 3600);
	}
}

/*
 * The outcomes of `count` jobs of which the store changed `done`: the
 * others it refused. A store that tells (Redis: conn->recorded >= 0) says
 * which of those this worker had recorded already, by a send whose answer
 * was lost (Redis killed after running the script but before answering, a
 * connection cut): only the rest are lost leases, warned about and
 * counted. One that cannot (PostgreSQL) leaves the rule: after a broken
 * send (again), what it refuses is most likely what it took then.
 */
static void
log_refused(flusher *f, size_t count, size_t done, bool again)
{
	qml_server *s = f->s;
	long		rec = f->conn->recorded;
	size_t		recorded = rec < 0 ? 0 : (size_t) rec;
	size_t		lost = count - done - (recorded < count - done ? recorded : count - done);

	if (rec < 0 && again)
	{
		qml__rt_log(s, QML_LOG_INFO,
					"flusher: %zu of %zu outcomes sent again after the connection broke "
					"were already recorded (by the first send), or their leases were lost",
					count - done, count);
		return;
	}
	if (recorded > 0)
		qml__rt_log(s, QML_LOG_INFO,
					"flusher: %zu of %zu outcomes sent again were already recorded "
					"(the first send's answer was lost)", count - done - lost, count);
	if (lost > 0)
	{
		atomic_fetch_add(&s->counters.lost, (uint64_t) lost);
		qml__rt_log(s, QML_LOG_WARNING,
					"flusher: %zu of %zu jobs were no longer held by this worker (lease lost)",
					lost, count);
	}
}

/*
 * Sends one kind of report. Returns QML_OK when done with it (sent, or
 * dropped after a non-connection error), QML_ERR_CONNECT to retry.
 * again: a send of these outcomes broke mid-way before (log_refused).
 */
static qml_status
send_kind(flusher *f, const rt_report *r, size_t n, int which, bool again)
{
	qml_server *s = f->s;
	size_t		count,
				done = 0;
	qml_status	st;

	if (!build(f, r, n, which == 0 ? is_success : which == 1 ? is_failure : is_release, &count))
	{
		atomic_store(&s->outcomes_left, true);
		qml__rt_log(s, QML_LOG_ERROR, "flusher: out of memory; %zu outcomes left to their leases", n);
		return QML_OK;
	}
	if (count == 0)
		return QML_OK;
	f->conn->recorded = -1;
	if (which == 0)
		st = f->ops->complete(f->conn, s->worker_name, f->ids, f->texts, count, &done);
	else if (which == 1)
		st = f->ops->fail(f->conn, s->worker_name, f->ids, f->texts, f->retry, count, &done,
						  f->next_ms);
	else
		st = f->ops->release(f->conn, s->worker_name, f->ids, count, &done);
	if (f->conn->note[0])
	{
		qml__rt_log(s, QML_LOG_WARNING, "flusher: %s", f->conn->note);
		f->conn->note[0] = '\0';
	}

	if (st == QML_OK)
	{
		if (which == 1)
			log_next_tries(f, count);
		if (done < count && which != 2)
			log_refused(f, count, done, again);
		return QML_OK;
	}
	if (f->ops->session_ok(f->conn) && st != QML_ERR_CONNECT)
	{
		atomic_store(&s->outcomes_left, true);
		qml__rt_log(s, QML_LOG_ERROR, "flusher: %s; %zu outcomes dropped, left to their leases",
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

/* (Re)opens the flush session unless it is open; false when it cannot. */
static bool
open_session(flusher *f)
{
	qml_server *s = f->s;
	qml_session_config cfg = {.kind = QML_SESSION_FLUSH, .appname = f->appname,
	.worker = s->worker_name, .lease_ms = s->config->lease_ms};

	if (f->conn && f->ops->session_ok(f->conn))
		return true;
	if (f->conn)
		f->ops->session_close(f->conn);
	f->conn = NULL;
	return f->ops->session_open(s->client->store, &cfg, &f->conn) == QML_OK;
}

static void
flush(flusher *f, rt_report *r, size_t n)
{
	qml_server *s = f->s;
	bool		sent[3] = {false, false, false};
	bool		again[3] = {false, false, false};	/* a send broke mid-way */

	for (;;)
	{
		bool		broken = false;

		if (f->conn == NULL || !f->ops->session_ok(f->conn))
		{
			if (!open_session(f))
			{
				if (!f->complained)
					qml__rt_log(s, QML_LOG_WARNING, "flusher: %s; retrying", qml_errmsg());
				f->complained = true;
				broken = true;
			}
			else if (f->complained)
			{
				atomic_fetch_add(&s->counters.reconnects, 1);
				qml__rt_log(s, QML_LOG_INFO, "flusher: reconnected to the store");
				f->complained = false;
			}
		}
		for (int which = 0; !broken && which < 3; which++)
		{
			if (sent[which])
				continue;
			if (send_kind(f, r, n, which, again[which]) == QML_OK)
				sent[which] = true;
			else
				broken = again[which] = true;
		}
		if (!broken)
			break;
		if (!f->complained)
			qml__rt_log(s, QML_LOG_WARNING, "flusher: lost the connection to the store; retrying");
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

/*
 * The helper's next batch (caller holds fl_mu): while the first flusher is
 * sending, and the fetcher's last claim found the queues drained, what the
 * first would take if it were free: a full batch, or one whose oldest
 * outcome waited the flush interval; at the stop, anything (no report
 * comes after the stop, and the first takes whatever is left once it is
 * free). False at the stop with nothing for it. While claims run, a third
 * busy server process only slowed them down (2 cores): the helper waits,
 * checking again every flush interval.
 */
static bool
help_due(qml_server *s)
{
	for (;;)
	{
		int64_t		due = s->oldest_report_mono + (int64_t) s->config->flush_interval_ms * 1000;
		bool		waiting = s->fl_sending > 0 && s->nreports > 0;

		if (waiting && (s->fl_stop ||
						(atomic_load(&s->queues_drained) &&
						 (s->nreports >= (size_t) s->config->flush_max || qml__mono_us() >= due))))
			return true;
		if (s->fl_stop)
			return false;
		if (waiting)
		{
			int64_t		now = qml__mono_us(),
						step = (int64_t) s->config->flush_interval_ms * 1000;

			qml__cond_wait_until(&s->fl_help_cv, &s->fl_mu, due > now ? due : now + step);
		}
		else
			pthread_cond_wait(&s->fl_help_cv, &s->fl_mu);
	}
}

/*
 * The first flusher's next batch (caller holds fl_mu): waits for a report,
 * then lets the batch build up for at most the flush interval. False at
 * the stop with nothing left.
 */
static bool
first_due(qml_server *s)
{
	for (;;)
	{
		while (s->nreports == 0 && !s->fl_stop)
			pthread_cond_wait(&s->fl_cv, &s->fl_mu);
		if (s->nreports == 0)
			return false;
		while (!s->fl_stop && s->nreports > 0 && s->nreports < (size_t) s->config->flush_max)
		{
			int64_t		due = s->oldest_report_mono + (int64_t) s->config->flush_interval_ms * 1000;

			if (qml__mono_us() >= due)
				break;
			qml__cond_wait_until(&s->fl_cv, &s->fl_mu, due);
		}
		/* the helper may have taken them meanwhile */
		if (s->nreports > 0)
			return true;
	}
}

/*
 * A batch is at most ten flushes' worth (caller holds fl_mu, the batch
 * just taken): what a lagging flusher would take beyond that goes back,
 * already due, so that once the queues are drained the helper sends part
 * of the backlog beside the first instead of waiting for one long
 * statement. Returns how many went back (none when out of memory).
 */
static size_t
leave_rest(qml_server *s, const rt_report *batch, size_t n)
{
	size_t		most = (size_t) s->config->flush_max * 10,
				rest;

	if (n <= most)
		return 0;
	rest = n - most;
	if (s->reports_cap < rest)
	{
		rt_report  *r = realloc(s->reports, rest * sizeof(*r));

		if (r == NULL)
			return 0;
		s->reports = r;
		s->reports_cap = rest;
	}
	memcpy(s->reports, batch + most, rest * sizeof(*batch));
	s->nreports = rest;
	s->oldest_report_mono = 0;
	pthread_cond_signal(&s->fl_help_cv);
	return rest;
}

void *
qml__flusher_main(void *arg)
{
	rt_flusher *me = arg;
	qml_server *s = me->server;
	flusher		f;
	rt_report  *batch = NULL;
	size_t		batch_cap = 0;

	memset(&f, 0, sizeof(f));
	f.s = s;
	f.ops = s->client->store->ops;
	snprintf(f.appname, sizeof(f.appname), "qml flusher %.40s", s->config->name);

	/*
	 * The first flusher connects at once, while the fetcher's first claim
	 * keeps one core busy and the other is idle: connecting at the first
	 * outcome took a new server process's start from the busiest time. On
	 * failure the first batch connects (and says why), as it would anyway.
	 */
	if (me->index == 0)
		open_session(&f);

	pthread_mutex_lock(&s->fl_mu);
	for (;;)
	{
		size_t		n;
		rt_report  *swap;
		size_t		swap_cap;

		if (me->index == 0)
		{
			if (!first_due(s))
				break;
		}
		else if (!help_due(s))
			break;
		/* swap buffers: workers keep reporting while we send */
		swap = s->reports;
		swap_cap = s->reports_cap;
		n = s->nreports;
		s->reports = batch;
		s->reports_cap = batch_cap;
		s->nreports = 0;
		batch = swap;
		batch_cap = swap_cap;
		n -= leave_rest(s, batch, n);
		s->fl_sending++;
		pthread_mutex_unlock(&s->fl_mu);

		flush(&f, batch, n);

		pthread_mutex_lock(&s->fl_mu);
		s->fl_sending--;
	}
	pthread_mutex_unlock(&s->fl_mu);
	free(batch);
	free(f.ids);
	free(f.texts);
	free(f.retry);
	free(f.next_ms);
	if (f.conn)
		f.ops->session_close(f.conn);
	return NULL;
}
