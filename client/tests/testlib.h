/*
 * testlib.h
 *	  A tiny TAP harness for the client tests, and helpers that talk to the
 *	  test database directly through libpq (to set up and check what libqml
 *	  did, without trusting libqml to check itself).
 *
 * The database comes from the environment like any libpq program's
 * (DATABASE_URL, else PGHOST/PGPORT/PGUSER/PGDATABASE); run.sh creates it.
 * QML_TEST_QUICK=1 shrinks the heavy cases (the valgrind pass sets it).
 */
#ifndef QML_TESTLIB_H
#define QML_TESTLIB_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "qml.h"

/* helpers a test file may not use */
#pragma GCC diagnostic ignored "-Wunused-function"

static int	tap_count;
static int	tap_failed;

static void
tap_ok(int pass, const char *file, int line, const char *fmt,...)
{
	va_list		ap;
	char		msg[2048];

	tap_count++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* one line per test, whatever the message holds */
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	printf("%s %d - %s\n", pass ? "ok" : "not ok", tap_count, msg);
	if (!pass)
	{
		tap_failed++;
		printf("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define is_int(got, want, ...) do { \
	long long g_ = (long long) (got), w_ = (long long) (want); \
	tap_ok(g_ == w_, __FILE__, __LINE__, __VA_ARGS__); \
	if (g_ != w_) printf("#   got %lld, want %lld\n", g_, w_); \
} while (0)

#define is_str(got, want, ...) do { \
	const char *g_ = (got), *w_ = (want); \
	int p_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_; \
	tap_ok(p_, __FILE__, __LINE__, __VA_ARGS__); \
	if (!p_) printf("#   got \"%s\", want \"%s\"\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
} while (0)

/* A call's status, with the thread's error message when it is not the one wanted. */
#define is_status(got, want, ...) do { \
	qml_status g_ = (got), w_ = (want); \
	tap_ok(g_ == w_, __FILE__, __LINE__, __VA_ARGS__); \
	if (g_ != w_) printf("#   got %s (%s), want %s\n", qml_status_str(g_), qml_errmsg(), qml_status_str(w_)); \
} while (0)

#define contains(hay, needle, ...) do { \
	const char *h_ = (hay), *n_ = (needle); \
	int p_ = h_ && strstr(h_, n_) != NULL; \
	tap_ok(p_, __FILE__, __LINE__, __VA_ARGS__); \
	if (!p_) printf("#   \"%s\" does not contain \"%s\"\n", h_ ? h_ : "(null)", n_); \
} while (0)

static int
tap_done(void)
{
	printf("1..%d\n", tap_count);
	if (tap_failed)
		printf("# %d of %d failed\n", tap_failed, tap_count);
	return tap_failed ? 1 : 0;
}

static bool
test_quick(void)
{
	const char *q = getenv("QML_TEST_QUICK");

	return q && *q && strcmp(q, "0") != 0;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0)
		;
}

/* ---- direct SQL ---- */

static PGconn *
db_connect_to(const char *dbname)
{
	const char *url = getenv("DATABASE_URL");
	const char *kw[3] = {NULL, NULL, NULL};
	const char *val[3] = {NULL, NULL, NULL};
	int			n = 0;
	PGconn	   *c;

	/* the URL first (expanded), then the database name over it */
	if (url && *url)
	{
		kw[n] = "dbname";
		val[n++] = url;
	}
	if (dbname)
	{
		kw[n] = "dbname";
		val[n++] = dbname;
	}
	c = PQconnectdbParams(kw, val, 1);
	if (PQstatus(c) != CONNECTION_OK)
	{
		printf("Bail out! cannot connect to the test database: %s", PQerrorMessage(c));
		exit(2);
	}
	return c;
}

static PGconn *
db_connect(void)
{
	return db_connect_to(NULL);
}

/* Reconnects when the server went away (restart tests). */
static void
db_ensure(PGconn **c)
{
	if (PQstatus(*c) != CONNECTION_OK)
	{
		PQfinish(*c);
		*c = db_connect();
	}
}

/* The first value of a query as text ("" for none or NULL; "ERROR: ..." on error). */
static const char *
q1(PGconn *c, const char *fmt,...)
{
	static __thread char out[4096];
	char		sql[8192];
	va_list		ap;
	PGresult   *r;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
		snprintf(out, sizeof(out), "ERROR: %s", PQerrorMessage(c));
	else if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		snprintf(out, sizeof(out), "%s", PQgetvalue(r, 0, 0));
	else
		out[0] = '\0';
	PQclear(r);
	return out;
}

static long long
q1_int(PGconn *c, const char *fmt,...)
{
	char		sql[8192];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	return atoll(q1(c, "%s", sql));
}

/* A client on the test database. */
static qml_client *
test_client(bool auto_migrate)
{
	qml_config *cfg = qml_config_new();
	qml_client *client = NULL;
	qml_status	st;

	qml_config_from_env(cfg);
	qml_config_set_auto_migrate(cfg, auto_migrate);
	qml_config_set_pool_size(cfg, 1, 8);
	st = qml_client_open(cfg, &client);
	qml_config_free(cfg);
	if (st != QML_OK)
	{
		printf("Bail out! cannot open a client: %s\n", qml_errmsg());
		exit(2);
	}
	return client;
}

#endif							/* QML_TESTLIB_H */
