#!/usr/bin/env bash
# scripts/cluster.sh: a throwaway PostgreSQL 15 cluster on a private port and
# socket directory, owned by an unprivileged user (initdb and postgres refuse
# root).
#
#   scripts/cluster.sh up   [extra postgresql.conf lines]   (re)creates and starts it
#   scripts/cluster.sh down                                 stops it and removes it
#   scripts/cluster.sh restart [fast|immediate]
#   scripts/cluster.sh stop | start                         keeps its data (outage tests)
#
# Settings come from the environment: QML_PGDIR (default /tmp/qml-pg-$QML_PGPORT),
# QML_PGPORT (default 5499). Source scripts/env.sh to point psql at it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"

run_as_owner() {
	if [ "$(id -u)" = 0 ]; then
		su "$QML_PGUSER_OS" -s /bin/sh -c "$*"
	else
		sh -c "$*"
	fi
}

down() {
	if [ -f "$QML_PGDIR/data/postmaster.pid" ]; then
		run_as_owner "'$PGBIN/pg_ctl' -D '$QML_PGDIR/data' -m immediate -w -t 30 stop" >/dev/null 2>&1 || true
	fi
	# a server left from an earlier run on our port, whatever its directory
	pid=$(pgrep -f -- "-p $QML_PGPORT" 2>/dev/null | head -1 || true)
	[ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null || true
	rm -rf "$QML_PGDIR"
}

up() {
	down
	mkdir -p "$QML_PGDIR/sock"
	[ "$(id -u)" = 0 ] && chown -R "$QML_PGUSER_OS": "$QML_PGDIR"
	run_as_owner "'$PGBIN/initdb' -D '$QML_PGDIR/data' -A trust -U postgres -E UTF8 --locale=C.UTF-8" >"$QML_PGDIR/initdb.log" 2>&1 ||
		{ cat "$QML_PGDIR/initdb.log" >&2; exit 1; }
	cat >>"$QML_PGDIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $QML_PGPORT
unix_socket_directories = '$QML_PGDIR/sock'
max_connections = 200
shared_buffers = 256MB
max_wal_size = 2GB
fsync = on
log_line_prefix = '%m [%p] %q%a '
${1:-}
CONF
	run_as_owner "'$PGBIN/pg_ctl' -D '$QML_PGDIR/data' -l '$QML_PGDIR/log' -w -t 60 start" >/dev/null ||
		{ tail -20 "$QML_PGDIR/log" >&2; exit 1; }
}

restart() {
	run_as_owner "'$PGBIN/pg_ctl' -D '$QML_PGDIR/data' -l '$QML_PGDIR/log' -m ${1:-fast} -w -t 60 restart" >/dev/null
}

case "${1:-}" in
	up) shift; up "${1:-}" ;;
	down) down ;;
	restart) shift; restart "${1:-fast}" ;;
	stop) run_as_owner "'$PGBIN/pg_ctl' -D '$QML_PGDIR/data' -m fast -w -t 60 stop" >/dev/null ;;
	start) run_as_owner "'$PGBIN/pg_ctl' -D '$QML_PGDIR/data' -l '$QML_PGDIR/log' -w -t 60 start" >/dev/null ;;
	*) echo "usage: $0 up [conf] | down | restart [fast|immediate] | stop | start" >&2; exit 2 ;;
esac
