/*
 * assets.c
 *	  The page: files embedded at build time (embed_assets.sh writes
 *	  dash_assets from client/dashboard/assets/ and Debian's chart.js), served
 *	  at /assets/<name>, and index.html at /. Nothing is read from disk at
 *	  run time, so the binary is the whole dashboard.
 */
#include <string.h>

#include "dashboard.h"

static const struct
{
	const char *ext;
	const char *type;
}			types[] = {
	{".html", "text/html; charset=utf-8"},
	{".js", "text/javascript; charset=utf-8"},
	{".css", "text/css; charset=utf-8"},
	{".json", "application/json"},
	{".svg", "image/svg+xml"},
	{".png", "image/png"},
	{".ico", "image/x-icon"},
	{".txt", "text/plain; charset=utf-8"},
};

static const char *
content_type(const char *name)
{
	const char *dot = strrchr(name, '.');

	for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

bool
assets_serve(struct mg_connection *conn, const char *path)
{
	const char *name;
	const char *type;

	if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0)
		name = "index.html";
	else if (strncmp(path, "/assets/", 8) == 0)
		name = path + 8;
	else
		return false;
	for (const dash_asset *a = dash_assets; a->name; a++)
	{
		if (strcmp(a->name, name) != 0)
			continue;
		type = content_type(a->name);
		http_send(conn, 200, type, a->data, a->size, strncmp(type, "text/html", 9) == 0);
		return true;
	}
	return false;
}
