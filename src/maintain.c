/*-------------------------------------------------------------------------
 *
 * maintain.c
 *	  One maintenance pass over the job store: promote due jobs, rescue
 *	  jobs whose lease expired, prune old finished jobs.
 *
 * The scheduler background worker runs this pass continuously; the SQL
 * function qml.maintain() runs it once by hand, for servers where qml
 * cannot be preloaded and for tests. Both go through qml_maintain_pass(),
 * so there is one definition of what a pass does.
 *
 * Every step claims its rows with SKIP LOCKED and touches at most
 * qml.maintain_batch of them, so a pass never waits on a worker's row
 * lock and never holds many locks for long. State changes go through
 * ordinary UPDATEs, so the job triggers record history and send NOTIFY
 * exactly as for any other change.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_maintain);

/* scheduled and retrying jobs whose time has come become enqueued */
static const char *const promote_sql =
"WITH due AS ("
"  SELECT id FROM qml.jobs"
"   WHERE state OPERATOR(pg_catalog.=) ANY ('{scheduled,awaiting_retry}'::qml.job_state[])"
"     AND run_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
"   ORDER BY run_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
" UPDATE qml.jobs j SET state = 'enqueued'"
"   FROM due WHERE j.id OPERATOR(pg_catalog.=) due.id";

/*
 * A lease that ran out means the worker died or hung: the job fails the
 * way qml.fail() would fail it, so it is retried with backoff while it has
 * attempts left.
 */
static const char *const rescue_sql =
"WITH gone AS ("
"  SELECT id FROM qml.jobs"
"   WHERE state OPERATOR(pg_catalog.=) 'processing'"
"     AND locked_until OPERATOR(pg_catalog.<) pg_catalog.now()"
"   ORDER BY locked_until LIMIT $1 FOR UPDATE SKIP LOCKED)"
" UPDATE qml.jobs j"
"    SET state = CASE WHEN j.attempts OPERATOR(pg_catalog.<) j.max_attempts"
"                     THEN 'awaiting_retry' ELSE 'failed' END::qml.job_state,"
"        run_at = CASE WHEN j.attempts OPERATOR(pg_catalog.<) j.max_attempts"
"                      THEN (pg_catalog.now() OPERATOR(pg_catalog.+)"
"                            qml.retry_delay(j.attempts, j.backoff_base, j.backoff_cap))"
"                      ELSE j.run_at END,"
"        last_error = 'lease expired on worker ' OPERATOR(pg_catalog.||) j.locked_by"
"   FROM gone WHERE j.id OPERATOR(pg_catalog.=) gone.id";

/*
 * Finished jobs older than their queue's retention go, with their history.
 * The index range uses the shortest retention in force; the per-queue
 * filter then keeps what a longer retention still protects.
 */
static const char *const prune_sql =
"WITH horizon AS ("
"  SELECT pg_catalog.now() OPERATOR(pg_catalog.-) LEAST("
"           pg_catalog.make_interval(secs => $2),"
"           (SELECT pg_catalog.min(retention) FROM qml.queues)) AS cutoff),"
" old AS ("
"  SELECT j.id FROM qml.jobs j LEFT JOIN qml.queues q ON q.name OPERATOR(pg_catalog.=) j.queue, horizon h"
"   WHERE j.state OPERATOR(pg_catalog.=) ANY (CASE WHEN $3 THEN '{succeeded,deleted,failed}'"
"                          ELSE '{succeeded,deleted}' END::qml.job_state[])"
"     AND j.finished_at OPERATOR(pg_catalog.<) h.cutoff"
"     AND j.finished_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-)"
"         COALESCE(q.retention, pg_catalog.make_interval(secs => $2)))"
"   LIMIT $1 FOR UPDATE OF j SKIP LOCKED),"
" gone AS (DELETE FROM qml.jobs j USING old WHERE j.id OPERATOR(pg_catalog.=) old.id RETURNING j.id)"
" , events AS (DELETE FROM qml.job_events e USING gone WHERE e.job_id OPERATOR(pg_catalog.=) gone.id)"
" SELECT pg_catalog.count(*) FROM gone";

static uint64
run_step(const char *sql, int nargs, Oid *types, Datum *values)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, NULL,
										   false, 0);

	if (rc < 0)
		elog(ERROR, "maintenance step failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

void
qml_maintain_pass(QmlPassResult *result)
{
	Oid			types[3] = {INT4OID, FLOAT8OID, BOOLOID};
	Datum		values[3];
	bool		isnull;

	values[0] = Int32GetDatum(qml_maintain_batch);
	values[1] = Float8GetDatum((double) qml_retention_s);
	values[2] = BoolGetDatum(qml_prune_failed);

	SPI_connect();
	result->promoted = run_step(promote_sql, 1, types, values);
	result->rescued = run_step(rescue_sql, 1, types, values);
	run_step(prune_sql, 3, types, values);
	result->pruned = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1,
												 &isnull));
	SPI_finish();
}

/*
 * qml.maintain() returns jsonb
 *
 * One pass, by hand. Returns what it did, e.g.
 * {"promoted": 3, "rescued": 0, "pruned": 120}.
 */
Datum
qml_maintain(PG_FUNCTION_ARGS)
{
	QmlPassResult r;
	char	   *json;

	qml_maintain_pass(&r);
	json = psprintf("{\"promoted\": " UINT64_FORMAT ", \"rescued\": " UINT64_FORMAT
					", \"pruned\": " UINT64_FORMAT "}",
					r.promoted, r.rescued, r.pruned);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}
