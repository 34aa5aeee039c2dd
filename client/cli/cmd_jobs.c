/*
 * cmd_jobs.c
 *	  qml enqueue, jobs, job, retry, delete: one job at a time.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum
{
	OPT_QUEUE = 2000, OPT_PRIORITY, OPT_AT, OPT_DELAY, OPT_UNIQUE,
	OPT_MAX_ATTEMPTS, OPT_STATE, OPT_METHOD, OPT_LIMIT
};

static bool
parse_id(const char *text, int64_t *id)
{
	long		v;

	if (!cli_parse_int(text, 1, LONG_MAX, &v))
		return false;
	*id = v;
	return true;
}

/* Checks JSON before connecting, so a typo costs no round trip. */
static bool
valid_json(const char *text, char *why, size_t size)
{
	json_error_t e;
	json_t	   *v = json_loads(text, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &e);

	if (v == NULL)
	{
		snprintf(why, size, "%s (line %d, column %d)", e.text, e.line, e.column);
		return false;
	}
	json_decref(v);
	return true;
}

int
cmd_enqueue(cli *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{"queue", required_argument, NULL, OPT_QUEUE},
		{"priority", required_argument, NULL, OPT_PRIORITY},
		{"at", required_argument, NULL, OPT_AT},
		{"delay", required_argument, NULL, OPT_DELAY},
		{"unique", required_argument, NULL, OPT_UNIQUE},
		{"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
		CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}
	};
	qml_enqueue_options o = {0};
	const char *method,
			   *args = NULL;
	qml_client *client;
	int64_t		id;
	qml_status	st;
	int			c,
				rc;
	long		v;
	char		why[300];

	while ((c = cli_getopt(g, "enqueue", argc, argv, opts)) != -1)
	{
		switch (c)
		{
			case CLI_HELP:
				return cli_help("enqueue");
			case CLI_BAD:
				return EXIT_USAGE;
			case OPT_QUEUE:
				o.queue = optarg;
				break;
			case OPT_PRIORITY:
				if (!cli_parse_int(optarg, -2147483647L - 1, 2147483647L, &v))
					return cli_usage_error(g, "enqueue", "--priority must be an integer, not \"%s\"", optarg);
				o.priority = (int) v;
				break;
			case OPT_AT:
				if (!cli_parse_time(optarg, &o.run_at))
					return cli_usage_error(g, "enqueue",
										   "--at: cannot read \"%s\" as a time; use e.g. \"2025-01-31 12:00\" or 2025-01-31T12:00:00Z",
										   optarg);
				break;
			case OPT_DELAY:
				if (!cli_parse_duration_ms(optarg, &o.delay_ms))
					return cli_usage_error(g, "enqueue",
										   "--delay: cannot read \"%s\" as a duration; use e.g. 500ms, 30s, 5m, 2h",
										   optarg);
				break;
			case OPT_UNIQUE:
				o.unique_key = optarg;
				break;
			case OPT_MAX_ATTEMPTS:
				if (!cli_parse_int(optarg, 1, 1000000, &v))
					return cli_usage_error(g, "enqueue", "--max-attempts must be an integer from 1, not \"%s\"", optarg);
				o.max_attempts = (int) v;
				break;
		}
	}
	if (optind >= argc)
		return cli_usage_error(g, "enqueue", "which method? qml enqueue METHOD [JSON]");
	if (argc - optind > 2)
		return cli_usage_error(g, "enqueue", "too many arguments: quote the JSON as one argument");
	if (o.run_at && o.delay_ms)
		return cli_usage_error(g, "enqueue", "give --at or --delay, not both");
	method = argv[optind];
	if (optind + 1 < argc)
		args = argv[optind + 1];
	if (args && !valid_json(args, why, sizeof(why)))
		return cli_usage_error(g, "enqueue", "the arguments are not valid JSON: %s", why);

	if ((rc = cli_connect(g, false, 1, &client)) != EXIT_OK)
		return rc;
	st = qml_enqueue(client, method, args, &o, &id);
	if (st != QML_OK)
		rc = cli_fail(g, st);
	else if (g->json)
		cli_print_json(json_pack("{s:I}", "id", (json_int_t) id));
	else
		printf("%" PRId64 "\n", id);
	qml_client_close(client);
	return rc;
}

/* One line of error text for a table cell. */
static void
cell_text(const char *s, char *buf, size_t size)
{
	size_t		n = 0;

	for (; s && *s && n + 4 < size; s++)
		buf[n++] = (*s == '\n' || *s == '\t' || *s == '\r') ? ' ' : *s;
	if (s && *s)
	{
		/* do not cut a UTF-8 character in half */
		while (n > 0 && ((unsigned char) buf[n] & 0xC0) == 0x80)
			n--;
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
}

/* qml jobs' options into *f: EXIT_OK, an exit code, or -1 after --help. */
static int
jobs_options(cli *g, int argc, char **argv, qml_job_filter *f)
{
	static const struct option opts[] = {
		{"state", required_argument, NULL, OPT_STATE},
		{"queue", required_argument, NULL, OPT_QUEUE},
		{"method", required_argument, NULL, OPT_METHOD},
		{"limit", required_argument, NULL, OPT_LIMIT},
		CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}
	};
	int			c;
	long		v;

	f->limit = 50;
	while ((c = cli_getopt(g, "jobs", argc, argv, opts)) != -1)
	{
		qml_job_state s;

		switch (c)
		{
			case CLI_HELP:
				return cli_help("jobs"), -1;
			case CLI_BAD:
				return EXIT_USAGE;
			case OPT_STATE:
				if (!qml_state_parse(optarg, &s))
					return cli_usage_error(g, "jobs",
										   "unknown state \"%s\"; use scheduled, enqueued, processing, succeeded, failed, awaiting_retry (retrying) or deleted",
										   optarg);
				f->state = (int) s;
				break;
			case OPT_QUEUE:
				f->queue = optarg;
				break;
			case OPT_METHOD:
				f->method = optarg;
				break;
			case OPT_LIMIT:
				if (!cli_parse_int(optarg, 1, 10000, &v))
					return cli_usage_error(g, "jobs", "--limit must be between 1 and 10000, not \"%s\"", optarg);
				f->limit = (int) v;
				break;
		}
	}
	if (optind < argc)
		return cli_usage_error(g, "jobs", "unexpected argument \"%s\"", argv[optind]);
	if (cli_name_given(g, "jobs", "--queue", f->queue) != EXIT_OK ||
		cli_name_given(g, "jobs", "--method", f->method) != EXIT_OK)
		return EXIT_USAGE;
	return EXIT_OK;
}

/*
 * The jobs as a table. WHEN is when a job finished, started (processing) or
 * is due.
 */
static void
print_job_table(const qml_job_list *list)
{
	cli_table	t;

	cli_table_init(&t, 7, "ID", "STATE", "QUEUE", "METHOD", "ATTEMPTS", "WHEN", "LAST ERROR");
	for (size_t i = 0; i < list->count; i++)
	{
		const qml_job *j = list->jobs[i];
		char		id[24],
					att[32],
					when[48],
					err[64];
		int64_t		at = j->finished_at != QML_TIME_NULL ? j->finished_at
			: j->state == QML_STATE_PROCESSING ? j->started_at : j->run_at;

		snprintf(id, sizeof(id), "%" PRId64, j->id);
		snprintf(att, sizeof(att), "%d/%d", j->attempts, j->max_attempts);
		cli_ago(at, when, sizeof(when));
		cell_text(j->last_error, err, sizeof(err));
		cli_table_add(&t, id, qml_state_name(j->state), j->queue, j->method, att, when, err);
	}
	cli_table_print(&t, stdout);
	cli_table_free(&t);
}

int
cmd_jobs(cli *g, int argc, char **argv)
{
	qml_job_filter f = QML_JOB_FILTER_INIT;
	qml_job_list *list;
	qml_client *client;
	qml_status	st;
	int			rc;

	if ((rc = jobs_options(g, argc, argv, &f)) != EXIT_OK)
		return rc < 0 ? EXIT_OK : rc;
	if ((rc = cli_connect(g, false, 1, &client)) != EXIT_OK)
		return rc;
	if ((st = qml_job_list_get(client, &f, &list)) != QML_OK)
	{
		rc = cli_fail(g, st);
		qml_client_close(client);
		return rc;
	}
	if (g->json)
	{
		json_t	   *a = json_array();

		for (size_t i = 0; i < list->count; i++)
			json_array_append_new(a, cli_json_job(list->jobs[i]));
		cli_print_json(a);
	}
	else if (list->count == 0)
		printf("no jobs\n");
	else
		print_job_table(list);
	qml_job_list_free(list);
	qml_client_close(client);
	return EXIT_OK;
}

/* The one positional argument of job/retry/delete: a job id. */
static int
id_command(cli *g, const char *cmd, int argc, char **argv, int64_t *id)
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
	if (optind >= argc)
		return cli_usage_error(g, cmd, "which job? qml %s ID", cmd);
	if (argc - optind > 1)
		return cli_usage_error(g, cmd, "one job id only");
	if (!parse_id(argv[optind], id))
		return cli_usage_error(g, cmd, "\"%s\" is not a job id (a positive integer)", argv[optind]);
	return EXIT_OK;
}

/* qml job --json: the job with its history. */
static json_t *
job_json(const qml_job *j, const qml_job_event *ev, size_t nev)
{
	json_t	   *o = cli_json_job(j);
	json_t	   *a = json_array();

	for (size_t i = 0; i < nev; i++)
		json_array_append_new(a, json_pack("{s:o,s:o,s:s,s:o,s:o}",
										   "at", cli_json_time(ev[i].at),
										   "from", ev[i].from_state < 0 ? json_null()
										   : json_string(qml_state_name((qml_job_state) ev[i].from_state)),
										   "to", qml_state_name(ev[i].to_state),
										   "worker", ev[i].worker ? json_string(ev[i].worker) : json_null(),
										   "error", ev[i].error ? json_string(ev[i].error) : json_null()));
	json_object_set_new(o, "history", a);
	return o;
}

/* qml job: the job's fields, one a line. */
static void
print_job(const qml_job *j)
{
	char		b1[48],
				b2[48];

	printf("job %" PRId64 "\n", j->id);
	cli_print_field("method", j->method);
	cli_print_field("queue", j->queue);
	printf("  state         %s\n", qml_state_name(j->state));
	printf("  attempts      %d of %d\n", j->attempts, j->max_attempts);
	printf("  priority      %d\n", j->priority);
	cli_print_field("arguments", j->arguments);
	if (j->unique_key)
		cli_print_field("unique key", j->unique_key);
	printf("  created       %s (%s)\n", cli_time(j->created_at, b1, sizeof(b1)), cli_ago(j->created_at, b2, sizeof(b2)));
	printf("  run at        %s (%s)\n", cli_time(j->run_at, b1, sizeof(b1)), cli_ago(j->run_at, b2, sizeof(b2)));
	if (j->started_at != QML_TIME_NULL)
		printf("  started       %s (%s)\n", cli_time(j->started_at, b1, sizeof(b1)), cli_ago(j->started_at, b2, sizeof(b2)));
	if (j->finished_at != QML_TIME_NULL)
		printf("  finished      %s (%s)\n", cli_time(j->finished_at, b1, sizeof(b1)), cli_ago(j->finished_at, b2, sizeof(b2)));
	if (j->locked_by)
	{
		char	   *by = cli_printable(j->locked_by, false);

		printf("  held by       %s until %s\n", by ? by : "", cli_time(j->locked_until, b1, sizeof(b1)));
		free(by);
	}
	if (j->last_error)
		cli_print_field("last error", j->last_error);
	if (j->result)
		cli_print_field("result", j->result);
}

/* qml job: the job's history, as a table. */
static void
print_history(const qml_job_event *ev, size_t nev)
{
	cli_table	t;

	printf("history\n");
	if (nev == 0)
	{
		printf("  (none recorded: history is off for this queue, or pruned)\n");
		return;
	}
	cli_table_init(&t, 5, "  AT", "FROM", "TO", "WORKER", "ERROR");
	for (size_t i = 0; i < nev; i++)
	{
		char		at[64],
					tb[48];

		snprintf(at, sizeof(at), "  %s", cli_time(ev[i].at, tb, sizeof(tb)));
		cli_table_add(&t, at,
					  ev[i].from_state < 0 ? "(new)" : qml_state_name((qml_job_state) ev[i].from_state),
					  qml_state_name(ev[i].to_state), ev[i].worker ? ev[i].worker : "",
					  ev[i].error ? ev[i].error : "");
	}
	cli_table_print(&t, stdout);
	cli_table_free(&t);
}

int
cmd_job(cli *g, int argc, char **argv)
{
	qml_client *client;
	qml_job    *j = NULL;
	qml_job_event *ev = NULL;
	size_t		nev = 0;
	qml_status	st;
	int64_t		id;
	int			rc;

	if ((rc = id_command(g, "job", argc, argv, &id)) != EXIT_OK)
		return rc < 0 ? EXIT_OK : rc;
	if ((rc = cli_connect(g, false, 1, &client)) != EXIT_OK)
		return rc;
	if ((st = qml_job_get(client, id, &j)) != QML_OK ||
		(st = qml_job_events(client, id, &ev, &nev)) != QML_OK)
	{
		rc = cli_fail(g, st);
		qml_job_free(j);
		qml_client_close(client);
		return rc;
	}
	if (g->json)
		cli_print_json(job_json(j, ev, nev));
	else
	{
		print_job(j);
		print_history(ev, nev);
	}
	qml_job_events_free(ev, nev);
	qml_job_free(j);
	qml_client_close(client);
	return EXIT_OK;
}

/* retry and delete: a boolean SQL call, and a clear word when it did nothing. */
static int
change_job(cli *g, const char *cmd, int argc, char **argv)
{
	bool		retry = strcmp(cmd, "retry") == 0;
	qml_client *client;
	qml_status	st;
	int64_t		id;
	bool		done = false;
	int			rc;

	if ((rc = id_command(g, cmd, argc, argv, &id)) != EXIT_OK)
		return rc < 0 ? EXIT_OK : rc;
	if ((rc = cli_connect(g, false, 1, &client)) != EXIT_OK)
		return rc;
	st = retry ? qml_job_requeue(client, id, &done) : qml_job_delete(client, id, &done);
	if (st != QML_OK)
		rc = cli_fail(g, st);
	else
	{
		qml_job    *j = NULL;
		const char *state = "";

		if (!done && qml_job_get(client, id, &j) == QML_OK)
			state = qml_state_name(j->state);
		if (g->json)
			cli_print_json(json_pack("{s:I,s:b,s:s}", "id", (json_int_t) id,
									 retry ? "requeued" : "deleted", done,
									 "state", done ? (retry ? "enqueued" : "deleted") : state));
		else if (done)
			printf("job %" PRId64 " %s\n", id, retry ? "enqueued again" : "deleted");
		else if (retry)
			fprintf(stderr, "qml retry: job %" PRId64 " is %s; only finished jobs (succeeded, failed, deleted) can be retried\n",
					id, state);
		else
			fprintf(stderr, "qml delete: job %" PRId64 " has already finished (%s); nothing to delete\n",
					id, state);
		rc = done ? EXIT_OK : EXIT_FAILED;
		qml_job_free(j);
	}
	qml_client_close(client);
	return rc;
}

int
cmd_retry(cli *g, int argc, char **argv)
{
	return change_job(g, "retry", argc, argv);
}

int
cmd_delete(cli *g, int argc, char **argv)
{
	return change_job(g, "delete", argc, argv);
}
