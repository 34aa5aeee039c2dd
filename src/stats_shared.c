/*-------------------------------------------------------------------------
 *
 * stats_shared.c
 *	  Counts that transactions add up and the scheduler rolls up into a
 *	  table: the throughput per queue and minute (stats.c) and the jobs per
 *	  queue and state (job_counts.c). This file owns how a count gets from
 *	  a transaction to its table, exactly once.
 *
 * A transaction adds its counts in its own memory (a subtransaction that
 * rolls back drops its own). Just before it commits it reserves an entry
 * for each of them in a table in shared memory, keyed by database, minute
 * (QML_NO_MINUTE for job counts) and queue; when it commits, it adds them
 * there. The scheduler's pass (or qml.maintain()) collects a database's
 * entries, adds them to the table of their kind, and takes them out of
 * shared memory when its transaction commits, under an advisory lock so
 * that two passes never add the same counts twice. An entry reserved by
 * a committing transaction or taken by a roll-up not yet committed is
 * never freed, so a count cannot fall between a roll-up and a commit.
 *
 * Every enqueue counts twice (its queue's job count and its minute's
 * throughput), and sixteen producers of one queue all count in the same
 * two entries: so the common steps take no exclusive lock. A reservation
 * finds an existing entry under its partition's lock in shared mode and
 * pins it with an atomic add; only a new entry needs the lock exclusive.
 * The commit adds its counts and drops its pin with atomic adds, without
 * the lock: a pinned entry cannot be freed or moved, and a roll-up takes
 * out exactly what it read, so counts added meanwhile stay. An entry left
 * empty and unpinned stays until its partition needs the room (or a
 * roll-up takes its last counts out), as the lock its freeing needs is
 * the one the commit no longer takes. A reader may see a transaction's
 * counts while it adds them, one counter at a time; the jobs it changed
 * were visible already.
 *
 * When the shared table has no room for a count (one batch over thousands
 * of queues), the committing transaction writes that count to the kind's
 * table itself, as the roll-up would: the other tenants' counts keep their
 * room, and nothing is lost.
 *
 * A prepared transaction (two-phase commit) may stay prepared for a long
 * time, so it must not hold a row of those tables that the roll-up needs:
 * its job counts are given up and the job counts' table is built again
 * (job_counts.c); its throughput counts wait in its prepared_xact.c note
 * and are added here once it committed.
 *
 * Only databases with a scheduler count: elsewhere nobody would roll the
 * counts up, and the readers fall back to reading qml.jobs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "qml.h"

#define ENTRIES_PER_PARTITION 128
#define LOSS_SLOTS 64

typedef struct CountKey
{
	Oid			dboid;			/* InvalidOid: a free entry */
	int64		minute;			/* TimestampTz / USECS_PER_MINUTE, or
								 * QML_NO_MINUTE */
	char		queue[QML_QUEUE_MAXBYTES];
} CountKey;

typedef struct CountEntry
{
	CountKey	key;
	pg_atomic_uint64 n[QML_COUNTERS];	/* int64 counts, added without the
										 * lock while pinned */
	pg_atomic_uint32 pins;		/* committing transactions and roll-ups
								 * that reserved it */
} CountEntry;

typedef struct CountsShared
{
	pg_atomic_uint64 lost;		/* counts dropped (see qml_counts_lost) */
	uint64		instance;		/* this shared memory's, see qml_counts_instance */
	pg_atomic_uint64 losses[LOSS_SLOTS];	/* job counts lost, by database */
	CountEntry	entries[QML_STATS_PARTITIONS][ENTRIES_PER_PARTITION];
} CountsShared;

static CountsShared *cs = NULL;

/* counts of this transaction, one entry per queue, minute and subtransaction */
typedef struct PendingCount
{
	SubTransactionId subid;		/* first, for xact_list.c */
	char	   *queue;
	int64		minute;
	int64		n[QML_COUNTERS];
	CountEntry *reserved;		/* its entry, reserved before commit */
} PendingCount;

static QmlXactList pending = QML_XACT_KEYED_LIST(PendingCount, queue);
static int	counting = -1;		/* this transaction's look at the registry */
static bool loss_noted = false; /* this transaction's uncounted changes */

/* what this transaction's roll-ups took, to take out of shared memory */
typedef struct Taken
{
	SubTransactionId subid;		/* of the roll-up's subtransaction */
	CountEntry *entry;
	int64		n[QML_COUNTERS];
} Taken;

static Taken *taken = NULL;
static int	ntaken = 0;
static int	maxtaken = 0;
static SubTransactionId collected[2];	/* by kind: the subtransaction that
										 * rolled up, or none */

static QmlCountsWriter writers[2];

#define KIND_OF(minute) ((minute) == QML_NO_MINUTE ? 1 : 0)

Size
qml_counts_shmem_size(void)
{
	return sizeof(CountsShared);
}

void
qml_counts_shmem_init(void)
{
	bool		found;
	int			i;

	cs = ShmemInitStruct("qml statistics", sizeof(CountsShared), &found);
	if (!found)
	{
		CountEntry *e = &cs->entries[0][0];
		int			k;

		memset(cs, 0, sizeof(CountsShared));
		pg_atomic_init_u64(&cs->lost, 0);
		for (i = 0; i < LOSS_SLOTS; i++)
			pg_atomic_init_u64(&cs->losses[i], 0);
		for (i = 0; i < QML_STATS_PARTITIONS * ENTRIES_PER_PARTITION; i++)
		{
			for (k = 0; k < QML_COUNTERS; k++)
				pg_atomic_init_u64(&e[i].n[k], 0);
			pg_atomic_init_u32(&e[i].pins, 0);
		}
		/* new after every start and crash restart: counts kept before are gone */
		cs->instance = (uint64) GetCurrentTimestamp() ^ ((uint64) MyProcPid << 40);
	}
}

/* the kinds' writers: each adds counts to its table (SPI connected) */
void
qml_counts_set_writer(bool jobs, QmlCountsWriter writer)
{
	writers[jobs ? 1 : 0] = writer;
}

static bool
all_zero(const int64 *n)
{
	int			i;

	for (i = 0; i < QML_COUNTERS; i++)
		if (n[i] != 0)
			return false;
	return true;
}

/* an entry's counts */
static void
entry_read(CountEntry *e, int64 *n)
{
	int			k;

	for (k = 0; k < QML_COUNTERS; k++)
		n[k] = (int64) pg_atomic_read_u64(&e->n[k]);
}

static void
entry_add(CountEntry *e, const int64 *n, int sign)
{
	int			k;

	for (k = 0; k < QML_COUNTERS; k++)
		if (n[k] != 0)
			pg_atomic_fetch_add_u64(&e->n[k], sign * n[k]);
}

static bool
entry_empty(CountEntry *e)
{
	int64		n[QML_COUNTERS];

	entry_read(e, n);
	return all_zero(n);
}

/*
 * Whether nobody needs the entry any more: no pin and no count. Its
 * partition's lock is held exclusive, so no pin can be taken meanwhile; a
 * commit adds its counts before it drops its pin.
 */
static bool
entry_unused(CountEntry *e)
{
	if (pg_atomic_read_u32(&e->pins) != 0)
		return false;
	pg_read_barrier();
	return entry_empty(e);
}

/* the partition of a key: the queue's slot hash (wakeup.c) and the minute */
static int
partition_of(Oid dboid, int64 minute, const char *queue)
{
	uint32		h = hash_combine((uint32) qml_queue_slot(dboid, queue, strlen(queue)),
								 hash_bytes_uint32((uint32) minute));

	return (int) (h % QML_STATS_PARTITIONS);
}

/* the entry for a key in a partition (its lock held); NULL when none */
static CountEntry *
entry_find(int part, Oid dboid, int64 minute, const char *queue)
{
	int			i;

	for (i = 0; i < ENTRIES_PER_PARTITION; i++)
	{
		CountEntry *e = &cs->entries[part][i];

		if (e->key.dboid == dboid && e->key.minute == minute &&
			strcmp(e->key.queue, queue) == 0)
			return e;
	}
	return NULL;
}

/*
 * The entry for a key in a partition, made if need be, in a free entry or
 * else in one nobody uses any more (caller holds the lock exclusive); NULL
 * when full.
 */
static CountEntry *
entry_for(int part, Oid dboid, int64 minute, const char *queue)
{
	CountEntry *e = entry_find(part, dboid, minute, queue);
	CountEntry *unused = NULL;
	int			i;
	int			k;

	if (e != NULL)
		return e;
	for (i = 0; i < ENTRIES_PER_PARTITION && e == NULL; i++)
	{
		if (cs->entries[part][i].key.dboid == InvalidOid)
			e = &cs->entries[part][i];
		else if (unused == NULL && entry_unused(&cs->entries[part][i]))
			unused = &cs->entries[part][i];
	}
	if (e == NULL)
		e = unused;
	if (e != NULL)
	{
		memset(&e->key, 0, sizeof(CountKey));
		e->key.dboid = dboid;
		e->key.minute = minute;
		strlcpy(e->key.queue, queue, QML_QUEUE_MAXBYTES);
		for (k = 0; k < QML_COUNTERS; k++)
			pg_atomic_init_u64(&e->n[k], 0);
		pg_atomic_init_u32(&e->pins, 0);
	}
	return e;
}

/*
 * Pins the entry for a key: found under the partition's lock in shared
 * mode, made under it in exclusive mode. NULL when the partition is full.
 */
static CountEntry *
entry_pin(int part, Oid dboid, int64 minute, const char *queue)
{
	LWLock	   *lock = qml_lwlock(QML_LOCK_STATS_FIRST + part);
	CountEntry *e;

	LWLockAcquire(lock, LW_SHARED);
	e = entry_find(part, dboid, minute, queue);
	if (e != NULL)
		pg_atomic_fetch_add_u32(&e->pins, 1);
	LWLockRelease(lock);
	if (e != NULL)
		return e;
	LWLockAcquire(lock, LW_EXCLUSIVE);
	e = entry_for(part, dboid, minute, queue);
	if (e != NULL)
		pg_atomic_fetch_add_u32(&e->pins, 1);
	LWLockRelease(lock);
	return e;
}

static LWLock *
partition_lock(CountEntry *e)
{
	int			part = (e - &cs->entries[0][0]) / ENTRIES_PER_PARTITION;

	return qml_lwlock(QML_LOCK_STATS_FIRST + part);
}

/* frees an entry nobody needs any more; caller holds its partition's lock */
static void
free_if_unused(CountEntry *e)
{
	if (entry_unused(e))
		e->key.dboid = InvalidOid;
}

/* counts in one order for every writer: (minute, queue) */
static int
counted_cmp(const void *a, const void *b)
{
	const QmlCounted *x = a;
	const QmlCounted *y = b;

	if (x->minute != y->minute)
		return x->minute < y->minute ? -1 : 1;
	return strcmp(x->queue, y->queue);
}

/*
 * Adds rows to their kinds' tables as the committing user could not: as
 * the owner of schema qml, in a restricted operation. In one order, so
 * that two transactions that counted the same queues in other orders wait
 * for each other rather than deadlock at commit.
 */
static void
write_directly(QmlCounted *rows, int n)
{
	Oid			save_user;
	int			save_sec;
	Oid			nsp = get_namespace_oid("qml", true);
	HeapTuple	tup;
	Oid			owner;
	int			kind;

	if (!OidIsValid(nsp))
		return;					/* the extension was dropped: nothing to count */
	qsort(rows, n, sizeof(QmlCounted), counted_cmp);
	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	if (!HeapTupleIsValid(tup))
		return;
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);

	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	/* the writers' statements take the latest snapshot themselves */
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (kind = 0; kind < 2; kind++)
	{
		QmlCounted *of_kind = palloc(Max(n, 1) * sizeof(QmlCounted));
		int			k = 0;
		int			i;

		for (i = 0; i < n; i++)
			if (KIND_OF(rows[i].minute) == kind)
				of_kind[k++] = rows[i];
		if (k > 0 && writers[kind] != NULL)
			writers[kind] (of_kind, k);
	}
	SPI_finish();
	PopActiveSnapshot();
	SetUserIdAndSecContext(save_user, save_sec);
}

/*
 * Before commit: reserves each count's entry; writes the counts that find
 * no room to their tables.
 */
static void
reserve_or_write(void)
{
	QmlCounted *rows = NULL;
	int			nrows = 0;
	int			i;

	for (i = 0; i < pending.n; i++)
	{
		PendingCount *c = qml_xact_list_at(&pending, i);
		CountEntry *e;

		if (all_zero(c->n))
			continue;
		e = entry_pin(partition_of(MyDatabaseId, c->minute, c->queue),
					  MyDatabaseId, c->minute, c->queue);
		c->reserved = e;
		if (e != NULL)
			continue;
		if (rows == NULL)
			rows = palloc((pending.n - i) * sizeof(QmlCounted));
		rows[nrows].minute = c->minute;
		rows[nrows].queue = c->queue;
		memcpy(rows[nrows].n, c->n, sizeof(c->n));
		nrows++;
		/* written now: nothing is left to add at commit */
		memset(c->n, 0, sizeof(c->n));
	}
	if (nrows > 0)
		write_directly(rows, nrows);
}

/*
 * Before PREPARE: what the transaction counted cannot wait in memory. Its
 * job counts are given up (the table is built again); its throughput
 * counts travel in its prepared_xact.c note, which publishes them if it
 * commits (qml_counts_each_prepared, qml_counts_publish_prepared).
 */
static void
give_up_prepared(void)
{
	int			i;

	for (i = 0; i < pending.n; i++)
	{
		PendingCount *c = qml_xact_list_at(&pending, i);

		if (!all_zero(c->n) && c->minute == QML_NO_MINUTE)
			qml_counts_note_uncounted();
	}
}

/* for prepared_xact.c at PREPARE: each throughput count this transaction made */
void
qml_counts_each_prepared(void (*fn) (const char *queue, int64 minute,
									 const int64 *n))
{
	int			i;

	for (i = 0; i < pending.n; i++)
	{
		PendingCount *c = qml_xact_list_at(&pending, i);

		if (!all_zero(c->n) && c->minute != QML_NO_MINUTE)
			fn(c->queue, c->minute, c->n);
	}
}

/*
 * For prepared_xact.c once a prepared transaction committed: its throughput
 * counts (n[QML_COUNTERS]) go to shared memory as its commit would have
 * put them. No transaction of its own is there to write them when the table
 * is full, so they are reported lost then, as are those its note had no
 * room for (a NULL queue).
 */
void
qml_counts_publish_prepared(const char *queue, int64 minute, const int64 *n)
{
	CountEntry *e = NULL;
	int			k;

	if (!qml_shmem_ready())
		return;
	if (queue != NULL)
	{
		int			part = partition_of(MyDatabaseId, minute, queue);

		LWLockAcquire(qml_lwlock(QML_LOCK_STATS_FIRST + part), LW_EXCLUSIVE);
		e = entry_for(part, MyDatabaseId, minute, queue);
		if (e != NULL)
			entry_add(e, n, 1);
		LWLockRelease(qml_lwlock(QML_LOCK_STATS_FIRST + part));
	}
	if (e == NULL)
		for (k = 0; k < QML_COUNTERS; k++)
			pg_atomic_fetch_add_u64(&cs->lost, (uint64) Abs(n[k]));
}

/*
 * After commit (add = true) or abort: the reserved entries' counts, added
 * without their lock (see the top of the file).
 */
static void
release_reserved(bool add)
{
	int			i;

	for (i = 0; i < pending.n; i++)
	{
		PendingCount *c = qml_xact_list_at(&pending, i);
		CountEntry *e = c->reserved;

		if (e == NULL)
		{
			/* counted after the reservations (cannot happen): no room kept */
			if (add && !all_zero(c->n))
			{
				if (c->minute == QML_NO_MINUTE)
					qml_counts_note_loss(MyDatabaseId);
				else
					pg_atomic_fetch_add_u64(&cs->lost, 1);
			}
			continue;
		}
		if (add)
			entry_add(e, c->n, 1);
		/* a full barrier: whoever sees the pin gone sees the counts */
		pg_atomic_fetch_sub_u32(&e->pins, 1);
	}
}

/*
 * A roll-up committed (committed = true): its counts leave shared memory.
 * Or it rolled back: its entries only lose their pin. From `from` on.
 */
static void
take_out(int from, bool committed)
{
	int			i;

	for (i = from; i < ntaken; i++)
	{
		CountEntry *e = taken[i].entry;

		LWLockAcquire(partition_lock(e), LW_EXCLUSIVE);
		if (committed)
			entry_add(e, taken[i].n, -1);
		pg_atomic_fetch_sub_u32(&e->pins, 1);
		free_if_unused(e);
		LWLockRelease(partition_lock(e));
	}
	ntaken = from;
}

static void
forget(void)
{
	qml_xact_list_forget(&pending);
	taken = NULL;				/* it lived in the transaction's memory */
	ntaken = maxtaken = 0;
	collected[0] = collected[1] = InvalidSubTransactionId;
	counting = -1;
	loss_noted = false;
}

static void
counts_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (qml_shmem_ready())
				reserve_or_write();
			break;
		case XACT_EVENT_PRE_PREPARE:
			/* its roll-up would take counts out of shared memory at PREPARE */
			if (ntaken > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that ran qml.maintain()"),
						 errhint("Run qml.maintain() in a transaction of its own.")));
			if (qml_shmem_ready())
				give_up_prepared();
			break;
		case XACT_EVENT_COMMIT:
			if (qml_shmem_ready())
			{
				release_reserved(true);
				take_out(0, true);
			}
			forget();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (qml_shmem_ready())
			{
				release_reserved(false);
				take_out(0, false);
			}
			forget();
			break;
		case XACT_EVENT_PREPARE:
			forget();
			break;
		default:
			break;
	}
}

static void
counts_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	int			k;

	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	qml_xact_list_drop_aborted(&pending, mySubid);
	/* a roll-up that rolled back wrote nothing: it takes nothing out */
	k = ntaken;
	while (k > 0 && taken[k - 1].subid >= mySubid)
		k--;
	take_out(k, false);
	for (k = 0; k < 2; k++)
		if (collected[k] >= mySubid)
			collected[k] = InvalidSubTransactionId;
}

void
qml_counts_init(void)
{
	RegisterXactCallback(counts_xact_callback, NULL);
	RegisterSubXactCallback(counts_subxact_callback, NULL);
}

/* whether this transaction's counts are kept (a scheduler serves the database) */
bool
qml_counts_live(void)
{
	if (counting < 0)
		counting = qml_registry_has_scheduler(MyDatabaseId) ? 1 : 0;
	return counting == 1;
}

/* adds `delta` to counter `counter` of (queue, minute) in this transaction */
void
qml_counts_add(const char *queue, int64 minute, int counter, int64 delta)
{
	PendingCount *c;

	Assert(counter >= 0 && counter < QML_COUNTERS);
	c = qml_xact_list_find(&pending, queue, minute, false);
	if (c == NULL)
	{
		c = qml_xact_list_add(&pending, queue, minute);
		c->minute = minute;
	}
	c->n[counter] += delta;
}

/*
 * A step of a roll-up (SPI connected): this database's counts of one kind
 * go to their table through the kind's writer, and leave shared memory
 * when this transaction commits. With `discard`, they only leave (the
 * table was rebuilt from qml.jobs, which holds them already). Once per
 * kind and transaction.
 */
void
qml_counts_roll_up(bool jobs, bool discard)
{
	int			kind = jobs ? 1 : 0;
	QmlCounted *rows;
	int			n = 0;
	int			part;
	int			i;

	if (!qml_shmem_ready() || collected[kind] != InvalidSubTransactionId)
		return;
	collected[kind] = GetCurrentSubTransactionId();
	if (taken == NULL)
	{
		maxtaken = 2 * QML_STATS_PARTITIONS * ENTRIES_PER_PARTITION;
		taken = MemoryContextAlloc(TopTransactionContext, maxtaken * sizeof(Taken));
	}
	rows = palloc(QML_STATS_PARTITIONS * ENTRIES_PER_PARTITION * sizeof(QmlCounted));
	for (part = 0; part < QML_STATS_PARTITIONS; part++)
	{
		LWLockAcquire(qml_lwlock(QML_LOCK_STATS_FIRST + part), LW_EXCLUSIVE);
		for (i = 0; i < ENTRIES_PER_PARTITION; i++)
		{
			CountEntry *e = &cs->entries[part][i];

			if (e->key.dboid != MyDatabaseId || KIND_OF(e->key.minute) != kind)
				continue;
			/* what it reads it takes out; commits may add more meanwhile */
			entry_read(e, rows[n].n);
			if (all_zero(rows[n].n))
			{
				free_if_unused(e);
				continue;
			}
			/* pinned: other commits may bring it to zero before this one */
			pg_atomic_fetch_add_u32(&e->pins, 1);
			rows[n].minute = e->key.minute;
			rows[n].queue = pstrdup(e->key.queue);
			taken[ntaken].subid = collected[kind];
			taken[ntaken].entry = e;
			memcpy(taken[ntaken].n, rows[n].n, sizeof(rows[n].n));
			ntaken++;
			n++;
		}
		LWLockRelease(qml_lwlock(QML_LOCK_STATS_FIRST + part));
	}
	if (n > 0 && !discard && writers[kind] != NULL)
		writers[kind] (rows, n);
}

/*
 * This database's counts of one kind still in shared memory, committed but
 * not rolled up; *rows is palloc'd. Read them under the lock that keeps
 * roll-ups out, with the table they go to.
 */
int
qml_counts_pending(bool jobs, QmlCounted **rows)
{
	int			kind = jobs ? 1 : 0;
	int			n = 0;
	int			part;
	int			i;

	*rows = palloc(QML_STATS_PARTITIONS * ENTRIES_PER_PARTITION * sizeof(QmlCounted));
	if (!qml_shmem_ready())
		return 0;
	for (part = 0; part < QML_STATS_PARTITIONS; part++)
	{
		LWLockAcquire(qml_lwlock(QML_LOCK_STATS_FIRST + part), LW_SHARED);
		for (i = 0; i < ENTRIES_PER_PARTITION; i++)
		{
			CountEntry *e = &cs->entries[part][i];

			if (e->key.dboid != MyDatabaseId || KIND_OF(e->key.minute) != kind)
				continue;
			entry_read(e, (*rows)[n].n);
			if (all_zero((*rows)[n].n))
				continue;
			(*rows)[n].minute = e->key.minute;
			(*rows)[n].queue = pstrdup(e->key.queue);
			n++;
		}
		LWLockRelease(qml_lwlock(QML_LOCK_STATS_FIRST + part));
	}
	return n;
}

/* this transaction's own job counts, not committed yet (no copy of names) */
int
qml_counts_own(QmlCounted **rows)
{
	int			n = 0;
	int			i;

	*rows = palloc(Max(pending.n, 1) * sizeof(QmlCounted));
	for (i = 0; i < pending.n; i++)
	{
		PendingCount *c = qml_xact_list_at(&pending, i);

		if (c->minute != QML_NO_MINUTE)
			continue;
		(*rows)[n].minute = c->minute;
		(*rows)[n].queue = c->queue;
		memcpy((*rows)[n].n, c->n, sizeof(c->n));
		n++;
	}
	return n;
}

/*
 * The launcher frees the counts of databases no scheduler will roll up;
 * each job count freed is a loss (qml_counts_lost).
 */
void
qml_counts_forget_databases(const Oid *keep, int nkeep)
{
	int			part;
	int			i;
	int			k;

	if (!qml_shmem_ready())
		return;
	for (part = 0; part < QML_STATS_PARTITIONS; part++)
	{
		LWLockAcquire(qml_lwlock(QML_LOCK_STATS_FIRST + part), LW_EXCLUSIVE);
		for (i = 0; i < ENTRIES_PER_PARTITION; i++)
		{
			CountEntry *e = &cs->entries[part][i];

			if (e->key.dboid == InvalidOid || pg_atomic_read_u32(&e->pins) > 0)
				continue;
			for (k = 0; k < nkeep; k++)
				if (keep[k] == e->key.dboid)
					break;
			if (k < nkeep)
				continue;
			if (KIND_OF(e->key.minute) == 1)
				qml_counts_note_loss(e->key.dboid);
			e->key.dboid = InvalidOid;
		}
		LWLockRelease(qml_lwlock(QML_LOCK_STATS_FIRST + part));
	}
}

/* counts added after their transaction's reservations, which were dropped */
uint64
qml_counts_dropped(void)
{
	return qml_shmem_ready() ? pg_atomic_read_u64(&cs->lost) : 0;
}

/* identifies this shared memory: counts kept in another one are gone */
uint64
qml_counts_instance(void)
{
	return qml_shmem_ready() ? cs->instance : 0;
}

/*
 * Job counts of database `dboid` were not kept (a change made where no
 * scheduler counted it, counts freed, a TRUNCATE): its table of job counts
 * must be built again from qml.jobs. Databases share slots: another one's
 * loss costs a rebuild, never a wrong count.
 */
void
qml_counts_note_loss(Oid dboid)
{
	if (qml_shmem_ready())
		pg_atomic_fetch_add_u64(&cs->losses[dboid % LOSS_SLOTS], 1);
}

/* this transaction changes jobs no scheduler counts: noted once */
void
qml_counts_note_uncounted(void)
{
	if (!loss_noted)
		qml_counts_note_loss(MyDatabaseId);
	loss_noted = true;
}

uint64
qml_counts_losses(Oid dboid)
{
	return qml_shmem_ready() ? pg_atomic_read_u64(&cs->losses[dboid % LOSS_SLOTS]) : 0;
}
