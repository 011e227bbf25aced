
/*
 * The Prometheus text exposition of the zone's counters (`commerce_metrics`
 * location): requests by route, the database pool, the gateways, their
 * breakers and budgets, the reconciler and the rate limits.
 */


#include "ngx_commerce_http.h"
#include "ngx_commerce_client.h"


static ngx_int_t ngx_commerce_metrics_grow(ngx_http_request_t *r,
    ngx_buf_t **b, ngx_chain_t **last);
static ngx_int_t ngx_commerce_metrics_db(ngx_http_request_t *r,
    ngx_commerce_shctx_t *sh, ngx_buf_t **bp, ngx_chain_t **lastp);
static ngx_int_t ngx_commerce_metrics_redis(ngx_http_request_t *r,
    ngx_commerce_shctx_t *sh, ngx_buf_t **bp, ngx_chain_t **lastp);
static ngx_int_t ngx_commerce_metrics_cache(ngx_http_request_t *r,
    ngx_commerce_cache_stats_t *st, ngx_buf_t **bp, ngx_chain_t **lastp);
static ngx_int_t ngx_commerce_metrics_counters(ngx_http_request_t *r,
    ngx_commerce_main_conf_t *mcf, ngx_commerce_shctx_t *sh, ngx_buf_t **bp,
    ngx_chain_t **lastp);



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
    ngx_atomic_uint_t           v, cum;
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
                                 ngx_commerce_router_slot_name(mcf, route),
                                 ngx_commerce_statuses[s], v);
            } else {
                ngx_commerce_out("commerce_http_requests_total{route=\"%s\","
                                 "status=\"other\"} %uA\n",
                                 ngx_commerce_router_slot_name(mcf, route), v);
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
                                 ngx_commerce_router_slot_name(mcf, route), c + 1,
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
                             ngx_commerce_router_slot_name(mcf, route), c + 1, cum,
                             ngx_commerce_router_slot_name(mcf, route), c + 1,
                             sh->m.latency_sum_us[route][c] / 1000000,
                             sh->m.latency_sum_us[route][c] % 1000000,
                             ngx_commerce_router_slot_name(mcf, route), c + 1, cum);
        }
    }

    /* the Postgres pool */

    if (ngx_commerce_metrics_db(r, sh, &b, &last) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* Redis, by worker */

    if (mcf->redis != NULL
        && ngx_commerce_metrics_redis(r, sh, &b, &last) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the response cache */

    if (mcf->cache != NULL
        && ngx_commerce_metrics_cache(r, ngx_commerce_cache_stats(mcf->cache),
                                      &b, &last)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the domains' counters */

    if (ngx_commerce_metrics_counters(r, mcf, sh, &b, &last) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

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

    ngx_commerce_shm_lock(shm);

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

    ngx_commerce_shm_unlock(shm);

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


/*
 * The Postgres pool: connections and queue lengths summed over live
 * workers; the longest queue any worker saw since the zone began (the
 * largest of the workers' slots, dead workers' included); the queries
 * placed, those that waited in a queue, and how long those waited.
 */

static ngx_int_t
ngx_commerce_metrics_db(ngx_http_request_t *r, ngx_commerce_shctx_t *sh,
    ngx_buf_t **bp, ngx_chain_t **lastp)
{
    ngx_uint_t                i;
    ngx_buf_t                *b;
    ngx_chain_t              *last;
    ngx_atomic_uint_t         busy, idle, down, queued, qmax, cum;
    ngx_commerce_db_queue_t  *dq;

    b = *bp;
    last = *lastp;

    busy = idle = down = queued = qmax = 0;

    for (i = 0; i < NGX_COMMERCE_WORKERS_MAX; i++) {
        if (sh->m.db[i].queued_max > qmax) {
            qmax = sh->m.db[i].queued_max;
        }

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

    dq = &sh->m.dbq;

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
                     "# HELP commerce_db_pool_queued_max The longest queue "
                     "of one worker since start (the largest of the "
                     "workers').\n"
                     "# TYPE commerce_db_pool_queued_max gauge\n"
                     "commerce_db_pool_queued_max %uA\n"
                     "# HELP commerce_db_errors_total Postgres connection "
                     "failures and query errors.\n"
                     "# TYPE commerce_db_errors_total counter\n"
                     "commerce_db_errors_total %uA\n",
                     busy, idle, down, queued, qmax, sh->m.db_errors);

    ngx_commerce_out("# HELP commerce_db_pool_queries_total Queries the pool "
                     "placed: sent at once, pipelined or queued.\n"
                     "# TYPE commerce_db_pool_queries_total counter\n"
                     "commerce_db_pool_queries_total %uA\n"
                     "# HELP commerce_db_pool_waited_total Queries that "
                     "waited in the queue for a connection.\n"
                     "# TYPE commerce_db_pool_waited_total counter\n"
                     "commerce_db_pool_waited_total %uA\n"
                     "# HELP commerce_db_pool_wait_seconds Time a queued "
                     "query waited, until sent, timed out or failed.\n"
                     "# TYPE commerce_db_pool_wait_seconds histogram\n",
                     dq->queries, dq->waited);

    cum = 0;

    for (i = 0; i < NGX_COMMERCE_BUCKETS; i++) {
        cum += dq->wait[i];
        ngx_commerce_out("commerce_db_pool_wait_seconds_bucket{le=\"%s\"} "
                         "%uA\n", ngx_commerce_bounds_s[i], cum);
    }

    cum += dq->wait[NGX_COMMERCE_BUCKETS];

    ngx_commerce_out("commerce_db_pool_wait_seconds_bucket{le=\"+Inf\"} "
                     "%uA\n"
                     "commerce_db_pool_wait_seconds_sum %uA.%03uA\n"
                     "commerce_db_pool_wait_seconds_count %uA\n",
                     cum, dq->wait_sum_ms / 1000, dq->wait_sum_ms % 1000, cum);

    *bp = b;
    *lastp = last;

    return NGX_OK;
}


static ngx_int_t
ngx_commerce_metrics_redis(ngx_http_request_t *r, ngx_commerce_shctx_t *sh,
    ngx_buf_t **bp, ngx_chain_t **lastp)
{
    ngx_buf_t                     *b;
    ngx_uint_t                     i, k;
    ngx_chain_t                   *last;
    ngx_atomic_uint_t              cum;
    ngx_commerce_redis_metrics_t  *m;
    ngx_commerce_redis_gauges_t   *g;

    b = *bp;
    last = *lastp;
    m = &sh->m.redis;

    ngx_commerce_out("# HELP commerce_redis_connections Redis connections "
                     "of each live worker by state.\n"
                     "# TYPE commerce_redis_connections gauge\n");

    for (i = 0; i < NGX_COMMERCE_WORKERS_MAX; i++) {
        g = &m->gauges[i];

        if (g->pid == 0 || kill((ngx_pid_t) g->pid, 0) == -1) {
            continue;
        }

        ngx_commerce_out("commerce_redis_connections{worker=\"%ui\","
                         "state=\"up\"} %uA\n"
                         "commerce_redis_connections{worker=\"%ui\","
                         "state=\"connecting\"} %uA\n"
                         "commerce_redis_connections{worker=\"%ui\","
                         "state=\"down\"} %uA\n",
                         i, g->up, i, g->connecting, i, g->down);
    }

    ngx_commerce_out("# HELP commerce_redis_queued Commands waiting for a "
                     "Redis connection, by worker.\n"
                     "# TYPE commerce_redis_queued gauge\n");

    for (i = 0; i < NGX_COMMERCE_WORKERS_MAX; i++) {
        g = &m->gauges[i];

        if (g->pid == 0 || kill((ngx_pid_t) g->pid, 0) == -1) {
            continue;
        }

        ngx_commerce_out("commerce_redis_queued{worker=\"%ui\"} %uA\n",
                         i, g->queued);
    }

    ngx_commerce_out("# HELP commerce_redis_command_duration_seconds Redis "
                     "round trips (commands and health-check PINGs).\n"
                     "# TYPE commerce_redis_command_duration_seconds "
                     "histogram\n");

    cum = 0;
    for (k = 0; k < NGX_COMMERCE_REDIS_BUCKETS; k++) {
        cum += m->latency[k];
        ngx_commerce_out("commerce_redis_command_duration_seconds_bucket"
                         "{le=\"%s\"} %uA\n", ngx_commerce_redis_bounds_s[k],
                         cum);
    }

    cum += m->latency[NGX_COMMERCE_REDIS_BUCKETS];

    ngx_commerce_out("commerce_redis_command_duration_seconds_bucket"
                     "{le=\"+Inf\"} %uA\n"
                     "commerce_redis_command_duration_seconds_sum "
                     "%uA.%06uA\n"
                     "commerce_redis_command_duration_seconds_count %uA\n",
                     cum, m->latency_sum_us / 1000000,
                     m->latency_sum_us % 1000000, cum);

    ngx_commerce_out("# HELP commerce_redis_errors_total Redis failures: "
                     "commands timed out, connects failed or connections "
                     "lost, error replies, commands never sent.\n"
                     "# TYPE commerce_redis_errors_total counter\n");

    for (k = 0; k < NGX_COMMERCE_REDIS_ERR_COUNT; k++) {
        ngx_commerce_out("commerce_redis_errors_total{kind=\"%s\"} %uA\n",
                         ngx_commerce_redis_err_names[k], m->errors[k]);
    }

    ngx_commerce_out("# HELP commerce_redis_reconnects_total Redis "
                     "connections up again after being lost.\n"
                     "# TYPE commerce_redis_reconnects_total counter\n"
                     "commerce_redis_reconnects_total %uA\n", m->reconnects);

    *bp = b;
    *lastp = last;

    return NGX_OK;
}


static ngx_int_t
ngx_commerce_metrics_cache(ngx_http_request_t *r,
    ngx_commerce_cache_stats_t *st, ngx_buf_t **bp, ngx_chain_t **lastp)
{
    ngx_buf_t    *b;
    ngx_chain_t  *last;

    b = *bp;
    last = *lastp;

    ngx_commerce_out("# HELP commerce_cache_lookups_total Response cache "
                     "lookups: hit, stale (served while refilled), miss (this "
                     "request fills), wait (another fills), bypass (off, the "
                     "invalidation listener down, or no memory).\n"
                     "# TYPE commerce_cache_lookups_total counter\n"
                     "commerce_cache_lookups_total{result=\"hit\"} %uA\n"
                     "commerce_cache_lookups_total{result=\"stale\"} %uA\n"
                     "commerce_cache_lookups_total{result=\"miss\"} %uA\n"
                     "commerce_cache_lookups_total{result=\"wait\"} %uA\n"
                     "commerce_cache_lookups_total{result=\"bypass\"} %uA\n",
                     st->hits, st->stale, st->misses, st->waits, st->bypass);

    ngx_commerce_out("# HELP commerce_cache_fills_total Fills: stored, or "
                     "discarded (invalidated while they ran).\n"
                     "# TYPE commerce_cache_fills_total counter\n"
                     "commerce_cache_fills_total{outcome=\"stored\"} %uA\n"
                     "commerce_cache_fills_total{outcome=\"discarded\"} "
                     "%uA\n"
                     "# HELP commerce_cache_invalidations_total Invalidations "
                     "heard (a key, or a class of keys).\n"
                     "# TYPE commerce_cache_invalidations_total counter\n"
                     "commerce_cache_invalidations_total %uA\n"
                     "# HELP commerce_cache_flushes_total Whole-cache flushes "
                     "(the listener started, came up or went down).\n"
                     "# TYPE commerce_cache_flushes_total counter\n"
                     "commerce_cache_flushes_total %uA\n"
                     "# HELP commerce_cache_evictions_total Entries evicted to "
                     "make room.\n"
                     "# TYPE commerce_cache_evictions_total counter\n"
                     "commerce_cache_evictions_total %uA\n"
                     "# HELP commerce_cache_entries Entries in the zone.\n"
                     "# TYPE commerce_cache_entries gauge\n"
                     "commerce_cache_entries %uA\n",
                     st->stored, st->discarded, st->invalidations,
                     st->flushes, st->evictions, st->entries);

    ngx_commerce_out("# HELP commerce_cache_redis_total The cache's Redis "
                     "part (store=redis, shm+redis): hit, miss, stored, "
                     "discarded (invalidated while the fill ran), error "
                     "(no answer).\n"
                     "# TYPE commerce_cache_redis_total counter\n"
                     "commerce_cache_redis_total{result=\"hit\"} %uA\n"
                     "commerce_cache_redis_total{result=\"miss\"} %uA\n"
                     "commerce_cache_redis_total{result=\"stored\"} %uA\n"
                     "commerce_cache_redis_total{result=\"discarded\"} %uA\n"
                     "commerce_cache_redis_total{result=\"error\"} %uA\n",
                     st->remote_hits, st->remote_misses, st->remote_stored,
                     st->remote_discarded, st->remote_errors);

    *bp = b;
    *lastp = last;

    return NGX_OK;
}


/* the domains' counters, each family together under its HELP and TYPE
 * (families in the order of their first counter) */

static ngx_int_t
ngx_commerce_metrics_counters(ngx_http_request_t *r,
    ngx_commerce_main_conf_t *mcf, ngx_commerce_shctx_t *sh, ngx_buf_t **bp,
    ngx_chain_t **lastp)
{
    ngx_buf_t               *b;
    ngx_uint_t               i, j, seen;
    ngx_chain_t             *last;
    ngx_commerce_counter_t  *c;

    b = *bp;
    last = *lastp;
    c = mcf->counters.elts;

    for (i = 0; i < mcf->counters.nelts; i++) {

        for (seen = 0, j = 0; j < i; j++) {
            if (ngx_strcmp(c[j].family, c[i].family) == 0) {
                seen = 1;
                break;
            }
        }

        if (seen) {
            continue;
        }

        ngx_commerce_out("# HELP %s %s\n# TYPE %s %s\n", c[i].family,
                         c[i].help, c[i].family, c[i].type);

        for (j = i; j < mcf->counters.nelts; j++) {
            if (ngx_strcmp(c[j].family, c[i].family) != 0) {
                continue;
            }

            if (c[j].labels[0] != '\0') {
                ngx_commerce_out("%s{%s} %uA\n", c[j].family, c[j].labels,
                                 sh->m.counters[j]);

            } else {
                ngx_commerce_out("%s %uA\n", c[j].family, sh->m.counters[j]);
            }
        }
    }

    *bp = b;
    *lastp = last;

    return NGX_OK;
}
