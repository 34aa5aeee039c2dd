/*
 * watch.c
 *	  A live connection for a process that follows the queues (the
 *	  dashboard's poller): one session of its own that LISTENs on channel
 *	  qml, waits for notifications, and reads the overview and throughput
 *	  (read.c) over the same session, so watching costs the database one
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

struct qml_watch
{
	qml_client *client;
	char	   *appname;
	qml_conn   *conn;			/* NULL until (re)connected */
	uint64_t	statements;
};

static void
drop_conn(qml_watch *w)
{
	qml__conn_close(w->conn);
	w->conn = NULL;
}

/* Connects and LISTENs when there is no live connection. */
static qml_status
ensure_conn(qml_watch *w)
{
	qml_status	st;

	if (w->conn && qml__conn_ok(w->conn))
		return QML_OK;
	drop_conn(w);
	if ((st = qml__connect(w->client->config, w->appname, &w->conn)) != QML_OK)
		return st;
	w->statements++;
	if ((st = qml__exec(w->conn, "LISTEN qml", 0, NULL, NULL)) != QML_OK)
		drop_conn(w);
	return st;
}

/* After a failed statement: forget a connection that is gone. */
static qml_status
after(qml_watch *w, qml_status st)
{
	if (st != QML_OK && !qml__conn_ok(w->conn))
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

static int
drain_notifies(PGconn *pg)
{
	PGnotify   *n;
	int			count = 0;

	while ((n = PQnotifies(pg)) != NULL)
	{
		count++;
		PQfreemem(n);
	}
	return count;
}

qml_status
qml_watch_wait(qml_watch *w, int timeout_ms, int *notified)
{
	struct pollfd pfd;
	qml_status	st;
	int			got;

	if (notified)
		*notified = 0;
	if (w == NULL)
		return qml__error(QML_ERR_INVALID, "watch must not be NULL");
	if ((st = ensure_conn(w)) != QML_OK)
		return st;
	got = drain_notifies(w->conn->pg);
	if (got == 0)
	{
		pfd.fd = PQsocket(w->conn->pg);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR)
			return qml__error(QML_ERR_SYSTEM, "poll failed: %s", strerror(errno));
		if (pfd.revents && (!PQconsumeInput(w->conn->pg) || !qml__conn_ok(w->conn)))
		{
			drop_conn(w);
			return qml__error(QML_ERR_CONNECT, "lost the connection to the database");
		}
		got = drain_notifies(w->conn->pg);
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
	return after(w, qml__overview_on(w->conn, out));
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
	if ((st = ensure_conn(w)) != QML_OK)
		return st;
	w->statements++;
	return after(w, qml__throughput_on(w->conn, minutes, out, count));
}

uint64_t
qml_watch_statements(const qml_watch *w)
{
	return w ? w->statements : 0;
}
