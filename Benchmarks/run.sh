#!/usr/bin/env bash
# The one benchmark command: vhost-switchd against DPDK's own vhost back-end and OVS-DPDK (see
# Benchmarks/README.md). Builds the daemon (release) and the microbenchmarks, sets the
# machine up (scripts/setup.sh: packages, hugepages), then runs every benchmark one after
# the other (never two at once) and prints a table; JSON in Benchmarks/results/latest.json.
# Root is needed (hugepages, network namespaces). Tunables: see the top of bench.py, e.g.
#   BENCH_WINDOWS=2 BENCH_WINDOW_SECONDS=3 BENCH_ONLY=vhost Benchmarks/run.sh
#   BENCH_ONLY=segments Benchmarks/run.sh   (64 B untagged vs access VLAN vs trunk, issue 18)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
SCRATCH="${BENCH_SCRATCH_PATH:-$ROOT/.build-bench}"
MICRO_SCRATCH="${BENCH_MICRO_SCRATCH_PATH:-$ROOT/.build-bench-micro}"

if [ "$(id -u)" -ne 0 ]; then
    echo "Benchmarks/run.sh: needs root (hugepages, network namespaces, AF_PACKET)" >&2
    exit 1
fi

scripts/setup.sh
command -v gcc >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gcc libc6-dev </dev/null; }
command -v python3 >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 </dev/null; }
# OVS-DPDK, the third vhost<->vhost column (benchmarks only, so not in scripts/setup.sh). Its
# system service is never used: bench.py starts a private ovsdb-server + ovs-vswitchd. A
# failed install is not fatal: the table then says why the column is missing.
if [ "${BENCH_OVS:-1}" != "0" ]; then
    OVS_DPDK=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
    [ -x "$OVS_DPDK" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        openvswitch-switch-dpdk </dev/null || echo "Benchmarks/run.sh: openvswitch-switch-dpdk not installed" >&2
    # ovs-vswitchd is an alternative; the plain build has no DPDK support.
    [ -x "$OVS_DPDK" ] && update-alternatives --set ovs-vswitchd "$OVS_DPDK" >/dev/null || true
fi

# Other engineers may edit Sources/ while we build: retry a build that saw a file change.
build() {
    local attempt
    for attempt in 1 2 3; do
        if "$@"; then return 0; fi
        echo "Benchmarks/run.sh: build failed (attempt $attempt), retrying in 5 s" >&2
        sleep 5
    done
    return 1
}

echo "Benchmarks/run.sh: building vhost-switchd (release, $SCRATCH)" >&2
build swift build -c release --scratch-path "$SCRATCH" --product vhost-switchd
DAEMON="$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/vhost-switchd"

MICRO=""
if [ -z "${BENCH_ONLY:-}" ] || [[ ",$BENCH_ONLY," == *",micro,"* ]]; then
    echo "Benchmarks/run.sh: building microbenchmarks (release, $MICRO_SCRATCH)" >&2
    if build swift build -c release --package-path Benchmarks/Micro --scratch-path "$MICRO_SCRATCH"; then
        MICRO="$(swift build -c release --package-path Benchmarks/Micro --scratch-path "$MICRO_SCRATCH" --show-bin-path)/vhost-switch-micro"
    else
        echo "Benchmarks/run.sh: microbenchmarks did not build; skipping them" >&2
    fi
fi

TAG="vsb$$"
WORKDIR="$(mktemp -d /tmp/${TAG}.XXXX)"
cleanup() {
    # Unique names: only what this run created.
    ip link del "${TAG}k0" >/dev/null 2>&1 || true
    ip netns del "${TAG}ns" >/dev/null 2>&1 || true
    if [ -z "${BENCH_KEEP_WORKDIR:-}" ]; then rm -rf "$WORKDIR"; else echo "Benchmarks/run.sh: logs kept in $WORKDIR" >&2; fi
}
trap cleanup EXIT INT TERM

gcc -O2 -Wall -o "$WORKDIR/rawgen" Benchmarks/tools/rawgen.c
gcc -O2 -Wall -pthread -o "$WORKDIR/core_latency" Benchmarks/tools/core_latency.c
gcc -O2 -Wall -o "$WORKDIR/xdpdrop" Benchmarks/tools/xdpdrop.c

BENCH_DAEMON="$DAEMON" BENCH_RAWGEN="$WORKDIR/rawgen" BENCH_CORE_LATENCY="$WORKDIR/core_latency" BENCH_XDPDROP="$WORKDIR/xdpdrop" \
    BENCH_MICRO="$MICRO" BENCH_TAG="$TAG" BENCH_WORKDIR="$WORKDIR" \
    python3 Benchmarks/bench.py
