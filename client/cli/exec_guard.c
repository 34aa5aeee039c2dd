/*
 * exec_guard.c
 *	  Starts a worker --exec command so that it cannot outlive the worker.
 *
 * The command runs in a process group of its own, led by a guard: a
 * process forked from the worker that forks the command and waits for it.
 * The guard asks the kernel for a signal when the worker's thread that
 * started it ends (PR_SET_PDEATHSIG: the worker killed with SIGKILL, or
 * crashed) and then kills its whole group, the command and everything it
 * started. Without it the command would run on while its job, rescued with
 * the worker's session, ran again elsewhere: the same job twice at once.
 *
 * To the worker the guard is the command: it ignores the signals the
 * worker sends the group (SIGTERM on a timeout, at shutdown) and ends as
 * the command ended, with its exit status or killed by its signal. It
 * closes every descriptor it inherited, since it never execs: the pipes of
 * the worker's other jobs must see their end of file.
 *
 * Between fork and exec only async-signal-safe calls: the worker has
 * threads (posix_spawn, which needs none of this, cannot set a parent
 * death signal).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

/* what the guard hears when the worker ends */
#define GUARD_ORPHANED SIGUSR1

/* the signals the worker sends the group: for the command, not the guard */
static const int group_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE};

#define N_GROUP_SIGNALS ((int) (sizeof(group_signals) / sizeof(group_signals[0])))

static void
guard_orphaned(int sig)
{
	(void) sig;
	kill(0, SIGKILL);			/* the group: the command, its children, us */
}

static void
set_handler(int sig, void (*handler) (int))
{
	struct sigaction sa = {.sa_handler = handler};

	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

static void
unblock_all(void)
{
	sigset_t	none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* The command, in the guard's child: never returns. */
static void
run_command(char *const argv[], char *const envp[], const int fds[3])
{
	int			high[3];

	/* every signal the guard changed, back to its default */
	for (int i = 0; i < N_GROUP_SIGNALS; i++)
		set_handler(group_signals[i], SIG_DFL);
	set_handler(SIGCHLD, SIG_DFL);
	set_handler(GUARD_ORPHANED, SIG_DFL);
	unblock_all();
	/* above 2 first, so that dup2 onto 0..2 cannot overwrite one of them */
	for (int i = 0; i < 3; i++)
		if ((high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3)) < 0)
			_exit(127);
	for (int i = 0; i < 3; i++)
		if (dup2(high[i], i) < 0)
			_exit(127);
	execve("/bin/sh", argv, envp);
	_exit(127);
}

/* The guard: never returns. */
static void
guard(pid_t worker, char *const argv[], char *const envp[], const int fds[3])
{
	pid_t		command;
	int			status;

	setpgid(0, 0);				/* before any kill(0, ...) */
	for (int i = 0; i < N_GROUP_SIGNALS; i++)
		set_handler(group_signals[i], SIG_IGN);
	set_handler(SIGCHLD, SIG_DFL);
	set_handler(GUARD_ORPHANED, guard_orphaned);
	unblock_all();
	if (prctl(PR_SET_PDEATHSIG, GUARD_ORPHANED) != 0 || getppid() != worker)
		kill(0, SIGKILL);		/* the worker is gone already */
	if ((command = fork()) == 0)
		run_command(argv, envp, fds);
	close_range(0, ~0U, 0);
	if (command < 0)
		_exit(127);
	while (waitpid(command, &status, 0) < 0)
		if (errno != EINTR)
			_exit(127);
	if (WIFSIGNALED(status))
	{
		/* die of the same signal, without a core file of the guard's own */
		struct rlimit none = {0, 0};

		setrlimit(RLIMIT_CORE, &none);
		set_handler(WTERMSIG(status), SIG_DFL);
		kill(getpid(), WTERMSIG(status));
	}
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
}

int
exec_guard_spawn(char *const argv[], char *const envp[], const int fds[3], pid_t *pid)
{
	pid_t		worker = getpid();
	pid_t		p = fork();

	if (p < 0)
		return errno;
	if (p == 0)
		guard(worker, argv, envp, fds);
	/* ours too, so that kill(-pid) finds the group however the race went */
	setpgid(p, p);
	*pid = p;
	return 0;
}
