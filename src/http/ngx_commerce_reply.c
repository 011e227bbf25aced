
/*
 * The request's context and every answer of the API: JSON bodies with the
 * headers each carries (X-Request-Id, Retry-After, Idempotent-Replayed,
 * CORS, no-store), errors as {"code","message"}, and the mapping of a
 * database error to one of them.
 */


#include "ngx_commerce_http.h"


#define NGX_COMMERCE_ERROR_BODY_MAX  512


static void ngx_commerce_reply_cleanup(void *data);


static const char  ngx_commerce_reply_internal[] =
    "{\"code\":\"INTERNAL_ERROR\",\"message\":\"internal error\"}";


ngx_commerce_ctx_t *
ngx_commerce_reply_ctx(ngx_http_request_t *r)
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

    cln->handler = ngx_commerce_reply_cleanup;
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
ngx_commerce_reply_cleanup(void *data)
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


/*
 * Every answer of a route goes through here: sent at once, or first
 * stored under the request's Idempotency-Key (ctx->store, set when a key
 * is claimed), in which case NGX_DONE: the store finalizes the request.
 */

ngx_int_t
ngx_commerce_reply(ngx_http_request_t *r, ngx_uint_t status, u_char *body,
    size_t len)
{
    ngx_commerce_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_module);

    if (ctx != NULL && ctx->store != NULL) {
        return ctx->store(r, status, body, len);
    }

    return ngx_commerce_reply_json(r, status, body, len,
                                   status == NGX_HTTP_SERVICE_UNAVAILABLE);
}


ngx_int_t
ngx_commerce_reply_error(ngx_http_request_t *r, ngx_uint_t status,
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
ngx_commerce_reply_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len, ngx_uint_t retry_after)
{
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_str_t                  v;
    ngx_chain_t                out;
    ngx_commerce_ctx_t        *ctx;
    ngx_commerce_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (status < NGX_HTTP_SPECIAL_RESPONSE && mcf->reveal != NULL
        && mcf->reveal(r, &body, &len) != NGX_OK)
    {
        /* sent as it is: the answer may be stored already */
        return ngx_commerce_reply_json(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                   (u_char *) ngx_commerce_reply_internal,
                   sizeof(ngx_commerce_reply_internal) - 1, 0);
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ctx != NULL && ctx->retry_after) {
        v.data = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (v.data == NULL) {
            return NGX_ERROR;
        }

        v.len = ngx_sprintf(v.data, "%ui", ctx->retry_after) - v.data;

        if (ngx_commerce_reply_header(r, "Retry-After", &v) != NGX_OK) {
            return NGX_ERROR;
        }

    } else if (retry_after) {
        ngx_str_set(&v, "1");
        if (ngx_commerce_reply_header(r, "Retry-After", &v) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ctx != NULL && ctx->idem_replayed) {
        ngx_str_set(&v, "true");
        if (ngx_commerce_reply_header(r, "Idempotent-Replayed", &v) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (status == NGX_HTTP_UNAUTHORIZED) {
        ngx_str_set(&v, "Bearer");
        if (ngx_commerce_reply_header(r, "WWW-Authenticate", &v) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ngx_commerce_reply_common(r) != NGX_OK) {
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


/*
 * The headers every answer of a commerce location carries, the module's
 * own and the JSON pages of nginx's errors (ngx_commerce_errpage.c) alike.
 */

ngx_int_t
ngx_commerce_reply_common(ngx_http_request_t *r)
{
    ngx_str_t            v, *origin;
    ngx_commerce_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_module);

    if (ctx != NULL && ctx->request_id.len > 1) {
        if (ngx_commerce_reply_header(r, "X-Request-Id", &ctx->request_id)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    origin = ngx_commerce_reply_cors_origin(r);

    if (origin != NULL) {
        ngx_str_t  vary = ngx_string("Origin");
        ngx_str_t  expose = ngx_string("X-Request-Id, Retry-After, "
                                       "Idempotent-Replayed, RateLimit-Limit, "
                                       "RateLimit-Remaining, RateLimit-Reset");

        if (ngx_commerce_reply_header(r, "Access-Control-Allow-Origin",
                                      origin)
            != NGX_OK
            || ngx_commerce_reply_header(r, "Vary", &vary) != NGX_OK
            || ngx_commerce_reply_header(r, "Access-Control-Expose-Headers",
                                         &expose)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    ngx_str_set(&v, "no-store");
    if (ngx_commerce_reply_header(r, "Cache-Control", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_str_set(&v, "nosniff");

    return ngx_commerce_reply_header(r, "X-Content-Type-Options", &v);
}


ngx_int_t
ngx_commerce_reply_header(ngx_http_request_t *r, const char *name,
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
ngx_commerce_reply_cors_origin(ngx_http_request_t *r)
{
    ngx_str_t                 *o;
    ngx_uint_t                 i;
    ngx_table_elt_t           *h;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (mcf->cors_origins == NULL) {
        return NULL;
    }

    h = ngx_commerce_header_in(r, "Origin", NULL);
    if (h == NULL) {
        return NULL;
    }

    o = mcf->cors_origins->elts;

    for (i = 0; i < mcf->cors_origins->nelts; i++) {
        if (o[i].len == h->value.len
            && ngx_strncmp(o[i].data, h->value.data, o[i].len) == 0)
        {
            return &o[i];
        }
    }

    return NULL;
}


/* OPTIONS: a CORS preflight from a listed origin, else 403 */

ngx_int_t
ngx_commerce_reply_preflight(ngx_http_request_t *r)
{
    ngx_str_t  methods = ngx_string("GET, HEAD, POST, PUT, DELETE");
    ngx_str_t  headers = ngx_string("Authorization, Content-Type, "
                                    "Idempotency-Key");
    ngx_str_t  age = ngx_string("600");

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    if (ngx_commerce_reply_cors_origin(r) == NULL) {
        return ngx_commerce_reply_error(r, NGX_HTTP_FORBIDDEN, "FORBIDDEN",
                                       "origin not allowed");
    }

    if (ngx_commerce_reply_header(r, "Access-Control-Allow-Methods", &methods)
        != NGX_OK
        || ngx_commerce_reply_header(r, "Access-Control-Allow-Headers",
                                   &headers)
           != NGX_OK
        || ngx_commerce_reply_header(r, "Access-Control-Max-Age", &age)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_reply_json(r, NGX_HTTP_NO_CONTENT, NULL, 0, 0);
}



/* 400 INVALID_REQUEST: the client's input failed validation */

ngx_int_t
ngx_commerce_reply_invalid(ngx_http_request_t *r, const char *message)
{
    return ngx_commerce_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                    "INVALID_REQUEST", message);
}


ngx_int_t
ngx_commerce_reply_db_error(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    PGresult *res)
{
    ngx_uint_t   status;
    const char  *code, *message;

    status = ngx_commerce_reply_db_status(r, ctx, res, &code, &message);

    return ngx_commerce_reply_error(r, status, code, message);
}


/*
 * The answer to a database error, for a route that answers later: the
 * status, the code and the message (pointing into res, or static).
 */

ngx_uint_t
ngx_commerce_reply_db_status(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    PGresult *res, const char **code_out, const char **message)
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

            *code_out = code;
            *message = detail ? detail : code;
            return status;
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

        *code_out = "DB_UNAVAILABLE";
        *message = "database unavailable, retry later";
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    ngx_commerce_log(NGX_LOG_ERR, r, ctx, "database error %s: %s",
                     state ? state : "-", PQresultErrorMessage(res));

    *code_out = "INTERNAL_ERROR";
    *message = "internal error";
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}
