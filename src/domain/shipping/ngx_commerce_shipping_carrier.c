
/*
 * The carrier (issue 13 section 1): its tracking service, of the Sweet
 * Tracker (스마트택배) shape, reached through a commerce_gateway on nginx
 * events (ngx_commerce_client.c), never blocking:
 *
 *   POST /add_invoice_list {"num","code","fid","callback_url",
 *        "callback_type":"json","type":"json","key"}   push registration
 *   GET  /api/v1/trackingInfo?t_key=&t_code=&t_invoice=  tracking info
 *
 * A parcel's flow is one call and one statement: a registration
 * acknowledged is recorded (cm_shipment_registered); a tracking info is
 * handed whole to cm_shipment_track, which records its events and moves
 * the states forward only.  Two jobs of worker 0: the poll job takes the
 * parcels not registered yet and those whose news stopped (leased in
 * Postgres, cm_shipments_due: instances never take the same parcel), the
 * confirmation job confirms the parts delivered confirm_after ago
 * (cm_parts_autoconfirm).
 */


#include "ngx_commerce_shipping.h"
#include "cm_shipping.h"


typedef struct {
    ngx_pool_t                    *pool;
    ngx_log_t                     *log;
    ngx_commerce_shipping_conf_t  *scf;
    int64_t                        id;          /* 0: from a callback */
    const char                    *carrier;
    char                           number[CM_TRACKING_MAX + 1];
    int                            permit;
    unsigned                       reg:1;
    ngx_commerce_client_t          http;
    ngx_commerce_pg_query_t        query;
} ngx_commerce_shipping_carrier_t;


typedef struct {
    ngx_commerce_job_t             job;
    ngx_commerce_pg_query_t        query;
    ngx_commerce_shipping_conf_t  *scf;
} ngx_commerce_shipping_carrier_job_t;


static ngx_int_t ngx_commerce_shipping_carrier_start(
    ngx_commerce_shipping_conf_t *scf, int64_t id, const char *carrier,
    u_char *number, size_t len, ngx_uint_t reg);
static void ngx_commerce_shipping_carrier_answered(ngx_commerce_client_t *h);
static void ngx_commerce_shipping_carrier_recorded(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static void ngx_commerce_shipping_carrier_end(
    ngx_commerce_shipping_carrier_t *c);
static ngx_int_t ngx_commerce_shipping_carrier_poll(ngx_commerce_job_t *job);
static ngx_int_t ngx_commerce_shipping_carrier_submit(
    ngx_commerce_shipping_carrier_job_t *j, ngx_uint_t stmt, int64_t a,
    int64_t b, ngx_commerce_pg_handler_pt handler);
static void ngx_commerce_shipping_carrier_due(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static ngx_int_t ngx_commerce_shipping_carrier_confirm(
    ngx_commerce_job_t *job);
static void ngx_commerce_shipping_carrier_confirmed(
    ngx_commerce_pg_query_t *q, ngx_int_t rc, PGresult *res);


/* the jobs, once commerce_shipping is configured */

ngx_int_t
ngx_commerce_shipping_carrier_jobs(ngx_conf_t *cf,
    ngx_commerce_shipping_conf_t *scf)
{
    ngx_commerce_shipping_carrier_job_t  *poll, *confirm;

    confirm = ngx_pcalloc(cf->pool,
                          sizeof(ngx_commerce_shipping_carrier_job_t));
    if (confirm == NULL) {
        return NGX_ERROR;
    }

    confirm->scf = scf;
    confirm->job.name = "purchase confirmation";
    confirm->job.interval = scf->interval;
    /* give the pool a moment to connect before the first run */
    confirm->job.first = ngx_min(scf->interval, 1000);
    confirm->job.run = ngx_commerce_shipping_carrier_confirm;
    confirm->job.data = confirm;

    if (ngx_commerce_job_add(cf, &confirm->job) != NGX_OK) {
        return NGX_ERROR;
    }

    if (scf->gw == NULL) {
        return NGX_OK;
    }

    poll = ngx_pcalloc(cf->pool, sizeof(ngx_commerce_shipping_carrier_job_t));
    if (poll == NULL) {
        return NGX_ERROR;
    }

    poll->scf = scf;
    poll->job.name = "shipment poll";
    poll->job.interval = scf->interval;
    poll->job.first = ngx_min(scf->interval, 1000);
    poll->job.run = ngx_commerce_shipping_carrier_poll;
    poll->job.data = poll;

    return ngx_commerce_job_add(cf, &poll->job);
}


/* a callback's pull of a parcel's tracking info */

ngx_int_t
ngx_commerce_shipping_carrier_pull(ngx_commerce_shipping_conf_t *scf,
    const char *carrier, u_char *number, size_t len)
{
    return ngx_commerce_shipping_carrier_start(scf, 0, carrier, number, len,
                                               0);
}


/*
 * One call to the carrier: a push registration (reg) or a pull of the
 * tracking info.  NGX_DECLINED: the gateway's breaker refuses calls now
 * (the parcel's lease runs out and a later run tries again).
 */

static ngx_int_t
ngx_commerce_shipping_carrier_start(ngx_commerce_shipping_conf_t *scf,
    int64_t id, const char *carrier, u_char *number, size_t len,
    ngx_uint_t reg)
{
    u_char                           *p;
    size_t                            n;
    ngx_pool_t                       *pool;
    ngx_msec_t                        ra;
    const char                       *code;
    ngx_commerce_shipping_carrier_t  *c;

    code = cm_carrier_code(carrier);

    if (scf->gw == NULL || code == NULL || len > CM_TRACKING_MAX) {
        return NGX_ERROR;
    }

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    c = ngx_pcalloc(pool, sizeof(ngx_commerce_shipping_carrier_t));
    if (c == NULL) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    c->pool = pool;
    c->log = ngx_cycle->log;
    c->scf = scf;
    c->id = id;
    c->carrier = carrier;
    c->reg = reg ? 1 : 0;
    c->permit = -1;
    ngx_memcpy(c->number, number, len);
    c->number[len] = '\0';

    if (ngx_commerce_conf_main()->shm != NULL
        && ngx_commerce_breaker_acquire(scf->gw, ngx_current_msec, &c->permit,
                                        &ra)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "commerce: carrier gateway %V refuses calls for %M ms: "
                      "parcel %s %s left for a later run", &scf->gw->name,
                      ra, carrier, c->number);
        ngx_destroy_pool(pool);
        return NGX_DECLINED;
    }

    if (reg) {
        n = sizeof("{\"num\":\"\",\"code\":\"\",\"fid\":\"\","
                   "\"callback_url\":\"?carrier=\","
                   "\"callback_type\":\"json\",\"type\":\"json\","
                   "\"key\":\"\"}") - 1
            + len + 2 + NGX_INT64_LEN + scf->callback_url.len + 6
            + scf->key.len;

        p = ngx_pnalloc(pool, n);
        if (p == NULL) {
            goto failed;
        }

        c->http.request_body.data = p;
        p = ngx_sprintf(p, "{\"num\":\"%s\",\"code\":\"%s\",\"fid\":\"%L\","
                           "\"callback_url\":\"%V?carrier=%s\","
                           "\"callback_type\":\"json\",\"type\":\"json\","
                           "\"key\":\"%V\"}",
                        c->number, code, id, &scf->callback_url, carrier,
                        &scf->key);
        c->http.request_body.len = p - c->http.request_body.data;

        ngx_str_set(&c->http.method, "POST");
        ngx_str_set(&c->http.uri, "/add_invoice_list");

    } else {
        n = sizeof("/api/v1/trackingInfo?t_key=&t_code=&t_invoice=") - 1
            + scf->key.len + 2 + len;

        p = ngx_pnalloc(pool, n);
        if (p == NULL) {
            goto failed;
        }

        c->http.uri.data = p;
        p = ngx_sprintf(p, "/api/v1/trackingInfo?t_key=%V&t_code=%s"
                           "&t_invoice=%s", &scf->key, code, c->number);
        c->http.uri.len = p - c->http.uri.data;

        ngx_str_set(&c->http.method, "GET");
    }

    c->http.pool = pool;
    c->http.log = c->log;
    c->http.gw = scf->gw;
    c->http.handler = ngx_commerce_shipping_carrier_answered;
    c->http.data = c;

    if (ngx_commerce_client_start(&c->http) != NGX_OK) {
        goto failed;
    }

    return NGX_OK;

failed:

    if (c->permit != -1) {
        ngx_commerce_breaker_record(scf->gw, c->permit, 1, 0);
    }

    ngx_destroy_pool(pool);

    return NGX_ERROR;
}


static void
ngx_commerce_shipping_carrier_answered(ngx_commerce_client_t *h)
{
    yajl_val                          v, d;
    ngx_uint_t                        failed;
    ngx_commerce_stmt_t              *stmt;
    ngx_commerce_shipping_carrier_t  *c;

    c = h->data;

    failed = (h->rc != NGX_COMMERCE_HTTP_OK || h->status >= 500);

    if (c->permit != -1) {
        ngx_commerce_breaker_record(c->scf->gw, c->permit, failed,
                                    h->rc == NGX_COMMERCE_HTTP_TIMEOUT
                                    ? c->scf->gw->timeout : h->latency);
    }

    v = (h->rc == NGX_COMMERCE_HTTP_OK && h->status == NGX_HTTP_OK)
        ? ngx_commerce_json_parse(c->pool, h->body.data, h->body.len) : NULL;

    ngx_commerce_pg_reset(&c->query);

    if (c->reg) {
        d = (v != NULL) ? ngx_commerce_json_get(v, "success", NULL) : NULL;

        if (d == NULL || !YAJL_IS_TRUE(d)) {
            goto refused;
        }

        stmt = &ngx_commerce_shipping_statements[
                                         NGX_COMMERCE_STMT_SHIP_REGISTERED];
        c->query.nparams = 1;
        c->query.params[0] = ngx_commerce_pg_int(&c->query, c->id);

    } else {
        /*
         * Any answer of the service is recorded: one without events (a
         * parcel it has not scanned yet, {"status":false,"code":"104"})
         * records the poll's time, so the parcel waits poll_after again.
         */
        if (v == NULL || !YAJL_IS_OBJECT(v)) {
            goto refused;
        }

        stmt = &ngx_commerce_shipping_statements[NGX_COMMERCE_STMT_SHIP_TRACK];
        c->query.nparams = 3;
        c->query.params[0] = c->carrier;
        c->query.params[1] = c->number;
        c->query.params[2] = ngx_commerce_json_cstr(c->pool, &h->body);

        if (c->query.params[2] == NULL) {
            goto refused;
        }
    }

    c->query.stmt = stmt;
    c->query.log = c->log;
    c->query.data = c;
    c->query.handler = ngx_commerce_shipping_carrier_recorded;

    if (ngx_commerce_pg_submit(ngx_commerce_conf_main()->pool, &c->query)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "commerce: carrier's answer for parcel %s %s not "
                      "recorded: no database connection", c->carrier,
                      c->number);
        ngx_commerce_shipping_carrier_end(c);
    }

    return;

refused:

    ngx_log_error(NGX_LOG_WARN, c->log, 0,
                  "commerce: carrier gateway %V: %s of parcel %s %s failed "
                  "(%s, status %ui); a later run tries again",
                  &c->scf->gw->name, c->reg ? "registration" : "tracking",
                  c->carrier, c->number, ngx_commerce_client_rc_name(h->rc),
                  h->status);

    ngx_commerce_shipping_carrier_end(c);
}


static void
ngx_commerce_shipping_carrier_recorded(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res)
{
    ngx_commerce_shipping_carrier_t  *c = q->data;

    if (rc != NGX_OK || res == NULL
        || PQresultStatus(res) != PGRES_TUPLES_OK)
    {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "commerce: parcel %s %s: %s not recorded: %s",
                      c->carrier, c->number,
                      c->reg ? "registration" : "tracking info",
                      (rc == NGX_OK && res != NULL)
                      ? PQresultErrorMessage(res) : "database unavailable");

    } else {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "commerce: parcel %s %s: %s recorded %s", c->carrier,
                      c->number, c->reg ? "registration" : "tracking info",
                      PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "");
    }

    ngx_commerce_shipping_carrier_end(c);
}


static void
ngx_commerce_shipping_carrier_end(ngx_commerce_shipping_carrier_t *c)
{
    ngx_destroy_pool(c->pool);
}


/*
 * The poll job: registers the parcels whose registration the carrier has
 * not acknowledged (a seller's, or a return's coming back) and pulls those
 * whose news stopped for poll_after, in case a push was lost.
 */

static ngx_int_t
ngx_commerce_shipping_carrier_poll(ngx_commerce_job_t *job)
{
    ngx_commerce_shipping_carrier_job_t  *j = job->data;

    return ngx_commerce_shipping_carrier_submit(j,
                                            NGX_COMMERCE_STMT_SHIP_DUE,
                                            j->scf->poll_after, j->scf->lease,
                                            ngx_commerce_shipping_carrier_due);
}


/* a job's statement: (a, b, batch) */

static ngx_int_t
ngx_commerce_shipping_carrier_submit(ngx_commerce_shipping_carrier_job_t *j,
    ngx_uint_t stmt, int64_t a, int64_t b, ngx_commerce_pg_handler_pt handler)
{
    ngx_commerce_pg_reset(&j->query);
    j->query.stmt = &ngx_commerce_shipping_statements[stmt];
    j->query.nparams = 3;
    j->query.params[0] = ngx_commerce_pg_int(&j->query, a);
    j->query.params[1] = ngx_commerce_pg_int(&j->query, b);
    j->query.params[2] = ngx_commerce_pg_int(&j->query, j->scf->batch);
    j->query.log = j->job.log;
    j->query.data = j;
    j->query.handler = handler;

    return ngx_commerce_pg_submit(ngx_commerce_conf_main()->pool, &j->query);
}


/* [{"id","carrier","trackingNumber","register"}]: a flow each */

static void
ngx_commerce_shipping_carrier_due(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    size_t                                i;
    int64_t                               id;
    yajl_val                              v, item, reg;
    ngx_str_t                             carrier, number;
    ngx_pool_t                           *tmp;
    const char                           *name;
    ngx_commerce_shipping_carrier_job_t  *j = q->data;

    if (rc != NGX_OK || res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1)
    {
        if (rc == NGX_OK && res != NULL) {
            ngx_log_error(NGX_LOG_ERR, q->log, 0,
                          "commerce: shipment poll failed: %s",
                          PQresultErrorMessage(res));
        }

        goto done;
    }

    tmp = ngx_create_pool(4096, q->log);
    if (tmp == NULL) {
        goto done;
    }

    v = ngx_commerce_json_parse(tmp, (u_char *) PQgetvalue(res, 0, 0),
                                PQgetlength(res, 0, 0));

    for (i = 0; v != NULL && YAJL_IS_ARRAY(v) && i < YAJL_GET_ARRAY(v)->len;
         i++)
    {
        item = YAJL_GET_ARRAY(v)->values[i];
        reg = ngx_commerce_json_get(item, "register", NULL);

        if (ngx_commerce_json_int(item, "id", NULL, &id) != NGX_OK
            || ngx_commerce_json_str(tmp, item, "carrier", NULL, &carrier, 16)
               != NGX_OK
            || ngx_commerce_json_str(tmp, item, "trackingNumber", NULL,
                                     &number, CM_TRACKING_MAX) != NGX_OK
            || (name = cm_carrier_name(carrier.data, carrier.len)) == NULL
            || reg == NULL)
        {
            continue;
        }

        (void) ngx_commerce_shipping_carrier_start(j->scf, id, name,
                                                   number.data, number.len,
                                                   YAJL_IS_TRUE(reg));
    }

    ngx_destroy_pool(tmp);

done:

    ngx_commerce_job_done(&j->job, 0);
}


/* the confirmation job: parts delivered confirm_after ago */

static ngx_int_t
ngx_commerce_shipping_carrier_confirm(ngx_commerce_job_t *job)
{
    ngx_commerce_shipping_carrier_job_t  *j = job->data;

    return ngx_commerce_shipping_carrier_submit(j,
                                        NGX_COMMERCE_STMT_SHIP_AUTOCONFIRM,
                                        j->scf->confirm_after,
                                        j->scf->points_bp,
                                        ngx_commerce_shipping_carrier_confirmed);
}


static void
ngx_commerce_shipping_carrier_confirmed(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res)
{
    int64_t                               n;
    ngx_commerce_shipping_carrier_job_t  *j = q->data;

    n = 0;

    if (rc == NGX_OK && ngx_commerce_pg_int_result(res, &n) == NGX_OK) {
        if (n > 0) {
            ngx_log_error(NGX_LOG_NOTICE, q->log, 0,
                          "commerce: purchase confirmation confirmed %L "
                          "part(s) delivered %T s ago or more", n,
                          j->scf->confirm_after);
        }

    } else if (rc == NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "commerce: purchase confirmation failed: %s",
                      PQresultErrorMessage(res));
    }

    ngx_commerce_job_done(&j->job, 0);
}
