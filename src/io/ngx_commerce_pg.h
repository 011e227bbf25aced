
/*
 * The Postgres pool: per worker, non-blocking libpq connections on nginx
 * events, pipelined, with every registered statement prepared on each
 * connection.  The pool knows what a statement may do (its flags) and
 * nothing of what it means: each domain registers its own table of
 * statements (ngx_commerce_pg_register) at configuration time.
 */


#ifndef _NGX_COMMERCE_PG_H_INCLUDED_
#define _NGX_COMMERCE_PG_H_INCLUDED_


#include "ngx_commerce.h"
#include "ngx_commerce_shm.h"
#include <libpq-fe.h>


#define NGX_COMMERCE_PG_PARAMS_MAX    16
#define NGX_COMMERCE_PG_RETRIES_MAX   3
#define NGX_COMMERCE_PG_DEPTH_MAX     32

/* business errors raised by the SQL functions carry this SQLSTATE */
#define NGX_COMMERCE_SQLSTATE_BUSINESS  "CM001"


/* what a statement may do, as the pool needs to know */

/* changes nothing: pipelined behind reads, sent again on a lost connection */
#define NGX_COMMERCE_STMT_READ         0x01

/*
 * Safe to send again when the server closed the connection it ran on (it
 * changes only what it finds unchanged), but not when the pool gave up on
 * the connection: the old backend may still run it later.
 */
#define NGX_COMMERCE_STMT_RESEND       0x02


typedef struct ngx_commerce_stmt_s      ngx_commerce_stmt_t;
typedef struct ngx_commerce_pg_conn_s   ngx_commerce_pg_conn_t;
typedef struct ngx_commerce_pg_query_s  ngx_commerce_pg_query_t;


/*
 * A row of a statement table.  name is the prepared statement's name
 * (unique across all tables), sql calls one SQL function (sql/functions/).
 * idem, when set, is the same work with its answer stored under an
 * Idempotency-Key in the same transaction: it takes the user, the key and
 * the success status after this statement's own parameters.
 */

struct ngx_commerce_stmt_s {
    const char                  *name;
    const char                  *sql;
    int                          nparams;
    ngx_uint_t                   flags;
    ngx_commerce_stmt_t         *idem;

    ngx_uint_t                   index;      /* set by the registry */
};


/*
 * Outcome of a query, as seen by its owner:
 *   NGX_OK        res holds the final result (tuples or a server error);
 *   NGX_ERROR     the connection failed while the query ran;
 *   NGX_BUSY      no connection within queue bounds (length or timeout);
 *   NGX_DECLINED  no usable connection at all (Postgres down).
 * res is cleared by the pool after the handler returns.
 */
typedef void (*ngx_commerce_pg_handler_pt)(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);


struct ngx_commerce_pg_query_s {
    /*
     * Room for integer parameters (ngx_commerce_pg_int), used in turn, so
     * that making one cannot fail; kept by ngx_commerce_pg_reset().
     */
    char                         ints[NGX_COMMERCE_PG_PARAMS_MAX]
                                     [NGX_INT64_LEN + 2];
    ngx_uint_t                   nints;

    ngx_commerce_stmt_t         *stmt;
    int                          nparams;
    const char                  *params[NGX_COMMERCE_PG_PARAMS_MAX];

    ngx_uint_t                   retries;      /* after 40001/40P01 */
    ngx_msec_t                   lost;         /* first lost connection */
    ngx_msec_t                   queued_at;    /* into the pool's queue */
    int                          backend_pid;  /* of the last send */
    ngx_commerce_pg_conn_t      *conn;
    ngx_queue_t                  queue;
    ngx_event_t                  wait;
    unsigned                     queued:1;
    unsigned                     resent:1;

    ngx_log_t                   *log;
    void                        *data;
    ngx_commerce_pg_handler_pt   handler;
};


/* configuration (ngx_commerce_pg_conf.c) */
ngx_int_t ngx_commerce_pg_conf_check(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);
ngx_int_t ngx_commerce_pg_register(ngx_conf_t *cf,
    ngx_commerce_stmt_t *table);

/* parameters (ngx_commerce_pg_conf.c) */
const char *ngx_commerce_pg_int(ngx_commerce_pg_query_t *q, int64_t v);
ngx_int_t ngx_commerce_pg_listen(ngx_conf_t *cf, const char *channel,
    ngx_commerce_notify_pt notify, ngx_commerce_listening_pt listening);
void ngx_commerce_pg_reset(ngx_commerce_pg_query_t *q);
ngx_int_t ngx_commerce_pg_int_result(PGresult *res, int64_t *out);

/* the pool (ngx_commerce_pg.c) */
ngx_int_t ngx_commerce_pg_init_worker(ngx_cycle_t *cycle,
    ngx_commerce_main_conf_t *mcf);
void ngx_commerce_pg_exit_worker(ngx_commerce_main_conf_t *mcf);
ngx_int_t ngx_commerce_pg_submit(ngx_commerce_pg_pool_t *pool,
    ngx_commerce_pg_query_t *q);
void ngx_commerce_pg_cancel(ngx_commerce_pg_query_t *q);


#endif /* _NGX_COMMERCE_PG_H_INCLUDED_ */
