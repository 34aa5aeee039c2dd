/*
 * bench/stores.c
 *	  One storage backend end to end through libqml: enqueue N jobs in
 *	  batches of 1000, then run them on the worker runtime (no-op handlers,
 *	  --workers threads) until every completion is flushed. Prints, for the
 *	  median of --reps runs: enqueue jobs/s, run jobs/s (server start to the
 *	  return of its stop) and end-to-end jobs/s (N over both).
 *
 *	  stores URL [--jobs N] [--workers N] [--reps N] [-v]
 *
 * URL is what qml_client_open takes: memory:, postgresql://..., "" for the
 * PG* environment, redis://... Each run opens a client of its own (a memory
 * store starts empty). bench/stores.sh runs it for every store side by side.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qml.h"
#include "rt_bench.h"

static long producer_jobs;

static void
die(const char *what)
{
	fprintf(stderr, "stores: %s: %s\n", what, qml_errmsg());
	exit(1);
}

/* What a run needs: a client, 1000 job specs, a server over them. */
typedef struct setup
{
	qml_config *cfg;
	qml_client *client;
	qml_job_spec *specs;
	qml_registry *reg;
	qml_server_config *scfg;
	qml_server *server;
} setup;

static void
setup_open(setup *t, const char *url, int workers, const char *queue)
{
	t->cfg = qml_config_new();
	qml_config_set_database_url(t->cfg, url);
	qml_config_set_pool_size(t->cfg, 1, 4);
	if (qml_client_open(t->cfg, &t->client) != QML_OK)
		die("open");
	t->specs = calloc(1000, sizeof(qml_job_spec));
	for (int i = 0; i < 1000; i++)
	{
		t->specs[i].method = "bench.noop";
		t->specs[i].arguments = "[1]";
		t->specs[i].options.queue = queue;
	}
	atomic_store(&bench_handled, 0);
	t->reg = qml_registry_new();
	qml_registry_add(t->reg, "bench.noop", bench_noop, NULL);
	t->scfg = qml_server_config_new("bench-stores");
	qml_server_config_set_workers(t->scfg, workers);
	qml_server_config_set_queues(t->scfg, &queue, 1);
	qml_server_config_set_fetch_batch(t->scfg, 1000);
	qml_server_config_set_prefetch(t->scfg, 2000);
	qml_server_config_set_flush(t->scfg, 5, 1000);
	qml_server_config_set_poll_interval(t->scfg, 10);
	if (qml_server_new(t->client, t->reg, t->scfg, &t->server) != QML_OK)
		die("server");
}

static void
setup_close(setup *t)
{
	qml_server_free(t->server);
	qml_server_config_free(t->scfg);
	qml_registry_free(t->reg);
	qml_client_close(t->client);
	qml_config_free(t->cfg);
	free(t->specs);
}

static void
enqueue_all(qml_client *client, const qml_job_spec *specs, long njobs)
{
	for (long n = 0; n < njobs; n += 1000)
		if (qml_enqueue_batch(client, specs, (size_t) (njobs - n < 1000 ? njobs - n : 1000), NULL) != QML_OK)
			die("enqueue_batch");
}

/* Starts the server, waits until every job ran, stops it (flushing). */
static void
run_all(setup *t, long njobs)
{
	if (qml_server_start(t->server) != QML_OK)
		die("start");
	while (atomic_load(&bench_handled) < njobs)
	{
		struct timespec ts = {0, 200000};

		nanosleep(&ts, NULL);
	}
}

static void *
produce(void *arg)
{
	setup	   *t = arg;

	enqueue_all(t->client, t->specs, producer_jobs);
	return NULL;
}

/*
 * The same N jobs enqueued by a producer thread while the server runs
 * them: the clock runs from the start of both to the last completion
 * flushed. Returns jobs/s.
 */
static double
cpu_secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
concurrent_run(const char *url, long njobs, int workers, const char *queue,
			   double *per_cpu)
{
	setup		t;
	pthread_t	th;
	double		t0,
				c0,
				r;

	setup_open(&t, url, workers, queue);
	producer_jobs = njobs;
	t0 = secs();
	c0 = cpu_secs();
	pthread_create(&th, NULL, produce, &t);
	run_all(&t, njobs);
	pthread_join(th, NULL);
	qml_server_stop(t.server);
	r = njobs / (secs() - t0);
	*per_cpu = njobs / (cpu_secs() - c0);
	setup_close(&t);
	return r;
}

/* One run: fills enq / run with jobs/s. */
static void
one_run(const char *url, long njobs, int workers, const char *queue,
		double *enq, double *run, bool verbose)
{
	setup		t;
	double		t0,
				t1,
				t2;

	setup_open(&t, url, workers, queue);
	t0 = secs();
	enqueue_all(t.client, t.specs, njobs);
	t1 = secs();
	t2 = secs();
	run_all(&t, njobs);
	qml_server_stop(t.server);
	*run = njobs / (secs() - t2);
	*enq = njobs / (t1 - t0);
	if (verbose)
	{
		qml_server_counters c;

		qml_server_get_counters(t.server, &c);
		fprintf(stderr, "  enqueue %.0f/s, run %.0f/s; fetched %llu in %llu fetches, %llu flushes\n",
				*enq, *run, (unsigned long long) c.fetched, (unsigned long long) c.fetch_calls,
				(unsigned long long) c.flushes);
	}
	setup_close(&t);
}

int
main(int argc, char **argv)
{
	const char *url = argc > 1 ? argv[1] : NULL;
	long		njobs = 200000;
	int			workers = 2,
				reps = 3;
	bool		verbose = false;
	double		enq[16],
				run[16],
				e2e[16],
				conc[16],
				cpu[16];
	char		queue[32];

	if (url == NULL)
	{
		fprintf(stderr, "usage: stores URL [--jobs N] [--workers N] [--reps N] [-v]\n");
		return 2;
	}
	for (int i = 2; i < argc; i++)
	{
		if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc)
			njobs = atol(argv[++i]);
		else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc)
			workers = atoi(argv[++i]);
		else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (strcmp(argv[i], "-v") == 0)
			verbose = true;
	}
	if (reps < 1 || reps > 16 || njobs < 1 || workers < 1)
	{
		fprintf(stderr, "stores: --reps 1..16, --jobs and --workers positive\n");
		return 2;
	}
	for (int r = 0; r < reps; r++)
	{
		snprintf(queue, sizeof(queue), "bench_%d_%ld", r, (long) time(NULL) % 100000);
		one_run(url, njobs, workers, queue, &enq[r], &run[r], verbose);
		e2e[r] = 1.0 / (1.0 / enq[r] + 1.0 / run[r]);
		snprintf(queue, sizeof(queue), "benchc_%d_%ld", r, (long) time(NULL) % 100000);
		conc[r] = concurrent_run(url, njobs, workers, queue, &cpu[r]);
		if (verbose)
			fprintf(stderr, "  concurrent %.0f/s\n", conc[r]);
	}
	qsort(conc, (size_t) reps, sizeof(double), cmp_double);
	qsort(cpu, (size_t) reps, sizeof(double), cmp_double);
	qsort(enq, (size_t) reps, sizeof(double), cmp_double);
	qsort(run, (size_t) reps, sizeof(double), cmp_double);
	qsort(e2e, (size_t) reps, sizeof(double), cmp_double);
	printf("enqueue %.0f run %.0f end_to_end %.0f concurrent %.0f per_cpu_second %.0f\n",
		   enq[reps / 2], run[reps / 2], e2e[reps / 2], conc[reps / 2], cpu[reps / 2]);
	return 0;
}
