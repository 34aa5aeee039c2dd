/*
 * error.c
 *	  Status codes and the per-thread error of the last failing call.
 *
 * Each thread has its own error, so threads sharing a client never see each
 * other's messages. Setting it never allocates: a failing malloc must still
 * be reportable.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

typedef struct qml_error_state
{
	qml_status	code;
	char		message[1024];
	char		detail[1024];
	char		hint[512];
	char		sqlstate[6];
} qml_error_state;

static __thread qml_error_state tls_error;

static void
copy_text(char *dst, size_t size, const char *src)
{
	size_t		n;

	if (src == NULL)
	{
		dst[0] = '\0';
		return;
	}
	n = strlen(src);
	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	/* server messages end with a newline; ours should not */
	while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == ' '))
		n--;
	dst[n] = '\0';
}

qml_status
qml__error(qml_status status, const char *fmt,...)
{
	va_list		ap;
	char		buf[sizeof(tls_error.message)];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	tls_error.code = status;
	copy_text(tls_error.message, sizeof(tls_error.message), buf);
	tls_error.detail[0] = '\0';
	tls_error.hint[0] = '\0';
	tls_error.sqlstate[0] = '\0';
	return status;
}

void
qml__error_set_extra(const char *detail, const char *hint, const char *sqlstate)
{
	copy_text(tls_error.detail, sizeof(tls_error.detail), detail);
	copy_text(tls_error.hint, sizeof(tls_error.hint), hint);
	copy_text(tls_error.sqlstate, sizeof(tls_error.sqlstate), sqlstate);
}

qml_status
qml__nomem(void)
{
	return qml__error(QML_ERR_NOMEM, "out of memory");
}

qml_status
qml_errcode(void)
{
	return tls_error.code;
}

const char *
qml_errmsg(void)
{
	return tls_error.message;
}

const char *
qml_errdetail(void)
{
	return tls_error.detail;
}

const char *
qml_errhint(void)
{
	return tls_error.hint;
}

const char *
qml_errsqlstate(void)
{
	return tls_error.sqlstate;
}

const char *
qml_status_str(qml_status status)
{
	switch (status)
	{
		case QML_OK:
			return "ok";
		case QML_ERR_INVALID:
			return "invalid argument";
		case QML_ERR_CONNECT:
			return "connection failed";
		case QML_ERR_NO_EXTENSION:
			return "qml extension not installed";
		case QML_ERR_UNSUPPORTED:
			return "not supported by the installed qml extension";
		case QML_ERR_NOT_FOUND:
			return "not found";
		case QML_ERR_CONFLICT:
			return "conflict";
		case QML_ERR_PERMISSION:
			return "permission denied";
		case QML_ERR_TIMEOUT:
			return "timed out";
		case QML_ERR_SERVER:
			return "server error";
		case QML_ERR_STATE:
			return "wrong state";
		case QML_ERR_NOMEM:
			return "out of memory";
		case QML_ERR_SYSTEM:
			return "system error";
	}
	return "unknown status";
}
