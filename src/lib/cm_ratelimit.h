/*
 * cm_ratelimit: the generic cell rate algorithm (GCRA) for one key of a
 * rate-limit zone, without nginx.
 *
 * A key may make rate requests a second on average, plus bursts: with
 * burst b, b + 1 requests pass at once from rest, as with limit_req's
 * burst=b nodelay.  GCRA keeps a single number per key, the theoretical
 * arrival time (TAT): the time at which the key's bucket would be empty
 * again if it made no more requests.  With the emission interval
 * T = 1 / rate (in ns, rounded down) and the tolerance tau = b * T, a
 * request at now passes when
 *
 *     max(TAT, now) - now <= tau,  and then  TAT = max(TAT, now) + T.
 *
 * It has the accuracy of a token bucket with no refill timer and no
 * floating point: times are kept in nanoseconds of the caller's clock.
 *
 * cm_rl_state_t is one fixed-size struct with no pointers, for a node of a
 * shared-memory zone; a zeroed one is a key at rest.  Nothing here locks:
 * the caller holds the zone's mutex around each call.  "now" is the
 * caller's millisecond clock (ngx_current_msec), monotonic or not:
 *
 *   - a clock that goes backwards never makes a value negative; at worst
 *     the key finds its bucket empty and its next request waits T: a TAT
 *     further ahead than a full bucket can explain is pulled back to
 *     now + (b + 1) T;
 *   - the same pull-back applies when the zone is reconfigured with a
 *     higher rate or a smaller burst: no key waits longer than the new
 *     terms allow;
 *   - nothing overflows for any now, rate and burst (now is clamped to
 *     0..CM_RL_NOW_MAX_MS, burst must be at most CM_RL_BURST_MAX).
 *
 * The IETF RateLimit headers (draft-ietf-httpapi-ratelimit-headers):
 *
 *     RateLimit-Limit: <limit>        (RateLimit-Policy: <limit>;w=<window s>)
 *     RateLimit-Remaining: <remaining>
 *     RateLimit-Reset: <ceil(reset_ms / 1000)>
 *     Retry-After: <ceil(retry_after_ms / 1000)>   (only on 429)
 */


#ifndef _CM_RATELIMIT_H_INCLUDED_
#define _CM_RATELIMIT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CM_RL_BURST_MAX      1000000
#define CM_RL_NOW_MAX_MS     INT64_C(8000000000000)   /* 253 years */

/* cm_rl_check() flags */
#define CM_RL_DRY_RUN        0x01


typedef struct {
    int64_t    tat;             /* ns; <= now means the bucket is full */
} cm_rl_state_t;


typedef struct {
    uint32_t   limit;           /* burst + 1: requests at once from rest */
    uint32_t   remaining;       /* requests that would pass now, after
                                   this one (0 when this one is refused) */
    int64_t    retry_after_ms;  /* refused: when the next one would pass;
                                   allowed: 0 */
    int64_t    reset_ms;        /* until the bucket is full again */
    int64_t    window_ms;       /* what a full bucket takes to refill from
                                   empty: limit / rate */
} cm_rl_result_t;


/*
 * 0 if rate (requests a second x 1000, so 500 is one every 2 s) and burst
 * are usable: rate >= 1, burst <= CM_RL_BURST_MAX; else -1 with *err a
 * static string.
 */
int cm_rl_conf_check(uint32_t rate_per_sec_milli, uint32_t burst,
    const char **err);

/*
 * One request of the key at now_ms: returns 1 if it may pass (and takes
 * its place in the bucket), 0 if it is over the limit (the state is left
 * as it was, except for the pull-back above), or -1 if the rate or burst
 * is not usable (out zeroed, state untouched).  *out is filled for 1 and 0.
 *
 * CM_RL_DRY_RUN computes the same answer and changes nothing.  It serves a
 * request limited by several zones: ask each with CM_RL_DRY_RUN, and only
 * if all would pass, ask each again without it, so that a refused request
 * uses up nothing.  For an operator's dry-run mode (log, count, but let
 * everything through) call without it: the counts are then the ones
 * enforcement would see.
 */
int cm_rl_check(cm_rl_state_t *s, int64_t now_ms, uint32_t rate_per_sec_milli,
    uint32_t burst, unsigned flags, cm_rl_result_t *out);

/*
 * 1 if the key's bucket is full at now_ms, so that its node can be freed
 * without changing any answer (the LRU expiry of the zone), else 0.
 */
int cm_rl_idle(const cm_rl_state_t *s, int64_t now_ms);


#endif /* _CM_RATELIMIT_H_INCLUDED_ */
