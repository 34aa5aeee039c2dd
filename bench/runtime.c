/*
 * bench/runtime.c
 *	  The libqml worker runtime end to end: jobs/s with no-op handlers at
 *	  1, 4, 8 and 16 worker threads (--threads), next to a raw SQL baseline
 *	  measured in the same run on the same cluster (that many threads, each
 *	  claiming one row of a minimal table with FOR UPDATE SKIP LOCKED and
 *	  deleting it, one statement per job), and the latency from enqueue to
 *	  handler start on an idle server. Prints numbers only.
 *
 *	  make bench-runtime [BENCH_ARGS="--jobs N --reps N --latency N --db NAME
 *	                      --threads 10,24 --fetch-batch N --prefetch N
 *	                      --flush-max N --no-raw -v"]
 *
 * Each figure is the median of --reps runs (default 3), raw and qml runs
 * alternating, so a neighbour's load on the machine hits both alike. The
 * clock runs from the server's start (the jobs are enqueued and the table
 * vacuumed before) to the return of its stop, which flushes the last
 * completions: every job is succeeded in the database by then. --latency 0
 * skips the latency pass, --no-raw the baseline, -v prints each run and
 * the runtime's counters on stderr.
 * Reaches the server through the PG* environment; drops and creates its
 * own database (default qml_bench) and the extension in it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "qml.h"
#include "rt_bench.h"

static const char *dbname = "qml_bench";
static int	njobs = 10000;
static int	nlatency = 300;
static int	reps = 3;
static int	fetch_batch = 0;	/* 0: the runtime's default */
static int	prefetch = -1;		/* -1: the runtime's default */
static int	flush_max = 0;		/* 0: the runtime's default */
static bool no_raw = false;
static bool verbose = false;

/* CPU seconds this process used (all its threads) */
static double
cpu_self(void)
{
	struct rusage u;

	getrusage(RUSAGE_SELF, &u);
	return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 +
		u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

static int	postmaster;			/* its pid when the server runs on this host */

/* utime + stime (or cutime + cstime with `children`) of a process, in ticks */
static long long
proc_ticks(int pid, bool children)
{
	char		path[64],
				buf[1024],
			   *p;
	long long	v[4];
	FILE	   *f;
	size_t		n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* fields 14-17 follow the command's closing parenthesis and 11 fields */
	if ((p = strrchr(buf, ')')) == NULL ||
		sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld %lld %lld",
			   &v[0], &v[1], &v[2], &v[3]) != 4)
		return 0;
	return children ? v[2] + v[3] : v[0] + v[1];
}

/* CPU seconds of one process so far, to the nanosecond (schedstat) */
static double
proc_cpu(int pid)
{
	char		path[64];
	unsigned long long ns = 0;
	FILE	   *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ns / 1e9;
}

/*
 * CPU seconds of the PostgreSQL server: its exited processes (reaped by the
 * postmaster) and the live ones, as bench/profile.sh counts them; 0 when the
 * server is not on this host.
 */
static double
cpu_server(void)
{
	long long	t;
	char		path[64],
				buf[8192];
	FILE	   *f;

	if (postmaster <= 0)
		return 0;
	t = proc_ticks(postmaster, true) + proc_ticks(postmaster, false);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", postmaster, postmaster);
	if ((f = fopen(path, "r")) != NULL)
	{
		size_t		n = fread(buf, 1, sizeof(buf) - 1, f);
		char	   *p = buf,
				   *end;

		fclose(f);
		buf[n] = '\0';
		for (long pid; (pid = strtol(p, &end, 10)) > 0; p = end)
			t += proc_ticks((int) pid, false);
	}
	return (double) t / (double) sysconf(_SC_CLK_TCK);
}

/* the postmaster's pid: the parent of the admin session's backend */
static void
find_postmaster(PGconn *admin)
{
	char		path[64],
				buf[1024],
			   *p;
	FILE	   *f;
	size_t		n;

	snprintf(path, sizeof(path), "/proc/%d/stat", PQbackendPID(admin));
	if ((f = fopen(path, "r")) == NULL)
		return;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) != NULL)
		sscanf(p + 2, "%*c %d", &postmaster);
}

static void
sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};

	nanosleep(&ts, NULL);
}

static void
sleep_ms(int ms)
{
	sleep_us(ms * 1000L);
}

static PGconn *
connect_db(const char *db)
{
	const char *kw[] = {"dbname", NULL};
	const char *val[] = {db, NULL};
	PGconn	   *c = PQconnectdbParams(kw, val, 0);

	if (PQstatus(c) != CONNECTION_OK)
	{
		fprintf(stderr, "bench: cannot connect to %s: %s", db, PQerrorMessage(c));
		exit(1);
	}
	return c;
}

static void
sql(PGconn *c, const char *q)
{
	PGresult   *r = PQexec(c, q);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "bench: %s: %s", q, PQerrorMessage(c));
		exit(1);
	}
	PQclear(r);
}

/* ---- raw SQL baseline ---- */

typedef struct raw_thread
{
	pthread_t	t;
	pthread_barrier_t *go;
	int			done;
} raw_thread;

static void *
raw_worker(void *arg)
{
	raw_thread *w = arg;
	PGconn	   *c = connect_db(dbname);
	PGresult   *r;

	r = PQprepare(c, "claim",
				  "DELETE FROM bench_raw WHERE id = (SELECT id FROM bench_raw"
				  " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, payload", 0, NULL);
	PQclear(r);
	pthread_barrier_wait(w->go);
	for (;;)
	{
		int			n;

		r = PQexecPrepared(c, "claim", 0, NULL, NULL, NULL, 0);
		n = PQresultStatus(r) == PGRES_TUPLES_OK ? PQntuples(r) : -1;
		PQclear(r);
		if (n <= 0)
		{
			/* nothing claimable: done, unless rows are only locked by others */
			r = PQexec(c, "SELECT EXISTS (SELECT 1 FROM bench_raw)");
			n = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
			PQclear(r);
			if (!n)
				break;
			continue;
		}
		w->done++;
	}
	PQfinish(c);
	return NULL;
}

static double
run_raw(PGconn *admin, int threads)
{
	raw_thread *w = calloc((size_t) threads, sizeof(*w));
	pthread_barrier_t go;
	char		q[256];
	double		t0,
				t1;
	int			total = 0;

	sql(admin, "TRUNCATE bench_raw");
	snprintf(q, sizeof(q), "INSERT INTO bench_raw (payload) SELECT jsonb_build_array(g)"
			 " FROM generate_series(1, %d) g", njobs);
	sql(admin, q);
	sql(admin, "VACUUM ANALYZE bench_raw");
	pthread_barrier_init(&go, NULL, (unsigned) threads + 1);
	for (int i = 0; i < threads; i++)
	{
		w[i].go = &go;
		pthread_create(&w[i].t, NULL, raw_worker, &w[i]);
	}
	pthread_barrier_wait(&go);
	t0 = secs();
	for (int i = 0; i < threads; i++)
	{
		pthread_join(w[i].t, NULL);
		total += w[i].done;
	}
	t1 = secs();
	pthread_barrier_destroy(&go);
	free(w);
	if (total != njobs)
		fprintf(stderr, "bench: raw baseline handled %d of %d\n", total, njobs);
	return total / (t1 - t0);
}

/* ---- the runtime ---- */

static double
run_qml(PGconn *admin, qml_client *client, qml_registry *reg, int threads)
{
	qml_server_config *cfg = qml_server_config_new("bench");
	qml_server *s = NULL;
	char		q[512];
	double		t0,
				t1,
				tfirst,
				tlast,
				c0,
				s0,
				clast,
				slast;
	int			fetch_pid = 0,
				flush_pid = 0;
	int			looks = 0;
	double		fetch_cpu = 0,
				flush_cpu = 0;

	sql(admin, "TRUNCATE qml.jobs, qml.job_events_1_1");
	snprintf(q, sizeof(q),
			 "SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object("
			 "'method', 'noop', 'arguments', jsonb_build_array(g))) FROM generate_series(1, %d) g))",
			 njobs);
	sql(admin, q);
	sql(admin, "VACUUM ANALYZE qml.jobs");
	qml_server_config_set_workers(cfg, threads);
	if (fetch_batch > 0)
		qml_server_config_set_fetch_batch(cfg, fetch_batch);
	if (prefetch >= 0)
		qml_server_config_set_prefetch(cfg, prefetch);
	if (flush_max > 0)
		qml_server_config_set_flush(cfg, 5, flush_max);
	qml_server_new(client, reg, cfg, &s);
	atomic_store(&bench_handled, 0);
	c0 = cpu_self();
	s0 = cpu_server();
	t0 = secs();
	if (qml_server_start(s) != QML_OK)
	{
		fprintf(stderr, "bench: %s\n", qml_errmsg());
		exit(1);
	}
	while (atomic_load(&bench_handled) == 0)
		sleep_us(100);
	tfirst = secs();
	while (atomic_load(&bench_handled) < njobs)
	{
		/* the runtime's two sessions, once both are open: how busy each is */
		if (verbose && flush_pid == 0 && looks++ < 50)
		{
			PGresult   *r = PQexec(admin, "SELECT max(pid) FILTER (WHERE application_name LIKE 'qml worker%'),"
									 " max(pid) FILTER (WHERE application_name LIKE 'qml flusher%')"
									 " FROM pg_stat_activity");

			fetch_pid = atoi(PQgetvalue(r, 0, 0));
			flush_pid = atoi(PQgetvalue(r, 0, 1));
			PQclear(r);
		}
		sleep_ms(1);
	}
	tlast = secs();
	clast = cpu_self();
	slast = cpu_server();
	fetch_cpu = fetch_pid ? proc_cpu(fetch_pid) : 0;
	flush_cpu = flush_pid ? proc_cpu(flush_pid) : 0;
	/* stop flushes the last completions: the jobs are succeeded in the database */
	qml_server_stop(s);
	t1 = secs();
	if (verbose)
	{
		qml_server_counters k;
		double		c1 = cpu_self(),
					s1 = cpu_server();

		qml_server_get_counters(s, &k);
		fprintf(stderr, "  first job handled at %.1f ms, last at %.1f ms, stopped at %.1f ms\n",
				(tfirst - t0) * 1e3, (tlast - t0) * 1e3, (t1 - t0) * 1e3);
		fprintf(stderr, "  %d threads: %.0f jobs/s, %llu fetches (%.1f jobs each), %llu flushes (%.1f each)\n",
				threads, njobs / (t1 - t0), (unsigned long long) k.fetch_calls,
				k.fetch_calls ? (double) k.fetched / k.fetch_calls : 0.0,
				(unsigned long long) k.flushes,
				k.flushes ? (double) k.succeeded / k.flushes : 0.0);
		fprintf(stderr, "  CPU per job: this process %.1f us, the server %.1f us;"
				" cores busy until the last job: %.2f + %.2f, after it: %.2f + %.2f\n",
				(c1 - c0) * 1e6 / njobs, (s1 - s0) * 1e6 / njobs,
				(clast - c0) / (tlast - t0), (slast - s0) / (tlast - t0),
				(c1 - clast) / (t1 - tlast), (s1 - slast) / (t1 - tlast));
		fprintf(stderr, "  until the last job: the fetch backend %.1f us per job (%.2f cores),"
				" the flush backend %.1f us (%.2f cores)\n",
				fetch_cpu * 1e6 / njobs, fetch_cpu / (tlast - t0),
				flush_cpu * 1e6 / njobs, flush_cpu / (tlast - t0));
	}
	qml_server_free(s);
	qml_server_config_free(cfg);
	snprintf(q, sizeof(q), "SELECT count(*) = %d FROM qml.jobs WHERE state = 'succeeded'", njobs);
	{
		PGresult   *r = PQexec(admin, q);

		if (strcmp(PQgetvalue(r, 0, 0), "t") != 0)
			fprintf(stderr, "bench: not every job succeeded\n");
		PQclear(r);
	}
	return njobs / (t1 - t0);
}

/* ---- latency ---- */

static int64_t *lat;
static atomic_int nlat;

static qml_outcome
stamp(qml_job_ctx *ctx, void *data)
{
	const char *a = qml_ctx_arguments(ctx);
	int			i = atomic_fetch_add(&nlat, 1);

	(void) data;
	if (i < nlatency)
		lat[i] = qml_now() - strtoll(a + 1, NULL, 10);
	return qml_success(ctx, NULL);
}

static atomic_bool warmed;

/* the uncounted first job's handler */
static qml_outcome
warm_up(qml_job_ctx *ctx, void *data)
{
	(void) data;
	atomic_store(&warmed, true);
	return qml_success(ctx, NULL);
}

static int
cmp64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a,
				y = *(const int64_t *) b;

	return (x > y) - (x < y);
}

static void
run_latency(PGconn *admin, qml_client *client)
{
	qml_registry *reg = qml_registry_new();
	qml_server_config *cfg = qml_server_config_new("bench-latency");
	qml_server *s = NULL;
	int			n;

	sql(admin, "TRUNCATE qml.jobs, qml.job_events_1_1");
	lat = calloc((size_t) nlatency, sizeof(int64_t));
	qml_registry_add(reg, "stamp", stamp, NULL);
	qml_registry_add(reg, "warm_up", warm_up, NULL);
	qml_server_config_set_workers(cfg, 4);
	qml_server_new(client, reg, cfg, &s);
	qml_server_start(s);
	sleep_ms(300);
	/*
	 * One job first, not counted: the producer's first enqueue opens its
	 * connection (5 ms here), which is no part of waking a worker.
	 */
	qml_enqueue(client, "warm_up", "[]", NULL, NULL);
	for (int w = 0; w < 2000 && !atomic_load(&warmed); w++)
		sleep_ms(1);
	sleep_ms(2);
	for (int i = 0; i < nlatency; i++)
	{
		char		args[32];

		/* the clock starts before the enqueue's round trip and commit */
		snprintf(args, sizeof(args), "[%lld]", (long long) qml_now());
		qml_enqueue(client, "stamp", args, NULL, NULL);
		for (int w = 0; w < 2000 && atomic_load(&nlat) <= i; w++)
			sleep_ms(1);
		sleep_ms(2);
	}
	qml_server_stop(s);
	n = atomic_load(&nlat) < nlatency ? atomic_load(&nlat) : nlatency;
	qsort(lat, (size_t) n, sizeof(int64_t), cmp64);
	if (n > 0)
		printf("latency enqueue -> handler start (idle server, 4 workers, %d jobs one by one):"
			   " p50 %.2f ms  p99 %.2f ms  max %.2f ms\n", n, lat[n / 2] / 1000.0,
			   lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1000.0, lat[n - 1] / 1000.0);
	free(lat);
	qml_server_free(s);
	qml_server_config_free(cfg);
	qml_registry_free(reg);
}

/* "10,24" (or "10 24") into counts of 1..1000; false when malformed */
static bool
parse_threads(const char *list, int *out, int max, int *n)
{
	const char *p = list;

	*n = 0;
	while (*p)
	{
		char	   *end;
		long		v;

		while (*p == ',' || *p == ' ')
			p++;
		if (*p == '\0')
			break;
		v = strtol(p, &end, 10);
		if (end == p || v < 1 || v > 1000 || *n == max)
			return false;
		out[(*n)++] = (int) v;
		p = end;
		if (*p != '\0' && *p != ',' && *p != ' ')
			return false;
	}
	return *n > 0;
}

int
main(int argc, char **argv)
{
	int			threads[32] = {1, 4, 8, 16};
	int			nthreads = 4;
	PGconn	   *maint,
			   *admin;
	qml_config *cfg;
	qml_client *client = NULL;
	qml_registry *reg;
	char		q[256];
	PGresult   *r;

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc)
			njobs = atoi(argv[++i]);
		else if (strcmp(argv[i], "--latency") == 0 && i + 1 < argc)
			nlatency = atoi(argv[++i]);
		else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc)
			dbname = argv[++i];
		else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc &&
				 parse_threads(argv[i + 1], threads, 32, &nthreads))
			i++;
		else if (strcmp(argv[i], "--fetch-batch") == 0 && i + 1 < argc)
			fetch_batch = atoi(argv[++i]);
		else if (strcmp(argv[i], "--prefetch") == 0 && i + 1 < argc)
			prefetch = atoi(argv[++i]);
		else if (strcmp(argv[i], "--flush-max") == 0 && i + 1 < argc)
			flush_max = atoi(argv[++i]);
		else if (strcmp(argv[i], "--no-raw") == 0)
			no_raw = true;
		else if (strcmp(argv[i], "-v") == 0)
			verbose = true;
		else
		{
			fprintf(stderr, "usage: bench-runtime [--jobs N] [--reps N] [--latency N] [--db NAME]\n"
					"                     [--threads N,N,...] [--fetch-batch N] [--prefetch N]\n"
					"                     [--flush-max N] [--no-raw] [-v]\n");
			return 2;
		}
	}
	if (njobs < 1 || nlatency < 0 || reps < 1 || reps > 99 || fetch_batch < 0)
		return 2;

	maint = connect_db("postgres");
	sql(maint, "SET client_min_messages = warning");
	snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
	sql(maint, q);
	snprintf(q, sizeof(q), "CREATE DATABASE %s", dbname);
	sql(maint, q);
	PQfinish(maint);
	admin = connect_db(dbname);
	find_postmaster(admin);
	sql(admin, "CREATE TABLE bench_raw (id bigserial PRIMARY KEY, payload jsonb)");

	cfg = qml_config_new();
	snprintf(q, sizeof(q), "dbname=%s", dbname);
	qml_config_set_database_url(cfg, q);
	qml_config_set_pool_size(cfg, 1, 4);
	if (qml_client_open(cfg, &client) != QML_OK)
	{
		fprintf(stderr, "bench: %s\n", qml_errmsg());
		return 1;
	}
	qml_config_free(cfg);
	reg = qml_registry_new();
	qml_registry_add(reg, "noop", bench_noop, NULL);

	r = PQexec(admin, "SELECT current_setting('server_version'), current_setting('fsync'),"
			   " current_setting('synchronous_commit')");
	printf("qml runtime benchmark: %d jobs per run, median of %d runs, no-op handlers;"
		   " PostgreSQL %s, fsync %s, synchronous_commit %s\n", njobs, reps,
		   PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
	PQclear(r);
	if (no_raw)
		printf("%-8s %12s\n", "threads", "qml jobs/s");
	else
	{
		printf("raw: each thread runs DELETE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1)"
			   " on a minimal table\n");
		printf("%-8s %12s %12s %8s\n", "threads", "qml jobs/s", "raw jobs/s", "ratio");
	}
	fflush(stdout);
	for (int i = 0; i < nthreads; i++)
	{
		double		raw[99],
					qml[99];

		for (int k = 0; k < reps; k++)
		{
			if (!no_raw)
				raw[k] = run_raw(admin, threads[i]);
			qml[k] = run_qml(admin, client, reg, threads[i]);
		}
		qsort(qml, (size_t) reps, sizeof(double), cmp_double);
		if (no_raw)
			printf("%-8d %12.0f\n", threads[i], qml[reps / 2]);
		else
		{
			qsort(raw, (size_t) reps, sizeof(double), cmp_double);
			printf("%-8d %12.0f %12.0f %8.2f\n", threads[i], qml[reps / 2], raw[reps / 2],
				   qml[reps / 2] / raw[reps / 2]);
		}
		fflush(stdout);
	}
	if (nlatency > 0)
		run_latency(admin, client);

	qml_registry_free(reg);
	qml_client_close(client);
	PQfinish(admin);
	return 0;
}
