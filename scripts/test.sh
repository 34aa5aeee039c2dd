#!/usr/bin/env bash
# scripts/test.sh: the README's test command. Installs what is missing,
# builds with zero warnings, installs the extension, starts a throwaway
# cluster with qml preloaded, runs every suite, stops the cluster whatever
# happens, and exits non-zero if any suite failed.
#
#   scripts/test.sh              every suite
#   scripts/test.sh regress ...  only the named suites
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh || exit 1
export QML_PGPORT=${QML_PGPORT:-5499}
. scripts/env.sh
sudo=
[ "$(id -u)" = 0 ] || sudo=sudo

echo "== build"
make -s clean >/dev/null 2>&1
if ! make -s all >/tmp/qml-build.$$.log 2>&1; then cat /tmp/qml-build.$$.log; exit 1; fi
warnings=$(grep -c 'warning:' /tmp/qml-build.$$.log || true)
if [ "$warnings" != 0 ]; then grep 'warning:' /tmp/qml-build.$$.log; echo "build has $warnings warnings"; exit 1; fi
rm -f /tmp/qml-build.$$.log
$sudo make -s install >/dev/null || exit 1

trap 'scripts/cluster.sh down' EXIT
echo "== cluster on port $QML_PGPORT"
scripts/cluster.sh up "$(cat test/qml.conf)" || exit 1

# pg_regress and friends write into the tree; the server runs as postgres
failed=()
suite() {
	local name=$1; shift
	if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " == *" $name "* ]]; then return; fi
	echo "== $name"
	local t0=$SECONDS
	if "$@"; then
		echo "-- $name: ok ($((SECONDS - t0)) s)"
	else
		echo "-- $name: FAILED ($((SECONDS - t0)) s)"
		failed+=("$name")
	fi
}
only=("$@")

suite regress make -s installcheck ISOLATION=
suite pgtap test/pgtap/run.sh
suite stress test/stress/concurrent_claim.sh
[ -f test/suites.sh ] && . test/suites.sh

if [ ${#failed[@]} -gt 0 ]; then
	echo "FAILED suites: ${failed[*]}"
	[ -f regression.diffs ] && head -100 regression.diffs
	[ -f output_iso/regression.diffs ] && head -100 output_iso/regression.diffs
	exit 1
fi
echo "all suites passed"
