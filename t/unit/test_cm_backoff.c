/*
 * Unit tests of cm_backoff: full-jitter delays and the retry budget.
 * TAP output.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_backoff.h"
#include "tap.h"


#define T0   5000000              /* an arbitrary monotonic start, ms */


static int retries_allowed(cm_retry_budget_t *b, int64_t now, int max,
    uint32_t ratio, uint32_t min_per_sec);
static void requests(cm_retry_budget_t *b, int64_t now, int n);
static void test_ceiling(void);
static void test_jitter_bounds(void);
static void test_jitter_spread(void);
static void test_jitter_overflow(void);
static void test_budget_ratio(void);
static void test_budget_minimum(void);
static void test_budget_sliding(void);
static void test_budget_clocks(void);
static void test_budget_overflow(void);


int
main(void)
{
    tap_diag("sizeof(cm_retry_budget_t) = %u",
             (unsigned) sizeof(cm_retry_budget_t));

    test_ceiling();
    test_jitter_bounds();
    test_jitter_spread();
    test_jitter_overflow();
    test_budget_ratio();
    test_budget_minimum();
    test_budget_sliding();
    test_budget_clocks();
    test_budget_overflow();

    return tap_done();
}


/* how many of max retries the budget allows at now */

static int
retries_allowed(cm_retry_budget_t *b, int64_t now, int max, uint32_t ratio,
    uint32_t min_per_sec)
{
    int  i, n;

    n = 0;

    for (i = 0; i < max; i++) {
        n += cm_rb_try_retry(b, now, ratio, min_per_sec);
    }

    return n;
}


static void
requests(cm_retry_budget_t *b, int64_t now, int n)
{
    int  i;

    for (i = 0; i < n; i++) {
        cm_rb_request(b, now);
    }
}


static void
test_ceiling(void)
{
    unsigned  a;
    int64_t   prev, v;
    int       monotone;

    is_int(cm_backoff_ceiling(100, 10000, 0), 100, "ceiling: attempt 0 base");
    is_int(cm_backoff_ceiling(100, 10000, 1), 200, "ceiling: attempt 1");
    is_int(cm_backoff_ceiling(100, 10000, 6), 6400, "ceiling: attempt 6");
    is_int(cm_backoff_ceiling(100, 10000, 7), 10000,
           "ceiling: attempt 7 capped (12800 > 10000)");
    is_int(cm_backoff_ceiling(100, 12800, 7), 12800,
           "ceiling: exactly the cap");
    is_int(cm_backoff_ceiling(100, 12799, 7), 12799,
           "ceiling: one above the cap");
    is_int(cm_backoff_ceiling(20000, 10000, 0), 10000,
           "ceiling: base above cap");

    is_int(cm_backoff_ceiling(1, INT64_MAX, 62), INT64_C(1) << 62,
           "ceiling: 2^62 fits");
    is_int(cm_backoff_ceiling(1, INT64_MAX, 63), INT64_MAX,
           "ceiling: 2^63 would not: cap");
    is_int(cm_backoff_ceiling(3, INT64_MAX, 61), 3 * (INT64_C(1) << 61),
           "ceiling: 3 * 2^61 fits");
    is_int(cm_backoff_ceiling(5, INT64_MAX, 61), INT64_MAX,
           "ceiling: 5 * 2^61 would not: cap");
    is_int(cm_backoff_ceiling(5, INT64_MAX - 1, 61), INT64_MAX - 1,
           "ceiling: 5 * 2^61 would not: cap INT64_MAX - 1");
    is_int(cm_backoff_ceiling(INT64_MAX, INT64_MAX, 1), INT64_MAX,
           "ceiling: INT64_MAX * 2: cap");
    is_int(cm_backoff_ceiling(100, 10000, 64), 10000, "ceiling: attempt 64");
    is_int(cm_backoff_ceiling(100, 10000, 1000), 10000,
           "ceiling: attempt 1000");
    is_int(cm_backoff_ceiling(100, 10000, (unsigned) -1), 10000,
           "ceiling: attempt UINT_MAX");

    is_int(cm_backoff_ceiling(0, 10000, 3), 0, "ceiling: base 0");
    is_int(cm_backoff_ceiling(-5, 10000, 3), 0, "ceiling: base negative");
    is_int(cm_backoff_ceiling(100, 0, 3), 0, "ceiling: cap 0");
    is_int(cm_backoff_ceiling(100, -1, 3), 0, "ceiling: cap negative");

    monotone = 1;
    prev = 0;

    for (a = 0; a < 200; a++) {
        v = cm_backoff_ceiling(7, 3600000, a);

        if (v < prev || v > 3600000) {
            monotone = 0;
        }

        prev = v;
    }

    ok(monotone && prev == 3600000,
       "ceiling: grows with attempt, up to the cap");
}


static void
test_jitter_bounds(void)
{
    int       inside;
    unsigned  a, i;
    int64_t   v, c;
    uint32_t  rnd[] = { 0, 1, 0x7fffffff, 0x80000000, 0xfffffffe,
                        0xffffffff, 123456789, 3000000000u };

    is_int(cm_backoff_full_jitter(100, 10000, 0, 0), 0, "jitter: rnd 0 is 0");
    is_int(cm_backoff_full_jitter(100, 10000, 0, UINT32_MAX), 100,
           "jitter: rnd max is the ceiling, attempt 0");
    is_int(cm_backoff_full_jitter(100, 10000, 3, UINT32_MAX), 800,
           "jitter: rnd max is the ceiling, attempt 3");
    is_int(cm_backoff_full_jitter(100, 10000, 30, UINT32_MAX), 10000,
           "jitter: rnd max is the cap, attempt 30");
    is_int(cm_backoff_full_jitter(100, 10000, 0, 0x80000000), 50,
           "jitter: rnd half is half of 101 values: 50");
    is_int(cm_backoff_full_jitter(100, 10000, 2, 0x80000000), 200,
           "jitter: rnd half at attempt 2: 200");
    is_int(cm_backoff_full_jitter(1000, 60000, 0, 0xfffffffe), 1000,
           "jitter: rnd max - 1 still the ceiling");
    is_int(cm_backoff_full_jitter(0, 10000, 5, UINT32_MAX), 0,
           "jitter: base 0 is 0");
    is_int(cm_backoff_full_jitter(100, -1, 5, UINT32_MAX), 0,
           "jitter: cap negative is 0");
    is_int(cm_backoff_full_jitter(1, 1, 0, UINT32_MAX), 1,
           "jitter: ceiling 1, rnd max: 1");
    is_int(cm_backoff_full_jitter(1, 1, 0, 0x7fffffff), 0,
           "jitter: ceiling 1, rnd just below half: 0");

    inside = 1;

    for (a = 0; a < 80; a++) {
        c = cm_backoff_ceiling(50, 30000, a);

        for (i = 0; i < sizeof(rnd) / sizeof(rnd[0]); i++) {
            v = cm_backoff_full_jitter(50, 30000, a, rnd[i]);

            if (v < 0 || v > c) {
                inside = 0;
                tap_diag("attempt %u rnd %u: %lld not in [0, %lld]", a,
                         (unsigned) rnd[i], (long long) v, (long long) c);
            }
        }
    }

    ok(inside, "jitter: always within [0, min(cap, base * 2^attempt)]");
}


static void
test_jitter_spread(void)
{
    int       i, fair;
    int64_t   v, sum;
    uint32_t  rnd;
    unsigned  count[101];

    /* evenly spaced rnd values hit every delay of 0..100 evenly */
    memset(count, 0, sizeof(count));
    sum = 0;

    for (i = 0; i < 101 * 1000; i++) {
        rnd = (uint32_t) (((uint64_t) i << 32) / (101 * 1000));
        v = cm_backoff_full_jitter(100, 1000, 0, rnd);
        count[v]++;
        sum += v;
    }

    fair = 1;

    for (i = 0; i <= 100; i++) {
        if (count[i] < 999 || count[i] > 1001) {
            fair = 0;
            tap_diag("delay %d drawn %u times", i, count[i]);
        }
    }

    ok(fair, "jitter: each of 0..100 drawn 1000 times (+-1) of 101000");
    ok(sum >= 50 * 101 * 1000 - 101 && sum <= 50 * 101 * 1000 + 101,
       "jitter: mean 50 (sum %lld of 101000 draws)", (long long) sum);

    /* random rnd: the mean of the full jitter is about half the ceiling */
    srand(42);
    sum = 0;

    for (i = 0; i < 100000; i++) {
        rnd = ((uint32_t) (rand() & 0xffff) << 16) | (rand() & 0xffff);
        sum += cm_backoff_full_jitter(100, 100000, 4, rnd);
    }

    ok(sum / 100000 > 780 && sum / 100000 < 820,
       "jitter: mean of 100000 draws at ceiling 1600 is %lld",
       (long long) (sum / 100000));
}


static void
test_jitter_overflow(void)
{
    int       inside;
    unsigned  a;
    int64_t   v;

    /* ceilings beyond 32 bits use the split product */
    is_int(cm_backoff_full_jitter(1, INT64_MAX, 100, 0), 0,
           "jitter: ceiling INT64_MAX, rnd 0");

    v = cm_backoff_full_jitter(1, INT64_MAX, 100, UINT32_MAX);
    ok(v > INT64_MAX - (INT64_C(1) << 32) && v <= INT64_MAX,
       "jitter: ceiling INT64_MAX, rnd max: within 2^32 of the ceiling");

    is_int(cm_backoff_full_jitter(1, INT64_MAX, 100, 0x80000000),
           INT64_C(1) << 62, "jitter: ceiling INT64_MAX, rnd half: 2^62");

    is_int(cm_backoff_full_jitter(INT64_C(1) << 32, INT64_MAX, 0,
                                  0x80000000), INT64_C(1) << 31,
           "jitter: ceiling 2^32, rnd half");

    inside = 1;

    for (a = 0; a < 300; a++) {
        v = cm_backoff_full_jitter(INT64_MAX / 3, INT64_MAX, a, UINT32_MAX);
        if (v < 0) {
            inside = 0;
        }

        v = cm_backoff_full_jitter(1000, 60000, a, UINT32_MAX);
        if (v != (a < 6 ? (int64_t) 1000 << a : 60000)) {
            inside = 0;
            tap_diag("attempt %u: %lld", a, (long long) v);
        }
    }

    ok(inside, "jitter: attempts 0..299 with huge and usual bases");
}


static void
test_budget_ratio(void)
{
    uint64_t           req, ret;
    cm_retry_budget_t  b;

    memset(&b, 0xa5, sizeof(cm_retry_budget_t));
    cm_rb_init(&b, T0);

    is_int(cm_rb_try_retry(&b, T0, 20, 0), 0,
           "budget: no traffic, no minimum: no retry");
    is_int(b.exhausted, 1, "budget: exhaustion counted");

    requests(&b, T0, 4);
    is_int(cm_rb_try_retry(&b, T0, 20, 0), 0,
           "budget: 20%% of 4 requests is 0.8: no retry");

    requests(&b, T0, 1);
    is_int(cm_rb_try_retry(&b, T0, 20, 0), 1,
           "budget: 20%% of 5 requests: one retry");
    is_int(cm_rb_try_retry(&b, T0, 20, 0), 0, "budget: and only one");

    requests(&b, T0, 95);
    is_int(retries_allowed(&b, T0, 100, 20, 0), 19,
           "budget: 20%% of 100 requests: 20 retries in all");

    cm_rb_window(&b, T0, &req, &ret);
    ok(req == 100 && ret == 20, "budget: window has 100 requests, 20 retries");
    ok(b.requests == 100 && b.allowed == 20 && b.exhausted == 1 + 1 + 1 + 81,
       "budget: counters requests 100, allowed 20, exhausted %u",
       (unsigned) b.exhausted);

    /* ratio 100: one retry per request; 0: none */
    cm_rb_init(&b, T0);
    requests(&b, T0, 7);
    is_int(retries_allowed(&b, T0, 20, 100, 0), 7, "budget: ratio 100");

    cm_rb_init(&b, T0);
    requests(&b, T0, 1000);
    is_int(retries_allowed(&b, T0, 20, 0, 0), 0, "budget: ratio 0");

    /* retries do not feed the budget: only first attempts do */
    cm_rb_init(&b, T0);
    requests(&b, T0, 10);
    is_int(retries_allowed(&b, T0, 100, 50, 0), 5,
           "budget: ratio 50 of 10 requests: 5 retries");
    is_int(retries_allowed(&b, T0 + 1, 100, 50, 0), 0,
           "budget: retries earn nothing");
}


static void
test_budget_minimum(void)
{
    cm_retry_budget_t  b;

    /* 1 per second over a 10 s window: 10 with no traffic at all */
    cm_rb_init(&b, T0);
    is_int(retries_allowed(&b, T0, 100, 20, 1), 10,
           "minimum: 1/s allows 10 retries over the window");

    /* the minimum adds to the ratio */
    cm_rb_init(&b, T0);
    requests(&b, T0, 50);
    is_int(retries_allowed(&b, T0, 100, 20, 2), 10 + 20,
           "minimum: 20%% of 50 plus 2/s over 10 s: 30");

    /* exact, not rounded per term: 4 requests at 25% plus 0 */
    cm_rb_init(&b, T0);
    requests(&b, T0, 4);
    is_int(retries_allowed(&b, T0, 10, 25, 0), 1, "minimum: 25%% of 4 is 1");

    /* 3 requests at 50% plus nothing: 1.5 -> 1 */
    cm_rb_init(&b, T0);
    requests(&b, T0, 3);
    is_int(retries_allowed(&b, T0, 10, 50, 0), 1, "minimum: 1.5 allows 1");
}


static void
test_budget_sliding(void)
{
    int                i;
    uint64_t           req, ret;
    cm_retry_budget_t  b;

    /* a burst at T0, its budget used up */
    cm_rb_init(&b, T0);
    requests(&b, T0, 100);
    is_int(retries_allowed(&b, T0, 100, 20, 0), 20, "sliding: 20 at T0");
    is_int(retries_allowed(&b, T0 + 4999, 10, 20, 0), 0,
           "sliding: none left 4.999 s later");

    /* more traffic 5 s later earns more */
    requests(&b, T0 + 5000, 100);
    is_int(retries_allowed(&b, T0 + 5000, 100, 20, 0), 20,
           "sliding: 100 more requests at +5 s: 20 more retries");

    /* at +10 s the T0 bucket (100 requests, 20 retries) slides out */
    cm_rb_window(&b, T0 + 10000, &req, &ret);
    ok(req == 100 && ret == 20,
       "sliding: at +10 s the window holds the +5 s bucket only");
    is_int(retries_allowed(&b, T0 + 10000, 10, 20, 0), 0,
           "sliding: its budget is used up");

    /* at +15 s everything slid out */
    cm_rb_window(&b, T0 + 15000, &req, &ret);
    ok(req == 0 && ret == 0, "sliding: at +15 s the window is empty");

    /* steady traffic: 10 requests a second, 20%: 2 retries a second */
    cm_rb_init(&b, T0);
    {
        int  got, want;

        got = 0;
        want = 0;

        for (i = 0; i < 60; i++) {
            requests(&b, T0 + i * 1000, 10);
            got += retries_allowed(&b, T0 + i * 1000 + 500, 100, 20, 0);
            want += 2;
        }

        is_int(got, want, "sliding: 60 s of 10 req/s at 20%%: 2 retries/s");
    }

    /* the retries of old buckets no longer count */
    cm_rb_init(&b, T0);
    requests(&b, T0, 10);
    is_int(retries_allowed(&b, T0, 10, 0, 1), 10,
           "sliding: minimum 1/s: 10 at T0");
    is_int(retries_allowed(&b, T0 + 3000, 10, 0, 1), 0,
           "sliding: none 3 s later, the T0 retries still count");
    is_int(retries_allowed(&b, T0 + 10000, 20, 0, 1), 10,
           "sliding: 10 again once T0 slid out");

    /* a gap longer than the window empties it in one step */
    cm_rb_init(&b, T0);
    requests(&b, T0, 1000);
    retries_allowed(&b, T0, 1000, 20, 0);
    cm_rb_window(&b, T0 + 3600 * 1000, &req, &ret);
    ok(req == 0 && ret == 0, "sliding: an hour later: empty");

    /* bucket edges: T0 is a bucket start, T0 + 9999 the last in window */
    cm_rb_init(&b, T0);
    requests(&b, T0 + 999, 10);
    cm_rb_window(&b, T0 + 9999, &req, &ret);
    is_int(req, 10, "sliding: +9.999 s: bucket 0 still in");
    cm_rb_window(&b, T0 + 10000, &req, &ret);
    is_int(req, 0, "sliding: +10 s: bucket 0 out");
}


static void
test_budget_clocks(void)
{
    uint64_t           req, ret;
    cm_retry_budget_t  b;

    /* a worker whose clock lags counts into the newest bucket */
    cm_rb_init(&b, T0);
    requests(&b, T0 + 2000, 10);
    requests(&b, T0 + 1500, 10);
    ok(b.buckets[((T0 + 2000) / 1000) % CM_RB_BUCKETS].requests == 20,
       "clocks: a lagging now counts into the newest bucket");
    cm_rb_window(&b, T0 + 11999, &req, &ret);
    is_int(req, 20, "clocks: and slides out with it");

    /* negative times round down to their bucket */
    cm_rb_init(&b, -1);
    is_int(b.current, -1, "clocks: -1 ms is in bucket -1");
    requests(&b, -1, 5);
    requests(&b, 0, 5);
    cm_rb_window(&b, 0, &req, &ret);
    is_int(req, 10, "clocks: buckets -1 and 0 both in the window");
    cm_rb_window(&b, 9000, &req, &ret);
    is_int(req, 5, "clocks: at 9 s bucket -1 slid out");

    cm_rb_init(&b, -10000);
    is_int(b.current, -10, "clocks: -10000 ms is bucket -10");
    cm_rb_init(&b, -10001);
    is_int(b.current, -11, "clocks: -10001 ms is bucket -11");

    /* extremes: no overflow (UBSan watches) */
    cm_rb_init(&b, INT64_MIN);
    requests(&b, INT64_MIN, 3);
    requests(&b, INT64_MAX, 3);
    cm_rb_window(&b, INT64_MAX, &req, &ret);
    is_int(req, 3, "clocks: INT64_MIN then INT64_MAX");
    requests(&b, INT64_MIN, 2);
    cm_rb_window(&b, INT64_MAX, &req, &ret);
    is_int(req, 5, "clocks: back to INT64_MIN counts into the newest");
}


static void
test_budget_overflow(void)
{
    int                i;
    uint64_t           req, ret;
    cm_retry_budget_t  b;

    /* huge parameters: no overflow, sane answers */
    cm_rb_init(&b, T0);
    is_int(cm_rb_try_retry(&b, T0, UINT32_MAX, UINT32_MAX), 1,
           "overflow: min UINT32_MAX/s allows");

    cm_rb_init(&b, T0);

    for (i = 0; i < CM_RB_BUCKETS; i++) {
        b.buckets[i].requests = UINT32_MAX;
        b.buckets[i].retries = UINT32_MAX - 1;
    }

    is_int(cm_rb_try_retry(&b, T0, UINT32_MAX, 0), 1,
           "overflow: full buckets, ratio UINT32_MAX (capped at 10000%%)");
    cm_rb_request(&b, T0);
    cm_rb_window(&b, T0, &req, &ret);
    ok(req == (uint64_t) CM_RB_BUCKETS * UINT32_MAX
       && ret == (uint64_t) CM_RB_BUCKETS * UINT32_MAX - 9,
       "overflow: bucket counters saturate instead of wrapping");
    is_int(cm_rb_try_retry(&b, T0, 0, 0), 0,
           "overflow: ratio 0 with full buckets: none");
}
