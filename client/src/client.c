/*
 * client.c
 *	  The client: opens the store its URL names (store.h), and the calls
 *	  about the store as a whole (schema, health, monitoring reads), each
 *	  checked here and handed to the store.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "store.h"

qml_status
qml_client_open(const qml_config *config, qml_client **out)
{
	qml_client *client;
	const qml_store_ops *ops;
	qml_status	st;

	if (out == NULL)
		return qml__error(QML_ERR_INVALID, "client must not be NULL");
	*out = NULL;
	client = calloc(1, sizeof(*client));
	if (client == NULL)
		return qml__nomem();
	client->config = qml__config_copy(config);
	if (client->config == NULL)
	{
		free(client);
		return qml__nomem();
	}
	if ((config == NULL && (st = qml_config_from_env(client->config)) != QML_OK) ||
		(st = qml__store_for_url(client->config->database_url, &ops)) != QML_OK ||
		(st = ops->open(client, client->config->database_url, &client->store)) != QML_OK)
	{
		qml_client_close(client);
		return st;
	}
	*out = client;
	return QML_OK;
}

void
qml_client_close(qml_client *client)
{
	if (client == NULL)
		return;
	if (client->store)
		client->store->ops->close(client->store);
	qml_config_free(client->config);
	free(client);
}

qml_store *
qml__client_store(qml_client *client)
{
	return client ? client->store : NULL;
}

/* ---- schema ---- */

qml_status
qml_schema_version(qml_client *client, char **installed, char **available)
{
	qml_store  *s;
	qml_status	st;
	char	   *i = NULL,
			   *a = NULL;

	if ((st = qml__need_store(client, &s)) != QML_OK)
		return st;
	st = s->ops->schema_version(s, &i, available ? &a : NULL);
	if (installed)
		*installed = i;
	else
		free(i);
	if (available)
		*available = a;
	else
		free(a);
	return st;
}

qml_status
qml_schema_exists(qml_client *client, bool *exists)
{
	char	   *installed = NULL;
	qml_status	st;

	if (exists == NULL)
		return qml__error(QML_ERR_INVALID, "exists must not be NULL");
	*exists = false;
	st = qml_schema_version(client, &installed, NULL);
	if (st == QML_OK)
		*exists = installed != NULL;
	free(installed);
	return st;
}

qml_status
qml_migrate_if_needed(qml_client *client, bool *migrated)
{
	qml_store  *s;
	qml_status	st;

	if (migrated)
		*migrated = false;
	if ((st = qml__need_store(client, &s)) != QML_OK)
		return st;
	return s->ops->migrate(s, true, migrated);
}

qml_status
qml_migrate(qml_client *client)
{
	qml_store  *s;
	qml_status	st;

	if ((st = qml__need_store(client, &s)) != QML_OK)
		return st;
	return s->ops->migrate(s, false, NULL);
}

void
qml_health_free(qml_health *h)
{
	if (h == NULL)
		return;
	free(h->server_version);
	free(h->database);
	free(h->user);
	free(h->installed_version);
	free(h->available_version);
	free(h->slot_wait_since);
	free(h);
}

qml_status
qml_health_check(qml_client *client, qml_health **out)
{
	qml_store  *s;
	qml_status	st;

	if (client == NULL || out == NULL)
		return qml__error(QML_ERR_INVALID, "client and health must not be NULL");
	*out = NULL;
	if ((st = qml__need_store(client, &s)) != QML_OK)
		return st;
	return s->ops->health(s, out);
}

/* ---- monitoring ---- */

void
qml_overview_free(qml_overview *o)
{
	if (o == NULL)
		return;
	for (size_t i = 0; i < o->count; i++)
		free(o->queues[i].queue);
	free(o->queues);
	free(o);
}

void
qml_workers_free(qml_worker_info *w, size_t count)
{
	for (size_t i = 0; w && i < count; i++)
		free(w[i].worker);
	free(w);
}

qml_status
qml__check_minutes(int minutes)
{
	if (minutes < 1 || minutes > 1440)
		return qml__error(QML_ERR_INVALID, "minutes must be between 1 and 1440, not %d",
						  minutes);
	return QML_OK;
}

static qml_status
check_out(qml_client *client, const void *out, const void *count)
{
	if (client == NULL)
		return qml__error(QML_ERR_INVALID, "client must not be NULL");
	if (out == NULL || count == NULL)
		return qml__error(QML_ERR_INVALID, "output pointers must not be NULL");
	return QML_OK;
}

qml_status
qml_overview_get(qml_client *client, qml_overview **out)
{
	qml_status	st;

	if ((st = check_out(client, out, out)) != QML_OK)
		return st;
	*out = NULL;
	return client->store->ops->overview(client->store, NULL, out);
}

qml_status
qml_throughput_get(qml_client *client, int minutes, qml_throughput_bucket **out,
				   size_t *count)
{
	qml_status	st;

	if ((st = check_out(client, out, count)) != QML_OK)
		return st;
	*out = NULL;
	*count = 0;
	if ((st = qml__check_minutes(minutes)) != QML_OK)
		return st;
	return client->store->ops->throughput(client->store, NULL, minutes, out, count);
}

qml_status
qml_workers_get(qml_client *client, qml_worker_info **out, size_t *count)
{
	qml_status	st;

	if ((st = check_out(client, out, count)) != QML_OK)
		return st;
	*out = NULL;
	*count = 0;
	return client->store->ops->workers(client->store, out, count);
}
