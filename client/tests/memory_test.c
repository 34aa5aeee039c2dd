/*
 * memory_test.c
 *	  What only the memory store has: its URL's parameters, the capacity
 *	  limit (a clear error at enqueue, nothing of the call stored), the
 *	  snapshot of memory:PATH (jobs, history, unique keys, paused queues and
 *	  recurring jobs survive a clean close and open), the one-process lock
 *	  on PATH, and retention 0. The behaviour it shares with the other
 *	  stores is conformance_test.c's.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"
#include "../src/store.h"

static qml_status
open_url(const char *url, qml_client **c)
{
	qml_config *cfg = qml_config_new();
	qml_status	st;

	qml_config_set_database_url(cfg, url);
	st = qml_client_open(cfg, c);
	qml_config_free(cfg);
	return st;
}

static int64_t
count(qml_client *c, qml_job_state state)
{
	qml_queue_stats *s = NULL;
	size_t		n = 0;
	int64_t		total = 0;

	qml_stats(c, NULL, &s, &n);
	for (size_t i = 0; i < n; i++)
		total += s[i].counts[state];
	qml_stats_free(s, n);
	return total;
}

static void
test_url(void)
{
	qml_client *c = NULL;

	is_status(open_url("memory:?capacity=0", &c), QML_ERR_INVALID, "capacity 0 is refused");
	contains(qml_errmsg(), "capacity", "... naming it");
	is_status(open_url("memory:?colour=blue", &c), QML_ERR_INVALID, "an unknown parameter is refused");
	is_status(open_url("memory:?retention=soon", &c), QML_ERR_INVALID, "a bad retention is refused");
	is_status(open_url("memory:?capacity=5&retention=10s", &c), QML_OK, "capacity and retention together");
	{
		char		longq[130];
		qml_enqueue_options o = {.queue = longq};

		memset(longq, 'q', 129);
		longq[129] = '\0';
		is_status(qml_enqueue(c, "m", NULL, &o, NULL), QML_ERR_INVALID,
				  "a queue name past 128 characters is refused, as PostgreSQL does");
		contains(qml_errmsg(), "queue is too long", "... with its message");
	}
	qml_client_close(c);
}

static void
test_capacity(void)
{
	qml_client *c = NULL;
	qml_job_spec batch[3] = {{.method = "m"}, {.method = "m"}, {.method = "m"}};
	int64_t		id;

	open_url("memory:?capacity=3", &c);
	for (int i = 0; i < 2; i++)
		qml_enqueue(c, "m", NULL, NULL, &id);
	is_status(qml_enqueue_batch(c, batch, 3, NULL), QML_ERR_TIMEOUT,
			  "a batch past the capacity is refused");
	contains(qml_errmsg(), "full", "... saying the store is full");
	is_int(count(c, QML_STATE_ENQUEUED), 2, "... and none of it was stored");
	is_status(qml_enqueue(c, "m", NULL, NULL, &id), QML_OK, "the third job fits");
	is_status(qml_enqueue(c, "m", NULL, NULL, &id), QML_ERR_TIMEOUT, "the fourth does not");
	is_int(count(c, QML_STATE_ENQUEUED), 3, "the three accepted are all there");
	qml_client_close(c);
}

/* A batch is checked whole before any of it is stored, as PostgreSQL's is. */
static void
test_batch_refused(void)
{
	qml_client *c = NULL;
	char		longq[130];
	qml_job_spec batch[3] = {{.method = "m"}, {.method = "m"}, {.method = "m"}};

	memset(longq, 'q', 129);
	longq[129] = '\0';
	batch[2].options.queue = longq;
	open_url("memory:", &c);
	is_status(qml_enqueue_batch(c, batch, 3, NULL), QML_ERR_INVALID,
			  "a batch with a queue name past 128 characters is refused");
	is_int(count(c, QML_STATE_ENQUEUED), 0, "... and none of it was stored");
	qml_client_close(c);
}

static void
test_snapshot(void)
{
	char		path[64],
				url[96],
				lock[80];
	qml_client *c = NULL,
			   *other = NULL;
	qml_enqueue_options o = {.queue = "snap", .unique_key = "k", .priority = 7};
	int64_t		a,
				b,
				again;
	bool		changed;
	qml_job    *j = NULL;
	qml_job_event *ev = NULL;
	size_t		nev = 0;
	char	   *json = NULL;

	snprintf(path, sizeof(path), "/tmp/qml-memory-test-%d", (int) getpid());
	snprintf(lock, sizeof(lock), "%s.lock", path);
	snprintf(url, sizeof(url), "memory:%s", path);
	unlink(path);
	is_status(open_url(url, &c), QML_OK, "memory:PATH opens with no file yet");
	qml_enqueue(c, "snap.job", "{\"x\": 1}", &o, &a);
	qml_schedule_in(c, "snap.later", NULL, 3600000, NULL, &b);
	qml_job_delete(c, b, NULL);
	qml_queue_pause(c, "snap", &changed);
	qml_recurring_add(c, "nightly", "0 3 * * *", "snap.nightly", NULL, NULL);
	is_status(open_url(url, &other), QML_ERR_CONFLICT, "a second process (client) cannot open the same PATH");
	qml_client_close(c);
	ok(access(path, R_OK) == 0, "a clean close writes the snapshot");

	is_status(open_url(url, &c), QML_OK, "and the next open reads it");
	is_status(qml_job_get(c, a, &j), QML_OK, "the job is back");
	ok(j && j->state == QML_STATE_ENQUEUED && j->priority == 7 && strcmp(j->queue, "snap") == 0 &&
	   strcmp(j->arguments, "{\"x\": 1}") == 0, "with its state, queue, priority and arguments");
	qml_job_free(j);
	is_int(qml_job_get(c, b, &j) == QML_OK ? (int) j->state : -1, QML_STATE_DELETED, "a deleted job stays deleted");
	qml_job_free(j);
	qml_job_events(c, b, &ev, &nev);
	is_int(nev, 2, "history kept (created scheduled, then deleted)");
	qml_job_events_free(ev, nev);
	qml_enqueue(c, "snap.job", NULL, &o, &again);
	is_int(again, a, "the unique key still points to the live job");
	qml_enqueue(c, "snap.new", NULL, NULL, &again);
	ok(again > b, "new ids continue after the loaded ones");
	qml_queue_pause(c, "snap", &changed);
	ok(!changed, "the queue is still paused");
	qml_recurring_list(c, &json);
	contains(json, "nightly", "the recurring job is back");
	qml_free(json);
	qml_client_close(c);
	unlink(path);
	unlink(lock);
}

static void
test_retention_zero(void)
{
	qml_client *c = NULL;
	qml_store  *st;
	const char *queues[1] = {"default"};
	qml_session_config fc = {.kind = QML_SESSION_FETCH, .appname = "t", .worker = "w",
	.queues = queues, .nqueues = 1, .lease_ms = 60000};
	qml_store_session *s = NULL;
	qml_store_job *jobs[2];
	qml_job    *j = NULL;
	int64_t		id,
				kept;
	int			got = 0;
	size_t		done = 0;

	open_url("memory:?retention=0", &c);
	st = qml__client_store(c);
	qml_enqueue(c, "noop", NULL, NULL, &id);
	qml_enqueue(c, "noop", NULL, NULL, &kept);
	st->ops->session_open(st, &fc, &s);
	st->ops->fetch(s, 1, 0, jobs, &got);
	is_int(got, 1, "one job claimed");
	st->ops->complete(s, "w", &jobs[0]->id, NULL, 1, &done);
	free(jobs[0]);
	is_status(qml_job_get(c, id, &j), QML_ERR_NOT_FOUND, "retention 0: a finished job is dropped at once");
	is_status(qml_job_get(c, kept, &j), QML_OK, "a live one is kept");
	qml_job_free(j);
	st->ops->session_close(s);
	qml_client_close(c);
}

/*
 * Nothing to reserve on a fresh store: a heartbeat of no ids before any
 * job was claimed (the leases' heap has no array yet) is not out of memory.
 */
static void
test_reserve_nothing(void)
{
	qml_client *c = NULL;
	qml_store  *st;
	bool		held = false;

	open_url("memory:", &c);
	st = qml__client_store(c);
	is_status(st->ops->heartbeat(st, "w", NULL, 0, 60000, &held), QML_OK,
			  "a heartbeat of no ids on a fresh store");
	qml_client_close(c);
}

/* a dashboard's watch: woken by an enqueue, reads over its session */
static void
test_watch(void)
{
	qml_client *c = NULL;
	qml_watch  *w = NULL;
	qml_overview *o = NULL;
	int			notified = -1;
	int64_t		id;

	open_url("memory:", &c);
	is_status(qml_watch_open(c, NULL, &w), QML_OK, "a watch opens on the memory store");
	qml_watch_wait(w, 0, &notified);
	qml_enqueue(c, "m", NULL, NULL, &id);
	is_status(qml_watch_wait(w, 2000, &notified), QML_OK, "it waits");
	ok(notified > 0, "an enqueue wakes it");
	qml_watch_wait(w, 50, &notified);
	is_int(notified, 0, "nothing more: a timeout");
	is_status(qml_watch_overview(w, &o), QML_OK, "overview over the watch");
	ok(o && o->count == 1 && o->queues[0].counts[QML_STATE_ENQUEUED] == 1 &&
	   o->queues[0].oldest_waiting_s >= 0, "shows the waiting job");
	qml_overview_free(o);
	qml_watch_close(w);
	qml_client_close(c);
}

/*
 * The snapshot is JSON, which holds only UTF-8: a name that is not UTF-8
 * is refused as PostgreSQL refuses it, and a handler's error message with
 * any bytes is kept with them as '?'. Either used to make the snapshot
 * unwritable at close, losing every job of the run.
 */
static void
test_snapshot_utf8(void)
{
	char		path[64],
				url[96],
				lock[80];
	qml_client *c = NULL;
	qml_store  *st;
	const char *queues[1] = {"default"};
	qml_session_config fc = {.kind = QML_SESSION_FETCH, .appname = "t", .worker = "w",
	.queues = queues, .nqueues = 1, .lease_ms = 60000};
	qml_session_config bad = fc;
	qml_store_session *s = NULL;
	qml_store_job *jobs[1];
	qml_enqueue_options o = {.queue = "q\xc3"};
	qml_enqueue_options k = {.unique_key = "k\xed\xa0\x80"};
	const char *err[1] = {"broke: \xff\xfe."};
	bool		retry = false;
	qml_job    *j = NULL;
	int64_t		id,
				next_ms = -1;
	int			got = 0;
	size_t		done = 0;

	snprintf(path, sizeof(path), "/tmp/qml-memory-utf8-%d", (int) getpid());
	snprintf(lock, sizeof(lock), "%s.lock", path);
	snprintf(url, sizeof(url), "memory:%s", path);
	unlink(path);
	open_url(url, &c);
	st = qml__client_store(c);
	is_status(qml_enqueue(c, "m\xff", NULL, NULL, &id), QML_ERR_INVALID, "a method not UTF-8 is refused");
	contains(qml_errmsg(), "not valid UTF-8", "... saying so");
	is_status(qml_enqueue(c, "m", NULL, &o, &id), QML_ERR_INVALID, "a queue not UTF-8 is refused");
	is_status(qml_enqueue(c, "m", NULL, &k, &id), QML_ERR_INVALID, "a unique key with a surrogate is refused");
	is_status(qml_recurring_add(c, "r\xc0\xaf", "@daily", "m", NULL, NULL), QML_ERR_INVALID,
			  "a recurring name not UTF-8 (overlong) is refused");
	bad.worker = "w\x80";
	is_status(st->ops->session_open(st, &bad, &s), QML_ERR_INVALID, "a worker name not UTF-8 is refused");
	qml_enqueue(c, "m", NULL, NULL, &id);
	st->ops->session_open(st, &fc, &s);
	st->ops->fetch(s, 1, 0, jobs, &got);
	is_int(got, 1, "the job is claimed");
	st->ops->fail(s, "w", &id, err, &retry, 1, &done, &next_ms);
	free(jobs[0]);
	st->ops->session_close(s);
	qml_client_close(c);
	ok(access(path, R_OK) == 0, "the snapshot is written after an error message that is not UTF-8");
	{
		struct stat sb;

		ok(stat(path, &sb) == 0 && (sb.st_mode & 077) == 0, "only its owner may read it");
	}
	open_url(url, &c);
	is_status(qml_job_get(c, id, &j), QML_OK, "the failed job is back");
	ok(j && j->state == QML_STATE_FAILED && j->last_error &&
	   strcmp(j->last_error, "broke: ??.") == 0, "its error with '?' for each stray byte");
	qml_job_free(j);
	qml_client_close(c);
	unlink(path);
	unlink(lock);
}

/*
 * PATH.tmp or PATH.lock made a symbolic link (a shared directory such as
 * /var/tmp) must not make the store write through it to another file.
 */
static void
test_snapshot_symlink(void)
{
	char		path[64],
				url[96],
				lock[80],
				tmp[80],
				victim[80];
	qml_client *c = NULL;
	int64_t		id;
	struct stat sb;
	FILE	   *f;

	snprintf(path, sizeof(path), "/tmp/qml-memory-link-%d", (int) getpid());
	snprintf(lock, sizeof(lock), "%s.lock", path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	snprintf(victim, sizeof(victim), "%s.victim", path);
	snprintf(url, sizeof(url), "memory:%s", path);
	unlink(path);
	unlink(tmp);
	f = fopen(victim, "w");
	fputs("precious\n", f);
	fclose(f);
	open_url(url, &c);
	qml_enqueue(c, "m", NULL, NULL, &id);
	ok(symlink(victim, tmp) == 0, "PATH.tmp is made a symbolic link");
	qml_client_close(c);
	ok(stat(victim, &sb) == 0 && sb.st_size == 9, "the file it points to is left alone");
	ok(lstat(path, &sb) == 0 && S_ISREG(sb.st_mode), "the snapshot is written as a file of its own");
	unlink(path);
	unlink(lock);
	ok(symlink(victim, lock) == 0, "PATH.lock is made a symbolic link");
	is_status(open_url(url, &c), QML_ERR_SYSTEM, "the store does not open through it");
	ok(stat(victim, &sb) == 0 && sb.st_size == 9, "and the file it points to is left alone");
	unlink(lock);
	unlink(tmp);
	unlink(victim);
}

int
main(void)
{
	test_watch();
	test_url();
	test_capacity();
	test_batch_refused();
	test_snapshot();
	test_snapshot_utf8();
	test_snapshot_symlink();
	test_retention_zero();
	test_reserve_nothing();
	return tap_done();
}
