#!/usr/bin/env bash
# scripts/deb.sh: `make deb`. Builds the Debian packages of debian/
# (postgresql-15-qml, qml, libqml1, libqml-dev) with dpkg-buildpackage in a
# copy of the source (the files git tracks, plus new ones it does not
# ignore), so that the tree keeps its own build and gets none of dpkg's
# files; the .deb files end up in dist/ (git-ignored), older ones removed,
# with dpkg-buildpackage's output in dist/build.log.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=dist/build
src=$build/qml

log=dist/build.log
rm -rf "$build" dist/*.deb
mkdir -p "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# tracked files deleted in the tree are left out
	git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - -cf - | tar -xf - -C "$src"
else
	# an unpacked source archive: everything but dist/ and .git, build products
	# removed by the package build's own make clean
	tar --exclude=./dist --exclude=./.git -cf - . | tar -xf - -C "$src"
fi

# no dbgsym packages; the suites run against the installed packages
# (test/package/run.sh), not at build time
(cd "$src" && DEB_BUILD_OPTIONS="noautodbgsym nocheck ${DEB_BUILD_OPTIONS:-}" \
	dpkg-buildpackage -b -us -uc) >"$log" 2>&1 ||
	{ tail -40 "$log" >&2; echo "dpkg-buildpackage failed: see $log" >&2; exit 1; }
mv "$build"/*.deb dist/
rm -rf "$build"
ls dist/*.deb
