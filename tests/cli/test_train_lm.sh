#!/usr/bin/env bash
# iclab train --task lm end to end: a tiny Llama-style model trained on a small repetitive corpus
# (tokenizer from `iclab mkcorpus --tokenizer-only`): the run folder's files, log-spaced
# checkpoints, the loss falling, the saved model running in `iclab run`, the same bytes with 1 and
# 2 threads, and bad input. Run from the repository root.
set -u
ICLAB=${ICLAB:-build/iclab}
source "$(dirname "$0")/lib.bash"
T=$(mktemp -d /tmp/iclab-test-train-lm.XXXXXX)
trap 'rm -rf "$T"' EXIT

C="$T/corpus"; mkdir -p "$C"
{
  printf '<|endoftext|>'
  for i in $(seq 1 300); do
    printf 'the cat sat on the mat. the dog ran to the red door. %d and %d make %d.\n' $((i % 7)) $((i % 5)) $((i % 7 + i % 5))
    [ $((i % 20)) -eq 0 ] && printf '<|endoftext|>'
  done
} > "$C/corpus.txt"
$ICLAB mkcorpus --tokenizer-only "$C/corpus.txt" --vocab 290 --out "$C" --quiet || bad "mkcorpus --tokenizer-only"

args=(--task lm --corpus "$C" --steps 120 --width 32 --layers 2 --heads 4 --kv-heads 2 --ctx 32 --batch 4
      --warmup 10 --lr 1e-2 --lr-min 1e-3 --checkpoints 4 --seed 3 --quiet)
if $ICLAB train "${args[@]}" --out "$T/r1" --threads 1; then ok "train --task lm runs"; else bad "train --task lm failed"; fi
[ -s "$T/r1/model.gguf" ] && [ "$(wc -l < "$T/r1/train.csv")" -eq 121 ] && head -1 "$T/r1/train.csv" | grep -q '^step,loss,lr,grad_norm,seconds$' \
  && ok "model.gguf and train.csv (120 steps)" || bad "run folder: $(ls "$T/r1")"
ck=$(cd "$T/r1/checkpoints" && ls step_* | tr '\n' ' ')
[ "$ck" = "step_000000001.gguf step_000000005.gguf step_000000024.gguf step_000000120.gguf " ] \
  && ok "log-spaced checkpoints: $ck" || bad "checkpoints: $ck"
cmp -s "$T/r1/checkpoints/step_000000120.gguf" "$T/r1/model.gguf" && ok "the last checkpoint is model.gguf" || bad "last checkpoint differs"
first=$(awk -F, 'NR>1 && NR<=11 {s+=$2} END {printf "%.4f", s/10}' "$T/r1/train.csv")
last=$(awk -F, 'NR>111 {s+=$2} END {printf "%.4f", s/10}' "$T/r1/train.csv")
[ -n "$first" ] && awk -v a="$first" -v b="$last" 'BEGIN {exit !(b + 0 < 0.5 * a)}' && ok "loss falls: $first -> $last" || bad "loss $first -> $last"
out=$($ICLAB run "$T/r1/model.gguf" -p "the cat" -n 8 2>/dev/null); rc=$?
[ $rc -eq 0 ] && ok "iclab run on the trained model: '$(echo "$out" | head -1)'" || bad "iclab run (rc=$rc)"
$ICLAB train "${args[@]}" --out "$T/r2" --threads 2 && cmp -s "$T/r1/model.gguf" "$T/r2/model.gguf" \
  && ok "1 and 2 threads give the same model bytes" || bad "models differ between thread counts"

$ICLAB train "${args[@]}" --out "$T/r2" --overwrite --checkpoints 2 --steps 30 \
  && [ "$(cd "$T/r2/checkpoints" && ls | tr '\n' ' ')" = "state.bin step_000000001.gguf step_000000030.gguf " ] \
  && ok "--overwrite replaces the run, its checkpoints and state" || bad "--overwrite: $(ls "$T/r2/checkpoints")"

expect_fail "no --corpus" "corpus DIR is required" $ICLAB train --task lm --out "$T/x"
expect_fail "missing tokenizer" "tokenizer.gguf" $ICLAB train --task lm --corpus "$T/nowhere" --out "$T/x"
mkdir -p "$T/empty" && cp "$C/tokenizer.gguf" "$T/empty/" && : > "$T/empty/corpus.txt"
expect_fail "empty corpus" "is empty" $ICLAB train --task lm --corpus "$T/empty" --out "$T/x"
mkdir -p "$T/small" && cp "$C/tokenizer.gguf" "$T/small/" && printf 'the cat' > "$T/small/corpus.txt"
expect_fail "corpus too small for one batch" "too few for one window" $ICLAB train --task lm --corpus "$T/small" --out "$T/x"
expect_fail "existing run" "holds a run already" $ICLAB train "${args[@]}" --out "$T/r1"
expect_fail "heads not dividing the width" "not a multiple of 3 heads" $ICLAB train "${args[@]}" --heads 3 --out "$T/x"
expect_fail "bad learning rate" "lr 'x' must be a number" $ICLAB train "${args[@]}" --lr x --out "$T/x"
expect_fail "unknown option" "unknown option --bogus" $ICLAB train --task lm --corpus "$C" --bogus 1
finish
