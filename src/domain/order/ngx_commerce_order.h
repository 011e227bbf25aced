
/* the order domain: its routes, statements and the expiry of unpaid orders */


#ifndef _NGX_COMMERCE_ORDER_H_INCLUDED_
#define _NGX_COMMERCE_ORDER_H_INCLUDED_


#include "ngx_commerce_http.h"


extern ngx_commerce_route_t  ngx_commerce_order_routes[];
extern ngx_commerce_stmt_t   ngx_commerce_order_statements[];

ngx_int_t ngx_commerce_order_init(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);

/* sellers' parts and the shipping address (ngx_commerce_order_part.c) */
extern ngx_commerce_route_t  ngx_commerce_order_part_routes[];
extern ngx_commerce_stmt_t   ngx_commerce_order_part_statements[];

struct cm_address_req_s;

void ngx_commerce_order_part_init(ngx_commerce_main_conf_t *mcf);
ngx_int_t ngx_commerce_order_part_reserve(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, ngx_commerce_render_pt next);
char *ngx_commerce_order_part_sealed(ngx_http_request_t *r,
    struct cm_address_req_s *address, u_char *doc, size_t len);


#endif /* _NGX_COMMERCE_ORDER_H_INCLUDED_ */
