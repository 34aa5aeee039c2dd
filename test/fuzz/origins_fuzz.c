/*-------------------------------------------------------------------------
 *
 * origins_fuzz.c
 *	  libFuzzer target for the dashboard's Host and Origin checks
 *	  (client/dashboard/auth.c): --public-url's parser and
 *	  auth_origin_allowed, without a socket (mg_get_header is stubbed).
 *
 * The input is three lines: a --public-url value, a Host header, an Origin
 * header (a missing line: no such header). Checks: a value accepted gives
 * at most DASH_MAX_PUBLIC entries, each with a non-empty lower-case host of
 * the allowed characters (or a bracketed address) and a port from 1 to
 * 65535, and its canonical form (scheme://host:port) parses back to the
 * same entry; a refused one says why. On a loopback listener a request is
 * let through only when its Host is absent, a loopback name or a listed
 * host (an oracle of its own reads the host name); and for every listed
 * entry, its own origin with its host is let through.
 *
 * Build and run: make fuzz-origins (test/fuzz/fuzz.mk)
 *
 *-------------------------------------------------------------------------
 */
#include "dashboard.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *stub_host;
static const char *stub_origin;

/* civetweb's, for auth.c: the headers of the request being checked */
const char *
mg_get_header(const struct mg_connection *conn, const char *name)
{
	(void) conn;
	if (strcasecmp(name, "Host") == 0)
		return stub_host;
	if (strcasecmp(name, "Origin") == 0)
		return stub_origin;
	return NULL;
}

/* http.c's, for auth_write_allowed (not called here) */
void
http_error(struct mg_connection *conn, int status, const char *fmt,...)
{
	(void) conn;
	(void) status;
	(void) fmt;
}

static void
die(const char *what, const char *a, const char *b)
{
	fprintf(stderr, "origins_fuzz: %s (\"%.200s\", \"%.200s\")\n", what, a ? a : "(none)",
			b ? b : "(none)");
	abort();
}

/* The host name of a Host header, lower case: up to ':' or through ']' */
static void
oracle_host_name(const char *host, char *out, size_t size)
{
	size_t		n = 0;
	bool		v6 = host[0] == '[';

	for (const char *p = host; *p && n + 1 < size; p++)
	{
		if (!v6 && *p == ':')
			break;
		out[n++] = (char) tolower((unsigned char) *p);
		if (v6 && *p == ']')
			break;
	}
	out[n] = '\0';
}

static bool
oracle_loopback(const char *name)
{
	if (strcmp(name, "localhost") == 0 || strcmp(name, "[::1]") == 0)
		return true;
	return strncmp(name, "127.", 4) == 0 && strspn(name + 4, "0123456789.") == strlen(name + 4);
}

static void
check_entry(const dash_origin *o, const char *list)
{
	char		canon[300];
	dash_options again = {.listen = "127.0.0.1:8080"};
	char		why[400];

	if (o->host[0] == '\0' || o->port < 1 || o->port > 65535)
		die("an accepted entry without a host or with a bad port", list, o->host);
	for (const char *p = o->host; *p; p++)
		if (isupper((unsigned char) *p) ||
			!(isalnum((unsigned char) *p) || strchr("-._[]:", *p)))
			die("an accepted host holds a character it may not", list, o->host);
	if ((o->host[0] == '[') != (strchr(o->host, ']') != NULL))
		die("an accepted host with one bracket", list, o->host);
	snprintf(canon, sizeof(canon), "%s://%s:%d", o->https ? "https" : "http", o->host, o->port);
	if (!auth_public_add(&again, canon, why, sizeof(why)) || again.npublic != 1 ||
		memcmp(&again.public_urls[0], o, sizeof(*o)) != 0)
		die("the canonical form does not parse back to the entry", list, canon);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *text = malloc(size + 1);
	char	   *lines[3] = {NULL, NULL, NULL};
	char	   *p;
	dash_options *o = calloc(1, sizeof(dash_options));
	dash		d;
	char		why[400];
	bool		ok;

	memcpy(text, data, size);
	text[size] = '\0';
	p = text;
	for (int i = 0; i < 3 && p; i++)
	{
		lines[i] = p;
		p = strchr(p, '\n');
		if (p)
			*p++ = '\0';
	}
	o->listen = "127.0.0.1:8080";
	why[0] = '\0';
	ok = auth_public_add(o, lines[0], why, sizeof(why));
	if (!ok && why[0] == '\0')
		die("a refused --public-url says no why", lines[0], NULL);
	if (o->npublic > DASH_MAX_PUBLIC)
		die("more entries than DASH_MAX_PUBLIC", lines[0], NULL);
	for (int i = 0; i < o->npublic; i++)
		check_entry(&o->public_urls[i], lines[0]);

	memset(&d, 0, sizeof(d));
	d.opts = o;
	stub_host = lines[1];
	stub_origin = lines[2];
	if (auth_origin_allowed(NULL, &d, why, sizeof(why)) && stub_host)
	{
		char		name[300];
		bool		listed = false;

		oracle_host_name(stub_host, name, sizeof(name));
		for (int i = 0; i < o->npublic; i++)
			listed |= strcmp(o->public_urls[i].host, name) == 0;
		if (!oracle_loopback(name) && !listed)
			die("a Host neither loopback nor listed let through", stub_host, stub_origin);
	}
	for (int i = 0; i < o->npublic; i++)
	{
		char		origin[300];

		snprintf(origin, sizeof(origin), "%s://%s:%d", o->public_urls[i].https ? "https" : "http",
				 o->public_urls[i].host, o->public_urls[i].port);
		stub_host = o->public_urls[i].host;
		stub_origin = origin;
		if (!auth_origin_allowed(NULL, &d, why, sizeof(why)))
			die("a listed origin refused for its own host", stub_host, why);
	}
	free(o);
	free(text);
	return 0;
}
