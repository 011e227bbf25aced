
/*
 * A route's answer through the response cache (src/shm/ngx_commerce_cache.c):
 * a hit is answered from the zone; on a miss, one request per key and
 * node runs the route's query (ctx->query, made ready by the route) and
 * its answer is stored
 * on the way out (ctx->store: a 200, or a 404 for the negative TTL); the
 * other requests for that key wait for it, asking the zone again every
 * few milliseconds, and after the zone's fill timeout run the query
 * themselves, unstored.  In a class that allows it, an expired answer is
 * served (stale) while one request refills it.  X-Cache: HIT or MISS on every answer while a
 * cache is configured.
 */


#include "ngx_commerce_http.h"


#define NGX_COMMERCE_CACHED_POLL  2     /* ms between two asks */


typedef struct {
    ngx_event_t                  ev;       /* the next ask of a waiter */
    ngx_http_request_t          *r;
    ngx_commerce_ctx_t          *ctx;
    ngx_str_t                    key;
    ngx_uint_t                   klass;
    ngx_msec_t                   started;
    uint32_t                     token;
    unsigned                     filling:1;
} ngx_commerce_cached_t;


static ngx_int_t ngx_commerce_cached_ask(ngx_commerce_cached_t *cd);
static ngx_int_t ngx_commerce_cached_store(ngx_http_request_t *r,
    ngx_uint_t status, u_char *body, size_t len);
static void ngx_commerce_cached_retry(ngx_event_t *ev);
static void ngx_commerce_cached_cleanup(void *data);
static ngx_int_t ngx_commerce_cached_header(ngx_http_request_t *r,
    ngx_uint_t hit);


ngx_int_t
ngx_commerce_cached(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    ngx_uint_t klass, ngx_str_t *key)
{
    ngx_pool_cleanup_t         *cln;
    ngx_commerce_cached_t      *cd;
    ngx_commerce_main_conf_t   *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (mcf->cache == NULL) {
        return ngx_commerce_handler_query(r, ctx);
    }

    cd = ngx_pcalloc(r->pool, sizeof(ngx_commerce_cached_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (cd == NULL || cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cd->r = r;
    cd->ctx = ctx;
    cd->key = *key;
    cd->klass = klass;
    cd->started = ngx_current_msec;
    cd->ev.handler = ngx_commerce_cached_retry;
    cd->ev.data = cd;
    cd->ev.log = r->connection->log;

    cln->handler = ngx_commerce_cached_cleanup;
    cln->data = cd;

    ctx->domain = cd;

    return ngx_commerce_cached_ask(cd);
}


static ngx_int_t
ngx_commerce_cached_ask(ngx_commerce_cached_t *cd)
{
    ngx_http_request_t         *r;
    ngx_commerce_cache_get_t    got;
    ngx_commerce_main_conf_t   *mcf;

    r = cd->r;
    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    switch (ngx_commerce_cache_get(mcf->cache, cd->klass, &cd->key, r->pool,
                                   &got))
    {

    case NGX_COMMERCE_CACHE_HIT:
        if (ngx_commerce_cached_header(r, 1) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_commerce_reply(r, got.status, got.body, got.len);

    case NGX_COMMERCE_CACHE_FILL:
        cd->filling = 1;
        cd->token = got.token;
        cd->ctx->store = ngx_commerce_cached_store;
        break;

    case NGX_COMMERCE_CACHE_WAIT:
        if (ngx_current_msec - cd->started < mcf->cache->fill_timeout) {
            ngx_add_timer(&cd->ev, NGX_COMMERCE_CACHED_POLL);
            return NGX_DONE;
        }

        /* the filler is slow: answer from the database, unstored */
        break;

    default:
        break;
    }

    if (ngx_commerce_cached_header(r, 0) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_handler_query(r, cd->ctx);
}


/* the filler's answer, on its way out: stored when it is a 200 or a 404 */

static ngx_int_t
ngx_commerce_cached_store(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len)
{
    ngx_commerce_ctx_t         *ctx;
    ngx_commerce_cached_t      *cd;
    ngx_commerce_main_conf_t   *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_module);
    cd = ctx->domain;

    if (cd->filling) {
        cd->filling = 0;

        if (status == NGX_HTTP_OK || status == NGX_HTTP_NOT_FOUND) {
            ngx_commerce_cache_put(mcf->cache, &cd->key, cd->token, status,
                                   body, len);

        } else {
            ngx_commerce_cache_abandon(mcf->cache, &cd->key, cd->token);
        }
    }

    ctx->store = NULL;

    return ngx_commerce_reply_json(r, status, body, len,
                                   status == NGX_HTTP_SERVICE_UNAVAILABLE);
}


static void
ngx_commerce_cached_retry(ngx_event_t *ev)
{
    ngx_int_t               rc;
    ngx_connection_t       *c;
    ngx_http_request_t     *r;
    ngx_commerce_cached_t  *cd;

    cd = ev->data;
    r = cd->r;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    rc = ngx_commerce_cached_ask(cd);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }

    ngx_http_run_posted_requests(c);
}


/* the request ends (answered, or its client left): no ask after it, and
 * a fill it never finished is given up for the next request */

static void
ngx_commerce_cached_cleanup(void *data)
{
    ngx_commerce_cached_t     *cd = data;

    ngx_commerce_main_conf_t  *mcf;

    if (cd->ev.timer_set) {
        ngx_del_timer(&cd->ev);
    }

    if (cd->filling) {
        mcf = ngx_commerce_conf_main();
        ngx_commerce_cache_abandon(mcf->cache, &cd->key, cd->token);
        cd->filling = 0;
    }
}


static ngx_int_t
ngx_commerce_cached_header(ngx_http_request_t *r, ngx_uint_t hit)
{
    ngx_str_t  v;

    if (hit) {
        ngx_str_set(&v, "HIT");

    } else {
        ngx_str_set(&v, "MISS");
    }

    return ngx_commerce_reply_header(r, "X-Cache", &v);
}
