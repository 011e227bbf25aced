
/*
 * The resilience of outbound calls, on the zone's state: circuit breakers
 * (src/lib/cm_breaker.c) and retry budgets (src/lib/cm_backoff.c) of every
 * gateway, shared by all workers under the slab pool's mutex.
 */


#include "ngx_commerce_client.h"


#define ngx_commerce_lock(shm)    ngx_shmtx_lock(&(shm)->shpool->mutex)
#define ngx_commerce_unlock(shm)  ngx_shmtx_unlock(&(shm)->shpool->mutex)


static ngx_uint_t ngx_commerce_breaker_take(cm_breaker_t *b, uint32_t seen,
    cm_br_transition_t *tr);
static void ngx_commerce_breaker_log(ngx_commerce_gateway_t *gw,
    cm_br_transition_t *tr, ngx_uint_t n);


/*
 * The zone's init_state: breaker state survives a reload only for the
 * same gateways (names, order); operator overrides from nginx.conf
 * (breaker=open|disabled) apply on every (re)load.
 */

ngx_int_t
ngx_commerce_breaker_init_zone(ngx_commerce_shm_t *shm, void *data)
{
    ngx_array_t *gateways = data;

    /* static: the master alone runs this, and ~9 KB is a lot of stack */
    static cm_br_transition_t  tr[NGX_COMMERCE_GW_MAX][CM_BR_HISTORY];

    uint32_t                   seen[NGX_COMMERCE_GW_MAX];
    ngx_uint_t                 i, n, same, nt[NGX_COMMERCE_GW_MAX];
    ngx_uint_t                 forced[NGX_COMMERCE_GW_MAX];
    ngx_msec_t                 now;
    ngx_commerce_gateway_t    *gw;

    now = ngx_current_msec;
    gw = gateways->elts;
    n = gateways->nelts;

    ngx_shmtx_lock(&shm->shpool->mutex);

    same = (shm->sh->ngw == n);

    for (i = 0; same && i < n; i++) {
        if (ngx_strncmp(shm->sh->names[i], gw[i].name.data, gw[i].name.len)
            != 0 || shm->sh->names[i][gw[i].name.len] != '\0')
        {
            same = 0;
        }
    }

    if (!same) {
        shm->sh->ngw = n;

        for (i = 0; i < n; i++) {
            ngx_memzero(shm->sh->names[i], sizeof(shm->sh->names[i]));
            ngx_memcpy(shm->sh->names[i], gw[i].name.data,
                       ngx_min(gw[i].name.len, 31));
            cm_br_init(&shm->sh->breaker[i], (int64_t) now);
            cm_rb_init(&shm->sh->budget[i], (int64_t) now);
            ngx_memzero(&shm->sh->gw[i], sizeof(ngx_commerce_gw_metrics_t));
        }
    }

    /* operator overrides from nginx.conf apply on every (re)load */

    ngx_memzero(forced, sizeof(forced));

    for (i = 0; i < n; i++) {
        if (gw[i].mode != CM_BR_CLOSED
            || cm_br_state(&shm->sh->breaker[i]) == CM_BR_FORCED_OPEN
            || cm_br_state(&shm->sh->breaker[i]) == CM_BR_DISABLED)
        {
            if (cm_br_state(&shm->sh->breaker[i]) != gw[i].mode) {
                seen[i] = cm_br_seq(&shm->sh->breaker[i]);
                (void) cm_br_force(&shm->sh->breaker[i], (int64_t) now,
                                   gw[i].mode);
                forced[i] = 1;
            }
        }
    }

    for (i = 0; i < n; i++) {
        nt[i] = forced[i]
                ? ngx_commerce_breaker_take(&shm->sh->breaker[i], seen[i],
                                            tr[i])
                : 0;
    }

    ngx_shmtx_unlock(&shm->shpool->mutex);

    for (i = 0; i < n; i++) {
        ngx_commerce_breaker_log(&gw[i], tr[i], nt[i]);
    }

    return NGX_OK;
}



/*
 * Without taking a permit: could this gateway take a call now?  Used to
 * answer 503 before anything is written to the database.
 */

ngx_int_t
ngx_commerce_breaker_admits(ngx_commerce_gateway_t *gw,
    ngx_msec_t *retry_after)
{
    int64_t              ra;
    uint32_t             seen;
    ngx_uint_t           n;
    cm_breaker_t        *b;
    cm_br_transition_t   tr[CM_BR_HISTORY];
    ngx_commerce_shm_t  *shm;

    shm = ngx_commerce_conf_main()->shm;
    b = &shm->sh->breaker[gw->index];

    ngx_commerce_lock(shm);
    seen = cm_br_seq(b);
    cm_br_tick(b, &gw->breaker, (int64_t) ngx_current_msec);
    ra = cm_br_retry_after(b, &gw->breaker, (int64_t) ngx_current_msec);
    n = ngx_commerce_breaker_take(b, seen, tr);
    ngx_commerce_unlock(shm);

    ngx_commerce_breaker_log(gw, tr, n);

    if (ra == 0) {
        return NGX_OK;
    }

    if (retry_after) {
        *retry_after = (ra < 0) ? 60000 : (ngx_msec_t) ra;
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_commerce_breaker_acquire(ngx_commerce_gateway_t *gw, ngx_msec_t now,
    int *permit, ngx_msec_t *retry_after)
{
    int                  ok;
    int64_t              ra;
    uint32_t             seen;
    ngx_uint_t           n;
    cm_breaker_t        *b;
    cm_br_transition_t   tr[CM_BR_HISTORY];
    ngx_commerce_shm_t  *shm;

    shm = ngx_commerce_conf_main()->shm;
    b = &shm->sh->breaker[gw->index];

    ngx_commerce_lock(shm);

    seen = cm_br_seq(b);
    ok = cm_br_acquire(b, &gw->breaker, (int64_t) now, permit);
    ra = ok ? 0 : cm_br_retry_after(b, &gw->breaker, (int64_t) now);

    n = ngx_commerce_breaker_take(b, seen, tr);

    ngx_commerce_unlock(shm);

    ngx_commerce_breaker_log(gw, tr, n);

    if (ok) {
        return NGX_OK;
    }

    if (retry_after) {
        *retry_after = (ra < 0) ? 60000 : (ngx_msec_t) ra;
    }

    ngx_commerce_shm_gw(gw->index, NGX_COMMERCE_OP_CREATE,
                            NGX_COMMERCE_OUT_REJECTED, 0);

    return NGX_DECLINED;
}


void
ngx_commerce_breaker_record(ngx_commerce_gateway_t *gw, int permit,
    ngx_uint_t failed, ngx_msec_t duration)
{
    uint32_t             seen;
    ngx_uint_t           n;
    cm_breaker_t        *b;
    cm_br_transition_t   tr[CM_BR_HISTORY];
    ngx_commerce_shm_t  *shm;

    shm = ngx_commerce_conf_main()->shm;
    b = &shm->sh->breaker[gw->index];

    ngx_commerce_lock(shm);

    seen = cm_br_seq(b);
    cm_br_record(b, &gw->breaker, (int64_t) ngx_current_msec, permit,
                 failed ? CM_BR_FAILURE : CM_BR_SUCCESS, (int64_t) duration);

    n = ngx_commerce_breaker_take(b, seen, tr);

    ngx_commerce_unlock(shm);

    ngx_commerce_breaker_log(gw, tr, n);
}


/* the transitions since seq "seen" (the zone's lock held) */

static ngx_uint_t
ngx_commerce_breaker_take(cm_breaker_t *b, uint32_t seen,
    cm_br_transition_t *tr)
{
    ngx_uint_t  n;

    n = 0;
    while (n < CM_BR_HISTORY && cm_br_take_transition(b, &seen, &tr[n])) {
        n++;
    }

    return n;
}


static void
ngx_commerce_breaker_log(ngx_commerce_gateway_t *gw, cm_br_transition_t *tr,
    ngx_uint_t n)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "commerce: circuit breaker for %V: %s -> %s: %s",
                      &gw->name,
                      cm_br_state_name((cm_br_state_e) tr[i].from),
                      cm_br_state_name((cm_br_state_e) tr[i].to),
                      tr[i].reason_text);
    }
}


void
ngx_commerce_breaker_budget_request(ngx_commerce_gateway_t *gw)
{
    ngx_commerce_shm_t  *shm;

    shm = ngx_commerce_conf_main()->shm;

    ngx_commerce_lock(shm);
    cm_rb_request(&shm->sh->budget[gw->index], (int64_t) ngx_current_msec);
    ngx_commerce_unlock(shm);
}


ngx_int_t
ngx_commerce_breaker_budget_retry(ngx_commerce_gateway_t *gw)
{
    int                        ok;
    ngx_commerce_shm_t        *shm;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_commerce_conf_main();
    shm = mcf->shm;

    ngx_commerce_lock(shm);
    ok = cm_rb_try_retry(&shm->sh->budget[gw->index],
                         (int64_t) ngx_current_msec,
                         (uint32_t) gw->retry_budget,
                         (uint32_t) gw->retry_budget_min);
    ngx_commerce_unlock(shm);

    if (ok) {
        (void) ngx_atomic_fetch_add(&shm->sh->gw[gw->index].retries, 1);
        return NGX_OK;
    }

    (void) ngx_atomic_fetch_add(&shm->sh->gw[gw->index].budget_exhausted, 1);

    return NGX_DECLINED;
}
