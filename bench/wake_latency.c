/*
 * bench/wake_latency.c: how soon an idle worker gets a job after the
 * enqueue commits, two ways:
 *
 *	 wait	 the worker blocks in qml.fetch(..., wait => '10 s')
 *	 listen  the worker's fetch came back empty; it LISTENs on "qml"
 *
 * One process, two connections (worker and producer), one clock: the
 * latency is the time from the producer's commit returning to the worker
 * having its job (wait) or its notification (listen). Prints p50, p99 and
 * max in milliseconds.
 *
 *	 wake_latency DBNAME SAMPLES
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"
#include "pq_bench.h"

/* blocks until the socket is readable */
static void
wait_readable(PGconn *c)
{
	fd_set		fds;
	int			sock = PQsocket(c);

	FD_ZERO(&fds);
	FD_SET(sock, &fds);
	if (select(sock + 1, &fds, NULL, NULL, NULL) < 0)
	{
		perror("select");
		exit(1);
	}
}

/* the worker blocks in fetch; returns the latency of one wakeup */
static double
sample_wait(PGconn *worker, PGconn *producer)
{
	PGresult   *r;
	double		committed;
	double		woken = 0;

	if (!PQsendQuery(worker, "SELECT id FROM qml.fetch('lat', '{lat}', 1, wait => '10 s', "
					 "session_lease => false)"))
		exit(1);
	usleep(20000);				/* it is asleep by now */
	exec_or_die(producer, "SELECT qml.enqueue('x', queue => 'lat')");
	committed = now_ms();
	for (;;)
	{
		wait_readable(worker);
		PQconsumeInput(worker);
		if (!PQisBusy(worker))
			break;
	}
	while ((r = PQgetResult(worker)) != NULL)
	{
		if (woken == 0)
			woken = now_ms();
		if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		{
			fprintf(stderr, "fetch: %s (%d rows)\n", PQerrorMessage(worker),
					PQntuples(r));
			exit(1);
		}
		PQclear(r);
	}
	return woken - committed;
}

/* the worker found nothing and LISTENs; returns the latency of one NOTIFY */
static double
sample_listen(PGconn *worker, PGconn *producer)
{
	PGnotify   *n;
	double		committed;
	double		woken;

	/* drain, then come back empty: now someone waits on 'lat' */
	exec_or_die(worker, "SELECT id FROM qml.fetch('lat', '{lat}', 100, session_lease => false)");
	exec_or_die(worker, "SELECT id FROM qml.fetch('lat', '{lat}', 100, session_lease => false)");
	while ((n = PQnotifies(worker)) != NULL)
		PQfreemem(n);
	exec_or_die(producer, "SELECT qml.enqueue('x', queue => 'lat')");
	committed = now_ms();
	for (;;)
	{
		PQconsumeInput(worker);
		if ((n = PQnotifies(worker)) != NULL)
		{
			woken = now_ms();
			PQfreemem(n);
			break;
		}
		wait_readable(worker);
	}
	return woken - committed;
}

static int
cmp(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

static void
report(const char *what, double *v, int n)
{
	qsort(v, n, sizeof(double), cmp);
	printf("wake latency (%s): p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d samples)\n",
		   what, v[n / 2], v[(int) (n * 0.99)], v[n - 1], n);
}

int
main(int argc, char **argv)
{
	PGconn	   *worker;
	PGconn	   *producer;
	double	   *v;
	int			n;
	int			i;

	if (argc != 3)
	{
		fprintf(stderr, "usage: %s DBNAME SAMPLES\n", argv[0]);
		return 2;
	}
	n = atoi(argv[2]);
	if (n < 1)
		n = 1;
	v = malloc(n * sizeof(double));
	worker = connect_or_die(argv[1]);
	producer = connect_or_die(argv[1]);

	for (i = 0; i < n; i++)
		v[i] = sample_wait(worker, producer);
	report("fetch wait", v, n);

	exec_or_die(worker, "LISTEN qml");
	for (i = 0; i < n; i++)
		v[i] = sample_listen(worker, producer);
	report("LISTEN", v, n);

	PQfinish(worker);
	PQfinish(producer);
	free(v);
	return 0;
}
