/*
 * cmd_worker.c
 *	  qml worker --exec METHOD=COMMAND ...: the libqml runtime with one
 *	  exec handler per method, until SIGTERM or SIGINT.
 */
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
	char		when[32];
	time_t		now = time(NULL);
	struct tm	tm;

	/* debug lines (each retry's next run time) only with -v: data is its flag */
	if (level == QML_LOG_DEBUG && !*(const bool *) data)
		return;
	localtime_r(&now, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	fprintf(stderr, "%s qml worker %s: %s\n", when, names[level], message);
}

static int
duration_option(cli *g, const char *name, const char *text, int min_ms, int *ms)
{
	int64_t		v;

	if (!cli_parse_duration_ms(text, &v) || v < min_ms || v > 2147483647)
		return cli_usage_error(g, "worker", "--%s: \"%s\" is not a duration of at least %d ms (e.g. 500ms, 30s, 5m)",
							   name, text, min_ms);
	*ms = (int) v;
	return EXIT_OK;
}

int
cmd_worker(cli *g, int argc, char **argv)
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
	exec_spec	specs[MAX_EXEC];
	char	   *methods[MAX_EXEC];
	int			nspecs = 0;
	bool		verbose = false;
	qml_server_config *cfg = qml_server_config_new("qml-worker");
	qml_registry *reg = NULL;
	qml_client *client = NULL;
	qml_server *server = NULL;
	qml_status	st;
	int			c,
				rc = EXIT_OK,
				ms = 0;
	long		v;

	if (cfg == NULL)
		return EXIT_FAILED;
	/* the environment first, the command line over it */
	if ((st = qml_server_config_from_env(cfg)) != QML_OK)
	{
		rc = cli_fail(g, st);
		goto done;
	}
	qml_server_config_set_log(cfg, log_stderr, &verbose);
	while ((c = cli_getopt(g, "worker", argc, argv, opts)) != -1)
	{
		switch (c)
		{
			case CLI_HELP:
				rc = cli_help("worker");
				goto done;
			case CLI_BAD:
				rc = EXIT_USAGE;
				goto done;
			case OPT_EXEC:
				{
					char	   *eq = strchr(optarg, '=');

					if (eq == NULL || eq == optarg || eq[1] == '\0')
					{
						rc = cli_usage_error(g, "worker", "--exec wants METHOD=COMMAND, not \"%s\"", optarg);
						goto done;
					}
					if (nspecs == MAX_EXEC)
					{
						rc = cli_usage_error(g, "worker", "at most %d --exec", MAX_EXEC);
						goto done;
					}
					methods[nspecs] = strndup(optarg, (size_t) (eq - optarg));
					for (int i = 0; i < nspecs; i++)
						if (methods[nspecs] && strcmp(methods[i], methods[nspecs]) == 0)
						{
							rc = cli_usage_error(g, "worker", "method \"%s\" has two --exec", methods[i]);
							free(methods[nspecs]);
							goto done;
						}
					specs[nspecs] = (exec_spec)
					{
						.method = methods[nspecs],.command = eq + 1,.kill_grace_ms = 3000
					};
					nspecs++;
					break;
				}
			case OPT_WORKERS:
				if (!cli_parse_int(optarg, 1, 1024, &v))
				{
					rc = cli_usage_error(g, "worker", "--workers must be between 1 and 1024, not \"%s\"", optarg);
					goto done;
				}
				qml_server_config_set_workers(cfg, (int) v);
				break;
			case OPT_QUEUES:
				if ((st = qml_server_config_set_queues_csv(cfg, optarg)) != QML_OK)
				{
					rc = cli_usage_error(g, "worker", "--queues: %s", qml_errmsg());
					goto done;
				}
				break;
			case OPT_TIMEOUT:
				if ((rc = duration_option(g, "timeout", optarg, 1, &ms)) != EXIT_OK)
					goto done;
				qml_server_config_set_job_timeout(cfg, ms);
				break;
			case OPT_GRACE:
				if ((rc = duration_option(g, "grace", optarg, 0, &ms)) != EXIT_OK)
					goto done;
				qml_server_config_set_grace_period(cfg, ms);
				break;
			case OPT_LEASE:
				if ((rc = duration_option(g, "lease", optarg, 200, &ms)) != EXIT_OK)
					goto done;
				qml_server_config_set_lease(cfg, ms);
				break;
			case OPT_POLL:
				if ((rc = duration_option(g, "poll-interval", optarg, 10, &ms)) != EXIT_OK)
					goto done;
				qml_server_config_set_poll_interval(cfg, ms);
				break;
			case OPT_BATCH:
				if (!cli_parse_int(optarg, 1, 1000, &v))
				{
					rc = cli_usage_error(g, "worker", "--batch must be between 1 and 1000, not \"%s\"", optarg);
					goto done;
				}
				qml_server_config_set_fetch_batch(cfg, (int) v);
				break;
			case OPT_NAME:
				if ((st = qml_server_config_set_name(cfg, optarg)) != QML_OK)
				{
					rc = cli_usage_error(g, "worker", "--name: %s", qml_errmsg());
					goto done;
				}
				break;
			case 'v':
				verbose = true;
				break;
		}
	}
	if (optind < argc)
	{
		rc = cli_usage_error(g, "worker", "unexpected argument \"%s\" (commands go in --exec METHOD=COMMAND)",
							 argv[optind]);
		goto done;
	}
	if (nspecs == 0)
	{
		rc = cli_usage_error(g, "worker", "nothing to run: give at least one --exec METHOD=COMMAND");
		goto done;
	}
	if ((reg = qml_registry_new()) == NULL)
	{
		rc = EXIT_FAILED;
		goto done;
	}
	for (int i = 0; i < nspecs; i++)
	{
		specs[i].verbose = verbose;
		specs[i].json_log = g->json;
		if ((st = qml_registry_add(reg, specs[i].method, exec_handler, &specs[i])) != QML_OK)
		{
			rc = cli_usage_error(g, "worker", "%s", qml_errmsg());
			goto done;
		}
	}

	/* the fetcher and flusher have their own connections; this pool serves heartbeats */
	if ((rc = cli_connect(g, true, 2, &client)) != EXIT_OK)
		goto done;
	if ((st = qml_server_new(client, reg, cfg, &server)) != QML_OK)
	{
		rc = cli_fail(g, st);
		goto done;
	}
	fprintf(stderr, "qml worker: %d workers for", qml_server_config_workers(cfg));
	for (int i = 0; i < nspecs; i++)
		fprintf(stderr, "%s %s", i ? "," : "", specs[i].method);
	fprintf(stderr, " as %s; SIGTERM or Ctrl-C stops\n", qml_server_worker_name(server));
	if ((st = qml_server_run(server)) != QML_OK)
		rc = cli_fail(g, st);
	else
	{
		qml_server_counters k;

		qml_server_get_counters(server, &k);
		if (g->json && !verbose)
			cli_print_json(json_pack("{s:I,s:I,s:I,s:I}", "succeeded", (json_int_t) k.succeeded,
									 "retried", (json_int_t) k.retried, "failed", (json_int_t) k.failed,
									 "released", (json_int_t) k.released));
	}

done:
	qml_server_free(server);
	qml_client_close(client);
	qml_registry_free(reg);
	qml_server_config_free(cfg);
	for (int i = 0; i < nspecs; i++)
		free(methods[i]);
	return rc;
}
