
/*
 * JSON documents the module reads back: the answers of its SQL functions
 * and of payment gateways.  Parsed with yajl's tree into a pool (freed
 * with it) and read by path.  Client request bodies are not read here:
 * they go through the strict parsers of src/lib/cm_json.c.
 */


#include "ngx_commerce.h"


#define NGX_COMMERCE_JSON_MAX  (4 * 1024 * 1024)


static void ngx_commerce_json_cleanup(void *data);


/* NULL: no document, not JSON, or no memory */

yajl_val
ngx_commerce_json_parse(ngx_pool_t *pool, u_char *data, size_t len)
{
    char                *buf;
    yajl_val             v;
    ngx_pool_cleanup_t  *cln;

    if (data == NULL || len == 0 || len > NGX_COMMERCE_JSON_MAX) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    buf = ngx_pnalloc(pool, len + 1);
    if (buf == NULL) {
        return NULL;
    }

    ngx_memcpy(buf, data, len);
    buf[len] = '\0';

    v = yajl_tree_parse(buf, NULL, 0);
    if (v == NULL) {
        return NULL;
    }

    cln->handler = ngx_commerce_json_cleanup;
    cln->data = v;

    return v;
}


static void
ngx_commerce_json_cleanup(void *data)
{
    yajl_tree_free(data);
}


/* v.a or v.a.b (b NULL: one level) */

yajl_val
ngx_commerce_json_get(yajl_val v, const char *a, const char *b)
{
    const char  *path[3];

    if (v == NULL) {
        return NULL;
    }

    path[0] = a;
    path[1] = b;
    path[2] = NULL;

    return yajl_tree_get(v, path, yajl_t_any);
}


ngx_int_t
ngx_commerce_json_int(yajl_val v, const char *a, const char *b, int64_t *out)
{
    yajl_val  n;

    n = ngx_commerce_json_get(v, a, b);

    if (n == NULL || !YAJL_IS_INTEGER(n)) {
        return NGX_ERROR;
    }

    *out = YAJL_GET_INTEGER(n);

    return NGX_OK;
}


/* a positive integer (an id) */

ngx_int_t
ngx_commerce_json_id(yajl_val v, const char *a, int64_t *out)
{
    if (ngx_commerce_json_int(v, a, NULL, out) != NGX_OK || *out < 1) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* a string inside the document (NUL-terminated), or NULL */

const char *
ngx_commerce_json_string(yajl_val v, const char *a)
{
    yajl_val  s;

    s = ngx_commerce_json_get(v, a, NULL);

    return (s != NULL && YAJL_IS_STRING(s)) ? YAJL_GET_STRING(s) : NULL;
}


/* a string of 1..max bytes, copied into the pool (not NUL-terminated) */

ngx_int_t
ngx_commerce_json_str(ngx_pool_t *pool, yajl_val v, const char *a,
    const char *b, ngx_str_t *out, size_t max)
{
    char      *s;
    size_t     len;
    yajl_val   n;

    n = ngx_commerce_json_get(v, a, b);

    if (n == NULL || !YAJL_IS_STRING(n)) {
        return NGX_ERROR;
    }

    s = YAJL_GET_STRING(n);
    len = ngx_strlen(s);

    if (len == 0 || len > max) {
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(pool, len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, s, len);
    out->len = len;

    return NGX_OK;
}


/* a NUL-terminated copy, as libpq takes its parameters */

char *
ngx_commerce_json_cstr(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char  *p;

    p = ngx_pnalloc(pool, s->len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s->data, s->len);
    p[s->len] = '\0';

    return (char *) p;
}
