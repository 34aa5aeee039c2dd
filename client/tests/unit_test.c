/*
 * unit_test.c
 *	  libqml without a database: configuration (code and environment),
 *	  the registry, names, the per-thread error, plain JSON, and numbers
 *	  written into a buffer.
 */
#include <pthread.h>

#include <jansson.h>

#include "testlib.h"
#include "../src/internal.h"

static void
test_config(void)
{
	qml_config *c = qml_config_new();

	ok(c != NULL, "config_new");
	is_str(qml_config_database_url(c), "", "default database url is empty (libpq environment)");
	is_int(qml_config_max_connections(c), 10, "default pool max is 10");
	ok(qml_config_auto_migrate(c), "auto-migrate is on by default");
	is_status(qml_config_set_pool_size(c, 2, 1), QML_ERR_INVALID, "min above max is refused");
	contains(qml_errmsg(), "pool size", "the message says what is wrong");
	is_status(qml_config_set_pool_size(c, 0, 0), QML_ERR_INVALID, "max 0 is refused");
	is_status(qml_config_set_pool_size(c, 1, 3), QML_OK, "pool 1..3");
	is_int(qml_config_max_connections(c), 3, "pool max set");
	is_status(qml_config_set_connect_timeout(c, 0), QML_ERR_INVALID, "connect timeout 0 refused");
	is_status(qml_config_set_statement_timeout(c, -1), QML_ERR_INVALID, "negative statement timeout refused");
	is_status(qml_config_set_database_url(c, "postgresql://x@h/db"), QML_OK, "url set");
	is_str(qml_config_database_url(c), "postgresql://x@h/db", "url kept");
	is_status(qml_config_set_auto_migrate(NULL, true), QML_ERR_INVALID, "NULL config refused");

	/* environment */
	setenv("DATABASE_URL", "postgresql://env@host/envdb", 1);
	setenv("QML_MAX_CONNECTIONS", "7", 1);
	setenv("QML_AUTO_MIGRATE", "off", 1);
	is_status(qml_config_from_env(c), QML_OK, "from_env");
	is_str(qml_config_database_url(c), "postgresql://env@host/envdb", "DATABASE_URL read");
	is_int(qml_config_max_connections(c), 7, "QML_MAX_CONNECTIONS read");
	ok(!qml_config_auto_migrate(c), "QML_AUTO_MIGRATE=off read");
	setenv("QML_MAX_CONNECTIONS", "lots", 1);
	is_status(qml_config_from_env(c), QML_ERR_INVALID, "a malformed QML_MAX_CONNECTIONS is an error");
	contains(qml_errmsg(), "QML_MAX_CONNECTIONS", "naming the variable");
	setenv("QML_MAX_CONNECTIONS", "5", 1);
	setenv("QML_AUTO_MIGRATE", "perhaps", 1);
	is_status(qml_config_from_env(c), QML_ERR_INVALID, "a malformed QML_AUTO_MIGRATE is an error");
	unsetenv("QML_AUTO_MIGRATE");
	setenv("QML_MIN_CONNECTIONS", "9", 1);
	is_status(qml_config_from_env(c), QML_ERR_INVALID, "QML_MIN_CONNECTIONS above QML_MAX_CONNECTIONS");
	unsetenv("QML_MIN_CONNECTIONS");
	unsetenv("QML_MAX_CONNECTIONS");
	unsetenv("DATABASE_URL");
	qml_config_free(c);
	qml_config_free(NULL);
}

static void
test_server_config(void)
{
	qml_server_config *c = qml_server_config_new(NULL);
	const char *two[] = {"critical", "bulk"};
	const char *dup[] = {"a", "a"};
	const char *empty[] = {""};

	ok(c != NULL, "server_config_new");
	is_int(qml_server_config_workers(c), 4, "4 workers by default");
	is_status(qml_server_config_set_workers(c, 0), QML_ERR_INVALID, "0 workers refused");
	is_status(qml_server_config_set_workers(c, 16), QML_OK, "16 workers");
	is_status(qml_server_config_set_queues(c, two, 2), QML_OK, "two queues");
	is_status(qml_server_config_set_queues(c, dup, 2), QML_ERR_INVALID, "a queue twice refused");
	is_status(qml_server_config_set_queues(c, empty, 1), QML_ERR_INVALID, "an empty queue name refused");
	is_status(qml_server_config_set_queues(c, NULL, 0), QML_ERR_INVALID, "no queue refused");
	is_status(qml_server_config_set_queues_csv(c, " a, b ,c"), QML_OK, "queues from csv");
	is_status(qml_server_config_set_queues_csv(c, ",,"), QML_ERR_INVALID, "csv without names refused");
	is_status(qml_server_config_set_queues_csv(c, "a,,b"), QML_ERR_INVALID, "csv with an empty name refused");
	is_status(qml_server_config_set_queues_csv(c, "a, "), QML_ERR_INVALID, "csv with a trailing comma refused");
	is_status(qml_server_config_set_queues_csv(c, ""), QML_ERR_INVALID, "empty csv refused");
	is_status(qml_server_config_set_fetch_batch(c, 1001), QML_ERR_INVALID, "batch over 1000 refused");
	is_status(qml_server_config_set_prefetch(c, 0), QML_OK, "prefetch 0 (claim for idle workers only)");
	is_status(qml_server_config_set_prefetch(c, -1), QML_ERR_INVALID, "negative prefetch refused");
	is_status(qml_server_config_set_prefetch(c, 10001), QML_ERR_INVALID, "prefetch over 10000 refused");
	is_status(qml_server_config_set_durable_claims(NULL, true), QML_ERR_INVALID, "durable claims on no config refused");
	is_status(qml_server_config_set_durable_claims(c, true), QML_OK, "durable claims");
	is_status(qml_server_config_set_poll_interval(c, 1), QML_ERR_INVALID, "poll interval 1 ms refused");
	is_status(qml_server_config_set_lease(c, 10), QML_ERR_INVALID, "lease 10 ms refused");
	is_status(qml_server_config_set_job_timeout(c, -5), QML_ERR_INVALID, "negative timeout refused");
	is_status(qml_server_config_set_flush(c, 0, 10), QML_ERR_INVALID, "flush interval 0 refused");
	is_status(qml_server_config_set_name(c, "a-name-that-is-fine"), QML_OK, "name");

	setenv("QML_WORKERS", "12", 1);
	setenv("QML_QUEUES", "high,low", 1);
	is_status(qml_server_config_from_env(c), QML_OK, "server from_env");
	is_int(qml_server_config_workers(c), 12, "QML_WORKERS read");
	setenv("QML_WORKERS", "0", 1);
	is_status(qml_server_config_from_env(c), QML_ERR_INVALID, "QML_WORKERS=0 is an error");
	contains(qml_errmsg(), "QML_WORKERS", "naming the variable");
	setenv("QML_WORKERS", "2", 1);
	setenv("QML_QUEUES", " , ", 1);
	is_status(qml_server_config_from_env(c), QML_ERR_INVALID, "QML_QUEUES without names is an error");
	contains(qml_errmsg(), "QML_QUEUES", "naming the variable");
	unsetenv("QML_QUEUES");
	setenv("QML_PREFETCH", "many", 1);
	is_status(qml_server_config_from_env(c), QML_ERR_INVALID, "QML_PREFETCH not a number is an error");
	contains(qml_errmsg(), "QML_PREFETCH", "naming the variable");
	setenv("QML_PREFETCH", "0", 1);
	is_status(qml_server_config_from_env(c), QML_OK, "QML_PREFETCH=0 read");
	unsetenv("QML_PREFETCH");
	setenv("QML_DURABLE_CLAIMS", "perhaps", 1);
	is_status(qml_server_config_from_env(c), QML_ERR_INVALID, "QML_DURABLE_CLAIMS not on/off is an error");
	contains(qml_errmsg(), "QML_DURABLE_CLAIMS", "naming the variable");
	setenv("QML_DURABLE_CLAIMS", "on", 1);
	is_status(qml_server_config_from_env(c), QML_OK, "QML_DURABLE_CLAIMS=on read");
	unsetenv("QML_DURABLE_CLAIMS");
	/* durations as the command line takes them; a bare number stays ms */
	setenv("QML_LEASE", "5m", 1);
	setenv("QML_GRACE_PERIOD", "30s", 1);
	setenv("QML_JOB_TIMEOUT", "1h", 1);
	setenv("QML_POLL_INTERVAL", "500", 1);
	is_status(qml_server_config_from_env(c), QML_OK, "QML_LEASE=5m, QML_GRACE_PERIOD=30s, QML_JOB_TIMEOUT=1h read");
	setenv("QML_LEASE", "100", 1);
	is_status(qml_server_config_from_env(c), QML_ERR_INVALID, "QML_LEASE=100 (ms) is below the least lease");
	contains(qml_errmsg(), "QML_LEASE must be a duration", "naming the variable");
	setenv("QML_LEASE", "soon", 1);
	is_status(qml_server_config_from_env(c), QML_ERR_INVALID, "QML_LEASE=soon is an error");
	unsetenv("QML_LEASE");
	setenv("QML_POLL_INTERVAL", "2h", 1);
	is_status(qml_server_config_from_env(c), QML_ERR_INVALID, "QML_POLL_INTERVAL over an hour is an error");
	unsetenv("QML_POLL_INTERVAL");
	unsetenv("QML_GRACE_PERIOD");
	unsetenv("QML_JOB_TIMEOUT");
	setenv("QML_SERVER_NAME", "n12345678-n12345678-n12345678-n12345678-n12345678-"
		   "n12345678-n12345678-n12345678-n12345678-n12345678-x", 1);
	is_status(qml_server_config_from_env(c), QML_ERR_INVALID, "QML_SERVER_NAME too long is an error");
	contains(qml_errmsg(), "QML_SERVER_NAME", "naming the variable");
	unsetenv("QML_SERVER_NAME");
	unsetenv("QML_WORKERS");
	qml_server_config_free(c);

	{
		int64_t		ms = 0;

		ok(qml_parse_duration_ms("5m", 1, &ms) && ms == 300000, "5m is 300000 ms");
		ok(qml_parse_duration_ms("250", 1, &ms) && ms == 250, "a bare 250 in ms");
		ok(qml_parse_duration_ms("1.5", 1000, &ms) && ms == 1500, "a bare 1.5 in seconds");
		ok(qml_parse_duration_ms("500 ms", 1000, &ms) && ms == 500, "500 ms");
		ok(!qml_parse_duration_ms("5 fortnights", 1, &ms), "an unknown unit is refused");
		ok(!qml_parse_duration_ms("-1s", 1, &ms), "a negative duration is refused");
	}
}

static qml_outcome
noop(qml_job_ctx *ctx, void *data)
{
	(void) data;
	return qml_success(ctx, NULL);
}

static void
test_registry(void)
{
	qml_registry *r = qml_registry_new();
	int			data = 0;

	ok(r != NULL, "registry_new");
	is_status(qml_registry_add(r, "a", noop, NULL), QML_OK, "add a");
	is_status(qml_registry_add(r, "b", noop, &data), QML_OK, "add b");
	is_status(qml_registry_add(r, "a", noop, &data), QML_OK, "add a again replaces it");
	is_int(qml_registry_count(r), 2, "two methods");
	is_status(qml_registry_add(r, "", noop, NULL), QML_ERR_INVALID, "empty method refused");
	is_status(qml_registry_add(r, "c", NULL, NULL), QML_ERR_INVALID, "NULL handler refused");
	is_status(qml_registry_set_fallback(r, noop, NULL), QML_OK, "fallback");
	qml_registry_free(r);
}

static void
test_names(void)
{
	qml_job_state s;

	is_str(qml_state_name(QML_STATE_AWAITING_RETRY), "awaiting_retry", "state names");
	ok(qml_state_name((qml_job_state) 99) == NULL, "no name for a bad state");
	ok(qml_state_parse("succeeded", &s) && s == QML_STATE_SUCCEEDED, "state parse");
	ok(!qml_state_parse("done", &s), "unknown state refused");
	ok(qml_state_parse("retrying", &s) && s == QML_STATE_AWAITING_RETRY, "retrying: awaiting_retry, as stats calls it");
	is_str(qml_status_str(QML_ERR_NO_EXTENSION), "qml extension not installed", "status strings");
	ok(qml_now() > 1600000000LL * 1000000, "qml_now is in microseconds");
}

/* Each thread sees its own error, however the calls interleave. */
static void *
error_thread(void *arg)
{
	qml_config *c = qml_config_new();
	long		n = (long) arg;
	char		want[32];
	long		good = 1;

	snprintf(want, sizeof(want), "%ld..%ld", n + 1, n);
	for (int i = 0; i < 2000; i++)
	{
		qml_config_set_pool_size(c, (int) n + 1, (int) n);
		if (!strstr(qml_errmsg(), want))
			good = 0;
	}
	qml_config_free(c);
	return (void *) good;
}

static void
test_thread_errors(void)
{
	pthread_t	t[2];
	void	   *r1,
			   *r2;

	pthread_create(&t[0], NULL, error_thread, (void *) 3L);
	pthread_create(&t[1], NULL, error_thread, (void *) 7L);
	pthread_join(t[0], &r1);
	pthread_join(t[1], &r2);
	ok(r1 && r2, "errors are per thread");
	qml_config_set_pool_size(NULL, 1, 1);
	is_int(qml_errcode(), QML_ERR_INVALID, "errcode of the last failing call");
	is_str(qml_errsqlstate(), "", "no sqlstate for a local error");
}

/*
 * The JSON check's fast path (util.c qml__json_plain) may only accept what
 * jansson accepts: whatever it takes skips jansson. Plain arguments take
 * it; everything else, invalid JSON above all, is left to jansson.
 */
static void
test_json_plain(void)
{
	static const char *const plain[] = {
		"[1]", "[]", "{}", "0", "-0", "-12.5", "\"a b\"", "true", "false", "null",
		" [1, 2.25, \"x\", {\"k\": [true, null]}] ", "{\"a\":\"q\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
		"123456789012345", "[[[[[[[[[[1]]]]]]]]]]", "\t{\"\":\"\"}\r\n",
	};
	static const char *const not_plain[] = {
		"", " ", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{1:2}", "01", "-",
		"1.", ".5", "+1", "[1 2]", "[", "]", "[1]]", "tru", "nul", "truex", "\"a",
		"\"a\\x\"", "\"a\\\"", "\"\t\"", "\"\\u0041\"", "\"\\u0000\"", "\"\xc3\xa9\"",
		"1e5", "1E5", "1234567890123456", "NaN", "Infinity", "'a'", "[1] [2]", "{\"a\" 1}",
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
	};
	bool		agree = true;

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		ok(qml__json_plain(plain[i]), "json plain: %s", plain[i]);
	for (size_t i = 0; i < sizeof(not_plain) / sizeof(not_plain[0]); i++)
		ok(!qml__json_plain(not_plain[i]), "json not plain (jansson decides): %s", not_plain[i]);
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
	{
		json_t	   *v = json_loads(plain[i], JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);

		agree = agree && v != NULL;
		json_decref(v);
	}
	ok(agree, "jansson accepts every plain value");
	ok(!qml__json_check("[1,]", NULL, 0) && !qml__json_check("\"\\u0000\"", NULL, 0),
	   "invalid JSON is still refused");
}

/* the ids of an outcome batch: numbers in decimal, as printf writes them */
static void
test_buf_i64(void)
{
	const int64_t v[] = {0, 7, -7, 10, 1234567890123LL, INT64_MAX, INT64_MIN};
	qml_buf		b;
	char		want[256] = "";
	size_t		n = 0;

	qml__buf_init(&b);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
	{
		if (i)
			qml__buf_append(&b, ",", 1);
		qml__buf_i64(&b, v[i]);
		n += (size_t) snprintf(want + n, sizeof(want) - n, "%s%lld", i ? "," : "", (long long) v[i]);
	}
	is_str(b.data, want, "qml__buf_i64 writes what printf writes, the extremes included");
	qml__buf_free(&b);
}

int
main(void)
{
	test_config();
	test_server_config();
	test_registry();
	test_names();
	test_thread_errors();
	test_json_plain();
	test_buf_i64();
	return tap_done();
}
