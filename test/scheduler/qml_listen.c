/*
 * qml_listen: LISTENs on channel "qml" and prints the wall-clock time
 * (seconds since the epoch) at which a notification with the given payload
 * arrives, or "timeout". Prints "ready" once it listens. For the scheduler
 * tests, which compare the time with the server's clock on the same host.
 *
 *	 qml_listen DBNAME PAYLOAD TIMEOUT_MS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#include "libpq-fe.h"

static double
wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	PGconn	   *conn;
	PGresult   *res;
	double		deadline;

	if (argc != 4)
	{
		fprintf(stderr, "usage: %s DBNAME PAYLOAD TIMEOUT_MS\n", argv[0]);
		return 2;
	}
	conn = PQsetdbLogin(NULL, NULL, NULL, NULL, argv[1], NULL, NULL);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "%s", PQerrorMessage(conn));
		return 1;
	}
	res = PQexec(conn, "LISTEN qml");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "%s", PQerrorMessage(conn));
		return 1;
	}
	PQclear(res);
	printf("ready\n");
	fflush(stdout);

	deadline = wall() + atoi(argv[3]) / 1000.0;
	for (;;)
	{
		PGnotify   *n;
		double		left = deadline - wall();
		struct timeval tv;
		fd_set		fds;
		int			sock = PQsocket(conn);

		while ((n = PQnotifies(conn)) != NULL)
		{
			int			match = strcmp(n->extra, argv[2]) == 0;

			PQfreemem(n);
			if (match)
			{
				printf("%.6f\n", wall());
				PQfinish(conn);
				return 0;
			}
		}
		if (left <= 0)
			break;
		FD_ZERO(&fds);
		FD_SET(sock, &fds);
		tv.tv_sec = (long) left;
		tv.tv_usec = (long) ((left - (long) left) * 1e6);
		if (select(sock + 1, &fds, NULL, NULL, &tv) < 0)
			break;
		if (!PQconsumeInput(conn))
			break;
	}
	printf("timeout\n");
	PQfinish(conn);
	return 1;
}
