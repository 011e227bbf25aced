
/*
 * Products' images (issue 11 section 3): a seller uploads an image's raw
 * bytes (one per request, no multipart), lists, orders and deletes them;
 * nginx serves the files (location /images/ of conf/nginx.conf.in), the
 * module never streams them.
 *
 * An upload is read by ngx_commerce_body_read into nginx's temporary file
 * (at most commerce_image_max_size, within commerce_image_upload_timeout:
 * 413 IMAGE_TOO_LARGE, 408 REQUEST_TIMEOUT).  What it is comes from its
 * bytes alone (cm_image_probe: JPEG, PNG or WebP with its dimensions; the
 * client's Content-Type and file name are never read), its name from its
 * SHA-256: <commerce_image_dir>/<sha256>.<jpg|png|webp>.
 *
 * Files and rows change in different places with no lock over both; the
 * order of the steps leaves no file without a row and no row without its
 * file (sql/README.md "Images" argues it):
 *
 *  - upload: link the body's file to <hash>.<ext> (EEXIST: the same bytes
 *    are there), add the row (cm_seller_image_add), and after its commit
 *    check that <hash>.<ext> is still there, linking it again if a delete
 *    took it meanwhile.  A refused add (the 11th, another store's product)
 *    gives the file up as a delete does:
 *  - delete: the row first (cm_seller_image_delete names the file when no
 *    row shows it any more), then the file is moved aside to a trash name,
 *    cm_image_file_used(hash) asked, and the file linked back (a row of an
 *    upload committed meanwhile) or the trash name unlinked.  In doubt (the
 *    database did not answer) the file stays.
 *
 * Hashing, linking, renaming and unlinking run on the thread pool
 * (commerce_image_thread_pool, ngx_commerce_task_post): nothing here
 * blocks the worker.  Between steps the client's connection is not
 * watched: once begun, the steps run to the end.
 */


#include "ngx_commerce_seller.h"
#include "cm_image.h"

#include <openssl/evp.h>
#include <sys/mman.h>


#define NGX_COMMERCE_IMAGE_HASH_LEN   64
/* "<hash>.webp" */
#define NGX_COMMERCE_IMAGE_NAME_LEN   (NGX_COMMERCE_IMAGE_HASH_LEN + 5)


enum {
    NGX_COMMERCE_STMT_IMAGE_ADD = 0,
    NGX_COMMERCE_STMT_IMAGE_LIST,
    NGX_COMMERCE_STMT_IMAGE_ORDER,
    NGX_COMMERCE_STMT_IMAGE_DELETE,
    NGX_COMMERCE_STMT_IMAGE_USED,
    NGX_COMMERCE_IMAGE_NSTMT
};


typedef struct {
    ngx_http_request_t          *r;
    ngx_commerce_ctx_t          *ctx;
    ngx_commerce_task_t          task;
    ngx_uint_t                   stmt;        /* the query under way */

    /* the upload's body: nginx's temporary file */
    ngx_fd_t                     fd;
    u_char                      *body;
    off_t                        size;

    /* what the thread found */
    cm_image_info_t              info;
    const char                  *why;         /* not an image */
    char                         hash[NGX_COMMERCE_IMAGE_HASH_LEN + 1];

    /* NUL-terminated paths in the image directory */
    ngx_str_t                   *dir;
    char                        *path;        /* room for the three */
    size_t                       path_len;
    char                        *file;        /* <hash>.<ext> */
    char                        *own;         /* our copy, or NULL */
    char                        *trash;       /* the file moved aside */
    char                        *src;         /* file was linked from */

    const char                  *op;          /* a file step that failed */
    int                          err;         /* and its errno */
    unsigned                     moved:1;     /* file is at trash */
    unsigned                     used:1;      /* and a row shows it */

    /* the answer, sent once the file steps are done */
    ngx_uint_t                   status;
    u_char                      *doc;
    size_t                       len;
    const char                  *code;
    const char                  *message;
} ngx_commerce_seller_image_t;


static ngx_int_t ngx_commerce_seller_image_upload(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_seller_image_list(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_seller_image_order(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_seller_image_delete(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_commerce_seller_image_t *ngx_commerce_seller_image_new(
    ngx_http_request_t *r, ngx_commerce_ctx_t *ctx);
static void ngx_commerce_seller_image_paths(ngx_commerce_seller_image_t *im,
    const char *name);
static void ngx_commerce_seller_image_body(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx);
static ngx_int_t ngx_commerce_seller_image_stored(ngx_commerce_task_t *t);
static ngx_int_t ngx_commerce_seller_image_query(
    ngx_commerce_seller_image_t *im, ngx_uint_t stmt, int n, ...);
static void ngx_commerce_seller_image_db_done(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static ngx_int_t ngx_commerce_seller_image_db_step(
    ngx_commerce_seller_image_t *im, ngx_int_t rc, PGresult *res);
static ngx_int_t ngx_commerce_seller_image_deleted(
    ngx_commerce_seller_image_t *im, PGresult *res);
static ngx_int_t ngx_commerce_seller_image_aside_done(
    ngx_commerce_task_t *t);
static ngx_int_t ngx_commerce_seller_image_post(
    ngx_commerce_seller_image_t *im,
    void (*work)(void *data, ngx_log_t *log),
    ngx_int_t (*done)(ngx_commerce_task_t *t));
static ngx_int_t ngx_commerce_seller_image_answer(ngx_commerce_task_t *t);
static const char *ngx_commerce_seller_image_keep(ngx_http_request_t *r,
    const char *s);

/* on the thread pool */
static void ngx_commerce_seller_image_store(void *data, ngx_log_t *log);
static void ngx_commerce_seller_image_check(void *data, ngx_log_t *log);
static void ngx_commerce_seller_image_aside(void *data, ngx_log_t *log);
static void ngx_commerce_seller_image_back(void *data, ngx_log_t *log);
static int ngx_commerce_seller_image_link(ngx_commerce_seller_image_t *im,
    const char *from);
static int ngx_commerce_seller_image_copy(ngx_commerce_seller_image_t *im,
    const u_char *p, size_t n);


ngx_commerce_stmt_t  ngx_commerce_seller_image_statements[] = {

    [NGX_COMMERCE_STMT_IMAGE_ADD] =
    { "cm_seller_image_add",
      "SELECT cm_seller_image_add($1::bigint, $2::bigint, $3::text, "
      "$4::text, $5::integer, $6::integer, $7::integer, $8::text)", 8, 0,
      NULL, 0 },

    [NGX_COMMERCE_STMT_IMAGE_LIST] =
    { "cm_seller_images", "SELECT cm_seller_images($1::bigint, $2::bigint)",
      2, NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_IMAGE_ORDER] =
    { "cm_seller_image_order",
      "SELECT cm_seller_image_order($1::bigint, $2::bigint, $3::bigint[], "
      "$4::text)", 4, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_IMAGE_DELETE] =
    { "cm_seller_image_delete",
      "SELECT cm_seller_image_delete($1::bigint, $2::bigint, $3::bigint, "
      "$4::text)", 4, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_IMAGE_USED] =
    { "cm_image_file_used", "SELECT cm_image_file_used($1::text)", 1,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_IMAGE_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


ngx_commerce_route_t  ngx_commerce_seller_image_routes[] = {

    NGX_COMMERCE_ROUTE("POST", "/api/v1/seller/products/{id}/images",
                       NGX_COMMERCE_SELLER_ROLES, NGX_COMMERCE_ROUTE_RAW,
                       "seller_images", ngx_commerce_seller_image_upload,
                       "uploadProductImage"),

    NGX_COMMERCE_ROUTE("GET", "/api/v1/seller/products/{id}/images",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_images",
                       ngx_commerce_seller_image_list, "listProductImages"),

    NGX_COMMERCE_ROUTE("PUT", "/api/v1/seller/products/{id}/images/order",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_images",
                       ngx_commerce_seller_image_order,
                       "orderProductImages"),

    NGX_COMMERCE_ROUTE("DELETE",
                       "/api/v1/seller/products/{id}/images/{imageId}",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_images",
                       ngx_commerce_seller_image_delete,
                       "deleteProductImage"),

    ngx_commerce_route_end
};


/*
 * commerce_image_dir (absolute, an existing directory, no trailing slash
 * kept) and its thread pool; without the directive the routes answer 404.
 */

ngx_int_t
ngx_commerce_seller_image_conf(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    ngx_file_info_t  fi;

    if (mcf->image_dir.len == 0) {
        return NGX_OK;
    }

    while (mcf->image_dir.len > 1
           && mcf->image_dir.data[mcf->image_dir.len - 1] == '/')
    {
        mcf->image_dir.len--;
    }

    if (mcf->image_dir.data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_image_dir\" must be an absolute path");
        return NGX_ERROR;
    }

    mcf->image_dir.data = (u_char *) ngx_commerce_json_cstr(cf->pool,
                                                            &mcf->image_dir);
    if (mcf->image_dir.data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_file_info(mcf->image_dir.data, &fi) == NGX_FILE_ERROR
        || !ngx_is_dir(&fi))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"commerce_image_dir\" \"%s\" is not a directory",
                           mcf->image_dir.data);
        return NGX_ERROR;
    }

    if (mcf->image_thread_pool_name.len == 0) {
        ngx_str_set(&mcf->image_thread_pool_name, "default");
    }

    mcf->image_thread_pool = ngx_thread_pool_add(cf,
                                                 &mcf->image_thread_pool_name);
    if (mcf->image_thread_pool == NULL) {
        return NGX_ERROR;
    }

    return ngx_commerce_seller_sweep_conf(cf, mcf);
}


/* ------------------------------------------------------------------------
 * the routes
 */

static ngx_int_t
ngx_commerce_seller_image_upload(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    ngx_str_t                  too_large;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (mcf->image_thread_pool == NULL) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }

        return ngx_commerce_reply_error(r, NGX_HTTP_NOT_FOUND, "NOT_FOUND",
                                        "images are not configured");
    }

    too_large.data = ngx_pnalloc(r->pool, 128);
    if (too_large.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    too_large.len = ngx_sprintf(too_large.data,
                                "{\"code\":\"IMAGE_TOO_LARGE\",\"message\":"
                                "\"an image is at most %uz bytes\"}",
                                mcf->image_max)
                    - too_large.data;

    return ngx_commerce_body_read(r, ctx, (off_t) mcf->image_max,
                                  mcf->image_timeout, &too_large,
                                  ngx_commerce_seller_image_body);
}


static ngx_int_t
ngx_commerce_seller_image_list(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    const char  *p[2];

    p[0] = ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id);
    p[1] = ngx_commerce_pg_int(&ctx->query, ctx->id);

    return ngx_commerce_seller_run(r, ctx,
                     &ngx_commerce_seller_image_statements[
                         NGX_COMMERCE_STMT_IMAGE_LIST], NGX_HTTP_OK, 2, p);
}


static ngx_int_t
ngx_commerce_seller_image_order(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    u_char       *ids, *p;
    char          err[CM_JSON_ERR_LEN];
    size_t        i, n;
    int64_t       id[CM_IMAGE_MAX_PER_PRODUCT];
    const char   *params[4];

    if (cm_parse_image_order(body, len, id, &n, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_invalid(r, err);
    }

    /* a Postgres array: {1,2,3} */
    ids = ngx_pnalloc(r->pool, n * (NGX_INT64_LEN + 1) + 2);
    if (ids == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ids;
    *p++ = '{';

    for (i = 0; i < n; i++) {
        p = ngx_sprintf(p, i ? ",%L" : "%L", id[i]);
    }

    *p++ = '}';
    *p = '\0';

    params[0] = ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id);
    params[1] = ngx_commerce_pg_int(&ctx->query, ctx->id);
    params[2] = (char *) ids;
    params[3] = ngx_commerce_seller_client(r);

    return ngx_commerce_seller_run(r, ctx,
                     &ngx_commerce_seller_image_statements[
                         NGX_COMMERCE_STMT_IMAGE_ORDER], NGX_HTTP_OK, 4,
                     params);
}


static ngx_int_t
ngx_commerce_seller_image_delete(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len)
{
    char                         *client;
    ngx_commerce_seller_image_t  *im;
    ngx_commerce_main_conf_t     *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (mcf->image_thread_pool == NULL) {
        return ngx_commerce_reply_error(r, NGX_HTTP_NOT_FOUND, "NOT_FOUND",
                                        "images are not configured");
    }

    im = ngx_commerce_seller_image_new(r, ctx);
    if (im == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    client = ngx_commerce_seller_client(r);
    if (client == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_seller_image_query(im, NGX_COMMERCE_STMT_IMAGE_DELETE,
                                           4,
                                           ngx_commerce_pg_int(&ctx->query,
                                                         ctx->claims.user_id),
                                           ngx_commerce_pg_int(&ctx->query,
                                                               ctx->id),
                                           ngx_commerce_pg_int(&ctx->query,
                                                               ctx->id2),
                                           client);
}


static ngx_commerce_seller_image_t *
ngx_commerce_seller_image_new(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx)
{
    size_t                        len;
    ngx_commerce_seller_image_t  *im;
    ngx_commerce_main_conf_t     *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    im = ngx_pcalloc(r->pool, sizeof(ngx_commerce_seller_image_t));
    if (im == NULL) {
        return NULL;
    }

    /* room for the paths, filled in later (by a thread, too) */
    len = mcf->image_dir.len + sizeof("/.upload--") + 3 * NGX_INT64_LEN
          + NGX_COMMERCE_IMAGE_NAME_LEN + 1;

    im->path = ngx_pnalloc(r->pool, 3 * len);
    if (im->path == NULL) {
        return NULL;
    }

    im->r = r;
    im->ctx = ctx;
    im->task.r = r;
    im->task.ctx = ctx;
    im->task.data = im;
    im->fd = NGX_INVALID_FILE;
    im->dir = &mcf->image_dir;
    im->path_len = len;
    ctx->domain = im;

    return im;
}


/*
 * The paths of file name (<hash>.<ext>) in the directory: the file, our
 * copy of the bytes and the trash name, both unique to the request (the
 * worker's pid, the connection's number and request count).
 */

static void
ngx_commerce_seller_image_paths(ngx_commerce_seller_image_t *im,
    const char *name)
{
    ngx_connection_t  *c;

    c = im->r->connection;

    ngx_memcpy(im->hash, name, NGX_COMMERCE_IMAGE_HASH_LEN);
    im->hash[NGX_COMMERCE_IMAGE_HASH_LEN] = '\0';

    im->file = im->path;
    im->own = im->file + im->path_len;
    im->trash = im->own + im->path_len;

    ngx_sprintf((u_char *) im->file, "%V/%s%Z", im->dir, name);
    ngx_sprintf((u_char *) im->own, "%V/.upload-%P-%uA-%ui-%s%Z",
                im->dir, ngx_pid, c->number, c->requests, name);
    ngx_sprintf((u_char *) im->trash, "%V/.trash-%P-%uA-%ui-%s%Z",
                im->dir, ngx_pid, c->number, c->requests, name);
}


/* ------------------------------------------------------------------------
 * an upload: the body is in nginx's temporary file
 */

static void
ngx_commerce_seller_image_body(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx)
{
    ngx_int_t                     rc;
    ngx_temp_file_t              *tf;
    ngx_commerce_seller_image_t  *im;

    tf = (r->request_body != NULL) ? r->request_body->temp_file : NULL;

    if (tf == NULL || tf->file.offset == 0) {
        rc = ngx_commerce_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                      "INVALID_IMAGE",
                                      "the body must be the image's bytes"
                                      " (JPEG, PNG or WebP)");
        goto done;
    }

    im = ngx_commerce_seller_image_new(r, ctx);
    if (im == NULL) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto done;
    }

    im->fd = tf->file.fd;
    im->body = tf->file.name.data;
    im->size = tf->file.offset;

    rc = ngx_commerce_seller_image_post(im, ngx_commerce_seller_image_store,
                                        ngx_commerce_seller_image_stored);

    if (rc == NGX_DONE) {
        return;
    }

done:

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_commerce_seller_image_stored(ngx_commerce_task_t *t)
{
    char                         *client;
    ngx_commerce_ctx_t           *ctx;
    ngx_commerce_seller_image_t  *im;

    im = t->data;
    ctx = im->ctx;

    if (im->op != NULL) {
        ngx_log_error(NGX_LOG_ERR, im->r->connection->log, im->err,
                      "commerce: [%V] image upload: %s \"%s\" failed",
                      &ctx->request_id, im->op, im->file ? im->file : "-");

        return ngx_commerce_reply_error(im->r,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "INTERNAL_ERROR", "internal error");
    }

    if (im->why != NULL) {
        ngx_commerce_log(NGX_LOG_INFO, im->r, ctx, "not an image: %s",
                         im->why);

        return ngx_commerce_reply_error(im->r, NGX_HTTP_BAD_REQUEST,
                                        "INVALID_IMAGE", im->why);
    }

    client = ngx_commerce_seller_client(im->r);
    if (client == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_commerce_seller_image_query(im, NGX_COMMERCE_STMT_IMAGE_ADD, 8,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id),
               im->hash, cm_image_name(im->info.type),
               ngx_commerce_pg_int(&ctx->query, im->info.width),
               ngx_commerce_pg_int(&ctx->query, im->info.height),
               ngx_commerce_pg_int(&ctx->query, im->size),
               client);
}


/* ------------------------------------------------------------------------
 * the statements of an upload and a delete, and what follows each
 */

static ngx_int_t
ngx_commerce_seller_image_query(ngx_commerce_seller_image_t *im,
    ngx_uint_t stmt, int n, ...)
{
    va_list    args;
    ngx_int_t  rc;

    im->stmt = stmt;

    /* once begun, the steps run to the end: the client is not watched */
    im->r->read_event_handler = ngx_http_block_reading;

    va_start(args, n);
    rc = ngx_commerce_handler_step(im->r, im->ctx,
                                   &ngx_commerce_seller_image_statements[stmt],
                                   ngx_commerce_seller_image_db_done, im, n,
                                   args);
    va_end(args);

    if (rc != NGX_OK) {
        return ngx_commerce_seller_image_db_step(im, NGX_DECLINED, NULL);
    }

    return NGX_DONE;
}


static void
ngx_commerce_seller_image_db_done(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    ngx_connection_t             *c;
    ngx_commerce_seller_image_t  *im;

    im = q->data;
    c = im->r->connection;

    im->ctx->waiting = 0;

    ngx_http_set_log_request(c->log, im->r);

    rc = ngx_commerce_seller_image_db_step(im, rc, res);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(im->r, rc);
    }

    ngx_http_run_posted_requests(c);
}


/* res: NULL when the statement was not sent or the connection was lost */

static ngx_int_t
ngx_commerce_seller_image_db_step(ngx_commerce_seller_image_t *im,
    ngx_int_t rc, PGresult *res)
{
    char                 *value;
    ngx_uint_t            ok;
    ngx_commerce_ctx_t   *ctx;
    ngx_http_request_t   *r;

    r = im->r;
    ctx = im->ctx;

    ok = (rc == NGX_OK && res != NULL
          && PQresultStatus(res) == PGRES_TUPLES_OK
          && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0));

    switch (im->stmt) {

    case NGX_COMMERCE_STMT_IMAGE_USED:
        /* in doubt, the file stays: a file too many, never one missing */
        value = ok ? PQgetvalue(res, 0, 0) : "t";
        im->used = (value[0] != 'f');

        return ngx_commerce_seller_image_post(im,
                                              ngx_commerce_seller_image_back,
                                              ngx_commerce_seller_image_answer);

    case NGX_COMMERCE_STMT_IMAGE_DELETE:
        if (!ok) {
            /* nothing deleted, or unknown: the files are left alone */
            if (rc != NGX_OK || res == NULL) {
                return ngx_commerce_reply_error(r,
                                                NGX_HTTP_SERVICE_UNAVAILABLE,
                                                "DB_UNAVAILABLE",
                                                "database unavailable, "
                                                "retry later");
            }

            return ngx_commerce_reply_db_error(r, ctx, res);
        }

        return ngx_commerce_seller_image_deleted(im, res);

    default: /* NGX_COMMERCE_STMT_IMAGE_ADD */

        if (ok) {
            im->status = NGX_HTTP_CREATED;
            im->len = PQgetlength(res, 0, 0);

            im->doc = ngx_pnalloc(r->pool, im->len);
            if (im->doc == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ngx_memcpy(im->doc, PQgetvalue(res, 0, 0), im->len);

            return ngx_commerce_seller_image_post(im,
                                             ngx_commerce_seller_image_check,
                                             ngx_commerce_seller_image_answer);
        }

        /* refused (or unknown): the file is given up as a delete does */
        if (rc != NGX_OK || res == NULL
            || PQresultStatus(res) == PGRES_TUPLES_OK)
        {
            im->status = NGX_HTTP_SERVICE_UNAVAILABLE;
            im->code = "DB_UNAVAILABLE";
            im->message = "database unavailable, retry later";

        } else {
            im->status = ngx_commerce_reply_db_status(r, ctx, res, &im->code,
                                                      &im->message);
            im->code = ngx_commerce_seller_image_keep(r, im->code);
            im->message = ngx_commerce_seller_image_keep(r, im->message);

            if (im->code == NULL || im->message == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }

        return ngx_commerce_seller_image_post(im,
                                         ngx_commerce_seller_image_aside,
                                         ngx_commerce_seller_image_aside_done);
    }
}


/*
 * {"productId","images":[..],"unlink":["<hash>.<ext>"]}: the file goes
 * when no row shows it any more, else 204 at once.
 */

static ngx_int_t
ngx_commerce_seller_image_deleted(ngx_commerce_seller_image_t *im,
    PGresult *res)
{
    char      *p;
    yajl_val   v, u, name;

    im->status = NGX_HTTP_NO_CONTENT;

    v = ngx_commerce_json_parse(im->r->pool, (u_char *) PQgetvalue(res, 0, 0),
                                PQgetlength(res, 0, 0));
    u = ngx_commerce_json_get(v, "unlink", NULL);

    if (u == NULL || !YAJL_IS_ARRAY(u)) {
        ngx_commerce_log(NGX_LOG_ERR, im->r, im->ctx,
                         "cm_seller_image_delete: no \"unlink\"");
        return ngx_commerce_seller_image_answer(&im->task);
    }

    if (u->u.array.len == 0) {
        return ngx_commerce_seller_image_answer(&im->task);
    }

    name = u->u.array.values[0];

    /* a name of ours: <64 hex>.<ext>, nothing that could leave the dir */
    p = YAJL_IS_STRING(name) ? name->u.string : "";

    if (!cm_image_file_name(p)) {
        ngx_commerce_log(NGX_LOG_ERR, im->r, im->ctx,
                         "cm_seller_image_delete: bad file \"%s\"", p);
        return ngx_commerce_seller_image_answer(&im->task);
    }

    ngx_commerce_seller_image_paths(im, p);

    return ngx_commerce_seller_image_post(im, ngx_commerce_seller_image_aside,
                                         ngx_commerce_seller_image_aside_done);
}


/* the file is aside (or was gone already): does a row show it? */

static ngx_int_t
ngx_commerce_seller_image_aside_done(ngx_commerce_task_t *t)
{
    ngx_commerce_seller_image_t  *im;

    im = t->data;

    if (!im->moved) {
        /* another delete took it, or it could not be moved: left as is */
        return ngx_commerce_seller_image_answer(t);
    }

    return ngx_commerce_seller_image_query(im, NGX_COMMERCE_STMT_IMAGE_USED,
                                           1, im->hash);
}


static ngx_int_t
ngx_commerce_seller_image_post(ngx_commerce_seller_image_t *im,
    void (*work)(void *data, ngx_log_t *log),
    ngx_int_t (*done)(ngx_commerce_task_t *t))
{
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(im->r, ngx_http_commerce_module);

    return ngx_commerce_task_post(&im->task, mcf->image_thread_pool, work,
                                  done, "too many image operations at once,"
                                  " retry later");
}


/* the file steps are done: the answer kept for this moment */

static ngx_int_t
ngx_commerce_seller_image_answer(ngx_commerce_task_t *t)
{
    ngx_commerce_seller_image_t  *im;

    im = t->data;

    if (im->op != NULL) {
        ngx_log_error(NGX_LOG_ERR, im->r->connection->log, im->err,
                      "commerce: [%V] image file: %s \"%s\" failed",
                      &im->ctx->request_id, im->op,
                      im->file ? im->file : "-");
    }

    if (im->code != NULL) {
        return ngx_commerce_reply_error(im->r, im->status, im->code,
                                        im->message);
    }

    if (im->status == NGX_HTTP_NO_CONTENT) {
        return ngx_commerce_reply_json(im->r, NGX_HTTP_NO_CONTENT, NULL, 0,
                                       0);
    }

    return ngx_commerce_reply(im->r, im->status, im->doc, im->len);
}


/* a copy in the request's pool of what points into a result */

static const char *
ngx_commerce_seller_image_keep(ngx_http_request_t *r, const char *s)
{
    ngx_str_t  v;

    v.data = (u_char *) s;
    v.len = ngx_strlen(s);

    return ngx_commerce_json_cstr(r->pool, &v);
}




/* ------------------------------------------------------------------------
 * on the thread pool: only the request's own buffers and the file system
 */

/* probe, hash and link the body to <hash>.<ext> */

static void
ngx_commerce_seller_image_store(void *data, ngx_log_t *log)
{
    u_char                        *p;
    char                           name[NGX_COMMERCE_IMAGE_NAME_LEN + 1];
    size_t                         size;
    unsigned int                   mdlen, i;
    unsigned char                  md[EVP_MAX_MD_SIZE];
    ngx_commerce_seller_image_t   *im = data;

    static const char  hex[] = "0123456789abcdef";

    size = (size_t) im->size;

    p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, im->fd, 0);
    if (p == MAP_FAILED) {
        im->op = "mmap()";
        im->err = ngx_errno;
        return;
    }

    if (cm_image_probe(p, size, &im->info, &im->why) != 0) {
        goto done;
    }

    if (EVP_Digest(p, size, md, &mdlen, EVP_sha256(), NULL) != 1
        || mdlen * 2 != NGX_COMMERCE_IMAGE_HASH_LEN)
    {
        im->op = "EVP_Digest()";
        im->err = 0;
        goto done;
    }

    for (i = 0; i < mdlen; i++) {
        name[2 * i] = hex[md[i] >> 4];
        name[2 * i + 1] = hex[md[i] & 0xf];
    }

    ngx_sprintf((u_char *) name + NGX_COMMERCE_IMAGE_HASH_LEN, ".%s%Z",
                cm_image_ext(im->info.type));

    ngx_commerce_seller_image_paths(im, name);

    /* nginx's file is 0600: nginx serves it to anyone */
    if (fchmod(im->fd, 0644) == -1) {
        im->op = "fchmod()";
        im->err = ngx_errno;
        goto done;
    }

    if (ngx_commerce_seller_image_link(im, (char *) im->body) == 0) {
        goto done;
    }

    if (im->err != NGX_EXDEV) {
        goto done;
    }

    /* the temporary files are on another file system: a copy here */
    im->op = NULL;

    if (ngx_commerce_seller_image_copy(im, p, size) == 0) {
        (void) ngx_commerce_seller_image_link(im, im->own);
    }

done:

    (void) munmap(p, size);
}


/* after the row's commit: the file is there, or again */

static void
ngx_commerce_seller_image_check(void *data, ngx_log_t *log)
{
    struct stat                   st;
    ngx_commerce_seller_image_t  *im = data;

    if (stat(im->file, &st) == -1) {
        if (ngx_errno == NGX_ENOENT) {
            (void) ngx_commerce_seller_image_link(im, im->src);

        } else {
            im->op = "stat()";
            im->err = ngx_errno;
        }
    }

    if (im->src == im->own) {
        (void) unlink(im->own);
    }
}


/* a file no row may show any more: out of the way first */

static void
ngx_commerce_seller_image_aside(void *data, ngx_log_t *log)
{
    ngx_commerce_seller_image_t  *im = data;

    if (im->src != NULL && im->src == im->own) {
        (void) unlink(im->own);
    }

    if (im->file == NULL) {
        /* the upload linked nothing */
        return;
    }

    if (rename(im->file, im->trash) == 0) {
        im->moved = 1;
        return;
    }

    if (ngx_errno != NGX_ENOENT) {
        im->op = "rename()";
        im->err = ngx_errno;
    }
}


/* a row shows it: back; none: gone */

static void
ngx_commerce_seller_image_back(void *data, ngx_log_t *log)
{
    ngx_commerce_seller_image_t  *im = data;

    if (im->used && ngx_commerce_seller_image_link(im, im->trash) != 0) {
        /* not back: the trash name stays, for the operator */
        return;
    }

    if (unlink(im->trash) == -1) {
        im->op = "unlink()";
        im->err = ngx_errno;
    }
}


/* link from to the file: 0, also when the same bytes are there already */

static int
ngx_commerce_seller_image_link(ngx_commerce_seller_image_t *im,
    const char *from)
{
    if (link(from, im->file) == 0 || ngx_errno == NGX_EEXIST) {
        im->src = (char *) from;
        return 0;
    }

    im->op = "link()";
    im->err = ngx_errno;

    return -1;
}


static int
ngx_commerce_seller_image_copy(ngx_commerce_seller_image_t *im,
    const u_char *p, size_t n)
{
    int      fd;
    ssize_t  w;

    fd = open(im->own, O_WRONLY|O_CREAT|O_EXCL, 0644);
    if (fd == -1) {
        im->op = "open()";
        im->err = ngx_errno;
        return -1;
    }

    while (n > 0) {
        w = write(fd, p, n);

        if (w == -1 && ngx_errno == NGX_EINTR) {
            continue;
        }

        if (w <= 0) {
            im->op = "write()";
            im->err = ngx_errno;
            (void) close(fd);
            (void) unlink(im->own);
            return -1;
        }

        p += w;
        n -= w;
    }

    if (close(fd) == -1) {
        im->op = "close()";
        im->err = ngx_errno;
        (void) unlink(im->own);
        return -1;
    }

    return 0;
}
