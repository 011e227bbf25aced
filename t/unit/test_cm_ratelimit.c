/*
 * Unit tests of cm_ratelimit: GCRA bursts, the steady rate, recovery,
 * dry runs, clocks that go backwards, reconfiguration, extreme values and
 * invariants over random traffic.  TAP output.
 */


#include <stdio.h>
#include <string.h>

#include "cm_ratelimit.h"
#include "tap.h"


#define NOW      INT64_C(10000000)      /* ms: any monotonic clock */
#define PER_SEC  1000                   /* rate: 1 request a second */


static int check(cm_rl_state_t *s, int64_t now, uint32_t rate,
    uint32_t burst, cm_rl_result_t *r);
static uint64_t xorshift(uint64_t *x);
static void test_conf(void);
static void test_burst(void);
static void test_steady(void);
static void test_recovery(void);
static void test_fractional(void);
static void test_dry_run(void);
static void test_backwards(void);
static void test_reconfigure(void);
static void test_extremes(void);
static void test_invariants(void);


int
main(void)
{
    test_conf();
    test_burst();
    test_steady();
    test_recovery();
    test_fractional();
    test_dry_run();
    test_backwards();
    test_reconfigure();
    test_extremes();
    test_invariants();

    return tap_done();
}


static int
check(cm_rl_state_t *s, int64_t now, uint32_t rate, uint32_t burst,
    cm_rl_result_t *r)
{
    return cm_rl_check(s, now, rate, burst, 0, r);
}


static uint64_t
xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;

    return *x;
}


static void
test_conf(void)
{
    const char      *err;
    cm_rl_state_t    s, before;
    cm_rl_result_t   r;

    err = "unset";
    ok(cm_rl_conf_check(1, 0, &err) == 0 && err == NULL,
       "rate 0.001/s, burst 0 usable");
    ok(cm_rl_conf_check(UINT32_MAX, CM_RL_BURST_MAX, NULL) == 0,
       "largest rate and burst usable");
    ok(cm_rl_conf_check(0, 5, &err) == -1
       && strcmp(err, "rate must be positive") == 0, "rate 0 refused");
    ok(cm_rl_conf_check(1000, CM_RL_BURST_MAX + 1, &err) == -1
       && strcmp(err, "burst must be at most 1000000") == 0,
       "burst over the maximum refused");

    s.tat = 12345;
    before = s;
    memset(&r, 0x5a, sizeof(r));
    ok(check(&s, NOW, 0, 5, &r) == -1 && s.tat == before.tat
       && r.limit == 0 && r.remaining == 0 && r.retry_after_ms == 0
       && r.reset_ms == 0 && r.window_ms == 0,
       "check with rate 0: -1, out zeroed, state untouched");
    ok(check(&s, NOW, 1000, CM_RL_BURST_MAX + 1, &r) == -1
       && s.tat == before.tat, "check with a burst too large: -1");
}


static void
test_burst(void)
{
    int             i, passed;
    cm_rl_state_t   s, saved;
    cm_rl_result_t  r;

    memset(&s, 0, sizeof(s));

    passed = 0;

    for (i = 0; i < 5; i++) {
        if (check(&s, NOW, PER_SEC, 4, &r) == 1
            && r.remaining == (uint32_t) (4 - i) && r.retry_after_ms == 0
            && r.limit == 5)
        {
            passed++;
        }
    }

    is_int(passed, 5, "1/s burst 4: 5 pass at once, remaining 4 3 2 1 0");
    is_int(r.reset_ms, 5000, "  full again in 5 s");
    is_int(r.window_ms, 5000, "  window 5 s (limit 5 at 1/s)");

    saved = s;

    is_int(check(&s, NOW, PER_SEC, 4, &r), 0, "the sixth is refused");
    is_int(r.remaining, 0, "  remaining 0");
    is_int(r.retry_after_ms, 1000, "  retry after 1 s");
    is_int(r.reset_ms, 5000, "  reset 5 s");
    is_int(r.limit, 5, "  limit 5");
    ok(s.tat == saved.tat, "  a refusal leaves the state as it was");

    is_int(check(&s, NOW + 999, PER_SEC, 4, &r), 0, "refused at 999 ms");
    is_int(r.retry_after_ms, 1, "  retry after 1 ms");

    is_int(check(&s, NOW + 1000, PER_SEC, 4, &r), 1, "passes at 1000 ms");
    is_int(r.remaining, 0, "  remaining 0 again");

    /* burst 0: one at a time */
    memset(&s, 0, sizeof(s));
    is_int(check(&s, NOW, PER_SEC, 0, &r), 1, "burst 0: the first passes");
    ok(r.limit == 1 && r.remaining == 0, "  limit 1, remaining 0");
    is_int(check(&s, NOW, PER_SEC, 0, &r), 0, "  the second is refused");
}


static void
test_steady(void)
{
    int             i, passed, refused_early;
    int64_t         t;
    cm_rl_state_t   s;
    cm_rl_result_t  r;

    /* 10/s, burst 0: every 100 ms passes, for a minute */
    memset(&s, 0, sizeof(s));
    passed = 0;

    for (t = 0; t < 60000; t += 100) {
        passed += check(&s, NOW + t, 10 * PER_SEC, 0, &r);
    }

    is_int(passed, 600, "10/s, one every 100 ms for 60 s: all 600 pass");

    /* one every 99 ms: the early ones are refused */
    memset(&s, 0, sizeof(s));
    check(&s, NOW, 10 * PER_SEC, 0, &r);
    is_int(check(&s, NOW + 99, 10 * PER_SEC, 0, &r), 0,
           "99 ms after: refused");
    is_int(r.retry_after_ms, 1, "  retry after 1 ms");

    /* a flood every 10 ms for 10 s at 10/s burst 5: 6 + 100 pass */
    memset(&s, 0, sizeof(s));
    passed = 0;
    refused_early = 0;

    for (i = 0; i < 1000; i++) {
        if (check(&s, NOW + i * 10, 10 * PER_SEC, 5, &r) == 1) {
            passed++;

        } else if (r.retry_after_ms > 100 || r.retry_after_ms < 1) {
            refused_early++;
        }
    }

    ok(passed >= 105 && passed <= 106,
       "flood for 10 s at 10/s burst 5: %d pass (burst + 1 + rate x 10 s)",
       passed);
    is_int(refused_early, 0, "every refusal says retry within 1..100 ms");
}


static void
test_recovery(void)
{
    int             i;
    cm_rl_state_t   s;
    cm_rl_result_t  r;

    memset(&s, 0, sizeof(s));

    for (i = 0; i < 5; i++) {
        check(&s, NOW, PER_SEC, 4, &r);
    }

    ok(check(&s, NOW, PER_SEC, 4, &r) == 0 && r.reset_ms == 5000,
       "exhausted, full again in 5 s");
    ok(!cm_rl_idle(&s, NOW + 4999), "not idle at 4999 ms");
    ok(cm_rl_idle(&s, NOW + 5000), "idle at 5000 ms: the node may go");

    ok(check(&s, NOW + 2500, PER_SEC, 4, &r) == 1 && r.remaining == 1,
       "after 2.5 s, 2.5 refilled: this one passes, 1 remains");
    ok(check(&s, NOW + 3000, PER_SEC, 4, &r) == 1 && r.remaining == 1,
       "  the half kept: at 3 s another passes, 1 remains");

    memset(&s, 0, sizeof(s));
    for (i = 0; i < 5; i++) {
        check(&s, NOW, PER_SEC, 4, &r);
    }

    ok(check(&s, NOW + 5000, PER_SEC, 4, &r) == 1 && r.remaining == 4,
       "after the whole window, the full burst again");
    ok(check(&s, NOW + 3600000, PER_SEC, 4, &r) == 1 && r.remaining == 4,
       "an hour later: no more than the full burst");

    memset(&s, 0, sizeof(s));
    ok(cm_rl_idle(&s, 0) && cm_rl_idle(&s, NOW), "a zeroed state is idle");
    ok(check(&s, 0, PER_SEC, 4, &r) == 1 && r.remaining == 4,
       "a zeroed state at time 0 is at rest");
}


static void
test_fractional(void)
{
    cm_rl_state_t   s;
    cm_rl_result_t  r;

    memset(&s, 0, sizeof(s));

    ok(check(&s, NOW, 500, 0, &r) == 1 && r.window_ms == 2000
       && r.reset_ms == 2000, "0.5/s: one every 2 s");
    ok(check(&s, NOW + 1, 500, 0, &r) == 0 && r.retry_after_ms == 1999,
       "  the next in 1999 ms");

    memset(&s, 0, sizeof(s));
    ok(check(&s, NOW, 3 * PER_SEC, 2, &r) == 1 && r.window_ms == 1000
       && r.reset_ms == 334, "3/s burst 2: window 1 s, reset rounded up");
    check(&s, NOW, 3 * PER_SEC, 2, &r);
    check(&s, NOW, 3 * PER_SEC, 2, &r);
    ok(check(&s, NOW, 3 * PER_SEC, 2, &r) == 0 && r.retry_after_ms == 334,
       "  then retry after 334 ms (333.33 rounded up)");
    ok(check(&s, NOW + 333, 3 * PER_SEC, 2, &r) == 0,
       "  still refused at 333 ms");
    ok(check(&s, NOW + 334, 3 * PER_SEC, 2, &r) == 1, "  passes at 334 ms");
}


static void
test_dry_run(void)
{
    int             i, rc, same;
    cm_rl_state_t   s, before;
    cm_rl_result_t  r, r2;

    memset(&s, 0, sizeof(s));
    check(&s, NOW, PER_SEC, 4, &r);
    check(&s, NOW, PER_SEC, 4, &r);

    before = s;
    rc = cm_rl_check(&s, NOW, PER_SEC, 4, CM_RL_DRY_RUN, &r);
    ok(rc == 1 && memcmp(&s, &before, sizeof(s)) == 0,
       "dry run: would pass, state unchanged");

    rc = check(&s, NOW, PER_SEC, 4, &r2);
    ok(rc == 1 && memcmp(&r, &r2, sizeof(r)) == 0,
       "  the real call gives the same answer");

    same = 1;
    before = s;

    for (i = 0; i < 10; i++) {
        if (cm_rl_check(&s, NOW, PER_SEC, 4, CM_RL_DRY_RUN, &r) != 1
            || r.remaining != 1)
        {
            same = 0;
        }
    }

    ok(same && s.tat == before.tat, "ten dry runs use up nothing");

    check(&s, NOW, PER_SEC, 4, &r);
    check(&s, NOW, PER_SEC, 4, &r);
    ok(cm_rl_check(&s, NOW, PER_SEC, 4, CM_RL_DRY_RUN, &r) == 0
       && r.retry_after_ms == 1000, "dry run of a refusal: same answer");

    /* a clock gone back: the dry run does not pull the state back */
    before = s;
    ok(cm_rl_check(&s, NOW - 60000, PER_SEC, 4, CM_RL_DRY_RUN, &r) == 0
       && s.tat == before.tat, "dry run with the clock back: no pull-back");
}


static void
test_backwards(void)
{
    int             i;
    cm_rl_state_t   s;
    cm_rl_result_t  r;

    memset(&s, 0, sizeof(s));

    for (i = 0; i < 5; i++) {
        check(&s, NOW, PER_SEC, 4, &r);
    }

    /* an hour back */
    ok(check(&s, NOW - 3600000, PER_SEC, 4, &r) == 0,
       "clock an hour back: refused (bucket taken as empty)");
    ok(r.retry_after_ms == 1000 && r.reset_ms == 5000 && r.remaining == 0,
       "  retry after 1 s, reset 5 s: not after an hour");
    ok(check(&s, NOW - 3600000 + 1000, PER_SEC, 4, &r) == 1,
       "  and passes 1 s later on the new clock");

    /* half a second back, a tat ahead by 5.5 s */
    memset(&s, 0, sizeof(s));
    for (i = 0; i < 5; i++) {
        check(&s, NOW, PER_SEC, 4, &r);
    }

    ok(check(&s, NOW - 500, PER_SEC, 4, &r) == 0
       && r.retry_after_ms == 1000 && r.reset_ms == 5000,
       "500 ms back: retry after 1 s, reset 5 s");

    /* back by less than the credit in hand */
    memset(&s, 0, sizeof(s));
    check(&s, NOW, PER_SEC, 4, &r);
    ok(check(&s, NOW - 2000, PER_SEC, 4, &r) == 1 && r.remaining == 1,
       "2 s back with 4 left: passes, 1 left");

    /* back to before the epoch of the clock */
    memset(&s, 0, sizeof(s));
    check(&s, NOW, PER_SEC, 4, &r);
    ok(check(&s, -5, PER_SEC, 4, &r) == 0 && r.retry_after_ms >= 0
       && r.reset_ms >= 0, "a negative now: no negative values");
    ok(s.tat >= 0, "  nor a negative state");
}


static void
test_reconfigure(void)
{
    int             i;
    cm_rl_state_t   s;
    cm_rl_result_t  r;

    memset(&s, 0, sizeof(s));

    for (i = 0; i < 5; i++) {
        check(&s, NOW, PER_SEC, 4, &r);
    }

    ok(check(&s, NOW, 10 * PER_SEC, 0, &r) == 0 && r.retry_after_ms == 100
       && r.reset_ms == 100, "zone now 10/s burst 0: retry after 100 ms");
    ok(check(&s, NOW + 100, 10 * PER_SEC, 0, &r) == 1,
       "  passes under the new terms");

    memset(&s, 0, sizeof(s));
    check(&s, NOW, 10 * PER_SEC, 0, &r);
    ok(check(&s, NOW, PER_SEC / 10, 0, &r) == 0 && r.retry_after_ms == 100,
       "rate lowered to 0.1/s: what was used keeps its old cost");
    ok(check(&s, NOW + 100, PER_SEC / 10, 0, &r) == 1
       && r.reset_ms == 10000, "  and the next costs the new interval");
}


static void
test_extremes(void)
{
    int             i, rc, passed;
    cm_rl_state_t   s;
    cm_rl_result_t  r;

    /* the fastest rate: T = 233 ns */
    memset(&s, 0, sizeof(s));
    passed = 0;

    for (i = 0; i < 1100; i++) {
        passed += check(&s, NOW, UINT32_MAX, 1000, &r);
    }

    is_int(passed, 1001, "4.29 million/s, burst 1000: 1001 at once");
    is_int(r.retry_after_ms, 1, "  retry after 1 ms (233 ns rounded up)");
    is_int(check(&s, NOW + 1, UINT32_MAX, 1000, &r), 1,
           "  passes 1 ms later");

    /* the slowest rate and largest burst: spans of 10^18 ns */
    memset(&s, 0, sizeof(s));
    rc = check(&s, NOW, 1, CM_RL_BURST_MAX, &r);
    ok(rc == 1 && r.limit == CM_RL_BURST_MAX + 1
       && r.remaining == CM_RL_BURST_MAX,
       "0.001/s, burst 10^6: passes, remaining 10^6");
    is_int(r.window_ms, INT64_C(1000001000000), "  window 10^12 ms");
    is_int(r.reset_ms, INT64_C(1000000), "  reset 1000 s");

    /* clocks at the ends of int64 */
    rc = check(&s, INT64_MAX, 1, CM_RL_BURST_MAX, &r);
    ok(rc == 1 && r.retry_after_ms == 0 && r.reset_ms > 0,
       "now INT64_MAX: clamped, passes");
    rc = check(&s, INT64_MIN, 1, CM_RL_BURST_MAX, &r);
    ok(rc == 0 && r.retry_after_ms > 0 && r.reset_ms > 0
       && r.reset_ms <= r.window_ms, "then INT64_MIN: refused, sane values");
    ok(check(&s, CM_RL_NOW_MAX_MS + 1, UINT32_MAX, CM_RL_BURST_MAX, &r)
       >= 0 && r.reset_ms <= r.window_ms, "past CM_RL_NOW_MAX_MS");

    /* garbage in the state: a corrupted or foreign slot */
    s.tat = INT64_MAX;
    rc = check(&s, NOW, PER_SEC, 4, &r);
    ok(rc == 0 && r.retry_after_ms == 1000 && r.reset_ms == 5000,
       "state INT64_MAX: pulled back to one full bucket");
    ok(check(&s, NOW + 1000, PER_SEC, 4, &r) == 1, "  then recovers");

    s.tat = INT64_MIN;
    ok(check(&s, NOW, PER_SEC, 4, &r) == 1 && r.remaining == 4,
       "state INT64_MIN: a key at rest");
}


/* random traffic, clocks and terms: the results always make sense */

static void
test_invariants(void)
{
    int             i, rc, bad, allowed, refused;
    int64_t         now, t_ms;
    uint32_t        rate, burst;
    uint64_t        seed;
    cm_rl_state_t   s, before;
    cm_rl_result_t  r;

    seed = 0x9e3779b97f4a7c15ULL;
    bad = 0;
    allowed = 0;
    refused = 0;
    now = NOW;
    rate = PER_SEC;
    burst = 0;
    memset(&s, 0, sizeof(s));

    for (i = 0; i < 200000; i++) {
        switch (xorshift(&seed) % 8) {
        case 0:
            now -= (int64_t) (xorshift(&seed) % 100000);   /* backwards */
            break;
        case 1:
            now += (int64_t) (xorshift(&seed) % 100000);
            break;
        case 2:
            now = (int64_t) xorshift(&seed);               /* anywhere */
            break;
        default:
            now += (int64_t) (xorshift(&seed) % 50);
        }

        if (i % 1000 == 0) {
            rate = 1 + (uint32_t) (xorshift(&seed) % 100000);
            burst = (uint32_t) (xorshift(&seed) % 100);
        }

        if (i % 5000 == 0) {
            rate = (xorshift(&seed) & 1) ? UINT32_MAX : 1;
            burst = (xorshift(&seed) & 1) ? CM_RL_BURST_MAX : 0;
        }

        before = s;
        rc = check(&s, now, rate, burst, &r);

        /* the interval T in ms, rounded up */
        t_ms = (INT64_C(1000000000000) / rate + 1000000) / 1000000;

        if (rc == 1) {
            allowed++;

            if (r.retry_after_ms != 0 || r.remaining > burst
                || r.reset_ms < 0 || r.reset_ms > r.window_ms)
            {
                bad++;
            }

        } else if (rc == 0) {
            refused++;

            if (r.remaining != 0 || r.retry_after_ms < 1
                || r.retry_after_ms > t_ms || r.reset_ms < r.retry_after_ms
                || r.reset_ms > r.window_ms)
            {
                bad++;
            }

            /* a refusal changes the state only to pull it back */
            if (s.tat != before.tat && s.tat > before.tat) {
                bad++;
            }

        } else {
            bad++;
        }

        if (r.limit != burst + 1 || r.window_ms < 1) {
            bad++;
        }

        if (bad == 1) {
            tap_diag("step %d: rc %d now %lld rate %u burst %u: remaining %u "
                     "retry %lld reset %lld window %lld", i, rc,
                     (long long) now, rate, burst, r.remaining,
                     (long long) r.retry_after_ms, (long long) r.reset_ms,
                     (long long) r.window_ms);
            bad++;
        }
    }

    is_int(bad, 0, "200000 random checks: every result within its bounds");
    ok(allowed > 1000 && refused > 1000, "both outcomes seen (%d, %d)",
       allowed, refused);
}
