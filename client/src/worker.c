/*
 * worker.c
 *	  Worker threads and the handler's view of its job (qml_job_ctx).
 *
 * A worker takes a job from the ring, runs its handler and hands the
 * outcome to the flusher (a job that waited in the ring past the hold goes
 * back to the queue instead). Its slot records which job it runs, the lease and
 * the deadline, for the supervisor; whoever moves the slot out of RUNNING
 * first (the worker when the handler returns, the supervisor on timeout,
 * the stop past its grace period) reports the job, the other stays silent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- the handler's context ---- */

int64_t
qml_ctx_job_id(const qml_job_ctx *ctx)
{
	return ctx->job->id;
}

const char *
qml_ctx_method(const qml_job_ctx *ctx)
{
	return ctx->job->method;
}

const char *
qml_ctx_queue(const qml_job_ctx *ctx)
{
	return ctx->job->queue;
}

const char *
qml_ctx_arguments(const qml_job_ctx *ctx)
{
	return ctx->job->arguments;
}

int
qml_ctx_attempt(const qml_job_ctx *ctx)
{
	return ctx->job->attempts;
}

int
qml_ctx_max_attempts(const qml_job_ctx *ctx)
{
	return ctx->job->max_attempts;
}

int
qml_ctx_priority(const qml_job_ctx *ctx)
{
	return ctx->job->priority;
}

int64_t
qml_ctx_created_at(const qml_job_ctx *ctx)
{
	return ctx->job->created_at;
}

const char *
qml_ctx_worker(const qml_job_ctx *ctx)
{
	return ctx->server->worker_name;
}

qml_client *
qml_ctx_client(const qml_job_ctx *ctx)
{
	return ctx->server->client;
}

int64_t
qml_ctx_deadline(const qml_job_ctx *ctx)
{
	return ctx->deadline;
}

int64_t
qml_ctx_remaining_ms(const qml_job_ctx *ctx)
{
	if (ctx->deadline == QML_TIME_NULL)
		return INT64_MAX;
	return (ctx->deadline - qml_now()) / 1000;
}

bool
qml_ctx_cancelled(const qml_job_ctx *ctx)
{
	return atomic_load(&((qml_job_ctx *) ctx)->cancelled);
}

/* ---- outcomes ---- */

static char *
vformat(const char *fmt, va_list ap)
{
	va_list		ap2;
	int			n;
	char	   *s;

	if (fmt == NULL)
		return NULL;
	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || (s = malloc((size_t) n + 1)) == NULL)
		return NULL;
	vsnprintf(s, (size_t) n + 1, fmt, ap);
	return s;
}

qml_outcome
qml_success(qml_job_ctx *ctx, const char *result_json)
{
	char		why[256];

	free(ctx->result);
	ctx->result = NULL;
	if (result_json == NULL)
		return QML_JOB_SUCCESS;
	if (!qml__json_check(result_json, why, sizeof(why)))
	{
		free(ctx->error);
		ctx->error = NULL;
		ctx->result_invalid = true;
		return qml_fail(ctx, "the handler's result is not valid JSON: %s", why);
	}
	ctx->result = qml__strdup(result_json);
	return QML_JOB_SUCCESS;
}

qml_outcome
qml_retry(qml_job_ctx *ctx, const char *fmt,...)
{
	va_list		ap;

	free(ctx->error);
	va_start(ap, fmt);
	ctx->error = vformat(fmt, ap);
	va_end(ap);
	return QML_JOB_RETRY;
}

qml_outcome
qml_fail(qml_job_ctx *ctx, const char *fmt,...)
{
	va_list		ap;

	free(ctx->error);
	va_start(ap, fmt);
	ctx->error = vformat(fmt, ap);
	va_end(ap);
	return QML_JOB_FAIL;
}

/* ---- running a job ---- */

/*
 * A job with no handler is retried with backoff, and the log names its
 * method, but once a minute per method: a flood of such jobs must not
 * flood the log. Methods are remembered by hash in a small table; a
 * collision or an eviction costs at most an extra warning.
 */
#define UNHANDLED_WARN_US (60 * 1000000LL)

static void
warn_unhandled(qml_server *s, const char *method)
{
	uint64_t	h = 1469598103934665603ULL;
	int64_t		now = qml__mono_us();
	rt_unhandled *slot = &s->unhandled[0];
	bool		warn;

	for (const char *p = method; *p; p++)
		h = (h ^ (unsigned char) *p) * 1099511628211ULL;
	pthread_mutex_lock(&s->unhandled_mu);
	for (int i = 0; i < QML_UNHANDLED_SLOTS; i++)
	{
		rt_unhandled *u = &s->unhandled[i];

		if (u->at != 0 && u->hash == h)
		{
			slot = u;
			break;
		}
		if (u->at < slot->at)
			slot = u;			/* the oldest (or an empty one) makes room */
	}
	warn = slot->hash != h || slot->at == 0 || now - slot->at >= UNHANDLED_WARN_US;
	if (warn)
	{
		slot->hash = h;
		slot->at = now;
	}
	pthread_mutex_unlock(&s->unhandled_mu);
	if (warn)
		qml__rt_log(s, QML_LOG_WARNING,
					"no handler for method \"%s\": its jobs are retried with backoff until they "
					"run out of attempts (register a handler, or give the method a queue of its own); "
					"said once a minute", method);
}

static void
run_job(qml_server *s, rt_slot *slot, rt_job *job)
{
	qml_job_ctx *ctx = &slot->ctx;
	const qml_handler_entry *h;
	int			timeout = s->config->job_timeout_ms;
	qml_outcome outcome;
	rt_slot_state was;

	ctx->server = s;
	ctx->job = job;
	ctx->result = NULL;
	ctx->error = NULL;
	ctx->result_invalid = false;
	atomic_store(&ctx->cancelled, false);
	ctx->deadline = timeout > 0 ? qml_now() + (int64_t) timeout * 1000 : QML_TIME_NULL;

	pthread_mutex_lock(&slot->mu);
	slot->state = SLOT_RUNNING;
	slot->job_id = job->id;
	slot->lease_until_mono = job->fetched_mono + (int64_t) s->config->lease_ms * 1000;
	slot->deadline_mono = timeout > 0 ? qml__mono_us() + (int64_t) timeout * 1000 : 0;
	pthread_mutex_unlock(&slot->mu);

	if ((h = qml__registry_find(s->registry, job->method)) != NULL)
		outcome = h->fn(ctx, h->user_data);
	else if (s->registry->fallback)
		outcome = s->registry->fallback(ctx, s->registry->fallback_data);
	else
	{
		/* a typo, or producers deployed before their workers: not the job's fault */
		warn_unhandled(s, job->method);
		outcome = qml_retry(ctx, "no handler is registered for method \"%s\" on worker %s",
							job->method, s->worker_name);
	}

	pthread_mutex_lock(&slot->mu);
	was = slot->state;
	slot->state = SLOT_IDLE;
	slot->job_id = 0;
	pthread_mutex_unlock(&slot->mu);

	if (was != SLOT_RUNNING)
	{
		/* timed out or released meanwhile: already reported */
		free(ctx->result);
		free(ctx->error);
	}
	else if (outcome == QML_JOB_SUCCESS && !ctx->result_invalid)
	{
		free(ctx->error);
		qml__rt_report(s, job->id, REPORT_SUCCESS, ctx->result);
	}
	else
	{
		rt_report_kind kind = outcome == QML_JOB_RETRY ? REPORT_RETRY : REPORT_FAIL;
		char	   *error = ctx->error;

		free(ctx->result);
		if (outcome != QML_JOB_SUCCESS && outcome != QML_JOB_RETRY && outcome != QML_JOB_FAIL)
		{
			free(error);
			error = NULL;
			kind = REPORT_FAIL;
			if ((error = malloc(64)) != NULL)
				snprintf(error, 64, "the handler returned an invalid outcome (%d)", (int) outcome);
		}
		if (error == NULL)
			error = qml__strdup(kind == REPORT_RETRY ? "the handler asked for a retry"
								: "the handler failed the job");
		qml__rt_report(s, job->id, kind, error);
	}
	ctx->result = NULL;
	ctx->error = NULL;
	ctx->job = NULL;
	free(job);
	qml__rt_slot_freed(s);
}

void *
qml__worker_main(void *arg)
{
	rt_slot    *slot = arg;
	qml_server *s = slot->server;

	pthread_mutex_lock(&s->q_mu);
	for (;;)
	{
		rt_job	   *job;

		while (s->ring_count == 0 && !s->workers_stop)
			pthread_cond_wait(&s->q_cv, &s->q_mu);
		if ((job = qml__rt_ring_pop(s)) == NULL)
			break;

		/*
		 * Claimed ahead and kept waiting past the hold (the supervisor
		 * releases such jobs too, but only on its tick): too little of the
		 * lease may be left to start it safely, so give it back. The hold
		 * is 100 ms or more, so the coarse clock (a tick, a few ms) does:
		 * the precise one was the costliest call of a quick job's hand-off.
		 */
		if (qml__mono_coarse_us() - job->fetched_mono > qml__rt_hold_us(s))
		{
			pthread_mutex_unlock(&s->q_mu);
			qml__rt_release_unstarted(s, job);
			pthread_mutex_lock(&s->q_mu);
			continue;
		}
		s->active++;
		pthread_mutex_unlock(&s->q_mu);

		run_job(s, slot, job);
		atomic_fetch_add(&s->finished, 1);

		pthread_mutex_lock(&s->q_mu);
		s->active--;
		if (s->workers_stop)
			pthread_cond_broadcast(&s->idle_cv);
	}
	pthread_mutex_unlock(&s->q_mu);
	return NULL;
}
