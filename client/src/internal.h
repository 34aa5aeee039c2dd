/*
 * internal.h
 *	  Declarations shared by the files of libqml; not installed.
 *
 * Who owns what: error.c the per-thread error, util.c time, buffers and JSON
 * checks, config.c both configurations, client.c the client (picks its
 * store) and the calls about the store as a whole (schema, health,
 * monitoring reads), jobs.c the job API, watch.c the live session of a
 * dashboard; store.h/store.c the storage interface, store_pg*.c the
 * PostgreSQL store (pool.c its connections: the pool and single
 * connections, statement execution and error mapping), store_memory*.c the
 * memory store; registry.c handlers, server.c the runtime's life cycle and
 * shared state, fetcher.c / worker.c / flusher.c / heartbeat.c one thread
 * kind each. Dependencies go one way: API -> store ops -> a store.
 */
#ifndef QML_INTERNAL_H
#define QML_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>

#include <libpq-fe.h>

#include "qml.h"
#include "store.h"

#define QML_UNUSED __attribute__((unused))

/* ---- error.c ---- */

/* Sets the calling thread's error and returns `status`. */
qml_status	qml__error(qml_status status, const char *fmt,...) QML_PRINTF(2, 3);
qml_status	qml__nomem(void);
void		qml__error_set_extra(const char *detail, const char *hint,
								 const char *sqlstate);

/* ---- util.c ---- */

int64_t		qml__mono_us(void);
int64_t		qml__mono_coarse_us(void);
/* Sleeps up to ms; returns early when *stop becomes true (checked every 20 ms). */
void		qml__sleep_ms(int ms, const atomic_bool *stop);
char	   *qml__strdup(const char *s);
/*
 * Room for `need` items of `size` bytes in `items`, an array of *cap items:
 * the array, grown by doubling (from `first` when empty) when it was too
 * small (or never allocated), or NULL when memory ran out, `items` and
 * *cap then untouched.
 */
void	   *qml__grow(void *items, size_t *cap, size_t need, size_t first, size_t size);
/* Whether s is well-formed UTF-8, as PostgreSQL and JSON text must be. */
bool		qml__utf8_valid(const char *s);
/* Its characters when s is well-formed UTF-8, else -1 (names' limits count characters). */
long		qml__utf8_chars(const char *s);
/* A copy of s with each byte that is not part of a UTF-8 character as '?'. */
char	   *qml__strdup_utf8(const char *s);
void		qml__i64_text(char *buf, size_t size, int64_t v);
/* A column of a result row; SQL NULL as QML_TIME_NULL, null_value or NULL. */
int64_t		qml__col_i64(const PGresult *r, int row, int col);
double		qml__col_double(const PGresult *r, int row, int col, double null_value);
char	   *qml__col_str(const PGresult *r, int row, int col, bool *oom);
/* Exponential backoff with jitter: 100 ms doubling up to 5 s. */
int			qml__backoff_ms(int attempt);
/* Condition variables timed on the monotonic clock. */
void		qml__cond_init(pthread_cond_t *cv);
/* Waits until signalled or deadline (monotonic µs; 0 = none); false on timeout. */
bool		qml__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu,
								 int64_t deadline_mono);

typedef struct qml_buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
	bool		oom;
} qml_buf;

void		qml__buf_init(qml_buf *b);
void		qml__buf_free(qml_buf *b);
void		qml__buf_reset(qml_buf *b);
void		qml__buf_append(qml_buf *b, const char *s, size_t n);
void		qml__buf_puts(qml_buf *b, const char *s);
void		qml__buf_printf(qml_buf *b, const char *fmt,...) QML_PRINTF(2, 3);
/* Appends one element of a PostgreSQL array literal: NULL or "escaped". */
void		qml__buf_array_elem(qml_buf *b, const char *s);
void		qml__buf_i64(qml_buf *b, int64_t v);
/* A PostgreSQL array literal of the strings, "{a,b}" (malloc'ed; NULL: out of memory). */
char	   *qml__array_literal(const char *const *items, size_t n);

/*
 * Whether `text` is one JSON value as PostgreSQL's jsonb accepts it; on
 * false, `err` says where and why.
 */
bool		qml__json_check(const char *text, char *err, size_t errlen);
/* True when `text` is JSON of the common plain kind (no jansson needed). */
bool		qml__json_plain(const char *text);
/* Checks arguments (NULL = ok) and sets a QML_ERR_INVALID error. */
qml_status	qml__check_arguments(const char *what, const char *json);

/* ---- config.c ---- */

struct qml_config
{
	char	   *database_url;	/* "" = libpq environment */
	int			min_connections;
	int			max_connections;
	int			connect_timeout_s;
	int			statement_timeout_ms;
	bool		auto_migrate;
	char	   *application_name;
};

struct qml_server_config
{
	char	   *name;
	int			workers;
	char	  **queues;
	size_t		nqueues;
	int			fetch_batch;
	int			prefetch;		/* jobs claimed ahead of idle workers, at most */
	bool		durable_claims; /* the fetcher's commits wait for the disk */
	int			poll_interval_ms;
	int			lease_ms;
	int			job_timeout_ms;
	int			grace_ms;
	int			flush_interval_ms;
	int			flush_max;
	qml_log_fn	log;
	void	   *log_data;
};

qml_config *qml__config_copy(const qml_config *c);
qml_server_config *qml__server_config_copy(const qml_server_config *c);

/* ---- pool.c ---- */

/* Statements the runtime prepares once per connection. */
typedef enum qml_stmt
{
	QML_STMT_FETCH,
	QML_STMT_COMPLETE,
	QML_STMT_COMPLETE_RESULTS,
	QML_STMT_FAIL,
	QML_STMT_RELEASE,
	QML_STMT_HEARTBEAT,
	QML_STMT_COUNT
} qml_stmt;

typedef struct qml_conn
{
	PGconn	   *pg;
	unsigned	prepared;		/* bit per qml_stmt */
} qml_conn;

typedef struct qml_pool qml_pool;

struct qml_client
{
	qml_config *config;
	struct qml_store *store;	/* the backend the URL picked (store.h) */
	qml_pool   *pool;			/* the PostgreSQL store's connections */
};

/* A connection outside the pool (the fetcher's, which LISTENs). */
qml_status	qml__connect(const qml_config *config, const char *appname,
						 qml_conn **conn);
void		qml__conn_close(qml_conn *conn);
bool		qml__conn_ok(const qml_conn *conn);

qml_status	qml__pool_new(const qml_config *config, qml_pool **pool);
void		qml__pool_free(qml_pool *pool);
/* Opens min_connections now, at least one, so misconfiguration shows early. */
qml_status	qml__pool_warm(qml_pool *pool);
qml_status	qml__pool_acquire(qml_pool *pool, qml_conn **conn);
/* Gives a connection back; a broken or mid-transaction one is closed. */
void		qml__pool_release(qml_pool *pool, qml_conn *conn);
/* An idle connection, out of the pool; NULL when none is idle. */
qml_conn   *qml__pool_take_idle(qml_pool *pool);
/* ... given back, as it was taken (closed when the pool is full). */
void		qml__pool_give(qml_pool *pool, qml_conn *conn);

/*
 * Runs `sql` with text parameters; on success *res (when res is not NULL)
 * holds the result for the caller to PQclear. On failure sets the thread's
 * error (server message, detail, hint, SQLSTATE mapped to a status).
 */
qml_status	qml__exec(qml_conn *conn, const char *sql, int nparams,
					  const char *const *params, PGresult **res);
/* ... with parameters in binary where formats[i] is 1 (lengths[i] bytes) */
qml_status	qml__exec_params(qml_conn *conn, const char *sql, int nparams,
							 const char *const *params, const int *lengths,
							 const int *formats, PGresult **res);
/* Several statements without parameters in one round trip (simple query). */
qml_status	qml__exec_script(qml_conn *conn, const char *sql);
qml_status	qml__exec_prepared(qml_conn *conn, qml_stmt stmt, const char *sql,
							   int nparams, const char *const *params,
							   PGresult **res);
/* ... with results in binary (result_format 1) or text (0) format */
qml_status	qml__exec_prepared_as(qml_conn *conn, qml_stmt stmt, const char *sql,
								  int nparams, const char *const *params,
								  int result_format, PGresult **res);
/* ... and parameters in binary where formats[i] is 1 (lengths[i] bytes) */
qml_status	qml__exec_prepared_bin(qml_conn *conn, qml_stmt stmt, const char *sql,
								   int nparams, const char *const *params,
								   const int *lengths, const int *formats,
								   int result_format, PGresult **res);

/* Acquire + exec + release, for the one-statement calls of the job API. */
qml_status	qml__client_exec(qml_client *client, const char *sql, int nparams,
							 const char *const *params, PGresult **res);

/* ---- maintenance_tick.c: qml.maintain() for the pure-SQL edition ---- */

typedef enum qml_maint_mode
{
	MAINT_NONE,					/* the extension: its scheduler does it */
	MAINT_SQL,					/* the SQL edition, and we may maintain it */
	MAINT_DENIED				/* the SQL edition, but not by this role */
} qml_maint_mode;

typedef struct qml_maint
{
	PGconn	   *conn;			/* the session the fields below are about */
	int			pid;			/* ... and its backend's pid */
	qml_maint_mode mode;
	bool		leader;			/* holds the maintainer's advisory lock */
	bool		complained;		/* logged the current error already */
	int64_t		next_us;		/* next tick, qml__mono_us() */
	char		error[256];
} qml_maint;

const char *qml__maintenance_tick(PGconn *conn, qml_maint *m);

/* ---- jobs.c, client.c ---- */

/* The client's store; QML_ERR_INVALID when client is NULL. */
qml_status	qml__need_store(qml_client *client, struct qml_store **store);
/* minutes of a throughput read: 1..1440 */
qml_status	qml__check_minutes(int minutes);

/* ---- store_pg_read.c ---- */

qml_status	qml__overview_on(qml_conn *conn, qml_overview **out);
qml_status	qml__throughput_on(qml_conn *conn, int minutes,
							   qml_throughput_bucket **out, size_t *count);

/* ---- registry.c ---- */

typedef struct qml_handler_entry
{
	char	   *method;
	qml_handler_fn fn;
	void	   *user_data;
} qml_handler_entry;

struct qml_registry
{
	qml_handler_entry *entries;
	size_t		count;
	size_t		cap;
	qml_handler_fn fallback;
	void	   *fallback_data;
};

/* A sorted copy, for lookups by the worker threads. */
qml_registry *qml__registry_freeze(const qml_registry *r);
const qml_handler_entry *qml__registry_find(const qml_registry *r,
											const char *method);

/* ---- the runtime (server.c and the thread files) ---- */

/* A fetched job, one allocation with its strings (store.h). */
typedef qml_store_job rt_job;

struct qml_job_ctx
{
	qml_server *server;
	rt_job	   *job;
	int64_t		deadline;		/* wall clock µs or QML_TIME_NULL */
	atomic_bool cancelled;
	char	   *result;			/* set by qml_success */
	char	   *error;			/* set by qml_retry / qml_fail */
	bool		result_invalid;
};

typedef enum rt_slot_state
{
	SLOT_IDLE,
	SLOT_RUNNING,
	SLOT_TIMED_OUT,				/* reported failed by the supervisor */
	SLOT_ABANDONED				/* released at shutdown past the grace */
} rt_slot_state;

/* One worker thread and the job it runs. */
typedef struct rt_slot
{
	qml_server *server;
	int			index;
	pthread_t	thread;
	bool		started;
	pthread_mutex_t mu;			/* guards the fields below */
	rt_slot_state state;
	int64_t		job_id;
	int64_t		lease_until_mono;
	int64_t		deadline_mono;	/* 0: no timeout */
	qml_job_ctx ctx;
} rt_slot;

typedef enum rt_report_kind
{
	REPORT_SUCCESS,
	REPORT_RETRY,
	REPORT_FAIL,
	REPORT_RELEASE
} rt_report_kind;

/* A job's outcome waiting for the flusher. */
typedef struct rt_report
{
	int64_t		id;
	rt_report_kind kind;
	char	   *text;			/* result JSON or error; owned */
} rt_report;

typedef struct rt_counters
{
	atomic_uint_fast64_t fetched, succeeded, retried, failed, timed_out,
				released, lost, fetch_calls, flushes, heartbeats, reconnects,
				wakeups;
} rt_counters;

#define QML_UNHANDLED_SLOTS 16

typedef struct rt_unhandled
{
	uint64_t	hash;			/* of the method's name */
	int64_t		at;				/* last warned, monotonic µs; 0 = free */
} rt_unhandled;

/*
 * Outcomes go out through two flusher threads, each on a session of its
 * own: the first sends every batch it finds when free; the second helps
 * only while the first is sending and no claim competes for the server
 * (the queues are drained, or the server stops): then a batch due
 * meanwhile is its. So the backlog left at a burst's end or at a stop goes
 * out in parallel, and a blocked batch does not hold back the ones behind
 * it. Under a trickle the first is never busy and the helper never opens a
 * session.
 */
#define QML_FLUSHERS 2

typedef struct rt_flusher
{
	qml_server *server;
	int			index;			/* 0: the first, 1: the helper */
	pthread_t	thread;
	bool		started;
} rt_flusher;

typedef enum rt_phase
{
	PHASE_NEW, PHASE_RUNNING, PHASE_STOPPED
} rt_phase;

struct qml_server
{
	qml_client *client;
	qml_registry *registry;
	qml_server_config *config;
	char		worker_name[201];
	char	   *queues_literal;	/* "{a,b}", for the log */
	rt_phase	phase;
	bool		sync_ready;		/* mutexes and condition variables exist */
	pthread_mutex_t life_mu;	/* serializes start/stop/free */

	/* stop requests (qml_server_request_stop; async-signal-safe) */
	int			stop_pipe[2];
	atomic_bool stop_requested;
	atomic_uint stop_requests;	/* how many; a second ends the grace period */
	atomic_bool hurry;			/* end the grace period now */
	atomic_bool watch_end;		/* the stop is over: the watcher may go */

	/* fetcher */
	pthread_t	fetcher;
	bool		fetcher_started;
	atomic_bool fetch_stop;
	int			wake_fd;		/* eventfd: room for a fetch, or stop */
	atomic_int	fetch_wake_at;	/* inflight level to wake the fetcher at; -1 */
	atomic_int	inflight;		/* fetched, and not yet run or released */
	atomic_bool queues_drained; /* the last fetch got fewer than it asked */
	atomic_uint_fast64_t finished;	/* handlers returned: the fetcher's rate */
	qml_store_session *fetch_session;	/* the fetcher's, kept open until
										 * stopped (session leases) */

	/* dispatch: fetched jobs waiting for a worker thread */
	pthread_mutex_t q_mu;
	pthread_cond_t q_cv;		/* a job was queued, or workers_stop */
	pthread_cond_t idle_cv;		/* a worker finished a job (during stop) */
	rt_job	  **ring;			/* workers + prefetch entries, oldest first */
	size_t		ring_cap;
	size_t		ring_head;
	size_t		ring_count;
	int			active;			/* worker threads running a job */
	bool		workers_stop;
	rt_slot    *slots;

	/* flushers: the first, and its helper (flusher.c) */
	rt_flusher	flushers[QML_FLUSHERS];
	pthread_mutex_t fl_mu;
	pthread_cond_t fl_cv;		/* the first: a report, a full batch, stop */
	pthread_cond_t fl_help_cv;	/* the helper: a report while the first
								 * sends, a full batch, stop */
	int			fl_sending;		/* flushers sending a batch now */
	rt_report  *reports;
	size_t		nreports;
	size_t		reports_cap;
	int64_t		oldest_report_mono;
	bool		fl_stop;
	int64_t		fl_give_up_mono;	/* at shutdown: stop retrying then */
	size_t		unflushed;		/* reports dropped at shutdown */
	atomic_bool outcomes_left;	/* some outcome dropped: its job keeps its
								 * lease (and the fetch session's) */

	/* supervisor: heartbeats and timeouts */
	pthread_t	supervisor;
	bool		supervisor_started;
	pthread_mutex_t sv_mu;
	pthread_cond_t sv_cv;
	bool		sv_stop;

	/* methods without a handler, warned about lately (worker.c) */
	pthread_mutex_t unhandled_mu;
	rt_unhandled unhandled[QML_UNHANDLED_SLOTS];

	rt_counters counters;
};

void		qml__rt_log(qml_server *s, qml_log_level level, const char *fmt,...)
			QML_PRINTF(3, 4);
/* Hands a report to the flusher (takes ownership of r->text). */
void		qml__rt_report(qml_server *s, int64_t id, rt_report_kind kind,
						   char *text);
/* Frees a slot: one job fewer in flight; wakes the fetcher if it waits. */
void		qml__rt_slot_freed(qml_server *s);

/*
 * How long a claimed job may wait in the ring for a worker before it is
 * released (µs): a second, or half the lease when that is shorter, so it is
 * never held near its lease's end and never hoarded while other servers
 * could run it.
 */
int64_t		qml__rt_hold_us(const qml_server *s);
/* Takes the ring's oldest job, NULL when empty; caller holds q_mu. */
rt_job	   *qml__rt_ring_pop(qml_server *s);
/* Gives a claimed job that never ran back to the queue (a release report). */
void		qml__rt_release_unstarted(qml_server *s, rt_job *job);

void	   *qml__fetcher_main(void *arg);
void	   *qml__worker_main(void *arg);
void	   *qml__flusher_main(void *arg);
void	   *qml__supervisor_main(void *arg);

#endif							/* QML_INTERNAL_H */
