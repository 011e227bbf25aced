
/* the account domain: signup, login, tokens, roles, the audit log */


#ifndef _NGX_COMMERCE_ACCOUNT_H_INCLUDED_
#define _NGX_COMMERCE_ACCOUNT_H_INCLUDED_


#include "ngx_commerce_http.h"
#include "cm_account.h"
#include "cm_pwhash.h"
#include "cm_token.h"


#define NGX_COMMERCE_PASSWORD_BYTES  1024   /* 256 characters of UTF-8 */
#define NGX_COMMERCE_NAME_BYTES      400
#define NGX_COMMERCE_ACCESS_LEN      1024


enum {
    NGX_COMMERCE_STMT_USER_NEXT_ID = 0,
    NGX_COMMERCE_STMT_SIGNUP,
    NGX_COMMERCE_STMT_LOGIN_LOOKUP,
    NGX_COMMERCE_STMT_LOGIN_FINISH,
    NGX_COMMERCE_STMT_REFRESH_ROTATE,
    NGX_COMMERCE_STMT_LOGOUT,
    NGX_COMMERCE_STMT_USER_GET,
    NGX_COMMERCE_STMT_USER_WITHDRAW,
    NGX_COMMERCE_STMT_ROLE_SET,
    NGX_COMMERCE_STMT_PASSWORD_REHASH,
    NGX_COMMERCE_STMT_AUDIT_LIST,
    NGX_COMMERCE_ACCOUNT_NSTMT
};


typedef enum {
    NGX_COMMERCE_ACCT_NEXT_ID = 0,
    NGX_COMMERCE_ACCT_SIGNUP,
    NGX_COMMERCE_ACCT_LOOKUP,
    NGX_COMMERCE_ACCT_LOGIN,
    NGX_COMMERCE_ACCT_REHASH,
    NGX_COMMERCE_ACCT_REFRESH,
    NGX_COMMERCE_ACCT_LOGOUT,
    NGX_COMMERCE_ACCT_ME,
    NGX_COMMERCE_ACCT_WITHDRAW,
    NGX_COMMERCE_ACCT_PASS
} ngx_commerce_account_step_e;


typedef struct {
    ngx_http_request_t        *r;
    ngx_commerce_ctx_t        *ctx;
    ngx_commerce_account_step_e   step;

    /* the body's fields (NUL-terminated) */
    char                       email[CM_EMAIL_MAX + 1];
    char                       password[NGX_COMMERCE_PASSWORD_BYTES + 1];
    char                       name[NGX_COMMERCE_NAME_BYTES + 1];
    char                       phone[CM_PHONE_MAX + 1];
    size_t                     email_len;
    size_t                     password_len;
    size_t                     name_len;
    size_t                     phone_len;

    char                       index[CM_PII_INDEX_LEN];
    char                       refresh[CM_TOKEN_LEN + 1];
    char                       refresh_hash[CM_TOKEN_HASH_LEN + 1];

    int64_t                    user_id;
    char                       role[CM_JWT_ROLE_LEN];
    char                       client[NGX_SOCKADDR_STRLEN + 1];

    /* the thread's work: make a hash, or check one (NULL: no account) */
    unsigned                   make:1;
    char                      *stored;
    char                       hash[CM_PWHASH_LEN];
    int                        hash_rc;
    ngx_commerce_task_t        task;    /* on the thread pool */
    int                        rehash;     /* made with other parameters */
    cm_pwhash_params_t         kdf;
} ngx_commerce_account_req_t;


extern ngx_commerce_route_t  ngx_commerce_account_routes[];
extern ngx_commerce_stmt_t   ngx_commerce_account_statements[];

ngx_int_t ngx_commerce_account_conf(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);

/* personal data (ngx_commerce_account_pii.c) */
ngx_int_t ngx_commerce_account_pii_profile(ngx_commerce_account_req_t *a,
    yajl_val v);
char *ngx_commerce_account_pii_encrypt(ngx_commerce_account_req_t *a,
    const char *field, const char *value, size_t len);
char *ngx_commerce_account_pii_seal(ngx_http_request_t *r, const char *field,
    int64_t id, const char *value, size_t len);
ngx_int_t ngx_commerce_account_pii_open(ngx_http_request_t *r,
    const char *field, int64_t id, yajl_val ct, ngx_str_t *out);


#endif /* _NGX_COMMERCE_ACCOUNT_H_INCLUDED_ */
