/* Prompt files of `iclab capture`: see icl_prompts.h. */
#include "iclab/icl_prompts.h"
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_file.h"

/* Turns "\n", "\t" and "\\" escapes of a prompt line into characters, in place. */
static void unescape(char *s) {
    char *o = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && (p[1] == 'n' || p[1] == 't' || p[1] == '\\')) {
            *o++ = p[1] == 'n' ? '\n' : p[1] == 't' ? '\t' : '\\';
            p++;
        } else {
            *o++ = *p;
        }
    }
    *o = 0;
}

void icl_prompts_free(icl_prompts *p) {
    for (int i = 0; i < p->n; i++) free(p->own[i]);
    free(p->own);
    free(p->text);
    free(p->label);
    memset(p, 0, sizeof *p);
}

int icl_prompts_parse(icl_prompts *p, const char *data, size_t size, const char *name, icl_err *err) {
    memset(p, 0, sizeof *p);
    int r = 0, labelled = -1, cap_n = 0, lineno = 0;
    for (size_t pos = 0; !r && pos < size;) {
        const char *line = data + pos, *nl = memchr(line, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - line) : size - pos;
        pos += len + (nl != NULL);
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        if (len == 0) continue;
        if (memchr(line, 0, len)) {
            r = icl_errf(err, "%s: line %d holds a NUL byte", name, lineno);
            break;
        }
        const char *tab = memchr(line, '\t', len);
        if (labelled < 0) labelled = tab != NULL;
        if (labelled != (tab != NULL)) {
            r = icl_errf(err, "%s: line %d: either every line is LABEL<TAB>PROMPT or none is", name, lineno);
            break;
        }
        if (p->n == cap_n) {
            if (cap_n > (1 << 29)) {
                r = icl_errf(err, "%s: too many prompts", name);
                break;
            }
            cap_n = cap_n ? 2 * cap_n : 64;
            char **o = realloc(p->own, sizeof(char *) * cap_n);
            if (o) p->own = o;
            const char **t = o ? realloc(p->text, sizeof(char *) * cap_n) : NULL;
            if (t) p->text = t;
            const char **l = t ? realloc(p->label, sizeof(char *) * cap_n) : NULL;
            if (l) p->label = l;
            if (!o || !t || !l) {
                r = icl_errf(err, "out of memory");
                break;
            }
        }
        char *copy = malloc(len + 1);
        if (!copy) {
            r = icl_errf(err, "out of memory");
            break;
        }
        memcpy(copy, line, len);
        copy[len] = 0;
        p->own[p->n] = copy;
        p->label[p->n] = NULL;
        p->text[p->n] = copy;
        if (tab) {
            copy[tab - line] = 0;
            p->label[p->n] = copy;
            p->text[p->n] = copy + (tab - line) + 1;
        }
        unescape(copy + (tab ? tab - line + 1 : 0));
        p->n++;
    }
    if (!r && p->n == 0) r = icl_errf(err, "%s holds no prompts", name);
    if (r) icl_prompts_free(p);
    return r;
}

int icl_prompts_read(icl_prompts *p, const char *path, icl_err *err) {
    memset(p, 0, sizeof *p);
    char *data = NULL;
    size_t n = 0;
    if (icl_read_file(path, &data, &n, err)) return icl_errf(err, "cannot open prompt file %s", path);
    int r = icl_prompts_parse(p, data, n, path, err);
    free(data);
    return r;
}
