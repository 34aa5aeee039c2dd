/*
 * qml.h
 *	  libqml: the C client of the qml PostgreSQL extension.
 *
 * Three parts, one header:
 *	 - a client (connection pool, configuration from code or environment,
 *	   schema management: qml_schema_exists, qml_migrate, auto-migrate);
 *	 - the job API: thin typed wrappers over the SQL contract (enqueue,
 *	   schedule, get, list, delete, requeue, stats, queues, recurring jobs);
 *	 - the worker runtime: a registry of handlers by method name and a
 *	   server that runs them on a pool of threads (batched fetch, batched
 *	   completion, LISTEN wakeups, heartbeats, timeouts, graceful stop).
 *
 * Conventions:
 *	 - Every fallible call returns a qml_status. QML_OK is 0. On failure the
 *	   calling thread's error (qml_errmsg(), qml_errdetail(), qml_errhint(),
 *	   qml_errsqlstate()) describes that call until the next failing call on
 *	   the same thread. Nothing in the library calls abort() or exit().
 *	 - JSON travels as text (arguments, results); the library checks it.
 *	 - Times are microseconds since the Unix epoch (int64_t); QML_TIME_NULL
 *	   stands for SQL NULL. Durations are milliseconds.
 *	 - Strings passed in are copied; strings handed out belong to the object
 *	   they come from and live as long as it does.
 *	 - A qml_client is thread-safe: any number of threads may share one.
 */
#ifndef QML_H
#define QML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QML_VERSION "1.3.0"
#define QML_TIME_NULL INT64_MIN

#if defined(__GNUC__)
#define QML_PRINTF(f, a) __attribute__((format(printf, f, a)))
/* the library is built with hidden visibility: only these are exported */
#define QML_API __attribute__((visibility("default")))
#else
#define QML_PRINTF(f, a)
#define QML_API
#endif

/* ---------------------------------------------------------------------
 * Status codes and per-thread errors
 * --------------------------------------------------------------------- */

typedef enum qml_status
{
	QML_OK = 0,
	QML_ERR_INVALID,			/* bad argument: NULL, out of range, not JSON */
	QML_ERR_CONNECT,			/* cannot reach the database, or lost it */
	QML_ERR_NO_EXTENSION,		/* qml is not installed (in the database, or
								 * its files on the server) */
	QML_ERR_UNSUPPORTED,		/* the installed qml lacks this feature */
	QML_ERR_NOT_FOUND,			/* no such job, queue or recurring job */
	QML_ERR_CONFLICT,			/* e.g. another live job has the unique key */
	QML_ERR_PERMISSION,			/* the role lacks the right */
	QML_ERR_TIMEOUT,			/* statement timeout, pool exhausted, ... */
	QML_ERR_SERVER,				/* any other error raised by the server */
	QML_ERR_STATE,				/* call out of order (server already started) */
	QML_ERR_NOMEM,
	QML_ERR_SYSTEM				/* an operating system call failed */
} qml_status;

/* "ok", "invalid argument", "connection failed", ... (static strings) */
QML_API const char *qml_status_str(qml_status status);

/* The calling thread's last error (never NULL; "" when there is none). */
QML_API qml_status	qml_errcode(void);
QML_API const char *qml_errmsg(void);
QML_API const char *qml_errdetail(void);
QML_API const char *qml_errhint(void);
QML_API const char *qml_errsqlstate(void);	/* five characters, or "" */

/* ---------------------------------------------------------------------
 * Client configuration
 * --------------------------------------------------------------------- */

typedef struct qml_config qml_config;

/*
 * Defaults: database from libpq's PG* environment, pool of 1..10
 * connections, connect timeout 10 s, no statement timeout, auto-migrate
 * on, application_name "qml".
 */
QML_API qml_config *qml_config_new(void);
QML_API void		qml_config_free(qml_config *config);

/*
 * Reads DATABASE_URL, QML_MIN_CONNECTIONS, QML_MAX_CONNECTIONS,
 * QML_CONNECT_TIMEOUT (seconds), QML_STATEMENT_TIMEOUT (ms) and
 * QML_AUTO_MIGRATE (true/false/1/0/on/off) when they are set. A malformed
 * value is an error (QML_ERR_INVALID) naming the variable.
 */
QML_API qml_status	qml_config_from_env(qml_config *config);

/* URL (postgresql://...) or key=value conninfo; NULL or "" = PG* env. */
QML_API qml_status	qml_config_set_database_url(qml_config *config, const char *url);
QML_API qml_status	qml_config_set_pool_size(qml_config *config, int min_connections,
									 int max_connections);
QML_API qml_status	qml_config_set_connect_timeout(qml_config *config, int seconds);
QML_API qml_status	qml_config_set_statement_timeout(qml_config *config, int ms);	/* 0 = none */
QML_API qml_status	qml_config_set_auto_migrate(qml_config *config, bool on);
QML_API qml_status	qml_config_set_application_name(qml_config *config, const char *name);

QML_API const char *qml_config_database_url(const qml_config *config);	/* "" = PG* */
QML_API int			qml_config_max_connections(const qml_config *config);
QML_API bool		qml_config_auto_migrate(const qml_config *config);

/* ---------------------------------------------------------------------
 * Client: connection pool and schema management
 * --------------------------------------------------------------------- */

typedef struct qml_client qml_client;

/*
 * Opens the pool (min_connections are connected at once, at least one, so a
 * bad URL or an unreachable server is reported here) and, with auto-migrate
 * on, creates or updates the extension. `config` may be NULL (defaults +
 * environment) and may be freed afterwards.
 */
QML_API qml_status	qml_client_open(const qml_config *config, qml_client **client);
QML_API void		qml_client_close(qml_client *client);

/* Whether the qml extension exists in the database. */
QML_API qml_status	qml_schema_exists(qml_client *client, bool *exists);

/*
 * Installed version (NULL when not installed) and the default version the
 * server's extension files offer (NULL when they are missing). Free both
 * with qml_free().
 */
QML_API qml_status	qml_schema_version(qml_client *client, char **installed,
							   char **available);

/*
 * CREATE EXTENSION qml, or ALTER EXTENSION qml UPDATE when an older version
 * is installed. QML_ERR_NO_EXTENSION with a hint when the server has no qml
 * extension files. Serialized with an advisory lock, so several processes
 * may migrate at once. Needs the rights CREATE EXTENSION needs.
 */
QML_API qml_status	qml_migrate(qml_client *client);

/* Migrates only when needed; *migrated (may be NULL) says whether it did. */
QML_API qml_status	qml_migrate_if_needed(qml_client *client, bool *migrated);

/* What a health check sees: the server, the extension, the scheduler. */
typedef struct qml_health
{
	char	   *server_version;
	char	   *database;
	char	   *user;
	char	   *installed_version;	/* NULL: extension not created */
	char	   *available_version;	/* NULL: no extension files on the server */
	bool		preloaded;		/* qml in shared_preload_libraries */
	int			scheduler_processes;	/* qml background processes serving
										 * this database */
	bool		launcher;		/* the scheduler's launcher runs */
	int			worker_servers;	/* worker servers connected (fetcher sessions) */
	char	   *slot_wait_since;	/* the scheduler waits for a background
									 * worker slot since then (raise
									 * max_worker_processes); NULL: it does
									 * not */
	bool		preloaded_known;	/* false: shared_preload_libraries is
									 * hidden from this role (it lacks
									 * pg_read_all_settings), and preloaded
									 * only says whether a scheduler or its
									 * launcher runs */
} qml_health;

QML_API qml_status	qml_health_check(qml_client *client, qml_health **health);
QML_API void		qml_health_free(qml_health *health);

/*
 * One scheduler pass by hand (qml.maintain()): promotes due jobs, rescues
 * expired leases, prunes. For servers without the background worker.
 * *report (may be NULL) gets its JSON summary; free with qml_free.
 */
QML_API qml_status	qml_maintain(qml_client *client, char **report);

/* ---------------------------------------------------------------------
 * Jobs
 * --------------------------------------------------------------------- */

typedef enum qml_job_state
{
	QML_STATE_SCHEDULED,
	QML_STATE_ENQUEUED,
	QML_STATE_PROCESSING,
	QML_STATE_SUCCEEDED,
	QML_STATE_FAILED,
	QML_STATE_AWAITING_RETRY,
	QML_STATE_DELETED,
	QML_STATE_COUNT
} qml_job_state;

/* "scheduled", ... ; NULL for an invalid value */
QML_API const char *qml_state_name(qml_job_state state);
/*
 * true and *state when `name` is a state name, or "retrying" (as stats
 * calls awaiting_retry)
 */
QML_API bool		qml_state_parse(const char *name, qml_job_state *state);

typedef struct qml_job
{
	int64_t		id;
	char	   *queue;
	char	   *method;
	char	   *arguments;		/* JSON text */
	int			priority;
	qml_job_state state;
	int			attempts;
	int			max_attempts;
	int64_t		run_at;			/* µs since epoch, or QML_TIME_NULL */
	int64_t		created_at;
	int64_t		enqueued_at;
	int64_t		started_at;
	int64_t		finished_at;
	char	   *locked_by;		/* NULL when not held */
	int64_t		locked_until;
	char	   *last_error;		/* NULL when none */
	char	   *result;			/* JSON text or NULL */
	char	   *unique_key;		/* NULL when none */
} qml_job;

QML_API void		qml_job_free(qml_job *job);

/* Options of one enqueue; zero-initialize ({0}) for every default. */
typedef struct qml_enqueue_options
{
	const char *queue;			/* NULL: "default" */
	int			priority;		/* higher runs first */
	int64_t		run_at;			/* µs since epoch; 0: now (see delay_ms) */
	int64_t		delay_ms;		/* > 0: run this much later (with run_at 0) */
	int			max_attempts;	/* 0: the server's qml.default_max_attempts */
	const char *unique_key;		/* NULL: none */
	int64_t		backoff_base_ms;	/* 0: the server's qml.retry_base */
	int64_t		backoff_cap_ms; /* 0: the server's qml.retry_cap */
} qml_enqueue_options;

/*
 * A new job; `arguments` is JSON text (NULL: "[]"). `options` may be NULL.
 * With a unique_key held by a live job, that job's id is returned.
 */
QML_API qml_status	qml_enqueue(qml_client *client, const char *method,
						const char *arguments,
						const qml_enqueue_options *options, int64_t *id);

typedef struct qml_job_spec
{
	const char *method;
	const char *arguments;		/* NULL: "[]" */
	qml_enqueue_options options;
} qml_job_spec;

/* Many jobs in one statement; ids[i] for jobs[i] (ids may be NULL). */
QML_API qml_status	qml_enqueue_batch(qml_client *client, const qml_job_spec *jobs,
							  size_t count, int64_t *ids);

/* Sugar: a job at a time (µs since epoch) or after a delay. */
QML_API qml_status	qml_schedule_at(qml_client *client, const char *method,
							const char *arguments, int64_t run_at,
							const qml_enqueue_options *options, int64_t *id);
QML_API qml_status	qml_schedule_in(qml_client *client, const char *method,
							const char *arguments, int64_t delay_ms,
							const qml_enqueue_options *options, int64_t *id);

/* QML_ERR_NOT_FOUND when there is no such job. Free with qml_job_free. */
QML_API qml_status	qml_job_get(qml_client *client, int64_t id, qml_job **job);

typedef struct qml_job_filter
{
	int			state;			/* a qml_job_state, or -1 for any */
	const char *queue;			/* NULL: any */
	const char *method;			/* NULL: any */
	int64_t		before_id;		/* > 0: only ids below (paging, newest first) */
	int			limit;			/* 0: 100; at most 10000 */
} qml_job_filter;

#define QML_JOB_FILTER_INIT {-1, NULL, NULL, 0, 0}

typedef struct qml_job_list
{
	size_t		count;
	qml_job   **jobs;
} qml_job_list;

/* Newest first. Free with qml_job_list_free. */
QML_API qml_status	qml_job_list_get(qml_client *client, const qml_job_filter *filter,
							 qml_job_list **list);
QML_API void		qml_job_list_free(qml_job_list *list);

/*
 * Soft delete of an unfinished job; *done (may be NULL) is false when it had
 * already finished. QML_ERR_NOT_FOUND when there is no such job.
 */
QML_API qml_status	qml_job_delete(qml_client *client, int64_t id, bool *done);

/*
 * Runs a finished (succeeded, failed, deleted) job again; *done is false
 * when it is still live. QML_ERR_NOT_FOUND, or QML_ERR_CONFLICT when another
 * live job has its unique key.
 */
QML_API qml_status	qml_job_requeue(qml_client *client, int64_t id, bool *done);

typedef struct qml_job_event
{
	int64_t		at;
	int			from_state;		/* qml_job_state or -1 (created) */
	qml_job_state to_state;
	char	   *worker;			/* NULL when none */
	char	   *error;			/* NULL when none */
} qml_job_event;

/* The job's history, oldest first. Free with qml_job_events_free. */
QML_API qml_status	qml_job_events(qml_client *client, int64_t id,
						   qml_job_event **events, size_t *count);
QML_API void		qml_job_events_free(qml_job_event *events, size_t count);

typedef struct qml_queue_stats
{
	char	   *queue;
	bool		paused;
	int64_t		counts[QML_STATE_COUNT];	/* indexed by qml_job_state */
} qml_queue_stats;

/* Counts by queue and state (queue NULL: every queue). */
QML_API qml_status	qml_stats(qml_client *client, const char *queue,
					  qml_queue_stats **stats, size_t *count);
QML_API void		qml_stats_free(qml_queue_stats *stats, size_t count);

/* *changed (may be NULL): whether the queue's state changed. */
QML_API qml_status	qml_queue_pause(qml_client *client, const char *queue, bool *changed);
QML_API qml_status	qml_queue_resume(qml_client *client, const char *queue, bool *changed);

/*
 * Recurring (cron) jobs. QML_ERR_UNSUPPORTED when the installed extension
 * has no qml.add_recurring yet. `schedule` is what qml.add_recurring takes
 * (a cron expression or an interval); arguments JSON (NULL: "[]"), queue
 * NULL: "default".
 */
QML_API qml_status	qml_recurring_add(qml_client *client, const char *name,
							  const char *schedule, const char *method,
							  const char *arguments, const char *queue);

/* What qml_recurring_add_opts adds to the jobs it enqueues; zero = defaults. */
typedef struct qml_recurring_options
{
	const char *queue;			/* NULL: "default" */
	int			priority;		/* higher runs first */
	int			max_attempts;	/* 0: qml.default_max_attempts */
	const char *timezone;		/* a cron schedule's zone; NULL: UTC */
} qml_recurring_options;

QML_API qml_status	qml_recurring_add_opts(qml_client *client, const char *name,
								   const char *schedule, const char *method,
								   const char *arguments,
								   const qml_recurring_options *options);
/* QML_ERR_NOT_FOUND when there is no recurring job of that name. */
QML_API qml_status	qml_recurring_remove(qml_client *client, const char *name);
/* The rows of qml.recurring as one JSON array text; free with qml_free. */
QML_API qml_status	qml_recurring_list(qml_client *client, char **json);

/*
 * Runs a recurring job once now, outside its schedule (its next run does not
 * move); *id (may be NULL) gets the new job's id. QML_ERR_NOT_FOUND when
 * there is no recurring job of that name.
 */
QML_API qml_status	qml_recurring_run(qml_client *client, const char *name, int64_t *id);

/* ---------------------------------------------------------------------
 * Monitoring: what a dashboard shows (client.c and each store), and a
 * live connection that waits for qml's wakeups and reads the same numbers
 * (watch.c). Jobs, one job's history and recurring jobs come from the job
 * API above.
 * --------------------------------------------------------------------- */

typedef struct qml_queue_info
{
	char	   *queue;
	bool		paused;
	int64_t		counts[QML_STATE_COUNT];	/* from qml.stats, by qml_job_state */
	double		oldest_waiting_s;	/* how long the job at the head of the
									 * queue (the next one fetched) has been
									 * due; < 0 when none waits */
	double		jobs_per_second;	/* succeeded + failed since the start of
									 * the previous minute */
} qml_queue_info;

typedef struct qml_overview
{
	int64_t		at;				/* the server's clock, µs since epoch */
	double		scheduler_lag_s;	/* how long the longest-due scheduled or
									 * retrying job has waited to be promoted;
									 * < 0 when none is due */
	size_t		count;
	qml_queue_info *queues;		/* by queue name */
} qml_overview;

/* Every queue with its counts, head-of-queue age and rate; one statement. */
QML_API qml_status	qml_overview_get(qml_client *client, qml_overview **overview);
QML_API void		qml_overview_free(qml_overview *overview);

typedef struct qml_throughput_bucket
{
	int64_t		at;				/* the minute's start, µs since epoch */
	int64_t		succeeded;
	int64_t		failed;
} qml_throughput_bucket;

/*
 * Jobs finished per minute over the last `minutes` (1..1440), every queue
 * together, oldest first, one bucket per minute (the current one included)
 * with empty minutes as zeros. Free with qml_free.
 */
QML_API qml_status	qml_throughput_get(qml_client *client, int minutes,
							   qml_throughput_bucket **buckets, size_t *count);

typedef struct qml_worker_info
{
	char	   *worker;			/* a worker server's name, or a lease holder */
	bool		connected;		/* a libqml worker server's session is open */
	int64_t		jobs;			/* jobs it holds (processing) */
	int64_t		last_seen;		/* µs: now when connected, else its latest
								 * claim */
} qml_worker_info;

/*
 * Workers seen now: libqml worker servers connected to the database (their
 * fetcher sessions) and whoever holds a processing job's lease.
 */
QML_API qml_status	qml_workers_get(qml_client *client, qml_worker_info **workers,
							size_t *count);
QML_API void		qml_workers_free(qml_worker_info *workers, size_t count);

typedef struct qml_watch qml_watch;

/*
 * A connection of its own (application_name `appname`, NULL: "qml watch")
 * that LISTENs on channel qml, for a process that follows the queues live.
 * Not thread-safe: one thread uses a watch. A lost connection is reported
 * as QML_ERR_CONNECT once and reopened by the next call.
 */
QML_API qml_status	qml_watch_open(qml_client *client, const char *appname,
						   qml_watch **watch);
QML_API void		qml_watch_close(qml_watch *watch);

/*
 * Waits up to timeout_ms for notifications; *notified (may be NULL) gets how
 * many arrived (0 on timeout).
 */
QML_API qml_status	qml_watch_wait(qml_watch *watch, int timeout_ms, int *notified);

/* qml_overview_get and qml_throughput_get over the watch's connection. */
QML_API qml_status	qml_watch_overview(qml_watch *watch, qml_overview **overview);
QML_API qml_status	qml_watch_throughput(qml_watch *watch, int minutes,
								 qml_throughput_bucket **buckets, size_t *count);

/* Statements sent to the server so far by this watch. */
QML_API uint64_t	qml_watch_statements(const qml_watch *watch);

/* ISO 8601 in UTC with microseconds: "2026-12-06T21:00:00.123456+00:00". */
QML_API void		qml_time_iso8601(int64_t us, char *buf, size_t size);

/* Frees strings the library handed out. */
QML_API void		qml_free(void *ptr);

/* ---------------------------------------------------------------------
 * Worker runtime: handlers
 * --------------------------------------------------------------------- */

typedef struct qml_job_ctx qml_job_ctx;

typedef enum qml_outcome
{
	QML_JOB_SUCCESS,			/* -> succeeded */
	QML_JOB_RETRY,				/* -> awaiting_retry while attempts remain */
	QML_JOB_FAIL				/* -> failed at once, no retry */
} qml_outcome;

/*
 * A handler runs one job on a worker thread and returns an outcome, most
 * simply through qml_success / qml_retry / qml_fail below. It may run
 * concurrently with itself on other threads.
 */
typedef qml_outcome (*qml_handler_fn) (qml_job_ctx *ctx, void *user_data);

/* The job being run (fields as in qml_job; state is processing). */
QML_API int64_t		qml_ctx_job_id(const qml_job_ctx *ctx);
QML_API const char *qml_ctx_method(const qml_job_ctx *ctx);
QML_API const char *qml_ctx_queue(const qml_job_ctx *ctx);
QML_API const char *qml_ctx_arguments(const qml_job_ctx *ctx);	/* JSON text */
QML_API int			qml_ctx_attempt(const qml_job_ctx *ctx);	/* 1 on the first run */
QML_API int			qml_ctx_max_attempts(const qml_job_ctx *ctx);
QML_API int			qml_ctx_priority(const qml_job_ctx *ctx);
QML_API int64_t		qml_ctx_created_at(const qml_job_ctx *ctx);
QML_API const char *qml_ctx_worker(const qml_job_ctx *ctx); /* lease holder name */
/* The client the server runs on, e.g. to enqueue follow-up jobs. */
QML_API qml_client *qml_ctx_client(const qml_job_ctx *ctx);

/*
 * When the job's time is up (µs since epoch; QML_TIME_NULL without a job
 * timeout), and ms left (INT64_MAX without one; may be negative).
 */
QML_API int64_t		qml_ctx_deadline(const qml_job_ctx *ctx);
QML_API int64_t		qml_ctx_remaining_ms(const qml_job_ctx *ctx);

/*
 * True once the handler should stop: its timeout passed (the job has been
 * reported failed), the server is shutting down past its grace period (the
 * job has been released), or its lease was lost (someone deleted it or it
 * was rescued). Threads cannot be killed safely: long handlers poll this.
 */
QML_API bool		qml_ctx_cancelled(const qml_job_ctx *ctx);

/*
 * Outcomes. qml_success stores `result_json` (NULL: none) as the job's
 * result; invalid JSON turns the outcome into QML_JOB_FAIL with an error
 * saying so. The formats give the job's last_error.
 */
QML_API qml_outcome qml_success(qml_job_ctx *ctx, const char *result_json);
QML_API qml_outcome qml_retry(qml_job_ctx *ctx, const char *fmt,...) QML_PRINTF(2, 3);
QML_API qml_outcome qml_fail(qml_job_ctx *ctx, const char *fmt,...) QML_PRINTF(2, 3);

typedef struct qml_registry qml_registry;

QML_API qml_registry *qml_registry_new(void);
QML_API void		qml_registry_free(qml_registry *registry);

/*
 * Registers `fn` for `method` (replacing an earlier one). A job whose method
 * has no handler goes to the fallback handler when one is set; else it is
 * retried with backoff (failed once out of attempts) with an error naming
 * the method, and the server logs a warning naming it, once a minute per
 * method.
 */
QML_API qml_status	qml_registry_add(qml_registry *registry, const char *method,
							 qml_handler_fn fn, void *user_data);
QML_API qml_status	qml_registry_set_fallback(qml_registry *registry,
									  qml_handler_fn fn, void *user_data);
QML_API size_t		qml_registry_count(const qml_registry *registry);

/* ---------------------------------------------------------------------
 * Worker runtime: server
 * --------------------------------------------------------------------- */

typedef struct qml_server_config qml_server_config;

typedef enum qml_log_level
{
	QML_LOG_DEBUG, QML_LOG_INFO, QML_LOG_WARNING, QML_LOG_ERROR
} qml_log_level;

typedef void (*qml_log_fn) (qml_log_level level, const char *message,
							void *user_data);

/*
 * Defaults: name "qml" (NULL), 4 workers, queue "default", fetch batch 250
 * (the most jobs one fetch claims), prefetch 500 (the most jobs claimed
 * ahead of the idle workers, see qml_server_config_set_prefetch), poll
 * interval 1000 ms, lease 300000 ms (5 minutes; heartbeats renew it), no
 * job timeout, grace period 10000 ms, completions flushed every 5 ms or
 * every 100 jobs, no logging.
 */
QML_API qml_server_config *qml_server_config_new(const char *name);
QML_API void		qml_server_config_free(qml_server_config *config);

/*
 * Reads QML_SERVER_NAME, QML_WORKERS, QML_QUEUES (comma separated, in
 * priority order), QML_FETCH_BATCH, QML_PREFETCH, QML_DURABLE_CLAIMS (on/off),
 * QML_POLL_INTERVAL (ms),
 * QML_LEASE (ms), QML_JOB_TIMEOUT (ms, 0 = none) and QML_GRACE_PERIOD (ms)
 * when set.
 */
QML_API qml_status	qml_server_config_from_env(qml_server_config *config);

QML_API qml_status	qml_server_config_set_name(qml_server_config *config, const char *name);
QML_API qml_status	qml_server_config_set_workers(qml_server_config *config, int workers);
/* Queues in priority order: earlier queues are drained first. */
QML_API qml_status	qml_server_config_set_queues(qml_server_config *config,
										 const char *const *queues, size_t count);
/* The same from "critical,normal,bulk". */
QML_API qml_status	qml_server_config_set_queues_csv(qml_server_config *config,
											 const char *csv);
QML_API qml_status	qml_server_config_set_fetch_batch(qml_server_config *config, int batch);

/*
 * Claiming ahead: besides a job for every idle worker, the fetcher may hold
 * up to `jobs` (0..10000) more, so that workers never wait for a fetch's
 * round trip. It claims only as many as the workers finish in 50 ms at
 * their recent rate (little or none while handlers are slow), and a job that
 * waited for a worker for 1 s (or half the lease, if that is shorter) is
 * released for other servers to take. 0 claims only for idle workers.
 */
QML_API qml_status	qml_server_config_set_prefetch(qml_server_config *config, int jobs);

/*
 * By default the fetcher's claims commit without waiting for the WAL flush
 * (synchronous_commit = off on its connection only): a claim lost in a
 * server crash leaves the job enqueued, and it runs again, which is what a
 * durable claim leads to as well (the crash ends the session lease and the
 * job is rescued). What differs: such a crash does not count the attempt.
 * The claim is on disk within wal_writer_delay (200 ms by default) or with
 * the next completion flushed, whichever is sooner. Completions always wait
 * for the disk. true makes claims wait too: a job that brings the database
 * server down within that window then still uses up its attempts.
 */
QML_API qml_status	qml_server_config_set_durable_claims(qml_server_config *config, bool durable);
QML_API qml_status	qml_server_config_set_poll_interval(qml_server_config *config, int ms);
QML_API qml_status	qml_server_config_set_lease(qml_server_config *config, int ms);
QML_API qml_status	qml_server_config_set_job_timeout(qml_server_config *config, int ms);
QML_API qml_status	qml_server_config_set_grace_period(qml_server_config *config, int ms);
QML_API qml_status	qml_server_config_set_flush(qml_server_config *config,
										int interval_ms, int max_jobs);
QML_API qml_status	qml_server_config_set_log(qml_server_config *config,
									  qml_log_fn fn, void *user_data);

QML_API int			qml_server_config_workers(const qml_server_config *config);

typedef struct qml_server qml_server;

/*
 * A server over `client` (which must outlive it) running the handlers of
 * `registry` (copied: later changes do not affect the server). The
 * configuration is copied too. The fetcher (which LISTENs and holds the
 * session leases) and the flusher open connections of their own; heartbeats
 * borrow one from the client's pool. A handler must not call
 * qml_server_stop (it would wait for itself): use qml_server_request_stop.
 */
QML_API qml_status	qml_server_new(qml_client *client, const qml_registry *registry,
						   const qml_server_config *config, qml_server **server);

/* Starts the threads and returns; jobs run until qml_server_stop. */
QML_API qml_status	qml_server_start(qml_server *server);

/*
 * Graceful stop: stops fetching, gives running jobs the grace period to
 * finish, cancels and releases those still running, releases jobs fetched
 * but not started, flushes every completion, and joins the threads (a
 * handler that ignores qml_ctx_cancelled delays the return). Idempotent.
 */
QML_API qml_status	qml_server_stop(qml_server *server);

/*
 * Requests a stop from anywhere, even a signal handler (async-signal-safe):
 * qml_server_wait returns and the caller then calls qml_server_stop. In
 * qml_server_run, a second request during the stop ends the grace period.
 */
QML_API void		qml_server_request_stop(qml_server *server);

/*
 * Blocks until qml_server_request_stop is called or, with `signals` true,
 * until SIGINT or SIGTERM arrives (blocked in the calling thread while it
 * waits, so call it from the main thread with those signals not ignored).
 * Returns the signal number, or 0.
 */
QML_API int			qml_server_wait(qml_server *server, bool signals);

/*
 * start + wait for SIGINT/SIGTERM + stop. A second SIGINT or SIGTERM (or a
 * second qml_server_request_stop) during the stop ends the grace period at
 * once: running jobs are cancelled and released as past it, and the call
 * still returns QML_OK; signals that arrive after the stop are consumed.
 */
QML_API qml_status	qml_server_run(qml_server *server);

QML_API void		qml_server_free(qml_server *server);

/* The lease holder name this server uses: "<name>@<host>:<pid>:<n>". */
QML_API const char *qml_server_worker_name(const qml_server *server);

typedef struct qml_server_counters
{
	uint64_t	fetched;		/* jobs claimed */
	uint64_t	succeeded;		/* handler said success (flushed or not) */
	uint64_t	retried;		/* reported failed, to be retried */
	uint64_t	failed;			/* reported failed, no retry */
	uint64_t	timed_out;		/* part of retried: the job timeout passed */
	uint64_t	released;		/* given back at shutdown */
	uint64_t	lost;			/* outcomes the server refused: lease lost
								 * (not those sent again after a broken
								 * connection: the first send may have
								 * recorded them) */
	uint64_t	fetch_calls;
	uint64_t	flushes;
	uint64_t	heartbeats;
	uint64_t	reconnects;
	uint64_t	wakeups;		/* notifications that led to a fetch */
} qml_server_counters;

QML_API void		qml_server_get_counters(const qml_server *server,
									qml_server_counters *counters);

/* Current time, µs since the Unix epoch (wall clock). */
QML_API int64_t		qml_now(void);

/*
 * Parses a duration such as "500ms", "30s", "5m", "2h", "1d" (also "sec",
 * "min", "minutes", ...) into *ms; a bare number counts in `bare_unit_ms`
 * (1 for milliseconds, 1000 for seconds). False when it is not one.
 */
QML_API bool		qml_parse_duration_ms(const char *text, int64_t bare_unit_ms,
									  int64_t *ms);

#ifdef __cplusplus
}
#endif

#endif							/* QML_H */
