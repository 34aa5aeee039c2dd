/*
 * http.c
 *	  Responses: JSON bodies, {"error": ...} with the right status, the
 *	  security headers every response carries (and the CSP every HTML one
 *	  does), request body limits, and civetweb's own errors as JSON.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard.h"

static const char csp[] =
"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
"connect-src 'self'; frame-ancestors 'none'";

void
http_send(struct mg_connection *conn, int status, const char *type,
		  const void *body, size_t len, bool html)
{
	char		length[24];

	snprintf(length, sizeof(length), "%zu", len);
	mg_response_header_start(conn, status);
	mg_response_header_add(conn, "Content-Type", type, -1);
	mg_response_header_add(conn, "Content-Length", length, -1);
	mg_response_header_add(conn, "X-Content-Type-Options", "nosniff", -1);
	mg_response_header_add(conn, "Referrer-Policy", "no-referrer", -1);
	mg_response_header_add(conn, "Cache-Control", "no-store", -1);
	if (html)
		mg_response_header_add(conn, "Content-Security-Policy", csp, -1);
	mg_response_header_send(conn);
	/* HEAD: the headers GET would get, Content-Length included, no body */
	if (len > 0 && !http_is_head(conn))
		mg_write(conn, body, len);
}

bool
http_is_head(const struct mg_connection *conn)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);

	/* no method when civetweb refuses a request it could not read */
	return ri && ri->request_method && strcmp(ri->request_method, "HEAD") == 0;
}

void
http_json(struct mg_connection *conn, int status, json_t *body)
{
	char	   *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	if (text == NULL)
	{
		static const char oom[] = "{\"error\":\"out of memory\"}";

		http_send(conn, 500, "application/json", oom, sizeof(oom) - 1, false);
		return;
	}
	http_send(conn, status, "application/json", text, strlen(text), false);
	free(text);
}

void
http_error(struct mg_connection *conn, int status, const char *fmt,...)
{
	char		msg[1024];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	http_json(conn, status, json_pack("{s:s}", "error", msg));
}

void
http_qml_error(struct mg_connection *conn, qml_status st)
{
	int			status;

	switch (st)
	{
		case QML_ERR_INVALID:
			status = 400;
			break;
		case QML_ERR_NOT_FOUND:
			status = 404;
			break;
		case QML_ERR_CONFLICT:
			status = 409;
			break;
		case QML_ERR_PERMISSION:
			status = 403;
			break;
		case QML_ERR_CONNECT:
		case QML_ERR_TIMEOUT:
		case QML_ERR_NO_EXTENSION:
			status = 503;
			break;
		default:
			status = 500;
			break;
	}
	http_error(conn, status, "%s", qml_errmsg());
}

/*
 * Bodies are optional (no route needs one) but bounded, and when given
 * must be JSON: read at most the limit plus one byte, whatever the
 * Content-Length says, so a lying or chunked client cannot make us buffer
 * more.
 */
bool
http_body_ok(struct mg_connection *conn)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	char	   *buf;
	size_t		len = 0;
	int			n;
	json_t	   *v;

	if (ri->content_length > DASH_MAX_BODY)
	{
		http_error(conn, 413, "request body over %d bytes", DASH_MAX_BODY);
		return false;
	}
	if (ri->content_length == 0)
		return true;
	if ((buf = malloc(DASH_MAX_BODY + 1)) == NULL)
	{
		http_error(conn, 500, "out of memory");
		return false;
	}
	while (len <= DASH_MAX_BODY &&
		   (n = mg_read(conn, buf + len, DASH_MAX_BODY + 1 - len)) > 0)
		len += (size_t) n;
	if (len > DASH_MAX_BODY)
	{
		free(buf);
		http_error(conn, 413, "request body over %d bytes", DASH_MAX_BODY);
		return false;
	}
	v = len > 0 ? json_loadb(buf, len, JSON_DECODE_ANY, NULL) : NULL;
	free(buf);
	if (len > 0 && v == NULL)
	{
		http_error(conn, 400, "the request body is not JSON");
		return false;
	}
	json_decref(v);
	return true;
}

/* civetweb's own errors (malformed request, header too large, ...) as JSON */
int
http_error_callback(struct mg_connection *conn, int status, const char *msg)
{
	http_error(conn, status, "%s", msg && *msg ? msg : "bad request");
	return 0;
}
