/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  Jobs enqueued, succeeded and failed per queue per minute, counted as
 *	  they happen and rolled up into qml.throughput_minutes, so that
 *	  qml.throughput() and the dashboard never scan qml.jobs.
 *
 * The row trigger (or the direct write) counts each state change in the
 * transaction; stats_shared.c carries the counts to shared memory at
 * commit, keyed by the minute of the transaction's start (the time the
 * job's timestamps carry), and the scheduler's pass (and qml.maintain())
 * adds them to the table here. Only databases with a scheduler count:
 * elsewhere qml.throughput() reads qml.jobs instead. Counts of the last
 * second before a crash are lost with shared memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_stats_live);

/* the counters of a throughput count */
#define TP_ENQUEUED 0
#define TP_SUCCEEDED 1
#define TP_FAILED 2

static uint64 lost_reported = 0;

/* a job of `queue` went from `from` to `to` in this transaction */
void
qml_stats_count(const char *queue, JobState from, JobState to)
{
	int			counter;

	if (to == JS_ENQUEUED && from != JS_ENQUEUED)
		counter = TP_ENQUEUED;
	else if (to == JS_SUCCEEDED)
		counter = TP_SUCCEEDED;
	else if (to == JS_FAILED)
		counter = TP_FAILED;
	else
		return;
	if (!qml_counts_live())
		return;
	qml_counts_add(queue, GetCurrentTransactionStartTimestamp() / USECS_PER_MINUTE,
				   counter, 1);
}

Datum
qml_int8_array(const int64 *values, int n)
{
	Datum	   *d = palloc(Max(n, 1) * sizeof(Datum));
	int			i;

	for (i = 0; i < n; i++)
		d[i] = Int64GetDatum(values[i]);
	return PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL,
										   TYPALIGN_DOUBLE));
}

Datum
qml_text_array(const QmlCounted *rows, int n)
{
	Datum	   *d = palloc(Max(n, 1) * sizeof(Datum));
	int			i;

	for (i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(rows[i].queue);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

static const char *const rollup_sql =
"INSERT INTO qml.throughput_minutes AS t (minute, queue, enqueued, succeeded, failed)"
" SELECT u.m, u.q, u.e, u.s, u.f"
"   FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.timestamptz[]),"
"                   pg_catalog.unnest($2::pg_catalog.text[]),"
"                   pg_catalog.unnest($3::pg_catalog.int8[]),"
"                   pg_catalog.unnest($4::pg_catalog.int8[]),"
"                   pg_catalog.unnest($5::pg_catalog.int8[])) AS u(m, q, e, s, f)"
" ON CONFLICT (minute, queue) DO UPDATE"
"    SET enqueued = t.enqueued OPERATOR(pg_catalog.+) excluded.enqueued,"
"        succeeded = t.succeeded OPERATOR(pg_catalog.+) excluded.succeeded,"
"        failed = t.failed OPERATOR(pg_catalog.+) excluded.failed";

static const char *const expire_sql =
"DELETE FROM qml.throughput_minutes"
" WHERE minute OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-)"
"       pg_catalog.make_interval(secs => $1))";

static SPIPlanPtr expire_plan = NULL;
static SPIPlanPtr lock_plan = NULL;
static SPIPlanPtr rollup_plan = NULL;

/* adds counts to qml.throughput_minutes (SPI connected): stats_shared.c's writer */
static void
write_throughput(QmlCounted *rows, int n)
{
	Oid			types[5] = {TIMESTAMPTZARRAYOID, TEXTARRAYOID, INT8ARRAYOID,
	INT8ARRAYOID, INT8ARRAYOID};
	Datum		values[5];
	Datum	   *minutes = palloc(n * sizeof(Datum));
	int64	   *c[3];
	int			i;
	int			k;

	for (k = 0; k < 3; k++)
		c[k] = palloc(n * sizeof(int64));
	for (i = 0; i < n; i++)
	{
		minutes[i] = TimestampTzGetDatum(rows[i].minute * USECS_PER_MINUTE);
		for (k = 0; k < 3; k++)
			c[k][i] = rows[i].n[k];
	}
	values[0] = PointerGetDatum(construct_array(minutes, n, TIMESTAMPTZOID, 8,
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = qml_text_array(rows, n);
	for (k = 0; k < 3; k++)
		values[2 + k] = qml_int8_array(c[k], n);
	qml_spi_run_latest(&rollup_plan, rollup_sql, 5, types, values);
}

/* whether this transaction holds the roll-up lock of `key` (try, no wait) */
bool
qml_rollup_lock(int key)
{
	Oid			type = INT4OID;
	Datum		value = Int32GetDatum(key);
	bool		isnull;

	/* the advisory lock (7433580 is 'qml') serialises roll-ups */
	return qml_spi_run(&lock_plan, "SELECT pg_catalog.pg_try_advisory_xact_lock(7433580, $1)",
					   1, &type, &value) == 1 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								   1, &isnull));
}

/*
 * A step of the pass (SPI connected): adds this database's counts to
 * qml.throughput_minutes and drops rows older than qml.stats_retention.
 */
void
qml_stats_rollup(void)
{
	Oid			float8_type = FLOAT8OID;
	Datum		value = Float8GetDatum((double) qml_stats_retention_s);
	uint64		lost;

	qml_spi_run(&expire_plan, expire_sql, 1, &float8_type, &value);
	if (qml_rollup_lock(1))
		qml_counts_roll_up(false, false);

	lost = qml_counts_dropped();
	if (lost != lost_reported)
	{
		ereport(WARNING,
				(errmsg("qml dropped " UINT64_FORMAT " throughput counts",
						lost - lost_reported),
				 errdetail("Counts of prepared transactions are not kept.")));
		lost_reported = lost;
	}
}

void
qml_stats_init(void)
{
	qml_counts_init();
	qml_counts_set_writer(false, write_throughput);
}

/*
 * qml.stats_live() returns boolean
 *
 * Internal: whether this database's statistics are counted and rolled up
 * (the library is preloaded and a scheduler serves the database). When
 * not, qml.throughput() reads qml.jobs.
 */
Datum
qml_stats_live(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(qml_registry_has_scheduler(MyDatabaseId));
}
