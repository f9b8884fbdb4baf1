#!/usr/bin/env bash
# Cross-check of a model iclab TRAINED (not a random one) against llama.cpp (a peer built outside
# the tree, see run_prefill_bench.sh): a small Llama-style model is trained with `iclab train --task
# lm` on a repetitive text with an `iclab mkcorpus` BPE tokenizer, then `iclab run` and
# `llama-cli --temp 0` continue a few prompts greedily; the continuations must be identical (llama-cli
# echoes the prompt, which is stripped). Usage: bench/crosscheck_trained_llamacpp.sh [MODEL.gguf]
set -uo pipefail
cd "$(dirname "$0")/.."
ICLAB=${ICLAB:-build/iclab}
LLAMA_CLI=${LLAMA_CLI:-../peer/llama.cpp/build/bin/llama-cli}
[ -x "$LLAMA_CLI" ] || { echo "no llama-cli at $LLAMA_CLI (set LLAMA_CLI)"; exit 1; }
D=$(mktemp -d /tmp/iclab-crosscheck-trained.XXXXXX); trap 'rm -rf "$D"' EXIT
m=${1:-}
if [ -z "$m" ]; then
  mkdir -p "$D/c"
  { printf '<|endoftext|>'
    for i in $(seq 1 300); do
      printf 'the cat sat on the mat. the dog ran to the red door. %d and %d make %d.\n' $((i % 7)) $((i % 5)) $((i % 7 + i % 5))
      [ $((i % 20)) -eq 0 ] && printf '<|endoftext|>'
    done; } > "$D/c/corpus.txt"
  "$ICLAB" mkcorpus --tokenizer-only "$D/c/corpus.txt" --vocab 290 --out "$D/c" --quiet || exit 1
  "$ICLAB" train --task lm --corpus "$D/c" --steps 200 --width 64 --layers 2 --heads 4 --kv-heads 2 --ctx 64 --batch 8 \
    --warmup 10 --lr 1e-2 --lr-min 1e-3 --checkpoints 0 --seed 3 --quiet --out "$D/run" || exit 1
  m="$D/run/model.gguf"
fi
fails=0
for p in "the cat" "the dog ran" "3 and 4 make" "the red"; do
  a=$("$ICLAB" run "$m" -p "$p" -n 16 2>/dev/null)
  b=$("$LLAMA_CLI" -m "$m" -p "$p" -n 16 --temp 0 -no-cnv --no-warmup -t 2 2>/dev/null)
  b=${b#"$p"}
  if [ "$a" = "$b" ]; then echo "same:   '$p' -> '${a//$'\n'/\\n}'"; else echo "DIFFER: '$p': iclab '${a//$'\n'/\\n}' llama.cpp '${b//$'\n'/\\n}'"; fails=$((fails+1)); fi
done
[ $fails -eq 0 ]
