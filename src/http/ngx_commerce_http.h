
/*
 * The request pipeline of a commerce_api location, in phase order: the
 * router (one declarative table of routes), authentication and roles
 * (access phase), rate limits, Idempotency-Keys, the content handler that
 * reads the body and runs the route's handler, and the JSON replies.
 * Domains (src/domain/) bring their rows of the route table and their
 * handlers; this layer never names a domain.
 */


#ifndef _NGX_COMMERCE_HTTP_H_INCLUDED_
#define _NGX_COMMERCE_HTTP_H_INCLUDED_


#include "ngx_commerce.h"
#include "ngx_commerce_shm.h"
#include "ngx_commerce_cache.h"
#include "ngx_commerce_pg.h"
#include "cm_account.h"


#define NGX_COMMERCE_ROUTE_SEGS      8
#define NGX_COMMERCE_ERR_LEN         160

/* route flags */
#define NGX_COMMERCE_ROUTE_IDEM      0x01   /* honours Idempotency-Key */
#define NGX_COMMERCE_ROUTE_ACCOUNT   0x02   /* limits may key on account */
#define NGX_COMMERCE_ROUTE_RAW       0x04   /* reads its own body, not JSON */

/* roles of a public route: it takes no token */
#define NGX_COMMERCE_PUBLIC          0


typedef struct ngx_commerce_ctx_s    ngx_commerce_ctx_t;

typedef ngx_int_t (*ngx_commerce_route_pt)(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);

typedef ngx_int_t (*ngx_commerce_store_pt)(ngx_http_request_t *r,
    ngx_uint_t status, u_char *body, size_t len);

/* a route's answer made from its statement's document (ctx->render) */
typedef ngx_int_t (*ngx_commerce_render_pt)(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *doc, size_t len);


/*
 * A row of the route table.  Every reader of the API's shape takes it from
 * here: the router (method and path, `{name}` segments capture positive
 * integers), the access phase (public or token), roles, Idempotency-Key,
 * rate limits and metrics (name), the Allow header, and the check that
 * conf/openapi.json describes exactly these routes (operation_id).  A GET
 * row serves HEAD too.
 */

typedef struct {
    const char                  *method;
    const char                  *path;
    unsigned                     roles;        /* CM_ROLE_* bits */
    unsigned                     flags;
    const char                  *name;
    ngx_commerce_route_pt        handler;
    const char                  *operation_id;

    /* set by the router when the table is added */
    ngx_uint_t                   methods;      /* NGX_HTTP_* bits */
    ngx_uint_t                   slot;         /* of name: metrics, limits */
    ngx_uint_t                   nsegs;
    ngx_str_t                    segs[NGX_COMMERCE_ROUTE_SEGS];
} ngx_commerce_route_t;


#define NGX_COMMERCE_ROUTE(m, p, ro, f, n, h, op)                            \
    { .method = m, .path = p, .roles = ro, .flags = f, .name = n,            \
      .handler = h, .operation_id = op }

#define ngx_commerce_route_end  { .method = NULL }


typedef enum {
    NGX_COMMERCE_IDEM_NONE = 0,
    NGX_COMMERCE_IDEM_CLAIMING,
    NGX_COMMERCE_IDEM_ACTIVE,
    NGX_COMMERCE_IDEM_STORING
} ngx_commerce_idem_e;


/* the state of one API request */

struct ngx_commerce_ctx_s {
    ngx_str_t                    request_id;
    cm_jwt_claims_t              claims;

    ngx_commerce_route_t        *route;        /* NULL: none matched */
    int64_t                      id;           /* the path's captures */
    int64_t                      id2;
    ngx_uint_t                   slot;         /* metrics: the path's name */
    ngx_uint_t                   route_rc;     /* 404/405/400 to answer */
    unsigned                     route_public:1;
    unsigned                     route_matched:1;

    ngx_commerce_idem_e          idem;
    ngx_commerce_store_pt        store;           /* answers go through */
    ngx_str_t                    idem_key;
    u_char                      *idem_body;
    size_t                       idem_len;
    unsigned                     idem_replayed:1;
    unsigned                     idem_atomic:1;   /* work + answer, one tx */
    unsigned                     idem_stored:1;   /* ... and it committed */
    unsigned                     idem_unknown:1;  /* ... connection lost */
    int                          idem_pid;        /* backend that ran it */
    ngx_uint_t                   idem_settles;    /* cm_idem_abandon calls */
    ngx_uint_t                   retry_after;     /* seconds, for 429 */
    ngx_uint_t                   reply_status;
    u_char                      *reply_body;
    size_t                       reply_len;

    unsigned                     authenticated:1;
    unsigned                     waiting:1;
    unsigned                     gone:1;          /* request cleaned up */

    ngx_uint_t                   success_status;

    ngx_commerce_pg_query_t      query;
    /* a route's look at its query's outcome, before the answer is made */
    ngx_commerce_pg_handler_pt   result;
    /* the answer made from the document (NULL: the document itself) */
    ngx_commerce_render_pt       render;
    /* a route's own state (the cache's, ngx_commerce_cached.c) */
    void                        *domain;
    /* an order's sealed shipping address for a card order (the order
     * domain's ngx_commerce_order_part.c), or NULL */
    char                        *shipping;
    ngx_http_request_t          *request;

    void                        *errpage;   /* ngx_commerce_errpage.c */
    void                        *body;      /* ngx_commerce_body.c */
};


#define ngx_commerce_log(level, r, ctx, fmt, ...)                            \
    ngx_log_error(level, (r)->connection->log, 0,                            \
                  "commerce: [%V] " fmt, &(ctx)->request_id, ##__VA_ARGS__)


/* router (ngx_commerce_router.c) */
ngx_int_t ngx_commerce_router_add(ngx_conf_t *cf,
    ngx_commerce_route_t *table);
ngx_int_t ngx_commerce_router_match(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx);
ngx_int_t ngx_commerce_router_refuse(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx);
ngx_uint_t ngx_commerce_router_allowed(ngx_commerce_ctx_t *ctx);
ngx_uint_t ngx_commerce_router_slot(ngx_commerce_main_conf_t *mcf,
    ngx_str_t *name, ngx_uint_t *flags);
const char *ngx_commerce_router_slot_name(ngx_commerce_main_conf_t *mcf,
    ngx_uint_t slot);

/* request context and replies (ngx_commerce_reply.c) */
ngx_commerce_ctx_t *ngx_commerce_reply_ctx(ngx_http_request_t *r);
ngx_int_t ngx_commerce_reply(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len);
ngx_int_t ngx_commerce_reply_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len, ngx_uint_t retry_after);
ngx_int_t ngx_commerce_reply_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message);
ngx_int_t ngx_commerce_reply_invalid(ngx_http_request_t *r,
    const char *message);
ngx_int_t ngx_commerce_reply_db_error(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, PGresult *res);
ngx_uint_t ngx_commerce_reply_db_status(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, PGresult *res, const char **code,
    const char **message);
ngx_int_t ngx_commerce_reply_common(ngx_http_request_t *r);
ngx_int_t ngx_commerce_reply_header(ngx_http_request_t *r,
    const char *name, ngx_str_t *value);
ngx_str_t *ngx_commerce_reply_cors_origin(ngx_http_request_t *r);
ngx_int_t ngx_commerce_reply_preflight(ngx_http_request_t *r);

/* the content handler (ngx_commerce_handler.c) */
ngx_int_t ngx_commerce_handler(ngx_http_request_t *r);
ngx_int_t ngx_commerce_handler_query(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx);
ngx_int_t ngx_commerce_handler_call(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, ngx_commerce_stmt_t *stmt, ngx_uint_t status,
    int n, ...);
ngx_int_t ngx_commerce_handler_step(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, ngx_commerce_stmt_t *stmt,
    ngx_commerce_pg_handler_pt handler, void *data, int n, va_list args);
ngx_int_t ngx_commerce_handler_log(ngx_http_request_t *r);
ngx_int_t ngx_commerce_handler_arg(ngx_http_request_t *r, const char *name,
    ngx_str_t *value);
const char *ngx_commerce_handler_page(ngx_http_request_t *r, int64_t *store,
    int64_t *page, int64_t *size);

/* the response cache's classes (each invalidated as a whole) */
#define NGX_COMMERCE_CACHE_PRODUCT   0    /* one product */
#define NGX_COMMERCE_CACHE_LIST      1    /* the product list pages */
#define NGX_COMMERCE_CACHE_STATS     2    /* best sellers: TTL, stale */

/* a route's answer through the response cache (ngx_commerce_cached.c) */
ngx_int_t ngx_commerce_cached(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    ngx_uint_t klass, ngx_str_t *key);
ngx_int_t ngx_commerce_cached_init(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);
/* what changed, told by the invalidation channel (the listener) */
void ngx_commerce_cached_invalidate(ngx_str_t *key);
void ngx_commerce_cached_invalidate_class(ngx_uint_t klass);
void ngx_commerce_cached_channel(ngx_commerce_listen_e state);

/* authentication, access phase (ngx_commerce_auth.c) */
ngx_int_t ngx_commerce_auth_handler(ngx_http_request_t *r);
ngx_int_t ngx_commerce_auth_init_worker(ngx_cycle_t *cycle);
ngx_int_t ngx_commerce_auth_conf(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);

/* rate limits (ngx_commerce_limit.c) */
char *ngx_commerce_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_commerce_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_commerce_limit_postconf(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);
ngx_int_t ngx_commerce_limit_check(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx);
ngx_int_t ngx_commerce_limit_account(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, ngx_str_t *account);
u_char *ngx_commerce_limit_metrics(u_char *p, u_char *last);

/* Idempotency-Key (ngx_commerce_idem.c) */
ngx_int_t ngx_commerce_idem_init(ngx_conf_t *cf);
void ngx_commerce_idem_watch_client(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx);
ngx_int_t ngx_commerce_idem_atomic(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx);
ngx_int_t ngx_commerce_idem_start(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);


/*
 * A request's work on a thread pool (ngx_commerce_task.c): work(data, log)
 * runs in a thread and may block, done(t) back in the worker answers
 * (NGX_DONE: it goes on).  r, ctx and data are set by the owner once.
 */
typedef struct ngx_commerce_task_s  ngx_commerce_task_t;

typedef void (*ngx_commerce_task_work_pt)(void *data, ngx_log_t *log);
typedef ngx_int_t (*ngx_commerce_task_done_pt)(ngx_commerce_task_t *t);

struct ngx_commerce_task_s {
    ngx_http_request_t          *r;
    ngx_commerce_ctx_t          *ctx;
    void                        *data;
    ngx_commerce_task_done_pt    done;
    ngx_event_t                  hold;     /* holds the worker meanwhile */
};

ngx_int_t ngx_commerce_task_post(ngx_commerce_task_t *t,
    ngx_thread_pool_t *tp, ngx_commerce_task_work_pt work,
    ngx_commerce_task_done_pt done, const char *busy);

/*
 * A body the route reads itself (NGX_COMMERCE_ROUTE_RAW, ngx_commerce_body.c):
 * into nginx's temporary file, at most max bytes (a larger Content-Length
 * refused before reading, a chunked body as soon as it passes: 413 with
 * the route's too_large JSON), the whole of it within timeout (else 408
 * REQUEST_TIMEOUT); done() then owns the request.
 */
typedef void (*ngx_commerce_body_pt)(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx);

ngx_int_t ngx_commerce_body_read(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, off_t max, ngx_msec_t timeout,
    ngx_str_t *too_large, ngx_commerce_body_pt done);
ngx_int_t ngx_commerce_body_init(ngx_conf_t *cf);

/* JSON errors in place of nginx's error pages (ngx_commerce_errpage.c) */
ngx_int_t ngx_commerce_errpage_own(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body);
char *ngx_commerce_errpage_merge(ngx_conf_t *cf,
    ngx_commerce_loc_conf_t *prev, ngx_commerce_loc_conf_t *conf);
ngx_int_t ngx_commerce_errpage_init(ngx_conf_t *cf);

/* Prometheus text (ngx_commerce_metrics.c) */
ngx_int_t ngx_commerce_metrics_handler(ngx_http_request_t *r);

#endif /* _NGX_COMMERCE_HTTP_H_INCLUDED_ */
