#!/usr/bin/python3
"""Independent float64 reference for iclab's LLM inference engine: writes tests/fixtures/lm/.

usage: lm_ref.py ICLAB_BINARY VOCAB_DIR [OUT_DIR]   (OUT_DIR defaults to tests/fixtures/lm)

For each case it runs `ICLAB mkmodel` (random weights, fixed seed) into a temporary directory,
reads the GGUF with its own parser, converts the tensors to the Hugging Face layout and runs the
architecture as published in Hugging Face transformers' modeling code (llama, qwen2, gemma2, gpt2,
olmo; written here from those definitions, transformers is not imported) in torch float64.

Conventions of llama.cpp's GGUF files that the conversion undoes:
  * llama and olmo: the converter permutes attn_q / attn_k rows per head so that llama.cpp's
    "normal" RoPE (rotating adjacent pairs 2i, 2i+1) equals HF's rotate_half RoPE; here GGUF row
    2i <- HF row i and row 2i+1 <- HF row i + head_dim/2 is undone, then rotate_half is applied.
    qwen2 and gemma2 are stored unpermuted (llama.cpp runs them with NeoX RoPE = rotate_half).
  * gemma2: norm weights are stored as 1 + w_hf; HF computes x_normed * (1 + w_hf).
  * Llama-3.1 RoPE scaling is computed from its parameters (factor 8, low_freq_factor 1,
    high_freq_factor 4, original_max_position_embeddings 8192) as HF's llama3 rope init does, not
    read from rope_freqs.weight.
  * ggml shapes are reversed numpy shapes: ne = {in, out} is an HF Linear weight (out, in).

Fixtures per case: <case>_tokens.npy int32 (T,); <case>_states.npy float32 (L+1, T, C): the
residual stream entering layer 0 (after embedding scaling / position add), then after each layer
(before the final norm); <case>_logits.npy float32 (V,) for the last position. cases.txt lists one
case per line: the name, then the exact `iclab mkmodel` arguments (the --vocab value is a file name
in the vocabulary directory; -o is left out).

Before writing, self-checks assert that the conventions hold (see self_checks)."""
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

# name, mkmodel arguments, text whose token ids (from `iclab tokenize`) are the input
SPM, BPE, GPT2 = "ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-bpe.gguf", "ggml-vocab-gpt-2.gguf"
CASES = [
    ("llama", ["--arch", "llama", "--vocab", SPM, "--seed", "11"], "The quick brown fox jumps over the lazy dog"),
    ("llama_tied", ["--arch", "llama", "--vocab", SPM, "--tied", "--seed", "12"], "Once upon a time, there was a"),
    ("llama3", ["--arch", "llama", "--vocab", BPE, "--llama3-rope", "--seed", "13"],
     "In-context learning emerges in transformers trained on"),
    ("qwen2", ["--arch", "qwen2", "--vocab", GPT2, "--seed", "14"], "def add(a, b):\n    return a + b"),
    ("gemma2", ["--arch", "gemma2", "--vocab", SPM, "--head-dim", "32", "--sliding-window", "4", "--tied",
                "--seed", "15"], "Sliding windows see only the last four tokens here"),
    ("gpt2", ["--arch", "gpt2", "--vocab", GPT2, "--seed", "16"], "Hello world! This is GPT-2 speaking."),
    ("olmo", ["--arch", "olmo", "--vocab", SPM, "--seed", "17"], "OLMo normalises without any weights"),
]
MAX_T = 12

# ---------------------------------------------------------------------------------- GGUF reader

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def read_gguf(path):
    """(metadata dict, {name: float64 numpy array of shape reversed(ne)}); F32 / F16 tensors only."""
    data = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string():
        nonlocal pos
        n = take("<Q")
        s = data[pos:pos + n]
        pos += n
        return s.decode("utf-8", errors="replace")

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("<IQ")
            return [value(et) for _ in range(n)]
        return take(_SCALAR[t])

    if data[:4] != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    pos = 4
    version, n_tensors, n_kv = take("<IQQ")
    if version not in (2, 3):
        raise ValueError(f"{path}: GGUF version {version}")
    kv = {}
    for _ in range(n_kv):
        key = string()
        kv[key] = value(take("<I"))
    infos = []
    for _ in range(n_tensors):
        name = string()
        nd = take("<I")
        ne = [take("<Q") for _ in range(nd)]
        ttype, off = take("<IQ")
        infos.append((name, ne, ttype, off))
    align = kv.get("general.alignment", 32)
    start = (pos + align - 1) // align * align
    tensors = {}
    for name, ne, ttype, off in infos:
        n = int(np.prod(ne))
        if ttype == 0:
            arr = np.frombuffer(data, dtype="<f4", count=n, offset=start + off)
        elif ttype == 1:
            arr = np.frombuffer(data, dtype="<f2", count=n, offset=start + off)
        else:
            raise ValueError(f"{path}: tensor {name} has ggml type {ttype}; the reference reads F32/F16 only")
        tensors[name] = arr.astype(np.float64).reshape(list(reversed(ne)))
    return kv, tensors

# ------------------------------------------------------------------- GGUF -> Hugging Face layout


def permute_like_converter(w, n_head):
    """llama.cpp's converter's q/k row order from HF's: per head, GGUF row 2i = HF row i and
    GGUF row 2i+1 = HF row i + head_dim/2 (only used by the self-checks)."""
    hd = w.shape[0] // n_head
    return w.reshape(n_head, 2, hd // 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def unpermute(w, n_head):
    """HF's q/k row order from llama.cpp's permuted one (the inverse of permute_like_converter)."""
    hd = w.shape[0] // n_head
    return w.reshape(n_head, hd // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


class Model:
    """Hyperparameters from the metadata and weights in HF's layout (Linear weights (out, in))."""

    def __init__(self, path):
        kv, t = read_gguf(path)
        self.path = path
        self.rope = rope_rotate_half                            # the self-checks swap in llama.cpp's
        a = self.arch = kv["general.architecture"]
        g = lambda k, d=None: kv.get(f"{a}.{k}", d)
        self.C, self.L, self.H = g("embedding_length"), g("block_count"), g("attention.head_count")
        self.Hkv = g("attention.head_count_kv", self.H)
        self.hd = g("attention.key_length", self.C // self.H)
        self.eps = g("attention.layer_norm_rms_epsilon") if a in ("llama", "qwen2", "gemma2") else \
            g("attention.layer_norm_epsilon")
        self.theta = g("rope.freq_base", 10000.0)
        self.llama3 = "rope_freqs.weight" in t
        self.window = g("attention.sliding_window") if a == "gemma2" else None
        self.attn_cap = g("attn_logit_softcapping") if a == "gemma2" else None
        self.final_cap = g("final_logit_softcapping") if a == "gemma2" else None
        T = lambda name: torch.tensor(t[name])
        opt = lambda name: torch.tensor(t[name]) if name in t else None
        # gemma2 files store 1 + w_hf; HF's Gemma2RMSNorm holds w_hf and multiplies by (1 + w_hf)
        norm = (lambda name: T(name) - 1.0) if a == "gemma2" else T
        self.embed = T("token_embd.weight")                      # (V, C)
        self.pos_embed = opt("position_embd.weight")             # gpt2: (n_ctx, C)
        self.lm_head = opt("output.weight")
        if self.lm_head is None:
            self.lm_head = self.embed                            # tied
        self.final_norm = None if a == "olmo" else norm("output_norm.weight")
        self.final_norm_b = opt("output_norm.bias")
        permuted = a in ("llama", "olmo")                        # llama.cpp's "normal" RoPE archs
        self.layers = []
        for i in range(self.L):
            p = lambda s: f"blk.{i}.{s}"
            lw = {}
            if a == "gpt2":
                qkv, bqkv = T(p("attn_qkv.weight")), T(p("attn_qkv.bias"))
                C = self.C
                lw.update(wq=qkv[:C], wk=qkv[C:2 * C], wv=qkv[2 * C:], bq=bqkv[:C], bk=bqkv[C:2 * C], bv=bqkv[2 * C:],
                          wo=T(p("attn_output.weight")), bo=T(p("attn_output.bias")),
                          ln1=T(p("attn_norm.weight")), ln1_b=T(p("attn_norm.bias")),
                          ln2=T(p("ffn_norm.weight")), ln2_b=T(p("ffn_norm.bias")),
                          fc=T(p("ffn_up.weight")), fc_b=T(p("ffn_up.bias")),
                          proj=T(p("ffn_down.weight")), proj_b=T(p("ffn_down.bias")))
            else:
                wq, wk = T(p("attn_q.weight")), T(p("attn_k.weight"))
                if permuted:
                    wq, wk = unpermute(wq, self.H), unpermute(wk, self.Hkv)
                lw.update(wq=wq, wk=wk, wv=T(p("attn_v.weight")), wo=T(p("attn_output.weight")),
                          bq=opt(p("attn_q.bias")), bk=opt(p("attn_k.bias")), bv=opt(p("attn_v.bias")), bo=None,
                          gate=T(p("ffn_gate.weight")), up=T(p("ffn_up.weight")), down=T(p("ffn_down.weight")))
                if a != "olmo":
                    lw.update(ln1=norm(p("attn_norm.weight")), ln2=norm(p("ffn_norm.weight")))
                if a == "gemma2":
                    lw.update(post_attn=norm(p("post_attention_norm.weight")), post_ffw=norm(p("post_ffw_norm.weight")))
            self.layers.append(lw)
        self.inv_freq = rope_inv_freq(self.hd, self.theta, self.llama3)


# ------------------------------------------------------------------------------ the operations


def rope_inv_freq(hd, theta, llama3):
    """HF's default rope init, and with llama3 its Llama-3.1 scaling (_compute_llama3_parameters)."""
    inv = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    if not llama3:
        return inv
    factor, low_ff, high_ff, old_ctx = 8.0, 1.0, 4.0, 8192
    low_wl, high_wl = old_ctx / low_ff, old_ctx / high_ff
    wavelen = 2 * math.pi / inv
    scaled = torch.where(wavelen > low_wl, inv / factor, inv)
    smooth = (old_ctx / wavelen - low_ff) / (high_ff - low_ff)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wl) & ~(wavelen > low_wl)
    return torch.where(medium, smoothed, scaled)


def rope_rotate_half(x, pos, inv):
    """HF's apply_rotary_pos_emb on x (..., T, hd): pairs (i, i + hd/2) rotated by pos * inv[i]."""
    ang = pos[:, None].to(torch.float64) * inv[None, :]
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
    h = x.shape[-1] // 2
    rot = torch.cat([-x[..., h:], x[..., :h]], -1)
    return x * cos + rot * sin


def rope_adjacent_pairs(x, pos, inv):
    """llama.cpp's "normal" RoPE: pairs (2i, 2i+1) rotated by pos * inv[i] (self-checks only)."""
    ang = pos[:, None].to(torch.float64) * inv[None, :]
    cos, sin = ang.cos(), ang.sin()
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos
    return out


def rms_norm(x, w, eps, gemma=False):
    y = x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)
    return y * (1.0 + w) if gemma else y * w


def layer_norm(x, w, b, eps):
    """LayerNorm with biased variance; w = b = None is OLMo's non-parametric one."""
    mu = x.mean(-1, keepdim=True)
    y = (x - mu) / torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def linear(x, w, b=None):
    y = x @ w.T
    return y + b if b is not None else y


def attention(m, lw, x, pos, layer):
    """Causal multi-head attention with GQA (HF's repeat_kv: query head h reads kv head h // rep)."""
    T = x.shape[0]
    q = linear(x, lw["wq"], lw["bq"]).view(T, m.H, m.hd).transpose(0, 1)
    k = linear(x, lw["wk"], lw["bk"]).view(T, m.Hkv, m.hd).transpose(0, 1)
    v = linear(x, lw["wv"], lw["bv"]).view(T, m.Hkv, m.hd).transpose(0, 1)
    if m.arch != "gpt2":
        q, k = m.rope(q, pos, m.inv_freq), m.rope(k, pos, m.inv_freq)
    rep = m.H // m.Hkv
    k, v = k.repeat_interleave(rep, dim=0), v.repeat_interleave(rep, dim=0)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(m.hd)  # gemma2: query_pre_attn_scalar = head_dim
    if m.attn_cap:
        s = torch.tanh(s / m.attn_cap) * m.attn_cap
    i, j = pos[:, None], pos[None, :]
    allowed = j <= i
    if m.window and layer % 2 == 0:                 # gemma2: even layers slide, odd layers are global
        allowed = allowed & (i - j < m.window)
    s = s.masked_fill(~allowed, float("-inf"))
    o = (torch.softmax(s, -1) @ v).transpose(0, 1).reshape(T, m.H * m.hd)
    return linear(o, lw["wo"], lw["bo"])


def forward(m, tokens, pos=None):
    """(states (L+1, T, C), logits (T, V)) for a token sequence at positions pos (default 0..T-1)."""
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    T = tokens.shape[0]
    pos = torch.arange(T) if pos is None else torch.as_tensor(pos, dtype=torch.long)
    h = m.embed[tokens]
    if m.arch == "gemma2":
        h = h * math.sqrt(m.C)
    if m.arch == "gpt2":
        h = h + m.pos_embed[pos]
    states = [h]
    for li, lw in enumerate(m.layers):
        if m.arch == "gpt2":
            h = h + attention(m, lw, layer_norm(h, lw["ln1"], lw["ln1_b"], m.eps), pos, li)
            x = layer_norm(h, lw["ln2"], lw["ln2_b"], m.eps)
            h = h + linear(gelu_tanh(linear(x, lw["fc"], lw["fc_b"])), lw["proj"], lw["proj_b"])
        elif m.arch == "gemma2":
            a = attention(m, lw, rms_norm(h, lw["ln1"], m.eps, gemma=True), pos, li)
            h = h + rms_norm(a, lw["post_attn"], m.eps, gemma=True)
            x = rms_norm(h, lw["ln2"], m.eps, gemma=True)
            f = linear(gelu_tanh(linear(x, lw["gate"])) * linear(x, lw["up"]), lw["down"])
            h = h + rms_norm(f, lw["post_ffw"], m.eps, gemma=True)
        else:
            norm = (lambda z, w: layer_norm(z, None, None, m.eps)) if m.arch == "olmo" else \
                (lambda z, w: rms_norm(z, w, m.eps))
            h = h + attention(m, lw, norm(h, lw.get("ln1")), pos, li)
            x = norm(h, lw.get("ln2"))
            h = h + linear(F.silu(linear(x, lw["gate"])) * linear(x, lw["up"]), lw["down"])
        states.append(h)
    if m.arch == "gpt2":
        x = layer_norm(h, m.final_norm, m.final_norm_b, m.eps)
    elif m.arch == "olmo":
        x = layer_norm(h, None, None, m.eps)
    else:
        x = rms_norm(h, m.final_norm, m.eps, gemma=m.arch == "gemma2")
    logits = x @ m.lm_head.T
    if m.final_cap:
        logits = torch.tanh(logits / m.final_cap) * m.final_cap
    return torch.stack(states), logits

# ------------------------------------------------------------------------------- self-checks


def close(a, b, tol, what):
    err = (a - b).abs().max().item()
    assert err <= tol, f"self-check failed: {what}: max |diff| {err:.3g} > {tol:g}"


def naive_attention(m, lw, x, pos):
    """Attention one query head and one query position at a time, for comparison."""
    T, rep = x.shape[0], m.H // m.Hkv
    q, k, v = linear(x, lw["wq"], lw["bq"]), linear(x, lw["wk"], lw["bk"]), linear(x, lw["wv"], lw["bv"])
    out = torch.zeros(T, m.H * m.hd)
    for h in range(m.H):
        kh = h // rep
        qh = rope_rotate_half(q[:, h * m.hd:(h + 1) * m.hd], pos, m.inv_freq)
        kk = rope_rotate_half(k[:, kh * m.hd:(kh + 1) * m.hd], pos, m.inv_freq)
        for t in range(T):
            s = torch.tensor([qh[t] @ kk[j] / math.sqrt(m.hd) for j in range(t + 1)])
            out[t, h * m.hd:(h + 1) * m.hd] = torch.softmax(s, 0) @ v[:t + 1, kh * m.hd:(kh + 1) * m.hd]
    return linear(out, lw["wo"], lw["bo"])


def self_checks(models, tokens):
    """Asserts the conventions the fixtures rely on; models / tokens are keyed by case name."""
    g = torch.Generator().manual_seed(5)
    # 1. unpermute inverts the converter's permutation; un-permuted rows + rotate_half RoPE equal
    #    llama.cpp's adjacent-pair RoPE on the permuted rows (q and k alike, so every score agrees)
    H, hd, C, T = 4, 16, 24, 9
    w = torch.randn(H * hd, C, generator=g)
    x = torch.randn(T, C, generator=g)
    assert torch.equal(unpermute(permute_like_converter(w, H), H), w)
    pos = torch.arange(T) + 3
    for llama3 in (False, True):
        inv = rope_inv_freq(hd, 500000.0 if llama3 else 10000.0, llama3)
        q_hf = rope_rotate_half((x @ w.T).view(T, H, hd).transpose(0, 1), pos, inv)
        q_cpp = rope_adjacent_pairs((x @ permute_like_converter(w, H).T).view(T, H, hd).transpose(0, 1), pos, inv)
        close(q_cpp[..., 0::2], q_hf[..., :hd // 2], 1e-12, "pair rope, even rows")
        close(q_cpp[..., 1::2], q_hf[..., hd // 2:], 1e-12, "pair rope, odd rows")
        close(q_cpp @ q_cpp.transpose(-1, -2), q_hf @ q_hf.transpose(-1, -2), 1e-10, "pair rope scores")
    # 2. the whole llama model run the llama.cpp way (raw GGUF rows, adjacent-pair RoPE) agrees
    m = models["llama"]
    ref_states, ref_logits = forward(m, tokens["llama"])
    raw = Model(m.path)
    _, t = read_gguf(m.path)
    for i, lw in enumerate(raw.layers):
        lw["wq"], lw["wk"] = torch.tensor(t[f"blk.{i}.attn_q.weight"]), torch.tensor(t[f"blk.{i}.attn_k.weight"])
    raw.rope = rope_adjacent_pairs
    st, lg = forward(raw, tokens["llama"])
    close(st, ref_states, 1e-10, "llama the llama.cpp way: states")
    close(lg, ref_logits, 1e-10, "llama the llama.cpp way: logits")
    # 3. Llama-3.1 scaling from its parameters = the default frequencies / the file's rope_freqs
    m = models["llama3"]
    _, t = read_gguf(m.path)
    factors = torch.tensor(t["rope_freqs.weight"])
    close(m.inv_freq, rope_inv_freq(m.hd, m.theta, False) / factors, 1e-6 * m.inv_freq.max().item(), "llama3 rope_freqs")
    assert factors.min() == 1 and factors.max() == 8 and ((factors > 1) & (factors < 8)).any()
    # 4. RoPE models depend on relative positions only: shifting every position changes nothing
    for name in ("llama", "llama3", "qwen2", "gemma2", "olmo"):
        s0, l0 = forward(models[name], tokens[name])
        s1, l1 = forward(models[name], tokens[name], torch.arange(len(tokens[name])) + 37)
        close(s1, s0, 1e-9, f"{name}: position shift, states")
        close(l1, l0, 1e-9, f"{name}: position shift, logits")
    # 5. causality: a prefix's states do not depend on later tokens
    for name, m in models.items():
        s, _ = forward(m, tokens[name])
        sp, _ = forward(m, tokens[name][:-3])
        close(sp, s[:, :-3], 1e-12, f"{name}: causal prefix")
    # 6. gemma2's window of 4 on layer 0: the token at 0 reaches positions 0..3 only; layer 1 is global
    m, tok = models["gemma2"], np.array(tokens["gemma2"])
    assert m.window == 4 and len(tok) > 5
    tok2 = tok.copy()
    tok2[0] = tok[0] + 1
    s, _ = forward(m, tok)
    s2, _ = forward(m, tok2)
    close(s2[1, 4:], s[1, 4:], 0.0, "gemma2 window: layer 0 beyond the window")
    assert (s2[1, 3] - s[1, 3]).abs().max() > 1e-6, "gemma2 window: position 3 should see token 0"
    assert (s2[2, -1] - s[2, -1]).abs().max() > 1e-6, "gemma2: the global layer 1 should see token 0"
    # 7. the vectorised attention (GQA via repeat_interleave) against a per-head loop; the norms and
    #    GELU against torch's own
    for name in ("llama3", "qwen2"):
        m = models[name]
        x = forward(m, tokens[name])[0][1]
        x = rms_norm(x, m.layers[1]["ln1"], m.eps)
        pos = torch.arange(x.shape[0])
        close(attention(m, m.layers[1], x, pos, 1), naive_attention(m, m.layers[1], x, pos), 1e-12, f"{name}: attention")
    x = torch.randn(5, 64, generator=g) * 3
    wln, bln = torch.randn(64, generator=g), torch.randn(64, generator=g)
    close(layer_norm(x, wln, bln, 1e-5), F.layer_norm(x, (64,), wln, bln, 1e-5), 1e-12, "layer_norm")
    close(layer_norm(x, None, None, 1e-5), F.layer_norm(x, (64,), None, None, 1e-5), 1e-12, "layer_norm, no affine")
    close(gelu_tanh(x), F.gelu(x, approximate="tanh"), 1e-12, "gelu tanh")
    print("self-checks passed")

# ------------------------------------------------------------------------------------- main


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    iclab, vocab_dir = sys.argv[1], sys.argv[2]
    out_dir = sys.argv[3] if len(sys.argv) == 4 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                     "..", "fixtures", "lm")
    os.makedirs(out_dir, exist_ok=True)
    models, tokens = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, args, text in CASES:
            vocab = os.path.join(vocab_dir, args[args.index("--vocab") + 1])
            run_args = [a if i != args.index("--vocab") + 1 else vocab for i, a in enumerate(args)]
            path = os.path.join(tmp, name + ".gguf")
            subprocess.run([iclab, "mkmodel", *run_args, "-o", path], check=True)
            # real token ids of the text (with BOS for the Llama vocabularies, as they are used)
            bos = ["--bos"] if "llama" in vocab else []
            ids = subprocess.run([iclab, "tokenize", vocab, text, *bos], check=True, capture_output=True,
                                 text=True).stdout.split()
            ids = [int(i) for i in ids][:MAX_T]
            assert 8 <= len(ids) <= MAX_T, f"{name}: {len(ids)} tokens"
            models[name], tokens[name] = Model(path), ids
        self_checks(models, tokens)
        for name, args, _ in CASES:
            m, tok = models[name], tokens[name]
            states, logits = forward(m, tok)
            np.save(os.path.join(out_dir, f"{name}_tokens.npy"), np.array(tok, dtype=np.int32))
            np.save(os.path.join(out_dir, f"{name}_states.npy"), states.numpy().astype(np.float32))
            np.save(os.path.join(out_dir, f"{name}_logits.npy"), logits[-1].numpy().astype(np.float32))
            print(f"{name:11s} T={len(tok):2d} L={m.L} C={m.C} V={m.lm_head.shape[0]} "
                  f"|state| {states[-1].norm(dim=-1).mean():.3f} logits sd {logits[-1].std():.3f}")
    with open(os.path.join(out_dir, "cases.txt"), "w") as f:
        f.write("# Written by tests/ref/lm_ref.py. One case per line: the name, then the `iclab mkmodel`\n"
                "# arguments that rebuild its model (the --vocab value is a file name in the vocabulary\n"
                "# directory, $ICLAB_VOCAB_DIR; add -o OUT.gguf). Fixtures: <name>_tokens.npy (int32 (T,)),\n"
                "# <name>_states.npy (float32 (L+1, T, C): residual stream entering layer 0, then after each\n"
                "# layer, before the final norm), <name>_logits.npy (float32 (V,): the last position).\n")
        for name, args, _ in CASES:
            f.write(" ".join([name, *args]) + "\n")


if __name__ == "__main__":
    main()
