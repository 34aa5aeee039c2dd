/*
 * store.h
 *	  The storage interface of libqml: the table of operations a backend
 *	  implements (PostgreSQL, memory, Redis), and the URL that picks one.
 *
 * The public API (qml.h) checks its arguments and then calls these: a
 * backend receives valid input (method non-empty, JSON checked, output
 * pointers set, counts > 0, enqueue options consistent, job filter limit
 * 1..10000, throughput minutes 1..1440) and needs not check it again. What
 * it does check is what the extension checks itself: name lengths (method
 * 1000, queue 128, unique key 500, worker 200 characters) and schedules.
 * Defaults a backend fills in: options NULL or options->queue NULL mean
 * queue "default"; arguments NULL means "[]"; a stats/overview queue NULL
 * means every queue. Output strings and arrays are malloc'ed (the caller
 * frees them with the qml_*_free functions or free()). The worker runtime
 * (server.c and its threads) reaches storage only through these as well, so
 * it runs unchanged on every backend.
 *
 * Selection (qml__store_for_url): "postgresql://", "postgres://", a libpq
 * conninfo ("host=... dbname=...") or "" (the PG* environment) pick
 * PostgreSQL; "memory:" or "memory:PATH" (a snapshot written on a clean
 * close and read on open; a query "?capacity=N" limits the live jobs) pick
 * the in-process memory store; "redis://", "rediss://" and
 * "redis+cluster://" pick the Redis store, which defines the symbol
 * qml__store_redis (a weak reference here, so a library built without it
 * says so). Any other "scheme:" is QML_ERR_INVALID naming it.
 *
 * ------------------------------------------------------------------------
 * Semantics every backend implements (DESIGN.md "A job's life")
 * ------------------------------------------------------------------------
 * States: scheduled, enqueued, processing, succeeded, failed,
 * awaiting_retry, deleted (qml_job_state). Every change appends one event
 * to the job's history (from_state -1 at creation), with the worker and
 * the error where there is one.
 *
 *	 enqueue, run_at/delay in the future -> scheduled, else -> enqueued.
 *	 scheduled/awaiting_retry --due (maintenance)--> enqueued
 *	 enqueued --fetch--> processing: attempts += 1, locked_by = worker,
 *		 locked_until = now + lease, started_at = now.
 *	 processing --complete (lease held)--> succeeded (result kept,
 *		 finished_at, lease cleared).
 *	 processing --fail(retry, attempts < max_attempts)--> awaiting_retry,
 *		 run_at = now + backoff(attempts) (qml__store_backoff_ms), last_error.
 *	 processing --fail(!retry or attempts >= max_attempts)--> failed.
 *	 processing --release (lease held)--> enqueued, attempts -= 1 (the run
 *		 did not happen), lease cleared.
 *	 processing --lease expired (maintenance rescue)--> as fail(retry) with
 *		 error "lease expired on worker W" (the attempt counts; failed when
 *		 attempts >= max_attempts).
 *	 any non-final --delete--> deleted; a processing job's lease is then
 *		 gone: its worker's complete/fail/heartbeat return not held.
 *	 succeeded/failed/deleted --requeue--> enqueued, attempts = 0.
 * "Lease held" means: state processing, locked_by = this worker, and
 * locked_until not passed or not yet rescued. An operation on a job the
 * worker no longer holds is not an error: it reports not held / not done.
 *
 * Claim order (fetch): the queues in the order given; within a queue a
 * higher priority first, then the earliest due time (run_at, or
 * enqueued_at), then the lower id. A paused queue yields nothing. Ids are
 * positive and increase with creation.
 *
 * Unique keys: scoped to the queue; while a job with the key is live
 * (scheduled, enqueued, processing, awaiting_retry), enqueueing the same
 * key returns that job's id and creates nothing. requeue of a finished job
 * whose key another live job holds is QML_ERR_CONFLICT.
 *
 * max_attempts 0 means the store's default (20, as qml.default_max_attempts);
 * backoff_base_ms/backoff_cap_ms 0 mean 5000 ms and 3600000 ms (the
 * extension's qml.retry_base and qml.retry_cap defaults). The delay after
 * attempt n is d = min(base * 2^(n-1), cap), then a uniformly random point
 * in [d/2, d) ("equal jitter", src/backoff.c): qml__store_backoff_ms.
 *
 * Errors: every op returns a qml_status and, on failure, sets the thread's
 * error (qml__error). QML_ERR_CONNECT from a session op means the session
 * may be broken: when session_ok says so, the runtime closes it and opens
 * another (with backoff), dropping the jobs it claimed ahead to their
 * leases; a backend whose claims outlive a connection (Redis) keeps the
 * session, and the runtime retries it with backoff.
 * QML_ERR_UNSUPPORTED for what a backend cannot do (say why in the
 * message). A store over its capacity refuses enqueue with QML_ERR_TIMEOUT
 * ("store is full") and accepts nothing of that call.
 * ------------------------------------------------------------------------
 */
#ifndef QML_STORE_H
#define QML_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qml.h"

typedef struct qml_store_ops qml_store_ops;

/*
 * A backend's instance. A backend allocates its own struct with this as its
 * first member, and owns everything after it. `client` is the client that
 * opened it (its config: client->config).
 */
typedef struct qml_store
{
	const qml_store_ops *ops;
	qml_client *client;
} qml_store;

/*
 * A claimed job as the runtime gets it: one malloc'ed block with its
 * strings (qml__store_job_new builds one; the runtime frees it with free).
 */
typedef struct qml_store_job
{
	int64_t		id;
	const char *queue;
	const char *method;
	const char *arguments;		/* JSON text */
	int			priority;
	int			attempts;		/* this run's number, 1 on the first */
	int			max_attempts;
	int64_t		created_at;		/* µs since epoch */
	int64_t		fetched_mono;	/* set by the runtime */
} qml_store_job;

qml_store_job *qml__store_job_new(int64_t id, const char *queue,
								  const char *method, const char *arguments,
								  int priority, int attempts, int max_attempts,
								  int64_t created_at);

/* What a runtime session works for (fixed for the session's life). */
typedef enum qml_session_kind
{
	QML_SESSION_FETCH,			/* claims, and is woken when work arrives */
	QML_SESSION_FLUSH,			/* reports outcomes */
	QML_SESSION_WATCH			/* a dashboard's: wakeups and reads */
} qml_session_kind;

typedef struct qml_session_config
{
	qml_session_kind kind;
	const char *appname;		/* PostgreSQL: application_name */
	const char *worker;			/* lease holder name (fetch, flush) */
	const char *const *queues;	/* in priority order (fetch) */
	size_t		nqueues;
	int			lease_ms;		/* fetch: the lease a claim takes */
	bool		durable_claims; /* fetch: PostgreSQL synchronous_commit */
} qml_session_config;

/*
 * A connection-like handle one thread owns (not thread-safe). Backends
 * allocate their own struct with this first. PostgreSQL: one connection
 * (the fetch session LISTENs, and its claims carry a session lease).
 */
typedef struct qml_store_session
{
	qml_store  *store;
	qml_session_kind kind;
	/*
	 * A warning the store leaves for the runtime, which owns the log: the
	 * runtime logs it once after the call that set it and clears it.
	 */
	char		note[256];
	/*
	 * Set by complete and fail: how many of the jobs they did not change
	 * this worker had recorded already, in their current attempt (a send
	 * repeated after its answer was lost); the rest were lost leases. -1:
	 * the store cannot tell (PostgreSQL: a finished row keeps no holder).
	 */
	long		recorded;
} qml_store_session;

struct qml_store_ops
{
	const char *name;			/* "postgresql", "memory", "redis" */

	/* ---- life ---- */

	/*
	 * Opens the store for `client` from `url` (client->config holds the pool
	 * size, timeouts, auto-migrate). Reports an unreachable or misconfigured
	 * store here (QML_ERR_CONNECT / QML_ERR_INVALID).
	 */
	qml_status	(*open) (qml_client *client, const char *url, qml_store **out);
	/* Stops background threads, writes a snapshot where configured, frees. */
	void		(*close) (qml_store *store);

	/* ---- schema (PostgreSQL: the extension; others: versionless) ---- */

	/*
	 * installed/available as qml_schema_version (NULL = none); free()'d.
	 * `available` may be NULL: then only the installed version is read.
	 */
	qml_status	(*schema_version) (qml_store *store, char **installed,
								   char **available);
	/* Creates or updates the schema when needed (only_if_needed false: always try). */
	qml_status	(*migrate) (qml_store *store, bool only_if_needed, bool *migrated);
	qml_status	(*health) (qml_store *store, qml_health **out);

	/* ---- producers ---- */

	/*
	 * One job (options may be NULL; schedule_at/in are enqueue with run_at
	 * or delay_ms). *id gets the new id, or the live job's id when its
	 * unique key is taken.
	 */
	qml_status	(*enqueue) (qml_store *store, const char *method,
							const char *arguments,
							const qml_enqueue_options *options, int64_t *id);
	/* All or nothing; ids[i] for jobs[i] (ids may be NULL). */
	qml_status	(*enqueue_batch) (qml_store *store, const qml_job_spec *jobs,
								  size_t count, int64_t *ids);

	/* ---- the runtime (sessions) ---- */

	qml_status	(*session_open) (qml_store *store, const qml_session_config *cfg,
								 qml_store_session **out);
	void		(*session_close) (qml_store_session *session);

	/*
	 * Optional (NULL: session_close). Closes a fetch session every claim of
	 * which was reported or released: nothing is left for its end to
	 * rescue, so the store may keep its connection for another session
	 * (PostgreSQL: back to the pool when it came from there).
	 */
	void		(*session_close_reported) (qml_store_session *session);
	/* false once the session is broken (the runtime reopens it) */
	bool		(*session_ok) (qml_store_session *session);

	/*
	 * A file descriptor that turns readable when work may have arrived for
	 * the session's queues (PostgreSQL: the socket with LISTEN qml; memory:
	 * an eventfd written when a job becomes enqueued, only after a fetch
	 * came back empty; Redis: e.g. a pub/sub connection's socket), or -1
	 * when the backend has none (then the runtime polls at its poll
	 * interval). session_drain consumes what arrived, without blocking (the
	 * fetcher calls it right after an empty fetch): the number of
	 * wakeups for the session's queues (0: nothing relevant), -1 when the
	 * session broke. A QML_SESSION_WATCH session is woken for any queue
	 * (the dashboard's live view) and has no worker or queues.
	 */
	int			(*session_fd) (qml_store_session *session);
	int			(*session_drain) (qml_store_session *session);

	/*
	 * Claims up to `want` (1..10000) jobs from the session's queues in
	 * claim order, for the session's worker with the session's lease:
	 * enqueued -> processing, attempts + 1. wait_ms > 0 lets a backend
	 * block that long for work when none is ready (one that cannot returns
	 * at once). out[] gets *got malloc'ed jobs (qml__store_job_new) in claim
	 * order.
	 */
	qml_status	(*fetch) (qml_store_session *session, int want, int wait_ms,
						  qml_store_job **out, int *got);

	/*
	 * Outcomes of n jobs held by `worker`, in one round trip where the
	 * backend can. results[i] / errors[i] may be NULL (results itself may
	 * be NULL: no results). *done gets how many the worker still held and
	 * changed; the others are left alone (lost lease, not an error).
	 */
	qml_status	(*complete) (qml_store_session *session, const char *worker,
							 const int64_t *ids, const char *const *results,
							 size_t n, size_t *done);
	/*
	 * retry[i]: retry while attempts remain (else failed at once).
	 * next_ms (may be NULL) gets, for each job, the milliseconds until its
	 * next try, or -1 (failed for good, or not held); the runtime logs it.
	 */
	qml_status	(*fail) (qml_store_session *session, const char *worker,
						 const int64_t *ids, const char *const *errors,
						 const bool *retry, size_t n, size_t *done,
						 int64_t *next_ms);
	/* processing -> enqueued unrun (attempt not counted) */
	qml_status	(*release) (qml_store_session *session, const char *worker,
							const int64_t *ids, size_t n, size_t *done);

	/*
	 * Extends to now + lease_ms the leases `worker` still holds; held[i]
	 * says which. Uses the store's own connections (any thread).
	 */
	qml_status	(*heartbeat) (qml_store *store, const char *worker,
							  const int64_t *ids, size_t n, int lease_ms,
							  bool *held);

	/* ---- maintenance (what the extension's scheduler does) ---- */

	/*
	 * One full pass now: promote due scheduled/awaiting_retry jobs, rescue
	 * expired leases, enqueue due recurring jobs (once per due time, however
	 * many runtimes tick), prune finished jobs past retention. *report
	 * (may be NULL) gets a JSON summary (free()'d).
	 */
	qml_status	(*maintain) (qml_store *store, char **report);

	/*
	 * Called by every running worker server about every tick_ms (its
	 * supervisor thread). Cheap when there is nothing to do, and safe from
	 * many runtimes at once. PostgreSQL: nothing (the extension's scheduler
	 * runs; for the pure-SQL edition see session_tick); memory: nothing
	 * (its own maintenance thread); Redis: maintain under an expiring lock.
	 * NULL: nothing. Errors are the store's to log or ignore (the runtime
	 * has nobody to return them to).
	 */
	void		(*tick) (qml_store *store);
	int			tick_ms;

	/*
	 * Called by the fetcher of every running worker server before each
	 * fetch, on its fetch session: maintenance that needs a session of its
	 * own. PostgreSQL's pure-SQL edition runs qml.maintain() about once a
	 * second while this session holds the maintainer's advisory lock, so
	 * that one runtime at a time maintains (maintenance_tick.c). Problems
	 * go to session->note. NULL: nothing.
	 */
	void		(*session_tick) (qml_store_session *session);

	/* ---- admin ---- */

	qml_status	(*job_delete) (qml_store *store, int64_t id, bool *done);
	qml_status	(*job_requeue) (qml_store *store, int64_t id, bool *done);
	qml_status	(*queue_pause) (qml_store *store, const char *queue, bool pause,
								bool *changed);

	/*
	 * Recurring jobs: `schedule` is a 5-field cron expression (UTC unless
	 * options->timezone) or an interval ("30s", "5m"); a name already there
	 * is QML_ERR_CONFLICT with SQLSTATE 23505 and stays as it was
	 * (qml.add_recurring; qml__store_recurring_taken). list: a JSON array
	 * of objects with at least name, schedule, method, arguments, queue,
	 * next_run_at (text).
	 */
	qml_status	(*recurring_add) (qml_store *store, const char *name,
								  const char *schedule, const char *method,
								  const char *arguments,
								  const qml_recurring_options *options);
	qml_status	(*recurring_remove) (qml_store *store, const char *name);
	qml_status	(*recurring_list) (qml_store *store, char **json);
	qml_status	(*recurring_run) (qml_store *store, const char *name, int64_t *id);

	/* ---- reads (job API and the dashboard) ---- */

	qml_status	(*job_get) (qml_store *store, int64_t id, qml_job **job);
	/* newest first; filter checked (limit 1..10000, before_id keyset) */
	qml_status	(*job_list) (qml_store *store, const qml_job_filter *filter,
							 qml_job_list **list);
	/* oldest first; QML_ERR_NOT_FOUND when there is no such job */
	qml_status	(*job_events) (qml_store *store, int64_t id,
							   qml_job_event **events, size_t *count);
	/* counts by queue and state, queue NULL: all; by queue name */
	qml_status	(*stats) (qml_store *store, const char *queue,
						  qml_queue_stats **stats, size_t *count);

	/*
	 * Dashboard reads. `via` (may be NULL) is a QML_SESSION_WATCH session to
	 * read over (PostgreSQL: the watch's own connection).
	 */
	qml_status	(*overview) (qml_store *store, qml_store_session *via,
							 qml_overview **out);
	/* minutes 1..1440, one bucket per minute, oldest first, zeros kept */
	qml_status	(*throughput) (qml_store *store, qml_store_session *via,
							   int minutes, qml_throughput_bucket **out,
							   size_t *count);
	qml_status	(*workers) (qml_store *store, qml_worker_info **out,
							size_t *count);
};

/* The backend for `url` (never NULL on QML_OK); QML_ERR_INVALID naming an unknown scheme. */
qml_status	qml__store_for_url(const char *url, const qml_store_ops **ops);

/* The store of a client (NULL before open). */
qml_store  *qml__client_store(qml_client *client);

/* qml.add_recurring's refusal of a name that exists (23505), as an error. */
qml_status	qml__store_recurring_taken(const char *name);

/* Retry delay after attempt `attempts` as the extension computes it. */
int64_t		qml__store_backoff_ms(int attempts, int64_t base_ms, int64_t cap_ms);

/*
 * The first due time (µs) of a parsed schedule (src/cron.h) after `after`
 * (µs), cron fields read in UTC; QML_TIME_NULL when it never fires.
 */
struct QmlSchedule;
int64_t		qml__store_schedule_next(const struct QmlSchedule *s, int64_t after);

extern const qml_store_ops qml__store_postgres;
extern const qml_store_ops qml__store_memory;

#endif							/* QML_STORE_H */
