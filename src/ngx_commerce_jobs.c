
/*
 * Background jobs on nginx timers.
 *
 * Order expiry: unpaid orders older than commerce_order_ttl are cancelled
 * and their stock released by cm_orders_expire(), which claims rows with
 * FOR UPDATE SKIP LOCKED: any number of workers and nginx instances may run
 * it against one database without double-releasing stock.  Within one
 * instance only worker 0 runs it, to keep the database quiet.
 */


#include "ngx_commerce.h"


#define NGX_COMMERCE_EXPIRY_BATCH  500
#define NGX_COMMERCE_PURGE_BATCH   "10000"
#define NGX_COMMERCE_PURGE_EVERY   600000      /* ms */


typedef struct {
    ngx_event_t               ev;
    ngx_commerce_pg_query_t   query;
    char                      ttl[NGX_INT64_LEN + 1];
    char                      batch[NGX_INT64_LEN + 1];
    ngx_commerce_main_conf_t *mcf;
    ngx_msec_t                purge_at;
    unsigned                  running:1;
    unsigned                  purging:1;
} ngx_commerce_expiry_t;


static void ngx_commerce_expiry_handler(ngx_event_t *ev);
static void ngx_commerce_expiry_done(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static void ngx_commerce_expiry_schedule(ngx_commerce_expiry_t *job,
    ngx_msec_t delay);


ngx_int_t
ngx_commerce_jobs_init_worker(ngx_cycle_t *cycle,
    ngx_commerce_main_conf_t *mcf)
{
    ngx_commerce_expiry_t  *job;

    if (ngx_worker != 0) {
        return NGX_OK;
    }

    job = ngx_pcalloc(cycle->pool, sizeof(ngx_commerce_expiry_t));
    if (job == NULL) {
        return NGX_ERROR;
    }

    job->mcf = mcf;
    job->ev.handler = ngx_commerce_expiry_handler;
    job->ev.data = job;
    job->ev.log = cycle->log;

    *ngx_sprintf((u_char *) job->ttl, "%T", mcf->order_ttl) = '\0';
    *ngx_sprintf((u_char *) job->batch, "%d", NGX_COMMERCE_EXPIRY_BATCH)
        = '\0';

    job->query.stmt = NGX_COMMERCE_STMT_ORDERS_EXPIRE;
    job->query.nparams = 2;
    job->query.params[0] = job->ttl;
    job->query.params[1] = job->batch;
    job->query.log = cycle->log;
    job->query.data = job;
    job->query.handler = ngx_commerce_expiry_done;

    mcf->expiry_event = &job->ev;
    job->purge_at = ngx_current_msec;           /* the first run purges */

    /* give the pool a moment to connect before the first run */
    ngx_commerce_expiry_schedule(job, ngx_min(mcf->expiry_interval, 1000));

    return NGX_OK;
}


static void
ngx_commerce_expiry_schedule(ngx_commerce_expiry_t *job, ngx_msec_t delay)
{
    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    /* cancelable: an exiting worker must not wait for its next run */
    job->ev.cancelable = 1;
    ngx_add_timer(&job->ev, delay);
}


static void
ngx_commerce_expiry_handler(ngx_event_t *ev)
{
    ngx_int_t               rc;
    ngx_commerce_expiry_t  *job;

    job = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit || job->running) {
        return;
    }

    job->query.retries = 0;

    /*
     * Every 10 minutes one run purges Idempotency-Keys older than 24 h
     * instead (SKIP LOCKED, so instances share the work).
     */
    job->purging = ((ngx_msec_int_t) (ngx_current_msec - job->purge_at) >= 0);

    if (job->purging) {
        job->query.stmt = NGX_COMMERCE_STMT_IDEM_PURGE;
        job->query.nparams = 1;
        job->query.params[0] = NGX_COMMERCE_PURGE_BATCH;

    } else {
        job->query.stmt = NGX_COMMERCE_STMT_ORDERS_EXPIRE;
        job->query.nparams = 2;
        job->query.params[0] = job->ttl;
        job->query.params[1] = job->batch;
    }

    rc = ngx_commerce_pg_submit(job->mcf->pool, &job->query);

    if (rc != NGX_OK) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                       "commerce: order expiry skipped, no connection");
        ngx_commerce_expiry_schedule(job, job->mcf->expiry_interval);
        return;
    }

    job->running = 1;
}


static void
ngx_commerce_expiry_done(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    ngx_int_t               n;
    ngx_commerce_expiry_t  *job;

    job = q->data;
    job->running = 0;

    n = 0;

    if (job->purging) {
        job->purge_at = ngx_current_msec + NGX_COMMERCE_PURGE_EVERY;

        if (rc == NGX_OK && PQresultStatus(res) == PGRES_TUPLES_OK
            && PQntuples(res) == 1)
        {
            n = ngx_atoi((u_char *) PQgetvalue(res, 0, 0),
                         PQgetlength(res, 0, 0));

            if (n > 0) {
                ngx_log_error(NGX_LOG_NOTICE, q->log, 0,
                              "commerce: purged %i Idempotency-Key(s) "
                              "older than 24 h", n);
            }

        } else if (rc == NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, q->log, 0,
                          "commerce: Idempotency-Key purge failed: %s",
                          PQresultErrorMessage(res));
        }

        /* the expiry run this one took the place of: at once */
        ngx_commerce_expiry_schedule(job, 1);
        return;
    }

    if (rc == NGX_OK && PQresultStatus(res) == PGRES_TUPLES_OK
        && PQntuples(res) == 1)
    {
        n = ngx_atoi((u_char *) PQgetvalue(res, 0, 0),
                     PQgetlength(res, 0, 0));

        if (n > 0) {
            ngx_log_error(NGX_LOG_NOTICE, q->log, 0,
                          "commerce: order expiry cancelled %i unpaid "
                          "order(s) older than %T s",
                          n, job->mcf->order_ttl);
        }

    } else if (rc == NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "commerce: order expiry failed: %s",
                      PQresultErrorMessage(res));
    }

    /* a full batch means more are due: run again at once */
    ngx_commerce_expiry_schedule(job, n == NGX_COMMERCE_EXPIRY_BATCH
                                      ? 1 : job->mcf->expiry_interval);
}
