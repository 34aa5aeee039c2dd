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
extern int	qml_maintain_batch;

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
