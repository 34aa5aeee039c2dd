/*
 * cmd_dashboard.c
 *	  qml dashboard: its options; the server is client/dashboard/.
 */
#include <stdlib.h>

#include "cli.h"
#include "../dashboard/dashboard.h"

enum
{
	OPT_LISTEN = 6000, OPT_TOKEN, OPT_DATABASE, OPT_INTERVAL, OPT_PUBLIC_URL
};

int
cli_public_url(cli *g, const char *cmd, dash_options *o, const char *arg)
{
	const char *env = getenv("QML_DASHBOARD_PUBLIC_URL");
	char		why[400];

	if (arg && !auth_public_add(o, arg, why, sizeof(why)))
		return cli_usage_error(g, cmd, "--public-url %s", why);
	/* the options replace the environment's; an empty variable is none */
	if (arg == NULL && o->npublic == 0 && env && env[0] &&
		!auth_public_add(o, env, why, sizeof(why)))
		return cli_usage_error(g, cmd, "QML_DASHBOARD_PUBLIC_URL %s", why);
	return EXIT_OK;
}

int
cmd_dashboard(cli *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, OPT_LISTEN},
		{"token", required_argument, NULL, OPT_TOKEN},
		{"database", required_argument, NULL, OPT_DATABASE},
		{"interval", required_argument, NULL, OPT_INTERVAL},
		{"public-url", required_argument, NULL, OPT_PUBLIC_URL},
		CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}
	};
	dash_options o = {.listen = "127.0.0.1:8080", .token = getenv("QML_DASHBOARD_TOKEN"), .interval_ms = 250};
	long		interval;
	int			c,
				rc;

	while ((c = cli_getopt(g, "dashboard", argc, argv, opts)) != -1)
	{
		if (c == CLI_HELP)
			return cli_help("dashboard");
		if (c == CLI_BAD)
			return EXIT_USAGE;
		if (c == OPT_LISTEN && !dashboard_listen_ok(optarg))
			return cli_usage_error(g, "dashboard", "--listen wants one HOST:PORT (PORT from 0 to 65535), not \"%s\"", optarg);
		if (c == OPT_LISTEN)
			o.listen = optarg;
		else if (c == OPT_TOKEN)
			o.token = optarg;
		else if (c == OPT_DATABASE)
			g->database_url = optarg;
		else if (c == OPT_INTERVAL)
		{
			if (!cli_parse_int(optarg, 250, 60000, &interval))
				return cli_usage_error(g, "dashboard", "--interval must be between 250 and 60000 (ms)");
			o.interval_ms = (int) interval;
		}
		else if (c == OPT_PUBLIC_URL && (rc = cli_public_url(g, "dashboard", &o, optarg)) != EXIT_OK)
			return rc;
	}
	if (optind < argc)
		return cli_usage_error(g, "dashboard", "unexpected argument \"%s\"", argv[optind]);
	if ((rc = cli_public_url(g, "dashboard", &o, NULL)) != EXIT_OK)
		return rc;
	/* "Authorization: Bearer <token>" carries no blank or control character */
	for (const char *p = o.token; p && *p; p++)
		if ((unsigned char) *p <= ' ' || (unsigned char) *p >= 0x7f)
			return cli_usage_error(g, "dashboard", "the token (--token or QML_DASHBOARD_TOKEN) must be "
								   "printable ASCII without blanks: it is sent in an HTTP header");
	o.database_url = g->database_url;
	return dashboard_run(&o);
}
