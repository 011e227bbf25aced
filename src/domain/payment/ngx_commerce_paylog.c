
/*
 * payment_interface_request_log: every exchange with a gateway, card
 * numbers masked, written fire and forget on its own pool.
 */


#include "ngx_commerce_payment.h"


static void ngx_commerce_log_done(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res);


void
ngx_commerce_paylog(ngx_commerce_pay_t *pay, ngx_commerce_op_e op,
    const char *dir)
{
    static const char *ops[] = { "CREATE", "STATUS", "LIST", "CANCEL" };

    ngx_commerce_client_t  *h;

    h = &pay->http;

    ngx_commerce_paylog_row(pay, ops[op], dir, &h->method, &h->uri,
                             h->rc == NGX_COMMERCE_HTTP_OK
                             ? (ngx_int_t) h->status : -1,
                             h->latency, &h->request_body, &h->body,
                             h->rc == NGX_COMMERCE_HTTP_OK
                             ? NULL : ngx_commerce_client_rc_name(h->rc));
}


void
ngx_commerce_paylog_row(ngx_commerce_pay_t *pay, const char *op,
    const char *dir, ngx_str_t *method, ngx_str_t *uri, ngx_int_t status,
    ngx_msec_t latency, ngx_str_t *reqb, ngx_str_t *respb, const char *err)
{
    char                      *req, *resp;
    size_t                     n;
    ngx_pool_t                *pool;
    ngx_commerce_log_query_t  *lq;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_commerce_conf_main();

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

    lq->query.stmt = &ngx_commerce_payment_statements[NGX_COMMERCE_STMT_PG_LOG];
    lq->query.nparams = 13;
    lq->query.log = ngx_cycle->log;
    lq->query.data = lq;
    lq->query.handler = ngx_commerce_log_done;

    lq->query.params[0] = pay->payment_id
                          ? ngx_commerce_pg_int(&lq->query, pay->payment_id)
                          : NULL;
    lq->query.params[1] = pay->order_id
                          ? ngx_commerce_pg_int(&lq->query, pay->order_id) : NULL;
    lq->query.params[2] = ngx_commerce_json_cstr(pool, &pay->gw->name);
    lq->query.params[3] = ngx_commerce_pg_int(&lq->query, pay->attempt);
    lq->query.params[4] = dir;
    lq->query.params[5] = op;
    lq->query.params[6] = ngx_commerce_json_cstr(pool, method);
    lq->query.params[7] = ngx_commerce_json_cstr(pool, uri);
    lq->query.params[8] = status >= 0
                          ? ngx_commerce_pg_int(&lq->query, status) : NULL;
    lq->query.params[9] = ngx_commerce_pg_int(&lq->query, latency);
    lq->query.params[10] = req;
    lq->query.params[11] = resp;
    lq->query.params[12] = err;

    if (lq->query.params[2] == NULL || lq->query.params[6] == NULL
        || lq->query.params[7] == NULL)
    {
        goto failed;
    }

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
