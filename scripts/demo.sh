#!/usr/bin/env bash
# scripts/demo.sh: the README's first command. Installs what is missing,
# builds and installs qml, starts a throwaway cluster with qml preloaded (so
# the scheduler background worker runs), and shows jobs flowing through it
# with the qml command, and on the dashboard it starts (its address is
# printed; it serves until Ctrl-C). The cluster is removed on exit unless
# --keep is given. QML_DEMO_LISTEN=HOST:PORT moves the dashboard (default
# 127.0.0.1:8080).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
keep=false
[ "${1:-}" = "--keep" ] && keep=true

scripts/install-deps.sh
export QML_PGPORT=${QML_PGPORT:-5498}
. scripts/env.sh
sudo=
[ "$(id -u)" = 0 ] || sudo=sudo

echo "== building qml"
make -s >/dev/null
$sudo make -s install >/dev/null

$keep || trap 'scripts/cluster.sh down' EXIT
echo "== starting a throwaway PostgreSQL 15 cluster on port $QML_PGPORT"
scripts/cluster.sh up "shared_preload_libraries = 'qml'"
psql -X -q -d postgres -c "CREATE DATABASE qml_demo"
export DATABASE_URL="postgresql://postgres@127.0.0.1:$QML_PGPORT/qml_demo"

client/qml migrate
# the commands qml demo suggests at the end only work on a cluster kept
throwaway=--throwaway
$keep && throwaway=
client/qml demo --listen "${QML_DEMO_LISTEN:-127.0.0.1:8080}" $throwaway

if $keep; then
	echo
	echo "The cluster keeps running: psql \"$DATABASE_URL\""
	echo "Stop it with: QML_PGPORT=$QML_PGPORT scripts/cluster.sh down"
fi
