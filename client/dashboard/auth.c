/*
 * auth.c
 *	  Who may write: without a token the dashboard is read-only; with one,
 *	  every write route needs "Authorization: Bearer <token>" (401 without,
 *	  403 with a wrong one). The comparison takes the same time wherever the
 *	  first difference is, so timing does not reveal the token's prefix.
 */
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
