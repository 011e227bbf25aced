
/*
 * The refund job, a job of worker 0: the database hands out the gateway
 * refunds that are due (cm_refund_due: PENDING, leased with FOR UPDATE
 * SKIP LOCKED, so instances never take the same one), each is cancelled
 * at its gateway for its amount with the refund's id as the cancel's key
 * (POST /api/v1/payments/{key}/cancel {"amount","cancelKey":"refund-<id>"}:
 * a cancel repeated after a timeout is answered as the first, never
 * cancelled twice), the exchange goes to the payment domain's interface
 * log, and the outcome to cm_refund_done (DONE; RETRY with a backoff,
 * bounded attempts; FAILED when the gateway refuses).
 *
 *     commerce_refund [interval=1s] [attempts=8] [backoff=2s] [lease=60s]
 *                     [batch=20];
 */


#include "ngx_commerce_refund.h"
#include "ngx_commerce_payment.h"


typedef struct {
    ngx_commerce_job_t            job;
    ngx_commerce_pg_query_t       query;
    ngx_commerce_refund_conf_t   *conf;
} ngx_commerce_refund_job_t;


/* one gateway cancel, on its payment flow's pool */
typedef struct {
    ngx_commerce_pay_t           *pay;
    ngx_commerce_refund_conf_t   *conf;
    int64_t                       refund_id;
} ngx_commerce_refund_item_t;


static void ngx_commerce_refund_job_defaults(ngx_commerce_refund_conf_t *rc);
static ngx_int_t ngx_commerce_refund_job_run(ngx_commerce_job_t *job);
static void ngx_commerce_refund_job_due(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static void ngx_commerce_refund_job_start(ngx_commerce_refund_job_t *rj,
    yajl_val item);
static void ngx_commerce_refund_job_answer(ngx_commerce_client_t *h);
static void ngx_commerce_refund_job_recorded(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);


/* commerce_refund key=value ... */

char *
ngx_commerce_refund_job_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_commerce_main_conf_t *mcf = conf;

    ngx_int_t                    n;
    ngx_str_t                   *value, v;
    ngx_uint_t                   i;
    ngx_commerce_refund_conf_t  *rc;

    if (mcf->refund != NULL) {
        return "is duplicate";
    }

    rc = ngx_pcalloc(cf->pool, sizeof(ngx_commerce_refund_conf_t));
    if (rc == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_commerce_refund_job_defaults(rc);

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "interval=", 9) == 0) {
            v.data = value[i].data + 9;
            v.len = value[i].len - 9;
            n = ngx_parse_time(&v, 0);
            if (n == NGX_ERROR || n < 10 || n > 3600000) {
                goto invalid;
            }

            rc->interval = (ngx_msec_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "backoff=", 8) == 0
            || ngx_strncmp(value[i].data, "lease=", 6) == 0)
        {
            v.data = (u_char *) ngx_strchr(value[i].data, '=') + 1;
            v.len = value[i].data + value[i].len - v.data;
            n = ngx_parse_time(&v, 1);
            if (n == NGX_ERROR || n < 1 || n > 86400) {
                goto invalid;
            }

            if (value[i].data[0] == 'b') {
                rc->backoff = (time_t) n;

            } else {
                rc->lease = (time_t) n;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "attempts=", 9) == 0
            || ngx_strncmp(value[i].data, "batch=", 6) == 0)
        {
            v.data = (u_char *) ngx_strchr(value[i].data, '=') + 1;
            v.len = value[i].data + value[i].len - v.data;
            n = ngx_atoi(v.data, v.len);
            if (n == NGX_ERROR || n < 1 || n > 100) {
                goto invalid;
            }

            if (value[i].data[0] == 'a') {
                rc->attempts = (ngx_uint_t) n;

            } else {
                rc->batch = (ngx_uint_t) n;
            }

            continue;
        }

        goto invalid;
    }

    mcf->refund = rc;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "commerce_refund: invalid parameter \"%V\" (interval="
                       "10ms..1h, attempts=1..100, backoff=1s..1d, "
                       "lease=1s..1d, batch=1..100)", &value[i]);

    return NGX_CONF_ERROR;
}


ngx_int_t
ngx_commerce_refund_job_init(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    ngx_commerce_refund_job_t  *rj;

    if (mcf->gateways.nelts == 0) {
        return NGX_OK;
    }

    rj = ngx_pcalloc(cf->pool, sizeof(ngx_commerce_refund_job_t));
    if (rj == NULL) {
        return NGX_ERROR;
    }

    if (mcf->refund == NULL) {
        mcf->refund = ngx_pcalloc(cf->pool,
                                  sizeof(ngx_commerce_refund_conf_t));
        if (mcf->refund == NULL) {
            return NGX_ERROR;
        }

        ngx_commerce_refund_job_defaults(mcf->refund);
    }

    rj->conf = mcf->refund;
    rj->job.name = "refunds";
    rj->job.first = ngx_min(rj->conf->interval, 1000);
    rj->job.interval = rj->conf->interval;
    rj->job.run = ngx_commerce_refund_job_run;
    rj->job.data = rj;

    return ngx_commerce_job_add(cf, &rj->job);
}


static void
ngx_commerce_refund_job_defaults(ngx_commerce_refund_conf_t *rc)
{
    rc->interval = 1000;
    rc->attempts = 8;
    rc->backoff = 2;
    rc->lease = 60;
    rc->batch = 20;
}


static ngx_int_t
ngx_commerce_refund_job_run(ngx_commerce_job_t *job)
{
    ngx_commerce_refund_job_t  *rj = job->data;

    ngx_commerce_pg_reset(&rj->query);
    rj->query.stmt =
        &ngx_commerce_refund_statements[NGX_COMMERCE_STMT_REFUND_DUE];
    rj->query.nparams = 2;
    rj->query.params[0] = ngx_commerce_pg_int(&rj->query, rj->conf->lease);
    rj->query.params[1] = ngx_commerce_pg_int(&rj->query, rj->conf->batch);
    rj->query.log = job->log;
    rj->query.data = rj;
    rj->query.handler = ngx_commerce_refund_job_due;

    return ngx_commerce_pg_submit(ngx_commerce_conf_main()->pool,
                                  &rj->query);
}


static void
ngx_commerce_refund_job_due(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    size_t                      i;
    yajl_val                    v;
    ngx_pool_t                 *tmp;
    ngx_commerce_refund_job_t  *rj;

    rj = q->data;

    if (rc != NGX_OK || res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1)
    {
        if (rc == NGX_OK && res != NULL) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "commerce: refund job query failed: %s",
                          PQresultErrorMessage(res));
        }

        goto done;
    }

    tmp = ngx_create_pool(4096, ngx_cycle->log);
    if (tmp == NULL) {
        goto done;
    }

    v = ngx_commerce_json_parse(tmp, (u_char *) PQgetvalue(res, 0, 0),
                                PQgetlength(res, 0, 0));

    if (v != NULL && YAJL_IS_ARRAY(v)) {
        for (i = 0; i < YAJL_GET_ARRAY(v)->len; i++) {
            ngx_commerce_refund_job_start(rj, YAJL_GET_ARRAY(v)->values[i]);
        }
    }

    ngx_destroy_pool(tmp);

done:

    /* the cancels run on their own; a lease keeps them from the next run */
    ngx_commerce_job_done(&rj->job, 0);
}


/* one refund handed out: its partial cancel at the payment's gateway */

static void
ngx_commerce_refund_job_start(ngx_commerce_refund_job_t *rj, yajl_val item)
{
    u_char                      *p;
    int64_t                      amount, attempt;
    ngx_str_t                    name, body;
    ngx_commerce_pay_t          *pay;
    ngx_commerce_refund_item_t  *ri;

    pay = ngx_commerce_pay_create(ngx_cycle->log);
    if (pay == NULL) {
        return;
    }

    ri = ngx_pcalloc(pay->pool, sizeof(ngx_commerce_refund_item_t));
    if (ri == NULL) {
        goto failed;
    }

    ri->pay = pay;
    ri->conf = rj->conf;
    pay->kind = NGX_COMMERCE_PAY_SETTLE;

    if (ngx_commerce_json_int(item, "refundId", NULL, &ri->refund_id)
           != NGX_OK
        || ngx_commerce_json_int(item, "paymentId", NULL, &pay->payment_id)
           != NGX_OK
        || ngx_commerce_json_int(item, "orderId", NULL, &pay->order_id)
           != NGX_OK
        || ngx_commerce_json_int(item, "userId", NULL, &pay->user_id)
           != NGX_OK
        || ngx_commerce_json_int(item, "amount", NULL, &amount) != NGX_OK
        || ngx_commerce_json_int(item, "attempt", NULL, &attempt) != NGX_OK
        || ngx_commerce_json_str(pay->pool, item, "gateway", NULL, &name, 64)
           != NGX_OK
        || ngx_commerce_json_str(pay->pool, item, "transactionKey", NULL,
                                 &pay->key, NGX_COMMERCE_KEY_MAX) != NGX_OK
        || pay->key.len == 0)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "commerce: refund without a gateway transaction, "
                      "left to its lease");
        goto failed;
    }

    pay->gw = ngx_commerce_gateway_by_name(&name);
    if (pay->gw == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "commerce: refund %L: no gateway \"%V\" configured",
                      ri->refund_id, &name);
        goto failed;
    }

    pay->attempt = (ngx_uint_t) attempt;

    p = ngx_pnalloc(pay->pool, sizeof("{\"amount\":,\"cancelKey\":"
                                      "\"refund-\"}") - 1
                               + 2 * NGX_INT64_LEN);
    if (p == NULL) {
        goto failed;
    }

    body.data = p;
    body.len = ngx_sprintf(p, "{\"amount\":%L,\"cancelKey\":\"refund-%L\"}",
                           amount, ri->refund_id) - p;

    if (ngx_commerce_settle_cancel_send(pay, &body,
                                        ngx_commerce_refund_job_answer, ri)
        == NGX_OK)
    {
        return;
    }

failed:

    ngx_commerce_pay_destroy(pay);
}


static void
ngx_commerce_refund_job_answer(ngx_commerce_client_t *h)
{
    const char                  *outcome, *note;
    ngx_commerce_pay_t          *pay;
    ngx_commerce_refund_item_t  *ri;

    ri = h->data;
    pay = ri->pay;

    ngx_commerce_paylog(pay, NGX_COMMERCE_OP_CANCEL, "OUT");

    ngx_commerce_shm_gw(pay->gw->index, NGX_COMMERCE_OP_CANCEL,
                        (h->rc == NGX_COMMERCE_HTTP_OK && h->status == 200)
                        ? NGX_COMMERCE_OUT_ACCEPTED : NGX_COMMERCE_OUT_ERROR,
                        h->latency);

    if (h->rc == NGX_COMMERCE_HTTP_OK && h->status == 200) {
        outcome = "DONE";
        note = "cancelled at the gateway";

    } else if (h->rc == NGX_COMMERCE_HTTP_OK && h->status >= 400
               && h->status < 500)
    {
        /* refused: another attempt would be refused again */
        outcome = "FAILED";
        note = "refused by the gateway";

    } else {
        outcome = "RETRY";
        note = ngx_commerce_client_rc_name(h->rc);
    }

    if (outcome[0] != 'D') {
        ngx_log_error(NGX_LOG_ERR, pay->log, 0,
                      "commerce: refund %L (payment %L) at %V: %s "
                      "(status %ui), %s", ri->refund_id, pay->payment_id,
                      &pay->gw->name, note, h->status,
                      outcome[0] == 'R' ? "retried later" : "given up");
    }

    ngx_commerce_pg_reset(&pay->query);
    pay->query.stmt =
        &ngx_commerce_refund_statements[NGX_COMMERCE_STMT_REFUND_DONE];
    pay->query.nparams = 5;
    pay->query.params[0] = ngx_commerce_pg_int(&pay->query, ri->refund_id);
    pay->query.params[1] = outcome;
    pay->query.params[2] = note;
    pay->query.params[3] = ngx_commerce_pg_int(&pay->query,
                                               ri->conf->backoff);
    pay->query.params[4] = ngx_commerce_pg_int(&pay->query,
                                               ri->conf->attempts);
    pay->query.log = pay->log;
    pay->query.data = ri;
    pay->query.handler = ngx_commerce_refund_job_recorded;
    pay->step = NGX_COMMERCE_STEP_CANCELLED;

    if (ngx_commerce_pg_submit(ngx_commerce_conf_main()->pool, &pay->query)
        != NGX_OK)
    {
        /* the lease runs out and the job asks the gateway again */
        ngx_commerce_pay_destroy(pay);
    }
}


static void
ngx_commerce_refund_job_recorded(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    ngx_commerce_refund_item_t  *ri = q->data;

    if (rc == NGX_OK && res != NULL && PQresultStatus(res) != PGRES_TUPLES_OK)
    {
        ngx_log_error(NGX_LOG_ERR, ri->pay->log, 0,
                      "commerce: refund %L not recorded: %s", ri->refund_id,
                      PQresultErrorMessage(res));
    }

    ngx_commerce_pay_destroy(ri->pay);
}
