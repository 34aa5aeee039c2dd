/*
 * server.c
 *	  The worker runtime's life cycle: creating a server, starting its
 *	  threads, waiting for a stop request or a signal, the graceful stop,
 *	  and the little shared machinery (log, reports, slot accounting).
 *
 * Threads: one fetcher (claims jobs, LISTENs), N workers (run handlers),
 * one flusher (reports outcomes in batches), one supervisor (heartbeats,
 * timeouts, jobs waiting too long). Jobs flow fetcher -> ring -> worker ->
 * reports -> flusher. The fetcher claims a job for every idle worker and,
 * while handlers are quick, a few more ahead (prefetch), so the workers
 * never wait for a fetch's round trip; a job waits in the ring for a
 * bounded time (qml__rt_hold_us) and is released past it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "internal.h"

static atomic_uint server_seq;

void
qml__rt_log(qml_server *s, qml_log_level level, const char *fmt,...)
{
	char		msg[1200];
	va_list		ap;

	if (s->config->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->config->log(level, msg, s->config->log_data);
}

void
qml__rt_report(qml_server *s, int64_t id, rt_report_kind kind, char *text)
{
	pthread_mutex_lock(&s->fl_mu);
	if (s->nreports == s->reports_cap)
	{
		rt_report  *r = qml__grow(s->reports, &s->reports_cap, s->nreports + 1, 64,
								  sizeof(*r));

		if (r == NULL)
		{
			/* the job stays held; its lease expires and it runs again */
			atomic_store(&s->outcomes_left, true);
			pthread_mutex_unlock(&s->fl_mu);
			qml__rt_log(s, QML_LOG_ERROR, "out of memory: the outcome of job %lld is lost",
						(long long) id);
			free(text);
			return;
		}
		s->reports = r;
	}
	switch (kind)
	{
		case REPORT_SUCCESS:
			atomic_fetch_add(&s->counters.succeeded, 1);
			break;
		case REPORT_RETRY:
			atomic_fetch_add(&s->counters.retried, 1);
			break;
		case REPORT_FAIL:
			atomic_fetch_add(&s->counters.failed, 1);
			break;
		case REPORT_RELEASE:
			atomic_fetch_add(&s->counters.released, 1);
			break;
	}
	s->reports[s->nreports].id = id;
	s->reports[s->nreports].kind = kind;
	s->reports[s->nreports].text = text;
	if (++s->nreports == 1)
		s->oldest_report_mono = qml__mono_us();
	/* wake the flusher when it starts its timer, or when the batch is full */
	if (s->nreports == 1 || s->nreports >= (size_t) s->config->flush_max)
		pthread_cond_signal(&s->fl_cv);
	/* ... and its helper, the same, while the first is busy sending */
	if (s->fl_sending > 0 && (s->nreports == 1 || s->nreports >= (size_t) s->config->flush_max))
		pthread_cond_signal(&s->fl_help_cv);
	pthread_mutex_unlock(&s->fl_mu);
}

/*
 * The fetcher sleeps until inflight falls to fetch_wake_at. Inflight drops
 * one at a time and only the fetcher raises it, so exactly one freed slot
 * sees the level and pays for the write; the fetcher checks inflight again
 * after publishing the level, so a drop in between is not missed.
 */
void
qml__rt_slot_freed(qml_server *s)
{
	int			left = atomic_fetch_sub(&s->inflight, 1) - 1;

	if (left == atomic_load(&s->fetch_wake_at))
	{
		uint64_t	one = 1;
		ssize_t		w QML_UNUSED = write(s->wake_fd, &one, sizeof(one));
	}
}

int64_t
qml__rt_hold_us(const qml_server *s)
{
	int64_t		half_lease = (int64_t) s->config->lease_ms * 1000 / 2;

	return half_lease < 1000000 ? half_lease : 1000000;
}

rt_job *
qml__rt_ring_pop(qml_server *s)
{
	rt_job	   *j;

	if (s->ring_count == 0)
		return NULL;
	j = s->ring[s->ring_head];
	s->ring_head = (s->ring_head + 1) % s->ring_cap;
	s->ring_count--;
	return j;
}

void
qml__rt_release_unstarted(qml_server *s, rt_job *job)
{
	qml__rt_report(s, job->id, REPORT_RELEASE, NULL);
	free(job);
	qml__rt_slot_freed(s);
}

static void
wake_fetcher(qml_server *s)
{
	uint64_t	one = 1;
	ssize_t		w QML_UNUSED = write(s->wake_fd, &one, sizeof(one));
}

/* ---- creation ---- */

static qml_status
build_names(qml_server *s)
{
	char		host[64] = "localhost";

	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(s->worker_name, sizeof(s->worker_name), "%s@%s:%d:%u",
			 s->config->name, host, (int) getpid(),
			 atomic_fetch_add(&server_seq, 1) + 1);

	s->queues_literal = qml__array_literal((const char *const *) s->config->queues,
										   s->config->nqueues);
	return s->queues_literal ? QML_OK : qml__nomem();
}

qml_status
qml_server_new(qml_client *client, const qml_registry *registry,
			   const qml_server_config *config, qml_server **out)
{
	qml_server *s;
	qml_status	st;
	int			n;

	if (out == NULL)
		return qml__error(QML_ERR_INVALID, "server must not be NULL");
	*out = NULL;
	if (client == NULL)
		return qml__error(QML_ERR_INVALID, "client must not be NULL");
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return qml__nomem();
	s->client = client;
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	s->wake_fd = -1;
	atomic_store(&s->fetch_wake_at, -1);
	s->registry = qml__registry_freeze(registry);
	s->config = config ? qml__server_config_copy(config) : qml_server_config_new(NULL);
	if (s->registry == NULL || s->config == NULL)
	{
		qml_server_free(s);
		return qml__nomem();
	}
	n = s->config->workers;
	s->ring_cap = (size_t) n + (size_t) s->config->prefetch;
	s->ring = calloc(s->ring_cap, sizeof(rt_job *));
	s->slots = calloc((size_t) n, sizeof(rt_slot));
	if (s->ring == NULL || s->slots == NULL)
	{
		qml_server_free(s);
		return qml__nomem();
	}
	if ((st = build_names(s)) != QML_OK)
	{
		qml_server_free(s);
		return st;
	}
	if (pipe2(s->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0 ||
		(s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
	{
		int			e = errno;

		qml_server_free(s);
		return qml__error(QML_ERR_SYSTEM, "cannot create the server's wakeup channels: %s",
						  strerror(e));
	}
	pthread_mutex_init(&s->life_mu, NULL);
	pthread_mutex_init(&s->q_mu, NULL);
	pthread_cond_init(&s->q_cv, NULL);
	qml__cond_init(&s->idle_cv);
	pthread_mutex_init(&s->fl_mu, NULL);
	qml__cond_init(&s->fl_cv);
	qml__cond_init(&s->fl_help_cv);
	for (int i = 0; i < QML_FLUSHERS; i++)
	{
		s->flushers[i].server = s;
		s->flushers[i].index = i;
	}
	pthread_mutex_init(&s->sv_mu, NULL);
	qml__cond_init(&s->sv_cv);
	pthread_mutex_init(&s->unhandled_mu, NULL);
	for (int i = 0; i < n; i++)
	{
		s->slots[i].server = s;
		s->slots[i].index = i;
		pthread_mutex_init(&s->slots[i].mu, NULL);
	}
	s->sync_ready = true;
	s->phase = PHASE_NEW;
	*out = s;
	return QML_OK;
}

const char *
qml_server_worker_name(const qml_server *s)
{
	return s ? s->worker_name : "";
}

/* ---- start ---- */

static void stop_threads(qml_server *s);

qml_status
qml_server_start(qml_server *s)
{
	sigset_t	all,
				old;
	bool		exists = false;
	qml_status	st;
	int			rc = 0;

	if (s == NULL)
		return qml__error(QML_ERR_INVALID, "server must not be NULL");
	pthread_mutex_lock(&s->life_mu);
	if (s->phase != PHASE_NEW)
	{
		pthread_mutex_unlock(&s->life_mu);
		return qml__error(QML_ERR_STATE, "the server was already started");
	}
	if ((st = qml_schema_exists(s->client, &exists)) != QML_OK)
	{
		pthread_mutex_unlock(&s->life_mu);
		return st;
	}
	if (!exists)
	{
		pthread_mutex_unlock(&s->life_mu);
		qml__error(QML_ERR_NO_EXTENSION, "the qml extension is not installed in this database");
		qml__error_set_extra(NULL, "Run \"qml migrate\" (or call qml_migrate()), or open the client with auto-migrate on.", NULL);
		return QML_ERR_NO_EXTENSION;
	}

	/*
	 * The runtime's threads take no signals: SIGINT and SIGTERM must reach
	 * the application's thread (qml_server_wait), and a signal delivered to
	 * a worker thread would interrupt a handler's system calls.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (int i = 0; rc == 0 && i < QML_FLUSHERS; i++)
		if ((rc = pthread_create(&s->flushers[i].thread, NULL, qml__flusher_main,
								 &s->flushers[i])) == 0)
			s->flushers[i].started = true;
	if (rc == 0 && (rc = pthread_create(&s->supervisor, NULL, qml__supervisor_main, s)) == 0)
		s->supervisor_started = true;
	for (int i = 0; rc == 0 && i < s->config->workers; i++)
		if ((rc = pthread_create(&s->slots[i].thread, NULL, qml__worker_main, &s->slots[i])) == 0)
			s->slots[i].started = true;
	if (rc == 0 && (rc = pthread_create(&s->fetcher, NULL, qml__fetcher_main, s)) == 0)
		s->fetcher_started = true;
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	if (rc != 0)
	{
		stop_threads(s);
		s->phase = PHASE_STOPPED;
		pthread_mutex_unlock(&s->life_mu);
		return qml__error(QML_ERR_SYSTEM, "cannot start the server's threads: %s", strerror(rc));
	}
	s->phase = PHASE_RUNNING;
	qml__rt_log(s, QML_LOG_INFO, "server %s started: %d workers, queues %s",
				s->worker_name, s->config->workers, s->queues_literal);
	pthread_mutex_unlock(&s->life_mu);
	return QML_OK;
}

/* ---- stop ---- */

/*
 * The graceful stop, in the order that loses nothing: no new fetches; jobs
 * fetched but not started go back; running jobs get the grace period, then
 * are cancelled and go back too; heartbeats stop once no job runs; the
 * flusher reports everything it holds, retrying for a while if the database
 * is away.
 */
static void
stop_threads(qml_server *s)
{
	int64_t		grace_deadline = qml__mono_us() + (int64_t) s->config->grace_ms * 1000;
	rt_job	  **unstarted = NULL;
	size_t		nunstarted = 0;
	int			abandoned = 0;

	atomic_store(&s->fetch_stop, true);
	wake_fetcher(s);
	if (s->fetcher_started)
		pthread_join(s->fetcher, NULL);
	s->fetcher_started = false;

	pthread_mutex_lock(&s->q_mu);
	if (s->ring_count > 0 && (unstarted = calloc(s->ring_count, sizeof(rt_job *))) != NULL)
	{
		while (s->ring_count > 0)
			unstarted[nunstarted++] = qml__rt_ring_pop(s);
	}
	s->workers_stop = true;
	pthread_cond_broadcast(&s->q_cv);
	pthread_mutex_unlock(&s->q_mu);

	for (size_t i = 0; i < nunstarted; i++)
		qml__rt_release_unstarted(s, unstarted[i]);
	free(unstarted);

	pthread_mutex_lock(&s->q_mu);
	while (s->active > 0 && qml__mono_us() < grace_deadline && !atomic_load(&s->hurry))
		qml__cond_wait_until(&s->idle_cv, &s->q_mu, grace_deadline);
	pthread_mutex_unlock(&s->q_mu);

	/* past the grace period: cancel and give back what still runs */
	for (int i = 0; i < s->config->workers; i++)
	{
		rt_slot    *slot = &s->slots[i];
		int64_t		id = 0;

		pthread_mutex_lock(&slot->mu);
		if (slot->state == SLOT_RUNNING)
		{
			slot->state = SLOT_ABANDONED;
			atomic_store(&slot->ctx.cancelled, true);
			id = slot->job_id;
		}
		pthread_mutex_unlock(&slot->mu);
		if (id)
		{
			qml__rt_report(s, id, REPORT_RELEASE, NULL);
			abandoned++;
		}
	}
	if (abandoned)
		qml__rt_log(s, QML_LOG_WARNING,
					"grace period of %d ms over: released %d running jobs and asked their handlers to stop",
					s->config->grace_ms, abandoned);

	/* handlers that ignore their cancel flag hold us here */
	for (int i = 0; i < s->config->workers; i++)
	{
		if (s->slots[i].started)
			pthread_join(s->slots[i].thread, NULL);
		s->slots[i].started = false;
	}

	pthread_mutex_lock(&s->sv_mu);
	s->sv_stop = true;
	pthread_cond_signal(&s->sv_cv);
	pthread_mutex_unlock(&s->sv_mu);
	if (s->supervisor_started)
		pthread_join(s->supervisor, NULL);
	s->supervisor_started = false;

	pthread_mutex_lock(&s->fl_mu);
	s->fl_stop = true;
	s->fl_give_up_mono = qml__mono_us() +
		(int64_t) (s->config->grace_ms > 5000 ? s->config->grace_ms : 5000) * 1000;
	pthread_cond_signal(&s->fl_cv);
	pthread_cond_signal(&s->fl_help_cv);
	pthread_mutex_unlock(&s->fl_mu);
	for (int i = 0; i < QML_FLUSHERS; i++)
	{
		if (s->flushers[i].started)
			pthread_join(s->flushers[i].thread, NULL);
		s->flushers[i].started = false;
	}

	/*
	 * Last: ending the fetcher's session lets the scheduler rescue its
	 * jobs. When every outcome was reported there is nothing to rescue,
	 * and its connection may serve the next server (store.h).
	 */
	if (s->fetch_session)
	{
		const qml_store_ops *ops = s->client->store->ops;

		if (ops->session_close_reported && s->unflushed == 0 &&
			!atomic_load(&s->outcomes_left))
			ops->session_close_reported(s->fetch_session);
		else
			ops->session_close(s->fetch_session);
	}
	s->fetch_session = NULL;
}

qml_status
qml_server_stop(qml_server *s)
{
	size_t		unflushed;

	if (s == NULL)
		return qml__error(QML_ERR_INVALID, "server must not be NULL");
	pthread_mutex_lock(&s->life_mu);
	if (s->phase != PHASE_RUNNING)
	{
		s->phase = PHASE_STOPPED;
		pthread_mutex_unlock(&s->life_mu);
		return QML_OK;
	}
	qml__rt_log(s, QML_LOG_INFO, "server %s stopping", s->worker_name);
	stop_threads(s);
	s->phase = PHASE_STOPPED;
	unflushed = s->unflushed;
	qml__rt_log(s, QML_LOG_INFO,
				"server %s stopped: %llu succeeded, %llu retried, %llu failed, %llu released",
				s->worker_name,
				(unsigned long long) atomic_load(&s->counters.succeeded),
				(unsigned long long) atomic_load(&s->counters.retried),
				(unsigned long long) atomic_load(&s->counters.failed),
				(unsigned long long) atomic_load(&s->counters.released));
	pthread_mutex_unlock(&s->life_mu);
	if (unflushed)
		return qml__error(QML_ERR_CONNECT,
						  "stopped, but %zu job outcomes could not be reported: the database "
						  "was unreachable (those jobs run again when their lease expires)",
						  unflushed);
	return QML_OK;
}

void
qml_server_request_stop(qml_server *s)
{
	char		c = 's';
	ssize_t		w QML_UNUSED;

	if (s == NULL)
		return;
	atomic_fetch_add(&s->stop_requests, 1);
	atomic_store(&s->stop_requested, true);
	w = write(s->stop_pipe[1], &c, 1);
}

static int
wait_impl(qml_server *s, const sigset_t *signals)
{
	int			sfd = -1;
	int			result = 0;

	if (signals && (sfd = signalfd(-1, signals, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		qml__rt_log(s, QML_LOG_WARNING, "cannot wait for signals: %s", strerror(errno));
	while (!atomic_load(&s->stop_requested))
	{
		struct pollfd pfd[2];
		int			n = 1;

		pfd[0].fd = s->stop_pipe[0];
		pfd[0].events = POLLIN;
		if (sfd >= 0)
		{
			pfd[1].fd = sfd;
			pfd[1].events = POLLIN;
			n = 2;
		}
		if (poll(pfd, (nfds_t) n, -1) < 0)
		{
			if (errno == EINTR)
				continue;
			break;
		}
		if (n == 2 && (pfd[1].revents & POLLIN))
		{
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == (ssize_t) sizeof(si))
			{
				result = (int) si.ssi_signo;
				qml__rt_log(s, QML_LOG_INFO, "received %s, stopping",
							result == SIGINT ? "SIGINT" : result == SIGTERM ? "SIGTERM" : "a signal");
				break;
			}
		}
		if (pfd[0].revents & POLLIN)
		{
			char		buf[16];

			while (read(s->stop_pipe[0], buf, sizeof(buf)) > 0)
				;
		}
	}
	if (sfd >= 0)
		close(sfd);
	return result;
}

int
qml_server_wait(qml_server *s, bool signals)
{
	sigset_t	set,
				old;
	int			r;

	if (s == NULL)
		return 0;
	if (!signals)
		return wait_impl(s, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	r = wait_impl(s, &set);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

/* ---- a second stop request or signal during the stop ---- */

static void
hurry_stop(qml_server *s, const char *why)
{
	if (atomic_exchange(&s->hurry, true))
		return;
	qml__rt_log(s, QML_LOG_INFO, "%s: ending the grace period now; running jobs are released", why);
	pthread_mutex_lock(&s->q_mu);
	pthread_cond_broadcast(&s->idle_cv);
	pthread_mutex_unlock(&s->q_mu);
}

typedef struct watch
{
	qml_server *s;
	int			sfd;			/* signalfd for SIGINT and SIGTERM */
} watch;

/*
 * Runs while qml_server_run stops the server: SIGINT or SIGTERM (the
 * impatient Ctrl-C) or another qml_server_request_stop ends the grace
 * period early. The stop then goes on as after the grace period, so the
 * running jobs are released, not lost, and the run still returns QML_OK.
 */
static void *
watch_main(void *arg)
{
	watch	   *w = arg;
	qml_server *s = w->s;

	while (!atomic_load(&s->watch_end))
	{
		struct pollfd pfd[2] = {{.fd = w->sfd,.events = POLLIN}, {.fd = s->stop_pipe[0],.events = POLLIN}};
		struct signalfd_siginfo si;
		char		buf[16];

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if ((pfd[0].revents & POLLIN) && read(w->sfd, &si, sizeof(si)) == (ssize_t) sizeof(si))
			hurry_stop(s, si.ssi_signo == SIGINT ? "received SIGINT again" : "received SIGTERM again");
		if (pfd[1].revents & POLLIN)
		{
			while (read(s->stop_pipe[0], buf, sizeof(buf)) > 0)
				;
			if (!atomic_load(&s->watch_end) && atomic_load(&s->stop_requests) > 1)
				hurry_stop(s, "asked to stop again");
		}
	}
	return NULL;
}

/* qml_server_stop, with `signals` (blocked) watched meanwhile, then drained. */
static qml_status
stop_watched(qml_server *s, const sigset_t *signals)
{
	watch		w = {.s = s};
	pthread_t	t;
	bool		watching;
	qml_status	st;
	struct signalfd_siginfo si;

	w.sfd = signalfd(-1, signals, SFD_CLOEXEC | SFD_NONBLOCK);
	watching = w.sfd >= 0 && pthread_create(&t, NULL, watch_main, &w) == 0;
	st = qml_server_stop(s);
	if (watching)
	{
		char		c = 'e';
		ssize_t		wr QML_UNUSED;

		atomic_store(&s->watch_end, true);
		wr = write(s->stop_pipe[1], &c, 1);
		pthread_join(t, NULL);
	}
	/* signals that came after the watcher: the stop they asked for is done */
	while (w.sfd >= 0 && read(w.sfd, &si, sizeof(si)) == (ssize_t) sizeof(si))
		;
	if (w.sfd >= 0)
		close(w.sfd);
	return st;
}

qml_status
qml_server_run(qml_server *s)
{
	sigset_t	set,
				old;
	qml_status	st;

	if (s == NULL)
		return qml__error(QML_ERR_INVALID, "server must not be NULL");
	/* blocked before the start, so a signal in between is not lost */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	if ((st = qml_server_start(s)) == QML_OK)
	{
		wait_impl(s, &set);
		st = stop_watched(s, &set);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return st;
}

void
qml_server_free(qml_server *s)
{
	if (s == NULL)
		return;
	if (s->phase == PHASE_RUNNING)
		qml_server_stop(s);
	if (s->sync_ready)
	{
		for (int i = 0; i < s->config->workers; i++)
			pthread_mutex_destroy(&s->slots[i].mu);
		pthread_mutex_destroy(&s->life_mu);
		pthread_mutex_destroy(&s->q_mu);
		pthread_cond_destroy(&s->q_cv);
		pthread_cond_destroy(&s->idle_cv);
		pthread_mutex_destroy(&s->fl_mu);
		pthread_cond_destroy(&s->fl_cv);
		pthread_cond_destroy(&s->fl_help_cv);
		pthread_mutex_destroy(&s->sv_mu);
		pthread_cond_destroy(&s->sv_cv);
		pthread_mutex_destroy(&s->unhandled_mu);
	}
	for (size_t i = 0; i < s->nreports; i++)
		free(s->reports[i].text);
	free(s->reports);
	free(s->ring);
	free(s->slots);
	free(s->queues_literal);
	if (s->stop_pipe[0] >= 0)
		close(s->stop_pipe[0]);
	if (s->stop_pipe[1] >= 0)
		close(s->stop_pipe[1]);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	qml_registry_free(s->registry);
	qml_server_config_free(s->config);
	free(s);
}

void
qml_server_get_counters(const qml_server *s, qml_server_counters *c)
{
	rt_counters *k;

	if (s == NULL || c == NULL)
		return;
	k = (rt_counters *) &s->counters;
	c->fetched = atomic_load(&k->fetched);
	c->succeeded = atomic_load(&k->succeeded);
	c->retried = atomic_load(&k->retried);
	c->failed = atomic_load(&k->failed);
	c->timed_out = atomic_load(&k->timed_out);
	c->released = atomic_load(&k->released);
	c->lost = atomic_load(&k->lost);
	c->fetch_calls = atomic_load(&k->fetch_calls);
	c->flushes = atomic_load(&k->flushes);
	c->heartbeats = atomic_load(&k->heartbeats);
	c->reconnects = atomic_load(&k->reconnects);
	c->wakeups = atomic_load(&k->wakeups);
}
