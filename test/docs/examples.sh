#!/usr/bin/env bash
# test/docs/examples.sh: the "docs_examples" suite. Runs the sql blocks and
# the blocks marked `sh test` of README.md and docs/*.md against the test
# cluster (test/docs/examples.py says how), after checking that a broken
# block of each kind fails the run.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
unset DATABASE_URL QML_DASHBOARD_TOKEN QML_DASHBOARD_PUBLIC_URL
make -s client/qml client/libqml.so || exit 1
python3 test/docs/examples.py --self-test || exit 1
exec python3 test/docs/examples.py
