
/*
 * The router: one declarative table of routes, added by each domain at
 * configuration time (ngx_commerce_router_add), matched once per request
 * in the access phase.  The auth phase, roles, limits, Idempotency-Key,
 * metrics and the Allow header all read the matched row; nothing else in
 * the module knows a path.
 *
 * A path is split into segments; `{name}` segments capture a positive
 * integer (ctx->id, then ctx->id2).  A literal segment wins over a
 * capture, so /products/search may sit beside /products/{id}.
 */


#include "ngx_commerce_http.h"


#define NGX_COMMERCE_API_PREFIX    "/api/v1/"
#define NGX_COMMERCE_CAPTURES      2


static ngx_int_t ngx_commerce_router_parse(ngx_conf_t *cf,
    ngx_commerce_route_t *rt);
static ngx_uint_t ngx_commerce_router_methods(const char *method);
static ngx_uint_t ngx_commerce_router_same_path(ngx_commerce_route_t *a,
    ngx_commerce_route_t *b);
static ngx_int_t ngx_commerce_router_allow(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, ngx_commerce_route_t *best);


/* add a domain's table, ended by ngx_commerce_route_end */

ngx_int_t
ngx_commerce_router_add(ngx_conf_t *cf, ngx_commerce_route_t *table)
{
    ngx_str_t                  *names, name;
    ngx_uint_t                  i, n;
    ngx_commerce_route_t      **rt, **all;
    ngx_commerce_main_conf_t   *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_commerce_module);

    if (mcf->routes.elts == NULL) {
        if (ngx_array_init(&mcf->routes, cf->pool, 32,
                           sizeof(ngx_commerce_route_t *))
            != NGX_OK
            || ngx_array_init(&mcf->route_names, cf->pool, 32,
                              sizeof(ngx_str_t))
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        /* slot 0: requests no route matched */
        names = ngx_array_push(&mcf->route_names);
        if (names == NULL) {
            return NGX_ERROR;
        }

        ngx_str_set(names, "other");
    }

    for ( /* void */ ; table->method != NULL; table++) {

        if (ngx_commerce_router_parse(cf, table) != NGX_OK) {
            return NGX_ERROR;
        }

        all = mcf->routes.elts;

        for (i = 0; i < mcf->routes.nelts; i++) {
            if (ngx_commerce_router_same_path(all[i], table)
                && (all[i]->methods & table->methods))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "commerce: route %s %s is defined twice",
                                   table->method, table->path);
                return NGX_ERROR;
            }
        }

        /* the name's slot, shared by the rows that carry the same name */

        name.data = (u_char *) table->name;
        name.len = ngx_strlen(table->name);
        names = mcf->route_names.elts;

        for (n = 1; n < mcf->route_names.nelts; n++) {
            if (names[n].len == name.len
                && ngx_strncmp(names[n].data, name.data, name.len) == 0)
            {
                break;
            }
        }

        if (n == mcf->route_names.nelts) {
            if (n == NGX_COMMERCE_ROUTE_SLOTS) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "commerce: more than %d route names",
                                   NGX_COMMERCE_ROUTE_SLOTS - 1);
                return NGX_ERROR;
            }

            names = ngx_array_push(&mcf->route_names);
            if (names == NULL) {
                return NGX_ERROR;
            }

            *names = name;
        }

        table->slot = n;

        rt = ngx_array_push(&mcf->routes);
        if (rt == NULL) {
            return NGX_ERROR;
        }

        *rt = table;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_commerce_router_parse(ngx_conf_t *cf, ngx_commerce_route_t *rt)
{
    u_char      *p, *end, *seg;
    ngx_uint_t   captures;

    rt->methods = ngx_commerce_router_methods(rt->method);

    p = (u_char *) rt->path;
    end = p + ngx_strlen(rt->path);

    if (rt->methods == 0 || rt->handler == NULL || rt->name == NULL
        || rt->operation_id == NULL
        || (size_t) (end - p) <= sizeof(NGX_COMMERCE_API_PREFIX) - 1
        || ngx_strncmp(p, NGX_COMMERCE_API_PREFIX,
                       sizeof(NGX_COMMERCE_API_PREFIX) - 1) != 0)
    {
        goto invalid;
    }

    p += sizeof(NGX_COMMERCE_API_PREFIX) - 1;
    rt->nsegs = 0;
    captures = 0;

    while (p < end) {
        if (rt->nsegs == NGX_COMMERCE_ROUTE_SEGS) {
            goto invalid;
        }

        seg = p;

        while (p < end && *p != '/') {
            p++;
        }

        if (p == seg) {
            goto invalid;
        }

        if (*seg == '{') {
            if (p[-1] != '}' || ++captures > NGX_COMMERCE_CAPTURES) {
                goto invalid;
            }

            /* a capture: no data */
            rt->segs[rt->nsegs].data = NULL;
            rt->segs[rt->nsegs].len = 0;

        } else {
            rt->segs[rt->nsegs].data = seg;
            rt->segs[rt->nsegs].len = p - seg;
        }

        rt->nsegs++;

        if (p < end) {
            p++;
            if (p == end) {
                goto invalid;
            }
        }
    }

    return NGX_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "commerce: invalid route row \"%s %s\"",
                       rt->method ? rt->method : "-",
                       rt->path ? rt->path : "-");

    return NGX_ERROR;
}


static ngx_uint_t
ngx_commerce_router_methods(const char *method)
{
    if (ngx_strcmp(method, "GET") == 0) {
        return NGX_HTTP_GET|NGX_HTTP_HEAD;
    }

    if (ngx_strcmp(method, "POST") == 0) {
        return NGX_HTTP_POST;
    }

    if (ngx_strcmp(method, "PUT") == 0) {
        return NGX_HTTP_PUT;
    }

    if (ngx_strcmp(method, "PATCH") == 0) {
        return NGX_HTTP_PATCH;
    }

    if (ngx_strcmp(method, "DELETE") == 0) {
        return NGX_HTTP_DELETE;
    }

    return 0;
}


static ngx_uint_t
ngx_commerce_router_same_path(ngx_commerce_route_t *a,
    ngx_commerce_route_t *b)
{
    ngx_uint_t  i;

    if (a->nsegs != b->nsegs) {
        return 0;
    }

    for (i = 0; i < a->nsegs; i++) {
        if (a->segs[i].len != b->segs[i].len
            || (a->segs[i].len
                && ngx_strncmp(a->segs[i].data, b->segs[i].data,
                               a->segs[i].len) != 0))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * Find the request's row.  NGX_OK: ctx->route is set.  NGX_DECLINED:
 * ctx->route_rc says what to answer (404, 405, or 400 for a capture that
 * is not a positive integer), and ngx_commerce_router_refuse() answers it.
 * Either way ctx->slot names the path for the metrics, and
 * ctx->route_public tells the access phase whether the path takes a token.
 */

ngx_int_t
ngx_commerce_router_match(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx)
{
    u_char                    *p, *end;
    ngx_str_t                  seg[NGX_COMMERCE_ROUTE_SEGS];
    ngx_uint_t                 i, j, n, score, best_score, c;
    int64_t                    id[NGX_COMMERCE_CAPTURES];
    ngx_commerce_route_t     **all, *rt, *best, *hit;
    ngx_commerce_main_conf_t  *mcf;

    ctx->route_matched = 1;
    ctx->route = NULL;
    ctx->route_rc = NGX_HTTP_NOT_FOUND;
    ctx->route_public = 0;
    ctx->slot = 0;

    p = r->uri.data;
    end = r->uri.data + r->uri.len;

    if (r->uri.len <= sizeof(NGX_COMMERCE_API_PREFIX) - 1
        || ngx_strncmp(p, NGX_COMMERCE_API_PREFIX,
                       sizeof(NGX_COMMERCE_API_PREFIX) - 1) != 0)
    {
        return NGX_DECLINED;
    }

    p += sizeof(NGX_COMMERCE_API_PREFIX) - 1;

    for (n = 0; p < end; n++) {
        if (n == NGX_COMMERCE_ROUTE_SEGS) {
            return NGX_DECLINED;
        }

        seg[n].data = p;

        while (p < end && *p != '/') {
            p++;
        }

        seg[n].len = p - seg[n].data;

        if (seg[n].len == 0) {
            return NGX_DECLINED;
        }

        if (p < end) {
            p++;
            if (p == end) {
                /* trailing slash */
                return NGX_DECLINED;
            }
        }
    }

    /* the path: the pattern with the most literal segments that fits */

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);
    all = mcf->routes.elts;
    best = NULL;
    best_score = 0;

    for (i = 0; i < mcf->routes.nelts; i++) {
        rt = all[i];

        if (rt->nsegs != n) {
            continue;
        }

        score = 1;

        for (j = 0; j < n; j++) {
            if (rt->segs[j].len == 0) {
                continue;
            }

            if (rt->segs[j].len != seg[j].len
                || ngx_strncmp(rt->segs[j].data, seg[j].data, seg[j].len)
                   != 0)
            {
                break;
            }

            score++;
        }

        if (j == n && score > best_score) {
            best = rt;
            best_score = score;
        }
    }

    if (best == NULL) {
        return NGX_DECLINED;
    }

    /* the method, among the rows of that path; public if all of them are */

    hit = NULL;
    ctx->route_public = 1;

    for (i = 0; i < mcf->routes.nelts; i++) {
        rt = all[i];

        if (!ngx_commerce_router_same_path(rt, best)) {
            continue;
        }

        if (rt->roles != NGX_COMMERCE_PUBLIC) {
            ctx->route_public = 0;
        }

        if (r->method & rt->methods) {
            hit = rt;
        }
    }

    ctx->slot = (hit != NULL) ? hit->slot : best->slot;

    /* captures: positive integers */

    for (j = 0, c = 0; j < n; j++) {
        if (best->segs[j].len != 0) {
            continue;
        }

        if (cm_parse_int64(seg[j].data, seg[j].len, 1, INT64_MAX, &id[c])
            != 0)
        {
            ctx->route_rc = NGX_HTTP_BAD_REQUEST;
            return NGX_DECLINED;
        }

        c++;
    }

    if (hit == NULL) {
        ctx->route_rc = NGX_HTTP_NOT_ALLOWED;
        ctx->route = best;       /* for the Allow header */
        return NGX_DECLINED;
    }

    ctx->id = (c > 0) ? id[0] : 0;
    ctx->id2 = (c > 1) ? id[1] : 0;
    ctx->route = hit;
    ctx->route_rc = 0;

    return NGX_OK;
}


/* answer a request no row takes: 404, 405 with Allow, or 400 */

ngx_int_t
ngx_commerce_router_refuse(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx)
{
    ngx_commerce_route_t  *best;

    switch (ctx->route_rc) {

    case NGX_HTTP_BAD_REQUEST:
        return ngx_commerce_reply_invalid(r, "id must be a positive integer");

    case NGX_HTTP_NOT_ALLOWED:
        best = ctx->route;
        ctx->route = NULL;

        if (ngx_commerce_router_allow(r, ctx, best) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_commerce_reply_error(r, NGX_HTTP_NOT_ALLOWED,
                                        "METHOD_NOT_ALLOWED",
                                        "method not allowed");

    default:
        return ngx_commerce_reply_error(r, NGX_HTTP_NOT_FOUND, "NOT_FOUND",
                                        "no such resource");
    }
}


/* Allow: the methods of every row of the path, in table order */

static ngx_int_t
ngx_commerce_router_allow(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    ngx_commerce_route_t *best)
{
    u_char                    *p, *start;
    ngx_str_t                  allow;
    ngx_uint_t                 i;
    ngx_commerce_route_t     **all;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);
    all = mcf->routes.elts;

    start = ngx_pnalloc(r->pool, mcf->routes.nelts * sizeof("DELETE, "));
    if (start == NULL) {
        return NGX_ERROR;
    }

    p = start;

    for (i = 0; i < mcf->routes.nelts; i++) {
        if (!ngx_commerce_router_same_path(all[i], best)) {
            continue;
        }

        if (p != start) {
            *p++ = ',';
            *p++ = ' ';
        }

        p = ngx_cpymem(p, all[i]->method, ngx_strlen(all[i]->method));

        if (all[i]->methods & NGX_HTTP_HEAD) {
            p = ngx_cpymem(p, ", HEAD", sizeof(", HEAD") - 1);
        }
    }

    allow.data = start;
    allow.len = p - start;

    return ngx_commerce_reply_header(r, "Allow", &allow);
}


/* may the caller's role call the matched route? */

ngx_uint_t
ngx_commerce_router_allowed(ngx_commerce_ctx_t *ctx)
{
    unsigned  bit;

    if (ctx->route->roles == NGX_COMMERCE_PUBLIC) {
        return 1;
    }

    bit = cm_role_bit(ctx->claims.role, ngx_strlen(ctx->claims.role));

    return (ctx->route->roles & bit) != 0;
}


/*
 * The slot of a route name (commerce_limit names routes), 0 when no row
 * has it; *flags gets the flags of its rows, or-ed.
 */

ngx_uint_t
ngx_commerce_router_slot(ngx_commerce_main_conf_t *mcf, ngx_str_t *name,
    ngx_uint_t *flags)
{
    ngx_uint_t              i, slot;
    ngx_str_t              *names;
    ngx_commerce_route_t  **all;

    names = mcf->route_names.elts;
    slot = 0;

    for (i = 1; i < mcf->route_names.nelts; i++) {
        if (names[i].len == name->len
            && ngx_strncmp(names[i].data, name->data, name->len) == 0)
        {
            slot = i;
            break;
        }
    }

    if (flags != NULL) {
        *flags = 0;
        all = mcf->routes.elts;

        for (i = 0; slot && i < mcf->routes.nelts; i++) {
            if (all[i]->slot == slot) {
                *flags |= all[i]->flags;
            }
        }
    }

    return slot;
}


const char *
ngx_commerce_router_slot_name(ngx_commerce_main_conf_t *mcf, ngx_uint_t slot)
{
    ngx_str_t  *names;

    if (slot >= mcf->route_names.nelts) {
        return "other";
    }

    names = mcf->route_names.elts;

    return (const char *) names[slot].data;
}
