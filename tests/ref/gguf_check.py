#!/usr/bin/python3
"""Independent check of a GGUF file written by iclab (tests/test_gguf.c), with struct only.

usage: gguf_check.py FILE [KEY=REPR ...]

Parses FILE and applies llama.cpp's stricter expectations for files it loads: version 3, keys
unique, tensor names unique and < 64 bytes, data offsets laid out in tensor order, each at the
running offset padded to the alignment, data section aligned, file size = data start + padded
tensor sizes. Each KEY=REPR argument requires repr(value) of that key (strings decoded as UTF-8,
arrays as Python lists) to equal REPR. Exit status 0 if all holds, 1 with a message otherwise."""
import struct
import sys

SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
# ggml type id -> (block size, bytes per block), for the types the tests write
GGML = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
        10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
        24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 30: (1, 2)}


class Reader:
    def __init__(self, data):
        self.d, self.p = data, 0

    def take(self, fmt):
        n = struct.calcsize(fmt)
        if self.p + n > len(self.d):
            raise ValueError(f"truncated at {self.p}")
        v = struct.unpack_from(fmt, self.d, self.p)
        self.p += n
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take("<Q")
        if self.p + n > len(self.d):
            raise ValueError(f"string past end at {self.p}")
        s = self.d[self.p:self.p + n]
        self.p += n
        return s.decode("utf-8")

    def value(self, t):
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.take("<IQ")
            return [self.value(et) for _ in range(n)]
        return self.take(SCALAR[t])


def main():
    path = sys.argv[1]
    data = open(path, "rb").read()
    r = Reader(data)
    if r.take("4s") != b"GGUF":
        return fail(path, "bad magic")
    ver, nt, nkv = r.take("<IQQ")
    if ver != 3:
        return fail(path, f"version {ver}, expected 3")
    kv = {}
    for _ in range(nkv):
        k = r.string()
        t = r.take("<I")
        if k in kv:
            return fail(path, f"duplicate key {k}")
        kv[k] = r.value(t)
    align = kv.get("general.alignment", 32)
    infos = []
    for _ in range(nt):
        name = r.string()
        nd = r.take("<I")
        ne = [r.take("<Q") for _ in range(nd)]
        t, off = r.take("<IQ")
        if len(name.encode()) >= 64:
            return fail(path, f"tensor name {name} too long")
        if t not in GGML:
            return fail(path, f"tensor {name}: unexpected type {t}")
        blk, tsz = GGML[t]
        n = 1
        for d in ne:
            n *= d
        infos.append((name, ne, t, off, n // blk * tsz))
    if len({i[0] for i in infos}) != len(infos):
        return fail(path, "duplicate tensor names")
    start = r.p + (align - r.p % align) % align
    off = 0
    for name, ne, t, o, size in infos:
        if o != off:
            return fail(path, f"tensor {name} at offset {o}, expected {off}")
        off += size + (align - size % align) % align
    if nt and len(data) != start + off:
        return fail(path, f"file is {len(data)} bytes, expected {start + off}")
    for arg in sys.argv[2:]:
        key, want = arg.split("=", 1)
        if key not in kv:
            return fail(path, f"missing key {key}")
        if repr(kv[key]) != want:
            return fail(path, f"{key} = {kv[key]!r}, expected {want}")
    print(f"{path}: OK (v{ver}, {nkv} keys, {nt} tensors, alignment {align})")
    return 0


def fail(path, msg):
    print(f"{path}: {msg}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
