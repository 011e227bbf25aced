
/*
 * commerce_shipping: the carrier and the times of shipping and purchase
 * confirmation, key=value parameters, all optional:
 *
 *     upstream carrier { server 127.0.0.1:9300; }
 *     commerce_gateway carrier_sim upstream=carrier timeout=3s;
 *     commerce_shipping gateway=carrier_sim key=SweetTrackerKey
 *                       callback_url=http://10.0.0.5/api/v1/shipping/callback
 *                       poll_after=30m interval=10s lease=1m
 *                       confirm_after=8d points=1% batch=100;
 *
 * gateway= names a commerce_gateway the carrier's tracking service is
 * reached through (its upstream, timeouts, breaker); that gateway is the
 * carrier's only, payments never pick it.  Without gateway= parcels are
 * recorded but nobody registers or polls them.  Without the directive:
 * no jobs (no automatic confirmation, no carrier), points=1%.
 */


#include "ngx_commerce_shipping.h"

#include <ctype.h>


static ngx_int_t ngx_commerce_shipping_conf_param(ngx_conf_t *cf,
    ngx_commerce_shipping_conf_t *scf, ngx_str_t *name, ngx_str_t *v);
static void ngx_commerce_shipping_conf_defaults(
    ngx_commerce_shipping_conf_t *scf);


/* the values in effect without the directive */
static ngx_commerce_shipping_conf_t  ngx_commerce_shipping_conf_none;


ngx_commerce_shipping_conf_t *
ngx_commerce_shipping_conf_get(void)
{
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_commerce_conf_main();

    if (mcf->shipping != NULL) {
        return mcf->shipping;
    }

    ngx_commerce_shipping_conf_defaults(&ngx_commerce_shipping_conf_none);

    return &ngx_commerce_shipping_conf_none;
}


static void
ngx_commerce_shipping_conf_defaults(ngx_commerce_shipping_conf_t *scf)
{
    scf->poll_after = 30 * 60;
    scf->lease = 60;
    scf->confirm_after = 8 * 86400;      /* the open markets' 8 days */
    scf->interval = 10000;
    scf->points_bp = 100;                /* 1% */
    scf->batch = 100;
}


char *
ngx_commerce_shipping_conf_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_commerce_main_conf_t *mcf = conf;

    u_char                        *eq;
    ngx_str_t                     *value, name, v;
    ngx_uint_t                     i;
    ngx_commerce_shipping_conf_t  *scf;

    if (mcf->shipping != NULL) {
        return "is duplicate";
    }

    scf = ngx_pcalloc(cf->pool, sizeof(ngx_commerce_shipping_conf_t));
    if (scf == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_commerce_shipping_conf_defaults(scf);
    scf->configured = 1;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');

        if (eq == NULL || eq == value[i].data
            || eq == value[i].data + value[i].len - 1)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_shipping\": \"%V\" is not "
                               "name=value", &value[i]);
            return NGX_CONF_ERROR;
        }

        name.data = value[i].data;
        name.len = eq - value[i].data;
        v.data = eq + 1;
        v.len = value[i].data + value[i].len - v.data;

        if (ngx_commerce_shipping_conf_param(cf, scf, &name, &v) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (scf->gateway_name.len && scf->callback_url.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_shipping\": gateway= needs "
                           "callback_url=");
        return NGX_CONF_ERROR;
    }

    if (scf->gateway_name.len && scf->key.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_shipping\": gateway= needs key=");
        return NGX_CONF_ERROR;
    }

    mcf->shipping = scf;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_commerce_shipping_conf_param(ngx_conf_t *cf,
    ngx_commerce_shipping_conf_t *scf, ngx_str_t *name, ngx_str_t *v)
{
    size_t     k;
    ngx_int_t  n;

#define is(s) (name->len == sizeof(s) - 1                                    \
               && ngx_strncmp(name->data, s, sizeof(s) - 1) == 0)

    if (is("gateway")) {
        for (k = 0; k < v->len; k++) {
            if (!(isalnum(v->data[k]) || v->data[k] == '_'
                  || v->data[k] == '-'))
            {
                goto invalid;
            }
        }

        if (v->len > 31) {
            goto invalid;
        }

        scf->gateway_name = *v;
        return NGX_OK;
    }

    if (is("key")) {
        /* sent in a query string and a JSON string as it is */
        for (k = 0; k < v->len; k++) {
            if (!(isalnum(v->data[k]) || v->data[k] == '_'
                  || v->data[k] == '-' || v->data[k] == '.'))
            {
                goto invalid;
            }
        }

        if (v->len > 64) {
            goto invalid;
        }

        scf->key = *v;
        return NGX_OK;
    }

    if (is("callback_url")) {
        if (!((v->len > 7 && ngx_strncmp(v->data, "http://", 7) == 0)
              || (v->len > 8 && ngx_strncmp(v->data, "https://", 8) == 0))
            || v->len > 512)
        {
            goto invalid;
        }

        /* the module appends ?carrier=; JSON-safe as it is */
        for (k = 0; k < v->len; k++) {
            if (v->data[k] <= ' ' || v->data[k] >= 0x7f || v->data[k] == '"'
                || v->data[k] == '\\' || v->data[k] == '?'
                || v->data[k] == '#')
            {
                goto invalid;
            }
        }

        scf->callback_url = *v;
        return NGX_OK;
    }

    if (is("poll_after") || is("lease") || is("confirm_after")) {
        n = ngx_parse_time(v, 1);

        if (n == NGX_ERROR || n < 1 || n > 365 * 86400) {
            goto invalid;
        }

        if (is("poll_after")) {
            scf->poll_after = n;
        } else if (is("lease")) {
            scf->lease = n;
        } else {
            scf->confirm_after = n;
        }

        return NGX_OK;
    }

    if (is("interval")) {
        n = ngx_parse_time(v, 0);

        if (n == NGX_ERROR || n < 100 || n > 3600000) {
            goto invalid;
        }

        scf->interval = n;
        return NGX_OK;
    }

    if (is("points")) {
        if (ngx_commerce_conf_percent(v, &scf->points_bp) != NGX_OK) {
            goto invalid;
        }

        return NGX_OK;
    }

    if (is("batch")) {
        n = ngx_atoi(v->data, v->len);

        if (n == NGX_ERROR || n < 1 || n > 1000) {
            goto invalid;
        }

        scf->batch = n;
        return NGX_OK;
    }

#undef is

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"commerce_shipping\": unknown parameter \"%V\"",
                       name);
    return NGX_ERROR;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"commerce_shipping\": invalid %V=\"%V\"", name, v);
    return NGX_ERROR;
}



/*
 * After the whole configuration is read: the gateway named exists (and is
 * the carrier's: payments never pick it), then the jobs.
 */

ngx_int_t
ngx_commerce_shipping_conf_init(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    ngx_uint_t                     i;
    ngx_commerce_gateway_t        *gw;
    ngx_commerce_shipping_conf_t  *scf;

    scf = mcf->shipping;

    if (scf == NULL || !mcf->used) {
        return NGX_OK;
    }

    if (scf->gateway_name.len) {
        gw = mcf->gateways.elts;

        for (i = 0; i < mcf->gateways.nelts; i++) {
            if (gw[i].name.len == scf->gateway_name.len
                && ngx_strncmp(gw[i].name.data, scf->gateway_name.data,
                               gw[i].name.len) == 0)
            {
                break;
            }
        }

        if (i == mcf->gateways.nelts) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_shipping\": gateway=\"%V\" is "
                               "not a commerce_gateway",
                               &scf->gateway_name);
            return NGX_ERROR;
        }

        scf->gw = &gw[i];
        scf->gw->named_only = 1;
    }

    return ngx_commerce_shipping_carrier_jobs(cf, scf);
}
