#!/usr/bin/env bash
# test/bad_input/run.sh: the "bad_input" suite. Every row of cases.tsv (bad
# SQL calls, qml command lines, REST requests) refused as it says, with a
# message, nothing changed; and docs/errors.md's error table is the one
# gen_reference.py makes from the catalogue. run.py says how.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
unset DATABASE_URL QML_DASHBOARD_TOKEN QML_DASHBOARD_PUBLIC_URL
make -s client/qml || exit 1
exec python3 test/bad_input/run.py --check-reference
