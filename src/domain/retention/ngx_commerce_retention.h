
/* the retention domain: logs purged by age, in bounded batches, a job */


#ifndef _NGX_COMMERCE_RETENTION_H_INCLUDED_
#define _NGX_COMMERCE_RETENTION_H_INCLUDED_


#include "ngx_commerce_http.h"


extern ngx_commerce_stmt_t   ngx_commerce_retention_statements[];


char *ngx_commerce_retention_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_commerce_retention_interval_conf(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_commerce_retention_init(ngx_conf_t *cf,
    ngx_commerce_main_conf_t *mcf);


#endif /* _NGX_COMMERCE_RETENTION_H_INCLUDED_ */
