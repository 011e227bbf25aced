
/*
 * The settlement's jobs, on worker 0 of each instance:
 *
 * the weekly run: every interval, cm_settlement_run(now(), ...) settles
 * the week whose Monday 00:00 Asia/Seoul has passed last; a week already
 * settled makes nothing (one settlement per store and week), so every
 * instance may run it, at any time of the week;
 *
 * the payouts: leases the due payouts (cm_payout_claim, SKIP LOCKED) and
 * talks to the payout API for each in turn: sends a REQUESTED one
 * (POST /v1/payouts, its idempotency key po-<id>-<attempt>), pulls the
 * status of a PENDING one (GET /v1/payouts/{key}: after a callback, or
 * when it stayed pending for check), and writes what came of it
 * (cm_payout_result, which counts the tries, backs off and gives up).
 * The store's account is opened here, from the accounts' PII keyring,
 * only for the request's body.
 */


#include "ngx_commerce_settlement.h"
#include "cm_pii.h"


#define NGX_COMMERCE_PAYOUT_BATCH   20


typedef struct {
    ngx_commerce_job_t               job;
    ngx_commerce_pg_query_t          query;
    ngx_commerce_main_conf_t        *mcf;
    ngx_commerce_settlement_conf_t  *scf;
} ngx_commerce_settlement_job_weekly_t;


typedef struct {
    ngx_commerce_job_t               job;
    ngx_commerce_pg_query_t          query;
    ngx_commerce_client_t            http;
    ngx_commerce_main_conf_t        *mcf;
    ngx_commerce_settlement_conf_t  *scf;

    /* one run */
    ngx_pool_t                      *pool;
    yajl_val                         items;
    size_t                           next;
    int64_t                          id;
    int64_t                          attempt;
    const char                      *key;
    const char                      *outcome;
    char                             reason[201];
    unsigned                         check:1;
} ngx_commerce_settlement_job_payout_t;


static ngx_commerce_job_t *ngx_commerce_settlement_job_new(ngx_conf_t *cf,
    size_t size, const char *name, ngx_commerce_job_pt run,
    ngx_commerce_settlement_conf_t *scf);
static ngx_int_t ngx_commerce_settlement_job_week(ngx_commerce_job_t *job);
static void ngx_commerce_settlement_job_weekly_done(
    ngx_commerce_pg_query_t *q, ngx_int_t rc, PGresult *res);
static ngx_int_t ngx_commerce_settlement_job_payouts(ngx_commerce_job_t *job);
static void ngx_commerce_settlement_job_claimed(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static void ngx_commerce_settlement_job_next(
    ngx_commerce_settlement_job_payout_t *po);
static ngx_int_t ngx_commerce_settlement_job_send(
    ngx_commerce_settlement_job_payout_t *po, yajl_val item);
static ngx_int_t ngx_commerce_settlement_job_open(
    ngx_commerce_settlement_job_payout_t *po, const char *field,
    int64_t owner, yajl_val ct, ngx_str_t *out);
static void ngx_commerce_settlement_job_answered(ngx_commerce_client_t *h);
static void ngx_commerce_settlement_job_result(
    ngx_commerce_settlement_job_payout_t *po);
static void ngx_commerce_settlement_job_written(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static void ngx_commerce_settlement_job_end(
    ngx_commerce_settlement_job_payout_t *po);


ngx_int_t
ngx_commerce_settlement_job_init(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf, ngx_commerce_settlement_conf_t *scf)
{
    ngx_commerce_settlement_job_weekly_t  *wk;
    ngx_commerce_settlement_job_payout_t  *po;

    if (scf->weekly) {
        wk = (ngx_commerce_settlement_job_weekly_t *)
                 ngx_commerce_settlement_job_new(cf,
                     sizeof(ngx_commerce_settlement_job_weekly_t),
                     "settlement weekly run",
                     ngx_commerce_settlement_job_week, scf);
        if (wk == NULL) {
            return NGX_ERROR;
        }

        wk->mcf = mcf;
        wk->scf = scf;

        if (ngx_commerce_job_add(cf, &wk->job) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    po = (ngx_commerce_settlement_job_payout_t *)
             ngx_commerce_settlement_job_new(cf,
                 sizeof(ngx_commerce_settlement_job_payout_t),
                 "settlement payouts", ngx_commerce_settlement_job_payouts,
                 scf);
    if (po == NULL) {
        return NGX_ERROR;
    }

    po->mcf = mcf;
    po->scf = scf;

    return ngx_commerce_job_add(cf, &po->job);
}


/*
 * A job's state, zeroed, its job first (so that the job's data is the
 * state itself), run every interval.
 */

static ngx_commerce_job_t *
ngx_commerce_settlement_job_new(ngx_conf_t *cf, size_t size,
    const char *name, ngx_commerce_job_pt run,
    ngx_commerce_settlement_conf_t *scf)
{
    ngx_commerce_job_t  *job;

    job = ngx_pcalloc(cf->pool, size);
    if (job == NULL) {
        return NULL;
    }

    job->name = name;
    job->interval = scf->interval;
    /* give the pool a moment to connect before the first run */
    job->first = ngx_min(scf->interval, 1000);
    job->run = run;
    job->data = job;

    return job;
}


/* the weekly run */

static ngx_int_t
ngx_commerce_settlement_job_week(ngx_commerce_job_t *job)
{
    ngx_commerce_settlement_job_weekly_t  *wk = job->data;

    ngx_commerce_pg_reset(&wk->query);
    wk->query.stmt = &ngx_commerce_settlement_statements
                         [NGX_COMMERCE_STMT_SETTLEMENT_RUN];
    wk->query.nparams = 3;
    wk->query.params[0] = ngx_commerce_pg_int(&wk->query, wk->scf->hold);
    wk->query.params[1] = ngx_commerce_pg_int(&wk->query, wk->scf->fee_bp);
    wk->query.params[2] = ngx_commerce_pg_int(&wk->query, wk->scf->minimum);
    wk->query.log = job->log;
    wk->query.data = wk;
    wk->query.handler = ngx_commerce_settlement_job_weekly_done;

    return ngx_commerce_pg_submit(wk->mcf->pool, &wk->query);
}


static void
ngx_commerce_settlement_job_weekly_done(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res)
{
    ngx_commerce_settlement_job_weekly_t  *wk = q->data;

    if (rc == NGX_OK && PQresultStatus(res) == PGRES_TUPLES_OK) {
        if (PQntuples(res) == 1
            && ngx_strstr(PQgetvalue(res, 0, 0), "\"settlements\":[]")
               == NULL)
        {
            ngx_log_error(NGX_LOG_NOTICE, q->log, 0,
                          "commerce: settlement weekly run: %s",
                          PQgetvalue(res, 0, 0));
        }

    } else if (rc == NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "commerce: settlement weekly run failed: %s",
                      PQresultErrorMessage(res));
    }

    ngx_commerce_job_done(&wk->job, 0);
}


/* the payouts: claim, then each in turn */

static ngx_int_t
ngx_commerce_settlement_job_payouts(ngx_commerce_job_t *job)
{
    ngx_commerce_settlement_job_payout_t  *po = job->data;

    /* the peer's addresses, in the one worker that runs the job */
    if (!po->scf->peer_ready) {
        if (ngx_commerce_gateway_peer_init((ngx_cycle_t *) ngx_cycle,
                                           &po->scf->peer)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        po->scf->peer_ready = 1;
    }

    po->pool = ngx_create_pool(4096, job->log);
    if (po->pool == NULL) {
        return NGX_ERROR;
    }

    po->items = NULL;
    po->next = 0;

    ngx_commerce_pg_reset(&po->query);
    po->query.stmt = &ngx_commerce_settlement_statements
                         [NGX_COMMERCE_STMT_PAYOUT_CLAIM];
    po->query.nparams = 2;
    po->query.params[0] = ngx_commerce_pg_int(&po->query,
                                              NGX_COMMERCE_PAYOUT_BATCH);
    /* the lease outlives a run: every exchange is bounded by the gateway */
    po->query.params[1] = ngx_commerce_pg_int(&po->query,
                              NGX_COMMERCE_PAYOUT_BATCH
                              * (po->scf->peer.timeout
                                 + po->scf->peer.connect_timeout) / 1000
                              + 60);
    po->query.log = job->log;
    po->query.data = po;
    po->query.handler = ngx_commerce_settlement_job_claimed;

    if (ngx_commerce_pg_submit(po->mcf->pool, &po->query) != NGX_OK) {
        ngx_destroy_pool(po->pool);
        po->pool = NULL;
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_commerce_settlement_job_claimed(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res)
{
    ngx_commerce_settlement_job_payout_t  *po = q->data;

    if (rc != NGX_OK || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1)
    {
        if (rc == NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, q->log, 0,
                          "commerce: payout claim failed: %s",
                          PQresultErrorMessage(res));
        }

        ngx_commerce_settlement_job_end(po);
        return;
    }

    po->items = ngx_commerce_json_parse(po->pool,
                                        (u_char *) PQgetvalue(res, 0, 0),
                                        PQgetlength(res, 0, 0));

    if (po->items == NULL || !YAJL_IS_ARRAY(po->items)) {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "commerce: payout claim: not a list");
        ngx_commerce_settlement_job_end(po);
        return;
    }

    ngx_commerce_settlement_job_next(po);
}


static void
ngx_commerce_settlement_job_next(ngx_commerce_settlement_job_payout_t *po)
{
    yajl_val     item;
    const char  *action;

    while (po->next < YAJL_GET_ARRAY(po->items)->len) {
        item = YAJL_GET_ARRAY(po->items)->values[po->next++];

        action = ngx_commerce_json_string(item, "action");
        po->key = ngx_commerce_json_string(item, "key");

        if (action == NULL || po->key == NULL
            || ngx_commerce_json_int(item, "id", NULL, &po->id) != NGX_OK
            || ngx_commerce_json_int(item, "attempt", NULL, &po->attempt)
               != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, po->job.log, 0,
                          "commerce: payout claim: a bad item");
            continue;
        }

        po->check = (ngx_strcmp(action, "check") == 0);
        po->reason[0] = '\0';

        if (ngx_commerce_settlement_job_send(po, item) == NGX_OK) {
            return;
        }

        /* no request went out: the same key again later */
        po->outcome = "ERROR";
        ngx_cpystrn((u_char *) po->reason, (u_char *) "not sent",
                    sizeof(po->reason));
        ngx_commerce_settlement_job_result(po);
        return;
    }

    ngx_commerce_settlement_job_end(po);
}


/* POST /v1/payouts (send) or GET /v1/payouts/{key} (check) */

static ngx_int_t
ngx_commerce_settlement_job_send(ngx_commerce_settlement_job_payout_t *po,
    yajl_val item)
{
    u_char                          *p, *last;
    size_t                           len;
    int64_t                          amount, owner;
    ngx_str_t                        s, number, holder;
    const char                      *bank;
    ngx_commerce_settlement_conf_t  *scf;

    scf = po->scf;

    ngx_memzero(&po->http, sizeof(ngx_commerce_client_t));

    po->http.pool = po->pool;
    po->http.log = po->job.log;
    po->http.gw = &scf->peer;
    po->http.handler = ngx_commerce_settlement_job_answered;
    po->http.data = po;

    if (po->check) {
        len = sizeof("/v1/payouts/") - 1 + ngx_strlen(po->key);

        p = ngx_pnalloc(po->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        po->http.uri.data = p;
        po->http.uri.len = ngx_sprintf(p, "/v1/payouts/%s", po->key) - p;
        ngx_str_set(&po->http.method, "GET");

        return ngx_commerce_client_start(&po->http);
    }

    bank = ngx_commerce_json_string(item, "bankCode");
    ngx_str_null(&number);
    ngx_str_null(&holder);

    if (bank == NULL
        || ngx_commerce_json_int(item, "amount", NULL, &amount) != NGX_OK
        || ngx_commerce_json_int(item, "ownerId", NULL, &owner) != NGX_OK
        || ngx_commerce_settlement_job_open(po, "stores.account_number",
                                            owner,
                                            ngx_commerce_json_get(item,
                                                "accountCt", NULL),
                                            &number)
           != NGX_OK
        || ngx_commerce_settlement_job_open(po, "stores.account_holder",
                                            owner,
                                            ngx_commerce_json_get(item,
                                                "holderCt", NULL),
                                            &holder)
           != NGX_OK)
    {
        if (number.data != NULL) {
            ngx_explicit_memzero(number.data, number.len);
        }

        return NGX_ERROR;
    }

    /* every opened byte may take 6 escaped */
    len = sizeof("{\"idempotencyKey\":\"\",\"amount\":,\"bankCode\":\"\","
                 "\"accountNumber\":\"\",\"holder\":\"\","
                 "\"callbackUrl\":\"\"}") - 1
          + ngx_strlen(po->key) + NGX_INT64_LEN + ngx_strlen(bank)
          + 6 * (number.len + holder.len) + scf->callback_url.len + 16;

    p = ngx_pnalloc(po->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    last = p + len;
    po->http.request_body.data = p;

    p = ngx_slprintf(p, last, "{\"idempotencyKey\":\"%s\",\"amount\":%L",
                     po->key, amount);

    s.data = (u_char *) bank;
    s.len = ngx_strlen(bank);
    p = ngx_commerce_json_put(p, last, "bankCode", &s);

    p = ngx_commerce_json_put(p, last, "accountNumber", &number);
    p = ngx_commerce_json_put(p, last, "holder", &holder);

    if (scf->callback_url.len) {
        p = ngx_commerce_json_put(p, last, "callbackUrl", &scf->callback_url);
    }

    if (p < last) {
        *p++ = '}';
    }

    po->http.request_body.len = p - po->http.request_body.data;

    ngx_explicit_memzero(number.data, number.len);
    ngx_explicit_memzero(holder.data, holder.len);

    ngx_str_set(&po->http.method, "POST");
    ngx_str_set(&po->http.uri, "/v1/payouts");

    return ngx_commerce_client_start(&po->http);
}


/*
 * A store's sealed account text, opened with the accounts' keyring into
 * the run's pool (the caller wipes it once the request is built).
 */

static ngx_int_t
ngx_commerce_settlement_job_open(ngx_commerce_settlement_job_payout_t *po,
    const char *field, int64_t owner, yajl_val ct, ngx_str_t *out)
{
    char         aad[64];
    size_t       alen, len;
    const char  *text, *why;

    text = (ct != NULL) ? YAJL_GET_STRING(ct) : NULL;

    if (text == NULL || po->mcf->pii_keys == NULL) {
        ngx_log_error(NGX_LOG_ERR, po->job.log, 0,
                      "commerce: payout %L: no %s to open (commerce_pii_keys"
                      " set?)", po->id, field);
        return NGX_ERROR;
    }

    alen = cm_pii_aad(aad, sizeof(aad), field, owner);
    len = ngx_strlen(text);

    /* the ciphertext's length always suffices (cm_pii.h) */
    out->data = ngx_pnalloc(po->pool, len + 1);

    if (alen == 0 || out->data == NULL
        || cm_pii_decrypt(out->data, len + 1, &out->len, po->mcf->pii_keys,
                          (const unsigned char *) aad, alen, text, len, NULL,
                          &why)
           != 0)
    {
        ngx_log_error(NGX_LOG_ERR, po->job.log, 0,
                      "commerce: payout %L: %s: cannot open", po->id, field);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The API's answer.  Its "status": PENDING (accepted, pull it later),
 * SUCCEEDED, FAILED with "reason"; a 404 to a status pull: it never got
 * the request; another 4xx to a request: refused for good (FAILED); a 5xx,
 * a timeout or a broken answer: unknown (the same key again).
 */

static void
ngx_commerce_settlement_job_answered(ngx_commerce_client_t *h)
{
    yajl_val                               v;
    ngx_str_t                              reason;
    const char                            *status;
    ngx_commerce_settlement_job_payout_t  *po = h->data;

    po->outcome = "ERROR";
    v = NULL;

    if (h->rc != NGX_COMMERCE_HTTP_OK) {
        ngx_snprintf((u_char *) po->reason, sizeof(po->reason) - 1,
                     "%s%Z", ngx_commerce_client_rc_name(h->rc));

    } else if (h->status >= 500 || h->status < 200) {
        ngx_snprintf((u_char *) po->reason, sizeof(po->reason) - 1,
                     "HTTP %ui%Z", h->status);

    } else if (h->status == 404 && po->check) {
        po->outcome = "UNKNOWN";

    } else {
        v = ngx_commerce_json_parse(po->pool, h->body.data, h->body.len);
        status = (v != NULL) ? ngx_commerce_json_string(v, "status") : NULL;

        if (v != NULL
            && ngx_commerce_json_str(po->pool, v, "reason", NULL, &reason,
                                     sizeof(po->reason) - 1)
               == NGX_OK
            && reason.len)
        {
            ngx_cpystrn((u_char *) po->reason, reason.data, reason.len + 1);
        }

        if (h->status >= 400) {
            po->outcome = "FAILED";

            if (po->reason[0] == '\0') {
                ngx_snprintf((u_char *) po->reason, sizeof(po->reason) - 1,
                             "refused: HTTP %ui%Z", h->status);
            }

        } else if (status == NULL) {
            ngx_cpystrn((u_char *) po->reason,
                        (u_char *) "an answer without a status",
                        sizeof(po->reason));

        } else if (ngx_strcmp(status, "SUCCEEDED") == 0) {
            po->outcome = "SUCCEEDED";

        } else if (ngx_strcmp(status, "FAILED") == 0) {
            po->outcome = "FAILED";

        } else if (ngx_strcmp(status, "PENDING") == 0) {
            po->outcome = "ACCEPTED";
        }
    }

    ngx_log_error(NGX_LOG_INFO, po->job.log, 0,
                  "commerce: payout %s %s: %s %s", po->key,
                  po->check ? "status" : "request", po->outcome, po->reason);

    ngx_commerce_settlement_job_result(po);
}


static void
ngx_commerce_settlement_job_result(ngx_commerce_settlement_job_payout_t *po)
{
    ngx_commerce_pg_reset(&po->query);
    po->query.stmt = &ngx_commerce_settlement_statements
                         [NGX_COMMERCE_STMT_PAYOUT_RESULT];
    po->query.nparams = 6;
    po->query.params[0] = ngx_commerce_pg_int(&po->query, po->id);
    po->query.params[1] = ngx_commerce_pg_int(&po->query, po->attempt);
    po->query.params[2] = po->outcome;
    po->query.params[3] = po->reason[0] ? po->reason : NULL;
    po->query.params[4] = ngx_commerce_pg_int(&po->query, po->scf->retries);
    po->query.params[5] = ngx_commerce_pg_int(&po->query, po->scf->check);
    po->query.log = po->job.log;
    po->query.data = po;
    po->query.handler = ngx_commerce_settlement_job_written;

    if (ngx_commerce_pg_submit(po->mcf->pool, &po->query) != NGX_OK) {
        /* the lease runs out and the payout is claimed again */
        ngx_commerce_settlement_job_end(po);
    }
}


static void
ngx_commerce_settlement_job_written(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    ngx_commerce_settlement_job_payout_t  *po = q->data;

    if (rc == NGX_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "commerce: payout %s: result not written: %s",
                      po->key, PQresultErrorMessage(res));

    } else if (rc == NGX_OK && PQntuples(res) == 1) {
        ngx_log_error(NGX_LOG_INFO, q->log, 0,
                      "commerce: payout %s is %s", po->key,
                      PQgetvalue(res, 0, 0));
    }

    if (rc != NGX_OK) {
        ngx_commerce_settlement_job_end(po);
        return;
    }

    ngx_commerce_settlement_job_next(po);
}


static void
ngx_commerce_settlement_job_end(ngx_commerce_settlement_job_payout_t *po)
{
    if (po->pool != NULL) {
        ngx_destroy_pool(po->pool);
        po->pool = NULL;
    }

    ngx_commerce_job_done(&po->job, 0);
}
