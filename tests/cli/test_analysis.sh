#!/usr/bin/env bash
# iclab decode / patch / report end to end on a tiny run, and their bad input. Run from the repo root.
set -u
ICLAB=${ICLAB:-build/iclab}
T=$(mktemp -d /tmp/iclab-test-analysis.XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/lib.bash"

$ICLAB train --preset tiny --out "$T/run" --quiet || bad "tiny run failed"
$ICLAB decode "$T/run" --per-concept 20 >/dev/null 2>&1 || bad "decode failed"
td="$T/run/decode/td.csv"
[ -s "$td" ] && ok "td.csv written" || bad "no td.csv"
# one row per checkpoint x layer x (concepts + overall): 6 checkpoints, 3 layers (tiny: 2 blocks), 5 rows
rows=$(($(wc -l < "$td") - 1))
[ "$rows" -eq $((6 * 3 * 5)) ] && ok "td.csv has $rows rows" || bad "td.csv has $rows rows, expected 90"
awk -F, 'NR > 1 && ($5 < 0 || $5 > 1) {bad=1} END {exit bad}' "$td" && ok "TD values in [0,1]" || bad "TD out of range"
[ -s "$T/run/decode/labels.npy" ] && [ -s "$T/run/decode/reps_step_000000060.npy" ] && ok "representations saved" || bad "no .npy files"
[ "$(head -1 "$td")" = "step,layer,concept,name,td,chance,probe_acc,token" ] && ok "td.csv header" || bad "td.csv header: $(head -1 "$td")"
awk -F, 'NR > 1 && $7 != "nan" && ($7 < 0 || $7 > 1) {bad=1} END {exit bad}' "$td" && ok "probe accuracies in [0,1]" || bad "probe accuracy out of range"
[ "$(wc -l < "$T/run/decode/td.jsonl")" -eq 90 ] && ! grep -q -i nan "$T/run/decode/td.jsonl" && ok "td.jsonl: 90 rows, valid numbers" || bad "td.jsonl malformed"
[ "$(ls "$T/run/decode" | grep -c '^umap_step_')" -eq 3 ] && [ "$(ls "$T/run/decode" | grep -c '^pca_step_')" -eq 3 ] && ok "embeddings at 3 checkpoints" || bad "embeddings missing"
# --table: a second reading beside td.csv, which stays as it was
cp "$td" "$T/td_before.csv"
$ICLAB decode "$T/run" --per-concept 20 --demo 5 --table td_y5 --no-reps --no-probe --embed 0 >/dev/null 2>&1 \
  && [ "$(wc -l < "$T/run/decode/td_y5.csv")" = "$(wc -l < "$td")" ] && [ -s "$T/run/decode/td_y5.jsonl" ] \
  && awk -F, 'NR > 1 && $8 != "y:5" {bad = 1} END {exit bad}' "$T/run/decode/td_y5.csv" && cmp -s "$td" "$T/td_before.csv" \
  && ok "decode --table td_y5: TD at y:5 beside an unchanged td.csv" || bad "decode --table: $(head -2 "$T/run/decode/td_y5.csv" 2>&1)"
$ICLAB patch "$T/run" --per-concept 10 --layer 1 --steps 15,30,60 >/dev/null 2>&1 || bad "patch failed"
for f in patch heads algo offbasis; do [ -s "$T/run/causal/$f.csv" ] && ok "causal/$f.csv written" || bad "no causal/$f.csv"; done
# --shift: only patch_shift.csv, self-shifts exactly 0, the other tables untouched
cp "$T/run/causal/patch.csv" "$T/patch_before.csv"
$ICLAB patch "$T/run" --shift --per-concept 10 --layer 1 --at all-y --steps 30,60 >/dev/null 2>&1 \
  && [ "$(($(wc -l < "$T/run/causal/patch_shift.csv") - 1))" -eq 32 ] && cmp -s "$T/run/causal/patch.csv" "$T/patch_before.csv" \
  && awk -F, 'NR > 1 && $3 == $4 && $5 != 0 {bad = 1} NR > 1 && $3 != $4 && $5 != 0 {moved = 1} END {exit bad || !moved}' "$T/run/causal/patch_shift.csv" \
  && ok "patch --shift: 4x4 at 2 checkpoints, self-shifts 0, cross-shifts move, patch.csv unchanged" \
  || bad "patch --shift: $(head -5 "$T/run/causal/patch_shift.csv" 2>&1)"
# --mse all: the MSE over every position instead of the final one, into its own table only
cp "$T/run/causal/patch_shift.csv" "$T/shift_before.csv"
$ICLAB patch "$T/run" --shift --mse all --per-concept 10 --layer 1 --at all-y --steps 30,60 >/dev/null 2>&1 \
  && [ "$(($(wc -l < "$T/run/causal/patch_shift_allpos.csv") - 1))" -eq 32 ] && cmp -s "$T/run/causal/patch_shift.csv" "$T/shift_before.csv" \
  && cmp -s "$T/run/causal/patch.csv" "$T/patch_before.csv" \
  && awk -F, 'NR > 1 && $3 == $4 && ($5 != 0 || $7 != 0) {bad = 1} NR > 1 && $3 != $4 && !($7 > 0) {bad = 1} END {exit bad}' "$T/run/causal/patch_shift_allpos.csv" \
  && ! cmp -s <(cut -d, -f6 "$T/run/causal/patch_shift_allpos.csv") <(cut -d, -f6 "$T/run/causal/patch_shift.csv") \
  && ok "patch --shift --mse all: its own table, self 0, other base MSE, the other tables unchanged" \
  || bad "patch --mse all: $(head -5 "$T/run/causal/patch_shift_allpos.csv" 2>&1)"
# --transport at the query token and --shift at every token: tables of their own, the others unchanged;
# a self-transport moves by the halves' noise (a spread), a self-shift by exactly 0
$ICLAB patch "$T/run" --transport --at query --per-concept 10 --layer 1 --steps 30,60 >/dev/null 2>&1 \
  && [ "$(($(wc -l < "$T/run/causal/patch_transport_query.csv") - 1))" -eq 32 ] && cmp -s "$T/run/causal/patch_shift.csv" "$T/shift_before.csv" \
  && cmp -s "$T/run/causal/patch.csv" "$T/patch_before.csv" && [ ! -e "$T/run/causal/patch_transport.csv" ] \
  && awk -F, 'NR > 1 && !($7 > 0) {bad = 1} END {exit bad}' "$T/run/causal/patch_transport_query.csv" \
  && ok "patch --transport --at query: its own table, every cell with a spread, the other tables unchanged" \
  || bad "patch --transport --at query: $(head -5 "$T/run/causal/patch_transport_query.csv" 2>&1)"
$ICLAB patch "$T/run" --shift --at all-tokens --per-concept 10 --layer 1 --steps 60 >/dev/null 2>&1 \
  && [ "$(($(wc -l < "$T/run/causal/patch_shift_alltokens.csv") - 1))" -eq 16 ] && cmp -s "$T/run/causal/patch_shift.csv" "$T/shift_before.csv" \
  && awk -F, 'NR > 1 && $3 == $4 && ($5 != 0 || $7 != 0) {bad = 1} NR > 1 && $3 != $4 && $5 != 0 {moved = 1} END {exit bad || !moved}' "$T/run/causal/patch_shift_alltokens.csv" \
  && ok "patch --shift --at all-tokens: its own table, self 0, cross moves" \
  || bad "patch --at all-tokens: $(head -5 "$T/run/causal/patch_shift_alltokens.csv" 2>&1)"
out=$($ICLAB patch "$T/run" --mse most 2>&1); rc=$?
[ $rc -ne 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && ok "patch --mse most: one-line error" || bad "patch --mse most: rc $rc, $out"
# the committed sweeps of docs/reproduction.md (seeds 2-6 by shift patching, the fresh seeds by transport
# patching under its two rules) rebuild to their committed tables; the seed range is sweep.csv's first to last row
for D in docs/data/reproduce-pairs docs/data/reproduce-pairs-fresh docs/data/reproduce-pairs-rule2; do
  [ -f "$D/sweep.csv" ] || continue
  R="$T/$(basename "$D")"
  seeds="$(sed -n 2p "$D/sweep.csv" | cut -d, -f2)-$(tail -n 1 "$D/sweep.csv" | cut -d, -f2)"
  mkdir -p "$R" && cp -r "$D/grid.txt" "$D/status" "$D/runs" "$R/"
  $ICLAB sweep --preset reproduce --seeds "$seeds" --threads 1 --out "$R" --report-only >/dev/null 2>&1 \
    && cmp -s "$R/sweep_concepts.csv" "$D/sweep_concepts.csv" && cmp -s "$R/sweep.csv" "$D/sweep.csv" \
    && ok "$D rebuilds to its tables" || bad "$D: $(diff "$R/sweep_concepts.csv" "$D/sweep_concepts.csv" 2>&1 | head -3)"
done
# the shift sweep's report says which phase-(c) yes rests on shift signs within 2 standard errors
R="$T/reproduce-pairs"
[ ! -f "$R/report.html" ] || { grep -q 'yes, from step 25000 (shift signs within 2 SE for 4 of 4)' "$R/report.html" \
  && grep -q '4 / 4 / 4 (shift, 2 by more than 2 SE; replacement 3) of 4' "$R/report.html" \
  && ok "docs/data/reproduce-pairs: the report flags yes within the noise" || bad "docs/data/reproduce-pairs: the report does not flag yes within the noise"; }
D=docs/data/reproduce-pairs-rule2
# per seed: phase (c) and its first step as docs/reproduction.md's second-rule table gives them
if [ -f "$D/sweep.csv" ]; then
  for want in 9:yes,40000 10:yes,55000 11:yes,35000 12:yes,50000 13:yes,35000; do
    grep -q "^seed=${want%%:*},.*,${want#*:}," "$D/sweep.csv" || bad "rule2: seed=${want%%:*} is not ${want#*:}: $(grep "^seed=${want%%:*}," "$D/sweep.csv")"
  done
  [ "$(($(wc -l < "$D/sweep.csv") - 1))" -eq 5 ] \
    && awk -F, 'NR > 1 && $16 == "transport" && !($21 > 0.5 && $20 > 2) {exit 1}' "$D/sweep_concepts.csv" \
    && ok "seeds 9-13: phase (c) by transport as the second rule's table says, every concept above 2 SE and half the MSE" \
    || bad "rule2: $(cat "$D/sweep.csv")"
  # the control: at step 3,035 (the plateau) the size condition fails in every seed
  nf=0
  for f in "$D"/runs/seed=*/causal/patch_transport.csv; do
    awk -F, '$1 == 3035 {d[$3,$4] = $5; b[$3] = $6; se[$3,$4] = $7; if ($3 + 1 > n) n = $3 + 1}
      END {for (s = 0; s < n; s++) for (t = 0; t < n; t++) if (t != s) { m = d[s,t] - d[s,s]
        if (!(m > 2 * sqrt(se[s,t]^2 + se[s,s]^2) && m > 0.5 * b[s])) exit 0 }
        exit 1}' "$f" && nf=$((nf + 1)) || bad "rule2 control holds at 3,035: $f"
  done
  [ "$nf" -eq 5 ] && ok "seeds 9-13: the control (the size condition at step 3,035) fails in all five"
fi
D=docs/data/reproduce-pairs-fresh
[ ! -f "$D/sweep.csv" ] || { grep -q '^seed=7,.*,no,45000,' "$D/sweep.csv" && grep -q '^seed=8,.*,yes,55000,' "$D/sweep.csv" \
  && ok "seeds 7, 8: seed 7 held phase (c) at 45,000 but not at the end, seed 8 from 55,000" || bad "fresh: $(cat "$D/sweep.csv")"; }
[ "$(($(wc -l < "$T/run/causal/patch.csv") - 1))" -eq 48 ] && ok "4x4 patching matrix at 3 checkpoints" || bad "patching matrix has the wrong size"
grep -qi nan "$T/run/causal/patch.csv" "$T/run/causal/heads.csv" && bad "NaN in the causal results" || ok "causal results are finite"
# off-basis sensitivity: 4 concepts x 6 predictors x 3 checkpoints; the oracle never moves, the model does
[ "$(($(wc -l < "$T/run/causal/offbasis.csv") - 1))" -eq 72 ] && ok "offbasis.csv has 72 rows" || bad "offbasis.csv has the wrong size"
awk -F, '$3=="oracle-ls" && $4!=0 {b=1} $3=="model" && $4>0 {m=1} END {exit !(m && !b)}' "$T/run/causal/offbasis.csv" \
  && ok "off-basis sensitivity: oracle 0, model > 0" || bad "off-basis sensitivity looks wrong"
$ICLAB report "$T/run" >/dev/null 2>&1 || bad "report failed"
[ -s "$T/run/report.html" ] && ok "report.html written" || bad "no report.html"
for f in mse_by_concept td_over_training td_heatmap algorithm umap pca mse_by_position patching patching_over_training offbasis head_ablation train_loss; do
  [ -s "$T/run/figures/$f.png" ] && [ -s "$T/run/figures/$f.svg" ] && ok "figure $f" || bad "figure $f missing or empty"
done
grep -q "<svg" "$T/run/report.html" && ok "report embeds figures" || bad "report has no figures"
grep -qE 'src="https?:' "$T/run/report.html" && bad "report references the network" || ok "report is self-contained"

# the summary's reading of a run with a dense curriculum, on a hand-made run folder: basis 1 falls
# from 1.0 (step 1000) to 0.3 (step 1500) and so passes the best basis-agnostic estimator (ridge,
# mean 0.5 over positions; Lasso 0.55); basis 2 stays at 0.6. With the 5-evaluation mean, basis 1
# is below 0.5 from step 1400 on; its loss drop (halfway from 1.0 to 0.3) is at step 1300.
S="$T/synthetic"
mkdir -p "$S"
awk 'BEGIN { print "step,concept,name,mse"
  for (s = 0; s <= 3000; s += 100) {
    a = s <= 1000 ? 1.0 : (s >= 1500 ? 0.3 : 1.0 - 0.7 * (s - 1000) / 500)
    printf "%d,0,basis 1,%.4f\n%d,1,basis 2,0.6\n%d,-1,all,%.4f\n", s, a, s, s, (a + 0.6) / 2 } }' > "$S/eval.csv"
awk 'BEGIN { print "step,concept,position,mse"; for (k = 0; k < 2; k++) for (p = 0; p < 4; p++) printf "3000,%d,%d,0.5\n", k, p }' > "$S/eval_positions.csv"
awk 'BEGIN { print "estimator,concept,position,mse"; split("1.0 0.5 0.3 0.2", r); split("1.0 0.6 0.4 0.2", l)
  for (k = -1; k < 2; k++) for (p = 1; p <= 4; p++) printf "ridge,%d,%d,%s\nlasso,%d,%d,%s\n", k, p - 1, r[p], k, p - 1, l[p] }' > "$S/estimators.csv"
printf '{\n  "train.dense_steps": 500\n}\n' > "$S/config.json"
# off-basis sensitivity: basis 1's model falls below ridge's (0.2) and Lasso's (0.25) at step 1500 for
# good (after a dip at step 500 that does not last); basis 2's stays above
awk 'BEGIN { print "step,concept,predictor,sensitivity"
  for (s = 0; s <= 3000; s += 500) for (k = 0; k < 2; k++) {
    m = k == 1 ? 0.3 : (s >= 1500 || s == 500 ? 0.1 : 0.3)
    printf "%d,%d,model,%g\n%d,%d,ridge,0.2\n%d,%d,lasso,0.25\n%d,%d,ls,0.4\n", s, k, m, s, k, s, k, s, k } }' > "$S/causal_offbasis.csv"
mkdir -p "$S/causal" && mv "$S/causal_offbasis.csv" "$S/causal/offbasis.csv"
# TD at layer 1 (layer 0 stays at chance): basis 1 rises from chance (0.5) at step 1000 to 1.0 at
# 1500, basis 2 stays at chance. So the rise runs from step 1000 to 1500, over which basis 1's MSE
# (5-evaluation means) goes from 0.916 to 0.384 and basis 2's stays at 0.600.
mkdir -p "$S/decode"
awk 'BEGIN { print "step,layer,concept,name,td,chance,probe_acc"
  for (s = 0; s <= 3000; s += 500) for (l = 0; l < 2; l++) {
    t = (l == 1 && s >= 1500) ? 1.0 : 0.5
    printf "%d,%d,0,basis 1,%g,0.5,%g\n%d,%d,1,basis 2,0.5,0.5,0.5\n%d,%d,-1,all,%g,0.5,0.5\n", s, l, t, t, s, l, s, l, (t + 0.5) / 2 } }' > "$S/decode/td.csv"
$ICLAB report "$S" >/dev/null 2>&1 || bad "report of the hand-made run failed"
html="$S/report.html"
grep -q "basis 1: loss fell at step 1300; from step 1500 on, redrawing .*; it stays below the best basis-agnostic estimator (0.500) from step 1400" "$html" \
  && ok "summary: basis 1 passes the basis-agnostic estimators at step 1400" || bad "summary misreads basis 1"
grep -q "its TD at layer 1 stays above 0.75 (halfway from chance to its maximum 1.00) from step 1500; while it rose (steps 1000 to 1500) its MSE went from 0.916 to 0.384, the other concepts&#39; from 0.600 to 0.600" "$html" \
  && ok "summary: basis 1's TD rise and the loss change it came with" || bad "summary misreads the TD rise"
grep -q "basis 2: no clear loss drop .*; it does not stay below the best basis-agnostic estimator (0.500); its TD at layer 1 never rose clearly above chance (0.50; at most 0.50)" "$html" \
  && ok "summary: basis 2 stays at the basis-agnostic level" || bad "summary misreads basis 2"
grep -q "Concept-specific decoding for some concepts only (the paper&#39;s phase (b)): basis 1 from step 1500; basis 2 stays basis-agnostic" "$html" \
  && ok "summary: basis 1 reads its own basis from step 1500, basis 2 never" || bad "summary lacks the phase (b) line"
grep -q "The first 500 steps were a curriculum on dense regression;" "$html" && ok "summary names the curriculum" || bad "summary lacks the curriculum"
printf '{\n  "train.dense_steps": 500,\n  "train.curriculum": 1\n}\n' > "$S/config.json"
$ICLAB report "$S" >/dev/null 2>&1 && grep -q "The first 500 steps were a curriculum on a mixture of regression families (linear, quadratic, sparse, leaky-ReLU);" "$html" \
  && ok "summary names the families curriculum" || bad "summary lacks the families curriculum"

# bad input
mkdir -p "$T/empty/checkpoints"
expect_fail "decode without checkpoints" "no checkpoints" $ICLAB decode "$T/empty"
expect_fail "decode of a missing folder" "no checkpoints folder" $ICLAB decode "$T/missing"
expect_fail "demonstration out of range" "out of range" $ICLAB decode "$T/run" --demo 99
expect_fail "unknown checkpoint step" "no checkpoint at step 7" $ICLAB decode "$T/run" --steps 7
expect_fail "bad metric" "." $ICLAB decode "$T/run" --metric manhattan
expect_fail "a table name that is a path" "letters, digits" $ICLAB decode "$T/run" --table ../td
expect_fail "patch layer out of range" "out of range" $ICLAB patch "$T/run" --layer 9
expect_fail "patch at an unknown token set" "not last-y, all-y, query or all-tokens" $ICLAB patch "$T/run" --at x
expect_fail "patch --shift --transport" "exclude each other" $ICLAB patch "$T/run" --shift --transport
expect_fail "report of a missing run" "cannot open" $ICLAB report "$T/missing"
$ICLAB train --preset tiny --bases 1 --steps 2 --out "$T/one" --quiet || bad "one-concept run failed"
expect_fail "probe set with one concept" "at least two concepts" $ICLAB decode "$T/one"
expect_fail "more neighbours than points" "larger than k" $ICLAB decode "$T/run" --per-concept 2 --k 10

finish
