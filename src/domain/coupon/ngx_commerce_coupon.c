
/*
 * Coupons: campaigns (created by a MANAGER or an ADMIN), first-come
 * issuing, a user's coupons.  The body is checked in C (cm_coupon.c)
 * before SQL; issuing is exact in Postgres on its own (cm_coupon_issue,
 * sql/functions/70_coupon.sql: a conditional UPDATE of the campaign's
 * counter and the constraints of user_coupons), whatever the concurrency.
 */


#include "ngx_commerce_coupon.h"
#include "cm_coupon.h"


enum {
    NGX_COMMERCE_STMT_COUPON_CREATE = 0,
    NGX_COMMERCE_STMT_COUPON_LIST,
    NGX_COMMERCE_STMT_COUPON_GET,
    NGX_COMMERCE_STMT_COUPON_ISSUE,
    NGX_COMMERCE_STMT_USER_COUPONS,
    NGX_COMMERCE_COUPON_NSTMT
};


static ngx_int_t ngx_commerce_coupon_create(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_coupon_list(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_coupon_get(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_coupon_issue(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_coupon_mine(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);


ngx_commerce_stmt_t  ngx_commerce_coupon_statements[] = {

    [NGX_COMMERCE_STMT_COUPON_CREATE] =
    { "cm_coupon_create",
      "SELECT cm_coupon_create($1::bigint, $2::text, $3::text, $4::bigint, "
      "$5::bigint, $6::bigint, $7::int, $8::int, $9::timestamptz, "
      "$10::timestamptz, $11::int)", 11, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_COUPON_LIST] =
    { "cm_coupon_list", "SELECT cm_coupon_list()", 0,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_COUPON_GET] =
    { "cm_coupon_get", "SELECT cm_coupon_get($1::bigint)", 1,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    /* one statement, one transaction: exact on its own */
    [NGX_COMMERCE_STMT_COUPON_ISSUE] =
    { "cm_coupon_issue", "SELECT cm_coupon_issue($1::bigint, $2::bigint)",
      2, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_USER_COUPONS] =
    { "cm_user_coupons", "SELECT cm_user_coupons($1::bigint, $2::text)", 2,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_COUPON_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


ngx_commerce_route_t  ngx_commerce_coupon_routes[] = {

    NGX_COMMERCE_ROUTE("POST", "/api/v1/admin/coupons",
                       CM_ROLE_MANAGER|CM_ROLE_ADMIN, 0, "coupon_create",
                       ngx_commerce_coupon_create, "createCoupon"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/coupons", CM_ROLE_ALL, 0,
                       "coupons", ngx_commerce_coupon_list, "listCoupons"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/coupons/{id}", CM_ROLE_ALL, 0,
                       "coupon", ngx_commerce_coupon_get, "getCoupon"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/coupons/{id}/issue", CM_ROLE_ALL, 0,
                       "coupon_issue", ngx_commerce_coupon_issue,
                       "issueCoupon"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/users/me/coupons", CM_ROLE_ALL, 0,
                       "my_coupons", ngx_commerce_coupon_mine,
                       "listMyCoupons"),

    ngx_commerce_route_end
};


static ngx_int_t
ngx_commerce_coupon_create(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    char              err[NGX_COMMERCE_ERR_LEN];
    cm_coupon_req_t  *req;

    req = ngx_palloc(r->pool, sizeof(cm_coupon_req_t));
    if (req == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (cm_parse_coupon(body, len, req, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_invalid(r, err);
    }

    ctx->success_status = NGX_HTTP_CREATED;

    ctx->query.stmt =
        &ngx_commerce_coupon_statements[NGX_COMMERCE_STMT_COUPON_CREATE];
    ctx->query.nparams = 11;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query,
                                               ctx->claims.user_id);
    ctx->query.params[1] = req->name;
    ctx->query.params[2] = (req->type == CM_COUPON_RATE) ? "RATE" : "FIXED";
    ctx->query.params[3] = ngx_commerce_pg_int(&ctx->query, req->value);
    ctx->query.params[4] = (req->max_discount == -1)
                           ? NULL
                           : ngx_commerce_pg_int(&ctx->query,
                                                 req->max_discount);
    ctx->query.params[5] = ngx_commerce_pg_int(&ctx->query,
                                               req->min_order_amount);
    ctx->query.params[6] = ngx_commerce_pg_int(&ctx->query,
                                               req->total_quantity);
    ctx->query.params[7] = ngx_commerce_pg_int(&ctx->query,
                                               req->per_user_limit);
    ctx->query.params[8] = req->starts_at;
    ctx->query.params[9] = req->ends_at;
    ctx->query.params[10] = ngx_commerce_pg_int(&ctx->query,
                                                req->valid_days);

    return ngx_commerce_handler_query(r, ctx);
}


static ngx_int_t
ngx_commerce_coupon_list(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ctx->query.stmt =
        &ngx_commerce_coupon_statements[NGX_COMMERCE_STMT_COUPON_LIST];
    ctx->query.nparams = 0;

    return ngx_commerce_handler_query(r, ctx);
}


static ngx_int_t
ngx_commerce_coupon_get(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ctx->query.stmt =
        &ngx_commerce_coupon_statements[NGX_COMMERCE_STMT_COUPON_GET];
    ctx->query.nparams = 1;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query, ctx->id);

    return ngx_commerce_handler_query(r, ctx);
}


static ngx_int_t
ngx_commerce_coupon_issue(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ctx->success_status = NGX_HTTP_CREATED;

    ctx->query.stmt =
        &ngx_commerce_coupon_statements[NGX_COMMERCE_STMT_COUPON_ISSUE];
    ctx->query.nparams = 2;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query,
                                               ctx->claims.user_id);
    ctx->query.params[1] = ngx_commerce_pg_int(&ctx->query, ctx->id);

    return ngx_commerce_handler_query(r, ctx);
}


static ngx_int_t
ngx_commerce_coupon_mine(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ngx_str_t    v;
    const char  *status;

    status = NULL;

    if (ngx_http_arg(r, (u_char *) "status", 6, &v) == NGX_OK) {
        if (v.len == 9 && ngx_strncmp(v.data, "AVAILABLE", 9) == 0) {
            status = "AVAILABLE";

        } else if (v.len == 4 && ngx_strncmp(v.data, "USED", 4) == 0) {
            status = "USED";

        } else if (v.len == 7 && ngx_strncmp(v.data, "EXPIRED", 7) == 0) {
            status = "EXPIRED";

        } else {
            return ngx_commerce_reply_invalid(r,
                                 "status must be AVAILABLE, USED or EXPIRED");
        }
    }

    ctx->query.stmt =
        &ngx_commerce_coupon_statements[NGX_COMMERCE_STMT_USER_COUPONS];
    ctx->query.nparams = 2;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query,
                                               ctx->claims.user_id);
    ctx->query.params[1] = status;

    return ngx_commerce_handler_query(r, ctx);
}
