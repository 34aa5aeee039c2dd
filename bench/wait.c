/*
 * bench/wait.c: workers that wait in the server (issue 19), measured from
 * outside. A producer enqueues bursts (BURST jobs in one commit every
 * EVERY ms) while WORKERS processes loop on
 * qml.fetch(..., BATCH, wait => '1 s'), spend 1 ms per job and complete
 * their jobs with qml.complete_batch. Prints:
 *
 *	 claim latency: from the commit of a job's burst returning to the
 *	 producer to a worker having the job, p50/p99/max
 *	 complete_batch: the round trip of each complete_batch while other
 *	 workers wait in fetch, p50/p99/max
 *
 * All processes share CLOCK_MONOTONIC; the commit times of the bursts and
 * the samples live in shared memory.
 *
 * The first WARMUP_MS of bursts are not measured: each worker's first
 * claims and completions in a new backend load its caches and plans, which
 * took 20 to 80 ms for the first bursts (0.5% of a 20 s run's claims, half
 * of what decides its p99). A pool of workers pays that once, not once per
 * 40,000 jobs; the flow is the same before and after. The claims of
 * every burst are reported as well, on a line of their own.
 *
 * With BENCH_WAIT_TRACE set to a file name, it also writes there, after
 * the run, the wall-clock times (ms since the epoch, as the server's log
 * and pg_stat_activity show them) of each burst's commit and of each fetch
 * that got jobs, to line slow claims up with what the server did then:
 *
 *	 burst NUMBER SENT_MS RETURNED_MS
 *	 fetch WORKER JOBS FIRST_BURST LAST_BURST CALLED_MS RETURNED_MS
 *
 *	 wait CONNINFO SECONDS [WORKERS BATCH BURST EVERY_MS [WORK_US]]
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"
#include "pq_bench.h"

#define MAX_BURSTS 1000000
#define MAX_SAMPLES 2000000
#define MAX_FETCHES 500000
#define WARMUP_MS 1000
#define Min(a, b) ((a) < (b) ? (a) : (b))

typedef struct Shared
{
	double		commit_ms[MAX_BURSTS];	/* when each burst's commit returned */
	int			nclaim;
	int			ncomplete;
	double		claim[MAX_SAMPLES];
	int			nclaim_all;
	double		claim_all[MAX_SAMPLES];	/* the warm-up's claims too */
	double		complete[MAX_SAMPLES];
	/* BENCH_WAIT_TRACE: wall-clock times */
	int			nfetch;
	struct
	{
		int			worker;
		int			jobs;
		int			first_burst;
		int			last_burst;
		double		called;
		double		returned;
	}			fetch[MAX_FETCHES];
	double		burst_sent[MAX_BURSTS];
	double		burst_returned[MAX_BURSTS];
} Shared;

static Shared *sh;
static int	first_measured;		/* the first burst after the warm-up */
static const char *trace_path;	/* BENCH_WAIT_TRACE */

static double
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* a fetch that got jobs, for BENCH_WAIT_TRACE */
static void
trace_fetch(int worker, PGresult *r, double called)
{
	int			i = __atomic_fetch_add(&sh->nfetch, 1, __ATOMIC_SEQ_CST);
	int			n = PQntuples(r);

	if (i >= MAX_FETCHES)
		return;
	sh->fetch[i].worker = worker;
	sh->fetch[i].jobs = n;
	sh->fetch[i].first_burst = atoi(PQgetvalue(r, 0, 1));
	sh->fetch[i].last_burst = atoi(PQgetvalue(r, n - 1, 1));
	sh->fetch[i].called = called;
	sh->fetch[i].returned = wall_ms();
}

static void
write_trace(const char *path, int nbursts)
{
	FILE	   *f = fopen(path, "w");
	int			i;

	if (f == NULL)
	{
		perror(path);
		exit(1);
	}
	for (i = 0; i < nbursts; i++)
		fprintf(f, "burst %d %.3f %.3f\n", i, sh->burst_sent[i], sh->burst_returned[i]);
	for (i = 0; i < Min(sh->nfetch, MAX_FETCHES); i++)
		fprintf(f, "fetch %d %d %d %d %.3f %.3f\n", sh->fetch[i].worker,
				sh->fetch[i].jobs, sh->fetch[i].first_burst,
				sh->fetch[i].last_burst, sh->fetch[i].called,
				sh->fetch[i].returned);
	fclose(f);
}

static void
add(double *samples, int *n, double v)
{
	int			i = __atomic_fetch_add(n, 1, __ATOMIC_SEQ_CST);

	if (i < MAX_SAMPLES)
		samples[i] = v;
}

static void
worker(const char *conninfo, int id, double end_ms, int batch, int work_us)
{
	PGconn	   *c = connect_or_die(conninfo);
	char		name[32];
	char		batch_s[16];
	const char *fetch_params[2];

	snprintf(name, sizeof(name), "w%d", id);
	snprintf(batch_s, sizeof(batch_s), "%d", batch);
	fetch_params[0] = name;
	fetch_params[1] = batch_s;
	while (now_ms() < end_ms)
	{
		double		called = wall_ms();
		PGresult   *r = PQexecParams(c, "SELECT id, arguments->>0 FROM qml.fetch($1, '{wait}', $2::int,"
									 " wait => interval '1 s')",
									 2, NULL, fetch_params, NULL, NULL, 0);
		double		got = now_ms();
		char		ids[16384];
		size_t		len = 0;
		int			n;
		int			i;
		bool		measured;

		if (PQresultStatus(r) != PGRES_TUPLES_OK)
		{
			fprintf(stderr, "fetch: %s", PQerrorMessage(c));
			exit(1);
		}
		n = PQntuples(r);
		if (n == 0)
		{
			PQclear(r);
			continue;
		}
		if (trace_path)
			trace_fetch(id, r, called);
		measured = false;
		len += snprintf(ids + len, sizeof(ids) - len, "{");
		for (i = 0; i < n; i++)
		{
			int			burst = atoi(PQgetvalue(r, i, 1));
			double		committed;

			__atomic_load(&sh->commit_ms[burst], &committed, __ATOMIC_SEQ_CST);

			/* a job claimed before its commit returned to the producer: 0 */
			committed = committed > 0 && got > committed ? got - committed : 0;
			add(sh->claim_all, &sh->nclaim_all, committed);
			if (burst >= first_measured)
			{
				add(sh->claim, &sh->nclaim, committed);
				measured = true;
			}
			len += snprintf(ids + len, sizeof(ids) - len, "%s%s", i ? "," : "",
							PQgetvalue(r, i, 0));
		}
		snprintf(ids + len, sizeof(ids) - len, "}");
		PQclear(r);
		if (work_us > 0)
			usleep(work_us * n);
		{
			const char *params[2] = {ids, name};
			double		t0 = now_ms();

			r = PQexecParams(c, "SELECT count(*) FROM qml.complete_batch($1::bigint[], $2)",
							 2, NULL, params, NULL, NULL, 0);
			if (PQresultStatus(r) != PGRES_TUPLES_OK)
			{
				fprintf(stderr, "complete_batch: %s", PQerrorMessage(c));
				exit(1);
			}
			if (measured)
				add(sh->complete, &sh->ncomplete, now_ms() - t0);
			PQclear(r);
		}
	}
	PQfinish(c);
	exit(0);
}

static int
cmp(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return x < y ? -1 : x > y;
}

static void
report(const char *label, double *v, int n)
{
	if (n > MAX_SAMPLES)
		n = MAX_SAMPLES;
	if (n == 0)
	{
		printf("%s: no samples\n", label);
		return;
	}
	qsort(v, n, sizeof(double), cmp);
	printf("%s: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", label,
		   v[(int) (n * 0.50)], v[(int) (n * 0.99)], v[n - 1]);
}

int
main(int argc, char **argv)
{
	const char *conninfo;
	int			seconds;
	int			workers = 16;
	int			batch = 8;
	int			burst = 50;
	int			every = 25;
	int			work_us = 1000;
	double		start;
	double		end;
	PGconn	   *p;
	int			b;
	int			i;

	if (argc < 3)
	{
		fprintf(stderr, "usage: wait CONNINFO SECONDS [WORKERS BATCH BURST EVERY_MS [WORK_US]]\n");
		return 2;
	}
	conninfo = argv[1];
	seconds = atoi(argv[2]);
	if (argc > 6)
	{
		workers = atoi(argv[3]);
		batch = atoi(argv[4]);
		burst = atoi(argv[5]);
		every = atoi(argv[6]);
	}
	if (argc > 7)
		work_us = atoi(argv[7]);
	sh = mmap(NULL, sizeof(Shared), PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
	{
		perror("mmap");
		return 1;
	}
	p = connect_or_die(conninfo);
	exec_or_die(p, "TRUNCATE qml.jobs, qml.job_events_1_1");
	first_measured = (WARMUP_MS + every - 1) / every;
	trace_path = getenv("BENCH_WAIT_TRACE");
	start = now_ms();
	end = start + WARMUP_MS + seconds * 1000.0 + 500;
	for (i = 0; i < workers; i++)
		if (fork() == 0)
			worker(conninfo, i, end, batch, work_us);
	/* the workers are waiting before the first burst */
	usleep(500 * 1000);
	for (b = 0; b < MAX_BURSTS && now_ms() < end - 500; b++)
	{
		char		sql[512];
		double		due = start + 500 + (double) b * every;
		double		t;

		while ((t = now_ms()) < due)
			usleep((useconds_t) ((due - t) * 1000));
		snprintf(sql, sizeof(sql),
				 "SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object("
				 "'method', 'w', 'queue', 'wait', 'arguments', jsonb_build_array(%d)))"
				 " FROM generate_series(1, %d)))", b, burst);
		sh->burst_sent[b] = wall_ms();
		exec_or_die(p, sql);
		sh->burst_returned[b] = wall_ms();
		t = now_ms();
		__atomic_store(&sh->commit_ms[b], &t, __ATOMIC_SEQ_CST);
	}
	while (wait(NULL) > 0)
		;
	/* no "ms" or "jobs/s" after a number: bench/parse-output.pl */
	printf("== %d-job commits %d times a second; %d workers in fetch(wait) with batch %d,"
		   " 1 millisecond of work a job; %d claims, %d calls of complete_batch\n",
		   burst, 1000 / every, workers, batch,
		   Min(sh->nclaim, MAX_SAMPLES), Min(sh->ncomplete, MAX_SAMPLES));
	printf("-- bursts\n");
	report("claim latency", sh->claim, sh->nclaim);
	report("complete_batch while others wait", sh->complete, sh->ncomplete);
	/* the case as it was measured before the warm-up was left out */
	report("claims, the first second included", sh->claim_all, sh->nclaim_all);
	if (trace_path)
		write_trace(trace_path, b);
	PQfinish(p);
	return 0;
}
