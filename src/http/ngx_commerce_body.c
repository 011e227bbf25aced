
/*
 * A body a route reads itself (NGX_COMMERCE_ROUTE_RAW: an image's bytes,
 * not JSON), with the route's limits on size and on time.
 *
 * Size: a Content-Length over the limit is refused before a byte is read;
 * a chunked body is counted by a request body filter as nginx decodes it
 * and refused as soon as it passes the limit.  Both are 413 with the
 * route's own JSON (the second one made by nginx's special response, so
 * through ngx_commerce_errpage_own).  The location's client_max_body_size
 * must not be lower (0 or above the limit), or nginx refuses first.
 *
 * Time: one timer over the whole body, from the first byte asked for to
 * the last, unlike client_body_timeout which bounds each read: a client
 * that trickles a byte now and then is answered 408 REQUEST_TIMEOUT when
 * the timer expires, and the rest of its body is drained by the lingering
 * close (as ngx_commerce_errpage.c does for client_body_timeout).
 *
 * The body goes to nginx's temporary file, always (even a small one), and
 * the file keeps its name until the request ends (persistent, clean): the
 * route may link it into place.
 */


#include "ngx_commerce_http.h"


typedef struct {
    ngx_http_request_t          *r;
    off_t                        max;
    off_t                        received;
    ngx_msec_t                   timeout;
    ngx_commerce_body_pt         done;
    ngx_event_t                  timer;
    unsigned                     reading:1;
} ngx_commerce_body_t;


static void ngx_commerce_body_read_done(ngx_http_request_t *r);
static void ngx_commerce_body_timeout(ngx_event_t *ev);
static void ngx_commerce_body_stop(ngx_commerce_body_t *b);
static void ngx_commerce_body_cleanup(void *data);
static ngx_int_t ngx_commerce_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_request_body_filter_pt   ngx_http_next_request_body_filter;


ngx_int_t
ngx_commerce_body_init(ngx_conf_t *cf)
{
    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_commerce_body_filter;

    return NGX_OK;
}


/*
 * Returns what a content handler returns: NGX_DONE while the body is read
 * (done() is called once it is all there, and finalizes), or a status.
 */

ngx_int_t
ngx_commerce_body_read(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    off_t max, ngx_msec_t timeout, ngx_str_t *too_large,
    ngx_commerce_body_pt done)
{
    ngx_int_t             rc;
    ngx_pool_cleanup_t   *cln;
    ngx_commerce_body_t  *b;

    if (r->headers_in.content_length_n > max) {
        ngx_commerce_log(NGX_LOG_INFO, r, ctx,
                         "a body of %O bytes refused before reading "
                         "(at most %O)", r->headers_in.content_length_n, max);

        /* not read: the answer first, then the lingering close drains */
        r->keepalive = 0;
        r->lingering_close = 1;

        return ngx_commerce_reply_json(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                       too_large->data, too_large->len, 0);
    }

    if (ngx_commerce_errpage_own(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                 too_large)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_pcalloc(r->pool, sizeof(ngx_commerce_body_t));
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_commerce_body_cleanup;
    cln->data = b;

    b->r = r;
    b->max = max;
    b->timeout = timeout;
    b->done = done;
    b->reading = 1;

    b->timer.handler = ngx_commerce_body_timeout;
    b->timer.data = b;
    b->timer.log = r->connection->log;
    ngx_add_timer(&b->timer, timeout);

    ctx->body = b;

    r->request_body_in_file_only = 1;
    r->request_body_in_persistent_file = 1;
    r->request_body_in_clean_file = 1;
    r->request_body_file_log_level = 0;

    rc = ngx_http_read_client_request_body(r, ngx_commerce_body_read_done);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        ngx_commerce_body_stop(b);
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_commerce_body_read_done(ngx_http_request_t *r)
{
    ngx_commerce_ctx_t   *ctx;
    ngx_commerce_body_t  *b;

    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_module);
    b = ctx->body;

    ngx_commerce_body_stop(b);

    b->done(r, ctx);
}


static void
ngx_commerce_body_timeout(ngx_event_t *ev)
{
    ngx_connection_t     *c;
    ngx_http_request_t   *r;
    ngx_commerce_ctx_t   *ctx;
    ngx_commerce_body_t  *b;

    b = ev->data;
    r = b->r;
    c = r->connection;

    if (!b->reading || r->header_sent || r->done) {
        /* answered already (nginx's own client_body_timeout, an error) */
        return;
    }

    b->reading = 0;

    ngx_http_set_log_request(c->log, r);

    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_module);

    ngx_commerce_log(NGX_LOG_INFO, r, ctx,
                     "the request body was not received within %M ms "
                     "(%O bytes came)", b->timeout, b->received);

    /* the rest of the body is drained by the lingering close */
    r->keepalive = 0;
    r->lingering_close = 1;
    r->read_event_handler = ngx_http_block_reading;

    ngx_http_finalize_request(r,
        ngx_http_special_response_handler(r, NGX_HTTP_REQUEST_TIME_OUT));

    ngx_http_run_posted_requests(c);
}


static void
ngx_commerce_body_stop(ngx_commerce_body_t *b)
{
    b->reading = 0;

    if (b->timer.timer_set) {
        ngx_del_timer(&b->timer);
    }
}


static void
ngx_commerce_body_cleanup(void *data)
{
    ngx_commerce_body_stop(data);
}


/* a chunked body counted as nginx decodes it */

static ngx_int_t
ngx_commerce_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t          *cl;
    ngx_commerce_ctx_t   *ctx;
    ngx_commerce_body_t  *b;

    if (r != r->main) {
        return ngx_http_next_request_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_module);

    if (ctx == NULL || ctx->body == NULL) {
        return ngx_http_next_request_body_filter(r, in);
    }

    b = ctx->body;

    if (!b->reading) {
        return ngx_http_next_request_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        b->received += ngx_buf_size(cl->buf);
    }

    if (b->received > b->max) {
        ngx_commerce_log(NGX_LOG_INFO, r, ctx,
                         "a body passing %O bytes refused while read",
                         b->max);

        ngx_commerce_body_stop(b);

        r->keepalive = 0;

        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    return ngx_http_next_request_body_filter(r, in);
}
