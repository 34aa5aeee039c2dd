/*-------------------------------------------------------------------------
 *
 * routes_fuzz.c
 *	  libFuzzer target for the dashboard's request routing
 *	  (client/dashboard/router.c), without a socket.
 *
 * The first byte picks the method (GET, HEAD, POST, PUT, DELETE, lower
 * case, empty), the rest is the raw path.  Checks: a job id is exactly what
 * an independent reading of the digits gives (1 to 19 digits, 1 up to
 * INT64_MAX); a name route rebuilds to the very path it came from, and the
 * name fits its buffer; a wrong method is reported only for a method the
 * route does not take; and routing the rebuilt path gives the same route.
 * The path is first decoded as routes.c does (route_decode_path): it is
 * refused exactly when it holds %00, a % without two hex digits, or does
 * not fit; else every %XX is its byte and encoding the result again gives
 * back a path that decodes to the same.
 *
 * Build and run: make fuzz-routes (test/fuzz/fuzz.mk)
 *
 *-------------------------------------------------------------------------
 */
#include "router.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "get", ""};

static void
die(const char *what, const char *method, const char *path)
{
	fprintf(stderr, "routes_fuzz: %s (%s \"%.300s\")\n", what, method, path);
	abort();
}

/* the id oracle: digits only, 1..19 of them, 0 < value <= INT64_MAX */
static bool
oracle_id(const char *s, int64_t *out)
{
	size_t		len = strlen(s);
	unsigned long long v = 0;

	if (len == 0 || len > 19 || strspn(s, "0123456789") != len)
		return false;
	for (size_t i = 0; i < len; i++)
		v = v * 10 + (unsigned) (s[i] - '0');	/* 19 digits fit in 64 bits */
	if (v == 0 || v > (unsigned long long) INT64_MAX)
		return false;
	*out = (int64_t) v;
	return true;
}

static const char *
action_of(route_id id)
{
	switch (id)
	{
		case RT_JOB_RETRY:
			return "retry";
		case RT_JOB_DELETE:
			return "delete";
		case RT_QUEUE_PAUSE:
			return "pause";
		case RT_QUEUE_RESUME:
			return "resume";
		case RT_RECURRING_RUN:
			return "run";
		default:
			return NULL;
	}
}

static void
check(const char *method, const char *path)
{
	static route r,
				again;
	static char rebuilt[PARAM_MAX + 64];
	bool		get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	bool		post = strcmp(method, "POST") == 0;
	int64_t		id;

	route_request(method, path, &r);
	if (r.id < RT_OTHER || r.id > RT_RECURRING_RUN)
		die("route out of range", method, path);
	if (strlen(r.name) >= PARAM_MAX)
		die("name overflows", method, path);
	switch (r.id)
	{
		case RT_OTHER:
			return;
		case RT_WRONG_METHOD:
			if (r.allowed == NULL || (strcmp(r.allowed, "GET") == 0 ? get : post))
				die("wrong method for a method the route takes", method, path);
			return;
		case RT_BAD_ID:
			if (r.bad == NULL || oracle_id(r.bad, &id))
				die("a valid id called bad", method, path);
			return;
		case RT_JOB:
			if (!get || strncmp(path, "/api/jobs/", 10) != 0 ||
				!oracle_id(path + 10, &id) || id != r.job_id)
				die("job id differs from the oracle", method, path);
			snprintf(rebuilt, sizeof(rebuilt), "/api/jobs/%" PRId64, r.job_id);
			break;
		case RT_JOB_RETRY:
		case RT_JOB_DELETE:
			if (!post || !oracle_id(r.name, &id) || id != r.job_id)
				die("job id differs from the oracle", method, path);
			/* FALLTHROUGH */
		case RT_QUEUE_PAUSE:
		case RT_QUEUE_RESUME:
		case RT_RECURRING_RUN:
			if (!post || r.name[0] == '\0')
				die("a name route without POST or a name", method, path);
			snprintf(rebuilt, sizeof(rebuilt), "/api/%s/%s/%s",
					 r.id <= RT_JOB_DELETE ? "jobs" : r.id == RT_RECURRING_RUN ? "recurring" : "queues",
					 r.name, action_of(r.id));
			if (strcmp(rebuilt, path) != 0)
				die("the name route does not rebuild to its path", method, path);
			break;
		default:
			/* a fixed read path: GET only, exactly that path */
			if (!get || path[0] != '/')
				die("a read route without GET", method, path);
			return;
	}
	route_request(method, rebuilt, &again);
	if (again.id != r.id || again.job_id != r.job_id || strcmp(again.name, r.name) != 0)
		die("the rebuilt path routes elsewhere", method, path);
}

/* the decoding oracle: what route_decode_path must answer for raw */
static bool
oracle_decodable(const char *raw, size_t room)
{
	size_t		n = 0;

	for (const char *p = raw; *p; p++, n++)
	{
		if (*p != '%')
			continue;
		if (!isxdigit((unsigned char) p[1]) || !isxdigit((unsigned char) p[2]) ||
			(p[1] == '0' && p[2] == '0'))
			return false;
		p += 2;
	}
	return n < room;
}

static void
check_decode(const char *method, const char *raw)
{
	static char decoded[256],
				encoded[3 * 256],
				again[256];
	bool		ok = route_decode_path(raw, decoded, sizeof(decoded));
	size_t		n = 0;

	if (ok != oracle_decodable(raw, sizeof(decoded)))
		die(ok ? "a path decoded that should be refused" : "a path refused that should decode", method, raw);
	if (!ok)
		return;
	encoded[0] = '\0';
	for (const unsigned char *p = (const unsigned char *) decoded; *p; p++)
		n += (size_t) snprintf(encoded + n, sizeof(encoded) - n, "%%%02X", *p);
	if (!route_decode_path(encoded, again, sizeof(again)) || strcmp(again, decoded) != 0)
		die("a decoded path encoded again decodes to another", method, raw);
	check(method, decoded);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *path;
	const char *method;

	if (size == 0)
		return 0;
	path = malloc(size);
	memcpy(path, data + 1, size - 1);
	path[size - 1] = '\0';
	method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
	check(method, path);
	check_decode(method, path);
	free(path);
	return 0;
}
