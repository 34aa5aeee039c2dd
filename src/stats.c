/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  Jobs enqueued, succeeded and failed per queue per minute, counted as
 *	  they happen and rolled up into qml.throughput_minutes, so that
 *	  qml.throughput() and the dashboard never scan qml.jobs.
 *
 * The row trigger counts each state change into memory of the transaction
 * (a subtransaction that aborts drops its counts); at commit the counts
 * go to a table in shared memory, keyed by database, minute (of the
 * transaction's start, the time the job's timestamps carry) and queue.
 * The scheduler's pass (and qml.maintain()) adds them to the table and
 * takes them out of shared memory when its transaction commits, under an
 * advisory lock so that two passes never add the same counts twice.
 *
 * Only databases with a scheduler count: elsewhere nobody would roll the
 * counts up, and qml.throughput() reads qml.jobs instead. Counts of the
 * last second before a crash are lost with shared memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_stats_live);

#define ENTRIES_PER_PARTITION 64

typedef struct StatsKey
{
	Oid			dboid;			/* InvalidOid: a free entry */
	int64		minute;			/* TimestampTz / USECS_PER_MINUTE */
	char		queue[QML_QUEUE_MAXBYTES];
} StatsKey;

typedef struct StatsEntry
{
	StatsKey	key;
	int64		enqueued;
	int64		succeeded;
	int64		failed;
} StatsEntry;

typedef struct StatsShared
{
	pg_atomic_uint64 lost;		/* counts dropped because a partition was full */
	uint64		lost_reported;
	StatsEntry	entries[QML_STATS_PARTITIONS][ENTRIES_PER_PARTITION];
} StatsShared;

static StatsShared *st = NULL;

/* counts of this transaction, one entry per queue, minute and subtransaction */
typedef struct PendingCount
{
	SubTransactionId subid;		/* first, for xact_list.c */
	char	   *queue;
	int64		minute;
	int64		enqueued;
	int64		succeeded;
	int64		failed;
} PendingCount;

static QmlXactList pending = QML_XACT_LIST(PendingCount);
static int	counting = -1;		/* this transaction's look at the registry */

/* what this transaction's roll-up took, to take out of shared memory */
typedef struct Taken
{
	int			partition;
	int			index;
	int64		enqueued;
	int64		succeeded;
	int64		failed;
} Taken;

static Taken *taken = NULL;
static int	ntaken = 0;

Size
qml_stats_shmem_size(void)
{
	return sizeof(StatsShared);
}

void
qml_stats_shmem_init(void)
{
	bool		found;

	st = ShmemInitStruct("qml statistics", sizeof(StatsShared), &found);
	if (!found)
	{
		memset(st, 0, sizeof(StatsShared));
		pg_atomic_init_u64(&st->lost, 0);
	}
}

static int
partition_of(Oid dboid, int64 minute, const char *queue)
{
	uint32		h = hash_combine(hash_bytes_uint32(dboid),
								 hash_bytes_uint32((uint32) minute));

	h = hash_combine(h, hash_bytes((const unsigned char *) queue, strlen(queue)));
	return (int) (h % QML_STATS_PARTITIONS);
}

/* the entry for a key in a partition, made if need be; NULL when full */
static StatsEntry *
entry_for(int part, Oid dboid, int64 minute, const char *queue)
{
	StatsEntry *free_entry = NULL;
	int			i;

	for (i = 0; i < ENTRIES_PER_PARTITION; i++)
	{
		StatsEntry *e = &st->entries[part][i];

		if (e->key.dboid == InvalidOid)
		{
			if (free_entry == NULL)
				free_entry = e;
		}
		else if (e->key.dboid == dboid && e->key.minute == minute &&
				 strcmp(e->key.queue, queue) == 0)
			return e;
	}
	if (free_entry != NULL)
	{
		free_entry->key.dboid = dboid;
		free_entry->key.minute = minute;
		strlcpy(free_entry->key.queue, queue, QML_QUEUE_MAXBYTES);
		free_entry->enqueued = free_entry->succeeded = free_entry->failed = 0;
	}
	return free_entry;
}

/* adds committed counts (enqueued, succeeded, failed) to shared memory */
static void
publish_one(const char *queue, int64 minute, int64 enqueued, int64 succeeded,
			int64 failed)
{
	int			part = partition_of(MyDatabaseId, minute, queue);
	StatsEntry *e;

	LWLockAcquire(qml_lwlock(QML_LOCK_STATS_FIRST + part), LW_EXCLUSIVE);
	e = entry_for(part, MyDatabaseId, minute, queue);
	if (e != NULL)
	{
		e->enqueued += enqueued;
		e->succeeded += succeeded;
		e->failed += failed;
	}
	LWLockRelease(qml_lwlock(QML_LOCK_STATS_FIRST + part));
	if (e == NULL)
		pg_atomic_fetch_add_u64(&st->lost, enqueued + succeeded + failed);
}

static void
publish_counts(void)
{
	int			i;

	for (i = 0; i < pending.n; i++)
	{
		PendingCount *c = qml_xact_list_at(&pending, i);

		publish_one(c->queue, c->minute, c->enqueued, c->succeeded, c->failed);
	}
}

/*
 * For prepared_xact.c: calls fn with each count this transaction would
 * publish when it commits (counts[]: enqueued, succeeded, failed).
 */
void
qml_stats_each_pending(void (*fn) (const char *queue, int64 minute,
								   const int64 *counts))
{
	int			i;

	for (i = 0; i < pending.n; i++)
	{
		PendingCount *c = qml_xact_list_at(&pending, i);
		int64		counts[3] = {c->enqueued, c->succeeded, c->failed};

		fn(c->queue, c->minute, counts);
	}
}

/*
 * Counts of a prepared transaction that committed (prepared_xact.c),
 * published as its commit would have; with a NULL queue, counts that did
 * not fit in its note, lost.
 */
void
qml_stats_publish(const char *queue, int64 minute, const int64 *counts)
{
	if (!qml_shmem_ready())
		return;
	if (queue == NULL)
		pg_atomic_fetch_add_u64(&st->lost, counts[0] + counts[1] + counts[2]);
	else
		publish_one(queue, minute, counts[0], counts[1], counts[2]);
}

/*
 * Whether this transaction rolled the counts up (qml.maintain()): it takes
 * them out of shared memory when it commits, which a prepared transaction
 * cannot do.
 */
bool
qml_stats_rolled_up(void)
{
	return ntaken > 0;
}

/* the roll-up committed: its counts leave shared memory */
static void
take_out(void)
{
	int			i;

	for (i = 0; i < ntaken; i++)
	{
		Taken	   *t = &taken[i];
		StatsEntry *e = &st->entries[t->partition][t->index];

		LWLockAcquire(qml_lwlock(QML_LOCK_STATS_FIRST + t->partition), LW_EXCLUSIVE);
		e->enqueued -= t->enqueued;
		e->succeeded -= t->succeeded;
		e->failed -= t->failed;
		if (e->enqueued == 0 && e->succeeded == 0 && e->failed == 0)
			e->key.dboid = InvalidOid;
		LWLockRelease(qml_lwlock(QML_LOCK_STATS_FIRST + t->partition));
	}
}

static void
forget(void)
{
	qml_xact_list_forget(&pending);
	taken = NULL;				/* it lived in the transaction's memory */
	ntaken = 0;
	counting = -1;
}

static void
stats_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (qml_shmem_ready())
			{
				publish_counts();
				take_out();
			}
			forget();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			forget();
			break;
		default:
			break;
	}
}

static void
stats_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		qml_xact_list_drop_aborted(&pending, mySubid);
}

void
qml_stats_init(void)
{
	RegisterXactCallback(stats_xact_callback, NULL);
	RegisterSubXactCallback(stats_subxact_callback, NULL);
}

static PendingCount *
pending_for(const char *queue, int64 minute)
{
	SubTransactionId subid = GetCurrentSubTransactionId();
	PendingCount *c;
	int			i;

	for (i = pending.n - 1; i >= 0; i--)
	{
		c = qml_xact_list_at(&pending, i);
		if (c->subid == subid && c->minute == minute &&
			strcmp(c->queue, queue) == 0)
			return c;
	}
	c = qml_xact_list_push(&pending);
	c->queue = MemoryContextStrdup(qml_xact_list_memory(&pending), queue);
	c->minute = minute;
	return c;
}

/* a job of `queue` went from `from` to `to` in this transaction */
void
qml_stats_count(const char *queue, JobState from, JobState to)
{
	PendingCount *c;

	if (to != JS_ENQUEUED && to != JS_SUCCEEDED && to != JS_FAILED)
		return;
	if (to == JS_ENQUEUED && from == JS_ENQUEUED)
		return;
	if (counting < 0)
		counting = qml_registry_has_scheduler(MyDatabaseId) ? 1 : 0;
	if (!counting)
		return;

	c = pending_for(queue, GetCurrentTransactionStartTimestamp() / USECS_PER_MINUTE);
	if (to == JS_ENQUEUED)
		c->enqueued++;
	else if (to == JS_SUCCEEDED)
		c->succeeded++;
	else
		c->failed++;
}

static Datum
int8_array(int64 *values, int n)
{
	Datum	   *d = palloc(Max(n, 1) * sizeof(Datum));
	int			i;

	for (i = 0; i < n; i++)
		d[i] = Int64GetDatum(values[i]);
	return PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL,
										   TYPALIGN_DOUBLE));
}

static const char *const rollup_sql =
"INSERT INTO qml.throughput_minutes AS t (minute, queue, enqueued, succeeded, failed)"
" SELECT u.m, u.q, u.e, u.s, u.f"
"   FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.timestamptz[]),"
"                   pg_catalog.unnest($2::pg_catalog.text[]),"
"                   pg_catalog.unnest($3::pg_catalog.int8[]),"
"                   pg_catalog.unnest($4::pg_catalog.int8[]),"
"                   pg_catalog.unnest($5::pg_catalog.int8[])) AS u(m, q, e, s, f)"
" ON CONFLICT (minute, queue) DO UPDATE"
"    SET enqueued = t.enqueued OPERATOR(pg_catalog.+) excluded.enqueued,"
"        succeeded = t.succeeded OPERATOR(pg_catalog.+) excluded.succeeded,"
"        failed = t.failed OPERATOR(pg_catalog.+) excluded.failed";

static const char *const expire_sql =
"DELETE FROM qml.throughput_minutes"
" WHERE minute OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-)"
"       pg_catalog.make_interval(secs => $1))";

static SPIPlanPtr expire_plan = NULL;
static SPIPlanPtr lock_plan = NULL;
static SPIPlanPtr rollup_plan = NULL;

/* copies this database's counts; records what was taken for the commit */
static int
collect(Datum *minutes, Datum *queues, int64 *enq, int64 *succ, int64 *fail)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	int			n = 0;
	int			part;
	int			i;

	taken = palloc(QML_STATS_PARTITIONS * ENTRIES_PER_PARTITION * sizeof(Taken));
	MemoryContextSwitchTo(old);
	for (part = 0; part < QML_STATS_PARTITIONS; part++)
	{
		LWLockAcquire(qml_lwlock(QML_LOCK_STATS_FIRST + part), LW_SHARED);
		for (i = 0; i < ENTRIES_PER_PARTITION; i++)
		{
			StatsEntry *e = &st->entries[part][i];

			if (e->key.dboid != MyDatabaseId ||
				(e->enqueued == 0 && e->succeeded == 0 && e->failed == 0))
				continue;
			minutes[n] = TimestampTzGetDatum(e->key.minute * USECS_PER_MINUTE);
			queues[n] = CStringGetTextDatum(e->key.queue);
			enq[n] = e->enqueued;
			succ[n] = e->succeeded;
			fail[n] = e->failed;
			taken[n].partition = part;
			taken[n].index = i;
			taken[n].enqueued = e->enqueued;
			taken[n].succeeded = e->succeeded;
			taken[n].failed = e->failed;
			n++;
		}
		LWLockRelease(qml_lwlock(QML_LOCK_STATS_FIRST + part));
	}
	return n;
}

/*
 * A step of the pass (SPI connected): adds this database's counts to
 * qml.throughput_minutes and drops rows older than qml.stats_retention.
 */
void
qml_stats_rollup(void)
{
	int			cap = QML_STATS_PARTITIONS * ENTRIES_PER_PARTITION;
	Datum	   *minutes;
	Datum	   *queues;
	int64	   *enq;
	int64	   *succ;
	int64	   *fail;
	Datum		values[5];
	Oid			types[5] = {TIMESTAMPTZARRAYOID, TEXTARRAYOID, INT8ARRAYOID,
	INT8ARRAYOID, INT8ARRAYOID};
	Oid			float8_type = FLOAT8OID;
	bool		isnull;
	uint64		lost;
	int			n;

	if (!qml_shmem_ready())
		return;
	values[0] = Float8GetDatum((double) qml_stats_retention_s);
	qml_spi_run(&expire_plan, expire_sql, 1, &float8_type, values);

	if (ntaken > 0)
		return;					/* this transaction rolled up already */
	/* the advisory lock (7433580 is 'qml') serialises roll-ups */
	if (qml_spi_run(&lock_plan, "SELECT pg_catalog.pg_try_advisory_xact_lock(7433580, 1)",
					0, NULL, NULL) != 1 ||
		!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									1, &isnull)))
		return;					/* another pass is at it */

	minutes = palloc(cap * sizeof(Datum));
	queues = palloc(cap * sizeof(Datum));
	enq = palloc(cap * sizeof(int64));
	succ = palloc(cap * sizeof(int64));
	fail = palloc(cap * sizeof(int64));
	n = collect(minutes, queues, enq, succ, fail);
	if (n > 0)
	{
		values[0] = PointerGetDatum(construct_array(minutes, n, TIMESTAMPTZOID, 8,
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[1] = PointerGetDatum(construct_array(queues, n, TEXTOID, -1, false,
													TYPALIGN_INT));
		values[2] = int8_array(enq, n);
		values[3] = int8_array(succ, n);
		values[4] = int8_array(fail, n);
		qml_spi_run(&rollup_plan, rollup_sql, 5, types, values);
		ntaken = n;
	}

	lost = pg_atomic_read_u64(&st->lost);
	if (lost != st->lost_reported)
	{
		ereport(WARNING,
				(errmsg("qml dropped " UINT64_FORMAT " statistics counts: its shared table was full",
						lost - st->lost_reported),
				 errhint("Fewer queues, or a shorter qml.scheduler_interval, need less room.")));
		st->lost_reported = lost;
	}
}

/* the launcher frees the counts of databases no scheduler will roll up */
void
qml_stats_forget_databases(const Oid *keep, int nkeep)
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
			StatsEntry *e = &st->entries[part][i];

			if (e->key.dboid == InvalidOid)
				continue;
			for (k = 0; k < nkeep; k++)
				if (keep[k] == e->key.dboid)
					break;
			if (k == nkeep)
				e->key.dboid = InvalidOid;
		}
		LWLockRelease(qml_lwlock(QML_LOCK_STATS_FIRST + part));
	}
}

/*
 * qml.stats_live() returns boolean
 *
 * Internal: whether this database's statistics are counted and rolled up
 * (the library is preloaded and a scheduler serves the database). When
 * not, qml.throughput() reads qml.jobs.
 */
Datum
qml_stats_live(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(qml_registry_has_scheduler(MyDatabaseId));
}
