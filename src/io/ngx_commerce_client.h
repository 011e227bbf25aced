
/*
 * Outbound HTTP: the gateways (named peers with their upstream, TLS,
 * timeouts, keepalive, breaker and retry settings), the non-blocking HTTP
 * client that talks to them, and the breakers and retry budgets on the
 * shared zone.  Nothing here knows what a call means to a domain.
 */


#ifndef _NGX_COMMERCE_CLIENT_H_INCLUDED_
#define _NGX_COMMERCE_CLIENT_H_INCLUDED_


#include "ngx_commerce.h"
#include "ngx_commerce_shm.h"
#include "cm_chunked.h"


/* outcome of one outbound exchange (ngx_commerce_client.c) */
#define NGX_COMMERCE_HTTP_OK               0
#define NGX_COMMERCE_HTTP_REFUSED          1
#define NGX_COMMERCE_HTTP_CONNECT_TIMEOUT  2
#define NGX_COMMERCE_HTTP_TIMEOUT          3
#define NGX_COMMERCE_HTTP_BROKEN           4
#define NGX_COMMERCE_HTTP_INVALID          5


typedef struct ngx_commerce_client_s  ngx_commerce_client_t;

typedef void (*ngx_commerce_client_handler_pt)(ngx_commerce_client_t *h);


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

    /* one domain's own peer (commerce_shipping gateway=): payments never
     * pick it, a payment callback cannot name it */
    unsigned                        named_only:1;

    /* per worker */
    ngx_addr_t                     *addrs;
    ngx_uint_t                      naddrs;
    ngx_uint_t                      rr;
    ngx_queue_t                     idle;
    ngx_queue_t                     free;
    ngx_uint_t                      nidle;
    uint32_t                        seen;      /* breaker transitions logged */
} ngx_commerce_gateway_t;


struct ngx_commerce_client_s {
    ngx_pool_t                     *pool;
    ngx_log_t                      *log;
    ngx_commerce_gateway_t         *gw;

    ngx_str_t                       method;
    ngx_str_t                       uri;
    int64_t                         user_id;         /* X-USER-ID; 0: none */
    ngx_str_t                       extra_headers;   /* "Name: v\r\n"... */
    ngx_str_t                       request_body;

    ngx_uint_t                      rc;
    ngx_uint_t                      status;
    ngx_str_t                       body;
    ngx_msec_t                      started;
    ngx_msec_t                      latency;

    ngx_commerce_client_handler_pt    handler;
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


/* http client (ngx_commerce_client.c) */
ngx_int_t ngx_commerce_client_start(ngx_commerce_client_t *h);
void ngx_commerce_client_posted(ngx_event_t *ev);
const char *ngx_commerce_client_rc_name(ngx_uint_t rc);
ngx_int_t ngx_commerce_client_init_gateway(ngx_cycle_t *cycle,
    ngx_commerce_gateway_t *gw);

/* gateway configuration (ngx_commerce_gateway.c) */
char *ngx_commerce_gateway(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_commerce_gateway_check(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);
ngx_int_t ngx_commerce_gateway_init_worker(ngx_cycle_t *cycle,
    ngx_commerce_main_conf_t *mcf);
ngx_commerce_gateway_t *ngx_commerce_gateway_by_name(ngx_str_t *name);

/* a named peer of the client that is not a gateway (an event sink) */
void ngx_commerce_gateway_peer_defaults(ngx_commerce_gateway_t *gw,
    ngx_str_t *name);
ngx_int_t ngx_commerce_gateway_peer_param(ngx_commerce_gateway_t *gw,
    ngx_str_t *name, ngx_str_t *value);
ngx_int_t ngx_commerce_gateway_peer_conf(ngx_conf_t *cf,
    ngx_commerce_gateway_t *gw);
ngx_int_t ngx_commerce_gateway_peer_check(ngx_conf_t *cf,
    ngx_commerce_gateway_t *gw, const char *directive);
ngx_int_t ngx_commerce_gateway_peer_init(ngx_cycle_t *cycle,
    ngx_commerce_gateway_t *gw);

/* breakers and retry budgets (ngx_commerce_breaker.c) */
ngx_int_t ngx_commerce_breaker_init_zone(ngx_commerce_shm_t *shm,
    void *data);
ngx_int_t ngx_commerce_breaker_acquire(ngx_commerce_gateway_t *gw,
    ngx_msec_t now, int *permit, ngx_msec_t *retry_after);
void ngx_commerce_breaker_record(ngx_commerce_gateway_t *gw, int permit,
    ngx_uint_t failed, ngx_msec_t duration);
ngx_int_t ngx_commerce_breaker_admits(ngx_commerce_gateway_t *gw,
    ngx_msec_t *retry_after);
ngx_int_t ngx_commerce_breaker_budget_retry(ngx_commerce_gateway_t *gw);
void ngx_commerce_breaker_budget_request(ngx_commerce_gateway_t *gw);


#endif /* _NGX_COMMERCE_CLIENT_H_INCLUDED_ */
