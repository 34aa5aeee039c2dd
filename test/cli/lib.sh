# test/cli/lib.sh: sourced by the qml command's suites (run.sh, migrate.sh):
# ok/bad bookkeeping, psql, and expect/has, which run the command and look
# at what it said, and gone, which waits for a killed command to go.
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1${2:+: $2}"; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
# expect NAME RC COMMAND...: the command exits with RC (output in $out)
expect() {
	local name=$1 want=$2; shift 2
	out=$("$@" 2>&1); local rc=$?
	if [ "$rc" = "$want" ]; then ok "$name"; else bad "$name" "exit $rc, want $want: $(echo "$out" | head -3 | tr '\n' ' ')"; fi
}
has() { case "$out" in *"$1"*) ok "$2";; *) bad "$2" "no \"$1\" in: $(echo "$out" | head -5 | tr '\n' ' ')";; esac; }
# gone PATTERN: within 5 s no process's command line matches PATTERN (a
# command killed by the worker may outlive the worker's exit a moment; one
# left running for good still fails)
gone() {
	local i
	for i in $(seq 1 50); do pgrep -f "$1" >/dev/null || return 0; sleep 0.1; done
	return 1
}
