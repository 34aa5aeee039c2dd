/*-------------------------------------------------------------------------
 *
 * batch_fuzz.c
 *	  libFuzzer target for qml.enqueue_batch's element reader
 *	  (src/producer_batch.c), driven through a running server.
 *
 * The reader works on PostgreSQL's own jsonb, numeric, timestamptz and
 * interval values inside the backend, so it is fuzzed where it runs: each
 * input is the batch's JSON text, sent as a parameter to
 *	SELECT count(*) FROM qml.enqueue_batch($1::jsonb)
 * in a transaction that is rolled back.  Checks (the oracle is the SQL
 * contract of docs/errors.md's error table):
 *	- the backend survives (a crash or an assertion ends the connection);
 *	- an accepted batch gives one id per element;
 *	- a refused one says why with a documented SQLSTATE: 22023 (naming
 *	  "job N of the batch", N from 1, or "jobs must be a JSON array"),
 *	  54000 (too many jobs), or whatever the cast to jsonb says when the
 *	  text is no jsonb at all (checked on its own); nothing else (no
 *	  XX000, no 22003 or 22008 leaking out of the reader, no 42xxx).
 * What it cannot do: steer by the server's coverage (the backend is not
 * built for libFuzzer: each kind of answer counts as a feature instead, and
 * the seeds and the dictionary, test/fuzz/batch.dict, do the rest).  Under
 * `make fuzz` it runs twice: against the suites' server, and against a
 * server whose qml.so is built with ASan and UBSan
 * (test/fuzz/server_sanitized.sh); the pure parsers (cron, interval, CLI,
 * exec, routes) are fuzzed in-process under both sanitizers.
 *
 * Needs a server: PGHOST, PGPORT, PGUSER as the suites set them; the
 * target creates database qml_fuzz with the extension afresh.
 *
 * Build and run: make fuzz-batch (test/fuzz/fuzz.mk)
 *
 *-------------------------------------------------------------------------
 */
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static PGconn *conn;

/*
 * The backend is not instrumented, so the outcome stands in for coverage:
 * libFuzzer reads this section as extra features, one per kind of answer
 * (SQLSTATE and message without numbers and echoed input), and keeps an input
 * that gets a new one.
 */
__attribute__((section("__libfuzzer_extra_counters")))
static uint8_t outcome_seen[1024];

static void
count_outcome(const char *state, const char *msg)
{
	uint32_t	h = 2166136261u;

	for (const char *p = state; *p; p++)
		h = (h ^ (uint8_t) *p) * 16777619u;
	/* up to a colon: what follows echoes the input */
	for (const char *p = msg; *p && *p != ':' && p - msg < 200; p++)
		if (*p < '0' || *p > '9')
			h = (h ^ (uint8_t) *p) * 16777619u;
	outcome_seen[h % sizeof(outcome_seen)] = 1;
}

static const char batch_sql[] =
"SELECT (SELECT count(*) FROM qml.enqueue_batch(j)),"
"       CASE jsonb_typeof(j) WHEN 'array' THEN jsonb_array_length(j) END"
"  FROM (SELECT $1::jsonb AS j) s";

static void
die(const char *what, const char *detail, const char *input)
{
	fprintf(stderr, "batch_fuzz: %s: %s (input \"%.300s\")\n", what, detail ? detail : "", input);
	abort();
}

static void
run(PGconn *c, const char *sql)
{
	PGresult   *r = PQexec(c, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "batch_fuzz: %s: %s", sql, PQerrorMessage(c));
		exit(1);
	}
	PQclear(r);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	PGconn	   *admin = PQconnectdb("dbname=postgres");

	(void) argc;
	(void) argv;
	if (PQstatus(admin) != CONNECTION_OK)
	{
		fprintf(stderr, "batch_fuzz needs a running server (PG* environment): %s",
				PQerrorMessage(admin));
		exit(1);
	}
	run(admin, "SET client_min_messages = warning");
	run(admin, "DROP DATABASE IF EXISTS qml_fuzz WITH (FORCE)");
	run(admin, "CREATE DATABASE qml_fuzz");
	PQfinish(admin);
	conn = PQconnectdb("dbname=qml_fuzz");
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "batch_fuzz: %s", PQerrorMessage(conn));
		exit(1);
	}
	run(conn, "SET client_min_messages = warning");
	run(conn, "CREATE EXTENSION qml");
	run(conn, "SET statement_timeout = '10s'");
	return 0;
}

/* true when the text is not jsonb at all: then the cast's error is fine */
static bool
cast_fails(const char *text)
{
	const char *params[1] = {text};
	PGresult   *r;
	bool		fails;

	run(conn, "ROLLBACK");
	run(conn, "BEGIN");
	r = PQexecParams(conn, "SELECT $1::jsonb", 1, NULL, params, NULL, NULL, 0);
	fails = PQresultStatus(r) != PGRES_TUPLES_OK;
	PQclear(r);
	return fails;
}

static bool
allowed_error(const char *state, const char *msg, const char *text)
{
	int			n;

	if (strcmp(state, "22023") == 0)
		return strcmp(msg, "jobs must be a JSON array of objects") == 0 ||
			(sscanf(msg, "job %d of the batch ", &n) == 1 && n >= 1);
	if (strcmp(state, "54000") == 0 && strncmp(msg, "jobs has ", 9) == 0)
		return true;
	return cast_fails(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *text = malloc(size + 1);
	const char *params[1] = {text};
	PGresult   *r;

	memcpy(text, data, size);
	text[size] = '\0';
	run(conn, "BEGIN");
	r = PQexecParams(conn, batch_sql, 1, NULL, params, NULL, NULL, 0);
	if (PQstatus(conn) != CONNECTION_OK)
		die("the server went away", PQerrorMessage(conn), text);
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
	{
		if (PQgetisnull(r, 0, 1) ||
			strcmp(PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1)) != 0)
			die("an accepted batch without one id per element", PQgetvalue(r, 0, 0), text);
		count_outcome("00000", strlen(PQgetvalue(r, 0, 0)) > 1 ? "many" : PQgetvalue(r, 0, 0));
	}
	else
	{
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);

		if (state == NULL || msg == NULL || !allowed_error(state, msg, text))
			die("an undocumented error", PQerrorMessage(conn), text);
		count_outcome(state, msg);
	}
	PQclear(r);
	run(conn, "ROLLBACK");
	free(text);
	return 0;
}
