/*-------------------------------------------------------------------------
 *
 * claim_holders.c
 *	  Which rows a claim's walk may leave behind its queue's head though it
 *	  did not take them: rows held by a transaction certain to move the
 *	  head back before them should it roll back.
 *
 * A claim that meets a row another transaction holds does not take it,
 * and the head may move past it only if the row cannot become claimable
 * again without a move back (queue_head.c). A session that locked the row
 * by hand (SELECT ... FOR UPDATE) and lets go of it moves nothing back, nor
 * does a DELETE or an UPDATE with the triggers off that rolls back (nor a
 * DELETE on schema 1.0, which has no DELETE trigger); at 16
 * claimers, though, the rows a claim meets held are mostly the rows of the
 * claims running beside it, and stopping at those made every later claim
 * walk again the entries of the jobs claimed past them (case 3 of
 * bench/run.sh lost 6%).
 *
 * So every transaction that will move a queue's head back if it rolls
 * back (a claim, or any change or DELETE of a waiting job through the row
 * triggers: queue_head.c's pending moves) publishes, here, its transaction
 * id, the queue and the lowest key it will move back to. A row may be
 * passed when the version the claim saw was updated or deleted (not only
 * locked) by
 *
 *	- a transaction published for the row's queue at a key at or before
 *	  the row's: if it rolls back, its move back comes after this look,
 *	  and so after the claim read the head's moves back (qml_head_get),
 *	  and either stops the claim's move of the head or moves the head
 *	  back after it; if it commits, the job was claimed or deleted, or
 *	  it waits elsewhere and that commit moves the head back to it;
 *	- or a transaction that has committed: the same, and it can no
 *	  longer roll back.
 *
 * Everything else stops the head: a lock, a multixact, a subtransaction's
 * change (its id is not the one published), a transaction that is not
 * published (or no longer: it unpublishes before it makes its moves, so
 * that whatever sees it published sees its moves still to come).
 *
 * Only the top level's moves are published: a subtransaction's may be
 * made, and forgotten, when it rolls back. A transaction that found its
 * slot taken (a hash collision) is simply not published.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "qml.h"

#define HOLDER_SLOTS 1024

typedef struct HolderSlot
{
	slock_t		mutex;
	TransactionId xid;			/* InvalidTransactionId: free */
	QmlHeadKey	key;			/* the lowest it moves back to if it rolls back */
	char		queue[QML_QUEUE_MAXBYTES];
} HolderSlot;

static HolderSlot *holders = NULL;

Size
qml_holders_shmem_size(void)
{
	return mul_size(HOLDER_SLOTS, sizeof(HolderSlot));
}

void
qml_holders_shmem_init(void)
{
	bool		found;
	int			i;

	holders = ShmemInitStruct("qml claim holders", qml_holders_shmem_size(), &found);
	if (found)
		return;
	memset(holders, 0, qml_holders_shmem_size());
	for (i = 0; i < HOLDER_SLOTS; i++)
		SpinLockInit(&holders[i].mutex);
}

static int
slot_of(TransactionId xid, const char *queue)
{
	uint32		h = (uint32) qml_queue_slot(MyDatabaseId, queue, strlen(queue));

	return (int) ((h ^ (xid * 2654435761U)) % HOLDER_SLOTS);
}

/*
 * Publishes that this transaction, if it rolls back, moves the head of
 * `queue` back to `key` or before. Returns the slot to pass to
 * qml_holder_lower() and qml_holder_unpublish(), or -1 when it could not
 * (no transaction id, or the slot is taken). Top level only: see above.
 */
int
qml_holder_publish(const char *queue, const QmlHeadKey *key)
{
	TransactionId xid = GetTopTransactionIdIfAny();
	HolderSlot *s;
	int			slot;
	bool		taken;

	if (holders == NULL || !TransactionIdIsValid(xid) ||
		GetCurrentSubTransactionId() != TopSubTransactionId)
		return -1;
	slot = slot_of(xid, queue);
	s = &holders[slot];
	SpinLockAcquire(&s->mutex);
	taken = TransactionIdIsValid(s->xid);
	if (!taken)
	{
		s->xid = xid;
		s->key = *key;
		strlcpy(s->queue, queue, QML_QUEUE_MAXBYTES);
	}
	SpinLockRelease(&s->mutex);
	return taken ? -1 : slot;
}

/* the published key of `slot` goes back to `key` */
void
qml_holder_lower(int slot, const QmlHeadKey *key)
{
	HolderSlot *s = &holders[slot];

	SpinLockAcquire(&s->mutex);
	if (qml_head_key_cmp(key, &s->key) < 0)
		s->key = *key;
	SpinLockRelease(&s->mutex);
}

/* before the transaction makes its moves (see above) */
void
qml_holder_unpublish(int slot)
{
	HolderSlot *s = &holders[slot];

	SpinLockAcquire(&s->mutex);
	s->xid = InvalidTransactionId;
	SpinLockRelease(&s->mutex);
}

/* whether `xid` is published for `queue` at `key` or before */
static bool
published(TransactionId xid, const char *queue, const QmlHeadKey *key)
{
	HolderSlot *s = &holders[slot_of(xid, queue)];
	bool		found;

	SpinLockAcquire(&s->mutex);
	found = TransactionIdEquals(s->xid, xid) && strcmp(s->queue, queue) == 0 &&
		qml_head_key_cmp(&s->key, key) <= 0;
	SpinLockRelease(&s->mutex);
	return found;
}

/*
 * Whether a claim that did not take the row of `queue` at `key`, version
 * `tid` of `rel`, may leave the head past it (see above). Call after the
 * claim tried to take it.
 */
bool
qml_holder_may_pass(Relation rel, ItemPointer tid, const char *queue,
					const QmlHeadKey *key)
{
	Buffer		buf;
	Page		page;
	OffsetNumber off = ItemPointerGetOffsetNumber(tid);
	uint16		infomask = HEAP_XMAX_INVALID;
	TransactionId xmax = InvalidTransactionId;

	if (holders == NULL)
		return false;
	/* the header as a lock or update last left it: under the page's lock */
	buf = ReadBuffer(rel, ItemPointerGetBlockNumber(tid));
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (off >= FirstOffsetNumber && off <= PageGetMaxOffsetNumber(page) &&
		ItemIdIsNormal(PageGetItemId(page, off)))
	{
		HeapTupleHeader h = (HeapTupleHeader) PageGetItem(page, PageGetItemId(page, off));

		infomask = h->t_infomask;
		xmax = HeapTupleHeaderGetRawXmax(h);
	}
	UnlockReleaseBuffer(buf);
	if ((infomask & (HEAP_XMAX_INVALID | HEAP_XMAX_IS_MULTI)) ||
		HEAP_XMAX_IS_LOCKED_ONLY(infomask) || !TransactionIdIsNormal(xmax))
		return false;
	return published(xmax, queue, key) || TransactionIdDidCommit(xmax);
}
