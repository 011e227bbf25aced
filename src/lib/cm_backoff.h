/*
 * cm_backoff: retry delays and a retry budget, without nginx.
 *
 * cm_backoff_full_jitter() is the "full jitter" of exponential backoff:
 * a delay drawn uniformly from [0, min(cap, base * 2^attempt)], which
 * spreads the retries of many clients that failed together.
 *
 * The retry budget bounds retries as a share of live traffic, the way
 * Finagle's and Linkerd's do: over a sliding window of CM_RB_BUCKETS
 * buckets of CM_RB_BUCKET_MS each, retries may be at most ratio percent
 * of the first attempts, plus min_per_sec retries per second of the
 * window, so that a quiet gateway can still be retried.  When a gateway
 * fails, every request wants a retry; the budget turns that retry storm
 * into a trickle.
 *
 * cm_retry_budget_t is fixed-size with no pointers: it lives in a
 * shared-memory zone, and the caller holds the zone's mutex around every
 * call.  Times are monotonic milliseconds passed by the caller
 * (ngx_current_msec); a worker whose cached clock lags by a few
 * milliseconds counts into the newest bucket.
 */


#ifndef _CM_BACKOFF_H_INCLUDED_
#define _CM_BACKOFF_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CM_RB_BUCKETS       10
#define CM_RB_BUCKET_MS     1000


typedef struct {
    uint32_t   requests;        /* first attempts */
    uint32_t   retries;         /* retries allowed */
} cm_rb_bucket_t;


/* fields readable under the lock by metrics code */
typedef struct {
    int64_t         current;    /* bucket number of the newest bucket */
    cm_rb_bucket_t  buckets[CM_RB_BUCKETS];   /* by bucket number % 10 */

    /* counters, never reset (cm_rb_init zeroes them) */
    uint64_t        requests;   /* cm_rb_request() calls */
    uint64_t        allowed;    /* cm_rb_try_retry() returned 1 */
    uint64_t        exhausted;  /* cm_rb_try_retry() returned 0 */
} cm_retry_budget_t;


/*
 * The delay before retry number attempt + 1 (attempt 0: the first retry):
 * rnd * (ceiling + 1) / 2^32 where ceiling = min(cap_ms, base_ms *
 * 2^attempt), so a value in [0, ceiling], each equally likely for a
 * uniform rnd; rnd 0 gives 0, and rnd UINT32_MAX the ceiling itself when
 * it is below 2^32 ms (49 days).  Never overflows, whatever attempt.
 * base_ms <= 0 or cap_ms <= 0 give 0.
 *
 * rnd needs all 32 bits: ngx_random() (random(3)) has only 31, which
 * would halve every delay; pass ((uint32_t) ngx_random() << 16)
 * ^ (uint32_t) ngx_random().
 */
int64_t cm_backoff_full_jitter(int64_t base_ms, int64_t cap_ms,
    unsigned attempt, uint32_t rnd);

/* that ceiling alone: min(cap_ms, base_ms * 2^attempt), >= 0 */
int64_t cm_backoff_ceiling(int64_t base_ms, int64_t cap_ms,
    unsigned attempt);

/* empty window, counters zeroed */
void cm_rb_init(cm_retry_budget_t *b, int64_t now_ms);

/* counts a first attempt (never a retry) */
void cm_rb_request(cm_retry_budget_t *b, int64_t now_ms);

/*
 * May one more retry go out?  It may when, over the window, retries + 1
 * <= requests * ratio_percent / 100 + min_per_sec * CM_RB_BUCKETS *
 * CM_RB_BUCKET_MS / 1000 (ratio_percent is capped at 10000).  Returns 1
 * and counts the retry, or 0 and counts the exhaustion.
 */
int cm_rb_try_retry(cm_retry_budget_t *b, int64_t now_ms,
    uint32_t ratio_percent, uint32_t min_per_sec);

/* the window's sums now, for metrics */
void cm_rb_window(cm_retry_budget_t *b, int64_t now_ms, uint64_t *requests,
    uint64_t *retries);


#endif /* _CM_BACKOFF_H_INCLUDED_ */
