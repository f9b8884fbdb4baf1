/* Prompt files of `iclab capture`: one prompt per line ("\n", "\t" and "\\" escapes inside one); a
 * line "LABEL<TAB>PROMPT" gives the prompt a label, and then every line must have one. Trailing CR
 * and empty lines are skipped; a NUL byte is an error. */
#ifndef ICL_PROMPTS_H
#define ICL_PROMPTS_H
#include <stddef.h>
#include "iclab/icl_err.h"

typedef struct icl_prompts {
    char **own;                /* each line as read (malloc'd); text and label point into it */
    const char **text, **label; /* n prompts, NUL-terminated, unescaped; label[i] NULL when unlabelled */
    int n;                     /* at least 1 on success */
} icl_prompts;

/* Parses len bytes of a prompt file (name is used in messages). 0, or -1 with err set and p empty. */
int icl_prompts_parse(icl_prompts *p, const char *data, size_t len, const char *name, icl_err *err);
/* Reads and parses the file at path. */
int icl_prompts_read(icl_prompts *p, const char *path, icl_err *err);
void icl_prompts_free(icl_prompts *p);

#endif
