
/*
 * The event domain: the outbox relay and its sinks, and the dead-letter
 * queue's admin API.  Events are written by the SQL functions in the
 * transaction of the change they report (sql/functions/95_outbox.sql);
 * here worker 0 of each instance claims them per sink (leases in Postgres,
 * FOR UPDATE SKIP LOCKED), sends them through the module's HTTP client or
 * its Redis client, and settles them: delivered, retried with backoff, or
 * dead.  A sink is a kind (http, redis, notify) and a filter of event
 * types.  A notify sink turns events into messages to their recipient
 * through channels (commerce_notify_channel: KakaoTalk Alimtalk, SMS,
 * e-mail), with a failover channel (ngx_commerce_event_notify*.c).
 */


#ifndef _NGX_COMMERCE_EVENT_H_INCLUDED_
#define _NGX_COMMERCE_EVENT_H_INCLUDED_


#include "ngx_commerce_http.h"
#include "ngx_commerce_client.h"
#include "ngx_commerce_redis.h"
#include "cm_breaker.h"


typedef enum {
    NGX_COMMERCE_EVENT_HTTP = 0,      /* POST of one event (data platform) */
    NGX_COMMERCE_EVENT_REDIS,         /* XADD to a stream */
    NGX_COMMERCE_EVENT_NOTIFY         /* a message to the event's user */
} ngx_commerce_event_kind_e;


typedef enum {
    NGX_COMMERCE_NOTIFY_ALIMTALK = 0, /* NHN Cloud KakaoTalk Bizmessage */
    NGX_COMMERCE_NOTIFY_SMS,          /* NHN Cloud SMS */
    NGX_COMMERCE_NOTIFY_EMAIL         /* SendGrid v3 mail send */
} ngx_commerce_notify_kind_e;


/* a provider of messages: commerce_notify_channel NAME KIND [params] */
typedef struct {
    ngx_str_t                    name;
    ngx_commerce_notify_kind_e   kind;
    ngx_commerce_gateway_t       peer;
    ngx_str_t                    uri;         /* with the app key */
    ngx_str_t                    app_key;
    ngx_str_t                    secret_file;
    ngx_str_t                    secret;      /* X-Secret-Key, Bearer key */
    ngx_str_t                    sender_key;  /* alimtalk */
    ngx_str_t                    sender;      /* sms: sendNo; email: from */
    ngx_str_t                    sender_name; /* email: from name */
    unsigned                     used:1;
} ngx_commerce_notify_channel_t;


/* a message: conf/notify-templates.json, one object a key */
typedef struct {
    ngx_str_t                    type;        /* order.paid */
    ngx_str_t                    user_field;  /* of the event's data */
    ngx_str_t                    key;         /* order_paid */
    ngx_str_t                    code;        /* Alimtalk template code */
    ngx_str_t                    subject;     /* e-mail */
    ngx_str_t                    text;        /* #{variable}s */
    ngx_str_t                    sms;         /* a short text, or text */
} ngx_commerce_notify_template_t;


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

    /* notify */
    ngx_str_t                    channel_name;
    ngx_str_t                    failover_name;
    ngx_commerce_notify_channel_t  *channel;
    ngx_commerce_notify_channel_t  *failover;
    ngx_str_t                    templates_file;
    ngx_array_t                 *templates;  /* ngx_commerce_notify_template_t */
    ngx_int_t                    sent[2][2];  /* [channel, failover][sent,
                                                 failed] counter slots */
    ngx_int_t                    failovers;
    ngx_int_t                    skipped[2];  /* withdrawn, no contact */

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
    ngx_array_t                  channels;    /* ngx_commerce_notify_channel_t */
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
    NGX_COMMERCE_STMT_NOTIFY_RECIPIENT,
    NGX_COMMERCE_EVENT_NSTMT
};


extern ngx_commerce_route_t  ngx_commerce_event_routes[];
extern ngx_commerce_stmt_t   ngx_commerce_event_statements[];


/* what became of a notification (ngx_commerce_event_notify.c) */
typedef void (*ngx_commerce_event_notify_pt)(void *data, u_char state,
    ngx_uint_t sink_up, u_char *error, size_t len);


/* configuration (ngx_commerce_event_conf.c) */
char *ngx_commerce_event_sink_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_commerce_event_channel_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_commerce_event_init(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);
ngx_int_t ngx_commerce_event_init_worker(ngx_cycle_t *cycle,
    ngx_commerce_main_conf_t *mcf);
ngx_uint_t ngx_commerce_event_type_slot(u_char *type, size_t len);

/* notification channels and templates (ngx_commerce_event_notify_conf.c) */
char *ngx_commerce_event_notify_conf_channel(ngx_conf_t *cf,
    ngx_commerce_event_conf_t *ecf);
ngx_int_t ngx_commerce_event_notify_conf_param(ngx_conf_t *cf,
    ngx_commerce_event_sink_t *sink, ngx_str_t *name, ngx_str_t *v);
ngx_int_t ngx_commerce_event_notify_conf_sink(ngx_conf_t *cf,
    ngx_commerce_event_conf_t *ecf, ngx_commerce_event_sink_t *sink);
ngx_int_t ngx_commerce_event_notify_conf_init_worker(ngx_cycle_t *cycle,
    ngx_commerce_event_conf_t *ecf);
ngx_commerce_notify_template_t *ngx_commerce_event_notify_conf_template(
    ngx_commerce_event_sink_t *sink, ngx_str_t *type);

/* notifications (ngx_commerce_event_notify.c) */
ngx_int_t ngx_commerce_event_notify_send(ngx_commerce_event_sink_t *sink,
    ngx_pool_t *pool, ngx_str_t *id, ngx_str_t *type, ngx_str_t *body,
    ngx_uint_t last, ngx_commerce_event_notify_pt handler, void *data);
ngx_int_t ngx_commerce_event_notify_render(ngx_pool_t *pool, ngx_str_t *text,
    yajl_val vars, yajl_val data, ngx_str_t *name, ngx_uint_t json,
    ngx_str_t *out, ngx_str_t *missing);

/* the relay (ngx_commerce_event_relay.c) */
ngx_int_t ngx_commerce_event_relay_run(ngx_commerce_job_t *job);
ngx_int_t ngx_commerce_event_relay_gauges(ngx_commerce_job_t *job);


#endif /* _NGX_COMMERCE_EVENT_H_INCLUDED_ */
