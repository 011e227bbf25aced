
/*
 * Shipping and purchase confirmation (issue 13 sections 1 and 2), the
 * routes: a seller prepares a paid part and ships it with a carrier's
 * tracking number; the carrier's pushes arrive at the callback; the buyer
 * confirms a delivered part.  Who may do what, the states and the points
 * are the database's (sql/functions/71_shipping.sql); here are the bodies'
 * checks and the callback, which only starts a pull of the parcel's
 * tracking info (ngx_commerce_shipping_carrier.c): a push is never
 * trusted on its own body.
 */


#include "ngx_commerce_shipping.h"
#include "ngx_commerce_seller.h"
#include "cm_shipping.h"


static ngx_int_t ngx_commerce_shipping_prepare(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_shipping_ship(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_shipping_confirm(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);
static ngx_int_t ngx_commerce_shipping_callback(ngx_http_request_t *r,
    ngx_commerce_ctx_t *ctx, u_char *body, size_t len);


ngx_commerce_stmt_t  ngx_commerce_shipping_statements[] = {

    [NGX_COMMERCE_STMT_SHIP_PREPARE] =
    { "cm_seller_order_prepare",
      "SELECT cm_seller_order_prepare($1::bigint, $2::bigint)", 2, 0, NULL,
      0 },

    [NGX_COMMERCE_STMT_SHIP_SHIP] =
    { "cm_seller_order_ship",
      "SELECT cm_seller_order_ship($1::bigint, $2::bigint, $3::text, "
      "$4::text)", 4, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_SHIP_CONFIRM] =
    { "cm_order_part_confirm",
      "SELECT cm_order_part_confirm($1::bigint, $2::bigint, $3::bigint, "
      "$4::int)", 4, 0, NULL, 0 },

    /* the jobs' and the carrier's (ngx_commerce_shipping_carrier.c) */
    [NGX_COMMERCE_STMT_SHIP_DUE] =
    { "cm_shipments_due",
      "SELECT cm_shipments_due(now(), $1::int, $2::int, $3::int)", 3, 0,
      NULL, 0 },

    [NGX_COMMERCE_STMT_SHIP_REGISTERED] =
    { "cm_shipment_registered",
      "SELECT cm_shipment_registered($1::bigint, now())", 1, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_SHIP_TRACK] =
    { "cm_shipment_track",
      "SELECT cm_shipment_track($1::text, $2::text, $3::text, now())", 3, 0,
      NULL, 0 },

    [NGX_COMMERCE_STMT_SHIP_AUTOCONFIRM] =
    { "cm_parts_autoconfirm",
      "SELECT cm_parts_autoconfirm(now(), $1::int, $2::int, $3::int)", 3, 0,
      NULL, 0 },

    [NGX_COMMERCE_SHIPPING_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};


ngx_commerce_route_t  ngx_commerce_shipping_routes[] = {

    NGX_COMMERCE_ROUTE("POST", "/api/v1/seller/orders/{id}/prepare",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_order_prepare",
                       ngx_commerce_shipping_prepare, "prepareSellerOrder"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/seller/orders/{id}/shipment",
                       NGX_COMMERCE_SELLER_ROLES, 0, "seller_order_ship",
                       ngx_commerce_shipping_ship, "shipSellerOrder"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/orders/{id}/parts/{partId}/confirm",
                       CM_ROLE_ALL, 0, "order_part_confirm",
                       ngx_commerce_shipping_confirm, "confirmOrderPart"),

    NGX_COMMERCE_ROUTE("POST", "/api/v1/shipping/callback",
                       NGX_COMMERCE_PUBLIC, 0, "shipping_callback",
                       ngx_commerce_shipping_callback, "shippingCallback"),

    ngx_commerce_route_end
};


/* POST /seller/orders/{partId}/prepare: PAID -> PREPARING */

static ngx_int_t
ngx_commerce_shipping_prepare(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_shipping_statements[
                                            NGX_COMMERCE_STMT_SHIP_PREPARE],
               NGX_HTTP_OK, 2,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id));
}


/* POST /seller/orders/{partId}/shipment {"carrier","trackingNumber"} */

static ngx_int_t
ngx_commerce_shipping_ship(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    char               err[CM_JSON_ERR_LEN];
    u_char            *number;
    cm_shipment_req_t  req;

    if (cm_parse_shipment(body, len, &req, err, sizeof(err)) != 0) {
        return ngx_commerce_reply_invalid(r, err);
    }

    number = ngx_pnalloc(r->pool, req.number_len + 1);
    if (number == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(number, req.number, req.number_len + 1);

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_shipping_statements[NGX_COMMERCE_STMT_SHIP_SHIP],
               NGX_HTTP_CREATED, 4,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id),
               req.carrier, (char *) number);
}


/* POST /orders/{id}/parts/{partId}/confirm: the buyer's confirmation */

static ngx_int_t
ngx_commerce_shipping_confirm(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    ngx_commerce_shipping_conf_t  *scf;

    scf = ngx_commerce_shipping_conf_get();

    return ngx_commerce_handler_call(r, ctx,
               &ngx_commerce_shipping_statements[
                                            NGX_COMMERCE_STMT_SHIP_CONFIRM],
               NGX_HTTP_OK, 4,
               ngx_commerce_pg_int(&ctx->query, ctx->claims.user_id),
               ngx_commerce_pg_int(&ctx->query, ctx->id),
               ngx_commerce_pg_int(&ctx->query, ctx->id2),
               ngx_commerce_pg_int(&ctx->query, scf->points_bp));
}


/*
 * POST /shipping/callback?carrier=CJ: a carrier's push of a registered
 * parcel's event, {"fid","invoice_no","level",..}.  Only a hint: the
 * parcel's tracking info is pulled from the carrier and that answer is
 * recorded, so a forged body changes nothing.  Answered at once, in the
 * tracking service's words ({"code":true,"message":"success"}).
 */

static ngx_int_t
ngx_commerce_shipping_callback(ngx_http_request_t *r, ngx_commerce_ctx_t *ctx,
    u_char *body, size_t len)
{
    yajl_val                       v;
    ngx_str_t                      arg, number;
    const char                    *carrier;
    ngx_commerce_shipping_conf_t  *scf;

    static u_char  ok[] = "{\"code\":true,\"message\":\"success\"}";

    scf = ngx_commerce_shipping_conf_get();

    if (scf->gw == NULL) {
        return ngx_commerce_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                       "INVALID_REQUEST",
                                       "no carrier is configured");
    }

    if (ngx_http_arg(r, (u_char *) "carrier", 7, &arg) != NGX_OK
        || (carrier = cm_carrier_name(arg.data, arg.len)) == NULL)
    {
        return ngx_commerce_reply_invalid(r, "carrier must be CJ, LOTTE or "
                                          "HANJIN");
    }

    v = ngx_commerce_json_parse(r->pool, body, len);

    if (v == NULL || !YAJL_IS_OBJECT(v)
        || ngx_commerce_json_str(r->pool, v, "invoice_no", NULL, &number,
                                 CM_TRACKING_MAX) != NGX_OK
        || !cm_tracking_number_ok(number.data, number.len))
    {
        return ngx_commerce_reply_invalid(r, "invoice_no must be a string of "
                                          "9 to 14 digits");
    }

    ngx_commerce_log(NGX_LOG_INFO, r, ctx,
                     "carrier %s pushed parcel %V: pulling its tracking info",
                     carrier, &number);

    if (ngx_commerce_shipping_carrier_pull(scf, carrier, number.data,
                                           number.len)
        != NGX_OK)
    {
        return ngx_commerce_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "CARRIER_UNAVAILABLE",
                                       "the carrier cannot be asked now, "
                                       "push again later");
    }

    return ngx_commerce_reply_json(r, NGX_HTTP_OK, ok, sizeof(ok) - 1, 0);
}
