
/*
 * Coupons: campaigns (created by a MANAGER or an ADMIN), first-come
 * issuing, a user's coupons.  The body is checked in C (cm_coupon.c)
 * before SQL; issuing is exact in Postgres on its own (cm_coupon_issue,
 * sql/functions/70_coupon.sql: a conditional UPDATE of the campaign's
 * counter and the constraints of user_coupons), whatever the concurrency.
 *
 * With commerce_redis, a Lua script is the gate in front of issuing (Redis
 * the gate, Postgres the truth, see README.md): in one step it decides on
 * the campaign's remaining count and the caller's count, keys
 * coupon:{ID}:remaining and coupon:{ID}:users (hash-tagged by campaign,
 * so Redis Cluster keeps them in one slot).  A pass goes on to
 * cm_coupon_issue, which decides; a refused write gives the gate back.  A
 * missing key is warmed from Postgres (cm_coupon_get) with a TTL, so a
 * gate that drifted is read again; a new campaign's gate is warmed when it
 * is created, and a job of worker 0 warms the missing gates of every
 * campaign in its window at start and then every TTL (cm_coupon_gates), so
 * a burst seldom meets a cold gate.  Redis down, slow or failing: the
 * issue goes to Postgres without the gate, exact anyway.
 */


#include "ngx_commerce_coupon.h"
#include "ngx_commerce_redis.h"
#include "cm_coupon.h"


/* a warmed gate lives this long, then is read again from Postgres */
#define NGX_COMMERCE_COUPON_GATE_TTL     60000
/* the warm job: campaigns per run, and the retry while Redis is not up */
#define NGX_COMMERCE_COUPON_GATES_MAX    1000
#define NGX_COMMERCE_COUPON_WARM_RETRY   1000


enum {
    NGX_COMMERCE_STMT_COUPON_CREATE = 0,
    NGX_COMMERCE_STMT_COUPON_LIST,
    NGX_COMMERCE_STMT_COUPON_GET,
    NGX_COMMERCE_STMT_COUPON_ISSUE,
    NGX_COMMERCE_STMT_COUPON_ISSUE_IDEM,
    NGX_COMMERCE_STMT_USER_COUPONS,
    NGX_COMMERCE_STMT_COUPON_GATES,
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
static ngx_int_t ngx_commerce_coupon_gate(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, int64_t remaining, int64_t limit);
static ngx_commerce_redis_op_t *ngx_commerce_coupon_gate_eval(
    ngx_pool_t *pool, int64_t id, int64_t user, int64_t remaining,
    int64_t limit, ngx_commerce_redis_handler_pt handler, void *data);
static void ngx_commerce_coupon_created(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static ngx_int_t ngx_commerce_coupon_warm_all(ngx_commerce_job_t *job);
static void ngx_commerce_coupon_gates(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static void ngx_commerce_coupon_gated(void *data,
    ngx_commerce_redis_rc_e rc, redisReply *reply);
static ngx_int_t ngx_commerce_coupon_warm(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx);
static void ngx_commerce_coupon_warmed(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static ngx_int_t ngx_commerce_coupon_write(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, ngx_uint_t gated);
static void ngx_commerce_coupon_written(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static void ngx_commerce_coupon_give_back(ngx_commerce_ctx_t *ctx,
    const char *mode);
static void ngx_commerce_coupon_unsettled(void *data);
static ngx_array_t *ngx_commerce_coupon_keys(ngx_pool_t *pool, int64_t id);
static ngx_int_t ngx_commerce_coupon_arg(ngx_array_t *a, const char *s);
static void ngx_commerce_coupon_finish(ngx_http_request_t *r, ngx_int_t rc);
static void ngx_commerce_coupon_ignore(void *data,
    ngx_commerce_redis_rc_e rc, redisReply *reply);


/*
 * A pass of the gate whose write is under way (ctx->domain): settled by the
 * write's outcome, or given back when the request ends before it (its
 * client left while the write waited for a connection, or the write was
 * never sent).
 */
typedef struct {
    ngx_commerce_ctx_t         *ctx;
    unsigned                    settled:1;
} ngx_commerce_coupon_pass_t;


/* the warm job of worker 0 */
typedef struct {
    ngx_commerce_job_t          job;
    ngx_commerce_pg_query_t     query;
    ngx_commerce_main_conf_t   *mcf;
} ngx_commerce_coupon_warmer_t;


/* the state of a gated issue, beside the request's ctx */
typedef struct {
    ngx_commerce_pg_query_t   query;       /* the warming read */
    ngx_commerce_ctx_t       *ctx;
    unsigned                  warmed:1;
} ngx_commerce_coupon_gate_t;


/*
 * KEYS[1] remaining, KEYS[2] the users hash ("limit" and a count per
 * user); ARGV[1] the user ("": warm only), ARGV[2] remaining to warm with
 * ("": none), ARGV[3] the per-user limit, ARGV[4] the TTL in ms.
 * -> 1 pass (taken), 0 sold out, -2 the user's limit, -1 warm first,
 *    2 warmed (or warm already), nothing taken
 */
static ngx_commerce_redis_script_t  ngx_commerce_coupon_gate_script = {
    "coupon_gate",
    "local rem = redis.call('GET', KEYS[1])\n"
    "local limit = redis.call('HGET', KEYS[2], 'limit')\n"
    "if not rem or not limit then\n"
    "  if ARGV[2] == '' then return -1 end\n"
    "  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  redis.call('HSET', KEYS[2], 'limit', ARGV[3])\n"
    "  redis.call('PEXPIRE', KEYS[2], ARGV[4])\n"
    "  rem = ARGV[2]\n"
    "  limit = ARGV[3]\n"
    "end\n"
    "if ARGV[1] == '' then return 2 end\n"
    "if tonumber(rem) <= 0 then return 0 end\n"
    "if tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')\n"
    "   >= tonumber(limit) then return -2 end\n"
    "redis.call('DECR', KEYS[1])\n"
    "redis.call('HINCRBY', KEYS[2], ARGV[1], 1)\n"
    "return 1\n",
    { 0 }, 0
};


/*
 * The write after a pass did not issue: ARGV[1] the user, ARGV[2] the
 * mode: "back" (give both counts back), "limit" (Postgres says the user
 * is at the limit: give the coupon back, the user's count is the limit),
 * "soldout" (Postgres says none is left: remaining 0).  Keys that expired
 * meanwhile are left alone.
 */
static ngx_commerce_redis_script_t  ngx_commerce_coupon_back_script = {
    "coupon_back",
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    "if ARGV[2] == 'soldout' then\n"
    "  redis.call('SET', KEYS[1], 0, 'KEEPTTL')\n"
    "  return 1\n"
    "end\n"
    "redis.call('INCR', KEYS[1])\n"
    "if ARGV[2] == 'limit' then\n"
    "  local limit = redis.call('HGET', KEYS[2], 'limit')\n"
    "  if limit then redis.call('HSET', KEYS[2], ARGV[1], limit) end\n"
    "elseif redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then\n"
    "  redis.call('HINCRBY', KEYS[2], ARGV[1], -1)\n"
    "end\n"
    "return 1\n",
    { 0 }, 0
};


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
      2, 0,
      &ngx_commerce_coupon_statements[NGX_COMMERCE_STMT_COUPON_ISSUE_IDEM],
      0 },

    /* with an Idempotency-Key: claimed and answered in the same transaction */
    [NGX_COMMERCE_STMT_COUPON_ISSUE_IDEM] =
    { "cm_coupon_issue_idem",
      "SELECT cm_idem_done(h.held, $3::bigint, $4::text, $5::int, "
      "cm_coupon_issue($1::bigint, $2::bigint)) "
      "FROM cm_idem_hold($3::bigint, $4::text) AS h(held)", 5, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_USER_COUPONS] =
    { "cm_user_coupons", "SELECT cm_user_coupons($1::bigint, $2::text)", 2,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    /* rows (id, remaining, per_user_limit): the gates to warm */
    [NGX_COMMERCE_STMT_COUPON_GATES] =
    { "cm_coupon_gates",
      "SELECT id, remaining, per_user_limit FROM cm_coupon_gates($1::int)", 1,
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

    NGX_COMMERCE_ROUTE("POST", "/api/v1/coupons/{id}/issue", CM_ROLE_ALL,
                       NGX_COMMERCE_ROUTE_IDEM, "coupon_issue",
                       ngx_commerce_coupon_issue, "issueCoupon"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/users/me/coupons", CM_ROLE_ALL, 0,
                       "my_coupons", ngx_commerce_coupon_mine,
                       "listMyCoupons"),

    ngx_commerce_route_end
};


/* the warm job, a job of worker 0 when commerce_redis is set */

ngx_int_t
ngx_commerce_coupon_init(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    ngx_commerce_coupon_warmer_t  *w;

    if (mcf->redis == NULL) {
        return NGX_OK;
    }

    w = ngx_pcalloc(cf->pool, sizeof(ngx_commerce_coupon_warmer_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->mcf = mcf;
    w->job.name = "coupon gate warm";
    w->job.first = NGX_COMMERCE_COUPON_WARM_RETRY;
    w->job.interval = NGX_COMMERCE_COUPON_GATE_TTL;
    w->job.run = ngx_commerce_coupon_warm_all;
    w->job.data = w;

    return ngx_commerce_job_add(cf, &w->job);
}


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

    /* a new campaign's gate is warm before its first burst */
    ctx->result = ngx_commerce_coupon_created;

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
    ngx_int_t                  rc;
    ngx_commerce_main_conf_t  *mcf;

    ctx->success_status = NGX_HTTP_CREATED;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (mcf->redis != NULL) {
        rc = ngx_commerce_coupon_gate(r, ctx, -1, 0);

        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    return ngx_commerce_coupon_write(r, ctx, 0);
}


/*
 * Ask the gate (warming it with remaining and limit when remaining >= 0).
 * NGX_DONE: asked; NGX_DECLINED: Redis refused at once (down, queue full).
 */

static ngx_int_t
ngx_commerce_coupon_gate(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    int64_t remaining, int64_t limit)
{
    if (ngx_commerce_coupon_gate_eval(r->pool, ctx->id, ctx->claims.user_id,
                                      remaining, limit,
                                      ngx_commerce_coupon_gated, ctx)
        == NULL)
    {
        ngx_commerce_log(NGX_LOG_INFO, r, ctx,
                         "coupon gate unavailable, Postgres alone");
        return NGX_DECLINED;
    }

    return NGX_DONE;
}


/*
 * The gate script for campaign id: user 0 warms only; remaining < 0 does
 * not warm (-1 when the keys are missing).  NULL: Redis refused at once,
 * or no memory.
 */

static ngx_commerce_redis_op_t *
ngx_commerce_coupon_gate_eval(ngx_pool_t *pool, int64_t id, int64_t user,
    int64_t remaining, int64_t limit, ngx_commerce_redis_handler_pt handler,
    void *data)
{
    u_char       *p, *last;
    ngx_str_t    *v;
    ngx_array_t  *keys, *args;

    keys = ngx_commerce_coupon_keys(pool, id);
    args = ngx_array_create(pool, 4, sizeof(ngx_str_t));
    p = ngx_pnalloc(pool, 4 * NGX_INT64_LEN);

    if (keys == NULL || args == NULL || p == NULL) {
        return NULL;
    }

    v = ngx_array_push_n(args, 4);
    if (v == NULL) {
        return NULL;
    }

    /* "" for the user 0 and for remaining < 0 (limit goes with it) */
    last = p;
    v[0].data = last;
    last = user ? ngx_sprintf(last, "%L", user) : last;
    v[0].len = last - v[0].data;

    v[1].data = last;
    last = (remaining >= 0) ? ngx_sprintf(last, "%L", remaining) : last;
    v[1].len = last - v[1].data;

    v[2].data = last;
    last = (remaining >= 0) ? ngx_sprintf(last, "%L", limit) : last;
    v[2].len = last - v[2].data;

    v[3].data = last;
    last = ngx_sprintf(last, "%M", (ngx_msec_t) NGX_COMMERCE_COUPON_GATE_TTL);
    v[3].len = last - v[3].data;

    return ngx_commerce_redis_eval(&ngx_commerce_coupon_gate_script, keys,
                                   args, handler, data);
}


static void
ngx_commerce_coupon_gated(void *data, ngx_commerce_redis_rc_e rc,
    redisReply *reply)
{
    ngx_int_t            n;
    ngx_commerce_ctx_t  *ctx = data;
    ngx_http_request_t  *r;

    r = ctx->request;

    ngx_http_set_log_request(r->connection->log, r);

    if (rc != NGX_COMMERCE_REDIS_REPLY || reply == NULL
        || reply->type != REDIS_REPLY_INTEGER)
    {
        ngx_commerce_log(NGX_LOG_INFO, r, ctx,
                         "coupon gate failed (%d), Postgres alone", (int) rc);
        ngx_commerce_coupon_finish(r, ngx_commerce_coupon_write(r, ctx, 0));
        return;
    }

    switch (reply->integer) {

    case 1:
        n = ngx_commerce_coupon_write(r, ctx, 1);
        break;

    case 0:
        n = ngx_commerce_reply_error(r, NGX_HTTP_CONFLICT, "COUPON_SOLD_OUT",
                                     "the coupon is sold out");
        break;

    case -2:
        n = ngx_commerce_reply_error(r, NGX_HTTP_CONFLICT,
                                     "COUPON_LIMIT_REACHED",
                                     "the coupon's per-user limit is reached");
        break;

    default:
        n = ngx_commerce_coupon_warm(r, ctx);
        break;
    }

    ngx_commerce_coupon_finish(r, n);
}


/* a campaign was created: warm its gate (a lost warm costs a read later) */

static void
ngx_commerce_coupon_created(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    int64_t              id, remaining, limit;
    yajl_val             doc;
    ngx_commerce_ctx_t  *ctx;
    ngx_http_request_t  *r;

    ctx = q->data;
    r = ctx->request;

    if (rc != NGX_OK || res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
    {
        return;
    }

    doc = ngx_commerce_json_parse(r->pool, (u_char *) PQgetvalue(res, 0, 0),
                                  PQgetlength(res, 0, 0));

    if (ngx_commerce_json_int(doc, "id", NULL, &id) != NGX_OK
        || ngx_commerce_json_int(doc, "remaining", NULL, &remaining) != NGX_OK
        || ngx_commerce_json_int(doc, "perUserLimit", NULL, &limit) != NGX_OK)
    {
        return;
    }

    (void) ngx_commerce_coupon_gate_eval(r->pool, id, 0, remaining, limit,
                                         ngx_commerce_coupon_ignore, NULL);
}


/* the warm job: the gates of every campaign in its window */

static ngx_int_t
ngx_commerce_coupon_warm_all(ngx_commerce_job_t *job)
{
    ngx_commerce_coupon_warmer_t  *w = job->data;

    if (!ngx_commerce_redis_available()) {
        /* at start: Redis is still connecting; try again soon */
        ngx_commerce_job_done(job, NGX_COMMERCE_COUPON_WARM_RETRY);
        return NGX_OK;
    }

    ngx_commerce_pg_reset(&w->query);
    w->query.stmt =
        &ngx_commerce_coupon_statements[NGX_COMMERCE_STMT_COUPON_GATES];
    w->query.nparams = 1;
    w->query.params[0] = ngx_commerce_pg_int(&w->query,
                                             NGX_COMMERCE_COUPON_GATES_MAX);
    w->query.log = job->log;
    w->query.data = w;
    w->query.handler = ngx_commerce_coupon_gates;

    return ngx_commerce_pg_submit(w->mcf->pool, &w->query);
}


static void
ngx_commerce_coupon_gates(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    int                            i, n, sent;
    int64_t                        v[3];
    ngx_uint_t                     k;
    ngx_pool_t                    *pool;
    ngx_commerce_coupon_warmer_t  *w;

    w = q->data;
    sent = 0;
    n = 0;

    if (rc != NGX_OK || res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQnfields(res) != 3)
    {
        ngx_log_error(NGX_LOG_WARN, w->job.log, 0,
                      "commerce: coupon gate warm: the campaigns could not "
                      "be read");
        goto done;
    }

    /* the words are copied by the client: one pool for the whole run */
    pool = ngx_create_pool(4096, w->job.log);
    if (pool == NULL) {
        goto done;
    }

    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        for (k = 0; k < 3; k++) {
            if (PQgetisnull(res, i, k)
                || cm_parse_int64((u_char *) PQgetvalue(res, i, k),
                                  PQgetlength(res, i, k), 0, INT64_MAX, &v[k])
                   != 0)
            {
                break;
            }
        }

        if (k == 3
            && ngx_commerce_coupon_gate_eval(pool, v[0], 0, v[1], v[2],
                                             ngx_commerce_coupon_ignore, NULL)
               != NULL)
        {
            sent++;
        }
    }

    ngx_destroy_pool(pool);

done:

    /* once a TTL: tests wait for this line to know the run is over */
    ngx_log_error(NGX_LOG_INFO, w->job.log, 0,
                  "commerce: coupon gate warm: %d campaign(s), %d sent", n,
                  sent);

    ngx_commerce_job_done(&w->job, 0);
}


/* the gate's keys are missing: read the campaign, then ask again */

static ngx_int_t
ngx_commerce_coupon_warm(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx)
{
    ngx_commerce_main_conf_t    *mcf;
    ngx_commerce_coupon_gate_t  *g;

    g = ngx_pcalloc(r->pool, sizeof(ngx_commerce_coupon_gate_t));

    if (g == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    g->ctx = ctx;
    g->query.stmt =
        &ngx_commerce_coupon_statements[NGX_COMMERCE_STMT_COUPON_GET];
    g->query.nparams = 1;
    g->query.params[0] = ngx_commerce_pg_int(&g->query, ctx->id);
    g->query.log = r->connection->log;
    g->query.data = g;
    g->query.handler = ngx_commerce_coupon_warmed;

    if (ngx_commerce_pg_submit(mcf->pool, &g->query) != NGX_OK) {
        return ngx_commerce_coupon_write(r, ctx, 0);
    }

    return NGX_DONE;
}


static void
ngx_commerce_coupon_warmed(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    int64_t                      remaining, limit;
    ngx_int_t                    n;
    yajl_val                     doc;
    ngx_commerce_ctx_t          *ctx;
    ngx_http_request_t          *r;
    ngx_commerce_coupon_gate_t  *g;

    g = q->data;
    ctx = g->ctx;
    r = ctx->request;

    ngx_http_set_log_request(r->connection->log, r);

    if (rc != NGX_OK || res == NULL) {
        n = ngx_commerce_coupon_write(r, ctx, 0);
        goto done;
    }

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* COUPON_NOT_FOUND */
        n = ngx_commerce_reply_db_error(r, ctx, res);
        goto done;
    }

    doc = (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
          ? ngx_commerce_json_parse(r->pool, (u_char *) PQgetvalue(res, 0, 0),
                                    PQgetlength(res, 0, 0))
          : NULL;

    if (doc == NULL
        || ngx_commerce_json_int(doc, "remaining", NULL, &remaining) != NGX_OK
        || ngx_commerce_json_int(doc, "perUserLimit", NULL, &limit) != NGX_OK)
    {
        n = ngx_commerce_coupon_write(r, ctx, 0);
        goto done;
    }

    n = ngx_commerce_coupon_gate(r, ctx, remaining, limit);

    if (n == NGX_DECLINED) {
        n = ngx_commerce_coupon_write(r, ctx, 0);
    }

done:

    ngx_commerce_coupon_finish(r, n);
}


/* the truth: cm_coupon_issue; a gated write settles the gate after it */

static ngx_int_t
ngx_commerce_coupon_write(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    ngx_uint_t gated)
{
    ngx_int_t                    rc;
    ngx_pool_cleanup_t          *cln;
    ngx_commerce_coupon_pass_t  *pass;

    ctx->query.stmt =
        &ngx_commerce_coupon_statements[NGX_COMMERCE_STMT_COUPON_ISSUE];
    ctx->query.nparams = 2;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query,
                                               ctx->claims.user_id);
    ctx->query.params[1] = ngx_commerce_pg_int(&ctx->query, ctx->id);

    ctx->result = NULL;

    if (gated) {
        /* the gate is settled by the outcome, or given back at the end */
        pass = ngx_pcalloc(r->pool, sizeof(ngx_commerce_coupon_pass_t));
        cln = ngx_pool_cleanup_add(r->pool, 0);

        if (pass == NULL || cln == NULL) {
            ngx_commerce_coupon_give_back(ctx, "back");
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        pass->ctx = ctx;
        ctx->domain = pass;
        ctx->result = ngx_commerce_coupon_written;
        cln->handler = ngx_commerce_coupon_unsettled;
        cln->data = pass;
    }

    rc = ngx_commerce_handler_query(r, ctx);

    return rc;
}


static void
ngx_commerce_coupon_written(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    char                        *code;
    ngx_commerce_ctx_t          *ctx;
    ngx_commerce_coupon_pass_t  *pass;

    ctx = q->data;
    pass = ctx->domain;
    pass->settled = 1;

    if (rc != NGX_OK || res == NULL) {
        /* lost: maybe issued; a gate given back too much only lets more
         * requests reach Postgres, which decides */
        ngx_commerce_coupon_give_back(ctx, "back");

    } else if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        code = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

        if (code != NULL && ngx_strcmp(code, "COUPON_SOLD_OUT") == 0) {
            ngx_commerce_coupon_give_back(ctx, "soldout");

        } else if (code != NULL
                   && ngx_strcmp(code, "COUPON_LIMIT_REACHED") == 0)
        {
            ngx_commerce_coupon_give_back(ctx, "limit");

        } else {
            ngx_commerce_coupon_give_back(ctx, "back");
        }
    }

}


/* the request ends and its write never told its outcome: nothing was
 * issued by it (or a lost one Postgres decided): give the pass back */

static void
ngx_commerce_coupon_unsettled(void *data)
{
    ngx_commerce_coupon_pass_t  *pass = data;

    if (!pass->settled) {
        pass->settled = 1;
        ngx_commerce_coupon_give_back(pass->ctx, "back");
    }
}


/*
 * In a pool of its own: it also runs from the request pool's cleanup,
 * when the request's pool is no longer there (r->pool is NULL by then).
 * The client copies the words before this returns.
 */

static void
ngx_commerce_coupon_give_back(ngx_commerce_ctx_t *ctx, const char *mode)
{
    u_char       *p;
    ngx_pool_t   *pool;
    ngx_array_t  *keys, *args;

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    keys = ngx_commerce_coupon_keys(pool, ctx->id);
    args = ngx_array_create(pool, 2, sizeof(ngx_str_t));
    p = ngx_pnalloc(pool, NGX_INT64_LEN + 1);

    if (keys == NULL || args == NULL || p == NULL) {
        goto done;
    }

    ngx_sprintf(p, "%L%Z", ctx->claims.user_id);

    if (ngx_commerce_coupon_arg(args, (char *) p) != NGX_OK
        || ngx_commerce_coupon_arg(args, mode) != NGX_OK)
    {
        goto done;
    }

    if (ngx_commerce_redis_eval(&ngx_commerce_coupon_back_script, keys, args,
                                ngx_commerce_coupon_ignore, NULL)
        == NULL)
    {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "commerce: [%V] coupon %L: the gate was not given back "
                      "(%s): Redis refused", &ctx->request_id, ctx->id, mode);
    }

done:

    ngx_destroy_pool(pool);
}


static void
ngx_commerce_coupon_ignore(void *data, ngx_commerce_redis_rc_e rc,
    redisReply *reply)
{
    /* the gate is never trusted alone: a lost give-back costs nothing */
}


/* coupon:{ID}:remaining and coupon:{ID}:users */

static ngx_array_t *
ngx_commerce_coupon_keys(ngx_pool_t *pool, int64_t id)
{
    u_char       *p;
    ngx_str_t    *k;
    ngx_array_t  *keys;

    keys = ngx_array_create(pool, 2, sizeof(ngx_str_t));
    p = ngx_pnalloc(pool, 2 * (NGX_INT64_LEN + sizeof("coupon:{}:remaining")));

    if (keys == NULL || p == NULL) {
        return NULL;
    }

    k = ngx_array_push_n(keys, 2);
    if (k == NULL) {
        return NULL;
    }

    k[0].data = p;
    k[0].len = ngx_sprintf(p, "coupon:{%L}:remaining", id) - p;
    p += k[0].len;
    k[1].data = p;
    k[1].len = ngx_sprintf(p, "coupon:{%L}:users", id) - p;

    return keys;
}


static ngx_int_t
ngx_commerce_coupon_arg(ngx_array_t *a, const char *s)
{
    ngx_str_t  *v;

    v = ngx_array_push(a);
    if (v == NULL) {
        return NGX_ERROR;
    }

    v->data = (u_char *) s;
    v->len = ngx_strlen(s);

    return NGX_OK;
}


/* an answer outside the content handler's call: finalize it here */

static void
ngx_commerce_coupon_finish(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_connection_t  *c;

    c = r->connection;

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }

    ngx_http_run_posted_requests(c);
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
