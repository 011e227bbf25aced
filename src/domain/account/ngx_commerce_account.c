
/*
 * Accounts: signup, login, refresh-token rotation, logout, the profile,
 * withdrawal and role changes (issue 4).
 *
 * Each request is a short chain of steps on the request's own context:
 * database steps through the worker's pool (ctx->query, cancelled by the
 * request cleanup like every other query), and password hashing on an
 * nginx thread pool, never on the event loop (ngx_commerce_task_post: the
 * request and the worker wait for the thread).
 *
 * Personal data is encrypted here (AES-256-GCM, cm_pii.c) before it goes
 * to Postgres and decrypted only for its owner; the database sees
 * ciphertexts and a keyed blind index of the email.
 */


#include "ngx_commerce_account.h"
#include "cm_pwhash.h"
#include "cm_token.h"

#include <ngx_thread_pool.h>
#include <yajl/yajl_tree.h>


static void ngx_commerce_account_field(cm_field_t *f, const char *name,
    size_t max, char *value);
static ngx_int_t ngx_commerce_account_signup_run(ngx_commerce_account_req_t *a,
    u_char *body, size_t len);
static ngx_int_t ngx_commerce_account_login_run(ngx_commerce_account_req_t *a,
    u_char *body, size_t len);
static ngx_int_t ngx_commerce_account_refresh_run(ngx_commerce_account_req_t *a,
    u_char *body, size_t len, ngx_uint_t logout);
static ngx_int_t ngx_commerce_account_role_run(ngx_commerce_account_req_t *a,
    u_char *body, size_t len);
static ngx_int_t ngx_commerce_account_audit_run(ngx_commerce_account_req_t *a);
static ngx_int_t ngx_commerce_account_query(ngx_commerce_account_req_t *a,
    ngx_commerce_account_step_e step, ngx_uint_t stmt, int n, ...);
static void ngx_commerce_account_db_done(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static ngx_int_t ngx_commerce_account_step(ngx_commerce_account_req_t *a,
    yajl_val v, u_char *doc, size_t len);
static ngx_int_t ngx_commerce_account_hash(ngx_commerce_account_req_t *a);
static void ngx_commerce_account_hash_thread(void *data, ngx_log_t *log);
static ngx_int_t ngx_commerce_account_hash_done(ngx_commerce_task_t *t);
static ngx_int_t ngx_commerce_account_hashed(ngx_commerce_account_req_t *a);
static ngx_int_t ngx_commerce_account_tokens(ngx_commerce_account_req_t *a);
static char *ngx_commerce_account_client(ngx_commerce_account_req_t *a);


static const char  *ngx_commerce_yajl_path_ok[] = { "ok", NULL };


static ngx_int_t ngx_commerce_account_signup(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_account_login(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_account_refresh(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_account_logout(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_account_me(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_account_withdraw(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_account_role(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_account_audit(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);


ngx_commerce_stmt_t  ngx_commerce_account_statements[] = {

    [NGX_COMMERCE_STMT_USER_NEXT_ID] =
    { "cm_user_next_id", "SELECT cm_user_next_id()", 0, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_SIGNUP] =
    { "cm_signup",
      "SELECT cm_signup($1::bigint, $2::text, $3::text, $4::text, $5::text, "
      "$6::text, $7::text)", 7, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_LOGIN_LOOKUP] =
    { "cm_login_lookup", "SELECT cm_login_lookup($1::text)", 1,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_LOGIN_FINISH] =
    { "cm_login_finish",
      "SELECT cm_login_finish($1::bigint, $2::bool, $3::text, $4::text, "
      "$5::int)", 5, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_REFRESH_ROTATE] =
    { "cm_refresh_rotate",
      "SELECT cm_refresh_rotate($1::text, $2::text, $3::int, $4::text)", 4,
      0, NULL, 0 },

    [NGX_COMMERCE_STMT_LOGOUT] =
    { "cm_logout", "SELECT cm_logout($1::text, $2::text)", 2, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_USER_GET] =
    { "cm_user_get", "SELECT cm_user_get($1::bigint)", 1,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_USER_WITHDRAW] =
    { "cm_user_withdraw", "SELECT cm_user_withdraw($1::bigint, $2::text)", 2,
      0, NULL, 0 },

    [NGX_COMMERCE_STMT_ROLE_SET] =
    { "cm_role_set",
      "SELECT cm_role_set($1::bigint, $2::bigint, $3::text, $4::text)", 4, 0,
      NULL, 0 },

    [NGX_COMMERCE_STMT_PASSWORD_REHASH] =
    { "cm_password_rehash",
      "SELECT cm_password_rehash($1::bigint, $2::text, $3::text)", 3, 0,
      NULL, 0 },

    [NGX_COMMERCE_STMT_AUDIT_LIST] =
    { "cm_audit_list", "SELECT cm_audit_list($1::bigint, $2::int)", 2,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_ACCOUNT_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


/* signup, login, refresh and logout are how a token is obtained */

ngx_commerce_route_t  ngx_commerce_account_routes[] = {

    NGX_COMMERCE_ROUTE("POST", "/api/v1/auth/signup", NGX_COMMERCE_PUBLIC, 0,
                       "signup", ngx_commerce_account_signup, "signup"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/auth/login", NGX_COMMERCE_PUBLIC,
                       NGX_COMMERCE_ROUTE_ACCOUNT, "login",
                       ngx_commerce_account_login, "login"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/auth/refresh", NGX_COMMERCE_PUBLIC, 0,
                       "refresh", ngx_commerce_account_refresh, "refresh"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/auth/logout", NGX_COMMERCE_PUBLIC, 0,
                       "logout", ngx_commerce_account_logout, "logout"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/users/me", CM_ROLE_ALL, 0,
                       "me", ngx_commerce_account_me, "getMe"),

    NGX_COMMERCE_ROUTE("DELETE", "/api/v1/users/me", CM_ROLE_ALL, 0,
                       "me", ngx_commerce_account_withdraw, "withdrawMe"),

    NGX_COMMERCE_ROUTE("PUT", "/api/v1/admin/users/{id}/role", CM_ROLE_ADMIN,
                       0, "admin_role", ngx_commerce_account_role,
                       "setUserRole"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/admin/audit",
                       CM_ROLE_MANAGER|CM_ROLE_ADMIN, 0, "admin_audit",
                       ngx_commerce_account_audit, "listAudit"),

    ngx_commerce_route_end
};


/* the state of an account request, or NULL (answered: *rc) */

static ngx_commerce_account_req_t *
ngx_commerce_account_start(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    ngx_int_t *rc)
{
    ngx_commerce_account_req_t       *a;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (!mcf->accounts) {
        *rc = ngx_commerce_reply_error(r, NGX_HTTP_NOT_FOUND, "NOT_FOUND",
                                       "accounts are not configured");
        return NULL;
    }

    a = ngx_pcalloc(r->pool, sizeof(ngx_commerce_account_req_t));
    if (a == NULL) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NULL;
    }

    a->r = r;
    a->ctx = ctx;

    return a;
}


#define ngx_commerce_account_begin(r, ctx)                                    \
    ngx_int_t             rc;                                                 \
    ngx_commerce_account_req_t  *a;                                                  \
                                                                              \
    a = ngx_commerce_account_start(r, ctx, &rc);                              \
    if (a == NULL) {                                                          \
        return rc;                                                            \
    }


static ngx_int_t
ngx_commerce_account_signup(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ngx_commerce_account_begin(r, ctx);

    return ngx_commerce_account_signup_run(a, body, len);
}


static ngx_int_t
ngx_commerce_account_login(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ngx_commerce_account_begin(r, ctx);

    return ngx_commerce_account_login_run(a, body, len);
}


static ngx_int_t
ngx_commerce_account_refresh(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ngx_commerce_account_begin(r, ctx);

    return ngx_commerce_account_refresh_run(a, body, len, 0);
}


static ngx_int_t
ngx_commerce_account_logout(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ngx_commerce_account_begin(r, ctx);

    return ngx_commerce_account_refresh_run(a, body, len, 1);
}


static ngx_int_t
ngx_commerce_account_me(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ngx_commerce_account_begin(r, ctx);

    return ngx_commerce_account_query(a, NGX_COMMERCE_ACCT_ME,
                                   NGX_COMMERCE_STMT_USER_GET, 1,
                                   ngx_commerce_pg_int(&ctx->query,
                                                       ctx->claims.user_id));
}


static ngx_int_t
ngx_commerce_account_withdraw(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ngx_commerce_account_begin(r, ctx);

    return ngx_commerce_account_query(a, NGX_COMMERCE_ACCT_WITHDRAW,
                                   NGX_COMMERCE_STMT_USER_WITHDRAW, 2,
                                   ngx_commerce_pg_int(&ctx->query,
                                                       ctx->claims.user_id),
                                   ngx_commerce_account_client(a));
}


static ngx_int_t
ngx_commerce_account_role(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ngx_commerce_account_begin(r, ctx);

    return ngx_commerce_account_role_run(a, body, len);
}


static ngx_int_t
ngx_commerce_account_audit(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ngx_commerce_account_begin(r, ctx);

    return ngx_commerce_account_audit_run(a);
}


/* a required string field of max bytes, read into value (max + 1 bytes) */

static void
ngx_commerce_account_field(cm_field_t *f, const char *name, size_t max,
    char *value)
{
    ngx_memzero(f, sizeof(cm_field_t));
    f->name = name;
    f->max = max;
    f->required = 1;
    f->value = value;
}


/* ------------------------------------------------------------------------
 * signup: validate, reserve an id, hash (thread), encrypt, insert
 */

static ngx_int_t
ngx_commerce_account_signup_run(ngx_commerce_account_req_t *a, u_char *body, size_t len)
{
    char                       err[CM_JSON_ERR_LEN];
    const char                *why;
    cm_field_t                 f[4];
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(a->r, ngx_http_commerce_module);

    ngx_commerce_account_field(&f[0], "email", CM_EMAIL_MAX, a->email);
    ngx_commerce_account_field(&f[1], "password", NGX_COMMERCE_PASSWORD_BYTES,
                            a->password);
    ngx_commerce_account_field(&f[2], "name", NGX_COMMERCE_NAME_BYTES, a->name);
    ngx_commerce_account_field(&f[3], "phone", CM_PHONE_MAX, a->phone);

    if (cm_parse_fields(body, len, f, 4, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_error(a->r, NGX_HTTP_BAD_REQUEST,
                                      "INVALID_REQUEST", err);
    }

    a->email_len = f[0].len;
    a->password_len = f[1].len;
    a->name_len = f[2].len;
    a->phone_len = f[3].len;

    if (cm_email_valid(a->email, a->email_len, &why) != 0
        || cm_name_valid(a->name, a->name_len, &why) != 0
        || cm_phone_valid(a->phone, a->phone_len, &why) != 0)
    {
        return ngx_commerce_reply_error(a->r, NGX_HTTP_BAD_REQUEST,
                                      "INVALID_REQUEST", why);
    }

    if (cm_password_policy(a->password, a->password_len, a->email,
                           a->email_len, &why)
        != 0)
    {
        return ngx_commerce_reply_error(a->r, NGX_HTTP_BAD_REQUEST,
                                      "PASSWORD_POLICY", why);
    }

    if (cm_pii_blind_index(a->index, mcf->pii_index_key->key,
                           CM_KEY_LEN, a->email, a->email_len)
        != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the id first: the ciphertexts are bound to their row */
    return ngx_commerce_account_query(a, NGX_COMMERCE_ACCT_NEXT_ID,
                                   NGX_COMMERCE_STMT_USER_NEXT_ID, 0);
}


/* ------------------------------------------------------------------------
 * login: look the email up, check the password (thread), issue tokens
 */

static ngx_int_t
ngx_commerce_account_login_run(ngx_commerce_account_req_t *a, u_char *body, size_t len)
{
    char                       err[CM_JSON_ERR_LEN];
    ngx_int_t                  rc;
    ngx_str_t                  acct;
    cm_field_t                 f[2];
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(a->r, ngx_http_commerce_module);

    ngx_commerce_account_field(&f[0], "email", CM_EMAIL_MAX, a->email);
    ngx_commerce_account_field(&f[1], "password", NGX_COMMERCE_PASSWORD_BYTES,
                            a->password);

    if (cm_parse_fields(body, len, f, 2, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_error(a->r, NGX_HTTP_BAD_REQUEST,
                                      "INVALID_REQUEST", err);
    }

    a->email_len = f[0].len;
    a->password_len = f[1].len;

    if (cm_pii_blind_index(a->index, mcf->pii_index_key->key,
                           CM_KEY_LEN, a->email, a->email_len)
        != 0)
    {
        /* an email over 1024 bytes cannot be anyone's */
        ngx_memzero(a->index, sizeof(a->index));
        ngx_memset(a->index, '0', CM_PII_INDEX_LEN - 1);
    }

    /* brute force on one account, from any number of addresses */
    acct.data = (u_char *) a->index;
    acct.len = CM_PII_INDEX_LEN - 1;

    rc = ngx_commerce_limit_account(a->r, a->ctx, &acct);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    return ngx_commerce_account_query(a, NGX_COMMERCE_ACCT_LOOKUP,
                                   NGX_COMMERCE_STMT_LOGIN_LOOKUP, 1,
                                   a->index);
}


/* ------------------------------------------------------------------------
 * refresh (rotate) and logout (revoke the family)
 */

static ngx_int_t
ngx_commerce_account_refresh_run(ngx_commerce_account_req_t *a, u_char *body, size_t len,
    ngx_uint_t logout)
{
    char                       err[CM_JSON_ERR_LEN], token[CM_TOKEN_LEN + 2];
    char                       old[CM_TOKEN_HASH_LEN + 1];
    char                      *p;
    cm_field_t                 f[1];
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(a->r, ngx_http_commerce_module);

    ngx_commerce_account_field(&f[0], "refreshToken", CM_TOKEN_LEN + 1, token);

    if (cm_parse_fields(body, len, f, 1, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_error(a->r, NGX_HTTP_BAD_REQUEST,
                                      "INVALID_REQUEST", err);
    }

    if (cm_token_hash(token, f[0].len, old) != 0) {
        if (logout) {
            return ngx_commerce_reply_json(a->r, NGX_HTTP_NO_CONTENT, NULL, 0,
                                          0);
        }

        return ngx_commerce_reply_error(a->r, NGX_HTTP_UNAUTHORIZED,
                                      "INVALID_REFRESH_TOKEN",
                                      "invalid, expired or revoked refresh "
                                      "token");
    }

    p = ngx_pnalloc(a->r->pool, CM_TOKEN_HASH_LEN + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(p, old, CM_TOKEN_HASH_LEN + 1);

    if (logout) {
        return ngx_commerce_account_query(a, NGX_COMMERCE_ACCT_LOGOUT,
                                       NGX_COMMERCE_STMT_LOGOUT, 2, p,
                                       ngx_commerce_account_client(a));
    }

    if (cm_token_new(a->refresh, a->refresh_hash) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_account_query(a, NGX_COMMERCE_ACCT_REFRESH,
                                   NGX_COMMERCE_STMT_REFRESH_ROTATE, 4, p,
                                   a->refresh_hash,
                                   ngx_commerce_pg_int(&a->ctx->query, mcf->refresh_ttl),
                                   ngx_commerce_account_client(a));
}


/* ------------------------------------------------------------------------
 * admin: PUT /admin/users/{id}/role, GET /admin/audit
 */

static ngx_int_t
ngx_commerce_account_role_run(ngx_commerce_account_req_t *a, u_char *body, size_t len)
{
    char        err[CM_JSON_ERR_LEN], role[CM_JWT_ROLE_LEN + 1];
    unsigned    bit;
    cm_field_t  f[1];

    ngx_commerce_account_field(&f[0], "role", CM_JWT_ROLE_LEN, role);

    if (cm_parse_fields(body, len, f, 1, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_error(a->r, NGX_HTTP_BAD_REQUEST,
                                      "INVALID_REQUEST", err);
    }

    bit = cm_role_bit(role, f[0].len);

    if (bit == 0 || ngx_strcmp(cm_role_name(bit), role) != 0) {
        return ngx_commerce_reply_error(a->r, NGX_HTTP_BAD_REQUEST,
                                      "INVALID_REQUEST",
                                      "role must be CONSUMER, SELLER, "
                                      "MANAGER or ADMIN");
    }

    a->ctx->success_status = NGX_HTTP_OK;

    return ngx_commerce_account_query(a, NGX_COMMERCE_ACCT_PASS,
                                   NGX_COMMERCE_STMT_ROLE_SET, 4,
                                   ngx_commerce_pg_int(&a->ctx->query, a->ctx->claims.user_id),
                                   ngx_commerce_pg_int(&a->ctx->query, a->ctx->id),
                                   (char *) cm_role_name(bit),
                                   ngx_commerce_account_client(a));
}


static ngx_int_t
ngx_commerce_account_audit_run(ngx_commerce_account_req_t *a)
{
    int64_t     user, limit;
    ngx_str_t   v;

    user = 0;
    limit = 50;

    if (ngx_http_arg(a->r, (u_char *) "userId", 6, &v) == NGX_OK
        && cm_parse_int64(v.data, v.len, 1, INT64_MAX, &user) != 0)
    {
        return ngx_commerce_reply_error(a->r, NGX_HTTP_BAD_REQUEST,
                                      "INVALID_REQUEST",
                                      "userId must be a positive integer");
    }

    if (ngx_http_arg(a->r, (u_char *) "limit", 5, &v) == NGX_OK
        && cm_parse_int64(v.data, v.len, 1, 200, &limit) != 0)
    {
        return ngx_commerce_reply_error(a->r, NGX_HTTP_BAD_REQUEST,
                                      "INVALID_REQUEST",
                                      "limit must be an integer between 1 "
                                      "and 200");
    }

    a->ctx->success_status = NGX_HTTP_OK;

    return ngx_commerce_account_query(a, NGX_COMMERCE_ACCT_PASS,
                                   NGX_COMMERCE_STMT_AUDIT_LIST, 2,
                                   user ? ngx_commerce_pg_int(&a->ctx->query, user)
                                        : NULL,
                                   ngx_commerce_pg_int(&a->ctx->query, limit));
}


/* ------------------------------------------------------------------------
 * database steps
 */

static ngx_int_t
ngx_commerce_account_query(ngx_commerce_account_req_t *a, ngx_commerce_account_step_e step,
    ngx_uint_t stmt, int n, ...)
{
    va_list    args;
    ngx_int_t  rc;

    a->step = step;

    va_start(args, n);
    rc = ngx_commerce_handler_step(a->r, a->ctx,
                                   &ngx_commerce_account_statements[stmt],
                                   ngx_commerce_account_db_done, a, n, args);
    va_end(args);

    if (rc != NGX_OK) {
        return ngx_commerce_reply_error(a->r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "DB_UNAVAILABLE",
                                      "database unavailable, retry later");
    }

    ngx_commerce_idem_watch_client(a->r, a->ctx);

    return NGX_DONE;
}


static void
ngx_commerce_account_db_done(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    char                *value;
    u_char              *doc;
    size_t               len;
    yajl_val             v;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;
    ngx_commerce_account_req_t *a;

    a = q->data;
    r = a->r;
    c = r->connection;

    a->ctx->waiting = 0;

    ngx_http_set_log_request(c->log, r);

    if (rc != NGX_OK || res == NULL) {
        rc = ngx_commerce_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "DB_UNAVAILABLE",
                                    "database unavailable, retry later");
        goto done;
    }

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = ngx_commerce_reply_db_error(r, a->ctx, res);
        goto done;
    }

    doc = NULL;
    len = 0;
    v = NULL;

    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        value = PQgetvalue(res, 0, 0);
        len = PQgetlength(res, 0, 0);

        doc = ngx_pnalloc(r->pool, len + 1);
        if (doc == NULL) {
            rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            goto done;
        }

        ngx_memcpy(doc, value, len);
        doc[len] = '\0';

        if (a->step != NGX_COMMERCE_ACCT_PASS) {
            v = yajl_tree_parse((const char *) doc, NULL, 0);
        }
    }

    rc = ngx_commerce_account_step(a, v, doc, len);

    if (v != NULL) {
        yajl_tree_free(v);
    }

done:

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }

    ngx_http_run_posted_requests(c);
}


/* a step's result: v is its parsed document (NULL: SQL NULL or not JSON) */

static ngx_int_t
ngx_commerce_account_step(ngx_commerce_account_req_t *a, yajl_val v, u_char *doc,
    size_t len)
{
    const char  *s;
    yajl_val     ok;

    switch (a->step) {

    case NGX_COMMERCE_ACCT_NEXT_ID:
        if (doc == NULL
            || cm_parse_int64(doc, len, 1, INT64_MAX, &a->user_id) != 0)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        a->make = 1;
        return ngx_commerce_account_hash(a);

    case NGX_COMMERCE_ACCT_SIGNUP:
        if (v == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_commerce_account_pii_profile(a, v);

    case NGX_COMMERCE_ACCT_LOOKUP:
        /* no such account: the same work on a dummy, the same answer */
        a->stored = NULL;
        a->user_id = 0;

        if (v != NULL
            && ngx_commerce_json_id(v, "userId", &a->user_id) == NGX_OK
            && (s = ngx_commerce_json_string(v, "hash")) != NULL)
        {
            a->stored = ngx_pnalloc(a->r->pool, ngx_strlen(s) + 1);
            if (a->stored == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ngx_cpystrn((u_char *) a->stored, (u_char *) s,
                        ngx_strlen(s) + 1);

        } else {
            a->user_id = 0;
        }

        a->make = 0;
        return ngx_commerce_account_hash(a);

    case NGX_COMMERCE_ACCT_LOGIN:
    case NGX_COMMERCE_ACCT_REFRESH:
        ok = (v != NULL) ? yajl_tree_get(v, ngx_commerce_yajl_path_ok,
                                         yajl_t_any)
                         : NULL;

        if (ok == NULL || !YAJL_IS_TRUE(ok)
            || ngx_commerce_json_id(v, "userId", &a->user_id) != NGX_OK
            || (s = ngx_commerce_json_string(v, "role")) == NULL
            || ngx_strlen(s) >= sizeof(a->role))
        {
            if (a->step == NGX_COMMERCE_ACCT_LOGIN) {
                return ngx_commerce_reply_error(a->r, NGX_HTTP_UNAUTHORIZED,
                                              "INVALID_CREDENTIALS",
                                              "wrong email or password");
            }

            s = (v != NULL) ? ngx_commerce_json_string(v, "reason") : NULL;

            ngx_commerce_log(NGX_LOG_WARN, a->r, a->ctx,
                             "refresh token refused: %s",
                             s ? s : "invalid");

            return ngx_commerce_reply_error(a->r, NGX_HTTP_UNAUTHORIZED,
                                          "INVALID_REFRESH_TOKEN",
                                          "invalid, expired or revoked "
                                          "refresh token");
        }

        ngx_cpystrn((u_char *) a->role, (u_char *) s, sizeof(a->role));

        if (a->step == NGX_COMMERCE_ACCT_LOGIN && a->rehash) {
            return ngx_commerce_account_query(a, NGX_COMMERCE_ACCT_REHASH,
                                           NGX_COMMERCE_STMT_PASSWORD_REHASH,
                                           3, ngx_commerce_pg_int(&a->ctx->query, a->user_id),
                                           a->stored, a->hash);
        }

        return ngx_commerce_account_tokens(a);

    case NGX_COMMERCE_ACCT_REHASH:
        ngx_commerce_log(NGX_LOG_INFO, a->r, a->ctx,
                         "user %L: password hash renewed at the current "
                         "cost", a->user_id);

        return ngx_commerce_account_tokens(a);

    case NGX_COMMERCE_ACCT_LOGOUT:
    case NGX_COMMERCE_ACCT_WITHDRAW:
        return ngx_commerce_reply_json(a->r, NGX_HTTP_NO_CONTENT, NULL, 0, 0);

    case NGX_COMMERCE_ACCT_ME:
        if (v == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_commerce_account_pii_profile(a, v);

    case NGX_COMMERCE_ACCT_PASS:
    default:
        if (doc == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_commerce_reply(a->r, a->ctx->success_status, doc, len);
    }
}


/* ------------------------------------------------------------------------
 * the password, on the thread pool
 */

static ngx_int_t
ngx_commerce_account_hash(ngx_commerce_account_req_t *a)
{
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(a->r, ngx_http_commerce_module);

    cm_pwhash_params_default(&a->kdf);
    a->kdf.iterations = (uint32_t) mcf->kdf_iterations;

    a->task.r = a->r;
    a->task.ctx = a->ctx;
    a->task.data = a;

    return ngx_commerce_task_post(&a->task, mcf->auth_thread_pool,
                                  ngx_commerce_account_hash_thread,
                                  ngx_commerce_account_hash_done,
                                  "too many logins at once, retry later");
}


/* in a thread: nothing of nginx here, only the request's own buffers */

static void
ngx_commerce_account_hash_thread(void *data, ngx_log_t *log)
{
    ngx_commerce_account_req_t  *a = data;

    if (a->make) {
        a->hash_rc = cm_pwhash_make(a->hash, sizeof(a->hash), a->password,
                                    a->password_len, &a->kdf);

    } else {
        a->hash_rc = cm_pwhash_verify(a->stored, a->password,
                                      a->password_len, &a->rehash, &a->kdf);

        /* the cost was raised since: a new hash, once, while we have it */
        if (a->hash_rc == CM_PWHASH_OK && a->rehash
            && cm_pwhash_make(a->hash, sizeof(a->hash), a->password,
                              a->password_len, &a->kdf)
               != CM_PWHASH_OK)
        {
            a->rehash = 0;
        }
    }
}


static ngx_int_t
ngx_commerce_account_hash_done(ngx_commerce_task_t *t)
{
    return ngx_commerce_account_hashed(t->data);
}


static ngx_int_t
ngx_commerce_account_hashed(ngx_commerce_account_req_t *a)
{
    ngx_uint_t                 ok;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(a->r, ngx_http_commerce_module);

    /* the password is not needed any more */
    ngx_explicit_memzero(a->password, sizeof(a->password));

    if (a->make) {
        char  *email, *phone, *name;

        if (a->hash_rc != CM_PWHASH_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        email = ngx_commerce_account_pii_encrypt(a, "users.email", a->email,
                                          a->email_len);
        phone = ngx_commerce_account_pii_encrypt(a, "users.phone", a->phone,
                                          a->phone_len);
        name = ngx_commerce_account_pii_encrypt(a, "users.name", a->name,
                                         a->name_len);

        if (email == NULL || phone == NULL || name == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        a->ctx->success_status = NGX_HTTP_CREATED;

        return ngx_commerce_account_query(a, NGX_COMMERCE_ACCT_SIGNUP,
                                       NGX_COMMERCE_STMT_SIGNUP, 7,
                                       ngx_commerce_pg_int(&a->ctx->query, a->user_id),
                                       a->index, email, phone, name,
                                       a->hash,
                                       ngx_commerce_account_client(a));
    }

    ok = (a->hash_rc == CM_PWHASH_OK && a->stored != NULL);

    if (ok && cm_token_new(a->refresh, a->refresh_hash) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_account_query(a, NGX_COMMERCE_ACCT_LOGIN,
                                   NGX_COMMERCE_STMT_LOGIN_FINISH, 5,
                                   a->user_id
                                   ? ngx_commerce_pg_int(&a->ctx->query, a->user_id)
                                   : NULL,
                                   ok ? "true" : "false",
                                   ngx_commerce_account_client(a),
                                   ok ? a->refresh_hash : NULL,
                                   ngx_commerce_pg_int(&a->ctx->query, mcf->refresh_ttl));
}


/* ------------------------------------------------------------------------
 * answers
 */

static ngx_int_t
ngx_commerce_account_tokens(ngx_commerce_account_req_t *a)
{
    u_char                    *body, *p;
    char                       jti[CM_JTI_LEN + 1];
    char                       access[NGX_COMMERCE_ACCESS_LEN];
    size_t                     n;
    time_t                     now;
    const cm_key_t            *key;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(a->r, ngx_http_commerce_module);

    key = cm_keyring_current(mcf->jwt_keys);

    if (key == NULL || cm_token_jti(jti) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    now = ngx_time();

    n = cm_jwt_sign_kid(access, sizeof(access), key->key, CM_KEY_LEN,
                        key->kid, a->user_id, a->role, jti, (int64_t) now,
                        (int64_t) (now + mcf->access_ttl));
    if (n == 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body = ngx_pnalloc(a->r->pool, n + CM_TOKEN_LEN + 256);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body, "{\"accessToken\":\"%*s\",\"refreshToken\":\"%s\","
                    "\"tokenType\":\"Bearer\",\"expiresIn\":%T,"
                    "\"refreshExpiresIn\":%T}",
                    n, access, a->refresh, mcf->access_ttl,
                    mcf->refresh_ttl);

    ngx_commerce_log(NGX_LOG_INFO, a->r, a->ctx,
                     "user %L: access token %s issued", a->user_id, jti);

    return ngx_commerce_reply(a->r, NGX_HTTP_OK, body, p - body);
}


/* the client's address, a parameter of the audit log: held by the request */

static char *
ngx_commerce_account_client(ngx_commerce_account_req_t *a)
{
    ngx_str_t  *addr;

    addr = &a->r->connection->addr_text;

    *ngx_cpymem(a->client, addr->data,
                ngx_min(addr->len, sizeof(a->client) - 1)) = '\0';

    return a->client;
}



/* ------------------------------------------------------------------------
 * configuration
 */

ngx_int_t
ngx_commerce_account_conf(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    cm_keyring_t  *ik;

    if (mcf->pii_keys_file.len == 0 && mcf->pii_index_key_file.len == 0) {
        return NGX_OK;
    }

    if (mcf->pii_keys_file.len == 0 || mcf->pii_index_key_file.len == 0
        || mcf->jwt_keys == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "accounts need \"commerce_pii_keys_file\", "
                           "\"commerce_pii_index_key_file\" and "
                           "\"commerce_jwt_keys_file\"");
        return NGX_ERROR;
    }

    if (ngx_commerce_conf_keyring(cf, "commerce_pii_keys_file",
                                  &mcf->pii_keys_file, &mcf->pii_keys)
        != NGX_OK
        || ngx_commerce_conf_keyring(cf, "commerce_pii_index_key_file",
                                     &mcf->pii_index_key_file, &ik)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    mcf->pii_index_key = (cm_key_t *) cm_keyring_current(ik);

    if (mcf->auth_thread_pool_name.len == 0) {
        ngx_str_set(&mcf->auth_thread_pool_name, "default");
    }

    mcf->auth_thread_pool = ngx_thread_pool_add(cf,
                                                &mcf->auth_thread_pool_name);
    if (mcf->auth_thread_pool == NULL) {
        return NGX_ERROR;
    }

    mcf->accounts = 1;

    return NGX_OK;
}
