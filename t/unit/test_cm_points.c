/*
 * Unit tests of cm_points: the ADMIN's points grant body.  TAP output.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_json.h"
#include "cm_points.h"
#include "tap.h"


static void good(const char *body, int64_t amount, const char *reason,
    const char *desc);
static void bad(const char *body, const char *want, const char *desc);


int
main(void)
{
    char  big[1200];

    good("{\"amount\":1000,\"reason\":\"welcome\"}", 1000, "welcome",
         "a grant");
    good("{\"reason\":\"회수\",\"amount\":-500}", -500, "회수",
         "a revoke, keys in any order, Korean");
    good("{\"amount\":100000000,\"reason\":\"max\"}", 100000000, "max",
         "the largest grant");
    good("{\"amount\":-100000000,\"reason\":\"min\"}", -100000000, "min",
         "the largest revoke");
    good(" { \"amount\" : 1 , \"reason\" : \"a\" } ", 1, "a", "spaces");

    bad("", "empty", "an empty body");
    bad("{", NULL, "cut JSON");
    bad("[1]", "JSON object", "an array");
    bad("5", "JSON object", "a number");
    bad("{}", "amount is required", "no field");
    bad("{\"amount\":5}", "reason is required", "no reason");
    bad("{\"reason\":\"x\"}", "amount is required", "no amount");
    bad("{\"amount\":0,\"reason\":\"x\"}", "not be 0", "0");
    bad("{\"amount\":100000001,\"reason\":\"x\"}", "between", "over the max");
    bad("{\"amount\":-100000001,\"reason\":\"x\"}", "between",
        "under the min");
    bad("{\"amount\":99999999999999999999,\"reason\":\"x\"}", "between",
        "overflow");
    bad("{\"amount\":1.0,\"reason\":\"x\"}", "integer", "a fraction");
    bad("{\"amount\":1e3,\"reason\":\"x\"}", "integer", "an exponent");
    bad("{\"amount\":\"5\",\"reason\":\"x\"}", "integer", "a string amount");
    bad("{\"amount\":null,\"reason\":\"x\"}", "integer", "a null amount");
    bad("{\"amount\":[5],\"reason\":\"x\"}", "integer", "an array amount");
    bad("{\"amount\":5,\"reason\":\"\"}", "reason", "an empty reason");
    bad("{\"amount\":5,\"reason\":\"   \"}", "reason", "a blank reason");
    bad("{\"amount\":5,\"reason\":\"a\\u0001b\"}", "reason",
        "a control character");
    bad("{\"amount\":5,\"reason\":5}", "reason", "a number reason");
    bad("{\"amount\":5,\"reason\":{\"a\":1}}", "reason", "an object reason");
    bad("{\"amount\":5,\"reason\":\"x\",\"amount\":6}", "duplicate",
        "amount twice");
    bad("{\"amount\":5,\"reason\":\"x\",\"userId\":1}", "unknown",
        "an unknown field");
    bad("{\"amount\":5,\"reason\":\"x\"} {}", NULL, "trailing data");

    /* 200 characters of 3 bytes pass, 201 do not */
    strcpy(big, "{\"amount\":5,\"reason\":\"");
    for (int i = 0; i < 200; i++) {
        strcat(big, "가");
    }
    strcat(big, "\"}");
    good(big, 5, NULL, "a reason of 200 Korean characters");
    big[strlen(big) - 2] = '\0';
    strcat(big, "가\"}");
    bad(big, "reason", "a reason of 201 characters");

    return tap_done();
}


static void
good(const char *body, int64_t amount, const char *reason, const char *desc)
{
    char               err[CM_JSON_ERR_LEN];
    cm_points_grant_t  g;

    err[0] = '\0';
    ok(cm_parse_points_grant((const unsigned char *) body, strlen(body), &g,
                             err, sizeof(err)) == 0, "accepted: %s (%s)",
       desc, err);
    ok(g.amount == amount, "%s: amount", desc);
    if (reason != NULL) {
        ok(strcmp(g.reason, reason) == 0 && g.reason_len == strlen(reason),
           "%s: reason", desc);
    }
}


static void
bad(const char *body, const char *want, const char *desc)
{
    char               err[CM_JSON_ERR_LEN];
    cm_points_grant_t  g;

    err[0] = '\0';
    ok(cm_parse_points_grant((const unsigned char *) body, strlen(body), &g,
                             err, sizeof(err)) == -1, "refused: %s", desc);
    if (want != NULL) {
        ok(strstr(err, want) != NULL, "%s: message names %s (%s)", desc, want,
           err);
    }
    ok(g.amount == 0 && g.reason[0] == '\0', "%s: output cleared", desc);
}
