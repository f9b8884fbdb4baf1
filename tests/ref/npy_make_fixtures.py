#!/usr/bin/python3
"""Writes .npy fixtures with numpy.save for tests/test_npy.c (values: npy_pattern.py):
npy_f32_234.npy (<f4, 2x3x4), npy_i32_57.npy (<i4, 5x7), npy_f64_3.npy (<f8, 3),
npy_i64_4.npy (<i8, 4), npy_f32_scalar.npy (<f4, ()), npy_f32_03.npy (<f4, 0x3),
and two the reader must reject: npy_fortran.npy (fortran_order True) and npy_bigendian.npy (>f4).
Run: /usr/bin/python3 tests/ref/npy_make_fixtures.py"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from npy_pattern import pattern  # noqa: E402

OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))


def save(name, a):
    path = os.path.join(OUT, name)
    np.save(path, a, allow_pickle=False)
    print(f"wrote {path} ({a.dtype.str} {a.shape}, fortran={np.isfortran(a)})")


save("npy_f32_234.npy", pattern(24, "<f4").reshape(2, 3, 4))
save("npy_i32_57.npy", pattern(35, "<i4").reshape(5, 7))
save("npy_f64_3.npy", pattern(3, "<f8"))
save("npy_i64_4.npy", pattern(4, "<i8"))
save("npy_f32_scalar.npy", pattern(1, "<f4").reshape(()))
save("npy_f32_03.npy", pattern(0, "<f4").reshape(0, 3))
save("npy_fortran.npy", np.asfortranarray(pattern(6, "<f4").reshape(2, 3)))
save("npy_bigendian.npy", pattern(3, ">f4"))
