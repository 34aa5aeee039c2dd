/*
 * metrics.c
 *	  GET /metrics in the Prometheus text format, from the poller's latest
 *	  numbers (a scrape costs the database nothing), plus the dashboard's
 *	  own: database up, WebSocket clients, statements sent.
 *
 * qml_jobs_succeeded_total and qml_jobs_failed_total count the retained
 * jobs in those states: they drop when finished jobs are pruned, which
 * Prometheus reads as a counter reset.
 */
#include <inttypes.h>
#include <string.h>

#include "dashboard.h"

/* A label value, escaped as the text format wants (\\, \", \n). */
static void
put_label(struct mg_connection *conn, const char *v)
{
	for (; *v; v++)
	{
		if (*v == '\\' || *v == '"')
			mg_printf(conn, "\\%c", *v);
		else if (*v == '\n')
			mg_printf(conn, "\\n");
		else
			mg_write(conn, v, 1);
	}
}

static void
put_queue_metric(struct mg_connection *conn, const char *name, const char *queue,
				 const char *state, json_t *value)
{
	mg_printf(conn, "%s{queue=\"", name);
	put_label(conn, queue);
	if (state)
		mg_printf(conn, "\",state=\"%s", state);
	if (json_is_number(value))
		mg_printf(conn, "\"} %.17g\n", json_number_value(value));
	else if (json_is_boolean(value))
		mg_printf(conn, "\"} %d\n", json_is_true(value) ? 1 : 0);
	else
		mg_printf(conn, "\"} NaN\n");
}

static void
put_help(struct mg_connection *conn, const char *name, const char *type, const char *help)
{
	mg_printf(conn, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int
metrics_handle(struct mg_connection *conn, dash *d)
{
	static const char *const states[] = {
		"scheduled", "enqueued", "processing", "succeeded", "failed",
		"awaiting_retry", "deleted"
	};
	json_t	   *stats = live_stats(d);
	json_t	   *queues = stats ? json_object_get(stats, "queues") : NULL;
	json_t	   *q,
			   *lag;
	size_t		i;

	mg_response_header_start(conn, 200);
	mg_response_header_add(conn, "Content-Type", "text/plain; version=0.0.4", -1);
	mg_response_header_add(conn, "X-Content-Type-Options", "nosniff", -1);
	mg_response_header_add(conn, "Cache-Control", "no-store", -1);
	mg_response_header_send(conn);

	put_help(conn, "qml_jobs", "gauge", "Jobs by queue and state.");
	json_array_foreach(queues, i, q)
		for (size_t k = 0; k < sizeof(states) / sizeof(states[0]); k++)
		put_queue_metric(conn, "qml_jobs", json_string_value(json_object_get(q, "queue")),
						 states[k], json_object_get(q, states[k]));
	put_help(conn, "qml_jobs_succeeded_total", "counter", "Succeeded jobs retained, by queue.");
	json_array_foreach(queues, i, q)
		put_queue_metric(conn, "qml_jobs_succeeded_total",
						 json_string_value(json_object_get(q, "queue")), NULL,
						 json_object_get(q, "succeeded"));
	put_help(conn, "qml_jobs_failed_total", "counter", "Failed jobs retained, by queue.");
	json_array_foreach(queues, i, q)
		put_queue_metric(conn, "qml_jobs_failed_total",
						 json_string_value(json_object_get(q, "queue")), NULL,
						 json_object_get(q, "failed"));
	put_help(conn, "qml_queue_oldest_waiting_seconds", "gauge",
			 "How long the job at the head of the queue has been due (NaN: none waits).");
	json_array_foreach(queues, i, q)
		put_queue_metric(conn, "qml_queue_oldest_waiting_seconds",
						 json_string_value(json_object_get(q, "queue")), NULL,
						 json_object_get(q, "oldest_waiting_seconds"));
	put_help(conn, "qml_queue_paused", "gauge", "1 when the queue is paused.");
	json_array_foreach(queues, i, q)
		put_queue_metric(conn, "qml_queue_paused",
						 json_string_value(json_object_get(q, "queue")), NULL,
						 json_object_get(q, "paused"));
	put_help(conn, "qml_scheduler_lag_seconds", "gauge",
			 "How long the longest-due scheduled or retrying job has waited for promotion.");
	lag = stats ? json_object_get(json_object_get(stats, "scheduler"), "lag_seconds") : NULL;
	mg_printf(conn, "qml_scheduler_lag_seconds %.17g\n", json_is_number(lag) ? json_number_value(lag) : 0.0);
	put_help(conn, "qml_dashboard_database_up", "gauge", "1 while the dashboard reaches the database.");
	mg_printf(conn, "qml_dashboard_database_up %d\n", atomic_load(&d->db_up) ? 1 : 0);
	put_help(conn, "qml_dashboard_websocket_clients", "gauge", "Open WebSocket connections.");
	mg_printf(conn, "qml_dashboard_websocket_clients %d\n", atomic_load(&d->ws_clients));
	put_help(conn, "qml_dashboard_queries_total", "counter",
			 "Statements the dashboard sent to PostgreSQL.");
	mg_printf(conn, "qml_dashboard_queries_total %" PRIu64 "\n",
			  (uint64_t) (atomic_load(&d->handler_queries) + atomic_load(&d->live_queries)));
	json_decref(stats);
	return 200;
}
