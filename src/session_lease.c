/*-------------------------------------------------------------------------
 *
 * session_lease.c
 *	  Session leases: a claim remembers the session that made it, and when
 *	  that session ends its jobs are rescued at once instead of after the
 *	  time lease.
 *
 * A session is a backend: its pid and its start time (pids are reused,
 * start times are not). The first claim a backend makes with a session
 * lease registers it in a shared array indexed by backend id, and arranges
 * for it to be cleared when the backend exits: after its transaction was
 * rolled back and its row locks released, so the scheduler, woken then,
 * can rescue the jobs at once. A server crash wipes the array, so every
 * session from before it counts as ended.
 *
 * The scheduler's pass asks qml.session_alive() about the processing jobs
 * that carry a session (see maintain.c); it does so when the count of
 * ended sessions moved, and on its first pass.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/backendid.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_session_alive_sql);

typedef struct SessionSlot
{
	int32		pid;			/* 0: no session here */
	TimestampTz started;
} SessionSlot;

typedef struct SessionShared
{
	pg_atomic_uint64 ended;		/* sessions with a lease that ended */
	SessionSlot slots[FLEXIBLE_ARRAY_MEMBER];
} SessionShared;

static SessionShared *ss = NULL;
static bool registered = false;

Size
qml_session_shmem_size(void)
{
	return add_size(offsetof(SessionShared, slots),
					mul_size(MaxBackends, sizeof(SessionSlot)));
}

void
qml_session_shmem_init(void)
{
	bool		found;

	ss = ShmemInitStruct("qml sessions", qml_session_shmem_size(), &found);
	if (!found)
	{
		memset(ss, 0, qml_session_shmem_size());
		pg_atomic_init_u64(&ss->ended, 0);
	}
}

/*
 * At exit, after the transaction was rolled back: the session is gone,
 * and the scheduler is told.
 */
static void
session_ended(int code, Datum arg)
{
	SessionSlot *s = &ss->slots[MyBackendId - 1];

	s->pid = 0;
	pg_atomic_fetch_add_u64(&ss->ended, 1);
	if (OidIsValid(MyDatabaseId))
		qml_registry_wake(MyDatabaseId, DT_NOBEGIN);
}

/*
 * This session, for a claim with a session lease: false (and no lease)
 * without shared memory.
 */
bool
qml_session_register(int32 *pid, TimestampTz *started)
{
	if (!qml_shmem_ready() || MyBackendId == InvalidBackendId ||
		MyBackendId > MaxBackends)
		return false;
	if (!registered)
	{
		SessionSlot *s = &ss->slots[MyBackendId - 1];

		s->started = MyStartTimestamp;
		pg_write_barrier();
		s->pid = MyProcPid;
		/* on_shmem_exit runs after the transaction has been rolled back */
		on_shmem_exit(session_ended, (Datum) 0);
		registered = true;
	}
	*pid = MyProcPid;
	*started = MyStartTimestamp;
	return true;
}

/*
 * Whether the session that made a claim still runs. Without shared memory
 * nothing is known: the claim is taken to be alive (the time lease holds).
 */
bool
qml_session_alive(int32 pid, TimestampTz started)
{
	int			i;

	if (!qml_shmem_ready())
		return true;
	for (i = 0; i < MaxBackends; i++)
		if (ss->slots[i].pid == pid && ss->slots[i].started == started)
			return true;
	return false;
}

/*
 * Claims of sessions that may have ended became visible (a prepared
 * transaction was finished, prepared_xact.c): the scheduler's next pass
 * looks at them as if a session had ended.
 */
void
qml_sessions_look_again(void)
{
	if (qml_shmem_ready())
		pg_atomic_fetch_add_u64(&ss->ended, 1);
}

uint64
qml_sessions_ended(void)
{
	return qml_shmem_ready() ? pg_atomic_read_u64(&ss->ended) : 0;
}

/*
 * qml.session_alive(pid integer, started timestamptz) returns boolean
 *
 * Internal: the scheduler's test for a claim's session.
 */
Datum
qml_session_alive_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(qml_session_alive(PG_GETARG_INT32(0),
									 PG_GETARG_TIMESTAMPTZ(1)));
}
