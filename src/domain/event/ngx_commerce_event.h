
/*
 * The event domain: the outbox relay and its sinks, and the dead-letter
 * queue's admin API.  Events are written by the SQL functions in the
 * transaction of the change they report (sql/functions/95_outbox.sql);
 * here worker 0 of each instance claims them per sink (leases in Postgres,
 * FOR UPDATE SKIP LOCKED), sends them through the module's HTTP client or
 * its Redis client, and settles them: delivered, retried with backoff, or
 * dead.  A sink is a kind (http, redis) and a filter of event types; a new
 * kind (notifications) is one more value of ngx_commerce_event_kind_e and
 * its send function.
 */


#ifndef _NGX_COMMERCE_EVENT_H_INCLUDED_
#define _NGX_COMMERCE_EVENT_H_INCLUDED_


#include "ngx_commerce_http.h"
#include "ngx_commerce_client.h"
#include "ngx_commerce_redis.h"
#include "cm_breaker.h"


typedef enum {
    NGX_COMMERCE_EVENT_HTTP = 0,      /* POST of one event (data platform) */
    NGX_COMMERCE_EVENT_REDIS          /* XADD to a stream */
} ngx_commerce_event_kind_e;


typedef struct ngx_commerce_event_run_s  ngx_commerce_event_run_t;


#define NGX_COMMERCE_EVENT_SINKS_MAX  8
#define NGX_COMMERCE_EVENT_NTYPES     10   /* known types, 0: any other */

/* what became of an attempt, for the counters */
#define NGX_COMMERCE_EVENT_DELIVERED  0
#define NGX_COMMERCE_EVENT_RETRIED    1
#define NGX_COMMERCE_EVENT_DEAD       2


typedef struct {
    ngx_str_t                    name;

    /* counter slots (ngx_commerce_conf_counter): by type and outcome */
    ngx_int_t                    counters[NGX_COMMERCE_EVENT_NTYPES][3];
    ngx_int_t                    backlog;
    ngx_int_t                    oldest;
    ngx_int_t                    dead;

    ngx_commerce_event_kind_e    kind;
    char                        *types;       /* '{order.*,...}', for SQL */
    ngx_uint_t                   batch;       /* events claimed at once */
    ngx_uint_t                   concurrency; /* sends in flight */
    ngx_uint_t                   retries;     /* after the first attempt */
    ngx_msec_t                   retry_base;
    ngx_msec_t                   retry_cap;
    ngx_msec_t                   interval;    /* idle poll */
    ngx_msec_t                   lease;
    cm_br_conf_t                 breaker;     /* the sink being down */

    /* http */
    ngx_commerce_gateway_t       peer;
    ngx_str_t                    uri;

    /* redis */
    ngx_str_t                    stream;
    ngx_str_t                    maxlen;

    /* worker 0 */
    ngx_commerce_job_t           job;
    ngx_commerce_pg_query_t      query;
    ngx_commerce_event_run_t    *run;
    cm_breaker_t                 br;
    uint32_t                     br_seen;     /* transitions logged */
    unsigned                     probing:1;   /* this claim is a probe */
    char                         batch_s[NGX_INT64_LEN + 1];
    char                         lease_s[NGX_INT64_LEN + 1];
    unsigned                     registered:1;
} ngx_commerce_event_sink_t;


typedef struct {
    ngx_array_t                  sinks;       /* ngx_commerce_event_sink_t */
    ngx_commerce_job_t           gauges;
    ngx_commerce_pg_query_t      query;
} ngx_commerce_event_conf_t;


/* the relay's and the admin API's statements */
enum {
    NGX_COMMERCE_STMT_OUTBOX_REGISTER = 0,
    NGX_COMMERCE_STMT_OUTBOX_CLAIM,
    NGX_COMMERCE_STMT_OUTBOX_SETTLE,
    NGX_COMMERCE_STMT_OUTBOX_STATS,
    NGX_COMMERCE_STMT_OUTBOX_DEAD,
    NGX_COMMERCE_STMT_OUTBOX_REPLAY,
    NGX_COMMERCE_EVENT_NSTMT
};


extern ngx_commerce_route_t  ngx_commerce_event_routes[];
extern ngx_commerce_stmt_t   ngx_commerce_event_statements[];


/* configuration (ngx_commerce_event_conf.c) */
char *ngx_commerce_event_sink_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_commerce_event_init(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);
ngx_int_t ngx_commerce_event_init_worker(ngx_cycle_t *cycle,
    ngx_commerce_main_conf_t *mcf);
ngx_uint_t ngx_commerce_event_type_slot(u_char *type, size_t len);

/* the relay (ngx_commerce_event_relay.c) */
ngx_int_t ngx_commerce_event_relay_run(ngx_commerce_job_t *job);
ngx_int_t ngx_commerce_event_relay_gauges(ngx_commerce_job_t *job);


#endif /* _NGX_COMMERCE_EVENT_H_INCLUDED_ */
