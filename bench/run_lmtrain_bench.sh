#!/usr/bin/env bash
# Training throughput of the mini-LM (`iclab train --task lm --preset minilm`: 4 layers, width 128,
# 4 heads, 2 kv heads, FFN 352, ctx 1024, batch 2, vocabulary 4096 as mkcorpus's default) in iclab
# (build/bench/bench_lmtrain: icl_lmtrain_step on pre-generated random batches) against the same
# model in PyTorch (bench/lmtrain_torch.py), 2 threads each, alternating runs in one session so
# both see the same machine. Prints each run, each round's ratio and the median ratio.
# Usage: bench/run_lmtrain_bench.sh [ROUNDS] [STEPS]   (defaults 3 and 20; needs python3-torch:
# ICLAB_DEV=1 scripts/install-deps.sh). BUILD=dir picks another build folder; WAIT_IDLE=1 waits
# for an idle machine before each run (below).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
STEPS=${2:-20}
BUILD=${BUILD:-build}
BENCH=$BUILD/bench/bench_lmtrain
# The PyTorch peer runs with OPENBLAS_NUM_THREADS=1 (PEER_ENV overrides; PEER_ENV= runs it as the
# shared README's command does): Debian's PyTorch calls a pthread OpenBLAS that starts its own
# threads beside torch's OpenMP ones, and on 2 cores the two pools spinning against each other made
# the peer 1.3-4x slower than with one BLAS thread (docs/performance.md). We compare against the
# peer's best configuration.
PEER_ENV=${PEER_ENV-OPENBLAS_NUM_THREADS=1}
make -j2 "$BENCH" "$BUILD/iclab" >/dev/null
ICLAB=$BUILD/iclab . bench/blas_core.sh
args="--layers 4 --width 128 --heads 4 --kv-heads 2 --ctx 1024 --batch 2 --vocab 4096 --threads 2 --warmup 3 --steps $STEPS"
rate() { sed -n 's/.*steps_per_s=\([0-9.]*\).*/\1/p'; }
# On a shared machine (WAIT_IDLE=1): before each run, wait (at most 3 minutes) until the CPUs
# were at least 90% idle over two seconds, so that neither side runs beside another job.
busy() {  # percent of CPU time not idle over 2 s, from /proc/stat
  local a b; a=($(head -1 /proc/stat)); sleep 2; b=($(head -1 /proc/stat))
  local ta=0 tb=0 i; for i in 1 2 3 4 5 6 7 8; do ta=$((ta + a[i])); tb=$((tb + b[i])); done
  echo $(( 100 - 100 * ((b[4] + b[5]) - (a[4] + a[5])) / (tb - ta + 1) ))
}
wait_idle() {
  [ "${WAIT_IDLE:-0}" = 1 ] || return 0
  local t=0; while [ "$(busy)" -gt 10 ] && [ $t -lt 90 ]; do t=$((t + 1)); done
}
ratios=()
for r in $(seq "$ROUNDS"); do
  # iclab sets GOMP_SPINCOUNT=10000 for itself (docs/performance.md); the bench binary gets it here
  wait_idle
  il=$(GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-10000} "$BENCH" $args); echo "  iclab: $il"; i=$(echo "$il" | rate)
  wait_idle
  tl=$(env $PEER_ENV /usr/bin/python3 bench/lmtrain_torch.py $args); echo "  torch: $tl"; t=$(echo "$tl" | rate)
  ratios+=("$(awk -v a="$i" -v b="$t" 'BEGIN {printf "%.2f", a / b}')")
  echo "round $r: iclab $i steps/s, torch $t steps/s, ratio ${ratios[-1]}"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print "mini-LM: median ratio iclab/torch = " a[int((NR+1)/2)] " (target >= 3)"}'
