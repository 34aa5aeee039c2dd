/*
 * config.c
 *	  The client configuration (connection, pool, migrations) and the server
 *	  configuration (workers, queues, timing), from code or the environment.
 *
 * Every setter checks its range, so a server never starts with a setting
 * that would make it spin or hang; an environment variable with a bad
 * value is an error naming the variable, not a silent default.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#define MAX_WORKERS 1024
#define MAX_FETCH_BATCH 1000	/* qml.fetch refuses more */
#define MAX_PREFETCH 10000
#define MAX_QUEUE_NAME 128

/* ---- parsing helpers ---- */

static qml_status
parse_int(const char *var, const char *text, long min, long max, int *out)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(text, &end, 10);
	while (end && isspace((unsigned char) *end))
		end++;
	if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
		return qml__error(QML_ERR_INVALID,
						  "%s must be an integer between %ld and %ld, not \"%s\"",
						  var, min, max, text);
	*out = (int) v;
	return QML_OK;
}

/* A duration in ms: "5m", "30s", "500ms", or a bare number of ms. */
static qml_status
parse_duration(const char *var, const char *text, int min, int max, int *out)
{
	int64_t		v;

	if (!qml_parse_duration_ms(text, 1, &v) || v < min || v > max)
		return qml__error(QML_ERR_INVALID,
						  "%s must be a duration between %d and %d ms (e.g. 500ms, 30s, 5m; "
						  "a bare number is milliseconds), not \"%s\"",
						  var, min, max, text);
	*out = (int) v;
	return QML_OK;
}

static qml_status
parse_bool(const char *var, const char *text, bool *out)
{
	static const char *const yes[] = {"1", "true", "on", "yes", "t", "y"};
	static const char *const no[] = {"0", "false", "off", "no", "f", "n"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
	{
		if (strcasecmp(text, yes[i]) == 0)
		{
			*out = true;
			return QML_OK;
		}
		if (strcasecmp(text, no[i]) == 0)
		{
			*out = false;
			return QML_OK;
		}
	}
	return qml__error(QML_ERR_INVALID, "%s must be true or false, not \"%s\"",
					  var, text);
}

static const char *
env(const char *name)
{
	const char *v = getenv(name);

	return (v && *v) ? v : NULL;
}

static qml_status
set_string(char **field, const char *value)
{
	char	   *copy = qml__strdup(value ? value : "");

	if (copy == NULL)
		return qml__nomem();
	free(*field);
	*field = copy;
	return QML_OK;
}

/* ---- client configuration ---- */

qml_config *
qml_config_new(void)
{
	qml_config *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->database_url = qml__strdup("");
	c->application_name = qml__strdup("qml");
	if (c->database_url == NULL || c->application_name == NULL)
	{
		qml_config_free(c);
		return NULL;
	}
	c->min_connections = 1;
	c->max_connections = 10;
	c->connect_timeout_s = 10;
	c->statement_timeout_ms = 0;
	c->auto_migrate = true;
	return c;
}

void
qml_config_free(qml_config *c)
{
	if (c == NULL)
		return;
	free(c->database_url);
	free(c->application_name);
	free(c);
}

qml_config *
qml__config_copy(const qml_config *c)
{
	qml_config *d = qml_config_new();

	if (d == NULL)
		return NULL;
	if (c == NULL)
		return d;
	if (set_string(&d->database_url, c->database_url) != QML_OK ||
		set_string(&d->application_name, c->application_name) != QML_OK)
	{
		qml_config_free(d);
		return NULL;
	}
	d->min_connections = c->min_connections;
	d->max_connections = c->max_connections;
	d->connect_timeout_s = c->connect_timeout_s;
	d->statement_timeout_ms = c->statement_timeout_ms;
	d->auto_migrate = c->auto_migrate;
	return d;
}

qml_status
qml_config_from_env(qml_config *c)
{
	const char *v;
	int			min = c ? c->min_connections : 0;
	int			max = c ? c->max_connections : 0;
	qml_status	st;

	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	if ((v = env("DATABASE_URL")) != NULL &&
		(st = set_string(&c->database_url, v)) != QML_OK)
		return st;
	if ((v = env("QML_MIN_CONNECTIONS")) != NULL &&
		(st = parse_int("QML_MIN_CONNECTIONS", v, 0, 1000, &min)) != QML_OK)
		return st;
	if ((v = env("QML_MAX_CONNECTIONS")) != NULL &&
		(st = parse_int("QML_MAX_CONNECTIONS", v, 1, 1000, &max)) != QML_OK)
		return st;
	if (min > max)
	{
		/* only one of them came from the environment: follow it */
		if (env("QML_MAX_CONNECTIONS") && !env("QML_MIN_CONNECTIONS"))
			min = max;
		else if (env("QML_MIN_CONNECTIONS") && !env("QML_MAX_CONNECTIONS"))
			max = min;
		else
			return qml__error(QML_ERR_INVALID,
							  "QML_MIN_CONNECTIONS (%d) is above QML_MAX_CONNECTIONS (%d)",
							  min, max);
	}
	c->min_connections = min;
	c->max_connections = max;
	if ((v = env("QML_CONNECT_TIMEOUT")) != NULL &&
		(st = parse_int("QML_CONNECT_TIMEOUT", v, 1, 3600, &c->connect_timeout_s)) != QML_OK)
		return st;
	if ((v = env("QML_STATEMENT_TIMEOUT")) != NULL &&
		(st = parse_int("QML_STATEMENT_TIMEOUT", v, 0, INT_MAX, &c->statement_timeout_ms)) != QML_OK)
		return st;
	if ((v = env("QML_AUTO_MIGRATE")) != NULL &&
		(st = parse_bool("QML_AUTO_MIGRATE", v, &c->auto_migrate)) != QML_OK)
		return st;
	return QML_OK;
}

qml_status
qml_config_set_database_url(qml_config *c, const char *url)
{
	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	return set_string(&c->database_url, url);
}

qml_status
qml_config_set_pool_size(qml_config *c, int min, int max)
{
	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	if (max < 1 || max > 1000 || min < 0 || min > max)
		return qml__error(QML_ERR_INVALID,
						  "pool size must satisfy 0 <= min <= max <= 1000 and max >= 1, not %d..%d",
						  min, max);
	c->min_connections = min;
	c->max_connections = max;
	return QML_OK;
}

qml_status
qml_config_set_connect_timeout(qml_config *c, int seconds)
{
	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	if (seconds < 1 || seconds > 3600)
		return qml__error(QML_ERR_INVALID,
						  "connect timeout must be between 1 and 3600 seconds, not %d",
						  seconds);
	c->connect_timeout_s = seconds;
	return QML_OK;
}

qml_status
qml_config_set_statement_timeout(qml_config *c, int ms)
{
	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	if (ms < 0)
		return qml__error(QML_ERR_INVALID,
						  "statement timeout must not be negative, not %d", ms);
	c->statement_timeout_ms = ms;
	return QML_OK;
}

qml_status
qml_config_set_auto_migrate(qml_config *c, bool on)
{
	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	c->auto_migrate = on;
	return QML_OK;
}

qml_status
qml_config_set_application_name(qml_config *c, const char *name)
{
	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	return set_string(&c->application_name, name ? name : "qml");
}

const char *
qml_config_database_url(const qml_config *c)
{
	return c ? c->database_url : "";
}

int
qml_config_max_connections(const qml_config *c)
{
	return c ? c->max_connections : 0;
}

bool
qml_config_auto_migrate(const qml_config *c)
{
	return c ? c->auto_migrate : false;
}

/* ---- server configuration ---- */

static void
free_queues(qml_server_config *c)
{
	for (size_t i = 0; i < c->nqueues; i++)
		free(c->queues[i]);
	free(c->queues);
	c->queues = NULL;
	c->nqueues = 0;
}

qml_server_config *
qml_server_config_new(const char *name)
{
	qml_server_config *c = calloc(1, sizeof(*c));
	static const char *const dflt[] = {"default"};

	if (c == NULL)
		return NULL;
	c->workers = 4;
	c->fetch_batch = 250;
	c->prefetch = 500;
	c->poll_interval_ms = 1000;
	c->lease_ms = 300000;
	c->job_timeout_ms = 0;
	c->grace_ms = 10000;
	c->flush_interval_ms = 5;
	c->flush_max = 100;
	if (qml_server_config_set_name(c, name) != QML_OK ||
		qml_server_config_set_queues(c, dflt, 1) != QML_OK)
	{
		qml_server_config_free(c);
		return NULL;
	}
	return c;
}

void
qml_server_config_free(qml_server_config *c)
{
	if (c == NULL)
		return;
	free(c->name);
	free_queues(c);
	free(c);
}

qml_server_config *
qml__server_config_copy(const qml_server_config *c)
{
	qml_server_config *d = qml_server_config_new(c ? c->name : NULL);

	if (d == NULL || c == NULL)
		return d;
	if (qml_server_config_set_queues(d, (const char *const *) c->queues,
									 c->nqueues) != QML_OK)
	{
		qml_server_config_free(d);
		return NULL;
	}
	d->workers = c->workers;
	d->fetch_batch = c->fetch_batch;
	d->prefetch = c->prefetch;
	d->durable_claims = c->durable_claims;
	d->poll_interval_ms = c->poll_interval_ms;
	d->lease_ms = c->lease_ms;
	d->job_timeout_ms = c->job_timeout_ms;
	d->grace_ms = c->grace_ms;
	d->flush_interval_ms = c->flush_interval_ms;
	d->flush_max = c->flush_max;
	d->log = c->log;
	d->log_data = c->log_data;
	return d;
}

qml_status
qml_server_config_from_env(qml_server_config *c)
{
	const char *v;
	qml_status	st = QML_OK;

	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	if ((v = env("QML_SERVER_NAME")) != NULL &&
		(st = qml_server_config_set_name(c, v)) != QML_OK)
		return qml__error(st, "QML_SERVER_NAME: %s", qml_errmsg());
	if ((v = env("QML_WORKERS")) != NULL &&
		(st = parse_int("QML_WORKERS", v, 1, MAX_WORKERS, &c->workers)) != QML_OK)
		return st;
	if ((v = env("QML_QUEUES")) != NULL &&
		(st = qml_server_config_set_queues_csv(c, v)) != QML_OK)
		return qml__error(st, "QML_QUEUES: %s", qml_errmsg());
	if ((v = env("QML_FETCH_BATCH")) != NULL &&
		(st = parse_int("QML_FETCH_BATCH", v, 1, MAX_FETCH_BATCH, &c->fetch_batch)) != QML_OK)
		return st;
	if ((v = env("QML_PREFETCH")) != NULL &&
		(st = parse_int("QML_PREFETCH", v, 0, MAX_PREFETCH, &c->prefetch)) != QML_OK)
		return st;
	if ((v = env("QML_DURABLE_CLAIMS")) != NULL &&
		(st = parse_bool("QML_DURABLE_CLAIMS", v, &c->durable_claims)) != QML_OK)
		return st;
	if ((v = env("QML_POLL_INTERVAL")) != NULL &&
		(st = parse_duration("QML_POLL_INTERVAL", v, 10, 3600000, &c->poll_interval_ms)) != QML_OK)
		return st;
	if ((v = env("QML_LEASE")) != NULL &&
		(st = parse_duration("QML_LEASE", v, 200, INT_MAX, &c->lease_ms)) != QML_OK)
		return st;
	if ((v = env("QML_JOB_TIMEOUT")) != NULL &&
		(st = parse_duration("QML_JOB_TIMEOUT", v, 0, INT_MAX, &c->job_timeout_ms)) != QML_OK)
		return st;
	if ((v = env("QML_GRACE_PERIOD")) != NULL &&
		(st = parse_duration("QML_GRACE_PERIOD", v, 0, INT_MAX, &c->grace_ms)) != QML_OK)
		return st;
	return QML_OK;
}

qml_status
qml_server_config_set_name(qml_server_config *c, const char *name)
{
	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	if (name == NULL || *name == '\0')
		name = "qml";
	if (strlen(name) > 100)
		return qml__error(QML_ERR_INVALID,
						  "server name must be at most 100 characters");
	return set_string(&c->name, name);
}

qml_status
qml_server_config_set_workers(qml_server_config *c, int workers)
{
	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	if (workers < 1 || workers > MAX_WORKERS)
		return qml__error(QML_ERR_INVALID,
						  "workers must be between 1 and %d, not %d",
						  MAX_WORKERS, workers);
	c->workers = workers;
	return QML_OK;
}

qml_status
qml_server_config_set_queues(qml_server_config *c, const char *const *queues,
							 size_t count)
{
	char	  **copy;

	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	if (queues == NULL || count == 0)
		return qml__error(QML_ERR_INVALID, "at least one queue is needed");
	for (size_t i = 0; i < count; i++)
	{
		if (queues[i] != NULL && qml__utf8_chars(queues[i]) < 0)
			return qml__error(QML_ERR_INVALID, "queue names must be valid UTF-8");
		if (queues[i] == NULL || queues[i][0] == '\0' ||
			qml__utf8_chars(queues[i]) > MAX_QUEUE_NAME)
			return qml__error(QML_ERR_INVALID,
							  "queue names must have 1 to %d characters",
							  MAX_QUEUE_NAME);
		for (size_t j = 0; j < i; j++)
			if (strcmp(queues[i], queues[j]) == 0)
				return qml__error(QML_ERR_INVALID, "queue \"%s\" is listed twice",
								  queues[i]);
	}
	copy = calloc(count, sizeof(char *));
	if (copy == NULL)
		return qml__nomem();
	for (size_t i = 0; i < count; i++)
	{
		if ((copy[i] = qml__strdup(queues[i])) == NULL)
		{
			for (size_t j = 0; j < i; j++)
				free(copy[j]);
			free(copy);
			return qml__nomem();
		}
	}
	free_queues(c);
	c->queues = copy;
	c->nqueues = count;
	return QML_OK;
}

qml_status
qml_server_config_set_queues_csv(qml_server_config *c, const char *csv)
{
	char	   *text;
	const char *names[256];
	size_t		n = 0;
	char	   *rest;
	bool		empty = false;
	qml_status	st;

	if (csv == NULL)
		return qml__error(QML_ERR_INVALID, "at least one queue is needed");
	if ((text = rest = qml__strdup(csv)) == NULL)
		return qml__nomem();
	/* strsep, not strtok: "a,,b" has an empty name, not two names */
	for (char *tok; (tok = strsep(&rest, ",")) != NULL;)
	{
		char	   *end;

		while (isspace((unsigned char) *tok))
			tok++;
		end = tok + strlen(tok);
		while (end > tok && isspace((unsigned char) end[-1]))
			*--end = '\0';
		if (n == sizeof(names) / sizeof(names[0]))
		{
			free(text);
			return qml__error(QML_ERR_INVALID, "too many queues (at most 256)");
		}
		if (*tok == '\0')
			empty = true;
		else
			names[n++] = tok;
	}
	/* an unset variable in "a,$Q" or a typo: not a name to leave out */
	if (n > 0 && empty)
		st = qml__error(QML_ERR_INVALID,
						"queue names must not be empty: \"%s\" has an empty one "
						"(between, before or after its commas)", csv);
	else
		st = qml_server_config_set_queues(c, names, n);
	free(text);
	return st;
}

qml_status
qml_server_config_set_fetch_batch(qml_server_config *c, int batch)
{
	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	if (batch < 1 || batch > MAX_FETCH_BATCH)
		return qml__error(QML_ERR_INVALID,
						  "fetch batch must be between 1 and %d, not %d",
						  MAX_FETCH_BATCH, batch);
	c->fetch_batch = batch;
	return QML_OK;
}

qml_status
qml_server_config_set_prefetch(qml_server_config *c, int jobs)
{
	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	if (jobs < 0 || jobs > MAX_PREFETCH)
		return qml__error(QML_ERR_INVALID,
						  "prefetch must be between 0 and %d, not %d",
						  MAX_PREFETCH, jobs);
	c->prefetch = jobs;
	return QML_OK;
}

qml_status
qml_server_config_set_durable_claims(qml_server_config *c, bool durable)
{
	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	c->durable_claims = durable;
	return QML_OK;
}

qml_status
qml_server_config_set_poll_interval(qml_server_config *c, int ms)
{
	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	if (ms < 10 || ms > 3600000)
		return qml__error(QML_ERR_INVALID,
						  "poll interval must be between 10 ms and 1 hour, not %d ms", ms);
	c->poll_interval_ms = ms;
	return QML_OK;
}

qml_status
qml_server_config_set_lease(qml_server_config *c, int ms)
{
	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	if (ms < 200)
		return qml__error(QML_ERR_INVALID,
						  "lease must be at least 200 ms, not %d ms", ms);
	c->lease_ms = ms;
	return QML_OK;
}

qml_status
qml_server_config_set_job_timeout(qml_server_config *c, int ms)
{
	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	if (ms < 0)
		return qml__error(QML_ERR_INVALID,
						  "job timeout must not be negative, not %d ms", ms);
	c->job_timeout_ms = ms;
	return QML_OK;
}

qml_status
qml_server_config_set_grace_period(qml_server_config *c, int ms)
{
	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	if (ms < 0)
		return qml__error(QML_ERR_INVALID,
						  "grace period must not be negative, not %d ms", ms);
	c->grace_ms = ms;
	return QML_OK;
}

qml_status
qml_server_config_set_flush(qml_server_config *c, int interval_ms, int max_jobs)
{
	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	if (interval_ms < 1 || interval_ms > 10000 || max_jobs < 1 || max_jobs > 10000)
		return qml__error(QML_ERR_INVALID,
						  "flush interval must be 1..10000 ms and flush size 1..10000 jobs");
	c->flush_interval_ms = interval_ms;
	c->flush_max = max_jobs;
	return QML_OK;
}

qml_status
qml_server_config_set_log(qml_server_config *c, qml_log_fn fn, void *user_data)
{
	if (c == NULL)
		return qml__error(QML_ERR_INVALID, "config must not be NULL");
	c->log = fn;
	c->log_data = user_data;
	return QML_OK;
}

int
qml_server_config_workers(const qml_server_config *c)
{
	return c ? c->workers : 0;
}
