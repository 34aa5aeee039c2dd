/*-------------------------------------------------------------------------
 *
 * extension_watch.c
 *	  Tells the launcher when a commit creates or drops the qml extension
 *	  in a database, so that a scheduler runs only where qml is installed.
 *
 * The utility hook (launcher.c) passes every statement here. One that can
 * create or drop an extension (CREATE EXTENSION, with CASCADE any of them;
 * DROP EXTENSION; DROP OWNED) makes the transaction note whether qml
 * existed before it. Just before commit we look again: if that changed,
 * the commit tells shared memory (shmem.c) once it is visible. Nothing is
 * told before: a CREATE EXTENSION that is rolled back, in full or to a
 * savepoint, starts nothing.
 *
 * A prepared transaction commits in another session, which could not tell
 * the launcher: PREPARE TRANSACTION of one that creates qml is refused.
 * Dropping needs no message to be correct (the scheduler finds the
 * extension gone at its next pass and leaves); it only makes that happen
 * at once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "nodes/parsenodes.h"

#include "qml.h"

typedef enum Watch
{
	WATCH_NONE,					/* no statement of this transaction could
								 * change it */
	WATCH_WAS_ABSENT,
	WATCH_WAS_PRESENT
} Watch;

static Watch watch = WATCH_NONE;
static bool changed = false;	/* decided at PRE_COMMIT */

static bool
qml_exists(void)
{
	return OidIsValid(get_extension_oid("qml", true));
}

/* a statement that may create or drop an extension */
static bool
may_change_extensions(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_CreateExtensionStmt:
		case T_DropOwnedStmt:
			return true;
		case T_DropStmt:
			return ((DropStmt *) stmt)->removeType == OBJECT_EXTENSION;
		default:
			return false;
	}
}

/* called by the utility hook before each statement runs */
void
qml_extension_watch(Node *stmt)
{
	if (watch == WATCH_NONE && may_change_extensions(stmt))
		watch = qml_exists() ? WATCH_WAS_PRESENT : WATCH_WAS_ABSENT;
}

static void
watch_xact_callback(XactEvent event, void *arg)
{
	if (watch == WATCH_NONE)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			changed = qml_exists() != (watch == WATCH_WAS_PRESENT);
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (watch == WATCH_WAS_ABSENT && qml_exists())
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that creates extension qml"),
						 errdetail("The scheduler of the database is started when the creating transaction commits, which a prepared transaction does in another session."),
						 errhint("Create the extension in a transaction of its own.")));
			break;
		case XACT_EVENT_COMMIT:
			if (changed)
				qml_registry_extension_changed(watch == WATCH_WAS_ABSENT);
			watch = WATCH_NONE;
			changed = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			watch = WATCH_NONE;
			changed = false;
			break;
		default:
			break;
	}
}

/* called from _PG_init when the library is preloaded */
void
qml_extension_watch_init(void)
{
	RegisterXactCallback(watch_xact_callback, NULL);
}
