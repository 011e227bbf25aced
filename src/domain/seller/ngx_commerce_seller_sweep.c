
/*
 * The image directory's sweep: what a crash (or a worker killed) between
 * two steps of an upload or a delete left behind (sql/README.md "Images").
 * A job of worker 0, every commerce_image_sweep_interval; only names whose
 * inode changed (ctime: written, linked, renamed) longer ago than
 * commerce_image_sweep_grace are looked at, so that the steps of running
 * requests are never met half-way:
 *
 *  - ".upload-*": a copy an upload made of its body; dead: unlinked;
 *  - ".trash-*-<hash>.<ext>": a file moved aside by a delete that never
 *    asked the database: linked back (EEXIST: an upload did) and then
 *    treated as any file;
 *  - "<hash>.<ext>": step 2 of the README for the files whose hash no row
 *    shows (cm_image_files_unused): moved aside, the question asked again,
 *    and linked back (a row came meanwhile) or unlinked.  In doubt (no
 *    answer) the files go back.
 *
 * Reading the directory and every file operation run on the thread pool;
 * a run's memory is its own pool.
 */


#include "ngx_commerce_seller.h"
#include "cm_image.h"

#include <dirent.h>


#define NGX_COMMERCE_SWEEP_FIRST     5000       /* ms after the start */
#define NGX_COMMERCE_SWEEP_MAX       1000       /* files a run looks at */
#define NGX_COMMERCE_SWEEP_HASH_LEN  64
#define NGX_COMMERCE_SWEEP_NAME_LEN  (NGX_COMMERCE_SWEEP_HASH_LEN + 5)


typedef struct {
    char                         name[NGX_COMMERCE_SWEEP_NAME_LEN + 1];
    char                         trash[NGX_COMMERCE_SWEEP_NAME_LEN + 64];
    unsigned                     unused:1;   /* by the last answer */
    unsigned                     moved:1;
} ngx_commerce_seller_sweep_file_t;


typedef struct {
    ngx_commerce_job_t           job;
    ngx_commerce_main_conf_t    *mcf;
    ngx_commerce_pg_query_t      query;
    ngx_pool_t                  *pool;      /* the run's */
    ngx_array_t                  files;     /* sweep_file_t */
    ngx_uint_t                   step;      /* 0: before moving, 1: after */
    ngx_uint_t                   cleared;   /* copies and trash names */
    ngx_uint_t                   removed;
    const char                  *op;        /* a file step that failed */
    int                          err;
} ngx_commerce_seller_sweep_t;


static ngx_int_t ngx_commerce_seller_sweep_run(ngx_commerce_job_t *job);
static ngx_int_t ngx_commerce_seller_sweep_post(
    ngx_commerce_seller_sweep_t *sw,
    void (*work)(void *data, ngx_log_t *log),
    void (*done)(ngx_event_t *ev));
static void ngx_commerce_seller_sweep_scan(void *data, ngx_log_t *log);
static void ngx_commerce_seller_sweep_scanned(ngx_event_t *ev);
static ngx_int_t ngx_commerce_seller_sweep_ask(
    ngx_commerce_seller_sweep_t *sw);
static void ngx_commerce_seller_sweep_answer(ngx_commerce_pg_query_t *q,
    ngx_int_t rc, PGresult *res);
static void ngx_commerce_seller_sweep_move(void *data, ngx_log_t *log);
static void ngx_commerce_seller_sweep_end(ngx_event_t *ev);
static void ngx_commerce_seller_sweep_done(ngx_commerce_seller_sweep_t *sw);


static ngx_commerce_stmt_t  ngx_commerce_seller_sweep_statements[] = {
    { "cm_image_files_unused",
      "SELECT cm_image_files_unused($1::text[])::text", 1,
      NGX_COMMERCE_STMT_READ, NULL, 0 },
    { NULL, NULL, 0, 0, NULL, 0 }
};


ngx_int_t
ngx_commerce_seller_sweep_conf(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    ngx_commerce_seller_sweep_t  *sw;

    if (mcf->image_sweep_interval == 0) {
        return NGX_OK;
    }

    if (ngx_commerce_pg_register(cf, ngx_commerce_seller_sweep_statements)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sw = ngx_pcalloc(cf->pool, sizeof(ngx_commerce_seller_sweep_t));
    if (sw == NULL) {
        return NGX_ERROR;
    }

    sw->mcf = mcf;
    sw->job.name = "image_sweep";
    sw->job.first = ngx_min(NGX_COMMERCE_SWEEP_FIRST,
                            mcf->image_sweep_interval);
    sw->job.interval = mcf->image_sweep_interval;
    sw->job.run = ngx_commerce_seller_sweep_run;
    sw->job.data = sw;

    return ngx_commerce_job_add(cf, &sw->job);
}


static ngx_int_t
ngx_commerce_seller_sweep_run(ngx_commerce_job_t *job)
{
    ngx_commerce_seller_sweep_t  *sw = job->data;

    sw->pool = ngx_create_pool(4096, job->log);
    if (sw->pool == NULL) {
        return NGX_ERROR;
    }

    if (ngx_array_init(&sw->files, sw->pool, 16,
                       sizeof(ngx_commerce_seller_sweep_file_t))
        != NGX_OK)
    {
        ngx_destroy_pool(sw->pool);
        return NGX_ERROR;
    }

    sw->step = 0;
    sw->cleared = 0;
    sw->removed = 0;
    sw->op = NULL;

    if (ngx_commerce_seller_sweep_post(sw, ngx_commerce_seller_sweep_scan,
                                       ngx_commerce_seller_sweep_scanned)
        != NGX_OK)
    {
        ngx_destroy_pool(sw->pool);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_commerce_seller_sweep_post(ngx_commerce_seller_sweep_t *sw,
    void (*work)(void *data, ngx_log_t *log), void (*done)(ngx_event_t *ev))
{
    ngx_thread_task_t  *task;

    task = ngx_thread_task_alloc(sw->pool, 0);
    if (task == NULL) {
        return NGX_ERROR;
    }

    task->ctx = sw;
    task->handler = work;
    task->event.data = sw;
    task->event.handler = done;

    return ngx_thread_task_post(sw->mcf->image_thread_pool, task);
}


/* in a thread: the names to look at */

static void
ngx_commerce_seller_sweep_scan(void *data, ngx_log_t *log)
{
    ngx_commerce_seller_sweep_t  *sw = data;

    DIR                               *dir;
    char                              *real;
    time_t                             now;
    struct stat                        st;
    struct dirent                     *de;
    ngx_uint_t                         trash;
    ngx_commerce_seller_sweep_file_t  *f;

    dir = opendir((char *) sw->mcf->image_dir.data);
    if (dir == NULL) {
        sw->op = "opendir()";
        sw->err = ngx_errno;
        return;
    }

    now = time(NULL);

    while (sw->files.nelts < NGX_COMMERCE_SWEEP_MAX
           && (de = readdir(dir)) != NULL)
    {
        trash = (ngx_strncmp(de->d_name, ".trash-", 7) == 0);

        if (!trash && ngx_strncmp(de->d_name, ".upload-", 8) != 0
            && !cm_image_file_name(de->d_name))
        {
            continue;
        }

        if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1
            || !S_ISREG(st.st_mode)
            || now - st.st_ctime < sw->mcf->image_sweep_grace)
        {
            continue;
        }

        real = de->d_name;

        if (de->d_name[0] == '.') {
            /* ".trash-<pid>-<n>-<n>-<hash>.<ext>": the file back first */
            real = trash ? strrchr(de->d_name, '-') + 1 : NULL;

            if (real != NULL && !cm_image_file_name(real)) {
                /* not a name of ours: left alone */
                continue;
            }

            if (real != NULL
                && linkat(dirfd(dir), de->d_name, dirfd(dir), real, 0) == -1
                && ngx_errno != NGX_EEXIST)
            {
                sw->op = "linkat()";
                sw->err = ngx_errno;
                continue;
            }

            if (unlinkat(dirfd(dir), de->d_name, 0) == 0) {
                sw->cleared++;
            }

            if (real == NULL) {
                continue;
            }
        }

        /* a file, or a trash name's file (asked about in this run) */
        f = ngx_array_push(&sw->files);
        if (f == NULL) {
            break;
        }

        ngx_memzero(f, sizeof(ngx_commerce_seller_sweep_file_t));
        ngx_cpystrn((u_char *) f->name, (u_char *) real, sizeof(f->name));
        ngx_sprintf((u_char *) f->trash, ".trash-%P-0-0-%s%Z", ngx_pid,
                    f->name);
    }

    (void) closedir(dir);
}


static void
ngx_commerce_seller_sweep_scanned(ngx_event_t *ev)
{
    ngx_commerce_seller_sweep_t  *sw = ev->data;

    if (sw->files.nelts == 0 || ngx_commerce_seller_sweep_ask(sw) != NGX_OK) {
        ngx_commerce_seller_sweep_done(sw);
    }
}


/*
 * Which of the files' hashes (after the move: of the moved ones) no row
 * shows.  NGX_OK: asked; NGX_DONE: nothing to ask; else not asked.
 */

static ngx_int_t
ngx_commerce_seller_sweep_ask(ngx_commerce_seller_sweep_t *sw)
{
    u_char                            *p, *list;
    ngx_uint_t                         i, n;
    ngx_commerce_seller_sweep_file_t  *f;

    f = sw->files.elts;
    n = 0;

    list = ngx_pnalloc(sw->pool,
                       sw->files.nelts * (NGX_COMMERCE_SWEEP_HASH_LEN + 1)
                       + 3);
    if (list == NULL) {
        return NGX_ERROR;
    }

    p = list;
    *p++ = '{';

    for (i = 0; i < sw->files.nelts; i++) {
        if (sw->step == 1 && !f[i].moved) {
            continue;
        }

        if (n++) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, f[i].name, NGX_COMMERCE_SWEEP_HASH_LEN);
    }

    *p++ = '}';
    *p = '\0';

    if (n == 0) {
        return NGX_DONE;
    }

    ngx_commerce_pg_reset(&sw->query);
    sw->query.stmt = &ngx_commerce_seller_sweep_statements[0];
    sw->query.nparams = 1;
    sw->query.params[0] = (char *) list;
    sw->query.log = sw->job.log;
    sw->query.data = sw;
    sw->query.handler = ngx_commerce_seller_sweep_answer;

    return ngx_commerce_pg_submit(sw->mcf->pool, &sw->query);
}


static void
ngx_commerce_seller_sweep_answer(ngx_commerce_pg_query_t *q, ngx_int_t rc,
    PGresult *res)
{
    char                              *unused;
    ngx_uint_t                         i, n;
    ngx_commerce_seller_sweep_t       *sw = q->data;
    ngx_commerce_seller_sweep_file_t  *f;

    /* in doubt, nothing is unused: the moved files go back */
    unused = (rc == NGX_OK && res != NULL
              && PQresultStatus(res) == PGRES_TUPLES_OK
              && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
             ? PQgetvalue(res, 0, 0) : "{}";

    f = sw->files.elts;
    n = 0;

    for (i = 0; i < sw->files.nelts; i++) {
        f[i].name[NGX_COMMERCE_SWEEP_HASH_LEN] = '\0';
        f[i].unused = (ngx_strstr(unused, f[i].name) != NULL);
        f[i].name[NGX_COMMERCE_SWEEP_HASH_LEN] = '.';
        n += f[i].unused;
    }

    if (sw->step == 0 && n == 0) {
        ngx_commerce_seller_sweep_done(sw);
        return;
    }

    if (ngx_commerce_seller_sweep_post(sw, ngx_commerce_seller_sweep_move,
                                       ngx_commerce_seller_sweep_end)
        != NGX_OK)
    {
        /* moved files stay moved: the next run brings them back */
        ngx_commerce_seller_sweep_done(sw);
    }
}


/*
 * In a thread: step 0, the unused files out of the way; step 1, the moved
 * ones back if a row came meanwhile, else gone.
 */

static void
ngx_commerce_seller_sweep_move(void *data, ngx_log_t *log)
{
    int                                dfd;
    ngx_uint_t                         i;
    ngx_commerce_seller_sweep_t       *sw = data;
    ngx_commerce_seller_sweep_file_t  *f;

    f = sw->files.elts;

    dfd = open((char *) sw->mcf->image_dir.data, O_RDONLY|O_DIRECTORY);
    if (dfd == -1) {
        sw->op = "open()";
        sw->err = ngx_errno;
        return;
    }

    for (i = 0; i < sw->files.nelts; i++) {

        if (sw->step == 0) {
            if (!f[i].unused) {
                continue;
            }

            if (renameat(dfd, f[i].name, dfd, f[i].trash) == 0) {
                f[i].moved = 1;

            } else if (ngx_errno != NGX_ENOENT) {
                sw->op = "renameat()";
                sw->err = ngx_errno;
            }

            continue;
        }

        if (!f[i].moved) {
            continue;
        }

        if (!f[i].unused && linkat(dfd, f[i].trash, dfd, f[i].name, 0) == -1
            && ngx_errno != NGX_EEXIST)
        {
            /* not back: the trash name stays for the next run */
            sw->op = "linkat()";
            sw->err = ngx_errno;
            continue;
        }

        if (unlinkat(dfd, f[i].trash, 0) == 0 && f[i].unused) {
            sw->removed++;
        }
    }

    (void) close(dfd);
}


static void
ngx_commerce_seller_sweep_end(ngx_event_t *ev)
{
    ngx_commerce_seller_sweep_t  *sw = ev->data;

    if (sw->step == 0) {
        /* moved: the question again, its answer decides */
        sw->step = 1;

        switch (ngx_commerce_seller_sweep_ask(sw)) {

        case NGX_OK:
            return;

        case NGX_DONE:
            /* nothing moved */
            ngx_commerce_seller_sweep_done(sw);
            return;

        default:
            break;
        }

        /* no question asked: every moved file goes back */
        ngx_commerce_seller_sweep_answer(&sw->query, NGX_ERROR, NULL);
        return;
    }

    ngx_commerce_seller_sweep_done(sw);
}


static void
ngx_commerce_seller_sweep_done(ngx_commerce_seller_sweep_t *sw)
{
    if (sw->op != NULL) {
        ngx_log_error(NGX_LOG_ERR, sw->job.log, sw->err,
                      "commerce: image sweep: %s failed in \"%V\"", sw->op,
                      &sw->mcf->image_dir);
    }

    if (sw->removed || sw->cleared) {
        ngx_log_error(NGX_LOG_NOTICE, sw->job.log, 0,
                      "commerce: image sweep: %ui files no row shows "
                      "removed, %ui leftovers of interrupted steps cleared",
                      sw->removed, sw->cleared);
    }

    ngx_destroy_pool(sw->pool);
    sw->pool = NULL;

    ngx_commerce_job_done(&sw->job, 0);
}
