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
 *	  Behind a reverse proxy the browser's Host and Origin name the proxy's
 *	  address (https://jobs.example.com), which the dashboard cannot guess:
 *	  --public-url names it. A Host of one of those hosts passes the
 *	  loopback rule (a proxy passing the browser's Host on), an Origin that
 *	  is one of those origins passes the Origin rule (a proxy sending its
 *	  upstream's address as Host, nginx's default). A page of such an
 *	  origin is the dashboard's own page, served through the proxy. With a
 *	  public Host, only those origins are the dashboard's own.
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

/* Characters of a host name in a URL (a wildcard is no host) */
#define HOST_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._"

/* How many of the first len characters of s are in set (s need not end in NUL) */
static size_t
span(const char *s, size_t len, const char *set)
{
	size_t		n = 0;

	while (n < len && s[n] != '\0' && strchr(set, s[n]) != NULL)
		n++;
	return n;
}

static bool
refuse(char *why, size_t size, const char *what, const char *text, size_t len)
{
	if (why)
		snprintf(why, size, "%s, not \"%.*s\"", what, (int) (len < 200 ? len : 200), text);
	return false;
}

/*
 * Reads "http[s]://HOST[:PORT]" (an Origin header; a URL may end in "/")
 * from the len characters of text into *o. false otherwise, and when why
 * is not NULL, why completes "--public-url ...". No user name, path, query
 * or fragment: the page's paths are absolute, so it is served at a root.
 */
static bool
origin_parse(const char *text, size_t len, dash_origin *o, char *why, size_t size)
{
	size_t		i,
				start;
	long		port = 0;

	memset(o, 0, sizeof(*o));
	if (len >= 8 && strncasecmp(text, "https://", 8) == 0)
		o->https = true;
	else if (len < 7 || strncasecmp(text, "http://", 7) != 0)
		return refuse(why, size, "wants URLs that start with http:// or https://", text, len);
	i = start = o->https ? 8 : 7;
	if (i < len && text[i] == '[')
	{
		i += 1 + span(text + i + 1, len - i - 1, "0123456789abcdefABCDEF:.");
		if (i >= len || text[i] != ']' || i == start + 1)
			i = start;			/* no host */
		else
			i++;
	}
	else
		i += span(text + i, len - i, HOST_CHARS);
	if (i == start || i - start >= sizeof(o->host) ||
		(i < len && strchr(":/?#", text[i]) == NULL))
		return refuse(why, size, "wants a host after the scheme (letters, digits, '-', '.', '_', "
					  "or an [IPv6] address; no user name or wildcard)", text, len);
	for (size_t k = start; k < i; k++)
		o->host[k - start] = (char) tolower((unsigned char) text[k]);
	o->port = o->https ? 443 : 80;
	if (i < len && text[i] == ':')
	{
		size_t		digits = span(text + i + 1, len - i - 1, "0123456789");

		for (size_t k = 0; k < digits && k < 6; k++)
			port = port * 10 + (text[i + 1 + k] - '0');
		i += 1 + digits;
		if (digits == 0 || digits > 5 || port < 1 || port > 65535 ||
			(i < len && strchr("/?#", text[i]) == NULL))
			return refuse(why, size, "wants a port from 1 to 65535 after the host's ':'", text, len);
		o->port = (int) port;
	}
	if (i < len && !(i + 1 == len && text[i] == '/'))
		return refuse(why, size, "wants the address of the dashboard's root: no path, "
					  "query or fragment (it is served at the root of its host)", text, len);
	return true;
}

bool
auth_public_add(dash_options *o, const char *list, char *why, size_t size)
{
	const char *p = list;

	for (;;)
	{
		size_t		len;

		p += strspn(p, " ");
		len = strcspn(p, ",");
		while (len > 0 && p[len - 1] == ' ')
			len--;
		if (len == 0)
		{
			snprintf(why, size, "wants a URL between commas, not an empty one in \"%.200s\"", list);
			return false;
		}
		if (o->npublic == DASH_MAX_PUBLIC)
		{
			snprintf(why, size, "takes at most %d URLs", DASH_MAX_PUBLIC);
			return false;
		}
		if (!origin_parse(p, len, &o->public_urls[o->npublic], why, size))
			return false;
		o->npublic++;
		p += strcspn(p, ",");
		if (*p == '\0')
			return true;
		p++;
	}
}

void
auth_origin_format(const dash_origin *o, char *buf, size_t size)
{
	if (o->port == (o->https ? 443 : 80))
		snprintf(buf, size, "%s://%s/", o->https ? "https" : "http", o->host);
	else
		snprintf(buf, size, "%s://%s:%d/", o->https ? "https" : "http", o->host, o->port);
}

/* Whether Host names the host of a --public-url, on any port ($host drops it) */
static bool
public_host(const dash_options *o, const char *host)
{
	size_t		len = host_length(host);

	for (int i = 0; i < o->npublic; i++)
		if (strlen(o->public_urls[i].host) == len &&
			strncasecmp(o->public_urls[i].host, host, len) == 0)
			return true;
	return false;
}

/* Whether Origin is the origin of a --public-url: scheme, host and port */
static bool
public_origin(const dash_options *o, const char *origin)
{
	dash_origin got;

	if (o->npublic == 0 || !origin_parse(origin, strlen(origin), &got, NULL, 0))
		return false;
	for (int i = 0; i < o->npublic; i++)
		if (o->public_urls[i].https == got.https && o->public_urls[i].port == got.port &&
			strcmp(o->public_urls[i].host, got.host) == 0)
			return true;
	return false;
}

/*
 * X-Forwarded-Host is not read: whoever reaches the listener can send it
 * (a page of a rebound host name too: it is no header browsers forbid),
 * and the dashboard cannot tell a trusted proxy's from a client's. Naming
 * the public address is the operator's job (--public-url).
 */
bool
auth_origin_allowed(const struct mg_connection *conn, const dash *d,
					char *why, size_t size)
{
	const char *host = mg_get_header(conn, "Host");
	const char *origin = mg_get_header(conn, "Origin");
	const char *listen = d->opts->listen;

	if (host && loopback_host(listen, host_length(listen)) &&
		!loopback_host(host, host_length(host)) && !public_host(d->opts, host))
	{
		snprintf(why, size, "the dashboard listens on %.*s and answers to "
				 "localhost, 127.0.0.1 or [::1] only, not to host \"%.100s\" "
				 "(behind a reverse proxy: qml dashboard --public-url URL)",
				 (int) host_length(listen), listen, host);
		return false;
	}
	if (origin && !public_origin(d->opts, origin))
	{
		const char *authority = strstr(origin, "://");

		/*
		 * For a public host its origins are known, scheme and port
		 * included: comparing with Host (which has neither) would take
		 * http://jobs.example.com for https://jobs.example.com's own.
		 * (A loopback name keeps the rule it had without --public-url.)
		 */
		authority = authority ? authority + 3 : "";
		if (host == NULL || strcasecmp(authority, host) != 0 ||
			(public_host(d->opts, host) && !loopback_host(host, host_length(host))))
		{
			snprintf(why, size, "a page of another site (origin \"%.100s\") may not use "
					 "the dashboard (behind a reverse proxy: qml dashboard --public-url URL)",
					 origin);
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
