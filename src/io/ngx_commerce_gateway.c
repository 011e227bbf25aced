
/*
 * Configuration of payment gateways:
 *
 *     upstream pg_a { server 127.0.0.1:9001; }
 *     commerce_zone 1m;
 *     commerce_gateway pg_a upstream=pg_a timeout=3s window=20 ...;
 *     commerce_gateway pg_b upstream=pg_b;          # fallback, in order
 *
 * The addresses are those nginx resolved for the upstream block at
 * configuration time; workers never resolve names.
 */


#include "ngx_commerce_client.h"

#include <ctype.h>


typedef struct {
    const char  *name;
    ngx_uint_t   type;          /* 0 number, 1 msec, 2 percent, 3 str */
    size_t       offset;
    ngx_int_t    low;
    ngx_int_t    high;
} ngx_commerce_gw_param_t;


static ngx_int_t ngx_commerce_gw_param(ngx_conf_t *cf,
    ngx_commerce_gateway_t *gw, ngx_str_t *arg);
static ngx_int_t ngx_commerce_gw_ssl(ngx_conf_t *cf,
    ngx_commerce_gateway_t *gw);


char *
ngx_commerce_gateway(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_commerce_main_conf_t *mcf = conf;

    const char              *err;
    ngx_str_t               *value;
    ngx_uint_t               i;
    ngx_commerce_gateway_t  *gw;

    value = cf->args->elts;

    if (mcf->gateways.elts == NULL
        && ngx_array_init(&mcf->gateways, cf->pool, 2,
                          sizeof(ngx_commerce_gateway_t))
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (mcf->gateways.nelts == NGX_COMMERCE_GW_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_gateway\": at most %d gateways",
                           NGX_COMMERCE_GW_MAX);
        return NGX_CONF_ERROR;
    }

    gw = mcf->gateways.elts;

    for (i = 0; i < mcf->gateways.nelts; i++) {
        if (gw[i].name.len == value[1].len
            && ngx_strncmp(gw[i].name.data, value[1].data, value[1].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_gateway\" \"%V\" is duplicate",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (value[1].len == 0 || value[1].len > 31) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_gateway\" name must be 1..31 bytes");
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < value[1].len; i++) {
        if (!(isalnum(value[1].data[i]) || value[1].data[i] == '_'
              || value[1].data[i] == '-'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_gateway\" name \"%V\" may only "
                               "have letters, digits, \"_\" and \"-\"",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    gw = ngx_array_push(&mcf->gateways);
    if (gw == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(gw, sizeof(ngx_commerce_gateway_t));

    ngx_commerce_gateway_peer_defaults(gw, &value[1]);
    gw->index = mcf->gateways.nelts - 1;
    gw->mode = CM_BR_CLOSED;

    gw->breaker.window = 20;
    gw->breaker.min_calls = 10;
    gw->breaker.failure_rate = 50;
    gw->breaker.slow_rate = 100;
    gw->breaker.slow_ms = 2000;
    gw->breaker.open_ms = 10000;
    gw->breaker.half_open_probes = 3;
    gw->breaker.probe_deadline_ms = 0;     /* default: timeout + 1s */

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_commerce_gw_param(cf, gw, &value[i]) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (gw->upstream.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_gateway\" \"%V\" needs upstream=",
                           &gw->name);
        return NGX_CONF_ERROR;
    }

    if (ngx_commerce_gateway_peer_conf(cf, gw) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (gw->breaker.probe_deadline_ms == 0) {
        gw->breaker.probe_deadline_ms = gw->connect_timeout + gw->timeout
                                        + 1000;
    }

    if (gw->breaker.min_calls > gw->breaker.window) {
        gw->breaker.min_calls = gw->breaker.window;
    }

    if (cm_br_conf_check(&gw->breaker, &err) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_gateway\" \"%V\": %s", &gw->name, err);
        return NGX_CONF_ERROR;
    }

    /*
     * A reference to an `upstream {}` block, defined before or after: it
     * is looked up by name once the whole configuration is read
     * (ngx_commerce_gateway_check), not added here, so that a missing one
     * is reported by its gateway rather than as nginx's implicit upstream
     * "with no port".
     */

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_commerce_gw_param(ngx_conf_t *cf, ngx_commerce_gateway_t *gw,
    ngx_str_t *arg)
{
    u_char      *eq;
    ngx_str_t    name, v;
    ngx_int_t    n;

    eq = ngx_strlchr(arg->data, arg->data + arg->len, '=');
    if (eq == NULL) {
        goto invalid;
    }

    name.data = arg->data;
    name.len = eq - arg->data;
    v.data = eq + 1;
    v.len = arg->data + arg->len - v.data;

    if (v.len == 0) {
        goto invalid;
    }

    n = ngx_commerce_gateway_peer_param(gw, &name, &v);

    if (n == NGX_OK) {
        return NGX_OK;
    }

    if (n == NGX_ERROR) {
        goto invalid;
    }

#define is(s) (name.len == sizeof(s) - 1                                     \
               && ngx_strncmp(name.data, s, sizeof(s) - 1) == 0)

    if (is("mode")) {
        if (v.len == 6 && ngx_strncmp(v.data, "normal", 6) == 0) {
            gw->mode = CM_BR_CLOSED;
        } else if (v.len == 11 && ngx_strncmp(v.data, "forced_open", 11) == 0)
        {
            gw->mode = CM_BR_FORCED_OPEN;
        } else if (v.len == 8 && ngx_strncmp(v.data, "disabled", 8) == 0) {
            gw->mode = CM_BR_DISABLED;
        } else {
            goto invalid;
        }

        return NGX_OK;
    }

    if (is("retry_base") || is("retry_cap")) {
        n = ngx_parse_time(&v, 0);
        if (n == NGX_ERROR || n <= 0 || n > 60000) {
            goto invalid;
        }

        if (is("retry_base")) {
            gw->retry_base = n;
        } else {
            gw->retry_cap = n;
        }

        return NGX_OK;
    }

    if (is("slow_call") || is("open") || is("probe_deadline")) {
        n = ngx_parse_time(&v, 0);
        if (n == NGX_ERROR || n <= 0 || n > 3600000) {
            goto invalid;
        }

        if (is("slow_call")) {
            gw->breaker.slow_ms = n;
        } else if (is("open")) {
            gw->breaker.open_ms = n;
        } else {
            gw->breaker.probe_deadline_ms = n;
        }

        return NGX_OK;
    }

    n = ngx_atoi(v.data, v.len);

    /* seed 003: at most 3 attempts */
    if (is("retries")) {
        if (n < 1 || n > 3) {
            goto invalid;
        }
        gw->retries = n;
        return NGX_OK;
    }

    if (is("retry_budget") || is("retry_budget_min")) {
        if (n == NGX_ERROR || n > (is("retry_budget") ? 100 : 100000)) {
            goto invalid;
        }

        /* stored + 1: 0 means "not set here" */
        if (is("retry_budget")) {
            gw->retry_budget = n + 1;
        } else {
            gw->retry_budget_min = n + 1;
        }

        return NGX_OK;
    }

    if (is("window")) {
        if (n < 1 || n > CM_BR_WINDOW_MAX) {
            goto invalid;
        }
        gw->breaker.window = n;
        return NGX_OK;
    }

    if (is("min_calls")) {
        if (n < 1 || n > CM_BR_WINDOW_MAX) {
            goto invalid;
        }
        gw->breaker.min_calls = n;
        return NGX_OK;
    }

    if (is("failure_rate") || is("slow_rate")) {
        if (n < 1 || n > 100) {
            goto invalid;
        }

        if (is("failure_rate")) {
            gw->breaker.failure_rate = n;
        } else {
            gw->breaker.slow_rate = n;
        }

        return NGX_OK;
    }

    if (is("probes")) {
        if (n < 1 || n > CM_BR_PROBES_MAX) {
            goto invalid;
        }
        gw->breaker.half_open_probes = n;
        return NGX_OK;
    }

#undef is

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"commerce_gateway\" \"%V\": invalid parameter "
                       "\"%V\"", &gw->name, arg);

    return NGX_ERROR;
}


/*
 * The parameters of a named HTTP peer, shared by the gateways and by other
 * peers of the module's client (the event sinks): upstream=, host=, TLS,
 * connect_timeout=, timeout=, keepalive=.  NGX_OK: taken; NGX_DECLINED:
 * not a peer parameter; NGX_ERROR: a peer parameter with a bad value.
 */

ngx_int_t
ngx_commerce_gateway_peer_param(ngx_commerce_gateway_t *gw, ngx_str_t *name_,
    ngx_str_t *v_)
{
    ngx_int_t  n;
    ngx_str_t  name, v;

    name = *name_;
    v = *v_;

#define is(s) (name.len == sizeof(s) - 1                                     \
               && ngx_strncmp(name.data, s, sizeof(s) - 1) == 0)

    if (is("upstream")) {
        gw->upstream = v;
        return NGX_OK;
    }

    if (is("host")) {
        gw->host = v;
        return NGX_OK;
    }

    if (is("ssl") || is("ssl_verify")) {
        if (v.len == 2 && ngx_strncmp(v.data, "on", 2) == 0) {
            n = 1;
        } else if (v.len == 3 && ngx_strncmp(v.data, "off", 3) == 0) {
            n = 0;
        } else {
            return NGX_ERROR;
        }

        if (is("ssl")) {
            gw->ssl_on = n;
        } else {
            gw->ssl_verify = n;
        }

        return NGX_OK;
    }

    if (is("ssl_name")) {
        gw->ssl_name = v;
        return NGX_OK;
    }

    if (is("ssl_trusted_certificate")) {
        gw->ssl_trusted = v;
        return NGX_OK;
    }

    if (is("connect_timeout") || is("timeout")) {
        n = ngx_parse_time(&v, 0);
        if (n == NGX_ERROR || n <= 0 || n > 3600000) {
            return NGX_ERROR;
        }

        if (is("connect_timeout")) {
            gw->connect_timeout = n;
        } else {
            gw->timeout = n;
        }

        return NGX_OK;
    }

    if (is("keepalive")) {
        n = ngx_atoi(v.data, v.len);
        if (n == NGX_ERROR || n > 1024) {
            return NGX_ERROR;
        }
        gw->keepalive = n;
        return NGX_OK;
    }

#undef is

    return NGX_DECLINED;
}


/*
 * TLS to the gateway: TLS 1.2/1.3, the peer verified against the system's
 * trust store (or ssl_trusted_certificate=) and the name ssl_name= (default
 * the Host header), SNI sent.
 */

static ngx_int_t
ngx_commerce_gw_ssl(ngx_conf_t *cf, ngx_commerce_gateway_t *gw)
{
#if (NGX_HTTP_SSL)
    u_char              *p;
    ngx_pool_cleanup_t  *cln;

    if (gw->ssl_name.len == 0) {
        gw->ssl_name = gw->host;
    }

    /* NUL-terminated for SSL_set_tlsext_host_name() */
    p = ngx_pnalloc(cf->pool, gw->ssl_name.len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, gw->ssl_name.data, gw->ssl_name.len);
    p[gw->ssl_name.len] = '\0';
    gw->ssl_name.data = p;

    gw->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (gw->ssl == NULL) {
        return NGX_ERROR;
    }

    gw->ssl->log = cf->log;

    if (ngx_ssl_create(gw->ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(gw->ssl);
        return NGX_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = gw->ssl;

    if (!gw->ssl_verify) {
        return NGX_OK;
    }

    if (gw->ssl_trusted.len) {
        if (ngx_ssl_trusted_certificate(cf, gw->ssl, &gw->ssl_trusted, 5)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (SSL_CTX_set_default_verify_paths(gw->ssl->ctx) != 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_gateway\" \"%V\": cannot load the "
                           "system trust store", &gw->name);
        return NGX_ERROR;
    }

    return NGX_OK;
#else
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"commerce_gateway\" \"%V\": ssl=on needs nginx "
                       "built with the http_ssl module", &gw->name);
    return NGX_ERROR;
#endif
}


/* after the whole configuration: every referenced upstream must exist */

ngx_int_t
ngx_commerce_gateway_check(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    ngx_uint_t                      i;
    ngx_commerce_gateway_t         *gw;

    if (mcf->gateways.nelts == 0) {
        return NGX_OK;
    }

    if (mcf->shm == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_gateway\" needs \"commerce_zone\"");
        return NGX_ERROR;
    }

    if (mcf->callback_url.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_gateway\" needs "
                           "\"commerce_gateway_callback_url\"");
        return NGX_ERROR;
    }

    gw = mcf->gateways.elts;

    for (i = 0; i < mcf->gateways.nelts; i++) {
        /* what a gateway does not set, the commerce_gateway_retry* do */
        if (gw[i].retries == 0) {
            gw[i].retries = mcf->retry_attempts;
        }

        if (gw[i].retry_base == 0) {
            gw[i].retry_base = mcf->retry_base;
        }

        if (gw[i].retry_cap == 0) {
            gw[i].retry_cap = mcf->retry_cap;
        }

        gw[i].retry_budget = gw[i].retry_budget ? gw[i].retry_budget - 1
                                                : mcf->retry_budget_ratio;
        gw[i].retry_budget_min = gw[i].retry_budget_min
                                 ? gw[i].retry_budget_min - 1
                                 : mcf->retry_budget_min;

        if (gw[i].retry_cap < gw[i].retry_base) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_gateway\" \"%V\": retry_cap "
                               "is shorter than retry_base", &gw[i].name);
            return NGX_ERROR;
        }

        if (ngx_commerce_gateway_peer_check(cf, &gw[i], "commerce_gateway")
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    mcf->shm->init_state = ngx_commerce_breaker_init_zone;
    mcf->shm->state_data = &mcf->gateways;

    return NGX_OK;
}


ngx_int_t
ngx_commerce_gateway_init_worker(ngx_cycle_t *cycle,
    ngx_commerce_main_conf_t *mcf)
{
    ngx_uint_t               i;
    ngx_commerce_gateway_t  *gw;

    gw = mcf->gateways.elts;

    for (i = 0; i < mcf->gateways.nelts; i++) {
        if (ngx_commerce_gateway_peer_init(cycle, &gw[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a peer's name and the defaults of its parameters (before they are read) */

void
ngx_commerce_gateway_peer_defaults(ngx_commerce_gateway_t *gw,
    ngx_str_t *name)
{
    gw->name = *name;
    gw->connect_timeout = 1000;
    gw->timeout = 3000;
    gw->keepalive = 16;
    gw->ssl_verify = 1;
}


/* a peer's Host default and TLS context, once its parameters are read */

ngx_int_t
ngx_commerce_gateway_peer_conf(ngx_conf_t *cf, ngx_commerce_gateway_t *gw)
{
    if (gw->host.len == 0) {
        gw->host = gw->upstream;
    }

    if (gw->ssl_on && ngx_commerce_gw_ssl(cf, gw) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* after the whole configuration: the peer's upstream {} must exist */

ngx_int_t
ngx_commerce_gateway_peer_check(ngx_conf_t *cf, ngx_commerce_gateway_t *gw,
    const char *directive)
{
    ngx_uint_t                      j;
    ngx_http_upstream_srv_conf_t  **uscfp;
    ngx_http_upstream_main_conf_t  *umcf;

    umcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_upstream_module);
    uscfp = umcf->upstreams.elts;

    for (j = 0; j < umcf->upstreams.nelts; j++) {
        if (uscfp[j]->srv_conf != NULL
            && uscfp[j]->host.len == gw->upstream.len
            && ngx_strncmp(uscfp[j]->host.data, gw->upstream.data,
                           gw->upstream.len) == 0)
        {
            gw->uscf = uscfp[j];
            break;
        }
    }

    if (gw->uscf == NULL || gw->uscf->servers == NULL
        || gw->uscf->servers->nelts == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" \"%V\": upstream \"%V\" not found or empty",
                           directive, &gw->name, &gw->upstream);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* in each worker: the peer's addresses (resolved by nginx) and its pool */

ngx_int_t
ngx_commerce_gateway_peer_init(ngx_cycle_t *cycle, ngx_commerce_gateway_t *gw)
{
    ngx_uint_t                   j, k, n;
    ngx_http_upstream_server_t  *us;

    us = gw->uscf->servers->elts;

    n = 0;
    for (j = 0; j < gw->uscf->servers->nelts; j++) {
        if (!us[j].backup && !us[j].down) {
            n += us[j].naddrs;
        }
    }

    if (n == 0) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "commerce: peer %V has no usable address", &gw->name);
        return NGX_ERROR;
    }

    gw->addrs = ngx_palloc(cycle->pool, n * sizeof(ngx_addr_t));
    if (gw->addrs == NULL) {
        return NGX_ERROR;
    }

    n = 0;
    for (j = 0; j < gw->uscf->servers->nelts; j++) {
        if (us[j].backup || us[j].down) {
            continue;
        }

        for (k = 0; k < us[j].naddrs; k++) {
            gw->addrs[n++] = us[j].addrs[k];
        }
    }

    gw->naddrs = n;
    gw->rr = ngx_pid;

    return ngx_commerce_client_init_gateway(cycle, gw);
}


/* the gateway a callback or a stored payment names, or NULL */

ngx_commerce_gateway_t *
ngx_commerce_gateway_by_name(ngx_str_t *name)
{
    ngx_uint_t                 i;
    ngx_commerce_gateway_t    *gw;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_commerce_conf_main();
    gw = mcf->gateways.elts;

    for (i = 0; i < mcf->gateways.nelts; i++) {
        if (gw[i].name.len == name->len
            && ngx_strncmp(gw[i].name.data, name->data, name->len) == 0)
        {
            /* another domain's own peer is no payment gateway */
            return gw[i].named_only ? NULL : &gw[i];
        }
    }

    return NULL;
}
