/*
 * dashboard.h
 *	  qml dashboard: an HTTP server (civetweb) with a REST API, Prometheus
 *	  metrics, a WebSocket that pushes changes, and one page embedded at
 *	  build time. Every number comes through libqml's public API.
 *
 * Files: server.c (life cycle, options, civetweb setup), http.c (JSON
 * responses, errors, security headers, limits), routes.c (the REST API),
 * router.c (method and path to a route, no I/O), render.c (libqml structs
 * as JSON), live.c (the one poller over one connection), ws.c (WebSocket clients and pushes), metrics.c (/metrics),
 * auth.c (Host, Origin and the token), assets.c (the embedded page).
 */
#ifndef QML_DASHBOARD_H
#define QML_DASHBOARD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <civetweb.h>
#include <jansson.h>

#include "qml.h"

#define DASH_MAX_BODY (64 * 1024)	/* bigger request bodies: 413 */
#define DASH_MAX_WS 100			/* WebSocket clients at once */
#define DASH_THROUGHPUT_MINUTES 60
#define DASH_MAX_PATH 8192		/* the request line is at most max_request_size */
#define DASH_MAX_PUBLIC 16		/* --public-url addresses */

/* An origin: what --public-url names, and what an Origin header says. */
typedef struct dash_origin
{
	bool		https;
	char		host[256];		/* lower case; an IPv6 address in its [] */
	int			port;			/* 443 or 80 when the URL names none */
} dash_origin;

typedef struct dash_options
{
	const char *listen;			/* host:port; default 127.0.0.1:8080 */
	const char *token;			/* NULL or "": read-only */
	const char *database_url;	/* NULL: DATABASE_URL or PG* */
	int			interval_ms;	/* the poller's cadence, >= 250 */
	/* where a reverse proxy serves it (--public-url): auth.c accepts these */
	dash_origin public_urls[DASH_MAX_PUBLIC];
	int			npublic;
} dash_options;

typedef struct dash
{
	const dash_options *opts;
	struct mg_context *ctx;
	char		url[300];		/* where it listens */

	/* the client the request handlers share; NULL until the database answers */
	pthread_mutex_t mu;
	qml_client *client;

	atomic_bool stop;
	atomic_bool db_up;
	atomic_uint_fast64_t handler_queries;	/* statements sent by requests */
	atomic_uint_fast64_t live_queries;	/* ... by the poller */
	atomic_int	ws_clients;

	/* live.c: the latest pushes, guarded by live_mu */
	pthread_mutex_t live_mu;
	json_t	   *stats;			/* data of the last "stats" message */
	int64_t		stats_mono;		/* when it was read, monotonic µs */
	json_t	   *throughput;		/* data of the last "throughput" message */
	int64_t		throughput_mono;
	pthread_t	live_thread;
	bool		live_started;
} dash;

/* server.c */
/* Serves until SIGINT or SIGTERM; the exit code. */
int			dashboard_run(const dash_options *opts);
/* prints opts' --public-url addresses, a line each after prefix */
void		dashboard_print_public(const dash_options *opts, const char *prefix);
/* Whether --listen's HOST:PORT is one dashboard_start() takes. */
bool		dashboard_listen_ok(const char *listen);
/* Starts serving and returns (NULL, with a message on stderr, on failure). */
dash	   *dashboard_start(const dash_options *opts);
const char *dashboard_url(const dash *d);	/* "http://127.0.0.1:8080/" */
void		dashboard_stop(dash *d);
/* The shared client (NULL while the database has not answered yet). */
qml_client *dash_client(dash *d);
/* Opens the shared client unless it is open; false when it cannot. */
bool		dash_open_client(dash *d);

/* http.c */
void		http_json(struct mg_connection *conn, int status, json_t *body);	/* steals body */
void		http_error(struct mg_connection *conn, int status, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));
/* The thread's libqml error as a response: 400, 404, 409, 403, 503 or 500. */
void		http_qml_error(struct mg_connection *conn, qml_status st);
void		http_send(struct mg_connection *conn, int status, const char *type,
					  const void *body, size_t len, bool html);
/* Rejects (413/400) a body over DASH_MAX_BODY or one that is not JSON. */
bool		http_body_ok(struct mg_connection *conn);
/* A HEAD request: answered as GET, without the body. */
bool		http_is_head(const struct mg_connection *conn);
int			http_error_callback(struct mg_connection *conn, int status,
								const char *msg);

/* routes.c */
int			routes_handle(struct mg_connection *conn, void *cbdata);

/* render.c */
json_t	   *render_time(int64_t us);
json_t	   *render_job(const qml_job *job);
json_t	   *render_events(const qml_job_event *ev, size_t n);
json_t	   *render_stats(const qml_overview *o);	/* /api/stats */
json_t	   *render_queues(const qml_overview *o);	/* the "queues" array */
json_t	   *render_throughput(const qml_throughput_bucket *b, size_t n);
json_t	   *render_workers(const qml_worker_info *w, size_t n);

/* live.c */
void		live_start(dash *d);
void		live_stop(dash *d);
/* The poller's latest stats / throughput (new references), NULL when none is fresh. */
json_t	   *live_stats(dash *d);
json_t	   *live_throughput(dash *d);

/* ws.c */
void		ws_register(dash *d);
void		ws_broadcast(dash *d, const char *type, json_t *data);	/* borrows data */
void		ws_broadcast_db(dash *d, bool up);

/* metrics.c */
int			metrics_handle(struct mg_connection *conn, dash *d);

/* auth.c */
/*
 * Whether the request may come from where it comes from (Host and Origin:
 * no page of another site); if not, why (for a 403) in why.
 */
bool		auth_origin_allowed(const struct mg_connection *conn, const dash *d,
								char *why, size_t size);
/*
 * Adds the comma-separated URLs of list (--public-url) to o->public_urls.
 * false when one is not http(s)://HOST[:PORT][/] or there are too many;
 * why then completes "--public-url ...".
 */
bool		auth_public_add(dash_options *o, const char *list, char *why, size_t size);
/* o as a URL, scheme://host[:port]/, the port only when not the scheme's own */
void		auth_origin_format(const dash_origin *o, char *buf, size_t size);
/* Whether a write may go on; if not, the 401/403 response has been sent. */
bool		auth_write_allowed(struct mg_connection *conn, const dash *d);

/* assets.c, over the table embed_assets.sh generates */
typedef struct dash_asset
{
	const char *name;
	const unsigned char *data;
	size_t		size;
} dash_asset;

extern const dash_asset dash_assets[];

/* Serves `/` or /assets/<name>; false when there is no such asset. */
bool		assets_serve(struct mg_connection *conn, const char *path);

#endif							/* QML_DASHBOARD_H */
