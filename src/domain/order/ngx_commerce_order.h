
/* the order domain: its routes, statements and the expiry of unpaid orders */


#ifndef _NGX_COMMERCE_ORDER_H_INCLUDED_
#define _NGX_COMMERCE_ORDER_H_INCLUDED_


#include "ngx_commerce_http.h"


extern ngx_commerce_route_t  ngx_commerce_order_routes[];
extern ngx_commerce_stmt_t   ngx_commerce_order_statements[];

ngx_int_t ngx_commerce_order_init(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);


#endif /* _NGX_COMMERCE_ORDER_H_INCLUDED_ */
