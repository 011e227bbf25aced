/*
 * Unit tests of cm_json: request body validation, path integers and JSON
 * string escaping.  TAP output.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "cm_json.h"
#include "tap.h"


/* a string literal as (buf, len), embedded NULs and all */
#define S(lit)  (const unsigned char *) (lit), sizeof(lit) - 1

#define MAX_AMOUNT  1000000


static int err_clean(const char *err);
static void charge_ok(const unsigned char *buf, size_t len, int64_t want,
    const char *desc);
static void charge_bad(const unsigned char *buf, size_t len,
    const char *want, const char *desc);
static int order(const unsigned char *buf, size_t len, cm_order_req_t *out,
    char *err);
static void order_bad(const unsigned char *buf, size_t len, const char *want,
    const char *desc);
static void payment_bad(const unsigned char *buf, size_t len,
    const char *want, const char *desc);
static void escape_is(const unsigned char *s, size_t len, size_t dstlen,
    const char *want, const char *desc);
static int escape_parses_back(const unsigned char *s, size_t len);
static size_t items_json(char *buf, size_t size, int n, int distinct);
static size_t nested(char *buf, size_t size, const char *head, int depth,
    const char *tail);
static void test_charge(void);
static void test_charge_structure(void);
static void test_order(void);
static void test_order_items(void);
static void test_order_payment(void);
static void test_payment(void);
static void test_int64(void);
static void test_escape(void);


int
main(void)
{
    test_charge();
    test_charge_structure();
    test_order();
    test_order_items();
    test_order_payment();
    test_payment();
    test_int64();
    test_escape();

    return tap_done();
}


static void
test_charge(void)
{
    int64_t  amount;
    char     err[CM_JSON_ERR_LEN];

    charge_ok(S("{\"amount\":100}"), 100, "charge 100");
    charge_ok(S("{\"amount\":1}"), 1, "charge the minimum");
    charge_ok(S("{\"amount\":1000000}"), 1000000, "charge the maximum");
    charge_ok(S(" {\n\t\"amount\" : 5 }\n "), 5, "whitespace around tokens");

    charge_bad(S("{\"amount\":1000001}"),
               "amount must be between 1 and 1000000", "above the maximum");
    charge_bad(S("{\"amount\":0}"),
               "amount must be between 1 and 1000000", "zero");
    charge_bad(S("{\"amount\":-1}"),
               "amount must be between 1 and 1000000", "negative");
    charge_bad(S("{\"amount\":-0}"),
               "amount must be between 1 and 1000000", "minus zero");
    charge_bad(S("{\"amount\":9223372036854775807}"),
               "amount must be between 1 and 1000000", "INT64_MAX");
    charge_bad(S("{\"amount\":9223372036854775808}"),
               "amount must be between 1 and 1000000", "INT64_MAX + 1");
    charge_bad(S("{\"amount\":-9223372036854775809}"),
               "amount must be between 1 and 1000000", "INT64_MIN - 1");
    charge_bad(S("{\"amount\":123456789012345678901234567890}"),
               "amount must be between 1 and 1000000", "30 digits");

    charge_bad(S("{\"amount\":1.0}"), "amount must be an integer", "1.0");
    charge_bad(S("{\"amount\":100.5}"), "amount must be an integer",
               "100.5");
    charge_bad(S("{\"amount\":1e3}"), "amount must be an integer", "1e3");
    charge_bad(S("{\"amount\":1E3}"), "amount must be an integer", "1E3");
    charge_bad(S("{\"amount\":1e-3}"), "amount must be an integer", "1e-3");
    charge_bad(S("{\"amount\":99999999999999999999.5}"),
               "amount must be an integer", "huge with a fraction");
    charge_bad(S("{\"amount\":\"100\"}"), "amount must be an integer",
               "a string");
    charge_bad(S("{\"amount\":null}"), "amount must be an integer", "null");
    charge_bad(S("{\"amount\":true}"), "amount must be an integer", "true");
    charge_bad(S("{\"amount\":false}"), "amount must be an integer",
               "false");
    charge_bad(S("{\"amount\":[100]}"), "amount must be an integer",
               "an array");
    charge_bad(S("{\"amount\":{\"value\":100}}"),
               "amount must be an integer", "an object");

    charge_bad(S("{}"), "amount is required", "empty object");
    charge_bad(S("{\"Amount\":5}"), "amount is required",
               "keys are case-sensitive");
    charge_bad(S("{\"amount\\u0000\":5}"), "amount is required",
               "a key with a NUL is another key");
    charge_ok(S("{\"\\u0061mount\":7}"), 7, "escapes in keys are decoded");

    charge_bad(S("{\"amount\":1,\"amount\":2}"), "duplicate field amount",
               "duplicate amount");
    charge_bad(S("{\"amount\":1,\"x\":0,\"amount\":1}"),
               "duplicate field amount", "duplicate amount, apart");

    charge_ok(S("{\"note\":\"hi\",\"amount\":5,\"tags\":[1,2]}"), 5,
              "unknown fields are ignored");
    charge_ok(S("{\"x\":{\"amount\":\"no\",\"y\":[{\"amount\":[]},null]},"
                "\"amount\":6}"), 6,
              "nested unknown fields, even named amount, are ignored");
    charge_ok(S("{\"x\":{},\"y\":[],\"amount\":8,\"z\":{\"a\":{}}}"), 8,
              "empty unknown containers");

    /* the bounds come from the caller */
    ok(cm_parse_charge(S("{\"amount\":51}"), 50, &amount, err, sizeof(err))
       == -1 && strcmp(err, "amount must be between 1 and 50") == 0,
       "max_amount is the caller's");

    /* buf is not NUL-terminated: the length decides */
    amount = 0;
    ok(cm_parse_charge((const unsigned char *) "{\"amount\":12}3", 13,
                       MAX_AMOUNT, &amount, err, sizeof(err)) == 0
       && amount == 12, "only len bytes are read");

    /* messages are truncated, never overflowed */
    memset(err, 'x', sizeof(err));
    ok(cm_parse_charge(S("{\"amount\":0}"), MAX_AMOUNT, &amount, err, 8)
       == -1 && strcmp(err, "amount ") == 0 && err[8] == 'x',
       "err truncated to errlen");
    ok(cm_parse_charge(S("{\"amount\":0}"), MAX_AMOUNT, &amount, NULL, 0)
       == -1, "err may be NULL");
}


static void
test_charge_structure(void)
{
    char    *big;
    char     buf[256];
    size_t   n;

    charge_bad(S(""), "request body is empty", "empty body");
    charge_bad(S("   "), "malformed JSON", "only whitespace");
    charge_bad(S("[]"), "request body must be a JSON object", "an array");
    charge_bad(S("[{\"amount\":1}]"), "request body must be a JSON object",
               "an object in an array");
    charge_bad(S("\"amount\""), "request body must be a JSON object",
               "a string");
    charge_bad(S("100"), "request body must be a JSON object", "a number");
    charge_bad(S("null"), "request body must be a JSON object", "null");

    charge_bad(S("{\"amount\":1}x"), "malformed JSON", "trailing garbage");
    charge_bad(S("{\"amount\":1}{}"), "malformed JSON",
               "a second document");
    charge_bad(S("{\"amount\":1},"), "malformed JSON", "a trailing comma");
    charge_ok(S("{\"amount\":1}\r\n"), 1, "trailing whitespace is fine");
    charge_bad(S("{\"amount\":1"), "malformed JSON", "truncated");
    charge_bad(S("{\"amount\":"), "malformed JSON", "truncated after colon");
    charge_bad(S("{\"amount\":1,}"), "malformed JSON",
               "a comma before the brace");
    charge_bad(S("{'amount':1}"), "malformed JSON", "single quotes");
    charge_bad(S("{amount:1}"), "malformed JSON", "bare key");
    /* yajl reads "01" as 0 then 1: the 0 is refused first */
    charge_bad(S("{\"amount\":01}"),
               "amount must be between 1 and 1000000", "leading zero");
    charge_bad(S("{\"amount\":+1}"), "malformed JSON", "plus sign");
    charge_bad(S("{\"amount\":0x10}"),
               "amount must be between 1 and 1000000", "hexadecimal");
    charge_bad(S("{\"x\":01,\"amount\":1}"), "malformed JSON",
               "leading zero in an unknown field");
    charge_bad(S("{\"amount\":NaN}"), "malformed JSON", "NaN");
    charge_bad(S("{\"amount\":1 /* c */}"), "malformed JSON", "a comment");
    charge_bad(S("{\"amount\":1}\0"), "malformed JSON", "a trailing NUL");
    charge_bad(S("{\"x\":\"\xff\",\"amount\":1}"), "malformed JSON",
               "invalid UTF-8 in a value");
    charge_bad(S("{\"\xc3\",\"amount\":1}"), "malformed JSON",
               "invalid UTF-8 in a key");
    charge_bad(S("{\"x\":\"a\nb\",\"amount\":1}"), "malformed JSON",
               "a raw newline in a string");
    charge_bad(S("\xef\xbb\xbf{\"amount\":1}"), "malformed JSON",
               "a byte order mark");

    /* depth: the top-level object is level 1 */
    n = nested(buf, sizeof(buf), "{\"x\":", 7, ",\"amount\":1}");
    charge_ok((unsigned char *) buf, n, 1, "8 levels of nesting");
    n = nested(buf, sizeof(buf), "{\"x\":", 8, ",\"amount\":1}");
    charge_bad((unsigned char *) buf, n, "JSON nested deeper than 8 levels",
               "9 levels of nesting");
    charge_bad(S("{\"x\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":"
                 "{}}}}}}}}},\"amount\":1}"),
               "JSON nested deeper than 8 levels", "9 levels of objects");

    /* a stack bomb: refused at level 9, no recursion anywhere */
    big = malloc(200002);
    if (big != NULL) {
        memcpy(big, "{\"x\":", 5);
        memset(big + 5, '[', 200002 - 5);
        charge_bad((unsigned char *) big, 200002,
                   "JSON nested deeper than 8 levels", "200000 brackets");
        free(big);
    }
}


static void
test_order(void)
{
    char            err[CM_JSON_ERR_LEN];
    cm_order_req_t  o;

    ok(order(S("{\"items\":[{\"productId\":7,\"quantity\":2}]}"), &o, err)
       == 0 && o.nitems == 1 && o.items[0].product_id == 7
       && o.items[0].quantity == 2 && o.method == CM_PAY_NONE
       && o.card_type[0] == '\0' && o.card_no[0] == '\0',
       "order: one item, no payment");

    ok(order(S("{\"items\":[{\"productId\":3,\"quantity\":1},"
               "{\"quantity\":5,\"productId\":1},"
               "{\"productId\":2,\"quantity\":9}]}"), &o, err) == 0
       && o.nitems == 3
       && o.items[0].product_id == 1 && o.items[0].quantity == 5
       && o.items[1].product_id == 2 && o.items[1].quantity == 9
       && o.items[2].product_id == 3 && o.items[2].quantity == 1,
       "order: items sorted by productId, any key order");

    ok(order(S("{\"items\":[{\"productId\":1,\"quantity\":500},"
               "{\"productId\":2,\"quantity\":1},"
               "{\"productId\":1,\"quantity\":499}]}"), &o, err) == 0
       && o.nitems == 2
       && o.items[0].product_id == 1 && o.items[0].quantity == 999
       && o.items[1].product_id == 2 && o.items[1].quantity == 1,
       "order: duplicate productIds merged");

    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":500},"
                "{\"productId\":1,\"quantity\":500}]}"),
              "items[1].quantity: total for one product must not exceed 999",
              "merged quantity above 999");

    ok(order(S("{\"items\":[{\"productId\":9223372036854775807,"
               "\"quantity\":999}]}"), &o, err) == 0
       && o.items[0].product_id == INT64_MAX && o.items[0].quantity == 999,
       "order: largest productId and quantity");

    ok(order(S("{\"coupon\":{\"code\":\"X\",\"list\":[1,{\"items\":5}]},"
               "\"items\":[{\"productId\":1,\"quantity\":1,"
               "\"meta\":{\"a\":[1,2,{\"productId\":null}]}}],"
               "\"note\":null}"), &o, err) == 0
       && o.nitems == 1 && o.items[0].product_id == 1,
       "order: unknown fields ignored at every level");

    ok(order(S("{\"couponId\":42,\"items\":[{\"productId\":1,"
               "\"quantity\":1}]}"), &o, err) == 0
       && o.coupon_id == 42 && o.nitems == 1,
       "order: a couponId");
    ok(order(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
               "\"couponId\":9223372036854775807}"), &o, err) == 0
       && o.coupon_id == INT64_MAX,
       "order: the largest couponId, after items");
    ok(order(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
               "\"couponId\":null}"), &o, err) == 0
       && o.coupon_id == 0,
       "order: couponId null is no coupon");
    ok(order(S("{\"items\":[{\"productId\":1,\"quantity\":1}]}"), &o,
             err) == 0 && o.coupon_id == 0,
       "order: no couponId is no coupon");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"couponId\":0}"),
              "couponId must be between 1 and 9223372036854775807",
              "couponId 0");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"couponId\":-3}"),
              "couponId must be between 1 and 9223372036854775807",
              "couponId negative");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"couponId\":9223372036854775808}"),
              "couponId must be between 1 and 9223372036854775807",
              "couponId overflowing");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"couponId\":1.5}"),
              "couponId must be an integer", "couponId a fraction");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"couponId\":\"7\"}"),
              "couponId must be an integer", "couponId a string");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"couponId\":true}"),
              "couponId must be an integer", "couponId a boolean");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"couponId\":[7]}"),
              "couponId must be an integer", "couponId an array");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"couponId\":{\"id\":7}}"),
              "couponId must be an integer", "couponId an object");
    order_bad(S("{\"couponId\":1,\"items\":[{\"productId\":1,"
                "\"quantity\":1}],\"couponId\":2}"),
              "duplicate field couponId", "couponId twice");

    ok(order(S("{\"items\":[{\"productId\":1,\"quantity\":1,"
               "\"x\":[[[[[1]]]]]}]}"), &o, err) == 0,
       "order: 8 levels under an item");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1,"
                "\"x\":[[[[[[1]]]]]]}]}"),
              "JSON nested deeper than 8 levels", "9 levels under an item");

    order_bad(S("{}"), "items or fromCart true is required", "no items");
    order_bad(S("{\"payment\":null}"), "items or fromCart true is required",
              "payment but no items");
    order_bad(S("{\"items\":[]}"), "items must not be empty", "empty items");
    order_bad(S("{\"items\":{}}"), "items must be an array",
              "items an object");
    order_bad(S("{\"items\":{\"productId\":1,\"quantity\":1}}"),
              "items must be an array", "items a single item");
    order_bad(S("{\"items\":null}"), "items must be an array", "items null");
    order_bad(S("{\"items\":\"[]\"}"), "items must be an array",
              "items a string");
    order_bad(S("{\"items\":1}"), "items must be an array", "items a number");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"items\":[{\"productId\":2,\"quantity\":1}]}"),
              "duplicate field items", "duplicate items");
    order_bad(S("[{\"productId\":1,\"quantity\":1}]"),
              "request body must be a JSON object", "top level an array");
    order_bad(S(""), "request body is empty", "empty body");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}]} x"),
              "malformed JSON", "trailing garbage");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1,"
                "\"name\":\"\xe2\x82\"}]}"),
              "malformed JSON", "truncated UTF-8 sequence");

    /* nothing is left behind on failure */
    memset(&o, 0x55, sizeof(o));
    ok(cm_parse_order(S("{\"items\":[{\"productId\":1,\"quantity\":1},"
                        "{\"productId\":2}]}"), &o, err, sizeof(err)) == -1
       && o.nitems == 0 && o.items[0].product_id == 0
       && o.method == CM_PAY_NONE, "order: output zeroed on failure");
}


static void
test_order_items(void)
{
    int             i, sorted;
    char            err[CM_JSON_ERR_LEN];
    char           *buf;
    size_t          n;
    cm_order_req_t  o;

    order_bad(S("{\"items\":[1]}"), "items[0] must be an object",
              "item a number");
    order_bad(S("{\"items\":[null]}"), "items[0] must be an object",
              "item null");
    order_bad(S("{\"items\":[[]]}"), "items[0] must be an object",
              "item an array");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1},\"x\"]}"),
              "items[1] must be an object", "second item a string");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1},"
                "[{\"productId\":2,\"quantity\":1}]]}"),
              "items[1] must be an object", "second item an array");

    order_bad(S("{\"items\":[{\"quantity\":1}]}"),
              "items[0].productId or variantId is required", "productId missing");
    order_bad(S("{\"items\":[{\"productId\":1}]}"),
              "items[0].quantity is required", "quantity missing");
    order_bad(S("{\"items\":[{}]}"), "items[0].productId or variantId is required",
              "empty item");
    order_bad(S("{\"items\":[{\"productId\":1,\"productId\":2,"
                "\"quantity\":1}]}"),
              "duplicate field items[0].productId", "duplicate productId");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1},"
                "{\"productId\":2,\"quantity\":1,\"quantity\":1}]}"),
              "duplicate field items[1].quantity", "duplicate quantity");

    order_bad(S("{\"items\":[{\"productId\":0,\"quantity\":1}]}"),
              "items[0].productId must be between 1 and 9223372036854775807",
              "productId 0");
    order_bad(S("{\"items\":[{\"productId\":-1,\"quantity\":1}]}"),
              "items[0].productId must be between 1 and 9223372036854775807",
              "productId -1");
    order_bad(S("{\"items\":[{\"productId\":9223372036854775808,"
                "\"quantity\":1}]}"),
              "items[0].productId must be between 1 and 9223372036854775807",
              "productId overflows");
    order_bad(S("{\"items\":[{\"productId\":1.0,\"quantity\":1}]}"),
              "items[0].productId must be an integer", "productId 1.0");
    order_bad(S("{\"items\":[{\"productId\":\"1\",\"quantity\":1}]}"),
              "items[0].productId must be an integer", "productId string");
    order_bad(S("{\"items\":[{\"productId\":null,\"quantity\":1}]}"),
              "items[0].productId must be an integer", "productId null");
    order_bad(S("{\"items\":[{\"productId\":{},\"quantity\":1}]}"),
              "items[0].productId must be an integer", "productId object");

    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1},"
                "{\"productId\":2,\"quantity\":1},"
                "{\"productId\":3,\"quantity\":1},"
                "{\"productId\":4,\"quantity\":0}]}"),
              "items[3].quantity must be between 1 and 999",
              "quantity 0, fourth item");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1000}]}"),
              "items[0].quantity must be between 1 and 999",
              "quantity 1000");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":-5}]}"),
              "items[0].quantity must be between 1 and 999",
              "quantity negative");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1e2}]}"),
              "items[0].quantity must be an integer", "quantity 1e2");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":\"5\"}]}"),
              "items[0].quantity must be an integer", "quantity string");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":true}]}"),
              "items[0].quantity must be an integer", "quantity true");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":[5]}]}"),
              "items[0].quantity must be an integer", "quantity array");

    buf = malloc(65536);
    if (buf == NULL) {
        ok(0, "malloc");
        return;
    }

    n = items_json(buf, 65536, 50, 50);
    sorted = 1;

    ok(order((unsigned char *) buf, n, &o, err) == 0 && o.nitems == 50,
       "50 distinct products");

    for (i = 0; i < 50; i++) {
        if (o.items[i].product_id != i + 1 || o.items[i].quantity != 1) {
            sorted = 0;
        }
    }

    ok(sorted, "50 distinct products, sorted");

    n = items_json(buf, 65536, 51, 51);
    order_bad((unsigned char *) buf, n,
              "items must not hold more than 50 distinct products",
              "51 distinct products");

    n = items_json(buf, 65536, 500, 50);
    ok(order((unsigned char *) buf, n, &o, err) == 0 && o.nitems == 50
       && o.items[0].quantity == 10 && o.items[49].quantity == 10,
       "500 items of 50 distinct products merge");

    free(buf);
}


static void
test_order_payment(void)
{
    char            err[CM_JSON_ERR_LEN];
    cm_order_req_t  o;

    ok(order(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
               "\"payment\":null}"), &o, err) == 0
       && o.method == CM_PAY_NONE, "payment null");

    ok(order(S("{\"payment\":{\"method\":\"BALANCE\"},"
               "\"items\":[{\"productId\":1,\"quantity\":1}]}"), &o, err)
       == 0 && o.method == CM_PAY_BALANCE, "payment BALANCE before items");

    ok(order(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
               "\"payment\":{\"method\":\"BALANCE\",\"cardType\":\"VISA\","
               "\"cardNo\":{\"x\":[1]}}}"), &o, err) == 0
       && o.method == CM_PAY_BALANCE && o.card_type[0] == '\0'
       && o.card_no[0] == '\0', "BALANCE ignores card fields");

    ok(order(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
               "\"payment\":{\"method\":\"CARD\",\"cardType\":\"SAMSUNG\","
               "\"cardNo\":\"1234-5678-9012-3456\"}}"), &o, err) == 0
       && o.method == CM_PAY_CARD && strcmp(o.card_type, "SAMSUNG") == 0
       && strcmp(o.card_no, "1234-5678-9012-3456") == 0, "payment CARD");

    ok(order(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
               "\"payment\":{\"method\":\"EASY_PAY\","
               "\"provider\":\"KAKAOPAY\"}}"), &o, err) == 0
       && o.method == CM_PAY_EASY_PAY && strcmp(o.provider, "KAKAOPAY") == 0
       && o.card_type[0] == '\0', "payment EASY_PAY");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"payment\":{\"method\":\"CARD\",\"provider\":\"KAKAOPAY\","
                "\"cardType\":\"KB\",\"cardNo\":\"1234-5678-9012-3456\"}}"),
              "payment.provider is only for EASY_PAY", "order CARD provider");

    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"payment\":{}}"), "payment.method is required",
              "payment without method");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"payment\":{\"method\":\"balance\"}}"),
              "payment.method must be BALANCE, CARD, EASY_PAY or "
              "TRANSFER", "lower-case method");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"payment\":{\"method\":\"BALANCE'; DROP TABLE users;--\"}}"),
              "payment.method must be BALANCE, CARD, EASY_PAY or "
              "TRANSFER",
              "SQL in method");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"payment\":{\"method\":\"BALANCE\\u0000\"}}"),
              "payment.method must be BALANCE, CARD, EASY_PAY or "
              "TRANSFER", "NUL after method");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"payment\":{\"method\":null}}"),
              "payment.method must be BALANCE, CARD, EASY_PAY or "
              "TRANSFER", "method null");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"payment\":{\"method\":[\"BALANCE\"]}}"),
              "payment.method must be BALANCE, CARD, EASY_PAY or "
              "TRANSFER", "method array");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"payment\":\"BALANCE\"}"),
              "payment must be an object or null", "payment a string");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"payment\":[]}"),
              "payment must hold 1 or 2 parts", "payment an empty list");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"payment\":false}"),
              "payment must be an object or null", "payment false");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"payment\":null,\"payment\":null}"),
              "duplicate field payment", "duplicate payment");
    order_bad(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                "\"payment\":{\"method\":\"CARD\",\"cardType\":\"KB\","
                "\"cardNo\":\"1234-5678-9012-345\"}}"),
              "payment.cardNo must look like 1234-5678-9012-3456",
              "CARD with a short number");
}


static void
test_payment(void)
{
    char              err[CM_JSON_ERR_LEN];
    cm_payment_req_t  p;

    ok(cm_parse_payment(S("{\"method\":\"BALANCE\"}"), &p, err, sizeof(err))
       == 0 && p.method == CM_PAY_BALANCE && p.card_type[0] == '\0',
       "payment BALANCE");

    ok(cm_parse_payment(S("{\"method\":\"CARD\",\"cardType\":\"KB\","
                          "\"cardNo\":\"0000-1111-2222-3333\"}"),
                        &p, err, sizeof(err)) == 0
       && p.method == CM_PAY_CARD && strcmp(p.card_type, "KB") == 0
       && strcmp(p.card_no, "0000-1111-2222-3333") == 0, "payment CARD KB");

    ok(cm_parse_payment(S("{\"cardNo\":\"1111-2222-3333-4444\",\"x\":[{}],"
                          "\"cardType\":\"HYUNDAI\",\"method\":\"CARD\"}"),
                        &p, err, sizeof(err)) == 0
       && p.method == CM_PAY_CARD && strcmp(p.card_type, "HYUNDAI") == 0
       && strcmp(p.card_no, "1111-2222-3333-4444") == 0,
       "payment CARD, method last, unknown field");

    ok(cm_parse_payment(S("{\"method\":\"BALANCE\",\"cardType\":null,"
                          "\"cardNo\":\"nope\"}"),
                        &p, err, sizeof(err)) == 0
       && p.method == CM_PAY_BALANCE && p.card_no[0] == '\0',
       "payment BALANCE ignores card fields");

    ok(cm_parse_payment(S("{\"provider\":\"NAVERPAY\",\"x\":1,"
                          "\"method\":\"EASY_PAY\"}"),
                        &p, err, sizeof(err)) == 0
       && p.method == CM_PAY_EASY_PAY && strcmp(p.provider, "NAVERPAY") == 0
       && p.card_type[0] == '\0' && p.card_no[0] == '\0',
       "payment EASY_PAY NAVERPAY, provider first");
    ok(cm_parse_payment(S("{\"method\":\"EASY_PAY\","
                          "\"provider\":\"KAKAOPAY\"}"),
                        &p, err, sizeof(err)) == 0
       && p.method == CM_PAY_EASY_PAY && strcmp(p.provider, "KAKAOPAY") == 0,
       "payment EASY_PAY KAKAOPAY");
    payment_bad(S("{\"method\":\"EASY_PAY\"}"), "provider is required",
                "EASY_PAY without provider");
    payment_bad(S("{\"method\":\"EASY_PAY\",\"provider\":\"TOSSPAY\"}"),
                "provider must be KAKAOPAY or NAVERPAY", "provider TOSSPAY");
    payment_bad(S("{\"method\":\"EASY_PAY\",\"provider\":\"kakaopay\"}"),
                "provider must be KAKAOPAY or NAVERPAY", "provider lower case");
    payment_bad(S("{\"method\":\"EASY_PAY\","
                  "\"provider\":\"KAKAOPAY\\u0000\"}"),
                "provider must be KAKAOPAY or NAVERPAY", "provider NUL");
    payment_bad(S("{\"method\":\"EASY_PAY\",\"provider\":[\"KAKAOPAY\"]}"),
                "provider must be KAKAOPAY or NAVERPAY", "provider an array");
    payment_bad(S("{\"method\":\"EASY_PAY\",\"provider\":"
                  "\"KAKAOPAYKAKAOPAYKAKAOPAY\"}"),
                "provider must be KAKAOPAY or NAVERPAY", "provider too long");
    payment_bad(S("{\"method\":\"EASY_PAY\",\"provider\":\"KAKAOPAY\","
                  "\"provider\":\"KAKAOPAY\"}"),
                "duplicate field provider", "duplicate provider");
    payment_bad(S("{\"method\":\"EASY_PAY\",\"provider\":\"KAKAOPAY\","
                  "\"cardNo\":\"1234-5678-9012-3456\"}"),
                "card fields are only for CARD", "EASY_PAY with cardNo");
    payment_bad(S("{\"method\":\"CARD\",\"cardType\":\"KB\","
                  "\"cardNo\":\"1234-5678-9012-3456\","
                  "\"provider\":\"KAKAOPAY\"}"),
                "provider is only for EASY_PAY", "CARD with provider");
    payment_bad(S("{\"provider\":null,\"method\":\"BALANCE\"}"),
                "provider is only for EASY_PAY", "BALANCE with provider");

    ok(cm_parse_payment(S("{\"method\":\"TRANSFER\",\"x\":[1]}"),
                        &p, err, sizeof(err)) == 0
       && p.method == CM_PAY_TRANSFER && p.provider[0] == '\0'
       && p.card_type[0] == '\0', "payment TRANSFER");
    payment_bad(S("{\"method\":\"TRANSFER\",\"provider\":\"KAKAOPAY\"}"),
                "provider is only for EASY_PAY", "TRANSFER with provider");
    payment_bad(S("{\"method\":\"TRANSFER\",\"cardType\":\"KB\"}"),
                "card fields are only for CARD", "TRANSFER with cardType");

    payment_bad(S("{}"), "method is required", "no method");
    payment_bad(S("{\"method\":\"CASH\"}"),
                "method must be BALANCE, CARD, EASY_PAY or "
              "TRANSFER", "unknown method");
    payment_bad(S("{\"method\":\"BALANCE'; DROP TABLE users;--\"}"),
                "method must be BALANCE, CARD, EASY_PAY or "
              "TRANSFER", "SQL in method");
    payment_bad(S("{\"method\":\"BALANCE\",\"method\":\"BALANCE\"}"),
                "duplicate field method", "duplicate method");
    payment_bad(S("{\"method\":1}"), "method must be BALANCE, CARD, EASY_PAY or "
              "TRANSFER",
                "method a number");
    payment_bad(S("{\"method\":\"CARD\"}"), "cardType is required",
                "CARD without cardType");
    payment_bad(S("{\"method\":\"CARD\",\"cardType\":\"KB\"}"),
                "cardNo is required", "CARD without cardNo");
    payment_bad(S("{\"method\":\"CARD\",\"cardType\":\"VISA\","
                  "\"cardNo\":\"1234-5678-9012-3456\"}"),
                "cardType must be SAMSUNG, KB or HYUNDAI", "cardType VISA");
    payment_bad(S("{\"method\":\"CARD\",\"cardType\":\"kb\","
                  "\"cardNo\":\"1234-5678-9012-3456\"}"),
                "cardType must be SAMSUNG, KB or HYUNDAI", "cardType kb");
    payment_bad(S("{\"method\":\"CARD\",\"cardType\":\"KB\\u0000\","
                  "\"cardNo\":\"1234-5678-9012-3456\"}"),
                "cardType must be SAMSUNG, KB or HYUNDAI", "cardType KB NUL");
    payment_bad(S("{\"method\":\"CARD\",\"cardType\":\"SAMSUNG_SAMSUNG_X\","
                  "\"cardNo\":\"1234-5678-9012-3456\"}"),
                "cardType must be SAMSUNG, KB or HYUNDAI",
                "cardType too long");
    payment_bad(S("{\"method\":\"CARD\",\"cardType\":[\"KB\"],"
                  "\"cardNo\":\"1234-5678-9012-3456\"}"),
                "cardType must be SAMSUNG, KB or HYUNDAI",
                "cardType an array");
    payment_bad(S("{\"method\":\"CARD\",\"cardType\":\"KB\","
                  "\"cardNo\":\"1234567890123456\"}"),
                "cardNo must look like 1234-5678-9012-3456",
                "cardNo without dashes");
    payment_bad(S("{\"method\":\"CARD\",\"cardType\":\"KB\","
                  "\"cardNo\":\"1234-5678-9012-345a\"}"),
                "cardNo must look like 1234-5678-9012-3456",
                "cardNo with a letter");
    payment_bad(S("{\"method\":\"CARD\",\"cardType\":\"KB\","
                  "\"cardNo\":\"1234-5678-9012-34567\"}"),
                "cardNo must look like 1234-5678-9012-3456",
                "cardNo too long");
    payment_bad(S("{\"method\":\"CARD\",\"cardType\":\"KB\","
                  "\"cardNo\":1234567890123456}"),
                "cardNo must look like 1234-5678-9012-3456",
                "cardNo a number");
    payment_bad(S("{\"method\":\"CARD\",\"cardType\":\"KB\","
                  "\"cardNo\":\"1234 5678 9012 3456\"}"),
                "cardNo must look like 1234-5678-9012-3456",
                "cardNo with spaces");
    payment_bad(S("[\"BALANCE\"]"), "payment parts must be objects",
                "payment a list of strings");
    payment_bad(S("\"BALANCE\""), "request body must be a JSON object",
                "payment a string");
    payment_bad(S("{\"method\":\"BALANCE\"}}"), "malformed JSON",
                "payment with an extra brace");
}


static void
test_int64(void)
{
    int64_t  v;

    v = 0;
    ok(cm_parse_int64(S("1"), 1, INT64_MAX, &v) == 0 && v == 1, "int 1");
    ok(cm_parse_int64(S("0"), 0, 10, &v) == 0 && v == 0, "int 0 in [0,10]");
    ok(cm_parse_int64(S("0"), 1, 10, &v) == -1, "int 0 not in [1,10]");
    ok(cm_parse_int64(S("10"), 1, 10, &v) == 0 && v == 10, "int at max");
    ok(cm_parse_int64(S("11"), 1, 10, &v) == -1, "int above max");
    ok(cm_parse_int64(S("007"), 1, 10, &v) == 0 && v == 7,
       "int with leading zeros");
    ok(cm_parse_int64(S("9223372036854775807"), 1, INT64_MAX, &v) == 0
       && v == INT64_MAX, "int INT64_MAX");
    ok(cm_parse_int64(S("9223372036854775808"), 1, INT64_MAX, &v) == -1,
       "int INT64_MAX + 1");
    ok(cm_parse_int64(S("18446744073709551616"), 1, INT64_MAX, &v) == -1,
       "int 2^64");
    ok(cm_parse_int64(S("99999999999999999999999"), 1, INT64_MAX, &v) == -1,
       "int 23 digits");
    ok(cm_parse_int64(S(""), 0, 10, &v) == -1, "int empty");
    ok(cm_parse_int64(NULL, 0, 0, 10, &v) == -1, "int NULL");
    ok(cm_parse_int64(S("-1"), -10, 10, &v) == -1, "int no minus sign");
    ok(cm_parse_int64(S("+1"), 0, 10, &v) == -1, "int no plus sign");
    ok(cm_parse_int64(S(" 1"), 0, 10, &v) == -1, "int no space");
    ok(cm_parse_int64(S("1 "), 0, 10, &v) == -1, "int no trailing space");
    ok(cm_parse_int64(S("1a"), 0, 10, &v) == -1, "int no letters");
    ok(cm_parse_int64(S("1.0"), 0, 10, &v) == -1, "int no fraction");
    ok(cm_parse_int64(S("1\0"), 0, 10, &v) == -1, "int no NUL");
    ok(cm_parse_int64((const unsigned char *) "123", 2, 0, 100, &v) == 0
       && v == 12, "int reads only len bytes");
}


static void
test_escape(void)
{
    char           out[64];
    size_t         n;
    unsigned char  all[256];

    escape_is(S("plain text"), 64, "plain text", "plain");
    escape_is(S(""), 64, "", "empty");
    escape_is(S("a\"b\\c/d"), 64, "a\\\"b\\\\c/d", "quote and backslash");
    escape_is(S("\n\r\t\b\f"), 64,
              "\\u000a\\u000d\\u0009\\u0008\\u000c", "control characters");
    escape_is(S("\0x\x1f"), 64, "\\u0000x\\u001f", "NUL and 0x1f");
    escape_is(S("\x7f"), 64, "\x7f", "DEL passes");
    escape_is(S("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), 64,
              "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
              "valid UTF-8 passes");
    escape_is(S("a\xff" "b"), 64, "a\xef\xbf\xbd" "b", "0xff replaced");
    escape_is(S("\xc0\x80"), 64, "\xef\xbf\xbd\xef\xbf\xbd",
              "overlong NUL replaced");
    escape_is(S("\xed\xa0\x80"), 64,
              "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", "surrogate replaced");
    escape_is(S("\xf4\x90\x80\x80"), 64,
              "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
              "above U+10FFFF replaced");
    escape_is(S("x\xe2\x82"), 64, "x\xef\xbf\xbd\xef\xbf\xbd",
              "truncated sequence at the end");
    escape_is(S("\xe2\x82x"), 64, "\xef\xbf\xbd\xef\xbf\xbdx",
              "truncated sequence before ASCII");
    escape_is(S("\xf4\x8f\xbf\xbf"), 64, "\xf4\x8f\xbf\xbf", "U+10FFFF");
    escape_is(S("\xef\xbf\xbf"), 64, "\xef\xbf\xbf", "U+FFFF");

    /* truncation: whole characters only */
    escape_is(S("ab\"cd"), 5, "ab\\\"c", "truncated after an escape");
    escape_is(S("ab\"cd"), 3, "ab", "escape does not fit");
    escape_is(S("a\x01"), 6, "a", "control escape does not fit");
    escape_is(S("a\xe2\x82\xac"), 3, "a", "3-byte character does not fit");
    escape_is(S("a\xff"), 3, "a", "replacement does not fit");
    escape_is(S("abc"), 0, "", "dstlen 0");

    n = cm_json_escape(NULL, 0, S("abc"));
    ok(n == 0, "NULL dst with dstlen 0");

    for (n = 0; n < 256; n++) {
        all[n] = (unsigned char) n;
    }

    ok(escape_parses_back(all, 256), "every byte: output parses as JSON");
    ok(escape_parses_back(S("BALANCE'; DROP TABLE users;--\"}")),
       "SQL and quotes: output parses as JSON");

    n = cm_json_escape(out, sizeof(out), S("\"\""));
    ok(n == 4 && memcmp(out, "\\\"\\\"", 4) == 0, "two quotes");
}


static int
err_clean(const char *err)
{
    const char  *p;

    if (err[0] == '\0') {
        return 0;
    }

    /* safe to put into a JSON string unescaped */
    for (p = err; *p != '\0'; p++) {
        if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\') {
            return 0;
        }
    }

    return 1;
}


static void
charge_ok(const unsigned char *buf, size_t len, int64_t want,
    const char *desc)
{
    int      rc;
    char     err[CM_JSON_ERR_LEN];
    int64_t  amount;

    amount = -42;
    rc = cm_parse_charge(buf, len, MAX_AMOUNT, &amount, err, sizeof(err));

    if (!ok(rc == 0 && amount == want, "charge ok: %s", desc)) {
        tap_diag("  rc %d amount %lld err '%s'", rc, (long long) amount,
                 rc == 0 ? "" : err);
    }
}


static void
charge_bad(const unsigned char *buf, size_t len, const char *want,
    const char *desc)
{
    int      rc;
    char     err[CM_JSON_ERR_LEN];
    int64_t  amount;

    rc = cm_parse_charge(buf, len, MAX_AMOUNT, &amount, err, sizeof(err));

    if (!ok(rc == -1 && strcmp(err, want) == 0 && err_clean(err),
            "charge rejected: %s", desc))
    {
        tap_diag("  rc %d err '%s' want '%s'", rc, rc == 0 ? "" : err, want);
    }
}


static int
order(const unsigned char *buf, size_t len, cm_order_req_t *out, char *err)
{
    int  rc;

    rc = cm_parse_order(buf, len, out, err, CM_JSON_ERR_LEN);

    if (rc != 0) {
        tap_diag("  cm_parse_order: %s", err);
    }

    return rc;
}


static void
order_bad(const unsigned char *buf, size_t len, const char *want,
    const char *desc)
{
    int             rc;
    char            err[CM_JSON_ERR_LEN];
    cm_order_req_t  o;

    rc = cm_parse_order(buf, len, &o, err, sizeof(err));

    if (!ok(rc == -1 && strcmp(err, want) == 0 && err_clean(err),
            "order rejected: %s", desc))
    {
        tap_diag("  rc %d err '%s' want '%s'", rc, rc == 0 ? "" : err, want);
    }
}


static void
payment_bad(const unsigned char *buf, size_t len, const char *want,
    const char *desc)
{
    int               rc;
    char              err[CM_JSON_ERR_LEN];
    cm_payment_req_t  p;

    rc = cm_parse_payment(buf, len, &p, err, sizeof(err));

    if (!ok(rc == -1 && strcmp(err, want) == 0 && err_clean(err),
            "payment rejected: %s", desc))
    {
        tap_diag("  rc %d err '%s' want '%s'", rc, rc == 0 ? "" : err, want);
    }
}


static void
escape_is(const unsigned char *s, size_t len, size_t dstlen,
    const char *want, const char *desc)
{
    char    out[64];
    size_t  n;

    memset(out, '#', sizeof(out));
    n = cm_json_escape(out, dstlen, s, len);

    /* nothing written past dstlen */
    ok(n == strlen(want) && memcmp(out, want, n) == 0
       && (dstlen >= sizeof(out) || out[dstlen] == '#'),
       "escape: %s", desc);
}


static int
escape_parses_back(const unsigned char *s, size_t len)
{
    int          rc;
    char        *buf;
    size_t       n;
    yajl_handle  h;

    buf = malloc(len * 6 + 2);
    if (buf == NULL) {
        return 0;
    }

    buf[0] = '"';
    n = cm_json_escape(buf + 1, len * 6, s, len);
    buf[n + 1] = '"';

    /* yajl checks UTF-8 in strings */
    h = yajl_alloc(NULL, NULL, NULL);
    rc = h != NULL
         && yajl_parse(h, (unsigned char *) buf, n + 2) == yajl_status_ok
         && yajl_complete_parse(h) == yajl_status_ok;

    if (h != NULL) {
        yajl_free(h);
    }

    free(buf);

    return rc;
}


/* {"items":[...]} with n items over `distinct` product ids, quantity 1 */

static size_t
items_json(char *buf, size_t size, int n, int distinct)
{
    int     i;
    size_t  len;

    len = (size_t) snprintf(buf, size, "{\"items\":[");

    /* descending ids, so that sorting is exercised */
    for (i = 0; i < n && len < size; i++) {
        len += (size_t) snprintf(buf + len, size - len,
                                 "%s{\"productId\":%d,\"quantity\":1}",
                                 i == 0 ? "" : ",", distinct - i % distinct);
    }

    if (len < size) {
        len += (size_t) snprintf(buf + len, size - len, "]}");
    }

    return len < size ? len : size;
}


/* head, depth arrays around 1, tail */

static size_t
nested(char *buf, size_t size, const char *head, int depth, const char *tail)
{
    int     i;
    size_t  len;

    len = (size_t) snprintf(buf, size, "%s", head);

    for (i = 0; i < depth; i++) {
        buf[len++] = '[';
    }

    buf[len++] = '1';

    for (i = 0; i < depth; i++) {
        buf[len++] = ']';
    }

    len += (size_t) snprintf(buf + len, size - len, "%s", tail);

    return len;
}
