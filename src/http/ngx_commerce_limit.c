
/*
 * Rate limits in shared-memory zones, the limit_req way: an rbtree of keys
 * and an LRU queue in a slab pool under the pool's mutex, expiring from the
 * LRU tail when the slab is full.  The arithmetic is GCRA (cm_ratelimit.c).
 *
 *     commerce_limit_zone orders_user key=user rate=5r/s burst=10 size=1m;
 *     commerce_limit_zone login_account key=account rate=5r/m burst=5;
 *     commerce_limit_zone charge_addr key=addr rate=30r/m burst=5 size=1m
 *                         dry_run;
 *     commerce_limit orders orders_user;          # route, zone(s)
 *     commerce_limit charge charge_addr orders_user;
 *
 * Over the limit: 429 RATE_LIMITED with Retry-After and the IETF
 * RateLimit-Limit/-Remaining/-Reset headers; a dry_run zone only logs and
 * counts.  Zones keep their keys across a reload when unchanged.
 */


#include "ngx_commerce_http.h"
#include "cm_ratelimit.h"


#define NGX_COMMERCE_LIMIT_KEY_ADDR  0
#define NGX_COMMERCE_LIMIT_KEY_USER  1
#define NGX_COMMERCE_LIMIT_KEY_ACCOUNT  2   /* login: the email's index */

#define NGX_COMMERCE_LIMIT_ZONES     16
#define NGX_COMMERCE_LIMIT_PER_ROUTE 4


typedef struct {
    u_char                       color;
    u_char                       len;
    u_short                      reserved;
    ngx_queue_t                  queue;
    cm_rl_state_t                state;
    u_char                       data[1];
} ngx_commerce_limit_node_t;


typedef struct {
    ngx_rbtree_t                 rbtree;
    ngx_rbtree_node_t            sentinel;
    ngx_queue_t                  queue;
    ngx_atomic_t                 passed;
    ngx_atomic_t                 rejected;
    ngx_atomic_t                 dry_run;
} ngx_commerce_limit_shctx_t;


typedef struct {
    ngx_str_t                    name;
    ngx_uint_t                   key;
    uint32_t                     rate;       /* requests/s x 1000 */
    uint32_t                     burst;
    ngx_flag_t                   dry_run;
    ngx_shm_zone_t              *shm_zone;
    ngx_slab_pool_t             *shpool;
    ngx_commerce_limit_shctx_t  *sh;
} ngx_commerce_limit_zone_t;


typedef struct {
    ngx_array_t                  zones;      /* ngx_commerce_limit_zone_t */
    ngx_commerce_limit_zone_t   *route[NGX_COMMERCE_ROUTE_SLOTS]
                                      [NGX_COMMERCE_LIMIT_PER_ROUTE];
    ngx_uint_t                   flags[NGX_COMMERCE_ROUTE_SLOTS];
} ngx_commerce_limit_conf_t;


static ngx_int_t ngx_commerce_limit_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_commerce_limit_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_commerce_limit_lookup(ngx_commerce_limit_zone_t *z,
    ngx_str_t *key, int64_t now, unsigned flags, cm_rl_result_t *res);
static void ngx_commerce_limit_expire(ngx_commerce_limit_zone_t *z,
    int64_t now, ngx_uint_t n);
static ngx_int_t ngx_commerce_limit_run(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, ngx_commerce_limit_zone_t **zones,
    ngx_str_t *key, ngx_uint_t n, ngx_uint_t headers);
static ngx_int_t ngx_commerce_limit_headers(ngx_http_request_t *r,
    cm_rl_result_t *res);


static ngx_commerce_limit_conf_t  *
ngx_commerce_limit_conf(ngx_commerce_main_conf_t *mcf, ngx_pool_t *pool)
{
    if (mcf->limits == NULL) {
        mcf->limits = ngx_pcalloc(pool, sizeof(ngx_commerce_limit_conf_t));
        if (mcf->limits == NULL) {
            return NULL;
        }

        if (ngx_array_init(&((ngx_commerce_limit_conf_t *) mcf->limits)->zones,
                           pool, 4, sizeof(ngx_commerce_limit_zone_t))
            != NGX_OK)
        {
            return NULL;
        }
    }

    return mcf->limits;
}


char *
ngx_commerce_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_commerce_main_conf_t *mcf = conf;

    u_char                     *p;
    ssize_t                     size;
    ngx_str_t                  *value, s, name;
    ngx_int_t                   rate, scale;
    ngx_uint_t                  i;
    const char                 *err;
    ngx_commerce_limit_conf_t  *lc;
    ngx_commerce_limit_zone_t  *z;

    lc = ngx_commerce_limit_conf(mcf, cf->pool);
    if (lc == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;
    name = value[1];

    z = lc->zones.elts;
    for (i = 0; i < lc->zones.nelts; i++) {
        if (z[i].name.len == name.len
            && ngx_strncmp(z[i].name.data, name.data, name.len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_limit_zone\" \"%V\" is duplicate",
                               &name);
            return NGX_CONF_ERROR;
        }
    }

    if (lc->zones.nelts == NGX_COMMERCE_LIMIT_ZONES) {
        return "has too many zones";
    }

    z = ngx_array_push(&lc->zones);
    if (z == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(z, sizeof(ngx_commerce_limit_zone_t));
    z->name = name;
    z->key = (ngx_uint_t) -1;
    size = 1024 * 1024;
    rate = 0;
    scale = 1;

    for (i = 2; i < cf->args->nelts; i++) {
        s = value[i];

        if (s.len == 8 && ngx_strncmp(s.data, "key=addr", 8) == 0) {
            z->key = NGX_COMMERCE_LIMIT_KEY_ADDR;
            continue;
        }

        if (s.len == 8 && ngx_strncmp(s.data, "key=user", 8) == 0) {
            z->key = NGX_COMMERCE_LIMIT_KEY_USER;
            continue;
        }

        if (s.len == 11 && ngx_strncmp(s.data, "key=account", 11) == 0) {
            z->key = NGX_COMMERCE_LIMIT_KEY_ACCOUNT;
            continue;
        }

        if (s.len == 7 && ngx_strncmp(s.data, "dry_run", 7) == 0) {
            z->dry_run = 1;
            continue;
        }

        if (s.len > 5 && ngx_strncmp(s.data, "size=", 5) == 0) {
            s.data += 5;
            s.len -= 5;
            size = ngx_parse_size(&s);
            if (size < (ssize_t) (8 * ngx_pagesize)) {
                goto invalid;
            }
            continue;
        }

        if (s.len > 6 && ngx_strncmp(s.data, "burst=", 6) == 0) {
            z->burst = ngx_atoi(s.data + 6, s.len - 6);
            if (z->burst == (uint32_t) NGX_ERROR
                || z->burst > CM_RL_BURST_MAX)
            {
                goto invalid;
            }
            continue;
        }

        if (s.len > 5 && ngx_strncmp(s.data, "rate=", 5) == 0) {
            p = s.data + s.len - 3;

            if (s.len > 8 && ngx_strncmp(p, "r/s", 3) == 0) {
                scale = 1;
            } else if (s.len > 8 && ngx_strncmp(p, "r/m", 3) == 0) {
                scale = 60;
            } else {
                goto invalid;
            }

            rate = ngx_atoi(s.data + 5, s.len - 5 - 3);
            if (rate <= 0 || rate > 1000000) {
                goto invalid;
            }
            continue;
        }

        goto invalid;
    }

    if (z->key == (ngx_uint_t) -1 || rate == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_limit_zone\" \"%V\" needs key= and "
                           "rate=", &name);
        return NGX_CONF_ERROR;
    }

    z->rate = (uint32_t) (rate * 1000 / scale);

    if (cm_rl_conf_check(z->rate, z->burst, &err) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_limit_zone\" \"%V\": %s", &name, err);
        return NGX_CONF_ERROR;
    }

    s.len = sizeof("commerce_limit_") - 1 + name.len;
    s.data = ngx_pnalloc(cf->pool, s.len);
    if (s.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(s.data, "commerce_limit_%V", &name);

    z->shm_zone = ngx_shared_memory_add(cf, &s, size,
                                        &ngx_http_commerce_module);
    if (z->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    /* the array may move while parsing: the zone finds its conf by name */
    z->shm_zone->init = ngx_commerce_limit_init_zone;
    z->shm_zone->data = NULL;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"commerce_limit_zone\" \"%V\": invalid parameter "
                       "\"%V\"", &name, &value[i]);

    return NGX_CONF_ERROR;
}


char *
ngx_commerce_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_commerce_main_conf_t *mcf = conf;

    ngx_str_t                  *value;
    ngx_uint_t                  i, j, k, route, flags;
    ngx_commerce_limit_conf_t  *lc;
    ngx_commerce_limit_zone_t  *z;

    lc = ngx_commerce_limit_conf(mcf, cf->pool);
    if (lc == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    /* the route table was added before the directives were parsed */
    route = ngx_commerce_router_slot(mcf, &value[1], &flags);

    if (route == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_limit\": unknown route \"%V\" (a "
                           "route name of the route table: products, "
                           "product, balance, charge, orders, order, "
                           "order_payment, callback, login, ...)",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    lc->flags[route] = flags;

    /* zone names are resolved to indexes now, pointers after parsing */

    for (i = 2; i < cf->args->nelts; i++) {
        z = lc->zones.elts;

        for (j = 0; j < lc->zones.nelts; j++) {
            if (z[j].name.len == value[i].len
                && ngx_strncmp(z[j].name.data, value[i].data, value[i].len)
                   == 0)
            {
                break;
            }
        }

        if (j == lc->zones.nelts) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_limit\": unknown zone \"%V\" "
                               "(declare it first with commerce_limit_zone)",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        for (k = 0; k < NGX_COMMERCE_LIMIT_PER_ROUTE; k++) {
            if (lc->route[route][k] == NULL) {
                lc->route[route][k] = (ngx_commerce_limit_zone_t *) (j + 1);
                break;
            }
        }

        if (k == NGX_COMMERCE_LIMIT_PER_ROUTE) {
            return "has too many zones for one route";
        }
    }

    return NGX_CONF_OK;
}


/* after parsing: zone indexes become pointers, zones learn their conf */

ngx_int_t
ngx_commerce_limit_postconf(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    ngx_uint_t                  i, k;
    ngx_commerce_limit_conf_t  *lc;
    ngx_commerce_limit_zone_t  *z;

    lc = mcf->limits;
    if (lc == NULL) {
        return NGX_OK;
    }

    z = lc->zones.elts;

    for (i = 0; i < lc->zones.nelts; i++) {
        z[i].shm_zone->data = &z[i];
    }

    for (i = 0; i < NGX_COMMERCE_ROUTE_SLOTS; i++) {
        for (k = 0; k < NGX_COMMERCE_LIMIT_PER_ROUTE; k++) {
            if (lc->route[i][k] != NULL) {
                lc->route[i][k] = &z[(uintptr_t) lc->route[i][k] - 1];

                if (lc->route[i][k]->key == NGX_COMMERCE_LIMIT_KEY_ACCOUNT
                    && !(lc->flags[i] & NGX_COMMERCE_ROUTE_ACCOUNT))
                {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "\"commerce_limit\": zone \"%V\" "
                                       "is keyed by account, which only "
                                       "route login has",
                                       &lc->route[i][k]->name);
                    return NGX_ERROR;
                }
            }
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_commerce_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_commerce_limit_zone_t  *oz = data;

    size_t                      len;
    ngx_commerce_limit_zone_t  *z;

    z = shm_zone->data;

    if (z == NULL) {
        return NGX_ERROR;
    }

    if (oz != NULL && oz->sh != NULL) {
        /* a reload: same rate and burst keep their keys, GCRA copes */
        z->sh = oz->sh;
        z->shpool = oz->shpool;
        return NGX_OK;
    }

    z->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        z->sh = z->shpool->data;
        return NGX_OK;
    }

    z->sh = ngx_slab_alloc(z->shpool, sizeof(ngx_commerce_limit_shctx_t));
    if (z->sh == NULL) {
        return NGX_ERROR;
    }

    z->shpool->data = z->sh;

    ngx_rbtree_init(&z->sh->rbtree, &z->sh->sentinel,
                    ngx_commerce_limit_rbtree_insert);
    ngx_queue_init(&z->sh->queue);
    z->sh->passed = 0;
    z->sh->rejected = 0;
    z->sh->dry_run = 0;

    len = sizeof(" in commerce_limit_zone \"\"") + shm_zone->shm.name.len;

    z->shpool->log_ctx = ngx_slab_alloc(z->shpool, len);
    if (z->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(z->shpool->log_ctx, " in commerce_limit_zone \"%V\"%Z",
                &shm_zone->shm.name);

    return NGX_OK;
}


static void
ngx_commerce_limit_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t          **p;
    ngx_commerce_limit_node_t   *ln, *lnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            ln = (ngx_commerce_limit_node_t *) &node->color;
            lnt = (ngx_commerce_limit_node_t *) &temp->color;

            p = (ngx_memn2cmp(ln->data, lnt->data, ln->len, lnt->len) < 0)
                ? &temp->left : &temp->right;
        }

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


/* 1 passes, 0 over the limit, NGX_ERROR out of memory (let it pass) */

static ngx_int_t
ngx_commerce_limit_lookup(ngx_commerce_limit_zone_t *z, ngx_str_t *key,
    int64_t now, unsigned flags, cm_rl_result_t *res)
{
    int                         rc;
    size_t                      size;
    uint32_t                    hash;
    ngx_int_t                   cmp;
    ngx_rbtree_node_t          *node, *sentinel;
    ngx_commerce_limit_node_t  *ln;

    hash = ngx_crc32_short(key->data, key->len);

    node = z->sh->rbtree.root;
    sentinel = z->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        ln = (ngx_commerce_limit_node_t *) &node->color;

        cmp = ngx_memn2cmp(key->data, ln->data, key->len, (size_t) ln->len);

        if (cmp == 0) {
            ngx_queue_remove(&ln->queue);
            ngx_queue_insert_head(&z->sh->queue, &ln->queue);

            rc = cm_rl_check(&ln->state, now, z->rate, z->burst, flags, res);

            return rc == 0 ? 0 : 1;
        }

        node = (cmp < 0) ? node->left : node->right;
    }

    /* a new key: its bucket is full; dry runs need no node */

    if (flags & CM_RL_DRY_RUN) {
        cm_rl_state_t  s;

        ngx_memzero(&s, sizeof(cm_rl_state_t));
        rc = cm_rl_check(&s, now, z->rate, z->burst, flags, res);
        return rc == 0 ? 0 : 1;
    }

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_commerce_limit_node_t, data)
           + key->len;

    ngx_commerce_limit_expire(z, now, 1);

    node = ngx_slab_alloc_locked(z->shpool, size);

    if (node == NULL) {
        ngx_commerce_limit_expire(z, now, 0);

        node = ngx_slab_alloc_locked(z->shpool, size);
        if (node == NULL) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "commerce: could not allocate a node%s",
                          z->shpool->log_ctx);
            return NGX_ERROR;
        }
    }

    node->key = hash;

    ln = (ngx_commerce_limit_node_t *) &node->color;

    ln->len = (u_char) key->len;
    ngx_memzero(&ln->state, sizeof(cm_rl_state_t));
    ngx_memcpy(ln->data, key->data, key->len);

    ngx_rbtree_insert(&z->sh->rbtree, node);
    ngx_queue_insert_head(&z->sh->queue, &ln->queue);

    rc = cm_rl_check(&ln->state, now, z->rate, z->burst, flags, res);

    return rc == 0 ? 0 : 1;
}


/*
 * n == 1: free up to two idle keys from the LRU tail; n == 0: free the
 * oldest key whatever its state (the slab is full).
 */

static void
ngx_commerce_limit_expire(ngx_commerce_limit_zone_t *z, int64_t now,
    ngx_uint_t n)
{
    ngx_uint_t                  i;
    ngx_queue_t                *q;
    ngx_rbtree_node_t          *node;
    ngx_commerce_limit_node_t  *ln;

    for (i = 0; i < 3; i++) {

        if (ngx_queue_empty(&z->sh->queue)) {
            return;
        }

        q = ngx_queue_last(&z->sh->queue);
        ln = ngx_queue_data(q, ngx_commerce_limit_node_t, queue);

        if (n && !cm_rl_idle(&ln->state, now)) {
            return;
        }

        ngx_queue_remove(q);

        node = (ngx_rbtree_node_t *)
                   ((u_char *) ln - offsetof(ngx_rbtree_node_t, color));

        ngx_rbtree_delete(&z->sh->rbtree, node);
        ngx_slab_free_locked(z->shpool, node);

        if (n == 0) {
            return;
        }
    }
}


/*
 * NGX_DECLINED: within every limit of the route.  Otherwise a 429 was
 * sent and its rc is returned.  A request limited by several zones uses up
 * nothing when any of them refuses it.  Zones keyed by account are checked
 * later, once the body names the account (ngx_commerce_limit_account).
 */

ngx_int_t
ngx_commerce_limit_check(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx)
{
    u_char                      buf[NGX_INT64_LEN + 1];
    ngx_str_t                   key[NGX_COMMERCE_LIMIT_PER_ROUTE];
    ngx_uint_t                  i, n;
    ngx_commerce_limit_conf_t  *lc;
    ngx_commerce_limit_zone_t  *zones[NGX_COMMERCE_LIMIT_PER_ROUTE], **rz;
    ngx_commerce_main_conf_t   *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);
    lc = mcf->limits;

    if (lc == NULL || lc->route[ctx->route->slot][0] == NULL) {
        return NGX_DECLINED;
    }

    rz = lc->route[ctx->route->slot];
    n = 0;

    for (i = 0; i < NGX_COMMERCE_LIMIT_PER_ROUTE && rz[i] != NULL; i++) {
        if (rz[i]->key == NGX_COMMERCE_LIMIT_KEY_ACCOUNT) {
            continue;
        }

        zones[n] = rz[i];

        if (rz[i]->key == NGX_COMMERCE_LIMIT_KEY_USER
            && ctx->authenticated)
        {
            key[n].data = buf;
            key[n].len = ngx_sprintf(buf, "%L", ctx->claims.user_id) - buf;

        } else {
            key[n] = r->connection->addr_text;
            key[n].len = ngx_min(key[n].len, 255);
        }

        n++;
    }

    return ngx_commerce_limit_run(r, ctx, zones, key, n, 1);
}


/* the route's zones keyed by account (login: the email's blind index) */

ngx_int_t
ngx_commerce_limit_account(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    ngx_str_t *account)
{
    ngx_str_t                   key[NGX_COMMERCE_LIMIT_PER_ROUTE];
    ngx_uint_t                  i, n;
    ngx_commerce_limit_conf_t  *lc;
    ngx_commerce_limit_zone_t  *zones[NGX_COMMERCE_LIMIT_PER_ROUTE], **rz;
    ngx_commerce_main_conf_t   *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);
    lc = mcf->limits;

    if (lc == NULL) {
        return NGX_DECLINED;
    }

    rz = lc->route[ctx->route->slot];
    n = 0;

    for (i = 0; i < NGX_COMMERCE_LIMIT_PER_ROUTE && rz[i] != NULL; i++) {
        if (rz[i]->key == NGX_COMMERCE_LIMIT_KEY_ACCOUNT) {
            zones[n] = rz[i];
            key[n] = *account;
            key[n].len = ngx_min(key[n].len, 255);
            n++;
        }
    }

    /* RateLimit-* of the first pass stand; only a refusal adds its own */
    return ngx_commerce_limit_run(r, ctx, zones, key, n, 0);
}


static ngx_int_t
ngx_commerce_limit_run(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    ngx_commerce_limit_zone_t **zones, ngx_str_t *key, ngx_uint_t n,
    ngx_uint_t headers)
{
    int64_t                     now;
    ngx_int_t                   rc;
    ngx_uint_t                  k, refused;
    cm_rl_result_t              res, worst;
    ngx_commerce_limit_zone_t  *z;

    if (n == 0) {
        return NGX_DECLINED;
    }

    now = (int64_t) ngx_current_msec;

    /* first: would every zone take it?  nothing is used up yet */

    refused = 0;
    ngx_memzero(&worst, sizeof(cm_rl_result_t));

    for (k = 0; k < n; k++) {
        z = zones[k];

        ngx_shmtx_lock(&z->shpool->mutex);
        rc = ngx_commerce_limit_lookup(z, &key[k], now, CM_RL_DRY_RUN, &res);
        ngx_shmtx_unlock(&z->shpool->mutex);

        if (rc != 0) {
            continue;
        }

        if (z->dry_run) {
            (void) ngx_atomic_fetch_add(&z->sh->dry_run, 1);
            ngx_commerce_log(NGX_LOG_WARN, r, ctx,
                             "rate limit \"%V\" exceeded by %V (dry run)",
                             &z->name, &key[k]);
            continue;
        }

        (void) ngx_atomic_fetch_add(&z->sh->rejected, 1);
        ngx_commerce_log(NGX_LOG_WARN, r, ctx,
                         "rate limit \"%V\" exceeded by %V", &z->name,
                         &key[k]);

        if (!refused || res.retry_after_ms > worst.retry_after_ms) {
            worst = res;
        }

        refused = 1;
    }

    if (refused) {
        if (ngx_commerce_limit_headers(r, &worst) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->retry_after = (ngx_uint_t) ((worst.retry_after_ms + 999) / 1000);
        if (ctx->retry_after == 0) {
            ctx->retry_after = 1;
        }

        return ngx_commerce_reply_error(r, NGX_HTTP_TOO_MANY_REQUESTS,
                                       "RATE_LIMITED",
                                       "too many requests, retry later");
    }

    /* then take its place in every zone */

    for (k = 0; k < n; k++) {
        z = zones[k];

        ngx_shmtx_lock(&z->shpool->mutex);
        rc = ngx_commerce_limit_lookup(z, &key[k], now, 0, &res);
        ngx_shmtx_unlock(&z->shpool->mutex);

        (void) ngx_atomic_fetch_add(&z->sh->passed, 1);

        if (rc != NGX_ERROR
            && (worst.limit == 0 || res.remaining < worst.remaining))
        {
            worst = res;
        }
    }

    if (headers && worst.limit
        && ngx_commerce_limit_headers(r, &worst) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_commerce_limit_headers(ngx_http_request_t *r, cm_rl_result_t *res)
{
    u_char           *p;
    ngx_table_elt_t  *h;
    ngx_uint_t        i;
    static const char  *names[] = {
        "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"
    };
    int64_t           v[3];

    v[0] = res->limit;
    v[1] = res->remaining;
    v[2] = (res->reset_ms + 999) / 1000;

    for (i = 0; i < 3; i++) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        h->key.data = (u_char *) names[i];
        h->key.len = ngx_strlen(names[i]);
        h->value.data = p;
        h->value.len = ngx_sprintf(p, "%L", v[i]) - p;
    }

    return NGX_OK;
}


/* Prometheus lines for the metrics location */

u_char *
ngx_commerce_limit_metrics(u_char *p, u_char *last)
{
    ngx_uint_t                  i;
    ngx_commerce_limit_conf_t  *lc;
    ngx_commerce_limit_zone_t  *z;
    ngx_commerce_main_conf_t   *mcf;

    mcf = ngx_commerce_conf_main();
    lc = mcf->limits;

    p = ngx_slprintf(p, last, "# HELP commerce_rate_limit_requests_total "
                     "Requests checked by rate-limit zones.\n"
                     "# TYPE commerce_rate_limit_requests_total counter\n");

    if (lc == NULL) {
        return p;
    }

    z = lc->zones.elts;

    for (i = 0; i < lc->zones.nelts; i++) {
        if (z[i].sh == NULL) {
            continue;
        }

        p = ngx_slprintf(p, last,
                     "commerce_rate_limit_requests_total{zone=\"%V\","
                     "result=\"passed\"} %uA\n"
                     "commerce_rate_limit_requests_total{zone=\"%V\","
                     "result=\"rejected\"} %uA\n"
                     "commerce_rate_limit_requests_total{zone=\"%V\","
                     "result=\"dry_run\"} %uA\n",
                     &z[i].name, z[i].sh->passed, &z[i].name,
                     z[i].sh->rejected, &z[i].name, z[i].sh->dry_run);
    }

    return p;
}
