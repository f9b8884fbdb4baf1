#!/usr/bin/env bash
# Cross-check of a LoRA adapter iclab trained against llama.cpp (a peer built outside the tree, see
# run_prefill_bench.sh): `iclab finetune` trains an adapter on a model (default: the mini-LM of
# `iclab demo --llm`), then `iclab run --lora` and `llama-cli --lora --temp 0` continue a few
# bitwise prompts greedily. The continuations must be identical, and must differ from the base
# model's on at least one prompt (so the adapter was really applied on both sides). llama-cli's
# "[end of text]" marker (iclab run stops silently at the end-of-sequence token) is removed.
# Usage: bench/crosscheck_lora_llamacpp.sh [MODEL.gguf]
set -uo pipefail
cd "$(dirname "$0")/.."
ICLAB=${ICLAB:-build/iclab}
LLAMA_CLI=${LLAMA_CLI:-../peer/llama.cpp/build/bin/llama-cli}
[ -x "$LLAMA_CLI" ] || { echo "no llama-cli at $LLAMA_CLI (set LLAMA_CLI)"; exit 1; }
m=${1:-runs/demo-llm/lm/model.gguf}
[ -f "$m" ] || { echo "no model $m (run iclab demo --llm, or pass one)"; exit 1; }
D=$(mktemp -d /tmp/iclab-crosscheck-lora.XXXXXX); trap 'rm -rf "$D"' EXIT
"$ICLAB" finetune "$m" --task bitwise --layers first:2 --steps 300 --lr 3e-3 --out "$D/ft" --quiet || exit 1
a="$D/ft/adapter.gguf"
fails=0 moved=0
for p in $'01101 -> 01001\n11100 -> 10100\n00111 -> 00101\n10110 ->' $'11111 -> 11000\n01010 -> 01000\n10011 ->' \
         $'00011 -> 00010\n11011 ->' $'10101 -> 10001\n01110 -> 01000\n11010 -> 10000\n00110 ->'; do
  x=$("$ICLAB" run "$m" --lora "$a" -p "$p" -n 8 2>/dev/null)
  y=$("$LLAMA_CLI" -m "$m" --lora "$a" -p "$p" -n 8 --temp 0 -no-cnv --no-warmup -t 2 2>/dev/null)
  z=$("$ICLAB" run "$m" -p "$p" -n 8 2>/dev/null)
  y=${y#"$p"}
  y=$(printf '%s' "${y%" [end of text]"}") # llama-cli marks the end-of-sequence token; $(...) drops trailing newlines as for x
  q=${p//$'\n'/\\n}
  if [ "$x" = "$y" ]; then echo "same:   '$q' -> '${x//$'\n'/\\n}' (base model: '${z//$'\n'/\\n}')"
  else echo "DIFFER: '$q': iclab '${x//$'\n'/\\n}' llama.cpp '${y//$'\n'/\\n}'"; fails=$((fails+1)); fi
  [ "$x" != "$z" ] && moved=$((moved+1))
done
echo "$moved of 4 continuations changed by the adapter"
[ $fails -eq 0 ] && [ $moved -gt 0 ]
