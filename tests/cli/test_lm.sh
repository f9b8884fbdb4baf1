#!/usr/bin/env bash
# iclab mkmodel / run / capture / lmbench end to end on small random-weight models, and their bad
# input. Run from the repository root; needs ICLAB_VOCAB_DIR (make test sets it).
set -u
ICLAB=${ICLAB:-build/iclab}
V=${ICLAB_VOCAB_DIR:-../shared/data/vocab}
T=$(mktemp -d /tmp/iclab-test-lm.XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/lib.bash"

m="$T/llama.gguf"
$ICLAB mkmodel --arch llama --vocab "$V/ggml-vocab-llama-spm.gguf" --seed 3 -o "$m" || bad "mkmodel failed"
a=$($ICLAB run "$m" -p "The capital of France is" -n 12 2>/dev/null); b=$($ICLAB run "$m" -p "The capital of France is" -n 12 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && ok "greedy run is deterministic" || bad "greedy run: '$a' vs '$b'"
s1=$($ICLAB run "$m" -p "Once upon" -n 12 --temp 0.9 --seed 5 2>/dev/null); s2=$($ICLAB run "$m" -p "Once upon" -n 12 --temp 0.9 --seed 5 2>/dev/null)
s3=$($ICLAB run "$m" -p "Once upon" -n 12 --temp 0.9 --seed 6 2>/dev/null)
[ "$s1" = "$s2" ] && [ "$s1" != "$s3" ] && ok "sampling: same seed same text, other seed other text" || bad "sampling: '$s1' '$s2' '$s3'"
$ICLAB run "$m" -p "Hi" -n 3 2>&1 >/dev/null | grep -q "tok/s" && ok "run reports speeds on stderr" || bad "no speed line"

printf 'capital\tThe capital of Italy is\ncapital\tThe capital of Spain is\\nreally\nanimal\tA cat is an\n' > "$T/p.tsv"
$ICLAB capture "$m" --prompts "$T/p.tsv" --layers all --quiet -o "$T/c.npy" || bad "capture failed"
$ICLAB capture "$m" --prompts "$T/p.tsv" --layers 1 --at -2 --quiet -o "$T/c1.npy" || bad "capture --at -2 failed"
$ICLAB capture "$m" --prompts "$T/p.tsv" --layers all --quiet --threads 1 -o "$T/c_t1.npy" && cmp -s "$T/c.npy" "$T/c_t1.npy" \
  && ok "capture: the same bits on 1 thread as on the default threads" || bad "capture depends on the thread count"
/usr/bin/python3 - "$T" <<'PY' && ok "capture: (layers, prompts, n_embd) float32, labels, layer subset consistent" || bad "capture output"
import sys, numpy as np
t = sys.argv[1]
a = np.load(t + "/c.npy"); l = np.load(t + "/c_labels.npy"); names = open(t + "/c_labels.txt").read().split()
b = np.load(t + "/c1.npy")
assert a.dtype == np.float32 and a.shape == (2, 3, 64), a.shape
assert l.tolist() == [0, 0, 1] and names == ["capital", "animal"], (l, names)
assert b.shape == (1, 3, 64) and np.isfinite(a).all()
assert not np.array_equal(b[0], a[1])  # another position
PY

/usr/bin/python3 -c "import numpy as np, sys; a = np.load('$T/c.npy'); np.save('$T/v.npy', 8 * a[1, 2]); np.save('$T/short.npy', a[1, 2, :5])"
st=$($ICLAB run "$m" -p "The capital of France is" -n 12 --add 1:"$T/v.npy" 2>/dev/null)
[ -n "$st" ] && [ "$st" != "$a" ] && ok "--add a vector after layer 1 changes the continuation" || bad "--add: '$st' vs '$a'"
expect_fail "steering vector of the wrong width" "holds 5 values" $ICLAB run "$m" -p x --add 0:"$T/short.npy"
expect_fail "steering layer out of range" "layer 2 out of range" $ICLAB run "$m" -p x --replace 2:"$T/v.npy"
# several positions per prompt: rows with an index; each prompt's last token equals the --at last capture
$ICLAB capture "$m" --prompts "$T/p.tsv" --layers all --at all --quiet -o "$T/all.npy" || bad "capture --at all failed"
$ICLAB capture "$m" --prompts "$T/p.tsv" --layers 0 --at 1,last --quiet -o "$T/two.npy" || bad "capture --at 1,last failed"
$ICLAB tokenize "$m" "A cat is an" --bos > "$T/ids3.txt"
/usr/bin/python3 - "$T" <<'PY' && ok "capture --at all / lists: rows, index, per-row labels, same states as --at last" || bad "capture with several positions"
import sys, numpy as np
t = sys.argv[1]
last = np.load(t + "/c.npy"); a = np.load(t + "/all.npy"); ix = np.load(t + "/all_index.npy"); lab = np.load(t + "/all_labels.npy")
two = np.load(t + "/two.npy"); ix2 = np.load(t + "/two_index.npy")
assert a.shape[0] == 2 and a.shape[2] == 64 and ix.shape == (a.shape[1], 3), (a.shape, ix.shape)
ids3 = [int(v) for v in open(t + "/ids3.txt").read().split()]
assert ix[ix[:, 0] == 2][:, 2].tolist() == ids3, (ix, ids3)            # prompt 3's tokens, in order
for p in range(3):
    rows = np.nonzero(ix[:, 0] == p)[0]
    assert ix[rows, 1].tolist() == list(range(len(rows)))
    assert np.array_equal(a[:, rows[-1]], last[:, p])                   # bit for bit
    assert (lab[rows] == [0, 0, 1][p]).all()
assert two.shape == (1, 6, 64) and ix2[:, 1].tolist()[0::2] == [1, 1, 1]
assert np.array_equal(two[0, 1::2], last[0])
PY
expect_fail "capture --at with a bad list" "positions|trailing comma" $ICLAB capture "$m" --prompts "$T/p.tsv" --at 1, -o "$T/y.npy"

# iclab td on the capture, and on planted clusters: separated at layer 1 only
$ICLAB td "$T/c.npy" "$T/c_labels.npy" --k 1 --no-probe -o "$T/td.csv" > /dev/null && [ "$(head -1 "$T/td.csv")" = "layer,concept,name,td,chance,probe_acc" ] \
  && [ "$(wc -l < "$T/td.csv")" -eq 7 ] && grep -q "^0,-1,all," "$T/td.csv" && grep -q ",animal," "$T/td.csv" && ok "td on captured states: CSV with names" || bad "td on capture: $(cat "$T/td.csv")"
/usr/bin/python3 -c "
import numpy as np
r = np.random.default_rng(0); lab = np.repeat(np.arange(3), 40).astype(np.int32)
a = r.normal(size=(2, 120, 16)).astype(np.float32); a[1] += 6 * np.eye(16, dtype=np.float32)[lab]
np.save('$T/s.npy', a); np.save('$T/s_labels.npy', lab); np.save('$T/one.npy', np.zeros(120, np.int32)); np.save('$T/short.npy', lab[:50])"
$ICLAB td "$T/s.npy" "$T/s_labels.npy" -o "$T/s.csv" > /dev/null
awk -F, '$2 == -1 {print $1, $4, $5, $6}' "$T/s.csv" | { read l0 t0 c0 p0; read l1 t1 c1 p1
  awk -v t0="$t0" -v t1="$t1" -v c="$c0" -v p1="$p1" 'BEGIN {exit !(t0 < 0.6 && t1 == 1 && c > 0.33 && c < 0.34 && p1 > 0.95)}'; } \
  && ok "td: planted clusters decodable at layer 1 only, chance 1/3" || bad "td planted: $(cat "$T/s.csv")"
expect_fail "td with one class" "two classes" $ICLAB td "$T/s.npy" "$T/one.npy"
expect_fail "td with a wrong label count" "50 labels for 120 points" $ICLAB td "$T/s.npy" "$T/short.npy"
expect_fail "unknown architecture" "unknown architecture" $ICLAB mkmodel --arch mamba --vocab "$V/ggml-vocab-llama-spm.gguf" -o "$T/x.gguf"
expect_fail "prompt longer than the context" "more than the context" $ICLAB run "$m" -p "one two three four five six seven" --ctx 4
expect_fail "missing model file" "cannot|No such" $ICLAB run "$T/none.gguf" -p "x"
expect_fail "not a GGUF file" "magic|GGUF" $ICLAB run "$T/p.tsv" -p "x"
expect_fail "layer out of range" "layers must lie in 0..1" $ICLAB capture "$m" --prompts "$T/p.tsv" --layers 0-5 -o "$T/y.npy"
expect_fail "position outside a prompt" "outside it" $ICLAB capture "$m" --prompts "$T/p.tsv" --at 40 -o "$T/y.npy"
printf 'a\tx\nno label here\n' > "$T/mixed.txt"
expect_fail "labels on some lines only" "every line" $ICLAB capture "$m" --prompts "$T/mixed.txt" -o "$T/y.npy"
: > "$T/empty.txt"
expect_fail "empty prompt file" "no prompts" $ICLAB capture "$m" --prompts "$T/empty.txt" -o "$T/y.npy"
[ ! -e "$T/y.npy" ] && ok "no output file after failures" || bad "a failed capture left $T/y.npy"
expect_fail "bad option" "unknown option" $ICLAB run "$m" -p x --bogus 1
out=$($ICLAB lmbench "$m" --prompt 16 --gen 4 --reps 1) && echo "$out" | grep -q "pp_tok_s=" && ok "lmbench prints its line" || bad "lmbench: $out"
finish
