
/*
 * The address book (issue 12 section 2): up to 10 shipping addresses of
 * the token's user, one of them the default.
 *
 * recipient, phone, address1, address2 and memo are personal data:
 * sealed here with the accounts' PII keyring
 * (ngx_commerce_account_pii_seal, AES-256-GCM, bound to the column and
 * the address's row: a create reserves the id first, so a ciphertext
 * copied to another row or column does not open), opened for their owner
 * only (ngx_commerce_account_pii_open).  The database sees ciphertexts and the
 * zip code; it holds the limit, the one default and who owns which
 * address (another user's id is ADDRESS_NOT_FOUND), in the functions of
 * sql/functions/18_cart.sql.  A withdrawal deletes the book.
 */


#include "ngx_commerce_cart.h"
#include "ngx_commerce_account.h"
#include "cm_cart.h"


enum {
    NGX_COMMERCE_STMT_ADDRESS_NEXT_ID = 0,
    NGX_COMMERCE_STMT_ADDRESS_LIST,
    NGX_COMMERCE_STMT_ADDRESS_CREATE,
    NGX_COMMERCE_STMT_ADDRESS_UPDATE,
    NGX_COMMERCE_STMT_ADDRESS_DELETE,
    NGX_COMMERCE_ADDRESS_NSTMT
};


static ngx_int_t ngx_commerce_cart_address_list(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_cart_address_create(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_cart_address_update(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_cart_address_delete(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_cart_address_sealed(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *doc, size_t len);
static ngx_int_t ngx_commerce_cart_address_body(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len, int create);
static ngx_int_t ngx_commerce_cart_address_seal(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, int64_t id, int create, const char **v);
static ngx_int_t ngx_commerce_cart_address_render(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *doc, size_t len);
static u_char *ngx_commerce_cart_address_doc(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, yajl_val a, u_char *p, u_char *last);
static ngx_int_t ngx_commerce_cart_address_ready(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx);


/* the database's name of each field: the column sealed, the key of its
 * ciphertext in the functions' documents (the zip code is in clear) */

static const char  *ngx_commerce_cart_address_column[CM_AF_TEXT_N] = {
    "user_addresses.recipient", "user_addresses.phone", NULL,
    "user_addresses.address1", "user_addresses.address2",
    "user_addresses.memo"
};

static const char  *ngx_commerce_cart_address_key[CM_AF_TEXT_N] = {
    "recipientCt", "phoneCt", "zipCode", "address1Ct", "address2Ct",
    "memoCt"
};


ngx_commerce_stmt_t  ngx_commerce_cart_address_statements[] = {

    [NGX_COMMERCE_STMT_ADDRESS_NEXT_ID] =
    { "cm_address_next_id", "SELECT cm_address_next_id()", 0, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_ADDRESS_LIST] =
    { "cm_address_list", "SELECT cm_address_list($1::bigint)", 1,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_ADDRESS_CREATE] =
    { "cm_address_create",
      "SELECT cm_address_create($1::bigint, $2::bigint, $3::text, $4::text, "
      "$5::text, $6::text, $7::text, $8::text, $9::boolean)", 9, 0, NULL,
      0 },

    [NGX_COMMERCE_STMT_ADDRESS_UPDATE] =
    { "cm_address_update",
      "SELECT cm_address_update($1::bigint, $2::bigint, $3::text, $4::text, "
      "$5::text, $6::text, $7::text, $8::text, $9::boolean)", 9, 0, NULL,
      0 },

    [NGX_COMMERCE_STMT_ADDRESS_DELETE] =
    { "cm_address_delete", "SELECT cm_address_delete($1::bigint, $2::bigint)",
      2, 0, NULL, 0 },

    [NGX_COMMERCE_ADDRESS_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


ngx_commerce_route_t  ngx_commerce_cart_address_routes[] = {

    NGX_COMMERCE_ROUTE("GET", "/api/v1/users/me/addresses", CM_ROLE_ALL, 0,
                       "addresses", ngx_commerce_cart_address_list,
                       "listAddresses"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/users/me/addresses", CM_ROLE_ALL, 0,
                       "addresses", ngx_commerce_cart_address_create,
                       "createAddress"),

    NGX_COMMERCE_ROUTE("PATCH", "/api/v1/users/me/addresses/{id}",
                       CM_ROLE_ALL, 0, "address",
                       ngx_commerce_cart_address_update, "updateAddress"),

    NGX_COMMERCE_ROUTE("DELETE", "/api/v1/users/me/addresses/{id}",
                       CM_ROLE_ALL, 0, "address",
                       ngx_commerce_cart_address_delete, "deleteAddress"),

    ngx_commerce_route_end
};


static ngx_int_t
ngx_commerce_cart_address_list(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    ngx_int_t  rc;

    rc = ngx_commerce_cart_address_ready(r, ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_cart_address_statements
                   [NGX_COMMERCE_STMT_ADDRESS_LIST],
               NGX_HTTP_OK, 1,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id));
}


/*
 * POST: the body checked, then the new row's id (the ciphertexts are
 * bound to it), then the row (ngx_commerce_cart_address_sealed).
 */

static ngx_int_t
ngx_commerce_cart_address_create(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    ngx_int_t  rc;

    rc = ngx_commerce_cart_address_body(r, ctx, body, len, 1);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    ctx->render = ngx_commerce_cart_address_sealed;

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_cart_address_statements
                   [NGX_COMMERCE_STMT_ADDRESS_NEXT_ID],
               NGX_HTTP_CREATED, 0);
}


/* the id reserved: the texts sealed to it, the row inserted */

static ngx_int_t
ngx_commerce_cart_address_sealed(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *doc, size_t len)
{
    int64_t      id;
    const char  *v[CM_AF_N];

    if (cm_parse_int64(doc, len, 1, INT64_MAX, &id) != 0
        || ngx_commerce_cart_address_seal(r, ctx, id, 1, v) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_commerce_pg_reset(&ctx->query);
    ctx->render = ngx_commerce_cart_address_render;

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_cart_address_statements
                   [NGX_COMMERCE_STMT_ADDRESS_CREATE],
               NGX_HTTP_CREATED, 9,
               ngx_commerce_pg_int(&ctx->query, id),
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
}


/* PATCH /users/me/addresses/{id}: the texts sealed to that id */

static ngx_int_t
ngx_commerce_cart_address_update(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    ngx_int_t    rc;
    const char  *v[CM_AF_N];

    rc = ngx_commerce_cart_address_body(r, ctx, body, len, 0);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ngx_commerce_cart_address_seal(r, ctx, ctx->id, 0, v) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_cart_address_statements
                   [NGX_COMMERCE_STMT_ADDRESS_UPDATE],
               NGX_HTTP_OK, 9,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id),
               v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
}


static ngx_int_t
ngx_commerce_cart_address_delete(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    ngx_int_t  rc;

    rc = ngx_commerce_cart_address_ready(r, ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    ctx->render = NULL;

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_cart_address_statements
                   [NGX_COMMERCE_STMT_ADDRESS_DELETE],
               NGX_HTTP_NO_CONTENT, 2,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id));
}


/*
 * The body checked (src/lib/cm_cart.c), kept in the request's pool as
 * ctx->domain until it is sealed.  NGX_DECLINED: go on; anything else is
 * the answer already made (a refusal), to return.
 */

static ngx_int_t
ngx_commerce_cart_address_body(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len, int create)
{
    char               err[CM_JSON_ERR_LEN];
    ngx_int_t          rc;
    cm_address_req_t  *req;

    rc = ngx_commerce_cart_address_ready(r, ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    req = ngx_palloc(r->pool, sizeof(cm_address_req_t));
    if (req == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (cm_parse_address(body, len, create, req, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_invalid(r, err);
    }

    ctx->domain = req;

    return NGX_DECLINED;
}


/*
 * The checked body (ctx->domain) as the functions' parameters, in field
 * order (v[CM_AF_*]): a field not given is NULL (SQL NULL: unchanged);
 * address2 or memo given empty or null is NULL on create and '' on a
 * PATCH (cleared); the texts sealed to column and address id; isDefault
 * "true" / "false".  The plain texts are wiped.
 */

static ngx_int_t
ngx_commerce_cart_address_seal(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, int64_t id, int create, const char **v)
{
    ngx_int_t          rc;
    ngx_uint_t         f;
    ngx_str_t          zip;
    cm_address_req_t  *req;

    req = ctx->domain;
    rc = NGX_OK;

    for (f = 0; f < CM_AF_TEXT_N; f++) {
        v[f] = NULL;

        if (!(req->seen & (1u << f))) {
            continue;
        }

        if (f == CM_AF_ZIP_CODE) {
            zip.data = (u_char *) req->text[f];
            zip.len = req->len[f];
            v[f] = ngx_commerce_json_cstr(r->pool, &zip);

        } else if (req->len[f] == 0) {
            v[f] = create ? NULL : "";
            continue;

        } else {
            v[f] = ngx_commerce_account_pii_seal(r,
                                          ngx_commerce_cart_address_column[f],
                                          id, req->text[f], req->len[f]);
        }

        if (v[f] == NULL) {
            rc = NGX_ERROR;
        }
    }

    v[CM_AF_DEFAULT] = (req->seen & (1u << CM_AF_DEFAULT))
                       ? (req->is_default ? "true" : "false") : NULL;

    ngx_explicit_memzero(req, sizeof(cm_address_req_t));
    ctx->domain = NULL;

    return rc;
}


/*
 * The accounts' PII keys are needed (else 404, as the store routes); the
 * answer opens the ciphertexts.  NGX_DECLINED: go on; else the answer.
 */

static ngx_int_t
ngx_commerce_cart_address_ready(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx)
{
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (!mcf->accounts) {
        return ngx_commerce_reply_error(r, NGX_HTTP_NOT_FOUND, "NOT_FOUND",
                                        "accounts are not configured");
    }

    ctx->render = ngx_commerce_cart_address_render;

    return NGX_DECLINED;
}


/*
 * An address, or {"items":[address, ..]}, with the texts opened:
 * {"id","recipient","phone","zipCode","address1","address2","memo",
 *  "isDefault","createdAt","updatedAt"}.  A ciphertext is longer than its
 * text, and escaping at most 6 times it: 6 times the document is room.
 */

static ngx_int_t
ngx_commerce_cart_address_render(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *doc, size_t len)
{
    u_char      *body, *p, *last;
    size_t       i, size;
    yajl_val     v, items;

    v = ngx_commerce_json_parse(r->pool, doc, len);
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    size = 6 * len + 1024;

    body = ngx_pnalloc(r->pool, size);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last = body + size;
    items = ngx_commerce_json_get(v, "items", NULL);

    if (items == NULL) {
        p = ngx_commerce_cart_address_doc(r, ctx, v, body, last);

    } else if (YAJL_IS_ARRAY(items)) {
        p = ngx_cpymem(body, "{\"items\":[", sizeof("{\"items\":[") - 1);

        for (i = 0; p != NULL && i < items->u.array.len; i++) {
            if (i > 0) {
                *p++ = ',';
            }

            p = ngx_commerce_cart_address_doc(r, ctx,
                                              items->u.array.values[i], p,
                                              last - 3);
        }

        if (p != NULL) {
            p = ngx_cpymem(p, "]}", 2);
        }

    } else {
        p = NULL;
    }

    if (p == NULL) {
        ngx_commerce_log(NGX_LOG_ERR, r, ctx,
                         "user %L: an address does not open",
                         ctx->claims.user_id);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_reply(r, ctx->success_status, body, p - body);
}


/* one address at p, or NULL (bad document, a text that does not open) */

static u_char *
ngx_commerce_cart_address_doc(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    yajl_val a, u_char *p, u_char *last)
{
    int64_t      id;
    yajl_val     d;
    ngx_str_t    value;
    ngx_uint_t   f;
    const char  *s;

    static const char  *dates[] = { "createdAt", "updatedAt" };

    if (ngx_commerce_json_id(a, "id", &id) != NGX_OK) {
        return NULL;
    }

    p = ngx_slprintf(p, last, "{\"id\":%L", id);

    for (f = 0; f < CM_AF_TEXT_N; f++) {
        if (ngx_commerce_cart_address_column[f] == NULL) {
            s = ngx_commerce_json_string(a, ngx_commerce_cart_address_key[f]);
            value.data = (u_char *) s;
            value.len = s ? ngx_strlen(s) : 0;

        } else if (ngx_commerce_account_pii_open(r,
                       ngx_commerce_cart_address_column[f], id,
                       ngx_commerce_json_get(a,
                                        ngx_commerce_cart_address_key[f],
                                        NULL),
                       &value)
                   != NGX_OK)
        {
            return NULL;
        }

        p = ngx_commerce_json_put(p, last, cm_address_fields[f], &value);
    }

    d = ngx_commerce_json_get(a, "isDefault", NULL);
    p = ngx_slprintf(p, last, ",\"isDefault\":%s",
                     (d != NULL && YAJL_IS_TRUE(d)) ? "true" : "false");

    for (f = 0; f < 2; f++) {
        s = ngx_commerce_json_string(a, dates[f]);
        value.data = (u_char *) s;
        value.len = s ? ngx_strlen(s) : 0;
        p = ngx_commerce_json_put(p, last, dates[f], &value);
    }

    if (p >= last) {
        return NULL;
    }

    *p++ = '}';

    return p;
}
