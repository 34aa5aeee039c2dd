/*-------------------------------------------------------------------------
 *
 * worker_api.c
 *	  The worker's claim in C: qml.fetch (what it does with the jobs it
 *	  holds is worker_held.c's).
 *
 * It runs once per batch at the full rate of every worker, so it skips
 * PL/pgSQL: its statements are prepared once and kept for the session.
 * The statements rely on the search_path the SQL declaration pins
 * (pg_catalog, pg_temp) and name every object with its schema.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tupconvert.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/itemptr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_fetch);

#define QML_MAX_FETCH_BATCH 1000

/*
 * The enqueued jobs of queue $1 in claim order; nothing when the queue is
 * paused. The query is read as a cursor and each row taken as it comes
 * (claim_lock.c): a row another session holds is passed over, never
 * waited for, and the claim stops when it has taken enough. Taking a row
 * is writing it, the version the query saw, with one heap_update
 * (worker_write.c); when qml.jobs has something of an admin's own, the
 * rows are locked instead and claim_sql below writes them. Either way
 * the rows are found by ctid, not by id: a primary key lookup per job was
 * 4% of fetch + complete. A row changed after the query's snapshot is not
 * taken but left for the next claim; a change that makes a job enqueued
 * moves the queue's head back before it (queue_head.c). The key columns
 * tell the claim where its walk may leave the head (QmlWalk).
 */
#define NOT_PAUSED \
" NOT EXISTS (SELECT 1 FROM qml.queues p WHERE p.name = $1 AND p.paused)"

#define CLAIM_COLUMNS "SELECT c.ctid, c.priority, c.run_at, c.id FROM ONLY qml.jobs c"

#define CLAIM_SELECT \
CLAIM_COLUMNS \
" WHERE c.state = 'enqueued' AND c.queue = $1 AND" NOT_PAUSED \
" ORDER BY c.priority DESC, c.run_at, c.id"

/*
 * The same from the queue's head (queue_head.c), priority $2, run_at $3,
 * id $4: the rest of the head's priority, then the lower priorities. Two
 * queries, because one range over (priority DESC, run_at, id) from a key
 * cannot be written; the second runs only if the first falls short. (As
 * one UNION ALL read through a cursor, each half was planned for all its
 * rows: a bitmap scan and a sort of the whole queue.)
 */
#define CLAIM_HEAD_SELECT \
CLAIM_COLUMNS \
" WHERE c.state = 'enqueued' AND c.queue = $1 AND c.priority = $2" \
"   AND (c.run_at, c.id) >= ($3, $4) AND" NOT_PAUSED \
" ORDER BY c.run_at, c.id"

#define CLAIM_LOWER_SELECT \
CLAIM_COLUMNS \
" WHERE c.state = 'enqueued' AND c.queue = $1 AND c.priority < $2 AND" NOT_PAUSED \
" ORDER BY c.priority DESC, c.run_at, c.id"

/*
 * The claim of the locked rows $1 for worker $2 with lease $3 as a
 * statement, when qml.jobs has something of an admin's own to run
 * (worker_write.c claims them otherwise).
 */
static const char *const claim_sql =
"UPDATE ONLY qml.jobs j"
"   SET state = 'processing', attempts = j.attempts + 1,"
"       started_at = clock_timestamp(),"
"       locked_by = $2, locked_until = now() + $3,"
"       lease_pid = $4, lease_session = $5, locked_role = qml.lease_role()"
" WHERE j.ctid = ANY ($1) AND j.state = 'enqueued'"
" RETURNING j.*";

/*
 * Up to `wanted` due scheduled and retrying jobs of queue $1 (due by $2)
 * become enqueued, earliest due first, as a scheduler pass would make
 * them: the row trigger records the change, moves the queue's head back
 * and wakes the queue's workers at commit. Locked as claims are: jobs the
 * scheduler or another fetch is promoting are theirs.
 */
static const char *const due_select_sql =
"SELECT c.ctid FROM ONLY qml.jobs c"
" WHERE c.state = ANY ('{scheduled,awaiting_retry}'::qml.job_state[])"
"   AND c.queue = $1 AND c.run_at <= $2 AND" NOT_PAUSED
" ORDER BY c.run_at";

static const char *const promote_sql =
"UPDATE ONLY qml.jobs j SET state = 'enqueued'"
" WHERE j.ctid = ANY ($1)"
"   AND j.state = ANY ('{scheduled,awaiting_retry}'::qml.job_state[])"
" RETURNING j.priority, j.run_at, j.id";

/*
 * Version 1.4's partitioned qml.jobs (docs/partitions.md): a row's ctid
 * names no partition, so the claim and the promotion are each one
 * statement, which locks its rows FOR UPDATE SKIP LOCKED and writes them
 * by (id, slot), whatever slot a rotation has moved them to. They start
 * from the queue's start: the queue's head (queue_head.c) is the direct
 * walk's, which a partitioned table does not take.
 */
static const char *const claim_partitioned_sql =
"WITH c AS ("
"  SELECT c.id, c.slot FROM qml.jobs c"
"   WHERE c.state = 'enqueued' AND c.queue = $1 AND" NOT_PAUSED
"   ORDER BY c.priority DESC, c.run_at, c.id LIMIT $6 FOR UPDATE OF c SKIP LOCKED)"
" UPDATE qml.jobs j"
"   SET state = 'processing', attempts = j.attempts + 1,"
"       started_at = clock_timestamp(),"
"       locked_by = $2, locked_until = now() + $3,"
"       lease_pid = $4, lease_session = $5, locked_role = qml.lease_role()"
"  FROM c WHERE j.id = c.id AND j.slot = c.slot AND j.state = 'enqueued'"
" RETURNING j.*";

static const char *const promote_partitioned_sql =
"WITH due AS ("
"  SELECT c.id, c.slot FROM qml.jobs c"
"   WHERE c.state = ANY ('{scheduled,awaiting_retry}'::qml.job_state[])"
"     AND c.queue = $1 AND c.run_at <= $2 AND" NOT_PAUSED
"   ORDER BY c.run_at LIMIT $3 FOR UPDATE OF c SKIP LOCKED)"
" UPDATE qml.jobs j SET state = 'enqueued'"
"  FROM due WHERE j.id = due.id AND j.slot = due.slot"
"   AND j.state = ANY ('{scheduled,awaiting_retry}'::qml.job_state[])"
" RETURNING j.priority, j.run_at, j.id";

/* a claimed row and its place in the order fetch hands jobs out in */
typedef struct ClaimedJob
{
	HeapTuple	tuple;
	QmlHeadKey	key;
} ClaimedJob;

static int
claimed_job_cmp(const void *a, const void *b)
{
	return qml_head_key_cmp(&((const ClaimedJob *) a)->key,
							&((const ClaimedJob *) b)->key);
}

/*
 * Puts the n claimed jobs in the order they were chosen in, not the order
 * the claim wrote them in; sets *first and *last to the keys of the first
 * and last of them (n > 0).
 */
static void
sort_in_claim_order(ClaimedJob *jobs, int n, QmlHeadKey *first, QmlHeadKey *last)
{
	qsort(jobs, n, sizeof(ClaimedJob), claimed_job_cmp);
	*first = jobs[0].key;
	*last = jobs[n - 1].key;
}

/*
 * Adds the rows of the claim statement to `jobs` (room for them is there)
 * in claim order, their keys read from the rows.
 */
static void
add_in_claim_order(ClaimedJob *jobs, HeapTuple *rows, TupleDesc desc, int n,
				   QmlHeadKey *first, QmlHeadKey *last)
{
	/*
	 * By name: RETURNING j.* numbers the columns without the dropped ones,
	 * so the table's column numbers need not fit.
	 */
	int			priority = SPI_fnumber(desc, "priority");
	int			run_at = SPI_fnumber(desc, "run_at");
	int			id = SPI_fnumber(desc, "id");
	int			i;
	bool		isnull;

	if (priority <= 0 || run_at <= 0 || id <= 0)
		elog(ERROR, "claimed rows lack the columns of the queue order");
	for (i = 0; i < n; i++)
	{
		HeapTuple	t = rows[i];

		jobs[i].tuple = t;
		jobs[i].key.priority = DatumGetInt32(heap_getattr(t, priority, desc, &isnull));
		jobs[i].key.run_at = DatumGetTimestampTz(heap_getattr(t, run_at, desc, &isnull));
		jobs[i].key.id = DatumGetInt64(heap_getattr(t, id, desc, &isnull));
	}
	sort_in_claim_order(jobs, n, first, last);
}

/*
 * `tuple` without its last attribute, `history`: a copy cut where that
 * attribute's value starts, with one attribute fewer in its header, which
 * reads as NULL (the column has no default), as in a row written before
 * the column was added. Half the cost of heap_modify_tuple_by_cols, which
 * takes every column apart and forms the row again, per claimed job.
 */
static HeapTuple
without_last_attribute(HeapTuple tuple, TupleDesc desc, int history)
{
	bool		isnull;
	Datum		value;

	/* a direct claim cut it already (qml_claim_row) */
	if (HeapTupleHeaderGetNatts(tuple->t_data) < history)
		return tuple;
	value = heap_getattr(tuple, history, desc, &isnull);
	if (isnull)
		return tuple;
	/* a varlena's value points into the tuple */
	return qml_tuple_cut_last(tuple, (char *) DatumGetPointer(value) - (char *) tuple->t_data);
}

/*
 * Makes the claimed rows, built for `from`, rows of the function's result
 * type `to`, matching columns by name. They differ when an admin added or
 * dropped columns: RETURNING j.* leaves dropped columns out where the row
 * type keeps their places, and a column added with a default (a "fast
 * default") is missing from the rows written before, where only the
 * table's descriptor knows its value. A row stored as it came would be
 * read with the wrong layout (a crash) or with NULL for such a column.
 * Version 1.2's rows also lose their history here.
 */
static void
to_result_rows(ClaimedJob *jobs, int n, TupleDesc from, TupleDesc to)
{
	TupleConversionMap *map = convert_tuples_by_name(from, to);
	int			history = qml_catalog()->inline_history ? SPI_fnumber(to, "history") : 0;
	Datum		null = (Datum) 0;
	bool		isnull = true;
	int			i;

	/*
	 * A worker is not given the job's history: it names other workers and
	 * holds their errors, which only admins may read, and it would cost
	 * every fetch its bytes on the wire.
	 */
	for (i = 0; i < n; i++)
	{
		if (map != NULL)
			jobs[i].tuple = execute_attr_map_tuple(jobs[i].tuple, map);
		if (history > 0 && history == to->natts)
			jobs[i].tuple = without_last_attribute(jobs[i].tuple, to, history);
		else if (history > 0)
			jobs[i].tuple = heap_modify_tuple_by_cols(jobs[i].tuple, to, 1, &history,
													  &null, &isnull);
	}
	if (map != NULL)
		free_conversion_map(map);
}

/* what one claim statement needs besides the queue, batch size and head */
typedef struct ClaimArgs
{
	text	   *worker;
	Interval   *lease;
	int32		session_pid;
	TimestampTz session_started;
	bool		session_lease;
	bool		due_checked;	/* due_by read for this round of claims */
	TimestampTz due_by;			/* promote jobs due by then; 0: none */
	Tuplestorestate *store;
	TupleDesc	result_desc;	/* the rows' type: qml.jobs as fetch returns it */
} ClaimArgs;

/* the tids as a tid[] datum, for a statement's ctid = ANY ($1) */
static Datum
tid_array(ItemPointerData *tids, int n)
{
	Datum	   *elems = palloc(n * sizeof(Datum));
	int			i;

	for (i = 0; i < n; i++)
		elems[i] = PointerGetDatum(&tids[i]);
	return PointerGetDatum(construct_array(elems, n, TIDOID,
										   sizeof(ItemPointerData), false,
										   TYPALIGN_SHORT));
}

/* what the claim writes into each row it takes (worker_write.c) */
static void
claim_for(const ClaimArgs *a, QmlClaim *claim)
{
	claim->worker = a->worker;
	claim->role = qml_lease_role();
	/* now() + lease, as the statement writes it */
	claim->locked_until = DatumGetTimestampTz(
		DirectFunctionCall2(timestamptz_pl_interval,
							TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
							IntervalPGetDatum(a->lease)));
	claim->session_lease = a->session_lease;
	claim->session_pid = a->session_pid;
	claim->session_started = a->session_started;
}

/*
 * Claims the n locked rows at tids[] with claim_sql; the claimed rows are
 * SPI's result. Returns how many.
 */
static int
claim_locked_rows_by_statement(const ClaimArgs *a, ItemPointerData *tids, int n)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[5] = {TIDARRAYOID, TEXTOID, INTERVALOID, INT4OID,
	TIMESTAMPTZOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', 'n', 'n'};
	int			rc;

	values[0] = tid_array(tids, n);
	values[1] = PointerGetDatum(a->worker);
	values[2] = IntervalPGetDatum(a->lease);
	values[3] = Int32GetDatum(a->session_pid);
	values[4] = TimestampTzGetDatum(a->session_started);
	if (a->session_lease)
		nulls[3] = nulls[4] = ' ';
	rc = qml_execute_plan(qml_session_plan(&plan, claim_sql, 5, types), values, nulls);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "claim failed: %s", SPI_result_code_string(rc));
	return (int) SPI_processed;
}

/*
 * Claims up to `wanted` jobs of `queue` from a partitioned qml.jobs with
 * claim_partitioned_sql and adds them to `jobs` in claim order; returns
 * how many. The rows stay in SPI's memory until SPI_finish().
 */
static int
run_partitioned_claim(const ClaimArgs *a, Datum queue, int wanted, ClaimedJob *jobs)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[6] = {TEXTOID, TEXTOID, INTERVALOID, INT4OID,
	TIMESTAMPTZOID, INT4OID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', 'n', 'n', ' '};
	QmlHeadKey	first;
	QmlHeadKey	last;
	int			rc;
	int			n;

	values[0] = queue;
	values[1] = PointerGetDatum(a->worker);
	values[2] = IntervalPGetDatum(a->lease);
	values[3] = Int32GetDatum(a->session_pid);
	values[4] = TimestampTzGetDatum(a->session_started);
	values[5] = Int32GetDatum(wanted);
	if (a->session_lease)
		nulls[3] = nulls[4] = ' ';
	rc = qml_execute_plan(qml_session_plan(&plan, claim_partitioned_sql, 6, types),
						  values, nulls);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "claim failed: %s", SPI_result_code_string(rc));
	n = (int) SPI_processed;
	if (n > 0)
	{
		add_in_claim_order(jobs, SPI_tuptable->vals, SPI_tuptable->tupdesc, n,
						   &first, &last);
		to_result_rows(jobs, n, SPI_tuptable->tupdesc, a->result_desc);
	}
	return n;
}

/*
 * Runs one claim of up to `wanted` jobs from `queue`, from `head` if not
 * NULL, and adds them to `jobs`; returns how many it took, their first
 * and last keys, and what its walk met in *walk. The rows stay in SPI's
 * memory until SPI_finish().
 */
static int
run_claim(const ClaimArgs *a, Datum queue, int wanted, const QmlHeadKey *head,
		  ClaimedJob *jobs, QmlHeadKey *first, QmlHeadKey *last, QmlWalk *walk)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr head_plan = NULL;
	static SPIPlanPtr lower_plan = NULL;
	Oid			types[4] = {TEXTOID, INT4OID, TIMESTAMPTZOID, INT8OID};
	Datum		values[4];
	QmlClaim	claim;
	QmlClaimRun run;
	int			n;

	claim_for(a, &claim);
	qml_claim_begin(&run, &claim, wanted);
	values[0] = queue;
	/* the statements' rows read from jobs_fetch_idx directly (claim_lock.c) */
	n = qml_take_enqueued(queue, head, false, wanted, qml_claim_row, &run, walk);
	if (n >= 0)
	{
		if (head != NULL && n < wanted)
			n += qml_take_enqueued(queue, head, true, wanted - n, qml_claim_row, &run,
								   walk);
	}
	else if (head != NULL)
	{
		values[1] = Int32GetDatum(head->priority);
		values[2] = TimestampTzGetDatum(head->run_at);
		values[3] = Int64GetDatum(head->id);
		n = qml_take_claimable(qml_session_cursor_plan(&head_plan, CLAIM_HEAD_SELECT,
													   4, types),
							   values, NULL, wanted, qml_claim_row, &run, walk);
		if (n < wanted)
			n += qml_take_claimable(qml_session_cursor_plan(&lower_plan, CLAIM_LOWER_SELECT,
															2, types),
									values, NULL, wanted - n, qml_claim_row, &run, walk);
	}
	else
		n = qml_take_claimable(qml_session_cursor_plan(&plan, CLAIM_SELECT, 1, types),
							   values, NULL, wanted, qml_claim_row, &run, walk);
	if (run.mode == QML_CLAIM_DIRECT && n > 0)
	{
		int			i;

		/* the direct claim kept each row's key as it wrote the row */
		for (i = 0; i < n; i++)
		{
			jobs[i].tuple = run.rows[i];
			jobs[i].key = run.keys[i];
		}
		sort_in_claim_order(jobs, n, first, last);
		to_result_rows(jobs, n, RelationGetDescr(run.d.rel), a->result_desc);
	}
	else if (run.mode == QML_CLAIM_STATEMENT && n > 0)
	{
		n = claim_locked_rows_by_statement(a, run.tids, n);
		if (n > 0)
		{
			add_in_claim_order(jobs, SPI_tuptable->vals, SPI_tuptable->tupdesc, n,
							   first, last);
			to_result_rows(jobs, n, SPI_tuptable->tupdesc, a->result_desc);
		}
	}
	qml_claim_end(&run);
	pfree(run.rows);
	pfree(run.keys);
	pfree(run.tids);
	return n;
}

/*
 * Promotes up to `wanted` jobs of `queue` due by `due_by`, so that a claim
 * need not wait for the scheduler: a pass takes a second to promote
 * 100,000 jobs due at once, a claim only the jobs it may take. Returns how
 * many, and in *lowest the first of them in claim order: the claim that
 * follows sees them (same transaction), but the queue's head moves back to
 * them only at commit.
 */
static int
promote_due(Datum queue, int wanted, TimestampTz due_by, QmlHeadKey *lowest)
{
	static SPIPlanPtr select_plan = NULL;
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr partitioned_plan = NULL;
	Oid			types[3] = {TEXTOID, TIMESTAMPTZOID, INT4OID};
	Oid			promote_types[1] = {TIDARRAYOID};
	Datum		values[3];
	ItemPointerData *tids = palloc(wanted * sizeof(ItemPointerData));
	uint64		i;
	int			rc;
	int			n;

	values[0] = queue;
	values[1] = TimestampTzGetDatum(due_by);
	values[2] = Int32GetDatum(wanted);
	if (qml_catalog()->jobs_partitioned)
		rc = qml_execute_plan(qml_session_plan(&partitioned_plan, promote_partitioned_sql,
											   3, types),
							  values, NULL);
	else
	{
		n = qml_lock_claimable(qml_session_cursor_plan(&select_plan, due_select_sql,
													   2, types),
							   values, NULL, wanted, tids);
		if (n == 0)
		{
			pfree(tids);
			return 0;
		}
		values[0] = tid_array(tids, n);
		rc = qml_execute_plan(qml_session_plan(&plan, promote_sql, 1, promote_types),
							  values, NULL);
	}
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "promotion of due jobs failed: %s", SPI_result_code_string(rc));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		QmlHeadKey	key;
		bool		isnull;

		key.priority = DatumGetInt32(SPI_getbinval(t, desc, 1, &isnull));
		key.run_at = DatumGetTimestampTz(SPI_getbinval(t, desc, 2, &isnull));
		key.id = DatumGetInt64(SPI_getbinval(t, desc, 3, &isnull));
		if (i == 0 || qml_head_key_cmp(&key, lowest) < 0)
			*lowest = key;
	}
	n = (int) SPI_processed;
	SPI_freetuptable(SPI_tuptable);
	pfree(tids);
	return n;
}

/*
 * Claims up to `wanted` jobs from one queue: from its head when it has
 * one (or from `back`, if that comes first), else from its start, and
 * moves the head to where its walk may leave it (queue_head.c). A claim
 * from the head that comes back short walks from the start too, now and
 * then, for jobs the head passed that nothing moved it back for. Returns
 * how many it took.
 */
static int
claim_from_queue(const ClaimArgs *a, Datum queue, int wanted,
				 const QmlHeadKey *back)
{
	char	   *name = TextDatumGetCString(queue);
	ClaimedJob *jobs = palloc(wanted * sizeof(ClaimedJob));
	QmlHeadKey	head;
	QmlHeadKey	first;
	QmlHeadKey	last;
	QmlHeadKey	to;
	QmlWalk		walk = {0};
	QmlWalk		sweep = {0};
	uint64		seen;
	bool		have_head;
	int			n = 0;
	int			more = 0;
	int			i;

	walk.queue = sweep.queue = name;
	if (qml_catalog()->jobs_partitioned)
	{
		n = run_partitioned_claim(a, queue, wanted, jobs);
		for (i = 0; i < n; i++)
			tuplestore_puttuple(a->store, jobs[i].tuple);
		pfree(jobs);
		return n;
	}
	/* read before the claim's snapshot (queue_head.c) */
	have_head = qml_head_get(name, &head, &seen);
	if (have_head && back != NULL && qml_head_key_cmp(back, &head) < 0)
		head = *back;
	if (have_head)
	{
		n = run_claim(a, queue, wanted, &head, jobs, &first, &last, &walk);
		/* a walk that met nothing keeps the head, and keeps it fresh */
		if (!qml_head_after_walk(&walk, n == wanted, &last, &to))
			to = head;
		qml_head_advance(name, seen, &to, false);
		if (n < wanted && qml_head_sweep_due(name, n == 0))
		{
			more = run_claim(a, queue, wanted - n, NULL, jobs + n, &first, &last,
							 &sweep);
			if (more > 0)
			{
				/* jobs before the head were missed: start from them next time */
				qml_head_move_back(name, &first);
				/* ... and hand them out first */
				qsort(jobs, n + more, sizeof(ClaimedJob), claimed_job_cmp);
			}
		}
	}
	else
	{
		more = run_claim(a, queue, wanted, NULL, jobs, &first, &last, &sweep);
		if (qml_head_after_walk(&sweep, more == wanted, &last, &to))
			qml_head_advance(name, seen, &to, true);
	}
	for (i = 0; i < n + more; i++)
		tuplestore_puttuple(a->store, jobs[i].tuple);
	pfree(jobs);
	return n + more;
}

/*
 * Now, when scheduled or retrying jobs the scheduler has not promoted yet
 * may be due; else 0. Fetch then promotes its share itself.
 */
static TimestampTz
due_jobs_by(void)
{
	TimestampTz now = GetCurrentTimestamp();

	return qml_registry_due_at(MyDatabaseId) <= now ? now : 0;
}

/*
 * What the queue's enqueued jobs left short of `wanted`, from its due jobs
 * the scheduler has not promoted yet: they are promoted here, and only as
 * many as the claim can take, so that the caller's transaction holds none
 * it does not claim. Returns how many it took.
 */
static int
claim_due(ClaimArgs *a, Datum queue, int wanted)
{
	QmlHeadKey	lowest;

	/* only a claim that came back short asks the scheduler's registry */
	if (!a->due_checked)
	{
		a->due_by = due_jobs_by();
		a->due_checked = true;
	}
	if (a->due_by == 0 || promote_due(queue, wanted, a->due_by, &lowest) == 0)
		return 0;
	return claim_from_queue(a, queue, wanted, &lowest);
}

/*
 * qml.fetch(worker text, queues text[] = '{default}', batch int = 1,
 *			 lease interval = '5 minutes', wait interval = NULL,
 *			 session_lease boolean = false) returns setof qml.jobs
 *
 * Claims up to `batch` jobs: queues in the order given, then higher
 * priority, then oldest first. With `wait`, when there is nothing it
 * blocks until a commit makes jobs of these queues enqueued or the wait
 * runs out (wakeup.c). With session_lease, the jobs are rescued as soon as
 * this session ends (session_lease.c).
 */
Datum
qml_fetch(PG_FUNCTION_ARGS)
{
	text	   *worker = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	ArrayType  *queues = PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1);
	int			batch = PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2);
	Interval   *lease = PG_ARGISNULL(3) ? NULL : PG_GETARG_INTERVAL_P(3);
	Interval   *wait = PG_ARGISNULL(4) ? NULL : PG_GETARG_INTERVAL_P(4);
	bool		session_lease = PG_ARGISNULL(5) ? false : PG_GETARG_BOOL(5);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz deadline = qml_wait_deadline(wait);
	QmlWaitSet	ws;
	ClaimArgs	args = {0};
	Datum	   *queue_names;
	bool	   *queue_nulls;
	int			nqueues;
	int			wanted;
	int			i;

	qml_check_name("worker", worker, QML_MAX_WORKER_CHARS);
	if (PG_ARGISNULL(2) || queues == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", queues == NULL ? "queues" : "batch")));
	if (batch < 1 || batch > QML_MAX_FETCH_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch must be between 1 and %d, not %d",
						QML_MAX_FETCH_BATCH, batch),
				 errhint("Fetch more jobs in several calls.")));
	qml_check_duration("lease", lease, false);
	if (ARR_NDIM(queues) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queues must be a non-empty array of queue names")));
	deconstruct_array(queues, TEXTOID, -1, false, TYPALIGN_INT,
					  &queue_names, &queue_nulls, &nqueues);
	for (i = 0; i < nqueues; i++)
	{
		if (queue_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("queues must not contain NULL")));
		qml_check_name("queue", DatumGetTextPP(queue_names[i]), QML_MAX_QUEUE_CHARS);
	}
	/* NULL was taken as true, a session lease nobody asked for */
	if (PG_ARGISNULL(5))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("session_lease must not be null"),
				 errhint("Pass true to have the jobs rescued when this session ends, false to rely on the lease alone.")));

	InitMaterializedSRF(fcinfo, 0);

	/* session lease: the claim remembers this session (session_lease.c) */
	args.session_lease = session_lease &&
		qml_session_register(&args.session_pid, &args.session_started);
	qml_wait_begin(&ws, queue_names, nqueues, batch);
	args.worker = worker;
	args.lease = lease;
	args.store = rsinfo->setResult;
	args.result_desc = rsinfo->setDesc;

	/*
	 * The claim and the promotion choose their way by what qml.jobs is (a
	 * plain table or 1.4's ring): lock it first, as they will, so that the
	 * choice is made on the table this call writes, when an update that
	 * replaced it was waited for (catalog.c, qml_jobs_lock).
	 */
	(void) qml_jobs_lock(RowShareLock);
	qml_claims_begin();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (;;)
	{
		/* counted before the claim's snapshot: see wakeup.c */
		qml_wait_epoch(&ws);
		args.due_checked = false;
		wanted = batch;
		for (i = 0; i < nqueues && wanted > 0; i++)
		{
			wanted -= claim_from_queue(&args, queue_names[i], wanted, NULL);
			if (wanted > 0)
				wanted -= claim_due(&args, queue_names[i], wanted);
		}
		/* nothing: note that we wait, and with `wait` sleep until work comes */
		if (wanted < batch || !qml_wait_for_work(&ws, deadline))
			break;
		/* the lease runs from the claim, not from the transaction's start */
		args.lease = qml_lease_from_now(lease);
	}
	SPI_finish();
	qml_claims_end();
	return (Datum) 0;
}
