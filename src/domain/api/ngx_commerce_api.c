
/*
 * GET /api/v1/openapi.json: the OpenAPI document of the API
 * (commerce_openapi, read at configuration time and checked to be JSON).
 * t/006-openapi.t holds it to the route table both ways.
 */


#include "ngx_commerce_api.h"


#define NGX_COMMERCE_OPENAPI_MAX  (4 * 1024 * 1024)


static ngx_int_t ngx_commerce_api_openapi(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);


ngx_commerce_route_t  ngx_commerce_api_routes[] = {

    NGX_COMMERCE_ROUTE("GET", "/api/v1/openapi.json", NGX_COMMERCE_PUBLIC, 0,
                       "openapi", ngx_commerce_api_openapi, "getOpenApi"),

    ngx_commerce_route_end
};


ngx_int_t
ngx_commerce_api_conf(ngx_conf_t *cf, ngx_commerce_main_conf_t *mcf)
{
    yajl_val  v;

    if (mcf->openapi_file.len == 0) {
        return NGX_OK;
    }

    if (ngx_commerce_conf_read_file(cf, "commerce_openapi", &mcf->openapi_file,
                                    NGX_COMMERCE_OPENAPI_MAX, 0,
                                    &mcf->openapi)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    v = ngx_commerce_json_parse(cf->pool, mcf->openapi.data,
                                mcf->openapi.len);
    if (v == NULL || !YAJL_IS_OBJECT(v)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_openapi\": \"%V\" is not a JSON "
                           "object", &mcf->openapi_file);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_commerce_api_openapi(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_commerce_module);

    if (mcf->openapi.len == 0) {
        return ngx_commerce_reply_error(r, NGX_HTTP_NOT_FOUND, "NOT_FOUND",
                                        "no OpenAPI document is configured "
                                        "(commerce_openapi)");
    }

    return ngx_commerce_reply_json(r, NGX_HTTP_OK, mcf->openapi.data,
                                   mcf->openapi.len, 0);
}
