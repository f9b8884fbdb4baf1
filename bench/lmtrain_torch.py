#!/usr/bin/env python3
"""Peer of bench/bench_lmtrain.c: the mini-LM (`iclab train --task lm --preset minilm`) in PyTorch
(Debian python3-torch 1.13), for side-by-side timing of training steps.

Llama-style, as include/iclab/icl_lmtrain.h: token embedding, pre-norm blocks [RMSNorm -> q, k, v
(no biases) -> RoPE on adjacent pairs (2i, 2i+1), llama's GGUF convention -> causal grouped-query
attention -> output projection -> residual -> RMSNorm -> SwiGLU -> residual], final RMSNorm,
untied head. AdamW (betas 0.9/0.95, eps 1e-8, decay 0.1 on matrices only), global-norm clipping
at 1. A step is zero_grad + forward + cross-entropy + backward + clip + AdamW, on one of four
pre-generated random batches; steps are timed after warm-up.
Usage: lmtrain_torch.py [--layers 4 --width 128 --heads 4 --kv-heads 2 --ff 0 --ctx 1024 --batch 2
                         --vocab 4096 --steps 20 --warmup 3 --threads 2 --init torch|gpt2]
Prints: params=N steps_per_s=X tokens_per_s=Y loss=Z"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
for k, v in dict(layers=4, width=128, heads=4, kv_heads=2, ff=0, ctx=1024, batch=2, vocab=4096, steps=20,
                 warmup=3, threads=2).items():
    p.add_argument('--' + k.replace('_', '-'), type=int, default=v)
# torch: PyTorch's default initialisation; gpt2: iclab's (normal 0.02, output projections scaled by
# 1/sqrt(2 layers)). Both ran at the same rate on a quiet machine.
p.add_argument('--init', choices=['torch', 'gpt2'], default='torch')
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
C, H, KV, T = a.width, a.heads, a.kv_heads, a.ctx
D = C // H
FF = a.ff or (C * 8 // 3 + 31) // 32 * 32


class RMSNorm(nn.Module):
    def __init__(s, n, eps=1e-5):
        super().__init__()
        s.w = nn.Parameter(torch.ones(n))
        s.eps = eps

    def forward(s, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + s.eps) * s.w


def rope_tables():
    inv = 1.0 / (10000.0 ** (torch.arange(0, D, 2).float() / D))
    ang = torch.arange(T).float()[:, None] * inv[None, :]  # (T, D/2)
    return ang.cos(), ang.sin()


COS, SIN = rope_tables()


def rope(x):  # x (B, h, T, D): rotates pairs (2i, 2i+1)
    t = x.shape[2]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c, s = COS[:t], SIN[:t]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(s):
        super().__init__()
        s.n1, s.n2 = RMSNorm(C), RMSNorm(C)
        s.q = nn.Linear(C, H * D, bias=False)
        s.k = nn.Linear(C, KV * D, bias=False)
        s.v = nn.Linear(C, KV * D, bias=False)
        s.o = nn.Linear(H * D, C, bias=False)
        s.gate = nn.Linear(C, FF, bias=False)
        s.up = nn.Linear(C, FF, bias=False)
        s.down = nn.Linear(FF, C, bias=False)
        s.register_buffer('mask', torch.full((T, T), float('-inf')).triu(1))

    def forward(s, x):
        B, t, _ = x.shape
        h = s.n1(x)
        q = rope(s.q(h).view(B, t, H, D).transpose(1, 2))
        k = rope(s.k(h).view(B, t, KV, D).transpose(1, 2))
        v = s.v(h).view(B, t, KV, D).transpose(1, 2)
        # grouped-query: query head j reads kv head j // (H / KV)
        k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
        att = (q @ k.transpose(-2, -1)) * (D ** -0.5) + s.mask[:t, :t]
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, t, H * D)
        x = x + s.o(y)
        h = s.n2(x)
        return x + s.down(F.silu(s.gate(h)) * s.up(h))


class Model(nn.Module):
    def __init__(s):
        super().__init__()
        s.emb = nn.Embedding(a.vocab, C)
        s.blocks = nn.ModuleList([Block() for _ in range(a.layers)])
        s.norm = RMSNorm(C)
        s.head = nn.Linear(C, a.vocab, bias=False)

    def forward(s, tok):
        x = s.emb(tok)
        for b in s.blocks:
            x = b(x)
        return s.head(s.norm(x))


m = Model()
with torch.no_grad():
    for name, q in m.named_parameters():
        if a.init == 'gpt2' and q.dim() == 2:
            q.normal_(0.0, 0.02)
            if name.endswith(('.o.weight', '.down.weight')):
                q.mul_(1.0 / math.sqrt(2 * a.layers))
nparams = sum(q.numel() for q in m.parameters())
decay = [q for q in m.parameters() if q.dim() == 2]
no_decay = [q for q in m.parameters() if q.dim() < 2]
opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1}, {'params': no_decay, 'weight_decay': 0.0}],
                        lr=3e-3, betas=(0.9, 0.95), eps=1e-8)
g = torch.Generator().manual_seed(7)
data = [(torch.randint(0, a.vocab, (a.batch, T), generator=g), torch.randint(0, a.vocab, (a.batch, T), generator=g))
        for _ in range(4)]


def step(i):
    tok, tgt = data[i % 4]
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(m(tok).view(-1, a.vocab), tgt.view(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
    return loss.item()


for i in range(a.warmup):
    step(i)
t0 = time.perf_counter()
for i in range(a.steps):
    loss = step(i)
dt = time.perf_counter() - t0
print(f"params={nparams} steps_per_s={a.steps / dt:.3f} tokens_per_s={a.steps * a.batch * T / dt:.0f} loss={loss:.4f}")
