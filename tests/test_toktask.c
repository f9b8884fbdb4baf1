/* Tests of the token ICL tasks (icl_toktask.h): the bitwise family against an independent
 * character-by-character computation, its counts and splits, and that Null's bits carry no
 * operator; the part-of-speech family on a hand-tagged Brown-format directory (tag mapping, dropped
 * sentences, Null words, disjoint splits) and, when `make data` has fetched it, on the real corpus;
 * task files (round trip and errors); templates, prompts, episodes and answer matching; seeds. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "iclab/icl_file.h"
#include "iclab/icl_toktask.h"
#include "icl_test.h"

static char tmpdir[64];

static void write_text(const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    icl_err err;
    CHECK_MSG(icl_write_file_atomic(path, text, strlen(text), &err) == 0, "writing %s: %s", path, err.msg);
}

/* One bit of operator op ("AND" ...) on bits a, b given as characters, by truth table. */
static char bit_ref(const char *op, char a, char b) {
    int x = a == '1', y = b == '1', r;
    if (!strcmp(op, "AND")) r = x && y;
    else if (!strcmp(op, "NAND")) r = !(x && y);
    else if (!strcmp(op, "OR")) r = x || y;
    else if (!strcmp(op, "NOR")) r = !(x || y);
    else if (!strcmp(op, "XOR")) r = x != y;
    else r = x == y; /* XNOR */
    return r ? '1' : '0';
}

static int is_bits(const char *s, size_t n) {
    if (strlen(s) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0' && s[i] != '1') return 0;
    return 1;
}

static int same_tasks(const icl_toktask *a, const icl_toktask *b) {
    if (a->n_concepts != b->n_concepts || a->n_ex != b->n_ex || a->null_concept != b->null_concept) return 0;
    for (int c = 0; c < a->n_concepts; c++) {
        if (strcmp(a->concepts[c], b->concepts[c]) || strcmp(a->instructions[c], b->instructions[c])) return 0;
        for (int s = 0; s < 2; s++)
            if (a->first[2 * c + s] != b->first[2 * c + s] || a->count[2 * c + s] != b->count[2 * c + s]) return 0;
    }
    for (size_t i = 0; i < a->n_ex; i++)
        if (a->ex[i].concept != b->ex[i].concept || a->ex[i].split != b->ex[i].split ||
            strcmp(a->ex[i].input, b->ex[i].input) || strcmp(a->ex[i].output, b->ex[i].output))
            return 0;
    return 1;
}

/* Every example lies in its concept/split group. */
static int grouping_ok(const icl_toktask *t) {
    size_t total = 0;
    for (int c = 0; c < t->n_concepts; c++)
        for (int s = 0; s < 2; s++) {
            size_t f = t->first[2 * c + s], n = t->count[2 * c + s];
            total += n;
            for (size_t i = f; i < f + n; i++)
                if (t->ex[i].concept != c || t->ex[i].split != s) return 0;
        }
    return total == t->n_ex;
}

static void test_bitwise(void) {
    icl_toktask t, u, v;
    icl_err err;
    CHECK_MSG(icl_toktask_bitwise(&t, 7, &err) == 0, "%s", err.msg);
    static const char *names[7] = {"AND", "NAND", "OR", "NOR", "XOR", "XNOR", "Null"};
    CHECK(t.n_concepts == 7 && t.null_concept == 6 && !strcmp(t.family, "bitwise"));
    for (int c = 0; c < 7; c++) {
        CHECK(!strcmp(t.concepts[c], names[c]));
        CHECK(t.count[2 * c + ICL_SPLIT_TRAIN] == 10000 && t.count[2 * c + ICL_SPLIT_TEST] == 500);
    }
    CHECK(!strcmp(t.instructions[0], "Apply AND.") && !strcmp(t.instructions[5], "Apply XNOR.") &&
          !strcmp(t.instructions[6], "Write random bits."));
    CHECK(t.n_ex == 7 * 10500 && grouping_ok(&t));

    long wrong = 0, badfmt = 0, overlap = 0, test_dup = 0;
    double agree[6] = {0}, nbits = 0;
    for (int c = 0; c < 7; c++) {
        static char seen[2][1024];
        memset(seen, 0, sizeof seen);
        for (int s = 0; s < 2; s++)
            for (size_t i = t.first[2 * c + s]; i < t.first[2 * c + s] + t.count[2 * c + s]; i++) {
                const char *in = t.ex[i].input, *out = t.ex[i].output;
                if (strlen(in) != 11 || in[5] != ' ' || !is_bits(out, 5)) {
                    badfmt++;
                    continue;
                }
                char a[6], b[6];
                memcpy(a, in, 5), a[5] = 0;
                memcpy(b, in + 6, 5), b[5] = 0;
                if (!is_bits(a, 5) || !is_bits(b, 5)) {
                    badfmt++;
                    continue;
                }
                int key = (int)(strtol(a, NULL, 2) * 32 + strtol(b, NULL, 2));
                if (s == ICL_SPLIT_TEST && seen[1][key]) test_dup++;
                seen[s][key] = 1;
                for (int k = 0; k < 5; k++) {
                    if (c < 6) {
                        if (out[k] != bit_ref(names[c], a[k], b[k])) wrong++;
                    } else {
                        for (int op = 0; op < 6; op++) agree[op] += out[k] == bit_ref(names[op], a[k], b[k]);
                        nbits++;
                    }
                }
            }
        for (int key = 0; key < 1024; key++) overlap += seen[0][key] && seen[1][key];
    }
    CHECK_MSG(badfmt == 0, "%ld malformed bitwise examples", badfmt);
    CHECK_MSG(wrong == 0, "%ld output bits differ from the truth tables", wrong);
    CHECK_MSG(overlap == 0, "%ld test inputs also appear in their concept's training set", overlap);
    CHECK_MSG(test_dup == 0, "%ld repeated test inputs", test_dup);
    /* 52,500 Null bits: the agreement with any operator has standard error 0.0022; 0.45..0.55 is >20 of them. */
    for (int op = 0; op < 6; op++) {
        double f = agree[op] / nbits;
        CHECK_MSG(f > 0.45 && f < 0.55, "Null bits agree with %s at rate %.4f", names[op], f);
    }

    CHECK(icl_toktask_bitwise(&u, 7, &err) == 0 && same_tasks(&t, &u));
    CHECK(icl_toktask_bitwise(&v, 8, &err) == 0 && !same_tasks(&t, &v));
    icl_toktask_free(&u);
    icl_toktask_free(&v);
    icl_toktask_free(&t);
    CHECK(t.ex == NULL && t.n_concepts == 0);
    icl_toktask_free(&t); /* twice is harmless */
}

/* ---- part of speech on a hand-tagged directory ---- */

typedef struct {
    const char *text, *ans[6]; /* Noun, Adjective, Verb, Adverb, Preposition, Pronoun */
} pos_expect;

static char long40[1024], long40_text[1024], long41[1024];

static const pos_expect expect[] = {
    /* -tl stripped; "quickly" the first adverb */
    {"The jury said it quickly found evidence of old fraud .", {"jury", "old", "said", "quickly", "of", "it"}},
    /* `` '' become "; "We'll" (ppss+md) is no pronoun */
    {"\" We'll never go to the big city , \" she said .", {"city", "big", "go", "never", "to", "she"}},
    /* bez* counts as a verb, "*" (not) as an adverb */
    {"He isn't a bad man in any sense , not really .", {"man", "bad", "isn't", "not", "in", "He"}},
    /* foreign words (fw-) are no concept */
    {"Le mot juste was hardly new to him or Paris .", {"Paris", "new", "was", "hardly", "to", "him"}},
    /* nr is a noun, jjr an adjective, pp$ a pronoun */
    {"Yesterday the taller boys ran home quickly with their dog .",
     {"Yesterday", "taller", "ran", "quickly", "with", "their"}},
    /* ql (very) is no adverb; hvz a verb */
    {"Mary's brother has been very kind to us lately .", {"Mary's", "kind", "has", "lately", "to", "us"}},
    /* headline tags (-hl, -tl-hl) */
    {"BIG NEWS : Officials say they will soon act on it", {"NEWS", "BIG", "say", "soon", "on", "they"}},
    {"In 1961 , she bought an expensive car and drove it slowly .",
     {"car", "expensive", "bought", "slowly", "In", "she"}},
    {"Himself a quiet person , John seldom speaks about politics .",
     {"person", "quiet", "speaks", "seldom", "about", "Himself"}},
    {"Do you think the older students worked harder for us ?", {"students", "older", "Do", "harder", "for", "you"}},
    {long40_text, {"x", "old", "is", "very", "in", "It"}},
};
#define N_EXPECT (sizeof expect / sizeof *expect)

static void make_brown_dir(void) {
    strcpy(long40, "\tIt/pps is/bez very/rb old/jj in/in");
    strcpy(long40_text, "It is very old in");
    for (int i = 0; i < 35; i++) {
        strcat(long40, " x/nn");
        strcat(long40_text, " x");
    }
    strcpy(long41, long40);
    strcat(long41, " x/nn\n");
    strcat(long40, "\n");
    write_text("ca01", "\n\n"
                       "\tThe/at jury/nn-tl said/vbd it/pps quickly/rb found/vbd evidence/nn of/in old/jj fraud/nn ./.\n"
                       "\n\n"
                       "\t``/`` We'll/ppss+md never/rb go/vb to/in the/at big/jj city/nn ,/, ''/'' she/pps said/vbd ./.\n"
                       "He/pps isn't/bez* a/at bad/jj man/nn in/in any/dti sense/nn ,/, not/* really/rb ./.\n"
                       "The/at cat/nn sat/vbd on/in her/pp$ soft/jj mat/nn ./.\n" /* no adverb: dropped */
                       "\n"
                       "\tLe/fw-at mot/fw-nn juste/fw-jj was/bedz hardly/rb new/jj to/in him/ppo or/cc Paris/np ./.\n"
                       "  Yesterday/nr the/at taller/jjr boys/nns ran/vbd home/nr quickly/rb with/in their/pp$ dog/nn ./.  \r\n");
    char cb02[4096];
    snprintf(cb02, sizeof cb02,
             "\tMary's/np$ brother/nn has/hvz been/ben very/ql kind/jj to/in us/ppo lately/rb ./.\n"
             "BIG/jj-hl NEWS/nn-hl :/: Officials/nns-tl-hl say/vb they/ppss will/md soon/rb act/vb on/in it/ppo\n\n"
             "\tIn/in 1961/cd ,/, she/pps bought/vbd an/at expensive/jj car/nn and/cc drove/vbd it/ppo slowly/rb ./.\n"
             "\tHimself/ppl a/at quiet/jj person/nn ,/, John/np seldom/rb speaks/vbz about/in politics/nn ./.\n"
             "\tDo/do you/ppss think/vb the/at older/jjr students/nns worked/vbd harder/rbr for/in us/ppo ?/.\n"
             "%s%s" /* 40 tokens kept, 41 dropped */
             "\tThe/at jury/nn-tl said/vbd it/pps quickly/rb found/vbd evidence/nn of/in old/jj fraud/nn ./.\n", /* repeat */
             long40, long41);
    write_text("cb02", cb02);
    write_text("README", "not a corpus file\n");
}

static const pos_expect *find_expect(const char *text) {
    for (size_t i = 0; i < N_EXPECT; i++)
        if (!strcmp(expect[i].text, text)) return &expect[i];
    return NULL;
}

static int word_of(const char *text, const char *w) {
    size_t n = strlen(w);
    for (const char *p = text; *p;) {
        const char *e = strchr(p, ' ');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && !memcmp(p, w, n)) return 1;
        p += l + (e ? 1 : 0);
    }
    return 0;
}

/* Checks that hold for any pos task: same sentences for every concept, disjoint splits, Null words. */
static void check_pos_structure(const icl_toktask *t) {
    CHECK(t->n_concepts == 7 && t->null_concept == 6 && !strcmp(t->concepts[6], "Null") && grouping_ok(t));
    size_t ntr = t->count[0], nte = t->count[1], n = ntr + nte;
    CHECK(nte == (n + 2) / 5);
    long mismatch = 0, not_word = 0, shared = 0;
    for (int c = 1; c < 7; c++)
        for (int s = 0; s < 2; s++) {
            if (t->count[2 * c + s] != t->count[s]) {
                mismatch++;
                continue;
            }
            for (size_t i = 0; i < t->count[s]; i++)
                mismatch += strcmp(t->ex[t->first[2 * c + s] + i].input, t->ex[t->first[s] + i].input) != 0;
        }
    for (size_t i = 0; i < t->count[2 * 6 + 0] + t->count[2 * 6 + 1]; i++) {
        const icl_tokex *e = &t->ex[t->first[12] + i];
        not_word += !word_of(e->input, e->output);
    }
    /* Train and test sentences are disjoint (sorted merge on the texts). */
    const char **a = malloc((n ? n : 1) * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = t->ex[i].input; /* concept 0: train then test */
    for (size_t i = 0; i < nte; i++)
        for (size_t j = 0; j < ntr && nte * ntr < 4000000; j++) shared += !strcmp(a[ntr + i], a[j]);
    free(a);
    CHECK_MSG(mismatch == 0, "%ld concept/split groups do not use concept 0's sentences", mismatch);
    CHECK_MSG(not_word == 0, "%ld Null answers are not words of their sentence", not_word);
    CHECK_MSG(shared == 0, "%ld test sentences are also training sentences", shared);
}

static void test_pos_small(void) {
    make_brown_dir();
    icl_toktask t, u;
    icl_err err;
    CHECK_MSG(icl_toktask_pos(&t, tmpdir, 3, &err) == 0, "%s", err.msg);
    if (t.n_concepts != 7) return;
    static const char *names[7] = {"Noun", "Adjective", "Verb", "Adverb", "Preposition", "Pronoun", "Null"};
    for (int c = 0; c < 7; c++) CHECK(!strcmp(t.concepts[c], names[c]));
    CHECK(!strcmp(t.instructions[0], "Find the first noun.") && !strcmp(t.instructions[5], "Find the first pronoun.") &&
          !strcmp(t.instructions[6], "Pick a random word."));
    /* 11 kept: the adverb-less, 41-token and repeated sentences are dropped; 2 test, 9 train. */
    CHECK_MSG(t.count[0] == 9 && t.count[1] == 2, "train %zu test %zu", t.count[0], t.count[1]);
    check_pos_structure(&t);
    long bad = 0, seen = 0;
    for (size_t i = 0; i < t.n_ex; i++) {
        const pos_expect *e = find_expect(t.ex[i].input);
        if (!e) {
            CHECK_MSG(0, "unexpected sentence \"%s\"", t.ex[i].input);
            continue;
        }
        if (t.ex[i].concept == 6) continue;
        seen++;
        if (strcmp(t.ex[i].output, e->ans[t.ex[i].concept])) {
            bad++;
            fprintf(stderr, "  %s of \"%s\": got %s, want %s\n", names[t.ex[i].concept], e->text, t.ex[i].output,
                    e->ans[t.ex[i].concept]);
        }
    }
    CHECK(seen == 6 * (long)N_EXPECT && bad == 0);
    /* Null answers are words, not punctuation: over many seeds each sentence's pick stays a word. */
    long punct = 0;
    for (uint64_t seed = 0; seed < 40; seed++) {
        CHECK(icl_toktask_pos(&u, tmpdir, seed, &err) == 0);
        for (size_t i = 0; i < u.count[12] + u.count[13]; i++) {
            const char *w = u.ex[u.first[12] + i].output;
            punct += !strcmp(w, ",") || !strcmp(w, ".") || !strcmp(w, "\"") || !strcmp(w, ":") || !strcmp(w, "?");
        }
        icl_toktask_free(&u);
    }
    CHECK(punct == 0);
    CHECK(icl_toktask_pos(&u, tmpdir, 3, &err) == 0 && same_tasks(&t, &u));
    icl_toktask_free(&u);

    /* The task file round trip keeps everything but the family name. */
    char path[128];
    snprintf(path, sizeof path, "%s/pos.tsv", tmpdir);
    CHECK_MSG(icl_toktask_save(&t, path, &err) == 0, "%s", err.msg);
    CHECK_MSG(icl_toktask_load(&u, path, &err) == 0, "%s", err.msg);
    CHECK(same_tasks(&t, &u) && !strcmp(u.family, path));
    icl_toktask_free(&u);
    icl_toktask_free(&t);

    /* A malformed token names its file and line; a folder without corpus files fails. */
    write_text("cc03", "\tA/at good/jj line/nn\n\n\tbroken token/nn\n");
    CHECK(icl_toktask_pos(&t, tmpdir, 3, &err) == -1 && strstr(err.msg, "cc03:3:") && strstr(err.msg, "broken"));
    CHECK(t.ex == NULL);
    char p2[128];
    snprintf(p2, sizeof p2, "%s/cc03", tmpdir);
    unlink(p2);
    snprintf(p2, sizeof p2, "%s/empty", tmpdir);
    CHECK(icl_mkdirs(p2, &err) == 0);
    CHECK(icl_toktask_pos(&t, p2, 3, &err) == -1 && strstr(err.msg, "no Brown corpus files"));
    CHECK(icl_toktask_pos(&t, "/nonexistent/brown", 3, &err) == -1 && strstr(err.msg, "make data"));
    rmdir(p2);
}

static void test_pos_real(void) {
    if (!icl_path_exists("data/brown")) {
        printf("SKIP real Brown corpus: data/brown missing (make data)\n");
        return;
    }
    icl_toktask t;
    icl_err err;
    CHECK_MSG(icl_toktask_pos(&t, "data/brown", 1, &err) == 0, "%s", err.msg);
    if (t.n_concepts != 7) return;
    size_t n = t.count[0] + t.count[1];
    printf("real Brown corpus: %zu sentences kept (%zu train, %zu test)\n", n, t.count[0], t.count[1]);
    CHECK(n > 1000);
    check_pos_structure(&t);
    icl_toktask_free(&t);
}

/* ---- task files ---- */

static int load_text(icl_toktask *t, const char *text, icl_err *err) {
    write_text("task.tsv", text);
    char path[128];
    snprintf(path, sizeof path, "%s/task.tsv", tmpdir);
    return icl_toktask_load(t, path, err);
}

static void test_file(void) {
    icl_toktask t, u;
    icl_err err;
    /* Comments, blank lines, CRLF, a missing split column (test); Null moves last. */
    CHECK_MSG(load_text(&t,
                        "# a comment\n"
                        "Null\tq\tz\ttrain\n"
                        "\n"
                        "upper\tab\tAB\ttrain\r\n"
                        "lower\tCD\tcd\n"
                        "   \n"
                        "upper\tx y\tX Y\ttest\n"
                        "#instruction\tlower\tMake it lower case.\n"
                        "lower\tEF\tef\ttrain",
                        &err) == 0,
              "%s", err.msg);
    CHECK(t.n_concepts == 3 && t.null_concept == 2 && !strcmp(t.concepts[0], "upper") &&
          !strcmp(t.concepts[1], "lower") && !strcmp(t.concepts[2], "Null"));
    CHECK(!strcmp(t.instructions[0], "Apply upper.") && !strcmp(t.instructions[1], "Make it lower case.") &&
          !strcmp(t.instructions[2], "Answer at random."));
    CHECK(t.count[0] == 1 && t.count[1] == 1 && t.count[2] == 1 && t.count[3] == 1 && t.count[4] == 1 &&
          t.count[5] == 0 && grouping_ok(&t));
    CHECK(!strcmp(t.ex[t.first[0]].output, "AB") && !strcmp(t.ex[t.first[1]].input, "x y") &&
          !strcmp(t.ex[t.first[3]].output, "cd") && !strcmp(t.ex[t.first[2]].input, "EF"));
    char path[128];
    snprintf(path, sizeof path, "%s/copy.tsv", tmpdir);
    CHECK(icl_toktask_save(&t, path, &err) == 0 && icl_toktask_load(&u, path, &err) == 0 && same_tasks(&t, &u));
    icl_toktask_free(&u);
    icl_toktask_free(&t);

    /* Known concept names get their family's instruction. */
    CHECK(load_text(&t, "AND\t00000 11111\t00000\nNoun\tA dog .\tdog\n", &err) == 0 &&
          !strcmp(t.instructions[0], "Apply AND.") && !strcmp(t.instructions[1], "Find the first noun."));
    icl_toktask_free(&t);

    /* Errors. */
    CHECK(load_text(&t, "AND\t00000 00000\t00000\nAND\t00001 00001\t00001\ttrain\n", &err) == -1 &&
          strstr(err.msg, "the task has one concept (AND); TD needs at least two"));
    CHECK(load_text(&t, "# nothing\n\n", &err) == -1 && strstr(err.msg, "no examples"));
    CHECK(load_text(&t, "A\tx\ty\nB\tx\ty\n#\nB only-two-fields\tz\n", &err) == -1 && strstr(err.msg, "task.tsv:4:") &&
          strstr(err.msg, "got 2 fields"));
    CHECK(load_text(&t, "A\tx\ty\ttrain\textra\n", &err) == -1 && strstr(err.msg, ":1:") && strstr(err.msg, "5 fields"));
    CHECK(load_text(&t, "A\tx\ty\nB\tx\ty\tvalid\n", &err) == -1 && strstr(err.msg, ":2:") &&
          strstr(err.msg, "neither train nor test"));
    CHECK(load_text(&t, "A\tx\t\n", &err) == -1 && strstr(err.msg, ":1: empty output"));
    CHECK(load_text(&t, "A\tx\ty\nB\tx\ty\n#instruction\tC\tDo C.\n", &err) == -1 && strstr(err.msg, ":3:") &&
          strstr(err.msg, "'C'"));
    CHECK(load_text(&t, "A\tx\ty\nB\tx\ty\n#instruction\tA\n", &err) == -1 && strstr(err.msg, ":3:"));
    CHECK(icl_toktask_load(&t, "/nonexistent/task.tsv", &err) == -1 && strstr(err.msg, "/nonexistent/task.tsv"));
    CHECK(t.ex == NULL);

    /* The bitwise family round-trips through a file. */
    CHECK(icl_toktask_bitwise(&t, 11, &err) == 0);
    snprintf(path, sizeof path, "%s/bitwise.tsv", tmpdir);
    CHECK(icl_toktask_save(&t, path, &err) == 0);
    CHECK(icl_toktask_load(&u, path, &err) == 0 && same_tasks(&t, &u));
    icl_toktask_free(&u);
    icl_toktask_free(&t);
}

/* ---- templates, prompts, episodes, matching ---- */

static void test_template(void) {
    icl_template tp;
    icl_err err;
    CHECK(icl_template_parse(&tp, ICL_TOKTASK_DEFAULT_TEMPLATE, &err) == 0);
    CHECK(!strcmp(tp.pre_x, "") && !strcmp(tp.x_to_y, " ->") && !strcmp(tp.answer_lead, " ") &&
          !strcmp(tp.post_y, "\n"));
    icl_template_free(&tp);
    CHECK(icl_template_parse(&tp, "Q: {x}\\nA:  {y}\\n\\n", &err) == 0);
    CHECK(!strcmp(tp.pre_x, "Q: ") && !strcmp(tp.x_to_y, "\nA:") && !strcmp(tp.answer_lead, "  ") &&
          !strcmp(tp.post_y, "\n\n"));
    icl_template_free(&tp);
    CHECK(icl_template_parse(&tp, "{x}\\t=\\\\{y}\n", &err) == 0);
    CHECK(!strcmp(tp.x_to_y, "\t=\\") && !strcmp(tp.answer_lead, "") && !strcmp(tp.post_y, "\n"));
    icl_template_free(&tp);
    CHECK(icl_template_parse(&tp, "{x} {y}\\n", &err) == 0 && !strcmp(tp.x_to_y, "") && !strcmp(tp.answer_lead, " "));
    icl_template_free(&tp);
    struct {
        const char *spec, *msg;
    } bad[] = {
        {"{y}\\n", "{x} is missing"},          {"{x} ->\\n", "{y} is missing"},
        {"{x} {x} {y}\\n", "{x} appears twice"}, {"{x} {y} {y}\\n", "{y} appears twice"},
        {"{y} <- {x}\\n", "before {x}"},        {"{x} -> {y}", "nothing after {y}"},
        {"{x} -> {y} .\\n", "must start with a newline"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err.msg[0] = 0;
        CHECK_MSG(icl_template_parse(&tp, bad[i].spec, &err) == -1 && strstr(err.msg, bad[i].msg) && tp.pre_x == NULL,
                  "template %s: '%s'", bad[i].spec, err.msg);
    }
}

static void test_prompt(void) {
    icl_toktask t;
    icl_template tp;
    icl_err err;
    CHECK(icl_toktask_bitwise(&t, 1, &err) == 0 && icl_template_parse(&tp, ICL_TOKTASK_DEFAULT_TEMPLATE, &err) == 0);
    icl_tokex d0 = {"01101 11000", "01000", 0, 0}, d1 = {"00111 10101", "00101", 0, 0}, q = {"11111 00000", "00000", 0, 1};
    const icl_tokex *demos[2] = {&d0, &d1};
    char *prompt, *answer;
    CHECK(icl_prompt_build(&t, &tp, 0, demos, 2, &q, &prompt, &answer, &err) == 0);
    CHECK_MSG(!strcmp(prompt, "01101 11000 -> 01000\n00111 10101 -> 00101\n11111 00000 ->"), "prompt '%s'", prompt);
    CHECK(!strcmp(answer, " 00000"));
    free(prompt);
    free(answer);
    CHECK(icl_prompt_build(&t, &tp, 1, demos, 2, &q, &prompt, NULL, &err) == 0);
    CHECK_MSG(!strcmp(prompt, "Apply AND.\n01101 11000 -> 01000\n00111 10101 -> 00101\n11111 00000 ->"), "prompt '%s'",
              prompt);
    free(prompt);
    /* Zero shots, another template, Null's instruction. */
    icl_template_free(&tp);
    CHECK(icl_template_parse(&tp, "In: {x}\\nOut: {y}\\n\\n", &err) == 0);
    q.concept = 6;
    CHECK(icl_prompt_build(&t, &tp, 1, NULL, 0, &q, &prompt, &answer, &err) == 0);
    CHECK(!strcmp(prompt, "Write random bits.\nIn: 11111 00000\nOut:") && !strcmp(answer, " 00000"));
    free(prompt);
    free(answer);
    q.concept = 7;
    CHECK(icl_prompt_build(&t, &tp, 1, NULL, 0, &q, &prompt, &answer, &err) == -1 && prompt == NULL);
    icl_template_free(&tp);
    icl_toktask_free(&t);
}

static void test_episode(void) {
    icl_toktask t;
    icl_err err;
    char text[1024] = "";
    for (int i = 0; i < 10; i++) {
        char line[96];
        snprintf(line, sizeof line, "A\tin%d\tout%d\ttest\nB\tb%d\tc%d\ttrain\n", i, i, i, i);
        strcat(text, line);
    }
    CHECK(load_text(&t, text, &err) == 0);
    icl_rng rng, rng2;
    icl_rng_seed(&rng, 5);
    const icl_tokex *q, *d[16], *q2, *d2[16];
    long qcount[10] = {0}, dcount[10] = {0}, notdistinct = 0, wrong = 0;
    const int reps = 20000;
    for (int r = 0; r < reps; r++) {
        if (icl_episode_draw(&t, 0, ICL_SPLIT_TEST, 3, &rng, &q, d, &err)) {
            wrong++;
            continue;
        }
        const icl_tokex *all[4] = {q, d[0], d[1], d[2]};
        for (int i = 0; i < 4; i++) {
            wrong += all[i]->concept != 0 || all[i]->split != ICL_SPLIT_TEST;
            for (int j = 0; j < i; j++) notdistinct += all[i] == all[j];
        }
        qcount[q - &t.ex[t.first[1]]]++;
        for (int i = 0; i < 3; i++) dcount[d[i] - &t.ex[t.first[1]]]++;
    }
    CHECK(wrong == 0 && notdistinct == 0);
    /* Uniform: each example is the query 1/10 of the time (sd 0.0021) and a demonstration 3/10 (sd 0.0032). */
    for (int i = 0; i < 10; i++) {
        CHECK_NEAR(qcount[i] / (double)reps, 0.1, 0.012);
        CHECK_NEAR(dcount[i] / (double)(3 * reps), 0.1, 0.012);
    }
    /* All ten, through either code path; the same seed gives the same episode. */
    CHECK(icl_episode_draw(&t, 1, ICL_SPLIT_TRAIN, 9, &rng, &q, d, &err) == 0);
    icl_rng_seed(&rng, 9);
    icl_rng_seed(&rng2, 9);
    CHECK(icl_episode_draw(&t, 0, ICL_SPLIT_TEST, 4, &rng, &q, d, &err) == 0 &&
          icl_episode_draw(&t, 0, ICL_SPLIT_TEST, 4, &rng2, &q2, d2, &err) == 0 && q == q2 &&
          !memcmp(d, d2, 4 * sizeof *d));
    CHECK(icl_episode_draw(&t, 0, ICL_SPLIT_TEST, 10, &rng, &q, d, &err) == -1 && strstr(err.msg, "10 test examples"));
    CHECK(icl_episode_draw(&t, 0, ICL_SPLIT_TRAIN, 0, &rng, &q, d, &err) == -1 && strstr(err.msg, "0 train"));
    CHECK(icl_episode_draw(&t, 2, ICL_SPLIT_TEST, 1, &rng, &q, d, &err) == -1);
    CHECK(icl_episode_draw(&t, 0, 2, 1, &rng, &q, d, &err) == -1);
    icl_toktask_free(&t);

    /* The large-episode path (more than 64 examples) on the bitwise test split. */
    CHECK(icl_toktask_bitwise(&t, 2, &err) == 0);
    const icl_tokex **big = malloc(499 * sizeof *big);
    CHECK(icl_episode_draw(&t, 3, ICL_SPLIT_TEST, 499, &rng, &q, big, &err) == 0);
    long dup = 0;
    char seen[500] = {0};
    size_t base = t.first[2 * 3 + 1];
    dup += seen[q - &t.ex[base]]++;
    for (int i = 0; i < 499; i++) dup += big[i] < &t.ex[base] || big[i] >= &t.ex[base + 500] || seen[big[i] - &t.ex[base]]++;
    CHECK(dup == 0);
    free(big);
    icl_toktask_free(&t);
}

static void test_match(void) {
    CHECK(icl_answer_match(" 01000\nfoo", 10, "01000") == 1);
    CHECK(icl_answer_match("01000 ", 6, " 01000") == 1);
    CHECK(icl_answer_match("\t01000\t\n", 8, "01000") == 1);
    CHECK(icl_answer_match("0100", 4, "01000") == 0);
    CHECK(icl_answer_match("01000x", 6, "01000") == 0);
    CHECK(icl_answer_match("01000abc", 5, "01000") == 1); /* only len bytes count */
    CHECK(icl_answer_match("\n01000", 6, "01000") == 0);  /* the first line is empty */
    CHECK(icl_answer_match("", 0, "01000") == 0);
    CHECK(icl_answer_match("Mary's brother", 14, "Mary's") == 0);
    CHECK(icl_answer_match("dog", 3, "Dog") == 0);
    CHECK(icl_answer_match(NULL, 0, "x") == 0);
}

int main(void) {
    strcpy(tmpdir, "/tmp/iclab-toktask-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_bitwise();
    test_pos_small();
    test_pos_real();
    test_file();
    test_template();
    test_prompt();
    test_episode();
    test_match();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return icl_test_finish();
}
