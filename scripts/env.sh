# scripts/env.sh: sourced by the scripts to agree on where the throwaway
# cluster lives and how to reach it (psql, pg_regress and libpq read PG*).
PGBIN=${PGBIN:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
[ -x "$PGBIN/initdb" ] || PGBIN=/usr/lib/postgresql/15/bin
QML_PGPORT=${QML_PGPORT:-5499}
QML_PGDIR=${QML_PGDIR:-/tmp/qml-pg-$QML_PGPORT}
QML_PGUSER_OS=${QML_PGUSER_OS:-postgres}
export PGHOST=$QML_PGDIR/sock PGPORT=$QML_PGPORT PGUSER=postgres
export PATH=$PGBIN:$PATH
