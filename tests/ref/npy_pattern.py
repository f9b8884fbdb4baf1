"""The value pattern shared by the .npy tests (C side: pattern_f / pattern_i in tests/test_npy.c):
element i (flat C order) of a float array is ((7*i) % 101 - 50) * 0.125, of an integer array
(7919*i) % 100003 - 50000; both exact in every dtype used."""
import numpy as np


def pattern(n, dtype):
    i = np.arange(n, dtype=np.int64)
    if np.dtype(dtype).kind == "f":
        return (((7 * i) % 101 - 50) * 0.125).astype(dtype)
    return ((7919 * i) % 100003 - 50000).astype(dtype)
