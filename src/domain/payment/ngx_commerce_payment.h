
/*
 * The payment domain: card, easy-pay (EASY_PAY) and transfer (TRANSFER)
 * payments through external payment gateways, one flow for the three.
 *
 *   ngx_commerce_pay.c        the request flow and its route
 *   ngx_commerce_pay_stmt.c   the statements of the domain
 *   ngx_commerce_callback.c   gateways' callbacks (a hint, verified by GET)
 *   ngx_commerce_settle.c     settling forward-only, net-cancels
 *   ngx_commerce_paylog.c     the interface log of every exchange
 *   ngx_commerce_reconcile.c  the job that settles what nobody settled
 */


#ifndef _NGX_COMMERCE_PAYMENT_H_INCLUDED_
#define _NGX_COMMERCE_PAYMENT_H_INCLUDED_


#include "ngx_commerce_http.h"
#include "ngx_commerce_client.h"
#include "cm_sig.h"


typedef struct ngx_commerce_pay_s  ngx_commerce_pay_t;


#define NGX_COMMERCE_PAY_REQUEST   0
#define NGX_COMMERCE_PAY_SETTLE    1

#define NGX_COMMERCE_KEY_MAX       128


typedef enum {
    NGX_COMMERCE_STEP_BEGIN = 0,
    NGX_COMMERCE_STEP_SEND,
    NGX_COMMERCE_STEP_GATEWAY,
    NGX_COMMERCE_STEP_ACCEPTED,
    NGX_COMMERCE_STEP_ABORT,
    NGX_COMMERCE_STEP_DECLINED,
    NGX_COMMERCE_STEP_ORDER,
    NGX_COMMERCE_STEP_LOOKUP,
    NGX_COMMERCE_STEP_ASK,
    NGX_COMMERCE_STEP_SETTLE,
    NGX_COMMERCE_STEP_CANCEL,
    NGX_COMMERCE_STEP_CANCELLED,
    NGX_COMMERCE_STEP_DUE
} ngx_commerce_step_e;


struct ngx_commerce_pay_s {
    ngx_pool_t                 *pool;
    ngx_log_t                  *log;
    ngx_http_request_t         *r;
    ngx_commerce_ctx_t         *ctx;
    ngx_uint_t                  kind;
    ngx_commerce_step_e         step;

    ngx_commerce_gateway_t     *gw;
    int                         permit;
    ngx_uint_t                  attempt;
    ngx_uint_t                  gw_changed;
    ngx_uint_t                  timed_out;

    int64_t                     user_id;
    int64_t                     order_id;
    int64_t                     payment_id;
    int64_t                     amount;
    int64_t                     age;

    ngx_str_t                   key;
    ngx_str_t                   order_json;
    ngx_str_t                   settle_status;
    ngx_str_t                   settle_reason;
    ngx_str_t                   err_code;

    cm_order_req_t             *order;
    cm_payment_req_t            card;

    ngx_commerce_client_t         http;
    ngx_commerce_pg_query_t     query;
    ngx_event_t                 retry;
    ngx_http_cleanup_t         *cleanup;
    unsigned                    nomem:1;    /* a parameter failed */
};


typedef struct {
    ngx_pool_t                 *pool;
    ngx_commerce_pg_query_t     query;
} ngx_commerce_log_query_t;


enum {
    NGX_COMMERCE_STMT_CARD_BEGIN = 0,
    NGX_COMMERCE_STMT_CARD_BEGIN_POINTS,
    NGX_COMMERCE_STMT_ORDER_CREATE_CARD,
    NGX_COMMERCE_STMT_ORDER_CREATE_CARD_CART,
    NGX_COMMERCE_STMT_ORDER_CREATE_CARD_POINTS,
    NGX_COMMERCE_STMT_CARD_ACCEPTED,
    NGX_COMMERCE_STMT_CARD_GATEWAY,
    NGX_COMMERCE_STMT_CARD_CANCEL_DUE,
    NGX_COMMERCE_STMT_CARD_STATS,
    NGX_COMMERCE_STMT_CARD_ABORT,
    NGX_COMMERCE_STMT_CARD_SETTLE,
    NGX_COMMERCE_STMT_CARD_CANCELLED,
    NGX_COMMERCE_STMT_CARD_DUE,
    NGX_COMMERCE_STMT_CARD_TIMEOUT,
    NGX_COMMERCE_STMT_CARD_CALLBACK,
    NGX_COMMERCE_STMT_CARD_ORDER,
    NGX_COMMERCE_STMT_PG_LOG,
    NGX_COMMERCE_STMT_TRANSFER_ISSUED,
    NGX_COMMERCE_PAYMENT_NSTMT
};


extern ngx_commerce_route_t  ngx_commerce_payment_routes[];
extern ngx_commerce_stmt_t   ngx_commerce_payment_statements[];

/*
 * the request flow (ngx_commerce_pay.c); a new order's items are ids, qty
 * and vids (array literals), or, with ids NULL, the cart's lines: vids the
 * selected variants, NULL for every line
 */
ngx_int_t ngx_commerce_pay_card_start(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, int64_t order_id, const char *ids,
    const char *qty, const char *vids, const char *coupon,
    cm_payment_req_t *card);
ngx_commerce_pay_t *ngx_commerce_pay_create(ngx_log_t *log);
void ngx_commerce_pay_destroy(ngx_commerce_pay_t *pay);
ngx_int_t ngx_commerce_pay_query(ngx_commerce_pay_t *pay,
    ngx_commerce_pg_handler_pt done, ngx_uint_t stmt,
    ngx_commerce_step_e step, int n, ...);
char *ngx_commerce_pay_cstr(ngx_commerce_pay_t *pay, ngx_str_t *s);
ngx_int_t ngx_commerce_pay_result(ngx_commerce_pay_t *pay, ngx_int_t rc,
    PGresult *res, u_char **doc, size_t *len);

/* callbacks (ngx_commerce_callback.c) */
ngx_int_t ngx_commerce_callback_handler(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);

/* settling (ngx_commerce_settle.c) */
void ngx_commerce_settle_start(ngx_commerce_pay_t *pay);
void ngx_commerce_settle_ask(ngx_commerce_pay_t *pay);
void ngx_commerce_settle_decided(ngx_commerce_pay_t *pay, PGresult *res);
void ngx_commerce_settle_cancel(ngx_commerce_pay_t *pay);
ngx_int_t ngx_commerce_settle_cancel_send(ngx_commerce_pay_t *pay,
    ngx_str_t *body, ngx_commerce_client_handler_pt handler, void *data);
void ngx_commerce_settle_db_done(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res);

/* the interface log (ngx_commerce_paylog.c) */
void ngx_commerce_paylog(ngx_commerce_pay_t *pay, ngx_commerce_op_e op,
    const char *dir);
void ngx_commerce_paylog_row(ngx_commerce_pay_t *pay, const char *op,
    const char *dir, ngx_str_t *method, ngx_str_t *uri, ngx_int_t status,
    ngx_msec_t latency, ngx_str_t *req, ngx_str_t *resp, const char *err);

/* the reconciler (ngx_commerce_reconcile.c) */
ngx_int_t ngx_commerce_reconcile_init(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);


#endif /* _NGX_COMMERCE_PAYMENT_H_INCLUDED_ */
