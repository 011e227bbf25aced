
/*
 * Idempotency-Key (IETF draft-ietf-httpapi-idempotency-key-header) on
 * the routes whose row has NGX_COMMERCE_ROUTE_IDEM (today POST
 * /balance/charge, POST /orders and POST /orders/{id}/payment).
 *
 * Before the operation, cm_idem_begin() claims the key for the user with a
 * hash of the request: the first request with a key runs ("new"); the same
 * key and the same request later gets the first answer again ("replay",
 * with Idempotent-Replayed: true); the same key with another request is
 * 422; a request with the key still running is 409.  The answer of a
 * request that ran is stored by cm_idem_finish() *before* it is sent, so a
 * client that retries on a lost response always finds it; a 5xx answer
 * frees the key instead, so the client may try again.
 */


#include "ngx_commerce_http.h"

#include <openssl/evp.h>
#include <yajl/yajl_tree.h>


#define NGX_COMMERCE_IDEM_KEY_MAX  255
#define NGX_COMMERCE_IDEM_SETTLES  4    /* cm_idem_abandon calls at most */


enum {
    NGX_COMMERCE_STMT_IDEM_BEGIN = 0,
    NGX_COMMERCE_STMT_IDEM_PURGE,
    NGX_COMMERCE_STMT_IDEM_FINISH,
    NGX_COMMERCE_STMT_IDEM_ABANDON,
    NGX_COMMERCE_IDEM_NSTMT
};


#define NGX_COMMERCE_PURGE_BATCH   10000
#define NGX_COMMERCE_PURGE_EVERY   600000      /* ms */


typedef struct {
    ngx_commerce_job_t          job;
    ngx_commerce_pg_query_t     query;
    ngx_commerce_main_conf_t   *mcf;
} ngx_commerce_idem_purge_t;


typedef struct {
    const char                *state;   /* "" when there is none */
    ngx_uint_t                 status;  /* 0: no stored answer */
    u_char                    *body;
    size_t                     len;
} ngx_commerce_idem_result_t;


/*
 * What a request does about a client that leaves while it waits (for the
 * database, a gateway or a hashing thread).  Usually it ends at once
 * (ngx_http_test_reading) and whatever it was waiting for is cancelled.
 * While an Idempotency-Key is claimed for it, it runs to its end instead
 * (ngx_http_block_reading): the client that timed out is exactly the one
 * that retries with the key, and that retry must find the answer stored,
 * not a key left claimed (409) for 24 h.  The work is bounded by the queue,
 * statement and gateway timeouts; the closed socket is found when the
 * answer is written.
 */

void
ngx_commerce_idem_watch_client(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx)
{
    r->read_event_handler = (ctx != NULL
                             && ctx->idem != NGX_COMMERCE_IDEM_NONE)
                            ? ngx_http_block_reading : ngx_http_test_reading;
}


static void ngx_commerce_idem_begun(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res);
static void ngx_commerce_idem_finished(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static void ngx_commerce_idem_abandoned(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);


static ngx_int_t ngx_commerce_idem_store(ngx_http_request_t *r,
    ngx_uint_t status, u_char *body, size_t len);
static ngx_int_t ngx_commerce_idem_purge(ngx_commerce_job_t *job);
static void ngx_commerce_idem_purged(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);


static ngx_commerce_stmt_t  ngx_commerce_idem_statements[] = {

    [NGX_COMMERCE_STMT_IDEM_BEGIN] =
    { "cm_idem_begin",
      "SELECT cm_idem_begin($1::bigint, $2::text, $3::text, $4::text)", 4, 0,
      NULL, 0 },

    [NGX_COMMERCE_STMT_IDEM_PURGE] =
    { "cm_idem_purge", "SELECT cm_idem_purge($1::int)", 1, 0, NULL, 0 },

    /*
     * Storing or settling an answer changes only a key still IN_FLIGHT:
     * sent again when the server closed the connection it ran on.
     */
    [NGX_COMMERCE_STMT_IDEM_FINISH] =
    { "cm_idem_finish",
      "SELECT cm_idem_finish($1::bigint, $2::text, $3::int, $4::text)", 4,
      NGX_COMMERCE_STMT_RESEND, NULL, 0 },

    [NGX_COMMERCE_STMT_IDEM_ABANDON] =
    { "cm_idem_abandon",
      "SELECT cm_idem_abandon($1::bigint, $2::text, $3::int, $4::int)", 4,
      NGX_COMMERCE_STMT_RESEND, NULL, 0 },

    [NGX_COMMERCE_IDEM_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


/* the key statements, and the purge of keys older than 24 h, a job */

ngx_int_t
ngx_commerce_idem_init(ngx_conf_t *cf)
{
    ngx_commerce_idem_purge_t  *pu;

    if (ngx_commerce_pg_register(cf, ngx_commerce_idem_statements)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    pu = ngx_pcalloc(cf->pool, sizeof(ngx_commerce_idem_purge_t));
    if (pu == NULL) {
        return NGX_ERROR;
    }

    pu->mcf = ngx_http_conf_get_module_main_conf(cf,
                                                 ngx_http_commerce_module);
    pu->job.name = "Idempotency-Key purge";
    pu->job.first = 1000;
    pu->job.interval = NGX_COMMERCE_PURGE_EVERY;
    pu->job.run = ngx_commerce_idem_purge;
    pu->job.data = pu;

    return ngx_commerce_job_add(cf, &pu->job);
}


/* keys older than 24 h, FOR UPDATE SKIP LOCKED: instances share the work */

static ngx_int_t
ngx_commerce_idem_purge(ngx_commerce_job_t *job)
{
    ngx_commerce_idem_purge_t  *pu = job->data;

    ngx_commerce_pg_reset(&pu->query);
    pu->query.stmt = &ngx_commerce_idem_statements[NGX_COMMERCE_STMT_IDEM_PURGE];
    pu->query.nparams = 1;
    pu->query.params[0] = ngx_commerce_pg_int(&pu->query,
                                              NGX_COMMERCE_PURGE_BATCH);
    pu->query.log = job->log;
    pu->query.data = pu;
    pu->query.handler = ngx_commerce_idem_purged;

    return ngx_commerce_pg_submit(pu->mcf->pool, &pu->query);
}


static void
ngx_commerce_idem_purged(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    int64_t                     n;
    ngx_commerce_idem_purge_t  *pu = q->data;

    if (rc == NGX_OK && ngx_commerce_pg_int_result(res, &n) == NGX_OK) {
        if (n > 0) {
            ngx_log_error(NGX_LOG_NOTICE, q->log, 0,
                          "commerce: purged %L Idempotency-Key(s) "
                          "older than 24 h", n);
        }

    } else if (rc == NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "commerce: Idempotency-Key purge failed: %s",
                      PQresultErrorMessage(res));
    }

    ngx_commerce_job_done(&pu->job, 0);
}


/*
 * NGX_DECLINED: no Idempotency-Key, go on.  NGX_DONE: the key is being
 * claimed and the operation will run (or an answer will be sent) later;
 * the request is finalized exactly once by this code.  Otherwise a
 * response was sent and its rc is returned.
 */

ngx_int_t
ngx_commerce_idem_start(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    u_char                    *p, *hex;
    unsigned int               dn;
    ngx_str_t                 *key, name;
    ngx_uint_t                 n;
    EVP_MD_CTX                *md;
    ngx_table_elt_t           *h;
    unsigned char              digest[EVP_MAX_MD_SIZE];
    ngx_commerce_main_conf_t  *mcf;

    if (ctx->idem != NGX_COMMERCE_IDEM_NONE) {
        return NGX_DECLINED;
    }

    h = ngx_commerce_header_in(r, "Idempotency-Key", &n);

    if (n > 1) {
        return ngx_commerce_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                        "INVALID_REQUEST",
                                        "Idempotency-Key given twice");
    }

    key = (h != NULL) ? &h->value : NULL;

    if (key == NULL) {
        return NGX_DECLINED;
    }

    /* the draft's key is a structured-field string: printable ASCII */
    if (key->len == 0 || key->len > NGX_COMMERCE_IDEM_KEY_MAX) {
        goto invalid;
    }

    for (p = key->data; p < key->data + key->len; p++) {
        if (*p < 0x20 || *p > 0x7e) {
            goto invalid;
        }
    }

    /* sha-256 over route, path and body: "the same request" */
    name.data = (u_char *) ctx->route->name;
    name.len = ngx_strlen(name.data);

    md = EVP_MD_CTX_new();
    if (md == NULL
        || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1
        || EVP_DigestUpdate(md, name.data, name.len) != 1
        || EVP_DigestUpdate(md, "\n", 1) != 1
        || EVP_DigestUpdate(md, r->uri.data, r->uri.len) != 1
        || EVP_DigestUpdate(md, "\n", 1) != 1
        || (len && EVP_DigestUpdate(md, body, len) != 1)
        || EVP_DigestFinal_ex(md, digest, &dn) != 1)
    {
        EVP_MD_CTX_free(md);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    EVP_MD_CTX_free(md);

    hex = ngx_pnalloc(r->pool, 2 * dn + 1);
    if (hex == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *ngx_hex_dump(hex, digest, dn) = '\0';

    ctx->idem_key.data = ngx_pnalloc(r->pool, key->len + 1);
    if (ctx->idem_key.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(ctx->idem_key.data, key->data, key->len);
    ctx->idem_key.data[key->len] = '\0';
    ctx->idem_key.len = key->len;

    ctx->idem_body = body;
    ctx->idem_len = len;
    ctx->idem = NGX_COMMERCE_IDEM_CLAIMING;

    /* from now on every answer goes through the key's store */
    ctx->store = ngx_commerce_idem_store;

    ngx_commerce_pg_reset(&ctx->query);
    ctx->query.stmt =
        &ngx_commerce_idem_statements[NGX_COMMERCE_STMT_IDEM_BEGIN];
    ctx->query.nparams = 4;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id);
    ctx->query.params[1] = (char *) ctx->idem_key.data;
    ctx->query.params[2] = (char *) name.data;
    ctx->query.params[3] = (char *) hex;
    ctx->query.log = r->connection->log;
    ctx->query.data = ctx;
    ctx->query.handler = ngx_commerce_idem_begun;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (ngx_commerce_pg_submit(mcf->pool, &ctx->query) != NGX_OK) {
        ctx->idem = NGX_COMMERCE_IDEM_NONE;
        return ngx_commerce_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "DB_UNAVAILABLE",
                                       "database unavailable, retry later");
    }

    ctx->waiting = 1;
    ngx_commerce_idem_watch_client(r, ctx);

    return NGX_DONE;

invalid:

    return ngx_commerce_reply_error(r, NGX_HTTP_BAD_REQUEST, "INVALID_REQUEST",
                                   "Idempotency-Key must be 1 to 255 "
                                   "printable ASCII characters");
}


/*
 * The {"state","status","body"} document cm_idem_begin and cm_idem_abandon
 * answer, with the state and the stored answer copied into r->pool.
 * NGX_DECLINED: the result is not such a document; NGX_ERROR: no memory.
 */

static ngx_int_t
ngx_commerce_idem_result(ngx_http_request_t *r, PGresult *res,
    ngx_commerce_idem_result_t *ir)
{
    char        *body;
    size_t       n;
    yajl_val     v, s, st, b;
    ngx_int_t    rc;
    const char  *path[2];

    ngx_memzero(ir, sizeof(ngx_commerce_idem_result_t));
    ir->state = "";

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1
        || (v = yajl_tree_parse(PQgetvalue(res, 0, 0), NULL, 0)) == NULL)
    {
        return NGX_DECLINED;
    }

    rc = NGX_ERROR;
    path[1] = NULL;

    path[0] = "state";
    s = yajl_tree_get(v, path, yajl_t_string);
    path[0] = "status";
    st = yajl_tree_get(v, path, yajl_t_number);
    path[0] = "body";
    b = yajl_tree_get(v, path, yajl_t_string);

    /* yajl_tree_get() returned only values of the asked-for type */

    if (s != NULL) {
        n = ngx_strlen(s->u.string);
        ir->state = ngx_pnalloc(r->pool, n + 1);
        if (ir->state == NULL) {
            goto done;
        }
        ngx_memcpy((char *) ir->state, s->u.string, n + 1);
    }

    if (st != NULL && YAJL_IS_INTEGER(st) && YAJL_GET_INTEGER(st) >= 100
        && YAJL_GET_INTEGER(st) <= 599 && b != NULL)
    {
        body = b->u.string;
        ir->len = ngx_strlen(body);
        ir->body = ngx_pnalloc(r->pool, ir->len);
        if (ir->body == NULL) {
            goto done;
        }
        ngx_memcpy(ir->body, body, ir->len);
        ir->status = YAJL_GET_INTEGER(st);
    }

    rc = NGX_OK;

done:

    yajl_tree_free(v);

    return rc;
}


static void
ngx_commerce_idem_begun(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    const char                  *state;
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_commerce_ctx_t          *ctx;
    ngx_commerce_idem_result_t   ir;

    ctx = q->data;
    r = ctx->request;
    c = r->connection;

    ctx->waiting = 0;
    ngx_http_set_log_request(c->log, r);

    if (rc != NGX_OK || res == NULL
        || ngx_commerce_idem_result(r, res, &ir) != NGX_OK)
    {
        ctx->idem = NGX_COMMERCE_IDEM_NONE;

        if (rc == NGX_OK && res != NULL
            && PQresultStatus(res) == PGRES_FATAL_ERROR)
        {
            ngx_commerce_log(NGX_LOG_ERR, r, ctx, "idempotency: %s",
                             PQresultErrorMessage(res));
        }

        rc = ngx_commerce_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "DB_UNAVAILABLE",
                                     "database unavailable, retry later");
        goto done;
    }

    state = ir.state;

    if (ngx_strcmp(state, "new") == 0) {
        ctx->idem = NGX_COMMERCE_IDEM_ACTIVE;

        ctx->success_status = NGX_HTTP_OK;
        rc = ctx->route->handler(r, ctx, ctx->idem_body, ctx->idem_len);

        if (rc == NGX_DONE) {
            ngx_http_run_posted_requests(c);
            return;
        }

        ngx_http_finalize_request(r, rc);
        ngx_http_run_posted_requests(c);
        return;
    }

    ctx->idem = NGX_COMMERCE_IDEM_NONE;

    if (ngx_strcmp(state, "replay") == 0) {
        if (ir.status < 200 || ir.body == NULL) {
            rc = ngx_commerce_reply_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                         "INTERNAL_ERROR", "internal error");

        } else {
            ctx->idem_replayed = 1;
            rc = ngx_commerce_reply_json(r, ir.status, ir.body, ir.len, 0);
        }

    } else if (ngx_strcmp(state, "mismatch") == 0) {
        rc = ngx_commerce_reply_error(r, 422, "IDEMPOTENCY_KEY_REUSED",
                                     "this Idempotency-Key was used for "
                                     "another request");

    } else {
        rc = ngx_commerce_reply_error(r, NGX_HTTP_CONFLICT,
                                     "IDEMPOTENCY_IN_FLIGHT",
                                     "a request with this Idempotency-Key "
                                     "is still in progress");
    }

done:

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/*
 * A balance operation with an active key runs as the statement that also
 * stores its answer, in its own transaction (cm_idem_hold and cm_idem_done, sql/functions/50_idem.sql): the
 * statement's parameters get the user, the key and the success status
 * after their own.  Card payments, several steps with the gateway between
 * them, keep the separate cm_idem_finish.
 */

ngx_int_t
ngx_commerce_idem_atomic(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx)
{
    ngx_commerce_pg_query_t  *q;

    q = &ctx->query;

    /* the statement table pairs a statement with its variant, if any */
    if (q->stmt->idem == NULL) {
        return NGX_OK;
    }

    q->params[q->nparams] = ngx_commerce_pg_int(q, ctx->claims.user_id);
    q->params[q->nparams + 1] = (char *) ctx->idem_key.data;
    q->params[q->nparams + 2] = ngx_commerce_pg_int(q, ctx->success_status);

    q->nparams += 3;
    q->stmt = q->stmt->idem;
    ctx->idem_atomic = 1;

    return NGX_OK;
}


/*
 * The key's store (ctx->store, set when the key is claimed): every answer
 * of the request comes here through ngx_commerce_reply().  Without an
 * active key it is sent at once.  With one, it is stored first and sent
 * when stored: NGX_DONE, and the request is finalized here later, so the
 * caller must not.
 */

static ngx_int_t
ngx_commerce_idem_store(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len)
{
    ngx_commerce_ctx_t        *ctx;
    ngx_commerce_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_commerce_module);

    if (ctx != NULL && ctx->idem == NGX_COMMERCE_IDEM_ACTIVE
        && ctx->idem_stored)
    {
        /* stored by the statement that did the work */
        ctx->idem = NGX_COMMERCE_IDEM_NONE;
    }

    if (ctx == NULL || ctx->idem != NGX_COMMERCE_IDEM_ACTIVE) {
        return ngx_commerce_reply_json(r, status, body, len,
                                      status == NGX_HTTP_SERVICE_UNAVAILABLE);
    }

    ctx->idem = NGX_COMMERCE_IDEM_STORING;
    ctx->reply_status = status;
    ctx->reply_body = body;
    ctx->reply_len = len;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    ngx_commerce_pg_reset(&ctx->query);

    if (ctx->idem_unknown) {
        /*
         * The work may have been committed: find out before freeing.  Each
         * call waits for the statement's transaction a little less than
         * statement_timeout (which bounds the call itself).
         */
        ctx->query.stmt =
        &ngx_commerce_idem_statements[NGX_COMMERCE_STMT_IDEM_ABANDON];
        ctx->query.nparams = 4;
        ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id);
        ctx->query.params[1] = (char *) ctx->idem_key.data;
        ctx->query.params[2] = ngx_commerce_pg_int(&ctx->query, ctx->idem_pid);
        ctx->query.params[3] = ngx_commerce_pg_int(&ctx->query, ngx_max(mcf->statement_timeout * 3 / 4, 50));
        ctx->query.log = r->connection->log;
        ctx->query.data = ctx;
        ctx->query.handler = ngx_commerce_idem_abandoned;

        if (ctx->query.params[0] == NULL || ctx->query.params[2] == NULL
            || ctx->query.params[3] == NULL
            || ngx_commerce_pg_submit(mcf->pool, &ctx->query) != NGX_OK)
        {
            ngx_commerce_log(NGX_LOG_ERR, r, ctx,
                             "idempotency: the outcome for key \"%V\" is "
                             "unknown and cannot be settled now; the key "
                             "stays claimed", &ctx->idem_key);
            ctx->idem = NGX_COMMERCE_IDEM_NONE;
            return ngx_commerce_reply_json(r, status, body, len, 1);
        }

        ctx->waiting = 1;
        ngx_commerce_idem_watch_client(r, ctx);

        return NGX_DONE;
    }

    ctx->query.stmt =
        &ngx_commerce_idem_statements[NGX_COMMERCE_STMT_IDEM_FINISH];
    ctx->query.nparams = 4;
    ctx->query.params[0] = ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id);
    ctx->query.params[1] = (char *) ctx->idem_key.data;
    ctx->query.params[2] = ngx_commerce_pg_int(&ctx->query, status);
    ctx->query.params[3] = ngx_pnalloc(r->pool, len + 1);
    ctx->query.log = r->connection->log;
    ctx->query.data = ctx;
    ctx->query.handler = ngx_commerce_idem_finished;

    if (ctx->query.params[3] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy((char *) ctx->query.params[3], body, len);
    ((char *) ctx->query.params[3])[len] = '\0';

    if (ngx_commerce_pg_submit(mcf->pool, &ctx->query) != NGX_OK) {
        /* cannot store it: answer anyway; the key stays claimed */
        ngx_commerce_log(NGX_LOG_ERR, r, ctx,
                         "idempotency: cannot store the answer for key "
                         "\"%V\"", &ctx->idem_key);
        ctx->idem = NGX_COMMERCE_IDEM_NONE;
        return ngx_commerce_reply_json(r, status, body, len,
                                      status == NGX_HTTP_SERVICE_UNAVAILABLE);
    }

    ctx->waiting = 1;
    ngx_commerce_idem_watch_client(r, ctx);

    return NGX_DONE;
}


static void
ngx_commerce_idem_finished(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;
    ngx_commerce_ctx_t  *ctx;

    ctx = q->data;
    r = ctx->request;
    c = r->connection;

    ctx->waiting = 0;
    ctx->idem = NGX_COMMERCE_IDEM_NONE;

    ngx_http_set_log_request(c->log, r);

    if (rc != NGX_OK || res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
    {
        ngx_commerce_log(NGX_LOG_ERR, r, ctx,
                         "idempotency: storing the answer for key \"%V\" "
                         "failed", &ctx->idem_key);
    }

    rc = ngx_commerce_reply_json(r, ctx->reply_status, ctx->reply_body,
                                ctx->reply_len,
                                ctx->reply_status
                                == NGX_HTTP_SERVICE_UNAVAILABLE);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/*
 * The settling of an unknown outcome: "done" means the work was committed
 * (its stored answer is the answer, sent now as the first one); "freed"
 * and "none" mean nothing was, and the 503 stands; "held" or a failure
 * leave the key claimed (a retry gets 409 until it expires: never the work
 * twice).
 */

static void
ngx_commerce_idem_abandoned(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    const char                  *state;
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_commerce_ctx_t          *ctx;
    ngx_commerce_main_conf_t    *mcf;
    ngx_commerce_idem_result_t   ir;

    ctx = q->data;
    r = ctx->request;
    c = r->connection;

    ctx->waiting = 0;

    ngx_http_set_log_request(c->log, r);

    state = "";

    if (rc == NGX_OK && res != NULL) {
        if (ngx_commerce_idem_result(r, res, &ir) == NGX_OK) {
            state = ir.state;

        } else {
            ngx_commerce_log(NGX_LOG_WARN, r, ctx,
                             "idempotency: settling: %s",
                             PQresultErrorMessage(res));
        }
    }

    if (ngx_strcmp(state, "done") != 0 && ngx_strcmp(state, "freed") != 0
        && ngx_strcmp(state, "none") != 0
        && ++ctx->idem_settles < NGX_COMMERCE_IDEM_SETTLES)
    {
        /* the statement still runs (or the call failed): wait again */
        mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

        if (ngx_commerce_pg_submit(mcf->pool, q) == NGX_OK) {
            ctx->waiting = 1;
            return;
        }

        state = "";
    }

    ctx->idem = NGX_COMMERCE_IDEM_NONE;

    if (ngx_strcmp(state, "done") == 0) {
        if (ir.status >= 200 && ir.status <= 299 && ir.body != NULL) {
            ngx_commerce_log(NGX_LOG_WARN, r, ctx,
                             "idempotency: the connection was lost, but the "
                             "work for key \"%V\" was committed: sending "
                             "its answer", &ctx->idem_key);

            ctx->reply_status = ir.status;
            ctx->reply_body = ir.body;
            ctx->reply_len = ir.len;
        }

    } else if (ngx_strcmp(state, "freed") == 0
               || ngx_strcmp(state, "none") == 0)
    {
        ngx_commerce_log(NGX_LOG_WARN, r, ctx,
                         "idempotency: the connection was lost and nothing "
                         "was committed for key \"%V\": key freed",
                         &ctx->idem_key);

    } else {
        ngx_commerce_log(NGX_LOG_ERR, r, ctx,
                         "idempotency: the outcome for key \"%V\" could "
                         "not be settled; the key stays claimed",
                         &ctx->idem_key);
    }

    rc = ngx_commerce_reply_json(r, ctx->reply_status, ctx->reply_body,
                                ctx->reply_len,
                                ctx->reply_status
                                == NGX_HTTP_SERVICE_UNAVAILABLE);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}
