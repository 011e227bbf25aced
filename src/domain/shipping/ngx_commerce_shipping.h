
/*
 * The shipping domain (issue 13 sections 1 and 2): a seller part's way to
 * the buyer through a carrier, and its purchase confirmation.  The routes
 * and handlers (ngx_commerce_shipping.c), the directive
 * (ngx_commerce_shipping_conf.c), the carrier's client, its callback and
 * the jobs (ngx_commerce_shipping_carrier.c).  The states and what they
 * write are Postgres' (sql/functions/71_shipping.sql).
 */


#ifndef _NGX_COMMERCE_SHIPPING_H_INCLUDED_
#define _NGX_COMMERCE_SHIPPING_H_INCLUDED_


#include "ngx_commerce_http.h"
#include "ngx_commerce_client.h"


/* commerce_shipping's parameters, mcf->shipping */
typedef struct {
    ngx_str_t                    gateway_name;   /* empty: no carrier */
    ngx_commerce_gateway_t      *gw;
    ngx_str_t                    key;            /* the carrier's t_key */
    ngx_str_t                    callback_url;
    time_t                       poll_after;     /* s */
    time_t                       lease;          /* s */
    time_t                       confirm_after;  /* s */
    ngx_msec_t                   interval;
    ngx_uint_t                   points_bp;      /* basis points */
    ngx_uint_t                   batch;
    ngx_uint_t                   configured;
} ngx_commerce_shipping_conf_t;


extern ngx_commerce_route_t  ngx_commerce_shipping_routes[];
extern ngx_commerce_stmt_t   ngx_commerce_shipping_statements[];

/* the statements, shared by the domain's files */
enum {
    NGX_COMMERCE_STMT_SHIP_PREPARE = 0,
    NGX_COMMERCE_STMT_SHIP_SHIP,
    NGX_COMMERCE_STMT_SHIP_CONFIRM,
    NGX_COMMERCE_STMT_SHIP_DUE,
    NGX_COMMERCE_STMT_SHIP_REGISTERED,
    NGX_COMMERCE_STMT_SHIP_TRACK,
    NGX_COMMERCE_STMT_SHIP_AUTOCONFIRM,
    NGX_COMMERCE_SHIPPING_NSTMT
};

/* the directive and its defaults (ngx_commerce_shipping_conf.c) */
char *ngx_commerce_shipping_conf_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_commerce_shipping_conf_t *ngx_commerce_shipping_conf_get(void);
ngx_int_t ngx_commerce_shipping_conf_init(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);

/* the carrier (ngx_commerce_shipping_carrier.c) */
ngx_int_t ngx_commerce_shipping_carrier_jobs(ngx_conf_t *cf,
    ngx_commerce_shipping_conf_t *scf);
ngx_int_t ngx_commerce_shipping_carrier_pull(
    ngx_commerce_shipping_conf_t *scf, const char *carrier, u_char *number,
    size_t len);


#endif /* _NGX_COMMERCE_SHIPPING_H_INCLUDED_ */
