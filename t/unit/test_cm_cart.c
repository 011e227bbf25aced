/*
 * Unit tests of cm_cart: the cart line's body and the address book's
 * bodies (create and patch): required fields, unknown and repeated
 * fields, types, lengths in characters, phone and zip code rules.  TAP.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_json.h"
#include "cm_cart.h"
#include "tap.h"


#define ADDR  "\"recipient\":\"\xed\x99\x8d\xea\xb8\xb8\xeb\x8f\x99\"," \
              "\"phone\":\"010-1234-5678\",\"zipCode\":\"06236\"," \
              "\"address1\":\"Teheran-ro 1\""


static void item(const char *body, int32_t want, const char *err_want);
static void addr(const char *body, int create, const char *err_want,
    const char *desc);
static void test_item(void);
static void test_address(void);


int
main(void)
{
    test_item();
    test_address();

    return tap_done();
}


/* err_want NULL: accepted with quantity want */

static void
item(const char *body, int32_t want, const char *err_want)
{
    int      rc;
    char     err[CM_JSON_ERR_LEN];
    int32_t  q;

    q = 0;
    err[0] = '\0';
    rc = cm_parse_cart_item((const unsigned char *) body, strlen(body), &q,
                            err, sizeof(err));

    if (err_want == NULL) {
        ok(rc == 0 && q == want, "cart item %s: quantity %d (%s)", body,
           (int) q, err);
    } else {
        ok(rc == -1 && strstr(err, err_want) != NULL,
           "cart item %s refused: %s", body, err);
    }
}


static void
test_item(void)
{
    item("{\"quantity\":1}", 1, NULL);
    item("{\"quantity\":999}", 999, NULL);
    item("{\"quantity\":0}", 0, "between 1 and 999");
    item("{\"quantity\":1000}", 0, "between 1 and 999");
    item("{\"quantity\":-1}", 0, "between 1 and 999");
    item("{\"quantity\":99999999999999999999999}", 0, "between 1 and 999");
    item("{\"quantity\":1.0}", 0, "must be an integer");
    item("{\"quantity\":\"2\"}", 0, "must be an integer");
    item("{\"quantity\":null}", 0, "must be an integer");
    item("{\"quantity\":[1]}", 0, "must be an integer");
    item("{}", 0, "quantity is required");
    item("{\"quantity\":1,\"quantity\":2}", 0, "duplicate field quantity");
    item("{\"quantity\":1,\"price\":0}", 0, "unknown field");
    item("[1]", 0, "");
    item("{\"quantity\":1", 0, "");
    item("", 0, "");
}


static void
addr(const char *body, int create, const char *err_want, const char *desc)
{
    int               rc;
    char              err[CM_JSON_ERR_LEN];
    cm_address_req_t  req;

    err[0] = '\0';
    rc = cm_parse_address((const unsigned char *) body, strlen(body), create,
                          &req, err, sizeof(err));

    if (err_want == NULL) {
        ok(rc == 0, "address accepted: %s (%s)", desc, err);
    } else {
        ok(rc == -1 && strstr(err, err_want) != NULL,
           "address refused: %s (%s)", desc, err);
        ok(req.seen == 0, "nothing kept: %s", desc);
    }
}


static void
test_address(void)
{
    char              big[1024], err[CM_JSON_ERR_LEN];
    size_t            i;
    cm_address_req_t  req;

    addr("{" ADDR "}", 1, NULL, "the required fields");

    ok(cm_parse_address((const unsigned char *) "{" ADDR ",\"address2\":"
                        "\"101\",\"memo\":null,\"isDefault\":true}",
                        strlen("{" ADDR ",\"address2\":\"101\",\"memo\":null,"
                               "\"isDefault\":true}"),
                        1, &req, err, sizeof(err)) == 0, "all fields");
    is_int(req.is_default, 1, "isDefault true");
    is_str(req.text[CM_AF_RECIPIENT], "\xed\x99\x8d\xea\xb8\xb8\xeb\x8f\x99",
           "recipient kept as UTF-8");
    is_str(req.text[CM_AF_ADDRESS2], "101", "address2 kept");
    ok((req.seen & (1u << CM_AF_MEMO)) && req.len[CM_AF_MEMO] == 0,
       "memo null: seen, empty");
    is_str(req.text[CM_AF_ZIP_CODE], "06236", "zipCode kept");

    addr("{\"phone\":\"010-1234-5678\",\"zipCode\":\"06236\","
         "\"address1\":\"x\"}", 1, "recipient is required", "no recipient");
    addr("{" ADDR ",\"country\":\"KR\"}", 1, "unknown field", "unknown");
    addr("{" ADDR ",\"phone\":\"010-1234-5678\"}", 1, "duplicate field phone",
         "twice");
    addr("{" ADDR ",\"isDefault\":1}", 1, "isDefault must be true or false",
         "isDefault a number");
    addr("{" ADDR ",\"isDefault\":\"true\"}", 1, "true or false",
         "isDefault a string");
    addr("{\"recipient\":null}", 0, "recipient must be a string",
         "recipient null");
    addr("{\"recipient\":\"   \"}", 0, "recipient must be 1 to 100",
         "blank recipient");
    addr("{\"recipient\":\"a\\u0001b\"}", 0, "control", "control character");
    addr("{\"zipCode\":\"1234\"}", 0, "zipCode must be 5 digits", "4 digits");
    addr("{\"zipCode\":\"123456\"}", 0, "5 digits", "6 digits");
    addr("{\"zipCode\":12345}", 0, "zipCode must be a string", "a number");
    addr("{\"zipCode\":\"1234a\"}", 0, "5 digits", "a letter");
    addr("{\"zipCode\":\"'; DROP TABLE users; --\"}", 0, "5 digits",
         "injection");
    addr("{\"phone\":\"abc\"}", 0, "phone must be", "bad phone");
    addr("{\"phone\":\"123456\"}", 0, "phone must be", "6 digits");
    addr("{\"address1\":{}}", 0, "must not be an object", "an object");
    addr("{\"address1\":\"\"}", 0, "address1 must be 1 to 200", "empty");
    addr("{}", 0, "nothing to change", "empty patch");
    addr("{\"address2\":\"\"}", 0, NULL, "address2 cleared");
    addr("{\"memo\":null}", 0, NULL, "memo cleared");
    addr("{\"isDefault\":false}", 0, NULL, "isDefault alone");

    /* 200 Hangul syllables are 200 characters (600 bytes), 201 are not */
    strcpy(big, "{\"address1\":\"");
    for (i = 0; i < 200; i++) {
        strcat(big, "\xea\xb0\x80");
    }
    strcat(big, "\"}");
    addr(big, 0, NULL, "200 characters");

    strcpy(big + strlen(big) - 2, "\xea\xb0\x80\"}");
    addr(big, 0, "address1 must be 1 to 200", "201 characters");

    strcpy(big, "{\"memo\":\"");
    for (i = 0; i < 101; i++) {
        strcat(big, "m");
    }
    strcat(big, "\"}");
    addr(big, 0, "memo must be 1 to 100", "101 characters of memo");
}
