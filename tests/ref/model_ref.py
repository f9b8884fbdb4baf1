#!/usr/bin/env python3
"""Writes tests/fixtures/model_ref.bin: a small GPT-2-style regression transformer, its inputs, and
PyTorch's loss, per-layer residual streams, every parameter gradient, and the parameters after three
Adam steps — all computed in float64 as the reference for iclab's fp32 engine (tests/test_model.c).

Layout of the file (little-endian): int32 header [L, H, C, n_ctx, D, O, mlp_mult, B, T, n_params],
then float32 arrays in this order: params (iclab buffer order), tokens (B,T,D), targets (B,T,O),
mask (B,T,O), loss (1), resid (L+1,B,T,C), out (B,T,O), grads (n_params), params after 3 Adam steps.
Run: /usr/bin/python3 tests/ref/model_ref.py"""
import math, struct, sys
import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
L, H, C, n_ctx, D, O, MM, B, T = 2, 2, 16, 10, 5, 1, 4, 3, 8
rng = np.random.default_rng(1234)

def rnd(*shape, s=0.3):
    return torch.tensor(rng.standard_normal(shape) * s, requires_grad=True)

# iclab buffer order (see icl_model.h)
P = {}
P['win'] = rnd(C, D); P['bin'] = rnd(C, s=0.1); P['wpe'] = rnd(n_ctx, C)
P['ln1w'] = torch.tensor(1 + rng.standard_normal((L, C)) * 0.1, requires_grad=True); P['ln1b'] = rnd(L, C, s=0.1)
P['qkvw'] = rnd(L, 3 * C, C); P['qkvb'] = rnd(L, 3 * C, s=0.1)
P['attw'] = rnd(L, C, C); P['attb'] = rnd(L, C, s=0.1)
P['ln2w'] = torch.tensor(1 + rng.standard_normal((L, C)) * 0.1, requires_grad=True); P['ln2b'] = rnd(L, C, s=0.1)
P['fcw'] = rnd(L, MM * C, C); P['fcb'] = rnd(L, MM * C, s=0.1)
P['projw'] = rnd(L, C, MM * C); P['projb'] = rnd(L, C, s=0.1)
P['lnfw'] = torch.tensor(1 + rng.standard_normal(C) * 0.1, requires_grad=True); P['lnfb'] = rnd(C, s=0.1)
P['wout'] = rnd(O, C); P['bout'] = rnd(O, s=0.1)
order = list(P.keys())

tokens = torch.tensor(rng.standard_normal((B, T, D)))
targets = torch.tensor(rng.standard_normal((B, T, O)))
mask = torch.zeros(B, T, O); mask[:, 0::2, :] = 1.0   # loss at the x positions, as in training

def forward(P):
    h = tokens @ P['win'].T + P['bin'] + P['wpe'][:T]
    resid = [h]
    hs = C // H
    causal = torch.tril(torch.ones(T, T)).bool()
    for l in range(L):
        x = F.layer_norm(h, (C,), P['ln1w'][l], P['ln1b'][l], eps=1e-5)
        qkv = x @ P['qkvw'][l].T + P['qkvb'][l]
        q, k, v = qkv.split(C, dim=2)
        q, k, v = [t.view(B, T, H, hs).transpose(1, 2) for t in (q, k, v)]
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(~causal, float('-inf')).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        h = h + y @ P['attw'][l].T + P['attb'][l]
        x = F.layer_norm(h, (C,), P['ln2w'][l], P['ln2b'][l], eps=1e-5)
        x = F.gelu(x @ P['fcw'][l].T + P['fcb'][l], approximate='tanh')
        h = h + x @ P['projw'][l].T + P['projb'][l]
        resid.append(h)
    out = F.layer_norm(h, (C,), P['lnfw'], P['lnfb'], eps=1e-5) @ P['wout'].T + P['bout']
    loss = ((out - targets) ** 2 * mask).sum() / mask.sum()
    return loss, torch.stack(resid), out

loss, resid, out = forward(P)
loss.backward()
grads = [P[k].grad.detach().clone() for k in order]
params0 = [P[k].detach().clone() for k in order]

# three Adam steps (paper betas) fed with the float32-rounded gradient scaled by 1, -0.5, 2, so the
# update rule is checked on its own (the gradients themselves are checked above)
opt = torch.optim.Adam([P[k] for k in order], lr=1e-3, betas=(0.9, 0.9999), eps=1e-8)
for scale in (1.0, -0.5, 2.0):
    for k, g in zip(order, grads):
        P[k].grad = torch.tensor(g.numpy().astype(np.float32).astype(np.float64)) * scale
    opt.step()
params3 = [P[k].detach().clone() for k in order]

def flat(ts):
    return np.concatenate([t.detach().numpy().ravel() for t in ts]).astype('<f4')

n_params = sum(t.numel() for t in params0)
with open(sys.argv[1] if len(sys.argv) > 1 else 'tests/fixtures/model_ref.bin', 'wb') as f:
    f.write(struct.pack('<10i', L, H, C, n_ctx, D, O, MM, B, T, n_params))
    for arr in (flat(params0), flat([tokens]), flat([targets]), flat([mask]), flat([loss]), flat([resid]), flat([out]),
                flat(grads), flat(params3)):
        f.write(arr.tobytes())
print('loss', float(loss), 'params', n_params)
