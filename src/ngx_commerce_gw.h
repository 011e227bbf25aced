
/*
 * Payment gateways: configuration, outbound HTTP, the shared-memory zone
 * (circuit breakers, retry budgets, metrics) and the card payment flow.
 */


#ifndef _NGX_COMMERCE_GW_H_INCLUDED_
#define _NGX_COMMERCE_GW_H_INCLUDED_


#include "ngx_commerce.h"
#include "cm_breaker.h"
#include "cm_backoff.h"
#include "cm_chunked.h"


#define NGX_COMMERCE_GW_MAX          8
#define NGX_COMMERCE_WORKERS_MAX     64
#define NGX_COMMERCE_BUCKETS         12


/* outcome of one outbound exchange (ngx_commerce_http.c) */
#define NGX_COMMERCE_HTTP_OK               0
#define NGX_COMMERCE_HTTP_REFUSED          1
#define NGX_COMMERCE_HTTP_CONNECT_TIMEOUT  2
#define NGX_COMMERCE_HTTP_TIMEOUT          3
#define NGX_COMMERCE_HTTP_BROKEN           4
#define NGX_COMMERCE_HTTP_INVALID          5


typedef struct ngx_commerce_http_s  ngx_commerce_http_t;

typedef void (*ngx_commerce_http_handler_pt)(ngx_commerce_http_t *h);


typedef struct {
    ngx_str_t                       name;
    ngx_str_t                       upstream;
    ngx_http_upstream_srv_conf_t   *uscf;
    ngx_str_t                       host;
    ngx_msec_t                      connect_timeout;
    ngx_msec_t                      timeout;
    ngx_uint_t                      keepalive;
    ngx_uint_t                      index;
    cm_br_conf_t                    breaker;
    cm_br_state_e                   mode;      /* CLOSED: normal */

    /* retries; 0 (unset): the commerce_gateway_retry* directives */
    ngx_uint_t                      retries;
    ngx_msec_t                      retry_base;
    ngx_msec_t                      retry_cap;
    ngx_uint_t                      retry_budget;       /* percent + 1 */
    ngx_uint_t                      retry_budget_min;   /* per second + 1 */
#if (NGX_HTTP_SSL)
    ngx_ssl_t                      *ssl;
#endif
    ngx_str_t                       ssl_name;
    ngx_str_t                       ssl_trusted;
    ngx_flag_t                      ssl_on;
    ngx_flag_t                      ssl_verify;

    /* per worker */
    ngx_addr_t                     *addrs;
    ngx_uint_t                      naddrs;
    ngx_uint_t                      rr;
    ngx_queue_t                     idle;
    ngx_queue_t                     free;
    ngx_uint_t                      nidle;
    uint32_t                        seen;      /* breaker transitions logged */
} ngx_commerce_gateway_t;


struct ngx_commerce_http_s {
    ngx_pool_t                     *pool;
    ngx_log_t                      *log;
    ngx_commerce_gateway_t         *gw;

    ngx_str_t                       method;
    ngx_str_t                       uri;
    ngx_str_t                       user_id;         /* X-USER-ID */
    ngx_str_t                       extra_headers;   /* "Name: v\r\n"... */
    ngx_str_t                       request_body;

    ngx_uint_t                      rc;
    ngx_uint_t                      status;
    ngx_str_t                       body;
    ngx_msec_t                      started;
    ngx_msec_t                      latency;

    ngx_commerce_http_handler_pt    handler;
    void                           *data;

    /* internal */
    ngx_peer_connection_t           pc;
    ngx_connection_t               *connection;
    ngx_buf_t                      *out;
    ngx_buf_t                      *in;
    ngx_event_t                     post;
    cm_chunked_t                    chunked;   /* once chunked_body */
    unsigned                        sent:1;
    unsigned                        connected:1;
    unsigned                        reused:1;
    unsigned                        eof:1;
    unsigned                        keepalive:1;
    unsigned                        chunked_body:1;
};


/* gateway operations and outcomes, for metrics */
typedef enum {
    NGX_COMMERCE_OP_CREATE = 0,
    NGX_COMMERCE_OP_STATUS,
    NGX_COMMERCE_OP_LIST,
    NGX_COMMERCE_OP_CANCEL,
    NGX_COMMERCE_OP_COUNT
} ngx_commerce_op_e;

typedef enum {
    NGX_COMMERCE_OUT_ACCEPTED = 0,   /* 2xx */
    NGX_COMMERCE_OUT_DECLINED,       /* 4xx: the gateway said no */
    NGX_COMMERCE_OUT_ERROR,          /* 5xx */
    NGX_COMMERCE_OUT_REFUSED,
    NGX_COMMERCE_OUT_TIMEOUT,
    NGX_COMMERCE_OUT_BROKEN,
    NGX_COMMERCE_OUT_REJECTED,       /* breaker open: never sent */
    NGX_COMMERCE_OUT_COUNT
} ngx_commerce_outcome_e;


typedef struct {
    ngx_atomic_t                    requests[NGX_COMMERCE_OP_COUNT]
                                            [NGX_COMMERCE_OUT_COUNT];
    ngx_atomic_t                    latency[NGX_COMMERCE_OP_COUNT]
                                           [NGX_COMMERCE_BUCKETS + 1];
    ngx_atomic_t                    latency_sum_ms[NGX_COMMERCE_OP_COUNT];
    ngx_atomic_t                    retries;
    ngx_atomic_t                    budget_exhausted;
    ngx_atomic_t                    net_cancel_ok;
    ngx_atomic_t                    net_cancel_failed;
} ngx_commerce_gw_metrics_t;


typedef struct {
    ngx_atomic_t                    busy;
    ngx_atomic_t                    idle;
    ngx_atomic_t                    down;
    ngx_atomic_t                    queued;
    ngx_atomic_t                    pid;
} ngx_commerce_db_gauges_t;


#define NGX_COMMERCE_ROUTE_SLOTS     24     /* >= NGX_COMMERCE_ROUTE_COUNT */
#define NGX_COMMERCE_STATUS_SLOTS    16
#define NGX_COMMERCE_CLASS_SLOTS     5      /* 1xx..5xx: latency by class */


typedef struct {
    ngx_atomic_t                    requests[NGX_COMMERCE_ROUTE_SLOTS]
                                            [NGX_COMMERCE_STATUS_SLOTS];
    ngx_atomic_t                    latency[NGX_COMMERCE_ROUTE_SLOTS]
                                           [NGX_COMMERCE_CLASS_SLOTS]
                                           [NGX_COMMERCE_BUCKETS + 1];
    ngx_atomic_t                    latency_sum_us[NGX_COMMERCE_ROUTE_SLOTS]
                                                  [NGX_COMMERCE_CLASS_SLOTS];
    ngx_atomic_t                    db_errors;
    ngx_commerce_db_gauges_t        db[NGX_COMMERCE_WORKERS_MAX];
    ngx_atomic_t                    reconciler_runs;
    ngx_atomic_t                    settled_success;
    ngx_atomic_t                    settled_failed;
    ngx_atomic_t                    settled_not_found;
    ngx_atomic_t                    settled_timeout;
    ngx_atomic_t                    callbacks;
    ngx_atomic_t                    callbacks_rejected;
    ngx_atomic_t                    pending_payments;
    ngx_atomic_t                    pending_oldest_s;
} ngx_commerce_metrics_t;


/* the shared zone: one truth for all workers */
#define NGX_COMMERCE_SH_VERSION      1

typedef struct {
    ngx_uint_t                      version;
    ngx_uint_t                      size;
    ngx_uint_t                      ngw;
    u_char                          names[NGX_COMMERCE_GW_MAX][32];
    cm_breaker_t                    breaker[NGX_COMMERCE_GW_MAX];
    cm_retry_budget_t               budget[NGX_COMMERCE_GW_MAX];
    ngx_commerce_gw_metrics_t       gw[NGX_COMMERCE_GW_MAX];
    ngx_commerce_metrics_t          m;
} ngx_commerce_shctx_t;


struct ngx_commerce_shm_s {
    ngx_shm_zone_t                 *zone;
    ngx_slab_pool_t                *shpool;
    ngx_commerce_shctx_t           *sh;
    ngx_commerce_gateway_t         *gateways;     /* from the conf */
    ngx_uint_t                      ngateways;
};


/* http client */
ngx_int_t ngx_commerce_http_start(ngx_commerce_http_t *h);
void ngx_commerce_http_abort(ngx_commerce_http_t *h);
void ngx_commerce_http_posted(ngx_event_t *ev);
const char *ngx_commerce_http_rc_name(ngx_uint_t rc);
ngx_int_t ngx_commerce_http_init_gateway(ngx_cycle_t *cycle,
    ngx_commerce_gateway_t *gw);

/* gateway configuration */
char *ngx_commerce_gateway(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_commerce_gateways_check(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);
ngx_int_t ngx_commerce_gateways_init_worker(ngx_cycle_t *cycle,
    ngx_commerce_main_conf_t *mcf);

/* shared zone */
char *ngx_commerce_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_commerce_shctx_t *ngx_commerce_sh(void);
ngx_int_t ngx_commerce_breaker_acquire(ngx_commerce_gateway_t *gw,
    ngx_msec_t now, int *permit, ngx_msec_t *retry_after);
void ngx_commerce_breaker_record(ngx_commerce_gateway_t *gw, int permit,
    ngx_uint_t failed, ngx_msec_t duration);
ngx_int_t ngx_commerce_breaker_admits(ngx_commerce_gateway_t *gw,
    ngx_msec_t *retry_after);
ngx_int_t ngx_commerce_budget_retry(ngx_commerce_gateway_t *gw);
void ngx_commerce_budget_request(ngx_commerce_gateway_t *gw);
void ngx_commerce_metrics_gw(ngx_commerce_gateway_t *gw,
    ngx_commerce_op_e op, ngx_commerce_outcome_e out, ngx_msec_t latency);
void ngx_commerce_metrics_request(ngx_http_request_t *r, ngx_uint_t route,
    ngx_uint_t status, ngx_msec_t latency_us);
ngx_int_t ngx_commerce_metrics_handler(ngx_http_request_t *r);

/* card payments */
ngx_int_t ngx_commerce_card_start(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, int64_t order_id, cm_order_req_t *order,
    cm_payment_req_t *card);
ngx_int_t ngx_commerce_callback_handler(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
ngx_int_t ngx_commerce_reconciler_init_worker(ngx_cycle_t *cycle,
    ngx_commerce_main_conf_t *mcf);


#endif /* _NGX_COMMERCE_GW_H_INCLUDED_ */
