
/*
 * The Redis client's own types, shared by ngx_commerce_redis.c (commands,
 * the queue, a connection's life) and ngx_commerce_redis_conn.c (hiredis
 * on nginx events, like hiredis' own adapters/ for other event
 * libraries: a context's socket wrapped in an nginx connection, its
 * add/del read/write hooks turned into nginx events, its cleanup hook
 * closing that connection; and the gauges).  Nothing outside src/io
 * includes this.
 */


#ifndef _NGX_COMMERCE_REDIS_CONN_H_INCLUDED_
#define _NGX_COMMERCE_REDIS_CONN_H_INCLUDED_


#include "ngx_commerce_redis.h"


/* the adapter tells the client of a context going through gone() */
typedef void (*ngx_commerce_redis_gone_pt)(void *data,
    const redisAsyncContext *ac);

typedef struct {
    redisAsyncContext           *ac;      /* NULL once freed */
    ngx_connection_t            *c;
    ngx_uint_t                   gen;     /* +1 per context freed */
    ngx_commerce_redis_gone_pt   gone;    /* from the cleanup hook */
    void                        *data;
} ngx_commerce_redis_adapter_t;


typedef enum {
    NGX_COMMERCE_REDIS_DOWN = 0,
    NGX_COMMERCE_REDIS_CONNECTING,
    NGX_COMMERCE_REDIS_UP
} ngx_commerce_redis_state_e;


typedef struct {
    ngx_commerce_redis_t        *client;
    ngx_uint_t                   index;
    ngx_commerce_redis_state_e   state;
    ngx_commerce_redis_adapter_t ev;          /* the context, its socket */
    ngx_uint_t                   inflight;    /* commands sent, unanswered */
    ngx_uint_t                   replies;     /* replies read, ever */
    ngx_uint_t                   handshake;   /* its replies still due */
    ngx_uint_t                   attempt;     /* failed connects in a row */
    ngx_event_t                  timer;       /* connect deadline, backoff */
    ngx_event_t                  ping;
    ngx_event_t                  close;       /* posted: free the context */
    const char                  *why;         /* of a close we asked for */
    ngx_msec_t                   up_at;
    unsigned                     ever_up:1;
    unsigned                     soon:1;      /* reconnect at once */
} ngx_commerce_redis_conn_t;


struct ngx_commerce_redis_s {
    ngx_commerce_main_conf_t    *mcf;
    ngx_commerce_redis_conf_t   *conf;
    ngx_log_t                   *log;
    ngx_commerce_redis_conn_t   *conns;
    ngx_uint_t                   nconns;
    ngx_uint_t                   rr;
    ngx_queue_t                  waiting;
    ngx_uint_t                   nwaiting;
    unsigned                     exiting:1;
};


struct ngx_commerce_redis_op_s {
    ngx_commerce_redis_t          *client;
    ngx_commerce_redis_conn_t     *conn;        /* sent on it */
    ngx_queue_t                    queue;
    ngx_event_t                    timer;       /* queue, then command */
    ngx_commerce_redis_handler_pt  handler;
    void                          *data;
    ngx_commerce_redis_script_t   *script;      /* EVALSHA */
    u_char                        *cmd;
    size_t                         len;
    size_t                         head;
    uint64_t                       sent_us;
    ngx_uint_t                     replies;     /* conn->replies at send */
    unsigned                       queued:1;
    unsigned                       gone:1;      /* answered, or cancelled */
    unsigned                       ping:1;
    unsigned                       eval:1;      /* fell back to EVAL */
};


ngx_int_t ngx_commerce_redis_attach(ngx_commerce_redis_adapter_t *a,
    redisAsyncContext *ac, ngx_log_t *log);
void ngx_commerce_redis_gauges(ngx_commerce_redis_t *client);
uint64_t ngx_commerce_redis_now_us(void);
const char *ngx_commerce_redis_errstr(const redisAsyncContext *ac,
    ngx_commerce_redis_conn_t *conn);


#endif /* _NGX_COMMERCE_REDIS_CONN_H_INCLUDED_ */
