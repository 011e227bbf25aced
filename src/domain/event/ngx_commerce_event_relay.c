
/*
 * The outbox relay: one job per sink in worker 0 of each instance.  A run
 * registers the sink (once per worker), claims a batch (cm_outbox_claim:
 * per aggregate only its oldest pending event, leased under a token),
 * sends the batch, concurrency events at a time, and settles each event
 * with the token (cm_outbox_settle): delivered, retried after a backoff,
 * or dead.  Nothing here waits: Postgres through the pool, HTTP through
 * the module's client, Redis through its client, each answering on nginx
 * events.  A run that found work starts the next one at once; one that
 * found none waits the sink's interval.
 *
 * Outcomes: 2xx (or a stream entry) is delivered.  5xx, 408, 429, a
 * timeout, a refused or broken connection, a Redis error are retried with
 * exponential backoff and jitter (between half and all of
 * min(retry_cap, retry_base x 2^(attempt-1))), at most `retries` times,
 * then dead.  Any other 4xx is a poison event: dead at once.
 */


#include "ngx_commerce_event.h"


typedef struct {
    ngx_commerce_event_run_t    *run;
    int64_t                      delivery;
    ngx_uint_t                   attempt;
    ngx_uint_t                   type;         /* metrics slot */
    ngx_str_t                    type_name;
    ngx_str_t                    id;
    ngx_str_t                    body;
    u_char                       state;        /* D, R, X, P; 0: sending */
    unsigned                     sink_up:1;    /* an R that is not the
                                                  sink's failure (notify) */
    unsigned                     unsent:1;     /* an R that never left: no
                                                  connection to the sink */
    int                          permit;       /* of the breaker, or -1 */
    ngx_msec_t                   started;
    ngx_msec_t                   delay;
    u_char                       error[160];
    size_t                       error_len;
    ngx_commerce_client_t        http;
} ngx_commerce_event_item_t;


struct ngx_commerce_event_run_s {
    ngx_pool_t                  *pool;
    ngx_commerce_event_sink_t   *sink;
    u_char                       token[40];
    ngx_commerce_event_item_t   *items;
    ngx_uint_t                   n;
    ngx_uint_t                   next;
    ngx_uint_t                   inflight;
    ngx_uint_t                   done;
    unsigned                     pumping:1;
};


static ngx_int_t ngx_commerce_event_relay_submit(ngx_commerce_event_sink_t *s,
    ngx_uint_t stmt, ngx_commerce_pg_handler_pt handler);
static ngx_int_t ngx_commerce_event_relay_claim(
    ngx_commerce_event_sink_t *sink);
static void ngx_commerce_event_relay_registered(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static void ngx_commerce_event_relay_claimed(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static ngx_int_t ngx_commerce_event_relay_copy(ngx_pool_t *pool,
    PGresult *res, int row, int col, ngx_str_t *out);
static void ngx_commerce_event_relay_pump(ngx_commerce_event_run_t *run);
static void ngx_commerce_event_relay_send(ngx_commerce_event_item_t *item);
static void ngx_commerce_event_relay_http_done(ngx_commerce_client_t *h);
static void ngx_commerce_event_relay_redis_done(void *data,
    ngx_commerce_redis_rc_e rc, redisReply *reply);
static void ngx_commerce_event_relay_notified(void *data, u_char state,
    ngx_uint_t sink_up, u_char *error, size_t len);
static void ngx_commerce_event_relay_outcome(ngx_commerce_event_item_t *item,
    u_char state, const char *fmt, ...);
static void ngx_commerce_event_relay_settle(ngx_commerce_event_run_t *run);
static void ngx_commerce_event_relay_settled(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static void ngx_commerce_event_relay_end(ngx_commerce_event_sink_t *sink,
    ngx_msec_t next);
static void ngx_commerce_event_relay_gauged(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static void ngx_commerce_event_relay_breaker_log(
    ngx_commerce_event_sink_t *sink);


ngx_int_t
ngx_commerce_event_relay_run(ngx_commerce_job_t *job)
{
    ngx_commerce_event_sink_t  *sink;

    sink = job->data;

    if (!sink->registered) {
        return ngx_commerce_event_relay_submit(sink,
                                       NGX_COMMERCE_STMT_OUTBOX_REGISTER,
                                       ngx_commerce_event_relay_registered);
    }

    return ngx_commerce_event_relay_claim(sink);
}


/*
 * The sink's breaker decides what a run claims: nothing while it is open
 * (the backlog waits, its events' attempts untouched), one event while it
 * is half-open (the probe), a batch when closed.
 */

static ngx_int_t
ngx_commerce_event_relay_claim(ngx_commerce_event_sink_t *sink)
{
    cm_br_state_e  state;

    cm_br_tick(&sink->br, &sink->breaker, ngx_current_msec);
    ngx_commerce_event_relay_breaker_log(sink);

    state = cm_br_state(&sink->br);

    if (state == CM_BR_OPEN || state == CM_BR_FORCED_OPEN) {
        return NGX_DECLINED;
    }

    sink->probing = (state == CM_BR_HALF_OPEN);

    return ngx_commerce_event_relay_submit(sink, NGX_COMMERCE_STMT_OUTBOX_CLAIM,
                                           ngx_commerce_event_relay_claimed);
}


static void
ngx_commerce_event_relay_breaker_log(ngx_commerce_event_sink_t *sink)
{
    cm_br_transition_t  tr;

    while (cm_br_take_transition(&sink->br, &sink->br_seen, &tr)) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "commerce: event sink %V: circuit %s -> %s: %s",
                      &sink->name, cm_br_state_name(tr.from),
                      cm_br_state_name(tr.to), tr.reason_text);
    }
}


static ngx_int_t
ngx_commerce_event_relay_submit(ngx_commerce_event_sink_t *sink,
    ngx_uint_t stmt, ngx_commerce_pg_handler_pt handler)
{
    ngx_commerce_pg_query_t  *q;

    q = &sink->query;

    ngx_commerce_pg_reset(q);

    q->stmt = &ngx_commerce_event_statements[stmt];
    q->params[0] = (char *) sink->name.data;   /* NUL-terminated by nginx */

    switch (stmt) {

    case NGX_COMMERCE_STMT_OUTBOX_REGISTER:
        q->nparams = 2;
        q->params[1] = sink->types;
        break;

    default: /* NGX_COMMERCE_STMT_OUTBOX_CLAIM */
        q->nparams = 3;
        q->params[1] = sink->probing ? "1" : sink->batch_s;
        q->params[2] = sink->lease_s;
        break;
    }

    q->log = ngx_cycle->log;
    q->data = sink;
    q->handler = handler;

    return ngx_commerce_pg_submit(ngx_commerce_conf_main()->pool, q);
}


static void
ngx_commerce_event_relay_registered(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    ngx_commerce_event_sink_t  *sink;

    sink = q->data;

    if (rc != NGX_OK || res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
    {
        if (rc == NGX_OK && res != NULL) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "commerce: event sink %V: registering failed: %s",
                          &sink->name, PQresultErrorMessage(res));
        }

        ngx_commerce_event_relay_end(sink, 0);
        return;
    }

    sink->registered = 1;

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "commerce: event sink %V registered, events %s",
                  &sink->name, sink->types);

    if (ngx_commerce_event_relay_claim(sink) != NGX_OK) {
        ngx_commerce_event_relay_end(sink, 0);
    }
}


/* claimed: delivery, seq, attempt, type, token, event_id, body */

static void
ngx_commerce_event_relay_claimed(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    int                         i, n;
    int64_t                     v;
    ngx_str_t                   s;
    ngx_pool_t                 *pool;
    ngx_commerce_event_run_t   *run;
    ngx_commerce_event_item_t  *item;
    ngx_commerce_event_sink_t  *sink;

    sink = q->data;

    if (rc != NGX_OK || res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQnfields(res) != 7)
    {
        if (rc == NGX_OK && res != NULL) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "commerce: event sink %V: claim failed: %s",
                          &sink->name, PQresultErrorMessage(res));
        }

        ngx_commerce_event_relay_end(sink, 0);
        return;
    }

    n = PQntuples(res);

    if (n == 0) {
        ngx_commerce_event_relay_end(sink, 0);
        return;
    }

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        ngx_commerce_event_relay_end(sink, 0);
        return;
    }

    run = ngx_pcalloc(pool, sizeof(ngx_commerce_event_run_t));
    if (run == NULL) {
        goto failed;
    }

    run->pool = pool;
    run->sink = sink;
    run->n = n;

    run->items = ngx_pcalloc(pool, n * sizeof(ngx_commerce_event_item_t));
    if (run->items == NULL) {
        goto failed;
    }

    ngx_cpystrn(run->token, (u_char *) PQgetvalue(res, 0, 4),
                sizeof(run->token));

    for (i = 0; i < n; i++) {
        item = &run->items[i];
        item->run = run;

        if (ngx_commerce_event_relay_copy(pool, res, i, 0, &s) != NGX_OK
            || cm_parse_int64(s.data, s.len, 1, INT64_MAX, &item->delivery)
               != 0
            || ngx_commerce_event_relay_copy(pool, res, i, 2, &s) != NGX_OK
            || cm_parse_int64(s.data, s.len, 1, 1000000, &v) != 0
            || ngx_commerce_event_relay_copy(pool, res, i, 3,
                                             &item->type_name) != NGX_OK
            || ngx_commerce_event_relay_copy(pool, res, i, 5, &item->id)
               != NGX_OK
            || ngx_commerce_event_relay_copy(pool, res, i, 6, &item->body)
               != NGX_OK)
        {
            goto failed;
        }

        item->attempt = (ngx_uint_t) v;
        item->type = ngx_commerce_event_type_slot(item->type_name.data,
                                                  item->type_name.len);
    }

    sink->run = run;

    ngx_commerce_event_relay_pump(run);

    return;

failed:

    /* the leases expire: the events are claimed again then */
    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "commerce: event sink %V: cannot read a claim of %d",
                  &sink->name, n);

    ngx_destroy_pool(pool);
    ngx_commerce_event_relay_end(sink, 0);
}


/* a NUL-terminated copy of a column, which must not be NULL */

static ngx_int_t
ngx_commerce_event_relay_copy(ngx_pool_t *pool, PGresult *res, int row,
    int col, ngx_str_t *out)
{
    if (PQgetisnull(res, row, col)) {
        return NGX_ERROR;
    }

    out->len = PQgetlength(res, row, col);
    out->data = ngx_pnalloc(pool, out->len + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, PQgetvalue(res, row, col), out->len + 1);

    return NGX_OK;
}


/*
 * Keeps up to concurrency sends in flight.  A send may end inside its own
 * start (a refused connection is posted, a Redis refusal is immediate):
 * its outcome calls back here, and the flag keeps that a plain count.
 */

static void
ngx_commerce_event_relay_pump(ngx_commerce_event_run_t *run)
{
    if (run->pumping) {
        return;
    }

    run->pumping = 1;

    while (run->next < run->n && run->inflight < run->sink->concurrency) {
        run->inflight++;
        ngx_commerce_event_relay_send(&run->items[run->next++]);
    }

    run->pumping = 0;

    if (run->done == run->n) {
        ngx_commerce_event_relay_settle(run);
    }
}


static void
ngx_commerce_event_relay_send(ngx_commerce_event_item_t *item)
{
    u_char                     *p;
    ngx_str_t                   argv[12];
    ngx_commerce_client_t      *h;
    ngx_commerce_event_sink_t  *sink;

    sink = item->run->sink;

    if (!cm_br_acquire(&sink->br, &sink->breaker, ngx_current_msec,
                       &item->permit))
    {
        item->permit = -1;
        ngx_commerce_event_relay_breaker_log(sink);
        ngx_commerce_event_relay_outcome(item, 'P', "not sent: the sink is "
                                         "down (circuit open)");
        return;
    }

    item->started = ngx_current_msec;

    if (sink->kind == NGX_COMMERCE_EVENT_NOTIFY) {
        if (ngx_commerce_event_notify_send(sink, item->run->pool, &item->id,
                                           &item->type_name, &item->body,
                                           item->attempt > sink->retries,
                                           ngx_commerce_event_relay_notified,
                                           item)
            != NGX_OK)
        {
            ngx_commerce_event_relay_outcome(item, 'R', "no memory");
        }

        return;
    }

    if (sink->kind == NGX_COMMERCE_EVENT_REDIS) {
        ngx_str_set(&argv[0], "XADD");
        argv[1] = sink->stream;
        ngx_str_set(&argv[2], "MAXLEN");
        ngx_str_set(&argv[3], "~");
        argv[4] = sink->maxlen;
        ngx_str_set(&argv[5], "*");
        ngx_str_set(&argv[6], "id");
        argv[7] = item->id;
        ngx_str_set(&argv[8], "type");
        argv[9] = item->type_name;
        ngx_str_set(&argv[10], "event");
        argv[11] = item->body;

        if (ngx_commerce_redis_command(12, argv,
                                       ngx_commerce_event_relay_redis_done,
                                       item)
            == NULL)
        {
            ngx_commerce_event_relay_outcome(item, 'R', "redis unavailable");
        }

        return;
    }

    h = &item->http;

    h->pool = item->run->pool;
    h->log = ngx_cycle->log;
    h->gw = &sink->peer;
    ngx_str_set(&h->method, "POST");
    h->uri = sink->uri;
    h->request_body = item->body;

    /* the event id is the delivery's Idempotency-Key */
    p = ngx_pnalloc(h->pool, sizeof("Idempotency-Key: " CRLF
                                    "X-Event-Type: " CRLF) - 1
                             + item->id.len + item->type_name.len);
    if (p == NULL) {
        ngx_commerce_event_relay_outcome(item, 'R', "no memory");
        return;
    }

    h->extra_headers.data = p;
    h->extra_headers.len = ngx_sprintf(p, "Idempotency-Key: %V" CRLF
                                       "X-Event-Type: %V" CRLF,
                                       &item->id, &item->type_name)
                           - p;

    h->handler = ngx_commerce_event_relay_http_done;
    h->data = item;

    if (ngx_commerce_client_start(h) != NGX_OK) {
        ngx_commerce_event_relay_outcome(item, 'R', "client error");
    }
}


static void
ngx_commerce_event_relay_http_done(ngx_commerce_client_t *h)
{
    u_char                      snippet[100];
    size_t                      i, len;
    ngx_commerce_event_item_t  *item;

    item = h->data;

    if (h->rc != NGX_COMMERCE_HTTP_OK) {
        item->unsent = (h->rc == NGX_COMMERCE_HTTP_REFUSED
                        || h->rc == NGX_COMMERCE_HTTP_CONNECT_TIMEOUT);
        ngx_commerce_event_relay_outcome(item, 'R', "%s",
                                     ngx_commerce_client_rc_name(h->rc));
        return;
    }

    if (h->status >= 200 && h->status < 300) {
        ngx_commerce_event_relay_outcome(item, 'D', "");
        return;
    }

    /* a poison event: the platform refuses it, as it is, for good */
    if (h->status >= 400 && h->status < 500
        && h->status != NGX_HTTP_REQUEST_TIME_OUT
        && h->status != NGX_HTTP_TOO_MANY_REQUESTS)
    {
        len = ngx_min(h->body.len, sizeof(snippet) - 1);

        for (i = 0; i < len; i++) {
            snippet[i] = (h->body.data[i] < 0x20 || h->body.data[i] >= 0x7f)
                         ? '?' : h->body.data[i];
        }

        snippet[len] = '\0';

        ngx_commerce_event_relay_outcome(item, 'X', "HTTP %ui: %s",
                                         h->status, snippet);
        return;
    }

    ngx_commerce_event_relay_outcome(item, 'R', "HTTP %ui", h->status);
}


static void
ngx_commerce_event_relay_redis_done(void *data, ngx_commerce_redis_rc_e rc,
    redisReply *reply)
{
    ngx_commerce_event_item_t  *item;

    item = data;

    switch (rc) {

    case NGX_COMMERCE_REDIS_REPLY:
        if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
            ngx_commerce_event_relay_outcome(item, 'R', "redis: %*s",
                                         (size_t) ngx_min(reply->len, 100),
                                         reply->str);
            return;
        }

        ngx_commerce_event_relay_outcome(item, 'D', "");
        return;

    case NGX_COMMERCE_REDIS_TIMEOUT:
        ngx_commerce_event_relay_outcome(item, 'R', "redis timeout");
        return;

    case NGX_COMMERCE_REDIS_LOST:
        ngx_commerce_event_relay_outcome(item, 'R', "redis connection lost");
        return;

    default:
        ngx_commerce_event_relay_outcome(item, 'R', "redis unavailable");
        return;
    }
}


/*
 * A notification's outcome.  sink_up: a failure of the sink's channel that
 * its failover channel would have covered: not the sink being down.
 */

static void
ngx_commerce_event_relay_notified(void *data, u_char state,
    ngx_uint_t sink_up, u_char *error, size_t len)
{
    ngx_commerce_event_item_t  *item;

    item = data;
    item->sink_up = sink_up ? 1 : 0;

    ngx_commerce_event_relay_outcome(item, state, "%*s", len, error);
}


/*
 * An event's outcome.  A retry beyond the sink's retries is dead; the
 * delay of a retry is "equal jitter": half of the exponential ceiling,
 * plus up to the other half at random, so retries of events that failed
 * together spread, and none comes back at once.
 */

static void
ngx_commerce_event_relay_outcome(ngx_commerce_event_item_t *item,
    u_char state, const char *fmt, ...)
{
    va_list                     args;
    int64_t                     ceiling;
    uint32_t                    rnd;
    ngx_commerce_event_run_t   *run;
    ngx_commerce_event_sink_t  *sink;

    run = item->run;
    sink = run->sink;

    va_start(args, fmt);
    item->error_len = ngx_vslprintf(item->error,
                                    item->error + sizeof(item->error) - 1,
                                    fmt, args)
                      - item->error;
    va_end(args);

    /*
     * The breaker hears of every send: a retryable failure is the sink's
     * failure; an answer, even a refusal of the event, is the sink up.
     */
    if (item->permit >= 0) {
        cm_br_record(&sink->br, &sink->breaker, ngx_current_msec,
                     item->permit,
                     (state == 'R' && !item->sink_up) ? CM_BR_FAILURE
                                                      : CM_BR_SUCCESS,
                     ngx_current_msec - item->started);
        item->permit = -1;
        ngx_commerce_event_relay_breaker_log(sink);
    }

    /*
     * The probe of a sink that is down, and a send that never left (no
     * connection: the breaker heard it above), are the sink's attempts,
     * not the event's: a sink that is down does not use up the retries of
     * the events that wait for it, even before its breaker opens.
     */
    if (state == 'R' && (sink->probing || item->unsent)) {
        state = 'P';
    }

    if (state == 'R' && item->attempt > sink->retries) {
        state = 'X';
    }

    if (state == 'R' || state == 'P') {
        ceiling = cm_backoff_ceiling(sink->retry_base, sink->retry_cap,
                                     item->attempt - 1);
        rnd = ((uint32_t) ngx_random() << 16) ^ (uint32_t) ngx_random();
        item->delay = ceiling / 2
                      + cm_backoff_full_jitter(ceiling - ceiling / 2,
                                               ceiling - ceiling / 2, 0, rnd);

        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "commerce: event %V (%V) to sink %V: attempt %ui "
                      "failed (%*s), retry in %Mms",
                      &item->id, &item->type_name, &sink->name,
                      item->attempt, item->error_len, item->error,
                      item->delay);

    } else if (state == 'X') {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "commerce: event %V (%V) to sink %V is dead after "
                      "%ui attempt(s): %*s",
                      &item->id, &item->type_name, &sink->name,
                      item->attempt, item->error_len, item->error);
    }

    item->state = state;

    run->inflight--;
    run->done++;

    ngx_commerce_event_relay_pump(run);
}


/* one statement for the whole batch: arrays of ids, states, delays, errors */

static void
ngx_commerce_event_relay_settle(ngx_commerce_event_run_t *run)
{
    u_char                     *ids, *states, *delays, *errors, *p, *e;
    size_t                      i, k;
    ngx_commerce_pg_query_t    *q;
    ngx_commerce_event_item_t  *item;
    ngx_commerce_event_sink_t  *sink;

    sink = run->sink;

    ids = ngx_pnalloc(run->pool, run->n * (NGX_INT64_LEN + 1) + 3);
    states = ngx_pnalloc(run->pool, run->n * 2 + 3);
    delays = ngx_pnalloc(run->pool, run->n * (NGX_INT64_LEN + 1) + 3);
    errors = ngx_pnalloc(run->pool, run->n * (2 * 160 + 3) + 3);

    if (ids == NULL || states == NULL || delays == NULL || errors == NULL) {
        ngx_commerce_event_relay_end(sink, 0);
        return;
    }

    p = ids;
    *p++ = '{';
    for (i = 0; i < run->n; i++) {
        p = ngx_sprintf(p, i ? ",%L" : "%L", run->items[i].delivery);
    }
    *p++ = '}'; *p = '\0';

    p = states;
    *p++ = '{';
    for (i = 0; i < run->n; i++) {
        if (i) {
            *p++ = ',';
        }
        *p++ = run->items[i].state;
    }
    *p++ = '}'; *p = '\0';

    p = delays;
    *p++ = '{';
    for (i = 0; i < run->n; i++) {
        p = ngx_sprintf(p, i ? ",%M" : "%M", run->items[i].delay);
    }
    *p++ = '}'; *p = '\0';

    /* quoted array elements: '"' and '\' escaped, nothing else special */
    p = errors;
    *p++ = '{';
    for (i = 0; i < run->n; i++) {
        item = &run->items[i];

        if (i) {
            *p++ = ',';
        }

        *p++ = '"';
        e = item->error;

        for (k = 0; k < item->error_len; k++) {
            if (e[k] == '"' || e[k] == '\\') {
                *p++ = '\\';
            }
            *p++ = (e[k] < 0x20 || e[k] >= 0x7f) ? '?' : e[k];
        }

        *p++ = '"';
    }
    *p++ = '}'; *p = '\0';

    q = &sink->query;

    ngx_commerce_pg_reset(q);

    q->stmt = &ngx_commerce_event_statements[NGX_COMMERCE_STMT_OUTBOX_SETTLE];
    q->nparams = 5;
    q->params[0] = (char *) run->token;
    q->params[1] = (char *) ids;
    q->params[2] = (char *) states;
    q->params[3] = (char *) delays;
    q->params[4] = (char *) errors;
    q->log = ngx_cycle->log;
    q->data = sink;
    q->handler = ngx_commerce_event_relay_settled;

    if (ngx_commerce_pg_submit(ngx_commerce_conf_main()->pool, q) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "commerce: event sink %V: no database connection to "
                      "settle %ui event(s); they are sent again when their "
                      "lease ends", &sink->name, run->n);
        ngx_commerce_event_relay_end(sink, 0);
    }
}


static void
ngx_commerce_event_relay_settled(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    ngx_uint_t                  i;
    ngx_commerce_event_run_t   *run;
    ngx_commerce_event_item_t  *item;
    ngx_commerce_event_sink_t  *sink;

    sink = q->data;
    run = sink->run;

    if (rc != NGX_OK || res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "commerce: event sink %V: settling %ui event(s) "
                      "failed%s%s; they are sent again when their lease "
                      "ends", &sink->name, run->n,
                      (rc == NGX_OK && res != NULL) ? ": " : "",
                      (rc == NGX_OK && res != NULL)
                      ? PQresultErrorMessage(res) : "");

        ngx_commerce_event_relay_end(sink, 0);
        return;
    }

    for (i = 0; i < run->n; i++) {
        item = &run->items[i];

        ngx_commerce_shm_count(sink->counters[item->type][
                                   item->state == 'D'
                                   ? NGX_COMMERCE_EVENT_DELIVERED
                                   : item->state == 'X'
                                   ? NGX_COMMERCE_EVENT_DEAD
                                   : NGX_COMMERCE_EVENT_RETRIED], 1);
    }

    /* there may be more: claim again at once */
    ngx_commerce_event_relay_end(sink, 1);
}


static void
ngx_commerce_event_relay_end(ngx_commerce_event_sink_t *sink,
    ngx_msec_t next)
{
    if (sink->run != NULL) {
        ngx_destroy_pool(sink->run->pool);
        sink->run = NULL;
    }

    ngx_commerce_job_done(&sink->job, next);
}


/* ------------------------------------------------------------------------
 * the gauges: backlog, oldest pending age and dead events, per sink
 */

ngx_int_t
ngx_commerce_event_relay_gauges(ngx_commerce_job_t *job)
{
    ngx_commerce_event_conf_t  *ecf;

    ecf = job->data;

    ngx_commerce_pg_reset(&ecf->query);

    ecf->query.stmt =
        &ngx_commerce_event_statements[NGX_COMMERCE_STMT_OUTBOX_STATS];
    ecf->query.nparams = 0;
    ecf->query.log = ngx_cycle->log;
    ecf->query.data = ecf;
    ecf->query.handler = ngx_commerce_event_relay_gauged;

    return ngx_commerce_pg_submit(ngx_commerce_conf_main()->pool,
                                  &ecf->query);
}


static void
ngx_commerce_event_relay_gauged(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    size_t                      i, j;
    int64_t                     backlog, oldest, dead;
    yajl_val                    v, it;
    ngx_str_t                   name;
    ngx_pool_t                 *tmp;
    ngx_commerce_event_conf_t  *ecf;
    ngx_commerce_event_sink_t  *sink;

    ecf = q->data;

    if (rc != NGX_OK || res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1)
    {
        goto done;
    }

    tmp = ngx_create_pool(4096, ngx_cycle->log);
    if (tmp == NULL) {
        goto done;
    }

    v = ngx_commerce_json_parse(tmp, (u_char *) PQgetvalue(res, 0, 0),
                                PQgetlength(res, 0, 0));

    if (v != NULL && YAJL_IS_ARRAY(v)) {
        sink = ecf->sinks.elts;

        for (i = 0; i < YAJL_GET_ARRAY(v)->len; i++) {
            it = YAJL_GET_ARRAY(v)->values[i];

            if (ngx_commerce_json_str(tmp, it, "sink", NULL, &name, 64)
                   != NGX_OK
                || ngx_commerce_json_int(it, "backlog", NULL, &backlog)
                   != NGX_OK
                || ngx_commerce_json_int(it, "oldestSeconds", NULL, &oldest)
                   != NGX_OK
                || ngx_commerce_json_int(it, "dead", NULL, &dead) != NGX_OK)
            {
                continue;
            }

            for (j = 0; j < ecf->sinks.nelts; j++) {
                if (sink[j].name.len == name.len
                    && ngx_strncmp(sink[j].name.data, name.data, name.len)
                       == 0)
                {
                    ngx_commerce_shm_gauge(sink[j].backlog, backlog);
                    ngx_commerce_shm_gauge(sink[j].oldest, oldest);
                    ngx_commerce_shm_gauge(sink[j].dead, dead);
                }
            }
        }
    }

    ngx_destroy_pool(tmp);

done:

    ngx_commerce_job_done(&ecf->gauges, 0);
}
