
/*
 * The reconciler, a job of worker 0: the database hands out the payments
 * nobody settled (leases, FOR UPDATE SKIP LOCKED, so instances never
 * overlap), then the owed net-cancels, then the gauges.
 */


#include "ngx_commerce_payment.h"


static ngx_int_t ngx_commerce_reconcile_run(ngx_commerce_job_t *job);
static void ngx_commerce_reconcile_done(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);


typedef struct {
    ngx_commerce_job_t         job;
    ngx_commerce_pg_query_t    query;
    char                       age[NGX_INT64_LEN + 1];
    char                       lease[NGX_INT64_LEN + 1];
    char                       limit[NGX_INT64_LEN + 1];
    ngx_uint_t                 step;
} ngx_commerce_reconciler_t;


/* one run: settle what is due, then owed net-cancels, then the gauges */
#define NGX_COMMERCE_REC_DUE      0
#define NGX_COMMERCE_REC_CANCELS  1
#define NGX_COMMERCE_REC_STATS    2


static ngx_int_t ngx_commerce_reconcile_submit(ngx_commerce_reconciler_t *rec,
    ngx_uint_t step);
static void ngx_commerce_reconcile_items(yajl_val v, ngx_uint_t cancels);


ngx_int_t
ngx_commerce_reconcile_init(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    ngx_commerce_reconciler_t  *rec;

    if (mcf->gateways.nelts == 0) {
        return NGX_OK;
    }

    rec = ngx_pcalloc(cf->pool, sizeof(ngx_commerce_reconciler_t));
    if (rec == NULL) {
        return NGX_ERROR;
    }

    rec->job.name = "reconciler";
    rec->job.first = mcf->reconcile_interval;
    rec->job.interval = mcf->reconcile_interval;
    rec->job.run = ngx_commerce_reconcile_run;
    rec->job.data = rec;

    *ngx_sprintf((u_char *) rec->age, "%T", mcf->reconcile_age) = '\0';
    *ngx_sprintf((u_char *) rec->lease, "%M",
                 ngx_max(mcf->reconcile_interval / 1000, 1) * 3) = '\0';
    *ngx_sprintf((u_char *) rec->limit, "%d", 100) = '\0';

    return ngx_commerce_job_add(cf, &rec->job);
}


static ngx_int_t
ngx_commerce_reconcile_run(ngx_commerce_job_t *job)
{
    return ngx_commerce_reconcile_submit(job->data, NGX_COMMERCE_REC_DUE);
}


static ngx_int_t
ngx_commerce_reconcile_submit(ngx_commerce_reconciler_t *rec, ngx_uint_t step)
{
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_commerce_conf_main();

    ngx_commerce_pg_reset(&rec->query);

    switch (step) {

    case NGX_COMMERCE_REC_DUE:
        rec->query.stmt =
            &ngx_commerce_payment_statements[NGX_COMMERCE_STMT_CARD_DUE];
        break;

    case NGX_COMMERCE_REC_CANCELS:
        rec->query.stmt = &ngx_commerce_payment_statements[
                              NGX_COMMERCE_STMT_CARD_CANCEL_DUE];
        break;

    default:
        rec->query.stmt =
            &ngx_commerce_payment_statements[NGX_COMMERCE_STMT_CARD_STATS];
        break;
    }

    if (step != NGX_COMMERCE_REC_STATS) {
        rec->query.nparams = 3;
        rec->query.params[0] = rec->age;
        rec->query.params[1] = rec->lease;
        rec->query.params[2] = rec->limit;
    }

    rec->query.log = rec->job.log;
    rec->query.data = rec;
    rec->query.handler = ngx_commerce_reconcile_done;
    rec->step = step;

    return ngx_commerce_pg_submit(mcf->pool, &rec->query);
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

    rec = q->data;
    sh = ngx_commerce_shm_state();

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
            if (sh && ngx_commerce_json_int(v, "pending", NULL, &n) == NGX_OK) {
                sh->m.pending_payments = (ngx_atomic_uint_t) n;
            }

            if (sh && ngx_commerce_json_int(v, "oldestPendingSeconds", NULL, &n)
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

    ngx_commerce_job_done(&rec->job, 0);
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

        if (ngx_commerce_json_int(item, "paymentId", NULL, &pay->payment_id)
               != NGX_OK
            || ngx_commerce_json_int(item, "orderId", NULL, &pay->order_id)
               != NGX_OK
            || ngx_commerce_json_int(item, "userId", NULL, &pay->user_id)
               != NGX_OK
            || ngx_commerce_json_str(pay->pool, item, "gateway", NULL,
                                     &name, 64) != NGX_OK
            || (gw = ngx_commerce_gateway_by_name(&name)) == NULL)
        {
            ngx_commerce_pay_destroy(pay);
            continue;
        }

        pay->gw = gw;

        if (ngx_commerce_json_int(item, "ageSeconds", NULL, &pay->age) != NGX_OK) {
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
