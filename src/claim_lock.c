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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/itemptr.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "qml.h"

/*
 * Notes in `walk` a row the query returned, version `tid`, and whether it
 * was taken. One not taken stops the head there, unless the transaction
 * holding it will move the head back itself (claim_holders.c).
 */
static void
note_row(QmlWalk *walk, Relation rel, ItemPointer tid, HeapTuple row,
		 TupleDesc desc, bool taken)
{
	QmlHeadKey	key;
	bool		isnull;

	walk->rows++;
	if (taken || walk->skipped)
		return;
	key.priority = DatumGetInt32(SPI_getbinval(row, desc, 2, &isnull));
	key.run_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 3, &isnull));
	if (isnull)
		key.run_at = DT_NOEND;
	key.id = DatumGetInt64(SPI_getbinval(row, desc, 4, &isnull));
	if (tid != NULL && walk->queue != NULL &&
		qml_holder_may_pass(rel, tid, walk->queue, &key))
		return;
	walk->skipped = true;
	walk->first_skipped = key;
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
	Relation	rel = table_open(qml_catalog()->jobs, RowShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	Portal		portal = SPI_cursor_open(NULL, plan, values, nulls, false);
	int			n = 0;

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
