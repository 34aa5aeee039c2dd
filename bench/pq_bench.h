/*
 * bench/pq_bench.h
 *	  What the libpq benchmark programs (wait.c, wake_latency.c,
 *	  horizon_study.c, horizon.c, runtime_cost.c) share: a monotonic
 *	  clock in ms, a connection and statements that end the run at the
 *	  first error (a benchmark with a failed step measures nothing), and
 *	  the percentile of a latency histogram of equal buckets.
 */
#ifndef QML_PQ_BENCH_H
#define QML_PQ_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "libpq-fe.h"

static inline double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* a database name, a conninfo string or a URL (libpq expands the latter) */
static inline PGconn *
connect_or_die(const char *db)
{
	PGconn	   *c = PQsetdbLogin(NULL, NULL, NULL, NULL, db, NULL, NULL);

	if (PQstatus(c) != CONNECTION_OK)
	{
		fprintf(stderr, "%s", PQerrorMessage(c));
		exit(1);
	}
	return c;
}

static inline void
exec_or_die(PGconn *c, const char *sql)
{
	PGresult   *r = PQexec(c, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
		exit(1);
	}
	PQclear(r);
}

/*
 * The p-th fraction of `n` latencies counted in `buckets` buckets of
 * `bucket_ms` each (the last: that or more), in ms.
 */
static inline double
hist_at(const int *h, int buckets, double bucket_ms, long n, double p)
{
	long		seen = 0;

	for (int b = 0; b < buckets; b++)
	{
		seen += h[b];
		if (seen > (long) (n * p))
			return (b + 1) * bucket_ms;
	}
	return buckets * bucket_ms;
}

#endif							/* QML_PQ_BENCH_H */
