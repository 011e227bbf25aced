
/*
 * JSON errors for the errors nginx makes itself (commerce_json_errors).
 *
 * nginx answers many errors without a content handler: a bad request line,
 * a URI or header over large_client_header_buffers, a body over
 * client_max_body_size, limit_req, a failed proxy_pass.  All of them go
 * through ngx_http_special_response_handler(), which sets r->err_status and
 * sends one of its HTML pages.  In a commerce location (see the merge
 * below) a header filter replaces that page's headers (status, JSON type
 * and length, X-Request-Id, the API's cache and CORS headers) and a body
 * filter sends {"code","message"} in place of the page.
 *
 * What is left alone:
 *  - the module's own replies: they never set r->err_status;
 *  - the operator's error_page: error_page redirects the request (to a URI
 *    or a named location), so the location phases run again with
 *    r->err_status already set, which happens in no other case.  A rewrite
 *    phase handler marks such a request, and its answer goes out as the
 *    operator configured it: error_page wins.  (r->internal cannot tell:
 *    rewrite sets it too.)
 *  - subrequests (their headers never reach the client);
 *  - anything below 400 (error_page redirects, 201/204 specials).
 *
 * 408: nginx sends no response at all when client_body_timeout expires (it
 * closes the connection).  In a commerce location the wait for the body is
 * watched (a request body filter wraps nginx's body reader while it reads)
 * and a timeout is answered through the special response handler like any
 * other error: 408 REQUEST_TIMEOUT, then the connection is closed.
 */


#include "ngx_commerce_http.h"


#define NGX_COMMERCE_HTTP_HEADERS_TOO_LARGE  431


typedef struct {
    ngx_uint_t                   status;
    ngx_str_t                    body;
    ngx_str_t                    status_line;
} ngx_commerce_errpage_t;


typedef struct {
    const ngx_commerce_errpage_t  *reply;        /* replaces nginx's page */
    ngx_http_event_handler_pt      body_reader;  /* nginx's, while wrapped */
    ngx_commerce_errpage_t         own;          /* a route's, for a status */
    unsigned                       error_page:1; /* served by error_page */
} ngx_commerce_errpage_ctx_t;


static ngx_uint_t ngx_commerce_errpage_holds_api(ngx_queue_t *locations);
static ngx_int_t ngx_commerce_errpage_rewrite_handler(ngx_http_request_t *r);
static ngx_int_t ngx_commerce_errpage_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_commerce_errpage_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_commerce_errpage_request_body_filter(
    ngx_http_request_t *r, ngx_chain_t *in);
static void ngx_commerce_errpage_read_body(ngx_http_request_t *r);
static const ngx_commerce_errpage_t *ngx_commerce_errpage_find(
    ngx_uint_t status);
static ngx_commerce_errpage_ctx_t *ngx_commerce_errpage_get_ctx(
    ngx_http_request_t *r);
static ngx_str_t *ngx_commerce_errpage_request_id(ngx_http_request_t *r);


#define ngx_commerce_errpage_entry(status, code, message)                   \
    { status, ngx_string("{\"code\":\"" code "\",\"message\":\""              \
                         message "\"}"), ngx_null_string }


/*
 * Stable codes for the statuses nginx produces; codes the module already
 * uses (INVALID_REQUEST, NOT_FOUND, METHOD_NOT_ALLOWED, PAYLOAD_TOO_LARGE,
 * RATE_LIMITED, INTERNAL_ERROR...) mean the same here.
 */
static const ngx_commerce_errpage_t  ngx_commerce_errpages[] = {
    ngx_commerce_errpage_entry(400, "INVALID_REQUEST", "malformed request"),
    ngx_commerce_errpage_entry(401, "UNAUTHORIZED", "authentication required"),
    ngx_commerce_errpage_entry(403, "FORBIDDEN", "forbidden"),
    ngx_commerce_errpage_entry(404, "NOT_FOUND", "not found"),
    ngx_commerce_errpage_entry(405, "METHOD_NOT_ALLOWED",
                               "method not allowed"),
    ngx_commerce_errpage_entry(408, "REQUEST_TIMEOUT",
                               "the request was not received in time"),
    ngx_commerce_errpage_entry(410, "GONE", "gone"),
    ngx_commerce_errpage_entry(411, "LENGTH_REQUIRED",
                               "Content-Length required"),
    ngx_commerce_errpage_entry(412, "PRECONDITION_FAILED",
                               "precondition failed"),
    ngx_commerce_errpage_entry(413, "PAYLOAD_TOO_LARGE",
                               "request body is larger than the server "
                               "accepts"),
    ngx_commerce_errpage_entry(414, "URI_TOO_LONG", "request URI too long"),
    ngx_commerce_errpage_entry(415, "UNSUPPORTED_MEDIA_TYPE",
                               "unsupported media type"),
    ngx_commerce_errpage_entry(416, "RANGE_NOT_SATISFIABLE",
                               "range not satisfiable"),
    ngx_commerce_errpage_entry(421, "MISDIRECTED_REQUEST",
                               "misdirected request"),
    ngx_commerce_errpage_entry(429, "RATE_LIMITED", "too many requests"),

    { NGX_COMMERCE_HTTP_HEADERS_TOO_LARGE,
      ngx_string("{\"code\":\"HEADERS_TOO_LARGE\","
                 "\"message\":\"request header or cookie too large\"}"),
      ngx_string("431 Request Header Fields Too Large") },

    ngx_commerce_errpage_entry(500, "INTERNAL_ERROR", "internal error"),
    ngx_commerce_errpage_entry(501, "NOT_IMPLEMENTED", "not implemented"),
    ngx_commerce_errpage_entry(502, "BAD_GATEWAY", "bad gateway"),
    ngx_commerce_errpage_entry(503, "SERVICE_UNAVAILABLE",
                               "service temporarily unavailable"),
    ngx_commerce_errpage_entry(504, "GATEWAY_TIMEOUT", "gateway timeout"),
    ngx_commerce_errpage_entry(505, "HTTP_VERSION_NOT_SUPPORTED",
                               "HTTP version not supported"),
    ngx_commerce_errpage_entry(507, "INSUFFICIENT_STORAGE",
                               "insufficient storage"),

    /* any other status of its class */
    ngx_commerce_errpage_entry(0, "INVALID_REQUEST", "request refused"),
    ngx_commerce_errpage_entry(0, "INTERNAL_ERROR", "internal error")
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;
static ngx_http_request_body_filter_pt   ngx_http_next_request_body_filter;


/*
 * commerce_json_errors: as set (or inherited from an enclosing level), else
 * on in a commerce_api location and at the server{} level of a server that
 * has one (errors before a location is chosen, and requests that match no
 * location), off elsewhere.  Called after "api" is merged.
 */

char *
ngx_commerce_errpage_merge(ngx_conf_t *cf, ngx_commerce_loc_conf_t *prev,
    ngx_commerce_loc_conf_t *conf)
{
    ngx_http_core_srv_conf_t  *cscf;
    ngx_http_core_loc_conf_t  *clcf;

    /* only a value set in the configuration is inherited, never "auto" */
    if (conf->json_errors == NGX_CONF_UNSET) {
        conf->json_errors = prev->json_errors;
    }

    if (conf->json_errors != NGX_CONF_UNSET) {
        conf->json_errors_on = conf->json_errors;
        return NGX_CONF_OK;
    }

    if (conf->api == 1) {
        conf->json_errors_on = 1;
        return NGX_CONF_OK;
    }

    /*
     * The server{} level is merged before its locations, whose commerce_api
     * flags are set while parsing: look for one.
     */

    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    conf->json_errors_on =
        (cscf->ctx->loc_conf[ngx_http_core_module.ctx_index] == clcf
         && ngx_commerce_errpage_holds_api(clcf->locations));

    return NGX_CONF_OK;
}


static ngx_uint_t
ngx_commerce_errpage_holds_api(ngx_queue_t *locations)
{
    ngx_queue_t                *q;
    ngx_commerce_loc_conf_t    *lcf;
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_location_queue_t  *lq;

    if (locations == NULL) {
        return 0;
    }

    for (q = ngx_queue_head(locations);
         q != ngx_queue_sentinel(locations);
         q = ngx_queue_next(q))
    {
        lq = (ngx_http_location_queue_t *) q;
        clcf = lq->exact ? lq->exact : lq->inclusive;

        lcf = clcf->loc_conf[ngx_http_commerce_module.ctx_index];

        if (lcf->api == 1 || ngx_commerce_errpage_holds_api(clcf->locations))
        {
            return 1;
        }
    }

    return 0;
}


ngx_int_t
ngx_commerce_errpage_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_commerce_main_conf_t   *mcf;
    ngx_http_core_main_conf_t  *cmcf;

    ngx_str_t  name = ngx_string("request_id");

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_commerce_module);
    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_commerce_errpage_rewrite_handler;

    /* commerce_json_errors may be on where no commerce_api is */
    if (mcf->request_id_index == NGX_ERROR) {
        mcf->request_id_index = ngx_http_get_variable_index(cf, &name);
        if (mcf->request_id_index == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_commerce_errpage_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_commerce_errpage_body_filter;

    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter =
                                     ngx_commerce_errpage_request_body_filter;

    return NGX_OK;
}


/*
 * The location phases run with r->err_status set only after error_page
 * redirected the request (its URI or named location): what follows is the
 * operator's answer.
 */

static ngx_int_t
ngx_commerce_errpage_rewrite_handler(ngx_http_request_t *r)
{
    ngx_commerce_errpage_ctx_t  *ec;

    if (r->err_status == 0) {
        return NGX_DECLINED;
    }

    ec = ngx_commerce_errpage_get_ctx(r);
    if (ec == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ec->error_page = 1;

    return NGX_DECLINED;
}


static ngx_int_t
ngx_commerce_errpage_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t                   status;
    ngx_commerce_ctx_t          *ctx;
    ngx_commerce_loc_conf_t     *lcf;
    ngx_commerce_errpage_ctx_t  *ec;

    /* a normal response costs this test */
    if (r->err_status < NGX_HTTP_BAD_REQUEST || r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_module);

    if (!lcf->json_errors_on) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_module);

    if (ctx != NULL && ctx->errpage != NULL
        && ((ngx_commerce_errpage_ctx_t *) ctx->errpage)->error_page)
    {
        return ngx_http_next_header_filter(r);
    }

    status = r->err_status;

    /*
     * "Request Header Or Cookie Too Large" is sent as 400 (the special
     * response handler turns 494 into 400), and it is the only 400 that
     * keeps r->lingering_close: nginx sets it before finalizing with 494,
     * and the handler clears it for a plain 400.
     */

    if (status == NGX_HTTP_BAD_REQUEST && r->lingering_close) {
        status = NGX_COMMERCE_HTTP_HEADERS_TOO_LARGE;
    }

    ec = ngx_commerce_errpage_get_ctx(r);
    if (ec == NULL) {
        return NGX_ERROR;
    }

    ec->reply = (ec->own.status == status) ? &ec->own
                                           : ngx_commerce_errpage_find(status);

    r->err_status = status;
    r->headers_out.status = status;

    if (ec->reply->status_line.len) {
        r->headers_out.status_line = ec->reply->status_line;
    }

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    r->headers_out.content_length_n = ec->reply->body.len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    if (ngx_commerce_reply_common(r) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


/* nginx's page is dropped; the JSON goes with its last buffer */

static ngx_int_t
ngx_commerce_errpage_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t                   *b;
    ngx_uint_t                   last;
    ngx_chain_t                 *cl, out;
    ngx_commerce_ctx_t          *ctx;
    ngx_commerce_errpage_ctx_t  *ec;

    if (r->err_status < NGX_HTTP_BAD_REQUEST || in == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_module);

    if (ctx == NULL || ctx->errpage == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    ec = ctx->errpage;

    if (ec->reply == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    last = 0;

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;

        if (cl->buf->last_buf || cl->buf->last_in_chain) {
            last = 1;
        }
    }

    if (!last) {
        return NGX_OK;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = ec->reply->body.data;
    b->last = ec->reply->body.data + ec->reply->body.len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    /* sent once */
    ec->reply = NULL;

    return ngx_http_next_body_filter(r, &out);
}


/*
 * While nginx reads a body into memory or a file (its reader installed, the
 * write side idle), a commerce location watches the reader for timeouts.
 * Unbuffered bodies (proxy_request_buffering off) belong to the upstream
 * module, HTTP/2 bodies to the stream: left alone.
 */

static ngx_int_t
ngx_commerce_errpage_request_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in)
{
    ngx_commerce_loc_conf_t     *lcf;
    ngx_commerce_errpage_ctx_t  *ec;

    if (r->write_event_handler != ngx_http_request_empty_handler
        || r->read_event_handler == ngx_commerce_errpage_read_body
        || r->read_event_handler == ngx_http_block_reading
        || r->request_body_no_buffering
#if (NGX_HTTP_V2)
        || r->stream != NULL
#endif
        )
    {
        return ngx_http_next_request_body_filter(r, in);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_module);

    if (lcf->json_errors_on) {
        ec = ngx_commerce_errpage_get_ctx(r);
        if (ec == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ec->body_reader = r->read_event_handler;
        r->read_event_handler = ngx_commerce_errpage_read_body;
    }

    return ngx_http_next_request_body_filter(r, in);
}


static void
ngx_commerce_errpage_read_body(ngx_http_request_t *r)
{
    ngx_connection_t            *c;
    ngx_commerce_ctx_t          *ctx;
    ngx_commerce_errpage_ctx_t  *ec;

    c = r->connection;

    if (!c->read->timedout) {
        ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_module);
        ec = (ctx != NULL) ? ctx->errpage : NULL;

        if (ec == NULL || ec->body_reader == NULL) {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "commerce: [%V] the request body reader is lost",
                          ngx_commerce_errpage_request_id(r));
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ec->body_reader(r);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                  "commerce: [%V] client timed out sending the request body",
                  ngx_commerce_errpage_request_id(r));

    /*
     * Not c->timedout: with reset_timedout_connection it would reset the
     * connection under the answer.  The rest of the body is drained by the
     * lingering close.
     */

    c->read->timedout = 0;

    r->keepalive = 0;
    r->lingering_close = 1;
    r->read_event_handler = ngx_http_block_reading;

    ngx_http_finalize_request(r,
        ngx_http_special_response_handler(r, NGX_HTTP_REQUEST_TIME_OUT));
}


/*
 * A route's own {"code","message"} for an error nginx makes for it (a body
 * over the route's limit, found while nginx reads it: 413 with the
 * route's code).
 */

ngx_int_t
ngx_commerce_errpage_own(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body)
{
    ngx_commerce_errpage_ctx_t  *ec;

    ec = ngx_commerce_errpage_get_ctx(r);
    if (ec == NULL) {
        return NGX_ERROR;
    }

    ec->own.status = status;
    ec->own.body = *body;

    return NGX_OK;
}


static const ngx_commerce_errpage_t *
ngx_commerce_errpage_find(ngx_uint_t status)
{
    ngx_uint_t  i, n;

    n = sizeof(ngx_commerce_errpages) / sizeof(ngx_commerce_errpage_t);

    for (i = 0; i < n - 2; i++) {
        if (ngx_commerce_errpages[i].status == status) {
            return &ngx_commerce_errpages[i];
        }
    }

    return &ngx_commerce_errpages[status < 500 ? n - 2 : n - 1];
}


static ngx_commerce_errpage_ctx_t *
ngx_commerce_errpage_get_ctx(ngx_http_request_t *r)
{
    ngx_commerce_ctx_t  *ctx;

    ctx = ngx_commerce_reply_ctx(r);
    if (ctx == NULL) {
        return NULL;
    }

    if (ctx->errpage == NULL) {
        ctx->errpage = ngx_pcalloc(r->pool,
                                   sizeof(ngx_commerce_errpage_ctx_t));
    }

    return ctx->errpage;
}


/* $request_id: the ctx's copy when the API has one, "-" if unavailable */

static ngx_str_t *
ngx_commerce_errpage_request_id(ngx_http_request_t *r)
{
    ngx_commerce_ctx_t  *ctx;

    static ngx_str_t  none = ngx_string("-");

    ctx = ngx_commerce_reply_ctx(r);

    return (ctx != NULL) ? &ctx->request_id : &none;
}
