/*-------------------------------------------------------------------------
 *
 * queue_head.c
 *	  Where each queue's unclaimed jobs begin in jobs_fetch_idx, so that a
 *	  claim need not walk the index entries of the jobs claimed before it.
 *
 * A claim leaves the index entry of each job it takes behind until VACUUM
 * removes it, and every later claim walks those entries from the start of
 * the queue before it finds a live one: a profile of one worker showed a
 * fifth of its time there, the raw SKIP LOCKED baseline a third, and the
 * walk grows with every job claimed since the last VACUUM. So each queue
 * gets a head in shared memory: a key (priority, run_at, id), in the
 * index's order, before which the queue has no job a claim could take.
 * fetch starts its scan there.
 *
 * The head moves forward after every claim that met a job: a claim that
 * took a whole batch moves it to the last job it took, one that came back
 * short walked to the end of the queue and moves it there; either stops
 * at the first job its walk met, did not take and may not pass
 * (qml_head_after_walk). Everything the walk passed before that was taken
 * by it, or was not visible to it: claimed or gone, or not yet committed,
 * or held by a transaction certain to move the head back before it should
 * it roll back (another claim, mostly), or changed by one that committed
 * (claim_holders.c). Any other job it
 * met but could not take is locked by another transaction or changed
 * since its snapshot, and a session that locks a job and lets go of it
 * unchanged would move nothing back, so the head waits at it. What the
 * walk did not see is covered by a move back:
 *
 *	- a job that becomes enqueued (an insert, a promotion, a rescue, a
 *	  retry) moves the head back to its key when its transaction commits,
 *	  after it is visible; that transaction's own claims, which see it at
 *	  once, start before it at once;
 *	- a claim that rolls back moves the head back to the first job it took,
 *	  once the rollback is visible;
 *	- so does any other write that hid a waiting job from claims, which
 *	  the same transaction's claims walk past, once it rolls back, whole or
 *	  to a savepoint: a DELETE of it (the DELETE row trigger, from 1.1 on),
 *	  an UPDATE out of `enqueued` or within it, to the job's old place
 *	  (qml_job_note_waiting_changed), and a TRUNCATE of qml.jobs, to
 *	  below every key of every queue of the database (EVERY_QUEUE).
 *
 * A claim whose walk met no row at all leaves the head where it is (the
 * queue may be paused), but keeps it fresh.
 *
 * A move forward races with those: a claim whose snapshot did not see a
 * job committed meanwhile must not pass it. So each slot numbers its moves
 * back and keeps the lowest keys of the recent ones; a claim reads the
 * number before its snapshot and moves the head only if none of the moves
 * back since went below where it wants to go (moves back before it are in
 * its snapshot, and its scan started at or before them). New jobs land at
 * the end of their priority, so in a busy queue the head still moves.
 *
 * A prepared transaction's moves are owed from PREPARE until it is
 * settled after COMMIT or ROLLBACK PREPARED: its queues' heads are not
 * used or moved meanwhile (prepared_xact.c).
 *
 * Two nets catch what these rules cannot see (a job enqueued with the
 * triggers off, say): a claim that came back short from the head also
 * claims from the start of the queue, at most once a second per queue
 * (qml_head_sweep_due), and a head not moved or kept fresh for a second
 * is forgotten. Under a held xmin horizon, the walk from the start passes
 * the index entry of every job claimed since the snapshot (thousands a
 * second of hold), which is why it is rare: every other claim walks from
 * the head, past the few entries since the last claim. Such a job waits
 * at most two seconds once claims come back short (while every claim
 * fills its batch from the head, the queue is busy and it waits with the
 * others); none is lost. qml.queue_head_nets = off turns both nets off,
 * for the tests of the rules above.
 *
 * Heads live in slots hashed by database and queue; a slot holds one
 * queue's head at a time, and a queue without one claims from the start.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "qml.h"

#define HEAD_SLOTS 1024
StaticAssertDecl(HEAD_SLOTS == QML_PREPARED_SLOTS, "prepared_xact.c names head slots");
/* a head not moved forward for this long is not trusted */
#define HEAD_TTL_USEC (1 * USECS_PER_SEC)
/*
 * A claim that comes back short walks from the start of the queue at most
 * this often per queue, and only if it took nothing from the head, unless
 * twice this went by without such a walk.
 */
#define SWEEP_USEC (1 * USECS_PER_SEC)
/*
 * Moves back are remembered in buckets of BACK_BUCKET, each keeping its
 * lowest key, in a ring of BACK_RING buckets; a claim during which more
 * went by than the ring holds does not move the head. A bucket holds moves
 * from before a claim's read too, which only makes the check stricter.
 */
#define BACK_BUCKET 8
#define BACK_RING 32

typedef struct HeadSlot
{
	slock_t		mutex;
	bool		valid;
	Oid			dboid;
	QmlHeadKey	key;
	TimestampTz set_at;
	TimestampTz swept_at;		/* the last claim from the start of the queue */
	uint64		backs;			/* moves back so far */
	QmlHeadKey	back[BACK_RING];	/* the lowest key of each bucket */
	char		queue[QML_QUEUE_MAXBYTES];
} HeadSlot;

/* lower than any job's key: a move back of another queue sharing the slot */
static const QmlHeadKey lowest_key = {PG_INT32_MAX, DT_NOBEGIN, PG_INT64_MIN};
/* higher than any job's key: the end of the queue */
static const QmlHeadKey end_key = {PG_INT32_MIN, DT_NOEND, PG_INT64_MAX};

static HeadSlot *heads = NULL;

/* a pending move of every queue (a TRUNCATE's): no queue's name is empty */
#define EVERY_QUEUE ""

/* qml.queue_head_nets: off only in tests that must see the head alone */
static bool head_nets = true;

/* what this transaction will move back when it commits or rolls back */
typedef struct PendingMove
{
	SubTransactionId subid;		/* first, for xact_list.c */
	bool		at_commit;		/* jobs enqueued (else: jobs claimed) */
	char	   *queue;
	QmlHeadKey	key;			/* the lowest of them */
	int			holder;			/* its claim_holders.c slot, or -1 */
} PendingMove;

static QmlXactList pending = QML_XACT_KEYED_LIST(PendingMove, queue);

Size
qml_head_shmem_size(void)
{
	return mul_size(HEAD_SLOTS, sizeof(HeadSlot));
}

void
qml_head_shmem_init(void)
{
	bool		found;
	int			i;

	heads = ShmemInitStruct("qml queue heads", qml_head_shmem_size(), &found);
	if (found)
		return;
	memset(heads, 0, qml_head_shmem_size());
	for (i = 0; i < HEAD_SLOTS; i++)
		SpinLockInit(&heads[i].mutex);
}

/* orders keys as jobs_fetch_idx does: priority DESC, run_at, id */
int
qml_head_key_cmp(const QmlHeadKey *a, const QmlHeadKey *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority ? -1 : 1;
	if (a->run_at != b->run_at)
		return a->run_at < b->run_at ? -1 : 1;
	if (a->id != b->id)
		return a->id < b->id ? -1 : 1;
	return 0;
}

static HeadSlot *
slot_for(const char *queue)
{
	return &heads[qml_queue_slot(MyDatabaseId, queue, strlen(queue)) % HEAD_SLOTS];
}

/* caller holds the mutex */
static bool
owned_by(HeadSlot *s, const char *queue)
{
	return s->dboid == MyDatabaseId && strcmp(s->queue, queue) == 0;
}

/*
 * Moves *key back to the first job of `queue` this transaction made
 * enqueued: its claims see those jobs at once, but the head moves back to
 * them only when it commits.
 */
static void
before_own_jobs(const char *queue, QmlHeadKey *key)
{
	int			i;

	for (i = 0; i < pending.n; i++)
	{
		PendingMove *p = qml_xact_list_at(&pending, i);

		if (p->at_commit && strcmp(p->queue, queue) == 0 &&
			qml_head_key_cmp(&p->key, key) < 0)
			*key = p->key;
	}
}

/*
 * Where a claim from `queue` may start: true with *key when the queue has
 * a head. *seen is for qml_head_advance; read it before the claim's
 * snapshot.
 */
bool
qml_head_get(const char *queue, QmlHeadKey *key, uint64 *seen)
{
	HeadSlot   *s;
	bool		found;
	bool		pinned;
	TimestampTz now;

	*seen = 0;
	if (!qml_shmem_ready())
		return false;
	s = slot_for(queue);
	now = GetCurrentTimestamp();
	/* a prepared transaction's jobs may lie ahead (prepared_xact.c) */
	pinned = qml_prepared_pins_head(queue);
	SpinLockAcquire(&s->mutex);
	*seen = s->backs;
	found = s->valid && owned_by(s, queue) &&
		(now - s->set_at < HEAD_TTL_USEC || !head_nets) && !pinned;
	if (found)
		*key = s->key;
	SpinLockRelease(&s->mutex);
	if (found)
		before_own_jobs(queue, key);
	return found;
}

/*
 * A claim that read `seen` before its snapshot walked up to `key` with
 * nothing claimable before it: the head moves there, unless a job came
 * back below `key` since. Two claims' heads are both right, so the
 * further one stays. `swept`: the claim walked from the start of the
 * queue.
 */
void
qml_head_advance(const char *queue, uint64 seen, const QmlHeadKey *key,
				 bool swept)
{
	HeadSlot   *s;
	uint64		n;
	bool		safe;
	bool		pinned;

	/* a snapshot older than the read of `seen` would break the rule */
	if (!qml_shmem_ready() || IsolationUsesXactSnapshot())
		return;
	s = slot_for(queue);
	/*
	 * A prepared transaction's jobs may lie ahead (prepared_xact.c); one
	 * prepared after this look moves the head back after it.
	 */
	pinned = qml_prepared_pins_head(queue);
	SpinLockAcquire(&s->mutex);
	safe = s->backs - seen <= (uint64) BACK_BUCKET * (BACK_RING - 1) && !pinned;
	for (n = seen / BACK_BUCKET; safe && s->backs > seen &&
		 n <= (s->backs - 1) / BACK_BUCKET; n++)
		safe = qml_head_key_cmp(&s->back[n % BACK_RING], key) >= 0;
	if (safe)
	{
		if (!owned_by(s, queue))
		{
			s->dboid = MyDatabaseId;
			strlcpy(s->queue, queue, QML_QUEUE_MAXBYTES);
			s->valid = false;
			s->swept_at = 0;
		}
		if (!s->valid || qml_head_key_cmp(key, &s->key) > 0)
			s->key = *key;
		s->valid = true;
		s->set_at = GetCurrentTimestamp();
		if (swept)
			s->swept_at = s->set_at;
	}
	SpinLockRelease(&s->mutex);
}

/*
 * Where a claim's walk of the queue, from its head or its start, may leave
 * the head: true with *to, or false when it may not move. `full`: the
 * claim took all it wanted, the last of them at `last`.
 *
 * Before the first row the walk did not take and may not pass (one
 * another transaction holds, or changed since the snapshot), every index
 * entry was taken by this claim, or not visible to it: claimed or gone,
 * or made enqueued after the snapshot, which moves the head back; or held
 * by a transaction that moves the head back before it if it rolls back,
 * or changed by one that committed (claim_holders.c). Any other row the walk skipped may be one a session
 * locked and lets go of unchanged, which nothing would move the head back
 * for, so the head stops at it. A full claim
 * moves to its last job; a short one walked to the end of the queue, and
 * the head goes there. A walk that returned no row at all does not know
 * that it walked the queue (it may be paused), and leaves the head.
 */
bool
qml_head_after_walk(const QmlWalk *walk, bool full, const QmlHeadKey *last,
					QmlHeadKey *to)
{
	if (walk->rows == 0)
		return false;
	*to = full ? *last : end_key;
	if (walk->skipped && qml_head_key_cmp(&walk->first_skipped, to) < 0)
		*to = walk->first_skipped;
	return true;
}

/*
 * Whether a claim that came back short from the head of `queue` now walks
 * from its start, for jobs the head passed that nothing moved it back for
 * (a job enqueued with the triggers off): at most once a second per queue,
 * by a claim that took nothing from the head (it holds no job while it
 * walks), or by any short claim once two seconds went by. Under a held
 * xmin horizon that walk passes every job claimed since the snapshot.
 */
bool
qml_head_sweep_due(const char *queue, bool took_none)
{
	HeadSlot   *s;
	TimestampTz now;
	bool		due;

	if (!head_nets)
		return false;
	if (!qml_shmem_ready())
		return true;
	s = slot_for(queue);
	now = GetCurrentTimestamp();
	SpinLockAcquire(&s->mutex);
	due = !owned_by(s, queue) || now - s->swept_at >= 2 * SWEEP_USEC ||
		(took_none && now - s->swept_at >= SWEEP_USEC);
	if (due && owned_by(s, queue))
		s->swept_at = now;
	SpinLockRelease(&s->mutex);
	return due;
}

/* a job of `queue` at `key` may be claimable again, or for the first time */
void
qml_head_move_back(const char *queue, const QmlHeadKey *key)
{
	HeadSlot   *s;
	QmlHeadKey *bucket;
	const QmlHeadKey *back;

	if (!qml_shmem_ready())
		return;
	s = slot_for(queue);
	SpinLockAcquire(&s->mutex);
	bucket = &s->back[(s->backs / BACK_BUCKET) % BACK_RING];
	/* keys of different queues do not compare: stop every move */
	back = owned_by(s, queue) ? key : &lowest_key;
	if (owned_by(s, queue) && s->valid && qml_head_key_cmp(key, &s->key) < 0)
		s->key = *key;
	if (s->backs % BACK_BUCKET == 0 || qml_head_key_cmp(back, bucket) < 0)
		*bucket = *back;
	s->backs++;
	SpinLockRelease(&s->mutex);
}

/*
 * The head of `s` goes, and claims in progress do not set it again (a move
 * back below every key); only if it is this database's, when `ours`.
 */
static void
forget_head(HeadSlot *s, bool ours)
{
	SpinLockAcquire(&s->mutex);
	if (!ours || s->dboid == MyDatabaseId)
	{
		s->valid = false;
		s->back[(s->backs / BACK_BUCKET) % BACK_RING] = lowest_key;
		s->backs++;
	}
	SpinLockRelease(&s->mutex);
}

/*
 * Every queue of head slot `slot` may have jobs claimable again anywhere.
 * For prepared transactions (prepared_xact.c).
 */
void
qml_head_move_back_slot(int slot)
{
	if (qml_shmem_ready())
		forget_head(&heads[slot % HEAD_SLOTS], false);
}

/*
 * Calls fn for each queue this transaction would move the head of. A
 * prepared TRUNCATE's (EVERY_QUEUE) is left out: the table is its alone
 * until it is settled, and only its own claims could have moved a head,
 * whose queues are among these.
 */
void
qml_head_each_pending(void (*fn) (const char *queue))
{
	int			i;

	for (i = 0; i < pending.n; i++)
	{
		PendingMove *p = qml_xact_list_at(&pending, i);

		if (strcmp(p->queue, EVERY_QUEUE) != 0)
			fn(p->queue);
	}
}

/*
 * This transaction is about to make its moves: claims no longer count on
 * them (claim_holders.c).
 */
static void
unpublish_pending(void)
{
	int			i;

	for (i = 0; i < pending.n; i++)
	{
		PendingMove *p = qml_xact_list_at(&pending, i);

		if (p->holder >= 0)
			qml_holder_unpublish(p->holder);
		p->holder = -1;
	}
}

static void
move_back_pending(bool committed, SubTransactionId from_subid)
{
	int			i;

	for (i = 0; i < pending.n; i++)
	{
		PendingMove *p = qml_xact_list_at(&pending, i);

		if (p->subid < from_subid || p->at_commit != committed)
			continue;
		if (strcmp(p->queue, EVERY_QUEUE) == 0)
		{
			int			slot;

			for (slot = 0; slot < HEAD_SLOTS; slot++)
				forget_head(&heads[slot], true);
		}
		else
			qml_head_move_back(p->queue, &p->key);
	}
}

static void
head_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			unpublish_pending();
			move_back_pending(true, InvalidSubTransactionId);
			qml_xact_list_forget(&pending);
			break;
		case XACT_EVENT_ABORT:
			unpublish_pending();
			move_back_pending(false, InvalidSubTransactionId);
			qml_xact_list_forget(&pending);
			break;
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* prepared_xact.c took over at PRE_PREPARE */
			unpublish_pending();
			qml_xact_list_forget(&pending);
			break;
		default:
			break;
	}
}

/* a rolled back subtransaction's claims are claimable again at once */
static void
head_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		move_back_pending(false, mySubid);
		qml_xact_list_drop_aborted(&pending, mySubid);
	}
}

void
qml_head_init(void)
{
	DefineCustomBoolVariable("qml.queue_head_nets",
							 "Whether claims forget a queue head not moved for a second and walk the queue from its start now and then.",
							 "Only for tests of the queue head's own rules: off, a job the head passed that nothing moved it back for waits.",
							 &head_nets, true,
							 PGC_SUSET, GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL,
							 NULL, NULL, NULL);
	RegisterXactCallback(head_xact_callback, NULL);
	RegisterSubXactCallback(head_subxact_callback, NULL);
}

/*
 * Moves the head of `queue` back to `key` when this transaction commits
 * (at_commit) or rolls back; remembers the lowest key per queue, kind and
 * subtransaction. A move at rollback is published, so that other claims
 * may pass the rows this transaction holds (claim_holders.c): one that
 * the top level found, or added, is made only when the whole transaction
 * rolls back, after any claim that saw it published looked.
 */
void
qml_head_remember(const char *queue, bool at_commit, const QmlHeadKey *key)
{
	PendingMove *p = qml_xact_list_find(&pending, queue, at_commit, false);

	if (p != NULL)
	{
		if (qml_head_key_cmp(key, &p->key) < 0)
		{
			p->key = *key;
			if (p->holder >= 0)
				qml_holder_lower(p->holder, key);
		}
	}
	else
	{
		if (!qml_shmem_ready())
			return;
		p = qml_xact_list_add(&pending, queue, at_commit);
		p->at_commit = at_commit;
		p->key = *key;
		p->holder = -1;
	}
	if (!at_commit && p->holder < 0 && strcmp(queue, EVERY_QUEUE) != 0)
		p->holder = qml_holder_publish(queue, &p->key);
}

/*
 * A TRUNCATE of qml.jobs (the statement trigger jobs_count_truncate):
 * should it roll back, every job it removed waits again, also below the
 * heads this transaction's claims moved past them meanwhile (nobody
 * else's claim can read the table until then).
 */
void
qml_head_note_truncate(void)
{
	qml_head_remember(EVERY_QUEUE, false, &lowest_key);
}

/*
 * The row trigger's hook (through qml_record_change): a job entering
 * `enqueued` moves its queue's head back at commit, one leaving it (a
 * claim, mostly) moves it back if the transaction rolls back.
 */
void
qml_head_note_change(const QmlJobChange *change)
{
	QmlHeadKey	key;

	if (!qml_shmem_ready() || change->queue == NULL ||
		(change->to_state == JS_ENQUEUED) == (change->from_state == JS_ENQUEUED))
		return;
	key.priority = change->priority;
	key.run_at = change->run_at;
	key.id = change->job_id;
	qml_head_remember(change->queue, change->to_state == JS_ENQUEUED, &key);
}
