/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  qml's shared memory when the library is preloaded: the hooks that
 *	  size and set up every module's part, and the registry of schedulers.
 *
 * The registry has one entry per database that has (or recently had) a
 * scheduler: its pid and latch, when it will wake by itself (so that a
 * commit with an earlier due time wakes it, and only then), and whether it
 * must leave the database (DROP DATABASE and friends need it to themselves).
 * It also says before when nothing falls due, so that fetch need not look
 * for due jobs to promote until then (worker_api.c), whether the scheduler
 * found the extension (or left because it did not), and since when the
 * launcher has waited for a background worker slot to start one there.
 * It holds the launcher's latch and the databases where CREATE EXTENSION
 * qml committed, for the launcher to start their schedulers. One LWLock
 * guards it; every access is a few loads and stores.
 *
 * Every transaction that changes jobs asks whether its database has a
 * scheduler (whether its counts are kept, stats_shared.c). Even taken
 * shared, the lock is a cache line every committing backend writes, so
 * the answer is remembered with the registry's count of schedulers that
 * came and went, which is only read: asked again, a backend takes the
 * lock only when that count moved.
 *
 * Without preloading nothing here is set up and qml_shmem_ready() is false.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "qml.h"

#define QML_TRANCHE "qml"

typedef struct DbEntry
{
	Oid			dboid;			/* InvalidOid: a free entry */
	pid_t		pid;			/* its scheduler, 0 when none runs */
	Latch	   *latch;			/* the scheduler's latch */
	TimestampTz wake_at;		/* it wakes by itself then; DT_NOBEGIN: awake */
	TimestampTz due_at;			/* nothing falls due before; DT_NOBEGIN: unknown */
	TimestampTz commit_due;		/* earliest due time committed during the pass */
	TimestampTz leave_until;	/* start no scheduler here before this */
	bool		leave;			/* the running scheduler must exit */
	QmlExtensionSeen seen;		/* what its scheduler last found */
	uint64		seen_gen;		/* ext_gen when it looked */
	bool		seen_unread;	/* found no extension; the launcher has not
								 * read it yet */
	TimestampTz slot_wait_since;	/* no slot to start one; 0: not waiting */
} DbEntry;

/* a database where CREATE EXTENSION qml committed */
typedef struct Created
{
	Oid			dboid;
	uint64		gen;			/* ext_gen just after that commit */
} Created;

#define MAX_CREATED 32

typedef struct Registry
{
	pg_atomic_uint64 sched_gen; /* schedulers that took or left an entry */
	Latch	   *launcher_latch;
	uint64		ext_gen;		/* counts commits that created or dropped qml */
	int			ncreated;
	bool		created_overflow;	/* more than MAX_CREATED: look everywhere */
	Created		created[MAX_CREATED];
	int			nentries;
	DbEntry		entries[FLEXIBLE_ARRAY_MEMBER];
} Registry;

static Registry *registry = NULL;
static LWLockPadded *locks = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static int
registry_entries(void)
{
	/* every scheduler is a background worker; spare room for leave marks */
	return max_worker_processes + 16;
}

static Size
registry_size(void)
{
	return add_size(offsetof(Registry, entries),
					mul_size(registry_entries(), sizeof(DbEntry)));
}

static void
qml_shmem_request(void)
{
	Size		size = registry_size();

	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	size = add_size(size, qml_wakeup_shmem_size());
	size = add_size(size, qml_session_shmem_size());
	size = add_size(size, qml_counts_shmem_size());
	size = add_size(size, qml_head_shmem_size());
	size = add_size(size, qml_holders_shmem_size());
	size = add_size(size, qml_prepared_shmem_size());
	RequestAddinShmemSpace(size);
	RequestNamedLWLockTranche(QML_TRANCHE, QML_NUM_LWLOCKS);
}

static void
qml_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	locks = GetNamedLWLockTranche(QML_TRANCHE);
	registry = ShmemInitStruct("qml registry", registry_size(), &found);
	if (!found)
	{
		memset(registry, 0, registry_size());
		pg_atomic_init_u64(&registry->sched_gen, 1);
		registry->nentries = registry_entries();
	}
	qml_wakeup_shmem_init();
	qml_session_shmem_init();
	qml_counts_shmem_init();
	qml_head_shmem_init();
	qml_holders_shmem_init();
	qml_prepared_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

/* called from _PG_init while shared_preload_libraries is being loaded */
void
qml_shmem_install(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = qml_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = qml_shmem_startup;
}

bool
qml_shmem_ready(void)
{
	return registry != NULL;
}

LWLock *
qml_lwlock(int i)
{
	Assert(i >= 0 && i < QML_NUM_LWLOCKS);
	return &locks[i].lock;
}

/* the entry of a database, or NULL; caller holds the lock */
static DbEntry *
find_entry(Oid dboid)
{
	int			i;

	for (i = 0; i < registry->nentries; i++)
		if (registry->entries[i].dboid == dboid)
			return &registry->entries[i];
	return NULL;
}

static DbEntry *
reset_entry(DbEntry *e, Oid dboid)
{
	memset(e, 0, sizeof(DbEntry));
	e->dboid = dboid;
	return e;
}

/*
 * The entry of a database, made if need be; NULL when the registry is full
 * (then entries of databases without a scheduler are reused once their
 * leave mark has run out). Caller holds the lock exclusively.
 */
static DbEntry *
find_or_add_entry(Oid dboid)
{
	DbEntry    *e = find_entry(dboid);
	TimestampTz now = GetCurrentTimestamp();
	int			i;

	if (e != NULL)
		return e;

	/*
	 * An unused entry first: one a scheduler left still says what it found
	 * (seen), which the launcher reads after that scheduler exits; reused
	 * at once by the next database's scheduler, a probe that found no
	 * extension looked to the launcher like a failed start, and the
	 * database was probed again and again. Only when none is unused does
	 * such an entry go, one the launcher has read first.
	 */
	for (i = 0; i < registry->nentries; i++)
		if (registry->entries[i].dboid == InvalidOid)
			return reset_entry(&registry->entries[i], dboid);
	for (i = 0; i < registry->nentries; i++)
	{
		e = &registry->entries[i];
		if (e->pid == 0 && e->leave_until < now && e->slot_wait_since == 0 &&
			!e->seen_unread)
			return reset_entry(e, dboid);
	}
	for (i = 0; i < registry->nentries; i++)
	{
		e = &registry->entries[i];
		if (e->pid == 0 && e->leave_until < now && e->slot_wait_since == 0)
			return reset_entry(e, dboid);
	}
	return NULL;
}

static void
registry_release(int code, Datum arg)
{
	DbEntry    *e;

	LWLockAcquire(qml_lwlock(QML_LOCK_REGISTRY), LW_EXCLUSIVE);
	e = find_entry(DatumGetObjectId(arg));
	if (e != NULL && e->pid == MyProcPid)
	{
		e->pid = 0;
		e->latch = NULL;
		e->leave = false;
		pg_atomic_fetch_add_u64(&registry->sched_gen, 1);
	}
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
}

/*
 * A scheduler takes its database's entry. False when another scheduler
 * already serves it or the database is marked to be left alone; the
 * caller then exits.
 */
bool
qml_registry_claim(Oid dboid)
{
	DbEntry    *e;
	bool		ok = false;

	LWLockAcquire(qml_lwlock(QML_LOCK_REGISTRY), LW_EXCLUSIVE);
	e = find_or_add_entry(dboid);
	if (e != NULL && e->pid == 0 && e->leave_until <= GetCurrentTimestamp())
	{
		e->pid = MyProcPid;
		e->latch = MyLatch;
		e->wake_at = DT_NOBEGIN;
		e->due_at = DT_NOBEGIN;
		e->commit_due = DT_NOEND;
		e->leave = false;
		e->seen = QML_EXT_UNKNOWN;
		e->slot_wait_since = 0;
		pg_atomic_fetch_add_u64(&registry->sched_gen, 1);
		ok = true;
	}
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
	if (ok)
		on_shmem_exit(registry_release, ObjectIdGetDatum(dboid));
	return ok;
}

/*
 * Takes the registry's lock in `mode` and returns the entry this
 * scheduler holds, or NULL when it holds none any more. The caller
 * releases the lock.
 */
static DbEntry *
lock_own_entry(LWLockMode mode)
{
	DbEntry    *e;

	LWLockAcquire(qml_lwlock(QML_LOCK_REGISTRY), mode);
	e = find_entry(MyDatabaseId);
	return e != NULL && e->pid == MyProcPid ? e : NULL;
}

bool
qml_registry_must_leave(void)
{
	DbEntry    *e = lock_own_entry(LW_SHARED);
	bool		leave = e == NULL || e->leave;

	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
	return leave;
}

/*
 * The scheduler is awake: from now on every commit that makes something
 * due wakes it again, since its pass may not have seen that commit, and
 * the earliest of their due times is kept for qml_registry_set_wake.
 */
void
qml_registry_set_awake(void)
{
	DbEntry    *e = lock_own_entry(LW_EXCLUSIVE);

	if (e != NULL)
	{
		e->wake_at = DT_NOBEGIN;
		e->commit_due = DT_NOEND;
	}
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
}

/*
 * The scheduler will wake by itself at `at`, and its pass found nothing
 * due before `due` (DT_NOBEGIN: it does not know). A commit the pass may
 * not have seen, one since qml_registry_set_awake, keeps its due time if
 * that is earlier.
 */
void
qml_registry_set_wake(TimestampTz at, TimestampTz due)
{
	DbEntry    *e = lock_own_entry(LW_EXCLUSIVE);

	if (e != NULL)
	{
		e->wake_at = at;
		e->due_at = Min(due, e->commit_due);
	}
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
}

/*
 * Before when no scheduled or retrying job of the database falls due, as
 * far as its scheduler knows; DT_NOBEGIN when it does not know (there is
 * none, or its last pass failed). Fetch promotes due jobs itself from
 * then on (worker_api.c).
 */
TimestampTz
qml_registry_due_at(Oid dboid)
{
	DbEntry    *e;
	TimestampTz due = DT_NOBEGIN;

	if (!qml_shmem_ready())
		return DT_NOBEGIN;
	LWLockAcquire(qml_lwlock(QML_LOCK_REGISTRY), LW_SHARED);
	e = find_entry(dboid);
	if (e != NULL && e->pid != 0)
		due = e->due_at;
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
	return due;
}

/*
 * Whether a scheduler serves the database: remembered while no scheduler
 * came or went (see the top of the file).
 */
bool
qml_registry_has_scheduler(Oid dboid)
{
	static uint64 known_gen = 0;
	static Oid	known_db = InvalidOid;
	static bool known_has = false;
	DbEntry    *e;

	if (!qml_shmem_ready())
		return false;
	if (dboid == known_db &&
		pg_atomic_read_u64(&registry->sched_gen) == known_gen)
		return known_has;
	LWLockAcquire(qml_lwlock(QML_LOCK_REGISTRY), LW_SHARED);
	e = find_entry(dboid);
	known_has = e != NULL && e->pid != 0;
	known_gen = pg_atomic_read_u64(&registry->sched_gen);
	known_db = dboid;
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
	return known_has;
}

/*
 * A commit made something fall due at `due` (DT_NOBEGIN: now): wake the
 * database's scheduler if it would otherwise sleep past it, and lower
 * due_at, so that fetch promotes the job if the scheduler is late.
 */
void
qml_registry_wake(Oid dboid, TimestampTz due)
{
	DbEntry    *e;
	bool		lower = false;

	if (!qml_shmem_ready())
		return;
	LWLockAcquire(qml_lwlock(QML_LOCK_REGISTRY), LW_SHARED);
	e = find_entry(dboid);
	if (e != NULL && e->pid != 0 && e->latch != NULL &&
		(e->wake_at == DT_NOBEGIN || due < e->wake_at))
		SetLatch(e->latch);
	if (e != NULL && e->pid != 0 && (due < e->due_at || due < e->commit_due))
		lower = true;
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
	if (!lower)
		return;
	LWLockAcquire(qml_lwlock(QML_LOCK_REGISTRY), LW_EXCLUSIVE);
	e = find_entry(dboid);
	if (e != NULL && e->pid != 0)
	{
		e->due_at = Min(e->due_at, due);
		e->commit_due = Min(e->commit_due, due);
	}
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
}

/*
 * A command needs the database to itself (DROP DATABASE, rename, use as a
 * template): its scheduler leaves now and none starts there for `seconds`.
 */
void
qml_registry_ask_leave(Oid dboid, int seconds)
{
	DbEntry    *e;

	if (!qml_shmem_ready())
		return;
	LWLockAcquire(qml_lwlock(QML_LOCK_REGISTRY), LW_EXCLUSIVE);
	e = find_or_add_entry(dboid);
	if (e != NULL)
	{
		e->leave_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													 seconds * 1000);
		if (e->pid != 0)
		{
			e->leave = true;
			if (e->latch != NULL)
				SetLatch(e->latch);
		}
	}
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
}

TimestampTz
qml_registry_leave_until(Oid dboid)
{
	DbEntry    *e;
	TimestampTz until = DT_NOBEGIN;

	LWLockAcquire(qml_lwlock(QML_LOCK_REGISTRY), LW_SHARED);
	e = find_entry(dboid);
	if (e != NULL)
		until = e->leave_until;
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
	return until;
}

static void
launcher_release(int code, Datum arg)
{
	LWLockAcquire(qml_lwlock(QML_LOCK_REGISTRY), LW_EXCLUSIVE);
	if (registry->launcher_latch == MyLatch)
		registry->launcher_latch = NULL;
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
}

void
qml_registry_set_launcher(void)
{
	int			i;

	LWLockAcquire(qml_lwlock(QML_LOCK_REGISTRY), LW_EXCLUSIVE);
	registry->launcher_latch = MyLatch;
	/* a launcher that died left its waits behind: this one marks its own */
	for (i = 0; i < registry->nentries; i++)
	{
		registry->entries[i].slot_wait_since = 0;
		registry->entries[i].seen_unread = false;
	}
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
	on_shmem_exit(launcher_release, (Datum) 0);
}

/* the set of databases may have changed: the launcher looks again */
void
qml_registry_wake_launcher(void)
{
	if (!qml_shmem_ready())
		return;
	LWLockAcquire(qml_lwlock(QML_LOCK_REGISTRY), LW_SHARED);
	if (registry->launcher_latch != NULL)
		SetLatch(registry->launcher_latch);
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
}

/* ---- which databases have the extension ---- */

/* how many commits created or dropped qml so far (read before a snapshot) */
uint64
qml_registry_ext_gen(void)
{
	uint64		gen;

	LWLockAcquire(qml_lwlock(QML_LOCK_REGISTRY), LW_SHARED);
	gen = registry->ext_gen;
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
	return gen;
}

/*
 * A commit in this database created qml (exists) or dropped it. The
 * launcher learns of a creation and starts a scheduler; after a drop the
 * scheduler is woken, finds no extension and leaves. Called after the
 * commit became visible, so that a scheduler that reads the new count
 * before its snapshot sees the change.
 */
void
qml_registry_extension_changed(bool exists)
{
	DbEntry    *e;

	if (!qml_shmem_ready())
		return;
	LWLockAcquire(qml_lwlock(QML_LOCK_REGISTRY), LW_EXCLUSIVE);
	registry->ext_gen++;
	if (exists)
	{
		if (registry->ncreated < MAX_CREATED)
		{
			registry->created[registry->ncreated].dboid = MyDatabaseId;
			registry->created[registry->ncreated].gen = registry->ext_gen;
			registry->ncreated++;
		}
		else
			registry->created_overflow = true;
		if (registry->launcher_latch != NULL)
			SetLatch(registry->launcher_latch);
	}
	e = find_entry(MyDatabaseId);
	if (e != NULL && e->pid != 0 && e->latch != NULL)
		SetLatch(e->latch);
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
}

/*
 * The launcher takes the databases where qml was created since it last
 * looked; *overflow says that there were too many to keep and that every
 * database must be looked at again.
 */
int
qml_registry_take_created(Oid *dboids, uint64 *gens, int max, bool *overflow)
{
	int			n;
	int			i;

	LWLockAcquire(qml_lwlock(QML_LOCK_REGISTRY), LW_EXCLUSIVE);
	n = Min(registry->ncreated, max);
	for (i = 0; i < n; i++)
	{
		dboids[i] = registry->created[i].dboid;
		gens[i] = registry->created[i].gen;
	}
	*overflow = registry->created_overflow || registry->ncreated > max;
	registry->ncreated = 0;
	registry->created_overflow = false;
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
	return n;
}

/*
 * The scheduler says whether it found the extension, as of `gen` (the
 * count it read before its snapshot); the launcher hears of a change.
 */
void
qml_registry_note_extension(bool present, uint64 gen)
{
	DbEntry    *e = lock_own_entry(LW_EXCLUSIVE);
	QmlExtensionSeen seen = present ? QML_EXT_PRESENT : QML_EXT_ABSENT;
	bool		changed = false;

	if (e != NULL && e->seen != seen)
	{
		e->seen = seen;
		changed = true;
	}
	if (e != NULL)
	{
		e->seen_gen = gen;
		e->seen_unread = !present;
	}
	if (changed && registry->launcher_latch != NULL)
		SetLatch(registry->launcher_latch);
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
}

/* what the last scheduler of a database found, and as of which count */
QmlExtensionSeen
qml_registry_extension_seen(Oid dboid, uint64 *gen)
{
	DbEntry    *e;
	QmlExtensionSeen seen = QML_EXT_UNKNOWN;

	LWLockAcquire(qml_lwlock(QML_LOCK_REGISTRY), LW_EXCLUSIVE);
	e = find_entry(dboid);
	if (e != NULL)
	{
		seen = e->seen;
		*gen = e->seen_gen;
		/* read by the launcher: the entry may go to another database */
		if (e->pid == 0)
			e->seen_unread = false;
	}
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
	return seen;
}

/* the launcher waits for a slot to start a database's scheduler, or not */
void
qml_registry_set_slot_wait(Oid dboid, bool waiting)
{
	DbEntry    *e;

	LWLockAcquire(qml_lwlock(QML_LOCK_REGISTRY), LW_EXCLUSIVE);
	e = waiting ? find_or_add_entry(dboid) : find_entry(dboid);
	if (e != NULL && waiting && e->slot_wait_since == 0)
		e->slot_wait_since = GetCurrentTimestamp();
	else if (e != NULL && !waiting)
		e->slot_wait_since = 0;
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
}

/* since when a database's scheduler waits for a slot; 0: it does not */
TimestampTz
qml_registry_slot_wait(Oid dboid)
{
	DbEntry    *e;
	TimestampTz since = 0;

	if (!qml_shmem_ready())
		return 0;
	LWLockAcquire(qml_lwlock(QML_LOCK_REGISTRY), LW_SHARED);
	e = find_entry(dboid);
	if (e != NULL)
		since = e->slot_wait_since;
	LWLockRelease(qml_lwlock(QML_LOCK_REGISTRY));
	return since;
}
