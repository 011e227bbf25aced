
/* the seller domain: stores, their managers, sellers' products and stock */


#ifndef _NGX_COMMERCE_SELLER_H_INCLUDED_
#define _NGX_COMMERCE_SELLER_H_INCLUDED_


#include "ngx_commerce_http.h"


/* who may call the seller's routes (the database decides which store) */
#define NGX_COMMERCE_SELLER_ROLES                                             \
    (CM_ROLE_SELLER|CM_ROLE_MANAGER|CM_ROLE_ADMIN)


extern ngx_commerce_route_t  ngx_commerce_seller_routes[];
extern ngx_commerce_stmt_t   ngx_commerce_seller_statements[];

/* products' images (ngx_commerce_seller_image.c) */
extern ngx_commerce_route_t  ngx_commerce_seller_image_routes[];
extern ngx_commerce_stmt_t   ngx_commerce_seller_image_statements[];

ngx_int_t ngx_commerce_seller_image_conf(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);

/* the image directory's sweep (ngx_commerce_seller_sweep.c) */
ngx_int_t ngx_commerce_seller_sweep_conf(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);

/* shared by the seller's files (ngx_commerce_seller.c) */
ngx_int_t ngx_commerce_seller_run(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, ngx_commerce_stmt_t *stmt, ngx_uint_t status,
    int n, const char **params);
char *ngx_commerce_seller_client(ngx_http_request_t *r);


#endif /* _NGX_COMMERCE_SELLER_H_INCLUDED_ */
