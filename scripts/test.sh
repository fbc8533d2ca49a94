#!/usr/bin/env bash
# Every check of `make test`: static checks (ansible-lint, ansible-test sanity) run beside
# pytest (the testpaths of pytest.ini: the collection's unit and integration tests, the lab's own in tests/lab,
# and the molecule scenarios); each stage's time is printed.
# pytest runs two pytest-xdist workers, each with a lab of its own (tests/conftest.py), and gives
# each worker whole test files (--dist loadfile): a file's tests share module fixtures and run in order.
# The 25 slowest tests are listed at the end, to keep the two workers balanced.
# Arguments go to pytest after these and win (-n 0 runs in one process, with one lab).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
LOGS=$ROOT/tests/output/logs
mkdir -p "$LOGS"

stage() {  # stage NAME COMMAND... : run, time, keep the exit code in $LOGS/NAME.rc
    local name=$1; shift
    local began=$SECONDS
    "$@" > "$LOGS/$name.log" 2>&1
    local rc=$?
    echo "$rc" > "$LOGS/$name.rc"
    echo "$name $((SECONDS - began))" > "$LOGS/$name.time"
}

static_checks() {
    # ansible-lint also reads ~/.ansible/collections, where molecule installs a copy of this
    # collection; a home of its own keeps it on the checkout's code only.
    mkdir -p "$ROOT/.cache/lint-home"
    stage ansible-lint env HOME="$ROOT/.cache/lint-home" ansible-lint
    stage sanity scripts/sanity.sh
}

began=$SECONDS
static_checks &
static_pid=$!

pytest_began=$SECONDS
pytest -p no:cacheprovider -n 2 --dist loadfile --durations=25 "$@"
pytest_rc=$?
echo "stage pytest: $((SECONDS - pytest_began))s (exit $pytest_rc)"

wait "$static_pid"
failed=0
[ "$pytest_rc" -eq 0 ] || failed=1
for name in ansible-lint sanity; do
    rc=$(cat "$LOGS/$name.rc")
    read -r _ seconds < "$LOGS/$name.time"
    if [ "$rc" -ne 0 ]; then
        failed=1
        echo "--- $name failed (exit $rc); its output:"
        cat "$LOGS/$name.log"
    fi
    echo "stage $name: ${seconds}s (exit $rc)"
done
echo "make test: $((SECONDS - began))s in all"
exit "$failed"
