
/*
 * The Postgres pool's configuration: the conninfo (checked in the master,
 * so that no worker ever resolves a host name), the registry of
 * statements every connection prepares, and the parameters of a query.
 */


#include "ngx_commerce_pg.h"

#include <arpa/inet.h>


static char *ngx_commerce_pg_conf_strdup(ngx_pool_t *pool, const char *s);
static ngx_int_t ngx_commerce_pg_conf_host_ok(const char *hosts);


/*
 * Runs at configuration time (in the master): parse and validate the
 * conninfo, refuse anything that would make libpq resolve a host name in a
 * worker, and build the keyword/value arrays for PQconnectStartParams with
 * our statement_timeout and application_name added.
 */

ngx_int_t
ngx_commerce_pg_conf_check(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    char               *err, *ci, **kw, **val;
    u_char             *opts;
    size_t              n;
    ngx_uint_t          i, has_options, has_app, has_hostaddr;
    const char         *host;
    PQconninfoOption   *opt, *o;

    ci = ngx_pnalloc(cf->pool, mcf->conninfo.len + 1);
    if (ci == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_cpystrn((u_char *) ci, mcf->conninfo.data,
                       mcf->conninfo.len + 1);

    err = NULL;
    opt = PQconninfoParse(ci, &err);

    if (opt == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "commerce_pg_conninfo: invalid conninfo: %s",
                           err ? err : "out of memory");
        if (err) {
            PQfreemem(err);
        }
        return NGX_ERROR;
    }

    n = 0;
    host = NULL;
    has_hostaddr = 0;

    for (o = opt; o->keyword != NULL; o++) {
        if (o->val == NULL) {
            continue;
        }

        n++;

        if (ngx_strcmp(o->keyword, "host") == 0) {
            host = o->val;

        } else if (ngx_strcmp(o->keyword, "hostaddr") == 0
                   && o->val[0] != '\0')
        {
            has_hostaddr = 1;
        }
    }

    if (host != NULL && !has_hostaddr
        && ngx_commerce_pg_conf_host_ok(host) != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "commerce_pg_conninfo: host \"%s\" is not an IP "
                           "address or a socket directory; a worker must "
                           "not resolve names, give hostaddr= too", host);
        PQconninfoFree(opt);
        return NGX_ERROR;
    }

    kw = ngx_pcalloc(cf->pool, (n + 3) * sizeof(char *));
    val = ngx_pcalloc(cf->pool, (n + 3) * sizeof(char *));
    if (kw == NULL || val == NULL) {
        PQconninfoFree(opt);
        return NGX_ERROR;
    }

    i = 0;
    has_options = 0;
    has_app = 0;

    for (o = opt; o->keyword != NULL; o++) {
        if (o->val == NULL) {
            continue;
        }

        kw[i] = (char *) ngx_commerce_pg_conf_strdup(cf->pool, o->keyword);

        if (ngx_strcmp(o->keyword, "options") == 0) {
            /* append our statement_timeout to the operator's options */
            has_options = 1;
            opts = ngx_pnalloc(cf->pool, ngx_strlen(o->val) + 64);
            if (opts == NULL) {
                PQconninfoFree(opt);
                return NGX_ERROR;
            }
            (void) ngx_sprintf(opts, "%s -c statement_timeout=%M%Z",
                               o->val, mcf->statement_timeout);
            val[i] = (char *) opts;

        } else {
            if (ngx_strcmp(o->keyword, "application_name") == 0) {
                has_app = 1;
            }
            val[i] = (char *) ngx_commerce_pg_conf_strdup(cf->pool, o->val);
        }

        if (kw[i] == NULL || val[i] == NULL) {
            PQconninfoFree(opt);
            return NGX_ERROR;
        }

        i++;
    }

    PQconninfoFree(opt);

    if (!has_options) {
        opts = ngx_pnalloc(cf->pool, 64);
        if (opts == NULL) {
            return NGX_ERROR;
        }
        (void) ngx_sprintf(opts, "-c statement_timeout=%M%Z",
                           mcf->statement_timeout);
        kw[i] = "options";
        val[i] = (char *) opts;
        i++;
    }

    if (!has_app) {
        kw[i] = "application_name";
        val[i] = "ngx_commerce";
        i++;
    }

    kw[i] = NULL;
    val[i] = NULL;

    mcf->keywords = kw;
    mcf->values = val;

    return NGX_OK;
}


static char *
ngx_commerce_pg_conf_strdup(ngx_pool_t *pool, const char *s)
{
    size_t   len;
    u_char  *p;

    len = ngx_strlen(s) + 1;

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s, len);

    return (char *) p;
}


static ngx_int_t
ngx_commerce_pg_conf_host_ok(const char *hosts)
{
    char           buf[256];
    const char    *p, *end;
    size_t         len;
    unsigned char  addr[16];

    p = hosts;

    for ( ;; ) {
        end = strchr(p, ',');
        len = end ? (size_t) (end - p) : ngx_strlen(p);

        if (len >= sizeof(buf)) {
            return NGX_ERROR;
        }

        ngx_memcpy(buf, p, len);
        buf[len] = '\0';

        if (len != 0 && buf[0] != '/'
            && inet_pton(AF_INET, buf, addr) != 1
            && inet_pton(AF_INET6, buf, addr) != 1)
        {
            return NGX_ERROR;
        }

        if (end == NULL) {
            return NGX_OK;
        }

        p = end + 1;
    }
}


/*
 * A domain's channel: worker 0's first pool connection LISTENs on it and
 * hands each notification to notify; listening hears when the listener
 * starts, is up (after every connect) and goes down.  One channel (one
 * domain listens today).  The name is an SQL identifier, lower case.
 */

ngx_int_t
ngx_commerce_pg_listen(ngx_conf_t *cf, const char *channel,
    ngx_commerce_notify_pt notify, ngx_commerce_listening_pt listening)
{
    size_t                     i, len;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_commerce_module);

    len = ngx_strlen(channel);

    for (i = 0; i < len; i++) {
        if (!((channel[i] >= 'a' && channel[i] <= 'z') || channel[i] == '_'
              || (i > 0 && channel[i] >= '0' && channel[i] <= '9')))
        {
            break;
        }
    }

    if (len == 0 || len > 63 || i != len || mcf->listen_channel != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "commerce: cannot listen on \"%s\"", channel);
        return NGX_ERROR;
    }

    mcf->listen_sql = ngx_pnalloc(cf->pool, sizeof("LISTEN ") + len);
    if (mcf->listen_sql == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf((u_char *) mcf->listen_sql, "LISTEN %s%Z", channel);

    mcf->listen_channel = channel;
    mcf->notify = notify;
    mcf->listening = listening;

    return NGX_OK;
}


/*
 * A domain's table of statements, ended by a row without a name.  Every
 * connection prepares all of them; names must be unique.
 */

ngx_int_t
ngx_commerce_pg_register(ngx_conf_t *cf, ngx_commerce_stmt_t *table)
{
    ngx_uint_t                 i;
    ngx_commerce_stmt_t      **stmts, **st;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_commerce_module);

    if (mcf->statements.elts == NULL
        && ngx_array_init(&mcf->statements, cf->pool, 64,
                          sizeof(ngx_commerce_stmt_t *))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    for ( /* void */ ; table->name != NULL; table++) {
        stmts = mcf->statements.elts;

        for (i = 0; i < mcf->statements.nelts; i++) {
            if (ngx_strcmp(stmts[i]->name, table->name) == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "commerce: statement \"%s\" registered "
                                   "twice", table->name);
                return NGX_ERROR;
            }
        }

        if (table->nparams > NGX_COMMERCE_PG_PARAMS_MAX
            || (table->idem != NULL
                && table->idem->nparams != table->nparams + 3))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "commerce: statement \"%s\" has a wrong "
                               "number of parameters", table->name);
            return NGX_ERROR;
        }

        st = ngx_array_push(&mcf->statements);
        if (st == NULL) {
            return NGX_ERROR;
        }

        table->index = mcf->statements.nelts - 1;
        *st = table;
    }

    return NGX_OK;
}


/*
 * An integer parameter of q in decimal text, in the query's own room: it
 * cannot fail.  The room is used in turn, and no statement takes more
 * parameters than it has slots, so the parameters of the query being
 * built never overwrite each other.
 */

const char *
ngx_commerce_pg_int(ngx_commerce_pg_query_t *q, int64_t v)
{
    char  *p;

    p = q->ints[q->nints++ % NGX_COMMERCE_PG_PARAMS_MAX];

    *ngx_sprintf((u_char *) p, "%L", v) = '\0';

    return p;
}


/* a query ready to be built again, its integer parameters kept */

void
ngx_commerce_pg_reset(ngx_commerce_pg_query_t *q)
{
    ngx_memzero(&q->stmt, sizeof(ngx_commerce_pg_query_t)
                          - offsetof(ngx_commerce_pg_query_t, stmt));
}


/* a one-row, one-column integer result (the jobs' counts) */

ngx_int_t
ngx_commerce_pg_int_result(PGresult *res, int64_t *out)
{
    int  len;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1 || PQnfields(res) != 1
        || PQgetisnull(res, 0, 0))
    {
        return NGX_ERROR;
    }

    len = PQgetlength(res, 0, 0);

    if (cm_parse_int64((const unsigned char *) PQgetvalue(res, 0, 0),
                       (size_t) len, INT64_MIN + 1, INT64_MAX, out)
        != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}
