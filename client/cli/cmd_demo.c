/*
 * cmd_demo.c
 *	  qml demo: a guided tour. Enqueues a few kinds of jobs, runs them on an
 *	  in-process libqml server, and shows them move through their states.
 *
 * It is also a small, complete example of the library: client, registry,
 * handlers that succeed, retry and fail, server start and stop.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "../dashboard/dashboard.h"

enum
{
	OPT_WORKERS = 5000, OPT_QUEUE, OPT_LISTEN, OPT_NO_DASHBOARD, OPT_THROWAWAY,
	OPT_STORAGE, OPT_PUBLIC_URL
};

#define NOW_JOBS 12
#define SCHEDULED_JOBS 3
#define ALL_JOBS (NOW_JOBS + SCHEDULED_JOBS + 2)

static volatile sig_atomic_t interrupted;
static atomic_int running;		/* handlers running now */

/* One run of the demo: what was asked for, what runs, how it went. */
typedef struct demo
{
	const char *queue;
	long		workers;
	bool		want_dashboard;
	bool		throwaway;		/* scripts/demo.sh's cluster goes with us */
	bool		memory;			/* the memory store: no database */
	dash_options dopts;			/* the dashboard keeps a pointer to it */
	bool		tty;			/* a progress line that redraws itself */
	qml_client *client;
	qml_health *health;
	bool		scheduler;		/* the server's scheduler promotes jobs */
	dash	   *dashboard;
	qml_registry *reg;
	qml_server_config *cfg;
	qml_server *server;
	int64_t		ids[ALL_JOBS];	/* scheduled, to run now, flaky, broken */
	bool		finished;
} demo;

static void
on_signal(int sig)
{
	(void) sig;
	interrupted = 1;
}

/* Sleeps ms, in slices, giving up early when the job is cancelled. */
static bool
work(qml_job_ctx *ctx, int ms)
{
	struct timespec ts = {0, 20 * 1000000L};
	bool		done = true;

	atomic_fetch_add(&running, 1);
	for (int waited = 0; waited < ms; waited += 20)
	{
		if (qml_ctx_cancelled(ctx))
		{
			done = false;
			break;
		}
		nanosleep(&ts, NULL);
	}
	atomic_fetch_sub(&running, 1);
	return done;
}

static qml_outcome
resize_image(qml_job_ctx *ctx, void *data)
{
	char		result[64];

	(void) data;
	if (!work(ctx, 300 + (int) (qml_ctx_job_id(ctx) % 5) * 120))
		return qml_retry(ctx, "interrupted");
	snprintf(result, sizeof(result), "{\"width\": 640, \"height\": 480}");
	return qml_success(ctx, result);
}

static qml_outcome
daily_report(qml_job_ctx *ctx, void *data)
{
	(void) data;
	if (!work(ctx, 400))
		return qml_retry(ctx, "interrupted");
	return qml_success(ctx, "{\"rows\": 1234}");
}

static qml_outcome
flaky_email(qml_job_ctx *ctx, void *data)
{
	(void) data;
	if (!work(ctx, 200))
		return qml_retry(ctx, "interrupted");
	if (qml_ctx_attempt(ctx) == 1)
		return qml_retry(ctx, "mail server said 421: try again later");
	return qml_success(ctx, "{\"sent\": true}");
}

static qml_outcome
broken_invoice(qml_job_ctx *ctx, void *data)
{
	(void) data;
	if (!work(ctx, 200))
		return qml_retry(ctx, "interrupted");
	return qml_fail(ctx, "cannot parse invoice 17: unexpected end of input");
}

static void
demo_log(qml_log_level level, const char *message, void *data)
{
	(void) data;
	if (level >= QML_LOG_WARNING)
		fprintf(stderr, "\nqml demo: %s\n", message);
}

/*
 * The jobs in state processing: those a handler runs, and those the server
 * claimed ahead for a thread that is not free yet (or whose outcome is on
 * its way), which would otherwise look like more work running than there
 * are threads.
 */
static void
processing_label(char *buf, size_t size, int64_t processing)
{
	int64_t		now = atomic_load(&running);

	if (now > processing)
		now = processing;
	if (processing > now)
		snprintf(buf, size, "processing %" PRId64 " (+%" PRId64 " claimed, waiting for a thread)",
				 now, processing - now);
	else
		snprintf(buf, size, "processing %" PRId64, processing);
}

static void
progress(bool tty, const int64_t *counts, int64_t total, double secs)
{
	static char last[256];
	char		line[256];
	char		bar[32];
	char		processing[96];
	int64_t		done = counts[QML_STATE_SUCCEEDED] + counts[QML_STATE_FAILED];
	int			filled = total ? (int) (done * 20 / total) : 0;

	for (int i = 0; i < 20; i++)
		bar[i] = i < filled ? '#' : '.';
	bar[20] = '\0';
	processing_label(processing, sizeof(processing), counts[QML_STATE_PROCESSING]);
	snprintf(line, sizeof(line),
			 "[%s] scheduled %" PRId64 "  enqueued %" PRId64 "  %s"
			 "  retrying %" PRId64 "  succeeded %" PRId64 "  failed %" PRId64,
			 bar, counts[QML_STATE_SCHEDULED], counts[QML_STATE_ENQUEUED],
			 processing, counts[QML_STATE_AWAITING_RETRY],
			 counts[QML_STATE_SUCCEEDED], counts[QML_STATE_FAILED]);
	if (tty)
	{
		printf("\r%5.1fs %s\033[K", secs, line);
		fflush(stdout);
	}
	else if (strcmp(line, last) != 0)
		printf("%5.1fs %s\n", secs, line);
	snprintf(last, sizeof(last), "%s", line);
}

/* Prints `s` for a POSIX shell: single-quoted unless it is plainly safe. */
static void
print_shell_word(const char *s)
{
	if (s[0] != '\0' && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_") == strlen(s))
	{
		fputs(s, stdout);
		return;
	}
	putchar('\'');
	for (; *s; s++)
	{
		if (*s == '\'')
			fputs("'\\''", stdout);
		else
			putchar(*s);
	}
	putchar('\'');
}

/* Prints "qml" as a command line that runs from anywhere, on this database. */
static void
print_qml(cli *g)
{
	char		self[4096];
	ssize_t		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	const char *url = g->database_url ? g->database_url : getenv("DATABASE_URL");

	if (n > 0)
		self[n] = '\0';
	print_shell_word(n > 0 ? self : "qml");
	if (url && url[0])
	{
		fputs(" -d ", stdout);
		print_shell_word(url);
	}
}

/*
 * What to try next, as commands that run as printed: none when the
 * database goes away with the demo (scripts/demo.sh without --keep).
 */
static void
print_next(cli *g, const char *queue, int64_t failed_id, bool throwaway, bool memory)
{
	if (memory)
	{
		printf("next:      the memory store lived in this process and is gone with it;\n"
			   "           run the demo on PostgreSQL (qml demo -d URL) to inspect jobs afterwards.\n");
		return;
	}
	if (throwaway)
	{
		printf("next:      this throwaway cluster is removed now; run scripts/demo.sh --keep\n"
			   "           to keep it and get commands to try on these jobs.\n");
		return;
	}
	printf("next:      ");
	print_qml(g);
	printf(" job %" PRId64 "\n           ", failed_id);
	print_qml(g);
	printf(" retry %" PRId64 "\n           ", failed_id);
	print_qml(g);
	printf(" jobs --queue ");
	print_shell_word(queue);
	printf("\n");
}

static int
enqueue_all(cli *g, qml_client *client, const char *queue, int64_t *ids)
{
	qml_job_spec now[NOW_JOBS];
	char		args[NOW_JOBS][64];
	qml_enqueue_options o = {.queue = queue};
	qml_status	st;
	int			n = 0;

	for (int i = 0; i < SCHEDULED_JOBS; i++)
	{
		if ((st = qml_schedule_in(client, "demo.daily_report", "[\"region-1\"]",
								  2000 + i * 400, &o, &ids[n++])) != QML_OK)
			return cli_fail(g, st);
	}
	for (int i = 0; i < NOW_JOBS; i++)
	{
		snprintf(args[i], sizeof(args[i]), "[\"photo-%02d.jpg\", 640]", i + 1);
		now[i] = (qml_job_spec)
		{
			.method = "demo.resize_image",.arguments = args[i],.options = o
		};
		now[i].options.priority = i < 3 ? 10 : 0;
	}
	if ((st = qml_enqueue_batch(client, now, NOW_JOBS, ids + n)) != QML_OK)
		return cli_fail(g, st);
	n += NOW_JOBS;
	o.backoff_base_ms = 1000;
	o.max_attempts = 3;
	if ((st = qml_enqueue(client, "demo.flaky_email", "{\"to\": \"ada@example.com\"}", &o, &ids[n++])) != QML_OK ||
		(st = qml_enqueue(client, "demo.broken_invoice", "{\"invoice\": 17}", &o, &ids[n++])) != QML_OK)
		return cli_fail(g, st);
	return EXIT_OK;
}

/* qml demo's options into *d: EXIT_OK, an exit code, or -1 after --help. */
static int
demo_options(cli *g, int argc, char **argv, demo *d)
{
	static const struct option opts[] = {
		{"workers", required_argument, NULL, OPT_WORKERS},
		{"queue", required_argument, NULL, OPT_QUEUE},
		{"listen", required_argument, NULL, OPT_LISTEN},
		{"no-dashboard", no_argument, NULL, OPT_NO_DASHBOARD},
		{"throwaway", no_argument, NULL, OPT_THROWAWAY},
		{"storage", required_argument, NULL, OPT_STORAGE},
		{"public-url", required_argument, NULL, OPT_PUBLIC_URL},
		CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}
	};
	int			c,
				rc;

	while ((c = cli_getopt(g, "demo", argc, argv, opts)) != -1)
	{
		if (c == CLI_HELP)
			return cli_help("demo"), -1;
		if (c == CLI_BAD)
			return EXIT_USAGE;
		if (c == OPT_WORKERS && !cli_parse_int(optarg, 1, 64, &d->workers))
			return cli_usage_error(g, "demo", "--workers must be between 1 and 64");
		if (c == OPT_QUEUE)
			d->queue = optarg;
		if (c == OPT_LISTEN && !dashboard_listen_ok(optarg))
			return cli_usage_error(g, "demo", "--listen wants one HOST:PORT (PORT from 0 to 65535), not \"%s\"", optarg);
		if (c == OPT_LISTEN)
			d->dopts.listen = optarg;
		if (c == OPT_NO_DASHBOARD)
			d->want_dashboard = false;
		if (c == OPT_THROWAWAY)
			d->throwaway = true;
		if (c == OPT_STORAGE && strcmp(optarg, "memory") == 0)
			g->database_url = "memory:";
		else if (c == OPT_STORAGE && strcmp(optarg, "postgresql") != 0)
			return cli_usage_error(g, "demo", "--storage wants memory or postgresql, not \"%s\"", optarg);
		if (c == OPT_PUBLIC_URL && (rc = cli_public_url(g, "demo", &d->dopts, optarg)) != EXIT_OK)
			return rc;
	}
	if (optind < argc)
		return cli_usage_error(g, "demo", "unexpected argument \"%s\"", argv[optind]);
	if ((rc = cli_public_url(g, "demo", &d->dopts, NULL)) != EXIT_OK)
		return rc;
	d->memory = g->database_url && strncmp(g->database_url, "memory:", 7) == 0;
	/* the dashboard opens a store of its own: a memory store is per client */
	if (d->memory)
		d->want_dashboard = false;
	return EXIT_OK;
}

/* Where the demo runs, and what promotes its scheduled and retried jobs. */
static void
print_intro(const demo *d)
{
	const qml_health *health = d->health;

	if (d->memory)
	{
		printf("qml demo: %s, no database, queue \"%s\"\n"
			   "scheduler: the memory store's maintenance thread (it promotes scheduled and retried jobs)\n",
			   health->server_version, d->queue);
		return;
	}
	printf("qml demo: database %s on PostgreSQL %s, qml %s, queue \"%s\"\n",
		   health->database, health->server_version,
		   health->installed_version ? health->installed_version : "?", d->queue);
	printf("scheduler: %s\n", d->scheduler ? "running (it promotes scheduled and retried jobs)"
		   : "not running (qml is not preloaded): this demo calls qml.maintain() itself");
}

static void
start_dashboard(cli *g, demo *d)
{
	/* read-only (no token): the page shows the jobs as they move */
	d->dopts.token = getenv("QML_DASHBOARD_TOKEN");
	d->dopts.database_url = g->database_url;
	if (d->want_dashboard && (d->dashboard = dashboard_start(&d->dopts)) == NULL && !g->json)
		printf("dashboard: could not start on %s (see above); the demo goes on without it\n",
			   d->dopts.listen);
	if (g->json)
		return;
	if (d->dashboard)
	{
		printf("dashboard: %s\n", dashboard_url(d->dashboard));
		dashboard_print_public(&d->dopts, "dashboard: ");
	}
	else
		printf("\n");
	printf("\n");
}

/* The in-process libqml server that runs the demo's four handlers. */
static int
start_server(cli *g, demo *d)
{
	qml_status	st;

	d->reg = qml_registry_new();
	d->cfg = qml_server_config_new("qml-demo");
	if (d->reg == NULL || d->cfg == NULL)
		return EXIT_FAILED;
	qml_registry_add(d->reg, "demo.resize_image", resize_image, NULL);
	qml_registry_add(d->reg, "demo.daily_report", daily_report, NULL);
	qml_registry_add(d->reg, "demo.flaky_email", flaky_email, NULL);
	qml_registry_add(d->reg, "demo.broken_invoice", broken_invoice, NULL);
	qml_server_config_set_workers(d->cfg, (int) d->workers);
	qml_server_config_set_queues(d->cfg, &d->queue, 1);
	qml_server_config_set_poll_interval(d->cfg, 250);
	qml_server_config_set_grace_period(d->cfg, 2000);
	qml_server_config_set_log(d->cfg, demo_log, NULL);
	if ((st = qml_server_new(d->client, d->reg, d->cfg, &d->server)) != QML_OK ||
		(st = qml_server_start(d->server)) != QML_OK)
		return cli_fail(g, st);
	return EXIT_OK;
}

/* How many of the demo's jobs are in each state now. */
static void
count_states(const demo *d, int64_t *counts)
{
	memset(counts, 0, QML_STATE_COUNT * sizeof(int64_t));
	for (int i = 0; i < ALL_JOBS; i++)
	{
		qml_job    *j;

		if (qml_job_get(d->client, d->ids[i], &j) == QML_OK)
		{
			counts[j->state]++;
			qml_job_free(j);
		}
	}
}

/*
 * Shows the jobs move until all have finished (true), or a minute has
 * passed or a signal came (false). Without a scheduler, it calls
 * qml.maintain() itself every half second to promote their turn.
 */
static bool
watch_jobs(cli *g, const demo *d)
{
	int64_t		counts[QML_STATE_COUNT];
	int64_t		start = qml_now(),
				last_maintain = 0;

	while (!interrupted && qml_now() - start < 60 * 1000000LL)
	{
		struct timespec ts = {0, 200 * 1000000L};

		count_states(d, counts);
		if (!g->json)
			progress(d->tty, counts, ALL_JOBS, (qml_now() - start) / 1e6);
		if (counts[QML_STATE_SUCCEEDED] + counts[QML_STATE_FAILED] == ALL_JOBS)
			return true;
		if (!d->scheduler && qml_now() - last_maintain > 500000)
		{
			qml_maintain(d->client, NULL);
			last_maintain = qml_now();
		}
		nanosleep(&ts, NULL);
	}
	return false;
}

static void
print_json_summary(const demo *d)
{
	json_t	   *a = json_array();

	for (int i = 0; i < ALL_JOBS; i++)
	{
		qml_job    *j;

		if (qml_job_get(d->client, d->ids[i], &j) == QML_OK)
		{
			json_array_append_new(a, cli_json_job(j));
			qml_job_free(j);
		}
	}
	cli_print_json(json_pack("{s:b,s:o,s:o}", "finished", d->finished, "jobs", a,
							 "dashboard", d->dashboard ? json_string(dashboard_url(d->dashboard)) : json_null()));
}

/* The jobs as they ended, the dozen alike ones shown as two and a line. */
static void
print_jobs_table(const demo *d)
{
	cli_table	t;

	cli_table_init(&t, 5, "ID", "METHOD", "STATE", "ATTEMPTS", "LAST ERROR");
	for (int i = 0; i < ALL_JOBS; i++)
	{
		qml_job    *j;
		char		id[24],
					att[24];

		if (i >= SCHEDULED_JOBS + 2 && i < SCHEDULED_JOBS + NOW_JOBS)
			continue;
		if (qml_job_get(d->client, d->ids[i], &j) != QML_OK)
			continue;
		snprintf(id, sizeof(id), "%" PRId64, j->id);
		snprintf(att, sizeof(att), "%d/%d", j->attempts, j->max_attempts);
		cli_table_add(&t, id, j->method, qml_state_name(j->state), att,
					  j->last_error ? j->last_error : "");
		if (i == SCHEDULED_JOBS + 1)
			cli_table_add(&t, "...", "(10 more demo.resize_image)", "", "", "");
		qml_job_free(j);
	}
	cli_table_print(&t, stdout);
	cli_table_free(&t);
}

/* The flaky job's history: it failed once and was retried. */
static void
print_flaky_history(const demo *d)
{
	int64_t		id = d->ids[ALL_JOBS - 2];
	qml_job_event *ev = NULL;
	size_t		nev = 0;

	if (qml_job_events(d->client, id, &ev, &nev) == QML_OK && nev > 0)
	{
		printf("\nhistory of job %" PRId64 " (demo.flaky_email), from %s:\n",
			   id, d->memory ? "the memory store" : "qml.job_events");
		for (size_t i = 0; i < nev; i++)
		{
			char		tb[48];

			printf("  %s  %-14s -> %-14s %s\n", cli_time(ev[i].at, tb, sizeof(tb)),
				   ev[i].from_state < 0 ? "(new)" : qml_state_name((qml_job_state) ev[i].from_state),
				   qml_state_name(ev[i].to_state), ev[i].error ? ev[i].error : "");
		}
	}
	qml_job_events_free(ev, nev);
}

static void
print_summary(cli *g, const demo *d)
{
	printf("\n");
	print_jobs_table(d);
	print_flaky_history(d);
	if (d->dashboard)
		printf("\ndashboard: %s (read-only; \"qml dashboard --token T\" for actions)\n",
			   dashboard_url(d->dashboard));
	else if (!d->memory)
		printf("\n\"qml stats\" and \"qml jobs --queue %s\" show the same numbers.\n", d->queue);
	print_next(g, d->queue, d->ids[ALL_JOBS - 1], d->throwaway, d->memory);
	if (!d->finished)
		printf("\n%s before every job finished.\n", interrupted ? "interrupted" : "gave up after 60 s");
}

/* The exit code; at a terminal, after leaving the page up to look at. */
static int
linger(const demo *d)
{
	if (d->dashboard && d->tty && !interrupted)
	{
		printf("\nthe dashboard keeps serving: press Ctrl-C to stop\n");
		fflush(stdout);
		while (!interrupted)
			pause();
		return d->finished ? EXIT_OK : EXIT_FAILED;
	}
	return interrupted ? 130 : d->finished ? EXIT_OK : EXIT_FAILED;
}

/* The demo once it is set up: watch, stop the server, sum up. */
static int
run_demo(cli *g, demo *d)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	d->finished = watch_jobs(g, d);
	if (d->tty)
		printf("\n");
	qml_server_stop(d->server);
	if (g->json)
		print_json_summary(d);
	else
		print_summary(g, d);
	return linger(d);
}

int
cmd_demo(cli *g, int argc, char **argv)
{
	demo		d = {
		.queue = "demo",
		.workers = 3,
		.want_dashboard = true,
		.dopts = {.listen = "127.0.0.1:8080", .interval_ms = 250},
	};
	qml_status	st;
	int			rc;

	if ((rc = demo_options(g, argc, argv, &d)) != EXIT_OK)
		return rc < 0 ? EXIT_OK : rc;
	/* after the options: `qml demo --json` is as quiet as `qml --json demo` */
	d.tty = isatty(STDOUT_FILENO) && !g->json;
	if ((rc = cli_connect(g, true, 4, &d.client)) != EXIT_OK)
		return rc;
	if ((st = qml_health_check(d.client, &d.health)) != QML_OK)
	{
		rc = cli_fail(g, st);
		goto done;
	}
	d.scheduler = d.health->scheduler_processes > 0;
	if (!g->json)
		print_intro(&d);
	start_dashboard(g, &d);
	if ((rc = enqueue_all(g, d.client, d.queue, d.ids)) != EXIT_OK)
		goto done;
	if (!g->json)
		printf("enqueued %d jobs: %d to run now (3 of them with priority 10), %d scheduled 2 s ahead,\n"
			   "one that fails once and is retried, one that fails for good\n\n",
			   ALL_JOBS, NOW_JOBS, SCHEDULED_JOBS);
	if ((rc = start_server(g, &d)) == EXIT_OK)
		rc = run_demo(g, &d);

done:
	dashboard_stop(d.dashboard);
	qml_server_free(d.server);
	qml_server_config_free(d.cfg);
	qml_registry_free(d.reg);
	qml_health_free(d.health);
	qml_client_close(d.client);
	return rc;
}
