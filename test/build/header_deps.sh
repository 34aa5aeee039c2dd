#!/usr/bin/env bash
# test/build/header_deps.sh: a hand `make` rebuilds what a header change
# touches. For every extension source src/X.c and every header of src/ it
# includes, `make -q -W src/H.h` (as if the header had just changed,
# without touching it) finds src/X.o and its JIT bitcode src/X.bc out of
# date, while both are up to date without -W.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
make -s all >/dev/null || exit 1
objs=$(make -s -f Makefile -f - <<<'print-objs: ; @echo $(OBJS)' print-objs)
pass=0 fail=0
for o in $objs; do
	c=${o%.o}.c
	for t in "$o" "${o%.o}.bc"; do
		[ -f "$t" ] || continue	# no bitcode without LLVM
		if ! make -q "$t"; then
			echo "FAIL $t is out of date right after make"; fail=$((fail + 1)); continue
		fi
		for h in $(sed -n 's/^#include "\(.*\)"$/\1/p' "$c"); do
			[ -f "src/$h" ] || continue
			if make -q -W "src/$h" "$t"; then
				echo "FAIL $t is not rebuilt when src/$h changes"; fail=$((fail + 1))
			else
				pass=$((pass + 1))
			fi
		done
	done
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
