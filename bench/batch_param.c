/*
 * bench/batch_param.c: case 2 of bench/run.sh with the batch sent by the
 * client (issue 19). A real producer builds its 1,000 jobs itself and
 * sends them in one statement as one bound parameter (libqml's
 * qml_enqueue_batch sends one JSON array); pgbench cannot bind a 60 KB
 * parameter, so this does. CLIENTS processes each prepare SQL once, then
 * run it for SECONDS, one statement per transaction, always with the same
 * payload of JOBS jobs:
 *
 *	 json	 one parameter, the JSON array
 *			 [{"method":"noop","arguments":{"n":1},"priority":1}, ...]
 *	 arrays  two parameters, the same priorities and arguments as arrays,
 *			 {1,2,...} and {"{\"n\":1}",...}
 *
 * (job g has arguments {"n": g} and priority g % 4, as in the pgbench case).
 * Prints "<jobs/s> jobs/s <statements> statements <us> us backend CPU per
 * job" (the last when the server runs on this machine); the clock starts
 * once every client has prepared its statement.
 *
 *	 batch_param CONNINFO SECONDS CLIENTS json|arrays SQL [JOBS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libpq-fe.h"
#include "pq_bench.h"

#define MAX_CLIENTS 64

typedef struct Shared
{
	double		start_ms;		/* when every client starts */
	int			ready;
	int			abandon;		/* a client failed before the start */
	long		statements[MAX_CLIENTS];
	double		cpu_ns[MAX_CLIENTS];	/* the backend's, while measured */
	double		elapsed_ms[MAX_CLIENTS];
} Shared;

/* appends to a growing string */
static void
put(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t		n = strlen(s);

	if (*len + n + 1 > *cap)
	{
		*cap = (*len + n + 1) * 2;
		*buf = realloc(*buf, *cap);
		if (*buf == NULL)
			exit(1);
	}
	memcpy(*buf + *len, s, n + 1);
	*len += n;
}

/* the payload: its parameter values (1 or 2) */
static int
payload(const char *kind, int jobs, char **values)
{
	char	   *a = NULL,
			   *b = NULL;
	size_t		alen = 0,
				acap = 0,
				blen = 0,
				bcap = 0;
	char		item[128];
	int			arrays = strcmp(kind, "arrays") == 0;

	if (!arrays && strcmp(kind, "json") != 0)
	{
		fprintf(stderr, "payload kind must be json or arrays, not %s\n", kind);
		exit(2);
	}
	put(&a, &alen, &acap, arrays ? "{" : "[");
	if (arrays)
		put(&b, &blen, &bcap, "{");
	for (int g = 1; g <= jobs; g++)
	{
		const char *sep = g > 1 ? "," : "";

		if (arrays)
		{
			snprintf(item, sizeof(item), "%s%d", sep, g % 4);
			put(&a, &alen, &acap, item);
			snprintf(item, sizeof(item), "%s\"{\\\"n\\\":%d}\"", sep, g);
			put(&b, &blen, &bcap, item);
		}
		else
		{
			snprintf(item, sizeof(item),
					 "%s{\"method\":\"noop\",\"arguments\":{\"n\":%d},\"priority\":%d}",
					 sep, g, g % 4);
			put(&a, &alen, &acap, item);
		}
	}
	put(&a, &alen, &acap, arrays ? "}" : "]");
	values[0] = a;
	if (!arrays)
		return 1;
	put(&b, &blen, &bcap, "}");
	values[1] = b;
	return 2;
}

/*
 * The CPU time the backend serving `c` has had, in ns (the kernel's
 * count in /proc/PID/schedstat, when the server runs on this machine;
 * else -1): a figure a busy machine blurs less than jobs/s.
 */
static double
backend_cpu_ns(int pid)
{
	char		path[64];
	double		ns = -1;
	FILE	   *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (fscanf(f, "%lf", &ns) != 1)
		ns = -1;
	fclose(f);
	return ns;
}

static void
client(Shared *sh, int me, const char *conninfo, double seconds, const char *sql,
	   int nparams, char **values)
{
	PGconn	   *c = connect_or_die(conninfo);
	PGresult   *r = PQprepare(c, "batch", sql, nparams, NULL);
	long		n = 0;
	int			pid = PQbackendPID(c);
	double		t0,
				end,
				cpu0;

	if (PQresultStatus(r) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "prepare: %s", PQerrorMessage(c));
		exit(1);
	}
	PQclear(r);
	__atomic_fetch_add(&sh->ready, 1, __ATOMIC_SEQ_CST);
	while (now_ms() < sh->start_ms)
	{
		if (__atomic_load_n(&sh->abandon, __ATOMIC_SEQ_CST))
			exit(1);
		usleep(1000);
	}
	t0 = now_ms();
	cpu0 = backend_cpu_ns(pid);
	end = t0 + seconds * 1e3;
	while (now_ms() < end)
	{
		r = PQexecPrepared(c, "batch", nparams, (const char *const *) values,
						   NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
		{
			fprintf(stderr, "%s", PQerrorMessage(c));
			exit(1);
		}
		PQclear(r);
		n++;
	}
	sh->statements[me] = n;
	sh->elapsed_ms[me] = now_ms() - t0;
	sh->cpu_ns[me] = cpu0 < 0 ? -1 : backend_cpu_ns(pid) - cpu0;
	PQfinish(c);
	exit(0);
}

int
main(int argc, char **argv)
{
	Shared	   *sh;
	char	   *values[2];
	int			clients,
				jobs,
				nparams,
				status,
				failed = 0;
	double		seconds,
				rate = 0,
				cpu = 0;
	long		total = 0;

	if (argc < 6)
	{
		fprintf(stderr, "usage: batch_param CONNINFO SECONDS CLIENTS json|arrays SQL [JOBS]\n");
		return 2;
	}
	seconds = atof(argv[2]);
	clients = atoi(argv[3]);
	jobs = argc > 6 ? atoi(argv[6]) : 1000;
	if (clients < 1 || clients > MAX_CLIENTS || jobs < 1 || seconds <= 0)
	{
		fprintf(stderr, "batch_param: 1 to %d clients, at least 1 job and a positive duration\n",
				MAX_CLIENTS);
		return 2;
	}
	nparams = payload(argv[4], jobs, values);
	sh = mmap(NULL, sizeof(Shared), PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
	{
		perror("mmap");
		return 1;
	}
	sh->start_ms = 1e300;
	for (int i = 0; i < clients; i++)
		if (fork() == 0)
			client(sh, i, argv[1], seconds, argv[5], nparams, values);
	/* every client connected and prepared (or one failed): start */
	while (__atomic_load_n(&sh->ready, __ATOMIC_SEQ_CST) < clients)
	{
		if (waitpid(-1, &status, WNOHANG) > 0)
		{
			__atomic_store_n(&sh->abandon, 1, __ATOMIC_SEQ_CST);
			return 1;
		}
		usleep(1000);
	}
	sh->start_ms = now_ms() + 10;
	for (int i = 0; i < clients; i++)
	{
		wait(&status);
		failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	}
	if (failed)
		return 1;
	for (int i = 0; i < clients; i++)
	{
		total += sh->statements[i];
		rate += sh->statements[i] * 1e3 / sh->elapsed_ms[i];
		cpu = cpu < 0 || sh->cpu_ns[i] < 0 ? -1 : cpu + sh->cpu_ns[i];
	}
	printf("%.0f jobs/s %ld statements", rate * jobs, total);
	if (cpu >= 0 && total > 0)
		printf(" %.2f us backend CPU per job", cpu / 1e3 / total / jobs);
	printf("\n");
	return 0;
}
