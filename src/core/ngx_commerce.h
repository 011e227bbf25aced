
/*
 * ngx_commerce core: what every layer above src/lib shares.  The module's
 * configuration, the registry of error codes, configuration helpers, the
 * reader of JSON documents and the periodic-job runner.  Nothing here
 * knows a route, a statement or a domain: see src/README.md for the
 * layers and the rule that dependencies point down only.
 */


#ifndef _NGX_COMMERCE_H_INCLUDED_
#define _NGX_COMMERCE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>
#include <yajl/yajl_tree.h>

#include "cm_json.h"
#include "cm_jwt.h"
#include "cm_pii.h"


typedef struct ngx_commerce_pg_pool_s   ngx_commerce_pg_pool_t;
typedef struct ngx_commerce_shm_s       ngx_commerce_shm_t;
typedef struct ngx_commerce_job_s       ngx_commerce_job_t;
typedef struct ngx_commerce_redis_conf_s  ngx_commerce_redis_conf_t;
typedef struct ngx_commerce_redis_s     ngx_commerce_redis_t;
typedef struct ngx_commerce_cache_s     ngx_commerce_cache_t;


/*
 * The Postgres listener (ngx_commerce_pg.c): worker 0's first pool
 * connection LISTENs on a channel.  notify: a notification's payload;
 * listening: NGX_COMMERCE_LISTEN_START (a new listener process, not yet
 * listening), _UP (listening, after every connect), _DOWN (not any more).
 */
typedef enum {
    NGX_COMMERCE_LISTEN_START = 0,
    NGX_COMMERCE_LISTEN_UP,
    NGX_COMMERCE_LISTEN_DOWN
} ngx_commerce_listen_e;

typedef void (*ngx_commerce_notify_pt)(ngx_str_t *payload);
typedef void (*ngx_commerce_listening_pt)(ngx_commerce_listen_e state);


typedef struct {
    /* Postgres (src/io/ngx_commerce_pg.c) */
    ngx_str_t                    conninfo;
    char                       **keywords;
    char                       **values;
    ngx_uint_t                   pool_size;
    ngx_uint_t                   queue_length;
    ngx_msec_t                   queue_timeout;
    ngx_msec_t                   statement_timeout;
    ngx_msec_t                   connect_timeout;
    ngx_uint_t                   pipeline_depth;
    ngx_array_t                  statements;   /* ngx_commerce_stmt_t * */

    /* LISTEN on worker 0's first connection; NULL: none */
    const char                  *listen_channel;
    char                        *listen_sql;       /* LISTEN <channel> */
    ngx_commerce_notify_pt       notify;
    ngx_commerce_listening_pt    listening;

    /* the response cache (src/shm/ngx_commerce_cache.c); NULL: off */
    ngx_commerce_cache_t        *cache;

    /* Redis (src/io/ngx_commerce_redis.c); NULL: no commerce_redis */
    ngx_commerce_redis_conf_t   *redis;
    ngx_uint_t                   redis_connections;
    ngx_msec_t                   redis_connect_timeout;
    ngx_msec_t                   redis_command_timeout;
    ngx_msec_t                   redis_queue_timeout;
    ngx_uint_t                   redis_queue_length;
    ngx_msec_t                   redis_ping_interval;

    /* domains' counters (ngx_commerce_counter_t), slot = index */
    ngx_array_t                  counters;

    /* retention of logs (src/domain/retention) */
    void                        *retention;

    /* the API (src/http) */
    ngx_array_t                  routes;       /* ngx_commerce_route_t * */
    ngx_array_t                  route_names;  /* ngx_str_t: metric slots */
    ngx_str_t                    jwt_secret;
    ngx_str_t                    jwt_secret_file;
    size_t                       body_max;
    ngx_int_t                    request_id_index;
    ngx_uint_t                   used;
    ngx_str_t                    openapi_file;
    ngx_str_t                    openapi;      /* its bytes */
    ngx_array_t                 *cors_origins; /* ngx_str_t */
    void                        *limits;

    /* balance and orders */
    ngx_int_t                    charge_max;
    ngx_int_t                    balance_max;
    time_t                       order_ttl;
    ngx_msec_t                   expiry_interval;

    /* the restock queue (src/domain/waitlist) */
    time_t                       waitlist_hold;
    ngx_msec_t                   waitlist_interval;

    /* commerce_refund (src/domain/refund: ngx_commerce_refund_conf_t) */
    void                        *refund;

    /* payment gateways, their zone and the card flow */
    ngx_commerce_shm_t          *shm;
    ngx_array_t                  gateways;     /* ngx_commerce_gateway_t */
    ngx_str_t                    callback_url;
    ngx_str_t                    callback_secret;
    ngx_str_t                    callback_secret_file;
    time_t                       callback_tolerance;
    ngx_uint_t                   retry_attempts;
    ngx_msec_t                   retry_base;
    ngx_msec_t                   retry_cap;
    ngx_uint_t                   retry_budget_ratio;
    ngx_uint_t                   retry_budget_min;
    time_t                       payment_timeout;
    time_t                       transfer_deadline;
    ngx_msec_t                   reconcile_interval;
    time_t                       reconcile_age;
    time_t                       reconcile_grace;

    /* accounts */
    ngx_str_t                    jwt_keys_file;
    cm_keyring_t                *jwt_keys;
    ngx_str_t                    pii_keys_file;
    ngx_str_t                    pii_index_key_file;
    cm_keyring_t                *pii_keys;
    cm_key_t                    *pii_index_key;
    ngx_str_t                    auth_thread_pool_name;
    ngx_thread_pool_t           *auth_thread_pool;
    time_t                       access_ttl;
    time_t                       refresh_ttl;
    ngx_uint_t                   kdf_iterations;
    ngx_flag_t                   accounts;

    /* products' images (src/domain/seller/ngx_commerce_seller_image.c) */
    ngx_str_t                    image_dir;
    size_t                       image_max;
    ngx_msec_t                   image_timeout;
    ngx_str_t                    image_thread_pool_name;
    ngx_msec_t                   image_sweep_interval;  /* 0: no sweep */
    time_t                       image_sweep_grace;
    ngx_thread_pool_t           *image_thread_pool;   /* NULL: no images */

    /* domain events (src/domain/event): its configuration */
    void                        *events;

    /* shipping (src/domain/shipping): commerce_shipping, NULL: none */
    void                        *shipping;
    /* settlement and payouts (src/domain/settlement): commerce_settlement */
    void                        *settlement;

    /*
     * Opens the sealed texts a success answer carries (an order's
     * shipping address: src/domain/order/ngx_commerce_order_part.c), set
     * by that domain at configuration time, called by the reply as the
     * answer is sent: what is stored under an Idempotency-Key stays
     * sealed, and a replay is opened again.  NGX_OK with *body and *len
     * (unchanged when there is nothing to open), NGX_ERROR (logged).
     */
    ngx_int_t                  (*reveal)(ngx_http_request_t *r,
                                         u_char **body, size_t *len);

    /* periodic jobs, run by worker 0 of each instance */
    ngx_array_t                  jobs;         /* ngx_commerce_job_t * */

    /* per worker, set in init_process */
    ngx_commerce_pg_pool_t      *pool;
    ngx_commerce_redis_t        *redis_client;
} ngx_commerce_main_conf_t;


typedef struct {
    ngx_flag_t                   api;
    ngx_flag_t                   json_errors;     /* as configured */
    ngx_flag_t                   json_errors_on;  /* in effect */
} ngx_commerce_loc_conf_t;


/* a directive's numeric bounds (ngx_conf_post_t) */
typedef struct {
    ngx_conf_post_handler_pt     post_handler;
    ngx_int_t                    low;
    ngx_int_t                    high;
} ngx_commerce_bounds_t;


/*
 * A counter (or gauge) of a domain, registered at configuration time
 * (ngx_commerce_conf_counter): its value lives in the metrics zone under
 * its slot (ngx_commerce_shm_count), the Prometheus renderer prints it as
 * family{labels}.  Entries of one family are printed together, under one
 * HELP and TYPE.
 */

/* the outbox takes 33 per event sink (up to 8) */
#define NGX_COMMERCE_COUNTERS_MAX  512

typedef struct {
    const char                  *family;   /* commerce_..._total */
    const char                  *type;     /* "counter" or "gauge" */
    const char                  *help;
    const char                  *labels;   /* kind="x" or "" */
} ngx_commerce_counter_t;


/*
 * A periodic job.  run() starts one run and answers NGX_OK when it went
 * asynchronous (it then calls ngx_commerce_job_done() exactly once), or
 * anything else when there was nothing to start (the next run comes after
 * the interval).  Jobs run in worker 0 of each instance; work shared by
 * several instances is leased in Postgres (FOR UPDATE SKIP LOCKED) by the
 * job's own statement.
 */

typedef ngx_int_t (*ngx_commerce_job_pt)(ngx_commerce_job_t *job);

struct ngx_commerce_job_s {
    const char                  *name;
    ngx_msec_t                   first;      /* delay of the first run */
    ngx_msec_t                   interval;
    ngx_commerce_job_pt          run;
    void                        *data;

    ngx_event_t                  ev;
    ngx_log_t                   *log;
    unsigned                     running:1;
};


extern ngx_module_t  ngx_http_commerce_module;


ngx_commerce_main_conf_t *ngx_commerce_conf_main(void);

/* error codes (ngx_commerce_error.c) */
ngx_uint_t ngx_commerce_error_status(const char *code);

/* configuration helpers (ngx_commerce_conf.c) */
char *ngx_commerce_conf_bounds(ngx_conf_t *cf, void *post, void *data);
ngx_int_t ngx_commerce_conf_read_file(ngx_conf_t *cf, const char *directive,
    ngx_str_t *path, size_t max, ngx_uint_t private, ngx_str_t *out);
ngx_int_t ngx_commerce_conf_keyring(ngx_conf_t *cf, const char *directive,
    ngx_str_t *path, cm_keyring_t **out);
ngx_int_t ngx_commerce_conf_counter(ngx_conf_t *cf, const char *family,
    const char *type, const char *help, const char *labels);
ngx_int_t ngx_commerce_conf_percent(ngx_str_t *v, ngx_uint_t *bp);

/* JSON documents from the database or a peer (ngx_commerce_json.c) */
yajl_val ngx_commerce_json_parse(ngx_pool_t *pool, u_char *data, size_t len);
yajl_val ngx_commerce_json_get(yajl_val v, const char *a, const char *b);
ngx_int_t ngx_commerce_json_int(yajl_val v, const char *a, const char *b,
    int64_t *out);
ngx_int_t ngx_commerce_json_id(yajl_val v, const char *a, int64_t *out);
const char *ngx_commerce_json_string(yajl_val v, const char *a);
ngx_int_t ngx_commerce_json_str(ngx_pool_t *pool, yajl_val v, const char *a,
    const char *b, ngx_str_t *out, size_t max);
char *ngx_commerce_json_cstr(ngx_pool_t *pool, ngx_str_t *s);
u_char *ngx_commerce_json_put(u_char *p, u_char *last, const char *key,
    ngx_str_t *value);
ngx_int_t ngx_commerce_json_text(ngx_pool_t *pool, yajl_val v,
    ngx_str_t *out);
ngx_table_elt_t *ngx_commerce_header_in(ngx_http_request_t *r,
    const char *name, ngx_uint_t *count);

/* periodic jobs (ngx_commerce_job.c) */
ngx_int_t ngx_commerce_job_add(ngx_conf_t *cf, ngx_commerce_job_t *job);
ngx_int_t ngx_commerce_job_init_worker(ngx_cycle_t *cycle,
    ngx_commerce_main_conf_t *mcf);
void ngx_commerce_job_done(ngx_commerce_job_t *job, ngx_msec_t next);


#endif /* _NGX_COMMERCE_H_INCLUDED_ */
