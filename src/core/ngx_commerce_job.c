
/*
 * The periodic-job runner.  Domains add their jobs at configuration time
 * (ngx_commerce_job_add); worker 0 of each instance runs them on nginx
 * timers, one run of a job at a time.  Jobs whose work several instances
 * share claim it in Postgres (FOR UPDATE SKIP LOCKED or a lease column),
 * so any number of instances may run them against one database.  Timers
 * are cancelable: an exiting worker does not wait for a next run.
 */


#include "ngx_commerce.h"


static void ngx_commerce_job_handler(ngx_event_t *ev);
static void ngx_commerce_job_schedule(ngx_commerce_job_t *job,
    ngx_msec_t delay);


ngx_int_t
ngx_commerce_job_add(ngx_conf_t *cf, ngx_commerce_job_t *job)
{
    ngx_commerce_job_t        **j;
    ngx_commerce_main_conf_t   *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_commerce_module);

    if (mcf->jobs.elts == NULL
        && ngx_array_init(&mcf->jobs, cf->pool, 4,
                          sizeof(ngx_commerce_job_t *))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    j = ngx_array_push(&mcf->jobs);
    if (j == NULL) {
        return NGX_ERROR;
    }

    *j = job;

    return NGX_OK;
}


ngx_int_t
ngx_commerce_job_init_worker(ngx_cycle_t *cycle,
    ngx_commerce_main_conf_t *mcf)
{
    ngx_uint_t           i;
    ngx_commerce_job_t **jobs, *job;

    if (ngx_worker != 0) {
        return NGX_OK;
    }

    jobs = mcf->jobs.elts;

    for (i = 0; i < mcf->jobs.nelts; i++) {
        job = jobs[i];

        job->log = cycle->log;
        job->running = 0;
        ngx_memzero(&job->ev, sizeof(ngx_event_t));
        job->ev.handler = ngx_commerce_job_handler;
        job->ev.data = job;
        job->ev.log = cycle->log;

        ngx_commerce_job_schedule(job, job->first);
    }

    return NGX_OK;
}


/* the end of a run: next ms from now (0: the job's interval) */

void
ngx_commerce_job_done(ngx_commerce_job_t *job, ngx_msec_t next)
{
    job->running = 0;

    ngx_commerce_job_schedule(job, next ? next : job->interval);
}


static void
ngx_commerce_job_schedule(ngx_commerce_job_t *job, ngx_msec_t delay)
{
    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    job->ev.cancelable = 1;

    ngx_add_timer(&job->ev, delay);
}


static void
ngx_commerce_job_handler(ngx_event_t *ev)
{
    ngx_commerce_job_t  *job;

    job = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit || job->running) {
        return;
    }

    job->running = 1;

    if (job->run(job) != NGX_OK) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, job->log, 0,
                       "commerce: job \"%s\" not started", job->name);

        ngx_commerce_job_done(job, 0);
    }
}
