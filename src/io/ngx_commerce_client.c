
/*
 * Outbound HTTP/1.1 to payment gateways, on nginx's own machinery:
 * ngx_event_connect_peer(), c->send/c->recv, event timers, and the
 * addresses of an `upstream {}` block from nginx.conf (resolved by nginx at
 * configuration time).  Works the same from a client request and from a
 * timer job: the caller owns the ngx_commerce_client_t and gets exactly one
 * call of its handler, unless it aborts first.
 *
 * What the caller needs to decide about retries is in h->rc:
 *   NGX_COMMERCE_HTTP_OK               a complete response (h->status, h->body)
 *   NGX_COMMERCE_HTTP_REFUSED          the connection failed: nothing was sent
 *   NGX_COMMERCE_HTTP_CONNECT_TIMEOUT  no connection in time: nothing was sent
 *   NGX_COMMERCE_HTTP_TIMEOUT          sent, no complete answer in time
 *   NGX_COMMERCE_HTTP_BROKEN           sent (maybe partly), then reset/closed
 *   NGX_COMMERCE_HTTP_INVALID          an answer we cannot parse
 *
 * The body of an answer is framed by its Content-Length, by the chunked
 * transfer coding (decoded in place by cm_chunked, so that h->body is the
 * decoded data either way), or by the gateway closing the connection.
 *
 * Idle connections are kept per worker and gateway (keepalive=N), watched
 * by a read handler that drops them when the gateway closes them, like
 * ngx_http_upstream_keepalive_module does.
 */


#include "ngx_commerce.h"
#include "ngx_commerce_client.h"


#define NGX_COMMERCE_HTTP_RESPONSE_MAX  (64 * 1024)
#define NGX_COMMERCE_HTTP_IDLE_TIMEOUT  20000


typedef struct {
    ngx_queue_t        queue;
    ngx_connection_t  *connection;
    ngx_commerce_gateway_t *gw;
} ngx_commerce_client_idle_t;


static ngx_int_t ngx_commerce_client_connect(ngx_commerce_client_t *h);
static ngx_int_t ngx_commerce_client_build(ngx_commerce_client_t *h);
static void ngx_commerce_client_write_handler(ngx_event_t *wev);
static void ngx_commerce_client_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_commerce_client_parse(ngx_commerce_client_t *h);
static ngx_int_t ngx_commerce_client_parse_chunked(ngx_commerce_client_t *h);
static void ngx_commerce_client_done(ngx_commerce_client_t *h, ngx_uint_t rc);
static void ngx_commerce_client_keep(ngx_commerce_client_t *h);
static void ngx_commerce_client_idle_handler(ngx_event_t *ev);
static void ngx_commerce_client_idle_close(ngx_commerce_client_idle_t *item);
static ngx_int_t ngx_commerce_client_test_connect(ngx_connection_t *c);
static void ngx_commerce_client_close(ngx_connection_t *c);
#if (NGX_HTTP_SSL)
static void ngx_commerce_client_ssl_start(ngx_commerce_client_t *h);
static void ngx_commerce_client_ssl_handshaked(ngx_connection_t *c);
#endif


const char *
ngx_commerce_client_rc_name(ngx_uint_t rc)
{
    static const char *names[] = {
        "ok", "refused", "connect_timeout", "timeout", "broken", "invalid"
    };

    return rc < sizeof(names) / sizeof(names[0]) ? names[rc] : "unknown";
}


ngx_int_t
ngx_commerce_client_start(ngx_commerce_client_t *h)
{
    h->started = ngx_current_msec;
    h->rc = NGX_COMMERCE_HTTP_OK;
    h->status = 0;
    h->body.len = 0;
    h->body.data = NULL;
    h->connection = NULL;
    h->in = NULL;
    h->sent = 0;
    h->connected = 0;
    h->reused = 0;
    h->eof = 0;
    h->keepalive = 0;
    h->chunked_body = 0;

    if (ngx_commerce_client_build(h) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_commerce_client_connect(h);
}


static ngx_int_t
ngx_commerce_client_build(ngx_commerce_client_t *h)
{
    size_t      len;
    ngx_buf_t  *b;

    len = h->method.len + 1 + h->uri.len + sizeof(" HTTP/1.1" CRLF) - 1
          + sizeof("Host: " CRLF) - 1 + h->gw->host.len
          + sizeof("X-USER-ID: " CRLF) - 1 + NGX_INT64_LEN
          + sizeof("User-Agent: ngx_commerce" CRLF) - 1
          + sizeof("Connection: keep-alive" CRLF) - 1
          + sizeof("Content-Type: application/json" CRLF) - 1
          + sizeof("Content-Length: " CRLF) - 1 + NGX_SIZE_T_LEN
          + h->extra_headers.len
          + sizeof(CRLF) - 1 + h->request_body.len;

    b = ngx_create_temp_buf(h->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_sprintf(b->last, "%V %V HTTP/1.1" CRLF "Host: %V" CRLF,
                          &h->method, &h->uri, &h->gw->host);

    if (h->user_id) {
        b->last = ngx_sprintf(b->last, "X-USER-ID: %L" CRLF, h->user_id);
    }

    b->last = ngx_cpymem(b->last, "User-Agent: ngx_commerce" CRLF
                         "Connection: keep-alive" CRLF,
                         sizeof("User-Agent: ngx_commerce" CRLF
                                "Connection: keep-alive" CRLF) - 1);

    if (h->extra_headers.len) {
        b->last = ngx_cpymem(b->last, h->extra_headers.data,
                             h->extra_headers.len);
    }

    if (h->request_body.len) {
        b->last = ngx_sprintf(b->last,
                              "Content-Type: application/json" CRLF
                              "Content-Length: %uz" CRLF CRLF,
                              h->request_body.len);
        b->last = ngx_cpymem(b->last, h->request_body.data,
                             h->request_body.len);

    } else {
        b->last = ngx_cpymem(b->last, CRLF, 2);
    }

    h->out = b;

    return NGX_OK;
}


static ngx_int_t
ngx_commerce_client_connect(ngx_commerce_client_t *h)
{
    char                       buf[1];
    ssize_t                    n;
    ngx_int_t                  rc;
    ngx_addr_t                *addr;
    ngx_queue_t               *q;
    ngx_connection_t          *c;
    ngx_commerce_gateway_t    *gw;
    ngx_commerce_client_idle_t  *item;

    gw = h->gw;

    /* a kept connection first */

    while (!ngx_queue_empty(&gw->idle)) {
        q = ngx_queue_head(&gw->idle);
        ngx_queue_remove(q);
        gw->nidle--;

        item = ngx_queue_data(q, ngx_commerce_client_idle_t, queue);
        c = item->connection;
        ngx_queue_insert_head(&gw->free, &item->queue);

        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        /* closed by the gateway and not noticed yet: take another */
        n = recv(c->fd, buf, 1, MSG_PEEK);

        if (n != -1 || ngx_socket_errno != NGX_EAGAIN) {
            ngx_commerce_client_close(c);
            continue;
        }

        c->idle = 0;
        c->data = h;
        c->log = h->log;
        c->read->log = h->log;
        c->write->log = h->log;

        h->connection = c;
        h->reused = 1;

        c->read->handler = ngx_commerce_client_read_handler;
        c->write->handler = ngx_commerce_client_write_handler;

        ngx_commerce_client_write_handler(c->write);
        return NGX_OK;
    }

    h->reused = 0;

    addr = &gw->addrs[gw->rr++ % gw->naddrs];

    ngx_memzero(&h->pc, sizeof(ngx_peer_connection_t));
    h->pc.sockaddr = addr->sockaddr;
    h->pc.socklen = addr->socklen;
    h->pc.name = &addr->name;
    h->pc.get = ngx_event_get_peer;
    h->pc.log = h->log;
    h->pc.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&h->pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (h->pc.connection) {
            ngx_commerce_client_close(h->pc.connection);
            h->pc.connection = NULL;
        }

        /* not from inside the caller's call: post the answer */
        h->rc = NGX_COMMERCE_HTTP_REFUSED;
        h->post.handler = ngx_commerce_client_posted;
        h->post.data = h;
        h->post.log = h->log;
        ngx_post_event(&h->post, &ngx_posted_events);
        return NGX_OK;
    }

    c = h->pc.connection;
    c->data = h;

    /*
     * The connection outlives the exchange when it is kept alive: its own
     * pool holds what must live as long (the TLS state).
     */
    c->pool = ngx_create_pool(256, ngx_cycle->log);
    if (c->pool == NULL) {
        ngx_close_connection(c);
        h->pc.connection = NULL;
        return NGX_ERROR;
    }
    c->log = h->log;
    c->read->log = h->log;
    c->write->log = h->log;
    c->read->handler = ngx_commerce_client_read_handler;
    c->write->handler = ngx_commerce_client_write_handler;

    h->connection = c;

    if (rc == NGX_AGAIN) {
        ngx_add_timer(c->write, gw->connect_timeout);
        return NGX_OK;
    }

    ngx_commerce_client_write_handler(c->write);

    return NGX_OK;
}


void
ngx_commerce_client_posted(ngx_event_t *ev)
{
    ngx_commerce_client_t  *h = ev->data;

    ngx_commerce_client_done(h, h->rc);
}


static ngx_int_t
ngx_commerce_client_test_connect(ngx_connection_t *c)
{
    int        err;
    socklen_t  len;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        c->log->action = "connecting to payment gateway";
        (void) ngx_connection_error(c, err, "connect() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* TLS connections are shut down quietly: the gateway may be gone */

static void
ngx_commerce_client_close(ngx_connection_t *c)
{
    ngx_pool_t  *pool;

#if (NGX_HTTP_SSL)
    if (c->ssl) {
        c->ssl->no_wait_shutdown = 1;
        c->ssl->no_send_shutdown = 1;
        (void) ngx_ssl_shutdown(c);
    }
#endif

    pool = c->pool;

    ngx_close_connection(c);

    if (pool != NULL) {
        ngx_destroy_pool(pool);
    }
}


#if (NGX_HTTP_SSL)

static void
ngx_commerce_client_ssl_start(ngx_commerce_client_t *h)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    c = h->connection;

    if (ngx_ssl_create_connection(h->gw->ssl, c,
                                  NGX_SSL_BUFFER|NGX_SSL_CLIENT)
        != NGX_OK)
    {
        ngx_commerce_client_done(h, NGX_COMMERCE_HTTP_REFUSED);
        return;
    }

    if (h->gw->ssl_name.len
        && SSL_set_tlsext_host_name(c->ssl->connection,
                                    (char *) h->gw->ssl_name.data) == 0)
    {
        ngx_commerce_client_done(h, NGX_COMMERCE_HTTP_REFUSED);
        return;
    }

    c->log->action = "TLS handshake with payment gateway";

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        if (!c->write->timer_set) {
            ngx_add_timer(c->write, h->gw->connect_timeout);
        }

        c->ssl->handler = ngx_commerce_client_ssl_handshaked;
        return;
    }

    ngx_commerce_client_ssl_handshaked(c);
}


static void
ngx_commerce_client_ssl_handshaked(ngx_connection_t *c)
{
    long                  rc;
    ngx_commerce_client_t  *h;

    h = c->data;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    /* a failed handshake or an untrusted peer: nothing was sent */

    if (!c->ssl->handshaked) {
        ngx_commerce_client_done(h, NGX_COMMERCE_HTTP_REFUSED);
        return;
    }

    if (h->gw->ssl_verify) {
        rc = SSL_get_verify_result(c->ssl->connection);

        if (rc != X509_V_OK) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "commerce: gateway %V: certificate verify error: "
                          "(%l:%s)", &h->gw->name, rc,
                          X509_verify_cert_error_string(rc));
            ngx_commerce_client_done(h, NGX_COMMERCE_HTTP_REFUSED);
            return;
        }

        if (ngx_ssl_check_host(c, &h->gw->ssl_name) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "commerce: gateway %V: certificate does not match "
                          "\"%V\"", &h->gw->name, &h->gw->ssl_name);
            ngx_commerce_client_done(h, NGX_COMMERCE_HTTP_REFUSED);
            return;
        }
    }

    c->log->action = NULL;
    c->read->handler = ngx_commerce_client_read_handler;
    c->write->handler = ngx_commerce_client_write_handler;

    ngx_commerce_client_write_handler(c->write);
}

#endif


static void
ngx_commerce_client_write_handler(ngx_event_t *wev)
{
    ssize_t                n;
    ngx_connection_t      *c;
    ngx_commerce_client_t   *h;

    c = wev->data;
    h = c->data;

    if (wev->timedout) {
        ngx_commerce_client_done(h, h->sent ? NGX_COMMERCE_HTTP_TIMEOUT
                                          : NGX_COMMERCE_HTTP_CONNECT_TIMEOUT);
        return;
    }

    if (!h->connected) {
        if (!h->reused && ngx_commerce_client_test_connect(c) != NGX_OK) {
            ngx_commerce_client_done(h, NGX_COMMERCE_HTTP_REFUSED);
            return;
        }

        h->connected = 1;

        if (wev->timer_set) {
            ngx_del_timer(wev);
        }

#if (NGX_HTTP_SSL)
        if (h->gw->ssl != NULL && c->ssl == NULL) {
            ngx_commerce_client_ssl_start(h);
            return;
        }
#endif
    }

    while (h->out->pos < h->out->last) {
        n = c->send(c, h->out->pos, h->out->last - h->out->pos);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_commerce_client_done(h, NGX_COMMERCE_HTTP_BROKEN);
            }
            return;
        }

        if (n == NGX_ERROR || n == 0) {
            /*
             * a reused connection the gateway closed meanwhile: the request
             * never left; anything else may have been received
             */
            ngx_commerce_client_done(h, (h->reused && !h->sent)
                                      ? NGX_COMMERCE_HTTP_REFUSED
                                      : NGX_COMMERCE_HTTP_BROKEN);
            return;
        }

        h->sent = 1;
        h->out->pos += n;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    if (!c->read->timer_set) {
        ngx_add_timer(c->read, h->gw->timeout);
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_commerce_client_done(h, NGX_COMMERCE_HTTP_BROKEN);
        return;
    }

    if (c->read->ready) {
        ngx_commerce_client_read_handler(c->read);
    }
}


static void
ngx_commerce_client_read_handler(ngx_event_t *rev)
{
    size_t                size;
    ssize_t               n;
    ngx_int_t             rc;
    ngx_buf_t            *b;
    ngx_connection_t     *c;
    ngx_commerce_client_t  *h;

    c = rev->data;
    h = c->data;

    if (rev->timedout) {
        ngx_commerce_client_done(h, NGX_COMMERCE_HTTP_TIMEOUT);
        return;
    }

    if (!h->connected) {
        /* a refused connect reports on both events; sort it out there */
        ngx_commerce_client_write_handler(c->write);
        return;
    }

    if (h->in == NULL) {
        h->in = ngx_create_temp_buf(h->pool, 4096);
        if (h->in == NULL) {
            ngx_commerce_client_done(h, NGX_COMMERCE_HTTP_BROKEN);
            return;
        }
    }

    for ( ;; ) {
        b = h->in;

        if (b->last == b->end) {
            size = (b->end - b->start) * 2;

            if (size > NGX_COMMERCE_HTTP_RESPONSE_MAX) {
                ngx_commerce_client_done(h, NGX_COMMERCE_HTTP_INVALID);
                return;
            }

            b = ngx_create_temp_buf(h->pool, size);
            if (b == NULL) {
                ngx_commerce_client_done(h, NGX_COMMERCE_HTTP_BROKEN);
                return;
            }

            /* from the start: a chunked body is decoded there */
            b->pos = b->start + (h->in->pos - h->in->start);
            b->last = ngx_cpymem(b->start, h->in->start,
                                 h->in->last - h->in->start);
            h->in = b;
        }

        n = c->recv(c, b->last, b->end - b->last);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            h->eof = 1;

        } else {
            b->last += n;
        }

        rc = ngx_commerce_client_parse(h);

        if (rc == NGX_OK) {
            ngx_commerce_client_done(h, NGX_COMMERCE_HTTP_OK);
            return;
        }

        if (rc == NGX_ERROR) {
            ngx_commerce_client_done(h, NGX_COMMERCE_HTTP_INVALID);
            return;
        }

        if (h->eof) {
            ngx_commerce_client_done(h, NGX_COMMERCE_HTTP_BROKEN);
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_commerce_client_done(h, NGX_COMMERCE_HTTP_BROKEN);
    }
}


/*
 * A deliberately small response parser: status line, the headers we need
 * (Content-Length, Connection, Transfer-Encoding), then a Content-Length
 * body, a chunked one, or one read until close.  Of the transfer codings
 * only "chunked" alone is taken (what Spring Boot gateways send when they
 * stream a JSON answer); anything else is refused, as is a chunked answer
 * that also has a Content-Length or comes from HTTP/1.0 (RFC 9112 6.1: a
 * faulty framing).  NGX_OK: complete; NGX_AGAIN: need more.
 *
 * Until the headers are complete, they are parsed again from the start of
 * h->in on every read.  Then a chunked body is decoded incrementally.
 */

static ngx_int_t
ngx_commerce_client_parse(ngx_commerce_client_t *h)
{
    u_char      *p, *end, *line, *eol, *colon, *hdr_end;
    off_t        clen;
    ngx_str_t    name, value;
    ngx_uint_t   http11, te;

    if (h->chunked_body) {
        return ngx_commerce_client_parse_chunked(h);
    }

    p = h->in->pos;
    end = h->in->last;

    hdr_end = ngx_strlcasestrn(p, end, (u_char *) CRLF CRLF, 4 - 1);
    if (hdr_end == NULL) {
        return (end - p > 16384) ? NGX_ERROR : NGX_AGAIN;
    }

    eol = ngx_strlcasestrn(p, hdr_end + 2, (u_char *) CRLF, 2 - 1);

    /* "HTTP/1.x 200 ..." */
    if (eol - p < 12 || ngx_strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') {
        return NGX_ERROR;
    }

    h->status = ngx_atoi(p + 9, 3);
    if (h->status == (ngx_uint_t) NGX_ERROR || h->status < 100) {
        return NGX_ERROR;
    }

    http11 = (p[7] == '1');
    h->keepalive = http11;
    clen = -1;
    te = 0;

    for (line = eol + 2; line < hdr_end + 2; line = eol + 2) {
        eol = ngx_strlcasestrn(line, hdr_end + 2, (u_char *) CRLF, 2 - 1);
        if (eol == NULL) {
            return NGX_ERROR;
        }

        colon = ngx_strlchr(line, eol, ':');
        if (colon == NULL) {
            return NGX_ERROR;
        }

        name.data = line;
        name.len = colon - line;

        for (value.data = colon + 1; value.data < eol && *value.data == ' ';
             value.data++)
        { /* void */ }

        value.len = eol - value.data;

        if (name.len == 14
            && ngx_strncasecmp(name.data, (u_char *) "Content-Length", 14)
               == 0)
        {
            clen = ngx_atoof(value.data, value.len);
            if (clen < 0 || clen > NGX_COMMERCE_HTTP_RESPONSE_MAX) {
                return NGX_ERROR;
            }

        } else if (name.len == 10
                   && ngx_strncasecmp(name.data, (u_char *) "Connection", 10)
                      == 0)
        {
            if (value.len >= 5
                && ngx_strncasecmp(value.data, (u_char *) "close", 5) == 0)
            {
                h->keepalive = 0;
            }

        } else if (name.len == 17
                   && ngx_strncasecmp(name.data,
                                      (u_char *) "Transfer-Encoding", 17)
                      == 0)
        {
            while (value.len
                   && (value.data[value.len - 1] == ' '
                       || value.data[value.len - 1] == '\t'))
            {
                value.len--;
            }

            /* "gzip, chunked", or a second Transfer-Encoding line */

            if (te || value.len != 7
                || ngx_strncasecmp(value.data, (u_char *) "chunked", 7) != 0)
            {
                ngx_log_error(NGX_LOG_WARN, h->log, 0,
                              "commerce: gateway %V: %V %V: unsupported "
                              "Transfer-Encoding \"%V\"",
                              &h->gw->name, &h->method, &h->uri, &value);
                return NGX_ERROR;
            }

            te = 1;
        }
    }

    p = hdr_end + 4;

    if (te) {
        if (clen >= 0 || !http11) {
            ngx_log_error(NGX_LOG_WARN, h->log, 0,
                          "commerce: gateway %V: %V %V: chunked answer %s",
                          &h->gw->name, &h->method, &h->uri,
                          clen >= 0 ? "with a Content-Length" : "in HTTP/1.0");
            return NGX_ERROR;
        }

        /*
         * The status and the headers are known: the decoded body is
         * written over them, at the start of h->in, and the next bytes
         * are read right after it.
         */

        cm_chunked_init(&h->chunked, NGX_COMMERCE_HTTP_RESPONSE_MAX);
        h->chunked_body = 1;
        h->in->pos = p;

        return ngx_commerce_client_parse_chunked(h);
    }

    if (clen >= 0) {
        if (end - p < clen) {
            return NGX_AGAIN;
        }

        if (end - p > clen) {
            /* pipelined junk: do not reuse this connection */
            h->keepalive = 0;
        }

        h->body.data = p;
        h->body.len = (size_t) clen;
        return NGX_OK;
    }

    /* no length: the body ends when the gateway closes */
    h->keepalive = 0;

    if (!h->eof) {
        return NGX_AGAIN;
    }

    h->body.data = p;
    h->body.len = end - p;

    return NGX_OK;
}


static ngx_int_t
ngx_commerce_client_parse_chunked(ngx_commerce_client_t *h)
{
    size_t            used;
    ngx_buf_t        *b;
    cm_chunked_rc_e   rc;

    b = h->in;

    rc = cm_chunked_feed(&h->chunked, b->pos, b->last - b->pos, &used,
                         b->start);

    switch (rc) {

    case CM_CHUNKED_DONE:
        if (b->pos + used < b->last) {
            /* pipelined junk: do not reuse this connection */
            h->keepalive = 0;
        }

        h->body.data = b->start;
        h->body.len = h->chunked.total;
        return NGX_OK;

    case CM_CHUNKED_AGAIN:
        /* every byte was used: read the next ones after the decoded data */
        b->pos = b->start + h->chunked.total;
        b->last = b->pos;
        return NGX_AGAIN;

    default:
        ngx_log_error(NGX_LOG_WARN, h->log, 0,
                      "commerce: gateway %V: %V %V: malformed chunked body: "
                      "%s", &h->gw->name, &h->method, &h->uri,
                      h->chunked.error);
        return NGX_ERROR;
    }
}


static void
ngx_commerce_client_done(ngx_commerce_client_t *h, ngx_uint_t rc)
{
    ngx_connection_t  *c;

    h->rc = rc;
    h->latency = ngx_current_msec - h->started;

    c = h->connection;
    h->connection = NULL;

    if (c != NULL) {
        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        if (c->write->timer_set) {
            ngx_del_timer(c->write);
        }

        if (rc == NGX_COMMERCE_HTTP_OK && h->keepalive
            && h->gw->keepalive && !ngx_exiting && !ngx_terminate)
        {
            h->connection = c;
            ngx_commerce_client_keep(h);
            h->connection = NULL;

        } else {
            ngx_commerce_client_close(c);
        }
    }

    if (rc != NGX_COMMERCE_HTTP_OK) {
        ngx_log_error(NGX_LOG_WARN, h->log, 0,
                      "commerce: gateway %V: %V %V: %s after %Mms",
                      &h->gw->name, &h->method, &h->uri,
                      ngx_commerce_client_rc_name(rc), h->latency);
    }

    if (h->handler) {
        h->handler(h);
    }
}


static void
ngx_commerce_client_keep(ngx_commerce_client_t *h)
{
    ngx_queue_t               *q;
    ngx_connection_t          *c;
    ngx_commerce_gateway_t    *gw;
    ngx_commerce_client_idle_t  *item;

    gw = h->gw;
    c = h->connection;

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_commerce_client_close(c);
        return;
    }

    if (gw->nidle >= gw->keepalive || ngx_queue_empty(&gw->free)) {
        /* full: drop the oldest */
        q = ngx_queue_last(&gw->idle);
        item = ngx_queue_data(q, ngx_commerce_client_idle_t, queue);
        ngx_commerce_client_idle_close(item);
    }

    q = ngx_queue_head(&gw->free);
    ngx_queue_remove(q);
    item = ngx_queue_data(q, ngx_commerce_client_idle_t, queue);

    item->connection = c;
    item->gw = gw;
    ngx_queue_insert_head(&gw->idle, q);
    gw->nidle++;

    /* the owner's log goes away: point at the cycle's */
    c->log = ngx_cycle->log;
    c->read->log = ngx_cycle->log;
    c->write->log = ngx_cycle->log;
    c->data = item;
    c->idle = 1;

    c->read->handler = ngx_commerce_client_idle_handler;
    c->write->handler = ngx_commerce_client_idle_handler;

    ngx_add_timer(c->read, NGX_COMMERCE_HTTP_IDLE_TIMEOUT);
}


static void
ngx_commerce_client_idle_handler(ngx_event_t *ev)
{
    char                       buf[1];
    ssize_t                    n;
    ngx_connection_t          *c;
    ngx_commerce_client_idle_t  *item;

    c = ev->data;
    item = c->data;

    if (ev->write) {
        return;
    }

    if (c->close || ev->timedout) {
        goto close;
    }

    n = recv(c->fd, buf, 1, MSG_PEEK);

    if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
        ev->ready = 0;

        if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
            goto close;
        }

        return;
    }

close:

    ngx_commerce_client_idle_close(item);
}


static void
ngx_commerce_client_idle_close(ngx_commerce_client_idle_t *item)
{
    ngx_commerce_gateway_t  *gw;

    gw = item->gw;

    ngx_queue_remove(&item->queue);
    gw->nidle--;
    ngx_queue_insert_head(&gw->free, &item->queue);

    ngx_commerce_client_close(item->connection);
    item->connection = NULL;
}


ngx_int_t
ngx_commerce_client_init_gateway(ngx_cycle_t *cycle, ngx_commerce_gateway_t *gw)
{
    ngx_uint_t                 i;
    ngx_commerce_client_idle_t  *items;

    ngx_queue_init(&gw->idle);
    ngx_queue_init(&gw->free);
    gw->nidle = 0;

    items = ngx_pcalloc(cycle->pool,
                        (gw->keepalive + 1) * sizeof(ngx_commerce_client_idle_t));
    if (items == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < gw->keepalive + 1; i++) {
        ngx_queue_insert_tail(&gw->free, &items[i].queue);
    }

    return NGX_OK;
}
