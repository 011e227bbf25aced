
/*
 * commerce_settlement: the one directive of the settlement domain, its
 * parameters as key=value, each checked by nginx -t with the directive's
 * and the parameter's name:
 *
 *   commerce_settlement upstream=payout timeout=3s connect_timeout=1s
 *                       callback_url=http://127.0.0.1:8080/api/v1/settlements/payouts/callback
 *                       hold=7d fee=5% minimum=10000 interval=1m
 *                       retries=3 check=5m weekly=on;
 *
 * upstream     the upstream {} of the payout API (required), with the
 *              peer parameters of an http event sink: host, timeout,
 *              connect_timeout, keepalive, ssl, ssl_verify, ssl_name,
 *              ssl_trusted_certificate.  A peer of its own, not a
 *              commerce_gateway: the card flow falls back from gateway to
 *              gateway, and must never fall back to the payout API.
 * callback_url where the payout API posts a payout's outcome (optional:
 *              without it the job pulls every pending payout after check)
 * hold         how long after its confirmation a part becomes settleable
 * fee          the platform's fee on the gross, VAT included, 0%..100%
 *              with at most 2 decimals
 * minimum      the least amount paid (won); less is carried over
 * interval     how often the jobs run (the weekly run and the payouts)
 * retries      failed tries of a payout after the first, then DEAD
 * check        how long a payout may stay PENDING before its status is
 *              pulled without a callback
 * weekly       on: the job settles the week of now() every interval;
 *              off: only the admin route does (tests)
 *
 * Without the directive nothing runs by itself; the routes use the
 * defaults (hold 7d, fee 5%, minimum 10000).
 */


#include "ngx_commerce_settlement.h"


#define NGX_COMMERCE_SETTLEMENT_DIRECTIVE  "commerce_settlement"


static ngx_int_t ngx_commerce_settlement_conf_param(ngx_conf_t *cf,
    ngx_commerce_settlement_conf_t *scf, ngx_str_t *key, ngx_str_t *val);


static ngx_commerce_settlement_conf_t  ngx_commerce_settlement_defaults = {
    .hold = 7 * 24 * 60 * 60,
    .fee_bp = 500,
    .minimum = 10000,
    .interval = 60000,
    .retries = 3,
    .check = 300,
    .weekly = 1
};


ngx_commerce_settlement_conf_t *
ngx_commerce_settlement_conf_get(ngx_commerce_main_conf_t *mcf)
{
    return mcf->settlement ? mcf->settlement
                           : &ngx_commerce_settlement_defaults;
}


char *
ngx_commerce_settlement_conf_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_commerce_main_conf_t *mcf = conf;

    u_char                          *eq;
    ngx_str_t                       *value, key, val;
    ngx_uint_t                       i;
    ngx_commerce_settlement_conf_t  *scf;

    if (mcf->settlement != NULL) {
        return "is duplicate";
    }

    scf = ngx_palloc(cf->pool, sizeof(ngx_commerce_settlement_conf_t));
    if (scf == NULL) {
        return NGX_CONF_ERROR;
    }

    *scf = ngx_commerce_settlement_defaults;

    {
        ngx_str_t  name = ngx_string("payout");

        ngx_commerce_gateway_peer_defaults(&scf->peer, &name);
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');

        if (eq == NULL || eq == value[i].data) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"" NGX_COMMERCE_SETTLEMENT_DIRECTIVE "\" "
                               "parameter \"%V\" is not key=value",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        key.data = value[i].data;
        key.len = eq - value[i].data;
        val.data = eq + 1;
        val.len = value[i].data + value[i].len - val.data;

        if (ngx_commerce_settlement_conf_param(cf, scf, &key, &val)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (scf->peer.upstream.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"" NGX_COMMERCE_SETTLEMENT_DIRECTIVE "\" "
                           "needs upstream=<the payout API's upstream>");
        return NGX_CONF_ERROR;
    }

    if (ngx_commerce_gateway_peer_conf(cf, &scf->peer) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    mcf->settlement = scf;

    return NGX_CONF_OK;
}


#define ngx_commerce_settlement_is(key, name)                                \
    ((key)->len == sizeof(name) - 1                                           \
     && ngx_strncmp((key)->data, name, sizeof(name) - 1) == 0)


static ngx_int_t
ngx_commerce_settlement_conf_param(ngx_conf_t *cf,
    ngx_commerce_settlement_conf_t *scf, ngx_str_t *key, ngx_str_t *val)
{
    time_t       t;
    ngx_int_t    n;
    ngx_msec_t   ms;
    const char  *want;

    n = ngx_commerce_gateway_peer_param(&scf->peer, key, val);

    if (n == NGX_OK && val->len) {
        return NGX_OK;
    }

    if (n != NGX_DECLINED) {
        want = "a valid value for the payout API's peer (upstream, host, "
               "timeout, connect_timeout, keepalive, ssl, ssl_verify, "
               "ssl_name, ssl_trusted_certificate)";
        goto invalid;
    }

    if (ngx_commerce_settlement_is(key, "callback_url")) {
        if (!(val->len > 7 && ngx_strncmp(val->data, "http://", 7) == 0)
            && !(val->len > 8 && ngx_strncmp(val->data, "https://", 8) == 0))
        {
            want = "an http:// or https:// URL";
            goto invalid;
        }

        if (ngx_strlchr(val->data, val->data + val->len, '"') != NULL
            || ngx_strlchr(val->data, val->data + val->len, '\\') != NULL
            || val->len > 512)
        {
            want = "a URL of at most 512 bytes without quotes";
            goto invalid;
        }

        scf->callback_url = *val;
        return NGX_OK;
    }

    if (ngx_commerce_settlement_is(key, "hold")
        || ngx_commerce_settlement_is(key, "check"))
    {
        t = ngx_parse_time(val, 1);

        if (t == (time_t) NGX_ERROR || t > 365 * 24 * 60 * 60
            || (t == 0 && key->data[0] == 'c'))
        {
            want = "a time such as 7d or 5m (at most 365d; check above 0)";
            goto invalid;
        }

        if (key->data[0] == 'h') {
            scf->hold = t;
        } else {
            scf->check = t;
        }

        return NGX_OK;
    }

    if (ngx_commerce_settlement_is(key, "fee")) {
        if (ngx_commerce_conf_percent(val, &scf->fee_bp) != NGX_OK) {
            want = "a percentage from 0% to 100% with at most 2 decimals";
            goto invalid;
        }

        return NGX_OK;
    }

    if (ngx_commerce_settlement_is(key, "minimum")) {
        n = ngx_atoi(val->data, val->len);

        if (n < 1 || n > 1000000000) {
            want = "an amount from 1 to 1000000000 won";
            goto invalid;
        }

        scf->minimum = n;
        return NGX_OK;
    }

    if (ngx_commerce_settlement_is(key, "interval")) {
        ms = ngx_parse_time(val, 0);

        if (ms == (ngx_msec_t) NGX_ERROR || ms < 100
            || ms > 24 * 60 * 60 * 1000)
        {
            want = "a time from 100ms to 1d";
            goto invalid;
        }

        scf->interval = ms;
        return NGX_OK;
    }

    if (ngx_commerce_settlement_is(key, "retries")) {
        n = ngx_atoi(val->data, val->len);

        if (n == NGX_ERROR || n > 20) {
            want = "a number from 0 to 20";
            goto invalid;
        }

        scf->retries = n;
        return NGX_OK;
    }

    if (ngx_commerce_settlement_is(key, "weekly")) {
        if (val->len == 2 && ngx_strncmp(val->data, "on", 2) == 0) {
            scf->weekly = 1;

        } else if (val->len == 3 && ngx_strncmp(val->data, "off", 3) == 0) {
            scf->weekly = 0;

        } else {
            want = "on or off";
            goto invalid;
        }

        return NGX_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"" NGX_COMMERCE_SETTLEMENT_DIRECTIVE "\" has no "
                       "parameter \"%V\" (upstream, host, timeout, "
                       "connect_timeout, keepalive, ssl*, callback_url, hold, "
                       "fee, minimum, interval, retries, check, weekly)", key);
    return NGX_ERROR;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"" NGX_COMMERCE_SETTLEMENT_DIRECTIVE "\" parameter "
                       "\"%V\" must be %s, not \"%V\"", key, want, val);
    return NGX_ERROR;
}



/* postconfiguration: the upstream named, the jobs */

ngx_int_t
ngx_commerce_settlement_conf_init(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf)
{
    ngx_commerce_settlement_conf_t  *scf;

    scf = mcf->settlement;

    if (scf == NULL) {
        return NGX_OK;
    }

    if (ngx_commerce_gateway_peer_check(cf, &scf->peer,
                                        NGX_COMMERCE_SETTLEMENT_DIRECTIVE)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the stores' accounts are sealed with the accounts' PII keyring */
    if (mcf->pii_keys_file.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"" NGX_COMMERCE_SETTLEMENT_DIRECTIVE "\" "
                           "needs commerce_pii_keys_file (the stores' "
                           "accounts are sealed with it)");
        return NGX_ERROR;
    }

    return ngx_commerce_settlement_job_init(cf, mcf, scf);
}
