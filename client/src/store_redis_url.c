/*
 * store_redis_url.c
 *	  The Redis store's URL:
 *		redis://[[user]:password@]host[:port][/db][?options]
 *		rediss://...		(TLS)
 *		redis+cluster://[[user]:password@]host:port[,host:port...][?options]
 *	  options: prefix=NAME (key prefix, "qml"), ttl=SECONDS (how long a
 *	  finished job is kept, 86400; 0 = until deleted), history=N (events
 *	  kept per job, 32; 0 = none), prune_failed=1 (failed jobs expire too).
 *	  The password may be percent-encoded.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_redis.h"

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char) tolower((unsigned char) c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decodes [s, s+n) into out (size); false when too long or bad. */
static bool
decode(const char *s, size_t n, char *out, size_t size)
{
	size_t		o = 0;

	for (size_t i = 0; i < n; i++)
	{
		char		c = s[i];

		if (c == '%')
		{
			if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
				return false;
			c = (char) (hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		}
		if (o + 1 >= size)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	return true;
}

static bool
parse_int(const char *s, size_t n, long min, long max, long *out)
{
	char		buf[32];
	char	   *end;
	long		v;

	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char) buf[i]))
			return false;
	v = strtol(buf, &end, 10);
	if (*end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* host[:port] or [v6]:port in [s, s+n) */
static qml_status
parse_addr(const char *s, size_t n, rds_addr *a)
{
	const char *host = s;
	size_t		hlen = n;
	const char *port = NULL;
	long		num = 6379;

	if (n > 0 && s[0] == '[')
	{
		const char *close = memchr(s, ']', n);

		if (close == NULL)
			return qml__error(QML_ERR_INVALID, "invalid Redis URL: unclosed [ in host");
		host = s + 1;
		hlen = (size_t) (close - host);
		if (close + 1 < s + n)
		{
			if (close[1] != ':')
				return qml__error(QML_ERR_INVALID, "invalid Redis URL: junk after ]");
			port = close + 2;
		}
	}
	else
	{
		const char *colon = memchr(s, ':', n);

		if (colon)
		{
			hlen = (size_t) (colon - s);
			port = colon + 1;
		}
	}
	if (port && !parse_int(port, (size_t) (s + n - port), 1, 65535, &num))
		return qml__error(QML_ERR_INVALID, "invalid Redis URL: bad port \"%.*s\"",
						  (int) (s + n - port), port);
	if (hlen == 0)
		return qml__error(QML_ERR_INVALID, "invalid Redis URL: no host");
	if (hlen >= sizeof(a->host))
		return qml__error(QML_ERR_INVALID, "invalid Redis URL: host too long");
	memcpy(a->host, host, hlen);
	a->host[hlen] = '\0';
	a->port = (int) num;
	return QML_OK;
}

static qml_status
parse_option(const char *s, size_t n, rds_url *out)
{
	const char *eq = memchr(s, '=', n);
	size_t		klen;
	const char *v;
	size_t		vlen;
	long		num;

	if (eq == NULL)
		return qml__error(QML_ERR_INVALID, "invalid Redis URL: option \"%.*s\" has no value",
						  (int) n, s);
	klen = (size_t) (eq - s);
	v = eq + 1;
	vlen = (size_t) (s + n - v);
	if (klen == 6 && strncmp(s, "prefix", 6) == 0)
	{
		if (vlen == 0 || !decode(v, vlen, out->prefix, sizeof(out->prefix)) ||
			strpbrk(out->prefix, "{}") != NULL)
			return qml__error(QML_ERR_INVALID,
							  "invalid Redis URL: prefix must be 1 to %d characters without { or }",
							  (int) sizeof(out->prefix) - 1);
		return QML_OK;
	}
	if (klen == 3 && strncmp(s, "ttl", 3) == 0 &&
		parse_int(v, vlen, 0, 100L * 365 * 86400, &num))
	{
		out->ttl_ms = (int64_t) num * 1000;
		return QML_OK;
	}
	if (klen == 7 && strncmp(s, "history", 7) == 0 &&
		parse_int(v, vlen, 0, 10000, &num))
	{
		out->history = (int) num;
		return QML_OK;
	}
	if (klen == 12 && strncmp(s, "prune_failed", 12) == 0 &&
		parse_int(v, vlen, 0, 1, &num))
	{
		out->prune_failed = num == 1;
		return QML_OK;
	}
	return qml__error(QML_ERR_INVALID, "invalid Redis URL: bad option \"%.*s\"",
					  (int) n, s);
}

/* The scheme: sets TLS or cluster and *rest to what follows "://". */
static qml_status
parse_scheme(const char *url, rds_url *out, const char **rest)
{
	if (strncmp(url, "redis://", 8) == 0)
		*rest = url + 8;
	else if (strncmp(url, "rediss://", 9) == 0)
	{
		out->tls = true;
		*rest = url + 9;
	}
	else if (strncmp(url, "redis+cluster://", 16) == 0)
	{
		out->cluster = true;
		*rest = url + 16;
	}
	else
		return qml__error(QML_ERR_INVALID, "not a Redis URL: \"%s\"", url);
	return QML_OK;
}

/* [[user]:password@] at the start of [p, end); *hosts: what follows it. */
static qml_status
parse_credentials(const char *p, const char *end, rds_url *out,
				  const char **hosts)
{
	const char *at = NULL;
	const char *colon;

	/* the last '@' ends the credentials (a password may hold one) */
	for (const char *q = p; q < end; q++)
		if (*q == '@')
			at = q;
	if (at == NULL)
	{
		*hosts = p;
		return QML_OK;
	}
	colon = memchr(p, ':', (size_t) (at - p));
	if (colon == NULL)
		return qml__error(QML_ERR_INVALID,
						  "invalid Redis URL: credentials must be [user]:password@");
	if (!decode(p, (size_t) (colon - p), out->user, sizeof(out->user)) ||
		!decode(colon + 1, (size_t) (at - colon - 1), out->password,
				sizeof(out->password)))
		return qml__error(QML_ERR_INVALID,
						  "invalid Redis URL: bad user or password encoding");
	*hosts = at + 1;
	return QML_OK;
}

/* The optional /db in [hosts, end); *hosts_end: where the hosts stop. */
static qml_status
parse_db(const char *hosts, const char *end, rds_url *out,
		 const char **hosts_end)
{
	const char *slash = NULL;
	long		db = 0;

	for (const char *q = hosts; q < end && slash == NULL; q++)
		if (*q == '/')
			slash = q;
	*hosts_end = slash ? slash : end;
	if (slash == NULL)
		return QML_OK;
	if (slash + 1 < end &&
		!parse_int(slash + 1, (size_t) (end - slash - 1), 0, 1000000, &db))
		return qml__error(QML_ERR_INVALID,
						  "invalid Redis URL: database must be a number, not \"%.*s\"",
						  (int) (end - slash - 1), slash + 1);
	if (out->cluster && db != 0)
		return qml__error(QML_ERR_INVALID,
						  "invalid Redis URL: a cluster has database 0 only");
	out->db = (int) db;
	return QML_OK;
}

/* host:port[,host:port...] in [hosts, end) into the seeds. */
static qml_status
parse_hosts(const char *url, const char *hosts, const char *end, rds_url *out)
{
	for (const char *h = hosts; h < end;)
	{
		const char *comma = memchr(h, ',', (size_t) (end - h));
		const char *e = comma ? comma : end;
		qml_status	st;

		if (out->nseeds == RDS_MAX_NODES)
			return qml__error(QML_ERR_INVALID, "invalid Redis URL: more than %d hosts",
							  RDS_MAX_NODES);
		if ((st = parse_addr(h, (size_t) (e - h), &out->seeds[out->nseeds])) != QML_OK)
			return st;
		out->nseeds++;
		h = comma ? comma + 1 : end;
	}
	if (out->nseeds == 0)
		return qml__error(QML_ERR_INVALID, "invalid Redis URL: no host in \"%s\"", url);
	if (out->nseeds > 1 && !out->cluster)
		return qml__error(QML_ERR_INVALID,
						  "invalid Redis URL: several hosts need redis+cluster://");
	return QML_OK;
}

/* The options after '?' (query: NULL when none), '&' between them. */
static qml_status
parse_options(const char *query, rds_url *out)
{
	for (const char *o = query ? query + 1 : NULL; o && *o;)
	{
		const char *amp = strchr(o, '&');
		size_t		n = amp ? (size_t) (amp - o) : strlen(o);
		qml_status	st;

		if (n > 0 && (st = parse_option(o, n, out)) != QML_OK)
			return st;
		o = amp ? amp + 1 : NULL;
	}
	return QML_OK;
}

qml_status
qml__rds_url_parse(const char *url, rds_url *out)
{
	const char *p = NULL;
	const char *query;
	const char *end;
	const char *hosts = NULL;
	const char *hosts_end = NULL;
	qml_status	st;

	memset(out, 0, sizeof(*out));
	strcpy(out->prefix, "qml");
	out->ttl_ms = 86400 * 1000LL;
	out->history = 32;

	if ((st = parse_scheme(url, out, &p)) != QML_OK)
		return st;
	query = strchr(p, '?');
	end = query ? query : p + strlen(p);
	if ((st = parse_credentials(p, end, out, &hosts)) != QML_OK ||
		(st = parse_db(hosts, end, out, &hosts_end)) != QML_OK ||
		(st = parse_hosts(url, hosts, hosts_end, out)) != QML_OK)
		return st;
	return parse_options(query, out);
}
