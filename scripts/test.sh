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
# The output is kept so a failure's lines can be repeated at the very end: CI shows only the
# tail of a run, and the failing assertion is otherwise hundreds of lines above it.
test_log="$(mktemp -t vhost-switch-test.XXXXXX)"
trap 'rm -f "$test_log"' EXIT
set +e
swift test "${swift_flags[@]}" "$@" 2>&1 | tee "$test_log"
status=${PIPESTATUS[0]}
set -e

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
    echo "test: the failures, repeated from the output above:" >&2
    grep -E "error: |' failed \(|Fatal error|signal code" "$test_log" | tail -n 40 >&2 || true
    echo "test: FAILED (swift test exit status $status)" >&2
    exit "$status"
fi

# The REST API against its OpenAPI description (schemathesis from PyPI).
bin_path="$(swift build "${swift_flags[@]}" --show-bin-path)"
echo "test: schemathesis against openapi/vhost-switch.yaml"
scripts/api-schemathesis.sh "$bin_path/vhost-switchd"

# Sanitizers (VHOST_SWITCH_SANITIZERS=0 skips them): the protocol, ring and dataplane unit
# tests under AddressSanitizer, the concurrent reconfiguration tests under ThreadSanitizer.
# XCTest itself leaks on this toolchain, so LeakSanitizer is off.
if [ "${VHOST_SWITCH_SANITIZERS:-1}" != 0 ]; then
    echo "test: swift test --sanitize=address (protocol, rings, dataplane)"
    ASAN_OPTIONS=detect_leaks=0 swift test --sanitize=address --scratch-path .build-asan \
        --filter 'VhostSystemTests|VirtioTests|VhostUserTests|DataplaneTests'
    echo "test: swift test --sanitize=thread (reconfiguration while forwarding)"
    swift test --sanitize=thread --scratch-path .build-tsan \
        --filter 'DataplaneTests.SwitchForwardingTests|DataplaneTests.SwitchReconfigurationTests|DataplaneTests.SwitchTwoThreadReassignmentTests'
fi

# Fuzzers for their bounded time (VHOST_SWITCH_FUZZ_SECONDS, 60 by default; 0 skips).
if [ -x scripts/fuzz.sh ] && [ "${VHOST_SWITCH_FUZZ_SECONDS:-60}" != 0 ]; then
    echo "test: fuzzers, ${VHOST_SWITCH_FUZZ_SECONDS:-60} s each"
    scripts/fuzz.sh "${VHOST_SWITCH_FUZZ_SECONDS:-60}"
fi
echo "test: all tests passed"
