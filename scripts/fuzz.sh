#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzz/ (AddressSanitizer + libFuzzer) and runs each for a
# bounded time from its committed seed corpus. Exits non-zero on any finding (crash, leak
# invariant, timeout, out-of-memory) or build failure.
#
#   scripts/fuzz.sh [seconds]        each target for `seconds` (default 60), the CI run
#   scripts/fuzz.sh replay           each target once over its committed corpus (regressions)
#   FUZZ_TARGETS="json" scripts/fuzz.sh 600    some targets, longer
#
# Targets: vhost-user (message decoding and dispatch against a device, with published rings
# exercised), virtqueue (descriptor chains and packet copy over fuzzed guest memory), json
# (every request body and the config/state files through the real decoders and handlers).
# Findings and the growing working corpus go to fuzz-artifacts/<target>/ (git-ignored);
# committed seeds are in Fuzz/corpus/<target>/. A crash file replays with
#   SWIFT_BACKTRACE=enable=no .build-fuzz/debug/fuzz-<target> fuzz-artifacts/<target>/crash-...
# and minimizes with `... -minimize_crash=1 -max_total_time=60 <crash file>`.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
mode="${1:-60}"
scratch="${FUZZ_SCRATCH_PATH:-$root/.build-fuzz}"
artifacts="$root/fuzz-artifacts"
targets="${FUZZ_TARGETS:-vhost-user virtqueue json}"
export SWIFT_BACKTRACE=enable=no   # else Swift's crash reporter hangs and no crash file is written

mkdir -p "$artifacts"
for target in $targets; do
    echo "== building fuzz-$target"
    set +e
    swift build --package-path Fuzz --scratch-path "$scratch" -c debug \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld --product "fuzz-$target" > "$artifacts/build-$target.log" 2>&1
    status=$?
    set -e
    grep -vE "Cannot export local symbol|^\[[0-9]+/[0-9]+\] " "$artifacts/build-$target.log" | tail -20
    if [ "$status" -ne 0 ]; then echo "fuzz.sh: build of fuzz-$target failed (log $artifacts/build-$target.log)" >&2; exit 1; fi
done

failed=0
for target in $targets; do
    binary="$scratch/debug/fuzz-$target"
    seeds="$root/Fuzz/corpus/$target"
    out="$artifacts/$target"
    mkdir -p "$out/corpus"
    start=$(date +%s)
    if [ "$mode" = "replay" ]; then
        echo "== replaying $seeds through fuzz-$target"
        set +e
        "$binary" -runs=0 -timeout=25 "$seeds"/* > "$out/replay.log" 2>&1
        status=$?
        set -e
        log="$out/replay.log"
    else
        echo "== fuzzing fuzz-$target for $mode s"
        before=$(ls "$out" | grep -cE '^(crash|leak|timeout|oom|slow-unit)-' || true)
        set +e
        "$binary" -max_total_time="$mode" -timeout=25 -rss_limit_mb=3072 -print_final_stats=1 \
            -artifact_prefix="$out/" "$out/corpus" "$seeds" > "$out/fuzz.log" 2>&1
        status=$?
        set -e
        after=$(ls "$out" | grep -cE '^(crash|leak|timeout|oom)-' || true)
        if [ "$after" -gt "$before" ] && [ "$status" -eq 0 ]; then status=1; fi
        log="$out/fuzz.log"
    fi
    runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
    [ -z "$runs" ] && [ "$mode" = "replay" ] && runs=$(grep -c '^Executed ' "$log" || true)
    [ -z "$runs" ] && runs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' || echo "?")
    echo "   fuzz-$target: exit $status, $runs runs, $(( $(date +%s) - start )) s, log $log"
    if [ "$status" -ne 0 ]; then
        failed=1
        echo "!! fuzz-$target found something:" >&2
        grep -E 'INVARIANT|ERROR|SUMMARY|Test unit written|^    #[0-9]+ ' "$log" | head -40 >&2 || true
    fi
done
exit $failed
