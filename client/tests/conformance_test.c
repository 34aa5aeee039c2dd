/*
 * conformance_test.c
 *	  One suite for every storage backend: the same cases run against the
 *	  store the URL names (argv[1], else QML_STORE_URL, else DATABASE_URL /
 *	  the PG* environment), through the public API and the store's own
 *	  runtime operations (store.h), so each backend is held to the state
 *	  machine of DESIGN.md and the semantics written in store.h.
 *
 * Every run uses queues of its own (a random prefix), so it may run
 * against a database or Redis that already holds jobs. Times are waited
 * for by the clock (a job due in 300 ms is checked after 300 ms and a
 * maintenance pass), never slept on in hope.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "testlib.h"
#include "../src/store.h"

static const char *url;
static char prefix[32];
static qml_client *client;
static qml_store *store;
static int	nworker;

static const char *
qname(const char *name)
{
	static char buf[8][96];
	static int	k;

	k = (k + 1) % 8;
	snprintf(buf[k], sizeof(buf[k]), "%s_%s", prefix, name);
	return buf[k];
}

static qml_client *
open_client(void)
{
	qml_config *c = qml_config_new();
	qml_client *cl = NULL;
	qml_status	st;

	qml_config_set_pool_size(c, 1, 12);
	if (url)
		qml_config_set_database_url(c, url);
	st = qml_client_open(c, &cl);
	qml_config_free(c);
	if (st != QML_OK)
	{
		printf("Bail out! cannot open %s: %s\n", url ? url : "(environment)", qml_errmsg());
		exit(2);
	}
	return cl;
}

/* A fetch session for one queue list, as a worker server opens one. */
typedef struct worker
{
	char		name[64];
	qml_store_session *fetch;
	qml_store_session *flush;
} worker;

static void
worker_open(worker *w, const char *const *queues, size_t nqueues, int lease_ms)
{
	qml_session_config fc = {.kind = QML_SESSION_FETCH, .appname = "qml conformance",
	.queues = queues, .nqueues = nqueues, .lease_ms = lease_ms};
	qml_session_config lc = {.kind = QML_SESSION_FLUSH, .appname = "qml conformance flush"};

	snprintf(w->name, sizeof(w->name), "conformance-%s-%d", prefix, ++nworker);
	fc.worker = lc.worker = w->name;
	if (store->ops->session_open(store, &fc, &w->fetch) != QML_OK ||
		store->ops->session_open(store, &lc, &w->flush) != QML_OK)
	{
		printf("Bail out! cannot open a session: %s\n", qml_errmsg());
		exit(2);
	}
}

static void
worker_close(worker *w)
{
	store->ops->session_close(w->fetch);
	store->ops->session_close(w->flush);
}

/* Claims up to `want`; returns how many, ids in ids[] (may be NULL). */
static int
claim(worker *w, int want, int64_t *ids)
{
	qml_store_job *jobs[256];
	int			got = 0;

	if (want > 256)
		want = 256;
	if (store->ops->fetch(w->fetch, want, 0, jobs, &got) != QML_OK)
		return -1;
	for (int i = 0; i < got; i++)
	{
		if (ids)
			ids[i] = jobs[i]->id;
		free(jobs[i]);
	}
	return got;
}

/*
 * Of the jobs the last complete1/fail1 did not change, how many the store
 * said that worker had recorded already (-1: the store cannot tell).
 */
static long last_recorded;

static size_t
complete1(worker *w, int64_t id, const char *result)
{
	size_t		done = 0;
	const char *r[1] = {result};

	w->flush->recorded = -1;
	store->ops->complete(w->flush, w->name, &id, r, 1, &done);
	last_recorded = w->flush->recorded;
	return done;
}

/* the next try's delay as the store answered the last fail1 (-1: none) */
static int64_t last_next_ms;

static size_t
fail1(worker *w, int64_t id, const char *error, bool retry)
{
	size_t		done = 0;
	const char *e[1] = {error};

	last_next_ms = -2;
	w->flush->recorded = -1;
	store->ops->fail(w->flush, w->name, &id, e, &retry, 1, &done, &last_next_ms);
	last_recorded = w->flush->recorded;
	return done;
}

static qml_job *
get(int64_t id)
{
	qml_job    *j = NULL;

	if (qml_job_get(client, id, &j) != QML_OK)
		return NULL;
	return j;
}

static int
state_of(int64_t id)
{
	qml_job    *j = get(id);
	int			s = j ? (int) j->state : -1;

	qml_job_free(j);
	return s;
}

static int64_t
enq(const char *queue, int priority, int64_t delay_ms, const char *key)
{
	qml_enqueue_options o = {.queue = queue, .priority = priority, .delay_ms = delay_ms,
	.unique_key = key, .backoff_base_ms = 1000, .backoff_cap_ms = 600000};
	int64_t		id = 0;

	if (qml_enqueue(client, "conformance.job", "{\"n\": 1}", &o, &id) != QML_OK)
		printf("# enqueue: %s\n", qml_errmsg());
	return id;
}

/*
 * Waits (by the clock) until `us` has passed, then runs maintenance passes
 * until job `id` has left state `from` (at most 5 s).  One pass is not
 * always enough on PostgreSQL: the server's own scheduler wakes at the same
 * due time, and a pass skips the rows another pass holds, so the job's
 * change may commit just after our pass returns.
 */
static void
maintain_after(int64_t us, int64_t id, qml_job_state from)
{
	int64_t		left = us - qml_now(),
				give_up = qml_now() + 5000000;

	if (left > 0)
		sleep_ms((int) (left / 1000) + 1);
	qml_maintain(client, NULL);
	while (state_of(id) == (int) from && qml_now() < give_up)
	{
		sleep_ms(10);
		qml_maintain(client, NULL);
	}
}

/* The history as "from>to,from>to" with state names. */
static void
history(int64_t id, char *buf, size_t size)
{
	qml_job_event *ev = NULL;
	size_t		n = 0,
				len = 0;

	buf[0] = '\0';
	if (qml_job_events(client, id, &ev, &n) != QML_OK)
		return;
	for (size_t i = 0; i < n && len < size; i++)
		len += (size_t) snprintf(buf + len, size - len, "%s%s>%s", i ? "," : "",
								 ev[i].from_state < 0 ? "new" : qml_state_name((qml_job_state) ev[i].from_state),
								 qml_state_name(ev[i].to_state));
	qml_job_events_free(ev, n);
}

/* ---- cases ---- */

static void
test_lifecycle(void)
{
	const char *q = qname("life");
	const char *qs[1] = {q};
	worker		w;
	int64_t		id = enq(q, 0, 0, NULL),
				got[4];
	qml_job    *j;
	char		h[512];

	worker_open(&w, qs, 1, 60000);
	is_int(state_of(id), QML_STATE_ENQUEUED, "enqueue -> enqueued");
	is_int(claim(&w, 10, got), 1, "fetch claims the job");
	is_int(got[0], id, "... that job");
	j = get(id);
	ok(j && j->state == QML_STATE_PROCESSING && j->attempts == 1 && j->locked_by &&
	   strcmp(j->locked_by, w.name) == 0 && j->locked_until > qml_now(),
	   "fetch -> processing, attempt 1, leased to the worker");
	qml_job_free(j);
	is_int(complete1(&w, id, "{\"ok\": true}"), 1, "complete by the lease holder");
	j = get(id);
	ok(j && j->state == QML_STATE_SUCCEEDED && j->result && strstr(j->result, "ok") &&
	   j->finished_at != QML_TIME_NULL, "complete -> succeeded with its result");
	qml_job_free(j);
	is_int(complete1(&w, id, NULL), 0, "a second complete does nothing");
	history(id, h, sizeof(h));
	is_str(h, "new>enqueued,enqueued>processing,processing>succeeded", "history of a job that succeeded");
	worker_close(&w);
}

static void
test_scheduled_and_retry(void)
{
	const char *q = qname("retry");
	const char *qs[1] = {q};
	worker		w;
	int64_t		id,
				t0,
				t1,
				run_at;
	qml_job    *j;
	char		h[512];

	/*
	 * The sessions are opened first, so that only the enqueue, one read and
	 * the fetch run inside the delay: 1 s leaves a loaded machine room
	 * before the job falls due (and the fetch would rightly take it).  The
	 * pass waits for the job's own due time, not the client's guess of it.
	 */
	worker_open(&w, qs, 1, 60000);
	id = enq(q, 0, 1000, NULL);
	is_int(state_of(id), QML_STATE_SCHEDULED, "enqueue with a delay -> scheduled");
	is_int(claim(&w, 10, NULL), 0, "a scheduled job is not fetched");
	j = get(id);
	run_at = j ? j->run_at : 0;
	qml_job_free(j);
	maintain_after(run_at + 50000, id, QML_STATE_SCHEDULED);
	is_int(state_of(id), QML_STATE_ENQUEUED, "scheduled -> enqueued once due");
	is_int(claim(&w, 10, NULL), 1, "then fetched");

	/* attempt 1 failed: backoff base 1 s, equal jitter: [0.5 s, 1 s) */
	t0 = qml_now();
	is_int(fail1(&w, id, "boom 1", true), 1, "fail by the lease holder");
	t1 = qml_now();
	j = get(id);
	run_at = j ? j->run_at : 0;
	ok(j && j->state == QML_STATE_AWAITING_RETRY && j->last_error && strcmp(j->last_error, "boom 1") == 0,
	   "fail with attempts left -> awaiting_retry with the error");
	ok(run_at >= t0 + 500000 - 20000 && run_at <= t1 + 1000000 + 20000,
	   "retry 1 waits between 0.5 and 1 s (got %.3f s)", (double) (run_at - t0) / 1e6);
	ok(last_next_ms >= (run_at - t1) / 1000 - 50 && last_next_ms <= (run_at - t0) / 1000 + 50,
	   "fail answers when the retry runs (%lld ms)", (long long) last_next_ms);
	qml_job_free(j);
	is_int(claim(&w, 10, NULL), 0, "a retrying job is not fetched before its time");
	maintain_after(run_at + 50000, id, QML_STATE_AWAITING_RETRY);
	is_int(state_of(id), QML_STATE_ENQUEUED, "awaiting_retry -> enqueued once due");
	is_int(claim(&w, 10, NULL), 1, "fetched again");
	j = get(id);
	is_int(j ? j->attempts : -1, 2, "attempt 2");
	qml_job_free(j);

	/* attempt 2: [1 s, 2 s) */
	t0 = qml_now();
	fail1(&w, id, "boom 2", true);
	t1 = qml_now();
	j = get(id);
	run_at = j ? j->run_at : 0;
	ok(run_at >= t0 + 1000000 - 20000 && run_at <= t1 + 2000000 + 20000,
	   "retry 2 waits between 1 and 2 s: the backoff doubles (got %.3f s)", (double) (run_at - t0) / 1e6);
	is_int(fail1(&w, id, "boom 3", true), 0, "a job awaiting its retry is no longer held");
	is_int(last_next_ms, -1, "... and fail answers no next try for it");
	qml_job_free(j);
	history(id, h, sizeof(h));
	is_str(h, "new>scheduled,scheduled>enqueued,enqueued>processing,processing>awaiting_retry,"
		   "awaiting_retry>enqueued,enqueued>processing,processing>awaiting_retry",
		   "history of a scheduled, retried job");
	worker_close(&w);
}

static void
test_fail_for_good(void)
{
	const char *q = qname("fail");
	const char *qs[1] = {q};
	worker		w;
	qml_enqueue_options o = {.queue = q, .max_attempts = 1};
	int64_t		a,
				b = enq(q, 0, 0, NULL);
	qml_job    *j;

	qml_enqueue(client, "conformance.job", NULL, &o, &a);
	worker_open(&w, qs, 1, 60000);
	is_int(claim(&w, 10, NULL), 2, "two jobs fetched");
	fail1(&w, a, "last attempt", true);
	j = get(a);
	ok(j && j->state == QML_STATE_FAILED && j->finished_at != QML_TIME_NULL,
	   "fail with no attempts left -> failed");
	qml_job_free(j);
	fail1(&w, b, "do not retry", false);
	is_int(state_of(b), QML_STATE_FAILED, "fail with retry false -> failed at once");
	is_int(fail1(&w, b, "again", true), 0, "failing a failed job does nothing");
	worker_close(&w);
}

static void
test_release_and_lost_lease(void)
{
	const char *q = qname("release");
	const char *qs[1] = {q};
	worker		w,
				other;
	int64_t		id = enq(q, 0, 0, NULL);
	size_t		done = 0;
	bool		held = true;
	qml_job    *j;

	worker_open(&w, qs, 1, 60000);
	worker_open(&other, qs, 1, 60000);
	claim(&w, 1, NULL);
	is_int(complete1(&other, id, NULL), 0, "another worker cannot complete a job it does not hold");
	is_int(fail1(&other, id, "x", true), 0, "... nor fail it");
	store->ops->heartbeat(store, other.name, &id, 1, 60000, &held);
	ok(!held, "... nor renew its lease");
	store->ops->release(w.flush, w.name, &id, 1, &done);
	is_int(done, 1, "release by the holder");
	j = get(id);
	ok(j && j->state == QML_STATE_ENQUEUED && j->attempts == 0 && j->locked_by == NULL,
	   "release -> enqueued, the attempt not counted, no lease");
	qml_job_free(j);
	is_int(claim(&other, 1, NULL), 1, "a released job is fetched again");
	j = get(id);
	is_int(j ? j->attempts : -1, 1, "as attempt 1");
	qml_job_free(j);
	worker_close(&w);
	worker_close(&other);
}

/*
 * An outcome sent again (its first answer lost) is refused, and a store
 * that can tells it from a lost lease: the job's outcome in its current
 * attempt is this worker's already (Redis; PostgreSQL cannot tell).
 */
static void
test_resent_outcome(void)
{
	const char *q = qname("resend");
	const char *qs[1] = {q};
	worker		w,
				other;
	int64_t		a = enq(q, 1, 0, NULL),
				b = enq(q, 0, 0, NULL);

	worker_open(&w, qs, 1, 60000);
	worker_open(&other, qs, 1, 60000);
	is_int(claim(&w, 2, NULL), 2, "two jobs claimed");
	is_int(complete1(&w, a, NULL), 1, "one completed");
	is_int(complete1(&w, a, NULL), 0, "a completion sent again changes nothing");
	ok(last_recorded >= 0 || strcmp(store->ops->name, "redis") != 0,
	   "Redis tells a resent outcome from a lost lease");
	if (last_recorded >= 0)
	{
		is_int(last_recorded, 1, "... and is recorded already, not a lost lease");
		complete1(&other, a, NULL);
		is_int(last_recorded, 0, "another worker's completion of it is not");
		is_int(fail1(&w, b, "x", true), 1, "the other failed (retry)");
		is_int(fail1(&w, b, "x", true), 0, "a failure sent again changes nothing");
		is_int(last_recorded, 1, "... and is recorded already, not a lost lease");
	}
	else
		printf("# %s cannot tell a resent outcome from a lost lease\n", store->ops->name);
	worker_close(&w);
	worker_close(&other);
}

static void
test_heartbeat_and_rescue(void)
{
	const char *q = qname("lease");
	const char *qs[1] = {q};
	worker		w;
	int64_t		a = enq(q, 1, 0, NULL),
				b = enq(q, 0, 0, NULL),
				until;
	bool		held = false;
	qml_job    *j;

	/* a worker that claims with a 1 s lease and then stops answering */
	worker_open(&w, qs, 1, 1000);
	is_int(claim(&w, 2, NULL), 2, "two jobs claimed with a 1 s lease");
	store->ops->heartbeat(store, w.name, &a, 1, 30000, &held);
	ok(held, "the holder renews a lease");
	j = get(a);
	ok(j && j->locked_until > qml_now() + 20000000, "the renewed lease runs 30 s");
	qml_job_free(j);
	j = get(b);
	until = j ? j->locked_until : 0;
	qml_job_free(j);
	maintain_after(until + 100000, b, QML_STATE_PROCESSING);
	j = get(b);
	ok(j && j->state == QML_STATE_AWAITING_RETRY && j->last_error &&
	   strstr(j->last_error, "lease expired") != NULL,
	   "an expired lease is rescued like a failure (%s)", j && j->last_error ? j->last_error : "?");
	ok(j && j->attempts == 1, "the rescued attempt counts");
	qml_job_free(j);
	is_int(state_of(a), QML_STATE_PROCESSING, "the renewed job is still processing");
	is_int(complete1(&w, b, NULL), 0, "the worker that lost the lease cannot complete");
	is_int(complete1(&w, a, NULL), 1, "the one it kept it can");
	worker_close(&w);
}

static void
test_delete_and_requeue(void)
{
	const char *q = qname("admin");
	const char *qs[1] = {q};
	worker		w;
	int64_t		sched = enq(q, 0, 60000, NULL),
				queued = enq(q, 0, 0, NULL),
				running = enq(q, 0, 0, NULL),
				done_id = enq(q, 0, 0, NULL);
	bool		done = false,
				held = true;

	worker_open(&w, qs, 1, 60000);
	is_status(qml_job_delete(client, sched, &done), QML_OK, "delete a scheduled job");
	ok(done && state_of(sched) == QML_STATE_DELETED, "scheduled -> deleted");
	qml_job_delete(client, queued, &done);
	ok(done && state_of(queued) == QML_STATE_DELETED, "enqueued -> deleted");
	is_int(claim(&w, 10, NULL), 2, "the two left are fetched");
	qml_job_delete(client, running, &done);
	ok(done && state_of(running) == QML_STATE_DELETED, "processing -> deleted");
	is_int(complete1(&w, running, NULL), 0, "its worker's complete does nothing");
	store->ops->heartbeat(store, w.name, &running, 1, 60000, &held);
	ok(!held, "its worker's lease is gone");
	complete1(&w, done_id, NULL);
	qml_job_delete(client, done_id, &done);
	ok(!done && state_of(done_id) == QML_STATE_SUCCEEDED, "a finished job is not deleted");
	is_status(qml_job_delete(client, INT64_C(999999999999), &done), QML_ERR_NOT_FOUND,
			  "deleting a missing job: not found");

	is_status(qml_job_requeue(client, done_id, &done), QML_OK, "requeue a succeeded job");
	ok(done && state_of(done_id) == QML_STATE_ENQUEUED, "succeeded -> enqueued");
	qml_job_requeue(client, queued, &done);
	ok(done && state_of(queued) == QML_STATE_ENQUEUED, "deleted -> enqueued");
	qml_job_requeue(client, done_id, &done);
	ok(!done, "a live job is not requeued");
	is_int(claim(&w, 10, NULL), 2, "requeued jobs are fetched");
	fail1(&w, done_id, "x", false);
	qml_job_requeue(client, done_id, &done);
	ok(done && state_of(done_id) == QML_STATE_ENQUEUED, "failed -> enqueued");
	{
		qml_job    *j = get(done_id);

		is_int(j ? j->attempts : -1, 0, "a requeued job starts its attempts afresh");
		qml_job_free(j);
	}
	is_status(qml_job_requeue(client, INT64_C(999999999999), &done), QML_ERR_NOT_FOUND,
			  "requeueing a missing job: not found");
	worker_close(&w);
}

static void
test_order(void)
{
	const char *q1 = qname("first"),
			   *q2 = qname("second");
	const char *qs[2] = {q1, q2};
	worker		w;
	int64_t		later = enq(q2, 100, 0, NULL);
	int64_t		a = enq(q1, 0, 0, NULL),
				b = enq(q1, 10, 0, NULL),
				c = enq(q1, 0, 0, NULL),
				d = enq(q1, 5, 0, NULL);
	int64_t		got[8] = {0};

	worker_open(&w, qs, 2, 60000);
	is_int(claim(&w, 8, got), 5, "five jobs fetched");
	ok(got[0] == b && got[1] == d && got[2] == a && got[3] == c,
	   "within a queue: higher priority first, then oldest (%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ")",
	   got[0], got[1], got[2], got[3]);
	ok(got[4] == later, "queues in the order given: the second queue's job (priority 100) last");
	worker_close(&w);
}

static void
test_unique(void)
{
	const char *q = qname("unique"),
			   *q2 = qname("unique2");
	const char *qs[1] = {q};
	worker		w;
	int64_t		a = enq(q, 0, 0, "k1"),
				b = enq(q, 0, 0, "k1"),
				c = enq(q2, 0, 0, "k1"),
				d;
	bool		done = true;

	is_int(b, a, "the same unique key in the same queue: the live job's id");
	ok(c != a && c > 0, "the same key in another queue: a new job");
	worker_open(&w, qs, 1, 60000);
	claim(&w, 1, NULL);
	is_int(enq(q, 0, 0, "k1"), a, "a processing job still holds its key");
	complete1(&w, a, NULL);
	d = enq(q, 0, 0, "k1");
	ok(d != a && d > 0, "a finished job frees its key");
	is_status(qml_job_requeue(client, a, &done), QML_ERR_CONFLICT,
			  "requeue while another live job holds the key: conflict");
	ok(!done && state_of(a) == QML_STATE_SUCCEEDED, "... and nothing changed");
	worker_close(&w);
}

static void
test_pause(void)
{
	const char *q = qname("pause");
	const char *qs[1] = {q};
	worker		w;
	bool		changed = false;

	enq(q, 0, 0, NULL);
	worker_open(&w, qs, 1, 60000);
	is_status(qml_queue_pause(client, q, &changed), QML_OK, "pause a queue");
	ok(changed, "... which changed it");
	qml_queue_pause(client, q, &changed);
	ok(!changed, "pausing again changes nothing");
	is_int(claim(&w, 10, NULL), 0, "a paused queue yields nothing");
	{
		qml_queue_stats *s = NULL;
		size_t		n = 0;

		qml_stats(client, q, &s, &n);
		ok(n == 1 && s[0].paused && s[0].counts[QML_STATE_ENQUEUED] == 1,
		   "stats show it paused with its job waiting");
		qml_stats_free(s, n);
	}
	qml_queue_resume(client, q, &changed);
	ok(changed, "resume");
	is_int(claim(&w, 10, NULL), 1, "a resumed queue yields its job");
	worker_close(&w);
}

static void
test_stats(void)
{
	const char *q = qname("stats");
	const char *qs[1] = {q};
	worker		w;
	qml_queue_stats *s = NULL;
	qml_throughput_bucket *b = NULL;
	size_t		n = 0;
	int64_t		ids[8];
	int64_t		total = 0;

	for (int i = 0; i < 5; i++)
		enq(q, 0, 0, NULL);
	enq(q, 0, 60000, NULL);
	worker_open(&w, qs, 1, 60000);
	claim(&w, 3, ids);
	complete1(&w, ids[0], NULL);
	complete1(&w, ids[1], NULL);
	fail1(&w, ids[2], "x", false);
	is_status(qml_stats(client, q, &s, &n), QML_OK, "stats of one queue");
	ok(n == 1 && s[0].counts[QML_STATE_SCHEDULED] == 1 && s[0].counts[QML_STATE_ENQUEUED] == 2 &&
	   s[0].counts[QML_STATE_PROCESSING] == 0 && s[0].counts[QML_STATE_SUCCEEDED] == 2 &&
	   s[0].counts[QML_STATE_FAILED] == 1,
	   "counts by state: 1 scheduled, 2 enqueued, 2 succeeded, 1 failed");
	qml_stats_free(s, n);
	is_status(qml_throughput_get(client, 2, &b, &n), QML_OK, "throughput");
	for (size_t i = 0; i < n; i++)
		total += b[i].succeeded + b[i].failed;
	ok(n == 2 && total >= 3, "throughput counts this minute's finished jobs (%" PRId64 ")", total);
	free(b);
	worker_close(&w);
}

/* ---- recurring jobs across two runtimes ---- */

static atomic_int recurring_runs;

static qml_outcome
count_run(qml_job_ctx *ctx, void *data)
{
	(void) data;
	atomic_fetch_add(&recurring_runs, 1);
	return qml_success(ctx, NULL);
}

static void
test_recurring(void)
{
	const char *q = qname("cron");
	const char *name = qname("every_second");
	qml_recurring_options o = {.queue = q};
	bool		memory = url && strncmp(url, "memory:", 7) == 0;
	qml_client *second = memory ? client : open_client();
	qml_server *srv[2] = {NULL, NULL};
	qml_job_filter f = QML_JOB_FILTER_INIT;
	qml_job_list *list = NULL;
	qml_registry *reg = qml_registry_new();
	qml_server_config *cfg = qml_server_config_new("conformance");
	int64_t		start;
	char	   *json = NULL;
	bool		spaced = true;

	qml_registry_add(reg, "conformance.tick", count_run, NULL);
	qml_server_config_set_queues(cfg, &q, 1);
	qml_server_config_set_workers(cfg, 2);
	qml_server_config_set_poll_interval(cfg, 100);
	is_status(qml_recurring_add_opts(client, name, "every 1 second", "conformance.tick", NULL, &o),
			  QML_OK, "add a recurring job (every second)");
	qml_recurring_list(client, &json);
	contains(json, name, "it is listed");
	qml_free(json);
	qml_server_new(client, reg, cfg, &srv[0]);
	qml_server_new(second, reg, cfg, &srv[1]);
	qml_server_start(srv[0]);
	qml_server_start(srv[1]);
	start = qml_now();
	sleep_ms(4500);
	qml_recurring_remove(client, name);
	qml_server_stop(srv[0]);
	qml_server_stop(srv[1]);
	is_status(qml_recurring_remove(client, name), QML_ERR_NOT_FOUND, "removed: removing again is not found");

	f.queue = q;
	qml_job_list_get(client, &f, &list);
	ok(list && list->count >= 2 && (int64_t) list->count <= (qml_now() - start) / 1000000 + 1,
	   "fired once per second over 4.5 s with two runtimes (%zu jobs)", list ? list->count : 0);
	/*
	 * Consecutive jobs are a due time apart, never two for one.  Their due
	 * times (run_at) are compared, not when they were made: a pass late on
	 * a loaded machine may make one job shortly before the next is due.
	 */
	for (size_t i = 1; list && i < list->count; i++)
		if (llabs(list->jobs[i - 1]->run_at - list->jobs[i]->run_at) < 500000)
			spaced = false;
	ok(spaced, "no due time fired twice");
	is_int(atomic_load(&recurring_runs), list ? (int) list->count : -1,
		   "each fired job ran once, on one of the runtimes");
	qml_job_list_free(list);
	qml_server_free(srv[0]);
	qml_server_free(srv[1]);
	qml_server_config_free(cfg);
	qml_registry_free(reg);
	if (second != client)
		qml_client_close(second);
}

/* ---- a runtime drains a full queue without sleeping ---- */

#define DRAIN_JOBS 500
#define DRAIN_POLL_MS 30000

static atomic_int drain_runs;

static qml_outcome
count_drain(qml_job_ctx *ctx, void *data)
{
	(void) data;
	atomic_fetch_add(&drain_runs, 1);
	return qml_success(ctx, NULL);
}

/*
 * Jobs queued before the runtime starts run at once, and the stop after
 * the last one returns at once: neither may wait for a wakeup, a poll
 * interval or a socket timeout. Redis's pub/sub drain once blocked in a
 * read until the connect timeout (10 s) after the queue ran dry, which
 * also held up the stop. The bound is a sixth of the poll interval, far
 * above what 500 no-op jobs take on a loaded machine.
 */
static void
test_drain_queued(void)
{
	const char *q = qname("drain");
	qml_job_spec specs[DRAIN_JOBS];
	qml_registry *reg = qml_registry_new();
	qml_server_config *cfg = qml_server_config_new("conformance-drain");
	qml_server *srv = NULL;
	int64_t		t0,
				ms;

	memset(specs, 0, sizeof(specs));
	for (int i = 0; i < DRAIN_JOBS; i++)
	{
		specs[i].method = "conformance.drain";
		specs[i].arguments = "[1]";
		specs[i].options.queue = q;
	}
	is_status(qml_enqueue_batch(client, specs, DRAIN_JOBS, NULL), QML_OK,
			  "drain: %d jobs queued before the runtime starts", DRAIN_JOBS);
	qml_registry_add(reg, "conformance.drain", count_drain, NULL);
	qml_server_config_set_queues(cfg, &q, 1);
	qml_server_config_set_workers(cfg, 2);
	qml_server_config_set_poll_interval(cfg, DRAIN_POLL_MS);
	qml_server_new(client, reg, cfg, &srv);
	t0 = qml_now();
	qml_server_start(srv);
	while (atomic_load(&drain_runs) < DRAIN_JOBS && qml_now() - t0 < 60000000)
		sleep_ms(1);
	qml_server_stop(srv);
	ms = (qml_now() - t0) / 1000;
	is_int(atomic_load(&drain_runs), DRAIN_JOBS, "drain: the runtime ran every job");
	ok(ms < DRAIN_POLL_MS / 6, "drain: start, %d jobs and stop took %" PRId64 " ms (poll interval %d ms)",
	   DRAIN_JOBS, ms, DRAIN_POLL_MS);
	qml_server_free(srv);
	qml_server_config_free(cfg);
	qml_registry_free(reg);
}

/* A name already taken: qml.add_recurring's unique_violation, nothing replaced. */
static void
test_recurring_name_taken(void)
{
	const char *q = qname("cron_taken");
	const char *name = qname("nightly");
	qml_recurring_options o = {.queue = q};
	char	   *json = NULL;

	is_status(qml_recurring_add_opts(client, name, "0 3 * * *", "conformance.first", NULL, &o),
			  QML_OK, "add a recurring job");
	is_status(qml_recurring_add_opts(client, name, "*/5 * * * *", "conformance.second", NULL, &o),
			  QML_ERR_CONFLICT, "adding its name again is a conflict");
	is_str(qml_errsqlstate(), "23505", "... unique_violation, as qml.add_recurring raises");
	contains(qml_errmsg(), "already exists", "... saying the name exists");
	qml_recurring_list(client, &json);
	contains(json, "conformance.first", "the first definition stays");
	ok(json && strstr(json, "conformance.second") == NULL, "... and is not replaced");
	qml_free(json);
	is_status(qml_recurring_remove(client, name), QML_OK, "remove it");
	is_status(qml_recurring_add_opts(client, name, "*/5 * * * *", "conformance.second", NULL, &o),
			  QML_OK, "then the name is free again");
	qml_recurring_remove(client, name);
}

/* ---- concurrency: 8 threads, 20,000 jobs, each completed exactly once ---- */

#define CONC_THREADS 8

static atomic_uchar *seen;
static int64_t *conc_ids;		/* sorted */
static int	conc_jobs;

static int
cmp_id(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a,
				y = *(const int64_t *) b;

	return x < y ? -1 : x > y;
}
static atomic_int conc_done;

static void *
conc_main(void *arg)
{
	const char *q = arg;
	const char *qs[1] = {q};
	worker		w;
	int64_t		ids[64];
	const char *results[64] = {NULL};
	int			idle = 0;

	worker_open(&w, qs, 1, 60000);
	while (atomic_load(&conc_done) < conc_jobs && idle < 200)
	{
		int			n = claim(&w, 64, ids);
		size_t		done = 0;

		if (n <= 0)
		{
			idle++;
			sleep_ms(5);
			continue;
		}
		idle = 0;
		for (int i = 0; i < n; i++)
		{
			int64_t    *at = bsearch(&ids[i], conc_ids, (size_t) conc_jobs, sizeof(int64_t), cmp_id);

			if (at)
				atomic_fetch_add(&seen[at - conc_ids], 1);
		}
		store->ops->complete(w.flush, w.name, ids, results, (size_t) n, &done);
		atomic_fetch_add(&conc_done, (int) done);
	}
	worker_close(&w);
	return NULL;
}

static void
test_concurrency(void)
{
	const char *q = qname("conc");
	int			n = test_quick() ? 2000 : 20000;
	qml_job_spec *specs = calloc((size_t) n, sizeof(*specs));
	int64_t    *ids = calloc((size_t) n, sizeof(int64_t));
	pthread_t	th[CONC_THREADS];
	int			once = 0,
				twice = 0;
	qml_queue_stats *s = NULL;
	size_t		ns = 0;

	for (int i = 0; i < n; i++)
	{
		specs[i].method = "conformance.conc";
		specs[i].options.queue = q;
	}
	for (int i = 0; i < n; i += 1000)
		if (qml_enqueue_batch(client, specs + i, (size_t) (n - i < 1000 ? n - i : 1000), ids + i) != QML_OK)
			printf("# enqueue_batch: %s\n", qml_errmsg());
	qsort(ids, (size_t) n, sizeof(int64_t), cmp_id);
	conc_ids = ids;
	conc_jobs = n;
	ok(ids[0] > 0, "%d jobs enqueued", n);
	seen = calloc((size_t) n, 1);
	for (int i = 0; i < CONC_THREADS; i++)
		pthread_create(&th[i], NULL, conc_main, (void *) q);
	for (int i = 0; i < CONC_THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < n; i++)
	{
		once += seen[i] == 1;
		twice += seen[i] > 1;
	}
	is_int(once, n, "%d threads claimed every job", CONC_THREADS);
	is_int(twice, 0, "no job was claimed twice");
	is_int(atomic_load(&conc_done), n, "every job completed exactly once");
	qml_stats(client, q, &s, &ns);
	ok(ns == 1 && s[0].counts[QML_STATE_SUCCEEDED] == n && s[0].counts[QML_STATE_ENQUEUED] == 0 &&
	   s[0].counts[QML_STATE_PROCESSING] == 0, "stats agree: all succeeded");
	qml_stats_free(s, ns);
	free(seen);
	free(specs);
	free(ids);
}

static void
test_bad_input(void)
{
	qml_client *c = NULL;
	qml_config *cfg = qml_config_new();

	qml_config_set_database_url(cfg, "nosuchstore://x");
	is_status(qml_client_open(cfg, &c), QML_ERR_INVALID, "an unknown scheme is refused");
	contains(qml_errmsg(), "nosuchstore", "... naming it");
	qml_config_free(cfg);
	is_status(qml_enqueue(client, "", NULL, NULL, NULL), QML_ERR_INVALID, "an empty method is refused");
	is_status(qml_enqueue(client, "m", "{not json", NULL, NULL), QML_ERR_INVALID, "bad JSON is refused");
}

int
main(int argc, char **argv)
{
	url = argc > 1 ? argv[1] : getenv("QML_STORE_URL");
	srandom((unsigned) (qml_now() ^ getpid()));
	snprintf(prefix, sizeof(prefix), "c%ld", random() % 1000000);
	client = open_client();
	store = qml__client_store(client);
	printf("# store %s (%s), queues %s_*\n", store->ops->name, url ? url : "environment", prefix);
	test_bad_input();
	test_lifecycle();
	test_scheduled_and_retry();
	test_fail_for_good();
	test_release_and_lost_lease();
	test_resent_outcome();
	test_heartbeat_and_rescue();
	test_delete_and_requeue();
	test_order();
	test_unique();
	test_pause();
	test_stats();
	test_recurring();
	test_drain_queued();
	test_recurring_name_taken();
	test_concurrency();
	qml_client_close(client);
	return tap_done();
}
