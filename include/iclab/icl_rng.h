/* Seeded, reproducible random numbers (xoshiro256**): the whole state is four words, so it can be
 * saved in a checkpoint and restored for bit-identical resumption. */
#ifndef ICL_RNG_H
#define ICL_RNG_H
#include <stdint.h>

typedef struct icl_rng {
    uint64_t s[4];
} icl_rng;

/* Seeds the generator from one 64-bit value (expanded with splitmix64). */
void icl_rng_seed(icl_rng *rng, uint64_t seed);
/* Derives an independent stream: a generator seeded from (seed, stream). */
void icl_rng_seed_stream(icl_rng *rng, uint64_t seed, uint64_t stream);
uint64_t icl_rng_u64(icl_rng *rng);
/* Uniform in [0, 1) with 53 random bits. */
double icl_rng_uniform(icl_rng *rng);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t icl_rng_below(icl_rng *rng, uint64_t n);
/* Standard normal (Box-Muller, one value per call, no cached spare so the state stays four words). */
double icl_rng_normal(icl_rng *rng);

#endif
