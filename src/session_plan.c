/*-------------------------------------------------------------------------
 *
 * session_plan.c
 *	  Prepared statements the API functions keep for the whole session.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "nodes/parsenodes.h"

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
