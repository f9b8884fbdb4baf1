/* The small text parsers that the fuzz targets cover (fuzz/): prompt files of `iclab capture`
 * (icl_prompts) and config.json read back (icl_train_config_parse_json), with their error cases;
 * the inputs the fuzzers once failed on stay here as regression cases. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "iclab/icl_file.h"
#include "iclab/icl_prompts.h"
#include "iclab/icl_train.h"
#include "icl_test.h"

static int parse_prompts(icl_prompts *p, const char *s, size_t n, icl_err *err) {
    return icl_prompts_parse(p, s, n, "p.txt", err);
}

static void test_prompts(void) {
    icl_prompts p;
    icl_err err = {{0}};
    /* plain lines, escapes, CR LF, empty lines, no final newline */
    const char plain[] = "one\r\n\ntwo\\nlines\\tand\\\\ a tab\n\r\nthree";
    CHECK(parse_prompts(&p, plain, sizeof plain - 1, &err) == 0);
    CHECK(p.n == 3);
    if (p.n == 3) {
        CHECK(!strcmp(p.text[0], "one") && !p.label[0]);
        CHECK(!strcmp(p.text[1], "two\nlines\tand\\ a tab"));
        CHECK(!strcmp(p.text[2], "three"));
    }
    icl_prompts_free(&p);
    CHECK(p.n == 0 && !p.own);
    /* labels: the label is not unescaped, the prompt is */
    const char lab[] = "fr\tLa capitale\\n\nde\tDie\tHauptstadt\n";
    CHECK(parse_prompts(&p, lab, sizeof lab - 1, &err) == 0);
    CHECK(p.n == 2);
    if (p.n == 2) {
        CHECK(!strcmp(p.label[0], "fr") && !strcmp(p.text[0], "La capitale\n"));
        CHECK(!strcmp(p.label[1], "de") && !strcmp(p.text[1], "Die\tHauptstadt"));
    }
    icl_prompts_free(&p);
    /* errors: a clear message, nothing left allocated */
    struct { const char *s; size_t n; const char *msg; } bad[] = {
        {"", 0, "p.txt holds no prompts"},
        {"\n\r\n\n", 4, "p.txt holds no prompts"},
        {"a\tb\nc\n", 6, "p.txt: line 2: either every line is LABEL<TAB>PROMPT or none is"},
        {"a\nb\tc\n", 6, "p.txt: line 2: either every line is LABEL<TAB>PROMPT or none is"},
        {"ok\nn\0l\n", 7, "p.txt: line 2 holds a NUL byte"},
        {"x\0\n", 3, "p.txt: line 1 holds a NUL byte"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        CHECK_MSG(parse_prompts(&p, bad[i].s, bad[i].n, &err) == -1 && !strcmp(err.msg, bad[i].msg),
                  "case %zu: '%s'", i, err.msg);
        CHECK(p.n == 0 && !p.own && !p.text && !p.label);
    }
    /* from a file, and a missing file */
    char dir[] = "/tmp/iclab-test-parsers.XXXXXX", path[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/p.txt", dir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs("a\tx\nb\ty\n", f);
        fclose(f);
    }
    CHECK(icl_prompts_read(&p, path, &err) == 0 && p.n == 2 && !strcmp(p.label[1], "b"));
    icl_prompts_free(&p);
    unlink(path);
    CHECK(icl_prompts_read(&p, path, &err) == -1 && strstr(err.msg, "cannot open prompt file"));
    rmdir(dir);
}

static int same_config(const icl_train_config *a, const icl_train_config *b) {
    for (int i = 0; i < icl_train_n_fields; i++) {
        char x[64], y[64];
        icl_config_field_format(a, &icl_train_fields[i], x, sizeof x);
        icl_config_field_format(b, &icl_train_fields[i], y, sizeof y);
        if (strcmp(x, y)) {
            fprintf(stderr, "field %s: %s vs %s\n", icl_train_fields[i].key, x, y);
            return 0;
        }
    }
    return 1;
}

static void test_config_json(void) {
    icl_err err = {{0}};
    char dir[] = "/tmp/iclab-test-parsers.XXXXXX", path[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/config.json", dir);
    /* every preset, and an odd one, survive write_json -> parse_json */
    const char *presets[] = {"paper", "small", "tiny", "demo"};
    for (int k = 0; k < 5; k++) {
        icl_train_config c, c2;
        CHECK(icl_train_config_preset(&c, presets[k < 4 ? k : 2], &err) == 0);
        if (k == 4) {
            c.lr = 3.3333333e-4f;
            c.beta2 = 0.99990001f;
            c.seed = 18446744073709551615ULL;
            c.task.noise_var = 1.0f / 3.0f;
            c.dense_steps = 7;
        }
        CHECK(icl_train_config_write_json(&c, path, &err) == 0);
        char *text = NULL;
        size_t n = 0;
        CHECK(icl_read_file(path, &text, &n, &err) == 0);
        CHECK_MSG(text && icl_train_config_parse_json(&c2, text, n, path, &err) == 0, "%s", err.msg);
        CHECK(same_config(&c, &c2));
        free(text);
    }
    unlink(path);
    rmdir(dir);
    /* missing fields keep the defaults; an empty object is the paper's config */
    icl_train_config c, d;
    icl_train_config_default(&d);
    CHECK(icl_train_config_parse_json(&c, " {} \n", 5, "x", &err) == 0 && same_config(&c, &d));
    const char some[] = "{\"task.dim\": 32, \"train.lr\": 1e-3}";
    CHECK(icl_train_config_parse_json(&c, some, sizeof some - 1, "x", &err) == 0 && c.task.dim == 32 && c.lr == 1e-3f);
    struct { const char *s, *msg; } bad[] = {
        {"", "x: not a JSON object"},
        {"[]", "x: not a JSON object"},
        {"{", "x: expected a quoted field name at byte 1"},
        {"{\"task.dim\": 8", "x: expected ',' or '}' after \"task.dim\""},
        {"{\"task.dim\": 8,}", "x: expected a quoted field name at byte 15"},
        {"{\"nope\": 1}", "x: unknown field \"nope\""},
        {"{\"task.dim\": 8, \"task.dim\": 8}", "x: field \"task.dim\" given twice"},
        {"{\"task.dim\": \"8\"}", "x: the value of \"task.dim\" is not a number"},
        {"{\"task.dim\": 8.5}", "x: --dim: '8.5' is not an integer"},
        {"{\"task.dim\": 8} x", "x: trailing bytes after the object"},
        {"{\"task.dim\": -3}", "x: "},
        {"{\"task.di\\m\": 1}", "x: bad field name at byte 9"},
        {"{\"task.dim\" 8}", "x: expected ':' after \"task.dim\""},
        /* found by fuzz_config: a float field past float's range used to become inf, written as "inf" */
        {"{\"train.grad_clip\": \n211115555555555555555555555555555501111111151}\n", "x: --grad-clip: '"},
        {"{\"train.lr\": 1e39}", "x: --lr: '1e39' is out of range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        CHECK_MSG(icl_train_config_parse_json(&c, bad[i].s, strlen(bad[i].s), "x", &err) == -1 &&
                      !strncmp(err.msg, bad[i].msg, strlen(bad[i].msg)),
                  "case %zu: '%s'", i, err.msg);
    }
    /* a NUL inside the text is a bad byte, not the end of the input */
    CHECK(icl_train_config_parse_json(&c, "{}\0", 3, "x", &err) == -1);
}

int main(void) {
    test_prompts();
    test_config_json();
    return icl_test_finish();
}
