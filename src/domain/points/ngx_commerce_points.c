
/*
 * Points (issue 12 section 3): a buyer reads its points and their ledger;
 * an ADMIN grants or takes back points, with a reason, audited.  The body
 * is checked here (src/lib/cm_points.c); the move, its ledger row and the
 * rule that points never go below 0 are one statement in Postgres
 * (sql/functions/25_points.sql).  Orders spend and give back points in
 * their own transactions.
 */


#include "ngx_commerce_points.h"
#include "cm_points.h"


enum {
    NGX_COMMERCE_STMT_POINTS_GET = 0,
    NGX_COMMERCE_STMT_POINTS_GRANT,
    NGX_COMMERCE_STMT_POINTS_GRANT_IDEM,
    NGX_COMMERCE_POINTS_NSTMT
};


static ngx_int_t ngx_commerce_points_get(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_points_grant(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);


ngx_commerce_stmt_t  ngx_commerce_points_statements[] = {

    [NGX_COMMERCE_STMT_POINTS_GET] =
    { "cm_points_get", "SELECT cm_points_get($1::bigint, $2::int)", 2,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_POINTS_GRANT] =
    { "cm_points_grant",
      "SELECT cm_points_grant($1::bigint, $2::bigint, $3::bigint, $4::text, "
      "$5::text)", 5, 0,
      &ngx_commerce_points_statements[NGX_COMMERCE_STMT_POINTS_GRANT_IDEM],
      0 },

    /* the grant and its answer under an Idempotency-Key, one transaction */
    [NGX_COMMERCE_STMT_POINTS_GRANT_IDEM] =
    { "cm_points_grant_idem",
      "SELECT cm_idem_done(h.held, $6::bigint, $7::text, $8::int, "
      "cm_points_grant($1::bigint, $2::bigint, $3::bigint, $4::text, "
      "$5::text)) FROM cm_idem_hold($6::bigint, $7::text) AS h(held)", 8, 0,
      NULL, 0 },

    [NGX_COMMERCE_POINTS_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


ngx_commerce_route_t  ngx_commerce_points_routes[] = {

    NGX_COMMERCE_ROUTE("GET", "/api/v1/users/me/points", CM_ROLE_ALL, 0,
                       "points", ngx_commerce_points_get, "getMyPoints"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/admin/users/{id}/points",
                       CM_ROLE_ADMIN, NGX_COMMERCE_ROUTE_IDEM,
                       "admin_points", ngx_commerce_points_grant,
                       "grantPoints"),

    ngx_commerce_route_end
};


/* GET /users/me/points?limit=50: the points and the last movements */

static ngx_int_t
ngx_commerce_points_get(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    int64_t    limit;
    ngx_str_t  v;

    limit = 50;

    if (ngx_http_arg(r, (u_char *) "limit", 5, &v) == NGX_OK
        && cm_parse_int64(v.data, v.len, 1, 200, &limit) != 0)
    {
        return ngx_commerce_reply_invalid(r, "limit must be an integer"
                                             " between 1 and 200");
    }

    ctx->query.stmt =
        &ngx_commerce_points_statements[NGX_COMMERCE_STMT_POINTS_GET];
    ctx->query.nparams = 2;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query,
                                               ctx->claims.user_id);
    ctx->query.params[1] = ngx_commerce_pg_int(&ctx->query, limit);

    return ngx_commerce_handler_query(r, ctx);
}


/* POST /admin/users/{id}/points {"amount","reason"} */

static ngx_int_t
ngx_commerce_points_grant(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    char               err[CM_JSON_ERR_LEN];
    ngx_str_t          reason;
    cm_points_grant_t  g;

    if (cm_parse_points_grant(body, len, &g, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_invalid(r, err);
    }

    reason.data = (u_char *) g.reason;
    reason.len = g.reason_len;

    ctx->query.stmt =
        &ngx_commerce_points_statements[NGX_COMMERCE_STMT_POINTS_GRANT];
    ctx->query.nparams = 5;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query,
                                               ctx->claims.user_id);
    ctx->query.params[1] = ngx_commerce_pg_int(&ctx->query, ctx->id);
    ctx->query.params[2] = ngx_commerce_pg_int(&ctx->query, g.amount);
    ctx->query.params[3] = ngx_commerce_json_cstr(r->pool, &reason);
    ctx->query.params[4] = ngx_commerce_json_cstr(r->pool,
                                                  &r->connection->addr_text);

    if (ctx->query.params[3] == NULL || ctx->query.params[4] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_handler_query(r, ctx);
}
