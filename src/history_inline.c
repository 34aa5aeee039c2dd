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
 * The encoding: one format byte (1), then per change
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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_history_events);

#define HISTORY_FORMAT 1
#define NO_STATE 255

/* room one change needs at most: id, states, time, two lengths */
#define CHANGE_FIXED (10 + 2 + 8 + 10 + 10)

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
put_text(char *p, const char *s)
{
	p = put_number(p, s ? (uint64) strlen(s) + 1 : 0);
	if (s)
	{
		size_t		len = strlen(s);

		memcpy(p, s, len);
		p += len;
	}
	return p;
}

/*
 * `old` (a history, or NULL for none) with `change` appended at time `at`,
 * under the next id; a new bytea in the current memory context.
 */
bytea *
qml_history_append(bytea *old, const QmlJobChange *change, TimestampTz at)
{
	int64		id = nextval_internal(qml_catalog()->job_events_seq, false);
	size_t		oldlen = old ? VARSIZE_ANY_EXHDR(old) : 0;
	size_t		room = VARHDRSZ + 1 + oldlen + CHANGE_FIXED +
		(change->worker ? strlen(change->worker) : 0) +
		(change->error ? strlen(change->error) : 0);
	bytea	   *result = palloc(room);
	char	   *p = VARDATA(result);
	uint64		t = (uint64) at;
	int			i;

	if (oldlen > 0)
	{
		memcpy(p, VARDATA_ANY(old), oldlen);
		p += oldlen;
	}
	else
		*p++ = HISTORY_FORMAT;
	p = put_number(p, (uint64) id);
	*p++ = (char) (change->from_state == JS_COUNT ? NO_STATE : change->from_state);
	*p++ = (char) change->to_state;
	for (i = 7; i >= 0; i--)
		*p++ = (char) ((t >> (i * 8)) & 0xff);
	p = put_text(p, change->worker);
	p = put_text(p, change->error);
	SET_VARSIZE(result, p - (char *) result);
	return result;
}

/* a reader of one history */
typedef struct HistoryReader
{
	const unsigned char *p;
	const unsigned char *end;
} HistoryReader;

static void corrupt(void) pg_attribute_noreturn();

static void
corrupt(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("invalid job history"),
			 errdetail("The value does not hold changes in the encoding of qml.jobs.history.")));
}

static uint64
get_number(HistoryReader *r)
{
	uint64		v = 0;
	int			shift = 0;

	for (;;)
	{
		unsigned char b;

		if (r->p >= r->end || shift > 63)
			corrupt();
		b = *r->p++;
		v |= (uint64) (b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80))
			return v;
	}
}

/* a text of the encoding, or NULL (*isnull) */
static Datum
get_text(HistoryReader *r, bool *isnull)
{
	uint64		v = get_number(r);
	Datum		d;

	*isnull = v == 0;
	if (v == 0)
		return (Datum) 0;
	if ((size_t) (r->end - r->p) < v - 1)
		corrupt();
	d = PointerGetDatum(cstring_to_text_with_len((const char *) r->p, v - 1));
	r->p += v - 1;
	return d;
}

/* the state of one byte of the encoding */
static Datum
get_state(unsigned char b, bool *isnull)
{
	*isnull = b == NO_STATE;
	if (*isnull)
		return (Datum) 0;
	if (b >= JS_COUNT)
		corrupt();
	return ObjectIdGetDatum(qml_catalog()->state_oids[b]);
}

/*
 * qml.history_events(history bytea): one row per change, in order:
 * (id, from_state, to_state, at, worker, error).
 */
Datum
qml_history_events(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	HistoryReader *r;
	Datum		values[6];
	bool		nulls[6];
	uint64		t = 0;
	int			i;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext old;
		TupleDesc	desc;

		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "qml.history_events must return a row type");
		funcctx->tuple_desc = BlessTupleDesc(desc);
		r = palloc0(sizeof(HistoryReader));
		if (!PG_ARGISNULL(0))
		{
			bytea	   *h = PG_GETARG_BYTEA_PP(0);

			r->p = (const unsigned char *) VARDATA_ANY(h);
			r->end = r->p + VARSIZE_ANY_EXHDR(h);
			if (r->p < r->end && *r->p++ != HISTORY_FORMAT)
				corrupt();
		}
		funcctx->user_fctx = r;
		MemoryContextSwitchTo(old);
	}
	funcctx = SRF_PERCALL_SETUP();
	r = funcctx->user_fctx;
	if (r->p == NULL || r->p >= r->end)
		SRF_RETURN_DONE(funcctx);
	values[0] = Int64GetDatum((int64) get_number(r));
	nulls[0] = false;
	if (r->end - r->p < 10)
		corrupt();
	values[1] = get_state(r->p[0], &nulls[1]);
	values[2] = get_state(r->p[1], &nulls[2]);
	if (nulls[2])
		corrupt();
	r->p += 2;
	for (i = 0; i < 8; i++)
		t = (t << 8) | *r->p++;
	values[3] = TimestampTzGetDatum((TimestampTz) t);
	nulls[3] = false;
	values[4] = get_text(r, &nulls[4]);
	values[5] = get_text(r, &nulls[5]);
	SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum(heap_form_tuple(funcctx->tuple_desc,
															   values, nulls)));
}
