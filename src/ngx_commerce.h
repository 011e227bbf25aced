
/*
 * ngx_commerce: declarations shared by the nginx glue.
 *
 * The glue is split by concern: the module (directives, phases, worker
 * start/stop), the Postgres pool (ngx_commerce_pg.c), the router and
 * response helpers (ngx_commerce_handler.c), JWT in the access phase
 * (ngx_commerce_auth.c), the resources (ngx_commerce_api.c) and background
 * jobs (ngx_commerce_jobs.c).  Pure logic lives in cm_*.c without nginx
 * headers.
 */


#ifndef _NGX_COMMERCE_H_INCLUDED_
#define _NGX_COMMERCE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <libpq-fe.h>

#include "cm_json.h"
#include "cm_jwt.h"
#include "cm_pii.h"
#include "ngx_commerce_sql.h"

#include <ngx_thread_pool.h>


#define NGX_COMMERCE_PG_PARAMS_MAX    16
#define NGX_COMMERCE_PG_RETRIES_MAX   3
#define NGX_COMMERCE_PG_DEPTH_MAX     32
#define NGX_COMMERCE_CALLBACK_URI     "/api/v1/payments/callback"
#define NGX_COMMERCE_AUTH_URI         "/api/v1/auth/"


typedef struct ngx_commerce_pg_pool_s   ngx_commerce_pg_pool_t;
typedef struct ngx_commerce_pg_conn_s   ngx_commerce_pg_conn_t;
typedef struct ngx_commerce_pg_query_s  ngx_commerce_pg_query_t;
typedef struct ngx_commerce_shm_s       ngx_commerce_shm_t;
typedef struct ngx_commerce_pay_s       ngx_commerce_pay_t;


/* routes of the API; also the "route" label of the HTTP metrics */
typedef enum {
    NGX_COMMERCE_ROUTE_NONE = 0,
    NGX_COMMERCE_ROUTE_PRODUCTS,
    NGX_COMMERCE_ROUTE_PRODUCT,
    NGX_COMMERCE_ROUTE_BALANCE,
    NGX_COMMERCE_ROUTE_CHARGE,
    NGX_COMMERCE_ROUTE_ORDERS,
    NGX_COMMERCE_ROUTE_ORDER,
    NGX_COMMERCE_ROUTE_ORDER_PAYMENT,
    NGX_COMMERCE_ROUTE_CALLBACK,
    NGX_COMMERCE_ROUTE_SIGNUP,
    NGX_COMMERCE_ROUTE_LOGIN,
    NGX_COMMERCE_ROUTE_REFRESH,
    NGX_COMMERCE_ROUTE_LOGOUT,
    NGX_COMMERCE_ROUTE_ME,
    NGX_COMMERCE_ROUTE_ADMIN_ROLE,
    NGX_COMMERCE_ROUTE_ADMIN_AUDIT,
    NGX_COMMERCE_ROUTE_COUNT
} ngx_commerce_route_e;


/*
 * Outcome of a query, as seen by its owner:
 *   NGX_OK        res holds the final result (tuples or a server error);
 *   NGX_ERROR     the connection failed while the query ran;
 *   NGX_BUSY      no connection within queue bounds (length or timeout);
 *   NGX_DECLINED  no usable connection at all (Postgres down).
 * res is cleared by the pool after the handler returns.
 */
typedef void (*ngx_commerce_pg_handler_pt)(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);


struct ngx_commerce_pg_query_s {
    ngx_uint_t                   stmt;
    int                          nparams;
    const char                  *params[NGX_COMMERCE_PG_PARAMS_MAX];

    ngx_uint_t                   retries;      /* after 40001/40P01 */
    ngx_msec_t                   lost;         /* first lost connection */
    int                          backend_pid;  /* of the last send */
    ngx_commerce_pg_conn_t      *conn;
    ngx_queue_t                  queue;
    ngx_event_t                  wait;
    unsigned                     queued:1;
    unsigned                     resent:1;

    ngx_log_t                   *log;
    void                        *data;
    ngx_commerce_pg_handler_pt   handler;
};


typedef struct {
    ngx_str_t                    conninfo;
    char                       **keywords;
    char                       **values;

    ngx_uint_t                   pool_size;
    ngx_uint_t                   queue_length;
    ngx_msec_t                   queue_timeout;
    ngx_msec_t                   statement_timeout;
    ngx_msec_t                   connect_timeout;
    ngx_uint_t                   pipeline_depth;

    ngx_str_t                    jwt_secret;
    ngx_str_t                    jwt_secret_file;

    size_t                       body_max;
    ngx_int_t                    charge_max;
    ngx_int_t                    balance_max;
    time_t                       order_ttl;
    ngx_msec_t                   expiry_interval;

    ngx_int_t                    request_id_index;
    ngx_uint_t                   used;

    /* payment gateways (issue 3) */
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
    ngx_msec_t                   reconcile_interval;
    time_t                       reconcile_age;
    time_t                       reconcile_grace;
    ngx_event_t                 *reconcile_event;

    /* rate limits (issue 4) */
    void                        *limits;

    /* accounts (issue 4) */
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
    ngx_array_t                 *cors_origins;   /* ngx_str_t */

    /* per worker, set in init_process */
    ngx_commerce_pg_pool_t      *pool;
    ngx_event_t                 *expiry_event;
} ngx_commerce_main_conf_t;


typedef struct {
    ngx_flag_t                   api;
} ngx_commerce_loc_conf_t;


typedef enum {
    NGX_COMMERCE_IDEM_NONE = 0,
    NGX_COMMERCE_IDEM_CLAIMING,
    NGX_COMMERCE_IDEM_ACTIVE,
    NGX_COMMERCE_IDEM_STORING
} ngx_commerce_idem_e;


typedef struct {
    ngx_str_t                    request_id;
    cm_jwt_claims_t              claims;

    ngx_commerce_idem_e          idem;
    ngx_str_t                    idem_key;
    u_char                      *idem_body;
    size_t                       idem_len;
    unsigned                     idem_replayed:1;
    unsigned                     idem_atomic:1;   /* work + answer, one tx */
    unsigned                     idem_stored:1;   /* ... and it committed */
    unsigned                     idem_unknown:1;  /* ... connection lost */
    int                          idem_pid;        /* backend that ran it */
    ngx_uint_t                   idem_settles;    /* cm_idem_abandon calls */
    ngx_uint_t                   retry_after;   /* seconds, for 429 */
    ngx_uint_t                   reply_status;
    u_char                      *reply_body;
    size_t                       reply_len;

    unsigned                     authenticated:1;
    unsigned                     waiting:1;
    unsigned                     gone:1;          /* request cleaned up */

    ngx_uint_t                   route;
    int64_t                      id;
    ngx_uint_t                   success_status;

    ngx_commerce_pg_query_t      query;
    ngx_http_request_t          *request;
} ngx_commerce_ctx_t;


extern ngx_module_t  ngx_http_commerce_module;


/* module */
ngx_commerce_main_conf_t *ngx_commerce_main_conf(void);

/* pg pool */
ngx_int_t ngx_commerce_pg_conf_check(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);
ngx_int_t ngx_commerce_pg_init_worker(ngx_cycle_t *cycle,
    ngx_commerce_main_conf_t *mcf);
void ngx_commerce_pg_exit_worker(ngx_commerce_main_conf_t *mcf);
ngx_int_t ngx_commerce_pg_submit(ngx_commerce_pg_pool_t *pool,
    ngx_commerce_pg_query_t *q);
void ngx_commerce_pg_cancel(ngx_commerce_pg_query_t *q);

/* metrics (ngx_commerce_shm.c) */
void ngx_commerce_metrics_db(ngx_uint_t busy, ngx_uint_t idle,
    ngx_uint_t down, ngx_uint_t queued);
void ngx_commerce_metrics_db_error(void);

/* handler, responses */
ngx_int_t ngx_commerce_api_handler(ngx_http_request_t *r);
ngx_commerce_ctx_t *ngx_commerce_get_ctx(ngx_http_request_t *r);
ngx_int_t ngx_commerce_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len, ngx_uint_t retry_after);
ngx_uint_t ngx_commerce_error_status(const char *code);
ngx_int_t ngx_commerce_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message);
char *ngx_commerce_param_int(ngx_pool_t *pool, int64_t v);
ngx_int_t ngx_commerce_run_query(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx);
void ngx_commerce_query_done(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res);
ngx_int_t ngx_commerce_send_db_error(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, PGresult *res);

/* auth */
ngx_int_t ngx_commerce_access_handler(ngx_http_request_t *r);
ngx_int_t ngx_commerce_auth_init_worker(ngx_cycle_t *cycle);
ngx_int_t ngx_commerce_auth_conf(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);

/* resources */
const char *ngx_commerce_route_name(ngx_uint_t route);
ngx_int_t ngx_commerce_api_route(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, ngx_int_t *sent);
ngx_int_t ngx_commerce_api_dispatch(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);

/* accounts */
ngx_int_t ngx_commerce_account_handler(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
ngx_int_t ngx_commerce_account_conf(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);
ngx_int_t ngx_commerce_read_keyring(ngx_conf_t *cf, const char *directive,
    ngx_str_t *path, cm_keyring_t **out);
ngx_int_t ngx_commerce_key_file_private(ngx_conf_t *cf, const char *directive,
    ngx_str_t *path, ngx_file_info_t *fi);
ngx_int_t ngx_commerce_api_allowed(ngx_commerce_ctx_t *ctx);
ngx_str_t *ngx_commerce_cors_origin(ngx_http_request_t *r);
ngx_int_t ngx_commerce_cors_preflight(ngx_http_request_t *r);
ngx_uint_t ngx_commerce_api_public(ngx_uint_t route);

/* rate limits */
char *ngx_commerce_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_commerce_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_commerce_limit_postconf(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);
ngx_int_t ngx_commerce_limit_check(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx);
ngx_int_t ngx_commerce_limit_account(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, ngx_str_t *account);
u_char *ngx_commerce_limit_metrics(u_char *p, u_char *last);

/* idempotency keys */
void ngx_commerce_watch_client(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx);
ngx_int_t ngx_commerce_idem_atomic(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx);
ngx_int_t ngx_commerce_idem_start(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
ngx_int_t ngx_commerce_reply(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len);

/* jobs */
ngx_int_t ngx_commerce_jobs_init_worker(ngx_cycle_t *cycle,
    ngx_commerce_main_conf_t *mcf);


#define ngx_commerce_log(level, r, ctx, fmt, ...)                            \
    ngx_log_error(level, (r)->connection->log, 0,                            \
                  "commerce: [%V] " fmt, &(ctx)->request_id, ##__VA_ARGS__)


#endif /* _NGX_COMMERCE_H_INCLUDED_ */
