# bench/own_cluster.sh: sourced by the benchmarks that bring their own
# throwaway cluster (scheduler.sh, stats.sh), from the project root: qml
# preloaded on QML_PGPORT (default 5535), a database $db with the extension
# and its scheduler running, a scratch folder $tmp, and q() for psql on $db.
# The cluster and $tmp go when the script exits.
export QML_PGPORT=${QML_PGPORT:-5535}
. scripts/env.sh
tmp=$(mktemp -d)
trap 'scripts/cluster.sh down; rm -rf "$tmp"' EXIT

q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

scripts/cluster.sh up "$(cat test/qml.conf)
max_wal_size = 4GB
checkpoint_timeout = 15min"
psql -X -q -d postgres -c "CREATE DATABASE $db"
q -c "CREATE EXTENSION qml"
for _ in $(seq 100); do
	[ "$(psql -X -At -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qml scheduler' AND datname = '$db'")" = 1 ] && break
	sleep 0.1
done
