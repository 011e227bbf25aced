
/*
 * ngx_commerce: a commerce API (balance, products, orders, payments,
 * accounts, coupons, best sellers, sellers, carts and addresses, the
 * restock queue) served from inside the nginx worker over non-blocking
 * Postgres.
 *
 * This file is the top of the layers (src/README.md): the module
 * definition, its directives and configuration, and the composition of
 * the domains: their route tables, statement tables and jobs.
 */


#include "ngx_commerce_http.h"
#include "ngx_commerce_client.h"
#include "ngx_commerce_redis.h"
#include "ngx_commerce_catalog.h"
#include "ngx_commerce_balance.h"
#include "ngx_commerce_order.h"
#include "ngx_commerce_payment.h"
#include "ngx_commerce_account.h"
#include "ngx_commerce_coupon.h"
#include "ngx_commerce_sales.h"
#include "ngx_commerce_seller.h"
#include "ngx_commerce_cart.h"
#include "ngx_commerce_event.h"
#include "ngx_commerce_api.h"
#include "ngx_commerce_retention.h"
#include "ngx_commerce_points.h"
#include "ngx_commerce_waitlist.h"
#include "ngx_commerce_shipping.h"
#include "ngx_commerce_settlement.h"
#include "ngx_commerce_refund.h"


static void *ngx_commerce_create_main_conf(ngx_conf_t *cf);
static char *ngx_commerce_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_commerce_create_loc_conf(ngx_conf_t *cf);
static char *ngx_commerce_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_commerce_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_commerce_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_commerce_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_commerce_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_commerce_init_process(ngx_cycle_t *cycle);
static void ngx_commerce_exit_process(ngx_cycle_t *cycle);


/* the domains: their rows of the route table and their statements */

static ngx_commerce_route_t  *ngx_commerce_routes[] = {
    ngx_commerce_catalog_routes,
    ngx_commerce_balance_routes,
    ngx_commerce_order_routes,
    ngx_commerce_order_part_routes,
    ngx_commerce_payment_routes,
    ngx_commerce_account_routes,
    ngx_commerce_coupon_routes,
    ngx_commerce_sales_routes,
    ngx_commerce_seller_routes,
    ngx_commerce_points_routes,
    ngx_commerce_waitlist_routes,
    ngx_commerce_shipping_routes,
    ngx_commerce_settlement_routes,
    ngx_commerce_refund_routes,
    ngx_commerce_cart_routes,
    ngx_commerce_cart_address_routes,
    ngx_commerce_seller_image_routes,
    ngx_commerce_event_routes,
    ngx_commerce_api_routes,
    NULL
};

static ngx_commerce_stmt_t  *ngx_commerce_statements[] = {
    ngx_commerce_catalog_statements,
    ngx_commerce_balance_statements,
    ngx_commerce_order_statements,
    ngx_commerce_order_part_statements,
    ngx_commerce_payment_statements,
    ngx_commerce_account_statements,
    ngx_commerce_coupon_statements,
    ngx_commerce_sales_statements,
    ngx_commerce_seller_statements,
    ngx_commerce_points_statements,
    ngx_commerce_waitlist_statements,
    ngx_commerce_shipping_statements,
    ngx_commerce_settlement_statements,
    ngx_commerce_refund_statements,
    ngx_commerce_cart_statements,
    ngx_commerce_cart_address_statements,
    ngx_commerce_seller_image_statements,
    ngx_commerce_event_statements,
    ngx_commerce_retention_statements,
    NULL
};


static ngx_commerce_bounds_t  ngx_commerce_pool_size_bounds = {
    ngx_commerce_conf_bounds, 1, 1024
};

static ngx_commerce_bounds_t  ngx_commerce_depth_bounds = {
    ngx_commerce_conf_bounds, 1, NGX_COMMERCE_PG_DEPTH_MAX
};

static ngx_commerce_bounds_t  ngx_commerce_redis_connections_bounds = {
    ngx_commerce_conf_bounds, 1, NGX_COMMERCE_REDIS_CONNECTIONS_MAX
};

static ngx_commerce_bounds_t  ngx_commerce_queue_length_bounds = {
    ngx_commerce_conf_bounds, 0, 1048576
};

static ngx_commerce_bounds_t  ngx_commerce_timeout_bounds = {
    ngx_commerce_conf_bounds, 1, 86400000
};

static ngx_commerce_bounds_t  ngx_commerce_body_max_bounds = {
    ngx_commerce_conf_bounds, 64, 16777216
};

/* sql/018_images.sql holds bytes to 5 MiB */
static ngx_commerce_bounds_t  ngx_commerce_image_max_bounds = {
    ngx_commerce_conf_bounds, 1, 5242880
};

static ngx_commerce_bounds_t  ngx_commerce_money_bounds = {
    ngx_commerce_conf_bounds, 1, 1000000000000LL
};

static ngx_commerce_bounds_t  ngx_commerce_ttl_bounds = {
    ngx_commerce_conf_bounds, 1, 31536000
};

/* seed 003: a payment is tried at most 3 times */
static ngx_commerce_bounds_t  ngx_commerce_retries_bounds = {
    ngx_commerce_conf_bounds, 1, 3
};

static ngx_commerce_bounds_t  ngx_commerce_percent_bounds = {
    ngx_commerce_conf_bounds, 0, 100
};

static ngx_commerce_bounds_t  ngx_commerce_rate_bounds = {
    ngx_commerce_conf_bounds, 0, 100000
};


/* PBKDF2-HMAC-SHA256: OWASP's 600,000 by default; cm_pwhash's bounds */
static ngx_commerce_bounds_t  ngx_commerce_kdf_bounds = {
    ngx_commerce_conf_bounds, 100000, 5000000
};


static ngx_command_t  ngx_commerce_commands[] = {

    { ngx_string("commerce_pg_conninfo"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, conninfo),
      NULL },

    { ngx_string("commerce_pg_pool_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, pool_size),
      &ngx_commerce_pool_size_bounds },

    { ngx_string("commerce_pg_queue_length"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, queue_length),
      &ngx_commerce_queue_length_bounds },

    { ngx_string("commerce_pg_queue_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, queue_timeout),
      &ngx_commerce_timeout_bounds },

    { ngx_string("commerce_pg_statement_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, statement_timeout),
      &ngx_commerce_timeout_bounds },

    { ngx_string("commerce_pg_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, connect_timeout),
      &ngx_commerce_timeout_bounds },

    { ngx_string("commerce_pg_pipeline_depth"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, pipeline_depth),
      &ngx_commerce_depth_bounds },

    { ngx_string("commerce_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_commerce_redis_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_redis_connections"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, redis_connections),
      &ngx_commerce_redis_connections_bounds },

    { ngx_string("commerce_redis_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, redis_connect_timeout),
      &ngx_commerce_timeout_bounds },

    { ngx_string("commerce_redis_command_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, redis_command_timeout),
      &ngx_commerce_timeout_bounds },

    { ngx_string("commerce_redis_queue_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, redis_queue_timeout),
      &ngx_commerce_timeout_bounds },

    { ngx_string("commerce_redis_queue_length"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, redis_queue_length),
      &ngx_commerce_queue_length_bounds },

    { ngx_string("commerce_redis_ping_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, redis_ping_interval),
      &ngx_commerce_timeout_bounds },

    { ngx_string("commerce_jwt_secret"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, jwt_secret),
      NULL },

    { ngx_string("commerce_jwt_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, jwt_secret_file),
      NULL },

    { ngx_string("commerce_jwt_keys_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, jwt_keys_file),
      NULL },

    { ngx_string("commerce_pii_keys_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, pii_keys_file),
      NULL },

    { ngx_string("commerce_pii_index_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, pii_index_key_file),
      NULL },

    { ngx_string("commerce_auth_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, auth_thread_pool_name),
      NULL },

    { ngx_string("commerce_access_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, access_ttl),
      &ngx_commerce_ttl_bounds },

    { ngx_string("commerce_refresh_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, refresh_ttl),
      &ngx_commerce_ttl_bounds },

    { ngx_string("commerce_password_iterations"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, kdf_iterations),
      &ngx_commerce_kdf_bounds },

    { ngx_string("commerce_cors_origin"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_array_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, cors_origins),
      NULL },

    { ngx_string("commerce_body_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, body_max),
      &ngx_commerce_body_max_bounds },

    { ngx_string("commerce_image_dir"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, image_dir),
      NULL },

    { ngx_string("commerce_image_max_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, image_max),
      &ngx_commerce_image_max_bounds },

    { ngx_string("commerce_image_upload_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, image_timeout),
      &ngx_commerce_timeout_bounds },

    { ngx_string("commerce_image_sweep_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, image_sweep_interval),
      NULL },

    { ngx_string("commerce_image_sweep_grace"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, image_sweep_grace),
      &ngx_commerce_ttl_bounds },

    { ngx_string("commerce_image_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, image_thread_pool_name),
      NULL },

    { ngx_string("commerce_charge_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, charge_max),
      &ngx_commerce_money_bounds },

    { ngx_string("commerce_balance_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, balance_max),
      &ngx_commerce_money_bounds },

    { ngx_string("commerce_order_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, order_ttl),
      &ngx_commerce_ttl_bounds },

    { ngx_string("commerce_order_expiry_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, expiry_interval),
      &ngx_commerce_timeout_bounds },

    { ngx_string("commerce_waitlist_hold"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, waitlist_hold),
      &ngx_commerce_ttl_bounds },

    { ngx_string("commerce_waitlist_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, waitlist_interval),
      &ngx_commerce_timeout_bounds },

    { ngx_string("commerce_refund"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_commerce_refund_job_conf,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_commerce_shm_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_commerce_cache_conf,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_retention"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_commerce_retention_conf,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_retention_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_commerce_retention_interval_conf,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_gateway"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_commerce_gateway,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_event_sink"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_commerce_event_sink_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_shipping"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_ANY,
      ngx_commerce_shipping_conf_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_settlement"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_commerce_settlement_conf_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_notify_channel"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_commerce_event_channel_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_gateway_callback_url"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, callback_url),
      NULL },

    { ngx_string("commerce_gateway_callback_secret"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, callback_secret),
      NULL },

    { ngx_string("commerce_gateway_callback_tolerance"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, callback_tolerance),
      &ngx_commerce_ttl_bounds },

    { ngx_string("commerce_gateway_retries"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, retry_attempts),
      &ngx_commerce_retries_bounds },

    { ngx_string("commerce_gateway_retry_base"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, retry_base),
      &ngx_commerce_timeout_bounds },

    { ngx_string("commerce_gateway_retry_cap"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, retry_cap),
      &ngx_commerce_timeout_bounds },

    { ngx_string("commerce_gateway_retry_budget"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, retry_budget_ratio),
      &ngx_commerce_percent_bounds },

    { ngx_string("commerce_gateway_retry_budget_min"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, retry_budget_min),
      &ngx_commerce_rate_bounds },

    { ngx_string("commerce_payment_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, payment_timeout),
      &ngx_commerce_ttl_bounds },

    { ngx_string("commerce_transfer_deadline"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, transfer_deadline),
      &ngx_commerce_ttl_bounds },

    { ngx_string("commerce_reconcile_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, reconcile_interval),
      &ngx_commerce_timeout_bounds },

    { ngx_string("commerce_reconcile_age"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, reconcile_age),
      &ngx_commerce_ttl_bounds },

    { ngx_string("commerce_reconcile_grace"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, reconcile_grace),
      &ngx_commerce_ttl_bounds },

    { ngx_string("commerce_limit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_commerce_limit_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_limit"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_commerce_limit,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_commerce_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("commerce_openapi"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_commerce_main_conf_t, openapi_file),
      NULL },

    { ngx_string("commerce_json_errors"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_commerce_loc_conf_t, json_errors),
      NULL },

    { ngx_string("commerce_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_commerce_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_commerce_module_ctx = {
    ngx_commerce_preconfiguration,         /* preconfiguration */
    ngx_commerce_postconfiguration,        /* postconfiguration */

    ngx_commerce_create_main_conf,         /* create main configuration */
    ngx_commerce_init_main_conf,           /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_commerce_create_loc_conf,          /* create location configuration */
    ngx_commerce_merge_loc_conf            /* merge location configuration */
};


ngx_module_t  ngx_http_commerce_module = {
    NGX_MODULE_V1,
    &ngx_commerce_module_ctx,              /* module context */
    ngx_commerce_commands,                 /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_commerce_init_process,             /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_commerce_exit_process,             /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_commerce_create_main_conf(ngx_conf_t *cf)
{
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_commerce_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mcf->conninfo = { 0, NULL };
     *     mcf->jwt_secret = { 0, NULL };
     *     mcf->jwt_secret_file = { 0, NULL };
     *     mcf->used = 0;
     *     mcf->pool = NULL;
     */

    mcf->pool_size = NGX_CONF_UNSET_UINT;
    mcf->queue_length = NGX_CONF_UNSET_UINT;
    mcf->queue_timeout = NGX_CONF_UNSET_MSEC;
    mcf->statement_timeout = NGX_CONF_UNSET_MSEC;
    mcf->connect_timeout = NGX_CONF_UNSET_MSEC;
    mcf->pipeline_depth = NGX_CONF_UNSET_UINT;
    mcf->redis_connections = NGX_CONF_UNSET_UINT;
    mcf->cache = NGX_CONF_UNSET_PTR;
    mcf->redis_connect_timeout = NGX_CONF_UNSET_MSEC;
    mcf->redis_command_timeout = NGX_CONF_UNSET_MSEC;
    mcf->redis_queue_timeout = NGX_CONF_UNSET_MSEC;
    mcf->redis_queue_length = NGX_CONF_UNSET_UINT;
    mcf->redis_ping_interval = NGX_CONF_UNSET_MSEC;
    mcf->body_max = NGX_CONF_UNSET_SIZE;
    mcf->image_max = NGX_CONF_UNSET_SIZE;
    mcf->image_timeout = NGX_CONF_UNSET_MSEC;
    mcf->image_sweep_interval = NGX_CONF_UNSET_MSEC;
    mcf->image_sweep_grace = NGX_CONF_UNSET;
    mcf->charge_max = NGX_CONF_UNSET;
    mcf->balance_max = NGX_CONF_UNSET;
    mcf->order_ttl = NGX_CONF_UNSET;
    mcf->expiry_interval = NGX_CONF_UNSET_MSEC;
    mcf->waitlist_hold = NGX_CONF_UNSET;
    mcf->waitlist_interval = NGX_CONF_UNSET_MSEC;
    mcf->request_id_index = NGX_ERROR;

    mcf->callback_tolerance = NGX_CONF_UNSET;
    mcf->retry_attempts = NGX_CONF_UNSET_UINT;
    mcf->retry_base = NGX_CONF_UNSET_MSEC;
    mcf->retry_cap = NGX_CONF_UNSET_MSEC;
    mcf->retry_budget_ratio = NGX_CONF_UNSET_UINT;
    mcf->retry_budget_min = NGX_CONF_UNSET_UINT;
    mcf->payment_timeout = NGX_CONF_UNSET;
    mcf->transfer_deadline = NGX_CONF_UNSET;
    mcf->reconcile_interval = NGX_CONF_UNSET_MSEC;
    mcf->reconcile_age = NGX_CONF_UNSET;
    mcf->reconcile_grace = NGX_CONF_UNSET;

    mcf->cors_origins = NGX_CONF_UNSET_PTR;
    mcf->access_ttl = NGX_CONF_UNSET;
    mcf->refresh_ttl = NGX_CONF_UNSET;
    mcf->kdf_iterations = NGX_CONF_UNSET_UINT;

    return mcf;
}


static char *
ngx_commerce_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_commerce_main_conf_t *mcf = conf;

    ngx_str_t  name = ngx_string("request_id");

    ngx_conf_init_uint_value(mcf->pool_size, 8);
    ngx_conf_init_uint_value(mcf->queue_length, 1024);
    ngx_conf_init_msec_value(mcf->queue_timeout, 3000);
    ngx_conf_init_msec_value(mcf->statement_timeout, 5000);
    ngx_conf_init_msec_value(mcf->connect_timeout, 3000);
    ngx_conf_init_uint_value(mcf->pipeline_depth, 16);
    ngx_conf_init_uint_value(mcf->redis_connections, 2);
    ngx_conf_init_ptr_value(mcf->cache, NULL);
    ngx_conf_init_msec_value(mcf->redis_connect_timeout, 1000);
    ngx_conf_init_msec_value(mcf->redis_command_timeout, 1000);
    ngx_conf_init_msec_value(mcf->redis_queue_timeout, 1000);
    ngx_conf_init_uint_value(mcf->redis_queue_length, 1024);
    ngx_conf_init_msec_value(mcf->redis_ping_interval, 1000);
    ngx_conf_init_size_value(mcf->body_max, 64 * 1024);
    ngx_conf_init_size_value(mcf->image_max, 5242880);
    ngx_conf_init_msec_value(mcf->image_timeout, 10000);
    ngx_conf_init_msec_value(mcf->image_sweep_interval, 600000);
    ngx_conf_init_value(mcf->image_sweep_grace, 3600);
    ngx_conf_init_value(mcf->charge_max, 1000000);
    ngx_conf_init_value(mcf->balance_max, 100000000);
    ngx_conf_init_value(mcf->order_ttl, 30 * 60);
    ngx_conf_init_msec_value(mcf->expiry_interval, 10000);
    ngx_conf_init_value(mcf->waitlist_hold, 30 * 60);
    ngx_conf_init_msec_value(mcf->waitlist_interval, 10000);

    ngx_conf_init_value(mcf->callback_tolerance, 300);
    ngx_conf_init_uint_value(mcf->retry_attempts, 3);
    ngx_conf_init_msec_value(mcf->retry_base, 100);
    ngx_conf_init_msec_value(mcf->retry_cap, 2000);
    ngx_conf_init_uint_value(mcf->retry_budget_ratio, 20);
    ngx_conf_init_uint_value(mcf->retry_budget_min, 10);
    ngx_conf_init_value(mcf->payment_timeout, 600);
    /* a virtual account is open 30 minutes, as an unpaid order lives */
    ngx_conf_init_value(mcf->transfer_deadline, 1800);
    ngx_conf_init_msec_value(mcf->reconcile_interval, 5000);
    ngx_conf_init_value(mcf->reconcile_age, 10);
    ngx_conf_init_value(mcf->reconcile_grace, 60);

    ngx_conf_init_ptr_value(mcf->cors_origins, NULL);
    ngx_conf_init_value(mcf->access_ttl, 300);
    ngx_conf_init_value(mcf->refresh_ttl, 30 * 86400);
    ngx_conf_init_uint_value(mcf->kdf_iterations, 600000);

    if (!mcf->used) {
        return NGX_CONF_OK;
    }

    if (mcf->conninfo.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"commerce_pg_conninfo\" is required when "
                           "\"commerce_api\" is used");
        return NGX_CONF_ERROR;
    }

    if (ngx_commerce_pg_conf_check(cf, mcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_commerce_auth_conf(cf, mcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_commerce_account_conf(cf, mcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_commerce_api_conf(cf, mcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_commerce_seller_image_conf(cf, mcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    mcf->request_id_index = ngx_http_get_variable_index(cf, &name);
    if (mcf->request_id_index == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_commerce_create_loc_conf(ngx_conf_t *cf)
{
    ngx_commerce_loc_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_commerce_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    lcf->api = NGX_CONF_UNSET;
    lcf->json_errors = NGX_CONF_UNSET;

    return lcf;
}


static char *
ngx_commerce_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_commerce_loc_conf_t *prev = parent;
    ngx_commerce_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t  *clcf;
    ngx_commerce_main_conf_t  *mcf;

    ngx_conf_merge_value(conf->api, prev->api, 0);

    if (ngx_commerce_errpage_merge(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->api) {
        /*
         * A body nginx buffers to a file would be refused: make the memory
         * buffer hold any body the API accepts (core merged before us).
         */
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
        mcf = ngx_http_conf_get_module_main_conf(cf,
                                                 ngx_http_commerce_module);

        if (clcf->client_body_buffer_size < mcf->body_max) {
            clcf->client_body_buffer_size = mcf->body_max;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_commerce_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_commerce_loc_conf_t *lcf = conf;

    ngx_http_core_loc_conf_t  *clcf;
    ngx_commerce_main_conf_t  *mcf;

    if (lcf->api != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    lcf->api = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_commerce_handler;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_commerce_module);
    mcf->used = 1;

    return NGX_CONF_OK;
}


static char *
ngx_commerce_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_commerce_metrics_handler;

    return NGX_CONF_OK;
}


/* the route table exists before directives (commerce_limit) name routes */

static ngx_int_t
ngx_commerce_preconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t  i;

    for (i = 0; ngx_commerce_routes[i] != NULL; i++) {
        if (ngx_commerce_router_add(cf, ngx_commerce_routes[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_commerce_postconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                  i;
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;
    ngx_commerce_main_conf_t   *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_commerce_module);

    if (ngx_commerce_gateway_check(cf, mcf) != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; ngx_commerce_statements[i] != NULL; i++) {
        if (ngx_commerce_pg_register(cf, ngx_commerce_statements[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_commerce_idem_init(cf) != NGX_OK
        || ngx_commerce_order_init(cf, mcf) != NGX_OK
        || ngx_commerce_waitlist_init(cf, mcf) != NGX_OK
        || ngx_commerce_shipping_conf_init(cf, mcf) != NGX_OK
        || ngx_commerce_settlement_conf_init(cf, mcf) != NGX_OK
        || ngx_commerce_refund_job_init(cf, mcf) != NGX_OK
        || ngx_commerce_coupon_init(cf, mcf) != NGX_OK
        || ngx_commerce_cached_init(cf, mcf) != NGX_OK
        || ngx_commerce_catalog_init(cf, mcf) != NGX_OK
        || ngx_commerce_sales_init(cf, mcf) != NGX_OK
        || ngx_commerce_reconcile_init(cf, mcf) != NGX_OK
        || ngx_commerce_event_init(cf, mcf) != NGX_OK
        || ngx_commerce_retention_init(cf, mcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_commerce_limit_postconf(cf, mcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_commerce_errpage_init(cf) != NGX_OK
        || ngx_commerce_body_init(cf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!mcf->used) {
        return NGX_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_commerce_auth_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_commerce_handler_log;

    return NGX_OK;
}


static ngx_int_t
ngx_commerce_init_process(ngx_cycle_t *cycle)
{
    ngx_commerce_main_conf_t  *mcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_commerce_module);
    if (mcf == NULL || !mcf->used) {
        return NGX_OK;
    }

    /*
     * The cached time is the master's, taken when it began reading the
     * configuration: a slow read (a large configuration, an ASan build)
     * would have every connect timer below expire on the first turn of
     * the event loop, before its connect could complete.
     */
    ngx_time_update();

    if (ngx_commerce_auth_init_worker(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_commerce_pg_init_worker(cycle, mcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_commerce_gateway_init_worker(cycle, mcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_commerce_redis_init_worker(cycle, mcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_commerce_event_init_worker(cycle, mcf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_commerce_job_init_worker(cycle, mcf);
}


static void
ngx_commerce_exit_process(ngx_cycle_t *cycle)
{
    ngx_commerce_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_commerce_module);
    if (mcf == NULL || !mcf->used) {
        return;
    }

    ngx_commerce_pg_exit_worker(mcf);
    ngx_commerce_redis_exit_worker(mcf);
}
