
/*
 * The v1 resources: route a request, validate its input (cm_json.c), and
 * turn it into one prepared statement.  Everything that must hold under
 * concurrency (stock, balance, order state) is decided by the SQL function
 * in one transaction; nothing here checks and then writes.
 */


#include "ngx_commerce_gw.h"
#include "cm_account.h"


#define NGX_COMMERCE_API_PREFIX    "/api/v1/"
#define NGX_COMMERCE_PAGE_MAX      10000000
#define NGX_COMMERCE_SIZE_DEFAULT  20
#define NGX_COMMERCE_SIZE_MAX      100
#define NGX_COMMERCE_ERR_LEN       160


static const char  *ngx_commerce_route_names[] = {
    "other", "products", "product", "balance", "charge", "orders", "order",
    "order_payment", "callback", "signup", "login", "refresh", "logout", "me",
    "admin_role", "admin_audit"
};


#define NGX_COMMERCE_PUBLIC  0

/*
 * The route table: the roles that may call each route (CM_ROLE_* bits);
 * NGX_COMMERCE_PUBLIC routes take no token at all.  A role claim that is
 * none of ours has no bit, so it may call nothing but the public routes.
 */
static const unsigned  ngx_commerce_route_roles[NGX_COMMERCE_ROUTE_COUNT] = {
    0,                                             /* none */
    CM_ROLE_ALL,                                   /* products */
    CM_ROLE_ALL,                                   /* product */
    CM_ROLE_ALL,                                   /* balance */
    CM_ROLE_ALL,                                   /* charge */
    CM_ROLE_ALL,                                   /* orders */
    CM_ROLE_ALL,                                   /* order */
    CM_ROLE_ALL,                                   /* order_payment */
    NGX_COMMERCE_PUBLIC,                           /* callback (signed) */
    NGX_COMMERCE_PUBLIC,                           /* signup */
    NGX_COMMERCE_PUBLIC,                           /* login */
    NGX_COMMERCE_PUBLIC,                           /* refresh */
    NGX_COMMERCE_PUBLIC,                           /* logout */
    CM_ROLE_ALL,                                   /* me */
    CM_ROLE_ADMIN,                                 /* admin_role */
    CM_ROLE_MANAGER|CM_ROLE_ADMIN                  /* admin_audit */
};


static ngx_int_t ngx_commerce_route(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, ngx_uint_t *method, ngx_int_t *sent);
static ngx_int_t ngx_commerce_products(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx);
static ngx_int_t ngx_commerce_charge(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_order_create(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_order_pay(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static const char *ngx_commerce_method_param(cm_pay_method_e method);
static ngx_int_t ngx_commerce_invalid(ngx_http_request_t *r,
    const char *message);


ngx_uint_t
ngx_commerce_api_public(ngx_uint_t route)
{
    return route > NGX_COMMERCE_ROUTE_NONE && route < NGX_COMMERCE_ROUTE_COUNT
           && ngx_commerce_route_roles[route] == NGX_COMMERCE_PUBLIC;
}


ngx_int_t
ngx_commerce_api_allowed(ngx_commerce_ctx_t *ctx)
{
    unsigned  bit;

    if (ngx_commerce_api_public(ctx->route)) {
        return NGX_OK;
    }

    bit = cm_role_bit(ctx->claims.role, ngx_strlen(ctx->claims.role));

    return (ngx_commerce_route_roles[ctx->route] & bit) ? NGX_OK
                                                        : NGX_DECLINED;
}


const char *
ngx_commerce_route_name(ngx_uint_t route)
{
    if (route >= NGX_COMMERCE_ROUTE_COUNT) {
        route = NGX_COMMERCE_ROUTE_NONE;
    }

    return ngx_commerce_route_names[route];
}


/*
 * NGX_OK: ctx->route is set and the method fits.  NGX_DONE: an error
 * response was sent and *sent holds what sending it returned.
 */

ngx_int_t
ngx_commerce_api_route(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    ngx_int_t *sent)
{
    ngx_int_t         rc;
    ngx_uint_t        method;
    ngx_table_elt_t  *h;

    rc = ngx_commerce_route(r, ctx, &method, sent);

    if (rc == NGX_DECLINED) {
        *sent = ngx_commerce_send_error(r, NGX_HTTP_NOT_FOUND, "NOT_FOUND",
                                        "no such resource");
        return NGX_DONE;
    }

    if (rc != NGX_OK) {
        return NGX_DONE;
    }

    if (r->method & method) {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        *sent = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DONE;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");

    if (method == NGX_HTTP_POST) {
        ngx_str_set(&h->value, "POST");
    } else if (method == NGX_HTTP_PUT) {
        ngx_str_set(&h->value, "PUT");
    } else if (method & NGX_HTTP_DELETE) {
        ngx_str_set(&h->value, "GET, HEAD, DELETE");
    } else {
        ngx_str_set(&h->value, "GET, HEAD");
    }

    *sent = ngx_commerce_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                    "METHOD_NOT_ALLOWED",
                                    "method not allowed");
    return NGX_DONE;
}


ngx_int_t
ngx_commerce_api_dispatch(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ngx_int_t  rc;

    ctx->success_status = NGX_HTTP_OK;

    if (ctx->route == NGX_COMMERCE_ROUTE_CHARGE
        || ctx->route == NGX_COMMERCE_ROUTE_ORDERS
        || ctx->route == NGX_COMMERCE_ROUTE_ORDER_PAYMENT)
    {
        rc = ngx_commerce_idem_start(r, ctx, body, len);

        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    switch (ctx->route) {

    case NGX_COMMERCE_ROUTE_PRODUCTS:
        return ngx_commerce_products(r, ctx);

    case NGX_COMMERCE_ROUTE_PRODUCT:
        ctx->query.stmt = NGX_COMMERCE_STMT_PRODUCT_GET;
        ctx->query.nparams = 1;
        ctx->query.params[0] = ngx_commerce_param_int(r->pool, ctx->id);
        break;

    case NGX_COMMERCE_ROUTE_BALANCE:
        ctx->query.stmt = NGX_COMMERCE_STMT_BALANCE_GET;
        ctx->query.nparams = 1;
        ctx->query.params[0] = ngx_commerce_param_int(r->pool, ctx->claims.user_id);
        break;

    case NGX_COMMERCE_ROUTE_CHARGE:
        return ngx_commerce_charge(r, ctx, body, len);

    case NGX_COMMERCE_ROUTE_ORDERS:
        return ngx_commerce_order_create(r, ctx, body, len);

    case NGX_COMMERCE_ROUTE_ORDER:
        ctx->query.stmt = NGX_COMMERCE_STMT_ORDER_GET;
        ctx->query.nparams = 2;
        ctx->query.params[0] = ngx_commerce_param_int(r->pool, ctx->claims.user_id);
        ctx->query.params[1] = ngx_commerce_param_int(r->pool, ctx->id);
        break;

    case NGX_COMMERCE_ROUTE_ORDER_PAYMENT:
        return ngx_commerce_order_pay(r, ctx, body, len);

    case NGX_COMMERCE_ROUTE_CALLBACK:
        return ngx_commerce_callback_handler(r, ctx, body, len);

    case NGX_COMMERCE_ROUTE_SIGNUP:
    case NGX_COMMERCE_ROUTE_LOGIN:
    case NGX_COMMERCE_ROUTE_REFRESH:
    case NGX_COMMERCE_ROUTE_LOGOUT:
    case NGX_COMMERCE_ROUTE_ME:
    case NGX_COMMERCE_ROUTE_ADMIN_ROLE:
    case NGX_COMMERCE_ROUTE_ADMIN_AUDIT:
        return ngx_commerce_account_handler(r, ctx, body, len);

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_run_query(r, ctx);
}


/*
 * NGX_OK with ctx->route, ctx->id and the allowed method set;
 * NGX_DECLINED for an unknown path; NGX_DONE when a 400 was sent.
 */

static ngx_int_t
ngx_commerce_route(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    ngx_uint_t *method, ngx_int_t *sent)
{
    u_char     *p, *end, *seg[4];
    size_t      len[4];
    ngx_uint_t  n, get;

    p = r->uri.data;
    end = r->uri.data + r->uri.len;

    if (r->uri.len <= sizeof(NGX_COMMERCE_API_PREFIX) - 1
        || ngx_strncmp(p, NGX_COMMERCE_API_PREFIX,
                       sizeof(NGX_COMMERCE_API_PREFIX) - 1) != 0)
    {
        return NGX_DECLINED;
    }

    p += sizeof(NGX_COMMERCE_API_PREFIX) - 1;

    for (n = 0; p < end; n++) {
        if (n == 4) {
            return NGX_DECLINED;
        }

        seg[n] = p;

        while (p < end && *p != '/') {
            p++;
        }

        len[n] = p - seg[n];

        if (len[n] == 0) {
            return NGX_DECLINED;
        }

        if (p < end) {
            p++;
            if (p == end) {
                /* trailing slash */
                return NGX_DECLINED;
            }
        }
    }

    get = NGX_HTTP_GET|NGX_HTTP_HEAD;

#define ngx_commerce_seg_is(i, s)                                             \
    (len[i] == sizeof(s) - 1 && ngx_strncmp(seg[i], s, sizeof(s) - 1) == 0)

    if (ngx_commerce_seg_is(0, "products")) {
        if (n == 1) {
            ctx->route = NGX_COMMERCE_ROUTE_PRODUCTS;
            *method = get;
            return NGX_OK;
        }

        if (n != 2) {
            return NGX_DECLINED;
        }

        ctx->route = NGX_COMMERCE_ROUTE_PRODUCT;
        *method = get;

    } else if (ngx_commerce_seg_is(0, "balance")) {
        if (n == 1) {
            ctx->route = NGX_COMMERCE_ROUTE_BALANCE;
            *method = get;
            return NGX_OK;
        }

        if (n == 2 && ngx_commerce_seg_is(1, "charge")) {
            ctx->route = NGX_COMMERCE_ROUTE_CHARGE;
            *method = NGX_HTTP_POST;
            return NGX_OK;
        }

        return NGX_DECLINED;

    } else if (ngx_commerce_seg_is(0, "payments")) {
        if (n == 2 && ngx_commerce_seg_is(1, "callback")) {
            ctx->route = NGX_COMMERCE_ROUTE_CALLBACK;
            *method = NGX_HTTP_POST;
            return NGX_OK;
        }

        return NGX_DECLINED;

    } else if (ngx_commerce_seg_is(0, "auth")) {
        if (n != 2) {
            return NGX_DECLINED;
        }

        *method = NGX_HTTP_POST;

        if (ngx_commerce_seg_is(1, "signup")) {
            ctx->route = NGX_COMMERCE_ROUTE_SIGNUP;
        } else if (ngx_commerce_seg_is(1, "login")) {
            ctx->route = NGX_COMMERCE_ROUTE_LOGIN;
        } else if (ngx_commerce_seg_is(1, "refresh")) {
            ctx->route = NGX_COMMERCE_ROUTE_REFRESH;
        } else if (ngx_commerce_seg_is(1, "logout")) {
            ctx->route = NGX_COMMERCE_ROUTE_LOGOUT;
        } else {
            return NGX_DECLINED;
        }

        return NGX_OK;

    } else if (ngx_commerce_seg_is(0, "users")) {
        if (n == 2 && ngx_commerce_seg_is(1, "me")) {
            ctx->route = NGX_COMMERCE_ROUTE_ME;
            *method = get|NGX_HTTP_DELETE;
            return NGX_OK;
        }

        return NGX_DECLINED;

    } else if (ngx_commerce_seg_is(0, "admin")) {
        if (n == 2 && ngx_commerce_seg_is(1, "audit")) {
            ctx->route = NGX_COMMERCE_ROUTE_ADMIN_AUDIT;
            *method = get;
            return NGX_OK;
        }

        if (n != 4 || !ngx_commerce_seg_is(1, "users")
            || !ngx_commerce_seg_is(3, "role"))
        {
            return NGX_DECLINED;
        }

        ctx->route = NGX_COMMERCE_ROUTE_ADMIN_ROLE;
        *method = NGX_HTTP_PUT;

        if (cm_parse_int64(seg[2], len[2], 1, INT64_MAX, &ctx->id) != 0) {
            *sent = ngx_commerce_invalid(r, "id must be a positive integer");
            return NGX_DONE;
        }

        return NGX_OK;

    } else if (ngx_commerce_seg_is(0, "orders")) {
        if (n == 1) {
            ctx->route = NGX_COMMERCE_ROUTE_ORDERS;
            *method = NGX_HTTP_POST;
            return NGX_OK;
        }

        if (n == 2) {
            ctx->route = NGX_COMMERCE_ROUTE_ORDER;
            *method = get;

        } else if (n == 3 && ngx_commerce_seg_is(2, "payment")) {
            ctx->route = NGX_COMMERCE_ROUTE_ORDER_PAYMENT;
            *method = NGX_HTTP_POST;

        } else {
            return NGX_DECLINED;
        }

    } else {
        return NGX_DECLINED;
    }

#undef ngx_commerce_seg_is

    /* the id segment of /products/{id} and /orders/{id}[/payment] */

    if (cm_parse_int64(seg[1], len[1], 1, INT64_MAX, &ctx->id)
        != 0)
    {
        *sent = ngx_commerce_invalid(r, "id must be a positive integer");
        return NGX_DONE;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_commerce_products(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx)
{
    int64_t    page, size;
    ngx_str_t  v;

    page = 0;
    size = NGX_COMMERCE_SIZE_DEFAULT;

    if (ngx_http_arg(r, (u_char *) "page", 4, &v) == NGX_OK
        && cm_parse_int64(v.data, v.len, 0, NGX_COMMERCE_PAGE_MAX, &page)
           != 0)
    {
        return ngx_commerce_invalid(r, "page must be an integer between 0 "
                                       "and 10000000");
    }

    if (ngx_http_arg(r, (u_char *) "size", 4, &v) == NGX_OK
        && cm_parse_int64(v.data, v.len, 1, NGX_COMMERCE_SIZE_MAX, &size)
           != 0)
    {
        return ngx_commerce_invalid(r, "size must be an integer between 1 "
                                       "and 100");
    }

    ctx->query.stmt = NGX_COMMERCE_STMT_PRODUCT_LIST;
    ctx->query.nparams = 2;
    ctx->query.params[0] = ngx_commerce_param_int(r->pool, page);
    ctx->query.params[1] = ngx_commerce_param_int(r->pool, size);

    return ngx_commerce_run_query(r, ctx);
}


static ngx_int_t
ngx_commerce_charge(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    char                       err[NGX_COMMERCE_ERR_LEN];
    int64_t                    amount;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (cm_parse_charge(body, len, mcf->charge_max, &amount, err, sizeof(err))
        != 0)
    {
        return ngx_commerce_invalid(r, err);
    }

    ctx->query.stmt = NGX_COMMERCE_STMT_BALANCE_CHARGE;
    ctx->query.nparams = 3;
    ctx->query.params[0] = ngx_commerce_param_int(r->pool, ctx->claims.user_id);
    ctx->query.params[1] = ngx_commerce_param_int(r->pool, amount);
    ctx->query.params[2] = ngx_commerce_param_int(r->pool, mcf->balance_max);

    return ngx_commerce_run_query(r, ctx);
}


static ngx_int_t
ngx_commerce_order_create(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    char              err[NGX_COMMERCE_ERR_LEN];
    u_char           *ids, *qty, *p, *q;
    size_t            size;
    ngx_uint_t        i;
    cm_order_req_t    req;
    cm_payment_req_t  card;

    if (cm_parse_order(body, len, &req, err, sizeof(err)) != 0) {
        return ngx_commerce_invalid(r, err);
    }

    if (req.method == CM_PAY_CARD) {
        card.method = CM_PAY_CARD;
        ngx_memcpy(card.card_type, req.card_type, sizeof(card.card_type));
        ngx_memcpy(card.card_no, req.card_no, sizeof(card.card_no));

        return ngx_commerce_card_start(r, ctx, 0, &req, &card);
    }

    /* Postgres array literals: "{1,2,3}"; items are sorted by product id */
    size = 2 + req.nitems * (NGX_INT64_LEN + 1);

    ids = ngx_pnalloc(r->pool, size);
    qty = ngx_pnalloc(r->pool, size);
    if (ids == NULL || qty == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ids;
    q = qty;
    *p++ = '{';
    *q++ = '{';

    for (i = 0; i < req.nitems; i++) {
        if (i) {
            *p++ = ',';
            *q++ = ',';
        }

        p = ngx_sprintf(p, "%L", req.items[i].product_id);
        q = ngx_sprintf(q, "%D", req.items[i].quantity);
    }

    *p++ = '}';
    *p = '\0';
    *q++ = '}';
    *q = '\0';

    ctx->success_status = NGX_HTTP_CREATED;
    ctx->query.stmt = NGX_COMMERCE_STMT_ORDER_CREATE;
    ctx->query.nparams = 4;
    ctx->query.params[0] = ngx_commerce_param_int(r->pool, ctx->claims.user_id);
    ctx->query.params[1] = (char *) ids;
    ctx->query.params[2] = (char *) qty;
    ctx->query.params[3] = ngx_commerce_method_param(req.method);

    return ngx_commerce_run_query(r, ctx);
}


static ngx_int_t
ngx_commerce_order_pay(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    char              err[NGX_COMMERCE_ERR_LEN];
    cm_payment_req_t  req;

    if (cm_parse_payment(body, len, &req, err, sizeof(err)) != 0) {
        return ngx_commerce_invalid(r, err);
    }

    if (req.method == CM_PAY_CARD) {
        return ngx_commerce_card_start(r, ctx, ctx->id, NULL, &req);
    }

    ctx->query.stmt = NGX_COMMERCE_STMT_ORDER_PAY;
    ctx->query.nparams = 3;
    ctx->query.params[0] = ngx_commerce_param_int(r->pool, ctx->claims.user_id);
    ctx->query.params[1] = ngx_commerce_param_int(r->pool, ctx->id);
    ctx->query.params[2] = ngx_commerce_method_param(req.method);

    return ngx_commerce_run_query(r, ctx);
}


static const char *
ngx_commerce_method_param(cm_pay_method_e method)
{
    switch (method) {

    case CM_PAY_BALANCE:
        return "BALANCE";

    case CM_PAY_CARD:
        return "CARD";

    default:
        /* SQL NULL: create the order unpaid */
        return NULL;
    }
}



static ngx_int_t
ngx_commerce_invalid(ngx_http_request_t *r, const char *message)
{
    return ngx_commerce_send_error(r, NGX_HTTP_BAD_REQUEST, "INVALID_REQUEST",
                                   message);
}
