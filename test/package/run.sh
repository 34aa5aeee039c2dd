#!/usr/bin/env bash
# test/package/run.sh: the Debian packages, as a user gets them. Builds them
# (make deb) and checks that the tree is left as it was, checks what each
# package holds (every qml--*.sql of the source among them), runs lintian
# (errors fail, warnings are printed), extracts the packages over a scratch
# copy of the PostgreSQL install with any qml files removed first, starts a
# throwaway cluster from that copy on its own port with qml preloaded, and
# runs the pg_regress suite and the qml command (linked against the
# extracted libqml.so.1) against what the packages installed.
#
# Run by scripts/test.sh (suite `package`); alone:
#   PGBIN=... QML_PGPORT=... test/package/run.sh
# The scratch cluster's port is QML_PKG_PGPORT (default QML_PGPORT + 100).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
. scripts/env.sh
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok   $*"; }

# --- build: the .debs land in dist/, the tree's status does not change
before=$(git status --porcelain)
make -s deb >/dev/null || fail "make deb"
[ "$(git status --porcelain)" = "$before" ] || fail "make deb changed the tree: $(git status --porcelain | head -3)"
deb() { local f; f=$(find "$root" -maxdepth 2 -name "$1_*.deb" | sort | tail -1); [ -n "$f" ] || fail "no $1_*.deb under the project"; echo "$f"; }
ext=$(deb postgresql-15-qml) cli=$(deb qml) lib=$(deb libqml1) dev=$(deb libqml-dev)
pass "make deb: $(cd dist && echo *.deb), tree unchanged"

# --- contents
holds() {
	local pkg=$1 list; shift
	list=$(dpkg-deb -c "$pkg" | awk '{print $6}')
	for f in "$@"; do
		grep -qx "\./$f" <<<"$list" || fail "$(basename "$pkg") lacks $f"
	done
}
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
extdir=usr/share/postgresql/15/extension
scripts=(qml--*.sql)
holds "$ext" usr/lib/postgresql/15/lib/qml.so $extdir/qml.control "${scripts[@]/#/$extdir/}"
holds "$cli" usr/bin/qml
holds "$lib" usr/lib/$multiarch/libqml.so.1
holds "$dev" usr/include/qml.h usr/lib/$multiarch/libqml.so usr/lib/$multiarch/libqml.a \
	usr/lib/$multiarch/pkgconfig/qml.pc
dpkg-deb -f "$cli" Depends | grep -q 'libqml1' || fail "qml does not depend on libqml1"
pass "contents: qml.so, qml.control, ${scripts[*]}; qml; libqml.so.1; qml.h, qml.pc"

# --- lintian: no errors (root is fine here: it only reads the files)
rc=0
lint=$(lintian --fail-on error "$ext" "$cli" "$lib" "$dev" 2>&1) || rc=$?
[ $rc = 0 ] || { echo "$lint"; fail "lintian reports errors (exit $rc)"; }
pass "lintian: no errors, $(grep -c '^W:' <<<"$lint" || true) warnings"
grep '^W:' <<<"$lint" | sed 's/^/     /' || true

# --- apt would install them here: every dependency resolves (a simulation,
# nothing is installed)
apt-get install -s "$ext" "$cli" "$lib" "$dev" >"$(dirname "$ext")/apt-simulate.log" 2>&1 ||
	{ tail -5 "$(dirname "$ext")/apt-simulate.log"; fail "apt cannot install the packages"; }
pass "apt install resolves every dependency (simulated)"

# --- a scratch install: the PostgreSQL tree PGBIN belongs to (Debian layout)
# or the system's, without qml, then the four packages extracted over it
pglib=$(dirname "$PGBIN")
case $pglib in */usr/lib/postgresql/15) ;; *) pglib=/usr/lib/postgresql/15 ;; esac
pgshare=${pglib%/lib/postgresql/15}/share/postgresql/15
scratch=$(mktemp -d /tmp/qml-pkg.XXXXXX)
port=${QML_PKG_PGPORT:-$((QML_PGPORT + 100))}
export QML_PGPORT=$port QML_PGDIR=$scratch/cluster PGBIN=$scratch/usr/lib/postgresql/15/bin
cleanup() { scripts/cluster.sh down >/dev/null 2>&1 || true; rm -rf "$scratch"; }
trap cleanup EXIT
chmod 755 "$scratch"
mkdir -p "$scratch/usr/lib/postgresql" "$scratch/usr/share/postgresql"
cp -a "$pglib" "$scratch/usr/lib/postgresql/15"
cp -a "$pgshare" "$scratch/usr/share/postgresql/15"
rm -rf "$scratch"/usr/lib/postgresql/15/lib/qml.so "$scratch"/usr/lib/postgresql/15/lib/bitcode/qml* \
	"$scratch"/usr/share/postgresql/15/extension/qml[.-]*
for p in "$ext" "$cli" "$lib" "$dev"; do dpkg -x "$p" "$scratch"; done
[ "$("$PGBIN/pg_config" --sharedir)" = "$scratch/usr/share/postgresql/15" ] ||
	fail "the scratch install does not find its own share directory"
pass "installed into $scratch from $pglib"

# --- the core suite against the installed extension
scripts/cluster.sh up "$(cat test/qml.conf)" || fail "the scratch cluster did not start"
. scripts/env.sh
psql -X -q -At -d postgres -c "SELECT 1 FROM pg_available_extensions WHERE name = 'qml'" | grep -qx 1 ||
	fail "qml is not available in the scratch install"
# results in the scratch directory: the regress suite's stay in the tree
out=$scratch/regress
if ! make -s installcheck ISOLATION= PG_CONFIG="$PGBIN/pg_config" EXTRA_REGRESS_OPTS="--outputdir=$out"; then
	[ -f "$out/regression.diffs" ] && head -60 "$out/regression.diffs"
	fail "pg_regress against the installed packages"
fi
pass "pg_regress against the installed packages"

# --- the qml command from the package, with the package's libqml
export LD_LIBRARY_PATH=$scratch/usr/lib/$multiarch
qml=$scratch/usr/bin/qml
# grep reads all of ldd's output: with pipefail, grep -q's early exit
# could fail the pipe by SIGPIPE
grep -q "libqml.so.1 => $scratch/usr/lib/$multiarch/libqml.so.1" <(ldd "$qml") ||
	fail "the packaged qml does not load the packaged libqml: $(ldd "$qml" | grep qml)"
"$qml" --version || fail "qml --version"
psql -X -q -d postgres -c "CREATE DATABASE qml_package" -c "\\c qml_package" -c "CREATE EXTENSION qml"
version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" qml.control)
status=$(PGDATABASE=qml_package "$qml" status) || { echo "$status"; fail "qml status"; }
echo "$status" | sed 's/^/     /'
grep -q "$version" <<<"$status" || fail "qml status does not show the extension's version $version"
pass "qml --version and qml status from the package (extension $version)"
# the packages, the library and the extension's default carry one version:
# a 1.2 schema shipped as 1.1.0 packages tells an operator the wrong thing
pkgver=$(dpkg-deb -f "$ext" Version)
upstream=${pkgver%%-*}
[ "${upstream%.*}" = "$version" ] ||
	fail "package version $pkgver does not match the extension's default version $version (debian/changelog)"
[ "$("$qml" --version)" = "qml $upstream" ] ||
	fail "qml --version says \"$("$qml" --version)\", the packages are $upstream (QML_VERSION in client/include/qml.h)"
grep -q "\"version\": \"$upstream\"" META.json || fail "META.json does not carry version $upstream"
pass "packages $pkgver, libqml and the extension's default $version agree"

# --- every upgrade script of the source, from the package: the oldest
# version updated to the default one
upgrades=(qml--*--*.sql)
if [ -e "${upgrades[0]}" ]; then
	oldest=$(ls qml--*.sql | grep -v -- '--.*--' | sed 's/^qml--\(.*\)\.sql$/\1/' | sort -V | head -1)
	psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE qml_package_update" -c "\\c qml_package_update" \
		-c "CREATE EXTENSION qml VERSION '$oldest'" -c "ALTER EXTENSION qml UPDATE" ||
		fail "ALTER EXTENSION qml UPDATE from $oldest with the package's scripts"
	now=$(psql -X -At -d qml_package_update -c "SELECT extversion FROM pg_extension WHERE extname = 'qml'")
	[ "$now" = "$version" ] || fail "updated from $oldest to $now, not $version"
	pass "$oldest updated to $version with the package's scripts (${upgrades[*]})"
else
	echo "     (no upgrade script in the source: update from the package not checked)"
fi
