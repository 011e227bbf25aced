
/*
 * Notifications, configuration: the channels (commerce_notify_channel),
 * the notify sinks' parameters, the messages and their templates.
 *
 *     upstream kakao { server 10.0.0.7:443; }
 *     commerce_notify_channel kakao alimtalk upstream=kakao ssl=on
 *                             app_key=AbCd secret_file=kakao.secret
 *                             sender_key=5f2e...;
 *     commerce_notify_channel sms sms upstream=sms ssl=on app_key=AbCd
 *                             secret_file=sms.secret sender=0215880000;
 *     commerce_event_sink buyer notify channel=kakao failover=sms
 *                         templates=notify-templates.json;
 *
 * A message is a row of ngx_commerce_event_notify_messages (the event
 * type, where its recipient is in the event, the template's key) and a
 * template in the templates file (JSON: {"order_paid": {"templateCode",
 * "subject", "text"}}).  A template's #{variable}s are those of
 * ngx_commerce_event_notify_vars: the recipient's name, what
 * cm_notify_recipient() says of the order, and the event's own fields.
 */


#include "ngx_commerce_event.h"

#include <ctype.h>


typedef struct {
    ngx_str_t                    type;
    ngx_str_t                    user_field;
    ngx_str_t                    key;
} ngx_commerce_event_notify_message_t;


static ngx_int_t ngx_commerce_event_notify_conf_param_ch(ngx_conf_t *cf,
    ngx_commerce_notify_channel_t *ch, ngx_str_t *arg);
static ngx_int_t ngx_commerce_event_notify_conf_token(ngx_str_t *v,
    size_t max);
static ngx_int_t ngx_commerce_event_notify_conf_secret(ngx_conf_t *cf,
    ngx_commerce_notify_channel_t *ch);
static ngx_commerce_notify_channel_t *ngx_commerce_event_notify_conf_find(
    ngx_conf_t *cf, ngx_commerce_event_conf_t *ecf,
    ngx_commerce_event_sink_t *sink, ngx_str_t *name);
static ngx_int_t ngx_commerce_event_notify_conf_templates(ngx_conf_t *cf,
    ngx_commerce_event_sink_t *sink);
static ngx_int_t ngx_commerce_event_notify_conf_text(ngx_conf_t *cf,
    ngx_commerce_event_sink_t *sink, yajl_val t, const char *field,
    ngx_str_t *key, ngx_str_t *out, ngx_uint_t required);
static ngx_int_t ngx_commerce_event_notify_conf_counters(ngx_conf_t *cf,
    ngx_commerce_event_sink_t *sink);


/*
 * The messages.  A new one (order.shipped, a settlement statement to a
 * seller: user_field "sellerId") is a row here and a template in the file.
 */

static ngx_commerce_event_notify_message_t
    ngx_commerce_event_notify_messages[] = {
    { ngx_string("order.paid"), ngx_string("userId"),
      ngx_string("order_paid") },
    { ngx_string("payment.failed"), ngx_string("userId"),
      ngx_string("payment_failed") },
    { ngx_string("order.cancelled"), ngx_string("userId"),
      ngx_string("order_cancelled") },
    { ngx_string("waitlist.held"), ngx_string("userId"),
      ngx_string("waitlist_held") },
    { ngx_string("order.shipped"), ngx_string("userId"),
      ngx_string("order_shipped") },
    { ngx_string("order.delivered"), ngx_string("userId"),
      ngx_string("order_delivered") },
    { ngx_string("settlement.statement"), ngx_string("sellerId"),
      ngx_string("settlement_statement") },
    { ngx_null_string, ngx_null_string, ngx_null_string }
};


/*
 * The variables a template may use: the recipient's name, the order's
 * (cm_notify_recipient's "vars") and the event's fields.
 */

static const char  *ngx_commerce_event_notify_vars[] = {
    "name", "orderId", "productName", "itemCount", "totalAmount",
    "paymentAmount", "orderStatus", "reason", "quantity", "carrier",
    "trackingNumber",
    /* settlement.statement's */
    "storeName", "week", "salesAmount", "refundAmount", "feeAmount",
    "paidAmount", "carriedAmount", NULL
};


char *
ngx_commerce_event_notify_conf_channel(ngx_conf_t *cf,
    ngx_commerce_event_conf_t *ecf)
{
    u_char                         *p;
    ngx_str_t                      *value;
    ngx_uint_t                      i;
    ngx_commerce_notify_channel_t  *ch;

    value = cf->args->elts;

    if (ecf->channels.nelts == NGX_COMMERCE_EVENT_SINKS_MAX) {
        return "has too many channels (at most 8)";
    }

    if (value[1].len == 0 || value[1].len > 31) {
        return "name must be 1..31 bytes";
    }

    for (i = 0; i < value[1].len; i++) {
        if (!(isalnum(value[1].data[i]) || value[1].data[i] == '_'
              || value[1].data[i] == '-'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_notify_channel\" name \"%V\" may "
                               "only have letters, digits, \"_\" and \"-\"",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    ch = ecf->channels.elts;

    for (i = 0; i < ecf->channels.nelts; i++) {
        if (ch[i].name.len == value[1].len
            && ngx_strncmp(ch[i].name.data, value[1].data, value[1].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_notify_channel\" \"%V\" is "
                               "duplicate", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    ch = ngx_array_push(&ecf->channels);
    if (ch == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(ch, sizeof(ngx_commerce_notify_channel_t));

    ch->name = value[1];

    if (value[2].len == 8 && ngx_strncmp(value[2].data, "alimtalk", 8) == 0) {
        ch->kind = NGX_COMMERCE_NOTIFY_ALIMTALK;

    } else if (value[2].len == 3 && ngx_strncmp(value[2].data, "sms", 3) == 0)
    {
        ch->kind = NGX_COMMERCE_NOTIFY_SMS;

    } else if (value[2].len == 5
               && ngx_strncmp(value[2].data, "email", 5) == 0)
    {
        ch->kind = NGX_COMMERCE_NOTIFY_EMAIL;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_notify_channel\" \"%V\": the kind must "
                           "be \"alimtalk\", \"sms\" or \"email\", not \"%V\"",
                           &ch->name, &value[2]);
        return NGX_CONF_ERROR;
    }

    ngx_commerce_gateway_peer_defaults(&ch->peer, &ch->name);

    for (i = 3; i < cf->args->nelts; i++) {
        if (ngx_commerce_event_notify_conf_param_ch(cf, ch, &value[i])
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (ch->peer.upstream.len == 0 || ch->secret_file.len == 0
        || (ch->kind != NGX_COMMERCE_NOTIFY_EMAIL && ch->app_key.len == 0)
        || (ch->kind == NGX_COMMERCE_NOTIFY_ALIMTALK
            && ch->sender_key.len == 0)
        || (ch->kind != NGX_COMMERCE_NOTIFY_ALIMTALK && ch->sender.len == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_notify_channel\" \"%V\" needs "
                           "upstream=, secret_file=%s", &ch->name,
                           ch->kind == NGX_COMMERCE_NOTIFY_ALIMTALK
                           ? ", app_key= and sender_key="
                           : ch->kind == NGX_COMMERCE_NOTIFY_SMS
                           ? ", app_key= and sender=" : " and sender=");
        return NGX_CONF_ERROR;
    }

    if (ngx_commerce_event_notify_conf_secret(cf, ch) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    switch (ch->kind) {

    case NGX_COMMERCE_NOTIFY_ALIMTALK:
        p = ngx_pnalloc(cf->pool, sizeof("/alimtalk/v2.3/appkeys//messages")
                                  + ch->app_key.len);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        ch->uri.data = p;
        ch->uri.len = ngx_sprintf(p, "/alimtalk/v2.3/appkeys/%V/messages",
                                  &ch->app_key)
                      - p;
        break;

    case NGX_COMMERCE_NOTIFY_SMS:
        p = ngx_pnalloc(cf->pool, sizeof("/sms/v3.0/appKeys//sender/sms")
                                  + ch->app_key.len);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        ch->uri.data = p;
        ch->uri.len = ngx_sprintf(p, "/sms/v3.0/appKeys/%V/sender/sms",
                                  &ch->app_key)
                      - p;
        break;

    default: /* NGX_COMMERCE_NOTIFY_EMAIL */
        ngx_str_set(&ch->uri, "/v3/mail/send");
        break;
    }

    if (ngx_commerce_gateway_peer_conf(cf, &ch->peer) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_commerce_event_notify_conf_param_ch(ngx_conf_t *cf,
    ngx_commerce_notify_channel_t *ch, ngx_str_t *arg)
{
    u_char     *eq;
    size_t      i;
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

    n = ngx_commerce_gateway_peer_param(&ch->peer, &name, &v);

    if (n == NGX_OK) {
        return NGX_OK;
    }

    if (n == NGX_ERROR) {
        goto invalid;
    }

#define is(s) (name.len == sizeof(s) - 1                                     \
               && ngx_strncmp(name.data, s, sizeof(s) - 1) == 0)

    if (is("secret_file")) {
        ch->secret_file = v;
        return NGX_OK;
    }

    if (is("app_key") && ch->kind != NGX_COMMERCE_NOTIFY_EMAIL) {
        if (ngx_commerce_event_notify_conf_token(&v, 64) != NGX_OK) {
            goto invalid;
        }

        ch->app_key = v;
        return NGX_OK;
    }

    if (is("sender_key") && ch->kind == NGX_COMMERCE_NOTIFY_ALIMTALK) {
        if (ngx_commerce_event_notify_conf_token(&v, 64) != NGX_OK) {
            goto invalid;
        }

        ch->sender_key = v;
        return NGX_OK;
    }

    /* the SMS sender number: digits, registered with the provider */
    if (is("sender") && ch->kind == NGX_COMMERCE_NOTIFY_SMS) {
        if (v.len < 8 || v.len > 15) {
            goto invalid;
        }

        for (i = 0; i < v.len; i++) {
            if (v.data[i] < '0' || v.data[i] > '9') {
                goto invalid;
            }
        }

        ch->sender = v;
        return NGX_OK;
    }

    /* the From address: a plain address, nothing JSON would have to escape */
    if (is("sender") && ch->kind == NGX_COMMERCE_NOTIFY_EMAIL) {
        eq = ngx_strlchr(v.data, v.data + v.len, '@');

        if (v.len > 254 || eq == NULL || eq == v.data
            || eq == v.data + v.len - 1)
        {
            goto invalid;
        }

        for (i = 0; i < v.len; i++) {
            if (v.data[i] <= ' ' || v.data[i] >= 0x7f || v.data[i] == '"'
                || v.data[i] == '\\' || v.data[i] == '<' || v.data[i] == '>'
                || (v.data[i] == '@' && v.data + i != eq))
            {
                goto invalid;
            }
        }

        ch->sender = v;
        return NGX_OK;
    }

    /* the From name: text (escaped when sent), at most 100 bytes */
    if (is("sender_name") && ch->kind == NGX_COMMERCE_NOTIFY_EMAIL) {
        if (v.len > 100) {
            goto invalid;
        }

        for (i = 0; i < v.len; i++) {
            if (v.data[i] < ' ' || v.data[i] == 0x7f) {
                goto invalid;
            }
        }

        ch->sender_name = v;
        return NGX_OK;
    }

#undef is

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"commerce_notify_channel\" \"%V\": invalid "
                       "parameter \"%V\"", &ch->name, arg);

    return NGX_ERROR;
}


/* letters, digits, '_' and '-': safe in a path, a header and JSON */

static ngx_int_t
ngx_commerce_event_notify_conf_token(ngx_str_t *v, size_t max)
{
    size_t  i;

    if (v->len > max) {
        return NGX_ERROR;
    }

    for (i = 0; i < v->len; i++) {
        if (!(isalnum(v->data[i]) || v->data[i] == '_' || v->data[i] == '-'))
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * The provider's secret (X-Secret-Key, or SendGrid's API key): the first
 * line of an owner-only file, printable ASCII (it goes in a header).
 */

static ngx_int_t
ngx_commerce_event_notify_conf_secret(ngx_conf_t *cf,
    ngx_commerce_notify_channel_t *ch)
{
    size_t     i;
    ngx_str_t  text;

    if (ngx_commerce_conf_read_file(cf, "commerce_notify_channel",
                                    &ch->secret_file, 4096, 1, &text)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < text.len && text.data[i] != '\n'; i++) {
        if (text.data[i] == '\r' && i + 1 < text.len
            && text.data[i + 1] == '\n')
        {
            break;
        }

        if (text.data[i] <= ' ' || text.data[i] >= 0x7f) {
            i = 0;
            break;
        }
    }

    if (i == 0 || i > 512) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_notify_channel\" \"%V\": the first "
                           "line of \"%V\" must be the secret (1..512 "
                           "printable characters, no space)",
                           &ch->name, &ch->secret_file);
        return NGX_ERROR;
    }

    ch->secret.data = text.data;
    ch->secret.len = i;

    return NGX_OK;
}


/* a notify sink's own parameters: NGX_DECLINED for the relay's */

ngx_int_t
ngx_commerce_event_notify_conf_param(ngx_conf_t *cf,
    ngx_commerce_event_sink_t *sink, ngx_str_t *name, ngx_str_t *v)
{
    ngx_str_t  *dst;

    if (name->len == 7 && ngx_strncmp(name->data, "channel", 7) == 0) {
        dst = &sink->channel_name;

    } else if (name->len == 8 && ngx_strncmp(name->data, "failover", 8) == 0)
    {
        dst = &sink->failover_name;

    } else if (name->len == 9
               && ngx_strncmp(name->data, "templates", 9) == 0)
    {
        sink->templates_file = *v;
        return NGX_OK;

    } else {
        return NGX_DECLINED;
    }

    if (ngx_commerce_event_notify_conf_token(v, 31) != NGX_OK) {
        return NGX_ERROR;
    }

    *dst = *v;

    return NGX_OK;
}


/*
 * At the configuration's end: the sink's channels, its templates, its
 * filter (only types with a message), its counters and its lease.
 */

ngx_int_t
ngx_commerce_event_notify_conf_sink(ngx_conf_t *cf,
    ngx_commerce_event_conf_t *ecf, ngx_commerce_event_sink_t *sink)
{
    ngx_msec_t                  each, pg;
    ngx_commerce_main_conf_t   *mcf;

    sink->channel = ngx_commerce_event_notify_conf_find(cf, ecf, sink,
                                                        &sink->channel_name);
    if (sink->channel == NULL) {
        return NGX_ERROR;
    }

    if (sink->failover_name.len) {
        sink->failover = ngx_commerce_event_notify_conf_find(cf, ecf, sink,
                                                      &sink->failover_name);
        if (sink->failover == NULL) {
            return NGX_ERROR;
        }

        if (sink->failover == sink->channel) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_event_sink\" \"%V\": failover= "
                               "is the channel itself", &sink->name);
            return NGX_ERROR;
        }
    }

    if (ngx_commerce_event_notify_conf_templates(cf, sink) != NGX_OK
        || ngx_commerce_event_notify_conf_counters(cf, sink) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * A lease outlives a claim's sends: each is the recipient's look-up
     * (bounded by the statement timeout, plus a second) and up to two
     * exchanges with providers; concurrency of them at a time.
     */
    if (sink->lease == 0) {
        mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_commerce_module);
        pg = mcf->statement_timeout + 1000;

        each = pg + sink->channel->peer.connect_timeout
               + sink->channel->peer.timeout;

        if (sink->failover != NULL) {
            each += sink->failover->peer.connect_timeout
                    + sink->failover->peer.timeout;
        }

        sink->lease = (sink->batch + sink->concurrency - 1)
                      / sink->concurrency * each + 10000;
        sink->lease = ngx_min(sink->lease, 3600000);
    }

    sink->breaker.probe_deadline_ms = sink->lease;

    return NGX_OK;
}


static ngx_commerce_notify_channel_t *
ngx_commerce_event_notify_conf_find(ngx_conf_t *cf,
    ngx_commerce_event_conf_t *ecf, ngx_commerce_event_sink_t *sink,
    ngx_str_t *name)
{
    ngx_uint_t                      i;
    ngx_commerce_notify_channel_t  *ch;

    ch = ecf->channels.elts;

    for (i = 0; i < ecf->channels.nelts; i++) {
        if (ch[i].name.len != name->len
            || ngx_strncmp(ch[i].name.data, name->data, name->len) != 0)
        {
            continue;
        }

        if (!ch[i].used) {
            if (ngx_commerce_gateway_peer_check(cf, &ch[i].peer,
                                                "commerce_notify_channel")
                != NGX_OK)
            {
                return NULL;
            }

            ch[i].used = 1;
        }

        return &ch[i];
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"commerce_event_sink\" \"%V\": no "
                       "\"commerce_notify_channel\" \"%V\"",
                       &sink->name, name);

    return NULL;
}


/*
 * The templates of the sink's messages.  Its events= must name types with
 * a message, each (no family, no '*': a new message is never sent before
 * its template is written); without events= it takes them all.
 */

static ngx_int_t
ngx_commerce_event_notify_conf_templates(ngx_conf_t *cf,
    ngx_commerce_event_sink_t *sink)
{
    u_char                               *p, *last, *start;
    size_t                                len;
    yajl_val                              doc, t;
    ngx_str_t                             text, type;
    ngx_uint_t                            i, found, email, alimtalk;
    ngx_commerce_notify_template_t       *tpl;
    ngx_commerce_event_notify_message_t  *m;

    if (ngx_commerce_conf_read_file(cf, "commerce_event_sink",
                                    &sink->templates_file, 1024 * 1024, 0,
                                    &text)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    doc = ngx_commerce_json_parse(cf->pool, text.data, text.len);

    if (doc == NULL || !YAJL_IS_OBJECT(doc)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_event_sink\" \"%V\": \"%V\" is not a "
                           "JSON object", &sink->name, &sink->templates_file);
        return NGX_ERROR;
    }

    sink->templates = ngx_array_create(cf->pool, 4,
                                    sizeof(ngx_commerce_notify_template_t));
    if (sink->templates == NULL) {
        return NGX_ERROR;
    }

    email = sink->channel->kind == NGX_COMMERCE_NOTIFY_EMAIL
            || (sink->failover != NULL
                && sink->failover->kind == NGX_COMMERCE_NOTIFY_EMAIL);
    alimtalk = sink->channel->kind == NGX_COMMERCE_NOTIFY_ALIMTALK
               || (sink->failover != NULL
                   && sink->failover->kind == NGX_COMMERCE_NOTIFY_ALIMTALK);

    /* the filter, '{a.b,c.d}': each type must have a message */
    p = (u_char *) sink->types + 1;
    last = (u_char *) sink->types + ngx_strlen(sink->types) - 1;

    while (p < last) {
        start = p;

        while (p < last && *p != ',') {
            p++;
        }

        type.data = start;
        type.len = p - start;
        p++;

        for (m = ngx_commerce_event_notify_messages; m->type.len; m++) {
            if (m->type.len == type.len
                && ngx_strncmp(m->type.data, type.data, type.len) == 0)
            {
                break;
            }
        }

        if (m->type.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_event_sink\" \"%V\": events= of "
                               "a notify sink lists types that have a "
                               "message (order.paid, payment.failed, "
                               "order.cancelled, waitlist.held, "
                               "order.shipped, order.delivered, "
                               "settlement.statement), not "
                               "\"%V\"",
                               &sink->name, &type);
            return NGX_ERROR;
        }

        t = NULL;
        found = 0;

        for (i = 0; i < YAJL_GET_OBJECT(doc)->len; i++) {
            len = ngx_strlen(YAJL_GET_OBJECT(doc)->keys[i]);

            if (len == m->key.len
                && ngx_strncmp(YAJL_GET_OBJECT(doc)->keys[i], m->key.data,
                               len) == 0)
            {
                t = YAJL_GET_OBJECT(doc)->values[i];
                found++;
            }
        }

        if (found != 1 || !YAJL_IS_OBJECT(t)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_event_sink\" \"%V\": \"%V\" has "
                               "%s template \"%V\" (an object) for %V",
                               &sink->name, &sink->templates_file,
                               found > 1 ? "more than one" : "no", &m->key,
                               &m->type);
            return NGX_ERROR;
        }

        tpl = ngx_array_push(sink->templates);
        if (tpl == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(tpl, sizeof(ngx_commerce_notify_template_t));

        tpl->type = m->type;
        tpl->user_field = m->user_field;
        tpl->key = m->key;

        if (ngx_commerce_event_notify_conf_text(cf, sink, t, "text", &m->key,
                                                &tpl->text, 1)
               != NGX_OK
            || ngx_commerce_event_notify_conf_text(cf, sink, t, "sms",
                                                   &m->key, &tpl->sms, 0)
               != NGX_OK
            || ngx_commerce_event_notify_conf_text(cf, sink, t, "subject",
                                                   &m->key, &tpl->subject,
                                                   email)
               != NGX_OK
            || ngx_commerce_event_notify_conf_text(cf, sink, t,
                                                   "templateCode", &m->key,
                                                   &tpl->code, alimtalk)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (tpl->code.len
            && ngx_commerce_event_notify_conf_token(&tpl->code, 64) != NGX_OK)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_event_sink\" \"%V\": template "
                               "\"%V\": templateCode must be letters, digits, "
                               "\"_\" and \"-\"", &sink->name, &m->key);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a string of a template; its #{variable}s must be known ones */

static ngx_int_t
ngx_commerce_event_notify_conf_text(ngx_conf_t *cf,
    ngx_commerce_event_sink_t *sink, yajl_val t, const char *field,
    ngx_str_t *key, ngx_str_t *out, ngx_uint_t required)
{
    u_char       *p, *last, *end;
    ngx_str_t     var;
    const char   *s, **k;

    s = ngx_commerce_json_string(t, field);

    if (s == NULL || *s == '\0') {
        if (!required) {
            return NGX_OK;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_event_sink\" \"%V\": template \"%V\" "
                           "needs \"%s\" (a string) for its channels",
                           &sink->name, key, field);
        return NGX_ERROR;
    }

    out->data = (u_char *) s;
    out->len = ngx_strlen(s);

    if (out->len > 2000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_event_sink\" \"%V\": template \"%V\": "
                           "\"%s\" is longer than 2000 bytes",
                           &sink->name, key, field);
        return NGX_ERROR;
    }

    p = out->data;
    last = out->data + out->len;

    while (p + 1 < last) {
        if (p[0] != '#' || p[1] != '{') {
            p++;
            continue;
        }

        end = ngx_strlchr(p + 2, last, '}');

        var.data = p + 2;
        var.len = end ? (size_t) (end - var.data) : 0;

        for (k = ngx_commerce_event_notify_vars; end && *k; k++) {
            if (ngx_strlen(*k) == var.len
                && ngx_strncmp(*k, var.data, var.len) == 0)
            {
                break;
            }
        }

        if (end == NULL || *k == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_event_sink\" \"%V\": template "
                               "\"%V\": \"%s\" has an unknown variable "
                               "\"#{%V}\" (known: name, orderId, "
                               "productName, itemCount, totalAmount, "
                               "paymentAmount, orderStatus, reason, "
                               "quantity, carrier, trackingNumber)",
                               &sink->name, key, field, &var);
            return NGX_ERROR;
        }

        p = end + 1;
    }

    return NGX_OK;
}


ngx_commerce_notify_template_t *
ngx_commerce_event_notify_conf_template(ngx_commerce_event_sink_t *sink,
    ngx_str_t *type)
{
    ngx_uint_t                       i;
    ngx_commerce_notify_template_t  *tpl;

    tpl = sink->templates->elts;

    for (i = 0; i < sink->templates->nelts; i++) {
        if (tpl[i].type.len == type->len
            && ngx_strncmp(tpl[i].type.data, type->data, type->len) == 0)
        {
            return &tpl[i];
        }
    }

    return NULL;
}


/*
 * commerce_notify_messages_total{sink,channel,result}: sent or failed per
 * channel; commerce_notify_failovers_total{sink};
 * commerce_notify_skipped_total{sink,reason}: withdrawn, no_contact.
 */

static ngx_int_t
ngx_commerce_event_notify_conf_counters(ngx_conf_t *cf,
    ngx_commerce_event_sink_t *sink)
{
    u_char                         *labels;
    ngx_uint_t                      c, r;
    ngx_commerce_notify_channel_t  *ch;

    static const char  *result[2] = { "sent", "failed" };
    static const char  *reason[2] = { "withdrawn", "no_contact" };

    for (c = 0; c < 2; c++) {
        ch = c ? sink->failover : sink->channel;

        for (r = 0; r < 2; r++) {
            sink->sent[c][r] = NGX_ERROR;

            if (ch == NULL) {
                continue;
            }

            labels = ngx_pnalloc(cf->pool, sizeof("sink=\"\",channel=\"\","
                                                  "result=\"failed\"")
                                           + sink->name.len + ch->name.len);
            if (labels == NULL) {
                return NGX_ERROR;
            }

            *ngx_sprintf(labels, "sink=\"%V\",channel=\"%V\",result=\"%s\"",
                         &sink->name, &ch->name, result[r]) = '\0';

            sink->sent[c][r] = ngx_commerce_conf_counter(cf,
                                   "commerce_notify_messages_total",
                                   "counter", "Messages a notification "
                                   "channel accepted (sent) or did not "
                                   "(failed: an error, a refusal, a "
                                   "recipient it cannot reach).",
                                   (char *) labels);
            if (sink->sent[c][r] == NGX_ERROR) {
                return NGX_ERROR;
            }
        }
    }

    for (r = 0; r < 2; r++) {
        labels = ngx_pnalloc(cf->pool, sizeof("sink=\"\",reason=\"no_contact\"")
                                       + sink->name.len);
        if (labels == NULL) {
            return NGX_ERROR;
        }

        *ngx_sprintf(labels, "sink=\"%V\",reason=\"%s\"", &sink->name,
                     reason[r]) = '\0';

        sink->skipped[r] = ngx_commerce_conf_counter(cf,
                               "commerce_notify_skipped_total", "counter",
                               "Notifications not sent: the user withdrew, "
                               "or has no phone or e-mail for the channels.",
                               (char *) labels);
        if (sink->skipped[r] == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    labels = ngx_pnalloc(cf->pool, sizeof("sink=\"\"") + sink->name.len);
    if (labels == NULL) {
        return NGX_ERROR;
    }

    *ngx_sprintf(labels, "sink=\"%V\"", &sink->name) = '\0';

    sink->failovers = ngx_commerce_conf_counter(cf,
                          "commerce_notify_failovers_total", "counter",
                          "Notifications sent through the failover channel "
                          "(the channel refused the recipient, or failed "
                          "beyond the retries).", (char *) labels);

    return sink->failovers == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


ngx_int_t
ngx_commerce_event_notify_conf_init_worker(ngx_cycle_t *cycle,
    ngx_commerce_event_conf_t *ecf)
{
    ngx_uint_t                      i;
    ngx_commerce_notify_channel_t  *ch;

    ch = ecf->channels.elts;

    for (i = 0; i < ecf->channels.nelts; i++) {
        if (ch[i].used
            && ngx_commerce_gateway_peer_init(cycle, &ch[i].peer) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}
