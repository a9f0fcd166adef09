#!/usr/bin/env bash
# Runs schemathesis against a live vhost-switchd from openapi/vhost-switch.yaml and fails
# on any 5xx, schema or status mismatch, or crash of the daemon.
#
#   scripts/api-schemathesis.sh [path/to/vhost-switchd]   (default: .build/debug/vhost-switchd)
#
# Env: SCHEMATHESIS_MAX_EXAMPLES (default 30), SCHEMATHESIS_WORKERS (default 1).
# Skips (exit 0 with a printed reason) when schemathesis cannot be installed.
set -uo pipefail
cd "$(dirname "$0")/.."
BINARY="${1:-.build/debug/vhost-switchd}"
SPEC=openapi/vhost-switch.yaml

if ! command -v schemathesis >/dev/null 2>&1; then
    echo "schemathesis: not found, installing with pip"
    python3 -m pip install -q schemathesis >/dev/null 2>&1 || pip install -q schemathesis >/dev/null 2>&1 || true
    hash -r
fi
if ! command -v schemathesis >/dev/null 2>&1; then
    echo "SKIP: schemathesis is not installed and 'pip install schemathesis' failed"
    exit 0
fi
if [ ! -x "$BINARY" ]; then
    echo "FAIL: $BINARY is not built (swift build first)" >&2
    exit 1
fi

WORK="$(mktemp -d /tmp/vs-schemathesis.XXXXXX)"
PORT=$(( 20000 + RANDOM % 20000 ))
# As root, the daemon and schemathesis run in a network namespace of their own (only lo in
# it): a generated af-packet or af-xdp port then never opens a socket or attaches an XDP
# program on one of the host's interfaces (eth0 of a CI machine).
NS=""
IN_NS=()
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1 && ip netns add "vs-schema-$$" 2>/dev/null; then
    NS="vs-schema-$$"
    IN_NS=(ip netns exec "$NS")
    "${IN_NS[@]}" ip link set lo up
    echo "schemathesis: daemon and client in network namespace $NS"
fi
"${IN_NS[@]}" "$BINARY" --run-dir "$WORK/run" --socket-dir "$WORK/s" --state-dir "$WORK/state" --pmd-threads 1 \
    --listen "127.0.0.1:$PORT" --insecure-tcp --log-level warning >"$WORK/daemon.log" 2>&1 &
DAEMON=$!
cleanup() {
    kill "$DAEMON" 2>/dev/null
    wait "$DAEMON" 2>/dev/null
    rm -rf "$WORK"
    [ -n "$NS" ] && ip netns del "$NS" 2>/dev/null
}
trap cleanup EXIT

for _ in $(seq 1 100); do
    "${IN_NS[@]}" curl -sf "http://127.0.0.1:$PORT/v1/health" >/dev/null 2>&1 && break
    sleep 0.1
done
if ! "${IN_NS[@]}" curl -sf "http://127.0.0.1:$PORT/v1/health" >/dev/null; then
    echo "FAIL: the daemon did not come up" >&2
    cat "$WORK/daemon.log" >&2
    exit 1
fi

# Accept: application/json makes GET /v1/events return the history instead of an endless
# stream. Checks: everything but positive_data_acceptance (a schema-valid create can still
# be refused for state reasons: a name or socket already taken is a documented 409) and
# use_after_free/ensure_resource_availability (a stateful fuzzer deleting the same
# generated names is expected to see 404s).
"${IN_NS[@]}" schemathesis run "$SPEC" --url "http://127.0.0.1:$PORT" \
    --checks all --exclude-checks positive_data_acceptance,ensure_resource_availability,use_after_free \
    -H "Accept: application/json" \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-30}" --workers "${SCHEMATHESIS_WORKERS:-1}" \
    --request-timeout 10 --no-color --suppress-health-check all
RESULT=$?

if ! kill -0 "$DAEMON" 2>/dev/null; then
    echo "FAIL: vhost-switchd died during the run" >&2
    cat "$WORK/daemon.log" >&2
    exit 1
fi
if grep -q "Fatal error\|Segmentation\|assertion" "$WORK/daemon.log"; then
    echo "FAIL: the daemon log shows a crash" >&2
    cat "$WORK/daemon.log" >&2
    exit 1
fi
exit $RESULT
