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
 *	 wait CONNINFO SECONDS [WORKERS BATCH BURST EVERY_MS [WORK_US]]
 */
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
#define Min(a, b) ((a) < (b) ? (a) : (b))

typedef struct Shared
{
	double		commit_ms[MAX_BURSTS];	/* when each burst's commit returned */
	int			nclaim;
	int			ncomplete;
	double		claim[MAX_SAMPLES];
	double		complete[MAX_SAMPLES];
} Shared;

static Shared *sh;

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
		PGresult   *r = PQexecParams(c, "SELECT id, arguments->>0 FROM qml.fetch($1, '{wait}', $2::int,"
									 " wait => interval '1 s')",
									 2, NULL, fetch_params, NULL, NULL, 0);
		double		got = now_ms();
		char		ids[16384];
		size_t		len = 0;
		int			n;
		int			i;

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
		len += snprintf(ids + len, sizeof(ids) - len, "{");
		for (i = 0; i < n; i++)
		{
			int			burst = atoi(PQgetvalue(r, i, 1));
			double		committed;

			__atomic_load(&sh->commit_ms[burst], &committed, __ATOMIC_SEQ_CST);

			/* a job claimed before its commit returned to the producer: 0 */
			committed = committed > 0 && got > committed ? got - committed : 0;
			add(sh->claim, &sh->nclaim, committed);
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
	start = now_ms();
	end = start + seconds * 1000.0 + 500;
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
		exec_or_die(p, sql);
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
	PQfinish(p);
	return 0;
}
