
/*
 * A pooled connection's socket and bookkeeping: libpq's socket wrapped in
 * an nginx connection (write interest only while libpq has output), the
 * flush loop, its state and the pool's gauges in the shared zone, and
 * libpq's messages made fit for one log line.
 */


#include "ngx_commerce_pg_conn.h"


ngx_int_t
ngx_commerce_pg_conn_want_write(ngx_commerce_pg_conn_t *conn, ngx_uint_t on)
{
    ngx_event_t  *wev;

    wev = conn->c->write;

    if (on && !wev->active) {
        return ngx_add_event(wev, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }

    if (!on && wev->active) {
        return ngx_del_event(wev, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }

    return NGX_OK;
}


/* push libpq's output buffer; the write event stays on until it is empty */

ngx_int_t
ngx_commerce_pg_conn_flush(ngx_commerce_pg_conn_t *conn)
{
    int  rc;

    rc = PQflush(conn->pg);

    if (rc < 0) {
        return NGX_ERROR;
    }

    return ngx_commerce_pg_conn_want_write(conn, rc == 1);
}


void
ngx_commerce_pg_conn_set_state(ngx_commerce_pg_conn_t *conn,
    ngx_commerce_pg_state_e state)
{
    ngx_commerce_main_conf_t  *mcf;

    mcf = conn->pool->mcf;

    if (ngx_commerce_pg_conn_listens(conn) && mcf->listening != NULL) {
        /* prepared, then LISTEN: from now on it hears every change */
        if (conn->state == NGX_COMMERCE_PG_PREPARING
            && state == NGX_COMMERCE_PG_IDLE)
        {
            mcf->listening(NGX_COMMERCE_LISTEN_UP);

        } else if (conn->state != NGX_COMMERCE_PG_DOWN
                   && state == NGX_COMMERCE_PG_DOWN)
        {
            mcf->listening(NGX_COMMERCE_LISTEN_DOWN);
        }
    }

    if (conn->state == NGX_COMMERCE_PG_DOWN
        && state != NGX_COMMERCE_PG_DOWN)
    {
        conn->pool->nup++;

    } else if (conn->state != NGX_COMMERCE_PG_DOWN
               && state == NGX_COMMERCE_PG_DOWN)
    {
        conn->pool->nup--;
    }

    conn->state = state;
}


/*
 * Give the nginx connection back without closing the descriptor: libpq owns
 * the socket and closes it itself (PQfinish, or a reconnect inside
 * PQconnectPoll).
 */

void
ngx_commerce_pg_conn_release(ngx_connection_t *c)
{
    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }

    c->read->closed = 1;
    c->write->closed = 1;

    ngx_free_connection(c);

    c->fd = (ngx_socket_t) -1;
}


char *
ngx_commerce_pg_conn_error(ngx_commerce_pg_conn_t *conn)
{
    char    *msg, *p;
    size_t   len;

    if (conn->pg == NULL) {
        return "";
    }

    msg = PQerrorMessage(conn->pg);

    /* libpq messages span lines; keep the log line single */
    len = ngx_strlen(msg);
    for (p = msg + len; p > msg && (p[-1] == '\n' || p[-1] == ' '); p--) {
        p[-1] = '\0';
    }

    for (p = msg; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\t') {
            *p = ' ';
        }
    }

    return msg;
}


ngx_int_t
ngx_commerce_pg_conn_retryable(PGresult *res)
{
    char  *state;

    if (PQresultStatus(res) != PGRES_FATAL_ERROR) {
        return 0;
    }

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    return state != NULL
           && (ngx_strcmp(state, "40001") == 0
               || ngx_strcmp(state, "40P01") == 0);
}


void
ngx_commerce_pg_conn_gauges(ngx_event_t *ev)
{
    ngx_uint_t               i, busy, idle, down;
    ngx_commerce_pg_pool_t  *pool;

    pool = ev->data;
    busy = idle = down = 0;

    for (i = 0; i < pool->nconns; i++) {
        switch (pool->conns[i].state) {
        case NGX_COMMERCE_PG_BUSY:
            busy++;
            break;
        case NGX_COMMERCE_PG_IDLE:
            idle++;
            break;
        case NGX_COMMERCE_PG_DOWN:
            down++;
            break;
        default:
            /* connecting or preparing: neither usable nor down */
            break;
        }
    }

    ngx_commerce_shm_db(busy, idle, down, pool->nwaiting);

    if (!(ngx_exiting || ngx_terminate || ngx_quit)) {
        ngx_add_timer(ev, 1000);
    }
}


/*
 * The listener: the first connection of worker 0's pool, when a domain
 * asked for a channel.  It serves queries like the others; after its
 * statements are prepared it also sends LISTEN (ngx_commerce_pg.c).
 */

ngx_uint_t
ngx_commerce_pg_conn_listens(ngx_commerce_pg_conn_t *conn)
{
    return conn->pool->mcf->listen_channel != NULL && ngx_worker == 0
           && conn->index == 0;
}


/* the notifications libpq has read: to the domain's handler, if ours */

void
ngx_commerce_pg_conn_notifies(ngx_commerce_pg_conn_t *conn)
{
    PGnotify                  *n;
    ngx_str_t                  payload;
    ngx_commerce_main_conf_t  *mcf;

    mcf = conn->pool->mcf;

    while (conn->pg != NULL && (n = PQnotifies(conn->pg)) != NULL) {
        if (ngx_commerce_pg_conn_listens(conn) && mcf->notify != NULL
            && ngx_strcmp(n->relname, mcf->listen_channel) == 0)
        {
            payload.data = (u_char *) n->extra;
            payload.len = ngx_strlen(n->extra);
            mcf->notify(&payload);
        }

        PQfreemem(n);
    }
}
