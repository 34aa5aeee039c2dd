/*-------------------------------------------------------------------------
 *
 * maintain.c
 *	  One maintenance pass over the job store: promote due jobs, rescue
 *	  jobs whose lease expired or whose session ended, fire due recurring
 *	  jobs, prune old finished jobs, roll up statistics, and say when
 *	  something next falls due. On version 1.4 it first turns the ring of
 *	  partitions (generations.c).
 *
 * The scheduler background worker runs this pass continuously (again at
 * once while a step hits its batch limit, else sleeping until the next
 * due time); the SQL function qml.maintain() runs it once by hand, for
 * servers where qml cannot be preloaded and for tests. Both go through
 * qml_maintain_pass(), so there is one definition of what a pass does.
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
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

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
 * Fails the jobs `held` selects (ids, locked) the way qml.fail() fails a
 * job: retried with backoff while it has attempts left, else failed, with
 * `error` (an SQL expression over j) as its last error. A job for which
 * `rerun` (an SQL boolean over j) holds and that has attempts left is
 * enqueued again at once instead, in its old place in line: the attempt
 * still counts, so max_attempts still ends a job that kills every worker.
 */
#define FAIL_HELD_JOBS(held, error, rerun) \
"WITH gone AS (" held ")" \
" UPDATE qml.jobs j" \
"    SET state = CASE WHEN j.attempts OPERATOR(pg_catalog.>=) j.max_attempts" \
"                     THEN 'failed' WHEN " rerun " THEN 'enqueued'" \
"                     ELSE 'awaiting_retry' END::qml.job_state," \
"        run_at = CASE WHEN j.attempts OPERATOR(pg_catalog.>=) j.max_attempts" \
"                        OR " rerun " THEN j.run_at" \
"                      ELSE (pg_catalog.now() OPERATOR(pg_catalog.+)" \
"                            qml.retry_delay(j.attempts, j.backoff_base, j.backoff_cap))" \
"                      END," \
"        last_error = " error \
"   FROM gone WHERE j.id OPERATOR(pg_catalog.=) gone.id"

/*
 * A lease that ran out means the worker died or hung. The job backs off:
 * its worker may still be running it (stopped, or cut off from the
 * server), and a handler that overruns its lease every time should not
 * hold a worker without a pause.
 */
static const char *const rescue_sql = FAIL_HELD_JOBS(
"  SELECT id FROM qml.jobs"
"   WHERE state OPERATOR(pg_catalog.=) 'processing'"
"     AND locked_until OPERATOR(pg_catalog.<) pg_catalog.now()"
"   ORDER BY locked_until LIMIT $1 FOR UPDATE SKIP LOCKED",
"'lease expired on worker ' OPERATOR(pg_catalog.||) j.locked_by",
"false");

/*
 * Finished jobs older than their queue's retention go, with their history.
 * The index range (jobs_finished_idx: the state list must stay the index's
 * predicate) uses the shortest retention in force; the per-queue filter
 * then keeps what a longer retention still protects. From version 1.2 on a
 * job's history is in its row (history_inline.c) and goes with it; only
 * what was recorded before the update, in qml.job_events_1_1, is deleted
 * beside it. Up to 1.1, qml.job_events is that table.
 */
#define PRUNE_SQL(events) \
"WITH old AS (" \
"  SELECT j.id FROM qml.jobs j" \
"    LEFT JOIN qml.queues q ON q.name OPERATOR(pg_catalog.=) j.queue" \
"   WHERE j.state OPERATOR(pg_catalog.=) ANY ('{succeeded,failed,deleted}'::qml.job_state[])" \
"     AND ($3 OR j.state OPERATOR(pg_catalog.<>) 'failed')" \
"     AND j.finished_at OPERATOR(pg_catalog.<) (SELECT pg_catalog.now() OPERATOR(pg_catalog.-)" \
"           LEAST(pg_catalog.make_interval(secs => $2)," \
"                 (SELECT pg_catalog.min(retention) FROM qml.queues)))" \
"     AND j.finished_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-)" \
"         COALESCE(q.retention, pg_catalog.make_interval(secs => $2)))" \
"   LIMIT $1 FOR UPDATE OF j SKIP LOCKED)," \
" gone AS (DELETE FROM qml.jobs j USING old WHERE j.id OPERATOR(pg_catalog.=) old.id RETURNING j.id)" \
" , events AS (DELETE FROM " events " e USING gone WHERE e.job_id OPERATOR(pg_catalog.=) gone.id)" \
" SELECT pg_catalog.count(*) FROM gone"
static const char *const prune_sql[2] = {
	PRUNE_SQL("qml.job_events"), PRUNE_SQL("qml.job_events_1_1")
};

/* finished jobs are deleted a thousand at a time: short locks, small WAL bursts */
#define PRUNE_BATCH 1000

/*
 * Due jobs are promoted a thousand at a time: a fetch skips the jobs a
 * pass holds (worker_api.c promotes due jobs itself), so the pass must
 * hold them for milliseconds, not the 100 ms ten thousand take.
 */
#define PROMOTE_BATCH 1000

/*
 * A claim with a session lease whose session ended (connection dropped,
 * backend killed, server restarted) fails the way a lost lease does, with
 * one difference: the loss of a session is not the job's fault, so the
 * first one runs the job again at once. Only a job whose previous attempt
 * also ended with its session (its last error says so) backs off, so that
 * a job that crashes its worker does not crash the next one at once.
 */
#define SESSION_ENDED_ERROR(worker) \
"'session of worker ' OPERATOR(pg_catalog.||) " worker \
" OPERATOR(pg_catalog.||) ' ended'"
static const char *const session_rescue_sql = FAIL_HELD_JOBS(
"  SELECT id FROM qml.jobs"
"   WHERE state OPERATOR(pg_catalog.=) 'processing'"
"     AND lease_pid IS NOT NULL AND locked_until IS NOT NULL"
"     AND NOT qml.session_alive(lease_pid, lease_session)"
"   ORDER BY locked_until LIMIT $1 FOR UPDATE SKIP LOCKED",
SESSION_ENDED_ERROR("j.locked_by"),
"(j.last_error IS NULL OR NOT (j.last_error OPERATOR(pg_catalog.~~)"
" (" SESSION_ENDED_ERROR("'%'") ")))");

/* when the scheduler must look again: the earliest due job, lease or run */
static const char *const next_due_sql =
"SELECT LEAST("
"  (SELECT pg_catalog.min(run_at) FROM qml.jobs"
"    WHERE state OPERATOR(pg_catalog.=) ANY ('{scheduled,awaiting_retry}'::qml.job_state[])),"
"  (SELECT pg_catalog.min(locked_until) FROM qml.jobs"
"    WHERE state OPERATOR(pg_catalog.=) 'processing' AND locked_until IS NOT NULL),"
"  (SELECT pg_catalog.min(next_run_at) FROM qml.recurring))";

/* ended sessions already looked for; the first pass of a process looks */
static uint64 sessions_checked = PG_UINT64_MAX;

/*
 * Runs one statement of the pass with a plan kept for the process (a pass
 * runs every second or so; planning each time would cost more than the
 * pass). The plan cache replans after DDL, also after DROP and CREATE
 * EXTENSION. With `latest`, the statement sees the latest snapshot, as
 * the checks of foreign keys do, whatever the transaction's isolation.
 * Returns the number of rows processed.
 */
static uint64
spi_run(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types,
		Datum *values, bool latest)
{
	int			rc;

	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL)
			elog(ERROR, "could not prepare a maintenance step: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	if (latest)
		rc = SPI_execute_snapshot(*plan, values, NULL, GetLatestSnapshot(),
								  InvalidSnapshot, false, true, 0);
	else
		rc = qml_execute_plan(*plan, values, NULL);
	if (rc < 0)
		elog(ERROR, "maintenance step failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

uint64
qml_spi_run(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types,
			Datum *values)
{
	return spi_run(plan, sql, nargs, types, values, false);
}

/*
 * The same for statements that add counts to qml's statistics tables: a
 * committing repeatable read transaction writes them too (stats_shared.c),
 * and must not fail on a count row the roll-up changed since it began.
 */
uint64
qml_spi_run_latest(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types,
				   Datum *values)
{
	return spi_run(plan, sql, nargs, types, values, true);
}

/* each statement's plan, kept for the process */
static SPIPlanPtr promote_plan = NULL;
static SPIPlanPtr rescue_plan = NULL;
static SPIPlanPtr session_rescue_plan = NULL;
static SPIPlanPtr prune_plans[2] = {NULL, NULL};	/* by prune_sql */
static SPIPlanPtr next_due_plan = NULL;

/* the first column of the first row of the last statement */
static Datum
first_value(bool *isnull)
{
	if (SPI_processed == 0)
	{
		*isnull = true;
		return (Datum) 0;
	}
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
}

/*
 * Session leases: looked at when a session that held one ended since the
 * last look (a bgworker's pass), or always (qml.maintain() by hand).
 */
static uint64
rescue_sessions(Oid *types, Datum *values)
{
	uint64		ended = qml_sessions_ended();
	uint64		n;

	if (!qml_shmem_ready() ||
		(IsBackgroundWorker && ended == sessions_checked))
		return 0;
	n = qml_spi_run(&session_rescue_plan, session_rescue_sql, 1, types, values);
	if (n < (uint64) qml_maintain_batch)
		sessions_checked = ended;
	return n;
}

static void
pass_steps(QmlPassResult *result)
{
	Oid			types[3] = {INT4OID, FLOAT8OID, BOOLOID};
	Datum		values[3];
	uint64		batch = (uint64) qml_maintain_batch;
	uint64		promote_batch = Min(batch, PROMOTE_BATCH);
	uint64		prune_batch = Min(batch, PRUNE_BATCH);
	int			events = qml_catalog()->inline_history ? 1 : 0;
	uint64		expired;
	uint64		ended;
	bool		isnull;
	Datum		d;
	TimestampTz rotate_due = DT_NOEND;

	/*
	 * Version 1.4: the ring turns first, so that the steps below see the
	 * jobs where they now are (generations.c).
	 */
	if (qml_catalog()->jobs_partitioned)
		(void) qml_rotate_step(&rotate_due);

	values[1] = Float8GetDatum((double) qml_retention_s);
	values[2] = BoolGetDatum(qml_prune_failed);

	values[0] = Int32GetDatum((int32) promote_batch);
	result->promoted = qml_spi_run(&promote_plan, promote_sql, 1, types, values);
	values[0] = Int32GetDatum(qml_maintain_batch);
	expired = qml_spi_run(&rescue_plan, rescue_sql, 1, types, values);
	ended = rescue_sessions(types, values);
	result->rescued = expired + ended;
	result->fired = qml_recurring_fire(qml_maintain_batch);

	values[0] = Int32GetDatum((int32) prune_batch);
	qml_spi_run(&prune_plans[events], prune_sql[events], 3, types, values);
	d = first_value(&isnull);
	result->pruned = isnull ? 0 : (uint64) DatumGetInt64(d);

	qml_stats_rollup();
	qml_job_counts_rollup();
	qml_wakeup_send_missed();

	result->more = result->promoted >= promote_batch || expired >= batch ||
		ended >= batch || result->fired >= batch || result->pruned >= prune_batch;

	qml_spi_run(&next_due_plan, next_due_sql, 0, NULL, NULL);
	d = first_value(&isnull);
	result->next_due = isnull ? DT_NOEND : DatumGetTimestampTz(d);
	if (rotate_due < result->next_due)
		result->next_due = rotate_due;
}

/*
 * One pass. The caller provides a transaction; every queue the pass makes
 * jobs enqueued in is notified at commit.
 */
void
qml_maintain_pass(QmlPassResult *result)
{
	memset(result, 0, sizeof(QmlPassResult));
	result->next_due = DT_NOEND;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	qml_wakeup_pass_mode(true);
	PG_TRY();
	{
		pass_steps(result);
	}
	PG_FINALLY();
	{
		qml_wakeup_pass_mode(false);
	}
	PG_END_TRY();
	SPI_finish();
}

/*
 * qml.maintain() returns jsonb
 *
 * One pass, by hand. Returns what it did, e.g.
 * {"promoted": 3, "rescued": 0, "fired": 1, "pruned": 120}.
 */
Datum
qml_maintain(PG_FUNCTION_ARGS)
{
	QmlPassResult r;
	char	   *json;

	qml_maintain_pass(&r);
	json = psprintf("{\"promoted\": " UINT64_FORMAT ", \"rescued\": " UINT64_FORMAT
					", \"fired\": " UINT64_FORMAT ", \"pruned\": " UINT64_FORMAT "}",
					r.promoted, r.rescued, r.fired, r.pruned);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}
