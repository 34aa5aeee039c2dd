/*-------------------------------------------------------------------------
 *
 * xact_list.c
 *	  Lists of what a transaction remembers until it, or its statement,
 *	  ends: the history a statement will write (job_history.c), the queues
 *	  to wake at commit (wakeup.c), the heads to move back (queue_head.c),
 *	  the counts to publish at commit (stats.c).
 *
 * A list lives in a memory context under the transaction's, so it is gone
 * with the transaction; each entry starts with the id of the
 * subtransaction that added it, so a subtransaction that rolls back takes
 * its entries with it. Entries are only ever added at the end, stamped
 * with the subtransaction current then, so the entries of a subtransaction
 * and of those under it are always the list's tail.
 *
 * A keyed list (QML_XACT_KEYED_LIST) also finds its entries by name and
 * tag (a queue and a minute, say) through a hash table, so that a batch
 * touching forty thousand queues costs forty thousand lookups, not the
 * square of it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "qml.h"

typedef struct ListKey
{
	const char *name;			/* the entry's own copy once entered */
	int64		tag;
} ListKey;

typedef struct ListIndexEntry
{
	ListKey		key;
	int			at;				/* the latest entry with this key */
} ListIndexEntry;

static uint32
list_key_hash(const void *key, Size keysize)
{
	const ListKey *k = key;

	return hash_combine(hash_bytes((const unsigned char *) k->name, strlen(k->name)),
						hash_bytes_uint32((uint32) k->tag ^ (uint32) (k->tag >> 32)));
}

static int
list_key_match(const void *key1, const void *key2, Size keysize)
{
	const ListKey *a = key1;
	const ListKey *b = key2;

	return a->tag == b->tag ? strcmp(a->name, b->name) : 1;
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

static HTAB *
list_index(QmlXactList *list)
{
	HASHCTL		ctl;

	if (list->index != NULL)
		return list->index;
	ctl.keysize = sizeof(ListKey);
	ctl.entrysize = sizeof(ListIndexEntry);
	ctl.hash = list_key_hash;
	ctl.match = list_key_match;
	ctl.hcxt = qml_xact_list_memory(list);
	list->index = hash_create("qml transaction list index", 64, &ctl,
							  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE |
							  HASH_CONTEXT);
	return list->index;
}

#define entry_name(list, e) (*(char **) ((char *) (e) + (list)->name_offset))

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
			repalloc_huge(list->entries, list->max * list->entry_size) :
			palloc(list->max * list->entry_size);
		if (list->name_offset >= 0)
			list->tags = list->tags ?
				repalloc_huge(list->tags, list->max * sizeof(int64)) :
				palloc(list->max * sizeof(int64));
	}
	entry = qml_xact_list_at(list, list->n++);
	memset(entry, 0, list->entry_size);
	*(SubTransactionId *) entry = GetCurrentSubTransactionId();
	MemoryContextSwitchTo(old);
	return entry;
}

/*
 * The latest entry of a keyed list with `name` and `tag` that the current
 * subtransaction may change: one it or a subtransaction under it added (a
 * parent's entry must stay as it is should this subtransaction roll back),
 * or with any_subxact any of them. NULL when there is none.
 */
void *
qml_xact_list_find(QmlXactList *list, const char *name, int64 tag,
				   bool any_subxact)
{
	ListKey		key = {name, tag};
	ListIndexEntry *ie;
	void	   *entry;

	Assert(list->name_offset >= 0);
	if (list->index == NULL)
		return NULL;
	ie = hash_search(list->index, &key, HASH_FIND, NULL);
	if (ie == NULL)
		return NULL;
	entry = qml_xact_list_at(list, ie->at);
	/* entries of this subtransaction and under it are the list's tail */
	if (!any_subxact &&
		*(SubTransactionId *) entry < GetCurrentSubTransactionId())
		return NULL;
	return entry;
}

/* a new zeroed entry of a keyed list, with its own copy of `name` */
void *
qml_xact_list_add(QmlXactList *list, const char *name, int64 tag)
{
	void	   *entry = qml_xact_list_push(list);
	char	   *copy = MemoryContextStrdup(qml_xact_list_memory(list), name);
	ListKey		key = {copy, tag};
	ListIndexEntry *ie;
	bool		found;

	Assert(list->name_offset >= 0);
	entry_name(list, entry) = copy;
	list->tags[list->n - 1] = tag;
	ie = hash_search(list_index(list), &key, HASH_ENTER, &found);
	ie->key.name = copy;
	ie->at = list->n - 1;
	return entry;
}

/* subtransaction `subid` rolled back: drop what it and its children added */
void
qml_xact_list_drop_aborted(QmlXactList *list, SubTransactionId subid)
{
	int			keep = list->n;

	while (keep > 0 &&
		   *(SubTransactionId *) qml_xact_list_at(list, keep - 1) >= subid)
	{
		keep--;
		if (list->index != NULL)
		{
			void	   *entry = qml_xact_list_at(list, keep);
			ListKey		key = {entry_name(list, entry), list->tags[keep]};
			ListIndexEntry *ie = hash_search(list->index, &key, HASH_FIND, NULL);

			/* an older entry with the key stays, unindexed: one is made anew */
			if (ie != NULL && ie->at == keep)
				hash_search(list->index, &key, HASH_REMOVE, NULL);
		}
	}
#ifdef USE_ASSERT_CHECKING
	for (int i = 0; i < keep; i++)
		Assert(*(SubTransactionId *) qml_xact_list_at(list, i) < subid);
#endif
	list->n = keep;
}

/* empties the list and frees its memory, within the transaction */
void
qml_xact_list_clear(QmlXactList *list)
{
	if (list->cxt != NULL)
		MemoryContextReset(list->cxt);
	list->entries = NULL;
	list->tags = NULL;
	list->index = NULL;
	list->n = list->max = 0;
}

/* the transaction ended: its memory, and the list's with it, is gone */
void
qml_xact_list_forget(QmlXactList *list)
{
	list->cxt = NULL;
	list->entries = NULL;
	list->tags = NULL;
	list->index = NULL;
	list->n = list->max = 0;
}
