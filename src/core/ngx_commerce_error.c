
/*
 * The registry of error codes: every code a response may carry, with its
 * HTTP status.  Codes are UPPER_SNAKE and stable (clients switch on them);
 * the SQL functions raise the business ones (SQLSTATE CM001, see
 * sql/README.md) and the module maps them here.  conf/openapi.json lists
 * the same codes.
 */


#include "ngx_commerce.h"


typedef struct {
    const char  *code;
    ngx_uint_t   status;
} ngx_commerce_error_map_t;


static ngx_commerce_error_map_t  ngx_commerce_errors[] = {
    { "INVALID_REQUEST",          NGX_HTTP_BAD_REQUEST },
    { "BALANCE_LIMIT_EXCEEDED",   NGX_HTTP_BAD_REQUEST },
    { "PRODUCT_NOT_FOUND",        NGX_HTTP_NOT_FOUND },
    { "ORDER_NOT_FOUND",          NGX_HTTP_NOT_FOUND },
    { "USER_NOT_FOUND",           NGX_HTTP_NOT_FOUND },
    { "OUT_OF_STOCK",             NGX_HTTP_CONFLICT },
    { "INSUFFICIENT_BALANCE",     NGX_HTTP_CONFLICT },
    { "INSUFFICIENT_POINTS",      NGX_HTTP_CONFLICT },
    { "PAYMENT_AMOUNT_MISMATCH",  NGX_HTTP_BAD_REQUEST },
    { "ORDER_NOT_PAYABLE",        NGX_HTTP_CONFLICT },
    { "PAYMENT_NOT_FOUND",        NGX_HTTP_NOT_FOUND },
    { "PAYMENT_STATE_CONFLICT",   NGX_HTTP_CONFLICT },
    { "IDEMPOTENCY_KEY_REUSED",   422 },
    { "IDEMPOTENCY_IN_FLIGHT",    NGX_HTTP_CONFLICT },
    { "PG_UNAVAILABLE",           NGX_HTTP_SERVICE_UNAVAILABLE },
    { "RATE_LIMITED",             NGX_HTTP_TOO_MANY_REQUESTS },
    { "EMAIL_TAKEN",              NGX_HTTP_CONFLICT },
    { "COUPON_NOT_FOUND",         NGX_HTTP_NOT_FOUND },
    { "COUPON_SOLD_OUT",          NGX_HTTP_CONFLICT },
    { "COUPON_LIMIT_REACHED",     NGX_HTTP_CONFLICT },
    { "COUPON_NOT_ISSUABLE",      NGX_HTTP_CONFLICT },
    { "COUPON_NOT_AVAILABLE",     NGX_HTTP_CONFLICT },
    { "COUPON_NOT_APPLICABLE",    NGX_HTTP_CONFLICT },
    { "PRODUCT_NOT_ON_SALE",      NGX_HTTP_CONFLICT },
    { "VARIANT_NOT_FOUND",        NGX_HTTP_NOT_FOUND },
    { "VARIANT_REQUIRED",         NGX_HTTP_BAD_REQUEST },
    { "STORE_NOT_FOUND",          NGX_HTTP_NOT_FOUND },
    { "STORE_EXISTS",             NGX_HTTP_CONFLICT },
    { "NOT_A_MANAGER",            NGX_HTTP_CONFLICT },
    { "MANAGER_NOT_ASSIGNED",     NGX_HTTP_NOT_FOUND },
    { "CATEGORY_NOT_FOUND",       NGX_HTTP_NOT_FOUND },
    { "CATEGORY_EXISTS",          NGX_HTTP_CONFLICT },
    { "CATEGORY_TOO_DEEP",        NGX_HTTP_BAD_REQUEST },
    { "CATEGORY_NOT_EMPTY",       NGX_HTTP_CONFLICT },
    { "VERSION_CONFLICT",         NGX_HTTP_CONFLICT },
    { "SKU_TAKEN",                NGX_HTTP_CONFLICT },
    { "PRODUCT_HAS_ORDERS",       NGX_HTTP_CONFLICT },
    { "DEAD_EVENT_NOT_FOUND",     NGX_HTTP_NOT_FOUND },
    { "CART_FULL",                NGX_HTTP_CONFLICT },
    { "CART_ITEM_NOT_FOUND",      NGX_HTTP_NOT_FOUND },
    { "CART_EMPTY",               NGX_HTTP_BAD_REQUEST },
    { "ADDRESS_BOOK_FULL",        NGX_HTTP_CONFLICT },
    { "ADDRESS_NOT_FOUND",        NGX_HTTP_NOT_FOUND },
    { "ADDRESS_REQUIRED",         NGX_HTTP_BAD_REQUEST },
    { "ORDER_PART_NOT_FOUND",     NGX_HTTP_NOT_FOUND },
    { "IMAGE_LIMIT",              NGX_HTTP_CONFLICT },
    { "IMAGE_NOT_FOUND",          NGX_HTTP_NOT_FOUND },
    { "VARIANT_IN_STOCK",         NGX_HTTP_CONFLICT },
    { "WAITLIST_DUPLICATE",       NGX_HTTP_CONFLICT },
    { "WAITLIST_FULL",            NGX_HTTP_CONFLICT },
    { "WAITLIST_ENTRY_NOT_FOUND", NGX_HTTP_NOT_FOUND },
    { "WAITLIST_ENTRY_CLOSED",    NGX_HTTP_CONFLICT },
    { "ORDER_PART_STATE",         NGX_HTTP_CONFLICT },
    { "TRACKING_NUMBER_TAKEN",    NGX_HTTP_CONFLICT },
    { "RETURN_OPEN",              NGX_HTTP_CONFLICT },
    { "CARRIER_UNAVAILABLE",      NGX_HTTP_SERVICE_UNAVAILABLE },
    { "SETTLEMENT_NOT_FOUND",     NGX_HTTP_NOT_FOUND },
    { "PAYOUT_NOT_FOUND",         NGX_HTTP_NOT_FOUND },
    { "PAYOUT_NOT_DEAD",          NGX_HTTP_CONFLICT },
    /* cancellations, returns, refunds (sql/functions/72_refund.sql) */
    { "ORDER_ALREADY_CANCELLED",  NGX_HTTP_CONFLICT },
    { "ORDER_NOT_CANCELLABLE",    NGX_HTTP_CONFLICT },
    { "REFUND_EXCEEDS_PAID",      NGX_HTTP_CONFLICT },
    { "RETURN_NOT_FOUND",         NGX_HTTP_NOT_FOUND },
    { "RETURN_NOT_ALLOWED",       NGX_HTTP_CONFLICT },
    { "RETURN_ALREADY_OPEN",      NGX_HTTP_CONFLICT },
    { "RETURN_QUANTITY_EXCEEDED", NGX_HTTP_CONFLICT },
    { "RETURN_ALREADY_DECIDED",   NGX_HTTP_CONFLICT },
    { "RETURN_NOT_APPROVED",      NGX_HTTP_CONFLICT },
    { "RETURN_NOT_RECEIVED",      NGX_HTTP_CONFLICT },
    { "RETURN_ALREADY_RESTOCKED", NGX_HTTP_CONFLICT },
    { NULL, 0 }
};


/* the status of a business code raised by the database; 0: not ours */

ngx_uint_t
ngx_commerce_error_status(const char *code)
{
    ngx_commerce_error_map_t  *e;

    for (e = ngx_commerce_errors; e->code != NULL; e++) {
        if (ngx_strcmp(e->code, code) == 0) {
            return e->status;
        }
    }

    return 0;
}
