
/* the API's own description: conf/openapi.json, served as it is */


#ifndef _NGX_COMMERCE_API_H_INCLUDED_
#define _NGX_COMMERCE_API_H_INCLUDED_


#include "ngx_commerce_http.h"


extern ngx_commerce_route_t  ngx_commerce_api_routes[];

ngx_int_t ngx_commerce_api_conf(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);


#endif /* _NGX_COMMERCE_API_H_INCLUDED_ */
