
/*
 * The binding of a hiredis async context to nginx's event loop, and the
 * client's gauges.
 *
 * - hiredis reads at most 16 KB per redisAsyncHandleRead(), and nginx's
 *   epoll is edge-triggered: the read handler calls it again while the
 *   socket holds bytes (FIONREAD) or an end of file is pending
 *   (EPOLLRDHUP), else replies already in the socket would wait for the
 *   next packet (nchan's large-reply stall).  Past 1 MB in one go it
 *   posts itself, so that other connections are served meanwhile.
 * - redisAsyncHandleRead/Write() may free the context (end of file, an
 *   error): the handlers then look at the adapter (a->ac, a->gen) only,
 *   never at the context or the nginx connection, both gone.
 * - The cleanup hook closes the nginx connection (its events deleted, its
 *   posted events dropped, the descriptor closed) and clears the
 *   context's descriptor, so that hiredis does not close a number that
 *   nginx may already have given to another socket.
 */


#include "ngx_commerce_redis_conn.h"

#include <sys/ioctl.h>
#include <hiredis/sds.h>


#define NGX_COMMERCE_REDIS_READS  64          /* x 16 KB, then yield */


static void ngx_commerce_redis_read_handler(ngx_event_t *rev);
static void ngx_commerce_redis_write_handler(ngx_event_t *wev);
static void ngx_commerce_redis_add_read(void *privdata);
static void ngx_commerce_redis_del_read(void *privdata);
static void ngx_commerce_redis_add_write(void *privdata);
static void ngx_commerce_redis_del_write(void *privdata);
static void ngx_commerce_redis_cleanup(void *privdata);
static ngx_int_t ngx_commerce_redis_flags(void);


/*
 * On success the context belongs to nginx's loop until it is freed;
 * on failure nothing is attached and the caller frees the context.
 */

ngx_int_t
ngx_commerce_redis_attach(ngx_commerce_redis_adapter_t *a,
    redisAsyncContext *ac, ngx_log_t *log)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(ac->c.fd, log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = a;
    c->read->handler = ngx_commerce_redis_read_handler;
    c->write->handler = ngx_commerce_redis_write_handler;
    c->read->log = log;
    c->write->log = log;

    /* writable: connected (or failed); readable: replies, or the end */
    if (ngx_add_event(c->read, NGX_READ_EVENT, ngx_commerce_redis_flags())
        != NGX_OK
        || ngx_add_event(c->write, NGX_WRITE_EVENT,
                         ngx_commerce_redis_flags())
           != NGX_OK)
    {
        ngx_close_connection(c);
        ac->c.fd = -1;
        return NGX_ERROR;
    }

    a->c = c;
    a->ac = ac;

    ac->ev.data = a;
    ac->ev.addRead = ngx_commerce_redis_add_read;
    ac->ev.delRead = ngx_commerce_redis_del_read;
    ac->ev.addWrite = ngx_commerce_redis_add_write;
    ac->ev.delWrite = ngx_commerce_redis_del_write;
    ac->ev.cleanup = ngx_commerce_redis_cleanup;

    return NGX_OK;
}


static void
ngx_commerce_redis_read_handler(ngx_event_t *rev)
{
    int                            fd, avail;
    ngx_uint_t                     i, gen, eof;
    ngx_connection_t              *c;
    ngx_commerce_redis_adapter_t  *a;

    c = rev->data;
    a = c->data;
    gen = a->gen;
    fd = c->fd;
    eof = 0;

    if (c->close) {
        /* worker_shutdown_timeout: nginx closes what is left */
        redisAsyncFree(a->ac);
        return;
    }

    for (i = 0; i < NGX_COMMERCE_REDIS_READS; i++) {
        redisAsyncHandleRead(a->ac);

        /* freed inside (end of file, an error): c and the context are gone */
        if (a->gen != gen || a->ac == NULL) {
            return;
        }

        if (ioctl(fd, FIONREAD, &avail) == -1) {
            return;
        }

        if (avail > 0) {
            continue;
        }

        /* the peer's FIN came with the data: read it now, no edge follows */
        if (rev->pending_eof && !eof) {
            eof = 1;
            continue;
        }

        return;
    }

    ngx_post_event(rev, &ngx_posted_events);
}


static void
ngx_commerce_redis_write_handler(ngx_event_t *wev)
{
    size_t                         before;
    ngx_uint_t                     gen;
    ngx_connection_t              *c;
    ngx_commerce_redis_adapter_t  *a;

    c = wev->data;
    a = c->data;
    gen = a->gen;

    for ( ;; ) {
        before = sdslen(a->ac->c.obuf);

        redisAsyncHandleWrite(a->ac);

        if (a->gen != gen || a->ac == NULL) {
            return;
        }

        /* all written, or the socket is full (its next edge resumes) */
        if (sdslen(a->ac->c.obuf) == 0 || sdslen(a->ac->c.obuf) >= before) {
            return;
        }
    }
}


/* the hooks hiredis calls; it may call each again at any time */

static void
ngx_commerce_redis_add_read(void *privdata)
{
    ngx_commerce_redis_adapter_t  *a = privdata;

    if (a->c != NULL && !a->c->read->active) {
        (void) ngx_add_event(a->c->read, NGX_READ_EVENT,
                             ngx_commerce_redis_flags());
    }
}


static void
ngx_commerce_redis_del_read(void *privdata)
{
    ngx_commerce_redis_adapter_t  *a = privdata;

    if (a->c != NULL && a->c->read->active) {
        (void) ngx_del_event(a->c->read, NGX_READ_EVENT,
                             ngx_commerce_redis_flags());
    }
}


static void
ngx_commerce_redis_add_write(void *privdata)
{
    ngx_commerce_redis_adapter_t  *a = privdata;

    if (a->c != NULL && !a->c->write->active) {
        (void) ngx_add_event(a->c->write, NGX_WRITE_EVENT,
                             ngx_commerce_redis_flags());
    }
}


static void
ngx_commerce_redis_del_write(void *privdata)
{
    ngx_commerce_redis_adapter_t  *a = privdata;

    if (a->c != NULL && a->c->write->active) {
        (void) ngx_del_event(a->c->write, NGX_WRITE_EVENT,
                             ngx_commerce_redis_flags());
    }
}


/*
 * hiredis frees the context: after its pending callbacks ran (with NULL),
 * before its own close() of the descriptor.  nginx closes it instead.
 */

static void
ngx_commerce_redis_cleanup(void *privdata)
{
    ngx_commerce_redis_adapter_t  *a = privdata;

    redisAsyncContext  *ac;

    ac = a->ac;

    if (a->gone != NULL) {
        a->gone(a->data, ac);
    }

    if (a->c != NULL) {
        ngx_close_connection(a->c);
        a->c = NULL;
    }

    if (ac != NULL) {
        ac->c.fd = -1;
        ac->ev.data = NULL;
    }

    a->ac = NULL;
    a->gen++;
}


/* the worker's connections by state, into the shared zone */

void
ngx_commerce_redis_gauges(ngx_commerce_redis_t *client)
{
    ngx_uint_t  i, n[3];

    if (client->exiting) {
        return;
    }

    n[0] = n[1] = n[2] = 0;

    for (i = 0; i < client->nconns; i++) {
        n[client->conns[i].state]++;
    }

    ngx_commerce_shm_redis_state(n[NGX_COMMERCE_REDIS_UP],
                                     n[NGX_COMMERCE_REDIS_CONNECTING],
                                     n[NGX_COMMERCE_REDIS_DOWN],
                                     client->nwaiting);
}


/* latency needs better than nginx's cached millisecond clock */

uint64_t
ngx_commerce_redis_now_us(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}


/* why a context goes: hiredis' error, or the reason we closed it */

const char *
ngx_commerce_redis_errstr(const redisAsyncContext *ac,
    ngx_commerce_redis_conn_t *conn)
{
    if (ac != NULL && ac->err && ac->errstr != NULL && ac->errstr[0]) {
        return ac->errstr;
    }

    return conn->why ? conn->why : "connection closed";
}


/*
 * Edge-triggered where nginx's loop is (epoll, kqueue).  Deleting one
 * event modifies the other with these flags: they must be the same.
 */

static ngx_int_t
ngx_commerce_redis_flags(void)
{
    return (ngx_event_flags & NGX_USE_CLEAR_EVENT) ? NGX_CLEAR_EVENT
                                                   : NGX_LEVEL_EVENT;
}
