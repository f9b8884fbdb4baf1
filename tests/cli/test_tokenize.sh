#!/usr/bin/env bash
# iclab tokenize against the shared reference suites (every string of each suite through the CLI,
# compared with the listed ids), --decode round trips, and bad input. Run from the repository root.
set -u
ICLAB=${ICLAB:-build/iclab}
V=${ICLAB_VOCAB_DIR:-../shared/data/vocab}
source "$(dirname "$0")/lib.bash"
if [ ! -d "$V" ]; then echo "no vocab folder at $V (make test unpacks tests/data/vocab)"; exit 1; fi
for name in gpt-2 llama-bpe llama-spm; do
  inp="$V/ggml-vocab-$name.gguf.inp"; out="$V/ggml-vocab-$name.gguf.out"; model="$V/ggml-vocab-$name.gguf"
  # split the suite with python-free tools: awk writes each string (without the newline before the separator) to a file
  d=$(mktemp -d); awk -v d="$d" 'BEGIN {n=0; s=""; first=1}
    $0 == "__ggml_vocab_test__" {printf "%s", s > (d "/" n); close(d "/" n); n++; s=""; first=1; next}
    {s = first ? $0 : s "\n" $0; first=0}' "$inp"
  n=$(ls "$d" | wc -l); pass=0; i=0; skipped=0
  while IFS= read -r expected; do
    [ -f "$d/$i" ] || break
    got=$($ICLAB tokenize "$model" "$(cat "$d/$i")" 2>/dev/null)
    text=$(cat "$d/$i")
    # command substitution drops trailing newlines of the string; compare only strings that survive it
    if [ "$(printf '%s' "$text" | wc -c)" -eq "$(wc -c < "$d/$i")" ]; then
      [ "$got" = "$(echo $expected)" ] && pass=$((pass+1)) || bad "$name string $i: got '$got', expected '$expected'"
    else pass=$((pass+1)); skipped=$((skipped+1)); fi  # checked by tests/test_tokenizer.c instead
    i=$((i+1))
  done < "$out"
  rm -rf "$d"
  [ "$pass" -eq "$i" ] && [ "$i" -eq "$n" ] && ok "$name: $((pass-skipped))/$n strings give the reference ids through the CLI ($skipped with trailing newlines left to test_tokenizer)" || bad "$name: $pass/$i of $n"
done
m="$V/ggml-vocab-gpt-2.gguf"
ids=$($ICLAB tokenize "$m" "Hello world, in context!")
[ "$($ICLAB tokenize "$m" --decode "$ids")" = "Hello world, in context!" ] && ok "decode(encode(s)) == s" || bad "round trip"
$ICLAB tokenize "$m" --decode "99999999" >/dev/null 2>&1 && bad "out-of-range id accepted" || ok "out-of-range id refused"
$ICLAB tokenize /nonexistent.gguf "x" >/dev/null 2>&1 && bad "missing model accepted" || ok "missing model refused"
$ICLAB tokenize "$m" >/dev/null 2>&1 && bad "missing text accepted" || ok "missing text refused"
head -c 100 "$m" > /tmp/iclab-trunc-vocab.gguf
$ICLAB tokenize /tmp/iclab-trunc-vocab.gguf "x" >/dev/null 2>&1 && bad "truncated model accepted" || ok "truncated model refused"
rm -f /tmp/iclab-trunc-vocab.gguf
finish
