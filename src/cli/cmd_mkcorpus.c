/* `iclab mkcorpus`: the mini language model's pretraining corpus (Brown running text + ICL episodes
 * of the token tasks' training splits) and a byte-level BPE tokenizer trained on it (issue 12). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "iclab/icl_bpe_train.h"
#include "iclab/icl_file.h"
#include "iclab/icl_lmcorpus.h"
#include "iclab/icl_tokenizer.h"
#include "iclab/icl_utf8.h"

static const char *usage =
    "usage: iclab mkcorpus [--out DIR] [--tasks bitwise,pos] [--bytes 8M | --docs N] [--text-share 0.5]\n"
    "                      [--share NAME=W,...] [--shots 0-10] [--prompting 0.25] [--template '{x} -> {y}\\n']\n"
    "                      [--seed 1] [--task-seed 1] [--brown data/brown] [--doc-bytes 2048] [--vocab 4096]\n"
    "                      [--quiet]\n"
    "       iclab mkcorpus --tokenizer-only TEXT.txt [--vocab 4096] [--out DIR]\n\n"
    "Writes DIR (default runs/corpus)/corpus.txt, corpus.docs.tsv and tokenizer.gguf, and prints statistics.\n"
    "The corpus mixes running text from the Brown corpus (sentences untagged, paragraphs on lines, documents of\n"
    "about --doc-bytes) with ICL episodes of the token tasks, one episode per document: a concept drawn by\n"
    "weight, 0..10 demonstrations (--shots A-B), the concept's instruction line with probability --prompting,\n"
    "all from the TRAINING split, in the template of `iclab eval`, answer included. Documents are separated by\n"
    "<|endoftext|> (one before the first and after the last). The pos family's test sentences are left out of\n"
    "the running text and training pairs equal to a test example are never used, so no test query of\n"
    "`iclab eval --seed S` (S = --task-seed) appears in the corpus.\n"
    "  --bytes N       total document bytes (suffix k or M: 1000s); --docs N: total documents instead\n"
    "  --text-share F  share of running text (of bytes, or of documents with --docs)\n"
    "  --share SPEC    concept weights (default 1 each): NAME=W, NAME a family (bitwise, pos: all its concepts),\n"
    "                  a concept (XOR, Null: in every family) or FAMILY:CONCEPT (pos:Adverb); 0 leaves it out\n"
    "  --tasks LIST    task families: bitwise, pos, or task files (docs/tasks.md)\n"
    "  --seed S        the corpus's draws; --task-seed S: the families' train/test split (eval's --seed)\n"
    "  --vocab N       tokenizer size: 256 byte tokens + merges + <|endoftext|> (BOS/EOS)\n"
    "The tokenizer is GPT-2-style byte-level BPE trained on the corpus (GPT-2's pre-tokenizer); tokenizer.gguf\n"
    "holds only its metadata: `iclab mkmodel --vocab DIR/tokenizer.gguf` builds a model with it.\n"
    "--tokenizer-only trains the tokenizer on a UTF-8 text file instead (<|endoftext|> separates documents).\n";

/* "8M", "500k", "123": a positive count. */
static int parse_size(const char *flag, const char *v, size_t *out, icl_err *err) {
    char *end;
    double x = strtod(v, &end);
    if (end == v) return icl_errf(err, "--%s '%s' is not a number", flag, v);
    if (*end == 'k' || *end == 'K') x *= 1e3, end++;
    else if (*end == 'M' || *end == 'm') x *= 1e6, end++;
    else if (*end == 'G' || *end == 'g') x *= 1e9, end++;
    if (*end || !(x >= 1) || x > 1e12) return icl_errf(err, "--%s '%s' must be a count from 1 to 1e12 (suffix k, M, G)", flag, v);
    *out = (size_t)(x + 0.5);
    return 0;
}

static int parse_prob(const char *flag, const char *v, double *out, icl_err *err) {
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x >= 0 && x <= 1)) return icl_errf(err, "--%s '%s' must be a number in [0, 1]", flag, v);
    *out = x;
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int train_vocab(const char *text, size_t len, int vocab, int quiet, icl_bpe_vocab *v, icl_err *err) {
    icl_bpe_train_opts bo;
    icl_bpe_train_opts_default(&bo);
    bo.vocab_size = vocab;
    double t0 = now_s();
    if (icl_bpe_train(v, text, len, &bo, err)) return -1;
    if (!quiet)
        printf("tokenizer: %d tokens (%d merges, <|endoftext|> = %d), trained on %llu words (%llu distinct) in %.1f s\n",
               v->n_tokens, v->n_merges, v->eos, (unsigned long long)v->n_words, (unsigned long long)v->n_distinct_words,
               now_s() - t0);
    return 0;
}

/* Tokens of text[0..len) with the written tokenizer (special tokens parsed, no BOS). */
static int count_tokens(const icl_tokenizer *tk, const char *text, size_t len, size_t *n, icl_err *err) {
    int32_t *ids = NULL;
    if (icl_tokenizer_encode(tk, text, len, 0, 1, &ids, n, err)) return -1;
    free(ids);
    return 0;
}

static int tokenizer_only(const char *file, const char *out, int vocab, int quiet, icl_err *err) {
    char *text, path[4200];
    size_t len;
    if (icl_read_file(file, &text, &len, err)) return -1;
    for (size_t i = 0; i < len;) {
        int l = text[i] ? icl_utf8_len((const unsigned char *)text + i) : 0;
        if (!l) {
            free(text);
            return icl_errf(err, "%s: not valid UTF-8 text (byte %zu)", file, i);
        }
        i += (size_t)l;
    }
    icl_bpe_vocab v;
    memset(&v, 0, sizeof v);
    snprintf(path, sizeof path, "%s/tokenizer.gguf", out);
    int rc = train_vocab(text, len, vocab, quiet, &v, err) || icl_mkdirs(out, err) || icl_bpe_vocab_write(&v, path, err) ? -1 : 0;
    icl_tokenizer *tk = NULL;
    size_t nt = 0;
    if (!rc) rc = icl_tokenizer_load_file(&tk, path, err) || count_tokens(tk, text, len, &nt, err) ? -1 : 0;
    if (!rc && !quiet) printf("-> %s\ntokens: %zu for %zu bytes (%.2f bytes/token)\n", path, nt, len, nt ? (double)len / (double)nt : 0.0);
    icl_tokenizer_free(tk);
    icl_bpe_vocab_free(&v);
    free(text);
    return rc;
}

static void free_tasks(icl_toktask *tasks, int n) {
    for (int i = 0; i < n; i++) icl_toktask_free(&tasks[i]);
}

int cmd_mkcorpus(int argc, char **argv) {
    icl_err err;
    icl_lmcorpus_opts o;
    icl_lmcorpus_opts_default(&o);
    const char *out = "runs/corpus", *tasks_arg = "bitwise,pos", *tok_only = NULL;
    o.brown_dir = "data/brown";
    int vocab = 4096, quiet = 0, task_seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char flag[32];
        if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        }
        if (strncmp(a, "--", 2)) {
            icl_errf(&err, "unexpected argument '%s' (see iclab mkcorpus --help)", a);
            return cli_fail("mkcorpus", &err);
        }
        const char *v = cli_flag_value(argc, argv, &i, flag, sizeof flag, &err);
        if (!v) return cli_fail("mkcorpus", &err);
        int r = 0;
        if (!strcmp(flag, "out")) out = v;
        else if (!strcmp(flag, "tasks")) tasks_arg = v;
        else if (!strcmp(flag, "tokenizer-only")) tok_only = v;
        else if (!strcmp(flag, "brown")) o.brown_dir = v;
        else if (!strcmp(flag, "template")) o.template_spec = v;
        else if (!strcmp(flag, "share")) o.shares = v;
        else if (!strcmp(flag, "bytes")) r = parse_size(flag, v, &o.target_bytes, &err), o.target_docs = 0;
        else if (!strcmp(flag, "docs")) r = parse_size(flag, v, &o.target_docs, &err), o.target_bytes = 0;
        else if (!strcmp(flag, "doc-bytes")) r = parse_size(flag, v, &o.text_doc_bytes, &err);
        else if (!strcmp(flag, "text-share")) r = parse_prob(flag, v, &o.text_share, &err);
        else if (!strcmp(flag, "prompting")) r = parse_prob(flag, v, &o.prompting, &err);
        else if (!strcmp(flag, "vocab")) r = cli_parse_int(flag, v, 1, 1 << 24, &vocab, &err);
        else if (!strcmp(flag, "seed") || !strcmp(flag, "task-seed")) {
            int s;
            r = cli_parse_int(flag, v, 0, 2147483647, &s, &err);
            if (flag[0] == 's') o.seed = (uint64_t)s;
            else task_seed = s;
        } else if (!strcmp(flag, "shots")) {
            char *e1, *e2;
            long lo = strtol(v, &e1, 10), hi = lo;
            if (e1 != v && *e1 == '-') hi = strtol(e1 + 1, &e2, 10), e1 = e2;
            if (e1 == v || *e1 || lo < 0 || hi < lo || hi > 256)
                r = icl_errf(&err, "--shots '%s' must be N or A-B with 0 <= A <= B <= 256", v);
            o.min_shots = (int)lo, o.max_shots = (int)hi;
        } else r = icl_errf(&err, "unknown option --%s (see iclab mkcorpus --help)", flag);
        if (r) return cli_fail("mkcorpus", &err);
    }
    if (tok_only) return tokenizer_only(tok_only, out, vocab, quiet, &err) ? cli_fail("mkcorpus", &err) : 0;
    if (vocab < 257) {
        icl_errf(&err, "vocabulary size %d is below the 256 byte tokens + 1 special token", vocab);
        return cli_fail("mkcorpus", &err);
    }
    /* the task families */
    icl_toktask tasks[16];
    const icl_toktask *tp[16];
    int nt = 0, rc = 0;
    char *list = strdup(tasks_arg);
    for (char *save = NULL, *name = list ? strtok_r(list, ",", &save) : NULL; name && !rc;
         name = strtok_r(NULL, ",", &save)) {
        if (nt == 16) {
            rc = icl_errf(&err, "--tasks: at most 16 families");
            break;
        }
        for (int j = 0; j < nt && !rc; j++)
            if (!strcmp(tasks[j].family, name)) rc = icl_errf(&err, "--tasks names %s twice", name);
        if (rc) break;
        if (!strcmp(name, "bitwise")) rc = icl_toktask_bitwise(&tasks[nt], (uint64_t)task_seed, &err);
        else if (!strcmp(name, "pos")) rc = icl_toktask_pos(&tasks[nt], o.brown_dir, (uint64_t)task_seed, &err);
        else rc = icl_toktask_load(&tasks[nt], name, &err);
        if (!rc) tp[nt] = &tasks[nt], nt++;
    }
    free(list);
    if (!list) rc = icl_errf(&err, "out of memory");
    if (rc) {
        free_tasks(tasks, nt);
        return cli_fail("mkcorpus", &err);
    }
    o.tasks = tp;
    o.n_tasks = nt;
    double t0 = now_s();
    icl_lmcorpus c;
    if (icl_lmcorpus_build(&c, &o, &err)) {
        free_tasks(tasks, nt);
        return cli_fail("mkcorpus", &err);
    }
    char p_txt[4200], p_idx[4200], p_tok[4200];
    snprintf(p_txt, sizeof p_txt, "%s/corpus.txt", out);
    snprintf(p_idx, sizeof p_idx, "%s/corpus.docs.tsv", out);
    snprintf(p_tok, sizeof p_tok, "%s/tokenizer.gguf", out);
    if (!quiet) {
        printf("corpus: %zu bytes, %zu documents in %.1f s\n", c.len, c.n_docs, now_s() - t0);
        printf("running text: %zu bytes in %zu documents (%d pass%s over %zu Brown sentences; %zu test sentences left out)\n",
               c.text_bytes, c.text_docs, c.text_passes, c.text_passes == 1 ? "" : "es", c.text_sentences,
               c.excluded_sentences);
        printf("episodes: %zu bytes in %zu documents; %zu training examples left out as equal to a test example\n",
               c.episode_bytes, c.episode_docs, c.excluded_train_pairs);
        printf("  %-24s %8s %8s %12s %10s\n", "concept", "weight", "episodes", "bytes", "train ex.");
        for (int k = 0; k < c.n_concepts; k++)
            printf("  %-24s %8.3g %8zu %12zu %10zu\n", c.concept_names[k], c.weights[k], c.episodes[k], c.ep_bytes[k],
                   c.train_usable[k]);
    }
    /* the tokenizer first: nothing is written when its size cannot be reached */
    icl_bpe_vocab v;
    memset(&v, 0, sizeof v);
    rc = train_vocab(c.text, c.len, vocab, quiet, &v, &err);
    if (!rc)
        rc = icl_mkdirs(out, &err) || icl_lmcorpus_write(&c, p_txt, p_idx, &err) || icl_bpe_vocab_write(&v, p_tok, &err) ? -1 : 0;
    if (!rc && !quiet) printf("wrote %s, %s, %s\n", p_txt, p_idx, p_tok);
    icl_tokenizer *tk = NULL;
    if (!rc) rc = icl_tokenizer_load_file(&tk, p_tok, &err);
    if (!rc) {
        /* tokens per kind of document, and the EOS markers */
        size_t tok_text = 0, tok_ep = 0, n;
        for (size_t i = 0; i < c.n_docs && !rc; i++) {
            rc = count_tokens(tk, c.text + c.docs[i].off, c.docs[i].len, &n, &err);
            if (c.docs[i].kind == ICL_LMDOC_TEXT) tok_text += n;
            else tok_ep += n;
        }
        size_t total = 0;
        if (!rc) rc = count_tokens(tk, c.text, c.len, &total, &err);
        if (!rc && total != tok_text + tok_ep + c.n_docs + 1)
            rc = icl_errf(&err, "internal: %zu tokens for the corpus, %zu for its documents and markers", total,
                          tok_text + tok_ep + c.n_docs + 1);
        if (!rc && !quiet)
            printf("tokens: %zu (%.2f bytes/token; running text %zu, %.2f bytes/token; episodes %zu, %.2f bytes/token; "
                   "%zu <|endoftext|>)\n",
                   total, (double)c.len / (double)total, tok_text, tok_text ? (double)c.text_bytes / (double)tok_text : 0.0,
                   tok_ep, tok_ep ? (double)c.episode_bytes / (double)tok_ep : 0.0, c.n_docs + 1);
    }
    icl_tokenizer_free(tk);
    icl_bpe_vocab_free(&v);
    icl_lmcorpus_free(&c);
    free_tasks(tasks, nt);
    return rc ? cli_fail("mkcorpus", &err) : 0;
}
