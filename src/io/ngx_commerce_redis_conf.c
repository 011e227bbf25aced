
/*
 * The Redis client's configuration and the bytes it sends:
 *
 *     commerce_redis 127.0.0.1:6379 [password_file=path] [db=N];
 *     commerce_redis [::1]:6379;
 *     commerce_redis unix:/run/redis/redis.sock;
 *
 * The server is an IP address or a unix socket, never a host name: hiredis
 * would resolve a name in the worker, and a worker must not wait on a
 * resolver (ngx-commerce: allow-blocking names the one deliberate call, in
 * ngx_commerce_redis.c).  The
 * password file is a secret (owner only, like every key file of the
 * module).  Commands are written in RESP here, into memory of their own,
 * so that a queued command owes nothing to its caller.
 */


#include "ngx_commerce_redis.h"

#include <arpa/inet.h>
#include <sys/un.h>
#include <openssl/evp.h>


#define NGX_COMMERCE_REDIS_PORT       6379
#define NGX_COMMERCE_REDIS_DB_MAX     65535
#define NGX_COMMERCE_REDIS_PW_MAX     4096


static ngx_int_t ngx_commerce_redis_conf_addr(ngx_conf_t *cf,
    ngx_commerce_redis_conf_t *rc, ngx_str_t *v);
static ngx_int_t ngx_commerce_redis_conf_param(ngx_conf_t *cf,
    ngx_commerce_redis_conf_t *rc, ngx_str_t *arg);
static ngx_int_t ngx_commerce_redis_conf_password(ngx_conf_t *cf,
    ngx_commerce_redis_conf_t *rc, ngx_str_t *path);
static size_t ngx_commerce_redis_arg_len(size_t len);


char *
ngx_commerce_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_commerce_main_conf_t *mcf = conf;

    ngx_str_t                  *value;
    ngx_uint_t                  i;
    ngx_commerce_redis_conf_t  *rc;

    if (mcf->redis != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    rc = ngx_pcalloc(cf->pool, sizeof(ngx_commerce_redis_conf_t));
    if (rc == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_commerce_redis_conf_addr(cf, rc, &value[1]) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_commerce_redis_conf_param(cf, rc, &value[i]) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    mcf->redis = rc;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_commerce_redis_conf_addr(ngx_conf_t *cf, ngx_commerce_redis_conf_t *rc,
    ngx_str_t *v)
{
    u_char     *p, *last, *colon;
    size_t      len;
    ngx_int_t   port;
    u_char      buf[INET6_ADDRSTRLEN + 1], bin[16];

    rc->addr = *v;

    if (v->len > 5 && ngx_strncmp(v->data, "unix:", 5) == 0) {
        len = v->len - 5;

        if (v->data[5] != '/' || len >= sizeof(((struct sockaddr_un *) 0)
                                                   ->sun_path))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_redis\": \"%V\": a unix socket "
                               "needs an absolute path shorter than %uz "
                               "bytes", v,
                               sizeof(((struct sockaddr_un *) 0)->sun_path));
            return NGX_ERROR;
        }

        rc->path = ngx_pnalloc(cf->pool, len + 1);
        if (rc->path == NULL) {
            return NGX_ERROR;
        }

        (void) ngx_cpystrn((u_char *) rc->path, v->data + 5, len + 1);

        return NGX_OK;
    }

    p = v->data;
    last = v->data + v->len;
    colon = NULL;

    if (p < last && *p == '[') {
        /* [IPv6]:port */
        p++;
        colon = ngx_strlchr(p, last, ']');
        if (colon == NULL) {
            goto invalid;
        }

        len = colon - p;
        colon++;

        if (colon != last && *colon != ':') {
            goto invalid;
        }

        if (colon == last) {
            colon = NULL;
        }

    } else {
        /* IPv4[:port]; an IPv6 address needs its brackets */
        colon = ngx_strlchr(p, last, ':');
        len = (colon ? colon : last) - p;
    }

    if (len == 0 || len > INET6_ADDRSTRLEN) {
        goto invalid;
    }

    ngx_memcpy(buf, p, len);
    buf[len] = '\0';

    if (inet_pton(v->data[0] == '[' ? AF_INET6 : AF_INET, (char *) buf, bin)
        != 1)
    {
        goto invalid;
    }

    port = NGX_COMMERCE_REDIS_PORT;

    if (colon != NULL) {
        port = ngx_atoi(colon + 1, last - colon - 1);

        if (port < 1 || port > 65535) {
            goto invalid;
        }
    }

    rc->host = ngx_pnalloc(cf->pool, len + 1);
    if (rc->host == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(rc->host, buf, len + 1);
    rc->port = (int) port;

    return NGX_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"commerce_redis\": \"%V\" is not an IPv4 address, "
                       "a bracketed IPv6 address ([::1]) with an optional "
                       "port 1..65535, or unix:/path; a worker must not "
                       "resolve host names", v);
    return NGX_ERROR;
}


static ngx_int_t
ngx_commerce_redis_conf_param(ngx_conf_t *cf, ngx_commerce_redis_conf_t *rc,
    ngx_str_t *arg)
{
    ngx_int_t  n;
    ngx_str_t  v;

    if (arg->len > 14 && ngx_strncmp(arg->data, "password_file=", 14) == 0) {
        v.data = arg->data + 14;
        v.len = arg->len - 14;

        if (rc->password.data != NULL) {
            goto invalid;
        }

        return ngx_commerce_redis_conf_password(cf, rc, &v);
    }

    if (arg->len > 3 && ngx_strncmp(arg->data, "db=", 3) == 0) {
        n = ngx_atoi(arg->data + 3, arg->len - 3);

        if (n == NGX_ERROR || n > NGX_COMMERCE_REDIS_DB_MAX) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"commerce_redis\": \"%V\": db must be a "
                               "number 0..%d", arg,
                               NGX_COMMERCE_REDIS_DB_MAX);
            return NGX_ERROR;
        }

        rc->db = (ngx_uint_t) n;

        return NGX_OK;
    }

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"commerce_redis\": invalid parameter \"%V\" "
                       "(password_file=path, db=N)", arg);
    return NGX_ERROR;
}


/* the first line of an owner-only file, without its line ending */

static ngx_int_t
ngx_commerce_redis_conf_password(ngx_conf_t *cf,
    ngx_commerce_redis_conf_t *rc, ngx_str_t *path)
{
    u_char     *nl;
    ngx_str_t   text, name;

    name = *path;

    if (ngx_commerce_conf_read_file(cf, "commerce_redis password_file",
                                    &name, NGX_COMMERCE_REDIS_PW_MAX, 1,
                                    &text)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    nl = ngx_strlchr(text.data, text.data + text.len, '\n');
    if (nl != NULL) {
        text.len = nl - text.data;
    }

    if (text.len && text.data[text.len - 1] == '\r') {
        text.len--;
    }

    if (text.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_redis\": password_file \"%V\" is "
                           "empty", &name);
        return NGX_ERROR;
    }

    rc->password = text;

    return NGX_OK;
}


/*
 * argv in RESP ("*2\r\n$4\r\nPING\r\n..."), in memory of its own
 * (ngx_alloc: free it with ngx_free).  head: the bytes before the third
 * word (the count and the first two words), which an EVALSHA replaces to
 * become an EVAL.
 */

u_char *
ngx_commerce_redis_format(ngx_uint_t argc, ngx_str_t *argv, size_t *len,
    size_t *head)
{
    u_char      *buf, *p;
    size_t       size;
    ngx_uint_t   i;

    size = sizeof("*") - 1 + NGX_INT_T_LEN + 2;

    for (i = 0; i < argc; i++) {
        size += ngx_commerce_redis_arg_len(argv[i].len);
    }

    buf = ngx_alloc(size, ngx_cycle->log);
    if (buf == NULL) {
        return NULL;
    }

    p = ngx_sprintf(buf, "*%ui\r\n", argc);

    for (i = 0; i < argc; i++) {
        if (i == 2 && head != NULL) {
            *head = p - buf;
        }

        p = ngx_sprintf(p, "$%uz\r\n", argv[i].len);
        p = ngx_cpymem(p, argv[i].data, argv[i].len);
        *p++ = '\r';
        *p++ = '\n';
    }

    *len = p - buf;

    return buf;
}


/* EVALSHA sha nkeys keys... args... (keys, args: ngx_str_t, or NULL) */

u_char *
ngx_commerce_redis_format_eval(ngx_commerce_redis_script_t *script,
    ngx_array_t *keys, ngx_array_t *args, size_t *len, size_t *head)
{
    u_char      nkeys[NGX_INT_T_LEN];
    ngx_str_t   argv[NGX_COMMERCE_REDIS_ARGS_MAX];
    ngx_uint_t  nk, na;

    nk = keys ? keys->nelts : 0;
    na = args ? args->nelts : 0;

    if (3 + nk + na > NGX_COMMERCE_REDIS_ARGS_MAX
        || ngx_commerce_redis_script_hash(script) != NGX_OK)
    {
        return NULL;
    }

    ngx_str_set(&argv[0], "EVALSHA");
    argv[1].data = script->sha;
    argv[1].len = 40;
    argv[2].data = nkeys;
    argv[2].len = ngx_sprintf(nkeys, "%ui", nk) - nkeys;

    if (nk) {
        ngx_memcpy(&argv[3], keys->elts, nk * sizeof(ngx_str_t));
    }

    if (na) {
        ngx_memcpy(&argv[3 + nk], args->elts, na * sizeof(ngx_str_t));
    }

    return ngx_commerce_redis_format(3 + nk + na, argv, len, head);
}


/*
 * The EVAL form of a formatted EVALSHA: the same count, "EVAL" and the
 * script's text instead of "EVALSHA" and its SHA1, then the same keys and
 * arguments.
 */

u_char *
ngx_commerce_redis_eval_text(ngx_commerce_redis_script_t *script,
    u_char *evalsha, size_t len, size_t head, size_t *out)
{
    u_char  *buf, *p, *count;
    size_t   tlen, clen;

    tlen = ngx_strlen(script->text);

    /* "*N\r\n" of the EVALSHA */
    count = ngx_strlchr(evalsha, evalsha + len, '\n');
    if (count == NULL || head > len) {
        return NULL;
    }

    clen = count + 1 - evalsha;

    buf = ngx_alloc(clen + ngx_commerce_redis_arg_len(4)
                    + ngx_commerce_redis_arg_len(tlen) + len - head,
                    ngx_cycle->log);
    if (buf == NULL) {
        return NULL;
    }

    p = ngx_cpymem(buf, evalsha, clen);
    p = ngx_cpymem(p, "$4\r\nEVAL\r\n", 10);
    p = ngx_sprintf(p, "$%uz\r\n", tlen);
    p = ngx_cpymem(p, script->text, tlen);
    *p++ = '\r';
    *p++ = '\n';
    p = ngx_cpymem(p, evalsha + head, len - head);

    *out = p - buf;

    return buf;
}


ngx_int_t
ngx_commerce_redis_script_hash(ngx_commerce_redis_script_t *script)
{
    u_char        md[EVP_MAX_MD_SIZE];
    unsigned int  mdlen;

    if (script->hashed) {
        return NGX_OK;
    }

    if (EVP_Digest(script->text, ngx_strlen(script->text), md, &mdlen,
                   EVP_sha1(), NULL)
        != 1 || mdlen != 20)
    {
        return NGX_ERROR;
    }

    (void) ngx_hex_dump(script->sha, md, 20);
    script->hashed = 1;

    return NGX_OK;
}


/* "$<len>\r\n<bytes>\r\n" */

static size_t
ngx_commerce_redis_arg_len(size_t len)
{
    return 1 + NGX_SIZE_T_LEN + 2 + len + 2;
}
