/* Minimal test harness: CHECK macros count failures; main returns icl_test_finish(). */
#ifndef ICL_TEST_H
#define ICL_TEST_H
#include <math.h>
#include <stddef.h>
#include <stdio.h>

/* Fontconfig (which cairo uses for text) keeps its caches until the process ends, and
 * LeakSanitizer would report them in any test that draws; this hook is read only by
 * sanitizer builds. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig.so\n"; }

static int icl_test_failures = 0, icl_test_checks = 0;

#define CHECK(cond)                                                              \
    do {                                                                         \
        icl_test_checks++;                                                       \
        if (!(cond)) {                                                           \
            icl_test_failures++;                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define CHECK_MSG(cond, ...)                                        \
    do {                                                            \
        icl_test_checks++;                                          \
        if (!(cond)) {                                              \
            icl_test_failures++;                                    \
            fprintf(stderr, "%s:%d: CHECK failed: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                           \
            fprintf(stderr, "\n");                                  \
        }                                                           \
    } while (0)

/* |a-b| <= tol, printing both values on failure. */
#define CHECK_NEAR(a, b, tol)                                                             \
    do {                                                                                  \
        double _a = (a), _b = (b);                                                        \
        CHECK_MSG(fabs(_a - _b) <= (tol), "%s = %.9g vs %s = %.9g (tol %g)", #a, _a, #b, _b, (double)(tol)); \
    } while (0)

/* Relative L2 error ||a - b|| / ||b|| (absolute when b is zero), in double. */
static inline double icl_rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static inline int icl_test_finish(void) {
    printf("%d checks, %d failures\n", icl_test_checks, icl_test_failures);
    return icl_test_failures ? 1 : 0;
}

#endif
