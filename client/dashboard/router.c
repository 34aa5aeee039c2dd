/*
 * router.c
 *	  The REST API's routing: from a request's method and raw path to the
 *	  route, with the job id or the queue or recurring job's name taken
 *	  out of the path. No I/O: routes.c answers what this decides.
 */
#include <string.h>

#include "router.h"

static const struct
{
	const char *path;
	route_id	id;
}			reads[] = {
	{"/healthz", RT_HEALTHZ}, {"/metrics", RT_METRICS}, {"/api/stats", RT_STATS},
	{"/api/queues", RT_QUEUES}, {"/api/jobs", RT_JOBS}, {"/api/running", RT_RUNNING},
	{"/api/recurring", RT_RECURRING}, {"/api/throughput", RT_THROUGHPUT},
	{"/api/workers", RT_WORKERS},
};

static const struct
{
	const char *prefix;
	const char *action;
	route_id	id;
}			writes[] = {
	{"/api/jobs/", "retry", RT_JOB_RETRY}, {"/api/jobs/", "delete", RT_JOB_DELETE},
	{"/api/queues/", "pause", RT_QUEUE_PAUSE}, {"/api/queues/", "resume", RT_QUEUE_RESUME},
	{"/api/recurring/", "run", RT_RECURRING_RUN},
};

bool
route_parse_id(const char *s, size_t len, int64_t *id)
{
	int64_t		v = 0;

	if (len == 0 || len > 19)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (v > (INT64_MAX - (s[i] - '0')) / 10)
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*id = v;
	return v > 0;
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool
route_decode_path(const char *raw, char *out, size_t size)
{
	size_t		n = 0;

	for (const char *p = raw; *p; p++)
	{
		char		c = *p;

		if (c == '%')
		{
			int			hi = hex_value(p[1]),
						lo = hi < 0 ? -1 : hex_value(p[2]);

			if (lo < 0 || (hi | lo) == 0)
				return false;
			c = (char) (hi * 16 + lo);
			p += 2;
		}
		if (n + 1 >= size)
			return false;
		out[n++] = c;
	}
	if (size == 0)
		return false;
	out[n] = '\0';
	return true;
}

/*
 * "<prefix><name>/<action>" where name may itself hold slashes (a queue's
 * name may): the name is everything between the prefix and the last
 * slash. Returns the action, NULL when the path is not of that form.
 */
static const char *
split_action(const char *path, const char *prefix, char *name, size_t size)
{
	size_t		plen = strlen(prefix);
	const char *slash;
	size_t		len;

	if (strncmp(path, prefix, plen) != 0 || (slash = strrchr(path, '/')) < path + plen)
		return NULL;
	len = (size_t) (slash - (path + plen));
	if (len == 0 || len >= size)
		return NULL;
	memcpy(name, path + plen, len);
	name[len] = '\0';
	return slash + 1;
}

void
route_request(const char *method, const char *path, route *r)
{
	bool		get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	bool		post = strcmp(method, "POST") == 0;
	size_t		i;

	memset(r, 0, offsetof(route, name));
	r->name[0] = '\0';
	for (i = 0; i < sizeof(reads) / sizeof(reads[0]); i++)
	{
		if (strcmp(path, reads[i].path) == 0)
		{
			r->id = get ? reads[i].id : RT_WRONG_METHOD;
			r->allowed = "GET";
			return;
		}
	}
	if (strncmp(path, "/api/jobs/", 10) == 0 && strchr(path + 10, '/') == NULL)
	{
		r->allowed = "GET";
		r->bad = path + 10;
		if (!get)
			r->id = RT_WRONG_METHOD;
		else
			r->id = route_parse_id(path + 10, strlen(path + 10), &r->job_id) ? RT_JOB : RT_BAD_ID;
		return;
	}
	for (i = 0; i < sizeof(writes) / sizeof(writes[0]); i++)
	{
		const char *action = split_action(path, writes[i].prefix, r->name, sizeof(r->name));

		if (action == NULL || strcmp(action, writes[i].action) != 0)
			continue;
		r->allowed = "POST";
		r->bad = r->name;
		if (!post)
			r->id = RT_WRONG_METHOD;
		else if (writes[i].id == RT_JOB_RETRY || writes[i].id == RT_JOB_DELETE)
			r->id = route_parse_id(r->name, strlen(r->name), &r->job_id) ?
				writes[i].id : RT_BAD_ID;
		else
			r->id = writes[i].id;
		return;
	}
	r->name[0] = '\0';
	r->id = RT_OTHER;
}
