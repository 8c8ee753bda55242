#!/usr/bin/env bash
# A quick pass of the benchmark suite, then `bench-report` rewrites docs/benchmarks.md and
# docs/benchmarks-roundtrip.png from it. Takes a few minutes; run it on an otherwise idle
# machine (the spinning transports need both CPUs at once).
#
#   benches/report.sh                 # all groups
#   BENCH_PERCENTILE_MS=300 benches/report.sh   # shorter percentile loops
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=${CARGO_TARGET_DIR:-target}
# Absolute: cargo runs each bench from its package's directory, not from here.
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
criterion_dir="$target_dir/criterion"
# Kept after the run: `cargo run --release -p benches --bin bench-report -- RESULTS
# CRITERION_DIR docs` renders the report again without measuring again.
results="$target_dir/bench-results.tsv"
rm -f "$results"
export BENCH_RESULTS="$results"

groups=(transport_roundtrip stream wake_from_idle echo_roundtrip find_block notifications wallet_sync)
for group in "${groups[@]}"; do
    # Only this run's estimates may go into the report.
    rm -rf "${criterion_dir:?}/$group"
done
for group in "${groups[@]}"; do
    [ -f "benches/benches/$group.rs" ] || continue
    echo "--- $group"
    cargo bench -p benches --bench "$group" -- --warm-up-time 1 --measurement-time 2 --noplot
done

echo "--- writing docs/benchmarks.md"
cargo run --quiet --release -p benches --bin bench-report -- "$results" "$criterion_dir" docs
echo "wrote docs/benchmarks.md and docs/benchmarks-roundtrip.png"
