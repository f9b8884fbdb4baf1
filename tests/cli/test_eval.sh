#!/usr/bin/env bash
# iclab eval / iclab patch MODEL.gguf end to end on a small random-weight model: the files and
# figures exist, accuracies lie in [0,1] and agree with predictions.jsonl, td.csv equals a direct
# recomputation from the saved states (iclab td), the run is reproducible, interventions write
# their table; bad input gets a one-line error. Needs ICLAB_VOCAB_DIR (make test sets it).
set -u
ICLAB=${ICLAB:-build/iclab}
V=${ICLAB_VOCAB_DIR:-build/vocab}
T=$(mktemp -d /tmp/iclab-test-eval.XXXXXX)
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/lib.bash"

m="$T/m.gguf"
$ICLAB mkmodel --arch llama --vocab "$V/ggml-vocab-llama-bpe.gguf" --layers 3 --ctx 512 --seed 2 -o "$m" 2>/dev/null || bad "mkmodel failed"
$ICLAB eval "$m" --task bitwise --shots 1,4 --prompts 12 --quiet --out "$T/e" || bad "eval failed"
for f in config.json task.tsv predictions.jsonl accuracy.csv td.csv fit.csv states_s1.npy states_s4.npy labels.npy labels.txt \
         embed_s4.npy pca_s4.npy report.html figures/td_by_layer.png figures/td_by_shots.svg figures/accuracy_vs_td.png \
         figures/embed_layer.png; do
  [ -s "$T/e/$f" ] || bad "eval did not write $f"
done
grep -q 'Task decodability and accuracy' "$T/e/report.html" && grep -q "(paper)" "$T/e/report.html" && grep -q 'At the peak layer (' "$T/e/report.html" \
  && ok "report.html with the paper's columns" || bad "report.html content"

$ICLAB td "$T/e/states_s4.npy" "$T/e/labels.npy" --no-probe -o "$T/td4.csv" > /dev/null || bad "iclab td failed"
/usr/bin/python3 - "$T" <<'PY' && ok "eval files: shapes, accuracy in [0,1] and equal to predictions, TD equals a recomputation" || bad "eval files"
import sys, json, csv, numpy as np
t = sys.argv[1] + "/"
s = np.load(t + "e/states_s4.npy"); lab = np.load(t + "e/labels.npy")
names = open(t + "e/labels.txt").read().split()
assert names == ["AND", "NAND", "OR", "NOR", "XOR", "XNOR", "Null"], names
assert s.dtype == np.float32 and s.shape == (4, 84, 64), s.shape     # rows 0..3, 7 concepts x 12
assert lab.tolist() == [c for c in range(7) for _ in range(12)]
preds = [json.loads(l) for l in open(t + "e/predictions.jsonl")]
assert len(preds) == 2 * 84
acc = list(csv.DictReader(open(t + "e/accuracy.csv")))
assert len(acc) == 14
for r in acc:
    a = float(r["accuracy"]); assert 0 <= a <= 1
    n = sum(p["correct"] for p in preds if p["shots"] == int(r["shots"]) and p["concept"] == r["concept"])
    assert n == int(r["correct"]) and abs(a - n / 12) < 1e-6, r
for p in preds:
    assert p["prompt"].count("\n") == p["shots"] and p["prompt"].endswith(" ->"), p["prompt"]
ours = {(int(r["layer"]), r["concept"]): float(r["td"]) for r in csv.DictReader(open(t + "e/td.csv")) if r["shots"] == "4"}
direct = list(csv.DictReader(open(t + "td4.csv")))
assert direct, "empty iclab td output"
for r in direct:
    key = (int(r["layer"]), "all" if int(r["concept"]) < 0 else names[int(r["concept"])])
    assert abs(ours[key] - float(r["td"])) < 1e-6, (key, ours[key], r["td"])
cfg = json.load(open(t + "e/config.json"))
assert cfg["peak_layer"] in range(4) and cfg["peak_shots"] == 4
PY

rm "$T/e/report.html"
$ICLAB report "$T/e" > /dev/null && [ -s "$T/e/report.html" ] && ok "iclab report rebuilds an eval folder's report" || bad "iclab report on an eval folder"

# Same seed, same files; the tasks' data are the run folder's task.tsv.
$ICLAB eval "$m" --task bitwise --shots 1,4 --prompts 12 --quiet --threads 1 --out "$T/e2" || bad "second eval failed"
for f in td.csv accuracy.csv predictions.jsonl states_s4.npy task.tsv; do
  cmp -s "$T/e/$f" "$T/e2/$f" || bad "eval is not reproducible: $f differs (1 thread vs default)"
done
ok "eval reproducible across thread counts"
head -1 "$T/e/task.tsv" | grep -qP '^(#|AND\t)' && ok "task.tsv holds the examples" || bad "task.tsv: $(head -1 "$T/e/task.tsv")"

# TD only: no decoding, only the layers up to --layers run.
$ICLAB eval "$m" --task bitwise --shots 4 --prompts 12 --no-accuracy --layers 1 --quiet --out "$T/e3" || bad "eval --no-accuracy failed"
/usr/bin/python3 -c "
import numpy as np, json, sys
s = np.load('$T/e3/states_s4.npy'); a = np.load('$T/e/states_s4.npy')
assert s.shape == (2, 84, 64) and np.array_equal(s, a[:2])
assert 'generated' not in open('$T/e3/predictions.jsonl').readline()
" && ok "--no-accuracy --layers 1: the same states of rows 0..1, nothing decoded" || bad "--no-accuracy states"

# A task file and the prompting condition.
printf 'up\ta\tA\nup\tb\tB\nup\tc\tC\nup\td\tD\nlow\tA\ta\nlow\tB\tb\nlow\tC\tc\nlow\tD\td\nNull\ta\tq\nNull\tb\tz\nNull\tc\tw\nNull\td\tr\n' > "$T/t.tsv"
$ICLAB eval "$m" --task "$T/t.tsv" --shots 2 --prompts 6 --k 3 --quiet --prompting --out "$T/e4" || bad "eval on a task file failed"
[ "$(head -1 "$T/e4/labels.txt")" = up ] && [ "$(tail -1 "$T/e4/labels.txt")" = Null ] && ok "task file: concepts in order, Null last" || bad "task file labels"

# The part-of-speech family, when the corpus is there (make data).
if [ -d data/brown ]; then
  $ICLAB eval "$m" --task pos --shots 1 --prompts 11 --quiet --out "$T/pos" || bad "eval --task pos failed"
  [ "$(tr '\n' ' ' < "$T/pos/labels.txt")" = "Noun Adjective Verb Adverb Preposition Pronoun Null " ] \
    && ok "pos: the seven concepts" || bad "pos labels: $(cat "$T/pos/labels.txt")"
  grep -q 'Brown tags of Pronoun' "$T/pos/report.html" && grep -q 'pp\$ pp\$\$ ppl' "$T/pos/report.html" \
    && ok "pos report shows the tag mapping" || bad "pos report lacks the Brown tag mapping"
else
  echo "SKIP part-of-speech eval: data/brown missing (make data)"
fi

# Interventions.
$ICLAB patch "$m" --task bitwise --layer peak --prompts 6 --replicates 2 --quiet --out "$T/e" || bad "patch failed"
/usr/bin/python3 - "$T" <<'PY' && ok "patch: intervention tables (6 concepts x 3 conditions x 2 replicates), means, report" || bad "patch files"
import sys, csv, numpy as np, json
t = sys.argv[1] + "/e/"
rows = list(csv.DictReader(open(t + "intervention.csv")))
assert len(rows) == 6 * 3 * 2 and {r["condition"] for r in rows} == {"unperturbed", "negative", "positive"}
assert all(0 <= float(r["accuracy"]) <= 1 for r in rows)
assert int(rows[0]["layer"]) == json.load(open(t + "config.json"))["peak_layer"]
summ = list(csv.DictReader(open(t + "intervention_summary.csv")))
assert len(summ) == 18 and summ[0]["task"] == "bitwise"
m = np.load(t + "intervention_means.npy"); assert m.shape == (7, 64) and np.isfinite(m).all()
assert "Interventions" in open(t + "report.html").read()
PY
[ -s "$T/e/figures/interventions.png" ] && ok "intervention figure" || bad "no intervention figure"
$ICLAB patch "$m" --task bitwise --layer 2 --prompts 4 --replicates 1 --quiet --out "$T/p" && [ -s "$T/p/report.html" ] \
  && ok "patch without an eval: a report of the interventions alone" || bad "patch-only report"

# Bad input: one clear line, non-zero exit.
printf 'only\ta\tb\nonly\tc\td\n' > "$T/one.tsv"
expect_fail "task file with one concept" "one concept" $ICLAB eval "$m" --task "$T/one.tsv" --quiet --out "$T/x"
expect_fail "shots beyond the context" "does not fit the context" $ICLAB eval "$m" --task bitwise --shots 200 --prompts 11 --quiet --out "$T/x"
expect_fail "layer out of range (patch)" "outside the model's layers 0..3" $ICLAB patch "$m" --task bitwise --layer 9 --prompts 2 --quiet --out "$T/x"
expect_fail "layer out of range (eval)" "past the model's last" $ICLAB eval "$m" --task bitwise --layers 9 --prompts 11 --quiet --out "$T/x"
expect_fail "unknown task" "not bitwise, pos or a task file" $ICLAB eval "$m" --task nosuch --quiet --out "$T/x"
expect_fail "pos without the corpus" "needs the Brown corpus" $ICLAB eval "$m" --task pos --brown "$T/none" --quiet --out "$T/x"
expect_fail "bad shots list" "not a list" $ICLAB eval "$m" --shots 1,x --quiet --out "$T/x"
expect_fail "template without {y}" "\{y\}" $ICLAB eval "$m" --template '{x} ->' --quiet --out "$T/x"
expect_fail "missing model" "GGUF|open|No such" $ICLAB eval "$T/none.gguf" --quiet --out "$T/x"
expect_fail "patch without --layer" "layer L is needed" $ICLAB patch "$m" --task bitwise --quiet --out "$T/x"
expect_fail "patch --layer peak without an eval" "needs an earlier" $ICLAB patch "$m" --layer peak --quiet --out "$T/x"
printf 'a\tx\ty\nb\tx\ty\n' > "$T/nonull.tsv"
expect_fail "patch on a task without Null" "no Null concept" $ICLAB patch "$m" --task "$T/nonull.tsv" --layer 1 --quiet --out "$T/x"
finish
