/*-------------------------------------------------------------------------
 *
 * producer_api.c
 *	  qml.enqueue in C: the producer's hot path.
 *
 * Producers call enqueue once per job inside their own transactions, often
 * from many connections at once; a PL/pgSQL version spent most of its time
 * interpreting and replanning. This one checks its arguments and writes the
 * row itself (direct_insert.c): an INSERT statement's executor start-up,
 * CHECK constraints read back from the catalog and trigger queue cost as
 * much CPU as the row. It does what qml.jobs' insert triggers would have
 * done (stamps, history, wakeups) and checks what its CHECK constraints
 * would have checked, so the row is the same. When the table is not
 * exactly as CREATE EXTENSION made it (direct_gate.c), or with a
 * unique_key (INSERT ... ON CONFLICT DO
 * NOTHING and a lookup of the live job holding the key), it runs a prepared
 * INSERT instead, through qml.enqueue_as_owner: qml.enqueue runs as its caller
 * with the caller's search_path (qml--1.1.sql says why), and only the
 * direct insert, which names nothing and checks no privilege, runs there.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_enqueue);
PG_FUNCTION_INFO_V1(qml_enqueue_as_owner);

#define ENQUEUE_NARGS 9
#define INSERT_NPARAMS QML_ENQUEUE_NPARAMS	/* the INSERT's parameters, $1..$10 */

#define ENQUEUE_COLUMNS \
	"INSERT INTO qml.jobs AS j (queue, method, arguments, priority, state," \
	"                           max_attempts, run_at, backoff_base, backoff_cap," \
	"                           unique_key)" \
	" VALUES ($1, $2, $3, $4, $5::text::qml.job_state, $6, $7, $8, $9, $10)"

static const char *const insert_sql = ENQUEUE_COLUMNS " RETURNING j.id";

/*
 * ON CONFLICT waits for a concurrent enqueue of the same key to commit, so
 * two producers racing on one key end up with the same job.
 */
#define LIVE_KEY_STATES \
"   AND state IN ('scheduled', 'enqueued', 'processing', 'awaiting_retry')"

/*
 * [1]: for a database still on version 1.0's SQL (catalog.c), whose unique
 * index, and so each key, spans every queue. [2]: for version 1.4's
 * partitioned qml.jobs, whose live keys are in qml.job_keys (a unique
 * index there would hold per partition only): the key is taken first, for
 * an id of the sequence, and the job inserted with that id only if the
 * key was free; the row trigger jobs_keys finds the key its own. The
 * key's ON CONFLICT waits for a concurrent enqueue of it to end, as the
 * index's does.
 */
static const char *const insert_unique_sql[3] = {
	ENQUEUE_COLUMNS " ON CONFLICT (queue, unique_key) WHERE unique_key IS NOT NULL"
	LIVE_KEY_STATES " DO NOTHING RETURNING j.id",
	ENQUEUE_COLUMNS " ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL"
	LIVE_KEY_STATES " DO NOTHING RETURNING j.id",
	"WITH k AS (INSERT INTO qml.job_keys AS k (queue, unique_key, job_id)"
	"           VALUES ($1, $10, nextval('qml.jobs_id_seq'))"
	"           ON CONFLICT (queue, unique_key) DO NOTHING RETURNING k.job_id)"
	" INSERT INTO qml.jobs AS j (id, queue, method, arguments, priority, state,"
	"                            max_attempts, run_at, backoff_base, backoff_cap,"
	"                            unique_key)"
	" OVERRIDING SYSTEM VALUE"
	" SELECT k.job_id, $1, $2, $3, $4, $5::text::qml.job_state, $6, $7, $8, $9, $10"
	"   FROM k RETURNING j.id"
};

static const char *const find_unique_sql[3] = {
	"SELECT j.id FROM qml.jobs j WHERE j.unique_key = $2 AND j.queue = $1" LIVE_KEY_STATES,
	"SELECT j.id FROM qml.jobs j WHERE j.unique_key = $2" LIVE_KEY_STATES,
	"SELECT k.job_id FROM qml.job_keys k WHERE k.queue = $1 AND k.unique_key = $2"
};

/*
 * Writes one job's row into `out` (qml_direct_open_jobs()) as the INSERT
 * would have, stamps and defaults included (job_trigger.c does the same
 * for other inserts), and records its creation; the caller flushes the
 * history after the last one. `values` and `nulls` are the INSERT's
 * parameters (QML_ENQUEUE_NPARAMS, EP_*), and must last until `out` is
 * closed. Returns the job's id.
 */
int64
qml_enqueue_row(QmlDirectInsert *out, const Datum *values, const char *nulls,
				JobState state)
{
	const QmlCatalog *cat = qml_catalog();
	const AttrNumber *att = cat->job_att;
	Datum	   *row = palloc0(cat->jobs_natts * sizeof(Datum));
	bool	   *isnull = palloc(cat->jobs_natts * sizeof(bool));
	QmlJobChange change;
	int64		id = nextval_internal(cat->jobs_seq, false);

	memset(isnull, true, cat->jobs_natts * sizeof(bool));
#define SET(col, value) (row[att[col] - 1] = (value), isnull[att[col] - 1] = false)
	SET(JC_ID, Int64GetDatum(id));
	SET(JC_QUEUE, values[EP_QUEUE]);
	SET(JC_METHOD, values[EP_METHOD]);
	SET(JC_ARGUMENTS, values[EP_ARGUMENTS]);
	SET(JC_PRIORITY, values[EP_PRIORITY]);
	SET(JC_STATE, ObjectIdGetDatum(cat->state_oids[state]));
	SET(JC_ATTEMPTS, Int32GetDatum(0));
	SET(JC_MAX_ATTEMPTS, nulls[EP_MAX_ATTEMPTS] == 'n' ?
		Int32GetDatum(qml_default_max_attempts) : values[EP_MAX_ATTEMPTS]);
	SET(JC_RUN_AT, values[EP_RUN_AT]);
	SET(JC_CREATED_AT, TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()));
	if (state == JS_ENQUEUED)
		SET(JC_ENQUEUED_AT, TimestampTzGetDatum(GetCurrentTimestamp()));
	if (nulls[EP_BACKOFF_BASE] != 'n')
		SET(JC_BACKOFF_BASE, values[EP_BACKOFF_BASE]);
	if (nulls[EP_BACKOFF_CAP] != 'n')
		SET(JC_BACKOFF_CAP, values[EP_BACKOFF_CAP]);
	change.job_id = id;
	change.from_state = JS_COUNT;
	change.to_state = state;
	change.queue = TextDatumGetCString(values[EP_QUEUE]);
	change.worker = NULL;
	change.error = NULL;
	change.run_at = DatumGetTimestampTz(values[EP_RUN_AT]);
	change.priority = DatumGetInt32(values[EP_PRIORITY]);
	/* version 1.2: the creation is the row's first change (history_inline.c) */
	if (cat->inline_history && qml_history_wanted(change.queue))
		SET(JC_HISTORY, PointerGetDatum(qml_history_append(NULL, &change,
														   GetCurrentTimestamp())));
#undef SET
	qml_direct_insert(out, row, isnull);
	qml_record_change(&change);
	return id;
}

/*
 * Writes one job as the INSERT would have; 0 when the table has something
 * of an admin's own to run on inserts.
 */
static int64
insert_directly(const Datum *values, const char *nulls, JobState state)
{
	QmlDirectInsert out;
	int64		id;

	if (!qml_direct_open_jobs(&out))
		return 0;
	id = qml_enqueue_row(&out, values, nulls, state);
	qml_direct_close(&out);
	qml_history_flush();
	return id;
}

/* runs a prepared statement returning at most one bigint; false if none */
static bool
run_for_id(SPIPlanPtr plan, Datum *values, const char *nulls, int64 *id)
{
	int			rc = qml_execute_plan(plan, values, nulls);
	bool		isnull;

	if (rc < 0)
		elog(ERROR, "enqueue failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return false;
	*id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									  SPI_tuptable->tupdesc, 1, &isnull));
	return true;
}

/* passes argument `arg` on as a statement parameter, NULL or not */
static void
set_nullable(FunctionCallInfo fcinfo, int arg, Datum *value, char *null)
{
	*value = PG_ARGISNULL(arg) ? (Datum) 0 : PG_GETARG_DATUM(arg);
	*null = PG_ARGISNULL(arg) ? 'n' : ' ';
}

/*
 * Checks enqueue's arguments and turns them into the INSERT's parameters
 * (values, nulls: INSERT_NPARAMS each). Returns the state the new job starts in.
 */
static JobState
enqueue_parameters(FunctionCallInfo fcinfo, Datum *values, char *nulls)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz run_at;

	qml_check_name("method", PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0),
				   QML_MAX_METHOD_CHARS);
	qml_check_name("queue", PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2),
				   QML_MAX_QUEUE_CHARS);
	if (!PG_ARGISNULL(5) && PG_GETARG_INT32(5) < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_attempts must be at least 1, not %d",
						PG_GETARG_INT32(5))));
	if (!PG_ARGISNULL(7))
		qml_check_duration("backoff_base", PG_GETARG_INTERVAL_P(7), false);
	if (!PG_ARGISNULL(8))
		qml_check_duration("backoff_cap", PG_GETARG_INTERVAL_P(8), false);
	qml_check_unique_key(PG_ARGISNULL(6) ? NULL : PG_GETARG_TEXT_PP(6));

	/* a past run_at means "now": the job is due and keeps its place */
	run_at = now;
	if (!PG_ARGISNULL(4))
	{
		qml_check_run_at(PG_GETARG_TIMESTAMPTZ(4));
		run_at = Max(PG_GETARG_TIMESTAMPTZ(4), now);
	}

	memset(nulls, ' ', INSERT_NPARAMS);
	values[0] = PG_GETARG_DATUM(2);
	values[1] = PG_GETARG_DATUM(0);
	values[2] = PG_ARGISNULL(1) ?
		DirectFunctionCall1(jsonb_in, CStringGetDatum("[]")) : PG_GETARG_DATUM(1);
	values[3] = Int32GetDatum(PG_ARGISNULL(3) ? 0 : PG_GETARG_INT32(3));
	values[4] = CStringGetTextDatum(run_at > now ? "scheduled" : "enqueued");
	values[6] = TimestampTzGetDatum(run_at);
	set_nullable(fcinfo, 5, &values[5], &nulls[5]);	/* max_attempts */
	set_nullable(fcinfo, 7, &values[7], &nulls[7]);	/* backoff_base */
	set_nullable(fcinfo, 8, &values[8], &nulls[8]);	/* backoff_cap */
	set_nullable(fcinfo, 6, &values[9], &nulls[9]);	/* unique_key */
	return run_at > now ? JS_SCHEDULED : JS_ENQUEUED;
}

/*
 * Hands the call on to qml.enqueue_as_owner, which runs the INSERT
 * statement as the extension's owner with search_path pinned (fmgr does
 * that for a SECURITY DEFINER function with SET). EXECUTE on qml.enqueue
 * is the gate; fmgr itself checks no privilege, as for any function a C
 * function calls, and catalog.c finds it without one on schema qml.
 */
static Datum
call_enqueue_as_owner(FunctionCallInfo fcinfo)
{
	Oid			oid = qml_enqueue_as_owner_oid();
	FmgrInfo	flinfo;
	LOCAL_FCINFO(owner, ENQUEUE_NARGS);
	Datum		result;

	if (PG_NARGS() != ENQUEUE_NARGS)
		elog(ERROR, "qml.enqueue called with %d arguments", PG_NARGS());
	if (!OidIsValid(oid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("function qml.enqueue_as_owner is missing"),
				 errhint("Run ALTER EXTENSION qml UPDATE, or install the library that matches the extension.")));
	fmgr_info(oid, &flinfo);
	InitFunctionCallInfoData(*owner, &flinfo, ENQUEUE_NARGS, PG_GET_COLLATION(),
							 NULL, NULL);
	memcpy(owner->args, fcinfo->args, ENQUEUE_NARGS * sizeof(NullableDatum));
	result = FunctionCallInvoke(owner);
	if (owner->isnull)
		elog(ERROR, "qml.enqueue_as_owner returned NULL");
	return result;
}

/*
 * qml.enqueue(method text, arguments jsonb = '[]', queue text = 'default',
 *			   priority int = 0, run_at timestamptz = NULL,
 *			   max_attempts int = NULL, unique_key text = NULL,
 *			   backoff_base interval = NULL, backoff_cap interval = NULL)
 *		returns bigint
 *
 * Not SECURITY DEFINER and no SET search_path (qml--1.1.sql says why):
 * the direct insert names nothing and checks no privilege, so it runs as
 * the caller; everything else goes through qml.enqueue_as_owner.
 */
Datum
qml_enqueue(PG_FUNCTION_ARGS)
{
	Datum		values[INSERT_NPARAMS];
	char		nulls[INSERT_NPARAMS];
	JobState	state;
	int64		id;

	/* as an INSERT's executor would; else nextval() refuses, naming itself */
	PreventCommandIfReadOnly("qml.enqueue()");
	state = enqueue_parameters(fcinfo, values, nulls);
	if (PG_ARGISNULL(6))
	{
		id = insert_directly(values, nulls, state);
		if (id != 0)
			PG_RETURN_INT64(id);
	}
	return call_enqueue_as_owner(fcinfo);
}

/*
 * qml.enqueue_as_owner(the arguments of qml.enqueue) returns bigint:
 * enqueue by INSERT statement, for a unique_key (ON CONFLICT and a lookup
 * of the live job holding the key) or a qml.jobs with something of an
 * admin's own. SECURITY DEFINER with search_path pinned; granted to
 * nobody, reached through qml.enqueue.
 */
Datum
qml_enqueue_as_owner(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr insert_plan = NULL;
	static SPIPlanPtr insert_unique_plan[3];
	static SPIPlanPtr find_unique_plan[3];
	Oid			types[INSERT_NPARAMS] = {TEXTOID, TEXTOID, JSONBOID, INT4OID, TEXTOID,
	INT4OID, TIMESTAMPTZOID, INTERVALOID, INTERVALOID, TEXTOID};
	Datum		values[INSERT_NPARAMS];
	char		nulls[INSERT_NPARAMS];
	int64		id = 0;

	enqueue_parameters(fcinfo, values, nulls);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (PG_ARGISNULL(6))
	{
		if (!run_for_id(qml_session_plan(&insert_plan, insert_sql, INSERT_NPARAMS, types),
						values, nulls, &id))
			elog(ERROR, "enqueue inserted no row");
	}
	else
	{
		/* a key is unique within its queue: (queue, unique_key) */
		Oid			key_types[2] = {TEXTOID, TEXTOID};
		Datum		key_values[2] = {values[EP_QUEUE], values[EP_UNIQUE_KEY]};
		int			v = qml_catalog()->jobs_partitioned ? 2 :
			qml_catalog()->schema_1_0 ? 1 : 0;

		/* if the live job finished between conflict and lookup, go again */
		for (;;)
		{
			CHECK_FOR_INTERRUPTS();
			if (run_for_id(qml_session_plan(&insert_unique_plan[v], insert_unique_sql[v],
											INSERT_NPARAMS, types),
						   values, nulls, &id))
				break;
			if (run_for_id(qml_session_plan(&find_unique_plan[v], find_unique_sql[v],
											2, key_types),
						   key_values, NULL, &id))
				break;
		}
	}
	SPI_finish();
	PG_RETURN_INT64(id);
}
