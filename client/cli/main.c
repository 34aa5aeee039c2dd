/*
 * main.c
 *	  The qml command: dispatch to a command, help texts, and connecting
 *	  to the database (the command line itself is args.c's).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char main_usage[] =
"usage: qml [--database-url URL] [--json] COMMAND [ARGUMENTS]\n"
"\n"
"Background jobs inside PostgreSQL: enqueue them, look at them, run them.\n"
"\n"
"Commands:\n"
"  demo        watch jobs flow: scheduled, enqueued, processing, succeeded,\n"
"              one retried and one failed\n"
"  enqueue     add a job              jobs        list jobs\n"
"  job         one job, with history  retry       run a finished job again\n"
"  delete      delete a job           stats       jobs per queue and state\n"
"  pause       pause a queue          resume      resume a queue\n"
"  recurring   add, list and remove recurring (cron) jobs\n"
"  worker      run jobs with commands, in any language: worker --exec M=CMD\n"
"  migrate     create or update the qml extension in the database\n"
"  status      extension, version, scheduler and workers at a glance\n"
"  help        help on a command (or: qml COMMAND --help)\n"
"\n"
"Options of every command:\n"
"  -d, --database-url URL   the database (default: DATABASE_URL, else libpq's\n"
"                           PGHOST, PGPORT, PGDATABASE, PGUSER, ...)\n"
"      --json               output for scripts: JSON on stdout, errors as JSON\n"
"                           on stderr\n"
"  -h, --help               this help, or the command's\n"
"      --version            the version\n"
"\n"
"Exit codes:\n"
"  0  success\n"
"  1  the operation failed (an error from the server, a job in the wrong state)\n"
"  2  usage: unknown command or option, bad argument, invalid JSON\n"
"  3  cannot connect to the database\n"
"  4  the qml extension is not installed (run qml migrate), or lacks the feature\n"
"  5  not found: no such job or recurring job\n"
"  (demo exits 130 when interrupted; worker exits 0 after a clean stop on\n"
"  SIGTERM or SIGINT)\n"
"\n"
"Environment: DATABASE_URL, PG*, QML_AUTO_MIGRATE (worker and demo default on,\n"
"other commands off), QML_CONNECT_TIMEOUT (s), QML_STATEMENT_TIMEOUT (ms),\n"
"QML_MAX_CONNECTIONS, and for worker QML_WORKERS, QML_QUEUES, QML_FETCH_BATCH,\n"
"QML_POLL_INTERVAL, QML_LEASE, QML_JOB_TIMEOUT, QML_GRACE_PERIOD (durations:\n"
"5m, 30s, 500ms; a bare number is ms).\n";

static const cli_command commands[] = {
	{"demo", cmd_demo, "watch jobs flow through their states",
		"usage: qml demo [--workers N] [--queue NAME] [--listen HOST:PORT | --no-dashboard]\n"
		"                [--public-url URL] [--throwaway] [--storage memory|postgresql]\n"
		"\n"
		"Enqueues a small set of jobs in queue \"demo\" (three scheduled two seconds\n"
		"ahead, a dozen to run now, one that fails once and is retried, one that\n"
		"fails for good), runs them on an in-process worker server, and shows them\n"
		"moving through scheduled -> enqueued -> processing -> succeeded / failed.\n"
		"Creates the extension when it is missing. Without the scheduler running\n"
		"(shared_preload_libraries = 'qml') it promotes due jobs itself by calling\n"
		"qml.maintain().\n"
		"\n"
		"The dashboard (read-only) serves the same jobs meanwhile and prints its\n"
		"address; at a terminal it keeps serving after the demo until Ctrl-C.\n"
		"\n"
		"  --workers N         worker threads (default 3)\n"
		"  --queue NAME        queue to use (default demo)\n"
		"  --listen HOST:PORT  the dashboard's address (default 127.0.0.1:8080;\n"
		"                      port 0: any free port)\n"
		"  --public-url URL    where a reverse proxy serves the dashboard (see qml\n"
		"                      dashboard --help; default QML_DASHBOARD_PUBLIC_URL)\n"
		"  --no-dashboard      no dashboard\n"
		"  --throwaway         the database goes away after the demo: print no\n"
		"                      commands to try on it afterwards\n"
		"  --storage memory    run on libqml's in-process memory store: no\n"
		"                      PostgreSQL at all (and no dashboard: the store\n"
		"                      lives in this process); the same as -d memory:\n"
		"\n"
		"At the end it prints commands to try on the demo's jobs (this qml binary by\n"
		"its full path, with the database URL). scripts/demo.sh runs the demo on a\n"
		"throwaway cluster that it removes when done; scripts/demo.sh --keep keeps\n"
		"the cluster running, so that those commands work.\n"},
	{"enqueue", cmd_enqueue, "add a job",
		"usage: qml enqueue METHOD [JSON] [options]\n"
		"\n"
		"Adds a job for METHOD with JSON arguments (default []). Prints its id.\n"
		"\n"
		"  --queue NAME          queue (default default)\n"
		"  --priority N          higher runs first (default 0)\n"
		"  --at TIME             run at TIME: 2025-01-31 12:00[:00] (local time),\n"
		"                        ISO 8601 with Z or +hh:mm, or seconds since 1970\n"
		"  --delay DURATION      run after DURATION: 500ms, 30s, 5m, 2h, 1d, or seconds\n"
		"  --unique KEY          at most one live job with KEY: an existing one's id\n"
		"                        is printed instead\n"
		"  --max-attempts N      attempts before it fails for good (default: the\n"
		"                        server's qml.default_max_attempts)\n"},
	{"jobs", cmd_jobs, "list jobs",
		"usage: qml jobs [--state STATE] [--queue NAME] [--method M] [--limit N]\n"
		"\n"
		"Lists jobs, newest first.\n"
		"\n"
		"  --state STATE   scheduled, enqueued, processing, succeeded, failed,\n"
		"                  awaiting_retry (or retrying, as stats calls it) or deleted\n"
		"  --queue NAME    only this queue\n"
		"  --method M      only this method\n"
		"  --limit N       at most N jobs (default 50, at most 10000)\n"},
	{"job", cmd_job, "show a job and its history",
		"usage: qml job ID\n"
		"\n"
		"Shows one job: state, attempts, arguments, result, last error, and its\n"
		"history (every state change, from qml.job_events).\n"},
	{"retry", cmd_retry, "run a finished job again",
		"usage: qml retry ID\n"
		"\n"
		"Enqueues a succeeded, failed or deleted job again, attempts counted afresh\n"
		"(qml.requeue). Exit 1 when the job has not finished yet.\n"},
	{"delete", cmd_delete, "delete a job that has not finished",
		"usage: qml delete ID\n"
		"\n"
		"Soft-deletes a scheduled, enqueued, processing or retrying job (qml.delete);\n"
		"its row and history stay until pruned. Exit 1 when it had finished.\n"},
	{"stats", cmd_stats, "jobs per queue and state",
		"usage: qml stats [--queue NAME]\n"
		"\n"
		"Counts jobs per queue and state (qml.stats), with a total line.\n"},
	{"pause", cmd_pause, "stop handing out a queue's jobs",
		"usage: qml pause QUEUE\n"
		"\n"
		"Workers get no more jobs of QUEUE until it is resumed; running jobs go on.\n"},
	{"resume", cmd_resume, "hand out a paused queue's jobs again",
		"usage: qml resume QUEUE\n"},
	{"recurring", cmd_recurring, "recurring (cron) jobs",
		"usage: qml recurring add NAME SCHEDULE METHOD [JSON] [--queue NAME]\n"
		"                         [--priority N] [--max-attempts N] [--timezone TZ]\n"
		"       qml recurring list\n"
		"       qml recurring remove NAME\n"
		"\n"
		"Jobs the scheduler enqueues on a schedule: a cron expression such as\n"
		"'*/5 * * * *' or an interval such as '30 seconds' (qml.add_recurring,\n"
		"qml.remove_recurring, table qml.recurring). Exit 4 when the installed\n"
		"extension has no recurring jobs. add warns when no scheduler serves the\n"
		"database (qml not in shared_preload_libraries): the job would never fire.\n"
		"\n"
		"  --queue NAME        queue of the jobs (default default)\n"
		"  --priority N        their priority (default 0)\n"
		"  --max-attempts N    their attempts (default qml.default_max_attempts)\n"
		"  --timezone TZ       the zone of a cron schedule, e.g. Europe/Paris\n"
		"                      (default UTC)\n"},
	{"worker", cmd_worker, "run jobs with commands",
		"usage: qml worker --exec METHOD=COMMAND [--exec ...] [options]\n"
		"\n"
		"Runs jobs of each METHOD with COMMAND (through /bin/sh -c), so a worker can\n"
		"be written in any language. Per job, COMMAND gets:\n"
		"  stdin            the job's arguments as JSON\n"
		"  environment      QML_JOB_ID, QML_ATTEMPT, QML_MAX_ATTEMPTS, QML_METHOD,\n"
		"                   QML_QUEUE\n"
		"and its outcome is:\n"
		"  exit 0           success; stdout, if it is JSON, becomes the job's result\n"
		"  exit 65          permanent failure (EX_DATAERR): failed, no retry\n"
		"  other exit or a  failure, with the tail of stderr as the error; retried\n"
		"  signal           with backoff while attempts remain\n"
		"A job past --timeout is reported failed (retried) and COMMAND's process\n"
		"group gets SIGTERM, then SIGKILL. A job whose method has no --exec is\n"
		"retried with backoff, and a warning names the method (once a minute).\n"
		"SIGTERM or SIGINT stops the worker gracefully: no new jobs, running ones\n"
		"get the grace period, the rest go back to the queue. A second SIGTERM or\n"
		"SIGINT ends the grace period at once: running jobs go back too (exit 0).\n"
		"\n"
		"  --exec METHOD=COMMAND   repeatable\n"
		"  --workers N             jobs run at once (default QML_WORKERS, else 4)\n"
		"  --queues A,B            queues in priority order (default QML_QUEUES,\n"
		"                          else default)\n"
		"  --timeout DURATION      per-job timeout (default none)\n"
		"  --grace DURATION        grace period at shutdown (default 10s)\n"
		"  --lease DURATION        lease, renewed while a job runs (default 5m)\n"
		"  --poll-interval DURATION  fallback poll when no notification (default 1s)\n"
		"  --batch N               most jobs one fetch claims (default 250)\n"
		"  --name NAME             worker name (default qml-worker)\n"
		"  -v, --verbose           log every job, and when a failed one runs next\n"
		"                          (with --json: one JSON object per job on stdout)\n"},
	{"migrate", cmd_migrate, "create or update the extension",
		"usage: qml migrate\n"
		"\n"
		"Creates the qml extension in the database (CREATE EXTENSION qml) or updates\n"
		"it to the version the server's files offer (ALTER EXTENSION qml UPDATE), and\n"
		"says which it did: \"qml 1.1 created\", \"qml updated from 1.0 to 1.1\", \"qml\n"
		"1.1 is already current\". Needs the extension's files on the server (exit 4\n"
		"with a hint when they are missing) and the rights CREATE EXTENSION needs (an\n"
		"update: the extension's owner or a superuser); a failed update changes\n"
		"nothing (exit 1). See docs/upgrading.md.\n"},
	{"dashboard", cmd_dashboard, "the web dashboard",
		"usage: qml dashboard [--listen HOST:PORT] [--token TOKEN] [--public-url URL]\n"
		"                     [--database URL] [--interval MS]\n"
		"\n"
		"Serves the dashboard page, its REST API (/api/...), a WebSocket that\n"
		"pushes changes (/ws) and Prometheus metrics (/metrics). One database\n"
		"connection follows the queues for every open page; requests share a\n"
		"small pool. Runs until SIGINT or SIGTERM; waits for the database when it\n"
		"is down (/healthz answers 503 meanwhile). See docs/dashboard.md.\n"
		"\n"
		"  --listen HOST:PORT   address (default 127.0.0.1:8080: this machine only)\n"
		"  --token TOKEN        actions (retry, delete, pause, resume, run) need\n"
		"                       \"Authorization: Bearer TOKEN\" (default\n"
		"                       QML_DASHBOARD_TOKEN; without one: read-only)\n"
		"  --public-url URL     the address browsers use when a reverse proxy\n"
		"                       serves the dashboard: http(s)://HOST[:PORT], no path.\n"
		"                       Requests for that host, and pages of that origin,\n"
		"                       are accepted; a dashboard on 127.0.0.1 otherwise\n"
		"                       answers to localhost names only and refuses pages\n"
		"                       of other origins. Several: comma-separated or the\n"
		"                       option repeated (default QML_DASHBOARD_PUBLIC_URL)\n"
		"  --database URL       the database (same as -d/--database-url)\n"
		"  --interval MS        how often the live view reads (default 250, at\n"
		"                       least 250)\n"},
	{"status", cmd_status, "extension, scheduler and workers at a glance",
		"usage: qml status\n"
		"\n"
		"Shows the server, whether the extension is installed and its version,\n"
		"whether the scheduler is running (a background process of qml in\n"
		"pg_stat_activity), how many worker servers are connected, and job counts.\n"
		"Exit 4 when the extension is not installed.\n"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const cli_command *
find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int
cli_help(const char *cmd)
{
	const cli_command *c = cmd ? find_command(cmd) : NULL;

	fputs(c ? c->usage : main_usage, stdout);
	if (c)
		fputs("\nCommon options: -d/--database-url URL, --json, -h/--help "
			  "(see qml --help, also for exit codes).\n", stdout);
	return EXIT_OK;
}

int
cli_connect(cli *g, bool auto_migrate, int max_connections, qml_client **out)
{
	qml_config *c = qml_config_new();
	qml_status	st;

	*out = NULL;
	if (c == NULL)
	{
		fprintf(stderr, "qml: out of memory\n");
		return EXIT_FAILED;
	}
	qml_config_set_auto_migrate(c, auto_migrate);
	qml_config_set_pool_size(c, 1, max_connections);
	if ((st = qml_config_from_env(c)) != QML_OK)
	{
		qml_config_free(c);
		return cli_fail(g, st);
	}
	if (g->database_url)
		qml_config_set_database_url(c, g->database_url);
	st = qml_client_open(c, out);
	qml_config_free(c);
	if (st != QML_OK)
		return cli_fail(g, st);
	return EXIT_OK;
}

int
main(int argc, char **argv)
{
	cli			g = {0};
	cli_args	a;
	const cli_command *cmd;
	int			i;

	/*
	 * A worker's child that exits early must not kill us through a pipe;
	 * and we reap our children ourselves, whatever our parent left set.
	 */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);

	cli_parse_global(&g, argc, argv, &a);
	switch (a.what)
	{
		case CLI_ARGS_HELP:
			return cli_help(NULL);
		case CLI_ARGS_VERSION:
			printf("qml %s\n", QML_VERSION);
			return EXIT_OK;
		case CLI_ARGS_BAD_OPTION:
			/* -d or --database-url last, without its URL */
			if (strcmp(argv[a.index], "-d") == 0 || strcmp(argv[a.index], "--database-url") == 0)
				return cli_usage_error(&g, NULL, "option '%s' needs a value", argv[a.index]);
			return cli_usage_error(&g, NULL, "unknown option '%s'", argv[a.index]);
		case CLI_ARGS_NO_COMMAND:
			fputs(main_usage, stderr);
			return EXIT_USAGE;
		case CLI_ARGS_RUN:
			if (g.database_url && g.database_url[0] == '\0')
				return cli_empty_url(&g, NULL);
			break;
	}
	i = a.index;
	if (strcmp(argv[i], "help") == 0)
	{
		/* qml help --help: help about help is the overview */
		if (i + 1 < argc && (strcmp(argv[i + 1], "--help") == 0 || strcmp(argv[i + 1], "-h") == 0))
			return cli_help(NULL);
		if (i + 1 < argc && find_command(argv[i + 1]) == NULL)
			return cli_usage_error(&g, NULL, "unknown command '%s'", argv[i + 1]);
		return cli_help(i + 1 < argc ? argv[i + 1] : NULL);
	}
	if (strcmp(argv[i], "version") == 0)
	{
		printf("qml %s\n", QML_VERSION);
		return EXIT_OK;
	}
	if ((cmd = find_command(argv[i])) == NULL)
		return cli_usage_error(&g, NULL, "unknown command '%s'", argv[i]);
	return cmd->run(&g, argc - i, argv + i);
}
