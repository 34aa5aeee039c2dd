/*
 * registry.c
 *	  Handlers by method name. A server freezes a sorted copy at creation,
 *	  so worker threads look methods up without locks and the caller may
 *	  keep changing (or free) its registry.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

qml_registry *
qml_registry_new(void)
{
	return calloc(1, sizeof(qml_registry));
}

void
qml_registry_free(qml_registry *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->count; i++)
		free(r->entries[i].method);
	free(r->entries);
	free(r);
}

qml_status
qml_registry_add(qml_registry *r, const char *method, qml_handler_fn fn,
				 void *user_data)
{
	char	   *copy;

	if (r == NULL || fn == NULL)
		return qml__error(QML_ERR_INVALID, "registry and handler must not be NULL");
	if (method != NULL && qml__utf8_chars(method) < 0)
		return qml__error(QML_ERR_INVALID, "method is not valid UTF-8");
	if (method == NULL || method[0] == '\0' || qml__utf8_chars(method) > 1000)
		return qml__error(QML_ERR_INVALID, "method must have 1 to 1000 characters");
	for (size_t i = 0; i < r->count; i++)
	{
		if (strcmp(r->entries[i].method, method) == 0)
		{
			r->entries[i].fn = fn;
			r->entries[i].user_data = user_data;
			return QML_OK;
		}
	}
	if (r->count == r->cap)
	{
		qml_handler_entry *e = qml__grow(r->entries, &r->cap, r->count + 1, 8,
										 sizeof(*e));

		if (e == NULL)
			return qml__nomem();
		r->entries = e;
	}
	if ((copy = qml__strdup(method)) == NULL)
		return qml__nomem();
	r->entries[r->count].method = copy;
	r->entries[r->count].fn = fn;
	r->entries[r->count].user_data = user_data;
	r->count++;
	return QML_OK;
}

qml_status
qml_registry_set_fallback(qml_registry *r, qml_handler_fn fn, void *user_data)
{
	if (r == NULL)
		return qml__error(QML_ERR_INVALID, "registry must not be NULL");
	r->fallback = fn;
	r->fallback_data = user_data;
	return QML_OK;
}

size_t
qml_registry_count(const qml_registry *r)
{
	return r ? r->count : 0;
}

static int
by_method(const void *a, const void *b)
{
	return strcmp(((const qml_handler_entry *) a)->method,
				  ((const qml_handler_entry *) b)->method);
}

qml_registry *
qml__registry_freeze(const qml_registry *r)
{
	qml_registry *copy = qml_registry_new();

	if (copy == NULL)
		return NULL;
	for (size_t i = 0; r && i < r->count; i++)
	{
		if (qml_registry_add(copy, r->entries[i].method, r->entries[i].fn,
							 r->entries[i].user_data) != QML_OK)
		{
			qml_registry_free(copy);
			return NULL;
		}
	}
	if (r)
	{
		copy->fallback = r->fallback;
		copy->fallback_data = r->fallback_data;
	}
	if (copy->count > 1)
		qsort(copy->entries, copy->count, sizeof(qml_handler_entry), by_method);
	return copy;
}

const qml_handler_entry *
qml__registry_find(const qml_registry *r, const char *method)
{
	qml_handler_entry key;

	if (r->count == 0)
		return NULL;
	key.method = (char *) method;
	return bsearch(&key, r->entries, r->count, sizeof(qml_handler_entry), by_method);
}
