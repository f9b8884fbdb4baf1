/* The iclab command: dispatches to subcommands. Only this layer prints and exits. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "cli.h"

/* fontconfig (used by cairo for text) keeps its caches until exit; LeakSanitizer would report
 * them as leaks in the sanitizer build. Only consulted when built with -fsanitize=address. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig.so\n"; }

int cli_fail(const char *cmd, const icl_err *err) {
    fprintf(stderr, "iclab %s: %s\n", cmd, err->msg);
    return 1;
}

const char *cli_flag_value(int argc, char **argv, int *i, char *name_out, size_t n, icl_err *err) {
    const char *a = argv[*i];
    const char *eq = strchr(a, '=');
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    if (len - 2 >= n) len = n + 1;
    snprintf(name_out, n, "%.*s", (int)(len - 2), a + 2);
    if (eq) return eq + 1;
    if (*i + 1 >= argc) {
        icl_errf(err, "--%s needs a value", name_out);
        return NULL;
    }
    return argv[++*i];
}

int cli_parse_int(const char *flag, const char *v, int lo, int hi, int *out, icl_err *err) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) return icl_errf(err, "--%s: '%s' is not an integer in %d..%d", flag, v, lo, hi);
    *out = (int)x;
    return 0;
}

int cli_parse_steps(const char *flag, const char *v, int64_t *steps, int cap, int *n, icl_err *err) {
    *n = 0;
    for (const char *p = v; *p;) {
        char *end;
        long long s = strtoll(p, &end, 10);
        if (end == p || s < 0 || *n >= cap || (*end && *end != ',')) return icl_errf(err, "--%s: bad list '%s'", flag, v);
        steps[(*n)++] = s;
        p = *end ? end + 1 : end;
    }
    if (*n == 0) return icl_errf(err, "--%s: empty list", flag);
    return 0;
}

int icl_is_gguf_file(const char *path) {
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    int ok = f && fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    if (f) fclose(f);
    return ok;
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"demo", cmd_demo, "the main job on defaults: train the demo model and draw its figures"},
    {"train", cmd_train, "train the toy in-context regression model (paper §1)"},
    {"sweep", cmd_sweep, "a grid of configurations x seeds, sequential or over MPI ranks, with one report"},
    {"decode", cmd_decode, "task decodability of a run's checkpoints x layers (paper §2)"},
    {"patch", cmd_patch, "causal tests: concept patching, head ablation, which algorithm (paper Figs. 7, 18)"},
    {"report", cmd_report, "figures and a self-contained report.html for a run"},
    {"tokenize", cmd_tokenize, "token ids of a text with a GGUF model's tokenizer (--decode: ids to text)"},
    {"mkmodel", cmd_mkmodel, "write a random-weight GGUF LLM (llama, qwen2, gemma2, gpt2, olmo) for engine tests"},
    {"mkcorpus", cmd_mkcorpus, "pretraining corpus (Brown text + ICL episodes) and a byte-level BPE tokenizer for it"},
    {"run", cmd_run, "generate text with a GGUF language model (llama, qwen2, gemma2, gpt2, olmo)"},
    {"capture", cmd_capture, "hidden states of a GGUF language model's layers for a file of prompts -> .npy"},
    {"eval", cmd_eval, "token ICL on a GGUF model: accuracy and TD per layer, concept and shots (paper §3)"},
    {"finetune", cmd_finetune, "LoRA on a GGUF model's first/last layers for a token task; --compare: paper §4.2"},
    {"td", cmd_td, "task decodability (kNN, probe) of any saved representations, e.g. from capture"},
    {"lmbench", cmd_lmbench, "time prefill and generation of a GGUF language model (for bench/)"},
    {"info", cmd_info, "show a checkpoint's configuration and held-out MSE"},
    {"bench", cmd_bench, "time training steps on given shapes (for bench/)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: iclab <command> [options]   (iclab <command> --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

/* The OpenBLAS core to ask for when the one it chose underuses this CPU, else NULL. OpenBLAS picks its
 * kernels by CPU model, and a model it does not know falls back to a generic one: Debian 12's 0.3.21
 * takes this project's Xeons ("Intel(R) Xeon(R) Processor", AVX-512) for a Prescott and runs SSE3
 * kernels, which made the reproduce preset's training 2.1x slower (docs/performance.md). */
static const char *blas_core_upgrade(void) {
    static const char *const generic[] = {"prescott", "core2", "penryn", "dunnington", "nehalem", "atom",
                                          "sandybridge", "unknown"};
    const char *core = openblas_get_corename();
    int weak = 0;
    for (size_t i = 0; core && i < sizeof generic / sizeof generic[0]; i++) weak |= !strcasecmp(core, generic[i]);
    if (!weak) return NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return NULL;
}

int main(int argc, char **argv) {
    /* Runtime settings that OpenMP and OpenBLAS read before main: set them and start again
     * (explicit settings are respected).
     * - Idle OpenMP threads should spin only briefly: on this project's (virtual, 2-core) machines
     *   libgomp's default spinning made small runs up to 17x slower (the tiny preset's training loop:
     *   4.3 s vs 0.43 s), while sleeping at once cost about 10% on the small benchmark model; a spin
     *   count of 10,000 gets most of both (docs/performance.md).
     * - OpenBLAS's kernels for the CPU's vector units, when it fell back to generic ones. */
    if (!getenv("ICLAB_REEXEC")) {
        int again = 0;
        if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) {
            setenv("GOMP_SPINCOUNT", "10000", 1);
            again = 1;
        }
        const char *core = getenv("OPENBLAS_CORETYPE") ? NULL : blas_core_upgrade();
        if (core) {
            setenv("OPENBLAS_CORETYPE", core, 1);
            again = 1;
        }
        if (again) {
            setenv("ICLAB_REEXEC", "1", 1);
            execv("/proc/self/exe", argv);
            /* exec failed: carry on with the settings we started with */
        }
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "iclab: unknown command '%s' (see iclab --help)\n", argv[1]);
    return 2;
}
