
/* the seller domain: stores, their managers, sellers' products and stock */


#ifndef _NGX_COMMERCE_SELLER_H_INCLUDED_
#define _NGX_COMMERCE_SELLER_H_INCLUDED_


#include "ngx_commerce_http.h"


extern ngx_commerce_route_t  ngx_commerce_seller_routes[];
extern ngx_commerce_stmt_t   ngx_commerce_seller_statements[];


#endif /* _NGX_COMMERCE_SELLER_H_INCLUDED_ */
