/* Random-weight language models written as GGUF files laid out exactly as llama.cpp's converter
 * writes the real ones (architectures llama, qwen2, gemma2, gpt2, olmo). No pretrained weights can
 * be downloaded here, so the inference engine is tested on these: same metadata keys, tensor
 * names, ggml shapes and weight conventions as a converted checkpoint, with weights drawn from
 * icl_rng and a real tokenizer copied from a vocabulary GGUF.
 *
 * Weights: 2-D matrices normal(0, 1/sqrt(fan_in)) with fan_in = ne[0] (the input features; for
 * token_embd and position_embd the embedding width); norm weights 1 + 0.1*normal (for gemma2 this
 * is the stored value 1 + w_hf, llama.cpp's converter folding Gemma's "1 +" into the file); biases
 * 0.1*normal. Each tensor draws from its own stream (icl_rng_seed_stream of the seed and a hash of
 * the tensor's name), so a tensor's values do not depend on which other tensors the file holds
 * (e.g. token_embd is the same tied or untied).
 *
 * Conventions of the files (llama.cpp's, which the engine must follow): llama and olmo attn_q /
 * attn_k rows are in llama.cpp's permuted order (its "normal" RoPE rotating adjacent pairs);
 * qwen2 and gemma2 use NeoX RoPE (rotate_half) on unpermuted rows. Since the weights are random
 * the permutation is a matter of interpretation only; tests/ref/lm_ref.py un-permutes. */
#ifndef ICL_MKMODEL_H
#define ICL_MKMODEL_H
#include <stdint.h>
#include "iclab/icl_err.h"

typedef struct icl_mkmodel_opts {
    const char *arch;       /* "llama", "qwen2", "gemma2", "gpt2", "olmo" */
    const char *vocab_path; /* a GGUF whose tokenizer.* keys are copied (e.g. ggml-vocab-llama-spm.gguf);
                               n_vocab = its token count */
    int n_embd, n_layer, n_head, n_head_kv, n_ff;
    int head_dim;           /* 0 = n_embd / n_head; only llama and gemma2 may differ from that */
    int n_ctx;              /* context length (gpt2: rows of position_embd) */
    int weight_type;        /* ggml type id for 2-D weight matrices (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K,
                               Q6_K, as far as icl_quant_quantize_row supports it); norms, biases, rope_freqs and
                               gpt2's position_embd stay F32 (as llama.cpp's converter keeps them) */
    int tied_output;        /* 1: no output.weight (the LM head reuses token_embd). gemma2 requires 1 */
    int llama3_rope;        /* llama only: write rope_freqs.weight with Llama-3.1 frequency factors
                               (factor 8, low 1, high 4, original context 8192) */
    int sliding_window;     /* gemma2 only (0 = 4096) */
    float rope_theta;       /* 0 = arch default (10000; 500000 when llama3_rope; 1000000 for qwen2) */
    uint64_t seed;
} icl_mkmodel_opts;

/* Small shapes for `arch`: 64 embd, 2 layers, 4 heads, 2 kv heads (gpt2 and olmo: 4, they have no
 * GQA in llama.cpp), ff 128, ctx 256, head_dim 0, F32 weights, seed 1, untied (gemma2: tied, as
 * llama.cpp has no output.weight for it). vocab_path is left NULL. arch is stored, not copied. */
void icl_mkmodel_defaults(icl_mkmodel_opts *o, const char *arch);

/* Checks the options (without opening the vocabulary): a one-line error naming the bad field, e.g.
 * a shape that is not positive, n_head not a multiple of n_head_kv, an odd head_dim, a weight type
 * icl_quant_quantize_row cannot produce, or a matrix whose row length (ne[0]) is not a multiple of
 * that type's block size. */
int icl_mkmodel_check(const icl_mkmodel_opts *o, icl_err *err);

/* Builds the model and writes it to out_path atomically (via the GGUF writer). The same options
 * give a byte-identical file. Fails, leaving out_path as it was, on bad options, a vocabulary file
 * without tokenizer.ggml.tokens, or an I/O error. */
int icl_mkmodel_write(const icl_mkmodel_opts *o, const char *out_path, icl_err *err);

#endif
