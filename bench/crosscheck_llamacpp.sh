#!/usr/bin/env bash
# Cross-check against llama.cpp (a peer built outside the tree, see run_prefill_bench.sh): writes a
# random-weight model of each architecture with `iclab mkmodel`, and compares the greedy
# continuations of `iclab run` and `llama-cli --temp 0` token for token. F32 weights must agree
# exactly; quantized weights may part after a few tokens, because llama.cpp quantizes the
# activations to 8 bits for quantized weights and random models have near-tied logits.
# Gemma-2 uses 26 layers: llama.cpp only accepts the 2B/9B/27B layer counts.
# Usage: bench/crosscheck_llamacpp.sh
set -uo pipefail
cd "$(dirname "$0")/.."
ICLAB=${ICLAB:-build/iclab}
LLAMA_CLI=${LLAMA_CLI:-../peer/llama.cpp/build/bin/llama-cli}
V=${VOCAB_DIR:-../shared/data/vocab}
[ -x "$LLAMA_CLI" ] || { echo "no llama-cli at $LLAMA_CLI (set LLAMA_CLI)"; exit 1; }
D=$(mktemp -d /tmp/iclab-crosscheck.XXXXXX); trap 'rm -rf "$D"' EXIT
P="Hello there, how are you doing today my friend"
cases=("llama:--arch llama --vocab $V/ggml-vocab-llama-spm.gguf"
       "llama3:--arch llama --vocab $V/ggml-vocab-llama-bpe.gguf --llama3-rope"
       "qwen2:--arch qwen2 --vocab $V/ggml-vocab-gpt-2.gguf"
       "gemma2:--arch gemma2 --vocab $V/ggml-vocab-llama-spm.gguf --layers 26 --head-dim 32 --sliding-window 4"
       "gpt2:--arch gpt2 --vocab $V/ggml-vocab-gpt-2.gguf"
       "olmo:--arch olmo --vocab $V/ggml-vocab-llama-spm.gguf"
       "llama-q8_0:--arch llama --vocab $V/ggml-vocab-llama-spm.gguf --embd 256 --ff 512 --type q8_0"
       "llama-q4_k:--arch llama --vocab $V/ggml-vocab-llama-spm.gguf --embd 256 --ff 512 --type q4_k")
for c in "${cases[@]}"; do
  name=${c%%:*}; "$ICLAB" mkmodel ${c#*:} -o "$D/$name.gguf" || continue
  ours=$("$ICLAB" run "$D/$name.gguf" -p "$P" -n 12 2>/dev/null)
  # llama-cli echoes the prompt (with a leading space for SentencePiece vocabularies) before the continuation
  theirs=$("$LLAMA_CLI" -m "$D/$name.gguf" -p "$P" -n 12 --temp 0 -no-cnv --no-warmup 2>/dev/null | sed "s/^ \{0,1\}$P//")
  if [ "$ours" = "$theirs" ]; then echo "$name: identical greedy continuations"; else
    echo "$name: differ"; echo "  iclab:     [$ours]"; echo "  llama.cpp: [$theirs]"; fi
done
