/*
 * exec_result.c
 *	  Reading a qml worker --exec command's outcome: its stdout kept up to a
 *	  limit (the job's result when it is JSON), the end of its stderr (the
 *	  job's last_error), and its exit status: 0 success, 65 permanent
 *	  failure, anything else (a signal, our timeout) a retry. exec.c runs
 *	  the command and feeds the pipes in here.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <jansson.h>

#include "exec_result.h"

void
capture_add(capture *c, const char *buf, size_t n)
{
	if (!c->tail && c->len + n > c->limit)
	{
		c->overflow = true;
		n = c->len < c->limit ? c->limit - c->len : 0;
	}
	if (c->len + n + 1 > c->cap)
	{
		size_t		cap = c->cap ? c->cap : 4096;
		char	   *d;

		while (cap < c->len + n + 1)
			cap *= 2;
		if ((d = realloc(c->data, cap)) == NULL)
		{
			c->overflow = true;
			return;
		}
		c->data = d;
		c->cap = cap;
	}
	memcpy(c->data + c->len, buf, n);
	c->len += n;
	c->data[c->len] = '\0';
	if (c->tail && c->len > 2 * c->limit)
	{
		memmove(c->data, c->data + c->len - c->limit, c->limit);
		c->len = c->limit;
		c->data[c->len] = '\0';
		c->overflow = true;
	}
}

/* The length of the valid UTF-8 character at s (n bytes left), 0 if none. */
static size_t
utf8_char(const unsigned char *s, size_t n)
{
	size_t		len = s[0] < 0x80 ? 1 : s[0] >= 0xC2 && s[0] <= 0xDF ? 2 :
		s[0] >= 0xE0 && s[0] <= 0xEF ? 3 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;

	if (len == 0 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	/* overlong three- and four-byte forms, surrogates, past U+10FFFF */
	if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) ||
		(s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))
		return 0;
	return len;
}

/*
 * The last lines of stderr, trimmed, for last_error: at most `limit`
 * bytes, from a whole character on, and valid UTF-8 (a byte that is not
 * shows as '?'), since last_error is text and one bad byte would make the
 * server reject the whole batch of failures it is reported with.
 */
static const char *
stderr_tail(capture *c)
{
	unsigned char *s;
	size_t		n;

	if (c->data == NULL)
		return "";
	n = c->len;
	while (n > 0 && (c->data[n - 1] == '\n' || c->data[n - 1] == ' ' || c->data[n - 1] == '\r'))
		n--;
	c->data[n] = '\0';
	s = (unsigned char *) c->data;
	if (n > c->limit)
	{
		s += n - c->limit;
		/* start at a whole UTF-8 character */
		while (*s && (*s & 0xC0) == 0x80)
			s++;
	}
	for (unsigned char *p = s; *p;)
	{
		size_t		len = utf8_char(p, strlen((char *) p));

		if (len == 0)
			*p++ = '?';
		else
			p += len;
	}
	return (const char *) s;
}

void
exec_read_result(int status, bool killed, bool timed_out, capture *out, capture *err,
				 exec_result *r)
{
	const char *tail = stderr_tail(err);
	char		how[96];

	memset(r, 0, sizeof(*r));
	if (killed)
	{
		r->kind = EXEC_RETRY;
		r->outcome = timed_out ? "timed out" : "cancelled";
		if (asprintf(&r->message, "%s: the command's process group was killed%s%s",
					 timed_out ? "timed out" : "cancelled (shutdown or lease lost)",
					 *tail ? "; stderr: " : "", tail) < 0)
			r->message = NULL;
		return;
	}
	if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
	{
		json_t	   *v = NULL;

		if (out->len > 0 && !out->overflow)
			v = json_loads(out->data, JSON_DECODE_ANY, NULL);
		r->kind = EXEC_SUCCESS;
		r->result = v ? out->data : NULL;
		r->outcome = "succeeded";
		json_decref(v);
		return;
	}
	if (status == -1)
		snprintf(how, sizeof(how), "the command's exit status was lost");
	else if (WIFEXITED(status))
		snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "killed by signal %d (%s)", WTERMSIG(status),
				 strsignal(WTERMSIG(status)));
	else
		snprintf(how, sizeof(how), "ended with status %d", status);
	/* stderr's words first: they are what the job's author wrote */
	if ((*tail ? asprintf(&r->message, "%s (%s)", tail, how) :
		 asprintf(&r->message, "%s", how)) < 0)
		r->message = NULL;
	if (r->message == NULL)
		r->message = strdup(how);
	r->log_message = true;
	if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 65)
	{
		r->kind = EXEC_FAIL;
		r->outcome = "failed for good";
	}
	else
	{
		r->kind = EXEC_RETRY;
		r->outcome = "failed, to be retried";
	}
}
