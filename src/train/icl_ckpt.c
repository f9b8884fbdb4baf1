/* Checkpoints of the toy model in GGUF (see icl_ckpt.h). */
#include "iclab/icl_ckpt.h"
#include <dirent.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_gguf.h"

#define ARCH "iclab-regression"

/* ggml dims (innermost first) of one layer's slice of parameter i. */
static int param_dims(const icl_model *m, int i, int64_t ne[2]) {
    const icl_model_config *c = &m->cfg;
    int64_t C = c->n_embd, F = (int64_t)c->mlp_mult * C;
    switch (i) {
    case ICL_P_WIN: ne[0] = c->d_in; ne[1] = C; return 2;
    case ICL_P_WPE: ne[0] = C; ne[1] = c->n_ctx; return 2;
    case ICL_P_QKVW: ne[0] = C; ne[1] = 3 * C; return 2;
    case ICL_P_ATTW: ne[0] = C; ne[1] = C; return 2;
    case ICL_P_FCW: ne[0] = C; ne[1] = F; return 2;
    case ICL_P_PROJW: ne[0] = F; ne[1] = C; return 2;
    case ICL_P_WOUT: ne[0] = C; ne[1] = c->d_out; return 2;
    default: ne[0] = (int64_t)icl_model_param_layer_size(m, i); ne[1] = 1; return 1;
    }
}

static void tensor_name(char *buf, size_t n, const char *prefix, int i, int layer) {
    char base[128];
    if (icl_param_specs[i].per_layer) snprintf(base, sizeof base, icl_param_specs[i].name, layer);
    else snprintf(base, sizeof base, "%s", icl_param_specs[i].name);
    snprintf(buf, n, "%s%s", prefix, base);
}

/* Calls fn for every stored tensor: (name, pointer into the buffer, floats, dims). */
typedef int (*tensor_fn)(void *ctx, const char *name, float *data, size_t n, int ndim, const int64_t *ne, icl_err *err);
static int for_each_tensor(const icl_model *m, float *params, float *am, float *av, tensor_fn fn, void *ctx, icl_err *err) {
    static const char *prefix[3] = {"", "adam.m.", "adam.v."};
    float *bufs[3] = {params, am, av};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < ICL_NPARAMS; i++) {
            size_t per = icl_model_param_layer_size(m, i);
            int layers = icl_param_specs[i].per_layer ? m->cfg.n_layer : 1;
            size_t off = (size_t)(m->p[i] - m->params);
            for (int l = 0; l < layers; l++) {
                char name[160];
                int64_t ne[2];
                int nd = param_dims(m, i, ne);
                tensor_name(name, sizeof name, prefix[k], i, l);
                if (fn(ctx, name, bufs[k] + off + (size_t)l * per, per, nd, ne, err)) return -1;
            }
        }
    return 0;
}

/* FNV-1a over the three float buffers: catches corrupted tensor data, which the container cannot. */
static uint64_t state_checksum(const icl_model *m) {
    uint64_t h = 0xcbf29ce484222325ULL;
    const float *bufs[3] = {m->params, m->adam_m, m->adam_v};
    for (int k = 0; k < 3; k++) {
        const unsigned char *p = (const unsigned char *)bufs[k];
        size_t n = m->n_params * sizeof(float);
        for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    }
    return h;
}

static int add_tensor(void *ctx, const char *name, float *data, size_t n, int ndim, const int64_t *ne, icl_err *err) {
    (void)n;
    return icl_gguf_writer_add_tensor(ctx, name, ICL_GGML_F32, ndim, ne, data, err);
}

static int write_config(icl_gguf_writer *w, const icl_train_config *c, icl_err *err) {
    for (int i = 0; i < icl_train_n_fields; i++) {
        const icl_config_field *f = &icl_train_fields[i];
        const void *p = (const char *)c + f->offset;
        char key[128];
        snprintf(key, sizeof key, "iclab.%s", f->key);
        int r = 0;
        switch (f->type) {
        case ICL_FIELD_INT: r = icl_gguf_writer_add_i32(w, key, *(const int *)p, err); break;
        case ICL_FIELD_I64: r = icl_gguf_writer_add_i64(w, key, *(const int64_t *)p, err); break;
        case ICL_FIELD_U64: r = icl_gguf_writer_add_u64(w, key, *(const uint64_t *)p, err); break;
        case ICL_FIELD_F32: r = icl_gguf_writer_add_f32(w, key, *(const float *)p, err); break;
        case ICL_FIELD_F64: r = icl_gguf_writer_add_f64(w, key, *(const double *)p, err); break;
        }
        if (r) return -1;
    }
    return 0;
}

int icl_ckpt_save(const char *path, const icl_model *m, const icl_train_config *c, const icl_ckpt_state *s, icl_err *err) {
    icl_gguf_writer *w;
    if (icl_gguf_writer_init(&w, err)) return -1;
    int r = icl_gguf_writer_add_str(w, "general.architecture", ARCH, err) ||
            icl_gguf_writer_add_str(w, "general.name", "iclab toy ICL regression model", err) ||
            icl_gguf_writer_add_i64(w, "iclab.step", s->step, err) ||
            icl_gguf_writer_add_i64(w, "iclab.adam_t", m->adam_t, err) ||
            icl_gguf_writer_add_arr(w, "iclab.rng_state", ICL_GGUF_UINT64, s->rng.s, 4, err) ||
            icl_gguf_writer_add_u64(w, "iclab.checksum", state_checksum(m), err) ||
            write_config(w, c, err) ||
            for_each_tensor(m, m->params, m->adam_m, m->adam_v, add_tensor, w, err) ||
            icl_gguf_writer_write(w, path, err);
    icl_gguf_writer_free(w);
    return r ? -1 : 0;
}

/* Keys added after the format's first release: absent from older checkpoints, they read as 0 (the
 * separate token layout, no curriculum, a dense one). */
static int added_later(const char *key) {
    static const char *const later[] = {"task.tokens", "train.dense_steps", "train.curriculum"};
    for (size_t i = 0; i < sizeof later / sizeof later[0]; i++)
        if (!strcmp(key, later[i])) return 1;
    return 0;
}

static int read_config(const icl_gguf *g, icl_train_config *c, icl_err *err) {
    memset(c, 0, sizeof *c);
    const char *arch;
    if (icl_gguf_get_str(g, "general.architecture", &arch, err)) return -1;
    if (strcmp(arch, ARCH)) return icl_errf(err, "not an iclab checkpoint (architecture '%s', expected '%s')", arch, ARCH);
    for (int i = 0; i < icl_train_n_fields; i++) {
        const icl_config_field *f = &icl_train_fields[i];
        void *p = (char *)c + f->offset;
        char key[128];
        snprintf(key, sizeof key, "iclab.%s", f->key);
        if (added_later(f->key) && icl_gguf_find_key(g, key) < 0) continue;
        int r = 0;
        switch (f->type) {
        case ICL_FIELD_INT: { int32_t v; r = icl_gguf_get_i32(g, key, &v, err); *(int *)p = v; break; }
        case ICL_FIELD_I64: r = icl_gguf_get_i64(g, key, (int64_t *)p, err); break;
        case ICL_FIELD_U64: r = icl_gguf_get_u64(g, key, (uint64_t *)p, err); break;
        case ICL_FIELD_F32: r = icl_gguf_get_f32(g, key, (float *)p, err); break;
        case ICL_FIELD_F64: r = icl_gguf_get_f64(g, key, (double *)p, err); break;
        }
        if (r) return -1;
    }
    return icl_train_config_validate(c, err);
}

int icl_ckpt_peek(const char *path, icl_train_config *c, int64_t *step, icl_err *err) {
    icl_gguf *g;
    if (icl_gguf_open(&g, path, err)) return icl_err_prefix(err, "%s: ", path);
    int r = read_config(g, c, err) || icl_gguf_get_i64(g, "iclab.step", step, err);
    icl_gguf_close(g);
    return r ? icl_err_prefix(err, "%s: ", path) : 0;
}

/* Tensor name of the file must be f32 with the dims the config gives it. */
static int tensor_ok(const icl_gguf *g, const char *name, size_t n, int ndim, const int64_t *ne,
                     const icl_gguf_tensor **out, icl_err *err) {
    const icl_gguf_tensor *t;
    if (icl_gguf_get_tensor(g, name, &t, err)) return -1;
    if (t->type != ICL_GGML_F32) return icl_errf(err, "tensor %s has type %s, expected f32", name, icl_quant_type_name(t->type));
    int shape_ok = t->n_dims == ndim && t->ne[0] == ne[0] && (ndim < 2 || t->ne[1] == ne[1]) && (size_t)t->n_elements == n;
    if (!shape_ok)
        return icl_errf(err, "tensor %s has shape [%lld, %lld], the config needs [%lld, %lld]", name, (long long)t->ne[0],
                        (long long)t->ne[1], (long long)ne[0], (long long)(ndim > 1 ? ne[1] : 1));
    *out = t;
    return 0;
}

static int load_tensor(void *ctx, const char *name, float *data, size_t n, int ndim, const int64_t *ne, icl_err *err) {
    const icl_gguf_tensor *t = NULL;
    if (tensor_ok(ctx, name, n, ndim, ne, &t, err)) return -1;
    memcpy(data, t->data, n * sizeof(float));
    return 0;
}

/* Every tensor the config implies is in the file with its type and shape, checked before the model
 * is allocated: a config claiming a huge model must not make a small file allocate it (fuzz_ckpt). */
static int check_tensors(const icl_gguf *g, const icl_model_config *mc, icl_err *err) {
    static const char *prefix[3] = {"", "adam.m.", "adam.v."};
    icl_model shell;
    memset(&shell, 0, sizeof shell);
    shell.cfg = *mc;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < ICL_NPARAMS; i++) {
            int layers = icl_param_specs[i].per_layer ? mc->n_layer : 1;
            for (int l = 0; l < layers; l++) {
                char name[160];
                int64_t ne[2];
                int nd = param_dims(&shell, i, ne);
                const icl_gguf_tensor *t;
                tensor_name(name, sizeof name, prefix[k], i, l);
                if (tensor_ok(g, name, icl_model_param_layer_size(&shell, i), nd, ne, &t, err)) return -1;
            }
        }
    return 0;
}

int icl_ckpt_load(const char *path, icl_model *m, icl_train_config *c, icl_ckpt_state *s, icl_err *err) {
    icl_gguf *g;
    memset(m, 0, sizeof *m);
    if (icl_gguf_open(&g, path, err)) return icl_err_prefix(err, "%s: ", path);
    icl_model_config mc;
    icl_gguf_arr rng;
    int64_t adam_t = 0;
    int r = read_config(g, c, err);
    if (!r) {
        icl_train_model_config(c, &mc);
        r = icl_gguf_get_i64(g, "iclab.step", &s->step, err) || icl_gguf_get_i64(g, "iclab.adam_t", &adam_t, err) ||
            icl_gguf_get_arr(g, "iclab.rng_state", &rng, err);
    }
    if (!r && (rng.type != ICL_GGUF_UINT64 || rng.n != 4)) r = icl_errf(err, "iclab.rng_state must be 4 uint64 values");
    if (!r && (s->step < 0 || adam_t < 0)) r = icl_errf(err, "negative step count");
    if (!r) r = check_tensors(g, &mc, err);
    if (!r) {
        size_t esz;
        memcpy(s->rng.s, icl_gguf_arr_raw(&rng, &esz), sizeof s->rng.s);
        r = icl_model_init(m, &mc, err);
    }
    if (!r) {
        m->adam_t = adam_t;
        uint64_t sum = 0;
        r = for_each_tensor(m, m->params, m->adam_m, m->adam_v, load_tensor, g, err) ||
            icl_gguf_get_u64(g, "iclab.checksum", &sum, err);
        if (!r && sum != state_checksum(m)) r = icl_errf(err, "checksum mismatch: the tensor data is corrupted");
        if (r) icl_model_free(m);
    }
    icl_gguf_close(g);
    return r ? icl_err_prefix(err, "%s: ", path) : 0;
}

void icl_ckpt_path(const char *run_dir, int64_t step, char *path, size_t n) {
    snprintf(path, n, "%s/checkpoints/step_%09" PRId64 ".gguf", run_dir, step);
}

int icl_ckpt_latest(const char *run_dir, char *path, size_t n, int64_t *step, icl_err *err) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
    DIR *d = opendir(dir);
    if (!d) return icl_errf(err, "%s has no checkpoints folder", run_dir);
    int64_t best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long v;
        char tail[8];
        if (sscanf(e->d_name, "step_%lld.%7s", &v, tail) == 2 && !strcmp(tail, "gguf") && v > best) best = v;
    }
    closedir(d);
    if (best < 0) return icl_errf(err, "%s has no checkpoints", run_dir);
    icl_ckpt_path(run_dir, best, path, n);
    *step = best;
    return 0;
}
