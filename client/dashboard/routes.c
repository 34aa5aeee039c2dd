/*
 * routes.c
 *	  The REST API: one request handler that dispatches on the route
 *	  router.c finds for the method and path, checks every parameter
 *	  before libqml sees it, and answers JSON (see docs/dashboard.md,
 *	  for the routes). Handlers run on several civetweb threads at once;
 *	  they share the libqml client, which is thread-safe, and nothing else
 *	  but atomics and live.c's cache.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard.h"
#include "router.h"


/* Counts the statements a request sends (for qml_dashboard_queries_total). */
#define SENT(d, n) atomic_fetch_add(&(d)->handler_queries, (n))

/*
 * A query parameter into buf: false (400 sent) when it is too long; *given
 * false when it is absent or empty.
 */
static bool
get_param(struct mg_connection *conn, const char *name, char *buf, size_t size,
		  bool *given)
{
	const char *qs = mg_get_request_info(conn)->query_string;
	int			n;

	*given = false;
	buf[0] = '\0';
	if (qs == NULL)
		return true;
	n = mg_get_var(qs, strlen(qs), name, buf, size);
	if (n == -2 || n == -3)
	{
		http_error(conn, 400, "parameter %s is too long", name);
		return false;
	}
	/* %00 would cut the value short: a queue "a%00b" is not queue "a" */
	if (n > 0 && strlen(buf) != (size_t) n)
	{
		http_error(conn, 400, "parameter %s must not contain a NUL byte (%%00)", name);
		return false;
	}
	/* "?queue=" is given, empty: the caller refuses it, not drop the filter */
	*given = n >= 0;
	return true;
}

/*
 * Every parameter of the query string is one of `allowed` (a list that
 * ends with NULL), given once, as name=value; else 400 naming it. So a
 * misspelt filter (?stat=failed), one without its value (?state: civetweb
 * would find no state) and one given twice (?state=failed&state=succeeded:
 * it would read the first) and one whose name is percent-encoded
 * (?stat%65=failed: civetweb would not find it) are not answered as if
 * there were no filter, or a different one.
 */
static bool
params_known(struct mg_connection *conn, const char *path, const char *const *allowed)
{
	const char *qs = mg_get_request_info(conn)->query_string;
	unsigned	seen = 0;		/* bit i: allowed[i] was given */

	for (const char *p = qs; p && *p; p += strcspn(p, "&"), p += *p == '&')
	{
		size_t		len = strcspn(p, "=&");
		int			i = 0;

		if (len == 0 && p[0] == '&')
			continue;			/* "a=1&&b=2" */
		if (len == 0)
		{
			http_error(conn, 400, "a parameter has no name (\"%.*s\")",
					   (int) strcspn(p, "&") < 64 ? (int) strcspn(p, "&") : 64, p);
			return false;
		}
		/* as written: civetweb looks values up by the name undecoded */
		while (allowed[i] && (strlen(allowed[i]) != len || strncmp(allowed[i], p, len) != 0))
			i++;
		if (allowed[i] == NULL)
		{
			char		takes[128] = "";

			for (const char *const *a = allowed; *a; a++)
				snprintf(takes + strlen(takes), sizeof(takes) - strlen(takes), "%s%s",
						 a == allowed ? "" : ", ", *a);
			http_error(conn, 400, "unknown parameter \"%.*s\": %s takes %s", (int) (len < 64 ? len : 64), p,
					   path, takes[0] ? takes : "none");
			return false;
		}
		if (p[len] != '=')
		{
			http_error(conn, 400, "parameter %s has no value: give %s=VALUE or leave it out",
					   allowed[i], allowed[i]);
			return false;
		}
		if (seen & (1u << i))
		{
			http_error(conn, 400, "parameter %s is given more than once", allowed[i]);
			return false;
		}
		seen |= 1u << i;
	}
	return true;
}

/* An integer parameter in [min, max], `dflt` when absent; false: 400 sent. */
static bool
get_int_param(struct mg_connection *conn, const char *name, long min, long max,
			  long dflt, long *out)
{
	char		buf[32],
			   *end;
	bool		given;
	long		v;

	if (!get_param(conn, name, buf, sizeof(buf), &given))
		return false;
	*out = dflt;
	if (!given)
		return true;
	errno = 0;
	v = strtol(buf, &end, 10);
	/* strtol skips leading blanks: " 60" is refused as "60 " is */
	if (errno || *end || end == buf || isspace((unsigned char) buf[0]) || v < min || v > max)
	{
		http_error(conn, 400, "%s must be an integer between %ld and %ld", name, min, max);
		return false;
	}
	*out = v;
	return true;
}

/* The client, or a 503 when the database has not answered yet. */
static qml_client *
need_client(struct mg_connection *conn, dash *d)
{
	qml_client *c = dash_client(d);

	if (c == NULL)
		http_error(conn, 503, "the database is not reachable");
	return c;
}

static void
get_healthz(struct mg_connection *conn, dash *d)
{
	if (atomic_load(&d->db_up))
		http_json(conn, 200, json_pack("{s:b,s:s}", "ok", 1, "database", "up"));
	else
		http_json(conn, 503, json_pack("{s:b,s:s,s:s}", "ok", 0, "database", "down",
									   "error", "the database is not reachable"));
}

/* The poller's latest when fresh, else read now. */
static json_t *
current_stats(struct mg_connection *conn, dash *d)
{
	json_t	   *s = live_stats(d);
	qml_client *c;
	qml_overview *o;
	qml_status	st;

	if (s)
		return s;
	if ((c = need_client(conn, d)) == NULL)
		return NULL;
	SENT(d, 1);
	if ((st = qml_overview_get(c, &o)) != QML_OK)
	{
		http_qml_error(conn, st);
		return NULL;
	}
	s = render_stats(o);
	qml_overview_free(o);
	return s;
}

static void
get_stats(struct mg_connection *conn, dash *d, bool queues_only)
{
	json_t	   *s = current_stats(conn, d);

	if (s == NULL)
		return;
	if (queues_only)
	{
		json_t	   *q = json_pack("{s:O}", "queues", json_object_get(s, "queues"));

		json_decref(s);
		s = q;
	}
	http_json(conn, 200, s);
}

static void
send_job_list(struct mg_connection *conn, qml_job_list *list, size_t limit,
			  bool elapsed)
{
	json_t	   *a = json_array();
	int64_t		now = qml_now();
	json_t	   *next = json_null();

	for (size_t i = 0; i < list->count; i++)
	{
		json_t	   *j = render_job(list->jobs[i]);

		if (elapsed && list->jobs[i]->started_at != QML_TIME_NULL)
			json_object_set_new(j, "elapsed_seconds",
								json_real((double) (now - list->jobs[i]->started_at) / 1e6));
		json_array_append_new(a, j);
	}
	if (limit > 0 && list->count == limit)
	{
		char		cursor[24];

		snprintf(cursor, sizeof(cursor), "%" PRId64, list->jobs[list->count - 1]->id);
		json_decref(next);
		next = json_string(cursor);
	}
	http_json(conn, 200, json_pack("{s:o,s:o}", "jobs", a, "next", next));
}

static void
get_jobs(struct mg_connection *conn, dash *d)
{
	char		state[32],
				queue[PARAM_MAX],
				method[PARAM_MAX],
				idbuf[32],
				after[32];
	bool		has_state,
				has_queue,
				has_method,
				has_id,
				has_after;
	qml_job_filter f = QML_JOB_FILTER_INIT;
	qml_job_state s;
	qml_job_list *list;
	qml_client *c;
	qml_status	st;
	long		limit;
	int64_t		id = 0;

	if (!get_param(conn, "state", state, sizeof(state), &has_state) ||
		!get_param(conn, "queue", queue, sizeof(queue), &has_queue) ||
		!get_param(conn, "method", method, sizeof(method), &has_method) ||
		!get_param(conn, "id", idbuf, sizeof(idbuf), &has_id) ||
		!get_param(conn, "after", after, sizeof(after), &has_after) ||
		!get_int_param(conn, "limit", 1, 500, 50, &limit))
		return;
	if (has_state && !qml_state_parse(state, &s))
	{
		http_error(conn, 400, "unknown state \"%s\": use scheduled, enqueued, processing, "
				   "succeeded, failed, awaiting_retry (retrying) or deleted", state);
		return;
	}
	/* as qml jobs --queue '' is refused: no queue or method is named "" */
	if ((has_queue && queue[0] == '\0') || (has_method && method[0] == '\0'))
	{
		http_error(conn, 400, "%s must not be empty", has_queue && queue[0] == '\0' ? "queue" : "method");
		return;
	}
	if (has_id && !route_parse_id(idbuf, strlen(idbuf), &id))
	{
		http_error(conn, 400, "id must be a positive integer");
		return;
	}
	if (has_after && !route_parse_id(after, strlen(after), &f.before_id))
	{
		http_error(conn, 400, "after must be a cursor returned as next");
		return;
	}
	if ((c = need_client(conn, d)) == NULL)
		return;
	f.state = has_state ? (int) s : -1;
	f.queue = has_queue ? queue : NULL;
	f.method = has_method ? method : NULL;
	f.limit = (int) limit;
	if (has_id)
	{
		/* one job: the list holds it when it also matches the other filters */
		if (f.before_id == 0 || id < f.before_id)
			f.before_id = id + 1;
		f.limit = 1;
	}
	SENT(d, 1);
	if ((st = qml_job_list_get(c, &f, &list)) != QML_OK)
	{
		http_qml_error(conn, st);
		return;
	}
	if (has_id && list->count == 1 && list->jobs[0]->id != id)
	{
		qml_job_free(list->jobs[0]);
		list->count = 0;
	}
	send_job_list(conn, list, has_id ? 0 : (size_t) limit, false);
	qml_job_list_free(list);
}

static void
get_running(struct mg_connection *conn, dash *d)
{
	qml_job_filter f = QML_JOB_FILTER_INIT;
	qml_job_list *list;
	qml_client *c;
	qml_status	st;

	if ((c = need_client(conn, d)) == NULL)
		return;
	f.state = QML_STATE_PROCESSING;
	f.limit = 500;
	SENT(d, 1);
	if ((st = qml_job_list_get(c, &f, &list)) != QML_OK)
	{
		http_qml_error(conn, st);
		return;
	}
	send_job_list(conn, list, 0, true);
	qml_job_list_free(list);
}

static void
get_job(struct mg_connection *conn, dash *d, int64_t id)
{
	qml_client *c = need_client(conn, d);
	qml_job    *job;
	qml_job_event *ev;
	size_t		nev;
	qml_status	st;
	json_t	   *j;

	if (c == NULL)
		return;
	SENT(d, 1);
	if ((st = qml_job_get(c, id, &job)) != QML_OK)
	{
		http_qml_error(conn, st);
		return;
	}
	j = render_job(job);
	qml_job_free(job);
	SENT(d, 1);
	if ((st = qml_job_events(c, id, &ev, &nev)) != QML_OK)
	{
		json_decref(j);
		{
			http_qml_error(conn, st);
			return;
		}
	}
	http_json(conn, 200, json_pack("{s:o,s:o}", "job", j, "events", render_events(ev, nev)));
	qml_job_events_free(ev, nev);
}

static void
post_job(struct mg_connection *conn, dash *d, int64_t id, bool retry)
{
	qml_client *c = need_client(conn, d);
	qml_status	st;
	bool		done;

	if (c == NULL)
		return;
	SENT(d, 1);
	st = retry ? qml_job_requeue(c, id, &done) : qml_job_delete(c, id, &done);
	if (st != QML_OK)
	{
		http_qml_error(conn, st);
		return;
	}
	if (!done)
	{
		http_error(conn, 409, retry
				   ? "job %" PRId64 " has not finished: only succeeded, failed or deleted jobs can be retried"
				   : "job %" PRId64 " has finished: only unfinished jobs can be deleted", id);
		return;
	}
	http_json(conn, 200, json_pack("{s:b,s:I}", "ok", 1, "id", (json_int_t) id));
}

static void
post_queue(struct mg_connection *conn, dash *d, const char *name, bool pause)
{
	qml_client *c = need_client(conn, d);
	qml_status	st;

	if (c == NULL)
		return;
	SENT(d, 1);
	st = pause ? qml_queue_pause(c, name, NULL) : qml_queue_resume(c, name, NULL);
	if (st != QML_OK)
	{
		http_qml_error(conn, st);
		return;
	}
	http_json(conn, 200, json_pack("{s:b,s:s}", "ok", 1, "queue", name));
}

/* qml.recurring's rows under the API's names */
static void
get_recurring(struct mg_connection *conn, dash *d)
{
	static const char *const names[][2] = {
		{"name", "name"}, {"schedule", "cron"}, {"timezone", "timezone"},
		{"method", "method"}, {"queue", "queue"}, {"arguments", "arguments"},
		{"priority", "priority"}, {"max_attempts", "max_attempts"},
		{"next_run_at", "next_run"}, {"last_run_at", "last_run"},
		{"last_job_id", "last_job_id"},
	};
	qml_client *c = need_client(conn, d);
	char	   *text;
	json_t	   *rows,
			   *out,
			   *row;
	qml_status	st;
	size_t		i;

	if (c == NULL)
		return;
	SENT(d, 2);
	if ((st = qml_recurring_list(c, &text)) != QML_OK)
	{
		http_qml_error(conn, st);
		return;
	}
	rows = json_loads(text, 0, NULL);
	qml_free(text);
	out = json_array();
	json_array_foreach(rows, i, row)
	{
		json_t	   *r = json_object();

		for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		{
			json_t	   *v = json_object_get(row, names[k][0]);

			json_object_set(r, names[k][1], v ? v : json_null());
		}
		json_array_append_new(out, r);
	}
	json_decref(rows);
	http_json(conn, 200, json_pack("{s:o}", "recurring", out));
}

static void
post_recurring(struct mg_connection *conn, dash *d, const char *name)
{
	qml_client *c = need_client(conn, d);
	qml_status	st;
	int64_t		id;

	if (c == NULL)
		return;
	SENT(d, 2);
	if ((st = qml_recurring_run(c, name, &id)) != QML_OK)
	{
		http_qml_error(conn, st);
		return;
	}
	http_json(conn, 200, json_pack("{s:b,s:I}", "ok", 1, "id", (json_int_t) id));
}

static void
get_throughput(struct mg_connection *conn, dash *d)
{
	qml_throughput_bucket *b;
	qml_client *c;
	size_t		n;
	qml_status	st;
	long		minutes;
	json_t	   *cached;

	if (!get_int_param(conn, "minutes", 1, 1440, DASH_THROUGHPUT_MINUTES, &minutes))
		return;
	if (minutes == DASH_THROUGHPUT_MINUTES && (cached = live_throughput(d)) != NULL)
	{
		http_json(conn, 200, cached);
		return;
	}
	if ((c = need_client(conn, d)) == NULL)
		return;
	SENT(d, 1);
	if ((st = qml_throughput_get(c, (int) minutes, &b, &n)) != QML_OK)
	{
		http_qml_error(conn, st);
		return;
	}
	http_json(conn, 200, render_throughput(b, n));
	qml_free(b);
}

static void
get_workers(struct mg_connection *conn, dash *d)
{
	qml_client *c = need_client(conn, d);
	qml_worker_info *w;
	size_t		n;
	qml_status	st;

	if (c == NULL)
		return;
	SENT(d, 1);
	if ((st = qml_workers_get(c, &w, &n)) != QML_OK)
	{
		http_qml_error(conn, st);
		return;
	}
	http_json(conn, 200, render_workers(w, n));
	qml_workers_free(w, n);
}

int
routes_handle(struct mg_connection *conn, void *cbdata)
{
	dash	   *d = cbdata;
	const struct mg_request_info *ri = mg_get_request_info(conn);
	const char *path = ri->local_uri_raw ? ri->local_uri_raw : ri->local_uri;
	static const char *const none[] = {NULL};
	static const char *const job_list[] = {"state", "queue", "method", "id", "after", "limit", NULL};
	static const char *const minutes[] = {"minutes", NULL};
	char		decoded[DASH_MAX_PATH];
	char		why[300];
	route		r;

	if (path == NULL)
	{
		http_error(conn, 400, "bad request");
		return 1;
	}
	if (!auth_origin_allowed(conn, d, why, sizeof(why)))
	{
		http_error(conn, 403, "%s", why);
		return 1;
	}
	/* civetweb leaves the path encoded (decode_url = no): %00 is refused here */
	if (!route_decode_path(path, decoded, sizeof(decoded)))
	{
		http_error(conn, 400, "the path must not hold %%00 or a %% without two hex digits after it");
		return 1;
	}
	path = decoded;
	if (!http_body_ok(conn))
		return 1;
	route_request(ri->request_method, path, &r);
	/* the API's routes (not the page, /healthz or /metrics) name what they take */
	if (r.id > RT_METRICS &&
		!params_known(conn, path, r.id == RT_JOBS ? job_list : r.id == RT_THROUGHPUT ? minutes : none))
		return 1;
	switch (r.id)
	{
		case RT_OTHER:
			if (!(strcmp(ri->request_method, "GET") == 0 ||
				  strcmp(ri->request_method, "HEAD") == 0) || !assets_serve(conn, path))
				http_error(conn, 404, "no such route: %s %.200s", ri->request_method, path);
			break;
		case RT_WRONG_METHOD:
			http_error(conn, 405, "%s takes %s", path, r.allowed);
			break;
		case RT_BAD_ID:
			http_error(conn, 400, "job id must be a positive integer, not \"%.40s\"", r.bad);
			break;
		case RT_HEALTHZ:
			get_healthz(conn, d);
			break;
		case RT_METRICS:
			metrics_handle(conn, d);
			break;
		case RT_STATS:
		case RT_QUEUES:
			get_stats(conn, d, r.id == RT_QUEUES);
			break;
		case RT_JOBS:
			get_jobs(conn, d);
			break;
		case RT_RUNNING:
			get_running(conn, d);
			break;
		case RT_RECURRING:
			get_recurring(conn, d);
			break;
		case RT_THROUGHPUT:
			get_throughput(conn, d);
			break;
		case RT_WORKERS:
			get_workers(conn, d);
			break;
		case RT_JOB:
			get_job(conn, d, r.job_id);
			break;
		case RT_JOB_RETRY:
		case RT_JOB_DELETE:
			if (auth_write_allowed(conn, d))
				post_job(conn, d, r.job_id, r.id == RT_JOB_RETRY);
			break;
		case RT_QUEUE_PAUSE:
		case RT_QUEUE_RESUME:
			if (auth_write_allowed(conn, d))
				post_queue(conn, d, r.name, r.id == RT_QUEUE_PAUSE);
			break;
		case RT_RECURRING_RUN:
			if (auth_write_allowed(conn, d))
				post_recurring(conn, d, r.name);
			break;
	}
	return 1;
}
