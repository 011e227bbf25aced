
/*
 * The restock queue (issue 12 section 4): a buyer waits in line for a
 * SOLD_OUT variant; stock that comes back is held for the line in arrival
 * order, in the transaction that brought it back, and the holder is told
 * through the outbox (waitlist.held).  The line, the holds, their ledger
 * rows and the events are Postgres' (sql/functions/76_waitlist.sql); here
 * are the routes, the body check (cm_parse_cart_item: {"quantity"}, the
 * cart line's) and the job that expires holds older than
 * commerce_waitlist_hold.
 */


#include "ngx_commerce_waitlist.h"
#include "cm_cart.h"


/* products with expired holds per run of the job */
#define NGX_COMMERCE_WAITLIST_BATCH  100


enum {
    NGX_COMMERCE_STMT_WAITLIST_JOIN = 0,
    NGX_COMMERCE_STMT_WAITLIST_JOIN_IDEM,
    NGX_COMMERCE_STMT_WAITLIST_LIST,
    NGX_COMMERCE_STMT_WAITLIST_LEAVE,
    NGX_COMMERCE_STMT_WAITLIST_EXPIRE,
    NGX_COMMERCE_WAITLIST_NSTMT
};


typedef struct {
    ngx_commerce_job_t          job;
    ngx_commerce_pg_query_t     query;
    ngx_commerce_main_conf_t   *mcf;
} ngx_commerce_waitlist_expiry_t;


static ngx_int_t ngx_commerce_waitlist_join(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_waitlist_list(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_waitlist_leave(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_waitlist_expire(ngx_commerce_job_t *job);
static void ngx_commerce_waitlist_expired(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);


ngx_commerce_stmt_t  ngx_commerce_waitlist_statements[] = {

    [NGX_COMMERCE_STMT_WAITLIST_JOIN] =
    { "cm_waitlist_join",
      "SELECT cm_waitlist_join($1::bigint, $2::bigint, $3::bigint, $4::int)",
      4, 0,
      &ngx_commerce_waitlist_statements[NGX_COMMERCE_STMT_WAITLIST_JOIN_IDEM],
      0 },

    /* the entry and its answer under an Idempotency-Key, one transaction */
    [NGX_COMMERCE_STMT_WAITLIST_JOIN_IDEM] =
    { "cm_waitlist_join_idem",
      "SELECT cm_idem_done(h.held, $5::bigint, $6::text, $7::int, "
      "cm_waitlist_join($1::bigint, $2::bigint, $3::bigint, $4::int)) "
      "FROM cm_idem_hold($5::bigint, $6::text) AS h(held)", 7, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_WAITLIST_LIST] =
    { "cm_waitlist_list", "SELECT cm_waitlist_list($1::bigint, $2::int)", 2,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_WAITLIST_LEAVE] =
    { "cm_waitlist_leave", "SELECT cm_waitlist_leave($1::bigint, $2::bigint)",
      2, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_WAITLIST_EXPIRE] =
    { "cm_waitlist_expire", "SELECT cm_waitlist_expire($1::int, $2::int)", 2,
      0, NULL, 0 },

    [NGX_COMMERCE_WAITLIST_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


ngx_commerce_route_t  ngx_commerce_waitlist_routes[] = {

    NGX_COMMERCE_ROUTE("POST",
                       "/api/v1/products/{id}/variants/{variantId}/waitlist",
                       CM_ROLE_ALL, NGX_COMMERCE_ROUTE_IDEM, "waitlist_join",
                       ngx_commerce_waitlist_join, "joinWaitlist"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/users/me/waitlist", CM_ROLE_ALL, 0,
                       "waitlist", ngx_commerce_waitlist_list,
                       "getMyWaitlist"),

    NGX_COMMERCE_ROUTE("DELETE", "/api/v1/users/me/waitlist/{id}",
                       CM_ROLE_ALL, 0, "waitlist_entry",
                       ngx_commerce_waitlist_leave, "leaveWaitlist"),

    ngx_commerce_route_end
};


/* the expiry of holds, a job of worker 0 */

ngx_int_t
ngx_commerce_waitlist_init(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    ngx_commerce_waitlist_expiry_t  *ex;

    ex = ngx_pcalloc(cf->pool, sizeof(ngx_commerce_waitlist_expiry_t));
    if (ex == NULL) {
        return NGX_ERROR;
    }

    ex->mcf = mcf;
    ex->job.name = "waitlist expiry";
    ex->job.interval = mcf->waitlist_interval;
    /* give the pool a moment to connect before the first run */
    ex->job.first = ngx_min(mcf->waitlist_interval, 1000);
    ex->job.run = ngx_commerce_waitlist_expire;
    ex->job.data = ex;

    return ngx_commerce_job_add(cf, &ex->job);
}


/* POST /products/{id}/variants/{variantId}/waitlist {"quantity"} */

static ngx_int_t
ngx_commerce_waitlist_join(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    char     err[CM_JSON_ERR_LEN];
    int32_t  quantity;

    if (cm_parse_cart_item(body, len, &quantity, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_invalid(r, err);
    }

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_waitlist_statements[
                                            NGX_COMMERCE_STMT_WAITLIST_JOIN],
               NGX_HTTP_CREATED, 4,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id),
               ngx_commerce_pg_int(&ctx->query, ctx->id2),
               ngx_commerce_pg_int(&ctx->query, quantity));
}


static ngx_int_t
ngx_commerce_waitlist_list(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_commerce_conf_main();

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_waitlist_statements[
                                            NGX_COMMERCE_STMT_WAITLIST_LIST],
               NGX_HTTP_OK, 2,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, mcf->waitlist_hold));
}


static ngx_int_t
ngx_commerce_waitlist_leave(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_waitlist_statements[
                                           NGX_COMMERCE_STMT_WAITLIST_LEAVE],
               NGX_HTTP_NO_CONTENT, 2,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id));
}


/*
 * Holds older than commerce_waitlist_hold expire and pass to the next in
 * line (cm_waitlist_expire, which locks each product with SKIP LOCKED):
 * any number of instances may run it against one database.
 */

static ngx_int_t
ngx_commerce_waitlist_expire(ngx_commerce_job_t *job)
{
    ngx_commerce_waitlist_expiry_t  *ex = job->data;

    ngx_commerce_pg_reset(&ex->query);
    ex->query.stmt =
        &ngx_commerce_waitlist_statements[NGX_COMMERCE_STMT_WAITLIST_EXPIRE];
    ex->query.nparams = 2;
    ex->query.params[0] = ngx_commerce_pg_int(&ex->query,
                                              ex->mcf->waitlist_hold);
    ex->query.params[1] = ngx_commerce_pg_int(&ex->query,
                                              NGX_COMMERCE_WAITLIST_BATCH);
    ex->query.log = job->log;
    ex->query.data = ex;
    ex->query.handler = ngx_commerce_waitlist_expired;

    return ngx_commerce_pg_submit(ex->mcf->pool, &ex->query);
}


static void
ngx_commerce_waitlist_expired(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    int64_t                          n;
    ngx_commerce_waitlist_expiry_t  *ex = q->data;

    n = 0;

    if (rc == NGX_OK && ngx_commerce_pg_int_result(res, &n) == NGX_OK) {
        if (n > 0) {
            ngx_log_error(NGX_LOG_NOTICE, q->log, 0,
                          "commerce: waitlist expiry passed on %L hold(s) "
                          "older than %T s", n, ex->mcf->waitlist_hold);
        }

    } else if (rc == NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "commerce: waitlist expiry failed: %s",
                      PQresultErrorMessage(res));
    }

    ngx_commerce_job_done(&ex->job, 0);
}
