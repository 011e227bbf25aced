
/*
 * A response cache in a shared-memory zone of its own (commerce_cache):
 * every worker of an instance sees one copy.  Entries are answers (a
 * status and a JSON body) under a key, in a class: a class can be
 * invalidated at once (every product list page when any product changes),
 * an entry alone (one product), or everything (the invalidation channel
 * came back after a gap).  The cache serves only while its invalidation
 * channel is up.  One request per key fills a missing entry; the others
 * wait for it (WAIT) or, in a class that allows it, get the stale copy.
 * State only: what the entries mean is the domain's.
 */


#ifndef _NGX_COMMERCE_CACHE_H_INCLUDED_
#define _NGX_COMMERCE_CACHE_H_INCLUDED_


#include "ngx_commerce.h"


#define NGX_COMMERCE_CACHE_CLASSES  4

/* where the answers live (commerce_cache store=): bits */
#define NGX_COMMERCE_CACHE_LOCAL    1   /* this zone */
#define NGX_COMMERCE_CACHE_REMOTE   2   /* Redis, shared by the instances */


typedef enum {
    NGX_COMMERCE_CACHE_BYPASS = 0,   /* off, channel down, or no memory */
    NGX_COMMERCE_CACHE_HIT,          /* out->body: the answer (maybe stale) */
    NGX_COMMERCE_CACHE_FILL,         /* the caller fills: put or abandon */
    NGX_COMMERCE_CACHE_WAIT          /* another request fills: ask again */
} ngx_commerce_cache_rc_e;


typedef struct {
    ngx_uint_t                   status;
    u_char                      *body;     /* a copy in the caller's pool */
    size_t                       len;
    uint32_t                     token;    /* FILL: the right to put */
    unsigned                     stale:1;  /* HIT: expired, being refilled */
} ngx_commerce_cache_get_t;


typedef struct {
    ngx_atomic_t                 hits;
    ngx_atomic_t                 misses;    /* FILL answers */
    ngx_atomic_t                 waits;
    ngx_atomic_t                 stale;
    ngx_atomic_t                 bypass;
    ngx_atomic_t                 stored;
    ngx_atomic_t                 discarded; /* a fill invalidated meanwhile */
    ngx_atomic_t                 invalidations;
    ngx_atomic_t                 flushes;
    ngx_atomic_t                 evictions;
    ngx_atomic_t                 entries;
    /* store=redis, store=shm+redis: Redis' part */
    ngx_atomic_t                 remote_hits;
    ngx_atomic_t                 remote_misses;
    ngx_atomic_t                 remote_stored;
    ngx_atomic_t                 remote_discarded; /* the stamp moved */
    ngx_atomic_t                 remote_errors;
} ngx_commerce_cache_stats_t;


typedef struct ngx_commerce_cache_sh_s  ngx_commerce_cache_sh_t;

struct ngx_commerce_cache_s {
    ngx_shm_zone_t              *zone;
    ngx_slab_pool_t             *shpool;
    ngx_commerce_cache_sh_t     *sh;
    size_t                       size;
    ngx_uint_t                   store;        /* _LOCAL | _REMOTE */
    ngx_msec_t                   ttl;          /* plus up to 10% jitter */
    ngx_msec_t                   negative_ttl; /* answers other than 200 */
    ngx_msec_t                   stats_ttl;    /* statistics (best sellers) */
    ngx_msec_t                   fill_timeout; /* a filler's time, then
                                                  another request fills */
    /* per class: its TTL (0: ttl), and whether an expired answer is
     * served while one request refills it (stale-while-revalidate) */
    ngx_msec_t                   class_ttl[NGX_COMMERCE_CACHE_CLASSES];
    unsigned                     stale[NGX_COMMERCE_CACHE_CLASSES];
};


char *ngx_commerce_cache_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

ngx_commerce_cache_rc_e ngx_commerce_cache_get(ngx_commerce_cache_t *cache,
    ngx_uint_t klass, ngx_str_t *key, ngx_pool_t *pool,
    ngx_commerce_cache_get_t *out);
void ngx_commerce_cache_put(ngx_commerce_cache_t *cache, ngx_str_t *key,
    uint32_t token, ngx_uint_t status, u_char *body, size_t len);
void ngx_commerce_cache_abandon(ngx_commerce_cache_t *cache, ngx_str_t *key,
    uint32_t token);

void ngx_commerce_cache_invalidate(ngx_commerce_cache_t *cache,
    ngx_str_t *key);
void ngx_commerce_cache_invalidate_class(ngx_commerce_cache_t *cache,
    ngx_uint_t klass);
void ngx_commerce_cache_channel(ngx_commerce_cache_t *cache,
    ngx_commerce_listen_e state);

/* a fill's TTL, with up to 10% jitter off it */
ngx_msec_t ngx_commerce_cache_ttl(ngx_commerce_cache_t *cache,
    ngx_uint_t klass, ngx_uint_t status);

/* whether the remote store may be used (it heard every invalidation
 * since its last flush); set by the listener's process */
ngx_uint_t ngx_commerce_cache_remote(ngx_commerce_cache_t *cache);
void ngx_commerce_cache_remote_set(ngx_commerce_cache_t *cache,
    ngx_uint_t ok);

ngx_commerce_cache_stats_t *ngx_commerce_cache_stats(
    ngx_commerce_cache_t *cache);


#endif /* _NGX_COMMERCE_CACHE_H_INCLUDED_ */
