
/*
 * The catalogue as buyers see it: the product list and a product, with
 * stock as the database holds it at the time of the query.
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


static ngx_int_t
ngx_commerce_catalog_list(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    int64_t    page, size;
    ngx_str_t  v;

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

    return ngx_commerce_handler_query(r, ctx);
}


static ngx_int_t
ngx_commerce_catalog_get(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ctx->query.stmt =
        &ngx_commerce_catalog_statements[NGX_COMMERCE_STMT_PRODUCT_GET];
    ctx->query.nparams = 1;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query, ctx->id);

    return ngx_commerce_handler_query(r, ctx);
}
