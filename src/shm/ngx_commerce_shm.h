
/*
 * The shared-memory zone: its layout and the counters every worker
 * updates.  State only: the breaker logic is in src/lib, its use in
 * src/io/ngx_commerce_breaker.c, the Prometheus text in
 * src/http/ngx_commerce_metrics.c.  Slots are plain numbers (a gateway's
 * index, a route name's slot), so nothing here knows their meaning.
 */


#ifndef _NGX_COMMERCE_SHM_H_INCLUDED_
#define _NGX_COMMERCE_SHM_H_INCLUDED_


#include "ngx_commerce.h"
#include "cm_breaker.h"
#include "cm_backoff.h"


#define NGX_COMMERCE_GW_MAX          8
#define NGX_COMMERCE_WORKERS_MAX     64
#define NGX_COMMERCE_BUCKETS         12
#define NGX_COMMERCE_ROUTE_SLOTS     96     /* route names, 0: other */
#define NGX_COMMERCE_STATUS_SLOTS    16
#define NGX_COMMERCE_CLASS_SLOTS     5      /* 1xx..5xx: latency by class */
#define NGX_COMMERCE_REDIS_BUCKETS   12     /* Redis latency, microseconds */


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
    ngx_atomic_t                    queued_max;   /* since the zone began */
    ngx_atomic_t                    pid;
} ngx_commerce_db_gauges_t;


/* the Postgres pool's queries and the time the queued ones waited */
typedef struct {
    ngx_atomic_t                    queries;      /* placed */
    ngx_atomic_t                    waited;       /* of them, queued */
    ngx_atomic_t                    wait[NGX_COMMERCE_BUCKETS + 1];
    ngx_atomic_t                    wait_sum_ms;
} ngx_commerce_db_queue_t;


/* what went wrong with Redis, for metrics */
typedef enum {
    NGX_COMMERCE_REDIS_ERR_TIMEOUT = 0,   /* no reply within the timeout */
    NGX_COMMERCE_REDIS_ERR_CONNECTION,    /* a connect failed, or was lost */
    NGX_COMMERCE_REDIS_ERR_SERVER,        /* an error reply */
    NGX_COMMERCE_REDIS_ERR_QUEUE,         /* never sent: no connection */
    NGX_COMMERCE_REDIS_ERR_COUNT
} ngx_commerce_redis_err_e;


/* a worker's Redis connections by state */
typedef struct {
    ngx_atomic_t                    up;
    ngx_atomic_t                    connecting;
    ngx_atomic_t                    down;
    ngx_atomic_t                    queued;
    ngx_atomic_t                    pid;
} ngx_commerce_redis_gauges_t;


typedef struct {
    ngx_commerce_redis_gauges_t     gauges[NGX_COMMERCE_WORKERS_MAX];
    ngx_atomic_t                    latency[NGX_COMMERCE_REDIS_BUCKETS + 1];
    ngx_atomic_t                    latency_sum_us;
    ngx_atomic_t                    errors[NGX_COMMERCE_REDIS_ERR_COUNT];
    ngx_atomic_t                    reconnects;
} ngx_commerce_redis_metrics_t;


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
    ngx_commerce_db_queue_t         dbq;
    ngx_atomic_t                    reconciler_runs;
    ngx_atomic_t                    settled_success;
    ngx_atomic_t                    settled_failed;
    ngx_atomic_t                    settled_not_found;
    ngx_atomic_t                    settled_timeout;
    ngx_atomic_t                    callbacks;
    ngx_atomic_t                    callbacks_rejected;
    ngx_atomic_t                    pending_payments;
    ngx_atomic_t                    pending_oldest_s;
    ngx_commerce_redis_metrics_t    redis;
    ngx_atomic_t                    counters[NGX_COMMERCE_COUNTERS_MAX];
} ngx_commerce_metrics_t;


/* the zone's layout; another version or size starts afresh */
#define NGX_COMMERCE_SH_VERSION      6

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


typedef ngx_int_t (*ngx_commerce_shm_init_pt)(ngx_commerce_shm_t *shm,
    void *data);

struct ngx_commerce_shm_s {
    ngx_shm_zone_t                 *zone;
    ngx_slab_pool_t                *shpool;
    ngx_commerce_shctx_t           *sh;

    /* set up the state of a new or reused zone (the gateways' breakers) */
    ngx_commerce_shm_init_pt        init_state;
    void                           *state_data;
};


#define ngx_commerce_shm_lock(shm)    ngx_shmtx_lock(&(shm)->shpool->mutex)
#define ngx_commerce_shm_unlock(shm)  ngx_shmtx_unlock(&(shm)->shpool->mutex)


extern const char        *ngx_commerce_bounds_s[NGX_COMMERCE_BUCKETS];
extern const ngx_uint_t   ngx_commerce_statuses[NGX_COMMERCE_STATUS_SLOTS];
extern const char        *ngx_commerce_op_names[NGX_COMMERCE_OP_COUNT];
extern const char        *ngx_commerce_out_names[NGX_COMMERCE_OUT_COUNT];
extern const char        *ngx_commerce_redis_bounds_s[NGX_COMMERCE_REDIS_BUCKETS];
extern const char        *ngx_commerce_redis_err_names[
                                                NGX_COMMERCE_REDIS_ERR_COUNT];


char *ngx_commerce_shm_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_commerce_shctx_t *ngx_commerce_shm_state(void);

void ngx_commerce_shm_request(ngx_uint_t slot, ngx_uint_t status,
    ngx_msec_t latency_us);
void ngx_commerce_shm_gw(ngx_uint_t gw, ngx_commerce_op_e op,
    ngx_commerce_outcome_e out, ngx_msec_t latency);
void ngx_commerce_shm_db(ngx_uint_t busy, ngx_uint_t idle,
    ngx_uint_t down, ngx_uint_t queued);
void ngx_commerce_shm_db_error(void);
void ngx_commerce_shm_db_placed(ngx_uint_t queued);
void ngx_commerce_shm_db_waited(ngx_msec_t ms);
ngx_uint_t ngx_commerce_shm_bucket(ngx_msec_t ms);
void ngx_commerce_shm_redis_state(ngx_uint_t up, ngx_uint_t connecting,
    ngx_uint_t down, ngx_uint_t queued);
void ngx_commerce_shm_redis_clear(void);
void ngx_commerce_shm_redis_latency(uint64_t us);
void ngx_commerce_shm_redis_error(ngx_commerce_redis_err_e kind);
void ngx_commerce_shm_redis_reconnect(void);
void ngx_commerce_shm_count(ngx_int_t slot, ngx_atomic_int_t n);
void ngx_commerce_shm_gauge(ngx_int_t slot, ngx_atomic_uint_t v);


#endif /* _NGX_COMMERCE_SHM_H_INCLUDED_ */
