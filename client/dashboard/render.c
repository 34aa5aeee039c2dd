/*
 * render.c
 *	  libqml's structs as the JSON the dashboard's API and pushes speak (see
 *	  docs/dashboard.md). Jobs and times as the qml command prints them
 *	  with --json (output.c), so both speak the same JSON.
 */
#include <math.h>

#include "dashboard.h"
#include "../cli/cli.h"

json_t *
render_time(int64_t us)
{
	return cli_json_time(us);
}

json_t *
render_job(const qml_job *job)
{
	return cli_json_job(job);
}

json_t *
render_events(const qml_job_event *ev, size_t n)
{
	json_t	   *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:o,s:s,s:o,s:o,s:o}",
										   "from_state", ev[i].from_state < 0 ? json_null()
										   : json_string(qml_state_name((qml_job_state) ev[i].from_state)),
										   "to_state", qml_state_name(ev[i].to_state),
										   "at", render_time(ev[i].at),
										   "worker", ev[i].worker ? json_string(ev[i].worker) : json_null(),
										   "error", ev[i].error ? json_string(ev[i].error) : json_null()));
	return a;
}

/* seconds rounded to a millisecond, or null for "none" (negative) */
static json_t *
seconds_or_null(double s)
{
	return s < 0 ? json_null() : json_real(round(s * 1000) / 1000);
}

json_t *
render_queues(const qml_overview *o)
{
	json_t	   *a = json_array();

	for (size_t i = 0; i < o->count; i++)
	{
		const qml_queue_info *q = &o->queues[i];
		json_t	   *j = json_pack("{s:s}", "queue", q->queue);

		for (int k = 0; k < QML_STATE_COUNT; k++)
			json_object_set_new(j, qml_state_name((qml_job_state) k), json_integer(q->counts[k]));
		json_object_set_new(j, "paused", json_boolean(q->paused));
		json_object_set_new(j, "oldest_waiting_seconds", seconds_or_null(q->oldest_waiting_s));
		json_object_set_new(j, "jobs_per_second",
							json_real(round(q->jobs_per_second * 100) / 100));
		json_array_append_new(a, j);
	}
	return a;
}

json_t *
render_stats(const qml_overview *o)
{
	json_t	   *totals = json_object();
	int64_t		sum[QML_STATE_COUNT] = {0};

	for (size_t i = 0; i < o->count; i++)
		for (int k = 0; k < QML_STATE_COUNT; k++)
			sum[k] += o->queues[i].counts[k];
	for (int k = 0; k < QML_STATE_COUNT; k++)
		json_object_set_new(totals, qml_state_name((qml_job_state) k), json_integer(sum[k]));
	return json_pack("{s:o,s:o,s:{s:o},s:o}",
					 "totals", totals,
					 "queues", render_queues(o),
					 "scheduler", "lag_seconds", seconds_or_null(o->scheduler_lag_s),
					 "at", render_time(o->at));
}

json_t *
render_throughput(const qml_throughput_bucket *b, size_t n)
{
	json_t	   *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:o,s:I,s:I}", "at", render_time(b[i].at),
										   "succeeded", (json_int_t) b[i].succeeded,
										   "failed", (json_int_t) b[i].failed));
	return json_pack("{s:o}", "buckets", a);
}

json_t *
render_workers(const qml_worker_info *w, size_t n)
{
	json_t	   *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:s,s:b,s:I,s:o}", "worker", w[i].worker,
										   "connected", w[i].connected,
										   "jobs", (json_int_t) w[i].jobs,
										   "last_seen", render_time(w[i].last_seen)));
	return json_pack("{s:o}", "workers", a);
}
