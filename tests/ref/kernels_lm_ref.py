#!/usr/bin/env python3
"""Writes tests/fixtures/kernels_lm_ref.bin: a two-layer Llama-style language model, its inputs,
and PyTorch's loss, logits and every parameter gradient, computed in float64 from the float32
parameters, as the reference for iclab's fp32 Llama-block kernels (tests/test_kernels_lm.c).

The model: token embedding -> L x [RMSNorm -> q/k/v projections -> RoPE on q and k -> causal
grouped-query attention -> output projection -> residual -> RMSNorm -> SwiGLU MLP -> residual]
-> final RMSNorm -> LM head -> cross-entropy (mean over the targets that are not -1). Layer 0
rotates all head_dim channels in adjacent pairs (2i, 2i+1) (llama.cpp's normal RoPE), layer 1 the
first rope_dim1 < head_dim channels in NeoX halves (i, i + rope_dim/2), so both conventions and a
partial rotation are covered. No biases, untied LM head; q width Hq*hd differs from C.

Layout of the file (little-endian): int32 header [V, C, L, Hq, Hkv, hd, F, B, T, rope_dim0,
rope_dim1, n_params], float32 [theta, eps], int32 tokens (B*T), int32 targets (B*T), then float32
arrays: params (n_params, in the order below), loss (1), logits (B*T*V), grads (n_params).
Parameter order: wte (V,C); per layer: attn_norm (C), wq (Hq*hd,C), wk (Hkv*hd,C), wv (Hkv*hd,C),
wo (C,Hq*hd), ffn_norm (C), w_gate (F,C), w_up (F,C), w_down (C,F); then norm_f (C), lm_head (V,C).
Second output, tests/fixtures/lmtrain_ref.bin (tests/test_lmtrain.c): the model iclab trains
(include/iclab/icl_lmtrain.h) in two cases, untied with T = 17 (the engine's attention runs as
matrix products from 16 tokens on) and tied (lm_head = wte) with T = 9 (query by query); every
layer rotates all head_dim channels in adjacent pairs. Each case: int32 [V, C, L, Hq, Hkv, hd, F,
B, T, tied, n_params], float32 [theta, eps], int32 tokens (B*T), int32 targets (B*T), float32
params (n_params), loss (1), logits (B*T*V), grads (n_params); parameters in the order above
(lm_head only when untied), which is icl_lmtrain's buffer layout. The two cases follow each other.
Run: /usr/bin/python3 tests/ref/kernels_lm_ref.py [OUT [OUT2]]"""
import struct, sys
import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
THETA, EPS = 10000.0, 1e-5


def rmsnorm(x, w):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + EPS) * w


def rope(x, rope_dim, neox):
    """x (B, T, H, hd): rotates the first rope_dim channels of every head; pair i by pos * theta^(-2i/rope_dim)."""
    T = x.shape[1]
    half = rope_dim // 2
    pos = torch.arange(T, dtype=torch.float64)
    ang = pos[:, None] * THETA ** (-2.0 * torch.arange(half, dtype=torch.float64) / rope_dim)  # (T, half)
    cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
    r, rest = x[..., :rope_dim], x[..., rope_dim:]
    if neox:
        a, b = r[..., :half], r[..., half:]
        r = torch.cat([a * cos - b * sin, a * sin + b * cos], -1)
    else:
        a, b = r[..., 0::2], r[..., 1::2]
        r = torch.stack([a * cos - b * sin, a * sin + b * cos], -1).flatten(-2)
    return torch.cat([r, rest], -1)


def make_case(rng, V, C, L, Hq, Hkv, hd, FF, B, T, rope_dims, neox, tied):
    """Parameters, inputs, and PyTorch's loss, logits and gradients of one model."""
    def param(shape, s, mean=0.0):
        # float32-rounded values: iclab starts from exactly these
        a = (mean + rng.standard_normal(shape) * s).astype(np.float32).astype(np.float64)
        return torch.tensor(a, requires_grad=True)

    P = {'wte': param((V, C), 1.0)}
    for l in range(L):
        P[f'attn_norm{l}'] = param((C,), 0.1, 1.0)
        P[f'wq{l}'] = param((Hq * hd, C), 0.3)
        P[f'wk{l}'] = param((Hkv * hd, C), 0.3)
        P[f'wv{l}'] = param((Hkv * hd, C), 0.3)
        P[f'wo{l}'] = param((C, Hq * hd), 0.3)
        P[f'ffn_norm{l}'] = param((C,), 0.1, 1.0)
        P[f'w_gate{l}'] = param((FF, C), 0.3)
        P[f'w_up{l}'] = param((FF, C), 0.3)
        P[f'w_down{l}'] = param((C, FF), 0.3)
    P['norm_f'] = param((C,), 0.1, 1.0)
    if not tied:
        P['lm_head'] = param((V, C), 0.3)
    order = list(P.keys())

    tokens = rng.integers(0, V, size=(B, T)).astype(np.int32)
    targets = np.full((B, T), -1, dtype=np.int32)
    targets[:, :-1] = tokens[:, 1:]            # next token; none after the last
    targets[0, 2] = targets[1, 5] = -1         # a few more positions without loss
    tok = torch.tensor(tokens, dtype=torch.long)
    tgt = torch.tensor(targets, dtype=torch.long)

    x = P['wte'][tok]
    causal = torch.tril(torch.ones(T, T)).bool()
    for l in range(L):
        h = rmsnorm(x, P[f'attn_norm{l}'])
        q = (h @ P[f'wq{l}'].T).view(B, T, Hq, hd)
        k = (h @ P[f'wk{l}'].T).view(B, T, Hkv, hd)
        v = (h @ P[f'wv{l}'].T).view(B, T, Hkv, hd)
        q, k = rope(q, rope_dims[l], neox[l]), rope(k, rope_dims[l], neox[l])
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        k, v = k.repeat_interleave(Hq // Hkv, 1), v.repeat_interleave(Hq // Hkv, 1)  # head h reads kv head h // group
        att = (q @ k.transpose(-2, -1)) / hd ** 0.5
        att = att.masked_fill(~causal, float('-inf')).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, Hq * hd)
        x = x + y @ P[f'wo{l}'].T
        h = rmsnorm(x, P[f'ffn_norm{l}'])
        x = x + (F.silu(h @ P[f'w_gate{l}'].T) * (h @ P[f'w_up{l}'].T)) @ P[f'w_down{l}'].T
    logits = rmsnorm(x, P['norm_f']) @ (P['wte'] if tied else P['lm_head']).T
    loss = F.cross_entropy(logits.view(-1, V), tgt.view(-1), ignore_index=-1)
    loss.backward()

    def flat(ts):
        return np.concatenate([t.detach().numpy().ravel() for t in ts]).astype('<f4')

    n_params = sum(P[k].numel() for k in order)
    arrays = (flat([P[k] for k in order]), flat([loss]), flat([logits]), flat([P[k].grad for k in order]))
    print('loss', float(loss), 'params', n_params, 'counted', int((targets >= 0).sum()))
    return tokens, targets, arrays, n_params


# Case 1 (kernels_lm_ref.bin): layer 0 adjacent pairs over the whole head, layer 1 NeoX on 4 channels.
V, C, L, Hq, Hkv, hd, FF, B, T = 40, 20, 2, 4, 2, 6, 36, 2, 9
ROPE_DIM = [hd, 4]
tokens, targets, arrays, n_params = make_case(np.random.default_rng(4321), V, C, L, Hq, Hkv, hd, FF, B, T, ROPE_DIM,
                                              [False, True], False)
with open(sys.argv[1] if len(sys.argv) > 1 else 'tests/fixtures/kernels_lm_ref.bin', 'wb') as f:
    f.write(struct.pack('<12i', V, C, L, Hq, Hkv, hd, FF, B, T, ROPE_DIM[0], ROPE_DIM[1], n_params))
    f.write(struct.pack('<2f', THETA, EPS))
    f.write(tokens.astype('<i4').tobytes())
    f.write(targets.astype('<i4').tobytes())
    for arr in arrays:
        f.write(arr.tobytes())

# Cases of lmtrain_ref.bin: icl_lmtrain's model (llama: adjacent pairs, whole head, every layer).
rng = np.random.default_rng(2412)
with open(sys.argv[2] if len(sys.argv) > 2 else 'tests/fixtures/lmtrain_ref.bin', 'wb') as f:
    for (T, tied) in ((17, False), (9, True)):
        V, C, L, Hq, Hkv, hd, FF, B = 96, 16, 2, 4, 2, 4, 40, 2
        tokens, targets, arrays, n_params = make_case(rng, V, C, L, Hq, Hkv, hd, FF, B, T, [hd] * L, [False] * L, tied)
        f.write(struct.pack('<11i', V, C, L, Hq, Hkv, hd, FF, B, T, int(tied), n_params))
        f.write(struct.pack('<2f', THETA, EPS))
        f.write(tokens.astype('<i4').tobytes())
        f.write(targets.astype('<i4').tobytes())
        for arr in arrays:
            f.write(arr.tobytes())
