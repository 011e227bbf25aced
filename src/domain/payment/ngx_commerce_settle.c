
/*
 * Settling a card payment: ask the gateway, settle forward-only with
 * cm_card_settle, and cancel at the gateway (net-cancel) an approval the
 * order can no longer take.
 */


#include "ngx_commerce_payment.h"


static void ngx_commerce_settle_answer(ngx_commerce_client_t *h);
static void ngx_commerce_settle_cancelled(ngx_commerce_client_t *h);


void
ngx_commerce_settle_ask(ngx_commerce_pay_t *pay)
{
    u_char  *p;

    ngx_memzero(&pay->http, sizeof(ngx_commerce_client_t));

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

    pay->http.user_id = pay->user_id;
    pay->http.pool = pay->pool;
    pay->http.log = pay->log;
    pay->http.gw = pay->gw;
    pay->http.handler = ngx_commerce_settle_answer;
    pay->http.data = pay;
    pay->step = NGX_COMMERCE_STEP_ASK;

    if (ngx_commerce_client_start(&pay->http) != NGX_OK) {
        ngx_commerce_pay_destroy(pay);
    }
}


static void
ngx_commerce_settle_answer(ngx_commerce_client_t *h)
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
    mcf = ngx_commerce_conf_main();
    sh = ngx_commerce_shm_state();
    op = pay->key.len ? NGX_COMMERCE_OP_STATUS : NGX_COMMERCE_OP_LIST;

    ngx_commerce_paylog(pay, op, "OUT");

    if (h->rc != NGX_COMMERCE_HTTP_OK) {
        out = (h->rc == NGX_COMMERCE_HTTP_TIMEOUT) ? NGX_COMMERCE_OUT_TIMEOUT
              : (h->rc == NGX_COMMERCE_HTTP_REFUSED
                 || h->rc == NGX_COMMERCE_HTTP_CONNECT_TIMEOUT)
                ? NGX_COMMERCE_OUT_REFUSED : NGX_COMMERCE_OUT_BROKEN;
        ngx_commerce_shm_gw(pay->gw->index, op, out, h->latency);
        goto later;
    }

    ngx_commerce_shm_gw(pay->gw->index, op,
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

        if (ngx_commerce_pay_query(pay, ngx_commerce_settle_db_done, NGX_COMMERCE_STMT_CARD_TIMEOUT,
                                   NGX_COMMERCE_STEP_SETTLE, 1,
                                   ngx_commerce_pg_int(&pay->query, pay->payment_id))
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

    if (ngx_commerce_pay_query(pay, ngx_commerce_settle_db_done, NGX_COMMERCE_STMT_CARD_SETTLE,
                               NGX_COMMERCE_STEP_SETTLE, 4,
                               ngx_commerce_pg_int(&pay->query, pay->payment_id),
                               pay->key.len
                               ? ngx_commerce_pay_cstr(pay, &pay->key)
                               : NULL,
                               ngx_commerce_pay_cstr(pay, &status),
                               reason.len
                               ? ngx_commerce_pay_cstr(pay, &reason)
                               : NULL)
        == NGX_OK)
    {
        return;
    }

later:

    /* undecided or unreachable: the reconciler comes back to it */
    ngx_commerce_pay_destroy(pay);
}


void
ngx_commerce_settle_decided(ngx_commerce_pay_t *pay, PGresult *res)
{
    u_char                *doc;
    yajl_val               v, nc, ap;
    ngx_commerce_shctx_t  *sh;

    sh = ngx_commerce_shm_state();

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


void
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

    if (ngx_commerce_settle_cancel_send(pay, NULL,
                                        ngx_commerce_settle_cancelled, pay)
        != NGX_OK)
    {
        ngx_commerce_pay_destroy(pay);
    }
}


/*
 * POST /api/v1/payments/{key}/cancel at pay's gateway, with body (NULL:
 * none, the whole transaction) and the answer to handler with h->data =
 * data: the net-cancel above and the refund job's partial cancels
 * (src/domain/refund/ngx_commerce_refund_job.c).
 */

ngx_int_t
ngx_commerce_settle_cancel_send(ngx_commerce_pay_t *pay, ngx_str_t *body,
    ngx_commerce_client_handler_pt handler, void *data)
{
    ngx_memzero(&pay->http, sizeof(ngx_commerce_client_t));

    ngx_str_set(&pay->http.method, "POST");

    pay->http.uri.data = ngx_pnalloc(pay->pool, sizeof("/api/v1/payments/"
                                                       "/cancel")
                                                + pay->key.len);
    if (pay->http.uri.data == NULL) {
        return NGX_ERROR;
    }

    pay->http.uri.len = ngx_sprintf(pay->http.uri.data,
                                    "/api/v1/payments/%V/cancel", &pay->key)
                        - pay->http.uri.data;

    if (body != NULL) {
        pay->http.request_body = *body;
    }

    pay->http.user_id = pay->user_id;
    pay->http.pool = pay->pool;
    pay->http.log = pay->log;
    pay->http.gw = pay->gw;
    pay->http.handler = handler;
    pay->http.data = data;
    pay->step = NGX_COMMERCE_STEP_CANCEL;

    return ngx_commerce_client_start(&pay->http);
}


static void
ngx_commerce_settle_cancelled(ngx_commerce_client_t *h)
{
    ngx_uint_t             ok, nothing;
    ngx_commerce_pay_t    *pay;
    ngx_commerce_shctx_t  *sh;

    pay = h->data;
    sh = ngx_commerce_shm_state();

    ngx_commerce_paylog(pay, NGX_COMMERCE_OP_CANCEL, "OUT");

    ok = (h->rc == NGX_COMMERCE_HTTP_OK && h->status == 200);

    /*
     * 409: the gateway says the transaction is in a state that cannot be
     * cancelled, which for these gateways means it was declined: it holds
     * no money of the buyer's, so nothing is owed any more.
     */
    nothing = (h->rc == NGX_COMMERCE_HTTP_OK && h->status == 409);

    ngx_commerce_shm_gw(pay->gw->index, NGX_COMMERCE_OP_CANCEL,
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
                      ngx_commerce_client_rc_name(h->rc), h->status);
    }

    if (ngx_commerce_pay_query(pay, ngx_commerce_settle_db_done, NGX_COMMERCE_STMT_CARD_CANCELLED,
                               NGX_COMMERCE_STEP_CANCELLED, 3,
                               ngx_commerce_pg_int(&pay->query, pay->payment_id),
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


void
ngx_commerce_settle_start(ngx_commerce_pay_t *pay)
{
    ngx_commerce_settle_ask(pay);
}


/* the statements of a settle flow answered: look up, settle, cancelled */

void
ngx_commerce_settle_db_done(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    u_char              *doc;
    size_t               len;
    yajl_val             v;
    ngx_commerce_pay_t  *pay;

    pay = q->data;

    if (ngx_commerce_pay_result(pay, rc, res, &doc, &len) != NGX_OK) {
        ngx_commerce_pay_destroy(pay);
        return;
    }

    switch (pay->step) {

    case NGX_COMMERCE_STEP_LOOKUP:
        v = ngx_commerce_json_parse(pay->pool, doc, len);

        if (v == NULL
            || ngx_commerce_json_int(v, "paymentId", NULL, &pay->payment_id)
               != NGX_OK
            || ngx_commerce_json_int(v, "orderId", NULL, &pay->order_id)
               != NGX_OK
            || ngx_commerce_json_int(v, "userId", NULL, &pay->user_id)
               != NGX_OK)
        {
            ngx_commerce_pay_destroy(pay);
            return;
        }

        ngx_commerce_settle_ask(pay);
        return;

    case NGX_COMMERCE_STEP_SETTLE:
        ngx_commerce_settle_decided(pay, res);
        return;

    default:
        /* NGX_COMMERCE_STEP_CANCELLED: the net-cancel is recorded */
        ngx_commerce_pay_destroy(pay);
        return;
    }
}
