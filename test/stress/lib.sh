# test/stress/lib.sh: sourced by the stress scripts beside it. Each sets
# `db` (its own database) before sourcing; `die` names the script.

q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
die() { echo "$(basename "$0" .sh): $*" >&2; exit 1; }

# a fresh database $db with the extension in it
fresh_db() {
	psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" ||
		die "cannot create database $db"
	q -c "CREATE EXTENSION qml" || die "cannot create extension qml"
}

drop_db() { psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"; }
