/* The one place iclab calls MPI (see icl_dist.h). Without ICL_HAVE_MPI everything is one rank. */
#include "iclab/icl_dist.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#ifdef ICL_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1, g_started = 0, g_peer_failed = 0;

int icl_dist_compiled(void) {
#ifdef ICL_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

/* The process count mpirun (Open MPI, or a PMI-based launcher) announced, or 0 when not launched
 * by one. Reading the environment first keeps MPI out of plain runs: MPI_Init as a singleton is
 * slow and on some machines prints warnings. */
static int launcher_size(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v);
    }
    return 0;
}

int icl_dist_init(icl_err *err) {
    if (g_started) return 0;
    int n = launcher_size();
    if (n <= 0) return 0;
#ifdef ICL_HAVE_MPI
    int provided;
    /* only the main thread calls MPI; OpenMP threads do the arithmetic in between */
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) return icl_errf(err, "MPI_Init failed");
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    g_started = 1;
    return 0;
#else
    if (n > 1) return icl_errf(err, "launched by mpirun with %d processes, but this iclab was built without MPI (install libopenmpi-dev and rebuild)", n);
    return 0;
#endif
}

int icl_dist_rank(void) { return g_rank; }
int icl_dist_size(void) { return g_size; }

void icl_dist_finalize(void) {
#ifdef ICL_HAVE_MPI
    if (g_started) MPI_Finalize();
#endif
    g_started = 0;
}

void icl_dist_abort(int status) {
#ifdef ICL_HAVE_MPI
    if (g_started && g_size > 1) MPI_Abort(MPI_COMM_WORLD, status);
#endif
    exit(status);
}

int icl_dist_sum_f32(float *buf, size_t n, icl_err *err) {
    if (g_size == 1) return 0;
#ifdef ICL_HAVE_MPI
    /* MPI counts are int: large buffers go in pieces (each piece's order is still fixed) */
    for (size_t off = 0; off < n;) {
        int cnt = n - off > (size_t)INT_MAX ? INT_MAX : (int)(n - off);
        if (MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
            return icl_errf(err, "MPI_Allreduce of %zu floats failed", n);
        off += (size_t)cnt;
    }
#endif
    return 0;
}

int icl_dist_sum_f64(double *buf, size_t n, icl_err *err) {
    if (g_size == 1) return 0;
#ifdef ICL_HAVE_MPI
    if (n > (size_t)INT_MAX || MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
        return icl_errf(err, "MPI_Allreduce of %zu doubles failed", n);
#endif
    return 0;
}

int icl_dist_barrier(icl_err *err) {
    if (g_size == 1) return 0;
#ifdef ICL_HAVE_MPI
    if (MPI_Barrier(MPI_COMM_WORLD) != MPI_SUCCESS) return icl_errf(err, "MPI_Barrier failed");
#endif
    return 0;
}

int icl_dist_agree(int rc, icl_err *err) {
    if (g_size == 1) return rc ? -1 : 0;
    double failed = rc ? 1.0 : 0.0;
    icl_err e2;
    if (icl_dist_sum_f64(&failed, 1, &e2)) {
        if (err) *err = e2;
        return -1;
    }
    if (failed == 0) return 0;
    if (!rc) {
        g_peer_failed = 1;
        icl_errf(err, "another rank failed");
    }
    return -1;
}

int icl_dist_peer_failed(void) { return g_peer_failed; }
