
/*
 * Orders: create one (stock reserved; paid by balance in the same
 * transaction, or by card through the payment domain), read one, pay one,
 * and expire the unpaid.  Everything that must hold under concurrency
 * (stock, balance, order state) is decided by the SQL function in one
 * transaction; nothing here checks and then writes.
 */


#include "ngx_commerce_order.h"
#include "ngx_commerce_payment.h"
#include "cm_cart.h"


#define NGX_COMMERCE_EXPIRY_BATCH  500


enum {
    NGX_COMMERCE_STMT_ORDER_CREATE = 0,
    NGX_COMMERCE_STMT_ORDER_CREATE_IDEM,
    NGX_COMMERCE_STMT_ORDER_CREATE_CART,
    NGX_COMMERCE_STMT_ORDER_CREATE_CART_IDEM,
    NGX_COMMERCE_STMT_ORDER_CREATE_POINTS,
    NGX_COMMERCE_STMT_ORDER_CREATE_POINTS_IDEM,
    NGX_COMMERCE_STMT_ORDER_PAY,
    NGX_COMMERCE_STMT_ORDER_PAY_IDEM,
    NGX_COMMERCE_STMT_ORDER_PAY_POINTS,
    NGX_COMMERCE_STMT_ORDER_PAY_POINTS_IDEM,
    NGX_COMMERCE_STMT_ORDER_GET,
    NGX_COMMERCE_STMT_ORDERS_EXPIRE,
    NGX_COMMERCE_ORDER_NSTMT
};


/* an order's body while its address is sealed */
typedef struct {
    cm_order_req_t              req;
    cm_address_req_t            address;
} ngx_commerce_order_new_t;


typedef struct {
    ngx_commerce_job_t          job;
    ngx_commerce_pg_query_t     query;
    ngx_commerce_main_conf_t   *mcf;
} ngx_commerce_order_expiry_t;


static ngx_int_t ngx_commerce_order_create(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_order_shipped(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *doc, size_t len);
static ngx_int_t ngx_commerce_order_submit(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, cm_order_req_t *req, char *shipping);
static ngx_int_t ngx_commerce_order_get(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_order_pay(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_order_arrays(ngx_pool_t *pool,
    cm_order_req_t *req, char **ids, char **qty, char **vids);
static char *ngx_commerce_order_selection(ngx_pool_t *pool,
    cm_order_req_t *req);
static const char *ngx_commerce_order_method(cm_pay_method_e method);
static ngx_int_t ngx_commerce_order_expire(ngx_commerce_job_t *job);
static void ngx_commerce_order_expired(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);


ngx_commerce_stmt_t  ngx_commerce_order_statements[] = {

    [NGX_COMMERCE_STMT_ORDER_CREATE] =
    { "cm_order_create",
      "SELECT cm_order_create($1::bigint, $2::bigint[], $3::int[], $4::text, "
      "$5::bigint, $6::bigint[]) FROM cm_order_shipping($7::text) AS s", 7,
      0,
      &ngx_commerce_order_statements[NGX_COMMERCE_STMT_ORDER_CREATE_IDEM],
      0 },

    [NGX_COMMERCE_STMT_ORDER_CREATE_IDEM] =
    { "cm_order_create_idem",
      "SELECT cm_idem_done(h.held, $8::bigint, $9::text, $10::int, "
      "cm_order_create($1::bigint, $2::bigint[], $3::int[], $4::text, "
      "$5::bigint, $6::bigint[])) "
      "FROM cm_idem_hold($8::bigint, $9::text) AS h(held), "
      "cm_order_shipping($7::text) AS s", 10, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_ORDER_CREATE_CART] =
    { "cm_order_create_cart",
      "SELECT cm_order_create_cart($1::bigint, $2::bigint[], $3::text, "
      "$4::bigint) FROM cm_order_shipping($5::text) AS s", 5, 0,
      &ngx_commerce_order_statements[NGX_COMMERCE_STMT_ORDER_CREATE_CART_IDEM],
      0 },

    [NGX_COMMERCE_STMT_ORDER_CREATE_CART_IDEM] =
    { "cm_order_create_cart_idem",
      "SELECT cm_idem_done(h.held, $6::bigint, $7::text, $8::int, "
      "cm_order_create_cart($1::bigint, $2::bigint[], $3::text, $4::bigint)) "
      "FROM cm_idem_hold($6::bigint, $7::text) AS h(held), "
      "cm_order_shipping($5::text) AS s", 8, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_ORDER_CREATE_POINTS] =
    { "cm_order_create_points",
      "SELECT cm_order_create_points($1::bigint, $2::bigint[], $3::int[], "
      "$4::text, $5::bigint, $6::bigint[], $7::bigint, $8::bigint, "
      "$9::boolean) FROM cm_order_shipping($10::text) AS s", 10, 0,
      &ngx_commerce_order_statements[
          NGX_COMMERCE_STMT_ORDER_CREATE_POINTS_IDEM],
      0 },

    [NGX_COMMERCE_STMT_ORDER_CREATE_POINTS_IDEM] =
    { "cm_order_create_points_idem",
      "SELECT cm_idem_done(h.held, $11::bigint, $12::text, $13::int, "
      "cm_order_create_points($1::bigint, $2::bigint[], $3::int[], "
      "$4::text, $5::bigint, $6::bigint[], $7::bigint, $8::bigint, "
      "$9::boolean)) "
      "FROM cm_idem_hold($11::bigint, $12::text) AS h(held), "
      "cm_order_shipping($10::text) AS s", 13, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_ORDER_PAY] =
    { "cm_order_pay", "SELECT cm_order_pay($1::bigint, $2::bigint, $3::text)",
      3, 0,
      &ngx_commerce_order_statements[NGX_COMMERCE_STMT_ORDER_PAY_IDEM], 0 },

    [NGX_COMMERCE_STMT_ORDER_PAY_IDEM] =
    { "cm_order_pay_idem",
      "SELECT cm_idem_done(h.held, $4::bigint, $5::text, $6::int, "
      "cm_order_pay($1::bigint, $2::bigint, $3::text)) "
      "FROM cm_idem_hold($4::bigint, $5::text) AS h(held)", 6, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_ORDER_PAY_POINTS] =
    { "cm_order_pay_points",
      "SELECT cm_order_pay_points($1::bigint, $2::bigint, $3::text, "
      "$4::bigint, $5::bigint)", 5, 0,
      &ngx_commerce_order_statements[NGX_COMMERCE_STMT_ORDER_PAY_POINTS_IDEM],
      0 },

    [NGX_COMMERCE_STMT_ORDER_PAY_POINTS_IDEM] =
    { "cm_order_pay_points_idem",
      "SELECT cm_idem_done(h.held, $6::bigint, $7::text, $8::int, "
      "cm_order_pay_points($1::bigint, $2::bigint, $3::text, $4::bigint, "
      "$5::bigint)) FROM cm_idem_hold($6::bigint, $7::text) AS h(held)", 8,
      0, NULL, 0 },

    [NGX_COMMERCE_STMT_ORDER_GET] =
    { "cm_order_get", "SELECT cm_order_get($1::bigint, $2::bigint)", 2,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_ORDERS_EXPIRE] =
    { "cm_orders_expire", "SELECT cm_orders_expire($1::int, $2::int)", 2, 0,
      NULL, 0 },

    [NGX_COMMERCE_ORDER_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


ngx_commerce_route_t  ngx_commerce_order_routes[] = {

    NGX_COMMERCE_ROUTE("POST", "/api/v1/orders", CM_ROLE_ALL,
                       NGX_COMMERCE_ROUTE_IDEM, "orders",
                       ngx_commerce_order_create, "createOrder"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/orders/{id}", CM_ROLE_ALL, 0,
                       "order", ngx_commerce_order_get, "getOrder"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/orders/{id}/payment", CM_ROLE_ALL,
                       NGX_COMMERCE_ROUTE_IDEM, "order_payment",
                       ngx_commerce_order_pay, "payOrder"),

    ngx_commerce_route_end
};


/* the expiry of unpaid orders, a job of worker 0 */

ngx_int_t
ngx_commerce_order_init(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    ngx_commerce_order_expiry_t  *ex;

    ex = ngx_pcalloc(cf->pool, sizeof(ngx_commerce_order_expiry_t));
    if (ex == NULL) {
        return NGX_ERROR;
    }

    ex->mcf = mcf;
    ex->job.name = "order expiry";
    ex->job.interval = mcf->expiry_interval;
    /* give the pool a moment to connect before the first run */
    ex->job.first = ngx_min(mcf->expiry_interval, 1000);
    ex->job.run = ngx_commerce_order_expire;
    ex->job.data = ex;

    ngx_commerce_order_part_init(mcf);

    return ngx_commerce_job_add(cf, &ex->job);
}


/*
 * POST /orders: the body checked; with "shippingAddress", the address
 * row's id reserved and its texts sealed to it first
 * (ngx_commerce_order_part.c), then the order (ngx_commerce_order_submit).
 */

static ngx_int_t
ngx_commerce_order_create(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    char                      err[NGX_COMMERCE_ERR_LEN];
    ngx_commerce_main_conf_t  *mcf;
    ngx_commerce_order_new_t  *on;

    on = ngx_palloc(r->pool, sizeof(ngx_commerce_order_new_t));
    if (on == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (cm_parse_order_shipping(body, len, &on->req, &on->address, err,
                                sizeof(err))
        != 0)
    {
        return ngx_commerce_reply_invalid(r, err);
    }

    if (!on->req.shipping) {
        return ngx_commerce_order_submit(r, ctx, &on->req, NULL);
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (mcf->pii_keys == NULL) {
        /* sealed with the accounts' keys, as the address book */
        ngx_explicit_memzero(&on->address, sizeof(cm_address_req_t));
        return ngx_commerce_reply_invalid(r, "shippingAddress needs the"
                                             " accounts' PII keys");
    }

    ctx->domain = on;

    return ngx_commerce_order_part_reserve(r, ctx,
                                           ngx_commerce_order_shipped);
}


/* the address's id reserved: its texts sealed, then the order */

static ngx_int_t
ngx_commerce_order_shipped(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *doc, size_t len)
{
    char                      *shipping;
    ngx_commerce_order_new_t  *on;

    on = ctx->domain;
    ctx->domain = NULL;
    ctx->render = NULL;

    shipping = ngx_commerce_order_part_sealed(r, &on->address, doc, len);
    if (shipping == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_commerce_pg_reset(&ctx->query);

    return ngx_commerce_order_submit(r, ctx, &on->req, shipping);
}


/* the order of req; shipping: the sealed address, or NULL */

static ngx_int_t
ngx_commerce_order_submit(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    cm_order_req_t *req, char *shipping)
{
    char              *ids, *qty, *vids;
    const char        *coupon, *user;
    cm_payment_req_t   card;

    if (req->from_cart) {
        /* the cart's lines: ids and qty NULL, vids the selection or NULL */
        ids = NULL;
        qty = NULL;
        vids = ngx_commerce_order_selection(r->pool, req);

        if (req->nvariants && vids == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else if (ngx_commerce_order_arrays(r->pool, req, &ids, &qty, &vids)
               != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* SQL NULL: no coupon */
    coupon = req->coupon_id ? ngx_commerce_pg_int(&ctx->query, req->coupon_id)
                            : NULL;

    if (req->method == CM_PAY_CARD || req->method == CM_PAY_EASY_PAY
        || req->method == CM_PAY_TRANSFER)
    {
        card.method = req->method;
        ngx_memcpy(card.card_type, req->card_type, sizeof(card.card_type));
        ngx_memcpy(card.card_no, req->card_no, sizeof(card.card_no));
        ngx_memcpy(card.provider, req->provider, sizeof(card.provider));
        card.points = req->points;
        card.rest_amount = req->rest_amount;

        ctx->shipping = shipping;

        return ngx_commerce_pay_card_start(r, ctx, 0, ids, qty, vids, coupon,
                                           &card);
    }

    user = ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id);

    if (req->points || req->rest_amount) {
        /* a list of parts: POINTS, the rest from the balance (or none) */
        return ngx_commerce_handler_call(r, ctx,
                   &ngx_commerce_order_statements[
                       NGX_COMMERCE_STMT_ORDER_CREATE_POINTS],
                   NGX_HTTP_CREATED, 10, user, ids, qty,
                   ngx_commerce_order_method(req->method), coupon, vids,
                   ngx_commerce_pg_int(&ctx->query, req->points),
                   req->rest_amount
                       ? ngx_commerce_pg_int(&ctx->query, req->rest_amount)
                       : NULL,
                   req->from_cart ? "t" : "f", shipping);
    }

    if (req->from_cart) {
        return ngx_commerce_handler_call(r, ctx,
                   &ngx_commerce_order_statements[
                       NGX_COMMERCE_STMT_ORDER_CREATE_CART],
                   NGX_HTTP_CREATED, 5, user, vids,
                   ngx_commerce_order_method(req->method), coupon, shipping);
    }

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_order_statements[NGX_COMMERCE_STMT_ORDER_CREATE],
               NGX_HTTP_CREATED, 7, user, ids, qty,
               ngx_commerce_order_method(req->method), coupon, vids,
               shipping);
}


static ngx_int_t
ngx_commerce_order_get(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ctx->query.stmt =
        &ngx_commerce_order_statements[NGX_COMMERCE_STMT_ORDER_GET];
    ctx->query.nparams = 2;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query,
                                               ctx->claims.user_id);
    ctx->query.params[1] = ngx_commerce_pg_int(&ctx->query, ctx->id);

    return ngx_commerce_handler_query(r, ctx);
}


static ngx_int_t
ngx_commerce_order_pay(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    char              err[NGX_COMMERCE_ERR_LEN];
    cm_payment_req_t  req;

    if (cm_parse_payment(body, len, &req, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_invalid(r, err);
    }

    if (req.method == CM_PAY_CARD || req.method == CM_PAY_EASY_PAY
        || req.method == CM_PAY_TRANSFER)
    {
        return ngx_commerce_pay_card_start(r, ctx, ctx->id, NULL, NULL, NULL,
                                           NULL, &req);
    }

    if (req.points || req.rest_amount) {
        /* a list of parts: POINTS, the rest from the balance (or none) */
        return ngx_commerce_handler_call(r, ctx,
                   &ngx_commerce_order_statements[
                       NGX_COMMERCE_STMT_ORDER_PAY_POINTS],
                   NGX_HTTP_OK, 5,
                   ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
                   ngx_commerce_pg_int(&ctx->query, ctx->id),
                   ngx_commerce_order_method(req.method),
                   ngx_commerce_pg_int(&ctx->query, req.points),
                   req.rest_amount
                       ? ngx_commerce_pg_int(&ctx->query, req.rest_amount)
                       : NULL);
    }

    ctx->query.stmt =
        &ngx_commerce_order_statements[NGX_COMMERCE_STMT_ORDER_PAY];
    ctx->query.nparams = 3;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query,
                                               ctx->claims.user_id);
    ctx->query.params[1] = ngx_commerce_pg_int(&ctx->query, ctx->id);
    ctx->query.params[2] = ngx_commerce_order_method(req.method);

    return ngx_commerce_handler_query(r, ctx);
}


/*
 * The items as Postgres array literals: product ids "{1,NULL,3}",
 * quantities "{1,1,2}", and variant ids "{NULL,7,NULL}" (NULL, SQL NULL,
 * when no item names a variant).  The parser sorted them by product id,
 * then variant id, and merged duplicates.
 */

static ngx_int_t
ngx_commerce_order_arrays(ngx_pool_t *pool, cm_order_req_t *req, char **ids,
    char **qty, char **vids)
{
    u_char      *p, *q, *v;
    size_t       size;
    ngx_uint_t   i, variants;

    size = 2 + req->nitems * (NGX_INT64_LEN + 1);

    *ids = ngx_pnalloc(pool, size);
    *qty = ngx_pnalloc(pool, size);
    *vids = ngx_pnalloc(pool, size);
    if (*ids == NULL || *qty == NULL || *vids == NULL) {
        return NGX_ERROR;
    }

    p = (u_char *) *ids;
    q = (u_char *) *qty;
    v = (u_char *) *vids;
    *p++ = '{';
    *q++ = '{';
    *v++ = '{';
    variants = 0;

    for (i = 0; i < req->nitems; i++) {
        if (i) {
            *p++ = ',';
            *q++ = ',';
            *v++ = ',';
        }

        if (req->items[i].product_id) {
            p = ngx_sprintf(p, "%L", req->items[i].product_id);

        } else {
            p = ngx_cpymem(p, "NULL", 4);
        }

        if (req->items[i].variant_id) {
            v = ngx_sprintf(v, "%L", req->items[i].variant_id);
            variants++;

        } else {
            v = ngx_cpymem(v, "NULL", 4);
        }

        q = ngx_sprintf(q, "%D", req->items[i].quantity);
    }

    *p++ = '}';
    *p = '\0';
    *q++ = '}';
    *q = '\0';
    *v++ = '}';
    *v = '\0';

    if (variants == 0) {
        *vids = NULL;
    }

    return NGX_OK;
}


/* "variantIds" as an array literal "{9,4}"; NULL when none was given */

static char *
ngx_commerce_order_selection(ngx_pool_t *pool, cm_order_req_t *req)
{
    u_char      *p, *s;
    ngx_uint_t   i;

    if (req->nvariants == 0) {
        return NULL;
    }

    s = ngx_pnalloc(pool, 2 + req->nvariants * (NGX_INT64_LEN + 1));
    if (s == NULL) {
        return NULL;
    }

    p = s;
    *p++ = '{';

    for (i = 0; i < req->nvariants; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_sprintf(p, "%L", req->variant_ids[i]);
    }

    *p++ = '}';
    *p = '\0';

    return (char *) s;
}


static const char *
ngx_commerce_order_method(cm_pay_method_e method)
{
    switch (method) {

    case CM_PAY_BALANCE:
        return "BALANCE";

    case CM_PAY_CARD:
        return "CARD";

    default:
        /* SQL NULL: create the order unpaid */
        return NULL;
    }
}


/*
 * Unpaid orders older than commerce_order_ttl are cancelled and their
 * stock released by cm_orders_expire(), which claims rows with FOR UPDATE
 * SKIP LOCKED: any number of instances may run it against one database
 * without releasing stock twice.
 */

static ngx_int_t
ngx_commerce_order_expire(ngx_commerce_job_t *job)
{
    ngx_commerce_order_expiry_t  *ex = job->data;

    ngx_commerce_pg_reset(&ex->query);
    ex->query.stmt =
        &ngx_commerce_order_statements[NGX_COMMERCE_STMT_ORDERS_EXPIRE];
    ex->query.nparams = 2;
    ex->query.params[0] = ngx_commerce_pg_int(&ex->query,
                                              ex->mcf->order_ttl);
    ex->query.params[1] = ngx_commerce_pg_int(&ex->query,
                                              NGX_COMMERCE_EXPIRY_BATCH);
    ex->query.log = job->log;
    ex->query.data = ex;
    ex->query.handler = ngx_commerce_order_expired;

    return ngx_commerce_pg_submit(ex->mcf->pool, &ex->query);
}


static void
ngx_commerce_order_expired(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    int64_t                       n;
    ngx_commerce_order_expiry_t  *ex = q->data;

    n = 0;

    if (rc == NGX_OK && ngx_commerce_pg_int_result(res, &n) == NGX_OK) {
        if (n > 0) {
            ngx_log_error(NGX_LOG_NOTICE, q->log, 0,
                          "commerce: order expiry cancelled %L unpaid "
                          "order(s) older than %T s",
                          n, ex->mcf->order_ttl);
        }

    } else if (rc == NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "commerce: order expiry failed: %s",
                      PQresultErrorMessage(res));
    }

    /* a full batch means more are due: run again at once */
    ngx_commerce_job_done(&ex->job, n == NGX_COMMERCE_EXPIRY_BATCH ? 1 : 0);
}
