#!/usr/bin/env bash
# The LLM half's path end to end: `iclab demo --llm --preset tiny` builds a small corpus, trains the
# tiny LM preset, evaluates bitwise and pos and patches at the peak layer, the same code as
# `iclab demo --llm` on the minilm preset, in seconds; the presets of `iclab train --task lm`; bad
# input. Run from the repository root.
set -u
ICLAB=${ICLAB:-build/iclab}
T=$(mktemp -d /tmp/iclab-test-demo-llm.XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/lib.bash"

if [ ! -d data/brown ]; then echo "SKIP data/brown missing (make data)"; finish; exit; fi
D="$T/demo"
out=$($ICLAB demo --llm --preset tiny --out "$D" --shots 1 --prompts 12 --threads 2 2>"$T/demo.err") \
  && ok "iclab demo --llm --preset tiny runs" || { bad "demo --llm failed: $(tail -n 3 "$T/demo.err")"; finish; exit; }
echo "$out" | grep -q "open $D/eval-bitwise/report.html and $D/eval-pos/report.html" && ok "demo names its reports" || bad "demo output: $out"
for f in demo-llm.txt corpus/corpus.txt corpus/tokenizer.gguf lm/train.csv lm/model.gguf; do
  [ -s "$D/$f" ] || bad "demo lacks $f"
done
[ "$(ls "$D/lm/checkpoints" | grep -c '\.gguf$')" -eq 4 ] && ok "tiny preset: 4 checkpoints" || bad "checkpoints: $(ls "$D/lm/checkpoints")"
[ "$(wc -l < "$D/lm/train.csv")" -eq 21 ] && ok "tiny preset: 20 steps" || bad "train.csv has $(wc -l < "$D/lm/train.csv") lines"
for t in bitwise pos; do
  E="$D/eval-$t"
  for f in accuracy.csv td.csv fit.csv intervention_summary.csv report.html; do [ -s "$E/$f" ] || bad "eval-$t lacks $f"; done
  # 7 concepts x 1 shot count, accuracy in [0, 1], n = 12
  rows=$(awk -F, 'NR > 1 && $3 >= 0 && $3 <= 1 && $5 == 12' "$E/accuracy.csv" | wc -l)
  [ "$rows" -eq 7 ] && ok "$t: accuracy of 7 concepts, 12 prompts each" || bad "$t accuracy.csv: $(cat "$E/accuracy.csv")"
  # td: 3 rows (embedding + 2 blocks) x (7 concepts and "all")
  rows=$(awk -F, 'NR > 1 && $4 >= 0 && $4 <= 1' "$E/td.csv" | wc -l)
  [ "$rows" -eq 24 ] && ok "$t: td of 3 layers x (7 concepts + all) in [0, 1]" || bad "$t td.csv has $rows valid rows"
  grep -q ",1$" "$E/intervention_summary.csv" && [ "$(wc -l < "$E/intervention_summary.csv")" -eq 19 ] \
    && ok "$t: interventions at 1 shot, 6 concepts (Null is the source) x 3 conditions" || bad "$t intervention_summary.csv: $(head -3 "$E/intervention_summary.csv")"
done
# a second demo replaces the first; the same options give the same bytes whatever the thread count
cp "$D/lm/model.gguf" "$T/m1.gguf"; cp "$D/eval-pos/accuracy.csv" "$T/acc1.csv"; cp "$D/eval-bitwise/td.csv" "$T/td1.csv"
$ICLAB demo --llm --preset tiny --out "$D" --shots 1 --prompts 12 --threads 1 >/dev/null 2>&1 && ok "a second demo replaces the first" || bad "rerun into the same folder"
cmp -s "$T/m1.gguf" "$D/lm/model.gguf" && cmp -s "$T/acc1.csv" "$D/eval-pos/accuracy.csv" && cmp -s "$T/td1.csv" "$D/eval-bitwise/td.csv" \
  && ok "same model, accuracy and td with 1 and 2 threads" || bad "demo --llm is not reproducible across thread counts"

# the checkpoint study: eval on a run folder evaluates every checkpoint (4 here) and gathers them
$ICLAB eval "$D/lm" --task bitwise --shots 1 --prompts 12 --quiet && ok "eval RUN_DIR (checkpoint study) runs" || bad "eval RUN_DIR failed"
S="$D/lm/eval-bitwise"
rows=$(awk -F, 'NR > 1 && $4 >= 0 && $4 <= 1 && $5 >= 0 && $5 <= 1' "$S/checkpoints.csv" | wc -l)
[ "$rows" -eq 28 ] && ok "checkpoints.csv: 4 checkpoints x 7 concepts, accuracy and td in [0, 1]" || bad "checkpoints.csv has $rows valid rows"
[ "$(awk -F, 'NR > 1 {print $1}' "$S/checkpoints.csv" | sort -un | tr '\n' ' ')" = "1 3 7 20 " ] && ok "checkpoint steps 1 3 7 20" || bad "steps: $(cut -d, -f1 "$S/checkpoints.csv" | sort -u | tr '\n' ' ')"
# the final checkpoint's td at its own peak equals the study's td column, and equals the plain eval of model.gguf
awk -F, 'NR > 1 && $1 == 20 && $5 != $6 {exit 1}' "$S/checkpoints.csv" && ok "last checkpoint: td at the final peak = td at its own peak" || bad "final-peak td differs at the last checkpoint"
cmp -s "$S/step_000000020/accuracy.csv" "$D/eval-bitwise/accuracy.csv" && ok "last checkpoint's accuracy = eval of model.gguf" || bad "last checkpoint's accuracy differs from model.gguf's"
head -c 4 "$S/figures/checkpoints.png" | grep -q PNG && grep -q 'When each concept rose' "$S/report.html" && ok "study figure and report" || bad "study figure or report missing"
expect_fail "eval on a folder without checkpoints" "not a training run" $ICLAB eval "$D/corpus" --task bitwise --quiet
mkdir -p "$T/nock/checkpoints"
expect_fail "eval on a run without step_N.gguf" "holds no step_N.gguf" $ICLAB eval "$T/nock" --task bitwise --quiet

# the presets: a flag after --preset overrides it; --help lists them
$ICLAB train --task lm --corpus "$D/corpus" --preset tiny --steps 3 --out "$T/p" --quiet \
  && [ "$(wc -l < "$T/p/train.csv")" -eq 4 ] && ok "--steps overrides the preset" || bad "preset override"
$ICLAB train --task lm --help | grep -q 'minilm  --layers' && ok "train --help lists the minilm preset" || bad "train --help lacks minilm"
$ICLAB demo --help | grep -q -- '--llm' && ok "demo --help documents --llm" || bad "demo --help lacks --llm"

mkdir -p "$T/other"; echo keep > "$T/other/notes.txt"
expect_fail "demo --llm refuses a folder that is not its own" "refusing to overwrite" $ICLAB demo --llm --preset tiny --out "$T/other"
[ -s "$T/other/notes.txt" ] && [ "$(ls "$T/other")" = notes.txt ] && ok "the refused folder is untouched" || bad "demo --llm touched $T/other"
expect_fail "demo --llm: unknown preset" "unknown preset 'demo' for --llm" $ICLAB demo --llm --preset demo --out "$T/x"
expect_fail "demo --llm: bad shots" "shots" $ICLAB demo --llm --preset tiny --shots x --out "$T/y"
expect_fail "demo --llm: too few prompts for the 10-NN" "too few prompts" $ICLAB demo --llm --preset tiny --shots 1 --prompts 3 --out "$T/z"
expect_fail "demo: --shots without --llm" "belong to --llm" $ICLAB demo --shots 1
expect_fail "train: unknown preset" "unknown preset 'huge'" $ICLAB train --task lm --corpus "$D/corpus" --preset huge --out "$T/w"
finish
