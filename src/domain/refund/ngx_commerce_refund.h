
/*
 * The refund domain (issue 13 section 3): cancellations before shipping,
 * returns after delivery, and the refunds of both.
 *
 *   ngx_commerce_refund.c       the routes, their bodies and statements
 *   ngx_commerce_refund_job.c   the directive and the job that carries out
 *                               gateway refunds (partial cancels) with
 *                               the payment domain's client and log
 */


#ifndef _NGX_COMMERCE_REFUND_H_INCLUDED_
#define _NGX_COMMERCE_REFUND_H_INCLUDED_


#include "ngx_commerce_http.h"


/* commerce_refund interval=.. attempts=.. backoff=.. lease=.. batch=.. */
typedef struct {
    ngx_msec_t                   interval;
    ngx_uint_t                   attempts;
    time_t                       backoff;
    time_t                       lease;
    ngx_uint_t                   batch;
} ngx_commerce_refund_conf_t;


enum {
    NGX_COMMERCE_STMT_ORDER_CANCEL = 0,
    NGX_COMMERCE_STMT_ORDER_CANCEL_IDEM,
    NGX_COMMERCE_STMT_RETURN_REQUEST,
    NGX_COMMERCE_STMT_RETURN_REQUEST_IDEM,
    NGX_COMMERCE_STMT_RETURN_GET,
    NGX_COMMERCE_STMT_RETURN_LIST,
    NGX_COMMERCE_STMT_RETURN_APPROVE,
    NGX_COMMERCE_STMT_RETURN_REJECT,
    NGX_COMMERCE_STMT_RETURN_RESTOCK,
    NGX_COMMERCE_STMT_REFUND_DUE,
    NGX_COMMERCE_STMT_REFUND_DONE,
    NGX_COMMERCE_REFUND_NSTMT
};


extern ngx_commerce_route_t  ngx_commerce_refund_routes[];
extern ngx_commerce_stmt_t   ngx_commerce_refund_statements[];

/* the directive and the job (ngx_commerce_refund_job.c) */
char *ngx_commerce_refund_job_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_commerce_refund_job_init(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);


#endif /* _NGX_COMMERCE_REFUND_H_INCLUDED_ */
