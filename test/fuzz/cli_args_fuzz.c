/*-------------------------------------------------------------------------
 *
 * cli_args_fuzz.c
 *	  libFuzzer target for the qml command's argument and environment
 *	  parsing: the global options before the command and a command's
 *	  options (client/cli/args.c), the option values (cli_parse_int,
 *	  cli_parse_duration_ms, cli_parse_time in client/cli/output.c) and
 *	  libqml's settings from the environment (client/src/config.c).
 *
 * The first byte picks the mode; the rest, split at NUL bytes, is the
 * argument vector, an option value or the environment's values.  Checks:
 *	- global options: the command found is a word that does not start with
 *	  '-', everything before it was an option or its value, the database
 *	  URL is one of the arguments (or its part after "=");
 *	- a command's options: only the table's values come back, a value
 *	  option's argument is one of the arguments, getopt ends;
 *	- values: within the asked range; a duration or a time written back
 *	  (as milliseconds, as seconds since 1970 or as ISO 8601 with Z)
 *	  parses to the same value, in time zone UTC;
 *	- the environment: a setting accepted is within its documented range,
 *	  a rejected one names its variable; nothing leaks.
 *
 * Build and run: make fuzz-cli_args (test/fuzz/fuzz.mk)
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "internal.h"

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 64

static void
die(const char *what, const char *text)
{
	fprintf(stderr, "cli_args_fuzz: %s (\"%.300s\")\n", what, text ? text : "(null)");
	abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void) argc;
	(void) argv;
	/* usage errors go to stderr: fuzz.mk runs this with -close_fd_mask=2 */
	setenv("TZ", "UTC", 1);
	tzset();
	return 0;
}

/* splits text (NUL-separated, ending in NUL) into at most MAX_ARGS words */
static int
split(char *text, size_t len, char **argv)
{
	int			argc = 0;

	argv[argc++] = "qml";
	for (size_t at = 0; at < len && argc < MAX_ARGS; at += strlen(text + at) + 1)
		argv[argc++] = text + at;
	argv[argc] = NULL;
	return argc;
}

static bool
in_argv(const char *p, int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (p >= argv[i] && p <= argv[i] + strlen(argv[i]))
			return true;
	return false;
}

static void
global(int argc, char **argv)
{
	cli			g = {0};
	cli_args	a;

	cli_parse_global(&g, argc, argv, &a);
	switch (a.what)
	{
		case CLI_ARGS_RUN:
			if (a.index < 1 || a.index >= argc || argv[a.index][0] == '-')
				die("the command is not a word", argv[a.index < argc ? a.index : 0]);
			break;
		case CLI_ARGS_BAD_OPTION:
			if (a.index < 1 || a.index >= argc || argv[a.index][0] != '-')
				die("a bad option that is not an option", argv[a.index < argc ? a.index : 0]);
			break;
		case CLI_ARGS_NO_COMMAND:
		case CLI_ARGS_HELP:
		case CLI_ARGS_VERSION:
			break;
		default:
			die("unknown answer", argv[0]);
	}
	if (g.database_url && !in_argv(g.database_url, argc, argv))
		die("the database URL is not one of the arguments", g.database_url);
}

static void
command(cli *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{"queue", required_argument, NULL, 'q'},
		{"priority", required_argument, NULL, 'p'},
		{"verbose", no_argument, NULL, 'v'},
		{"limit", required_argument, NULL, 1003},
		{"dry-run", no_argument, NULL, 1004},
		CLI_COMMON_OPTIONS,
		{NULL, 0, NULL, 0}
	};
	int			c,
				n = 0,
				most = argc;

	/* at most one option per character ("-vvv" is three) */
	for (int i = 0; i < argc; i++)
		most += (int) strlen(argv[i]);
	optind = 0;					/* glibc: start afresh */
	while ((c = cli_getopt(g, "test", argc, argv, opts)) != -1)
	{
		if (c == CLI_HELP || c == CLI_BAD)
			return;
		if (++n > most)
			die("getopt does not end", argv[1]);
		if (c == 'q' || c == 'p' || c == 1003)
		{
			if (optarg == NULL || !in_argv(optarg, argc, argv))
				die("a value option without its value", argv[1]);
		}
		else if (c != 'v' && c != 1004)
			die("a value that is not the table's", argv[1]);
	}
	if (optind < 0 || optind > argc)
		die("optind out of range", argv[1]);
	if (g->database_url && !in_argv(g->database_url, argc, argv))
		die("the database URL is not one of the arguments", g->database_url);
}

static void
values(const char *text, uint8_t sel)
{
	static const long ranges[][2] = {{0, 10000}, {1, 1000}, {-5, 5}, {LONG_MIN, LONG_MAX}};
	long		v;
	int64_t		ms,
				ms2,
				us,
				us2;
	char		back[80];

	if (cli_parse_int(text, ranges[sel % 4][0], ranges[sel % 4][1], &v) &&
		(v < ranges[sel % 4][0] || v > ranges[sel % 4][1]))
		die("an integer out of its range", text);
	if (cli_parse_duration_ms(text, &ms))
	{
		if (ms < 0 || ms > INT64_C(1000000000000000))
			die("a duration out of range", text);
		snprintf(back, sizeof(back), "%" PRId64 "ms", ms);
		if (!cli_parse_duration_ms(back, &ms2) || ms2 != ms)
			die("a duration written back differs", text);
	}
	if (strcmp(text, "now") != 0 && cli_parse_time(text, &us))
	{
		time_t		sec = (time_t) (us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000));
		struct tm	tm;

		snprintf(back, sizeof(back), "%" PRId64, us / 1000000);
		if (us % 1000000 == 0 && (!cli_parse_time(back, &us2) || us2 != us))
			die("a time written back as seconds differs", text);
		if (gmtime_r(&sec, &tm) && tm.tm_year >= 0 - 1900 + 1 && tm.tm_year <= 9999 - 1900)
		{
			strftime(back, sizeof(back), "%Y-%m-%dT%H:%M:%S", &tm);
			snprintf(back + strlen(back), sizeof(back) - strlen(back), ".%06dZ",
					 (int) (us - (int64_t) sec * 1000000));
			if (!cli_parse_time(back, &us2) || us2 != us)
				die("a time written back as ISO 8601 differs", text);
		}
	}
}

static const char *const client_vars[] = {
	"DATABASE_URL", "QML_MIN_CONNECTIONS", "QML_MAX_CONNECTIONS", "QML_CONNECT_TIMEOUT",
	"QML_STATEMENT_TIMEOUT", "QML_AUTO_MIGRATE"
};
static const char *const server_vars[] = {
	"QML_SERVER_NAME", "QML_WORKERS", "QML_QUEUES", "QML_FETCH_BATCH", "QML_PREFETCH",
	"QML_DURABLE_CLAIMS", "QML_POLL_INTERVAL", "QML_LEASE", "QML_JOB_TIMEOUT",
	"QML_GRACE_PERIOD"
};

static void
names_a_variable(const char *const *vars, size_t n)
{
	const char *msg = qml_errmsg();

	for (size_t i = 0; i < n; i++)
		if (msg && strstr(msg, vars[i]))
			return;
	die("an environment error that names no variable", msg);
}

static void
environment(int argc, char **argv)
{
	const char *const *vars[2] = {client_vars, server_vars};
	size_t		nvars[2] = {6, 10};
	qml_config *c;
	qml_server_config *s;
	int			k = 1;

	for (int set = 0; set < 2; set++)
		for (size_t i = 0; i < nvars[set]; i++)
		{
			if (k < argc && argv[k][0] != '\x01')
				setenv(vars[set][i], argv[k], 1);
			else
				unsetenv(vars[set][i]);
			k++;
		}
	c = qml_config_new();
	if (qml_config_from_env(c) == QML_OK)
	{
		if (c->min_connections < 0 || c->max_connections < 1 ||
			c->min_connections > c->max_connections || c->max_connections > 1000 ||
			c->connect_timeout_s < 1 || c->connect_timeout_s > 3600 ||
			c->statement_timeout_ms < 0 || c->database_url == NULL)
			die("a client setting out of range", argv[1]);
	}
	else
		names_a_variable(client_vars, 6);
	qml_config_free(c);
	s = qml_server_config_new("fuzz");
	if (qml_server_config_from_env(s) == QML_OK)
	{
		if (s->workers < 1 || s->workers > 1024 || s->fetch_batch < 1 ||
			s->fetch_batch > 1000 || s->prefetch < 0 || s->poll_interval_ms < 10 ||
			s->lease_ms < 200 || s->job_timeout_ms < 0 || s->grace_ms < 0 ||
			s->name == NULL || strlen(s->name) > 100)
			die("a server setting out of range", argv[1]);
	}
	else
		names_a_variable(server_vars, 10);
	qml_server_config_free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *text;
	char	   *argv[MAX_ARGS + 1];
	int			argc;
	cli			g = {0};

	if (size == 0)
		return 0;
	text = malloc(size + 1);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	argc = split(text, size - 1, argv);
	switch (data[0] % 4)
	{
		case 0:
			global(argc, argv);
			break;
		case 1:
			command(&g, argc, argv);
			break;
		case 2:
			values(text, data[0] >> 2);
			break;
		case 3:
			environment(argc, argv);
			break;
	}
	free(text);
	return 0;
}
