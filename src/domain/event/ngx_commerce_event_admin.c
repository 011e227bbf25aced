
/*
 * The dead-letter queue's admin API (ADMIN only): list the dead events,
 * and put one, or all of a sink and/or a type, back in line (audited
 * EVENT_REPLAY with the admin and the client's address).  Also the
 * domain's statement table, shared with the relay.
 */


#include "ngx_commerce_event.h"


#define NGX_COMMERCE_DEAD_LIMIT_DEFAULT  50
#define NGX_COMMERCE_DEAD_LIMIT_MAX      500


static ngx_int_t ngx_commerce_event_admin_dead(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_event_admin_replay(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_event_admin_replay_all(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_event_admin_query(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, int64_t id, char *sink, char *type);


ngx_commerce_stmt_t  ngx_commerce_event_statements[] = {

    [NGX_COMMERCE_STMT_OUTBOX_REGISTER] =
    { "cm_outbox_register", "SELECT cm_outbox_register($1, $2::text[])", 2,
      NGX_COMMERCE_STMT_RESEND, NULL, 0 },

    [NGX_COMMERCE_STMT_OUTBOX_CLAIM] =
    { "cm_outbox_claim",
      "SELECT * FROM cm_outbox_claim($1, $2::int, $3::int)", 3,
      0, NULL, 0 },

    /* token-guarded: a second run of it changes nothing */
    [NGX_COMMERCE_STMT_OUTBOX_SETTLE] =
    { "cm_outbox_settle",
      "SELECT cm_outbox_settle($1::uuid, $2::bigint[], $3::text[], "
      "$4::int[], $5::text[])", 5,
      NGX_COMMERCE_STMT_RESEND, NULL, 0 },

    [NGX_COMMERCE_STMT_OUTBOX_STATS] =
    { "cm_outbox_stats", "SELECT cm_outbox_stats()", 0,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_OUTBOX_DEAD] =
    { "cm_outbox_dead", "SELECT cm_outbox_dead($1::int)", 1,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_OUTBOX_REPLAY] =
    { "cm_outbox_replay",
      "SELECT cm_outbox_replay($1::bigint, $2::bigint, $3, $4, $5)", 5,
      0, NULL, 0 },

    /* the recipient of a notification: ciphertexts, never plaintext */
    [NGX_COMMERCE_STMT_NOTIFY_RECIPIENT] =
    { "cm_notify_recipient",
      "SELECT cm_notify_recipient($1::bigint, $2::bigint)", 2,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_EVENT_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


ngx_commerce_route_t  ngx_commerce_event_routes[] = {

    NGX_COMMERCE_ROUTE("GET", "/api/v1/admin/events/dead", CM_ROLE_ADMIN, 0,
                       "admin_events_dead", ngx_commerce_event_admin_dead,
                       "listDeadEvents"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/admin/events/dead/{id}/replay",
                       CM_ROLE_ADMIN, 0, "admin_events_replay",
                       ngx_commerce_event_admin_replay, "replayDeadEvent"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/admin/events/dead/replay",
                       CM_ROLE_ADMIN, 0, "admin_events_replay_all",
                       ngx_commerce_event_admin_replay_all,
                       "replayDeadEvents"),

    ngx_commerce_route_end
};


/* GET /api/v1/admin/events/dead?limit=50: newest first */

static ngx_int_t
ngx_commerce_event_admin_dead(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    int64_t    limit;
    ngx_int_t  rc;
    ngx_str_t  v;

    limit = NGX_COMMERCE_DEAD_LIMIT_DEFAULT;

    rc = ngx_commerce_handler_arg(r, "limit", &v);

    if (rc != NGX_DECLINED
        && (rc != NGX_OK
            || cm_parse_int64(v.data, v.len, 1, NGX_COMMERCE_DEAD_LIMIT_MAX,
                              &limit)
               != 0))
    {
        return ngx_commerce_reply_invalid(r, "limit must be an integer "
                                             "between 1 and 500, given at "
                                             "most once");
    }

    ctx->query.stmt =
        &ngx_commerce_event_statements[NGX_COMMERCE_STMT_OUTBOX_DEAD];
    ctx->query.nparams = 1;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query, limit);
    ctx->success_status = NGX_HTTP_OK;

    return ngx_commerce_handler_query(r, ctx);
}


/* POST /api/v1/admin/events/dead/{id}/replay, body {} */

static ngx_int_t
ngx_commerce_event_admin_replay(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    char  err[CM_JSON_ERR_LEN];

    if (cm_parse_fields(body, len, NULL, 0, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_invalid(r, err);
    }

    return ngx_commerce_event_admin_query(r, ctx, ctx->id, NULL, NULL);
}


/*
 * POST /api/v1/admin/events/dead/replay, body {"sink"?, "type"?}: every
 * dead event of that sink and/or type ({} : every dead event)
 */

static ngx_int_t
ngx_commerce_event_admin_replay_all(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    char        err[CM_JSON_ERR_LEN], sink[32], type[64];
    u_char     *p, *dot;
    size_t      i;
    cm_field_t  f[2];

    ngx_memzero(f, sizeof(f));
    f[0].name = "sink";
    f[0].max = sizeof(sink) - 1;
    f[0].value = sink;
    f[1].name = "type";
    f[1].max = sizeof(type) - 1;
    f[1].value = type;

    if (cm_parse_fields(body, len, f, 2, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_invalid(r, err);
    }

    if (f[0].seen) {
        for (i = 0; i < f[0].len; i++) {
            if (!((sink[i] >= 'a' && sink[i] <= 'z')
                  || (sink[i] >= 'A' && sink[i] <= 'Z')
                  || (sink[i] >= '0' && sink[i] <= '9')
                  || sink[i] == '_' || sink[i] == '-'))
            {
                break;
            }
        }

        if (f[0].len == 0 || i < f[0].len) {
            return ngx_commerce_reply_invalid(r, "sink must be a sink name "
                                                 "(letters, digits, _ and "
                                                 "-)");
        }
    }

    if (f[1].seen) {
        p = (u_char *) type;
        dot = ngx_strlchr(p, p + f[1].len, '.');

        for (i = 0; i < f[1].len; i++) {
            if (!((p[i] >= 'a' && p[i] <= 'z') || p[i] == '_'
                  || &p[i] == dot))
            {
                break;
            }
        }

        if (i < f[1].len || dot == NULL || dot == p
            || dot == p + f[1].len - 1)
        {
            return ngx_commerce_reply_invalid(r, "type must be an event "
                                                 "type such as order.paid");
        }
    }

    return ngx_commerce_event_admin_query(r, ctx, 0,
                                          f[0].seen ? sink : NULL,
                                          f[1].seen ? type : NULL);
}


static ngx_int_t
ngx_commerce_event_admin_query(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    int64_t id, char *sink, char *type)
{
    u_char     *client;
    ngx_str_t  *addr;

    addr = &r->connection->addr_text;

    client = ngx_pnalloc(r->pool, ngx_min(addr->len, 255) + 1);
    if (client == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *ngx_cpymem(client, addr->data, ngx_min(addr->len, 255)) = '\0';

    ctx->query.stmt =
        &ngx_commerce_event_statements[NGX_COMMERCE_STMT_OUTBOX_REPLAY];
    ctx->query.nparams = 5;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query,
                                               ctx->claims.user_id);
    ctx->query.params[1] = id ? ngx_commerce_pg_int(&ctx->query, id) : NULL;
    ctx->query.params[2] = sink;
    ctx->query.params[3] = type;
    ctx->query.params[4] = (char *) client;
    ctx->success_status = NGX_HTTP_OK;

    return ngx_commerce_handler_query(r, ctx);
}
