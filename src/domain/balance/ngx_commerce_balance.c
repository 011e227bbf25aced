
/*
 * The buyer's balance: read it, charge it.  The cap (commerce_balance_max)
 * and the charge itself are one statement, so concurrent charges can
 * never pass the cap together.
 */


#include "ngx_commerce_balance.h"


enum {
    NGX_COMMERCE_STMT_BALANCE_GET = 0,
    NGX_COMMERCE_STMT_BALANCE_CHARGE,
    NGX_COMMERCE_STMT_BALANCE_CHARGE_IDEM,
    NGX_COMMERCE_BALANCE_NSTMT
};


static ngx_int_t ngx_commerce_balance_get(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_balance_charge(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);


ngx_commerce_stmt_t  ngx_commerce_balance_statements[] = {

    [NGX_COMMERCE_STMT_BALANCE_GET] =
    { "cm_balance_get", "SELECT cm_balance_get($1::bigint)", 1,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_BALANCE_CHARGE] =
    { "cm_balance_charge",
      "SELECT cm_balance_charge($1::bigint, $2::bigint, $3::bigint)", 3, 0,
      &ngx_commerce_balance_statements[NGX_COMMERCE_STMT_BALANCE_CHARGE_IDEM],
      0 },

    /* the charge and its answer under an Idempotency-Key, one transaction */
    [NGX_COMMERCE_STMT_BALANCE_CHARGE_IDEM] =
    { "cm_balance_charge_idem",
      "SELECT cm_idem_done(h.held, $4::bigint, $5::text, $6::int, "
      "cm_balance_charge($1::bigint, $2::bigint, $3::bigint)) "
      "FROM cm_idem_hold($4::bigint, $5::text) AS h(held)", 6, 0, NULL, 0 },

    [NGX_COMMERCE_BALANCE_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


ngx_commerce_route_t  ngx_commerce_balance_routes[] = {

    NGX_COMMERCE_ROUTE("GET", "/api/v1/balance", CM_ROLE_ALL, 0,
                       "balance", ngx_commerce_balance_get, "getBalance"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/balance/charge", CM_ROLE_ALL,
                       NGX_COMMERCE_ROUTE_IDEM, "charge",
                       ngx_commerce_balance_charge, "chargeBalance"),

    ngx_commerce_route_end
};


static ngx_int_t
ngx_commerce_balance_get(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ctx->query.stmt =
        &ngx_commerce_balance_statements[NGX_COMMERCE_STMT_BALANCE_GET];
    ctx->query.nparams = 1;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query,
                                               ctx->claims.user_id);

    return ngx_commerce_handler_query(r, ctx);
}


static ngx_int_t
ngx_commerce_balance_charge(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    char                       err[NGX_COMMERCE_ERR_LEN];
    int64_t                    amount;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (cm_parse_charge(body, len, mcf->charge_max, &amount, err, sizeof(err))
        != 0)
    {
        return ngx_commerce_reply_invalid(r, err);
    }

    ctx->query.stmt =
        &ngx_commerce_balance_statements[NGX_COMMERCE_STMT_BALANCE_CHARGE];
    ctx->query.nparams = 3;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query,
                                               ctx->claims.user_id);
    ctx->query.params[1] = ngx_commerce_pg_int(&ctx->query, amount);
    ctx->query.params[2] = ngx_commerce_pg_int(&ctx->query, mcf->balance_max);

    return ngx_commerce_handler_query(r, ctx);
}
