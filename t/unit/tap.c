/*
 * A minimal TAP producer for the unit tests (see tap.h).
 */


#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"


static void tap_line(int pass, const char *fmt, va_list args);


static int  tap_count;
static int  tap_failed;


int
tap_ok(int pass, const char *file, int line, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    tap_line(pass, fmt, args);
    va_end(args);

    if (!pass) {
        tap_diag("  failed at %s line %d", file, line);
    }

    return pass;
}


int
tap_is_int(int64_t got, int64_t want, const char *file, int line,
    const char *fmt, ...)
{
    int      pass;
    va_list  args;

    pass = (got == want);

    va_start(args, fmt);
    tap_line(pass, fmt, args);
    va_end(args);

    if (!pass) {
        tap_diag("  failed at %s line %d", file, line);
        tap_diag("       got: %" PRId64, got);
        tap_diag("  expected: %" PRId64, want);
    }

    return pass;
}


int
tap_is_str(const char *got, const char *want, const char *file, int line,
    const char *fmt, ...)
{
    int      pass;
    va_list  args;

    pass = (got != NULL && want != NULL && strcmp(got, want) == 0)
           || (got == NULL && want == NULL);

    va_start(args, fmt);
    tap_line(pass, fmt, args);
    va_end(args);

    if (!pass) {
        tap_diag("  failed at %s line %d", file, line);
        tap_diag("       got: '%s'", got != NULL ? got : "(null)");
        tap_diag("  expected: '%s'", want != NULL ? want : "(null)");
    }

    return pass;
}


void
tap_diag(const char *fmt, ...)
{
    va_list  args;

    fputs("# ", stdout);

    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);

    fputc('\n', stdout);
    fflush(stdout);
}


int
tap_done(void)
{
    printf("1..%d\n", tap_count);

    if (tap_failed) {
        tap_diag("failed %d of %d tests", tap_failed, tap_count);
    }

    fflush(stdout);

    return tap_failed ? 1 : 0;
}


static void
tap_line(int pass, const char *fmt, va_list args)
{
    char  desc[512];
    char *p;

    tap_count++;

    if (!pass) {
        tap_failed++;
    }

    vsnprintf(desc, sizeof(desc), fmt, args);

    /* a newline or a '#' in a description would confuse TAP readers */
    for (p = desc; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r' || *p == '#') {
            *p = ' ';
        }
    }

    printf("%sok %d - %s\n", pass ? "" : "not ", tap_count, desc);
    fflush(stdout);
}
