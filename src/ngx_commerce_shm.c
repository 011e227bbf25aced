
/*
 * The shared-memory zone (`commerce_zone 1m;`): circuit breakers and retry
 * budgets of every gateway, and the metrics, so that all workers see one
 * truth.  Breakers and budgets change under the slab pool's mutex; metric
 * counters are atomics.  On reload the zone is reused as it is when the
 * gateways are the same (names, order), so breaker state and counters
 * survive; a different set of gateways starts afresh.
 */


#include "ngx_commerce_gw.h"


#define ngx_commerce_lock(shm)    ngx_shmtx_lock(&(shm)->shpool->mutex)
#define ngx_commerce_unlock(shm)  ngx_shmtx_unlock(&(shm)->shpool->mutex)


static ngx_int_t ngx_commerce_init_zone(ngx_shm_zone_t *shm_zone, void *data);
static ngx_uint_t ngx_commerce_breaker_take(cm_breaker_t *b, uint32_t seen,
    cm_br_transition_t *tr);
static void ngx_commerce_breaker_log(ngx_commerce_gateway_t *gw,
    cm_br_transition_t *tr, ngx_uint_t n);
static ngx_uint_t ngx_commerce_status_slot(ngx_uint_t status);
static ngx_uint_t ngx_commerce_bucket_ms(ngx_msec_t ms);


/* every route has its metrics slot (a negative size fails the build) */
typedef char ngx_commerce_route_slots_check_t
    [NGX_COMMERCE_ROUTE_SLOTS >= NGX_COMMERCE_ROUTE_COUNT ? 1 : -1];


/* histogram bounds in milliseconds (Prometheus "le" in seconds) */
static ngx_msec_t  ngx_commerce_bounds[NGX_COMMERCE_BUCKETS] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000
};

static const char  *ngx_commerce_bounds_s[NGX_COMMERCE_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5"
};

static ngx_uint_t  ngx_commerce_statuses[NGX_COMMERCE_STATUS_SLOTS] = {
    200, 201, 202, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500,
    503, 0
};

static const char  *ngx_commerce_op_names[NGX_COMMERCE_OP_COUNT] = {
    "create", "status", "list", "cancel"
};

static const char  *ngx_commerce_out_names[NGX_COMMERCE_OUT_COUNT] = {
    "accepted", "declined", "error", "refused", "timeout", "broken",
    "rejected"
};


char *
ngx_commerce_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
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

    /* static: the master alone runs this, and ~9 KB is a lot of stack */
    static cm_br_transition_t  tr[NGX_COMMERCE_GW_MAX][CM_BR_HISTORY];

    uint32_t                   seen[NGX_COMMERCE_GW_MAX];
    ngx_uint_t                 i, same, nt[NGX_COMMERCE_GW_MAX];
    ngx_uint_t                 forced[NGX_COMMERCE_GW_MAX];
    ngx_msec_t                 now;
    ngx_commerce_shm_t        *shm;
    ngx_commerce_gateway_t    *gw;

    shm = shm_zone->data;

    shm->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    now = ngx_current_msec;

    if (oshm != NULL && oshm->sh != NULL) {
        shm->sh = oshm->sh;

    } else if (shm_zone->shm.exists) {
        shm->sh = shm->shpool->data;
    }

    if (shm->sh != NULL
        && shm->sh->version == NGX_COMMERCE_SH_VERSION
        && shm->sh->size == sizeof(ngx_commerce_shctx_t))
    {
        goto gateways;
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

gateways:

    /* keep breaker state across a reload only for the same gateways */

    gw = shm->gateways;

    ngx_shmtx_lock(&shm->shpool->mutex);

    same = (shm->sh->ngw == shm->ngateways);

    for (i = 0; same && i < shm->ngateways; i++) {
        if (ngx_strncmp(shm->sh->names[i], gw[i].name.data, gw[i].name.len)
            != 0 || shm->sh->names[i][gw[i].name.len] != '\0')
        {
            same = 0;
        }
    }

    if (!same) {
        shm->sh->ngw = shm->ngateways;

        for (i = 0; i < shm->ngateways; i++) {
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

    for (i = 0; i < shm->ngateways; i++) {
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

    for (i = 0; i < shm->ngateways; i++) {
        nt[i] = forced[i]
                ? ngx_commerce_breaker_take(&shm->sh->breaker[i], seen[i],
                                            tr[i])
                : 0;
    }

    ngx_shmtx_unlock(&shm->shpool->mutex);

    for (i = 0; i < shm->ngateways; i++) {
        ngx_commerce_breaker_log(&gw[i], tr[i], nt[i]);
    }

    return NGX_OK;
}


ngx_commerce_shctx_t *
ngx_commerce_sh(void)
{
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_commerce_main_conf();

    if (mcf == NULL || mcf->shm == NULL) {
        return NULL;
    }

    return mcf->shm->sh;
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

    shm = ngx_commerce_main_conf()->shm;
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

    shm = ngx_commerce_main_conf()->shm;
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

    ngx_commerce_metrics_gw(gw, NGX_COMMERCE_OP_CREATE,
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

    shm = ngx_commerce_main_conf()->shm;
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
ngx_commerce_budget_request(ngx_commerce_gateway_t *gw)
{
    ngx_commerce_shm_t  *shm;

    shm = ngx_commerce_main_conf()->shm;

    ngx_commerce_lock(shm);
    cm_rb_request(&shm->sh->budget[gw->index], (int64_t) ngx_current_msec);
    ngx_commerce_unlock(shm);
}


ngx_int_t
ngx_commerce_budget_retry(ngx_commerce_gateway_t *gw)
{
    int                        ok;
    ngx_commerce_shm_t        *shm;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_commerce_main_conf();
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


void
ngx_commerce_metrics_gw(ngx_commerce_gateway_t *gw, ngx_commerce_op_e op,
    ngx_commerce_outcome_e out, ngx_msec_t latency)
{
    ngx_commerce_shctx_t       *sh;
    ngx_commerce_gw_metrics_t  *m;

    sh = ngx_commerce_sh();
    if (sh == NULL) {
        return;
    }

    m = &sh->gw[gw->index];

    (void) ngx_atomic_fetch_add(&m->requests[op][out], 1);

    if (out == NGX_COMMERCE_OUT_REJECTED) {
        return;
    }

    (void) ngx_atomic_fetch_add(&m->latency[op][ngx_commerce_bucket_ms(latency)],
                                1);
    (void) ngx_atomic_fetch_add(&m->latency_sum_ms[op], latency);
}


void
ngx_commerce_metrics_request(ngx_http_request_t *r, ngx_uint_t route,
    ngx_uint_t status, ngx_msec_t latency_us)
{
    ngx_uint_t             cls;
    ngx_commerce_shctx_t  *sh;

    sh = ngx_commerce_sh();
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
               &sh->m.latency[route][cls][ngx_commerce_bucket_ms(latency_us
                                                                 / 1000)], 1);
    (void) ngx_atomic_fetch_add(&sh->m.latency_sum_us[route][cls],
                                latency_us);
}


void
ngx_commerce_metrics_db(ngx_uint_t busy, ngx_uint_t idle, ngx_uint_t down,
    ngx_uint_t queued)
{
    ngx_commerce_shctx_t      *sh;
    ngx_commerce_db_gauges_t  *g;

    sh = ngx_commerce_sh();
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
ngx_commerce_metrics_db_error(void)
{
    ngx_commerce_shctx_t  *sh;

    sh = ngx_commerce_sh();
    if (sh != NULL) {
        (void) ngx_atomic_fetch_add(&sh->m.db_errors, 1);
    }
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


static ngx_uint_t
ngx_commerce_bucket_ms(ngx_msec_t ms)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_COMMERCE_BUCKETS; i++) {
        if (ms <= ngx_commerce_bounds[i]) {
            return i;
        }
    }

    return NGX_COMMERCE_BUCKETS;
}


/* Prometheus text exposition */

#define ngx_commerce_out(...)                                                \
    do {                                                                     \
        if (b->end - b->last < 512) {                                        \
            if (ngx_commerce_metrics_grow(r, &b, &last) != NGX_OK) {         \
                return NGX_HTTP_INTERNAL_SERVER_ERROR;                       \
            }                                                                \
        }                                                                    \
        b->last = ngx_slprintf(b->last, b->end, __VA_ARGS__);                \
    } while (0)


static ngx_int_t
ngx_commerce_metrics_grow(ngx_http_request_t *r, ngx_buf_t **b,
    ngx_chain_t **last)
{
    ngx_chain_t  *cl;

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = ngx_create_temp_buf(r->pool, 64 * 1024);
    if (cl->buf == NULL) {
        return NGX_ERROR;
    }

    cl->next = NULL;
    (*last)->next = cl;
    *last = cl;
    *b = cl->buf;

    return NGX_OK;
}


ngx_int_t
ngx_commerce_metrics_handler(ngx_http_request_t *r)
{
    off_t                       len;
    ngx_int_t                   rc;
    ngx_uint_t                  i, j, k, s, c, route;
    ngx_buf_t                  *b;
    ngx_chain_t                 head, *last, *cl;
    ngx_atomic_uint_t           v, cum, busy, idle, down, queued;
    ngx_atomic_t               *lat;
    ngx_commerce_shm_t         *shm;
    ngx_commerce_shctx_t       *sh;
    ngx_commerce_gateway_t     *gw;
    ngx_commerce_main_conf_t   *mcf;
    ngx_commerce_gw_metrics_t  *gm;
    cm_breaker_t               *br;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);
    shm = mcf->shm;

    if (shm == NULL || shm->sh == NULL) {
        return NGX_HTTP_NOT_FOUND;
    }

    sh = shm->sh;

    head.buf = ngx_create_temp_buf(r->pool, 64 * 1024);
    if (head.buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    head.next = NULL;
    last = &head;
    b = head.buf;

    /* HTTP */

    ngx_commerce_out("# HELP commerce_http_requests_total API requests by "
                     "route and status.\n"
                     "# TYPE commerce_http_requests_total counter\n");

    for (route = 0; route < NGX_COMMERCE_ROUTE_SLOTS; route++) {
        for (s = 0; s < NGX_COMMERCE_STATUS_SLOTS; s++) {
            v = sh->m.requests[route][s];
            if (v == 0) {
                continue;
            }

            if (ngx_commerce_statuses[s]) {
                ngx_commerce_out("commerce_http_requests_total{route=\"%s\","
                                 "status=\"%ui\"} %uA\n",
                                 ngx_commerce_route_name(route),
                                 ngx_commerce_statuses[s], v);
            } else {
                ngx_commerce_out("commerce_http_requests_total{route=\"%s\","
                                 "status=\"other\"} %uA\n",
                                 ngx_commerce_route_name(route), v);
            }
        }
    }

    ngx_commerce_out("# HELP commerce_http_request_duration_seconds API "
                     "request latency by route and status class.\n"
                     "# TYPE commerce_http_request_duration_seconds "
                     "histogram\n");

    for (route = 0; route < NGX_COMMERCE_ROUTE_SLOTS; route++) {
        for (c = 0; c < NGX_COMMERCE_CLASS_SLOTS; c++) {
            lat = sh->m.latency[route][c];

            cum = 0;
            for (k = 0; k <= NGX_COMMERCE_BUCKETS; k++) {
                cum += lat[k];
            }

            if (cum == 0) {
                continue;
            }

            cum = 0;
            for (k = 0; k < NGX_COMMERCE_BUCKETS; k++) {
                cum += lat[k];
                ngx_commerce_out("commerce_http_request_duration_seconds_"
                                 "bucket{route=\"%s\",status=\"%uixx\","
                                 "le=\"%s\"} %uA\n",
                                 ngx_commerce_route_name(route), c + 1,
                                 ngx_commerce_bounds_s[k], cum);
            }

            cum += lat[NGX_COMMERCE_BUCKETS];

            ngx_commerce_out("commerce_http_request_duration_seconds_bucket"
                             "{route=\"%s\",status=\"%uixx\",le=\"+Inf\"} "
                             "%uA\n"
                             "commerce_http_request_duration_seconds_sum"
                             "{route=\"%s\",status=\"%uixx\"} %uA.%06uA\n"
                             "commerce_http_request_duration_seconds_count"
                             "{route=\"%s\",status=\"%uixx\"} %uA\n",
                             ngx_commerce_route_name(route), c + 1, cum,
                             ngx_commerce_route_name(route), c + 1,
                             sh->m.latency_sum_us[route][c] / 1000000,
                             sh->m.latency_sum_us[route][c] % 1000000,
                             ngx_commerce_route_name(route), c + 1, cum);
        }
    }

    /* Postgres pool, summed over live workers */

    busy = idle = down = queued = 0;

    for (i = 0; i < NGX_COMMERCE_WORKERS_MAX; i++) {
        if (sh->m.db[i].pid == 0) {
            continue;
        }

        if (kill((ngx_pid_t) sh->m.db[i].pid, 0) == -1) {
            continue;
        }

        busy += sh->m.db[i].busy;
        idle += sh->m.db[i].idle;
        down += sh->m.db[i].down;
        queued += sh->m.db[i].queued;
    }

    ngx_commerce_out("# HELP commerce_db_pool_connections Postgres "
                     "connections of all workers by state.\n"
                     "# TYPE commerce_db_pool_connections gauge\n"
                     "commerce_db_pool_connections{state=\"busy\"} %uA\n"
                     "commerce_db_pool_connections{state=\"idle\"} %uA\n"
                     "commerce_db_pool_connections{state=\"down\"} %uA\n"
                     "# HELP commerce_db_pool_queued Requests waiting for a "
                     "Postgres connection.\n"
                     "# TYPE commerce_db_pool_queued gauge\n"
                     "commerce_db_pool_queued %uA\n"
                     "# HELP commerce_db_errors_total Postgres connection "
                     "failures and query errors.\n"
                     "# TYPE commerce_db_errors_total counter\n"
                     "commerce_db_errors_total %uA\n",
                     busy, idle, down, queued, sh->m.db_errors);

    /* gateways */

    gw = mcf->gateways.elts;

    ngx_commerce_out("# HELP commerce_gateway_requests_total Exchanges with "
                     "payment gateways by operation and outcome.\n"
                     "# TYPE commerce_gateway_requests_total counter\n");

    for (i = 0; i < mcf->gateways.nelts; i++) {
        gm = &sh->gw[i];

        for (j = 0; j < NGX_COMMERCE_OP_COUNT; j++) {
            for (k = 0; k < NGX_COMMERCE_OUT_COUNT; k++) {
                ngx_commerce_out("commerce_gateway_requests_total{gateway="
                                 "\"%V\",op=\"%s\",outcome=\"%s\"} %uA\n",
                                 &gw[i].name, ngx_commerce_op_names[j],
                                 ngx_commerce_out_names[k],
                                 gm->requests[j][k]);
            }
        }
    }

    ngx_commerce_out("# HELP commerce_gateway_request_duration_seconds "
                     "Latency of exchanges with payment gateways.\n"
                     "# TYPE commerce_gateway_request_duration_seconds "
                     "histogram\n");

    for (i = 0; i < mcf->gateways.nelts; i++) {
        gm = &sh->gw[i];

        for (j = 0; j < NGX_COMMERCE_OP_COUNT; j++) {
            cum = 0;
            for (k = 0; k < NGX_COMMERCE_BUCKETS; k++) {
                cum += gm->latency[j][k];
                ngx_commerce_out("commerce_gateway_request_duration_seconds"
                                 "_bucket{gateway=\"%V\",op=\"%s\","
                                 "le=\"%s\"} %uA\n", &gw[i].name,
                                 ngx_commerce_op_names[j],
                                 ngx_commerce_bounds_s[k], cum);
            }

            cum += gm->latency[j][NGX_COMMERCE_BUCKETS];

            ngx_commerce_out("commerce_gateway_request_duration_seconds"
                             "_bucket{gateway=\"%V\",op=\"%s\",le=\"+Inf\"}"
                             " %uA\n"
                             "commerce_gateway_request_duration_seconds_sum"
                             "{gateway=\"%V\",op=\"%s\"} %uA.%03uA\n"
                             "commerce_gateway_request_duration_seconds"
                             "_count{gateway=\"%V\",op=\"%s\"} %uA\n",
                             &gw[i].name, ngx_commerce_op_names[j], cum,
                             &gw[i].name, ngx_commerce_op_names[j],
                             gm->latency_sum_ms[j] / 1000,
                             gm->latency_sum_ms[j] % 1000,
                             &gw[i].name, ngx_commerce_op_names[j], cum);
        }
    }

    ngx_commerce_out("# HELP commerce_gateway_breaker_state Circuit breaker "
                     "state per gateway (one-hot).\n"
                     "# TYPE commerce_gateway_breaker_state gauge\n");

    /* time-driven transitions first, logged like any other */
    for (i = 0; i < mcf->gateways.nelts; i++) {
        (void) ngx_commerce_breaker_admits(&gw[i], NULL);
    }

    ngx_commerce_lock(shm);

    for (i = 0; i < mcf->gateways.nelts; i++) {
        br = &sh->breaker[i];

        for (s = 0; s < CM_BR_NSTATES; s++) {
            ngx_commerce_out("commerce_gateway_breaker_state{gateway=\"%V\","
                             "state=\"%s\"} %d\n", &gw[i].name,
                             cm_br_state_name((cm_br_state_e) s),
                             cm_br_state(br) == (cm_br_state_e) s);
        }
    }

    ngx_commerce_out("# HELP commerce_gateway_breaker_transitions_total "
                     "Circuit breaker transitions.\n"
                     "# TYPE commerce_gateway_breaker_transitions_total "
                     "counter\n");

    for (i = 0; i < mcf->gateways.nelts; i++) {
        br = &sh->breaker[i];

        for (j = 0; j < CM_BR_NSTATES; j++) {
            for (k = 0; k < CM_BR_NSTATES; k++) {
                if (br->transitions[j][k] == 0) {
                    continue;
                }

                ngx_commerce_out("commerce_gateway_breaker_transitions_total"
                                 "{gateway=\"%V\",from=\"%s\",to=\"%s\"} "
                                 "%uL\n", &gw[i].name,
                                 cm_br_state_name((cm_br_state_e) j),
                                 cm_br_state_name((cm_br_state_e) k),
                                 (uint64_t) br->transitions[j][k]);
            }
        }
    }

    ngx_commerce_unlock(shm);

    ngx_commerce_out("# HELP commerce_gateway_retries_total Retried gateway "
                     "requests.\n"
                     "# TYPE commerce_gateway_retries_total counter\n");

    for (i = 0; i < mcf->gateways.nelts; i++) {
        ngx_commerce_out("commerce_gateway_retries_total{gateway=\"%V\"} "
                         "%uA\n", &gw[i].name, sh->gw[i].retries);
    }

    ngx_commerce_out("# HELP commerce_gateway_retry_budget_exhausted_total "
                     "Retries refused by the retry budget.\n"
                     "# TYPE commerce_gateway_retry_budget_exhausted_total "
                     "counter\n");

    for (i = 0; i < mcf->gateways.nelts; i++) {
        ngx_commerce_out("commerce_gateway_retry_budget_exhausted_total"
                         "{gateway=\"%V\"} %uA\n", &gw[i].name,
                         sh->gw[i].budget_exhausted);
    }

    ngx_commerce_out("# HELP commerce_net_cancels_total Approved payments "
                     "cancelled at the gateway because the order could not "
                     "take them.\n"
                     "# TYPE commerce_net_cancels_total counter\n");

    for (i = 0; i < mcf->gateways.nelts; i++) {
        ngx_commerce_out("commerce_net_cancels_total{gateway=\"%V\","
                         "outcome=\"ok\"} %uA\n"
                         "commerce_net_cancels_total{gateway=\"%V\","
                         "outcome=\"failed\"} %uA\n",
                         &gw[i].name, sh->gw[i].net_cancel_ok,
                         &gw[i].name, sh->gw[i].net_cancel_failed);
    }

    ngx_commerce_out("# HELP commerce_payments_pending Card payments "
                     "waiting for a gateway decision (as of the last "
                     "reconciler run).\n"
                     "# TYPE commerce_payments_pending gauge\n"
                     "commerce_payments_pending %uA\n"
                     "# HELP commerce_payments_pending_oldest_age_seconds Age "
                     "of the oldest pending card payment.\n"
                     "# TYPE commerce_payments_pending_oldest_age_seconds "
                     "gauge\n"
                     "commerce_payments_pending_oldest_age_seconds %uA\n"
                     "# HELP commerce_reconciler_runs_total Reconciler "
                     "runs.\n"
                     "# TYPE commerce_reconciler_runs_total counter\n"
                     "commerce_reconciler_runs_total %uA\n"
                     "# HELP commerce_payments_settled_total Card payments "
                     "settled by callbacks and the reconciler.\n"
                     "# TYPE commerce_payments_settled_total counter\n"
                     "commerce_payments_settled_total{outcome=\"success\"} "
                     "%uA\n"
                     "commerce_payments_settled_total{outcome=\"failed\"} "
                     "%uA\n"
                     "commerce_payments_settled_total{outcome=\"not_found\"}"
                     " %uA\n"
                     "commerce_payments_settled_total{outcome=\"timeout\"} "
                     "%uA\n"
                     "# HELP commerce_callbacks_total Gateway callbacks "
                     "received.\n"
                     "# TYPE commerce_callbacks_total counter\n"
                     "commerce_callbacks_total{result=\"accepted\"} %uA\n"
                     "commerce_callbacks_total{result=\"rejected\"} %uA\n",
                     sh->m.pending_payments, sh->m.pending_oldest_s,
                     sh->m.reconciler_runs, sh->m.settled_success,
                     sh->m.settled_failed, sh->m.settled_not_found,
                     sh->m.settled_timeout, sh->m.callbacks,
                     sh->m.callbacks_rejected);

    if (b->end - b->last < 8192
        && ngx_commerce_metrics_grow(r, &b, &last) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_commerce_limit_metrics(b->last, b->end);

    len = 0;
    for (cl = &head; cl; cl = cl->next) {
        len += cl->buf->last - cl->buf->pos;
        cl->buf->memory = 1;
    }

    last->buf->last_buf = 1;
    last->buf->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, &head);
}
