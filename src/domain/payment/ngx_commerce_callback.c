
/*
 * Callbacks of payment gateways: POST /api/v1/payments/callback, signed
 * when commerce_callback_secret is set.  A callback is only a hint: the
 * payment is settled from the gateway's own answer to a GET.
 */


#include "ngx_commerce_payment.h"


ngx_int_t
ngx_commerce_callback_handler(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    const char                *reason;
    yajl_val                   v;
    ngx_str_t                  name, sig, cb_body;
    ngx_table_elt_t           *h;
    ngx_uint_t                 n;
    ngx_commerce_pay_t        *pay;
    ngx_commerce_gateway_t    *gw;
    ngx_commerce_shctx_t      *sh;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);
    sh = ngx_commerce_shm_state();

    if (mcf->callback_secret.len) {
        sig.len = 0;
        sig.data = NULL;

        /* one signature: a second one is not ours to choose from */
        h = ngx_commerce_header_in(r, "X-PG-Signature", &n);

        if (h != NULL && n == 1) {
            sig = h->value;
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

            return ngx_commerce_reply_error(r, NGX_HTTP_UNAUTHORIZED,
                                           "UNAUTHORIZED",
                                           "bad callback signature");
        }
    }

    if (ngx_http_arg(r, (u_char *) "gateway", 7, &name) != NGX_OK
        || (gw = ngx_commerce_gateway_by_name(&name)) == NULL)
    {
        return ngx_commerce_reply_error(r, NGX_HTTP_BAD_REQUEST,
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

        return ngx_commerce_reply_error(r, NGX_HTTP_BAD_REQUEST,
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
    if (ngx_commerce_pay_query(pay, ngx_commerce_settle_db_done, NGX_COMMERCE_STMT_CARD_CALLBACK,
                               NGX_COMMERCE_STEP_LOOKUP, 4,
                               ngx_commerce_pay_cstr(pay, &gw->name),
                               ngx_commerce_pay_cstr(pay, &pay->key),
                               ngx_commerce_pay_cstr(pay,
                                                     &r->unparsed_uri),
                               ngx_commerce_pay_cstr(pay, &cb_body))
        != NGX_OK)
    {
        ngx_commerce_pay_destroy(pay);
        return ngx_commerce_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "DB_UNAVAILABLE",
                                       "database unavailable, retry later");
    }

    {
        ngx_str_t  ok = ngx_string("{\"received\":true}");

        return ngx_commerce_reply_json(r, NGX_HTTP_OK, ok.data, ok.len, 0);
    }
}
