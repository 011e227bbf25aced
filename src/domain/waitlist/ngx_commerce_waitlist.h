
/* the waitlist domain: its routes, statements and the expiry of holds */


#ifndef _NGX_COMMERCE_WAITLIST_H_INCLUDED_
#define _NGX_COMMERCE_WAITLIST_H_INCLUDED_


#include "ngx_commerce_http.h"


extern ngx_commerce_route_t  ngx_commerce_waitlist_routes[];
extern ngx_commerce_stmt_t   ngx_commerce_waitlist_statements[];

ngx_int_t ngx_commerce_waitlist_init(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);


#endif /* _NGX_COMMERCE_WAITLIST_H_INCLUDED_ */
