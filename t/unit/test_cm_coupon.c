/*
 * Unit tests of cm_coupon: the coupon campaign body and ISO timestamps.
 * TAP output.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_json.h"
#include "cm_coupon.h"
#include "tap.h"


#define GOOD_TAIL  "\"totalQuantity\":100,\"perUserLimit\":1," \
    "\"issueStartsAt\":\"2030-01-01T00:00:00Z\"," \
    "\"issueEndsAt\":\"2030-02-01T00:00:00+09:00\",\"validDays\":30}"


static void bad(const char *body, const char *want, const char *desc);
static void ts_ok(const char *s, int64_t want, const char *desc);
static void ts_bad(const char *s, const char *desc);
static void test_good(void);
static void test_bad(void);
static void test_ts(void);


int
main(void)
{
    test_good();
    test_bad();
    test_ts();

    return tap_done();
}


static void
bad(const char *body, const char *want, const char *desc)
{
    char             err[CM_JSON_ERR_LEN];
    cm_coupon_req_t  req;

    err[0] = '\0';
    ok(cm_parse_coupon((const unsigned char *) body, strlen(body), &req, err,
                       sizeof(err)) == -1, "refused: %s", desc);
    if (want != NULL) {
        ok(strstr(err, want) != NULL, "%s: message names %s (%s)", desc, want,
           err);
    }
    ok(req.name[0] == '\0' && req.value == 0, "%s: output cleared", desc);
}


static void
ts_ok(const char *s, int64_t want, const char *desc)
{
    int64_t  e;

    e = -1;
    ok(cm_coupon_parse_ts((const unsigned char *) s, strlen(s), &e) == 0,
       "timestamp %s", desc);
    is_int(e, want, "epoch of %s", desc);
}


static void
ts_bad(const char *s, const char *desc)
{
    int64_t  e;

    ok(cm_coupon_parse_ts((const unsigned char *) s, strlen(s), &e) == -1,
       "bad timestamp: %s", desc);
}


static void
test_good(void)
{
    char             err[CM_JSON_ERR_LEN];
    const char      *b;
    cm_coupon_req_t  req;

    b = "{\"name\":\"Spring 10%\",\"discountType\":\"RATE\","
        "\"discountValue\":10,\"maxDiscount\":5000,\"minOrderAmount\":10000,"
        GOOD_TAIL;
    ok(cm_parse_coupon((const unsigned char *) b, strlen(b), &req, err,
                       sizeof(err)) == 0, "full RATE body");
    is_str(req.name, "Spring 10%", "name");
    is_int(req.type, CM_COUPON_RATE, "type");
    is_int(req.value, 10, "value");
    is_int(req.max_discount, 5000, "maxDiscount");
    is_int(req.min_order_amount, 10000, "minOrderAmount");
    is_int(req.total_quantity, 100, "totalQuantity");
    is_int(req.per_user_limit, 1, "perUserLimit");
    is_str(req.starts_at, "2030-01-01T00:00:00Z", "issueStartsAt as written");
    is_str(req.ends_at, "2030-02-01T00:00:00+09:00", "issueEndsAt as written");
    is_int(req.valid_days, 30, "validDays");

    b = "{\"name\":\"W\",\"discountType\":\"FIXED\",\"discountValue\":"
        "1000000000000,\"maxDiscount\":null,\"minOrderAmount\":null,"
        GOOD_TAIL;
    ok(cm_parse_coupon((const unsigned char *) b, strlen(b), &req, err,
                       sizeof(err)) == 0, "FIXED at the amount cap, nulls");
    is_int(req.type, CM_COUPON_FIXED, "FIXED");
    is_int(req.max_discount, -1, "maxDiscount null: -1");
    is_int(req.min_order_amount, 0, "minOrderAmount null: 0");

    b = "{\"name\":\"\xea\xb0\x80\xea\xb0\x80\",\"discountType\":\"RATE\","
        "\"discountValue\":100," GOOD_TAIL;
    ok(cm_parse_coupon((const unsigned char *) b, strlen(b), &req, err,
                       sizeof(err)) == 0, "RATE 100, UTF-8 name");
    is_int(req.max_discount, -1, "maxDiscount absent: -1");
}


static void
test_bad(void)
{
    char  big[1024];
    int   n;

    bad("", NULL, "empty body");
    bad("{", NULL, "malformed JSON");
    bad("[]", NULL, "array at the top");
    bad("{\"discountType\":\"RATE\",\"discountValue\":10," GOOD_TAIL,
        "name is required", "no name");
    bad("{\"name\":\"x\",\"discountValue\":10," GOOD_TAIL,
        "discountType is required", "no type");
    bad("{\"name\":\"x\",\"discountType\":\"FIXED\"," GOOD_TAIL,
        "discountValue is required", "no value");
    bad("{\"name\":\"x\",\"discountType\":\"FIXED\",\"discountValue\":1}",
        "required", "no quantities or dates");
    bad("{\"name\":\"x\",\"discountType\":\"RATE\",\"discountValue\":101,"
        GOOD_TAIL, "1 to 100", "RATE 101");
    bad("{\"name\":\"x\",\"discountType\":\"RATE\",\"discountValue\":0,"
        GOOD_TAIL, "discountValue", "RATE 0");
    bad("{\"name\":\"x\",\"discountType\":\"FIXED\",\"discountValue\":-5,"
        GOOD_TAIL, "discountValue", "negative value");
    bad("{\"name\":\"x\",\"discountType\":\"FIXED\",\"discountValue\":"
        "1000000000001," GOOD_TAIL, "discountValue", "value over the cap");
    bad("{\"name\":\"x\",\"discountType\":\"FIXED\",\"discountValue\":"
        "99999999999999999999999," GOOD_TAIL, "discountValue", "overflow");
    bad("{\"name\":\"x\",\"discountType\":\"FIXED\",\"discountValue\":1.5,"
        GOOD_TAIL, "discountValue", "fraction");
    bad("{\"name\":\"x\",\"discountType\":\"FIXED\",\"discountValue\":\"5\","
        GOOD_TAIL, "discountValue", "value as a string");
    bad("{\"name\":\"x\",\"discountType\":\"FIXED\",\"discountValue\":[5],"
        GOOD_TAIL, "discountValue", "value as an array");
    bad("{\"name\":\"x\",\"discountType\":\"fixed\",\"discountValue\":5,"
        GOOD_TAIL, "discountType", "lower-case type");
    bad("{\"name\":\"x\",\"discountType\":\"FIXED\",\"discountValue\":5,"
        "\"maxDiscount\":100," GOOD_TAIL, "RATE coupons only",
        "maxDiscount on FIXED");
    bad("{\"name\":\"x\",\"discountType\":\"RATE\",\"discountValue\":5,"
        "\"maxDiscount\":0," GOOD_TAIL, "maxDiscount", "maxDiscount 0");
    bad("{\"name\":\"x\",\"discountType\":\"RATE\",\"discountValue\":5,"
        "\"minOrderAmount\":-1," GOOD_TAIL, "minOrderAmount",
        "negative minOrderAmount");
    bad("{\"name\":\"x\",\"discountType\":\"RATE\",\"discountValue\":5,"
        "\"coupon\":1," GOOD_TAIL, "unknown field", "unknown field");
    bad("{\"name\":\"x\",\"name\":\"y\",\"discountType\":\"RATE\","
        "\"discountValue\":5," GOOD_TAIL, "duplicate field name",
        "duplicate field");
    bad("{\"name\":\"\",\"discountType\":\"RATE\",\"discountValue\":5,"
        GOOD_TAIL, "name", "empty name");
    bad("{\"name\":\"   \",\"discountType\":\"RATE\",\"discountValue\":5,"
        GOOD_TAIL, "name", "blank name");
    bad("{\"name\":\"a\\nb\",\"discountType\":\"RATE\",\"discountValue\":5,"
        GOOD_TAIL, "name", "control character in the name");
    bad("{\"name\":\"a\\u0000b\",\"discountType\":\"RATE\","
        "\"discountValue\":5," GOOD_TAIL, "name", "NUL in the name");
    bad("{\"name\":1,\"discountType\":\"RATE\",\"discountValue\":5,"
        GOOD_TAIL, "name", "name as a number");

    n = snprintf(big, sizeof(big), "{\"name\":\"%0101d\",\"discountType\":"
                 "\"RATE\",\"discountValue\":5," GOOD_TAIL, 0);
    ok(n > 0, "built a 101-character name");
    bad(big, "name", "101 characters");

    bad("{\"name\":\"x\",\"discountType\":\"RATE\",\"discountValue\":5,"
        "\"totalQuantity\":0,\"perUserLimit\":1,"
        "\"issueStartsAt\":\"2030-01-01T00:00:00Z\","
        "\"issueEndsAt\":\"2030-02-01T00:00:00Z\",\"validDays\":30}",
        "totalQuantity", "total 0");
    bad("{\"name\":\"x\",\"discountType\":\"RATE\",\"discountValue\":5,"
        "\"totalQuantity\":100000001,\"perUserLimit\":1,"
        "\"issueStartsAt\":\"2030-01-01T00:00:00Z\","
        "\"issueEndsAt\":\"2030-02-01T00:00:00Z\",\"validDays\":30}",
        "totalQuantity", "total over the cap");
    bad("{\"name\":\"x\",\"discountType\":\"RATE\",\"discountValue\":5,"
        "\"totalQuantity\":2,\"perUserLimit\":3,"
        "\"issueStartsAt\":\"2030-01-01T00:00:00Z\","
        "\"issueEndsAt\":\"2030-02-01T00:00:00Z\",\"validDays\":30}",
        "must not exceed", "per-user limit over total");
    bad("{\"name\":\"x\",\"discountType\":\"RATE\",\"discountValue\":5,"
        "\"totalQuantity\":200,\"perUserLimit\":101,"
        "\"issueStartsAt\":\"2030-01-01T00:00:00Z\","
        "\"issueEndsAt\":\"2030-02-01T00:00:00Z\",\"validDays\":30}",
        "perUserLimit", "per-user limit 101");
    bad("{\"name\":\"x\",\"discountType\":\"RATE\",\"discountValue\":5,"
        "\"totalQuantity\":2,\"perUserLimit\":1,"
        "\"issueStartsAt\":\"2030-01-01T00:00:00Z\","
        "\"issueEndsAt\":\"2030-02-01T00:00:00Z\",\"validDays\":3651}",
        "validDays", "validDays 3651");
    bad("{\"name\":\"x\",\"discountType\":\"RATE\",\"discountValue\":5,"
        "\"totalQuantity\":2,\"perUserLimit\":1,"
        "\"issueStartsAt\":\"2030-01-01T09:00:00+09:00\","
        "\"issueEndsAt\":\"2030-01-01T00:00:00Z\",\"validDays\":3}",
        "after", "ends equal to starts across zones");
    bad("{\"name\":\"x\",\"discountType\":\"RATE\",\"discountValue\":5,"
        "\"totalQuantity\":2,\"perUserLimit\":1,"
        "\"issueStartsAt\":\"2030-01-01\","
        "\"issueEndsAt\":\"2030-02-01T00:00:00Z\",\"validDays\":3}",
        "issueStartsAt", "date without time");
    bad("{\"name\":\"x\",\"discountType\":\"RATE\",\"discountValue\":5,"
        "\"totalQuantity\":2,\"perUserLimit\":1,"
        "\"issueStartsAt\":\"2030-01-01T00:00:00Z\","
        "\"issueEndsAt\":1893456000,\"validDays\":3}",
        "issueEndsAt", "date as a number");
}


static void
test_ts(void)
{
    ts_ok("2030-01-01T00:00:00Z", 1893456000, "UTC");
    ts_ok("2030-01-01T09:00:00+09:00", 1893456000, "+09:00");
    ts_ok("2029-12-31T19:30:00-04:30", 1893456000, "-04:30");
    ts_ok("2030-01-01T00:00:00.123456Z", 1893456000, "fraction");
    ts_ok("2000-03-01T00:00:00Z", 951868800, "after a leap day");
    ts_ok("2024-02-29T00:00:00Z", 1709164800, "leap day");
    ts_bad("2023-02-29T00:00:00Z", "no leap day in 2023");
    ts_bad("2030-13-01T00:00:00Z", "month 13");
    ts_bad("2030-04-31T00:00:00Z", "April 31");
    ts_bad("2030-01-01T24:00:00Z", "hour 24");
    ts_bad("2030-01-01T00:60:00Z", "minute 60");
    ts_bad("2030-01-01T00:00:00", "no zone");
    ts_bad("2030-01-01 00:00:00Z", "space for T");
    ts_bad("2030-01-01T00:00:00.Z", "empty fraction");
    ts_bad("2030-01-01T00:00:00.1234567Z", "7 fraction digits");
    ts_bad("2030-01-01T00:00:00+0900", "offset without colon");
    ts_bad("2030-01-01T00:00:00+15:00", "offset 15 hours");
    ts_bad("1999-12-31T00:00:00Z", "before 2000");
    ts_bad("+2030-01-01T00:00:00Z", "sign");
    ts_bad("2030-01-01T00:00:00Zx", "trailing byte");
    ts_bad("", "empty");
}
