/*-------------------------------------------------------------------------
 *
 * direct_insert.c
 *	  Rows into qml's own tables and their indexes without an executor.
 *
 * An INSERT statement starts an executor, reads the table's CHECK
 * constraints back from their stored form and queues trigger events; for
 * one job or one history row that cost more than writing the row (profiles
 * of enqueue and of the history flush). The callers here build complete,
 * already checked rows, so they write the heap and every index themselves,
 * the way COPY and logical replication do. Nothing else runs: no triggers,
 * rules, constraints or row security, so a caller must only use this on a
 * table exactly as CREATE EXTENSION made it (direct_gate.c;
 * qml_direct_open_jobs() checks that for qml.jobs, job_history.c for
 * qml.job_events).
 *
 * Opening the indexes the executor's way (ExecOpenIndices) builds every
 * index's IndexInfo and compiles every partial index's predicate again on
 * each call, 5% of an enqueue. When all of a table's indexes are plain
 * btrees (no expressions, no exclusion, no deferred uniqueness), as qml's
 * are, both are kept for the session instead (an IndexPlan), and dropped
 * on a relcache invalidation of the table or of one of the indexes (its
 * memory at the end of the transaction, which may still be using it). Any
 * other index sends the table the executor's way.
 *
 * Rows wait in slots and go to the heap DIRECT_INSERT_BATCH at a time
 * (table_multi_insert, as COPY does), then to the indexes, one index after
 * the other, each index's entries in runs of rows that agree in its
 * leading key columns (group_entries() says why).
 *
 * Which partial indexes admit a row depends only on the columns their
 * predicates read; the plan keeps the last answers with those columns'
 * values, so one enqueue after another asks each predicate once per
 * session, not once per job (about 1% of an enqueue).
 *
 * The worker's claims and completions update rows of qml.jobs the same
 * way (qml_direct_update, for worker_write.c): heap_update, then the new
 * version into the indexes its predicates admit, each told whether its key
 * changed, as the executor tells them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "optimizer/optimizer.h"
#include "storage/lmgr.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "qml.h"

/*
 * The partial indexes' answers for the last row whose predicate columns
 * were all NULL or passed by value (an enqueued job's state, unique_key
 * and locked_until), with those values.
 */
typedef struct AdmitMemo
{
	bool		valid;
	Datum	   *values;			/* by predattrs */
	bool	   *nulls;
	bool	   *admit;			/* by index */
} AdmitMemo;

/* a table's indexes, ready for inserts; kept for the session */
typedef struct IndexPlan
{
	Oid			relid;			/* InvalidOid: not valid */
	bool		simple;			/* only plain btrees: the fast path */
	int			nindexes;
	Oid		   *index_oids;
	IndexInfo **infos;
	ExprState **predicates;		/* NULL for a full index */
	int			npredattrs;		/* the columns the predicates read (-1: a */
	AttrNumber *predattrs;		/* system column, not compared) */
	AdmitMemo  *memo;			/* in cxt, as all it points to: a statement
								 * may use it after the plan is forgotten */
	MemoryContext cxt;
} IndexPlan;

/* qml.jobs and qml.job_events */
static IndexPlan plans[2];
static ExprContext *predicate_cxt = NULL;
static bool callback_registered = false;
static bool building_hit;		/* an invalidation came while building */

/*
 * Drops a plan. A direct insert of this transaction may still be using
 * its memory (an invalidation arrives whenever a lock is taken), so the
 * memory lives until the transaction ends.
 */
static void
forget_plan(IndexPlan *p)
{
	if (p->cxt != NULL)
	{
		if (TopTransactionContext != NULL)
			MemoryContextSetParent(p->cxt, TopTransactionContext);
		else
			MemoryContextDelete(p->cxt);
	}
	memset(p, 0, sizeof(*p));
}

static void
plans_invalidate(Datum arg, Oid relid)
{
	int			i,
				j;

	/* any invalidation at all while a plan is built: build it again */
	building_hit = true;
	for (i = 0; i < lengthof(plans); i++)
	{
		IndexPlan  *p = &plans[i];
		bool		hit = relid == InvalidOid || relid == p->relid;

		if (p->relid == InvalidOid)
			continue;			/* free, or being built */
		for (j = 0; !hit && j < p->nindexes; j++)
			hit = p->index_oids[j] == relid;
		if (hit)
			forget_plan(p);
	}
}

/* whether the fast path can insert into this index as the executor would */
static bool
is_simple(Relation index, IndexInfo *info)
{
	return index->rd_rel->relam == BTREE_AM_OID &&
		info->ii_Expressions == NIL &&
		info->ii_ExclusionOps == NULL &&
		index->rd_index->indimmediate;
}

/* reads rel's indexes into p, locking them */
static void
fill_plan(IndexPlan *p, Relation rel)
{
	List	   *oids = RelationGetIndexList(rel);
	MemoryContext old;
	ListCell   *lc;
	Bitmapset  *read = NULL;
	int			i = 0;
	int			k;

	p->cxt = AllocSetContextCreate(CacheMemoryContext, "qml index plan",
								   ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(p->cxt);
	p->simple = true;
	p->nindexes = list_length(oids);
	p->index_oids = palloc(p->nindexes * sizeof(Oid));
	p->infos = palloc(p->nindexes * sizeof(IndexInfo *));
	p->predicates = palloc0(p->nindexes * sizeof(ExprState *));
	foreach(lc, oids)
	{
		Relation	index = index_open(lfirst_oid(lc), RowExclusiveLock);
		IndexInfo  *info = BuildIndexInfo(index);

		p->index_oids[i] = lfirst_oid(lc);
		p->infos[i] = info;
		p->simple &= is_simple(index, info);
		if (info->ii_Predicate != NIL)
			p->predicates[i] =
				ExecInitQual((List *) expression_planner((Expr *) info->ii_Predicate),
							 NULL);
		pull_varattnos((Node *) info->ii_Predicate, 1, &read);
		index_close(index, NoLock);
		i++;
	}
	/* user columns only (the attnos are offset); anything else: not known */
	p->npredattrs = bms_num_members(read);
	p->predattrs = palloc(Max(p->npredattrs, 1) * sizeof(AttrNumber));
	i = 0;
	k = -1;
	while ((k = bms_next_member(read, k)) >= 0)
	{
		p->predattrs[i++] = k + FirstLowInvalidHeapAttributeNumber;
		if (k + FirstLowInvalidHeapAttributeNumber <= 0)
			p->npredattrs = -1;
	}
	p->memo = palloc0(sizeof(AdmitMemo));
	p->memo->values = palloc(Max(p->npredattrs, 1) * sizeof(Datum));
	p->memo->nulls = palloc(Max(p->npredattrs, 1) * sizeof(bool));
	p->memo->admit = palloc(Max(p->nindexes, 1) * sizeof(bool));
	MemoryContextSwitchTo(old);
	list_free(oids);
}

/*
 * Builds the plan for `rel` in a free slot; its indexes stay locked. Not
 * valid (relid unset) until built: an invalidation meanwhile, which
 * locking an index can bring, leaves it alone and makes it start over.
 */
static IndexPlan *
build_plan(Relation rel)
{
	IndexPlan  *p = NULL;
	int			i;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(plans_invalidate, (Datum) 0);
		callback_registered = true;
	}
	for (i = 0; i < lengthof(plans) && p == NULL; i++)
		if (plans[i].relid == InvalidOid)
			p = &plans[i];
	if (p == NULL)
		forget_plan(p = &plans[0]);
	do
	{
		/* what a build that failed or was hit left */
		if (p->cxt != NULL)
			MemoryContextDelete(p->cxt);
		memset(p, 0, sizeof(*p));
		building_hit = false;
		fill_plan(p, rel);
	} while (building_hit);
	p->relid = RelationGetRelid(rel);
	return p;
}

static IndexPlan *
find_plan(Oid relid)
{
	int			i;

	for (i = 0; i < lengthof(plans); i++)
		if (plans[i].relid == relid)
			return &plans[i];
	return NULL;
}

/*
 * Takes what inserts need from the table's plan; false when the table's
 * indexes are not all simple. No index is opened here: a row goes into
 * the indexes whose predicates admit it (a new job into two of qml.jobs'
 * seven), and each is opened and locked when the first row it admits
 * comes (open_index), so the others cost no lock and no relcache lookup.
 *
 * The set of indexes and their definitions are the ones the relcache had
 * when the table was locked, as for an INSERT: the table's lock is what
 * keeps them. DDL that changes an index of a table without a lock
 * conflicting with RowExclusiveLock on the table (CREATE, DROP and REINDEX
 * CONCURRENTLY) waits for the transactions holding it before the change
 * matters to writers, and takes the table off the direct path meanwhile
 * (direct_gate.c, an extra index). An invalidation that a later index
 * lock brings may forget the plan; its memory, which d points into, lasts
 * until the transaction ends.
 */
static bool
open_planned(QmlDirectInsert *d)
{
	IndexPlan  *p = find_plan(RelationGetRelid(d->rel));

	if (p == NULL)
		p = build_plan(d->rel);
	if (!p->simple)
		return false;
	d->nindexes = p->nindexes;
	d->index_oids = p->index_oids;
	d->infos = p->infos;
	d->predicates = p->predicates;
	d->npredattrs = p->npredattrs;
	d->predattrs = p->predattrs;
	d->memo = p->memo;
	d->admit = palloc(Max(d->nindexes, 1) * sizeof(bool));
	d->indexes = palloc0(Max(d->nindexes, 1) * sizeof(Relation));
	return true;
}

/* the plan's index i, opened and locked for inserts the first time */
static Relation
open_index(QmlDirectInsert *d, int i)
{
	if (d->indexes[i] == NULL)
		d->indexes[i] = index_open(d->index_oids[i], RowExclusiveLock);
	return d->indexes[i];
}

/*
 * Opens the table (RowExclusiveLock) for inserts; its indexes as rows
 * need them (open_planned), or all of them when it has other than plain
 * btrees.
 */
void
qml_direct_open(QmlDirectInsert *d, Oid relid)
{
	memset(d, 0, sizeof(*d));
	d->rel = table_open(relid, RowExclusiveLock);
	if (open_planned(d))
		return;
	d->estate = CreateExecutorState();
	d->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(d->rri, d->rel, 1, NULL, 0);
	ExecOpenIndices(d->rri, false);
}

/*
 * Opens qml.jobs for one of the API's direct writes (enqueue and its
 * batch, claims, completions), with qml.job_events locked as well, in the
 * order every writer takes them (the history flush writes it). False, with
 * nothing left open, when a statement would have run something of an
 * admin's own.
 */
bool
qml_direct_open_jobs(QmlDirectInsert *d)
{
	/* the table after the lock: the one waited for may have been replaced */
	Oid			jobs = qml_jobs_lock(RowExclusiveLock);

	/* a partitioned qml.jobs (1.4) has no heap to open (direct_gate.c) */
	if (qml_catalog()->jobs_partitioned)
	{
		memset(d, 0, sizeof(*d));
		return false;
	}
	qml_direct_open(d, jobs);
	/* up to version 1.1, the history flush writes qml.job_events */
	if (!qml_catalog()->inline_history)
		LockRelationOid(qml_catalog()->job_events, RowExclusiveLock);
	/* the locks may have brought an ALTER TABLE: qml_catalog() reads it */
	if (qml_jobs_writes_are_ours(d->rel))
		return true;
	qml_direct_close(d);
	return false;
}

/* whether two rows have the same values in the columns `atts` */
static bool
same_columns(const AttrNumber *atts, int natts, TupleTableSlot *slot,
			 TupleTableSlot *other)
{
	TupleDesc	desc = slot->tts_tupleDescriptor;
	int			i;

	for (i = 0; i < natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, atts[i] - 1);
		bool		null,
					othernull;
		Datum		value = slot_getattr(slot, atts[i], &null);
		Datum		othervalue = slot_getattr(other, atts[i], &othernull);

		if (null != othernull ||
			(!null && !datumIsEqual(value, othervalue, attr->attbyval, attr->attlen)))
			return false;
	}
	return true;
}

/*
 * Whether an update left the index's key as it was: then the new entry is
 * only a new version of the row, which btree takes as its cue to delete
 * older versions before it splits a page (bottom-up deletion), as the
 * executor tells it for its own updates.
 */
static bool
key_unchanged(IndexInfo *info, TupleTableSlot *slot, TupleTableSlot *oldslot)
{
	return same_columns(info->ii_IndexAttrNumbers, info->ii_NumIndexAttrs,
						slot, oldslot);
}

/*
 * Whether the entry of index i, for a row whose key is new (inserted) or
 * changed, or `unchanged` by an update, must check the index's uniqueness.
 *
 * An update that leaves a unique key as it was adds nothing a check could
 * refuse: the version it replaces, live and held by this transaction, has
 * its entry with the same key in an index that holds every row (no
 * predicate), so no other live row can have the key now, and a
 * transaction that inserts it meets that version and waits for this one,
 * then meets the new entry. This is what a HOT update, with no new entry
 * at all, relies on. The check walked every older version of the job in
 * the primary key and fetched each from the heap, 3 to 4% of a claim and
 * completion. A partial unique index is checked, as is one still being
 * built (CREATE INDEX CONCURRENTLY, not yet valid): the old version may
 * not be in it.
 */
static bool
needs_unique_check(QmlDirectInsert *d, int i, bool unchanged)
{
	return d->infos[i]->ii_Unique &&
		!(unchanged && d->predicates[i] == NULL &&
		  open_index(d, i)->rd_index->indisvalid);
}

/*
 * Whether the plan's memo holds the answers for this row (copied into
 * d->admit when it does).
 */
static bool
memo_matches(QmlDirectInsert *d, TupleTableSlot *slot)
{
	AdmitMemo  *m = d->memo;
	int			i;

	if (!m->valid || d->npredattrs < 0)
		return false;
	for (i = 0; i < d->npredattrs; i++)
	{
		bool		null;
		Datum		value = slot_getattr(slot, d->predattrs[i], &null);

		if (null != m->nulls[i] || (!null && value != m->values[i]))
			return false;
	}
	return true;
}

/*
 * Keeps the answers d->admit now holds for this row, when the columns the
 * predicates read are all NULL or passed by value (else the memo is
 * emptied: it keeps no copies).
 */
static void
memo_remember(QmlDirectInsert *d, TupleTableSlot *slot)
{
	AdmitMemo  *m = d->memo;
	TupleDesc	desc = slot->tts_tupleDescriptor;
	int			i;

	m->valid = false;
	if (d->npredattrs < 0)
		return;
	for (i = 0; i < d->npredattrs; i++)
	{
		m->values[i] = slot_getattr(slot, d->predattrs[i], &m->nulls[i]);
		if (!m->nulls[i] && !TupleDescAttr(desc, d->predattrs[i] - 1)->attbyval)
			return;
	}
	memcpy(m->admit, d->admit, d->nindexes * sizeof(bool));
	m->valid = true;
}

/*
 * Sets d->admit to the answers of the planned indexes' predicates for the
 * slot's row. `prev`, when not NULL, is the row answered just before, whose
 * answers d->admit still holds: they stand for this row too when it has
 * the same values in every column a predicate reads (predicates are
 * immutable), as the rows of a batch of enqueues have. That saves
 * evaluating each partial index's predicate for each row, a twentieth of
 * an enqueued job's time.
 */
static void
decide_admit(QmlDirectInsert *d, TupleTableSlot *slot, TupleTableSlot *prev)
{
	bool		memo_same;
	int			i;

	if (prev != NULL && d->npredattrs >= 0 &&
		same_columns(d->predattrs, d->npredattrs, slot, prev))
		return;
	memo_same = memo_matches(d, slot);
	if (predicate_cxt == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		predicate_cxt = CreateStandaloneExprContext();
		MemoryContextSwitchTo(old);
	}
	predicate_cxt->ecxt_scantuple = slot;
	for (i = 0; i < d->nindexes; i++)
	{
		if (!d->infos[i]->ii_ReadyForInserts)
			d->admit[i] = false;
		else if (memo_same)
			d->admit[i] = d->memo->admit[i];
		else
			d->admit[i] = d->predicates[i] == NULL ||
				ExecQual(d->predicates[i], predicate_cxt);
	}
	if (!memo_same)
		memo_remember(d, slot);
	ResetExprContext(predicate_cxt);
}

/* inserts one entry of the slot's row; `oldslot`: insert_planned() */
static void
insert_entry(QmlDirectInsert *d, int i, Datum *values, bool *isnull,
			 TupleTableSlot *slot, TupleTableSlot *oldslot)
{
	IndexInfo  *info = d->infos[i];
	Relation	index = open_index(d, i);
	bool		unchanged = oldslot != NULL && key_unchanged(info, slot, oldslot);

	index_insert(index, values, isnull, &slot->tts_tid, d->rel,
				 needs_unique_check(d, i, unchanged) ?
				 UNIQUE_CHECK_YES : UNIQUE_CHECK_NO,
				 unchanged, info);
}

/*
 * Inserts the slot's row, in the heap, into the planned indexes its
 * predicates admit; `oldslot` is the row's previous version when this is
 * an update.
 */
static void
insert_planned(QmlDirectInsert *d, TupleTableSlot *slot, TupleTableSlot *oldslot)
{
	Datum		values[INDEX_MAX_KEYS];
	bool		isnull[INDEX_MAX_KEYS];
	int			i;

	decide_admit(d, slot, NULL);
	for (i = 0; i < d->nindexes; i++)
	{
		if (!d->admit[i])
			continue;
		FormIndexDatum(d->infos[i], slot, NULL, values, isnull);
		insert_entry(d, i, values, isnull, slot, oldslot);
	}
}

/*
 * The index entries of the rows waiting in the slots, taken before they
 * go to the heap: the slots then still hold each value as it was given.
 * Writing a row to the heap forms its tuple and forgets those values, so
 * that taking a column afterwards deforms the tuple again, for the
 * predicates' columns (locked_until is the 15th) and again for the keys:
 * 2% of a batched job's instructions (bench case 2, under callgrind).
 */
static void
take_entries(QmlDirectInsert *d)
{
	int			i,
				j;

	if (d->admits == NULL)
	{
		/* where the indexes' array is: the caller may reset its own */
		MemoryContext cxt = GetMemoryChunkContext(d->indexes);
		int			n = DIRECT_INSERT_BATCH * d->nindexes;

		for (i = 0; i < d->nindexes; i++)
			d->keyatts = Max(d->keyatts, d->infos[i]->ii_NumIndexAttrs);
		d->admits = MemoryContextAlloc(cxt, n * sizeof(bool));
		d->keys = MemoryContextAlloc(cxt, n * d->keyatts * sizeof(Datum));
		d->keynulls = MemoryContextAlloc(cxt, n * d->keyatts * sizeof(bool));
	}
	for (j = 0; j < d->nwaiting; j++)
	{
		decide_admit(d, d->slots[j], j > 0 ? d->slots[j - 1] : NULL);
		for (i = 0; i < d->nindexes; i++)
		{
			int			k = j * d->nindexes + i;

			d->admits[k] = d->admit[i];
			if (d->admit[i])
				FormIndexDatum(d->infos[i], d->slots[j], NULL,
							   &d->keys[k * d->keyatts], &d->keynulls[k * d->keyatts]);
		}
	}
}

/* the most runs group_entries() keeps apart; later rows join the last */
#define ENTRY_GROUPS 8

/* whether two taken entries of index i agree in their first `ncols` columns */
static bool
same_prefix(QmlDirectInsert *d, int i, int ka, int kb, int ncols)
{
	TupleDesc	desc = RelationGetDescr(open_index(d, i));
	int			c;

	for (c = 0; c < ncols; c++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, c);
		bool		anull = d->keynulls[ka * d->keyatts + c];

		if (anull != d->keynulls[kb * d->keyatts + c] ||
			(!anull && !datumIsEqual(d->keys[ka * d->keyatts + c],
									 d->keys[kb * d->keyatts + c],
									 att->attbyval, att->attlen)))
			return false;
	}
	return true;
}

/*
 * Puts the waiting rows admitted to index i in `order`, those whose
 * entries agree in every key column but the last one after each other,
 * else in the order of the rows; returns how many. The entries of a batch
 * then go to jobs_fetch_idx one run of a queue and priority after the
 * other: consecutive entries go to the same leaf page, and the run past
 * the index's last key (the lowest priority) takes btree's fast path to
 * its rightmost page instead of descending from the root. In the order of
 * the rows, alternating priorities made every entry descend: 5% more of a
 * batched job's instructions (bench case 2, under callgrind). A unique
 * index takes them in the order of the rows, so that a duplicate is
 * reported as an INSERT would report it.
 */
static int
group_entries(QmlDirectInsert *d, int i, int *order)
{
	IndexInfo  *info = d->infos[i];
	int			ncols = info->ii_NumIndexKeyAttrs - 1;
	int			first[ENTRY_GROUPS];	/* each group's first row */
	int			group[DIRECT_INSERT_BATCH];
	int			ngroups = 0;
	int			n = 0;
	int			g,
				j;

	for (j = 0; j < d->nwaiting; j++)
	{
		int			k = j * d->nindexes + i;

		group[j] = -1;
		if (!d->admits[k])
			continue;
		for (g = 0; g < ngroups; g++)
			if (ncols <= 0 || info->ii_Unique ||
				same_prefix(d, i, first[g] * d->nindexes + i, k, ncols))
				break;
		if (g == ngroups && ngroups < ENTRY_GROUPS)
			first[ngroups++] = j;
		group[j] = Min(g, ENTRY_GROUPS - 1);
	}
	for (g = 0; g < ngroups; g++)
		for (j = first[g]; j < d->nwaiting; j++)
			if (group[j] == g)
				order[n++] = j;
	return n;
}

/* inserts the entries take_entries() took, the rows now in the heap */
static void
insert_entries(QmlDirectInsert *d)
{
	int			order[DIRECT_INSERT_BATCH];
	int			i,
				j;

	for (i = 0; i < d->nindexes; i++)
	{
		int			n = group_entries(d, i, order);

		for (j = 0; j < n; j++)
		{
			int			k = order[j] * d->nindexes + i;

			insert_entry(d, i, &d->keys[k * d->keyatts],
						 &d->keynulls[k * d->keyatts], d->slots[order[j]], NULL);
		}
	}
}

/* writes the rows waiting in the slots to the heap, then to the indexes */
static void
flush_rows(QmlDirectInsert *d)
{
	int			i;

	if (d->nwaiting == 0)
		return;
	if (d->nwaiting == 1)
	{
		table_tuple_insert(d->rel, d->slots[0], GetCurrentCommandId(true), 0, NULL);
		if (d->indexes != NULL)
			insert_planned(d, d->slots[0], NULL);
	}
	else
	{
		if (d->indexes != NULL)
			take_entries(d);
		table_multi_insert(d->rel, d->slots, d->nwaiting, GetCurrentCommandId(true),
						   0, NULL);
		if (d->indexes != NULL)
			insert_entries(d);
	}
	if (d->indexes == NULL)
	{
		for (i = 0; i < d->nwaiting; i++)
		{
			if (d->rri->ri_NumIndices > 0)
				ExecInsertIndexTuples(d->rri, d->slots[i], d->estate, false,
									  false, NULL, NIL);
			ResetPerTupleExprContext(d->estate);
		}
	}
	d->nwaiting = 0;
}

/*
 * Adds one row: values and nulls hold every attribute of the table,
 * dropped ones included; pass-by-reference values must last until
 * qml_direct_close(). Rows are written DIRECT_INSERT_BATCH at a time, as
 * COPY does: one WAL record and one page lock per page, not per row (the
 * history of a claim of 250 jobs is 250 rows). A unique index that already
 * has the key raises unique_violation by the close, as an INSERT would.
 */
void
qml_direct_insert(QmlDirectInsert *d, Datum *values, bool *nulls)
{
	TupleTableSlot *slot;
	int			natts = RelationGetDescr(d->rel)->natts;

	if (d->slots[d->nwaiting] == NULL)
		d->slots[d->nwaiting] = table_slot_create(d->rel, NULL);
	slot = d->slots[d->nwaiting++];
	ExecClearTuple(slot);
	memcpy(slot->tts_values, values, natts * sizeof(Datum));
	memcpy(slot->tts_isnull, nulls, natts * sizeof(bool));
	ExecStoreVirtualTuple(slot);
	if (d->nwaiting == DIRECT_INSERT_BATCH)
		flush_rows(d);
}

/*
 * Whether qml_direct_update() can write this table: only through the
 * session's plan of plain btrees (the executor's way of inserting index
 * entries for an update needs a whole executor).
 */
bool
qml_direct_can_update(QmlDirectInsert *d)
{
	return d->indexes != NULL;
}

/*
 * Replaces the row version in `oldslot` by the row `values` and `nulls`
 * hold (every attribute, as for qml_direct_insert), as heap_update and
 * the executor would for an UPDATE with no trigger: waits for a
 * transaction that holds the row, and returns TM_Updated or TM_Deleted
 * (with *tmfd) when one changed it since `snapshot`, writing nothing.
 */
TM_Result
qml_direct_update(QmlDirectInsert *d, TupleTableSlot *oldslot, const Datum *values,
				  const bool *nulls, Snapshot snapshot, TM_FailureData *tmfd)
{
	return qml_direct_update_wait(d, oldslot, values, nulls, snapshot, true, tmfd,
								  NULL);
}

/*
 * The same, but with `wait` false returns TM_BeingModified, writing
 * nothing, when another transaction holds the row (the claim's SKIP
 * LOCKED, worker_write.c). *written, when asked for, gets a copy of the
 * row written (NULL if none).
 *
 * The row goes in as the slot's values, which heap_update forms once:
 * a row formed by the caller was copied into the slot again.
 */
TM_Result
qml_direct_update_wait(QmlDirectInsert *d, TupleTableSlot *oldslot, const Datum *values,
					   const bool *nulls, Snapshot snapshot, bool wait,
					   TM_FailureData *tmfd, HeapTuple *written)
{
	TupleTableSlot *slot;
	LockTupleMode lockmode;
	bool		update_indexes;
	TM_Result	result;
	int			natts = RelationGetDescr(d->rel)->natts;

	Assert(qml_direct_can_update(d) && d->nwaiting == 0);
	if (d->slots[0] == NULL)
	{
		/*
		 * kept with the indexes' array, for every row: a caller may call
		 * in a context it resets per row (worker_write.c, write_one)
		 */
		MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(d->indexes));

		d->slots[0] = table_slot_create(d->rel, NULL);
		MemoryContextSwitchTo(old);
	}
	slot = d->slots[0];
	ExecClearTuple(slot);
	memcpy(slot->tts_values, values, natts * sizeof(Datum));
	memcpy(slot->tts_isnull, nulls, natts * sizeof(bool));
	ExecStoreVirtualTuple(slot);
	result = table_tuple_update(d->rel, &oldslot->tts_tid, slot,
								GetCurrentCommandId(true), snapshot,
								InvalidSnapshot, wait, tmfd, &lockmode,
								&update_indexes);
	if (result == TM_Ok && update_indexes)
	{
		/*
		 * heap_update formed the row's tuple from the slot and forgot the
		 * values (tts_nvalid = 0), so the predicates and keys would deform
		 * it again (take_entries); they are still the caller's: 1.5% of a
		 * claim and completion of 10 jobs (bench case 3, under callgrind).
		 */
		memcpy(slot->tts_values, values, natts * sizeof(Datum));
		memcpy(slot->tts_isnull, nulls, natts * sizeof(bool));
		slot->tts_nvalid = natts;
		insert_planned(d, slot, oldslot);
	}
	if (written != NULL)
		*written = result == TM_Ok ? ExecCopySlotHeapTuple(slot) : NULL;
	ExecClearTuple(slot);
	return result;
}

/* writes what is waiting, and closes everything */
void
qml_direct_close(QmlDirectInsert *d)
{
	int			i;

	flush_rows(d);
	for (i = 0; i < DIRECT_INSERT_BATCH && d->slots[i] != NULL; i++)
		ExecDropSingleTupleTableSlot(d->slots[i]);
	if (d->indexes != NULL)
	{
		for (i = 0; i < d->nindexes; i++)
			if (d->indexes[i] != NULL)
				index_close(d->indexes[i], NoLock);
	}
	else
	{
		ExecCloseIndices(d->rri);
		FreeExecutorState(d->estate);
	}
	table_close(d->rel, NoLock);
}
