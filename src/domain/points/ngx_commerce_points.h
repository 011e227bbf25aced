
/* the points domain: its routes and statements */


#ifndef _NGX_COMMERCE_POINTS_H_INCLUDED_
#define _NGX_COMMERCE_POINTS_H_INCLUDED_


#include "ngx_commerce_http.h"


extern ngx_commerce_route_t  ngx_commerce_points_routes[];
extern ngx_commerce_stmt_t   ngx_commerce_points_statements[];


#endif /* _NGX_COMMERCE_POINTS_H_INCLUDED_ */
