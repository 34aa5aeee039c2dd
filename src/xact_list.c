/*-------------------------------------------------------------------------
 *
 * xact_list.c
 *	  Lists of what a transaction remembers until it, or its statement,
 *	  ends: the history a statement will write (job_history.c), the queues
 *	  to wake at commit (wakeup.c), the counts to publish at commit
 *	  (stats.c).
 *
 * A list lives in a memory context under the transaction's, so it is gone
 * with the transaction; each entry starts with the id of the
 * subtransaction that added it, so a subtransaction that rolls back takes
 * its entries with it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"

#include "qml.h"

/* a new zeroed entry, stamped with the current subtransaction */
void *
qml_xact_list_push(QmlXactList *list)
{
	MemoryContext old = MemoryContextSwitchTo(qml_xact_list_memory(list));
	void	   *entry;

	if (list->n == list->max)
	{
		list->max = list->max ? list->max * 2 : 16;
		list->entries = list->entries ?
			repalloc(list->entries, list->max * list->entry_size) :
			palloc(list->max * list->entry_size);
	}
	entry = qml_xact_list_at(list, list->n++);
	memset(entry, 0, list->entry_size);
	*(SubTransactionId *) entry = GetCurrentSubTransactionId();
	MemoryContextSwitchTo(old);
	return entry;
}

/* where to allocate what the entries point to (names, messages) */
MemoryContext
qml_xact_list_memory(QmlXactList *list)
{
	if (list->cxt == NULL)
		list->cxt = AllocSetContextCreate(TopTransactionContext,
										  "qml transaction list",
										  ALLOCSET_SMALL_SIZES);
	return list->cxt;
}

/* subtransaction `subid` rolled back: drop what it and its children added */
void
qml_xact_list_drop_aborted(QmlXactList *list, SubTransactionId subid)
{
	int			keep = 0;
	int			i;

	for (i = 0; i < list->n; i++)
	{
		void	   *entry = qml_xact_list_at(list, i);

		if (*(SubTransactionId *) entry < subid)
		{
			if (keep != i)
				memcpy(qml_xact_list_at(list, keep), entry, list->entry_size);
			keep++;
		}
	}
	list->n = keep;
}

/* empties the list and frees its memory, within the transaction */
void
qml_xact_list_clear(QmlXactList *list)
{
	if (list->cxt != NULL)
		MemoryContextReset(list->cxt);
	list->entries = NULL;
	list->n = list->max = 0;
}

/* the transaction ended: its memory, and the list's with it, is gone */
void
qml_xact_list_forget(QmlXactList *list)
{
	list->cxt = NULL;
	list->entries = NULL;
	list->n = list->max = 0;
}
