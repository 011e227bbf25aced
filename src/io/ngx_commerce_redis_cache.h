
/*
 * The response cache's entries in Redis, with versioned writes (see
 * ngx_commerce_redis_cache.c).  Through the worker's Redis client.
 */


#ifndef _NGX_COMMERCE_REDIS_CACHE_H_INCLUDED_
#define _NGX_COMMERCE_REDIS_CACHE_H_INCLUDED_


#include "ngx_commerce_redis.h"


#define NGX_COMMERCE_REDIS_CACHE_STAMP_LEN    (3 * NGX_INT64_LEN + 2)

/* a key's version lives this long after its last invalidation: longer
 * than any entry (a TTL is at most 1d, a stale copy twice that) */
#define NGX_COMMERCE_REDIS_CACHE_VERSION_TTL  (3 * 86400000)


typedef struct ngx_commerce_redis_cache_get_s  ngx_commerce_redis_cache_get_t;

/* rc: NGX_OK; NGX_DECLINED (a put whose stamp moved: not stored);
 * NGX_ERROR (Redis did not answer, or answered nonsense) */
typedef void (*ngx_commerce_redis_cache_pt)(void *data, ngx_int_t rc);


/*
 * A read, filled in by the caller (pool, handler) and by the answer: the
 * stamp to put with when the caller fills, and on a hit the entry (its
 * body a copy in pool).  The handler is called with the struct itself.
 */
struct ngx_commerce_redis_cache_get_s {
    ngx_pool_t                  *pool;
    ngx_commerce_redis_cache_pt  handler;

    ngx_str_t                    stamp;
    ngx_uint_t                   status;
    u_char                      *body;
    size_t                       len;
    uint64_t                     expires;   /* ms since the epoch */
    unsigned                     hit:1;
    u_char                       stamp_buf[NGX_COMMERCE_REDIS_CACHE_STAMP_LEN];
};


/* NULL: refused at once (no connection): the handler is not called */
ngx_commerce_redis_op_t *ngx_commerce_redis_cache_get(ngx_uint_t klass,
    ngx_str_t *key, ngx_commerce_redis_cache_get_t *get);

/* stored only if the stamp is still the current one; the handler (may be
 * NULL) hears how it went; NGX_ERROR: refused at once, not called */
ngx_int_t ngx_commerce_redis_cache_put(ngx_uint_t klass, ngx_str_t *key,
    ngx_str_t *stamp, ngx_uint_t status, u_char *body, size_t len,
    uint64_t expires, ngx_msec_t ttl, ngx_commerce_redis_cache_pt handler,
    void *data);

/* what: 'e' everything, 'g' the class, 'v' the key (key may be NULL
 * otherwise) */
ngx_int_t ngx_commerce_redis_cache_bump(u_char what, ngx_uint_t klass,
    ngx_str_t *key, ngx_commerce_redis_cache_pt handler, void *data);


#endif /* _NGX_COMMERCE_REDIS_CACHE_H_INCLUDED_ */
