#!/usr/bin/env bash
# test/fuzz/server_sanitized.sh: the extension itself under AddressSanitizer
# and UndefinedBehaviorSanitizer, in a running server.
#
#   test/fuzz/server_sanitized.sh [SECONDS]   (default: FUZZ_SECONDS or 10)
#
# enqueue_batch's element reader and the cron parser run inside the backend,
# on PostgreSQL's own values, so they are checked where they run: qml.so is
# built again with clang's -fsanitize=address,undefined into a scratch copy
# of the PostgreSQL install (the normal build and install are untouched), a
# throwaway cluster on its own port preloads it, and then
#   - pg_regress and the isolation specs run against it (every SQL function,
#     the triggers, the direct writes, the scheduler in the background);
#   - the batch fuzz target (test/fuzz/batch_fuzz.c) sends it SECONDS of
#     generated batches, and recurring jobs with generated schedules;
# and the run fails on any sanitizer report in the server's log, or any
# backend that died of a signal.
#
# Why the runtime is not preloaded: PostgreSQL's programs hang in
# bindtextdomain() at start when libasan or clang's ASan runtime is in
# LD_PRELOAD (Debian 12, both runtimes). qml.so names the runtime as a
# dependency instead and verify_asan_link_order=0 lets it load with the
# library. Stack and global memory of qml's code are checked and every
# undefined behaviour is fatal; memory from palloc is PostgreSQL's own
# allocator and is not poisoned, and malloc stays libc's.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
seconds=${1:-${FUZZ_SECONDS:-10}}
. scripts/env.sh
build=$root/test/fuzz/build/server-san
pg=$build/pg
port=$((QML_PGPORT + 21))
dir=/tmp/qml-pg-san-$port
asan_rt=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
[ -f "$asan_rt" ] || { echo "no clang ASan runtime ($asan_rt)"; exit 1; }
sanitize='-fsanitize=address,undefined -fno-sanitize-recover=undefined -shared-libasan -fno-omit-frame-pointer'

# --- a scratch install: PostgreSQL's files, then the sanitized qml.so
bindir=$("$PGBIN/pg_config" --bindir)
sharedir=$("$PGBIN/pg_config" --sharedir)
rm -rf "$build" && mkdir -p "$pg/usr/lib/postgresql" "$pg/usr/share/postgresql" "$build/src"
cp -a "$(dirname "$bindir")" "$pg/usr/lib/postgresql/" &&
	cp -a "$sharedir" "$pg/usr/share/postgresql/" &&
	ln -s /usr/include "$pg/usr/include" || exit 1
spg=$pg/usr/lib/postgresql/$(basename "$(dirname "$bindir")")/bin
cp -a src Makefile qml.control qml--*.sql "$build/src/"
# clang reads gcc's flags from PGXS: the unknown ones are not ours to fix
if ! make -s -C "$build/src" PG_CONFIG="$spg/pg_config" CC=clang with_llvm=no \
	COPT="$sanitize -Wno-ignored-attributes -Wno-unknown-warning-option -Wno-compound-token-split-by-macro" \
	PG_LDFLAGS="$sanitize" install >"$build/build.log" 2>&1; then
	tail -30 "$build/build.log"; echo "sanitized build failed"; exit 1
fi
grep -q __asan_report <(nm -D "$build/src/qml.so") || { echo "qml.so is not instrumented"; exit 1; }

# --- a throwaway cluster that loads it
owner() { if [ "$(id -u)" = 0 ]; then su "$QML_PGUSER_OS" -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
stop() {
	[ -f "$dir/log" ] && cp "$dir/log" "$build/server.log"
	[ -f "$dir/data/postmaster.pid" ] && owner "'$spg/pg_ctl' -D '$dir/data' -m immediate -w -t 30 stop" >/dev/null 2>&1
	rm -rf "$dir"
}
stop; trap stop EXIT
mkdir -p "$dir/sock"; [ "$(id -u)" = 0 ] && chown -R "$QML_PGUSER_OS": "$dir"
owner "'$spg/initdb' -D '$dir/data' -A trust -U postgres -E UTF8 --locale=C.UTF-8" >"$build/initdb.log" 2>&1 ||
	{ cat "$build/initdb.log"; exit 1; }
{ cat test/qml.conf; printf "listen_addresses = ''\nport = %s\nunix_socket_directories = '%s/sock'\n" "$port" "$dir"; } \
	>>"$dir/data/postgresql.conf"
# postgres, not pg_ctl, gets the environment: pg_ctl would pass it on, but
# the sanitizers' options belong to the server alone
owner "cd '$dir' && LD_LIBRARY_PATH='$(dirname "$asan_rt")' \
	ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0:abort_on_error=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	nohup '$spg/postgres' -D '$dir/data' >'$dir/log' 2>&1 </dev/null &"
for _ in $(seq 1 60); do "$spg/pg_isready" -q -h "$dir/sock" -p "$port" && break; sleep 0.5; done
"$spg/pg_isready" -q -h "$dir/sock" -p "$port" || { tail -20 "$dir/log"; echo "sanitized server did not start"; exit 1; }
export PGHOST=$dir/sock PGPORT=$port PGUSER=postgres

failed=0
echo "# pg_regress and isolation specs on the sanitized qml.so"
make -s installcheck PG_CONFIG="$spg/pg_config" >"$build/installcheck.log" 2>&1 ||
	{ tail -30 "$build/installcheck.log"; echo "# installcheck FAILED"; failed=1; }
grep -E 'tests (passed|failed)' "$build/installcheck.log"

echo "# batch fuzz target on the sanitized qml.so: $seconds s"
make -s fuzz-batch FUZZ_SECONDS="$seconds" || failed=1

echo "# recurring jobs with generated schedules on the sanitized qml.so"
psql -X -q -d qml_fuzz -v ON_ERROR_STOP=1 >"$build/cron.log" 2>&1 <<'SQL' ||
DO $$
DECLARE
	spec text;
	took int := 0;
BEGIN
	FOR g IN 1..600 LOOP
		spec := (ARRAY['*', '*/7', '1-5', '0', '59', '3,9,21', '*/0', '61', '1-', 'L', '5-2', ''])[1 + (g * 7) % 12]
			|| ' ' || (ARRAY['*', '*/3', '0-23', '24', '5', '23/1'])[1 + g % 6]
			|| ' ' || (ARRAY['*', '31', '29', '1-31/2', '0'])[1 + (g / 2) % 5]
			|| ' ' || (ARRAY['*', '2', '12', '13', 'FEB'])[1 + (g / 5) % 5]
			|| ' ' || (ARRAY['*', '0-6', '7', 'MON-FRI', '1,3,5'])[1 + (g / 3) % 5];
		IF g % 10 = 0 THEN
			spec := (ARRAY['@hourly', '@every 3 s', '1 day -86399 seconds', '@yearly', '@reboot'])[1 + (g / 10) % 5];
		END IF;
		BEGIN
			PERFORM qml.add_recurring('san_' || g, spec, 'noop');
			took := took + 1;
		EXCEPTION WHEN others THEN
			NULL;	-- refused: the refusal's code is checked elsewhere
		END;
	END LOOP;
	RAISE NOTICE 'accepted % of 600 schedules', took;
END
$$;
UPDATE qml.recurring SET next_run_at = now() - interval '1 s';
SELECT qml.maintain();
SQL
	{ cat "$build/cron.log"; echo "# recurring jobs FAILED"; failed=1; }

if grep -nE 'AddressSanitizer|runtime error:|terminated by signal' "$dir/log"; then
	echo "# the server's log has sanitizer reports or dead backends (kept as $build/server.log)"; failed=1
else
	echo "ok   no sanitizer report and no backend lost in the server's log ($(wc -l <"$dir/log") lines)"
fi
exit $failed
