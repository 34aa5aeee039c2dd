/*-------------------------------------------------------------------------
 *
 * session_plan.c
 *	  Prepared statements the API functions keep for the whole session,
 *	  and how those that write qml's tables run.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "nodes/params.h"
#include "nodes/parsenodes.h"
#include "utils/guc.h"

#include "qml.h"

/*
 * Prepares `sql` into *slot the first time; the plan cache replans after
 * DDL (a dropped and re-created extension included). The plans are generic:
 * planning per call would cost more than the statement itself, so the
 * statements must be written so that their generic plan is the index plan
 * (no join whose estimate a parameter could tip into a sequential scan).
 * Call inside SPI_connect().
 */
static SPIPlanPtr
session_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types,
			 int options)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types,
											  CURSOR_OPT_GENERIC_PLAN | options);

		if (plan == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*slot = plan;
	}
	return *slot;
}

SPIPlanPtr
qml_session_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types)
{
	return session_plan(slot, sql, nargs, types, 0);
}

/*
 * The same for a query read through a cursor a few rows at a time
 * (claim_lock.c): planned for its first rows, as a LIMIT would be.
 */
SPIPlanPtr
qml_session_cursor_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types)
{
	return session_plan(slot, sql, nargs, types, CURSOR_OPT_FAST_PLAN);
}

/*
 * Runs `plan`, a statement of the API that writes qml.jobs (an INSERT or
 * UPDATE the direct writes could not do, or do not do, or a step of a
 * maintenance pass, maintain.c), as SPI_execute_plan(plan, values, nulls,
 * false, 0) would, but with session_replication_role = origin. In a
 * session set to replica none of qml.jobs' triggers would fire for it,
 * and the job would be left unstamped and unrecorded: an enqueue without
 * max_attempts refused, a claim or a failure without history, counts or
 * wakeups, a failed job still leased. The API's writes are the session's
 * own, not replicated rows; the direct writes stamp and record them
 * whatever the setting (direct_gate.c), and so do the statements. Only a
 * session at replica pays for the set, at a GUC nest level undone after
 * the statement (and by any abort), and for the plan cache reset it
 * brings.
 */
int
qml_execute_plan(SPIPlanPtr plan, Datum *values, const char *nulls)
{
	return qml_execute_plan_into(plan, values, nulls, NULL);
}

/* the parameters SPI_execute_plan would make of `values` and `nulls` */
static ParamListInfo
params_of(SPIPlanPtr plan, Datum *values, const char *nulls)
{
	int			n = SPI_getargcount(plan);
	ParamListInfo params = makeParamList(n);
	int			i;

	for (i = 0; i < n; i++)
	{
		ParamExternData *p = &params->params[i];

		p->value = values[i];
		p->isnull = nulls != NULL && nulls[i] == 'n';
		p->pflags = PARAM_FLAG_CONST;
		p->ptype = SPI_getargtypeid(plan, i);
	}
	return params;
}

/*
 * The same, the rows it returns sent to `dest` when not NULL, instead of
 * SPI_tuptable: a statement's rows there, all in memory until SPI_finish,
 * were 22 MB of a complete_batch of 300,000 ids, while the function's
 * result set (a tuplestore, which spills to disk past work_mem) received
 * them anyway (worker_held.c, run_statement).
 */
int
qml_execute_plan_into(SPIPlanPtr plan, Datum *values, const char *nulls,
					  DestReceiver *dest)
{
	int			nest = -1;
	int			rc;

	if (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA)
	{
		nest = NewGUCNestLevel();
		(void) set_config_option("session_replication_role", "origin", PGC_SUSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	}
	if (dest == NULL)
		rc = SPI_execute_plan(plan, values, nulls, false, 0);
	else
	{
		SPIExecuteOptions options = {0};

		options.params = params_of(plan, values, nulls);
		options.dest = dest;
		rc = SPI_execute_plan_extended(plan, &options);
	}
	if (nest >= 0)
		AtEOXact_GUC(true, nest);
	return rc;
}
