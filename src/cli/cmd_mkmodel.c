/* `iclab mkmodel`: writes a random-weight GGUF language model in llama.cpp's layout (llama, qwen2,
 * gemma2, gpt2, olmo) with the tokenizer of a vocabulary GGUF, for testing and benchmarking the
 * inference engine without downloadable weights. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "cli.h"
#include "iclab/icl_mkmodel.h"
#include "iclab/icl_quant.h"

static void mk_usage(void) {
    printf("usage: iclab mkmodel --arch A --vocab VOCAB.gguf -o OUT.gguf [options]\n\n"
           "Writes a language model with random weights, laid out as llama.cpp's converter writes real ones.\n"
           "  --arch A           llama, qwen2, gemma2, gpt2 or olmo\n"
           "  --vocab V.gguf     copy the tokenizer.* keys of V (the vocabulary size follows it)\n"
           "  -o, --out F        output file (written atomically)\n"
           "  --type T           2-D weight type: f32 (default), f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k\n"
           "  --size 150m        llama only: 768 embd, 12 layers, 12 heads, 12 kv heads, ff 2048, ctx 2048\n"
           "  --embd N --layers N --heads N --kv-heads N --ff N --head-dim N --ctx N\n"
           "                     shapes (defaults 64, 2, 4, 2 [gpt2/olmo: 4], 128, n_embd/heads, 256)\n"
           "  --tied             no output.weight: the LM head reuses token_embd (gemma2 always)\n"
           "  --llama3-rope      llama: Llama-3.1 RoPE scaling (rope_freqs.weight, theta 500000)\n"
           "  --sliding-window N gemma2: sliding-window length (default 4096)\n"
           "  --rope-theta X     RoPE base (default 10000; 500000 with --llama3-rope; 1000000 for qwen2)\n"
           "  --seed N           random seed (default 1); the same options give the same bytes\n");
}

static int parse_type(const char *v, int *type, icl_err *err) {
    static const struct {
        const char *name;
        int type;
    } types[] = {{"f32", ICL_GGML_F32},   {"f16", ICL_GGML_F16},   {"bf16", ICL_GGML_BF16}, {"q8_0", ICL_GGML_Q8_0},
                 {"q4_0", ICL_GGML_Q4_0}, {"q4_k", ICL_GGML_Q4_K}, {"q5_k", ICL_GGML_Q5_K}, {"q6_k", ICL_GGML_Q6_K}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcasecmp(v, types[i].name)) {
            *type = types[i].type;
            return 0;
        }
    return icl_errf(err, "--type: '%s' is not one of f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k", v);
}

int cmd_mkmodel(int argc, char **argv) {
    icl_err err;
    const char *arch = NULL, *vocab = NULL, *out = NULL, *size = NULL;
    /* Shape flags are collected first (-1 = not given) and applied over the arch defaults and the
     * size preset, so their order on the command line does not matter. */
    int embd = -1, layers = -1, heads = -1, kv_heads = -1, ff = -1, head_dim = -1, ctx = -1, window = -1;
    int type = ICL_GGML_F32, tied = 0, llama3 = 0;
    double theta = 0;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            mk_usage();
            return 0;
        }
        if (!strcmp(a, "--tied")) {
            tied = 1;
            continue;
        }
        if (!strcmp(a, "--llama3-rope")) {
            llama3 = 1;
            continue;
        }
        if (!strcmp(a, "-o")) {
            if (i + 1 >= argc) {
                icl_errf(&err, "-o needs a value");
                return cli_fail("mkmodel", &err);
            }
            out = argv[++i];
            continue;
        }
        if (strncmp(a, "--", 2)) {
            icl_errf(&err, "unexpected argument '%s' (see iclab mkmodel --help)", a);
            return cli_fail("mkmodel", &err);
        }
        char name[32];
        const char *v = cli_flag_value(argc, argv, &i, name, sizeof name, &err);
        if (!v) return cli_fail("mkmodel", &err);
        int rc = 0;
        if (!strcmp(name, "arch")) arch = v;
        else if (!strcmp(name, "vocab")) vocab = v;
        else if (!strcmp(name, "out")) out = v;
        else if (!strcmp(name, "size")) size = v;
        else if (!strcmp(name, "type")) rc = parse_type(v, &type, &err);
        else if (!strcmp(name, "embd")) rc = cli_parse_int(name, v, 1, 1 << 20, &embd, &err);
        else if (!strcmp(name, "layers")) rc = cli_parse_int(name, v, 1, 1024, &layers, &err);
        else if (!strcmp(name, "heads")) rc = cli_parse_int(name, v, 1, 1 << 20, &heads, &err);
        else if (!strcmp(name, "kv-heads")) rc = cli_parse_int(name, v, 1, 1 << 20, &kv_heads, &err);
        else if (!strcmp(name, "ff")) rc = cli_parse_int(name, v, 1, 1 << 20, &ff, &err);
        else if (!strcmp(name, "head-dim")) rc = cli_parse_int(name, v, 1, 1 << 20, &head_dim, &err);
        else if (!strcmp(name, "ctx")) rc = cli_parse_int(name, v, 1, 1 << 20, &ctx, &err);
        else if (!strcmp(name, "sliding-window")) rc = cli_parse_int(name, v, 1, 1 << 20, &window, &err);
        else if (!strcmp(name, "rope-theta")) {
            char *end;
            theta = strtod(v, &end);
            if (!*v || *end || !(theta > 0) || theta > 1e30) rc = icl_errf(&err, "--rope-theta: '%s' is not a positive number", v);
        } else if (!strcmp(name, "seed")) {
            char *end;
            errno = 0;
            seed = strtoull(v, &end, 10);
            if (!*v || *end || *v == '-' || errno) rc = icl_errf(&err, "--seed: '%s' is not a non-negative integer", v);
        } else rc = icl_errf(&err, "unknown option --%s (see iclab mkmodel --help)", name);
        if (rc) return cli_fail("mkmodel", &err);
    }
    if (!arch || !vocab || !out) {
        icl_errf(&err, "--arch, --vocab and -o are required (see iclab mkmodel --help)");
        return cli_fail("mkmodel", &err);
    }
    icl_mkmodel_opts o;
    icl_mkmodel_defaults(&o, arch);
    if (size) {
        if (strcmp(size, "150m")) {
            icl_errf(&err, "--size: unknown preset '%s' (150m)", size);
            return cli_fail("mkmodel", &err);
        }
        if (strcmp(arch, "llama")) {
            icl_errf(&err, "--size 150m is a llama preset");
            return cli_fail("mkmodel", &err);
        }
        o.n_embd = 768, o.n_layer = 12, o.n_head = 12, o.n_head_kv = 12, o.n_ff = 2048, o.n_ctx = 2048;
    }
    if (embd > 0) o.n_embd = embd;
    if (layers > 0) o.n_layer = layers;
    if (heads > 0) o.n_head = heads;
    if (kv_heads > 0) o.n_head_kv = kv_heads;
    /* gpt2 and olmo have no GQA: their kv head count follows --heads unless given. */
    else if (heads > 0 && (!strcmp(arch, "gpt2") || !strcmp(arch, "olmo"))) o.n_head_kv = heads;
    if (ff > 0) o.n_ff = ff;
    if (head_dim > 0) o.head_dim = head_dim;
    if (ctx > 0) o.n_ctx = ctx;
    if (window > 0) o.sliding_window = window;
    o.vocab_path = vocab;
    o.weight_type = type;
    o.tied_output = o.tied_output || tied;
    o.llama3_rope = llama3;
    o.rope_theta = (float)theta;
    o.seed = seed;
    if (icl_mkmodel_write(&o, out, &err)) return cli_fail("mkmodel", &err);
    return 0;
}
