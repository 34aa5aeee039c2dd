/*
 * store_memory.h
 *	  The in-process memory store: its structures, shared by its files.
 *
 * store_memory.c owns the store's life (URL, open, close, the maintenance
 * thread, sessions and wakeups), store_memory_heap.c the heaps and the
 * string map, store_memory_jobs.c every state change, store_memory_read.c
 * what is read, store_memory_recurring.c cron jobs, store_memory_snapshot.c
 * the file of "memory:PATH".
 *
 * One mutex guards the whole store: every operation is a few heap steps,
 * and the runtime batches (a fetch claims up to 250 jobs, a completion
 * reports up to 100) so the lock is taken once per batch, not per job.
 * A job is in at most one index at a time: its queue's ready index
 * (enqueued: priority, then run_at, then id), the timers (scheduled,
 * awaiting_retry: run_at) or the leases (processing: locked_until), so one
 * heap_index serves all three.
 */
#ifndef QML_STORE_MEMORY_H
#define QML_STORE_MEMORY_H

#include <pthread.h>

#include "internal.h"
#include "store.h"
#include "../../src/cron.h"

#define MEM_INLINE_EVENTS 3
#define MEM_MINUTES 1440		/* throughput kept per minute, one day */
#define MEM_DEFAULT_MAX_ATTEMPTS 20
#define MEM_DEFAULT_RETENTION_MS (3600 * 1000)

typedef struct mem_event
{
	int64_t		at;
	int8_t		from;			/* qml_job_state or -1 */
	int8_t		to;
	const char *worker;			/* interned, or NULL */
	char	   *error;			/* owned, or NULL */
} mem_event;

typedef struct mem_queue mem_queue;

typedef struct mem_job
{
	int64_t		id;
	mem_queue  *queue;
	const char *method;			/* these three in the job's own block */
	const char *arguments;
	const char *unique_key;		/* NULL when none */
	int			priority;
	int8_t		state;			/* qml_job_state */
	int			attempts;
	int			max_attempts;
	int64_t		run_at;
	int64_t		created_at;
	int64_t		enqueued_at;
	int64_t		started_at;
	int64_t		finished_at;
	int64_t		locked_until;
	const char *locked_by;		/* interned, or NULL */
	char	   *last_error;		/* owned */
	char	   *result;			/* owned */
	int64_t		backoff_base_ms;
	int64_t		backoff_cap_ms;
	int			heap_index;		/* in the heap it is in; -1 when none, -2
								 * in its queue's lane */
	int64_t		lane_seq;		/* its place in the lane */
	uint32_t	nevents;
	uint32_t	cap_events;
	mem_event  *events;			/* inline_events until it grows */
	mem_event	inline_events[MEM_INLINE_EVENTS];
} mem_job;

typedef bool (*mem_before_fn) (const mem_job *a, const mem_job *b);

typedef struct mem_heap
{
	mem_job   **items;
	size_t		n;
	size_t		cap;
	mem_before_fn before;
} mem_heap;

/* string -> job, chained; keys point into the jobs */
typedef struct mem_map_entry
{
	const char *key;
	mem_job    *job;
	struct mem_map_entry *next;
} mem_map_entry;

typedef struct mem_map
{
	mem_map_entry **buckets;
	size_t		nbuckets;
	size_t		n;
	mem_map_entry *spare;		/* for the next put (mem_map_reserve) */
} mem_map;

/*
 * An index of jobs in one order (claim order for a queue's enqueued jobs,
 * due time for timers, lease end for leases): a lane and a heap. A job
 * that sorts after the last one the lane took (the common case: same
 * priority and due now; the same lease length) is appended to the lane in
 * O(1); any other (a higher priority, a promoted or released job due
 * earlier, a renewed lease) goes to the heap. The lane stays sorted, so the
 * first job is the better of the lane's head and the heap's top. Removing
 * from the lane leaves a hole (NULL) that the head skips.
 */
typedef struct mem_lane
{
	mem_job   **ring;
	size_t		cap;
	size_t		head;
	size_t		n;				/* holes included */
	int64_t		base;			/* lane_seq of the head */
	mem_job		tail;			/* the key of the last job appended */
} mem_lane;

typedef struct mem_index
{
	mem_lane	lane;
	mem_heap	heap;
} mem_index;

struct mem_queue
{
	char	   *name;
	bool		paused;
	mem_index	ready;
	mem_map		unique;			/* live jobs' unique keys */
	int64_t		counts[QML_STATE_COUNT];
	int64_t		minute;			/* of done_cur */
	int64_t		done_cur;		/* succeeded + failed in that minute */
	int64_t		done_prev;		/* ... and in the one before */
};

typedef struct mem_session
{
	qml_store_session base;
	int			efd;			/* eventfd: work arrived */
	bool		armed;			/* write efd at the next enqueue */
	const char *worker;			/* interned */
	mem_queue **queues;
	size_t		nqueues;
	int			lease_ms;
	struct mem_session *next;
} mem_session;

typedef struct mem_recurring
{
	char	   *name;
	char	   *schedule;
	QmlSchedule parsed;
	char	   *method;
	char	   *arguments;
	char	   *queue;
	int			priority;
	int			max_attempts;
	int64_t		next_run_at;
	int64_t		last_run_at;	/* QML_TIME_NULL: never */
	struct mem_recurring *next;
} mem_recurring;

typedef struct mem_store
{
	qml_store	base;
	pthread_mutex_t mu;
	pthread_cond_t cv;			/* wakes the maintenance thread */
	pthread_t	thread;
	bool		thread_started;
	bool		stopping;

	/* from the URL */
	char	   *path;			/* NULL: no snapshot */
	int			lock_fd;		/* flock on PATH.lock while open; -1 */
	int64_t		capacity;		/* live jobs at most; 0: no limit */
	int64_t		retention_ms;	/* finished jobs kept this long */

	int64_t		next_id;
	mem_job   **by_id;			/* by_id[id - base]; NULL once pruned */
	size_t		nby_id;
	size_t		cap_by_id;
	int64_t		by_id_base;
	int64_t		live;			/* scheduled, enqueued, processing, retrying */

	mem_queue **queues;
	size_t		nqueues;
	mem_index	timers;
	mem_index	leases;

	/* finished jobs in the order they finished, for pruning */
	int64_t    *fin_ids;
	size_t		fin_head;
	size_t		fin_n;
	size_t		fin_cap;

	/* jobs finished per minute, a ring of MEM_MINUTES */
	int64_t		tp_minute[MEM_MINUTES];
	int64_t		tp_succeeded[MEM_MINUTES];
	int64_t		tp_failed[MEM_MINUTES];

	char	  **workers;		/* interned names */
	size_t		nworkers;
	mem_session *sessions;
	mem_recurring *recurring;
	uint64_t	passes;
} mem_store;

#define MEM(s) ((mem_store *) (s))

/* ---- store_memory_heap.c ---- */
bool		mem_heap_push(mem_heap *h, mem_job *j);
mem_job    *mem_heap_top(const mem_heap *h);
void		mem_heap_remove(mem_heap *h, mem_job *j);
/* after j's key changed */
void		mem_heap_fix(mem_heap *h, mem_job *j);
bool		mem_ready_before(const mem_job *a, const mem_job *b);
bool		mem_index_push(mem_index *x, mem_job *j);
/* room for `more` pushes into x that cannot fail; false when out of memory */
bool		mem_index_reserve(mem_index *x, size_t more);
mem_job    *mem_index_top(mem_index *x);
void		mem_index_remove(mem_index *x, mem_job *j);
/* calls fn for every job in x */
void		mem_index_each(mem_index *x, void (*fn) (mem_job *j, void *arg), void *arg);
void		mem_index_free(mem_index *x);
bool		mem_timer_before(const mem_job *a, const mem_job *b);
bool		mem_lease_before(const mem_job *a, const mem_job *b);

mem_job    *mem_map_get(const mem_map *m, const char *key);
bool		mem_map_put(mem_map *m, const char *key, mem_job *j);
/* room for one mem_map_put that cannot fail; false when out of memory */
bool		mem_map_reserve(mem_map *m);
void		mem_map_del(mem_map *m, const char *key);
void		mem_map_free(mem_map *m);

/* ---- store_memory.c (caller holds mu) ---- */
mem_queue  *mem_queue_get(mem_store *m, const char *name, bool create);
const char *mem_intern(mem_store *m, const char *worker);
/*
 * frees the queues created after there were `nqueues`: an operation that
 * created them and failed leaves none behind (they hold no job, and no
 * session names them)
 */
void		mem_queues_drop_since(mem_store *m, size_t nqueues);
mem_job    *mem_job_by_id(const mem_store *m, int64_t id);
/* wakes the armed sessions that fetch from q */
void		mem_wake(mem_store *m, const mem_queue *q);

/* ---- store_memory_jobs.c (caller holds mu unless said) ---- */
qml_status	mem_check_name(const char *what, const char *value, int maxlen);
/* without mu */
mem_job    *mem_job_build(const char *method, const char *arguments,
						  const qml_enqueue_options *o, int64_t now);
qml_status	mem_job_file(mem_store *m, mem_job *j, const char *queue, int64_t now,
						 int64_t *id);
qml_status	mem_insert(mem_store *m, const char *method, const char *arguments,
					   const qml_enqueue_options *o, int64_t now, int64_t *id);
/*
 * all that mem_set_state and mem_job_place will allocate for moving j to
 * `to`, for `more` jobs going the same way; false when out of memory
 */
bool		mem_reserve(mem_store *m, mem_job *j, qml_job_state to, size_t more);
/* after mem_reserve; error: owned, goes to the history line (or NULL) */
void		mem_set_state(mem_store *m, mem_job *j, qml_job_state to,
						  const char *worker, char *error, int64_t now);
/*
 * one maintenance pass; returns when the next one is due (wall µs); *nomem:
 * memory ran out, what is due and not done is left for the next pass
 */
int64_t		mem_pass(mem_store *m, int64_t now, int64_t *promoted,
					 int64_t *rescued, int64_t *fired, int64_t *pruned,
					 bool *nomem);
void		mem_job_free(mem_job *j);
/* false when out of memory: then j is in no index */
bool		mem_job_place(mem_store *m, mem_job *j);
/* a new last event of j, its fields to be set; NULL when out of memory */
mem_event  *mem_event_append(mem_job *j);
/* notes a finished job, for pruning in finish order; false when out of memory */
bool		mem_remember_finished(mem_store *m, int64_t id);

/* ---- store_memory_recurring.c (caller holds mu) ---- */
/* *nomem set when memory ran out: that run is tried again at the next pass */
int64_t		mem_recurring_fire(mem_store *m, int64_t now, bool *nomem);
void		mem_recurring_free(mem_recurring *r);
/* the next run of r after `after` (wall µs); QML_TIME_NULL when none */
int64_t		mem_recurring_next(const mem_recurring *r, int64_t after);

/* ---- store_memory_snapshot.c (no lock: open and close) ---- */
qml_status	mem_snapshot_load(mem_store *m);
qml_status	mem_snapshot_save(mem_store *m);

/* ---- the ops of each file ---- */
qml_status	mem_enqueue(qml_store *store, const char *method, const char *arguments,
						const qml_enqueue_options *o, int64_t *id);
qml_status	mem_enqueue_batch(qml_store *store, const qml_job_spec *jobs,
							  size_t count, int64_t *ids);
qml_status	mem_fetch(qml_store_session *session, int want, int wait_ms,
					  qml_store_job **out, int *got);
qml_status	mem_complete(qml_store_session *session, const char *worker,
						 const int64_t *ids, const char *const *results,
						 size_t n, size_t *done);
qml_status	mem_fail(qml_store_session *session, const char *worker,
					 const int64_t *ids, const char *const *errors,
					 const bool *retry, size_t n, size_t *done,
					 int64_t *next_ms);
qml_status	mem_release(qml_store_session *session, const char *worker,
						const int64_t *ids, size_t n, size_t *done);
qml_status	mem_heartbeat(qml_store *store, const char *worker, const int64_t *ids,
						  size_t n, int lease_ms, bool *held);
qml_status	mem_maintain(qml_store *store, char **report);
qml_status	mem_job_delete(qml_store *store, int64_t id, bool *done);
qml_status	mem_job_requeue(qml_store *store, int64_t id, bool *done);
qml_status	mem_queue_pause(qml_store *store, const char *queue, bool pause,
							bool *changed);

qml_status	mem_recurring_add(qml_store *store, const char *name,
							  const char *schedule, const char *method,
							  const char *arguments,
							  const qml_recurring_options *options);
qml_status	mem_recurring_remove(qml_store *store, const char *name);
qml_status	mem_recurring_list(qml_store *store, char **json);
qml_status	mem_recurring_run(qml_store *store, const char *name, int64_t *id);

qml_status	mem_schema_version(qml_store *store, char **installed, char **available);
qml_status	mem_migrate(qml_store *store, bool only_if_needed, bool *migrated);
qml_status	mem_health(qml_store *store, qml_health **out);
qml_status	mem_job_get(qml_store *store, int64_t id, qml_job **job);
qml_status	mem_job_list(qml_store *store, const qml_job_filter *filter,
						 qml_job_list **list);
qml_status	mem_job_events(qml_store *store, int64_t id, qml_job_event **events,
						   size_t *count);
qml_status	mem_stats(qml_store *store, const char *queue, qml_queue_stats **stats,
					  size_t *count);
qml_status	mem_overview(qml_store *store, qml_store_session *via, qml_overview **out);
qml_status	mem_throughput(qml_store *store, qml_store_session *via, int minutes,
						   qml_throughput_bucket **out, size_t *count);
qml_status	mem_workers(qml_store *store, qml_worker_info **out, size_t *count);

#endif							/* QML_STORE_MEMORY_H */
