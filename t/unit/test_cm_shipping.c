/*
 * Unit tests of cm_shipping: a seller's shipment body and the carriers'
 * codes.  TAP output.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_json.h"
#include "cm_shipping.h"
#include "tap.h"


static void good(const char *body, const char *carrier, const char *number,
    const char *desc);
static void bad(const char *body, const char *want, const char *desc);


int
main(void)
{
    good("{\"carrier\":\"CJ\",\"trackingNumber\":\"123456789012\"}", "CJ",
         "123456789012", "CJ");
    good("{\"trackingNumber\":\"123456789\",\"carrier\":\"LOTTE\"}", "LOTTE",
         "123456789", "LOTTE, 9 digits, keys in any order");
    good(" { \"carrier\" : \"HANJIN\" , \"trackingNumber\" : "
         "\"12345678901234\" } ", "HANJIN", "12345678901234",
         "HANJIN, 14 digits, spaces");

    bad("", "empty", "an empty body");
    bad("{", NULL, "cut JSON");
    bad("[1]", "JSON object", "an array");
    bad("{}", "carrier is required", "no field");
    bad("{\"carrier\":\"CJ\"}", "trackingNumber is required", "no number");
    bad("{\"trackingNumber\":\"123456789\"}", "carrier is required",
        "no carrier");
    bad("{\"carrier\":\"cj\",\"trackingNumber\":\"123456789\"}", "carrier",
        "a lower-case carrier");
    bad("{\"carrier\":\"DHL\",\"trackingNumber\":\"123456789\"}", "carrier",
        "an unknown carrier");
    bad("{\"carrier\":4,\"trackingNumber\":\"123456789\"}", "carrier",
        "a number carrier");
    bad("{\"carrier\":null,\"trackingNumber\":\"123456789\"}", "carrier",
        "a null carrier");
    bad("{\"carrier\":\"CJ\",\"trackingNumber\":\"12345678\"}",
        "trackingNumber", "8 digits");
    bad("{\"carrier\":\"CJ\",\"trackingNumber\":\"123456789012345\"}",
        "trackingNumber", "15 digits");
    bad("{\"carrier\":\"CJ\",\"trackingNumber\":\"1234-56789\"}",
        "trackingNumber", "a dash");
    bad("{\"carrier\":\"CJ\",\"trackingNumber\":\" 123456789\"}",
        "trackingNumber", "a space");
    bad("{\"carrier\":\"CJ\",\"trackingNumber\":123456789}",
        "trackingNumber", "a number, not a string");
    bad("{\"carrier\":\"CJ\",\"trackingNumber\":[\"123456789\"]}",
        "trackingNumber", "an array");
    bad("{\"carrier\":\"CJ\",\"trackingNumber\":\"123456789\","
        "\"carrier\":\"CJ\"}", "duplicate", "carrier twice");
    bad("{\"carrier\":\"CJ\",\"trackingNumber\":\"123456789\",\"x\":1}",
        "unknown", "an unknown field");
    bad("{\"carrier\":\"CJ\",\"trackingNumber\":\"123456789\"} {}", NULL,
        "trailing data");

    ok(strcmp(cm_carrier_code("CJ"), "04") == 0, "CJ is 04");
    ok(strcmp(cm_carrier_code("HANJIN"), "05") == 0, "HANJIN is 05");
    ok(strcmp(cm_carrier_code("LOTTE"), "08") == 0, "LOTTE is 08");
    ok(cm_carrier_code("DHL") == NULL, "no code for DHL");
    ok(cm_carrier_name((const unsigned char *) "LOTTEX", 5) != NULL,
       "a name by its length");

    return tap_done();
}


static void
good(const char *body, const char *carrier, const char *number,
    const char *desc)
{
    char               err[CM_JSON_ERR_LEN];
    cm_shipment_req_t  s;

    err[0] = '\0';
    ok(cm_parse_shipment((const unsigned char *) body, strlen(body), &s, err,
                         sizeof(err)) == 0, "accepted: %s (%s)", desc, err);
    ok(s.carrier != NULL && strcmp(s.carrier, carrier) == 0, "%s: carrier",
       desc);
    ok(strcmp(s.number, number) == 0 && s.number_len == strlen(number),
       "%s: number", desc);
}


static void
bad(const char *body, const char *want, const char *desc)
{
    char               err[CM_JSON_ERR_LEN];
    cm_shipment_req_t  s;

    err[0] = '\0';
    ok(cm_parse_shipment((const unsigned char *) body, strlen(body), &s, err,
                         sizeof(err)) == -1, "refused: %s", desc);
    if (want != NULL) {
        ok(strstr(err, want) != NULL, "%s: message names %s (%s)", desc, want,
           err);
    }
    ok(s.carrier == NULL && s.number[0] == '\0', "%s: output cleared", desc);
}
