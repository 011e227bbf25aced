
/*
 * The settlement domain's routes and statements: the sellers' statements
 * (the store's owner, its managers, an ADMIN: the access rule of the
 * seller order routes, decided by the database), the admin's run of the
 * settlement for a given time, the dead payouts and their replay, and the
 * payout API's callback: only a hint that makes the job pull the payout's
 * status at once, whatever the body says.
 */


#include "ngx_commerce_settlement.h"
#include "ngx_commerce_seller.h"
#include "cm_account.h"


/* "2026-12-07T00:00:00.000+09:00" and a little room */
#define NGX_COMMERCE_SETTLEMENT_TIME_MAX  40
#define NGX_COMMERCE_SETTLEMENT_KEY_MAX   40


static ngx_int_t ngx_commerce_settlement_list(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_settlement_get(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_settlement_run(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_settlement_dead(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_settlement_replay(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_settlement_callback(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);


ngx_commerce_stmt_t  ngx_commerce_settlement_statements[] = {

    /* the weekly job: the week of now() */
    [NGX_COMMERCE_STMT_SETTLEMENT_RUN] =
    { "cm_settlement_run",
      "SELECT cm_settlement_run(now(), $1::int, $2::int, $3::bigint)", 3,
      0, NULL, 0 },

    /* the admin's run for a given time (checked by the function) */
    [NGX_COMMERCE_STMT_SETTLEMENT_RUN_AT] =
    { "cm_settlement_run_at",
      "SELECT cm_settlement_run_at($1::text, $2::int, $3::int, $4::bigint)",
      4, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_SETTLEMENT_LIST] =
    { "cm_settlement_list",
      "SELECT cm_settlement_list($1::bigint, $2::bigint, $3::int, $4::int)",
      4, NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_SETTLEMENT_GET] =
    { "cm_settlement_get", "SELECT cm_settlement_get($1::bigint, $2::bigint)",
      2, NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_PAYOUT_CLAIM] =
    { "cm_payout_claim", "SELECT cm_payout_claim($1::int, $2::int)", 2, 0,
      NULL, 0 },

    /* guarded by the attempt: a second run of it changes nothing */
    [NGX_COMMERCE_STMT_PAYOUT_RESULT] =
    { "cm_payout_result",
      "SELECT cm_payout_result($1::bigint, $2::int, $3::text, $4::text, "
      "$5::int, $6::int)", 6, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_PAYOUT_CALLBACK] =
    { "cm_payout_callback", "SELECT cm_payout_callback($1::text)", 1,
      NGX_COMMERCE_STMT_RESEND, NULL, 0 },

    [NGX_COMMERCE_STMT_PAYOUT_DEAD] =
    { "cm_payout_dead", "SELECT cm_payout_dead($1::int, $2::int)", 2,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_PAYOUT_REPLAY] =
    { "cm_payout_replay", "SELECT cm_payout_replay($1::bigint, $2::bigint)",
      2, 0, NULL, 0 },

    [NGX_COMMERCE_SETTLEMENT_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


ngx_commerce_route_t  ngx_commerce_settlement_routes[] = {

    NGX_COMMERCE_ROUTE("GET", "/api/v1/seller/settlements",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_settlements",
                       ngx_commerce_settlement_list, "listSettlements"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/seller/settlements/{id}",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_settlement",
                       ngx_commerce_settlement_get, "getSettlement"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/admin/settlements/run",
                       CM_ROLE_ADMIN, 0, "admin_settlements_run",
                       ngx_commerce_settlement_run, "runSettlement"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/admin/settlements/payouts/dead",
                       CM_ROLE_ADMIN, 0, "admin_payouts_dead",
                       ngx_commerce_settlement_dead, "listDeadPayouts"),

    NGX_COMMERCE_ROUTE("POST",
                       "/api/v1/admin/settlements/payouts/{id}/replay",
                       CM_ROLE_ADMIN, 0, "admin_payouts_replay",
                       ngx_commerce_settlement_replay, "replayPayout"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/settlements/payouts/callback",
                       NGX_COMMERCE_PUBLIC, 0, "payout_callback",
                       ngx_commerce_settlement_callback,
                       "payoutCallback"),

    ngx_commerce_route_end
};


/* GET /seller/settlements?storeId=&page=&size=: newest week first */

static ngx_int_t
ngx_commerce_settlement_list(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    int64_t      store, page, size;
    const char  *msg;

    msg = ngx_commerce_handler_page(r, &store, &page, &size);
    if (msg != NULL) {
        return ngx_commerce_reply_invalid(r, msg);
    }

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_settlement_statements
                   [NGX_COMMERCE_STMT_SETTLEMENT_LIST],
               NGX_HTTP_OK, 4,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               store ? ngx_commerce_pg_int(&ctx->query, store) : NULL,
               ngx_commerce_pg_int(&ctx->query, page),
               ngx_commerce_pg_int(&ctx->query, size));
}


/* GET /seller/settlements/{id}: the statement */

static ngx_int_t
ngx_commerce_settlement_get(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_settlement_statements
                   [NGX_COMMERCE_STMT_SETTLEMENT_GET],
               NGX_HTTP_OK, 2,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id));
}


/* POST /admin/settlements/run {"asOf":"2026-12-07T00:00:00+09:00"} */

static ngx_int_t
ngx_commerce_settlement_run(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    char                             err[CM_JSON_ERR_LEN], *as_of;
    cm_field_t                       f;
    ngx_commerce_settlement_conf_t  *scf;

    scf = ngx_commerce_settlement_conf_get(ngx_commerce_conf_main());

    /* the pool's: the statement may wait in the queue for a connection */
    as_of = ngx_pnalloc(r->pool, NGX_COMMERCE_SETTLEMENT_TIME_MAX + 1);
    if (as_of == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&f, sizeof(f));
    f.name = "asOf";
    f.max = NGX_COMMERCE_SETTLEMENT_TIME_MAX;
    f.required = 1;
    f.value = as_of;

    if (cm_parse_fields(body, len, &f, 1, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_invalid(r, err);
    }

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_settlement_statements
                   [NGX_COMMERCE_STMT_SETTLEMENT_RUN_AT],
               NGX_HTTP_OK, 4, as_of,
               ngx_commerce_pg_int(&ctx->query, scf->hold),
               ngx_commerce_pg_int(&ctx->query, scf->fee_bp),
               ngx_commerce_pg_int(&ctx->query, scf->minimum));
}


/* GET /admin/settlements/payouts/dead?page=&size= */

static ngx_int_t
ngx_commerce_settlement_dead(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    int64_t      store, page, size;
    const char  *msg;
    ngx_str_t    v;

    if (ngx_http_arg(r, (u_char *) "storeId", 7, &v) == NGX_OK) {
        return ngx_commerce_reply_invalid(r, "storeId is not a parameter "
                                             "of this list");
    }

    msg = ngx_commerce_handler_page(r, &store, &page, &size);
    if (msg != NULL) {
        return ngx_commerce_reply_invalid(r, msg);
    }

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_settlement_statements
                   [NGX_COMMERCE_STMT_PAYOUT_DEAD],
               NGX_HTTP_OK, 2,
               ngx_commerce_pg_int(&ctx->query, page),
               ngx_commerce_pg_int(&ctx->query, size));
}


/* POST /admin/settlements/payouts/{id}/replay, body {} */

static ngx_int_t
ngx_commerce_settlement_replay(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    char  err[CM_JSON_ERR_LEN];

    if (cm_parse_fields(body, len, NULL, 0, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_invalid(r, err);
    }

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_settlement_statements
                   [NGX_COMMERCE_STMT_PAYOUT_REPLAY],
               NGX_HTTP_OK, 2,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id));
}


/*
 * POST /settlements/payouts/callback {"payoutId":"po-<id>-<attempt>",..}:
 * the rest of the body is not read; the job asks the payout API.
 */

static ngx_int_t
ngx_commerce_settlement_callback(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    char        err[CM_JSON_ERR_LEN], *key;
    cm_field_t  f;

    key = ngx_pnalloc(r->pool, NGX_COMMERCE_SETTLEMENT_KEY_MAX + 1);
    if (key == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&f, sizeof(f));
    f.name = "payoutId";
    f.max = NGX_COMMERCE_SETTLEMENT_KEY_MAX;
    f.required = 1;
    f.value = key;

    if (cm_parse_fields(body, len, &f, 1, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_invalid(r, err);
    }

    ngx_commerce_log(NGX_LOG_INFO, r, ctx,
                     "payout callback for %s: pulling its status", key);

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_settlement_statements
                   [NGX_COMMERCE_STMT_PAYOUT_CALLBACK],
               NGX_HTTP_OK, 1, key);
}
