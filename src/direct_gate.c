/*-------------------------------------------------------------------------
 *
 * direct_gate.c
 *	  Whether the API may write qml.jobs and qml.job_events without an
 *	  executor (direct_insert.c): only while both are exactly what CREATE
 *	  EXTENSION made. And the refusal of a qml.jobs another extension
 *	  distributes.
 *
 * The direct writes do by hand what an INSERT or UPDATE of the original
 * tables does: qml's own triggers (job_trigger.c, job_history.c), CHECK
 * and NOT NULL constraints (checks.c, producer_api.c) and indexes. Anything
 * an admin adds or changes they would skip, so the gate compares the
 * table's shape, its definition read from the catalog by qml.table_shape()
 * (qml--1.1.sql), with the shape the script recorded in qml.table_shapes
 * when it ran: not names, which an admin can reuse for other definitions,
 * and not a list compiled in here, so a column the script gains is part of
 * the expected shape as it is. A session compares once per table, and
 * again after a relcache invalidation of it, which every DDL that changes
 * the shape sends (and VACUUM, rarely enough).
 *
 * What PostgreSQL 15 does for an INSERT or UPDATE of a table (rewriteHandler.c;
 * nodeModifyTable.c ExecInsert, ExecUpdate and what they call in execMain.c,
 * execIndexing.c, execReplication.c, trigger.c), and what qml does about it:
 * - privileges (ExecCheckPermissions): none checked; EXECUTE on the API
 *   function is the gate, the functions that write run as the owner or
 *   write only what the caller's arguments say (qml--1.1.sql).
 * - CheckValidResultRel: the relkind (shape: 'r'); CheckCmdReplicaIdentity,
 *   an UPDATE of a table that publishes updates without a replica identity,
 *   or whose publications' row filters and column lists are not covered by
 *   it: the direct update calls it itself (worker_write.c), as the
 *   executor does, because a publication is not part of a table's shape.
 * - the rewriter: defaults of omitted columns, identity and generated
 *   columns (ExecComputeStoredGenerated), rules, row security policies and
 *   their WITH CHECK options (ExecWithCheckOptions): shape (every column's
 *   default, generation and identity; every rule and its enabled state;
 *   relrowsecurity, relforcerowsecurity and every policy).
 * - the target list's coercion to each column's type and typmod, domain
 *   checks included: shape (type and typmod, collation).
 * - BEFORE and AFTER row and statement triggers, transition tables,
 *   constraint triggers (foreign keys of the table and those referencing
 *   it, deferred unique rechecks): shape (every trigger by definition, its
 *   enabled state and its function; every constraint either way).
 *   session_replication_role = replica keeps qml's triggers (enabled
 *   ORIGIN) from firing for replicated rows; the API's own writes are not
 *   those, and stamp and record as the API promises in any mode (the
 *   API's statements run as origin for it, qml_execute_plan in
 *   session_plan.c).
 * - ExecConstraints (NOT NULL, CHECK), ExecPartitionCheck and tuple
 *   routing (partitioned tables, partitions): shape (NOT NULL, every
 *   constraint by definition, relkind, relispartition, inheritance), and
 *   qml.jobs must be a plain table (relkind 'r'), whatever shape the
 *   script recorded: version 1.4's is partitioned (qml_jobs_writes_are_ours).
 * - an UPDATE of an inheritance parent also reaches its children's rows,
 *   which a claim's SELECT finds: shape (children and parents).
 * - ExecInsertIndexTuples: unique and exclusion checks, deferred
 *   uniqueness, partial predicates, expressions: shape (every index by
 *   definition); qml's own are plain btrees, which direct_insert.c fills
 *   as the executor would, ready-for-inserts and predicates honoured.
 * - ON CONFLICT (speculative insertion): only enqueue with a unique_key
 *   uses it, always through the statement.
 * - the table access method: shape (heap). Storage, TOAST, compression,
 *   fillfactor, WAL, unlogged tables and replica identity logging are the
 *   access method's, which the direct writes call as the executor does.
 * - no effect on a write, left out: statistics targets, attribute options,
 *   reloptions, comments, ownership and grants, publication membership
 *   (row filters and column lists act in logical decoding).
 * - a table another extension manages (Citus): refused, see below.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "qml.h"

typedef enum Shape
{
	SHAPE_UNKNOWN,
	SHAPE_ORIGINAL,
	SHAPE_CHANGED
} Shape;

/* qml.jobs and qml.job_events */
static Oid	shape_relids[2];
static Shape shapes[2];
static uint64 invalidations = 0;
static bool callback_registered = false;

static void
shapes_invalidate(Datum arg, Oid relid)
{
	int			i;

	for (i = 0; i < lengthof(shapes); i++)
		if (relid == InvalidOid || relid == shape_relids[i])
		{
			shapes[i] = SHAPE_UNKNOWN;
			invalidations++;
		}
}

/*
 * qml.table_is_original(rel), with the latest snapshot: the caller holds a
 * lock that any DDL on the table conflicts with, so what committed before
 * is seen, as the relcache sees it, even in a repeatable read transaction
 * that began before. False when the function is missing or says NULL.
 */
static bool
ask_catalog(Oid relid)
{
	Oid			argtypes[] = {REGCLASSOID};
	Oid			fn = qml_function_oid("table_is_original", 1, argtypes);
	FmgrInfo	flinfo;
	LOCAL_FCINFO(fcinfo, 1);
	Datum		result;

	if (!OidIsValid(fn))
		return false;
	fmgr_info(fn, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = ObjectIdGetDatum(relid);
	fcinfo->args[0].isnull = false;
	PushActiveSnapshot(GetLatestSnapshot());
	result = FunctionCallInvoke(fcinfo);
	PopActiveSnapshot();
	return !fcinfo->isnull && DatumGetBool(result);
}

/*
 * Whether `relid` (qml.jobs or qml.job_events, locked by the caller) is
 * exactly as CREATE EXTENSION made it.
 */
bool
qml_table_is_original(Oid relid)
{
	int			i = relid == qml_catalog()->jobs ? 0 : 1;

	/* version 1.0's SQL records no shapes; its library wrote directly */
	if (qml_catalog()->schema_1_0)
		return true;
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(shapes_invalidate, (Datum) 0);
		callback_registered = true;
	}
	if (shape_relids[i] != relid)
	{
		shape_relids[i] = relid;
		shapes[i] = SHAPE_UNKNOWN;
	}
	/* an invalidation while asking (locks bring them): ask again */
	while (shapes[i] == SHAPE_UNKNOWN)
	{
		uint64		seen = invalidations;
		bool		original = ask_catalog(relid);

		if (invalidations == seen)
			shapes[i] = original ? SHAPE_ORIGINAL : SHAPE_CHANGED;
	}
	return shapes[i] == SHAPE_ORIGINAL;
}

/*
 * True when an INSERT into or UPDATE of qml.jobs (`rel`, locked) would run
 * nothing but what the API's direct writes do themselves: the table is a
 * plain one as created, and its descriptor the one the catalog's column
 * numbers were read from. Version 1.4's partitioned qml.jobs is as
 * created, but the direct writes know one heap and its indexes, not
 * tuple routing to partitions: it takes the statements (docs/partitions.md,
 * "Schema 1.4").
 */
bool
qml_jobs_writes_are_ours(Relation rel)
{
	return rel->rd_rel->relkind == RELKIND_RELATION &&
		RelationGetDescr(rel)->natts == qml_catalog()->jobs_natts &&
		qml_table_is_original(RelationGetRelid(rel));
}

/*
 * Refuses qml's tables when Citus distributes them. create_distributed_table
 * leaves qml.jobs on every node as the local shell of its shards, which no
 * distributed query reads: a job written there directly, or by a statement
 * on a node where the shell is a plain table, is lost. Citus lists such a
 * table in its catalog pg_catalog.pg_dist_partition (column logicalrelid),
 * on the coordinator and, with metadata synced, on every worker, and sends
 * the table a relcache invalidation when it does (qml_catalog() looks
 * again then). qml has no distributed mode yet: every function that reads
 * the catalog here (enqueue, fetch, complete, the triggers, the scheduler)
 * refuses. The condition is exactly: a relation pg_dist_partition in
 * pg_catalog, with a column logicalrelid, and a row naming one of `relids`.
 */
void
qml_refuse_distributed(const Oid *relids, int n)
{
	Oid			dist = get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE);
	Relation	rel;
	AttrNumber	att;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			found = InvalidOid;

	if (!OidIsValid(dist))
		return;
	rel = table_open(dist, AccessShareLock);
	att = get_attnum(dist, "logicalrelid");
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (att != InvalidAttrNumber && !OidIsValid(found) &&
		   HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		bool		isnull;
		Oid			logical = DatumGetObjectId(heap_getattr(tuple, att,
															RelationGetDescr(rel),
															&isnull));
		int			i;

		for (i = 0; i < n && !isnull; i++)
			if (relids[i] == logical)
				found = logical;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (OidIsValid(found))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("qml.%s is a distributed table", get_rel_name(found)),
				 errdetail("qml writes its tables on the node it runs on; in a distributed table's local shell no distributed query would see those rows."),
				 errhint("Undistribute it on the coordinator with undistribute_table('qml.%s').",
						 get_rel_name(found))));
}
