/*
 * heartbeat.c
 *	  The supervisor thread: renews the leases of long jobs (the store's
 *	  heartbeat), enforces the per-job timeout, releases jobs claimed ahead
 *	  that waited too long for a worker, and runs the store's maintenance
 *	  tick where it has one (Redis: the scheduler's work under a lock).
 *
 * A lease is renewed once a third of it has passed, so a job outlives any
 * number of leases while its worker is alive; a job whose lease the server
 * no longer grants (deleted, or rescued after a stall) gets its cancel flag
 * set. A job past its timeout is reported failed (retryable) at once and
 * its handler is asked to stop; the thread stays busy until it does, since
 * a thread cannot be killed safely.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void
cancel_job(qml_server *s, int64_t id)
{
	for (int i = 0; i < s->config->workers; i++)
	{
		rt_slot    *slot = &s->slots[i];

		pthread_mutex_lock(&slot->mu);
		if (slot->state == SLOT_RUNNING && slot->job_id == id)
			atomic_store(&slot->ctx.cancelled, true);
		pthread_mutex_unlock(&slot->mu);
	}
}

static void
renew(qml_server *s, const int64_t *ids, bool *held, int n)
{
	qml_store  *store = s->client->store;
	int64_t		sent = qml__mono_us();
	int64_t		lease = (int64_t) s->config->lease_ms * 1000;

	if (store->ops->heartbeat(store, s->worker_name, ids, (size_t) n,
							  s->config->lease_ms, held) != QML_OK)
	{
		qml__rt_log(s, QML_LOG_WARNING, "heartbeat: %s", qml_errmsg());
		return;
	}
	atomic_fetch_add(&s->counters.heartbeats, 1);

	for (int i = 0; i < n; i++)
	{
		if (!held[i])
		{
			qml__rt_log(s, QML_LOG_WARNING,
						"job %lld: lease lost (deleted, or rescued by the scheduler); asking its handler to stop",
						(long long) ids[i]);
			cancel_job(s, ids[i]);
			continue;
		}
		for (int w = 0; w < s->config->workers; w++)
		{
			rt_slot    *slot = &s->slots[w];

			pthread_mutex_lock(&slot->mu);
			if (slot->state == SLOT_RUNNING && slot->job_id == ids[i])
				slot->lease_until_mono = sent + lease;
			pthread_mutex_unlock(&slot->mu);
		}
	}
}

static void
check(qml_server *s, int64_t *ids, bool *held)
{
	int64_t		now = qml__mono_us();
	int64_t		renew_below = (int64_t) s->config->lease_ms * 1000 * 2 / 3;
	int			n = 0;

	for (int i = 0; i < s->config->workers; i++)
	{
		rt_slot    *slot = &s->slots[i];
		int64_t		timed_out = 0;

		pthread_mutex_lock(&slot->mu);
		if (slot->state == SLOT_RUNNING)
		{
			if (slot->deadline_mono && now >= slot->deadline_mono)
			{
				slot->state = SLOT_TIMED_OUT;
				atomic_store(&slot->ctx.cancelled, true);
				timed_out = slot->job_id;
			}
			else if (slot->lease_until_mono - now < renew_below)
				ids[n++] = slot->job_id;
		}
		pthread_mutex_unlock(&slot->mu);
		if (timed_out)
		{
			char		msg[96];

			snprintf(msg, sizeof(msg), "the job timed out after %d ms",
					 s->config->job_timeout_ms);
			atomic_fetch_add(&s->counters.timed_out, 1);
			qml__rt_report(s, timed_out, REPORT_RETRY, qml__strdup(msg));
		}
	}
	if (n > 0)
		renew(s, ids, held, n);
}

/*
 * Jobs claimed ahead wait in the ring while every worker is busy; if the
 * handlers turned slow they would wait for long, holding jobs other servers
 * could run, and eventually outlive their lease. The oldest are at the
 * head: give back those past the hold.
 */
static void
release_stale(qml_server *s, rt_job **out)
{
	int64_t		oldest = qml__mono_us() - qml__rt_hold_us(s);
	size_t		n = 0;

	pthread_mutex_lock(&s->q_mu);
	while (s->ring_count > 0 && s->ring[s->ring_head]->fetched_mono < oldest)
		out[n++] = qml__rt_ring_pop(s);
	pthread_mutex_unlock(&s->q_mu);
	if (n > 0)
		qml__rt_log(s, QML_LOG_INFO,
					"released %zu jobs that waited %lld ms for a worker", n,
					(long long) (qml__rt_hold_us(s) / 1000));
	for (size_t i = 0; i < n; i++)
		qml__rt_release_unstarted(s, out[i]);
}

void *
qml__supervisor_main(void *arg)
{
	qml_server *s = arg;
	int			tick = s->config->lease_ms / 6;
	int64_t    *ids = calloc((size_t) s->config->workers, sizeof(int64_t));
	bool	   *held = calloc((size_t) s->config->workers, sizeof(bool));
	const qml_store_ops *ops = s->client->store->ops;
	int64_t		next_tick = 0;
	rt_job	  **stale = calloc(s->ring_cap, sizeof(rt_job *));

	if (tick > 10000)
		tick = 10000;
	/* a waiting job is released at most half a hold late */
	if (s->config->prefetch > 0 && tick > qml__rt_hold_us(s) / 2000)
		tick = (int) (qml__rt_hold_us(s) / 2000);
	if (s->config->job_timeout_ms > 0 && tick > 25)
		tick = 25;
	if (tick < 10)
		tick = 10;
	if (ops->tick && ops->tick_ms > 0 && tick > ops->tick_ms)
		tick = ops->tick_ms;
	if (ids == NULL || held == NULL || stale == NULL)
	{
		qml__rt_log(s, QML_LOG_ERROR, "supervisor: out of memory; no heartbeats or timeouts");
		free(ids);
		free(held);
		free(stale);
		return NULL;
	}
	pthread_mutex_lock(&s->sv_mu);
	while (!s->sv_stop)
	{
		qml__cond_wait_until(&s->sv_cv, &s->sv_mu, qml__mono_us() + (int64_t) tick * 1000);
		if (s->sv_stop)
			break;
		pthread_mutex_unlock(&s->sv_mu);
		check(s, ids, held);
		release_stale(s, stale);
		/* the store's share of the scheduler's work, where the store has one */
		if (ops->tick && qml__mono_us() >= next_tick)
		{
			ops->tick(s->client->store);
			next_tick = qml__mono_us() + (int64_t) ops->tick_ms * 1000;
		}
		pthread_mutex_lock(&s->sv_mu);
	}
	pthread_mutex_unlock(&s->sv_mu);
	free(ids);
	free(held);
	free(stale);
	return NULL;
}
