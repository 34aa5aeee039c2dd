/*
 * store_pg.c
 *	  The PostgreSQL store: its table of operations and its life (the
 *	  connection pool, warmed at open, and auto-migrate).
 *
 * Everything a job needs to be correct lives in the extension; this store
 * only calls its SQL contract. Maintenance is the extension's scheduler
 * (or qml.maintain() by hand), so the runtime's tick has nothing to do.
 */
#include <stdlib.h>

#include "store_pg.h"

static qml_status
pg_open(qml_client *client, const char *url, qml_store **out)
{
	qml_store  *store = calloc(1, sizeof(*store));
	qml_status	st;

	(void) url;					/* client->config->database_url, as libpq takes it */
	*out = NULL;
	if (store == NULL)
		return qml__nomem();
	store->ops = &qml__store_postgres;
	store->client = client;
	if ((st = qml__pool_new(client->config, &client->pool)) != QML_OK ||
		(st = qml__pool_warm(client->pool)) != QML_OK ||
		(client->config->auto_migrate &&
		 (st = pg_migrate(store, true, NULL)) != QML_OK))
	{
		qml__pool_free(client->pool);
		client->pool = NULL;
		free(store);
		return st;
	}
	*out = store;
	return QML_OK;
}

static void
pg_close(qml_store *store)
{
	qml__pool_free(store->client->pool);
	store->client->pool = NULL;
	free(store);
}

const qml_store_ops qml__store_postgres = {
	.name = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.schema_version = pg_schema_version,
	.migrate = pg_migrate,
	.health = pg_health,
	.enqueue = pg_enqueue,
	.enqueue_batch = pg_enqueue_batch,
	.session_open = pg_session_open,
	.session_close = pg_session_close,
	.session_close_reported = pg_session_close_reported,
	.session_ok = pg_session_ok,
	.session_fd = pg_session_fd,
	.session_drain = pg_session_drain,
	.fetch = pg_fetch,
	.complete = pg_complete,
	.fail = pg_fail,
	.release = pg_release,
	.heartbeat = pg_heartbeat,
	.maintain = pg_maintain,
	.tick = NULL,
	.tick_ms = 0,
	.session_tick = pg_session_tick,
	.job_delete = pg_job_delete,
	.job_requeue = pg_job_requeue,
	.queue_pause = pg_queue_pause,
	.recurring_add = pg_recurring_add,
	.recurring_remove = pg_recurring_remove,
	.recurring_list = pg_recurring_list,
	.recurring_run = pg_recurring_run,
	.job_get = pg_job_get,
	.job_list = pg_job_list,
	.job_events = pg_job_events,
	.stats = pg_stats,
	.overview = pg_overview,
	.throughput = pg_throughput,
	.workers = pg_workers,
};
