/*-------------------------------------------------------------------------
 *
 * wakeup.c
 *	  Waking idle workers when a queue gets work: NOTIFY for listening
 *	  clients, and a condition variable for fetches waiting in the server.
 *
 * NOTIFY serialises committing transactions on a global lock, so a NOTIFY
 * per enqueue caps enqueue throughput. With the library preloaded a NOTIFY
 * is sent only when someone waits: each queue hashes to a slot in shared
 * memory whose `waiting` flag a fetch sets when it comes back empty (not
 * while it waits in the server), and which the commit that notified
 * clears. Passes of the scheduler (and of
 * qml.maintain()) always notify the queues they promote into.
 *
 * The slot also counts the commits that made jobs of its queues enqueued,
 * and holds a condition variable that such a commit signals (from a
 * transaction callback, after the jobs are visible). A waiting fetch reads
 * the count before it claims, and sleeps only while the count is unchanged,
 * so no commit can slip between its claim and its sleep. A commit wakes as
 * many sleepers as its jobs fill batches: ceil(jobs / batch), the batch
 * being the last sleeper's on that slot, and never more than sleep there.
 * Not all (a herd of workers would claim one job), and not one (a burst of
 * 50 jobs for fetches of 8 would be claimed 8 at a time, the rest found
 * only when the others next looked); a woken fetch
 * that finds nothing (another worker was quicker, or the job was for a
 * queue that shares the slot) wakes the next one before it sleeps again,
 * and one that sees no new commit since its own claim does not, so the
 * handing on stops. Fetches from several queues sleep on a variable per
 * database that every commit broadcasts to.
 *
 * The NOTIFY is decided and queued just before the commit (so that a
 * transaction can still PREPARE, prepared_xact.c). One race is left to the
 * scheduler: a commit that decided not to notify (nobody waited yet) but
 * finds, once committed, that a fetch came back empty meanwhile. It cannot
 * notify any more, so it leaves the queue's name
 * for the scheduler, which notifies in its next pass (woken at once). In a
 * database no scheduler serves, that rare wakeup is lost and the worker's
 * polling finds the job. A listening client must LISTEN before its first
 * fetch.
 *
 * Queues of several databases and names share slots by hash: a shared slot
 * costs a needless notification or wakeup, never a missed one.
 *
 * The row trigger hands every state change to qml_job_changed(), which
 * also passes it on to the statistics (stats.c) and notes due times that
 * should wake the scheduler early.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/async.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_wake_queue);
PG_FUNCTION_INFO_V1(qml_wake_scheduler);

#define QUEUE_SLOTS 1024
StaticAssertDecl(QUEUE_SLOTS == QML_PREPARED_SLOTS, "prepared_xact.c names wakeup slots");
#define DB_CVS 64
#define MISSED_MAX 64
/* longest sleep between two looks at the counts: bounds the wait when
 * producers run with qml.wakeups = off */
#define WAIT_POLL_MS 250
/* claims a fetch without a wait retries when commits came in meanwhile */
#define NOWAIT_RETRIES 3

typedef struct QueueSlot
{
	pg_atomic_uint64 commits;	/* commits that made jobs here enqueued */
	pg_atomic_uint32 waiting;	/* a fetch came back empty since the last NOTIFY */
	pg_atomic_uint32 sleepers;	/* fetches sleeping on cv */
	pg_atomic_uint32 batch;		/* the batch of the last fetch to sleep */
	ConditionVariable cv;
} QueueSlot;

/* fetches from several queues sleep on their database's variable */
typedef struct DbCv
{
	pg_atomic_uint32 sleepers;
	ConditionVariable cv;
} DbCv;

typedef struct Missed
{
	Oid			dboid;
	char		queue[QML_QUEUE_MAXBYTES];
} Missed;

typedef struct WakeupShared
{
	QueueSlot	slots[QUEUE_SLOTS];
	DbCv		dbcvs[DB_CVS];
	slock_t		missed_lock;
	int			nmissed;
	Missed		missed[MISSED_MAX];
} WakeupShared;

static WakeupShared *wk = NULL;

/* a queue this transaction made jobs enqueued in */
typedef struct PendingQueue
{
	SubTransactionId subid;		/* first, for xact_list.c */
	char	   *queue;
	int			slot;
	bool		notified;		/* NOTIFY due: sent just before commit,
								 * clears the slot's flag at commit */
	int64		njobs;			/* jobs made enqueued; -1: any number */
} PendingQueue;

static QmlXactList pending = QML_XACT_KEYED_LIST(PendingQueue, queue);
static TimestampTz pending_due = DT_NOEND;
static bool pending_wake_launcher = false;
static bool pass_mode = false;

Size
qml_wakeup_shmem_size(void)
{
	return sizeof(WakeupShared);
}

void
qml_wakeup_shmem_init(void)
{
	bool		found;
	int			i;

	wk = ShmemInitStruct("qml wakeups", sizeof(WakeupShared), &found);
	if (found)
		return;
	for (i = 0; i < QUEUE_SLOTS; i++)
	{
		pg_atomic_init_u64(&wk->slots[i].commits, 0);
		pg_atomic_init_u32(&wk->slots[i].waiting, 0);
		pg_atomic_init_u32(&wk->slots[i].sleepers, 0);
		pg_atomic_init_u32(&wk->slots[i].batch, 1);
		ConditionVariableInit(&wk->slots[i].cv);
	}
	for (i = 0; i < DB_CVS; i++)
	{
		pg_atomic_init_u32(&wk->dbcvs[i].sleepers, 0);
		ConditionVariableInit(&wk->dbcvs[i].cv);
	}
	SpinLockInit(&wk->missed_lock);
	wk->nmissed = 0;
}

/*
 * A hash of the database and queue name, for slots in shared memory. The
 * last one is remembered: an enqueue asks for its queue's four times (its
 * wakeup slot, its queue head, its two counts' partitions), and comparing
 * the name costs less than hashing it again.
 */
int
qml_queue_slot(Oid dboid, const char *queue, int len)
{
	static Oid	last_db = InvalidOid;
	static char last_queue[QML_QUEUE_MAXBYTES];
	static int	last_len = -1;
	static int	last_slot;
	uint32		h;

	if (len == last_len && dboid == last_db && memcmp(queue, last_queue, len) == 0)
		return last_slot;
	h = hash_combine(hash_bytes_uint32(dboid),
					 hash_bytes((const unsigned char *) queue, len));
	if (len < QML_QUEUE_MAXBYTES)
	{
		memcpy(last_queue, queue, len);
		last_len = len;
		last_db = dboid;
		last_slot = (int) (h & 0x7FFFFFFF);
	}
	return (int) (h & 0x7FFFFFFF);
}

static int
slot_of(Oid dboid, const char *queue, int len)
{
	return qml_queue_slot(dboid, queue, len) % QUEUE_SLOTS;
}

static void
forget_pending(void)
{
	qml_xact_list_forget(&pending);
	pending_due = DT_NOEND;
	pending_wake_launcher = false;
}

/* the scheduler missed a NOTIFY it should send: leave it the queue's name */
static void
push_missed(const char *queue)
{
	int			i;

	SpinLockAcquire(&wk->missed_lock);
	for (i = 0; i < wk->nmissed; i++)
		if (wk->missed[i].dboid == MyDatabaseId &&
			strcmp(wk->missed[i].queue, queue) == 0)
			break;
	if (i == wk->nmissed && wk->nmissed < MISSED_MAX)
	{
		wk->missed[i].dboid = MyDatabaseId;
		strlcpy(wk->missed[i].queue, queue, QML_QUEUE_MAXBYTES);
		wk->nmissed++;
	}
	SpinLockRelease(&wk->missed_lock);
}

/*
 * Wakes the fetches sleeping on slot `s` that `njobs` new jobs (-1: any
 * number) keep busy: one per batch, as many as sleep there at most.
 */
static void
wake_sleepers(QueueSlot *s, int64 njobs)
{
	uint32		sleepers = pg_atomic_read_u32(&s->sleepers);
	uint32		batch = Max(pg_atomic_read_u32(&s->batch), 1);
	int64		wake;

	if (sleepers == 0)
		return;
	if (njobs < 0)
	{
		ConditionVariableBroadcast(&s->cv);
		return;
	}
	wake = Min((Max(njobs, 1) + batch - 1) / batch, (int64) sleepers);
	while (wake-- > 0)
		ConditionVariableSignal(&s->cv);
}

/*
 * After commit: count the commit in each slot, clear the flags this
 * commit's NOTIFY answered, hand missed ones to the scheduler, and wake
 * the fetches sleeping on these queues.
 */
static void
publish_commit(void)
{
	bool		wake_scheduler = false;
	int			i;

	for (i = 0; i < pending.n; i++)
	{
		PendingQueue *p = qml_xact_list_at(&pending, i);
		QueueSlot  *s = &wk->slots[p->slot];

		/* a full barrier: the flag is read after the count is visible */
		pg_atomic_fetch_add_u64(&s->commits, 1);
		if (qml_wakeups == QML_WAKEUPS_OFF)
			continue;
		if (p->notified)
		{
			if (pg_atomic_read_u32(&s->waiting) != 0)
				pg_atomic_write_u32(&s->waiting, 0);
		}
		else if (pg_atomic_read_u32(&s->waiting) != 0 &&
				 qml_registry_has_scheduler(MyDatabaseId))
		{
			push_missed(p->queue);
			wake_scheduler = true;
		}
		/* one a batch; one that finds nothing passes its wakeup on */
		wake_sleepers(s, p->njobs);
	}
	if (pending.n > 0 && qml_wakeups != QML_WAKEUPS_OFF)
	{
		DbCv	   *d = &wk->dbcvs[MyDatabaseId % DB_CVS];

		if (pg_atomic_read_u32(&d->sleepers) != 0)
			ConditionVariableBroadcast(&d->cv);
	}

	if (wake_scheduler)
		qml_registry_wake(MyDatabaseId, DT_NOBEGIN);
	else if (pending_due != DT_NOEND)
		qml_registry_wake(MyDatabaseId, pending_due);
	if (pending_wake_launcher)
		qml_registry_wake_launcher();
}

static bool must_notify(PendingQueue *p);

/*
 * Just before commit: the NOTIFYs this transaction owes. Queued here, not
 * as the jobs are enqueued, so that a transaction can still PREPARE: one
 * that has queued a NOTIFY cannot. A fetch that came back empty since the
 * enqueue is seen here too, which leaves fewer races to the scheduler.
 * What a prepared transaction that ended owes its queues is taken over
 * first (prepared_xact.c).
 */
static void
notify_pending(void)
{
	int			i;

	qml_prepared_settle();
	for (i = 0; i < pending.n; i++)
	{
		PendingQueue *p = qml_xact_list_at(&pending, i);

		if (!p->notified && must_notify(p))
			p->notified = true;
		if (p->notified)
			Async_Notify("qml", p->queue);
	}
}

static void
wakeup_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			notify_pending();
			break;
		case XACT_EVENT_COMMIT:
			if (qml_shmem_ready())
				publish_commit();
			forget_pending();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			forget_pending();
			break;
		default:
			break;
	}
}

/* an aborted subtransaction's NOTIFYs are gone: so are its queues */
static void
wakeup_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		qml_xact_list_drop_aborted(&pending, mySubid);
}

void
qml_wakeup_init(void)
{
	RegisterXactCallback(wakeup_xact_callback, NULL);
	RegisterSubXactCallback(wakeup_subxact_callback, NULL);
}

/* while on, every queue that gets work is notified (scheduler passes) */
void
qml_wakeup_pass_mode(bool on)
{
	pass_mode = on;
}

static PendingQueue *
add_pending(const char *queue)
{
	PendingQueue *p = qml_xact_list_add(&pending, queue, 0);

	p->slot = slot_of(MyDatabaseId, queue, strlen(queue));
	p->notified = false;
	p->njobs = 0;
	return p;
}

/* whether a commit that made `p` enqueued must send a NOTIFY */
static bool
must_notify(PendingQueue *p)
{
	if (qml_wakeups == QML_WAKEUPS_OFF)
		return false;
	if (!qml_shmem_ready() || qml_wakeups == QML_WAKEUPS_ALWAYS || pass_mode)
		return true;
	return pg_atomic_read_u32(&wk->slots[p->slot].waiting) != 0;
}

/*
 * A job of `queue` became enqueued in this transaction; with `force`, the
 * queue may have any number of jobs to hand out (it was resumed). Returns
 * the queue's entry.
 */
static PendingQueue *
note_enqueued(const char *queue, bool force)
{
	PendingQueue *p = qml_xact_list_find(&pending, queue, 0, true);

	if (p == NULL)
		p = add_pending(queue);
	if (force)
		p->njobs = -1;
	else if (p->njobs >= 0)
		p->njobs++;
	if (!p->notified && (force || must_notify(p)) &&
		qml_wakeups != QML_WAKEUPS_OFF)
		p->notified = true;
	return p;
}

/* calls fn for each queue this transaction would wake */
void
qml_wakeup_each_pending(void (*fn) (const char *queue))
{
	int			i;

	for (i = 0; i < pending.n; i++)
		fn(((PendingQueue *) qml_xact_list_at(&pending, i))->queue);
}

/* whether this transaction would wake the scheduler when it commits */
bool
qml_wakeup_wants_scheduler(void)
{
	return pending_due != DT_NOEND;
}

/*
 * This transaction wakes `queue` when it commits, as if it had enqueued
 * into it; with a NULL queue, wakeup slot `slot` and every listener (an
 * empty payload). For prepared transactions (prepared_xact.c).
 */
void
qml_wake_queue_at_commit(const char *queue, int slot)
{
	PendingQueue *p;

	if (queue != NULL)
	{
		/* the prepared transaction may have enqueued any number of jobs */
		note_enqueued(queue, false)->njobs = -1;
		return;
	}
	p = add_pending("");
	p->slot = slot % QUEUE_SLOTS;
	p->notified = qml_wakeups != QML_WAKEUPS_OFF;
	p->njobs = -1;
}

/*
 * The row trigger's hook: every state change of a job passes here once.
 */
void
qml_job_changed(const QmlJobChange *change)
{
	if (change->to_state == JS_ENQUEUED && change->from_state != JS_ENQUEUED &&
		change->queue != NULL)
		note_enqueued(change->queue, false);
	if ((change->to_state == JS_SCHEDULED ||
		 change->to_state == JS_AWAITING_RETRY) &&
		change->run_at < pending_due)
		pending_due = change->run_at;
	if (change->queue != NULL)
		qml_stats_count(change->queue, change->from_state, change->to_state);
}

/* at commit, wake this database's scheduler if it sleeps past `due` */
void
qml_wake_scheduler_at_commit(TimestampTz due)
{
	if (due < pending_due)
		pending_due = due;
}

void
qml_wake_launcher_at_commit(void)
{
	pending_wake_launcher = true;
}

/*
 * qml.wake_scheduler(at timestamptz) returns void
 *
 * Internal: something falls due at `at` (NULL: now); at commit the
 * scheduler is woken if it would sleep past it.
 */
Datum
qml_wake_scheduler(PG_FUNCTION_ARGS)
{
	qml_wake_scheduler_at_commit(PG_ARGISNULL(0) ? DT_NOBEGIN :
								 PG_GETARG_TIMESTAMPTZ(0));
	PG_RETURN_VOID();
}

/*
 * qml.wake_queue(queue text) returns void
 *
 * Internal: the queue may have work without a job changing state (it was
 * resumed): notify its listeners and wake its waiting fetches at commit.
 */
Datum
qml_wake_queue(PG_FUNCTION_ARGS)
{
	if (!PG_ARGISNULL(0))
		note_enqueued(text_to_cstring(PG_GETARG_TEXT_PP(0)), true);
	PG_RETURN_VOID();
}

/* The scheduler's pass sends the NOTIFYs commits left for it. */
void
qml_wakeup_send_missed(void)
{
	char	  **queues;
	int			n = 0;
	int			keep = 0;
	int			i;

	if (!qml_shmem_ready())
		return;
	SpinLockAcquire(&wk->missed_lock);
	if (wk->nmissed == 0)
	{
		SpinLockRelease(&wk->missed_lock);
		return;
	}
	queues = palloc(MISSED_MAX * sizeof(char *));
	for (i = 0; i < wk->nmissed; i++)
	{
		if (wk->missed[i].dboid == MyDatabaseId)
		{
			queues[n] = palloc(QML_QUEUE_MAXBYTES);
			memcpy(queues[n++], wk->missed[i].queue, QML_QUEUE_MAXBYTES);
		}
		else
			wk->missed[keep++] = wk->missed[i];
	}
	wk->nmissed = keep;
	SpinLockRelease(&wk->missed_lock);

	for (i = 0; i < n; i++)
		Async_Notify("qml", queues[i]);
}

/*
 * A fetch that may wait: the slots of its queues. The queues are text
 * datums, as qml.fetch receives them.
 */
void
qml_wait_begin(QmlWaitSet *ws, Datum *queues, int nqueues, int batch)
{
	bool		taken[QUEUE_SLOTS] = {0};
	int			i;

	ws->nslots = 0;
	ws->slots = palloc(Min(Max(nqueues, 1), QUEUE_SLOTS) * sizeof(int));
	ws->epoch = 0;
	ws->retries = 0;
	ws->woken = false;
	ws->batch = batch;
	for (i = 0; i < nqueues; i++)
	{
		text	   *t = DatumGetTextPP(queues[i]);
		int			slot = slot_of(MyDatabaseId, VARDATA_ANY(t),
								   VARSIZE_ANY_EXHDR(t));

		CHECK_FOR_INTERRUPTS();
		if (!taken[slot])
			ws->slots[ws->nslots++] = slot;
		taken[slot] = true;
	}
}

static uint64
current_epoch(QmlWaitSet *ws)
{
	uint64		sum = 0;
	int			i;

	for (i = 0; i < ws->nslots; i++)
		sum += pg_atomic_read_u64(&wk->slots[ws->slots[i]].commits);
	return sum;
}

/* read the counts before each claim (its snapshot comes after) */
void
qml_wait_epoch(QmlWaitSet *ws)
{
	if (qml_shmem_ready())
		ws->epoch = current_epoch(ws);
}

static void
unsleep(int code, Datum arg)
{
	pg_atomic_fetch_sub_u32((pg_atomic_uint32 *) DatumGetPointer(arg), 1);
}

/* sleeps until the counts move or the deadline passes; true if they moved */
static bool
sleep_for_work(QmlWaitSet *ws, TimestampTz deadline)
{
	ConditionVariable *cv;
	pg_atomic_uint32 *sleepers;
	bool		moved = false;

	if (ws->nslots == 1)
	{
		cv = &wk->slots[ws->slots[0]].cv;
		sleepers = &wk->slots[ws->slots[0]].sleepers;
		/* how many jobs wake one sleeper here (wake_sleepers) */
		if (pg_atomic_read_u32(&wk->slots[ws->slots[0]].batch) != (uint32) ws->batch)
			pg_atomic_write_u32(&wk->slots[ws->slots[0]].batch, (uint32) ws->batch);
		/* woken, but the claim found nothing: the wakeup may be another's */
		if (ws->woken)
			ConditionVariableSignal(cv);
	}
	else
	{
		cv = &wk->dbcvs[MyDatabaseId % DB_CVS].cv;
		sleepers = &wk->dbcvs[MyDatabaseId % DB_CVS].sleepers;
	}

	/* a full barrier: a commit counted after this sees us and broadcasts */
	pg_atomic_fetch_add_u32(sleepers, 1);
	PG_ENSURE_ERROR_CLEANUP(unsleep, PointerGetDatum(sleepers));
	{
		ConditionVariablePrepareToSleep(cv);
		for (;;)
		{
			TimestampTz now;
			long		ms;

			if (current_epoch(ws) != ws->epoch)
			{
				moved = true;
				break;
			}
			now = GetCurrentTimestamp();
			if (now >= deadline)
				break;
			ms = (long) ((deadline - now + 999) / 1000);
			(void) ConditionVariableTimedSleep(cv, Min(ms, WAIT_POLL_MS),
											   PG_WAIT_EXTENSION);
		}
		ConditionVariableCancelSleep();
	}
	PG_END_ENSURE_ERROR_CLEANUP(unsleep, PointerGetDatum(sleepers));
	pg_atomic_fetch_sub_u32(sleepers, 1);
	ws->woken = moved;
	return moved;
}

/* without shared memory a waiting fetch polls */
static bool
poll_for_work(TimestampTz deadline)
{
	TimestampTz now = GetCurrentTimestamp();
	long		ms;

	if (deadline == DT_NOEND || now >= deadline)
		return false;
	ms = (long) ((deadline - now + 999) / 1000);
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 Min(ms, 100), PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	return true;
}

/*
 * A fetch is about to come back empty: its caller may LISTEN, so the next
 * enqueue on these queues must notify. True when a commit came in since
 * the claim's snapshot: then claim again instead.
 */
static bool
note_listener(QmlWaitSet *ws)
{
	int			i;

	for (i = 0; i < ws->nslots; i++)
	{
		QueueSlot  *s = &wk->slots[ws->slots[i]];

		if (pg_atomic_read_u32(&s->waiting) == 0)
			pg_atomic_write_u32(&s->waiting, 1);
	}
	/* the flags are visible before we look at the counts */
	pg_memory_barrier();
	return current_epoch(ws) != ws->epoch;
}

/*
 * After a claim came back empty: until `deadline` (DT_NOEND: no wait),
 * sleeps until one of the queues gets work; a fetch that is about to
 * return nothing marks its queues as listened to. True: claim again.
 *
 * A fetch waiting in the server needs no NOTIFY (the commit wakes it
 * through the condition variable), so only a fetch that returns empty
 * sets the flags: busy workers that wait in fetch cost producers nothing.
 */
bool
qml_wait_for_work(QmlWaitSet *ws, TimestampTz deadline)
{
	if (!qml_shmem_ready())
		return poll_for_work(deadline);

	if (deadline != DT_NOEND && GetCurrentTimestamp() < deadline)
	{
		if (current_epoch(ws) != ws->epoch)
			return true;
		if (IsolationUsesXactSnapshot())
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("fetch cannot wait in a REPEATABLE READ or SERIALIZABLE transaction"),
					 errdetail("The transaction's snapshot would never show the new jobs."),
					 errhint("Wait in a READ COMMITTED transaction, or fetch without wait.")));
		if (sleep_for_work(ws, deadline))
			return true;
	}
	/* coming back empty */
	return note_listener(ws) && ws->retries++ < NOWAIT_RETRIES;
}

/*
 * When a fetch with `wait` gives up: DT_NOEND without a wait. 22023 for a
 * wait that breaks the rule of every duration (qml_check_duration).
 */
TimestampTz
qml_wait_deadline(Interval *wait)
{
	int64		usecs;
	TimestampTz now;

	if (wait == NULL)
		return DT_NOEND;
	qml_check_duration("wait", wait, true);
	/* a month counts as 30 days; waits of years are cut to one */
	usecs = Min((int64) wait->month * DAYS_PER_MONTH + wait->day, 366) * USECS_PER_DAY;
	usecs += Min(wait->time, 366 * USECS_PER_DAY);
	now = GetCurrentTimestamp();
	return now + usecs;
}

/* a lease that runs from now rather than from the transaction's start */
Interval *
qml_lease_from_now(Interval *lease)
{
	Interval   *result = palloc(sizeof(Interval));

	*result = *lease;
	result->time += GetCurrentTimestamp() - GetCurrentTransactionStartTimestamp();
	return result;
}
