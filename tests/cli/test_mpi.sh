#!/usr/bin/env bash
# Open MPI: `iclab sweep` (sequential and over 2 ranks) and data-parallel `iclab train` on 2 ranks.
#   - a 2-seed sweep under mpirun -np 2 writes the same run folders as two single `iclab train` runs;
#     re-running it skips finished runs; an unfinished run is resumed bit for bit; a sweep killed
#     mid-run (timeout) leaves resumable folders that finish as an uninterrupted run would
#   - data parallel on 2 ranks matches 1 rank with the same global batch within a relative 1e-4 on
#     every logged loss, gradient norm and held-out MSE; two 2-rank runs are bit-identical; stop at
#     K + resume to 2K == straight 2K (bit for bit, same rank count); SIGINT to mpirun stops every
#     rank at the same step and the resumed run ends where a straight one does
#   - bad input: empty grid, unknown field, a rank count that does not divide the batch, resuming
#     on another rank count
# Skips (SKIP line) when mpirun is missing or iclab was built without MPI; CI has both.
set -u
ICLAB=${ICLAB:-build/iclab}
T=$(mktemp -d /tmp/iclab-test-mpi.XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/lib.bash"

# 1. bad sweep input (no MPI needed)
expect_fail "sweep: empty seed list" "grid would be empty" $ICLAB sweep --preset tiny --seeds= --out "$T/x"
expect_fail "sweep: empty value list" "grid would be empty|empty value" $ICLAB sweep --preset tiny --set lr= --out "$T/x"
expect_fail "sweep: unknown field" "unknown field 'bogus'" $ICLAB sweep --preset tiny --set bogus=1,2 --out "$T/x"
expect_fail "sweep: bad value" "is not" $ICLAB sweep --preset tiny --set layers=2,many --out "$T/x"
expect_fail "sweep: seed as a field" "give the seeds with" $ICLAB sweep --preset tiny --set seed=1,2 --out "$T/x"
expect_fail "sweep: bad seed range" "is empty" $ICLAB sweep --preset tiny --seeds 4-1 --out "$T/x"
expect_fail "sweep: invalid combination" "layers must be" $ICLAB sweep --preset tiny --set layers=1,0 --out "$T/x"
expect_fail "sweep: no --out" "DIR is required" $ICLAB sweep --preset tiny --seeds 1-2
[ ! -e "$T/x" ] && ok "rejected sweeps leave no folder" || bad "a rejected sweep created its folder"

# sequential sweep: 1 seed, its run folder matches iclab train's
$ICLAB sweep --preset tiny --seeds 5 --threads 1 --out "$T/seq" --quiet || bad "sequential sweep failed"
$ICLAB train --preset tiny --seed 5 --threads 1 --out "$T/ref5" --quiet || bad "reference run failed"
cmp -s "$T/ref5/checkpoints/step_000000060.gguf" "$T/seq/runs/seed=5/checkpoints/step_000000060.gguf" && ok "sequential sweep run == iclab train" || bad "sequential sweep run differs"
# the plateau-exit event (held-out MSE over all concepts < 0.5; a tiny run never gets there, so the
# numbers are edited in): first evaluated step below the threshold, in sweep.csv
awk -F, 'BEGIN {OFS = ","} NR > 1 && $2 == -1 && $1 >= 30 {$4 = 0.4} {print}' "$T/seq/runs/seed=5/eval.csv" > "$T/e.csv" && cp "$T/e.csv" "$T/seq/runs/seed=5/eval.csv"
$ICLAB sweep --preset tiny --seeds 5 --threads 1 --out "$T/seq" --report-only --quiet
[ "$(awk -F, 'NR == 2 {print $8}' "$T/seq/sweep.csv")" = 30 ] && [ "$(awk -F, 'NR == 2 {print $7}' "$T/seq/sweep.csv")" = 0.4 ] \
  && ok "plateau exit at the first evaluation below 0.5" || bad "plateau exit wrong: $(cat "$T/seq/sweep.csv")"
$ICLAB sweep --preset tiny --seeds 5 --threads 1 --out "$T/seq" --report-only --quiet --plateau-mse 0.3
[ "$(awk -F, 'NR == 2 {print $8}' "$T/seq/sweep.csv")" = never ] && grep -q '"plateau_exit_mse": 0.3' "$T/seq/sweep.json" \
  && ok "--plateau-mse sets the threshold" || bad "--plateau-mse ignored: $(cat "$T/seq/sweep.csv")"
expect_fail "bad --plateau-mse" "not a positive number" $ICLAB sweep --preset tiny --seeds 5 --out "$T/seq" --plateau-mse -1
expect_fail "sweep folder of another grid" "another grid" $ICLAB sweep --preset tiny --seeds 6 --threads 1 --out "$T/seq" --quiet
# the same grid with a seed added: grid.txt lists both, seed 5's run is kept, seed 6 trains
cp "$T/seq/runs/seed=5/checkpoints/step_000000060.gguf" "$T/ck5.gguf"
$ICLAB sweep --preset tiny --seeds 5,6 --threads 1 --out "$T/seq" --quiet \
  && grep -qx 'seeds 5,6' "$T/seq/grid.txt" && cmp -s "$T/ck5.gguf" "$T/seq/runs/seed=5/checkpoints/step_000000060.gguf" \
  && [ -s "$T/seq/runs/seed=6/checkpoints/step_000000060.gguf" ] && [ "$(grep -c ',complete$' "$T/seq/sweep.csv")" = 2 ] \
  && ok "adding a seed to a sweep folder keeps its runs and trains the new one" || bad "adding a seed: $(cat "$T/seq/grid.txt" "$T/seq/sweep.csv")"
# a sweep folder copied without checkpoints (as docs/data keeps one) takes a seed: only it trains
mkdir -p "$T/cp" && cp -r "$T/seq/grid.txt" "$T/seq/status" "$T/seq/runs" "$T/cp/" && rm -rf "$T"/cp/runs/*/checkpoints
cp "$T/cp/runs/seed=5/eval.csv" "$T/ev5.csv"
$ICLAB sweep --preset tiny --seeds 5-7 --threads 1 --out "$T/cp" 2>"$T/cp.err" >/dev/null \
  && [ "$(grep -c 'complete, skipped' "$T/cp.err")" = 2 ] && cmp -s "$T/ev5.csv" "$T/cp/runs/seed=5/eval.csv" \
  && [ -s "$T/cp/runs/seed=7/checkpoints/step_000000060.gguf" ] && [ ! -e "$T/cp/runs/seed=5/checkpoints" ] \
  && ok "a copy without checkpoints keeps its complete runs and trains only the added seed" || bad "copy + seed: $(cat "$T/cp.err")"
expect_fail "sweep folder: a seed dropped" "another grid" $ICLAB sweep --preset tiny --seeds 6 --threads 1 --out "$T/seq" --quiet
expect_fail "sweep folder: seeds added to another base" "another grid" $ICLAB sweep --preset tiny --seeds 5-7 --steps 61 --threads 1 --out "$T/seq" --quiet
expect_fail "sweep into a folder that is not a sweep's" "not a sweep folder" $ICLAB sweep --preset tiny --seeds 6 --out "$T/ref5" --quiet

if ! command -v mpirun >/dev/null 2>&1; then
  echo "SKIP mpirun not found (install openmpi-bin and libopenmpi-dev, rebuild)"
  finish; exit $?
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# shared memory between the ranks of this machine; no single-copy (fails in containers without ptrace)
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
# Open MPI's own allocations are not ours to leak-check (the sanitizer build)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
mpi() { mpirun -np "$@"; }
probe=$(mpi 2 $ICLAB train --preset tiny --steps 2 --threads 1 --out "$T/probe" --quiet 2>&1)
if echo "$probe" | grep -q "built without MPI"; then
  echo "SKIP $ICLAB was built without MPI (libopenmpi-dev missing at build time)"
  finish; exit $?
fi
[ -s "$T/probe/data_parallel.json" ] && ok "mpirun -np 2 train runs data parallel" || bad "2-rank probe run failed: $probe"

# 2. a 2-seed sweep on 2 ranks == two single runs (all files but train.csv's timing column byte for byte)
mpi 2 $ICLAB sweep --preset tiny --seeds 1-2 --threads 1 --out "$T/sw" --quiet || bad "2-rank sweep failed"
for s in 1 2; do
  $ICLAB train --preset tiny --seed $s --threads 1 --out "$T/ref$s" --quiet || bad "reference run $s failed"
  d="$T/sw/runs/seed=$s"; same=1
  for f in config.json eval.csv eval_positions.csv estimators.csv $(cd "$T/ref$s" && ls checkpoints/*); do
    cmp -s "$T/ref$s/$f" "$d/$f" || { same=0; echo "differs: seed $s $f"; }
  done
  diff <(cut -d, -f1-5 "$T/ref$s/train.csv") <(cut -d, -f1-5 "$d/train.csv") >/dev/null || { same=0; echo "differs: seed $s train.csv"; }
  [ "$(cd "$T/ref$s" && find . | sort)" = "$(cd "$d" && find . | sort)" ] || { same=0; echo "differs: seed $s file list"; }
  [ $same = 1 ] && ok "sweep run seed=$s (rank $((s-1))) == iclab train --seed $s" || bad "sweep run seed=$s differs from iclab train"
done
[ "$(grep -c ',complete$' "$T/sw/sweep.csv")" = 2 ] && ok "sweep.csv: 2 complete runs" || bad "sweep.csv: $(cat "$T/sw/sweep.csv")"
grep -q '"status": "complete"' "$T/sw/sweep.json" && grep -q '<svg' "$T/sw/report.html" && grep -q 'Leaving the plateau' "$T/sw/report.html" \
  && ok "sweep.json and report.html written" || bad "sweep.json or report.html missing or incomplete"
# TD curves and the TD column once the runs are decoded (iclab decode), redrawn with --report-only
for s in 1 2; do $ICLAB decode "$T/sw/runs/seed=$s" --per-concept 20 --k 5 --no-reps --embed 0 >/dev/null 2>&1 || bad "decode of seed $s failed"; done
$ICLAB sweep --preset tiny --seeds 1-2 --threads 1 --out "$T/sw" --report-only --quiet || bad "report-only failed"
grep -q 'TD over training' "$T/sw/report.html" && awk -F, 'NR > 1 && $9 == "" {e = 1} END {exit e}' "$T/sw/sweep.csv" \
  && ok "decoded runs: TD curves in report.html, td_rise_step in sweep.csv" || bad "TD missing from the sweep report"
cp "$T/sw/runs/seed=1/checkpoints/step_000000060.gguf" "$T/keep.gguf"
out=$(mpi 2 $ICLAB sweep --preset tiny --seeds 1-2 --threads 1 --out "$T/sw" 2>&1)
[ "$(echo "$out" | grep -c 'complete, skipped')" = 2 ] && cmp -s "$T/keep.gguf" "$T/sw/runs/seed=1/checkpoints/step_000000060.gguf" \
  && ok "re-running a finished sweep skips its runs" || bad "re-run did not skip: $out"

# 3. an unfinished run in a sweep is resumed, bit for bit
$ICLAB sweep --preset tiny --seeds 1,3 --threads 1 --out "$T/rs" --report-only --quiet || bad "report-only sweep failed"
$ICLAB train --preset tiny --seed 3 --threads 1 --out "$T/rs/runs/seed=3" --stop-after 23 --quiet || bad "partial run failed"
$ICLAB sweep --preset tiny --seeds 1,3 --threads 1 --out "$T/rs" --report-only --quiet || bad "report-only sweep failed"
grep -q '^seed=3,3,60,23,.*incomplete$' "$T/rs/sweep.csv" && ok "sweep.csv shows the unfinished run" || bad "sweep.csv: $(cat "$T/rs/sweep.csv")"
out=$(mpi 2 $ICLAB sweep --preset tiny --seeds 1,3 --threads 1 --out "$T/rs" 2>&1) || bad "resuming sweep failed: $out"
$ICLAB train --preset tiny --seed 3 --threads 1 --out "$T/ref3" --quiet
echo "$out" | grep -q 'seed=3: resuming' && cmp -s "$T/ref3/checkpoints/step_000000060.gguf" "$T/rs/runs/seed=3/checkpoints/step_000000060.gguf" \
  && cmp -s "$T/ref3/eval.csv" "$T/rs/runs/seed=3/eval.csv" && ok "the sweep resumed the unfinished run bit for bit" || bad "sweep resume differs: $out"

# 4. a rank killed mid-run (SIGKILL: no chance to save anything) leaves folders that the same sweep
#    finishes as uninterrupted runs would; where exactly the kill lands does not matter to that.
long="--preset tiny --steps 1000 --ckpt-every 50 --threads 1"
mpirun -np 2 $ICLAB sweep $long --seeds 1-2 --out "$T/kill" --quiet >/dev/null 2>&1 &
mp=$!
for i in $(seq 200); do [ -e "$T/kill/runs/seed=2/checkpoints/step_000000100.gguf" ] && break; sleep 0.05; done
victim=$(pgrep -P $mp | head -n 1)
[ -n "$victim" ] && kill -KILL "$victim"
wait $mp 2>/dev/null; echo "mpirun exited with $? after rank pid $victim was killed"
# Open MPI does not stop the other rank at once (it learns of the death at its next MPI call, here
# the end of its run): wait until no process of that sweep is left
for i in $(seq 200); do pgrep -f -- "--out $T/kill" >/dev/null || break; sleep 0.05; done
pgrep -f -- "--out $T/kill" >/dev/null && bad "processes of the killed sweep are still running"
echo "killed sweep: $(ls "$T/kill/runs/"*/checkpoints 2>/dev/null | grep -c gguf) checkpoints written before the kill"
# the other rank's run may have finished; the killed one must not have
n_complete=$(cat "$T/kill/status/"*.json 2>/dev/null | grep -c '"complete"')
[ "$n_complete" -lt 2 ] && ok "a rank was killed mid-run ($n_complete of 2 runs complete)" || bad "the kill came too late to test anything"
mpi 2 $ICLAB sweep $long --seeds 1-2 --out "$T/kill" --quiet || bad "finishing the killed sweep failed"
allok=1
for s in 1 2; do
  $ICLAB train $long --seed $s --out "$T/long$s" --quiet
  cmp -s "$T/long$s/checkpoints/step_000001000.gguf" "$T/kill/runs/seed=$s/checkpoints/step_000001000.gguf" || allok=0
  cmp -s "$T/long$s/eval.csv" "$T/kill/runs/seed=$s/eval.csv" || allok=0
done
[ $allok = 1 ] && ok "a killed sweep resumes to the uninterrupted results" || bad "the killed sweep's runs differ after resuming"

# 5. data parallel: 2 ranks vs 1 rank with the same global batch (16), within a relative 1e-4
dp="--preset tiny --steps 60 --log-every 1 --threads 1"
$ICLAB train $dp --out "$T/dp1" --quiet || bad "1-rank run failed"
mpi 2 $ICLAB train $dp --out "$T/dp2" --quiet || bad "2-rank run failed"
mpi 2 $ICLAB train $dp --out "$T/dp2b" --quiet || bad "second 2-rank run failed"
grep -q '"ranks": 2' "$T/dp2/data_parallel.json" && [ ! -e "$T/dp1/data_parallel.json" ] && ok "data_parallel.json records 2 ranks" || bad "data_parallel.json missing"
cmp -s "$T/dp1/config.json" "$T/dp2/config.json" && cmp -s "$T/dp1/estimators.csv" "$T/dp2/estimators.csv" && ok "same config and estimators" || bad "config/estimators differ"
reldiff() { # max relative difference of column $3 of two CSVs with the same rows
  paste -d, <(cut -d, -f"$3" "$1") <(cut -d, -f"$3" "$2") | awk -F, 'NR > 1 {d = $1 - $2; if (d < 0) d = -d; s = $1 < 0 ? -$1 : $1; r = s > 0 ? d / s : d; if (r > m) m = r} END {printf "%.3g\n", m + 0}'
}
rl=$(reldiff "$T/dp1/train.csv" "$T/dp2/train.csv" 2); rg=$(reldiff "$T/dp1/train.csv" "$T/dp2/train.csv" 5); re=$(reldiff "$T/dp1/eval_positions.csv" "$T/dp2/eval_positions.csv" 4)
echo "2 ranks vs 1: max relative difference: loss $rl, grad norm $rg, held-out MSE $re"
[ "$(wc -l < "$T/dp1/train.csv")" = "$(wc -l < "$T/dp2/train.csv")" ] && awk -v a="$rl" -v b="$rg" -v c="$re" 'BEGIN {exit !(a <= 1e-4 && b <= 1e-4 && c <= 1e-4)}' \
  && ok "2 ranks match 1 rank within 1e-4" || bad "2 ranks differ from 1 rank beyond 1e-4"
cmp -s "$T/dp2/checkpoints/step_000000060.gguf" "$T/dp2b/checkpoints/step_000000060.gguf" && cmp -s "$T/dp2/eval.csv" "$T/dp2b/eval.csv" \
  && ok "two 2-rank runs are bit-identical" || bad "two 2-rank runs differ"
mpi 2 $ICLAB train $dp --out "$T/dp2r" --stop-after 30 --quiet || bad "2-rank stop-after failed"
[ -s "$T/dp2r/checkpoints/step_000000030.gguf" ] && [ ! -e "$T/dp2r/checkpoints/step_000000060.gguf" ] && ok "2-rank run stopped at 30" || bad "2-rank stop-after did not stop at 30"
expect_fail "resume a 2-rank run on 1 rank" "trained on 2 ranks" $ICLAB train --out "$T/dp2r" --resume --quiet
mpi 2 $ICLAB train --out "$T/dp2r" --resume --quiet || bad "2-rank resume failed"
cmp -s "$T/dp2/checkpoints/step_000000060.gguf" "$T/dp2r/checkpoints/step_000000060.gguf" && cmp -s "$T/dp2/eval.csv" "$T/dp2r/eval.csv" \
  && ok "2-rank stop at 30 + resume to 60 == straight 60, bit for bit" || bad "2-rank resume differs from the straight run"
# Ctrl-C (SIGINT to mpirun) reaches every rank; they agree on the stop flag, stop after the same step
# with a checkpoint, and a resume ends where a straight run does. Where the signal lands does not matter.
sig="--preset tiny --steps 1000 --threads 1"
mpirun -np 2 $ICLAB train $sig --out "$T/sig" > "$T/sig.log" 2>&1 &
mp=$!
for i in $(seq 200); do [ -e "$T/sig/checkpoints/step_000000030.gguf" ] && break; sleep 0.05; done
kill -INT $mp; wait $mp
# (judged by the files: mpirun may stop forwarding the ranks' messages once it got the signal)
last=$(ls "$T/sig/checkpoints" | tail -n 1)
[ -n "$last" ] && [ "$last" != step_000001000.gguf ] && ok "SIGINT to mpirun stopped the run with a checkpoint ($last)" || bad "SIGINT did not stop the run: $last, $(tail -n 3 "$T/sig.log")"
mpi 2 $ICLAB train --out "$T/sig" --resume --quiet || bad "resume after SIGINT failed"
mpi 2 $ICLAB train $sig --out "$T/sig2" --quiet || bad "straight 2-rank run failed"
cmp -s "$T/sig/checkpoints/step_000001000.gguf" "$T/sig2/checkpoints/step_000001000.gguf" && cmp -s "$T/sig/eval.csv" "$T/sig2/eval.csv" \
  && ok "interrupted + resumed 2-rank run == straight run" || bad "the resumed 2-rank run differs from the straight one"
out=$(mpi 3 $ICLAB train $dp --out "$T/dp3" --quiet 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "cannot be split evenly over 3 ranks" && [ ! -e "$T/dp3" ] && ok "3 ranks for a batch of 16: clear error" || bad "3 ranks: rc=$rc $out"
finish
