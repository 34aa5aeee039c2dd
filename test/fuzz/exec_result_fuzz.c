/*-------------------------------------------------------------------------
 *
 * exec_result_fuzz.c
 *	  libFuzzer target for reading a qml worker --exec command's outcome
 *	  (client/cli/exec_result.c): its stdout and stderr as they come out of
 *	  the pipes, in chunks of any size, and its exit status.
 *
 * The input's first bytes pick the status (an exit code, a signal, lost),
 * whether we killed it (and why), the capture limits (the real ones or
 * small ones, to reach the overflow paths) and the chunk sizes; the rest is
 * stdout and stderr.  Checks, against the streams as written:
 *	- stdout keeps exactly its first `limit` bytes, overflow when longer;
 *	- the error's stderr part is the stream's end, without trailing white
 *	  space, at most `limit` bytes, starting at a character, and valid
 *	  UTF-8 (it is stored in a text column);
 *	- the kind follows the status: 0 success, 65 fail, the rest retry,
 *	  killed always retry; a success's result is stdout exactly when
 *	  stdout is whole JSON, else none.
 *
 * Build and run: make fuzz-exec_result (test/fuzz/fuzz.mk)
 *
 *-------------------------------------------------------------------------
 */
#include "exec_result.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
die(const char *what, const char *msg)
{
	fprintf(stderr, "exec_result_fuzz: %s (message \"%.300s\")\n", what, msg ? msg : "(null)");
	abort();
}

/* strict UTF-8 as PostgreSQL takes it: no overlongs, surrogates, > U+10FFFF */
static bool
valid_utf8(const unsigned char *s, size_t n)
{
	size_t		i = 0;

	while (i < n)
	{
		unsigned	c = s[i],
					cp,
					len;

		if (c < 0x80)
		{
			i++;
			continue;
		}
		len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
		if (len == 0 || i + len > n)
			return false;
		cp = c & (0xFF >> (len + 1));
		for (unsigned k = 1; k < len; k++)
		{
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
			cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += len;
	}
	return true;
}

/* where " (exit status ...)" and the like start in a failure's message */
static size_t
how_at(const char *msg)
{
	static const char *const hows[] = {
		" (exit status ", " (killed by signal ", " (the command's exit", " (ended with status "
	};
	size_t		at = 0;

	for (size_t i = 0; i < sizeof(hows) / sizeof(hows[0]); i++)
		for (const char *p = strstr(msg, hows[i]); p; p = strstr(p + 1, hows[i]))
			if ((size_t) (p - msg) > at)
				at = (size_t) (p - msg);
	return at;
}

/* feeds stream to c in chunks of 1 + (seed-driven) bytes */
static void
feed(capture *c, const uint8_t *s, size_t n, uint8_t seed)
{
	size_t		at = 0;
	unsigned	x = seed | 1u;

	while (at < n)
	{
		size_t		k;

		x = x * 1103515245u + 12345u;
		k = 1 + (x >> 16) % (seed & 0x80 ? 8192 : 7);
		if (k > n - at)
			k = n - at;
		capture_add(c, (const char *) s + at, k);
		at += k;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[] = {EXEC_STDOUT_MAX, 1, 7, 64};
	static const size_t tails[] = {EXEC_STDERR_TAIL, 1, 5, 40};
	capture		out = {0},
				err = {0};
	exec_result r;
	int			status;
	bool		killed,
				timed_out;
	const uint8_t *o,
			   *e;
	size_t		olen,
				elen,
				want;
	const char *exp;
	char	   *exp_copy;
	size_t		exp_len;
	bool		has_nul;

	if (size < 6)
		return 0;
	killed = data[0] & 1;
	timed_out = data[0] & 2;
	switch ((data[0] >> 2) & 3)
	{
		case 0:
			status = (data[1] & 0xFF) << 8;	/* exited with data[1] */
			break;
		case 1:
			status = 1 + data[1] % 31;	/* killed by a signal */
			break;
		case 2:
			status = -1;
			break;
		default:
			status = (65 << 8);
			break;
	}
	out.limit = limits[(data[0] >> 4) & 3];
	err.limit = tails[(data[0] >> 6) & 3];
	err.tail = true;
	o = data + 5;
	olen = (size - 5) * data[2] / 255;
	e = o + olen;
	elen = size - 5 - olen;
	feed(&out, o, olen, data[3]);
	feed(&err, e, elen, data[4]);

	/* stdout: the first limit bytes */
	want = olen < out.limit ? olen : out.limit;
	if (out.len != want || out.overflow != (olen > out.limit) ||
		(want > 0 && memcmp(out.data, o, want) != 0))
		die("stdout capture is not the stream's start", NULL);
	if (err.len > 2 * err.limit || (elen > 0 && memcmp(err.data, e + elen - err.len, err.len) != 0))
		die("stderr capture is not the stream's end", NULL);

	/* the error's stderr part, from what the capture holds */
	exp_len = err.len;
	while (exp_len > 0 && (err.data[exp_len - 1] == '\n' || err.data[exp_len - 1] == ' ' ||
						   err.data[exp_len - 1] == '\r'))
		exp_len--;
	exp = err.data ? err.data + (exp_len > err.limit ? exp_len - err.limit : 0) : "";
	if (exp_len > err.limit)
	{
		/* cut: from a whole character on */
		exp_len = err.limit;
		while (exp_len > 0 && ((unsigned char) *exp & 0xC0) == 0x80)
			exp++, exp_len--;
	}
	exp_copy = strndup(exp, exp_len);
	has_nul = err.data && memchr(err.data, '\0', err.len) != NULL;

	exec_read_result(status, killed, timed_out, &out, &err, &r);

	if (killed)
	{
		if (r.kind != EXEC_RETRY || r.message == NULL ||
			strncmp(r.message, timed_out ? "timed out" : "cancelled", timed_out ? 9 : 9) != 0)
			die("a killed command is not a retry saying why", r.message);
	}
	else if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
	{
		json_t	   *v = NULL;

		if (r.kind != EXEC_SUCCESS || r.message != NULL)
			die("exit 0 is not a success", r.message);
		if (olen > 0 && olen <= out.limit)
			v = json_loads(out.data, JSON_DECODE_ANY, NULL);
		if ((v != NULL) != (r.result != NULL) || (r.result && r.result != out.data))
			die("the result is not stdout exactly when stdout is JSON", r.result);
		json_decref(v);
	}
	else if (r.kind != ((status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 65) ?
						EXEC_FAIL : EXEC_RETRY) || r.message == NULL)
		die("the kind does not follow the exit status", r.message);

	if (r.message != NULL)
	{
		const char *part = r.message;
		size_t		plen;

		if (!valid_utf8((const unsigned char *) r.message, strlen(r.message)))
			die("the message is not valid UTF-8", r.message);
		if (killed)
			part = strstr(r.message, "; stderr: ") ? strstr(r.message, "; stderr: ") + 10 : "";
		plen = killed ? strlen(part) : how_at(part);
		if (!has_nul && exp_len > 0)
		{
			/* the same bytes, but for invalid ones shown as '?' */
			if (plen != exp_len)
				die("the message's stderr part is not stderr's end", r.message);
			for (size_t i = 0; i < plen; i++)
				if (part[i] != exp_copy[i] && part[i] != '?')
					die("the message's stderr part differs from stderr's end", r.message);
		}
	}
	free(exp_copy);
	free(r.message);
	free(out.data);
	free(err.data);
	return 0;
}
