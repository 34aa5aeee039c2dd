/*
 * auth.c
 *	  Who may ask, and who may write.
 *
 *	  Ask: a web page of another site must not read the dashboard through
 *	  the browser of someone who can reach it. Two ways it could: its own
 *	  WebSocket to /ws (browsers apply no same-origin rule to WebSockets,
 *	  only send an Origin header), and DNS rebinding (its host name made to
 *	  resolve to 127.0.0.1, so that the browser takes the dashboard for the
 *	  page's own site and lets it read every route). So a request whose
 *	  Origin names another host than its Host is refused, and a dashboard
 *	  that listens on a loopback address answers only to a Host that names
 *	  one (localhost, 127.x.x.x, [::1]). Clients that are not browsers send
 *	  Host as they please and no Origin: nothing changes for them.
 *
 *	  Write: without a token the dashboard is read-only; with one, every
 *	  write route needs "Authorization: Bearer <token>" (401 without, 403
 *	  with a wrong one). The comparison takes the same time wherever the
 *	  first difference is, so timing does not reveal the token's prefix.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dashboard.h"

/* Equal strings; time depends on the lengths only, not the contents. */
static bool
same_secret(const char *given, size_t glen, const char *want)
{
	size_t		wlen = strlen(want);
	unsigned	diff = (unsigned) (glen ^ wlen);

	for (size_t i = 0; i < wlen; i++)
		diff |= (unsigned char) want[i] ^ (unsigned char) (glen ? given[i % glen] : 0);
	return diff == 0;
}

/* The length of the host in "host[:port]" or "[v6][:port]". */
static size_t
host_length(const char *authority)
{
	if (authority[0] == '[')
	{
		const char *end = strchr(authority, ']');

		return end ? (size_t) (end - authority) + 1 : strlen(authority);
	}
	return strcspn(authority, ":");
}

/* localhost, 127.x.x.x (digits and dots) or [::1]: a name of this machine */
static bool
loopback_host(const char *host, size_t len)
{
	if ((len == 9 && strncasecmp(host, "localhost", 9) == 0) ||
		(len == 5 && strncmp(host, "[::1]", 5) == 0))
		return true;
	if (len < 4 || strncmp(host, "127.", 4) != 0)
		return false;
	for (size_t i = 4; i < len; i++)
		if (!isdigit((unsigned char) host[i]) && host[i] != '.')
			return false;
	return true;
}

bool
auth_origin_allowed(const struct mg_connection *conn, const dash *d,
					char *why, size_t size)
{
	const char *host = mg_get_header(conn, "Host");
	const char *origin = mg_get_header(conn, "Origin");
	const char *listen = d->opts->listen;

	if (host && loopback_host(listen, host_length(listen)) &&
		!loopback_host(host, host_length(host)))
	{
		snprintf(why, size, "the dashboard listens on %.*s and answers to "
				 "localhost, 127.0.0.1 or [::1] only, not to host \"%.100s\"",
				 (int) host_length(listen), listen, host);
		return false;
	}
	if (origin)
	{
		const char *authority = strstr(origin, "://");

		authority = authority ? authority + 3 : "";
		if (host == NULL || strcasecmp(authority, host) != 0)
		{
			snprintf(why, size, "a page of another site (origin \"%.100s\") may not use "
					 "the dashboard", origin);
			return false;
		}
	}
	return true;
}

bool
auth_write_allowed(struct mg_connection *conn, const dash *d)
{
	const char *token = d->opts->token;
	const char *h;

	if (token == NULL || token[0] == '\0')
	{
		http_error(conn, 403, "read-only: start qml dashboard with --token");
		return false;
	}
	h = mg_get_header(conn, "Authorization");
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
	{
		http_error(conn, 401, "this action needs the header Authorization: Bearer <token>");
		return false;
	}
	h += 7;
	while (*h == ' ')
		h++;
	if (!same_secret(h, strlen(h), token))
	{
		http_error(conn, 403, "wrong token");
		return false;
	}
	return true;
}
