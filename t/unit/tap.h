/*
 * A minimal TAP producer for the unit tests: "ok N - ...", "not ok N",
 * "# diagnostics" and the plan "1..N" at the end, so that prove can read
 * the output of a test binary directly.
 */


#ifndef _TAP_H_INCLUDED_
#define _TAP_H_INCLUDED_


#include <stdint.h>


#if defined(__GNUC__)
#define TAP_PRINTF(a, b)  __attribute__((format(printf, a, b)))
#else
#define TAP_PRINTF(a, b)
#endif


#define ok(cond, ...)                                                         \
    tap_ok((cond) ? 1 : 0, __FILE__, __LINE__, __VA_ARGS__)

#define is_int(got, want, ...)                                                \
    tap_is_int((int64_t) (got), (int64_t) (want), __FILE__, __LINE__,         \
               __VA_ARGS__)

#define is_str(got, want, ...)                                                \
    tap_is_str(got, want, __FILE__, __LINE__, __VA_ARGS__)


int tap_ok(int pass, const char *file, int line, const char *fmt, ...)
    TAP_PRINTF(4, 5);
int tap_is_int(int64_t got, int64_t want, const char *file, int line,
    const char *fmt, ...) TAP_PRINTF(5, 6);
int tap_is_str(const char *got, const char *want, const char *file, int line,
    const char *fmt, ...) TAP_PRINTF(5, 6);
void tap_diag(const char *fmt, ...) TAP_PRINTF(1, 2);

/* prints the plan; returns the exit status: 0 when every test passed */
int tap_done(void);


#endif /* _TAP_H_INCLUDED_ */
