
/*
 * An order's seller parts and its shipping address (issue 12 section 2):
 * the sellers' routes over their parts, the sealing of an address given
 * with an order, and the opening of the sealed address an answer carries.
 *
 * The database makes the parts and decides who sees what
 * (sql/functions/98_parts.sql): the buyer's order, a store's own parts.
 * Its documents carry the address sealed, as their last object
 * ("shippingAddress":{"sealedIn","sealedId","recipientCt",..}); the
 * reply opens it as the answer is sent (mcf->reveal), so what is stored
 * under an Idempotency-Key stays sealed and a replay is opened again.
 * The texts are sealed with the accounts' PII keyring bound to the column
 * and the row: an address given with an order to order_addresses' columns
 * and the row id reserved first (cm_order_address_next_id); the buyer's
 * default address, copied by the database as it is, stays bound to its
 * address book row (sealedIn "user_addresses").
 */


#include "ngx_commerce_order.h"
#include "ngx_commerce_account.h"
#include "ngx_commerce_seller.h"
#include "cm_cart.h"


enum {
    NGX_COMMERCE_STMT_ORDER_ADDRESS_NEXT_ID = 0,
    NGX_COMMERCE_STMT_SELLER_ORDERS,
    NGX_COMMERCE_STMT_SELLER_ORDER_GET,
    NGX_COMMERCE_ORDER_PART_NSTMT
};


static ngx_int_t ngx_commerce_order_part_list(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_order_part_get(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_order_part_reveal(ngx_http_request_t *r,
    u_char **body, size_t *len);


/* the sealed keys of the documents, in cm_address_fields order */

static const char  *ngx_commerce_order_part_key[CM_AF_TEXT_N] = {
    "recipientCt", "phoneCt", "zipCode", "address1Ct", "address2Ct",
    "memoCt"
};


#define NGX_COMMERCE_SHIPPING_KEY  "\"shippingAddress\":"


ngx_commerce_stmt_t  ngx_commerce_order_part_statements[] = {

    [NGX_COMMERCE_STMT_ORDER_ADDRESS_NEXT_ID] =
    { "cm_order_address_next_id", "SELECT cm_order_address_next_id()", 0, 0,
      NULL, 0 },

    [NGX_COMMERCE_STMT_SELLER_ORDERS] =
    { "cm_seller_orders",
      "SELECT cm_seller_orders($1::bigint, $2::bigint, $3::text, $4::int, "
      "$5::int)", 5, NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_SELLER_ORDER_GET] =
    { "cm_seller_order_get",
      "SELECT cm_seller_order_get($1::bigint, $2::bigint)", 2,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_ORDER_PART_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


ngx_commerce_route_t  ngx_commerce_order_part_routes[] = {

    NGX_COMMERCE_ROUTE("GET", "/api/v1/seller/orders",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_orders",
                       ngx_commerce_order_part_list, "listSellerOrders"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/seller/orders/{id}",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_order",
                       ngx_commerce_order_part_get, "getSellerOrder"),

    ngx_commerce_route_end
};


void
ngx_commerce_order_part_init(ngx_commerce_main_conf_t *mcf)
{
    mcf->reveal = ngx_commerce_order_part_reveal;
}


/* GET /seller/orders?storeId=&status=&page=&size= */

static ngx_int_t
ngx_commerce_order_part_list(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    int64_t      store, page, size;
    ngx_str_t    v;
    ngx_uint_t   i;
    const char  *status, *msg;

    static const char  *statuses[] = {
        "PENDING_PAYMENT", "PAYMENT_IN_PROGRESS", "WAITING_FOR_DEPOSIT",
        "PAID", "PAYMENT_FAILED", "CANCELLED", "PREPARING", "SHIPPED",
        "DELIVERED", "PURCHASE_CONFIRMED", NULL
    };

    status = NULL;

    msg = ngx_commerce_handler_page(r, &store, &page, &size);
    if (msg != NULL) {
        return ngx_commerce_reply_invalid(r, msg);
    }

    if (ngx_http_arg(r, (u_char *) "status", 6, &v) == NGX_OK) {
        for (i = 0; statuses[i] != NULL; i++) {
            if (v.len == ngx_strlen(statuses[i])
                && ngx_strncmp(v.data, statuses[i], v.len) == 0)
            {
                status = statuses[i];
                break;
            }
        }

        if (status == NULL) {
            return ngx_commerce_reply_invalid(r, "status must be"
                       " PENDING_PAYMENT, PAYMENT_IN_PROGRESS,"
                       " WAITING_FOR_DEPOSIT, PAID, PAYMENT_FAILED,"
                       " CANCELLED, PREPARING, SHIPPED, DELIVERED or"
                       " PURCHASE_CONFIRMED");
        }
    }

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_order_part_statements
                   [NGX_COMMERCE_STMT_SELLER_ORDERS],
               NGX_HTTP_OK, 5,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               store ? ngx_commerce_pg_int(&ctx->query, store) : NULL,
               status, ngx_commerce_pg_int(&ctx->query, page),
               ngx_commerce_pg_int(&ctx->query, size));
}


/* GET /seller/orders/{id}: a part of the caller's store */

static ngx_int_t
ngx_commerce_order_part_get(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_order_part_statements
                   [NGX_COMMERCE_STMT_SELLER_ORDER_GET],
               NGX_HTTP_OK, 2,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id));
}


/*
 * An order with "shippingAddress": the address row's id reserved, its
 * document to next (the caller keeps the checked address meanwhile), which
 * seals the texts with ngx_commerce_order_part_sealed().
 */

ngx_int_t
ngx_commerce_order_part_reserve(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, ngx_commerce_render_pt next)
{
    ctx->render = next;

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_order_part_statements
                   [NGX_COMMERCE_STMT_ORDER_ADDRESS_NEXT_ID],
               NGX_HTTP_CREATED, 0);
}


/*
 * The reserved id (doc) and the address a as the setting
 * commerce.shipping of 98_parts.sql: {"id","recipientCt","phoneCt",
 * "zipCode","address1Ct","address2Ct","memoCt"}, the texts sealed to
 * order_addresses' columns and the id.  The plain texts are wiped.  NULL:
 * an error (500).
 */

char *
ngx_commerce_order_part_sealed(ngx_http_request_t *r, cm_address_req_t *a,
    u_char *doc, size_t len)
{
    char        *ct, column[64];
    u_char      *s, *p, *last;
    size_t       size;
    int64_t      id;
    ngx_str_t    v;
    ngx_uint_t   f;

    s = NULL;

    if (cm_parse_int64(doc, len, 1, INT64_MAX, &id) != 0) {
        goto done;
    }

    /* a ciphertext is at most 2 times its text and 128 bytes */
    size = 256;
    for (f = 0; f < CM_AF_TEXT_N; f++) {
        size += 2 * a->len[f] + 128;
    }

    s = ngx_pnalloc(r->pool, size);
    if (s == NULL) {
        goto done;
    }

    last = s + size - 2;
    p = ngx_slprintf(s, last, "{\"id\":%L", id);

    for (f = 0; f < CM_AF_TEXT_N; f++) {
        v.data = NULL;
        v.len = 0;

        if (f == CM_AF_ZIP_CODE) {
            v.data = (u_char *) a->text[f];
            v.len = a->len[f];

        } else if (a->len[f] > 0) {
            ngx_snprintf((u_char *) column, sizeof(column), "%s.%s%Z",
                         "order_addresses", cm_address_fields[f]);

            ct = ngx_commerce_account_pii_seal(r, column, id, a->text[f],
                                               a->len[f]);
            if (ct == NULL) {
                s = NULL;
                goto done;
            }

            v.data = (u_char *) ct;
            v.len = ngx_strlen(ct);
        }

        p = ngx_commerce_json_put(p, last, ngx_commerce_order_part_key[f],
                                  &v);
    }

    if (p >= last) {
        s = NULL;
        goto done;
    }

    *p++ = '}';
    *p = '\0';

done:

    ngx_explicit_memzero(a, sizeof(cm_address_req_t));

    return (char *) s;
}


/*
 * A success answer whose last object is a sealed shipping address
 * ("shippingAddress":{"sealedIn",..}, no object inside it, so it starts
 * at the answer's last '{'): the same answer with the address opened,
 * {"recipient","phone","zipCode","address1","address2","memo"}.  Any other
 * answer is left as it is.
 */

static ngx_int_t
ngx_commerce_order_part_reveal(ngx_http_request_t *r, u_char **body,
    size_t *len)
{
    char         column[64];
    u_char      *b, *open, *close, *out, *p, *last;
    size_t       n, klen, size;
    int64_t      id;
    yajl_val     a;
    ngx_str_t    v;
    ngx_uint_t   f;
    const char  *in;

    b = *body;
    n = *len;
    klen = sizeof(NGX_COMMERCE_SHIPPING_KEY) - 1;

    for (open = b + n; open > b && open[-1] != '{'; open--) {
        /* void */
    }

    if (open == b || (size_t) (open - 1 - b) < klen
        || ngx_strncmp(open - 1 - klen, NGX_COMMERCE_SHIPPING_KEY, klen) != 0)
    {
        return NGX_OK;
    }

    open--;

    close = ngx_strlchr(open, b + n, '}');
    if (close == NULL) {
        return NGX_ERROR;
    }

    close++;

    a = ngx_commerce_json_parse(r->pool, open, close - open);
    in = (a != NULL) ? ngx_commerce_json_string(a, "sealedIn") : NULL;

    if (in == NULL || ngx_commerce_json_id(a, "sealedId", &id) != NGX_OK
        || (ngx_strcmp(in, "order_addresses") != 0
            && ngx_strcmp(in, "user_addresses") != 0))
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "commerce: a sealed shipping address is malformed");
        return NGX_ERROR;
    }

    /* the texts are shorter than their ciphertexts, escaping 6 times */
    size = (open - b) + 6 * (close - open) + 256 + (b + n - close);

    out = ngx_pnalloc(r->pool, size);
    if (out == NULL) {
        return NGX_ERROR;
    }

    last = out + size;
    p = ngx_cpymem(out, b, open - b);

    for (f = 0; f < CM_AF_TEXT_N; f++) {
        if (f == CM_AF_ZIP_CODE) {
            v.data = (u_char *) ngx_commerce_json_string(a,
                                               ngx_commerce_order_part_key[f]);
            v.len = v.data ? ngx_strlen(v.data) : 0;

        } else {
            ngx_snprintf((u_char *) column, sizeof(column), "%s.%s%Z", in,
                         cm_address_fields[f]);

            if (ngx_commerce_account_pii_open(r, column, id,
                    ngx_commerce_json_get(a, ngx_commerce_order_part_key[f],
                                          NULL),
                    &v)
                != NGX_OK)
            {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "commerce: a shipping address (%s %L) does "
                              "not open", in, id);
                return NGX_ERROR;
            }
        }

        p = ngx_commerce_json_put(p, last, cm_address_fields[f], &v);
    }

    /* the first field's comma opens the object */
    out[open - b] = '{';

    if ((size_t) (last - p) < (size_t) (b + n - close) + 1) {
        return NGX_ERROR;
    }

    *p++ = '}';
    p = ngx_cpymem(p, close, b + n - close);

    *body = out;
    *len = p - out;

    return NGX_OK;
}
