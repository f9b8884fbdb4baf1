/* GGUF reader (mmap, every field validated against the file size before use) and writer (in-memory
 * builder, atomic version-3 output). See icl_gguf.h for the layout. */
#include "iclab/icl_gguf.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "iclab/icl_file.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader reads little-endian fields with memcpy and needs a little-endian host"
#endif

typedef unsigned long long ull;

/* Bytes of a fixed-size value; 0 for string and array (and unknown types). */
static const uint8_t SCALAR_SIZE[ICL_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
static const char *const TYPE_NAMES[ICL_GGUF_TYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool",  "string", "array", "uint64", "int64", "float64"};

/* Far more than any real file holds; a larger count is corruption, and the cap keeps indexes in int. */
#define MAX_COUNT (1u << 24)

const char *icl_gguf_type_name(int type) {
    return type >= 0 && type < ICL_GGUF_TYPE_COUNT ? TYPE_NAMES[type] : "unknown";
}

static size_t scalar_size(uint32_t type) {
    return type < ICL_GGUF_TYPE_COUNT ? SCALAR_SIZE[type] : 0;
}

/* ================================================================== reader */

/* A parsed metadata value. Nothing is copied from the file except scalar strings (cstr). */
typedef struct gval {
    uint32_t type;
    uint32_t etype;        /* arrays: element type */
    uint64_t n;            /* arrays: element count; strings: byte count */
    const uint8_t *p;      /* scalars: the value; strings: the bytes; fixed-size arrays: element 0 */
    const uint8_t **strs;  /* string arrays: each element's u64 length field */
    struct gval *sub;      /* arrays of arrays: n children */
    char *cstr;            /* top-level strings: NUL-terminated copy */
} gval;

typedef struct {
    char *key;
    gval v;
    const uint8_t *raw; /* serialized value (after the type field) and its length, for copying */
    uint64_t raw_len;
} gkv;

struct icl_gguf {
    const uint8_t *base;
    uint64_t size;
    void *map; /* non-NULL when we mapped the file */
    size_t map_len;
    uint32_t version;
    uint64_t alignment, data_offset;
    int n_kv, n_tensors;
    gkv *kv;
    icl_gguf_tensor *t;
    int *kv_tab, *t_tab; /* open-addressing hash tables of indexes, -1 = empty */
    uint64_t kv_mask, t_mask;
};

typedef struct {
    const uint8_t *b;
    uint64_t size, pos;
    icl_err *err;
} rd;

static int need(rd *r, uint64_t n, const char *what) {
    if (n > r->size - r->pos)
        return icl_errf(r->err, "truncated: %s at offset %llu needs %llu bytes but only %llu remain", what,
                        (ull)r->pos, (ull)n, (ull)(r->size - r->pos));
    return 0;
}

static int rd_u32(rd *r, uint32_t *v, const char *what) {
    if (need(r, 4, what)) return -1;
    memcpy(v, r->b + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int rd_u64(rd *r, uint64_t *v, const char *what) {
    if (need(r, 8, what)) return -1;
    memcpy(v, r->b + r->pos, 8);
    r->pos += 8;
    return 0;
}

/* Reads a key or tensor name: non-empty, no control bytes (so messages stay one line), copied. */
static int rd_name(rd *r, char **out, const char *what) {
    uint64_t len;
    if (rd_u64(r, &len, what)) return -1;
    if (len == 0) return icl_errf(r->err, "%s at offset %llu is empty", what, (ull)(r->pos - 8));
    if (len > r->size - r->pos)
        return icl_errf(r->err, "%s at offset %llu: length %llu runs past the end of the file (%llu bytes left)", what,
                        (ull)(r->pos - 8), (ull)len, (ull)(r->size - r->pos));
    if (len > 65535) return icl_errf(r->err, "%s at offset %llu is %llu bytes long (max 65535)", what, (ull)(r->pos - 8), (ull)len);
    const uint8_t *s = r->b + r->pos;
    for (uint64_t i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] == 0x7f)
            return icl_errf(r->err, "%s at offset %llu contains control byte 0x%02x", what, (ull)(r->pos - 8), s[i]);
    char *c = malloc(len + 1);
    if (!c) return icl_errf(r->err, "out of memory");
    memcpy(c, s, len);
    c[len] = 0;
    r->pos += len;
    *out = c;
    return 0;
}

static void free_val(gval *v) {
    if (v->sub) {
        for (uint64_t i = 0; i < v->n; i++) free_val(&v->sub[i]);
        free(v->sub);
    }
    free(v->strs);
    free(v->cstr);
    memset(v, 0, sizeof *v);
}

/* Parses one value of `type` at the cursor; ctx names it in messages ("key 'x'"). */
static int parse_value(rd *r, gval *v, uint32_t type, int depth, const char *ctx) {
    memset(v, 0, sizeof *v);
    v->type = type;
    if (type >= ICL_GGUF_TYPE_COUNT) return icl_errf(r->err, "%s: unknown value type %u", ctx, type);
    if (type == ICL_GGUF_STRING) {
        uint64_t len;
        if (rd_u64(r, &len, ctx)) return -1;
        if (len > r->size - r->pos)
            return icl_errf(r->err, "%s: string length %llu at offset %llu runs past the end of the file (%llu bytes left)",
                            ctx, (ull)len, (ull)(r->pos - 8), (ull)(r->size - r->pos));
        v->n = len;
        v->p = r->b + r->pos;
        r->pos += len;
        return 0;
    }
    if (type != ICL_GGUF_ARRAY) {
        if (need(r, scalar_size(type), ctx)) return -1;
        v->p = r->b + r->pos;
        r->pos += scalar_size(type);
        return 0;
    }
    if (depth >= ICL_GGUF_MAX_NESTING)
        return icl_errf(r->err, "%s: arrays nested more than %d deep", ctx, ICL_GGUF_MAX_NESTING);
    uint32_t et;
    uint64_t n;
    if (rd_u32(r, &et, ctx) || rd_u64(r, &n, ctx)) return -1;
    if (et >= ICL_GGUF_TYPE_COUNT) return icl_errf(r->err, "%s: array of unknown element type %u", ctx, et);
    v->etype = et;
    uint64_t left = r->size - r->pos;
    /* Each element takes at least this many bytes, which bounds the count before any allocation. */
    uint64_t min_elem = et == ICL_GGUF_STRING ? 8 : et == ICL_GGUF_ARRAY ? 12 : scalar_size(et);
    if (n > left / min_elem)
        return icl_errf(r->err, "%s: array of %llu %s elements at offset %llu cannot fit in the %llu bytes left", ctx,
                        (ull)n, TYPE_NAMES[et], (ull)(r->pos - 12), (ull)left);
    if (et == ICL_GGUF_STRING) {
        if (n) {
            v->strs = malloc(n * sizeof *v->strs);
            if (!v->strs) return icl_errf(r->err, "%s: out of memory for %llu strings", ctx, (ull)n);
        }
        v->n = n;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t len;
            v->strs[i] = r->b + r->pos;
            if (rd_u64(r, &len, ctx)) return -1;
            if (len > r->size - r->pos)
                return icl_errf(r->err, "%s: string %llu of %llu has length %llu, past the end of the file (%llu bytes left)",
                                ctx, (ull)i, (ull)n, (ull)len, (ull)(r->size - r->pos));
            r->pos += len;
        }
    } else if (et == ICL_GGUF_ARRAY) {
        if (n) {
            v->sub = calloc(n, sizeof *v->sub);
            if (!v->sub) return icl_errf(r->err, "%s: out of memory for %llu nested arrays", ctx, (ull)n);
        }
        v->n = n;
        for (uint64_t i = 0; i < n; i++)
            if (parse_value(r, &v->sub[i], ICL_GGUF_ARRAY, depth + 1, ctx)) return -1;
    } else {
        v->n = n;
        v->p = r->b + r->pos;
        r->pos += n * min_elem;
    }
    return 0;
}

/* ---- name hash tables ---- */

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static const char *kv_name(const icl_gguf *g, int i) { return g->kv[i].key; }
static const char *t_name(const icl_gguf *g, int i) { return g->t[i].name; }

/* Builds a table for n names; on a duplicate sets *dup to its index and returns 1; -1 on OOM. */
static int tab_build(const icl_gguf *g, int n, const char *(*name)(const icl_gguf *, int), int **tab, uint64_t *mask,
                     int *dup) {
    uint64_t cap = 8;
    while (cap < 2 * (uint64_t)n) cap *= 2;
    int *t = malloc(cap * sizeof *t);
    if (!t) return -1;
    for (uint64_t i = 0; i < cap; i++) t[i] = -1;
    *tab = t;
    *mask = cap - 1;
    for (int i = 0; i < n; i++) {
        const char *s = name(g, i);
        uint64_t h = fnv1a(s) & *mask;
        while (t[h] >= 0) {
            if (strcmp(name(g, t[h]), s) == 0) {
                *dup = i;
                return 1;
            }
            h = (h + 1) & *mask;
        }
        t[h] = i;
    }
    return 0;
}

static int tab_find(const icl_gguf *g, const int *tab, uint64_t mask, const char *(*name)(const icl_gguf *, int),
                    const char *s) {
    if (!tab || !s) return -1;
    uint64_t h = fnv1a(s) & mask;
    while (tab[h] >= 0) {
        if (strcmp(name(g, tab[h]), s) == 0) return tab[h];
        h = (h + 1) & mask;
    }
    return -1;
}

/* ---- opening ---- */

static int cmp_offset(const void *a, const void *b, void *ctx) {
    const icl_gguf_tensor *t = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    if (t[i].offset != t[j].offset) return t[i].offset < t[j].offset ? -1 : 1;
    return i < j ? -1 : i > j;
}

static int get_int_val(const gval *v, int64_t *out);

static int parse(icl_gguf *g, icl_err *err) {
    rd r = {g->base, g->size, 0, err};
    if (g->size < 4 || memcmp(g->base, "GGUF", 4) != 0) {
        if (g->size < 4) return icl_errf(err, "not a GGUF file: only %llu bytes", (ull)g->size);
        return icl_errf(err, "not a GGUF file: bad magic %02x %02x %02x %02x (want 'GGUF')", g->base[0], g->base[1],
                        g->base[2], g->base[3]);
    }
    r.pos = 4;
    uint32_t ver;
    if (rd_u32(&r, &ver, "version")) return -1;
    if (ver == 1) return icl_errf(err, "GGUF version 1 is not supported (only versions 2 and 3)");
    if (ver != 2 && ver != 3) {
        if ((ver & 0xffff) == 0 && (__builtin_bswap32(ver) == 2 || __builtin_bswap32(ver) == 3))
            return icl_errf(err, "big-endian GGUF file (version field 0x%08x): only little-endian files are supported", ver);
        return icl_errf(err, "unsupported GGUF version %u (only versions 2 and 3)", ver);
    }
    g->version = ver;
    uint64_t nt, nkv;
    if (rd_u64(&r, &nt, "tensor count") || rd_u64(&r, &nkv, "metadata count")) return -1;
    uint64_t left = g->size - r.pos;
    /* Smallest possible entries: a kv is 8 (key length) + 1 + 4 (type) + 1 bytes; a tensor info
     * 8 + 1 + 4 (n_dims) + 4 (type) + 8 (offset). */
    if (nkv > left / 14 || nkv > MAX_COUNT)
        return icl_errf(err, "metadata count %llu is impossible for a %llu-byte file", (ull)nkv, (ull)g->size);
    if (nt > left / 25 || nt > MAX_COUNT)
        return icl_errf(err, "tensor count %llu is impossible for a %llu-byte file", (ull)nt, (ull)g->size);

    if (nkv) {
        g->kv = calloc(nkv, sizeof *g->kv);
        if (!g->kv) return icl_errf(err, "out of memory for %llu metadata entries", (ull)nkv);
    }
    char what[96], ctx[160];
    for (uint64_t i = 0; i < nkv; i++) {
        gkv *kv = &g->kv[i];
        snprintf(what, sizeof what, "key of metadata entry %llu", (ull)i);
        if (rd_name(&r, &kv->key, what)) return -1;
        g->n_kv = (int)i + 1; /* key owned from here on, freed by close */
        snprintf(ctx, sizeof ctx, "key '%.120s'", kv->key);
        uint32_t type;
        if (rd_u32(&r, &type, ctx)) return -1;
        kv->raw = g->base + r.pos;
        if (parse_value(&r, &kv->v, type, 0, ctx)) return -1;
        kv->raw_len = (uint64_t)(g->base + r.pos - kv->raw);
        if (type == ICL_GGUF_STRING) {
            kv->v.cstr = malloc(kv->v.n + 1);
            if (!kv->v.cstr) return icl_errf(err, "%s: out of memory", ctx);
            memcpy(kv->v.cstr, kv->v.p, kv->v.n);
            kv->v.cstr[kv->v.n] = 0;
        }
    }
    int dup = -1;
    int rc = tab_build(g, g->n_kv, kv_name, &g->kv_tab, &g->kv_mask, &dup);
    if (rc < 0) return icl_errf(err, "out of memory");
    if (rc > 0) return icl_errf(err, "duplicate metadata key '%.200s'", g->kv[dup].key);

    g->alignment = ICL_GGUF_DEFAULT_ALIGNMENT;
    int ai = icl_gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        int64_t a;
        if (get_int_val(&g->kv[ai].v, &a))
            return icl_errf(err, "general.alignment has type %s, expected an integer", icl_gguf_type_name((int)g->kv[ai].v.type));
        if (a <= 0 || a > (1 << 30) || (a & (a - 1)))
            return icl_errf(err, "general.alignment = %lld is not a power of two in 1..2^30", (long long)a);
        g->alignment = (uint64_t)a;
    }

    if (nt) {
        g->t = calloc(nt, sizeof *g->t);
        if (!g->t) return icl_errf(err, "out of memory for %llu tensors", (ull)nt);
    }
    for (uint64_t i = 0; i < nt; i++) {
        icl_gguf_tensor *t = &g->t[i];
        char *name;
        snprintf(what, sizeof what, "name of tensor %llu", (ull)i);
        if (rd_name(&r, &name, what)) return -1;
        t->name = name;
        g->n_tensors = (int)i + 1;
        snprintf(ctx, sizeof ctx, "tensor '%.120s'", name);
        uint32_t nd, type;
        if (rd_u32(&r, &nd, ctx)) return -1;
        if (nd > ICL_GGUF_MAX_DIMS) return icl_errf(err, "%s has %u dimensions (at most %d)", ctx, nd, ICL_GGUF_MAX_DIMS);
        t->n_dims = (int)nd;
        for (int d = 0; d < ICL_GGUF_MAX_DIMS; d++) {
            uint64_t ne = 1;
            if ((uint32_t)d < nd && rd_u64(&r, &ne, ctx)) return -1;
            if (ne > (uint64_t)INT64_MAX) return icl_errf(err, "%s: dimension %d size %llu is too large", ctx, d, (ull)ne);
            t->ne[d] = (int64_t)ne;
        }
        if (rd_u32(&r, &type, ctx) || rd_u64(&r, &t->offset, ctx)) return -1;
        if (type > INT_MAX || !icl_quant_type_known((int)type)) return icl_errf(err, "%s has unknown ggml type %u", ctx, type);
        t->type = (int)type;
        int64_t ne_all = 1, rows = 1;
        for (int d = 0; d < ICL_GGUF_MAX_DIMS; d++)
            if (__builtin_mul_overflow(ne_all, t->ne[d], &ne_all))
                return icl_errf(err, "%s: element count %lld x %lld x %lld x %lld overflows", ctx, (long long)t->ne[0],
                                (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3]);
        rows = t->ne[0] ? ne_all / t->ne[0] : 0;
        t->n_elements = ne_all;
        uint64_t row_bytes;
        if (icl_quant_row_bytes(t->type, t->ne[0], &row_bytes, err)) return icl_err_prefix(err, "%s: ", ctx);
        if (__builtin_mul_overflow(row_bytes, (uint64_t)rows, &t->n_bytes))
            return icl_errf(err, "%s: byte size overflows", ctx);
    }

    /* Data section: after the tensor infos, padded to the alignment. */
    uint64_t pad = (g->alignment - r.pos % g->alignment) % g->alignment;
    g->data_offset = r.pos + pad;
    if (nt && g->data_offset > g->size)
        return icl_errf(err, "data section would start at offset %llu, past the end of the file (%llu bytes)",
                        (ull)g->data_offset, (ull)g->size);
    uint64_t data_len = g->data_offset <= g->size ? g->size - g->data_offset : 0;
    for (int i = 0; i < g->n_tensors; i++) {
        icl_gguf_tensor *t = &g->t[i];
        if (t->offset % g->alignment)
            return icl_errf(err, "tensor '%.120s': offset %llu is not a multiple of the alignment %llu", t->name,
                            (ull)t->offset, (ull)g->alignment);
        if (t->offset > data_len || t->n_bytes > data_len - t->offset)
            return icl_errf(err, "tensor '%.120s': %llu bytes at data offset %llu run past the end of the file (data section holds %llu bytes)",
                            t->name, (ull)t->n_bytes, (ull)t->offset, (ull)data_len);
        t->data = g->base + g->data_offset + t->offset;
    }
    rc = tab_build(g, g->n_tensors, t_name, &g->t_tab, &g->t_mask, &dup);
    if (rc < 0) return icl_errf(err, "out of memory");
    if (rc > 0) return icl_errf(err, "duplicate tensor name '%.200s'", g->t[dup].name);
    if (g->n_tensors > 1) {
        int *ord = malloc((size_t)g->n_tensors * sizeof *ord);
        if (!ord) return icl_errf(err, "out of memory");
        for (int i = 0; i < g->n_tensors; i++) ord[i] = i;
        qsort_r(ord, (size_t)g->n_tensors, sizeof *ord, cmp_offset, g->t);
        int prev = -1;
        for (int k = 0; k < g->n_tensors; k++) {
            const icl_gguf_tensor *t = &g->t[ord[k]];
            if (t->n_bytes == 0) continue;
            if (prev >= 0) {
                const icl_gguf_tensor *p = &g->t[prev];
                if (p->offset + p->n_bytes > t->offset) {
                    icl_errf(err, "tensors '%.100s' (data offset %llu, %llu bytes) and '%.100s' (data offset %llu) overlap",
                             p->name, (ull)p->offset, (ull)p->n_bytes, t->name, (ull)t->offset);
                    free(ord);
                    return -1;
                }
            }
            prev = ord[k];
        }
        free(ord);
    }
    return 0;
}

void icl_gguf_close(icl_gguf *g) {
    if (!g) return;
    for (int i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        free_val(&g->kv[i].v);
    }
    free(g->kv);
    for (int i = 0; i < g->n_tensors; i++) free((char *)g->t[i].name);
    free(g->t);
    free(g->kv_tab);
    free(g->t_tab);
    if (g->map) munmap(g->map, g->map_len);
    free(g);
}

int icl_gguf_open_memory(icl_gguf **out, const void *data, size_t size, icl_err *err) {
    *out = NULL;
    icl_gguf *g = calloc(1, sizeof *g);
    if (!g) return icl_errf(err, "out of memory");
    g->base = data;
    g->size = size;
    if (!data && size) {
        free(g);
        return icl_errf(err, "NULL buffer");
    }
    if (parse(g, err)) {
        icl_gguf_close(g);
        return -1;
    }
    *out = g;
    return 0;
}

int icl_gguf_open(icl_gguf **out, const char *path, icl_err *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return icl_errf(err, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return icl_errf(err, "cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return icl_errf(err, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return icl_errf(err, "%s: not a GGUF file: the file is empty", path);
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) return icl_errf(err, "cannot map %s: %s", path, strerror(e));
    icl_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        munmap(m, (size_t)st.st_size);
        return icl_errf(err, "out of memory");
    }
    g->map = m;
    g->map_len = (size_t)st.st_size;
    g->base = m;
    g->size = (uint64_t)st.st_size;
    if (parse(g, err)) {
        icl_gguf_close(g);
        return icl_err_prefix(err, "%s: ", path);
    }
    *out = g;
    return 0;
}

uint32_t icl_gguf_version(const icl_gguf *g) { return g->version; }
uint64_t icl_gguf_alignment(const icl_gguf *g) { return g->alignment; }
uint64_t icl_gguf_data_offset(const icl_gguf *g) { return g->data_offset; }
uint64_t icl_gguf_file_size(const icl_gguf *g) { return g->size; }

/* ---- metadata access ---- */

int icl_gguf_n_kv(const icl_gguf *g) { return g->n_kv; }

int icl_gguf_find_key(const icl_gguf *g, const char *key) {
    return tab_find(g, g->kv_tab, g->kv_mask, kv_name, key);
}

const char *icl_gguf_kv_key(const icl_gguf *g, int i) {
    return i >= 0 && i < g->n_kv ? g->kv[i].key : NULL;
}

int icl_gguf_kv_type(const icl_gguf *g, int i) {
    return i >= 0 && i < g->n_kv ? (int)g->kv[i].v.type : -1;
}

/* Integer (or bool) element at p as int64; -1 if the type is not integral or a u64 is too big. */
static int int_at(const uint8_t *p, uint32_t type, int64_t *out) {
    switch (type) {
    case ICL_GGUF_UINT8: case ICL_GGUF_BOOL: *out = p[0]; return 0;
    case ICL_GGUF_INT8: *out = (int8_t)p[0]; return 0;
    case ICL_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); *out = v; return 0; }
    case ICL_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); *out = v; return 0; }
    case ICL_GGUF_UINT32: { uint32_t v; memcpy(&v, p, 4); *out = v; return 0; }
    case ICL_GGUF_INT32: { int32_t v; memcpy(&v, p, 4); *out = v; return 0; }
    case ICL_GGUF_UINT64: {
        uint64_t v;
        memcpy(&v, p, 8);
        if (v > (uint64_t)INT64_MAX) return -1;
        *out = (int64_t)v;
        return 0;
    }
    case ICL_GGUF_INT64: { int64_t v; memcpy(&v, p, 8); *out = v; return 0; }
    default: return -1;
    }
}

static int num_at(const uint8_t *p, uint32_t type, double *out) {
    if (type == ICL_GGUF_FLOAT32) {
        float v;
        memcpy(&v, p, 4);
        *out = v;
        return 0;
    }
    if (type == ICL_GGUF_FLOAT64) {
        memcpy(out, p, 8);
        return 0;
    }
    if (type == ICL_GGUF_UINT64) {
        uint64_t v;
        memcpy(&v, p, 8);
        *out = (double)v;
        return 0;
    }
    int64_t i;
    if (int_at(p, type, &i)) return -1;
    *out = (double)i;
    return 0;
}

static int get_int_val(const gval *v, int64_t *out) {
    return scalar_size(v->type) && v->type != ICL_GGUF_FLOAT32 && v->type != ICL_GGUF_FLOAT64 ? int_at(v->p, v->type, out)
                                                                                                : -1;
}

static const gval *lookup(const icl_gguf *g, const char *key, icl_err *err) {
    int i = icl_gguf_find_key(g, key);
    if (i < 0) {
        icl_errf(err, "key '%s' not found", key ? key : "(null)");
        return NULL;
    }
    return &g->kv[i].v;
}

static const gval *lookup_typed(const icl_gguf *g, const char *key, uint32_t type, icl_err *err) {
    const gval *v = lookup(g, key, err);
    if (v && v->type != type) {
        icl_errf(err, "key '%s' has type %s, expected %s", key, TYPE_NAMES[v->type], TYPE_NAMES[type]);
        return NULL;
    }
    return v;
}

#define SCALAR_GETTER(fn, ctype, gtype)                                              \
    int fn(const icl_gguf *g, const char *key, ctype *out, icl_err *err) {           \
        const gval *v = lookup_typed(g, key, gtype, err);                            \
        if (!v) return -1;                                                           \
        memcpy(out, v->p, sizeof *out);                                              \
        return 0;                                                                    \
    }
SCALAR_GETTER(icl_gguf_get_u8, uint8_t, ICL_GGUF_UINT8)
SCALAR_GETTER(icl_gguf_get_i8, int8_t, ICL_GGUF_INT8)
SCALAR_GETTER(icl_gguf_get_u16, uint16_t, ICL_GGUF_UINT16)
SCALAR_GETTER(icl_gguf_get_i16, int16_t, ICL_GGUF_INT16)
SCALAR_GETTER(icl_gguf_get_u32, uint32_t, ICL_GGUF_UINT32)
SCALAR_GETTER(icl_gguf_get_i32, int32_t, ICL_GGUF_INT32)
SCALAR_GETTER(icl_gguf_get_u64, uint64_t, ICL_GGUF_UINT64)
SCALAR_GETTER(icl_gguf_get_i64, int64_t, ICL_GGUF_INT64)
SCALAR_GETTER(icl_gguf_get_f32, float, ICL_GGUF_FLOAT32)
SCALAR_GETTER(icl_gguf_get_f64, double, ICL_GGUF_FLOAT64)

int icl_gguf_get_bool(const icl_gguf *g, const char *key, int *out, icl_err *err) {
    const gval *v = lookup_typed(g, key, ICL_GGUF_BOOL, err);
    if (!v) return -1;
    *out = v->p[0] != 0;
    return 0;
}

int icl_gguf_get_strn(const icl_gguf *g, const char *key, const char **out, uint64_t *len, icl_err *err) {
    const gval *v = lookup_typed(g, key, ICL_GGUF_STRING, err);
    if (!v) return -1;
    *out = v->cstr;
    if (len) *len = v->n;
    return 0;
}

int icl_gguf_get_str(const icl_gguf *g, const char *key, const char **out, icl_err *err) {
    return icl_gguf_get_strn(g, key, out, NULL, err);
}

int icl_gguf_get_int(const icl_gguf *g, const char *key, int64_t *out, icl_err *err) {
    const gval *v = lookup(g, key, err);
    if (!v) return -1;
    if (v->type == ICL_GGUF_UINT64 && get_int_val(v, out))
        return icl_errf(err, "key '%s': uint64 value does not fit in int64", key);
    if (get_int_val(v, out)) return icl_errf(err, "key '%s' has type %s, expected an integer", key, TYPE_NAMES[v->type]);
    return 0;
}

int icl_gguf_get_num(const icl_gguf *g, const char *key, double *out, icl_err *err) {
    const gval *v = lookup(g, key, err);
    if (!v) return -1;
    if (!scalar_size(v->type) || num_at(v->p, v->type, out))
        return icl_errf(err, "key '%s' has type %s, expected a number", key, TYPE_NAMES[v->type]);
    return 0;
}

/* ---- arrays ---- */

static void arr_view(const gval *v, icl_gguf_arr *out) {
    out->type = (int)v->etype;
    out->n = v->n;
    out->impl = v;
}

int icl_gguf_get_arr(const icl_gguf *g, const char *key, icl_gguf_arr *out, icl_err *err) {
    const gval *v = lookup_typed(g, key, ICL_GGUF_ARRAY, err);
    if (!v) return -1;
    arr_view(v, out);
    return 0;
}

int icl_gguf_arr_int(const icl_gguf_arr *a, uint64_t i, int64_t *out, icl_err *err) {
    const gval *v = a->impl;
    if (i >= v->n) return icl_errf(err, "array index %llu out of range (%llu elements)", (ull)i, (ull)v->n);
    if (v->etype == ICL_GGUF_FLOAT32 || v->etype == ICL_GGUF_FLOAT64 || !scalar_size(v->etype))
        return icl_errf(err, "array of %s is not an integer array", TYPE_NAMES[v->etype]);
    if (int_at(v->p + i * scalar_size(v->etype), v->etype, out))
        return icl_errf(err, "array element %llu: uint64 value does not fit in int64", (ull)i);
    return 0;
}

int icl_gguf_arr_num(const icl_gguf_arr *a, uint64_t i, double *out, icl_err *err) {
    const gval *v = a->impl;
    if (i >= v->n) return icl_errf(err, "array index %llu out of range (%llu elements)", (ull)i, (ull)v->n);
    if (!scalar_size(v->etype)) return icl_errf(err, "array of %s is not a numeric array", TYPE_NAMES[v->etype]);
    return num_at(v->p + i * scalar_size(v->etype), v->etype, out);
}

const char *icl_gguf_arr_str(const icl_gguf_arr *a, uint64_t i, uint64_t *len) {
    const gval *v = a->impl;
    if (v->etype != ICL_GGUF_STRING || i >= v->n) return NULL;
    uint64_t l;
    memcpy(&l, v->strs[i], 8);
    if (len) *len = l;
    return (const char *)v->strs[i] + 8;
}

int icl_gguf_arr_sub(const icl_gguf_arr *a, uint64_t i, icl_gguf_arr *out, icl_err *err) {
    const gval *v = a->impl;
    if (v->etype != ICL_GGUF_ARRAY) return icl_errf(err, "array of %s is not an array of arrays", TYPE_NAMES[v->etype]);
    if (i >= v->n) return icl_errf(err, "array index %llu out of range (%llu elements)", (ull)i, (ull)v->n);
    arr_view(&v->sub[i], out);
    return 0;
}

int icl_gguf_arr_to_f32(const icl_gguf_arr *a, float *dst, icl_err *err) {
    const gval *v = a->impl;
    size_t es = scalar_size(v->etype);
    if (!es) return icl_errf(err, "array of %s is not a numeric array", TYPE_NAMES[v->etype]);
    if (v->etype == ICL_GGUF_FLOAT32) {
        memcpy(dst, v->p, v->n * 4);
        return 0;
    }
    for (uint64_t i = 0; i < v->n; i++) {
        double d = 0;
        num_at(v->p + i * es, v->etype, &d);
        dst[i] = (float)d;
    }
    return 0;
}

int icl_gguf_arr_to_i32(const icl_gguf_arr *a, int32_t *dst, icl_err *err) {
    const gval *v = a->impl;
    for (uint64_t i = 0; i < v->n; i++) {
        int64_t x = 0;
        if (icl_gguf_arr_int(a, i, &x, err)) return -1;
        if (x < INT32_MIN || x > INT32_MAX) return icl_errf(err, "array element %llu = %lld does not fit in int32", (ull)i, (long long)x);
        dst[i] = (int32_t)x;
    }
    return 0;
}

const void *icl_gguf_arr_raw(const icl_gguf_arr *a, size_t *elem_size) {
    const gval *v = a->impl;
    size_t es = scalar_size(v->etype);
    if (elem_size) *elem_size = es;
    return es ? v->p : NULL;
}

/* ---- formatting ---- */

typedef struct {
    char *b;
    size_t n, len;
} sbuf;

static void sb_printf(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *s, const char *fmt, ...) {
    if (s->len + 1 >= s->n) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(s->b + s->len, s->n - s->len, fmt, ap);
    va_end(ap);
    if (k > 0) s->len = s->len + (size_t)k < s->n ? s->len + (size_t)k : s->n - 1;
}

static void sb_quoted(sbuf *s, const uint8_t *p, uint64_t n, uint64_t max) {
    sb_printf(s, "\"");
    for (uint64_t i = 0; i < n && i < max; i++) {
        if (p[i] == '"' || p[i] == '\\') sb_printf(s, "\\%c", p[i]);
        else if (p[i] < 0x20 || p[i] == 0x7f) sb_printf(s, "\\x%02x", p[i]);
        else sb_printf(s, "%c", p[i]);
    }
    sb_printf(s, n > max ? "\"..." : "\"");
}

static void fmt_scalar(sbuf *s, const uint8_t *p, uint32_t type) {
    if (type == ICL_GGUF_BOOL) {
        sb_printf(s, "%s", p[0] ? "true" : "false");
    } else if (type == ICL_GGUF_FLOAT32 || type == ICL_GGUF_FLOAT64) {
        double d;
        num_at(p, type, &d);
        sb_printf(s, "%.9g", d);
    } else if (type == ICL_GGUF_UINT64) {
        uint64_t u;
        memcpy(&u, p, 8);
        sb_printf(s, "%llu", (ull)u);
    } else {
        int64_t i = 0;
        int_at(p, type, &i);
        sb_printf(s, "%lld", (long long)i);
    }
}

static void fmt_val(sbuf *s, const gval *v, int depth) {
    if (v->type == ICL_GGUF_STRING) {
        sb_quoted(s, v->p, v->n, 80);
    } else if (v->type != ICL_GGUF_ARRAY) {
        fmt_scalar(s, v->p, v->type);
    } else {
        sb_printf(s, "[%llu x %s:", (ull)v->n, TYPE_NAMES[v->etype]);
        uint64_t show = depth ? 3 : 6;
        for (uint64_t i = 0; i < v->n && i < show; i++) {
            sb_printf(s, i ? ", " : " ");
            if (v->etype == ICL_GGUF_STRING) {
                uint64_t l;
                memcpy(&l, v->strs[i], 8);
                sb_quoted(s, v->strs[i] + 8, l, 24);
            } else if (v->etype == ICL_GGUF_ARRAY) {
                fmt_val(s, &v->sub[i], depth + 1);
            } else {
                fmt_scalar(s, v->p + i * scalar_size(v->etype), v->etype);
            }
        }
        sb_printf(s, v->n > show ? ", ...]" : "]");
    }
}

void icl_gguf_kv_format(const icl_gguf *g, int i, char *buf, size_t n) {
    if (!n) return;
    buf[0] = 0;
    if (i < 0 || i >= g->n_kv) return;
    sbuf s = {buf, n, 0};
    fmt_val(&s, &g->kv[i].v, 0);
}

/* ---- tensors ---- */

int icl_gguf_n_tensors(const icl_gguf *g) { return g->n_tensors; }

const icl_gguf_tensor *icl_gguf_tensor_at(const icl_gguf *g, int i) {
    return i >= 0 && i < g->n_tensors ? &g->t[i] : NULL;
}

const icl_gguf_tensor *icl_gguf_find_tensor(const icl_gguf *g, const char *name) {
    int i = tab_find(g, g->t_tab, g->t_mask, t_name, name);
    return i >= 0 ? &g->t[i] : NULL;
}

int icl_gguf_get_tensor(const icl_gguf *g, const char *name, const icl_gguf_tensor **out, icl_err *err) {
    *out = icl_gguf_find_tensor(g, name);
    if (!*out) return icl_errf(err, "tensor '%s' not found", name ? name : "(null)");
    return 0;
}

int icl_gguf_tensor_to_f32(const icl_gguf_tensor *t, float *dst, icl_err *err) {
    if (t->n_elements == 0) return 0;
    int64_t rows = t->n_elements / t->ne[0];
    uint64_t rb = t->n_bytes / (uint64_t)rows;
    const uint8_t *src = t->data;
    for (int64_t r = 0; r < rows; r++)
        if (icl_quant_dequantize_row(t->type, src + (uint64_t)r * rb, dst + r * t->ne[0], t->ne[0], err))
            return icl_err_prefix(err, "tensor '%s': ", t->name);
    return 0;
}

/* ================================================================== writer */

typedef struct {
    char *name;
    int type, n_dims;
    int64_t ne[ICL_GGUF_MAX_DIMS];
    uint64_t n_bytes;
    const void *data;
} wtensor;

struct icl_gguf_writer {
    uint8_t *kv; /* serialized entries */
    size_t kv_len, kv_cap;
    char **keys;
    int n_kv, keys_cap;
    wtensor *t;
    int n_t, t_cap;
    uint64_t alignment;
};

int icl_gguf_writer_init(icl_gguf_writer **w, icl_err *err) {
    *w = calloc(1, sizeof **w);
    if (!*w) return icl_errf(err, "out of memory");
    (*w)->alignment = ICL_GGUF_DEFAULT_ALIGNMENT;
    return 0;
}

void icl_gguf_writer_free(icl_gguf_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    for (int i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->t);
    free(w->kv);
    free(w);
}

static int kv_put(icl_gguf_writer *w, const void *p, size_t n) {
    if (n > SIZE_MAX / 2 - w->kv_len) return -1;
    if (w->kv_len + n > w->kv_cap) {
        size_t cap = w->kv_cap ? w->kv_cap : 256;
        while (cap < w->kv_len + n) cap *= 2;
        uint8_t *b = realloc(w->kv, cap);
        if (!b) return -1;
        w->kv = b;
        w->kv_cap = cap;
    }
    if (n) memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
    return 0;
}

static int kv_put_u32(icl_gguf_writer *w, uint32_t v) { return kv_put(w, &v, 4); }
static int kv_put_u64(icl_gguf_writer *w, uint64_t v) { return kv_put(w, &v, 8); }
static int kv_put_str(icl_gguf_writer *w, const char *s, uint64_t n) {
    return kv_put_u64(w, n) || kv_put(w, s, (size_t)n);
}

/* Starts an entry: checks the key and writes key + type. *mark remembers where to roll back to. */
static int kv_begin(icl_gguf_writer *w, const char *key, uint32_t type, size_t *mark, icl_err *err) {
    size_t kl = key ? strlen(key) : 0;
    if (kl == 0 || kl > 65535) return icl_errf(err, "gguf writer: key must be 1..65535 bytes long");
    if (strcmp(key, "general.alignment") == 0 && type != ICL_GGUF_UINT32)
        return icl_errf(err, "gguf writer: general.alignment must be a uint32");
    for (int i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0) return icl_errf(err, "gguf writer: duplicate key '%s'", key);
    if (w->n_kv == w->keys_cap) {
        int cap = w->keys_cap ? 2 * w->keys_cap : 16;
        char **k = realloc(w->keys, (size_t)cap * sizeof *k);
        if (!k) return icl_errf(err, "out of memory");
        w->keys = k;
        w->keys_cap = cap;
    }
    *mark = w->kv_len;
    if (kv_put_str(w, key, kl) || kv_put_u32(w, type)) {
        w->kv_len = *mark;
        return icl_errf(err, "out of memory");
    }
    return 0;
}

/* Finishes an entry: on failure (rc != 0) rolls it back. */
static int kv_end(icl_gguf_writer *w, const char *key, size_t mark, int rc, icl_err *err) {
    if (rc == 0) {
        char *k = strdup(key);
        if (k) {
            w->keys[w->n_kv++] = k;
            return 0;
        }
    }
    w->kv_len = mark;
    return icl_errf(err, "out of memory");
}

static int add_scalar(icl_gguf_writer *w, const char *key, uint32_t type, const void *v, icl_err *err) {
    size_t mark;
    if (kv_begin(w, key, type, &mark, err)) return -1;
    return kv_end(w, key, mark, kv_put(w, v, scalar_size(type)), err);
}

int icl_gguf_writer_add_u8(icl_gguf_writer *w, const char *key, uint8_t v, icl_err *err) { return add_scalar(w, key, ICL_GGUF_UINT8, &v, err); }
int icl_gguf_writer_add_i8(icl_gguf_writer *w, const char *key, int8_t v, icl_err *err) { return add_scalar(w, key, ICL_GGUF_INT8, &v, err); }
int icl_gguf_writer_add_u16(icl_gguf_writer *w, const char *key, uint16_t v, icl_err *err) { return add_scalar(w, key, ICL_GGUF_UINT16, &v, err); }
int icl_gguf_writer_add_i16(icl_gguf_writer *w, const char *key, int16_t v, icl_err *err) { return add_scalar(w, key, ICL_GGUF_INT16, &v, err); }
int icl_gguf_writer_add_i32(icl_gguf_writer *w, const char *key, int32_t v, icl_err *err) { return add_scalar(w, key, ICL_GGUF_INT32, &v, err); }
int icl_gguf_writer_add_u64(icl_gguf_writer *w, const char *key, uint64_t v, icl_err *err) { return add_scalar(w, key, ICL_GGUF_UINT64, &v, err); }
int icl_gguf_writer_add_i64(icl_gguf_writer *w, const char *key, int64_t v, icl_err *err) { return add_scalar(w, key, ICL_GGUF_INT64, &v, err); }
int icl_gguf_writer_add_f32(icl_gguf_writer *w, const char *key, float v, icl_err *err) { return add_scalar(w, key, ICL_GGUF_FLOAT32, &v, err); }
int icl_gguf_writer_add_f64(icl_gguf_writer *w, const char *key, double v, icl_err *err) { return add_scalar(w, key, ICL_GGUF_FLOAT64, &v, err); }

int icl_gguf_writer_add_bool(icl_gguf_writer *w, const char *key, int v, icl_err *err) {
    uint8_t b = v != 0;
    return add_scalar(w, key, ICL_GGUF_BOOL, &b, err);
}

static int check_alignment(uint32_t v, icl_err *err) {
    if (v == 0 || v > (1u << 30) || (v & (v - 1)))
        return icl_errf(err, "gguf writer: general.alignment %u is not a power of two in 1..2^30", v);
    return 0;
}

int icl_gguf_writer_add_u32(icl_gguf_writer *w, const char *key, uint32_t v, icl_err *err) {
    int is_align = key && strcmp(key, "general.alignment") == 0;
    if (is_align && check_alignment(v, err)) return -1;
    if (add_scalar(w, key, ICL_GGUF_UINT32, &v, err)) return -1;
    if (is_align) w->alignment = v;
    return 0;
}

int icl_gguf_writer_add_str(icl_gguf_writer *w, const char *key, const char *s, icl_err *err) {
    if (!s) return icl_errf(err, "gguf writer: NULL string for key '%s'", key ? key : "");
    size_t mark;
    if (kv_begin(w, key, ICL_GGUF_STRING, &mark, err)) return -1;
    return kv_end(w, key, mark, kv_put_str(w, s, strlen(s)), err);
}

int icl_gguf_writer_add_arr(icl_gguf_writer *w, const char *key, int elem_type, const void *data, uint64_t n,
                            icl_err *err) {
    size_t es = elem_type >= 0 ? scalar_size((uint32_t)elem_type) : 0;
    if (!es) return icl_errf(err, "gguf writer: key '%s': %s is not a fixed-size element type", key ? key : "", icl_gguf_type_name(elem_type));
    if (n > SIZE_MAX / 2 / es) return icl_errf(err, "gguf writer: key '%s': array too large", key ? key : "");
    if (n && !data) return icl_errf(err, "gguf writer: key '%s': NULL array data", key ? key : "");
    size_t mark;
    if (kv_begin(w, key, ICL_GGUF_ARRAY, &mark, err)) return -1;
    int rc = kv_put_u32(w, (uint32_t)elem_type) || kv_put_u64(w, n) || kv_put(w, data, (size_t)n * es);
    return kv_end(w, key, mark, rc, err);
}

int icl_gguf_writer_add_arr_str(icl_gguf_writer *w, const char *key, const char *const *strs, const uint64_t *lens,
                                uint64_t n, icl_err *err) {
    if (n && !strs) return icl_errf(err, "gguf writer: key '%s': NULL string array", key ? key : "");
    for (uint64_t i = 0; i < n; i++)
        if (!strs[i] && !(lens && lens[i] == 0))
            return icl_errf(err, "gguf writer: key '%s': string %llu is NULL", key ? key : "", (ull)i);
    size_t mark;
    if (kv_begin(w, key, ICL_GGUF_ARRAY, &mark, err)) return -1;
    int rc = kv_put_u32(w, ICL_GGUF_STRING) || kv_put_u64(w, n);
    for (uint64_t i = 0; i < n && !rc; i++) rc = kv_put_str(w, strs[i], lens ? lens[i] : strlen(strs[i]));
    return kv_end(w, key, mark, rc, err);
}

int icl_gguf_writer_copy_kv(icl_gguf_writer *w, const icl_gguf *g, int i, icl_err *err) {
    if (i < 0 || i >= g->n_kv) return icl_errf(err, "gguf writer: metadata index %d out of range", i);
    const gkv *kv = &g->kv[i];
    if (strcmp(kv->key, "general.alignment") == 0) {
        if (kv->v.type != ICL_GGUF_UINT32) return icl_errf(err, "gguf writer: general.alignment must be a uint32");
        uint32_t a;
        memcpy(&a, kv->v.p, 4);
        return icl_gguf_writer_add_u32(w, kv->key, a, err);
    }
    if (kv->raw_len > SIZE_MAX / 4) return icl_errf(err, "gguf writer: key '%s': value too large", kv->key);
    size_t mark;
    if (kv_begin(w, kv->key, kv->v.type, &mark, err)) return -1;
    return kv_end(w, kv->key, mark, kv_put(w, kv->raw, (size_t)kv->raw_len), err);
}

int icl_gguf_writer_add_tensor(icl_gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
                               const void *data, icl_err *err) {
    size_t nl = name ? strlen(name) : 0;
    if (nl == 0 || nl > 63) return icl_errf(err, "gguf writer: tensor name '%s' must be 1..63 bytes", name ? name : "");
    for (int i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0) return icl_errf(err, "gguf writer: duplicate tensor name '%s'", name);
    if (!icl_quant_type_known(type)) return icl_errf(err, "gguf writer: tensor '%s': unknown ggml type %d", name, type);
    if (n_dims < 1 || n_dims > ICL_GGUF_MAX_DIMS)
        return icl_errf(err, "gguf writer: tensor '%s': n_dims %d not in 1..%d", name, n_dims, ICL_GGUF_MAX_DIMS);
    wtensor t = {0};
    t.type = type;
    t.n_dims = n_dims;
    int64_t rows = 1;
    for (int d = 0; d < ICL_GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] < 0) return icl_errf(err, "gguf writer: tensor '%s': negative dimension %d", name, d);
        if (d > 0 && __builtin_mul_overflow(rows, t.ne[d], &rows))
            return icl_errf(err, "gguf writer: tensor '%s': size overflows", name);
    }
    uint64_t rb;
    if (icl_quant_row_bytes(type, t.ne[0], &rb, err)) return icl_err_prefix(err, "gguf writer: tensor '%s': ", name);
    if (__builtin_mul_overflow(rb, (uint64_t)rows, &t.n_bytes) || t.n_bytes > (uint64_t)INT64_MAX)
        return icl_errf(err, "gguf writer: tensor '%s': size overflows", name);
    if (t.n_bytes && !data) return icl_errf(err, "gguf writer: tensor '%s': NULL data", name);
    t.data = data;
    if (w->n_t == w->t_cap) {
        int cap = w->t_cap ? 2 * w->t_cap : 16;
        wtensor *nt = realloc(w->t, (size_t)cap * sizeof *nt);
        if (!nt) return icl_errf(err, "out of memory");
        w->t = nt;
        w->t_cap = cap;
    }
    t.name = strdup(name);
    if (!t.name) return icl_errf(err, "out of memory");
    w->t[w->n_t++] = t;
    return 0;
}

static int write_zeros(icl_afile *af, uint64_t n, icl_err *err) {
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (icl_afile_write(af, zeros, k, err)) return -1;
        n -= k;
    }
    return 0;
}

static uint64_t pad_to(uint64_t pos, uint64_t a) { return (a - pos % a) % a; }

int icl_gguf_writer_write(const icl_gguf_writer *w, const char *path, icl_err *err) {
    icl_afile af;
    if (icl_afile_open(&af, path, err)) return -1;
    uint64_t hdr[2] = {(uint64_t)w->n_t, (uint64_t)w->n_kv};
    uint32_t ver = 3;
    int rc = icl_afile_write(&af, "GGUF", 4, err) || icl_afile_write(&af, &ver, 4, err) ||
             icl_afile_write(&af, hdr, 16, err) || icl_afile_write(&af, w->kv, w->kv_len, err);
    uint64_t pos = 24 + w->kv_len, off = 0;
    for (int i = 0; i < w->n_t && !rc; i++) {
        const wtensor *t = &w->t[i];
        uint64_t nl = strlen(t->name);
        uint32_t nd = (uint32_t)t->n_dims, ty = (uint32_t)t->type;
        rc = icl_afile_write(&af, &nl, 8, err) || icl_afile_write(&af, t->name, nl, err) ||
             icl_afile_write(&af, &nd, 4, err) || icl_afile_write(&af, t->ne, 8 * nd, err) ||
             icl_afile_write(&af, &ty, 4, err) || icl_afile_write(&af, &off, 8, err);
        pos += 8 + nl + 4 + 8 * nd + 4 + 8;
        off += t->n_bytes + pad_to(t->n_bytes, w->alignment);
    }
    if (!rc) rc = write_zeros(&af, pad_to(pos, w->alignment), err);
    for (int i = 0; i < w->n_t && !rc; i++) {
        const wtensor *t = &w->t[i];
        rc = icl_afile_write(&af, t->data, (size_t)t->n_bytes, err) ||
             write_zeros(&af, pad_to(t->n_bytes, w->alignment), err);
    }
    if (rc) {
        icl_afile_abort(&af);
        return -1;
    }
    return icl_afile_commit(&af, err);
}
