/*
 * store_pg_jobs.c
 *	  The PostgreSQL store's job operations: the SQL contract behind the job
 *	  API (enqueue, batch, get, list, delete, requeue, history, stats,
 *	  queues, recurring jobs, maintain). One statement each, on a pooled
 *	  connection.
 *
 * jobs.c checks the caller's arguments before they get here; the server
 * still checks everything it owns (names, lengths, states).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"
#include "store_pg.h"

#define US(col) "(extract(epoch FROM " col ") * 1000000)::int8"

static const char job_columns[] =
"id, queue, method, arguments::text, priority, state::text, attempts, "
"max_attempts, " US("run_at") ", " US("created_at") ", " US("enqueued_at") ", "
US("started_at") ", " US("finished_at") ", locked_by, " US("locked_until") ", "
"last_error, result::text, unique_key";

/* ---- jobs as rows ---- */

static qml_job *
job_from_row(const PGresult *r, int row)
{
	qml_job    *j = calloc(1, sizeof(*j));
	bool		oom = false;

	if (j == NULL)
		return NULL;
	j->id = qml__col_i64(r, row, 0);
	j->queue = qml__col_str(r, row, 1, &oom);
	j->method = qml__col_str(r, row, 2, &oom);
	j->arguments = qml__col_str(r, row, 3, &oom);
	j->priority = atoi(PQgetvalue(r, row, 4));
	qml_state_parse(PQgetvalue(r, row, 5), &j->state);
	j->attempts = atoi(PQgetvalue(r, row, 6));
	j->max_attempts = atoi(PQgetvalue(r, row, 7));
	j->run_at = qml__col_i64(r, row, 8);
	j->created_at = qml__col_i64(r, row, 9);
	j->enqueued_at = qml__col_i64(r, row, 10);
	j->started_at = qml__col_i64(r, row, 11);
	j->finished_at = qml__col_i64(r, row, 12);
	j->locked_by = qml__col_str(r, row, 13, &oom);
	j->locked_until = qml__col_i64(r, row, 14);
	j->last_error = qml__col_str(r, row, 15, &oom);
	j->result = qml__col_str(r, row, 16, &oom);
	j->unique_key = qml__col_str(r, row, 17, &oom);
	if (oom)
	{
		qml_job_free(j);
		return NULL;
	}
	return j;
}

/* ---- enqueue ---- */

static const char enqueue_sql[] =
"SELECT qml.enqueue(method => $1, arguments => coalesce($2::jsonb, '[]'),"
" queue => coalesce($3, 'default'), priority => coalesce($4::int, 0),"
" run_at => CASE WHEN $5::int8 IS NOT NULL"
"                THEN 'epoch'::timestamptz + $5::int8 * interval '1 microsecond'"
"                WHEN $6::int8 IS NOT NULL"
"                THEN now() + $6::int8 * interval '1 millisecond' END,"
" max_attempts => $7::int, unique_key => $8,"
" backoff_base => $9::int8 * interval '1 millisecond',"
" backoff_cap => $10::int8 * interval '1 millisecond')";

qml_status
pg_enqueue(qml_store *store, const char *method, const char *arguments,
			const qml_enqueue_options *o, int64_t *id)
{
	qml_client *client = store->client;
	char		prio[16],
				run_at[24],
				delay[24],
				attempts[16],
				base[24],
				cap[24];
	const char *p[10];
	PGresult   *r;
	qml_status	st;

	p[0] = method;
	p[1] = arguments;
	p[2] = o ? o->queue : NULL;
	p[3] = p[4] = p[5] = p[6] = p[7] = p[8] = p[9] = NULL;
	if (o)
	{
		snprintf(prio, sizeof(prio), "%d", o->priority);
		p[3] = prio;
		if (o->run_at != 0)
		{
			qml__i64_text(run_at, sizeof(run_at), o->run_at);
			p[4] = run_at;
		}
		if (o->delay_ms > 0)
		{
			qml__i64_text(delay, sizeof(delay), o->delay_ms);
			p[5] = delay;
		}
		if (o->max_attempts > 0)
		{
			snprintf(attempts, sizeof(attempts), "%d", o->max_attempts);
			p[6] = attempts;
		}
		p[7] = o->unique_key;
		if (o->backoff_base_ms > 0)
		{
			qml__i64_text(base, sizeof(base), o->backoff_base_ms);
			p[8] = base;
		}
		if (o->backoff_cap_ms > 0)
		{
			qml__i64_text(cap, sizeof(cap), o->backoff_cap_ms);
			p[9] = cap;
		}
	}
	if ((st = qml__client_exec(client, enqueue_sql, 10, p, &r)) != QML_OK)
		return st;
	if (id)
		*id = qml__col_i64(r, 0, 0);
	PQclear(r);
	return QML_OK;
}



/* Appends "key": "string" with JSON escaping (jansson). */
static void
json_kv_str(qml_buf *b, const char *key, const char *value)
{
	json_t	   *s = json_string(value);
	char	   *text = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;

	if (text == NULL)
		b->oom = true;
	else
		qml__buf_printf(b, ",\"%s\":%s", key, text);
	free(text);
	json_decref(s);
}

static const char batch_sql[] = "SELECT * FROM qml.enqueue_batch($1::jsonb)";

/* delays count from the server's clock, not ours */
static const char batch_delay_sql[] =
"SELECT * FROM qml.enqueue_batch((SELECT coalesce(jsonb_agg(CASE WHEN e ? 'delay_ms'"
" THEN (e - 'delay_ms') || jsonb_build_object('run_at',"
"      now() + (e->>'delay_ms')::int8 * interval '1 millisecond') ELSE e END ORDER BY o), '[]')"
" FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS a(e, o)))";

qml_status
pg_enqueue_batch(qml_store *store, const qml_job_spec *jobs, size_t count,
				  int64_t *ids)
{
	qml_client *client = store->client;
	qml_buf		b;
	bool		delays = false;
	PGresult   *r;
	qml_status	st;
	const char *p[1];


	/*
	 * Arguments are embedded as they were given (already checked), not
	 * parsed and printed again: that would turn 1 into 1.0.
	 */
	qml__buf_init(&b);
	qml__buf_puts(&b, "[");
	for (size_t i = 0; i < count; i++)
	{
		const qml_job_spec *j = &jobs[i];
		const qml_enqueue_options *o = &j->options;
		qml__buf_puts(&b, i ? ",{" : "{");
		qml__buf_printf(&b, "\"arguments\":%s", j->arguments ? j->arguments : "[]");
		json_kv_str(&b, "method", j->method);
		if (o->queue)
			json_kv_str(&b, "queue", o->queue);
		if (o->priority)
			qml__buf_printf(&b, ",\"priority\":%d", o->priority);
		if (o->run_at != 0)
		{
			char		t[64];

			qml_time_iso8601(o->run_at, t, sizeof(t));
			qml__buf_printf(&b, ",\"run_at\":\"%s\"", t);
		}
		if (o->delay_ms > 0)
		{
			qml__buf_printf(&b, ",\"delay_ms\":%" PRId64, o->delay_ms);
			delays = true;
		}
		if (o->max_attempts > 0)
			qml__buf_printf(&b, ",\"max_attempts\":%d", o->max_attempts);
		if (o->unique_key)
			json_kv_str(&b, "unique_key", o->unique_key);
		if (o->backoff_base_ms > 0)
			qml__buf_printf(&b, ",\"backoff_base\":\"%" PRId64 " milliseconds\"",
							o->backoff_base_ms);
		if (o->backoff_cap_ms > 0)
			qml__buf_printf(&b, ",\"backoff_cap\":\"%" PRId64 " milliseconds\"",
							o->backoff_cap_ms);
		qml__buf_puts(&b, "}");
	}
	qml__buf_puts(&b, "]");
	if (b.oom)
	{
		qml__buf_free(&b);
		return qml__nomem();
	}
	p[0] = b.data;
	st = qml__client_exec(client, delays ? batch_delay_sql : batch_sql, 1, p, &r);
	qml__buf_free(&b);
	if (st != QML_OK)
		return st;
	if ((size_t) PQntuples(r) != count)
	{
		int			n = PQntuples(r);

		PQclear(r);
		return qml__error(QML_ERR_SERVER,
						  "qml.enqueue_batch returned %d ids for %zu jobs", n, count);
	}
	for (size_t i = 0; ids && i < count; i++)
		ids[i] = qml__col_i64(r, (int) i, 0);
	PQclear(r);
	return QML_OK;
}

/* ---- reading jobs ---- */

qml_status
pg_job_get(qml_store *store, int64_t id, qml_job **job)
{
	qml_client *client = store->client;
	char		sql[1024];
	char		idt[24];
	const char *p[1] = {idt};
	PGresult   *r;
	qml_status	st;

	qml__i64_text(idt, sizeof(idt), id);
	snprintf(sql, sizeof(sql), "SELECT %s FROM qml.jobs WHERE id = $1::int8", job_columns);
	if ((st = qml__client_exec(client, sql, 1, p, &r)) != QML_OK)
		return st;
	if (PQntuples(r) == 0)
	{
		PQclear(r);
		return qml__error(QML_ERR_NOT_FOUND, "job %" PRId64 " does not exist", id);
	}
	*job = job_from_row(r, 0);
	PQclear(r);
	return *job ? QML_OK : qml__nomem();
}

qml_status
pg_job_list(qml_store *store, const qml_job_filter *filter,
				 qml_job_list **out)
{
	qml_client *client = store->client;
	qml_job_filter f = QML_JOB_FILTER_INIT;
	char		sql[1400];
	char		before[24],
				limit[16];
	const char *p[5];
	PGresult   *r;
	qml_job_list *list;
	qml_status	st;
	int			n;

	if (filter)
		f = *filter;
	p[0] = f.state == -1 ? NULL : qml_state_name((qml_job_state) f.state);
	p[1] = f.queue;
	p[2] = f.method;
	qml__i64_text(before, sizeof(before), f.before_id);
	p[3] = f.before_id > 0 ? before : NULL;
	snprintf(limit, sizeof(limit), "%d", f.limit ? f.limit : 100);
	p[4] = limit;
	snprintf(sql, sizeof(sql),
			 "SELECT %s FROM qml.jobs"
			 " WHERE ($1::qml.job_state IS NULL OR state = $1::qml.job_state)"
			 "   AND ($2::text IS NULL OR queue = $2)"
			 "   AND ($3::text IS NULL OR method = $3)"
			 "   AND ($4::int8 IS NULL OR id < $4::int8)"
			 " ORDER BY id DESC LIMIT $5::int", job_columns);
	if ((st = qml__client_exec(client, sql, 5, p, &r)) != QML_OK)
		return st;
	n = PQntuples(r);
	list = calloc(1, sizeof(*list));
	if (list == NULL || (n > 0 && (list->jobs = calloc((size_t) n, sizeof(qml_job *))) == NULL))
	{
		free(list);
		PQclear(r);
		return qml__nomem();
	}
	for (int i = 0; i < n; i++)
	{
		if ((list->jobs[i] = job_from_row(r, i)) == NULL)
		{
			PQclear(r);
			qml_job_list_free(list);
			return qml__nomem();
		}
		list->count++;
	}
	PQclear(r);
	*out = list;
	return QML_OK;
}

qml_status
pg_job_events(qml_store *store, int64_t id, qml_job_event **events,
			   size_t *count)
{
	qml_client *client = store->client;
	char		idt[24];
	const char *p[1] = {idt};
	PGresult   *r;
	qml_status	st;
	qml_job_event *ev = NULL;
	int			n;
	bool		oom = false;

	*events = NULL;
	*count = 0;
	qml__i64_text(idt, sizeof(idt), id);
	st = qml__client_exec(client,
						  "SELECT " US("at") ", from_state::text, to_state::text, worker, error"
						  "  FROM qml.job_events WHERE job_id = $1::int8 ORDER BY at, id",
						  1, p, &r);
	if (st != QML_OK)
		return st;
	n = PQntuples(r);
	if (n > 0 && (ev = calloc((size_t) n, sizeof(*ev))) == NULL)
	{
		PQclear(r);
		return qml__nomem();
	}
	for (int i = 0; i < n; i++)
	{
		qml_job_state s;

		ev[i].at = qml__col_i64(r, i, 0);
		ev[i].from_state = (!PQgetisnull(r, i, 1) && qml_state_parse(PQgetvalue(r, i, 1), &s)) ? (int) s : -1;
		qml_state_parse(PQgetvalue(r, i, 2), &ev[i].to_state);
		ev[i].worker = qml__col_str(r, i, 3, &oom);
		ev[i].error = qml__col_str(r, i, 4, &oom);
	}
	PQclear(r);
	if (oom)
	{
		qml_job_events_free(ev, (size_t) n);
		return qml__nomem();
	}
	*events = ev;
	*count = (size_t) n;
	return QML_OK;
}

/* ---- changing jobs ---- */

static qml_status
job_bool_call(qml_client *client, const char *sql, int64_t id, bool *done)
{
	char		idt[24];
	const char *p[1] = {idt};
	PGresult   *r;
	qml_status	st;

	if (done)
		*done = false;
	qml__i64_text(idt, sizeof(idt), id);
	if ((st = qml__client_exec(client, sql, 1, p, &r)) != QML_OK)
		return st;
	if (done)
		*done = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return QML_OK;
}

qml_status
pg_job_delete(qml_store *store, int64_t id, bool *done)
{
	return job_bool_call(store->client, "SELECT qml.delete($1::int8)", id, done);
}

qml_status
pg_job_requeue(qml_store *store, int64_t id, bool *done)
{
	return job_bool_call(store->client, "SELECT qml.requeue($1::int8)", id, done);
}

/* ---- statistics and queues ---- */

qml_status
pg_stats(qml_store *store, const char *queue, qml_queue_stats **stats,
		  size_t *count)
{
	qml_client *client = store->client;
	const char *p[1] = {queue};
	PGresult   *r;
	qml_status	st;
	qml_queue_stats *s = NULL;
	int			n;
	bool		oom = false;

	*stats = NULL;
	*count = 0;
	/* columns in qml_job_state order */
	st = qml__client_exec(client,
						  "SELECT queue, paused, scheduled, enqueued, processing, succeeded,"
						  "       failed, awaiting_retry, deleted FROM qml.stats($1::text)",
						  1, p, &r);
	if (st != QML_OK)
		return st;
	n = PQntuples(r);
	if (n > 0 && (s = calloc((size_t) n, sizeof(*s))) == NULL)
	{
		PQclear(r);
		return qml__nomem();
	}
	for (int i = 0; i < n; i++)
	{
		s[i].queue = qml__col_str(r, i, 0, &oom);
		s[i].paused = strcmp(PQgetvalue(r, i, 1), "t") == 0;
		for (int k = 0; k < QML_STATE_COUNT; k++)
			s[i].counts[k] = qml__col_i64(r, i, 2 + k);
	}
	PQclear(r);
	if (oom)
	{
		qml_stats_free(s, (size_t) n);
		return qml__nomem();
	}
	*stats = s;
	*count = (size_t) n;
	return QML_OK;
}

static qml_status
queue_call(qml_client *client, const char *sql, const char *queue, bool *changed)
{
	const char *p[1] = {queue};
	PGresult   *r;
	qml_status	st;

	if (changed)
		*changed = false;
	if ((st = qml__client_exec(client, sql, 1, p, &r)) != QML_OK)
		return st;
	if (changed)
		*changed = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return QML_OK;
}

qml_status
pg_queue_pause(qml_store *store, const char *queue, bool pause, bool *changed)
{
	return queue_call(store->client, pause ? "SELECT qml.pause_queue($1)" :
					  "SELECT qml.resume_queue($1)", queue, changed);
}

/* ---- recurring jobs ---- */

/*
 * Recurring jobs came after 1.0's first cut: say plainly when the installed
 * extension does not have them, instead of "function does not exist".
 */
static qml_status
recurring_supported(qml_client *client, const char *function)
{
	const char *p[1] = {function};
	PGresult   *r;
	qml_status	st;
	bool		ext,
				ok;

	st = qml__client_exec(client,
						  "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'qml')"
						  "       OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc p"
						  "        JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
						  "        WHERE n.nspname = 'qml' AND p.proname = 'edition'),"
						  "       EXISTS (SELECT 1 FROM pg_catalog.pg_class c"
						  "        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
						  "        WHERE n.nspname = 'qml' AND c.relname = 'recurring')"
						  "   AND ($1::text IS NULL OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc p"
						  "        JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
						  "        WHERE n.nspname = 'qml' AND p.proname = $1::text))",
						  1, p, &r);
	if (st != QML_OK)
		return st;
	ext = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	ok = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
	PQclear(r);
	if (!ext)
	{
		qml__error(QML_ERR_NO_EXTENSION, "the qml extension is not installed in this database");
		qml__error_set_extra(NULL, "Run \"qml migrate\" (or call qml_migrate()).", NULL);
		return QML_ERR_NO_EXTENSION;
	}
	if (!ok)
	{
		qml__error(QML_ERR_UNSUPPORTED,
				   "the installed qml extension has no recurring jobs (%s is missing)",
				   function ? function : "qml.recurring");
		qml__error_set_extra(NULL,
							 "Install a qml version with recurring jobs on the server and run \"qml migrate\".",
							 NULL);
		return QML_ERR_UNSUPPORTED;
	}
	return QML_OK;
}


qml_status
pg_recurring_add(qml_store *store, const char *name, const char *schedule,
					   const char *method, const char *arguments,
					   const qml_recurring_options *options)
{
	qml_client *client = store->client;
	qml_recurring_options o = options ? *options : (qml_recurring_options) {0};
	char		priority[16],
				max_attempts[16];
	const char *p[8] = {name, schedule, method, arguments, o.queue, priority,
	o.max_attempts > 0 ? max_attempts : NULL, o.timezone};
	qml_status	st;

	snprintf(priority, sizeof(priority), "%d", o.priority);
	snprintf(max_attempts, sizeof(max_attempts), "%d", o.max_attempts);
	if ((st = recurring_supported(client, "add_recurring")) != QML_OK)
		return st;
	return qml__client_exec(client,
							"SELECT qml.add_recurring($1, $2, $3, coalesce($4::jsonb, '[]'),"
							" coalesce($5, 'default'), $6::int, $7::int, $8)", 8, p, NULL);
}

qml_status
pg_recurring_remove(qml_store *store, const char *name)
{
	qml_client *client = store->client;
	const char *p[1] = {name};
	PGresult   *r;
	qml_status	st;
	bool		gone;

	if ((st = recurring_supported(client, "remove_recurring")) != QML_OK)
		return st;
	if ((st = qml__client_exec(client, "SELECT qml.remove_recurring($1)::text", 1, p, &r)) != QML_OK)
		return st;
	/* a boolean false (or NULL) means there was nothing of that name */
	gone = !(PQgetisnull(r, 0, 0) || strcmp(PQgetvalue(r, 0, 0), "false") == 0);
	PQclear(r);
	if (!gone)
		return qml__error(QML_ERR_NOT_FOUND, "there is no recurring job named \"%s\"", name);
	return QML_OK;
}

qml_status
pg_recurring_list(qml_store *store, char **json)
{
	qml_client *client = store->client;
	PGresult   *r;
	qml_status	st;

	*json = NULL;
	if ((st = recurring_supported(client, NULL)) != QML_OK)
		return st;
	st = qml__client_exec(client,
						  "SELECT coalesce(json_agg(r), '[]')::text"
						  "  FROM (SELECT * FROM qml.recurring ORDER BY 1) r", 0, NULL, &r);
	if (st != QML_OK)
		return st;
	*json = qml__strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return *json ? QML_OK : qml__nomem();
}

qml_status
pg_recurring_run(qml_store *store, const char *name, int64_t *id)
{
	qml_client *client = store->client;
	const char *p[1] = {name};
	PGresult   *r;
	qml_status	st;

	if ((st = recurring_supported(client, "run_recurring")) != QML_OK ||
		(st = qml__client_exec(client, "SELECT qml.run_recurring($1)", 1, p, &r)) != QML_OK)
		return st;
	if (id)
		*id = qml__col_i64(r, 0, 0);
	PQclear(r);
	return QML_OK;
}

/* ---- maintenance ---- */

qml_status
pg_maintain(qml_store *store, char **report)
{
	qml_client *client = store->client;
	PGresult   *r;
	qml_status	st;

	if (report)
		*report = NULL;
	if ((st = qml__client_exec(client, "SELECT qml.maintain()::text", 0, NULL, &r)) != QML_OK)
		return st;
	if (report && (*report = qml__strdup(PQgetvalue(r, 0, 0))) == NULL)
		st = qml__nomem();
	PQclear(r);
	return st;
}
