#!/usr/bin/python3
"""Writes the GGUF test fixtures with struct + numpy only (no gguf package), straight from the format
description (ggml docs/gguf.md and the block structs in ggml-common.h):

  tests/fixtures/gguf_v2.gguf     version 2, alignment 64, every metadata type incl. nested arrays,
                                  F32/F16/BF16/I32 tensors whose data is stored in reverse order.
  tests/fixtures/gguf_quant.gguf  version 3: for each quantized type T a tensor T (random data
                                  quantized by simple rules, plus blocks of random bits) and T.ref,
                                  the float32 dequantization computed here; plus conv.src (float32)
                                  with conv.f16 / conv.bf16 = round-to-nearest-even conversions.

The dequantization below is written per element ("element e lives in byte b, bits k") rather than
as ggml's loops, and does each float32 operation in ggml's order so the C code must match exactly.
test_gguf.c checks the values written here; keep the two in sync.
Run from anywhere: /usr/bin/python3 tests/ref/gguf_make_fixtures.py
"""
import os
import struct

import numpy as np

OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
F32 = np.float32

# metadata value types
U8, I8, U16, I16, U32, I32, F32T, BOOL, STR, ARR, U64, I64, F64T = range(13)
SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32T: "<f",
              BOOL: "<B", U64: "<Q", I64: "<q", F64T: "<d"}
# ggml tensor types: id, block size, bytes per block
GT = {"f32": (0, 1, 4), "f16": (1, 1, 2), "q4_0": (2, 32, 18), "q4_1": (3, 32, 20),
      "q5_0": (6, 32, 22), "q5_1": (7, 32, 24), "q8_0": (8, 32, 34), "q2_K": (10, 256, 84),
      "q3_K": (11, 256, 110), "q4_K": (12, 256, 144), "q5_K": (13, 256, 176),
      "q6_K": (14, 256, 210), "i32": (26, 1, 4), "bf16": (30, 1, 2)}


def gstr(b):
    if isinstance(b, str):
        b = b.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def value(t, v):
    """Serialized value of type t (arrays: v = (element type, items))."""
    if t == STR:
        return gstr(v)
    if t == ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(value(et, x) for x in items)
    return struct.pack(SCALAR_FMT[t], v)


def write_gguf(path, version, kvs, tensors, alignment=32, reverse_data=False):
    """kvs: [(key, type, value)]; tensors: [(name, type name, ne tuple, raw bytes)]."""
    def pad(n):
        return (alignment - n % alignment) % alignment
    order = list(range(len(tensors)))
    if reverse_data:
        order.reverse()
    offsets, off = {}, 0
    for i in order:
        offsets[i] = off
        off += len(tensors[i][3]) + pad(len(tensors[i][3]))
    out = bytearray(b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)))
    for key, t, v in kvs:
        out += gstr(key) + struct.pack("<I", t) + value(t, v)
    for i, (name, tname, ne, raw) in enumerate(tensors):
        tid, blk, tsz = GT[tname]
        n = int(np.prod(ne))
        assert ne[0] % blk == 0 and len(raw) == n // blk * tsz, name
        out += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        out += struct.pack("<IQ", tid, offsets[i])
    out += b"\0" * pad(len(out))
    data = bytearray(off)
    for i in order:
        data[offsets[i]:offsets[i] + len(tensors[i][3])] = tensors[i][3]
    out += data
    with open(path, "wb") as f:
        f.write(out)
    print(f"wrote {path} ({len(out)} bytes)")


# ---------------------------------------------------------------------------- v2 fixture

def make_v2():
    kvs = [
        ("general.architecture", STR, "iclab-test"),
        ("general.alignment", U32, 64),
        ("t.u8", U8, 200), ("t.i8", I8, -100), ("t.u16", U16, 60000), ("t.i16", I16, -30000),
        ("t.u32", U32, 4000000000), ("t.i32", I32, -2000000000), ("t.f32", F32T, 1.5),
        ("t.bool", BOOL, 1), ("t.str", STR, "h\u00e9llo w\u00f6rld"), ("t.u64", U64, 2**63 + 5),
        ("t.i64", I64, -2**40), ("t.f64", F64T, 3.141592653589793),
        ("t.arr.i32", ARR, (I32, [1, -2, 3, -4, 5])),
        ("t.arr.f32", ARR, (F32T, [0.5, -1.25, 2.0])),
        ("t.arr.str", ARR, (STR, ["a", "", "\u00fcn\u00ef", "tab\tx"])),
        ("t.arr.bool", ARR, (BOOL, [1, 0, 1])),
        ("t.arr.u8", ARR, (U8, list(range(10)))),
        ("t.arr.f64", ARR, (F64T, [1e300, -2.5])),
        ("t.arr.u64", ARR, (U64, [1, 2**40])),
        ("t.arr.empty", ARR, (U32, [])),
        ("t.arr.nested", ARR, (ARR, [(I32, [1, 2]), (I32, [3]), (I32, [])])),
        ("t.arr.nested_str", ARR, (ARR, [(STR, ["x", "yy"]), (STR, ["zzz"])])),
        ("t.arr.deep", ARR, (ARR, [(ARR, [(I16, [7, -7])])])),
    ]
    f32 = (np.arange(12, dtype=F32) * F32(0.5) - F32(2)).tobytes()
    f16 = np.array([0, 1, -2, 0.5, 65504, 2.0**-24, np.inf, -0.0], dtype=np.float16).tobytes()
    bf16 = (np.array([1.0, -2.5, 3.0], dtype=F32).view(np.uint32) >> 16).astype("<u2").tobytes()
    i32 = (np.arange(8, dtype="<i4") - 4).tobytes()
    tensors = [("w.f32", "f32", (4, 3), f32), ("w.f16", "f16", (8,), f16),
               ("w.i32", "i32", (2, 2, 2), i32), ("w.bf16", "bf16", (3,), bf16)]
    write_gguf(os.path.join(OUT, "gguf_v2.gguf"), 2, kvs, tensors, alignment=64, reverse_data=True)


# ---------------------------------------------------------------------------- quantization

def f16(x):
    """float -> (float16 bytes, the float32 value the C side reads back)."""
    h = np.array([x], dtype=np.float16)
    return h.tobytes(), F32(h.astype(F32)[0])


def rand_scale(rng):
    return float(rng.uniform(0.002, 0.05))


def bits(arr, shift, width):
    return (arr.astype(np.int64) >> shift) & ((1 << width) - 1)


def quant_q8_0(x, rng, randbits):
    d = max(np.abs(x).max() / 127, 1e-8) if not randbits else rand_scale(rng)
    db, dv = f16(d)
    q = rng.integers(-128, 128, 32) if randbits else np.clip(np.round(x / dv), -127, 127)
    blk = db + q.astype(np.int8).tobytes()
    y = q.astype(F32) * dv
    return blk, y


def quant_q4_0(x, rng, randbits):
    d = max(np.abs(x).max() / 7, 1e-8) if not randbits else rand_scale(rng)
    db, dv = f16(d)
    q = rng.integers(0, 16, 32) if randbits else np.clip(np.round(x / dv) + 8, 0, 15).astype(int)
    qs = (q[:16] | (q[16:] << 4)).astype(np.uint8)
    return db + qs.tobytes(), (q - 8).astype(F32) * dv


def quant_q4_1(x, rng, randbits):
    lo, hi = float(x.min()), float(x.max())
    db, dv = f16(max((hi - lo) / 15, 1e-8) if not randbits else rand_scale(rng))
    mb, mv = f16(lo if not randbits else -rand_scale(rng) * 8)
    q = rng.integers(0, 16, 32) if randbits else np.clip(np.round((x - mv) / dv), 0, 15).astype(int)
    qs = (q[:16] | (q[16:] << 4)).astype(np.uint8)
    return db + mb + qs.tobytes(), q.astype(F32) * dv + mv


def pack_q5(q):
    """32 five-bit values -> (qh u32 bytes, qs bytes): element e's high bit is bit e of qh."""
    qh = 0
    for e in range(32):
        qh |= int((q[e] >> 4) & 1) << e
    qs = ((q[:16] & 15) | ((q[16:] & 15) << 4)).astype(np.uint8)
    return struct.pack("<I", qh), qs.tobytes()


def quant_q5_0(x, rng, randbits):
    db, dv = f16(max(np.abs(x).max() / 15, 1e-8) if not randbits else rand_scale(rng))
    q = rng.integers(0, 32, 32) if randbits else np.clip(np.round(x / dv) + 16, 0, 31).astype(int)
    qh, qs = pack_q5(q)
    return db + qh + qs, (q - 16).astype(F32) * dv


def quant_q5_1(x, rng, randbits):
    lo, hi = float(x.min()), float(x.max())
    db, dv = f16(max((hi - lo) / 31, 1e-8) if not randbits else rand_scale(rng))
    mb, mv = f16(lo if not randbits else -rand_scale(rng) * 16)
    q = rng.integers(0, 32, 32) if randbits else np.clip(np.round((x - mv) / dv), 0, 31).astype(int)
    qh, qs = pack_q5(q)
    return db + mb + qh + qs, q.astype(F32) * dv + mv


def pack_k_scales(ls, lm):
    """8 six-bit scales and mins -> the 12 bytes Q4_K/Q5_K store."""
    s = [0] * 12
    for j in range(8):
        if j < 4:
            s[j] = ls[j]
            s[j + 4] = lm[j]
        else:
            s[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4)
            s[j - 4] |= (ls[j] >> 4) << 6
            s[j] |= (lm[j] >> 4) << 6
    return bytes(s)


def kquant_scale_min(x, nsub, qmax, rng, randbits):
    """Per sub-block affine quantization x ~ d*sc*q - dmin*m with 6-bit (sc, m)."""
    sub = x.reshape(nsub, -1)
    mn = np.minimum(sub.min(axis=1), 0)
    scale = (sub.max(axis=1) - mn) / qmax
    if randbits:
        d, dmin = rand_scale(rng), rand_scale(rng)
        ls, lm = rng.integers(0, 64, nsub), rng.integers(0, 64, nsub)
    else:
        d, dmin = max(scale.max() / 63, 1e-8), max(-mn.min() / 63, 1e-8)
    db, dv = f16(d)
    mb, mv = f16(dmin)
    if not randbits:
        ls = np.clip(np.round(scale / dv), 1, 63).astype(int)
        lm = np.clip(np.round(-mn / mv), 0, 63).astype(int)
    d_sub = dv * ls.astype(F32)          # float32, as in C: d * sc
    m_sub = mv * lm.astype(F32)
    if randbits:
        q = rng.integers(0, qmax + 1, x.size)
    else:
        q = np.clip(np.round((sub + m_sub[:, None]) / d_sub[:, None]), 0, qmax).astype(int).ravel()
    return db, mb, ls, lm, d_sub, m_sub, q


def quant_q4_k(x, rng, randbits):
    db, mb, ls, lm, d_sub, m_sub, q = kquant_scale_min(x, 8, 15, rng, randbits)
    qs = bytearray(128)
    for e in range(256):  # element e: chunk c = e // 64; low half -> low nibble, high half -> high nibble
        c, r = divmod(e, 64)
        qs[32 * c + r % 32] |= int(q[e]) << (4 * (r // 32))
    sub = np.arange(256) // 32
    y = d_sub[sub] * q.astype(F32) - m_sub[sub]
    return db + mb + pack_k_scales(ls, lm) + bytes(qs), y


def quant_q5_k(x, rng, randbits):
    db, mb, ls, lm, d_sub, m_sub, q = kquant_scale_min(x, 8, 31, rng, randbits)
    qs, qh = bytearray(128), bytearray(32)
    for e in range(256):  # element e: byte 32*(e//64) + e%32 low/high nibble; its 5th bit is bit e//32 of qh[e%32]
        c, r = divmod(e, 64)
        qs[32 * c + r % 32] |= (int(q[e]) & 15) << (4 * (r // 32))
        qh[e % 32] |= (int(q[e]) >> 4) << (e // 32)
    sub = np.arange(256) // 32
    y = d_sub[sub] * q.astype(F32) - m_sub[sub]
    return db + mb + pack_k_scales(ls, lm) + bytes(qh) + bytes(qs), y


def pack_2bit(q):
    """256 two-bit values: element e is in byte 32*(e//128) + e%32 at bits 2*((e%128)//32)."""
    qs = bytearray(64)
    for e in range(256):
        qs[32 * (e // 128) + e % 32] |= int(q[e] & 3) << (2 * ((e % 128) // 32))
    return bytes(qs)


def quant_q2_k(x, rng, randbits):
    sub = x.reshape(16, 16)
    mn = np.minimum(sub.min(axis=1), 0)
    scale = (sub.max(axis=1) - mn) / 3
    if randbits:
        db, dv = f16(rand_scale(rng))
        mb, mv = f16(rand_scale(rng))
        ls, lm = rng.integers(0, 16, 16), rng.integers(0, 16, 16)
    else:
        db, dv = f16(max(scale.max() / 15, 1e-8))
        mb, mv = f16(max(-mn.min() / 15, 1e-8))
        ls = np.clip(np.round(scale / dv), 1, 15).astype(int)
        lm = np.clip(np.round(-mn / mv), 0, 15).astype(int)
    dl = dv * ls.astype(F32)
    ml = mv * lm.astype(F32)
    if randbits:
        q = rng.integers(0, 4, 256)
    else:
        q = np.clip(np.round((sub + ml[:, None]) / dl[:, None]), 0, 3).astype(int).ravel()
    scales = (ls | (lm << 4)).astype(np.uint8).tobytes()
    s = np.arange(256) // 16
    y = dl[s] * q.astype(F32) - ml[s]
    return scales + pack_2bit(q) + db + mb, y


def quant_q3_k(x, rng, randbits):
    sub = x.reshape(16, 16)
    s_sub = np.abs(sub).max(axis=1) / 4
    if randbits:
        db, dv = f16(rand_scale(rng))
        sc = rng.integers(-32, 32, 16)
        q = rng.integers(0, 8, 256)
    else:
        db, dv = f16(max(s_sub.max() / 31, 1e-8))
        sc = np.clip(np.round(s_sub / dv), 1, 31).astype(int)
        q = (np.clip(np.round(sub / (dv * sc.astype(F32))[:, None]), -4, 3) + 4).astype(int).ravel()
    u = sc + 32                       # stored 6-bit, offset 32
    sp = bytearray(12)
    for j in range(16):
        sp[j % 8] |= (int(u[j]) & 15) << (4 * (j // 8))
        sp[8 + j % 4] |= (int(u[j]) >> 4) << (2 * (j // 4))
    hmask = bytearray(32)
    for e in range(256):
        hmask[e % 32] |= (int(q[e]) >> 2) << (e // 32)
    dl = dv * sc.astype(F32)
    y = dl[np.arange(256) // 16] * (q - 4).astype(F32)
    return bytes(hmask) + pack_2bit(q) + bytes(sp) + db, y


def quant_q6_k(x, rng, randbits):
    sub = x.reshape(16, 16)
    s_sub = np.abs(sub).max(axis=1) / 32
    if randbits:
        db, dv = f16(rand_scale(rng) / 10)
        sc = rng.integers(-128, 128, 16)
        q = rng.integers(0, 64, 256)
    else:
        db, dv = f16(max(s_sub.max() / 127, 1e-8))
        sc = np.clip(np.round(s_sub / dv), 1, 127).astype(int)
        q = (np.clip(np.round(sub / (dv * sc.astype(F32))[:, None]), -32, 31) + 32).astype(int).ravel()
    ql, qh = bytearray(128), bytearray(64)
    for e in range(256):  # half h = e//128; within it group k = (e%128)//32 and lane l = e%32
        h, r = divmod(e, 128)
        k, l = divmod(r, 32)
        ql[64 * h + l + 32 * (k % 2)] |= (int(q[e]) & 15) << (4 * (k // 2))
        qh[32 * h + l] |= (int(q[e]) >> 4) << (2 * k)
    s = dv * sc.astype(F32)
    y = s[np.arange(256) // 16] * (q - 32).astype(F32)
    return bytes(ql) + bytes(qh) + sc.astype(np.int8).tobytes() + db, y


QUANT = {"q4_0": quant_q4_0, "q4_1": quant_q4_1, "q5_0": quant_q5_0, "q5_1": quant_q5_1,
         "q8_0": quant_q8_0, "q2_K": quant_q2_k, "q3_K": quant_q3_k, "q4_K": quant_q4_k,
         "q5_K": quant_q5_k, "q6_K": quant_q6_k}


def bf16_rne(x):
    """float32 -> bfloat16 bits by picking the nearer of the two neighbours (ties to even)."""
    out = []
    for v in x.astype(F32):
        b = int(np.array([v], dtype=F32).view(np.uint32)[0])
        if np.isnan(v):
            out.append((b >> 16) | 0x40)
            continue
        if np.isinf(v):                      # exactly representable
            out.append(b >> 16)
            continue
        lo = b >> 16
        hi = lo + 1
        def val(h):
            if (h & 0x7fff) == 0x7f80:       # rounding up to infinity: treat it as 2^128
                return float(np.sign(v)) * 2.0**128
            return float(np.array([h << 16], dtype=np.uint32).view(F32)[0])
        dlo, dhi = abs(float(v) - val(lo)), abs(float(v) - val(hi))
        out.append(lo if dlo < dhi or (dlo == dhi and lo % 2 == 0) else hi)
    return np.array(out, dtype="<u2")


def make_quant():
    rng = np.random.default_rng(20240611)
    tensors = []
    for name, fn in QUANT.items():
        tid, blk, tsz = GT[name]
        ne0 = 2 * blk if blk == 32 else blk
        ne = (ne0, 2)
        raw, ref = bytearray(), []
        for b in range(ne0 * 2 // blk):
            x = rng.normal(0, 1, blk).astype(F32) * F32(rng.uniform(0.1, 3))
            randbits = b % 2 == 1     # odd blocks: random bit patterns, to exercise every bit
            blob, y = fn(x, rng, randbits)
            assert len(blob) == tsz, (name, len(blob))
            assert y.dtype == F32, name
            raw += blob
            ref.append(y)
            if not randbits:          # sanity: the simple quantizer really approximates x
                assert np.abs(y - x).max() <= np.abs(x).max() * 0.6 + 1e-3, name
        tensors.append((name, name, ne, bytes(raw)))
        tensors.append((name + ".ref", "f32", ne, np.concatenate(ref).astype("<f4").tobytes()))
    # half-precision conversion cases: specials, boundaries, ties, then random values
    sp = [0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, -65520.0, 1e10, np.inf, -np.inf, np.nan,
          2.0**-14, 2.0**-24, 2.0**-25, 2.0**-25 * 1.0000001, 3 * 2.0**-26, 2.0**-26,
          1 + 2.0**-11, 1 + 3 * 2.0**-11, 1 + 2.0**-11 + 2.0**-20, 2.0**-14 - 2.0**-25, 3.0e38, -3.4e38,
          1 + 2.0**-8, 1 + 3 * 2.0**-8, 1.5 * 2.0**-130]
    n = 512
    rnd = rng.uniform(-1, 1, n - len(sp)) * 2.0 ** rng.uniform(-30, 18, n - len(sp))
    src = np.concatenate([np.array(sp), rnd]).astype(F32)
    tensors.append(("conv.src", "f32", (n,), src.astype("<f4").tobytes()))
    h = src.astype(np.float16)
    tensors.append(("conv.f16", "f16", (n,), h.astype("<f2").tobytes()))
    tensors.append(("conv.f16.ref", "f32", (n,), h.astype(F32).astype("<f4").tobytes()))
    tensors.append(("conv.bf16", "bf16", (n,), bf16_rne(src).tobytes()))
    write_gguf(os.path.join(OUT, "gguf_quant.gguf"), 3, [("general.architecture", STR, "iclab-quant-test")],
               tensors)


if __name__ == "__main__":
    with np.errstate(over="ignore", invalid="ignore"):
        make_v2()
        make_quant()
