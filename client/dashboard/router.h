/*
 * router.h
 *	  Which REST route a request's method and path name (router.c): plain
 *	  C without civetweb or libqml, so test/fuzz/routes_fuzz.c can drive it
 *	  without a socket.
 */
#ifndef QML_DASHBOARD_ROUTER_H
#define QML_DASHBOARD_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PARAM_MAX 1024			/* a queue or method name fits (at most 1000) */

typedef enum route_id
{
	RT_OTHER,					/* none of the API's: an asset if GET, else 404 */
	RT_WRONG_METHOD,			/* a known path, another method: 405 */
	RT_BAD_ID,					/* a job route with a bad id: 400 */
	RT_HEALTHZ, RT_METRICS, RT_STATS, RT_QUEUES, RT_JOBS, RT_RUNNING,
	RT_RECURRING, RT_THROUGHPUT, RT_WORKERS,
	RT_JOB,						/* GET /api/jobs/ID */
	RT_JOB_RETRY, RT_JOB_DELETE,	/* POST /api/jobs/ID/retry|delete */
	RT_QUEUE_PAUSE, RT_QUEUE_RESUME,	/* POST /api/queues/NAME/pause|resume */
	RT_RECURRING_RUN			/* POST /api/recurring/NAME/run */
} route_id;

typedef struct route
{
	route_id	id;
	const char *allowed;		/* RT_WRONG_METHOD: "GET" or "POST" */
	const char *bad;			/* RT_BAD_ID: the id's text (in the path) */
	int64_t		job_id;			/* RT_JOB, RT_JOB_RETRY, RT_JOB_DELETE */
	char		name[PARAM_MAX];	/* RT_QUEUE_*, RT_RECURRING_RUN: raw */
} route;

/* A positive 64-bit id, 1 to 19 digits only. */
bool		route_parse_id(const char *s, size_t len, int64_t *id);

/*
 * The request's path as sent (civetweb's decode_url is off) into out, each
 * %XX decoded; false when it holds %00 (a NUL byte would cut a name or id
 * short), a % not followed by two hex digits, or does not fit in size.
 */
bool		route_decode_path(const char *raw, char *out, size_t size);

/* Routes method (GET, HEAD, POST, ...) and decoded path; fills *r, never fails. */
void		route_request(const char *method, const char *path, route *r);

#endif							/* QML_DASHBOARD_ROUTER_H */
