/*
 * cmd_admin.c
 *	  qml stats, pause, resume, migrate, status, recurring: the queue and
 *	  the database as a whole.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum
{
	OPT_QUEUE = 3000, OPT_PRIORITY, OPT_MAX_ATTEMPTS, OPT_TIMEZONE
};

/* Column order of the stats table and its JSON keys. */
static const struct
{
	qml_job_state state;
	const char *header;
} stat_columns[] = {
	{QML_STATE_SCHEDULED, "SCHEDULED"},
	{QML_STATE_ENQUEUED, "ENQUEUED"},
	{QML_STATE_PROCESSING, "PROCESSING"},
	{QML_STATE_AWAITING_RETRY, "RETRYING"},
	{QML_STATE_SUCCEEDED, "SUCCEEDED"},
	{QML_STATE_FAILED, "FAILED"},
	{QML_STATE_DELETED, "DELETED"},
};

#define NSTAT (sizeof(stat_columns) / sizeof(stat_columns[0]))

/* Commands without positional arguments beyond `want`: parse the common options. */
static int
simple_options(cli *g, const char *cmd, int argc, char **argv, int want)
{
	static const struct option opts[] = {CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
	int			c;

	while ((c = cli_getopt(g, cmd, argc, argv, opts)) != -1)
	{
		if (c == CLI_HELP)
			return cli_help(cmd), -1;
		if (c == CLI_BAD)
			return EXIT_USAGE;
	}
	if (argc - optind > want)
		return cli_usage_error(g, cmd, "unexpected argument \"%s\"", argv[optind + want]);
	if (argc - optind < want)
		return cli_usage_error(g, cmd, "which queue? qml %s QUEUE", cmd);
	return cli_name_given(g, cmd, "the queue name", argv[optind]);
}

int
cmd_stats(cli *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{"queue", required_argument, NULL, OPT_QUEUE},
		CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}
	};
	const char *queue = NULL;
	qml_client *client;
	qml_queue_stats *s;
	size_t		n;
	qml_status	st;
	int			c,
				rc;

	while ((c = cli_getopt(g, "stats", argc, argv, opts)) != -1)
	{
		if (c == CLI_HELP)
			return cli_help("stats");
		if (c == CLI_BAD)
			return EXIT_USAGE;
		if (c == OPT_QUEUE)
			queue = optarg;
	}
	if (optind < argc)
		return cli_usage_error(g, "stats", "unexpected argument \"%s\"", argv[optind]);
	if ((rc = cli_name_given(g, "stats", "--queue", queue)) != EXIT_OK)
		return rc;
	if ((rc = cli_connect(g, false, 1, &client)) != EXIT_OK)
		return rc;
	if ((st = qml_stats(client, queue, &s, &n)) != QML_OK)
	{
		rc = cli_fail(g, st);
		qml_client_close(client);
		return rc;
	}
	if (g->json)
	{
		json_t	   *a = json_array();

		for (size_t i = 0; i < n; i++)
		{
			json_t	   *o = json_pack("{s:s,s:b}", "queue", s[i].queue, "paused", s[i].paused);

			for (int k = 0; k < QML_STATE_COUNT; k++)
				json_object_set_new(o, qml_state_name((qml_job_state) k),
									json_integer(s[i].counts[k]));
			json_array_append_new(a, o);
		}
		cli_print_json(a);
	}
	else if (n == 0)
		printf("no jobs%s%s\n", queue ? " in queue " : "", queue ? queue : "");
	else
	{
		cli_table	t;
		int64_t		total[QML_STATE_COUNT] = {0};
		char		cells[NSTAT][24];

		cli_table_init(&t, 9, "QUEUE", "PAUSED", stat_columns[0].header, stat_columns[1].header,
					   stat_columns[2].header, stat_columns[3].header, stat_columns[4].header,
					   stat_columns[5].header, stat_columns[6].header);
		for (size_t i = 0; i <= n; i++)
		{
			for (size_t k = 0; k < NSTAT; k++)
			{
				int64_t		v = i < n ? s[i].counts[stat_columns[k].state] : total[stat_columns[k].state];

				if (i < n)
					total[stat_columns[k].state] += v;
				snprintf(cells[k], sizeof(cells[k]), "%" PRId64, v);
			}
			if (i == n && n == 1)
				break;
			cli_table_add(&t, i < n ? s[i].queue : "total", i < n ? (s[i].paused ? "yes" : "no") : "",
						  cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]);
		}
		cli_table_print(&t, stdout);
		cli_table_free(&t);
	}
	qml_stats_free(s, n);
	qml_client_close(client);
	return EXIT_OK;
}

/*
 * A queue qml has never seen (no job, never paused) is most likely a typo:
 * pausing it ahead of its first job is allowed, but say so.
 */
static void
warn_unknown_queue(cli *g, const char *cmd, qml_client *client, const char *queue)
{
	qml_queue_stats *s = NULL;
	size_t		n = 0;

	if (qml_stats(client, queue, &s, &n) == QML_OK && n == 0)
		fprintf(stderr, "qml %s: warning: queue \"%s\" has never had a job (a typo?)%s\n",
				cmd, queue, g->json ? "" : "; see qml stats for the queues there are");
	qml_stats_free(s, n);
}

static int
pause_resume(cli *g, const char *cmd, int argc, char **argv)
{
	bool		pause = strcmp(cmd, "pause") == 0;
	qml_client *client;
	qml_status	st;
	bool		changed;
	int			rc;
	const char *queue;

	if ((rc = simple_options(g, cmd, argc, argv, 1)) != EXIT_OK)
		return rc < 0 ? EXIT_OK : rc;
	queue = argv[optind];
	if ((rc = cli_connect(g, false, 1, &client)) != EXIT_OK)
		return rc;
	warn_unknown_queue(g, cmd, client, queue);
	st = pause ? qml_queue_pause(client, queue, &changed) : qml_queue_resume(client, queue, &changed);
	if (st != QML_OK)
		rc = cli_fail(g, st);
	else if (g->json)
		cli_print_json(json_pack("{s:s,s:b,s:b}", "queue", queue, "paused", pause, "changed", changed));
	else
		printf("queue %s %s%s\n", queue, changed ? "" : "was already ",
			   pause ? "paused" : (changed ? "resumed" : "running"));
	qml_client_close(client);
	return rc;
}

int
cmd_pause(cli *g, int argc, char **argv)
{
	return pause_resume(g, "pause", argc, argv);
}

int
cmd_resume(cli *g, int argc, char **argv)
{
	return pause_resume(g, "resume", argc, argv);
}

int
cmd_migrate(cli *g, int argc, char **argv)
{
	qml_client *client;
	qml_status	st;
	char	   *before = NULL,
			   *after = NULL;
	bool		migrated = false;
	int			rc;

	if ((rc = simple_options(g, "migrate", argc, argv, 0)) != EXIT_OK)
		return rc < 0 ? EXIT_OK : rc;
	if ((rc = cli_connect(g, false, 1, &client)) != EXIT_OK)
		return rc;
	if ((st = qml_schema_version(client, &before, NULL)) != QML_OK ||
		(st = qml_migrate_if_needed(client, &migrated)) != QML_OK ||
		(st = qml_schema_version(client, &after, NULL)) != QML_OK)
		rc = cli_fail(g, st);
	else if (g->json)
		cli_print_json(json_pack("{s:b,s:o,s:s}", "migrated", migrated,
								 "from", before ? json_string(before) : json_null(),
								 "version", after ? after : ""));
	else if (!migrated)
		printf("qml %s is already current\n", after ? after : "?");
	else if (before)
		printf("qml updated from %s to %s\n", before, after ? after : "?");
	else
		printf("qml %s created\n", after ? after : "?");
	qml_free(before);
	qml_free(after);
	qml_client_close(client);
	return rc;
}

/* Every queue's counts added up; zeros when qml is not installed. */
static void
status_totals(qml_client *client, const qml_health *h, int64_t *total)
{
	qml_queue_stats *s = NULL;
	size_t		n = 0;

	if (h->installed_version && qml_stats(client, NULL, &s, &n) == QML_OK)
		for (size_t i = 0; i < n; i++)
			for (int k = 0; k < QML_STATE_COUNT; k++)
				total[k] += s[i].counts[k];
	qml_stats_free(s, n);
}

static void
print_status_json(const qml_health *h, const int64_t *total)
{
	json_t	   *jobs = json_object();

	for (int k = 0; k < QML_STATE_COUNT; k++)
		json_object_set_new(jobs, qml_state_name((qml_job_state) k), json_integer(total[k]));
	cli_print_json(json_pack("{s:s,s:s,s:s,s:{s:b,s:o,s:o},s:{s:b,s:o,s:b,s:i,s:o},s:i,s:o}",
							 "server_version", h->server_version,
							 "database", h->database,
							 "user", h->user,
							 "extension",
							 "installed", h->installed_version != NULL,
							 "version", h->installed_version ? json_string(h->installed_version) : json_null(),
							 "available", h->available_version ? json_string(h->available_version) : json_null(),
							 "scheduler",
							 "running", h->scheduler_processes > 0,
							 "preloaded", h->preloaded_known ? json_boolean(h->preloaded) : json_null(),
							 "launcher", h->launcher,
							 "processes", h->scheduler_processes,
							 "waiting_for_slot_since",
							 h->slot_wait_since ? json_string(h->slot_wait_since) : json_null(),
							 "worker_servers", h->worker_servers,
							 "jobs", h->installed_version ? jobs : (json_decref(jobs), json_null())));
}

static void
print_status_jobs(const int64_t *total)
{
	printf("jobs        %" PRId64 " scheduled, %" PRId64 " enqueued, %" PRId64 " processing, %"
		   PRId64 " retrying, %" PRId64 " succeeded, %" PRId64 " failed\n",
		   total[QML_STATE_SCHEDULED], total[QML_STATE_ENQUEUED],
		   total[QML_STATE_PROCESSING], total[QML_STATE_AWAITING_RETRY],
		   total[QML_STATE_SUCCEEDED], total[QML_STATE_FAILED]);
}

/* The memory store: no server, no extension; the store lives in this process. */
static void
print_status_memory(const qml_health *h, const int64_t *total)
{
	printf("store       %s, %s\n", h->server_version,
		   strcmp(h->database, "memory:") == 0 ? "in this process only"
		   : "in this process, written to its file on a clean close");
	if (strcmp(h->database, "memory:") != 0)
		printf("file        %s\n", h->database);
	printf("scheduler   the store's maintenance thread\n");
	print_status_jobs(total);
}

/* Redis: no extension; the workers run the maintenance, under a lock. */
static void
print_status_redis(const qml_health *h, const int64_t *total)
{
	printf("server      %s, database %s, user %s\n",
		   h->server_version, h->database, h->user);
	printf("scheduler   in the workers: a running qml worker (any of them) promotes, rescues,\n"
		   "            fires recurring jobs and prunes, one pass a second\n");
	print_status_jobs(total);
}

/* PostgreSQL's extension line: installed (and whether an update waits), or how to get it. */
static void
print_status_extension(const qml_health *h)
{
	bool		update = h->installed_version && h->available_version &&
		strcmp(h->available_version, h->installed_version) != 0;

	if (h->installed_version)
		printf("extension   qml %s installed%s%s%s\n", h->installed_version,
			   update ? " (server offers " : "",
			   update ? h->available_version : "",
			   update ? ": run qml migrate)" : "");
	else if (h->available_version)
		printf("extension   not installed in this database (server offers %s): run qml migrate\n",
			   h->available_version);
	else
		printf("extension   not available on this server: install its files there (make install), then run qml migrate\n");
}

/* PostgreSQL's scheduler line: running, or the likeliest reason it is not. */
static void
print_status_scheduler(const qml_health *h)
{
	if (h->slot_wait_since)
		printf("scheduler   waiting for a background worker slot since %s: raise max_worker_processes\n",
			   h->slot_wait_since);
	else if (h->scheduler_processes > 0)
		printf("scheduler   running for this database\n");
	else if (h->launcher)
		printf("scheduler   not serving this database, though its launcher runs: see qml.databases\n");
	else if (h->preloaded)
		printf("scheduler   not running, although qml is preloaded: see the server log\n");
	else if (!h->preloaded_known)
		printf("scheduler   not running for this database; whether qml is in shared_preload_libraries\n"
			   "            is hidden from role %s (pg_read_all_settings shows it)\n", h->user);
	else
		printf("scheduler   not running: qml is not in shared_preload_libraries; due and retried\n"
			   "            jobs wait until something calls qml.maintain()\n");
}

static void
print_status_pg(const qml_health *h, const int64_t *total)
{
	printf("server      PostgreSQL %s, database %s, user %s\n",
		   h->server_version, h->database, h->user);
	print_status_extension(h);
	print_status_scheduler(h);
	printf("workers     %d worker server%s connected\n", h->worker_servers,
		   h->worker_servers == 1 ? "" : "s");
	if (h->installed_version)
		print_status_jobs(total);
}

int
cmd_status(cli *g, int argc, char **argv)
{
	qml_client *client;
	qml_health *h;
	int64_t		total[QML_STATE_COUNT] = {0};
	qml_status	st;
	int			rc;

	if ((rc = simple_options(g, "status", argc, argv, 0)) != EXIT_OK)
		return rc < 0 ? EXIT_OK : rc;
	if ((rc = cli_connect(g, false, 1, &client)) != EXIT_OK)
		return rc;
	if ((st = qml_health_check(client, &h)) != QML_OK)
	{
		rc = cli_fail(g, st);
		qml_client_close(client);
		return rc;
	}
	status_totals(client, h, total);
	if (g->json)
		print_status_json(h, total);
	else if (strncmp(h->server_version, "memory", 6) == 0)
		print_status_memory(h, total);
	else if (strncmp(h->server_version, "Redis", 5) == 0)
		print_status_redis(h, total);
	else
		print_status_pg(h, total);
	rc = h->installed_version ? EXIT_OK : EXIT_NO_EXTENSION;
	qml_health_free(h);
	qml_client_close(client);
	return rc;
}

/* ---- recurring ---- */

static void
print_rows(const char *json)
{
	json_t	   *a = json_loads(json, 0, NULL);
	size_t		n = json_is_array(a) ? json_array_size(a) : 0;
	json_t	   *first = n ? json_array_get(a, 0) : NULL;
	const char *keys[16];
	int			nkeys = 0;
	const char *k;
	json_t	   *v;

	if (n == 0 || !json_is_object(first))
	{
		printf("no recurring jobs\n");
		json_decref(a);
		return;
	}
	json_object_foreach(first, k, v)
	{
		if (nkeys < 16)
			keys[nkeys++] = k;
	}
	for (size_t i = 0; i < n; i++)
	{
		json_t	   *row = json_array_get(a, i);

		for (int c = 0; c < nkeys; c++)
		{
			json_t	   *cell = json_object_get(row, keys[c]);
			char	   *dumped = json_is_string(cell) ? NULL : json_dumps(cell, JSON_ENCODE_ANY | JSON_COMPACT);
			char	   *text = cli_printable(json_is_string(cell) ? json_string_value(cell) : dumped ? dumped : "null",
											 false);

			printf("%s%s: %s", c ? ", " : "", keys[c], text ? text : "");
			free(dumped);
			free(text);
		}
		printf("\n");
	}
	json_decref(a);
}

/* Recurring jobs fire only where the scheduler runs: say so when it does not. */
static void
warn_no_scheduler(qml_client *client)
{
	qml_health *h = NULL;

	if (qml_health_check(client, &h) == QML_OK && h->scheduler_processes == 0)
		fprintf(stderr, "qml recurring add: warning: no qml scheduler serves this database, so the job "
				"will not fire until one does (shared_preload_libraries = 'qml', and qml.databases)\n");
	qml_health_free(h);
}

/* The arguments a subcommand wants (add takes a JSON more); -1: no such one. */
static int
recurring_arity(const char *sub)
{
	if (strcmp(sub, "add") == 0)
		return 3;
	if (strcmp(sub, "list") == 0)
		return 0;
	if (strcmp(sub, "remove") == 0)
		return 1;
	return -1;
}

/*
 * The options of qml recurring SUB (argv[0] is SUB) into *o: EXIT_OK, an
 * exit code, or -1 after --help. *add_options: one that only add takes.
 */
static int
recurring_options(cli *g, const char *cmd, int argc, char **argv,
				  qml_recurring_options *o, bool *add_options)
{
	static const struct option opts[] = {
		{"queue", required_argument, NULL, OPT_QUEUE},
		{"priority", required_argument, NULL, OPT_PRIORITY},
		{"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
		{"timezone", required_argument, NULL, OPT_TIMEZONE},
		CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}
	};
	long		v;
	int			c;

	while ((c = cli_getopt(g, cmd, argc, argv, opts)) != -1)
	{
		if (c == CLI_HELP)
			return cli_help("recurring"), -1;
		if (c == CLI_BAD)
			return EXIT_USAGE;
		if (c == OPT_QUEUE)
			o->queue = optarg;
		if (c == OPT_TIMEZONE)
			o->timezone = optarg;
		if (c == OPT_PRIORITY || c == OPT_MAX_ATTEMPTS)
		{
			if (!cli_parse_int(optarg, c == OPT_PRIORITY ? -2147483647L : 1, 2147483647L, &v))
				return cli_usage_error(g, cmd, "--%s wants an integer%s, not \"%s\"",
									   c == OPT_PRIORITY ? "priority" : "max-attempts",
									   c == OPT_PRIORITY ? "" : " of at least 1", optarg);
			if (c == OPT_PRIORITY)
				o->priority = (int) v;
			else
				o->max_attempts = (int) v;
		}
		*add_options |= c == OPT_QUEUE || c == OPT_PRIORITY || c == OPT_MAX_ATTEMPTS || c == OPT_TIMEZONE;
	}
	return EXIT_OK;
}

/* qml recurring add NAME SCHEDULE METHOD [JSON]: args and nargs are those. */
static int
recurring_add(cli *g, qml_client *client, char **args, int nargs,
			  const qml_recurring_options *o)
{
	qml_status	st = qml_recurring_add_opts(client, args[0], args[1], args[2],
											nargs > 3 ? args[3] : NULL, o);

	if (st != QML_OK)
		return cli_fail(g, st);
	if (g->json)
		cli_print_json(json_pack("{s:s,s:b}", "name", args[0], "added", 1));
	else
		printf("recurring job %s added\n", args[0]);
	warn_no_scheduler(client);
	return EXIT_OK;
}

static int
recurring_remove(cli *g, qml_client *client, const char *name)
{
	qml_status	st = qml_recurring_remove(client, name);

	if (st != QML_OK)
		return cli_fail(g, st);
	if (g->json)
		cli_print_json(json_pack("{s:s,s:b}", "name", name, "removed", 1));
	else
		printf("recurring job %s removed\n", name);
	return EXIT_OK;
}

static int
recurring_list(cli *g, qml_client *client)
{
	char	   *json;
	qml_status	st = qml_recurring_list(client, &json);

	if (st != QML_OK)
		return cli_fail(g, st);
	if (g->json)
		cli_print_json(cli_json_value(json));
	else
		print_rows(json);
	qml_free(json);
	return EXIT_OK;
}

int
cmd_recurring(cli *g, int argc, char **argv)
{
	qml_recurring_options o = {0};
	bool		add_options = false;
	char		cmd[32];
	qml_client *client;
	int			rc,
				want,
				nargs;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
	{
		if (argc >= 2)
			return cli_help("recurring");
		return cli_usage_error(g, "recurring", "add, list or remove?");
	}
	if ((want = recurring_arity(argv[1])) < 0)
		return cli_usage_error(g, "recurring", "unknown subcommand \"%s\": use add, list or remove", argv[1]);
	snprintf(cmd, sizeof(cmd), "recurring %s", argv[1]);
	argv++;
	argc--;
	if ((rc = recurring_options(g, cmd, argc, argv, &o, &add_options)) != EXIT_OK)
		return rc < 0 ? EXIT_OK : rc;
	nargs = argc - optind;
	if (nargs < want)
		return cli_usage_error(g, cmd, "missing arguments: qml recurring add NAME SCHEDULE METHOD [JSON] | remove NAME");
	if (nargs > want + (want == 3 ? 1 : 0))
		return cli_usage_error(g, cmd, "unexpected argument \"%s\"", argv[optind + want]);
	if (add_options && want != 3)
		return cli_usage_error(g, cmd, "--queue, --priority, --max-attempts and --timezone go with add only");

	if ((rc = cli_connect(g, false, 1, &client)) != EXIT_OK)
		return rc;
	if (want == 3)
		rc = recurring_add(g, client, argv + optind, nargs, &o);
	else if (want == 1)
		rc = recurring_remove(g, client, argv[optind]);
	else
		rc = recurring_list(g, client);
	qml_client_close(client);
	return rc;
}
