/*-------------------------------------------------------------------------
 *
 * job_counts.c
 *	  Jobs per queue and state, for qml.stats() and the dashboard, kept as
 *	  jobs change instead of counted by a scan of qml.jobs.
 *
 * Every change of a job's state or queue (the row triggers and the direct
 * writes, through qml_record_change and qml_jobs_stamp) and every deleted
 * job (the row trigger jobs_count_delete) moves one job from one (queue,
 * state) pair to another. stats_shared.c carries these moves to shared
 * memory at commit; the scheduler's pass adds them to
 * qml.queue_state_counts. qml.state_counts() reads the table plus what
 * shared memory still holds, under the advisory lock the roll-up takes,
 * so that nothing is counted twice or missed: exact once the changes have
 * committed.
 *
 * The table is right only while every move reaches it. It records the
 * shared memory it took them from and the losses known then
 * (qml.queue_state_counts_basis); after a restart, a TRUNCATE, or changes
 * made while no scheduler counted them, those differ: qml.state_counts()
 * counts qml.jobs instead, and the next pass builds the table again from
 * qml.jobs while holding writers off (a SHARE lock, given up after a
 * short wait so that a long transaction cannot stall the queue).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_jobs_count_delete);
PG_FUNCTION_INFO_V1(qml_state_counts);

/* the advisory lock key (with 7433580) of the job counts' roll-up */
#define COUNTS_LOCK 2

/*
 * A job left (queue `from_queue`, state `from`) for (`to_queue`, `to`);
 * JS_COUNT: it did not exist before, or does not any more.
 */
void
qml_job_counts_move(const char *from_queue, JobState from,
					const char *to_queue, JobState to)
{
	if (from == to && (from == JS_COUNT || strcmp(from_queue, to_queue) == 0))
		return;
	if (!qml_counts_live())
	{
		qml_counts_note_uncounted();
		return;
	}
	if (from != JS_COUNT)
		qml_counts_add(from_queue, QML_NO_MINUTE, from, -1);
	if (to != JS_COUNT)
		qml_counts_add(to_queue, QML_NO_MINUTE, to, 1);
}

/*
 * qml_jobs_count_delete: AFTER DELETE ... FOR EACH ROW (a deleted job
 * leaves its count), and AFTER TRUNCATE ... FOR EACH STATEMENT (every job
 * does: the table is built again).
 */
Datum
qml_jobs_count_delete(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	old;
	bool		isnull;
	Datum		queue;
	Datum		state;
	JobState	from;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event))
		elog(ERROR, "qml_jobs_count_delete must run AFTER DELETE or TRUNCATE");
	if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
	{
		qml_counts_note_loss(MyDatabaseId);
		qml_head_note_truncate();
		return PointerGetDatum(NULL);
	}
	if (!TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "qml_jobs_count_delete must run AFTER DELETE FOR EACH ROW");
	qml_check_jobs_layout(trigdata->tg_relation);
	desc = RelationGetDescr(trigdata->tg_relation);
	old = trigdata->tg_trigtuple;
	queue = heap_getattr(old, qml_catalog()->job_att[JC_QUEUE], desc, &isnull);
	if (isnull)
		return PointerGetDatum(NULL);
	state = heap_getattr(old, qml_catalog()->job_att[JC_STATE], desc, &isnull);
	if (isnull)
		return PointerGetDatum(NULL);
	from = qml_state_of_oid(DatumGetObjectId(state));
	qml_job_counts_move(TextDatumGetCString(queue), from, NULL, JS_COUNT);
	/* a waiting job's DELETE rolled back: claimable at once (queue_head.c) */
	if (from == JS_ENQUEUED)
	{
		QmlJobRow	row;

		qml_job_row_deform(desc, old, &row);
		qml_job_note_waiting_changed(&row, NULL, false);
	}
	return PointerGetDatum(NULL);
}

static const char *const add_sql =
"INSERT INTO qml.queue_state_counts AS t (queue, state, jobs)"
" SELECT u.q, u.s::qml.job_state, u.n"
"   FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
"                   pg_catalog.unnest($2::pg_catalog.text[]),"
"                   pg_catalog.unnest($3::pg_catalog.int8[])) AS u(q, s, n)"
" ON CONFLICT (queue, state) DO UPDATE"
"    SET jobs = t.jobs OPERATOR(pg_catalog.+) excluded.jobs";

static const char *const basis_sql =
"SELECT instance, losses FROM qml.queue_state_counts_basis";

static const char *const rebuild_sql[] = {
	"DELETE FROM qml.queue_state_counts",
	"INSERT INTO qml.queue_state_counts (queue, state, jobs)"
	" SELECT queue, state, pg_catalog.count(*) FROM qml.jobs GROUP BY 1, 2",
	"DELETE FROM qml.queue_state_counts_basis",
	"INSERT INTO qml.queue_state_counts_basis (instance, losses) VALUES ($1, $2)",
};

static SPIPlanPtr add_plan = NULL;
static SPIPlanPtr basis_plan = NULL;
static SPIPlanPtr drop_zero_plan = NULL;
static SPIPlanPtr rebuild_plans[lengthof(rebuild_sql)];

/* adds counts to qml.queue_state_counts (SPI connected): stats_shared.c's writer */
static void
write_counts(QmlCounted *rows, int n)
{
	Oid			types[3] = {TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID};
	Datum		values[3];
	QmlCounted *flat = palloc(Max(n * QML_COUNTERS, 1) * sizeof(QmlCounted));
	Datum	   *states = palloc(Max(n * QML_COUNTERS, 1) * sizeof(Datum));
	int64	   *deltas = palloc(Max(n * QML_COUNTERS, 1) * sizeof(int64));
	int			m = 0;
	int			i;
	int			k;

	for (i = 0; i < n; i++)
		for (k = 0; k < QML_COUNTERS; k++)
			if (rows[i].n[k] != 0)
			{
				flat[m].queue = rows[i].queue;
				states[m] = CStringGetTextDatum(qml_state_labels[k]);
				deltas[m++] = rows[i].n[k];
			}
	if (m == 0)
		return;
	values[0] = qml_text_array(flat, m);
	values[1] = PointerGetDatum(construct_array(states, m, TEXTOID, -1, false,
												TYPALIGN_INT));
	values[2] = qml_int8_array(deltas, m);
	qml_spi_run_latest(&add_plan, add_sql, 3, types, values);
}

/* whether the table holds every move: its basis is this shared memory's */
static bool
basis_current(void)
{
	bool		isnull;
	uint64		instance;
	uint64		losses;

	if (qml_spi_run(&basis_plan, basis_sql, 0, NULL, NULL) != 1)
		return false;
	instance = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1, &isnull));
	losses = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 2, &isnull));
	return instance == qml_counts_instance() &&
		losses == qml_counts_losses(MyDatabaseId);
}

/*
 * A SHARE lock on qml.jobs (and its partitions), waiting at most a moment: while it waits,
 * every writer queues behind it. False when it was not granted.
 */
static bool
lock_out_writers(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	int			nest = NewGUCNestLevel();
	bool		granted = true;

	(void) set_config_option("lock_timeout", "200", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		(void) qml_jobs_lock(ShareLock);
		/*
		 * Version 1.4's partitions take writes of their own (a rotation's
		 * moves, an admin's COPY into one), which the parent's lock does
		 * not stop: each is locked too.
		 */
		if (qml_catalog()->jobs_partitioned)
			(void) find_all_inheritors(qml_catalog()->jobs, ShareLock, NULL);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
			ReThrowError(edata);
		granted = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	AtEOXact_GUC(true, nest);
	return granted;
}

/* builds the table again from qml.jobs; false when writers did not let it */
static bool
rebuild(void)
{
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		values[2];
	QmlCounted *own;
	int			i;

	/* the scan would see this transaction's moves, which count at commit */
	if (qml_counts_own(&own) > 0 || !lock_out_writers())
		return false;
	/* read after the lock: every change counted or lost before it is in qml.jobs */
	values[0] = Int64GetDatum((int64) qml_counts_instance());
	values[1] = Int64GetDatum((int64) qml_counts_losses(MyDatabaseId));
	for (i = 0; i < lengthof(rebuild_sql); i++)
		qml_spi_run(&rebuild_plans[i], rebuild_sql[i], i == 3 ? 2 : 0,
					i == 3 ? types : NULL, i == 3 ? values : NULL);
	/* the moves waiting in shared memory are in qml.jobs already */
	qml_counts_roll_up(true, true);
	return true;
}

/*
 * A step of the pass (SPI connected), where a scheduler counts: adds the
 * moves to qml.queue_state_counts, or builds it again when it misses some.
 */
void
qml_job_counts_rollup(void)
{
	/* version 1.0's SQL has no counts table: the update's first pass builds it */
	if (qml_catalog()->schema_1_0 || !qml_counts_live() ||
		!qml_rollup_lock(COUNTS_LOCK))
		return;
	if (!basis_current())
	{
		rebuild();
		return;
	}
	qml_counts_roll_up(true, false);
	qml_spi_run(&drop_zero_plan,
				"DELETE FROM qml.queue_state_counts WHERE jobs OPERATOR(pg_catalog.=) 0",
				0, NULL, NULL);
}

void
qml_job_counts_init(void)
{
	qml_counts_set_writer(true, write_counts);
}

/* one queue's counts while qml.state_counts() adds them up */
typedef struct QueueCounts
{
	char		queue[QML_QUEUE_MAXBYTES];
	int64		n[QML_COUNTERS];
} QueueCounts;

static QueueCounts *
counts_of(HTAB *h, const char *queue)
{
	char		key[QML_QUEUE_MAXBYTES] = {0};
	QueueCounts *c;
	bool		found;

	strlcpy(key, queue, sizeof(key));
	c = hash_search(h, key, HASH_ENTER, &found);
	if (!found)
		memset(c->n, 0, sizeof(c->n));
	return c;
}

static void
add_counted(HTAB *h, const QmlCounted *rows, int n)
{
	int			i;
	int			k;

	for (i = 0; i < n; i++)
	{
		QueueCounts *c = counts_of(h, rows[i].queue);

		for (k = 0; k < QML_COUNTERS; k++)
			c->n[k] += rows[i].n[k];
	}
}

/* adds the rows (queue, state label, jobs) a query returns */
static void
add_query_rows(HTAB *h, const char *sql, bool read_only)
{
	uint64		i;
	int			k;

	if (SPI_execute(sql, read_only, 0) != SPI_OK_SELECT)
		elog(ERROR, "counting jobs failed: %s", sql);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;
		QueueCounts *c = counts_of(h, SPI_getvalue(t, d, 1));
		char	   *label = SPI_getvalue(t, d, 2);

		for (k = 0; k < QML_COUNTERS; k++)
			if (strcmp(label, qml_state_labels[k]) == 0)
				c->n[k] += DatumGetInt64(SPI_getbinval(t, d, 3, &isnull));
	}
}

/* the counts from the table and shared memory; false: they miss some */
static bool
read_counts(HTAB *h)
{
	QmlCounted *pending;
	int			npending;

	if (!basis_current())
		return false;
	add_query_rows(h, "SELECT queue, state::pg_catalog.text, jobs FROM qml.queue_state_counts",
				   false);
	/* committed, not rolled up yet; then this transaction's own */
	npending = qml_counts_pending(true, &pending);
	add_counted(h, pending, npending);
	npending = qml_counts_own(&pending);
	add_counted(h, pending, npending);
	return true;
}

/* what qml.stats() did before: a scan of qml.jobs (into an empty table) */
static void
scan_counts(HTAB *h)
{
	add_query_rows(h, "SELECT queue, state::pg_catalog.text, pg_catalog.count(*)"
				   "  FROM qml.jobs GROUP BY 1, 2", true);
}

/*
 * qml.state_counts(OUT queue text, OUT state text, OUT jobs bigint)
 *		returns setof record
 *
 * Internal (qml.stats() calls it): the jobs per queue and state, from the
 * counts where a scheduler keeps them and they are whole, else from a
 * scan of qml.jobs. Read committed only reads the counts: a transaction
 * snapshot could be older than what shared memory holds.
 */
Datum
qml_state_counts(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASHCTL		ctl;
	HTAB	   *h;
	HASH_SEQ_STATUS seq;
	QueueCounts *c;
	bool		counted = false;
	Datum		lock_args[2] = {Int32GetDatum(7433580), Int32GetDatum(COUNTS_LOCK)};

	InitMaterializedSRF(fcinfo, 0);
	ctl.keysize = QML_QUEUE_MAXBYTES;
	ctl.entrysize = sizeof(QueueCounts);
	ctl.hcxt = CurrentMemoryContext;
	h = hash_create("qml state counts", 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (qml_counts_live() && !IsolationUsesXactSnapshot())
	{
		/* no roll-up between reading the table and shared memory */
		DirectFunctionCall2(pg_advisory_lock_shared_int4, lock_args[0], lock_args[1]);
		PG_TRY();
		{
			counted = read_counts(h);
		}
		PG_FINALLY();
		{
			DirectFunctionCall2(pg_advisory_unlock_shared_int4, lock_args[0],
								lock_args[1]);
		}
		PG_END_TRY();
	}
	if (!counted)
	{
		hash_destroy(h);
		h = hash_create("qml state counts", 64, &ctl,
						HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
		scan_counts(h);
	}
	SPI_finish();

	hash_seq_init(&seq, h);
	while ((c = hash_seq_search(&seq)) != NULL)
	{
		int			k;

		for (k = 0; k < QML_COUNTERS; k++)
		{
			Datum		values[3];
			bool		nulls[3] = {false, false, false};

			if (c->n[k] == 0)
				continue;
			values[0] = CStringGetTextDatum(c->queue);
			values[1] = CStringGetTextDatum(qml_state_labels[k]);
			values[2] = Int64GetDatum(c->n[k]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}
