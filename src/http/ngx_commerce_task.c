
/*
 * A request's work on an nginx thread pool (password hashing, image files):
 * what may block or burn CPU never runs on the event loop.
 *
 * While the task runs, the request is "blocked" (r->main->blocked), as
 * nginx does for aio threads, so a client that goes away cannot free what
 * the thread works on; and a timer that is not cancelable holds the
 * worker: a worker that shuts down waits for such timers, not for thread
 * tasks, and would otherwise exit with the request's connection open.
 * Back in the worker, the task's done() answers (or goes on: NGX_DONE);
 * a request terminated meanwhile is finalized without it.
 */


#include "ngx_commerce_http.h"


#define NGX_COMMERCE_TASK_HOLD  60000    /* ms, re-armed */


static void ngx_commerce_task_hold(ngx_event_t *ev);
static void ngx_commerce_task_event(ngx_event_t *ev);


/*
 * NGX_DONE: posted, done() will be called once; else what to answer: 503
 * BUSY (the pool's queue is full; busy: the message) or a status.
 */

ngx_int_t
ngx_commerce_task_post(ngx_commerce_task_t *t, ngx_thread_pool_t *tp,
    ngx_commerce_task_work_pt work, ngx_commerce_task_done_pt done,
    const char *busy)
{
    ngx_thread_task_t  *task;

    task = ngx_thread_task_alloc(t->r->pool, 0);
    if (task == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    t->done = done;

    task->ctx = t->data;
    task->handler = work;
    task->event.data = t;
    task->event.handler = ngx_commerce_task_event;

    if (ngx_thread_task_post(tp, task) != NGX_OK) {
        ngx_commerce_log(NGX_LOG_WARN, t->r, t->ctx,
                         "the thread pool's queue is full");

        return ngx_commerce_reply_error(t->r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "BUSY", busy);
    }

    t->r->main->blocked++;

    t->hold.handler = ngx_commerce_task_hold;
    t->hold.data = t;
    t->hold.log = t->r->connection->log;
    ngx_add_timer(&t->hold, NGX_COMMERCE_TASK_HOLD);

    return NGX_DONE;
}


static void
ngx_commerce_task_hold(ngx_event_t *ev)
{
    /* a task longer than the hold: hold on */
    ngx_add_timer(ev, NGX_COMMERCE_TASK_HOLD);
}


static void
ngx_commerce_task_event(ngx_event_t *ev)
{
    ngx_int_t             rc;
    ngx_connection_t     *c;
    ngx_http_request_t   *r;
    ngx_commerce_task_t  *t;

    t = ev->data;
    r = t->r;
    c = r->connection;

    r->main->blocked--;

    if (t->hold.timer_set) {
        ngx_del_timer(&t->hold);
    }

    ngx_http_set_log_request(c->log, r);

    if (t->ctx->gone || c->error) {
        /* terminated while the thread ran: now it can be closed */
        ngx_http_finalize_request(r, NGX_ERROR);
        ngx_http_run_posted_requests(c);
        return;
    }

    rc = t->done(t);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }

    ngx_http_run_posted_requests(c);
}
