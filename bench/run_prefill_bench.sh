#!/usr/bin/env bash
# Prefill throughput (prompt of 128 tokens, 2 threads) of `iclab lmbench` against llama.cpp's
# llama-bench on the same GGUF file: a random-weight Llama of about 150M parameters written by
# `iclab mkmodel --size 150m` (llama-spm tokenizer, 32000 tokens), at F32, F16 and Q8_0 (and any
# types given). iclab also captures every layer's last-token state while it runs. Alternating
# rounds in one session, so both see the same machine; prints each run and the median ratio.
#
# llama.cpp is a peer, not part of iclab: build it outside the tree (e.g. cmake -B build
# -DLLAMA_CURL=OFF && cmake --build build --target llama-bench) and point LLAMA_BENCH at it.
# Usage: bench/run_prefill_bench.sh [ROUNDS] [TYPES...]     e.g. bench/run_prefill_bench.sh 3 f32 f16 q8_0
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}; shift || true
TYPES=("$@"); [ ${#TYPES[@]} -gt 0 ] || TYPES=(f32 f16 q8_0)
ICLAB=${ICLAB:-build/iclab}
GEN=${GEN:-32}
LLAMA_BENCH=${LLAMA_BENCH:-../peer/llama.cpp/build/bin/llama-bench}
VOCAB=${VOCAB:-../shared/data/vocab/ggml-vocab-llama-spm.gguf}
[ -f "$VOCAB" ] || VOCAB=build/vocab/ggml-vocab-llama-spm.gguf
[ -x "$ICLAB" ] || make -j2 >/dev/null
. bench/blas_core.sh
[ -x "$LLAMA_BENCH" ] || { echo "no llama-bench at $LLAMA_BENCH (set LLAMA_BENCH)"; exit 1; }
DIR=${BENCH_DIR:-/tmp/iclab-prefill-bench}; mkdir -p "$DIR"
# each program runs with its own OpenMP defaults (iclab sets GOMP_SPINCOUNT itself; see docs/performance.md)
unset OMP_WAIT_POLICY GOMP_SPINCOUNT
for type in "${TYPES[@]}"; do
  m="$DIR/llama150m-$type.gguf"
  [ -f "$m" ] || "$ICLAB" mkmodel --arch llama --size 150m --vocab "$VOCAB" --type "$type" --seed 1 -o "$m"
  ratios=()
  for r in $(seq "$ROUNDS"); do
    # llama-bench: CSV with a header; avg_ts is the mean tokens/s over its repetitions
    # rows: pp128, then tg32 (llama-bench generates from an empty context, iclab after the 128-token
    # prompt, so iclab's generation steps attend over more keys)
    csv=$("$LLAMA_BENCH" -m "$m" -p 128 -n "$GEN" -t 2 -r 3 -o csv 2>/dev/null)
    ts=$(echo "$csv" | awk -F, 'NR==1 {for (i=1;i<=NF;i++) if ($i=="\"avg_ts\"" || $i=="avg_ts") c=i} NR>1 {gsub(/"/,"",$c); print $c}')
    l=$(echo "$ts" | sed -n 1p); lg=$(echo "$ts" | sed -n 2p)
    il=$("$ICLAB" lmbench "$m" --prompt 128 --gen "$GEN" --reps 3); echo "  iclab: $il"
    i=$(echo "$il" | sed -n 's/.*pp_tok_s=\([0-9.]*\).*/\1/p'); ig=$(echo "$il" | sed -n 's/.*tg_tok_s=\([0-9.]*\).*/\1/p')
    ratios+=("$(awk -v a="$i" -v b="$l" 'BEGIN {printf "%.2f", a / b}')")
    echo "$type round $r: prefill iclab $i tok/s, llama.cpp $l tok/s, ratio ${ratios[-1]}; generation iclab $ig tok/s, llama.cpp ${lg:-n/a} tok/s"
  done
  printf '%s\n' "${ratios[@]}" | sort -n | awk -v n="$type" '{a[NR]=$1} END {print n ": median ratio iclab/llama.cpp = " a[int((NR+1)/2)]}'
done
