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
	OPT_STORAGE
};

#define NOW_JOBS 12
#define SCHEDULED_JOBS 3
#define ALL_JOBS (NOW_JOBS + SCHEDULED_JOBS + 2)

static volatile sig_atomic_t interrupted;
static atomic_int running;		/* handlers running now */

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

int
cmd_demo(cli *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{"workers", required_argument, NULL, OPT_WORKERS},
		{"queue", required_argument, NULL, OPT_QUEUE},
		{"listen", required_argument, NULL, OPT_LISTEN},
		{"no-dashboard", no_argument, NULL, OPT_NO_DASHBOARD},
		{"throwaway", no_argument, NULL, OPT_THROWAWAY},
		{"storage", required_argument, NULL, OPT_STORAGE},
		CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}
	};
	dash_options dopts = {"127.0.0.1:8080", NULL, NULL, 250};
	dash	   *dashboard = NULL;
	bool		want_dashboard = true;
	const char *queue = "demo";
	long		workers = 3;
	qml_client *client = NULL;
	qml_registry *reg = NULL;
	qml_server_config *cfg = NULL;
	qml_server *server = NULL;
	qml_health *health = NULL;
	int64_t		ids[ALL_JOBS];
	int64_t		counts[QML_STATE_COUNT];
	int64_t		start,
				last_maintain = 0;
	bool		tty = isatty(STDOUT_FILENO) && !g->json;
	bool		scheduler;
	bool		finished = false;
	bool		throwaway = false;
	bool		memory;
	struct sigaction sa;
	qml_status	st;
	int			c,
				rc;

	while ((c = cli_getopt(g, "demo", argc, argv, opts)) != -1)
	{
		if (c == CLI_HELP)
			return cli_help("demo");
		if (c == CLI_BAD)
			return EXIT_USAGE;
		if (c == OPT_WORKERS && !cli_parse_int(optarg, 1, 64, &workers))
			return cli_usage_error(g, "demo", "--workers must be between 1 and 64");
		if (c == OPT_QUEUE)
			queue = optarg;
		if (c == OPT_LISTEN && !dashboard_listen_ok(optarg))
			return cli_usage_error(g, "demo", "--listen wants HOST:PORT, not \"%s\"", optarg);
		if (c == OPT_LISTEN)
			dopts.listen = optarg;
		if (c == OPT_NO_DASHBOARD)
			want_dashboard = false;
		if (c == OPT_THROWAWAY)
			throwaway = true;
		if (c == OPT_STORAGE && strcmp(optarg, "memory") == 0)
			g->database_url = "memory:";
		else if (c == OPT_STORAGE && strcmp(optarg, "postgresql") != 0)
			return cli_usage_error(g, "demo", "--storage wants memory or postgresql, not \"%s\"", optarg);
	}
	if (optind < argc)
		return cli_usage_error(g, "demo", "unexpected argument \"%s\"", argv[optind]);
	memory = g->database_url && strncmp(g->database_url, "memory:", 7) == 0;
	/* the dashboard opens a store of its own: a memory store is per client */
	if (memory)
		want_dashboard = false;

	if ((rc = cli_connect(g, true, 4, &client)) != EXIT_OK)
		return rc;
	if ((st = qml_health_check(client, &health)) != QML_OK)
	{
		rc = cli_fail(g, st);
		goto done;
	}
	scheduler = health->scheduler_processes > 0;
	if (!g->json && memory)
		printf("qml demo: %s, no database, queue \"%s\"\n"
			   "scheduler: the memory store's maintenance thread (it promotes scheduled and retried jobs)\n",
			   health->server_version, queue);
	else if (!g->json)
	{
		printf("qml demo: database %s on PostgreSQL %s, qml %s, queue \"%s\"\n",
			   health->database, health->server_version,
			   health->installed_version ? health->installed_version : "?", queue);
		printf("scheduler: %s\n", scheduler ? "running (it promotes scheduled and retried jobs)"
			   : "not running (qml is not preloaded): this demo calls qml.maintain() itself");
	}
	/* read-only (no token): the page shows the jobs as they move */
	dopts.token = getenv("QML_DASHBOARD_TOKEN");
	dopts.database_url = g->database_url;
	if (want_dashboard && (dashboard = dashboard_start(&dopts)) == NULL && !g->json)
		printf("dashboard: could not start on %s (see above); the demo goes on without it\n",
			   dopts.listen);
	if (!g->json)
		printf("%s%s\n\n", dashboard ? "dashboard: " : "", dashboard ? dashboard_url(dashboard) : "");

	if ((rc = enqueue_all(g, client, queue, ids)) != EXIT_OK)
		goto done;
	if (!g->json)
		printf("enqueued %d jobs: %d to run now (3 of them with priority 10), %d scheduled 2 s ahead,\n"
			   "one that fails once and is retried, one that fails for good\n\n",
			   ALL_JOBS, NOW_JOBS, SCHEDULED_JOBS);

	reg = qml_registry_new();
	cfg = qml_server_config_new("qml-demo");
	if (reg == NULL || cfg == NULL)
	{
		rc = EXIT_FAILED;
		goto done;
	}
	qml_registry_add(reg, "demo.resize_image", resize_image, NULL);
	qml_registry_add(reg, "demo.daily_report", daily_report, NULL);
	qml_registry_add(reg, "demo.flaky_email", flaky_email, NULL);
	qml_registry_add(reg, "demo.broken_invoice", broken_invoice, NULL);
	qml_server_config_set_workers(cfg, (int) workers);
	qml_server_config_set_queues(cfg, &queue, 1);
	qml_server_config_set_poll_interval(cfg, 250);
	qml_server_config_set_grace_period(cfg, 2000);
	qml_server_config_set_log(cfg, demo_log, NULL);
	if ((st = qml_server_new(client, reg, cfg, &server)) != QML_OK ||
		(st = qml_server_start(server)) != QML_OK)
	{
		rc = cli_fail(g, st);
		goto done;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	start = qml_now();
	while (!interrupted && qml_now() - start < 60 * 1000000LL)
	{
		struct timespec ts = {0, 200 * 1000000L};

		memset(counts, 0, sizeof(counts));
		for (int i = 0; i < ALL_JOBS; i++)
		{
			qml_job    *j;

			if (qml_job_get(client, ids[i], &j) == QML_OK)
			{
				counts[j->state]++;
				qml_job_free(j);
			}
		}
		if (!g->json)
			progress(tty, counts, ALL_JOBS, (qml_now() - start) / 1e6);
		if (counts[QML_STATE_SUCCEEDED] + counts[QML_STATE_FAILED] == ALL_JOBS)
		{
			finished = true;
			break;
		}
		if (!scheduler && qml_now() - last_maintain > 500000)
		{
			qml_maintain(client, NULL);
			last_maintain = qml_now();
		}
		nanosleep(&ts, NULL);
	}
	if (tty)
		printf("\n");
	qml_server_stop(server);

	if (g->json)
	{
		json_t	   *a = json_array();

		for (int i = 0; i < ALL_JOBS; i++)
		{
			qml_job    *j;

			if (qml_job_get(client, ids[i], &j) == QML_OK)
			{
				json_array_append_new(a, cli_json_job(j));
				qml_job_free(j);
			}
		}
		cli_print_json(json_pack("{s:b,s:o,s:o}", "finished", finished, "jobs", a,
								 "dashboard", dashboard ? json_string(dashboard_url(dashboard)) : json_null()));
	}
	else
	{
		cli_table	t;
		qml_job_event *ev = NULL;
		size_t		nev = 0;

		printf("\n");
		cli_table_init(&t, 5, "ID", "METHOD", "STATE", "ATTEMPTS", "LAST ERROR");
		for (int i = 0; i < ALL_JOBS; i++)
		{
			qml_job    *j;
			char		id[24],
						att[24];

			/* the dozen alike jobs: show two */
			if (i >= SCHEDULED_JOBS + 2 && i < SCHEDULED_JOBS + NOW_JOBS)
				continue;
			if (qml_job_get(client, ids[i], &j) != QML_OK)
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

		if (qml_job_events(client, ids[ALL_JOBS - 2], &ev, &nev) == QML_OK && nev > 0)
		{
			printf("\nhistory of job %" PRId64 " (demo.flaky_email), from %s:\n",
				   ids[ALL_JOBS - 2], memory ? "the memory store" : "qml.job_events");
			for (size_t i = 0; i < nev; i++)
			{
				char		tb[48];

				printf("  %s  %-14s -> %-14s %s\n", cli_time(ev[i].at, tb, sizeof(tb)),
					   ev[i].from_state < 0 ? "(new)" : qml_state_name((qml_job_state) ev[i].from_state),
					   qml_state_name(ev[i].to_state), ev[i].error ? ev[i].error : "");
			}
		}
		qml_job_events_free(ev, nev);
		if (dashboard)
			printf("\ndashboard: %s (read-only; \"qml dashboard --token T\" for actions)\n",
				   dashboard_url(dashboard));
		else if (!memory)
			printf("\n\"qml stats\" and \"qml jobs --queue %s\" show the same numbers.\n", queue);
		print_next(g, queue, ids[ALL_JOBS - 1], throwaway, memory);
		if (!finished)
			printf("\n%s before every job finished.\n", interrupted ? "interrupted" : "gave up after 60 s");
	}
	rc = interrupted ? 130 : finished ? EXIT_OK : EXIT_FAILED;
	/* at a terminal, leave the page up to look at */
	if (dashboard && tty && !interrupted)
	{
		printf("\nthe dashboard keeps serving: press Ctrl-C to stop\n");
		fflush(stdout);
		while (!interrupted)
			pause();
		rc = finished ? EXIT_OK : EXIT_FAILED;
	}

done:
	dashboard_stop(dashboard);
	qml_server_free(server);
	qml_server_config_free(cfg);
	qml_registry_free(reg);
	qml_health_free(health);
	qml_client_close(client);
	return rc;
}
