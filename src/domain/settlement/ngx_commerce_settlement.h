
/*
 * The settlement domain (issue 13 section 4): the weekly settlement of
 * the sellers' confirmed parts, its payouts through the payout API (a
 * named gateway), the sellers' statements with their tax invoices, the
 * operators' dead payouts.  The money rules are Postgres'
 * (sql/functions/73_settlement.sql).
 */


#ifndef _NGX_COMMERCE_SETTLEMENT_H_INCLUDED_
#define _NGX_COMMERCE_SETTLEMENT_H_INCLUDED_


#include "ngx_commerce_http.h"
#include "ngx_commerce_client.h"


enum {
    NGX_COMMERCE_STMT_SETTLEMENT_RUN = 0,
    NGX_COMMERCE_STMT_SETTLEMENT_RUN_AT,
    NGX_COMMERCE_STMT_SETTLEMENT_LIST,
    NGX_COMMERCE_STMT_SETTLEMENT_GET,
    NGX_COMMERCE_STMT_PAYOUT_CLAIM,
    NGX_COMMERCE_STMT_PAYOUT_RESULT,
    NGX_COMMERCE_STMT_PAYOUT_CALLBACK,
    NGX_COMMERCE_STMT_PAYOUT_DEAD,
    NGX_COMMERCE_STMT_PAYOUT_REPLAY,
    NGX_COMMERCE_SETTLEMENT_NSTMT
};


/* commerce_settlement's parameters (ngx_commerce_settlement_conf.c) */
typedef struct {
    ngx_commerce_gateway_t       peer;          /* the payout API */
    ngx_uint_t                   peer_ready;    /* per worker (worker 0) */
    ngx_str_t                    callback_url;
    time_t                       hold;          /* s after confirmation */
    ngx_uint_t                   fee_bp;        /* 1/10000 of the gross */
    ngx_uint_t                   minimum;       /* won */
    ngx_msec_t                   interval;      /* of both jobs */
    ngx_uint_t                   retries;
    time_t                       check;         /* s: pull a pending one */
    ngx_flag_t                   weekly;        /* the weekly run's job */
} ngx_commerce_settlement_conf_t;


extern ngx_commerce_route_t  ngx_commerce_settlement_routes[];
extern ngx_commerce_stmt_t   ngx_commerce_settlement_statements[];

/* configuration (ngx_commerce_settlement_conf.c) */
char *ngx_commerce_settlement_conf_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_commerce_settlement_conf_init(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);
ngx_commerce_settlement_conf_t *ngx_commerce_settlement_conf_get(
    ngx_commerce_main_conf_t *mcf);

/* the jobs: the weekly run and the payouts (ngx_commerce_settlement_job.c) */
ngx_int_t ngx_commerce_settlement_job_init(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf, ngx_commerce_settlement_conf_t *scf);


#endif /* _NGX_COMMERCE_SETTLEMENT_H_INCLUDED_ */
