/*
 * api_test.c
 *	  libqml's client, schema and job API against the test cluster: every
 *	  call's success and error paths.
 *
 * Databases (run.sh creates them empty): $PGDATABASE for the API, and
 * qml_client_noext, which never gets the extension, for the "not
 * installed" paths; qml_client_old has recurring jobs taken away, for
 * the "feature missing" path.
 */
#include <pthread.h>

#include "testlib.h"

static PGconn *db;

static qml_client *
client_with(const char *url, bool auto_migrate, int max, int connect_timeout,
			int statement_timeout)
{
	qml_config *cfg = qml_config_new();
	qml_client *client = NULL;

	qml_config_set_database_url(cfg, url);
	qml_config_set_auto_migrate(cfg, auto_migrate);
	qml_config_set_pool_size(cfg, 1, max);
	qml_config_set_connect_timeout(cfg, connect_timeout);
	qml_config_set_statement_timeout(cfg, statement_timeout);
	qml_client_open(cfg, &client);
	qml_config_free(cfg);
	return client;
}

static qml_client *
client_on(const char *url, bool auto_migrate, int max, int statement_timeout)
{
	return client_with(url, auto_migrate, max, 2, statement_timeout);
}

static void
test_bad_connections(void)
{
	static const char *const bad[] = {
		"postgresql://postgres@127.0.0.1:1/none",	/* nothing listens */
		"postgresql://%zz",		/* malformed URL */
		"host= port=notaport",	/* malformed conninfo */
		"dbname=qml_no_such_database",	/* server says no */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		qml_config *cfg = qml_config_new();
		qml_client *client = (qml_client *) 1;
		int64_t		t0 = qml_now();
		qml_status	st;

		qml_config_set_database_url(cfg, bad[i]);
		qml_config_set_connect_timeout(cfg, 3);
		st = qml_client_open(cfg, &client);
		is_status(st, QML_ERR_CONNECT, "bad connection \"%s\" is a connection error", bad[i]);
		ok(client == NULL, "no client comes back");
		ok(strlen(qml_errmsg()) > 20, "with a message: %s", qml_errmsg());
		ok(qml_now() - t0 < 5000000, "and no hang");
		qml_config_free(cfg);
	}
	is_status(qml_client_open(NULL, NULL), QML_ERR_INVALID, "NULL out pointer refused");
}

static void
test_no_extension(void)
{
	qml_client *c = client_on("dbname=qml_client_noext", false, 2, 0);
	bool		exists = true;
	char	   *installed = (char *) 1,
			   *available = NULL;
	int64_t		id;
	qml_server *srv = NULL;
	qml_registry *reg = qml_registry_new();

	ok(c != NULL, "a client opens without the extension when auto-migrate is off");
	if (c == NULL)
		return;
	is_status(qml_schema_exists(c, &exists), QML_OK, "schema_exists");
	ok(!exists, "reports no schema");
	is_status(qml_schema_version(c, &installed, &available), QML_OK, "schema_version");
	ok(installed == NULL, "nothing installed");
	ok(available != NULL, "the server offers a version (%s)", available ? available : "none");
	qml_free(available);
	is_status(qml_enqueue(c, "m", NULL, NULL, &id), QML_ERR_NO_EXTENSION,
			  "enqueue without the extension: QML_ERR_NO_EXTENSION");
	contains(qml_errmsg(), "not installed", "the message says so");
	contains(qml_errhint(), "qml migrate", "and the hint says what to do");
	is_status(qml_job_get(c, 1, &(qml_job *) {NULL}), QML_ERR_NO_EXTENSION, "job_get too");
	is_status(qml_recurring_list(c, &(char *) {NULL}), QML_ERR_NO_EXTENSION, "recurring_list too");
	is_status(qml_server_new(c, reg, NULL, &srv), QML_OK, "server_new works");
	is_status(qml_server_start(srv), QML_ERR_NO_EXTENSION, "server_start refuses");
	qml_server_free(srv);
	qml_registry_free(reg);
	qml_client_close(c);
}

static void
test_migrate(void)
{
	qml_client *c = client_on("", false, 2, 0);
	bool		migrated = false,
				exists = false;
	char	   *installed = NULL;

	ok(c != NULL, "client on the test database");
	is_status(qml_migrate_if_needed(c, &migrated), QML_OK, "migrate_if_needed");
	ok(migrated, "it migrated");
	is_status(qml_migrate_if_needed(c, &migrated), QML_OK, "again");
	ok(!migrated, "nothing to do the second time");
	is_status(qml_migrate(c), QML_OK, "migrate when up to date is fine");
	is_status(qml_schema_exists(c, &exists), QML_OK, "schema_exists");
	ok(exists, "now it exists");
	is_status(qml_schema_version(c, &installed, NULL), QML_OK, "version");
	ok(installed && strlen(installed) > 0, "installed version %s", installed ? installed : "?");
	qml_free(installed);
	is_str(q1(db, "SELECT count(*) FROM pg_extension WHERE extname = 'qml'"), "1",
		   "CREATE EXTENSION really ran");
	qml_client_close(c);

	/* auto-migrate on a fresh database, from two clients at once */
	q1(db, "DROP EXTENSION qml CASCADE");
	c = client_on("", true, 2, 0);
	ok(c != NULL, "auto-migrate creates the extension at open");
	is_str(q1(db, "SELECT count(*) FROM pg_extension WHERE extname = 'qml'"), "1", "it is there");
	qml_client_close(c);
}

static void
test_enqueue(qml_client *c)
{
	int64_t		id = 0,
				id2 = 0,
				id3 = 0;
	qml_job    *j = NULL;
	qml_enqueue_options o = {0};

	is_status(qml_enqueue(c, "send_email", "[\"a@b.c\"]", NULL, &id), QML_OK, "enqueue");
	ok(id > 0, "an id");
	is_str(q1(db, "SELECT state || ' ' || queue || ' ' || arguments::text FROM qml.jobs WHERE id = %lld",
			  (long long) id), "enqueued default [\"a@b.c\"]", "stored as given");
	is_status(qml_enqueue(c, "m", NULL, NULL, NULL), QML_OK, "NULL arguments and id are fine");
	is_str(q1(db, "SELECT arguments::text FROM qml.jobs ORDER BY id DESC LIMIT 1"), "[]",
		   "NULL arguments mean []");

	o.queue = "mail";
	o.priority = 5;
	o.max_attempts = 3;
	o.delay_ms = 60000;
	is_status(qml_enqueue(c, "later", "{\"x\": 1}", &o, &id), QML_OK, "enqueue with options");
	is_str(q1(db, "SELECT state || ' ' || queue || ' ' || priority || ' ' || max_attempts"
			  " || ' ' || (run_at > now() + interval '50 seconds') FROM qml.jobs WHERE id = %lld",
			  (long long) id), "scheduled mail 5 3 true", "options applied");

	memset(&o, 0, sizeof(o));
	o.run_at = qml_now() - 1000000;
	is_status(qml_enqueue(c, "past", NULL, &o, &id), QML_OK, "run_at in the past");
	is_str(q1(db, "SELECT state FROM qml.jobs WHERE id = %lld", (long long) id), "enqueued",
		   "is enqueued at once");

	memset(&o, 0, sizeof(o));
	o.unique_key = "report-2025-01";
	is_status(qml_enqueue(c, "report", NULL, &o, &id), QML_OK, "unique enqueue");
	is_status(qml_enqueue(c, "report", NULL, &o, &id2), QML_OK, "unique enqueue again");
	is_int(id2, id, "same id for the same live unique key");

	o.unique_key = NULL;
	o.backoff_base_ms = 1500;
	is_status(qml_enqueue(c, "backoff", NULL, &o, &id3), QML_OK, "enqueue with a backoff");
	is_str(q1(db, "SELECT backoff_base FROM qml.jobs WHERE id = %lld", (long long) id3),
		   "00:00:01.5", "backoff stored");

	/* errors */
	is_status(qml_enqueue(c, "m", "{not json", NULL, &id), QML_ERR_INVALID, "invalid JSON refused");
	contains(qml_errmsg(), "not valid JSON", "saying so");
	contains(qml_errmsg(), "column", "and where");
	is_status(qml_enqueue(c, "m", "[\"\\u0000\"]", NULL, &id), QML_ERR_INVALID,
			  "a NUL character (jsonb cannot store it) refused");
	is_status(qml_enqueue(c, NULL, NULL, NULL, &id), QML_ERR_INVALID, "NULL method refused");
	is_status(qml_enqueue(c, "", NULL, NULL, &id), QML_ERR_INVALID, "empty method refused");
	is_status(qml_enqueue(NULL, "m", NULL, NULL, &id), QML_ERR_INVALID, "NULL client refused");
	memset(&o, 0, sizeof(o));
	o.queue = "";
	is_status(qml_enqueue(c, "m", NULL, &o, &id), QML_ERR_INVALID, "empty queue: the server's 22023");
	is_str(qml_errsqlstate(), "22023", "with its SQLSTATE");
	o.queue = NULL;
	o.max_attempts = -1;
	is_status(qml_enqueue(c, "m", NULL, &o, &id), QML_ERR_INVALID, "negative max_attempts refused");
	o.max_attempts = 0;
	o.delay_ms = 10;
	o.run_at = qml_now();
	is_status(qml_enqueue(c, "m", NULL, &o, &id), QML_ERR_INVALID, "run_at and delay together refused");

	/* big integers keep their digits */
	is_status(qml_enqueue(c, "big", "[12345678901234567890123, 1.50]", NULL, &id), QML_OK,
			  "huge integer arguments");
	is_status(qml_job_get(c, id, &j), QML_OK, "read back");
	is_str(j ? j->arguments : NULL, "[12345678901234567890123, 1.50]", "digits intact");
	qml_job_free(j);
}

static void
test_batch_and_schedule(qml_client *c)
{
	qml_job_spec jobs[3] = {
		{.method = "one",.arguments = "[1]"},
		{.method = "two",.arguments = "{\"k\": [2, 3]}",.options = {.queue = "q2",.priority = 7}},
		{.method = "three",.options = {.delay_ms = 30000,.max_attempts = 2}},
	};
	int64_t		ids[3] = {0, 0, 0};
	int64_t		id;
	int64_t		at = qml_now() + 3600 * 1000000LL;

	is_status(qml_enqueue_batch(c, jobs, 3, ids), QML_OK, "enqueue_batch");
	ok(ids[0] && ids[1] && ids[2] && ids[0] != ids[1], "three ids");
	is_str(q1(db, "SELECT method || ' ' || queue || ' ' || priority || ' ' || arguments::text"
			  " FROM qml.jobs WHERE id = %lld", (long long) ids[1]),
		   "two q2 7 {\"k\": [2, 3]}", "ids in the order of the jobs");
	is_str(q1(db, "SELECT state || ' ' || max_attempts || ' ' || (run_at > now() + interval '20 s')"
			  " FROM qml.jobs WHERE id = %lld", (long long) ids[2]),
		   "scheduled 2 true", "a delay in a batch");
	is_status(qml_enqueue_batch(c, jobs, 0, NULL), QML_OK, "an empty batch is fine");
	jobs[1].arguments = "[oops]";
	is_status(qml_enqueue_batch(c, jobs, 3, ids), QML_ERR_INVALID, "a batch with bad JSON is refused");
	contains(qml_errmsg(), "job 2", "naming the job");
	jobs[1].arguments = NULL;
	jobs[1].method = "";
	is_status(qml_enqueue_batch(c, jobs, 3, ids), QML_ERR_INVALID, "a batch with an empty method is refused");
	jobs[1].method = "two";
	jobs[1].options.queue = "";
	is_status(qml_enqueue_batch(c, jobs, 3, ids), QML_ERR_INVALID, "the server's check of a batch comes back");

	is_status(qml_schedule_at(c, "at", NULL, at, NULL, &id), QML_OK, "schedule_at");
	is_str(q1(db, "SELECT state || ' ' || (abs(extract(epoch FROM run_at) * 1000000 - %lld) < 2)"
			  " FROM qml.jobs WHERE id = %lld", (long long) at, (long long) id),
		   "scheduled true", "at that time, to the microsecond");
	is_status(qml_schedule_in(c, "in", NULL, 90000, NULL, &id), QML_OK, "schedule_in");
	is_str(q1(db, "SELECT state || ' ' || (run_at BETWEEN now() + interval '80 s' AND now() + interval '100 s')"
			  " FROM qml.jobs WHERE id = %lld", (long long) id), "scheduled true", "that much later");
	is_status(qml_schedule_at(c, "at", NULL, 0, NULL, &id), QML_ERR_INVALID, "schedule_at without a time");
	is_status(qml_schedule_in(c, "in", NULL, -5, NULL, &id), QML_ERR_INVALID, "negative delay");
}

static void
test_read_and_change(qml_client *c)
{
	qml_job    *j = NULL;
	qml_job_list *list = NULL;
	qml_job_filter f = QML_JOB_FILTER_INIT;
	qml_job_event *ev = NULL;
	size_t		nev = 0;
	int64_t		id,
				id2;
	bool		done = true;
	qml_enqueue_options o = {.queue = "readq",.unique_key = "uk-1"};

	is_status(qml_enqueue(c, "readme", "{\"a\": 1}", &o, &id), QML_OK, "a job to read");
	is_status(qml_job_get(c, id, &j), QML_OK, "job_get");
	if (j)
	{
		is_int(j->id, id, "id");
		is_str(j->method, "readme", "method");
		is_str(j->queue, "readq", "queue");
		is_str(j->arguments, "{\"a\": 1}", "arguments");
		is_int(j->state, QML_STATE_ENQUEUED, "state");
		is_int(j->attempts, 0, "attempts");
		ok(j->created_at != QML_TIME_NULL && llabs(j->created_at - qml_now()) < 60000000, "created_at");
		ok(j->finished_at == QML_TIME_NULL, "finished_at NULL");
		ok(j->result == NULL && j->last_error == NULL && j->locked_by == NULL, "NULLs are NULL");
		is_str(j->unique_key, "uk-1", "unique key");
		qml_job_free(j);
	}
	j = (qml_job *) 1;
	is_status(qml_job_get(c, 987654321, &j), QML_ERR_NOT_FOUND, "job_get of a missing job");
	ok(j == NULL, "gives NULL");
	contains(qml_errmsg(), "987654321", "naming it");
	is_status(qml_job_get(c, 1, NULL), QML_ERR_INVALID, "NULL out pointer");

	f.queue = "readq";
	is_status(qml_job_list_get(c, &f, &list), QML_OK, "list by queue");
	ok(list && list->count == 1 && list->jobs[0]->id == id, "finds it");
	qml_job_list_free(list);
	f.queue = NULL;
	f.state = QML_STATE_SCHEDULED;
	f.limit = 2;
	is_status(qml_job_list_get(c, &f, &list), QML_OK, "list by state with a limit");
	ok(list && list->count == 2, "two scheduled jobs");
	if (list && list->count == 2)
	{
		ok(list->jobs[0]->id > list->jobs[1]->id, "newest first");
		ok(list->jobs[0]->state == QML_STATE_SCHEDULED, "all scheduled");
		f.before_id = list->jobs[1]->id;
	}
	qml_job_list_free(list);
	is_status(qml_job_list_get(c, &f, &list), QML_OK, "next page");
	ok(list && list->count >= 1 && list->jobs[0]->id < f.before_id, "older ones");
	qml_job_list_free(list);
	f = (qml_job_filter) QML_JOB_FILTER_INIT;
	f.method = "readme";
	is_status(qml_job_list_get(c, &f, &list), QML_OK, "list by method");
	ok(list && list->count == 1, "one");
	qml_job_list_free(list);
	f.state = 42;
	is_status(qml_job_list_get(c, &f, &list), QML_ERR_INVALID, "a bad state refused");
	f.state = -1;
	f.limit = 20000;
	is_status(qml_job_list_get(c, &f, &list), QML_ERR_INVALID, "a huge limit refused");
	is_status(qml_job_list_get(c, NULL, &list), QML_OK, "NULL filter lists everything");
	ok(list && list->count > 5, "some jobs (%zu)", list ? list->count : 0);
	qml_job_list_free(list);

	/* requeue and delete */
	is_status(qml_job_requeue(c, id, &done), QML_OK, "requeue a live job");
	ok(!done, "does nothing");
	is_status(qml_job_delete(c, id, &done), QML_OK, "delete");
	ok(done, "deleted");
	is_str(q1(db, "SELECT state FROM qml.jobs WHERE id = %lld", (long long) id), "deleted", "soft-deleted");
	is_status(qml_job_delete(c, id, &done), QML_OK, "delete again");
	ok(!done, "nothing to delete");
	is_status(qml_job_delete(c, 987654321, &done), QML_ERR_NOT_FOUND, "delete a missing job");
	is_status(qml_job_requeue(c, 987654321, &done), QML_ERR_NOT_FOUND, "requeue a missing job");

	/* a new live job takes the unique key: requeueing the old one conflicts */
	is_status(qml_enqueue(c, "readme", NULL, &o, &id2), QML_OK, "the key is free again");
	ok(id2 != id, "a new job");
	is_status(qml_job_requeue(c, id, &done), QML_ERR_CONFLICT, "requeue with the key taken: conflict");
	is_str(qml_errsqlstate(), "23505", "unique_violation");
	qml_job_delete(c, id2, NULL);
	is_status(qml_job_requeue(c, id, &done), QML_OK, "requeue once the key is free");
	ok(done, "requeued");
	is_str(q1(db, "SELECT state || ' ' || attempts FROM qml.jobs WHERE id = %lld", (long long) id),
		   "enqueued 0", "enqueued afresh");

	is_status(qml_job_events(c, id, &ev, &nev), QML_OK, "events");
	is_int(nev, 3, "created, deleted, requeued");
	if (nev == 3)
	{
		ok(ev[0].from_state == -1 && ev[0].to_state == QML_STATE_ENQUEUED, "created as enqueued");
		ok(ev[1].from_state == QML_STATE_ENQUEUED && ev[1].to_state == QML_STATE_DELETED, "then deleted");
		ok(ev[2].to_state == QML_STATE_ENQUEUED, "then enqueued again");
		ok(ev[0].at <= ev[1].at && ev[1].at <= ev[2].at, "in order");
	}
	qml_job_events_free(ev, nev);
	is_status(qml_job_events(c, 987654321, &ev, &nev), QML_OK, "events of a missing job");
	is_int(nev, 0, "none");
	qml_job_events_free(ev, nev);
}

static void
test_stats_queues(qml_client *c)
{
	qml_queue_stats *s = NULL;
	size_t		n = 0;
	bool		changed = false;
	int64_t		id;
	qml_enqueue_options o = {.queue = "statq"};

	qml_enqueue(c, "s", NULL, &o, &id);
	qml_enqueue(c, "s", NULL, &o, &id);
	qml_job_delete(c, id, NULL);
	is_status(qml_stats(c, "statq", &s, &n), QML_OK, "stats of a queue");
	ok(n == 1 && strcmp(s[0].queue, "statq") == 0, "one row");
	if (n == 1)
	{
		is_int(s[0].counts[QML_STATE_ENQUEUED], 1, "one enqueued");
		is_int(s[0].counts[QML_STATE_DELETED], 1, "one deleted");
		ok(!s[0].paused, "not paused");
	}
	qml_stats_free(s, n);
	is_status(qml_stats(c, NULL, &s, &n), QML_OK, "stats of every queue");
	ok(n >= 4, "several queues (%zu)", n);
	qml_stats_free(s, n);

	is_status(qml_queue_pause(c, "statq", &changed), QML_OK, "pause");
	ok(changed, "changed");
	is_status(qml_queue_pause(c, "statq", &changed), QML_OK, "pause again");
	ok(!changed, "unchanged");
	is_status(qml_stats(c, "statq", &s, &n), QML_OK, "stats");
	ok(n == 1 && s[0].paused, "shows it paused");
	qml_stats_free(s, n);
	is_status(qml_queue_resume(c, "statq", &changed), QML_OK, "resume");
	ok(changed, "changed");
	is_status(qml_queue_pause(c, "", &changed), QML_ERR_INVALID, "empty queue refused");
	is_status(qml_stats(c, NULL, NULL, &n), QML_ERR_INVALID, "NULL out pointer refused");
}

static void
test_recurring(qml_client *c)
{
	char	   *json = NULL;
	qml_status	st;

	st = qml_recurring_add(c, "nightly", "0 3 * * *", "cleanup", "[\"all\"]", NULL);
	if (st == QML_ERR_UNSUPPORTED)
	{
		ok(1, "# SKIP recurring jobs are not in this extension yet: %s", qml_errmsg());
		return;
	}
	is_status(st, QML_OK, "recurring_add");
	is_status(qml_recurring_list(c, &json), QML_OK, "recurring_list");
	contains(json, "\"nightly\"", "lists it");
	qml_free(json);
	is_status(qml_recurring_add(c, "nightly", "0 3 * * *", "cleanup", NULL, NULL), QML_ERR_CONFLICT,
			  "the same name twice: conflict");
	is_status(qml_recurring_add(c, "bad", "every tuesday-ish", "x", NULL, NULL), QML_ERR_INVALID,
			  "an invalid schedule: invalid");
	is_status(qml_recurring_add(c, "x", "* * * * *", "x", "{nope", NULL), QML_ERR_INVALID,
			  "invalid JSON arguments");
	is_status(qml_recurring_add(c, "", "* * * * *", "x", NULL, NULL), QML_ERR_INVALID, "empty name");
	is_status(qml_recurring_remove(c, "nightly"), QML_OK, "recurring_remove");
	is_status(qml_recurring_remove(c, "nightly"), QML_ERR_NOT_FOUND, "removing it again: not found");
	contains(qml_errmsg(), "nightly", "naming it");
}

static void
test_recurring_missing(void)
{
	qml_client *c = client_on("dbname=qml_client_old", true, 2, 0);
	PGconn	   *old = db_connect_to("qml_client_old");
	char	   *json = NULL;

	ok(c != NULL, "a client on a database with an older qml");
	if (c == NULL)
	{
		PQfinish(old);
		return;
	}
	/* an extension from before recurring jobs: take them away */
	q1(old, "ALTER EXTENSION qml DROP TABLE qml.recurring");
	q1(old, "DROP TABLE IF EXISTS qml.recurring CASCADE");
	q1(old, "DO $$ DECLARE f regprocedure; BEGIN FOR f IN SELECT p.oid FROM pg_proc p"
	   " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'qml'"
	   " AND p.proname IN ('add_recurring', 'remove_recurring') LOOP"
	   " EXECUTE format('ALTER EXTENSION qml DROP FUNCTION %%s', f);"
	   " EXECUTE format('DROP FUNCTION %%s', f); END LOOP; END $$");
	is_status(qml_recurring_add(c, "n", "* * * * *", "m", NULL, NULL), QML_ERR_UNSUPPORTED,
			  "recurring_add without qml.add_recurring: unsupported");
	contains(qml_errmsg(), "no recurring jobs", "saying so plainly");
	is_status(qml_recurring_list(c, &json), QML_ERR_UNSUPPORTED, "recurring_list too");
	is_status(qml_recurring_remove(c, "n"), QML_ERR_UNSUPPORTED, "recurring_remove too");
	qml_client_close(c);
	PQfinish(old);
}

static void
test_maintain_health(qml_client *c)
{
	char	   *report = NULL;
	qml_health *h = NULL;

	is_status(qml_maintain(c, &report), QML_OK, "maintain");
	ok(report && report[0] == '{', "returns a JSON report: %s", report ? report : "");
	qml_free(report);
	is_status(qml_health_check(c, &h), QML_OK, "health_check");
	if (h)
	{
		ok(h->installed_version != NULL, "installed version %s", h->installed_version);
		ok(h->server_version && h->database && h->user, "server, database, user");
		is_str(h->database, q1(db, "SELECT current_database()"), "the right database");
		ok(h->preloaded == (strcmp(q1(db, "SELECT 'qml' = ANY (string_to_array(replace("
									   "current_setting('shared_preload_libraries'), ' ', ''), ','))"), "t") == 0),
		   "preloaded as the server says");
		is_int(h->launcher, h->preloaded, "the scheduler's launcher runs exactly when qml is preloaded");
		printf("# scheduler processes serving the test database: %d\n", h->scheduler_processes);
	}
	qml_health_free(h);
}

/* ---- pool, timeouts, reconnects ---- */

typedef struct blocked_call
{
	qml_client *client;
	qml_status	st;
	int64_t		took;
} blocked_call;

static void *
enqueue_blocked(void *arg)
{
	blocked_call *b = arg;
	int64_t		t0 = qml_now();

	b->st = qml_enqueue(b->client, "blocked", NULL, NULL, NULL);
	b->took = qml_now() - t0;
	return NULL;
}

static void
test_timeouts(void)
{
	qml_client *c = client_with("", false, 1, 1, 3000);
	PGconn	   *locker = db_connect();
	blocked_call b = {c, QML_OK, 0};
	pthread_t	t;
	int64_t		t0,
				id;
	qml_status	st;

	ok(c != NULL, "a client with one connection, a 1 s connect timeout, a 3 s statement timeout");
	if (c == NULL)
	{
		PQfinish(locker);
		return;
	}
	q1(locker, "BEGIN");
	q1(locker, "LOCK TABLE qml.jobs IN ACCESS EXCLUSIVE MODE");
	pthread_create(&t, NULL, enqueue_blocked, &b);

	/*
	 * Until the thread's enqueue waits for the lock (so holds the pool's
	 * only connection), up to 10 s: a fixed pause could end first on a
	 * loaded machine, and then the call below would take the connection.
	 */
	for (int i = 0; i < 2000; i++)
	{
		q1(locker, "SELECT pg_stat_clear_snapshot()");
		if (q1_int(locker, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
				   " AND datname = current_database()") > 0)
			break;
		sleep_ms(5);
	}
	/* the only connection is busy: wait the connect timeout (1 s), then give up */
	t0 = qml_now();
	st = qml_enqueue(c, "second", NULL, NULL, &id);
	is_status(st, QML_ERR_TIMEOUT, "a pool with no free connection gives up after the connect timeout");
	contains(qml_errmsg(), "pool", "naming the pool");
	ok(qml_now() - t0 >= 900000 && qml_now() - t0 < 2500000, "after about 1 s (%lld ms)",
	   (long long) (qml_now() - t0) / 1000);
	pthread_join(t, NULL);
	is_status(b.st, QML_ERR_TIMEOUT, "the statement timeout ends a blocked call");
	ok(b.took >= 2900000 && b.took < 8000000, "after about 3 s (%lld ms)", (long long) b.took / 1000);
	q1(locker, "ROLLBACK");
	is_status(qml_enqueue(c, "after", NULL, NULL, &id), QML_OK, "the client works again");
	PQfinish(locker);
	qml_client_close(c);
}

static void
test_reconnect(qml_client *c)
{
	int64_t		id;

	is_status(qml_enqueue(c, "before", NULL, NULL, &id), QML_OK, "enqueue");
	q1(db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
	   " WHERE datname = current_database() AND pid <> pg_backend_pid()");
	sleep_ms(200);
	is_status(qml_enqueue(c, "after", NULL, NULL, &id), QML_OK,
			  "the pool replaces connections the server closed");
}

/* Each thread keeps its own error while others fail differently. */
typedef struct err_thread
{
	qml_client *c;
	int			kind;
	int			good;
} err_thread;

static void *
error_worker(void *arg)
{
	err_thread *e = arg;

	e->good = 1;
	for (int i = 0; i < 50; i++)
	{
		if (e->kind == 0)
		{
			if (qml_job_get(e->c, 900000000 + i, &(qml_job *) {NULL}) != QML_ERR_NOT_FOUND ||
				!strstr(qml_errmsg(), "does not exist"))
				e->good = 0;
		}
		else if (qml_enqueue(e->c, "m", "[bad", NULL, NULL) != QML_ERR_INVALID ||
				 !strstr(qml_errmsg(), "JSON"))
			e->good = 0;
	}
	return NULL;
}

static void
test_thread_errors(qml_client *c)
{
	err_thread	e[2] = {{c, 0, 0}, {c, 1, 0}};
	pthread_t	t[2];

	pthread_create(&t[0], NULL, error_worker, &e[0]);
	pthread_create(&t[1], NULL, error_worker, &e[1]);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	ok(e[0].good && e[1].good, "concurrent failing calls keep their own messages");
}

int
main(void)
{
	qml_client *c;

	db = db_connect();
	test_bad_connections();
	test_no_extension();
	test_migrate();
	c = test_client(false);
	test_enqueue(c);
	test_batch_and_schedule(c);
	test_read_and_change(c);
	test_stats_queues(c);
	test_recurring(c);
	test_recurring_missing();
	test_maintain_health(c);
	test_thread_errors(c);
	test_reconnect(c);
	db_ensure(&db);
	test_timeouts();
	qml_client_close(c);
	PQfinish(db);
	return tap_done();
}
