#!/usr/bin/env bash
# LoRA finetuning throughput (issue 13): iclab (build/bench/bench_lora: icl_lora_train_step on
# pre-generated batches shaped like `iclab finetune`'s, B=8 sequences padded to 100 tokens, targets
# on the 2 answer tokens) against the same LoRA in PyTorch (bench/lora_torch.py), on the same GGUF
# model (default the demo's mini-LM, runs/demo-llm/lm/model.gguf: 4 layers, width 128, 4 heads, 2 kv
# heads, SwiGLU 352, vocabulary 4096), rank 16, alpha 16, dropout 0.1 on q,k,v,o,gate,up,down, the
# head on the answer rows only in both (lora_torch.py --head-all-rows runs it on every row), for
# two arms: adapters on the first layer (the backward runs through every layer) and on the last
# (the backward stops after one layer). Each round runs iclab then PyTorch for each arm, alternating,
# so both see the same machine; prints each run, each round's ratio and the median ratio per arm.
# Usage: bench/run_lora_bench.sh [ROUNDS] [STEPS]   (defaults 3 and 20)
# Environment: MODEL=path.gguf (if absent, a random-weight model of the mini-LM's shapes is written
# with `iclab mkmodel` to /tmp, see below), THREADS=2, BUILD=build, WAIT_IDLE=1 waits (at most 3 minutes) for
# an idle machine before each run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
STEPS=${2:-20}
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
BENCH=$BUILD/bench/bench_lora
# The PyTorch peer runs with OPENBLAS_NUM_THREADS=1 (PEER_ENV overrides; PEER_ENV= runs it as the
# shared README's command does): Debian's PyTorch calls a pthread OpenBLAS that starts its own
# threads beside torch's OpenMP ones, and on 2 cores the two pools spinning against each other made
# the peer 1.3-4x slower than with one BLAS thread (docs/performance.md). We compare against the
# peer's best configuration.
PEER_ENV=${PEER_ENV-OPENBLAS_NUM_THREADS=1}
make -j2 "$BENCH" "$BUILD/iclab" >/dev/null
ICLAB=$BUILD/iclab . bench/blas_core.sh
MODEL=${MODEL:-runs/demo-llm/lm/model.gguf}
if [ ! -f "$MODEL" ]; then
  # the mini-LM's shapes and vocabulary size: a 4096-token BPE trained by mkcorpus on 2 MB of its
  # corpus (needs data/brown: make data), or else llama-spm's 32000 tokens (a 8x larger head)
  MODEL=/tmp/iclab-lora-bench-minilm.gguf
  VOCAB=$BUILD/vocab/ggml-vocab-llama-spm.gguf
  if [ -d data/brown ]; then
    MODEL=/tmp/iclab-lora-bench-minilm-v4096.gguf
    VOCAB=/tmp/iclab-lora-bench-corpus/tokenizer.gguf
    [ -f "$VOCAB" ] || "$BUILD/iclab" mkcorpus --bytes 2M --out /tmp/iclab-lora-bench-corpus --quiet >/dev/null
  fi
  [ -f "$MODEL" ] || "$BUILD/iclab" mkmodel --arch llama --vocab "$VOCAB" --embd 128 \
    --layers 4 --heads 4 --kv-heads 2 --ff 352 --ctx 1024 -o "$MODEL" >/dev/null
fi
echo "model $MODEL, $THREADS threads, $STEPS timed steps after 3 warm-up, $ROUNDS rounds"
common="--model $MODEL --rank 16 --alpha 16 --dropout 0.1 --batch 8 --seq 100 --answer 2 --threads $THREADS --warmup 3 --steps $STEPS"
rate() { sed -n 's/.*steps_per_s=\([0-9.]*\).*/\1/p'; }
busy() {  # percent of CPU time not idle over 2 s, from /proc/stat
  local a b; a=($(head -1 /proc/stat)); sleep 2; b=($(head -1 /proc/stat))
  local ta=0 tb=0 i; for i in 1 2 3 4 5 6 7 8; do ta=$((ta + a[i])); tb=$((tb + b[i])); done
  echo $(( 100 - 100 * ((b[4] + b[5]) - (a[4] + a[5])) / (tb - ta + 1) ))
}
wait_idle() {
  [ "${WAIT_IDLE:-0}" = 1 ] || return 0
  local t=0; while [ "$(busy)" -gt 10 ] && [ $t -lt 90 ]; do t=$((t + 1)); done
}
declare -A ratios il_rates t_rates
for r in $(seq "$ROUNDS"); do
  for arm in first:1 last:1; do
    echo "round $r, layers $arm (load average $(cut -d' ' -f1 /proc/loadavg))"
    # iclab sets GOMP_SPINCOUNT=10000 for itself (docs/performance.md); the bench binary gets it here
    wait_idle
    il=$(GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-10000} "$BENCH" $common --layers $arm); echo "  iclab: $il"; i=$(echo "$il" | rate)
    wait_idle
    tl=$(env $PEER_ENV /usr/bin/python3 bench/lora_torch.py $common --layers $arm); echo "  torch: $tl"; t=$(echo "$tl" | rate)
    ratio=$(awk -v a="$i" -v b="$t" 'BEGIN {printf "%.2f", a / b}')
    ratios[$arm]+="$ratio "; il_rates[$arm]+="$i "; t_rates[$arm]+="$t "
    echo "  ratio iclab/torch $ratio"
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for arm in first:1 last:1; do
  echo "layers $arm: iclab $(echo ${il_rates[$arm]} | median) steps/s, torch $(echo ${t_rates[$arm]} | median) steps/s (medians);" \
       "ratios ${ratios[$arm]}-> median $(echo ${ratios[$arm]} | median) (target >= 2)"
done
