#!/usr/bin/env bash
# A golden tiny LM run (issue 12's test list): `iclab train --task lm` on a fixed small corpus with a
# fixed seed must reproduce the training losses recorded in tests/fixtures/train_lm_golden.csv (written
# by this script with --record after a deliberate change of the numerics). Tolerance: relative 1e-4 at
# step 1 (one forward pass), 2e-3 up to step 60 and 2e-2 at step 120 (training amplifies the last bits
# of a different BLAS or SIMD path). Measured when recording: 1 thread instead of 2 changes no bit;
# doubling the RoPE base moves step 60 by 1.8e-2 relative, a 1% larger learning rate step 20 by 1.5e-2,
# so semantic changes fail the test while summation-order noise does not.
set -u
ICLAB=${ICLAB:-build/iclab}
G=tests/fixtures/train_lm_golden.csv
T=$(mktemp -d /tmp/iclab-test-golden.XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/lib.bash"

C="$T/corpus"; mkdir -p "$C"
{
  printf '<|endoftext|>'
  for i in $(seq 1 300); do
    printf 'the cat sat on the mat. the dog ran to the red door. %d and %d make %d.\n' $((i % 7)) $((i % 5)) $((i % 7 + i % 5))
    [ $((i % 20)) -eq 0 ] && printf '<|endoftext|>'
  done
} > "$C/corpus.txt"
$ICLAB mkcorpus --tokenizer-only "$C/corpus.txt" --vocab 290 --out "$C" --quiet || bad "mkcorpus --tokenizer-only"
$ICLAB train --task lm --corpus "$C" --steps 120 --width 32 --layers 2 --heads 4 --kv-heads 2 --ctx 32 --batch 4 \
  --warmup 10 --lr 1e-2 --lr-min 1e-3 --checkpoints 0 --seed 3 --threads 2 --quiet --out "$T/r" || bad "train --task lm failed"
if [ "${1:-}" = "--record" ]; then
  { echo "# step,loss of the golden tiny LM run (tests/cli/test_train_lm_golden.sh --record)"
    awk -F, 'NR > 1 && ($1 == 1 || $1 == 20 || $1 == 60 || $1 == 120) {print $1 "," $2}' "$T/r/train.csv"; } > "$G"
  echo "recorded $G"; cat "$G"; exit 0
fi
/usr/bin/python3 - "$T/r/train.csv" "$G" <<'PY' && ok "losses at steps 1, 20, 60, 120 match the golden run" || bad "golden losses differ"
import csv, sys
got = {int(r["step"]): float(r["loss"]) for r in csv.DictReader(open(sys.argv[1]))}
want = [l.strip().split(",") for l in open(sys.argv[2]) if l.strip() and not l.startswith("#")]
assert len(want) == 4, want
for s, v in want:
    s, v = int(s), float(v)
    tol = 1e-4 if s == 1 else 2e-3 if s <= 60 else 2e-2
    err = abs(got[s] - v) / abs(v)
    print(f"step {s}: loss {got[s]:.6f}, golden {v:.6f}, relative difference {err:.2e} (tolerance {tol:g})")
    assert err <= tol
PY
finish
