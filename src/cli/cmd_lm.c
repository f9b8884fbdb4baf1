/* Commands on pretrained GGUF language models:
 *   iclab run MODEL.gguf -p TEXT       generate a continuation (greedy or sampled)
 *   iclab capture MODEL.gguf --prompts FILE   residual stream of chosen layers at a position -> .npy
 *   iclab lmbench MODEL.gguf           prefill/generation throughput (for bench/) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <omp.h>
#include "cli.h"
#include "iclab/icl_lm.h"
#include "iclab/icl_lmeval.h"
#include "iclab/icl_lora.h"
#include "iclab/icl_npy.h"
#include "iclab/icl_progress.h"
#include "iclab/icl_prompts.h"
#include "iclab/icl_tokenizer.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* --threads N: OpenMP threads for everything after (default: OMP_NUM_THREADS, else all cores). */
static int set_threads(const char *flag, const char *v, icl_err *err) {
    int n;
    if (cli_parse_int(flag, v, 1, 1024, &n, err)) return -1;
    omp_set_num_threads(n);
    return 0;
}

typedef icl_lm_session lm_session;

static int encode(const lm_session *s, const char *text, int bos, int32_t **ids, size_t *n, icl_err *err) {
    if (icl_tokenizer_encode(s->tk, text, strlen(text), bos, 1, ids, n, err)) return -1;
    if (*n == 0) return icl_errf(err, "the prompt has no tokens");
    if (*n > (size_t)icl_lm_ctx_n_ctx(s->ctx))
        return icl_errf(err, "the prompt has %zu tokens, more than the context of %d (--ctx)", *n, icl_lm_ctx_n_ctx(s->ctx));
    return 0;
}

/* --add/--replace "L:VEC.npy" at --hook-at of an n-token prompt -> one hook on RESID_POST. */
static int run_hook(lm_session *s, const char *spec, const char *at, icl_hook_action action, int n, icl_npy *vec,
                    icl_hook *hook, int *pos, icl_err *err) {
    const icl_lm_hparams *hp = icl_lm_hp(s->lm);
    char *end;
    long layer = strtol(spec, &end, 10);
    if (end == spec || *end != ':' || !end[1]) return icl_errf(err, "'%s' is not LAYER:VEC.npy", spec);
    if (layer < 0 || layer >= hp->n_layer) return icl_errf(err, "layer %ld out of range 0..%d", layer, hp->n_layer - 1);
    if (icl_npy_read_as(end + 1, ICL_NPY_F32, vec, err)) return -1;
    if (vec->n != hp->n_embd)
        return icl_errf(err, "%s holds %lld values; the model's residual stream has %d", end + 1, (long long)vec->n,
                        hp->n_embd);
    int p = n - 1;
    if (strcmp(at, "last") && cli_parse_int("hook-at", at, -n, n - 1, &p, err)) return -1;
    *pos = p < 0 ? n + p : p;
    *hook = (icl_hook){.site = ICL_SITE_RESID_POST, .layer = (int)layer, .positions = pos, .n_positions = 1,
                       .action = action, .vec = vec->data};
    return icl_lm_set_hooks(s->ctx, hook, 1, err);
}

int cmd_run(int argc, char **argv) {
    icl_err err;
    const char *model = NULL, *prompt = NULL;
    int n_predict = 64, n_ctx = 0, top_k = 40, bos = -1, seed = 1;
    double temp = 0, top_p = 0.95;
    const char *hook_spec = NULL, *hook_at = "last";
    icl_hook_action hook_action = ICL_HOOK_ADD;
    const char *lora_path = NULL;
    icl_lora *lora = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char flag[32];
        if (!strcmp(a, "--help")) {
            printf("usage: iclab run MODEL.gguf -p TEXT [-n 64] [--temp 0] [--top-k 40] [--top-p 0.95] [--seed 1]\n"
                   "                 [--ctx N] [--threads N] [--no-bos] [--add L:VEC.npy | --replace L:VEC.npy] [--hook-at last|N]\n"
                   "                 [--lora ADAPTER.gguf]\n\n"
                   "Prints the model's continuation of TEXT. --temp 0 (the default) is greedy; above 0 samples\n"
                   "from the top-k / top-p tokens with the seed. Stops at the end-of-sequence token or after -n tokens.\n"
                   "--add / --replace: add VEC to (or put VEC in place of) the residual stream after layer L at\n"
                   "the prompt's last token (--hook-at N: token N, negative from the end); VEC.npy holds n_embd\n"
                   "float32 values (e.g. a mean of `iclab capture` states). --lora applies a LoRA adapter (from\n"
                   "`iclab finetune`, or llama.cpp's format). Speeds go to stderr.\n");
            return 0;
        }
        if (!strcmp(a, "--no-bos")) {
            bos = 0;
            continue;
        }
        if (!strcmp(a, "-p") || !strcmp(a, "-n")) {
            if (i + 1 >= argc) {
                icl_errf(&err, "%s needs a value", a);
                return cli_fail("run", &err);
            }
            if (a[1] == 'p') prompt = argv[++i];
            else if (cli_parse_int("n", argv[++i], 0, 1 << 20, &n_predict, &err)) return cli_fail("run", &err);
            continue;
        }
        if (!strncmp(a, "--", 2)) {
            const char *v = cli_flag_value(argc, argv, &i, flag, sizeof flag, &err);
            if (!v) return cli_fail("run", &err);
            char *end = NULL;
            int bad = 0;
            if (!strcmp(flag, "prompt")) prompt = v;
            else if (!strcmp(flag, "n-predict")) bad = cli_parse_int(flag, v, 0, 1 << 20, &n_predict, &err);
            else if (!strcmp(flag, "ctx")) bad = cli_parse_int(flag, v, 1, 1 << 20, &n_ctx, &err);
            else if (!strcmp(flag, "threads")) bad = set_threads(flag, v, &err);
            else if (!strcmp(flag, "top-k")) bad = cli_parse_int(flag, v, 0, 1 << 30, &top_k, &err);
            else if (!strcmp(flag, "seed")) bad = cli_parse_int(flag, v, 0, 2147483647, &seed, &err);
            else if (!strcmp(flag, "add") || !strcmp(flag, "replace")) {
                hook_spec = v;
                hook_action = flag[0] == 'a' ? ICL_HOOK_ADD : ICL_HOOK_REPLACE;
            } else if (!strcmp(flag, "hook-at")) hook_at = v;
            else if (!strcmp(flag, "lora")) lora_path = v;
            else if (!strcmp(flag, "temp")) {
                temp = strtod(v, &end);
                if (!*v || *end || !(temp >= 0 && temp < 1e6)) bad = icl_errf(&err, "--temp: '%s' is not a number >= 0", v);
            } else if (!strcmp(flag, "top-p")) {
                top_p = strtod(v, &end);
                if (!*v || *end || !(top_p > 0 && top_p <= 1)) bad = icl_errf(&err, "--top-p: '%s' is not in (0, 1]", v);
            } else bad = icl_errf(&err, "unknown option --%s (see iclab run --help)", flag);
            if (bad) return cli_fail("run", &err);
            continue;
        }
        if (model) {
            icl_errf(&err, "unexpected argument '%s'", a);
            return cli_fail("run", &err);
        }
        model = a;
    }
    if (!model || !prompt) {
        icl_errf(&err, "usage: iclab run MODEL.gguf -p TEXT (see --help)");
        return cli_fail("run", &err);
    }
    lm_session s;
    int32_t *ids = NULL;
    size_t n = 0;
    int r = icl_lm_session_open(&s, model, n_ctx, 1, &err);
    if (!r && lora_path) r = icl_lora_load(&lora, lora_path, s.lm, &err) || icl_lm_ctx_set_lora(s.ctx, lora, &err);
    if (!r) r = encode(&s, prompt, bos, &ids, &n, &err);
    icl_npy vec = {0};
    icl_hook hook;
    int hook_pos = 0;
    if (!r && hook_spec) r = run_hook(&s, hook_spec, hook_at, hook_action, (int)n, &vec, &hook, &hook_pos, &err);
    int n_vocab = r ? 0 : icl_lm_hp(s.lm)->n_vocab;
    icl_rng rng;
    icl_rng_seed(&rng, (uint64_t)seed);
    double t0 = now_s(), t1 = t0;
    int produced = 0;
    if (!r) {
        icl_lm_eval_opts o = {ICL_LM_LOGITS_LAST, -1, 0};
        r = icl_lm_eval(s.ctx, ids, (int)n, &o, &err);
        t1 = now_s();
        if (!r && hook_spec) r = icl_lm_set_hooks(s.ctx, NULL, 0, &err); /* the intervention is on the prompt */
        int32_t eos = icl_tokenizer_eos(s.tk);
        while (!r && produced < n_predict && icl_lm_ctx_n_past(s.ctx) < icl_lm_ctx_n_ctx(s.ctx)) {
            int32_t tok = icl_lm_sample(icl_lm_logits(s.ctx), n_vocab, (float)temp, top_k, (float)top_p, &rng);
            if (tok == eos) break;
            char *text = NULL;
            size_t len = 0;
            int flags = ICL_TOK_DECODE_KEEP_PREFIX_SPACE;
            r = icl_tokenizer_decode_ex(s.tk, &tok, 1, flags, &text, &len, &err);
            if (!r) {
                fwrite(text, 1, len, stdout);
                fflush(stdout);
            }
            free(text);
            produced++;
            if (!r) r = icl_lm_eval(s.ctx, &tok, 1, &o, &err);
        }
        putchar('\n');
        fflush(stdout);
    }
    double t2 = now_s();
    if (!r)
        fprintf(stderr, "iclab run: prompt %zu tokens in %.3f s (%.1f tok/s), generated %d in %.3f s (%.1f tok/s)\n", n,
                t1 - t0, n / (t1 - t0 + 1e-12), produced, t2 - t1, produced / (t2 - t1 + 1e-12));
    free(ids);
    icl_npy_free(&vec);
    icl_lm_session_close(&s);
    icl_lora_free(lora);
    return r ? cli_fail("run", &err) : 0;
}

/* "all", "3", "0,2,5", "2-7" (or a mix) -> sorted unique layer list in [0, n_layer). */
static int parse_layers(const char *v, int n_layer, int *layers, int *n, icl_err *err) {
    char *mark = calloc((size_t)n_layer, 1);
    if (!mark) return icl_errf(err, "out of memory");
    int r = 0;
    if (!strcmp(v, "all")) memset(mark, 1, (size_t)n_layer);
    else
        for (const char *p = v; *p && !r;) {
            char *end;
            long a = strtol(p, &end, 10), b = a;
            if (end == p) r = -1;
            else if (*end == '-') {
                const char *q = end + 1;
                b = strtol(q, &end, 10);
                if (end == q) r = -1;
            }
            if (!r && (*end && *end != ',')) r = -1;
            if (!r && (a < 0 || b >= n_layer || a > b)) r = -2;
            for (long l = a; !r && l <= b; l++) mark[l] = 1;
            p = *end ? end + 1 : end;
        }
    *n = 0;
    for (int l = 0; !r && l < n_layer; l++)
        if (mark[l]) layers[(*n)++] = l;
    free(mark);
    if (r == -2) return icl_errf(err, "--layers '%s': layers must lie in 0..%d", v, n_layer - 1);
    if (r || *n == 0) return icl_errf(err, "--layers '%s' is not 'all' or a list like 0,3,5-7", v);
    return 0;
}

static int parse_site(const char *v, icl_site *site, icl_err *err) {
    static const char *names[] = {"resid_pre", "attn_out", "mlp_out", "resid_post"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(v, names[i])) {
            *site = (icl_site)i;
            return 0;
        }
    return icl_errf(err, "--site '%s' is not resid_pre, attn_out, mlp_out or resid_post", v);
}

/* Sibling path of an .npy output: "dir/x.npy" + "_labels.npy" -> "dir/x_labels.npy". */
static char *sibling(const char *out, const char *suffix) {
    size_t n = strlen(out);
    if (n > 4 && !strcmp(out + n - 4, ".npy")) n -= 4;
    char *s = malloc(n + strlen(suffix) + 1);
    if (s) sprintf(s, "%.*s%s", (int)n, out, suffix);
    return s;
}

/* Labels as int32 ids (in order of first appearance) plus their names, one per line: n labels. */
static int write_labels(const char *out, const char *const *label, int n, icl_err *err) {
    int32_t *ids = malloc(sizeof(int32_t) * n);
    const char **names = malloc(sizeof(char *) * n);
    char *npy = sibling(out, "_labels.npy"), *txt = sibling(out, "_labels.txt");
    int r = (!ids || !names || !npy || !txt) ? icl_errf(err, "out of memory") : 0, k = 0;
    for (int i = 0; !r && i < n; i++) {
        int j = 0;
        while (j < k && strcmp(names[j], label[i])) j++;
        if (j == k) names[k++] = label[i];
        ids[i] = j;
    }
    int64_t shape[1] = {n};
    if (!r) r = icl_npy_write_i32(npy, ids, 1, shape, err);
    if (!r) {
        FILE *f = fopen(txt, "w");
        if (!f) r = icl_errf(err, "cannot write %s", txt);
        for (int j = 0; f && j < k; j++) fprintf(f, "%s\n", names[j]);
        if (f && fclose(f)) r = icl_errf(err, "cannot write %s", txt);
    }
    free(ids);
    free(names);
    free(npy);
    free(txt);
    return r;
}

/* --at: "last", "all", or a comma list of positions (negative from the end, "last" = -1). */
typedef struct at_spec {
    int all, n, pos[64];
} at_spec;

static int parse_at(const char *v, at_spec *a, icl_err *err) {
    memset(a, 0, sizeof *a);
    if (!strcmp(v, "all")) {
        a->all = 1;
        return 0;
    }
    for (const char *p = v; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char tok[32];
        if (len == 0 || len >= sizeof tok || a->n == 64) return icl_errf(err, "--at '%s': expected last, all or a list of up to 64 positions", v);
        memcpy(tok, p, len);
        tok[len] = 0;
        if (!strcmp(tok, "last")) a->pos[a->n++] = -1;
        else if (cli_parse_int("at", tok, -(1 << 20), 1 << 20, &a->pos[a->n++], err)) return -1;
        p += len + (end ? 1 : 0);
        if (end && !*p) return icl_errf(err, "--at '%s': trailing comma", v);
    }
    return a->n ? 0 : icl_errf(err, "--at is empty");
}

int cmd_capture(int argc, char **argv) {
    icl_err err;
    const char *model = NULL, *prompt_file = NULL, *out = NULL, *layers_arg = "all", *at = "last", *site_arg = "resid_post";
    int n_ctx = 0, bos = -1, quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char flag[32];
        if (!strcmp(a, "--help")) {
            printf("usage: iclab capture MODEL.gguf --prompts FILE -o OUT.npy [--layers all|0,3,5-7] [--at last|all|N,M,...]\n"
                   "                     [--site resid_post|resid_pre|attn_out|mlp_out] [--ctx N] [--threads N] [--no-bos] [--quiet]\n\n"
                   "Runs every prompt of FILE (one per line, \\n for a newline inside one; 'LABEL<TAB>PROMPT' lines\n"
                   "add labels) and writes the hidden state of each chosen layer at one token position as a float32\n"
                   "array (layers, prompts, n_embd) to OUT.npy. --at last (default) is each prompt's last token;\n"
                   "N >= 0 counts from the first token (BOS included), N < 0 from the end (-1 = last). With several\n"
                   "positions (--at 0,-2,last) or every token (--at all) the array is (layers, rows, n_embd), one row per\n"
                   "prompt and position, and OUT_index.npy (rows, 3) gives each row's prompt, position and token id.\n"
                   "resid_post of layer l is the residual stream after block l, resid_pre before it. Later layers and\n"
                   "the output head are not run. Labelled prompts also give OUT_labels.npy (int32 ids, one per row) and\n"
                   "OUT_labels.txt (the label of each id, one per line).\n");
            return 0;
        }
        if (!strcmp(a, "--no-bos")) bos = 0;
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "-o")) {
            if (i + 1 >= argc) {
                icl_errf(&err, "-o needs a value");
                return cli_fail("capture", &err);
            }
            out = argv[++i];
        } else if (!strncmp(a, "--", 2)) {
            const char *v = cli_flag_value(argc, argv, &i, flag, sizeof flag, &err);
            if (!v) return cli_fail("capture", &err);
            if (!strcmp(flag, "prompts")) prompt_file = v;
            else if (!strcmp(flag, "out")) out = v;
            else if (!strcmp(flag, "layers")) layers_arg = v;
            else if (!strcmp(flag, "at")) at = v;
            else if (!strcmp(flag, "site")) site_arg = v;
            else if (!strcmp(flag, "threads")) {
                if (set_threads(flag, v, &err)) return cli_fail("capture", &err);
            } else if (!strcmp(flag, "ctx")) {
                if (cli_parse_int(flag, v, 1, 1 << 20, &n_ctx, &err)) return cli_fail("capture", &err);
            } else {
                icl_errf(&err, "unknown option --%s (see iclab capture --help)", flag);
                return cli_fail("capture", &err);
            }
        } else if (!model) model = a;
        else {
            icl_errf(&err, "unexpected argument '%s'", a);
            return cli_fail("capture", &err);
        }
    }
    if (!model || !prompt_file || !out) {
        icl_errf(&err, "usage: iclab capture MODEL.gguf --prompts FILE -o OUT.npy (see --help)");
        return cli_fail("capture", &err);
    }
    at_spec as;
    if (parse_at(at, &as, &err)) return cli_fail("capture", &err);
    int single = !as.all && as.n == 1; /* one row per prompt: (layers, prompts, C) */
    icl_site site = ICL_SITE_RESID_POST;
    if (parse_site(site_arg, &site, &err)) return cli_fail("capture", &err);
    icl_prompts pr;
    if (icl_prompts_read(&pr, prompt_file, &err)) return cli_fail("capture", &err);
    lm_session s;
    int r = icl_lm_session_open(&s, model, n_ctx, 1, &err);
    const icl_lm_hparams *hp = r ? NULL : icl_lm_hp(s.lm);
    int *layers = hp ? malloc(sizeof(int) * hp->n_layer) : NULL, nl = 0;
    if (!r && !layers) r = icl_errf(&err, "out of memory");
    if (!r) r = parse_layers(layers_arg, hp->n_layer, layers, &nl, &err);
    /* Tokenize everything first: the rows (prompt, position) fix the output's size. */
    int32_t **ids = calloc((size_t)pr.n, sizeof *ids);
    int *ntok = calloc((size_t)pr.n, sizeof(int)), *row0 = calloc((size_t)pr.n + 1, sizeof(int)), *rowpos = NULL;
    if (!r && (!ids || !ntok || !row0)) r = icl_errf(&err, "out of memory");
    for (int i = 0; !r && i < pr.n; i++) {
        size_t n = 0;
        r = encode(&s, pr.text[i], bos, &ids[i], &n, &err);
        if (r) icl_err_prefix(&err, "prompt %d: ", i + 1);
        ntok[i] = (int)n;
        row0[i + 1] = row0[i] + (as.all ? (int)n : as.n);
        if (row0[i + 1] > (1 << 28)) r = icl_errf(&err, "too many captured rows");
    }
    int R = r ? 0 : row0[pr.n];
    rowpos = r ? NULL : malloc(sizeof(int) * (size_t)(R ? R : 1));
    if (!r && !rowpos) r = icl_errf(&err, "out of memory");
    for (int i = 0; !r && i < pr.n; i++)
        for (int j = 0; !r && j < row0[i + 1] - row0[i]; j++) {
            int p = as.all ? j : as.pos[j] < 0 ? ntok[i] + as.pos[j] : as.pos[j];
            if (p < 0 || p >= ntok[i]) r = icl_errf(&err, "prompt %d has %d tokens: position %s is outside it", i + 1, ntok[i], at);
            else rowpos[row0[i] + j] = p;
        }
    size_t C = hp ? (size_t)hp->n_embd : 0;
    float *data = r ? NULL : malloc(sizeof(float) * nl * (size_t)R * C);
    icl_hook *hooks = r ? NULL : calloc((size_t)nl, sizeof *hooks);
    if (!r && (!data || !hooks)) r = icl_errf(&err, "out of memory for %d x %d x %zu states", nl, R, C);
    icl_progress prog;
    if (!r && !quiet) icl_progress_init(&prog, stderr, "capture", 0, pr.n);
    for (int i = 0; !r && i < pr.n; i++) {
        int np = row0[i + 1] - row0[i], last = 0;
        for (int j = 0; j < np; j++) last = rowpos[row0[i] + j] > last ? rowpos[row0[i] + j] : last;
        for (int k = 0; k < nl; k++)
            hooks[k] = (icl_hook){.site = site, .layer = layers[k], .positions = rowpos + row0[i], .n_positions = np,
                                  .action = ICL_HOOK_CAPTURE, .out = data + ((size_t)k * R + row0[i]) * C};
        r = icl_lm_set_hooks(s.ctx, hooks, nl, &err);
        icl_lm_ctx_reset(s.ctx);
        /* Only the tokens up to the last position matter (causal), and only layers up to the last asked for. */
        icl_lm_eval_opts o = {ICL_LM_LOGITS_NONE, layers[nl - 1], 0};
        if (!r) r = icl_lm_eval(s.ctx, ids[i], last + 1, &o, &err);
        if (r) icl_err_prefix(&err, "prompt %d: ", i + 1);
        if (!r && !quiet) icl_progress_update(&prog, i + 1, NULL);
    }
    if (!r && !quiet) icl_progress_finish(&prog, pr.n, NULL);
    int64_t shape[3] = {nl, R, (int64_t)C};
    if (!r) r = icl_npy_write_f32(out, data, 3, shape, &err);
    /* Several rows per prompt: OUT_index.npy says which (prompt, position, token) each row is. */
    if (!r && !single) {
        int32_t *index = malloc(sizeof(int32_t) * 3 * (size_t)(R ? R : 1));
        char *path = sibling(out, "_index.npy");
        if (!index || !path) r = icl_errf(&err, "out of memory");
        for (int i = 0; !r && i < pr.n; i++)
            for (int j = row0[i]; j < row0[i + 1]; j++) {
                index[3 * j] = i;
                index[3 * j + 1] = rowpos[j];
                index[3 * j + 2] = ids[i][rowpos[j]];
            }
        int64_t ishape[2] = {R, 3};
        if (!r) r = icl_npy_write_i32(path, index, 2, ishape, &err);
        free(index);
        free(path);
    }
    if (!r && pr.label[0]) {
        const char **lab = malloc(sizeof(char *) * (size_t)(R ? R : 1));
        if (!lab) r = icl_errf(&err, "out of memory");
        for (int i = 0; !r && i < pr.n; i++)
            for (int j = row0[i]; j < row0[i + 1]; j++) lab[j] = pr.label[i];
        if (!r) r = write_labels(out, lab, R, &err);
        free(lab);
    }
    if (!r && !quiet) {
        fprintf(stderr, "iclab capture: wrote %s (%d layers:", out, nl);
        for (int k = 0; k < nl; k++) fprintf(stderr, " %d", layers[k]);
        fprintf(stderr, ") x %d rows (%d prompts) x %zu%s\n", R, pr.n, C, single ? "" : ", rows in _index.npy");
    }
    for (int i = 0; ids && i < pr.n; i++) free(ids[i]);
    free(ids);
    free(ntok);
    free(row0);
    free(rowpos);
    free(data);
    free(hooks);
    free(layers);
    icl_prompts_free(&pr);
    icl_lm_session_close(&s);
    return r ? cli_fail("capture", &err) : 0;
}

/* Peak resident memory of this process (VmHWM), in MiB; -1 if /proc does not say. */
static double peak_rss_mib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    double kib = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kib = atof(line + 6);
    fclose(f);
    return kib < 0 ? -1 : kib / 1024.0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cmd_lmbench(int argc, char **argv) {
    icl_err err;
    const char *model = NULL;
    int n_prompt = 128, n_gen = 0, reps = 3, capture = 1, seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char flag[32];
        if (!strcmp(a, "--help")) {
            printf("usage: iclab lmbench MODEL.gguf [--prompt 128] [--gen 0] [--reps 3] [--no-capture] [--seed 1] [--threads N]\n\n"
                   "Times prefill of --prompt random tokens (logits of the last one, and by default every layer's\n"
                   "last-token residual state captured) and then --gen single-token steps, --reps times, and prints\n"
                   "one line: the median tokens/s of each, the weights mapped, the context size and peak RSS.\n");
            return 0;
        }
        if (!strcmp(a, "--no-capture")) {
            capture = 0;
            continue;
        }
        if (!strncmp(a, "--", 2)) {
            const char *v = cli_flag_value(argc, argv, &i, flag, sizeof flag, &err);
            int bad = !v;
            if (!bad && !strcmp(flag, "prompt")) bad = cli_parse_int(flag, v, 1, 1 << 20, &n_prompt, &err);
            else if (!bad && !strcmp(flag, "gen")) bad = cli_parse_int(flag, v, 0, 1 << 20, &n_gen, &err);
            else if (!bad && !strcmp(flag, "reps")) bad = cli_parse_int(flag, v, 1, 1000, &reps, &err);
            else if (!bad && !strcmp(flag, "seed")) bad = cli_parse_int(flag, v, 0, 2147483647, &seed, &err);
            else if (!bad && !strcmp(flag, "threads")) bad = set_threads(flag, v, &err);
            else if (!bad) bad = icl_errf(&err, "unknown option --%s (see iclab lmbench --help)", flag);
            if (bad) return cli_fail("lmbench", &err);
            continue;
        }
        if (model) {
            icl_errf(&err, "unexpected argument '%s'", a);
            return cli_fail("lmbench", &err);
        }
        model = a;
    }
    if (!model) {
        icl_errf(&err, "usage: iclab lmbench MODEL.gguf (see --help)");
        return cli_fail("lmbench", &err);
    }
    double t_load = now_s();
    lm_session s;
    int r = icl_lm_session_open(&s, model, n_prompt + n_gen, 0, &err);
    t_load = now_s() - t_load;
    double rss_loaded = peak_rss_mib();
    const icl_lm_hparams *hp = r ? NULL : icl_lm_hp(s.lm);
    int L = hp ? hp->n_layer : 0, last = n_prompt - 1;
    size_t C = hp ? (size_t)hp->n_embd : 0;
    int32_t *toks = malloc(sizeof(int32_t) * (n_prompt + n_gen + 1));
    float *states = malloc(sizeof(float) * (L ? L : 1) * (C ? C : 1));
    icl_hook *hooks = calloc((size_t)(L ? L : 1), sizeof *hooks);
    double *pp = malloc(sizeof(double) * reps), *tg = malloc(sizeof(double) * reps);
    if (!r && (!toks || !states || !hooks || !pp || !tg)) r = icl_errf(&err, "out of memory");
    icl_rng rng;
    icl_rng_seed(&rng, (uint64_t)seed);
    for (int i = 0; !r && i < n_prompt + n_gen; i++) toks[i] = (int32_t)(icl_rng_uniform(&rng) * hp->n_vocab);
    for (int l = 0; !r && l < L; l++)
        hooks[l] = (icl_hook){.site = ICL_SITE_RESID_POST, .layer = l, .positions = &last, .n_positions = 1,
                              .action = ICL_HOOK_CAPTURE, .out = states + (size_t)l * C};
    if (!r && capture) r = icl_lm_set_hooks(s.ctx, hooks, L, &err);
    icl_lm_eval_opts o = {ICL_LM_LOGITS_LAST, -1, 0};
    for (int k = 0; !r && k < reps; k++) {
        icl_lm_ctx_reset(s.ctx);
        double t0 = now_s();
        r = icl_lm_eval(s.ctx, toks, n_prompt, &o, &err);
        double t1 = now_s();
        for (int g = 0; !r && g < n_gen; g++) r = icl_lm_eval(s.ctx, toks + n_prompt + g, 1, &o, &err);
        pp[k] = n_prompt / (t1 - t0);
        tg[k] = n_gen ? n_gen / (now_s() - t1) : 0;
    }
    if (!r) {
        qsort(pp, reps, sizeof(double), cmp_double);
        qsort(tg, reps, sizeof(double), cmp_double);
        printf("model=%s arch=%s prompt=%d pp_tok_s=%.1f pp_min=%.1f pp_max=%.1f gen=%d tg_tok_s=%.1f capture=%d "
               "load_s=%.3f weights_mib=%.1f ctx_mib=%.1f rss_after_load_mib=%.1f peak_rss_mib=%.1f\n",
               model, hp->arch_name, n_prompt, pp[reps / 2], pp[0], pp[reps - 1], n_gen, tg[reps / 2], capture, t_load,
               icl_lm_weight_bytes(s.lm) / 1048576.0, icl_lm_ctx_bytes(s.ctx) / 1048576.0, rss_loaded, peak_rss_mib());
    }
    free(toks);
    free(states);
    free(hooks);
    free(pp);
    free(tg);
    icl_lm_session_close(&s);
    return r ? cli_fail("lmbench", &err) : 0;
}
