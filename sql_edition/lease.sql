/*
 * sql_edition/lease.sql
 *	  Whose a lease is (src/lease_role.c): the role a claim records, and
 *	  whether the session may act on a lease another role holds.
 *
 * The role is the one the session acts as: the role of SET ROLE, else the
 * login role. Inside the SECURITY DEFINER API current_user is the owner,
 * but the `role` setting still says what SET ROLE chose ('none' when
 * nothing was set), and session_user is the login role.
 */

CREATE FUNCTION qml.lease_role() RETURNS oid
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT r.oid FROM pg_catalog.pg_roles r
 WHERE r.rolname OPERATOR(pg_catalog.=)
	   CASE WHEN pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none'
			THEN pg_catalog.session_user() ELSE pg_catalog.current_setting('role') END
$$;

-- the lease's own role, or an admin: a superuser or a role that may call
-- qml.delete(bigint)
CREATE FUNCTION qml.may_act(locked_role oid) RETURNS boolean
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce(locked_role OPERATOR(pg_catalog.=) qml.lease_role(), false)
	OR (SELECT r.rolsuper
			OR pg_catalog.has_function_privilege(r.oid, 'qml.delete(bigint)', 'EXECUTE')
		  FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) qml.lease_role())
$$;
