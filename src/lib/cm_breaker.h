/*
 * cm_breaker: a circuit-breaker state machine for one payment gateway,
 * without nginx.
 *
 * The breaker is one fixed-size struct with no pointers, so that it can
 * live in a shared-memory zone and be updated by every worker process.
 * Nothing here locks: the caller holds the zone's mutex around every call
 * that takes a cm_breaker_t, const ones included.  Nothing allocates,
 * nothing reads a clock: "now" is a monotonic time in milliseconds passed
 * by the caller (ngx_current_msec); workers whose cached clocks differ by a
 * few milliseconds are fine.
 *
 *                 failure or slow-call rate                open_ms
 *    CLOSED  ------------------------------>  OPEN  ----------------->
 *      ^                                       ^                      |
 *      |      all probes succeeded             | a probe failed, was  |
 *      +------------------------------  HALF_OPEN  <------------------+
 *                                         too slow or not reported
 *                                         within probe_deadline_ms
 *
 * CLOSED counts the outcomes of the last `window` calls; once at least
 * min_calls are in the window, it opens when failures * 100 / calls >=
 * failure_rate, or else when slow * 100 / calls >= slow_rate.  A slow call
 * is one whose duration is > slow_ms, successful or not.
 *
 * OPEN rejects everything; after open_ms the next acquire (or tick) makes
 * it HALF_OPEN, which admits half_open_probes calls and no more.  A probe
 * that fails, or that is not reported within probe_deadline_ms of being
 * admitted, reopens the breaker for a new open_ms.  When every probe has
 * succeeded it closes with an empty window, unless slow probes reach
 * slow_rate, which reopens it.  HALF_OPEN therefore never outlives its
 * last admitted probe by more than probe_deadline_ms (as of the next
 * acquire, record or tick): an abandoned probe (a worker that died, a
 * request never finished) expires.
 *
 * Two operator overrides stand outside the machine: FORCED_OPEN rejects
 * everything and DISABLED admits everything and records nothing, both
 * until cm_br_force(CLOSED) returns to normal with an empty window.
 *
 * Permits.  Every transition bumps an epoch, and a permit carries the
 * epoch it was issued in (and, in HALF_OPEN, its probe slot).  A result
 * reported with a permit of an earlier epoch is stale and ignored (counted
 * in b->stale): a slow call admitted while CLOSED that ends after the
 * breaker opened neither extends the open period nor counts in the next
 * window; a probe that reports after its deadline reopened the breaker
 * changes nothing.  Reporting the same probe twice counts it once.
 *
 * Transitions.  The last CM_BR_HISTORY transitions are kept in the struct,
 * each with a sequence number and a human reason.  The caller that makes
 * them happen reports them, all under the lock:
 *
 *     seen = cm_br_seq(b);
 *     rc = cm_br_acquire(b, conf, now, &permit);
 *     n = 0;
 *     while (n < CM_BR_HISTORY && cm_br_take_transition(b, &seen, &tr[n])) {
 *         n++;
 *     }
 *     unlock; then for each tr[i]: log at warn
 *         "circuit breaker for %s: %s -> %s: %s", name,
 *         cm_br_state_name(tr[i].from), cm_br_state_name(tr[i].to),
 *         tr[i].reason_text
 *
 * A single call makes at most three transitions (in practice two: an
 * expired probe, then with open_ms 0 half open again at once).
 * b->transitions[from][to] counts them all for metrics.
 */


#ifndef _CM_BREAKER_H_INCLUDED_
#define _CM_BREAKER_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CM_BR_WINDOW_MAX      256
#define CM_BR_PROBES_MAX      32        /* half_open_probes is capped here */
#define CM_BR_HISTORY         8         /* transitions kept, a power of 2 */
#define CM_BR_REASON_LEN      120       /* reason text with its NUL */
#define CM_BR_NSTATES         5


typedef enum {
    CM_BR_CLOSED = 0,
    CM_BR_OPEN,
    CM_BR_HALF_OPEN,
    CM_BR_FORCED_OPEN,
    CM_BR_DISABLED
} cm_br_state_e;


typedef enum {
    CM_BR_SUCCESS = 0,
    CM_BR_FAILURE
} cm_br_outcome_e;


/* why a transition happened; the text says it with numbers */
typedef enum {
    CM_BR_R_FAILURE_RATE = 0,   /* closed -> open */
    CM_BR_R_SLOW_RATE,          /* closed -> open */
    CM_BR_R_PROBE_FAILED,       /* half_open -> open */
    CM_BR_R_PROBE_EXPIRED,      /* half_open -> open: deadline passed */
    CM_BR_R_PROBE_SLOW,         /* half_open -> open: slow probes */
    CM_BR_R_PROBES_SUCCEEDED,   /* half_open -> closed */
    CM_BR_R_OPEN_ELAPSED,       /* open -> half_open */
    CM_BR_R_OPERATOR            /* cm_br_force() */
} cm_br_reason_e;


/* per gateway, read-only; check it once with cm_br_conf_check() */
typedef struct {
    uint32_t   window;            /* calls in the sliding window, 1..256 */
    uint32_t   min_calls;         /* no decision with fewer calls, 1..window */
    uint32_t   failure_rate;      /* percent, 1..100 */
    uint32_t   slow_rate;         /* percent, 1..100 */
    int64_t    slow_ms;           /* slower than this is slow, >= 0 */
    int64_t    open_ms;           /* OPEN lasts this long, >= 0 */
    uint32_t   half_open_probes;  /* probes admitted in HALF_OPEN, 1..32 */
    int64_t    probe_deadline_ms; /* an unreported probe fails after, > 0 */
} cm_br_conf_t;


typedef struct {
    uint32_t   seq;               /* 1, 2, 3...: 0 is "none yet" */
    uint32_t   from;              /* cm_br_state_e */
    uint32_t   to;                /* cm_br_state_e */
    uint32_t   reason;            /* cm_br_reason_e */
    int64_t    at;                /* the now of the call that made it */
    char       reason_text[CM_BR_REASON_LEN];
} cm_br_transition_t;


/*
 * The fields are readable (under the lock) by metrics code; only the
 * functions below write them.  Times are caller milliseconds.
 */
typedef struct {
    uint32_t            state;        /* cm_br_state_e */
    uint32_t            epoch;        /* bumped by every transition */
    int64_t             since;        /* when the current state began */

    /* CLOSED: the ring of the last `window` outcomes, one bit each */
    uint64_t            fail_bits[CM_BR_WINDOW_MAX / 64];
    uint64_t            slow_bits[CM_BR_WINDOW_MAX / 64];
    uint32_t            window;       /* ring size in use (conf may change) */
    uint32_t            head;         /* next slot to write */
    uint32_t            calls;        /* outcomes in the ring */
    uint32_t            failures;     /* failure bits set in the ring */
    uint32_t            slow;         /* slow bits set in the ring */

    /* HALF_OPEN */
    uint32_t            probes;       /* probes of this half-open period */
    uint32_t            admitted;     /* probes admitted so far */
    uint32_t            succeeded;    /* probes reported successful */
    uint32_t            slow_probes;  /* successful but slow */
    uint32_t            pending;      /* bit i: probe i admitted, unreported */
    int64_t             admitted_at[CM_BR_PROBES_MAX];

    /* counters, never reset (cm_br_init zeroes them) */
    uint64_t            transitions[CM_BR_NSTATES][CM_BR_NSTATES];
    uint64_t            acquired;     /* permits issued */
    uint64_t            rejected;     /* acquire returned 0 */
    uint64_t            successes;    /* recorded, not stale */
    uint64_t            failed;       /* recorded, not stale */
    uint64_t            slow_calls;   /* recorded as slow, not stale */
    uint64_t            stale;        /* results of an earlier epoch */
    uint64_t            expired;      /* probes past their deadline */

    uint32_t            seq;          /* of the last transition */
    uint32_t            reserved;
    cm_br_transition_t  history[CM_BR_HISTORY];  /* seq % CM_BR_HISTORY */
} cm_breaker_t;


/*
 * 0 if c is usable, else -1 with *err naming the bad field (a static
 * string such as "window must be 1..256").  The functions below clamp a
 * bad conf instead of failing, but their behaviour then is not the one
 * configured.
 */
int cm_br_conf_check(const cm_br_conf_t *c, const char **err);

/* CLOSED, empty, counters zeroed; seq 0 */
void cm_br_init(cm_breaker_t *b, int64_t now);

/*
 * May a call go out now?  Makes the time-based transitions first (see
 * cm_br_tick).  Returns 1 with *permit >= 0, to be passed to exactly one
 * cm_br_record() when the call ends, or 0 (rejected: OPEN, FORCED_OPEN,
 * or HALF_OPEN with every probe already admitted).
 */
int cm_br_acquire(cm_breaker_t *b, const cm_br_conf_t *c, int64_t now,
    int *permit);

/*
 * The end of an admitted call: its outcome and how long it took.  A
 * timeout is a CM_BR_FAILURE lasting the timeout.  Makes the time-based
 * transitions first, so a probe reported after its deadline is stale.
 * Stale or invalid permits are counted and ignored.
 */
void cm_br_record(cm_breaker_t *b, const cm_br_conf_t *c, int64_t now,
    int permit, cm_br_outcome_e outcome, int64_t duration_ms);

/*
 * Only the time-based transitions: OPEN -> HALF_OPEN after open_ms,
 * HALF_OPEN -> OPEN when a probe is past its deadline.  For a metrics
 * scrape or a timer, so that the state shown is current without traffic.
 */
void cm_br_tick(cm_breaker_t *b, const cm_br_conf_t *c, int64_t now);

/*
 * Operator override: CM_BR_FORCED_OPEN, CM_BR_DISABLED, or CM_BR_CLOSED
 * (back to normal from anywhere, window emptied; already CLOSED it only
 * empties the window, no transition).  Returns 0, or -1 for another state.
 * Forcing the current override again changes nothing.
 */
int cm_br_force(cm_breaker_t *b, int64_t now, cm_br_state_e state);

cm_br_state_e cm_br_state(const cm_breaker_t *b);

/* "closed", "open", "half_open", "forced_open", "disabled"; "unknown" */
const char *cm_br_state_name(cm_br_state_e s);

/*
 * Milliseconds until the breaker may admit a call (for Retry-After): 0 if
 * it admits now, the rest of the open period when OPEN, the time until the
 * earliest probe deadline when HALF_OPEN is full, -1 when FORCED_OPEN.
 * Does not change the breaker; run cm_br_tick() first.
 */
int64_t cm_br_retry_after(const cm_breaker_t *b, const cm_br_conf_t *c,
    int64_t now);

/* the sequence number of the last transition, 0 if none */
uint32_t cm_br_seq(const cm_breaker_t *b);

/*
 * The oldest kept transition with a sequence number after *seen: copies
 * it to *out, sets *seen to its seq, returns 1; returns 0 when there is
 * none.  If *seen fell more than CM_BR_HISTORY behind, the ones in between
 * are lost: out->seq - old *seen - 1 of them.
 */
int cm_br_take_transition(const cm_breaker_t *b, uint32_t *seen,
    cm_br_transition_t *out);


#endif /* _CM_BREAKER_H_INCLUDED_ */
