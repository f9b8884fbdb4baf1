#!/usr/bin/env bash
# iclab finetune end to end on a small random-weight llama: the run folder's files, the adapter
# loading in `iclab eval --lora` and `iclab run --lora`, exact resume (stop half way, --resume: the
# same adapter bytes), the --compare experiment's table and report; bad input gets a one-line error.
# Needs ICLAB_VOCAB_DIR (make test sets it).
set -u
ICLAB=${ICLAB:-build/iclab}
V=${ICLAB_VOCAB_DIR:-build/vocab}
T=$(mktemp -d /tmp/iclab-test-finetune.XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/lib.bash"

m="$T/m.gguf"
$ICLAB mkmodel --arch llama --vocab "$V/ggml-vocab-llama-bpe.gguf" --layers 3 --ctx 512 --seed 4 -o "$m" 2>/dev/null || bad "mkmodel failed"
args=(--task bitwise --layers last:2 --rank 4 --steps 8 --batch 2 --shots-max 4 --checkpoints 3 --quiet)
if $ICLAB finetune "$m" "${args[@]}" --out "$T/a"; then ok "finetune runs"; else bad "finetune failed"; fi
for f in adapter.gguf train.csv config.json checkpoints/state.bin checkpoints/step_000000008.gguf; do
  [ -s "$T/a/$f" ] || bad "finetune did not write $f"
done
[ "$(wc -l < "$T/a/train.csv")" -eq 9 ] && head -1 "$T/a/train.csv" | grep -q '^step,loss,lr,grad_norm,answer_tokens,seconds$' \
  && ok "train.csv: 8 steps" || bad "train.csv: $(head -2 "$T/a/train.csv")"
cmp -s "$T/a/adapter.gguf" "$T/a/checkpoints/step_000000008.gguf" && ok "the last checkpoint is adapter.gguf" || bad "last checkpoint differs"
grep -q '"layer_lo": 1' "$T/a/config.json" && grep -q '"layer_hi": 3' "$T/a/config.json" && ok "last:2 of 3 layers is 1-2" \
  || bad "config.json layers: $(cat "$T/a/config.json")"

# resume: 4 steps, then --resume to 8, gives the same bytes
$ICLAB finetune "$m" "${args[@]}" --out "$T/b" --stop-after 4 || bad "finetune --stop-after failed"
[ ! -e "$T/b/adapter.gguf" ] && [ "$(wc -l < "$T/b/train.csv")" -eq 5 ] && ok "stopped after 4 steps" || bad "--stop-after 4"
$ICLAB finetune "$m" "${args[@]}" --out "$T/b" --resume || bad "finetune --resume failed"
cmp -s "$T/a/adapter.gguf" "$T/b/adapter.gguf" && ok "4 + 4 resumed steps: the same adapter bytes as 8 straight" || bad "resumed adapter differs"
diff <(cut -d, -f1-5 "$T/a/train.csv") <(cut -d, -f1-5 "$T/b/train.csv") >/dev/null && ok "train.csv identical but for the seconds" \
  || bad "resumed train.csv differs"

# the adapter in eval and run
$ICLAB eval "$m" --lora "$T/a/adapter.gguf" --task bitwise --shots 2 --prompts 12 --quiet --out "$T/e" || bad "eval --lora failed"
[ -s "$T/e/accuracy.csv" ] && grep -q "adapter.gguf" "$T/e/config.json" && ok "eval --lora writes its files and names the adapter" \
  || bad "eval --lora files"
x=$($ICLAB run "$m" --lora "$T/a/adapter.gguf" -p "01101 -> 01001" -n 4 2>/dev/null) && ok "run --lora: '$x'" || bad "run --lora failed"

# the comparison (tiny: 2 steps per arm, 12 prompts)
$ICLAB finetune "$m" --task bitwise --compare 1 --rank 2 --steps 2 --batch 2 --shots-max 3 --shots 2 --prompts 12 --quiet \
  --out "$T/c" || bad "finetune --compare failed"
for f in comparison.csv report.html figures/finetune_accuracy.png figures/finetune_td.svg pretrained/td.csv prompting/td.csv \
         first-1/adapter.gguf last-1/adapter.gguf first-1/eval/td.csv last-1/eval/td.csv; do
  [ -s "$T/c/$f" ] || bad "--compare did not write $f"
done
/usr/bin/python3 - "$T/c/comparison.csv" <<'PY' && ok "comparison.csv: 4 conditions x 7 concepts, values in [0,1]" || bad "comparison.csv"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 28, len(rows)
assert sorted({r["condition"] for r in rows}) == ["first", "last", "pretrained", "prompting"]
assert {r["layers"] for r in rows if r["condition"] == "first"} == {"first:1"}
assert {r["layers"] for r in rows if r["condition"] == "last"} == {"last:1"}
for r in rows:
    assert 0 <= float(r["accuracy"]) <= 1 and 0 <= float(r["td"]) <= 1, r
PY
grep -q "Table 1: average TD and accuracy" "$T/c/report.html" && grep -q "avg accuracy % (paper)" "$T/c/report.html" \
  && grep -q "90.2" "$T/c/report.html" && ok "report.html: Table 1 with the paper's bitwise values" || bad "report.html content"

# bad input
expect_fail "a layer range outside the model" "outside the model" $ICLAB finetune "$m" --task bitwise --layers first:9 --out "$T/x"
expect_fail "rank 0" "rank must be at least 1" $ICLAB finetune "$m" --task bitwise --rank 0 --out "$T/x"
expect_fail "an unknown matrix" "unknown matrix 'qq'" $ICLAB finetune "$m" --task bitwise --targets q,qq --out "$T/x"
expect_fail "--resume without a state" "no .*state.bin" $ICLAB finetune "$m" --task bitwise --resume --out "$T/none"
expect_fail "a second run into a finetuning folder" "already holds a finetuning run" $ICLAB finetune "$m" "${args[@]}" --out "$T/a"
o="$T/o.gguf"
$ICLAB mkmodel --arch llama --vocab "$V/ggml-vocab-llama-bpe.gguf" --layers 3 --embd 96 --ctx 512 --seed 5 -o "$o" 2>/dev/null
expect_fail "an adapter for another model" "another model" $ICLAB eval "$o" --lora "$T/a/adapter.gguf" --task bitwise --prompts 12 --quiet --out "$T/x"
expect_fail "a model file as an adapter" "not a LoRA adapter" $ICLAB run "$m" --lora "$m" -p "hi"
finish
