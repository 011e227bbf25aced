
/*
 * Card payments through external payment gateways (PGs).
 *
 * A flow (ngx_commerce_pay_t) owns its own pool, so it goes on when the
 * client that started it goes away: what the gateway answered is recorded
 * either way.  Two kinds of flow:
 *
 * REQUEST (POST /orders with CARD, POST /orders/{id}/payment with CARD;
 *   with a POINTS part too, the points are taken in the begin statement):
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
 * EASY_PAY and TRANSFER are this flow with another create body: a
 * provider (recorded as the payment's provider) instead of card fields, or
 * a dueDate (commerce_transfer_deadline ahead); a transfer's accepted
 * answer carries a virtual account, recorded by cm_transfer_issued (the
 * order WAITING_FOR_DEPOSIT) instead of cm_card_accepted.  The deposit
 * callback settles it as a card's approval.
 *
 * Every exchange with a gateway is written to payment_interface_request_log
 * (card numbers masked), fire and forget.
 */


#include "ngx_commerce_payment.h"


static void ngx_commerce_pay_detach(void *data);
static void ngx_commerce_pay_db_done(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static void ngx_commerce_pay_send(ngx_commerce_pay_t *pay);
static void ngx_commerce_pay_post(ngx_commerce_pay_t *pay);
static void ngx_commerce_pay_sent(ngx_commerce_client_t *h);
static void ngx_commerce_pay_issued(ngx_commerce_pay_t *pay, yajl_val v);
static void ngx_commerce_pay_retry(ngx_commerce_pay_t *pay);
static void ngx_commerce_pay_retry_handler(ngx_event_t *ev);
static void ngx_commerce_pay_respond(ngx_commerce_pay_t *pay,
    ngx_uint_t status, ngx_str_t *body, const char *code, const char *msg);
static void ngx_commerce_pay_unavailable(ngx_commerce_pay_t *pay);
static ngx_commerce_gateway_t *ngx_commerce_pay_pick(ngx_msec_t *retry_after);


/* gateways call back without a token: the callback proves itself */

ngx_commerce_route_t  ngx_commerce_payment_routes[] = {

    NGX_COMMERCE_ROUTE("POST", "/api/v1/payments/callback",
                       NGX_COMMERCE_PUBLIC, 0, "callback",
                       ngx_commerce_callback_handler, "paymentCallback"),

    ngx_commerce_route_end
};


ngx_int_t
ngx_commerce_pay_card_start(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    int64_t order_id, const char *ids, const char *qty, const char *vids,
    const char *coupon, cm_payment_req_t *card)
{
    char                    *last4, *shipping;
    ngx_str_t                v;
    ngx_msec_t               retry_after;
    ngx_commerce_pay_t      *pay;
    ngx_commerce_gateway_t  *gw;
    ngx_http_cleanup_t      *cln;
    ngx_commerce_main_conf_t *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (mcf->gateways.nelts == 0 || mcf->shm == NULL) {
        return ngx_commerce_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                       "INVALID_REQUEST",
                                       "card payments are not configured");
    }

    /* nothing is written when no gateway would take the call */

    gw = ngx_commerce_pay_pick(&retry_after);

    if (gw == NULL) {
        ngx_commerce_log(NGX_LOG_WARN, r, ctx,
                         "no payment gateway available: every breaker is "
                         "open");
        return ngx_commerce_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
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

    ngx_commerce_idem_watch_client(r, ctx);

    pay->ctx = ctx;
    pay->kind = NGX_COMMERCE_PAY_REQUEST;
    pay->gw = gw;
    pay->user_id = ctx->claims.user_id;
    pay->order_id = order_id;
    pay->card = *card;
    pay->attempt = 0;

    if (pay->card.method == CM_PAY_EASY_PAY) {
        /*
         * an easy payment is a card payment whose "card type" is the
         * provider and that has no card number: the statements record it
         * as EASY_PAY with that provider (a transfer: card type TRANSFER)
         */
        ngx_memcpy(pay->card.card_type, pay->card.provider,
                   sizeof(pay->card.card_type));
        last4 = NULL;

    } else if (pay->card.method == CM_PAY_TRANSFER) {
        ngx_memcpy(pay->card.card_type, "TRANSFER", sizeof("TRANSFER"));
        last4 = NULL;

    } else {
        /* the card number stays in memory only; the database gets 4 */
        last4 = ngx_pnalloc(pay->pool, 5);
        if (last4 == NULL) {
            goto failed;
        }

        ngx_memcpy(last4, pay->card.card_no + 15, 4);
        last4[4] = '\0';
    }

    if (order_id && (pay->card.points || pay->card.rest_amount)) {
        /* a list of parts: POINTS taken, the external part for the rest */
        if (ngx_commerce_pay_query(pay, ngx_commerce_pay_db_done,
                                   NGX_COMMERCE_STMT_CARD_BEGIN_POINTS,
                                   NGX_COMMERCE_STEP_BEGIN, 7,
                                   ngx_commerce_pg_int(&pay->query,
                                                       pay->user_id),
                                   ngx_commerce_pg_int(&pay->query, order_id),
                                   ngx_commerce_pay_cstr(pay, &gw->name),
                                   (char *) pay->card.card_type, last4,
                                   ngx_commerce_pg_int(&pay->query,
                                                       pay->card.points),
                                   pay->card.rest_amount
                                   ? ngx_commerce_pg_int(&pay->query,
                                                   pay->card.rest_amount)
                                   : NULL)
            != NGX_OK)
        {
            goto failed;
        }

        return NGX_DONE;
    }

    if (order_id) {
        if (ngx_commerce_pay_query(pay, ngx_commerce_pay_db_done, NGX_COMMERCE_STMT_CARD_BEGIN,
                                   NGX_COMMERCE_STEP_BEGIN, 5,
                                   ngx_commerce_pg_int(&pay->query, pay->user_id),
                                   ngx_commerce_pg_int(&pay->query, order_id),
                                   ngx_commerce_pay_cstr(pay,
                                                         &gw->name),
                                   (char *) pay->card.card_type,
                                   last4)
            != NGX_OK)
        {
            goto failed;
        }

        return NGX_DONE;
    }

    /* the flow outlives the request: its parameters live in its pool */

    if (coupon != NULL) {
        v.data = (u_char *) coupon;
        v.len = ngx_strlen(coupon);
        coupon = ngx_commerce_pay_cstr(pay, &v);
    }

    if (vids != NULL) {
        v.data = (u_char *) vids;
        v.len = ngx_strlen(vids);
        vids = ngx_commerce_json_cstr(pay->pool, &v);

        if (vids == NULL) {
            goto failed;
        }
    }

    /* an order's sealed shipping address (ngx_commerce_order_part.c) */
    shipping = NULL;

    if (ctx->shipping != NULL) {
        v.data = (u_char *) ctx->shipping;
        v.len = ngx_strlen(ctx->shipping);
        shipping = ngx_commerce_json_cstr(pay->pool, &v);

        if (shipping == NULL) {
            goto failed;
        }
    }

    if (ids != NULL) {
        v.data = (u_char *) ids;
        v.len = ngx_strlen(ids);
        ids = ngx_commerce_json_cstr(pay->pool, &v);

        v.data = (u_char *) qty;
        v.len = ngx_strlen(qty);
        qty = ngx_commerce_json_cstr(pay->pool, &v);

        if (ids == NULL || qty == NULL) {
            goto failed;
        }
    }

    if (pay->card.points || pay->card.rest_amount) {
        /* a list of parts: POINTS first, the card for the rest */
        if (ngx_commerce_pay_query(pay, ngx_commerce_pay_db_done,
                                   NGX_COMMERCE_STMT_ORDER_CREATE_CARD_POINTS,
                                   NGX_COMMERCE_STEP_BEGIN, 12,
                                   ngx_commerce_pg_int(&pay->query,
                                                       pay->user_id),
                                   (char *) ids, (char *) qty,
                                   ngx_commerce_pay_cstr(pay, &gw->name),
                                   (char *) pay->card.card_type,
                                   last4, coupon, vids,
                                   ngx_commerce_pg_int(&pay->query,
                                                       pay->card.points),
                                   pay->card.rest_amount
                                   ? ngx_commerce_pg_int(&pay->query,
                                                   pay->card.rest_amount)
                                   : NULL,
                                   ids == NULL ? "t" : "f", shipping)
            != NGX_OK)
        {
            goto failed;
        }

        return NGX_DONE;
    }

    if (ids == NULL) {
        /* the cart's lines: vids is the selection, or NULL for all */
        if (ngx_commerce_pay_query(pay, ngx_commerce_pay_db_done,
                                   NGX_COMMERCE_STMT_ORDER_CREATE_CARD_CART,
                                   NGX_COMMERCE_STEP_BEGIN, 7,
                                   ngx_commerce_pg_int(&pay->query,
                                                       pay->user_id),
                                   (char *) vids,
                                   ngx_commerce_pay_cstr(pay, &gw->name),
                                   (char *) pay->card.card_type,
                                   last4, coupon, shipping)
            != NGX_OK)
        {
            goto failed;
        }

        return NGX_DONE;
    }

    if (ngx_commerce_pay_query(pay, ngx_commerce_pay_db_done, NGX_COMMERCE_STMT_ORDER_CREATE_CARD,
                               NGX_COMMERCE_STEP_BEGIN, 9,
                               ngx_commerce_pg_int(&pay->query, pay->user_id),
                               (char *) ids, (char *) qty,
                               ngx_commerce_pay_cstr(pay, &gw->name),
                               (char *) pay->card.card_type,
                               last4, coupon, vids, shipping)
        != NGX_OK)
    {
        goto failed;
    }

    return NGX_DONE;

failed:

    pay->r = NULL;
    cln->handler = NULL;
    ngx_commerce_pay_destroy(pay);

    return ngx_commerce_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
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

    mcf = ngx_commerce_conf_main();
    gw = mcf->gateways.elts;
    min = 60000;

    for (i = 0; i < mcf->gateways.nelts; i++) {
        if (gw[i].named_only) {
            continue;
        }

        ra = 0;

        if (ngx_commerce_breaker_admits(&gw[i], &ra) == NGX_OK) {
            return &gw[i];
        }

        min = ngx_min(min, ra);
    }

    *retry_after = min;

    return NULL;
}


ngx_commerce_pay_t *
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


void
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


ngx_int_t
ngx_commerce_pay_query(ngx_commerce_pay_t *pay,
    ngx_commerce_pg_handler_pt done, ngx_uint_t stmt,
    ngx_commerce_step_e step, int n, ...)
{
    int                        i;
    va_list                    args;
    ngx_int_t                  rc;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_commerce_conf_main();

    if (pay->nomem) {
        /* a parameter could not be made: never send it as SQL NULL */
        pay->nomem = 0;
        return NGX_ERROR;
    }

    pay->step = step;

    ngx_commerce_pg_reset(&pay->query);
    pay->query.stmt = &ngx_commerce_payment_statements[stmt];
    pay->query.nparams = n;
    pay->query.log = pay->log;
    pay->query.data = pay;
    pay->query.handler = done;

    va_start(args, n);
    for (i = 0; i < n; i++) {
        pay->query.params[i] = va_arg(args, const char *);
    }
    va_end(args);

    rc = ngx_commerce_pg_submit(mcf->pool, &pay->query);

    return rc == NGX_OK ? NGX_OK : NGX_ERROR;
}


/* a text parameter of the flow's next statement, copied into its pool */

char *
ngx_commerce_pay_cstr(ngx_commerce_pay_t *pay, ngx_str_t *s)
{
    char  *p;

    p = ngx_commerce_json_cstr(pay->pool, s);

    if (p == NULL) {
        pay->nomem = 1;
    }

    return p;
}


/*
 * The answer of a flow's statement: NGX_OK with its document (NULL when
 * it returned none) copied into the flow's pool, or NGX_ERROR (the
 * connection failed, or a server error, logged).
 */

ngx_int_t
ngx_commerce_pay_result(ngx_commerce_pay_t *pay, ngx_int_t rc, PGresult *res,
    u_char **doc, size_t *len)
{
    *doc = NULL;
    *len = 0;

    if (rc != NGX_OK || res == NULL) {
        return NGX_ERROR;
    }

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ngx_log_error(NGX_LOG_ERR, pay->log, 0,
                      "commerce: card payment step %d failed: %s",
                      (int) pay->step, PQresultErrorMessage(res));
        return NGX_ERROR;
    }

    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        *len = PQgetlength(res, 0, 0);
        *doc = ngx_pnalloc(pay->pool, *len + 1);
        if (*doc == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(*doc, PQgetvalue(res, 0, 0), *len);
        (*doc)[*len] = '\0';
    }

    return NGX_OK;
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

    if (rc == NGX_OK && res != NULL
        && PQresultStatus(res) != PGRES_TUPLES_OK)
    {
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
    }

    if (ngx_commerce_pay_result(pay, rc, res, &doc, &len) != NGX_OK) {
        goto db_failed;
    }

    switch (pay->step) {

    case NGX_COMMERCE_STEP_BEGIN:
        v = ngx_commerce_json_parse(pay->pool, doc, len);

        if (v != NULL
            && YAJL_IS_NULL(ngx_commerce_json_get(v, "paymentId", NULL))
            && ngx_commerce_json_text(pay->pool,
                                      ngx_commerce_json_get(v, "order", NULL),
                                      &body)
               == NGX_OK)
        {
            /* nothing to pay (a coupon covered it all): PAID at once */
            ngx_commerce_pay_respond(pay, NGX_HTTP_CREATED, &body, NULL,
                                     NULL);
            return;
        }

        if (v == NULL
            || ngx_commerce_json_int(v, "paymentId", NULL, &pay->payment_id)
               != NGX_OK
            || ngx_commerce_json_int(v, "orderId", NULL, &pay->order_id) != NGX_OK
            || ngx_commerce_json_int(v, "amount", NULL, &pay->amount) != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, pay->log, 0,
                          "commerce: card payment: bad begin document");
            goto db_failed;
        }

        /* the order as it stands now, for a 202 answer */
        if (ngx_commerce_json_text(pay->pool,
                                   ngx_commerce_json_get(v, "order", NULL),
                                   &body)
            != NGX_OK)
        {
            goto db_failed;
        }

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
        if (ngx_commerce_pay_query(pay, ngx_commerce_pay_db_done, NGX_COMMERCE_STMT_CARD_ORDER,
                                   NGX_COMMERCE_STEP_ORDER, 2,
                                   ngx_commerce_pg_int(&pay->query, pay->user_id),
                                   ngx_commerce_pg_int(&pay->query, pay->order_id))
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

    mcf = ngx_commerce_conf_main();
    gw = mcf->gateways.elts;

    pay->attempt++;

    for (i = 0; i < mcf->gateways.nelts; i++) {
        if (!gw[i].named_only
            && ngx_commerce_breaker_acquire(&gw[i], ngx_current_msec,
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

        if (ngx_commerce_pay_query(pay, ngx_commerce_pay_db_done, NGX_COMMERCE_STMT_CARD_ABORT,
                                   NGX_COMMERCE_STEP_ABORT, 2,
                                   ngx_commerce_pg_int(&pay->query, pay->payment_id),
                                   "no payment gateway available")
            != NGX_OK)
        {
            ngx_commerce_pay_unavailable(pay);
        }

        return;
    }

    if (pay->attempt == 1) {
        ngx_commerce_breaker_budget_request(&gw[i]);
    }

    if (&gw[i] != pay->gw) {
        /*
         * falling back to another gateway: the payment must name the one
         * that may hold it, or the reconciler would ask the wrong one
         */
        pay->gw = &gw[i];

        if (ngx_commerce_pay_query(pay, ngx_commerce_pay_db_done, NGX_COMMERCE_STMT_CARD_GATEWAY,
                                   NGX_COMMERCE_STEP_GATEWAY, 2,
                                   ngx_commerce_pg_int(&pay->query, pay->payment_id),
                                   ngx_commerce_pay_cstr(pay,
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
    time_t                     tm;
    ngx_tm_t                   gmt;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_commerce_conf_main();

    len = sizeof("{\"orderId\":\"\",\"method\":\"EASY_PAY\",\"provider\":\"\","
                 "\"dueDate\":\"0000-00-00T00:00:00Z\","
                 "\"cardType\":\"\",\"cardNo\":\"\","
                 "\"amount\":,\"callbackUrl\":\"?gateway=\"}") - 1
          + 3 * NGX_INT64_LEN + 48 + mcf->callback_url.len
          + pay->gw->name.len;

    p = ngx_pnalloc(pay->pool, len);
    if (p == NULL) {
        ngx_commerce_pay_unavailable(pay);
        return;
    }

    ngx_memzero(&pay->http, sizeof(ngx_commerce_client_t));

    pay->http.request_body.data = p;
    /* gateways want an orderId of 6 characters at least */
    p = ngx_sprintf(p, "{\"orderId\":\"%06L\",", pay->order_id);

    if (pay->card.method == CM_PAY_EASY_PAY) {
        p = ngx_sprintf(p, "\"method\":\"EASY_PAY\",\"provider\":\"%s\",",
                        pay->card.provider);

    } else if (pay->card.method == CM_PAY_TRANSFER) {
        /* the virtual account's deadline is the order's (README) */
        tm = ngx_time() + mcf->transfer_deadline;
        ngx_gmtime(tm, &gmt);
        p = ngx_sprintf(p, "\"method\":\"TRANSFER\",\"dueDate\":"
                           "\"%4d-%02d-%02dT%02d:%02d:%02dZ\",",
                        gmt.ngx_tm_year, gmt.ngx_tm_mon, gmt.ngx_tm_mday,
                        gmt.ngx_tm_hour, gmt.ngx_tm_min, gmt.ngx_tm_sec);

    } else {
        p = ngx_sprintf(p, "\"cardType\":\"%s\",\"cardNo\":\"%s\",",
                        pay->card.card_type, pay->card.card_no);
    }

    p = ngx_sprintf(p, "\"amount\":%L,\"callbackUrl\":\"%V?gateway=%V\"}",
                    pay->amount, &mcf->callback_url, &pay->gw->name);
    pay->http.request_body.len = p - pay->http.request_body.data;

    ngx_str_set(&pay->http.method, "POST");
    ngx_str_set(&pay->http.uri, "/api/v1/payments");

    pay->http.user_id = pay->user_id;
    pay->http.pool = pay->pool;
    pay->http.log = pay->log;
    pay->http.gw = pay->gw;
    pay->http.handler = ngx_commerce_pay_sent;
    pay->http.data = pay;

    if (ngx_commerce_client_start(&pay->http) != NGX_OK) {
        ngx_commerce_breaker_record(pay->gw, pay->permit, 1, 0);
        ngx_commerce_pay_retry(pay);
    }
}


static void
ngx_commerce_pay_sent(ngx_commerce_client_t *h)
{
    yajl_val                 v;
    ngx_uint_t               failed;
    ngx_commerce_pay_t      *pay;
    ngx_commerce_outcome_e   out;

    pay = h->data;

    ngx_commerce_paylog(pay, NGX_COMMERCE_OP_CREATE, "OUT");

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

    ngx_commerce_shm_gw(pay->gw->index, NGX_COMMERCE_OP_CREATE, out,
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

        if (pay->card.method == CM_PAY_TRANSFER) {
            ngx_commerce_pay_issued(pay, v);
            return;
        }

        if (ngx_commerce_pay_query(pay, ngx_commerce_pay_db_done, NGX_COMMERCE_STMT_CARD_ACCEPTED,
                                   NGX_COMMERCE_STEP_ACCEPTED, 3,
                                   ngx_commerce_pg_int(&pay->query, pay->payment_id),
                                   ngx_commerce_pay_cstr(pay,
                                                         &pay->key),
                                   ngx_commerce_pay_cstr(pay,
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

        if (ngx_commerce_pay_query(pay, ngx_commerce_pay_db_done, NGX_COMMERCE_STMT_CARD_SETTLE,
                                   NGX_COMMERCE_STEP_DECLINED, 4,
                                   ngx_commerce_pg_int(&pay->query, pay->payment_id),
                                   NULL, "FAILED",
                                   ngx_commerce_pay_cstr(pay,
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
                      ngx_commerce_client_rc_name(h->rc), &pay->gw->name);

        ngx_commerce_pay_respond(pay, NGX_HTTP_ACCEPTED, &pay->order_json,
                                 NULL, NULL);
        return;

    default: /* refused: nothing was sent */
        ngx_commerce_pay_retry(pay);
        return;
    }
}


/*
 * A transfer's create answer carries the virtual account
 * (data.virtualAccount: bank, accountNumber, holder, dueDate): recorded by
 * cm_transfer_issued, which makes the order WAITING_FOR_DEPOSIT; answered
 * like an accepted card (202, the order).  An answer without one leaves the
 * payment PENDING with its key, as a card's: the reconciler polls it.
 */

static void
ngx_commerce_pay_issued(ngx_commerce_pay_t *pay, yajl_val v)
{
    char       *va[4];
    ngx_str_t   bank, account, holder, due;

    v = ngx_commerce_json_get(v, "data", "virtualAccount");

    if (v == NULL
        || ngx_commerce_json_str(pay->pool, v, "bank", NULL, &bank, 64)
           != NGX_OK
        || ngx_commerce_json_str(pay->pool, v, "accountNumber", NULL,
                                 &account, 64) != NGX_OK
        || ngx_commerce_json_str(pay->pool, v, "holder", NULL, &holder, 128)
           != NGX_OK
        || ngx_commerce_json_str(pay->pool, v, "dueDate", NULL, &due, 64)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, pay->log, 0,
                      "commerce: gateway %V issued no virtual account for "
                      "payment %L", &pay->gw->name, pay->payment_id);
        /* NULLs: refused by the statement, the reconciler looks it up */
        va[0] = va[1] = va[2] = va[3] = NULL;

    } else {
        va[0] = ngx_commerce_pay_cstr(pay, &bank);
        va[1] = ngx_commerce_pay_cstr(pay, &account);
        va[2] = ngx_commerce_pay_cstr(pay, &holder);
        va[3] = ngx_commerce_pay_cstr(pay, &due);
    }

    if (ngx_commerce_pay_query(pay, ngx_commerce_pay_db_done,
                               NGX_COMMERCE_STMT_TRANSFER_ISSUED,
                               NGX_COMMERCE_STEP_ACCEPTED, 7,
                               ngx_commerce_pg_int(&pay->query,
                                                   pay->payment_id),
                               ngx_commerce_pay_cstr(pay, &pay->key),
                               ngx_commerce_pay_cstr(pay, &pay->gw->name),
                               va[0], va[1], va[2], va[3])
        != NGX_OK)
    {
        ngx_commerce_pay_respond(pay, NGX_HTTP_ACCEPTED, &pay->order_json,
                                 NULL, NULL);
    }
}


static void
ngx_commerce_pay_retry(ngx_commerce_pay_t *pay)
{
    ngx_msec_t  delay;

    if (pay->attempt >= pay->gw->retries
        || ngx_commerce_breaker_budget_retry(pay->gw) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, pay->log, 0,
                      "commerce: payment %L: gateway unavailable after %ui "
                      "attempt(s), rolling back", pay->payment_id,
                      pay->attempt);

        if (ngx_commerce_pay_query(pay, ngx_commerce_pay_db_done, NGX_COMMERCE_STMT_CARD_ABORT,
                                   NGX_COMMERCE_STEP_ABORT, 2,
                                   ngx_commerce_pg_int(&pay->query, pay->payment_id),
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

        rc = ngx_commerce_reply_error(r, status, code, msg);

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
