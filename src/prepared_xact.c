/*-------------------------------------------------------------------------
 *
 * prepared_xact.c
 *	  What a prepared transaction (PREPARE TRANSACTION) owes the queues it
 *	  enqueued into or claimed from, until COMMIT or ROLLBACK PREPARED.
 *
 * A commit moves its queues' heads back (queue_head.c) and wakes their
 * workers (wakeup.c) from transaction callbacks, with what the transaction
 * remembered in its own memory. A prepared transaction ends later, in
 * COMMIT or ROLLBACK PREPARED, often in another session, where that memory
 * does not exist and where no code of ours runs for it. Meanwhile busy
 * claims would move the head past the jobs it enqueued (not visible yet)
 * or claimed (locked), and nothing would move it back: in a busy queue
 * those jobs would wait until the queue ran dry.
 *
 * So the choice is to be conservative from PREPARE on: the transaction
 * leaves an entry in shared memory with its xid, its database, the queue
 * slots (qml_queue_slot() modulo QML_PREPARED_SLOTS, as heads and wakeup
 * slots are hashed) whose heads it would move, and the names of the queues
 * it would wake. While the entry exists, the heads of its slots are neither
 * used nor moved (claims start at the queue's start: slower, never wrong),
 * and making the entry moved them back, so no head passes its jobs. Once
 * its xid is no longer in progress, the next commit in its database (the
 * COMMIT PREPARED's own, normally) settles it: the heads are moved back
 * once more, the entry goes, and that commit wakes the queues' waiting
 * fetches and notifies their listeners as if it had enqueued into them,
 * and wakes the scheduler, for its claims whose session ended and its
 * scheduled jobs; the statistics counts it kept are published if it
 * committed. A rollback wakes them needlessly, which costs one empty claim
 * each and a scheduler pass. A transaction that ran a maintenance pass
 * cannot be prepared (stats_shared.c refuses it): the pass's roll-up takes
 * counts out of shared memory at commit.
 *
 * The entries live in shared memory, which a restart starts afresh while
 * prepared transactions survive it. So after a start no head is used or
 * moved until every transaction older than the start has ended; their
 * COMMIT PREPARED wakes nobody and counts nothing, though: workers find
 * those jobs when they next poll (docs/internals.md, limits). A transaction that wakes more queues than
 * the names fit in notifies with an empty payload, which means "any
 * queue".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/twophase.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "qml.h"

/* bytes of queue names an entry keeps, NUL-separated */
#define NAMES_BYTES 4096
/* bytes of statistics counts an entry keeps (PackedCount, then the queue) */
#define COUNTS_BYTES 4096

typedef struct PackedCount
{
	int64		minute;
	int64		n[QML_COUNTERS];	/* a throughput count's counters */
} PackedCount;

typedef struct PreparedEntry
{
	TransactionId xid;			/* InvalidTransactionId: free */
	Oid			dboid;
	bool		settling;		/* a commit is settling it */
	bool		names_full;		/* some queues to wake are not in names */
	int			names_len;
	uint8		slots[QML_PREPARED_SLOTS / 8];	/* heads to distrust */
	char		names[NAMES_BYTES]; /* queues to wake */
	int			counts_len;
	int64		counts_lost;	/* counts that did not fit */
	char		counts[COUNTS_BYTES];	/* statistics (stats.c) */
} PreparedEntry;

typedef struct PreparedShared
{
	slock_t		lock;
	/* since the start, until transactions from before it have ended */
	pg_atomic_uint32 after_start;
	TransactionId start_xid;	/* the first xid after it, once read */
	TimestampTz start_checked;	/* when transactions were last looked at */
	pg_atomic_uint32 used;		/* entries in use: none, nothing to do */
	int			nentries;
	pg_atomic_uint32 pins[QML_PREPARED_SLOTS];	/* entries per slot */
	PreparedEntry entries[FLEXIBLE_ARRAY_MEMBER];
} PreparedShared;

static PreparedShared *prep = NULL;

/* the entry this backend took at PRE_PREPARE, until PREPARE is done */
static int	my_entry = -1;
static TransactionId my_xid = InvalidTransactionId;	/* its xid */
static bool opened = false;		/* open to settling */

/* what this transaction would move and wake, gathered at PRE_PREPARE */
static PreparedEntry *building = NULL;

/*
 * One entry for every transaction that can be prepared at once, and room
 * for those whose COMMIT PREPARED is not settled yet.
 */
static int
prepared_entries(void)
{
	return max_prepared_xacts > 0 ? 2 * max_prepared_xacts + 8 : 0;
}

Size
qml_prepared_shmem_size(void)
{
	return add_size(offsetof(PreparedShared, entries),
					mul_size(prepared_entries(), sizeof(PreparedEntry)));
}

void
qml_prepared_shmem_init(void)
{
	bool		found;
	int			i;

	prep = ShmemInitStruct("qml prepared transactions", qml_prepared_shmem_size(),
						   &found);
	if (found)
		return;
	memset(prep, 0, qml_prepared_shmem_size());
	SpinLockInit(&prep->lock);
	pg_atomic_init_u32(&prep->after_start, max_prepared_xacts > 0);
	prep->start_xid = InvalidTransactionId;
	pg_atomic_init_u32(&prep->used, 0);
	for (i = 0; i < QML_PREPARED_SLOTS; i++)
		pg_atomic_init_u32(&prep->pins[i], 0);
	prep->nentries = prepared_entries();
}

static int
slot_of(const char *queue)
{
	return qml_queue_slot(MyDatabaseId, queue, strlen(queue)) % QML_PREPARED_SLOTS;
}

/*
 * Whether transactions prepared before the server started may still be
 * open: the oldest running transaction is older than the first xid read
 * after the start (so is a session's that began before that read, which
 * ends soon). Looked at ten times a second at most; when they have all
 * ended, every head moves back once, for claims begun before.
 */
static bool
start_pins_heads(void)
{
	TimestampTz now;
	TransactionId start_xid;
	bool		look;

	if (pg_atomic_read_u32(&prep->after_start) == 0)
		return false;
	if (RecoveryInProgress())
		return true;
	now = GetCurrentTimestamp();
	SpinLockAcquire(&prep->lock);
	start_xid = prep->start_xid;
	look = now - prep->start_checked >= 100 * 1000;
	if (look)
		prep->start_checked = now;
	SpinLockRelease(&prep->lock);
	if (!look)
		return true;
	if (!TransactionIdIsValid(start_xid))
	{
		start_xid = ReadNextTransactionId();
		SpinLockAcquire(&prep->lock);
		if (!TransactionIdIsValid(prep->start_xid))
			prep->start_xid = start_xid;
		start_xid = prep->start_xid;
		SpinLockRelease(&prep->lock);
	}
	if (TransactionIdPrecedes(GetOldestActiveTransactionId(), start_xid))
		return true;
	if (pg_atomic_exchange_u32(&prep->after_start, 0) != 0)
	{
		int			slot;

		for (slot = 0; slot < QML_PREPARED_SLOTS; slot++)
			qml_head_move_back_slot(slot);
	}
	return false;
}

/*
 * Whether a prepared transaction, or one not settled yet, may move the
 * head of `queue`: then its head is not to be used or moved.
 */
bool
qml_prepared_pins_head(const char *queue)
{
	if (prep == NULL)
		return false;
	if (start_pins_heads())
		return true;
	if (pg_atomic_read_u32(&prep->used) == 0)
		return false;
	return pg_atomic_read_u32(&prep->pins[slot_of(queue)]) != 0;
}

/* queue_head.c's pending moves: the slot's head is distrusted */
static void
add_head(const char *queue)
{
	int			slot = slot_of(queue);

	building->slots[slot / 8] |= 1 << (slot % 8);
}

/* wakeup.c's pending queues: woken when the transaction is settled */
static void
add_wake(const char *queue)
{
	int			len = strlen(queue) + 1;

	add_head(queue);
	if (building->names_len + len <= NAMES_BYTES)
	{
		memcpy(building->names + building->names_len, queue, len);
		building->names_len += len;
	}
	else
		building->names_full = true;
}

/* the transaction's throughput counts: published if it commits */
static void
add_count(const char *queue, int64 minute, const int64 *n)
{
	PackedCount c;
	int			len = strlen(queue) + 1;
	int			k;

	if (building->counts_len + (int) sizeof(c) + len > COUNTS_BYTES)
	{
		for (k = 0; k < QML_COUNTERS; k++)
			building->counts_lost += Abs(n[k]);
		return;
	}
	c.minute = minute;
	memcpy(c.n, n, sizeof(c.n));
	memcpy(building->counts + building->counts_len, &c, sizeof(c));
	memcpy(building->counts + building->counts_len + sizeof(c), queue, len);
	building->counts_len += sizeof(c) + len;
}

/* publishes the counts of an entry whose transaction committed */
static void
publish_counts(const PreparedEntry *e)
{
	int			pos = 0;

	while (pos < e->counts_len)
	{
		PackedCount c;
		const char *queue = e->counts + pos + sizeof(c);

		memcpy(&c, e->counts + pos, sizeof(c));
		qml_counts_publish_prepared(queue, c.minute, c.n);
		pos += sizeof(c) + strlen(queue) + 1;
	}
	if (e->counts_lost > 0)
	{
		int64		lost[QML_COUNTERS] = {e->counts_lost};

		qml_counts_publish_prepared(NULL, 0, lost);
	}
}

static bool
has_slot(const PreparedEntry *e, int slot)
{
	return (e->slots[slot / 8] & (1 << (slot % 8))) != 0;
}

/* frees entry i, which this backend holds (reserved or settling) */
static void
free_entry(int i)
{
	PreparedEntry *e = &prep->entries[i];
	int			slot;

	for (slot = 0; slot < QML_PREPARED_SLOTS; slot++)
		if (has_slot(e, slot))
			pg_atomic_fetch_sub_u32(&prep->pins[slot], 1);
	SpinLockAcquire(&prep->lock);
	e->xid = InvalidTransactionId;
	e->settling = false;
	SpinLockRelease(&prep->lock);
	pg_atomic_fetch_sub_u32(&prep->used, 1);
}

/* every head of the entry's slots moves back below any job */
static void
move_heads_back(const PreparedEntry *e)
{
	int			slot;

	for (slot = 0; slot < QML_PREPARED_SLOTS; slot++)
		if (has_slot(e, slot))
			qml_head_move_back_slot(slot);
}

/*
 * PRE_PREPARE: leaves the transaction's entry. An error here still fails
 * the PREPARE cleanly (the transaction rolls back).
 */
static void
leave_entry(void)
{
	TransactionId xid = GetTopTransactionIdIfAny();
	PreparedEntry *e = NULL;
	int			slot;
	int			i;

	if (!qml_shmem_ready() || prep->nentries == 0 || !TransactionIdIsValid(xid))
		return;
	building = MemoryContextAllocZero(TopTransactionContext, sizeof(PreparedEntry));
	qml_head_each_pending(add_head);
	qml_wakeup_each_pending(add_wake);
	qml_counts_each_prepared(add_count);
	for (slot = 0; slot < QML_PREPARED_SLOTS; slot++)
		if (has_slot(building, slot))
			break;
	/* nothing to move, wake or count, no scheduled job to wake the scheduler for */
	if (slot == QML_PREPARED_SLOTS && !qml_wakeup_wants_scheduler() &&
		building->counts_len == 0 && building->counts_lost == 0)
		return;

	/* reserved under the lock (settling: no one else looks at it) ... */
	SpinLockAcquire(&prep->lock);
	for (i = 0; i < prep->nentries; i++)
		if (!TransactionIdIsValid(prep->entries[i].xid))
		{
			e = &prep->entries[i];
			e->xid = xid;
			e->settling = true;
			my_entry = i;
			my_xid = xid;
			break;
		}
	SpinLockRelease(&prep->lock);
	if (e == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many prepared transactions with qml work"),
				 errdetail("At most %d can wait for COMMIT PREPARED or ROLLBACK PREPARED at once.",
						   prep->nentries),
				 errhint("Finish prepared transactions, or raise max_prepared_transactions.")));
	/* ... filled and pinned outside it, then open to settling */
	memcpy(e->slots, building->slots, sizeof(e->slots));
	memcpy(e->names, building->names, building->names_len);
	e->names_len = building->names_len;
	e->names_full = building->names_full;
	memcpy(e->counts, building->counts, building->counts_len);
	e->counts_len = building->counts_len;
	e->counts_lost = building->counts_lost;
	e->dboid = MyDatabaseId;
	pg_atomic_fetch_add_u32(&prep->used, 1);
	for (slot = 0; slot < QML_PREPARED_SLOTS; slot++)
		if (has_slot(e, slot))
			pg_atomic_fetch_add_u32(&prep->pins[slot], 1);
	SpinLockAcquire(&prep->lock);
	e->settling = false;
	SpinLockRelease(&prep->lock);
	opened = true;
	/* pinned first: a head moved after this is not used or moved again */
	move_heads_back(e);
}

/*
 * Settles the entries of this database whose transactions have ended:
 * moves their heads back, frees them, and has this transaction wake their
 * queues when it commits (wakeup.c). Called before a commit, while
 * NOTIFY can still be queued.
 */
void
qml_prepared_settle(void)
{
	int			i;

	if (prep == NULL || pg_atomic_read_u32(&prep->used) == 0)
		return;
	for (i = 0; i < prep->nentries; i++)
	{
		PreparedEntry *e = &prep->entries[i];
		TransactionId xid;
		PreparedEntry copy;
		const char *name;
		int			slot;

		SpinLockAcquire(&prep->lock);
		xid = e->settling || e->dboid != MyDatabaseId ? InvalidTransactionId : e->xid;
		SpinLockRelease(&prep->lock);
		/* still prepared (or preparing) */
		if (!TransactionIdIsValid(xid) || TransactionIdIsInProgress(xid))
			continue;
		SpinLockAcquire(&prep->lock);
		if (e->xid != xid || e->settling)
		{
			SpinLockRelease(&prep->lock);
			continue;
		}
		e->settling = true;
		SpinLockRelease(&prep->lock);

		/* ours now; ended and visible: back once more, while still pinned */
		copy = *e;
		move_heads_back(&copy);
		free_entry(i);
		if (TransactionIdDidCommit(xid))
			publish_counts(&copy);

		for (name = copy.names; name < copy.names + copy.names_len;
			 name += strlen(name) + 1)
			qml_wake_queue_at_commit(name, 0);
		/* the queues not named: by slot, and an empty payload */
		for (slot = 0; copy.names_full && slot < QML_PREPARED_SLOTS; slot++)
			if (has_slot(&copy, slot))
				qml_wake_queue_at_commit(NULL, slot);

		/*
		 * Its claims may belong to a session that has ended meanwhile (the
		 * scheduler skipped them while they were locked), and its
		 * scheduled jobs may fall due before the scheduler would wake: a
		 * pass at once.
		 */
		qml_sessions_look_again();
		qml_wake_scheduler_at_commit(DT_NOBEGIN);
	}
}

/*
 * Whether this backend may free entry i, which its failed PREPARE left: the
 * abort ends the xid before this callback runs, and a commit meanwhile may
 * have settled and freed the entry (and another PREPARE taken it since).
 */
static bool
take_back(int i)
{
	PreparedEntry *e = &prep->entries[i];
	bool		mine;

	SpinLockAcquire(&prep->lock);
	/* settling: a commit is settling it, unless we never opened it */
	mine = e->xid == my_xid && (!e->settling || !opened);
	if (mine)
		e->settling = true;
	SpinLockRelease(&prep->lock);
	return mine;
}

static void
prepared_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			leave_entry();
			break;
		case XACT_EVENT_PREPARE:
			/* the entry is the prepared transaction's now */
			my_entry = -1;
			opened = false;
			building = NULL;
			break;
		case XACT_EVENT_ABORT:
			/* a PREPARE that failed after PRE_PREPARE */
			if (my_entry >= 0 && take_back(my_entry))
				free_entry(my_entry);
			my_entry = -1;
			opened = false;
			building = NULL;
			break;
		default:
			break;
	}
}

void
qml_prepared_init(void)
{
	RegisterXactCallback(prepared_xact_callback, NULL);
}
