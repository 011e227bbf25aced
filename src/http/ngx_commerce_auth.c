
/*
 * Identity: every request under a commerce_api location carries
 * "Authorization: Bearer <JWT>", verified here in the access phase (HS256,
 * constant-time signature check in cm_jwt.c).  A failure is answered with
 * the API's JSON 401 right from this phase, so no content handler runs.
 */


#include "ngx_commerce_http.h"

#include <openssl/crypto.h>


#define NGX_COMMERCE_JWT_LEEWAY       5
#define NGX_COMMERCE_TOKEN_CACHE      4096   /* slots: 2.3 MB per worker */
#define NGX_COMMERCE_TOKEN_CACHE_LEN  512


/*
 * Clients send the same token for minutes: a per-worker, direct-mapped
 * cache of tokens that passed verification saves the HMAC, base64 and
 * JSON work on every later request.  A hit needs the same bytes (compared
 * in constant time) and an unexpired exp; anything else is verified in
 * full.  The cache lives in the worker and dies with it, so a new secret
 * (reload) starts empty.
 */

typedef struct {
    uint32_t         hash;
    uint32_t         len;
    u_char           token[NGX_COMMERCE_TOKEN_CACHE_LEN];
    cm_jwt_claims_t  claims;
} ngx_commerce_token_t;


static ngx_int_t ngx_commerce_auth_secret_file(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);
static ngx_int_t ngx_commerce_auth_verify(ngx_commerce_main_conf_t *mcf,
    ngx_str_t *token, cm_jwt_claims_t *claims, const char **reason);


static ngx_commerce_token_t  *ngx_commerce_auth_tokens;


ngx_int_t
ngx_commerce_auth_init_worker(ngx_cycle_t *cycle)
{
    ngx_commerce_auth_tokens = ngx_pcalloc(cycle->pool,
                                      NGX_COMMERCE_TOKEN_CACHE
                                      * sizeof(ngx_commerce_token_t));

    return ngx_commerce_auth_tokens ? NGX_OK : NGX_ERROR;
}


static ngx_int_t
ngx_commerce_auth_verify(ngx_commerce_main_conf_t *mcf, ngx_str_t *token,
    cm_jwt_claims_t *claims, const char **reason)
{
    size_t                 keylen;
    int64_t                now;
    uint32_t               hash, kid;
    const u_char          *key;
    const cm_key_t        *k;
    ngx_commerce_token_t  *e;

    now = (int64_t) ngx_time();
    e = NULL;

    if (ngx_commerce_auth_tokens != NULL
        && token->len <= NGX_COMMERCE_TOKEN_CACHE_LEN)
    {
        hash = ngx_murmur_hash2(token->data, token->len);
        e = &ngx_commerce_auth_tokens[hash % NGX_COMMERCE_TOKEN_CACHE];

        if (e->hash == hash && e->len == token->len
            && CRYPTO_memcmp(e->token, token->data, token->len) == 0
            && e->claims.exp > now - NGX_COMMERCE_JWT_LEEWAY)
        {
            *claims = e->claims;
            return NGX_OK;
        }
    }

    /* a token with a kid is checked with that key only, else the secret */

    if (cm_jwt_kid(token->data, token->len, &kid, reason) != 0) {
        return NGX_DECLINED;
    }

    if (kid != 0) {
        k = (mcf->jwt_keys != NULL) ? cm_keyring_find(mcf->jwt_keys, kid)
                                    : NULL;
        if (k == NULL) {
            *reason = "unknown kid";
            return NGX_DECLINED;
        }

        key = k->key;
        keylen = CM_KEY_LEN;

    } else if (mcf->jwt_secret.len) {
        key = mcf->jwt_secret.data;
        keylen = mcf->jwt_secret.len;

    } else {
        *reason = "missing kid";
        return NGX_DECLINED;
    }

    if (cm_jwt_verify(token->data, token->len, key, keylen, now,
                      NGX_COMMERCE_JWT_LEEWAY, claims, reason)
        != 0)
    {
        return NGX_DECLINED;
    }

    if (e != NULL) {
        e->hash = hash;
        e->len = token->len;
        ngx_memcpy(e->token, token->data, token->len);
        e->claims = *claims;
    }

    return NGX_OK;
}


ngx_int_t
ngx_commerce_auth_conf(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    if (mcf->jwt_secret.len && mcf->jwt_secret_file.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_jwt_secret\" and "
                           "\"commerce_jwt_secret_file\" are exclusive");
        return NGX_ERROR;
    }

    if (mcf->jwt_keys_file.len
        && ngx_commerce_conf_keyring(cf, "commerce_jwt_keys_file",
                                     &mcf->jwt_keys_file, &mcf->jwt_keys)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (mcf->jwt_secret_file.len) {
        return ngx_commerce_auth_secret_file(cf, mcf);
    }

    if (mcf->jwt_secret.len == 0 && mcf->jwt_keys != NULL) {
        return NGX_OK;
    }

    if (mcf->jwt_secret.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_jwt_secret\", "
                           "\"commerce_jwt_secret_file\" or "
                           "\"commerce_jwt_keys_file\" is required when "
                           "\"commerce_api\" is used");
        return NGX_ERROR;
    }

    if (mcf->jwt_secret.len < 16) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_jwt_secret\" must be at least "
                           "16 bytes long");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_commerce_auth_secret_file(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    size_t      size;
    ngx_str_t   text;

    if (ngx_commerce_conf_read_file(cf, "commerce_jwt_secret_file",
                                    &mcf->jwt_secret_file, 4096, 1, &text)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* a trailing newline from `echo secret > file` is not part of the key */
    size = text.len;

    while (size && (text.data[size - 1] == '\n'
                    || text.data[size - 1] == '\r'
                    || text.data[size - 1] == ' '))
    {
        size--;
    }

    if (size < 16) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_jwt_secret_file\": the secret in "
                           "\"%V\" must be at least 16 bytes long",
                           &mcf->jwt_secret_file);
        return NGX_ERROR;
    }

    mcf->jwt_secret.data = text.data;
    mcf->jwt_secret.len = size;

    return NGX_OK;
}


ngx_int_t
ngx_commerce_auth_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_str_t                  h;
    const char                *reason;
    ngx_commerce_ctx_t        *ctx;
    ngx_commerce_loc_conf_t   *lcf;
    ngx_commerce_main_conf_t  *mcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_commerce_module);
    if (!lcf->api || r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_commerce_reply_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->authenticated) {
        return NGX_OK;
    }

    /* a CORS preflight never carries credentials */
    if (r->method == NGX_HTTP_OPTIONS) {
        return NGX_DECLINED;
    }

    /*
     * Public paths take no token: signup, login, refresh and logout are
     * how one is obtained, and a gateway's callback proves itself.  An
     * unknown path asks for a token first, so that it tells nothing.
     */
    (void) ngx_commerce_router_match(r, ctx);

    if (ctx->route_public) {
        return NGX_DECLINED;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    reason = "missing bearer token";

    if (r->headers_in.authorization != NULL) {
        h = r->headers_in.authorization->value;

        if (h.len > sizeof("Bearer ") - 1
            && ngx_strncasecmp(h.data, (u_char *) "Bearer ",
                               sizeof("Bearer ") - 1) == 0)
        {
            h.data += sizeof("Bearer ") - 1;
            h.len -= sizeof("Bearer ") - 1;

            if (ngx_commerce_auth_verify(mcf, &h, &ctx->claims, &reason)
                == NGX_OK)
            {
                ctx->authenticated = 1;
                return NGX_OK;
            }
        }
    }

    ngx_commerce_log(NGX_LOG_INFO, r, ctx, "unauthorized: %s", reason);

    /* the body of a rejected request is never read: drop it */
    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    rc = ngx_commerce_reply_error(r, NGX_HTTP_UNAUTHORIZED, "UNAUTHORIZED",
                                 "missing, invalid or expired bearer token");

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}
