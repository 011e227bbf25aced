
/*
 * The cart (issue 12 section 1): a buyer's lines, one per variant, kept
 * in Postgres (sql/functions/18_cart.sql), so a cart survives restarts
 * and follows its user across devices.  GET answers each line with the
 * variant's current price, status and stock, flags what changed since the
 * line was set (SOLD_OUT, STOPPED, PRICE_CHANGED, INSUFFICIENT_STOCK) and
 * totals the orderable lines.  The user is the token's, never the
 * request's.
 *
 * The limits (100 lines, one line per variant, quantity 1..999) are the
 * table's: the module checks the body (src/lib/cm_cart.c) and the
 * database decides the rest in the transaction of the change.
 */


#include "ngx_commerce_cart.h"
#include "cm_cart.h"


enum {
    NGX_COMMERCE_STMT_CART_GET = 0,
    NGX_COMMERCE_STMT_CART_PUT,
    NGX_COMMERCE_STMT_CART_REMOVE,
    NGX_COMMERCE_STMT_CART_CLEAR,
    NGX_COMMERCE_CART_NSTMT
};


static ngx_int_t ngx_commerce_cart_get(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_cart_put(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_cart_remove(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_cart_clear(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);


ngx_commerce_stmt_t  ngx_commerce_cart_statements[] = {

    [NGX_COMMERCE_STMT_CART_GET] =
    { "cm_cart_get", "SELECT cm_cart_get($1::bigint)", 1,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_CART_PUT] =
    { "cm_cart_put", "SELECT cm_cart_put($1::bigint, $2::bigint, $3::int)",
      3, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_CART_REMOVE] =
    { "cm_cart_remove", "SELECT cm_cart_remove($1::bigint, $2::bigint)", 2,
      0, NULL, 0 },

    [NGX_COMMERCE_STMT_CART_CLEAR] =
    { "cm_cart_clear", "SELECT cm_cart_clear($1::bigint)", 1, 0, NULL, 0 },

    [NGX_COMMERCE_CART_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


ngx_commerce_route_t  ngx_commerce_cart_routes[] = {

    NGX_COMMERCE_ROUTE("GET", "/api/v1/cart", CM_ROLE_ALL, 0, "cart",
                       ngx_commerce_cart_get, "getCart"),

    NGX_COMMERCE_ROUTE("DELETE", "/api/v1/cart", CM_ROLE_ALL, 0, "cart",
                       ngx_commerce_cart_clear, "clearCart"),

    NGX_COMMERCE_ROUTE("PUT", "/api/v1/cart/items/{variantId}", CM_ROLE_ALL,
                       0, "cart_item", ngx_commerce_cart_put,
                       "putCartItem"),

    NGX_COMMERCE_ROUTE("DELETE", "/api/v1/cart/items/{variantId}",
                       CM_ROLE_ALL, 0, "cart_item", ngx_commerce_cart_remove,
                       "removeCartItem"),

    ngx_commerce_route_end
};


static ngx_int_t
ngx_commerce_cart_get(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_cart_statements[NGX_COMMERCE_STMT_CART_GET],
               NGX_HTTP_OK, 1,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id));
}


/* PUT /cart/items/{variantId} {"quantity"}: a new line or its quantity */

static ngx_int_t
ngx_commerce_cart_put(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    char     err[CM_JSON_ERR_LEN];
    int32_t  quantity;

    if (cm_parse_cart_item(body, len, &quantity, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_invalid(r, err);
    }

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_cart_statements[NGX_COMMERCE_STMT_CART_PUT],
               NGX_HTTP_OK, 3,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id),
               ngx_commerce_pg_int(&ctx->query, quantity));
}


static ngx_int_t
ngx_commerce_cart_remove(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_cart_statements[NGX_COMMERCE_STMT_CART_REMOVE],
               NGX_HTTP_NO_CONTENT, 2,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id));
}


static ngx_int_t
ngx_commerce_cart_clear(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_cart_statements[NGX_COMMERCE_STMT_CART_CLEAR],
               NGX_HTTP_NO_CONTENT, 1,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id));
}
