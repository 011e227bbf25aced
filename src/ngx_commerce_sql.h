
/*
 * Every statement the module sends, in one place.  Each is prepared once
 * per connection (after every reconnect) and calls one SQL function from
 * sql/002_functions.sql, so a whole order, paid or not, is one round trip.
 * The pgbench scripts in t/bench/ run the same calls through pgbench as the DB ceiling.
 */


#ifndef _NGX_COMMERCE_SQL_H_INCLUDED_
#define _NGX_COMMERCE_SQL_H_INCLUDED_


#define NGX_COMMERCE_STATEMENTS(X)                                           \
    X(PRODUCT_GET,   "cm_product_get",                                       \
      "SELECT cm_product_get($1::bigint)", 1)                                \
    X(PRODUCT_LIST,  "cm_product_list",                                      \
      "SELECT cm_product_list($1::int, $2::int)", 2)                         \
    X(BALANCE_GET,   "cm_balance_get",                                       \
      "SELECT cm_balance_get($1::bigint)", 1)                                \
    X(BALANCE_CHARGE, "cm_balance_charge",                                   \
      "SELECT cm_balance_charge($1::bigint, $2::bigint, $3::bigint)", 3)     \
    X(ORDER_CREATE,  "cm_order_create",                                      \
      "SELECT cm_order_create($1::bigint, $2::bigint[], $3::int[], $4::text)",\
      4)                                                                     \
    X(ORDER_PAY,     "cm_order_pay",                                         \
      "SELECT cm_order_pay($1::bigint, $2::bigint, $3::text)", 3)            \
    X(ORDER_GET,     "cm_order_get",                                         \
      "SELECT cm_order_get($1::bigint, $2::bigint)", 2)                      \
    X(ORDERS_EXPIRE, "cm_orders_expire",                                     \
      "SELECT cm_orders_expire($1::int, $2::int)", 2)                        \
    X(CARD_BEGIN,    "cm_card_begin",                                        \
      "SELECT cm_card_begin($1::bigint, $2::bigint, $3::text, $4::text, "    \
      "$5::text)", 5)                                                        \
    X(ORDER_CREATE_CARD, "cm_order_create_card",                             \
      "SELECT cm_order_create_card($1::bigint, $2::bigint[], $3::int[], "    \
      "$4::text, $5::text, $6::text)", 6)                                    \
    X(CARD_ACCEPTED, "cm_card_accepted",                                     \
      "SELECT cm_card_accepted($1::bigint, $2::text, $3::text)", 3)          \
    X(CARD_GATEWAY,  "cm_card_gateway",                                      \
      "SELECT cm_card_gateway($1::bigint, $2::text)", 2)                     \
    X(CARD_CANCEL_DUE, "cm_card_cancel_due",                                 \
      "SELECT cm_card_cancel_due($1::int, $2::int, $3::int)", 3)             \
    X(CARD_STATS,    "cm_card_stats",                                        \
      "SELECT cm_card_stats()", 0)                                           \
    X(CARD_ABORT,    "cm_card_abort",                                        \
      "SELECT cm_card_abort($1::bigint, $2::text)", 2)                       \
    X(CARD_SETTLE,   "cm_card_settle",                                       \
      "SELECT cm_card_settle($1::bigint, $2::text, $3::text, $4::text)", 4)  \
    X(CARD_CANCELLED, "cm_card_cancelled",                                   \
      "SELECT cm_card_cancelled($1::bigint, $2::bool, $3::text)", 3)         \
    X(CARD_DUE,      "cm_card_due",                                          \
      "SELECT cm_card_due($1::int, $2::int, $3::int)", 3)                    \
    X(CARD_TIMEOUT,  "cm_card_timeout",                                      \
      "SELECT cm_card_timeout($1::bigint)", 1)                               \
    X(CARD_CALLBACK, "cm_card_callback",                                     \
      "SELECT cm_card_callback($1::text, $2::text, $3::text, $4::text)", 4)  \
    X(IDEM_BEGIN,    "cm_idem_begin",                                        \
      "SELECT cm_idem_begin($1::bigint, $2::text, $3::text, $4::text)", 4)   \
    X(IDEM_PURGE,    "cm_idem_purge",                                        \
      "SELECT cm_idem_purge($1::int)", 1)                                    \
    X(IDEM_FINISH,   "cm_idem_finish",                                       \
      "SELECT cm_idem_finish($1::bigint, $2::text, $3::int, $4::text)", 4)   \
    X(IDEM_ABANDON,  "cm_idem_abandon",                                      \
      "SELECT cm_idem_abandon($1::bigint, $2::text, $3::int, $4::int)", 4)   \
    /* with an Idempotency-Key: the work and its stored answer in one */     \
    /* transaction (sql/008_idem_atomic.sql) */                              \
    X(BALANCE_CHARGE_IDEM, "cm_balance_charge_idem",                         \
      "SELECT cm_idem_done(h.held, $4::bigint, $5::text, $6::int, "          \
      "cm_balance_charge($1::bigint, $2::bigint, $3::bigint)) "              \
      "FROM cm_idem_hold($4::bigint, $5::text) AS h(held)", 6)               \
    X(ORDER_CREATE_IDEM, "cm_order_create_idem",                             \
      "SELECT cm_idem_done(h.held, $5::bigint, $6::text, $7::int, "          \
      "cm_order_create($1::bigint, $2::bigint[], $3::int[], $4::text)) "     \
      "FROM cm_idem_hold($5::bigint, $6::text) AS h(held)", 7)               \
    X(ORDER_PAY_IDEM, "cm_order_pay_idem",                                   \
      "SELECT cm_idem_done(h.held, $4::bigint, $5::text, $6::int, "          \
      "cm_order_pay($1::bigint, $2::bigint, $3::text)) "                     \
      "FROM cm_idem_hold($4::bigint, $5::text) AS h(held)", 6)               \
    X(USER_NEXT_ID,  "cm_user_next_id",                                      \
      "SELECT cm_user_next_id()", 0)                                         \
    X(SIGNUP,        "cm_signup",                                            \
      "SELECT cm_signup($1::bigint, $2::text, $3::text, $4::text, $5::text, "\
      "$6::text, $7::text)", 7)                                              \
    X(LOGIN_LOOKUP,  "cm_login_lookup",                                      \
      "SELECT cm_login_lookup($1::text)", 1)                                 \
    X(LOGIN_FINISH,  "cm_login_finish",                                      \
      "SELECT cm_login_finish($1::bigint, $2::bool, $3::text, $4::text, "    \
      "$5::int)", 5)                                                         \
    X(REFRESH_ROTATE, "cm_refresh_rotate",                                   \
      "SELECT cm_refresh_rotate($1::text, $2::text, $3::int, $4::text)", 4)  \
    X(LOGOUT,        "cm_logout",                                            \
      "SELECT cm_logout($1::text, $2::text)", 2)                             \
    X(USER_GET,      "cm_user_get",                                          \
      "SELECT cm_user_get($1::bigint)", 1)                                   \
    X(USER_WITHDRAW, "cm_user_withdraw",                                     \
      "SELECT cm_user_withdraw($1::bigint, $2::text)", 2)                    \
    X(ROLE_SET,      "cm_role_set",                                          \
      "SELECT cm_role_set($1::bigint, $2::bigint, $3::text, $4::text)", 4)   \
    X(PASSWORD_REHASH, "cm_password_rehash",                                 \
      "SELECT cm_password_rehash($1::bigint, $2::text, $3::text)", 3)        \
    X(AUDIT_LIST,    "cm_audit_list",                                        \
      "SELECT cm_audit_list($1::bigint, $2::int)", 2)                        \
    X(PG_LOG,        "cm_pg_log",                                            \
      "SELECT cm_pg_log($1::bigint, $2::bigint, $3::text, $4::int, "         \
      "$5::text, $6::text, $7::text, $8::text, $9::int, $10::int, "          \
      "$11::text, $12::text, $13::text)", 13)


#define NGX_COMMERCE_STMT_ENUM(id, name, sql, n)  NGX_COMMERCE_STMT_##id,

typedef enum {
    NGX_COMMERCE_STATEMENTS(NGX_COMMERCE_STMT_ENUM)
    NGX_COMMERCE_STMT_COUNT
} ngx_commerce_stmt_e;


typedef struct {
    const char  *name;
    const char  *sql;
    int          nparams;
} ngx_commerce_stmt_t;


extern const ngx_commerce_stmt_t  ngx_commerce_statements[];


/* business errors raised by the SQL functions carry this SQLSTATE */
#define NGX_COMMERCE_SQLSTATE_BUSINESS  "CM001"


#endif /* _NGX_COMMERCE_SQL_H_INCLUDED_ */
