#!/bin/sh
# run.sh BINDIR FUZZDIR SECONDS JOBS TARGET... - run each libFuzzer target
# for SECONDS (JOBS at a time) from the seeds in FUZZDIR/corpus/TARGET, and
# print per target its executions, exec/s, coverage and crashes.  What a
# run finds goes to fuzz-out/TARGET/ (new inputs in corpus/, crashing ones
# in crashes/, libFuzzer's output in log).  Exits 1 if any target crashed
# or did not run.
set -eu
# libFuzzer's status lines may end with binary dictionary entries: parse
# them as bytes.
LC_ALL=C
export LC_ALL

if [ "${1:-}" = --one ]; then
    # One target (run in parallel by the driver below).
    bin=$2 fuzzdir=$3 seconds=$4 t=$5
    out=fuzz-out/$t
    mkdir -p "$out/corpus" "$out/crashes"
    rm -f "$out/crashes/"*
    status=0
    # New inputs go into the first directory (the build tree's), never into
    # the seeds kept in the source tree.
    "$bin/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 \
        -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$out/crashes/" \
        "$out/corpus" "$fuzzdir/corpus/$t" >"$out/log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/log")
    last=$(grep -aE '^#[0-9]+' "$out/log" | tail -n 1 | sed 's/ MS: .*//')
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    crashes=$(find "$out/crashes" -type f | wc -l)
    # No final statistics: the target never ran properly.
    [ -n "$execs" ] || [ "$status" != 0 ] || status=1
    result=ok
    [ "$status" = 0 ] || result="FAILED (exit $status, see $out/log)"
    printf '%-14s %12s %8s %6s %7s %7s %s\n' "$t" "${execs:-?}" \
        "${rate:-?}" "${cov:-?}" "${ft:-?}" "$crashes" "$result" \
        >"$out/summary"
    exit 0
fi

bin=$1 fuzzdir=$2 seconds=$3 jobs=$4
shift 4
for t in "$@"; do
    rm -f "fuzz-out/$t/summary"
    echo "$t"
done | xargs -P "$jobs" -I{} sh "$0" --one "$bin" "$fuzzdir" "$seconds" {}
printf '%-14s %12s %8s %6s %7s %7s %s\n' target executions exec/s cov ft \
    crashes result
status=0
for t in "$@"; do
    if [ -f "fuzz-out/$t/summary" ]; then
        cat "fuzz-out/$t/summary"
        grep -q ' ok$' "fuzz-out/$t/summary" || status=1
    else
        echo "$t: did not run"
        status=1
    fi
    for c in "fuzz-out/$t/crashes/"*; do
        [ -f "$c" ] || continue
        echo "  crash: $c"
        status=1
    done
done
exit $status
