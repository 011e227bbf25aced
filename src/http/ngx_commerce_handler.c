
/*
 * The content handler of a commerce_api location: the matched route's
 * checks (roles, limits), the body read with the API's own size and
 * media-type rules, the route's handler (behind its Idempotency-Key when
 * it honours one), a query's outcome mapped to HTTP, and the metrics of
 * every request in the log phase.
 */


#include "ngx_commerce_http.h"


static ngx_int_t ngx_commerce_handler_dispatch(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static void ngx_commerce_handler_body(ngx_http_request_t *r);
static ngx_int_t ngx_commerce_handler_json_type(ngx_http_request_t *r);
static void ngx_commerce_handler_done(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);


ngx_int_t
ngx_commerce_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_commerce_ctx_t        *ctx;
    ngx_commerce_main_conf_t  *mcf;

    ctx = ngx_commerce_reply_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method == NGX_HTTP_OPTIONS) {
        return ngx_commerce_reply_preflight(r);
    }

    if (!ctx->route_matched) {
        /* the access phase did not run (a subrequest, or "satisfy any") */
        (void) ngx_commerce_router_match(r, ctx);
    }

    if (ctx->route_rc != 0) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }

        return ngx_commerce_router_refuse(r, ctx);
    }

    if (!ctx->authenticated && ctx->route->roles != NGX_COMMERCE_PUBLIC) {
        /* only reachable as a subrequest or with a misordered phase */
        return ngx_commerce_reply_error(r, NGX_HTTP_UNAUTHORIZED,
                                        "UNAUTHORIZED",
                                        "missing bearer token");
    }

    /* the route table: which roles may call it */
    if (!ngx_commerce_router_allowed(ctx)) {
        ngx_commerce_log(NGX_LOG_INFO, r, ctx, "role %s may not call %s",
                         ctx->claims.role, ctx->route->name);

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }

        return ngx_commerce_reply_error(r, NGX_HTTP_FORBIDDEN, "FORBIDDEN",
                                        "not allowed for this role");
    }

    /* rate limits before the body is read: a refusal costs nothing */
    rc = ngx_commerce_limit_check(r, ctx);

    if (rc != NGX_DECLINED) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }

        return rc;
    }

    if (ctx->route->flags & NGX_COMMERCE_ROUTE_RAW) {
        /* the route reads its body itself (ngx_commerce_body_read) */
        ctx->success_status = NGX_HTTP_OK;
        return ctx->route->handler(r, ctx, NULL, 0);
    }

    if (!(r->method & (NGX_HTTP_POST|NGX_HTTP_PUT|NGX_HTTP_PATCH))) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        rc = ngx_commerce_handler_dispatch(r, ctx, NULL, 0);

        if (rc == NGX_DONE) {
            r->main->count++;
        }

        return rc;
    }

    if (ngx_commerce_handler_json_type(r) != NGX_OK) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }

        return ngx_commerce_reply_error(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                       "UNSUPPORTED_MEDIA_TYPE",
                                       "Content-Type must be "
                                       "application/json");
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (r->headers_in.content_length_n > (off_t) mcf->body_max) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }

        return ngx_commerce_reply_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                       "PAYLOAD_TOO_LARGE",
                                       "request body is too large");
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_commerce_handler_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_commerce_handler_body(ngx_http_request_t *r)
{
    u_char                    *body, *p;
    size_t                     len;
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_chain_t               *cl;
    ngx_commerce_ctx_t        *ctx;
    ngx_commerce_main_conf_t  *mcf;

    ctx = ngx_commerce_reply_ctx(r);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (ctx == NULL || r->request_body == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file || r->request_body->temp_file) {
            /* only a chunked body larger than client_body_buffer_size */
            len = mcf->body_max + 1;
            break;
        }

        len += b->last - b->pos;
    }

    if (len > mcf->body_max) {
        rc = ngx_commerce_reply_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                     "PAYLOAD_TOO_LARGE",
                                     "request body is too large");
        ngx_http_finalize_request(r, rc);
        return;
    }

    body = NULL;

    if (len) {
        cl = r->request_body->bufs;

        if (cl->next == NULL) {
            body = cl->buf->pos;

        } else {
            body = ngx_pnalloc(r->pool, len);
            if (body == NULL) {
                ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }

            p = body;
            for ( /* void */ ; cl; cl = cl->next) {
                if (cl->buf->last == cl->buf->pos) {
                    /* the empty last buffer of a chunked body */
                    continue;
                }

                p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
            }
        }
    }

    rc = ngx_commerce_handler_dispatch(r, ctx, body, len);

    if (rc == NGX_DONE) {
        return;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_commerce_handler_json_type(ngx_http_request_t *r)
{
    u_char     *p;
    size_t      len;
    ngx_str_t  *ct;

    if (r->headers_in.content_type == NULL) {
        return NGX_DECLINED;
    }

    ct = &r->headers_in.content_type->value;
    len = sizeof("application/json") - 1;

    if (ct->len < len
        || ngx_strncasecmp(ct->data, (u_char *) "application/json", len) != 0)
    {
        return NGX_DECLINED;
    }

    p = ct->data + len;

    if (ct->len == len || *p == ';' || *p == ' ' || *p == '\t') {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/*
 * Submit the request's query; on NGX_DONE the pool calls
 * ngx_commerce_handler_done() later, which finalizes the request once.
 */

ngx_int_t
ngx_commerce_handler_query(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx)
{
    ngx_int_t                  rc;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    ctx->query.log = r->connection->log;
    ctx->query.data = ctx;
    ctx->query.handler = ngx_commerce_handler_done;
    ctx->query.retries = 0;

    if (ctx->idem == NGX_COMMERCE_IDEM_ACTIVE
        && ngx_commerce_idem_atomic(r, ctx) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_commerce_pg_submit(mcf->pool, &ctx->query);

    if (rc != NGX_OK) {
        ngx_commerce_log(NGX_LOG_WARN, r, ctx,
                         "no database connection for \"%s\" (%s)",
                         ctx->query.stmt->name,
                         rc == NGX_BUSY ? "queue full" : "database down");

        return ngx_commerce_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "DB_UNAVAILABLE",
                                       "database unavailable, retry later");
    }

    ctx->waiting = 1;

    ngx_commerce_idem_watch_client(r, ctx);

    return NGX_DONE;
}


/*
 * A route's statement with its n parameters (NUL-terminated strings; a
 * NULL one is SQL NULL) answered with status on success: the common
 * case of ngx_commerce_handler_query().
 */

ngx_int_t
ngx_commerce_handler_call(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    ngx_commerce_stmt_t *stmt, ngx_uint_t status, int n, ...)
{
    int      i;
    va_list  args;

    if (n > NGX_COMMERCE_PG_PARAMS_MAX) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->success_status = status;
    ctx->query.stmt = stmt;
    ctx->query.nparams = n;

    va_start(args, n);
    for (i = 0; i < n; i++) {
        ctx->query.params[i] = va_arg(args, const char *);
    }
    va_end(args);

    return ngx_commerce_handler_query(r, ctx);
}


static void
ngx_commerce_handler_done(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    char                *value;
    size_t               len;
    u_char              *body;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;
    ngx_commerce_ctx_t  *ctx;

    ctx = q->data;
    r = ctx->request;
    c = r->connection;

    ctx->waiting = 0;

    ngx_http_set_log_request(c->log, r);

    if (ctx->result != NULL) {
        /* the route's own look at the outcome before it is answered */
        ctx->result(q, rc, res);
    }

    if (rc != NGX_OK || res == NULL) {
        ngx_commerce_log(NGX_LOG_WARN, r, ctx, "\"%s\" failed: %s",
                         q->stmt->name,
                         rc == NGX_BUSY ? "queue timeout"
                                        : "database connection lost");

        if (rc == NGX_ERROR && ctx->idem_atomic) {
            /* sent, and maybe committed: settled before the key is freed */
            ctx->idem_unknown = 1;
            ctx->idem_pid = q->backend_pid;
        }

        rc = ngx_commerce_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "DB_UNAVAILABLE",
                                     "database unavailable, retry later");
        goto done;
    }

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = ngx_commerce_reply_db_error(r, ctx, res);
        goto done;
    }

    if (PQntuples(res) != 1 || PQnfields(res) != 1 || PQgetisnull(res, 0, 0))
    {
        ngx_commerce_log(NGX_LOG_ERR, r, ctx, "\"%s\" returned no document",
                         q->stmt->name);
        rc = ngx_commerce_reply_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                     "INTERNAL_ERROR", "internal error");
        goto done;
    }

    /* the answer is stored under its Idempotency-Key already, committed */
    ctx->idem_stored = ctx->idem_atomic;

    value = PQgetvalue(res, 0, 0);
    len = PQgetlength(res, 0, 0);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto done;
    }

    ngx_memcpy(body, value, len);

    if (ctx->render != NULL) {
        rc = ctx->render(r, ctx, body, len);

    } else {
        rc = ngx_commerce_reply(r, ctx->success_status, body, len);
    }

done:

    if (rc != NGX_DONE) {
        /* NGX_DONE: the answer is being stored under its Idempotency-Key */
        ngx_http_finalize_request(r, rc);
    }

    ngx_http_run_posted_requests(c);
}


/*
 * A route's own step: stmt with n parameters (args), its outcome to
 * handler with q->data = data.  NGX_OK: submitted (ctx->waiting);
 * NGX_DECLINED: no connection (logged), nothing submitted: the caller
 * answers.  Integer parameters made in ctx->query before are kept.
 */

ngx_int_t
ngx_commerce_handler_step(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    ngx_commerce_stmt_t *stmt, ngx_commerce_pg_handler_pt handler,
    void *data, int n, va_list args)
{
    int                        i;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    ngx_commerce_pg_reset(&ctx->query);
    ctx->query.stmt = stmt;
    ctx->query.nparams = n;
    ctx->query.log = r->connection->log;
    ctx->query.data = data;
    ctx->query.handler = handler;

    for (i = 0; i < n; i++) {
        ctx->query.params[i] = va_arg(args, const char *);
    }

    if (ngx_commerce_pg_submit(mcf->pool, &ctx->query) != NGX_OK) {
        ngx_commerce_log(NGX_LOG_WARN, r, ctx,
                         "no database connection for \"%s\"", stmt->name);
        return NGX_DECLINED;
    }

    ctx->waiting = 1;

    return NGX_OK;
}


/* the route's handler, behind its Idempotency-Key when it honours one */

static ngx_int_t
ngx_commerce_handler_dispatch(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ngx_int_t  rc;

    ctx->success_status = NGX_HTTP_OK;

    if (ctx->route->flags & NGX_COMMERCE_ROUTE_IDEM) {
        rc = ngx_commerce_idem_start(r, ctx, body, len);

        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    return ctx->route->handler(r, ctx, body, len);
}


/*
 * A query argument that may be given once: NGX_OK with its raw value
 * (empty for "name=" or a bare "name"), NGX_DECLINED when it is absent,
 * NGX_ERROR when it is repeated.  Names match exactly (ngx_http_arg()
 * ignores case and takes the first of several).
 */

ngx_int_t
ngx_commerce_handler_arg(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    u_char      *p, *end, *key, *eq;
    size_t       len;
    ngx_uint_t   found;

    len = ngx_strlen(name);
    found = 0;
    p = r->args.data;
    end = r->args.data + r->args.len;

    while (p < end) {
        key = p;

        while (p < end && *p != '&') {
            p++;
        }

        eq = ngx_strlchr(key, p, '=');
        if (eq == NULL) {
            eq = p;
        }

        if ((size_t) (eq - key) == len
            && ngx_strncmp(key, name, len) == 0)
        {
            if (found) {
                return NGX_ERROR;
            }

            found = 1;
            value->data = (eq < p) ? eq + 1 : eq;
            value->len = p - value->data;
        }

        if (p < end) {
            p++;
        }
    }

    return found ? NGX_OK : NGX_DECLINED;
}


/* log phase: route, status and latency of every API request */

ngx_int_t
ngx_commerce_handler_log(ngx_http_request_t *r)
{
    ngx_time_t               *tp;
    ngx_msec_int_t            ms;
    ngx_commerce_ctx_t       *ctx;
    ngx_commerce_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_module);
    if (!lcf->api || r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_module);

    tp = ngx_timeofday();
    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));
    ms = ngx_max(ms, 0);

    ngx_commerce_shm_request((ctx && ctx->route) ? ctx->route->slot : 0,
                                 r->headers_out.status,
                                 (ngx_msec_t) ms * 1000);

    return NGX_OK;
}


/*
 * The paging of a store's list: "storeId" (a positive integer, *store 0
 * when absent), "page" (0..10000, default 0) and "size" (1..100, default
 * 20) of the query.  -> NULL, or why the request is refused (400).
 */

const char *
ngx_commerce_handler_page(ngx_http_request_t *r, int64_t *store,
    int64_t *page, int64_t *size)
{
    ngx_str_t  v;

    *store = 0;
    *page = 0;
    *size = 20;

    if (ngx_http_arg(r, (u_char *) "storeId", 7, &v) == NGX_OK
        && cm_parse_int64(v.data, v.len, 1, INT64_MAX, store) != 0)
    {
        return "storeId must be a positive integer";
    }

    if (ngx_http_arg(r, (u_char *) "page", 4, &v) == NGX_OK
        && cm_parse_int64(v.data, v.len, 0, 10000, page) != 0)
    {
        return "page must be an integer between 0 and 10000";
    }

    if (ngx_http_arg(r, (u_char *) "size", 4, &v) == NGX_OK
        && cm_parse_int64(v.data, v.len, 1, 100, size) != 0)
    {
        return "size must be an integer between 1 and 100";
    }

    return NULL;
}
