/*
 * cli.h
 *	  Shared pieces of the qml command: exit codes, global options, the
 *	  option parser, connecting, and output helpers (tables, times, JSON).
 *
 * Files: main.c (dispatch, help, connecting), args.c (global options, the
 * option parser, usage errors), output.c
 * (printing), cmd_jobs.c (enqueue, jobs, job, retry, delete), cmd_admin.c
 * (stats, pause, resume, migrate, status, recurring), cmd_worker.c,
 * exec.c, exec_guard.c and exec_result.c (worker --exec), cmd_demo.c (demo), cmd_dashboard.c (dashboard,
 * whose server is client/dashboard/).
 */
#ifndef QML_CLI_H
#define QML_CLI_H

#include <getopt.h>
#include <stdio.h>

#include <jansson.h>

#include "qml.h"

/* Exit codes, documented in docs/cli.md and `qml --help`. */
enum
{
	EXIT_OK = 0,
	EXIT_FAILED = 1,			/* the operation failed (server error, wrong state) */
	EXIT_USAGE = 2,				/* unknown command or option, bad argument or JSON */
	EXIT_CONNECT = 3,			/* cannot connect to the database */
	EXIT_NO_EXTENSION = 4,		/* qml not installed (or lacks the feature) */
	EXIT_NOT_FOUND = 5			/* no such job / recurring job */
};

typedef struct cli
{
	bool		json;
	const char *database_url;	/* --database-url, else DATABASE_URL / PG* */
} cli;

typedef struct cli_command
{
	const char *name;
	int			(*run) (cli *g, int argc, char **argv);
	const char *summary;
	const char *usage;			/* full help text */
} cli_command;

/* ---- args.c ---- */

/* What the global options before the command ask for. */
typedef struct cli_args
{
	enum
	{
		CLI_ARGS_RUN,			/* run the command argv[index] */
		CLI_ARGS_HELP,			/* -h, --help */
		CLI_ARGS_VERSION,		/* --version */
		CLI_ARGS_BAD_OPTION,	/* argv[index] is no global option */
		CLI_ARGS_NO_COMMAND		/* options only */
	}			what;
	int			index;
} cli_args;

/* Reads the global options into *g; stops at the first word that is not one. */
void		cli_parse_global(cli *g, int argc, char **argv, cli_args *a);

/* Options every command takes; add CLI_COMMON_OPTIONS to each table. */
#define OPT_HELP 1000
#define OPT_JSON 1001
#define OPT_DBURL 1002
#define CLI_COMMON_OPTIONS \
	{"help", no_argument, NULL, OPT_HELP}, \
	{"json", no_argument, NULL, OPT_JSON}, \
	{"database-url", required_argument, NULL, OPT_DBURL}

#define CLI_HELP (-2)			/* cli_getopt: --help was given */
#define CLI_BAD (-3)			/* cli_getopt: bad option (already reported) */

/*
 * getopt_long over a command's arguments (argv[0] is the command name).
 * Handles the common options itself; returns an option's val, -1 at the
 * end (positional arguments then start at optind), CLI_HELP or CLI_BAD.
 */
int			cli_getopt(cli *g, const char *cmd, int argc, char **argv,
					   const struct option *opts);

/* Prints "qml CMD: message" and a pointer to --help; returns EXIT_USAGE. */
int			cli_usage_error(cli *g, const char *cmd, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

/*
 * A queue or method given to look for or act on: empty is a usage error
 * (most often an unset shell variable), not "no such queue". EXIT_OK or
 * EXIT_USAGE; NULL (not given) is fine.
 */
int			cli_name_given(cli *g, const char *cmd, const char *what, const char *value);
/* The usage error for -d/--database-url "": EXIT_USAGE. */
int			cli_empty_url(cli *g, const char *cmd);

/* ---- cmd_dashboard.c ---- */

struct dash_options;

/*
 * The dashboard's public addresses (dashboard and demo): arg is a
 * --public-url value, added to o; after the options, arg NULL reads
 * QML_DASHBOARD_PUBLIC_URL unless --public-url was given. EXIT_OK, or a
 * usage error's EXIT_USAGE.
 */
int			cli_public_url(cli *g, const char *cmd, struct dash_options *o, const char *arg);

/* ---- main.c ---- */

/* Prints the command's help (stdout) and returns EXIT_OK. */
int			cli_help(const char *cmd);

/* Connects; prints the error and returns its exit code on failure. */
int			cli_connect(cli *g, bool auto_migrate, int max_connections,
						qml_client **client);

/* ---- output.c ---- */

int			cli_exit_code(qml_status st);
/* Prints the thread's libqml error; returns its exit code. */
int			cli_fail(cli *g, qml_status st);
/* Prints a JSON value on stdout and frees it. */
void		cli_print_json(json_t *v);
/* A JSON value from text; null when NULL; the text as a string if invalid. */
json_t	   *cli_json_value(const char *text);
json_t	   *cli_json_time(int64_t us);
json_t	   *cli_json_job(const qml_job *job);
/*
 * Text from the database with its control characters written out (\x1b),
 * so that a terminal does not obey them; newline and tab kept when
 * keep_lines. malloc'd; NULL when out of memory. Tables use it for
 * every cell.
 */
char	   *cli_printable(const char *s, bool keep_lines);
/* "  LABEL         value\n", the value through cli_printable */
void		cli_print_field(const char *label, const char *value);
/* "2025-01-31 12:00:05" (local time), "-" for QML_TIME_NULL */
const char *cli_time(int64_t us, char *buf, size_t size);
/* "5s ago", "in 3m", "-" */
const char *cli_ago(int64_t us, char *buf, size_t size);
/* "12 ms", "3.5 s", "2 min" */
const char *cli_duration(int64_t us, char *buf, size_t size);

/* Parses "500ms", "10s", "1.5m", "2h", "1d" or plain seconds. */
bool		cli_parse_duration_ms(const char *text, int64_t *ms);
/* Parses "2025-01-31 12:00[:05]", ISO 8601 with Z or an offset, "now". */
bool		cli_parse_time(const char *text, int64_t *us);
bool		cli_parse_int(const char *text, long min, long max, long *out);

typedef struct cli_table
{
	int			ncols;
	char	  **cells;			/* row-major, headers first */
	size_t		nrows;			/* including the header */
	size_t		cap;
} cli_table;

void		cli_table_init(cli_table *t, int ncols, ...);	/* headers */
void		cli_table_add(cli_table *t, ...);	/* ncols strings (NULL = "") */
void		cli_table_print(cli_table *t, FILE *out);
void		cli_table_free(cli_table *t);

/* ---- commands ---- */

int			cmd_enqueue(cli *g, int argc, char **argv);
int			cmd_jobs(cli *g, int argc, char **argv);
int			cmd_job(cli *g, int argc, char **argv);
int			cmd_retry(cli *g, int argc, char **argv);
int			cmd_delete(cli *g, int argc, char **argv);
int			cmd_stats(cli *g, int argc, char **argv);
int			cmd_pause(cli *g, int argc, char **argv);
int			cmd_resume(cli *g, int argc, char **argv);
int			cmd_migrate(cli *g, int argc, char **argv);
int			cmd_status(cli *g, int argc, char **argv);
int			cmd_recurring(cli *g, int argc, char **argv);
int			cmd_worker(cli *g, int argc, char **argv);
int			cmd_demo(cli *g, int argc, char **argv);
int			cmd_dashboard(cli *g, int argc, char **argv);

/* ---- exec.c: one job as a child process ---- */

typedef struct exec_spec
{
	const char *method;
	const char *command;		/* run with /bin/sh -c */
	int			kill_grace_ms;	/* SIGTERM to SIGKILL on timeout */
	bool		verbose;
	bool		json_log;
} exec_spec;

qml_outcome exec_handler(qml_job_ctx *ctx, void *user_data);

/*
 * exec_guard.c: starts /bin/sh with argv and envp, fds as its stdin,
 * stdout and stderr, in a process group of its own (*pid, its leader)
 * that dies with the worker. 0, or an errno.
 */
int			exec_guard_spawn(char *const argv[], char *const envp[], const int fds[3],
							 pid_t *pid);

#endif							/* QML_CLI_H */
