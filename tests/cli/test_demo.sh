#!/usr/bin/env bash
# The main job's path end to end: `iclab demo --preset tiny` trains, decodes every checkpoint,
# patches at every checkpoint and writes the report, the same code as `iclab demo` on the demo
# preset in seconds; `iclab bench` on tiny shapes prints its line; bad input to both is a clear
# error. Run from the repository root.
set -u
ICLAB=${ICLAB:-build/iclab}
T=$(mktemp -d /tmp/iclab-test-demo.XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/lib.bash"

D="$T/demo"
out=$($ICLAB demo --preset tiny --out "$D" --threads 2 2>"$T/demo.err") && ok "iclab demo --preset tiny runs" || { bad "iclab demo --preset tiny failed: $(tail -n 3 "$T/demo.err")"; finish; exit; }
echo "$out" | grep -q "open $D/report.html" && ok "demo names its report" || bad "demo output: $out"
for f in config.json train.csv eval.csv estimators.csv decode/td.csv decode/labels.npy causal/patch.csv causal/heads.csv causal/algo.csv causal/offbasis.csv report.html; do
  [ -s "$D/$f" ] || bad "demo run lacks $f"
done
nck=$(ls "$D/checkpoints" | grep -c '\.gguf$')
layers=$(awk -F'[:,]' '/"model.n_layer"/ {print $2 + 0}' "$D/config.json")
nc=$(awk -F, 'NR > 1 && $2 >= 0 {print $2}' "$D/eval.csv" | sort -u | wc -l)
[ "$nck" -ge 3 ] && [ "$layers" -ge 1 ] && [ "$nc" -ge 2 ] && ok "$nck checkpoints, $layers layers, $nc concepts" || bad "checkpoints $nck, layers '$layers', concepts $nc"
# decode: every checkpoint x layer (embedding and each block) x concept (and all), td in [0, 1]
rows=$(( $(wc -l < "$D/decode/td.csv") - 1 ))
[ "$rows" -eq $(( nck * (layers + 1) * (nc + 1) )) ] && ok "td.csv covers every checkpoint x layer x concept ($rows rows)" || bad "td.csv has $rows rows, want $(( nck * (layers + 1) * (nc + 1) ))"
awk -F, 'NR > 1 && !($5 >= 0 && $5 <= 1) {exit 1}' "$D/decode/td.csv" && ok "every td in [0, 1]" || bad "td.csv holds a td outside [0, 1]"
# patch: every checkpoint x source x target concept, finite
rows=$(( $(wc -l < "$D/causal/patch.csv") - 1 ))
[ "$rows" -eq $(( nck * nc * nc )) ] && ok "patch.csv covers every checkpoint x source x target ($rows rows)" || bad "patch.csv has $rows rows, want $(( nck * nc * nc ))"
awk -F, 'NR > 1 && !($5 + 0 == $5 && $6 + 0 == $6) {exit 1}' "$D/causal/patch.csv" && ok "patch.csv numbers are finite" || bad "patch.csv holds a non-number"
# at the paper's relative depth (layer 5 of 12): round(5 L / 12) blocks
want=$(( (5 * layers + 6) / 12 ))
got=$(awk -F, 'NR > 1 {print $2}' "$D/causal/patch.csv" | sort -u | tr '\n' ' ')
[ "$got" = "$want " ] && ok "patched after $want of $layers blocks" || bad "patch.csv layers '$got', want $want"
# report: the summary, and every figure it shows exists and is a PNG
grep -q '>Summary' "$D/report.html" && ok "report has its summary" || bad "report lacks the summary"
nfig=0
for f in $(grep -o 'id="sec-[0-9]*">[a-z_]*' "$D/report.html" | sed 's/.*>//'); do
  nfig=$((nfig+1))
  head -c 4 "$D/figures/$f.png" 2>/dev/null | grep -q PNG || bad "figure $f.png missing or not a PNG"
done
[ "$nfig" -ge 10 ] && ok "report shows $nfig figures, each a PNG" || bad "report shows only $nfig figures"
# the folder is an iclab run now: a second demo replaces it; a folder that is not a run is refused
mkdir -p "$T/other"; echo keep > "$T/other/notes.txt"
expect_fail "demo refuses a folder that is not an iclab run" "refusing to overwrite" $ICLAB demo --preset tiny --out "$T/other"
[ -s "$T/other/notes.txt" ] && ok "the refused folder is untouched" || bad "demo touched a folder that is not a run"
expect_fail "demo: unknown preset" "unknown preset 'nope'" $ICLAB demo --preset nope --out "$T/x"
expect_fail "demo: unknown option" "unknown option --bogus" $ICLAB demo --bogus 1
expect_fail "demo: bad thread count" "threads" $ICLAB demo --threads 0 --out "$T/x"
$ICLAB demo --help | grep -q -- '--preset' && ok "demo --help documents --preset" || bad "demo --help lacks --preset"

# bench: one line with positive, finite numbers
line=$($ICLAB bench --layers 1 --width 16 --heads 2 --batch 4 --points 4 --dim 4 --steps 3 --warmup 1 --threads 2) || bad "iclab bench failed"
echo "$line"
echo "$line" | grep -qE '^params=[0-9]+ steps_per_s=[0-9.]+ tokens_per_s=[0-9]+ gflops=[0-9.]+ loss=[0-9.]+$' \
  && ok "bench prints params, steps/s, tokens/s, GFLOP/s and loss" || bad "bench line: $line"
echo "$line" | awk '{for (i = 1; i <= NF; i++) {split($i, kv, "="); if (!(kv[2] + 0 > 0)) exit 1}}' \
  && ok "bench numbers are positive" || bad "bench printed a zero or non-number: $line"
# OpenBLAS's kernels: never its generic SSE3 fallback on a CPU with AVX2, and a set the user names is kept
core=$($ICLAB bench --blas-core)
if grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
  [ -n "$core" ] && [ "$core" != Prescott ] && ok "OpenBLAS runs its $core kernels on this AVX2 CPU" || bad "OpenBLAS kernels: '$core'"
fi
[ "$(OPENBLAS_CORETYPE=Haswell $ICLAB bench --blas-core)" = Haswell ] && ok "an explicit OPENBLAS_CORETYPE is kept" \
  || bad "OPENBLAS_CORETYPE=Haswell was not kept"
expect_fail "bench: zero layers" "layers must be" $ICLAB bench --layers 0 --steps 1
expect_fail "bench: heads do not divide the width" "divide the width" $ICLAB bench --heads 3 --width 16 --steps 1
expect_fail "bench: zero steps" "at least 1" $ICLAB bench --steps 0
expect_fail "bench: unknown option" "unknown option --bogus" $ICLAB bench --bogus 1
expect_fail "bench: not a count" "not a valid count" $ICLAB bench --steps x
finish
