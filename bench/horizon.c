/*
 * bench/horizon.c
 *	  A held xmin horizon (issue 19), one side at a time: a steady flow of
 *	  jobs for BEFORE seconds, then a session that opens a REPEATABLE READ
 *	  transaction, takes its snapshot and idles HOLD seconds, then commits,
 *	  then AFTER seconds more of the flow. Every WINDOW seconds it prints
 *	  the jobs claimed per second, the claim latency p50/p99, the size of
 *	  the side's tables and their indexes, their dead tuples, the age of the
 *	  oldest snapshot in the database and the backlog; at the end, a verdict
 *	  on each target of the issue with its ratio.
 *
 *	  --side qml: one producer thread commits BATCH jobs at a time through
 *	  qml_enqueue_batch at RATE jobs/s, on queue "horizon" whose finished
 *	  jobs are kept RETENTION seconds (pruned by the scheduler); libqml's
 *	  runtime (qml_server, WORKERS workers, no-op handlers) is the consumer.
 *	  The size is every table of schema qml with its indexes and TOAST, so it
 *	  counts the history however the schema keeps it.
 *	  --side raw: the raw baseline of bench/sql/schema.sql (table jobs): the
 *	  producer commits the same batches with one INSERT ... SELECT, and
 *	  WORKERS threads each loop on a SKIP LOCKED UPDATE claiming up to
 *	  RAW_BATCH jobs, then one DELETE of them; a claim that comes back empty
 *	  sleeps 1 ms (the raw loop has no wakeups).
 *
 * Claim latency: from the return of the commit of the job's batch to the
 * producer, to the handler starting (qml) or the claim returning (raw);
 * the job carries its batch number, the batches' commit times live in
 * memory (one process, one monotonic clock). A job whose handler started
 * before its commit returned to the producer counts 0.
 *
 *	  bench-horizon CONNINFO --side qml|raw [--rate N] [--batch N]
 *		[--before S] [--hold S] [--after S] [--window S] [--workers N]
 *		[--raw-batch N] [--retention S] [--tsv FILE]
 *
 * --tsv appends one line per window and the summary, tab-separated, for
 * bench/horizon.sh and bench/run.sh. Expects a database of its own: the
 * size counts everything in the side's relations.
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qml.h"
#include "pq_bench.h"

#define MAX_WINDOWS 512
/* latency buckets: 0.05 ms wide below 10 ms, then 1% wider each (to hours) */
#define FINE_MS 0.05
#define FINE_BUCKETS 200
#define BUCKETS (FINE_BUCKETS + 1400)

typedef struct Window
{
	long		claimed;
	long		enqueued;
	int			hist[BUCKETS];
	/* sampled at the window's end */
	double		table_bytes;
	double		index_bytes;
	double		dead;
	double		xmin_age;
	double		backlog;
	double		p50;
	double		p99;
} Window;

static const char *conninfo;
static bool raw;
static int	rate = 10000;
static int	batch = 100;
static int	before = 180;
static int	hold = 600;
static int	after = 300;
static int	window_s = 30;
static int	workers = 8;
static int	raw_batch = 50;
static int	retention = 60;
static const char *tsv_path;

static Window win[MAX_WINDOWS];
static int	nwin;
static double t0;				/* the flow's start, ms */
static double *commit_ms;		/* when each batch's commit returned */
static long nbatches;
static volatile bool stopping;

static int
bucket_of(double ms)
{
	int			b;

	if (ms < FINE_BUCKETS * FINE_MS)
		return (int) (ms / FINE_MS);
	b = FINE_BUCKETS + (int) (log(ms / (FINE_BUCKETS * FINE_MS)) / log(1.01));
	return b < BUCKETS ? b : BUCKETS - 1;
}

/* a bucket's upper edge, ms */
static double
bucket_ms(int b)
{
	if (b < FINE_BUCKETS)
		return (b + 1) * FINE_MS;
	return FINE_BUCKETS * FINE_MS * pow(1.01, b - FINE_BUCKETS + 1);
}

/* the p-th fraction of the claims of windows [from, to) */
static double
percentile(int from, int to, double p)
{
	long		n = 0,
				seen = 0;

	for (int w = from; w < to; w++)
		n += win[w].claimed;
	if (n == 0)
		return 0;
	for (int b = 0; b < BUCKETS; b++)
	{
		for (int w = from; w < to; w++)
			seen += win[w].hist[b];
		if (seen > (long) (n * p))
			return bucket_ms(b);
	}
	return bucket_ms(BUCKETS - 1);
}

static int
window_of(double at)
{
	int			w = (int) ((at - t0) / 1000.0 / window_s);

	return w >= 0 && w < nwin ? w : -1;
}

/* a job of batch `b` is in a worker's hand at `at` */
static void
claimed(double at, long b)
{
	double		c = 0;
	int			w = window_of(at);

	if (w < 0)
		return;
	if (b >= 0 && b < nbatches)
		__atomic_load(&commit_ms[b], &c, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&win[w].claimed, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&win[w].hist[bucket_of(c > 0 && at > c ? at - c : 0)], 1,
					   __ATOMIC_RELAXED);
}

static PGresult *
exec_params(PGconn *c, const char *sql, int n, const char *const *params)
{
	PGresult   *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "bench-horizon: %s", PQerrorMessage(c));
		exit(1);
	}
	return r;
}

/* ---- qml: libqml's runtime ---- */

static qml_client *client;

static qml_outcome
on_job(qml_job_ctx *ctx, void *data)
{
	double		at = now_ms();

	(void) data;
	claimed(at, strtol(qml_ctx_arguments(ctx) + 1, NULL, 10));
	return qml_success(ctx, NULL);
}

static void
qml_enqueue_one(long b)
{
	static qml_job_spec *specs;
	static char args[32];

	if (!specs)
	{
		specs = calloc((size_t) batch, sizeof(qml_job_spec));
		for (int i = 0; i < batch; i++)
		{
			specs[i].method = "horizon";
			specs[i].arguments = args;
			specs[i].options.queue = "horizon";
		}
	}
	snprintf(args, sizeof(args), "[%ld]", b);
	if (qml_enqueue_batch(client, specs, (size_t) batch, NULL) != QML_OK)
	{
		fprintf(stderr, "bench-horizon: enqueue: %s\n", qml_errmsg());
		exit(1);
	}
}

/* ---- raw: the SKIP LOCKED baseline ---- */

static PGconn *producer_conn;

static void
raw_enqueue_one(long b)
{
	char		bs[24],
				ns[16];
	const char *p[2] = {bs, ns};

	snprintf(bs, sizeof(bs), "%ld", b);
	snprintf(ns, sizeof(ns), "%d", batch);
	PQclear(exec_params(producer_conn,
						"INSERT INTO jobs (payload) SELECT jsonb_build_array($1::int)"
						" FROM generate_series(1, $2::int)", 2, p));
}

static void *
raw_worker(void *arg)
{
	PGconn	   *c = connect_or_die(conninfo);
	char		name[16],
				lim[16];
	const char *p[2] = {lim, name};
	char	   *ids = malloc((size_t) raw_batch * 24 + 4);

	snprintf(name, sizeof(name), "w%ld", (long) (intptr_t) arg);
	snprintf(lim, sizeof(lim), "%d", raw_batch);
	while (!stopping)
	{
		/* the claim of bench/sql/raw_claim_delete.sql, one transaction */
		PGresult   *r = exec_params(c,
									"WITH c AS (SELECT id FROM jobs"
									" WHERE state = 0 AND queue = 'default' AND run_at <= now()"
									" ORDER BY priority, run_at FOR UPDATE SKIP LOCKED LIMIT $1::int),"
									" u AS (UPDATE jobs j SET state = 1, locked_by = $2, locked_at = now()"
									" FROM c WHERE j.id = c.id RETURNING j.id, j.payload)"
									" SELECT id, payload->>0 FROM u", 2, p);
		double		at = now_ms();
		int			n = PQntuples(r);
		size_t		len = 0;
		const char *dp[1] = {ids};

		if (n == 0)
		{
			PQclear(r);
			usleep(1000);
			continue;
		}
		len += sprintf(ids, "{");
		for (int i = 0; i < n; i++)
		{
			claimed(at, atol(PQgetvalue(r, i, 1)));
			len += sprintf(ids + len, "%s%s", i ? "," : "", PQgetvalue(r, i, 0));
		}
		sprintf(ids + len, "}");
		PQclear(r);
		PQclear(exec_params(c, "DELETE FROM jobs WHERE id = ANY ($1::bigint[])", 1, dp));
	}
	free(ids);
	PQfinish(c);
	return NULL;
}

/* ---- the producer: batches at a steady rate ---- */

static void *
producer(void *arg)
{
	double		end = t0 + nwin * window_s * 1000.0;

	(void) arg;
	for (long b = 0; b < nbatches; b++)
	{
		double		due = t0 + b * (double) batch * 1000.0 / rate;
		double		t;
		int			w;

		if (due >= end || stopping)
			break;
		while ((t = now_ms()) < due)
			usleep((useconds_t) ((due - t) * 1000));
		if (raw)
			raw_enqueue_one(b);
		else
			qml_enqueue_one(b);
		t = now_ms();
		__atomic_store(&commit_ms[b], &t, __ATOMIC_SEQ_CST);
		if ((w = window_of(t)) >= 0)
			__atomic_fetch_add(&win[w].enqueued, batch, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* ---- sampling and the report ---- */

static const char *
phase_of(int w)
{
	int			end = (w + 1) * window_s;

	return end <= before ? "before" : end <= before + hold ? "hold" : "after";
}

static void
sample(PGconn *c, int w)
{
	/* all of schema qml (however it keeps the history), or the raw table */
	const char *p[2] = {raw ? "public" : "qml", raw ? "jobs" : NULL};
	PGresult   *r = exec_params(c,
								"SELECT coalesce(sum(pg_table_size(c.oid)), 0),"
								" coalesce(sum(pg_indexes_size(c.oid)), 0),"
								" (SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables s"
								"   WHERE s.schemaname = $1 AND ($2::text IS NULL OR s.relname = $2)),"
								" (SELECT coalesce(max(age(backend_xmin)), 0) FROM pg_stat_activity"
								"   WHERE datname = current_database())"
								" FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
								" WHERE n.nspname = $1 AND ($2::text IS NULL OR c.relname = $2)"
								" AND c.relkind IN ('r', 'm')", 2, p);
	long		enq = 0,
				got = 0;

	win[w].table_bytes = atof(PQgetvalue(r, 0, 0));
	win[w].index_bytes = atof(PQgetvalue(r, 0, 1));
	win[w].dead = atof(PQgetvalue(r, 0, 2));
	win[w].xmin_age = atof(PQgetvalue(r, 0, 3));
	PQclear(r);
	for (int i = 0; i <= w; i++)
	{
		enq += __atomic_load_n(&win[i].enqueued, __ATOMIC_RELAXED);
		got += __atomic_load_n(&win[i].claimed, __ATOMIC_RELAXED);
	}
	win[w].backlog = enq - got;
	win[w].p50 = percentile(w, w + 1, 0.5);
	win[w].p99 = percentile(w, w + 1, 0.99);
}

static void
print_window(FILE *tsv, int w)
{
	const char *side = raw ? "raw" : "qml";
	Window	   *x = &win[w];

	printf("%-4s %8d  %-6s %9.0f %9.0f %9.2f %9.2f %9.1f %9.1f %9.1f %11.0f %9.0f %9.0f\n",
		   side, (w + 1) * window_s, phase_of(w), (double) x->claimed / window_s,
		   (double) x->enqueued / window_s, x->p50, x->p99, x->table_bytes / 1048576,
		   x->index_bytes / 1048576, (x->table_bytes + x->index_bytes) / 1048576,
		   x->dead, x->xmin_age, x->backlog);
	fflush(stdout);
	if (tsv)
	{
		fprintf(tsv, "window\t%s\t%d\t%s\t%.1f\t%.1f\t%.3f\t%.3f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\n",
				side, (w + 1) * window_s, phase_of(w), (double) x->claimed / window_s,
				(double) x->enqueued / window_s, x->p50, x->p99, x->table_bytes,
				x->index_bytes, x->dead, x->xmin_age, x->backlog);
		fflush(tsv);
	}
}

static double
mean_rate(int from, int to)
{
	long		n = 0;

	for (int w = from; w < to; w++)
		n += win[w].claimed;
	return to > from ? (double) n / ((to - from) * window_s) : 0;
}

static double
worst_p99(int from, int to)
{
	double		m = 0;

	for (int w = from; w < to; w++)
		m = win[w].p99 > m ? win[w].p99 : m;
	return m;
}

static double
size_at(int w)
{
	return (win[w].table_bytes + win[w].index_bytes) / 1048576;
}

static const char *
verdict(bool met)
{
	return raw ? "(the baseline: no target)" : met ? "met" : "missed";
}

static void
summary(FILE *tsv)
{
	const char *side = raw ? "raw" : "qml";

	/* before: the first window warms up, unless it is the only one */
	int			b0 = before / window_s > 1 ? 1 : 0,
				b1 = before / window_s,
				h1 = (before + hold) / window_s;
	double		rb = mean_rate(b0, b1),
				rh = mean_rate(b1, h1),
				ra = mean_rate(h1, nwin),
				pb = percentile(b0, b1, 0.99),
				ph = percentile(b1, h1, 0.99),
				p50b = percentile(b0, b1, 0.5),
				p50h = percentile(b1, h1, 0.5),
				s0 = size_at(b1 - 1),
				s1 = size_at(h1 - 1),
				s2 = size_at(nwin - 1),
				peak = 0;
	long		enq = 0,
				got = 0;

	for (int w = 0; w < nwin; w++)
	{
		peak = size_at(w) > peak ? size_at(w) : peak;
		enq += win[w].enqueued;
		got += win[w].claimed;
	}
	printf("-- %s: summary (before: windows %d to %d%s; hold: the hold's %d windows)\n",
		   side, b0 + 1, b1, b0 ? ", the first warms up" : "", h1 - b1);
	printf("%s: claimed per second: before the hold %.0f, during it %.0f, after it %.0f;"
		   " ratio during/before %.2f, target >= 0.9: %s\n",
		   side, rb, rh, ra, rb > 0 ? rh / rb : 0, verdict(rb > 0 && rh / rb >= 0.9));
	printf("%s: claim latency p99 over all claims of the phase: before %.2f, during %.2f"
		   " (p50 %.2f -> %.2f, worst window's p99 %.2f -> %.2f);"
		   " ratio %.2f, target <= 2: %s\n",
		   side, pb, ph, p50b, p50h, worst_p99(b0, b1), worst_p99(b1, h1),
		   pb > 0 ? ph / pb : 0, verdict(pb > 0 && ph / pb <= 2));
	printf("%s: tables and indexes, MB: %.1f before the hold, %.1f at its end, peak %.1f,"
		   " %.1f %d s after it; ratio %.2f, target <= 1.2: %s\n",
		   side, s0, s1, peak, s2, after, s0 > 0 ? s2 / s0 : 0, verdict(s0 > 0 && s2 / s0 <= 1.2));
	printf("%s: %ld jobs enqueued, %ld claimed (a backlog at the end is the flow still"
		   " under way, or a consumer that fell behind)\n", side, enq, got);
	if (tsv)
	{
		const char *k[] = {"rate_before", "rate_hold", "rate_after", "p99_before",
			"p99_hold", "p50_before", "p50_hold", "worst_p99_before", "worst_p99_hold",
			"size_before", "size_hold_end", "size_peak", "size_after", "enqueued", "claimed",
		"offered", "before_s", "hold_s", "after_s", "window_s", "retention_s"};
		double		v[] = {rb, rh, ra, pb, ph, p50b, p50h, worst_p99(b0, b1),
		worst_p99(b1, h1), s0, s1, peak, s2, enq, got, rate, before, hold, after,
		window_s, raw ? 0 : retention};

		for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
			fprintf(tsv, "summary\t%s\t%s\t%.3f\n", side, k[i], v[i]);
	}
}

static int
arg_int(int argc, char **argv, int *i, int lo, int hi)
{
	long		v;
	char	   *end;

	if (*i + 1 >= argc)
		return -1;
	v = strtol(argv[++*i], &end, 10);
	if (*end || v < lo || v > hi)
	{
		fprintf(stderr, "bench-horizon: %s must be an integer from %d to %d\n",
				argv[*i - 1], lo, hi);
		exit(2);
	}
	return (int) v;
}

static void
parse_args(int argc, char **argv)
{
	const char *side = NULL;

	if (argc < 2)
		goto usage;
	conninfo = argv[1];
	for (int i = 2; i < argc; i++)
	{
		const char *a = argv[i];

		if (strcmp(a, "--side") == 0 && i + 1 < argc)
			side = argv[++i];
		else if (strcmp(a, "--tsv") == 0 && i + 1 < argc)
			tsv_path = argv[++i];
		else if (strcmp(a, "--rate") == 0)
			rate = arg_int(argc, argv, &i, 1, 1000000);
		else if (strcmp(a, "--batch") == 0)
			batch = arg_int(argc, argv, &i, 1, 1000);
		else if (strcmp(a, "--before") == 0)
			before = arg_int(argc, argv, &i, 1, 86400);
		else if (strcmp(a, "--hold") == 0)
			hold = arg_int(argc, argv, &i, 1, 86400);
		else if (strcmp(a, "--after") == 0)
			after = arg_int(argc, argv, &i, 1, 86400);
		else if (strcmp(a, "--window") == 0)
			window_s = arg_int(argc, argv, &i, 1, 3600);
		else if (strcmp(a, "--workers") == 0)
			workers = arg_int(argc, argv, &i, 1, 256);
		else if (strcmp(a, "--raw-batch") == 0)
			raw_batch = arg_int(argc, argv, &i, 1, 1000);
		else if (strcmp(a, "--retention") == 0)
			retention = arg_int(argc, argv, &i, 1, 86400);
		else
			goto usage;
	}
	if (side == NULL || (strcmp(side, "qml") != 0 && strcmp(side, "raw") != 0))
		goto usage;
	raw = strcmp(side, "raw") == 0;
	if (before % window_s || hold % window_s || after % window_s)
	{
		fprintf(stderr, "bench-horizon: --before, --hold and --after must be multiples of --window\n");
		exit(2);
	}
	nwin = (before + hold + after) / window_s;
	if (nwin > MAX_WINDOWS)
	{
		fprintf(stderr, "bench-horizon: at most %d windows\n", MAX_WINDOWS);
		exit(2);
	}
	return;
usage:
	fprintf(stderr, "usage: bench-horizon CONNINFO --side qml|raw [--rate N] [--batch N]\n"
			"         [--before S] [--hold S] [--after S] [--window S] [--workers N]\n"
			"         [--raw-batch N] [--retention S] [--tsv FILE]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	PGconn	   *admin,
			   *holder;
	pthread_t	prod;
	pthread_t  *rw = NULL;
	qml_server *server = NULL;
	qml_registry *reg = NULL;
	qml_server_config *scfg = NULL;
	FILE	   *tsv = NULL;

	parse_args(argc, argv);
	nbatches = (long) ((double) rate * nwin * window_s / batch) + 2;
	commit_ms = calloc((size_t) nbatches, sizeof(double));
	if (tsv_path && !(tsv = fopen(tsv_path, "a")))
	{
		perror(tsv_path);
		return 1;
	}
	admin = connect_or_die(conninfo);
	holder = connect_or_die(conninfo);
	if (raw)
	{
		producer_conn = connect_or_die(conninfo);
		exec_or_die(admin, "TRUNCATE jobs");
		exec_or_die(admin, "VACUUM ANALYZE jobs");
	}
	else
	{
		qml_config *cfg = qml_config_new();
		char		q[160];

		qml_config_set_database_url(cfg, conninfo);
		qml_config_set_pool_size(cfg, 1, 4);
		if (qml_client_open(cfg, &client) != QML_OK)
		{
			fprintf(stderr, "bench-horizon: %s\n", qml_errmsg());
			return 1;
		}
		qml_config_free(cfg);
		snprintf(q, sizeof(q), "SELECT qml.configure_queue('horizon',"
				 " retention => make_interval(secs => %d))", retention);
		exec_or_die(admin, q);
		reg = qml_registry_new();
		qml_registry_add(reg, "horizon", on_job, NULL);
		scfg = qml_server_config_new("bench-horizon");
		qml_server_config_set_workers(scfg, workers);
		qml_server_config_set_queues_csv(scfg, "horizon");
		qml_server_new(client, reg, scfg, &server);
		if (qml_server_start(server) != QML_OK)
		{
			fprintf(stderr, "bench-horizon: %s\n", qml_errmsg());
			return 1;
		}
	}
	exec_or_die(admin, "CHECKPOINT");

	printf("== %s: %d jobs/s offered in %d-job commits; %d %s; a snapshot held from second %d"
		   " to second %d of %d; every %d s:\n", raw ? "raw" : "qml", rate, batch, workers,
		   raw ? "threads claiming with SKIP LOCKED then DELETE" :
		   "workers of libqml's runtime, finished jobs kept for the retention",
		   before, before + hold, before + hold + after, window_s);
	if (!raw)
		printf("(retention %d s, pruned by the scheduler)\n", retention);
	printf("%-4s %8s  %-6s %9s %9s %9s %9s %9s %9s %9s %11s %9s %9s\n", "side", "end_s",
		   "phase", "claimed/s", "enq/s", "p50_ms", "p99_ms", "table_MB", "index_MB",
		   "total_MB", "dead_tuples", "xmin_age", "backlog");
	fflush(stdout);
	t0 = now_ms() + 200;
	if (raw)
	{
		rw = calloc((size_t) workers, sizeof(pthread_t));
		for (long i = 0; i < workers; i++)
			pthread_create(&rw[i], NULL, raw_worker, (void *) (intptr_t) i);
	}
	pthread_create(&prod, NULL, producer, NULL);
	for (int w = 0; w < nwin; w++)
	{
		double		due = t0 + (w + 1) * window_s * 1000.0,
					t;

		while ((t = now_ms()) < due)
			usleep((useconds_t) ((due - t) * 1000 < 100000 ? (due - t) * 1000 : 100000));
		sample(admin, w);
		print_window(tsv, w);
		/* the holder: idle in a transaction with a snapshot, no statement running */
		if ((w + 1) * window_s == before)
		{
			exec_or_die(holder, "BEGIN ISOLATION LEVEL REPEATABLE READ");
			exec_or_die(holder, "SELECT pg_current_snapshot()");
		}
		else if ((w + 1) * window_s == before + hold)
			exec_or_die(holder, "COMMIT");
	}
	stopping = true;
	pthread_join(prod, NULL);
	if (raw)
		for (int i = 0; i < workers; i++)
			pthread_join(rw[i], NULL);
	else
	{
		qml_server_stop(server);
		qml_server_free(server);
		qml_server_config_free(scfg);
		qml_registry_free(reg);
		qml_client_close(client);
	}
	summary(tsv);
	if (tsv)
		fclose(tsv);
	PQfinish(holder);
	PQfinish(admin);
	if (producer_conn)
		PQfinish(producer_conn);
	free(rw);
	free(commit_ms);
	return 0;
}
