/*-------------------------------------------------------------------------
 *
 * generations.c
 *	  The ring of version 1.4 (docs/partitions.md, "Schema 1.4"): the slot
 *	  of qml.jobs new jobs go into (qml.current_slot(), the column's
 *	  default), and the rotation that empties the next slot and opens the
 *	  next generation there (qml.rotate(), and each scheduler pass).
 *
 * The rotation itself is SQL (qml.rotate_slots in qml--1.4.sql), run in
 * the caller's transaction with the settings it depends on. It holds
 * qml.generations in EXCLUSIVE mode until it commits; qml.current_slot()
 * takes ROW SHARE on the table and gives it back at once, so an insert
 * that meets a rotation under way waits for it and then reads the
 * generation it opened, while a rotation never waits for the producers'
 * transactions.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "storage/lmgr.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_current_slot);
PG_FUNCTION_INFO_V1(qml_rotate);

static void no_generation(void) pg_attribute_noreturn();

/* 55000 for a qml.generations without a row: the ring has no current slot */
static void
no_generation(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("qml.generations has no generation"),
			 errhint("Re-create the extension: DROP EXTENSION qml; CREATE EXTENSION qml.")));
}

/*
 * qml.current_slot() returns smallint: the slot of the highest generation
 * in qml.generations, read after any rotation under way has committed,
 * with the latest snapshot (the statement's may predate that commit).
 */
Datum
qml_current_slot(PG_FUNCTION_ARGS)
{
	Oid			relid = qml_table_oid(get_namespace_oid("qml", false), "generations");
	AttrNumber	slot_att = get_attnum(relid, "slot");
	AttrNumber	gen_att = get_attnum(relid, "generation");
	Relation	rel;
	Snapshot	snapshot;
	TableScanDesc scan;
	HeapTuple	tuple;
	int64		best = -1;
	int16		slot = -1;

	/* waits for a rotation's EXCLUSIVE lock; not kept: see the header */
	LockRelationOid(relid, RowShareLock);
	rel = table_open(relid, NoLock);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snapshot, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		gen_null;
		bool		slot_null;
		Datum		gen = heap_getattr(tuple, gen_att, RelationGetDescr(rel), &gen_null);
		Datum		s = heap_getattr(tuple, slot_att, RelationGetDescr(rel), &slot_null);

		if (!gen_null && !slot_null && DatumGetInt64(gen) > best)
		{
			best = DatumGetInt64(gen);
			slot = DatumGetInt16(s);
		}
	}
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, NoLock);
	UnlockRelationOid(relid, RowShareLock);
	if (best < 0)
		no_generation();
	PG_RETURN_INT16(slot);
}

/*
 * Rotates the ring if the current generation has run its length (SPI
 * connected). Returns the current generation, and in *next_due when the
 * next rotation falls due.
 */
int64
qml_rotate_step(TimestampTz *next_due)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {FLOAT8OID, BOOLOID, FLOAT8OID};
	Datum		values[3];
	bool		isnull;
	int64		generation;
	TimestampTz opened;

	values[0] = Float8GetDatum((double) qml_retention_s);
	values[1] = BoolGetDatum(qml_prune_failed);
	values[2] = Float8GetDatum((double) qml_generation_length_s);
	qml_spi_run(&plan,
				"SELECT r.generation, r.opened_at FROM qml.rotate_slots($1, $2, $3) r",
				3, types, values);
	if (SPI_processed != 1)
		elog(ERROR, "qml.rotate_slots returned " UINT64_FORMAT " rows", SPI_processed);
	generation = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1, &isnull));
	/* rotate_slots' row of an empty qml.generations is all NULL */
	if (isnull)
		no_generation();
	opened = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 2, &isnull));
	*next_due = opened + (TimestampTz) qml_generation_length_s * USECS_PER_SEC;
	return generation;
}

/*
 * qml.rotate() returns bigint: one rotation by hand (admins), as a
 * scheduler pass runs it. 0A000 where qml.jobs is not partitioned (a
 * version before 1.4).
 */
Datum
qml_rotate(PG_FUNCTION_ARGS)
{
	TimestampTz next_due;
	int64		generation;

	if (!qml_catalog()->jobs_partitioned)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("qml.jobs is not partitioned"),
				 errdetail("Only version 1.4 of the extension keeps its jobs in rotating partitions.")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	generation = qml_rotate_step(&next_due);
	SPI_finish();
	PG_RETURN_INT64(generation);
}
