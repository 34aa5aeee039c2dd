/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Where qml's own tables live: their OIDs, identity sequences, column
 *	  numbers, whether an admin added indexes and the OIDs of the job_state
 *	  labels, looked up once per session; and qml.enqueue_as_owner.
 *
 * The hot paths write qml.jobs and qml.job_events without an executor
 * (direct_insert.c), so they need these on every call; looking them up
 * each time (a pg_depend scan for each identity sequence, a syscache probe
 * per label) cost a few percent of an enqueue. A relcache invalidation of
 * any of the tables, as DROP EXTENSION or ALTER TABLE sends, forgets it
 * all, so a re-created extension is looked up afresh.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tupdesc.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
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
	"unique_key", "backoff_base", "backoff_cap", "lease_pid", "lease_session"
};

/* the columns of qml.job_events, in the order of enum EventColumn */
static const char *const event_column_names[EC_COUNT] = {
	"id", "job_id", "from_state", "to_state", "at", "worker", "error"
};

static QmlCatalog catalog;
static bool catalog_valid = false;
static bool callback_registered = false;

static void
catalog_invalidate(Datum arg, Oid relid)
{
	if (!catalog_valid)
		return;
	if (relid == InvalidOid || relid == catalog.jobs ||
		relid == catalog.job_events || relid == catalog.queues)
		catalog_valid = false;
}

static Oid
table_oid(Oid nsp, const char *name)
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
 * there; columns an admin added are noted, because a direct insert would
 * leave them NULL instead of giving them their defaults.
 */
static void
look_up_job_columns(QmlCatalog *c)
{
	Relation	rel = RelationIdGetRelation(c->jobs);
	TupleDesc	desc;
	int			live = 0;
	int			i;

	if (!RelationIsValid(rel))
		elog(ERROR, "could not open qml.jobs");
	desc = RelationGetDescr(rel);
	c->jobs_natts = desc->natts;
	for (i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped)
			live++;
	RelationClose(rel);

	for (i = 0; i < JC_COUNT; i++)
	{
		c->job_att[i] = get_attnum(c->jobs, job_column_names[i]);
		if (c->job_att[i] == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("qml.jobs has no column \"%s\"", job_column_names[i]),
					 errhint("Run ALTER EXTENSION qml UPDATE, or install the library that matches the extension.")));
	}
	c->jobs_extra_columns = live > JC_COUNT;
}

/* what CREATE EXTENSION puts on qml.jobs (qml--1.0.sql) */
static const char *const own_triggers[] = {
	"jobs_stamp_insert", "jobs_stamp_update", "jobs_record_insert", "jobs_flush",
	"jobs_count_delete", "jobs_count_truncate"
};
static const char *const own_checks[] = {
	"jobs_queue_check", "jobs_method_check", "jobs_max_attempts_check"
};

static bool
name_in(const char *name, const char *const *names, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

/* the indexes CREATE EXTENSION puts on qml.jobs and qml.job_events */
static const char *const own_index_names[] = {
	"jobs_pkey", "jobs_fetch_idx", "jobs_due_idx", "jobs_queue_due_idx",
	"jobs_lease_idx", "jobs_finished_idx", "jobs_unique_key_idx",
	"job_events_job_idx"
};

/*
 * Whether the table has an index of an admin's own. Its expressions and
 * predicate may call any function, which enqueue must not run as its
 * caller under the caller's search_path (producer_api.c).
 */
static bool
has_foreign_index(Oid relid)
{
	Relation	rel = RelationIdGetRelation(relid);
	List	   *indexes;
	ListCell   *lc;
	bool		foreign = false;

	if (!RelationIsValid(rel))
		elog(ERROR, "could not open relation %u", relid);
	indexes = RelationGetIndexList(rel);
	RelationClose(rel);
	foreach(lc, indexes)
	{
		char	   *name = get_rel_name(lfirst_oid(lc));

		foreign |= name == NULL ||
			!name_in(name, own_index_names, lengthof(own_index_names));
	}
	list_free(indexes);
	return foreign;
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

const QmlCatalog *
qml_catalog(void)
{
	Oid			nsp;
	int			i;

	if (catalog_valid)
		return &catalog;
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(catalog_invalidate, (Datum) 0);
		callback_registered = true;
	}

	nsp = get_namespace_oid("qml", false);
	catalog.jobs = table_oid(nsp, "jobs");
	catalog.job_events = table_oid(nsp, "job_events");
	catalog.queues = table_oid(nsp, "queues");
	look_up_job_columns(&catalog);
	look_up_event_columns(&catalog);
	catalog.jobs_seq = getIdentitySequence(catalog.jobs, catalog.job_att[JC_ID], false);
	catalog.job_events_seq = getIdentitySequence(catalog.job_events,
												 catalog.event_att[EC_ID], false);

	catalog.foreign_indexes = has_foreign_index(catalog.jobs) ||
		has_foreign_index(catalog.job_events);

	catalog.job_state = get_atttype(catalog.jobs, catalog.job_att[JC_STATE]);
	for (i = 0; i < JS_COUNT; i++)
	{
		HeapTuple	tup = SearchSysCache2(ENUMTYPOIDNAME,
										  ObjectIdGetDatum(catalog.job_state),
										  CStringGetDatum(qml_state_labels[i]));

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "job state \"%s\" is missing from qml.job_state",
				 qml_state_labels[i]);
		catalog.state_oids[i] = ((Form_pg_enum) GETSTRUCT(tup))->oid;
		ReleaseSysCache(tup);
	}
	catalog_valid = true;
	return &catalog;
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
 * qml.enqueue_as_owner, or InvalidOid when it is missing; found without a
 * privilege check on schema qml (the caller of qml.enqueue needs none).
 * Not kept: enqueue's statement path is the slow one, and a kept OID
 * would outlive a dropped function.
 */
Oid
qml_enqueue_as_owner_oid(void)
{
	Oid			argtypes[] = {TEXTOID, JSONBOID, TEXTOID, INT4OID, TIMESTAMPTZOID,
	INT4OID, TEXTOID, INTERVALOID, INTERVALOID};
	HeapTuple	tup = SearchSysCache3(PROCNAMEARGSNSP,
									  CStringGetDatum("enqueue_as_owner"),
									  PointerGetDatum(buildoidvector(argtypes,
																	 lengthof(argtypes))),
									  ObjectIdGetDatum(get_namespace_oid("qml", false)));
	Oid			oid = InvalidOid;

	if (HeapTupleIsValid(tup))
	{
		oid = ((Form_pg_proc) GETSTRUCT(tup))->oid;
		ReleaseSysCache(tup);
	}
	return oid;
}

/*
 * True when an INSERT into or UPDATE of qml.jobs (`rel`, locked) would run
 * nothing but what the API's direct writes do themselves: the extension's
 * own triggers and CHECK constraints, no rule, no row security, no column
 * of an admin's own (whose default an INSERT would fill in). Nor an index
 * of an admin's own on qml.jobs or qml.job_events: its expressions and
 * predicate may call functions, which must run as the owner under the
 * pinned search_path.
 */
bool
qml_jobs_writes_are_ours(Relation rel)
{
	const QmlCatalog *cat = qml_catalog();
	TupleConstr *constr = RelationGetDescr(rel)->constr;
	int			i;

	if (rel->rd_rules != NULL || rel->rd_rel->relrowsecurity ||
		cat->jobs_extra_columns || cat->foreign_indexes ||
		RelationGetDescr(rel)->natts != cat->jobs_natts)
		return false;
	if (rel->trigdesc != NULL)
		for (i = 0; i < rel->trigdesc->numtriggers; i++)
			if (!name_in(rel->trigdesc->triggers[i].tgname, own_triggers,
						 lengthof(own_triggers)))
				return false;
	if (constr != NULL)
		for (i = 0; i < constr->num_check; i++)
			if (!name_in(constr->check[i].ccname, own_checks, lengthof(own_checks)))
				return false;
	return true;
}
