#!/usr/bin/env bash
# Training throughput of `iclab train` (via `iclab bench`, the same per-step work) against the
# PyTorch peer ../shared/bench/torch_icl.py on the same shapes, 2 threads each, alternating runs in
# one session so both see the same machine. Prints each run and the median ratio per config.
# Usage: bench/run_train_bench.sh [ROUNDS]   (needs python3-torch; ICLAB_DEV=1 scripts/install-deps.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
PEER=${PEER:-../shared/bench/torch_icl.py}
ICLAB=${ICLAB:-build/iclab}
# The PyTorch peer runs with OPENBLAS_NUM_THREADS=1 (PEER_ENV overrides; PEER_ENV= runs it as the
# shared README's command does): Debian's PyTorch calls a pthread OpenBLAS that starts its own
# threads beside torch's OpenMP ones, and on 2 cores the two pools spinning against each other made
# the peer 1.3-4x slower than with one BLAS thread (docs/performance.md). We compare against the
# peer's best configuration.
PEER_ENV=${PEER_ENV-OPENBLAS_NUM_THREADS=1}
[ -x "$ICLAB" ] || make -j2 >/dev/null
. bench/blas_core.sh
configs=("paper:--layers 12 --width 256 --heads 8 --batch 128 --points 20 --dim 16 --threads 2 --steps 5"
         "small:--layers 4 --width 64 --heads 4 --batch 64 --points 20 --dim 16 --threads 2 --steps 200")
rate() { sed -n 's/.*steps_per_s=\([0-9.]*\).*/\1/p'; }
for entry in "${configs[@]}"; do
  name=${entry%%:*}; args=${entry#*:}
  ratios=()
  for r in $(seq "$ROUNDS"); do
    tl=$(env $PEER_ENV /usr/bin/python3 "$PEER" $args); echo "  torch: $tl"; t=$(echo "$tl" | rate)
    il=$("$ICLAB" bench $args); echo "  iclab: $il"; i=$(echo "$il" | rate)
    ratios+=("$(awk -v a="$i" -v b="$t" 'BEGIN {printf "%.2f", a / b}')")
    echo "$name round $r: iclab $i steps/s, torch $t steps/s, ratio ${ratios[-1]}"
  done
  printf '%s\n' "${ratios[@]}" | sort -n | awk -v n="$name" '{a[NR]=$1} END {print n ": median ratio iclab/torch = " a[int((NR+1)/2)]}'
done
