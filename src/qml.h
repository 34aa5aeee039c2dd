/*-------------------------------------------------------------------------
 *
 * qml.h
 *	  Declarations shared by the qml extension's C files: settings (GUCs)
 *	  and the entry points each file offers the others.
 *
 *-------------------------------------------------------------------------
 */
#ifndef QML_H
#define QML_H

#include "postgres.h"

#include "access/tableam.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "nodes/pg_list.h"
#include "storage/lwlock.h"
#include "utils/array.h"
#include "utils/relcache.h"
#include "utils/timestamp.h"

/* settings, defined in qml.c */
extern int	qml_retry_base_ms;
extern int	qml_retry_cap_ms;
extern int	qml_default_max_attempts;
extern int	qml_retention_s;
extern bool qml_prune_failed;
extern int	qml_generation_length_s;
extern bool qml_history;
extern bool qml_durable_claims;
extern int	qml_maintain_batch;

/* job states, in the order of the enum qml.job_state's labels */
typedef enum JobState
{
	JS_SCHEDULED,
	JS_ENQUEUED,
	JS_PROCESSING,
	JS_SUCCEEDED,
	JS_FAILED,
	JS_AWAITING_RETRY,
	JS_DELETED,
	JS_COUNT					/* also: no state (NULL) */
} JobState;

extern const char *const qml_state_labels[JS_COUNT];

/* one state change of one job, as the row trigger saw it */
typedef struct QmlJobChange
{
	int64		job_id;
	JobState	from_state;		/* JS_COUNT when the job was created */
	JobState	to_state;
	char	   *queue;
	char	   *worker;			/* NULL if none */
	char	   *error;			/* NULL if none */
	TimestampTz run_at;			/* when a scheduled or retrying job is due */
	int32		priority;
} QmlJobChange;

/* job_history.c */
extern void qml_history_add(const QmlJobChange *change);
extern void qml_history_flush(void);
extern bool qml_history_wanted(const char *queue);
extern bool qml_history_per_queue(void);

/* history_inline.c */
extern bytea *qml_history_append(bytea *old, const QmlJobChange *change,
								 TimestampTz at);
extern void qml_history_check(bytea *history);

/* job_trigger.c: hands a change to the history and to wakeup.c */
extern void qml_record_change(const QmlJobChange *change);
/*
 * A row of qml.jobs taken apart once: every attribute's value and null flag,
 * by attribute number - 1 (a slot's tts_values and tts_isnull will do).
 * The code that reads or changes several columns of a job works on one and
 * forms the row once.
 */
typedef struct QmlJobRow
{
	Datum	   *values;
	bool	   *nulls;
} QmlJobRow;

extern void qml_job_row_deform(TupleDesc desc, HeapTuple tuple, QmlJobRow *row);
extern JobState qml_job_row_state(const QmlJobRow *row);
extern bool qml_job_stamp_update(const QmlJobRow *old, JobState from,
								 QmlJobRow *new, JobState to);
extern void qml_job_record_update(const QmlJobRow *old, JobState from,
								  const QmlJobRow *new, JobState to);
extern void qml_job_note_waiting_changed(const QmlJobRow *old,
										 const QmlJobRow *new,
										 bool still_waiting);

/* catalog.c: qml's own tables, looked up once per session */
typedef enum JobColumn
{
	JC_ID,
	JC_QUEUE,
	JC_METHOD,
	JC_ARGUMENTS,
	JC_PRIORITY,
	JC_STATE,
	JC_ATTEMPTS,
	JC_MAX_ATTEMPTS,
	JC_RUN_AT,
	JC_CREATED_AT,
	JC_ENQUEUED_AT,
	JC_STARTED_AT,
	JC_FINISHED_AT,
	JC_LOCKED_BY,
	JC_LOCKED_UNTIL,
	JC_LAST_ERROR,
	JC_RESULT,
	JC_UNIQUE_KEY,
	JC_BACKOFF_BASE,
	JC_BACKOFF_CAP,
	JC_LEASE_PID,
	JC_LEASE_SESSION,
	JC_LOCKED_ROLE,
	JC_HISTORY,
	JC_COUNT
} JobColumn;

/* the columns of qml.job_events */
typedef enum EventColumn
{
	EC_ID,
	EC_JOB_ID,
	EC_FROM_STATE,
	EC_TO_STATE,
	EC_AT,
	EC_WORKER,
	EC_ERROR,
	EC_COUNT
} EventColumn;

typedef struct QmlCatalog
{
	Oid			jobs;
	Oid			job_events;
	Oid			queues;
	Oid			jobs_seq;		/* identity sequences */
	Oid			job_events_seq;
	Oid			job_state;		/* the enum type */
	Oid			state_oids[JS_COUNT];
	int			jobs_natts;		/* dropped columns included */
	bool		schema_1_0;		/* no locked_role: version 1.0's SQL (see catalog.c) */
	bool		inline_history; /* jobs.history (1.2): no rows in a history table */
	bool		jobs_partitioned;	/* the ring of version 1.4 (generations.c) */
	AttrNumber	job_att[JC_COUNT];
	AttrNumber	event_att[EC_COUNT];
} QmlCatalog;

extern QmlCatalog qml_catalog_cache;
extern bool qml_catalog_cached;
extern const QmlCatalog *qml_catalog_load(void);

/*
 * qml's tables, their columns and the states' labels, looked up once per
 * session and again after a relcache invalidation of the tables. Inline:
 * a fetch and a completion of 10 jobs ask about 600 times (every column of
 * every row they read or write), and each out-of-line call paid a full
 * prologue (frame, saved registers, stack protector) before the check, 1%
 * of the pair's instructions under callgrind.
 */
static inline const QmlCatalog *
qml_catalog(void)
{
	if (likely(qml_catalog_cached))
		return &qml_catalog_cache;
	return qml_catalog_load();
}
extern JobState qml_state_of_oid(Oid label);
extern Oid	qml_function_oid(const char *name, int nargs, const Oid *argtypes);
extern Oid	qml_enqueue_as_owner_oid(void);
extern void qml_require_schema_1_1(void);
extern Oid	qml_table_oid(Oid nsp, const char *name);
extern Oid	qml_jobs_lock(LOCKMODE mode);
extern void qml_check_jobs_layout(Relation rel);

/* direct_gate.c: whether the direct writes may write qml's tables */
extern bool qml_table_is_original(Oid relid);
extern bool qml_jobs_writes_are_ours(Relation rel);
extern void qml_refuse_distributed(const Oid *relids, int n);

/*
 * A row of qml.jobs by column, once JobColumn is known. Inline: claiming
 * and completing a job read and write some 40 columns of its row.
 */

/* column `c` of the row; NULL for a column the table lacks (1.0's) */
static inline Datum
qml_row_get(const QmlJobRow *row, JobColumn c, bool *isnull)
{
	AttrNumber	attnum = qml_catalog()->job_att[c];

	if (attnum == InvalidAttrNumber)
	{
		*isnull = true;
		return (Datum) 0;
	}
	*isnull = row->nulls[attnum - 1];
	return row->values[attnum - 1];
}

/* sets column `c` of the row, unless the table lacks it (1.0's) */
static inline void
qml_row_set(QmlJobRow *row, JobColumn c, Datum value, bool isnull)
{
	AttrNumber	attnum = qml_catalog()->job_att[c];

	if (attnum == InvalidAttrNumber)
		return;
	row->values[attnum - 1] = value;
	row->nulls[attnum - 1] = isnull;
}

/*
 * direct_insert.c: rows into one of qml's tables and its indexes, and
 * updates of qml.jobs, without an executor; no triggers, rules or
 * constraints run.
 */
#define DIRECT_INSERT_BATCH 64

typedef struct QmlDirectInsert
{
	Relation	rel;
	struct TupleTableSlot *slots[DIRECT_INSERT_BATCH];	/* created as needed */
	int			nwaiting;		/* rows in slots not yet written */
	/* the session's plan of plain btree indexes (direct_insert.c) ... */
	int			nindexes;
	Relation   *indexes;		/* NULL: the executor's way below; an
								 * entry is NULL until a row goes there */
	Oid		   *index_oids;
	struct IndexInfo **infos;
	struct ExprState **predicates;
	int			npredattrs;		/* the columns they read (-1: not known) */
	AttrNumber *predattrs;
	bool	   *admit;			/* the last row's answers, by index */
	struct AdmitMemo *memo;		/* the session's last answers */
	int			keyatts;		/* the most columns of an index */
	bool	   *admits;			/* by waiting row and index (made ... */
	Datum	   *keys;			/* ... as needed): by row, index and column */
	bool	   *keynulls;
	/* ... or the executor's */
	struct EState *estate;
	struct ResultRelInfo *rri;
} QmlDirectInsert;

extern void qml_direct_open(QmlDirectInsert *d, Oid relid);
extern bool qml_direct_open_jobs(QmlDirectInsert *d);
extern void qml_direct_insert(QmlDirectInsert *d, Datum *values, bool *nulls);
extern void qml_direct_close(QmlDirectInsert *d);
extern bool qml_direct_can_update(QmlDirectInsert *d);
extern TM_Result qml_direct_update(QmlDirectInsert *d,
								   struct TupleTableSlot *oldslot,
								   const Datum *values, const bool *nulls,
								   Snapshot snapshot, TM_FailureData *tmfd);
extern TM_Result qml_direct_update_wait(QmlDirectInsert *d,
										struct TupleTableSlot *oldslot,
										const Datum *values, const bool *nulls,
										Snapshot snapshot, bool wait,
										TM_FailureData *tmfd, HeapTuple *written);

/*
 * producer_api.c: one job's row, from the parameters of enqueue's INSERT
 * ($1..$10, in this order)
 */
typedef enum EnqueueParam
{
	EP_QUEUE,
	EP_METHOD,
	EP_ARGUMENTS,
	EP_PRIORITY,
	EP_STATE,
	EP_MAX_ATTEMPTS,
	EP_RUN_AT,
	EP_BACKOFF_BASE,
	EP_BACKOFF_CAP,
	EP_UNIQUE_KEY,
	QML_ENQUEUE_NPARAMS
} EnqueueParam;

extern int64 qml_enqueue_row(QmlDirectInsert *out, const Datum *values,
							 const char *nulls, JobState state);

/*
 * claim_commit.c: a transaction that only claimed commits without the
 * WAL flush (qml.durable_claims)
 */
extern void qml_claims_begin(void);
extern void qml_claims_end(void);

/*
 * claim_lock.c: a claim's rows, taken in the versions its snapshot saw;
 * take() returns whether it took the row at tid, which slot holds already
 * or, when empty, is there to read it into
 */
typedef bool (*QmlTakeRow) (Relation rel, ItemPointer tid,
							struct TupleTableSlot *slot, void *arg);
struct QmlWalk;

extern int	qml_take_claimable(SPIPlanPtr plan, Datum *values, const char *nulls,
							   int wanted, QmlTakeRow take, void *arg,
							   struct QmlWalk *walk);
struct QmlHeadKey;
extern int	qml_take_enqueued(Datum queue, const struct QmlHeadKey *from, bool lower,
							  int wanted, QmlTakeRow take, void *arg,
							  struct QmlWalk *walk);
extern bool qml_lock_version(Relation rel, ItemPointer tid,
							 struct TupleTableSlot *slot);
extern int	qml_lock_claimable(SPIPlanPtr plan, Datum *values, const char *nulls,
							   int wanted, ItemPointerData *tids);

/* worker_write.c: claims and the held jobs' writes without an UPDATE statement */
typedef struct QmlClaim
{
	text	   *worker;
	Oid			role;			/* the claiming role (lease_role.c) */
	TimestampTz locked_until;
	bool		session_lease;	/* else no lease_pid, lease_session */
	int32		session_pid;
	TimestampTz session_started;
} QmlClaim;

/* how a claim writes its rows, decided at the first row it takes */
typedef enum QmlClaimMode
{
	QML_CLAIM_UNDECIDED,
	QML_CLAIM_DIRECT,			/* updated here, rows[] */
	QML_CLAIM_STATEMENT			/* locked, tids[], for the UPDATE statement */
} QmlClaimMode;

/* one claim in progress (qml_claim_begin, qml_claim_row, qml_claim_end) */
typedef struct QmlClaimRun
{
	QmlClaim	claim;
	QmlClaimMode mode;
	QmlDirectInsert d;			/* open in QML_CLAIM_DIRECT */
	Datum		started;		/* the claimed rows' started_at */
	QmlJobRow	row;			/* room to build each one (direct) */
	HeapTuple  *rows;
	struct QmlHeadKey *keys;	/* each row's place in the queue (direct) */
	ItemPointerData *tids;
	int			n;				/* rows claimed, or tids locked */
} QmlClaimRun;

extern bool qml_direct_open_for_update(QmlDirectInsert *d);
extern void qml_claim_begin(QmlClaimRun *run, const QmlClaim *claim, int wanted);
extern bool qml_claim_row(Relation rel, ItemPointer tid,
						  struct TupleTableSlot *slot, void *arg);
extern void qml_claim_end(QmlClaimRun *run);
/* a copy of `tuple` cut before its last attribute, whose value starts at `len` */
extern HeapTuple qml_tuple_cut_last(HeapTuple tuple, uint32 len);

/*
 * A write of the jobs a worker holds (complete, fail, heartbeat, release):
 * what differs between them. build makes `new` (a copy of `old`) the row
 * the function's UPDATE would write for the id at `pos` of the caller's
 * arrays, its SET list only, and returns the state it goes to; written
 * hears of each row written.
 */
typedef struct QmlHeldWrite
{
	const char *caller;			/* what a read-only transaction is told it
								 * cannot execute */
	JobState	(*build) (const QmlJobRow *old, QmlJobRow *new, int pos, void *arg);
	void		(*written) (const QmlJobRow *new, JobState to, int pos, void *arg);
	void	   *arg;
} QmlHeldWrite;

extern int	qml_write_held(const QmlHeldWrite *w, const Datum *ids,
						   const bool *id_nulls, int n, const text *worker);

/*
 * xact_list.c: a list of entries a transaction keeps until it ends; every
 * entry type starts with a SubTransactionId, which the list fills in. A
 * keyed list finds entries by a name (a char * member) and a tag, through a
 * hash table once it holds a few. A list emptied within its transaction
 * (qml_xact_list_clear) has a memory context of its own; the others
 * allocate in the transaction's.
 */
typedef struct QmlXactList
{
	Size		entry_size;
	int			name_offset;	/* of the entry's char *name; -1: not keyed */
	bool		own_memory;		/* a context of its own, which clear resets */
	MemoryContext cxt;			/* own_memory: under TopTransactionContext,
								 * made on demand */
	char	   *entries;
	int64	   *tags;			/* keyed: each entry's tag */
	struct HTAB *index;			/* keyed: (name, tag) -> latest entry */
	int			n;
	int			max;
} QmlXactList;

#define QML_XACT_CLEARED_LIST(type) \
	{sizeof(type), -1, true, NULL, NULL, NULL, NULL, 0, 0}
#define QML_XACT_KEYED_LIST(type, name) \
	{sizeof(type), offsetof(type, name), false, NULL, NULL, NULL, NULL, 0, 0}
#define qml_xact_list_at(list, i) \
	((void *) ((list)->entries + (Size) (i) * (list)->entry_size))

extern void *qml_xact_list_push(QmlXactList *list);
extern void *qml_xact_list_find(QmlXactList *list, const char *name, int64 tag,
								bool any_subxact);
extern void *qml_xact_list_add(QmlXactList *list, const char *name, int64 tag);
extern MemoryContext qml_xact_list_memory(QmlXactList *list);
extern void qml_xact_list_drop_aborted(QmlXactList *list, SubTransactionId subid);
extern void qml_xact_list_clear(QmlXactList *list);
extern void qml_xact_list_forget(QmlXactList *list);

/* lease_role.c: whose a lease is */
extern Oid	qml_lease_role(void);
extern bool qml_may_act(Oid locked_role, int *admin);

/* session_plan.c */
extern SPIPlanPtr qml_session_cursor_plan(SPIPlanPtr *slot, const char *sql,
										  int nargs, Oid *types);
extern SPIPlanPtr qml_session_plan(SPIPlanPtr *slot, const char *sql, int nargs,
								   Oid *types);
extern int	qml_execute_plan(SPIPlanPtr plan, Datum *values, const char *nulls);
extern int	qml_execute_plan_into(SPIPlanPtr plan, Datum *values, const char *nulls,
								  DestReceiver *dest);

/* checks.c; the limits are in docs/errors.md */
#define QML_MAX_DURATION_YEARS 100	/* lease, backoff, delay, retention ... */
#define QML_MAX_METHOD_CHARS 1000
#define QML_MAX_QUEUE_CHARS 128
#define QML_MAX_WORKER_CHARS 200
/* the unique index's key (queue, unique_key) stays under a btree item's 2704 bytes */
#define QML_MAX_UNIQUE_KEY_CHARS 500
#define QML_MAX_BATCH_JOBS 1000000	/* enqueue_batch elements */
#define QML_MAX_BATCH_IDS 50000000		/* complete_batch job_ids */

extern void qml_check_name(const char *what, text *value, int maxlen);
extern void qml_check_duration(const char *what, Interval *value, bool zero_ok);
extern bool qml_duration_ok(Interval *value, bool zero_ok);
extern const char *qml_run_at_problem(TimestampTz run_at);
extern void qml_check_run_at(TimestampTz run_at);
extern void qml_check_unique_key(text *value);
extern void qml_check_count(const char *what, int n, int max);
extern void qml_check_array_size(const char *what, ArrayType *value, int max);

/* backoff.c */
extern int64 qml_backoff_usec(int attempt, int64 base_usec, int64 cap_usec);
extern int64 qml_retry_delay_usec(int attempt, Interval *base, Interval *cap);

/* maintain.c: one scheduler pass; the caller provides a transaction and SPI */
typedef struct QmlPassResult
{
	uint64		promoted;
	uint64		rescued;		/* leases expired and sessions ended */
	uint64		fired;			/* recurring jobs enqueued */
	uint64		pruned;
	bool		more;			/* a step hit its batch limit: pass again now */
	TimestampTz next_due;		/* earliest known due time, DT_NOEND if none */
} QmlPassResult;

extern void qml_maintain_pass(QmlPassResult *result);

/* generations.c: the ring of version 1.4's partitioned qml.jobs */
extern int64 qml_rotate_step(TimestampTz *next_due);
extern uint64 qml_spi_run(SPIPlanPtr *plan, const char *sql, int nargs,
						  Oid *types, Datum *values);
extern uint64 qml_spi_run_latest(SPIPlanPtr *plan, const char *sql, int nargs,
								 Oid *types, Datum *values);

/*
 * The scheduler and everything it shares with the backends (issue 3):
 * settings, shared memory, wakeups, session leases, statistics, recurring
 * jobs. Without shared_preload_libraries there is no shared memory:
 * qml_shmem_ready() is false and each module falls back (NOTIFY on every
 * enqueue, polling waits, time leases only, statistics read from qml.jobs).
 */

/* settings, defined in qml.c */
typedef enum QmlWakeups
{
	QML_WAKEUPS_OFF,
	QML_WAKEUPS_ON,				/* NOTIFY only when a fetch came back empty */
	QML_WAKEUPS_ALWAYS			/* NOTIFY on every enqueuing commit */
} QmlWakeups;

extern char *qml_databases;
extern int	qml_scheduler_interval_ms;
extern int	qml_wakeups;
extern int	qml_stats_retention_s;

/* longest queue name in bytes: 128 characters of up to 4 bytes, and a NUL */
#define QML_QUEUE_MAXBYTES (128 * 4 + 1)

/* shmem.c: the registry of schedulers, one entry per database */
#define QML_LOCK_REGISTRY		0
#define QML_LOCK_STATS_FIRST	1
#define QML_STATS_PARTITIONS	16
#define QML_NUM_LWLOCKS			(1 + QML_STATS_PARTITIONS)

extern void qml_shmem_install(void);
extern bool qml_shmem_ready(void);
extern LWLock *qml_lwlock(int i);
extern bool qml_registry_claim(Oid dboid);
extern bool qml_registry_must_leave(void);
extern void qml_registry_set_awake(void);
extern void qml_registry_set_wake(TimestampTz at, TimestampTz due);
extern TimestampTz qml_registry_due_at(Oid dboid);
extern bool qml_registry_has_scheduler(Oid dboid);
extern void qml_registry_wake(Oid dboid, TimestampTz due);
extern void qml_registry_ask_leave(Oid dboid, int seconds);
extern TimestampTz qml_registry_leave_until(Oid dboid);
extern void qml_registry_set_launcher(void);
extern void qml_registry_wake_launcher(void);

/* what a database's scheduler found when it last looked for the extension */
typedef enum QmlExtensionSeen
{
	QML_EXT_UNKNOWN = 0,
	QML_EXT_PRESENT,
	QML_EXT_ABSENT
} QmlExtensionSeen;

extern uint64 qml_registry_ext_gen(void);
extern void qml_registry_extension_changed(bool exists);
extern int	qml_registry_take_created(Oid *dboids, uint64 *gens, int max,
									  bool *overflow);
extern void qml_registry_note_extension(bool present, uint64 gen);
extern QmlExtensionSeen qml_registry_extension_seen(Oid dboid, uint64 *gen);
extern void qml_registry_set_slot_wait(Oid dboid, bool waiting);
extern TimestampTz qml_registry_slot_wait(Oid dboid);

/* each module's part of shared memory */
extern Size qml_wakeup_shmem_size(void);
extern void qml_wakeup_shmem_init(void);
extern Size qml_session_shmem_size(void);
extern void qml_session_shmem_init(void);
extern Size qml_counts_shmem_size(void);
extern void qml_counts_shmem_init(void);

/* launcher.c */
extern void qml_launcher_register(void);
extern void qml_utility_hook_install(void);

/* extension_watch.c */
extern void qml_extension_watch_init(void);
extern void qml_extension_watch(Node *stmt);
extern bool qml_parse_databases(const char *value, List **include,
								List **exclude, bool *all, char **problem);
extern PGDLLEXPORT void qml_launcher_main(Datum arg);

/* scheduler.c */
extern PGDLLEXPORT void qml_scheduler_main(Datum arg);

/* wakeup.c */
typedef struct QmlWaitSet
{
	int			nslots;
	int		   *slots;			/* queue slots of the queues fetched from */
	uint64		epoch;			/* enqueuing commits seen before the claim */
	int			retries;		/* claims retried without a wait */
	bool		woken;			/* the last sleep ended with a new commit */
	int			batch;			/* the fetch's batch */
} QmlWaitSet;

extern void qml_wakeup_init(void);
extern int	qml_queue_slot(Oid dboid, const char *queue, int len);
extern void qml_job_changed(const QmlJobChange *change);
extern void qml_wakeup_pass_mode(bool on);
extern void qml_wakeup_send_missed(void);
extern void qml_wake_scheduler_at_commit(TimestampTz due);
extern void qml_wake_launcher_at_commit(void);
extern void qml_wait_begin(QmlWaitSet *ws, Datum *queues, int nqueues, int batch);
extern void qml_wait_epoch(QmlWaitSet *ws);
extern bool qml_wait_for_work(QmlWaitSet *ws, TimestampTz deadline);
extern TimestampTz qml_wait_deadline(Interval *wait);
extern Interval *qml_lease_from_now(Interval *lease);
extern void qml_wakeup_each_pending(void (*fn) (const char *queue));
extern void qml_wake_queue_at_commit(const char *queue, int slot);
extern bool qml_wakeup_wants_scheduler(void);

/* queue_head.c: where a queue's claimable jobs begin in jobs_fetch_idx */
typedef struct QmlHeadKey
{
	int32		priority;
	TimestampTz run_at;
	int64		id;
} QmlHeadKey;

/*
 * What a claim's walk of jobs_fetch_idx met (claim_lock.c), for where it
 * leaves the head (qml_head_after_walk): the query's columns 2-4 are the
 * row's priority, run_at and id.
 */
typedef struct QmlWalk
{
	const char *queue;			/* the queue walked (set by the caller) */
	int			rows;			/* rows the query returned */
	bool		skipped;		/* one was not taken, nor may be passed */
	QmlHeadKey	first_skipped;	/* the first of those, in the query's order */
} QmlWalk;

extern Size qml_head_shmem_size(void);
extern void qml_head_shmem_init(void);
extern void qml_head_init(void);
extern int	qml_head_key_cmp(const QmlHeadKey *a, const QmlHeadKey *b);
extern bool qml_head_get(const char *queue, QmlHeadKey *key, uint64 *seen);
extern void qml_head_advance(const char *queue, uint64 seen, const QmlHeadKey *key,
							 bool swept);
extern bool qml_head_after_walk(const QmlWalk *walk, bool full,
								const QmlHeadKey *last, QmlHeadKey *to);
extern bool qml_head_sweep_due(const char *queue, bool took_none);
extern void qml_head_move_back(const char *queue, const QmlHeadKey *key);
extern void qml_head_remember(const char *queue, bool at_commit, const QmlHeadKey *key);
extern void qml_head_note_change(const QmlJobChange *change);
extern void qml_head_note_truncate(void);
extern void qml_head_each_pending(void (*fn) (const char *queue));
extern void qml_head_move_back_slot(int slot);

/* claim_holders.c: rows a claim may leave behind the head untaken */
extern Size qml_holders_shmem_size(void);
extern void qml_holders_shmem_init(void);
extern int	qml_holder_publish(const char *queue, const QmlHeadKey *key);
extern void qml_holder_lower(int slot, const QmlHeadKey *key);
extern void qml_holder_unpublish(int slot);
extern bool qml_holder_may_pass(Relation rel, ItemPointer tid, const char *queue,
								const QmlHeadKey *key);

/*
 * prepared_xact.c: what a prepared transaction owes its queues; slots are
 * qml_queue_slot() modulo QML_PREPARED_SLOTS, as the heads' and wakeups'
 */
#define QML_PREPARED_SLOTS 1024

extern Size qml_prepared_shmem_size(void);
extern void qml_prepared_shmem_init(void);
extern void qml_prepared_init(void);
extern bool qml_prepared_pins_head(const char *queue);
extern void qml_prepared_settle(void);

/* session_lease.c */
extern bool qml_session_register(int32 *pid, TimestampTz *started);
extern bool qml_session_alive(int32 pid, TimestampTz started);
extern uint64 qml_sessions_ended(void);
extern void qml_sessions_look_again(void);

/* stats_shared.c: counts carried from transactions to their tables */
#define QML_COUNTERS JS_COUNT
#define QML_NO_MINUTE PG_INT64_MIN	/* the key of a job count */

typedef struct QmlCounted
{
	int64		minute;
	char	   *queue;
	int64		n[QML_COUNTERS];
} QmlCounted;

typedef void (*QmlCountsWriter) (QmlCounted *rows, int n);

extern void qml_counts_init(void);
extern void qml_counts_set_writer(bool jobs, QmlCountsWriter writer);
extern bool qml_counts_live(void);
extern void qml_counts_add(const char *queue, int64 minute, int counter, int64 delta);
extern void qml_counts_roll_up(bool jobs, bool discard);
extern int	qml_counts_pending(bool jobs, QmlCounted **rows);
extern int	qml_counts_own(QmlCounted **rows);
extern void qml_counts_forget_databases(const Oid *keep, int nkeep);
extern uint64 qml_counts_dropped(void);
extern uint64 qml_counts_instance(void);
extern void qml_counts_note_loss(Oid dboid);
extern void qml_counts_note_uncounted(void);
extern void qml_counts_each_prepared(void (*fn) (const char *queue, int64 minute,
												 const int64 *n));
extern void qml_counts_publish_prepared(const char *queue, int64 minute,
										const int64 *n);
extern uint64 qml_counts_losses(Oid dboid);

/* stats.c */
extern void qml_stats_init(void);
extern void qml_stats_count(const char *queue, JobState from, JobState to);
extern void qml_stats_rollup(void);
extern bool qml_rollup_lock(int key);
extern Datum qml_int8_array(const int64 *values, int n);
extern Datum qml_text_array(const QmlCounted *rows, int n);

/* job_counts.c: jobs per queue and state */
extern void qml_job_counts_init(void);
extern void qml_job_counts_move(const char *from_queue, JobState from,
								const char *to_queue, JobState to);
extern void qml_job_counts_rollup(void);

/* recurring.c */
extern uint64 qml_recurring_fire(int batch);

#endif							/* QML_H */
