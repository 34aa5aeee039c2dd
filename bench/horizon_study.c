/*
 * bench/horizon_study.c: one queue design under a steady flow, for
 * bench/horizon_study.sh. A producer calls SCHEMA.enqueue(burst, BURST)
 * every EVERY_MS; WORKERS processes loop on SCHEMA.claim(worker, BATCH)
 * (sleeping 2 ms when it returns nothing) and SCHEMA.complete(ids, worker);
 * a maintenance process calls SCHEMA.maintain() every MAINTAIN_MS. Every
 * design of the study offers those four functions
 * (bench/sql/horizon_study/). For every WINDOW_S seconds it prints the jobs
 * claimed per second and the claim latency (from the commit of a job's
 * burst returning to the producer to a worker having the job) p50/p99.
 * At the end it counts the jobs claimed more than once, and those of the
 * bursts committed at least 10 s before the end that were never claimed:
 * a design that loses or doubles jobs measures nothing.
 *
 *	 horizon_study CONNINFO SCHEMA SECONDS WORKERS BATCH BURST EVERY_MS WINDOW_S MAINTAIN_MS
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
#define MAX_WINDOWS 64
#define BUCKETS 100000			/* claim latency in 0.1 ms steps, the last: more */
#define BUCKET_MS 0.1

typedef struct Shared
{
	double		commit_ms[MAX_BURSTS];	/* when each burst's commit returned */
	int			claimed[MAX_BURSTS];	/* jobs of each burst claimed */
	double		start_ms;
	int			window_s;
	int			hist[MAX_WINDOWS][BUCKETS];
} Shared;

static Shared *sh;
static char sql_claim[256];
static char sql_complete[256];
static char sql_enqueue[256];
static char sql_maintain[256];

static PGresult *
run(PGconn *c, const char *sql, int n, const char **params)
{
	PGresult   *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
		exit(1);
	}
	return r;
}

static void
worker(const char *conninfo, int id, double end_ms, int batch)
{
	PGconn	   *c = connect_or_die(conninfo);
	char		name[32];
	char		batch_s[16];
	const char *params[2];

	snprintf(name, sizeof(name), "w%d", id);
	snprintf(batch_s, sizeof(batch_s), "%d", batch);
	while (now_ms() < end_ms)
	{
		PGresult   *r;
		double		got;
		char		ids[16384];
		size_t		len = 0;
		int			n;
		int			i;

		params[0] = name;
		params[1] = batch_s;
		r = run(c, sql_claim, 2, params);
		got = now_ms();
		n = PQntuples(r);
		if (n == 0)
		{
			PQclear(r);
			usleep(2000);
			continue;
		}
		len += snprintf(ids + len, sizeof(ids) - len, "{");
		for (i = 0; i < n; i++)
		{
			int			burst = atoi(PQgetvalue(r, i, 1));
			double		committed;
			int			w;
			int			b;

			__atomic_load(&sh->commit_ms[burst], &committed, __ATOMIC_SEQ_CST);
			__atomic_fetch_add(&sh->claimed[burst], 1, __ATOMIC_RELAXED);
			/* a job claimed before its commit returned to the producer: 0 */
			committed = committed > 0 && got > committed ? got - committed : 0;
			w = (int) ((got - sh->start_ms) / 1000.0 / sh->window_s);
			b = (int) (committed / BUCKET_MS);
			if (w >= 0 && w < MAX_WINDOWS)
				__atomic_fetch_add(&sh->hist[w][b < BUCKETS ? b : BUCKETS - 1], 1,
								   __ATOMIC_RELAXED);
			len += snprintf(ids + len, sizeof(ids) - len, "%s%s", i ? "," : "",
							PQgetvalue(r, i, 0));
		}
		snprintf(ids + len, sizeof(ids) - len, "}");
		PQclear(r);
		params[0] = ids;
		params[1] = name;
		PQclear(run(c, sql_complete, 2, params));
	}
	PQfinish(c);
	exit(0);
}

static void
maintainer(const char *conninfo, double end_ms, int every_ms)
{
	PGconn	   *c = connect_or_die(conninfo);

	while (now_ms() < end_ms)
	{
		PQclear(run(c, sql_maintain, 0, NULL));
		usleep(every_ms * 1000);
	}
	PQfinish(c);
	exit(0);
}

int
main(int argc, char **argv)
{
	const char *conninfo;
	const char *schema;
	int			seconds, workers, batch, burst, every, maintain_ms;
	double		start, end;
	PGconn	   *p;
	int			b, i, w;
	int			nbursts;
	long		twice = 0;
	long		never = 0;
	double		last;

	if (argc != 10)
	{
		fprintf(stderr, "usage: horizon_study CONNINFO SCHEMA SECONDS WORKERS BATCH BURST EVERY_MS WINDOW_S MAINTAIN_MS\n");
		return 2;
	}
	conninfo = argv[1];
	schema = argv[2];
	seconds = atoi(argv[3]);
	workers = atoi(argv[4]);
	batch = atoi(argv[5]);
	burst = atoi(argv[6]);
	every = atoi(argv[7]);
	maintain_ms = atoi(argv[9]);
	snprintf(sql_claim, sizeof(sql_claim), "SELECT id, burst FROM %s.claim($1, $2::int)", schema);
	snprintf(sql_complete, sizeof(sql_complete), "SELECT %s.complete($1::bigint[], $2)", schema);
	snprintf(sql_enqueue, sizeof(sql_enqueue), "SELECT %s.enqueue($1::int, $2::int)", schema);
	snprintf(sql_maintain, sizeof(sql_maintain), "SELECT %s.maintain()", schema);
	sh = mmap(NULL, sizeof(Shared), PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
	{
		perror("mmap");
		return 1;
	}
	sh->window_s = atoi(argv[8]);
	p = connect_or_die(conninfo);
	start = now_ms();
	end = start + seconds * 1000.0 + 500;
	sh->start_ms = start + 500;
	PQclear(run(p, sql_maintain, 0, NULL));
	if (fork() == 0)
		maintainer(conninfo, end, maintain_ms);
	for (i = 0; i < workers; i++)
		if (fork() == 0)
			worker(conninfo, i, end, batch);
	usleep(500 * 1000);
	for (b = 0; b < MAX_BURSTS && now_ms() < end - 500; b++)
	{
		char		b_s[16], n_s[16];
		const char *params[2] = {b_s, n_s};
		double		due = start + 500 + (double) b * every;
		double		t;

		while ((t = now_ms()) < due)
			usleep((useconds_t) ((due - t) * 1000));
		snprintf(b_s, sizeof(b_s), "%d", b);
		snprintf(n_s, sizeof(n_s), "%d", burst);
		PQclear(run(p, sql_enqueue, 2, params));
		t = now_ms();
		__atomic_store(&sh->commit_ms[b], &t, __ATOMIC_SEQ_CST);
	}
	nbursts = b;
	last = now_ms();
	while (wait(NULL) > 0)
		;
	for (b = 0; b < nbursts; b++)
	{
		if (sh->claimed[b] > burst)
			twice += sh->claimed[b] - burst;
		else if (sh->commit_ms[b] < last - 10000 && sh->claimed[b] < burst)
			never += burst - sh->claimed[b];
	}
	fprintf(stderr, "%s: %d jobs enqueued, %ld claimed twice, %ld never claimed (of bursts 10 s old)\n",
			schema, nbursts * burst, twice, never);
	printf("window_end_s claimed_per_s claim_p50 claim_p99\n");
	for (w = 0; w < MAX_WINDOWS && w * sh->window_s < seconds; w++)
	{
		long		n = 0;

		for (b = 0; b < BUCKETS; b++)
			n += sh->hist[w][b];
		printf("%d %.0f %.2f %.2f\n", (w + 1) * sh->window_s,
			   (double) n / sh->window_s, hist_at(sh->hist[w], BUCKETS, BUCKET_MS, n, 0.5),
			   hist_at(sh->hist[w], BUCKETS, BUCKET_MS, n, 0.99));
	}
	PQfinish(p);
	return 0;
}
