#!/usr/bin/env bash
# scripts/install-deps.sh: installs the Debian packages qml builds and tests
# with, only those missing. Needs root (or sudo) when something is missing.
set -euo pipefail
packages=(
	build-essential
	postgresql-15 postgresql-server-dev-15 postgresql-contrib
	postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
	libpq-dev libjansson-dev
	libcivetweb-dev libjs-chart.js
	clang llvm libclang-rt-14-dev
	valgrind procps
	nodejs chromium
)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
sudo=
[ "$(id -u)" = 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	$sudo apt-get update -qq
	# the Debian package would create and start its own cluster on 5432; we
	# use throwaway clusters only
	$sudo mkdir -p /etc/postgresql-common/createcluster.d
	echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.d/qml-no-main.conf >/dev/null
	$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian's nodejs comes without npm (another nodejs build may bundle it)
command -v npm >/dev/null || $sudo apt-get install -y -qq npm >/dev/null

# the browser test's playwright-core (it drives the chromium above and never
# downloads a browser), as locked in its package-lock.json
browser=$(cd "$(dirname "$0")/../test/browser" && pwd)
if ! cmp -s "$browser/package-lock.json" "$browser/node_modules/.qml-installed" 2>/dev/null; then
	(cd "$browser" && npm ci --no-audit --no-fund --loglevel=error >/dev/null &&
		cp package-lock.json node_modules/.qml-installed)
fi
