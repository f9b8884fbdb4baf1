/* A pretraining corpus for a small language model that should learn the token ICL tasks (issue 12):
 * running text from the Brown corpus mixed with ICL episodes of token task families (icl_toktask),
 * documents separated by the end-of-text token.
 *
 * Layout. corpus = EOS doc EOS doc ... doc EOS, EOS = "<|endoftext|>" (ICL_LMCORPUS_EOS, the BPE
 * trainer's special token): every document starts after an EOS (the BOS a tokenizer with
 * add_bos_token puts first at inference) and ends before one. Documents come in a seeded random
 * order.
 *
 * Running-text documents. Every Brown file (ca01 .. cr09, name order) is read as in icl_toktask_pos:
 * one sentence per non-blank line, words untagged and joined by single spaces, `` and '' become ".
 * A line starting with a tab starts a paragraph; a paragraph's sentences are joined by spaces and
 * paragraphs end with a newline. A document is a run of consecutive paragraphs of one file, cut as
 * soon as it holds text_doc_bytes bytes (the file's last one may be shorter). Every sentence whose
 * text is the input of a TEST example of any given task (the pos family's test sentences) is left
 * out, so no test query appears as running text. The documents are taken in a seeded random order
 * until the running-text budget is met; when it exceeds the corpus, they are taken again in a new
 * order (text_passes counts the passes begun).
 *
 * Episode documents. One ICL episode per document, from the TRAINING split only: a concept drawn
 * with probability proportional to its weight, a number of demonstrations uniform in
 * min_shots..max_shots (capped at the concept's training examples minus one), the instruction
 * line with probability `prompting`, the prompt built by icl_prompt_build with the template, then
 * the answer and the template's text after {y} (so the episode is complete, ending in a newline).
 * A training example whose (input, output) equals a TEST example of any given task is never used
 * (bitwise: another concept's test pair with the same answer, or a Null draw; such pairs are
 * counted in excluded_train_pairs), so no test line "input -> output" appears in the corpus.
 *
 * Concept weights ("shares"): each concept's weight is family weight x concept weight, both 1 by
 * default. The spec is a comma-separated list of NAME=W (W >= 0): NAME is a family ("bitwise",
 * "pos", a task file's path: sets the family weight), a concept name ("XOR", "Null": sets that
 * concept in every family), or FAMILY:CONCEPT ("pos:Adverb": one concept). Later items override
 * earlier ones for the same target. Weight 0 leaves a concept out.
 *
 * Size. target_bytes > 0: running text gets round(text_share x target_bytes) bytes and episodes
 * the rest, each budget filled document by document until it is reached (so slightly over);
 * otherwise target_docs documents, round(text_share x target_docs) of them running text.
 * Document bytes exclude the EOS markers.
 *
 * Everything random comes from icl_rng streams of `seed` (0 text order, 1 episodes, 2 document
 * order), so the same options give the same bytes. The task families' own splits depend on their
 * seed (icl_toktask_bitwise/pos): build them with the seed `iclab eval --seed` will use. */
#ifndef ICL_LMCORPUS_H
#define ICL_LMCORPUS_H
#include <stddef.h>
#include <stdint.h>
#include "iclab/icl_err.h"
#include "iclab/icl_toktask.h"

#define ICL_LMCORPUS_EOS "<|endoftext|>"

typedef struct icl_lmcorpus_opts {
    const icl_toktask *const *tasks; /* the task families of the episodes (may be 0 of them) */
    int n_tasks;
    const char *brown_dir;  /* running text; NULL only when text_share is 0 */
    uint64_t seed;          /* the corpus's draws */
    size_t target_bytes;    /* total document bytes; 0: use target_docs */
    size_t target_docs;     /* total documents (when target_bytes is 0) */
    double text_share;      /* share of running text in [0, 1] (bytes or documents, as the target); default 0.5 */
    const char *shares;     /* concept weights (above); NULL: all 1 */
    int min_shots, max_shots; /* demonstrations per episode, uniform in this range; default 0..10 */
    const char *template_spec; /* NULL: ICL_TOKTASK_DEFAULT_TEMPLATE */
    double prompting;       /* probability of the instruction line; default 0.25 */
    size_t text_doc_bytes;  /* running-text document size; default 2048 */
} icl_lmcorpus_opts;

/* Fills the defaults above (no tasks, brown_dir NULL, seed 1, target_bytes 8,000,000). */
void icl_lmcorpus_opts_default(icl_lmcorpus_opts *o);

enum { ICL_LMDOC_TEXT = 0, ICL_LMDOC_EPISODE = 1 };

/* One document: text[off .. off + len) of the corpus. */
typedef struct icl_lmdoc {
    size_t off, len;
    int kind;      /* ICL_LMDOC_* */
    int concept;   /* episode: index into the corpus's concept list (-1 for text) */
    int shots;     /* episode: demonstrations */
    int prompted;  /* episode: instruction line present */
} icl_lmdoc;

typedef struct icl_lmcorpus {
    char *text;            /* the whole corpus, NUL-terminated */
    size_t len;
    icl_lmdoc *docs;       /* in corpus order */
    size_t n_docs;
    /* concepts of all tasks in order, named "family:concept" */
    int n_concepts;
    char **concept_names;
    double *weights;              /* (n_concepts) after the shares */
    size_t *episodes, *ep_bytes;  /* (n_concepts) episodes and their bytes */
    size_t *train_usable;         /* (n_concepts) training examples left after the exclusion */
    /* statistics */
    size_t text_docs, text_bytes, episode_docs, episode_bytes;
    size_t text_sentences;        /* Brown sentences kept as running text (one pass) */
    size_t excluded_sentences;    /* Brown sentences left out: a test input's text */
    size_t excluded_train_pairs;  /* training examples left out: equal to a test example */
    int text_passes;
} icl_lmcorpus;

/* Builds the corpus. Errors: no tasks and text_share < 1, text_share or prompting outside [0, 1],
 * min/max shots out of order or above 256, a bad template or shares spec (unknown name, bad weight,
 * every weight 0 while episodes are asked for), a Brown directory that cannot be read, a token not
 * in word/tag form, a Brown file that is not valid UTF-8, no running text left, a zero target,
 * a concept without training examples. */
int icl_lmcorpus_build(icl_lmcorpus *c, const icl_lmcorpus_opts *o, icl_err *err);
void icl_lmcorpus_free(icl_lmcorpus *c);

/* Writes the corpus text to text_path and, when index_path is not NULL, one line per document
 * (a header line, then `offset<TAB>bytes<TAB>kind<TAB>concept<TAB>shots<TAB>prompted`, kind "text"
 * or "episode", concept "-" for text), both atomically. */
int icl_lmcorpus_write(const icl_lmcorpus *c, const char *text_path, const char *index_path, icl_err *err);

#endif
