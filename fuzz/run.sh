#!/usr/bin/env bash
# Run every cargo-fuzz target of lpsim for SECONDS each (default 600), one after another, on
# one core. The fuzzer needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain take
# them. Seeds come from fuzz/seeds/<target>; the growing corpus is kept in fuzz/corpus/<target>
# (not committed) and any crashing input lands in fuzz/artifacts/<target>/.
#
#   cargo install cargo-fuzz        # once
#   fuzz/run.sh 600                 # all targets, 10 minutes each
#   fuzz/run.sh 60 npy_data         # one target, one minute
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
targets=("$@")
failed=()
if [ ${#targets[@]} -eq 0 ]; then
  targets=(format_spec arch_json workload_json sweep_spec csv_data npy_data topology)
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "== $t: ${seconds}s"
  cargo fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 ||
    failed+=("$t")
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "crashes in: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
