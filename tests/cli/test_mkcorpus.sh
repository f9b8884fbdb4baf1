#!/usr/bin/env bash
# iclab mkcorpus end to end: a small corpus and tokenizer from a hand-made Brown-format directory (and
# from data/brown when present), reproducible bytes, the tokenizer usable by `iclab mkmodel --vocab`
# and `iclab run`, --tokenizer-only on the corpus giving the same tokenizer, concept shares, and bad
# input. Run from the repository root.
set -u
ICLAB=${ICLAB:-build/iclab}
source "$(dirname "$0")/lib.bash"
T=$(mktemp -d /tmp/iclab-test-mkcorpus.XXXXXX)
trap 'rm -rf "$T"' EXIT

# 30 sentences with all six part-of-speech concepts (24 train, 6 test) and a few without
B="$T/brown"; mkdir -p "$B"
adj=(red big small old new tall); noun=(dog cat man boy car); adv=(quickly slowly often)
for f in 1 2 3; do
  {
    printf '\n\n'
    for k in 0 1 2 3 4 5 6 7 8 9; do
      i=$(( (f - 1) * 10 + k ))
      [ $((k % 3)) -eq 0 ] && printf '\t'
      printf 'The/at %s/jj %s/nn saw/vbd %s/rb near/in him/ppo ./.\n' "${adj[$((i % 6))]}" "${noun[$((i / 6))]}" "${adv[$((i % 3))]}"
      [ $((k % 4)) -eq 1 ] && printf '\tIt/pps rained/vbd on/in day/nn %d/cd ./.\n\n' "$i"
    done
  } > "$B/ca0$f"
done

out=$($ICLAB mkcorpus --out "$T/c" --brown "$B" --bytes 150k --vocab 320 --seed 3 --task-seed 2 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q '^corpus: ' && echo "$out" | grep -q '^tokens: ' &&
   echo "$out" | grep -q 'pos:Adverb' && [ -s "$T/c/corpus.txt" ] && [ -s "$T/c/corpus.docs.tsv" ] && [ -s "$T/c/tokenizer.gguf" ]; then
  ok "mkcorpus writes corpus.txt, corpus.docs.tsv, tokenizer.gguf and prints statistics"
else bad "mkcorpus (rc=$rc): $out"; fi
echo "$out" | grep -q '6 test sentences left out' && ok "the 6 test sentences are left out of the running text" || bad "test sentences: $out"
[ "$(head -c 13 "$T/c/corpus.txt")" = "<|endoftext|>" ] && [ "$(tail -c 13 "$T/c/corpus.txt")" = "<|endoftext|>" ] \
  && ok "documents are framed by <|endoftext|>" || bad "corpus framing"
ndocs=$(($(wc -l < "$T/c/corpus.docs.tsv") - 1))
neos=$(grep -o '<|endoftext|>' "$T/c/corpus.txt" | wc -l)
[ "$neos" -eq $((ndocs + 1)) ] && ok "$ndocs documents, $neos markers" || bad "$ndocs documents but $neos markers"

$ICLAB mkcorpus --out "$T/c2" --brown "$B" --bytes 150k --vocab 320 --seed 3 --task-seed 2 --quiet
cmp -s "$T/c/corpus.txt" "$T/c2/corpus.txt" && cmp -s "$T/c/tokenizer.gguf" "$T/c2/tokenizer.gguf" \
  && ok "the same options give the same corpus and tokenizer bytes" || bad "not reproducible"
$ICLAB mkcorpus --out "$T/c3" --brown "$B" --bytes 150k --vocab 320 --seed 4 --task-seed 2 --quiet
cmp -s "$T/c/corpus.txt" "$T/c3/corpus.txt" && bad "another seed gives the same corpus" || ok "another seed, another corpus"

# --tokenizer-only on the corpus: the same training text, so the same tokenizer
out=$($ICLAB mkcorpus --tokenizer-only "$T/c/corpus.txt" --vocab 320 --out "$T/tok" 2>&1)
cmp -s "$T/c/tokenizer.gguf" "$T/tok/tokenizer.gguf" && echo "$out" | grep -q 'bytes/token' \
  && ok "--tokenizer-only on corpus.txt gives the same tokenizer" || bad "--tokenizer-only: $out"

# the tokenizer in a model: mkmodel, tokenize, run
if $ICLAB mkmodel --arch llama --vocab "$T/c/tokenizer.gguf" -o "$T/m.gguf" >/dev/null 2>&1; then
  ok "mkmodel --vocab tokenizer.gguf"
else bad "mkmodel refused the tokenizer"; fi
text="Apply XOR.
01101 11000 -> 10101
The red dog saw him ->"
ids=$($ICLAB tokenize "$T/m.gguf" "$text")
[ -n "$ids" ] && [ "$($ICLAB tokenize "$T/m.gguf" --decode "$ids")" = "$text" ] && ok "decode(encode(s)) == s through the model" \
  || bad "round trip: $ids"
[ "$($ICLAB tokenize "$T/m.gguf" '<|endoftext|>')" = "319" ] && ok "<|endoftext|> is one token (319)" || bad "EOS token"
gen=$($ICLAB run "$T/m.gguf" -p "$text" -n 6 2>/dev/null); rc=$?
[ $rc -eq 0 ] && [ -n "$gen" ] && ok "iclab run loads the model and generates" || bad "run (rc=$rc)"

# concept shares: pos left out, bitwise:XOR at a quarter
out=$($ICLAB mkcorpus --out "$T/c4" --brown "$B" --docs 2000 --text-share 0 --share pos=0,XOR=0.25 --vocab 300 2>&1)
xor=$(echo "$out" | awk '$1 == "bitwise:XOR" {print $3}'); and=$(echo "$out" | awk '$1 == "bitwise:AND" {print $3}')
noun=$(echo "$out" | awk '$1 == "pos:Noun" {print $3}')
if [ "${noun:-x}" = 0 ] && [ -n "$xor" ] && [ -n "$and" ] && [ "$xor" -gt 40 ] && [ "$xor" -lt 120 ] && [ "$and" -gt 250 ]; then
  ok "--share pos=0,XOR=0.25: pos:Noun $noun, bitwise:XOR $xor, bitwise:AND $and episodes of 2000"
else bad "--share: $out"; fi
[ "$(grep -c $'\tepisode\t' "$T/c4/corpus.docs.tsv")" -eq 2000 ] && ok "--docs 2000: 2000 episodes" || bad "--docs"

if [ -d data/brown ]; then
  out=$($ICLAB mkcorpus --out "$T/real" --bytes 1M --vocab 1024 2>&1); rc=$?
  [ $rc -eq 0 ] && echo "$out" | grep -q '1630 test sentences left out' && ok "real Brown: $(echo "$out" | grep '^tokens:')" \
    || bad "real Brown (rc=$rc): $out"
else echo "SKIP real Brown corpus: data/brown missing (make data)"; fi

# bad input
printf 'caf\xe9 au lait\n' > "$T/latin1.txt"; : > "$T/empty.txt"; printf '<|endoftext|>' > "$T/eos.txt"
expect_fail "non-UTF-8 text" "latin1.txt: not valid UTF-8 text \(byte 3\)" $ICLAB mkcorpus --tokenizer-only "$T/latin1.txt" --out "$T/x"
expect_fail "empty text" "empty text" $ICLAB mkcorpus --tokenizer-only "$T/empty.txt" --out "$T/x"
expect_fail "only markers" "empty text" $ICLAB mkcorpus --tokenizer-only "$T/eos.txt" --out "$T/x"
expect_fail "missing text file" "iclab mkcorpus: .*nonexistent" $ICLAB mkcorpus --tokenizer-only /nonexistent.txt --out "$T/x"
expect_fail "vocabulary below the byte tokens" "below the 256 byte tokens" $ICLAB mkcorpus --out "$T/x" --brown "$B" --bytes 20k --vocab 200
expect_fail "unreachable vocabulary" "vocabulary size 1000000 is unreachable" $ICLAB mkcorpus --out "$T/x" --brown "$B" --bytes 20k --vocab 1000000
expect_fail "text share above 1" "\[0, 1\]" $ICLAB mkcorpus --out "$T/x" --brown "$B" --text-share 2
expect_fail "unknown concept" "no family or concept named 'Foo'" $ICLAB mkcorpus --out "$T/x" --brown "$B" --share Foo=1
expect_fail "bad weight" "weight must be a number" $ICLAB mkcorpus --out "$T/x" --brown "$B" --share XOR=abc
expect_fail "missing Brown directory" "cannot open the Brown corpus directory" $ICLAB mkcorpus --out "$T/x" --brown /nonexistent
expect_fail "zero size" "bytes '0' must be a count" $ICLAB mkcorpus --out "$T/x" --brown "$B" --bytes 0
expect_fail "bad shots" "shots '5-2' must be" $ICLAB mkcorpus --out "$T/x" --brown "$B" --shots 5-2
expect_fail "bad template" "template|\{x\}|\{y\}" $ICLAB mkcorpus --out "$T/x" --brown "$B" --template 'no slots'
expect_fail "unknown option" "unknown option --frobnicate" $ICLAB mkcorpus --frobnicate 1
printf '\tThe/at caf\xe9/nn ./.\n' > "$B/cb01"
expect_fail "non-UTF-8 Brown file" "cb01: not valid UTF-8" $ICLAB mkcorpus --out "$T/x" --brown "$B" --tasks bitwise --bytes 20k
printf '\tThe/at broken ./.\n' > "$B/cb01"
expect_fail "token without a tag" "cb01:1: token 'broken' is not word/tag" $ICLAB mkcorpus --out "$T/x" --brown "$B" --tasks bitwise --bytes 20k
$ICLAB mkcorpus --help | grep -q 'usage: iclab mkcorpus' && ok "--help" || bad "--help"
[ ! -e "$T/x/corpus.txt" ] && ok "failed runs leave no corpus behind" || bad "a failed run wrote $T/x/corpus.txt"
finish
