
/*
 * The catalogue as buyers see it: the product list and a product, with
 * stock as the database holds it at the time of the query, or, with
 * commerce_cache, as of the last change the instance heard of: every
 * committed change of a product is NOTIFYed by Postgres
 * (sql/functions/10_catalog.sql) and heard by worker 0's listener, which
 * drops that product's entry and every list page (README.md, "Product
 * cache").  And the category tree: read by everyone, changed by ADMINs
 * (sql/functions/15_catalogue.sql holds the 3 levels).
 */


#include "ngx_commerce_catalog.h"
#include "cm_catalogue.h"
#include "cm_text.h"


#define NGX_COMMERCE_PAGE_MAX      10000000
#define NGX_COMMERCE_SIZE_DEFAULT  20
#define NGX_COMMERCE_SIZE_MAX      100
#define NGX_COMMERCE_Q_MAX         100        /* characters */
/* a search's pages reach its first 1,000 results (cm_product_search) */
#define NGX_COMMERCE_SEARCH_WINDOW 1000
#define NGX_COMMERCE_PRICE_MAX     1000000000000LL


enum {
    NGX_COMMERCE_STMT_PRODUCT_GET = 0,
    NGX_COMMERCE_STMT_PRODUCT_LIST,
    NGX_COMMERCE_STMT_PRODUCT_SEARCH,
    NGX_COMMERCE_STMT_CATEGORY_TREE,
    NGX_COMMERCE_STMT_CATEGORY_CREATE,
    NGX_COMMERCE_STMT_CATEGORY_RENAME,
    NGX_COMMERCE_STMT_CATEGORY_DELETE,
    NGX_COMMERCE_CATALOG_NSTMT
};


static ngx_int_t ngx_commerce_catalog_list(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_catalog_search(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, int64_t page, int64_t size);
static ngx_int_t ngx_commerce_catalog_arg_int(ngx_http_request_t *r,
    const char *name, int64_t min, int64_t max, int64_t *out);
static ngx_int_t ngx_commerce_catalog_get(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_catalog_categories(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_catalog_category_create(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_catalog_category_rename(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_catalog_category_delete(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static void ngx_commerce_catalog_notify(ngx_str_t *payload);
static void ngx_commerce_catalog_listening(ngx_commerce_listen_e state);


ngx_commerce_stmt_t  ngx_commerce_catalog_statements[] = {

    [NGX_COMMERCE_STMT_PRODUCT_GET] =
    { "cm_product_get", "SELECT cm_product_get($1::bigint)", 1,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_PRODUCT_LIST] =
    { "cm_product_list", "SELECT cm_product_list($1::int, $2::int)", 2,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_PRODUCT_SEARCH] =
    { "cm_product_search",
      "SELECT cm_product_search($1::text, $2::bigint, $3::bigint, $4::bigint,"
      " $5::text, $6::text, $7::int, $8::int)", 8,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_CATEGORY_TREE] =
    { "cm_category_tree", "SELECT cm_category_tree()", 0,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_CATEGORY_CREATE] =
    { "cm_category_create",
      "SELECT cm_category_create($1::bigint, $2::text, $3::bigint, $4::text)",
      4, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_CATEGORY_RENAME] =
    { "cm_category_rename",
      "SELECT cm_category_rename($1::bigint, $2::bigint, $3::text, $4::text)",
      4, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_CATEGORY_DELETE] =
    { "cm_category_delete",
      "SELECT cm_category_delete($1::bigint, $2::bigint, $3::text)", 3, 0,
      NULL, 0 },

    [NGX_COMMERCE_CATALOG_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


ngx_commerce_route_t  ngx_commerce_catalog_routes[] = {

    NGX_COMMERCE_ROUTE("GET", "/api/v1/products", CM_ROLE_ALL, 0,
                       "products", ngx_commerce_catalog_list,
                       "listProducts"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/products/{id}", CM_ROLE_ALL, 0,
                       "product", ngx_commerce_catalog_get, "getProduct"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/categories", CM_ROLE_ALL, 0,
                       "categories", ngx_commerce_catalog_categories,
                       "listCategories"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/admin/categories", CM_ROLE_ADMIN, 0,
                       "admin_categories",
                       ngx_commerce_catalog_category_create,
                       "createCategory"),

    NGX_COMMERCE_ROUTE("PATCH", "/api/v1/admin/categories/{id}",
                       CM_ROLE_ADMIN, 0, "admin_categories",
                       ngx_commerce_catalog_category_rename,
                       "renameCategory"),

    NGX_COMMERCE_ROUTE("DELETE", "/api/v1/admin/categories/{id}",
                       CM_ROLE_ADMIN, 0, "admin_categories",
                       ngx_commerce_catalog_category_delete,
                       "deleteCategory"),

    ngx_commerce_route_end
};


/* with commerce_cache: hear every product change */

ngx_int_t
ngx_commerce_catalog_init(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    if (mcf->cache == NULL) {
        return NGX_OK;
    }

    return ngx_commerce_pg_listen(cf, "commerce_product",
                                  ngx_commerce_catalog_notify,
                                  ngx_commerce_catalog_listening);
}


/* a product changed (its id, from the trigger): its entry and the lists */

static void
ngx_commerce_catalog_notify(ngx_str_t *payload)
{
    int64_t                    id;
    u_char                     buf[NGX_INT64_LEN + 2];
    ngx_str_t                  key;

    if (cm_parse_int64(payload->data, payload->len, 1, INT64_MAX, &id) == 0) {
        key.data = buf;
        key.len = ngx_sprintf(buf, "p%L", id) - buf;
        ngx_commerce_cached_invalidate(&key);
    }

    ngx_commerce_cached_invalidate_class(NGX_COMMERCE_CACHE_LIST);
}


static void
ngx_commerce_catalog_listening(ngx_commerce_listen_e state)
{
    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "commerce: product cache: the listener is %s",
                  state == NGX_COMMERCE_LISTEN_UP ? "up, cache flushed"
                  : state == NGX_COMMERCE_LISTEN_DOWN ? "down, cache bypassed"
                  : "starting, cache bypassed");

    ngx_commerce_cached_channel(state);
}


static ngx_int_t
ngx_commerce_catalog_list(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    int64_t    page, size;
    u_char    *p;
    ngx_str_t  v, key;

    page = 0;
    size = NGX_COMMERCE_SIZE_DEFAULT;

    if (ngx_http_arg(r, (u_char *) "page", 4, &v) == NGX_OK
        && cm_parse_int64(v.data, v.len, 0, NGX_COMMERCE_PAGE_MAX, &page)
           != 0)
    {
        return ngx_commerce_reply_invalid(r, "page must be an integer "
                                             "between 0 and 10000000");
    }

    if (ngx_http_arg(r, (u_char *) "size", 4, &v) == NGX_OK
        && cm_parse_int64(v.data, v.len, 1, NGX_COMMERCE_SIZE_MAX, &size)
           != 0)
    {
        return ngx_commerce_reply_invalid(r, "size must be an integer "
                                             "between 1 and 100");
    }

    if (r->args.len != 0
        && (ngx_http_arg(r, (u_char *) "q", 1, &v) == NGX_OK
            || ngx_http_arg(r, (u_char *) "categoryId", 10, &v) == NGX_OK
            || ngx_http_arg(r, (u_char *) "minPrice", 8, &v) == NGX_OK
            || ngx_http_arg(r, (u_char *) "maxPrice", 8, &v) == NGX_OK
            || ngx_http_arg(r, (u_char *) "status", 6, &v) == NGX_OK
            || ngx_http_arg(r, (u_char *) "sort", 4, &v) == NGX_OK))
    {
        return ngx_commerce_catalog_search(r, ctx, page, size);
    }

    ctx->query.stmt =
        &ngx_commerce_catalog_statements[NGX_COMMERCE_STMT_PRODUCT_LIST];
    ctx->query.nparams = 2;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query, page);
    ctx->query.params[1] = ngx_commerce_pg_int(&ctx->query, size);

    p = ngx_pnalloc(r->pool, 2 * NGX_INT64_LEN + 2);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    key.data = p;
    key.len = ngx_sprintf(p, "l%L:%L", page, size) - p;

    return ngx_commerce_cached(r, ctx, NGX_COMMERCE_CACHE_LIST, &key);
}


/*
 * A search (README.md, "Search"): the list's route with a query or a
 * filter.  Every parameter is checked here (400 INVALID_REQUEST naming
 * it) and again by cm_product_search.  Not cached: queries are a long
 * tail of one-off texts, and every product change would drop them all.
 */

static ngx_int_t
ngx_commerce_catalog_search(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    int64_t page, int64_t size)
{
    u_char     *p, *d;
    int64_t     category, min, max;
    ngx_int_t   rc;
    ngx_str_t   v, q;

    ngx_str_null(&q);

    if (page * size + size > NGX_COMMERCE_SEARCH_WINDOW) {
        return ngx_commerce_reply_invalid(r, "page: a search reaches its "
                                             "first 1000 results (page * "
                                             "size + size <= 1000)");
    }

    if (ngx_http_arg(r, (u_char *) "q", 1, &v) == NGX_OK) {
        if (v.len == 0 || v.len > NGX_COMMERCE_Q_MAX * 4 * 3) {
            return ngx_commerce_reply_invalid(r, "q must be 1 to 100 "
                                                 "characters");
        }

        /* a form's '+' is a space; then %XX */
        q.data = ngx_pnalloc(r->pool, v.len + 1);
        if (q.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        for (p = v.data; p < v.data + v.len; p++) {
            q.data[p - v.data] = (*p == '+') ? ' ' : *p;
        }

        p = q.data;
        d = q.data;
        ngx_unescape_uri(&d, &p, v.len, 0);
        q.len = d - q.data;

        if (cm_utf8_text(q.data, q.len, 1, NGX_COMMERCE_Q_MAX, 0) != 0) {
            return ngx_commerce_reply_invalid(r, "q must be 1 to 100 "
                                                 "characters of UTF-8 text");
        }
    }

    rc = ngx_commerce_catalog_arg_int(r, "categoryId", 1, INT64_MAX,
                                      &category);
    if (rc != NGX_OK && rc != NGX_DECLINED) {
        return ngx_commerce_reply_invalid(r, "categoryId must be a "
                                             "positive integer");
    }

    if (ngx_commerce_catalog_arg_int(r, "minPrice", 0, NGX_COMMERCE_PRICE_MAX,
                                     &min)
        == NGX_ERROR
        || ngx_commerce_catalog_arg_int(r, "maxPrice", 0,
                                        NGX_COMMERCE_PRICE_MAX, &max)
           == NGX_ERROR)
    {
        return ngx_commerce_reply_invalid(r, "minPrice and maxPrice must be "
                                             "integers between 0 and "
                                             "1000000000000");
    }

    if (min >= 0 && max >= 0 && min > max) {
        return ngx_commerce_reply_invalid(r, "minPrice must not exceed "
                                             "maxPrice");
    }

    ctx->query.stmt =
        &ngx_commerce_catalog_statements[NGX_COMMERCE_STMT_PRODUCT_SEARCH];
    ctx->query.nparams = 8;
    ctx->query.params[0] = q.len ? ngx_commerce_json_cstr(r->pool, &q) : NULL;
    ctx->query.params[1] = category > 0
                           ? ngx_commerce_pg_int(&ctx->query, category)
                           : NULL;
    ctx->query.params[2] = min >= 0 ? ngx_commerce_pg_int(&ctx->query, min)
                                    : NULL;
    ctx->query.params[3] = max >= 0 ? ngx_commerce_pg_int(&ctx->query, max)
                                    : NULL;
    ctx->query.params[4] = NULL;
    ctx->query.params[5] = "relevance";

    if (ngx_http_arg(r, (u_char *) "status", 6, &v) == NGX_OK) {
        if (v.len == 7 && ngx_strncmp(v.data, "ON_SALE", 7) == 0) {
            ctx->query.params[4] = "ON_SALE";

        } else if (v.len == 8 && ngx_strncmp(v.data, "SOLD_OUT", 8) == 0) {
            ctx->query.params[4] = "SOLD_OUT";

        } else {
            return ngx_commerce_reply_invalid(r, "status must be ON_SALE or "
                                                 "SOLD_OUT");
        }
    }

    if (ngx_http_arg(r, (u_char *) "sort", 4, &v) == NGX_OK) {
        if (v.len == 9 && ngx_strncmp(v.data, "relevance", 9) == 0) {
            ctx->query.params[5] = "relevance";

        } else if (v.len == 5 && ngx_strncmp(v.data, "price", 5) == 0) {
            ctx->query.params[5] = "price";

        } else if (v.len == 6 && ngx_strncmp(v.data, "newest", 6) == 0) {
            ctx->query.params[5] = "newest";

        } else if (v.len == 5 && ngx_strncmp(v.data, "sales", 5) == 0) {
            ctx->query.params[5] = "sales";

        } else {
            return ngx_commerce_reply_invalid(r, "sort must be relevance, "
                                                 "price, newest or sales");
        }
    }

    ctx->query.params[6] = ngx_commerce_pg_int(&ctx->query, page);
    ctx->query.params[7] = ngx_commerce_pg_int(&ctx->query, size);

    if (q.len && ctx->query.params[0] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_handler_query(r, ctx);
}


/* NGX_OK with *out, NGX_DECLINED (absent, *out = -1), NGX_ERROR (bad) */

static ngx_int_t
ngx_commerce_catalog_arg_int(ngx_http_request_t *r, const char *name,
    int64_t min, int64_t max, int64_t *out)
{
    ngx_str_t  v;

    *out = -1;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &v) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (cm_parse_int64(v.data, v.len, min, max, out) != 0) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_commerce_catalog_get(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    u_char     *p;
    ngx_str_t   key;

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    key.data = p;
    key.len = ngx_sprintf(p, "p%L", ctx->id) - p;

    ctx->query.stmt =
        &ngx_commerce_catalog_statements[NGX_COMMERCE_STMT_PRODUCT_GET];
    ctx->query.nparams = 1;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query, ctx->id);

    return ngx_commerce_cached(r, ctx, NGX_COMMERCE_CACHE_PRODUCT, &key);
}


/* the category tree, and its changes by ADMINs */

static ngx_int_t
ngx_commerce_catalog_categories(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    ctx->query.stmt =
        &ngx_commerce_catalog_statements[NGX_COMMERCE_STMT_CATEGORY_TREE];
    ctx->query.nparams = 0;

    return ngx_commerce_handler_query(r, ctx);
}


static ngx_int_t
ngx_commerce_catalog_category_create(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    char               err[CM_JSON_ERR_LEN];
    ngx_str_t          name;
    cm_category_req_t  req;

    if (cm_parse_category(body, len, 1, &req, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_invalid(r, err);
    }

    name.data = (u_char *) req.name;
    name.len = ngx_strlen(req.name);

    ctx->success_status = NGX_HTTP_CREATED;
    ctx->query.stmt =
        &ngx_commerce_catalog_statements[NGX_COMMERCE_STMT_CATEGORY_CREATE];
    ctx->query.nparams = 4;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query,
                                               ctx->claims.user_id);
    ctx->query.params[1] = ngx_commerce_json_cstr(r->pool, &name);
    ctx->query.params[2] = req.parent_id
                           ? ngx_commerce_pg_int(&ctx->query, req.parent_id)
                           : NULL;
    ctx->query.params[3] = ngx_commerce_json_cstr(r->pool,
                                                  &r->connection->addr_text);

    if (ctx->query.params[1] == NULL || ctx->query.params[3] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_handler_query(r, ctx);
}


static ngx_int_t
ngx_commerce_catalog_category_rename(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    char               err[CM_JSON_ERR_LEN];
    ngx_str_t          name;
    cm_category_req_t  req;

    if (cm_parse_category(body, len, 0, &req, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_invalid(r, err);
    }

    name.data = (u_char *) req.name;
    name.len = ngx_strlen(req.name);

    ctx->query.stmt =
        &ngx_commerce_catalog_statements[NGX_COMMERCE_STMT_CATEGORY_RENAME];
    ctx->query.nparams = 4;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query,
                                               ctx->claims.user_id);
    ctx->query.params[1] = ngx_commerce_pg_int(&ctx->query, ctx->id);
    ctx->query.params[2] = ngx_commerce_json_cstr(r->pool, &name);
    ctx->query.params[3] = ngx_commerce_json_cstr(r->pool,
                                                  &r->connection->addr_text);

    if (ctx->query.params[2] == NULL || ctx->query.params[3] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_handler_query(r, ctx);
}


static ngx_int_t
ngx_commerce_catalog_category_delete(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    ctx->success_status = NGX_HTTP_NO_CONTENT;
    ctx->query.stmt =
        &ngx_commerce_catalog_statements[NGX_COMMERCE_STMT_CATEGORY_DELETE];
    ctx->query.nparams = 3;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query,
                                               ctx->claims.user_id);
    ctx->query.params[1] = ngx_commerce_pg_int(&ctx->query, ctx->id);
    ctx->query.params[2] = ngx_commerce_json_cstr(r->pool,
                                                  &r->connection->addr_text);

    if (ctx->query.params[2] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_handler_query(r, ctx);
}
