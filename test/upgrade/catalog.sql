-- test/upgrade/catalog.sql: everything the extension qml put in this
-- database's catalog, one sorted line per fact, named (never by OID), so
-- that two databases can be compared with diff (test/upgrade/catalog.sh).
-- Lines: "section | object | fact".
\pset format unaligned
\pset tuples_only on
\pset fieldsep ' | '
SET search_path = pg_catalog;
SET extra_float_digits = 1;
-- a query this size would spend seconds in JIT compilation
SET jit = off;

WITH ext AS (SELECT * FROM pg_extension WHERE extname = 'qml'),
nsp AS (SELECT oid FROM pg_namespace WHERE nspname = 'qml'),
rels AS (SELECT c.* FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM nsp)),
procs AS (SELECT p.* FROM pg_proc p WHERE p.pronamespace = (SELECT oid FROM nsp)),
acl(kind, obj, acl) AS (
	SELECT 'schema', 'qml', nspacl FROM pg_namespace WHERE nspname = 'qml'
	UNION ALL SELECT 'relation', oid::regclass::text, relacl FROM rels
	UNION ALL SELECT 'function', oid::regprocedure::text, proacl FROM procs
	UNION ALL SELECT 'type', t.oid::regtype::text, t.typacl FROM pg_type t
	 WHERE t.typnamespace = (SELECT oid FROM nsp)
	UNION ALL SELECT 'column', a.attrelid::regclass::text || '.' || a.attname, a.attacl
	  FROM pg_attribute a JOIN rels r ON r.oid = a.attrelid WHERE a.attacl IS NOT NULL),
facts(section, obj, fact) AS (
	-- the extension itself
	SELECT 'extension', extname::text,
		   format('version %s relocatable %s schema %s owner %s', extversion, extrelocatable,
				  extnamespace::regnamespace, extowner::regrole)
	  FROM ext
	UNION ALL
	SELECT 'extension config', c::regclass::text, coalesce(x.cond, '')
	  FROM ext, unnest(ext.extconfig, ext.extcondition) x(c, cond)
	UNION ALL
	-- membership: every object the extension owns
	SELECT 'member', pg_describe_object(d.classid, d.objid, d.objsubid), ''
	  FROM pg_depend d, ext
	 WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
	UNION ALL
	-- how the objects hang together (indexes, constraints, defaults,
	-- sequences, triggers, function bodies, the CHECK's function)
	SELECT 'depend', pg_describe_object(d.classid, d.objid, d.objsubid),
		   d.deptype::text || ' on ' || pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid)
	  FROM pg_depend d
	 WHERE d.deptype <> 'e'
	   AND (d.refobjid IN (SELECT oid FROM rels UNION ALL SELECT oid FROM procs
						   UNION ALL SELECT oid FROM nsp
						   UNION ALL SELECT t.oid FROM pg_type t
							WHERE t.typnamespace = (SELECT oid FROM nsp))
			OR d.objid IN (SELECT oid FROM rels UNION ALL SELECT oid FROM procs))
	UNION ALL
	-- privileges, one grant a line
	SELECT 'acl ' || a.kind, a.obj,
		   CASE WHEN e.grantee = 0 THEN 'PUBLIC' ELSE e.grantee::regrole::text END ||
		   ' ' || e.privilege_type || ' by ' || e.grantor::regrole ||
		   CASE WHEN e.is_grantable THEN ' grantable' ELSE '' END
	  FROM acl a, aclexplode(a.acl) e WHERE a.acl IS NOT NULL
	UNION ALL
	SELECT 'acl ' || a.kind, a.obj, 'default (NULL)' FROM acl a
	 WHERE a.acl IS NULL AND a.kind <> 'column'
	UNION ALL
	SELECT 'schema', 'qml', format('owner %s', n.nspowner::regrole)
	  FROM pg_namespace n WHERE n.nspname = 'qml'
	UNION ALL
	-- relations
	SELECT 'relation', r.oid::regclass::text,
		   format('kind %s persistence %s owner %s options %s row security %s/%s am %s replident %s',
				  r.relkind, r.relpersistence, r.relowner::regrole, r.reloptions,
				  r.relrowsecurity, r.relforcerowsecurity, r.relam::regclass, r.relreplident)
	  FROM rels r
	UNION ALL
	SELECT 'column', a.attrelid::regclass::text || '.' || a.attname,
		   format('#%s %s not null %s default %s identity %s generated %s collation %s storage %s compression %s stattarget %s options %s dropped %s',
				  a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull,
				  pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
				  a.attcollation, a.attstorage, a.attcompression, a.attstattarget,
				  -- (this server notes a version of its own in attoptions)
				  ARRAY(SELECT o FROM unnest(a.attoptions) o
						 WHERE o NOT LIKE 'pg\_attver=%' ORDER BY o),
				  a.attisdropped)
	  FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid
	  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	 WHERE a.attnum > 0 AND r.relkind IN ('r', 'p', 'v', 'c', 'S')
	UNION ALL
	SELECT 'sequence', s.seqrelid::regclass::text,
		   format('type %s start %s increment %s min %s max %s cache %s cycle %s',
				  s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
				  s.seqcache, s.seqcycle)
	  FROM pg_sequence s JOIN rels r ON r.oid = s.seqrelid
	UNION ALL
	SELECT 'constraint', k.conrelid::regclass::text || '.' || k.conname,
		   format('%s type %s deferrable %s/%s valid %s noinherit %s',
				  pg_get_constraintdef(k.oid), k.contype, k.condeferrable, k.condeferred,
				  k.convalidated, k.connoinherit)
	  FROM pg_constraint k JOIN rels r ON r.oid = k.conrelid
	UNION ALL
	SELECT 'index', i.indexrelid::regclass::text,
		   format('%s primary %s unique %s clustered %s replident %s valid %s ready %s',
				  pg_get_indexdef(i.indexrelid), i.indisprimary, i.indisunique,
				  i.indisclustered, i.indisreplident, i.indisvalid, i.indisready)
	  FROM pg_index i JOIN rels r ON r.oid = i.indrelid
	UNION ALL
	SELECT 'trigger', t.tgrelid::regclass::text || '.' || t.tgname,
		   format('%s enabled %s', pg_get_triggerdef(t.oid), t.tgenabled)
	  FROM pg_trigger t JOIN rels r ON r.oid = t.tgrelid
	UNION ALL
	SELECT 'rule', w.ev_class::regclass::text || '.' || w.rulename, pg_get_ruledef(w.oid)
	  FROM pg_rewrite w JOIN rels r ON r.oid = w.ev_class
	UNION ALL
	SELECT 'policy', p.polrelid::regclass::text || '.' || p.polname, p.polcmd::text
	  FROM pg_policy p JOIN rels r ON r.oid = p.polrelid
	UNION ALL
	-- types: enums with their labels in order
	SELECT 'type', t.oid::regtype::text,
		   format('type %s owner %s labels %s', t.typtype, t.typowner::regrole,
				  (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
					 FROM pg_enum e WHERE e.enumtypid = t.oid))
	  FROM pg_type t WHERE t.typnamespace = (SELECT oid FROM nsp)
	UNION ALL
	-- functions: signature and attributes, then the whole definition
	SELECT 'function', p.oid::regprocedure::text,
		   format('kind %s args (%s) returns %s volatile %s strict %s security definer %s leakproof %s parallel %s cost %s rows %s config %s language %s owner %s',
				  p.prokind, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
				  p.provolatile, p.proisstrict, p.prosecdef, p.proleakproof, p.proparallel,
				  p.procost, p.prorows, p.proconfig,
				  (SELECT l.lanname FROM pg_language l WHERE l.oid = p.prolang), p.proowner::regrole)
	  FROM procs p
	UNION ALL
	SELECT 'function body', p.oid::regprocedure::text,
		   to_char(l.n, 'FM0000') || ' ' || l.line
	  FROM procs p, regexp_split_to_table(pg_get_functiondef(p.oid), E'\n') WITH ORDINALITY l(line, n)
	 WHERE p.prokind <> 'a'
	UNION ALL
	-- comments on the schema, relations, columns, functions, types
	SELECT 'comment', pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description
	  FROM pg_description d
	 WHERE d.objoid IN (SELECT oid FROM rels UNION ALL SELECT oid FROM procs
						UNION ALL SELECT oid FROM nsp
						UNION ALL SELECT t.oid FROM pg_type t
						 WHERE t.typnamespace = (SELECT oid FROM nsp)
						UNION ALL SELECT k.oid FROM pg_constraint k JOIN rels r ON r.oid = k.conrelid
						UNION ALL SELECT t.oid FROM pg_trigger t JOIN rels r ON r.oid = t.tgrelid)
	UNION ALL
	-- what the direct-write gate compares against (src/direct_gate.c)
	SELECT 'table shape', s.relname::text, md5(s.shape) FROM qml.table_shapes s
)
-- TOAST tables are named by OID
SELECT section, regexp_replace(obj, 'pg_toast_[0-9]+', 'pg_toast_N', 'g') AS o,
	   regexp_replace(fact, 'pg_toast_[0-9]+', 'pg_toast_N', 'g') AS f
  FROM facts ORDER BY 1, 2, 3;
