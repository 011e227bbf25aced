
/*
 * Sellers (issue 11): a SELLER's store with its settlement account, the
 * MANAGERs an ADMIN assigns to stores, and the products of a store with
 * their options, variants, sale status and stock.
 *
 * Bodies are checked here (src/lib/cm_catalogue.c: types, lengths in
 * characters, the option/variant matrix) and sent to Postgres as they are
 * (jsonb); the SQL functions (sql/functions/15_catalogue.sql) check them
 * again and decide everything that depends on data: who may touch which
 * product (another store's product is PRODUCT_NOT_FOUND, as if it did
 * not exist), stock that never goes below 0, the version of an edit.
 * Nothing here checks and then writes.
 *
 * The settlement account number and holder are personal data: encrypted
 * here with the accounts' PII keyring (ngx_commerce_account_pii_seal),
 * bound to the owner's id; the database keeps ciphertexts and the last 4
 * digits.
 */


#include "ngx_commerce_seller.h"
#include "ngx_commerce_account.h"
#include "cm_catalogue.h"
#include "cm_text.h"


#define NGX_COMMERCE_STORE_NAME_BYTES   (CM_STORE_NAME_MAX * 4)
#define NGX_COMMERCE_ACCOUNT_BYTES      40


enum {
    NGX_COMMERCE_STMT_STORE_CREATE = 0,
    NGX_COMMERCE_STMT_STORE_GET,
    NGX_COMMERCE_STMT_STORE_MANAGER,
    NGX_COMMERCE_STMT_STORE_UNMANAGER,
    NGX_COMMERCE_STMT_PRODUCT_LIST,
    NGX_COMMERCE_STMT_PRODUCT_CREATE,
    NGX_COMMERCE_STMT_PRODUCT_GET,
    NGX_COMMERCE_STMT_PRODUCT_UPDATE,
    NGX_COMMERCE_STMT_PRODUCT_DELETE,
    NGX_COMMERCE_STMT_VARIANT_UPDATE,
    NGX_COMMERCE_STMT_STOCK_MOVEMENTS,
    NGX_COMMERCE_SELLER_NSTMT
};


static ngx_int_t ngx_commerce_seller_store_create(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_seller_store_get(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_seller_manager(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_seller_unmanager(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_seller_product_list(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_seller_product_create(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_seller_product_get(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_seller_product_update(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_seller_product_delete(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_seller_variant_update(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_seller_movements(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static char *ngx_commerce_seller_text(ngx_http_request_t *r, u_char *body,
    size_t len);
static ngx_int_t ngx_commerce_seller_query(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, ngx_uint_t stmt, ngx_uint_t status, int n, ...);


ngx_commerce_stmt_t  ngx_commerce_seller_statements[] = {

    [NGX_COMMERCE_STMT_STORE_CREATE] =
    { "cm_store_create",
      "SELECT cm_store_create($1::bigint, $2::text, $3::text, $4::text, "
      "$5::text, $6::text, $7::text)", 7, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_STORE_GET] =
    { "cm_store_get", "SELECT cm_store_get($1::bigint)", 1,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_STORE_MANAGER] =
    { "cm_store_manager_assign",
      "SELECT cm_store_manager_assign($1::bigint, $2::bigint, $3::bigint, "
      "$4::text)", 4, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_STORE_UNMANAGER] =
    { "cm_store_manager_unassign",
      "SELECT cm_store_manager_unassign($1::bigint, $2::bigint, $3::bigint, "
      "$4::text)", 4, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_PRODUCT_LIST] =
    { "cm_seller_products",
      "SELECT cm_seller_products($1::bigint, $2::bigint, $3::text, $4::int, "
      "$5::int)", 5, NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_PRODUCT_CREATE] =
    { "cm_seller_product_create",
      "SELECT cm_seller_product_create($1::bigint, $2::jsonb, $3::text)", 3,
      0, NULL, 0 },

    [NGX_COMMERCE_STMT_PRODUCT_GET] =
    { "cm_seller_product_get",
      "SELECT cm_seller_product_get($1::bigint, $2::bigint)", 2,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_PRODUCT_UPDATE] =
    { "cm_seller_product_update",
      "SELECT cm_seller_product_update($1::bigint, $2::bigint, $3::jsonb, "
      "$4::text)", 4, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_PRODUCT_DELETE] =
    { "cm_seller_product_delete",
      "SELECT cm_seller_product_delete($1::bigint, $2::bigint, $3::text)", 3,
      0, NULL, 0 },

    [NGX_COMMERCE_STMT_VARIANT_UPDATE] =
    { "cm_seller_variant_update",
      "SELECT cm_seller_variant_update($1::bigint, $2::bigint, $3::bigint, "
      "$4::jsonb, $5::text)", 5, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_STOCK_MOVEMENTS] =
    { "cm_seller_stock_movements",
      "SELECT cm_seller_stock_movements($1::bigint, $2::bigint, $3::bigint, "
      "$4::int)", 4, NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_SELLER_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


ngx_commerce_route_t  ngx_commerce_seller_routes[] = {

    NGX_COMMERCE_ROUTE("POST", "/api/v1/seller/store", CM_ROLE_SELLER, 0,
                       "seller_store", ngx_commerce_seller_store_create,
                       "createStore"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/seller/store", CM_ROLE_SELLER, 0,
                       "seller_store", ngx_commerce_seller_store_get,
                       "getStore"),

    NGX_COMMERCE_ROUTE("PUT", "/api/v1/admin/stores/{id}/managers/{userId}",
                       CM_ROLE_ADMIN, 0, "admin_store_manager",
                       ngx_commerce_seller_manager, "assignStoreManager"),

    NGX_COMMERCE_ROUTE("DELETE",
                       "/api/v1/admin/stores/{id}/managers/{userId}",
                       CM_ROLE_ADMIN, 0, "admin_store_manager",
                       ngx_commerce_seller_unmanager, "unassignStoreManager"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/seller/products",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_products",
                       ngx_commerce_seller_product_list,
                       "listSellerProducts"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/seller/products",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_products",
                       ngx_commerce_seller_product_create,
                       "createSellerProduct"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/seller/products/{id}",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_product",
                       ngx_commerce_seller_product_get, "getSellerProduct"),

    NGX_COMMERCE_ROUTE("PATCH", "/api/v1/seller/products/{id}",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_product",
                       ngx_commerce_seller_product_update,
                       "updateSellerProduct"),

    NGX_COMMERCE_ROUTE("DELETE", "/api/v1/seller/products/{id}",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_product",
                       ngx_commerce_seller_product_delete,
                       "deleteSellerProduct"),

    NGX_COMMERCE_ROUTE("PATCH",
                       "/api/v1/seller/products/{id}/variants/{variantId}",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_variant",
                       ngx_commerce_seller_variant_update,
                       "updateSellerVariant"),

    NGX_COMMERCE_ROUTE("GET",
      "/api/v1/seller/products/{id}/variants/{variantId}/stock-movements",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_variant",
                       ngx_commerce_seller_movements, "listStockMovements"),

    ngx_commerce_route_end
};


/* ------------------------------------------------------------------------
 * stores
 */

static ngx_int_t
ngx_commerce_seller_store_create(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    char         err[CM_JSON_ERR_LEN], last4[5];
    char         name[NGX_COMMERCE_STORE_NAME_BYTES + 1];
    char         bank[8], number[NGX_COMMERCE_ACCOUNT_BYTES + 1];
    char         holder[NGX_COMMERCE_NAME_BYTES + 1];
    char        *number_ct, *holder_ct, *p;
    const char  *why;
    cm_field_t   f[4];
    ngx_uint_t   i;

    static const char  *names[] = { "name", "bankCode", "accountNumber",
                                    "accountHolder" };
    char               *values[] = { name, bank, number, holder };
    size_t              max[] = { NGX_COMMERCE_STORE_NAME_BYTES,
                                  sizeof(bank) - 1,
                                  NGX_COMMERCE_ACCOUNT_BYTES,
                                  NGX_COMMERCE_NAME_BYTES };
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    /* the account is personal data: it needs the accounts' PII keys */
    if (!mcf->accounts) {
        return ngx_commerce_reply_error(r, NGX_HTTP_NOT_FOUND, "NOT_FOUND",
                                        "accounts are not configured");
    }

    ngx_memzero(f, sizeof(f));

    for (i = 0; i < 4; i++) {
        f[i].name = names[i];
        f[i].max = max[i];
        f[i].required = 1;
        f[i].value = values[i];
    }

    if (cm_parse_fields(body, len, f, 4, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_invalid(r, err);
    }

    if (cm_utf8_text((u_char *) name, f[0].len, 1, CM_STORE_NAME_MAX, 0)
        != 0)
    {
        return ngx_commerce_reply_invalid(r, "name must be 1 to 100"
                                          " characters, not blank, without"
                                          " control characters");
    }

    if (cm_store_account_valid(bank, f[1].len, number, f[2].len, last4, &why)
        != 0)
    {
        return ngx_commerce_reply_invalid(r, why);
    }

    if (cm_utf8_text((u_char *) holder, f[3].len, 1, CM_NAME_MAX, 0)
        != 0)
    {
        return ngx_commerce_reply_invalid(r, "accountHolder must be 1 to 100"
                                          " characters, not blank, without"
                                          " control characters");
    }

    /* the account and its holder, bound to the owner's id */
    number_ct = ngx_commerce_account_pii_seal(r, "stores.account_number",
                                              ctx->claims.user_id, number,
                                              f[2].len);
    holder_ct = ngx_commerce_account_pii_seal(r, "stores.account_holder",
                                              ctx->claims.user_id, holder,
                                              f[3].len);

    ngx_explicit_memzero(number, sizeof(number));
    ngx_explicit_memzero(holder, sizeof(holder));

    if (number_ct == NULL || holder_ct == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, sizeof(last4) + f[0].len + 1 + 8);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(p, last4, sizeof(last4));
    ngx_memcpy(p + sizeof(last4), name, f[0].len + 1);
    ngx_memcpy(p + sizeof(last4) + f[0].len + 1, bank, 4);

    return ngx_commerce_seller_query(r, ctx, NGX_COMMERCE_STMT_STORE_CREATE,
                                     NGX_HTTP_CREATED, 7,
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->claims.user_id),
                                     p + sizeof(last4),
                                     p + sizeof(last4) + f[0].len + 1,
                                     number_ct, holder_ct, p,
                                     ngx_commerce_seller_client(r));
}


static ngx_int_t
ngx_commerce_seller_store_get(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    return ngx_commerce_seller_query(r, ctx, NGX_COMMERCE_STMT_STORE_GET,
                                     NGX_HTTP_OK, 1,
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->claims.user_id));
}


/* PUT /admin/stores/{id}/managers/{userId}: the body is not read */

static ngx_int_t
ngx_commerce_seller_manager(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    return ngx_commerce_seller_query(r, ctx, NGX_COMMERCE_STMT_STORE_MANAGER,
                                     NGX_HTTP_OK, 4,
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->claims.user_id),
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->id),
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->id2),
                                     ngx_commerce_seller_client(r));
}


/* DELETE /admin/stores/{id}/managers/{userId}: 204, or 404 */

static ngx_int_t
ngx_commerce_seller_unmanager(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    return ngx_commerce_seller_query(r, ctx, NGX_COMMERCE_STMT_STORE_UNMANAGER,
                                     NGX_HTTP_NO_CONTENT, 4,
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->claims.user_id),
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->id),
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->id2),
                                     ngx_commerce_seller_client(r));
}


/* ------------------------------------------------------------------------
 * products and variants
 */

/*
 * GET /seller/products?storeId=&status=&page=&size=: the store's products,
 * newest first, STOPPED ones too; the SQL function decides which store
 * (storeId, or the caller's only one) and who may read it.
 */

static ngx_int_t
ngx_commerce_seller_product_list(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    int64_t      store, page, size;
    ngx_str_t    v;
    const char  *status, *msg;

    status = NULL;

    msg = ngx_commerce_handler_page(r, &store, &page, &size);
    if (msg != NULL) {
        return ngx_commerce_reply_invalid(r, msg);
    }

    if (ngx_http_arg(r, (u_char *) "status", 6, &v) == NGX_OK) {
        if (v.len == 7 && ngx_strncmp(v.data, "ON_SALE", 7) == 0) {
            status = "ON_SALE";

        } else if (v.len == 8 && ngx_strncmp(v.data, "SOLD_OUT", 8) == 0) {
            status = "SOLD_OUT";

        } else if (v.len == 7 && ngx_strncmp(v.data, "STOPPED", 7) == 0) {
            status = "STOPPED";

        } else {
            return ngx_commerce_reply_invalid(r, "status must be ON_SALE,"
                                              " SOLD_OUT or STOPPED");
        }
    }

    /* storeId and status may be NULL: ngx_commerce_seller_query refuses */
    ctx->query.stmt =
        &ngx_commerce_seller_statements[NGX_COMMERCE_STMT_PRODUCT_LIST];
    ctx->query.nparams = 5;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query,
                                               ctx->claims.user_id);
    ctx->query.params[1] = store ? ngx_commerce_pg_int(&ctx->query, store)
                                 : NULL;
    ctx->query.params[2] = status;
    ctx->query.params[3] = ngx_commerce_pg_int(&ctx->query, page);
    ctx->query.params[4] = ngx_commerce_pg_int(&ctx->query, size);

    return ngx_commerce_handler_query(r, ctx);
}


static ngx_int_t
ngx_commerce_seller_product_create(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    char              err[CM_JSON_ERR_LEN], *doc;
    cm_product_req_t  req;

    if (cm_parse_product(body, len, CM_PRODUCT_CREATE, &req, err, sizeof(err))
        != 0)
    {
        return ngx_commerce_reply_invalid(r, err);
    }

    doc = ngx_commerce_seller_text(r, body, len);
    if (doc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_seller_query(r, ctx, NGX_COMMERCE_STMT_PRODUCT_CREATE,
                                     NGX_HTTP_CREATED, 3,
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->claims.user_id),
                                     doc, ngx_commerce_seller_client(r));
}


static ngx_int_t
ngx_commerce_seller_product_get(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    return ngx_commerce_seller_query(r, ctx, NGX_COMMERCE_STMT_PRODUCT_GET,
                                     NGX_HTTP_OK, 2,
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->claims.user_id),
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->id));
}


static ngx_int_t
ngx_commerce_seller_product_update(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    char              err[CM_JSON_ERR_LEN], *doc;
    cm_product_req_t  req;

    if (cm_parse_product(body, len, CM_PRODUCT_PATCH, &req, err, sizeof(err))
        != 0)
    {
        return ngx_commerce_reply_invalid(r, err);
    }

    doc = ngx_commerce_seller_text(r, body, len);
    if (doc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_seller_query(r, ctx, NGX_COMMERCE_STMT_PRODUCT_UPDATE,
                                     NGX_HTTP_OK, 4,
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->claims.user_id),
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->id),
                                     doc, ngx_commerce_seller_client(r));
}


/* DELETE /seller/products/{id}: 204; the image files go with the sweep */

static ngx_int_t
ngx_commerce_seller_product_delete(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    return ngx_commerce_seller_query(r, ctx, NGX_COMMERCE_STMT_PRODUCT_DELETE,
                                     NGX_HTTP_NO_CONTENT, 3,
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->claims.user_id),
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->id),
                                     ngx_commerce_seller_client(r));
}


static ngx_int_t
ngx_commerce_seller_variant_update(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    char  err[CM_JSON_ERR_LEN], *doc;

    if (cm_parse_variant_patch(body, len, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_invalid(r, err);
    }

    doc = ngx_commerce_seller_text(r, body, len);
    if (doc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_seller_query(r, ctx, NGX_COMMERCE_STMT_VARIANT_UPDATE,
                                     NGX_HTTP_OK, 5,
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->claims.user_id),
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->id),
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->id2),
                                     doc, ngx_commerce_seller_client(r));
}


static ngx_int_t
ngx_commerce_seller_movements(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    int64_t    limit;
    ngx_str_t  v;

    limit = 50;

    if (ngx_http_arg(r, (u_char *) "limit", 5, &v) == NGX_OK
        && cm_parse_int64(v.data, v.len, 1, 200, &limit) != 0)
    {
        return ngx_commerce_reply_invalid(r, "limit must be an integer"
                                             " between 1 and 200");
    }

    return ngx_commerce_seller_query(r, ctx,
                                     NGX_COMMERCE_STMT_STOCK_MOVEMENTS,
                                     NGX_HTTP_OK, 4,
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->claims.user_id),
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->id),
                                     ngx_commerce_pg_int(&ctx->query,
                                                         ctx->id2),
                                     ngx_commerce_pg_int(&ctx->query, limit));
}


/* the checked body as a parameter (NUL-terminated, in the request's pool) */

static char *
ngx_commerce_seller_text(ngx_http_request_t *r, u_char *body, size_t len)
{
    ngx_str_t  s;

    s.data = body;
    s.len = len;

    return ngx_commerce_json_cstr(r->pool, &s);
}


/* the client's address, a parameter of the audit log */

char *
ngx_commerce_seller_client(ngx_http_request_t *r)
{
    return ngx_commerce_json_cstr(r->pool, &r->connection->addr_text);
}


static ngx_int_t
ngx_commerce_seller_query(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    ngx_uint_t stmt, ngx_uint_t status, int n, ...)
{
    int           i;
    va_list       args;
    const char   *params[NGX_COMMERCE_PG_PARAMS_MAX];

    va_start(args, n);
    for (i = 0; i < n; i++) {
        params[i] = va_arg(args, const char *);
    }
    va_end(args);

    return ngx_commerce_seller_run(r, ctx,
                                   &ngx_commerce_seller_statements[stmt],
                                   status, n, params);
}


/* a statement of the seller's files, its document the answer (status) */

ngx_int_t
ngx_commerce_seller_run(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    ngx_commerce_stmt_t *stmt, ngx_uint_t status, int n,
    const char **params)
{
    int  i;

    ctx->success_status = status;
    ctx->query.stmt = stmt;
    ctx->query.nparams = n;

    for (i = 0; i < n; i++) {
        if (params[i] == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->query.params[i] = params[i];
    }

    return ngx_commerce_handler_query(r, ctx);
}
