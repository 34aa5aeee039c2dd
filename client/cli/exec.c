/*
 * exec.c
 *	  One job as a child process, for qml worker --exec: the job's arguments
 *	  on stdin, its id and attempt in the environment, its exit status as
 *	  the outcome (0 success, 65 permanent failure, anything else retry).
 *
 * The child runs in a process group of its own (exec_guard.c), so a
 * timeout or a shutdown past its grace period can stop everything it
 * started: SIGTERM to the group, SIGKILL a little later; and the group
 * dies with the worker, however the worker ends.
 * Its stdin, stdout and stderr are pipes served by one poll loop, so a
 * child that writes a lot before reading, or never reads, cannot block us.
 * What its output and exit status mean is exec_result.c's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "exec_result.h"

extern char **environ;

/* Reads what is there; false at end of file or on error. */
static bool
pump(int fd, capture *c)
{
	char		buf[8192];

	for (;;)
	{
		ssize_t		n = read(fd, buf, sizeof(buf));

		if (n > 0)
		{
			capture_add(c, buf, (size_t) n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return true;
		return false;
	}
}

/*
 * A plain command ("/path/to/script arg") runs as "exec ..." so the shell
 * becomes it: its own exit status and signals are then what we see, not
 * the shell's translation (a crash reads "killed by signal 11", not "exit
 * status 139"). Anything with shell syntax runs as written.
 */
static char *
shell_command(const char *command)
{
	char	   *s;

	if (strspn(command, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			   "0123456789_./:,+@%- ") != strlen(command))
		return strdup(command);
	if (asprintf(&s, "exec %s", command) < 0)
		return NULL;
	return s;
}

/* Our environment plus the job's variables; frees with free_env. */
static char **
build_env(qml_job_ctx *ctx, int *added)
{
	static const char *const ours[] = {
		"QML_JOB_ID=", "QML_ATTEMPT=", "QML_MAX_ATTEMPTS=", "QML_METHOD=", "QML_QUEUE="
	};
	size_t		n = 0,
				k = 0;
	char	  **env;

	while (environ[n])
		n++;
	if ((env = calloc(n + 6, sizeof(char *))) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
	{
		bool		skip = false;

		for (size_t j = 0; j < 5 && !skip; j++)
			skip = strncmp(environ[i], ours[j], strlen(ours[j])) == 0;
		if (!skip)
			env[k++] = environ[i];
	}
	*added = 0;
	if (asprintf(&env[k], "QML_JOB_ID=%" PRId64, qml_ctx_job_id(ctx)) > 0)
		k++, (*added)++;
	if (asprintf(&env[k], "QML_ATTEMPT=%d", qml_ctx_attempt(ctx)) > 0)
		k++, (*added)++;
	if (asprintf(&env[k], "QML_MAX_ATTEMPTS=%d", qml_ctx_max_attempts(ctx)) > 0)
		k++, (*added)++;
	if (asprintf(&env[k], "QML_METHOD=%s", qml_ctx_method(ctx)) > 0)
		k++, (*added)++;
	if (asprintf(&env[k], "QML_QUEUE=%s", qml_ctx_queue(ctx)) > 0)
		k++, (*added)++;
	env[k] = NULL;
	return env;
}

static void
free_env(char **env, int added)
{
	size_t		n = 0;

	if (env == NULL)
		return;
	while (env[n])
		n++;
	for (int i = 0; i < added; i++)
		free(env[n - 1 - (size_t) i]);
	free(env);
}

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
log_job(const exec_spec *spec, qml_job_ctx *ctx, const char *outcome,
		int64_t ms, const char *error)
{
	bool		retried = strcmp(outcome, "failed, to be retried") == 0;
	bool		last = qml_ctx_attempt(ctx) >= qml_ctx_max_attempts(ctx);

	if (!spec->verbose)
		return;
	if (spec->json_log)
	{
		json_t	   *o = json_pack("{s:I,s:s,s:i,s:i,s:s,s:I}", "job", (json_int_t) qml_ctx_job_id(ctx),
								  "method", qml_ctx_method(ctx), "attempt", qml_ctx_attempt(ctx),
								  "max_attempts", qml_ctx_max_attempts(ctx),
								  "outcome", outcome, "ms", (json_int_t) ms);
		char	   *text;

		if (error)
			json_object_set_new(o, "error", json_string(error));
		if ((text = json_dumps(o, JSON_COMPACT)) != NULL)
		{
			/* one write per line: lines of concurrent jobs do not interleave */
			size_t		len = strlen(text);

			text[len] = '\n';
			fwrite(text, 1, len + 1, stdout);
			fflush(stdout);
		}
		free(text);
		json_decref(o);
	}
	else
		/* the time is the run's, not the retry's: the retry's is the server's to pick */
		fprintf(stderr, "qml worker: job %" PRId64 " %s: %s %s %" PRId64 " ms (attempt %d/%d)%s%s%s\n",
				qml_ctx_job_id(ctx), qml_ctx_method(ctx), retried ? "failed" : outcome,
				strcmp(outcome, "succeeded") == 0 ? "in" : "after", ms,
				qml_ctx_attempt(ctx), qml_ctx_max_attempts(ctx),
				!retried ? "" : last ? "; no attempts left, so it failed" : "; retried with backoff",
				error ? ": " : "", error ? error : "");
}

/* A running child and what we know of it, for the poll loop. */
typedef struct child
{
	pid_t		pid;
	int			in;				/* its stdin's write end; -1 once closed */
	int			out;			/* its stdout's read end */
	int			err;			/* its stderr's read end */
	bool		out_open;		/* no end of file on out yet */
	bool		err_open;
	const char *args;			/* what goes to its stdin */
	size_t		args_len;
	size_t		written;
	capture		cout;
	capture		cerr;
	bool		killed;			/* we sent SIGTERM */
	bool		timed_out;		/* ... because the job's time ran out */
	int64_t		term_at;		/* when; 0 once SIGKILL followed */
	int			status;			/* as from waitpid; -1: lost */
} child;

/* The child's stdin, stdout and stderr pipes: 0, or why not (all closed). */
static int
open_pipes(int in[2], int out[2], int err[2])
{
	int			e;

	if (!pipe2(in, O_CLOEXEC) && !pipe2(out, O_CLOEXEC) && !pipe2(err, O_CLOEXEC))
		return 0;
	e = errno;
	for (int i = 0; i < 2; i++)
	{
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	return e;
}

/*
 * Starts /bin/sh -c COMMAND on the child ends of the pipes, with the job's
 * variables in its environment (exec_guard.c: in a process group of its
 * own that dies with us), and closes those ends: 0 or an errno.
 */
static int
spawn_child(qml_job_ctx *ctx, const char *command, int in[2], int out[2],
			int err[2], pid_t *pid)
{
	char	   *cmd = shell_command(command);
	char	   *argv[] = {"/bin/sh", "-c", cmd ? cmd : (char *) command, NULL};
	int			added = 0;
	char	  **env = build_env(ctx, &added);
	int			fds[3] = {in[0], out[1], err[1]};
	int			rc;

	rc = exec_guard_spawn(argv, env ? env : environ, fds, pid);
	free_env(env, added);
	free(cmd);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	return rc;
}

/* A cancelled or timed-out job: SIGTERM to the group, SIGKILL after the grace. */
static void
stop_if_due(qml_job_ctx *ctx, const exec_spec *spec, child *ch)
{
	int64_t		now = mono_ms();

	if (!ch->killed && (qml_ctx_cancelled(ctx) || qml_ctx_remaining_ms(ctx) <= 0))
	{
		ch->timed_out = qml_ctx_remaining_ms(ctx) <= 0;
		kill(-ch->pid, SIGTERM);
		ch->killed = true;
		ch->term_at = now;
	}
	else if (ch->killed && ch->term_at && now - ch->term_at >= spec->kill_grace_ms)
	{
		kill(-ch->pid, SIGKILL);
		ch->term_at = 0;
	}
}

/* Waits up to 50 ms for a pipe that is still open to be ready. */
static void
wait_for_pipes(const child *ch)
{
	struct pollfd pfd[3];
	nfds_t		n = 0;

	if (ch->in >= 0)
		pfd[n++] = (struct pollfd)
	{
		.fd = ch->in,.events = POLLOUT
	};
	if (ch->out_open)
		pfd[n++] = (struct pollfd)
	{
		.fd = ch->out,.events = POLLIN
	};
	if (ch->err_open)
		pfd[n++] = (struct pollfd)
	{
		.fd = ch->err,.events = POLLIN
	};
	if (n > 0)
		poll(pfd, n, 50);
	else
		usleep(20000);
}

/* Writes what the child's stdin takes of the arguments; closes it when done. */
static void
feed_stdin(child *ch)
{
	ssize_t		wr;

	if (ch->in < 0)
		return;
	wr = write(ch->in, ch->args + ch->written, ch->args_len - ch->written);
	if (wr > 0)
		ch->written += (size_t) wr;
	if ((wr < 0 && errno != EAGAIN && errno != EINTR) || ch->written == ch->args_len)
	{
		/* done, or the child closed its stdin (EPIPE): either way */
		close(ch->in);
		ch->in = -1;
	}
}

/* True once the child has exited (or is lost: status -1). */
static bool
reaped(child *ch)
{
	pid_t		w = waitpid(ch->pid, &ch->status, WNOHANG);

	if (w < 0 && errno != EINTR)
	{
		/* reaped by someone else (SIGCHLD ignored?): the outcome is unknown */
		ch->status = -1;
		return true;
	}
	if (w != ch->pid)
		return false;
	/* what it wrote before exiting; not what its leftovers write later */
	if (ch->out_open)
		pump(ch->out, &ch->cout);
	if (ch->err_open)
		pump(ch->err, &ch->cerr);
	return true;
}

/* Serves the child's pipes until it exits, stopping it when due. */
static void
run_child(qml_job_ctx *ctx, const exec_spec *spec, child *ch)
{
	fcntl(ch->in, F_SETFL, O_NONBLOCK);
	fcntl(ch->out, F_SETFL, O_NONBLOCK);
	fcntl(ch->err, F_SETFL, O_NONBLOCK);
	if (ch->args_len == 0)
	{
		close(ch->in);
		ch->in = -1;
	}
	do
	{
		stop_if_due(ctx, spec, ch);
		wait_for_pipes(ch);
		feed_stdin(ch);
		if (ch->out_open)
			ch->out_open = pump(ch->out, &ch->cout);
		if (ch->err_open)
			ch->err_open = pump(ch->err, &ch->cerr);
	} while (!reaped(ch));
	if (ch->in >= 0)
		close(ch->in);
	close(ch->out);
	close(ch->err);
}

/* The job's outcome from the exited child, logged with -v. */
static qml_outcome
child_outcome(qml_job_ctx *ctx, const exec_spec *spec, child *ch, int64_t start)
{
	exec_result r;
	qml_outcome outcome;

	exec_read_result(ch->status, ch->killed, ch->timed_out, &ch->cout, &ch->cerr, &r);
	if (r.kind == EXEC_SUCCESS)
		outcome = qml_success(ctx, r.result);
	else if (r.kind == EXEC_FAIL)
		outcome = qml_fail(ctx, "%s", r.message ? r.message : "failed");
	else
		outcome = qml_retry(ctx, "%s", r.message ? r.message : "failed");
	log_job(spec, ctx, r.outcome, mono_ms() - start, r.log_message ? r.message : NULL);
	free(r.message);
	return outcome;
}

qml_outcome
exec_handler(qml_job_ctx *ctx, void *user_data)
{
	const exec_spec *spec = user_data;
	int			in[2] = {-1, -1},
				out[2] = {-1, -1},
				err[2] = {-1, -1};
	int64_t		start = mono_ms();
	child		ch = {
		.cout = {.limit = EXEC_STDOUT_MAX},
		.cerr = {.limit = EXEC_STDERR_TAIL,.tail = true},
		.out_open = true,
		.err_open = true,
	};
	qml_outcome outcome;
	int			rc;

	if ((rc = open_pipes(in, out, err)) != 0)
		return qml_retry(ctx, "cannot create pipes for the command: %s", strerror(rc));
	if ((rc = spawn_child(ctx, spec->command, in, out, err, &ch.pid)) != 0)
	{
		close(in[1]);
		close(out[0]);
		close(err[0]);
		return qml_retry(ctx, "cannot start /bin/sh for \"%s\": %s", spec->command, strerror(rc));
	}
	ch.in = in[1];
	ch.out = out[0];
	ch.err = err[0];
	ch.args = qml_ctx_arguments(ctx);
	ch.args_len = strlen(ch.args);
	run_child(ctx, spec, &ch);
	outcome = child_outcome(ctx, spec, &ch, start);
	free(ch.cout.data);
	free(ch.cerr.data);
	return outcome;
}
