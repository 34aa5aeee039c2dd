/*
 * memory_oom_test.c
 *	  The memory store's batch enqueue when memory runs out: it files all
 *	  its jobs or none, and says so. Every allocation of the test's own
 *	  thread from the k-th on fails, for k = 0, 1, 2, ... until the batch
 *	  gets through; after each try the store holds the jobs it held before
 *	  (none of the batch, its unique keys free again) or all of them, each
 *	  one fetchable and its unique key taken.
 *
 * The allocator is wrapped at link time (client.mk links this test with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc), so libqml itself has
 * no hook: only this test binary's copy of libqml.a calls the wrappers.
 */
#include <stdbool.h>

#include "testlib.h"
#include "../src/store.h"

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

int
main(void)
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
			return tap_done();
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
	return tap_done();
}
