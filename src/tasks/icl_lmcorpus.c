/* The pretraining corpus of the mini language model: Brown running text without the test sentences,
 * and ICL episodes from the training splits. See icl_lmcorpus.h. */
#include "iclab/icl_lmcorpus.h"
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_file.h"
#include "iclab/icl_rng.h"
#include "iclab/icl_utf8.h"

void icl_lmcorpus_opts_default(icl_lmcorpus_opts *o) {
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->target_bytes = 8000000;
    o->text_share = 0.5;
    o->min_shots = 0;
    o->max_shots = 10;
    o->prompting = 0.25;
    o->text_doc_bytes = 2048;
}

void icl_lmcorpus_free(icl_lmcorpus *c) {
    if (!c) return;
    for (int i = 0; c->concept_names && i < c->n_concepts; i++) free(c->concept_names[i]);
    free(c->concept_names), free(c->weights), free(c->episodes), free(c->ep_bytes), free(c->train_usable);
    free(c->text), free(c->docs);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------------ small containers */

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static int sb_add(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->n + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) return -1;
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

static int sb_str(sbuf *b, const char *s) { return sb_add(b, s, strlen(s)); }

/* A set of byte strings (owned copies). */
typedef struct {
    char **s;
    size_t *len;
    size_t cap, n;
} sset;

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    h ^= h >> 31;
    h *= 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

static int sset_has(const sset *ss, const char *s, size_t n) {
    if (!ss->cap) return 0;
    for (size_t j = hash_bytes(s, n) & (ss->cap - 1); ss->s[j]; j = (j + 1) & (ss->cap - 1))
        if (ss->len[j] == n && !memcmp(ss->s[j], s, n)) return 1;
    return 0;
}

/* 0 added or present, -1 out of memory. */
static int sset_add(sset *ss, const char *s, size_t n) {
    if (sset_has(ss, s, n)) return 0;
    if (2 * (ss->n + 1) > ss->cap) {
        size_t nc = ss->cap ? 2 * ss->cap : 1024;
        char **ns = calloc(nc, sizeof *ns);
        size_t *nl = calloc(nc, sizeof *nl);
        if (!ns || !nl) {
            free(ns), free(nl);
            return -1;
        }
        for (size_t i = 0; i < ss->cap; i++) {
            if (!ss->s[i]) continue;
            size_t j = hash_bytes(ss->s[i], ss->len[i]) & (nc - 1);
            while (ns[j]) j = (j + 1) & (nc - 1);
            ns[j] = ss->s[i];
            nl[j] = ss->len[i];
        }
        free(ss->s), free(ss->len);
        ss->s = ns;
        ss->len = nl;
        ss->cap = nc;
    }
    size_t j = hash_bytes(s, n) & (ss->cap - 1);
    while (ss->s[j]) j = (j + 1) & (ss->cap - 1);
    if (!(ss->s[j] = malloc(n + 1))) return -1;
    memcpy(ss->s[j], s, n);
    ss->s[j][n] = 0;
    ss->len[j] = n;
    ss->n++;
    return 0;
}

static void sset_free(sset *ss) {
    for (size_t i = 0; i < ss->cap; i++) free(ss->s[i]);
    free(ss->s), free(ss->len);
    memset(ss, 0, sizeof *ss);
}

/* "input \x1f output": the key of an example's pair. */
static int pair_key(sbuf *b, const icl_tokex *e) {
    b->n = 0;
    return sb_str(b, e->input) || sb_add(b, "\x1f", 1) || sb_str(b, e->output);
}

/* ------------------------------------------------------------------ concept weights */

static int parse_shares(icl_lmcorpus *c, const icl_lmcorpus_opts *o, icl_err *err) {
    int nt = o->n_tasks;
    double *fam = malloc((size_t)(nt ? nt : 1) * sizeof *fam), *con = malloc((size_t)(c->n_concepts ? c->n_concepts : 1) * sizeof *con);
    if (!fam || !con) {
        free(fam), free(con);
        return icl_errf(err, "out of memory");
    }
    for (int t = 0; t < nt; t++) fam[t] = 1;
    for (int k = 0; k < c->n_concepts; k++) con[k] = 1;
    int rc = 0;
    const char *p = o->shares;
    while (p && *p && !rc) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        char name[512], val[64];
        if (!eq || eq == p || (size_t)(eq - p) >= sizeof name || (size_t)(end - eq - 1) >= sizeof val || end == eq + 1) {
            rc = icl_errf(err, "share '%.*s' is not NAME=WEIGHT", (int)(end - p > 80 ? 80 : end - p), p);
            break;
        }
        memcpy(name, p, (size_t)(eq - p));
        name[eq - p] = 0;
        memcpy(val, eq + 1, (size_t)(end - eq - 1));
        val[end - eq - 1] = 0;
        char *ve;
        double w = strtod(val, &ve);
        if (*ve || !(w >= 0) || !isfinite(w)) {
            rc = icl_errf(err, "share %s=%s: the weight must be a number >= 0", name, val);
            break;
        }
        int hits = 0;
        for (int t = 0; t < nt; t++)
            if (!strcmp(name, o->tasks[t]->family)) fam[t] = w, hits++;
        if (!hits) {
            int k = 0;
            for (int t = 0; t < nt; t++) {
                const icl_toktask *tk = o->tasks[t];
                size_t fl = strlen(tk->family);
                for (int j = 0; j < tk->n_concepts; j++, k++) {
                    int m = !strcmp(name, tk->concepts[j]) ||
                            (!strncmp(name, tk->family, fl) && name[fl] == ':' && !strcmp(name + fl + 1, tk->concepts[j]));
                    if (m) con[k] = w, hits++;
                }
            }
        }
        if (!hits) rc = icl_errf(err, "share %s=%s: no family or concept named '%s' (concepts are named like bitwise:XOR)", name, val, name);
        p = *end ? end + 1 : end;
    }
    if (!rc) {
        int k = 0;
        for (int t = 0; t < nt; t++)
            for (int j = 0; j < o->tasks[t]->n_concepts; j++, k++) c->weights[k] = fam[t] * con[k];
    }
    free(fam), free(con);
    return rc;
}

/* ------------------------------------------------------------------ running text */

typedef struct {
    size_t off, len;
} span;

typedef struct {
    sbuf text;   /* all running-text documents back to back */
    span *doc;
    size_t n_doc, cap_doc;
} textdocs;

static int is_brown_file(const char *name) {
    return strlen(name) == 4 && name[0] == 'c' && name[1] >= 'a' && name[1] <= 'r' && isdigit((unsigned char)name[2]) &&
           isdigit((unsigned char)name[3]);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int doc_push(textdocs *td, size_t start) {
    if (td->text.n == start) return 0;
    if (td->n_doc == td->cap_doc) {
        size_t nc = td->cap_doc ? 2 * td->cap_doc : 1024;
        span *nd = realloc(td->doc, nc * sizeof *nd);
        if (!nd) return -1;
        td->doc = nd;
        td->cap_doc = nc;
    }
    td->doc[td->n_doc].off = start;
    td->doc[td->n_doc].len = td->text.n - start;
    td->n_doc++;
    return 0;
}

/* The untagged text of one corpus line (icl_toktask_pos's rule) into *s; 0, or -1 with err set. */
static int line_text(sbuf *s, const char *path, size_t lineno, const char *line, size_t len, icl_err *err) {
    s->n = 0;
    size_t i = 0;
    int nt = 0, got;
    icl_brown_tok tk;
    while ((got = icl_brown_next(line, len, &i, &tk, path, lineno, err)) == 1)
        if ((nt++ && sb_add(s, " ", 1)) || sb_add(s, tk.word, tk.word_len)) return icl_errf(err, "out of memory");
    if (got < 0) return -1;
    return 0;
}

/* Reads one Brown file into documents of about doc_bytes. */
static int brown_file(icl_lmcorpus *c, textdocs *td, const sset *test_inputs, const char *path, size_t doc_bytes,
                      icl_err *err) {
    char *data;
    size_t n;
    if (icl_read_file(path, &data, &n, err)) return -1;
    for (size_t i = 0; i < n;) {
        int l = icl_utf8_len((const unsigned char *)data + i);
        if (l == 0 || (data[i] == 0)) {
            free(data);
            return icl_errf(err, "%s: not valid UTF-8 text (byte %zu)", path, i);
        }
        i += (size_t)l;
    }
    sbuf sent = {0};
    int rc = 0, in_para = 0, new_para = 0;
    size_t doc_start = td->text.n, lineno = 0;
    for (size_t i = 0; i < n && !rc;) {
        size_t s = i;
        while (i < n && data[i] != '\n') i++;
        size_t end = i;
        lineno++;
        if (i < n) i++;
        if (end > s && data[end - 1] == '\r') end--;
        if (end > s && data[s] == '\t') new_para = 1; /* kept even when this sentence is left out */
        if (line_text(&sent, path, lineno, data + s, end - s, err)) {
            rc = -1;
            break;
        }
        if (sent.n == 0) continue; /* blank line */
        if (sset_has(test_inputs, sent.p, sent.n)) {
            c->excluded_sentences++;
            continue;
        }
        c->text_sentences++;
        if (new_para && in_para) {
            /* end the previous paragraph; cut the document when it is long enough */
            if (sb_add(&td->text, "\n", 1)) rc = icl_errf(err, "out of memory");
            in_para = 0;
            if (!rc && td->text.n - doc_start >= doc_bytes) {
                if (doc_push(td, doc_start)) rc = icl_errf(err, "out of memory");
                doc_start = td->text.n;
            }
        }
        if (!rc && ((in_para && sb_add(&td->text, " ", 1)) || sb_add(&td->text, sent.p, sent.n)))
            rc = icl_errf(err, "out of memory");
        in_para = 1;
        new_para = 0;
    }
    if (!rc && in_para && sb_add(&td->text, "\n", 1)) rc = icl_errf(err, "out of memory");
    if (!rc && doc_push(td, doc_start)) rc = icl_errf(err, "out of memory");
    free(sent.p);
    free(data);
    return rc;
}

static int read_brown(icl_lmcorpus *c, textdocs *td, const sset *test_inputs, const char *dir, size_t doc_bytes,
                      icl_err *err) {
    DIR *d = opendir(dir);
    if (!d) return icl_errf(err, "cannot open the Brown corpus directory %s (run `make data`)", dir);
    char **files = NULL;
    size_t nf = 0, cap = 0;
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!is_brown_file(e->d_name)) continue;
        if (nf == cap) {
            size_t nc = cap ? 2 * cap : 512;
            char **nfl = realloc(files, nc * sizeof *nfl);
            if (!nfl) {
                rc = icl_errf(err, "out of memory");
                break;
            }
            files = nfl;
            cap = nc;
        }
        if (!(files[nf] = strdup(e->d_name))) {
            rc = icl_errf(err, "out of memory");
            break;
        }
        nf++;
    }
    closedir(d);
    if (!rc && nf == 0) rc = icl_errf(err, "no Brown corpus files (ca01 .. cr09) in %s", dir);
    if (!rc) qsort(files, nf, sizeof *files, cmp_str);
    for (size_t f = 0; f < nf && !rc; f++) {
        size_t plen = strlen(dir) + strlen(files[f]) + 2;
        char *path = malloc(plen);
        if (!path) {
            rc = icl_errf(err, "out of memory");
            break;
        }
        snprintf(path, plen, "%s/%s", dir, files[f]);
        rc = brown_file(c, td, test_inputs, path, doc_bytes, err);
        free(path);
    }
    for (size_t f = 0; f < nf; f++) free(files[f]);
    free(files);
    return rc;
}

/* ------------------------------------------------------------------ building */

/* A document before the final ordering: its bytes in one of the two buffers. */
typedef struct {
    int kind, concept, shots, prompted;
    size_t off, len;
} pdoc;

typedef struct {
    pdoc *v;
    size_t n, cap;
} pdocs;

static int pd_push(pdocs *p, pdoc d) {
    if (p->n == p->cap) {
        size_t nc = p->cap ? 2 * p->cap : 1024;
        pdoc *nv = realloc(p->v, nc * sizeof *nv);
        if (!nv) return -1;
        p->v = nv;
        p->cap = nc;
    }
    p->v[p->n++] = d;
    return 0;
}

static void shuffle_idx(size_t *idx, size_t n, icl_rng *rng) {
    for (size_t i = 0; i < n; i++) idx[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)icl_rng_below(rng, i), t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

/* k distinct picks from 0..n-1 (k <= n) into out: rejection for small k, a partial shuffle otherwise. */
static int draw_distinct(size_t n, size_t k, icl_rng *rng, size_t *out) {
    if (4 * k <= n) {
        for (size_t i = 0; i < k; i++) {
            size_t r;
            int again;
            do {
                r = (size_t)icl_rng_below(rng, n);
                again = 0;
                for (size_t j = 0; j < i; j++)
                    if (out[j] == r) again = 1;
            } while (again);
            out[i] = r;
        }
        return 0;
    }
    size_t *idx = malloc(n * sizeof *idx);
    if (!idx) return -1;
    for (size_t i = 0; i < n; i++) idx[i] = i;
    for (size_t i = 0; i < k; i++) {
        size_t j = i + (size_t)icl_rng_below(rng, n - i), t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        out[i] = idx[i];
    }
    free(idx);
    return 0;
}

typedef struct {
    const icl_toktask *task;
    const icl_tokex **ex; /* usable training examples */
    size_t n;
} pool;

static int build_inner(icl_lmcorpus *c, const icl_lmcorpus_opts *o, sset *test_pairs, sset *test_inputs, pool *pools,
                       textdocs *td, sbuf *eps, pdocs *pd, icl_template *tp, icl_err *err) {
    /* the concepts and their test sets */
    sbuf key = {0};
    int k = 0, rc = 0;
    for (int t = 0; t < o->n_tasks && !rc; t++) {
        const icl_toktask *tk = o->tasks[t];
        for (size_t i = 0; i < tk->n_ex && !rc; i++) {
            const icl_tokex *e = &tk->ex[i];
            if (e->split != ICL_SPLIT_TEST) continue;
            if (pair_key(&key, e) || sset_add(test_pairs, key.p, key.n) || sset_add(test_inputs, e->input, strlen(e->input)))
                rc = icl_errf(err, "out of memory");
        }
        for (int j = 0; j < tk->n_concepts && !rc; j++, k++) {
            size_t len = strlen(tk->family) + strlen(tk->concepts[j]) + 2;
            if (!(c->concept_names[k] = malloc(len))) {
                rc = icl_errf(err, "out of memory");
                break;
            }
            snprintf(c->concept_names[k], len, "%s:%s", tk->family, tk->concepts[j]);
        }
    }
    k = 0;
    for (int t = 0; t < o->n_tasks && !rc; t++) {
        const icl_toktask *tk = o->tasks[t];
        for (int j = 0; j < tk->n_concepts && !rc; j++, k++) {
            size_t first = tk->first[2 * j + ICL_SPLIT_TRAIN], cnt = tk->count[2 * j + ICL_SPLIT_TRAIN];
            pools[k].task = tk;
            pools[k].ex = malloc((cnt ? cnt : 1) * sizeof *pools[k].ex);
            if (!pools[k].ex) {
                rc = icl_errf(err, "out of memory");
                break;
            }
            for (size_t i = 0; i < cnt; i++) {
                const icl_tokex *e = &tk->ex[first + i];
                if (pair_key(&key, e)) {
                    rc = icl_errf(err, "out of memory");
                    break;
                }
                if (sset_has(test_pairs, key.p, key.n)) c->excluded_train_pairs++;
                else pools[k].ex[pools[k].n++] = e;
            }
            c->train_usable[k] = pools[k].n;
        }
    }
    free(key.p);
    if (rc || parse_shares(c, o, err)) return -1;
    /* budgets */
    size_t text_budget, ep_budget;
    int by_docs = o->target_bytes == 0;
    size_t target = by_docs ? o->target_docs : o->target_bytes;
    text_budget = (size_t)llround(o->text_share * (double)target);
    if (text_budget > target) text_budget = target;
    ep_budget = target - text_budget;
    double wsum = 0;
    for (int j = 0; j < c->n_concepts; j++) wsum += c->weights[j];
    if (ep_budget > 0 && o->n_tasks == 0) return icl_errf(err, "no task families for the episodes (or a text share of 1)");
    if (ep_budget > 0 && !(wsum > 0)) return icl_errf(err, "every concept has weight 0, yet episodes are asked for");
    for (int j = 0; j < c->n_concepts && ep_budget > 0; j++)
        if (c->weights[j] > 0 && c->train_usable[j] == 0)
            return icl_errf(err, "concept %s has no usable training examples", c->concept_names[j]);
    /* running text */
    if (text_budget > 0) {
        if (!o->brown_dir) return icl_errf(err, "no Brown corpus directory for the running text");
        if (read_brown(c, td, test_inputs, o->brown_dir, o->text_doc_bytes, err)) return -1;
        if (td->n_doc == 0) return icl_errf(err, "%s: no running text left (empty text)", o->brown_dir);
        icl_rng rng;
        icl_rng_seed_stream(&rng, o->seed, 0);
        size_t *order = malloc(td->n_doc * sizeof *order), at = td->n_doc;
        if (!order) return icl_errf(err, "out of memory");
        size_t got = 0;
        while (got < text_budget) {
            if (at == td->n_doc) {
                shuffle_idx(order, td->n_doc, &rng);
                at = 0;
                c->text_passes++;
            }
            span s = td->doc[order[at++]];
            pdoc d = {ICL_LMDOC_TEXT, -1, 0, 0, s.off, s.len};
            if (pd_push(pd, d)) {
                free(order);
                return icl_errf(err, "out of memory");
            }
            c->text_docs++;
            c->text_bytes += s.len;
            got += by_docs ? 1 : s.len;
        }
        free(order);
    }
    /* episodes */
    icl_rng rng;
    icl_rng_seed_stream(&rng, o->seed, 1);
    const icl_tokex *demos[257];
    size_t pick[257];
    size_t got = 0;
    while (got < ep_budget) {
        double u = icl_rng_uniform(&rng) * wsum, acc = 0;
        int cc = -1;
        for (int j = 0; j < c->n_concepts; j++) {
            if (c->weights[j] <= 0) continue;
            acc += c->weights[j];
            cc = j;
            if (u < acc) break;
        }
        pool *pl = &pools[cc];
        int shots = o->min_shots + (int)icl_rng_below(&rng, (uint64_t)(o->max_shots - o->min_shots + 1));
        if ((size_t)shots + 1 > pl->n) shots = (int)pl->n - 1;
        int prompted = icl_rng_uniform(&rng) < o->prompting;
        if (draw_distinct(pl->n, (size_t)shots + 1, &rng, pick)) return icl_errf(err, "out of memory");
        for (int i = 0; i < shots; i++) demos[i] = pl->ex[pick[i + 1]];
        char *prompt, *answer;
        if (icl_prompt_build(pl->task, tp, prompted, demos, shots, pl->ex[pick[0]], &prompt, &answer, err)) return -1;
        size_t off = eps->n;
        int bad = sb_str(eps, prompt) || sb_str(eps, answer) || sb_str(eps, tp->post_y);
        free(prompt), free(answer);
        pdoc d = {ICL_LMDOC_EPISODE, cc, shots, prompted, off, eps->n - off};
        if (bad || pd_push(pd, d)) return icl_errf(err, "out of memory");
        c->episodes[cc]++;
        c->ep_bytes[cc] += d.len;
        c->episode_docs++;
        c->episode_bytes += d.len;
        got += by_docs ? 1 : d.len;
    }
    if (pd->n == 0) return icl_errf(err, "the corpus is empty");
    /* final order and assembly */
    size_t *order = malloc(pd->n * sizeof *order);
    c->docs = malloc(pd->n * sizeof *c->docs);
    if (!order || !c->docs) {
        free(order);
        return icl_errf(err, "out of memory");
    }
    icl_rng_seed_stream(&rng, o->seed, 2);
    shuffle_idx(order, pd->n, &rng);
    size_t eos = strlen(ICL_LMCORPUS_EOS), total = eos;
    for (size_t i = 0; i < pd->n; i++) total += pd->v[i].len + eos;
    c->text = malloc(total + 1);
    if (!c->text) {
        free(order);
        return icl_errf(err, "out of memory");
    }
    char *q = c->text;
    memcpy(q, ICL_LMCORPUS_EOS, eos);
    q += eos;
    for (size_t i = 0; i < pd->n; i++) {
        const pdoc *d = &pd->v[order[i]];
        const char *src = (d->kind == ICL_LMDOC_TEXT ? td->text.p : eps->p) + d->off;
        icl_lmdoc *out = &c->docs[i];
        out->off = (size_t)(q - c->text);
        out->len = d->len;
        out->kind = d->kind;
        out->concept = d->concept;
        out->shots = d->shots;
        out->prompted = d->prompted;
        memcpy(q, src, d->len);
        q += d->len;
        memcpy(q, ICL_LMCORPUS_EOS, eos);
        q += eos;
    }
    *q = 0;
    c->len = total;
    c->n_docs = pd->n;
    free(order);
    return 0;
}

int icl_lmcorpus_build(icl_lmcorpus *c, const icl_lmcorpus_opts *o, icl_err *err) {
    memset(c, 0, sizeof *c);
    if (!(o->text_share >= 0 && o->text_share <= 1)) return icl_errf(err, "text share %g is outside [0, 1]", o->text_share);
    if (!(o->prompting >= 0 && o->prompting <= 1)) return icl_errf(err, "prompting probability %g is outside [0, 1]", o->prompting);
    if (o->min_shots < 0 || o->max_shots < o->min_shots || o->max_shots > 256)
        return icl_errf(err, "shots %d..%d: need 0 <= min <= max <= 256", o->min_shots, o->max_shots);
    if (o->target_bytes == 0 && o->target_docs == 0) return icl_errf(err, "the corpus size is 0 (bytes and documents)");
    if (o->n_tasks < 0 || (o->n_tasks > 0 && !o->tasks)) return icl_errf(err, "bad task list");
    if (o->text_doc_bytes == 0) return icl_errf(err, "running-text document size is 0");
    icl_template tp;
    if (icl_template_parse(&tp, o->template_spec ? o->template_spec : ICL_TOKTASK_DEFAULT_TEMPLATE, err)) return -1;
    int n = 0;
    for (int t = 0; t < o->n_tasks; t++) n += o->tasks[t]->n_concepts;
    c->n_concepts = n;
    size_t m = (size_t)(n ? n : 1);
    c->concept_names = calloc(m, sizeof *c->concept_names);
    c->weights = calloc(m, sizeof *c->weights);
    c->episodes = calloc(m, sizeof *c->episodes);
    c->ep_bytes = calloc(m, sizeof *c->ep_bytes);
    c->train_usable = calloc(m, sizeof *c->train_usable);
    pool *pools = calloc(m, sizeof *pools);
    sset test_pairs = {0}, test_inputs = {0};
    textdocs td = {0};
    sbuf eps = {0};
    pdocs pd = {0};
    int rc;
    if (!c->concept_names || !c->weights || !c->episodes || !c->ep_bytes || !c->train_usable || !pools)
        rc = icl_errf(err, "out of memory");
    else
        rc = build_inner(c, o, &test_pairs, &test_inputs, pools, &td, &eps, &pd, &tp, err);
    for (size_t i = 0; pools && i < m; i++) free(pools[i].ex);
    free(pools);
    sset_free(&test_pairs);
    sset_free(&test_inputs);
    free(td.text.p), free(td.doc), free(eps.p), free(pd.v);
    icl_template_free(&tp);
    if (rc) icl_lmcorpus_free(c);
    return rc;
}

int icl_lmcorpus_write(const icl_lmcorpus *c, const char *text_path, const char *index_path, icl_err *err) {
    if (icl_write_file_atomic(text_path, c->text, c->len, err)) return -1;
    if (!index_path) return 0;
    icl_afile af;
    if (icl_afile_open(&af, index_path, err)) return -1;
    icl_afile_printf(&af, err, "offset\tbytes\tkind\tconcept\tshots\tprompted\n");
    for (size_t i = 0; i < c->n_docs && !af.failed; i++) {
        const icl_lmdoc *d = &c->docs[i];
        if (d->kind == ICL_LMDOC_TEXT)
            icl_afile_printf(&af, err, "%zu\t%zu\ttext\t-\t0\t0\n", d->off, d->len);
        else
            icl_afile_printf(&af, err, "%zu\t%zu\tepisode\t%s\t%d\t%d\n", d->off, d->len, c->concept_names[d->concept],
                             d->shots, d->prompted);
    }
    return icl_afile_commit(&af, err);
}
