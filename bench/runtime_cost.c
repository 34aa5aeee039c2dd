/*
 * bench/runtime_cost.c
 *	  The runtime's claims and completions with fixed batch sizes, for
 *	  counting instructions per job (bench/runtime_cost.sh): the runtime's
 *	  own store calls (libqml's fetch and flush sessions, as
 *	  client/src/fetcher.c and flusher.c open and call them), without its
 *	  threads, so that every run sends the same statements.
 *
 *	  runtime-cost DB JOBS FETCH COMPLETE
 *
 * Enqueues JOBS no-op jobs as bench/runtime.c does (the table emptied
 * first, then VACUUM ANALYZE), prints the fetch and flush sessions'
 * backend pids, then claims FETCH jobs at a time on the fetch session and
 * completes them COMPLETE at a time on the flush session until the queue
 * is empty. The two backends' instructions for two job counts give the
 * cost of a job, server side; the program itself under callgrind gives
 * the client side of the same calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "internal.h"
#include "store_pg.h"
#include "pq_bench.h"

static qml_store_session *
open_session(qml_client *client, qml_session_kind kind, const char *appname,
			 const char *worker)
{
	static const char *const queues[] = {"default"};
	qml_session_config cfg = {
		.kind = kind, .appname = appname, .worker = worker,
		.queues = queues, .nqueues = 1, .lease_ms = 300000
	};
	qml_store_session *s = NULL;

	if (client->store->ops->session_open(client->store, &cfg, &s) != QML_OK)
	{
		fprintf(stderr, "runtime-cost: %s\n", qml_errmsg());
		exit(1);
	}
	return s;
}

int
main(int argc, char **argv)
{
	const char *worker = "bench@host:1:1";
	char		q[512];
	PGconn	   *admin;
	qml_config *cfg;
	qml_client *client = NULL;
	const qml_store_ops *ops;
	qml_store_session *fs,
			   *cs;
	qml_store_job **got;
	int64_t    *ids;
	int			njobs,
				fetch_batch,
				complete_batch,
				held = 0,
				done_total = 0;

	if (argc != 5 || (njobs = atoi(argv[2])) < 1 || (fetch_batch = atoi(argv[3])) < 1 ||
		(complete_batch = atoi(argv[4])) < 1)
	{
		fprintf(stderr, "usage: runtime-cost DB JOBS FETCH COMPLETE\n");
		return 2;
	}
	snprintf(q, sizeof(q), "dbname=%s", argv[1]);
	admin = PQconnectdb(q);
	if (PQstatus(admin) != CONNECTION_OK)
	{
		fprintf(stderr, "runtime-cost: %s", PQerrorMessage(admin));
		return 1;
	}
	exec_or_die(admin, "TRUNCATE qml.jobs, qml.job_events_1_1");
	snprintf(q, sizeof(q),
			 "SELECT count(*) FROM qml.enqueue_batch((SELECT jsonb_agg(jsonb_build_object("
			 "'method', 'noop', 'arguments', jsonb_build_array(g))) FROM generate_series(1, %d) g))",
			 njobs);
	exec_or_die(admin, q);
	exec_or_die(admin, "VACUUM ANALYZE qml.jobs");

	cfg = qml_config_new();
	snprintf(q, sizeof(q), "dbname=%s", argv[1]);
	qml_config_set_database_url(cfg, q);
	qml_config_set_pool_size(cfg, 1, 4);
	if (qml_client_open(cfg, &client) != QML_OK)
	{
		fprintf(stderr, "runtime-cost: %s\n", qml_errmsg());
		return 1;
	}
	qml_config_free(cfg);
	ops = client->store->ops;
	fs = open_session(client, QML_SESSION_FETCH, "qml worker cost", worker);
	cs = open_session(client, QML_SESSION_FLUSH, "qml flusher cost", worker);
	printf("fetch %d flush %d\n", PQbackendPID(qml__pg_session_conn(fs)->pg),
		   PQbackendPID(qml__pg_session_conn(cs)->pg));
	fflush(stdout);

	got = calloc((size_t) fetch_batch, sizeof(*got));
	ids = calloc((size_t) complete_batch + (size_t) fetch_batch, sizeof(*ids));
	for (;;)
	{
		int			n = 0;

		if (ops->fetch(fs, fetch_batch, 0, got, &n) != QML_OK)
		{
			fprintf(stderr, "runtime-cost: fetch: %s\n", qml_errmsg());
			return 1;
		}
		for (int i = 0; i < n; i++)
		{
			ids[held++] = got[i]->id;
			free(got[i]);
		}
		if (held > 0 && (held >= complete_batch || n == 0))
		{
			size_t		done = 0;

			if (ops->complete(cs, worker, ids, NULL, (size_t) held, &done) != QML_OK)
			{
				fprintf(stderr, "runtime-cost: complete: %s\n", qml_errmsg());
				return 1;
			}
			done_total += (int) done;
			held = 0;
		}
		if (n == 0)
			break;
	}
	if (done_total != njobs)
		fprintf(stderr, "runtime-cost: completed %d of %d jobs\n", done_total, njobs);
	ops->session_close(fs);
	ops->session_close(cs);
	qml_client_close(client);
	free(got);
	free(ids);
	PQfinish(admin);
	return done_total == njobs ? 0 : 1;
}
