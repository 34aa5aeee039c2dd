/*
 * args.c
 *	  The qml command's command line: the global options before the
 *	  command, each command's options (getopt_long with the common ones
 *	  handled here), and usage errors. Parsing has no side effect but the
 *	  usage error it prints, so test/fuzz/cli_args_fuzz.c can drive it.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void
cli_parse_global(cli *g, int argc, char **argv, cli_args *a)
{
	int			i = 1;

	a->index = 0;
	while (i < argc && argv[i][0] == '-')
	{
		const char *arg = argv[i];

		if (strcmp(arg, "--json") == 0)
			g->json = true;
		else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
		{
			a->what = CLI_ARGS_HELP;
			return;
		}
		else if (strcmp(arg, "--version") == 0)
		{
			a->what = CLI_ARGS_VERSION;
			return;
		}
		else if ((strcmp(arg, "-d") == 0 || strcmp(arg, "--database-url") == 0) && i + 1 < argc)
			g->database_url = argv[++i];
		else if (strncmp(arg, "--database-url=", 15) == 0)
			g->database_url = arg + 15;
		else
		{
			a->what = CLI_ARGS_BAD_OPTION;
			a->index = i;
			return;
		}
		i++;
	}
	a->what = i < argc ? CLI_ARGS_RUN : CLI_ARGS_NO_COMMAND;
	a->index = i;
}

int
cli_usage_error(cli *g, const char *cmd, const char *fmt,...)
{
	char		msg[512];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (g && g->json)
	{
		json_t	   *e = json_pack("{s:{s:s,s:s}}", "error", "status", "usage", "message", msg);
		char	   *text = e ? json_dumps(e, JSON_COMPACT) : NULL;

		if (text)
			fprintf(stderr, "%s\n", text);
		free(text);
		json_decref(e);
	}
	else
		fprintf(stderr, "qml%s%s: %s\nRun \"qml %s%s--help\" for help.\n",
				cmd ? " " : "", cmd ? cmd : "", msg, cmd ? cmd : "", cmd ? " " : "");
	return EXIT_USAGE;
}

/*
 * -d "" is most often an unset variable (-d "$URL"): libpq's defaults
 * would then pick the database, which may be another one than meant, so
 * an empty URL is a usage error, as an empty queue is.
 */
int
cli_empty_url(cli *g, const char *cmd)
{
	return cli_usage_error(g, cmd, "-d/--database-url must not be empty (an unset variable?); "
						   "leave it out to use DATABASE_URL or the PG* variables");
}

int
cli_name_given(cli *g, const char *cmd, const char *what, const char *value)
{
	if (value && *value == '\0')
		return cli_usage_error(g, cmd, "%s must not be empty", what);
	return EXIT_OK;
}

int
cli_getopt(cli *g, const char *cmd, int argc, char **argv, const struct option *opts)
{
	char		shortopts[64] = ":hd:";
	size_t		n = strlen(shortopts);
	int			c;

	/* a long option whose val is a letter has that letter as short option */
	for (const struct option *o = opts; o->name && n + 3 < sizeof(shortopts); o++)
	{
		if (o->flag == NULL && o->val > ' ' && o->val < 127 && o->val != 'h' && o->val != 'd')
		{
			shortopts[n++] = (char) o->val;
			if (o->has_arg == required_argument)
				shortopts[n++] = ':';
		}
	}
	shortopts[n] = '\0';
	opterr = 0;
	for (;;)
	{
		c = getopt_long(argc, argv, shortopts, opts, NULL);
		switch (c)
		{
			case 'h':
			case OPT_HELP:
				return CLI_HELP;
			case 'd':
			case OPT_DBURL:
				if (optarg[0] == '\0')
					return cli_empty_url(g, cmd), CLI_BAD;
				g->database_url = optarg;
				continue;
			case OPT_JSON:
				g->json = true;
				continue;
			case '?':
				if (optopt)
					return cli_usage_error(g, cmd, "unknown option '-%c'", optopt), CLI_BAD;
				return cli_usage_error(g, cmd, "unknown option '%s'", argv[optind - 1]), CLI_BAD;
			case ':':
				return cli_usage_error(g, cmd, "option '%s' needs a value", argv[optind - 1]), CLI_BAD;
			default:
				return c;
		}
	}
}

