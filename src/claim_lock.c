/*-------------------------------------------------------------------------
 *
 * claim_lock.c
 *	  Locking the rows a claim chose, as SKIP LOCKED does, but only in the
 *	  version the claim's snapshot saw.
 *
 * SELECT ... FOR UPDATE SKIP LOCKED, in read committed, follows a row that
 * a transaction committed an update of after the statement's snapshot:
 * it locks the newest version and only then checks it against the WHERE
 * clause. A job another worker had just claimed is locked that way and
 * rejected, and the lock stays until the transaction ends: a fetch that
 * then waits for work (wakeup.c) slept with that lock and a transaction
 * id, and the claiming worker's completion waited for the whole sleep
 * (issue 19). Here each row the claim's query returns is locked in the
 * version the query saw, or skipped: a row being changed by another
 * transaction is skipped as SKIP LOCKED skips it, and one changed since
 * the snapshot is skipped too, without a lock, for the next claim (which
 * sees it as it is now). A claim that locks nothing takes no transaction
 * id.
 *
 * The query runs as a cursor and its rows are locked as they come, so
 * rows another worker holds cost a few more rows of the scan, not a
 * shorter claim, as with LIMIT ... SKIP LOCKED.
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

#include "qml.h"

/*
 * Runs `plan`, a query whose first column is the ctid of a row of
 * qml.jobs, in the order the rows should be claimed in, and locks its rows
 * FOR UPDATE until `wanted` are locked; their ctids go to tids[]. Returns
 * how many. Call inside SPI_connect().
 */
int
qml_lock_claimable(SPIPlanPtr plan, Datum *values, const char *nulls,
				   int wanted, ItemPointerData *tids)
{
	Relation	rel = table_open(qml_catalog()->jobs, RowShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	Portal		portal = SPI_cursor_open(NULL, plan, values, nulls, false);
	CommandId	cid = GetCurrentCommandId(true);
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
			ItemPointerData tid;
			TM_FailureData tmfd;

			CHECK_FOR_INTERRUPTS();
			if (isnull)
				continue;
			tid = *(ItemPointer) DatumGetPointer(d);
			/* no TUPLE_LOCK_FLAG_FIND_LAST_VERSION: this version or none */
			if (table_tuple_lock(rel, &tid, GetActiveSnapshot(), slot, cid,
								 LockTupleExclusive, LockWaitSkip, 0,
								 &tmfd) == TM_Ok)
				tids[n++] = tid;
			ExecClearTuple(slot);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, NoLock);
	return n;
}
