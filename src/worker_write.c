/*-------------------------------------------------------------------------
 *
 * worker_write.c
 *	  Claims, and the writes of the jobs a worker holds (complete, fail,
 *	  heartbeat, release), done to qml.jobs without an UPDATE statement.
 *
 * For every row an UPDATE of qml.jobs changes, the executor first locks
 * the row again for the BEFORE UPDATE row trigger (GetTupleForTrigger),
 * whatever the trigger then does: for a completion one more WAL record and
 * buffer lock per job, and for every row an executor's worth of trigger
 * calls and tuple copies. A claim or a held job's write therefore builds
 * each job's new row with the trigger's own code (job_trigger.c), writes
 * it through direct_insert.c and records the change as the trigger would
 * have. A claim still finds its jobs with a SELECT (worker_api.c) and
 * writes each row it chose with one heap_update of the version the SELECT
 * saw, skipping one another transaction holds or changed as SKIP LOCKED
 * does (qml_claim_row; claim_lock.c): one WAL record per job, not a lock
 * and then an update. A completion, failure, heartbeat or release finds
 * each job by its primary key, in one loop (qml_write_held) that each of
 * them gives only how it makes the new row and what it returns.
 *
 * Only when the UPDATE would have run nothing else
 * (qml_jobs_writes_are_ours(): qml.jobs exactly as created, direct_gate.c);
 * the statements of worker_api.c and worker_finish.c run otherwise. A held
 * job's write has the UPDATE's concurrency: a job another transaction holds
 * is waited for; one it changed is looked at again as it is now (read
 * committed) or fails the transaction with a serialization failure
 * (repeatable read and serializable).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "qml.h"

/*
 * Opens qml.jobs for the direct writes here; false, with nothing left
 * open, when the UPDATE statement must run instead.
 */
bool
qml_direct_open_for_update(QmlDirectInsert *d)
{
	if (!qml_direct_open_jobs(d))
		return false;
	if (qml_direct_can_update(d))
	{
		/* as an UPDATE's executor start does (direct_gate.c) */
		CheckCmdReplicaIdentity(d->rel, CMD_UPDATE);
		return true;
	}
	qml_direct_close(d);
	/* the statements name 1.1's locked_role (worker_api.c) */
	qml_require_schema_1_1();
	return false;
}

/* the state of the row in `slot`; JS_COUNT if NULL or unknown */
static JobState
state_in(TupleTableSlot *slot)
{
	bool		isnull;
	Datum		state = slot_getattr(slot, qml_catalog()->job_att[JC_STATE], &isnull);

	return isnull ? JS_COUNT : qml_state_of_oid(DatumGetObjectId(state));
}

/*
 * The row in `slot`, taken apart once (as *old, the slot's own arrays),
 * and copied into `new`, which has room for every attribute: a claim or
 * completion reads its columns and builds the new row from these, and
 * forms it once.
 */
static QmlJobRow
old_and_new(TupleTableSlot *slot, QmlJobRow *new)
{
	QmlJobRow	old;
	int			natts = slot->tts_tupleDescriptor->natts;

	slot_getallattrs(slot);
	old.values = slot->tts_values;
	old.nulls = slot->tts_isnull;
	memcpy(new->values, old.values, natts * sizeof(Datum));
	memcpy(new->nulls, old.nulls, natts * sizeof(bool));
	return old;
}

/* room in `row` for every attribute of the table `desc` describes */
static void
row_alloc(QmlJobRow *row, TupleDesc desc)
{
	row->values = palloc(desc->natts * sizeof(Datum));
	row->nulls = palloc(desc->natts * sizeof(bool));
}

/*
 * The claimed row (`new`, a copy of `old`): what claim_sql's SET list
 * writes (worker_api.c), then stamped as the row trigger would.
 */
static void
processing_row(const QmlJobRow *old, QmlJobRow *new, const QmlClaim *claim,
			   Datum started)
{
	bool		isnull;
	int32		attempts = DatumGetInt32(qml_row_get(old, JC_ATTEMPTS, &isnull));

	/* as the statement's attempts + 1 would */
	if (attempts == PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("integer out of range")));
	qml_row_set(new, JC_STATE, ObjectIdGetDatum(qml_catalog()->state_oids[JS_PROCESSING]), false);
	qml_row_set(new, JC_ATTEMPTS, Int32GetDatum(attempts + 1), isnull);
	qml_row_set(new, JC_STARTED_AT, started, false);
	qml_row_set(new, JC_LOCKED_BY, PointerGetDatum(claim->worker), false);
	qml_row_set(new, JC_LOCKED_UNTIL, TimestampTzGetDatum(claim->locked_until), false);
	qml_row_set(new, JC_LOCKED_ROLE, ObjectIdGetDatum(claim->role), false);
	qml_row_set(new, JC_LEASE_PID, Int32GetDatum(claim->session_pid), !claim->session_lease);
	qml_row_set(new, JC_LEASE_SESSION, TimestampTzGetDatum(claim->session_started),
				!claim->session_lease);
	qml_job_stamp_update(old, JS_ENQUEUED, new, JS_PROCESSING);
}

/*
 * What heap_update would find the row version in `slot` to be, read
 * without writing, waiting or taking a transaction id: TM_Ok when this
 * transaction may update it now, TM_BeingModified when a transaction
 * (this one too) holds it. A table that is not heap's says
 * TM_BeingModified, for the lock that any access method takes.
 *
 * *other is set when the holder is one other transaction, by its lock
 * or its update (a plain xmax, not this transaction's, in progress): a
 * lock FOR UPDATE would be refused, so the claim skips the row without
 * asking the lock manager. At 16 workers sharing a queue, that lock
 * attempt (a tuple lock and a transaction lock taken and refused) was
 * 7% of the server's CPU. A multixact, or this transaction's own lock,
 * still goes to qml_lock_version.
 */
static TM_Result
update_check(TupleTableSlot *slot, CommandId cid, bool *other)
{
	BufferHeapTupleTableSlot *bslot = (BufferHeapTupleTableSlot *) slot;
	HeapTupleHeader tup;
	TM_Result	r;

	*other = false;
	if (!TTS_IS_BUFFERTUPLE(slot) || !BufferIsValid(bslot->buffer))
		return TM_BeingModified;
	tup = bslot->base.tuple->t_data;
	LockBuffer(bslot->buffer, BUFFER_LOCK_SHARE);
	r = HeapTupleSatisfiesUpdate(bslot->base.tuple, cid, bslot->buffer);
	if (r == TM_BeingModified && !(tup->t_infomask & HEAP_XMAX_IS_MULTI))
		*other = !TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetRawXmax(tup));
	LockBuffer(bslot->buffer, BUFFER_LOCK_UNLOCK);
	return r;
}

/*
 * A copy of `tuple` cut where the value of its last attribute starts, at
 * `len` bytes, with one attribute fewer in its header: that attribute
 * reads as NULL, as in a row written before the column was added.
 */
HeapTuple
qml_tuple_cut_last(HeapTuple tuple, uint32 len)
{
	HeapTuple	result = (HeapTuple) palloc(HEAPTUPLESIZE + len);

	*result = *tuple;
	result->t_len = len;
	result->t_data = (HeapTupleHeader) ((char *) result + HEAPTUPLESIZE);
	memcpy(result->t_data, tuple->t_data, len);
	HeapTupleHeaderSetNatts(result->t_data, HeapTupleHeaderGetNatts(tuple->t_data) - 1);
	return result;
}

/*
 * The claimed row `tuple`, formed from `row` by heap_update, as fetch
 * returns it: without its history (worker_api.c, to_result_rows, says
 * why). The history is qml.jobs' last column, so its bytes end the tuple,
 * and how many they are follows from the value it was formed from, as
 * heap_fill_tuple stores it: a short header as it is or made from a
 * long one, else the whole value. Finding where it starts by reading the
 * row's columns up to it (past NULLs, with no cached offsets) was 2% of a
 * claim. A value stored another way (external), or a tuple whose bytes
 * do not agree, is returned whole, and cut as before.
 */
static HeapTuple
without_history(HeapTuple tuple, const QmlJobRow *row, TupleDesc desc)
{
	AttrNumber	att = qml_catalog()->job_att[JC_HISTORY];
	uint32		data = tuple->t_len - tuple->t_data->t_hoff;
	bool		isnull;
	Pointer		value;
	uint32		size;
	char	   *start;

	if (att != desc->natts || HeapTupleHeaderGetNatts(tuple->t_data) != att)
		return tuple;
	value = DatumGetPointer(qml_row_get(row, JC_HISTORY, &isnull));
	if (isnull || VARATT_IS_EXTERNAL(value))
		return tuple;
	if (VARATT_IS_SHORT(value))
		size = VARSIZE_SHORT(value);
	else if (TupleDescAttr(desc, att - 1)->attstorage != TYPSTORAGE_PLAIN &&
			 VARATT_CAN_MAKE_SHORT(value))
		size = VARATT_CONVERTED_SHORT_SIZE(value);
	else
		size = VARSIZE(value);
	start = (char *) tuple->t_data + tuple->t_len - size;
	if (size > data || VARSIZE_ANY(start) != size)
		return tuple;
	return qml_tuple_cut_last(tuple, tuple->t_len - size);
}

/* starts a claim for claim->worker of up to `wanted` rows */
void
qml_claim_begin(QmlClaimRun *run, const QmlClaim *claim, int wanted)
{
	memset(run, 0, sizeof(*run));
	run->claim = *claim;
	run->mode = QML_CLAIM_UNDECIDED;
	run->rows = palloc(wanted * sizeof(HeapTuple));
	run->keys = palloc(wanted * sizeof(QmlHeadKey));
	run->tids = palloc(wanted * sizeof(ItemPointerData));
}

/*
 * Claims the row version in `oldslot` with one heap_update, the claim's
 * only WAL record for the row; false when another transaction holds or
 * changed it. `locked`: this transaction holds it FOR UPDATE already.
 */
static bool
claim_version(QmlClaimRun *run, TupleTableSlot *oldslot, bool locked)
{
	QmlJobRow	old = old_and_new(oldslot, &run->row);
	HeapTuple	row;
	TM_FailureData tmfd;
	TM_Result	r;

	processing_row(&old, &run->row, &run->claim, run->started);

	/*
	 * wait = false is the claim's SKIP LOCKED: a row another transaction
	 * took since update_check() looked is passed over, not waited for.
	 * Behind this transaction's own lock there is nothing to wait for.
	 */
	r = qml_direct_update_wait(&run->d, oldslot, run->row.values, run->row.nulls,
							   GetActiveSnapshot(), locked, &tmfd, &row);
	if (r == TM_Ok)
	{
		QmlHeadKey *key = &run->keys[run->n];
		bool		isnull;

		qml_job_record_update(&old, JS_ENQUEUED, &run->row, JS_PROCESSING);
		/* the queue order's columns, while the values are at hand */
		key->priority = DatumGetInt32(qml_row_get(&run->row, JC_PRIORITY, &isnull));
		key->run_at = DatumGetTimestampTz(qml_row_get(&run->row, JC_RUN_AT, &isnull));
		key->id = DatumGetInt64(qml_row_get(&run->row, JC_ID, &isnull));
		run->rows[run->n++] = without_history(row, &run->row,
											  RelationGetDescr(run->d.rel));
		return true;
	}
	if (r != TM_Updated && r != TM_Deleted && r != TM_SelfModified &&
		r != TM_BeingModified)
		elog(ERROR, "could not claim the job at (%u,%u): result %d",
			 ItemPointerGetBlockNumber(&oldslot->tts_tid),
			 ItemPointerGetOffsetNumber(&oldslot->tts_tid), (int) r);
	return false;
}

/*
 * A claim's QmlTakeRow (claim_lock.c): claims the row version at `tid`,
 * the one the claim's query saw, for the claim `arg` (a QmlClaimRun), or
 * skips it when another transaction holds it or changed it since.
 *
 * The row is written with one heap_update of that version, not locked
 * first: the lock was a second WAL record per job. heap_update takes a
 * transaction id before it looks at the row, and must not wait, so the
 * row is first checked as heap_update will check it, under a share lock
 * of its page; only a row this transaction may update now goes on. One
 * that another transaction holds is skipped there and then (SKIP
 * LOCKED's answer, without the lock manager); one held by this
 * transaction's own lock, or by a multixact, goes the way of a lock
 * (qml_lock_version), as before: kept if this one's, else skipped. A row
 * taken by another transaction between the check and the update is
 * skipped by heap_update itself (wait = false): the only case where a
 * claim that gets nothing holds a transaction id, and no row carries it.
 * (PostgreSQL 15's heap_update returns TM_BeingModified for it, having
 * written nothing. A server built with assertions asserts that no caller
 * passes wait = false for a held row, which this race of a few
 * instructions would trip: there every row is locked first and updated
 * with wait = true, two WAL records as before.)
 *
 * The first row the claim may take decides how the claim writes: directly
 * (worker_write.c), or, when qml.jobs has something of an admin's own,
 * locked here and written by worker_api.c's UPDATE statement.
 */
bool
qml_claim_row(Relation rel, ItemPointer tid, TupleTableSlot *slot, void *arg)
{
	QmlClaimRun *run = (QmlClaimRun *) arg;
	bool		locked = false;
	bool		other;
	TM_Result	r;

	if ((TTS_EMPTY(slot) && !table_tuple_fetch_row_version(rel, tid, SnapshotAny, slot)) ||
		state_in(slot) != JS_ENQUEUED)
		return false;
	r = update_check(slot, GetCurrentCommandId(true), &other);
#ifdef USE_ASSERT_CHECKING
	if (r == TM_Ok)
		r = TM_BeingModified;	/* lock first: see above */
#endif
	if (other)
		return false;			/* another transaction's: SKIP LOCKED */
	if (r == TM_BeingModified)
	{
		if (!qml_lock_version(rel, tid, slot))
			return false;
		locked = true;
	}
	else if (r != TM_Ok)
		return false;
	if (run->mode == QML_CLAIM_UNDECIDED)
	{
		run->mode = qml_direct_open_for_update(&run->d) ?
			QML_CLAIM_DIRECT : QML_CLAIM_STATEMENT;
		run->started = TimestampTzGetDatum(GetCurrentTimestamp());
		if (run->mode == QML_CLAIM_DIRECT)
			row_alloc(&run->row, RelationGetDescr(run->d.rel));
	}
	if (run->mode == QML_CLAIM_DIRECT)
		return claim_version(run, slot, locked);
	if (!locked && !qml_lock_version(rel, tid, slot))
		return false;
	run->tids[run->n++] = *tid;
	return true;
}

/* ends a claim: what the statement trigger jobs_flush does at the UPDATE's end */
void
qml_claim_end(QmlClaimRun *run)
{
	if (run->mode != QML_CLAIM_DIRECT)
		return;
	qml_direct_close(&run->d);
	qml_history_flush();
}

/* one job named: its id, and its place in the caller's arrays */
typedef struct HeldJob
{
	int64		id;
	int			pos;
} HeldJob;

static inline int
held_job_cmp(const HeldJob *x, const HeldJob *y)
{
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->pos - y->pos;
}

/* a caller's array may hold millions of ids: the sort can be cancelled */
#define ST_SORT sort_held_jobs
#define ST_ELEMENT_TYPE HeldJob
#define ST_COMPARE(a, b) held_job_cmp(a, b)
#define ST_CHECK_FOR_INTERRUPTS
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

/*
 * Whether the row is a job `worker` is processing, and the session may act
 * on its lease (lease_role.c; *admin caches the admin check).
 */
static bool
held_by(TupleTableSlot *slot, const text *worker, int *admin)
{
	const QmlCatalog *cat = qml_catalog();
	bool		isnull;
	Datum		holder;
	Datum		role;
	text	   *h;

	if (state_in(slot) != JS_PROCESSING)
		return false;
	holder = slot_getattr(slot, cat->job_att[JC_LOCKED_BY], &isnull);
	if (isnull)
		return false;
	h = DatumGetTextPP(holder);
	if (VARSIZE_ANY_EXHDR(h) != VARSIZE_ANY_EXHDR(worker) ||
		memcmp(VARDATA_ANY(h), VARDATA_ANY(worker), VARSIZE_ANY_EXHDR(h)) != 0)
		return false;
	/* version 1.0's table records no role: the worker name holds the lease */
	if (cat->schema_1_0)
		return true;
	role = slot_getattr(slot, cat->job_att[JC_LOCKED_ROLE], &isnull);
	return qml_may_act(isnull ? InvalidOid : DatumGetObjectId(role), admin);
}

/*
 * The primary key, read forward for the jobs of one write in id order.
 * Each descent from the root reads a run of the jobs: ids no more than
 * PKEY_RUN_GAP apart, as those of a worker's batch are (claimed together,
 * finished together), are read along the leaf pages from one to the next,
 * each entry's id taken from the index before any heap access. A descent
 * for every job (an equality scan each) was a fifth of a completion's
 * instructions at 750 jobs a statement; reading the runs saves 12% of
 * them (bench/runtime_cost.sh). Ids further apart start a new run, so a
 * batch spread over a large table descends for each job, as before, and
 * reads no entry outside its runs.
 *
 * An entry whose heap versions are all dead is not marked dead in the
 * index (kill_prior_tuple) by this walk. The marks are made when the scan
 * leaves a leaf page, and by then the write has inserted the new versions'
 * entries into that same page, shifting the others: finding each marked
 * entry again cost as much as the descents saved. The dead entries are
 * the older versions of the jobs written, which btree's bottom-up
 * deletion removes when the page fills (the new entries are inserted as
 * unchanged keys, qml_direct_update), and VACUUM otherwise.
 */
#define PKEY_RUN_GAP 16
#define PKEY_VERSIONS 8

typedef struct PkeyWalk
{
	IndexScanDesc scan;
	int64		run_end;		/* the last id the current descent reads */
	bool		started;		/* a descent was made on this scan */
	bool		at_entry;		/* the scan is at an entry, of id `at` */
	int64		at;
} PkeyWalk;

static void
walk_begin(PkeyWalk *w, Relation rel, Relation pkey, Snapshot snapshot)
{
	/* one version visible at most: fetch_version needs no second call */
	Assert(IsMVCCSnapshot(snapshot));
	w->scan = index_beginscan(rel, pkey, snapshot, 2, 0);
	w->scan->xs_want_itup = true;
	w->started = false;
	w->at_entry = false;
}

/* moves to the next entry of the run; false past its end */
static bool
walk_next(PkeyWalk *w)
{
	bool		isnull;

	if (index_getnext_tid(w->scan, ForwardScanDirection) == NULL)
		return false;
	w->at = DatumGetInt64(index_getattr(w->scan->xs_itup, 1, w->scan->xs_itupdesc,
										&isnull));
	return true;
}

/* the version at `tid` or its HOT chain the walk's snapshot sees, into `slot` */
static bool
fetch_version(PkeyWalk *w, ItemPointer tid, TupleTableSlot *slot)
{
	bool		call_again = false;

	if (!table_index_fetch_tuple(w->scan->xs_heapfetch, tid, w->scan->xs_snapshot,
								 slot, &call_again, NULL))
		return false;
	pgstat_count_heap_fetch(w->scan->indexRelation);
	return true;
}

/*
 * Finds the version of jobs[i] the walk's snapshot sees, into `slot`;
 * jobs[] are sorted by id, and asked for in that order.
 */
static bool
find_job(PkeyWalk *w, const HeldJob *jobs, int njobs, int i, TupleTableSlot *slot)
{
	int64		id = jobs[i].id;
	ItemPointerData tids[PKEY_VERSIONS];
	int			n = 0;

	if (!w->started || id > w->run_end)
	{
		ScanKeyData keys[2];
		int			k = i;

		/* unsigned: any two int64 ids, sorted, differ by no more than that */
		while (k + 1 < njobs &&
			   (uint64) jobs[k + 1].id - (uint64) jobs[k].id <= PKEY_RUN_GAP)
			k++;
		w->run_end = jobs[k].id;
		ScanKeyInit(&keys[0], 1, BTGreaterEqualStrategyNumber, F_INT8GE,
					Int64GetDatum(id));
		ScanKeyInit(&keys[1], 1, BTLessEqualStrategyNumber, F_INT8LE,
					Int64GetDatum(w->run_end));
		index_rescan(w->scan, keys, 2, NULL, 0);
		w->started = true;
		w->at_entry = walk_next(w);
	}
	while (w->at_entry && w->at < id)
		w->at_entry = walk_next(w);

	/*
	 * The job's entries, one per version, dead ones too, in the order of
	 * their heap TIDs: the version the snapshot sees is most often the
	 * newest, written last, so they are tried from the last one back, and
	 * the dead ones before it are not visited (each a page's visibility
	 * check). Past PKEY_VERSIONS entries, the oldest are tried as they come.
	 */
	while (w->at_entry && w->at == id)
	{
		if (n == PKEY_VERSIONS)
		{
			if (fetch_version(w, &tids[0], slot))
				return true;
			memmove(tids, tids + 1, (PKEY_VERSIONS - 1) * sizeof(ItemPointerData));
			n--;
		}
		tids[n++] = w->scan->xs_heaptid;
		w->at_entry = walk_next(w);
	}
	while (n > 0)
		if (fetch_version(w, &tids[--n], slot))
			return true;
	return false;
}

/*
 * The jobs whose writes share `job_cxt` before it is emptied, and its
 * size: what a job's write allocates (the new row's values, the tuple
 * heap_update forms, the history's copy, the index entries) stayed until
 * the call ended, and a batch of 300,000 ids grew the backend by 72 MB,
 * 0.25 KB a job. Emptying the context after every job cost 0.3% of a
 * completion's instructions at 750 jobs a call (130 a job, under
 * callgrind: bench/runtime_cost.sh); after every 16, in a first block
 * that holds them (under 32 kB), about 25, and the memory stays the same
 * whatever the batch.
 */
#define JOBS_PER_RESET 16
#define JOB_CXT_SIZE (32 * 1024)

/*
 * Writes the held job in `oldslot`, for position `pos` of the caller's
 * arrays (qml_write_held): its new row made in `new` by w->build, stamped,
 * written, recorded and handed to w->written, all allocating in `job_cxt`,
 * which the caller empties. What lasts goes elsewhere: the result rows to
 * the caller's tuplestore, the changes recorded to the transaction's
 * lists, the slots and the primary key's walk (made on first use, then
 * kept) to the call's context.
 */
static TM_Result
write_one(const QmlHeldWrite *w, QmlDirectInsert *d, TupleTableSlot *oldslot,
		  QmlJobRow *new, int pos, Snapshot snapshot, MemoryContext job_cxt)
{
	MemoryContext call_cxt = MemoryContextSwitchTo(job_cxt);
	QmlJobRow	old = old_and_new(oldslot, new);
	JobState	to = w->build(&old, new, pos, w->arg);
	TM_FailureData tmfd;
	TM_Result	r;

	/* a heartbeat stays in processing: the trigger stamps nothing then */
	qml_job_stamp_update(&old, JS_PROCESSING, new, to);
	r = qml_direct_update(d, oldslot, new->values, new->nulls, snapshot, &tmfd);
	if (r == TM_Ok)
	{
		qml_job_record_update(&old, JS_PROCESSING, new, to);
		w->written(new, to, pos, w->arg);
	}
	MemoryContextSwitchTo(call_cxt);
	return r;
}

/*
 * Writes, for the SQL function w->caller, the jobs of `ids` (n of them;
 * NULLs are skipped) that `worker` holds for this session's role (or any,
 * for an admin): each job's new row is a copy of its row that w->build
 * changes as the function's UPDATE statement's SET list would, for the
 * id at position `pos` of the caller's arrays, and says the state it goes
 * to; it is then stamped and recorded as the row trigger would have done
 * (job_trigger.c), and handed to w->written. A job named twice is written
 * once, for its first place. Jobs are written in id order, the order an
 * UPDATE through the primary key would lock them in. Returns how many
 * were written, or -1 (nothing done) when the UPDATE statement must run
 * instead (direct_gate.c).
 *
 * Complete, fail, heartbeat and release all write here: they differ only
 * in the row they make and what they return.
 */
int
qml_write_held(const QmlHeldWrite *w, const Datum *ids, const bool *id_nulls,
			   int n, const text *worker)
{
	QmlDirectInsert d;
	HeldJob    *jobs;
	TupleTableSlot *oldslot;
	Relation	pkey;
	PkeyWalk	walk;
	QmlJobRow	new;
	Snapshot	snapshot;
	MemoryContext job_cxt;
	int			since_reset = 0;
	int			njobs = 0;
	int			ndone = 0;
	int			admin = -1;
	int			i;

	/* as the UPDATE's executor would; nothing else stops a heap write */
	PreventCommandIfReadOnly(w->caller);
	/* see what this transaction did before, as the statement would */
	CommandCounterIncrement();
	if (!qml_direct_open_for_update(&d))
		return -1;
	jobs = palloc(Max(n, 1) * sizeof(HeldJob));
	for (i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (!id_nulls[i])
		{
			jobs[njobs].id = DatumGetInt64(ids[i]);
			jobs[njobs++].pos = i;
		}
	}
	sort_held_jobs(jobs, njobs);

	row_alloc(&new, RelationGetDescr(d.rel));
	pkey = index_open(RelationGetPrimaryKeyIndex(d.rel), AccessShareLock);
	oldslot = table_slot_create(d.rel, NULL);
	/* a new snapshot in read committed, as the statement would have taken */
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	walk_begin(&walk, d.rel, pkey, snapshot);
	job_cxt = AllocSetContextCreate(CurrentMemoryContext, "qml held jobs",
									JOB_CXT_SIZE, JOB_CXT_SIZE, ALLOCSET_DEFAULT_MAXSIZE);
	for (i = 0; i < njobs; i++)
	{
		HeldJob    *job = &jobs[i];
		TM_Result	r;

		CHECK_FOR_INTERRUPTS();
		if ((i > 0 && job->id == jobs[i - 1].id) ||
			!find_job(&walk, jobs, njobs, i, oldslot) || !held_by(oldslot, worker, &admin))
			continue;
		r = write_one(w, &d, oldslot, &new, job->pos, snapshot, job_cxt);
		if (++since_reset == JOBS_PER_RESET)
		{
			MemoryContextReset(job_cxt);
			since_reset = 0;
		}
		if (r == TM_Ok)
			ndone++;
		else if (r == TM_Updated || r == TM_Deleted)
		{
			if (IsolationUsesXactSnapshot())
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent %s",
								r == TM_Updated ? "update" : "delete")));
			/* read committed: look at the job again as it is now */
			index_endscan(walk.scan);
			UnregisterSnapshot(snapshot);
			snapshot = RegisterSnapshot(GetLatestSnapshot());
			walk_begin(&walk, d.rel, pkey, snapshot);
			if (r == TM_Updated)
				i--;
		}
		else if (r != TM_SelfModified)
			elog(ERROR, "unexpected result %d updating job " INT64_FORMAT, (int) r, job->id);
	}
	MemoryContextDelete(job_cxt);
	index_endscan(walk.scan);
	UnregisterSnapshot(snapshot);
	ExecDropSingleTupleTableSlot(oldslot);
	index_close(pkey, NoLock);
	qml_direct_close(&d);
	/* what the statement trigger jobs_flush does at the UPDATE's end */
	qml_history_flush();
	pfree(jobs);
	return ndone;
}
