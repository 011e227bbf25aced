
/*
 * Card payments through external payment gateways (PGs).
 *
 * A flow (ngx_commerce_pay_t) owns its own pool, so it goes on when the
 * client that started it goes away: what the gateway answered is recorded
 * either way.  Two kinds of flow:
 *
 * REQUEST (POST /orders with CARD, POST /orders/{id}/payment with CARD):
 *   pick a gateway whose breaker admits calls (none: 503 PG_UNAVAILABLE,
 *   nothing written) -> cm_card_begin / cm_order_create_card (order
 *   PAYMENT_IN_PROGRESS, payment PENDING) -> breaker permit -> POST to the
 *   gateway -> accepted: cm_card_accepted, 202; declined (4xx): settle
 *   FAILED, 200 with the order; failed before anything was created
 *   (refused, connect timeout, 500/503): retry with full-jitter backoff on
 *   a timer within the retry budget, falling back to the next gateway
 *   whose breaker admits it, at most commerce_gateway_retries attempts,
 *   then cm_card_abort (order payable again) and 503 PG_UNAVAILABLE;
 *   timeout or broken connection (it may have arrived): payment stays
 *   PENDING for the reconciler, 202.
 *
 * SETTLE (a callback, or the reconciler): find the payment, ask the gateway
 *   (GET by transaction key, or by orderId when no key was recorded) and
 *   settle forward-only with cm_card_settle; when the database says the
 *   approval can no longer be applied, cancel it at the gateway (net-cancel)
 *   and record that.  A callback is only a hint: nothing changes without
 *   the gateway's own GET.
 *
 * Every exchange with a gateway is written to payment_interface_request_log
 * (card numbers masked), fire and forget.
 */


#include "ngx_commerce_gw.h"
#include "cm_sig.h"

#include <yajl/yajl_tree.h>


#define NGX_COMMERCE_PAY_REQUEST   0
#define NGX_COMMERCE_PAY_SETTLE    1

#define NGX_COMMERCE_KEY_MAX       128


typedef enum {
    NGX_COMMERCE_STEP_BEGIN = 0,
    NGX_COMMERCE_STEP_SEND,
    NGX_COMMERCE_STEP_GATEWAY,
    NGX_COMMERCE_STEP_ACCEPTED,
    NGX_COMMERCE_STEP_ABORT,
    NGX_COMMERCE_STEP_DECLINED,
    NGX_COMMERCE_STEP_ORDER,
    NGX_COMMERCE_STEP_LOOKUP,
    NGX_COMMERCE_STEP_ASK,
    NGX_COMMERCE_STEP_SETTLE,
    NGX_COMMERCE_STEP_CANCEL,
    NGX_COMMERCE_STEP_CANCELLED,
    NGX_COMMERCE_STEP_DUE
} ngx_commerce_step_e;


struct ngx_commerce_pay_s {
    ngx_pool_t                 *pool;
    ngx_log_t                  *log;
    ngx_http_request_t         *r;
    ngx_commerce_ctx_t         *ctx;
    ngx_uint_t                  kind;
    ngx_commerce_step_e         step;

    ngx_commerce_gateway_t     *gw;
    int                         permit;
    ngx_uint_t                  attempt;
    ngx_uint_t                  gw_changed;
    ngx_uint_t                  timed_out;

    int64_t                     user_id;
    int64_t                     order_id;
    int64_t                     payment_id;
    int64_t                     amount;
    int64_t                     age;

    ngx_str_t                   key;
    ngx_str_t                   order_json;
    ngx_str_t                   settle_status;
    ngx_str_t                   settle_reason;
    ngx_str_t                   err_code;

    cm_order_req_t             *order;
    cm_payment_req_t            card;

    ngx_commerce_http_t         http;
    ngx_commerce_pg_query_t     query;
    ngx_event_t                 retry;
    ngx_http_cleanup_t         *cleanup;
};


typedef struct {
    ngx_pool_t                 *pool;
    ngx_commerce_pg_query_t     query;
} ngx_commerce_log_query_t;


static ngx_commerce_pay_t *ngx_commerce_pay_create(ngx_log_t *log);
static void ngx_commerce_pay_destroy(ngx_commerce_pay_t *pay);
static void ngx_commerce_pay_detach(void *data);
static ngx_int_t ngx_commerce_pay_query(ngx_commerce_pay_t *pay,
    ngx_commerce_stmt_e stmt, ngx_commerce_step_e step, int n, ...);
static void ngx_commerce_pay_db_done(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static void ngx_commerce_pay_send(ngx_commerce_pay_t *pay);
static void ngx_commerce_pay_post(ngx_commerce_pay_t *pay);
static void ngx_commerce_pay_sent(ngx_commerce_http_t *h);
static void ngx_commerce_pay_retry(ngx_commerce_pay_t *pay);
static void ngx_commerce_pay_retry_handler(ngx_event_t *ev);
static void ngx_commerce_pay_respond(ngx_commerce_pay_t *pay,
    ngx_uint_t status, ngx_str_t *body, const char *code, const char *msg);
static void ngx_commerce_pay_unavailable(ngx_commerce_pay_t *pay);
static ngx_commerce_gateway_t *ngx_commerce_pay_pick(ngx_msec_t *retry_after);
static ngx_commerce_gateway_t *ngx_commerce_gateway_by_name(ngx_str_t *name);
static void ngx_commerce_settle_start(ngx_commerce_pay_t *pay);
static void ngx_commerce_settle_ask(ngx_commerce_pay_t *pay);
static void ngx_commerce_settle_answer(ngx_commerce_http_t *h);
static void ngx_commerce_settle_decided(ngx_commerce_pay_t *pay,
    PGresult *res);
static void ngx_commerce_settle_cancel(ngx_commerce_pay_t *pay);
static void ngx_commerce_settle_cancelled(ngx_commerce_http_t *h);
static void ngx_commerce_pay_log(ngx_commerce_pay_t *pay,
    ngx_commerce_op_e op, const char *dir);
static void ngx_commerce_pay_log_row(ngx_commerce_pay_t *pay, const char *op,
    const char *dir, ngx_str_t *method, ngx_str_t *uri, ngx_int_t status,
    ngx_msec_t latency, ngx_str_t *req, ngx_str_t *resp, const char *err);
static void ngx_commerce_log_done(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res);
static void ngx_commerce_reconcile_handler(ngx_event_t *ev);
static void ngx_commerce_reconcile_done(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static yajl_val ngx_commerce_json_parse(ngx_pool_t *pool, u_char *data,
    size_t len);
static yajl_val ngx_commerce_json_get(yajl_val v, const char *a,
    const char *b);
static ngx_int_t ngx_commerce_json_int(yajl_val v, const char *a,
    int64_t *out);
static ngx_int_t ngx_commerce_json_str(ngx_pool_t *pool, yajl_val v,
    const char *a, const char *b, ngx_str_t *out, size_t max);
static char *ngx_commerce_pay_cstr(ngx_pool_t *pool, ngx_str_t *s);


/* ------------------------------------------------------------------------
 * REQUEST flow
 */

ngx_int_t
ngx_commerce_card_start(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    int64_t order_id, cm_order_req_t *order, cm_payment_req_t *card)
{
    char                    *last4;
    u_char                  *ids, *qty, *p, *q;
    size_t                   size;
    ngx_uint_t               i;
    ngx_msec_t               retry_after;
    ngx_commerce_pay_t      *pay;
    ngx_commerce_gateway_t  *gw;
    ngx_http_cleanup_t      *cln;
    ngx_commerce_main_conf_t *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (mcf->gateways.nelts == 0 || mcf->shm == NULL) {
        return ngx_commerce_send_error(r, NGX_HTTP_BAD_REQUEST,
                                       "INVALID_REQUEST",
                                       "card payments are not configured");
    }

    /* nothing is written when no gateway would take the call */

    gw = ngx_commerce_pay_pick(&retry_after);

    if (gw == NULL) {
        ngx_commerce_log(NGX_LOG_WARN, r, ctx,
                         "no payment gateway available: every breaker is "
                         "open");
        return ngx_commerce_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "PG_UNAVAILABLE",
                                       "no payment gateway is available, "
                                       "retry later");
    }

    pay = ngx_commerce_pay_create(r->connection->log);
    if (pay == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        ngx_commerce_pay_destroy(pay);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_commerce_pay_detach;
    cln->data = pay;

    pay->cleanup = cln;
    pay->r = r;

    ngx_commerce_watch_client(r, ctx);

    pay->ctx = ctx;
    pay->kind = NGX_COMMERCE_PAY_REQUEST;
    pay->gw = gw;
    pay->user_id = ctx->claims.user_id;
    pay->order_id = order_id;
    pay->card = *card;
    pay->attempt = 0;

    /* the card number itself stays in memory only; the database gets 4 */
    last4 = ngx_pnalloc(pay->pool, 5);
    if (last4 == NULL) {
        goto failed;
    }

    ngx_memcpy(last4, pay->card.card_no + 15, 4);
    last4[4] = '\0';

    if (order_id) {
        if (ngx_commerce_pay_query(pay, NGX_COMMERCE_STMT_CARD_BEGIN,
                                   NGX_COMMERCE_STEP_BEGIN, 5,
                                   ngx_commerce_param_int(pay->pool,
                                                        pay->user_id),
                                   ngx_commerce_param_int(pay->pool, order_id),
                                   ngx_commerce_pay_cstr(pay->pool,
                                                         &gw->name),
                                   (char *) pay->card.card_type,
                                   last4)
            != NGX_OK)
        {
            goto failed;
        }

        return NGX_DONE;
    }

    size = 2 + order->nitems * (NGX_INT64_LEN + 1);

    ids = ngx_pnalloc(pay->pool, size);
    qty = ngx_pnalloc(pay->pool, size);
    if (ids == NULL || qty == NULL) {
        goto failed;
    }

    p = ids;
    q = qty;
    *p++ = '{';
    *q++ = '{';

    for (i = 0; i < order->nitems; i++) {
        if (i) {
            *p++ = ',';
            *q++ = ',';
        }

        p = ngx_sprintf(p, "%L", order->items[i].product_id);
        q = ngx_sprintf(q, "%D", order->items[i].quantity);
    }

    *p++ = '}';
    *p = '\0';
    *q++ = '}';
    *q = '\0';

    if (ngx_commerce_pay_query(pay, NGX_COMMERCE_STMT_ORDER_CREATE_CARD,
                               NGX_COMMERCE_STEP_BEGIN, 6,
                               ngx_commerce_param_int(pay->pool, pay->user_id),
                               (char *) ids, (char *) qty,
                               ngx_commerce_pay_cstr(pay->pool, &gw->name),
                               (char *) pay->card.card_type,
                               last4)
        != NGX_OK)
    {
        goto failed;
    }

    return NGX_DONE;

failed:

    pay->r = NULL;
    cln->handler = NULL;
    ngx_commerce_pay_destroy(pay);

    return ngx_commerce_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "DB_UNAVAILABLE",
                                   "database unavailable, retry later");
}


static ngx_commerce_gateway_t *
ngx_commerce_pay_pick(ngx_msec_t *retry_after)
{
    ngx_uint_t                 i;
    ngx_msec_t                 ra, min;
    ngx_commerce_gateway_t    *gw;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_commerce_main_conf();
    gw = mcf->gateways.elts;
    min = 60000;

    for (i = 0; i < mcf->gateways.nelts; i++) {
        ra = 0;

        if (ngx_commerce_breaker_admits(&gw[i], &ra) == NGX_OK) {
            return &gw[i];
        }

        min = ngx_min(min, ra);
    }

    *retry_after = min;

    return NULL;
}


static ngx_commerce_pay_t *
ngx_commerce_pay_create(ngx_log_t *log)
{
    ngx_pool_t          *pool;
    ngx_commerce_pay_t  *pay;

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    pay = ngx_pcalloc(pool, sizeof(ngx_commerce_pay_t));
    if (pay == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    pay->pool = pool;

    /* a copy: the client connection's log may go away before the flow */
    pay->log = ngx_palloc(pool, sizeof(ngx_log_t));
    if (pay->log == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    *pay->log = *ngx_cycle->log;
    (void) log;

    pool->log = pay->log;

    return pay;
}


static void
ngx_commerce_pay_destroy(ngx_commerce_pay_t *pay)
{
    if (pay->retry.timer_set) {
        ngx_del_timer(&pay->retry);
    }

    if (pay->retry.posted) {
        ngx_delete_posted_event(&pay->retry);
    }

    if (pay->http.post.posted) {
        ngx_delete_posted_event(&pay->http.post);
    }

    ngx_destroy_pool(pay->pool);
}


/* the client went away: the flow goes on without it */

static void
ngx_commerce_pay_detach(void *data)
{
    ngx_commerce_pay_t  *pay = data;

    if (pay->r != NULL) {
        ngx_log_error(NGX_LOG_INFO, pay->log, 0,
                      "commerce: [%V] client went away during the card "
                      "payment; it goes on", &pay->ctx->request_id);
    }

    pay->r = NULL;
    pay->ctx = NULL;
    pay->cleanup = NULL;
}


static ngx_int_t
ngx_commerce_pay_query(ngx_commerce_pay_t *pay, ngx_commerce_stmt_e stmt,
    ngx_commerce_step_e step, int n, ...)
{
    int                        i;
    va_list                    args;
    ngx_int_t                  rc;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_commerce_main_conf();

    pay->step = step;

    ngx_memzero(&pay->query, sizeof(ngx_commerce_pg_query_t));
    pay->query.stmt = stmt;
    pay->query.nparams = n;
    pay->query.log = pay->log;
    pay->query.data = pay;
    pay->query.handler = ngx_commerce_pay_db_done;

    va_start(args, n);
    for (i = 0; i < n; i++) {
        pay->query.params[i] = va_arg(args, const char *);
    }
    va_end(args);

    rc = ngx_commerce_pg_submit(mcf->pool, &pay->query);

    return rc == NGX_OK ? NGX_OK : NGX_ERROR;
}


static void
ngx_commerce_pay_db_done(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    char                 *state, *code, *detail;
    u_char               *doc;
    size_t                len;
    yajl_val              v;
    ngx_str_t             body;
    ngx_commerce_pay_t   *pay;

    pay = q->data;

    if (rc != NGX_OK || res == NULL) {
        goto db_failed;
    }

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        code = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);

        if (state && code
            && ngx_strcmp(state, NGX_COMMERCE_SQLSTATE_BUSINESS) == 0
            && pay->kind == NGX_COMMERCE_PAY_REQUEST
            && (pay->step == NGX_COMMERCE_STEP_BEGIN
                || pay->step == NGX_COMMERCE_STEP_ORDER))
        {
            /* a business error before anything was sent: answer it */
            ngx_commerce_pay_respond(pay, 0, NULL, code,
                                     detail ? detail : code);
            return;
        }

        ngx_log_error(NGX_LOG_ERR, pay->log, 0,
                      "commerce: card payment step %d failed: %s",
                      (int) pay->step, PQresultErrorMessage(res));
        goto db_failed;
    }

    len = 0;
    doc = NULL;

    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        len = PQgetlength(res, 0, 0);
        doc = ngx_pnalloc(pay->pool, len + 1);
        if (doc == NULL) {
            goto db_failed;
        }

        ngx_memcpy(doc, PQgetvalue(res, 0, 0), len);
        doc[len] = '\0';
    }

    switch (pay->step) {

    case NGX_COMMERCE_STEP_BEGIN:
        v = ngx_commerce_json_parse(pay->pool, doc, len);

        if (v == NULL
            || ngx_commerce_json_int(v, "paymentId", &pay->payment_id)
               != NGX_OK
            || ngx_commerce_json_int(v, "orderId", &pay->order_id) != NGX_OK
            || ngx_commerce_json_int(v, "amount", &pay->amount) != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, pay->log, 0,
                          "commerce: card payment: bad begin document");
            goto db_failed;
        }

        /* the order as it stands now, for a 202 answer */
        body.data = (u_char *) ngx_strstr(doc, "\"order\":");
        if (body.data == NULL) {
            goto db_failed;
        }

        body.data += sizeof("\"order\":") - 1;
        body.len = doc + len - 1 - body.data;     /* drop the final '}' */
        pay->order_json = body;

        ngx_commerce_pay_send(pay);
        return;

    case NGX_COMMERCE_STEP_ACCEPTED:
    case NGX_COMMERCE_STEP_ORDER:
        body.data = doc;
        body.len = len;

        ngx_commerce_pay_respond(pay, pay->step == NGX_COMMERCE_STEP_ORDER
                                      ? NGX_HTTP_OK : NGX_HTTP_ACCEPTED,
                                 &body, NULL, NULL);
        return;

    case NGX_COMMERCE_STEP_DECLINED:
        /* the order after the decline: stock released, reason shown */
        if (ngx_commerce_pay_query(pay, NGX_COMMERCE_STMT_ORDER_GET,
                                   NGX_COMMERCE_STEP_ORDER, 2,
                                   ngx_commerce_param_int(pay->pool,
                                                        pay->user_id),
                                   ngx_commerce_param_int(pay->pool,
                                                        pay->order_id))
            != NGX_OK)
        {
            goto db_failed;
        }

        return;

    case NGX_COMMERCE_STEP_ABORT:
        ngx_commerce_pay_unavailable(pay);
        return;

    case NGX_COMMERCE_STEP_GATEWAY:
        ngx_commerce_pay_post(pay);
        return;

    case NGX_COMMERCE_STEP_LOOKUP:
        v = ngx_commerce_json_parse(pay->pool, doc, len);

        if (v == NULL
            || ngx_commerce_json_int(v, "paymentId", &pay->payment_id)
               != NGX_OK
            || ngx_commerce_json_int(v, "orderId", &pay->order_id) != NGX_OK
            || ngx_commerce_json_int(v, "userId", &pay->user_id) != NGX_OK)
        {
            goto db_failed;
        }

        ngx_commerce_settle_ask(pay);
        return;

    case NGX_COMMERCE_STEP_SETTLE:
        ngx_commerce_settle_decided(pay, res);
        return;

    case NGX_COMMERCE_STEP_CANCELLED:
    default:
        ngx_commerce_pay_destroy(pay);
        return;
    }

db_failed:

    if (pay->kind == NGX_COMMERCE_PAY_REQUEST
        && pay->step == NGX_COMMERCE_STEP_BEGIN)
    {
        ngx_commerce_pay_respond(pay, NGX_HTTP_SERVICE_UNAVAILABLE, NULL,
                                 "DB_UNAVAILABLE",
                                 "database unavailable, retry later");
        return;
    }

    if (pay->kind == NGX_COMMERCE_PAY_REQUEST && pay->r != NULL
        && pay->order_json.len)
    {
        /* the gateway has it; the reconciler will settle it */
        ngx_commerce_pay_respond(pay, NGX_HTTP_ACCEPTED, &pay->order_json,
                                 NULL, NULL);
        return;
    }

    if (pay->kind == NGX_COMMERCE_PAY_REQUEST) {
        ngx_commerce_pay_respond(pay, NGX_HTTP_SERVICE_UNAVAILABLE, NULL,
                                 "DB_UNAVAILABLE",
                                 "database unavailable, retry later");
        return;
    }

    ngx_commerce_pay_destroy(pay);
}


/* take a breaker permit (first admitting gateway by priority) and POST */

static void
ngx_commerce_pay_send(ngx_commerce_pay_t *pay)
{
    ngx_uint_t                 i;
    ngx_msec_t                 ra;
    ngx_commerce_gateway_t    *gw;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_commerce_main_conf();
    gw = mcf->gateways.elts;

    pay->attempt++;

    for (i = 0; i < mcf->gateways.nelts; i++) {
        if (ngx_commerce_breaker_acquire(&gw[i], ngx_current_msec,
                                         &pay->permit, &ra)
            == NGX_OK)
        {
            break;
        }
    }

    if (i == mcf->gateways.nelts) {
        ngx_log_error(NGX_LOG_WARN, pay->log, 0,
                      "commerce: payment %L: no gateway admits a call, "
                      "rolling back", pay->payment_id);

        if (ngx_commerce_pay_query(pay, NGX_COMMERCE_STMT_CARD_ABORT,
                                   NGX_COMMERCE_STEP_ABORT, 2,
                                   ngx_commerce_param_int(pay->pool,
                                                        pay->payment_id),
                                   "no payment gateway available")
            != NGX_OK)
        {
            ngx_commerce_pay_unavailable(pay);
        }

        return;
    }

    if (pay->attempt == 1) {
        ngx_commerce_budget_request(&gw[i]);
    }

    if (&gw[i] != pay->gw) {
        /*
         * falling back to another gateway: the payment must name the one
         * that may hold it, or the reconciler would ask the wrong one
         */
        pay->gw = &gw[i];

        if (ngx_commerce_pay_query(pay, NGX_COMMERCE_STMT_CARD_GATEWAY,
                                   NGX_COMMERCE_STEP_GATEWAY, 2,
                                   ngx_commerce_param_int(pay->pool,
                                                        pay->payment_id),
                                   ngx_commerce_pay_cstr(pay->pool,
                                                         &pay->gw->name))
            != NGX_OK)
        {
            ngx_commerce_breaker_record(pay->gw, pay->permit, 0, 0);
            ngx_commerce_pay_unavailable(pay);
        }

        return;
    }

    ngx_commerce_pay_post(pay);
}


static void
ngx_commerce_pay_post(ngx_commerce_pay_t *pay)
{
    u_char                    *p;
    size_t                     len;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_commerce_main_conf();

    len = sizeof("{\"orderId\":\"\",\"cardType\":\"\",\"cardNo\":\"\","
                 "\"amount\":,\"callbackUrl\":\"?gateway=\"}") - 1
          + 3 * NGX_INT64_LEN + 32 + mcf->callback_url.len
          + pay->gw->name.len;

    p = ngx_pnalloc(pay->pool, len);
    if (p == NULL) {
        ngx_commerce_pay_unavailable(pay);
        return;
    }

    ngx_memzero(&pay->http, sizeof(ngx_commerce_http_t));

    pay->http.request_body.data = p;
    /* gateways want an orderId of 6 characters at least */
    p = ngx_sprintf(p, "{\"orderId\":\"%06L\",\"cardType\":\"%s\","
                       "\"cardNo\":\"%s\",\"amount\":%L,"
                       "\"callbackUrl\":\"%V?gateway=%V\"}",
                    pay->order_id, pay->card.card_type, pay->card.card_no,
                    pay->amount, &mcf->callback_url, &pay->gw->name);
    pay->http.request_body.len = p - pay->http.request_body.data;

    ngx_str_set(&pay->http.method, "POST");
    ngx_str_set(&pay->http.uri, "/api/v1/payments");

    pay->http.user_id.data = (u_char *) ngx_commerce_param_int(pay->pool,
                                                             pay->user_id);
    pay->http.user_id.len = ngx_strlen(pay->http.user_id.data);
    pay->http.pool = pay->pool;
    pay->http.log = pay->log;
    pay->http.gw = pay->gw;
    pay->http.handler = ngx_commerce_pay_sent;
    pay->http.data = pay;

    if (ngx_commerce_http_start(&pay->http) != NGX_OK) {
        ngx_commerce_breaker_record(pay->gw, pay->permit, 1, 0);
        ngx_commerce_pay_retry(pay);
    }
}


static void
ngx_commerce_pay_sent(ngx_commerce_http_t *h)
{
    yajl_val                 v;
    ngx_uint_t               failed;
    ngx_commerce_pay_t      *pay;
    ngx_commerce_outcome_e   out;

    pay = h->data;

    ngx_commerce_pay_log(pay, NGX_COMMERCE_OP_CREATE, "OUT");

    switch (h->rc) {

    case NGX_COMMERCE_HTTP_OK:
        if (h->status >= 200 && h->status < 300) {
            out = NGX_COMMERCE_OUT_ACCEPTED;
        } else if (h->status < 500) {
            out = NGX_COMMERCE_OUT_DECLINED;
        } else {
            out = NGX_COMMERCE_OUT_ERROR;
        }
        break;

    case NGX_COMMERCE_HTTP_REFUSED:
    case NGX_COMMERCE_HTTP_CONNECT_TIMEOUT:
        out = NGX_COMMERCE_OUT_REFUSED;
        break;

    case NGX_COMMERCE_HTTP_TIMEOUT:
        out = NGX_COMMERCE_OUT_TIMEOUT;
        break;

    default:
        out = NGX_COMMERCE_OUT_BROKEN;
        break;
    }

    ngx_commerce_metrics_gw(pay->gw, NGX_COMMERCE_OP_CREATE, out,
                            h->latency);

    failed = (out != NGX_COMMERCE_OUT_ACCEPTED
              && out != NGX_COMMERCE_OUT_DECLINED);

    ngx_commerce_breaker_record(pay->gw, pay->permit, failed,
                                out == NGX_COMMERCE_OUT_TIMEOUT
                                ? pay->gw->timeout : h->latency);

    switch (out) {

    case NGX_COMMERCE_OUT_ACCEPTED:
        v = ngx_commerce_json_parse(pay->pool, h->body.data, h->body.len);

        if (v == NULL
            || ngx_commerce_json_str(pay->pool, v, "data", "transactionKey",
                                     &pay->key, NGX_COMMERCE_KEY_MAX)
               != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, pay->log, 0,
                          "commerce: gateway %V accepted payment %L without "
                          "a transaction key; the reconciler will look it "
                          "up", &pay->gw->name, pay->payment_id);
            ngx_commerce_pay_respond(pay, NGX_HTTP_ACCEPTED,
                                     &pay->order_json, NULL, NULL);
            return;
        }

        if (ngx_commerce_pay_query(pay, NGX_COMMERCE_STMT_CARD_ACCEPTED,
                                   NGX_COMMERCE_STEP_ACCEPTED, 3,
                                   ngx_commerce_param_int(pay->pool,
                                                        pay->payment_id),
                                   ngx_commerce_pay_cstr(pay->pool,
                                                         &pay->key),
                                   ngx_commerce_pay_cstr(pay->pool,
                                                         &pay->gw->name))
            != NGX_OK)
        {
            ngx_commerce_pay_respond(pay, NGX_HTTP_ACCEPTED,
                                     &pay->order_json, NULL, NULL);
        }

        return;

    case NGX_COMMERCE_OUT_DECLINED:
        /* the gateway refused the request itself: a decline, never retried */
        v = ngx_commerce_json_parse(pay->pool, h->body.data, h->body.len);

        if (v == NULL
            || ngx_commerce_json_str(pay->pool, v, "meta", "message",
                                     &pay->settle_reason, 200)
               != NGX_OK)
        {
            ngx_str_set(&pay->settle_reason, "declined by the gateway");
        }

        if (ngx_commerce_pay_query(pay, NGX_COMMERCE_STMT_CARD_SETTLE,
                                   NGX_COMMERCE_STEP_DECLINED, 4,
                                   ngx_commerce_param_int(pay->pool,
                                                        pay->payment_id),
                                   NULL, "FAILED",
                                   ngx_commerce_pay_cstr(pay->pool,
                                                    &pay->settle_reason))
            != NGX_OK)
        {
            ngx_commerce_pay_respond(pay, NGX_HTTP_ACCEPTED,
                                     &pay->order_json, NULL, NULL);
        }

        return;

    case NGX_COMMERCE_OUT_ERROR:
        if (h->status == 500 || h->status == 503) {
            /* documented by the gateway: failed before creating anything */
            ngx_commerce_pay_retry(pay);
            return;
        }

        /* fall through */

    case NGX_COMMERCE_OUT_TIMEOUT:
    case NGX_COMMERCE_OUT_BROKEN:
        /* it may have arrived: never re-sent, the reconciler settles it */
        ngx_log_error(NGX_LOG_WARN, pay->log, 0,
                      "commerce: payment %L left PENDING after %s from "
                      "gateway %V", pay->payment_id,
                      ngx_commerce_http_rc_name(h->rc), &pay->gw->name);

        ngx_commerce_pay_respond(pay, NGX_HTTP_ACCEPTED, &pay->order_json,
                                 NULL, NULL);
        return;

    default: /* refused: nothing was sent */
        ngx_commerce_pay_retry(pay);
        return;
    }
}


static void
ngx_commerce_pay_retry(ngx_commerce_pay_t *pay)
{
    ngx_msec_t  delay;

    if (pay->attempt >= pay->gw->retries
        || ngx_commerce_budget_retry(pay->gw) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, pay->log, 0,
                      "commerce: payment %L: gateway unavailable after %ui "
                      "attempt(s), rolling back", pay->payment_id,
                      pay->attempt);

        if (ngx_commerce_pay_query(pay, NGX_COMMERCE_STMT_CARD_ABORT,
                                   NGX_COMMERCE_STEP_ABORT, 2,
                                   ngx_commerce_param_int(pay->pool,
                                                        pay->payment_id),
                                   "payment gateway unavailable")
            != NGX_OK)
        {
            ngx_commerce_pay_unavailable(pay);
        }

        return;
    }

    delay = (ngx_msec_t) cm_backoff_full_jitter((int64_t) pay->gw->retry_base,
                                                (int64_t) pay->gw->retry_cap,
                                                (unsigned) pay->attempt - 1,
                                                ((uint32_t) ngx_random() << 16)
                                                ^ (uint32_t) ngx_random());

    ngx_log_error(NGX_LOG_INFO, pay->log, 0,
                  "commerce: payment %L: attempt %ui failed, retrying in "
                  "%Mms", pay->payment_id, pay->attempt, delay);

    pay->retry.handler = ngx_commerce_pay_retry_handler;
    pay->retry.data = pay;
    pay->retry.log = pay->log;

    ngx_add_timer(&pay->retry, delay ? delay : 1);
}


static void
ngx_commerce_pay_retry_handler(ngx_event_t *ev)
{
    ngx_commerce_pay_send(ev->data);
}


static void
ngx_commerce_pay_unavailable(ngx_commerce_pay_t *pay)
{
    ngx_commerce_pay_respond(pay, NGX_HTTP_SERVICE_UNAVAILABLE, NULL,
                             "PG_UNAVAILABLE",
                             "no payment gateway is available, retry later");
}


/*
 * Answer the client if it is still there, then end the flow.  A business
 * error code (status 0) is mapped by the shared table.
 */

static void
ngx_commerce_pay_respond(ngx_commerce_pay_t *pay, ngx_uint_t status,
    ngx_str_t *body, const char *code, const char *msg)
{
    u_char              *copy;
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = pay->r;

    if (r == NULL) {
        ngx_commerce_pay_destroy(pay);
        return;
    }

    c = r->connection;
    pay->cleanup->handler = NULL;
    pay->r = NULL;

    ngx_http_set_log_request(c->log, r);

    if (code != NULL) {
        if (status == 0) {
            status = ngx_commerce_error_status(code);
            if (status == 0) {
                status = NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }

        rc = ngx_commerce_send_error(r, status, code, msg);

    } else {
        copy = ngx_pnalloc(r->pool, body->len);
        if (copy == NULL) {
            rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

        } else {
            ngx_memcpy(copy, body->data, body->len);
            rc = ngx_commerce_reply(r, status, copy, body->len);
        }
    }

    ngx_commerce_pay_destroy(pay);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }

    ngx_http_run_posted_requests(c);
}


/* ------------------------------------------------------------------------
 * Callbacks: POST /api/v1/payments/callback?gateway=NAME (no JWT)
 */

ngx_int_t
ngx_commerce_callback_handler(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    const char                *reason;
    yajl_val                   v;
    ngx_str_t                  name, sig, cb_body;
    ngx_list_part_t           *part;
    ngx_table_elt_t           *h;
    ngx_uint_t                 i;
    ngx_commerce_pay_t        *pay;
    ngx_commerce_gateway_t    *gw;
    ngx_commerce_shctx_t      *sh;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);
    sh = ngx_commerce_sh();

    if (mcf->callback_secret.len) {
        sig.len = 0;
        sig.data = NULL;

        part = &r->headers_in.headers.part;
        h = part->elts;

        for (i = 0; /* void */ ; i++) {
            if (i >= part->nelts) {
                if (part->next == NULL) {
                    break;
                }
                part = part->next;
                h = part->elts;
                i = 0;
            }

            if (h[i].key.len == sizeof("X-PG-Signature") - 1
                && ngx_strncasecmp(h[i].key.data, (u_char *) "X-PG-Signature",
                                   sizeof("X-PG-Signature") - 1) == 0)
            {
                sig = h[i].value;
            }
        }

        reason = "missing signature";

        if (sig.len == 0
            || cm_sig_verify(sig.data, sig.len, mcf->callback_secret.data,
                             mcf->callback_secret.len, body, len,
                             (int64_t) ngx_time(),
                             (int64_t) mcf->callback_tolerance, &reason)
               != 0)
        {
            if (sh) {
                (void) ngx_atomic_fetch_add(&sh->m.callbacks_rejected, 1);
            }

            ngx_commerce_log(NGX_LOG_WARN, r, ctx,
                             "gateway callback rejected: %s", reason);

            return ngx_commerce_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                           "UNAUTHORIZED",
                                           "bad callback signature");
        }
    }

    if (ngx_http_arg(r, (u_char *) "gateway", 7, &name) != NGX_OK
        || (gw = ngx_commerce_gateway_by_name(&name)) == NULL)
    {
        return ngx_commerce_send_error(r, NGX_HTTP_BAD_REQUEST,
                                       "INVALID_REQUEST",
                                       "unknown or missing gateway");
    }

    pay = ngx_commerce_pay_create(r->connection->log);
    if (pay == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v = ngx_commerce_json_parse(pay->pool, body, len);

    if (v == NULL
        || ngx_commerce_json_str(pay->pool, v, "transactionKey", NULL,
                                 &pay->key, NGX_COMMERCE_KEY_MAX)
           != NGX_OK)
    {
        ngx_commerce_pay_destroy(pay);

        if (sh) {
            (void) ngx_atomic_fetch_add(&sh->m.callbacks_rejected, 1);
        }

        return ngx_commerce_send_error(r, NGX_HTTP_BAD_REQUEST,
                                       "INVALID_REQUEST",
                                       "transactionKey is required");
    }

    if (sh) {
        (void) ngx_atomic_fetch_add(&sh->m.callbacks, 1);
    }

    cb_body.data = body;
    cb_body.len = len;

    ngx_commerce_log(NGX_LOG_INFO, r, ctx,
                     "gateway %V callback for %V: confirming", &gw->name,
                     &pay->key);

    /* only a hint: the settle flow asks the gateway before changing state */
    pay->kind = NGX_COMMERCE_PAY_SETTLE;
    pay->gw = gw;
    pay->age = -1;

    /* the lookup also writes the IN CALLBACK row of the interface log */
    if (ngx_commerce_pay_query(pay, NGX_COMMERCE_STMT_CARD_CALLBACK,
                               NGX_COMMERCE_STEP_LOOKUP, 4,
                               ngx_commerce_pay_cstr(pay->pool, &gw->name),
                               ngx_commerce_pay_cstr(pay->pool, &pay->key),
                               ngx_commerce_pay_cstr(pay->pool,
                                                     &r->unparsed_uri),
                               ngx_commerce_pay_cstr(pay->pool, &cb_body))
        != NGX_OK)
    {
        ngx_commerce_pay_destroy(pay);
        return ngx_commerce_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "DB_UNAVAILABLE",
                                       "database unavailable, retry later");
    }

    {
        ngx_str_t  ok = ngx_string("{\"received\":true}");

        return ngx_commerce_send_json(r, NGX_HTTP_OK, ok.data, ok.len, 0);
    }
}


static ngx_commerce_gateway_t *
ngx_commerce_gateway_by_name(ngx_str_t *name)
{
    ngx_uint_t                 i;
    ngx_commerce_gateway_t    *gw;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_commerce_main_conf();
    gw = mcf->gateways.elts;

    for (i = 0; i < mcf->gateways.nelts; i++) {
        if (gw[i].name.len == name->len
            && ngx_strncmp(gw[i].name.data, name->data, name->len) == 0)
        {
            return &gw[i];
        }
    }

    return NULL;
}


/* ------------------------------------------------------------------------
 * SETTLE flow: ask the gateway, settle forward-only, net-cancel if needed
 */

static void
ngx_commerce_settle_ask(ngx_commerce_pay_t *pay)
{
    u_char  *p;

    ngx_memzero(&pay->http, sizeof(ngx_commerce_http_t));

    ngx_str_set(&pay->http.method, "GET");

    p = ngx_pnalloc(pay->pool, sizeof("/api/v1/payments?orderId=")
                               + NGX_INT64_LEN + pay->key.len);
    if (p == NULL) {
        ngx_commerce_pay_destroy(pay);
        return;
    }

    pay->http.uri.data = p;

    if (pay->key.len) {
        p = ngx_sprintf(p, "/api/v1/payments/%V", &pay->key);
    } else {
        p = ngx_sprintf(p, "/api/v1/payments?orderId=%06L", pay->order_id);
    }

    pay->http.uri.len = p - pay->http.uri.data;

    pay->http.user_id.data = (u_char *) ngx_commerce_param_int(pay->pool,
                                                             pay->user_id);
    pay->http.user_id.len = ngx_strlen(pay->http.user_id.data);
    pay->http.pool = pay->pool;
    pay->http.log = pay->log;
    pay->http.gw = pay->gw;
    pay->http.handler = ngx_commerce_settle_answer;
    pay->http.data = pay;
    pay->step = NGX_COMMERCE_STEP_ASK;

    if (ngx_commerce_http_start(&pay->http) != NGX_OK) {
        ngx_commerce_pay_destroy(pay);
    }
}


static void
ngx_commerce_settle_answer(ngx_commerce_http_t *h)
{
    char                      *sv;
    size_t                     i;
    yajl_val                   v, list, t, st;
    ngx_str_t                  status, reason, key;
    ngx_commerce_op_e          op;
    ngx_commerce_pay_t        *pay;
    ngx_commerce_shctx_t      *sh;
    ngx_commerce_outcome_e     out;
    ngx_commerce_main_conf_t  *mcf;

    pay = h->data;
    mcf = ngx_commerce_main_conf();
    sh = ngx_commerce_sh();
    op = pay->key.len ? NGX_COMMERCE_OP_STATUS : NGX_COMMERCE_OP_LIST;

    ngx_commerce_pay_log(pay, op, "OUT");

    if (h->rc != NGX_COMMERCE_HTTP_OK) {
        out = (h->rc == NGX_COMMERCE_HTTP_TIMEOUT) ? NGX_COMMERCE_OUT_TIMEOUT
              : (h->rc == NGX_COMMERCE_HTTP_REFUSED
                 || h->rc == NGX_COMMERCE_HTTP_CONNECT_TIMEOUT)
                ? NGX_COMMERCE_OUT_REFUSED : NGX_COMMERCE_OUT_BROKEN;
        ngx_commerce_metrics_gw(pay->gw, op, out, h->latency);
        goto later;
    }

    ngx_commerce_metrics_gw(pay->gw, op,
                            h->status < 300 ? NGX_COMMERCE_OUT_ACCEPTED
                            : h->status < 500 ? NGX_COMMERCE_OUT_DECLINED
                            : NGX_COMMERCE_OUT_ERROR, h->latency);

    ngx_str_null(&status);
    ngx_str_null(&reason);
    ngx_str_null(&key);

    if (h->status == 404) {
        if (pay->key.len == 0 && pay->age >= (int64_t) mcf->reconcile_grace) {
            /* the request never reached the gateway */
            ngx_str_set(&status, "FAILED");
            ngx_str_set(&reason, "payment request never reached the "
                                 "gateway");
            if (sh) {
                (void) ngx_atomic_fetch_add(&sh->m.settled_not_found, 1);
            }
        }

        goto decide;
    }

    if (h->status != 200) {
        goto later;
    }

    v = ngx_commerce_json_parse(pay->pool, h->body.data, h->body.len);
    if (v == NULL) {
        goto later;
    }

    if (pay->key.len) {
        (void) ngx_commerce_json_str(pay->pool, v, "data", "status", &status,
                                     32);
        (void) ngx_commerce_json_str(pay->pool, v, "data", "reason", &reason,
                                     200);
        key = pay->key;

    } else {
        list = ngx_commerce_json_get(v, "data", "transactions");

        if (list == NULL || !YAJL_IS_ARRAY(list)) {
            goto later;
        }

        /* an approval wins; else one still pending; else the last decline */
        for (i = 0; i < YAJL_GET_ARRAY(list)->len; i++) {
            t = YAJL_GET_ARRAY(list)->values[i];
            st = ngx_commerce_json_get(t, "status", NULL);

            sv = (st != NULL && YAJL_IS_STRING(st)) ? YAJL_GET_STRING(st)
                                                    : NULL;
            if (sv == NULL) {
                continue;
            }

            if (ngx_strcmp(sv, "SUCCESS") == 0) {
                ngx_str_set(&status, "SUCCESS");
                (void) ngx_commerce_json_str(pay->pool, t, "transactionKey",
                                             NULL, &key,
                                             NGX_COMMERCE_KEY_MAX);
                break;
            }

            if (ngx_strcmp(sv, "PENDING") == 0) {
                ngx_str_set(&status, "PENDING");

            } else if (status.len == 0 || status.data[0] != 'P') {
                ngx_str_set(&status, "FAILED");
                (void) ngx_commerce_json_str(pay->pool, t, "reason", NULL,
                                             &reason, 200);
                (void) ngx_commerce_json_str(pay->pool, t, "transactionKey",
                                             NULL, &key,
                                             NGX_COMMERCE_KEY_MAX);
            }
        }
    }

decide:

    if ((status.len == 0 || ngx_strncmp(status.data, "PENDING", 7) == 0)
        && pay->age >= (int64_t) mcf->payment_timeout)
    {
        /* seed 003: a payment is given 10 minutes */
        ngx_str_set(&status, "FAILED");
        ngx_str_set(&reason, "payment timeout");

        if (sh) {
            (void) ngx_atomic_fetch_add(&sh->m.settled_timeout, 1);
        }

        /* a transaction the gateway still holds gets cancelled there */
        pay->timed_out = 1;
        pay->settle_status = status;
        pay->settle_reason = reason;

        if (key.len && pay->key.len == 0) {
            pay->key = key;
        }

        if (ngx_commerce_pay_query(pay, NGX_COMMERCE_STMT_CARD_TIMEOUT,
                                   NGX_COMMERCE_STEP_SETTLE, 1,
                                   ngx_commerce_param_int(pay->pool,
                                                        pay->payment_id))
            == NGX_OK)
        {
            return;
        }

        ngx_commerce_pay_destroy(pay);
        return;
    }

    if (status.len == 0 || ngx_strncmp(status.data, "PENDING", 7) == 0) {
        goto later;
    }

    if (ngx_strncmp(status.data, "SUCCESS", 7) != 0
        && ngx_strncmp(status.data, "FAILED", 6) != 0)
    {
        /* CANCELLED or unknown at the gateway: treat as declined */
        ngx_str_set(&status, "FAILED");
        if (reason.len == 0) {
            ngx_str_set(&reason, "cancelled at the gateway");
        }
    }

    pay->settle_status = status;
    pay->settle_reason = reason;

    if (key.len && pay->key.len == 0) {
        pay->key = key;
    }

    if (ngx_commerce_pay_query(pay, NGX_COMMERCE_STMT_CARD_SETTLE,
                               NGX_COMMERCE_STEP_SETTLE, 4,
                               ngx_commerce_param_int(pay->pool,
                                                    pay->payment_id),
                               pay->key.len
                               ? ngx_commerce_pay_cstr(pay->pool, &pay->key)
                               : NULL,
                               ngx_commerce_pay_cstr(pay->pool, &status),
                               reason.len
                               ? ngx_commerce_pay_cstr(pay->pool, &reason)
                               : NULL)
        == NGX_OK)
    {
        return;
    }

later:

    /* undecided or unreachable: the reconciler comes back to it */
    ngx_commerce_pay_destroy(pay);
}


static void
ngx_commerce_settle_decided(ngx_commerce_pay_t *pay, PGresult *res)
{
    u_char                *doc;
    yajl_val               v, nc, ap;
    ngx_commerce_shctx_t  *sh;

    sh = ngx_commerce_sh();

    doc = (u_char *) PQgetvalue(res, 0, 0);
    v = ngx_commerce_json_parse(pay->pool, doc, PQgetlength(res, 0, 0));

    if (v == NULL) {
        ngx_commerce_pay_destroy(pay);
        return;
    }

    ap = ngx_commerce_json_get(v, "applied", NULL);
    nc = ngx_commerce_json_get(v, "netCancel", NULL);

    if (pay->key.len == 0) {
        (void) ngx_commerce_json_str(pay->pool, v, "transactionKey", NULL,
                                     &pay->key, NGX_COMMERCE_KEY_MAX);
    }

    if (ap != NULL && YAJL_IS_TRUE(ap) && sh != NULL) {
        if (pay->settle_status.data[0] == 'S') {
            (void) ngx_atomic_fetch_add(&sh->m.settled_success, 1);
        } else {
            (void) ngx_atomic_fetch_add(&sh->m.settled_failed, 1);
        }

        ngx_log_error(NGX_LOG_INFO, pay->log, 0,
                      "commerce: payment %L settled %V by gateway %V",
                      pay->payment_id, &pay->settle_status, &pay->gw->name);
    }

    if (nc == NULL || !YAJL_IS_TRUE(nc) || pay->key.len == 0) {
        ngx_commerce_pay_destroy(pay);
        return;
    }

    /* 망취소: the gateway approved what we can no longer deliver */
    ngx_commerce_settle_cancel(pay);
}


static void
ngx_commerce_settle_cancel(ngx_commerce_pay_t *pay)
{
    if (pay->timed_out) {
        ngx_log_error(NGX_LOG_WARN, pay->log, 0,
                      "commerce: payment %L (order %L) timed out while "
                      "pending at %V: cancelling it at the gateway",
                      pay->payment_id, pay->order_id, &pay->gw->name);

    } else {
        ngx_log_error(NGX_LOG_WARN, pay->log, 0,
                      "commerce: payment %L (order %L) was approved by %V "
                      "but cannot be applied: cancelling it at the gateway",
                      pay->payment_id, pay->order_id, &pay->gw->name);
    }

    ngx_memzero(&pay->http, sizeof(ngx_commerce_http_t));

    ngx_str_set(&pay->http.method, "POST");

    pay->http.uri.data = ngx_pnalloc(pay->pool, sizeof("/api/v1/payments/"
                                                       "/cancel")
                                                + pay->key.len);
    if (pay->http.uri.data == NULL) {
        ngx_commerce_pay_destroy(pay);
        return;
    }

    pay->http.uri.len = ngx_sprintf(pay->http.uri.data,
                                    "/api/v1/payments/%V/cancel", &pay->key)
                        - pay->http.uri.data;

    pay->http.user_id.data = (u_char *) ngx_commerce_param_int(pay->pool,
                                                             pay->user_id);
    pay->http.user_id.len = ngx_strlen(pay->http.user_id.data);
    pay->http.pool = pay->pool;
    pay->http.log = pay->log;
    pay->http.gw = pay->gw;
    pay->http.handler = ngx_commerce_settle_cancelled;
    pay->http.data = pay;
    pay->step = NGX_COMMERCE_STEP_CANCEL;

    if (ngx_commerce_http_start(&pay->http) != NGX_OK) {
        ngx_commerce_pay_destroy(pay);
    }
}


static void
ngx_commerce_settle_cancelled(ngx_commerce_http_t *h)
{
    ngx_uint_t             ok, nothing;
    ngx_commerce_pay_t    *pay;
    ngx_commerce_shctx_t  *sh;

    pay = h->data;
    sh = ngx_commerce_sh();

    ngx_commerce_pay_log(pay, NGX_COMMERCE_OP_CANCEL, "OUT");

    ok = (h->rc == NGX_COMMERCE_HTTP_OK && h->status == 200);

    /*
     * 409: the gateway says the transaction is in a state that cannot be
     * cancelled, which for these gateways means it was declined: it holds
     * no money of the buyer's, so nothing is owed any more.
     */
    nothing = (h->rc == NGX_COMMERCE_HTTP_OK && h->status == 409);

    ngx_commerce_metrics_gw(pay->gw, NGX_COMMERCE_OP_CANCEL,
                            ok ? NGX_COMMERCE_OUT_ACCEPTED
                               : NGX_COMMERCE_OUT_ERROR, h->latency);

    if (sh) {
        (void) ngx_atomic_fetch_add(ok ? &sh->gw[pay->gw->index].net_cancel_ok
                                    : &sh->gw[pay->gw->index].net_cancel_failed,
                                    1);
    }

    if (nothing) {
        ngx_log_error(NGX_LOG_WARN, pay->log, 0,
                      "commerce: net-cancel of payment %L at %V: nothing to "
                      "cancel (409, the transaction was declined)",
                      pay->payment_id, &pay->gw->name);

    } else if (!ok) {
        ngx_log_error(NGX_LOG_ERR, pay->log, 0,
                      "commerce: net-cancel of payment %L at %V failed "
                      "(%s, status %ui); the reconciler will try again",
                      pay->payment_id, &pay->gw->name,
                      ngx_commerce_http_rc_name(h->rc), h->status);
    }

    if (ngx_commerce_pay_query(pay, NGX_COMMERCE_STMT_CARD_CANCELLED,
                               NGX_COMMERCE_STEP_CANCELLED, 3,
                               ngx_commerce_param_int(pay->pool,
                                                    pay->payment_id),
                               (ok || nothing) ? "true" : "false",
                               ok ? (pay->timed_out
                                     ? "cancelled at the gateway: payment "
                                       "timeout"
                                     : "net-cancelled: the order could not "
                                       "take the payment")
                                  : nothing ? "nothing to cancel: declined "
                                              "at the gateway"
                                            : "net-cancel failed")
        != NGX_OK)
    {
        ngx_commerce_pay_destroy(pay);
    }
}


/* ------------------------------------------------------------------------
 * payment_interface_request_log: fire and forget
 */

static void
ngx_commerce_pay_log(ngx_commerce_pay_t *pay, ngx_commerce_op_e op,
    const char *dir)
{
    static const char *ops[] = { "CREATE", "STATUS", "LIST", "CANCEL" };

    ngx_commerce_http_t  *h;

    h = &pay->http;

    ngx_commerce_pay_log_row(pay, ops[op], dir, &h->method, &h->uri,
                             h->rc == NGX_COMMERCE_HTTP_OK
                             ? (ngx_int_t) h->status : -1,
                             h->latency, &h->request_body, &h->body,
                             h->rc == NGX_COMMERCE_HTTP_OK
                             ? NULL : ngx_commerce_http_rc_name(h->rc));
}


static void
ngx_commerce_pay_log_row(ngx_commerce_pay_t *pay, const char *op,
    const char *dir, ngx_str_t *method, ngx_str_t *uri, ngx_int_t status,
    ngx_msec_t latency, ngx_str_t *reqb, ngx_str_t *respb, const char *err)
{
    char                      *req, *resp;
    size_t                     n;
    ngx_pool_t                *pool;
    ngx_commerce_log_query_t  *lq;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_commerce_main_conf();

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    lq = ngx_pcalloc(pool, sizeof(ngx_commerce_log_query_t));
    if (lq == NULL) {
        goto failed;
    }

    lq->pool = pool;

    req = ngx_pnalloc(pool, reqb->len + 1);
    resp = ngx_pnalloc(pool, respb->len + 1);
    if (req == NULL || resp == NULL) {
        goto failed;
    }

    n = cm_mask_card_numbers(req, reqb->len + 1, reqb->data, reqb->len);
    req[n] = '\0';

    n = cm_mask_card_numbers(resp, respb->len + 1, respb->data, respb->len);
    resp[n] = '\0';

    lq->query.stmt = NGX_COMMERCE_STMT_PG_LOG;
    lq->query.nparams = 13;
    lq->query.log = ngx_cycle->log;
    lq->query.data = lq;
    lq->query.handler = ngx_commerce_log_done;

    lq->query.params[0] = pay->payment_id
                          ? ngx_commerce_param_int(pool, pay->payment_id)
                          : NULL;
    lq->query.params[1] = pay->order_id
                          ? ngx_commerce_param_int(pool, pay->order_id) : NULL;
    lq->query.params[2] = ngx_commerce_pay_cstr(pool, &pay->gw->name);
    lq->query.params[3] = ngx_commerce_param_int(pool, pay->attempt);
    lq->query.params[4] = dir;
    lq->query.params[5] = op;
    lq->query.params[6] = ngx_commerce_pay_cstr(pool, method);
    lq->query.params[7] = ngx_commerce_pay_cstr(pool, uri);
    lq->query.params[8] = status >= 0
                          ? ngx_commerce_param_int(pool, status) : NULL;
    lq->query.params[9] = ngx_commerce_param_int(pool, latency);
    lq->query.params[10] = req;
    lq->query.params[11] = resp;
    lq->query.params[12] = err;

    if (ngx_commerce_pg_submit(mcf->pool, &lq->query) == NGX_OK) {
        return;
    }

failed:

    ngx_destroy_pool(pool);
}


static void
ngx_commerce_log_done(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    ngx_commerce_log_query_t  *lq = q->data;

    if (rc == NGX_OK && res != NULL
        && PQresultStatus(res) != PGRES_TUPLES_OK)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "commerce: interface log write failed: %s",
                      PQresultErrorMessage(res));
    }

    ngx_destroy_pool(lq->pool);
}


/* ------------------------------------------------------------------------
 * Reconciler: worker 0 of each instance, on a timer; the database hands
 * out leases (FOR UPDATE SKIP LOCKED) so instances never overlap.
 */

typedef struct {
    ngx_event_t                ev;
    ngx_commerce_pg_query_t    query;
    char                       age[NGX_INT64_LEN + 1];
    char                       lease[NGX_INT64_LEN + 1];
    char                       limit[NGX_INT64_LEN + 1];
    ngx_uint_t                 step;
    unsigned                   running:1;
} ngx_commerce_reconciler_t;


/* one run: settle what is due, then owed net-cancels, then the gauges */
#define NGX_COMMERCE_REC_DUE      0
#define NGX_COMMERCE_REC_CANCELS  1
#define NGX_COMMERCE_REC_STATS    2


static ngx_int_t ngx_commerce_reconcile_submit(ngx_commerce_reconciler_t *rec,
    ngx_uint_t step);
static void ngx_commerce_reconcile_items(yajl_val v, ngx_uint_t cancels);


ngx_int_t
ngx_commerce_reconciler_init_worker(ngx_cycle_t *cycle,
    ngx_commerce_main_conf_t *mcf)
{
    ngx_commerce_reconciler_t  *rec;

    if (ngx_worker != 0 || mcf->gateways.nelts == 0) {
        return NGX_OK;
    }

    rec = ngx_pcalloc(cycle->pool, sizeof(ngx_commerce_reconciler_t));
    if (rec == NULL) {
        return NGX_ERROR;
    }

    rec->ev.handler = ngx_commerce_reconcile_handler;
    rec->ev.data = rec;
    rec->ev.log = cycle->log;
    rec->ev.cancelable = 1;

    *ngx_sprintf((u_char *) rec->age, "%T", mcf->reconcile_age) = '\0';
    *ngx_sprintf((u_char *) rec->lease, "%M",
                 ngx_max(mcf->reconcile_interval / 1000, 1) * 3) = '\0';
    *ngx_sprintf((u_char *) rec->limit, "%d", 100) = '\0';

    mcf->reconcile_event = &rec->ev;

    ngx_add_timer(&rec->ev, mcf->reconcile_interval);

    return NGX_OK;
}


static ngx_int_t
ngx_commerce_reconcile_submit(ngx_commerce_reconciler_t *rec, ngx_uint_t step)
{
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_commerce_main_conf();

    ngx_memzero(&rec->query, sizeof(ngx_commerce_pg_query_t));

    switch (step) {

    case NGX_COMMERCE_REC_DUE:
        rec->query.stmt = NGX_COMMERCE_STMT_CARD_DUE;
        break;

    case NGX_COMMERCE_REC_CANCELS:
        rec->query.stmt = NGX_COMMERCE_STMT_CARD_CANCEL_DUE;
        break;

    default:
        rec->query.stmt = NGX_COMMERCE_STMT_CARD_STATS;
        break;
    }

    if (step != NGX_COMMERCE_REC_STATS) {
        rec->query.nparams = 3;
        rec->query.params[0] = rec->age;
        rec->query.params[1] = rec->lease;
        rec->query.params[2] = rec->limit;
    }

    rec->query.log = ngx_cycle->log;
    rec->query.data = rec;
    rec->query.handler = ngx_commerce_reconcile_done;
    rec->step = step;

    if (ngx_commerce_pg_submit(mcf->pool, &rec->query) != NGX_OK) {
        return NGX_ERROR;
    }

    rec->running = 1;

    return NGX_OK;
}


static void
ngx_commerce_reconcile_handler(ngx_event_t *ev)
{
    ngx_commerce_reconciler_t  *rec;
    ngx_commerce_main_conf_t   *mcf;

    rec = ev->data;
    mcf = ngx_commerce_main_conf();

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (rec->running
        || ngx_commerce_reconcile_submit(rec, NGX_COMMERCE_REC_DUE) != NGX_OK)
    {
        ev->cancelable = 1;
        ngx_add_timer(ev, mcf->reconcile_interval);
    }
}


static void
ngx_commerce_reconcile_done(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    int64_t                     n;
    yajl_val                    v;
    ngx_pool_t                 *tmp;
    ngx_commerce_shctx_t       *sh;
    ngx_commerce_reconciler_t  *rec;
    ngx_commerce_main_conf_t   *mcf;

    rec = q->data;
    rec->running = 0;
    mcf = ngx_commerce_main_conf();
    sh = ngx_commerce_sh();

    if (rc != NGX_OK || res == NULL
        || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1)
    {
        if (rc == NGX_OK && res != NULL) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "commerce: reconciler query failed: %s",
                          PQresultErrorMessage(res));
        }

        goto next;
    }

    tmp = ngx_create_pool(4096, ngx_cycle->log);
    if (tmp == NULL) {
        goto next;
    }

    v = ngx_commerce_json_parse(tmp, (u_char *) PQgetvalue(res, 0, 0),
                                PQgetlength(res, 0, 0));

    if (v != NULL) {
        switch (rec->step) {

        case NGX_COMMERCE_REC_DUE:
            if (sh) {
                (void) ngx_atomic_fetch_add(&sh->m.reconciler_runs, 1);
            }

            ngx_commerce_reconcile_items(v, 0);
            break;

        case NGX_COMMERCE_REC_CANCELS:
            ngx_commerce_reconcile_items(v, 1);
            break;

        default:
            if (sh && ngx_commerce_json_int(v, "pending", &n) == NGX_OK) {
                sh->m.pending_payments = (ngx_atomic_uint_t) n;
            }

            if (sh && ngx_commerce_json_int(v, "oldestPendingSeconds", &n)
                      == NGX_OK)
            {
                sh->m.pending_oldest_s = (ngx_atomic_uint_t) n;
            }

            break;
        }
    }

    ngx_destroy_pool(tmp);

    if (rec->step != NGX_COMMERCE_REC_STATS
        && ngx_commerce_reconcile_submit(rec, rec->step + 1) == NGX_OK)
    {
        return;
    }

next:

    if (!(ngx_exiting || ngx_terminate || ngx_quit)) {
        rec->ev.cancelable = 1;
        ngx_add_timer(&rec->ev, mcf->reconcile_interval);
    }
}


/* a settle (or an owed net-cancel) flow for each payment handed out */

static void
ngx_commerce_reconcile_items(yajl_val v, ngx_uint_t cancels)
{
    size_t                   i;
    yajl_val                 item, k;
    ngx_str_t                name;
    ngx_commerce_pay_t      *pay;
    ngx_commerce_gateway_t  *gw;

    if (!YAJL_IS_ARRAY(v)) {
        return;
    }

    for (i = 0; i < YAJL_GET_ARRAY(v)->len; i++) {
        item = YAJL_GET_ARRAY(v)->values[i];

        pay = ngx_commerce_pay_create(ngx_cycle->log);
        if (pay == NULL) {
            return;
        }

        pay->kind = NGX_COMMERCE_PAY_SETTLE;

        if (ngx_commerce_json_int(item, "paymentId", &pay->payment_id)
               != NGX_OK
            || ngx_commerce_json_int(item, "orderId", &pay->order_id)
               != NGX_OK
            || ngx_commerce_json_int(item, "userId", &pay->user_id)
               != NGX_OK
            || ngx_commerce_json_str(pay->pool, item, "gateway", NULL,
                                     &name, 64) != NGX_OK
            || (gw = ngx_commerce_gateway_by_name(&name)) == NULL)
        {
            ngx_commerce_pay_destroy(pay);
            continue;
        }

        pay->gw = gw;

        if (ngx_commerce_json_int(item, "ageSeconds", &pay->age) != NGX_OK) {
            pay->age = 0;
        }

        k = ngx_commerce_json_get(item, "transactionKey", NULL);
        if (k != NULL && YAJL_IS_STRING(k)) {
            (void) ngx_commerce_json_str(pay->pool, item, "transactionKey",
                                         NULL, &pay->key,
                                         NGX_COMMERCE_KEY_MAX);
        }

        if (cancels) {
            if (pay->key.len == 0) {
                ngx_commerce_pay_destroy(pay);
                continue;
            }

            ngx_commerce_settle_cancel(pay);
            continue;
        }

        ngx_commerce_settle_start(pay);
    }
}


static void
ngx_commerce_settle_start(ngx_commerce_pay_t *pay)
{
    ngx_commerce_settle_ask(pay);
}


/* ------------------------------------------------------------------------
 * helpers
 */

static void
ngx_commerce_json_cleanup(void *data)
{
    yajl_tree_free(data);
}


static yajl_val
ngx_commerce_json_parse(ngx_pool_t *pool, u_char *data, size_t len)
{
    char                *buf;
    yajl_val             v;
    ngx_pool_cleanup_t  *cln;

    if (data == NULL || len == 0 || len > 65536) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    buf = ngx_pnalloc(pool, len + 1);
    if (buf == NULL) {
        return NULL;
    }

    ngx_memcpy(buf, data, len);
    buf[len] = '\0';

    /* trusted-shape documents from our database or a gateway, 64 KB max */
    v = yajl_tree_parse(buf, NULL, 0);
    if (v == NULL) {
        return NULL;
    }

    cln->handler = ngx_commerce_json_cleanup;
    cln->data = v;

    return v;
}


static yajl_val
ngx_commerce_json_get(yajl_val v, const char *a, const char *b)
{
    const char  *path[3];

    path[0] = a;
    path[1] = b;
    path[2] = NULL;

    return yajl_tree_get(v, path, yajl_t_any);
}


static ngx_int_t
ngx_commerce_json_int(yajl_val v, const char *a, int64_t *out)
{
    yajl_val  n;

    n = ngx_commerce_json_get(v, a, NULL);

    if (n == NULL || !YAJL_IS_INTEGER(n)) {
        return NGX_ERROR;
    }

    *out = YAJL_GET_INTEGER(n);

    return NGX_OK;
}


static ngx_int_t
ngx_commerce_json_str(ngx_pool_t *pool, yajl_val v, const char *a,
    const char *b, ngx_str_t *out, size_t max)
{
    char      *s;
    size_t     len;
    yajl_val   n;

    n = ngx_commerce_json_get(v, a, b);

    if (n == NULL || !YAJL_IS_STRING(n)) {
        return NGX_ERROR;
    }

    s = YAJL_GET_STRING(n);
    len = ngx_strlen(s);

    if (len == 0 || len > max) {
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(pool, len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, s, len);
    out->len = len;

    return NGX_OK;
}



static char *
ngx_commerce_pay_cstr(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char  *p;

    p = ngx_pnalloc(pool, s->len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s->data, s->len);
    p[s->len] = '\0';

    return (char *) p;
}
