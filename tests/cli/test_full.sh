#!/usr/bin/env bash
# The phase-(c) path end to end, in seconds: `iclab demo --full --steps N` trains the reproduce preset
# (cut short), decodes and patches every checkpoint and writes a report with the phase table beside
# the paper's; `iclab sweep --analyse` does the same per run and puts the phase columns in sweep.csv
# and the per-run phase table in its report, skipping runs already analysed. Bad input: one-line
# errors. Run from the repository root.
set -u
ICLAB=${ICLAB:-build/iclab}
T=$(mktemp -d /tmp/iclab-test-full.XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/lib.bash"

D="$T/full"
out=$($ICLAB demo --full --steps 120 --seed 2 --out "$D" --threads 2 2>"$T/full.err") && ok "iclab demo --full --steps 120 runs" || { bad "demo --full failed: $(tail -n 3 "$T/full.err")"; finish; exit; }
echo "$out" | grep -q "open $D/report.html" && ok "demo --full names its report" || bad "demo --full output: $out"
# the reproduce preset's task and model, the given seed and steps (the curriculum cut to half)
cfg_of() { awk -F'[:,]' -v k="\"$2\"" '$1 ~ k {gsub(/ /, "", $2); print $2}' "$1/config.json"; }
cfg() { cfg_of "$D" "$1"; }
[ "$(cfg task.dim)" = 8 ] && [ "$(cfg task.n_bases)" = 4 ] && [ "$(cfg task.rank)" = 2 ] && [ "$(cfg model.n_layer)" = 8 ] \
  && [ "$(cfg train.grad_clip)" = 1 ] && [ "$(cfg task.tokens)" = 1 ] && ok "the reproduce preset's task (pair tokens) and model" \
  || bad "config: dim $(cfg task.dim) bases $(cfg task.n_bases) rank $(cfg task.rank) layers $(cfg model.n_layer) clip $(cfg train.grad_clip) tokens $(cfg task.tokens)"
[ "$(cfg train.steps)" = 120 ] && [ "$(cfg train.seed)" = 2 ] && [ "$(cfg train.dense_steps)" = 60 ] \
  && [ "$(cfg train.warmup)" = 60 ] && ok "--steps 120 --seed 2: 60 curriculum and warm-up steps" \
  || bad "steps $(cfg train.steps) seed $(cfg train.seed) dense $(cfg train.dense_steps) warmup $(cfg train.warmup)"
for f in decode/td.csv causal/patch.csv report.html; do [ -s "$D/$f" ] || bad "demo --full lacks $f"; done
grep -q 'Phases, beside the paper' "$D/report.html" && grep -q 'the paper (Fig. 2, 7' "$D/report.html" \
  && ok "report has the phase table with the paper's column" || bad "report lacks the phase table"
# --full reads TD at the last y-token a prediction reads (demonstration 11 of 12) and keeps the last
# token's beside it in td_last.csv (same checkpoints and layers); --demo K moves the first to demonstration K
tokens_are() { awk -F, -v t="$2" 'NR > 1 && $8 != t {bad = 1} END {exit bad || NR < 2}' "$1"; }
tokens_are "$D/decode/td.csv" y:11 && ok "td.csv: every row read at y:11" || bad "td.csv token column: $(sed -n 2p "$D/decode/td.csv")"
tokens_are "$D/decode/td_last.csv" y:12 && [ "$(wc -l < "$D/decode/td_last.csv")" = "$(wc -l < "$D/decode/td.csv")" ] \
  && ok "td_last.csv: the same rows read at y:12" || bad "td_last.csv: $(head -2 "$D/decode/td_last.csv" 2>&1)"
grep -q 'y-token of demonstration 11 of 12' "$D/report.html" && grep -q 'decode/td_last.csv' "$D/report.html" \
  && grep -q '; last token [0-9.]*<' "$D/report.html" \
  && ok "the report says where TD is read and gives the last token's beside it" || bad "report lacks where TD is read"
$ICLAB demo --full --steps 40 --seed 2 --demo 8 --out "$T/d8" --threads 2 >/dev/null 2>&1 \
  && tokens_are "$T/d8/decode/td.csv" y:8 && tokens_are "$T/d8/decode/td_last.csv" y:12 \
  && grep -q 'demonstration 8 of 12' "$T/d8/report.html" \
  && ok "--demo 8: td.csv and the report read TD at y:8, td_last.csv at y:12" || bad "--demo 8 not honoured"
$ICLAB demo --full --steps 40 --seed 2 --demo 12 --out "$T/d12" --threads 2 >/dev/null 2>&1 \
  && tokens_are "$T/d12/decode/td.csv" y:12 && [ ! -e "$T/d12/decode/td_last.csv" ] \
  && grep -q 'y-token of the last demonstration' "$T/d12/report.html" \
  && ok "--demo 12: TD at the last token, no second table" || bad "--demo 12 not honoured"
expect_fail "demo --demo 13" "have 12 demonstrations" $ICLAB demo --full --steps 40 --demo 13 --out "$T/x"
grep -q '>phase (c) reached<' "$D/report.html" && ok "report says whether phase (c) was reached" || bad "report lacks the phase (c) row"

expect_fail "demo --full with --preset" "leave out --preset" $ICLAB demo --full --preset demo --out "$T/x"
expect_fail "demo --full with --llm" "not options of --llm" $ICLAB demo --full --llm --out "$T/x"
expect_fail "demo --seed 0" "is not a positive integer" $ICLAB demo --seed 0 --out "$T/x"
expect_fail "demo --steps 0" "steps" $ICLAB demo --steps 0 --out "$T/x"
$ICLAB demo --help | grep -q -- '--full' && ok "demo --help documents --full" || bad "demo --help lacks --full"
$ICLAB train --help | grep -q 'reproduce' && ok "train --help lists the reproduce preset" || bad "train --help lacks the reproduce preset"

# sweep --analyse: the phase columns and table, and a second run skips what is done
S="$T/sweep"
$ICLAB sweep --out "$S" --seeds 1-2 --steps 40 --analyse --threads 2 2>"$T/sweep.err" >/dev/null && ok "sweep --analyse runs" || bad "sweep --analyse failed: $(tail -n 3 "$T/sweep.err")"
head -1 "$S/sweep.csv" | grep -q 'concepts_separated,phase_c,phase_c_step' && ok "sweep.csv has the phase columns" || bad "sweep.csv header: $(head -1 "$S/sweep.csv")"
awk -F, 'NR > 1 && !($10 ~ /^[0-9]+$/ && ($11 == "yes" || $11 == "no")) {exit 1}' "$S/sweep.csv" \
  && ok "every analysed run has its phase (c) verdict" || bad "phase columns: $(cat "$S/sweep.csv")"
# sweep_concepts.csv: a row per concept of each run, its events as whole steps or empty, TD in [0, 1]
nc=$(awk -F, 'NR > 1 && $1 == "seed=1"' "$S/sweep_concepts.csv" | wc -l)
[ "$nc" -ge 2 ] && [ "$(awk -F, 'NR > 1 && $1 == "seed=2"' "$S/sweep_concepts.csv" | wc -l)" = "$nc" ] \
  && head -1 "$S/sweep_concepts.csv" | grep -q '^run,seed,concept,name,drop_step,td_half_step,td_lag,' \
  && ok "sweep_concepts.csv: $nc concepts for each of the 2 runs" || bad "sweep_concepts.csv: $(cat "$S/sweep_concepts.csv")"
awk -F, 'NR > 1 && (!($5 == "" || $5 ~ /^[0-9]+$/) || !($6 == "" || $6 ~ /^[0-9]+$/) || !($11 >= 0 && $11 <= 1 && $11 != "") || $12 !~ /^[0-9]+$/) {exit 1}' \
  "$S/sweep_concepts.csv" && ok "sweep_concepts.csv: steps whole or empty, best TD in [0, 1] with its layer" \
  || bad "sweep_concepts.csv cells: $(cat "$S/sweep_concepts.csv")"
awk -F, 'NR == 1 && $15 != "td_best_last" {exit 1} NR > 1 && $15 != "" {exit 1}' "$S/sweep_concepts.csv" \
  && ok "sweep_concepts.csv: td_best_last empty where TD was read at the last token" || bad "td_best_last: $(cat "$S/sweep_concepts.csv")"
grep -q '<td>[0-9] / [0-9] / [0-9] (transport, by more than 2 SE and half the MSE over the own; replacement [0-9]) of [0-9]</td>' "$S/report.html" && ok "sweep report: each phase-(c) condition's count per run" \
  || bad "sweep report lacks the condition counts"
# the own-mean condition comes from transport patching (its self cell a noise floor), replacement beside
awk -F, 'NR == 1 && ($16 != "patch" || $17 != "replace_self") {exit 1} NR > 1 && ($16 != "transport" || $13 == "" || $17 == "" || $18 == "") {exit 1}' \
  "$S/sweep_concepts.csv" && ok "sweep_concepts.csv: own-mean condition from transport patching, replacement beside" \
  || bad "patch columns: $(cat "$S/sweep_concepts.csv")"
awk -F, 'NR == 1 && ($19 != "cross_patch_se" || $20 != "cross_patch_z" || $21 != "cross_patch_rel") {exit 1}
  NR > 1 && !($19 != "" && $19 >= 0 && $20 != "" && $21 != "") {exit 1}' \
  "$S/sweep_concepts.csv" && ok "sweep_concepts.csv: the smallest cross-transport's standard error, z and size" || bad "cross_patch_se/z: $(cat "$S/sweep_concepts.csv")"
a="$S/runs/seed=1/causal"
[ -s "$a/patch_shift.csv" ] && [ "$(cut -d, -f1 "$a/patch_shift.csv" | sort -u)" = "$(cut -d, -f1 "$a/patch.csv" | sort -u)" ] \
  && ok "the analysis shift-patches every checkpoint it replacement-patches" || bad "patch_shift.csv steps: $(cut -d, -f1 "$a/patch_shift.csv" | sort -u | tr '\n' ' ')"
awk -F, 'NR == 1 && $7 != "delta_se" {exit 1} NR > 1 && $3 == $4 && $7 != 0 {exit 1} NR > 1 && $3 != $4 && !($7 > 0) {exit 1}' "$a/patch_shift.csv" \
  && ok "patch_shift.csv: standard errors 0 for self-shifts, positive for the others" || bad "delta_se: $(head -5 "$a/patch_shift.csv")"
# transport patching at every checkpoint, at one layer the model has (the last block's input at most),
# its self cells a noise floor with a spread (two halves of 100 sequences each)
[ -s "$a/patch_transport.csv" ] && [ "$(cut -d, -f1 "$a/patch_transport.csv" | sort -u)" = "$(cut -d, -f1 "$a/patch.csv" | sort -u)" ] \
  && [ "$(awk -F, 'NR > 1 {print $2}' "$a/patch_transport.csv" | sort -u | wc -l)" = 1 ] \
  && awk -F, -v L="$(cfg_of "$S/runs/seed=1" model.n_layer)" 'NR > 1 && !($2 >= 0 && $2 < L) {exit 1} NR > 1 && $3 == $4 && !($7 > 0) {exit 1} NR > 1 && $5 + 0 != $5 {exit 1}' "$a/patch_transport.csv" \
  && ok "the analysis transport-patches every checkpoint at one layer; self cells with a standard error" \
  || bad "patch_transport.csv: $(head -5 "$a/patch_transport.csv" 2>&1)"
grep -q 'Phases per run' "$S/report.html" && grep -q 'analysed runs reach the paper' "$S/report.html" \
  && ok "sweep report has the per-run phase table" || bad "sweep report lacks the phase table"
[ "$(grep -c 'sweep: analysing' "$T/sweep.err")" = 2 ] && ok "both runs analysed" || bad "analysis messages: $(grep -c 'sweep: analysing' "$T/sweep.err")"
$ICLAB sweep --out "$S" --seeds 1-2 --steps 40 --analyse --threads 2 2>"$T/sweep2.err" >/dev/null
grep -q 'sweep: analysing' "$T/sweep2.err" && bad "a second sweep --analyse analysed again" || ok "a second sweep --analyse skips analysed runs"
# a sweep copied without its checkpoints (as docs/data keeps one) reports the same tables
mkdir -p "$T/copy" && cp -r "$S/grid.txt" "$S/status" "$S/runs" "$T/copy/" && rm -rf "$T"/copy/runs/*/checkpoints
$ICLAB sweep --out "$T/copy" --seeds 1-2 --steps 40 --report-only >/dev/null 2>&1 \
  && cmp -s "$S/sweep_concepts.csv" "$T/copy/sweep_concepts.csv" && [ "$(grep -c ',complete$' "$T/copy/sweep.csv")" = 2 ] \
  && ok "a copy without checkpoints: the same per-concept table, both runs complete" \
  || bad "copy without checkpoints: $(cat "$T/copy/sweep.csv")"
# the reproduce preset's sweep analyses as demo --full does: y:11, the last token beside
R="$T/rsweep"
$ICLAB sweep --preset reproduce --out "$R" --seeds 3 --steps 30 --dense-steps 10 --warmup 10 --analyse --threads 2 >/dev/null 2>"$T/rsweep.err" \
  && tokens_are "$R/runs/seed=3/decode/td.csv" y:11 && tokens_are "$R/runs/seed=3/decode/td_last.csv" y:12 \
  && awk -F, 'NR > 1 && !($15 >= 0 && $15 <= 1 && $15 != "") {exit 1} END {exit NR < 5}' "$R/sweep_concepts.csv" \
  && ok "sweep --preset reproduce --analyse: TD at y:11, td_best_last in [0, 1]" || bad "reproduce sweep: $(tail -n 3 "$T/rsweep.err"; cat "$R/sweep_concepts.csv")"
finish
