
/*
 * A per-worker pool of non-blocking libpq connections driven by nginx
 * events.
 *
 * Each connection is a small state machine: DOWN (a reconnect timer may be
 * pending) -> CONNECTING (PQconnectPoll) -> PREPARING (PQsendPrepare of
 * every statement, one after the other) -> IDLE <-> BUSY.  The libpq socket
 * is wrapped in an nginx connection whose events are registered
 * level-triggered: libpq does its own reads and writes, so nginx's
 * edge-triggered readiness bookkeeping would be wrong about it (a missed
 * edge after CONNECTION_MADE, replies already buffered).  The write event is
 * enabled only while libpq has output pending, so level triggering costs
 * nothing when idle.
 *
 * One timer per connection bounds whatever the connection is doing: the
 * connect deadline, the reconnect backoff, and a guard over a running query
 * (statement_timeout + 1s, non-cancelable so an exiting worker waits for
 * its in-flight queries).
 */


#include "ngx_commerce_pg_conn.h"

#include <arpa/inet.h>


#define NGX_COMMERCE_PG_BACKOFF_MIN    100
#define NGX_COMMERCE_PG_BACKOFF_MAX    5000
#define NGX_COMMERCE_PG_GUARD_EXTRA    1000
#define NGX_COMMERCE_PG_WRITES_BEHIND  2


static void ngx_commerce_pg_connect(ngx_commerce_pg_conn_t *conn);
static ngx_int_t ngx_commerce_pg_wrap(ngx_commerce_pg_conn_t *conn);
static void ngx_commerce_pg_connect_poll(ngx_commerce_pg_conn_t *conn);
static void ngx_commerce_pg_prepare_next(ngx_commerce_pg_conn_t *conn);
static ngx_int_t ngx_commerce_pg_place(ngx_commerce_pg_pool_t *pool,
    ngx_commerce_pg_query_t *q);
static ngx_int_t ngx_commerce_pg_send(ngx_commerce_pg_conn_t *conn,
    ngx_commerce_pg_query_t *q);
static void ngx_commerce_pg_read_handler(ngx_event_t *ev);
static void ngx_commerce_pg_write_handler(ngx_event_t *ev);
static void ngx_commerce_pg_timer_handler(ngx_event_t *ev);
static ngx_uint_t ngx_commerce_pg_resendable(ngx_commerce_stmt_t *stmt,
    ngx_uint_t gave_up);
static ngx_commerce_pg_conn_t *ngx_commerce_pg_reads_behind(
    ngx_commerce_pg_pool_t *pool);
static ngx_uint_t ngx_commerce_pg_only_reads(ngx_commerce_pg_conn_t *conn);
static ngx_uint_t ngx_commerce_pg_room(ngx_commerce_pg_pool_t *pool,
    ngx_commerce_pg_query_t *q);
static void ngx_commerce_pg_wait_handler(ngx_event_t *ev);
static void ngx_commerce_pg_collect(ngx_commerce_pg_conn_t *conn);
static void ngx_commerce_pg_prepared(ngx_commerce_pg_conn_t *conn);
static void ngx_commerce_pg_complete(ngx_commerce_pg_conn_t *conn);
static void ngx_commerce_pg_release(ngx_commerce_pg_conn_t *conn);
static void ngx_commerce_pg_broken(ngx_commerce_pg_conn_t *conn,
    const char *why);
static void ngx_commerce_pg_close(ngx_commerce_pg_conn_t *conn);
static void ngx_commerce_pg_fail_waiting(ngx_commerce_pg_pool_t *pool,
    ngx_int_t rc);
static void ngx_commerce_pg_unqueue(ngx_commerce_pg_pool_t *pool,
    ngx_commerce_pg_query_t *q);


ngx_int_t
ngx_commerce_pg_init_worker(ngx_cycle_t *cycle, ngx_commerce_main_conf_t *mcf)
{
    ngx_uint_t               i;
    ngx_commerce_pg_conn_t  *conn;
    ngx_commerce_pg_pool_t  *pool;

    pool = ngx_pcalloc(cycle->pool, sizeof(ngx_commerce_pg_pool_t));
    if (pool == NULL) {
        return NGX_ERROR;
    }

    pool->conns = ngx_pcalloc(cycle->pool,
                              mcf->pool_size * sizeof(ngx_commerce_pg_conn_t));
    if (pool->conns == NULL) {
        return NGX_ERROR;
    }

    pool->mcf = mcf;
    pool->log = cycle->log;
    pool->nconns = mcf->pool_size;
    ngx_queue_init(&pool->idle);
    ngx_queue_init(&pool->waiting);

    mcf->pool = pool;

    /* the pool's gauges in the shared zone, for the metrics location */
    pool->gauges.handler = ngx_commerce_pg_conn_gauges;
    pool->gauges.data = pool;
    pool->gauges.log = cycle->log;
    pool->gauges.cancelable = 1;
    ngx_add_timer(&pool->gauges, 1000);

    if (mcf->listen_channel != NULL && ngx_worker == 0
        && mcf->listening != NULL)
    {
        /* the listener is this process now, not listening yet */
        mcf->listening(NGX_COMMERCE_LISTEN_START);
    }

    for (i = 0; i < pool->nconns; i++) {
        conn = &pool->conns[i];
        conn->pool = pool;
        conn->index = i;
        conn->backoff = NGX_COMMERCE_PG_BACKOFF_MIN;
        conn->timer.handler = ngx_commerce_pg_timer_handler;
        conn->timer.data = conn;
        conn->timer.log = cycle->log;

        ngx_commerce_pg_connect(conn);
    }

    return NGX_OK;
}


void
ngx_commerce_pg_exit_worker(ngx_commerce_main_conf_t *mcf)
{
    ngx_uint_t               i;
    ngx_commerce_pg_pool_t  *pool;

    pool = mcf->pool;
    if (pool == NULL) {
        return;
    }

    if (pool->gauges.timer_set) {
        ngx_del_timer(&pool->gauges);
    }

    for (i = 0; i < pool->nconns; i++) {
        ngx_commerce_pg_close(&pool->conns[i]);
    }

    ngx_commerce_shm_db(0, 0, 0, 0);

    mcf->pool = NULL;
}


ngx_int_t
ngx_commerce_pg_submit(ngx_commerce_pg_pool_t *pool,
    ngx_commerce_pg_query_t *q)
{
    q->resent = 0;

    return ngx_commerce_pg_place(pool, q);
}


/* send q on a connection, or queue it; also for a query sent again */

static ngx_int_t
ngx_commerce_pg_place(ngx_commerce_pg_pool_t *pool,
    ngx_commerce_pg_query_t *q)
{
    ngx_uint_t               i;
    ngx_queue_t             *qu;
    ngx_commerce_pg_conn_t  *conn, *c;

    q->conn = NULL;
    q->queued = 0;

    if (pool == NULL) {
        return NGX_DECLINED;
    }

again:

    /*
     * A read goes behind a connection that is running only reads, while it
     * has room, rather than waking another backend: reads are short and
     * take no locks, and on a few cores fewer busy backends, and one socket
     * read for several results, serve more of them.  Writes take an idle
     * connection first.  Nothing goes behind a busy connection while others
     * wait in the queue: it would pass them (a read that waits for a
     * connection without a write could wait for ever behind new writes).
     */

    if (pool->mcf->pipeline_depth > 1 && pool->nwaiting == 0
        && (q->stmt->flags & NGX_COMMERCE_STMT_READ))
    {
        conn = ngx_commerce_pg_reads_behind(pool);

        if (conn != NULL) {
            goto send;
        }
    }

    if (!ngx_queue_empty(&pool->idle)) {
        qu = ngx_queue_head(&pool->idle);
        conn = ngx_queue_data(qu, ngx_commerce_pg_conn_t, queue);

        goto send;
    }

    if (pool->nup == 0) {
        return NGX_DECLINED;
    }

    /*
     * Every connection is busy.  A write goes behind the least loaded one
     * rather than wait: the backend then goes from one to the next without
     * a round trip in between.  A read does not go behind a write (it may
     * wait for a row lock, and the read with it): it waits in the queue.
     */

    if (pool->nwaiting == 0 && !(q->stmt->flags & NGX_COMMERCE_STMT_READ)) {
        conn = NULL;

        for (i = 0; i < pool->nconns; i++) {
            c = &pool->conns[i];

            if (c->state == NGX_COMMERCE_PG_BUSY
                && c->nflight < ngx_commerce_pg_room(pool, q)
                && (conn == NULL || c->nflight < conn->nflight))
            {
                conn = c;
            }
        }

        if (conn != NULL) {
            goto send;
        }
    }

    if (pool->nwaiting >= pool->mcf->queue_length) {
        return NGX_BUSY;
    }

    ngx_queue_insert_tail(&pool->waiting, &q->queue);
    pool->nwaiting++;
    q->queued = 1;
    q->queued_at = ngx_current_msec;

    ngx_commerce_shm_db_placed(pool->nwaiting);

    ngx_memzero(&q->wait, sizeof(ngx_event_t));
    q->wait.handler = ngx_commerce_pg_wait_handler;
    q->wait.data = q;
    q->wait.log = q->log;
    ngx_add_timer(&q->wait, pool->mcf->queue_timeout);

    return NGX_OK;

send:

    if (ngx_commerce_pg_send(conn, q) == NGX_OK) {
        ngx_commerce_shm_db_placed(0);
        return NGX_OK;
    }

    /*
     * The connection broke as q was written to it (the server had closed
     * it, not noticed yet): it is closed now and not taken again.  A query
     * safe to send twice goes to another connection.
     */
    if (ngx_commerce_pg_resendable(q->stmt, 0)) {
        goto again;
    }

    return NGX_ERROR;
}


/* the least loaded busy connection with room whose queries are all reads */

static ngx_commerce_pg_conn_t *
ngx_commerce_pg_reads_behind(ngx_commerce_pg_pool_t *pool)
{
    ngx_uint_t               i;
    ngx_commerce_pg_conn_t  *c, *conn;

    conn = NULL;

    for (i = 0; i < pool->nconns; i++) {
        c = &pool->conns[i];

        if (c->state == NGX_COMMERCE_PG_BUSY
            && c->nflight < pool->mcf->pipeline_depth
            && (conn == NULL || c->nflight < conn->nflight)
            && ngx_commerce_pg_only_reads(c))
        {
            conn = c;
        }
    }

    return conn;
}


/*
 * How many queries a connection may have in flight for q to go behind
 * them: the pipeline depth for a read, at most NGX_COMMERCE_PG_WRITES_BEHIND
 * for a write (one behind the other keeps the backend busy; more only
 * lengthen the wait behind a write that waits for a lock).
 */

static ngx_uint_t
ngx_commerce_pg_room(ngx_commerce_pg_pool_t *pool, ngx_commerce_pg_query_t *q)
{
    if ((q->stmt->flags & NGX_COMMERCE_STMT_READ)) {
        return pool->mcf->pipeline_depth;
    }

    return ngx_min(pool->mcf->pipeline_depth, NGX_COMMERCE_PG_WRITES_BEHIND);
}


static ngx_uint_t
ngx_commerce_pg_only_reads(ngx_commerce_pg_conn_t *conn)
{
    ngx_uint_t                i;
    ngx_commerce_pg_query_t  *f;

    for (i = 0; i < conn->nflight; i++) {
        f = conn->flight[(conn->fhead + i) % NGX_COMMERCE_PG_DEPTH_MAX];

        /* a cancelled query (NULL) may have been anything */
        if (f == NULL || !(f->stmt->flags & NGX_COMMERCE_STMT_READ)) {
            return 0;
        }
    }

    return 1;
}


void
ngx_commerce_pg_cancel(ngx_commerce_pg_query_t *q)
{
    ngx_uint_t                 i;
    ngx_commerce_pg_conn_t    *conn;
    ngx_commerce_pg_pool_t    *pool;
    ngx_commerce_pg_query_t  **slot;

    pool = ngx_commerce_conf_main()->pool;

    if (q->queued) {
        ngx_commerce_pg_unqueue(pool, q);
    }

    if (q->conn != NULL) {
        /* the result is read and discarded; the connection stays clean */
        conn = q->conn;

        for (i = 0; i < conn->nflight; i++) {
            slot = &conn->flight[(conn->fhead + i) % NGX_COMMERCE_PG_DEPTH_MAX];

            if (*slot == q) {
                *slot = NULL;
            }
        }

        q->conn = NULL;
    }
}


static void
ngx_commerce_pg_wait_handler(ngx_event_t *ev)
{
    ngx_commerce_pg_query_t  *q;
    ngx_commerce_pg_pool_t   *pool;

    q = ev->data;
    pool = ngx_commerce_conf_main()->pool;

    ngx_commerce_pg_unqueue(pool, q);

    q->handler(q, NGX_BUSY, NULL);
}


/*
 * Take q out of the pool's queue, however it leaves (sent, timed out,
 * failed, cancelled): the time it waited goes into the histogram.
 */

static void
ngx_commerce_pg_unqueue(ngx_commerce_pg_pool_t *pool,
    ngx_commerce_pg_query_t *q)
{
    ngx_queue_remove(&q->queue);
    q->queued = 0;

    if (pool != NULL) {
        pool->nwaiting--;
    }

    if (q->wait.timer_set) {
        ngx_del_timer(&q->wait);
    }

    ngx_commerce_shm_db_waited(ngx_current_msec - q->queued_at);
}


static void
ngx_commerce_pg_connect(ngx_commerce_pg_conn_t *conn)
{
    ngx_commerce_main_conf_t  *mcf;

    mcf = conn->pool->mcf;

    conn->pg = PQconnectStartParams((const char *const *) mcf->keywords,
                                    (const char *const *) mcf->values, 0);

    if (conn->pg == NULL) {
        ngx_commerce_pg_broken(conn, "out of memory");
        return;
    }

    if (PQstatus(conn->pg) == CONNECTION_BAD
        || PQsetnonblocking(conn->pg, 1) != 0)
    {
        ngx_commerce_pg_broken(conn, "connect failed");
        return;
    }

    ngx_commerce_pg_conn_set_state(conn, NGX_COMMERCE_PG_CONNECTING);

    if (ngx_commerce_pg_wrap(conn) != NGX_OK) {
        ngx_commerce_pg_broken(conn, "cannot register socket");
        return;
    }

    conn->timer.cancelable = 1;
    ngx_add_timer(&conn->timer, mcf->connect_timeout);

    ngx_commerce_pg_connect_poll(conn);
}


static ngx_int_t
ngx_commerce_pg_wrap(ngx_commerce_pg_conn_t *conn)
{
    int                fd;
    ngx_connection_t  *c;

    fd = PQsocket(conn->pg);
    if (fd < 0) {
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, conn->pool->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = conn;
    c->read->handler = ngx_commerce_pg_read_handler;
    c->write->handler = ngx_commerce_pg_write_handler;
    c->read->log = conn->pool->log;
    c->write->log = conn->pool->log;

    conn->c = c;

    /* level-triggered: see the comment at the top of the file */
    if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_commerce_pg_conn_release(c);
        conn->c = NULL;
        return NGX_ERROR;
    }

    return NGX_OK;
}




static void
ngx_commerce_pg_connect_poll(ngx_commerce_pg_conn_t *conn)
{
    PostgresPollingStatusType  st;

    st = PQconnectPoll(conn->pg);

    if (st == PGRES_POLLING_FAILED) {
        ngx_commerce_pg_broken(conn, "connect failed");
        return;
    }

    if (PQsocket(conn->pg) != conn->c->fd) {
        /* libpq moved to a new socket (next host, or SSL fallback) */
        ngx_commerce_pg_conn_release(conn->c);
        conn->c = NULL;

        if (ngx_commerce_pg_wrap(conn) != NGX_OK) {
            ngx_commerce_pg_broken(conn, "cannot register socket");
            return;
        }
    }

    switch (st) {

    case PGRES_POLLING_READING:
        (void) ngx_commerce_pg_conn_want_write(conn, 0);
        return;

    case PGRES_POLLING_WRITING:
        (void) ngx_commerce_pg_conn_want_write(conn, 1);
        return;

    case PGRES_POLLING_OK:
        break;

    default:
        ngx_commerce_pg_broken(conn, "connect failed");
        return;
    }

    (void) ngx_commerce_pg_conn_want_write(conn, 0);

    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->pool->log, 0,
                   "commerce: pg connection #%ui connected", conn->index);

    conn->prepared = 0;
    ngx_commerce_pg_conn_set_state(conn, NGX_COMMERCE_PG_PREPARING);
    ngx_commerce_pg_prepare_next(conn);
}






static void
ngx_commerce_pg_prepare_next(ngx_commerce_pg_conn_t *conn)
{
    ngx_commerce_stmt_t       **stmts;
    ngx_commerce_main_conf_t   *mcf;

    mcf = conn->pool->mcf;

    if (conn->prepared == mcf->statements.nelts
        && ngx_commerce_pg_conn_listens(conn))
    {
        /* one more step for the listener, before pipeline mode */
        if (!PQsendQuery(conn->pg, mcf->listen_sql)
            || ngx_commerce_pg_conn_flush(conn) != NGX_OK)
        {
            ngx_commerce_pg_broken(conn, "LISTEN failed");
            return;
        }

        conn->timer.cancelable = 1;
        ngx_add_timer(&conn->timer, conn->pool->mcf->connect_timeout);
        return;
    }

    if (conn->prepared >= mcf->statements.nelts) {
        if (!PQenterPipelineMode(conn->pg)) {
            ngx_commerce_pg_broken(conn, "cannot enter pipeline mode");
            return;
        }

        conn->backoff = NGX_COMMERCE_PG_BACKOFF_MIN;
        conn->fhead = 0;
        conn->nflight = 0;
        conn->want_sync = 0;
        ngx_commerce_pg_conn_set_state(conn, NGX_COMMERCE_PG_IDLE);
        ngx_commerce_pg_release(conn);
        return;
    }

    stmts = mcf->statements.elts;

    if (!PQsendPrepare(conn->pg, stmts[conn->prepared]->name,
                       stmts[conn->prepared]->sql,
                       stmts[conn->prepared]->nparams, NULL)
        || ngx_commerce_pg_conn_flush(conn) != NGX_OK)
    {
        ngx_commerce_pg_broken(conn, "prepare failed");
        return;
    }

    conn->timer.cancelable = 1;
    ngx_add_timer(&conn->timer, conn->pool->mcf->connect_timeout);
}


/*
 * Each query is followed by its own Sync, so it is its own implicit
 * transaction even when several are in flight on one connection: an error
 * aborts that query only.
 */

static ngx_int_t
ngx_commerce_pg_send(ngx_commerce_pg_conn_t *conn, ngx_commerce_pg_query_t *q)
{
    ngx_commerce_stmt_t  *st;

    if (conn->in_idle) {
        ngx_queue_remove(&conn->queue);
        conn->in_idle = 0;
    }

    conn->c->idle = 0;

    st = q->stmt;

    if (!PQsendQueryPrepared(conn->pg, st->name, q->nparams, q->params,
                             NULL, NULL, 0)
        || !PQpipelineSync(conn->pg)
        || ngx_commerce_pg_conn_flush(conn) != NGX_OK)
    {
        ngx_commerce_pg_broken(conn, "send failed");
        return NGX_ERROR;
    }

    conn->flight[(conn->fhead + conn->nflight) % NGX_COMMERCE_PG_DEPTH_MAX]
        = q;
    conn->nflight++;
    q->conn = conn;
    q->backend_pid = PQbackendPID(conn->pg);

    if (conn->state != NGX_COMMERCE_PG_BUSY) {
        ngx_commerce_pg_conn_set_state(conn, NGX_COMMERCE_PG_BUSY);

        /* non-cancelable: an exiting worker waits for its in-flight queries */
        if (conn->timer.timer_set) {
            ngx_del_timer(&conn->timer);
        }
        conn->timer.cancelable = 0;
        ngx_add_timer(&conn->timer, conn->pool->mcf->statement_timeout
                                    + NGX_COMMERCE_PG_GUARD_EXTRA);
    }

    return NGX_OK;
}


static void
ngx_commerce_pg_read_handler(ngx_event_t *ev)
{
    ngx_connection_t        *c;
    ngx_commerce_pg_conn_t  *conn;

    c = ev->data;
    conn = c->data;

    if (c->close) {
        /* ngx_close_idle_connections() at worker shutdown */
        ngx_commerce_pg_close(conn);
        ngx_commerce_pg_conn_set_state(conn, NGX_COMMERCE_PG_DOWN);
        return;
    }

    switch (conn->state) {

    case NGX_COMMERCE_PG_CONNECTING:
        ngx_commerce_pg_connect_poll(conn);
        return;

    case NGX_COMMERCE_PG_PREPARING:
    case NGX_COMMERCE_PG_BUSY:
        if (!PQconsumeInput(conn->pg)) {
            ngx_commerce_pg_broken(conn, "read failed");
            return;
        }

        ngx_commerce_pg_collect(conn);
        ngx_commerce_pg_conn_notifies(conn);
        return;

    case NGX_COMMERCE_PG_IDLE:
        /* the server closing an idle connection (restart, idle timeout) */
        if (!PQconsumeInput(conn->pg) || PQstatus(conn->pg) == CONNECTION_BAD)
        {
            ngx_commerce_pg_broken(conn, "idle connection closed");
            return;
        }

        ngx_commerce_pg_conn_notifies(conn);
        return;

    default:
        return;
    }
}


static void
ngx_commerce_pg_write_handler(ngx_event_t *ev)
{
    ngx_connection_t        *c;
    ngx_commerce_pg_conn_t  *conn;

    c = ev->data;
    conn = c->data;

    if (conn->state == NGX_COMMERCE_PG_CONNECTING) {
        ngx_commerce_pg_connect_poll(conn);
        return;
    }

    if (conn->pg != NULL && ngx_commerce_pg_conn_flush(conn) != NGX_OK) {
        ngx_commerce_pg_broken(conn, "write failed");
    }
}


static void
ngx_commerce_pg_timer_handler(ngx_event_t *ev)
{
    ngx_commerce_pg_conn_t  *conn;

    conn = ev->data;

    switch (conn->state) {

    case NGX_COMMERCE_PG_DOWN:
        if (ngx_exiting || ngx_terminate || ngx_quit) {
            return;
        }

        ngx_commerce_pg_connect(conn);
        return;

    case NGX_COMMERCE_PG_CONNECTING:
    case NGX_COMMERCE_PG_PREPARING:
        ngx_commerce_pg_broken(conn, "connect timed out");
        return;

    case NGX_COMMERCE_PG_BUSY:
        /* we give up on it: its backend may still run what it has */
        conn->gave_up = 1;
        ngx_commerce_pg_broken(conn, "query timed out");
        return;

    default:
        return;
    }
}


static void
ngx_commerce_pg_collect(ngx_commerce_pg_conn_t *conn)
{
    PGresult  *res;

    if (conn->state == NGX_COMMERCE_PG_PREPARING) {
        while (!PQisBusy(conn->pg)) {
            res = PQgetResult(conn->pg);

            if (res == NULL) {
                ngx_commerce_pg_prepared(conn);
                return;
            }

            if (conn->result == NULL) {
                conn->result = res;

            } else {
                PQclear(res);
            }
        }

        goto flush;
    }

    /*
     * Pipeline mode: for each query in flight, its result(s), a NULL, then
     * PGRES_PIPELINE_SYNC for its Sync.  A handler called from here may
     * submit more queries or break the connection: re-check conn->pg.
     */

    while (conn->pg != NULL && conn->nflight && !PQisBusy(conn->pg)) {
        res = PQgetResult(conn->pg);

        if (!conn->want_sync) {
            if (res == NULL) {
                conn->want_sync = 1;

            } else if (conn->result == NULL) {
                conn->result = res;

            } else {
                PQclear(res);
            }

            continue;
        }

        if (res == NULL) {
            break;
        }

        if (PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
            PQclear(res);
            ngx_commerce_pg_broken(conn, "unexpected result in pipeline");
            return;
        }

        PQclear(res);
        conn->want_sync = 0;

        ngx_commerce_pg_complete(conn);
    }

flush:

    if (conn->pg != NULL && ngx_commerce_pg_conn_flush(conn) != NGX_OK) {
        ngx_commerce_pg_broken(conn, "write failed");
    }
}


static void
ngx_commerce_pg_prepared(ngx_commerce_pg_conn_t *conn)
{
    PGresult  *res;

    res = conn->result;
    conn->result = NULL;

    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        ngx_log_error(NGX_LOG_ERR, conn->pool->log, 0,
                      "commerce: preparing \"%s\" failed: %s "
                      "(are the sql/ migrations applied?)",
                      conn->prepared < conn->pool->mcf->statements.nelts
                      ? ((ngx_commerce_stmt_t **)
                         conn->pool->mcf->statements.elts)[conn->prepared]->name
                      : "LISTEN",
                      res ? PQresultErrorMessage(res) : "no result");
        if (res) {
            PQclear(res);
        }
        ngx_commerce_pg_broken(conn, "prepare failed");
        return;
    }

    PQclear(res);
    conn->prepared++;
    ngx_commerce_pg_prepare_next(conn);
}


/* the oldest query in flight is complete: hand its result to its owner */

static void
ngx_commerce_pg_complete(ngx_commerce_pg_conn_t *conn)
{
    PGresult                 *res;
    ngx_commerce_pg_query_t  *q;

    res = conn->result;
    conn->result = NULL;

    q = conn->flight[conn->fhead];
    conn->fhead = (conn->fhead + 1) % NGX_COMMERCE_PG_DEPTH_MAX;
    conn->nflight--;

    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    if (conn->nflight) {
        /* the guard now covers the next query in flight */
        conn->timer.cancelable = 0;
        ngx_add_timer(&conn->timer, conn->pool->mcf->statement_timeout
                                    + NGX_COMMERCE_PG_GUARD_EXTRA);
    } else {
        ngx_commerce_pg_conn_set_state(conn, NGX_COMMERCE_PG_IDLE);
    }

    if (q != NULL && res != NULL
        && ngx_commerce_pg_conn_retryable(res)
        && q->retries < NGX_COMMERCE_PG_RETRIES_MAX)
    {
        /* serialization failure or deadlock: the transaction rolled back */
        q->retries++;

        ngx_log_error(NGX_LOG_INFO, q->log, 0,
                      "commerce: retrying \"%s\" (%ui) after %s",
                      q->stmt->name, q->retries,
                      PQresultErrorField(res, PG_DIAG_SQLSTATE));
        PQclear(res);

        if (ngx_commerce_pg_send(conn, q) != NGX_OK) {
            q->conn = NULL;
            q->handler(q, NGX_ERROR, NULL);
        }

        return;
    }

    ngx_commerce_pg_release(conn);

    if (q != NULL) {
        q->conn = NULL;
        q->handler(q, res ? NGX_OK : NGX_ERROR, res);
    }

    if (res) {
        PQclear(res);
    }
}


/*
 * A connection has room: hand it to waiters (up to the pipeline depth), or
 * park it idle when nothing is in flight.
 */

static void
ngx_commerce_pg_release(ngx_commerce_pg_conn_t *conn)
{
    ngx_queue_t              *qu;
    ngx_commerce_pg_pool_t   *pool;
    ngx_commerce_pg_query_t  *q;

    pool = conn->pool;

    while (!ngx_queue_empty(&pool->waiting)
           && conn->pg != NULL
           && conn->nflight < pool->mcf->pipeline_depth)
    {
        qu = ngx_queue_head(&pool->waiting);
        q = ngx_queue_data(qu, ngx_commerce_pg_query_t, queue);

        if (conn->nflight >= ngx_commerce_pg_room(pool, q)) {
            break;
        }

        /* in order; a read never goes behind a write */
        if (conn->nflight && (q->stmt->flags & NGX_COMMERCE_STMT_READ)
            && !ngx_commerce_pg_only_reads(conn))
        {
            break;
        }

        ngx_commerce_pg_unqueue(pool, q);

        if (ngx_commerce_pg_send(conn, q) != NGX_OK) {
            /* the connection broke: fail this waiter, leave the rest */
            q->handler(q, NGX_ERROR, NULL);
            return;
        }
    }

    if (conn->nflight || conn->pg == NULL || conn->in_idle) {
        return;
    }

    /*
     * Not c->idle: a worker that is shutting down must keep serving the
     * requests it has already accepted.  Idle connections keep no timer,
     * so they do not hold the worker; exit_process closes them.
     */

    ngx_queue_insert_tail(&pool->idle, &conn->queue);
    conn->in_idle = 1;
}


static void
ngx_commerce_pg_broken(ngx_commerce_pg_conn_t *conn, const char *why)
{
    ngx_uint_t                i, n, level, was_up, gave_up;
    ngx_commerce_pg_pool_t   *pool;
    ngx_commerce_pg_query_t  *q, *failed[NGX_COMMERCE_PG_DEPTH_MAX];

    pool = conn->pool;

    gave_up = conn->gave_up;
    conn->gave_up = 0;

    /*
     * A connection that worked until now (the server closed it: a restart,
     * idle_session_timeout, pg_terminate_backend) is replaced at once, so
     * requests queue behind the new connect instead of failing; the
     * backoff is for connects that fail.
     */
    was_up = (conn->state == NGX_COMMERCE_PG_IDLE
              || conn->state == NGX_COMMERCE_PG_BUSY)
             && conn->backoff == NGX_COMMERCE_PG_BACKOFF_MIN;

    /* a server closing an idle connection is routine, the rest is not */
    level = (conn->state == NGX_COMMERCE_PG_IDLE) ? NGX_LOG_INFO
                                                  : NGX_LOG_ERR;

    ngx_log_error(level, pool->log, 0,
                  "commerce: pg connection #%ui: %s: %s; %ui in flight; "
                  "reconnecting in %Mms",
                  conn->index, why, ngx_commerce_pg_conn_error(conn),
                  conn->nflight, was_up ? 0 : conn->backoff);

    ngx_commerce_shm_db_error();

    n = 0;
    for (i = 0; i < conn->nflight; i++) {
        q = conn->flight[(conn->fhead + i) % NGX_COMMERCE_PG_DEPTH_MAX];
        if (q != NULL) {
            failed[n++] = q;
        }
    }

    conn->nflight = 0;
    conn->fhead = 0;
    conn->want_sync = 0;

    ngx_commerce_pg_close(conn);
    ngx_commerce_pg_conn_set_state(conn, NGX_COMMERCE_PG_DOWN);

    if (!(ngx_exiting || ngx_terminate || ngx_quit) && !was_up) {
        conn->timer.cancelable = 1;
        ngx_add_timer(&conn->timer, conn->backoff);

        conn->backoff *= 2;
        if (conn->backoff > NGX_COMMERCE_PG_BACKOFF_MAX) {
            conn->backoff = NGX_COMMERCE_PG_BACKOFF_MAX;
        }
    }

    if (was_up && !(ngx_exiting || ngx_terminate || ngx_quit)
        && conn->state == NGX_COMMERCE_PG_DOWN && !conn->timer.timer_set)
    {
        /* a failing connect comes back here with state != IDLE/BUSY */
        ngx_commerce_pg_connect(conn);
    }

    for (i = 0; i < n; i++) {
        q = failed[i];
        q->conn = NULL;

        /*
         * A read that met a connection the server had closed (it had not
         * noticed yet) is sent again elsewhere: reading twice is harmless.
         * So is storing or settling an Idempotency-Key answer (it changes
         * only a key still IN_FLIGHT).  Other writes are never re-sent:
         * whether they ran is unknown.
         *
         * Not a count but a time bounds this: when the server closed every
         * connection (a restart, pg_terminate_backend), the next ones the
         * query is sent to may be closed too, not noticed yet.  Each is
         * replaced by a new connect, so the query ends up on a live
         * connection or in the queue; it is sent again for up to
         * queue_timeout after its first lost connection.
         */
        if (was_up && ngx_commerce_pg_resendable(q->stmt, gave_up)
            && !(ngx_exiting || ngx_terminate || ngx_quit))
        {
            if (!q->resent) {
                q->resent = 1;
                q->lost = ngx_current_msec;
            }

            if (ngx_current_msec - q->lost < pool->mcf->queue_timeout) {
                ngx_log_error(NGX_LOG_INFO, q->log, 0,
                              "commerce: retrying \"%s\" on another "
                              "connection",
                              q->stmt->name);

                if (ngx_commerce_pg_place(pool, q) == NGX_OK) {
                    continue;
                }
            }
        }

        q->handler(q, NGX_ERROR, NULL);
    }

    if (pool->nup == 0) {
        ngx_commerce_pg_fail_waiting(pool, NGX_DECLINED);
    }
}


static void
ngx_commerce_pg_fail_waiting(ngx_commerce_pg_pool_t *pool, ngx_int_t rc)
{
    ngx_queue_t              *qu;
    ngx_commerce_pg_query_t  *q;

    while (!ngx_queue_empty(&pool->waiting)) {
        qu = ngx_queue_head(&pool->waiting);
        q = ngx_queue_data(qu, ngx_commerce_pg_query_t, queue);

        ngx_commerce_pg_unqueue(pool, q);

        q->handler(q, rc, NULL);
    }
}


static void
ngx_commerce_pg_close(ngx_commerce_pg_conn_t *conn)
{
    if (conn->in_idle) {
        ngx_queue_remove(&conn->queue);
        conn->in_idle = 0;
    }

    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    if (conn->result != NULL) {
        PQclear(conn->result);
        conn->result = NULL;
    }

    if (conn->c != NULL) {
        ngx_commerce_pg_conn_release(conn->c);
        conn->c = NULL;
    }

    if (conn->pg != NULL) {
        PQfinish(conn->pg);
        conn->pg = NULL;
    }
}










/* safe to send again after a lost connection: by the statement's flags */

static ngx_uint_t
ngx_commerce_pg_resendable(ngx_commerce_stmt_t *stmt, ngx_uint_t gave_up)
{
    if (stmt->flags & NGX_COMMERCE_STMT_READ) {
        return 1;
    }

    return !gave_up && (stmt->flags & NGX_COMMERCE_STMT_RESEND);
}
