/*-------------------------------------------------------------------------
 *
 * xact_list.c
 *	  Lists of what a transaction remembers until it, or its statement,
 *	  ends: the history a statement will write (job_history.c), the queues
 *	  to wake at commit (wakeup.c), the heads to move back (queue_head.c),
 *	  the counts to publish at commit (stats.c).
 *
 * A list lives in the transaction's memory, so it is gone with the
 * transaction: in TopTransactionContext itself, or, for a list emptied
 * within the transaction (job_history.c's, at each statement's end), in a
 * context of its own under it, which emptying resets. A context made for
 * each list (on its first entry, deleted at the end) cost a transaction of
 * one enqueue about 1.1k instructions of the 8-10k qml adds (callgrind).
 *
 * Each entry starts with the id of the subtransaction that added it, so a
 * subtransaction that rolls back takes its entries with it. Entries are only ever added at the end, stamped
 * with the subtransaction current then, so the entries of a subtransaction
 * and of those under it are always the list's tail.
 *
 * A keyed list (QML_XACT_KEYED_LIST) also finds its entries by name and
 * tag (a queue and a minute, say) through a hash table, so that a batch
 * touching forty thousand queues costs forty thousand lookups, not the
 * square of it. The table is made once the list holds INDEX_MIN entries:
 * before that a look through the list is cheaper: making the three
 * tables of a transaction of one enqueue (an entry in the wakeups, the
 * queue heads and the counts) was 1.5% of its server CPU.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "qml.h"

/* entries a keyed list holds before it finds them through a hash table */
#define INDEX_MIN 16

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
	if (!list->own_memory)
		return TopTransactionContext;
	if (list->cxt == NULL)
		list->cxt = AllocSetContextCreate(TopTransactionContext,
										  "qml transaction list",
										  ALLOCSET_SMALL_SIZES);
	return list->cxt;
}

#define entry_name(list, e) (*(char **) ((char *) (e) + (list)->name_offset))

/* enters entry `at` in the index as the latest with its key */
static void
index_entry(QmlXactList *list, int at)
{
	ListKey		key = {entry_name(list, qml_xact_list_at(list, at)), list->tags[at]};
	ListIndexEntry *ie;
	bool		found;

	ie = hash_search(list->index, &key, HASH_ENTER, &found);
	ie->key.name = key.name;
	ie->at = at;
}

/* makes the index of a keyed list, of the entries it already has */
static void
make_index(QmlXactList *list)
{
	HASHCTL		ctl;
	int			i;

	ctl.keysize = sizeof(ListKey);
	ctl.entrysize = sizeof(ListIndexEntry);
	ctl.hash = list_key_hash;
	ctl.match = list_key_match;
	ctl.hcxt = qml_xact_list_memory(list);
	list->index = hash_create("qml transaction list index", 64, &ctl,
							  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE |
							  HASH_CONTEXT);
	for (i = 0; i < list->n; i++)
		index_entry(list, i);
}

/* the latest entry with `name` and `tag` of a list not (yet) indexed */
static void *
scan_for(QmlXactList *list, const char *name, int64 tag)
{
	int			i;

	for (i = list->n - 1; i >= 0; i--)
	{
		void	   *entry = qml_xact_list_at(list, i);

		if (list->tags[i] == tag && strcmp(entry_name(list, entry), name) == 0)
			return entry;
	}
	return NULL;
}

/*
 * Makes room for twice the entries (16 at first). A keyed list's tags go in
 * the same allocation, after the entries: one palloc for both.
 */
static void
grow(QmlXactList *list)
{
	int			max = list->max ? list->max * 2 : 16;
	Size		tags_at = MAXALIGN((Size) max * list->entry_size);
	Size		size = tags_at +
		(list->name_offset >= 0 ? (Size) max * sizeof(int64) : 0);
	char	   *mem = MemoryContextAllocHuge(qml_xact_list_memory(list), size);

	if (list->n > 0)
	{
		memcpy(mem, list->entries, (Size) list->n * list->entry_size);
		if (list->name_offset >= 0)
			memcpy(mem + tags_at, list->tags, (Size) list->n * sizeof(int64));
		pfree(list->entries);
	}
	list->entries = mem;
	if (list->name_offset >= 0)
		list->tags = (int64 *) (mem + tags_at);
	list->max = max;
}

/* a new zeroed entry, stamped with the current subtransaction */
void *
qml_xact_list_push(QmlXactList *list)
{
	void	   *entry;

	if (list->n == list->max)
		grow(list);
	entry = qml_xact_list_at(list, list->n++);
	memset(entry, 0, list->entry_size);
	*(SubTransactionId *) entry = GetCurrentSubTransactionId();
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
		entry = scan_for(list, name, tag);
	else
	{
		ie = hash_search(list->index, &key, HASH_FIND, NULL);
		entry = ie == NULL ? NULL : qml_xact_list_at(list, ie->at);
	}
	if (entry == NULL)
		return NULL;
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

	Assert(list->name_offset >= 0);
	entry_name(list, entry) = MemoryContextStrdup(qml_xact_list_memory(list), name);
	list->tags[list->n - 1] = tag;
	if (list->index != NULL)
		index_entry(list, list->n - 1);
	else if (list->n >= INDEX_MIN)
		make_index(list);
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
	Assert(list->own_memory);
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
