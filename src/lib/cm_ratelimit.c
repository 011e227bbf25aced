/*
 * cm_ratelimit: GCRA rate limiting for one key of a shared-memory zone
 * (see cm_ratelimit.h).  No nginx headers: unit-tested as plain C.
 */


#include <string.h>

#include "cm_ratelimit.h"


#define CM_RL_NS_PER_MS      INT64_C(1000000)

/* T in ns = 10^12 / (requests a second x 1000) */
#define CM_RL_NS_PER_MILLI   INT64_C(1000000000000)


static int64_t cm_rl_now_ns(int64_t now_ms);
static int64_t cm_rl_ceil_ms(int64_t ns);


int
cm_rl_conf_check(uint32_t rate_per_sec_milli, uint32_t burst,
    const char **err)
{
    const char  *why;

    if (rate_per_sec_milli == 0) {
        why = "rate must be positive";
        goto failed;
    }

    if (burst > CM_RL_BURST_MAX) {
        why = "burst must be at most 1000000";
        goto failed;
    }

    if (err != NULL) {
        *err = NULL;
    }

    return 0;

failed:

    if (err != NULL) {
        *err = why;
    }

    return -1;
}


int
cm_rl_check(cm_rl_state_t *s, int64_t now_ms, uint32_t rate_per_sec_milli,
    uint32_t burst, unsigned flags, cm_rl_result_t *out)
{
    int      allowed;
    int64_t  now, t, tau, span, tat, new_tat;

    memset(out, 0, sizeof(cm_rl_result_t));

    if (cm_rl_conf_check(rate_per_sec_milli, burst, NULL) != 0) {
        return -1;
    }

    /*
     * T rounded down (by under 1 ns: at most 0.5% fast at the highest
     * rates), so that a window of limit / rate is never reported longer
     * than it is.  232 <= T <= 10^12 ns and tau + T <= (10^6 + 1) 10^12
     * ns, about 10^18; now is at most 8 * 10^18 ns, so now + span stays
     * below INT64_MAX.
     */

    t = CM_RL_NS_PER_MILLI / rate_per_sec_milli;
    tau = t * (int64_t) burst;
    span = tau + t;

    now = cm_rl_now_ns(now_ms);

    tat = s->tat;

    if (tat < now) {
        tat = now;
    }

    if (tat - now > span) {
        /* the clock went back, or the zone now has a higher rate */
        tat = now + span;

        if (!(flags & CM_RL_DRY_RUN)) {
            s->tat = tat;
        }
    }

    out->limit = burst + 1;
    out->window_ms = cm_rl_ceil_ms(span);

    allowed = (tat - now <= tau);

    if (allowed) {
        new_tat = tat + t;

        if (!(flags & CM_RL_DRY_RUN)) {
            s->tat = new_tat;
        }

        out->remaining = (uint32_t) ((span - (new_tat - now)) / t);
        out->retry_after_ms = 0;
        out->reset_ms = cm_rl_ceil_ms(new_tat - now);

    } else {
        out->remaining = 0;
        out->retry_after_ms = cm_rl_ceil_ms(tat - tau - now);
        out->reset_ms = cm_rl_ceil_ms(tat - now);
    }

    return allowed;
}


int
cm_rl_idle(const cm_rl_state_t *s, int64_t now_ms)
{
    return s->tat <= cm_rl_now_ns(now_ms);
}


static int64_t
cm_rl_now_ns(int64_t now_ms)
{
    if (now_ms < 0) {
        now_ms = 0;

    } else if (now_ms > CM_RL_NOW_MAX_MS) {
        now_ms = CM_RL_NOW_MAX_MS;
    }

    return now_ms * CM_RL_NS_PER_MS;
}


/* ns rounded up to ms, for a duration 0 <= ns */

static int64_t
cm_rl_ceil_ms(int64_t ns)
{
    if (ns <= 0) {
        return 0;
    }

    return (ns + CM_RL_NS_PER_MS - 1) / CM_RL_NS_PER_MS;
}
