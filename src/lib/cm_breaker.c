/*
 * cm_breaker: circuit-breaker state machine (see cm_breaker.h).  No nginx
 * headers: unit-tested as plain C.
 */


#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cm_breaker.h"


/*
 * A permit is a non-negative int: the low 25 bits of the epoch it was
 * issued in, then 6 bits of probe slot (0: not a probe, else slot + 1).
 */
#define CM_BR_SLOT_BITS       6
#define CM_BR_SLOT_MASK       0x3f
#define CM_BR_EPOCH_MASK      0x1ffffffu

#define cm_br_permit(epoch, slot)                                             \
    ((int) ((((epoch) & CM_BR_EPOCH_MASK) << CM_BR_SLOT_BITS) | (slot)))

#define cm_br_bit_get(bits, i)                                                \
    (((bits)[(i) / 64] >> ((i) % 64)) & 1)

/* a bounded number of time-based transitions per tick: see cm_br_tick() */
#define CM_BR_TICK_STEPS      3


#if defined(__GNUC__)
#define CM_BR_PRINTF(a, b)  __attribute__((format(printf, a, b)))
#else
#define CM_BR_PRINTF(a, b)
#endif


static void cm_br_transition(cm_breaker_t *b, int64_t now, cm_br_state_e to,
    cm_br_reason_e reason, const char *fmt, ...) CM_BR_PRINTF(5, 6);
static void cm_br_window_clear(cm_breaker_t *b);
static void cm_br_window_push(cm_breaker_t *b, uint32_t window, int failure,
    int slow);
static void cm_br_closed_record(cm_breaker_t *b, const cm_br_conf_t *c,
    int64_t now, int failure, int slow);
static void cm_br_probe_record(cm_breaker_t *b, const cm_br_conf_t *c,
    int64_t now, unsigned slot, int failure, int slow);
static int cm_br_expired_probe(const cm_breaker_t *b, const cm_br_conf_t *c,
    int64_t now, unsigned *slot);
static uint64_t cm_br_elapsed(int64_t now, int64_t since);
static uint32_t cm_br_clamp(uint32_t v, uint32_t min, uint32_t max);
static int64_t cm_br_nonneg(int64_t v);


static const char  *cm_br_state_names[CM_BR_NSTATES] = {
    "closed", "open", "half_open", "forced_open", "disabled"
};


int
cm_br_conf_check(const cm_br_conf_t *c, const char **err)
{
    if (c->window < 1 || c->window > CM_BR_WINDOW_MAX) {
        *err = "window must be 1..256";
        return -1;
    }

    if (c->min_calls < 1 || c->min_calls > c->window) {
        *err = "min_calls must be 1..window";
        return -1;
    }

    if (c->failure_rate < 1 || c->failure_rate > 100) {
        *err = "failure_rate must be 1..100";
        return -1;
    }

    if (c->slow_rate < 1 || c->slow_rate > 100) {
        *err = "slow_rate must be 1..100";
        return -1;
    }

    if (c->slow_ms < 0) {
        *err = "slow_ms must not be negative";
        return -1;
    }

    if (c->open_ms < 0) {
        *err = "open_ms must not be negative";
        return -1;
    }

    if (c->half_open_probes < 1 || c->half_open_probes > CM_BR_PROBES_MAX) {
        *err = "half_open_probes must be 1..32";
        return -1;
    }

    if (c->probe_deadline_ms <= 0) {
        *err = "probe_deadline_ms must be positive";
        return -1;
    }

    return 0;
}


void
cm_br_init(cm_breaker_t *b, int64_t now)
{
    memset(b, 0, sizeof(cm_breaker_t));

    b->state = CM_BR_CLOSED;
    b->since = now;
}


int
cm_br_acquire(cm_breaker_t *b, const cm_br_conf_t *c, int64_t now,
    int *permit)
{
    unsigned  slot;

    cm_br_tick(b, c, now);

    switch (b->state) {

    case CM_BR_CLOSED:
    case CM_BR_DISABLED:
        *permit = cm_br_permit(b->epoch, 0);
        b->acquired++;
        return 1;

    case CM_BR_HALF_OPEN:
        if (b->admitted >= b->probes) {
            break;
        }

        slot = b->admitted++;
        b->admitted_at[slot] = now;
        b->pending |= (uint32_t) 1 << slot;

        *permit = cm_br_permit(b->epoch, slot + 1);
        b->acquired++;
        return 1;

    default: /* CM_BR_OPEN, CM_BR_FORCED_OPEN */
        break;
    }

    *permit = -1;
    b->rejected++;

    return 0;
}


void
cm_br_record(cm_breaker_t *b, const cm_br_conf_t *c, int64_t now,
    int permit, cm_br_outcome_e outcome, int64_t duration_ms)
{
    int       failure, slow;
    unsigned  slot;
    uint32_t  epoch;

    if (permit < 0) {
        b->stale++;
        return;
    }

    /* a probe reported after its deadline finds the breaker reopened */
    cm_br_tick(b, c, now);

    epoch = ((uint32_t) permit >> CM_BR_SLOT_BITS) & CM_BR_EPOCH_MASK;
    slot = (unsigned) permit & CM_BR_SLOT_MASK;

    if (epoch != (b->epoch & CM_BR_EPOCH_MASK)) {
        b->stale++;
        return;
    }

    failure = (outcome != CM_BR_SUCCESS);
    slow = (duration_ms > cm_br_nonneg(c->slow_ms));

    switch (b->state) {

    case CM_BR_CLOSED:
        if (slot != 0) {
            b->stale++;
            return;
        }

        cm_br_closed_record(b, c, now, failure, slow);
        return;

    case CM_BR_HALF_OPEN:
        cm_br_probe_record(b, c, now, slot, failure, slow);
        return;

    case CM_BR_DISABLED:
        /* the override records nothing */
        return;

    default:
        /* no permit is issued in OPEN or FORCED_OPEN */
        b->stale++;
        return;
    }
}


void
cm_br_tick(cm_breaker_t *b, const cm_br_conf_t *c, int64_t now)
{
    int       i;
    unsigned  slot;

    /*
     * At most HALF_OPEN -> OPEN (a probe expired), OPEN -> HALF_OPEN (with
     * open_ms 0), and then the new HALF_OPEN has no probe to expire.
     */
    for (i = 0; i < CM_BR_TICK_STEPS; i++) {

        if (b->state == CM_BR_OPEN) {

            if (cm_br_elapsed(now, b->since)
                < (uint64_t) cm_br_nonneg(c->open_ms))
            {
                return;
            }

            cm_br_transition(b, now, CM_BR_HALF_OPEN, CM_BR_R_OPEN_ELAPSED,
                             "open duration of %" PRId64 " ms elapsed",
                             cm_br_nonneg(c->open_ms));

            /* fixed for the whole period: a reload may change the conf */
            b->probes = cm_br_clamp(c->half_open_probes, 1,
                                    CM_BR_PROBES_MAX);
            continue;
        }

        if (b->state == CM_BR_HALF_OPEN) {

            if (!cm_br_expired_probe(b, c, now, &slot)) {
                return;
            }

            b->expired++;

            cm_br_transition(b, now, CM_BR_OPEN, CM_BR_R_PROBE_EXPIRED,
                             "probe %u of %u not reported within %"
                             PRId64 " ms", slot + 1, (unsigned) b->probes,
                             cm_br_nonneg(c->probe_deadline_ms));
            continue;
        }

        return;
    }
}


int
cm_br_force(cm_breaker_t *b, int64_t now, cm_br_state_e state)
{
    switch (state) {

    case CM_BR_CLOSED:
        if (b->state == CM_BR_CLOSED) {
            cm_br_window_clear(b);
            return 0;
        }

        break;

    case CM_BR_FORCED_OPEN:
    case CM_BR_DISABLED:
        if (b->state == (uint32_t) state) {
            return 0;
        }

        break;

    default:
        return -1;
    }

    cm_br_transition(b, now, state, CM_BR_R_OPERATOR, "operator override");

    return 0;
}


cm_br_state_e
cm_br_state(const cm_breaker_t *b)
{
    return (cm_br_state_e) b->state;
}


const char *
cm_br_state_name(cm_br_state_e s)
{
    if ((unsigned) s >= CM_BR_NSTATES) {
        return "unknown";
    }

    return cm_br_state_names[s];
}


int64_t
cm_br_retry_after(const cm_breaker_t *b, const cm_br_conf_t *c, int64_t now)
{
    int64_t   deadline, wait, best;
    uint64_t  elapsed;
    unsigned  i;

    switch (b->state) {

    case CM_BR_OPEN:
        elapsed = cm_br_elapsed(now, b->since);

        if (elapsed >= (uint64_t) cm_br_nonneg(c->open_ms)) {
            return 0;
        }

        return cm_br_nonneg(c->open_ms) - (int64_t) elapsed;

    case CM_BR_HALF_OPEN:
        if (b->admitted < b->probes) {
            return 0;
        }

        /* a pending probe expires once more than the deadline elapsed */
        deadline = cm_br_nonneg(c->probe_deadline_ms);
        best = -1;

        for (i = 0; i < b->probes; i++) {

            if (!(b->pending & ((uint32_t) 1 << i))) {
                continue;
            }

            elapsed = cm_br_elapsed(now, b->admitted_at[i]);

            wait = (elapsed > (uint64_t) deadline)
                   ? 0 : deadline - (int64_t) elapsed + 1;

            if (best < 0 || wait < best) {
                best = wait;
            }
        }

        return best < 0 ? 0 : best;

    case CM_BR_FORCED_OPEN:
        return -1;

    default:
        return 0;
    }
}


uint32_t
cm_br_seq(const cm_breaker_t *b)
{
    return b->seq;
}


int
cm_br_take_transition(const cm_breaker_t *b, uint32_t *seen,
    cm_br_transition_t *out)
{
    uint32_t                   next;
    const cm_br_transition_t  *t;

    if (b->seq == *seen) {
        return 0;
    }

    /* unsigned differences: correct across a wrap of seq */
    if (b->seq - *seen > CM_BR_HISTORY) {
        next = b->seq - CM_BR_HISTORY + 1;

    } else {
        next = *seen + 1;
    }

    t = &b->history[next % CM_BR_HISTORY];

    if (t->seq != next) {
        /* a cursor from elsewhere (a zone initialized anew): resync */
        *seen = b->seq;
        return 0;
    }

    memcpy(out, t, sizeof(cm_br_transition_t));
    *seen = next;

    return 1;
}


static void
cm_br_transition(cm_breaker_t *b, int64_t now, cm_br_state_e to,
    cm_br_reason_e reason, const char *fmt, ...)
{
    va_list              args;
    cm_br_transition_t  *t;

    b->transitions[b->state % CM_BR_NSTATES][to]++;

    b->seq++;
    t = &b->history[b->seq % CM_BR_HISTORY];

    t->seq = b->seq;
    t->from = b->state;
    t->to = to;
    t->reason = reason;
    t->at = now;

    va_start(args, fmt);
    vsnprintf(t->reason_text, CM_BR_REASON_LEN, fmt, args);
    va_end(args);

    /* every permit issued before this point becomes stale */
    b->epoch++;
    b->state = to;
    b->since = now;

    b->probes = 0;
    b->admitted = 0;
    b->succeeded = 0;
    b->slow_probes = 0;
    b->pending = 0;

    if (to == CM_BR_CLOSED) {
        cm_br_window_clear(b);
    }
}


static void
cm_br_window_clear(cm_breaker_t *b)
{
    memset(b->fail_bits, 0, sizeof(b->fail_bits));
    memset(b->slow_bits, 0, sizeof(b->slow_bits));

    /* the ring is sized again by the next outcome's conf */
    b->window = 0;
    b->head = 0;
    b->calls = 0;
    b->failures = 0;
    b->slow = 0;
}


static void
cm_br_window_push(cm_breaker_t *b, uint32_t window, int failure, int slow)
{
    uint32_t  i;
    uint64_t  mask;

    if (b->window != window) {
        /* a new breaker, or a reload changed the size: start over */
        cm_br_window_clear(b);
        b->window = window;
    }

    i = b->head;
    mask = (uint64_t) 1 << (i % 64);

    if (b->calls == window) {
        /* full: the oldest outcome, in this slot, drops out */
        b->failures -= (uint32_t) cm_br_bit_get(b->fail_bits, i);
        b->slow -= (uint32_t) cm_br_bit_get(b->slow_bits, i);

    } else {
        b->calls++;
    }

    if (failure) {
        b->fail_bits[i / 64] |= mask;
        b->failures++;

    } else {
        b->fail_bits[i / 64] &= ~mask;
    }

    if (slow) {
        b->slow_bits[i / 64] |= mask;
        b->slow++;

    } else {
        b->slow_bits[i / 64] &= ~mask;
    }

    b->head = (i + 1) % window;
}


static void
cm_br_closed_record(cm_breaker_t *b, const cm_br_conf_t *c, int64_t now,
    int failure, int slow)
{
    uint32_t  window, min_calls, failure_rate, slow_rate;

    if (failure) {
        b->failed++;

    } else {
        b->successes++;
    }

    if (slow) {
        b->slow_calls++;
    }

    window = cm_br_clamp(c->window, 1, CM_BR_WINDOW_MAX);
    min_calls = cm_br_clamp(c->min_calls, 1, window);
    failure_rate = cm_br_clamp(c->failure_rate, 1, 100);
    slow_rate = cm_br_clamp(c->slow_rate, 1, 100);

    cm_br_window_push(b, window, failure, slow);

    if (b->calls < min_calls) {
        return;
    }

    /* 64-bit products: no overflow, and no rounding before comparing */
    if ((uint64_t) b->failures * 100
        >= (uint64_t) failure_rate * b->calls)
    {
        cm_br_transition(b, now, CM_BR_OPEN, CM_BR_R_FAILURE_RATE,
                         "failure rate %u%% over last %u calls >= %u%%",
                         (unsigned) (b->failures * 100 / b->calls),
                         (unsigned) b->calls, (unsigned) failure_rate);
        return;
    }

    if ((uint64_t) b->slow * 100 >= (uint64_t) slow_rate * b->calls) {
        cm_br_transition(b, now, CM_BR_OPEN, CM_BR_R_SLOW_RATE,
                         "slow call rate %u%% over last %u calls >= %u%% "
                         "(slower than %" PRId64 " ms)",
                         (unsigned) (b->slow * 100 / b->calls),
                         (unsigned) b->calls, (unsigned) slow_rate,
                         cm_br_nonneg(c->slow_ms));
    }
}


static void
cm_br_probe_record(cm_breaker_t *b, const cm_br_conf_t *c, int64_t now,
    unsigned slot, int failure, int slow)
{
    uint32_t  bit, slow_rate;

    if (slot == 0 || slot > b->probes) {
        b->stale++;
        return;
    }

    bit = (uint32_t) 1 << (slot - 1);

    if (!(b->pending & bit)) {
        /* reported twice */
        b->stale++;
        return;
    }

    b->pending &= ~bit;

    if (slow) {
        b->slow_calls++;
    }

    if (failure) {
        b->failed++;

        cm_br_transition(b, now, CM_BR_OPEN, CM_BR_R_PROBE_FAILED,
                         "probe %u of %u failed", slot,
                         (unsigned) b->probes);
        return;
    }

    b->successes++;
    b->succeeded++;

    if (slow) {
        b->slow_probes++;
    }

    if (b->succeeded < b->probes) {
        return;
    }

    slow_rate = cm_br_clamp(c->slow_rate, 1, 100);

    if ((uint64_t) b->slow_probes * 100 >= (uint64_t) slow_rate * b->probes)
    {
        cm_br_transition(b, now, CM_BR_OPEN, CM_BR_R_PROBE_SLOW,
                         "slow probe rate %u%% over %u probes >= %u%% "
                         "(slower than %" PRId64 " ms)",
                         (unsigned) (b->slow_probes * 100 / b->probes),
                         (unsigned) b->probes, (unsigned) slow_rate,
                         cm_br_nonneg(c->slow_ms));
        return;
    }

    cm_br_transition(b, now, CM_BR_CLOSED, CM_BR_R_PROBES_SUCCEEDED,
                     "%u of %u probes succeeded", (unsigned) b->succeeded,
                     (unsigned) b->probes);
}


/* the first pending probe unreported for more than the deadline */

static int
cm_br_expired_probe(const cm_breaker_t *b, const cm_br_conf_t *c,
    int64_t now, unsigned *slot)
{
    unsigned  i;
    uint64_t  deadline;

    deadline = (uint64_t) cm_br_nonneg(c->probe_deadline_ms);

    for (i = 0; i < b->probes; i++) {

        if ((b->pending & ((uint32_t) 1 << i))
            && cm_br_elapsed(now, b->admitted_at[i]) > deadline)
        {
            *slot = i;
            return 1;
        }
    }

    return 0;
}


/*
 * now - since for any two int64_t, 0 when now is earlier: a worker whose
 * cached clock lags another's sees no time passing, not a huge span.
 */

static uint64_t
cm_br_elapsed(int64_t now, int64_t since)
{
    if (now <= since) {
        return 0;
    }

    return (uint64_t) now - (uint64_t) since;
}


static uint32_t
cm_br_clamp(uint32_t v, uint32_t min, uint32_t max)
{
    return v < min ? min : (v > max ? max : v);
}


static int64_t
cm_br_nonneg(int64_t v)
{
    return v < 0 ? 0 : v;
}
