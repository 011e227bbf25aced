
/*
 * The pool's own types, shared by ngx_commerce_pg.c (the pool and the
 * state machine of a connection) and ngx_commerce_pg_conn.c (the socket
 * of a connection, its state gauges and libpq's messages).  Nothing
 * outside src/io includes this.
 */


#ifndef _NGX_COMMERCE_PG_CONN_H_INCLUDED_
#define _NGX_COMMERCE_PG_CONN_H_INCLUDED_


#include "ngx_commerce_pg.h"


typedef enum {
    NGX_COMMERCE_PG_DOWN = 0,
    NGX_COMMERCE_PG_CONNECTING,
    NGX_COMMERCE_PG_PREPARING,
    NGX_COMMERCE_PG_IDLE,
    NGX_COMMERCE_PG_BUSY
} ngx_commerce_pg_state_e;


struct ngx_commerce_pg_conn_s {
    ngx_commerce_pg_pool_t      *pool;
    PGconn                      *pg;
    ngx_connection_t            *c;
    ngx_commerce_pg_state_e      state;
    ngx_uint_t                   prepared;
    /* in-flight queries, oldest first (pipeline mode) */
    ngx_commerce_pg_query_t     *flight[NGX_COMMERCE_PG_DEPTH_MAX];
    ngx_uint_t                   fhead;
    ngx_uint_t                   nflight;
    PGresult                    *result;
    unsigned                     want_sync:1;
    ngx_queue_t                  queue;
    ngx_event_t                  timer;
    ngx_msec_t                   backoff;
    ngx_uint_t                   index;
    unsigned                     in_idle:1;
    unsigned                     gave_up:1;
};


struct ngx_commerce_pg_pool_s {
    ngx_commerce_main_conf_t    *mcf;
    ngx_event_t                  gauges;
    ngx_log_t                   *log;
    ngx_commerce_pg_conn_t      *conns;
    ngx_uint_t                   nconns;
    ngx_uint_t                   nup;
    ngx_queue_t                  idle;
    ngx_queue_t                  waiting;
    ngx_uint_t                   nwaiting;
};


ngx_int_t ngx_commerce_pg_conn_want_write(ngx_commerce_pg_conn_t *conn,
    ngx_uint_t on);
ngx_int_t ngx_commerce_pg_conn_flush(ngx_commerce_pg_conn_t *conn);
void ngx_commerce_pg_conn_set_state(ngx_commerce_pg_conn_t *conn,
    ngx_commerce_pg_state_e state);
void ngx_commerce_pg_conn_release(ngx_connection_t *c);
char *ngx_commerce_pg_conn_error(ngx_commerce_pg_conn_t *conn);
ngx_int_t ngx_commerce_pg_conn_retryable(PGresult *res);
void ngx_commerce_pg_conn_gauges(ngx_event_t *ev);
ngx_uint_t ngx_commerce_pg_conn_listens(ngx_commerce_pg_conn_t *conn);
void ngx_commerce_pg_conn_notifies(ngx_commerce_pg_conn_t *conn);


#endif /* _NGX_COMMERCE_PG_CONN_H_INCLUDED_ */
