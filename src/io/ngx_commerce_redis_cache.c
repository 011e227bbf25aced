
/*
 * The response cache's entries in Redis (commerce_cache store=redis or
 * store=shm+redis): shared by every instance that uses the same Redis.
 *
 * Versioned writes.  Every entry is stamped with three counters read in
 * the same script as the entry: the cache's epoch (a flush), its class's
 * generation (every list page at once) and its key's version (one
 * product).  An invalidation increments a counter; a read answers the
 * entry only when its stamp is the current one.  A fill reads the stamp
 * before its query and stores its answer only if the stamp has not moved
 * meanwhile (one script): an answer read before a change is never stored
 * after the change's invalidation, whichever instance filled it.
 *
 * Keys: commerce:cache:e, commerce:cache:g:<class>, commerce:cache:v:<key>,
 * commerce:cache:d:<key> (the entry: "<stamp>|<status>|<soft expiry in
 * ms since the epoch>|<body>").  A key's version outlives its entry
 * (NGX_COMMERCE_REDIS_CACHE_VERSION_TTL), so a version that expired
 * cannot come back to the stamp of an entry still there.
 *
 * Nothing here knows what a key means, nor when to invalidate: the
 * request side (src/http/ngx_commerce_cached.c) does.
 */


#include "ngx_commerce_redis_cache.h"


#define NGX_COMMERCE_REDIS_CACHE_PREFIX  "commerce:cache:"


static ngx_commerce_redis_op_t *ngx_commerce_redis_cache_eval(
    ngx_commerce_redis_script_t *script, ngx_uint_t klass, ngx_str_t *key,
    ngx_uint_t nargs, ngx_str_t *args, ngx_commerce_redis_handler_pt handler,
    void *data);
static void ngx_commerce_redis_cache_got(void *data,
    ngx_commerce_redis_rc_e rc, redisReply *reply);
static ngx_int_t ngx_commerce_redis_cache_parse(
    ngx_commerce_redis_cache_get_t *get, redisReply *entry);
static void ngx_commerce_redis_cache_done(void *data,
    ngx_commerce_redis_rc_e rc, redisReply *reply);


/* KEYS: epoch, class generation, key version, entry -> {stamp, entry?} */
static ngx_commerce_redis_script_t  ngx_commerce_redis_cache_get_script = {
    "cache_get",
    "local c = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3], KEYS[4])\n"
    "local s = (c[1] or '0') .. '.' .. (c[2] or '0') .. '.' .. (c[3] or '0')\n"
    "local d = c[4]\n"
    "if d and string.sub(d, 1, #s + 1) == s .. '|' then\n"
    "  return {s, string.sub(d, #s + 2)}\n"
    "end\n"
    "return {s}\n",
    { 0 }, 0
};


/* the same KEYS; ARGV: the stamp read before the fill, the entry, its
 * TTL in ms -> 1 stored, 0 the stamp moved (not stored) */
static ngx_commerce_redis_script_t  ngx_commerce_redis_cache_put_script = {
    "cache_put",
    "local c = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3])\n"
    "local s = (c[1] or '0') .. '.' .. (c[2] or '0') .. '.' .. (c[3] or '0')\n"
    "if s ~= ARGV[1] then return 0 end\n"
    "redis.call('SET', KEYS[4], s .. '|' .. ARGV[2], 'PX', ARGV[3])\n"
    "return 1\n",
    { 0 }, 0
};


/* the same KEYS; ARGV: what to move ("e", "g" or "v"), the version's TTL
 * in ms -> the new counter */
static ngx_commerce_redis_script_t  ngx_commerce_redis_cache_bump_script = {
    "cache_bump",
    "if ARGV[1] == 'e' then return redis.call('INCR', KEYS[1]) end\n"
    "if ARGV[1] == 'g' then return redis.call('INCR', KEYS[2]) end\n"
    "local v = redis.call('INCR', KEYS[3])\n"
    "redis.call('PEXPIRE', KEYS[3], ARGV[2])\n"
    "redis.call('DEL', KEYS[4])\n"
    "return v\n",
    { 0 }, 0
};


typedef struct {
    ngx_commerce_redis_cache_pt     handler;
    void                           *data;
} ngx_commerce_redis_cache_cb_t;


ngx_commerce_redis_op_t *
ngx_commerce_redis_cache_get(ngx_uint_t klass, ngx_str_t *key,
    ngx_commerce_redis_cache_get_t *get)
{
    return ngx_commerce_redis_cache_eval(&ngx_commerce_redis_cache_get_script,
                                         klass, key, 0, NULL,
                                         ngx_commerce_redis_cache_got, get);
}


static void
ngx_commerce_redis_cache_got(void *data, ngx_commerce_redis_rc_e rc,
    redisReply *reply)
{
    ngx_commerce_redis_cache_get_t  *get = data;

    redisReply  *s;

    get->hit = 0;
    get->stamp.len = 0;

    if (rc != NGX_COMMERCE_REDIS_REPLY || reply == NULL
        || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[0]->len > NGX_COMMERCE_REDIS_CACHE_STAMP_LEN)
    {
        get->handler(get, NGX_ERROR);
        return;
    }

    s = reply->element[0];
    get->stamp.data = get->stamp_buf;
    get->stamp.len = ngx_cpymem(get->stamp_buf, s->str, s->len)
                     - get->stamp_buf;

    if (reply->elements > 1) {
        if (ngx_commerce_redis_cache_parse(get, reply->element[1])
            != NGX_OK)
        {
            get->handler(get, NGX_ERROR);
            return;
        }

        get->hit = 1;
    }

    get->handler(get, NGX_OK);
}


/* "<status>|<soft expiry>|<body>": a copy in get->pool */

static ngx_int_t
ngx_commerce_redis_cache_parse(ngx_commerce_redis_cache_get_t *get,
    redisReply *entry)
{
    u_char     *p, *last, *bar;
    ngx_int_t   status;
    int64_t     expires;

    if (entry->type != REDIS_REPLY_STRING) {
        return NGX_ERROR;
    }

    p = (u_char *) entry->str;
    last = p + entry->len;

    bar = ngx_strlchr(p, last, '|');
    if (bar == NULL) {
        return NGX_ERROR;
    }

    status = ngx_atoi(p, bar - p);
    p = bar + 1;

    bar = ngx_strlchr(p, last, '|');
    if (status < 100 || status > 599 || bar == NULL) {
        return NGX_ERROR;
    }

    expires = ngx_atoof(p, bar - p);
    p = bar + 1;

    if (expires < 0) {
        return NGX_ERROR;
    }

    get->status = status;
    get->expires = (uint64_t) expires;
    get->len = last - p;
    get->body = ngx_pnalloc(get->pool, get->len + 1);

    if (get->body == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(get->body, p, get->len);
    get->body[get->len] = '\0';

    return NGX_OK;
}


ngx_int_t
ngx_commerce_redis_cache_put(ngx_uint_t klass, ngx_str_t *key,
    ngx_str_t *stamp, ngx_uint_t status, u_char *body, size_t len,
    uint64_t expires, ngx_msec_t ttl, ngx_commerce_redis_cache_pt handler,
    void *data)
{
    u_char                         *p;
    ngx_str_t                       args[3];
    ngx_commerce_redis_cache_cb_t  *cb;
    u_char                          buf[NGX_INT_T_LEN];

    p = ngx_alloc(len + 2 * NGX_INT64_LEN + 8, ngx_cycle->log);
    cb = ngx_alloc(sizeof(ngx_commerce_redis_cache_cb_t), ngx_cycle->log);

    if (p == NULL || cb == NULL) {
        goto failed;
    }

    cb->handler = handler;
    cb->data = data;

    args[0] = *stamp;
    args[1].data = p;
    args[1].len = ngx_cpymem(ngx_sprintf(p, "%ui|%uL|", status, expires),
                             body, len)
                  - p;
    args[2].data = buf;
    args[2].len = ngx_sprintf(buf, "%M", ttl) - buf;

    /* the words are copied: the entry's text is ours to free now */
    if (ngx_commerce_redis_cache_eval(&ngx_commerce_redis_cache_put_script,
                                      klass, key, 3, args,
                                      ngx_commerce_redis_cache_done, cb)
        == NULL)
    {
        goto failed;
    }

    ngx_free(p);

    return NGX_OK;

failed:

    if (p != NULL) {
        ngx_free(p);
    }

    if (cb != NULL) {
        ngx_free(cb);
    }

    return NGX_ERROR;
}


/* what: 'e' the whole cache, 'g' the class, 'v' the key */

ngx_int_t
ngx_commerce_redis_cache_bump(u_char what, ngx_uint_t klass, ngx_str_t *key,
    ngx_commerce_redis_cache_pt handler, void *data)
{
    ngx_str_t                       args[2], none;
    ngx_commerce_redis_cache_cb_t  *cb;
    u_char                          buf[NGX_INT_T_LEN];

    cb = ngx_alloc(sizeof(ngx_commerce_redis_cache_cb_t), ngx_cycle->log);
    if (cb == NULL) {
        return NGX_ERROR;
    }

    cb->handler = handler;
    cb->data = data;

    args[0].data = &what;
    args[0].len = 1;
    args[1].data = buf;
    args[1].len = ngx_sprintf(buf, "%M",
                              (ngx_msec_t) NGX_COMMERCE_REDIS_CACHE_VERSION_TTL)
                  - buf;

    if (key == NULL) {
        ngx_str_null(&none);
        key = &none;
    }

    if (ngx_commerce_redis_cache_eval(&ngx_commerce_redis_cache_bump_script,
                                      klass, key, 2, args,
                                      ngx_commerce_redis_cache_done, cb)
        == NULL)
    {
        ngx_free(cb);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_commerce_redis_cache_done(void *data, ngx_commerce_redis_rc_e rc,
    redisReply *reply)
{
    ngx_commerce_redis_cache_cb_t  *cb = data;

    ngx_int_t                    ok;
    void                        *hdata;
    ngx_commerce_redis_cache_pt  handler;

    /* put: 1 stored, 0 the stamp moved; bump: the new counter */
    ok = (rc == NGX_COMMERCE_REDIS_REPLY && reply != NULL
          && reply->type == REDIS_REPLY_INTEGER)
         ? (reply->integer > 0 ? NGX_OK : NGX_DECLINED) : NGX_ERROR;

    handler = cb->handler;
    hdata = cb->data;
    ngx_free(cb);

    if (handler != NULL) {
        handler(hdata, ok);
    }
}


static ngx_commerce_redis_op_t *
ngx_commerce_redis_cache_eval(ngx_commerce_redis_script_t *script,
    ngx_uint_t klass, ngx_str_t *key, ngx_uint_t nargs, ngx_str_t *args,
    ngx_commerce_redis_handler_pt handler, void *data)
{
    u_char                    *p;
    ngx_str_t                  k[4];
    ngx_array_t                keys, argv;
    ngx_commerce_redis_op_t   *op;

    p = ngx_alloc(4 * (sizeof(NGX_COMMERCE_REDIS_CACHE_PREFIX) + 4)
                  + 2 * key->len + NGX_INT_T_LEN, ngx_cycle->log);
    if (p == NULL) {
        return NULL;
    }

    k[0].data = p;
    p = ngx_sprintf(p, NGX_COMMERCE_REDIS_CACHE_PREFIX "e");
    k[0].len = p - k[0].data;

    k[1].data = p;
    p = ngx_sprintf(p, NGX_COMMERCE_REDIS_CACHE_PREFIX "g:%ui", klass);
    k[1].len = p - k[1].data;

    k[2].data = p;
    p = ngx_sprintf(p, NGX_COMMERCE_REDIS_CACHE_PREFIX "v:%V", key);
    k[2].len = p - k[2].data;

    k[3].data = p;
    p = ngx_sprintf(p, NGX_COMMERCE_REDIS_CACHE_PREFIX "d:%V", key);
    k[3].len = p - k[3].data;

    /* arrays over our own words (the client copies them; nothing pushes) */
    ngx_memzero(&keys, sizeof(ngx_array_t));
    keys.elts = k;
    keys.nelts = 4;
    keys.size = sizeof(ngx_str_t);
    keys.nalloc = 4;

    ngx_memzero(&argv, sizeof(ngx_array_t));
    argv.elts = args;
    argv.nelts = nargs;
    argv.size = sizeof(ngx_str_t);
    argv.nalloc = nargs;

    op = ngx_commerce_redis_eval(script, &keys, nargs ? &argv : NULL,
                                 handler, data);

    ngx_free(k[0].data);

    return op;
}
