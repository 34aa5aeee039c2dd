/*-------------------------------------------------------------------------
 *
 * lease_role.c
 *	  Whose a lease is: the role that claimed a job, and who else may act
 *	  on it.
 *
 * A worker names itself, and a name proves nothing: any role with worker
 * rights could heartbeat, fail or complete a job another role claimed by
 * passing that role's worker name. So a claim also records the role it was
 * made by (qml.jobs.locked_role), and complete, complete_batch, fail,
 * heartbeat and release act only when the caller is that role or an admin,
 * as well as naming the lease's worker. Any other caller finds the lease
 * lost, as a worker whose lease expired does.
 *
 * The role is the one the session acts as: its login role, or the role of
 * SET ROLE (a pooled connection that logs in as one role and sets another
 * per client is that other role). Not current_user, which inside the
 * SECURITY DEFINER API is the extension's owner, and not session_user,
 * which SET ROLE does not change. A SECURITY DEFINER function of the
 * caller's own that calls the API does not change it either: the caller
 * remains the role that claimed, so its claims and completions agree.
 *
 * An admin is a role that may call qml.delete(bigint) (qml.grant_admin,
 * the extension's owner, a superuser): it can take the job away from its
 * worker anyway, so it may as well finish it for the worker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/acl.h"

#include "qml.h"

PG_FUNCTION_INFO_V1(qml_lease_role_sql);
PG_FUNCTION_INFO_V1(qml_may_act_sql);

/* the role a claim now would record */
Oid
qml_lease_role(void)
{
	return GetOuterUserId();
}

/* whether the session's role may call qml.delete(bigint) */
static bool
caller_is_admin(void)
{
	Oid			argtypes[1] = {INT8OID};
	Oid			delete_fn;

	if (superuser_arg(GetOuterUserId()))
		return true;
	delete_fn = LookupFuncName(list_make2(makeString("qml"), makeString("delete")),
							   1, argtypes, true);
	return OidIsValid(delete_fn) &&
		pg_proc_aclcheck(delete_fn, GetOuterUserId(), ACL_EXECUTE) == ACLCHECK_OK;
}

/*
 * Whether the session may act on a lease `locked_role` holds (InvalidOid:
 * none recorded, which only an admin may act on). *admin caches the admin
 * check for a caller looking at many jobs: -1 not known yet, else 0 or 1.
 */
bool
qml_may_act(Oid locked_role, int *admin)
{
	if (OidIsValid(locked_role) && locked_role == GetOuterUserId())
		return true;
	if (*admin < 0)
		*admin = caller_is_admin() ? 1 : 0;
	return *admin == 1;
}

/* qml.lease_role() returns oid: the role a claim records */
Datum
qml_lease_role_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(qml_lease_role());
}

/* qml.may_act(locked_role oid) returns boolean, for the API's statements */
Datum
qml_may_act_sql(PG_FUNCTION_ARGS)
{
	int			admin = -1;

	return BoolGetDatum(qml_may_act(PG_ARGISNULL(0) ? InvalidOid : PG_GETARG_OID(0),
									&admin));
}
