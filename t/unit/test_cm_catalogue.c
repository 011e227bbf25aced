/*
 * Unit tests of cm_catalogue: product bodies (the option/variant matrix,
 * names counted in characters), variant patches, categories, store
 * accounts, SKUs and text.  TAP output.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_json.h"
#include "cm_catalogue.h"
#include "cm_text.h"
#include "tap.h"


#define OPTS  "\"options\":[{\"name\":\"\xec\x83\x89\xec\x83\x81\"," \
              "\"values\":[\"\xeb\xb9\xa8\xea\xb0\x95\",\"B\"]}," \
              "{\"name\":\"size\",\"values\":[\"S\",\"M\"]}]"


static void good(const char *body, cm_product_mode_e mode, size_t variants,
    const char *desc);
static void bad(const char *body, cm_product_mode_e mode, const char *want,
    const char *desc);
static void test_product(void);
static void test_matrix(void);
static void test_patch(void);
static void test_variant_patch(void);
static void test_category(void);
static void test_rules(void);


int
main(void)
{
    test_product();
    test_matrix();
    test_patch();
    test_variant_patch();
    test_category();
    test_rules();

    return tap_done();
}


static void
good(const char *body, cm_product_mode_e mode, size_t variants,
    const char *desc)
{
    char              err[CM_JSON_ERR_LEN];
    cm_product_req_t  req;

    err[0] = '\0';
    ok(cm_parse_product((const unsigned char *) body, strlen(body), mode,
                        &req, err, sizeof(err)) == 0, "accepted: %s (%s)",
       desc, err);
    if (mode == CM_PRODUCT_CREATE) {
        is_int(req.nvariants, variants, "%s: variants", desc);
    }
}


static void
bad(const char *body, cm_product_mode_e mode, const char *want,
    const char *desc)
{
    char              err[CM_JSON_ERR_LEN];
    cm_product_req_t  req;

    err[0] = '\0';
    ok(cm_parse_product((const unsigned char *) body, strlen(body), mode,
                        &req, err, sizeof(err)) == -1, "refused: %s", desc);
    if (want != NULL) {
        ok(strstr(err, want) != NULL, "%s: message names %s (%s)", desc,
           want, err);
    }
    ok(req.seen == 0 && req.nvariants == 0, "%s: output cleared", desc);
}


static void
test_product(void)
{
    char   body[2048], name[512];
    size_t i;

    good("{\"name\":\"T\",\"price\":1000,\"variants\":[{\"sku\":\"T-1\","
         "\"stock\":5}]}", CM_PRODUCT_CREATE, 1, "no options");
    good("{\"name\":\"T\",\"price\":0,\"description\":\"line\\nline\","
         "\"categoryId\":null,\"storeId\":3,\"options\":[],"
         "\"variants\":[{\"sku\":null,\"optionValues\":[],\"stock\":0,"
         "\"priceDelta\":0}]}", CM_PRODUCT_CREATE, 1, "every field");

    /* 100 Hangul syllables (300 bytes) are 100 characters */
    name[0] = '\0';
    for (i = 0; i < 100; i++) {
        strcat(name, "\xea\xb0\x80");
    }
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"price\":1,"
             "\"variants\":[{\"stock\":1}]}", name);
    good(body, CM_PRODUCT_CREATE, 1, "100 Korean characters");

    strcat(name, "\xea\xb0\x80");
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"price\":1,"
             "\"variants\":[{\"stock\":1}]}", name);
    bad(body, CM_PRODUCT_CREATE, "name", "101 Korean characters");

    memset(name, 'a', 101);
    name[101] = '\0';
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"price\":1,"
             "\"variants\":[{\"stock\":1}]}", name);
    bad(body, CM_PRODUCT_CREATE, "name", "101 ASCII characters");
    name[100] = '\0';
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"price\":1,"
             "\"variants\":[{\"stock\":1}]}", name);
    good(body, CM_PRODUCT_CREATE, 1, "100 ASCII characters");

    bad("{\"name\":\"\",\"price\":1,\"variants\":[{\"stock\":1}]}",
        CM_PRODUCT_CREATE, "name", "empty name");
    bad("{\"name\":\"   \",\"price\":1,\"variants\":[{\"stock\":1}]}",
        CM_PRODUCT_CREATE, "name", "blank name");
    bad("{\"name\":\"a\\u0001\",\"price\":1,\"variants\":[{\"stock\":1}]}",
        CM_PRODUCT_CREATE, "name", "control character");
    bad("{\"name\":\"T\",\"variants\":[{\"stock\":1}]}", CM_PRODUCT_CREATE,
        "required", "no price");
    bad("{\"name\":\"T\",\"price\":1}", CM_PRODUCT_CREATE, "required",
        "no variants");
    bad("{\"name\":\"T\",\"price\":-1,\"variants\":[{\"stock\":1}]}",
        CM_PRODUCT_CREATE, "price", "negative price");
    bad("{\"name\":\"T\",\"price\":1.5,\"variants\":[{\"stock\":1}]}",
        CM_PRODUCT_CREATE, "price", "fractional price");
    bad("{\"name\":\"T\",\"price\":\"1\",\"variants\":[{\"stock\":1}]}",
        CM_PRODUCT_CREATE, "price", "price as a string");
    bad("{\"name\":\"T\",\"price\":1,\"variants\":[{\"stock\":1}],\"x\":1}",
        CM_PRODUCT_CREATE, "unknown field", "unknown field");
    bad("{\"name\":\"T\",\"name\":\"U\",\"price\":1,"
        "\"variants\":[{\"stock\":1}]}", CM_PRODUCT_CREATE, "duplicate",
        "name twice");
    bad("{\"name\":\"T\",\"price\":1,\"variants\":[{\"stock\":-1}]}",
        CM_PRODUCT_CREATE, "stock", "negative stock");
    bad("{\"name\":\"T\",\"price\":1,\"variants\":[{\"sku\":\"-x\","
        "\"stock\":1}]}", CM_PRODUCT_CREATE, "sku", "bad sku");
    bad("{\"name\":\"T\",\"price\":1,\"variants\":[{\"stock\":1},"
        "{\"stock\":1}]}", CM_PRODUCT_CREATE, "combination",
        "two variants without options");
    bad("{\"name\":\"T\",\"price\":1,\"variants\":[]}", CM_PRODUCT_CREATE,
        "combination", "no variant");
    bad("{\"name\":\"T\",\"price\":1,\"variants\":{}}", CM_PRODUCT_CREATE,
        "array", "variants an object");
    bad("{\"name\":\"T\",\"price\":1,\"variants\":5}", CM_PRODUCT_CREATE,
        "array", "variants a number");
    bad("{\"name\":\"T\",\"price\":1,\"status\":\"STOPPED\","
        "\"variants\":[{\"stock\":1}]}", CM_PRODUCT_CREATE, "unknown",
        "status at creation");
    bad("[1]", CM_PRODUCT_CREATE, NULL, "not an object");
}


static void
test_matrix(void)
{
    good("{\"name\":\"T\",\"price\":1," OPTS ",\"variants\":["
         "{\"sku\":\"a\",\"optionValues\":[\"\xeb\xb9\xa8\xea\xb0\x95\",\"S\"],"
         "\"stock\":1},"
         "{\"sku\":\"b\",\"optionValues\":[\"\xeb\xb9\xa8\xea\xb0\x95\",\"M\"],"
         "\"stock\":1},"
         "{\"sku\":\"c\",\"optionValues\":[\"B\",\"S\"],\"stock\":1},"
         "{\"sku\":\"d\",\"optionValues\":[\"B\",\"M\"],\"stock\":0,"
         "\"priceDelta\":-1}]}", CM_PRODUCT_CREATE, 4, "2 x 2");

    /* the variants before the options */
    good("{\"variants\":[{\"optionValues\":[\"S\"],\"stock\":1},"
         "{\"optionValues\":[\"M\"],\"stock\":1}],\"name\":\"T\",\"price\":1,"
         "\"options\":[{\"values\":[\"S\",\"M\"],\"name\":\"size\"}]}",
         CM_PRODUCT_CREATE, 2, "variants first");

    bad("{\"name\":\"T\",\"price\":1," OPTS ",\"variants\":["
        "{\"optionValues\":[\"\xeb\xb9\xa8\xea\xb0\x95\",\"S\"],\"stock\":1},"
        "{\"optionValues\":[\"\xeb\xb9\xa8\xea\xb0\x95\",\"M\"],\"stock\":1},"
        "{\"optionValues\":[\"B\",\"S\"],\"stock\":1}]}",
        CM_PRODUCT_CREATE, "combination", "a variant missing");
    bad("{\"name\":\"T\",\"price\":1," OPTS ",\"variants\":["
        "{\"optionValues\":[\"\xeb\xb9\xa8\xea\xb0\x95\",\"S\"],\"stock\":1},"
        "{\"optionValues\":[\"\xeb\xb9\xa8\xea\xb0\x95\",\"S\"],\"stock\":1},"
        "{\"optionValues\":[\"B\",\"S\"],\"stock\":1},"
        "{\"optionValues\":[\"B\",\"M\"],\"stock\":1}]}",
        CM_PRODUCT_CREATE, "repeats", "a variant twice");
    bad("{\"name\":\"T\",\"price\":1," OPTS ",\"variants\":["
        "{\"optionValues\":[\"\xeb\xb9\xa8\xea\xb0\x95\",\"S\"],\"stock\":1},"
        "{\"optionValues\":[\"\xeb\xb9\xa8\xea\xb0\x95\",\"XL\"],\"stock\":1},"
        "{\"optionValues\":[\"B\",\"S\"],\"stock\":1},"
        "{\"optionValues\":[\"B\",\"M\"],\"stock\":1}]}",
        CM_PRODUCT_CREATE, "not a value", "an unknown value");
    bad("{\"name\":\"T\",\"price\":1," OPTS ",\"variants\":["
        "{\"optionValues\":[\"S\",\"B\"],\"stock\":1}]}",
        CM_PRODUCT_CREATE, "not a value", "values out of order");
    bad("{\"name\":\"T\",\"price\":1," OPTS ",\"variants\":["
        "{\"optionValues\":[\"B\"],\"stock\":1}]}",
        CM_PRODUCT_CREATE, "each of the 2", "a value missing");
    bad("{\"name\":\"T\",\"price\":1," OPTS ",\"variants\":["
        "{\"optionValues\":[\"B\",\"S\",\"S\"],\"stock\":1}]}",
        CM_PRODUCT_CREATE, "more values", "a value too many");
    bad("{\"name\":\"T\",\"price\":1,\"options\":[{\"name\":\"a\","
        "\"values\":[\"x\",\"x\"]}],\"variants\":[]}",
        CM_PRODUCT_CREATE, "repeats", "a value twice in an option");
    bad("{\"name\":\"T\",\"price\":1,\"options\":[{\"name\":\"a\","
        "\"values\":[\"x\"]},{\"name\":\"a\",\"values\":[\"y\"]}],"
        "\"variants\":[]}", CM_PRODUCT_CREATE, "repeats", "an option twice");
    bad("{\"name\":\"T\",\"price\":1,\"options\":[{\"name\":\"a\","
        "\"values\":[]}],\"variants\":[]}", CM_PRODUCT_CREATE, "empty",
        "no values");
    bad("{\"name\":\"T\",\"price\":1,\"options\":[{\"name\":\"a\","
        "\"values\":[\"1\"]},{\"name\":\"b\",\"values\":[\"1\"]},"
        "{\"name\":\"c\",\"values\":[\"1\"]},{\"name\":\"d\","
        "\"values\":[\"1\"]}],\"variants\":[]}", CM_PRODUCT_CREATE,
        "more than 3", "4 options");
    bad("{\"name\":\"T\",\"price\":1,\"options\":[{\"name\":\"a\","
        "\"values\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\","
        "\"10\",\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"17\",\"18\","
        "\"19\",\"20\",\"21\"]}],\"variants\":[]}", CM_PRODUCT_CREATE,
        "more than 20", "21 values");
    bad("{\"name\":\"T\",\"price\":1,\"options\":[{\"name\":\"a\"}],"
        "\"variants\":[]}", CM_PRODUCT_CREATE, "name and values",
        "an option without values");
    bad("{\"name\":\"T\",\"price\":1,\"options\":[{\"name\":\"a\","
        "\"values\":[1]}],\"variants\":[]}", CM_PRODUCT_CREATE, "options[0]",
        "a value a number");
    bad("{\"name\":\"T\",\"price\":1,\"options\":{},\"variants\":[]}",
        CM_PRODUCT_CREATE, "array", "options an object");
    bad("{\"name\":\"T\",\"price\":1,\"options\":[{\"name\":\"a\","
        "\"values\":[\"x\"],\"q\":1}],\"variants\":[]}", CM_PRODUCT_CREATE,
        "unknown", "unknown option field");
    bad("{\"name\":\"T\",\"price\":1,\"options\":[{\"name\":\"a\","
        "\"values\":[\"x\"]}],\"variants\":[{\"optionValues\":[\"x\"],"
        "\"stock\":1,\"color\":\"red\"}]}", CM_PRODUCT_CREATE, "unknown",
        "unknown variant field");
    bad("{\"name\":\"T\",\"price\":1,\"options\":[{\"name\":\"a\","
        "\"values\":[\"x\"]}],\"variants\":[{\"optionValues\":[\"x\"]}]}",
        CM_PRODUCT_CREATE, "stock is required", "no stock");
}


static void
test_patch(void)
{
    good("{\"name\":\"U\"}", CM_PRODUCT_PATCH, 0, "a name");
    good("{\"status\":\"STOPPED\",\"version\":3}", CM_PRODUCT_PATCH, 0,
         "status and version");
    good("{\"categoryId\":null,\"description\":\"\"}", CM_PRODUCT_PATCH, 0,
         "clear category and description");
    bad("{}", CM_PRODUCT_PATCH, "nothing to change", "empty");
    bad("{\"version\":1}", CM_PRODUCT_PATCH, "nothing to change",
        "version alone");
    bad("{\"status\":\"SOLD_OUT\"}", CM_PRODUCT_PATCH, "status",
        "SOLD_OUT is the database's");
    bad("{\"options\":[]}", CM_PRODUCT_PATCH, "do not change", "options");
    bad("{\"variants\":[]}", CM_PRODUCT_PATCH, "do not change", "variants");
    bad("{\"storeId\":1}", CM_PRODUCT_PATCH, "unknown", "storeId");
    bad("{\"name\":[\"x\"]}", CM_PRODUCT_PATCH, "name", "name an array");
}


static void
test_variant_patch(void)
{
    char  err[CM_JSON_ERR_LEN];

#define VP(s)  cm_parse_variant_patch((const unsigned char *) (s),          \
                                      strlen(s), err, sizeof(err))

    ok(VP("{\"stock\":5}") == 0, "stock");
    ok(VP("{\"stockDelta\":-3,\"reason\":\"\xed\x8c\x8c\xec\x86\x90\"}") == 0,
       "stockDelta -3 with a reason");
    ok(VP("{\"status\":\"STOPPED\",\"sku\":null,\"priceDelta\":-100}") == 0,
       "status, sku, priceDelta");
    ok(VP("{\"stock\":5,\"stockDelta\":1}") == -1, "stock and stockDelta");
    ok(VP("{\"stockDelta\":0}") == -1, "stockDelta 0");
    ok(VP("{\"stock\":-1}") == -1, "stock -1");
    ok(VP("{\"stockDelta\":\"+5\"}") == -1, "stockDelta as a string");
    ok(VP("{\"reason\":\"x\"}") == -1, "reason alone");
    ok(VP("{}") == -1, "nothing");
    ok(VP("{\"status\":\"SOLD_OUT\"}") == -1, "SOLD_OUT");
    ok(VP("{\"stock\":1,\"stock\":2}") == -1, "stock twice");
    ok(VP("{\"stok\":1}") == -1, "unknown field");
    ok(VP("{\"stock\":[1]}") == -1, "stock an array");

#undef VP
}


static void
test_category(void)
{
    char               err[CM_JSON_ERR_LEN];
    cm_category_req_t  c;

#define CAT(s, cr)  cm_parse_category((const unsigned char *) (s),          \
                                      strlen(s), cr, &c, err, sizeof(err))

    ok(CAT("{\"name\":\"\xec\x9d\x98\xeb\xa5\x98\"}", 1) == 0, "a root");
    is_str(c.name, "\xec\x9d\x98\xeb\xa5\x98", "its name");
    is_int(c.parent_id, 0, "no parent");
    ok(CAT("{\"name\":\"a\",\"parentId\":4}", 1) == 0, "a child");
    is_int(c.parent_id, 4, "parent 4");
    ok(CAT("{\"name\":\"a\",\"parentId\":4}", 0) == -1,
       "no parentId on a rename");
    ok(CAT("{\"parentId\":4}", 1) == -1, "no name");
    ok(CAT("{\"name\":\"\"}", 1) == -1, "empty name");
    ok(CAT("{\"name\":\"a\",\"parentId\":0}", 1) == -1, "parent 0");

#undef CAT
}


static void
test_rules(void)
{
    char         last4[5];
    const char  *why;

    ok(cm_catalogue_sku((const unsigned char *) "AB-1_2.3", 8) == 0, "sku");
    ok(cm_catalogue_sku((const unsigned char *) "_A", 2) == -1,
       "sku starting with _");
    ok(cm_catalogue_sku((const unsigned char *) "A B", 3) == -1,
       "sku with a space");

    ok(cm_store_account_valid("004", 3, "123-456-7890", 12, last4, &why)
       == 0, "account with dashes");
    is_str(last4, "7890", "its last 4 digits");
    ok(cm_store_account_valid("04", 2, "1234567", 7, last4, &why) == -1,
       "bank code of 2 digits");
    ok(cm_store_account_valid("004", 3, "12345", 5, last4, &why) == -1,
       "5 digits");
    ok(cm_store_account_valid("004", 3, "-123456", 7, last4, &why) == -1,
       "leading dash");
    ok(cm_store_account_valid("004", 3, "123--456", 8, last4, &why) == -1,
       "two dashes");
    ok(cm_store_account_valid("004", 3, "123456789012345678901", 21, last4,
                              &why) == -1, "21 digits");

    ok(cm_utf8_text((const unsigned char *) "a\nb", 3, 1, 10, 1) == 0,
       "multiline text");
    ok(cm_utf8_text((const unsigned char *) "a\nb", 3, 1, 10, 0) == -1,
       "a newline in a name");
    ok(cm_utf8_text((const unsigned char *) "\xff", 1, 0, 10, 1) == -1,
       "invalid UTF-8");
}
