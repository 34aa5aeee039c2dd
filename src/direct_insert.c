/*-------------------------------------------------------------------------
 *
 * direct_insert.c
 *	  Rows into qml's own tables and their indexes without an executor.
 *
 * An INSERT statement starts an executor, reads the table's CHECK
 * constraints back from their stored form and queues trigger events; for
 * one job or one history row that cost more than writing the row (profiles
 * of enqueue and of the history flush). The callers here build complete,
 * already checked rows, so they write the heap and every index themselves,
 * the way COPY and logical replication do. Nothing else runs: no triggers,
 * rules, constraints or row security, so a caller must only use this on a
 * table where none of those would have had anything to do (producer_api.c
 * checks that before taking this path).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "utils/rel.h"

#include "qml.h"

/* opens the table (RowExclusiveLock) and its indexes for inserts */
void
qml_direct_open(QmlDirectInsert *d, Oid relid)
{
	d->rel = table_open(relid, RowExclusiveLock);
	d->estate = CreateExecutorState();
	d->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(d->rri, d->rel, 1, NULL, 0);
	ExecOpenIndices(d->rri, false);
	d->slot = table_slot_create(d->rel, NULL);
}

/*
 * Inserts one row: values and nulls hold every attribute of the table,
 * dropped ones included. A unique index that already has the key raises
 * unique_violation, as an INSERT would.
 */
void
qml_direct_insert(QmlDirectInsert *d, Datum *values, bool *nulls)
{
	TupleTableSlot *slot = d->slot;
	int			natts = RelationGetDescr(d->rel)->natts;

	ExecClearTuple(slot);
	memcpy(slot->tts_values, values, natts * sizeof(Datum));
	memcpy(slot->tts_isnull, nulls, natts * sizeof(bool));
	ExecStoreVirtualTuple(slot);
	table_tuple_insert(d->rel, slot, GetCurrentCommandId(true), 0, NULL);
	if (d->rri->ri_NumIndices > 0)
		ExecInsertIndexTuples(d->rri, slot, d->estate, false, false, NULL, NIL);
	ResetPerTupleExprContext(d->estate);
}

void
qml_direct_close(QmlDirectInsert *d)
{
	ExecDropSingleTupleTableSlot(d->slot);
	ExecCloseIndices(d->rri);
	FreeExecutorState(d->estate);
	table_close(d->rel, NoLock);
}
