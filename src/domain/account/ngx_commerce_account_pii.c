
/*
 * The personal data of an account: encrypted at rest (src/lib/cm_pii.c,
 * the commerce_pii_keys_file keyring), decrypted for its owner only.
 */


#include "ngx_commerce_account.h"


/* {"id","email","name","phone","role","createdAt"}, decrypted for its owner */

ngx_int_t
ngx_commerce_account_pii_profile(ngx_commerce_account_req_t *a, yajl_val v)
{
    int64_t      id;
    u_char      *body, *p, *last;
    size_t       size;
    ngx_str_t    email, phone, name, role, created;
    const char  *s;

    if (ngx_commerce_json_id(v, "id", &id) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    a->user_id = id;

    if (a->step == NGX_COMMERCE_ACCT_SIGNUP) {
        /* what the buyer just sent */
        email.data = (u_char *) a->email;
        email.len = a->email_len;
        phone.data = (u_char *) a->phone;
        phone.len = a->phone_len;
        name.data = (u_char *) a->name;
        name.len = a->name_len;

    } else {
        if (ngx_commerce_account_pii_open(a->r, "users.email", id,
                                      yajl_tree_get(v, (const char *[])
                                                    { "emailCt", NULL },
                                                    yajl_t_any),
                                      &email)
            != NGX_OK
            || ngx_commerce_account_pii_open(a->r, "users.phone", id,
                                         yajl_tree_get(v, (const char *[])
                                                       { "phoneCt", NULL },
                                                       yajl_t_any),
                                         &phone)
               != NGX_OK
            || ngx_commerce_account_pii_open(a->r, "users.name", id,
                                         yajl_tree_get(v, (const char *[])
                                                       { "nameCt", NULL },
                                                       yajl_t_any),
                                         &name)
               != NGX_OK)
        {
            ngx_commerce_log(NGX_LOG_ERR, a->r, a->ctx,
                             "user %L: personal data does not decrypt", id);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (name.data == NULL) {
            /* a demo user from before accounts: the name in plain text */
            s = ngx_commerce_json_string(v, "name");
            if (s != NULL) {
                name.data = (u_char *) s;
                name.len = ngx_strlen(s);
            }
        }
    }

    s = ngx_commerce_json_string(v, "role");
    role.data = (u_char *) (s ? s : "CONSUMER");
    role.len = ngx_strlen(role.data);

    s = ngx_commerce_json_string(v, "createdAt");
    created.data = (u_char *) s;
    created.len = s ? ngx_strlen(s) : 0;

    size = 128 + 6 * (email.len + phone.len + name.len) + role.len
           + created.len;

    body = ngx_pnalloc(a->r->pool, size);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last = body + size;

    p = ngx_slprintf(body, last, "{\"id\":%L", id);
    p = ngx_commerce_json_put(p, last, "email", &email);
    p = ngx_commerce_json_put(p, last, "name", &name);
    p = ngx_commerce_json_put(p, last, "phone", &phone);
    p = ngx_commerce_json_put(p, last, "role", &role);
    p = ngx_commerce_json_put(p, last, "createdAt", &created);

    if (p >= last) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *p++ = '}';

    return ngx_commerce_reply(a->r, a->step == NGX_COMMERCE_ACCT_SIGNUP
                                    ? NGX_HTTP_CREATED : NGX_HTTP_OK,
                              body, p - body);
}


char *
ngx_commerce_account_pii_encrypt(ngx_commerce_account_req_t *a, const char *field,
    const char *pt, size_t len)
{
    return ngx_commerce_account_pii_seal(a->r, field, a->user_id, pt, len);
}


/*
 * pt encrypted under the current PII key, bound to column field ("users.
 * email") of row id: the text for the database, in the request's pool,
 * or NULL.  Any domain's personal data goes through here (stores'
 * settlement accounts too).
 */

char *
ngx_commerce_account_pii_seal(ngx_http_request_t *r, const char *field,
    int64_t id, const char *pt, size_t len)
{
    char                       aad[64];
    char                      *out;
    size_t                     n, alen, size;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (mcf->pii_keys == NULL) {
        return NULL;
    }

    alen = cm_pii_aad(aad, sizeof(aad), field, id);
    if (alen == 0) {
        return NULL;
    }

    size = CM_PII_TEXT_LEN(len);

    out = ngx_pnalloc(r->pool, size);
    if (out == NULL) {
        return NULL;
    }

    n = cm_pii_encrypt(out, size, mcf->pii_keys, (const unsigned char *) aad,
                       alen, (const unsigned char *) pt, len);

    return n ? out : NULL;
}


/*
 * The reverse of ngx_commerce_account_pii_seal: ct (a JSON string, or
 * null: out->data NULL) of column field of row id, decrypted into out in
 * the request's pool.  Any domain's personal data comes back through
 * here.
 */

ngx_int_t
ngx_commerce_account_pii_open(ngx_http_request_t *r, const char *field,
    int64_t id, yajl_val ct, ngx_str_t *out)
{
    char                       aad[64];
    size_t                     alen, len;
    const char                *text, *why;
    ngx_commerce_ctx_t        *ctx;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    out->data = NULL;
    out->len = 0;

    if (ct == NULL || YAJL_IS_NULL(ct)) {
        return NGX_OK;
    }

    text = YAJL_GET_STRING(ct);
    if (text == NULL || mcf->pii_keys == NULL) {
        return NGX_ERROR;
    }

    alen = cm_pii_aad(aad, sizeof(aad), field, id);
    len = ngx_strlen(text);

    out->data = ngx_pnalloc(r->pool, len + 1);
    if (alen == 0 || out->data == NULL) {
        return NGX_ERROR;
    }

    if (cm_pii_decrypt(out->data, len + 1, &out->len, mcf->pii_keys,
                       (const unsigned char *) aad, alen, text, len, NULL,
                       &why)
        != 0)
    {
        ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_module);
        if (ctx != NULL) {
            ngx_commerce_log(NGX_LOG_ERR, r, ctx, "%s: %s", field, why);
        }

        return NGX_ERROR;
    }

    return NGX_OK;
}
