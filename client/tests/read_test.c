/*
 * read_test.c
 *	  libqml's monitoring reads (client.c and store_pg_read.c: overview,
 *	  throughput, workers), the watch connection (watch.c) and
 *	  qml_recurring_run, against the test cluster. Queues named rd_* are
 *	  this file's own.
 */
#include <inttypes.h>

#include "testlib.h"

static PGconn *db;

static const qml_queue_info *
find_queue(const qml_overview *o, const char *name)
{
	for (size_t i = 0; i < o->count; i++)
		if (strcmp(o->queues[i].queue, name) == 0)
			return &o->queues[i];
	return NULL;
}

static void
test_overview(qml_client *c)
{
	qml_overview *o = NULL;
	const qml_queue_info *a,
			   *b;
	PGconn	   *holder = db_connect();

	q1(db, "SELECT qml.enqueue('rd.a', queue => 'rd_a')");
	q1(db, "SELECT qml.enqueue('rd.a', queue => 'rd_a', priority => 5)");
	/* due an hour ago, in another queue: not rd_a's head */
	q1(db, "SELECT qml.enqueue('rd.b', queue => 'rd_b')");
	q1(db, "UPDATE qml.jobs SET run_at = now() - interval '1 hour' WHERE queue = 'rd_b'");
	q1(db, "SELECT qml.pause_queue('rd_b')");
	/*
	 * A retry due in a second that nobody promotes: the scheduler's lag. A
	 * lock on it keeps the scheduler (which skips locked rows) away.
	 */
	q1(db, "INSERT INTO qml.jobs (queue, method, state, max_attempts, run_at)"
	   " VALUES ('rd_c', 'rd.c', 'awaiting_retry', 3, now() + interval '1 second')");
	q1(holder, "BEGIN");
	q1(holder, "SELECT 1 FROM qml.jobs WHERE queue = 'rd_c' FOR UPDATE");
	sleep_ms(2000);

	is_status(qml_overview_get(c, &o), QML_OK, "qml_overview_get");
	a = o ? find_queue(o, "rd_a") : NULL;
	b = o ? find_queue(o, "rd_b") : NULL;
	ok(a && b, "both queues are listed");
	if (a && b)
	{
		is_int(a->counts[QML_STATE_ENQUEUED], 2, "rd_a: 2 enqueued");
		ok(!a->paused && b->paused, "rd_b paused, rd_a not");
		ok(a->oldest_waiting_s >= 0 && a->oldest_waiting_s < 60,
		   "rd_a's head waited seconds, not rd_b's hour (%.1f)", a->oldest_waiting_s);
		ok(b->oldest_waiting_s > 3500, "rd_b's head waited an hour (%.0f)", b->oldest_waiting_s);
		ok(a->jobs_per_second == 0, "nothing finished in rd_a: 0 jobs/s");
	}
	ok(o && o->scheduler_lag_s >= 0.9, "scheduler lag: the retry due a second ago (%.1f)",
	   o ? o->scheduler_lag_s : -1);
	ok(o && llabs(o->at - qml_now()) < 5000000, "at: the server's clock");
	qml_overview_free(o);
	PQfinish(holder);
	q1(db, "DELETE FROM qml.jobs WHERE queue = 'rd_c'");
	is_status(qml_overview_get(NULL, &o), QML_ERR_INVALID, "NULL client refused");
	is_status(qml_overview_get(c, NULL), QML_ERR_INVALID, "NULL output refused");
}

/*
 * A role whose search_path puts its own "=" for text first: the reads
 * name pg_catalog's operators, so queues are still told apart.
 */
static void
test_hostile_search_path(void)
{
	qml_config *cfg = qml_config_new();
	qml_client *c = NULL;
	qml_overview *o = NULL;
	const qml_queue_info *a;
	char		url[512];

	q1(db, "DROP SCHEMA IF EXISTS rd_evil CASCADE");
	q1(db, "CREATE SCHEMA rd_evil");
	q1(db, "CREATE FUNCTION rd_evil.yes(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true'");
	q1(db, "CREATE OPERATOR rd_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = rd_evil.yes)");
	snprintf(url, sizeof(url), "dbname=%s options='-c search_path=rd_evil,pg_catalog'", PQdb(db));
	qml_config_from_env(cfg);
	qml_config_set_database_url(cfg, url);
	qml_config_set_auto_migrate(cfg, false);
	is_status(qml_client_open(cfg, &c), QML_OK, "a client with a hostile search_path");
	qml_config_free(cfg);
	if (c)
	{
		is_status(qml_overview_get(c, &o), QML_OK, "the overview reads");
		a = o ? find_queue(o, "rd_b") : NULL;
		ok(a && a->oldest_waiting_s > 3500,
		   "rd_b's head is still rd_b's (a hijacked = takes rd_a's, of higher priority): %.1f",
		   a ? a->oldest_waiting_s : -1);
		qml_overview_free(o);
		qml_client_close(c);
	}
	q1(db, "DROP SCHEMA rd_evil CASCADE");
}

static void
test_throughput(qml_client *c)
{
	qml_throughput_bucket *b = NULL;
	size_t		n = 0;
	int64_t		failed = 0;
	const char *id = q1(db, "SELECT qml.enqueue('rd.t', queue => 'rd_t')");
	char		idt[32];

	snprintf(idt, sizeof(idt), "%s", id);
	q1(db, "SELECT 1 FROM qml.fetch('rd-w', '{rd_t}', session_lease => false)");
	q1(db, "SELECT qml.fail(%s, 'rd-w', 'no', false)", idt);
	q1(db, "SELECT qml.maintain()");	/* roll the counts up where that applies */
	for (int tries = 0; tries < 50 && failed == 0; tries++)
	{
		qml_free(b);
		is_status(qml_throughput_get(c, 60, &b, &n), QML_OK, "qml_throughput_get") ;
		failed = 0;
		for (size_t i = 0; i < n; i++)
			failed += b[i].failed;
		if (failed == 0)
			sleep_ms(200);
	}
	is_int(n, 60, "60 buckets for 60 minutes");
	ok(n == 60 && b[0].at < b[59].at && b[59].at - b[0].at == 59 * 60 * 1000000LL,
	   "oldest first, a minute apart");
	ok(n == 60 && qml_now() - b[59].at < 60 * 1000000LL, "the last is the current minute");
	ok(failed >= 1, "the failed job is counted");
	qml_free(b);
	is_status(qml_throughput_get(c, 0, &b, &n), QML_ERR_INVALID, "0 minutes refused");
	is_status(qml_throughput_get(c, 1441, &b, &n), QML_ERR_INVALID, "1441 minutes refused");
	is_status(qml_throughput_get(c, 1, &b, &n), QML_OK, "1 minute");
	is_int(n, 1, "one bucket");
	qml_free(b);
}

static qml_outcome
slow_handler(qml_job_ctx *ctx, void *data)
{
	(void) data;
	while (!qml_ctx_cancelled(ctx))
		sleep_ms(20);
	return qml_retry(ctx, "stopped");
}

static void
test_workers(qml_client *c)
{
	qml_registry *reg = qml_registry_new();
	qml_server_config *cfg = qml_server_config_new("rd-server");
	qml_server *srv = NULL;
	qml_worker_info *w = NULL;
	size_t		n = 0;
	const char *queues[] = {"rd_w"};
	bool		server_seen = false,
				holder_seen = false;

	q1(db, "SELECT qml.enqueue('rd.slow', queue => 'rd_w')");
	q1(db, "SELECT qml.enqueue('rd.other', queue => 'rd_x')");
	q1(db, "SELECT 1 FROM qml.fetch('rd-sql-worker', '{rd_x}', session_lease => false)");
	qml_registry_add(reg, "rd.slow", slow_handler, NULL);
	qml_server_config_set_queues(cfg, queues, 1);
	qml_server_config_set_grace_period(cfg, 100);
	is_status(qml_server_new(c, reg, cfg, &srv), QML_OK, "a worker server");
	is_status(qml_server_start(srv), QML_OK, "started");
	for (int tries = 0; tries < 100; tries++)
	{
		if (q1_int(db, "SELECT count(*) FROM qml.jobs WHERE queue = 'rd_w' AND state = 'processing'") == 1)
			break;
		sleep_ms(50);
	}
	is_status(qml_workers_get(c, &w, &n), QML_OK, "qml_workers_get");
	for (size_t i = 0; i < n; i++)
	{
		if (strcmp(w[i].worker, "rd-server") == 0)
			server_seen = w[i].connected && w[i].jobs == 1 && w[i].last_seen != QML_TIME_NULL;
		if (strcmp(w[i].worker, "rd-sql-worker") == 0)
			holder_seen = !w[i].connected && w[i].jobs == 1 && w[i].last_seen != QML_TIME_NULL;
	}
	ok(server_seen, "the libqml server: connected, holding its job");
	ok(holder_seen, "a lease holder with no server: listed with its job");
	qml_workers_free(w, n);
	qml_server_stop(srv);
	qml_server_free(srv);
	qml_server_config_free(cfg);
	qml_registry_free(reg);
	q1(db, "DELETE FROM qml.jobs WHERE queue IN ('rd_w', 'rd_x')");
}

static void
test_recurring_run(qml_client *c)
{
	int64_t		id = 0;

	q1(db, "SELECT qml.remove_recurring('rd_nightly')");
	q1(db, "SELECT qml.add_recurring('rd_nightly', '0 3 * * *', 'rd.nightly', '[1]', 'rd_r')");
	is_status(qml_recurring_run(c, "rd_nightly", &id), QML_OK, "qml_recurring_run");
	is_str(q1(db, "SELECT method || ' ' || queue || ' ' || state || ' ' || arguments::text"
			  " FROM qml.jobs WHERE id = %" PRId64, id),
		   "rd.nightly rd_r enqueued [1]", "its job, enqueued now");
	is_str(q1(db, "SELECT last_job_id IS NULL AND next_run_at > now() FROM qml.recurring WHERE name = 'rd_nightly'"),
		   "t", "the schedule did not move");
	is_status(qml_recurring_run(c, "rd_none", &id), QML_ERR_NOT_FOUND, "an unknown name: not found");
	is_status(qml_recurring_run(c, "", &id), QML_ERR_INVALID, "an empty name refused");
	q1(db, "SELECT qml.remove_recurring('rd_nightly')");
}

static void
test_watch(qml_client *c)
{
	qml_watch  *w = NULL;
	qml_overview *o = NULL;
	qml_throughput_bucket *b = NULL;
	size_t		n = 0;
	int			notified = 0;
	int64_t		t0;
	qml_status	st;

	is_status(qml_watch_open(c, "rd watch", &w), QML_OK, "qml_watch_open");
	is_int(q1_int(db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rd watch'"
				  " AND query = 'LISTEN qml'"), 1, "one session of its own, LISTENing");
	/*
	 * The scheduler may still send a wakeup the cases before left owing (a
	 * fetch came back empty as a job was enqueued): let those arrive, but a
	 * wait must come back empty, after its full time, within a few tries.
	 */
	for (int i = 0; i < 10; i++)
	{
		t0 = qml_now();
		st = qml_watch_wait(w, 200, &notified);
		if (st != QML_OK || notified == 0)
			break;
	}
	is_status(st, QML_OK, "a wait with nothing to say");
	ok(notified == 0 && qml_now() - t0 >= 150000, "times out with no notification");
	/* qml notifies when someone waits: a fetch that came back empty */
	q1(db, "SELECT 1 FROM qml.fetch('rd-w', '{rd_n}', session_lease => false)");
	q1(db, "SELECT qml.enqueue('rd.n', queue => 'rd_n')");
	is_status(qml_watch_wait(w, 5000, &notified), QML_OK, "a wait after an enqueue");
	ok(notified >= 1, "is woken by the notification (%d)", notified);
	is_status(qml_watch_overview(w, &o), QML_OK, "the overview over the watch");
	ok(o && find_queue(o, "rd_n") && find_queue(o, "rd_n")->counts[QML_STATE_ENQUEUED] == 1,
	   "it sees the new job");
	qml_overview_free(o);
	is_status(qml_watch_throughput(w, 5, &b, &n), QML_OK, "the throughput over the watch");
	is_int(n, 5, "5 buckets");
	qml_free(b);
	ok(qml_watch_statements(w) == 3, "3 statements so far: LISTEN, overview, throughput (%" PRIu64 ")",
	   qml_watch_statements(w));

	/* the server ends the session: reported once, then reconnected */
	q1(db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'rd watch'");
	sleep_ms(200);
	st = qml_watch_wait(w, 500, NULL);
	if (st == QML_OK)
		st = qml_watch_overview(w, &o);
	else
		o = NULL;
	is_status(st, QML_ERR_CONNECT, "a terminated session is a connection error");
	qml_overview_free(o);
	is_status(qml_watch_overview(w, &o), QML_OK, "the next call reconnects");
	qml_overview_free(o);
	is_int(q1_int(db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rd watch'"
				  " AND query = 'LISTEN qml'"), 0, "(its last statement is the overview)");
	q1(db, "DELETE FROM qml.jobs WHERE queue = 'rd_n'");
	q1(db, "SELECT 1 FROM qml.fetch('rd-w', '{rd_n}', session_lease => false)");
	q1(db, "SELECT qml.enqueue('rd.n', queue => 'rd_n')");
	is_status(qml_watch_wait(w, 5000, &notified), QML_OK, "a wait after the reconnect");
	ok(notified >= 1, "LISTENs again: woken by the next enqueue");
	qml_watch_close(w);
	is_status(qml_watch_open(NULL, NULL, &w), QML_ERR_INVALID, "NULL client refused");
	q1(db, "DELETE FROM qml.jobs WHERE queue = 'rd_n'");
}

int
main(void)
{
	qml_client *c;

	db = db_connect();
	q1(db, "SET client_min_messages = warning");
	c = test_client(true);
	q1(db, "DELETE FROM qml.jobs WHERE queue LIKE 'rd\\_%%'");
	q1(db, "DELETE FROM qml.queues WHERE name LIKE 'rd\\_%%'");
	test_overview(c);
	test_hostile_search_path();
	test_throughput(c);
	test_workers(c);
	test_recurring_run(c);
	test_watch(c);
	qml_client_close(c);
	PQfinish(db);
	return tap_done();
}
