/*
 * Unit tests of cm_breaker: the circuit-breaker state machine, its
 * transitions and their reasons, probes, overrides and stale permits.
 * TAP output.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_breaker.h"
#include "tap.h"


#define T0        1000000          /* an arbitrary monotonic start */
#define OPEN_MS   30000
#define DEADLINE  5000
#define SLOW_MS   1000

#define FAST      10               /* durations of calls */
#define SLOW      (SLOW_MS + 1)


static cm_br_conf_t conf(void);
static int call(cm_breaker_t *b, const cm_br_conf_t *c, int64_t now,
    cm_br_outcome_e outcome, int64_t duration);
static void calls(cm_breaker_t *b, const cm_br_conf_t *c, int64_t now, int n,
    cm_br_outcome_e outcome, int64_t duration);
static int transition_is(cm_breaker_t *b, uint32_t *seen,
    cm_br_state_e from, cm_br_state_e to, cm_br_reason_e reason,
    const char *text, const char *desc);
static void no_transition(cm_breaker_t *b, uint32_t *seen, const char *desc);
static void open_breaker(cm_breaker_t *b, const cm_br_conf_t *c,
    int64_t now);
static void test_names(void);
static void test_conf_check(void);
static void test_init(void);
static void test_min_calls(void);
static void test_failure_rate(void);
static void test_window_sliding(void);
static void test_slow_calls(void);
static void test_open(void);
static void test_probes_succeed(void);
static void test_probe_fails(void);
static void test_probe_limit(void);
static void test_probe_deadline(void);
static void test_probe_slow(void);
static void test_overrides(void);
static void test_stale_permits(void);
static void test_counters(void);
static void test_history(void);
static void test_retry_after(void);
static void test_conf_reload(void);
static void test_clocks(void);
static void test_epoch_wrap(void);
static void test_relocatable(void);


int
main(void)
{
    tap_diag("sizeof(cm_breaker_t) = %u, sizeof(cm_br_conf_t) = %u",
             (unsigned) sizeof(cm_breaker_t), (unsigned) sizeof(cm_br_conf_t));

    test_names();
    test_conf_check();
    test_init();
    test_min_calls();
    test_failure_rate();
    test_window_sliding();
    test_slow_calls();
    test_open();
    test_probes_succeed();
    test_probe_fails();
    test_probe_limit();
    test_probe_deadline();
    test_probe_slow();
    test_overrides();
    test_stale_permits();
    test_counters();
    test_history();
    test_retry_after();
    test_conf_reload();
    test_clocks();
    test_epoch_wrap();
    test_relocatable();

    return tap_done();
}


/* window 10, decisions from 5 calls, 50% failures or 80% slow calls */

static cm_br_conf_t
conf(void)
{
    cm_br_conf_t  c;

    memset(&c, 0, sizeof(cm_br_conf_t));

    c.window = 10;
    c.min_calls = 5;
    c.failure_rate = 50;
    c.slow_rate = 80;
    c.slow_ms = SLOW_MS;
    c.open_ms = OPEN_MS;
    c.half_open_probes = 3;
    c.probe_deadline_ms = DEADLINE;

    return c;
}


/* one call from acquire to record; 0 if it was rejected */

static int
call(cm_breaker_t *b, const cm_br_conf_t *c, int64_t now,
    cm_br_outcome_e outcome, int64_t duration)
{
    int  permit;

    if (!cm_br_acquire(b, c, now, &permit)) {
        return 0;
    }

    cm_br_record(b, c, now + duration, permit, outcome, duration);

    return 1;
}


static void
calls(cm_breaker_t *b, const cm_br_conf_t *c, int64_t now, int n,
    cm_br_outcome_e outcome, int64_t duration)
{
    int  i;

    for (i = 0; i < n; i++) {
        call(b, c, now, outcome, duration);
    }
}


/* the next transition after *seen is this one */

static int
transition_is(cm_breaker_t *b, uint32_t *seen, cm_br_state_e from,
    cm_br_state_e to, cm_br_reason_e reason, const char *text,
    const char *desc)
{
    int                 pass;
    cm_br_transition_t  tr;

    memset(&tr, 0, sizeof(cm_br_transition_t));

    if (!cm_br_take_transition(b, seen, &tr)) {
        return ok(0, "%s: no transition", desc);
    }

    pass = (tr.from == (uint32_t) from && tr.to == (uint32_t) to
            && tr.reason == (uint32_t) reason);

    if (!pass) {
        tap_diag("got %s -> %s (reason %u)", cm_br_state_name(tr.from),
                 cm_br_state_name(tr.to), (unsigned) tr.reason);
    }

    ok(pass, "%s: %s -> %s", desc, cm_br_state_name(from),
       cm_br_state_name(to));

    if (text != NULL) {
        pass &= is_str(tr.reason_text, text, "%s: reason text", desc);
    }

    return pass;
}


static void
no_transition(cm_breaker_t *b, uint32_t *seen, const char *desc)
{
    cm_br_transition_t  tr;

    ok(!cm_br_take_transition(b, seen, &tr), "%s: no transition", desc);
}


/* min_calls failures: CLOSED -> OPEN at now */

static void
open_breaker(cm_breaker_t *b, const cm_br_conf_t *c, int64_t now)
{
    int  i, permit;

    for (i = 0; i < (int) c->min_calls; i++) {
        if (cm_br_acquire(b, c, now, &permit)) {
            cm_br_record(b, c, now, permit, CM_BR_FAILURE, FAST);
        }
    }
}


static void
test_names(void)
{
    is_str(cm_br_state_name(CM_BR_CLOSED), "closed", "name closed");
    is_str(cm_br_state_name(CM_BR_OPEN), "open", "name open");
    is_str(cm_br_state_name(CM_BR_HALF_OPEN), "half_open", "name half_open");
    is_str(cm_br_state_name(CM_BR_FORCED_OPEN), "forced_open",
           "name forced_open");
    is_str(cm_br_state_name(CM_BR_DISABLED), "disabled", "name disabled");
    is_str(cm_br_state_name((cm_br_state_e) 5), "unknown", "name unknown");
}


static void
test_conf_check(void)
{
    const char    *err;
    cm_br_conf_t   c;

    c = conf();
    err = NULL;
    ok(cm_br_conf_check(&c, &err) == 0 && err == NULL, "conf ok");

    c = conf();
    c.window = CM_BR_WINDOW_MAX;
    c.min_calls = CM_BR_WINDOW_MAX;
    c.failure_rate = 100;
    c.slow_rate = 100;
    c.slow_ms = 0;
    c.open_ms = 0;
    c.half_open_probes = CM_BR_PROBES_MAX;
    c.probe_deadline_ms = 1;
    ok(cm_br_conf_check(&c, &err) == 0, "conf at its limits ok");

#define BAD(field, value, want)                                               \
    c = conf();                                                               \
    c.field = value;                                                          \
    err = NULL;                                                               \
    ok(cm_br_conf_check(&c, &err) == -1 && err != NULL                        \
       && strcmp(err, want) == 0, "conf " #field " = " #value " refused")

    BAD(window, 0, "window must be 1..256");
    BAD(window, 257, "window must be 1..256");
    BAD(min_calls, 0, "min_calls must be 1..window");
    BAD(min_calls, 11, "min_calls must be 1..window");
    BAD(failure_rate, 0, "failure_rate must be 1..100");
    BAD(failure_rate, 101, "failure_rate must be 1..100");
    BAD(slow_rate, 0, "slow_rate must be 1..100");
    BAD(slow_rate, 101, "slow_rate must be 1..100");
    BAD(slow_ms, -1, "slow_ms must not be negative");
    BAD(open_ms, -1, "open_ms must not be negative");
    BAD(half_open_probes, 0, "half_open_probes must be 1..32");
    BAD(half_open_probes, 33, "half_open_probes must be 1..32");
    BAD(probe_deadline_ms, 0, "probe_deadline_ms must be positive");

#undef BAD
}


static void
test_init(void)
{
    int           permit;
    uint32_t      seen;
    cm_br_conf_t  c;
    cm_breaker_t  b;

    c = conf();

    memset(&b, 0xa5, sizeof(cm_breaker_t));
    cm_br_init(&b, T0);

    is_int(cm_br_state(&b), CM_BR_CLOSED, "init: closed");
    is_int(cm_br_seq(&b), 0, "init: seq 0");
    is_int(b.since, T0, "init: since now");
    is_int(b.calls + b.failures + b.slow + b.acquired + b.rejected, 0,
           "init: empty, counters zero");

    seen = 0;
    no_transition(&b, &seen, "init");

    permit = -1;
    ok(cm_br_acquire(&b, &c, T0, &permit) == 1 && permit >= 0,
       "closed admits with a permit >= 0");
}


static void
test_min_calls(void)
{
    uint32_t      seen;
    cm_br_conf_t  c;
    cm_breaker_t  b;

    c = conf();
    cm_br_init(&b, T0);
    seen = 0;

    calls(&b, &c, T0, 4, CM_BR_FAILURE, FAST);
    is_int(cm_br_state(&b), CM_BR_CLOSED,
           "min_calls: 4 failures of 4 calls, below min_calls 5: closed");
    is_int(b.calls, 4, "min_calls: 4 calls in the window");
    is_int(b.failures, 4, "min_calls: 4 failures in the window");
    no_transition(&b, &seen, "min_calls: 4 calls");

    calls(&b, &c, T0 + 1, 1, CM_BR_FAILURE, FAST);
    is_int(cm_br_state(&b), CM_BR_OPEN, "min_calls: the 5th failure opens");
    transition_is(&b, &seen, CM_BR_CLOSED, CM_BR_OPEN, CM_BR_R_FAILURE_RATE,
                  "failure rate 100% over last 5 calls >= 50%",
                  "min_calls reached");
    is_int(b.since, T0 + 1 + FAST, "opened at the time of the record");

    /* min_calls 1: the first failure decides */
    c.min_calls = 1;
    cm_br_init(&b, T0);
    seen = 0;
    call(&b, &c, T0, CM_BR_FAILURE, FAST);
    transition_is(&b, &seen, CM_BR_CLOSED, CM_BR_OPEN, CM_BR_R_FAILURE_RATE,
                  "failure rate 100% over last 1 calls >= 50%",
                  "min_calls 1");

    /* a bad conf is clamped: min_calls 0 acts as 1, above window as window */
    c.min_calls = 0;
    cm_br_init(&b, T0);
    call(&b, &c, T0, CM_BR_FAILURE, FAST);
    is_int(cm_br_state(&b), CM_BR_OPEN, "min_calls 0 acts as 1");

    c.min_calls = 1000;
    cm_br_init(&b, T0);
    calls(&b, &c, T0, 9, CM_BR_FAILURE, FAST);
    is_int(cm_br_state(&b), CM_BR_CLOSED, "min_calls 1000: 9 calls, closed");
    calls(&b, &c, T0, 1, CM_BR_FAILURE, FAST);
    is_int(cm_br_state(&b), CM_BR_OPEN,
           "min_calls 1000 acts as the window, 10");
}


static void
test_failure_rate(void)
{
    uint32_t      seen;
    cm_br_conf_t  c;
    cm_breaker_t  b;

    c = conf();
    c.window = 20;
    c.min_calls = 20;

    /* 9 failures of 20: 45%, closed */
    cm_br_init(&b, T0);
    seen = 0;
    calls(&b, &c, T0, 11, CM_BR_SUCCESS, FAST);
    calls(&b, &c, T0, 9, CM_BR_FAILURE, FAST);
    is_int(cm_br_state(&b), CM_BR_CLOSED, "45%% < 50%%: closed");
    no_transition(&b, &seen, "45%");

    /* exactly the threshold opens: 10 of 20 */
    cm_br_init(&b, T0);
    seen = 0;
    calls(&b, &c, T0, 10, CM_BR_FAILURE, FAST);
    calls(&b, &c, T0, 10, CM_BR_SUCCESS, FAST);
    transition_is(&b, &seen, CM_BR_CLOSED, CM_BR_OPEN, CM_BR_R_FAILURE_RATE,
                  "failure rate 50% over last 20 calls >= 50%",
                  "exactly 50%");

    /* 13 of 20 */
    cm_br_init(&b, T0);
    seen = 0;
    calls(&b, &c, T0, 7, CM_BR_SUCCESS, FAST);
    calls(&b, &c, T0, 13, CM_BR_FAILURE, FAST);
    transition_is(&b, &seen, CM_BR_CLOSED, CM_BR_OPEN, CM_BR_R_FAILURE_RATE,
                  "failure rate 65% over last 20 calls >= 50%", "65%");

    /* no rounding before the comparison: 1 of 3 is 33.3% */
    c = conf();
    c.window = 3;
    c.min_calls = 3;
    c.failure_rate = 34;

    cm_br_init(&b, T0);
    calls(&b, &c, T0, 1, CM_BR_FAILURE, FAST);
    calls(&b, &c, T0, 2, CM_BR_SUCCESS, FAST);
    is_int(cm_br_state(&b), CM_BR_CLOSED, "33.3%% < 34%%: closed");

    c.failure_rate = 33;
    cm_br_init(&b, T0);
    seen = 0;
    calls(&b, &c, T0, 1, CM_BR_FAILURE, FAST);
    calls(&b, &c, T0, 2, CM_BR_SUCCESS, FAST);
    transition_is(&b, &seen, CM_BR_CLOSED, CM_BR_OPEN, CM_BR_R_FAILURE_RATE,
                  "failure rate 33% over last 3 calls >= 33%",
                  "33.3% >= 33%, shown rounded down");

    /* failure_rate 100: only when every call failed */
    c = conf();
    c.failure_rate = 100;
    cm_br_init(&b, T0);
    calls(&b, &c, T0, 1, CM_BR_SUCCESS, FAST);
    calls(&b, &c, T0, 9, CM_BR_FAILURE, FAST);
    is_int(cm_br_state(&b), CM_BR_CLOSED, "failure_rate 100: 9 of 10 closed");
    calls(&b, &c, T0, 1, CM_BR_FAILURE, FAST);
    is_int(cm_br_state(&b), CM_BR_OPEN, "failure_rate 100: 10 of 10 opens");

    /* a success-only stream never opens */
    c = conf();
    cm_br_init(&b, T0);
    calls(&b, &c, T0, 1000, CM_BR_SUCCESS, FAST);
    is_int(cm_br_state(&b), CM_BR_CLOSED, "1000 successes: closed");
    is_int(b.calls, 10, "the window holds 10 calls");
}


static void
test_window_sliding(void)
{
    cm_br_conf_t  c;
    cm_breaker_t  b;

    c = conf();
    c.min_calls = 10;

    /* F F F F S S S S S S: 40% */
    cm_br_init(&b, T0);
    calls(&b, &c, T0, 4, CM_BR_FAILURE, FAST);
    calls(&b, &c, T0, 6, CM_BR_SUCCESS, FAST);
    is_int(cm_br_state(&b), CM_BR_CLOSED, "sliding: 4 of 10, closed");
    is_int(b.failures, 4, "sliding: 4 failures in the window");

    /* 4 more successes push the 4 failures out */
    calls(&b, &c, T0, 4, CM_BR_SUCCESS, FAST);
    is_int(b.calls, 10, "sliding: still 10 calls");
    is_int(b.failures, 0, "sliding: the old failures dropped out");

    /* 4 failures: 40% again, closed; a 5th: 50%, open */
    calls(&b, &c, T0, 4, CM_BR_FAILURE, FAST);
    is_int(cm_br_state(&b), CM_BR_CLOSED,
           "sliding: 4 new failures in 10, closed (8 in 14 calls)");
    calls(&b, &c, T0, 1, CM_BR_FAILURE, FAST);
    is_int(cm_br_state(&b), CM_BR_OPEN, "sliding: the 5th new failure opens");

    /* failures spread so that the window never holds half of them */
    cm_br_init(&b, T0);
    {
        int  i;

        for (i = 0; i < 500; i++) {
            call(&b, &c, T0 + i, (i % 3 == 0) ? CM_BR_FAILURE : CM_BR_SUCCESS,
                 FAST);
        }
    }
    is_int(cm_br_state(&b), CM_BR_CLOSED,
           "sliding: one failure in three over 500 calls, closed");
    ok(b.failures >= 3 && b.failures <= 4 && b.calls == 10,
       "sliding: the window counts 3 or 4 failures of 10");

    /* the largest window wraps its bit arrays correctly */
    c.window = CM_BR_WINDOW_MAX;
    c.min_calls = CM_BR_WINDOW_MAX;
    cm_br_init(&b, T0);
    calls(&b, &c, T0, 127, CM_BR_FAILURE, FAST);
    calls(&b, &c, T0, 129, CM_BR_SUCCESS, FAST);
    is_int(cm_br_state(&b), CM_BR_CLOSED, "window 256: 127 of 256, closed");
    calls(&b, &c, T0, 127, CM_BR_SUCCESS, FAST);
    is_int(b.failures, 0, "window 256: the 127 failures slid out");
    calls(&b, &c, T0, 128, CM_BR_FAILURE, FAST);
    is_int(cm_br_state(&b), CM_BR_OPEN, "window 256: 128 of 256 opens");
}


static void
test_slow_calls(void)
{
    uint32_t      seen;
    cm_br_conf_t  c;
    cm_breaker_t  b;

    c = conf();

    /* slower than slow_ms: exactly slow_ms is not slow */
    cm_br_init(&b, T0);
    calls(&b, &c, T0, 10, CM_BR_SUCCESS, SLOW_MS);
    is_int(b.slow, 0, "a call of exactly slow_ms is not slow");
    is_int(cm_br_state(&b), CM_BR_CLOSED, "10 calls at slow_ms: closed");

    /* 4 slow + 1 fast: 80% of 5 */
    cm_br_init(&b, T0);
    seen = 0;
    calls(&b, &c, T0, 1, CM_BR_SUCCESS, FAST);
    calls(&b, &c, T0, 3, CM_BR_SUCCESS, SLOW);
    is_int(cm_br_state(&b), CM_BR_CLOSED, "slow: 3 of 4, below min_calls");
    calls(&b, &c, T0, 1, CM_BR_SUCCESS, SLOW);
    transition_is(&b, &seen, CM_BR_CLOSED, CM_BR_OPEN, CM_BR_R_SLOW_RATE,
                  "slow call rate 80% over last 5 calls >= 80% "
                  "(slower than 1000 ms)", "slow calls");

    /* 7 of 10: closed */
    cm_br_init(&b, T0);
    calls(&b, &c, T0, 3, CM_BR_SUCCESS, FAST);
    calls(&b, &c, T0, 7, CM_BR_SUCCESS, SLOW);
    is_int(cm_br_state(&b), CM_BR_CLOSED, "slow: 70%% < 80%%, closed");
    is_int(b.slow, 7, "slow: 7 slow in the window");

    /* slow_rate 100: only when all are slow */
    c.slow_rate = 100;
    cm_br_init(&b, T0);
    calls(&b, &c, T0, 1, CM_BR_SUCCESS, FAST);
    calls(&b, &c, T0, 9, CM_BR_SUCCESS, SLOW);
    is_int(cm_br_state(&b), CM_BR_CLOSED, "slow_rate 100: 9 of 10, closed");
    calls(&b, &c, T0, 1, CM_BR_SUCCESS, SLOW);
    is_int(cm_br_state(&b), CM_BR_OPEN,
           "slow_rate 100: the fast one slid out, 10 of 10 opens");

    /* slow failures count as both; the failure rate is the reason */
    c = conf();
    cm_br_init(&b, T0);
    seen = 0;
    calls(&b, &c, T0, 5, CM_BR_FAILURE, SLOW);
    transition_is(&b, &seen, CM_BR_CLOSED, CM_BR_OPEN, CM_BR_R_FAILURE_RATE,
                  "failure rate 100% over last 5 calls >= 50%",
                  "slow failures: failure rate first");
    is_int(b.slow_calls, 5, "slow failures are counted as slow calls");

    /* a timeout is a failure lasting the timeout */
    c.failure_rate = 100;
    cm_br_init(&b, T0);
    seen = 0;
    calls(&b, &c, T0, 1, CM_BR_SUCCESS, FAST);
    calls(&b, &c, T0, 4, CM_BR_FAILURE, 10000);
    transition_is(&b, &seen, CM_BR_CLOSED, CM_BR_OPEN, CM_BR_R_SLOW_RATE,
                  "slow call rate 80% over last 5 calls >= 80% "
                  "(slower than 1000 ms)",
                  "timeouts below the failure rate open as slow calls");

    /* slow_ms 0: any call taking time is slow */
    c = conf();
    c.slow_ms = 0;
    cm_br_init(&b, T0);
    calls(&b, &c, T0, 5, CM_BR_SUCCESS, 1);
    is_int(cm_br_state(&b), CM_BR_OPEN, "slow_ms 0: 1 ms calls are slow");

    cm_br_init(&b, T0);
    calls(&b, &c, T0, 5, CM_BR_SUCCESS, 0);
    is_int(cm_br_state(&b), CM_BR_CLOSED, "slow_ms 0: 0 ms calls are not");
}


static void
test_open(void)
{
    int           permit;
    uint32_t      seen;
    cm_br_conf_t  c;
    cm_breaker_t  b;

    c = conf();
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    seen = cm_br_seq(&b);

    permit = 12345;
    ok(cm_br_acquire(&b, &c, T0, &permit) == 0 && permit == -1,
       "open rejects, permit -1");
    ok(cm_br_acquire(&b, &c, T0 + OPEN_MS - 1, &permit) == 0,
       "open rejects until open_ms elapsed");
    is_int(cm_br_state(&b), CM_BR_OPEN, "still open at open_ms - 1");
    no_transition(&b, &seen, "open_ms - 1");

    ok(cm_br_acquire(&b, &c, T0 + OPEN_MS, &permit) == 1 && permit >= 0,
       "after open_ms, the next call is a probe");
    is_int(cm_br_state(&b), CM_BR_HALF_OPEN, "half open after open_ms");
    transition_is(&b, &seen, CM_BR_OPEN, CM_BR_HALF_OPEN,
                  CM_BR_R_OPEN_ELAPSED, "open duration of 30000 ms elapsed",
                  "open_ms elapsed");
    is_int(b.since, T0 + OPEN_MS, "half open since then");

    /* cm_br_tick makes the same transition without a call */
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    seen = cm_br_seq(&b);
    cm_br_tick(&b, &c, T0 + OPEN_MS - 1);
    is_int(cm_br_state(&b), CM_BR_OPEN, "tick before open_ms: open");
    cm_br_tick(&b, &c, T0 + 10 * OPEN_MS);
    is_int(cm_br_state(&b), CM_BR_HALF_OPEN, "tick after open_ms: half open");
    transition_is(&b, &seen, CM_BR_OPEN, CM_BR_HALF_OPEN,
                  CM_BR_R_OPEN_ELAPSED, NULL, "tick");
    is_int(b.admitted, 0, "tick admits no probe");

    /* open_ms 0: half open at the next look */
    c.open_ms = 0;
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    ok(cm_br_acquire(&b, &c, T0, &permit) == 1
       && cm_br_state(&b) == CM_BR_HALF_OPEN,
       "open_ms 0: the next call is a probe");
}


static void
test_probes_succeed(void)
{
    int           p1, p2, p3;
    uint32_t      seen;
    cm_br_conf_t  c;
    cm_breaker_t  b;

    p1 = p2 = p3 = -1;

    c = conf();
    cm_br_init(&b, T0);
    calls(&b, &c, T0, 3, CM_BR_SUCCESS, FAST);
    open_breaker(&b, &c, T0);
    is_int(cm_br_state(&b), CM_BR_OPEN, "probes: open");
    cm_br_tick(&b, &c, T0 + OPEN_MS);
    seen = cm_br_seq(&b);

    ok(cm_br_acquire(&b, &c, T0 + OPEN_MS, &p1)
       && cm_br_acquire(&b, &c, T0 + OPEN_MS, &p2)
       && cm_br_acquire(&b, &c, T0 + OPEN_MS + 1, &p3),
       "half open admits 3 probes");
    ok(p1 != p2 && p2 != p3 && p1 != p3, "each probe has its own permit");
    is_int(b.admitted, 3, "3 admitted");
    is_int(b.pending, 7, "3 pending");

    cm_br_record(&b, &c, T0 + OPEN_MS + 100, p2, CM_BR_SUCCESS, 100);
    cm_br_record(&b, &c, T0 + OPEN_MS + 100, p1, CM_BR_SUCCESS, 100);
    is_int(cm_br_state(&b), CM_BR_HALF_OPEN, "2 of 3 succeeded: half open");
    is_int(b.succeeded, 2, "2 succeeded");
    no_transition(&b, &seen, "2 of 3 probes");

    cm_br_record(&b, &c, T0 + OPEN_MS + 200, p3, CM_BR_SUCCESS, 199);
    is_int(cm_br_state(&b), CM_BR_CLOSED, "all probes succeeded: closed");
    transition_is(&b, &seen, CM_BR_HALF_OPEN, CM_BR_CLOSED,
                  CM_BR_R_PROBES_SUCCEEDED, "3 of 3 probes succeeded",
                  "probes succeeded");
    is_int(b.calls + b.failures + b.slow, 0, "closed with an empty window");

    /* the old failures are gone: 4 new failures of 5 are needed */
    calls(&b, &c, T0 + OPEN_MS + 300, 1, CM_BR_SUCCESS, FAST);
    calls(&b, &c, T0 + OPEN_MS + 300, 2, CM_BR_FAILURE, FAST);
    is_int(cm_br_state(&b), CM_BR_CLOSED,
           "after closing: 2 failures of 3 calls, below min_calls: closed");

    /* one probe */
    c.half_open_probes = 1;
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    seen = cm_br_seq(&b);
    ok(call(&b, &c, T0 + OPEN_MS, CM_BR_SUCCESS, FAST)
       && cm_br_state(&b) == CM_BR_CLOSED, "one probe: closed after it");
    transition_is(&b, &seen, CM_BR_OPEN, CM_BR_HALF_OPEN,
                  CM_BR_R_OPEN_ELAPSED, NULL, "one probe: first");
    transition_is(&b, &seen, CM_BR_HALF_OPEN, CM_BR_CLOSED,
                  CM_BR_R_PROBES_SUCCEEDED, "1 of 1 probes succeeded",
                  "one probe: then");
}


static void
test_probe_fails(void)
{
    int           p1, p2, p3, permit;
    uint32_t      seen;
    int64_t       now;
    cm_br_conf_t  c;
    cm_breaker_t  b;

    c = conf();
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    now = T0 + OPEN_MS;

    cm_br_acquire(&b, &c, now, &p1);
    cm_br_acquire(&b, &c, now, &p2);
    cm_br_acquire(&b, &c, now, &p3);
    seen = cm_br_seq(&b);

    cm_br_record(&b, &c, now + 50, p1, CM_BR_SUCCESS, 50);
    cm_br_record(&b, &c, now + 60, p2, CM_BR_FAILURE, 60);
    is_int(cm_br_state(&b), CM_BR_OPEN, "a failed probe reopens");
    transition_is(&b, &seen, CM_BR_HALF_OPEN, CM_BR_OPEN,
                  CM_BR_R_PROBE_FAILED, "probe 2 of 3 failed",
                  "probe failed");
    is_int(b.since, now + 60, "a new open period from the failure");

    /* the third probe ends later: stale, nothing changes */
    cm_br_record(&b, &c, now + 70, p3, CM_BR_SUCCESS, 70);
    is_int(cm_br_state(&b), CM_BR_OPEN, "a probe of the old period: open");
    is_int(b.stale, 1, "counted stale");
    no_transition(&b, &seen, "late probe");

    ok(cm_br_acquire(&b, &c, now + 60 + OPEN_MS - 1, &permit) == 0,
       "rejected during the new open period");
    ok(cm_br_acquire(&b, &c, now + 60 + OPEN_MS, &permit) == 1
       && cm_br_state(&b) == CM_BR_HALF_OPEN,
       "half open again after the new open period");

    /* the first probe failing */
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    cm_br_acquire(&b, &c, now, &p1);
    seen = cm_br_seq(&b);
    cm_br_record(&b, &c, now + 1, p1, CM_BR_FAILURE, 1);
    transition_is(&b, &seen, CM_BR_HALF_OPEN, CM_BR_OPEN,
                  CM_BR_R_PROBE_FAILED, "probe 1 of 3 failed",
                  "first probe failed, the others never admitted");
}


static void
test_probe_limit(void)
{
    int           i, permit, permits[CM_BR_PROBES_MAX];
    cm_br_conf_t  c;
    cm_breaker_t  b;

    c = conf();
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);

    for (i = 0; i < 3; i++) {
        cm_br_acquire(&b, &c, T0 + OPEN_MS, &permits[i]);
    }

    permit = 0;
    ok(cm_br_acquire(&b, &c, T0 + OPEN_MS + 1, &permit) == 0 && permit == -1,
       "the 4th call in half open is rejected");
    is_int(b.admitted, 3, "still 3 admitted");

    /* a reported success frees no slot: 3 probes per period */
    cm_br_record(&b, &c, T0 + OPEN_MS + 2, permits[0], CM_BR_SUCCESS, 2);
    ok(cm_br_acquire(&b, &c, T0 + OPEN_MS + 3, &permit) == 0,
       "after one probe succeeded, still no 4th");

    /* the maximum, 32 probes; a conf above it is clamped */
    c.half_open_probes = 1000;
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);

    for (i = 0; i < CM_BR_PROBES_MAX; i++) {
        if (!cm_br_acquire(&b, &c, T0 + OPEN_MS, &permits[i])) {
            break;
        }
    }

    is_int(i, CM_BR_PROBES_MAX, "32 probes admitted");
    ok(cm_br_acquire(&b, &c, T0 + OPEN_MS, &permit) == 0,
       "half_open_probes 1000 acts as 32");
    is_int(b.pending, 0xffffffff, "32 pending");

    for (i = 0; i < CM_BR_PROBES_MAX; i++) {
        cm_br_record(&b, &c, T0 + OPEN_MS + 1, permits[i], CM_BR_SUCCESS, 1);
    }

    is_int(cm_br_state(&b), CM_BR_CLOSED, "32 successes: closed");
    is_str(b.history[b.seq % CM_BR_HISTORY].reason_text,
           "32 of 32 probes succeeded", "32 probes: reason");

    /* half_open_probes 0 acts as 1 */
    c.half_open_probes = 0;
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    ok(cm_br_acquire(&b, &c, T0 + OPEN_MS, &permit) == 1
       && cm_br_acquire(&b, &c, T0 + OPEN_MS, &permit) == 0,
       "half_open_probes 0 acts as 1");
}


static void
test_probe_deadline(void)
{
    int           p1, p2, p3, permit;
    uint32_t      seen;
    int64_t       h;
    cm_br_conf_t  c;
    cm_breaker_t  b;

    c = conf();
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    h = T0 + OPEN_MS;

    /* two probes answer, the third never does */
    cm_br_acquire(&b, &c, h, &p1);
    cm_br_acquire(&b, &c, h, &p2);
    cm_br_acquire(&b, &c, h + 10, &p3);
    cm_br_record(&b, &c, h + 100, p1, CM_BR_SUCCESS, 100);
    cm_br_record(&b, &c, h + 100, p2, CM_BR_SUCCESS, 100);
    seen = cm_br_seq(&b);

    ok(cm_br_acquire(&b, &c, h + 10 + DEADLINE, &permit) == 0
       && cm_br_state(&b) == CM_BR_HALF_OPEN,
       "at the probe's deadline: still half open, full");
    no_transition(&b, &seen, "at the deadline");

    ok(cm_br_acquire(&b, &c, h + 10 + DEADLINE + 1, &permit) == 0
       && cm_br_state(&b) == CM_BR_OPEN,
       "past the deadline: the missing probe failed, open");
    transition_is(&b, &seen, CM_BR_HALF_OPEN, CM_BR_OPEN,
                  CM_BR_R_PROBE_EXPIRED,
                  "probe 3 of 3 not reported within 5000 ms",
                  "probe deadline");
    is_int(b.expired, 1, "expired counted");

    /* it reports at last: stale */
    cm_br_record(&b, &c, h + 20000, p3, CM_BR_SUCCESS, 19990);
    is_int(cm_br_state(&b), CM_BR_OPEN, "the late probe changes nothing");
    is_int(b.stale, 1, "the late probe is stale");

    /* never stuck: another open period, then probes again */
    ok(cm_br_acquire(&b, &c, h + 10 + DEADLINE + 1 + OPEN_MS, &permit) == 1
       && cm_br_state(&b) == CM_BR_HALF_OPEN, "half open again");

    /* a probe reported past its deadline: the record finds it expired */
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    cm_br_acquire(&b, &c, h, &p1);
    seen = cm_br_seq(&b);
    cm_br_record(&b, &c, h + DEADLINE + 1, p1, CM_BR_SUCCESS, DEADLINE + 1);
    is_int(cm_br_state(&b), CM_BR_OPEN, "a success past the deadline: open");
    transition_is(&b, &seen, CM_BR_HALF_OPEN, CM_BR_OPEN,
                  CM_BR_R_PROBE_EXPIRED,
                  "probe 1 of 3 not reported within 5000 ms",
                  "reported too late");
    is_int(b.stale, 1, "and its result is stale");

    /* reported exactly at the deadline: in time */
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    cm_br_acquire(&b, &c, h, &p1);
    cm_br_record(&b, &c, h + DEADLINE, p1, CM_BR_SUCCESS, DEADLINE);
    ok(cm_br_state(&b) == CM_BR_HALF_OPEN && b.succeeded == 1,
       "a success exactly at the deadline counts");

    /* no traffic at all: a tick (metrics, timer) expires the probe */
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    cm_br_acquire(&b, &c, h, &p1);
    cm_br_tick(&b, &c, h + DEADLINE + 1);
    is_int(cm_br_state(&b), CM_BR_OPEN, "tick expires an abandoned probe");

    /* with open_ms 0, one look goes half_open -> open -> half_open */
    c.open_ms = 0;
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    cm_br_acquire(&b, &c, T0, &p1);
    cm_br_acquire(&b, &c, T0, &p2);
    cm_br_acquire(&b, &c, T0, &p3);
    seen = cm_br_seq(&b);
    ok(cm_br_acquire(&b, &c, T0 + DEADLINE + 1, &permit) == 1
       && cm_br_state(&b) == CM_BR_HALF_OPEN && b.admitted == 1,
       "open_ms 0: expired probes, then a new probe at once");
    transition_is(&b, &seen, CM_BR_HALF_OPEN, CM_BR_OPEN,
                  CM_BR_R_PROBE_EXPIRED, NULL, "chain 1");
    transition_is(&b, &seen, CM_BR_OPEN, CM_BR_HALF_OPEN,
                  CM_BR_R_OPEN_ELAPSED, "open duration of 0 ms elapsed",
                  "chain 2");
    no_transition(&b, &seen, "chain end");

    /* every probe abandoned again and again: open, half open, open... */
    c = conf();
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    {
        int      i, admitted;
        int64_t  now;

        admitted = 0;
        now = T0;

        for (i = 0; i < 100; i++) {
            now += 1000;
            admitted += cm_br_acquire(&b, &c, now, &permit);
        }

        ok(admitted > 3 && b.expired > 0, "abandoned probes: %d admitted, "
           "%u expired over 100 s", admitted, (unsigned) b.expired);
    }
}


static void
test_probe_slow(void)
{
    int           p[3];
    uint32_t      seen;
    int64_t       h;
    cm_br_conf_t  c;
    cm_breaker_t  b;

    c = conf();
    c.slow_rate = 50;
    h = T0 + OPEN_MS;

    /* 2 of 3 probes slow: 66% >= 50% */
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    cm_br_acquire(&b, &c, h, &p[0]);
    cm_br_acquire(&b, &c, h, &p[1]);
    cm_br_acquire(&b, &c, h, &p[2]);
    seen = cm_br_seq(&b);
    cm_br_record(&b, &c, h + SLOW, p[0], CM_BR_SUCCESS, SLOW);
    cm_br_record(&b, &c, h + SLOW, p[1], CM_BR_SUCCESS, SLOW);
    is_int(cm_br_state(&b), CM_BR_HALF_OPEN, "slow probes: decided at the end");
    cm_br_record(&b, &c, h + SLOW, p[2], CM_BR_SUCCESS, FAST);
    transition_is(&b, &seen, CM_BR_HALF_OPEN, CM_BR_OPEN, CM_BR_R_PROBE_SLOW,
                  "slow probe rate 66% over 3 probes >= 50% "
                  "(slower than 1000 ms)", "slow probes");

    /* 1 of 3: closed */
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    cm_br_acquire(&b, &c, h, &p[0]);
    cm_br_acquire(&b, &c, h, &p[1]);
    cm_br_acquire(&b, &c, h, &p[2]);
    cm_br_record(&b, &c, h + SLOW, p[0], CM_BR_SUCCESS, SLOW);
    cm_br_record(&b, &c, h + SLOW, p[1], CM_BR_SUCCESS, FAST);
    cm_br_record(&b, &c, h + SLOW, p[2], CM_BR_SUCCESS, FAST);
    is_int(cm_br_state(&b), CM_BR_CLOSED, "1 slow probe of 3: closed");
}


static void
test_overrides(void)
{
    int           i, permit, admitted;
    uint32_t      seen;
    cm_br_conf_t  c;
    cm_breaker_t  b;

    c = conf();
    cm_br_init(&b, T0);
    seen = 0;

    /* forced open: rejects whatever the time */
    is_int(cm_br_force(&b, T0, CM_BR_FORCED_OPEN), 0, "force open");
    transition_is(&b, &seen, CM_BR_CLOSED, CM_BR_FORCED_OPEN,
                  CM_BR_R_OPERATOR, "operator override", "force open");
    ok(cm_br_acquire(&b, &c, T0, &permit) == 0 && permit == -1,
       "forced open rejects");
    ok(cm_br_acquire(&b, &c, T0 + 1000 * OPEN_MS, &permit) == 0
       && cm_br_state(&b) == CM_BR_FORCED_OPEN,
       "forced open has no open period");
    is_int(cm_br_force(&b, T0, CM_BR_FORCED_OPEN), 0, "force open again");
    no_transition(&b, &seen, "force open twice");

    /* disabled: admits everything, records nothing */
    is_int(cm_br_force(&b, T0, CM_BR_DISABLED), 0, "disable");
    transition_is(&b, &seen, CM_BR_FORCED_OPEN, CM_BR_DISABLED,
                  CM_BR_R_OPERATOR, "operator override", "disable");

    admitted = 0;
    for (i = 0; i < 100; i++) {
        admitted += call(&b, &c, T0 + i, CM_BR_FAILURE, 10 * SLOW);
    }

    is_int(admitted, 100, "disabled admits 100 failing calls");
    is_int(cm_br_state(&b), CM_BR_DISABLED, "disabled stays disabled");
    is_int(b.calls + b.failed + b.slow_calls + b.stale, 0,
           "disabled records nothing");

    /* back to normal */
    is_int(cm_br_force(&b, T0 + 200, CM_BR_CLOSED), 0, "close");
    transition_is(&b, &seen, CM_BR_DISABLED, CM_BR_CLOSED, CM_BR_R_OPERATOR,
                  "operator override", "close");
    calls(&b, &c, T0 + 200, 4, CM_BR_FAILURE, FAST);
    is_int(cm_br_state(&b), CM_BR_CLOSED, "closed works normally: 4 calls");
    calls(&b, &c, T0 + 200, 1, CM_BR_FAILURE, FAST);
    is_int(cm_br_state(&b), CM_BR_OPEN, "closed works normally: 5 opens");
    seen = cm_br_seq(&b);

    /* closing an open breaker */
    is_int(cm_br_force(&b, T0 + 300, CM_BR_CLOSED), 0, "close when open");
    transition_is(&b, &seen, CM_BR_OPEN, CM_BR_CLOSED, CM_BR_R_OPERATOR,
                  "operator override", "close when open");
    is_int(b.calls, 0, "window emptied");

    /* closing a closed one only empties the window */
    calls(&b, &c, T0 + 300, 4, CM_BR_FAILURE, FAST);
    is_int(cm_br_force(&b, T0 + 400, CM_BR_CLOSED), 0, "close when closed");
    no_transition(&b, &seen, "close when closed");
    is_int(b.calls + b.failures, 0, "close when closed empties the window");
    calls(&b, &c, T0 + 400, 1, CM_BR_FAILURE, FAST);
    is_int(cm_br_state(&b), CM_BR_CLOSED, "the 4 failures are gone");

    /* forcing from half open drops its probes */
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    cm_br_acquire(&b, &c, T0 + OPEN_MS, &permit);
    seen = cm_br_seq(&b);
    cm_br_force(&b, T0 + OPEN_MS, CM_BR_FORCED_OPEN);
    transition_is(&b, &seen, CM_BR_HALF_OPEN, CM_BR_FORCED_OPEN,
                  CM_BR_R_OPERATOR, NULL, "force open from half open");
    cm_br_record(&b, &c, T0 + OPEN_MS + 1, permit, CM_BR_SUCCESS, 1);
    ok(cm_br_state(&b) == CM_BR_FORCED_OPEN && b.stale == 1,
       "its probe reports stale");

    /* a disabled breaker's permits are stale once closed */
    cm_br_init(&b, T0);
    cm_br_force(&b, T0, CM_BR_DISABLED);
    cm_br_acquire(&b, &c, T0, &permit);
    cm_br_force(&b, T0, CM_BR_CLOSED);
    cm_br_record(&b, &c, T0, permit, CM_BR_FAILURE, FAST);
    ok(b.calls == 0 && b.stale == 1, "a permit of disabled is stale after");

    /* no other state can be forced */
    seen = cm_br_seq(&b);
    is_int(cm_br_force(&b, T0, CM_BR_OPEN), -1, "force OPEN refused");
    is_int(cm_br_force(&b, T0, CM_BR_HALF_OPEN), -1,
           "force HALF_OPEN refused");
    is_int(cm_br_force(&b, T0, (cm_br_state_e) 7), -1, "force 7 refused");
    no_transition(&b, &seen, "refused overrides");
    is_int(cm_br_state(&b), CM_BR_CLOSED, "still closed");
}


static void
test_stale_permits(void)
{
    int           slow_permit, permit, p1;
    uint32_t      seen;
    cm_br_conf_t  c;
    cm_breaker_t  b;

    c = conf();
    cm_br_init(&b, T0);

    /* a slow call admitted while closed; the breaker opens meanwhile */
    cm_br_acquire(&b, &c, T0, &slow_permit);
    open_breaker(&b, &c, T0 + 10);
    is_int(cm_br_state(&b), CM_BR_OPEN, "stale: opened");
    seen = cm_br_seq(&b);

    cm_br_record(&b, &c, T0 + 9000, slow_permit, CM_BR_FAILURE, 9000);
    is_int(b.stale, 1, "the slow call's result is stale");
    is_int(b.since, T0 + 10, "it does not extend the open period");
    no_transition(&b, &seen, "stale in open");

    /* it would not count as a probe in half open either */
    cm_br_init(&b, T0);
    cm_br_acquire(&b, &c, T0, &slow_permit);
    open_breaker(&b, &c, T0);
    cm_br_acquire(&b, &c, T0 + OPEN_MS, &p1);
    cm_br_record(&b, &c, T0 + OPEN_MS + 1, slow_permit, CM_BR_FAILURE, 1);
    ok(cm_br_state(&b) == CM_BR_HALF_OPEN && b.stale == 1
       && b.pending == 1, "a closed-era failure in half open: ignored");

    /* nor in the next closed period */
    cm_br_init(&b, T0);
    cm_br_acquire(&b, &c, T0, &slow_permit);
    open_breaker(&b, &c, T0);
    c.half_open_probes = 1;
    call(&b, &c, T0 + OPEN_MS, CM_BR_SUCCESS, FAST);
    is_int(cm_br_state(&b), CM_BR_CLOSED, "closed again");
    cm_br_record(&b, &c, T0 + OPEN_MS + 100, slow_permit, CM_BR_FAILURE, 1);
    ok(b.calls == 0 && b.stale == 1, "an old closed-era result: ignored");

    /* a probe reported twice counts once */
    c = conf();
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    cm_br_acquire(&b, &c, T0 + OPEN_MS, &p1);
    cm_br_record(&b, &c, T0 + OPEN_MS + 1, p1, CM_BR_SUCCESS, 1);
    cm_br_record(&b, &c, T0 + OPEN_MS + 1, p1, CM_BR_SUCCESS, 1);
    ok(b.succeeded == 1 && b.stale == 1, "a probe reported twice: once");

    /* invalid permits */
    cm_br_init(&b, T0);
    cm_br_record(&b, &c, T0, -1, CM_BR_FAILURE, 1);
    is_int(b.stale, 1, "permit -1 ignored");

    cm_br_acquire(&b, &c, T0, &permit);
    cm_br_record(&b, &c, T0, permit | 5, CM_BR_FAILURE, 1);
    ok(b.stale == 2 && b.calls == 0, "a probe slot in closed: ignored");

    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    cm_br_acquire(&b, &c, T0 + OPEN_MS, &p1);
    cm_br_record(&b, &c, T0 + OPEN_MS, (p1 & ~0x3f) | 9, CM_BR_FAILURE, 1);
    cm_br_record(&b, &c, T0 + OPEN_MS, (p1 & ~0x3f) | 2, CM_BR_FAILURE, 1);
    cm_br_record(&b, &c, T0 + OPEN_MS, p1 & ~0x3f, CM_BR_FAILURE, 1);
    ok(cm_br_state(&b) == CM_BR_HALF_OPEN && b.stale == 3,
       "unknown, unadmitted and missing probe slots: ignored");
}


static void
test_counters(void)
{
    int           permit;
    cm_br_conf_t  c;
    cm_breaker_t  b;

    c = conf();
    cm_br_init(&b, T0);

    calls(&b, &c, T0, 3, CM_BR_SUCCESS, FAST);
    calls(&b, &c, T0, 1, CM_BR_SUCCESS, SLOW);
    calls(&b, &c, T0, 4, CM_BR_FAILURE, FAST);      /* 50% of 8: open */
    cm_br_acquire(&b, &c, T0 + 1, &permit);         /* rejected */
    cm_br_acquire(&b, &c, T0 + 2, &permit);         /* rejected */

    /* opened at T0 + FAST; the probe fails at T0 + OPEN_MS + 2 FAST */
    c.half_open_probes = 1;
    call(&b, &c, T0 + OPEN_MS + FAST, CM_BR_FAILURE, FAST);
    call(&b, &c, T0 + 2 * OPEN_MS + 2 * FAST, CM_BR_SUCCESS, FAST);
    cm_br_force(&b, T0 + 3 * OPEN_MS, CM_BR_FORCED_OPEN);
    cm_br_force(&b, T0 + 3 * OPEN_MS, CM_BR_CLOSED);

    is_int(b.acquired, 10, "counters: 10 permits");
    is_int(b.rejected, 2, "counters: 2 rejected");
    is_int(b.successes, 5, "counters: 5 successes");
    is_int(b.failed, 5, "counters: 5 failures");
    is_int(b.slow_calls, 1, "counters: 1 slow");
    is_int(b.transitions[CM_BR_CLOSED][CM_BR_OPEN], 1,
           "counters: closed -> open 1");
    is_int(b.transitions[CM_BR_OPEN][CM_BR_HALF_OPEN], 2,
           "counters: open -> half_open 2");
    is_int(b.transitions[CM_BR_HALF_OPEN][CM_BR_OPEN], 1,
           "counters: half_open -> open 1");
    is_int(b.transitions[CM_BR_HALF_OPEN][CM_BR_CLOSED], 1,
           "counters: half_open -> closed 1");
    is_int(b.transitions[CM_BR_CLOSED][CM_BR_FORCED_OPEN], 1,
           "counters: closed -> forced_open 1");
    is_int(b.transitions[CM_BR_FORCED_OPEN][CM_BR_CLOSED], 1,
           "counters: forced_open -> closed 1");
    is_int(cm_br_seq(&b), 7, "counters: 7 transitions, seq 7");
    is_int(b.epoch, 7, "counters: epoch 7");
}


static void
test_history(void)
{
    int                 i, n;
    uint32_t            seen, want;
    cm_br_conf_t        c;
    cm_breaker_t        b;
    cm_br_transition_t  tr;

    c = conf();
    cm_br_init(&b, T0);

    /* 3 transitions, taken in order, with the time of each */
    open_breaker(&b, &c, T0);
    cm_br_force(&b, T0 + 5, CM_BR_DISABLED);
    cm_br_force(&b, T0 + 6, CM_BR_CLOSED);

    seen = 0;
    n = 0;
    while (cm_br_take_transition(&b, &seen, &tr)) {
        n++;
        ok(tr.seq == (uint32_t) n && seen == tr.seq,
           "history: transition %d has seq %d", n, n);
    }

    is_int(n, 3, "history: 3 transitions taken");
    ok(tr.to == CM_BR_CLOSED && tr.at == T0 + 6, "history: the last one");

    /* a caller looking only at what its own call did */
    seen = cm_br_seq(&b);
    calls(&b, &c, T0 + 7, 4, CM_BR_SUCCESS, FAST);
    no_transition(&b, &seen, "history: calls without transitions");

    /* a cursor far behind gets the oldest kept and learns the gap */
    for (i = 0; i < 20; i++) {
        cm_br_force(&b, T0 + 100 + i,
                    (i % 2 == 0) ? CM_BR_FORCED_OPEN : CM_BR_CLOSED);
    }

    seen = 3;
    ok(cm_br_take_transition(&b, &seen, &tr)
       && tr.seq == 23 - CM_BR_HISTORY + 1,
       "history: behind by 20, resumes at the oldest kept (%u)",
       (unsigned) tr.seq);

    n = 1;
    want = tr.seq;
    while (cm_br_take_transition(&b, &seen, &tr)) {
        n++;
        want++;
        if (tr.seq != want) {
            break;
        }
    }

    ok(n == CM_BR_HISTORY && seen == 23, "history: %d kept, up to seq 23",
       CM_BR_HISTORY);

    /* a cursor from elsewhere: no garbage */
    cm_br_init(&b, T0);
    seen = 5;
    ok(!cm_br_take_transition(&b, &seen, &tr) && seen == 0,
       "history: a cursor ahead of a new breaker resyncs");

    /* reason texts fit, NUL-terminated */
    c.window = 256;
    c.min_calls = 256;
    c.failure_rate = 100;
    c.slow_rate = 100;
    c.slow_ms = INT64_MAX;
    cm_br_init(&b, T0);
    seen = 0;
    calls(&b, &c, T0, 256, CM_BR_FAILURE, FAST);
    ok(cm_br_take_transition(&b, &seen, &tr)
       && memchr(tr.reason_text, '\0', CM_BR_REASON_LEN) != NULL
       && strcmp(tr.reason_text,
                 "failure rate 100% over last 256 calls >= 100%") == 0,
       "history: the longest numbers fit");
}


static void
test_retry_after(void)
{
    int           p1, p2, p3;
    cm_br_conf_t  c;
    cm_breaker_t  b;

    c = conf();
    cm_br_init(&b, T0);

    is_int(cm_br_retry_after(&b, &c, T0), 0, "retry after: closed 0");

    open_breaker(&b, &c, T0);
    is_int(cm_br_retry_after(&b, &c, T0), OPEN_MS, "retry after: open_ms");
    is_int(cm_br_retry_after(&b, &c, T0 + 1000), OPEN_MS - 1000,
           "retry after: the rest of the open period");
    is_int(cm_br_retry_after(&b, &c, T0 + OPEN_MS), 0,
           "retry after: 0 once elapsed");
    is_int(cm_br_retry_after(&b, &c, T0 - 5), OPEN_MS,
           "retry after: a lagging clock sees the whole period");

    cm_br_acquire(&b, &c, T0 + OPEN_MS, &p1);
    is_int(cm_br_retry_after(&b, &c, T0 + OPEN_MS), 0,
           "retry after: half open with a free probe 0");
    cm_br_acquire(&b, &c, T0 + OPEN_MS + 100, &p2);
    cm_br_acquire(&b, &c, T0 + OPEN_MS + 200, &p3);
    cm_br_record(&b, &c, T0 + OPEN_MS + 300, p1, CM_BR_SUCCESS, 1);
    is_int(cm_br_retry_after(&b, &c, T0 + OPEN_MS + 1000),
           DEADLINE - 900 + 1,
           "retry after: half open full, the earliest pending deadline");

    cm_br_force(&b, T0, CM_BR_FORCED_OPEN);
    is_int(cm_br_retry_after(&b, &c, T0), -1, "retry after: forced open -1");
    cm_br_force(&b, T0, CM_BR_DISABLED);
    is_int(cm_br_retry_after(&b, &c, T0), 0, "retry after: disabled 0");
}


static void
test_conf_reload(void)
{
    cm_br_conf_t  c;
    cm_breaker_t  b;

    c = conf();
    cm_br_init(&b, T0);

    calls(&b, &c, T0, 5, CM_BR_SUCCESS, FAST);
    calls(&b, &c, T0, 4, CM_BR_FAILURE, FAST);
    ok(b.window == 10 && b.calls == 9 && cm_br_state(&b) == CM_BR_CLOSED,
       "reload: window 10 in use");

    /* a reload with window 5 would misread the ring: start over */
    c.window = 5;
    calls(&b, &c, T0, 1, CM_BR_SUCCESS, FAST);
    ok(b.window == 5 && b.calls == 1 && b.failures == 0,
       "reload: a new window size empties the window");
    calls(&b, &c, T0, 4, CM_BR_SUCCESS, FAST);
    calls(&b, &c, T0, 2, CM_BR_FAILURE, FAST);
    ok(cm_br_state(&b) == CM_BR_CLOSED && b.calls == 5 && b.failures == 2,
       "reload: the new window slides over 5");

    /* a window above the maximum is clamped */
    c.window = 100000;
    calls(&b, &c, T0, 300, CM_BR_SUCCESS, FAST);
    is_int(b.calls, CM_BR_WINDOW_MAX, "reload: window clamped to 256");

    /* the probe count of a half-open period stays as it began */
    c = conf();
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    cm_br_tick(&b, &c, T0 + OPEN_MS);
    c.half_open_probes = 10;
    is_int(b.probes, 3, "reload: probes fixed for the period");
}


static void
test_clocks(void)
{
    int           permit;
    cm_br_conf_t  c;
    cm_breaker_t  b;

    c = conf();

    /* a worker whose cached clock lags the one that opened the breaker */
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    ok(cm_br_acquire(&b, &c, T0 - 3, &permit) == 0
       && cm_br_state(&b) == CM_BR_OPEN, "clocks: a lagging clock: open");

    /* extremes: no overflow in elapsed times (UBSan watches) */
    cm_br_init(&b, INT64_MIN);
    open_breaker(&b, &c, INT64_MIN);
    ok(cm_br_acquire(&b, &c, INT64_MAX, &permit) == 1
       && cm_br_state(&b) == CM_BR_HALF_OPEN,
       "clocks: INT64_MIN to INT64_MAX");
    cm_br_tick(&b, &c, INT64_MIN);
    is_int(cm_br_state(&b), CM_BR_HALF_OPEN,
           "clocks: back to INT64_MIN, nothing expires");
    is_int(cm_br_retry_after(&b, &c, INT64_MIN), 0, "clocks: retry after");

    c.open_ms = INT64_MAX;
    c.probe_deadline_ms = INT64_MAX;
    cm_br_init(&b, 0);
    open_breaker(&b, &c, 0);
    ok(cm_br_acquire(&b, &c, INT64_MAX - 1, &permit) == 0,
       "clocks: open_ms INT64_MAX, not elapsed");
    is_int(cm_br_retry_after(&b, &c, 0), INT64_MAX,
           "clocks: retry after INT64_MAX");

    /* negative durations from a lagging clock are fast calls */
    c = conf();
    cm_br_init(&b, T0);
    calls(&b, &c, T0, 5, CM_BR_SUCCESS, -5);
    ok(cm_br_state(&b) == CM_BR_CLOSED && b.slow == 0,
       "clocks: negative durations are not slow");

    /* a negative conf is read as 0 */
    c.open_ms = -1;
    c.slow_ms = -1;
    c.probe_deadline_ms = -1;
    cm_br_init(&b, T0);
    open_breaker(&b, &c, T0);
    ok(cm_br_acquire(&b, &c, T0, &permit) == 1
       && cm_br_state(&b) == CM_BR_HALF_OPEN,
       "clocks: open_ms -1 acts as 0");
    cm_br_tick(&b, &c, T0 + 1);
    is_int(cm_br_state(&b), CM_BR_HALF_OPEN,
           "clocks: probe_deadline_ms -1 acts as 0: expired after 1 ms, "
           "and half open again at once");
    is_int(b.expired, 1, "clocks: that probe expired");
}


static void
test_epoch_wrap(void)
{
    int           permit, p1;
    cm_br_conf_t  c;
    cm_breaker_t  b;

    c = conf();
    cm_br_init(&b, T0);

    /* the largest epoch a permit holds, then its wrap to 0 */
    b.epoch = 0x1ffffff;
    ok(cm_br_acquire(&b, &c, T0, &permit) == 1 && permit >= 0,
       "epoch wrap: permit >= 0 at the largest epoch");

    open_breaker(&b, &c, T0);
    is_int(b.epoch & 0x1ffffff, 0, "epoch wrap: 0 in a permit");
    cm_br_record(&b, &c, T0, permit, CM_BR_SUCCESS, 1);
    is_int(b.stale, 1, "epoch wrap: the old permit is stale");

    cm_br_acquire(&b, &c, T0 + OPEN_MS, &p1);
    ok(p1 >= 0, "epoch wrap: probe permit >= 0");

    b.epoch = UINT32_MAX;
    cm_br_acquire(&b, &c, T0 + OPEN_MS, &permit);
    ok(permit >= 0, "epoch UINT32_MAX: permit >= 0");
    cm_br_record(&b, &c, T0 + OPEN_MS, permit, CM_BR_SUCCESS, 1);
    is_int(b.succeeded, 1, "epoch UINT32_MAX: the probe counts");
}


/*
 * No pointers inside: a copy elsewhere (another worker's mapping of the
 * zone, a zone reused across a reload) works on.
 */

static void
test_relocatable(void)
{
    int            permit;
    cm_br_conf_t   c;
    cm_breaker_t  *a, *z;

    c = conf();

    a = malloc(sizeof(cm_breaker_t));
    z = malloc(sizeof(cm_breaker_t));
    if (a == NULL || z == NULL) {
        ok(0, "malloc");
        free(a);
        free(z);
        return;
    }

    cm_br_init(a, T0);
    calls(a, &c, T0, 4, CM_BR_FAILURE, FAST);
    cm_br_acquire(a, &c, T0, &permit);

    memcpy(z, a, sizeof(cm_breaker_t));
    memset(a, 0xff, sizeof(cm_breaker_t));
    free(a);

    cm_br_record(z, &c, T0, permit, CM_BR_FAILURE, FAST);
    ok(cm_br_state(z) == CM_BR_OPEN && z->calls == 5,
       "relocatable: a copy works on, permits included");

    free(z);
}
