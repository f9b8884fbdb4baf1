#!/usr/bin/env bash
# iclab train --task lm: exact resume and the held-out loss. A run of 40 steps straight against the
# same run stopped at step 20 (--stop-after) and resumed, and against one resumed from an older
# state after rows past it were written (as after a crash): the same model.gguf bytes, the same
# train.csv rows but the seconds, the same eval.csv. eval.csv's held-out losses are finite, one per
# checkpoint, and the held-out windows lie after every training window (--log-windows offsets).
# Refusals: changed flags, another corpus, no state, a damaged state, a complete run.
# Run from the repository root.
set -u
ICLAB=${ICLAB:-build/iclab}
source "$(dirname "$0")/lib.bash"
T=$(mktemp -d /tmp/iclab-test-train-lm-resume.XXXXXX)
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

args=(--task lm --corpus "$C" --preset tiny --steps 40 --width 32 --ctx 32 --batch 4 --checkpoints 4 --seed 5 --quiet)
$ICLAB train "${args[@]}" --out "$T/a" --log-windows "$T/a.windows.csv" || bad "straight run failed"
# csv without the seconds column
rows() { cut -d, -f1-4 "$1"; }

# stopped at 20, resumed to 40
$ICLAB train "${args[@]}" --out "$T/b" --stop-after 20 || bad "run with --stop-after failed"
[ ! -e "$T/b/model.gguf" ] && [ -s "$T/b/checkpoints/state.bin" ] && [ "$(wc -l < "$T/b/train.csv")" -eq 21 ] \
  && ok "--stop-after 20: state saved, 20 rows, no model.gguf" || bad "--stop-after: $(ls "$T/b") $(wc -l < "$T/b/train.csv")"
$ICLAB train "${args[@]}" --out "$T/b" --resume || bad "--resume failed"
cmp -s "$T/a/model.gguf" "$T/b/model.gguf" && ok "resumed model.gguf is byte-identical" || bad "resumed model.gguf differs"
cmp -s <(rows "$T/a/train.csv") <(rows "$T/b/train.csv") && ok "train.csv rows identical but the seconds" \
  || bad "train.csv differs: $(diff <(rows "$T/a/train.csv") <(rows "$T/b/train.csv") | head -3)"
cmp -s "$T/a/eval.csv" "$T/b/eval.csv" && ok "eval.csv identical" || bad "eval.csv differs"
cmp -s "$T/a/checkpoints/step_000000012.gguf" "$T/b/checkpoints/step_000000012.gguf" \
  && ok "checkpoints identical" || bad "checkpoint step 12 differs"

# a crash after the last state: rows past it are redone
$ICLAB train "${args[@]}" --out "$T/c" --stop-after 7 && cp "$T/c/checkpoints/state.bin" "$T/state7.bin" \
  && $ICLAB train "${args[@]}" --out "$T/c" --resume --stop-after 20 && cp "$T/state7.bin" "$T/c/checkpoints/state.bin" \
  && [ "$(wc -l < "$T/c/train.csv")" -eq 21 ] && $ICLAB train "${args[@]}" --out "$T/c" --resume \
  && cmp -s "$T/a/model.gguf" "$T/c/model.gguf" && cmp -s <(rows "$T/a/train.csv") <(rows "$T/c/train.csv") \
  && cmp -s "$T/a/eval.csv" "$T/c/eval.csv" \
  && ok "resume from an older state drops the later rows: same files" || bad "resume from an older state"

# the held-out loss
head -1 "$T/a/eval.csv" | grep -q '^step,heldout_loss$' \
  && [ "$(cut -d, -f1 "$T/a/eval.csv" | tail -n +2 | tr '\n' ' ')" = "1 3 12 40 " ] \
  && awk -F, 'NR > 1 && !($2 + 0 > 0 && $2 + 0 < 100) {exit 1}' "$T/a/eval.csv" \
  && ok "eval.csv: finite held-out losses at the checkpoints: $(tail -n +2 "$T/a/eval.csv" | tr '\n' ' ')" \
  || bad "eval.csv: $(cat "$T/a/eval.csv")"
first=$(sed -n 2p "$T/a/eval.csv" | cut -d, -f2); final=$(tail -1 "$T/a/eval.csv" | cut -d, -f2)
awk -v a="$first" -v b="$final" 'BEGIN {exit !(b < a)}' && ok "held-out loss falls: $first -> $final" \
  || bad "held-out loss $first -> $final"
W="$T/a.windows.csv"
nh=$(grep -c '^heldout,' "$W"); nt=$(grep -c '^train,' "$W")
min_h=$(awk -F, '$1 == "heldout" {print $3}' "$W" | sort -n | head -1)
max_t=$(awk -F, '$1 == "train" {print $3}' "$W" | sort -n | tail -1)
# a training window covers offset .. offset + ctx (ctx + 1 tokens)
[ "$nh" -ge 1 ] && [ "$nt" -eq 160 ] && [ $((max_t + 32)) -lt "$min_h" ] \
  && ok "held-out windows ($nh from offset $min_h) after every training window (last ends at $((max_t + 32)))" \
  || bad "windows: $nh held out from $min_h, $nt training up to $max_t"
loud=("${args[@]:0:${#args[@]}-1}")  # args without --quiet
msg=$($ICLAB train "${loud[@]}" --out "$T/d" --steps 3 --checkpoints 0 2>&1 >/dev/null)
echo "$msg" | grep -q '^held out: tokens' && echo "$msg" | grep -q '^held-out loss [0-9.]* at step 3' \
  && [ "$(wc -l < "$T/d/eval.csv")" -eq 2 ] && ok "the output states the split and the held-out loss" \
  || bad "output: $msg"

# refusals
expect_fail "resume with another learning rate" "trained with --lr 0.01, the flags give 0.02" \
  $ICLAB train "${args[@]}" --out "$T/b" --resume --lr 0.02
expect_fail "resume a complete run" "is complete \(40 of 40 steps\)" $ICLAB train "${args[@]}" --out "$T/b" --resume
expect_fail "resume with more steps" "trained with --steps 40, the flags give 50" \
  $ICLAB train "${args[@]}" --out "$T/b" --resume --steps 50
expect_fail "resume a folder without a run" "holds no run" $ICLAB train "${args[@]}" --out "$T/none" --resume
rm "$T/d/checkpoints/state.bin" 2>/dev/null
expect_fail "resume without a state" "no saved training state" $ICLAB train "${args[@]}" --out "$T/d" --resume
$ICLAB train "${args[@]}" --out "$T/e" --stop-after 5 || bad "run e"
cp "$T/e/checkpoints/state.bin" "$T/state5.bin"
printf 'x' | dd of="$T/e/checkpoints/state.bin" bs=1 seek=5000 conv=notrunc 2>/dev/null
expect_fail "damaged state" "damaged \(checksum mismatch\)" $ICLAB train "${args[@]}" --out "$T/e" --resume
cp "$T/state5.bin" "$T/e/checkpoints/state.bin"
mkdir -p "$T/c2" && cp "$C/tokenizer.gguf" "$T/c2/" && sed 's/cat/cow/' "$C/corpus.txt" > "$T/c2/corpus.txt"
expect_fail "resume on another corpus" "corpus differs" $ICLAB train "${args[@]}" --corpus "$T/c2" --out "$T/e" --resume
expect_fail "--resume with --overwrite" "exclude each other" $ICLAB train "${args[@]}" --out "$T/e" --resume --overwrite
expect_fail "--stop-after past the end" "must be below --steps 40" $ICLAB train "${args[@]}" --out "$T/f" --stop-after 40
finish
