# test/lib/wait_sql.sh: sourced by the suites that wait for a state in the
# database (test/cli/run.sh, test/examples/run.sh); they define q() (psql
# on their database) first.
# wait_sql SQL WANT SECONDS: polls until the query returns WANT
wait_sql() {
	local i got
	for i in $(seq 1 $(($3 * 10))); do
		got=$(q -c "$1" 2>/dev/null)
		[ "$got" = "$2" ] && return 0
		sleep 0.1
	done
	echo "  (waited for \"$1\" = $2, last got \"$got\")"
	return 1
}
