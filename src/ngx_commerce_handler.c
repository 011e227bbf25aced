
/*
 * The content handler of a commerce_api location: request context, body
 * reading with the API's own size and media-type rules, JSON responses and
 * the mapping of query outcomes to HTTP.
 */


#include "ngx_commerce.h"


#define NGX_COMMERCE_ERROR_BODY_MAX  512


typedef struct {
    const char  *code;
    ngx_uint_t   status;
} ngx_commerce_error_map_t;


static void ngx_commerce_cleanup(void *data);
static void ngx_commerce_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_commerce_json_media_type(ngx_http_request_t *r);
static ngx_int_t ngx_commerce_add_header(ngx_http_request_t *r,
    const char *name, ngx_str_t *value);


/* business error codes raised by sql/ functions, and their HTTP status */
static ngx_commerce_error_map_t  ngx_commerce_errors[] = {
    { "INVALID_REQUEST",          NGX_HTTP_BAD_REQUEST },
    { "BALANCE_LIMIT_EXCEEDED",   NGX_HTTP_BAD_REQUEST },
    { "PRODUCT_NOT_FOUND",        NGX_HTTP_NOT_FOUND },
    { "ORDER_NOT_FOUND",          NGX_HTTP_NOT_FOUND },
    { "USER_NOT_FOUND",           NGX_HTTP_NOT_FOUND },
    { "OUT_OF_STOCK",             NGX_HTTP_CONFLICT },
    { "INSUFFICIENT_BALANCE",     NGX_HTTP_CONFLICT },
    { "ORDER_NOT_PAYABLE",        NGX_HTTP_CONFLICT },
    { "PAYMENT_NOT_FOUND",        NGX_HTTP_NOT_FOUND },
    { "PAYMENT_STATE_CONFLICT",   NGX_HTTP_CONFLICT },
    { "IDEMPOTENCY_KEY_REUSED",   422 },
    { "IDEMPOTENCY_IN_FLIGHT",    NGX_HTTP_CONFLICT },
    { "PG_UNAVAILABLE",           NGX_HTTP_SERVICE_UNAVAILABLE },
    { "RATE_LIMITED",             NGX_HTTP_TOO_MANY_REQUESTS },
    { "EMAIL_TAKEN",              NGX_HTTP_CONFLICT },
    { NULL, 0 }
};


ngx_commerce_ctx_t *
ngx_commerce_get_ctx(ngx_http_request_t *r)
{
    ngx_commerce_ctx_t         *ctx;
    ngx_http_cleanup_t         *cln;
    ngx_http_variable_value_t  *vv;
    ngx_commerce_main_conf_t   *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_module);
    if (ctx != NULL) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_commerce_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_commerce_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ngx_str_set(&ctx->request_id, "-");

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    vv = ngx_http_get_indexed_variable(r, mcf->request_id_index);
    if (vv != NULL && !vv->not_found) {
        ctx->request_id.data = vv->data;
        ctx->request_id.len = vv->len;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_commerce_module);

    return ctx;
}


/* the request is going away (finished, or the client aborted) */

static void
ngx_commerce_cleanup(void *data)
{
    ngx_commerce_ctx_t  *ctx = data;

    ctx->gone = 1;

    if (ctx->waiting) {
        ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                      "commerce: [%V] client went away during the query",
                      &ctx->request_id);
        ngx_commerce_pg_cancel(&ctx->query);
        ctx->waiting = 0;
    }
}


ngx_int_t
ngx_commerce_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_commerce_ctx_t        *ctx;
    ngx_commerce_main_conf_t  *mcf;

    ctx = ngx_commerce_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method == NGX_HTTP_OPTIONS) {
        return ngx_commerce_cors_preflight(r);
    }

    if (ngx_commerce_api_route(r, ctx, &rc) != NGX_OK) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }

        return rc;
    }

    if (!ctx->authenticated && !ngx_commerce_api_public(ctx->route)) {
        /* only reachable as a subrequest or with a misordered phase */
        return ngx_commerce_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                       "UNAUTHORIZED",
                                       "missing bearer token");
    }

    /* the route table: which roles may call it */
    if (ngx_commerce_api_allowed(ctx) != NGX_OK) {
        ngx_commerce_log(NGX_LOG_INFO, r, ctx, "role %s may not call %s",
                         ctx->claims.role,
                         ngx_commerce_route_name(ctx->route));

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }

        return ngx_commerce_send_error(r, NGX_HTTP_FORBIDDEN, "FORBIDDEN",
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

    if (!(r->method & (NGX_HTTP_POST|NGX_HTTP_PUT))) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        rc = ngx_commerce_api_dispatch(r, ctx, NULL, 0);

        if (rc == NGX_DONE) {
            r->main->count++;
        }

        return rc;
    }

    if (ngx_commerce_json_media_type(r) != NGX_OK) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }

        return ngx_commerce_send_error(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                       "UNSUPPORTED_MEDIA_TYPE",
                                       "Content-Type must be "
                                       "application/json");
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (r->headers_in.content_length_n > (off_t) mcf->body_max) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }

        return ngx_commerce_send_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                       "PAYLOAD_TOO_LARGE",
                                       "request body is too large");
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_commerce_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_commerce_body_handler(ngx_http_request_t *r)
{
    u_char                    *body, *p;
    size_t                     len;
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_chain_t               *cl;
    ngx_commerce_ctx_t        *ctx;
    ngx_commerce_main_conf_t  *mcf;

    ctx = ngx_commerce_get_ctx(r);
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
        rc = ngx_commerce_send_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
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

    rc = ngx_commerce_api_dispatch(r, ctx, body, len);

    if (rc == NGX_DONE) {
        return;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_commerce_json_media_type(ngx_http_request_t *r)
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
 * ngx_commerce_query_done() later, which finalizes the request once.
 */

ngx_int_t
ngx_commerce_run_query(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx)
{
    ngx_int_t                  rc;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    ctx->query.log = r->connection->log;
    ctx->query.data = ctx;
    ctx->query.handler = ngx_commerce_query_done;
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
                         ngx_commerce_statements[ctx->query.stmt].name,
                         rc == NGX_BUSY ? "queue full" : "database down");

        return ngx_commerce_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "DB_UNAVAILABLE",
                                       "database unavailable, retry later");
    }

    ctx->waiting = 1;

    ngx_commerce_watch_client(r, ctx);

    return NGX_DONE;
}


void
ngx_commerce_query_done(ngx_commerce_pg_query_t *q, ngx_int_t rc,
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

    if (rc != NGX_OK || res == NULL) {
        ngx_commerce_log(NGX_LOG_WARN, r, ctx, "\"%s\" failed: %s",
                         ngx_commerce_statements[q->stmt].name,
                         rc == NGX_BUSY ? "queue timeout"
                                        : "database connection lost");

        if (rc == NGX_ERROR && ctx->idem_atomic) {
            /* sent, and maybe committed: settled before the key is freed */
            ctx->idem_unknown = 1;
            ctx->idem_pid = q->backend_pid;
        }

        rc = ngx_commerce_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "DB_UNAVAILABLE",
                                     "database unavailable, retry later");
        goto done;
    }

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = ngx_commerce_send_db_error(r, ctx, res);
        goto done;
    }

    if (PQntuples(res) != 1 || PQnfields(res) != 1 || PQgetisnull(res, 0, 0))
    {
        ngx_commerce_log(NGX_LOG_ERR, r, ctx, "\"%s\" returned no document",
                         ngx_commerce_statements[q->stmt].name);
        rc = ngx_commerce_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
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

    rc = ngx_commerce_reply(r, ctx->success_status, body, len);

done:

    if (rc != NGX_DONE) {
        /* NGX_DONE: the answer is being stored under its Idempotency-Key */
        ngx_http_finalize_request(r, rc);
    }

    ngx_http_run_posted_requests(c);
}


ngx_int_t
ngx_commerce_send_db_error(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    PGresult *res)
{
    char        *state, *code, *detail;
    ngx_uint_t   status;

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    code = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    if (state != NULL && code != NULL
        && ngx_strcmp(state, NGX_COMMERCE_SQLSTATE_BUSINESS) == 0)
    {
        status = ngx_commerce_error_status(code);

        if (status != 0) {
            detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);

            ngx_commerce_log(NGX_LOG_INFO, r, ctx, "%s", code);

            return ngx_commerce_send_error(r, status, code,
                                           detail ? detail : code);
        }
    }

    if (state != NULL
        && (ngx_strncmp(state, "08", 2) == 0        /* connection */
            || ngx_strncmp(state, "53", 2) == 0     /* resources */
            || ngx_strncmp(state, "57", 2) == 0     /* timeout, shutdown */
            || ngx_strcmp(state, "40001") == 0      /* retries exhausted */
            || ngx_strcmp(state, "40P01") == 0))
    {
        ngx_commerce_log(NGX_LOG_WARN, r, ctx, "database error %s: %s",
                         state, PQresultErrorMessage(res));

        return ngx_commerce_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "DB_UNAVAILABLE",
                                       "database unavailable, retry later");
    }

    ngx_commerce_log(NGX_LOG_ERR, r, ctx, "database error %s: %s",
                     state ? state : "-", PQresultErrorMessage(res));

    return ngx_commerce_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "INTERNAL_ERROR", "internal error");
}


ngx_uint_t
ngx_commerce_error_status(const char *code)
{
    ngx_commerce_error_map_t  *e;

    for (e = ngx_commerce_errors; e->code != NULL; e++) {
        if (ngx_strcmp(e->code, code) == 0) {
            return e->status;
        }
    }

    return 0;
}


ngx_int_t
ngx_commerce_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    u_char  *body, *p;
    size_t   n;

    body = ngx_pnalloc(r->pool, NGX_COMMERCE_ERROR_BODY_MAX);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* codes are ours (UPPER_SNAKE); messages may come from the database */
    p = ngx_slprintf(body, body + NGX_COMMERCE_ERROR_BODY_MAX - 3,
                     "{\"code\":\"%s\",\"message\":\"", code);

    n = cm_json_escape((char *) p, body + NGX_COMMERCE_ERROR_BODY_MAX - 3 - p,
                       (const unsigned char *) message, ngx_strlen(message));
    p += n;

    *p++ = '"';
    *p++ = '}';

    return ngx_commerce_reply(r, status, body, p - body);
}


ngx_int_t
ngx_commerce_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len, ngx_uint_t retry_after)
{
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_str_t                  v, *origin;
    ngx_chain_t                out;
    ngx_commerce_ctx_t        *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_module);

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ctx != NULL && ctx->request_id.len > 1) {
        if (ngx_commerce_add_header(r, "X-Request-Id", &ctx->request_id)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ctx != NULL && ctx->retry_after) {
        v.data = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (v.data == NULL) {
            return NGX_ERROR;
        }

        v.len = ngx_sprintf(v.data, "%ui", ctx->retry_after) - v.data;

        if (ngx_commerce_add_header(r, "Retry-After", &v) != NGX_OK) {
            return NGX_ERROR;
        }

    } else if (retry_after) {
        ngx_str_set(&v, "1");
        if (ngx_commerce_add_header(r, "Retry-After", &v) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ctx != NULL && ctx->idem_replayed) {
        ngx_str_set(&v, "true");
        if (ngx_commerce_add_header(r, "Idempotent-Replayed", &v) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    origin = ngx_commerce_cors_origin(r);

    if (origin != NULL) {
        ngx_str_t  vary = ngx_string("Origin");
        ngx_str_t  expose = ngx_string("X-Request-Id, Retry-After, "
                                       "Idempotent-Replayed, RateLimit-Limit, "
                                       "RateLimit-Remaining, RateLimit-Reset");

        if (ngx_commerce_add_header(r, "Access-Control-Allow-Origin", origin)
            != NGX_OK
            || ngx_commerce_add_header(r, "Vary", &vary) != NGX_OK
            || ngx_commerce_add_header(r, "Access-Control-Expose-Headers",
                                       &expose)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (status == NGX_HTTP_UNAUTHORIZED) {
        ngx_str_set(&v, "Bearer");
        if (ngx_commerce_add_header(r, "WWW-Authenticate", &v) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    ngx_str_set(&v, "no-store");
    if (ngx_commerce_add_header(r, "Cache-Control", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_str_set(&v, "nosniff");
    if (ngx_commerce_add_header(r, "X-Content-Type-Options", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    if (r->method == NGX_HTTP_HEAD || len == 0) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body;
    b->last = body + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_int_t
ngx_commerce_add_header(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value = *value;

    return NGX_OK;
}


/*
 * CORS, off unless commerce_cors_origin lists origins: the request's
 * Origin when it is one of them (compared exactly), else NULL.
 */

ngx_str_t *
ngx_commerce_cors_origin(ngx_http_request_t *r)
{
    ngx_str_t                 *o;
    ngx_uint_t                 i, j;
    ngx_list_part_t           *part;
    ngx_table_elt_t           *h;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (mcf->cors_origins == NULL) {
        return NULL;
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != sizeof("Origin") - 1
            || ngx_strncasecmp(h[i].key.data, (u_char *) "Origin",
                               sizeof("Origin") - 1) != 0)
        {
            continue;
        }

        o = mcf->cors_origins->elts;

        for (j = 0; j < mcf->cors_origins->nelts; j++) {
            if (o[j].len == h[i].value.len
                && ngx_strncmp(o[j].data, h[i].value.data, o[j].len) == 0)
            {
                return &o[j];
            }
        }

        return NULL;
    }
}


/* OPTIONS: a CORS preflight from a listed origin, else 403 */

ngx_int_t
ngx_commerce_cors_preflight(ngx_http_request_t *r)
{
    ngx_str_t  methods = ngx_string("GET, HEAD, POST, PUT, DELETE");
    ngx_str_t  headers = ngx_string("Authorization, Content-Type, "
                                    "Idempotency-Key");
    ngx_str_t  age = ngx_string("600");

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    if (ngx_commerce_cors_origin(r) == NULL) {
        return ngx_commerce_send_error(r, NGX_HTTP_FORBIDDEN, "FORBIDDEN",
                                       "origin not allowed");
    }

    if (ngx_commerce_add_header(r, "Access-Control-Allow-Methods", &methods)
        != NGX_OK
        || ngx_commerce_add_header(r, "Access-Control-Allow-Headers",
                                   &headers)
           != NGX_OK
        || ngx_commerce_add_header(r, "Access-Control-Max-Age", &age)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_send_json(r, NGX_HTTP_NO_CONTENT, NULL, 0, 0);
}


/* a decimal text parameter for a prepared statement, from the pool */

char *
ngx_commerce_param_int(ngx_pool_t *pool, int64_t v)
{
    u_char  *p;

    p = ngx_pnalloc(pool, NGX_INT64_LEN + 1);
    if (p == NULL) {
        return NULL;
    }

    *ngx_sprintf(p, "%L", v) = '\0';

    return (char *) p;
}
