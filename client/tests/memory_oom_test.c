/*
 * memory_oom_test.c
 *	  The memory store when memory runs out: every operation does all it
 *	  should or changes nothing, and says so. Every allocation of the
 *	  test's own thread from the k-th on fails, for k = 0, 1, 2, ... until
 *	  the operation gets through.
 *
 *	  The batch enqueue: after each try the store holds the jobs it held
 *	  before (none of the batch, its unique keys free again) or all of them,
 *	  each one fetchable and its unique key taken.
 *
 *	  Every other operation that changes the store (and the recurring
 *	  list, which must not come out short), on a store holding jobs
 *	  in every state: refused, the store reads exactly as before (its jobs,
 *	  their states, attempts, history, messages, its queues); through, as
 *	  after the same operation with memory enough; and always each job is
 *	  in exactly the index its state needs, once, and the counts, the unique
 *	  keys and the finished list agree with the jobs (read from the store's
 *	  own structures, store_memory.h). Under ASan, nothing leaks.
 *
 * The allocator is wrapped at link time (client.mk links this test with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc), so libqml itself has
 * no hook: only this test binary's copy of libqml.a calls the wrappers.
 */
#include <stdbool.h>

#include <jansson.h>

#include "testlib.h"
#include "../src/store.h"
#include "../src/store_memory.h"

#define BEFORE 1000				/* jobs already there: indexes near a doubling */
#define BEFORE_KEYED 60			/* of them with a unique key: its map too */
#define BATCH 100

void	   *__real_malloc(size_t size);
void	   *__real_calloc(size_t n, size_t size);
void	   *__real_realloc(void *p, size_t size);
void	   *__wrap_malloc(size_t size);
void	   *__wrap_calloc(size_t n, size_t size);
void	   *__wrap_realloc(void *p, size_t size);

/* allocations of this thread left before they fail; -1: no limit */
static __thread long budget = -1;
static __thread bool refused;

static bool
may_allocate(void)
{
	if (budget < 0)
		return true;
	if (budget == 0)
	{
		refused = true;
		return false;
	}
	budget--;
	return true;
}

void *
__wrap_malloc(size_t size)
{
	return may_allocate() ? __real_malloc(size) : NULL;
}

void *
__wrap_calloc(size_t n, size_t size)
{
	return may_allocate() ? __real_calloc(n, size) : NULL;
}

void *
__wrap_realloc(void *p, size_t size)
{
	return may_allocate() ? __real_realloc(p, size) : NULL;
}

static int64_t
total(qml_client *c)
{
	qml_queue_stats *s = NULL;
	size_t		n = 0;
	int64_t		sum = 0;

	qml_stats(c, NULL, &s, &n);
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < QML_STATE_COUNT; k++)
			sum += s[i].counts[k];
	qml_stats_free(s, n);
	return sum;
}

/* claims every enqueued job of "default"; how many */
static int
fetch_all(qml_client *c)
{
	qml_store  *st = qml__client_store(c);
	const char *queues[1] = {"default"};
	qml_session_config fc = {.kind = QML_SESSION_FETCH, .appname = "t", .worker = "w",
	.queues = queues, .nqueues = 1, .lease_ms = 60000};
	qml_store_session *s = NULL;
	qml_store_job *jobs[250];
	int			got,
				sum = 0;

	if (st->ops->session_open(st, &fc, &s) != QML_OK)
		return -1;
	do
	{
		got = 0;
		st->ops->fetch(s, 250, 0, jobs, &got);
		for (int i = 0; i < got; i++)
			free(jobs[i]);
		sum += got;
	} while (got > 0);
	st->ops->session_close(s);
	return sum;
}

/* the store holds exactly the jobs before the batch: its keys are free */
static bool
holds_none(qml_client *c, qml_job_spec *batch)
{
	int64_t		ids[BATCH];

	if (total(c) != BEFORE)
		return false;
	/* filed now, the whole batch is new jobs: none of its keys was left taken */
	if (qml_enqueue_batch(c, batch, BATCH, ids) != QML_OK)
		return false;
	return total(c) == BEFORE + BATCH;
}

/* the store holds the batch: counted, each key taken, each due job fetchable */
static bool
holds_all(qml_client *c, qml_job_spec *batch, const int64_t *ids)
{
	for (int i = 0; i < BATCH; i++)
	{
		int64_t		again = 0;

		if (qml_enqueue(c, batch[i].method, NULL, &batch[i].options, &again) != QML_OK ||
			again != ids[i])
			return false;
	}
	return total(c) == BEFORE + BATCH &&
		fetch_all(c) == BEFORE + BATCH / 2;
}

static void
batch_sweep(void)
{
	char		keys[BATCH][16],
				before_keys[BEFORE_KEYED][16];
	qml_job_spec batch[BATCH];
	int64_t		ids[BATCH];
	int			tries = 0,
				bad = 0;
	bool		through = false;

	memset(batch, 0, sizeof(batch));
	for (int i = 0; i < BATCH; i++)
	{
		snprintf(keys[i], sizeof(keys[i]), "b%d", i);
		batch[i].method = "m";
		batch[i].options.unique_key = keys[i];
		/* half due later: the timers' index too */
		if (i % 2)
			batch[i].options.delay_ms = 3600 * 1000;
	}
	for (long k = 0; !through && k < 5000; k++)
	{
		qml_config *cfg = qml_config_new();
		qml_client *c = NULL;
		qml_status	st;

		qml_config_set_database_url(cfg, "memory:");
		if (qml_client_open(cfg, &c) != QML_OK)
		{
			ok(0, "open memory: %s", qml_errmsg());
			return;
		}
		qml_config_free(cfg);
		for (int i = 0; i < BEFORE; i++)
		{
			qml_enqueue_options o = {0};

			if (i < BEFORE_KEYED)
			{
				snprintf(before_keys[i], sizeof(before_keys[i]), "a%d", i);
				o.unique_key = before_keys[i];
			}
			qml_enqueue(c, "m", NULL, &o, NULL);
		}
		refused = false;
		budget = k;
		st = qml_enqueue_batch(c, batch, BATCH, ids);
		budget = -1;
		tries++;
		if (st == QML_OK)
		{
			through = !refused;
			if (!holds_all(c, batch, ids))
			{
				bad++;
				ok(0, "allocation %ld refused, the batch said ok: it holds all its jobs", k);
			}
		}
		else if (st != QML_ERR_NOMEM || !holds_none(c, batch))
		{
			bad++;
			ok(0, "allocation %ld refused: %s (%s), and the store holds none of the batch",
			   k, qml_status_str(st), qml_errmsg());
		}
		qml_client_close(c);
		if (bad > 5)
			break;
	}
	ok(through, "the batch got through once memory sufficed (%d tries)", tries);
	is_int(bad, 0, "each refused allocation left all of the batch or none of it, and said so");
}

/* ---- every other operation ---- */

#define HELD 45					/* jobs the fixture's worker holds */
#define DAY_US (86400LL * 1000000)

/* a store with jobs in every state, and what the operations act on */
typedef struct fixture
{
	qml_client *c;
	qml_store  *st;
	mem_store  *m;
	qml_store_session *s;		/* worker "w" fetching from "default" */
	int64_t		held[HELD];
	int64_t		enqueued,
				scheduled,
				failed_keyed;
} fixture;

static qml_store_session *
open_session(qml_store *st, const char *const *queues, size_t n)
{
	qml_session_config fc = {.kind = QML_SESSION_FETCH, .appname = "t", .worker = "w",
	.queues = queues, .nqueues = n, .lease_ms = 3600 * 1000};
	qml_store_session *s = NULL;

	return st->ops->session_open(st, &fc, &s) == QML_OK ? s : NULL;
}

/*
 * 20 jobs promoted (3 events once claimed: their history grows at the next
 * change), 30 keyed, 250 plain, 20 due in an hour, one recurring job; 100
 * claimed, of them 10 succeeded, 20 failed (keyed), 15 awaiting a retry, 10
 * released and 45 held.
 */
static bool
fixture_open(fixture *f)
{
	static const char *const dflt[] = {"default"};
	qml_config *cfg = qml_config_new();
	qml_recurring_options ro = {.queue = "rq"};
	qml_store_job *jobs[100];
	int64_t		claimed[100];
	const char *texts[100];
	bool		retry[100];
	size_t		done;
	int			got = 0;
	int64_t		a,
				b,
				c,
				d;
	bool		nomem;

	memset(f, 0, sizeof(*f));
	qml_config_set_database_url(cfg, "memory:");
	if (qml_client_open(cfg, &f->c) != QML_OK)
		return false;
	qml_config_free(cfg);
	f->st = qml__client_store(f->c);
	f->m = MEM(f->st);
	for (int i = 0; i < 320; i++)
	{
		char		key[16];
		qml_enqueue_options o = {.backoff_base_ms = 3600 * 1000,
		.backoff_cap_ms = 3600 * 1000, .max_attempts = 5};

		snprintf(key, sizeof(key), "k%d", i - 20);
		if (i < 20)
			o.priority = 1, o.delay_ms = 1;
		else if (i < 50)
			o.unique_key = key;
		else if (i >= 300)
			o.delay_ms = 3600 * 1000;
		if (qml_enqueue(f->c, "m", NULL, &o, i == 299 ? &f->enqueued :
						i == 300 ? &f->scheduled : NULL) != QML_OK)
			return false;
	}
	if (f->st->ops->recurring_add(f->st, "r", "* * * * *", "m", NULL, &ro) != QML_OK)
		return false;
	/* the 20 due in a millisecond: enqueued by a pass a second on */
	pthread_mutex_lock(&f->m->mu);
	mem_pass(f->m, qml_now() + 1000000, &a, &b, &c, &d, &nomem);
	pthread_mutex_unlock(&f->m->mu);
	if ((f->s = open_session(f->st, dflt, 1)) == NULL ||
		f->st->ops->fetch(f->s, 100, 0, jobs, &got) != QML_OK || got != 100)
		return false;
	for (int i = 0; i < 100; i++)
	{
		claimed[i] = jobs[i]->id;
		texts[i] = "boom";
		retry[i] = i >= 50;
		free(jobs[i]);
	}
	f->failed_keyed = claimed[30];
	memcpy(f->held, claimed, 20 * sizeof(int64_t));
	memcpy(f->held + 20, claimed + 75, 25 * sizeof(int64_t));
	return f->st->ops->complete(f->s, "w", claimed + 20, texts, 10, &done) == QML_OK &&
		f->st->ops->fail(f->s, "w", claimed + 30, texts, retry + 30, 20, &done, NULL) == QML_OK &&
		f->st->ops->fail(f->s, "w", claimed + 50, texts, retry + 50, 15, &done, NULL) == QML_OK &&
		f->st->ops->release(f->s, "w", claimed + 65, 10, &done) == QML_OK;
}

static void
fixture_close(fixture *f)
{
	if (f->s)
		f->st->ops->session_close(f->s);
	qml_client_close(f->c);
}

/* ---- what the store holds, read from its own structures ---- */

typedef struct sig
{
	char	   *text;
	size_t		len,
				cap;
} sig;

static void
sig_add(sig *g, const char *fmt,...)
{
	va_list		ap;
	char		buf[1024];
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (g->len + (size_t) n + 1 > g->cap)
	{
		g->cap = (g->len + (size_t) n + 1) * 2;
		g->text = __real_realloc(g->text, g->cap);
	}
	memcpy(g->text + g->len, buf, (size_t) n + 1);
	g->len += (size_t) n;
}

/* everything of the store but times: equal before and after a refusal */
static char *
signature(mem_store *m)
{
	sig			g = {0};

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nqueues; i++)
	{
		mem_queue  *q = m->queues[i];

		sig_add(&g, "queue %s paused %d counts", q->name, q->paused);
		for (int k = 0; k < QML_STATE_COUNT; k++)
			sig_add(&g, " %lld", (long long) q->counts[k]);
		sig_add(&g, " keys %zu\n", q->unique.n);
	}
	for (size_t i = 0; i < m->nby_id; i++)
	{
		mem_job    *j = m->by_id[i];

		if (j == NULL)
			continue;
		sig_add(&g, "job %lld %s state %d attempts %d by %s error %s result %s events",
				(long long) j->id, j->queue->name, j->state, j->attempts,
				j->locked_by ? j->locked_by : "-", j->last_error ? j->last_error : "-",
				j->result ? j->result : "-");
		for (uint32_t e = 0; e < j->nevents; e++)
			sig_add(&g, " %d>%d %s %s", j->events[e].from, j->events[e].to,
					j->events[e].worker ? j->events[e].worker : "-",
					j->events[e].error ? j->events[e].error : "-");
		sig_add(&g, "\n");
	}
	for (mem_recurring *r = m->recurring; r; r = r->next)
		sig_add(&g, "recurring %s ran %d\n", r->name, r->last_run_at != QML_TIME_NULL);
	sig_add(&g, "live %lld ids %zu finished %zu\n", (long long) m->live, m->nby_id, m->fin_n);
	pthread_mutex_unlock(&m->mu);
	return g.text;
}

typedef struct walk
{
	mem_store  *m;
	const mem_queue *queue;		/* NULL: any */
	int			states[2];
	int64_t		n;
	bool	   *seen;
	const char *bad;
} walk;

static void
visit(mem_job *j, void *arg)
{
	walk	   *w = arg;
	size_t		i = (size_t) (j->id - w->m->by_id_base);

	w->n++;
	if (i >= w->m->nby_id || w->m->by_id[i] != j)
		w->bad = "a job in an index is not in the store";
	else if (w->seen[i])
		w->bad = "a job is in two indexes, or twice in one";
	else if (j->state != w->states[0] && j->state != w->states[1])
		w->bad = "a job is in the index of another state";
	else if (w->queue && j->queue != w->queue)
		w->bad = "a job is in another queue's index";
	else if (j->heap_index == -1)
		w->bad = "a job in an index says it is in none";
	w->seen[i] = true;
}

static bool
is_final_state(int s)
{
	return s == QML_STATE_SUCCEEDED || s == QML_STATE_FAILED || s == QML_STATE_DELETED;
}

/* NULL when the store's structures agree, else what is wrong */
static const char *
invariants(mem_store *m)
{
	bool	   *seen = __real_calloc(m->nby_id + 1, sizeof(bool));
	walk		w = {m, NULL, {0, 0}, 0, seen, NULL};
	int64_t		counts[QML_STATE_COUNT] = {0},
				live = 0;
	const char *bad = NULL;

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; !bad && i < m->nqueues; i++)
	{
		mem_queue  *q = m->queues[i];
		int64_t		keyed = 0,
					per[QML_STATE_COUNT] = {0};

		w.queue = q;
		w.states[0] = w.states[1] = QML_STATE_ENQUEUED;
		w.n = 0;
		mem_index_each(&q->ready, visit, &w);
		for (size_t k = 0; k < m->nby_id; k++)
		{
			mem_job    *j = m->by_id[k];

			if (j == NULL || j->queue != q)
				continue;
			per[j->state]++;
			if (j->unique_key && !is_final_state(j->state))
			{
				keyed++;
				if (mem_map_get(&q->unique, j->unique_key) != j)
					bad = "a live job's unique key is not its own";
			}
		}
		if (w.n != per[QML_STATE_ENQUEUED])
			bad = "a queue's enqueued jobs are not all in its index";
		if ((int64_t) q->unique.n != keyed)
			bad = "a queue's unique keys are not its live keyed jobs";
		for (int k = 0; k < QML_STATE_COUNT; k++)
		{
			if (q->counts[k] != per[k])
				bad = "a queue's counts are not its jobs";
			counts[k] += per[k];
		}
	}
	w.queue = NULL;
	w.states[0] = QML_STATE_SCHEDULED;
	w.states[1] = QML_STATE_AWAITING_RETRY;
	w.n = 0;
	mem_index_each(&m->timers, visit, &w);
	if (w.n != counts[QML_STATE_SCHEDULED] + counts[QML_STATE_AWAITING_RETRY])
		bad = "the scheduled and awaiting jobs are not all in the timers";
	w.states[0] = w.states[1] = QML_STATE_PROCESSING;
	w.n = 0;
	mem_index_each(&m->leases, visit, &w);
	if (w.n != counts[QML_STATE_PROCESSING])
		bad = "the processing jobs are not all in the leases";
	for (size_t k = 0; k < m->nby_id; k++)
	{
		mem_job    *j = m->by_id[k];

		if (j == NULL)
			continue;
		if (is_final_state(j->state))
		{
			bool		listed = false;

			/* listed to be pruned (a requeued job may stay listed too) */
			for (size_t f = 0; !listed && f < m->fin_n; f++)
				listed = m->fin_ids[(m->fin_head + f) % m->fin_cap] == j->id;
			if (!listed)
				bad = "a finished job is not in the finished list";
			if (j->heap_index != -1)
				bad = "a finished job says it is in an index";
		}
		else
			live++;
	}
	if (live != m->live)
		bad = "the live count is not the live jobs";
	pthread_mutex_unlock(&m->mu);
	free(seen);
	return w.bad ? w.bad : bad;
}

/* ---- the operations ---- */

typedef struct op
{
	const char *name;
	qml_status	(*run) (fixture *f, int arg);
	int			arg;			/* a fetch: how many it claims */
	/* out of memory, it may have done part (each job whole) */
	bool		partial;
} op;

static int	fetched;

static qml_status
op_enqueue_new_queue(fixture *f, int arg)
{
	qml_enqueue_options o = {.queue = "fresh", .unique_key = "u"};

	(void) arg;
	return qml_enqueue(f->c, "m", "[1]", &o, NULL);
}

static qml_status
op_batch_new_queues(fixture *f, int arg)
{
	qml_job_spec b[3] = {{.method = "m"}, {.method = "m"}, {.method = "m"}};

	(void) arg;
	b[0].options.queue = "fresh1";
	b[1].options.queue = "fresh2";
	b[2].options.queue = "fresh3";
	b[2].options.unique_key = "v";
	return qml_enqueue_batch(f->c, b, 3, NULL);
}

static qml_status
op_fetch(fixture *f, int want)
{
	qml_store_job *jobs[60];
	qml_status	st;

	fetched = 0;
	st = f->st->ops->fetch(f->s, want, 0, jobs, &fetched);
	for (int i = 0; i < fetched; i++)
		free(jobs[i]);
	return st;
}

/* kind 0: complete, 1: fail (every other one retried), 2: release */
static qml_status
op_outcome(fixture *f, int kind)
{
	const char *texts[HELD];
	bool		retry[HELD];
	size_t		done = 0;
	qml_status	st;

	for (int i = 0; i < HELD; i++)
	{
		texts[i] = kind == 0 ? "{\"done\": true}" : "boom";
		retry[i] = i % 2;
	}
	if (kind == 0)
		st = f->st->ops->complete(f->s, "w", f->held, texts, HELD, &done);
	else if (kind == 1)
		st = f->st->ops->fail(f->s, "w", f->held, texts, retry, HELD, &done, NULL);
	else
		st = f->st->ops->release(f->s, "w", f->held, HELD, &done);
	/* all or none (QML_ERR_STATE: less than asked) */
	if (st == QML_OK && done != HELD)
		return QML_ERR_STATE;
	return st;
}

static qml_status
op_heartbeat(fixture *f, int arg)
{
	bool		held[HELD];

	(void) arg;
	return f->st->ops->heartbeat(f->st, "w", f->held, HELD, 7200 * 1000, held);
}

/* which 0: an enqueued job, 1: a processing one, 2: a scheduled one */
static qml_status
op_delete(fixture *f, int which)
{
	bool		done = false;
	int64_t		id = which == 0 ? f->enqueued : which == 1 ? f->held[0] : f->scheduled;
	qml_status	st = f->st->ops->job_delete(f->st, id, &done);

	return st == QML_OK && !done ? QML_ERR_STATE : st;
}

static qml_status
op_requeue(fixture *f, int arg)
{
	bool		done = false;
	qml_status	st = f->st->ops->job_requeue(f->st, f->failed_keyed, &done);

	(void) arg;
	return st == QML_OK && !done ? QML_ERR_STATE : st;
}

static qml_status
op_pause_new_queue(fixture *f, int arg)
{
	bool		changed;

	(void) arg;
	return f->st->ops->queue_pause(f->st, "pq", true, &changed);
}

static qml_status
op_session_new_queues(fixture *f, int arg)
{
	static const char *const qs[] = {"default", "sq1", "sq2"};
	qml_store_session *s = open_session(f->st, qs, 3);

	(void) arg;
	if (s == NULL)
		return qml_errcode();
	f->st->ops->session_close(s);
	return QML_OK;
}

/* a pass a month on: promote all due, rescue all leases, fire "r" */
static qml_status
op_maintenance_pass(fixture *f, int arg)
{
	int64_t		a,
				b,
				c,
				d;
	bool		nomem;

	(void) arg;
	pthread_mutex_lock(&f->m->mu);
	mem_pass(f->m, qml_now() + 30 * DAY_US, &a, &b, &c, &d, &nomem);
	pthread_mutex_unlock(&f->m->mu);
	return nomem ? QML_ERR_NOMEM : QML_OK;
}

static qml_status
op_recurring_run(fixture *f, int arg)
{
	int64_t		id;

	(void) arg;
	return f->st->ops->recurring_run(f->st, "r", &id);
}

/* a read: all of the list or an error, never a shorter list */
static qml_status
op_recurring_list(fixture *f, int arg)
{
	char	   *json = NULL;
	qml_status	st = f->st->ops->recurring_list(f->st, &json);

	(void) arg;
	if (st == QML_OK && (json == NULL || strstr(json, "\"name\":\"r\"") == NULL))
		st = QML_ERR_STATE;
	free(json);
	return st;
}

static const op ops[] = {
	{"enqueue into a new queue", op_enqueue_new_queue, 0, false},
	{"batch into new queues", op_batch_new_queues, 0, false},
	{"fetch", op_fetch, 60, false},
	{"complete", op_outcome, 0, false},
	{"fail", op_outcome, 1, false},
	{"release", op_outcome, 2, false},
	{"heartbeat", op_heartbeat, 0, false},
	{"delete an enqueued job", op_delete, 0, false},
	{"delete a processing job", op_delete, 1, false},
	{"delete a scheduled job", op_delete, 2, false},
	{"requeue a failed keyed job", op_requeue, 0, false},
	{"pause a new queue", op_pause_new_queue, 0, false},
	{"open a session on new queues", op_session_new_queues, 0, false},
	{"maintenance pass (promote, rescue, recurring)", op_maintenance_pass, 0, true},
	{"run a recurring job", op_recurring_run, 0, false},
	{"list the recurring jobs", op_recurring_list, 0, false},
};

/* the store after o (with arg) with memory enough, on a fresh fixture */
static char *
reference(const op *o, int arg)
{
	fixture		f;
	char	   *sg = NULL;

	if (fixture_open(&f) && o->run(&f, arg) == QML_OK)
		sg = signature(f.m);
	fixture_close(&f);
	return sg;
}

/* tries o with the k-th allocation on refused; 1: through, 0: refused, -1: bad */
static int
try_op(const op *o, long k, const char *expected, const char **why)
{
	fixture		f;
	char	   *before,
			   *after,
			   *partial_ref = NULL;
	qml_status	st;
	int			res;

	if (!fixture_open(&f))
	{
		*why = "the fixture could not be built";
		fixture_close(&f);
		return -1;
	}
	before = signature(f.m);
	refused = false;
	budget = k;
	st = o->run(&f, o->arg);
	budget = -1;
	after = signature(f.m);
	*why = invariants(f.m);
	res = *why ? -1 : st == QML_OK ? !refused : 0;
	if (*why == NULL && st == QML_OK && o->run == op_fetch && fetched < o->arg)
	{
		/* a fetch short of memory claims fewer, each whole */
		partial_ref = reference(o, fetched);
		if (fetched == 0 || partial_ref == NULL || strcmp(after, partial_ref) != 0)
			*why = "a fetch short of memory is not a smaller fetch";
		res = 0;
	}
	else if (*why == NULL && st == QML_OK && strcmp(after, expected) != 0)
		*why = "it said ok, and the store is not as after it with memory enough";
	else if (*why == NULL && st != QML_OK && st != QML_ERR_NOMEM)
		*why = "refused memory, it did not say out of memory (or did less than asked)";
	else if (*why == NULL && st != QML_OK && !o->partial && strcmp(after, before) != 0)
		*why = "it said out of memory, and the store changed";
	if (*why)
		res = -1;
	fixture_close(&f);
	free(before);
	free(after);
	free(partial_ref);
	return res;
}

static void
ops_sweep(void)
{
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
	{
		char	   *expected = reference(&ops[i], ops[i].arg);
		long		k;
		int			res = 0;
		const char *why = NULL;

		if (expected == NULL)
		{
			ok(0, "%s: with memory enough: %s", ops[i].name, qml_errmsg());
			continue;
		}
		for (k = 0; k < 5000 && (res = try_op(&ops[i], k, expected, &why)) == 0; k++)
			;
		ok(res == 1, "%s: all or nothing with the k-th allocation refused, k = 0..%ld%s%s",
		   ops[i].name, k, why ? ": " : "", why ? why : "");
		free(expected);
	}
}

int
main(void)
{
	/* jansson's allocations (the recurring list) are refused too */
	json_set_alloc_funcs(__wrap_malloc, free);
	batch_sweep();
	ops_sweep();
	return tap_done();
}
