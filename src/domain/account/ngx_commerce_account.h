
/* the account domain: signup, login, tokens, roles, the audit log */


#ifndef _NGX_COMMERCE_ACCOUNT_H_INCLUDED_
#define _NGX_COMMERCE_ACCOUNT_H_INCLUDED_


#include "ngx_commerce_http.h"
#include "cm_account.h"
#include "cm_pwhash.h"
#include "cm_token.h"


extern ngx_commerce_route_t  ngx_commerce_account_routes[];
extern ngx_commerce_stmt_t   ngx_commerce_account_statements[];

ngx_int_t ngx_commerce_account_conf(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);


#endif /* _NGX_COMMERCE_ACCOUNT_H_INCLUDED_ */
