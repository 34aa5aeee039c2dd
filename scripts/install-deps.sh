#!/usr/bin/env bash
# scripts/install-deps.sh: installs the Debian packages qml builds and tests
# with, only those missing, and the npm packages of the test folders, as
# their lock files say. Needs root (or sudo) when something is missing.
set -euo pipefail
packages=(
	build-essential
	postgresql-15 postgresql-server-dev-15 postgresql-contrib
	postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
	libpq-dev libjansson-dev
	libcivetweb-dev libjs-chart.js
	clang llvm libclang-rt-14-dev
	valgrind procps patch
	python3 python3-psycopg nodejs chromium
	# make deb and the package suite (debian/): pg_buildext, dh, lintian
	debhelper fakeroot lintian postgresql-server-dev-all help2man
	# the Redis store (client/src/store_redis*.c) and its suites
	redis-server redis-tools libhiredis-dev
	# bench/profile.sh: where the server's CPU per job goes
	linux-perf
)
# see below: never left in place (earlier versions of this script did)
conf=/etc/postgresql-common/createcluster.d/qml-no-main.conf
sudo=
[ "$(id -u)" = 0 ] || sudo=sudo
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Debian's nodejs comes without npm, NodeSource's with it (and conflicts with
# Debian's npm)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	# the Debian package would create and start its own cluster on 5432; we use
	# throwaway clusters only. The setting is for this install only: left in
	# place it would keep any later PostgreSQL install from creating its
	# default cluster.
	$sudo mkdir -p "$(dirname "$conf")"
	echo "create_main_cluster = false" | $sudo tee "$conf" >/dev/null
	rc=0
	$sudo apt-get install -y -qq "${missing[@]}" >/dev/null || rc=$?
	$sudo rm -f "$conf"
	[ $rc = 0 ] || exit $rc
fi
[ ! -e "$conf" ] || $sudo rm -f "$conf"

# npm packages of a folder, as locked in its package-lock.json; again only
# when the lock file changed since the last install (node_modules is not
# committed)
npm_folder() {
	local dir
	dir=$(cd "$(dirname "$0")/.." && pwd)/$1
	cmp -s "$dir/package-lock.json" "$dir/node_modules/.qml-installed" 2>/dev/null && return 0
	echo "installing the npm packages of $1"
	(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null &&
		cp package-lock.json node_modules/.qml-installed)
}
# the browser test's playwright-core (it drives the chromium above and never
# downloads a browser)
npm_folder test/browser
# the Node worker example's driver (docs/examples/node), for the examples suite
npm_folder docs/examples/node
# BullMQ (and its ioredis), the baseline of the Redis benchmark (bench/redis.sh)
npm_folder bench/bullmq
