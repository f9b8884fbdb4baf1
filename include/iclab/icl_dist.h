/* Distributed runs over MPI ranks (Open MPI), for data-parallel training and sweeps. Every MPI
 * call of iclab lives in src/dist/icl_dist.c; built without MPI (no ICL_HAVE_MPI) the same
 * functions behave as a single rank, so callers never need #ifdefs.
 *
 * MPI is started only when the process was launched by mpirun (its environment says so): a plain
 * `iclab train` never touches MPI and runs exactly as before. */
#ifndef ICL_DIST_H
#define ICL_DIST_H
#include <stddef.h>
#include "iclab/icl_err.h"

/* 1 if this build has MPI support. */
int icl_dist_compiled(void);
/* Starts MPI when launched by mpirun (and the build has MPI); otherwise one rank, nothing started.
 * Launched by mpirun with more than one process on a build without MPI is an error (the copies
 * would all write the same files). Calling it again is a no-op. Returns 0 or -1 with err set. */
int icl_dist_init(icl_err *err);
/* This process's rank and the number of ranks (0 and 1 without MPI). */
int icl_dist_rank(void);
int icl_dist_size(void);
/* Ends MPI if icl_dist_init started it (after every rank's last collective call). */
void icl_dist_finalize(void);
/* Ends every rank of the job at once with this exit status (exit() alone without MPI). For a
 * failure on one rank while the others wait in a collective call, which would otherwise hang. */
void icl_dist_abort(int status);

/* Sums buf (n floats) over all ranks in place; every rank gets the same result. Open MPI picks
 * its reduction algorithm from the rank count and message size alone, so for the same number of
 * ranks the summation order, and so the bits, are the same on every run. One rank: no-op. */
int icl_dist_sum_f32(float *buf, size_t n, icl_err *err);
/* The same for doubles (small control values: losses, flags). */
int icl_dist_sum_f64(double *buf, size_t n, icl_err *err);
/* Waits for every rank. */
int icl_dist_barrier(icl_err *err);
/* Agreement after a step that may fail on some ranks only: returns 0 if rc == 0 on every rank;
 * otherwise -1 on every rank. A rank whose own rc was 0 gets err "another rank failed" and
 * icl_dist_peer_failed() turns 1, so the CLI can print the real error only where it happened. */
int icl_dist_agree(int rc, icl_err *err);
/* 1 after icl_dist_agree reported another rank's failure to this rank. */
int icl_dist_peer_failed(void);
#endif
