
/*
 * The shared-memory zone (`commerce_zone 1m;`): state every worker sees
 * alike.  Circuit breakers and retry budgets of every gateway change under
 * the slab pool's mutex (their logic is src/lib/cm_breaker.c and
 * cm_backoff.c, their use src/io/ngx_commerce_breaker.c); metric counters
 * are atomics.  Nothing here knows what a gateway or a route is: slots are
 * numbers.  On reload the zone is reused when its layout is the same, and
 * the state's owner (init_state) decides what of it survives.
 */


#include "ngx_commerce_shm.h"


static ngx_int_t ngx_commerce_init_zone(ngx_shm_zone_t *shm_zone, void *data);
static ngx_uint_t ngx_commerce_status_slot(ngx_uint_t status);
static ngx_uint_t ngx_commerce_shm_slot(const uint64_t *bounds, ngx_uint_t n,
    uint64_t v);


/* histogram bounds in milliseconds (Prometheus "le" in seconds) */
static uint64_t  ngx_commerce_bounds[NGX_COMMERCE_BUCKETS] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000
};

const char  *ngx_commerce_bounds_s[NGX_COMMERCE_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5"
};

const ngx_uint_t  ngx_commerce_statuses[NGX_COMMERCE_STATUS_SLOTS] = {
    200, 201, 202, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500,
    503, 0
};

const char  *ngx_commerce_op_names[NGX_COMMERCE_OP_COUNT] = {
    "create", "status", "list", "cancel"
};

const char  *ngx_commerce_out_names[NGX_COMMERCE_OUT_COUNT] = {
    "accepted", "declined", "error", "refused", "timeout", "broken",
    "rejected"
};

/* Redis answers in well under a millisecond: bounds in microseconds */
static uint64_t  ngx_commerce_redis_bounds[NGX_COMMERCE_REDIS_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
    1000000
};

const char  *ngx_commerce_redis_bounds_s[NGX_COMMERCE_REDIS_BUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
    "0.025", "0.05", "0.1", "0.25", "1"
};

const char  *ngx_commerce_redis_err_names[NGX_COMMERCE_REDIS_ERR_COUNT] = {
    "timeout", "connection", "server", "queue"
};



char *
ngx_commerce_shm_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_commerce_main_conf_t *mcf = conf;

    ssize_t              size;
    ngx_str_t           *value, name;
    ngx_commerce_shm_t  *shm;

    if (mcf->shm != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)
        || size < (ssize_t) (sizeof(ngx_commerce_shctx_t) * 2))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_zone\" size \"%V\" is invalid or "
                           "too small (at least %uz)", &value[1],
                           ngx_max(8 * ngx_pagesize,
                                   sizeof(ngx_commerce_shctx_t) * 2));
        return NGX_CONF_ERROR;
    }

    shm = ngx_pcalloc(cf->pool, sizeof(ngx_commerce_shm_t));
    if (shm == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&name, "commerce");

    shm->zone = ngx_shared_memory_add(cf, &name, size,
                                      &ngx_http_commerce_module);
    if (shm->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    shm->zone->init = ngx_commerce_init_zone;
    shm->zone->data = shm;

    mcf->shm = shm;

    return NGX_CONF_OK;
}



static ngx_int_t
ngx_commerce_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_commerce_shm_t  *oshm = data;

    ngx_commerce_shm_t  *shm;

    shm = shm_zone->data;

    shm->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (oshm != NULL && oshm->sh != NULL) {
        shm->sh = oshm->sh;

    } else if (shm_zone->shm.exists) {
        shm->sh = shm->shpool->data;
    }

    if (shm->sh != NULL
        && shm->sh->version == NGX_COMMERCE_SH_VERSION
        && shm->sh->size == sizeof(ngx_commerce_shctx_t))
    {
        goto state;
    }

    /* new, or left by a build with another layout: start afresh */

    shm->sh = ngx_slab_calloc(shm->shpool, sizeof(ngx_commerce_shctx_t));
    if (shm->sh == NULL) {
        return NGX_ERROR;
    }

    shm->shpool->data = shm->sh;

    shm->sh->version = NGX_COMMERCE_SH_VERSION;
    shm->sh->size = sizeof(ngx_commerce_shctx_t);
    shm->sh->ngw = (ngx_uint_t) -1;

    if (shm->shpool->log_ctx == NULL || shm->shpool->log_ctx[0] != ' ') {
        shm->shpool->log_ctx = ngx_slab_alloc(shm->shpool,
                                              sizeof(" in commerce zone"));
        if (shm->shpool->log_ctx == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(shm->shpool->log_ctx, " in commerce zone%Z");
    }

state:

    /* the owner of the state decides what survives a reload */

    if (shm->init_state != NULL) {
        return shm->init_state(shm, shm->state_data);
    }

    return NGX_OK;
}



ngx_commerce_shctx_t *
ngx_commerce_shm_state(void)
{
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_commerce_conf_main();

    if (mcf == NULL || mcf->shm == NULL) {
        return NULL;
    }

    return mcf->shm->sh;
}



void
ngx_commerce_shm_gw(ngx_uint_t gw, ngx_commerce_op_e op,
    ngx_commerce_outcome_e out, ngx_msec_t latency)
{
    ngx_commerce_shctx_t       *sh;
    ngx_commerce_gw_metrics_t  *m;

    sh = ngx_commerce_shm_state();
    if (sh == NULL) {
        return;
    }

    if (gw >= NGX_COMMERCE_GW_MAX) {
        return;
    }

    m = &sh->gw[gw];

    (void) ngx_atomic_fetch_add(&m->requests[op][out], 1);

    if (out == NGX_COMMERCE_OUT_REJECTED) {
        return;
    }

    (void) ngx_atomic_fetch_add(&m->latency[op][ngx_commerce_shm_bucket(latency)],
                                1);
    (void) ngx_atomic_fetch_add(&m->latency_sum_ms[op], latency);
}


void
ngx_commerce_shm_request(ngx_uint_t route, ngx_uint_t status,
    ngx_msec_t latency_us)
{
    ngx_uint_t             cls;
    ngx_commerce_shctx_t  *sh;

    sh = ngx_commerce_shm_state();
    if (sh == NULL) {
        return;
    }

    if (route >= NGX_COMMERCE_ROUTE_SLOTS) {
        route = 0;
    }

    cls = (status >= 100 && status < 600) ? status / 100 - 1
                                          : NGX_COMMERCE_CLASS_SLOTS - 1;

    (void) ngx_atomic_fetch_add(
                     &sh->m.requests[route][ngx_commerce_status_slot(status)],
                     1);
    (void) ngx_atomic_fetch_add(
               &sh->m.latency[route][cls][ngx_commerce_shm_bucket(latency_us
                                                                 / 1000)], 1);
    (void) ngx_atomic_fetch_add(&sh->m.latency_sum_us[route][cls],
                                latency_us);
}


void
ngx_commerce_shm_db(ngx_uint_t busy, ngx_uint_t idle, ngx_uint_t down,
    ngx_uint_t queued)
{
    ngx_commerce_shctx_t      *sh;
    ngx_commerce_db_gauges_t  *g;

    sh = ngx_commerce_shm_state();
    if (sh == NULL || ngx_worker >= NGX_COMMERCE_WORKERS_MAX) {
        return;
    }

    g = &sh->m.db[ngx_worker];
    g->busy = busy;
    g->idle = idle;
    g->down = down;
    g->queued = queued;
    g->pid = ngx_pid;
}


void
ngx_commerce_shm_db_error(void)
{
    ngx_commerce_shctx_t  *sh;

    sh = ngx_commerce_shm_state();
    if (sh != NULL) {
        (void) ngx_atomic_fetch_add(&sh->m.db_errors, 1);
    }
}


/*
 * A query the pool placed: sent or pipelined at once (queued 0), or put
 * into this worker's queue, then queued long (a read sent again after a
 * lost connection is placed again, and counted again).  The worker's slot
 * keeps the longest queue it has seen; only this worker writes it.
 */

void
ngx_commerce_shm_db_placed(ngx_uint_t queued)
{
    ngx_commerce_shctx_t      *sh;
    ngx_commerce_db_gauges_t  *g;

    sh = ngx_commerce_shm_state();
    if (sh == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(&sh->m.dbq.queries, 1);

    if (queued == 0) {
        return;
    }

    (void) ngx_atomic_fetch_add(&sh->m.dbq.waited, 1);

    if (ngx_worker < NGX_COMMERCE_WORKERS_MAX) {
        g = &sh->m.db[ngx_worker];

        if (g->queued_max < queued) {
            g->queued_max = queued;
        }
    }
}


/* a queued query left the queue (sent, timed out, failed) after ms */

void
ngx_commerce_shm_db_waited(ngx_msec_t ms)
{
    ngx_commerce_shctx_t  *sh;

    sh = ngx_commerce_shm_state();
    if (sh == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(&sh->m.dbq.wait[ngx_commerce_shm_bucket(ms)],
                                1);
    (void) ngx_atomic_fetch_add(&sh->m.dbq.wait_sum_ms, ms);
}


static ngx_uint_t
ngx_commerce_status_slot(ngx_uint_t status)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_COMMERCE_STATUS_SLOTS - 1; i++) {
        if (ngx_commerce_statuses[i] == status) {
            return i;
        }
    }

    return NGX_COMMERCE_STATUS_SLOTS - 1;
}


ngx_uint_t
ngx_commerce_shm_bucket(ngx_msec_t ms)
{
    return ngx_commerce_shm_slot(ngx_commerce_bounds, NGX_COMMERCE_BUCKETS,
                                 ms);
}


/* the histogram bucket of v: the first bound it fits, n past the last */

static ngx_uint_t
ngx_commerce_shm_slot(const uint64_t *bounds, ngx_uint_t n, uint64_t v)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        if (v <= bounds[i]) {
            return i;
        }
    }

    return n;
}


/*
 * This worker's Redis connections by state.  A worker that is shutting
 * down leaves the slot alone: its successor has the same number.
 */

void
ngx_commerce_shm_redis_state(ngx_uint_t up, ngx_uint_t connecting,
    ngx_uint_t down, ngx_uint_t queued)
{
    ngx_commerce_shctx_t         *sh;
    ngx_commerce_redis_gauges_t  *g;

    sh = ngx_commerce_shm_state();
    if (sh == NULL || ngx_worker >= NGX_COMMERCE_WORKERS_MAX
        || ngx_exiting || ngx_quit || ngx_terminate)
    {
        return;
    }

    g = &sh->m.redis.gauges[ngx_worker];
    g->up = up;
    g->connecting = connecting;
    g->down = down;
    g->queued = queued;
    g->pid = ngx_pid;
}


/* at worker exit: the slot, if it is still this worker's */

void
ngx_commerce_shm_redis_clear(void)
{
    ngx_commerce_shctx_t         *sh;
    ngx_commerce_redis_gauges_t  *g;

    sh = ngx_commerce_shm_state();
    if (sh == NULL || ngx_worker >= NGX_COMMERCE_WORKERS_MAX) {
        return;
    }

    g = &sh->m.redis.gauges[ngx_worker];

    if (g->pid == (ngx_atomic_uint_t) ngx_pid) {
        g->up = 0;
        g->connecting = 0;
        g->down = 0;
        g->queued = 0;
        g->pid = 0;
    }
}


void
ngx_commerce_shm_redis_latency(uint64_t us)
{
    ngx_uint_t             i;
    ngx_commerce_shctx_t  *sh;

    sh = ngx_commerce_shm_state();
    if (sh == NULL) {
        return;
    }

    i = ngx_commerce_shm_slot(ngx_commerce_redis_bounds,
                              NGX_COMMERCE_REDIS_BUCKETS, us);

    (void) ngx_atomic_fetch_add(&sh->m.redis.latency[i], 1);
    (void) ngx_atomic_fetch_add(&sh->m.redis.latency_sum_us,
                                (ngx_atomic_int_t) us);
}


void
ngx_commerce_shm_redis_error(ngx_commerce_redis_err_e kind)
{
    ngx_commerce_shctx_t  *sh;

    sh = ngx_commerce_shm_state();
    if (sh != NULL && kind < NGX_COMMERCE_REDIS_ERR_COUNT) {
        (void) ngx_atomic_fetch_add(&sh->m.redis.errors[kind], 1);
    }
}


void
ngx_commerce_shm_redis_reconnect(void)
{
    ngx_commerce_shctx_t  *sh;

    sh = ngx_commerce_shm_state();
    if (sh != NULL) {
        (void) ngx_atomic_fetch_add(&sh->m.redis.reconnects, 1);
    }
}


/* a domain's counter (ngx_commerce_conf_counter()): add n, or set it */

void
ngx_commerce_shm_count(ngx_int_t slot, ngx_atomic_int_t n)
{
    ngx_commerce_shctx_t  *sh;

    sh = ngx_commerce_shm_state();

    if (sh != NULL && slot >= 0 && slot < NGX_COMMERCE_COUNTERS_MAX) {
        (void) ngx_atomic_fetch_add(&sh->m.counters[slot], n);
    }
}


void
ngx_commerce_shm_gauge(ngx_int_t slot, ngx_atomic_uint_t v)
{
    ngx_commerce_shctx_t  *sh;

    sh = ngx_commerce_shm_state();

    if (sh != NULL && slot >= 0 && slot < NGX_COMMERCE_COUNTERS_MAX) {
        sh->m.counters[slot] = v;
    }
}
