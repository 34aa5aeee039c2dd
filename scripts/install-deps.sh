#!/usr/bin/env bash
# scripts/install-deps.sh: installs the Debian packages qml builds and tests
# with, only those missing. Needs root (or sudo) when something is missing.
set -euo pipefail
packages=(
	build-essential
	postgresql-15 postgresql-server-dev-15 postgresql-contrib
	postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
	libpq-dev libjansson-dev
	clang llvm libclang-rt-14-dev
	valgrind procps
	python3-psycopg nodejs
)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Debian's nodejs comes without npm, NodeSource's with it (and conflicts with
# Debian's npm)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	sudo=
	[ "$(id -u)" = 0 ] || sudo=sudo
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	# the Debian package would create and start its own cluster on 5432; we use
	# throwaway clusters only
	$sudo mkdir -p /etc/postgresql-common/createcluster.d
	echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.d/qml-no-main.conf >/dev/null
	$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# the Node worker example's driver (docs/examples/node/package.json), for
# the examples suite; node_modules is not committed
node_dir=$(cd "$(dirname "$0")/.." && pwd)/docs/examples/node
if [ -f "$node_dir/package.json" ] && [ ! -d "$node_dir/node_modules/pg" ]; then
	echo "installing the Node example's packages (npm)"
	(cd "$node_dir" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
