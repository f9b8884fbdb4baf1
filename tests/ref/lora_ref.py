#!/usr/bin/python3
"""Float64 reference for iclab's LoRA gradients: writes tests/fixtures/lora_ref.bin (tests/test_lora.c).

usage: lora_ref.py ICLAB_BINARY VOCAB_DIR [OUT]

Per case it builds a model with `ICLAB mkmodel` (fixed seed), reads it with lm_ref.py's GGUF reader
and Hugging Face-layout model, and adds LoRA adapters the way PEFT's lora.Linear does:
    y = base(x) + (alpha / r) * lora_B(lora_A(dropout(x)))      (dropout 0 here)
on a llama (every matrix, every layer), a qwen2 (q/k/v biases; q, v, down of the last layer) and a
gemma2 (post-norms, GeGLU, soft-capped scores and logits, a sliding window of 4 over 10 tokens)
with lora_A (r, in) and lora_B (out, r) in llama.cpp's GGUF row order (for llama's permuted
attn_q / attn_k, lora_B's rows are un-permuted together with the base weight's, which is what the
adapter file means to llama.cpp). The loss is the mean cross-entropy over the positions with a
target (-1 elsewhere: only the "answer" positions count); torch autograd gives dloss/dA, dloss/dB.

File layout (little-endian): int32 n_cases; per case: int32 len + mkmodel arguments (the --vocab
value a file name in VOCAB_DIR), int32 rank, float32 alpha, int32 layer_lo, layer_hi, targets
(bits q,k,v,o,gate,up,down), T; int32 tokens[T], targets[T]; int32 n_params; float32 params
(every adapter, layer order then q,k,v,o,gate,up,down, A (r,in) then B (out,r), row-major);
float64 loss; float32 grads[n_params]."""
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lm_ref  # noqa: E402

torch.set_default_dtype(torch.float64)
NAMES = ["wq", "wk", "wv", "wo", "gate", "up", "down"]
# name, mkmodel arguments, rank, alpha, layer range, target bits, T
CASES = [
    ("llama", ["--arch", "llama", "--vocab", "ggml-vocab-llama-spm.gguf", "--seed", "21"], 4, 8.0, (0, 2), 127, 11),
    ("qwen2", ["--arch", "qwen2", "--vocab", "ggml-vocab-gpt-2.gguf", "--seed", "22"], 2, 4.0, (1, 2),
     1 | 4 | 64, 9),
    # post-norms, GeGLU, soft-capped scores and logits, a sliding window shorter than the sequence
    ("gemma2", ["--arch", "gemma2", "--vocab", "ggml-vocab-llama-spm.gguf", "--head-dim", "32", "--sliding-window", "4",
                "--tied", "--seed", "23"], 4, 8.0, (0, 2), 127, 10),
]


def shapes(m):
    qd, kvd = m.H * m.hd, m.Hkv * m.hd
    F_ = m.layers[0]["up"].shape[0]
    return {"wq": (m.C, qd), "wk": (m.C, kvd), "wv": (m.C, kvd), "wo": (qd, m.C), "gate": (m.C, F_),
            "up": (m.C, F_), "down": (F_, m.C)}


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    iclab, vocab_dir = sys.argv[1], sys.argv[2]
    out = sys.argv[3] if len(sys.argv) == 4 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                                "fixtures", "lora_ref.bin")
    rng = np.random.RandomState(5)
    blobs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, args, r, alpha, (lo, hi), bits, T in CASES:
            vi = args.index("--vocab") + 1
            run_args = list(args)
            run_args[vi] = os.path.join(vocab_dir, args[vi])
            path = os.path.join(tmp, name + ".gguf")
            subprocess.run([iclab, "mkmodel", *run_args, "-o", path], check=True)
            m = lm_ref.Model(path)
            permuted = m.arch in ("llama", "olmo")
            sh = shapes(m)
            V = m.lm_head.shape[0]
            tokens = rng.randint(0, V, size=T)
            targets = np.full(T, -1)
            targets[T - 3:] = rng.randint(0, V, size=3)  # the "answer": the last three positions
            # adapters, in iclab's buffer order; B random too (a fresh B is zero, which hides A's gradient)
            adapters, flat = {}, []
            for li in range(lo, hi):
                for t, nm in enumerate(NAMES):
                    if not bits & (1 << t):
                        continue
                    n_in, n_out = sh[nm]
                    A = torch.tensor(rng.uniform(-1, 1, size=(r, n_in)) / np.sqrt(n_in), requires_grad=True)
                    B = torch.tensor(rng.normal(0, 0.05, size=(n_out, r)), requires_grad=True)
                    adapters[(li, nm)] = (A, B)
                    flat += [A, B]
            params32 = [p.detach().numpy().astype(np.float32) for p in flat]
            # the reference computes with exactly the float32 values iclab holds
            with torch.no_grad():
                for p, p32 in zip(flat, params32):
                    p.copy_(torch.tensor(p32.astype(np.float64)))
            scale = alpha / r
            for (li, nm), (A, B) in adapters.items():
                Bh = lm_ref.unpermute(B, m.H if nm == "wq" else m.Hkv) if permuted and nm in ("wq", "wk") else B
                m.layers[li][nm + "_lora"] = (A, Bh)
            orig_linear = lm_ref.linear

            def peft_linear(x, w, b=None):
                y = orig_linear(x, w, b)
                for lw in m.layers:
                    for nm in NAMES:
                        if lw.get(nm) is w and nm + "_lora" in lw:
                            A, Bh = lw[nm + "_lora"]
                            y = y + scale * ((x @ A.T) @ Bh.T)
                return y

            lm_ref.linear = peft_linear
            try:
                _, logits = lm_ref.forward(m, tokens)
            finally:
                lm_ref.linear = orig_linear
            tg = torch.tensor(targets, dtype=torch.long)
            sel = tg >= 0
            loss = F.cross_entropy(logits[sel], tg[sel])
            loss.backward()
            grads = np.concatenate([p.grad.numpy().ravel() for p in flat]).astype(np.float32)
            params = np.concatenate([p.ravel() for p in params32]).astype(np.float32)
            blob = struct.pack("<i", len(" ".join(args))) + " ".join(args).encode()
            blob += struct.pack("<ifiiii", r, alpha, lo, hi, bits, T)
            blob += tokens.astype("<i4").tobytes() + targets.astype("<i4").tobytes()
            blob += struct.pack("<i", params.size) + params.astype("<f4").tobytes()
            blob += struct.pack("<d", loss.item()) + grads.astype("<f4").tobytes()
            blobs.append(blob)
            print(f"{name}: {len(flat) // 2} adapters, {params.size} parameters, loss {loss.item():.6f}, "
                  f"|grad| {np.linalg.norm(grads):.4g}")
    with open(out, "wb") as f:
        f.write(struct.pack("<i", len(blobs)))
        for b in blobs:
            f.write(b)


if __name__ == "__main__":
    main()
