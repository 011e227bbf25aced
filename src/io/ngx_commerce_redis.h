
/*
 * Redis: a per-worker client on nginx's event loop, through hiredis' async
 * API, the way hiredis' adapters/ bind it to an event library: each
 * context's socket is wrapped in an nginx connection and the context's
 * add/del read/write and cleanup hooks drive nginx events.  hiredis 0.14
 * (Debian 12) has no timer hook, so every deadline (connect, command,
 * queue) is an nginx timer of ours.
 *
 * N connections per worker, used in turn, commands pipelined (sent
 * without waiting for the replies before them).  AUTH and SELECT on every
 * new connection before anything else; reconnect with backoff; a PING on
 * each idle connection every commerce_redis_ping_interval.  Lua scripts go
 * as EVALSHA, and as EVAL when the server answers NOSCRIPT.
 *
 * Nothing here knows what a key means: the domains do.
 */


#ifndef _NGX_COMMERCE_REDIS_H_INCLUDED_
#define _NGX_COMMERCE_REDIS_H_INCLUDED_


#include "ngx_commerce.h"
#include "ngx_commerce_shm.h"
#include <hiredis/hiredis.h>
#include <hiredis/async.h>


#define NGX_COMMERCE_REDIS_CONNECTIONS_MAX  64
#define NGX_COMMERCE_REDIS_ARGS_MAX         64


/*
 * How a command ended, as its handler is told (exactly once):
 *   REPLY        reply is Redis' answer, valid during the call only; it may
 *                be an error reply (reply->type == REDIS_REPLY_ERROR);
 *   TIMEOUT      no answer within commerce_redis_command_timeout: it was
 *                sent, and may have run; a late answer is dropped;
 *   LOST         the connection broke while it was in flight: it may have
 *                run;
 *   UNAVAILABLE  never sent: no connection came up within
 *                commerce_redis_queue_timeout, or the last one went down.
 */
typedef enum {
    NGX_COMMERCE_REDIS_REPLY = 0,
    NGX_COMMERCE_REDIS_TIMEOUT,
    NGX_COMMERCE_REDIS_LOST,
    NGX_COMMERCE_REDIS_UNAVAILABLE
} ngx_commerce_redis_rc_e;


typedef struct ngx_commerce_redis_op_s  ngx_commerce_redis_op_t;

typedef void (*ngx_commerce_redis_handler_pt)(void *data,
    ngx_commerce_redis_rc_e rc, redisReply *reply);


/*
 * A Lua script, defined once (static) by the code that runs it.  Its SHA1
 * is computed at the first use; the server learns the script from the
 * first EVAL that follows a NOSCRIPT.
 */
typedef struct {
    const char                  *name;       /* for logs */
    const char                  *text;
    u_char                       sha[40];    /* hex, set at the first use */
    unsigned                     hashed:1;
} ngx_commerce_redis_script_t;


/* commerce_redis: where and how to connect */
struct ngx_commerce_redis_conf_s {
    ngx_str_t                    addr;       /* as configured, for logs */
    char                        *host;       /* IP text; NULL: unix */
    int                          port;
    char                        *path;       /* unix socket */
    ngx_str_t                    password;   /* empty: no AUTH */
    ngx_uint_t                   db;         /* 0: no SELECT */
};


/* configuration and helpers (ngx_commerce_redis_conf.c) */
char *ngx_commerce_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
u_char *ngx_commerce_redis_format(ngx_uint_t argc, ngx_str_t *argv,
    size_t *len, size_t *head);
u_char *ngx_commerce_redis_format_eval(ngx_commerce_redis_script_t *script,
    ngx_array_t *keys, ngx_array_t *args, size_t *len, size_t *head);
u_char *ngx_commerce_redis_eval_text(ngx_commerce_redis_script_t *script,
    u_char *evalsha, size_t len, size_t head, size_t *out);
ngx_int_t ngx_commerce_redis_script_hash(ngx_commerce_redis_script_t *script);

/* the client (ngx_commerce_redis.c) */
ngx_int_t ngx_commerce_redis_init_worker(ngx_cycle_t *cycle,
    ngx_commerce_main_conf_t *mcf);
void ngx_commerce_redis_exit_worker(ngx_commerce_main_conf_t *mcf);
ngx_uint_t ngx_commerce_redis_available(void);

/*
 * Send a command (argv: its words) or a script (EVALSHA script nkeys
 * keys... args...; keys and args are arrays of ngx_str_t, or NULL).  The
 * words are copied.  NULL: refused at once (no commerce_redis, no
 * connection up or coming, the queue full): the handler is not called.
 * Otherwise the handler is called exactly once, never from inside this
 * call.  ngx_commerce_redis_cancel() before that: it is never called.
 */
ngx_commerce_redis_op_t *ngx_commerce_redis_command(ngx_uint_t argc,
    ngx_str_t *argv, ngx_commerce_redis_handler_pt handler, void *data);
ngx_commerce_redis_op_t *ngx_commerce_redis_eval(
    ngx_commerce_redis_script_t *script, ngx_array_t *keys,
    ngx_array_t *args, ngx_commerce_redis_handler_pt handler, void *data);
void ngx_commerce_redis_cancel(ngx_commerce_redis_op_t *op);


#endif /* _NGX_COMMERCE_REDIS_H_INCLUDED_ */
