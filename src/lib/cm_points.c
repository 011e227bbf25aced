
/*
 * cm_points: the ADMIN's points grant body (see cm_points.h), read with
 * cm_json's event walker like cm_parse_charge.
 */


#include <string.h>

#include "cm_json.h"
#include "cm_text.h"
#include "cm_points.h"


enum {
    CM_PF_AMOUNT = 0,
    CM_PF_REASON,
    CM_PF_N
};


typedef struct {
    cm_points_grant_t  *out;
    int                 field;      /* the key whose value comes next */
    unsigned            seen;       /* bits of CM_PF_* */
} cm_points_parse_t;


static int cm_points_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len);


int
cm_parse_points_grant(const unsigned char *buf, size_t len,
    cm_points_grant_t *out, char *err, size_t errlen)
{
    cm_json_walk_t     w;
    cm_points_parse_t  pp;

    memset(out, 0, sizeof(cm_points_grant_t));

    memset(&pp, 0, sizeof(cm_points_parse_t));
    pp.out = out;
    pp.field = -1;

    memset(&w, 0, sizeof(cm_json_walk_t));
    w.handler = cm_points_event;
    w.data = &pp;
    w.err = err;
    w.errlen = errlen;

    if (cm_json_walk(&w, buf, len) != 0) {
        goto failed;
    }

    if (!(pp.seen & (1u << CM_PF_AMOUNT))) {
        cm_json_fail(&w, "amount is required");
        goto failed;
    }

    if (!(pp.seen & (1u << CM_PF_REASON))) {
        cm_json_fail(&w, "reason is required");
        goto failed;
    }

    return 0;

failed:

    memset(out, 0, sizeof(cm_points_grant_t));

    return -1;
}


static int
cm_points_event(cm_json_walk_t *w, cm_json_event_e ev, const unsigned char *p,
    size_t len)
{
    int                 f;
    cm_points_parse_t  *pp;

    pp = w->data;

    if (pp->field == -1) {
        switch (ev) {

        case CM_JSON_MAP_START:
        case CM_JSON_MAP_END:
            return CM_JSON_OK;

        case CM_JSON_KEY:
            if (cm_json_str_is(p, len, "amount")) {
                f = CM_PF_AMOUNT;

            } else if (cm_json_str_is(p, len, "reason")) {
                f = CM_PF_REASON;

            } else {
                return cm_json_fail(w, "unknown field");
            }

            if (pp->seen & (1u << f)) {
                return cm_json_fail(w, "duplicate field %s",
                                    f == CM_PF_AMOUNT ? "amount" : "reason");
            }

            pp->seen |= 1u << f;
            pp->field = f;
            return CM_JSON_OK;

        default:
            return cm_json_fail(w, "unexpected value");
        }
    }

    f = pp->field;
    pp->field = -1;

    if (f == CM_PF_AMOUNT) {
        if (cm_json_int_value(w, ev, p, len, -CM_POINTS_GRANT_MAX,
                              CM_POINTS_GRANT_MAX, "amount", &pp->out->amount)
            != CM_JSON_OK)
        {
            return CM_JSON_FAIL;
        }

        if (pp->out->amount == 0) {
            return cm_json_fail(w, "amount must not be 0");
        }

        return CM_JSON_OK;
    }

    if (ev != CM_JSON_STRING || len > CM_POINTS_REASON_BYTES
        || cm_utf8_text(p, len, 1, CM_POINTS_REASON_MAX, 0) != 0)
    {
        return cm_json_fail(w, "reason must be a string of 1 to 200"
                            " characters, not blank, without control"
                            " characters");
    }

    memcpy(pp->out->reason, p, len);
    pp->out->reason[len] = '\0';
    pp->out->reason_len = len;

    return CM_JSON_OK;
}
