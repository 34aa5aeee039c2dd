/*-------------------------------------------------------------------------
 *
 * claim_lock.c
 *	  Taking the rows a claim chose, as SKIP LOCKED does, but only in the
 *	  version the claim's snapshot saw.
 *
 * SELECT ... FOR UPDATE SKIP LOCKED, in read committed, follows a row that
 * a transaction committed an update of after the statement's snapshot:
 * it locks the newest version and only then checks it against the WHERE
 * clause. A job another worker had just claimed is locked that way and
 * rejected, and the lock stays until the transaction ends: a fetch that
 * then waits for work (wakeup.c) slept with that lock and a transaction
 * id, and the claiming worker's completion waited for the whole sleep
 * (issue 19). Here each row the claim's query returns is taken in the
 * version the query saw, or skipped: a row being changed by another
 * transaction is skipped as SKIP LOCKED skips it, and one changed since
 * the snapshot is skipped too, without a lock, for the next claim (which
 * sees it as it is now). A claim that takes nothing takes no transaction
 * id.
 *
 * "Taking" is the caller's: a claim of jobs updates each row at once
 * (worker_write.c: one WAL record per job, not a lock and then an update),
 * and anything that runs an UPDATE statement afterwards locks them here
 * (qml_lock_claimable).
 *
 * The query runs as a cursor and its rows are taken as they come, so
 * rows another worker holds cost a few more rows of the scan, not a
 * shorter claim, as with LIMIT ... SKIP LOCKED. A claim is also told what
 * its walk met (QmlWalk): how many rows the query returned, and the first
 * it did not take and may not pass (claim_holders.c), which the queue's
 * head must not pass (queue_head.c).
 *
 * A claim of enqueued jobs reads jobs_fetch_idx itself (qml_take_enqueued)
 * while qml.jobs is as created, rather than through the executor: its
 * cursor's start (plan check, executor start, the paused queue's
 * subquery) and the executor's work per row were a tenth of the server's
 * CPU at 16 workers fetching 10 jobs each. It scans exactly what
 * worker_api.c's statements would, in their order, with the snapshot a
 * cursor would take.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "parser/parse_relation.h"
#include "storage/itemptr.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "qml.h"

/*
 * Notes in `walk` a row the claim's walk met, version `tid` with head key
 * `key`, and whether it was taken. One not taken stops the head there,
 * unless the transaction holding it will move the head back itself
 * (claim_holders.c).
 */
static void
note_walked(QmlWalk *walk, Relation rel, ItemPointer tid, const QmlHeadKey *key,
			bool taken)
{
	walk->rows++;
	if (taken || walk->skipped)
		return;
	if (tid != NULL && walk->queue != NULL &&
		qml_holder_may_pass(rel, tid, walk->queue, key))
		return;
	walk->skipped = true;
	walk->first_skipped = *key;
}

/* note_walked for a row the query returned (qml_take_claimable) */
static void
note_row(QmlWalk *walk, Relation rel, ItemPointer tid, HeapTuple row,
		 TupleDesc desc, bool taken)
{
	QmlHeadKey	key = {0};
	bool		isnull;

	if (!taken && !walk->skipped)
	{
		key.priority = DatumGetInt32(SPI_getbinval(row, desc, 2, &isnull));
		key.run_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 3, &isnull));
		if (isnull)
			key.run_at = DT_NOEND;
		key.id = DatumGetInt64(SPI_getbinval(row, desc, 4, &isnull));
	}
	note_walked(walk, rel, tid, &key, taken);
}

/* note_walked for a row the direct scan met (qml_take_enqueued) */
static void
note_key(QmlWalk *walk, Relation rel, TupleTableSlot *slot, bool taken)
{
	const AttrNumber *att = qml_catalog()->job_att;
	QmlHeadKey	key = {0};
	bool		isnull;

	if (!taken && !walk->skipped)
	{
		key.priority = DatumGetInt32(slot_getattr(slot, att[JC_PRIORITY], &isnull));
		key.run_at = DatumGetTimestampTz(slot_getattr(slot, att[JC_RUN_AT], &isnull));
		if (isnull)
			key.run_at = DT_NOEND;
		key.id = DatumGetInt64(slot_getattr(slot, att[JC_ID], &isnull));
	}
	note_walked(walk, rel, &slot->tts_tid, &key, taken);
}

/*
 * Whether queue `queue` is paused, as NOT_PAUSED (worker_api.c) reads
 * qml.queues: by its primary key, with `snapshot`.
 */
static bool
queue_paused(Datum queue, Snapshot snapshot)
{
	Relation	rel = table_open(qml_catalog()->queues, AccessShareLock);
	Relation	pkey = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	IndexScanDesc scan = index_beginscan(rel, pkey, snapshot, 1, 0);
	AttrNumber	paused = attnameAttNum(rel, "paused", false);
	ScanKeyData key;
	bool		result = false;

	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   pkey->rd_indcollation[0], F_TEXTEQ, queue);
	index_rescan(scan, &key, 1, NULL, 0);
	while (!result && index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, paused, &isnull);

		result = !isnull && DatumGetBool(d);
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(pkey, NoLock);
	table_close(rel, NoLock);
	return result;
}

/*
 * jobs_fetch_idx, when qml.jobs (`rel`, locked) is as created and the
 * index therefore the one worker_api.c's claim statements are planned
 * for; else InvalidOid.
 */
static Oid
fetch_index(Relation rel)
{
	if (qml_catalog()->schema_1_0 || !qml_jobs_writes_are_ours(rel))
		return InvalidOid;
	return get_relname_relid("jobs_fetch_idx", RelationGetNamespace(rel));
}

/*
 * The claim's walk of queue `queue`'s enqueued jobs without the executor:
 * what worker_api.c's CLAIM_SELECT (from == NULL), CLAIM_HEAD_SELECT
 * (from, !lower) or CLAIM_LOWER_SELECT (from, lower) return, in their
 * order, each handed to take() as qml_take_claimable() does, and noted in
 * `walk`. Returns how many it took, or -1, having read nothing, when
 * qml.jobs is not as created: run the statement then.
 *
 * Like a cursor that may write, it sees what this transaction did before
 * (CommandCounterIncrement) with a new snapshot in read committed. The
 * index is partial (state = 'enqueued'), and a change of state is never a
 * HOT update: every row the scan returns was enqueued in the version it
 * returns, as the statements' plans assume too.
 */
int
qml_take_enqueued(Datum queue, const QmlHeadKey *from, bool lower, int wanted,
				  QmlTakeRow take, void *arg, QmlWalk *walk)
{
	Relation	rel = table_open(qml_jobs_lock(RowShareLock), NoLock);
	Oid			indexid = fetch_index(rel);
	Relation	index;
	TupleTableSlot *slot;
	IndexScanDesc scan;
	Snapshot	snapshot;
	ScanKeyData keys[3];
	ScanKeyData row[2];
	int			nkeys = 0;
	int			n = 0;

	if (!OidIsValid(indexid))
	{
		table_close(rel, NoLock);
		return -1;
	}
	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	if (queue_paused(queue, snapshot))
	{
		UnregisterSnapshot(snapshot);
		table_close(rel, NoLock);
		return 0;
	}
	index = index_open(indexid, AccessShareLock);
	/* (queue, priority DESC, run_at, id) */
	ScanKeyEntryInitialize(&keys[nkeys++], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   index->rd_indcollation[0], F_TEXTEQ, queue);
	if (from != NULL && lower)
		ScanKeyEntryInitialize(&keys[nkeys++], 0, 2, BTLessStrategyNumber, InvalidOid,
							   InvalidOid, F_INT4LT, Int32GetDatum(from->priority));
	else if (from != NULL)
	{
		ScanKeyEntryInitialize(&keys[nkeys++], 0, 2, BTEqualStrategyNumber, InvalidOid,
							   InvalidOid, F_INT4EQ, Int32GetDatum(from->priority));
		/* (run_at, id) >= (from->run_at, from->id), as the executor builds it */
		ScanKeyEntryInitialize(&row[0], SK_ROW_MEMBER, 3, BTGreaterEqualStrategyNumber,
							   TIMESTAMPTZOID, InvalidOid, F_TIMESTAMPTZ_CMP,
							   TimestampTzGetDatum(from->run_at));
		ScanKeyEntryInitialize(&row[1], SK_ROW_MEMBER | SK_ROW_END, 4,
							   BTGreaterEqualStrategyNumber, INT8OID, InvalidOid,
							   F_BTINT8CMP, Int64GetDatum(from->id));
		ScanKeyEntryInitialize(&keys[nkeys++], SK_ROW_HEADER, 3,
							   BTGreaterEqualStrategyNumber, InvalidOid, InvalidOid,
							   InvalidOid, PointerGetDatum(row));
	}
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, index, snapshot, nkeys, 0);
	index_rescan(scan, keys, nkeys, NULL, 0);

	/*
	 * The version the scan read is the one take() wants (the one at its
	 * tid, in its buffer): handed over as it is, not read again.
	 */
	while (n < wanted && index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		ItemPointerData tid = slot->tts_tid;
		bool		taken;

		CHECK_FOR_INTERRUPTS();
		taken = take(rel, &tid, slot, arg);
		if (taken)
			n++;
		if (walk != NULL)
			note_key(walk, rel, slot, taken);
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, NoLock);
	UnregisterSnapshot(snapshot);
	table_close(rel, NoLock);
	return n;
}

/*
 * Runs `plan`, a query whose first column is the ctid of a row of
 * qml.jobs, in the order the rows should be taken in, and hands each row
 * to take() until it has taken `wanted`. Returns how many it took. With
 * `walk`, the query's columns 2-4 are the row's key (QmlWalk), and what
 * the walk met is added to *walk. Call inside SPI_connect().
 */
int
qml_take_claimable(SPIPlanPtr plan, Datum *values, const char *nulls,
				   int wanted, QmlTakeRow take, void *arg, QmlWalk *walk)
{
	Relation	rel = table_open(qml_jobs_lock(RowShareLock), NoLock);
	TupleTableSlot *slot;
	Portal		portal;
	int			n = 0;

	/* a ctid names no partition: version 1.4 claims by statement (worker_api.c) */
	if (rel->rd_rel->relkind != RELKIND_RELATION)
		elog(ERROR, "qml.jobs is not a plain table: rows cannot be taken by ctid");
	slot = table_slot_create(rel, NULL);
	portal = SPI_cursor_open(NULL, plan, values, nulls, false);
	while (n < wanted)
	{
		uint64		i;

		SPI_cursor_fetch(portal, true, wanted - n);
		if (SPI_processed == 0)
			break;
		for (i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[i],
										  SPI_tuptable->tupdesc, 1, &isnull);
			ItemPointer tid = isnull ? NULL : (ItemPointer) DatumGetPointer(d);
			bool		taken;

			CHECK_FOR_INTERRUPTS();
			taken = tid != NULL && take(rel, tid, slot, arg);
			if (taken)
				n++;
			if (walk != NULL)
				note_row(walk, rel, tid, SPI_tuptable->vals[i],
						 SPI_tuptable->tupdesc, taken);
			ExecClearTuple(slot);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, NoLock);
	return n;
}

/*
 * Locks the row version at `tid` FOR UPDATE into `slot`, or nothing when
 * another transaction holds it or it changed since it was read.
 */
bool
qml_lock_version(Relation rel, ItemPointer tid, TupleTableSlot *slot)
{
	TM_FailureData tmfd;

	/* no TUPLE_LOCK_FLAG_FIND_LAST_VERSION: this version or none */
	return table_tuple_lock(rel, tid, GetActiveSnapshot(), slot,
							GetCurrentCommandId(true), LockTupleExclusive,
							LockWaitSkip, 0, &tmfd) == TM_Ok;
}

/* where qml_lock_claimable() puts the locked rows' ctids */
typedef struct Locked
{
	ItemPointerData *tids;
	int			n;
} Locked;

static bool
lock_row(Relation rel, ItemPointer tid, TupleTableSlot *slot, void *arg)
{
	Locked	   *locked = (Locked *) arg;

	if (!qml_lock_version(rel, tid, slot))
		return false;
	locked->tids[locked->n++] = *tid;
	return true;
}

/*
 * Runs `plan` as qml_take_claimable() does and locks its rows FOR UPDATE
 * until `wanted` are locked; their ctids go to tids[]. Returns how many.
 */
int
qml_lock_claimable(SPIPlanPtr plan, Datum *values, const char *nulls,
				   int wanted, ItemPointerData *tids)
{
	Locked		locked = {tids, 0};

	return qml_take_claimable(plan, values, nulls, wanted, lock_row, &locked, NULL);
}
