/* A small reader for the CSV files iclab writes (a header line, comma-separated fields, no quoting),
 * so reports and figures can be rebuilt from a run folder alone. */
#ifndef ICL_CSV_H
#define ICL_CSV_H
#include <stddef.h>
#include "iclab/icl_err.h"

typedef struct icl_csv {
    int n_cols, n_rows;
    char **header; /* n_cols */
    char **cells;  /* n_rows * n_cols, row-major; pointers into one buffer */
    char *buf;
} icl_csv;

/* Reads path; rows with the wrong number of fields are an error naming the line. */
int icl_csv_read(icl_csv *t, const char *path, icl_err *err);
void icl_csv_free(icl_csv *t);
/* Index of the named column, or -1. */
int icl_csv_col(const icl_csv *t, const char *name);
/* Cell text, and the cell as a number (NaN if it is not one). */
const char *icl_csv_str(const icl_csv *t, int row, int col);
double icl_csv_num(const icl_csv *t, int row, int col);

#endif
