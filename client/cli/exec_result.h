/*
 * exec_result.h
 *	  What a qml worker --exec command's output and exit status mean
 *	  (exec_result.c): plain C with jansson only, no libqml, so
 *	  test/fuzz/exec_result_fuzz.c can drive it on its own.
 */
#ifndef QML_EXEC_RESULT_H
#define QML_EXEC_RESULT_H

#include <stdbool.h>
#include <stddef.h>

#define EXEC_STDOUT_MAX (1024 * 1024)	/* a bigger stdout is not kept as result */
#define EXEC_STDERR_TAIL 2000	/* the error keeps this much of stderr's end */

/* A pipe's bytes as they come: the first `limit` of them, or the last. */
typedef struct capture
{
	char	   *data;			/* NUL-terminated; NULL until the first byte */
	size_t		len;
	size_t		cap;
	size_t		limit;
	bool		tail;			/* keep the last `limit` bytes, not the first */
	bool		overflow;		/* bytes were dropped */
} capture;

void		capture_add(capture *c, const char *buf, size_t n);

typedef enum exec_kind
{
	EXEC_SUCCESS, EXEC_FAIL, EXEC_RETRY
} exec_kind;

typedef struct exec_result
{
	exec_kind	kind;
	const char *result;			/* EXEC_SUCCESS: stdout when it is JSON, else NULL */
	char	   *message;		/* EXEC_FAIL, EXEC_RETRY: last_error (malloc'd) */
	const char *outcome;		/* for the log: "succeeded", "timed out", ... */
	bool		log_message;	/* the log line shows the message */
} exec_result;

/*
 * Reads a finished command: status as from waitpid (-1: lost), killed when
 * we stopped it (timed_out: because of its timeout). Message and result
 * point into or are made from out and err; free message with free().
 */
void		exec_read_result(int status, bool killed, bool timed_out,
							 capture *out, capture *err, exec_result *r);

#endif							/* QML_EXEC_RESULT_H */
