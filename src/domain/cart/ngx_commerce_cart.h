
/* the cart domain: a buyer's cart and address book (issue 12) */


#ifndef _NGX_COMMERCE_CART_H_INCLUDED_
#define _NGX_COMMERCE_CART_H_INCLUDED_


#include "ngx_commerce_http.h"


extern ngx_commerce_route_t  ngx_commerce_cart_routes[];
extern ngx_commerce_stmt_t   ngx_commerce_cart_statements[];

/* the address book (ngx_commerce_cart_address.c) */
extern ngx_commerce_route_t  ngx_commerce_cart_address_routes[];
extern ngx_commerce_stmt_t   ngx_commerce_cart_address_statements[];


#endif /* _NGX_COMMERCE_CART_H_INCLUDED_ */
