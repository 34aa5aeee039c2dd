/*
 * bench/redis_bench.c
 *	  qml's side of bench/redis.sh, with the same shape as
 *	  bench/bullmq/bench.mjs so the two compare figure by figure:
 *		redis_bench URL JOBS THREADS SINGLE
 *	  prints one line per figure, "name jobs/s":
 *		enqueue_bulk	JOBS jobs by qml_enqueue_batch, 1,000 a call
 *		process			the worker runtime, THREADS no-op handlers, from its
 *						start until every job is handled and its stop (which
 *						flushes the last completions) returned
 *		e2e				JOBS / (enqueue_bulk time + process time)
 *		enqueue_single	SINGLE jobs by qml_enqueue, one call after another
 *	  Works on any store URL (redis://, redis+cluster://, memory:, postgresql://).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qml.h"
#include "rt_bench.h"

static void
check(qml_status st, const char *what)
{
	if (st != QML_OK)
	{
		fprintf(stderr, "redis_bench: %s: %s\n", what, qml_errmsg());
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	qml_config *config = qml_config_new();
	qml_client *client;
	qml_registry *reg = qml_registry_new();
	qml_server_config *sc = qml_server_config_new("bench");
	qml_server *server;
	qml_job_spec *specs;
	qml_enqueue_options opt = {.queue = "bench"};
	int			jobs,
				threads,
				single;
	double		t0,
				tenq,
				tproc;

	if (argc != 5)
	{
		fprintf(stderr, "usage: redis_bench URL JOBS THREADS SINGLE\n");
		return 2;
	}
	jobs = atoi(argv[2]);
	threads = atoi(argv[3]);
	single = atoi(argv[4]);
	check(qml_config_set_database_url(config, argv[1]), "url");
	check(qml_config_set_pool_size(config, 1, threads + 4), "pool");
	check(qml_client_open(config, &client), "open");
	specs = calloc((size_t) jobs, sizeof(*specs));
	for (int i = 0; i < jobs; i++)
	{
		specs[i].method = "noop";
		specs[i].arguments = "[1]";
		specs[i].options = opt;
	}

	t0 = secs();
	for (int i = 0; i < jobs; i += 1000)
		check(qml_enqueue_batch(client, specs + i, jobs - i < 1000 ? (size_t) (jobs - i) : 1000,
								NULL), "enqueue_batch");
	tenq = secs() - t0;
	printf("enqueue_bulk %.0f\n", jobs / tenq);

	check(qml_registry_add(reg, "noop", bench_noop, NULL), "registry");
	qml_server_config_set_workers(sc, threads);
	{
		const char *queues[] = {"bench"};

		check(qml_server_config_set_queues(sc, queues, 1), "queues");
	}
	check(qml_server_new(client, reg, sc, &server), "server");
	t0 = secs();
	check(qml_server_start(server), "start");
	while (atomic_load(&bench_handled) < jobs)
	{
		struct timespec ts = {0, 1000000};

		nanosleep(&ts, NULL);
	}
	qml_server_stop(server);
	tproc = secs() - t0;
	printf("process %.0f\n", jobs / tproc);
	printf("e2e %.0f\n", jobs / (tenq + tproc));
	qml_server_free(server);

	t0 = secs();
	for (int i = 0; i < single; i++)
		check(qml_enqueue(client, "noop", "[1]", &opt, NULL), "enqueue");
	printf("enqueue_single %.0f\n", single / (secs() - t0));

	free(specs);
	qml_client_close(client);
	qml_registry_free(reg);
	qml_server_config_free(sc);
	qml_config_free(config);
	return 0;
}
