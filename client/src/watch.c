/*
 * watch.c
 *	  A live connection for a process that follows the queues (the
 *	  dashboard's poller): one session of its own that LISTENs on channel
 *	  qml, waits for notifications, and reads the overview and throughput
 *	  over the same session (the store's QML_SESSION_WATCH session), so
 *	  watching costs the database one
 *	  connection however many people look.
 *
 * It is not pooled: a pooled connection with pending notifications would
 * look stale to the pool (pool.c). When the server goes away the call that
 * notices reports QML_ERR_CONNECT; the next call connects again.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "store.h"

struct qml_watch
{
	qml_client *client;
	char	   *appname;
	qml_store_session *session; /* NULL until (re)connected */
	uint64_t	statements;
};

static void
drop_conn(qml_watch *w)
{
	if (w->session)
		w->client->store->ops->session_close(w->session);
	w->session = NULL;
}

/* Opens a watch session (PostgreSQL: connects and LISTENs) when there is no live one. */
static qml_status
ensure_conn(qml_watch *w)
{
	const qml_store_ops *ops = w->client->store->ops;
	qml_session_config cfg = {.kind = QML_SESSION_WATCH, .appname = w->appname};

	if (w->session && ops->session_ok(w->session))
		return QML_OK;
	drop_conn(w);
	w->statements++;
	return ops->session_open(w->client->store, &cfg, &w->session);
}

/* After a failed statement: forget a session that is gone. */
static qml_status
after(qml_watch *w, qml_status st)
{
	if (st != QML_OK && !w->client->store->ops->session_ok(w->session))
		drop_conn(w);
	return st;
}
qml_status
qml_watch_open(qml_client *client, const char *appname, qml_watch **out)
{
	qml_watch  *w;
	qml_status	st;

	if (client == NULL || out == NULL)
		return qml__error(QML_ERR_INVALID, "client and watch must not be NULL");
	*out = NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL ||
		(w->appname = qml__strdup(appname ? appname : "qml watch")) == NULL)
	{
		free(w);
		return qml__nomem();
	}
	w->client = client;
	if ((st = ensure_conn(w)) != QML_OK)
	{
		qml_watch_close(w);
		return st;
	}
	*out = w;
	return QML_OK;
}

void
qml_watch_close(qml_watch *w)
{
	if (w == NULL)
		return;
	drop_conn(w);
	free(w->appname);
	free(w);
}

qml_status
qml_watch_wait(qml_watch *w, int timeout_ms, int *notified)
{
	struct pollfd pfd;
	const qml_store_ops *ops;
	qml_status	st;
	int			got;

	if (notified)
		*notified = 0;
	if (w == NULL)
		return qml__error(QML_ERR_INVALID, "watch must not be NULL");
	if ((st = ensure_conn(w)) != QML_OK)
		return st;
	ops = w->client->store->ops;
	got = ops->session_drain(w->session);
	if (got == 0)
	{
		pfd.fd = ops->session_fd(w->session);
		pfd.events = POLLIN;
		pfd.revents = 0;
		/* fd -1: poll just sleeps, the store has no wakeups to wait for */
		if (poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR)
			return qml__error(QML_ERR_SYSTEM, "poll failed: %s", strerror(errno));
		got = pfd.revents ? ops->session_drain(w->session) : 0;
	}
	if (got < 0)
	{
		drop_conn(w);
		return qml__error(QML_ERR_CONNECT, "lost the connection to the store");
	}
	if (notified)
		*notified = got;
	return QML_OK;
}

qml_status
qml_watch_overview(qml_watch *w, qml_overview **out)
{
	qml_status	st;

	if (w == NULL || out == NULL)
		return qml__error(QML_ERR_INVALID, "watch and overview must not be NULL");
	*out = NULL;
	if ((st = ensure_conn(w)) != QML_OK)
		return st;
	w->statements++;
	return after(w, w->client->store->ops->overview(w->client->store, w->session, out));
}

qml_status
qml_watch_throughput(qml_watch *w, int minutes, qml_throughput_bucket **out,
					 size_t *count)
{
	qml_status	st;

	if (w == NULL || out == NULL || count == NULL)
		return qml__error(QML_ERR_INVALID, "watch and outputs must not be NULL");
	*out = NULL;
	*count = 0;
	if ((st = qml__check_minutes(minutes)) != QML_OK ||
		(st = ensure_conn(w)) != QML_OK)
		return st;
	w->statements++;
	return after(w, w->client->store->ops->throughput(w->client->store, w->session,
													   minutes, out, count));
}

uint64_t
qml_watch_statements(const qml_watch *w)
{
	return w ? w->statements : 0;
}
