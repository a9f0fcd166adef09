#!/usr/bin/env bash
# The one command that sets everything up and runs every test: machine set-up
# (scripts/setup.sh: packages, hugepages), then `swift build` and `swift test` (unit and
# integration tests; integration tests skip themselves, with the reason printed, when not
# root or when dpdk-testpmd or free hugepages are missing). Exits non-zero on any failure.
#
# Extra arguments go to `swift test` (e.g. scripts/test.sh --filter IntegrationTests).
# VHOST_SWITCH_SCRATCH_PATH=<dir> builds in <dir> instead of .build (for parallel builds).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh

swift_flags=()
if [ -n "${VHOST_SWITCH_SCRATCH_PATH:-}" ]; then
    swift_flags+=(--scratch-path "$VHOST_SWITCH_SCRATCH_PATH")
fi

echo "test: swift build ${swift_flags[*]:-}"
swift build "${swift_flags[@]}"

# Serial XCTest (no --parallel) so the standard summary lines are printed:
#   Test Suite 'All tests' passed at ...
#        Executed N tests, with M failures (0 unexpected) in ... seconds
echo "test: swift test ${swift_flags[*]:-} $*"
status=0
swift test "${swift_flags[@]}" "$@" || status=$?

# Integration tests start dpdk-testpmd. testpmd quits by itself when its stdin (a pipe
# from the test process) closes, except while it still blocks in start-up (a server-mode
# virtio-user waiting for its back-end). Stop exactly those the harness started for a test
# process that no longer exists: their --file-prefix is vst<test pid><role><n>.
for pid in $(pgrep -x dpdk-testpmd || true); do
    prefix="$(tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | grep -A1 -x -- '--file-prefix' | tail -n1 || true)"
    if [[ "$prefix" =~ ^vst([0-9]+)(fe|be|tp)[0-9]+$ ]] && [ ! -d "/proc/${BASH_REMATCH[1]}" ]; then
        echo "test: stopping orphaned harness dpdk-testpmd $pid (file prefix $prefix)" >&2
        kill "$pid" 2>/dev/null || true
    fi
done

if [ "$status" -ne 0 ]; then
    echo "test: FAILED (swift test exit status $status)" >&2
    exit "$status"
fi
echo "test: all tests passed"
