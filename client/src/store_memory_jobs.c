/*
 * store_memory_jobs.c
 *	  Every state change of the memory store: enqueue, the claim, outcomes,
 *	  heartbeats, delete, requeue, pause, and the maintenance pass (promote
 *	  due jobs, rescue expired leases, fire recurring jobs, prune).
 *
 * The transitions are those of store.h; mem_set_state is the one place
 * that moves a job between states, so the per-queue counts, the history,
 * the live count, unique keys and throughput cannot drift apart.
 *
 * Memory running out changes nothing: every operation first allocates or
 * reserves all it will need (mem_reserve: the history line, room in the
 * index the job goes to, in the unique keys and the finished list; the
 * copies of texts), and only then changes jobs, which cannot fail. A job
 * is so never in no index, nor a history line or an outcome lost.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_memory.h"

static bool
is_final(int state)
{
	return state == QML_STATE_SUCCEEDED || state == QML_STATE_FAILED ||
		state == QML_STATE_DELETED;
}

void
mem_job_free(mem_job *j)
{
	for (uint32_t i = 0; i < j->nevents; i++)
		free(j->events[i].error);
	if (j->events != j->inline_events)
		free(j->events);
	free(j->last_error);
	free(j->result);
	free(j);
}

/* the index a job of j's queue in `state` belongs in; NULL when none */
static mem_index *
index_of(mem_store *m, const mem_job *j, int state)
{
	switch (state)
	{
		case QML_STATE_ENQUEUED:
			return &j->queue->ready;
		case QML_STATE_SCHEDULED:
		case QML_STATE_AWAITING_RETRY:
			return &m->timers;
		case QML_STATE_PROCESSING:
			return &m->leases;
		default:
			return NULL;
	}
}

/*
 * Puts a job in the index its state calls for; false when out of memory
 * (then it is in none), which mem_reserve before rules out.
 */
bool
mem_job_place(mem_store *m, mem_job *j)
{
	mem_index  *x = index_of(m, j, j->state);

	if (x == NULL)
		return true;
	if (!mem_index_push(x, j))
		return false;
	if (x == &m->timers && mem_index_top(x) == j)
		pthread_cond_signal(&m->cv);
	return true;
}

static void
unplace(mem_store *m, mem_job *j)
{
	mem_index  *x = index_of(m, j, j->state);

	if (j->heap_index != -1 && x != NULL)
		mem_index_remove(x, j);
}

/* room for one more event of j; false when out of memory */
static bool
event_reserve(mem_job *j)
{
	uint32_t	cap = j->cap_events * 2;
	mem_event  *ev;

	if (j->nevents < j->cap_events)
		return true;
	if ((ev = malloc(cap * sizeof(mem_event))) == NULL)
		return false;
	memcpy(ev, j->events, j->nevents * sizeof(mem_event));
	if (j->events != j->inline_events)
		free(j->events);
	j->events = ev;
	j->cap_events = cap;
	return true;
}

mem_event *
mem_event_append(mem_job *j)
{
	if (!event_reserve(j))
		return NULL;
	return &j->events[j->nevents++];
}

/* error: owned, the event's (NULL: none); the room is reserved */
static void
add_event(mem_job *j, int from, int to, const char *worker, char *error,
		  int64_t now)
{
	mem_event  *e = mem_event_append(j);

	if (e == NULL)
	{
		free(error);
		return;
	}
	e->at = now;
	e->from = (int8_t) from;
	e->to = (int8_t) to;
	e->worker = worker;
	e->error = error;
}

static void
count_finished(mem_store *m, mem_job *j, int to, int64_t now)
{
	int64_t		minute = now / 60000000;
	size_t		k = (size_t) (minute % MEM_MINUTES);
	mem_queue  *q = j->queue;

	if (m->tp_minute[k] != minute)
	{
		m->tp_minute[k] = minute;
		m->tp_succeeded[k] = m->tp_failed[k] = 0;
	}
	if (to == QML_STATE_SUCCEEDED)
		m->tp_succeeded[k]++;
	else
		m->tp_failed[k]++;
	if (q->minute != minute)
	{
		q->done_prev = q->minute == minute - 1 ? q->done_cur : 0;
		q->done_cur = 0;
		q->minute = minute;
	}
	q->done_cur++;
}

/* room for `more` finished jobs; false when out of memory */
static bool
finished_reserve(mem_store *m, size_t more)
{
	size_t		cap = m->fin_cap ? m->fin_cap : 1024;
	int64_t    *ids;

	if (m->fin_n + more <= m->fin_cap)
		return true;
	while (cap < m->fin_n + more)
		cap *= 2;
	if ((ids = malloc(cap * sizeof(int64_t))) == NULL)
		return false;
	for (size_t i = 0; i < m->fin_n; i++)
		ids[i] = m->fin_ids[(m->fin_head + i) % m->fin_cap];
	free(m->fin_ids);
	m->fin_ids = ids;
	m->fin_head = 0;
	m->fin_cap = cap;
	return true;
}

bool
mem_remember_finished(mem_store *m, int64_t id)
{
	if (!finished_reserve(m, 1))
		return false;
	m->fin_ids[(m->fin_head + m->fin_n++) % m->fin_cap] = id;
	return true;
}

/*
 * All that moving j to `to` (mem_set_state) and placing it (mem_job_place)
 * allocates, for `more` jobs going the same way at once: afterwards
 * neither can fail. False when out of memory; what it reserved is only
 * room, so nothing of the store has changed.
 */
bool
mem_reserve(mem_store *m, mem_job *j, qml_job_state to, size_t more)
{
	mem_index  *x = index_of(m, j, to);
	bool		live = !is_final(j->state);

	if (!event_reserve(j) ||
		(x != NULL && !mem_index_reserve(x, more)))
		return false;
	if (live && is_final(to))
		return finished_reserve(m, more);
	if (!live && !is_final(to) && j->unique_key)
		return mem_map_reserve(&j->queue->unique);
	return true;
}

void
mem_set_state(mem_store *m, mem_job *j, qml_job_state to, const char *worker,
			  char *error, int64_t now)
{
	int			from = j->state;
	bool		was_live = !is_final(from);

	j->queue->counts[from]--;
	j->queue->counts[to]++;
	j->state = (int8_t) to;
	add_event(j, from, to, worker, error, now);
	if (from == QML_STATE_PROCESSING)
	{
		j->locked_by = NULL;
		j->locked_until = QML_TIME_NULL;
	}
	if (to == QML_STATE_ENQUEUED)
		j->enqueued_at = now;
	if (was_live && is_final(to))
	{
		m->live--;
		j->finished_at = now;
		if (j->unique_key && mem_map_get(&j->queue->unique, j->unique_key) == j)
			mem_map_del(&j->queue->unique, j->unique_key);
		if (to != QML_STATE_DELETED)
			count_finished(m, j, to, now);
		(void) mem_remember_finished(m, j->id);	/* reserved */
	}
	else if (!was_live && !is_final(to))
	{
		m->live++;
		j->finished_at = QML_TIME_NULL;
		if (j->unique_key)
			(void) mem_map_put(&j->queue->unique, j->unique_key, j);	/* reserved */
	}
}

/* room for one more id; false when out of memory */
static bool
by_id_reserve(mem_store *m)
{
	mem_job   **a = qml__grow(m->by_id, &m->cap_by_id, m->nby_id + 1, 1024,
								  sizeof(mem_job *));

	if (a == NULL)
		return false;
	m->by_id = a;
	return true;
}

/*
 * The extension's limits on names (src/checks.c), in characters, so that a
 * job the memory store takes is one PostgreSQL would take too. Not UTF-8
 * is refused as PostgreSQL refuses it (22021): the snapshot is JSON, and
 * one such name would make the whole snapshot unwritable at close.
 */
qml_status
mem_check_name(const char *what, const char *value, int maxlen)
{
	const unsigned char *p = (const unsigned char *) value;
	int			len;

	/* ASCII, the common case, is UTF-8 with a character per byte */
	while (*p && *p < 0x80)
		p++;
	len = (int) (p - (const unsigned char *) value);
	if (*p && !qml__utf8_valid((const char *) p))
	{
		qml__error(QML_ERR_INVALID, "%s is not valid UTF-8", what);
		qml__error_set_extra(NULL, NULL, "22021");
		return QML_ERR_INVALID;
	}
	for (; *p; p++)
		len += (*p & 0xC0) != 0x80;
	if (len == 0)
		return qml__error(QML_ERR_INVALID, "%s must not be empty", what);
	if (len > maxlen)
	{
		qml__error(QML_ERR_INVALID, "%s is too long (%d characters)", what, len);
		qml__error_set_extra(NULL, NULL, "22001");
		return QML_ERR_INVALID;
	}
	return QML_OK;
}

/*
 * A new job's checks and its one allocation, which need nothing of the
 * store: done before taking its lock (mem_job_file), so that a producer
 * holds the lock the fetcher and the flusher wait for only to file jobs,
 * not while it checks, copies and touches fresh memory. NULL with the
 * error set when refused or out of memory.
 */
mem_job *
mem_job_build(const char *method, const char *arguments,
			  const qml_enqueue_options *o, int64_t now)
{
	mem_job    *j;
	size_t		lm,
				la,
				lk;
	char	   *p;

	if (arguments == NULL)
		arguments = "[]";
	if (mem_check_name("method", method, 1000) != QML_OK ||
		mem_check_name("queue", o->queue ? o->queue : "default", 128) != QML_OK ||
		(o->unique_key && mem_check_name("unique_key", o->unique_key, 500) != QML_OK))
		return NULL;
	lm = strlen(method) + 1;
	la = strlen(arguments) + 1;
	lk = o->unique_key ? strlen(o->unique_key) + 1 : 0;
	if ((j = calloc(1, sizeof(mem_job) + lm + la + lk)) == NULL)
	{
		qml__nomem();
		return NULL;
	}
	p = (char *) (j + 1);
	memcpy(p, method, lm);
	j->method = p;
	memcpy(p += lm, arguments, la);
	j->arguments = p;
	if (lk)
	{
		memcpy(p += la, o->unique_key, lk);
		j->unique_key = p;
	}
	j->priority = o->priority;
	j->max_attempts = o->max_attempts > 0 ? o->max_attempts : MEM_DEFAULT_MAX_ATTEMPTS;
	j->created_at = now;
	j->run_at = o->run_at != 0 ? o->run_at : o->delay_ms > 0 ? now + o->delay_ms * 1000 : now;
	j->enqueued_at = j->started_at = j->finished_at = j->locked_until = QML_TIME_NULL;
	j->backoff_base_ms = o->backoff_base_ms;
	j->backoff_cap_ms = o->backoff_cap_ms;
	j->heap_index = -1;
	j->events = j->inline_events;
	j->cap_events = MEM_INLINE_EVENTS;
	return j;
}

/*
 * Files a built job in `queue` (caller holds mu): its id, indexes and
 * first event. The store owns j afterwards: when a live job of the queue
 * holds its unique key, j is freed and *id is that job's. Every allocation
 * comes before the first change, so out of memory files nothing and leaves
 * no queue it created (a batch undoes what it filed with mem_job_unfile).
 */
qml_status
mem_job_file(mem_store *m, mem_job *j, const char *queue, int64_t now, int64_t *id)
{
	size_t		nqueues = m->nqueues;
	mem_queue  *q;
	mem_job    *same;

	if ((q = mem_queue_get(m, queue ? queue : "default", true)) == NULL)
	{
		free(j);
		return qml__nomem();
	}
	if (j->unique_key && (same = mem_map_get(&q->unique, j->unique_key)) != NULL)
	{
		free(j);
		*id = same->id;
		return QML_OK;
	}
	j->queue = q;
	j->state = (int8_t) (j->run_at > now ? QML_STATE_SCHEDULED : QML_STATE_ENQUEUED);
	if (!by_id_reserve(m) ||
		(j->unique_key && !mem_map_reserve(&q->unique)) ||
		!mem_index_reserve(index_of(m, j, j->state), 1))
	{
		mem_queues_drop_since(m, nqueues);
		free(j);
		return qml__nomem();
	}
	if (j->state == QML_STATE_ENQUEUED)
		j->enqueued_at = now;
	j->id = m->by_id_base + (int64_t) m->nby_id;
	m->by_id[m->nby_id++] = j;
	if (j->unique_key)
		(void) mem_map_put(&q->unique, j->unique_key, j);	/* reserved */
	(void) mem_job_place(m, j); /* reserved */
	q->counts[j->state]++;
	m->live++;
	/* the first event is inline: it cannot fail */
	add_event(j, -1, j->state, NULL, NULL, now);
	*id = j->id;
	return QML_OK;
}

/*
 * Takes back the last job mem_job_file filed, which nothing has touched
 * since (caller holds mu): a batch that cannot file all its jobs files none.
 */
static void
mem_job_unfile(mem_store *m, mem_job *j)
{
	unplace(m, j);
	if (j->unique_key)
		mem_map_del(&j->queue->unique, j->unique_key);
	j->queue->counts[j->state]--;
	m->live--;
	m->nby_id--;
	mem_job_free(j);
}

/* mem_job_build and mem_job_file in one (caller holds mu) */
qml_status
mem_insert(mem_store *m, const char *method, const char *arguments,
		   const qml_enqueue_options *o, int64_t now, int64_t *id)
{
	qml_enqueue_options none = {0};
	mem_job    *j;

	if (o == NULL)
		o = &none;
	if ((j = mem_job_build(method, arguments, o, now)) == NULL)
		return qml_errcode();
	return mem_job_file(m, j, o->queue, now, id);
}

static qml_status
full(mem_store *m, size_t adding)
{
	if (m->capacity <= 0 || m->live + (int64_t) adding <= m->capacity)
		return QML_OK;
	qml__error(QML_ERR_TIMEOUT, "the memory store is full: %" PRId64 " live jobs, capacity %" PRId64,
			   m->live, m->capacity);
	qml__error_set_extra("Nothing of this call was stored.",
						 "Let workers drain the queues, or raise ?capacity= in the memory: URL.",
						 NULL);
	return QML_ERR_TIMEOUT;
}

qml_status
mem_enqueue(qml_store *store, const char *method, const char *arguments,
			const qml_enqueue_options *o, int64_t *id)
{
	mem_store  *m = MEM(store);
	qml_enqueue_options none = {0};
	int64_t		ignored,
				now = qml_now();
	mem_job    *j;
	qml_status	st;

	if (o == NULL)
		o = &none;
	if ((j = mem_job_build(method, arguments, o, now)) == NULL)
		return qml_errcode();
	pthread_mutex_lock(&m->mu);
	if ((st = full(m, 1)) != QML_OK)
		free(j);
	else if ((st = mem_job_file(m, j, o->queue, now, id ? id : &ignored)) == QML_OK)
		mem_wake(m, mem_queue_get(m, o->queue ? o->queue : "default", false));
	pthread_mutex_unlock(&m->mu);
	return st;
}

/*
 * All jobs are checked and built first: a refused one stores nothing. Then
 * all are filed, or, when memory runs out part way, those filed are taken
 * back: the batch is all or nothing, as PostgreSQL's transaction is.
 */
qml_status
mem_enqueue_batch(qml_store *store, const qml_job_spec *jobs, size_t count,
				  int64_t *ids)
{
	mem_store  *m = MEM(store);
	int64_t		now = qml_now(),
				id = 0;
	qml_status	st = QML_OK;
	mem_job   **built = malloc((count ? count : 1) * sizeof(mem_job *));
	size_t		n = 0,
				i = 0;

	if (built == NULL)
		return qml__nomem();
	for (; n < count; n++)
		if ((built[n] = mem_job_build(jobs[n].method, jobs[n].arguments, &jobs[n].options, now)) == NULL)
		{
			st = qml_errcode();
			break;
		}
	if (st == QML_OK)
	{
		size_t		nqueues;

		pthread_mutex_lock(&m->mu);
		nqueues = m->nqueues;
		st = full(m, count);
		for (; st == QML_OK && i < count; i++)
		{
			size_t		before = m->nby_id;

			st = mem_job_file(m, built[i], jobs[i].options.queue, now, &id);
			/* filed, or freed (its unique key's job stands for it, or an error) */
			if (st != QML_OK || m->nby_id == before)
				built[i] = NULL;
			if (ids)
				ids[i] = id;
		}
		/* i is one past the job that failed, which mem_job_file freed */
		for (size_t k = i; st != QML_OK && k-- > 0;)
			if (built[k] != NULL)
				mem_job_unfile(m, built[k]);
		if (st != QML_OK)
			mem_queues_drop_since(m, nqueues);
		for (size_t k = 0; st == QML_OK && k < count; k++)
			if (k == 0 || jobs[k].options.queue != jobs[k - 1].options.queue)
				mem_wake(m, mem_queue_get(m, jobs[k].options.queue ? jobs[k].options.queue : "default", false));
		pthread_mutex_unlock(&m->mu);
	}
	/* what was not filed (a refusal, or the store full) */
	for (; i < n; i++)
		free(built[i]);
	free(built);
	return st;
}

/* ---- the runtime ---- */

/*
 * Claims up to `want` jobs. Out of memory part way, the jobs claimed so far
 * are returned (each fully claimed) and the rest stay enqueued; with none
 * claimed, the error.
 */
qml_status
mem_fetch(qml_store_session *session, int want, int wait_ms,
		  qml_store_job **out, int *got)
{
	mem_session *ms = (mem_session *) session;
	mem_store  *m = MEM(session->store);
	int64_t		now = qml_now();
	int			n = 0;
	bool		nomem = false;

	(void) wait_ms;				/* the runtime waits on the session's eventfd */
	pthread_mutex_lock(&m->mu);
	for (size_t k = 0; k < ms->nqueues && n < want && !nomem; k++)
	{
		mem_queue  *q = ms->queues[k];
		mem_job    *j;

		if (q->paused)
			continue;
		while (n < want && (j = mem_index_top(&q->ready)) != NULL)
		{
			qml_store_job *c = qml__store_job_new(j->id, q->name, j->method, j->arguments,
												  j->priority, j->attempts + 1,
												  j->max_attempts, j->created_at);

			if (c == NULL || !mem_reserve(m, j, QML_STATE_PROCESSING, 1))
			{
				free(c);
				nomem = true;
				break;
			}
			mem_index_remove(&q->ready, j);
			j->attempts++;
			j->started_at = now;
			mem_set_state(m, j, QML_STATE_PROCESSING, ms->worker, NULL, now);
			j->locked_by = ms->worker;
			j->locked_until = now + (int64_t) ms->lease_ms * 1000;
			(void) mem_job_place(m, j); /* reserved */
			out[n++] = c;
		}
	}
	/* an empty fetch arms the wakeup: the next enqueue writes the eventfd */
	if (n == 0)
		ms->armed = true;
	pthread_mutex_unlock(&m->mu);
	*got = n;
	return n == 0 && nomem ? qml__nomem() : QML_OK;
}

/* The job if `worker` holds its lease, else NULL. */
static mem_job *
held(mem_store *m, int64_t id, const char *worker)
{
	mem_job    *j = mem_job_by_id(m, id);

	if (j == NULL || j->state != QML_STATE_PROCESSING || j->locked_by == NULL ||
		strcmp(j->locked_by, worker) != 0)
		return NULL;
	return j;
}

/* One outcome of the n a worker reports: what is done to job i it holds. */
typedef struct outcome
{
	qml_job_state to;
	const char *const *texts;	/* results or errors; may be NULL */
	const bool *retry;
	int64_t    *next_ms;		/* failures: ms to the next try, or -1 */
} outcome;

/* where a failure takes j: another try, or failed for good */
static qml_job_state
fail_target(const mem_job *j, bool retry)
{
	return retry && j->attempts < j->max_attempts ?
		QML_STATE_AWAITING_RETRY : QML_STATE_FAILED;
}

/*
 * A failure's message twice, as fail_job takes it: the job's last_error and
 * its history line's (a handler's message may hold any bytes: the snapshot
 * needs UTF-8). False, and both NULL, when out of memory.
 */
static bool
fail_copies(const char *error, char **copies)
{
	copies[0] = qml__strdup_utf8(error ? error : "failed without an error message");
	copies[1] = copies[0] ? qml__strdup(copies[0]) : NULL;
	if (copies[1] != NULL)
		return true;
	free(copies[0]);
	copies[0] = NULL;
	return false;
}

/*
 * processing -> awaiting_retry or failed, as qml.fail and the rescue do;
 * takes the two copies of fail_copies, after mem_reserve for fail_target
 */
static void
fail_job(mem_store *m, mem_job *j, const char *worker, char **copies,
		 bool retry, int64_t now)
{
	qml_job_state to = fail_target(j, retry);

	unplace(m, j);
	free(j->last_error);
	j->last_error = copies[0];
	if (to == QML_STATE_AWAITING_RETRY)
		j->run_at = now + qml__store_backoff_ms(j->attempts, j->backoff_base_ms,
												j->backoff_cap_ms) * 1000;
	mem_set_state(m, j, to, worker, copies[1], now);
	copies[0] = copies[1] = NULL;
	(void) mem_job_place(m, j); /* reserved */
}

/*
 * What applying outcome i to j of n allocates, done first: own[0] and
 * own[1] receive the texts apply takes. False when out of memory.
 */
static bool
prepare(mem_store *m, mem_job *j, const outcome *o, size_t i, size_t n,
		char **own)
{
	const char *text = o->texts ? o->texts[i] : NULL;

	if (o->to == QML_STATE_FAILED)
		return fail_copies(text, own) &&
			mem_reserve(m, j, fail_target(j, o->retry[i]), n);
	if (o->to == QML_STATE_SUCCEEDED && text != NULL &&
		(own[0] = qml__strdup(text)) == NULL)
		return false;
	return mem_reserve(m, j, o->to, n);
}

static void
apply(mem_store *m, mem_job *j, const outcome *o, size_t i, const char *worker,
	  char **own, int64_t now)
{
	if (o->to == QML_STATE_FAILED)
	{
		fail_job(m, j, worker, own, o->retry[i], now);
		return;
	}
	mem_index_remove(&m->leases, j);
	if (o->to == QML_STATE_ENQUEUED)
	{
		/* released: the run did not happen */
		j->attempts = j->attempts > 0 ? j->attempts - 1 : 0;
		mem_set_state(m, j, QML_STATE_ENQUEUED, worker, NULL, now);
		(void) mem_job_place(m, j); /* reserved */
		mem_wake(m, j->queue);
		return;
	}
	free(j->result);
	j->result = own[0];
	own[0] = NULL;
	mem_set_state(m, j, QML_STATE_SUCCEEDED, worker, NULL, now);
	/* retention 0: nothing finished is kept (its id is skipped by prune) */
	if (m->retention_ms == 0)
	{
		m->by_id[j->id - m->by_id_base] = NULL;
		j->queue->counts[j->state]--;
		mem_job_free(j);
	}
}

/*
 * Applies an outcome to the jobs of ids[] the worker still holds: all of
 * them, or, out of memory, none.
 */
static qml_status
report(qml_store_session *session, const char *worker, const int64_t *ids,
	   size_t n, const outcome *o, size_t *done)
{
	mem_store  *m = MEM(session->store);
	int64_t		now = qml_now();
	char	  **own = calloc(2 * n + 1, sizeof(char *));
	qml_status	st = QML_OK;

	*done = 0;
	for (size_t i = 0; o->next_ms && i < n; i++)
		o->next_ms[i] = -1;
	if (own == NULL)
		return qml__nomem();
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; st == QML_OK && i < n; i++)
	{
		mem_job    *j = held(m, ids[i], worker);

		if (j != NULL && !prepare(m, j, o, i, n, own + 2 * i))
			st = qml__nomem();
	}
	for (size_t i = 0; st == QML_OK && i < n; i++)
	{
		mem_job    *j = held(m, ids[i], worker);

		if (j == NULL)
			continue;
		apply(m, j, o, i, worker, own + 2 * i, now);
		if (o->next_ms && j->state == QML_STATE_AWAITING_RETRY)
			o->next_ms[i] = (j->run_at - now) / 1000;
		(*done)++;
	}
	pthread_mutex_unlock(&m->mu);
	/* those of ids not held, or given twice, or all when out of memory */
	for (size_t i = 0; i < 2 * n; i++)
		free(own[i]);
	free(own);
	return st;
}

qml_status
mem_complete(qml_store_session *session, const char *worker, const int64_t *ids,
			 const char *const *results, size_t n, size_t *done)
{
	outcome		o = {QML_STATE_SUCCEEDED, results, NULL, NULL};

	return report(session, worker, ids, n, &o, done);
}

qml_status
mem_fail(qml_store_session *session, const char *worker, const int64_t *ids,
		 const char *const *errors, const bool *retry, size_t n, size_t *done,
		 int64_t *next_ms)
{
	outcome		o = {QML_STATE_FAILED, errors, retry, next_ms};

	return report(session, worker, ids, n, &o, done);
}

qml_status
mem_release(qml_store_session *session, const char *worker, const int64_t *ids,
			size_t n, size_t *done)
{
	outcome		o = {QML_STATE_ENQUEUED, NULL, NULL, NULL};

	return report(session, worker, ids, n, &o, done);
}

qml_status
mem_heartbeat(qml_store *store, const char *worker, const int64_t *ids,
			  size_t n, int lease_ms, bool *is_held)
{
	mem_store  *m = MEM(store);
	int64_t		until = qml_now() + (int64_t) lease_ms * 1000;

	pthread_mutex_lock(&m->mu);
	/* a renewed lease leaves the lane for the heap: room for all first */
	if (!mem_index_reserve(&m->leases, n))
	{
		pthread_mutex_unlock(&m->mu);
		return qml__nomem();
	}
	for (size_t i = 0; i < n; i++)
	{
		mem_job    *j = held(m, ids[i], worker);

		is_held[i] = j != NULL;
		if (j)
		{
			mem_index_remove(&m->leases, j);
			j->locked_until = until;
			(void) mem_index_push(&m->leases, j);	/* reserved */
		}
	}
	pthread_mutex_unlock(&m->mu);
	return QML_OK;
}

/* ---- admin ---- */

static qml_status
not_found(int64_t id)
{
	return qml__error(QML_ERR_NOT_FOUND, "job %" PRId64 " does not exist", id);
}

qml_status
mem_job_delete(qml_store *store, int64_t id, bool *done)
{
	mem_store  *m = MEM(store);
	mem_job    *j;
	qml_status	st = QML_OK;

	pthread_mutex_lock(&m->mu);
	if ((j = mem_job_by_id(m, id)) == NULL)
		st = not_found(id);
	else if (!(*done = !is_final(j->state)))
		;
	else if (!mem_reserve(m, j, QML_STATE_DELETED, 1))
	{
		*done = false;
		st = qml__nomem();
	}
	else
	{
		unplace(m, j);
		mem_set_state(m, j, QML_STATE_DELETED, NULL, NULL, qml_now());
	}
	pthread_mutex_unlock(&m->mu);
	return st;
}

qml_status
mem_job_requeue(qml_store *store, int64_t id, bool *done)
{
	mem_store  *m = MEM(store);
	mem_job    *j,
			   *other;
	qml_status	st = QML_OK;
	int64_t		now = qml_now();

	pthread_mutex_lock(&m->mu);
	if ((j = mem_job_by_id(m, id)) == NULL)
		st = not_found(id);
	else if (!(*done = is_final(j->state)))
		;
	else if (j->unique_key && (other = mem_map_get(&j->queue->unique, j->unique_key)) != NULL)
	{
		*done = false;
		st = qml__error(QML_ERR_CONFLICT,
						"job %" PRId64 " cannot run again: live job %" PRId64 " has its unique key",
						id, other->id);
	}
	else if ((st = full(m, 1)) != QML_OK)
		*done = false;
	else if (!mem_reserve(m, j, QML_STATE_ENQUEUED, 1))
	{
		*done = false;
		st = qml__nomem();
	}
	else
	{
		j->attempts = 0;
		j->run_at = now;
		free(j->result);
		j->result = NULL;
		mem_set_state(m, j, QML_STATE_ENQUEUED, NULL, NULL, now);
		(void) mem_job_place(m, j); /* reserved */
		mem_wake(m, j->queue);
	}
	pthread_mutex_unlock(&m->mu);
	return st;
}

qml_status
mem_queue_pause(qml_store *store, const char *queue, bool pause, bool *changed)
{
	mem_store  *m = MEM(store);
	mem_queue  *q;
	qml_status	st;

	if ((st = mem_check_name("queue", queue, 128)) != QML_OK)
		return st;
	pthread_mutex_lock(&m->mu);
	if ((q = mem_queue_get(m, queue, true)) == NULL)
	{
		pthread_mutex_unlock(&m->mu);
		return qml__nomem();
	}
	*changed = q->paused != pause;
	q->paused = pause;
	if (!pause)
		mem_wake(m, q);
	pthread_mutex_unlock(&m->mu);
	return QML_OK;
}

/* ---- maintenance ---- */

static int64_t
prune(mem_store *m, int64_t now)
{
	int64_t		n = 0;

	while (m->fin_n > 0)
	{
		int64_t		id = m->fin_ids[m->fin_head];
		mem_job    *j = mem_job_by_id(m, id);

		if (j != NULL && is_final(j->state))
		{
			if (j->finished_at > now - m->retention_ms * 1000)
				break;
			m->by_id[id - m->by_id_base] = NULL;
			j->queue->counts[j->state]--;
			mem_job_free(j);
			n++;
		}
		m->fin_head = (m->fin_head + 1) % m->fin_cap;
		m->fin_n--;
	}
	/* drop the index's pruned prefix once it is half of it */
	if (m->nby_id > 4096)
	{
		size_t		lead = 0;

		while (lead < m->nby_id && m->by_id[lead] == NULL)
			lead++;
		if (lead * 2 >= m->nby_id)
		{
			memmove(m->by_id, m->by_id + lead, (m->nby_id - lead) * sizeof(mem_job *));
			m->nby_id -= lead;
			m->by_id_base += (int64_t) lead;
		}
	}
	return n;
}

/*
 * Out of memory, a job due stays where it is (promoted or rescued at a
 * later pass, which is then due at once) and *nomem says so.
 */
int64_t
mem_pass(mem_store *m, int64_t now, int64_t *promoted, int64_t *rescued,
		 int64_t *fired, int64_t *pruned, bool *nomem)
{
	mem_job    *j;
	int64_t		next = now + 1000000;

	*promoted = *rescued = 0;
	*nomem = false;
	while ((j = mem_index_top(&m->timers)) != NULL && j->run_at <= now)
	{
		if (!mem_reserve(m, j, QML_STATE_ENQUEUED, 1))
		{
			*nomem = true;
			break;
		}
		mem_index_remove(&m->timers, j);
		mem_set_state(m, j, QML_STATE_ENQUEUED, NULL, NULL, now);
		(void) mem_job_place(m, j); /* reserved */
		mem_wake(m, j->queue);
		(*promoted)++;
	}
	while ((j = mem_index_top(&m->leases)) != NULL && j->locked_until < now)
	{
		char		error[256],
				   *copies[2];

		snprintf(error, sizeof(error), "lease expired on worker %s",
				 j->locked_by ? j->locked_by : "");
		if (!fail_copies(error, copies) ||
			!mem_reserve(m, j, fail_target(j, true), 1))
		{
			free(copies[0]);
			free(copies[1]);
			*nomem = true;
			break;
		}
		fail_job(m, j, j->locked_by, copies, true, now);
		(*rescued)++;
	}
	*fired = mem_recurring_fire(m, now, nomem);
	*pruned = prune(m, now);
	m->passes++;

	if ((j = mem_index_top(&m->timers)) != NULL && j->run_at < next)
		next = j->run_at;
	if ((j = mem_index_top(&m->leases)) != NULL && j->locked_until + 1 < next)
		next = j->locked_until + 1;
	for (mem_recurring *r = m->recurring; r; r = r->next)
		if (r->next_run_at != QML_TIME_NULL && r->next_run_at < next)
			next = r->next_run_at;
	return next;
}

qml_status
mem_maintain(qml_store *store, char **report)
{
	mem_store  *m = MEM(store);
	int64_t		promoted,
				rescued,
				fired,
				pruned;
	char		buf[256];
	bool		nomem;

	pthread_mutex_lock(&m->mu);
	mem_pass(m, qml_now(), &promoted, &rescued, &fired, &pruned, &nomem);
	pthread_mutex_unlock(&m->mu);
	/* what was done is whole; what memory did not allow is left as it was */
	if (nomem)
		return qml__nomem();
	snprintf(buf, sizeof(buf),
			 "{\"promoted\": %" PRId64 ", \"rescued\": %" PRId64 ", \"recurring\": %" PRId64
			 ", \"pruned\": %" PRId64 "}", promoted, rescued, fired, pruned);
	if (report && (*report = qml__strdup(buf)) == NULL)
		return qml__nomem();
	return QML_OK;
}
