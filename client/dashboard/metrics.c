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
	/* one value per queue, from the queue objects of /api/stats */
	static const struct
	{
		const char *name;
		const char *type;
		const char *field;
		const char *help;
	}			per_queue[] = {
		{"qml_jobs_succeeded_total", "counter", "succeeded", "Succeeded jobs retained, by queue."},
		{"qml_jobs_failed_total", "counter", "failed", "Failed jobs retained, by queue."},
		{"qml_queue_oldest_waiting_seconds", "gauge", "oldest_waiting_seconds",
		"How long the job at the head of the queue has been due (NaN: none waits)."},
		{"qml_queue_paused", "gauge", "paused", "1 when the queue is paused."},
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
	if (http_is_head(conn))
	{
		json_decref(stats);
		return 200;
	}

	put_help(conn, "qml_jobs", "gauge", "Jobs by queue and state.");
	json_array_foreach(queues, i, q)
		for (int k = 0; k < QML_STATE_COUNT; k++)
		put_queue_metric(conn, "qml_jobs", json_string_value(json_object_get(q, "queue")),
						 qml_state_name((qml_job_state) k),
						 json_object_get(q, qml_state_name((qml_job_state) k)));
	for (size_t m = 0; m < sizeof(per_queue) / sizeof(per_queue[0]); m++)
	{
		put_help(conn, per_queue[m].name, per_queue[m].type, per_queue[m].help);
		json_array_foreach(queues, i, q)
			put_queue_metric(conn, per_queue[m].name,
							 json_string_value(json_object_get(q, "queue")), NULL,
							 json_object_get(q, per_queue[m].field));
	}
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
