
/*
 * Sales: the best sellers of the last days.  The database keeps the units
 * and revenue of paid orders per product and calendar day in Asia/Seoul
 * (sql/functions/80_sales.sql), in the transaction of each payment and of
 * each order leaving PAID; a read sums at most 30 days of it.
 */


#include "ngx_commerce_sales.h"


#define NGX_COMMERCE_DAYS_DEFAULT   3
#define NGX_COMMERCE_DAYS_MAX       30
#define NGX_COMMERCE_LIMIT_DEFAULT  5
#define NGX_COMMERCE_LIMIT_MAX      50


enum {
    NGX_COMMERCE_STMT_BEST_SELLERS = 0,
    NGX_COMMERCE_SALES_NSTMT
};


/* what a best-sellers answer depends on, besides the day in Asia/Seoul */

typedef struct {
    int64_t  days;
    int64_t  limit;
} ngx_commerce_sales_best_t;


static ngx_int_t ngx_commerce_sales_best(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static const char *ngx_commerce_sales_best_args(ngx_http_request_t *r,
    ngx_commerce_sales_best_t *q);
static ngx_int_t ngx_commerce_sales_best_arg(ngx_http_request_t *r,
    const char *name, int64_t max, int64_t *out);
static ngx_int_t ngx_commerce_sales_best_query(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, ngx_commerce_sales_best_t *q);


ngx_commerce_stmt_t  ngx_commerce_sales_statements[] = {

    [NGX_COMMERCE_STMT_BEST_SELLERS] =
    { "cm_best_sellers", "SELECT cm_best_sellers($1::int, $2::int)", 2,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_SALES_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


/* a literal segment wins over {id}: this row beside /products/{id} */

ngx_commerce_route_t  ngx_commerce_sales_routes[] = {

    NGX_COMMERCE_ROUTE("GET", "/api/v1/products/best-sellers", CM_ROLE_ALL,
                       0, "best_sellers", ngx_commerce_sales_best,
                       "getBestSellers"),

    ngx_commerce_route_end
};


/*
 * GET /api/v1/products/best-sellers?days=3&limit=5.  The answer is a
 * function of (days, limit) and of the day in Asia/Seoul: the answer
 * cache keys on those (ngx_commerce_sales_best_query).
 */

static ngx_int_t
ngx_commerce_sales_best(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    const char                 *invalid;
    ngx_commerce_sales_best_t   q;

    invalid = ngx_commerce_sales_best_args(r, &q);
    if (invalid != NULL) {
        return ngx_commerce_reply_invalid(r, invalid);
    }

    return ngx_commerce_sales_best_query(r, ctx, &q);
}


/*
 * days 1..30 (3), limit 1..50 (5), each at most once; NULL, or the
 * message of the 400
 */

static const char *
ngx_commerce_sales_best_args(ngx_http_request_t *r,
    ngx_commerce_sales_best_t *q)
{
    q->days = NGX_COMMERCE_DAYS_DEFAULT;
    q->limit = NGX_COMMERCE_LIMIT_DEFAULT;

    if (ngx_commerce_sales_best_arg(r, "days", NGX_COMMERCE_DAYS_MAX,
                                    &q->days)
        != NGX_OK)
    {
        return "days must be an integer between 1 and 30, given at most "
               "once";
    }

    if (ngx_commerce_sales_best_arg(r, "limit", NGX_COMMERCE_LIMIT_MAX,
                                    &q->limit)
        != NGX_OK)
    {
        return "limit must be an integer between 1 and 50, given at most "
               "once";
    }

    return NULL;
}


/* NGX_OK: absent (*out kept) or valid; NGX_ERROR: repeated or bad */

static ngx_int_t
ngx_commerce_sales_best_arg(ngx_http_request_t *r, const char *name,
    int64_t max, int64_t *out)
{
    ngx_int_t  rc;
    ngx_str_t  v;

    rc = ngx_commerce_handler_arg(r, name, &v);

    if (rc == NGX_DECLINED) {
        return NGX_OK;
    }

    if (rc != NGX_OK || cm_parse_int64(v.data, v.len, 1, max, out) != 0) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Through the cache (class STATS: stats_ttl, served stale while one
 * request refills it), keyed by the arguments and today in Asia/Seoul
 * (UTC+9, no daylight saving), so a new day never gets yesterday's.
 */

static ngx_int_t
ngx_commerce_sales_best_query(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    ngx_commerce_sales_best_t *q)
{
    u_char     *p;
    ngx_str_t   key;

    ctx->query.stmt =
        &ngx_commerce_sales_statements[NGX_COMMERCE_STMT_BEST_SELLERS];
    ctx->query.nparams = 2;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query, q->days);
    ctx->query.params[1] = ngx_commerce_pg_int(&ctx->query, q->limit);

    p = ngx_pnalloc(r->pool, 3 * NGX_INT64_LEN + 3);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    key.data = p;
    key.len = ngx_sprintf(p, "s%L:%L:%T", q->days, q->limit,
                          (ngx_time() + 9 * 3600) / 86400)
              - p;

    return ngx_commerce_cached(r, ctx, NGX_COMMERCE_CACHE_STATS, &key);
}


/* with commerce_cache: the answers of the STATS class live stats_ttl */

ngx_int_t
ngx_commerce_sales_init(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    if (mcf->cache != NULL) {
        mcf->cache->class_ttl[NGX_COMMERCE_CACHE_STATS] =
                                                        mcf->cache->stats_ttl;
        mcf->cache->stale[NGX_COMMERCE_CACHE_STATS] = 1;
    }

    return NGX_OK;
}
