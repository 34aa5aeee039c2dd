/*
 * server.c
 *	  The dashboard's life: the shared libqml client, civetweb started on
 *	  the listen address with the limits and handlers, the poller, and a
 *	  clean stop on SIGINT or SIGTERM.
 *
 * civetweb runs each request and each WebSocket on a thread of its pool:
 * enough threads for DASH_MAX_WS pages and requests besides. The client's
 * pool is small: the REST API's requests are short, and the live view
 * costs one connection of its own (live.c).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard.h"

#define DASH_POOL_MAX 4

qml_client *
dash_client(dash *d)
{
	qml_client *c;

	pthread_mutex_lock(&d->mu);
	c = d->client;
	pthread_mutex_unlock(&d->mu);
	return c;
}

bool
dash_open_client(dash *d)
{
	qml_config *cfg;
	qml_client *c = NULL;
	qml_status	st;

	if (dash_client(d))
		return true;
	if ((cfg = qml_config_new()) == NULL)
		return false;
	qml_config_set_auto_migrate(cfg, false);
	qml_config_set_pool_size(cfg, 1, DASH_POOL_MAX);
	qml_config_set_connect_timeout(cfg, 5);
	qml_config_set_application_name(cfg, "qml dashboard");
	st = qml_config_from_env(cfg);
	if (st == QML_OK && d->opts->database_url)
		st = qml_config_set_database_url(cfg, d->opts->database_url);
	if (st == QML_OK)
		st = qml_client_open(cfg, &c);
	qml_config_free(cfg);
	if (st != QML_OK)
		return false;
	pthread_mutex_lock(&d->mu);
	d->client = c;
	pthread_mutex_unlock(&d->mu);
	return true;
}

/*
 * civetweb wants "127.0.0.1:8080"; "[::1]:8080" too, as "[::1]:8080". The
 * commands check --listen with this as they read it: a usage error.
 */
bool
dashboard_listen_ok(const char *listen)
{
	const char *colon = strrchr(listen, ':');
	size_t		digits = colon ? strlen(colon + 1) : 0;

	/* one address: civetweb would read a comma as a second one to listen on */
	return colon && colon != listen && strchr(listen, ',') == NULL &&
		digits > 0 && digits <= 5 && strspn(colon + 1, "0123456789") == digits &&
		atoi(colon + 1) <= 65535;
}

static int
log_message(const struct mg_connection *conn, const char *message)
{
	(void) conn;
	fprintf(stderr, "qml dashboard: %s\n", message);
	return 1;
}

/* The port the server got (the one asked for, or the system's pick for 0). */
static int
bound_port(dash *d)
{
	struct mg_server_port ports[4];
	int			n = mg_get_server_ports(d->ctx, 4, ports);

	return n > 0 ? ports[0].port : 0;
}

dash *
dashboard_start(const dash_options *opts)
{
	const char *options[] = {
		"listening_ports", opts->listen,
		"num_threads", "128",
		"max_request_size", "8192",	/* request line and headers: 8 KiB */
		"request_timeout_ms", "10000",
		"enable_keep_alive", "no",
		"websocket_timeout_ms", "3600000",
		/* routes.c decodes the path itself, refusing %00 */
		"decode_url", "no",
		NULL
	};
	struct mg_callbacks cb;
	struct mg_init_data init;
	struct mg_error_data err;
	char		errtext[256] = "";
	const char *colon = strrchr(opts->listen, ':');
	dash	   *d;

	if (!dashboard_listen_ok(opts->listen))
	{
		fprintf(stderr, "qml dashboard: --listen wants one HOST:PORT (PORT from 0 to 65535), not \"%s\"\n", opts->listen);
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->opts = opts;
	pthread_mutex_init(&d->mu, NULL);
	pthread_mutex_init(&d->live_mu, NULL);

	memset(&cb, 0, sizeof(cb));
	cb.http_error = http_error_callback;
	cb.log_message = log_message;
	memset(&init, 0, sizeof(init));
	init.callbacks = &cb;
	init.user_data = d;
	init.configuration_options = options;
	memset(&err, 0, sizeof(err));
	err.text = errtext;
	err.text_buffer_size = sizeof(errtext);

	mg_init_library(0);
	if ((d->ctx = mg_start2(&init, &err)) == NULL)
	{
		fprintf(stderr, "qml dashboard: cannot listen on %s: %s\n", opts->listen,
				errtext[0] ? errtext : "unknown error");
		mg_exit_library();
		pthread_mutex_destroy(&d->mu);
		pthread_mutex_destroy(&d->live_mu);
		free(d);
		return NULL;
	}
	mg_set_request_handler(d->ctx, "/", routes_handle, d);
	ws_register(d);
	live_start(d);
	snprintf(d->url, sizeof(d->url), "http://%.*s:%d/", (int) (colon - opts->listen),
			 opts->listen, bound_port(d));
	return d;
}

const char *
dashboard_url(const dash *d)
{
	return d->url;
}

void
dashboard_stop(dash *d)
{
	if (d == NULL)
		return;
	atomic_store(&d->stop, true);
	mg_stop(d->ctx);
	live_stop(d);
	mg_exit_library();
	qml_client_close(d->client);
	pthread_mutex_destroy(&d->mu);
	pthread_mutex_destroy(&d->live_mu);
	free(d);
}

/*
 * Prints the --public-url addresses, one line each after prefix: what a
 * user behind the proxy opens, where the listener's own URL alone would
 * mislead.
 */
void
dashboard_print_public(const dash_options *opts, const char *prefix)
{
	for (int i = 0; i < opts->npublic; i++)
	{
		char		url[300];

		auth_origin_format(&opts->public_urls[i], url, sizeof(url));
		printf("%salso at %s (--public-url)\n", prefix, url);
	}
}

int
dashboard_run(const dash_options *opts)
{
	sigset_t	set;
	dash	   *d;
	int			sig;

	/* SIGINT and SIGTERM are waited for below, in this thread only */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if ((d = dashboard_start(opts)) == NULL)
		return 1;
	printf("qml dashboard: %s (%s)\n", d->url,
		   opts->token && opts->token[0] ? "actions need the token" : "read-only: no --token");
	dashboard_print_public(opts, "qml dashboard: ");
	fflush(stdout);
	while (sigwait(&set, &sig) != 0)
		;
	fprintf(stderr, "qml dashboard: stopping\n");
	dashboard_stop(d);
	return 0;
}
