
/*
 * A route's answer through the response cache, and the cache's
 * invalidations.  commerce_cache store= says where answers live:
 *
 * shm        the instance's zone (src/shm/ngx_commerce_cache.c).  A hit is
 *            answered from it; on a miss one request per key and node
 *            runs the route's query (ctx->query, made ready by the route)
 *            and stores its answer on the way out (ctx->store: a 200, or a
 *            404 for the negative TTL); the other requests for the key
 *            wait for it, asking the zone again every few milliseconds,
 *            and after the fill timeout run the query themselves,
 *            unstored.  In a class that allows it, an expired answer is
 *            served (stale) while one request refills it.
 * redis      Redis, shared by every instance on it, with versioned writes
 *            (src/io/ngx_commerce_redis_cache.c).  Every request asks
 *            Redis; on a miss the zone holds no answer, only the fill:
 *            one request per key and node runs the query and puts its
 *            answer in Redis, the others ask Redis again when it is there.
 * shm+redis  the zone in front of Redis: a zone miss asks Redis before
 *            Postgres, and a fill goes to both.
 *
 * An invalidation (the Postgres listener, worker 0) moves Redis' version
 * first and drops the zone's copy once Redis answered, so that a zone
 * fill that read Redis before the move is discarded, and one that began
 * after it reads the new version.  When Redis misses an invalidation (no
 * answer), Redis is not used until a flush of it got through.
 *
 * X-Cache: HIT or MISS on every answer while a cache is configured.
 */


#include "ngx_commerce_http.h"
#include "ngx_commerce_redis_cache.h"


#define NGX_COMMERCE_CACHED_POLL   2      /* ms between two asks */
#define NGX_COMMERCE_CACHED_FLUSH  1000   /* ms between two flush tries */


typedef struct {
    ngx_event_t                      ev;      /* the next ask of a waiter */
    ngx_http_request_t              *r;
    ngx_commerce_ctx_t              *ctx;
    ngx_str_t                        key;
    ngx_uint_t                       klass;
    ngx_msec_t                       started;
    uint32_t                         token;
    ngx_commerce_redis_op_t         *op;      /* a Redis read in flight */
    ngx_commerce_redis_cache_get_t   got;     /* its answer */
    unsigned                         filling:1;  /* holds the zone's fill */
    unsigned                         remote:1;   /* got.stamp: put there */
} ngx_commerce_cached_t;


/* a put to Redis, and the zone's fill it releases once Redis has it */
typedef struct {
    uint32_t                         token;
    unsigned                         release:1;
    size_t                           len;
    u_char                           key[1];
} ngx_commerce_cached_put_t;


/* an invalidation: Redis first, then the zone */
typedef struct {
    ngx_uint_t                       klass;
    unsigned                         whole:1;    /* the class */
    size_t                           len;
    u_char                           key[1];
} ngx_commerce_cached_inv_t;


static ngx_int_t ngx_commerce_cached_ask(ngx_commerce_cached_t *cd);
static ngx_int_t ngx_commerce_cached_fill(ngx_commerce_cached_t *cd);
static ngx_int_t ngx_commerce_cached_read_remote(ngx_commerce_cached_t *cd);
static void ngx_commerce_cached_remote_got(void *data, ngx_int_t rc);
static ngx_int_t ngx_commerce_cached_remote_answer(ngx_commerce_cached_t *cd,
    ngx_int_t rc);
static ngx_int_t ngx_commerce_cached_wait(ngx_commerce_cached_t *cd);
static ngx_int_t ngx_commerce_cached_hit(ngx_commerce_cached_t *cd,
    ngx_uint_t status, u_char *body, size_t len);
static ngx_int_t ngx_commerce_cached_query(ngx_commerce_cached_t *cd);
static ngx_int_t ngx_commerce_cached_store(ngx_http_request_t *r,
    ngx_uint_t status, u_char *body, size_t len);
static void ngx_commerce_cached_put_remote(ngx_commerce_cached_t *cd,
    ngx_uint_t status, u_char *body, size_t len);
static void ngx_commerce_cached_put_done(void *data, ngx_int_t rc);
static void ngx_commerce_cached_retry(ngx_event_t *ev);
static void ngx_commerce_cached_cleanup(void *data);
static ngx_int_t ngx_commerce_cached_header(ngx_http_request_t *r,
    ngx_uint_t hit);
static void ngx_commerce_cached_inv(ngx_uint_t klass, ngx_str_t *key);
static void ngx_commerce_cached_inv_done(void *data, ngx_int_t rc);
static void ngx_commerce_cached_lost(void);
static void ngx_commerce_cached_flush(ngx_event_t *ev);
static void ngx_commerce_cached_flushed(void *data, ngx_int_t rc);


/* the listener's process: the channel's state and the flush's retry */
static ngx_commerce_listen_e  ngx_commerce_cached_listen =
    NGX_COMMERCE_LISTEN_DOWN;
static ngx_event_t            ngx_commerce_cached_flush_ev;


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
    cd->got.pool = r->pool;
    cd->got.handler = ngx_commerce_cached_remote_got;

    cln->handler = ngx_commerce_cached_cleanup;
    cln->data = cd;

    ctx->domain = cd;

    return ngx_commerce_cached_ask(cd);
}


/* store=redis and store=shm+redis need commerce_redis */

ngx_int_t
ngx_commerce_cached_init(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    if (mcf->cache != NULL && (mcf->cache->store & NGX_COMMERCE_CACHE_REMOTE)
        && mcf->redis == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_cache\" with store=redis or "
                           "store=shm+redis needs \"commerce_redis\"");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_commerce_cached_ask(ngx_commerce_cached_t *cd)
{
    ngx_commerce_cache_t  *cache;

    cache = ngx_commerce_conf_main()->cache;

    if (cache->store & NGX_COMMERCE_CACHE_LOCAL) {
        return ngx_commerce_cached_fill(cd);
    }

    /* store=redis: Redis first, the zone only for the fill */
    if (!ngx_commerce_cache_remote(cache)) {
        (void) ngx_atomic_fetch_add(&ngx_commerce_cache_stats(cache)->bypass,
                                    1);
        return ngx_commerce_cached_query(cd);
    }

    return ngx_commerce_cached_read_remote(cd);
}


/* the zone: an answer, the fill, or a wait */

static ngx_int_t
ngx_commerce_cached_fill(ngx_commerce_cached_t *cd)
{
    ngx_http_request_t        *r;
    ngx_commerce_cache_t      *cache;
    ngx_commerce_cache_get_t   got;

    r = cd->r;
    cache = ngx_commerce_conf_main()->cache;

    switch (ngx_commerce_cache_get(cache, cd->klass, &cd->key, r->pool, &got))
    {

    case NGX_COMMERCE_CACHE_HIT:
        if (cache->store & NGX_COMMERCE_CACHE_LOCAL) {
            return ngx_commerce_cached_hit(cd, got.status, got.body,
                                           got.len);
        }

        /* store=redis keeps no answer in the zone */
        break;

    case NGX_COMMERCE_CACHE_FILL:
        cd->filling = 1;
        cd->token = got.token;

        if ((cache->store & NGX_COMMERCE_CACHE_LOCAL)
            && (cache->store & NGX_COMMERCE_CACHE_REMOTE)
            && ngx_commerce_cache_remote(cache))
        {
            /* shm+redis: Redis before Postgres */
            return ngx_commerce_cached_read_remote(cd);
        }

        break;

    case NGX_COMMERCE_CACHE_WAIT:
        return ngx_commerce_cached_wait(cd);

    default:
        break;
    }

    return ngx_commerce_cached_query(cd);
}


static ngx_int_t
ngx_commerce_cached_read_remote(ngx_commerce_cached_t *cd)
{
    ngx_commerce_cache_t  *cache;

    cd->op = ngx_commerce_redis_cache_get(cd->klass, &cd->key, &cd->got);

    if (cd->op == NULL) {
        /* no connection to Redis: Postgres */
        cache = ngx_commerce_conf_main()->cache;
        (void) ngx_atomic_fetch_add(
                   &ngx_commerce_cache_stats(cache)->remote_errors, 1);

        return ngx_commerce_cached_query(cd);
    }

    return NGX_DONE;
}


static void
ngx_commerce_cached_remote_got(void *data, ngx_int_t rc)
{
    ngx_commerce_cached_t  *cd;
    ngx_connection_t       *c;
    ngx_http_request_t     *r;

    cd = (ngx_commerce_cached_t *) ((u_char *) data
                                    - offsetof(ngx_commerce_cached_t, got));
    cd->op = NULL;
    r = cd->r;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    rc = ngx_commerce_cached_remote_answer(cd, rc);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }

    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_commerce_cached_remote_answer(ngx_commerce_cached_t *cd, ngx_int_t rc)
{
    ngx_time_t                  *tp;
    ngx_commerce_cache_t        *cache;
    ngx_commerce_cache_stats_t  *st;
    ngx_commerce_cache_get_t     got;

    cache = ngx_commerce_conf_main()->cache;
    st = ngx_commerce_cache_stats(cache);

    if (rc != NGX_OK) {
        (void) ngx_atomic_fetch_add(&st->remote_errors, 1);
        return ngx_commerce_cached_query(cd);
    }

    /* whatever comes, an answer of Postgres may go to Redis now */
    cd->remote = 1;

    if (cd->got.hit) {
        tp = ngx_timeofday();

        if ((uint64_t) tp->sec * 1000 + tp->msec < cd->got.expires) {
            (void) ngx_atomic_fetch_add(&st->remote_hits, 1);

            if (cd->filling) {
                cd->filling = 0;

                if (cache->store & NGX_COMMERCE_CACHE_LOCAL) {
                    ngx_commerce_cache_put(cache, &cd->key, cd->token,
                                           cd->got.status, cd->got.body,
                                           cd->got.len);

                } else {
                    ngx_commerce_cache_abandon(cache, &cd->key, cd->token);
                }
            }

            return ngx_commerce_cached_hit(cd, cd->got.status, cd->got.body,
                                           cd->got.len);
        }

        /* expired: kept for a class served stale (store=redis) */
    }

    (void) ngx_atomic_fetch_add(&st->remote_misses, 1);

    if (cd->filling) {
        /* shm+redis: this request fills the zone; store=redis: Redis was
         * asked again with the fill held: from Postgres now */
        return ngx_commerce_cached_query(cd);
    }

    /* store=redis: one fill per key and node */
    switch (ngx_commerce_cache_get(cache, cd->klass, &cd->key, cd->r->pool,
                                   &got))
    {

    case NGX_COMMERCE_CACHE_FILL:
        /*
         * the fill is ours; the previous filler may have released it
         * since Redis answered (it releases once Redis has its answer):
         * ask Redis once more before Postgres
         */
        cd->filling = 1;
        cd->token = got.token;
        return ngx_commerce_cached_read_remote(cd);

    case NGX_COMMERCE_CACHE_WAIT:
        if (cd->got.hit && cache->stale[cd->klass]) {
            /* another request refills it: the stale copy meanwhile */
            (void) ngx_atomic_fetch_add(&st->stale, 1);
            return ngx_commerce_cached_hit(cd, cd->got.status, cd->got.body,
                                           cd->got.len);
        }

        return ngx_commerce_cached_wait(cd);

    default:
        return ngx_commerce_cached_query(cd);
    }
}


/* another request fills: ask again soon, or give up waiting */

static ngx_int_t
ngx_commerce_cached_wait(ngx_commerce_cached_t *cd)
{
    ngx_commerce_cache_t  *cache;

    cache = ngx_commerce_conf_main()->cache;

    if (ngx_current_msec - cd->started < cache->fill_timeout) {
        ngx_add_timer(&cd->ev, NGX_COMMERCE_CACHED_POLL);
        return NGX_DONE;
    }

    /* the filler is slow: answer from the database, unstored */
    return ngx_commerce_cached_query(cd);
}


static ngx_int_t
ngx_commerce_cached_hit(ngx_commerce_cached_t *cd, ngx_uint_t status,
    u_char *body, size_t len)
{
    if (ngx_commerce_cached_header(cd->r, 1) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_reply(cd->r, status, body, len);
}


static ngx_int_t
ngx_commerce_cached_query(ngx_commerce_cached_t *cd)
{
    if (ngx_commerce_cached_header(cd->r, 0) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (cd->filling || cd->remote) {
        cd->ctx->store = ngx_commerce_cached_store;
    }

    return ngx_commerce_handler_query(cd->r, cd->ctx);
}


/* the query's answer, on its way out: stored when it is a 200 or a 404 */

static ngx_int_t
ngx_commerce_cached_store(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len)
{
    ngx_commerce_ctx_t         *ctx;
    ngx_commerce_cache_t       *cache;
    ngx_commerce_cached_t      *cd;

    cache = ngx_commerce_conf_main()->cache;
    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_module);
    cd = ctx->domain;

    if (status == NGX_HTTP_OK || status == NGX_HTTP_NOT_FOUND) {
        if (cd->remote) {
            /* store=redis: the zone's fill ends when Redis has it */
            ngx_commerce_cached_put_remote(cd, status, body, len);
        }

        if (cd->filling && (cache->store & NGX_COMMERCE_CACHE_LOCAL)) {
            cd->filling = 0;
            ngx_commerce_cache_put(cache, &cd->key, cd->token, status, body,
                                   len);
        }
    }

    if (cd->filling) {
        cd->filling = 0;
        ngx_commerce_cache_abandon(cache, &cd->key, cd->token);
    }

    ctx->store = NULL;

    return ngx_commerce_reply_json(r, status, body, len,
                                   status == NGX_HTTP_SERVICE_UNAVAILABLE);
}


static void
ngx_commerce_cached_put_remote(ngx_commerce_cached_t *cd, ngx_uint_t status,
    u_char *body, size_t len)
{
    ngx_msec_t                  ttl, px;
    ngx_time_t                 *tp;
    ngx_commerce_cache_t       *cache;
    ngx_commerce_cached_put_t  *put;

    cache = ngx_commerce_conf_main()->cache;

    if (!ngx_commerce_cache_remote(cache) || len > cache->size / 16) {
        return;
    }

    put = ngx_alloc(offsetof(ngx_commerce_cached_put_t, key) + cd->key.len,
                    ngx_cycle->log);
    if (put == NULL) {
        return;
    }

    put->token = cd->token;
    put->release = cd->filling && !(cache->store & NGX_COMMERCE_CACHE_LOCAL);
    put->len = cd->key.len;
    ngx_memcpy(put->key, cd->key.data, cd->key.len);

    /* a class served stale keeps its entry a TTL past its expiry */
    ttl = ngx_commerce_cache_ttl(cache, cd->klass, status);
    px = cache->stale[cd->klass] ? 2 * ttl : ttl;
    tp = ngx_timeofday();

    if (ngx_commerce_redis_cache_put(cd->klass, &cd->key, &cd->got.stamp,
                                     status, body, len,
                                     (uint64_t) tp->sec * 1000 + tp->msec
                                     + ttl, px,
                                     ngx_commerce_cached_put_done, put)
        != NGX_OK)
    {
        ngx_free(put);
        (void) ngx_atomic_fetch_add(
                   &ngx_commerce_cache_stats(cache)->remote_errors, 1);
        return;
    }

    if (put->release) {
        cd->filling = 0;
    }
}


static void
ngx_commerce_cached_put_done(void *data, ngx_int_t rc)
{
    ngx_commerce_cached_put_t  *put = data;

    ngx_str_t                    key;
    ngx_commerce_cache_t        *cache;
    ngx_commerce_cache_stats_t  *st;

    cache = ngx_commerce_conf_main()->cache;
    st = ngx_commerce_cache_stats(cache);

    (void) ngx_atomic_fetch_add(rc == NGX_OK ? &st->remote_stored
                                : rc == NGX_DECLINED ? &st->remote_discarded
                                : &st->remote_errors, 1);

    if (put->release) {
        key.data = put->key;
        key.len = put->len;
        ngx_commerce_cache_abandon(cache, &key, put->token);
    }

    ngx_free(put);
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

    if (cd->ev.timer_set) {
        ngx_del_timer(&cd->ev);
    }

    if (cd->op != NULL) {
        ngx_commerce_redis_cancel(cd->op);
        cd->op = NULL;
    }

    if (cd->filling) {
        ngx_commerce_cache_abandon(ngx_commerce_conf_main()->cache, &cd->key,
                                   cd->token);
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


/* --- invalidations (the listener's process) ------------------------------ */

void
ngx_commerce_cached_invalidate(ngx_str_t *key)
{
    ngx_commerce_cached_inv(NGX_COMMERCE_CACHE_CLASSES, key);
}


void
ngx_commerce_cached_invalidate_class(ngx_uint_t klass)
{
    ngx_commerce_cached_inv(klass, NULL);
}


static void
ngx_commerce_cached_inv(ngx_uint_t klass, ngx_str_t *key)
{
    ngx_str_t                   k;
    ngx_commerce_cache_t       *cache;
    ngx_commerce_cached_inv_t  *inv;

    cache = ngx_commerce_conf_main()->cache;

    if (cache == NULL) {
        return;
    }

    k.len = key ? key->len : 0;

    inv = ngx_alloc(offsetof(ngx_commerce_cached_inv_t, key) + k.len,
                    ngx_cycle->log);
    if (inv == NULL) {
        /* the zone at least */
        if (key != NULL) {
            ngx_commerce_cache_invalidate(cache, key);

        } else {
            ngx_commerce_cache_invalidate_class(cache, klass);
        }

        ngx_commerce_cached_lost();
        return;
    }

    inv->klass = klass;
    inv->whole = (key == NULL);
    inv->len = k.len;

    if (key != NULL) {
        ngx_memcpy(inv->key, key->data, key->len);
    }

    k.data = inv->key;

    if (!(cache->store & NGX_COMMERCE_CACHE_REMOTE)) {
        ngx_commerce_cached_inv_done(inv, NGX_OK);
        return;
    }

    if (ngx_commerce_redis_cache_bump(inv->whole ? 'g' : 'v',
                                      inv->whole ? klass : 0, &k,
                                      ngx_commerce_cached_inv_done, inv)
        != NGX_OK)
    {
        ngx_commerce_cached_inv_done(inv, NGX_ERROR);
    }
}


static void
ngx_commerce_cached_inv_done(void *data, ngx_int_t rc)
{
    ngx_commerce_cached_inv_t  *inv = data;

    ngx_str_t              key;
    ngx_commerce_cache_t  *cache;

    cache = ngx_commerce_conf_main()->cache;

    if (rc != NGX_OK) {
        (void) ngx_atomic_fetch_add(
                   &ngx_commerce_cache_stats(cache)->remote_errors, 1);
        ngx_commerce_cached_lost();
    }

    if (inv->whole) {
        ngx_commerce_cache_invalidate_class(cache, inv->klass);

    } else {
        key.data = inv->key;
        key.len = inv->len;
        ngx_commerce_cache_invalidate(cache, &key);
    }

    ngx_free(inv);
}


/*
 * The invalidation channel (the listener of worker 0): the zone hears it
 * (ngx_commerce_cache_channel()); Redis is trusted again once a flush of
 * it got through after the listener came up.
 */

void
ngx_commerce_cached_channel(ngx_commerce_listen_e state)
{
    ngx_commerce_cache_t  *cache;

    cache = ngx_commerce_conf_main()->cache;

    ngx_commerce_cache_channel(cache, state);
    ngx_commerce_cached_listen = state;

    if (!(cache->store & NGX_COMMERCE_CACHE_REMOTE)) {
        return;
    }

    ngx_commerce_cache_remote_set(cache, 0);

    if (state == NGX_COMMERCE_LISTEN_UP) {
        ngx_commerce_cached_flush(NULL);
    }
}


/* Redis may have missed an invalidation: not used until a flush of it */

static void
ngx_commerce_cached_lost(void)
{
    ngx_commerce_cache_t  *cache;

    cache = ngx_commerce_conf_main()->cache;

    if (!(cache->store & NGX_COMMERCE_CACHE_REMOTE)
        || !ngx_commerce_cache_remote(cache))
    {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "commerce: cache: Redis missed an invalidation, "
                  "not used until flushed");

    ngx_commerce_cache_remote_set(cache, 0);

    if (ngx_commerce_cached_listen == NGX_COMMERCE_LISTEN_UP
        && !ngx_commerce_cached_flush_ev.timer_set)
    {
        ngx_commerce_cached_flush(NULL);
    }
}


static void
ngx_commerce_cached_flush(ngx_event_t *ev)
{
    if (ngx_commerce_cached_listen != NGX_COMMERCE_LISTEN_UP) {
        return;
    }

    if (ngx_commerce_redis_cache_bump('e', 0, NULL,
                                      ngx_commerce_cached_flushed, NULL)
        != NGX_OK)
    {
        ngx_commerce_cached_flushed(NULL, NGX_ERROR);
    }
}


static void
ngx_commerce_cached_flushed(void *data, ngx_int_t rc)
{
    ngx_event_t           *ev;
    ngx_commerce_cache_t  *cache;

    cache = ngx_commerce_conf_main()->cache;
    ev = &ngx_commerce_cached_flush_ev;

    if (rc == NGX_OK) {
        if (ngx_commerce_cached_listen == NGX_COMMERCE_LISTEN_UP) {
            ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                          "commerce: cache: Redis flushed, in use");
            ngx_commerce_cache_remote_set(cache, 1);
        }

        return;
    }

    (void) ngx_atomic_fetch_add(&ngx_commerce_cache_stats(cache)->remote_errors,
                                1);

    if (ngx_exiting || ngx_terminate || ngx_quit || ev->timer_set) {
        return;
    }

    ev->handler = ngx_commerce_cached_flush;
    ev->log = ngx_cycle->log;
    ev->cancelable = 1;

    ngx_add_timer(ev, NGX_COMMERCE_CACHED_FLUSH);
}
