
/*
 * Event sinks: the commerce_event_sink directive, the relay's jobs, and the
 * names of the event types the metrics count by.
 *
 *     upstream dp { server 10.0.0.5:443; }
 *     commerce_event_sink dp http upstream=dp uri=/v1/events
 *                         events=order.*,payment.* ssl=on timeout=3s;
 *     commerce_event_sink internal redis stream=commerce:events
 *                         maxlen=100000;
 *
 * An http sink POSTs one event per request through the module's HTTP
 * client, with a gateway's peer parameters (upstream=, host=, TLS,
 * connect_timeout=, timeout=, keepalive=); a redis sink XADDs to a stream
 * through commerce_redis.  Each sink has its own relay job (worker 0).
 */


#include "ngx_commerce_event.h"

#include <ctype.h>


#define NGX_COMMERCE_EVENT_GAUGES_INTERVAL  2000


static ngx_commerce_event_conf_t *ngx_commerce_event_conf_get(
    ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf);
static ngx_int_t ngx_commerce_event_conf_param(ngx_conf_t *cf,
    ngx_commerce_event_sink_t *sink, ngx_str_t *arg);
static ngx_int_t ngx_commerce_event_conf_types(ngx_conf_t *cf,
    ngx_commerce_event_sink_t *sink, ngx_str_t *v);
static ngx_int_t ngx_commerce_event_conf_counters(ngx_conf_t *cf,
    ngx_commerce_event_sink_t *sink);


/* the types the metrics know, by slot (0: any other) */

static const char *const  ngx_commerce_event_types[NGX_COMMERCE_EVENT_NTYPES + 1]
    = {
    "other",
    "order.created",
    "order.paid",
    "order.cancelled",
    "order.expired",
    "payment.failed",
    "payment.cancelled",
    "coupon.issued",
    "user.signed_up",
    "user.withdrawn",
    NULL
};


ngx_uint_t
ngx_commerce_event_type_slot(u_char *type, size_t len)
{
    ngx_uint_t  i;

    for (i = 1; ngx_commerce_event_types[i] != NULL; i++) {
        if (ngx_strlen(ngx_commerce_event_types[i]) == len
            && ngx_strncmp(ngx_commerce_event_types[i], type, len) == 0)
        {
            return i;
        }
    }

    return 0;
}


/* the event domain's configuration, made by its first directive */

static ngx_commerce_event_conf_t *
ngx_commerce_event_conf_get(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    ngx_commerce_event_conf_t  *ecf;

    if (mcf->events != NULL) {
        return mcf->events;
    }

    ecf = ngx_pcalloc(cf->pool, sizeof(ngx_commerce_event_conf_t));
    if (ecf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&ecf->sinks, cf->pool, 2,
                       sizeof(ngx_commerce_event_sink_t))
        != NGX_OK
        || ngx_array_init(&ecf->channels, cf->pool, 2,
                          sizeof(ngx_commerce_notify_channel_t))
           != NGX_OK)
    {
        return NULL;
    }

    mcf->events = ecf;

    return ecf;
}


/* commerce_notify_channel NAME KIND [params]: ngx_commerce_event_notify_conf.c */

char *
ngx_commerce_event_channel_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_commerce_event_conf_t  *ecf;

    ecf = ngx_commerce_event_conf_get(cf, conf);
    if (ecf == NULL) {
        return NGX_CONF_ERROR;
    }

    return ngx_commerce_event_notify_conf_channel(cf, ecf);
}


char *
ngx_commerce_event_sink_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_commerce_main_conf_t *mcf = conf;

    ngx_str_t                  *value;
    ngx_uint_t                  i;
    ngx_commerce_event_conf_t  *ecf;
    ngx_commerce_event_sink_t  *sink;

    value = cf->args->elts;

    ecf = ngx_commerce_event_conf_get(cf, mcf);
    if (ecf == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ecf->sinks.nelts == NGX_COMMERCE_EVENT_SINKS_MAX) {
        return "has too many sinks (at most 8)";
    }

    if (value[1].len == 0 || value[1].len > 31) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_event_sink\" name must be 1..31 "
                           "bytes");
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < value[1].len; i++) {
        if (!(isalnum(value[1].data[i]) || value[1].data[i] == '_'
              || value[1].data[i] == '-'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_event_sink\" name \"%V\" may "
                               "only have letters, digits, \"_\" and \"-\"",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    sink = ecf->sinks.elts;

    for (i = 0; i < ecf->sinks.nelts; i++) {
        if (sink[i].name.len == value[1].len
            && ngx_strncmp(sink[i].name.data, value[1].data, value[1].len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_event_sink\" \"%V\" is duplicate",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    sink = ngx_array_push(&ecf->sinks);
    if (sink == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(sink, sizeof(ngx_commerce_event_sink_t));

    sink->name = value[1];

    if (value[2].len == 4 && ngx_strncmp(value[2].data, "http", 4) == 0) {
        sink->kind = NGX_COMMERCE_EVENT_HTTP;

    } else if (value[2].len == 5
               && ngx_strncmp(value[2].data, "redis", 5) == 0)
    {
        sink->kind = NGX_COMMERCE_EVENT_REDIS;

    } else if (value[2].len == 6
               && ngx_strncmp(value[2].data, "notify", 6) == 0)
    {
        sink->kind = NGX_COMMERCE_EVENT_NOTIFY;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_event_sink\" \"%V\": the kind must be "
                           "\"http\", \"redis\" or \"notify\", not \"%V\"",
                           &sink->name, &value[2]);
        return NGX_CONF_ERROR;
    }

    /* the peer of an http sink: a gateway's defaults */
    ngx_commerce_gateway_peer_defaults(&sink->peer, &sink->name);
    ngx_str_set(&sink->uri, "/v1/events");

    ngx_str_set(&sink->maxlen, "100000");

    sink->batch = 100;
    sink->concurrency = 16;
    sink->retries = 3;
    sink->retry_base = 500;
    sink->retry_cap = 30000;
    sink->interval = 200;

    /*
     * The sink is down (refused, timed out, 5xx for most events) when at
     * least half of the last 20 sends failed, 10 at least: then nothing
     * is claimed for open= (5s), then one event probes it.
     */
    sink->breaker.window = 20;
    sink->breaker.min_calls = 10;
    sink->breaker.failure_rate = 50;
    sink->breaker.slow_rate = 100;
    sink->breaker.slow_ms = 3600000;
    sink->breaker.open_ms = 5000;
    sink->breaker.half_open_probes = 1;

    for (i = 3; i < cf->args->nelts; i++) {
        if (ngx_commerce_event_conf_param(cf, sink, &value[i]) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (sink->types == NULL) {
        sink->types = (sink->kind == NGX_COMMERCE_EVENT_NOTIFY)
                      ? "{order.paid,payment.failed,order.cancelled}" : "{*}";
    }

    if (sink->retry_cap < sink->retry_base) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_event_sink\" \"%V\": retry_cap is "
                           "shorter than retry_base", &sink->name);
        return NGX_CONF_ERROR;
    }

    if (sink->kind == NGX_COMMERCE_EVENT_HTTP) {
        if (sink->peer.upstream.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_event_sink\" \"%V\" needs "
                               "upstream=", &sink->name);
            return NGX_CONF_ERROR;
        }

        if (ngx_commerce_gateway_peer_conf(cf, &sink->peer) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

    } else if (sink->kind == NGX_COMMERCE_EVENT_NOTIFY) {
        if (sink->channel_name.len == 0 || sink->templates_file.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_event_sink\" \"%V\" needs "
                               "channel= and templates=", &sink->name);
            return NGX_CONF_ERROR;
        }

    } else if (sink->stream.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_event_sink\" \"%V\" needs stream=",
                           &sink->name);
        return NGX_CONF_ERROR;
    }

    /*
     * A lease outlives the sends of a claim: the slowest of them ends by
     * its connect and answer timeouts (or the Redis command timeout), and
     * the claim is sent concurrency at a time.
     */
    if (sink->kind == NGX_COMMERCE_EVENT_NOTIFY) {
        /* its lease is known once its channels are: the configuration's end */
        return NGX_CONF_OK;
    }

    if (sink->lease == 0) {
        sink->lease = (sink->batch + sink->concurrency - 1)
                      / sink->concurrency
                      * (sink->peer.connect_timeout + sink->peer.timeout)
                      + 10000;
        sink->lease = ngx_min(sink->lease, 3600000);
    }

    sink->breaker.probe_deadline_ms = sink->lease;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_commerce_event_conf_param(ngx_conf_t *cf, ngx_commerce_event_sink_t *sink,
    ngx_str_t *arg)
{
    u_char     *eq;
    ngx_int_t   n;
    ngx_str_t   name, v;

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

#define is(s) (name.len == sizeof(s) - 1                                     \
               && ngx_strncmp(name.data, s, sizeof(s) - 1) == 0)

    if (is("events")) {
        return ngx_commerce_event_conf_types(cf, sink, &v);
    }

    if (sink->kind == NGX_COMMERCE_EVENT_HTTP) {
        n = ngx_commerce_gateway_peer_param(&sink->peer, &name, &v);

        if (n == NGX_OK) {
            return NGX_OK;
        }

        if (n == NGX_ERROR) {
            goto invalid;
        }

        if (is("uri")) {
            if (v.data[0] != '/') {
                goto invalid;
            }

            for (n = 0; n < (ngx_int_t) v.len; n++) {
                if (v.data[n] <= ' ' || v.data[n] >= 0x7f) {
                    goto invalid;
                }
            }

            sink->uri = v;
            return NGX_OK;
        }

    } else if (sink->kind == NGX_COMMERCE_EVENT_NOTIFY) {
        n = ngx_commerce_event_notify_conf_param(cf, sink, &name, &v);

        if (n == NGX_OK) {
            return NGX_OK;
        }

        if (n == NGX_ERROR) {
            goto invalid;
        }

    } else {
        if (is("stream")) {
            if (v.len > 200) {
                goto invalid;
            }

            sink->stream = v;
            return NGX_OK;
        }

        if (is("maxlen")) {
            n = ngx_atoi(v.data, v.len);
            if (n < 1 || n > 1000000000) {
                goto invalid;
            }

            sink->maxlen = v;
            return NGX_OK;
        }
    }

    if (is("retry_base") || is("retry_cap") || is("interval") || is("lease")
        || is("open"))
    {
        n = ngx_parse_time(&v, 0);
        if (n == NGX_ERROR || n <= 0 || n > 3600000
            || (is("lease") && n < 1000))
        {
            goto invalid;
        }

        if (is("retry_base")) {
            sink->retry_base = n;
        } else if (is("retry_cap")) {
            sink->retry_cap = n;
        } else if (is("interval")) {
            sink->interval = n;
        } else if (is("open")) {
            sink->breaker.open_ms = n;
        } else {
            sink->lease = n;
        }

        return NGX_OK;
    }

    n = ngx_atoi(v.data, v.len);

    /* the issue: at most 3 retries, then the dead-letter queue */
    if (is("retries")) {
        if (n == NGX_ERROR || n > 3) {
            goto invalid;
        }
        sink->retries = n;
        return NGX_OK;
    }

    if (is("batch")) {
        if (n < 1 || n > 1000) {
            goto invalid;
        }
        sink->batch = n;
        return NGX_OK;
    }

    if (is("concurrency")) {
        if (n < 1 || n > 256) {
            goto invalid;
        }
        sink->concurrency = n;
        return NGX_OK;
    }

#undef is

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"commerce_event_sink\" \"%V\": invalid parameter "
                       "\"%V\"", &sink->name, arg);

    return NGX_ERROR;
}


/*
 * events=order.*,payment.failed: types (a.b), families (a.*) or *; kept as
 * the text of a Postgres array, which these characters cannot break.
 */

static ngx_int_t
ngx_commerce_event_conf_types(ngx_conf_t *cf, ngx_commerce_event_sink_t *sink,
    ngx_str_t *v)
{
    u_char      *p, *last, *start, *dot, *q;
    ngx_uint_t   n;

    p = v->data;
    last = v->data + v->len;
    n = 0;

    while (p <= last) {
        start = p;

        while (p < last && *p != ',') {
            p++;
        }

        n++;

        if (p - start == 1 && *start == '*') {
            p++;
            continue;
        }

        dot = ngx_strlchr(start, p, '.');

        if (p - start > 63 || dot == NULL || dot == start || dot == p - 1) {
            goto invalid;
        }

        for (q = start; q < p; q++) {
            if (q == dot) {
                continue;
            }

            if ((*q >= 'a' && *q <= 'z') || *q == '_') {
                continue;
            }

            /* a family: a.* */
            if (*q == '*' && q == dot + 1 && q == p - 1) {
                continue;
            }

            goto invalid;
        }

        p++;
    }

    if (n > 32) {
        goto invalid;
    }

    sink->types = ngx_pnalloc(cf->pool, v->len + 3);
    if (sink->types == NULL) {
        return NGX_ERROR;
    }

    *ngx_sprintf((u_char *) sink->types, "{%V}", v) = '\0';

    return NGX_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"commerce_event_sink\" \"%V\": invalid events "
                       "\"%V\" (a comma-separated list of types such as "
                       "order.paid, families such as order.* or *)",
                       &sink->name, v);

    return NGX_ERROR;
}


/* after the whole configuration: peers, Redis, the relay's jobs */

ngx_int_t
ngx_commerce_event_init(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    ngx_uint_t                  i;
    ngx_commerce_event_conf_t  *ecf;
    ngx_commerce_event_sink_t  *sink;

    ecf = mcf->events;

    if (ecf == NULL || !mcf->used) {
        return NGX_OK;
    }

    sink = ecf->sinks.elts;

    for (i = 0; i < ecf->sinks.nelts; i++) {
        if (sink[i].kind == NGX_COMMERCE_EVENT_HTTP) {
            if (ngx_commerce_gateway_peer_check(cf, &sink[i].peer,
                                                "commerce_event_sink")
                != NGX_OK)
            {
                return NGX_ERROR;
            }

        } else if (sink[i].kind == NGX_COMMERCE_EVENT_NOTIFY) {
            if (ngx_commerce_event_notify_conf_sink(cf, ecf, &sink[i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }

        } else if (mcf->redis == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_event_sink\" \"%V\": a redis "
                               "sink needs \"commerce_redis\"",
                               &sink[i].name);
            return NGX_ERROR;
        }

        if (ngx_commerce_event_conf_counters(cf, &sink[i]) != NGX_OK) {
            return NGX_ERROR;
        }

        *ngx_sprintf((u_char *) sink[i].batch_s, "%ui", sink[i].batch)
            = '\0';
        *ngx_sprintf((u_char *) sink[i].lease_s, "%M", sink[i].lease)
            = '\0';

        sink[i].job.name = "event relay";
        sink[i].job.first = 1;
        sink[i].job.interval = sink[i].interval;
        sink[i].job.run = ngx_commerce_event_relay_run;
        sink[i].job.data = &sink[i];

        if (ngx_commerce_job_add(cf, &sink[i].job) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    ecf->gauges.name = "event gauges";
    ecf->gauges.first = 500;
    ecf->gauges.interval = NGX_COMMERCE_EVENT_GAUGES_INTERVAL;
    ecf->gauges.run = ngx_commerce_event_relay_gauges;
    ecf->gauges.data = ecf;

    return ngx_commerce_job_add(cf, &ecf->gauges);
}


/*
 * The sink's counters in the registry of domains' counters (the metrics
 * renderer prints them): delivered, retried and dead by type, and the
 * gauges read from Postgres.
 */

static ngx_int_t
ngx_commerce_event_conf_counters(ngx_conf_t *cf,
    ngx_commerce_event_sink_t *sink)
{
    u_char      *labels;
    ngx_uint_t   k, o;

    static const char  *family[3] = {
        "commerce_events_delivered_total",
        "commerce_events_retried_total",
        "commerce_events_dead_total"
    };

    static const char  *help[3] = {
        "Events a sink accepted.",
        "Failed deliveries that will be retried (5xx, 408, 429, timeout, "
        "refused or broken connection, Redis error; a probe of a sink that "
        "is down).",
        "Events given up on: retries exhausted, or refused for good (4xx)."
    };

    for (o = 0; o < 3; o++) {
        for (k = 0; k < NGX_COMMERCE_EVENT_NTYPES; k++) {
            labels = ngx_pnalloc(cf->pool, sizeof("sink=\"\",type=\"\"")
                                 + sink->name.len
                                 + ngx_strlen(ngx_commerce_event_types[k]));
            if (labels == NULL) {
                return NGX_ERROR;
            }

            *ngx_sprintf(labels, "sink=\"%V\",type=\"%s\"", &sink->name,
                         ngx_commerce_event_types[k]) = '\0';

            sink->counters[k][o] = ngx_commerce_conf_counter(cf, family[o],
                                       "counter", help[o], (char *) labels);
            if (sink->counters[k][o] == NGX_ERROR) {
                return NGX_ERROR;
            }
        }
    }

    labels = ngx_pnalloc(cf->pool, sizeof("sink=\"\"") + sink->name.len);
    if (labels == NULL) {
        return NGX_ERROR;
    }

    *ngx_sprintf(labels, "sink=\"%V\"", &sink->name) = '\0';

    sink->backlog = ngx_commerce_conf_counter(cf, "commerce_events_backlog",
                        "gauge", "Events not yet delivered to a sink "
                        "(pending, leased or in backoff; read every 2 s).",
                        (char *) labels);
    sink->oldest = ngx_commerce_conf_counter(cf,
                        "commerce_events_oldest_age_seconds", "gauge",
                        "Age of the oldest event not yet delivered to a "
                        "sink (0: none).", (char *) labels);
    sink->dead = ngx_commerce_conf_counter(cf, "commerce_events_dead",
                        "gauge", "Events in the dead-letter queue of a sink.",
                        (char *) labels);

    if (sink->backlog == NGX_ERROR || sink->oldest == NGX_ERROR
        || sink->dead == NGX_ERROR)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_commerce_event_init_worker(ngx_cycle_t *cycle,
    ngx_commerce_main_conf_t *mcf)
{
    ngx_uint_t                  i;
    ngx_commerce_event_conf_t  *ecf;
    ngx_commerce_event_sink_t  *sink;

    ecf = mcf->events;

    if (ecf == NULL) {
        return NGX_OK;
    }

    if (ngx_commerce_event_notify_conf_init_worker(cycle, ecf) != NGX_OK) {
        return NGX_ERROR;
    }

    sink = ecf->sinks.elts;

    for (i = 0; i < ecf->sinks.nelts; i++) {
        sink[i].registered = 0;
        sink[i].run = NULL;
        sink[i].probing = 0;
        cm_br_init(&sink[i].br, ngx_current_msec);
        sink[i].br_seen = cm_br_seq(&sink[i].br);

        if (sink[i].kind == NGX_COMMERCE_EVENT_HTTP
            && ngx_commerce_gateway_peer_init(cycle, &sink[i].peer) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}
