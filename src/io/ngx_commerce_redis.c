
/*
 * The Redis client: per worker, commerce_redis_connections hiredis async
 * contexts on nginx events.
 *
 * A connection is DOWN (a reconnect timer may be pending), CONNECTING
 * (TCP or unix connect, then the handshake: AUTH, SELECT, CLIENT SETNAME
 * and PING, pipelined, under the connect timeout) or UP.  Commands go to
 * the UP connections in turn, pipelined; while none is UP but one is
 * coming, they wait in the worker's queue (bounded, with a timeout); when
 * none is UP or coming, they are refused at once.
 *
 * The binding to nginx's events is ngx_commerce_redis_conn.c.  Here:
 *
 * - We never free a context from inside one of its callbacks: a failed
 *   handshake posts an event that frees it once hiredis has returned.
 *   Everything else that frees (timers, posted events, worker exit) runs
 *   outside hiredis.
 * - hiredis calls every pending callback exactly once, with a NULL reply
 *   when the context goes: a command's memory is ours and lives until
 *   then, whatever its caller did.  A command whose caller was answered
 *   (timeout) or left (cancel) is "gone": its reply is read and dropped.
 *   A connection is marked down at its first NULL reply, before any
 *   caller hears of it, so that what the caller sends next goes elsewhere.
 * - Timers that nobody waits for (reconnect, connect, ping) are
 *   cancelable; a command's timer is not, so a worker that shuts down
 *   answers its in-flight commands before it exits.
 */


#include "ngx_commerce_redis_conn.h"


#define NGX_COMMERCE_REDIS_BACKOFF_MIN  100
#define NGX_COMMERCE_REDIS_BACKOFF_MAX  3000


static ngx_commerce_redis_op_t *ngx_commerce_redis_op(
    ngx_commerce_redis_t *client, u_char *cmd, size_t len, size_t head,
    ngx_commerce_redis_handler_pt handler, void *data);
static ngx_commerce_redis_op_t *ngx_commerce_redis_submit(
    ngx_commerce_redis_t *client, ngx_commerce_redis_op_t *op);
static ngx_int_t ngx_commerce_redis_send(ngx_commerce_redis_conn_t *conn,
    ngx_commerce_redis_op_t *op);
static ngx_commerce_redis_conn_t *ngx_commerce_redis_pick(
    ngx_commerce_redis_t *client);
static void ngx_commerce_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_commerce_redis_op_timeout(ngx_event_t *ev);
static void ngx_commerce_redis_op_free(ngx_commerce_redis_op_t *op);
static ngx_uint_t ngx_commerce_redis_coming(ngx_commerce_redis_t *client);
static void ngx_commerce_redis_drain(ngx_commerce_redis_t *client);
static void ngx_commerce_redis_fail_waiting(ngx_commerce_redis_t *client);

static void ngx_commerce_redis_connect(ngx_commerce_redis_conn_t *conn);
static ngx_int_t ngx_commerce_redis_handshake_send(
    ngx_commerce_redis_conn_t *conn);
static void ngx_commerce_redis_handshake(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_commerce_redis_up(ngx_commerce_redis_conn_t *conn);
static void ngx_commerce_redis_down(ngx_commerce_redis_conn_t *conn,
    const char *why);
static void ngx_commerce_redis_close(ngx_commerce_redis_conn_t *conn,
    const char *why);
static void ngx_commerce_redis_close_handler(ngx_event_t *ev);
static void ngx_commerce_redis_gone(void *data,
    const redisAsyncContext *ac);
static void ngx_commerce_redis_timer_handler(ngx_event_t *ev);
static void ngx_commerce_redis_ping_handler(ngx_event_t *ev);


static ngx_str_t  ngx_commerce_redis_ping_argv[] = {
    ngx_string("PING")
};


ngx_int_t
ngx_commerce_redis_init_worker(ngx_cycle_t *cycle,
    ngx_commerce_main_conf_t *mcf)
{
    ngx_uint_t                  i;
    ngx_commerce_redis_t       *client;
    ngx_commerce_redis_conn_t  *conn;

    if (mcf->redis == NULL) {
        return NGX_OK;
    }

    client = ngx_pcalloc(cycle->pool, sizeof(ngx_commerce_redis_t));
    if (client == NULL) {
        return NGX_ERROR;
    }

    client->conns = ngx_pcalloc(cycle->pool, mcf->redis_connections
                                         * sizeof(ngx_commerce_redis_conn_t));
    if (client->conns == NULL) {
        return NGX_ERROR;
    }

    client->mcf = mcf;
    client->conf = mcf->redis;
    client->log = cycle->log;
    client->nconns = mcf->redis_connections;
    ngx_queue_init(&client->waiting);

    mcf->redis_client = client;

    for (i = 0; i < client->nconns; i++) {
        conn = &client->conns[i];
        conn->client = client;
        conn->index = i;

        conn->timer.handler = ngx_commerce_redis_timer_handler;
        conn->timer.data = conn;
        conn->timer.log = cycle->log;
        conn->timer.cancelable = 1;

        conn->ping.handler = ngx_commerce_redis_ping_handler;
        conn->ping.data = conn;
        conn->ping.log = cycle->log;
        conn->ping.cancelable = 1;

        conn->close.handler = ngx_commerce_redis_close_handler;
        conn->close.data = conn;
        conn->close.log = cycle->log;

        conn->ev.gone = ngx_commerce_redis_gone;
        conn->ev.data = conn;
    }

    ngx_commerce_redis_gauges(client);

    for (i = 0; i < client->nconns; i++) {
        ngx_commerce_redis_connect(&client->conns[i]);
    }

    return NGX_OK;
}


/*
 * Worker exit: every context freed (its connection closed: nginx alerts
 * on a socket left open), nobody called back: the requests are gone.
 */

void
ngx_commerce_redis_exit_worker(ngx_commerce_main_conf_t *mcf)
{
    ngx_uint_t                  i;
    ngx_commerce_redis_t       *client;
    ngx_commerce_redis_conn_t  *conn;

    client = mcf->redis_client;
    if (client == NULL) {
        return;
    }

    client->exiting = 1;

    ngx_commerce_redis_fail_waiting(client);

    for (i = 0; i < client->nconns; i++) {
        conn = &client->conns[i];

        if (conn->timer.timer_set) {
            ngx_del_timer(&conn->timer);
        }

        if (conn->ping.timer_set) {
            ngx_del_timer(&conn->ping);
        }

        if (conn->close.posted) {
            ngx_delete_posted_event(&conn->close);
        }

        if (conn->ev.ac != NULL) {
            conn->why = "worker exiting";
            redisAsyncFree(conn->ev.ac);
        }
    }

    ngx_commerce_shm_redis_clear();

    mcf->redis_client = NULL;
}


/* is a command likely to be sent now (a connection up)? */

ngx_uint_t
ngx_commerce_redis_available(void)
{
    ngx_commerce_redis_t  *client;

    client = ngx_commerce_conf_main()->redis_client;

    return client != NULL && ngx_commerce_redis_pick(client) != NULL;
}


ngx_commerce_redis_op_t *
ngx_commerce_redis_command(ngx_uint_t argc, ngx_str_t *argv,
    ngx_commerce_redis_handler_pt handler, void *data)
{
    u_char                *cmd;
    size_t                 len, head;
    ngx_commerce_redis_t  *client;

    client = ngx_commerce_conf_main()->redis_client;

    if (client == NULL || client->exiting || argc == 0
        || argc > NGX_COMMERCE_REDIS_ARGS_MAX)
    {
        return NULL;
    }

    cmd = ngx_commerce_redis_format(argc, argv, &len, &head);
    if (cmd == NULL) {
        return NULL;
    }

    return ngx_commerce_redis_submit(client,
               ngx_commerce_redis_op(client, cmd, len, head, handler, data));
}


ngx_commerce_redis_op_t *
ngx_commerce_redis_eval(ngx_commerce_redis_script_t *script,
    ngx_array_t *keys, ngx_array_t *args,
    ngx_commerce_redis_handler_pt handler, void *data)
{
    u_char                   *cmd;
    size_t                    len, head;
    ngx_commerce_redis_t     *client;
    ngx_commerce_redis_op_t  *op;

    client = ngx_commerce_conf_main()->redis_client;

    if (client == NULL || client->exiting) {
        return NULL;
    }

    cmd = ngx_commerce_redis_format_eval(script, keys, args, &len, &head);
    if (cmd == NULL) {
        return NULL;
    }

    op = ngx_commerce_redis_op(client, cmd, len, head, handler, data);
    if (op != NULL) {
        op->script = script;
    }

    return ngx_commerce_redis_submit(client, op);
}


/* the caller goes away: its handler is never called */

void
ngx_commerce_redis_cancel(ngx_commerce_redis_op_t *op)
{
    ngx_commerce_redis_t  *client;

    if (op == NULL) {
        return;
    }

    if (op->queued) {
        client = op->client;
        ngx_queue_remove(&op->queue);
        client->nwaiting--;
        ngx_commerce_redis_op_free(op);
        ngx_commerce_redis_gauges(client);
        return;
    }

    /* in flight: the reply is read and dropped */
    op->gone = 1;
    op->handler = NULL;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }
}


/* cmd: formatted, ngx_alloc()ed; the op owns it from now on */

static ngx_commerce_redis_op_t *
ngx_commerce_redis_op(ngx_commerce_redis_t *client, u_char *cmd, size_t len,
    size_t head, ngx_commerce_redis_handler_pt handler, void *data)
{
    ngx_commerce_redis_op_t  *op;

    op = ngx_alloc(sizeof(ngx_commerce_redis_op_t), client->log);
    if (op == NULL) {
        ngx_free(cmd);
        return NULL;
    }

    ngx_memzero(op, sizeof(ngx_commerce_redis_op_t));

    op->cmd = cmd;
    op->len = len;
    op->head = head;
    op->client = client;
    op->handler = handler;
    op->data = data;

    op->timer.handler = ngx_commerce_redis_op_timeout;
    op->timer.data = op;
    op->timer.log = client->log;

    return op;
}


/* send op on a connection that is up, or queue it while one is coming */

static ngx_commerce_redis_op_t *
ngx_commerce_redis_submit(ngx_commerce_redis_t *client,
    ngx_commerce_redis_op_t *op)
{
    ngx_commerce_redis_conn_t  *conn;

    if (op == NULL) {
        return NULL;
    }

    conn = ngx_commerce_redis_pick(client);

    if (conn != NULL) {
        if (ngx_commerce_redis_send(conn, op) == NGX_OK) {
            return op;
        }

        goto refused;
    }

    if (!ngx_commerce_redis_coming(client)
        || client->nwaiting >= client->mcf->redis_queue_length)
    {
        goto refused;
    }

    ngx_queue_insert_tail(&client->waiting, &op->queue);
    client->nwaiting++;
    op->queued = 1;

    /* not cancelable: an exiting worker answers what it has accepted */
    ngx_add_timer(&op->timer, client->mcf->redis_queue_timeout);

    ngx_commerce_redis_gauges(client);

    return op;

refused:

    ngx_commerce_shm_redis_error(NGX_COMMERCE_REDIS_ERR_QUEUE);
    ngx_commerce_redis_op_free(op);

    return NULL;
}


/* the next connection that is up, in turn */

static ngx_commerce_redis_conn_t *
ngx_commerce_redis_pick(ngx_commerce_redis_t *client)
{
    ngx_uint_t                  i;
    ngx_commerce_redis_conn_t  *conn;

    for (i = 0; i < client->nconns; i++) {
        conn = &client->conns[client->rr++ % client->nconns];

        if (conn->state == NGX_COMMERCE_REDIS_UP) {
            return conn;
        }
    }

    return NULL;
}


static ngx_int_t
ngx_commerce_redis_send(ngx_commerce_redis_conn_t *conn,
    ngx_commerce_redis_op_t *op)
{
    if (redisAsyncFormattedCommand(conn->ev.ac, ngx_commerce_redis_reply, op,
                                   (char *) op->cmd, op->len)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    op->conn = conn;
    op->replies = conn->replies;
    op->sent_us = ngx_commerce_redis_now_us();
    conn->inflight++;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    /* the health check's PING: nobody waits for it */
    op->timer.cancelable = op->ping;
    ngx_add_timer(&op->timer, conn->client->mcf->redis_command_timeout);

    return NGX_OK;
}


/*
 * hiredis' callback of every command: its reply, or NULL when the context
 * goes (the connection broke, or we freed it).
 */

static void
ngx_commerce_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                 *reply = r;
    ngx_commerce_redis_op_t    *op = privdata;

    u_char                         *eval;
    size_t                          len;
    ngx_commerce_redis_rc_e         rc;
    ngx_commerce_redis_conn_t      *conn;
    ngx_commerce_redis_handler_pt   handler;

    conn = op->conn;
    conn->inflight--;

    if (reply == NULL) {
        /*
         * The context is being freed: mark the connection down before any
         * caller hears of it, so that what it sends next does not come
         * here.
         */
        ngx_commerce_redis_down(conn, ngx_commerce_redis_errstr(ac, conn));
        rc = NGX_COMMERCE_REDIS_LOST;
        goto done;
    }

    conn->replies++;

    ngx_commerce_shm_redis_latency(ngx_commerce_redis_now_us()
                                       - op->sent_us);

    if (reply->type == REDIS_REPLY_ERROR && op->script != NULL && !op->eval
        && reply->len >= 8 && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0
        && !op->gone)
    {
        /*
         * The server does not have the script (a restart, SCRIPT FLUSH):
         * it did not run.  EVAL it, which also loads it, on the same
         * connection, within the same deadline.
         */
        eval = ngx_commerce_redis_eval_text(op->script, op->cmd, op->len,
                                            op->head, &len);

        if (eval != NULL) {
            if (redisAsyncFormattedCommand(ac, ngx_commerce_redis_reply, op,
                                           (char *) eval, len)
                == REDIS_OK)
            {
                ngx_free(eval);
                op->eval = 1;
                op->sent_us = ngx_commerce_redis_now_us();
                op->replies = conn->replies;
                conn->inflight++;

                ngx_log_debug1(NGX_LOG_DEBUG_HTTP, conn->client->log, 0,
                               "commerce: redis script \"%s\" sent as EVAL",
                               op->script->name);
                return;
            }

            ngx_free(eval);
        }
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_commerce_shm_redis_error(NGX_COMMERCE_REDIS_ERR_SERVER);

        ngx_log_error(NGX_LOG_WARN, conn->client->log, 0,
                      "commerce: redis connection #%ui: error reply%s%s: "
                      "%*s", conn->index,
                      op->script ? " to script " : "",
                      op->script ? op->script->name : "",
                      (size_t) ngx_min(reply->len, 256), reply->str);
    }

    rc = NGX_COMMERCE_REDIS_REPLY;

done:

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    handler = op->gone || conn->client->exiting ? NULL : op->handler;

    if (handler != NULL) {
        handler(op->data, rc, reply);
    }

    ngx_commerce_redis_op_free(op);
}


static void
ngx_commerce_redis_op_timeout(ngx_event_t *ev)
{
    void                           *data;
    ngx_uint_t                      silent;
    ngx_commerce_redis_t           *client;
    ngx_commerce_redis_op_t        *op;
    ngx_commerce_redis_conn_t      *conn;
    ngx_commerce_redis_handler_pt   handler;

    op = ev->data;
    client = op->client;

    if (op->queued) {
        /* no connection came up in time: it was never sent */
        ngx_queue_remove(&op->queue);
        client->nwaiting--;
        op->queued = 0;

        ngx_commerce_shm_redis_error(NGX_COMMERCE_REDIS_ERR_QUEUE);
        ngx_commerce_redis_gauges(client);

        handler = op->handler;
        data = op->data;
        ngx_commerce_redis_op_free(op);

        if (handler != NULL) {
            handler(data, NGX_COMMERCE_REDIS_UNAVAILABLE, NULL);
        }

        return;
    }

    /*
     * Sent, no reply in time.  Its caller is answered now, once; the reply,
     * should it come, is dropped.  A command cannot be taken back alone, and
     * Redis answers in order: when nothing at all was read from the
     * connection since this command went out, the connection (or the
     * server) is stuck, and it is replaced.  Its other commands fail then,
     * at once, rather than each at its own deadline.
     */

    conn = op->conn;

    ngx_commerce_shm_redis_error(NGX_COMMERCE_REDIS_ERR_TIMEOUT);

    handler = op->gone ? NULL : op->handler;
    data = op->data;
    op->gone = 1;
    op->handler = NULL;

    silent = (conn->replies == op->replies);

    ngx_log_error(NGX_LOG_WARN, client->log, 0,
                  "commerce: redis connection #%ui: %s timed out after "
                  "%Mms%s", conn->index,
                  op->ping ? "PING" : (op->script ? op->script->name
                                                  : "command"),
                  client->mcf->redis_command_timeout,
                  silent ? "; nothing read since it was sent: reconnecting"
                         : "");

    if (silent && conn->ev.ac != NULL) {
        /* op is freed by its callback */
        ngx_commerce_redis_close(conn, "command timed out");
    }

    if (handler != NULL) {
        handler(data, NGX_COMMERCE_REDIS_TIMEOUT, NULL);
    }
}


static void
ngx_commerce_redis_op_free(ngx_commerce_redis_op_t *op)
{
    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    ngx_free(op->cmd);
    ngx_free(op);
}


/*
 * Is a connection on its way: connecting, or lost and about to be
 * replaced at once?  Then commands wait for it; else they are refused.
 */

static ngx_uint_t
ngx_commerce_redis_coming(ngx_commerce_redis_t *client)
{
    ngx_uint_t                  i;
    ngx_commerce_redis_conn_t  *conn;

    for (i = 0; i < client->nconns; i++) {
        conn = &client->conns[i];

        if (conn->state == NGX_COMMERCE_REDIS_CONNECTING
            || (conn->state == NGX_COMMERCE_REDIS_DOWN && conn->soon
                && conn->timer.timer_set))
        {
            return 1;
        }
    }

    return 0;
}


/* a connection came up: what waits goes out, over the connections up */

static void
ngx_commerce_redis_drain(ngx_commerce_redis_t *client)
{
    ngx_queue_t                *q;
    ngx_commerce_redis_op_t    *op;
    ngx_commerce_redis_conn_t  *conn;

    while (!ngx_queue_empty(&client->waiting)) {
        conn = ngx_commerce_redis_pick(client);
        if (conn == NULL) {
            break;
        }

        q = ngx_queue_head(&client->waiting);
        op = ngx_queue_data(q, ngx_commerce_redis_op_t, queue);

        ngx_queue_remove(q);
        client->nwaiting--;
        op->queued = 0;

        if (ngx_commerce_redis_send(conn, op) != NGX_OK) {
            ngx_queue_insert_head(&client->waiting, &op->queue);
            client->nwaiting++;
            op->queued = 1;
            break;
        }
    }

    ngx_commerce_redis_gauges(client);
}


/* nothing up and nothing coming: the queue is failed at once */

static void
ngx_commerce_redis_fail_waiting(ngx_commerce_redis_t *client)
{
    void                           *data;
    ngx_queue_t                    *q;
    ngx_commerce_redis_op_t        *op;
    ngx_commerce_redis_handler_pt   handler;

    while (!ngx_queue_empty(&client->waiting)) {
        q = ngx_queue_head(&client->waiting);
        op = ngx_queue_data(q, ngx_commerce_redis_op_t, queue);

        ngx_queue_remove(q);
        client->nwaiting--;
        op->queued = 0;

        handler = client->exiting ? NULL : op->handler;
        data = op->data;
        ngx_commerce_redis_op_free(op);

        ngx_commerce_shm_redis_error(NGX_COMMERCE_REDIS_ERR_QUEUE);

        if (handler != NULL) {
            handler(data, NGX_COMMERCE_REDIS_UNAVAILABLE, NULL);
        }
    }

    ngx_commerce_redis_gauges(client);
}


/* connections */

static void
ngx_commerce_redis_connect(ngx_commerce_redis_conn_t *conn)
{
    redisAsyncContext          *ac;
    ngx_commerce_redis_t       *client;
    ngx_commerce_redis_conf_t  *rc;

    client = conn->client;
    rc = client->conf;
    conn->soon = 0;

    if (conn->ev.ac != NULL) {
        /* a close we posted has not run yet */
        ngx_commerce_redis_close(conn, conn->why ? conn->why : "replaced");
    }

    /*
     * ngx-commerce: allow-blocking getaddrinfo() in redisAsyncConnect():
     * only ever an IP address literal and a numeric port (the
     * configuration refuses host names), which glibc parses without a
     * resolver, a file or a socket; the connect itself is non-blocking.
     */
    if (rc->path != NULL) {
        ac = redisAsyncConnectUnix(rc->path);

    } else {
        ac = redisAsyncConnect(rc->host, rc->port);
    }

    if (ac == NULL) {
        conn->state = NGX_COMMERCE_REDIS_CONNECTING;
        ngx_commerce_redis_down(conn, "out of memory");
        return;
    }

    if (ac->err) {
        /* refused at once (a unix socket, a local port); never attached */
        conn->state = NGX_COMMERCE_REDIS_CONNECTING;
        ngx_commerce_redis_down(conn, ac->errstr);
        redisAsyncFree(ac);
        return;
    }

    if (ngx_commerce_redis_attach(&conn->ev, ac, client->log) != NGX_OK) {
        conn->state = NGX_COMMERCE_REDIS_CONNECTING;
        ngx_commerce_redis_down(conn, "cannot register the socket");
        redisAsyncFree(ac);
        return;
    }

    conn->state = NGX_COMMERCE_REDIS_CONNECTING;
    conn->why = NULL;

    ngx_add_timer(&conn->timer, client->mcf->redis_connect_timeout);

    ngx_commerce_redis_gauges(client);

    if (ngx_commerce_redis_handshake_send(conn) != NGX_OK) {
        ngx_commerce_redis_close(conn, "cannot send the handshake");
    }
}


/*
 * AUTH, SELECT, a name the operator sees in CLIENT LIST, and a PING, all
 * pipelined before anything else; the connection is up when the last one
 * is answered without an error.
 */

static ngx_int_t
ngx_commerce_redis_handshake_send(ngx_commerce_redis_conn_t *conn)
{
    redisAsyncContext          *ac;
    ngx_commerce_redis_conf_t  *rc;

    ac = conn->ev.ac;
    rc = conn->client->conf;
    conn->handshake = 0;

    if (rc->password.len) {
        if (redisAsyncCommand(ac, ngx_commerce_redis_handshake, conn,
                              "AUTH %b", rc->password.data,
                              rc->password.len)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }

        conn->handshake++;
    }

    if (rc->db) {
        if (redisAsyncCommand(ac, ngx_commerce_redis_handshake, conn,
                              "SELECT %u", (unsigned int) rc->db)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }

        conn->handshake++;
    }

    if (redisAsyncCommand(ac, ngx_commerce_redis_handshake, conn,
                          "CLIENT SETNAME ngx_commerce")
        != REDIS_OK
        || redisAsyncCommand(ac, ngx_commerce_redis_handshake, conn, "PING")
           != REDIS_OK)
    {
        return NGX_ERROR;
    }

    conn->handshake += 2;

    return NGX_OK;
}


static void
ngx_commerce_redis_handshake(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                 *reply = r;
    ngx_commerce_redis_conn_t  *conn = privdata;

    if (reply == NULL) {
        ngx_commerce_redis_down(conn, ngx_commerce_redis_errstr(ac, conn));
        return;
    }

    conn->replies++;

    if (conn->state != NGX_COMMERCE_REDIS_CONNECTING) {
        /* an earlier step failed; the context is about to be freed */
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        /* never log the command: it may be AUTH and its password */
        ngx_log_error((conn->attempt ? NGX_LOG_INFO : NGX_LOG_ERR),
                      conn->client->log, 0,
                      "commerce: redis connection #%ui to \"%V\": "
                      "handshake refused: %*s", conn->index,
                      &conn->client->conf->addr,
                      (size_t) ngx_min(reply->len, 256), reply->str);

        ngx_commerce_shm_redis_error(NGX_COMMERCE_REDIS_ERR_SERVER);

        /* not here, inside hiredis' callback: once it has returned */
        conn->why = "handshake refused";
        ngx_commerce_redis_down(conn, conn->why);
        ngx_post_event(&conn->close, &ngx_posted_events);
        return;
    }

    if (--conn->handshake == 0) {
        ngx_commerce_redis_up(conn);
    }
}


static void
ngx_commerce_redis_up(ngx_commerce_redis_conn_t *conn)
{
    ngx_commerce_redis_t  *client;

    client = conn->client;

    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    conn->state = NGX_COMMERCE_REDIS_UP;
    conn->up_at = ngx_current_msec;

    if (conn->ever_up) {
        ngx_commerce_shm_redis_reconnect();
    }

    ngx_log_error((conn->ever_up || conn->attempt ? NGX_LOG_NOTICE
                                                  : NGX_LOG_INFO),
                  client->log, 0,
                  "commerce: redis connection #%ui to \"%V\" up%s",
                  conn->index, &client->conf->addr,
                  conn->ever_up ? " again" : "");

    conn->ever_up = 1;

    if (!(ngx_exiting || ngx_quit || ngx_terminate)) {
        ngx_add_timer(&conn->ping, client->mcf->redis_ping_interval);
    }

    ngx_commerce_redis_drain(client);
}


/*
 * The connection is down, or about to be (its context is being freed, or
 * we will free it).  Called once per context: from the first NULL reply,
 * a failed handshake, a failed connect or the cleanup hook.  Schedules the
 * next connect: at once when a connection that worked for a while was
 * lost, with backoff after failed connects (and after a flapping one).
 */

static void
ngx_commerce_redis_down(ngx_commerce_redis_conn_t *conn, const char *why)
{
    ngx_msec_t             delay;
    ngx_uint_t             was_up, level;
    ngx_commerce_redis_t  *client;

    if (conn->state == NGX_COMMERCE_REDIS_DOWN) {
        return;
    }

    client = conn->client;
    was_up = (conn->state == NGX_COMMERCE_REDIS_UP);
    conn->state = NGX_COMMERCE_REDIS_DOWN;

    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    if (conn->ping.timer_set) {
        ngx_del_timer(&conn->ping);
    }

    if (client->exiting) {
        return;
    }

    ngx_commerce_shm_redis_error(NGX_COMMERCE_REDIS_ERR_CONNECTION);

    if (was_up
        && ngx_current_msec - conn->up_at >= NGX_COMMERCE_REDIS_BACKOFF_MAX)
    {
        /* it worked for a while: replace it at once, a fresh series */
        conn->attempt = 0;
        delay = 0;

    } else {
        /* half the ceiling, plus full jitter over the other half */
        delay = (ngx_msec_t) (cm_backoff_ceiling(
                                  NGX_COMMERCE_REDIS_BACKOFF_MIN,
                                  NGX_COMMERCE_REDIS_BACKOFF_MAX,
                                  (unsigned) conn->attempt) / 2
                              + cm_backoff_full_jitter(
                                  NGX_COMMERCE_REDIS_BACKOFF_MIN / 2,
                                  NGX_COMMERCE_REDIS_BACKOFF_MAX / 2,
                                  (unsigned) conn->attempt,
                                  ((uint32_t) ngx_random() << 16)
                                  ^ (uint32_t) ngx_random()));

        if (conn->attempt < 16) {
            conn->attempt++;
        }
    }

    /* a lost connection and the first failed connect are news, the rest not */
    level = (was_up || conn->attempt <= 1) ? NGX_LOG_ERR : NGX_LOG_INFO;

    ngx_log_error(level, client->log, 0,
                  "commerce: redis connection #%ui to \"%V\" %s: %s; %ui in "
                  "flight; reconnecting in %Mms", conn->index,
                  &client->conf->addr, was_up ? "lost" : "failed",
                  why ? why : "", conn->inflight, delay);

    if (!(ngx_exiting || ngx_quit || ngx_terminate)) {
        ngx_add_timer(&conn->timer, delay);
        conn->soon = (delay == 0);
    }

    if (!ngx_commerce_redis_coming(client)) {
        ngx_commerce_redis_fail_waiting(client);
    }

    ngx_commerce_redis_gauges(client);
}


/* free the context now: never from inside one of its callbacks */

static void
ngx_commerce_redis_close(ngx_commerce_redis_conn_t *conn, const char *why)
{
    if (conn->close.posted) {
        ngx_delete_posted_event(&conn->close);
    }

    if (conn->ev.ac == NULL) {
        return;
    }

    ngx_commerce_redis_down(conn, why);

    /* in-flight callbacks run with NULL, then the cleanup hook */
    redisAsyncFree(conn->ev.ac);
}


static void
ngx_commerce_redis_close_handler(ngx_event_t *ev)
{
    ngx_commerce_redis_conn_t  *conn;

    conn = ev->data;

    ngx_commerce_redis_close(conn, conn->why);
}


/* the adapter's cleanup hook: the context is being freed */

static void
ngx_commerce_redis_gone(void *data, const redisAsyncContext *ac)
{
    ngx_commerce_redis_conn_t  *conn = data;

    ngx_commerce_redis_down(conn, ngx_commerce_redis_errstr(ac, conn));

    if (conn->close.posted) {
        ngx_delete_posted_event(&conn->close);
    }

    conn->inflight = 0;
    conn->handshake = 0;
}


static void
ngx_commerce_redis_timer_handler(ngx_event_t *ev)
{
    ngx_commerce_redis_conn_t  *conn;

    conn = ev->data;

    switch (conn->state) {

    case NGX_COMMERCE_REDIS_DOWN:
        if (ngx_exiting || ngx_quit || ngx_terminate
            || conn->client->exiting)
        {
            return;
        }

        ngx_commerce_redis_connect(conn);
        return;

    case NGX_COMMERCE_REDIS_CONNECTING:
        ngx_commerce_redis_close(conn, "connect timed out");
        return;

    default:
        return;
    }
}


/*
 * The health check: a PING on an idle connection.  Its reply feeds the
 * latency histogram; no reply within the command timeout from a silent
 * connection replaces the connection (ngx_commerce_redis_op_timeout).
 */

static void
ngx_commerce_redis_ping_handler(ngx_event_t *ev)
{
    u_char                     *cmd;
    size_t                      len, head;
    ngx_commerce_redis_op_t    *op;
    ngx_commerce_redis_conn_t  *conn;

    conn = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate || conn->client->exiting
        || conn->state != NGX_COMMERCE_REDIS_UP)
    {
        return;
    }

    if (conn->inflight == 0) {
        cmd = ngx_commerce_redis_format(1, ngx_commerce_redis_ping_argv,
                                        &len, &head);

        op = cmd ? ngx_commerce_redis_op(conn->client, cmd, len, head, NULL,
                                         NULL)
                 : NULL;

        if (op != NULL) {
            op->ping = 1;

            if (ngx_commerce_redis_send(conn, op) != NGX_OK) {
                ngx_commerce_redis_op_free(op);
            }
        }
    }

    ngx_add_timer(&conn->ping, conn->client->mcf->redis_ping_interval);
}
