#!/usr/bin/python3
"""Checks a .npy file written by iclab (tests/test_npy.c) with numpy itself.

usage: npy_check.py FILE DTYPE SHAPE      e.g. npy_check.py /tmp/a.npy <f4 2,3,4   (SHAPE "" = scalar)

Loads FILE with numpy.load, checks dtype, shape, C order and that every element equals the shared
pattern (npy_pattern.py), and that the header is version 1.0 with the data at a multiple of 64
bytes. Exit status 0 if all holds, 1 (with a message) otherwise."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from npy_pattern import pattern  # noqa: E402


def main():
    path, dtype = sys.argv[1], np.dtype(sys.argv[2])
    shape = tuple(int(s) for s in sys.argv[3].split(",") if s) if len(sys.argv) > 3 else ()
    a = np.load(path, allow_pickle=False)
    raw = open(path, "rb").read()
    problems = []
    if raw[:8] != b"\x93NUMPY\x01\x00":
        problems.append("not a version 1.0 .npy header")
    hl = int.from_bytes(raw[8:10], "little")
    if (10 + hl) % 64 != 0:
        problems.append(f"data starts at {10 + hl}, not a multiple of 64")
    if a.dtype != dtype:
        problems.append(f"dtype {a.dtype.str} != {dtype.str}")
    if a.shape != shape:
        problems.append(f"shape {a.shape} != {shape}")
    if not a.flags.c_contiguous:
        problems.append("not C order")
    if not problems and not np.array_equal(a.ravel(), pattern(a.size, dtype)):
        bad = np.flatnonzero(a.ravel() != pattern(a.size, dtype))
        problems.append(f"{bad.size} elements differ from the pattern, first at flat index {bad[0]}")
    if problems:
        print(f"{path}: " + "; ".join(problems))
        return 1
    print(f"{path}: OK ({a.dtype.str} {a.shape})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
