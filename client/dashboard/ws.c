/*
 * ws.c
 *	  WebSocket /ws: the open pages. A page gets the latest stats and
 *	  throughput when it connects, then whatever live.c's poller pushes; it
 *	  need not send anything. Pushes go to every page from the poller's
 *	  thread, each write under the connection's lock (civetweb runs a
 *	  connection's own callbacks on another thread).
 *
 * The list's lock is held while writing, so a connection cannot be closed
 * and freed under a push: its close callback waits for the lock.
 */
#include <string.h>
#include <stdlib.h>

#include "dashboard.h"

static pthread_mutex_t ws_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mg_connection *clients[DASH_MAX_WS];

static void
send_text(struct mg_connection *conn, const char *text)
{
	mg_lock_connection(conn);
	mg_websocket_write(conn, MG_WEBSOCKET_OPCODE_TEXT, text, strlen(text));
	mg_unlock_connection(conn);
}

static char *
message(const char *type, json_t *data)
{
	json_t	   *m = json_pack("{s:s,s:O}", "type", type, "data", data);
	char	   *text = m ? json_dumps(m, JSON_COMPACT) : NULL;

	json_decref(m);
	return text;
}

static int
ws_connect(const struct mg_connection *conn, void *cbdata)
{
	dash	   *d = cbdata;
	char		why[300];

	/*
	 * A page of another site may open a WebSocket here (no same-origin
	 * rule applies to them): refused with a 403 before the handshake.
	 * civetweb has begun the handshake's response: the status line and
	 * headers are written here in full.
	 */
	if (!auth_origin_allowed(conn, d, why, sizeof(why)))
	{
		json_t	   *body = json_pack("{s:s}", "error", why);
		char	   *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

		json_decref(body);
		mg_printf((struct mg_connection *) conn,
				  "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
				  "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
				  text ? strlen(text) : 0, text ? text : "");
		free(text);
		return 1;
	}
	/* refuse the handshake beyond the limit: each page holds a thread */
	return atomic_load(&d->ws_clients) >= DASH_MAX_WS ? 1 : 0;
}

static void
ws_ready(struct mg_connection *conn, void *cbdata)
{
	dash	   *d = cbdata;
	json_t	   *stats = live_stats(d);
	json_t	   *tp = live_throughput(d);
	char	   *text;
	bool		added = false;

	pthread_mutex_lock(&ws_mu);
	for (int i = 0; i < DASH_MAX_WS && !added; i++)
	{
		if (clients[i] == NULL)
		{
			clients[i] = conn;
			added = true;
		}
	}
	if (added)
		atomic_fetch_add(&d->ws_clients, 1);
	if (stats && (text = message("stats", stats)) != NULL)
	{
		send_text(conn, text);
		free(text);
	}
	else if (!atomic_load(&d->db_up))
		send_text(conn, "{\"type\":\"db\",\"up\":false}");
	if (tp && (text = message("throughput", tp)) != NULL)
	{
		send_text(conn, text);
		free(text);
	}
	pthread_mutex_unlock(&ws_mu);
	json_decref(stats);
	json_decref(tp);
}

/* Pings are answered by civetweb; a close frame ends the connection. */
static int
ws_data(struct mg_connection *conn, int bits, char *data, size_t len, void *cbdata)
{
	(void) conn;
	(void) data;
	(void) len;
	(void) cbdata;
	return (bits & 0x0f) == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE ? 0 : 1;
}

static void
ws_close(const struct mg_connection *conn, void *cbdata)
{
	dash	   *d = cbdata;

	pthread_mutex_lock(&ws_mu);
	for (int i = 0; i < DASH_MAX_WS; i++)
	{
		if (clients[i] == conn)
		{
			clients[i] = NULL;
			atomic_fetch_sub(&d->ws_clients, 1);
		}
	}
	pthread_mutex_unlock(&ws_mu);
}

void
ws_register(dash *d)
{
	mg_set_websocket_handler(d->ctx, "/ws", ws_connect, ws_ready, ws_data, ws_close, d);
}

static void
broadcast_text(const char *text)
{
	pthread_mutex_lock(&ws_mu);
	for (int i = 0; i < DASH_MAX_WS; i++)
		if (clients[i])
			send_text(clients[i], text);
	pthread_mutex_unlock(&ws_mu);
}

void
ws_broadcast(dash *d, const char *type, json_t *data)
{
	char	   *text;

	if (atomic_load(&d->ws_clients) == 0 || (text = message(type, data)) == NULL)
		return;
	broadcast_text(text);
	free(text);
}

void
ws_broadcast_db(dash *d, bool up)
{
	if (atomic_load(&d->ws_clients) > 0)
		broadcast_text(up ? "{\"type\":\"db\",\"up\":true}" : "{\"type\":\"db\",\"up\":false}");
}
