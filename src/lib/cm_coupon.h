/*
 * cm_coupon: validation of a coupon campaign's request body, without
 * nginx.  Every field is checked here, before SQL (cm_coupon_create checks
 * them again): types, ranges, a RATE value of 1..100 (%), ISO 8601 dates;
 * an unknown or repeated field is refused.
 *
 * Error messages follow cm_json.h: short printable ASCII, never quoting
 * the input, fit for a 400 INVALID_REQUEST.
 */


#ifndef _CM_COUPON_H_INCLUDED_
#define _CM_COUPON_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CM_COUPON_NAME_MAX       100          /* characters */
#define CM_COUPON_AMOUNT_MAX     1000000000000LL
#define CM_COUPON_QUANTITY_MAX   100000000
#define CM_COUPON_PER_USER_MAX   100
#define CM_COUPON_DAYS_MAX       3650
/* "YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM" */
#define CM_COUPON_TS_LEN         40


typedef enum {
    CM_COUPON_FIXED = 1,
    CM_COUPON_RATE
} cm_coupon_type_e;


typedef struct {
    char              name[CM_COUPON_NAME_MAX * 4 + 1];  /* UTF-8, NUL */
    cm_coupon_type_e  type;
    int64_t           value;
    int64_t           max_discount;       /* -1: absent or null */
    int64_t           min_order_amount;   /* 0 when absent or null */
    int64_t           total_quantity;
    int64_t           per_user_limit;
    char              starts_at[CM_COUPON_TS_LEN];  /* as written, NUL */
    char              ends_at[CM_COUPON_TS_LEN];
    int64_t           valid_days;
} cm_coupon_req_t;


/* returns 0, or -1 with a reason in err (buf need not be NUL-terminated) */
int cm_parse_coupon(const unsigned char *buf, size_t len,
    cm_coupon_req_t *out, char *err, size_t errlen);

/*
 * An ISO 8601 timestamp with a zone: YYYY-MM-DDTHH:MM:SS, optional
 * fraction of 1..6 digits, then Z or +HH:MM / -HH:MM; year 2000..9999.
 * Returns 0 with the UTC seconds since the epoch in *epoch, or -1.
 */
int cm_coupon_parse_ts(const unsigned char *p, size_t len, int64_t *epoch);


#endif /* _CM_COUPON_H_INCLUDED_ */
