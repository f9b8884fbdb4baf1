#!/usr/bin/env bash
# Training throughput with and without --bf16 (`iclab bench`, the per-step work of `iclab train`)
# on the paper and the small configuration, fp32 and bf16 runs alternating so both see the same
# machine; prints each run and the median ratio bf16/fp32 per config, then the linear layers'
# kernel GFLOP/s (build/bench/bench_bf16). Needs a CPU with AMX-BF16 (docs/performance.md).
# Usage: bench/run_bf16_bench.sh [ROUNDS=3]   WAIT_IDLE=1: before each run wait (at most ~3 minutes)
# until the CPUs were at least 90% idle over two seconds (a shared machine).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
BUILD=${BUILD:-build}
ICLAB=$BUILD/iclab
make -j2 "$ICLAB" "$BUILD/bench/bench_bf16" >/dev/null
. bench/blas_core.sh
configs=("paper:--layers 12 --width 256 --heads 8 --batch 128 --points 20 --dim 16 --threads 2 --steps 5"
         "small:--layers 4 --width 64 --heads 4 --batch 64 --points 20 --dim 16 --threads 2 --steps 200")
rate() { sed -n 's/.*steps_per_s=\([0-9.]*\).*/\1/p'; }
# percent of CPU time not idle over 2 s, from /proc/stat's first line (user nice system idle iowait ...)
busy() {
  local a b sa=0 sb=0 i
  a=($(head -1 /proc/stat)); sleep 2; b=($(head -1 /proc/stat))
  for i in 1 2 3 4 5 6 7 8; do sa=$((sa + a[i])); sb=$((sb + b[i])); done
  echo $(( 100 - 100 * ((b[4] + b[5]) - (a[4] + a[5])) / (sb - sa + 1) ))
}
wait_idle() {
  [ "${WAIT_IDLE:-0}" = 1 ] || return 0
  local n=0; while [ "$(busy)" -gt 10 ] && [ $n -lt 90 ]; do n=$((n + 1)); done
}
for entry in "${configs[@]}"; do
  name=${entry%%:*}; args=${entry#*:}
  ratios=()
  for r in $(seq "$ROUNDS"); do
    wait_idle; fl=$("$ICLAB" bench $args); echo "  fp32: $fl"; f=$(echo "$fl" | rate)
    wait_idle; bl=$("$ICLAB" bench $args --bf16); echo "  bf16: $bl"; b=$(echo "$bl" | rate)
    ratios+=("$(awk -v a="$b" -v b="$f" 'BEGIN {printf "%.2f", a / b}')")
    echo "$name round $r: fp32 $f steps/s, bf16 $b steps/s, ratio ${ratios[-1]}"
  done
  printf '%s\n' "${ratios[@]}" | sort -n | awk -v n="$name" '{a[NR]=$1} END {print n ": median ratio bf16/fp32 = " a[int((NR+1)/2)]}'
done
wait_idle
"$BUILD/bench/bench_bf16" 2 20
