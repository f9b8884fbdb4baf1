/* icl_sweep: grid parsing (seeds, --set axes), run order and names, and the one-rank fallback of
 * icl_dist (the functions a build without MPI, or a plain run, relies on). */
#include <string.h>
#include "icl_test.h"
#include "iclab/icl_dist.h"
#include "iclab/icl_sweep.h"

static icl_sweep s; /* large: off the stack */

int main(void) {
    icl_err err;
    icl_train_config base, c;
    char name[256];
    CHECK(icl_train_config_preset(&base, "tiny", &err) == 0);

    /* seeds: ranges, lists, both; repeats, reversed ranges, junk and empty lists refused */
    icl_sweep_init(&s, &base);
    CHECK(s.plateau_mse == ICL_SWEEP_PLATEAU_MSE);
    CHECK(icl_sweep_set_seeds(&s, "1-3,7", &err) == 0 && s.n_seeds == 4 && s.seeds[0] == 1 && s.seeds[2] == 3 && s.seeds[3] == 7);
    CHECK(icl_sweep_set_seeds(&s, "5", &err) == 0 && s.n_seeds == 1 && s.seeds[0] == 5);
    const char *bad_seeds[] = {"", "3-1", "1,1", "1-3,2", "a", "1,", "-1", "1-", "1;2", "0-1000"};
    for (size_t i = 0; i < sizeof bad_seeds / sizeof bad_seeds[0]; i++)
        CHECK_MSG(icl_sweep_set_seeds(&s, bad_seeds[i], &err) != 0, "seeds '%s' accepted", bad_seeds[i]);
    CHECK(icl_sweep_set_seeds(&s, "", &err) != 0 && strstr(err.msg, "grid would be empty"));

    /* axes: flag or key names, values checked like iclab train's flags */
    icl_sweep_init(&s, &base);
    CHECK(icl_sweep_add_axis(&s, "lr=1e-4,3e-4", &err) == 0);
    CHECK(icl_sweep_add_axis(&s, "width=16,32,64", &err) == 0);
    CHECK(s.n_axes == 2 && s.n_values[0] == 2 && s.n_values[1] == 3);
    CHECK(icl_sweep_add_axis(&s, "train.lr=1", &err) != 0 && strstr(err.msg, "twice"));
    CHECK(icl_sweep_add_axis(&s, "bogus=1,2", &err) != 0 && strstr(err.msg, "unknown field 'bogus'"));
    CHECK(icl_sweep_add_axis(&s, "layers=", &err) != 0);
    CHECK(icl_sweep_add_axis(&s, "layers=2,,3", &err) != 0);
    CHECK(icl_sweep_add_axis(&s, "layers=2,x", &err) != 0);
    CHECK(icl_sweep_add_axis(&s, "layers=2,2", &err) != 0 && strstr(err.msg, "twice"));
    CHECK(icl_sweep_add_axis(&s, "seed=1,2", &err) != 0 && strstr(err.msg, "--seeds"));
    CHECK(icl_sweep_add_axis(&s, "=1", &err) != 0);
    CHECK(s.n_axes == 2);
    CHECK(icl_sweep_n_runs(&s) == 0); /* no seeds yet */
    CHECK(icl_sweep_set_seeds(&s, "1-2", &err) == 0);
    CHECK(icl_sweep_n_runs(&s) == 12);

    /* order: seeds fastest, then the last axis; names from the values as written */
    CHECK(icl_sweep_run_config(&s, 0, &c, name, sizeof name, &err) == 0);
    CHECK_MSG(!strcmp(name, "lr=1e-4_width=16_seed=1"), "run 0 is %s", name);
    CHECK(c.seed == 1 && c.n_embd == 16 && fabsf(c.lr - 1e-4f) < 1e-9f);
    CHECK(icl_sweep_run_config(&s, 1, &c, name, sizeof name, &err) == 0 && c.seed == 2 && c.n_embd == 16);
    CHECK(icl_sweep_run_config(&s, 2, &c, name, sizeof name, &err) == 0 && c.seed == 1 && c.n_embd == 32);
    CHECK(icl_sweep_run_config(&s, 11, &c, name, sizeof name, &err) == 0);
    CHECK_MSG(!strcmp(name, "lr=3e-4_width=64_seed=2"), "run 11 is %s", name);
    CHECK(c.n_layer == base.n_layer && c.steps == base.steps); /* the rest is the base */
    CHECK(icl_sweep_run_config(&s, 12, &c, name, sizeof name, &err) != 0);

    /* a value that parses but makes an invalid run is reported with the run's name */
    icl_sweep_init(&s, &base);
    CHECK(icl_sweep_add_axis(&s, "heads=2,3", &err) == 0 && icl_sweep_set_seeds(&s, "1", &err) == 0);
    CHECK(icl_sweep_run_config(&s, 0, &c, name, sizeof name, &err) == 0);
    CHECK(icl_sweep_run_config(&s, 1, &c, name, sizeof name, &err) != 0 && strstr(err.msg, "heads=3_seed=1"));

    /* no axes: runs are named by seed alone */
    icl_sweep_init(&s, &base);
    CHECK(icl_sweep_set_seeds(&s, "4", &err) == 0 && icl_sweep_run_config(&s, 0, &c, name, sizeof name, &err) == 0);
    CHECK(!strcmp(name, "seed=4") && c.seed == 4);

    /* icl_dist outside mpirun: one rank, collectives are no-ops, agreement is the local status */
    CHECK(icl_dist_init(&err) == 0 && icl_dist_rank() == 0 && icl_dist_size() == 1);
    float g[3] = {1, 2, 3};
    double d[2] = {4, 5};
    CHECK(icl_dist_sum_f32(g, 3, &err) == 0 && g[0] == 1 && g[2] == 3);
    CHECK(icl_dist_sum_f64(d, 2, &err) == 0 && d[1] == 5);
    CHECK(icl_dist_barrier(&err) == 0);
    CHECK(icl_dist_agree(0, &err) == 0 && icl_dist_agree(-1, &err) == -1 && !icl_dist_peer_failed());
    icl_dist_finalize();
    return icl_test_finish();
}
