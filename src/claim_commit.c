/*-------------------------------------------------------------------------
 *
 * claim_commit.c
 *	  A transaction whose only writes are qml.fetch's commits without
 *	  waiting for the WAL flush, unless qml.durable_claims is on.
 *
 * Why a claim need not wait for the disk: a claim lost in a server crash
 * leaves its jobs as they were before it (enqueued), and they run again.
 * That is also what becomes of a claim that was flushed: the crash ends
 * the worker's session, and the jobs are rescued (session_lease.c) or run
 * again when their lease ends. No job is lost either way; what differs is
 * that the lost claim did not use up an attempt, so a job that brings the
 * database server down itself could do so without end. qml.durable_claims
 * = on is for that case. A claim's commit is the flush a worker waits for
 * on every fetch (1 to 2 ms of a claim's latency here, most of it), and
 * libqml's fetcher has always claimed this way (its session runs with
 * synchronous_commit = off; docs/libqml.md).
 *
 * Only claims: a transaction that wrote anything before its first fetch,
 * or after its last, commits as the session's synchronous_commit says. The
 * test is XactLastRecEnd, the end of the last WAL record this transaction
 * wrote: zero when a fetch starts (nothing yet), or where the previous
 * fetch of the same transaction left it. A completion, an enqueue or any
 * of the user's own writes in the same transaction moves it, and so does
 * any other record the backend writes meanwhile (a page pruned while
 * reading); those make the commit wait, which is the safe side. The WAL a
 * commit does not wait for is on disk within three wal_writer_delay (200
 * ms by default), or with the next commit that waits, whichever is sooner;
 * a worker's completion is such a commit, and it carries the claim with it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "storage/proc.h"
#include "utils/guc.h"

#include "qml.h"

/* the transaction (MyProc->lxid) whose writes so far are all claims */
static LocalTransactionId claims_lxid = InvalidLocalTransactionId;
/* where its last fetch left XactLastRecEnd */
static XLogRecPtr claims_end = InvalidXLogRecPtr;
/* whether a fetch of that transaction found writes of another kind */
static bool claims_mixed = false;

/*
 * At commit: without the flush if every WAL record of the transaction was
 * written by its fetches. The setting is the transaction's own (GUC_ACTION_LOCAL):
 * it ends with it.
 */
static void
claim_commit_xact_callback(XactEvent event, void *arg)
{
	if (event != XACT_EVENT_PRE_COMMIT)
		return;
	if (claims_lxid != MyProc->lxid || claims_mixed || qml_durable_claims)
		return;
	if (XactLastRecEnd != claims_end)
		return;
	(void) set_config_option("synchronous_commit", "off",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
							 true, 0, false);
}

/*
 * Called when a fetch starts: whether the transaction so far wrote only
 * claims (nothing, or no more than its previous fetches).
 */
void
qml_claims_begin(void)
{
	static bool registered = false;

	if (!registered)
	{
		RegisterXactCallback(claim_commit_xact_callback, NULL);
		registered = true;
	}
	if (claims_lxid != MyProc->lxid)
	{
		claims_lxid = MyProc->lxid;
		claims_mixed = XactLastRecEnd != InvalidXLogRecPtr;
	}
	else if (XactLastRecEnd != claims_end)
		claims_mixed = true;
}

/* Called when the fetch's claims are done: they end here. */
void
qml_claims_end(void)
{
	claims_end = XactLastRecEnd;
}
