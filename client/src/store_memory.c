/*
 * store_memory.c
 *	  The in-process memory store: "memory:" or "memory:PATH", with
 *	  "?capacity=N" (live jobs at most) and "?retention=DURATION" (how long
 *	  finished jobs are kept; 0 drops them at once). Its life, its table of
 *	  operations, sessions with their wakeups, and the maintenance thread
 *	  that does what the extension's scheduler does.
 *
 * A memory store lives in one process: two processes opening "memory:"
 * have two stores. With a PATH, a clean close writes every job, its
 * history and the recurring jobs to the file, and the next open reads them
 * back; a crash loses what was not written (there is no log).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <unistd.h>

#include "store_memory.h"

/* ---- lookups (caller holds mu) ---- */

mem_job *
mem_job_by_id(const mem_store *m, int64_t id)
{
	if (id < m->by_id_base || id >= m->by_id_base + (int64_t) m->nby_id)
		return NULL;
	return m->by_id[id - m->by_id_base];
}

mem_queue *
mem_queue_get(mem_store *m, const char *name, bool create)
{
	mem_queue  *q,
			  **qs;

	for (size_t i = 0; i < m->nqueues; i++)
		if (strcmp(m->queues[i]->name, name) == 0)
			return m->queues[i];
	if (!create)
		return NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL || (q->name = qml__strdup(name)) == NULL ||
		(qs = realloc(m->queues, (m->nqueues + 1) * sizeof(mem_queue *))) == NULL)
	{
		if (q)
			free(q->name);
		free(q);
		return NULL;
	}
	q->ready.heap.before = mem_ready_before;
	m->queues = qs;
	m->queues[m->nqueues++] = q;
	return q;
}

const char *
mem_intern(mem_store *m, const char *worker)
{
	char	  **ws;
	char	   *w;

	if (worker == NULL)
		return NULL;
	for (size_t i = 0; i < m->nworkers; i++)
		if (strcmp(m->workers[i], worker) == 0)
			return m->workers[i];
	if ((w = qml__strdup(worker)) == NULL ||
		(ws = realloc(m->workers, (m->nworkers + 1) * sizeof(char *))) == NULL)
	{
		free(w);
		return NULL;
	}
	m->workers = ws;
	m->workers[m->nworkers++] = w;
	return w;
}

void
mem_wake(mem_store *m, const mem_queue *q)
{
	for (mem_session *s = m->sessions; s; s = s->next)
	{
		bool		ours = s->base.kind == QML_SESSION_WATCH;

		if (!s->armed)
			continue;
		for (size_t i = 0; i < s->nqueues && !ours; i++)
			ours = s->queues[i] == q;
		if (ours)
		{
			uint64_t	one = 1;
			ssize_t		w QML_UNUSED = write(s->efd, &one, sizeof(one));

			s->armed = false;
		}
	}
}

/* ---- sessions ---- */

static void
mem_session_close(qml_store_session *session)
{
	mem_session *ms = (mem_session *) session;
	mem_store  *m;

	if (ms == NULL)
		return;
	m = MEM(session->store);
	pthread_mutex_lock(&m->mu);
	for (mem_session **p = &m->sessions; *p; p = &(*p)->next)
	{
		if (*p == ms)
		{
			*p = ms->next;
			break;
		}
	}
	pthread_mutex_unlock(&m->mu);
	if (ms->efd >= 0)
		close(ms->efd);
	free(ms->queues);
	free(ms);
}

static qml_status
mem_session_open(qml_store *store, const qml_session_config *cfg,
				 qml_store_session **out)
{
	mem_store  *m = MEM(store);
	mem_session *ms = calloc(1, sizeof(*ms));
	qml_status	st = QML_OK;
	size_t		nqueues;

	*out = NULL;
	if (ms == NULL)
		return qml__nomem();
	/* the worker's name goes into jobs' history, and so into the snapshot */
	if (cfg->worker && (st = mem_check_name("worker", cfg->worker, 200)) != QML_OK)
	{
		free(ms);
		return st;
	}
	ms->base.store = store;
	ms->base.kind = cfg->kind;
	ms->lease_ms = cfg->lease_ms;
	ms->armed = true;
	if ((ms->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
	{
		free(ms);
		return qml__error(QML_ERR_SYSTEM, "eventfd failed: %s", strerror(errno));
	}
	pthread_mutex_lock(&m->mu);
	nqueues = m->nqueues;
	ms->worker = mem_intern(m, cfg->worker);
	if ((cfg->worker && ms->worker == NULL) ||
		(cfg->nqueues && (ms->queues = calloc(cfg->nqueues, sizeof(mem_queue *))) == NULL))
		st = qml__nomem();
	for (size_t i = 0; st == QML_OK && i < cfg->nqueues; i++)
	{
		if ((ms->queues[i] = mem_queue_get(m, cfg->queues[i], true)) == NULL)
			st = qml__nomem();
		ms->nqueues++;
	}
	if (st == QML_OK)
	{
		ms->next = m->sessions;
		m->sessions = ms;
	}
	else
		mem_queues_drop_since(m, nqueues);
	pthread_mutex_unlock(&m->mu);
	if (st != QML_OK)
	{
		close(ms->efd);
		free(ms->queues);
		free(ms);
		return st;
	}
	*out = &ms->base;
	return QML_OK;
}

static bool
mem_session_ok(qml_store_session *session)
{
	(void) session;
	return true;
}

static int
mem_session_fd(qml_store_session *session)
{
	return ((mem_session *) session)->efd;
}

static int
mem_session_drain(qml_store_session *session)
{
	mem_session *ms = (mem_session *) session;
	mem_store  *m = MEM(session->store);
	uint64_t	v = 0;
	ssize_t		r = read(ms->efd, &v, sizeof(v));

	/* a watch wants the next change too: arm it again */
	if (session->kind == QML_SESSION_WATCH)
	{
		pthread_mutex_lock(&m->mu);
		ms->armed = true;
		pthread_mutex_unlock(&m->mu);
	}
	return r == (ssize_t) sizeof(v) && v > 0 ? 1 : 0;
}

/* ---- the maintenance thread ---- */

static void *
maintenance_main(void *arg)
{
	mem_store  *m = arg;

	pthread_mutex_lock(&m->mu);
	while (!m->stopping)
	{
		int64_t		a,
					b,
					c,
					d;
		bool		nomem;
		int64_t		now = qml_now();
		int64_t		next = mem_pass(m, now, &a, &b, &c, &d, &nomem);
		int64_t		wait = next - now;

		/* wall-clock due times, waited for on the monotonic clock */
		if (wait < 1000)
			wait = 1000;
		if (wait > 1000000)
			wait = 1000000;
		qml__cond_wait_until(&m->cv, &m->mu, qml__mono_us() + wait);
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

/* ---- URL and life ---- */

static qml_status
bad_url(const char *url, const char *why)
{
	qml__error(QML_ERR_INVALID, "invalid memory store URL \"%.80s\": %s", url, why);
	qml__error_set_extra("The form is memory:[PATH][?capacity=N][&retention=DURATION].",
						 "For example memory: or memory:/var/tmp/qml.snapshot?capacity=100000.",
						 NULL);
	return QML_ERR_INVALID;
}

static qml_status
parse_url(mem_store *m, const char *url)
{
	const char *rest = url + strlen("memory:");
	const char *q = strchr(rest, '?');
	size_t		plen = q ? (size_t) (q - rest) : strlen(rest);

	m->retention_ms = MEM_DEFAULT_RETENTION_MS;
	if (plen > 0 && (m->path = strndup(rest, plen)) == NULL)
		return qml__nomem();
	while (q && *q)
	{
		const char *k = q + 1;
		const char *amp = strchr(k, '&');
		size_t		len = amp ? (size_t) (amp - k) : strlen(k);
		char		item[128];
		char	   *eq,
				   *end;

		if (len == 0 || len >= sizeof(item))
			return bad_url(url, "empty or overlong parameter");
		memcpy(item, k, len);
		item[len] = '\0';
		if ((eq = strchr(item, '=')) == NULL)
			return bad_url(url, "a parameter without a value");
		*eq++ = '\0';
		if (strcmp(item, "capacity") == 0)
		{
			errno = 0;
			m->capacity = strtoll(eq, &end, 10);
			if (errno || *end || end == eq || m->capacity < 1)
				return bad_url(url, "capacity must be a positive whole number");
		}
		else if (strcmp(item, "retention") == 0)
		{
			if (!qml_parse_duration_ms(eq, 1000, &m->retention_ms) || m->retention_ms < 0)
				return bad_url(url, "retention must be a duration such as 0, 30s, 1h");
		}
		else
			return bad_url(url, "unknown parameter (capacity and retention are known)");
		q = amp;
	}
	return QML_OK;
}

void
mem_queues_drop_since(mem_store *m, size_t nqueues)
{
	while (m->nqueues > nqueues)
	{
		mem_queue  *q = m->queues[--m->nqueues];

		mem_index_free(&q->ready);
		mem_map_free(&q->unique);
		free(q->name);
		free(q);
	}
}

static void
free_all(mem_store *m)
{
	for (size_t i = 0; i < m->nby_id; i++)
		if (m->by_id[i])
			mem_job_free(m->by_id[i]);
	free(m->by_id);
	mem_queues_drop_since(m, 0);
	free(m->queues);
	mem_index_free(&m->timers);
	mem_index_free(&m->leases);
	free(m->fin_ids);
	for (size_t i = 0; i < m->nworkers; i++)
		free(m->workers[i]);
	free(m->workers);
	while (m->recurring)
	{
		mem_recurring *r = m->recurring;

		m->recurring = r->next;
		mem_recurring_free(r);
	}
	free(m->path);
	if (m->lock_fd >= 0)
		close(m->lock_fd);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->cv);
	free(m);
}

/*
 * One process at a time per PATH: two would each write their own snapshot
 * over the other's, and jobs would be lost. The lock goes with the
 * process, however it ends.
 */
static qml_status
lock_path(mem_store *m)
{
	size_t		len = strlen(m->path) + 6;
	char	   *name = malloc(len);

	if (name == NULL)
		return qml__nomem();
	snprintf(name, len, "%s.lock", m->path);
	m->lock_fd = open(name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (m->lock_fd < 0)
	{
		qml__error(QML_ERR_SYSTEM, "cannot open \"%s\": %s", name, strerror(errno));
		free(name);
		return QML_ERR_SYSTEM;
	}
	free(name);
	if (flock(m->lock_fd, LOCK_EX | LOCK_NB) != 0)
	{
		qml__error(QML_ERR_CONFLICT, "the memory store \"%s\" is open in another process", m->path);
		qml__error_set_extra("A memory store belongs to one process; its file is written when that process closes it.",
							 "Stop the other process first, or share jobs between processes through PostgreSQL or Redis.",
							 NULL);
		return QML_ERR_CONFLICT;
	}
	return QML_OK;
}

static void
mem_close(qml_store *store)
{
	mem_store  *m = MEM(store);

	if (m->thread_started)
	{
		pthread_mutex_lock(&m->mu);
		m->stopping = true;
		pthread_cond_signal(&m->cv);
		pthread_mutex_unlock(&m->mu);
		pthread_join(m->thread, NULL);
	}
	/* a close has no caller to tell: the snapshot reports on stderr */
	if (m->path && mem_snapshot_save(m) != QML_OK)
		fprintf(stderr, "qml: memory store: %s\n", qml_errmsg());
	free_all(m);
}

static qml_status
mem_open(qml_client *client, const char *url, qml_store **out)
{
	mem_store  *m = calloc(1, sizeof(*m));
	sigset_t	all,
				old;
	qml_status	st;
	int			rc;

	*out = NULL;
	if (m == NULL)
		return qml__nomem();
	m->base.ops = &qml__store_memory;
	m->base.client = client;
	m->by_id_base = 1;
	m->lock_fd = -1;
	m->timers.heap.before = mem_timer_before;
	m->leases.heap.before = mem_lease_before;
	pthread_mutex_init(&m->mu, NULL);
	qml__cond_init(&m->cv);
	if ((st = parse_url(m, url)) != QML_OK ||
		(m->path && (st = lock_path(m)) != QML_OK) ||
		(m->path && (st = mem_snapshot_load(m)) != QML_OK))
	{
		free(m->path);
		m->path = NULL;
		free_all(m);
		return st;
	}
	/* signals are the application's: its own threads take them, not ours */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&m->thread, NULL, maintenance_main, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
	{
		free_all(m);
		return qml__error(QML_ERR_SYSTEM, "cannot start the memory store's maintenance thread");
	}
	m->thread_started = true;
	*out = &m->base;
	return QML_OK;
}

const qml_store_ops qml__store_memory = {
	.name = "memory",
	.open = mem_open,
	.close = mem_close,
	.schema_version = mem_schema_version,
	.migrate = mem_migrate,
	.health = mem_health,
	.enqueue = mem_enqueue,
	.enqueue_batch = mem_enqueue_batch,
	.session_open = mem_session_open,
	.session_close = mem_session_close,
	.session_ok = mem_session_ok,
	.session_fd = mem_session_fd,
	.session_drain = mem_session_drain,
	.fetch = mem_fetch,
	.complete = mem_complete,
	.fail = mem_fail,
	.release = mem_release,
	.heartbeat = mem_heartbeat,
	.maintain = mem_maintain,
	.tick = NULL,
	.tick_ms = 0,
	.job_delete = mem_job_delete,
	.job_requeue = mem_job_requeue,
	.queue_pause = mem_queue_pause,
	.recurring_add = mem_recurring_add,
	.recurring_remove = mem_recurring_remove,
	.recurring_list = mem_recurring_list,
	.recurring_run = mem_recurring_run,
	.job_get = mem_job_get,
	.job_list = mem_job_list,
	.job_events = mem_job_events,
	.stats = mem_stats,
	.overview = mem_overview,
	.throughput = mem_throughput,
	.workers = mem_workers,
};
