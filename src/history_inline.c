/*-------------------------------------------------------------------------
 *
 * history_inline.c
 *	  A job's history kept in its own row (qml.jobs.history, version 1.2):
 *	  the encoding, the append every state change makes to the row it
 *	  writes anyway, and qml.history_events(), which the view
 *	  qml.job_events decodes it with.
 *
 * A history row of its own per change (qml.job_events, a table up to
 * version 1.1) cost an insert, an index entry and an identity value per
 * change, and a second table to prune and vacuum: 15-17% of the server's
 * CPU on the hot path. Inline, a change is a few bytes more in the tuple
 * that the insert, claim or completion writes already.
 *
 * The encoding: one format byte (3), two numbers: how many changes follow
 * and how many were omitted after the first (see below), then the changes,
 * newest first, the first change last; per change
 *	 id			a number, from qml.job_events_id_seq as the table's rows had
 *	 from state	1 byte, the index in qml_state_labels; 255 for none (creation)
 *	 to state	1 byte
 *	 at			8 bytes, the timestamptz, most significant byte first
 *	 worker		a length, then that many bytes of text
 *	 error		a length, then that many bytes of text
 * where a number is little-endian base 128 (7 bits a byte, the high bit
 * set on all but the last), and a length is the number text length + 1, 0
 * for NULL. Byte order is fixed so that a dump restores on any machine.
 *
 * Why newest first, with a count: an append is then the new header, the
 * new change and the old changes copied as they are, with nothing to walk
 * while the bounds hold; and the new row version ends with the bytes the
 * old one ended with, which an UPDATE's WAL record leaves out when both
 * are on one page (log_heap_update's common suffix), so a claim or a
 * completion logs its own change, not the whole history again.
 *
 * The ids: the sequence's increment is 32, and a session hands out the
 * block one nextval() gave it (next_change_id): a nextval() per change,
 * cached or not, cost as much as the rest of the append.
 *
 * Bounds: every change copies the history into the new row version, so a
 * job retried or requeued without end, or failing with long errors, would
 * grow a row until it could no longer be written (and its queue, pruning
 * and pg_dump with it). A history keeps its first change (the creation)
 * and the latest ones, at most HISTORY_MAX_CHANGES and HISTORY_MAX_BYTES;
 * the changes dropped between are counted, and history_events() shows one
 * row for them. An error is kept to its first HISTORY_MAX_ERROR bytes.
 *
 * A history comes from this file's append, or from an INSERT or COPY: the
 * reader checks everything it returns (structure, states, times, text
 * encoding), and qml_history_check() lets an INSERT check it whole.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_sequence.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_history_events);

#define HISTORY_FORMAT 3
#define NO_STATE 255

/* the bounds (docs/sql-api.md): changes, bytes, bytes of one error */
#define HISTORY_MAX_CHANGES 100
#define HISTORY_MAX_BYTES 32768
#define HISTORY_MAX_ERROR 1024
#define TRUNCATED_MARK "... (truncated)"

/* room one change needs at most: id, states, time, two lengths */
#define CHANGE_FIXED (10 + 2 + 8 + 10 + 10)
/* the fewest bytes a change takes: id, states, time, two lengths */
#define CHANGE_MIN (1 + 2 + 8 + 1 + 1)
/* room the header needs at most: format, count (at most 100: one byte),
 * omitted count */
#define HEADER_FIXED (1 + 1 + 10)

static char *
put_number(char *p, uint64 v)
{
	do
	{
		*p++ = (char) ((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	return p;
}

static char *
put_text_len(char *p, const char *s, size_t len, const char *tail)
{
	size_t		taillen = tail ? strlen(tail) : 0;

	p = put_number(p, s ? (uint64) (len + taillen) + 1 : 0);
	if (s)
	{
		memcpy(p, s, len);
		p += len;
		if (taillen > 0)
			memcpy(p, tail, taillen);
		p += taillen;
	}
	return p;
}

/* a reader of one history */
typedef struct HistoryReader
{
	const unsigned char *start;
	const unsigned char *p;
	const unsigned char *end;
	uint64		count;			/* changes, as the header says */
	uint64		omitted;
	const unsigned char *body;	/* the first change (the newest) */
} HistoryReader;

/* one change, as read: its texts point into the history */
typedef struct HistoryChange
{
	uint64		id;
	unsigned char from;
	unsigned char to;
	TimestampTz at;
	const char *worker;			/* NULL for none */
	int			worker_len;
	const char *error;
	int			error_len;
} HistoryChange;

static void bad_history(const HistoryReader *r, const char *what) pg_attribute_noreturn();

/* a value that is not a history: the caller's (22P02), at the reader's byte */
static void
bad_history(const HistoryReader *r, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid job history"),
			 errdetail("At byte %d: %s.", (int) (r->p - r->start), what),
			 errhint("A value of qml.jobs.history is written by qml only.")));
}

static uint64
get_number(HistoryReader *r)
{
	uint64		v = 0;
	int			shift = 0;

	for (;;)
	{
		unsigned char b;

		if (r->p >= r->end)
			bad_history(r, "the value ends within a number");
		if (shift > 63)
			bad_history(r, "a number is too long");
		b = *r->p++;
		v |= (uint64) (b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80))
			return v;
	}
}

/* a text of the encoding: NULL for none; checked when `verify` */
static const char *
get_text(HistoryReader *r, int *len, bool verify)
{
	uint64		v = get_number(r);
	const char *s = (const char *) r->p;

	*len = 0;
	if (v == 0)
		return NULL;
	if ((uint64) (r->end - r->p) < v - 1 || v - 1 > MaxAllocSize)
		bad_history(r, "a text runs past the end of the value");
	*len = (int) (v - 1);
	if (verify)
	{
		if (memchr(s, '\0', *len) != NULL)
			bad_history(r, "a text contains a zero byte");
		if (!pg_verifymbstr(s, *len, true))
			bad_history(r, "a text is not valid in the database's encoding");
	}
	r->p += *len;
	return s;
}

/* reads the header: false for an empty value (no changes) */
static bool
read_header(HistoryReader *r, const bytea *h)
{
	memset(r, 0, sizeof(HistoryReader));
	r->start = r->p = (const unsigned char *) VARDATA_ANY(h);
	r->end = r->p + VARSIZE_ANY_EXHDR(h);
	if (r->p >= r->end)
		return false;
	if (*r->p != HISTORY_FORMAT)
		bad_history(r, "the format byte is not 3");
	r->p++;
	r->count = get_number(r);
	if (r->count == 0 || r->count > (uint64) (r->end - r->p) / CHANGE_MIN)
		bad_history(r, "the count of changes is out of range");
	r->omitted = get_number(r);
	if (r->omitted > (uint64) PG_INT32_MAX)
		bad_history(r, "the count of omitted changes is out of range");
	r->body = r->p;
	return true;
}

/* reads the next change; its texts are checked when `verify` */
static void
read_change(HistoryReader *r, HistoryChange *c, bool verify)
{
	uint64		t = 0;
	int			i;

	c->id = get_number(r);
	if (r->end - r->p < 10)
		bad_history(r, "the value ends within a change");
	c->from = r->p[0];
	c->to = r->p[1];
	if ((c->from >= JS_COUNT && c->from != NO_STATE) || c->to >= JS_COUNT)
		bad_history(r, "a state is not a job state");
	r->p += 2;
	for (i = 0; i < 8; i++)
		t = (t << 8) | *r->p++;
	c->at = (TimestampTz) t;
	if (!IS_VALID_TIMESTAMP(c->at))
		bad_history(r, "a time is out of range");
	c->worker = get_text(r, &c->worker_len, verify);
	c->error = get_text(r, &c->error_len, verify);
}

/*
 * Where each change of the history starts, newest first, and its end at
 * [count]: walks it whole, checking the texts when `verify`. A palloc'd
 * array of r->count + 1.
 */
static const unsigned char **
change_starts(HistoryReader *r, bool verify)
{
	const unsigned char **starts = palloc((r->count + 1) * sizeof(*starts));
	HistoryChange c;
	uint64		n = 0;

	r->p = r->body;
	while (r->p < r->end)
	{
		if (n == r->count)
			bad_history(r, "there are more changes than the header counts");
		starts[n++] = r->p;
		read_change(r, &c, verify);
	}
	if (n != r->count)
		bad_history(r, "there are fewer changes than the header counts");
	starts[n] = r->end;
	return starts;
}

/* the session's block of change ids: next_id up to block_end (excluded) */
static Oid	block_seq = InvalidOid;
static int64 next_id;
static int64 block_end;
static bool block_callback = false;

/*
 * A sequence restarted (TRUNCATE ... RESTART IDENTITY, ALTER SEQUENCE ...
 * RESTART) gets a new relfilenode, whose relcache invalidation reaches
 * every session: the block is dropped, so that the changes are numbered
 * from the restart on, in this session at once and in the others from
 * their next transaction.
 */
static void
id_block_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == block_seq)
		block_seq = InvalidOid;
}

/*
 * The next change id: from the block the session took with one nextval()
 * of qml.job_events_id_seq, whose increment is the block's size (32, set
 * by the extension's script; an admin's other increment is followed).
 */
static int64
next_change_id(void)
{
	Oid			seq = qml_catalog()->job_events_seq;

	if (seq != block_seq || next_id >= block_end)
	{
		HeapTuple	tuple = SearchSysCache1(SEQRELID, ObjectIdGetDatum(seq));
		int64		increment = 1;

		if (!block_callback)
		{
			CacheRegisterRelcacheCallback(id_block_invalidate, (Datum) 0);
			block_callback = true;
		}
		if (HeapTupleIsValid(tuple))
		{
			increment = ((Form_pg_sequence) GETSTRUCT(tuple))->seqincrement;
			ReleaseSysCache(tuple);
		}
		next_id = nextval_internal(seq, false);
		/* a negative or unit increment, or the end of bigint: one id */
		if (increment < 1 || next_id > PG_INT64_MAX - increment)
			increment = 1;
		block_end = next_id + increment;
		block_seq = seq;
	}
	return next_id++;
}

/*
 * `old` (a history, or NULL for none) with `change` made at `at` added,
 * under the next id, and its oldest changes but the first dropped to stay
 * within the bounds; a new bytea in the current memory context.
 */
bytea *
qml_history_append(bytea *old, const QmlJobChange *change, TimestampTz at)
{
	size_t		worker_len = change->worker ? strlen(change->worker) : 0;
	size_t		error_len = change->error ? strlen(change->error) : 0;
	const char *tail = NULL;
	size_t		newsize;
	const unsigned char *newer = NULL;	/* the later changes kept */
	size_t		newer_len = 0;
	const unsigned char *first = NULL;	/* the first change, kept */
	size_t		first_len = 0;
	uint64		count = 1;
	uint64		omitted = 0;
	HistoryReader r;
	bytea	   *result;
	char	   *p;
	uint64		t = (uint64) at;
	int			i;

	if (error_len > HISTORY_MAX_ERROR)
	{
		error_len = pg_mbcliplen(change->error, (int) error_len, HISTORY_MAX_ERROR);
		tail = TRUNCATED_MARK;
	}
	newsize = CHANGE_FIXED + worker_len + error_len + sizeof(TRUNCATED_MARK);

	if (old != NULL && read_header(&r, old))
	{
		omitted = r.omitted;
		newer = r.body;
		newer_len = r.end - r.body;
		count = r.count + 1;
		/* over a bound: walk it, and drop the oldest changes but the first */
		if (count > HISTORY_MAX_CHANGES ||
			HEADER_FIXED + newer_len + newsize > HISTORY_MAX_BYTES)
		{
			const unsigned char **starts = change_starts(&r, false);
			uint64		kept = r.count - 1; /* of the later changes */

			first = starts[r.count - 1];
			first_len = r.end - first;
			while (kept > 0 &&
				   (kept + 2 > HISTORY_MAX_CHANGES ||
					HEADER_FIXED + (starts[kept] - newer) + first_len + newsize >
					HISTORY_MAX_BYTES))
				kept--;
			omitted += r.count - 1 - kept;
			newer_len = starts[kept] - newer;
			count = kept + 2;
			pfree(starts);
		}
	}

	result = palloc(VARHDRSZ + HEADER_FIXED + newsize + newer_len + first_len);
	p = VARDATA(result);
	*p++ = HISTORY_FORMAT;
	p = put_number(p, count);
	p = put_number(p, omitted);
	p = put_number(p, (uint64) next_change_id());
	*p++ = (char) (change->from_state == JS_COUNT ? NO_STATE : change->from_state);
	*p++ = (char) change->to_state;
	for (i = 7; i >= 0; i--)
		*p++ = (char) ((t >> (i * 8)) & 0xff);
	p = put_text_len(p, change->worker, worker_len, NULL);
	p = put_text_len(p, change->error, error_len, tail);
	if (newer_len > 0)
		memcpy(p, newer, newer_len);
	p += newer_len;
	if (first_len > 0)
		memcpy(p, first, first_len);
	p += first_len;
	SET_VARSIZE(result, p - (char *) result);
	return result;
}

/*
 * Checks a whole history (an INSERT's, job_trigger.c): 22P02 when it is
 * not one.
 */
void
qml_history_check(bytea *history)
{
	HistoryReader r;

	if (read_header(&r, history))
		pfree(change_starts(&r, true));
}

static Datum
text_or_null(const char *s, int len, bool *isnull)
{
	*isnull = s == NULL;
	return s ? PointerGetDatum(cstring_to_text_with_len(s, len)) : (Datum) 0;
}

/* what qml.history_events() keeps between its calls */
typedef struct EventsState
{
	HistoryReader r;
	const unsigned char **starts;	/* newest first (change_starts) */
	int64		next;			/* index in starts of the next change; -1: done */
	int64		position;		/* of the last row given */
	bool		gap_done;		/* the omitted changes' row has been given */
} EventsState;

/*
 * qml.history_events(history bytea): one row per change, in order:
 * (id, from_state, to_state, at, worker, error, position). Where changes
 * were omitted, one row stands for them: its id, states, time and worker
 * NULL, its error "N earlier changes omitted", its position theirs first.
 * The history is walked (and checked) whole at the first call: it is kept
 * newest first, and given oldest first.
 */
Datum
qml_history_events(PG_FUNCTION_ARGS)
{
	const QmlCatalog *cat = qml_catalog();
	FuncCallContext *funcctx;
	EventsState *st;
	HistoryChange c;
	Datum		values[7];
	bool		nulls[7];

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext old;
		TupleDesc	desc;

		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "qml.history_events must return a row type");
		funcctx->tuple_desc = BlessTupleDesc(desc);
		st = palloc0(sizeof(EventsState));
		st->next = -1;
		if (read_header(&st->r, PG_GETARG_BYTEA_PP(0)))
		{
			st->starts = change_starts(&st->r, true);
			st->next = (int64) st->r.count - 1;
		}
		funcctx->user_fctx = st;
		MemoryContextSwitchTo(old);
	}
	funcctx = SRF_PERCALL_SETUP();
	st = funcctx->user_fctx;
	if (st->next < 0)
		SRF_RETURN_DONE(funcctx);
	memset(nulls, true, sizeof(nulls));
	if (st->position == 1 && st->r.omitted > 0 && !st->gap_done)
	{
		st->gap_done = true;
		values[5] = CStringGetTextDatum(psprintf("%llu earlier changes omitted",
												 (unsigned long long) st->r.omitted));
		nulls[5] = false;
		values[6] = Int64GetDatum(2);
		nulls[6] = false;
		st->position += st->r.omitted;
	}
	else
	{
		st->r.p = st->starts[st->next--];
		read_change(&st->r, &c, false);
		st->position++;
		values[0] = Int64GetDatum((int64) c.id);
		nulls[0] = false;
		if (c.from != NO_STATE)
		{
			values[1] = ObjectIdGetDatum(cat->state_oids[c.from]);
			nulls[1] = false;
		}
		values[2] = ObjectIdGetDatum(cat->state_oids[c.to]);
		nulls[2] = false;
		values[3] = TimestampTzGetDatum(c.at);
		nulls[3] = false;
		values[4] = text_or_null(c.worker, c.worker_len, &nulls[4]);
		values[5] = text_or_null(c.error, c.error_len, &nulls[5]);
		values[6] = Int64GetDatum(st->position);
		nulls[6] = false;
	}
	SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum(heap_form_tuple(funcctx->tuple_desc,
															   values, nulls)));
}
