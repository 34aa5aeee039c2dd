/*
 * fetcher.c
 *	  The fetcher thread: claims jobs for the idle workers, and a few ahead
 *	  while handlers are quick, in one fetch of the store, and sleeps on the
 *	  store's wakeups (PostgreSQL: LISTEN qml) when the queues are dry.
 *
 * Its session is its own (a LISTEN belongs to a connection), and it is
 * ready for wakeups before its first fetch. The loop: fetch while jobs come back; after an
 * empty fetch the queues are drained, so wait for a notification naming
 * one of our queues, for the poll interval (a missed notification costs at
 * most that), or for a stop.
 * With no room for a worthwhile fetch it waits on the wake eventfd
 * instead, which the worker signals whose freed slot makes that room.
 * Its claims commit without waiting for the WAL flush (unless durable
 * claims are asked for): the fetch is the runtime's critical path, and a
 * claim lost in a crash ends as a durable one would, with the job run
 * again (qml_server_config_set_durable_claims in qml.h).
 *
 * Room: a job for every worker plus the claim-ahead, which is what the
 * workers finished in the last CLAIM_AHEAD_MS at their recent rate, capped
 * by the prefetch setting. Quick handlers thus always find the next job
 * waiting while the fetch for the ones after it is in flight (a fetch costs
 * a round trip and a commit, easily a millisecond), in batches of half the
 * fetch batch or more; slow handlers get the old behaviour, a job claimed
 * only for an idle worker, and no job waits long for a thread.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "store.h"

#define CLAIM_AHEAD_MS 50
#define RATE_WINDOW_US 10000	/* the rate is sampled no more often */
#define RATE_FIRST_US 1000		/* ... except for a first estimate */

typedef enum wait_result
{
	WAIT_TIMEOUT, WAIT_WAKE, WAIT_SOCKET, WAIT_ERROR
} wait_result;

typedef struct fetcher
{
	qml_server *s;
	const qml_store_ops *ops;
	qml_store_session *conn;	/* the store's fetch session */
	qml_store_job **got;		/* fetch_batch jobs of one fetch */
	char		appname[64];
	bool		was_connected;
	bool		complained;		/* logged the current outage already */
	int			failures;		/* in a row, for the backoff */
	double		rate;			/* jobs finished per second, smoothed */
	int64_t		rate_mono;		/* when it was last sampled */
	uint64_t	rate_finished;	/* s->finished then */
} fetcher;

/* Reads what arrived; returns wakeups for our queues, -1 when broken. */
static int
drain(fetcher *f)
{
	return f->ops->session_drain(f->conn);
}

static wait_result
wait_events(fetcher *f, int timeout_ms)
{
	struct pollfd pfd[2];
	nfds_t		n = 1;
	int			rc;

	pfd[0].fd = f->s->wake_fd;
	pfd[0].events = POLLIN;
	pfd[0].revents = 0;
	if (f->conn && f->ops->session_fd(f->conn) >= 0)
	{
		pfd[1].fd = f->ops->session_fd(f->conn);
		pfd[1].events = POLLIN;
		pfd[1].revents = 0;
		n = 2;
	}
	do
		rc = poll(pfd, n, timeout_ms);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return WAIT_ERROR;
	if (rc == 0)
		return WAIT_TIMEOUT;
	if (pfd[0].revents & POLLIN)
	{
		uint64_t	v;
		ssize_t		r QML_UNUSED = read(f->s->wake_fd, &v, sizeof(v));

		return WAIT_WAKE;
	}
	return WAIT_SOCKET;
}

/*
 * The jobs waiting in the ring were claimed by the session that just ended:
 * the server gives them back on its own (session lease), so running them
 * now would only run them twice. Forget them.
 */
static void
drop_unstarted(fetcher *f)
{
	qml_server *s = f->s;
	rt_job	   *j;
	int			n = 0;

	pthread_mutex_lock(&s->q_mu);
	while ((j = qml__rt_ring_pop(s)) != NULL)
	{
		free(j);
		atomic_fetch_sub(&s->inflight, 1);
		n++;
	}
	pthread_mutex_unlock(&s->q_mu);
	if (n > 0)
		qml__rt_log(s, QML_LOG_WARNING,
					"fetcher: connection lost; %d jobs claimed ahead are left to the server to give back", n);
}

static void
disconnect(fetcher *f)
{
	if (f->conn != NULL)
	{
		drop_unstarted(f);
		f->ops->session_close(f->conn);
	}
	f->conn = NULL;
}

/* Waits out the backoff after a failure, unless a stop comes first. */
static void
back_off(fetcher *f)
{
	int			ms = qml__backoff_ms(f->failures++);
	int64_t		end = qml__mono_us() + (int64_t) ms * 1000;

	while (!atomic_load(&f->s->fetch_stop))
	{
		int64_t		left = (end - qml__mono_us()) / 1000;

		if (left <= 0)
			break;
		/* read what arrives meanwhile, or a readable socket spins us */
		if (wait_events(f, (int) left) == WAIT_SOCKET && drain(f) < 0)
			disconnect(f);
	}
}

static bool
ensure_connected(fetcher *f)
{
	qml_server *s = f->s;
	qml_session_config cfg = {
		.kind = QML_SESSION_FETCH, .appname = f->appname,
		.worker = s->worker_name,
		.queues = (const char *const *) s->config->queues,
		.nqueues = s->config->nqueues, .lease_ms = s->config->lease_ms,
		.durable_claims = s->config->durable_claims
	};
	qml_status	st;

	if (f->conn && f->ops->session_ok(f->conn))
		return true;
	disconnect(f);
	st = f->ops->session_open(s->client->store, &cfg, &f->conn);
	if (st != QML_OK)
	{
		if (!f->complained)
			qml__rt_log(s, QML_LOG_WARNING, "fetcher: %s; retrying", qml_errmsg());
		f->complained = true;
		disconnect(f);
		return false;
	}
	if (f->was_connected)
	{
		atomic_fetch_add(&s->counters.reconnects, 1);
		qml__rt_log(s, QML_LOG_INFO, "fetcher: reconnected to the store");
	}
	f->was_connected = true;
	f->complained = false;
	return true;
}

/* Claims up to `want` jobs and queues them; returns how many, -1 on error. */
static int
fetch(fetcher *f, int want)
{
	qml_server *s = f->s;
	int64_t		now = qml__mono_us();
	int			n;

	if (f->ops->fetch(f->conn, want, 0, f->got, &n) != QML_OK)
	{
		if (!f->complained || f->ops->session_ok(f->conn))
			qml__rt_log(s, QML_LOG_WARNING, "fetcher: %s", qml_errmsg());
		f->complained = true;
		return -1;
	}
	atomic_fetch_add(&s->counters.fetch_calls, 1);
	/* fewer than asked: the queues are drained for now (flusher.c) */
	atomic_store(&s->queues_drained, n < want);
	if (n == 0)
		return 0;
	atomic_fetch_add(&s->inflight, n);
	atomic_fetch_add(&s->counters.fetched, (uint64_t) n);
	pthread_mutex_lock(&s->q_mu);
	for (int i = 0; i < n; i++)
	{
		rt_job	   *j = f->got[i];

		j->fetched_mono = now;
		s->ring[(s->ring_head + s->ring_count) % s->ring_cap] = j;
		s->ring_count++;
	}
	if (n == 1)
		pthread_cond_signal(&s->q_cv);
	else
		pthread_cond_broadcast(&s->q_cv);
	pthread_mutex_unlock(&s->q_mu);
	return n;
}

/* Samples the workers' rate: jobs finished per second, smoothed. */
static void
sample_rate(fetcher *f)
{
	int64_t		now = qml__mono_us();
	uint64_t	done = atomic_load(&f->s->finished);
	double		measured;

	if (f->rate_mono == 0)
	{
		f->rate_mono = now;
		f->rate_finished = done;
		return;
	}
	/*
	 * With no estimate yet (at start) take the first one as soon as a job
	 * finished and a millisecond passed, and whole: until then nothing is
	 * claimed ahead, and quick handlers would be fed a job per worker per
	 * round trip for a whole window.
	 */
	if (now - f->rate_mono < (f->rate == 0 && done > f->rate_finished ?
							  RATE_FIRST_US : RATE_WINDOW_US))
		return;
	measured = (double) (done - f->rate_finished) * 1e6 / (double) (now - f->rate_mono);
	f->rate = f->rate == 0 ? measured : 0.5 * f->rate + 0.5 * measured;
	f->rate_mono = now;
	f->rate_finished = done;
}

/* How many jobs to claim beyond one per worker. */
static int
claim_ahead(fetcher *f)
{
	double		n = f->rate * CLAIM_AHEAD_MS / 1000.0;
	int			max = f->s->config->prefetch;

	return n >= max ? max : (int) n;
}

/*
 * No room for a fetch: sleep until inflight falls to `level` (or a stop).
 * The timeout is short so that the claim-ahead follows a change of pace.
 */
static void
wait_for_room(fetcher *f, int level)
{
	qml_server *s = f->s;

	atomic_store(&s->fetch_wake_at, level);
	if (atomic_load(&s->inflight) > level && !atomic_load(&s->fetch_stop))
	{
		/* notifications are read meanwhile so they do not pile up */
		if (wait_events(f, 100) == WAIT_SOCKET && drain(f) < 0)
			disconnect(f);
	}
	atomic_store(&s->fetch_wake_at, -1);
}

/* Queues drained: wait for a notification about our queues or the poll interval. */
static void
wait_for_work(fetcher *f)
{
	qml_server *s = f->s;
	int64_t		end = qml__mono_us() + (int64_t) s->config->poll_interval_ms * 1000;
	int			k = drain(f);

	if (k != 0)
	{
		/* work arrived while we fetched, or the connection broke */
		if (k < 0)
			disconnect(f);
		else
			atomic_fetch_add(&s->counters.wakeups, 1);
		return;
	}
	while (!atomic_load(&s->fetch_stop))
	{
		int64_t		left = (end - qml__mono_us()) / 1000;
		wait_result w;

		if (left <= 0)
			return;
		w = wait_events(f, (int) left);
		if (w == WAIT_TIMEOUT || w == WAIT_ERROR)
			return;
		if (w == WAIT_SOCKET)
		{
			if ((k = drain(f)) < 0)
			{
				disconnect(f);
				return;
			}
			if (k > 0)
			{
				atomic_fetch_add(&s->counters.wakeups, 1);
				return;
			}
		}
	}
}

void *
qml__fetcher_main(void *arg)
{
	fetcher		f;
	qml_server *s = arg;

	memset(&f, 0, sizeof(f));
	f.s = s;
	f.ops = s->client->store->ops;
	f.got = calloc((size_t) s->config->fetch_batch, sizeof(qml_store_job *));
	if (f.got == NULL)
	{
		qml__rt_log(s, QML_LOG_ERROR, "fetcher: out of memory; no jobs fetched");
		return NULL;
	}
	snprintf(f.appname, sizeof(f.appname), "qml worker %.40s", s->config->name);

	while (!atomic_load(&s->fetch_stop))
	{
		int			ahead,
					room,
					least,
					want,
					got;

		if (!ensure_connected(&f))
		{
			back_off(&f);
			continue;
		}
		if (f.ops->session_tick)
			f.ops->session_tick(f.conn);
		if (f.conn->note[0])
		{
			qml__rt_log(s, QML_LOG_WARNING, "%s", f.conn->note);
			f.conn->note[0] = '\0';
		}
		sample_rate(&f);
		ahead = claim_ahead(&f);

		/*
		 * Fetch for any idle worker at once; beyond that, wait until half a
		 * batch fits (many small fetches cost more than few large ones), or
		 * half the claim-ahead, so that the rest keeps the workers busy
		 * while the fetch is in flight. least <= ahead keeps the first case
		 * true.
		 */
		least = ahead / 2 < s->config->fetch_batch / 2 ? ahead / 2 : s->config->fetch_batch / 2;
		if (least < 1)
			least = 1;
		room = s->config->workers + ahead - atomic_load(&s->inflight);
		if (room < least)
		{
			wait_for_room(&f, s->config->workers + ahead - least);
			continue;
		}
		want = room < s->config->fetch_batch ? room : s->config->fetch_batch;
		got = fetch(&f, want);
		if (got < 0)
		{
			if (!f.ops->session_ok(f.conn))
				disconnect(&f);
			back_off(&f);
			continue;
		}
		f.failures = 0;
		f.complained = false;

		/*
		 * Sleep only after a fetch that found nothing. With the library
		 * preloaded the server sends NOTIFY only while some fetch has come
		 * back empty since the last one: after a partial batch nobody
		 * would wake us, so look once more (the empty answer arms it).
		 */
		if (got == 0)
			wait_for_work(&f);
	}

	/*
	 * The jobs this session claimed carry a session lease: the scheduler
	 * rescues them as soon as the session ends. Keep it open until the
	 * stop has reported or released every one of them.
	 */
	s->fetch_session = f.conn;
	free(f.got);
	return NULL;
}
