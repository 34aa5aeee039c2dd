/*
 * live.c
 *	  The one poller: a thread with one database connection (a libqml
 *	  watch, which LISTENs on qml) that reads the overview at a fixed
 *	  cadence and the throughput every 10 s, keeps the latest of each for
 *	  the REST API, /metrics and new pages, and pushes what changed to every
 *	  open page. However many pages are open, the database sees this one
 *	  session and the same statements.
 *
 * Cadence: the stats every interval_ms (250 by default, never faster)
 * while the numbers move, the throughput once a second at most while jobs
 * finish; after 5 s without a change it reads once a second, and a
 * notification on qml (a job became enqueued) brings it back at once.
 *
 * The database may go away: the poller says so to the pages ("db" up
 * false), /healthz answers 503, and it connects again every second until
 * the database is back. It also opens the client the request handlers
 * share, for a dashboard started before its database.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dashboard.h"

#define IDLE_AFTER_US (5 * 1000000)
#define IDLE_INTERVAL_MS 1000
#define THROUGHPUT_EVERY_US (10 * 1000000)
#define FRESH_US 2000000		/* older stats are read again by requests */

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Replaces *slot with data when it differs; true when it did. */
static bool
store(dash *d, json_t **slot, json_t *data)
{
	bool		changed;

	pthread_mutex_lock(&d->live_mu);
	changed = *slot == NULL || !json_equal(*slot, data);
	json_decref(*slot);
	*slot = json_incref(data);
	if (slot == &d->stats)
		d->stats_mono = mono_us();
	else
		d->throughput_mono = mono_us();
	pthread_mutex_unlock(&d->live_mu);
	return changed;
}

static json_t *
fetch(dash *d, json_t **slot)
{
	json_t	   *v = NULL;
	int64_t		at;

	pthread_mutex_lock(&d->live_mu);
	at = slot == &d->stats ? d->stats_mono : d->throughput_mono;
	if (*slot && atomic_load(&d->db_up) && mono_us() - at < FRESH_US)
		v = json_incref(*slot);
	pthread_mutex_unlock(&d->live_mu);
	return v;
}

json_t *
live_stats(dash *d)
{
	return fetch(d, &d->stats);
}

json_t *
live_throughput(dash *d)
{
	return fetch(d, &d->throughput);
}

/* An error other than a lost connection, once until it changes. */
static void
log_error(qml_status st)
{
	static char last[256];

	if (st == QML_OK || st == QML_ERR_CONNECT)
	{
		last[0] = '\0';
		return;
	}
	if (strncmp(last, qml_errmsg(), sizeof(last) - 1) == 0)
		return;
	snprintf(last, sizeof(last), "%s", qml_errmsg());
	fprintf(stderr, "qml dashboard: cannot read the statistics: %s\n", last);
}

static void
set_up(dash *d, bool up)
{
	if (atomic_exchange(&d->db_up, up) != up)
	{
		fprintf(stderr, "qml dashboard: database %s%s%s\n", up ? "up" : "down",
				up ? "" : ": ", up ? "" : qml_errmsg());
		ws_broadcast_db(d, up);
	}
}

/*
 * Reads and pushes the stats; true when they changed. *st: how the read
 * went (an error other than a lost connection leaves the database up);
 * *finished: jobs succeeded and failed, which the chart counts.
 */
static bool
poll_stats(dash *d, qml_watch *w, qml_status *st, int64_t *finished)
{
	qml_overview *o;
	json_t	   *s,
			   *cmp;
	bool		changed;

	if ((*st = qml_watch_overview(w, &o)) != QML_OK)
		return false;
	s = render_stats(o);
	*finished = 0;
	for (size_t i = 0; i < o->count; i++)
		*finished += o->queues[i].counts[QML_STATE_SUCCEEDED] + o->queues[i].counts[QML_STATE_FAILED];
	qml_overview_free(o);
	/* "at" moves every time: compare the rest */
	cmp = json_deep_copy(s);
	json_object_del(cmp, "at");
	pthread_mutex_lock(&d->live_mu);
	changed = d->stats == NULL;
	if (!changed)
	{
		json_t	   *old = json_deep_copy(d->stats);

		json_object_del(old, "at");
		changed = !json_equal(old, cmp);
		json_decref(old);
	}
	pthread_mutex_unlock(&d->live_mu);
	json_decref(cmp);
	store(d, &d->stats, s);
	if (changed)
		ws_broadcast(d, "stats", s);
	json_decref(s);
	return changed;
}

static qml_status
poll_throughput(dash *d, qml_watch *w)
{
	qml_throughput_bucket *b;
	size_t		n;
	json_t	   *t;
	qml_status	st;

	if ((st = qml_watch_throughput(w, DASH_THROUGHPUT_MINUTES, &b, &n)) != QML_OK)
		return st;
	t = render_throughput(b, n);
	qml_free(b);
	if (store(d, &d->throughput, t))
		ws_broadcast(d, "throughput", t);
	json_decref(t);
	return QML_OK;
}

static void
nap_ms(dash *d, int ms)
{
	struct timespec ts = {0, 50 * 1000000L};

	for (int waited = 0; waited < ms && !atomic_load(&d->stop); waited += 50)
		nanosleep(&ts, NULL);
}

/* Opens the shared client and the watch, once a second until both exist. */
static qml_watch *
connect_all(dash *d)
{
	qml_watch  *w = NULL;

	while (!atomic_load(&d->stop))
	{
		if (dash_open_client(d) &&
			qml_watch_open(dash_client(d), "qml dashboard live", &w) == QML_OK)
			return w;
		set_up(d, false);
		nap_ms(d, 1000);
	}
	return NULL;
}

static void *
live_main(void *arg)
{
	dash	   *d = arg;
	qml_watch  *w = connect_all(d);
	int			fast = d->opts->interval_ms;
	int64_t		last_change = mono_us(),
				last_tp = 0,
				last_finished = -1;
	uint64_t	counted = 0;

	while (w && !atomic_load(&d->stop))
	{
		int64_t		t0 = mono_us();
		qml_status	st;
		bool		idle,
					ok;
		int			notified = 0;
		int64_t		finished = 0,
					deadline,
					left_ms;

		if (poll_stats(d, w, &st, &finished))
			last_change = t0;
		/* the chart every 10 s, and within a second of jobs finishing */
		if (st == QML_OK && (t0 - last_tp >= THROUGHPUT_EVERY_US ||
							 (finished != last_finished && t0 - last_tp >= 1000000)))
		{
			st = poll_throughput(d, w);
			last_tp = t0;
			last_finished = finished;
		}
		ok = st == QML_OK;
		log_error(st);
		set_up(d, st != QML_ERR_CONNECT);
		atomic_fetch_add(&d->live_queries, qml_watch_statements(w) - counted);
		counted = qml_watch_statements(w);
		if (!ok)
		{
			nap_ms(d, 1000);
			continue;
		}
		/*
		 * Wait out the cadence whatever arrives: qml_watch_wait returns at
		 * each notification, and enqueues may notify many times a second. A
		 * notification only shortens an idle wait to the fast cadence.
		 */
		idle = t0 - last_change > IDLE_AFTER_US;
		deadline = t0 + (int64_t) (idle ? IDLE_INTERVAL_MS : fast) * 1000;
		while ((left_ms = (deadline - mono_us()) / 1000) > 0 && !atomic_load(&d->stop))
		{
			if (qml_watch_wait(w, (int) left_ms, &notified) != QML_OK)
				break;
			if (idle && notified > 0)
			{
				idle = false;
				last_change = mono_us();
				deadline = t0 + (int64_t) fast * 1000;
			}
		}
	}
	if (w)
		atomic_fetch_add(&d->live_queries, qml_watch_statements(w) - counted);
	qml_watch_close(w);
	return NULL;
}

void
live_start(dash *d)
{
	if (pthread_create(&d->live_thread, NULL, live_main, d) == 0)
		d->live_started = true;
}

void
live_stop(dash *d)
{
	atomic_store(&d->stop, true);
	if (d->live_started)
		pthread_join(d->live_thread, NULL);
	json_decref(d->stats);
	json_decref(d->throughput);
	d->stats = d->throughput = NULL;
}
