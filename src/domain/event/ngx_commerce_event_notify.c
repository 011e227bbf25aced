
/*
 * Notifications: an event of a notify sink becomes a message to its user.
 * The relay claims, orders, retries and settles it like any event; here
 * one attempt is
 *
 *   1. the recipient's look-up through the Postgres pool
 *      (cm_notify_recipient: status, ciphertexts of phone, e-mail and name,
 *      the order's variables);
 *   2. nothing for a withdrawn user (delivered: nothing to send);
 *   3. the phone or the e-mail decrypted in memory (cm_pii), only now, for
 *      this send; wiped when the relay's run ends, never logged;
 *   4. the message through the sink's channel (the module's HTTP client:
 *      Alimtalk, SMS or e-mail in the provider's API), and through its
 *      failover channel, once, when the channel cannot reach the recipient
 *      (Alimtalk: a per-recipient failure such as "not a KakaoTalk user")
 *      or when the channel failed on the event's last attempt.
 *
 * Outcomes for the relay: D sent (or nothing to send), R retry (5xx, 408,
 * 429, a timeout, a refused or broken connection, the database), X dead (a
 * 4xx: the request is wrong as it is; the failover refusing it too).
 * Template variables are inserted as text, JSON-escaped, and never read
 * again as a template.
 */


#include "ngx_commerce_event.h"


typedef struct {
    ngx_commerce_event_sink_t       *sink;
    ngx_pool_t                      *pool;
    ngx_str_t                        id;
    ngx_str_t                        type;
    ngx_commerce_notify_template_t  *tpl;
    yajl_val                         data;     /* the event's "data" */
    yajl_val                         vars;     /* of the look-up */
    int64_t                          user;
    ngx_uint_t                       last;     /* the event's last attempt */
    ngx_uint_t                       stage;    /* 0: channel, 1: failover */
    ngx_str_t                        name;
    ngx_str_t                        phone;    /* digits */
    ngx_str_t                        email;
    unsigned                         name_decrypted:1;
    ngx_commerce_pg_query_t          query;
    ngx_commerce_client_t            http[2];
    ngx_commerce_event_notify_pt     handler;
    void                            *handler_data;
} ngx_commerce_event_notify_msg_t;


static void ngx_commerce_event_notify_looked_up(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static ngx_int_t ngx_commerce_event_notify_decrypt(
    ngx_commerce_event_notify_msg_t *msg, yajl_val doc, const char *key,
    const char *field, ngx_str_t *out);
static ngx_uint_t ngx_commerce_event_notify_reaches(
    ngx_commerce_event_notify_msg_t *msg, ngx_commerce_notify_channel_t *ch);
static void ngx_commerce_event_notify_channel(
    ngx_commerce_event_notify_msg_t *msg, ngx_uint_t stage);
static ngx_int_t ngx_commerce_event_notify_request(
    ngx_commerce_event_notify_msg_t *msg, ngx_commerce_notify_channel_t *ch,
    ngx_str_t *body);
static u_char *ngx_commerce_event_notify_params(
    ngx_commerce_event_notify_msg_t *msg, u_char *p, u_char *last);
static void ngx_commerce_event_notify_answered(ngx_commerce_client_t *h);
static ngx_int_t ngx_commerce_event_notify_accepted(
    ngx_commerce_event_notify_msg_t *msg, ngx_commerce_notify_channel_t *ch,
    ngx_commerce_client_t *h, int64_t *code);
static ngx_int_t ngx_commerce_event_notify_value(yajl_val vars,
    yajl_val data, ngx_str_t *name, ngx_str_t *var, ngx_str_t *out,
    u_char *buf);
static void ngx_commerce_event_notify_done(
    ngx_commerce_event_notify_msg_t *msg, u_char state, ngx_uint_t sink_up,
    const char *fmt, ...);
static void ngx_commerce_event_notify_wipe(void *data);


ngx_int_t
ngx_commerce_event_notify_send(ngx_commerce_event_sink_t *sink,
    ngx_pool_t *pool, ngx_str_t *id, ngx_str_t *type, ngx_str_t *body,
    ngx_uint_t last, ngx_commerce_event_notify_pt handler, void *data)
{
    int64_t                           order;
    yajl_val                          doc;
    ngx_pool_cleanup_t               *cln;
    ngx_commerce_pg_query_t          *q;
    ngx_commerce_event_notify_msg_t  *msg;

    msg = ngx_pcalloc(pool, sizeof(ngx_commerce_event_notify_msg_t));
    if (msg == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_commerce_event_notify_wipe;
    cln->data = msg;

    msg->sink = sink;
    msg->pool = pool;
    msg->id = *id;
    msg->type = *type;
    msg->last = last;
    msg->handler = handler;
    msg->handler_data = data;

    msg->tpl = ngx_commerce_event_notify_conf_template(sink, type);

    if (msg->tpl == NULL) {
        ngx_commerce_event_notify_done(msg, 'X', 0, "no message for this "
                                       "type");
        return NGX_OK;
    }

    doc = ngx_commerce_json_parse(pool, body->data, body->len);
    msg->data = (doc != NULL) ? ngx_commerce_json_get(doc, "data", NULL)
                              : NULL;

    if (msg->data == NULL || !YAJL_IS_OBJECT(msg->data)
        || ngx_commerce_json_int(msg->data, (char *) msg->tpl->user_field.data,
                                 NULL, &msg->user)
           != NGX_OK
        || msg->user <= 0)
    {
        ngx_commerce_event_notify_done(msg, 'X', 0, "the event names no "
                                       "recipient (%V)",
                                       &msg->tpl->user_field);
        return NGX_OK;
    }

    if (ngx_commerce_json_int(msg->data, "orderId", NULL, &order) != NGX_OK
        || order < 0)
    {
        order = 0;
    }

    q = &msg->query;

    ngx_commerce_pg_reset(q);

    q->stmt = &ngx_commerce_event_statements[
                                      NGX_COMMERCE_STMT_NOTIFY_RECIPIENT];
    q->nparams = 2;
    q->params[0] = ngx_commerce_pg_int(q, msg->user);
    q->params[1] = ngx_commerce_pg_int(q, order);
    q->log = ngx_cycle->log;
    q->data = msg;
    q->handler = ngx_commerce_event_notify_looked_up;

    if (ngx_commerce_pg_submit(ngx_commerce_conf_main()->pool, q) != NGX_OK) {
        ngx_commerce_event_notify_done(msg, 'R', 1, "no database connection "
                                       "for the recipient");
    }

    return NGX_OK;
}


/* {"userId","status","phoneCt","emailCt","nameCt","name","vars"} */

static void
ngx_commerce_event_notify_looked_up(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    yajl_val                          doc;
    const char                       *status, *s;
    ngx_commerce_event_sink_t        *sink;
    ngx_commerce_event_notify_msg_t  *msg;

    msg = q->data;
    sink = msg->sink;

    if (rc != NGX_OK || res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1)
    {
        ngx_commerce_event_notify_done(msg, 'R', 1, "recipient look-up "
                                       "failed");
        return;
    }

    doc = ngx_commerce_json_parse(msg->pool, (u_char *) PQgetvalue(res, 0, 0),
                                  PQgetlength(res, 0, 0));
    status = (doc != NULL) ? ngx_commerce_json_string(doc, "status") : NULL;

    if (status == NULL) {
        ngx_commerce_event_notify_done(msg, 'R', 1, "recipient look-up: "
                                       "unexpected answer");
        return;
    }

    if (ngx_strcmp(status, "ACTIVE") != 0) {
        /* a withdrawn user gets nothing: the event is done with */
        ngx_commerce_shm_count(sink->skipped[0], 1);

        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "commerce: event %V (%V) to sink %V: nothing sent, "
                      "user %L is %s", &msg->id, &msg->type, &sink->name,
                      msg->user, status[0] == 'W' ? "withdrawn" : "unknown");

        ngx_commerce_event_notify_done(msg, 'D', 1, "");
        return;
    }

    msg->vars = ngx_commerce_json_get(doc, "vars", NULL);

    if (ngx_commerce_event_notify_decrypt(msg, doc, "phoneCt", "users.phone",
                                          &msg->phone)
           != NGX_OK
        || ngx_commerce_event_notify_decrypt(msg, doc, "emailCt",
                                             "users.email", &msg->email)
           != NGX_OK
        || ngx_commerce_event_notify_decrypt(msg, doc, "nameCt", "users.name",
                                             &msg->name)
           != NGX_OK)
    {
        ngx_commerce_event_notify_done(msg, 'X', 0, "user %L: personal data "
                                       "does not decrypt", msg->user);
        return;
    }

    msg->name_decrypted = (msg->name.data != NULL);

    if (msg->name.len == 0) {
        /* a user from before accounts: the name in plain text */
        s = ngx_commerce_json_string(doc, "name");

        if (s != NULL) {
            msg->name.data = (u_char *) s;
            msg->name.len = ngx_strlen(s);
        }
    }

    if (ngx_commerce_event_notify_reaches(msg, sink->channel)) {
        ngx_commerce_event_notify_channel(msg, 0);
        return;
    }

    if (sink->failover != NULL
        && ngx_commerce_event_notify_reaches(msg, sink->failover))
    {
        ngx_commerce_shm_count(sink->failovers, 1);
        ngx_commerce_event_notify_channel(msg, 1);
        return;
    }

    ngx_commerce_shm_count(sink->skipped[1], 1);

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "commerce: event %V (%V) to sink %V: nothing sent, user %L "
                  "has no contact for the channels", &msg->id, &msg->type,
                  &sink->name, msg->user);

    ngx_commerce_event_notify_done(msg, 'D', 1, "");
}


/*
 * A ciphertext of the look-up decrypted into the run's pool (aad
 * "users.phone:<id>"); null: empty.  A phone keeps its digits only.
 */

static ngx_int_t
ngx_commerce_event_notify_decrypt(ngx_commerce_event_notify_msg_t *msg,
    yajl_val doc, const char *key, const char *field, ngx_str_t *out)
{
    char       aad[64], *text;
    size_t     alen, len, i, n;
    u_char    *p;
    yajl_val   ct;

    ngx_str_null(out);

    ct = ngx_commerce_json_get(doc, key, NULL);

    if (ct == NULL || YAJL_IS_NULL(ct)) {
        return NGX_OK;
    }

    text = YAJL_IS_STRING(ct) ? YAJL_GET_STRING(ct) : NULL;

    if (text == NULL || ngx_commerce_conf_main()->pii_keys == NULL) {
        return NGX_ERROR;
    }

    alen = cm_pii_aad(aad, sizeof(aad), field, msg->user);
    len = ngx_strlen(text);

    p = ngx_pnalloc(msg->pool, len + 1);
    if (alen == 0 || p == NULL) {
        return NGX_ERROR;
    }

    if (cm_pii_decrypt(p, len, &n, ngx_commerce_conf_main()->pii_keys,
                       (const unsigned char *) aad, alen, text, len, NULL,
                       NULL)
        != 0)
    {
        return NGX_ERROR;
    }

    if (ngx_strcmp(field, "users.phone") == 0) {
        for (i = 0, len = 0; i < n; i++) {
            if (p[i] >= '0' && p[i] <= '9') {
                p[len++] = p[i];
            }
        }

        ngx_explicit_memzero(p + len, n - len);
        n = len;
    }

    out->data = p;
    out->len = n;

    return NGX_OK;
}


static ngx_uint_t
ngx_commerce_event_notify_reaches(ngx_commerce_event_notify_msg_t *msg,
    ngx_commerce_notify_channel_t *ch)
{
    return (ch->kind == NGX_COMMERCE_NOTIFY_EMAIL) ? msg->email.len > 0
                                                   : msg->phone.len > 0;
}


static void
ngx_commerce_event_notify_channel(ngx_commerce_event_notify_msg_t *msg,
    ngx_uint_t stage)
{
    u_char                         *p;
    ngx_str_t                       body;
    ngx_commerce_client_t          *h;
    ngx_commerce_notify_channel_t  *ch;

    msg->stage = stage;
    ch = stage ? msg->sink->failover : msg->sink->channel;

    switch (ngx_commerce_event_notify_request(msg, ch, &body)) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        /* the event has no value for a variable of the template */
        return;

    default:
        ngx_commerce_event_notify_done(msg, 'R', 1, "no memory");
        return;
    }

    h = &msg->http[stage];

    h->pool = msg->pool;
    h->log = ngx_cycle->log;
    h->gw = &ch->peer;
    ngx_str_set(&h->method, "POST");
    h->uri = ch->uri;
    h->request_body = body;

    p = ngx_pnalloc(msg->pool, sizeof("Authorization: Bearer " CRLF
                                      "Accept: application/json" CRLF) - 1
                               + ch->secret.len);
    if (p == NULL) {
        ngx_commerce_event_notify_done(msg, 'R', 1, "no memory");
        return;
    }

    h->extra_headers.data = p;
    h->extra_headers.len = ngx_sprintf(p, "%s%V" CRLF
                                       "Accept: application/json" CRLF,
                                       ch->kind == NGX_COMMERCE_NOTIFY_EMAIL
                                       ? "Authorization: Bearer "
                                       : "X-Secret-Key: ",
                                       &ch->secret)
                           - p;

    h->handler = ngx_commerce_event_notify_answered;
    h->data = msg;

    if (ngx_commerce_client_start(h) != NGX_OK) {
        ngx_commerce_event_notify_done(msg, 'R', 1, "%V: client error",
                                       &ch->name);
    }
}


/*
 * The provider's request.  Every string from data (the name, a product's
 * name, the phone, the address) is JSON-escaped; the SMS and e-mail texts
 * are the template with its variables inserted as text.
 */

static ngx_int_t
ngx_commerce_event_notify_request(ngx_commerce_event_notify_msg_t *msg,
    ngx_commerce_notify_channel_t *ch, ngx_str_t *body)
{
    u_char                          *p, *last;
    size_t                           size;
    ngx_str_t                        text, subject, missing;
    ngx_commerce_notify_template_t  *tpl;

    tpl = msg->tpl;

    ngx_str_null(&text);
    ngx_str_null(&subject);

    if (ch->kind != NGX_COMMERCE_NOTIFY_ALIMTALK) {
        if (ngx_commerce_event_notify_render(msg->pool,
                                             (ch->kind == NGX_COMMERCE_NOTIFY_SMS
                                              && tpl->sms.len)
                                             ? &tpl->sms : &tpl->text,
                                             msg->vars, msg->data, &msg->name,
                                             1, &text, &missing)
               == NGX_DECLINED
            || (ch->kind == NGX_COMMERCE_NOTIFY_EMAIL
                && ngx_commerce_event_notify_render(msg->pool, &tpl->subject,
                                                    msg->vars, msg->data,
                                                    &msg->name, 1, &subject,
                                                    &missing)
                   == NGX_DECLINED))
        {
            goto missing;
        }

        if (text.data == NULL
            || (ch->kind == NGX_COMMERCE_NOTIFY_EMAIL && subject.data == NULL))
        {
            return NGX_ERROR;
        }
    }

    size = 256 + ch->sender_key.len + tpl->code.len + ch->sender.len
           + 6 * (ch->sender_name.len + msg->phone.len + msg->email.len)
           + text.len + subject.len;

    if (ch->kind == NGX_COMMERCE_NOTIFY_ALIMTALK) {
        /* the parameters: at most the text's length of names, 6 x values */
        size += 6 * (tpl->text.len + 8 * 1024);
    }

    p = ngx_pnalloc(msg->pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    last = p + size;

    switch (ch->kind) {

    case NGX_COMMERCE_NOTIFY_ALIMTALK:
        p = ngx_slprintf(p, last, "{\"senderKey\":\"%V\",\"templateCode\":"
                         "\"%V\",\"recipientList\":[{\"recipientNo\":\"%V\","
                         "\"templateParameter\":{",
                         &ch->sender_key, &tpl->code, &msg->phone);

        p = ngx_commerce_event_notify_params(msg, p, last);
        if (p == NULL) {
            return NGX_DECLINED;
        }

        p = ngx_slprintf(p, last, "}}]}");
        break;

    case NGX_COMMERCE_NOTIFY_SMS:
        p = ngx_slprintf(p, last, "{\"body\":\"%V\",\"sendNo\":\"%V\","
                         "\"recipientList\":[{\"recipientNo\":\"%V\"}]}",
                         &text, &ch->sender, &msg->phone);
        break;

    default: /* NGX_COMMERCE_NOTIFY_EMAIL */
        p = ngx_slprintf(p, last, "{\"personalizations\":[{\"to\":[{"
                         "\"email\":\"");
        p += cm_json_escape((char *) p, last - p, msg->email.data,
                            msg->email.len);
        p = ngx_slprintf(p, last, "\"}]}],\"from\":{\"email\":\"%V\"",
                         &ch->sender);

        if (ch->sender_name.len) {
            p = ngx_slprintf(p, last, ",\"name\":\"");
            p += cm_json_escape((char *) p, last - p, ch->sender_name.data,
                                ch->sender_name.len);
            p = ngx_slprintf(p, last, "\"");
        }

        p = ngx_slprintf(p, last, "},\"subject\":\"%V\",\"content\":[{"
                         "\"type\":\"text/plain\",\"value\":\"%V\"}]}",
                         &subject, &text);
        break;
    }

    if (p == last) {
        return NGX_ERROR;
    }

    body->len = p - body->data;

    return NGX_OK;

missing:

    ngx_commerce_event_notify_done(msg, 'X', 0, "template %V: no value for "
                                   "#{%V}", &tpl->key, &missing);
    return NGX_DECLINED;
}


/* Alimtalk's templateParameter: each variable of the text, once */

static u_char *
ngx_commerce_event_notify_params(ngx_commerce_event_notify_msg_t *msg,
    u_char *p, u_char *last)
{
    u_char      *s, *end, *e, buf[NGX_INT64_LEN + 1];
    ngx_str_t    var, val, seen[32], *text;
    ngx_uint_t   i, n;

    text = &msg->tpl->text;
    s = text->data;
    end = text->data + text->len;
    n = 0;

    while (s + 1 < end) {
        if (s[0] != '#' || s[1] != '{') {
            s++;
            continue;
        }

        e = ngx_strlchr(s + 2, end, '}');     /* checked at configuration */
        var.data = s + 2;
        var.len = e - var.data;
        s = e + 1;

        for (i = 0; i < n; i++) {
            if (seen[i].len == var.len
                && ngx_strncmp(seen[i].data, var.data, var.len) == 0)
            {
                break;
            }
        }

        if (i < n) {
            continue;
        }

        if (n == 32
            || ngx_commerce_event_notify_value(msg->vars, msg->data,
                                               &msg->name, &var, &val, buf)
               != NGX_OK)
        {
            ngx_commerce_event_notify_done(msg, 'X', 0, "template %V: no "
                                           "value for #{%V}", &msg->tpl->key,
                                           &var);
            return NULL;
        }

        p = ngx_slprintf(p, last, n ? ",\"%V\":\"" : "\"%V\":\"", &var);
        p += cm_json_escape((char *) p, last - p, val.data, val.len);
        p = ngx_slprintf(p, last, "\"");

        seen[n++] = var;
    }

    return p;
}


/*
 * A template with its variables: one pass, each value inserted as text
 * (never read again as a template), JSON-escaped when json is set.
 * NGX_DECLINED with *missing: a variable has no value.
 */

ngx_int_t
ngx_commerce_event_notify_render(ngx_pool_t *pool, ngx_str_t *text,
    yajl_val vars, yajl_val data, ngx_str_t *name, ngx_uint_t json,
    ngx_str_t *out, ngx_str_t *missing)
{
    u_char      *s, *end, *e, *p, *last, buf[NGX_INT64_LEN + 1];
    size_t       size;
    ngx_str_t    var, val;
    ngx_uint_t   pass;

    ngx_str_null(out);

    p = NULL;
    last = NULL;
    size = 0;

    for (pass = 0; pass < 2; pass++) {
        s = text->data;
        end = text->data + text->len;

        while (s < end) {
            e = (s + 1 < end && s[0] == '#' && s[1] == '{')
                ? ngx_strlchr(s + 2, end, '}') : NULL;

            if (e == NULL) {
                /* a run of text: escaped whole (UTF-8 is never cut) */
                val.data = s;

                for (s++; s < end; s++) {
                    if (s + 1 < end && s[0] == '#' && s[1] == '{'
                        && ngx_strlchr(s + 2, end, '}') != NULL)
                    {
                        break;
                    }
                }

                val.len = s - val.data;

            } else {
                var.data = s + 2;
                var.len = e - var.data;
                s = e + 1;

                if (ngx_commerce_event_notify_value(vars, data, name, &var,
                                                    &val, buf)
                    != NGX_OK)
                {
                    *missing = var;
                    return NGX_DECLINED;
                }
            }

            if (pass == 0) {
                size += json ? 6 * val.len : val.len;

            } else if (json) {
                p += cm_json_escape((char *) p, last - p, val.data, val.len);

            } else {
                p = ngx_cpymem(p, val.data, val.len);
            }
        }

        if (pass == 0) {
            p = ngx_pnalloc(pool, size + 1);
            if (p == NULL) {
                return NGX_ERROR;
            }

            out->data = p;
            last = p + size;
        }
    }

    out->len = p - out->data;

    return NGX_OK;
}


/* a variable's text: the name, the order's (look-up), the event's field */

static ngx_int_t
ngx_commerce_event_notify_value(yajl_val vars, yajl_val data, ngx_str_t *name,
    ngx_str_t *var, ngx_str_t *out, u_char *buf)
{
    char       key[64];
    yajl_val   v;

    if (var->len == 4 && ngx_strncmp(var->data, "name", 4) == 0) {
        *out = *name;
        return NGX_OK;
    }

    if (var->len >= sizeof(key)) {
        return NGX_DECLINED;
    }

    ngx_memcpy(key, var->data, var->len);
    key[var->len] = '\0';

    v = (vars != NULL) ? ngx_commerce_json_get(vars, key, NULL) : NULL;

    if (v == NULL || !(YAJL_IS_STRING(v) || YAJL_IS_INTEGER(v))) {
        v = (data != NULL) ? ngx_commerce_json_get(data, key, NULL) : NULL;
    }

    if (v != NULL && YAJL_IS_STRING(v)) {
        out->data = (u_char *) YAJL_GET_STRING(v);
        out->len = ngx_strlen(out->data);
        return NGX_OK;
    }

    if (v != NULL && YAJL_IS_INTEGER(v)) {
        out->data = buf;
        out->len = ngx_sprintf(buf, "%L", (int64_t) YAJL_GET_INTEGER(v)) - buf;
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static void
ngx_commerce_event_notify_answered(ngx_commerce_client_t *h)
{
    int64_t                           code;
    ngx_int_t                         rc;
    ngx_uint_t                        stage;
    ngx_commerce_event_sink_t        *sink;
    ngx_commerce_notify_channel_t    *ch;
    ngx_commerce_event_notify_msg_t  *msg;

    msg = h->data;
    sink = msg->sink;
    stage = msg->stage;
    ch = stage ? sink->failover : sink->channel;
    code = 0;

    if (h->rc != NGX_COMMERCE_HTTP_OK) {
        rc = NGX_AGAIN;

    } else if (h->status >= 200 && h->status < 300) {
        rc = ngx_commerce_event_notify_accepted(msg, ch, h, &code);

    } else if (h->status >= 400 && h->status < 500
               && h->status != NGX_HTTP_REQUEST_TIME_OUT
               && h->status != NGX_HTTP_TOO_MANY_REQUESTS)
    {
        rc = NGX_ERROR;

    } else {
        rc = NGX_AGAIN;
    }

    ngx_commerce_shm_count(sink->sent[stage][rc == NGX_OK ? 0 : 1], 1);

    if (rc == NGX_OK) {
        ngx_commerce_event_notify_done(msg, 'D', 1, "");
        return;
    }

    /*
     * The channel cannot reach the recipient (the provider said so for
     * this recipient), or failed on the event's last attempt: the
     * failover channel, once.
     */
    if (stage == 0 && sink->failover != NULL
        && ngx_commerce_event_notify_reaches(msg, sink->failover)
        && (rc == NGX_DECLINED || (rc == NGX_AGAIN && msg->last)))
    {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "commerce: event %V (%V) to sink %V: %V failed "
                      "(%s %ui, code %L), failing over to %V",
                      &msg->id, &msg->type, &sink->name, &ch->name,
                      h->rc == NGX_COMMERCE_HTTP_OK
                      ? "HTTP" : ngx_commerce_client_rc_name(h->rc),
                      h->status, code, &sink->failover->name);

        ngx_commerce_shm_count(sink->failovers, 1);
        ngx_commerce_event_notify_channel(msg, 1);
        return;
    }

    if (h->rc != NGX_COMMERCE_HTTP_OK) {
        ngx_commerce_event_notify_done(msg, 'R', stage == 0
                                       && sink->failover != NULL,
                                       "%V: %s", &ch->name,
                                       ngx_commerce_client_rc_name(h->rc));
        return;
    }

    ngx_commerce_event_notify_done(msg, rc == NGX_AGAIN ? 'R' : 'X',
                                   rc != NGX_AGAIN
                                   || (stage == 0 && sink->failover != NULL),
                                   "%V: HTTP %ui, code %L", &ch->name,
                                   h->status, code);
}


/*
 * A 2xx: NGX_OK sent; NGX_DECLINED the provider refused this recipient
 * (Alimtalk: not a KakaoTalk user, blocked...; its code in *code).  The
 * NHN answers say it in the body: header.isSuccessful, then the
 * recipient's resultCode.  SendGrid's 202 has no body.
 */

static ngx_int_t
ngx_commerce_event_notify_accepted(ngx_commerce_event_notify_msg_t *msg,
    ngx_commerce_notify_channel_t *ch, ngx_commerce_client_t *h,
    int64_t *code)
{
    yajl_val  doc, ok, list, r;

    if (ch->kind == NGX_COMMERCE_NOTIFY_EMAIL) {
        return NGX_OK;
    }

    doc = ngx_commerce_json_parse(msg->pool, h->body.data, h->body.len);
    if (doc == NULL) {
        *code = -1;
        return NGX_DECLINED;
    }

    ok = ngx_commerce_json_get(doc, "header", "isSuccessful");

    if (ok == NULL || !YAJL_IS_TRUE(ok)) {
        if (ngx_commerce_json_int(doc, "header", "resultCode", code)
            != NGX_OK)
        {
            *code = -1;
        }

        return NGX_DECLINED;
    }

    list = (ch->kind == NGX_COMMERCE_NOTIFY_ALIMTALK)
           ? ngx_commerce_json_get(doc, "message", "sendResults")
           : ngx_commerce_json_get(ngx_commerce_json_get(doc, "body", NULL),
                                   "data", "sendResultList");

    r = (list != NULL && YAJL_IS_ARRAY(list) && YAJL_GET_ARRAY(list)->len == 1)
        ? YAJL_GET_ARRAY(list)->values[0] : NULL;

    if (r == NULL || ngx_commerce_json_int(r, "resultCode", NULL, code)
                     != NGX_OK)
    {
        *code = -1;
        return NGX_DECLINED;
    }

    return *code == 0 ? NGX_OK : NGX_DECLINED;
}


static void
ngx_commerce_event_notify_done(ngx_commerce_event_notify_msg_t *msg,
    u_char state, ngx_uint_t sink_up, const char *fmt, ...)
{
    u_char   error[160], *p;
    va_list  args;

    va_start(args, fmt);
    p = ngx_vslprintf(error, error + sizeof(error), fmt, args);
    va_end(args);

    msg->handler(msg->handler_data, state, sink_up, error, p - error);
}


/* the run's pool goes: its personal data and requests are zeroed first */

static void
ngx_commerce_event_notify_wipe(void *data)
{
    ngx_commerce_event_notify_msg_t  *msg = data;

    ngx_uint_t              i;
    ngx_commerce_client_t  *h;

    if (msg->phone.data != NULL) {
        ngx_explicit_memzero(msg->phone.data, msg->phone.len);
    }

    if (msg->email.data != NULL) {
        ngx_explicit_memzero(msg->email.data, msg->email.len);
    }

    if (msg->name_decrypted) {
        ngx_explicit_memzero(msg->name.data, msg->name.len);
    }

    for (i = 0; i < 2; i++) {
        h = &msg->http[i];

        if (h->request_body.data != NULL) {
            ngx_explicit_memzero(h->request_body.data, h->request_body.len);
        }

        if (h->out != NULL) {
            ngx_explicit_memzero(h->out->start, h->out->end - h->out->start);
        }

        /* the provider's answer may repeat the recipient */
        if (h->in != NULL) {
            ngx_explicit_memzero(h->in->start, h->in->end - h->in->start);
        }
    }
}
