/*-------------------------------------------------------------------------
 *
 * qml.h
 *	  Declarations shared by the qml extension's C files: settings (GUCs)
 *	  and the entry points each file offers the others.
 *
 *-------------------------------------------------------------------------
 */
#ifndef QML_H
#define QML_H

#include "postgres.h"
#include "datatype/timestamp.h"

/* settings, defined in qml.c */
extern int	qml_retry_base_ms;
extern int	qml_retry_cap_ms;
extern int	qml_default_max_attempts;
extern int	qml_retention_s;
extern bool qml_prune_failed;
extern bool qml_history;
extern int	qml_maintain_batch;

/* job states, in the order of the enum qml.job_state's labels */
typedef enum JobState
{
	JS_SCHEDULED,
	JS_ENQUEUED,
	JS_PROCESSING,
	JS_SUCCEEDED,
	JS_FAILED,
	JS_AWAITING_RETRY,
	JS_DELETED,
	JS_COUNT					/* also: no state (NULL) */
} JobState;

extern const char *const qml_state_labels[JS_COUNT];

/* one state change of one job, as the row trigger saw it */
typedef struct QmlJobChange
{
	int64		job_id;
	JobState	from_state;		/* JS_COUNT when the job was created */
	JobState	to_state;
	char	   *queue;
	char	   *worker;			/* NULL if none */
	char	   *error;			/* NULL if none */
} QmlJobChange;

/* job_history.c */
extern void qml_history_add(const QmlJobChange *change);
extern void qml_queue_has_work(const char *queue);

/* backoff.c */
extern int64 qml_backoff_usec(int attempt, int64 base_usec, int64 cap_usec);

/* maintain.c: one scheduler pass; the caller provides a transaction and SPI */
typedef struct QmlPassResult
{
	uint64		promoted;
	uint64		rescued;
	uint64		pruned;
} QmlPassResult;

extern void qml_maintain_pass(QmlPassResult *result);

#endif							/* QML_H */
