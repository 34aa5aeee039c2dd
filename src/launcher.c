/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher: one background worker, connected to no database, that
 *	  keeps a scheduler running in every database qml.databases names.
 *
 * qml.databases is a comma-separated list of database names; empty or "*"
 * means every database that accepts connections and is not a template,
 * and "!name" leaves one out (so '!contrib_regression' is every database
 * but that one). Of those, a scheduler stays only where the extension is
 * installed, so that a cluster's background worker slots stay free for
 * parallel query and others:
 *
 * - A database the launcher knows nothing of (all of them when it starts,
 *   a new one) gets a scheduler that looks for the extension at its first
 *   pass and exits at once when there is none. These probes run one at a
 *   time, so that they never hold more than one slot; each takes a few
 *   milliseconds.
 * - A database where the probe found no extension gets no scheduler until
 *   a CREATE EXTENSION qml there commits (extension_watch.c tells us),
 *   or until a reload (SIGHUP) makes the launcher look everywhere again.
 * - DROP EXTENSION wakes the scheduler, which finds no extension and
 *   exits: its slot is free at once.
 *
 * The launcher looks at pg_database when it starts, every 10 seconds, on
 * SIGHUP, when one of its schedulers starts, stops or finds the
 * extension, and when a CREATE, ALTER, RENAME or DROP DATABASE or a
 * CREATE EXTENSION qml commits. A scheduler that exits soon after it
 * started (for any other reason than a missing extension) is restarted
 * after a pause that doubles up to five minutes.
 *
 * When no background worker slot is free, the launcher says so once in
 * the log (until every database has got its scheduler), retries after a
 * pause that doubles up to 10 seconds (at once when one of its schedulers
 * exits), and marks the database as waiting
 * in shared memory, which qml.scheduler_slot_wait_since() shows.
 *
 * Commands that need a database to themselves (DROP DATABASE, ALTER
 * DATABASE ... RENAME or SET TABLESPACE, CREATE DATABASE ... TEMPLATE)
 * would wait for a connected scheduler and fail: a utility hook asks the
 * scheduler to leave first, and none starts there for 10 seconds. It asks
 * only for a command that passes PostgreSQL's permission checks, which it
 * makes itself first.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/tablespace.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "qml.h"

#define RESCAN_MS 10000
/* schedulers that have not yet found out whether the extension exists */
#define PROBES_AT_ONCE 1
/* retries to get a slot: after 1 s, doubling to 10 s */
#define SLOT_RETRY_FIRST_MS 1000
#define SLOT_RETRY_MAX_MS 10000
#define LEAVE_SECONDS 10
#define RESTART_MAX_PAUSE_S 300
/* a scheduler that ran this long before it stopped did not fail at start */
#define HEALTHY_RUN_MS 60000

typedef struct Database
{
	Oid			oid;
	char		name[NAMEDATALEN];
} Database;

/* what the launcher knows of a database it serves */
typedef struct Served
{
	Oid			dboid;
	bool		wanted;
	QmlExtensionSeen ext;		/* unknown until a scheduler looked */
	uint64		created_gen;	/* a "no extension" older than this is stale */
	bool		slot_wait;		/* its scheduler waits for a slot */
	BackgroundWorkerHandle *handle;
	TimestampTz started;
	TimestampTz next_start;
	int			failures;
} Served;

static Served *served = NULL;
static int	nserved = 0;
static int	maxserved = 0;
static bool warned_no_slot = false;
static int	slot_failures = 0;
static TimestampTz slot_retry_at = 0;
static ProcessUtility_hook_type prev_utility_hook = NULL;

/*
 * Parses qml.databases. Names are separated by commas, with spaces around
 * them ignored and case kept; "*" means all, "!name" excludes. False, with
 * a reason, for an empty or overlong name. The lists are of palloc'd
 * strings; pass NULL pointers to only check.
 */
bool
qml_parse_databases(const char *value, List **include, List **exclude,
					bool *all, char **problem)
{
	const char *p = value ? value : "";
	bool		any_include = false;

	if (include)
		*include = NIL;
	if (exclude)
		*exclude = NIL;
	*all = false;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
	{
		*all = true;
		return true;
	}
	for (;;)
	{
		const char *start;
		const char *end;
		bool		negate = false;
		int			len;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '!')
		{
			negate = true;
			p++;
			while (*p == ' ' || *p == '\t')
				p++;
		}
		start = p;
		while (*p != '\0' && *p != ',')
			p++;
		end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		len = end - start;
		if (len == 0)
		{
			*problem = psprintf("An entry of \"%s\" is empty.", value);
			return false;
		}
		if (len >= NAMEDATALEN)
		{
			*problem = psprintf("\"%.*s\" is longer than a database name can be.",
								len, start);
			return false;
		}
		if (negate)
		{
			if (exclude)
				*exclude = lappend(*exclude, pnstrdup(start, len));
		}
		else if (len == 1 && *start == '*')
			*all = true;
		else
		{
			any_include = true;
			if (include)
				*include = lappend(*include, pnstrdup(start, len));
		}
		if (*p == '\0')
			break;
		p++;					/* the comma */
	}
	/* only exclusions: everything else */
	if (!any_include)
		*all = true;
	return true;
}

static bool
name_in(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
		if (strcmp((char *) lfirst(lc), name) == 0)
			return true;
	return false;
}

/* the databases a scheduler could connect to, palloc'd in the caller's context */
static Database *
list_databases(int *n)
{
	MemoryContext cxt = CurrentMemoryContext;
	Database   *dbs;
	int			max = 16;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	*n = 0;
	dbs = palloc(max * sizeof(Database));
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;

		if (!db->datallowconn || db->datistemplate || database_is_invalid_form(db))
			continue;
		old = MemoryContextSwitchTo(cxt);
		if (*n == max)
		{
			max *= 2;
			dbs = repalloc(dbs, max * sizeof(Database));
		}
		dbs[*n].oid = db->oid;
		strlcpy(dbs[*n].name, NameStr(db->datname), NAMEDATALEN);
		(*n)++;
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	return dbs;
}

static Served *
served_entry(Oid dboid)
{
	int			i;

	for (i = 0; i < nserved; i++)
		if (served[i].dboid == dboid)
			return &served[i];
	if (nserved == maxserved)
	{
		maxserved = maxserved ? maxserved * 2 : 16;
		served = served ?
			repalloc(served, maxserved * sizeof(Served)) :
			MemoryContextAlloc(TopMemoryContext, maxserved * sizeof(Served));
	}
	memset(&served[nserved], 0, sizeof(Served));
	served[nserved].dboid = dboid;
	return &served[nserved++];
}

/*
 * No background worker slot was free for a database's scheduler: say so
 * once, show it in shared memory, and try again after a pause that grows.
 */
static void
no_slot(Served *s, const char *name)
{
	if (!warned_no_slot)
		ereport(WARNING,
				(errmsg("qml could not start a scheduler for database \"%s\": no background worker slot is free",
						name),
				 errdetail("qml retries until a slot is free; qml.scheduler_slot_wait_since() in the database shows since when it waits."),
				 errhint("Raise max_worker_processes (now %d), or name fewer databases in qml.databases.",
						 max_worker_processes)));
	warned_no_slot = true;
	if (!s->slot_wait)
		qml_registry_set_slot_wait(s->dboid, true);
	s->slot_wait = true;
	slot_retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												Min(SLOT_RETRY_MAX_MS,
													SLOT_RETRY_FIRST_MS << Min(slot_failures, 4)));
	slot_failures++;
}

static bool
start_scheduler(Served *s, const char *name)
{
	BackgroundWorker w;
	BackgroundWorkerHandle *handle;
	MemoryContext old;
	bool		ok;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "qml");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "qml_scheduler_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "qml scheduler for database %s", name);
	snprintf(w.bgw_type, BGW_MAXLEN, "qml scheduler");
	w.bgw_main_arg = ObjectIdGetDatum(s->dboid);
	w.bgw_notify_pid = MyProcPid;

	old = MemoryContextSwitchTo(TopMemoryContext);
	ok = RegisterDynamicBackgroundWorker(&w, &handle);
	MemoryContextSwitchTo(old);
	if (!ok)
	{
		no_slot(s, name);
		return false;
	}
	if (s->slot_wait)
		qml_registry_set_slot_wait(s->dboid, false);
	s->slot_wait = false;
	slot_failures = 0;
	s->handle = handle;
	s->started = GetCurrentTimestamp();
	return true;
}

/* a scheduler of ours stopped: when may the next one start */
static void
note_stopped(Served *s, TimestampTz now)
{
	pfree(s->handle);
	s->handle = NULL;
	if (TimestampDifferenceExceeds(s->started, now, HEALTHY_RUN_MS))
		s->failures = 0;
	else if (s->failures < 30)
		s->failures++;
	s->next_start = s->failures == 0 ? now :
		TimestampTzPlusMilliseconds(now,
									Min(RESTART_MAX_PAUSE_S, 1 << Min(s->failures, 9)) * 1000);
}

/*
 * A scheduler of ours stopped. If it found no extension, as of after the
 * last CREATE EXTENSION we heard of there, it is not started again; if that
 * news is older, or it left for another reason, it is.
 */
static void
note_stopped_scheduler(Served *s, TimestampTz now)
{
	uint64		gen = 0;

	/* its slot is free: a database waiting for one need not wait longer */
	slot_retry_at = 0;
	if (qml_registry_extension_seen(s->dboid, &gen) == QML_EXT_ABSENT)
	{
		pfree(s->handle);
		s->handle = NULL;
		s->failures = 0;
		s->next_start = now;
		if (gen >= s->created_gen)
			s->ext = QML_EXT_ABSENT;
		return;
	}
	note_stopped(s, now);
}

/* a running scheduler that found the extension is no longer a probe */
static void
note_running(Served *s)
{
	uint64		gen;

	if (s->ext == QML_EXT_UNKNOWN &&
		qml_registry_extension_seen(s->dboid, &gen) == QML_EXT_PRESENT)
		s->ext = QML_EXT_PRESENT;
}

/*
 * Keeps a scheduler running for a wanted database where the extension is
 * or may be; returns when to look again. *probes counts the schedulers
 * that are still finding out whether the extension exists.
 */
static TimestampTz
keep_running(Served *s, const char *name, TimestampTz now, int *probes)
{
	TimestampTz leave_until;
	pid_t		pid;

	if (s->handle != NULL)
	{
		if (GetBackgroundWorkerPid(s->handle, &pid) != BGWH_STOPPED)
		{
			note_running(s);
			return DT_NOEND;
		}
		note_stopped_scheduler(s, now);
	}
	if (s->ext == QML_EXT_ABSENT)
		return DT_NOEND;
	/* one started by an earlier launcher still runs */
	if (qml_registry_has_scheduler(s->dboid))
	{
		note_running(s);
		return DT_NOEND;
	}
	leave_until = qml_registry_leave_until(s->dboid);
	if (now < s->next_start || now < leave_until)
		return Max(s->next_start, leave_until);
	if (now < slot_retry_at)
		return slot_retry_at;
	/* the running probe's exit or finding wakes us */
	if (s->ext == QML_EXT_UNKNOWN && *probes >= PROBES_AT_ONCE)
		return DT_NOEND;
	if (!start_scheduler(s, name))
		return slot_retry_at;
	if (s->ext == QML_EXT_UNKNOWN)
		(*probes)++;
	return DT_NOEND;
}

/* how many schedulers we started are still finding out */
static int
count_probes(void)
{
	int			n = 0;
	int			i;
	pid_t		pid;

	for (i = 0; i < nserved; i++)
	{
		Served	   *s = &served[i];

		if (s->handle != NULL && s->ext == QML_EXT_UNKNOWN &&
			GetBackgroundWorkerPid(s->handle, &pid) != BGWH_STOPPED)
		{
			note_running(s);
			if (s->ext == QML_EXT_UNKNOWN)
				n++;
		}
	}
	return n;
}

/*
 * Databases where CREATE EXTENSION qml committed: look there again. Too
 * many at once to be kept, or a reload: look everywhere again.
 */
static void
take_created(bool everywhere)
{
	Oid			dboids[64];
	uint64		gens[64];
	bool		overflow;
	int			n = qml_registry_take_created(dboids, gens, lengthof(dboids),
											  &overflow);
	int			i;

	for (i = 0; i < n; i++)
	{
		Served	   *s = served_entry(dboids[i]);

		s->ext = QML_EXT_UNKNOWN;
		s->created_gen = Max(s->created_gen, gens[i]);
		s->failures = 0;
		s->next_start = 0;
	}
	if (overflow || everywhere)
	{
		uint64		gen = qml_registry_ext_gen();

		for (i = 0; i < nserved; i++)
			if (served[i].ext == QML_EXT_ABSENT)
			{
				served[i].ext = QML_EXT_UNKNOWN;
				served[i].created_gen = gen;
			}
	}
}

/* a scheduler no longer wanted leaves; its entry goes once it stopped */
static void
let_go(Served *s)
{
	pid_t		pid;

	if (s->handle != NULL &&
		GetBackgroundWorkerPid(s->handle, &pid) != BGWH_STOPPED)
		qml_registry_ask_leave(s->dboid, 0);
	else if (s->handle != NULL)
	{
		pfree(s->handle);
		s->handle = NULL;
	}
}

/* one look at pg_database; returns when the next look is due at the latest */
static TimestampTz
rescan(void)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next = TimestampTzPlusMilliseconds(now, RESCAN_MS);
	List	   *include;
	List	   *exclude;
	bool		all;
	char	   *problem;
	Database   *dbs;
	Oid		   *keep;
	int			ndbs;
	int			nkeep = 0;
	int			probes;
	bool		waiting = false;
	int			i;
	int			j;

	/* the check hook refused bad values: this cannot fail */
	if (!qml_parse_databases(qml_databases, &include, &exclude, &all, &problem))
		elog(ERROR, "qml.databases: %s", problem);
	dbs = list_databases(&ndbs);
	keep = palloc(Max(ndbs, 1) * sizeof(Oid));

	probes = count_probes();
	for (i = 0; i < nserved; i++)
		served[i].wanted = false;
	for (i = 0; i < ndbs; i++)
	{
		Served	   *s;
		TimestampTz again;

		if (!(all || name_in(include, dbs[i].name)) || name_in(exclude, dbs[i].name))
			continue;
		keep[nkeep++] = dbs[i].oid;
		s = served_entry(dbs[i].oid);
		s->wanted = true;
		again = keep_running(s, dbs[i].name, now, &probes);
		if (again < next)
			next = again;
	}
	for (i = 0, j = 0; i < nserved; i++)
	{
		if (!served[i].wanted)
			let_go(&served[i]);
		if (served[i].slot_wait && (!served[i].wanted || served[i].ext == QML_EXT_ABSENT))
		{
			qml_registry_set_slot_wait(served[i].dboid, false);
			served[i].slot_wait = false;
		}
		waiting |= served[i].slot_wait;
		if (served[i].wanted || served[i].handle != NULL)
			served[j++] = served[i];
	}
	nserved = j;
	/* every database got its slot: a later shortage is news again */
	if (!waiting)
		warned_no_slot = false;
	qml_counts_forget_databases(keep, nkeep);
	return next;
}

void
qml_launcher_main(Datum arg)
{
	MemoryContext scan_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	SetConfigOption("application_name", "qml launcher", PGC_USERSET, PGC_S_OVERRIDE);
	qml_registry_set_launcher();

	scan_cxt = AllocSetContextCreate(TopMemoryContext, "qml launcher scan",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		TimestampTz next;
		TimestampTz now;
		long		ms;
		bool		reload = false;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			reload = true;
		}

		MemoryContextSwitchTo(scan_cxt);
		take_created(reload);
		next = rescan();
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(scan_cxt);

		now = GetCurrentTimestamp();
		ms = next > now ? (long) Min((next - now + 999) / 1000, RESCAN_MS) : 1;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 ms, PG_WAIT_EXTENSION);
	}
}

/* called from _PG_init while shared_preload_libraries is being loaded */
void
qml_launcher_register(void)
{
	BackgroundWorker w;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 5;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "qml");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "qml_launcher_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "qml launcher");
	snprintf(w.bgw_type, BGW_MAXLEN, "qml launcher");
	RegisterBackgroundWorker(&w);
}

/*
 * The database `name` if the current role owns it (superusers own all),
 * else InvalidOid. DROP DATABASE, ALTER DATABASE ... RENAME and ... SET
 * TABLESPACE all start with this check, and CREATE DATABASE ... TEMPLATE
 * makes it of a template that is not marked as one (schedulers serve no
 * marked template).
 */
static Oid
owned_database(const char *name)
{
	Oid			dboid = name ? get_database_oid(name, true) : InvalidOid;

	if (!OidIsValid(dboid) || !pg_database_ownercheck(dboid, GetUserId()))
		return InvalidOid;
	return dboid;
}

/*
 * Whether a command that PreventInTransactionBlock() guards can run here
 * (DROP DATABASE, CREATE DATABASE, ALTER DATABASE ... SET TABLESPACE):
 * not in a transaction block, a subtransaction or a function.
 */
static bool
may_run_alone(ProcessUtilityContext context)
{
	return context == PROCESS_UTILITY_TOPLEVEL &&
		!IsTransactionBlock() && !IsSubTransaction();
}

/*
 * Asks the scheduler of a database to leave for a while. Only for a
 * command that passes PostgreSQL's own permission checks: anything less
 * would let a role with no rights keep any database's scheduler away by
 * repeating a command that fails.
 */
static void
leave_database(Oid dboid)
{
	if (OidIsValid(dboid))
		qml_registry_ask_leave(dboid, LEAVE_SECONDS);
}

/* the template a CREATE DATABASE copies, if it names one */
static const char *
template_of(CreatedbStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->options)
	{
		DefElem    *d = (DefElem *) lfirst(lc);

		if (strcmp(d->defname, "template") == 0 && d->arg != NULL)
			return defGetString(d);
	}
	return NULL;
}

/* the tablespace an ALTER DATABASE moves to, if it moves (else NULL) */
static const char *
tablespace_of(AlterDatabaseStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->options)
	{
		DefElem    *d = (DefElem *) lfirst(lc);

		if (strcmp(d->defname, "tablespace") == 0 && d->arg != NULL)
			return defGetString(d);
	}
	return NULL;
}

/*
 * The database whose scheduler must leave for the command, or InvalidOid
 * when there is none or the command would fail its permission checks
 * (dropdb, RenameDatabase, movedb and createdb in dbcommands.c, in that
 * order: owner, CREATEDB, CREATE on the tablespace).
 */
static Oid
database_to_leave(Node *stmt, ProcessUtilityContext context)
{
	switch (nodeTag(stmt))
	{
		case T_DropdbStmt:
			if (!may_run_alone(context))
				return InvalidOid;
			return owned_database(((DropdbStmt *) stmt)->dbname);
		case T_RenameStmt:
			if (((RenameStmt *) stmt)->renameType != OBJECT_DATABASE ||
				!have_createdb_privilege())
				return InvalidOid;
			return owned_database(((RenameStmt *) stmt)->subname);
		case T_AlterDatabaseStmt:
			{
				const char *spc = tablespace_of((AlterDatabaseStmt *) stmt);
				Oid			spcoid = spc ? get_tablespace_oid(spc, true) : InvalidOid;

				if (!OidIsValid(spcoid) || !may_run_alone(context) ||
					pg_tablespace_aclcheck(spcoid, GetUserId(), ACL_CREATE) != ACLCHECK_OK)
					return InvalidOid;
				return owned_database(((AlterDatabaseStmt *) stmt)->dbname);
			}
		case T_CreatedbStmt:
			if (!may_run_alone(context) || !have_createdb_privilege())
				return InvalidOid;
			return owned_database(template_of((CreatedbStmt *) stmt));
		default:
			return InvalidOid;
	}
}

/*
 * Before a command that needs a database to itself, its scheduler leaves;
 * after one that changes which databases exist, the launcher looks again.
 */
static void
qml_utility_hook(PlannedStmt *pstmt, const char *queryString,
				 bool readOnlyTree, ProcessUtilityContext context,
				 ParamListInfo params, QueryEnvironment *queryEnv,
				 DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	leave_database(database_to_leave(stmt, context));
	qml_extension_watch(stmt);
	switch (nodeTag(stmt))
	{
		case T_CreatedbStmt:
		case T_DropdbStmt:
		case T_AlterDatabaseStmt:
			qml_wake_launcher_at_commit();
			break;
		case T_RenameStmt:
			if (((RenameStmt *) stmt)->renameType == OBJECT_DATABASE)
				qml_wake_launcher_at_commit();
			break;
		default:
			break;
	}

	if (prev_utility_hook)
		prev_utility_hook(pstmt, queryString, readOnlyTree, context, params,
						  queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

void
qml_utility_hook_install(void)
{
	prev_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = qml_utility_hook;
	qml_extension_watch_init();
}

/*
 * qml.scheduler_slot_wait_since() returns timestamptz
 *
 * Since when the launcher has been waiting for a free background worker
 * slot to start this database's scheduler; NULL when it is not waiting
 * (or the library is not preloaded). qml status shows it.
 */
PG_FUNCTION_INFO_V1(qml_scheduler_slot_wait_since);

Datum
qml_scheduler_slot_wait_since(PG_FUNCTION_ARGS)
{
	TimestampTz since = qml_registry_slot_wait(MyDatabaseId);

	if (since == 0)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(since);
}
