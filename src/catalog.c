/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Where qml's own tables live: their OIDs, identity sequences, column
 *	  numbers and the OIDs of the job_state labels, looked up once per
 *	  session; and qml's helper functions, found by name.
 *
 * The hot paths write qml.jobs and qml.job_events without an executor
 * (direct_insert.c), so they need these on every call; looking them up
 * each time (a pg_depend scan for each identity sequence, a syscache probe
 * per label) cost a few percent of an enqueue. A relcache invalidation of
 * any of the tables, as DROP EXTENSION or ALTER TABLE sends, forgets it
 * all, so a re-created extension is looked up afresh.
 *
 * qml_jobs_lock() locks qml.jobs by the oid cached here and looks it up
 * again once the lock is granted: an update that replaces the table (1.3
 * to 1.4 drops it) leaves the sessions that waited for it holding a lock
 * on a table that no longer exists.
 *
 * A database whose extension is still at version 1.0 (this library
 * installed, ALTER EXTENSION qml UPDATE not run yet) has no
 * qml.jobs.locked_role and none of 1.1's helper tables: schema_1_0 says so,
 * and the code that needs them serves it the way the 1.0 library did
 * (direct_gate.c, job_counts.c, job_trigger.c, producer_api.c,
 * worker_write.c), or refuses (qml_require_schema_1_1).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tupdesc.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "qml.h"

/* the columns of qml.jobs, in the order of enum JobColumn */
static const char *const job_column_names[JC_COUNT] = {
	"id", "queue", "method", "arguments", "priority", "state", "attempts",
	"max_attempts", "run_at", "created_at", "enqueued_at", "started_at",
	"finished_at", "locked_by", "locked_until", "last_error", "result",
	"unique_key", "backoff_base", "backoff_cap", "lease_pid", "lease_session",
	"locked_role", "history"
};

/* the columns of qml.job_events, in the order of enum EventColumn */
static const char *const event_column_names[EC_COUNT] = {
	"id", "job_id", "from_state", "to_state", "at", "worker", "error"
};

/* qml_catalog()'s answer, and whether it still holds (qml.h) */
QmlCatalog	qml_catalog_cache;
bool		qml_catalog_cached = false;

static bool callback_registered = false;

static void
catalog_invalidate(Datum arg, Oid relid)
{
	if (!qml_catalog_cached)
		return;
	if (relid == InvalidOid || relid == qml_catalog_cache.jobs ||
		relid == qml_catalog_cache.job_events ||
		relid == qml_catalog_cache.queues)
		qml_catalog_cached = false;
}

/*
 * Locks qml.jobs in `mode` and returns its oid, the table's after the lock.
 * Taking a lock accepts the invalidations of what committed while it
 * waited (catalog_invalidate): when the oid locked is no longer qml.jobs'
 * (ALTER EXTENSION qml UPDATE TO '1.4' put a new table in its place), the
 * lock is given back and the new table's taken, as RangeVarGetRelidExtended
 * does for a name. Every C path that locks qml.jobs by oid goes through
 * here, or it would open the dropped table ("could not open relation").
 */
Oid
qml_jobs_lock(LOCKMODE mode)
{
	for (;;)
	{
		Oid			relid = qml_catalog()->jobs;

		LockRelationOid(relid, mode);
		if (qml_catalog()->jobs == relid)
			return relid;
		UnlockRelationOid(relid, mode);
	}
}

/* a table of schema `nsp` (qml's) by name; 42P01 when it is missing */
Oid
qml_table_oid(Oid nsp, const char *name)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("qml.%s is missing", name),
				 errhint("Re-create the extension: DROP EXTENSION qml; CREATE EXTENSION qml.")));
	return relid;
}

/*
 * Column numbers of qml.jobs. Every column this library knows must be
 * there, but for locked_role, which version 1.0's table lacks; whether the
 * table has more is the gate's (direct_gate.c).
 */
static void
look_up_job_columns(QmlCatalog *c)
{
	Relation	rel = RelationIdGetRelation(c->jobs);
	int			i;

	if (!RelationIsValid(rel))
		elog(ERROR, "could not open qml.jobs");
	c->jobs_natts = RelationGetDescr(rel)->natts;
	c->jobs_partitioned = rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE;
	RelationClose(rel);

	for (i = 0; i < JC_COUNT; i++)
	{
		c->job_att[i] = get_attnum(c->jobs, job_column_names[i]);
		if (i == JC_LOCKED_ROLE)
			c->schema_1_0 = c->job_att[i] == InvalidAttrNumber;
		else if (i == JC_HISTORY)
			c->inline_history = c->job_att[i] != InvalidAttrNumber;
		else if (c->job_att[i] == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("qml.jobs has no column \"%s\"", job_column_names[i]),
					 errhint("Run ALTER EXTENSION qml UPDATE, or install the library that matches the extension.")));
	}
}

/* column numbers of qml.job_events, which only the history flush writes */
static void
look_up_event_columns(QmlCatalog *c)
{
	int			i;

	for (i = 0; i < EC_COUNT; i++)
	{
		c->event_att[i] = get_attnum(c->job_events, event_column_names[i]);
		if (c->event_att[i] == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("qml.job_events has no column \"%s\"", event_column_names[i]),
					 errhint("Run ALTER EXTENSION qml UPDATE, or install the library that matches the extension.")));
	}
}

/* qml_catalog() when its answer is not cached: looks it all up */
const QmlCatalog *
qml_catalog_load(void)
{
	QmlCatalog *c = &qml_catalog_cache;
	Oid			nsp;
	Oid			old_events;
	Oid			own[3];
	int			i;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(catalog_invalidate, (Datum) 0);
		callback_registered = true;
	}

	nsp = get_namespace_oid("qml", false);
	c->jobs = qml_table_oid(nsp, "jobs");
	c->job_events = qml_table_oid(nsp, "job_events");
	c->queues = qml_table_oid(nsp, "queues");
	own[0] = c->jobs;
	own[1] = c->job_events;
	own[2] = c->queues;
	qml_refuse_distributed(own, lengthof(own));
	look_up_job_columns(c);
	c->jobs_seq = getIdentitySequence(c->jobs, c->job_att[JC_ID], false);
	/*
	 * From version 1.2 on, qml.job_events is a view of qml.jobs.history,
	 * whose changes take their ids from the identity of the table that holds
	 * what 1.1 recorded.
	 */
	old_events = get_relname_relid("job_events_1_1", nsp);
	if (OidIsValid(old_events) && !c->inline_history)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("qml.jobs has no column \"history\""),
				 errhint("Re-create the extension: DROP EXTENSION qml; CREATE EXTENSION qml.")));
	if (c->inline_history)
	{
		old_events = qml_table_oid(nsp, "job_events_1_1");

		c->job_events_seq = getIdentitySequence(old_events,
												get_attnum(old_events, "id"), false);
	}
	else
	{
		look_up_event_columns(c);
		c->job_events_seq = getIdentitySequence(c->job_events,
												c->event_att[EC_ID], false);
	}

	c->job_state = get_atttype(c->jobs, c->job_att[JC_STATE]);
	for (i = 0; i < JS_COUNT; i++)
	{
		HeapTuple	tup = SearchSysCache2(ENUMTYPOIDNAME,
										  ObjectIdGetDatum(c->job_state),
										  CStringGetDatum(qml_state_labels[i]));

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "job state \"%s\" is missing from qml.job_state",
				 qml_state_labels[i]);
		c->state_oids[i] = ((Form_pg_enum) GETSTRUCT(tup))->oid;
		ReleaseSysCache(tup);
	}
	qml_catalog_cached = true;
	return c;
}

/* the state an enum label's OID stands for; JS_COUNT if none */
JobState
qml_state_of_oid(Oid label)
{
	const QmlCatalog *c = qml_catalog();
	int			i;

	for (i = 0; i < JS_COUNT; i++)
		if (c->state_oids[i] == label)
			return (JobState) i;
	return JS_COUNT;
}

/*
 * The OID of function qml.`name`(argtypes), or InvalidOid when it is
 * missing; found without a privilege check on schema qml (the callers'
 * callers need none). Not kept: only slow paths ask, and a kept OID would
 * outlive a dropped function.
 */
Oid
qml_function_oid(const char *name, int nargs, const Oid *argtypes)
{
	HeapTuple	tup = SearchSysCache3(PROCNAMEARGSNSP,
									  CStringGetDatum(name),
									  PointerGetDatum(buildoidvector(argtypes, nargs)),
									  ObjectIdGetDatum(get_namespace_oid("qml", false)));
	Oid			oid = InvalidOid;

	if (HeapTupleIsValid(tup))
	{
		oid = ((Form_pg_proc) GETSTRUCT(tup))->oid;
		ReleaseSysCache(tup);
	}
	return oid;
}

/* qml.enqueue_as_owner, for enqueue's statement path */
Oid
qml_enqueue_as_owner_oid(void)
{
	Oid			argtypes[] = {TEXTOID, JSONBOID, TEXTOID, INT4OID, TIMESTAMPTZOID,
	INT4OID, TEXTOID, INTERVALOID, INTERVALOID};

	return qml_function_oid("enqueue_as_owner", lengthof(argtypes), argtypes);
}

/*
 * The row triggers of qml.jobs read a row by qml.jobs' column numbers
 * (job_att). On version 1.4 they fire on its partitions (clones of the
 * parent's triggers), whose numbers are the parent's as the script made
 * them; a table attached later with its columns in another order, or a
 * partition made after a column of the parent was dropped, numbers them
 * otherwise, and is refused (0A000) rather than read wrong. Free for
 * qml.jobs itself.
 */
void
qml_check_jobs_layout(Relation rel)
{
	Relation	jobs;
	TupleDesc	a;
	TupleDesc	b;
	bool		same;
	int			i;

	if (RelationGetRelid(rel) == qml_catalog()->jobs)
		return;
	jobs = RelationIdGetRelation(qml_catalog()->jobs);
	if (!RelationIsValid(jobs))
		elog(ERROR, "could not open qml.jobs");
	a = RelationGetDescr(rel);
	b = RelationGetDescr(jobs);
	same = a->natts == b->natts;
	for (i = 0; same && i < a->natts; i++)
	{
		Form_pg_attribute x = TupleDescAttr(a, i);
		Form_pg_attribute y = TupleDescAttr(b, i);

		same = x->attisdropped == y->attisdropped &&
			(x->attisdropped || (x->atttypid == y->atttypid &&
								 namestrcmp(&x->attname, NameStr(y->attname)) == 0));
	}
	RelationClose(jobs);
	if (!same)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("partition \"%s\" of qml.jobs does not have the columns of qml.jobs in their places",
						RelationGetRelationName(rel)),
				 errdetail("qml's triggers read a job's columns by qml.jobs' column numbers."),
				 errhint("Detach it, and attach a table made with CREATE TABLE ... PARTITION OF qml.jobs.")));
}

/*
 * 55000 in a database whose extension is still at version 1.0, for the
 * paths of this library that need 1.1's SQL.
 */
void
qml_require_schema_1_1(void)
{
	if (qml_catalog()->schema_1_0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the qml extension in this database is at version 1.0"),
				 errdetail("The installed library needs version 1.1 of its SQL for this."),
				 errhint("Run ALTER EXTENSION qml UPDATE, or qml migrate.")));
}
