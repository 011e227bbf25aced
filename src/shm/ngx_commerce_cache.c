
/*
 * The response cache's zone (see ngx_commerce_cache.h).  One slab
 * allocation per entry (node, key, body), in a red-black tree by the key's
 * CRC32 and in an LRU queue; the oldest entries are evicted when the zone
 * is full.  Validity without touching entries: an entry belongs to the
 * zone's epoch (a flush starts a new one) and to its class's generation
 * (a class invalidation starts a new one) at the time its fill began, so
 * an answer read before an invalidation is never stored after it.  An
 * entry invalidated while it is filled is marked dirty, and its fill is
 * discarded.  Times are wall-clock milliseconds (every worker reads the
 * same clock).
 */


#include "ngx_commerce_cache.h"


typedef enum {
    NGX_COMMERCE_CACHE_FILLING = 0,
    NGX_COMMERCE_CACHE_READY
} ngx_commerce_cache_state_e;


typedef struct {
    ngx_rbtree_node_t            node;      /* key: crc32 of the key */
    ngx_queue_t                  lru;
    uint64_t                     expires;   /* READY */
    uint64_t                     fill_until;
    ngx_uint_t                   epoch;
    ngx_uint_t                   gen;
    uint32_t                     token;
    uint32_t                     len;       /* the body */
    uint16_t                     key_len;
    uint16_t                     status;
    uint8_t                      klass;
    uint8_t                      state;
    uint8_t                      dirty;
    uint8_t                      has_body;  /* FILLING with a stale body */
    u_char                       data[1];   /* key, then body */
} ngx_commerce_cache_node_t;


struct ngx_commerce_cache_sh_s {
    ngx_rbtree_t                 rbtree;
    ngx_rbtree_node_t            sentinel;
    ngx_queue_t                  lru;
    ngx_uint_t                   epoch;
    ngx_uint_t                   gen[NGX_COMMERCE_CACHE_CLASSES];
    ngx_uint_t                   up;        /* the invalidation channel */
    ngx_atomic_t                 remote;    /* the remote store is right */
    ngx_pid_t                    owner;     /* the listener's process */
    uint32_t                     token;
    ngx_commerce_cache_stats_t   stats;
};


static ngx_int_t ngx_commerce_cache_init_zone(ngx_shm_zone_t *zone,
    void *data);
static void ngx_commerce_cache_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_commerce_cache_cmp(uint32_t hash, u_char *key,
    size_t len, ngx_commerce_cache_node_t *n);
static uint64_t ngx_commerce_cache_now(void);
static ngx_commerce_cache_node_t *ngx_commerce_cache_find(
    ngx_commerce_cache_sh_t *sh, ngx_str_t *key, uint32_t hash);
static ngx_commerce_cache_node_t *ngx_commerce_cache_alloc(
    ngx_commerce_cache_t *cache, size_t size);
static void ngx_commerce_cache_free(ngx_commerce_cache_t *cache,
    ngx_commerce_cache_node_t *n);
static ngx_uint_t ngx_commerce_cache_valid(ngx_commerce_cache_sh_t *sh,
    ngx_commerce_cache_node_t *n);
static ngx_commerce_cache_rc_e ngx_commerce_cache_fill(
    ngx_commerce_cache_t *cache, ngx_commerce_cache_node_t *n,
    uint64_t now, ngx_commerce_cache_get_t *out);


/*
 * commerce_cache off | size=16m [store=shm|redis|shm+redis] [ttl=30s]
 *     [negative_ttl=2s] [stats_ttl=10s] [fill_timeout=2s];
 */

char *
ngx_commerce_cache_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_commerce_main_conf_t *mcf = conf;

    ssize_t                size;
    ngx_str_t             *value, name, v;
    ngx_msec_t             ms, *slot;
    ngx_uint_t             i;
    ngx_commerce_cache_t  *cache;

    if (mcf->cache != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        mcf->cache = NULL;
        return NGX_CONF_OK;
    }

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_commerce_cache_t));
    if (cache == NULL) {
        return NGX_CONF_ERROR;
    }

    cache->ttl = 30000;
    cache->negative_ttl = 2000;
    cache->stats_ttl = 10000;
    cache->fill_timeout = 2000;
    cache->store = NGX_COMMERCE_CACHE_LOCAL;
    size = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "size=", 5) == 0) {
            v.data = value[i].data + 5;
            v.len = value[i].len - 5;
            size = ngx_parse_size(&v);

            if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"commerce_cache\": invalid size \"%V\" "
                                   "(at least %uz)", &v, 8 * ngx_pagesize);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "store=", 6) == 0) {
            v.data = value[i].data + 6;
            v.len = value[i].len - 6;

            if (v.len == 3 && ngx_strncmp(v.data, "shm", 3) == 0) {
                cache->store = NGX_COMMERCE_CACHE_LOCAL;

            } else if (v.len == 5 && ngx_strncmp(v.data, "redis", 5) == 0) {
                cache->store = NGX_COMMERCE_CACHE_REMOTE;

            } else if (v.len == 9 && ngx_strncmp(v.data, "shm+redis", 9) == 0)
            {
                cache->store = NGX_COMMERCE_CACHE_LOCAL
                               | NGX_COMMERCE_CACHE_REMOTE;

            } else {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"commerce_cache\": invalid store \"%V\" "
                                   "(shm, redis or shm+redis)", &v);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {
            slot = &cache->ttl;
            v.data = value[i].data + 4;
            v.len = value[i].len - 4;

        } else if (ngx_strncmp(value[i].data, "negative_ttl=", 13) == 0) {
            slot = &cache->negative_ttl;
            v.data = value[i].data + 13;
            v.len = value[i].len - 13;

        } else if (ngx_strncmp(value[i].data, "stats_ttl=", 10) == 0) {
            slot = &cache->stats_ttl;
            v.data = value[i].data + 10;
            v.len = value[i].len - 10;

        } else if (ngx_strncmp(value[i].data, "fill_timeout=", 13) == 0) {
            slot = &cache->fill_timeout;
            v.data = value[i].data + 13;
            v.len = value[i].len - 13;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_cache\": unknown parameter \"%V\" "
                               "(off, or size=, store=, ttl=, "
                               "negative_ttl=, stats_ttl=, fill_timeout=)", &value[i]);
            return NGX_CONF_ERROR;
        }

        ms = ngx_parse_time(&v, 0);

        if (ms == (ngx_msec_t) NGX_ERROR || ms < 1 || ms > 86400000) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_cache\": invalid time \"%V\" "
                               "(1ms to 1d)", &value[i]);
            return NGX_CONF_ERROR;
        }

        *slot = ms;
    }

    if (size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_cache\" needs size= (or off)");
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&name, "commerce_cache");

    cache->size = size;
    cache->zone = ngx_shared_memory_add(cf, &name, size,
                                        &ngx_http_commerce_module);
    if (cache->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    cache->zone->init = ngx_commerce_cache_init_zone;
    cache->zone->data = cache;

    mcf->cache = cache;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_commerce_cache_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_commerce_cache_t  *ocache = data;

    ngx_commerce_cache_t  *cache;

    cache = zone->data;
    cache->shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (ocache != NULL) {
        /* a reload: the entries stay, checked by the channel as before */
        cache->sh = ocache->sh;
        return NGX_OK;
    }

    if (zone->shm.exists) {
        cache->sh = cache->shpool->data;
        return NGX_OK;
    }

    cache->sh = ngx_slab_calloc(cache->shpool,
                                sizeof(ngx_commerce_cache_sh_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    cache->shpool->data = cache->sh;

    ngx_rbtree_init(&cache->sh->rbtree, &cache->sh->sentinel,
                    ngx_commerce_cache_insert);
    ngx_queue_init(&cache->sh->lru);
    cache->sh->epoch = 1;

    cache->shpool->log_ctx = ngx_slab_alloc(cache->shpool,
                                            sizeof(" in commerce_cache zone"));
    if (cache->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(cache->shpool->log_ctx, " in commerce_cache zone%Z");

    /* a full zone evicts: the slab allocator must not log each failure */
    cache->shpool->log_nomem = 0;

    return NGX_OK;
}


ngx_commerce_cache_rc_e
ngx_commerce_cache_get(ngx_commerce_cache_t *cache, ngx_uint_t klass,
    ngx_str_t *key, ngx_pool_t *pool, ngx_commerce_cache_get_t *out)
{
    uint32_t                    hash;
    uint64_t                    now;
    ngx_commerce_cache_sh_t    *sh;
    ngx_commerce_cache_rc_e     rc;
    ngx_commerce_cache_node_t  *n;

    ngx_memzero(out, sizeof(ngx_commerce_cache_get_t));

    sh = cache->sh;

    if (!sh->up || key->len > 0xffff || klass >= NGX_COMMERCE_CACHE_CLASSES) {
        (void) ngx_atomic_fetch_add(&sh->stats.bypass, 1);
        return NGX_COMMERCE_CACHE_BYPASS;
    }

    hash = ngx_crc32_short(key->data, key->len);
    now = ngx_commerce_cache_now();

    ngx_shmtx_lock(&cache->shpool->mutex);

    n = ngx_commerce_cache_find(sh, key, hash);

    if (n == NULL) {
        n = ngx_commerce_cache_alloc(cache,
                                     offsetof(ngx_commerce_cache_node_t, data)
                                     + key->len);
        if (n == NULL) {
            ngx_shmtx_unlock(&cache->shpool->mutex);
            (void) ngx_atomic_fetch_add(&sh->stats.bypass, 1);
            return NGX_COMMERCE_CACHE_BYPASS;
        }

        n->node.key = hash;
        n->key_len = (uint16_t) key->len;
        n->klass = (uint8_t) klass;
        n->len = 0;
        n->has_body = 0;
        ngx_memcpy(n->data, key->data, key->len);
        ngx_rbtree_insert(&sh->rbtree, &n->node);
        ngx_queue_insert_head(&sh->lru, &n->lru);
        (void) ngx_atomic_fetch_add(&sh->stats.entries, 1);

        rc = ngx_commerce_cache_fill(cache, n, now, out);
        goto done;
    }

    ngx_queue_remove(&n->lru);
    ngx_queue_insert_head(&sh->lru, &n->lru);

    if (n->state == NGX_COMMERCE_CACHE_READY
        && ngx_commerce_cache_valid(sh, n) && now < n->expires)
    {
        rc = NGX_COMMERCE_CACHE_HIT;

    } else if (n->state == NGX_COMMERCE_CACHE_FILLING && now < n->fill_until
               && n->epoch == sh->epoch)
    {
        /*
         * someone fills it: the stale copy where the class allows it; a
         * fill invalidated since it began will be discarded, so waiting
         * for it is waiting for nothing: read the database now, unstored
         * (under writes that keep invalidating a key, its readers run in
         * parallel instead of one after the other)
         */
        if (n->has_body && cache->stale[n->klass]) {
            rc = NGX_COMMERCE_CACHE_HIT;
            out->stale = 1;

        } else if (n->dirty || n->gen != sh->gen[n->klass]) {
            rc = NGX_COMMERCE_CACHE_BYPASS;

        } else {
            rc = NGX_COMMERCE_CACHE_WAIT;
        }

    } else {
        /* expired, invalidated, or its filler gave up: fill it again
         * (a stale copy is kept where the class serves one) */
        if (!(cache->stale[n->klass] && n->has_body
              && n->epoch == sh->epoch))
        {
            n->has_body = 0;
        }

        rc = ngx_commerce_cache_fill(cache, n, now, out);
    }

    if (rc == NGX_COMMERCE_CACHE_HIT) {
        out->status = n->status;
        out->len = n->len;
        out->body = ngx_pnalloc(pool, n->len + 1);

        if (out->body == NULL) {
            rc = NGX_COMMERCE_CACHE_BYPASS;

        } else {
            ngx_memcpy(out->body, n->data + n->key_len, n->len);
            out->body[n->len] = '\0';
        }
    }

done:

    ngx_shmtx_unlock(&cache->shpool->mutex);

    switch (rc) {
    case NGX_COMMERCE_CACHE_HIT:
        (void) ngx_atomic_fetch_add(out->stale ? &sh->stats.stale
                                               : &sh->stats.hits, 1);
        break;
    case NGX_COMMERCE_CACHE_FILL:
        (void) ngx_atomic_fetch_add(&sh->stats.misses, 1);
        break;
    case NGX_COMMERCE_CACHE_WAIT:
        (void) ngx_atomic_fetch_add(&sh->stats.waits, 1);
        break;
    default:
        (void) ngx_atomic_fetch_add(&sh->stats.bypass, 1);
        break;
    }

    return rc;
}


/* n (locked) becomes FILLING for the caller, from the current epoch and
 * generation on */

static ngx_commerce_cache_rc_e
ngx_commerce_cache_fill(ngx_commerce_cache_t *cache,
    ngx_commerce_cache_node_t *n, uint64_t now, ngx_commerce_cache_get_t *out)
{
    ngx_commerce_cache_sh_t  *sh;

    sh = cache->sh;

    n->state = NGX_COMMERCE_CACHE_FILLING;
    n->fill_until = now + cache->fill_timeout;
    n->epoch = sh->epoch;
    n->gen = sh->gen[n->klass];
    n->dirty = 0;
    n->token = ++sh->token;

    out->token = n->token;

    /* with a stale body kept, the others are answered it meanwhile */
    return NGX_COMMERCE_CACHE_FILL;
}


void
ngx_commerce_cache_put(ngx_commerce_cache_t *cache, ngx_str_t *key,
    uint32_t token, ngx_uint_t status, u_char *body, size_t len)
{
    uint32_t                    hash;
    uint64_t                    now;
    ngx_msec_t                  ttl;
    ngx_commerce_cache_sh_t    *sh;
    ngx_commerce_cache_node_t  *n, *m;

    sh = cache->sh;
    hash = ngx_crc32_short(key->data, key->len);
    now = ngx_commerce_cache_now();

    ngx_shmtx_lock(&cache->shpool->mutex);

    n = ngx_commerce_cache_find(sh, key, hash);

    if (n == NULL || n->state != NGX_COMMERCE_CACHE_FILLING
        || n->token != token)
    {
        /* evicted, or another request took the fill over */
        goto unlock;
    }

    if (n->dirty || !ngx_commerce_cache_valid(sh, n)
        || len > cache->size / 16)
    {
        /* invalidated since the fill began (never store what was read
         * before a change), or too large for the zone to keep (it would
         * evict many small entries for nothing) */
        (void) ngx_atomic_fetch_add(&sh->stats.discarded, 1);
        ngx_commerce_cache_free(cache, n);
        goto unlock;
    }

    m = ngx_commerce_cache_alloc(cache, offsetof(ngx_commerce_cache_node_t,
                                                 data)
                                        + n->key_len + len);

    /* the eviction may have taken n itself */
    n = ngx_commerce_cache_find(sh, key, hash);

    if (m == NULL || n == NULL || n->token != token) {
        if (m != NULL) {
            ngx_slab_free_locked(cache->shpool, m);
        }

        if (n != NULL && n->token == token) {
            ngx_commerce_cache_free(cache, n);
        }

        goto unlock;
    }

    ngx_memcpy(m, n, offsetof(ngx_commerce_cache_node_t, data) + n->key_len);
    ngx_memcpy(m->data + m->key_len, body, len);

    ngx_rbtree_delete(&sh->rbtree, &n->node);
    ngx_queue_remove(&n->lru);
    ngx_slab_free_locked(cache->shpool, n);

    ttl = ngx_commerce_cache_ttl(cache, m->klass, status);

    m->status = (uint16_t) status;
    m->len = (uint32_t) len;
    m->has_body = 1;
    m->state = NGX_COMMERCE_CACHE_READY;
    m->expires = now + ttl;

    ngx_rbtree_insert(&sh->rbtree, &m->node);
    ngx_queue_insert_head(&sh->lru, &m->lru);

    (void) ngx_atomic_fetch_add(&sh->stats.stored, 1);

unlock:

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* the fill failed: the next request fills (a stale copy stays stale) */

void
ngx_commerce_cache_abandon(ngx_commerce_cache_t *cache, ngx_str_t *key,
    uint32_t token)
{
    ngx_commerce_cache_node_t  *n;

    ngx_shmtx_lock(&cache->shpool->mutex);

    n = ngx_commerce_cache_find(cache->sh, key,
                                ngx_crc32_short(key->data, key->len));

    if (n != NULL && n->state == NGX_COMMERCE_CACHE_FILLING
        && n->token == token)
    {
        if (n->has_body && cache->stale[n->klass]) {
            /* READY again, still expired: the next request refills it,
             * the others keep getting the stale copy meanwhile */
            n->state = NGX_COMMERCE_CACHE_READY;

        } else {
            ngx_commerce_cache_free(cache, n);
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


void
ngx_commerce_cache_invalidate(ngx_commerce_cache_t *cache, ngx_str_t *key)
{
    ngx_commerce_cache_node_t  *n;

    (void) ngx_atomic_fetch_add(&cache->sh->stats.invalidations, 1);

    ngx_shmtx_lock(&cache->shpool->mutex);

    n = ngx_commerce_cache_find(cache->sh, key,
                                ngx_crc32_short(key->data, key->len));

    if (n != NULL) {
        if (n->state == NGX_COMMERCE_CACHE_FILLING) {
            /* its fill read before the change: discard it when it comes */
            n->dirty = 1;
            n->has_body = 0;

        } else {
            ngx_commerce_cache_free(cache, n);
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


void
ngx_commerce_cache_invalidate_class(ngx_commerce_cache_t *cache,
    ngx_uint_t klass)
{
    if (klass < NGX_COMMERCE_CACHE_CLASSES) {
        (void) ngx_atomic_fetch_add(&cache->sh->stats.invalidations, 1);
        (void) ngx_atomic_fetch_add(&cache->sh->gen[klass], 1);
    }
}


/*
 * The invalidation channel (the listener of worker 0): START, a new
 * listener process took over and does not hear yet; UP, it hears again:
 * everything cached before is dropped; DOWN, it stopped hearing: serve
 * nothing cached.  Only START takes the channel over: an UP or a DOWN
 * from a process that is no longer the listener (an old worker 0 leaving
 * after a reload) changes nothing.
 */

void
ngx_commerce_cache_channel(ngx_commerce_cache_t *cache,
    ngx_commerce_listen_e state)
{
    ngx_commerce_cache_sh_t  *sh;

    sh = cache->sh;

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (state == NGX_COMMERCE_LISTEN_START || sh->owner == ngx_pid) {
        sh->owner = ngx_pid;
        sh->up = (state == NGX_COMMERCE_LISTEN_UP);
        sh->epoch++;
        (void) ngx_atomic_fetch_add(&sh->stats.flushes, 1);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* a TTL with up to 10% jitter: entries filled together expire apart */

ngx_msec_t
ngx_commerce_cache_ttl(ngx_commerce_cache_t *cache, ngx_uint_t klass,
    ngx_uint_t status)
{
    ngx_msec_t  ttl;

    ttl = (status != 200) ? cache->negative_ttl
          : (klass < NGX_COMMERCE_CACHE_CLASSES && cache->class_ttl[klass])
          ? cache->class_ttl[klass] : cache->ttl;

    return ttl - (ngx_msec_t) (ngx_random() % (ttl / 10 + 1));
}


ngx_uint_t
ngx_commerce_cache_remote(ngx_commerce_cache_t *cache)
{
    return cache->sh->remote;
}


void
ngx_commerce_cache_remote_set(ngx_commerce_cache_t *cache, ngx_uint_t ok)
{
    cache->sh->remote = ok ? 1 : 0;
}


ngx_commerce_cache_stats_t *
ngx_commerce_cache_stats(ngx_commerce_cache_t *cache)
{
    return &cache->sh->stats;
}


static uint64_t
ngx_commerce_cache_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}


static ngx_commerce_cache_node_t *
ngx_commerce_cache_find(ngx_commerce_cache_sh_t *sh, ngx_str_t *key,
    uint32_t hash)
{
    ngx_int_t           rc;
    ngx_rbtree_node_t  *node, *sentinel;

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel) {
        rc = ngx_commerce_cache_cmp(hash, key->data, key->len,
                                    (ngx_commerce_cache_node_t *) node);
        if (rc == 0) {
            return (ngx_commerce_cache_node_t *) node;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* the tree's order: the hash, then the key's bytes, then its length */

static ngx_int_t
ngx_commerce_cache_cmp(uint32_t hash, u_char *key, size_t len,
    ngx_commerce_cache_node_t *n)
{
    ngx_int_t  rc;

    if (hash != n->node.key) {
        return (hash < n->node.key) ? -1 : 1;
    }

    rc = ngx_memcmp(key, n->data, ngx_min(len, n->key_len));

    if (rc != 0) {
        return rc;
    }

    return (len == n->key_len) ? 0 : ((len < n->key_len) ? -1 : 1);
}


static void
ngx_commerce_cache_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t         **p;
    ngx_commerce_cache_node_t  *n;

    n = (ngx_commerce_cache_node_t *) node;

    for ( ;; ) {
        p = (ngx_commerce_cache_cmp((uint32_t) node->key, n->data, n->key_len,
                                    (ngx_commerce_cache_node_t *) temp)
             < 0) ? &temp->left : &temp->right;

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/* an allocation, evicting the least recently used entries to make room */

static ngx_commerce_cache_node_t *
ngx_commerce_cache_alloc(ngx_commerce_cache_t *cache, size_t size)
{
    void                       *p;
    ngx_uint_t                  i;
    ngx_queue_t                *q;
    ngx_commerce_cache_node_t  *n;

    for (i = 0; i < 64; i++) {
        p = ngx_slab_alloc_locked(cache->shpool, size);

        if (p != NULL) {
            return p;
        }

        if (ngx_queue_empty(&cache->sh->lru)) {
            return NULL;
        }

        q = ngx_queue_last(&cache->sh->lru);
        n = ngx_queue_data(q, ngx_commerce_cache_node_t, lru);

        ngx_commerce_cache_free(cache, n);
        (void) ngx_atomic_fetch_add(&cache->sh->stats.evictions, 1);
    }

    return NULL;
}


static void
ngx_commerce_cache_free(ngx_commerce_cache_t *cache,
    ngx_commerce_cache_node_t *n)
{
    ngx_rbtree_delete(&cache->sh->rbtree, &n->node);
    ngx_queue_remove(&n->lru);
    ngx_slab_free_locked(cache->shpool, n);
    (void) ngx_atomic_fetch_add(&cache->sh->stats.entries,
                                 (ngx_atomic_int_t) -1);
}


/* read or filled in the current epoch and class generation */

static ngx_uint_t
ngx_commerce_cache_valid(ngx_commerce_cache_sh_t *sh,
    ngx_commerce_cache_node_t *n)
{
    return n->epoch == sh->epoch && n->gen == sh->gen[n->klass];
}
