
/*
 * JSON documents the module reads back: the answers of its SQL functions
 * and of payment gateways.  Parsed with yajl's tree into a pool (freed
 * with it) and read by path.  Client request bodies are not read here:
 * they go through the strict parsers of src/lib/cm_json.c.
 */


#include "ngx_commerce.h"

#include <yajl/yajl_gen.h>


#define NGX_COMMERCE_JSON_MAX  (4 * 1024 * 1024)


static void ngx_commerce_json_cleanup(void *data);
static ngx_int_t ngx_commerce_json_gen(yajl_gen g, yajl_val v,
    ngx_uint_t depth);


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


/*
 * ,"key":"value" (value escaped) or ,"key":null (value->data NULL), at p;
 * p never passes last (a caller sized for 6 bytes a byte of value).
 */

u_char *
ngx_commerce_json_put(u_char *p, u_char *last, const char *key,
    ngx_str_t *value)
{
    if (value->data == NULL) {
        return ngx_slprintf(p, last, ",\"%s\":null", key);
    }

    p = ngx_slprintf(p, last, ",\"%s\":\"", key);

    if (p < last) {
        p += cm_json_escape((char *) p, last - p, value->data, value->len);
    }

    if (p < last) {
        *p++ = '"';
    }

    return p;
}


/*
 * A part of a document as JSON text again, into the pool (numbers keep
 * their text as it was: amounts are never rounded through a double).
 */

ngx_int_t
ngx_commerce_json_text(ngx_pool_t *pool, yajl_val v, ngx_str_t *out)
{
    size_t                len;
    ngx_int_t             rc;
    yajl_gen              g;
    const unsigned char  *buf;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_commerce_json_gen(g, v, 0);

    if (rc == NGX_OK && yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok)
    {
        out->data = ngx_pnalloc(pool, len);
        if (out->data == NULL) {
            rc = NGX_ERROR;

        } else {
            ngx_memcpy(out->data, buf, len);
            out->len = len;
        }

    } else {
        rc = NGX_ERROR;
    }

    yajl_gen_free(g);

    return rc;
}


static ngx_int_t
ngx_commerce_json_gen(yajl_gen g, yajl_val v, ngx_uint_t depth)
{
    size_t              i;
    const char         *s;
    yajl_gen_status     st;

    if (v == NULL || depth > 64) {
        return NGX_ERROR;
    }

    switch (v->type) {

    case yajl_t_string:
        s = YAJL_GET_STRING(v);
        st = yajl_gen_string(g, (const unsigned char *) s, ngx_strlen(s));
        break;

    case yajl_t_number:
        s = YAJL_GET_NUMBER(v);
        st = yajl_gen_number(g, s, ngx_strlen(s));
        break;

    case yajl_t_true:
        st = yajl_gen_bool(g, 1);
        break;

    case yajl_t_false:
        st = yajl_gen_bool(g, 0);
        break;

    case yajl_t_null:
        st = yajl_gen_null(g);
        break;

    case yajl_t_object:
        if (yajl_gen_map_open(g) != yajl_gen_status_ok) {
            return NGX_ERROR;
        }

        for (i = 0; i < v->u.object.len; i++) {
            s = v->u.object.keys[i];

            if (yajl_gen_string(g, (const unsigned char *) s, ngx_strlen(s))
                != yajl_gen_status_ok
                || ngx_commerce_json_gen(g, v->u.object.values[i], depth + 1)
                   != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        st = yajl_gen_map_close(g);
        break;

    case yajl_t_array:
        if (yajl_gen_array_open(g) != yajl_gen_status_ok) {
            return NGX_ERROR;
        }

        for (i = 0; i < v->u.array.len; i++) {
            if (ngx_commerce_json_gen(g, v->u.array.values[i], depth + 1)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        st = yajl_gen_array_close(g);
        break;

    default:
        return NGX_ERROR;
    }

    return (st == yajl_gen_status_ok) ? NGX_OK : NGX_ERROR;
}
