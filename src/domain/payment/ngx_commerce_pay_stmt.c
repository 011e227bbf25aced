
/*
 * The payment domain's statements (named in ngx_commerce_payment.h): the
 * request flow's (ngx_commerce_pay.c), the settling and net-cancels'
 * (ngx_commerce_settle.c), the reconciler's and the interface log's.
 */


#include "ngx_commerce_payment.h"


ngx_commerce_stmt_t  ngx_commerce_payment_statements[] = {

    [NGX_COMMERCE_STMT_CARD_BEGIN] =
    { "cm_card_begin",
      "SELECT cm_card_begin($1::bigint, $2::bigint, $3::text, $4::text, "
      "$5::text)", 5, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_ORDER_CREATE_CARD] =
    { "cm_order_create_card",
      "SELECT cm_order_create_card($1::bigint, $2::bigint[], $3::int[], "
      "$4::text, $5::text, $6::text, $7::bigint, $8::bigint[]) "
      "FROM cm_order_shipping($9::text) AS s", 9, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_ORDER_CREATE_CARD_CART] =
    { "cm_order_create_card_cart",
      "SELECT cm_order_create_card_cart($1::bigint, $2::bigint[], "
      "$3::text, $4::text, $5::text, $6::bigint) "
      "FROM cm_order_shipping($7::text) AS s", 7, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_CARD_BEGIN_POINTS] =
    { "cm_card_begin_points",
      "SELECT cm_card_begin_points($1::bigint, $2::bigint, $3::text, "
      "$4::text, $5::text, $6::bigint, $7::bigint)", 7, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_ORDER_CREATE_CARD_POINTS] =
    { "cm_order_create_card_points",
      "SELECT cm_order_create_card_points($1::bigint, $2::bigint[], "
      "$3::int[], $4::text, $5::text, $6::text, $7::bigint, $8::bigint[], "
      "$9::bigint, $10::bigint, $11::boolean) "
      "FROM cm_order_shipping($12::text) AS s", 12, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_CARD_ACCEPTED] =
    { "cm_card_accepted",
      "SELECT cm_card_accepted($1::bigint, $2::text, $3::text)", 3, 0,
      NULL, 0 },

    [NGX_COMMERCE_STMT_CARD_GATEWAY] =
    { "cm_card_gateway", "SELECT cm_card_gateway($1::bigint, $2::text)", 2,
      0, NULL, 0 },

    [NGX_COMMERCE_STMT_CARD_CANCEL_DUE] =
    { "cm_card_cancel_due",
      "SELECT cm_card_cancel_due($1::int, $2::int, $3::int)", 3, 0, NULL,
      0 },

    [NGX_COMMERCE_STMT_CARD_STATS] =
    { "cm_card_stats", "SELECT cm_card_stats()", 0, NGX_COMMERCE_STMT_READ,
      NULL, 0 },

    [NGX_COMMERCE_STMT_CARD_ABORT] =
    { "cm_card_abort", "SELECT cm_card_abort($1::bigint, $2::text)", 2, 0,
      NULL, 0 },

    [NGX_COMMERCE_STMT_CARD_SETTLE] =
    { "cm_card_settle",
      "SELECT cm_card_settle($1::bigint, $2::text, $3::text, $4::text)", 4,
      0, NULL, 0 },

    [NGX_COMMERCE_STMT_CARD_CANCELLED] =
    { "cm_card_cancelled",
      "SELECT cm_card_cancelled($1::bigint, $2::bool, $3::text)", 3, 0,
      NULL, 0 },

    [NGX_COMMERCE_STMT_CARD_DUE] =
    { "cm_card_due", "SELECT cm_card_due($1::int, $2::int, $3::int)", 3, 0,
      NULL, 0 },

    [NGX_COMMERCE_STMT_CARD_TIMEOUT] =
    { "cm_card_timeout", "SELECT cm_card_timeout($1::bigint)", 1, 0, NULL,
      0 },

    [NGX_COMMERCE_STMT_CARD_CALLBACK] =
    { "cm_card_callback",
      "SELECT cm_card_callback($1::text, $2::text, $3::text, $4::text)", 4,
      0, NULL, 0 },

    /* the order after a decline (cm_order_get, as the order domain reads) */
    [NGX_COMMERCE_STMT_CARD_ORDER] =
    { "cm_card_order", "SELECT cm_order_get($1::bigint, $2::bigint)", 2,
      NGX_COMMERCE_STMT_READ, NULL, 0 },

    [NGX_COMMERCE_STMT_PG_LOG] =
    { "cm_pg_log",
      "SELECT cm_pg_log($1::bigint, $2::bigint, $3::text, $4::int, "
      "$5::text, $6::text, $7::text, $8::text, $9::int, $10::int, "
      "$11::text, $12::text, $13::text)", 13, 0, NULL, 0 },

    [NGX_COMMERCE_STMT_TRANSFER_ISSUED] =
    { "cm_transfer_issued",
      "SELECT cm_transfer_issued($1::bigint, $2::text, $3::text, $4::text, "
      "$5::text, $6::text, $7::text)", 7, 0, NULL, 0 },

    [NGX_COMMERCE_PAYMENT_NSTMT] = { NULL, NULL, 0, 0, NULL, 0 }
};
