/*-------------------------------------------------------------------------
 *
 * qml.c
 *	  Module entry point of the qml extension: defines the qml.* settings.
 *
 * Settings live here so that every other file reads them from one place.
 * The SQL functions never read these through current_setting(): they call
 * into this library, which guarantees the settings are defined even when
 * the library is not preloaded.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "utils/guc.h"

#include "qml.h"

PG_MODULE_MAGIC;

int			qml_retry_base_ms = 5000;
int			qml_retry_cap_ms = 3600 * 1000;
int			qml_default_max_attempts = 20;
int			qml_retention_s = 24 * 3600;
bool		qml_prune_failed = false;
int			qml_maintain_batch = 10000;
bool		qml_history = true;

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomIntVariable("qml.retry_base",
							"First retry delay; each later attempt doubles it.",
							"Jobs may override it with backoff_base.",
							&qml_retry_base_ms, 5000, 1, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("qml.retry_cap",
							"Longest delay between two attempts of a job.",
							"Jobs may override it with backoff_cap.",
							&qml_retry_cap_ms, 3600 * 1000, 1, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("qml.default_max_attempts",
							"Attempts a job gets when enqueue() does not say.",
							NULL,
							&qml_default_max_attempts, 20, 1, 1000000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("qml.retention",
							"How long finished jobs and their history are kept.",
							"A queue may override it in qml.queues.retention.",
							&qml_retention_s, 24 * 3600, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomBoolVariable("qml.prune_failed",
							 "Whether failed jobs are pruned after the retention too.",
							 "Off keeps failed jobs until someone looks at them.",
							 &qml_prune_failed, false,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("qml.maintain_batch",
							"Most jobs one maintenance step touches in one statement.",
							"Bounds how long a pass holds row locks.",
							&qml_maintain_batch, 10000, 1, 1000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("qml.history",
							 "Whether state changes are recorded in qml.job_events.",
							 "A queue may turn it off in qml.queues.history.",
							 &qml_history, true,
							 PGC_SUSET, 0, NULL, NULL, NULL);

	MarkGUCPrefixReserved("qml");
}
