#!/usr/bin/env python3
"""Peer of bench/bench_lora.c: LoRA finetuning steps of a Llama GGUF model (default the demo's
mini-LM, runs/demo-llm/lm/model.gguf) in PyTorch (Debian python3-torch 1.13), float32, for
side-by-side timing.

The model: token embedding, pre-norm blocks [RMSNorm -> q, k, v (no biases) -> RoPE -> causal
grouped-query attention -> output projection -> residual -> RMSNorm -> SwiGLU -> residual], final
RMSNorm, untied head; weights read from the GGUF with tests/ref/lm_ref.py's reader (q/k rows
un-permuted to Hugging Face's layout, RoPE as rotate_half: the same function as the file's), or
random of the same shapes with --model random. Every base weight is frozen (requires_grad False).
PEFT-style LoRA on the chosen matrices of the chosen layers: y = W x + (alpha / r) B A dropout(x),
A (r, in) uniform as PEFT/nn.Linear's kaiming, B (out, r) zero. AdamW on the adapters only (lr 1e-3,
betas 0.9/0.95, eps 1e-8, no decay: `iclab finetune`'s defaults), global-norm clipping at 1. The
loss: mean cross-entropy over the positions with a target (the "answer"); the final norm and head
run on those positions only, gathered, as iclab does (--head-all-rows: on every position with
ignore_index elsewhere, as a plain PEFT script would, for comparison). A step is zero_grad + forward + loss + backward +
clip + AdamW on one of four pre-generated batches shaped as bench_lora's (B sequences padded to T,
lengths in [T - T/4, T], targets on the last `answer` tokens); steps are timed after warm-up.
Usage: lora_torch.py [--model PATH|random] [--layers first:1|last:1|A-B|all] [--rank 16] [--alpha 16]
                     [--dropout 0.1] [--batch 8] [--seq 100] [--answer 2] [--steps 20] [--warmup 3]
                     [--threads 2] [--head-all-rows]
Prints: layers=... adapter_params=N steps_per_s=X tokens_per_s=Y loss=Z"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument('--model', default='runs/demo-llm/lm/model.gguf')
p.add_argument('--layers', default='first:1')
p.add_argument('--alpha', type=float, default=16.0)
p.add_argument('--dropout', type=float, default=0.1)
p.add_argument('--head-all-rows', action='store_true')
for k, v in dict(rank=16, batch=8, seq=100, answer=2, steps=20, warmup=3, threads=2,
                 # shapes of --model random (the mini-LM's)
                 vocab=4096, embd=128, n_layers=4, heads=4, kv_heads=2, ff=352).items():
    p.add_argument('--' + k.replace('_', '-'), type=int, default=v)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)

# ------------------------------------------------------------------------------ the base weights
if a.model != 'random':
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'ref'))
    import lm_ref  # noqa: E402
    torch.set_default_dtype(torch.float32)  # lm_ref sets float64 for itself
    ref = lm_ref.Model(a.model)
    assert ref.arch == 'llama', 'a llama GGUF is needed'
    f32 = lambda t: t.detach().to(torch.float32).contiguous()
    C, L, H, KV, D, EPS, THETA = ref.C, ref.L, ref.H, ref.Hkv, ref.hd, ref.eps, ref.theta
    EMBED, HEAD, NORM = f32(ref.embed), f32(ref.lm_head), f32(ref.final_norm)
    LAYERS = [{k: f32(lw[k]) for k in ('wq', 'wk', 'wv', 'wo', 'gate', 'up', 'down', 'ln1', 'ln2')} for lw in ref.layers]
    INV = ref.inv_freq.to(torch.float32)
    del ref
else:
    C, L, H, KV, EPS, THETA = a.embd, a.n_layers, a.heads, a.kv_heads, 1e-5, 10000.0
    D = C // H
    rnd = lambda *s: torch.randn(*s) * 0.02
    EMBED, HEAD, NORM = rnd(a.vocab, C), rnd(a.vocab, C), torch.ones(C)
    LAYERS = [dict(wq=rnd(H * D, C), wk=rnd(KV * D, C), wv=rnd(KV * D, C), wo=rnd(C, H * D), gate=rnd(a.ff, C),
                   up=rnd(a.ff, C), down=rnd(C, a.ff), ln1=torch.ones(C), ln2=torch.ones(C)) for _ in range(L)]
    INV = 1.0 / THETA ** (torch.arange(0, D, 2, dtype=torch.float32) / D)
V, T = EMBED.shape[0], a.seq

spec = a.layers
if spec == 'all':
    lo, hi = 0, L
elif spec.startswith('first:'):
    lo, hi = 0, int(spec[6:])
elif spec.startswith('last:'):
    lo, hi = L - int(spec[5:]), L
else:
    lo, hi = int(spec.split('-')[0]), int(spec.split('-')[1]) + 1
assert 0 <= lo < hi <= L, 'layer range outside the model'

ang = torch.arange(T, dtype=torch.float32)[:, None] * INV[None, :]  # (T, D/2)
COS, SIN = torch.cat((ang.cos(), ang.cos()), -1), torch.cat((ang.sin(), ang.sin()), -1)  # (T, D)


def rope(x):  # x (B, h, T, D), Hugging Face's rotate_half on un-permuted rows
    x1, x2 = x[..., :D // 2], x[..., D // 2:]
    return x * COS + torch.cat((-x2, x1), -1) * SIN


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


class LoraLinear(nn.Module):
    """A frozen weight W (out, in), and with an adapter PEFT's lora.Linear: W x + s B A drop(x)."""

    def __init__(s, w, adapter):
        super().__init__()
        s.register_buffer('w', w)  # frozen: a buffer, no gradient
        s.adapter = adapter
        if adapter:
            out, inp = w.shape
            s.A = nn.Parameter(torch.empty(a.rank, inp))
            nn.init.kaiming_uniform_(s.A, a=math.sqrt(5))  # PEFT's lora_A initialisation
            s.B = nn.Parameter(torch.zeros(out, a.rank))
            s.drop = nn.Dropout(a.dropout)
            s.scale = a.alpha / a.rank

    def forward(s, x):
        y = F.linear(x, s.w)
        if s.adapter:
            y = y + F.linear(F.linear(s.drop(x), s.A), s.B) * s.scale
        return y


class Block(nn.Module):
    def __init__(s, lw, adapted):
        super().__init__()
        s.ln1, s.ln2 = lw['ln1'], lw['ln2']
        for k in ('wq', 'wk', 'wv', 'wo', 'gate', 'up', 'down'):
            setattr(s, k, LoraLinear(lw[k], adapted))
        s.register_buffer('mask', torch.full((T, T), float('-inf')).triu(1))

    def forward(s, x):
        B, t, _ = x.shape
        h = rmsnorm(x, s.ln1)
        q = rope(s.wq(h).view(B, t, H, D).transpose(1, 2))
        k = rope(s.wk(h).view(B, t, KV, D).transpose(1, 2))
        v = s.wv(h).view(B, t, KV, D).transpose(1, 2)
        # grouped-query: query head j reads kv head j // (H / KV)
        k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
        att = (q @ k.transpose(-2, -1)) * (D ** -0.5) + s.mask[:t, :t]
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, t, H * D)
        x = x + s.wo(y)
        h = rmsnorm(x, s.ln2)
        return x + s.down(F.silu(s.gate(h)) * s.up(h))


class Model(nn.Module):
    def __init__(s):
        super().__init__()
        s.blocks = nn.ModuleList([Block(LAYERS[i], lo <= i < hi) for i in range(L)])

    def forward(s, tok, rows=None):
        x = F.embedding(tok, EMBED)
        for b in s.blocks:
            x = b(x)
        x = x.reshape(-1, C)
        if rows is not None:
            x = x[rows]
        return F.linear(rmsnorm(x, NORM), HEAD)


m = Model()
m.train()  # dropout on
params = [q for q in m.parameters() if q.requires_grad]
nparams = sum(q.numel() for q in params)
opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)

g = torch.Generator().manual_seed(7)
data = []
for _ in range(4):
    tok = torch.randint(0, V, (a.batch, T), generator=g)
    tgt = torch.full((a.batch, T), -1, dtype=torch.long)
    for b in range(a.batch):
        n = T - int(torch.randint(0, T // 4 + 1, (1,), generator=g))  # the sequence, then padding
        tok[b, n:] = tok[b, n - 1]
        tgt[b, n - a.answer - 1:n - 1] = tok[b, n - a.answer:n]  # position i predicts token i+1
    rows = (tgt.view(-1) >= 0).nonzero().view(-1)
    data.append((tok, tgt, rows))


def step(i):
    tok, tgt, rows = data[i % 4]
    opt.zero_grad(set_to_none=True)
    if a.head_all_rows:
        loss = F.cross_entropy(m(tok), tgt.view(-1), ignore_index=-1)
    else:
        loss = F.cross_entropy(m(tok, rows), tgt.view(-1)[rows])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    return loss.item()


for i in range(a.warmup):
    step(i)
t0 = time.perf_counter()
for i in range(a.steps):
    loss = step(i)
dt = time.perf_counter() - t0
print(f"layers={a.layers}({lo}-{hi - 1}) adapter_params={nparams} steps_per_s={a.steps / dt:.3f} "
      f"tokens_per_s={a.steps * a.batch * T / dt:.0f} loss={loss:.4f}")
