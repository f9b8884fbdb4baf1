#!/usr/bin/python3
"""Writes tests/fixtures/tok_pretok_splits.txt: random strings split by the real regexes of the
GPT-2, Llama-3 and Qwen2 pre-tokenizers (Python's `regex` module, Debian's python3-regex, which
has \\p{L}, \\p{N} and a \\s that is the Unicode White_Space property), for test_tokenizer.c to check
its hand-written scanners against.

Line format: HEX;G;L;Q where HEX is the string's UTF-8 bytes in hex and G, L, Q are the
comma-separated end byte offsets of the words under each pre-tokenizer ("" for the empty string).
The alphabet mixes the classes the scanners distinguish: ASCII and non-ASCII letters and numbers,
the contraction letters in both cases (and U+017F, which (?i:) folds to s), apostrophes, punctuation,
symbols, combining marks, \\r \\n \\t and other White_Space characters, and characters that look like
space but are not White_Space (U+001C, U+200B).
Run from the repository root: /usr/bin/python3 tests/ref/tok_pretok_ref.py
"""
import random
import regex

OUT = "tests/fixtures/tok_pretok_splits.txt"
GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3 = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
          r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
QWEN2 = (r"""(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
         r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")

ALPHABET = (["a", "b", "Z", "s", "t", "r", "e", "v", "m", "l", "d", "S", "T", "R", "E", "L", "D", "\u017f",
             "\u00e9", "\u00df", "\u4e2d", "\u0416"] +                      # letters
            ["0", "1", "7", "\u0663", "\u00bd", "\u2167"] +                 # numbers (Nd, No, Nl)
            ["'", "'", "!", ",", ".", "-", "\"", "(", "\u20ac", "\U0001F600", "\u0301"] +  # other
            [" ", " ", " ", "\t", "\n", "\n", "\r", "\u00a0", "\u3000", "\u2028", "\x0b", "\x85"] +
            ["\x1c", "\u200b"])                                              # not White_Space


def ends(pattern, s):
    out, pos = [], 0
    for m in regex.finditer(pattern, s):
        assert m.start() == pos, (s, m)  # the alternatives cover every character
        pos = m.end()
        out.append(len(s[:pos].encode("utf-8")))
    assert pos == len(s)
    return ",".join(map(str, out))


def main():
    rng = random.Random(20240607)
    cases = ["", "abc 12345 x", "I'M don't \u017fo 'S", "x\t\ty  \n\n z  "]
    for _ in range(220):
        n = rng.randint(1, 20)
        cases.append("".join(rng.choice(ALPHABET) for _ in range(n)))
    with open(OUT, "w") as f:
        for s in cases:
            f.write("%s;%s;%s;%s\n" % (s.encode("utf-8").hex(), ends(GPT2, s), ends(LLAMA3, s), ends(QWEN2, s)))
    print("wrote %s: %d strings" % (OUT, len(cases)))


if __name__ == "__main__":
    main()
