
/*
 * Retention (seed 003: orders 5 years, logs 90 days).  A job of worker 0
 * of each instance purges each kind of log older than its age, in batches
 * of `batch` rows, again while a batch comes back full, at most
 * NGX_COMMERCE_RETENTION_ROUNDS batches per kind and run: a backlog drains
 * over several runs without holding a connection long.  The statement
 * locks its rows SKIP LOCKED, so instances share the work.  Orders,
 * payments and the ledger are not here: sql/functions/90_retention.sql
 * refuses to delete them before 5 years.
 *
 *   commerce_retention KIND AGE|off [batch=N];
 *   commerce_retention_interval TIME;
 */


#include "ngx_commerce_retention.h"


#define NGX_COMMERCE_RETENTION_ROUNDS    10
#define NGX_COMMERCE_RETENTION_BATCH     1000
#define NGX_COMMERCE_RETENTION_INTERVAL  60000     /* ms */
#define NGX_COMMERCE_RETENTION_FIRST     2000      /* ms after start */
#define NGX_COMMERCE_DAY                 86400


enum {
    NGX_COMMERCE_STMT_RETENTION_PURGE = 0,
    NGX_COMMERCE_RETENTION_NSTMT
};


typedef struct {
    const char                  *name;     /* the directive's KIND */
    const char                  *labels;   /* its metrics' labels */
    time_t                       age;      /* default; 0: off */
} ngx_commerce_retention_kind_t;


static ngx_commerce_retention_kind_t  ngx_commerce_retention_kinds[] = {
    { "payment_log", "kind=\"payment_log\"", 90 * NGX_COMMERCE_DAY },
    { "audit_log", "kind=\"audit_log\"", 90 * NGX_COMMERCE_DAY },
    { "outbox", "kind=\"outbox\"", 7 * NGX_COMMERCE_DAY },
    { NULL, NULL, 0 }
};

#define NGX_COMMERCE_RETENTION_KINDS                                         \
    (sizeof(ngx_commerce_retention_kinds)                                    \
     / sizeof(ngx_commerce_retention_kind_t) - 1)


typedef struct {
    time_t                       age[NGX_COMMERCE_RETENTION_KINDS];
    ngx_uint_t                   batch[NGX_COMMERCE_RETENTION_KINDS];
    ngx_int_t                    purged[NGX_COMMERCE_RETENTION_KINDS];
    ngx_int_t                    failed[NGX_COMMERCE_RETENTION_KINDS];
    ngx_msec_t                   interval;

    ngx_commerce_job_t           job;
    ngx_commerce_pg_query_t      query;
    ngx_commerce_main_conf_t    *mcf;
    ngx_uint_t                   kind;     /* of the running batch */
    ngx_uint_t                   round;
    u_char                       age_text[NGX_INT64_LEN + 2];
} ngx_commerce_retention_t;


static ngx_commerce_retention_t *ngx_commerce_retention_get(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);
static ngx_int_t ngx_commerce_retention_run(ngx_commerce_job_t *job);
static ngx_int_t ngx_commerce_retention_next(ngx_commerce_retention_t *rt);
static void ngx_commerce_retention_purged(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);


ngx_commerce_stmt_t  ngx_commerce_retention_statements[] = {

    [NGX_COMMERCE_STMT_RETENTION_PURGE] =
    { "cm_retention_purge",
      "SELECT cm_retention_purge($1::text, $2::bigint, $3::int)", 3, 0,
      NULL, 0 },

    [NGX_COMMERCE_RETENTION_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


static ngx_commerce_retention_t *
ngx_commerce_retention_get(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    ngx_uint_t                 k;
    ngx_commerce_retention_t  *rt;

    if (mcf->retention != NULL) {
        return mcf->retention;
    }

    rt = ngx_pcalloc(cf->pool, sizeof(ngx_commerce_retention_t));
    if (rt == NULL) {
        return NULL;
    }

    for (k = 0; k < NGX_COMMERCE_RETENTION_KINDS; k++) {
        rt->age[k] = ngx_commerce_retention_kinds[k].age;
        rt->batch[k] = NGX_COMMERCE_RETENTION_BATCH;
    }

    rt->interval = NGX_COMMERCE_RETENTION_INTERVAL;
    rt->mcf = mcf;
    mcf->retention = rt;

    return rt;
}


/* commerce_retention KIND AGE|off [batch=N] */

char *
ngx_commerce_retention_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_commerce_main_conf_t *mcf = conf;

    time_t                     age;
    ngx_int_t                  n;
    ngx_str_t                 *value;
    ngx_uint_t                 k, i;
    ngx_commerce_retention_t  *rt;

    rt = ngx_commerce_retention_get(cf, mcf);
    if (rt == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (k = 0; ngx_commerce_retention_kinds[k].name != NULL; k++) {
        if (ngx_strcmp(value[1].data, ngx_commerce_retention_kinds[k].name)
            == 0)
        {
            break;
        }
    }

    if (ngx_commerce_retention_kinds[k].name == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_retention\": unknown kind \"%V\" "
                           "(payment_log, audit_log, outbox)", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_strcmp(value[2].data, "off") == 0) {
        age = 0;

    } else {
        age = ngx_parse_time(&value[2], 1);

        if (age == (time_t) NGX_ERROR || age < NGX_COMMERCE_DAY
            || age > (time_t) 100 * 365 * NGX_COMMERCE_DAY)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_retention\": invalid age \"%V\" "
                               "(off, or 1d to 100y)", &value[2]);
            return NGX_CONF_ERROR;
        }
    }

    rt->age[k] = age;

    for (i = 3; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "batch=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);

            if (n < 1 || n > 100000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"commerce_retention\": invalid batch "
                                   "\"%V\" (1 to 100000)", &value[i]);
                return NGX_CONF_ERROR;
            }

            rt->batch[k] = n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_retention\": unknown parameter "
                           "\"%V\" (batch=)", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* commerce_retention_interval TIME */

char *
ngx_commerce_retention_interval_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_commerce_main_conf_t *mcf = conf;

    ngx_str_t                 *value;
    ngx_msec_t                 ms;
    ngx_commerce_retention_t  *rt;

    rt = ngx_commerce_retention_get(cf, mcf);
    if (rt == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;
    ms = ngx_parse_time(&value[1], 0);

    if (ms == (ngx_msec_t) NGX_ERROR || ms < 100 || ms > 86400000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_retention_interval\": invalid time "
                           "\"%V\" (100ms to 1d)", &value[1]);
        return NGX_CONF_ERROR;
    }

    rt->interval = ms;

    return NGX_CONF_OK;
}


/* the statement, the counters and the job */

ngx_int_t
ngx_commerce_retention_init(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    ngx_uint_t                 k;
    ngx_commerce_retention_t  *rt;

    rt = ngx_commerce_retention_get(cf, mcf);
    if (rt == NULL) {
        return NGX_ERROR;
    }

    for (k = 0; k < NGX_COMMERCE_RETENTION_KINDS; k++) {
        rt->purged[k] = ngx_commerce_conf_counter(cf,
                            "commerce_retention_purged_total", "counter",
                            "Rows purged by the retention job, by kind.",
                            ngx_commerce_retention_kinds[k].labels);
        rt->failed[k] = ngx_commerce_conf_counter(cf,
                            "commerce_retention_failures_total", "counter",
                            "Retention batches that failed, by kind.",
                            ngx_commerce_retention_kinds[k].labels);

        if (rt->purged[k] == NGX_ERROR || rt->failed[k] == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    rt->job.name = "retention";
    rt->job.first = NGX_COMMERCE_RETENTION_FIRST;
    rt->job.interval = rt->interval;
    rt->job.run = ngx_commerce_retention_run;
    rt->job.data = rt;

    return ngx_commerce_job_add(cf, &rt->job);
}


static ngx_int_t
ngx_commerce_retention_run(ngx_commerce_job_t *job)
{
    ngx_commerce_retention_t  *rt = job->data;

    rt->kind = 0;
    rt->round = 0;

    return ngx_commerce_retention_next(rt);
}


/* the next batch: of the same kind, or of the next kind that is on */

static ngx_int_t
ngx_commerce_retention_next(ngx_commerce_retention_t *rt)
{
    ngx_commerce_pg_query_t  *q;

    while (rt->kind < NGX_COMMERCE_RETENTION_KINDS
           && (rt->age[rt->kind] == 0
               || rt->round >= NGX_COMMERCE_RETENTION_ROUNDS))
    {
        rt->kind++;
        rt->round = 0;
    }

    if (rt->kind == NGX_COMMERCE_RETENTION_KINDS) {
        return NGX_DECLINED;
    }

    rt->round++;

    q = &rt->query;
    ngx_commerce_pg_reset(q);
    q->stmt = &ngx_commerce_retention_statements[
                                           NGX_COMMERCE_STMT_RETENTION_PURGE];
    q->nparams = 3;
    q->params[0] = ngx_commerce_retention_kinds[rt->kind].name;
    q->params[1] = ngx_commerce_pg_int(q, rt->age[rt->kind]);
    q->params[2] = ngx_commerce_pg_int(q, rt->batch[rt->kind]);
    q->log = rt->job.log;
    q->data = rt;
    q->handler = ngx_commerce_retention_purged;

    return ngx_commerce_pg_submit(rt->mcf->pool, q);
}


static void
ngx_commerce_retention_purged(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    int64_t                    n;
    ngx_uint_t                 k;
    ngx_commerce_retention_t  *rt = q->data;

    k = rt->kind;

    if (rc == NGX_OK && ngx_commerce_pg_int_result(res, &n) == NGX_OK) {
        ngx_commerce_shm_count(rt->purged[k], n);

        if (n > 0) {
            ngx_log_error(NGX_LOG_NOTICE, q->log, 0,
                          "commerce: retention: purged %L %s row(s) older "
                          "than %T s", n, ngx_commerce_retention_kinds[k].name,
                          rt->age[k]);
        }

        if ((ngx_uint_t) n < rt->batch[k]) {
            /* drained: the next kind */
            rt->round = NGX_COMMERCE_RETENTION_ROUNDS;
        }

    } else {
        ngx_commerce_shm_count(rt->failed[k], 1);
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "commerce: retention of %s failed: %s",
                      ngx_commerce_retention_kinds[k].name,
                      rc == NGX_OK ? PQresultErrorMessage(res)
                                   : "no database connection");
        rt->round = NGX_COMMERCE_RETENTION_ROUNDS;
    }

    if (ngx_commerce_retention_next(rt) != NGX_OK) {
        ngx_commerce_job_done(&rt->job, 0);
    }
}
