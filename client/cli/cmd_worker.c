/*
 * cmd_worker.c
 *	  qml worker --exec METHOD=COMMAND ...: the libqml runtime with one
 *	  exec handler per method, until SIGTERM or SIGINT.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

enum
{
	OPT_EXEC = 4000, OPT_WORKERS, OPT_QUEUES, OPT_TIMEOUT, OPT_GRACE, OPT_LEASE,
	OPT_POLL, OPT_BATCH, OPT_NAME
};

#define MAX_EXEC 64

static void
log_stderr(qml_log_level level, const char *message, void *data)
{
	static const char *const names[] = {"debug", "info", "warning", "error"};
	char		when[32],
			   *text;
	time_t		now = time(NULL);
	struct tm	tm;

	/* debug lines (each retry's next run time) only with -v: data is its flag */
	if (level == QML_LOG_DEBUG && !*(const bool *) data)
		return;
	localtime_r(&now, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	/* it names methods and queues, anyone's text: no control reaches the terminal */
	text = cli_printable(message, false);
	fprintf(stderr, "%s qml worker %s: %s\n", when, names[level], text ? text : "");
	free(text);
}

/*
 * The options that set a number: a duration in [min, max] ms, or a count
 * in [min, max]; the ranges are the QML_* variables' (config.c).
 */
typedef struct number_opt
{
	int			opt;
	const char *name;
	bool		duration;
	int			min;
	int			max;
	qml_status	(*set) (qml_server_config *config, int value);
} number_opt;

static const number_opt number_opts[] = {
	{OPT_WORKERS, "workers", false, 1, 1024, qml_server_config_set_workers},
	{OPT_TIMEOUT, "timeout", true, 1, INT_MAX, qml_server_config_set_job_timeout},
	{OPT_GRACE, "grace", true, 0, INT_MAX, qml_server_config_set_grace_period},
	{OPT_LEASE, "lease", true, 200, INT_MAX, qml_server_config_set_lease},
	{OPT_POLL, "poll-interval", true, 10, 3600000, qml_server_config_set_poll_interval},
	{OPT_BATCH, "batch", false, 1, 1000, qml_server_config_set_fetch_batch},
};

/* What qml worker's command line asks for, beyond its server configuration. */
typedef struct worker_args
{
	exec_spec	specs[MAX_EXEC];
	char	   *methods[MAX_EXEC];	/* the specs' methods, ours to free */
	int			nspecs;
	bool		verbose;		/* -v; log_stderr reads it */
} worker_args;

/* Sets the number option c (see number_opts) from text, if c is one. */
static int
number_option(cli *g, qml_server_config *cfg, int c, const char *text)
{
	for (size_t i = 0; i < sizeof(number_opts) / sizeof(number_opts[0]); i++)
	{
		const number_opt *o = &number_opts[i];
		int64_t		ms;
		long		v;

		if (o->opt != c)
			continue;
		if (!o->duration)
		{
			if (!cli_parse_int(text, o->min, o->max, &v))
				return cli_usage_error(g, "worker", "--%s must be between %d and %d, not \"%s\"",
									   o->name, o->min, o->max, text);
		}
		else if (!cli_parse_duration_ms(text, &ms) || ms < o->min || ms > o->max)
			return cli_usage_error(g, "worker", "--%s must be a duration between %d and %d ms "
								   "(e.g. 500ms, 30s, 5m), not \"%s\"",
								   o->name, o->min, o->max, text);
		else
			v = (long) ms;
		/* the library's word is the last: a value it refuses is not dropped */
		if (o->set(cfg, (int) v) != QML_OK)
			return cli_usage_error(g, "worker", "--%s: %s", o->name, qml_errmsg());
		return EXIT_OK;
	}
	return EXIT_OK;
}

/* --exec METHOD=COMMAND: one more spec, its method unique. */
static int
add_exec(cli *g, worker_args *w, const char *text)
{
	char	   *eq = strchr(text, '=');
	int			n = w->nspecs;

	if (eq == NULL || eq == text || eq[1] == '\0')
		return cli_usage_error(g, "worker", "--exec wants METHOD=COMMAND, not \"%s\"", text);
	if (n == MAX_EXEC)
		return cli_usage_error(g, "worker", "at most %d --exec", MAX_EXEC);
	w->methods[n] = strndup(text, (size_t) (eq - text));
	for (int i = 0; i < n; i++)
		if (w->methods[n] && strcmp(w->methods[i], w->methods[n]) == 0)
		{
			int			rc = cli_usage_error(g, "worker", "method \"%s\" has two --exec", w->methods[i]);

			free(w->methods[n]);
			return rc;
		}
	w->specs[n] = (exec_spec)
	{
		.method = w->methods[n],.command = eq + 1,.kill_grace_ms = 3000
	};
	w->nspecs++;
	return EXIT_OK;
}

/* qml worker's options into w and cfg: EXIT_OK, an exit code, or -1 after --help. */
static int
worker_options(cli *g, int argc, char **argv, worker_args *w, qml_server_config *cfg)
{
	static const struct option opts[] = {
		{"exec", required_argument, NULL, OPT_EXEC},
		{"workers", required_argument, NULL, OPT_WORKERS},
		{"queues", required_argument, NULL, OPT_QUEUES},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"grace", required_argument, NULL, OPT_GRACE},
		{"lease", required_argument, NULL, OPT_LEASE},
		{"poll-interval", required_argument, NULL, OPT_POLL},
		{"batch", required_argument, NULL, OPT_BATCH},
		{"name", required_argument, NULL, OPT_NAME},
		{"verbose", no_argument, NULL, 'v'},
		CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}
	};
	int			c,
				rc = EXIT_OK;

	while (rc == EXIT_OK && (c = cli_getopt(g, "worker", argc, argv, opts)) != -1)
	{
		switch (c)
		{
			case CLI_HELP:
				return cli_help("worker"), -1;
			case CLI_BAD:
				rc = EXIT_USAGE;
				break;
			case OPT_EXEC:
				rc = add_exec(g, w, optarg);
				break;
			case OPT_QUEUES:
				if (qml_server_config_set_queues_csv(cfg, optarg) != QML_OK)
					rc = cli_usage_error(g, "worker", "--queues: %s", qml_errmsg());
				break;
			case OPT_NAME:
				/* "" would quietly be the default name */
				if ((rc = cli_name_given(g, "worker", "--name", optarg)) != EXIT_OK)
					;
				else if (qml_server_config_set_name(cfg, optarg) != QML_OK)
					rc = cli_usage_error(g, "worker", "--name: %s", qml_errmsg());
				break;
			case 'v':
				w->verbose = true;
				break;
			default:
				rc = number_option(g, cfg, c, optarg);
				break;
		}
	}
	if (rc != EXIT_OK)
		return rc;
	if (optind < argc)
		return cli_usage_error(g, "worker", "unexpected argument \"%s\" (commands go in --exec METHOD=COMMAND)",
							   argv[optind]);
	if (w->nspecs == 0)
		return cli_usage_error(g, "worker", "nothing to run: give at least one --exec METHOD=COMMAND");
	return EXIT_OK;
}

/* One exec handler per --exec. */
static int
register_execs(cli *g, worker_args *w, qml_registry *reg)
{
	for (int i = 0; i < w->nspecs; i++)
	{
		w->specs[i].verbose = w->verbose;
		w->specs[i].json_log = g->json;
		if (qml_registry_add(reg, w->specs[i].method, exec_handler, &w->specs[i]) != QML_OK)
			return cli_usage_error(g, "worker", "%s", qml_errmsg());
	}
	return EXIT_OK;
}

/* Runs the server until SIGTERM or SIGINT; with --json, its counts at the end. */
static int
run_server(cli *g, const worker_args *w, qml_server_config *cfg, qml_server *server)
{
	qml_server_counters k;
	qml_status	st;

	fprintf(stderr, "qml worker: %d workers for", qml_server_config_workers(cfg));
	for (int i = 0; i < w->nspecs; i++)
	{
		char	   *method = cli_printable(w->specs[i].method, false);

		fprintf(stderr, "%s %s", i ? "," : "", method ? method : "");
		free(method);
	}
	{
		char	   *name = cli_printable(qml_server_worker_name(server), false);

		fprintf(stderr, " as %s; SIGTERM or Ctrl-C stops\n", name ? name : "");
		free(name);
	}
	if ((st = qml_server_run(server)) != QML_OK)
		return cli_fail(g, st);
	qml_server_get_counters(server, &k);
	if (g->json && !w->verbose)
		cli_print_json(json_pack("{s:I,s:I,s:I,s:I}", "succeeded", (json_int_t) k.succeeded,
								 "retried", (json_int_t) k.retried, "failed", (json_int_t) k.failed,
								 "released", (json_int_t) k.released));
	return EXIT_OK;
}

int
cmd_worker(cli *g, int argc, char **argv)
{
	worker_args w = {0};
	qml_server_config *cfg = qml_server_config_new("qml-worker");
	qml_registry *reg = NULL;
	qml_client *client = NULL;
	qml_server *server = NULL;
	qml_status	st;
	int			rc;

	if (cfg == NULL)
		return EXIT_FAILED;
	/* the environment first, the command line over it */
	if ((st = qml_server_config_from_env(cfg)) != QML_OK)
	{
		rc = cli_fail(g, st);
		goto done;
	}
	qml_server_config_set_log(cfg, log_stderr, &w.verbose);
	if ((rc = worker_options(g, argc, argv, &w, cfg)) != EXIT_OK)
	{
		rc = rc < 0 ? EXIT_OK : rc;
		goto done;
	}
	if ((reg = qml_registry_new()) == NULL)
	{
		rc = EXIT_FAILED;
		goto done;
	}
	if ((rc = register_execs(g, &w, reg)) != EXIT_OK)
		goto done;
	/* the fetcher and flusher have their own connections; this pool serves heartbeats */
	if ((rc = cli_connect(g, true, 2, &client)) != EXIT_OK)
		goto done;
	if ((st = qml_server_new(client, reg, cfg, &server)) != QML_OK)
		rc = cli_fail(g, st);
	else
		rc = run_server(g, &w, cfg, server);

done:
	qml_server_free(server);
	qml_client_close(client);
	qml_registry_free(reg);
	qml_server_config_free(cfg);
	for (int i = 0; i < w.nspecs; i++)
		free(w.methods[i]);
	return rc;
}
