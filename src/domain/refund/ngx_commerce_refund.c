
/*
 * Cancellations, returns and refunds (issue 13 section 3): the buyer's
 * cancel of an order or of its parts before shipping, the buyer's return
 * of a delivered part, and the seller's decision, and the restock of what
 * came back undamaged.  Postgres decides and moves the money
 * (sql/functions/72_refund.sql): stock, coupon, points and balance in the
 * request's transaction, the card and easy-pay parts as PENDING refunds
 * that the refund job carries out at the gateway
 * (ngx_commerce_refund_job.c).
 *
 * Bodies are read strictly here: a JSON object with known keys only, each
 * once, of the right types; what they mean (which parts, which variants,
 * how many) is the database's to check.
 */


#include "ngx_commerce_refund.h"
#include "ngx_commerce_seller.h"


/* ids in a list (partIds, items) */
#define NGX_COMMERCE_REFUND_LIST_MAX   50
/* nesting a body may have: {"items":[{"variantId":1}]} is 3 */
#define NGX_COMMERCE_REFUND_DEPTH_MAX  3
/* bytes of a reason (500 characters of up to 4 bytes) */
#define NGX_COMMERCE_REFUND_TEXT_MAX   2000


static ngx_int_t ngx_commerce_refund_cancel(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_refund_request(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_refund_get(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_refund_list(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_refund_approve(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_refund_reject(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_refund_restock(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);

static const char *ngx_commerce_refund_body(ngx_http_request_t *r,
    u_char *body, size_t len, const char **keys, yajl_val *out);
static const char *ngx_commerce_refund_ids(ngx_http_request_t *r, yajl_val v,
    char **ids);
static const char *ngx_commerce_refund_items(ngx_http_request_t *r,
    yajl_val v, int64_t min, char **variants, char **quantities);
static const char *ngx_commerce_refund_text(yajl_val v, const char *name);


ngx_commerce_stmt_t  ngx_commerce_refund_statements[] = {

    [NGX_COMMERCE_STMT_ORDER_CANCEL] =
    { "cm_order_cancel",
      "SELECT cm_order_cancel($1::bigint, $2::bigint, $3::bigint[])", 3, 0,
      &ngx_commerce_refund_statements[NGX_COMMERCE_STMT_ORDER_CANCEL_IDEM],
      0 },

    /* the cancel and its answer under an Idempotency-Key, one transaction */
    [NGX_COMMERCE_STMT_ORDER_CANCEL_IDEM] =
    { "cm_order_cancel_idem",
      "SELECT cm_idem_done(h.held, $4::bigint, $5::text, $6::int, "
      "cm_order_cancel($1::bigint, $2::bigint, $3::bigint[])) "
      "FROM cm_idem_hold($4::bigint, $5::text) AS h(held)", 6, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_RETURN_REQUEST] =
    { "cm_return_request",
      "SELECT cm_return_request($1::bigint, $2::bigint, $3::bigint, $4::text, "
      "$5::bigint[], $6::int[])", 6, 0,
      &ngx_commerce_refund_statements[NGX_COMMERCE_STMT_RETURN_REQUEST_IDEM],
      0 },

    [NGX_COMMERCE_STMT_RETURN_REQUEST_IDEM] =
    { "cm_return_request_idem",
      "SELECT cm_idem_done(h.held, $7::bigint, $8::text, $9::int, "
      "cm_return_request($1::bigint, $2::bigint, $3::bigint, $4::text, "
      "$5::bigint[], $6::int[])) "
      "FROM cm_idem_hold($7::bigint, $8::text) AS h(held)", 9, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_RETURN_GET] =
    { "cm_seller_return_get",
      "SELECT cm_seller_return_get($1::bigint, $2::bigint)", 2,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_RETURN_LIST] =
    { "cm_seller_returns",
      "SELECT cm_seller_returns($1::bigint, $2::bigint, $3::text, $4::int, "
      "$5::int)", 5, NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_RETURN_APPROVE] =
    { "cm_seller_return_approve",
      "SELECT cm_seller_return_approve($1::bigint, $2::bigint, $3::text, "
      "$4::text)", 4, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_RETURN_REJECT] =
    { "cm_seller_return_reject",
      "SELECT cm_seller_return_reject($1::bigint, $2::bigint, $3::text)", 3,
      0, NULL, 0 },

    [NGX_COMMERCE_STMT_RETURN_RESTOCK] =
    { "cm_seller_return_restock",
      "SELECT cm_seller_return_restock($1::bigint, $2::bigint, $3::bigint[], "
      "$4::int[])", 4, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_REFUND_DUE] =
    { "cm_refund_due", "SELECT cm_refund_due($1::int, $2::int)", 2, 0,
      NULL, 0 },

    [NGX_COMMERCE_STMT_REFUND_DONE] =
    { "cm_refund_done",
      "SELECT cm_refund_done($1::bigint, $2::text, $3::text, $4::int, "
      "$5::int)", 5, 0, NULL, 0 },

    [NGX_COMMERCE_REFUND_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


ngx_commerce_route_t  ngx_commerce_refund_routes[] = {

    NGX_COMMERCE_ROUTE("POST", "/api/v1/orders/{id}/cancel", CM_ROLE_ALL,
                       NGX_COMMERCE_ROUTE_IDEM, "order_cancel",
                       ngx_commerce_refund_cancel, "cancelOrder"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/orders/{id}/parts/{partId}/returns",
                       CM_ROLE_ALL, NGX_COMMERCE_ROUTE_IDEM, "order_return",
                       ngx_commerce_refund_request, "requestReturn"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/seller/returns",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_return",
                       ngx_commerce_refund_list, "listSellerReturns"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/seller/returns/{id}",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_return",
                       ngx_commerce_refund_get, "getSellerReturn"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/seller/returns/{id}/approve",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_return",
                       ngx_commerce_refund_approve, "approveReturn"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/seller/returns/{id}/reject",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_return",
                       ngx_commerce_refund_reject, "rejectReturn"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/seller/returns/{id}/restock",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_return",
                       ngx_commerce_refund_restock, "restockReturn"),

    ngx_commerce_route_end
};


/* POST /orders/{id}/cancel: no body, {} or {"partIds":[..]} */

static ngx_int_t
ngx_commerce_refund_cancel(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    char        *parts;
    yajl_val     v[1];
    const char  *err;

    static const char  *keys[] = { "partIds", NULL };

    parts = NULL;

    if (len > 0) {
        err = ngx_commerce_refund_body(r, body, len, keys, v);
        if (err == NULL && v[0] != NULL) {
            err = ngx_commerce_refund_ids(r, v[0], &parts);
        }

        if (err != NULL) {
            return ngx_commerce_reply_invalid(r, err);
        }
    }

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_refund_statements[NGX_COMMERCE_STMT_ORDER_CANCEL],
               NGX_HTTP_OK, 3,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id), parts);
}


/* POST /orders/{id}/parts/{partId}/returns {"reason","items":[..]} */

static ngx_int_t
ngx_commerce_refund_request(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    char        *variants, *quantities;
    yajl_val     v[2];
    const char  *err;

    static const char  *keys[] = { "reason", "items", NULL };

    err = ngx_commerce_refund_body(r, body, len, keys, v);

    if (err == NULL) {
        err = ngx_commerce_refund_text(v[0], "reason");
    }

    if (err == NULL) {
        err = ngx_commerce_refund_items(r, v[1], 1, &variants, &quantities);
    }

    if (err != NULL) {
        return ngx_commerce_reply_invalid(r, err);
    }

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_refund_statements[
                                           NGX_COMMERCE_STMT_RETURN_REQUEST],
               NGX_HTTP_CREATED, 6,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id),
               ngx_commerce_pg_int(&ctx->query, ctx->id2),
               YAJL_GET_STRING(v[0]), variants, quantities);
}


/* GET /seller/returns/{id} */

static ngx_int_t
ngx_commerce_refund_get(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_refund_statements[NGX_COMMERCE_STMT_RETURN_GET],
               NGX_HTTP_OK, 2,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id));
}


/*
 * GET /seller/returns?storeId=&status=&page=&size=: the status, once, is
 * the database's to check
 */

static ngx_int_t
ngx_commerce_refund_list(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    char        *status;
    size_t       i;
    int64_t      store, page, size;
    ngx_str_t    v;
    ngx_int_t    rc;
    const char  *msg;

    status = NULL;
    v.len = 0;

    msg = ngx_commerce_handler_page(r, &store, &page, &size);
    if (msg != NULL) {
        return ngx_commerce_reply_invalid(r, msg);
    }

    rc = ngx_commerce_handler_arg(r, "status", &v);

    for (i = 0; rc == NGX_OK && i < v.len; i++) {
        if (v.data[i] < 'A' || v.data[i] > 'Z') {
            rc = NGX_ERROR;
        }
    }

    if (rc == NGX_ERROR || (rc == NGX_OK && (v.len == 0 || v.len > 16))) {
        return ngx_commerce_reply_invalid(r, "status must be REQUESTED, "
                   "APPROVED, REJECTED, RECEIVED or REFUNDED, once");
    }

    if (rc == NGX_OK) {
        status = ngx_commerce_json_cstr(r->pool, &v);
        if (status == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_refund_statements[NGX_COMMERCE_STMT_RETURN_LIST],
               NGX_HTTP_OK, 5,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               store ? ngx_commerce_pg_int(&ctx->query, store) : NULL,
               status, ngx_commerce_pg_int(&ctx->query, page),
               ngx_commerce_pg_int(&ctx->query, size));
}


/* POST /seller/returns/{id}/approve {"carrier","trackingNumber"} */

static ngx_int_t
ngx_commerce_refund_approve(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    yajl_val     v[2];
    const char  *err;

    static const char  *keys[] = { "carrier", "trackingNumber", NULL };

    err = ngx_commerce_refund_body(r, body, len, keys, v);

    if (err == NULL) {
        err = ngx_commerce_refund_text(v[0], "carrier");
    }

    if (err == NULL) {
        err = ngx_commerce_refund_text(v[1], "trackingNumber");
    }

    if (err != NULL) {
        return ngx_commerce_reply_invalid(r, err);
    }

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_refund_statements[
                                           NGX_COMMERCE_STMT_RETURN_APPROVE],
               NGX_HTTP_OK, 4,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id),
               YAJL_GET_STRING(v[0]), YAJL_GET_STRING(v[1]));
}


/* POST /seller/returns/{id}/reject {"reason"} */

static ngx_int_t
ngx_commerce_refund_reject(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    yajl_val     v[1];
    const char  *err;

    static const char  *keys[] = { "reason", NULL };

    err = ngx_commerce_refund_body(r, body, len, keys, v);

    if (err == NULL) {
        err = ngx_commerce_refund_text(v[0], "reason");
    }

    if (err != NULL) {
        return ngx_commerce_reply_invalid(r, err);
    }

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_refund_statements[
                                            NGX_COMMERCE_STMT_RETURN_REJECT],
               NGX_HTTP_OK, 3,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id),
               YAJL_GET_STRING(v[0]));
}


/* POST /seller/returns/{id}/restock {"items":[{"variantId","quantity"}]} */

static ngx_int_t
ngx_commerce_refund_restock(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    char        *variants, *quantities;
    yajl_val     v[1];
    const char  *err;

    static const char  *keys[] = { "items", NULL };

    err = ngx_commerce_refund_body(r, body, len, keys, v);

    if (err == NULL) {
        err = ngx_commerce_refund_items(r, v[0], 0, &variants, &quantities);
    }

    if (err != NULL) {
        return ngx_commerce_reply_invalid(r, err);
    }

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_refund_statements[
                                           NGX_COMMERCE_STMT_RETURN_RESTOCK],
               NGX_HTTP_OK, 4,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id), variants,
               quantities);
}


/*
 * The body as a JSON object whose keys are among keys (a NULL-ended list),
 * each at most once: out[i] the value of keys[i], or NULL when absent.
 * The nesting is bounded before the document is parsed.  NULL, or the
 * message of a 400.
 */

static const char *
ngx_commerce_refund_body(ngx_http_request_t *r, u_char *body, size_t len,
    const char **keys, yajl_val *out)
{
    size_t       i, k, depth;
    yajl_val     v;
    ngx_uint_t   quoted, escaped;

    for (k = 0; keys[k] != NULL; k++) {
        out[k] = NULL;
    }

    if (len == 0) {
        return "a JSON object is required";
    }

    depth = 0;
    quoted = 0;
    escaped = 0;

    for (i = 0; i < len; i++) {
        if (quoted) {
            if (escaped) {
                escaped = 0;

            } else if (body[i] == '\\') {
                escaped = 1;

            } else if (body[i] == '"') {
                quoted = 0;
            }

            continue;
        }

        switch (body[i]) {

        case '"':
            quoted = 1;
            break;

        case '{':
        case '[':
            if (++depth > NGX_COMMERCE_REFUND_DEPTH_MAX) {
                return "the body is nested too deeply";
            }

            break;

        case '}':
        case ']':
            if (depth > 0) {
                depth--;
            }

            break;
        }
    }

    v = ngx_commerce_json_parse(r->pool, body, len);
    if (v == NULL || !YAJL_IS_OBJECT(v)) {
        return "the body must be a JSON object";
    }

    for (i = 0; i < YAJL_GET_OBJECT(v)->len; i++) {
        for (k = 0; keys[k] != NULL; k++) {
            if (ngx_strcmp(YAJL_GET_OBJECT(v)->keys[i], keys[k]) == 0) {
                break;
            }
        }

        if (keys[k] == NULL) {
            return "unknown field";
        }

        if (out[k] != NULL) {
            return "a field is given twice";
        }

        out[k] = YAJL_GET_OBJECT(v)->values[i];
    }

    return NULL;
}


/* "partIds": 1..50 distinct positive integers, as an array literal */

static const char *
ngx_commerce_refund_ids(ngx_http_request_t *r, yajl_val v, char **ids)
{
    u_char    *p;
    size_t     i, j, n;
    int64_t    id;
    yajl_val  *a;

    if (!YAJL_IS_ARRAY(v)) {
        return "partIds must be an array";
    }

    n = YAJL_GET_ARRAY(v)->len;
    a = YAJL_GET_ARRAY(v)->values;

    if (n == 0 || n > NGX_COMMERCE_REFUND_LIST_MAX) {
        return "partIds must hold 1 to 50 ids";
    }

    p = ngx_pnalloc(r->pool, n * (NGX_INT64_LEN + 1) + 3);
    if (p == NULL) {
        return "out of memory";
    }

    *ids = (char *) p;
    *p++ = '{';

    for (i = 0; i < n; i++) {
        if (!YAJL_IS_INTEGER(a[i]) || YAJL_GET_INTEGER(a[i]) < 1) {
            return "partIds must be positive integers";
        }

        id = YAJL_GET_INTEGER(a[i]);

        for (j = 0; j < i; j++) {
            if (YAJL_GET_INTEGER(a[j]) == id) {
                return "partIds must be distinct";
            }
        }

        p = ngx_sprintf(p, i ? ",%L" : "%L", id);
    }

    *p++ = '}';
    *p = '\0';

    return NULL;
}


/*
 * "items": 1..50 objects {"variantId": positive, "quantity": min..999},
 * each variant once, as two array literals.
 */

static const char *
ngx_commerce_refund_items(ngx_http_request_t *r, yajl_val v, int64_t min,
    char **variants, char **quantities)
{
    u_char      *p, *q;
    size_t       i, j, n;
    int64_t      id[NGX_COMMERCE_REFUND_LIST_MAX], qty;
    yajl_val     item, f[2];
    const char  *key;

    if (v == NULL || !YAJL_IS_ARRAY(v)) {
        return "items must be an array";
    }

    n = YAJL_GET_ARRAY(v)->len;

    if (n == 0 || n > NGX_COMMERCE_REFUND_LIST_MAX) {
        return "items must hold 1 to 50 items";
    }

    p = ngx_pnalloc(r->pool, n * (NGX_INT64_LEN + 1) + 3);
    q = ngx_pnalloc(r->pool, n * (NGX_INT64_LEN + 1) + 3);
    if (p == NULL || q == NULL) {
        return "out of memory";
    }

    *variants = (char *) p;
    *quantities = (char *) q;
    *p++ = '{';
    *q++ = '{';

    for (i = 0; i < n; i++) {
        item = YAJL_GET_ARRAY(v)->values[i];

        if (!YAJL_IS_OBJECT(item)) {
            return "each item must be an object";
        }

        f[0] = NULL;
        f[1] = NULL;

        for (j = 0; j < YAJL_GET_OBJECT(item)->len; j++) {
            key = YAJL_GET_OBJECT(item)->keys[j];

            if (ngx_strcmp(key, "variantId") == 0 && f[0] == NULL) {
                f[0] = YAJL_GET_OBJECT(item)->values[j];

            } else if (ngx_strcmp(key, "quantity") == 0 && f[1] == NULL) {
                f[1] = YAJL_GET_OBJECT(item)->values[j];

            } else {
                return "an item holds variantId and quantity, once each";
            }
        }

        if (f[0] == NULL || !YAJL_IS_INTEGER(f[0])
            || YAJL_GET_INTEGER(f[0]) < 1)
        {
            return "variantId must be a positive integer";
        }

        if (f[1] == NULL || !YAJL_IS_INTEGER(f[1])
            || YAJL_GET_INTEGER(f[1]) < min || YAJL_GET_INTEGER(f[1]) > 999)
        {
            return min ? "quantity must be an integer 1 to 999"
                       : "quantity must be an integer 0 to 999";
        }

        id[i] = YAJL_GET_INTEGER(f[0]);
        qty = YAJL_GET_INTEGER(f[1]);

        for (j = 0; j < i; j++) {
            if (id[j] == id[i]) {
                return "each variantId at most once";
            }
        }

        p = ngx_sprintf(p, i ? ",%L" : "%L", id[i]);
        q = ngx_sprintf(q, i ? ",%L" : "%L", qty);
    }

    *p++ = '}';
    *p = '\0';
    *q++ = '}';
    *q = '\0';

    return NULL;
}


/* a required string of 1..2000 bytes (the database checks the rest) */

static const char *
ngx_commerce_refund_text(yajl_val v, const char *name)
{
    size_t       n;
    const char  *s;

    s = (v != NULL && YAJL_IS_STRING(v)) ? YAJL_GET_STRING(v) : NULL;

    if (s == NULL) {
        return ngx_strcmp(name, "reason") == 0 ? "reason must be a string"
               : ngx_strcmp(name, "carrier") == 0 ? "carrier must be a string"
               : "trackingNumber must be a string";
    }

    n = ngx_strlen(s);

    if (n == 0 || n > NGX_COMMERCE_REFUND_TEXT_MAX) {
        return "a text field is empty or too long";
    }

    return NULL;
}
