
/*
 * Configuration helpers shared by the directives of every layer: numeric
 * bounds that name their directive, and files read at configuration time
 * (secrets refused when group or others may read them).
 */


#include "ngx_commerce.h"


static ngx_int_t ngx_commerce_conf_private(ngx_conf_t *cf,
    const char *directive, ngx_str_t *path, ngx_file_info_t *fi);


/* the configuration of the running cycle (timers and jobs have no request) */

ngx_commerce_main_conf_t *
ngx_commerce_conf_main(void)
{
    return ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_commerce_module);
}


/* like ngx_conf_check_num_bounds(), but the message names the directive */

char *
ngx_commerce_conf_bounds(ngx_conf_t *cf, void *post, void *data)
{
    ngx_commerce_bounds_t  *b = post;
    ngx_int_t              *np = data;

    ngx_str_t  *value;

    value = cf->args->elts;

    if (*np >= b->low && *np <= b->high) {
        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" must be between %i and %i, not \"%V\"",
                       &value[0], b->low, b->high, &value[1]);

    return NGX_CONF_ERROR;
}


/*
 * The whole file, at most max bytes, into cf->pool (NUL-terminated; the
 * terminator is not counted).  private: refuse a file that group or others
 * may access, as a secret must not be.
 */

ngx_int_t
ngx_commerce_conf_read_file(ngx_conf_t *cf, const char *directive,
    ngx_str_t *path, size_t max, ngx_uint_t private, ngx_str_t *out)
{
    ssize_t          n;
    u_char          *buf;
    size_t           size;
    ngx_file_t       file;
    ngx_file_info_t  fi;

    if (ngx_conf_full_name(cf->cycle, path, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = *path;
    file.log = cf->log;

    file.fd = ngx_open_file(path->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%s\": cannot open \"%V\"", directive, path);
        return NGX_ERROR;
    }

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%s\": cannot stat \"%V\"", directive, path);
        goto failed;
    }

    if (private && ngx_commerce_conf_private(cf, directive, path, &fi)
                   != NGX_OK)
    {
        goto failed;
    }

    size = (size_t) ngx_file_size(&fi);

    if (size > max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\": \"%V\" is larger than %uz bytes",
                           directive, path, max);
        goto failed;
    }

    buf = ngx_pnalloc(cf->pool, size + 1);
    if (buf == NULL) {
        goto failed;
    }

    n = ngx_read_file(&file, buf, size, 0);
    if (n == NGX_ERROR || (size_t) n != size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%s\": cannot read \"%V\"", directive, path);
        goto failed;
    }

    (void) ngx_close_file(file.fd);

    buf[size] = '\0';
    out->data = buf;
    out->len = size;

    return NGX_OK;

failed:

    (void) ngx_close_file(file.fd);

    return NGX_ERROR;
}


/* a key file in the cm_pii keyring format; its text is wiped after use */

ngx_int_t
ngx_commerce_conf_keyring(ngx_conf_t *cf, const char *directive,
    ngx_str_t *path, cm_keyring_t **out)
{
    ngx_int_t      rc;
    ngx_str_t      text;
    const char    *err;
    cm_keyring_t  *kr;

    if (ngx_commerce_conf_read_file(cf, directive, path, 65536, 1, &text)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    kr = ngx_pcalloc(cf->pool, sizeof(cm_keyring_t));
    if (kr == NULL) {
        ngx_explicit_memzero(text.data, text.len);
        return NGX_ERROR;
    }

    rc = NGX_OK;

    if (cm_keyring_parse((char *) text.data, text.len, kr, &err) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\": \"%V\", line %ui: %s", directive, path,
                           (ngx_uint_t) kr->line, err);
        rc = NGX_ERROR;
    }

    ngx_explicit_memzero(text.data, text.len);

    *out = kr;

    return rc;
}


static ngx_int_t
ngx_commerce_conf_private(ngx_conf_t *cf, const char *directive,
    ngx_str_t *path, ngx_file_info_t *fi)
{
    u_char  mode[5];

    if (fi->st_mode & (S_IRWXG|S_IRWXO)) {
        /* ngx_sprintf() has no octal */
        mode[0] = (u_char) ('0' + ((fi->st_mode >> 9) & 7));
        mode[1] = (u_char) ('0' + ((fi->st_mode >> 6) & 7));
        mode[2] = (u_char) ('0' + ((fi->st_mode >> 3) & 7));
        mode[3] = (u_char) ('0' + (fi->st_mode & 7));
        mode[4] = '\0';

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\": \"%V\" is accessible by group or "
                           "others (mode %s): chmod 600 it", directive,
                           path, mode);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* a domain's counter: its slot in the metrics zone, or NGX_ERROR */

ngx_int_t
ngx_commerce_conf_counter(ngx_conf_t *cf, const char *family,
    const char *type, const char *help, const char *labels)
{
    ngx_commerce_counter_t    *c;
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_commerce_module);

    if (mcf->counters.elts == NULL
        && ngx_array_init(&mcf->counters, cf->pool, 16,
                          sizeof(ngx_commerce_counter_t))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (mcf->counters.nelts >= NGX_COMMERCE_COUNTERS_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "commerce: more than %d counters",
                           NGX_COMMERCE_COUNTERS_MAX);
        return NGX_ERROR;
    }

    c = ngx_array_push(&mcf->counters);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->family = family;
    c->type = type;
    c->help = help;
    c->labels = labels;

    return mcf->counters.nelts - 1;
}


/*
 * A directive's percentage: "1%", "0.5%", "12.25%" (0 to 100 percent, at
 * most two decimals) in basis points (1/10000).  NGX_ERROR: not one.
 */

ngx_int_t
ngx_commerce_conf_percent(ngx_str_t *v, ngx_uint_t *bp)
{
    u_char      *p, *last;
    ngx_uint_t   whole, frac, digits;

    p = v->data;
    last = v->data + v->len;

    if (v->len < 2 || last[-1] != '%') {
        return NGX_ERROR;
    }

    last--;
    whole = 0;
    digits = 0;

    while (p < last && *p >= '0' && *p <= '9' && digits < 3) {
        whole = whole * 10 + (*p++ - '0');
        digits++;
    }

    if (digits == 0) {
        return NGX_ERROR;
    }

    frac = 0;

    if (p < last && *p == '.') {
        p++;
        digits = 0;

        while (p < last && *p >= '0' && *p <= '9' && digits < 2) {
            frac = frac * 10 + (*p++ - '0');
            digits++;
        }

        if (digits == 0) {
            return NGX_ERROR;
        }

        if (digits == 1) {
            frac *= 10;
        }
    }

    if (p != last || whole * 100 + frac > 10000) {
        return NGX_ERROR;
    }

    *bp = whole * 100 + frac;

    return NGX_OK;
}
