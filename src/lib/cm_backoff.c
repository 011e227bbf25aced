/*
 * cm_backoff: full-jitter backoff and a sliding-window retry budget (see
 * cm_backoff.h).  No nginx headers: unit-tested as plain C.
 */


#include <string.h>

#include "cm_backoff.h"


/* a bucket number's slot, negative numbers included */
#define cm_rb_index(n)                                                        \
    ((size_t) ((((n) % CM_RB_BUCKETS) + CM_RB_BUCKETS) % CM_RB_BUCKETS))

/* more than 100 retries per request is no budget: the bound keeps sums */
#define CM_RB_RATIO_MAX     10000


static cm_rb_bucket_t *cm_rb_advance(cm_retry_budget_t *b, int64_t now_ms);
static int64_t cm_rb_bucket_number(int64_t now_ms);
static void cm_rb_sum(const cm_retry_budget_t *b, uint64_t *requests,
    uint64_t *retries);


int64_t
cm_backoff_ceiling(int64_t base_ms, int64_t cap_ms, unsigned attempt)
{
    if (base_ms <= 0 || cap_ms <= 0) {
        return 0;
    }

    /*
     * base * 2^attempt > cap exactly when base > floor(cap / 2^attempt):
     * decided without computing the product, which may not fit.
     */
    if (attempt >= 63 || base_ms > (cap_ms >> attempt)) {
        return cap_ms;
    }

    return base_ms << attempt;
}


int64_t
cm_backoff_full_jitter(int64_t base_ms, int64_t cap_ms, unsigned attempt,
    uint32_t rnd)
{
    uint64_t  range, hi, lo;

    /* ceiling + 1 values, 0..ceiling; at most 2^63, fits in uint64_t */
    range = (uint64_t) cm_backoff_ceiling(base_ms, cap_ms, attempt) + 1;

    /*
     * rnd * range / 2^32, rounded down, < range: split range in halves of
     * 32 bits so that no product exceeds 64 bits.
     */
    hi = range >> 32;
    lo = range & 0xffffffff;

    return (int64_t) (rnd * hi + ((rnd * lo) >> 32));
}


void
cm_rb_init(cm_retry_budget_t *b, int64_t now_ms)
{
    memset(b, 0, sizeof(cm_retry_budget_t));

    b->current = cm_rb_bucket_number(now_ms);
}


void
cm_rb_request(cm_retry_budget_t *b, int64_t now_ms)
{
    cm_rb_bucket_t  *bk;

    bk = cm_rb_advance(b, now_ms);

    if (bk->requests != UINT32_MAX) {
        bk->requests++;
    }

    b->requests++;
}


int
cm_rb_try_retry(cm_retry_budget_t *b, int64_t now_ms, uint32_t ratio_percent,
    uint32_t min_per_sec)
{
    uint64_t         requests, retries, reserve;
    cm_rb_bucket_t  *bk;

    bk = cm_rb_advance(b, now_ms);

    cm_rb_sum(b, &requests, &retries);

    reserve = (uint64_t) min_per_sec * (CM_RB_BUCKETS * CM_RB_BUCKET_MS)
              / 1000;

    if (ratio_percent > CM_RB_RATIO_MAX) {
        ratio_percent = CM_RB_RATIO_MAX;
    }

    /*
     * retries + 1 <= requests * ratio / 100 + reserve, multiplied by 100
     * to stay exact.  The sums are below 10 * 2^32 < 2^36, the ratio below
     * 2^14, the reserve below 2^36: every term fits in 64 bits.
     */
    if ((retries + 1) * 100
        > requests * ratio_percent + reserve * 100)
    {
        b->exhausted++;
        return 0;
    }

    if (bk->retries != UINT32_MAX) {
        bk->retries++;
    }

    b->allowed++;

    return 1;
}


void
cm_rb_window(cm_retry_budget_t *b, int64_t now_ms, uint64_t *requests,
    uint64_t *retries)
{
    (void) cm_rb_advance(b, now_ms);

    cm_rb_sum(b, requests, retries);
}


/* moves the window to now_ms, emptying the buckets it slid past */

static cm_rb_bucket_t *
cm_rb_advance(cm_retry_budget_t *b, int64_t now_ms)
{
    int64_t  n, i;

    n = cm_rb_bucket_number(now_ms);

    if (n > b->current) {

        /* both are within INT64 / 1000 of zero: no overflow */
        if (n - b->current >= CM_RB_BUCKETS) {
            memset(b->buckets, 0, sizeof(b->buckets));

        } else {
            for (i = b->current + 1; i <= n; i++) {
                memset(&b->buckets[cm_rb_index(i)], 0,
                       sizeof(cm_rb_bucket_t));
            }
        }

        b->current = n;
    }

    /* an earlier now (a lagging worker clock) counts into the newest */
    return &b->buckets[cm_rb_index(b->current)];
}


static int64_t
cm_rb_bucket_number(int64_t now_ms)
{
    int64_t  n;

    /* rounded down for negative times too */
    n = now_ms / CM_RB_BUCKET_MS;

    if (now_ms % CM_RB_BUCKET_MS < 0) {
        n--;
    }

    return n;
}


static void
cm_rb_sum(const cm_retry_budget_t *b, uint64_t *requests, uint64_t *retries)
{
    int  i;

    *requests = 0;
    *retries = 0;

    for (i = 0; i < CM_RB_BUCKETS; i++) {
        *requests += b->buckets[i].requests;
        *retries += b->buckets[i].retries;
    }
}
