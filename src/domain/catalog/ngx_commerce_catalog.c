
/*
 * The catalogue as buyers see it: the product list and a product, with
 * stock as the database holds it at the time of the query, or, with
 * commerce_cache, as of the last change the instance heard of: every
 * committed change of a product is NOTIFYed by Postgres
 * (sql/functions/10_catalog.sql) and heard by worker 0's listener, which
 * drops that product's entry and every list page (README.md, "Product
 * cache").
 */


#include "ngx_commerce_catalog.h"


#define NGX_COMMERCE_PAGE_MAX      10000000
#define NGX_COMMERCE_SIZE_DEFAULT  20
#define NGX_COMMERCE_SIZE_MAX      100


enum {
    NGX_COMMERCE_STMT_PRODUCT_GET = 0,
    NGX_COMMERCE_STMT_PRODUCT_LIST,
    NGX_COMMERCE_CATALOG_NSTMT
};


static ngx_int_t ngx_commerce_catalog_list(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_catalog_get(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static void ngx_commerce_catalog_notify(ngx_str_t *payload);
static void ngx_commerce_catalog_listening(ngx_commerce_listen_e state);


ngx_commerce_stmt_t  ngx_commerce_catalog_statements[] = {

    [NGX_COMMERCE_STMT_PRODUCT_GET] =
    { "cm_product_get", "SELECT cm_product_get($1::bigint)", 1,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_PRODUCT_LIST] =
    { "cm_product_list", "SELECT cm_product_list($1::int, $2::int)", 2,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_CATALOG_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


ngx_commerce_route_t  ngx_commerce_catalog_routes[] = {

    NGX_COMMERCE_ROUTE("GET", "/api/v1/products", CM_ROLE_ALL, 0,
                       "products", ngx_commerce_catalog_list,
                       "listProducts"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/products/{id}", CM_ROLE_ALL, 0,
                       "product", ngx_commerce_catalog_get, "getProduct"),

    ngx_commerce_route_end
};


/* with commerce_cache: hear every product change */

ngx_int_t
ngx_commerce_catalog_init(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    if (mcf->cache == NULL) {
        return NGX_OK;
    }

    return ngx_commerce_pg_listen(cf, "commerce_product",
                                  ngx_commerce_catalog_notify,
                                  ngx_commerce_catalog_listening);
}


/* a product changed (its id, from the trigger): its entry and the lists */

static void
ngx_commerce_catalog_notify(ngx_str_t *payload)
{
    int64_t                    id;
    u_char                     buf[NGX_INT64_LEN + 2];
    ngx_str_t                  key;

    if (cm_parse_int64(payload->data, payload->len, 1, INT64_MAX, &id) == 0) {
        key.data = buf;
        key.len = ngx_sprintf(buf, "p%L", id) - buf;
        ngx_commerce_cached_invalidate(&key);
    }

    ngx_commerce_cached_invalidate_class(NGX_COMMERCE_CACHE_LIST);
}


static void
ngx_commerce_catalog_listening(ngx_commerce_listen_e state)
{
    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "commerce: product cache: the listener is %s",
                  state == NGX_COMMERCE_LISTEN_UP ? "up, cache flushed"
                  : state == NGX_COMMERCE_LISTEN_DOWN ? "down, cache bypassed"
                  : "starting, cache bypassed");

    ngx_commerce_cached_channel(state);
}


static ngx_int_t
ngx_commerce_catalog_list(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    int64_t    page, size;
    u_char    *p;
    ngx_str_t  v, key;

    page = 0;
    size = NGX_COMMERCE_SIZE_DEFAULT;

    if (ngx_http_arg(r, (u_char *) "page", 4, &v) == NGX_OK
        && cm_parse_int64(v.data, v.len, 0, NGX_COMMERCE_PAGE_MAX, &page)
           != 0)
    {
        return ngx_commerce_reply_invalid(r, "page must be an integer "
                                             "between 0 and 10000000");
    }

    if (ngx_http_arg(r, (u_char *) "size", 4, &v) == NGX_OK
        && cm_parse_int64(v.data, v.len, 1, NGX_COMMERCE_SIZE_MAX, &size)
           != 0)
    {
        return ngx_commerce_reply_invalid(r, "size must be an integer "
                                             "between 1 and 100");
    }

    ctx->query.stmt =
        &ngx_commerce_catalog_statements[NGX_COMMERCE_STMT_PRODUCT_LIST];
    ctx->query.nparams = 2;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query, page);
    ctx->query.params[1] = ngx_commerce_pg_int(&ctx->query, size);

    p = ngx_pnalloc(r->pool, 2 * NGX_INT64_LEN + 2);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    key.data = p;
    key.len = ngx_sprintf(p, "l%L:%L", page, size) - p;

    return ngx_commerce_cached(r, ctx, NGX_COMMERCE_CACHE_LIST, &key);
}


static ngx_int_t
ngx_commerce_catalog_get(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    u_char     *p;
    ngx_str_t   key;

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    key.data = p;
    key.len = ngx_sprintf(p, "p%L", ctx->id) - p;

    ctx->query.stmt =
        &ngx_commerce_catalog_statements[NGX_COMMERCE_STMT_PRODUCT_GET];
    ctx->query.nparams = 1;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query, ctx->id);

    return ngx_commerce_cached(r, ctx, NGX_COMMERCE_CACHE_PRODUCT, &key);
}
