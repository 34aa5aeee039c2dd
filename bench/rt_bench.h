/*
 * bench/rt_bench.h
 *	  What the benchmark programs that drive libqml's runtime (runtime.c,
 *	  stores.c, redis_bench.c) share: a monotonic clock in seconds, a no-op
 *	  handler that counts the jobs it ran (a run ends when the count reaches
 *	  its jobs), and the comparison qsort needs for medians.
 */
#ifndef QML_RT_BENCH_H
#define QML_RT_BENCH_H

#include <stdatomic.h>
#include <time.h>

#include "qml.h"

/* jobs bench_noop ran; a program resets it before each run */
static atomic_long bench_handled;

static inline double
secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline qml_outcome
bench_noop(qml_job_ctx *ctx, void *data)
{
	(void) data;
	atomic_fetch_add(&bench_handled, 1);
	return qml_success(ctx, NULL);
}

static inline int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

#endif							/* QML_RT_BENCH_H */
