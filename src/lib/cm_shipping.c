
/*
 * cm_shipping: a seller's shipment body (see cm_shipping.h), read with
 * cm_json's event walker like cm_parse_points_grant.
 */


#include <string.h>

#include "cm_json.h"
#include "cm_shipping.h"


enum {
    CM_SF_CARRIER = 0,
    CM_SF_NUMBER,
    CM_SF_N
};


typedef struct {
    cm_shipment_req_t  *out;
    int                 field;      /* the key whose value comes next */
    unsigned            seen;       /* bits of CM_SF_* */
} cm_shipping_parse_t;


/* Sweet Tracker's company codes */
static const char  *cm_carriers[][2] = {
    { "CJ", "04" },
    { "HANJIN", "05" },
    { "LOTTE", "08" },
    { NULL, NULL }
};


static int cm_shipping_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len);


int
cm_parse_shipment(const unsigned char *buf, size_t len, cm_shipment_req_t *out,
    char *err, size_t errlen)
{
    cm_json_walk_t       w;
    cm_shipping_parse_t  sp;

    memset(out, 0, sizeof(cm_shipment_req_t));

    memset(&sp, 0, sizeof(cm_shipping_parse_t));
    sp.out = out;
    sp.field = -1;

    memset(&w, 0, sizeof(cm_json_walk_t));
    w.handler = cm_shipping_event;
    w.data = &sp;
    w.err = err;
    w.errlen = errlen;

    if (cm_json_walk(&w, buf, len) != 0) {
        goto failed;
    }

    if (!(sp.seen & (1u << CM_SF_CARRIER))) {
        cm_json_fail(&w, "carrier is required");
        goto failed;
    }

    if (!(sp.seen & (1u << CM_SF_NUMBER))) {
        cm_json_fail(&w, "trackingNumber is required");
        goto failed;
    }

    return 0;

failed:

    memset(out, 0, sizeof(cm_shipment_req_t));

    return -1;
}


static int
cm_shipping_event(cm_json_walk_t *w, cm_json_event_e ev, const unsigned char *p,
    size_t len)
{
    int                   f;
    cm_shipping_parse_t  *sp;

    sp = w->data;

    if (sp->field == -1) {
        switch (ev) {

        case CM_JSON_MAP_START:
        case CM_JSON_MAP_END:
            return CM_JSON_OK;

        case CM_JSON_KEY:
            if (cm_json_str_is(p, len, "carrier")) {
                f = CM_SF_CARRIER;

            } else if (cm_json_str_is(p, len, "trackingNumber")) {
                f = CM_SF_NUMBER;

            } else {
                return cm_json_fail(w, "unknown field");
            }

            if (sp->seen & (1u << f)) {
                return cm_json_fail(w, "duplicate field %s",
                                    f == CM_SF_CARRIER ? "carrier"
                                                       : "trackingNumber");
            }

            sp->seen |= 1u << f;
            sp->field = f;
            return CM_JSON_OK;

        default:
            return cm_json_fail(w, "unexpected value");
        }
    }

    f = sp->field;
    sp->field = -1;

    if (f == CM_SF_CARRIER) {
        if (ev != CM_JSON_STRING
            || (sp->out->carrier = cm_carrier_name(p, len)) == NULL)
        {
            return cm_json_fail(w, "carrier must be CJ, LOTTE or HANJIN");
        }

        return CM_JSON_OK;
    }

    if (ev != CM_JSON_STRING || !cm_tracking_number_ok(p, len)) {
        return cm_json_fail(w, "trackingNumber must be a string of 9 to 14"
                            " digits");
    }

    memcpy(sp->out->number, p, len);
    sp->out->number[len] = '\0';
    sp->out->number_len = len;

    return CM_JSON_OK;
}


const char *
cm_carrier_name(const unsigned char *name, size_t len)
{
    size_t  i;

    for (i = 0; cm_carriers[i][0] != NULL; i++) {
        if (len == strlen(cm_carriers[i][0])
            && memcmp(name, cm_carriers[i][0], len) == 0)
        {
            return cm_carriers[i][0];
        }
    }

    return NULL;
}


const char *
cm_carrier_code(const char *carrier)
{
    size_t  i;

    for (i = 0; cm_carriers[i][0] != NULL; i++) {
        if (strcmp(carrier, cm_carriers[i][0]) == 0) {
            return cm_carriers[i][1];
        }
    }

    return NULL;
}


int
cm_tracking_number_ok(const unsigned char *s, size_t len)
{
    size_t  i;

    if (len < CM_TRACKING_MIN || len > CM_TRACKING_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }

    return 1;
}
