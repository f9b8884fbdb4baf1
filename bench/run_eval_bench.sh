#!/usr/bin/env bash
# `iclab eval` against the same prefill work in llama.cpp: a random-weight Llama of about 150M
# parameters (`iclab mkmodel --size 150m`, llama-spm tokenizer), the bitwise family, 7 concepts x
# PROMPTS prompts x shots 1,4,10, every layer captured, answers decoded (issue target: within 2x
# of llama.cpp's time for the prompts' prefill alone).
#
# llama.cpp's side: llama-bench's prefill tokens/s at each shot count's mean prompt length (all
# bitwise prompts of one shot count have nearly the same length), times the number of prompts:
# the time llama.cpp needs just to read every prompt once, without decoding, capturing or TD.
# iclab's side: the whole `iclab eval` wall time (prefill, teacher-forced answers, capture of every
# layer, TD, UMAP/PCA, figures and report). Both on 2 threads, one after the other.
#
# llama.cpp is a peer, not part of iclab: build it outside the tree (cmake -B build -DLLAMA_CURL=OFF
# && cmake --build build --target llama-bench) and point LLAMA_BENCH at it.
# Usage: bench/run_eval_bench.sh [PROMPTS]       (default 100, the issue's size)
set -euo pipefail
cd "$(dirname "$0")/.."
PROMPTS=${1:-100}
ICLAB=${ICLAB:-build/iclab}
LLAMA_BENCH=${LLAMA_BENCH:-../peer/llama.cpp/build/bin/llama-bench}
VOCAB=${VOCAB:-build/vocab/ggml-vocab-llama-spm.gguf}
[ -x "$ICLAB" ] || make -j2 >/dev/null
. bench/blas_core.sh
[ -f "$VOCAB" ] || make "$VOCAB" >/dev/null
[ -x "$LLAMA_BENCH" ] || { echo "no llama-bench at $LLAMA_BENCH (set LLAMA_BENCH)"; exit 1; }
DIR=${BENCH_DIR:-/tmp/iclab-eval-bench}; mkdir -p "$DIR"
unset OMP_WAIT_POLICY GOMP_SPINCOUNT
m="$DIR/llama150m-f32.gguf"
[ -f "$m" ] || "$ICLAB" mkmodel --arch llama --size 150m --vocab "$VOCAB" --type f32 --seed 1 -o "$m"

# llama.cpp's prefill time for the prompts of the iclab run in DIR/eval (one line per shot count).
llama_time() {
  local lens total=0 entry shots count len tps t
  lens=$(/usr/bin/python3 -c "
import json, collections
n = collections.defaultdict(list)
for l in open('$DIR/eval/predictions.jsonl'):
    p = json.loads(l); n[p['shots']].append(p['prompt_tokens'])
print(' '.join(f'{s}:{len(v)}:{round(sum(v)/len(v))}' for s, v in sorted(n.items())))")
  for entry in $lens; do
    IFS=: read -r shots count len <<< "$entry"
    tps=$("$LLAMA_BENCH" -m "$m" -p "$len" -n 0 -t 2 -r 3 -o csv 2>/dev/null | /usr/bin/python3 -c "
import sys, csv
rows = list(csv.DictReader(sys.stdin)); print(rows[-1]['avg_ts'])")
    t=$(echo "$count * $len / $tps" | bc -l)
    total=$(echo "$total + $t" | bc -l)
    printf 'shots %s: %s prompts of %s tokens; llama.cpp prefill %.1f tok/s -> %.1f s\n' "$shots" "$count" "$len" "$tps" "$t" >&2
  done
  echo "$total"
}

# A first (quick) eval gives the prompt lengths; llama.cpp is measured before and after the timed
# iclab run, and its mean is taken, so both see the machine in the same state as far as possible.
[ -s "$DIR/eval/predictions.jsonl" ] || "$ICLAB" eval "$m" --task bitwise --shots 1,4,10 --prompts 2 --quiet --out "$DIR/eval"
llama_a=$(llama_time)
start=$(date +%s.%N)
"$ICLAB" eval "$m" --task bitwise --shots 1,4,10 --prompts "$PROMPTS" --threads 2 --quiet --out "$DIR/eval"
iclab_s=$(echo "$(date +%s.%N) - $start" | bc -l)
llama_b=$(llama_time)
llama_s=$(echo "($llama_a + $llama_b) / 2" | bc -l)
total_tokens=$(/usr/bin/python3 -c "
import json; print(sum(json.loads(l)['prompt_tokens'] for l in open('$DIR/eval/predictions.jsonl')))")
printf 'iclab eval (everything): %.1f s; llama.cpp prefill of the same %d prompt tokens: %.1f s before, %.1f s after; ratio iclab/llama.cpp = %.2f\n' \
  "$iclab_s" "$total_tokens" "$llama_a" "$llama_b" "$(echo "$iclab_s / $llama_s" | bc -l)"
