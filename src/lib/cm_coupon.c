/*
 * cm_coupon: the coupon campaign body (see cm_coupon.h), read with
 * cm_json's event walker like cm_parse_charge and cm_parse_order.
 */


#include <string.h>

#include "cm_json.h"
#include "cm_text.h"
#include "cm_coupon.h"


enum {
    CM_CF_NAME = 0,
    CM_CF_TYPE,
    CM_CF_VALUE,
    CM_CF_MAX_DISCOUNT,
    CM_CF_MIN_ORDER,
    CM_CF_TOTAL,
    CM_CF_PER_USER,
    CM_CF_STARTS,
    CM_CF_ENDS,
    CM_CF_DAYS,
    CM_CF_N
};


static const char  *cm_coupon_fields[CM_CF_N] = {
    "name", "discountType", "discountValue", "maxDiscount", "minOrderAmount",
    "totalQuantity", "perUserLimit", "issueStartsAt", "issueEndsAt",
    "validDays"
};


typedef struct {
    cm_coupon_req_t  *out;
    int               field;        /* the key whose value comes next */
    unsigned          seen;         /* bits of CM_CF_* */
    int64_t           starts, ends; /* epoch seconds */
} cm_coupon_parse_t;


static int cm_coupon_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len);
static int cm_coupon_value(cm_json_walk_t *w, cm_coupon_parse_t *cp,
    cm_json_event_e ev, const unsigned char *p, size_t len);
static int cm_coupon_int(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len, const char *name, int64_t min,
    int64_t max, int64_t *out);
static int cm_coupon_name(const unsigned char *p, size_t len);
static int64_t cm_coupon_days(int64_t y, int64_t m, int64_t d);
static int cm_coupon_digits(const unsigned char *p, size_t n, int64_t *out);


int
cm_parse_coupon(const unsigned char *buf, size_t len, cm_coupon_req_t *out,
    char *err, size_t errlen)
{
    int                i;
    cm_json_walk_t     w;
    cm_coupon_parse_t  cp;

    memset(out, 0, sizeof(cm_coupon_req_t));
    out->max_discount = -1;

    memset(&cp, 0, sizeof(cm_coupon_parse_t));
    cp.out = out;
    cp.field = -1;

    memset(&w, 0, sizeof(cm_json_walk_t));
    w.handler = cm_coupon_event;
    w.data = &cp;
    w.err = err;
    w.errlen = errlen;

    if (cm_json_walk(&w, buf, len) != 0) {
        goto failed;
    }

    for (i = 0; i < CM_CF_N; i++) {
        if (i == CM_CF_MAX_DISCOUNT || i == CM_CF_MIN_ORDER) {
            continue;
        }

        if (!(cp.seen & (1u << i))) {
            cm_json_fail(&w, "%s is required", cm_coupon_fields[i]);
            goto failed;
        }
    }

    if (out->type == CM_COUPON_RATE && out->value > 100) {
        cm_json_fail(&w, "discountValue of a RATE coupon is a percentage,"
                     " 1 to 100");
        goto failed;
    }

    if (out->max_discount != -1 && out->type != CM_COUPON_RATE) {
        cm_json_fail(&w, "maxDiscount applies to RATE coupons only");
        goto failed;
    }

    if (out->per_user_limit > out->total_quantity) {
        cm_json_fail(&w, "perUserLimit must not exceed totalQuantity");
        goto failed;
    }

    if (cp.ends <= cp.starts) {
        cm_json_fail(&w, "issueEndsAt must be after issueStartsAt");
        goto failed;
    }

    return 0;

failed:

    memset(out, 0, sizeof(cm_coupon_req_t));

    return -1;
}


static int
cm_coupon_event(cm_json_walk_t *w, cm_json_event_e ev, const unsigned char *p,
    size_t len)
{
    int                 i;
    cm_coupon_parse_t  *cp;

    cp = w->data;

    if (cp->field == -1) {
        switch (ev) {

        case CM_JSON_MAP_START:
        case CM_JSON_MAP_END:
            return CM_JSON_OK;

        case CM_JSON_KEY:
            for (i = 0; i < CM_CF_N; i++) {
                if (strlen(cm_coupon_fields[i]) == len
                    && memcmp(cm_coupon_fields[i], p, len) == 0)
                {
                    break;
                }
            }

            if (i == CM_CF_N) {
                return cm_json_fail(w, "unknown field");
            }

            if (cp->seen & (1u << i)) {
                return cm_json_fail(w, "duplicate field %s",
                                    cm_coupon_fields[i]);
            }

            cp->seen |= 1u << i;
            cp->field = i;
            return CM_JSON_OK;

        default:
            return cm_json_fail(w, "unexpected value");
        }
    }

    return cm_coupon_value(w, cp, ev, p, len);
}


static int
cm_coupon_value(cm_json_walk_t *w, cm_coupon_parse_t *cp, cm_json_event_e ev,
    const unsigned char *p, size_t len)
{
    int               f, rc;
    int64_t          *epoch;
    cm_coupon_req_t  *out;

    out = cp->out;
    f = cp->field;
    cp->field = -1;

    switch (f) {

    case CM_CF_NAME:
        if (ev != CM_JSON_STRING || !cm_coupon_name(p, len)) {
            return cm_json_fail(w, "name must be a string of 1 to 100"
                                " characters, not blank, without control"
                                " characters");
        }

        memcpy(out->name, p, len);
        out->name[len] = '\0';
        return CM_JSON_OK;

    case CM_CF_TYPE:
        if (ev == CM_JSON_STRING && cm_json_str_is(p, len, "FIXED")) {
            out->type = CM_COUPON_FIXED;
            return CM_JSON_OK;
        }

        if (ev == CM_JSON_STRING && cm_json_str_is(p, len, "RATE")) {
            out->type = CM_COUPON_RATE;
            return CM_JSON_OK;
        }

        return cm_json_fail(w, "discountType must be FIXED or RATE");

    case CM_CF_VALUE:
        return cm_coupon_int(w, ev, p, len, "discountValue", 1,
                             CM_COUPON_AMOUNT_MAX, &out->value);

    case CM_CF_MAX_DISCOUNT:
        if (ev == CM_JSON_NULL) {
            return CM_JSON_OK;
        }

        return cm_coupon_int(w, ev, p, len, "maxDiscount", 1,
                             CM_COUPON_AMOUNT_MAX, &out->max_discount);

    case CM_CF_MIN_ORDER:
        if (ev == CM_JSON_NULL) {
            return CM_JSON_OK;
        }

        return cm_coupon_int(w, ev, p, len, "minOrderAmount", 0,
                             CM_COUPON_AMOUNT_MAX, &out->min_order_amount);

    case CM_CF_TOTAL:
        return cm_coupon_int(w, ev, p, len, "totalQuantity", 1,
                             CM_COUPON_QUANTITY_MAX, &out->total_quantity);

    case CM_CF_PER_USER:
        return cm_coupon_int(w, ev, p, len, "perUserLimit", 1,
                             CM_COUPON_PER_USER_MAX, &out->per_user_limit);

    case CM_CF_DAYS:
        return cm_coupon_int(w, ev, p, len, "validDays", 1,
                             CM_COUPON_DAYS_MAX, &out->valid_days);

    case CM_CF_STARTS:
    case CM_CF_ENDS:
        epoch = (f == CM_CF_STARTS) ? &cp->starts : &cp->ends;

        rc = (ev == CM_JSON_STRING && len < CM_COUPON_TS_LEN)
             ? cm_coupon_parse_ts(p, len, epoch) : -1;

        if (rc != 0) {
            return cm_json_fail(w, "%s must be an ISO 8601 timestamp with a"
                                " zone, like 2030-01-31T09:00:00Z",
                                cm_coupon_fields[f]);
        }

        memcpy(f == CM_CF_STARTS ? out->starts_at : out->ends_at, p, len);
        return CM_JSON_OK;

    default:
        return cm_json_fail(w, "unexpected value");
    }
}


static int
cm_coupon_int(cm_json_walk_t *w, cm_json_event_e ev, const unsigned char *p,
    size_t len, const char *name, int64_t min, int64_t max, int64_t *out)
{
    int64_t  v;

    if (ev != CM_JSON_NUMBER || cm_json_number(p, len, &v) != CM_JSON_OK
        || v < min || v > max)
    {
        return cm_json_fail(w, "%s must be an integer from %lld to %lld",
                            name, (long long) min, (long long) max);
    }

    *out = v;

    return CM_JSON_OK;
}


/* 1..100 characters of valid UTF-8 (the walker checked), not blank,
 * no control character (C0, DEL, C1): cm_text's rule */

static int
cm_coupon_name(const unsigned char *p, size_t len)
{
    return cm_utf8_text(p, len, 1, CM_COUPON_NAME_MAX, 0) == 0;
}


int
cm_coupon_parse_ts(const unsigned char *p, size_t len, int64_t *epoch)
{
    size_t   i, n;
    int64_t  y, mo, d, h, mi, s, oh, om, off;
    static const int  mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
                                  30, 31 };

    if (len < 20
        || cm_coupon_digits(p, 4, &y) != 0 || p[4] != '-'
        || cm_coupon_digits(p + 5, 2, &mo) != 0 || p[7] != '-'
        || cm_coupon_digits(p + 8, 2, &d) != 0 || p[10] != 'T'
        || cm_coupon_digits(p + 11, 2, &h) != 0 || p[13] != ':'
        || cm_coupon_digits(p + 14, 2, &mi) != 0 || p[16] != ':'
        || cm_coupon_digits(p + 17, 2, &s) != 0)
    {
        return -1;
    }

    if (y < 2000 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1]
        || h > 23 || mi > 59 || s > 59)
    {
        return -1;
    }

    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
    {
        return -1;
    }

    i = 19;

    if (p[i] == '.') {
        for (n = 0, i++; i < len && p[i] >= '0' && p[i] <= '9'; i++, n++) {
            /* the fraction */
        }

        if (n < 1 || n > 6) {
            return -1;
        }
    }

    if (i + 1 == len && p[i] == 'Z') {
        off = 0;

    } else if (i + 6 == len && (p[i] == '+' || p[i] == '-')
               && cm_coupon_digits(p + i + 1, 2, &oh) == 0
               && p[i + 3] == ':'
               && cm_coupon_digits(p + i + 4, 2, &om) == 0
               && oh <= 14 && om <= 59)
    {
        off = (oh * 60 + om) * 60;

        if (p[i] == '-') {
            off = -off;
        }

    } else {
        return -1;
    }

    *epoch = cm_coupon_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - off;

    return 0;
}


/* days since 1970-01-01 of a proleptic Gregorian date (Hinnant) */

static int64_t
cm_coupon_days(int64_t y, int64_t m, int64_t d)
{
    int64_t  era, yoe, doy, doe;

    y -= m <= 2;
    era = y / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}


static int
cm_coupon_digits(const unsigned char *p, size_t n, int64_t *out)
{
    size_t   i;
    int64_t  v;

    v = 0;

    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        v = v * 10 + (p[i] - '0');
    }

    *out = v;

    return 0;
}
