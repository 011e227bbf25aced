/*
 * Unit tests of cm_order: order items naming variants (the order and
 * payment bodies of before are tested in test_cm_json.c).  TAP output.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_json.h"
#include "cm_cart.h"
#include "tap.h"


#define S(s)  (const unsigned char *) (s), sizeof(s) - 1


static void test_variants(void);
static void test_bad(void);
static void test_from_cart(void);
static void test_shipping(void);
static void test_parts(void);
static void parts_bad(const char *body, const char *msg, const char *name);
static void test_payment_parts(void);
static void payment_parts_bad(const char *body, const char *msg);


int
main(void)
{
    test_variants();
    test_bad();
    test_from_cart();
    test_shipping();
    test_parts();
    test_payment_parts();

    return tap_done();
}


static void
test_variants(void)
{
    char            err[CM_JSON_ERR_LEN];
    cm_order_req_t  o;

    ok(cm_parse_order(S("{\"items\":[{\"variantId\":7,\"quantity\":2}]}"),
                      &o, err, sizeof(err)) == 0, "a variant alone");
    is_int(o.nitems, 1, "one item");
    is_int(o.items[0].product_id, 0, "no product");
    is_int(o.items[0].variant_id, 7, "variant 7");
    is_int(o.items[0].quantity, 2, "quantity 2");

    ok(cm_parse_order(S("{\"items\":[{\"productId\":3,\"variantId\":9,"
                        "\"quantity\":1},{\"productId\":3,\"variantId\":8,"
                        "\"quantity\":1},{\"productId\":2,\"quantity\":4},"
                        "{\"productId\":3,\"variantId\":9,\"quantity\":5}]}"),
                      &o, err, sizeof(err)) == 0, "product and variant");
    is_int(o.nitems, 3, "the same variant twice is merged");
    is_int(o.items[0].product_id, 2, "sorted by product");
    is_int(o.items[1].variant_id, 8, "then by variant");
    is_int(o.items[2].variant_id, 9, "variant 9 last");
    is_int(o.items[2].quantity, 6, "quantities summed");

    ok(cm_parse_order(S("{\"items\":[{\"productId\":3,\"quantity\":1},"
                        "{\"productId\":3,\"variantId\":3,\"quantity\":1}]}"),
                      &o, err, sizeof(err)) == 0,
       "a product, and a variant of it: two items (the database decides)");
    is_int(o.nitems, 2, "two items");
}


static void
test_bad(void)
{
    char            err[CM_JSON_ERR_LEN];
    cm_order_req_t  o;

    ok(cm_parse_order(S("{\"items\":[{\"quantity\":1}]}"), &o, err,
                      sizeof(err)) == -1, "neither product nor variant");
    is_str(err, "items[0].productId or variantId is required", "message");

    ok(cm_parse_order(S("{\"items\":[{\"variantId\":0,\"quantity\":1}]}"),
                      &o, err, sizeof(err)) == -1, "variant 0");
    ok(strstr(err, "items[0].variantId") != NULL, "names variantId");

    ok(cm_parse_order(S("{\"items\":[{\"variantId\":\"7\",\"quantity\":1}]}"),
                      &o, err, sizeof(err)) == -1, "variant as a string");

    ok(cm_parse_order(S("{\"items\":[{\"variantId\":1,\"variantId\":2,"
                        "\"quantity\":1}]}"), &o, err, sizeof(err)) == -1,
       "variantId twice");
    is_str(err, "duplicate field items[0].variantId", "message");

    ok(cm_parse_order(S("{\"items\":[{\"variantId\":1,\"quantity\":600},"
                        "{\"variantId\":1,\"quantity\":600}]}"), &o, err,
                      sizeof(err)) == -1, "merged quantity over 999");
    is_int(o.nitems, 0, "output cleared");
}


static void
test_from_cart(void)
{
    char            err[CM_JSON_ERR_LEN];
    cm_order_req_t  o;

    ok(cm_parse_order(S("{\"fromCart\":true}"), &o, err, sizeof(err)) == 0,
       "fromCart alone");
    ok(o.from_cart == 1 && o.nitems == 0 && o.nvariants == 0,
       "every line, no items");

    ok(cm_parse_order(S("{\"fromCart\":true,\"variantIds\":[9,4,9],"
                        "\"payment\":{\"method\":\"BALANCE\"},"
                        "\"couponId\":5}"), &o, err, sizeof(err)) == 0,
       "a selection, a payment, a coupon");
    is_int(o.nvariants, 2, "duplicates are one");
    is_int(o.variant_ids[0], 9, "variant 9");
    is_int(o.variant_ids[1], 4, "variant 4");
    is_int(o.method, CM_PAY_BALANCE, "BALANCE");
    is_int(o.coupon_id, 5, "coupon 5");

    ok(cm_parse_order(S("{\"fromCart\":false,\"items\":[{\"productId\":1,"
                        "\"quantity\":1}]}"), &o, err, sizeof(err)) == 0,
       "fromCart false: the items");
    ok(o.from_cart == 0 && o.nitems == 1, "one item");

    ok(cm_parse_order(S("{\"fromCart\":true,\"items\":[{\"productId\":1,"
                        "\"quantity\":1}]}"), &o, err, sizeof(err)) == -1,
       "both");
    is_str(err, "items and fromCart must not both be given", "message");

    ok(cm_parse_order(S("{\"variantIds\":[1]}"), &o, err, sizeof(err))
       == -1, "variantIds without fromCart");
    is_str(err, "variantIds needs fromCart true", "message");

    ok(cm_parse_order(S("{\"fromCart\":false}"), &o, err, sizeof(err))
       == -1, "fromCart false and no items");
    is_str(err, "items or fromCart true is required", "message");

    ok(cm_parse_order(S("{\"fromCart\":\"true\"}"), &o, err, sizeof(err))
       == -1, "fromCart a string");
    is_str(err, "fromCart must be true or false", "message");

    ok(cm_parse_order(S("{\"fromCart\":true,\"variantIds\":[]}"), &o, err,
                      sizeof(err)) == -1, "an empty selection");
    is_str(err, "variantIds must not be empty", "message");

    ok(cm_parse_order(S("{\"fromCart\":true,\"variantIds\":[0]}"), &o, err,
                      sizeof(err)) == -1, "variant 0");
    ok(cm_parse_order(S("{\"fromCart\":true,\"variantIds\":[[1]]}"), &o,
                      err, sizeof(err)) == -1, "a nested array");
    ok(cm_parse_order(S("{\"fromCart\":true,\"variantIds\":{\"a\":1}}"), &o,
                      err, sizeof(err)) == -1, "an object");
    ok(cm_parse_order(S("{\"fromCart\":true,\"fromCart\":true}"), &o, err,
                      sizeof(err)) == -1, "fromCart twice");
    ok(o.from_cart == 0 && o.nvariants == 0, "output cleared");
}


/* "shippingAddress": the address book's parser, nested, without isDefault */

static void
test_shipping(void)
{
    char              err[CM_JSON_ERR_LEN];
    size_t            i;
    cm_order_req_t    o;
    cm_address_req_t  a;

    static const struct {
        const char  *body;
        const char  *msg;
    } bad[] = {
        { "{\"items\":[{\"productId\":1,\"quantity\":1}],"
          "\"shippingAddress\":\"x\"}", "shippingAddress must be an object" },
        { "{\"items\":[{\"productId\":1,\"quantity\":1}],"
          "\"shippingAddress\":[]}", "shippingAddress must be an object" },
        { "{\"items\":[{\"productId\":1,\"quantity\":1}],"
          "\"shippingAddress\":null}", "shippingAddress must be an object" },
        { "{\"items\":[{\"productId\":1,\"quantity\":1}],"
          "\"shippingAddress\":{\"recipient\":\"a\"}}", "phone is required" },
        { "{\"items\":[{\"productId\":1,\"quantity\":1}],"
          "\"shippingAddress\":{\"recipient\":1}}", "recipient must be a string" },
        { "{\"items\":[{\"productId\":1,\"quantity\":1}],"
          "\"shippingAddress\":{\"floor\":1}}", "unknown field" },
        { "{\"items\":[{\"productId\":1,\"quantity\":1}],"
          "\"shippingAddress\":{\"isDefault\":true}}", "unknown field" },
        { "{\"items\":[{\"productId\":1,\"quantity\":1}],"
          "\"shippingAddress\":{\"memo\":{}}}",
          "memo must not be an object or an array" },
        { "{\"items\":[{\"productId\":1,\"quantity\":1}],"
          "\"shippingAddress\":{\"zipCode\":\"1234\"}}",
          "zipCode must be 5 digits" },
        { "{\"items\":[{\"productId\":1,\"quantity\":1}],"
          "\"shippingAddress\":{\"recipient\":\"a\",\"recipient\":\"b\"}}",
          "duplicate field recipient" },
        { "{\"items\":[{\"productId\":1,\"quantity\":1}],"
          "\"shippingAddress\":{\"recipient\":\"a\",\"phone\":\"010-1234-5678\","
          "\"zipCode\":\"04524\",\"address1\":\"b\"},\"shippingAddress\":{}}",
          "duplicate field shippingAddress" },
    };

    ok(cm_parse_order_shipping(S("{\"items\":[{\"productId\":1,"
                                 "\"quantity\":1}],\"shippingAddress\":"
                                 "{\"recipient\":\"Kim\",\"phone\":"
                                 "\"010-1234-5678\",\"zipCode\":\"04524\","
                                 "\"address1\":\"Sejong-daero 110\","
                                 "\"address2\":null,\"memo\":\"door\"},"
                                 "\"payment\":{\"method\":\"BALANCE\"}}"),
                               &o, &a, err, sizeof(err)) == 0,
       "an order with a shippingAddress");
    ok(o.shipping == 1 && o.nitems == 1 && o.method == CM_PAY_BALANCE,
       "the order and the address");
    is_str(a.text[CM_AF_RECIPIENT], "Kim", "recipient");
    is_str(a.text[CM_AF_PHONE], "010-1234-5678", "phone");
    is_str(a.text[CM_AF_ZIP_CODE], "04524", "zipCode");
    is_str(a.text[CM_AF_ADDRESS1], "Sejong-daero 110", "address1");
    is_int(a.len[CM_AF_ADDRESS2], 0, "address2 null: none");
    is_str(a.text[CM_AF_MEMO], "door", "memo");

    ok(cm_parse_order_shipping(S("{\"fromCart\":true}"), &o, &a, err,
                               sizeof(err)) == 0 && !o.shipping && a.seen == 0,
       "no shippingAddress");

    ok(cm_parse_order(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                        "\"shippingAddress\":7}"), &o, err, sizeof(err)) == 0
       && !o.shipping, "cm_parse_order skips it, as any unknown key");

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ok(cm_parse_order_shipping((const unsigned char *) bad[i].body,
                                   strlen(bad[i].body), &o, &a, err,
                                   sizeof(err)) == -1,
           "bad shippingAddress refused");
        is_str(err, bad[i].msg, bad[i].msg);
        ok(!o.shipping && a.seen == 0 && a.len[CM_AF_RECIPIENT] == 0,
           "output cleared");
    }
}


/* "payment" as a list of parts (mixed payments) */

static void
test_parts(void)
{
    char            err[CM_JSON_ERR_LEN];
    cm_order_req_t  o;

    ok(cm_parse_order(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                        "\"payment\":[{\"method\":\"POINTS\",\"amount\":"
                        "10000},{\"method\":\"CARD\",\"amount\":20000,"
                        "\"cardType\":\"KB\",\"cardNo\":"
                        "\"1234-5678-9012-3456\"}]}"),
                      &o, err, sizeof(err)) == 0, "points and card");
    is_int(o.points, 10000, "points 10000");
    is_int(o.rest_amount, 20000, "card 20000");
    is_int(o.method, CM_PAY_CARD, "CARD");
    is_str(o.card_type, "KB", "card type");

    ok(cm_parse_order(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                        "\"payment\":[{\"method\":\"BALANCE\",\"amount\":5},"
                        "{\"amount\":7,\"method\":\"POINTS\"}]}"),
                      &o, err, sizeof(err)) == 0, "balance then points");
    ok(o.points == 7 && o.rest_amount == 5 && o.method == CM_PAY_BALANCE,
       "points 7, balance 5");

    ok(cm_parse_order(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                        "\"payment\":[{\"method\":\"POINTS\",\"amount\":3}]}"),
                      &o, err, sizeof(err)) == 0, "points alone");
    ok(o.points == 3 && o.rest_amount == 0 && o.method == CM_PAY_NONE,
       "points 3, no other part");

    ok(cm_parse_order(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                        "\"payment\":[{\"method\":\"BALANCE\",\"amount\":9}]}"),
                      &o, err, sizeof(err)) == 0, "a list of one balance part");
    ok(o.points == 0 && o.rest_amount == 9 && o.method == CM_PAY_BALANCE,
       "balance 9");

    ok(cm_parse_order(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                        "\"payment\":[{\"method\":\"POINTS\",\"amount\":"
                        "1000},{\"method\":\"EASY_PAY\",\"provider\":"
                        "\"KAKAOPAY\",\"amount\":2000}]}"),
                      &o, err, sizeof(err)) == 0, "points and easy pay");
    ok(o.points == 1000 && o.rest_amount == 2000
       && o.method == CM_PAY_EASY_PAY, "points 1000, easy pay 2000");
    is_str(o.provider, "KAKAOPAY", "provider");

    ok(cm_parse_order(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                        "\"payment\":[{\"method\":\"TRANSFER\",\"amount\":"
                        "2000},{\"method\":\"POINTS\",\"amount\":1000}]}"),
                      &o, err, sizeof(err)) == 0, "transfer and points");
    ok(o.points == 1000 && o.rest_amount == 2000
       && o.method == CM_PAY_TRANSFER, "points 1000, transfer 2000");

    ok(cm_parse_order(S("{\"items\":[{\"productId\":1,\"quantity\":1}],"
                        "\"payment\":{\"method\":\"BALANCE\",\"amount\":9,"
                        "\"x\":1}}"), &o, err, sizeof(err)) == 0,
       "the single object is unchanged: other fields ignored");
    ok(o.points == 0 && o.rest_amount == 0, "no parts");

    parts_bad("[{\"method\":\"POINTS\",\"amount\":1},"
              "{\"method\":\"POINTS\",\"amount\":2}]",
              "payment holds one POINTS part at most", "two POINTS parts");
    parts_bad("[{\"method\":\"CARD\",\"amount\":1,\"cardType\":\"KB\","
              "\"cardNo\":\"1234-5678-9012-3456\"},{\"method\":\"CARD\","
              "\"amount\":2,\"cardType\":\"KB\",\"cardNo\":"
              "\"1234-5678-9012-3456\"}]",
              "payment holds one BALANCE, CARD, EASY_PAY or TRANSFER part at most",
              "two CARD parts");
    parts_bad("[{\"method\":\"BALANCE\",\"amount\":1},"
              "{\"method\":\"CARD\",\"amount\":2,\"cardType\":\"KB\","
              "\"cardNo\":\"1234-5678-9012-3456\"}]",
              "payment holds one BALANCE, CARD, EASY_PAY or TRANSFER part at most",
              "balance and card");
    parts_bad("[{\"method\":\"POINTS\",\"amount\":1},"
              "{\"method\":\"BALANCE\",\"amount\":1},"
              "{\"method\":\"BALANCE\",\"amount\":1}]",
              "payment must hold 1 or 2 parts", "three parts");
    parts_bad("[{\"method\":\"POINTS\",\"amount\":-5}]",
              "payment amount must be between 1 and 1000000000000",
              "a negative amount");
    parts_bad("[{\"method\":\"POINTS\",\"amount\":0}]",
              "payment amount must be between 1 and 1000000000000",
              "a zero amount");
    parts_bad("[{\"method\":\"POINTS\",\"amount\":\"5\"}]",
              "payment amount must be an integer", "an amount string");
    parts_bad("[{\"method\":\"POINTS\",\"amount\":1.5}]",
              "payment amount must be an integer", "a fractional amount");
    parts_bad("[{\"method\":\"BITCOIN\",\"amount\":5}]",
              "payment[].method must be POINTS, BALANCE, CARD, EASY_PAY or "
              "TRANSFER", "an unknown method");
    parts_bad("[{\"method\":\"POINTS\",\"amount\":5,\"x\":1}]",
              "payment[].: method, amount, cardType, cardNo and provider only",
              "an unknown field");
    parts_bad("[{\"method\":\"BALANCE\"}]", "payment[].amount is required",
              "no amount");
    parts_bad("[{\"method\":\"EASY_PAY\",\"amount\":5}]",
              "payment[].provider is required", "easy pay without provider");
    parts_bad("[{\"method\":\"EASY_PAY\",\"amount\":5,\"provider\":"
              "\"TOSS\"}]", "payment[].provider must be KAKAOPAY or NAVERPAY",
              "an unknown provider");
    parts_bad("[{\"method\":\"POINTS\",\"amount\":5,\"provider\":"
              "\"KAKAOPAY\"}]", "payment[].provider is only for EASY_PAY",
              "a provider on points");
    parts_bad("[{\"method\":\"TRANSFER\",\"amount\":5},"
              "{\"method\":\"EASY_PAY\",\"amount\":5,\"provider\":"
              "\"KAKAOPAY\"}]",
              "payment holds one BALANCE, CARD, EASY_PAY or TRANSFER part at "
              "most", "transfer and easy pay");
    parts_bad("[\"POINTS\"]", "payment parts must be objects",
              "a part a string");
    parts_bad("[[]]", "payment parts must be objects", "a part a list");
}


static void
parts_bad(const char *payment, const char *msg, const char *name)
{
    char            body[512], err[CM_JSON_ERR_LEN];
    int             n;
    cm_order_req_t  o;

    n = snprintf(body, sizeof(body), "{\"items\":[{\"productId\":1,"
                 "\"quantity\":1}],\"payment\":%s}", payment);

    ok(cm_parse_order((const unsigned char *) body, (size_t) n, &o, err,
                      sizeof(err)) == -1, name);
    is_str(err, msg, name);
}


/* the body of POST /orders/{id}/payment as a list of parts */

static void
test_payment_parts(void)
{
    char              err[CM_JSON_ERR_LEN];
    cm_payment_req_t  p;

    ok(cm_parse_payment(S("[{\"method\":\"POINTS\",\"amount\":1000},"
                          "{\"method\":\"BALANCE\",\"amount\":2000}]"),
                        &p, err, sizeof(err)) == 0, "pay: points and balance");
    ok(p.points == 1000 && p.rest_amount == 2000 && p.method == CM_PAY_BALANCE,
       "points 1000, balance 2000");

    ok(cm_parse_payment(S(" [{\"method\":\"CARD\",\"amount\":2,"
                          "\"cardType\":\"KB\",\"cardNo\":"
                          "\"1234-5678-9012-3456\"},{\"method\":\"POINTS\","
                          "\"amount\":1}]"), &p, err, sizeof(err)) == 0,
       "pay: card and points");
    ok(p.points == 1 && p.rest_amount == 2 && p.method == CM_PAY_CARD
       && strcmp(p.card_no, "1234-5678-9012-3456") == 0, "card 2, points 1");

    ok(cm_parse_payment(S("[{\"method\":\"POINTS\",\"amount\":7},"
                          "{\"method\":\"EASY_PAY\",\"amount\":3,"
                          "\"provider\":\"NAVERPAY\"}]"), &p, err,
                        sizeof(err)) == 0, "pay: points and easy pay");
    ok(p.points == 7 && p.rest_amount == 3 && p.method == CM_PAY_EASY_PAY
       && strcmp(p.provider, "NAVERPAY") == 0, "easy pay NAVERPAY 3");

    ok(cm_parse_payment(S("[{\"method\":\"POINTS\",\"amount\":7}]"),
                        &p, err, sizeof(err)) == 0, "pay: points alone");
    ok(p.points == 7 && p.rest_amount == 0 && p.method == CM_PAY_NONE,
       "points 7, nothing else");

    ok(cm_parse_payment(S("{\"method\":\"BALANCE\",\"amount\":5}"), &p,
                        err, sizeof(err)) == 0
       && p.points == 0 && p.rest_amount == 0, "pay: an object is no list");

    payment_parts_bad("[]", "payment must hold 1 or 2 parts");
    payment_parts_bad("[{\"method\":\"POINTS\",\"amount\":1},"
                      "{\"method\":\"POINTS\",\"amount\":1}]",
                      "payment holds one POINTS part at most");
    payment_parts_bad("[{\"method\":\"POINTS\",\"amount\":1},"
                      "{\"method\":\"BALANCE\",\"amount\":1},"
                      "{\"method\":\"CARD\",\"amount\":1}]",
                      "[].cardType is required");
    payment_parts_bad("[{\"method\":\"BALANCE\"}]", "[].amount is required");
    payment_parts_bad("[{\"method\":\"POINTS\",\"amount\":0}]",
                      "payment amount must be between 1 and 1000000000000");
    payment_parts_bad("[{\"method\":\"POINTS\",\"amount\":1,\"x\":2}]",
                      "[].: method, amount, cardType, cardNo and provider "
                      "only");
    payment_parts_bad("[1]", "payment parts must be objects");
    payment_parts_bad("[{\"method\":\"POINTS\",\"amount\":1}]]",
                      "malformed JSON");
}


static void
payment_parts_bad(const char *body, const char *msg)
{
    char              err[CM_JSON_ERR_LEN];
    cm_payment_req_t  p;

    ok(cm_parse_payment((const unsigned char *) body, strlen(body), &p, err,
                        sizeof(err)) == -1
       && p.points == 0 && p.rest_amount == 0 && p.method == CM_PAY_NONE,
       msg);
    is_str(err, msg, msg);
}
